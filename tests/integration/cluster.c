// SPDX-License-Identifier: MIT
/*
 * CRAQ with real processes (issue 4): one chainfsd running mgmtd (node 1) and
 * three storage nodes (2, 3, 4; two targets each: n1, n2), each node a host of
 * its own (tests/proc.h hosts mode: node n listens on 10.99.0.n in its own
 * network namespace; loopback when namespaces cannot be made), two
 * chains of three (keys alternate between them), 16 writer threads and 4
 * reader threads going through the chunk client (src/client/chunk_client.h,
 * retries inside it) while this driver injects faults. Every operation is
 * recorded (invoke, complete, value) and each scenario's history must pass the
 * linearizability checker (tests/lincheck.h) as a register per chunk:
 *   1. writes reach every replica (each target's chunk list: identical
 *      version, length and CRC), and each replica serves reads;
 *   2. kill -9 the first chain's head node under load (it has another role in
 *      the other chain), keep writing; every acknowledged write reads back
 *      exactly (the last acknowledged token of a key, or a later write whose
 *      outcome was unknown); the longest gap between acknowledgements is
 *      printed, not asserted;
 *   3. the same for the tail, then for the middle replica;
 *   4. after each kill, restart the node (same config, same data): its
 *      targets come back serving and all replicas hold identical chunk lists;
 *   5. SIGSTOP the head past its lease, write meanwhile, SIGCONT: with its old
 *      chain version it must refuse writes and serve no overwritten data (raw
 *      chunk_read / chunk_write sent straight to it);
 *   6. kill -9 and restart mgmtd under load: every write still succeeds and
 *      chains and targets are as before;
 *   7. (each scenario) the history is linearizable;
 *   8. hosts mode only: 5 again, with the head's link cut (ip link set down)
 *      instead of SIGSTOP: the node runs on and must stop serving on its own
 *      when its lease lapses.
 *
 * A value is a 64-bit token unique to one write, stored in the first 8 bytes
 * of the 4 KiB chunk; the remaining bytes are a function of the token, so a
 * read checks the whole content. An absent chunk reads as token 0. A write
 * that fails after all the client's retries is recorded as unknown (it may or
 * may not have taken effect). Each scenario uses its own keys (inode =
 * scenario), so every history starts from absent chunks.
 *
 * Plain main: one "PASS"/"FAIL" line per scenario, exit 0 pass, 1 fail, 77
 * skip (no chainfsd). Waits poll with generous hang guards; nothing asserts on
 * time. Keep the data and logs with KEEP=1 (always kept on failure).
 */
#define RT_LOG_SUBSYS "cluster"
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chainfs/cluster.h"
#include "chainfs/proto.h"
#include "client/chunk_client.h"
#include "client/client.h"
#include "client/routing.h"
#include "client/targets.h"
#include "disk/disk.h"
#include "net/net.h"
#include "tests/lincheck.h"
#include "tests/proc.h"

#define NSTORAGE    3 /* storage nodes 2..4 */
#define TPN	    2 /* targets per storage node: node n has n1, n2; chains = TPN */
#define NNODES	    (NSTORAGE + 1)
#define NWRITERS    16
#define NREADERS    4
#define OWN_KEYS    2 /* per writer: only it writes them */
#define SHARED_KEYS 8 /* every writer writes them */
#define NKEYS	    (NWRITERS * OWN_KEYS + SHARED_KEYS)
#define CHUNK_LEN   4096u
#define CHUNK_SIZE  4096u
#define MAX_UNKNOWN 64
#define HB_MS	    200
#define LEASE_MS    2000
#define GUARD_S	    60	/* one wait: a hang guard, not a performance bound */
#define WATCHDOG_S  900 /* the whole program */
#define VERIFY_TID  (NWRITERS + NREADERS)

static char g_dir[256];
static char g_mgmtd_ep[64];
static const char *g_daemon;
static struct tp_proc g_nodes[NNODES + 1]; /* by id; [0] unused */
static struct cfs_client *g_admin;	   /* raw calls: mgmtd, targets */
static int g_failures;			   /* all scenarios */
static int g_scen_failures;		   /* the current one */
/* CLUSTER_RELAXED_READS=1: reads skip CRAQ's question to the tail, which is not
 * linearizable; the checker must then fail the run (a test of the test). */
static uint32_t g_read_flags;
static pthread_mutex_t g_fail_mu = PTHREAD_MUTEX_INITIALIZER;

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		pthread_mutex_lock(&g_fail_mu);                                                    \
		fprintf(stderr, "cluster: FAIL: " __VA_ARGS__);                                    \
		fputc('\n', stderr);                                                               \
		g_failures++;                                                                      \
		g_scen_failures++;                                                                 \
		pthread_mutex_unlock(&g_fail_mu);                                                  \
	} while (0)

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The bytes of a write: the token, then xorshift bytes seeded by it. */
static void
fill(uint8_t *p, uint64_t token)
{
	memcpy(p, &token, 8);
	tp_fill(p + 8, CHUNK_LEN - 8, token);
}

/* The token of a chunk's bytes; false when they are not fill(token)'s. */
static bool
token_of(const uint8_t *p, uint32_t len, uint64_t *token)
{
	static __thread uint8_t want[CHUNK_LEN];

	if (len != CHUNK_LEN)
		return false;
	memcpy(token, p, 8);
	fill(want, *token);
	return memcmp(p, want, CHUNK_LEN) == 0;
}

/* ------------------------------------------------------------ processes */

static int
write_configs(void)
{
	char db[300];
	int rc;

	snprintf(db, sizeof(db), "%s/mgmtd.db", g_dir);
	for (unsigned n = 1; n <= NNODES; n++) {
		struct tp_proc *nd = &g_nodes[n];
		uint32_t targets[TPN];
		struct tp_conf c = {.id = n,
				    .port = tp_hosts_on() ? TP_HOST_PORT : tp_free_port(),
				    .host = tp_host_addr(n)};

		if (!c.port)
			return -EADDRNOTAVAIL;
		nd->host = n; /* hosts mode: node n is host n */
		snprintf(nd->conf, sizeof(nd->conf), "%s/n%u.conf", g_dir, n);
		snprintf(nd->log, sizeof(nd->log), "%s/n%u.log", g_dir, n);
		if (n == 1) {
			snprintf(g_mgmtd_ep, sizeof(g_mgmtd_ep), "%s:%u", c.host, c.port);
			c.loops = "1";
			c.mgmtd_db = db;
			c.heartbeat_ms = HB_MS;
			c.lease_ms = LEASE_MS;
		} else {
			c.loops = "2";
			c.mgmtd = g_mgmtd_ep;
			for (unsigned t = 1; t <= TPN; t++)
				targets[t - 1] = n * 10 + t; /* target.21 in t21 */
			c.ntargets = TPN;
			c.targets = targets;
			c.target_dir = g_dir;
			c.capacity = "256M";
		}
		rc = tp_conf_write(nd, &c);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int
node_start(unsigned n)
{
	return tp_proc_start(&g_nodes[n], g_daemon, 0, NULL);
}

/* Send sig; for KILL/TERM wait for the process to go. */
static void
node_signal(unsigned n, int sig)
{
	tp_proc_signal(&g_nodes[n], sig);
}

static void
stop_all(void)
{
	for (unsigned n = NNODES; n >= 1; n--)
		node_signal(n, SIGTERM);
}

static void
on_watchdog(int sig)
{
	(void)sig;
	tp_procs_kill(&g_nodes[1], NNODES);
	tp_hosts_abort(); /* _exit below runs no atexit handler */
	static const char msg[] = "cluster: FAIL: watchdog: the program hung; data kept\n";
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(1);
}

static void
dump_logs(void)
{
	for (unsigned n = 1; n <= NNODES; n++) {
		char cmd[400];

		fprintf(stderr, "---- %s (tail)\n", g_nodes[n].log);
		snprintf(cmd, sizeof(cmd), "tail -n 12 '%s' >&2", g_nodes[n].log);
		if (system(cmd) != 0)
			fprintf(stderr, "(no log)\n");
	}
}

/* ------------------------------------------------------- raw cluster calls */

/* Call mgmtd; 0 and *resp, or an error. */
static int
mgmtd_call(struct rt_msg *req, struct rt_msg **resp)
{
	return cfs_client_call(g_admin, CFS_ADDR(1, CFS_LOCAL_MGMTD), req, 2000, resp);
}

/* The routing as mgmtd has it now (full), or NULL when mgmtd does not answer. */
static struct cfs_routing_snap *
routing_fetch(void)
{
	struct rt_msg *req = rt_msg_new(CFS_MSG_MGMTD_ROUTING), *resp = NULL;
	struct cfs_routing_snap *s = NULL;
	struct cfs_routing_ref ref;

	if (!req)
		return NULL;
	RT_BODY(req, mgmtd_routing)->flags = CFS_ROUTING_F_FULL;
	if (mgmtd_call(req, &resp) == 0 && cfs_routing_ref_from(resp->type, resp->body, &ref) &&
	    cfs_routing_snap_build(&ref, &s) != 0)
		s = NULL;
	rt_msg_free(&resp);
	return s;
}

typedef bool (*routing_pred_fn)(const struct cfs_routing_snap *s, const void *arg);

/* Poll mgmtd until pred holds (GUARD_S at most); the matching snapshot, or NULL. */
static struct cfs_routing_snap *
wait_routing(const char *desc, routing_pred_fn pred, const void *arg)
{
	uint64_t t0 = now_ns();

	while (now_ns() - t0 < GUARD_S * 1000000000ull) {
		struct cfs_routing_snap *s = routing_fetch();

		if (s && pred(s, arg))
			return s;
		cfs_routing_snap_put(&s);
		tp_sleep_ms(100);
	}
	FAIL("waited %d s for: %s", GUARD_S, desc);
	return NULL;
}

static bool
nodes_up(const struct cfs_routing_snap *s, const void *arg)
{
	unsigned up = 0;

	(void)arg;
	for (uint32_t i = 0; i < s->nnodes; i++)
		up += s->nodes[i].state == CFS_NODE_UP;
	return up == NNODES && s->ntargets == NSTORAGE * TPN;
}

/* Every node up, at least one chain, every chain 3 serving members. */
static bool
healthy(const struct cfs_routing_snap *s, const void *arg)
{
	return nodes_up(s, arg) && tp_chains_serving(s, 0, NSTORAGE);
}

/* Node *arg is down and none of its targets serves. */
static bool
node_down(const struct cfs_routing_snap *s, const void *arg)
{
	unsigned n = *(const unsigned *)arg;
	const struct cfs_route_node *nd = cfs_routing_node(s, n);

	if (!nd || nd->state != CFS_NODE_DOWN)
		return false;
	for (uint32_t i = 0; i < s->ntargets; i++) {
		if (s->targets[i].node_id == n && s->targets[i].state == CFS_TS_SERVING)
			return false;
	}
	return true;
}

/* The target's public state in its chain (CFS_TS__COUNT when unknown). */
static enum cfs_target_state
target_state(const struct cfs_routing_snap *s, uint32_t target)
{
	const struct cfs_route_target *t = cfs_routing_target(s, target);

	return t ? t->state : CFS_TS__COUNT;
}

/* One line per chain, and the targets: what must survive a mgmtd restart. */
static void
routing_describe(const struct cfs_routing_snap *s, char *out, size_t n)
{
	size_t o = 0;

	out[0] = 0;
	for (uint32_t i = 0; i < s->nchains && o < n; i++) {
		const struct cfs_route_chain *c = &s->chains[i];

		o += (size_t)snprintf(out + o, n - o, "chain %" PRIu64 " v%u:", c->chain_id,
				      c->chain_ver);
		for (uint32_t k = 0; k < c->count && o < n; k++)
			o += (size_t)snprintf(out + o, n - o, " %u@%u %s", c->members[k].target,
					      c->members[k].node_id,
					      cfs_target_state_name(c->members[k].state));
		if (o < n)
			o += (size_t)snprintf(out + o, n - o, "\n");
	}
	for (uint32_t i = 0; i < s->ntargets && o < n; i++) {
		const struct cfs_route_target *t = &s->targets[i];

		o += (size_t)snprintf(out + o, n - o, "target %u node %u chain %" PRIu64 " %s\n",
				      t->target, t->node_id, t->chain_id,
				      cfs_target_state_name(t->state));
	}
}

static int
create_chains(void)
{
	unsigned created = 0;
	int rc;

	rc = tp_create_chains(g_admin, CFS_ADDR(1, CFS_LOCAL_MGMTD), NSTORAGE, 0, 2000, &created,
			      NULL, 0);
	if (rc == 0)
		printf("cluster: created %u chain(s) of %u\n", created, NSTORAGE);
	return rc;
}

/* All chunks of a target (paged chunk_list), malloc'd into *out. */
static int
list_target(cfs_addr_t addr, uint32_t target, struct cfs_chunk_meta **out, unsigned *n)
{
	struct cfs_id128 begin = {0};
	struct cfs_chunk_meta *v = NULL;
	unsigned cnt = 0;
	bool more = true;
	int rc = 0;

	while (more) {
		struct rt_msg *req = rt_msg_new(CFS_MSG_CHUNK_LIST), *resp = NULL;
		const struct cfs_chunk_list_resp *r;
		struct cfs_chunk_meta *nv;

		if (!req) {
			rc = -ENOMEM;
			break;
		}
		RT_BODY(req, chunk_list)->target = target;
		RT_BODY(req, chunk_list)->begin = begin;
		RT_BODY(req, chunk_list)->max = 1024;
		rc = cfs_client_call(g_admin, addr, req, 5000, &resp);
		if (rc != 0) {
			rt_msg_free(&resp);
			break;
		}
		r = RT_BODY(resp, chunk_list_resp);
		nv = realloc(v, (cnt + r->chunks_count + 1) * sizeof(*v));
		if (!nv) {
			rt_msg_free(&resp);
			rc = -ENOMEM;
			break;
		}
		v = nv;
		memcpy(v + cnt, r->chunks, r->chunks_count * sizeof(*v));
		cnt += r->chunks_count;
		more = r->more && r->chunks_count > 0;
		if (more) {
			/* next id: the last one plus one, big-endian */
			begin = r->chunks[r->chunks_count - 1].chunk;
			for (int i = 15; i >= 0; i--) {
				if (++begin.b[i] != 0)
					break;
			}
		}
		rt_msg_free(&resp);
	}
	if (rc != 0) {
		free(v);
		return rc;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/*
 * Every member of every chain holds the same chunks with the same committed
 * version, length and CRC, and nothing pending. Call with the cluster quiet and
 * healthy. Returns the number of chunks compared per replica.
 */
static unsigned
compare_replicas(const char *when)
{
	struct cfs_routing_snap *s = routing_fetch();
	unsigned total = 0;

	if (!s) {
		FAIL("%s: mgmtd does not answer", when);
		return 0;
	}
	for (uint32_t i = 0; i < s->nchains; i++) {
		const struct cfs_route_chain *c = &s->chains[i];
		struct cfs_chunk_meta *lists[NSTORAGE] = {0};
		unsigned counts[NSTORAGE] = {0};
		char idstr[CFS_CHUNK_ID_STR];
		unsigned bad = 0;
		int rc;

		for (uint32_t k = 0; k < c->count && k < NSTORAGE; k++) {
			rc = list_target(c->members[k].addr, c->members[k].target, &lists[k],
					 &counts[k]);
			if (rc != 0)
				FAIL("%s: chunk_list of target %u: %s", when, c->members[k].target,
				     cfs_errname(rc));
		}
		for (uint32_t k = 0; k < c->count && k < NSTORAGE; k++) {
			for (unsigned j = 0; j < counts[k]; j++) {
				if (lists[k][j].pending == 0)
					continue;
				cfs_chunk_id_format(&lists[k][j].chunk, idstr);
				if (bad++ < 5)
					FAIL("%s: target %u chunk %s still has pending version "
					     "%" PRIu64 " (committed %" PRIu64 ")",
					     when, c->members[k].target, idstr, lists[k][j].pending,
					     lists[k][j].committed);
			}
		}
		for (uint32_t k = 1; k < c->count && k < NSTORAGE; k++) {
			unsigned a = 0, b = 0;

			while (a < counts[0] || b < counts[k]) {
				const struct cfs_chunk_meta *x =
					a < counts[0] ? &lists[0][a] : NULL;
				const struct cfs_chunk_meta *y =
					b < counts[k] ? &lists[k][b] : NULL;
				int cmp = !x ? 1 : !y ? -1 : memcmp(&x->chunk, &y->chunk, 16);

				if (cmp != 0) {
					const struct cfs_chunk_meta *only = cmp < 0 ? x : y;

					cfs_chunk_id_format(&only->chunk, idstr);
					if (bad++ < 5)
						FAIL("%s: chain %" PRIu64 ": chunk %s (v%" PRIu64
						     ") only on target %u",
						     when, c->chain_id, idstr, only->committed,
						     cmp < 0 ? c->members[0].target
							     : c->members[k].target);
					if (cmp < 0)
						a++;
					else
						b++;
					continue;
				}
				if (x->committed != y->committed || x->crc != y->crc ||
				    x->len != y->len) {
					cfs_chunk_id_format(&x->chunk, idstr);
					if (bad++ < 5)
						FAIL("%s: chain %" PRIu64 " chunk %s: target %u "
						     "v%" PRIu64 " crc %08x len %u, target %u "
						     "v%" PRIu64 " crc %08x len %u",
						     when, c->chain_id, idstr, c->members[0].target,
						     x->committed, x->crc, x->len,
						     c->members[k].target, y->committed, y->crc,
						     y->len);
				}
				a++;
				b++;
			}
		}
		if (bad > 5)
			FAIL("%s: chain %" PRIu64 ": %u differences in all", when, c->chain_id,
			     bad);
		printf("cluster: %s: chain %" PRIu64 ": %u chunks on each of %u replicas: %s\n",
		       when, c->chain_id, counts[0], c->count, bad ? "DIFFER" : "identical");
		total += counts[0];
		for (unsigned k = 0; k < NSTORAGE; k++)
			free(lists[k]);
	}
	cfs_routing_snap_put(&s);
	return total;
}

/* ------------------------------------------------------------- the load */

struct own_key {
	uint64_t acked;		       /* last acknowledged token (0: none) */
	uint64_t ver;		       /* its version */
	uint64_t unknown[MAX_UNKNOWN]; /* tokens of unknown writes since then */
	unsigned nunknown;
	bool overflow;
};

struct load {
	const char *name;
	uint64_t inode; /* keys of this scenario: chunk (inode, key) */
	struct cfs_chunk_client *cc;
	uint64_t chains[16];
	unsigned nchains;
	struct lc_history *h;
	FILE *oplog;	    /* every operation with its version and target (diagnosis) */
	pthread_mutex_t mu; /* h, oplog, the gap */
	atomic_bool stop;
	atomic_uint_fast64_t writes, acks, unknowns, reads, reads_ok, reads_failed;
	atomic_uint_fast64_t acks_after_fault;
	atomic_uint_fast64_t fault_ns;	  /* 0: no fault yet */
	atomic_bool refuse_failed_writes; /* scenario 6: every write must succeed */
	uint64_t last_ack_ns, max_gap_ns, max_gap_at_ns, t0_ns;
	atomic_int last_unknown_rc;
	struct own_key own[NWRITERS * OWN_KEYS];
	uint64_t final[NKEYS]; /* tokens read back at the end */
	pthread_t th[NWRITERS + NREADERS];
	bool running;
	struct worker {
		struct load *l;
		unsigned idx;
		uint64_t rng;
		uint64_t seq;
	} w[NWRITERS + NREADERS];
};

static uint64_t
rnd(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

static uint64_t
key_chain(const struct load *l, unsigned key)
{
	return l->chains[key % l->nchains];
}

/* Record an invocation / completion under the history's lock. */
static uint64_t
hist_invoke(struct load *l, unsigned key, unsigned tid, enum lc_op op, uint64_t value)
{
	uint64_t id;

	pthread_mutex_lock(&l->mu);
	id = lc_invoke(l->h, key, tid, op, value);
	pthread_mutex_unlock(&l->mu);
	return id;
}

static void
hist_complete(struct load *l, uint64_t id, enum lc_outcome how, uint64_t value)
{
	pthread_mutex_lock(&l->mu);
	lc_complete(l->h, id, how, value);
	pthread_mutex_unlock(&l->mu);
}

/* One line per finished operation: what the history lacks (versions, targets). */
static void
oplog(struct load *l, uint64_t inv_ns, char kind, unsigned tid, unsigned key, uint64_t token,
      int rc, const struct cfs_chunk_op *op)
{
	if (!l->oplog)
		return;
	pthread_mutex_lock(&l->mu);
	fprintf(l->oplog,
		"%9.3f %9.3f t%-2u %c key %-2u token %016" PRIx64 " rc %-14s v%-5" PRIu64
		" target %u attempts %u\n",
		(double)(inv_ns - l->t0_ns) / 1e6, (double)(now_ns() - l->t0_ns) / 1e6, tid, kind,
		key, token, rc ? cfs_errname(rc) : "ok", op->version, op->target, op->attempts);
	pthread_mutex_unlock(&l->mu);
}

static void
note_ack(struct load *l)
{
	uint64_t f = atomic_load(&l->fault_ns), t;

	pthread_mutex_lock(&l->mu);
	t = now_ns(); /* under the lock: acknowledgements in time order */
	if (l->last_ack_ns && t - l->last_ack_ns > l->max_gap_ns) {
		l->max_gap_ns = t - l->last_ack_ns;
		l->max_gap_at_ns = l->last_ack_ns;
	}
	l->last_ack_ns = t;
	pthread_mutex_unlock(&l->mu);
	atomic_fetch_add(&l->acks, 1);
	if (f && t > f)
		atomic_fetch_add(&l->acks_after_fault, 1);
}

static void *
writer_main(void *arg)
{
	struct worker *w = arg;
	struct load *l = w->l;
	uint8_t *buf = malloc(CHUNK_LEN);

	while (buf && !atomic_load(&l->stop)) {
		unsigned key = rnd(w) % 4 == 0
				       ? NWRITERS * OWN_KEYS + (unsigned)(rnd(w) % SHARED_KEYS)
				       : w->idx * OWN_KEYS + (unsigned)(rnd(w) % OWN_KEYS);
		uint64_t token = ((uint64_t)(w->idx + 1) << 48) | ++w->seq;
		struct cfs_id128 id = cfs_chunk_id(l->inode, key);
		struct cfs_chunk_op op = {
			.kind = CFS_CHUNK_OP_WRITE,
			.chain_id = key_chain(l, key),
			.chunk = id,
			.chunk_size = CHUNK_SIZE,
			.len = CHUNK_LEN,
			.data = buf,
		};
		uint64_t ev, t_inv;
		int rc;

		fill(buf, token);
		atomic_fetch_add(&l->writes, 1);
		t_inv = now_ns();
		ev = hist_invoke(l, key, w->idx, LC_WRITE, token);
		cfs_chunk_batch(l->cc, &op, 1);
		rc = op.rc;
		oplog(l, t_inv, 'W', w->idx, key, token, rc, &op);
		if (rc == 0) {
			hist_complete(l, ev, LC_OK, 0);
			note_ack(l);
			if (key < NWRITERS * OWN_KEYS) {
				struct own_key *o = &l->own[key];

				/* One writer: each acknowledged write is the next version,
				 * or skips one per unknown write since the last ack. A
				 * bigger jump is a write applied twice (exactly-once). */
				if (op.version <= o->ver ||
				    (!o->overflow && op.version > o->ver + 1 + o->nunknown))
					FAIL("%s: key %u: write %016" PRIx64
					     " acknowledged as v%" PRIu64 " after v%" PRIu64
					     " with %u unknown writes between",
					     l->name, key, token, op.version, o->ver, o->nunknown);
				o->acked = token;
				o->ver = op.version;
				o->nunknown = 0;
				o->overflow = false;
			}
		} else {
			/* It may have taken effect: the checker may place it anywhere
			 * after its invocation. */
			hist_complete(l, ev, LC_UNKNOWN, 0);
			atomic_fetch_add(&l->unknowns, 1);
			atomic_store(&l->last_unknown_rc, rc);
			if (atomic_load(&l->refuse_failed_writes))
				FAIL("%s: writer %u key %u: write failed: %s", l->name, w->idx, key,
				     cfs_errname(rc));
			if (key < NWRITERS * OWN_KEYS) {
				struct own_key *o = &l->own[key];

				if (o->nunknown < MAX_UNKNOWN)
					o->unknown[o->nunknown++] = token;
				else
					o->overflow = true;
			}
		}
	}
	free(buf);
	return NULL;
}

/* One linearizable read through the client: 0 and *token (0: absent). */
static int
read_token(struct load *l, unsigned key, unsigned tid, uint64_t *token)
{
	static __thread uint8_t buf[CHUNK_LEN];
	struct cfs_chunk_op op = {
		.kind = CFS_CHUNK_OP_READ,
		.chain_id = key_chain(l, key),
		.chunk = cfs_chunk_id(l->inode, key),
		.len = CHUNK_LEN,
		.data = buf,
		.flags = g_read_flags,
	};
	uint64_t ev, t_inv = now_ns();
	int rc;

	*token = 0;
	atomic_fetch_add(&l->reads, 1);
	ev = hist_invoke(l, key, tid, LC_READ, 0);
	cfs_chunk_batch(l->cc, &op, 1);
	rc = op.rc;
	if (rc == -CFS_ENOCHUNK) {
		rc = 0;
	} else if (rc == 0 && !token_of(buf, op.out_len, token)) {
		FAIL("%s: key %u: read %u bytes (version %" PRIu64 ") that no write wrote", l->name,
		     key, op.out_len, op.version);
		rc = -EIO;
	}
	oplog(l, t_inv, 'R', tid, key, *token, rc, &op);
	if (rc == 0) {
		hist_complete(l, ev, LC_OK, *token);
		atomic_fetch_add(&l->reads_ok, 1);
	} else {
		/* a failed read has no effect */
		hist_complete(l, ev, LC_FAILED, 0);
		atomic_fetch_add(&l->reads_failed, 1);
	}
	return rc;
}

static void *
reader_main(void *arg)
{
	struct worker *w = arg;
	struct load *l = w->l;

	while (!atomic_load(&l->stop)) {
		uint64_t token;

		/* shared keys half the time: that is where reads race writes */
		unsigned key = rnd(w) % 2 ? NWRITERS * OWN_KEYS + (unsigned)(rnd(w) % SHARED_KEYS)
					  : (unsigned)(rnd(w) % (NWRITERS * OWN_KEYS));

		(void)read_token(l, key, w->idx, &token);
	}
	return NULL;
}

static void
load_run(struct load *l)
{
	pthread_mutex_lock(&l->mu);
	l->last_ack_ns = 0; /* a pause is not a gap */
	pthread_mutex_unlock(&l->mu);
	atomic_store(&l->stop, false);
	for (unsigned i = 0; i < NWRITERS + NREADERS; i++)
		pthread_create(&l->th[i], NULL, i < NWRITERS ? writer_main : reader_main, &l->w[i]);
	l->running = true;
}

static void
load_pause(struct load *l)
{
	atomic_store(&l->stop, true);
	if (l->running) {
		for (unsigned i = 0; i < NWRITERS + NREADERS; i++)
			pthread_join(l->th[i], NULL);
	}
	l->running = false;
}

static void
load_free(struct load *l)
{
	cfs_chunk_client_destroy(&l->cc);
	lc_history_free(l->h);
	l->h = NULL;
	if (l->oplog)
		fclose(l->oplog);
	l->oplog = NULL;
	pthread_mutex_destroy(&l->mu);
}

/* A client, a history and (with workers) the 16 writers and 4 readers. */
static int
load_start(struct load *l, const char *name, uint64_t inode, bool workers)
{
	struct cfs_chunk_client_opts o = {
		.mgmtd = g_mgmtd_ep, .loops = 2, .timeout_ms = 2000, .deadline_ms = 20000};
	struct cfs_routing_snap *s;
	char path[400];
	int rc;

	memset(l, 0, sizeof(*l));
	l->name = name;
	l->inode = inode;
	pthread_mutex_init(&l->mu, NULL);
	l->h = lc_history_new();
	if (!l->h) {
		pthread_mutex_destroy(&l->mu);
		return -ENOMEM;
	}
	snprintf(path, sizeof(path), "%s/ops-%" PRIu64 ".txt", g_dir, inode);
	l->oplog = fopen(path, "w");
	rc = cfs_chunk_client_create(&o, &l->cc);
	if (rc != 0) {
		FAIL("%s: chunk client: %s", name, cfs_errname(rc));
		load_free(l);
		return rc;
	}
	s = cfs_chunk_client_routing(l->cc);
	for (uint32_t i = 0; s && i < s->nchains && l->nchains < 16; i++)
		l->chains[l->nchains++] = s->chains[i].chain_id;
	cfs_routing_snap_put(&s);
	if (l->nchains == 0) {
		FAIL("%s: the client's routing has no chains", name);
		load_free(l);
		return -CFS_ENOCHAIN;
	}
	l->t0_ns = now_ns();
	for (unsigned i = 0; i < NWRITERS + NREADERS; i++)
		l->w[i] = (struct worker){.l = l, .idx = i, .rng = 0x9e3779b9ull * (i + 7) + inode};
	if (workers)
		load_run(l);
	return 0;
}

/* Wait until n acknowledgements (or GUARD_S). */
static void
load_wait_acks(struct load *l, uint64_t n, bool after_fault)
{
	uint64_t t0 = now_ns();

	while ((after_fault ? atomic_load(&l->acks_after_fault) : atomic_load(&l->acks)) < n) {
		if (now_ns() - t0 > GUARD_S * 1000000000ull) {
			FAIL("%s: waited %d s for %" PRIu64 " acknowledged writes%s", l->name,
			     GUARD_S, n, after_fault ? " after the fault" : "");
			return;
		}
		tp_sleep_ms(20);
	}
}

static void
load_mark_fault(struct load *l)
{
	atomic_store(&l->fault_ns, now_ns());
}

/*
 * Stop the workers, read every key back (recorded in the history), check the
 * acknowledged writes survived, and run the checker. Prints the summary.
 */
static void
load_finish(struct load *l)
{
	uint64_t stop_ns;
	char why[1024] = "";
	unsigned lost = 0, adopted = 0;
	bool found;
	int rc;

	stop_ns = now_ns();
	load_pause(l);
	if (!l->cc)
		goto out;
	for (unsigned key = 0; key < NKEYS; key++) {
		uint64_t token = 0;

		rc = read_token(l, key, VERIFY_TID, &token);
		if (rc != 0) {
			FAIL("%s: key %u: final read: %s", l->name, key, cfs_errname(rc));
			continue;
		}
		l->final[key] = token;
		if (key >= NWRITERS * OWN_KEYS || atomic_load(&l->writes) == 0)
			continue; /* shared: the checker judges; no writes: nothing to verify */
		if (token == l->own[key].acked)
			continue;
		found = false;
		for (unsigned u = 0; u < l->own[key].nunknown && !found; u++)
			found = l->own[key].unknown[u] == token;
		if (found) {
			adopted++; /* a later write whose outcome was unknown */
			continue;
		}
		if (l->own[key].overflow)
			continue; /* too many unknown writes to tell */
		lost++;
		FAIL("%s: key %u: reads back token %016" PRIx64 ", last acknowledged %016" PRIx64
		     " (%u later writes unknown)",
		     l->name, key, l->final[key], l->own[key].acked, l->own[key].nunknown);
	}
	rc = lc_check(l->h, why, sizeof(why));
	if (rc != 0) {
		char path[400];
		FILE *f;

		snprintf(path, sizeof(path), "%s/history-%" PRIu64 ".txt", g_dir, l->inode);
		f = fopen(path, "w");
		if (f) {
			lc_dump(l->h, f);
			fclose(f);
		}
		FAIL("%s: history %s (%d): %s; history in %s, operations with versions in "
		     "%s/ops-%" PRIu64 ".txt",
		     l->name, rc == -1 ? "not linearizable" : "undecided", rc, why, path, g_dir,
		     l->inode);
	}
	printf("cluster: %s: %.1f s, writes %" PRIu64 " (acked %" PRIu64 ", unknown %" PRIu64
	       "%s%s), reads %" PRIu64 " (ok %" PRIu64 ", failed %" PRIu64 "), longest gap "
	       "between acks %.0f ms (at +%.1f s), unknown writes found applied %u, lost %u, "
	       "linearizable: %s\n",
	       l->name, (double)(stop_ns - l->t0_ns) / 1e9, atomic_load(&l->writes),
	       atomic_load(&l->acks), atomic_load(&l->unknowns),
	       atomic_load(&l->unknowns) ? ", last error " : "",
	       atomic_load(&l->unknowns) ? cfs_errname(atomic_load(&l->last_unknown_rc)) : "",
	       atomic_load(&l->reads), atomic_load(&l->reads_ok), atomic_load(&l->reads_failed),
	       (double)l->max_gap_ns / 1e6,
	       l->max_gap_at_ns ? (double)(l->max_gap_at_ns - l->t0_ns) / 1e9 : 0.0, adopted, lost,
	       rc == 0 ? "yes" : "NO");
	if (atomic_load(&l->acks) == 0 && atomic_load(&l->writes) != 0)
		FAIL("%s: no write was acknowledged", l->name);
out:
	load_free(l);
}

/* ------------------------------------------------------------ scenarios */

static void
scenario_begin(const char *name)
{
	g_scen_failures = 0;
	printf("== %s\n", name);
}

static void
scenario_end(const char *name)
{
	printf("%s: %s\n", g_scen_failures ? "FAIL" : "PASS", name);
}

/* The node at position pos (head 0) of the first chain in a healthy routing,
 * and its role in every chain, for the log. */
static unsigned
member_node(unsigned pos, char *roles, size_t rlen)
{
	static const char *const names[NSTORAGE] = {"head", "middle", "tail"};
	struct cfs_routing_snap *s = wait_routing("chain healthy", healthy, NULL);
	unsigned n = 0;
	size_t o = 0;

	roles[0] = 0;
	if (s && pos < s->chains[0].count)
		n = s->chains[0].members[pos].node_id;
	for (uint32_t i = 0; s && i < s->nchains && o < rlen; i++) {
		for (uint32_t k = 0; k < s->chains[i].count && k < NSTORAGE && o < rlen; k++) {
			if (s->chains[i].members[k].node_id == n)
				o += (size_t)snprintf(roles + o, rlen - o, "%s%s of chain %" PRIu64,
						      o ? ", " : "", names[k],
						      s->chains[i].chain_id);
		}
	}
	cfs_routing_snap_put(&s);
	return n;
}

/* 1: writes reach every replica; every replica serves reads. */
static void
scenario_replicas(void)
{
	const char *name = "1. writes reach every replica, every replica serves reads";
	struct load l;
	struct cfs_routing_snap *s = NULL;
	bool seen[NNODES + 1] = {0};
	unsigned served = 0;
	uint8_t *buf = malloc(CHUNK_LEN);

	scenario_begin(name);
	if (load_start(&l, "scenario 1", 1, true) != 0)
		goto out;
	load_wait_acks(&l, 1000, false);
	load_pause(&l);
	compare_replicas("scenario 1");

	/* Each serving replica answers reads of its own, with the newest bytes
	 * (recorded in the same history). */
	s = routing_fetch();
	if (!s) {
		FAIL("scenario 1: no routing");
		goto out_load;
	}
	for (unsigned key = 0; key < NKEYS; key++) {
		const struct cfs_route_chain *c = cfs_routing_chain(s, key_chain(&l, key));
		uint64_t want = 0;

		if (!c || read_token(&l, key, VERIFY_TID, &want) != 0) {
			FAIL("scenario 1: key %u: no chain or no read", key);
			continue;
		}
		for (uint32_t r = 0; r < c->count; r++) {
			struct cfs_chunk_op op = {
				.kind = CFS_CHUNK_OP_READ,
				.chain_id = c->chain_id,
				.chunk = cfs_chunk_id(l.inode, key),
				.len = CHUNK_LEN,
				.data = buf,
				.flags = CFS_CHUNK_F_REPLICA,
				.replica = r,
			};
			uint64_t token = 0, ev;
			const struct cfs_route_target *t;

			ev = hist_invoke(&l, key, VERIFY_TID, LC_READ, 0);
			cfs_chunk_batch(l.cc, &op, 1);
			if (op.rc == 0 && !token_of(buf, op.out_len, &token))
				op.rc = -EIO;
			hist_complete(&l, ev,
				      op.rc == 0 || op.rc == -CFS_ENOCHUNK ? LC_OK : LC_FAILED,
				      token);
			if (op.rc == -CFS_ENOCHUNK && want == 0)
				continue;
			if (op.rc != 0) {
				FAIL("scenario 1: key %u replica %u: %s", key, r,
				     cfs_errname(op.rc));
				continue;
			}
			if (token != want)
				FAIL("scenario 1: key %u replica %u (target %u): token %016" PRIx64
				     ", newest %016" PRIx64,
				     key, r, op.target, token, want);
			if (op.target != c->members[r].target)
				FAIL("scenario 1: key %u: replica %u answered by target %u, "
				     "member %u is target %u",
				     key, r, op.target, r, c->members[r].target);
			t = cfs_routing_target(s, op.target);
			if (t && t->node_id <= NNODES && !seen[t->node_id]) {
				seen[t->node_id] = true;
				served++;
			}
		}
	}
	printf("cluster: scenario 1: reads served by %u distinct replicas\n", served);
	if (served != NSTORAGE)
		FAIL("scenario 1: reads served by %u replicas, want %u", served, NSTORAGE);
out_load:
	cfs_routing_snap_put(&s);
	load_finish(&l);
out:
	free(buf);
	scenario_end(name);
}

/* 4: restart node n; its target serves again; replicas identical. */
static void
scenario_restart(unsigned n, const char *after)
{
	char name[160];
	struct cfs_routing_snap *s;
	bool saw_syncing = false;
	uint64_t t0 = now_ns();
	int rc;

	snprintf(name, sizeof(name),
		 "4. restart node %u (after %s): serving again, replicas "
		 "identical",
		 n, after);
	scenario_begin(name);
	rc = node_start(n);
	if (rc != 0) {
		FAIL("restart node %u: %s", n, cfs_errname(rc));
		goto out;
	}
	/* Poll the target's state: syncing is seen when the copy takes a while. */
	while (now_ns() - t0 < GUARD_S * 1000000000ull) {
		s = routing_fetch();
		for (uint32_t t = 1; s && t <= TPN; t++) {
			if (target_state(s, n * 10 + t) == CFS_TS_SYNCING)
				saw_syncing = true;
		}
		if (s && healthy(s, NULL)) {
			cfs_routing_snap_put(&s);
			break;
		}
		cfs_routing_snap_put(&s);
		tp_sleep_ms(50);
	}
	s = wait_routing("chain healthy after the restart", healthy, NULL);
	if (!s)
		goto out;
	cfs_routing_snap_put(&s);
	printf("cluster: node %u's targets serving again after %.1f s (syncing %s)\n", n,
	       (double)(now_ns() - t0) / 1e9, saw_syncing ? "seen" : "not seen by polling");
	compare_replicas(name);
out:
	scenario_end(name);
}

/* 2, 3: kill -9 the member at position pos while writing. */
static void
scenario_kill(unsigned pos, const char *role, uint64_t inode)
{
	char name[160], roles[200];
	struct load l;
	unsigned n = member_node(pos, roles, sizeof(roles));
	uint64_t t_fault;

	snprintf(name, sizeof(name), "%s. kill -9 the %s (node %u) under load",
		 pos == 0 ? "2" : "3", role, n);
	scenario_begin(name);
	if (!n || load_start(&l, name, inode, true) != 0)
		goto out;
	load_wait_acks(&l, 500, false);
	load_mark_fault(&l);
	t_fault = now_ns();
	node_signal(n, SIGKILL);
	printf("cluster: killed node %u (%s) at +%.1f s\n", n, roles,
	       (double)(t_fault - l.t0_ns) / 1e9);
	/* writes resume on the shortened chain; then ~2 s more */
	load_wait_acks(&l, 100, true);
	printf("cluster: writes resumed %.1f s after the kill\n",
	       (double)(now_ns() - t_fault) / 1e9);
	tp_sleep_ms(2000);
	load_finish(&l);
out:
	scenario_end(name);
	if (n)
		scenario_restart(n, role);
}

static int
raw_read(cfs_addr_t addr, uint32_t target, uint64_t chain_id, uint32_t chain_ver,
	 const struct cfs_id128 *id, uint64_t *token, uint32_t *cur_ver)
{
	const struct cfs_chunk_io io = {.chunk = *id, .offset = 0, .len = CHUNK_LEN};
	struct rt_msg *req = NULL, *resp = NULL;
	const struct cfs_chunk_read_resp *r;
	uint8_t buf[CHUNK_LEN];
	int rc;

	if (cfs_chunk_read_msg(target, chain_id, chain_ver, &io, 1, &req) != 0)
		return -ENOMEM;
	rc = cfs_client_call(g_admin, addr, req, 2000, &resp);
	if (resp)
		*cur_ver = RT_BODY(resp, chunk_read_resp)->chain_ver;
	if (rc != 0)
		goto out;
	r = RT_BODY(resp, chunk_read_resp);
	rc = r->results_count == 1 ? r->results[0].rc : -CFS_EPROTO;
	if (rc != 0)
		goto out;
	if (resp->plen != r->results[0].len || resp->plen > CHUNK_LEN) {
		rc = -CFS_EPROTO;
		goto out;
	}
	rt_msg_payload_copy(resp, 0, buf, resp->plen);
	if (!token_of(buf, resp->plen, token))
		rc = -EIO;
out:
	rt_msg_free(&resp);
	return rc;
}

static int
raw_write(cfs_addr_t addr, uint32_t target, uint64_t chain_id, uint32_t chain_ver,
	  const struct cfs_id128 *id, uint64_t token)
{
	struct rt_buf *b = rt_buf_get(CHUNK_LEN);
	struct rt_msg *req = NULL, *resp = NULL;
	int rc;

	if (!b)
		return -ENOMEM;
	fill(b->data, token);
	rc = cfs_chunk_write_msg(target, id, CHUNK_SIZE, 0, b, 0, CHUNK_LEN, &req);
	rt_buf_put(&b);
	if (rc != 0)
		return rc;
	RT_BODY(req, chunk_write)->chain_id = chain_id;
	RT_BODY(req, chunk_write)->chain_ver = chain_ver;
	rc = cfs_client_call(g_admin, addr, req, 2000, &resp);
	rt_msg_free(&resp);
	return rc;
}

/* The head's fault of scenarios 5 and 8: stopped, or cut from the network. */
static void
head_fault(unsigned n, bool link, bool on)
{
	int rc;

	if (!link) {
		node_signal(n, on ? SIGSTOP : SIGCONT);
		return;
	}
	rc = tp_host_link(n, !on);
	if (rc != 0)
		FAIL("link of host %u %s: %s", n, on ? "down" : "up", cfs_errname(rc));
}

/*
 * 5: SIGSTOP the head past its lease; it must not act on its old chain version.
 * 8 (link): the same with the head's link cut instead (hosts mode): the node runs
 * on, cannot heartbeat, and must stop on its own when its lease lapses.
 */
static void
scenario_stop(bool link)
{
	const char *name = link ? "8. cut the head's link past its lease, write, restore it: no "
				  "stale acknowledgement, no stale read"
				: "5. SIGSTOP the head past its lease, write, SIGCONT: no stale "
				  "acknowledgement, no stale read";
	const char *tag = link ? "scenario 8" : "scenario 5";
	struct cfs_routing_snap *s = NULL;
	struct cfs_route_member head;
	uint64_t chain_id, newest[NKEYS], t0;
	uint32_t old_ver;
	unsigned n, probes = 0, refused = 0, newest_served = 0, wrote = 0;
	unsigned notserving = 0, stale = 0;
	int other_rc = 0, write_rc = 0;
	struct load l;

	scenario_begin(name);
	s = wait_routing("chain healthy", healthy, NULL);
	if (!s)
		goto out;
	head = s->chains[0].members[0];
	chain_id = s->chains[0].chain_id;
	old_ver = s->chains[0].chain_ver;
	n = head.node_id;
	cfs_routing_snap_put(&s);
	if (load_start(&l, tag, link ? 8 : 5, true) != 0)
		goto out;
	load_wait_acks(&l, 500, false);
	/* Everything written so far is what the stopped node may still hold. */
	head_fault(n, link, true);
	load_mark_fault(&l);
	printf("cluster: %s node %u (head, target %u, chain v%u)\n",
	       link ? "link down:" : "SIGSTOP", n, head.target, old_ver);
	s = wait_routing("stopped node marked down", node_down, &n);
	cfs_routing_snap_put(&s);
	atomic_store(&l.acks_after_fault, 0); /* count the writes made since it is down */
	/* Overwrite keys while it sleeps. */
	load_wait_acks(&l, 500, true);
	load_pause(&l);
	for (unsigned key = 0; key < NKEYS; key++) {
		if (read_token(&l, key, VERIFY_TID, &newest[key]) != 0)
			newest[key] = UINT64_MAX; /* unknown: any served value fails below */
	}
	head_fault(n, link, false);
	/* Right away, and for ~3 s while it learns the new routing: old chain
	 * version, straight to it. */
	t0 = now_ns();
	while (now_ns() - t0 < 3000000000ull) {
		for (unsigned key = 0; key < NKEYS; key++) {
			struct cfs_id128 id = cfs_chunk_id(l.inode, key);
			uint64_t token = 0;
			uint32_t cur = 0;
			int rc = raw_read(head.addr, head.target, chain_id, old_ver, &id, &token,
					  &cur);

			probes++;
			if (rc == -CFS_ENOCHUNK)
				token = 0, rc = 0;
			if (rc != 0) {
				refused++;
				if (rc == -CFS_ENOTSERVING)
					notserving++;
				else if (rc == -CFS_ESTALECHAIN)
					stale++;
				else
					other_rc = rc;
				continue;
			}
			if (token != newest[key])
				FAIL("%s: node %u served key %u token %016" PRIx64
				     " under chain v%u; newest is %016" PRIx64,
				     tag, n, key, token, old_ver, newest[key]);
			else
				newest_served++;
		}
		if (wrote < 20) {
			unsigned key = NWRITERS * OWN_KEYS + wrote % SHARED_KEYS;
			struct cfs_id128 id = cfs_chunk_id(l.inode, key);
			uint64_t token = (0xffffull << 48) | ++wrote;
			int rc = raw_write(head.addr, head.target, chain_id, old_ver, &id, token);

			if (rc == 0)
				FAIL("%s: node %u acknowledged a write under its old chain "
				     "v%u (key %u)",
				     tag, n, old_ver, key);
			else
				write_rc = rc;
		}
		tp_sleep_ms(50);
	}
	printf("cluster: %s: %u raw reads with chain v%u: %u refused (ENOTSERVING %u, "
	       "ESTALECHAIN %u, other %s), %u served the newest; %u raw writes refused "
	       "(last: %s)\n",
	       tag, probes, old_ver, refused, notserving, stale,
	       other_rc ? cfs_errname(other_rc) : "-", newest_served, wrote,
	       write_rc ? cfs_errname(write_rc) : "-");
	/* The history goes on: a little more load after the node is back. */
	load_run(&l);
	tp_sleep_ms(1000);
	load_finish(&l);
	s = wait_routing(link ? "chain healthy after the link is back"
			      : "chain healthy after SIGCONT",
			 healthy, NULL);
	cfs_routing_snap_put(&s);
	compare_replicas(tag);
out:
	scenario_end(name);
}

/* 6: restart mgmtd under load. */
static void
scenario_mgmtd(void)
{
	const char *name = "6. kill -9 and restart mgmtd under load: writes succeed, state intact";
	struct cfs_routing_snap *s;
	char before[2048], after[2048];
	struct load l;
	int rc;

	scenario_begin(name);
	s = wait_routing("chain healthy", healthy, NULL);
	if (!s)
		goto out;
	routing_describe(s, before, sizeof(before));
	cfs_routing_snap_put(&s);
	if (load_start(&l, "scenario 6", 6, true) != 0)
		goto out;
	atomic_store(&l.refuse_failed_writes, true);
	load_wait_acks(&l, 500, false);
	node_signal(1, SIGKILL);
	load_mark_fault(&l);
	rc = node_start(1);
	if (rc != 0)
		FAIL("restart mgmtd: %s", cfs_errname(rc));
	s = wait_routing("mgmtd back, every node up", nodes_up, NULL);
	cfs_routing_snap_put(&s);
	load_wait_acks(&l, 500, true);
	tp_sleep_ms(2000);
	load_finish(&l);
	s = wait_routing("chain healthy after the mgmtd restart", healthy, NULL);
	if (!s)
		goto out;
	routing_describe(s, after, sizeof(after));
	cfs_routing_snap_put(&s);
	if (strcmp(before, after) != 0)
		FAIL("scenario 6: state changed across the mgmtd restart:\n--- before\n%s--- "
		     "after\n%s",
		     before, after);
	else
		printf("cluster: scenario 6: chains and targets as before:\n%s", after);
out:
	scenario_end(name);
}

/* ---------------------------------------------------------------- main */

static int
setup(void)
{
	struct cfs_client_opts o = {.timeout_ms = 2000};
	struct cfs_routing_snap *s;
	char ep[64], desc[2048];
	int rc;

	rc = write_configs();
	if (rc != 0) {
		FAIL("configs: %s", cfs_errname(rc));
		return rc;
	}
	rc = cfs_client_create(&o, &g_admin);
	if (rc != 0) {
		FAIL("admin client: %s", cfs_errname(rc));
		return rc;
	}
	for (unsigned n = 1; n <= NNODES; n++) {
		snprintf(ep, sizeof(ep), "%s:%u", tp_host_addr(n), g_nodes[n].port);
		rc = net_add_peer(cfs_client_net(g_admin), n, ep);
		if (rc == 0)
			rc = node_start(n);
		if (rc != 0) {
			FAIL("node %u: %s", n, cfs_errname(rc));
			return rc;
		}
	}
	s = wait_routing("4 nodes up, 3 targets known", nodes_up, NULL);
	if (!s)
		return -ETIMEDOUT;
	cfs_routing_snap_put(&s);
	rc = create_chains();
	if (rc != 0) {
		FAIL("create-chains --replicas %u: %s", NSTORAGE, cfs_errname(rc));
		return rc;
	}
	s = wait_routing("chains serving", healthy, NULL);
	if (!s)
		return -ETIMEDOUT;
	routing_describe(s, desc, sizeof(desc));
	printf("%s", desc);
	cfs_routing_snap_put(&s);
	return 0;
}

int
main(void)
{
	const char *builddir = getenv("top_builddir");
	const char *base = getenv("TMPDIR");
	static char daemon_path[512];

	snprintf(daemon_path, sizeof(daemon_path), "%s/chainfsd", builddir ? builddir : ".");
	g_daemon = daemon_path;
	if (access(g_daemon, X_OK) != 0) {
		fprintf(stderr, "cluster: %s not built: skipped\n", g_daemon);
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Before any thread: it moves this process into a network namespace of its own. */
	if (tp_hosts_init(NNODES) < 0) {
		fprintf(stderr, "cluster: FAIL: CFS_TEST_HOSTS=1 and no hosts\n");
		return 1;
	}
	if (getenv("CLUSTER_RELAXED_READS") && atoi(getenv("CLUSTER_RELAXED_READS")))
		g_read_flags = CFS_CHUNK_F_RELAXED;
	rt_log_set_level(RT_LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_watchdog);
	alarm(WATCHDOG_S);
	/* A real file system: O_DIRECT and fdatasync must mean what they say. */
	snprintf(g_dir, sizeof(g_dir), "%s/cfs-cluster.XXXXXX", base ? base : "/var/tmp");
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		return 1;
	}
	printf("cluster: data and logs in %s\n", g_dir);
	if (setup() == 0) {
		scenario_replicas();
		scenario_kill(0, "head", 2);
		scenario_kill(NSTORAGE - 1, "tail", 3);
		scenario_kill(1, "middle", 4);
		scenario_stop(false);
		scenario_mgmtd();
		if (tp_hosts_on())
			scenario_stop(true);
		else
			printf("SKIP: 8. cut the head's link (hosts mode only)\n");
	}
	if (g_failures)
		dump_logs();
	stop_all();
	cfs_client_destroy(&g_admin);
	if (g_failures) {
		fprintf(stderr, "cluster: %d failures; data and logs kept in %s\n", g_failures,
			g_dir);
		return 1;
	}
	if (!getenv("KEEP"))
		tp_rm_rf(g_dir);
	printf("cluster: PASS\n");
	return 0;
}

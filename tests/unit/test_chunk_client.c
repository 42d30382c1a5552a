// SPDX-License-Identifier: MIT
/*
 * The routing-aware chunk client (src/client/chunk_client.c) against a real
 * cluster: one chainfsd running mgmtd and three storage nodes with two targets
 * each, separate processes on loopback ports, two chains of three replicas
 * built with MGMTD_CREATE_CHAINS. Covers the put/get round trip, a pipelined
 * batch of 64 writes and 64 reads over both chains, reads from each replica,
 * queries, asynchronous submission (cfs_chunk_submit) keeping a window of
 * operations full from its callbacks, input refused before anything is sent,
 * a remove whose retry finds the chunk gone (success: the lost first
 * attempt's doing), and a kill -9 of a chain's head node during which puts
 * and gets still succeed by retrying.
 *
 * The cluster is started once per TCase (unchecked fixture, in the parent);
 * each test (forked, CK_FORK) makes its own client. Waits poll with a hang
 * guard; nothing asserts on time. Needs $top_builddir/chainfsd (make check
 * sets top_builddir) or ./chainfsd.
 */
#define _GNU_SOURCE /* unshare, CLONE_NEWNS */
#include <check.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "chainfs/cluster.h"
#include "client/chunk_client.h"
#include "client/client.h"
#include "client/routing.h"
#include "client/targets.h"
#include "disk/disk.h"
#include "tests/proc.h"

#define NNODES	   4 /* node 1: mgmtd; 2..4: storage, two targets each */
#define NCHAINS	   2u
#define CHUNK_SIZE (256u << 10)
#define GUARD_S	   30.0 /* hang guard, not a performance bound */

static struct {
	char dir[256];
	char mgmtd[64];
	struct tp_proc node[NNODES + 1]; /* by id; [0] unused */
	const char *daemon;
	bool up;
} g;

/* ----------------------------------------------------------------- helpers */

static void
dump_logs(void)
{
	char line[1024];

	for (int n = 1; n <= NNODES; n++) {
		FILE *f = fopen(g.node[n].log, "r");

		fprintf(stderr, "---- %s\n", g.node[n].log);
		while (f && fgets(line, sizeof(line), f))
			fputs(line, stderr);
		if (f)
			fclose(f);
	}
}

static int
node_start(int n)
{
	struct tp_proc *p = &g.node[n];

	if (tp_proc_start(p, g.daemon, 0, NULL) != 0 || tp_proc_wait_serving(p, GUARD_S, 10) != 0) {
		p->pid = 0;
		return -ECHILD;
	}
	return 0;
}

static void
write_conf(int n, unsigned port, unsigned mport)
{
	char mgmtd_db[300];
	const uint32_t targets[] = {(uint32_t)n * 10 + 1, (uint32_t)n * 10 + 2};
	struct tp_conf c = {.id = (unsigned)n, .port = n == 1 ? mport : port};

	snprintf(mgmtd_db, sizeof(mgmtd_db), "%s/mgmtd.db", g.dir);
	if (n == 1) {
		c.loops = "1";
		c.mgmtd_db = mgmtd_db;
		c.heartbeat_ms = 200;
		c.lease_ms = 2000;
	} else {
		c.loops = "2";
		c.mgmtd = g.mgmtd;
		c.ntargets = 2;
		c.targets = targets;
		c.target_dir = g.dir;
		c.capacity = "64M";
	}
	ck_assert_int_eq(tp_conf_write(&g.node[n], &c), 0);
}

/* How many chains mgmtd's routing names (negative: the call failed). */
static int
chains_known(struct cfs_client *c, uint32_t alias)
{
	struct rt_msg *req = rt_msg_new(CFS_MSG_MGMTD_ROUTING), *resp = NULL;
	int rc;

	if (!req)
		return -ENOMEM;
	RT_BODY(req, mgmtd_routing)->flags = CFS_ROUTING_F_FULL;
	rc = cfs_client_call(c, CFS_ADDR(alias, CFS_LOCAL_MGMTD), req, 5000, &resp);
	if (rc == 0)
		rc = (int)RT_BODY(resp, mgmtd_routing_resp)->chains_count;
	rt_msg_free(&resp);
	return rc;
}

/* MGMTD_CREATE_CHAINS until routing names them (nodes may still be
 * registering; an answer lost to a timeout may still have built them). */
static int
create_chains(void)
{
	struct cfs_client *c = NULL;
	double t0 = tp_now_s();
	uint32_t alias;
	int rc;

	rc = cfs_client_create(NULL, &c);
	if (rc != 0)
		return rc;
	rc = cfs_client_connect(c, g.mgmtd, &alias);
	while (rc == 0 && chains_known(c, alias) < (int)NCHAINS) {
		if (tp_create_chains(c, CFS_ADDR(alias, CFS_LOCAL_MGMTD), 3, NCHAINS, 5000, NULL,
				     NULL, 0) == -ENOMEM) {
			rc = -ENOMEM;
			break;
		}
		if (tp_now_s() - t0 > GUARD_S)
			rc = -ETIMEDOUT;
		else
			tp_sleep_ms(50);
	}
	cfs_client_destroy(&c);
	return rc;
}

static void
cluster_up(void)
{
	const char *builddir = getenv("top_builddir");
	const char *base = getenv("TMPDIR");
	static char daemon[512];
	unsigned mport = tp_free_port();

	snprintf(daemon, sizeof(daemon), "%s/chainfsd", builddir ? builddir : ".");
	g.daemon = daemon;
	ck_assert_msg(access(daemon, X_OK) == 0, "%s not built", daemon);
	/* A real file system: targets use O_DIRECT, which tmpfs refuses. */
	snprintf(g.dir, sizeof(g.dir), "%s/cfs-chunk-client.XXXXXX", base ? base : "/var/tmp");
	ck_assert_ptr_nonnull(mkdtemp(g.dir));
	snprintf(g.mgmtd, sizeof(g.mgmtd), "127.0.0.1:%u", mport);
	for (int n = 1; n <= NNODES; n++) {
		snprintf(g.node[n].conf, sizeof(g.node[n].conf), "%s/n%d.conf", g.dir, n);
		snprintf(g.node[n].log, sizeof(g.node[n].log), "%s/n%d.log", g.dir, n);
		write_conf(n, tp_free_port(), mport);
	}
	for (int n = 1; n <= NNODES; n++) {
		if (node_start(n) != 0) {
			dump_logs();
			ck_abort_msg("node %d did not start", n);
		}
	}
	g.up = true;
	if (create_chains() != 0) {
		dump_logs();
		ck_abort_msg("create-chains failed");
	}
}

static void
cluster_down(void)
{
	tp_procs_stop(&g.node[1], NNODES);
	if (g.up && !getenv("KEEP"))
		tp_rm_rf(g.dir);
	g.up = false;
}

/* Every chain known and all its members serving. */
static bool
chains_serving(struct cfs_chunk_client *c)
{
	struct cfs_routing_snap *s = cfs_chunk_client_routing(c);
	bool ok = s && s->nchains == NCHAINS;

	for (uint32_t i = 0; ok && i < s->nchains; i++)
		ok = s->chains[i].count == 3 && cfs_route_chain_tail(&s->chains[i]) == 2;
	cfs_routing_snap_put(&s);
	return ok;
}

static struct cfs_chunk_client *
client_new_loops(unsigned loops)
{
	struct cfs_chunk_client_opts o = {.mgmtd = g.mgmtd, .loops = loops};
	struct cfs_chunk_client *c = NULL;
	double t0 = tp_now_s();

	ck_assert_int_eq(cfs_chunk_client_create(&o, &c), 0);
	while (!chains_serving(c)) {
		ck_assert_msg(tp_now_s() - t0 < GUARD_S, "chains not serving");
		tp_sleep_ms(20);
	}
	return c;
}

static struct cfs_chunk_client *
client_new(void)
{
	return client_new_loops(1);
}

static uint64_t
chain_id(struct cfs_chunk_client *c, unsigned i)
{
	struct cfs_routing_snap *s = cfs_chunk_client_routing(c);
	uint64_t id = s->chains[i].chain_id;

	cfs_routing_snap_put(&s);
	return id;
}

/* ------------------------------------------------------------------- tests */

START_TEST(test_chunk_client_put_get_round_trip_when_chain_serving)
{
	struct cfs_chunk_client *c = client_new();
	struct cfs_id128 id = cfs_chunk_id(1, 0);
	uint64_t chain = chain_id(c, 0), v1 = 0, v2 = 0, rv = 0;
	uint32_t len = 100000, got = 0;
	uint8_t *data = malloc(len), *back = malloc(len);

	tp_fill(data, len, 1);
	ck_assert_int_eq(cfs_chunk_put(c, chain, &id, CHUNK_SIZE, 0, data, len, &v1), 0);
	ck_assert_uint_gt(v1, 0);
	ck_assert_int_eq(cfs_chunk_get(c, chain, &id, 0, back, len, 0, &got, &rv), 0);
	ck_assert_uint_eq(got, len);
	ck_assert_uint_eq(rv, v1);
	ck_assert_mem_eq(back, data, len);
	/* A partial overwrite makes the next version; a read past the end is short. */
	tp_fill(data, 1000, 2);
	ck_assert_int_eq(cfs_chunk_put(c, chain, &id, CHUNK_SIZE, 5000, data, 1000, &v2), 0);
	ck_assert_uint_eq(v2, v1 + 1);
	ck_assert_int_eq(cfs_chunk_get(c, chain, &id, 5000, back, len, 0, &got, &rv), 0);
	ck_assert_uint_eq(got, len - 5000);
	ck_assert_uint_eq(rv, v2);
	ck_assert_mem_eq(back, data, 1000);
	/* Relaxed reads are served too. */
	ck_assert_int_eq(
		cfs_chunk_get(c, chain, &id, 5000, back, 1000, CFS_CHUNK_F_RELAXED, &got, NULL), 0);
	ck_assert_mem_eq(back, data, 1000);
	free(data);
	free(back);
	cfs_chunk_client_destroy(&c);
	ck_assert_ptr_null(c);
}
END_TEST

/* The node-local messages between nodectl and its storage actors are refused
 * when they come over a connection: a stray routing with a huge routing_ver
 * would otherwise outrank nodectl's for good and the target would refuse all
 * data; a stray report would be heartbeated to mgmtd as the target's state. */
START_TEST(test_chunk_client_node_local_messages_refused_when_sent_over_a_connection)
{
	struct cfs_chunk_client *cc = client_new();
	struct cfs_client *c = NULL;
	struct cfs_id128 id = cfs_chunk_id(1, 1);
	struct rt_msg *m, *resp = NULL;
	uint8_t data[5000], back[5000];
	uint32_t node, got = 0;
	cfs_addr_t addr;
	char ep[64];

	snprintf(ep, sizeof(ep), "127.0.0.1:%u", g.node[2].port);
	ck_assert_int_eq(cfs_client_create(NULL, &c), 0);
	ck_assert_int_eq(cfs_client_connect(c, ep, &node), 0);
	ck_assert_int_eq(cfs_target_find(c, node, 21, &addr), 0);
	m = rt_msg_new(CFS_MSG_NODE_TARGET_ROUTING);
	ck_assert_ptr_nonnull(m);
	RT_BODY(m, node_target_routing)->target = 21;
	RT_BODY(m, node_target_routing)->routing_ver = UINT64_MAX;
	ck_assert_int_eq(cfs_client_call(c, addr, m, 5000, &resp), -EPERM);
	rt_msg_free(&resp);
	m = rt_msg_new(CFS_MSG_NODE_TARGET_REPORT);
	ck_assert_ptr_nonnull(m);
	RT_BODY(m, node_target_report)->target = 21;
	RT_BODY(m, node_target_report)->local_state = CFS_LS_OFFLINE;
	ck_assert_int_eq(cfs_client_call(c, CFS_ADDR(node, CFS_LOCAL_NODECTL), m, 5000, &resp),
			 -EPERM);
	rt_msg_free(&resp);
	cfs_client_destroy(&c);
	/* Every chain still takes writes and serves reads. */
	tp_fill(data, sizeof(data), 3);
	for (unsigned i = 0; i < NCHAINS; i++) {
		uint64_t chain = chain_id(cc, i);

		ck_assert_int_eq(cfs_chunk_put(cc, chain, &id, CHUNK_SIZE, 0, data, sizeof(data), NULL),
				 0);
		ck_assert_int_eq(cfs_chunk_get(cc, chain, &id, 0, back, sizeof(back), 0, &got, NULL),
				 0);
		ck_assert_uint_eq(got, sizeof(data));
		ck_assert_mem_eq(back, data, sizeof(data));
	}
	cfs_chunk_client_destroy(&cc);
}
END_TEST

START_TEST(test_chunk_client_batch_runs_64_writes_and_reads_when_pipelined)
{
	enum { N = 64, LEN = 20000 };
	/* Two loops: the batch runs as two parts. */
	struct cfs_chunk_client *c = client_new_loops(2);
	struct cfs_chunk_op ops[N];
	uint8_t *data = malloc((size_t)N * LEN), *back = calloc(N, LEN);
	uint64_t chains[NCHAINS] = {chain_id(c, 0), chain_id(c, 1)};
	struct cfs_chunk_client_stats st0, st1;
	unsigned per_chain[NCHAINS] = {0};

	for (unsigned i = 0; i < N; i++) {
		uint64_t ch = cfs_chunk_client_place(c, 77, i, 0);

		per_chain[ch == chains[1]]++;
		ck_assert(ch == chains[0] || ch == chains[1]);
		tp_fill(data + (size_t)i * LEN, LEN, 100 + i);
		ops[i] = (struct cfs_chunk_op){
			.kind = CFS_CHUNK_OP_WRITE,
			.chain_id = ch,
			.chunk = cfs_chunk_id(2, i),
			.chunk_size = CHUNK_SIZE,
			.len = LEN - i,
			.data = data + (size_t)i * LEN,
		};
	}
	/* Placement spreads a file over both chains evenly. */
	ck_assert_uint_eq(per_chain[0], N / 2);
	ck_assert_int_eq(cfs_chunk_batch(c, ops, N), 0);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_int_eq(ops[i].rc, 0);
		ck_assert_uint_eq(ops[i].version, 1);
		ck_assert_uint_eq(ops[i].out_len, LEN - i);
		ck_assert_uint_ge(ops[i].attempts, 1);
	}
	for (unsigned i = 0; i < N; i++) {
		ops[i].kind = CFS_CHUNK_OP_READ;
		ops[i].len = LEN;
		ops[i].data = back + (size_t)i * LEN;
	}
	cfs_chunk_client_stats(c, &st0);
	ck_assert_int_eq(cfs_chunk_batch(c, ops, N), 0);
	cfs_chunk_client_stats(c, &st1);
	/* Reads of one target left together: 64 reads over 6 replicas in two
	 * parts take at most 12 requests when none was retried. */
	ck_assert_uint_eq(st1.ops - st0.ops, N);
	ck_assert_uint_eq(st1.retries, st0.retries);
	ck_assert_uint_le(st1.requests - st0.requests, 12);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_int_eq(ops[i].rc, 0);
		ck_assert_uint_eq(ops[i].out_len, LEN - i);
		ck_assert_uint_eq(ops[i].version, 1);
		ck_assert_mem_eq(back + (size_t)i * LEN, data + (size_t)i * LEN, LEN - i);
	}
	/* Queries: committed version, length, size class. */
	for (unsigned i = 0; i < N; i++)
		ops[i].kind = CFS_CHUNK_OP_QUERY;
	ck_assert_int_eq(cfs_chunk_batch(c, ops, N), 0);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_uint_eq(ops[i].out_len, LEN - i);
		ck_assert_uint_eq(ops[i].version, 1);
		ck_assert_uint_eq(ops[i].pending, 0);
		ck_assert_uint_eq(ops[i].out_chunk_size, CHUNK_SIZE);
	}
	free(data);
	free(back);
	cfs_chunk_client_destroy(&c);
}
END_TEST

START_TEST(test_chunk_client_lends_its_buffers_when_read_asks_to)
{
	enum { N = 8, LEN = 30000 };
	struct cfs_chunk_client *c = client_new();
	struct cfs_chunk_op ops[N];
	uint8_t *data = malloc((size_t)N * LEN);
	uint64_t chain = chain_id(c, 0);
	static uint8_t dst[16];

	for (unsigned i = 0; i < N; i++) {
		tp_fill(data + (size_t)i * LEN, LEN, 200 + i);
		ops[i] = (struct cfs_chunk_op){
			.kind = CFS_CHUNK_OP_WRITE,
			.chain_id = chain,
			.chunk = cfs_chunk_id(12, i),
			.chunk_size = CHUNK_SIZE,
			.len = LEN - 1000 * i,
			.data = data + (size_t)i * LEN,
		};
	}
	ck_assert_int_eq(cfs_chunk_batch(c, ops, N), 0);
	/* Reads of one replica arrive in one payload: each op gets its own bytes
	 * in it, checked, and a reference that outlives the batch. */
	for (unsigned i = 0; i < N; i++) {
		ops[i].kind = CFS_CHUNK_OP_READ;
		ops[i].len = LEN;
		ops[i].data = NULL;
		ops[i].flags = CFS_CHUNK_F_LEND;
	}
	ck_assert_int_eq(cfs_chunk_batch(c, ops, N), 0);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_int_eq(ops[i].rc, 0);
		ck_assert_uint_eq(ops[i].out_len, LEN - 1000 * i);
		ck_assert_ptr_nonnull(ops[i].out_data);
		ck_assert_ptr_nonnull(ops[i].out_lent);
		ck_assert_mem_eq(ops[i].out_data, data + (size_t)i * LEN, ops[i].out_len);
	}
	for (unsigned i = 0; i < N; i++) {
		cfs_chunk_op_release(&ops[i]);
		ck_assert_ptr_null(ops[i].out_data);
		ck_assert_ptr_null(ops[i].out_lent);
		cfs_chunk_op_release(&ops[i]); /* nothing held: a no-op */
	}
	/* Lending and a destination together: refused before sending. */
	ops[0].data = dst;
	ck_assert_int_eq(cfs_chunk_batch(c, ops, 1), -EINVAL);
	ck_assert_uint_eq(ops[0].attempts, 0);
	ck_assert_ptr_null(ops[0].out_lent);
	free(data);
	cfs_chunk_client_destroy(&c);
}
END_TEST

START_TEST(test_chunk_client_reads_each_replica_when_replica_flag_set)
{
	struct cfs_chunk_client *c = client_new();
	struct cfs_id128 id = cfs_chunk_id(3, 0);
	uint64_t chain = chain_id(c, 1);
	struct cfs_routing_snap *s = cfs_chunk_client_routing(c);
	const struct cfs_route_chain *ch = cfs_routing_chain(s, chain);
	uint8_t data[4096], back[4096];
	struct cfs_chunk_op op;

	tp_fill(data, sizeof(data), 3);
	ck_assert_int_eq(cfs_chunk_put(c, chain, &id, CHUNK_SIZE, 0, data, sizeof(data), NULL), 0);
	for (uint32_t r = 0; r < 3; r++) {
		memset(back, 0, sizeof(back));
		op = (struct cfs_chunk_op){
			.kind = CFS_CHUNK_OP_READ,
			.chain_id = chain,
			.chunk = id,
			.len = sizeof(back),
			.data = back,
			.flags = CFS_CHUNK_F_REPLICA,
			.replica = r,
		};
		ck_assert_int_eq(cfs_chunk_batch(c, &op, 1), 0);
		ck_assert_uint_eq(op.target, ch->members[r].target);
		ck_assert_mem_eq(back, data, sizeof(data));
	}
	/* No fourth replica: refused, not retried. */
	op.replica = 3;
	ck_assert_int_eq(cfs_chunk_batch(c, &op, 1), -CFS_ENOTSERVING);
	ck_assert_uint_eq(op.attempts, 0);
	cfs_routing_snap_put(&s);
	cfs_chunk_client_destroy(&c);
}
END_TEST

START_TEST(test_chunk_client_refuses_without_sending_when_input_bad)
{
	struct cfs_chunk_client *c = client_new();
	struct cfs_id128 id = cfs_chunk_id(4, 0), zero = {{0}};
	uint64_t chain = chain_id(c, 0);
	static uint8_t data[8192];
	struct cfs_chunk_op ops[3] = {
		{.kind = CFS_CHUNK_OP_WRITE,
		 .chain_id = chain,
		 .chunk = id,
		 .chunk_size = 4096,
		 .len = 4097,
		 .data = data},
		{.kind = CFS_CHUNK_OP_WRITE,
		 .chain_id = chain,
		 .chunk = zero,
		 .chunk_size = 4096,
		 .len = 1,
		 .data = data},
		{.kind = CFS_CHUNK_OP_WRITE,
		 .chain_id = chain,
		 .chunk = id,
		 .chunk_size = CHUNK_SIZE,
		 .len = 8192,
		 .data = data},
	};

	/* The bad ones fail alone; the good one in the same batch goes through. */
	ck_assert_int_eq(cfs_chunk_batch(c, ops, 3), -EINVAL);
	ck_assert_int_eq(ops[0].rc, -EINVAL);
	ck_assert_uint_eq(ops[0].attempts, 0);
	ck_assert_int_eq(ops[1].rc, -EINVAL);
	ck_assert_uint_eq(ops[1].attempts, 0);
	ck_assert_int_eq(ops[2].rc, 0);
	ck_assert_uint_eq(ops[2].attempts, 1);
	ck_assert_int_eq(cfs_chunk_put(c, chain, &id, 4096, 1, data, 4096, NULL), -EINVAL);
	/* A chunk nobody wrote: not retried. */
	id = cfs_chunk_id(4, 1);
	ops[0] = (struct cfs_chunk_op){
		.kind = CFS_CHUNK_OP_READ, .chain_id = chain, .chunk = id, .len = 10, .data = data};
	ck_assert_int_eq(cfs_chunk_batch(c, ops, 1), -CFS_ENOCHUNK);
	ck_assert_uint_eq(ops[0].attempts, 1);
	/* A chain routing never names. */
	ck_assert_int_eq(cfs_chunk_put(c, 999999, &id, 4096, 0, data, 10, NULL), -CFS_ENOCHAIN);
	cfs_chunk_client_destroy(&c);
}
END_TEST

START_TEST(test_chunk_client_truncates_and_removes_when_chain_replicates_them)
{
	struct cfs_chunk_client *c = client_new();
	struct cfs_id128 id = cfs_chunk_id(6, 0);
	uint64_t chain = chain_id(c, 1), v = 0;
	uint8_t data[10000], back[10000];
	struct cfs_chunk_op op;

	tp_fill(data, sizeof(data), 6);
	ck_assert_int_eq(cfs_chunk_put(c, chain, &id, CHUNK_SIZE, 0, data, sizeof(data), &v), 0);
	op = (struct cfs_chunk_op){.kind = CFS_CHUNK_OP_TRUNCATE,
				   .chain_id = chain,
				   .chunk = id,
				   .chunk_size = CHUNK_SIZE,
				   .len = 3000};
	ck_assert_int_eq(cfs_chunk_batch(c, &op, 1), 0);
	ck_assert_uint_eq(op.out_len, 3000);
	ck_assert_uint_eq(op.version, v + 1);
	/* Every replica holds the truncated chunk. */
	for (uint32_t r = 0; r < 3; r++) {
		op = (struct cfs_chunk_op){.kind = CFS_CHUNK_OP_READ,
					   .chain_id = chain,
					   .chunk = id,
					   .len = sizeof(back),
					   .data = back,
					   .flags = CFS_CHUNK_F_REPLICA,
					   .replica = r};
		ck_assert_int_eq(cfs_chunk_batch(c, &op, 1), 0);
		ck_assert_uint_eq(op.out_len, 3000);
		ck_assert_mem_eq(back, data, 3000);
	}
	op = (struct cfs_chunk_op){.kind = CFS_CHUNK_OP_REMOVE, .chain_id = chain, .chunk = id};
	ck_assert_int_eq(cfs_chunk_batch(c, &op, 1), 0);
	for (uint32_t r = 0; r < 3; r++) {
		op = (struct cfs_chunk_op){.kind = CFS_CHUNK_OP_QUERY,
					   .chain_id = chain,
					   .chunk = id,
					   .flags = CFS_CHUNK_F_REPLICA,
					   .replica = r};
		ck_assert_int_eq(cfs_chunk_batch(c, &op, 1), -CFS_ENOCHUNK);
	}
	cfs_chunk_client_destroy(&c);
}
END_TEST

/* One operation run by cfs_chunk_batch on a thread of its own. */
struct op_job {
	struct cfs_chunk_client *c;
	struct cfs_chunk_op op;
	int rc;
	atomic_bool done;
};

static void *
op_thread(void *arg)
{
	struct op_job *j = arg;

	j->rc = cfs_chunk_batch(j->c, &j->op, 1);
	atomic_store(&j->done, true);
	return NULL;
}

/* The state letter /proc gives for pid ('T': stopped), '?' when unknown. */
static char
proc_state(pid_t pid)
{
	char path[64], buf[256], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return '?';
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* SIGSTOP node's daemon and wait until /proc shows it stopped: kill()
 * returns before every thread has taken the stop. */
static void
node_stop(uint32_t node)
{
	ck_assert(kill(g.node[node].pid, SIGSTOP) == 0);
	for (unsigned n = 0; proc_state(g.node[node].pid) != 'T'; n++) {
		ck_assert_msg(n < 5000, "node %u never showed stopped", node); /* 10 s */
		tp_sleep_ms(2);
	}
}

static uint32_t head_node(struct cfs_chunk_client *c, uint64_t chain, uint64_t *routing_ver);

START_TEST(test_chunk_client_remove_succeeds_when_retry_finds_chunk_gone)
{
	struct cfs_chunk_client_opts o = {.mgmtd = g.mgmtd, .timeout_ms = 200};
	struct cfs_chunk_client *c = client_new(), *fast = NULL;
	struct cfs_chunk_client_stats st = {0};
	struct op_job j = {0};
	uint64_t chain = chain_id(c, 1), rv;
	pthread_t th;
	uint32_t node;

	/* A first attempt that finds no chunk: final, -CFS_ENOCHUNK. */
	j.op = (struct cfs_chunk_op){
		.kind = CFS_CHUNK_OP_REMOVE, .chain_id = chain, .chunk = cfs_chunk_id(8, 1)};
	ck_assert_int_eq(cfs_chunk_batch(c, &j.op, 1), -CFS_ENOCHUNK);
	ck_assert_uint_eq(j.op.attempts, 1);

	/* The head stops: the first attempt times out (it may still be applied
	 * when the head goes on: its answer is lost), the retry finds no chunk,
	 * which is then most likely the first attempt's doing: success. The
	 * scene needs the head the client sends to to be the one stopped; a
	 * chain that moved meanwhile (an earlier test's node back from a pause)
	 * answers the first attempt instead: set up again, up to three times. */
	ck_assert_int_eq(cfs_chunk_client_create(&o, &fast), 0);
	for (unsigned try = 0; try < 3 && st.retries == 0; try++) {
		double t1 = tp_now_s();
		char state;

		/* The head as the client that removes sees it (its fresh routing). */
		node = head_node(fast, chain, &rv);
		ck_assert_uint_ge(node, 2);
		j.c = fast;
		j.op = (struct cfs_chunk_op){.kind = CFS_CHUNK_OP_REMOVE,
					     .chain_id = chain,
					     .chunk = cfs_chunk_id(8, 2 + try)};
		atomic_store(&j.done, false);
		node_stop(node);
		ck_assert_int_eq(pthread_create(&th, NULL, op_thread, &j), 0);
		do {
			tp_sleep_ms(20);
			cfs_chunk_client_stats(fast, &st);
		} while (st.retries == 0 && !atomic_load(&j.done) && tp_now_s() - t1 < GUARD_S);
		state = proc_state(g.node[node].pid);
		/* Go on with the node whatever happened: the next tests need it. */
		ck_assert(kill(g.node[node].pid, SIGCONT) == 0);
		ck_assert_int_eq(pthread_join(th, NULL), 0);
		cfs_chunk_client_stats(fast, &st);
		if (st.retries == 0)
			fprintf(stderr,
				"remove ended rc=%d after %u attempt(s) in %.2f s at target %u, "
				"node %u in state %c (routing_ver %llu): setting up again\n",
				j.op.rc, (unsigned)j.op.attempts, tp_now_s() - t1,
				(unsigned)j.op.target, (unsigned)node, state,
				(unsigned long long)rv);
	}
	ck_assert_msg(st.retries != 0, "no retry (the remove ended rc=%d after %u attempts)",
		      j.op.rc, (unsigned)j.op.attempts);
	ck_assert_int_eq(j.rc, 0);
	ck_assert_int_eq(j.op.rc, 0);
	ck_assert_uint_ge(j.op.attempts, 2);
	ck_assert_uint_eq(j.op.version, 0); /* answered to the lost attempt */
	cfs_chunk_client_destroy(&fast);
	cfs_chunk_client_destroy(&c);
}
END_TEST

/* MGMTD_OFFLINE_TARGET (undo: back online) of `target`. */
static int
offline_target(uint32_t target, bool undo)
{
	struct cfs_client *c = NULL;
	struct rt_msg *req, *resp = NULL;
	uint32_t alias;
	int rc;

	rc = cfs_client_create(NULL, &c);
	if (rc != 0)
		return rc;
	rc = cfs_client_connect(c, g.mgmtd, &alias);
	req = rc == 0 ? rt_msg_new(CFS_MSG_MGMTD_OFFLINE_TARGET) : NULL;
	if (req) {
		RT_BODY(req, mgmtd_offline_target)->target = target;
		RT_BODY(req, mgmtd_offline_target)->undo = undo;
		rc = cfs_client_call(c, CFS_ADDR(alias, CFS_LOCAL_MGMTD), req, 5000, &resp);
	} else if (rc == 0) {
		rc = -ENOMEM;
	}
	rt_msg_free(&resp);
	cfs_client_destroy(&c);
	return rc;
}

START_TEST(test_chunk_client_follows_chain_when_its_version_moves)
{
	enum { N = 8, LEN = 4096 };
	struct cfs_chunk_client *c = client_new();
	uint64_t chain = chain_id(c, 0);
	struct cfs_routing_snap *s = cfs_chunk_client_routing(c);
	const struct cfs_route_chain *ch = cfs_routing_chain(s, chain);
	uint32_t head = ch->members[0].target, ver0 = ch->chain_ver;
	uint8_t data[N][LEN], back[LEN];
	struct cfs_chunk_op ops[N];

	cfs_routing_snap_put(&s);
	for (unsigned i = 0; i < N; i++) {
		tp_fill(data[i], LEN, 800 + i);
		ops[i] = (struct cfs_chunk_op){.kind = CFS_CHUNK_OP_WRITE,
					       .chain_id = chain,
					       .chunk = cfs_chunk_id(8, i),
					       .chunk_size = CHUNK_SIZE,
					       .len = LEN,
					       .data = data[i]};
	}
	ck_assert_int_eq(cfs_chunk_batch(c, ops, N), 0);
	/* Take the head out: the chain's version moves and its old head
	 * refuses; writes sent with the old version are refused as stale and
	 * retried against the new head. */
	ck_assert_int_eq(offline_target(head, false), 0);
	for (unsigned i = 0; i < N; i++)
		tp_fill(data[i], LEN, 900 + i);
	ck_assert_int_eq(cfs_chunk_batch(c, ops, N), 0);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_uint_eq(ops[i].version, 2);
		ck_assert_uint_ne(ops[i].target, head);
	}
	s = cfs_chunk_client_routing(c);
	ch = cfs_routing_chain(s, chain);
	ck_assert_uint_gt(ch->chain_ver, ver0);
	ck_assert_uint_ne(ch->members[0].target, head);
	cfs_routing_snap_put(&s);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_int_eq(
			cfs_chunk_get(c, chain, &ops[i].chunk, 0, back, LEN, 0, NULL, NULL), 0);
		ck_assert_mem_eq(back, data[i], LEN);
	}
	/* Back in: it resyncs and serves again (the next test waits for that). */
	ck_assert_int_eq(offline_target(head, true), 0);
	cfs_chunk_client_destroy(&c);
}
END_TEST

/* Flip every byte of target's size class file slots-<cls>.dat (each
 * checksum test writes chunks of a class no other test uses: 16K, 64K). */
static void
corrupt_class(uint32_t target, const char *cls)
{
	char path[400];
	uint8_t buf[65536];
	ssize_t n;
	off_t off = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/t%u/slots-%s.dat", g.dir, target, cls);
	fd = open(path, O_RDWR);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			buf[i] ^= 0x5a;
		ck_assert_int_eq(pwrite(fd, buf, (size_t)n, off), n);
		off += n;
	}
	ck_assert_int_gt(off, 0);
	fsync(fd);
	close(fd);
}

START_TEST(test_chunk_client_reads_a_good_replica_when_others_fail_checksum)
{
	struct cfs_chunk_client *c = client_new();
	struct cfs_id128 id = cfs_chunk_id(11, 0);
	uint64_t chain = chain_id(c, 1);
	struct cfs_routing_snap *s = cfs_chunk_client_routing(c);
	const struct cfs_route_chain *ch = cfs_routing_chain(s, chain);
	uint32_t t[3] = {ch->members[0].target, ch->members[1].target, ch->members[2].target};
	uint8_t data[12000], back[12000];
	struct cfs_chunk_op op;

	cfs_routing_snap_put(&s);
	tp_fill(data, sizeof(data), 11);
	ck_assert_int_eq(cfs_chunk_put(c, chain, &id, 16384, 0, data, sizeof(data), NULL), 0);
	/* Two replicas hold bad bytes: a read finds the third, whichever it
	 * tries first. */
	corrupt_class(t[0], "16K");
	corrupt_class(t[1], "16K");
	for (unsigned k = 0; k < 3; k++) {
		memset(back, 0, sizeof(back));
		op = (struct cfs_chunk_op){.kind = CFS_CHUNK_OP_READ,
					   .chain_id = chain,
					   .chunk = id,
					   .len = sizeof(back),
					   .data = back};
		ck_assert_int_eq(cfs_chunk_batch(c, &op, 1), 0);
		ck_assert_uint_eq(op.target, t[2]);
		ck_assert_mem_eq(back, data, sizeof(data));
	}
	/* Asked for a bad replica by index: its error, no other replica. */
	op.flags = CFS_CHUNK_F_REPLICA;
	op.replica = 1;
	ck_assert_int_eq(cfs_chunk_batch(c, &op, 1), -CFS_ECHECKSUM);
	ck_assert_uint_eq(op.attempts, 1);
	/* All bad: every replica tried once, then the error. */
	corrupt_class(t[2], "16K");
	op.flags = 0;
	ck_assert_int_eq(cfs_chunk_batch(c, &op, 1), -CFS_ECHECKSUM);
	ck_assert_uint_eq(op.attempts, 3);
	cfs_chunk_client_destroy(&c);
}
END_TEST

/* A replica that answered bad bytes is not asked again by that read: with
 * two bad replicas and the good one stopped for a while, the read keeps
 * asking the good one until it answers. Before, every ECHECKSUM answer
 * counted, the same replica's again too, and the read failed with
 * ECHECKSUM after three of them while a good copy existed. */
START_TEST(test_chunk_client_read_waits_for_slow_good_replica_when_others_fail_checksum)
{
	struct cfs_chunk_client_opts o = {.mgmtd = g.mgmtd, .timeout_ms = 100};
	struct cfs_chunk_client *c = client_new(), *fast = NULL;
	struct cfs_id128 id = cfs_chunk_id(40, 0);
	uint64_t chain = chain_id(c, 0);
	struct cfs_routing_snap *s = cfs_chunk_client_routing(c);
	const struct cfs_route_chain *ch = cfs_routing_chain(s, chain);
	uint32_t t[3] = {ch->members[0].target, ch->members[1].target, ch->members[2].target};
	struct cfs_chunk_client_stats st;
	static uint8_t data[40000], back[40000];
	struct op_job j = {0};
	double t0 = tp_now_s();
	pthread_t th;

	cfs_routing_snap_put(&s);
	tp_fill(data, sizeof(data), 40);
	ck_assert_int_eq(cfs_chunk_put(c, chain, &id, 65536, 0, data, sizeof(data), NULL), 0);
	corrupt_class(t[0], "64K");
	corrupt_class(t[1], "64K");
	ck_assert_int_eq(cfs_chunk_client_create(&o, &fast), 0);
	j.c = fast;
	j.op = (struct cfs_chunk_op){.kind = CFS_CHUNK_OP_READ,
				     .chain_id = chain,
				     .chunk = id,
				     .len = 40000,
				     .data = back};
	/* The good replica's node stops until the read has made six attempts of
	 * 100 ms at most, or ended: well inside its lease (2 s), so that the
	 * chains stay as they are for the tests that follow. */
	node_stop(t[2] / 10);
	ck_assert_int_eq(pthread_create(&th, NULL, op_thread, &j), 0);
	do {
		tp_sleep_ms(5);
		cfs_chunk_client_stats(fast, &st);
	} while (st.retries < 5 && st.failed == 0 && tp_now_s() - t0 < GUARD_S);
	ck_assert(kill(g.node[t[2] / 10].pid, SIGCONT) == 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_msg(j.rc == 0, "read: %s after %u attempts", cfs_errname(j.rc), j.op.attempts);
	ck_assert_uint_eq(j.op.target, t[2]);
	ck_assert_mem_eq(back, data, sizeof(data));
	cfs_chunk_client_destroy(&fast);
	cfs_chunk_client_destroy(&c);
}
END_TEST

/* 16 threads share one client of two loops, each writing and reading back
 * its own chunks on both chains. */
enum { NTHREADS = 16, ROUNDS = 12, TLEN = 6000 };

struct worker {
	struct cfs_chunk_client *c;
	unsigned n;
	int failures;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t data[TLEN], back[TLEN];

	for (unsigned r = 0; r < ROUNDS; r++) {
		struct cfs_id128 id = cfs_chunk_id(10 + w->n, r % 4);
		uint64_t chain = cfs_chunk_client_place(w->c, w->n, r % 4, 0);
		uint32_t got = 0;

		tp_fill(data, TLEN, (uint64_t)w->n << 16 | r);
		if (cfs_chunk_put(w->c, chain, &id, CHUNK_SIZE, 0, data, TLEN, NULL) != 0 ||
		    cfs_chunk_get(w->c, chain, &id, 0, back, TLEN, 0, &got, NULL) != 0 ||
		    got != TLEN || memcmp(back, data, TLEN) != 0)
			w->failures++;
	}
	return NULL;
}

START_TEST(test_chunk_client_serves_16_threads_when_they_share_it)
{
	struct cfs_chunk_client *c = client_new_loops(2);
	struct worker w[NTHREADS];
	pthread_t th[NTHREADS];

	for (unsigned i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){.c = c, .n = i};
		ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(w[i].failures, 0);
	}
	cfs_chunk_client_destroy(&c);
}
END_TEST

/* cfs_chunk_submit: a window of W slots, each refilled from its own done
 * callback, until TOTAL ops have run; every callback checks its op. */
enum { AW = 8, ATOTAL = 96, ALEN = 30000 };

struct async_run {
	struct cfs_chunk_client *c;
	enum cfs_chunk_op_kind kind;
	struct cfs_chunk_op ops[AW];
	uint8_t *data; /* ATOTAL * ALEN: what op i writes */
	uint8_t *back; /* AW * ALEN: each slot's read destination */
	unsigned next; /* atomic: the next op index to start */
	unsigned ended;
	unsigned failures;
	unsigned active;
	bool on_caller; /* a callback ran on the submitting thread */
	pthread_t caller;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void async_slot_start(struct async_run *r, unsigned slot, unsigned i);

static void
async_slot_done(void *arg, struct cfs_chunk_op *ops, unsigned n)
{
	struct async_run *r = arg;
	unsigned slot = (unsigned)(ops - r->ops), i = (unsigned)ops[0].chunk.b[15];
	bool ok = n == 1 && ops[0].rc == 0 && ops[0].out_len == ALEN - i;
	unsigned next;

	if (ok && r->kind == CFS_CHUNK_OP_READ)
		ok = memcmp(r->back + (size_t)slot * ALEN, r->data + (size_t)i * ALEN, ALEN - i) == 0;
	if (pthread_equal(pthread_self(), r->caller))
		r->on_caller = true;
	if (!ok)
		__atomic_add_fetch(&r->failures, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&r->ended, 1, __ATOMIC_RELAXED);
	next = __atomic_fetch_add(&r->next, 1, __ATOMIC_RELAXED);
	if (next < ATOTAL) {
		async_slot_start(r, slot, next);
		return;
	}
	pthread_mutex_lock(&r->mu);
	r->active--;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void
async_slot_start(struct async_run *r, unsigned slot, unsigned i)
{
	struct cfs_chunk_op *op = &r->ops[slot];

	*op = (struct cfs_chunk_op){
		.kind = r->kind,
		.chain_id = cfs_chunk_client_place(r->c, 5, i, 0),
		.chunk = cfs_chunk_id(30, i),
		.chunk_size = CHUNK_SIZE,
		.len = r->kind == CFS_CHUNK_OP_WRITE ? ALEN - i : ALEN,
		.data = r->kind == CFS_CHUNK_OP_WRITE ? r->data + (size_t)i * ALEN
						      : r->back + (size_t)slot * ALEN,
	};
	/* The op index rides in the id's last byte (cfs_chunk_id: the chunk
	 * index big-endian in the second half; ATOTAL < 256). */
	if (cfs_chunk_submit(r->c, op, 1, async_slot_done, r) != 0) {
		__atomic_add_fetch(&r->failures, 1, __ATOMIC_RELAXED);
		pthread_mutex_lock(&r->mu);
		r->active--;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
}

static void
async_run_all(struct async_run *r, enum cfs_chunk_op_kind kind)
{
	double t0 = tp_now_s();

	r->kind = kind;
	r->next = AW;
	r->ended = 0;
	r->active = AW;
	for (unsigned slot = 0; slot < AW; slot++)
		async_slot_start(r, slot, slot);
	pthread_mutex_lock(&r->mu);
	while (r->active > 0) {
		pthread_mutex_unlock(&r->mu);
		ck_assert_msg(tp_now_s() - t0 < GUARD_S, "async window did not drain");
		tp_sleep_ms(5);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	ck_assert_uint_eq(r->failures, 0);
	ck_assert_uint_eq(__atomic_load_n(&r->ended, __ATOMIC_RELAXED), ATOTAL);
}

static void
async_count_done(void *arg, struct cfs_chunk_op *ops, unsigned n)
{
	unsigned *calls = arg;

	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(ops[0].rc, -EINVAL);
	ck_assert_int_eq(ops[1].rc, -EINVAL);
	__atomic_add_fetch(calls, 1, __ATOMIC_RELEASE);
}

struct reads_done {
	unsigned calls; /* atomic */
	unsigned ok;
};

static void
reads_done(void *arg, struct cfs_chunk_op *ops, unsigned n)
{
	struct reads_done *d = arg;

	for (unsigned i = 0; i < n; i++)
		d->ok += ops[i].rc == 0;
	__atomic_add_fetch(&d->calls, 1, __ATOMIC_RELEASE);
}

START_TEST(test_chunk_client_submit_refills_its_window_when_callbacks_resubmit)
{
	struct async_run *r = calloc(1, sizeof(*r));
	struct cfs_chunk_op bad[2] = {
		{.kind = CFS_CHUNK_OP_READ, .chain_id = 1, .len = 10}, /* zero chunk id */
		{.kind = CFS_CHUNK_OP_WRITE, .chain_id = 1, .chunk = cfs_chunk_id(1, 1)}, /* no data */
	};
	unsigned calls = 0;
	double t0;

	r->c = client_new_loops(2);
	r->caller = pthread_self();
	r->data = malloc((size_t)ATOTAL * ALEN);
	r->back = malloc((size_t)AW * ALEN);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	ck_assert_uint_eq(cfs_chunk_id(30, 77).b[15], 77);
	for (unsigned i = 0; i < ATOTAL; i++)
		tp_fill(r->data + (size_t)i * ALEN, ALEN, 300 + i);

	async_run_all(r, CFS_CHUNK_OP_WRITE);
	async_run_all(r, CFS_CHUNK_OP_READ);
	ck_assert(!r->on_caller);

	/* Bad arguments: refused, no callback. */
	ck_assert_int_eq(cfs_chunk_submit(r->c, bad, 0, async_count_done, &calls), -EINVAL);
	ck_assert_int_eq(cfs_chunk_submit(r->c, bad, 2, NULL, NULL), -EINVAL);
	/* Every op failing its checks still ends with one callback, on a loop. */
	ck_assert_int_eq(cfs_chunk_submit(r->c, bad, 2, async_count_done, &calls), 0);
	t0 = tp_now_s();
	while (__atomic_load_n(&calls, __ATOMIC_ACQUIRE) == 0) {
		ck_assert_msg(tp_now_s() - t0 < GUARD_S, "no callback");
		tp_sleep_ms(2);
	}
	tp_sleep_ms(50);
	ck_assert_uint_eq(__atomic_load_n(&calls, __ATOMIC_ACQUIRE), 1);

	/* Destroyed with reads under way: it waits for their done, which runs
	 * once, with every read ended (before, the client was freed under them). */
	{
		struct cfs_chunk_op ops[ATOTAL];
		struct reads_done d = {0};

		for (unsigned i = 0; i < ATOTAL; i++)
			ops[i] = (struct cfs_chunk_op){
				.kind = CFS_CHUNK_OP_READ,
				.chain_id = cfs_chunk_client_place(r->c, 5, i, 0),
				.chunk = cfs_chunk_id(30, i),
				.len = ALEN,
				.data = r->data + (size_t)i * ALEN,
			};
		ck_assert_int_eq(cfs_chunk_submit(r->c, ops, ATOTAL, reads_done, &d), 0);
		cfs_chunk_client_destroy(&r->c);
		ck_assert_uint_eq(__atomic_load_n(&d.calls, __ATOMIC_ACQUIRE), 1);
		ck_assert_uint_eq(d.ok, ATOTAL);
	}
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r->data);
	free(r->back);
	free(r);
}
END_TEST

/* The node of chain `chain`'s head. */
static uint32_t
head_node(struct cfs_chunk_client *c, uint64_t chain, uint64_t *routing_ver)
{
	struct cfs_routing_snap *s = cfs_chunk_client_routing(c);
	const struct cfs_route_chain *ch = cfs_routing_chain(s, chain);
	uint32_t node = ch && cfs_route_chain_head(ch) == 0 ? ch->members[0].node_id : 0;

	*routing_ver = s->routing_ver;
	cfs_routing_snap_put(&s);
	return node;
}

START_TEST(test_chunk_client_retries_until_served_when_head_killed)
{
	enum { N = 16, LEN = 8192 };
	struct cfs_chunk_client *c = client_new();
	struct cfs_id128 id = cfs_chunk_id(5, 0);
	uint64_t chain = chain_id(c, 0), ver_before, ver_mid, ver_after, v = 0;
	uint8_t data[LEN], back[N][LEN], many[N][LEN];
	struct cfs_chunk_op ops[N];
	uint32_t node, attempts = 0, got = 0;

	tp_fill(data, LEN, 5);
	ck_assert_int_eq(cfs_chunk_put(c, chain, &id, CHUNK_SIZE, 0, data, LEN, NULL), 0);
	for (unsigned i = 0; i < N; i++) {
		tp_fill(many[i], LEN, 600 + i);
		ops[i] = (struct cfs_chunk_op){
			.kind = CFS_CHUNK_OP_WRITE,
			.chain_id = chain,
			.chunk = cfs_chunk_id(5, 1 + i),
			.chunk_size = CHUNK_SIZE,
			.len = LEN,
			.data = many[i],
		};
	}
	ck_assert_int_eq(cfs_chunk_batch(c, ops, N), 0);
	node = head_node(c, chain, &ver_before);
	ck_assert_uint_ge(node, 2);
	ck_assert(kill(g.node[node].pid, SIGKILL) == 0);

	/* Reads right away: those spread to the dead head fail over to the
	 * other replicas (unless routing already moved it away). */
	for (unsigned i = 0; i < N; i++) {
		ops[i].kind = CFS_CHUNK_OP_READ;
		ops[i].data = back[i];
	}
	ck_assert_int_eq(cfs_chunk_batch(c, ops, N), 0);
	head_node(c, chain, &ver_mid);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_mem_eq(back[i], many[i], LEN);
		attempts += ops[i].attempts;
	}
	ck_assert(attempts > N || ver_mid > ver_before);

	/* Writes to the dead head fail until mgmtd moves it to the end (one
	 * lease, 2 s); the client retries through that. */
	attempts = 0;
	for (unsigned i = 0; i < N; i++) {
		tp_fill(many[i], LEN, 700 + i);
		ops[i].kind = CFS_CHUNK_OP_WRITE;
		ops[i].data = many[i];
	}
	ck_assert_int_eq(cfs_chunk_batch(c, ops, N), 0);
	for (unsigned i = 0; i < N; i++) {
		attempts += ops[i].attempts;
		ck_assert_uint_eq(ops[i].version, 2);
	}
	tp_fill(data, LEN, 6);
	ck_assert_int_eq(cfs_chunk_put(c, chain, &id, CHUNK_SIZE, 0, data, LEN, &v), 0);
	ck_assert_uint_eq(v, 2);
	ck_assert_uint_ne(head_node(c, chain, &ver_after), node);
	/* Either some write needed more than one attempt or routing had moved
	 * before they were sent. */
	ck_assert(attempts > N || ver_mid > ver_before);
	ck_assert_uint_gt(ver_after, ver_before);

	/* Reads: spread over what serves now, every one answers. */
	for (unsigned i = 0; i < 8; i++) {
		memset(back[0], 0, LEN);
		ck_assert_int_eq(cfs_chunk_get(c, chain, &id, 0, back[0], LEN, 0, &got, &v), 0);
		ck_assert_uint_eq(got, LEN);
		ck_assert_uint_eq(v, 2);
		ck_assert_mem_eq(back[0], data, LEN);
	}
	for (unsigned i = 0; i < N; i++) {
		ops[i].kind = CFS_CHUNK_OP_READ;
		ops[i].data = back[i];
	}
	ck_assert_int_eq(cfs_chunk_batch(c, ops, N), 0);
	for (unsigned i = 0; i < N; i++)
		ck_assert_mem_eq(back[i], many[i], LEN);
	cfs_chunk_client_destroy(&c);
}
END_TEST

/* A query asks the chain's tail, naming the chain version: the tail alone
 * knows every committed version, and one that left the chain (or whose lease
 * ran out) refuses instead of answering what it held. Before, queries were
 * spread over the replicas like reads, without a chain version. */
START_TEST(test_chunk_client_query_answered_by_tail)
{
	enum { N = 8 };
	struct cfs_chunk_client *c = client_new();
	uint64_t chain = chain_id(c, 1);
	struct cfs_routing_snap *s = cfs_chunk_client_routing(c);
	const struct cfs_route_chain *ch = cfs_routing_chain(s, chain);
	uint32_t tail = ch->members[cfs_route_chain_tail(ch)].target;
	static uint8_t data[4096];
	struct cfs_chunk_op q[N];

	cfs_routing_snap_put(&s);
	tp_fill(data, sizeof(data), 31);
	for (unsigned i = 0; i < N; i++) {
		struct cfs_id128 id = cfs_chunk_id(79, i + 1);

		ck_assert_int_eq(cfs_chunk_put(c, chain, &id, CHUNK_SIZE, 0, data, 100 + i, NULL),
				 0);
		q[i] = (struct cfs_chunk_op){
			.kind = CFS_CHUNK_OP_QUERY, .chain_id = chain, .chunk = id};
	}
	ck_assert_int_eq(cfs_chunk_batch(c, q, N), 0);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_int_eq(q[i].rc, 0);
		ck_assert_uint_eq(q[i].target, tail);
		ck_assert_uint_eq(q[i].out_len, 100 + i);
		ck_assert_uint_eq(q[i].version, 1);
	}
	cfs_chunk_client_destroy(&c);
}
END_TEST

/* Name resolution of the test's own: /etc/hosts, nsswitch.conf and
 * resolv.conf bind-mounted in a private mount namespace (root; only this
 * forked test process sees them), so a name resolves only once the test
 * writes it into *hosts, and no lookup waits for a DNS server. False (the
 * test is skipped, and says so) without the privilege. */
static bool
private_hosts(char *dir, char *hosts, size_t size)
{
	static const struct {
		const char *etc, *name, *text;
	} files[] = {
		{"/etc/hosts", "hosts", "127.0.0.1 localhost\n"},
		{"/etc/nsswitch.conf", "nsswitch.conf", "hosts: files\n"},
		{"/etc/resolv.conf", "resolv.conf", "nameserver 127.0.0.1\n"},
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (access(files[i].etc, F_OK) != 0) {
			/* A bind mount needs the file to cover. */
			fprintf(stderr, "SKIP: no %s to cover\n", files[i].etc);
			return false;
		}
	}
	ck_assert_ptr_nonnull(mkdtemp(dir));
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		fprintf(stderr, "SKIP: no private mount namespace (%s)\n", strerror(errno));
		tp_rm_rf(dir);
		return false;
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[128];
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
		f = fopen(path, "w");
		ck_assert_ptr_nonnull(f);
		fputs(files[i].text, f);
		fclose(f);
		ck_assert_int_eq(mount(path, files[i].etc, NULL, MS_BIND, NULL), 0);
	}
	snprintf(hosts, size, "%s/hosts", dir);
	return true;
}

/* A node registers with mgmtd under a name that does not resolve yet (a DNS
 * blip, a record not yet published): adding it to the transport fails. Once
 * the name resolves, a later routing poll adds it, and calls reach it.
 * Before, a node was added only when routing first named it or its endpoint
 * changed: it stayed unreachable for the client's whole life. */
START_TEST(test_chunk_client_routing_adds_peer_when_its_name_resolves_later)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct cfs_routing_opts ro = {.poll_ms = 50};
	struct cfs_routing *r = NULL;
	struct cfs_client *c = NULL;
	char dir[] = "/tmp/cfs-hosts-XXXXXX", hosts[64], ep[64];
	socklen_t slen = sizeof(sa);
	struct cfs_mgmtd_register *b;
	struct rt_msg *m, *resp = NULL;
	bool named = false;
	int lfd, cfd = -1;
	uint32_t alias;
	FILE *f;

	if (!private_hosts(dir, hosts, sizeof(hosts)))
		return;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &slen), 0);
	snprintf(ep, sizeof(ep), "cfs-peer-test:%u", ntohs(sa.sin_port));

	ck_assert_int_eq(cfs_client_create(NULL, &c), 0);
	ck_assert_int_eq(cfs_client_connect(c, g.mgmtd, &alias), 0);
	ro.mgmtd = CFS_ADDR(alias, CFS_LOCAL_MGMTD);
	ro.net = cfs_client_net(c);
	ck_assert_int_eq(cfs_routing_create(cfs_client_rt(c), &ro, &r), 0);
	m = rt_msg_new(CFS_MSG_MGMTD_REGISTER);
	b = RT_BODY(m, mgmtd_register);
	b->node_id = 99;
	ck_assert_int_eq(rt_msg_set_str(m, &b->endpoint, ep), 0);
	ck_assert_int_eq(cfs_client_call(c, ro.mgmtd, m, 5000, &resp), 0);
	rt_msg_free(&resp);
	for (unsigned n = 0; !named; n++) { /* hang guard, 10 s */
		struct cfs_routing_snap *s = cfs_routing_get(r);

		named = s && cfs_routing_node(s, 99) != NULL;
		cfs_routing_snap_put(&s);
		ck_assert_msg(n < 1000, "routing never named node 99");
		tp_sleep_ms(10);
	}
	/* The transport does not know the node: a call fails before it leaves.
	 * (Routing stays at this version from here on: see the loop below.) */
	m = rt_msg_new(CFS_MSG_PING);
	ck_assert_int_eq(cfs_client_call(c, CFS_ADDR(99, CFS_LOCAL_NODECTL), m, 1000, &resp),
			 -EHOSTUNREACH);
	rt_msg_free(&resp);

	f = fopen(hosts, "a");
	ck_assert_ptr_nonnull(f);
	fputs("127.0.0.1 cfs-peer-test\n", f);
	fclose(f);
	for (unsigned n = 0; cfd < 0 && n < 200; n++) { /* hang guard, 10 s and more */
		/* Node 99 beats: it stays up, and routing keeps its version. Only
		 * the polls (same version) can add the peer now. */
		m = rt_msg_new(CFS_MSG_MGMTD_HEARTBEAT);
		RT_BODY(m, mgmtd_heartbeat)->node_id = 99;
		ck_assert_int_eq(cfs_client_call(c, ro.mgmtd, m, 5000, &resp), 0);
		rt_msg_free(&resp);
		m = rt_msg_new(CFS_MSG_PING);
		(void)cfs_client_call(c, CFS_ADDR(99, CFS_LOCAL_NODECTL), m, 50, &resp);
		rt_msg_free(&resp);
		cfd = accept(lfd, NULL, NULL);
		if (cfd < 0)
			tp_sleep_ms(50);
	}
	ck_assert_msg(cfd >= 0, "node 99 never reached: its peer was not added again");
	close(cfd);
	close(lfd);
	cfs_routing_destroy(&r);
	cfs_client_destroy(&c);
	tp_rm_rf(dir);
}
END_TEST

/* The head's node shuts down cleanly (SIGTERM) while a write waits in its
 * forward (the successor is stopped): the head answers -CFS_ECANCELED, which
 * the client retries with the same request id, and the write lands on the
 * chain that fails over. Before, ECANCELED ended the write as failed. */
START_TEST(test_chunk_client_write_retried_when_head_node_shuts_down)
{
	enum { LEN = 4096 };
	struct cfs_chunk_client *c = client_new();
	uint64_t chain = chain_id(c, 0);
	struct cfs_routing_snap *s = cfs_chunk_client_routing(c);
	const struct cfs_route_chain *ch = cfs_routing_chain(s, chain);
	uint32_t head = ch->members[0].node_id, mid = ch->members[1].node_id;
	static uint8_t data[LEN], back[LEN];
	struct op_job j = {.c = c};
	uint32_t got = 0;
	pthread_t th;

	cfs_routing_snap_put(&s);
	tp_fill(data, LEN, 4242);
	j.op = (struct cfs_chunk_op){.kind = CFS_CHUNK_OP_WRITE,
				     .chain_id = chain,
				     .chunk = cfs_chunk_id(77, 1),
				     .chunk_size = CHUNK_SIZE,
				     .len = LEN,
				     .data = data};
	node_stop(mid);
	ck_assert_int_eq(pthread_create(&th, NULL, op_thread, &j), 0);
	tp_sleep_ms(300); /* the head stored it and waits for its successor */
	ck_assert(kill(g.node[head].pid, SIGTERM) == 0);
	tp_sleep_ms(300);
	ck_assert(kill(g.node[mid].pid, SIGCONT) == 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_msg(j.op.rc == 0, "write: %s after %u attempts", cfs_errname(j.op.rc),
		      j.op.attempts);
	ck_assert_uint_gt(j.op.attempts, 1);
	ck_assert_int_eq(cfs_chunk_get(c, chain, &j.op.chunk, 0, back, LEN, 0, &got, NULL), 0);
	ck_assert_uint_eq(got, LEN);
	ck_assert(memcmp(back, data, LEN) == 0);
	cfs_chunk_client_destroy(&c);
}
END_TEST

/* ------------------------------------------------- request builders */

START_TEST(test_chunk_read_msg_builds_io_table_when_ranges_given_or_null)
{
	const struct cfs_chunk_io ios[3] = {
		{.chunk = cfs_chunk_id(1, 0), .offset = 0, .len = 4096},
		{.chunk = cfs_chunk_id(1, 7), .offset = 512, .len = 1},
		{.chunk = cfs_chunk_id(2, 1), .offset = 65536, .len = 0},
	};
	const struct cfs_chunk_read *r;
	struct rt_msg *m = NULL;

	ck_assert_int_eq(cfs_chunk_read_msg(21, 9, 4, ios, 3, &m), 0);
	ck_assert_uint_eq(m->type, CFS_MSG_CHUNK_READ);
	ck_assert_uint_eq(m->flags, 0);
	ck_assert_uint_eq(m->iovcnt, 0);
	r = RT_BODY(m, chunk_read);
	ck_assert_uint_eq(r->target, 21);
	ck_assert_uint_eq(r->chain_id, 9);
	ck_assert_uint_eq(r->chain_ver, 4);
	ck_assert_uint_eq(r->flags, 0);
	ck_assert_uint_eq(r->ios_count, 3);
	ck_assert_ptr_ne(r->ios, ios); /* copied into the message */
	ck_assert_mem_eq(r->ios, ios, sizeof(ios));
	rt_msg_free(&m);

	/* NULL: a zeroed table of n for the caller to fill. */
	ck_assert_int_eq(cfs_chunk_read_msg(5, 0, 0, NULL, 2, &m), 0);
	r = RT_BODY(m, chunk_read);
	ck_assert_uint_eq(r->ios_count, 2);
	for (unsigned i = 0; i < 2; i++) {
		ck_assert_uint_eq(r->ios[i].offset, 0);
		ck_assert_uint_eq(r->ios[i].len, 0);
		for (unsigned b = 0; b < 16; b++)
			ck_assert_uint_eq(r->ios[i].chunk.b[b], 0);
	}
	rt_msg_free(&m);

	/* An empty table is built (the target refuses it, not the builder). */
	ck_assert_int_eq(cfs_chunk_read_msg(5, 0, 0, ios, 0, &m), 0);
	ck_assert_uint_eq(RT_BODY(m, chunk_read)->ios_count, 0);
	ck_assert_ptr_nonnull(RT_BODY(m, chunk_read)->ios);
	rt_msg_free(&m);
}
END_TEST

START_TEST(test_chunk_write_msg_crc_carries_given_crc_when_precomputed)
{
	struct cfs_id128 id = cfs_chunk_id(3, 4);
	struct rt_buf *b = rt_buf_get(8192);
	struct rt_msg *a = NULL, *c = NULL;
	uint32_t crc;

	ck_assert_ptr_nonnull(b);
	for (unsigned i = 0; i < 8192; i++)
		b->data[i] = (uint8_t)(i * 7 + 1);
	b->len = 8192;
	crc = disk_crc32c(0, b->data + 100, 5000);

	/* The computing builder and the given-CRC one build the same request. */
	ck_assert_int_eq(cfs_chunk_write_msg(31, &id, 65536, 300, b, 100, 5000, &a), 0);
	ck_assert_int_eq(cfs_chunk_write_msg_crc(31, &id, 65536, 300, b, 100, 5000, crc, &c), 0);
	ck_assert_uint_eq(RT_BODY(a, chunk_write)->crc, crc);
	ck_assert_mem_eq(RT_BODY(a, chunk_write), RT_BODY(c, chunk_write),
			 sizeof(struct cfs_chunk_write));
	ck_assert_uint_eq(a->plen, 5000);
	ck_assert_uint_eq(c->plen, 5000);
	ck_assert_uint_eq(c->iovcnt, 1);
	ck_assert_ptr_eq(c->iov[0].buf, b); /* by reference, no copy */
	ck_assert_uint_eq(c->iov[0].off, 100);
	rt_msg_free(&c);

	/* The given CRC is what goes out, right or wrong: it is not recomputed. */
	ck_assert_int_eq(cfs_chunk_write_msg_crc(31, &id, 65536, 300, b, 100, 5000, ~crc, &c), 0);
	ck_assert_uint_eq(RT_BODY(c, chunk_write)->crc, ~crc);
	rt_msg_free(&c);

	c = NULL;
	/* Past the buffer's end (its capacity, which the pool may round up). */
	ck_assert_int_eq(
		cfs_chunk_write_msg_crc(31, &id, 65536, 0, b, (uint32_t)b->cap - 10, 500, crc, &c),
		-EINVAL);
	ck_assert_ptr_null(c);
	rt_msg_free(&a);
	rt_buf_put(&b);
}
END_TEST

static Suite *
chunk_client_suite(void)
{
	Suite *s = suite_create("chunk_client");
	TCase *tc;

	tc = tcase_create("requests");
	tcase_add_test(tc, test_chunk_read_msg_builds_io_table_when_ranges_given_or_null);
	tcase_add_test(tc, test_chunk_write_msg_crc_carries_given_crc_when_precomputed);
	suite_add_tcase(s, tc);

	tc = tcase_create("cluster");
	tcase_add_unchecked_fixture(tc, cluster_up, cluster_down);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_chunk_client_put_get_round_trip_when_chain_serving);
	tcase_add_test(tc, test_chunk_client_node_local_messages_refused_when_sent_over_a_connection);
	tcase_add_test(tc, test_chunk_client_batch_runs_64_writes_and_reads_when_pipelined);
	tcase_add_test(tc, test_chunk_client_reads_each_replica_when_replica_flag_set);
	tcase_add_test(tc, test_chunk_client_lends_its_buffers_when_read_asks_to);
	tcase_add_test(tc, test_chunk_client_refuses_without_sending_when_input_bad);
	tcase_add_test(tc, test_chunk_client_serves_16_threads_when_they_share_it);
	tcase_add_test(tc, test_chunk_client_submit_refills_its_window_when_callbacks_resubmit);
	tcase_add_test(tc, test_chunk_client_follows_chain_when_its_version_moves);
	tcase_add_test(tc, test_chunk_client_reads_a_good_replica_when_others_fail_checksum);
	tcase_add_test(
		tc, test_chunk_client_read_waits_for_slow_good_replica_when_others_fail_checksum);
	tcase_add_test(tc, test_chunk_client_truncates_and_removes_when_chain_replicates_them);
	tcase_add_test(tc, test_chunk_client_remove_succeeds_when_retry_finds_chunk_gone);
	tcase_add_test(tc, test_chunk_client_query_answered_by_tail);
	/* Last: it leaves the cluster one node short. */
	tcase_add_test(tc, test_chunk_client_retries_until_served_when_head_killed);
	suite_add_tcase(s, tc);

	/* A cluster of its own: the first test registers a node of its own,
	 * the last leaves one node short. */
	tc = tcase_create("own_cluster");
	tcase_add_unchecked_fixture(tc, cluster_up, cluster_down);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_chunk_client_routing_adds_peer_when_its_name_resolves_later);
	tcase_add_test(tc, test_chunk_client_write_retried_when_head_node_shuts_down);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(chunk_client_suite());
	int failed;

	signal(SIGPIPE, SIG_IGN);
	rt_log_set_level(RT_LOG_ERR);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

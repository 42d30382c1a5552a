// SPDX-License-Identifier: MIT
/*
 * Crash test of a storage target with real processes (issue 3): start
 * chainfsd with one target on a directory of a real file system, let 16
 * client writers (threads, each with its own client runtime and TCP
 * connection) write distinct and shared chunks while this driver records
 * every acknowledgement (chunk, version, content), kill -9 the daemon mid-way,
 * and check:
 *   - offline, right after the kill: the engine opens the target (its own
 *     recovery) and its consistency check finds no leaked, missing or
 *     double-used slot;
 *   - after a restart, through the daemon: every chunk is exactly one version
 *     that was written: its content is the last acknowledged write's, or that
 *     of a write in flight at the kill whose answer was lost (only possible
 *     for a version above every acknowledged one); acknowledged versions of a
 *     chunk are unique; the CRC the target returns matches the bytes.
 * Three kill/restart cycles, each continuing from the verified state; then a
 * clean stop and a last offline check. Exit 0 pass, 1 fail, 77 skip.
 *
 * Writers: each owns 8 chunks of 64 KiB on which it makes random partial
 * writes (it knows the exact expected content), and all share 8 chunks of
 * 128 KiB that they overwrite whole with fixed-length contents (any writer's
 * content may win; versions order them).
 */
#define RT_LOG_SUBSYS "crash"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "client/targets.h"
#include "disk/disk.h"
#include "tests/proc.h"

#define NWRITERS	  16
#define OWN_CHUNKS	  8
#define OWN_SIZE	  (64u << 10)
#define SHARED_CHUNKS	  8
#define SHARED_SIZE	  (128u << 10)
#define CYCLES		  3
#define TARGET		  1
#define SHARED_INODE	  1000
#define MAX_SHARED_WRITES 200000

static char g_dir[256];
static char g_tdir[300];
static const char *g_daemon;
static struct tp_proc g_daemon_proc; /* its pid, port, conf and log */
static int g_failures;

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "crash_storage: FAIL: " __VA_ARGS__);                              \
		fputc('\n', stderr);                                                               \
		g_failures++;                                                                      \
	} while (0)

static uint32_t
shared_len(unsigned k)
{
	return SHARED_SIZE - 1000 - 517 * k; /* fixed per chunk, not block aligned */
}

/* ------------------------------------------------------------ the daemon */

static int
daemon_start(void)
{
	char line[512];
	FILE *f;
	int rc;

	rc = tp_proc_start(&g_daemon_proc, g_daemon, TP_LOG_TRUNC, NULL);
	if (rc != 0)
		return rc;
	/* The daemon logs "port=N: serving" once every target is open. */
	g_daemon_proc.port = 0;
	rc = tp_proc_wait_serving(&g_daemon_proc, 30, 20);
	if (rc == -ECHILD) {
		fprintf(stderr, "crash_storage: chainfsd exited at start; its log:\n");
		f = fopen(g_daemon_proc.log, "r");
		while (f && fgets(line, sizeof(line), f))
			fputs(line, stderr);
		if (f)
			fclose(f);
	}
	if (rc == 0 && !g_daemon_proc.port)
		rc = -ETIMEDOUT;
	return rc;
}

static void
daemon_kill(int sig)
{
	int st = tp_proc_signal(&g_daemon_proc, sig);

	if (sig == SIGTERM && st != -1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		FAIL("chainfsd did not stop cleanly on SIGTERM (status 0x%x)", st);
}

/* Open the target offline (the engine's crash recovery) and check slots. */
static void
offline_check(const char *when)
{
	struct disk_target_opts o = {.path = g_tdir, .capacity = 4ull << 30, .target_id = TARGET};
	struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
	struct disk_ioeng *e = NULL;
	struct disk_target *t = NULL;
	struct disk_check chk;
	int rc;

	rc = disk_aio_create(ev, 0, &e);
	if (rc == 0)
		rc = disk_target_open(e, &o, &t);
	if (rc != 0) {
		FAIL("%s: offline open: %s", when, cfs_strerror(rc));
		goto out;
	}
	rc = disk_target_check(t, &chk);
	if (rc != 0)
		FAIL("%s: slot check: %s: leaked=%" PRIu64 " missing=%" PRIu64 " double=%" PRIu64
		     " out_of_file=%" PRIu64 " mismatched=%" PRIu64 " %s",
		     when, cfs_errname(rc), chk.leaked, chk.missing, chk.double_used,
		     chk.out_of_file, chk.mismatched, chk.first);
	else
		printf("crash_storage: %s: offline check ok: rows=%" PRIu64 " slots=%" PRIu64 "\n",
		       when, chk.rows, chk.slots_used);
out:
	if (t)
		disk_target_close(&t);
	if (e)
		disk_aio_put(&e);
	ev_loop_destroy(ev);
}

/* ------------------------------------------------------- expected state */

/* A chunk one writer owns: exact content known. */
struct own_chunk {
	uint8_t cur[OWN_SIZE]; /* content as of the last acknowledged write */
	uint32_t len;
	uint64_t ver; /* last acknowledged version (0: none) */
	/* A write whose answer was lost (at most one: writers have one in flight). */
	bool unknown;
	uint8_t next[OWN_SIZE];
	uint32_t next_len;
};

/* A write to a shared chunk: its content is tp_fill(seed) of shared_len bytes. */
struct shared_write {
	uint64_t seed;
	uint64_t ver; /* 0: no answer (in flight at the kill) */
};

static struct own_chunk g_own[NWRITERS][OWN_CHUNKS];
static pthread_mutex_t g_shared_mu = PTHREAD_MUTEX_INITIALIZER;
static struct shared_write *g_shared[SHARED_CHUNKS];
static unsigned g_nshared[SHARED_CHUNKS];
static uint64_t g_shared_base_ver[SHARED_CHUNKS];  /* verified at the last restart */
static uint64_t g_shared_base_seed[SHARED_CHUNKS]; /* 0: chunk absent */

static atomic_bool g_stop;
static atomic_uint_fast64_t g_acks;

struct writer {
	unsigned idx;
	uint64_t rng;
	uint64_t writes, acks;
};

static uint64_t
rnd(struct writer *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

/* One write; 0 acknowledged (*ver), <0 refused by the target (not applied),
 * >0 no answer (unknown). */
static int
send_write(struct cfs_client *c, cfs_addr_t addr, const struct cfs_id128 *id, uint32_t chunk_size,
	   uint32_t off, const uint8_t *data, uint32_t len, uint64_t *ver)
{
	struct rt_buf *b = rt_buf_get(len ? len : 1);
	struct rt_msg *req, *resp = NULL;
	int rc;

	if (!b)
		return 1;
	memcpy(b->data, data, len);
	rc = cfs_chunk_write_msg(TARGET, id, chunk_size, off, b, 0, len, &req);
	rt_buf_put(&b);
	if (rc != 0)
		return 1;
	rc = cfs_client_call(c, addr, req, 10000, &resp);
	if (rc == 0)
		*ver = RT_BODY(resp, chunk_write_resp)->version;
	else if (!resp)
		rc = 1; /* transport: the write may or may not have happened */
	rt_msg_free(&resp);
	return rc;
}

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct cfs_client_opts o = {.timeout_ms = 10000};
	struct cfs_client *c = NULL;
	uint8_t *buf = malloc(SHARED_SIZE);
	char ep[64];
	uint32_t node;
	cfs_addr_t addr;
	int rc;

	snprintf(ep, sizeof(ep), "127.0.0.1:%u", g_daemon_proc.port);
	if (cfs_client_create(&o, &c) != 0 || cfs_client_connect(c, ep, &node) != 0 ||
	    cfs_target_find(c, node, TARGET, &addr) != 0) {
		FAIL("writer %u: cannot reach the target", w->idx);
		goto out;
	}
	while (!atomic_load(&g_stop)) {
		uint64_t ver = 0;

		if (rnd(w) % 4 != 0) {
			/* Own chunk: a random partial write. */
			unsigned k = (unsigned)(rnd(w) % OWN_CHUNKS);
			struct own_chunk *oc = &g_own[w->idx][k];
			struct cfs_id128 id = cfs_chunk_id(w->idx + 1, k);
			uint32_t off = (uint32_t)(rnd(w) % OWN_SIZE);
			uint32_t len = (uint32_t)(rnd(w) % (OWN_SIZE - off)) + 1;

			if (rnd(w) % 8 == 0) {
				off = 0;
				len = OWN_SIZE;
			}
			tp_fill(buf, len, rnd(w));
			memcpy(oc->next, oc->cur, OWN_SIZE);
			if (off > oc->len)
				memset(oc->next + oc->len, 0, off - oc->len);
			memcpy(oc->next + off, buf, len);
			oc->next_len = off + len > oc->len ? off + len : oc->len;
			w->writes++;
			rc = send_write(c, addr, &id, OWN_SIZE, off, buf, len, &ver);
			if (rc == 0) {
				if (ver != oc->ver + 1)
					FAIL("writer %u chunk %u: version %" PRIu64
					     " after %" PRIu64,
					     w->idx, k, ver, oc->ver);
				memcpy(oc->cur, oc->next, OWN_SIZE);
				oc->len = oc->next_len;
				oc->ver = ver;
				w->acks++;
				atomic_fetch_add(&g_acks, 1);
			} else if (rc > 0) {
				oc->unknown = true;
				break;
			} else {
				FAIL("writer %u chunk %u: write refused: %s", w->idx, k,
				     cfs_errname(rc));
				break;
			}
		} else {
			/* Shared chunk: a whole fixed-length content. */
			unsigned k = (unsigned)(rnd(w) % SHARED_CHUNKS);
			struct cfs_id128 id = cfs_chunk_id(SHARED_INODE, k);
			uint64_t seed = rnd(w) | 1;
			unsigned slot;

			pthread_mutex_lock(&g_shared_mu);
			slot = g_nshared[k]++;
			if (slot < MAX_SHARED_WRITES)
				g_shared[k][slot] = (struct shared_write){.seed = seed};
			pthread_mutex_unlock(&g_shared_mu);
			if (slot >= MAX_SHARED_WRITES)
				break;
			tp_fill(buf, shared_len(k), seed);
			w->writes++;
			rc = send_write(c, addr, &id, SHARED_SIZE, 0, buf, shared_len(k), &ver);
			if (rc == 0) {
				pthread_mutex_lock(&g_shared_mu);
				g_shared[k][slot].ver = ver;
				pthread_mutex_unlock(&g_shared_mu);
				w->acks++;
				atomic_fetch_add(&g_acks, 1);
			} else if (rc > 0) {
				break;
			} else {
				FAIL("writer %u shared %u: write refused: %s", w->idx, k,
				     cfs_errname(rc));
				break;
			}
		}
	}
out:
	free(buf);
	cfs_client_destroy(&c);
	return NULL;
}

/* ---------------------------------------------------------- verification */

struct reader {
	struct cfs_client *c;
	cfs_addr_t addr;
};

/* Read a whole chunk: 0 and its version/content, -CFS_ENOCHUNK, or an error. */
static int
read_chunk(struct reader *r, const struct cfs_id128 *id, uint64_t *ver, uint8_t *out, uint32_t *len)
{
	struct rt_msg *req, *resp = NULL;
	struct cfs_chunk_query_resp q;
	struct cfs_chunk_io io;
	const struct cfs_chunk_read_resp *rr;
	uint32_t crc = 0;
	int rc;

	req = rt_msg_new(CFS_MSG_CHUNK_QUERY);
	RT_BODY(req, chunk_query)->target = TARGET;
	RT_BODY(req, chunk_query)->chunk = *id;
	rc = cfs_client_call(r->c, r->addr, req, 0, &resp);
	if (rc != 0) {
		rt_msg_free(&resp);
		return rc;
	}
	q = *RT_BODY(resp, chunk_query_resp);
	rt_msg_free(&resp);
	if (q.pending != 0)
		FAIL("a chunk has pending version %" PRIu64 " with no chains", q.pending);

	io = (struct cfs_chunk_io){.chunk = *id, .offset = 0, .len = q.chunk_size};
	rc = cfs_chunk_read_msg(TARGET, 0, 0, &io, 1, &req);
	if (rc != 0)
		return rc;
	rc = cfs_client_call(r->c, r->addr, req, 0, &resp);
	if (rc != 0)
		goto out;
	rr = RT_BODY(resp, chunk_read_resp);
	rc = rr->results[0].rc;
	if (rc != 0)
		goto out;
	if (rr->results[0].len != q.len || rr->results[0].version != q.committed ||
	    resp->plen != q.len) {
		FAIL("read and query disagree: len %u/%u version %" PRIu64 "/%" PRIu64,
		     rr->results[0].len, q.len, rr->results[0].version, q.committed);
		rc = -EIO;
		goto out;
	}
	rt_msg_payload_copy(resp, 0, out, resp->plen);
	crc = disk_crc32c(0, out, resp->plen);
	if (crc != rr->results[0].crc || crc != q.crc) {
		FAIL("CRC of the bytes 0x%08x, target says 0x%08x (query 0x%08x)", crc,
		     rr->results[0].crc, q.crc);
		rc = -EIO;
		goto out;
	}
	*ver = q.committed;
	*len = q.len;
out:
	rt_msg_free(&resp);
	return rc;
}

static void
verify(unsigned cycle)
{
	struct cfs_client_opts o = {.timeout_ms = 20000};
	uint8_t *got = malloc(SHARED_SIZE), *want = malloc(SHARED_SIZE);
	struct reader r = {0};
	unsigned checked = 0, lost_answers = 0;
	char ep[64];
	uint32_t node;

	snprintf(ep, sizeof(ep), "127.0.0.1:%u", g_daemon_proc.port);
	if (cfs_client_create(&o, &r.c) != 0 || cfs_client_connect(r.c, ep, &node) != 0 ||
	    cfs_target_find(r.c, node, TARGET, &r.addr) != 0) {
		FAIL("cycle %u: verifier cannot reach the target", cycle);
		goto out;
	}
	for (unsigned wi = 0; wi < NWRITERS; wi++) {
		for (unsigned k = 0; k < OWN_CHUNKS; k++) {
			struct own_chunk *oc = &g_own[wi][k];
			struct cfs_id128 id = cfs_chunk_id(wi + 1, k);
			uint64_t ver = 0;
			uint32_t len = 0;
			int rc = read_chunk(&r, &id, &ver, got, &len);

			checked++;
			if (rc == -CFS_ENOCHUNK && oc->ver == 0) {
				/* Never written, or its first write was lost with the kill. */
				oc->unknown = false;
				continue;
			}
			if (rc != 0) {
				FAIL("cycle %u writer %u chunk %u: read: %s", cycle, wi, k,
				     cfs_errname(rc));
				continue;
			}
			if (ver == oc->ver && len == oc->len && memcmp(got, oc->cur, len) == 0) {
				/* the acknowledged state */
			} else if (oc->unknown && ver == oc->ver + 1 && len == oc->next_len &&
				   memcmp(got, oc->next, len) == 0) {
				/* the write whose answer the kill lost: adopt it */
				memcpy(oc->cur, oc->next, OWN_SIZE);
				oc->len = len;
				oc->ver = ver;
				lost_answers++;
			} else {
				FAIL("cycle %u writer %u chunk %u: version %" PRIu64 " len %u is "
				     "neither acknowledged version %" PRIu64 " (len %u)%s",
				     cycle, wi, k, ver, len, oc->ver, oc->len,
				     oc->unknown ? " nor the write in flight" : "");
			}
			oc->unknown = false;
		}
	}
	for (unsigned k = 0; k < SHARED_CHUNKS; k++) {
		struct cfs_id128 id = cfs_chunk_id(SHARED_INODE, k);
		uint64_t ver = 0, max_acked = g_shared_base_ver[k], seed = 0;
		uint32_t len = 0;
		bool found = false;
		int rc = read_chunk(&r, &id, &ver, got, &len);

		checked++;
		/* Acknowledged versions of one chunk are distinct. */
		for (unsigned i = 0; i < g_nshared[k]; i++) {
			if (g_shared[k][i].ver == 0)
				continue;
			if (g_shared[k][i].ver <= g_shared_base_ver[k])
				FAIL("shared %u: version %" PRIu64 " acknowledged again", k,
				     g_shared[k][i].ver);
			for (unsigned j = i + 1; j < g_nshared[k]; j++) {
				if (g_shared[k][j].ver == g_shared[k][i].ver)
					FAIL("shared %u: version %" PRIu64 " acknowledged twice", k,
					     g_shared[k][i].ver);
			}
			if (g_shared[k][i].ver > max_acked)
				max_acked = g_shared[k][i].ver;
		}
		if (rc == -CFS_ENOCHUNK && max_acked == 0)
			continue;
		if (rc != 0) {
			FAIL("cycle %u shared %u: read: %s", cycle, k, cfs_errname(rc));
			continue;
		}
		if (len != shared_len(k))
			FAIL("cycle %u shared %u: len %u, every write had %u", cycle, k, len,
			     shared_len(k));
		if (ver < max_acked)
			FAIL("cycle %u shared %u: version %" PRIu64
			     " older than acknowledged %" PRIu64,
			     cycle, k, ver, max_acked);
		/* Which write is it? The acknowledged one with that version, or, above
		 * every acknowledged version, one whose answer was lost. */
		if (ver == g_shared_base_ver[k] && g_shared_base_seed[k]) {
			tp_fill(want, shared_len(k), g_shared_base_seed[k]);
			found = memcmp(got, want, shared_len(k)) == 0;
			seed = g_shared_base_seed[k];
		}
		for (unsigned i = 0; !found && i < g_nshared[k]; i++) {
			const struct shared_write *sw = &g_shared[k][i];

			if (sw->ver != ver && !(sw->ver == 0 && ver > max_acked))
				continue;
			tp_fill(want, shared_len(k), sw->seed);
			if (memcmp(got, want, shared_len(k)) == 0) {
				found = true;
				seed = sw->seed;
				if (sw->ver == 0)
					lost_answers++;
			} else if (sw->ver == ver) {
				break; /* the acknowledged version, with other bytes */
			}
		}
		if (!found)
			FAIL("cycle %u shared %u: version %" PRIu64 " holds bytes no write "
			     "with that version wrote",
			     cycle, k, ver);
		g_shared_base_ver[k] = ver;
		g_shared_base_seed[k] = seed;
		g_nshared[k] = 0;
	}
	printf("crash_storage: cycle %u: %u chunks verified, %u writes in flight at the kill "
	       "found applied\n",
	       cycle, checked, lost_answers);
out:
	cfs_client_destroy(&r.c);
	free(got);
	free(want);
}

/* --------------------------------------------------------------- main */

int
main(int argc, char **argv)
{
	const char *builddir = getenv("top_builddir");
	const char *base = getenv("TMPDIR");
	static char daemon_path[512];
	struct writer w[NWRITERS];
	pthread_t th[NWRITERS];
	double write_s = argc > 1 ? atof(argv[1]) : 2.0;
	static const uint32_t targets[] = {TARGET};
	struct tp_conf conf = {.id = 1,
			       .loops = "2",
			       .log_level = "info",
			       .ntargets = 1,
			       .targets = targets,
			       .target_path = g_tdir,
			       .capacity = "4G"};

	snprintf(daemon_path, sizeof(daemon_path), "%s/chainfsd", builddir ? builddir : ".");
	g_daemon = daemon_path;
	if (access(g_daemon, X_OK) != 0) {
		fprintf(stderr, "crash_storage: %s not built: skipped\n", g_daemon);
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	rt_log_set_level(RT_LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	/* A real file system: O_DIRECT and fdatasync must mean what they say. */
	snprintf(g_dir, sizeof(g_dir), "%s/cfs-crash-storage.XXXXXX", base ? base : "/var/tmp");
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(g_tdir, sizeof(g_tdir), "%s/target1", g_dir);
	snprintf(g_daemon_proc.conf, sizeof(g_daemon_proc.conf), "%s/chainfsd.conf", g_dir);
	snprintf(g_daemon_proc.log, sizeof(g_daemon_proc.log), "%s/chainfsd.log", g_dir);
	if (tp_conf_write(&g_daemon_proc, &conf) != 0) {
		perror(g_daemon_proc.conf);
		return 1;
	}
	for (unsigned k = 0; k < SHARED_CHUNKS; k++)
		g_shared[k] = calloc(MAX_SHARED_WRITES, sizeof(*g_shared[k]));

	for (unsigned cycle = 1; cycle <= CYCLES && g_failures == 0; cycle++) {
		double t0;
		uint64_t acks0 = atomic_load(&g_acks);

		if (daemon_start() != 0) {
			FAIL("cycle %u: chainfsd did not start", cycle);
			break;
		}
		if (cycle > 1)
			verify(cycle - 1);
		atomic_store(&g_stop, false);
		for (unsigned i = 0; i < NWRITERS; i++) {
			w[i] = (struct writer){.idx = i, .rng = 0x1234567ull * (i + 1) + cycle};
			pthread_create(&th[i], NULL, writer_main, &w[i]);
		}
		/* Kill mid-way: after the writers have been acknowledged for a while. */
		t0 = tp_now_s();
		while (tp_now_s() - t0 < 30 &&
		       (tp_now_s() - t0 < write_s || atomic_load(&g_acks) - acks0 < 500))
			tp_sleep_ms(10);
		daemon_kill(SIGKILL);
		for (unsigned i = 0; i < NWRITERS; i++)
			pthread_join(th[i], NULL);
		printf("crash_storage: cycle %u: kill -9 after %" PRIu64 " acknowledged writes\n",
		       cycle, (uint64_t)(atomic_load(&g_acks) - acks0));
		if (atomic_load(&g_acks) == acks0)
			FAIL("cycle %u: no write was acknowledged", cycle);
		offline_check("after kill -9");
	}
	if (g_failures == 0) {
		if (daemon_start() != 0) {
			FAIL("final restart: chainfsd did not start");
		} else {
			verify(CYCLES);
			daemon_kill(SIGTERM);
			offline_check("after clean stop");
		}
	}
	daemon_kill(SIGKILL);
	if (g_failures) {
		fprintf(stderr, "crash_storage: %d failures; data kept in %s\n", g_failures, g_dir);
		return 1;
	}
	tp_rm_rf(g_dir);
	printf("crash_storage: PASS\n");
	return 0;
}

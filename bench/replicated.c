// SPDX-License-Identifier: MIT
/*
 * bench_replicated: chains of three replicas against the disk itself (issue 4).
 *
 * Starts a cluster of separate chainfsd processes on loopback (node 1 runs mgmtd, nodes
 * 2..4 are storage nodes with K targets each, every target a directory under DIR on this
 * one disk), asks mgmtd for K chains of 3 replicas, and drives it with the routing-aware
 * chunk client (src/client/chunk_client.h) from this process. In the same run it runs fio
 * (libaio, direct=1) on a file in DIR, alternating chainfs and fio for ROUNDS rounds and
 * comparing medians:
 *
 *   write_1m  1 MiB chunk writes (chunk_size 1 MiB), T x B of them kept in flight (a
 *             window, see below), MiB/s of client data acknowledged (each
 *             write lands on three targets of the same disk). Baseline: fio sequential
 *             1 MiB writes at iodepth T*B with --fdatasync=N, N = the writes per group
 *             commit the targets just did (their target_stats), as bench_storage does;
 *             ratio = chainfs / (fio / 3), goal 0.8. fio without syncs is printed too.
 *   read_1m   1 MiB whole-chunk reads of the written chunks, T x B in flight, spread
 *             over the serving replicas by the client (its default); baseline fio
 *             sequential 1 MiB reads at iodepth T*B; ratio = chainfs / fio, goal 0.85.
 *
 * Usage: bench_replicated [SECONDS [ROUNDS [DIR]]]; DIR defaults to
 * /var/tmp/chainfs-bench-repl, emptied at the start and removed at the end (kept with
 * BENCH_REPL_KEEP=1). Environment: BENCH_REPL_CHAINS (K, default 6),
 * BENCH_REPL_THREADS (T, default 2), BENCH_REPL_BATCH (B, default 16),
 * BENCH_REPL_LOOPS (storage node loops, default 2), BENCH_REPL_CLIENT_LOOPS (default 1),
 * BENCH_REPL_ROWS=write_1m,read_1m (only those rows), BENCH_REPL_PERF=FILE (perf record
 * -g on the three storage daemons during the first read row, into FILE).
 * BENCH_REPL_SUBMIT=window (default: T x B single-op submissions, cfs_chunk_submit, each
 * refilled from its own completion callback, so the window stays full as fio keeps its
 * iodepth) or batch (T threads, each waiting for a whole batch of B, cfs_chunk_batch,
 * before the next: the slowest op of a batch holds the other B - 1 slots empty).
 * BENCH_REPL_READ=lend (default: the read row takes the bytes in buffers the client lends,
 * CFS_CHUNK_F_LEND, as a KV-cache get that hands them on would) or copy (into the caller's
 * buffers, one more copy per byte).
 * BENCH_NET picks the network (bench/net.h: by default a private namespace whose loopback
 * has BIG TCP).
 * The daemon is $CHAINFSD, else ./chainfsd (make runs it from the build directory).
 * Prints a table and a last line "ratio: write_1m=X read_1m=Y" (ratios of the medians; the
 * table also shows the median of the rounds' own ratios). Each chainfs row also gets
 * the CPU the storage daemons and this process spent per MiB, and how many of our threads
 * were, on average, runnable but waiting for a CPU (schedstat run delay / elapsed): on a
 * small shared VM that, with the load average printed next to it, says whether a number
 * measures chainfs or the neighbours.
 */
#define RT_LOG_SUBSYS "bench"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/fio.h"
#include "bench/net.h"
#include "bench/stats.h"
#include "client/chunk_client.h"
#include "client/client.h"
#include "client/routing.h"
#include "client/targets.h"
#include "tests/proc.h"

#define NSTORAGE    3
#define NNODES	    (1 + NSTORAGE)
#define CHUNK	    (1u << 20)
#define NCHUNKS	    1024u /* 1 GiB of client data (3 GiB on disk), as fio's file */
#define DATASET_MIB (NCHUNKS * (CHUNK >> 20))
#define INODE	    7
#define MAX_THREADS 16
#define MAX_BATCH   64
#define MAX_ROUNDS  BENCH_MAX_ROUNDS

static struct tp_proc g_nodes[NNODES + 1]; /* by node id; [0] unused */
static uint32_t g_alias[NNODES + 1];	   /* the admin client's node ids for the storage nodes */
static char g_dir[512];
static char g_fio_file[600];
static char g_lock[600]; /* DIR.lock, held for the run */
static char g_mgmtd_ep[64];
static const char *g_daemon;
static unsigned g_chains = 6, g_threads = 2, g_batch = 16;
/* Reads into buffers the client lends (CFS_CHUNK_F_LEND, no copy), else into ours. */
static bool g_lend = true;
static bool g_window = true; /* BENCH_REPL_SUBMIT=window (cfs_chunk_submit) or batch */
static double g_seconds = 5.0;
static unsigned g_rounds = 3;

static void
stop_all(void)
{
	for (unsigned n = NNODES; n >= 1; n--)
		tp_proc_signal(&g_nodes[n], SIGTERM);
}

static void
die(const char *what, int rc)
{
	fprintf(stderr, "bench_replicated: %s: %s (%s); logs in %s\n", what, cfs_strerror(rc),
		cfs_errname(rc), g_dir);
	tp_procs_kill(&g_nodes[1], NNODES);
	exit(1);
}

static unsigned
env_uint(const char *name, unsigned dflt, unsigned lo, unsigned hi)
{
	const char *v = getenv(name);
	unsigned long x;
	char *end;

	if (v == NULL || *v == '\0')
		return dflt;
	x = strtoul(v, &end, 10);
	if (*end != '\0' || x < lo || x > hi) {
		fprintf(stderr, "bench_replicated: %s=%s: expected %u..%u\n", name, v, lo, hi);
		exit(2);
	}
	return (unsigned)x;
}

/* ------------------------------------------------------------- the cluster */

static uint32_t
target_id(unsigned node, unsigned k)
{
	return node * 100 + k + 1;
}

static void
write_configs(void)
{
	const char *loops = getenv("BENCH_REPL_LOOPS") ? getenv("BENCH_REPL_LOOPS") : "2";
	/* Every target holds about a third of the data set over K targets, and a chunk's
	 * new version takes a new slot before the old one is freed: twice that, plus room. */
	unsigned cap_mib = 2 * DATASET_MIB / g_chains + 256;
	uint32_t targets[64];
	char db[600], cap[32];

	snprintf(db, sizeof(db), "%s/mgmtd.db", g_dir);
	snprintf(cap, sizeof(cap), "%uM", cap_mib);
	for (unsigned n = 1; n <= NNODES; n++) {
		struct tp_proc *nd = &g_nodes[n];
		/* Not pinned (tp_conf_write): the daemons and this process share the cores. */
		struct tp_conf c = {.id = n, .port = tp_free_port(), .log_level = "warn"};
		int rc;

		if (!c.port)
			die("free port", -EADDRNOTAVAIL);
		snprintf(nd->conf, sizeof(nd->conf), "%s/n%u.conf", g_dir, n);
		snprintf(nd->log, sizeof(nd->log), "%s/n%u.log", g_dir, n);
		if (n == 1) {
			snprintf(g_mgmtd_ep, sizeof(g_mgmtd_ep), "127.0.0.1:%u", c.port);
			c.loops = "1";
			c.mgmtd_db = db;
		} else {
			c.loops = loops;
			c.mgmtd = g_mgmtd_ep;
			for (unsigned k = 0; k < g_chains; k++)
				targets[k] = target_id(n, k);
			c.ntargets = g_chains;
			c.targets = targets;
			c.target_dir = g_dir;
			c.capacity = cap;
		}
		rc = tp_conf_write(nd, &c);
		if (rc != 0)
			die(nd->conf, rc);
	}
}

static void
node_start(unsigned n)
{
	/* A benchmark killed half-way leaves no cluster behind (TP_PDEATHSIG). */
	int rc = tp_proc_start(&g_nodes[n], g_daemon, TP_PDEATHSIG, NULL);

	if (rc != 0)
		die(g_nodes[n].log, rc);
}

static void
check_alive(void)
{
	for (unsigned n = 1; n <= NNODES; n++) {
		if (g_nodes[n].pid > 0 && tp_proc_check(&g_nodes[n]) != 0) {
			fprintf(stderr, "bench_replicated: node %u exited; see %s\n", n,
				g_nodes[n].log);
			die("cluster", -ECHILD);
		}
	}
}

static int
create_chains(struct cfs_client *admin, uint32_t mgmtd_node)
{
	char detail[512];
	int rc;

	rc = tp_create_chains(admin, CFS_ADDR(mgmtd_node, CFS_LOCAL_MGMTD), NSTORAGE, g_chains,
			      10000, NULL, detail, sizeof(detail));
	if (rc != 0 && detail[0])
		fprintf(stderr, "bench_replicated: create-chains: %s\n", detail);
	return rc;
}

/* Routing shows K chains whose 3 members all serve. */
static bool
chains_ready(struct cfs_chunk_client *cc, uint32_t *ntargets)
{
	struct cfs_routing_snap *s = cfs_chunk_client_routing(cc);
	bool ok;

	if (!s)
		return false;
	*ntargets = s->ntargets;
	ok = tp_chains_serving(s, g_chains, NSTORAGE);
	cfs_routing_snap_put(&s);
	return ok;
}

static struct cfs_chunk_client *
cluster_start(struct cfs_client *admin)
{
	struct cfs_chunk_client_opts o = {
		.mgmtd = g_mgmtd_ep,
		.loops = env_uint("BENCH_REPL_CLIENT_LOOPS", 1, 1, 8),
		.timeout_ms = 10000,
		.deadline_ms = 60000,
		.routing_wait_ms = 2000,
	};
	struct cfs_chunk_client *cc = NULL;
	uint32_t mgmtd_node, ntargets = 0;
	bool created = false;
	double t0 = tp_now_s();
	int rc = -ETIMEDOUT;

	write_configs();
	for (unsigned n = 1; n <= NNODES; n++)
		node_start(n);
	rc = cfs_client_connect(admin, g_mgmtd_ep, &mgmtd_node);
	if (rc != 0)
		die("mgmtd endpoint", rc);
	while (tp_now_s() - t0 < 120) {
		check_alive();
		if (!cc && cfs_chunk_client_create(&o, &cc) != 0)
			cc = NULL;
		if (cc && chains_ready(cc, &ntargets))
			return cc;
		if (cc && !created && ntargets == NSTORAGE * g_chains) {
			rc = create_chains(admin, mgmtd_node);
			if (rc != 0)
				die("create-chains", rc);
			created = true;
		}
		usleep(100000);
	}
	die(created ? "chains did not become serving" : "targets did not register", -ETIMEDOUT);
	return NULL;
}

/* Counters summed over the targets of the storage nodes. */
struct counts {
	uint64_t commits, items;	 /* group commits, writes in them */
	uint64_t read_bytes[NNODES + 1]; /* per storage node */
};

static void
counts_get(struct cfs_client *admin, struct counts *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned n = 2; n <= NNODES; n++) {
		struct cfs_target_ref *v = NULL;
		unsigned nt = 0;
		char ep[64];
		int rc;

		snprintf(ep, sizeof(ep), "127.0.0.1:%u", g_nodes[n].port);
		rc = g_alias[n] ? 0 : cfs_client_connect(admin, ep, &g_alias[n]);
		if (rc == 0)
			rc = cfs_targets_list(admin, g_alias[n], &v, &nt);
		if (rc != 0)
			die("list targets", rc);
		for (unsigned i = 0; i < nt; i++) {
			struct rt_msg *req = rt_msg_new(CFS_MSG_TARGET_STATS), *resp = NULL;
			const struct cfs_target_stats_resp *r;

			if (!req)
				die("target_stats", -ENOMEM);
			RT_BODY(req, target_stats)->target = v[i].target;
			rc = cfs_client_call(admin, v[i].addr, req, 10000, &resp);
			if (rc != 0)
				die("target_stats", rc);
			r = RT_BODY(resp, target_stats_resp);
			out->commits += r->commits;
			out->items += r->commit_items;
			out->read_bytes[n] += r->read_bytes;
			rt_msg_free(&resp);
		}
		free(v);
	}
}

/* ------------------------------------------------------------- CPU costs */

/* Seconds on a CPU and seconds runnable but waiting for one, over all threads of pid
 * (0: this process), from /proc/.../schedstat. */
static void
proc_sched(pid_t pid, double *run, double *wait)
{
	char path[320];
	struct dirent *e;
	DIR *d;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/task");
	d = opendir(path);
	while (d && (e = readdir(d)) != NULL) {
		unsigned long long ns = 0, wns = 0;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		if (pid)
			snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid,
				 e->d_name);
		else
			snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", e->d_name);
		f = fopen(path, "r");
		if (f && fscanf(f, "%llu %llu", &ns, &wns) == 2) {
			*run += (double)ns / 1e9;
			*wait += (double)wns / 1e9;
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
}

/* CPU and run-queue wait, seconds: of the storage daemons together, of this process. */
struct cpu {
	double drun, dwait, crun, cwait;
};

static void
cpu_snap(struct cpu *out)
{
	*out = (struct cpu){0};
	for (unsigned n = 2; n <= NNODES; n++)
		proc_sched(g_nodes[n].pid, &out->drun, &out->dwait);
	proc_sched(0, &out->crun, &out->cwait);
}

/* The 1-minute load average: how much else this machine was running. */
static double
load_avg(void)
{
	double l = 0;

	return getloadavg(&l, 1) == 1 ? l : -1;
}

/* ---------------------------------------------------------------- the load */

struct load {
	struct cfs_chunk_client *cc;
	enum cfs_chunk_op_kind kind;
	double seconds;
	uint64_t count; /* chunks to do; 0: until `seconds` pass */
	uint8_t *wbuf;	/* the payload of every write */
	_Atomic uint64_t next;
	_Atomic uint64_t done_bytes;
	_Atomic int first_error;
	double t_end;
	double elapsed; /* of the last run */
	double mib;	/* acknowledged in the last run */
};

/* Op i of the load: chunk i % NCHUNKS of the file, on its chain. dst: a read's
 * destination when it copies (NULL when the client lends). */
static void
load_op(struct load *l, uint64_t i, uint8_t *dst, struct cfs_chunk_op *op)
{
	i %= NCHUNKS;
	*op = (struct cfs_chunk_op){
		.kind = l->kind,
		.chain_id = cfs_chunk_client_place(l->cc, 0, i, g_chains),
		.chunk = cfs_chunk_id(INODE, i),
		.chunk_size = CHUNK,
		.offset = 0,
		.len = CHUNK,
		.data = l->kind == CFS_CHUNK_OP_WRITE ? l->wbuf : g_lend ? NULL : dst,
		.flags = l->kind == CFS_CHUNK_OP_READ && g_lend ? CFS_CHUNK_F_LEND : 0,
	};
}

/* One ended op: count its bytes or keep the first error. */
static void
load_op_ended(struct load *l, struct cfs_chunk_op *op)
{
	int expected = 0;
	bool ok = op->rc == 0 && (l->kind != CFS_CHUNK_OP_READ || op->out_len == CHUNK);

	cfs_chunk_op_release(op);
	if (ok)
		atomic_fetch_add(&l->done_bytes, CHUNK);
	else
		atomic_compare_exchange_strong(&l->first_error, &expected, op->rc ? op->rc : -EIO);
}

struct worker {
	struct load *l;
	uint8_t *rbuf; /* reads: g_batch chunks */
	pthread_t th;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	struct load *l = w->l;
	struct cfs_chunk_op ops[MAX_BATCH];

	while (atomic_load(&l->first_error) == 0) {
		unsigned n = 0;

		if (!l->count && tp_now_s() >= l->t_end)
			break;
		for (; n < g_batch; n++) {
			uint64_t i = atomic_fetch_add(&l->next, 1);

			if (l->count && i >= l->count)
				break;
			load_op(l, i, w->rbuf ? w->rbuf + (size_t)n * CHUNK : NULL, &ops[n]);
		}
		if (n == 0)
			break;
		cfs_chunk_batch(l->cc, ops, n);
		for (unsigned k = 0; k < n; k++)
			load_op_ended(l, &ops[k]);
	}
	return NULL;
}

/*
 * Window mode: T x B slots of one op each, every slot refilled from its own
 * completion callback (cfs_chunk_submit), so T x B operations stay in flight
 * all the time, as fio keeps its iodepth; batch mode waits for the slowest op
 * of each batch before the next.
 */
struct slot {
	struct load *l;
	struct cfs_chunk_op op;
	uint8_t *rbuf; /* a read's destination when it copies */
};

static _Atomic unsigned g_slots_active;
static pthread_mutex_t g_slots_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_slots_cv = PTHREAD_COND_INITIALIZER;
static void slot_done(void *arg, struct cfs_chunk_op *ops, unsigned n);

/* A slot stops: the last one wakes run_window. */
static void
slot_stop(void)
{
	if (atomic_fetch_sub(&g_slots_active, 1) != 1)
		return;
	pthread_mutex_lock(&g_slots_mu);
	pthread_cond_signal(&g_slots_cv);
	pthread_mutex_unlock(&g_slots_mu);
}

static bool
slot_start(struct slot *sl)
{
	struct load *l = sl->l;
	uint64_t i;

	if (atomic_load(&l->first_error) != 0 || (!l->count && tp_now_s() >= l->t_end))
		return false;
	i = atomic_fetch_add(&l->next, 1);
	if (l->count && i >= l->count)
		return false;
	load_op(l, i, sl->rbuf, &sl->op);
	return cfs_chunk_submit(l->cc, &sl->op, 1, slot_done, sl) == 0;
}

static void
slot_done(void *arg, struct cfs_chunk_op *ops, unsigned n)
{
	struct slot *sl = arg;

	(void)n;
	load_op_ended(sl->l, ops);
	if (!slot_start(sl))
		slot_stop();
}

static void
run_window(struct load *l)
{
	unsigned nslots = g_threads * g_batch;
	struct slot *slots = calloc(nslots, sizeof(*slots));

	if (!slots)
		die("slots", -ENOMEM);
	for (unsigned k = 0; k < nslots; k++) {
		slots[k].l = l;
		if (l->kind == CFS_CHUNK_OP_READ && !g_lend &&
		    posix_memalign((void **)&slots[k].rbuf, 4096, CHUNK) != 0)
			die("read buffers", -ENOMEM);
	}
	atomic_store(&g_slots_active, nslots);
	for (unsigned k = 0; k < nslots; k++) {
		if (!slot_start(&slots[k]))
			slot_stop();
	}
	pthread_mutex_lock(&g_slots_mu);
	while (atomic_load(&g_slots_active) > 0)
		pthread_cond_wait(&g_slots_cv, &g_slots_mu);
	pthread_mutex_unlock(&g_slots_mu);
	for (unsigned k = 0; k < nslots; k++)
		free(slots[k].rbuf);
	free(slots);
}

/* Run the load on g_threads threads; MiB/s acknowledged. */
static double
run_load(struct load *l)
{
	struct worker w[MAX_THREADS];
	double t0, el;

	atomic_store(&l->next, 0);
	atomic_store(&l->done_bytes, 0);
	atomic_store(&l->first_error, 0);
	t0 = tp_now_s();
	l->t_end = t0 + l->seconds;
	if (g_window) {
		run_window(l);
		goto ended;
	}
	for (unsigned t = 0; t < g_threads; t++) {
		w[t].l = l;
		w[t].rbuf = NULL;
		if (l->kind == CFS_CHUNK_OP_READ &&
		    posix_memalign((void **)&w[t].rbuf, 4096, (size_t)g_batch * CHUNK) != 0)
			die("read buffers", -ENOMEM);
		if (pthread_create(&w[t].th, NULL, worker_run, &w[t]) != 0)
			die("pthread_create", -EAGAIN);
	}
	for (unsigned t = 0; t < g_threads; t++) {
		pthread_join(w[t].th, NULL);
		free(w[t].rbuf);
	}
ended:
	el = tp_now_s() - t0;
	if (atomic_load(&l->first_error) != 0)
		die(l->kind == CFS_CHUNK_OP_WRITE ? "chunk writes" : "chunk reads",
		    atomic_load(&l->first_error));
	l->elapsed = el;
	l->mib = (double)atomic_load(&l->done_bytes) / (1 << 20);
	return l->mib / el;
}

/* ------------------------------------------------------------------- fio */

/* Run fio; returns MiB/s of direction dir ("read"/"write"). */
static double
run_fio(const char *rw, unsigned depth, unsigned fdatasync_n, double seconds, const char *dir)
{
	char args[1024];
	double bw;

	snprintf(args, sizeof(args),
		 "--name=b --filename=%s --size=%uM --rw=%s --bs=%u --iodepth=%u "
		 "--ioengine=libaio --direct=1 --fdatasync=%u",
		 g_fio_file, DATASET_MIB, rw, CHUNK, depth, fdatasync_n);
	bw = bench_fio(args, seconds, dir, "bw_bytes");
	if (bw < 0)
		die("cannot run fio or parse its output (is fio installed?)", -EINVAL);
	return bw / (1 << 20);
}

/* --------------------------------------------------------------- perf */

static pid_t
perf_start(const char *file)
{
	char pids[128];
	pid_t pid;

	snprintf(pids, sizeof(pids), "%d,%d,%d", (int)g_nodes[2].pid, (int)g_nodes[3].pid,
		 (int)g_nodes[4].pid);
	pid = fork();
	if (pid < 0)
		die("fork perf", -errno);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execlp("perf", "perf", "record", "-g", "-q", "-o", file, "-p", pids, (char *)NULL);
		_exit(127);
	}
	usleep(300000); /* let it attach */
	return pid;
}

static void
perf_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGINT);
	waitpid(pid, NULL, 0);
}

/* ------------------------------------------------------------------ main */

struct row {
	double cand[MAX_ROUNDS], base[MAX_ROUNDS], extra[MAX_ROUNDS], batch[MAX_ROUNDS];
	double dcpu[MAX_ROUNDS], ccpu[MAX_ROUNDS]; /* ms of CPU per MiB of client data */
	double waiting[MAX_ROUNDS];		   /* our threads waiting for a CPU, on average */
};

int
main(int argc, char **argv)
{
	struct cfs_client_opts ao = {.timeout_ms = 10000};
	const char *perf_file = getenv("BENCH_REPL_PERF");
	bool keep = getenv("BENCH_REPL_KEEP") && *getenv("BENCH_REPL_KEEP") == '1';
	struct row wr = {0}, rd = {0};
	struct cfs_chunk_client *cc;
	struct cfs_client *admin;
	struct load l = {0};
	unsigned depth;
	double t0;

	g_daemon = getenv("CHAINFSD") ? getenv("CHAINFSD") : "./chainfsd";
	if (argc > 1)
		g_seconds = atof(argv[1]);
	if (argc > 2)
		g_rounds = (unsigned)atoi(argv[2]);
	if (g_seconds <= 0 || g_rounds == 0 || g_rounds > MAX_ROUNDS) {
		fprintf(stderr, "usage: bench_replicated [SECONDS [ROUNDS (1..64) [DIR]]]\n");
		return 2;
	}
	snprintf(g_dir, sizeof(g_dir), "%s", argc > 3 ? argv[3] : "/var/tmp/chainfs-bench-repl");
	if (getenv("BENCH_REPL_READ") && strcmp(getenv("BENCH_REPL_READ"), "lend") != 0) {
		if (strcmp(getenv("BENCH_REPL_READ"), "copy") != 0)
			die("BENCH_REPL_READ: expected lend or copy", -EINVAL);
		g_lend = false;
	}
	if (getenv("BENCH_REPL_SUBMIT") && strcmp(getenv("BENCH_REPL_SUBMIT"), "window") != 0) {
		if (strcmp(getenv("BENCH_REPL_SUBMIT"), "batch") != 0)
			die("BENCH_REPL_SUBMIT: expected window or batch", -EINVAL);
		g_window = false;
	}
	g_chains = env_uint("BENCH_REPL_CHAINS", 6, 1, 64);
	g_threads = env_uint("BENCH_REPL_THREADS", 2, 1, MAX_THREADS);
	g_batch = env_uint("BENCH_REPL_BATCH", 16, 1, MAX_BATCH);
	depth = g_threads * g_batch;
	if (access(g_daemon, X_OK) != 0) {
		fprintf(stderr,
			"bench_replicated: %s: not found (build chainfsd, or set CHAINFSD)\n",
			g_daemon);
		return 1;
	}
	{
		/* One run per DIR at a time: the next line empties it. */
		int fd;

		snprintf(g_lock, sizeof(g_lock), "%s.lock", g_dir);
		fd = open(g_lock, O_RDWR | O_CREAT, 0644);
		if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
			fprintf(stderr, "bench_replicated: %s: another run uses %s\n", g_lock,
				g_dir);
			return 1;
		}
	}
	/* A fresh cluster every run: leftovers of an earlier one (its mgmtd database,
	 * chains) would not match this run's targets. */
	tp_rm_rf(g_dir);
	if (mkdir(g_dir, 0755) != 0)
		die(g_dir, -errno);
	snprintf(g_fio_file, sizeof(g_fio_file), "%s/fio.data", g_dir);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	rt_log_set_level(RT_LOG_ERR);
	printf("bench_replicated: %s\n", bench_net_setup());

	if (g_window)
		printf("bench_replicated: dir=%s seconds=%.1f rounds=%u chains=%u x %u replicas, "
		       "a window of %u operations kept full (cfs_chunk_submit), reads %s\n",
		       g_dir, g_seconds, g_rounds, g_chains, NSTORAGE, depth,
		       g_lend ? "into lent buffers" : "copied into ours");
	else
		printf("bench_replicated: dir=%s seconds=%.1f rounds=%u chains=%u x %u replicas, "
		       "%u threads x batches of %u (%u in flight), reads %s\n",
		       g_dir, g_seconds, g_rounds, g_chains, NSTORAGE, g_threads, g_batch, depth,
		       g_lend ? "into lent buffers" : "copied into ours");
	if (cfs_client_create(&ao, &admin) != 0)
		die("client", -ENOMEM);
	t0 = tp_now_s();
	cc = cluster_start(admin);
	printf("bench_replicated: cluster up (mgmtd %s, storage pids %d %d %d) in %.1f s\n",
	       g_mgmtd_ep, (int)g_nodes[2].pid, (int)g_nodes[3].pid, (int)g_nodes[4].pid,
	       tp_now_s() - t0);

	l.cc = cc;
	if (posix_memalign((void **)&l.wbuf, 4096, CHUNK) != 0)
		die("write buffer", -ENOMEM);
	for (uint32_t i = 0; i < CHUNK; i++)
		l.wbuf[i] = (uint8_t)(i * 2654435761u >> 24);

	/* Data set: every chunk written once (the write rows then overwrite them, copy on
	 * write); fio's file laid out once too. */
	t0 = tp_now_s();
	l.kind = CFS_CHUNK_OP_WRITE;
	l.count = NCHUNKS;
	run_load(&l);
	printf("bench_replicated: %u MiB written (x3 replicas) in %.1f s\n", DATASET_MIB,
	       tp_now_s() - t0);
	t0 = tp_now_s();
	run_fio("write", 8, 0, 0, "write");
	printf("bench_replicated: fio file ready in %.1f s\n", tp_now_s() - t0);
	l.count = 0;
	l.seconds = g_seconds;

	for (unsigned r = 0; r < g_rounds; r++) {
		struct cpu c0, c1;

		struct counts k0, k1;

		if (bench_row_wanted("BENCH_REPL_ROWS", "write_1m")) {
			unsigned b;

			counts_get(admin, &k0);
			l.kind = CFS_CHUNK_OP_WRITE;
			cpu_snap(&c0);
			wr.cand[r] = run_load(&l);
			cpu_snap(&c1);
			counts_get(admin, &k1);
			wr.batch[r] = k1.commits > k0.commits
					      ? (double)(k1.items - k0.items) /
							(double)(k1.commits - k0.commits)
					      : 0;
			b = wr.batch[r] >= 1 ? (unsigned)lround(wr.batch[r]) : 1;
			wr.dcpu[r] = (c1.drun - c0.drun) * 1e3 / l.mib;
			wr.ccpu[r] = (c1.crun - c0.crun) * 1e3 / l.mib;
			wr.waiting[r] = (c1.dwait - c0.dwait + c1.cwait - c0.cwait) / l.elapsed;
			wr.base[r] = run_fio("write", depth, b, g_seconds, "write");
			wr.extra[r] = run_fio("write", depth, 0, g_seconds, "write");
			printf("round %u write_1m  chainfs %7.1f MiB/s  fio %7.1f (fdatasync=%u; "
			       "without %7.1f) -> fio/3 %6.1f; per MiB: daemons %.2f ms, client "
			       "%.2f ms CPU; waiting for a CPU %.2f threads; load %.1f\n",
			       r + 1, wr.cand[r], wr.base[r], b, wr.extra[r], wr.base[r] / 3,
			       wr.dcpu[r], wr.ccpu[r], wr.waiting[r], load_avg());
		}
		if (bench_row_wanted("BENCH_REPL_ROWS", "read_1m")) {
			pid_t perf = 0;

			if (perf_file && r == 0)
				perf = perf_start(perf_file);
			l.kind = CFS_CHUNK_OP_READ;
			counts_get(admin, &k0);
			cpu_snap(&c0);
			rd.cand[r] = run_load(&l);
			cpu_snap(&c1);
			perf_stop(perf);
			counts_get(admin, &k1);
			rd.dcpu[r] = (c1.drun - c0.drun) * 1e3 / l.mib;
			rd.ccpu[r] = (c1.crun - c0.crun) * 1e3 / l.mib;
			rd.waiting[r] = (c1.dwait - c0.dwait + c1.cwait - c0.cwait) / l.elapsed;
			rd.base[r] = run_fio("read", depth, 0, g_seconds, "read");
			printf("round %u read_1m   chainfs %7.1f MiB/s  fio %7.1f; per MiB: "
			       "daemons "
			       "%.2f ms, client %.2f ms CPU; waiting for a CPU %.2f threads; load "
			       "%.1f; MiB read by node 2/3/4: %.0f/%.0f/%.0f\n",
			       r + 1, rd.cand[r], rd.base[r], rd.dcpu[r], rd.ccpu[r], rd.waiting[r],
			       load_avg(),
			       (double)(k1.read_bytes[2] - k0.read_bytes[2]) / (1 << 20),
			       (double)(k1.read_bytes[3] - k0.read_bytes[3]) / (1 << 20),
			       (double)(k1.read_bytes[4] - k0.read_bytes[4]) / (1 << 20));
		}
	}

	{
		double wc = bench_median(wr.cand, g_rounds), wb = bench_median(wr.base, g_rounds) / 3;
		double rc = bench_median(rd.cand, g_rounds), rb = bench_median(rd.base, g_rounds);
		char label[96];

		double wq[MAX_ROUNDS], rq[MAX_ROUNDS];

		/* Each round's own ratio too: chainfs and fio run back to back, so on a noisy
		 * machine that pairs numbers taken under the same neighbours. */
		for (unsigned r = 0; r < g_rounds; r++) {
			wq[r] = wr.base[r] > 0 ? wr.cand[r] / (wr.base[r] / 3) : 0;
			rq[r] = rd.base[r] > 0 ? rd.cand[r] / rd.base[r] : 0;
		}
		printf("\n%-44s %10s %10s %10s %6s %9s %5s\n", "row (median of rounds)", "chainfs",
		       "fio", "baseline", "ratio", "per-round", "goal");
		if (bench_row_wanted("BENCH_REPL_ROWS", "write_1m")) {
			snprintf(label, sizeof(label),
				 "write_1m MiB/s x3 replicas (fdatasync/%.0f)",
				 bench_median(wr.batch, g_rounds));
			printf("%-44s %10.1f %10.1f %10.1f %6.2f %9.2f %5.2f\n", label, wc, wb * 3,
			       wb, wb > 0 ? wc / wb : 0, bench_median(wq, g_rounds), 0.8);
		}
		if (bench_row_wanted("BENCH_REPL_ROWS", "read_1m"))
			printf("%-44s %10.1f %10.1f %10.1f %6.2f %9.2f %5.2f\n",
			       "read_1m MiB/s spread over replicas", rc, rb, rb,
			       rb > 0 ? rc / rb : 0, bench_median(rq, g_rounds), 0.85);
		printf("\n%-44s %10s %10s %10s\n", "CPU per MiB (median of rounds)", "daemons ms",
		       "client ms", "cpu-wait");
		if (bench_row_wanted("BENCH_REPL_ROWS", "write_1m"))
			printf("%-44s %10.2f %10.2f %10.2f\n", "write_1m",
			       bench_median(wr.dcpu, g_rounds), bench_median(wr.ccpu, g_rounds),
			       bench_median(wr.waiting, g_rounds));
		if (bench_row_wanted("BENCH_REPL_ROWS", "read_1m"))
			printf("%-44s %10.2f %10.2f %10.2f\n", "read_1m", bench_median(rd.dcpu, g_rounds),
			       bench_median(rd.ccpu, g_rounds), bench_median(rd.waiting, g_rounds));
		if (bench_row_wanted("BENCH_REPL_ROWS", "write_1m"))
			printf("%-44s %10s %10.1f\n", "write_1m fio without syncs MiB/s", "-",
			       bench_median(wr.extra, g_rounds));
		printf("ratio:");
		if (bench_row_wanted("BENCH_REPL_ROWS", "write_1m"))
			printf(" write_1m=%.2f", wb > 0 ? wc / wb : 0);
		if (bench_row_wanted("BENCH_REPL_ROWS", "read_1m"))
			printf(" read_1m=%.2f", rb > 0 ? rc / rb : 0);
		printf("\n");
	}

	free(l.wbuf);
	cfs_chunk_client_destroy(&cc);
	cfs_client_destroy(&admin);
	stop_all();
	if (!keep)
		tp_rm_rf(g_dir);
	unlink(g_lock);
	return 0;
}

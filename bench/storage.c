// SPDX-License-Identifier: MIT
/*
 * bench_storage: a storage target against the disk itself (issue 3). Starts a
 * chainfsd (fork/exec) with one target on a directory, drives it from this
 * process over loopback TCP, and in the same run runs fio (libaio, direct=1)
 * on the same directory with the same block size and queue depth,
 * alternating candidate and fio for ROUNDS rounds and comparing medians:
 *
 *   seqread_1m     sequential 1 MiB reads, 4 in flight         MiB/s   goal 0.85
 *   randread_4k    random 4 KiB reads, 32 in flight, sent as   IOPS    goal 0.7
 *                  4 requests of 8 reads each (batched); fio
 *                  with the same batching (iodepth_batch 8);
 *                  daemon, client and fio all on the CPU that
 *                  takes the disk's interrupts (see below);
 *                  printed for reference: both left to the
 *                  scheduler, fio unbatched, and fio taking
 *                  each wave of 32 whole with 50 us between
 *                  waves: what a design that pays one round
 *                  trip per wave can reach on a disk that
 *                  completes its queue in passes (bench/README.md)
 *   randread_64k   random 64 KiB reads, 16 in flight           MiB/s   goal 0.8
 *   seqwrite_1m    sequential 1 MiB durable writes, 8 in       MiB/s   goal 0.8
 *                  flight; fio with --fdatasync=B, B = the
 *                  writes per group commit the target just did
 *                  (from target_stats); fio without syncs is
 *                  printed for reference
 *
 * Usage: bench_storage [SECONDS [ROUNDS [DIR]]]; DIR defaults to a new
 * directory under /var/tmp (a real file system: O_DIRECT), removed at the end;
 * a DIR given is kept, and its data set reused by the next run.
 * BENCH_STORAGE_ROWS=seqread_1m,randread_4k,... runs only those rows (for
 * profiling one of them); BENCH_STORAGE_INPROC=1 runs the target in this
 * process instead of a chainfsd (no TCP: what the transport costs);
 * BENCH_STORAGE_4K_SHAPE=WxB shapes the 4 KiB row: W requests of B reads
 * in flight (default 4x8; fio then submits and reaps B at a time).
 * BENCH_STORAGE_LOOPS=N sets the daemon's loops (default 2); BENCH_NET picks the network
 * (bench/net.h: by default a private namespace whose loopback has BIG TCP).
 *
 * The 4 KiB row is bound by wake-ups, not by CPU: every wave of 32 reads is
 * one hop from daemon to client and one back. Across two vCPUs of this kind
 * of machine a hop is an interrupt through the hypervisor (tens of us), on
 * one CPU a switch (a few us), and the scheduler chooses differently from run
 * to run. So that row runs the daemon's threads, this process and fio on one
 * CPU, the same for both sides (bench/cpu.h): BENCH_STORAGE_PIN=irq (default:
 * the CPU that took most of the data directory's disk interrupts), a CPU
 * number, or none. It is run left to the scheduler as well, and printed.
 * The throughput rows need the second CPU for their copies and are not
 * pinned.
 * The daemon is $CHAINFSD, else ./chainfsd (make runs it from the build
 * directory). Prints a table and a last line "ratio: name=value ..." (ratios
 * of the medians; the table also shows the median of the rounds' own ratios).
 * Each chainfs row also gets its CPU cost per I/O: the daemon's (all its
 * threads, from /proc/PID/task/<tid>/schedstat) and this client process's
 * (getrusage), and the daemon's context switches per I/O (wake-ups): on a
 * shared 2-core VM these move far less with the neighbours' load than the
 * throughput does, so they are what to compare between builds.
 *
 * The write payload is one prepared 1 MiB buffer whose CRC32C is computed
 * once: the client's CRC cost is not what this measures (a real client pays
 * about 0.1 ms per MiB with isa-l).
 */
#define _GNU_SOURCE   /* cpu_set_t */
#define RT_LOG_SUBSYS "bench"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/cpu.h"
#include "bench/fio.h"
#include "bench/net.h"
#include "bench/stats.h"
#include "actors/storage/storage.h"
#include "client/client.h"
#include "client/targets.h"
#include "disk/disk.h"
#include "tests/proc.h"

#define TARGET	    1
#define NCHUNKS	    1024u /* 1 GiB data set, as fio's file */
#define CHUNK	    (1u << 20)
#define DATASET_MIB (NCHUNKS * (CHUNK >> 20))

static double g_seconds = 3.0;
static unsigned g_rounds = 3;
static char g_dir[512];
static char g_fio_file[600];
static char g_tdir[600];
static struct tp_proc g_proc; /* the daemon: pid, port, conf, log */
static int g_pin_cpu = -1;    /* the latency row's CPU; -1: not pinned */
static cpu_set_t g_all_cpus;  /* this process's affinity as it started */

static void
die(const char *what, int rc)
{
	fprintf(stderr, "bench_storage: %s: %s\n", what, cfs_strerror(rc));
	tp_procs_kill(&g_proc, 1);
	exit(1);
}

/* ------------------------------------------------------------ the daemon */

static void
daemon_start(const char *daemon)
{
	static const char *const args[] = {"--log-level", "info", NULL};
	static const uint32_t targets[] = {TARGET};
	const char *loops = getenv("BENCH_STORAGE_LOOPS");
	struct tp_conf c = {.id = 1,
			    .loops = loops ? loops : "2",
			    .log_level = "warn",
			    .ntargets = 1,
			    .targets = targets,
			    .target_path = g_tdir,
			    .capacity = "8G"};
	int rc;

	snprintf(g_proc.conf, sizeof(g_proc.conf), "%s/chainfsd.conf", g_dir);
	snprintf(g_proc.log, sizeof(g_proc.log), "%s/chainfsd.log", g_dir);
	/* Two loops, as a node runs them: the target on loop 1 (auto), and so
	 * the connections too (chainfsd hands them to its targets' loops); loop
	 * 0 accepts and runs the control actors. Not pinned: this process
	 * shares the two cores. */
	rc = tp_conf_write(&g_proc, &c);
	if (rc != 0)
		die(g_proc.conf, rc);
	rc = tp_proc_start(&g_proc, daemon, TP_LOG_TRUNC | TP_STDERR_ONLY, args);
	if (rc != 0)
		die("fork", rc);
	g_proc.port = 0;
	rc = tp_proc_wait_serving(&g_proc, 60, 20);
	if (rc == -ECHILD) {
		fprintf(stderr, "bench_storage: %s exited; see %s\n", daemon, g_proc.log);
		exit(1);
	}
	if (!g_proc.port)
		die("chainfsd did not start", -ETIMEDOUT);
}

/* ------------------------------------------------------------- CPU costs */

struct cpu_snap {
	double daemon_s;    /* CPU time of all the daemon's threads */
	double client_s;    /* CPU time of this process */
	uint64_t daemon_cs; /* context switches of all the daemon's threads */
};

static void
cpu_snap(struct cpu_snap *out)
{
	struct rusage ru;
	char path[320], line[256];
	struct dirent *e;
	DIR *d;

	*out = (struct cpu_snap){0};
	getrusage(RUSAGE_SELF, &ru);
	out->client_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			(double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	if (g_proc.pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)g_proc.pid);
	d = opendir(path);
	while (d && (e = readdir(d)) != NULL) {
		unsigned long long ns = 0, v = 0;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)g_proc.pid,
			 e->d_name);
		f = fopen(path, "r");
		if (f && fscanf(f, "%llu", &ns) == 1)
			out->daemon_s += (double)ns / 1e9;
		if (f)
			fclose(f);
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)g_proc.pid, e->d_name);
		f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f)) {
			if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1 ||
			    sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
				out->daemon_cs += v;
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
}

/* ------------------------------------------------------------- placement */

/* Where the daemon's threads and this process's (and so the fio it starts)
 * run: all on g_pin_cpu, or back on every CPU this process started with. */
static void
place(bool pinned)
{
	cpu_set_t one;
	int rc;

	if (g_pin_cpu < 0)
		return;
	CPU_ZERO(&one);
	CPU_SET(g_pin_cpu, &one);
	rc = bench_pin(0, pinned ? &one : &g_all_cpus);
	if (rc == 0 && g_proc.pid > 0)
		rc = bench_pin(g_proc.pid, pinned ? &one : &g_all_cpus);
	if (rc != 0)
		die("set the CPU affinity", rc);
}

/* BENCH_STORAGE_PIN: the latency row's CPU, or -1; says which on stdout. */
static int
pin_cpu_choose(void)
{
	const char *want = getenv("BENCH_STORAGE_PIN");
	int cpu;

	if (want && strcmp(want, "none") == 0) {
		printf("bench_storage: randread_4k not pinned (BENCH_STORAGE_PIN=none)\n");
		return -1;
	}
	if (want && *want && strcmp(want, "irq") != 0) {
		char *end;
		long v = strtol(want, &end, 10);

		if (*end != '\0' || v < 0 || v >= CPU_SETSIZE || !CPU_ISSET((int)v, &g_all_cpus)) {
			fprintf(stderr,
				"bench_storage: BENCH_STORAGE_PIN=%s: not a CPU this process may "
				"use\n",
				want);
			exit(2);
		}
		printf("bench_storage: randread_4k on cpu %ld (BENCH_STORAGE_PIN)\n", v);
		return (int)v;
	}
	cpu = bench_disk_irq_cpu(g_dir);
	if (cpu < 0 || !CPU_ISSET(cpu, &g_all_cpus)) {
		printf("bench_storage: randread_4k not pinned: cannot tell which CPU takes the "
		       "interrupts of the disk under %s\n",
		       g_dir);
		return -1;
	}
	printf("bench_storage: randread_4k on cpu %d, the one that takes the disk's interrupts\n",
	       cpu);
	return cpu;
}

/* ---------------------------------------------------- the driver (client) */

enum op { OP_SEQREAD, OP_RANDREAD, OP_SEQWRITE };

struct job {
	enum op op;
	uint32_t bs;	 /* bytes per io */
	unsigned batch;	 /* ios per request */
	unsigned window; /* requests in flight */
	bool pinned;	 /* latency-bound: run on g_pin_cpu, fio too */
	double seconds;
	uint64_t count; /* requests to issue; 0: until `seconds` pass */
	cfs_addr_t addr;
	struct rt_buf *payload; /* writes: CHUNK bytes */
	uint32_t payload_crc;
	/* state, on the client loop */
	uint64_t next, rng, t0, deadline, issued;
	unsigned outstanding;
	bool stopping;
	/* results */
	uint64_t ios, bytes, errors;
	int first_error;
	double elapsed;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

static void issue(struct rt_actor *self, struct job *j);

static void
job_finish(struct rt_actor *self, struct job *j)
{
	j->elapsed = (double)(rt_now_ns(rt_actor_loop(self)) - j->t0) / 1e9;
	pthread_mutex_lock(&j->mu);
	j->done = true;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

static void
on_reply(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct job *j = cb_arg;

	j->outstanding--;
	if (rc == 0 && resp->type == CFS_MSG_CHUNK_READ_RESP) {
		const struct cfs_chunk_read_resp *r = RT_BODY(resp, chunk_read_resp);

		for (uint32_t i = 0; i < r->results_count; i++) {
			if (r->results[i].rc != 0 && rc == 0)
				rc = r->results[i].rc;
		}
		if (rc == 0) {
			j->ios += r->results_count;
			j->bytes += resp->plen;
		}
	} else if (rc == 0) {
		j->ios++;
		j->bytes += j->bs;
	}
	if (rc != 0) {
		if (!j->errors)
			j->first_error = rc;
		j->errors++;
	}
	if (!j->stopping &&
	    (j->count ? j->issued >= j->count : rt_now_ns(rt_actor_loop(self)) >= j->deadline))
		j->stopping = true;
	if (j->stopping) {
		if (j->outstanding == 0)
			job_finish(self, j);
		return;
	}
	issue(self, j);
}

static uint64_t
rnd(struct job *j)
{
	j->rng ^= j->rng << 13;
	j->rng ^= j->rng >> 7;
	j->rng ^= j->rng << 17;
	return j->rng;
}

static struct rt_msg *
make_req(struct job *j)
{
	struct rt_msg *m;

	if (j->op == OP_SEQWRITE) {
		struct cfs_chunk_write *w;

		m = rt_msg_new(CFS_MSG_CHUNK_WRITE);
		if (!m || rt_msg_add_iov(m, j->payload, 0, CHUNK) != 0)
			CFS_PANIC("bench: out of memory");
		w = RT_BODY(m, chunk_write);
		w->target = TARGET;
		w->chunk = cfs_chunk_id(1, j->next++ % NCHUNKS);
		w->len = CHUNK;
		w->chunk_size = CHUNK;
		w->crc = j->payload_crc;
		return m;
	}
	if (cfs_chunk_read_msg(TARGET, 0, 0, NULL, j->batch, &m) != 0)
		CFS_PANIC("bench: out of memory");
	for (unsigned i = 0; i < j->batch; i++) {
		struct cfs_chunk_io *io = &RT_BODY(m, chunk_read)->ios[i];

		if (j->op == OP_SEQREAD) {
			/* Sequential through the data set, bs at a time. */
			uint64_t pos = j->next++ * j->bs % ((uint64_t)NCHUNKS * CHUNK);

			io->chunk = cfs_chunk_id(1, pos / CHUNK);
			io->offset = (uint32_t)(pos % CHUNK);
		} else {
			io->chunk = cfs_chunk_id(1, rnd(j) % NCHUNKS);
			io->offset = (uint32_t)(rnd(j) % (CHUNK / j->bs)) * j->bs;
		}
		io->len = j->bs;
	}
	return m;
}

static void
issue(struct rt_actor *self, struct job *j)
{
	struct rt_msg *m = make_req(j);
	int rc = rt_call(self, j->addr, m, 30000, on_reply, j);

	if (rc != 0) {
		rt_msg_free(&m);
		if (!j->errors)
			j->first_error = rc;
		j->errors++;
		if (j->outstanding == 0) {
			j->stopping = true;
			job_finish(self, j);
		}
		return;
	}
	j->outstanding++;
	j->issued++;
}

static void
job_start(struct rt_actor *self, void *arg)
{
	struct job *j = arg;

	j->t0 = rt_now_ns(rt_actor_loop(self));
	j->deadline = j->t0 + (uint64_t)(j->seconds * 1e9);
	for (unsigned i = 0; i < j->window && !j->stopping; i++) {
		if (j->count && j->issued >= j->count)
			break;
		issue(self, j);
	}
}

/* Run a job; returns ios per second. */
static double
run_job(struct cfs_client *c, struct job *j)
{
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	j->done = j->stopping = false;
	j->ios = j->bytes = j->errors = j->issued = 0;
	j->outstanding = 0;
	if (cfs_client_actor_run(c, job_start, j) != 0)
		die("client loop", -ENOMEM);
	pthread_mutex_lock(&j->mu);
	while (!j->done)
		pthread_cond_wait(&j->cv, &j->mu);
	pthread_mutex_unlock(&j->mu);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	if (j->errors)
		die("requests failed", j->first_error);
	return (double)j->ios / j->elapsed;
}

static void
target_stats(struct cfs_client *c, cfs_addr_t addr, struct cfs_target_stats_resp *out)
{
	struct rt_msg *req = rt_msg_new(CFS_MSG_TARGET_STATS), *resp = NULL;
	int rc;

	RT_BODY(req, target_stats)->target = TARGET;
	rc = cfs_client_call(c, addr, req, 0, &resp);
	if (rc != 0)
		die("target_stats", rc);
	*out = *RT_BODY(resp, target_stats_resp);
	out->path = (struct cfs_bytes){0};
	rt_msg_free(&resp);
}

/* ------------------------------------------------------------------- fio */

/* Run fio for one job, with more options when extra is not empty; returns
 * IOPS of direction dir ("read"/"write"). */
static double
run_fio_with(const char *rw, uint32_t bs, unsigned depth, unsigned batch, unsigned fdatasync_n,
	     double seconds, const char *dir, const char *extra)
{
	char args[1024];
	double iops;

	snprintf(args, sizeof(args),
		 "--name=b --filename=%s --size=%uM --rw=%s --bs=%u --iodepth=%u "
		 "--ioengine=libaio --direct=1 --randrepeat=0 --norandommap "
		 "--iodepth_batch_submit=%u --iodepth_batch_complete_max=%u --fdatasync=%u %s",
		 g_fio_file, DATASET_MIB, rw, bs, depth, batch, batch, fdatasync_n, extra);
	iops = bench_fio(args, seconds, dir, "iops");
	if (iops < 0)
		die("cannot run fio or parse its output (is fio installed?)", -EINVAL);
	return iops;
}

static double
run_fio(const char *rw, uint32_t bs, unsigned depth, unsigned batch, unsigned fdatasync_n,
	double seconds, const char *dir)
{
	return run_fio_with(rw, bs, depth, batch, fdatasync_n, seconds, dir, "");
}

/* ------------------------------------------------------------------ main */

struct row {
	const char *name;
	const char *unit;
	double goal;
	double cand[64], base[64];
	double extra[64]; /* seqwrite: fio without syncs; batch per commit */
	double batch[64];
	double wave[64];		    /* randread_4k: fio taking whole waves, 50 us apart */
	double free_cand[64], free_base[64]; /* a pinned row left to the scheduler */
	double dcpu[64], ccpu[64], dcs[64]; /* per I/O: daemon us, client us, daemon switches */
};

int
main(int argc, char **argv)
{
	const char *daemon = getenv("CHAINFSD") ? getenv("CHAINFSD") : "./chainfsd";
	struct cfs_client_opts co = {.timeout_ms = 30000};
	struct cfs_target_stats_resp st0, st1;
	struct cpu_snap cs0, cs1;
	struct cfs_client *c;
	struct row rows[4] = {
		{.name = "seqread_1m", .unit = "MiB/s", .goal = 0.85},
		{.name = "randread_4k", .unit = "IOPS", .goal = 0.7},
		{.name = "randread_64k", .unit = "MiB/s", .goal = 0.8},
		{.name = "seqwrite_1m", .unit = "MiB/s", .goal = 0.8},
	};
	struct job jobs[4] = {
		{.op = OP_SEQREAD, .bs = CHUNK, .batch = 1, .window = 4},
		{.op = OP_RANDREAD, .bs = 4096, .batch = 8, .window = 4, .pinned = true},
		{.op = OP_RANDREAD, .bs = 65536, .batch = 1, .window = 16},
		{.op = OP_SEQWRITE, .bs = CHUNK, .batch = 1, .window = 8},
	};
	static const char *const fio_rw[4] = {"read", "randread", "randread", "write"};
	static const char *const fio_dir[4] = {"read", "read", "read", "write"};
	bool own_dir = argc <= 3;
	bool inproc = getenv("BENCH_STORAGE_INPROC") && *getenv("BENCH_STORAGE_INPROC") == '1';
	char ep[64];
	uint32_t node;
	cfs_addr_t addr;
	double t0, free_ratio;
	int rc;

	if (argc > 1)
		g_seconds = atof(argv[1]);
	if (argc > 2)
		g_rounds = (unsigned)atoi(argv[2]);
	if (g_seconds <= 0 || g_rounds == 0 || g_rounds > 64) {
		fprintf(stderr, "usage: bench_storage [SECONDS [ROUNDS (1..64) [DIR]]]\n");
		return 2;
	}
	if (own_dir) {
		snprintf(g_dir, sizeof(g_dir), "/var/tmp/cfs-bench-storage.XXXXXX");
		if (!mkdtemp(g_dir))
			die("mkdtemp", -errno);
	} else {
		snprintf(g_dir, sizeof(g_dir), "%s", argv[3]);
		mkdir(g_dir, 0755);
	}
	snprintf(g_fio_file, sizeof(g_fio_file), "%s/fio.data", g_dir);
	snprintf(g_tdir, sizeof(g_tdir), "%s/target", g_dir);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	rt_log_set_level(RT_LOG_ERR);
	printf("bench_storage: %s\n", bench_net_setup());
	if (getenv("BENCH_STORAGE_4K_SHAPE") != NULL) {
		/* WINDOWxBATCH: requests in flight x reads per request */
		unsigned w, b;

		if (sscanf(getenv("BENCH_STORAGE_4K_SHAPE"), "%ux%u", &w, &b) != 2 || w == 0 ||
		    b == 0 || w * b > 256) {
			fprintf(stderr, "BENCH_STORAGE_4K_SHAPE: WINDOWxBATCH, e.g. 4x8\n");
			return 2;
		}
		jobs[1].window = w;
		jobs[1].batch = b;
	}
	if (sched_getaffinity(0, sizeof(g_all_cpus), &g_all_cpus) != 0)
		die("read the CPU affinity", -errno);
	if (bench_row_wanted("BENCH_STORAGE_ROWS", rows[1].name))
		g_pin_cpu = pin_cpu_choose();

	if (inproc) {
		/* The target in this process, on the client runtime's second loop:
		 * the same actor and engine without TCP, to see what the transport
		 * costs. */
		struct stor_config sc = {
			.target_id = TARGET, .path = g_tdir, .capacity = 8ull << 30};

		co.loops = 2;
		rc = cfs_client_create(&co, &c);
		if (rc == 0)
			rc = rt_spawn(rt_loop_at(cfs_client_rt(c), 1), &stor_kind, &sc, 0, &addr);
		if (rc != 0)
			die("in-process target", rc);
	} else {
		daemon_start(daemon);
		rc = cfs_client_create(&co, &c);
		snprintf(ep, sizeof(ep), "127.0.0.1:%u", g_proc.port);
		if (rc == 0)
			rc = cfs_client_connect(c, ep, &node);
		if (rc == 0)
			rc = cfs_target_find(c, node, TARGET, &addr);
		if (rc != 0)
			die("reach the target", rc);
	}

	/* Data set: 1 GiB of 1 MiB chunks, written twice so that the slots the
	 * write rows reuse have been written before (as fio's file has). */
	jobs[3].payload = rt_buf_get(CHUNK);
	for (uint32_t i = 0; i < CHUNK; i++)
		jobs[3].payload->data[i] = (uint8_t)(i * 2654435761u >> 24);
	jobs[3].payload->len = CHUNK;
	jobs[3].payload_crc = disk_crc32c(0, jobs[3].payload->data, CHUNK);
	for (unsigned i = 0; i < 4; i++) {
		jobs[i].addr = addr;
		jobs[i].rng = 88172645463325252ull + i;
	}
	printf("bench_storage: dir=%s seconds=%.1f rounds=%u: preparing %u MiB for each\n", g_dir,
	       g_seconds, g_rounds, DATASET_MIB);
	t0 = tp_now_s();
	target_stats(c, addr, &st0);
	if (st0.chunks < NCHUNKS) {
		struct job prep = jobs[3];

		prep.count = 2 * NCHUNKS;
		run_job(c, &prep);
		printf("bench_storage: target data set ready in %.1f s\n", tp_now_s() - t0);
	}
	{
		/* One untimed pass of whole-chunk reads: after a (re)start the engine
		 * reads a chunk whole the first time, to build its per-4 KiB CRC table;
		 * the rows measure the steady state. */
		struct job warm = jobs[0];

		warm.count = NCHUNKS;
		t0 = tp_now_s();
		run_job(c, &warm);
		printf("bench_storage: CRC tables warm in %.1f s\n", tp_now_s() - t0);
	}
	{
		struct stat sb;

		if (stat(g_fio_file, &sb) != 0 || sb.st_size != (off_t)DATASET_MIB << 20) {
			t0 = tp_now_s();
			run_fio("write", CHUNK, 8, 0, 0, 0, "write"); /* lays out fio's file, */
			run_fio("write", CHUNK, 8, 0, 0, 0, "write"); /* written twice as ours */
			printf("bench_storage: fio file ready in %.1f s\n", tp_now_s() - t0);
		}
	}

	for (unsigned r = 0; r < g_rounds; r++) {
		for (unsigned k = 0; k < 4; k++) {
			struct job *j = &jobs[k];
			unsigned depth = j->window * j->batch;
			double ops;

			if (!bench_row_wanted("BENCH_STORAGE_ROWS", rows[k].name))
				continue;
			j->seconds = g_seconds;
			place(j->pinned);
			target_stats(c, addr, &st0);
			cpu_snap(&cs0);
			ops = run_job(c, j);
			cpu_snap(&cs1);
			target_stats(c, addr, &st1);
			rows[k].cand[r] = k == 1 ? ops : ops * j->bs / (1 << 20);
			if (j->ios) {
				rows[k].dcpu[r] =
					(cs1.daemon_s - cs0.daemon_s) * 1e6 / (double)j->ios;
				rows[k].ccpu[r] =
					(cs1.client_s - cs0.client_s) * 1e6 / (double)j->ios;
				rows[k].dcs[r] =
					(double)(cs1.daemon_cs - cs0.daemon_cs) / (double)j->ios;
			}
			if (j->op == OP_SEQWRITE) {
				double commits = (double)(st1.commits - st0.commits);
				double items = (double)(st1.commit_items - st0.commit_items);
				unsigned b = commits > 0 ? (unsigned)lround(items / commits) : 1;

				rows[k].batch[r] = commits > 0 ? items / commits : 0;
				rows[k].base[r] = run_fio(fio_rw[k], j->bs, depth, 0, b ? b : 1,
							  g_seconds, fio_dir[k]) *
						  j->bs / (1 << 20);
				rows[k].extra[r] = run_fio(fio_rw[k], j->bs, depth, 0, 0, g_seconds,
							   fio_dir[k]) *
						   j->bs / (1 << 20);
			} else {
				/* fio submits and reaps as many at a time as one of our
				 * requests carries: the same batching. */
				unsigned fb = j->batch > 1 ? j->batch : 0;
				char wave[128];

				ops = run_fio(fio_rw[k], j->bs, depth, fb, 0, g_seconds,
					      fio_dir[k]);
				rows[k].base[r] = k == 1 ? ops : ops * j->bs / (1 << 20);
				if (fb) {
					ops = run_fio(fio_rw[k], j->bs, depth, 0, 0, g_seconds,
						      fio_dir[k]);
					rows[k].extra[r] = k == 1 ? ops : ops * j->bs / (1 << 20);
					/* Submit the whole wave in one call once all of
					 * it completed, then sleep 50 us: one round trip
					 * per wave, no more. */
					snprintf(wave, sizeof(wave),
						 "--iodepth_batch_complete_min=%u --thinktime=50 "
						 "--thinktime_blocks=%u",
						 depth, depth);
					ops = run_fio_with(fio_rw[k], j->bs, depth, depth, 0,
							   g_seconds, fio_dir[k], wave);
					rows[k].wave[r] = k == 1 ? ops : ops * j->bs / (1 << 20);
				}
				if (j->pinned && g_pin_cpu >= 0) {
					/* The same, placed by the scheduler: for reference. */
					place(false);
					rows[k].free_cand[r] = run_job(c, j);
					rows[k].free_base[r] = run_fio(fio_rw[k], j->bs, depth, fb,
								       0, g_seconds, fio_dir[k]);
				}
			}
			place(false);
			printf("round %u %-13s chainfs %10.1f  fio %10.1f %-5s  per io: daemon "
			       "%6.1f us, client %6.1f us, daemon cs %5.2f\n",
			       r + 1, rows[k].name, rows[k].cand[r], rows[k].base[r], rows[k].unit,
			       rows[k].dcpu[r], rows[k].ccpu[r], rows[k].dcs[r]);
		}
	}
	{
		double fb = bench_median(rows[1].free_base, g_rounds);

		/* The pinned row left to the scheduler (when it was pinned). */
		free_ratio = fb > 0 ? bench_median(rows[1].free_cand, g_rounds) / fb : 0;
	}

	/* Each round's own ratio too: chainfs and fio run back to back, so on a
	 * noisy machine the median of those pairs says more than the ratio of
	 * two medians taken from different moments. */
	printf("\n%-40s %12s %12s %7s %9s %6s\n", "row (median of rounds)", "chainfs", "fio",
	       "ratio", "per-round", "goal");
	for (unsigned k = 0; k < 4; k++) {
		double cm = bench_median(rows[k].cand, g_rounds), bm = bench_median(rows[k].base, g_rounds);
		double pr[BENCH_MAX_ROUNDS];
		char label[64];

		if (!bench_row_wanted("BENCH_STORAGE_ROWS", rows[k].name))
			continue;
		if (k == 3)
			snprintf(label, sizeof(label), "%s durable %s (fdatasync/%.0f)",
				 rows[k].name, rows[k].unit, bench_median(rows[k].batch, g_rounds));
		else if (jobs[k].batch > 1 && jobs[k].pinned && g_pin_cpu >= 0)
			snprintf(label, sizeof(label), "%s %s (batches of %u, cpu %d)",
				 rows[k].name, rows[k].unit, jobs[k].batch, g_pin_cpu);
		else if (jobs[k].batch > 1)
			snprintf(label, sizeof(label), "%s %s (batches of %u)", rows[k].name,
				 rows[k].unit, jobs[k].batch);
		else
			snprintf(label, sizeof(label), "%s %s", rows[k].name, rows[k].unit);
		for (unsigned r = 0; r < g_rounds; r++)
			pr[r] = rows[k].base[r] > 0 ? rows[k].cand[r] / rows[k].base[r] : 0;
		printf("%-40s %12.1f %12.1f %7.2f %9.2f %6.2f\n", label, cm, bm, bm > 0 ? cm / bm : 0,
		       bench_median(pr, g_rounds), rows[k].goal);
	}
	printf("\n%-40s %12s %12s %12s\n", "CPU per I/O (median of rounds)", "daemon us",
	       "client us", "daemon cs");
	for (unsigned k = 0; k < 4; k++) {
		if (!bench_row_wanted("BENCH_STORAGE_ROWS", rows[k].name))
			continue;
		printf("%-40s %12.1f %12.1f %12.2f\n", rows[k].name, bench_median(rows[k].dcpu, g_rounds),
		       bench_median(rows[k].ccpu, g_rounds), bench_median(rows[k].dcs, g_rounds));
	}
	if (bench_row_wanted("BENCH_STORAGE_ROWS", rows[1].name)) {
		double cm = bench_median(rows[1].cand, g_rounds);
		double wm = bench_median(rows[1].wave, g_rounds);

		printf("%-40s %12s %12.1f %7s %6s\n", "randread_4k fio unbatched IOPS", "-",
		       bench_median(rows[1].extra, g_rounds), "-", "-");
		printf("%-40s %12.1f %12.1f %7.2f %6s\n", "randread_4k fio whole waves +50us IOPS",
		       cm, wm, wm > 0 ? cm / wm : 0, "-");
		if (g_pin_cpu >= 0)
			printf("%-40s %12.1f %12.1f %7.2f %6s\n",
			       "randread_4k left to the scheduler IOPS",
			       bench_median(rows[1].free_cand, g_rounds),
			       bench_median(rows[1].free_base, g_rounds), free_ratio, "-");
	}
	if (bench_row_wanted("BENCH_STORAGE_ROWS", rows[3].name))
		printf("%-40s %12s %12.1f %7s %6s\n", "seqwrite_1m fio without syncs MiB/s", "-",
		       bench_median(rows[3].extra, g_rounds), "-", "-");
	printf("ratio:");
	for (unsigned k = 0; k < 4; k++) {
		double cm = bench_median(rows[k].cand, g_rounds), bm = bench_median(rows[k].base, g_rounds);

		if (!bench_row_wanted("BENCH_STORAGE_ROWS", rows[k].name))
			continue;
		printf(" %s=%.2f", rows[k].name, bm > 0 ? cm / bm : 0);
		if (k == 1 && g_pin_cpu >= 0)
			printf(" %s_unpinned=%.2f", rows[k].name, free_ratio);
	}
	printf("\n");

	rt_buf_put(&jobs[3].payload);
	cfs_client_destroy(&c);
	tp_proc_signal(&g_proc, SIGTERM);
	if (own_dir)
		tp_rm_rf(g_dir);
	return 0;
}

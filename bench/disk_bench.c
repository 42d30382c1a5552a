/* SPDX-License-Identifier: MIT */
/*
 * Micro-benchmark of the chunk engine alone (no network, no actors): one
 * target on a directory, driven in-process on a bare ev_loop at a fixed queue
 * depth, side by side with fio in bench/disk_compare.sh. Subcommands:
 *
 *   write    whole-chunk writes (REPLACE|COMMIT), durable, qd in flight
 *   read     reads over the chunks a previous `write` left (random or sequential)
 *   populate fill index.db with N rows directly (for open-time measurements)
 *   open     time disk_target_open of an existing target
 *
 * Every run prints one line "disk_bench key=value ..." that scripts parse.
 *
 * The engine runs on a real runtime loop (rt, one loop, run by the main
 * thread) so its I/O buffers come from the loop's pool as they do in
 * chainfsd: buffers allocated fresh for every request cost more than the
 * disk here (first touch of new pages in this VM: ~2.5 ms per MiB).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "disk/disk.h"

static struct {
	const char *dir;
	uint32_t bs;	  /* bytes per request */
	uint32_t chunk;	  /* chunk size */
	unsigned qd;	  /* requests in flight */
	unsigned batch;	  /* reads per disk_read call */
	uint64_t count;	  /* requests */
	uint64_t nchunks; /* chunks to spread over (write: ids 0..n-1) */
	bool random;
	bool copy; /* payload not aligned: exercise the copy path */
	enum disk_sync_mode sync;
	enum disk_prep_mode prep;
	uint64_t capacity;
	uint64_t crc_cache;
	uint64_t seed;
} g = {
	.bs = 1 << 20,
	.chunk = 1 << 20,
	.qd = 16,
	.batch = 1,
	.count = 1000,
	.capacity = 64ull << 30,
	.seed = 1,
};

static struct rt *g_rt;
static struct ev_loop *g_ev;
static struct disk_ioeng *g_eng;
static struct disk_target *g_t;
static uint64_t g_done, g_issued, g_errors, g_bytes;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
xs(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static struct cfs_id128
mkid(uint64_t n)
{
	struct cfs_id128 id = {{0}};

	/* (inode 1, index n), big-endian: list order is index order */
	id.b[7] = 1;
	for (int i = 0; i < 8; i++)
		id.b[8 + i] = (uint8_t)(n >> (56 - 8 * i));
	return id;
}

static void
open_target(void)
{
	struct disk_target_opts o = {
		.path = g.dir,
		.capacity = g.capacity,
		.sync_mode = g.sync,
		.prep = g.prep,
		.crc_cache_bytes = g.crc_cache,
	};
	int rc;

	g_ev = rt_loop_ev(rt_loop_current());
	rc = disk_aio_create(g_ev, 1024, &g_eng);
	if (rc == 0)
		rc = disk_target_open(g_eng, &o, &g_t);
	if (rc != 0) {
		fprintf(stderr, "disk_bench: open %s: %s\n", g.dir, cfs_strerror(rc));
		exit(1);
	}
}

static void
close_target(void)
{
	disk_target_close(&g_t);
	disk_aio_put(&g_eng);
}

static int g_exit;

static void
finish_posted(void *arg)
{
	if (g_t != NULL)
		close_target();
	rt_shutdown(g_rt);
}

/* Close and stop from a fresh loop turn: never inside an engine callback. */
static void
finish(int rc)
{
	g_exit = rc;
	rt_loop_post(rt_loop_at(g_rt, 0), finish_posted, NULL);
}

/* ------------------------------------------------------------------ write */

struct wslot {
	struct rt_buf *buf;
	uint32_t off;
	uint32_t crc;
	bool busy;
};

static struct wslot *g_ws;

static void write_next(struct wslot *s);
static void write_finish(void);
static double g_t0;

static void
write_done(void *arg, int rc, const struct disk_chunk_info *info)
{
	struct wslot *s = arg;

	s->busy = false;
	g_done++;
	if (rc != 0) {
		if (g_errors++ < 5)
			fprintf(stderr, "disk_bench: write: %s\n", cfs_strerror(rc));
	} else {
		g_bytes += g.bs;
	}
	if (g_done == g.count) {
		write_finish();
		return;
	}
	write_next(s);
}

static void
write_next(struct wslot *s)
{
	struct rt_iov iov = {.buf = s->buf, .off = s->off, .len = g.bs};
	struct disk_write w = {
		.chunk_size = g.chunk,
		.len = g.bs,
		.iov = &iov,
		.iovcnt = 1,
		.crc = s->crc,
		.flags = DISK_W_COMMIT | DISK_W_REPLACE,
	};
	int rc;

	if (g_issued >= g.count)
		return;
	w.id = mkid(g_issued % g.nchunks);
	g_issued++;
	s->busy = true;
	rc = disk_write(g_t, &w, write_done, s);
	if (rc != 0) {
		fprintf(stderr, "disk_bench: write: %s\n", cfs_strerror(rc));
		exit(1);
	}
}

static void
cmd_write(void)
{
	uint64_t seed = g.seed;

	open_target();
	g_ws = calloc(g.qd, sizeof(*g_ws));
	for (unsigned i = 0; i < g.qd; i++) {
		struct wslot *s = &g_ws[i];

		s->off = g.copy ? 64 : 0;
		s->buf = rt_buf_get(g.bs + s->off);
		for (uint32_t k = 0; k + 8 <= g.bs + s->off; k += 8) {
			uint64_t x = xs(&seed);

			memcpy(s->buf->data + k, &x, 8);
		}
		s->crc = disk_crc32c(0, s->buf->data + s->off, g.bs);
	}
	g_t0 = now_s();
	for (unsigned i = 0; i < g.qd; i++)
		write_next(&g_ws[i]);
}

static void
write_finish(void)
{
	double t1 = now_s();
	struct disk_stats st;

	disk_stats(g_t, &st);
	printf("disk_bench op=write bs=%u chunk=%u qd=%u count=%lu sync=%s prep=%d copy=%d"
	       " secs=%.3f iops=%.0f mbps=%.1f commits=%lu per_commit=%.1f fdatasync_ms=%.2f"
	       " sqlite_ms=%.2f errors=%lu\n",
	       g.bs, g.chunk, g.qd, (unsigned long)g.count,
	       g.sync == DISK_SYNC_DSYNC ? "dsync" : "fdatasync", g.prep, g.copy, t1 - g_t0,
	       (double)g.count / (t1 - g_t0), (double)g_bytes / (t1 - g_t0) / 1048576.0,
	       (unsigned long)st.commits,
	       st.commits ? (double)st.commit_items / (double)st.commits : 0.0,
	       st.commits ? (double)st.fdatasync_ns / 1e6 / (double)st.commits : 0.0,
	       st.commits ? (double)st.commit_ns / 1e6 / (double)st.commits : 0.0,
	       (unsigned long)g_errors);
	fflush(stdout);
	for (unsigned i = 0; i < g.qd; i++)
		rt_buf_put(&g_ws[i].buf);
	free(g_ws);
	finish(g_errors ? 1 : 0);
}

/* ------------------------------------------------------------------- read */

struct rslot {
	struct disk_read *rd;
};

static uint64_t g_seq_pos;
static uint64_t g_rseed;
static uint32_t g_chunk_len;
static bool g_warmup;
static struct rslot *g_rslots;
static unsigned g_nrslots;
static uint32_t g_run_bs;
static unsigned g_run_batch;

static void read_next(struct rslot *s);
static void read_phase_end(void);

static void
read_done(void *arg, struct disk_read *rd, unsigned n)
{
	struct rslot *s = arg;

	for (unsigned i = 0; i < n; i++) {
		if (rd[i].rc != 0 || rd[i].data.len != g_run_bs) {
			if (g_errors++ < 5)
				fprintf(stderr, "disk_bench: read: %s len=%u\n",
					cfs_strerror(rd[i].rc), rd[i].data.len);
		} else {
			g_bytes += rd[i].data.len;
		}
		rt_buf_put(&rd[i].data.buf);
	}
	g_done += n;
	if (g_done == (g_warmup ? g.nchunks : g.count)) {
		read_phase_end();
		return;
	}
	read_next(s);
}

static void
read_next(struct rslot *s)
{
	uint64_t count = g_warmup ? g.nchunks : g.count;
	unsigned per_chunk = g_chunk_len / g_run_bs;
	unsigned n = 0;

	while (n < g_run_batch && g_issued < count) {
		struct disk_read *r = &s->rd[n++];
		uint64_t blk;

		if (g.random && !g_warmup)
			blk = xs(&g_rseed) % (g.nchunks * per_chunk);
		else
			blk = g_seq_pos++ % (g.nchunks * per_chunk);
		memset(r, 0, sizeof(*r));
		r->id = mkid(blk / per_chunk);
		r->off = (uint32_t)(blk % per_chunk) * g_run_bs;
		r->len = g_run_bs;
		g_issued++;
	}
	if (n > 0 && disk_read(g_t, s->rd, n, read_done, s) != 0) {
		fprintf(stderr, "disk_bench: disk_read refused\n");
		exit(1);
	}
}

static void
read_phase_start(bool warmup)
{
	g_warmup = warmup;
	g_run_bs = warmup ? g_chunk_len : g.bs;
	g_run_batch = warmup ? 1 : g.batch;
	g_done = g_issued = g_bytes = g_errors = 0;
	g_seq_pos = 0;
	g_t0 = now_s();
	for (unsigned i = 0; i < g_nrslots; i++)
		read_next(&g_rslots[i]);
}

static void
read_phase_end(void)
{
	double t1 = now_s();
	struct disk_stats st;

	if (g_warmup) {
		read_phase_start(false);
		return;
	}
	disk_stats(g_t, &st);
	printf("disk_bench op=%s bs=%u chunk=%u qd=%u batch=%u count=%lu crc_cache=%lu"
	       " secs=%.3f iops=%.0f mbps=%.1f checksum_errors=%lu errors=%lu\n",
	       g.random ? "randread" : "read", g.bs, g_chunk_len, g.qd, g.batch,
	       (unsigned long)g.count, (unsigned long)st.crc_cache_bytes, t1 - g_t0,
	       (double)g.count / (t1 - g_t0), (double)g_bytes / (t1 - g_t0) / 1048576.0,
	       (unsigned long)st.checksum_errors, (unsigned long)g_errors);
	fflush(stdout);
	for (unsigned i = 0; i < g_nrslots; i++)
		free(g_rslots[i].rd);
	free(g_rslots);
	finish(g_errors ? 1 : 0);
}

static void
cmd_read(void)
{
	struct disk_chunk_info info;
	struct cfs_id128 id0 = mkid(0);

	open_target();
	if (disk_query(g_t, &id0, &info) != 0) {
		fprintf(stderr, "disk_bench: no chunks in %s: run write first\n", g.dir);
		close_target();
		finish(1);
		return;
	}
	g_chunk_len = info.len;
	if (g_chunk_len < g.bs)
		g.bs = g_chunk_len;
	g_rseed = g.seed;
	g_nrslots = (g.qd + g.batch - 1) / g.batch;
	g_rslots = calloc(g_nrslots, sizeof(*g_rslots));
	for (unsigned i = 0; i < g_nrslots; i++)
		g_rslots[i].rd = calloc(g.batch, sizeof(struct disk_read));
	/* Warm-up: one whole read per chunk, so CRC tables are in memory as they
	 * are after writes (a fresh open checks each chunk whole on first use). */
	read_phase_start(true);
}

/* ------------------------------------------------------ populate and open */

static void
cmd_populate(void)
{
	char p[4096];
	sqlite3 *db;
	sqlite3_stmt *st;
	double t0 = now_s();
	int fd;

	/* Create the target's files with the engine first (schema, meta), then add
	 * rows referencing 4 KiB slots of a sparse data file. */
	open_target();
	close_target();
	snprintf(p, sizeof(p), "%s/slots-4K.dat", g.dir);
	fd = open(p, O_RDWR);
	if (fd < 0 || ftruncate(fd, (off_t)(g.count * 4096)) != 0) {
		perror(p);
		finish(1);
		return;
	}
	close(fd);
	snprintf(p, sizeof(p), "%s/index.db", g.dir);
	if (sqlite3_open(p, &db) != SQLITE_OK) {
		finish(1);
		return;
	}
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; BEGIN", NULL, NULL, NULL);
	sqlite3_prepare_v2(db,
			   "INSERT OR REPLACE INTO chunks (id, csize, cls, ver, slot, len, crc, pver, "
			   "pslot, plen, pcrc) VALUES (?,4096,0,1,?,4096,12345,0,0,0,0)",
			   -1, &st, NULL);
	for (uint64_t i = 0; i < g.count; i++) {
		struct cfs_id128 id = mkid(i);

		sqlite3_bind_blob(st, 1, id.b, 16, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)i);
		if (sqlite3_step(st) != SQLITE_DONE) {
			fprintf(stderr, "populate: %s\n", sqlite3_errmsg(db));
			finish(1);
			return;
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
	sqlite3_close(db);
	printf("disk_bench op=populate count=%lu secs=%.3f\n", (unsigned long)g.count,
	       now_s() - t0);
	finish(0);
}

static void
cmd_open(void)
{
	struct disk_stats st;
	struct disk_check chk;
	struct rusage ru0, ru1;
	double t0, t1, t2;
	int rc;

	getrusage(RUSAGE_SELF, &ru0);
	t0 = now_s();
	open_target();
	t1 = now_s();
	getrusage(RUSAGE_SELF, &ru1);
	disk_stats(g_t, &st);
	rc = disk_target_check(g_t, &chk);
	t2 = now_s();
	printf("disk_bench op=open chunks=%lu open_secs=%.3f open_cpu_secs=%.3f check_secs=%.3f"
	       " check=%s\n",
	       (unsigned long)st.chunks, t1 - t0,
	       (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
			ru0.ru_stime.tv_sec) +
		       (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
				ru0.ru_stime.tv_usec) /
			       1e6,
	       t2 - t1, rc == 0 ? "ok" : chk.first);
	close_target();
	finish(rc == 0 ? 0 : 1);
}

static uint64_t
parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 10);

	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		break;
	default:
		break;
	}
	return v;
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: disk_bench write|read|populate|open --dir DIR [--bs SIZE] [--chunk SIZE]\n"
		"       [--qd N] [--batch N] [--count N] [--chunks N] [--random] [--copy]\n"
		"       [--sync fdatasync|dsync] [--prep auto|fallocate|zero] [--capacity SIZE]\n"
		"       [--crc-cache BYTES] [--seed N]\n");
	exit(2);
}

static void
run_cmd(void *arg)
{
	void (*fn)(void) = (void (*)(void))arg;

	fn();
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"dir", 1, NULL, 'd'},	     {"bs", 1, NULL, 'b'},     {"chunk", 1, NULL, 'c'},
		{"qd", 1, NULL, 'q'},	     {"batch", 1, NULL, 'B'},  {"count", 1, NULL, 'n'},
		{"chunks", 1, NULL, 'N'},    {"random", 0, NULL, 'r'}, {"copy", 0, NULL, 'C'},
		{"sync", 1, NULL, 's'},	     {"prep", 1, NULL, 'p'},   {"capacity", 1, NULL, 'a'},
		{"crc-cache", 1, NULL, 'x'}, {"seed", 1, NULL, 'S'},   {NULL, 0, NULL, 0},
	};
	void (*fn)(void) = NULL;
	const char *cmd;
	int c;

	if (argc < 2)
		usage();
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			g.dir = optarg;
			break;
		case 'b':
			g.bs = (uint32_t)parse_size(optarg);
			break;
		case 'c':
			g.chunk = (uint32_t)parse_size(optarg);
			break;
		case 'q':
			g.qd = (unsigned)atoi(optarg);
			break;
		case 'B':
			g.batch = (unsigned)atoi(optarg);
			break;
		case 'n':
			g.count = parse_size(optarg);
			break;
		case 'N':
			g.nchunks = parse_size(optarg);
			break;
		case 'r':
			g.random = true;
			break;
		case 'C':
			g.copy = true;
			break;
		case 's':
			g.sync = strcmp(optarg, "dsync") == 0 ? DISK_SYNC_DSYNC
							      : DISK_SYNC_FDATASYNC;
			break;
		case 'p':
			g.prep = strcmp(optarg, "zero") == 0	    ? DISK_PREP_ZERO
				 : strcmp(optarg, "fallocate") == 0 ? DISK_PREP_FALLOCATE
								    : DISK_PREP_AUTO;
			break;
		case 'a':
			g.capacity = parse_size(optarg);
			break;
		case 'x':
			g.crc_cache = parse_size(optarg);
			break;
		case 'S':
			g.seed = parse_size(optarg) | 1;
			break;
		default:
			usage();
		}
	}
	if (g.dir == NULL || g.qd == 0 || g.batch == 0 || g.bs == 0 || g.bs % DISK_BLOCK != 0)
		usage();
	if (g.nchunks == 0)
		g.nchunks = g.count;
	if (strcmp(cmd, "write") == 0)
		fn = cmd_write;
	else if (strcmp(cmd, "read") == 0)
		fn = cmd_read;
	else if (strcmp(cmd, "populate") == 0)
		fn = cmd_populate;
	else if (strcmp(cmd, "open") == 0)
		fn = cmd_open;
	else
		usage();
	if (rt_create(&(struct rt_config){.loops = 1}, &g_rt) != 0 || rt_start(g_rt, true) != 0 ||
	    rt_loop_post(rt_loop_at(g_rt, 0), run_cmd, (void *)fn) != 0) {
		fprintf(stderr, "disk_bench: cannot start the runtime\n");
		return 1;
	}
	rt_run_loop0(g_rt);
	rt_destroy(&g_rt);
	return g_exit;
}

// SPDX-License-Identifier: MIT
/*
 * chunk_window: the chunk client's asynchronous API, end to end.
 *
 * Writes COUNT chunks of SIZE bytes (inode 42, indexes 0..COUNT-1, spread over
 * the cluster's chains by the client's placement), then reads every one back
 * and compares it byte for byte, keeping WINDOW operations in flight the
 * whole time: each completion callback (cfs_chunk_submit's `done`, on the
 * client's loop thread) starts the next operation. No thread per request, no
 * batch that waits for its slowest member. This is the shape an inference
 * server's KV-cache tier has: many small independent puts and gets, each
 * finishing on its own.
 *
 *   chunk_window --mgmtd HOST:PORT [--count N] [--size BYTES] [--window W]
 *
 * Prints what it did and the rate, and exits 0 only when every write was
 * acknowledged and every read returned exactly the bytes written.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chainfs/errno.h"
#include "client/chunk_client.h"
#include "client/targets.h"

#define INODE	   42
#define MAX_WINDOW 1024

struct run;

/* One in-flight operation; its callback starts the next in the same slot. */
struct slot {
	struct run *run;
	struct cfs_chunk_op op;
	uint64_t index; /* chunk index of the current op */
	uint8_t *buf;	/* the write's source, the read's destination: size bytes */
	uint8_t *want;	/* a read's expected bytes: size bytes */
};

struct run {
	struct cfs_chunk_client *cc;
	enum cfs_chunk_op_kind kind;
	uint32_t size;
	uint64_t count;
	_Atomic uint64_t next;
	_Atomic uint64_t ok;
	_Atomic int first_error;
	_Atomic unsigned active; /* slots still running */
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

/* The content of chunk i: a cheap pattern that differs in every chunk. */
static void
fill(uint8_t *p, uint32_t n, uint64_t i)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull;

	for (uint32_t k = 0; k < n; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[k] = (uint8_t)x;
	}
}

static void slot_done(void *arg, struct cfs_chunk_op *ops, unsigned n);

static void
fail(struct run *r, int rc)
{
	int expected = 0;

	atomic_compare_exchange_strong(&r->first_error, &expected, rc);
}

static void
slot_stop(struct run *r)
{
	if (atomic_fetch_sub(&r->active, 1) != 1)
		return;
	pthread_mutex_lock(&r->mu);
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Start the slot's next operation; false when there is none left. */
static bool
slot_next(struct slot *s)
{
	struct run *r = s->run;
	uint64_t i = atomic_fetch_add(&r->next, 1);
	int rc;

	if (i >= r->count || atomic_load(&r->first_error) != 0)
		return false;
	s->index = i;
	if (r->kind == CFS_CHUNK_OP_WRITE)
		fill(s->buf, r->size, i);
	s->op = (struct cfs_chunk_op){
		.kind = r->kind,
		.chain_id = cfs_chunk_client_place(r->cc, INODE, i, 0),
		.chunk = cfs_chunk_id(INODE, i),
		.chunk_size = r->size,
		.len = r->size,
		.data = s->buf,
	};
	rc = cfs_chunk_submit(r->cc, &s->op, 1, slot_done, s);
	if (rc != 0) {
		fail(r, rc);
		return false;
	}
	return true;
}

static void
slot_done(void *arg, struct cfs_chunk_op *ops, unsigned n)
{
	struct slot *s = arg;
	struct run *r = s->run;

	(void)n;
	if (ops->rc != 0) {
		fail(r, ops->rc);
	} else if (r->kind == CFS_CHUNK_OP_READ) {
		fill(s->want, r->size, s->index);
		if (ops->out_len != r->size || memcmp(s->want, s->buf, r->size) != 0) {
			fprintf(stderr, "chunk_window: chunk %u:%llu read back wrong bytes\n", INODE,
				(unsigned long long)s->index);
			fail(r, -EIO);
		} else {
			atomic_fetch_add(&r->ok, 1);
		}
	} else {
		atomic_fetch_add(&r->ok, 1);
	}
	if (!slot_next(s))
		slot_stop(r);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run every chunk through `kind` with `window` slots; seconds taken. */
static double
run_all(struct run *r, struct slot *slots, unsigned window, enum cfs_chunk_op_kind kind)
{
	double t0 = now_s();

	r->kind = kind;
	atomic_store(&r->next, 0);
	atomic_store(&r->ok, 0);
	atomic_store(&r->active, window);
	for (unsigned k = 0; k < window; k++) {
		if (!slot_next(&slots[k]))
			slot_stop(r);
	}
	pthread_mutex_lock(&r->mu);
	while (atomic_load(&r->active) > 0)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	return now_s() - t0;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: chunk_window --mgmtd HOST:PORT [--count N] [--size BYTES] "
		   "[--window W]\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"mgmtd", required_argument, NULL, 'm'}, {"count", required_argument, NULL, 'n'},
		{"size", required_argument, NULL, 's'},	 {"window", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},	 {NULL, 0, NULL, 0},
	};
	struct cfs_chunk_client_opts o = {0};
	struct run r = {.size = 256u << 10, .count = 64};
	unsigned window = 16;
	struct slot *slots = NULL;
	double tw, tr, mib;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "m:n:s:w:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			o.mgmtd = optarg;
			break;
		case 'n':
			r.count = strtoull(optarg, NULL, 0);
			break;
		case 's':
			r.size = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'w':
			window = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.mgmtd || r.count == 0 || r.size == 0 || r.size > (64u << 20) || window == 0 ||
	    window > MAX_WINDOW || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (window > r.count)
		window = (unsigned)r.count;
	rc = cfs_chunk_client_create(&o, &r.cc);
	if (rc != 0) {
		fprintf(stderr, "chunk_window: cannot reach mgmtd at %s: %s\n", o.mgmtd,
			cfs_strerror(rc));
		return 1;
	}
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	rc = 1;
	slots = calloc(window, sizeof(*slots));
	if (!slots)
		goto out;
	for (unsigned k = 0; k < window; k++) {
		slots[k].run = &r;
		slots[k].buf = malloc(r.size);
		slots[k].want = malloc(r.size);
		if (!slots[k].buf || !slots[k].want)
			goto out;
	}
	mib = (double)r.count * r.size / (1 << 20);
	tw = run_all(&r, slots, window, CFS_CHUNK_OP_WRITE);
	if (atomic_load(&r.first_error) != 0) {
		fprintf(stderr, "chunk_window: write failed: %s\n",
			cfs_strerror(atomic_load(&r.first_error)));
		goto out;
	}
	printf("wrote %llu chunks of %u bytes (%.1f MiB), %u in flight: %.3f s, %.0f MiB/s\n",
	       (unsigned long long)r.count, r.size, mib, window, tw, mib / tw);
	tr = run_all(&r, slots, window, CFS_CHUNK_OP_READ);
	if (atomic_load(&r.first_error) != 0) {
		fprintf(stderr, "chunk_window: read failed: %s\n",
			cfs_strerror(atomic_load(&r.first_error)));
		goto out;
	}
	printf("read back and compared %llu chunks, %u in flight: %.3f s, %.0f MiB/s\n",
	       (unsigned long long)atomic_load(&r.ok), window, tr, mib / tr);
	rc = atomic_load(&r.ok) == r.count ? 0 : 1;
out:
	if (slots) {
		for (unsigned k = 0; k < window; k++) {
			free(slots[k].buf);
			free(slots[k].want);
		}
		free(slots);
	}
	cfs_chunk_client_destroy(&r.cc);
	pthread_cond_destroy(&r.cv);
	pthread_mutex_destroy(&r.mu);
	return rc;
}

// SPDX-License-Identifier: MIT
/*
 * The storage target actor through a real runtime and a real chunk engine in a
 * temporary directory, in-process: a client runtime of two loops (the test's
 * client actor on loop 0, the storage actor on loop 1, so every request
 * crosses loops as it does in chainfsd) and blocking or pipelined calls.
 * Covers every storage message, batched reads, partial writes, every bad input
 * of issue 3, a full target, a corrupted data file, and restart.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actors/storage/storage.h"
#include "client/client.h"
#include "client/targets.h"
#include "disk/disk.h"
#include "net/wire.h"
#include "tests/proc.h"

#define TARGET 7u
#define KIB    1024u
#define MIB    (1024u * 1024u)

static char g_dir[256];

struct h {
	struct cfs_client *c;
	cfs_addr_t addr;
};

/* ----------------------------------------------------------------- fixture */

static void
dir_make(void)
{
	const char *base = getenv("TMPDIR");

	/* O_DIRECT needs a real file system; /var/tmp is one where /tmp may be tmpfs. */
	snprintf(g_dir, sizeof(g_dir), "%s/cfs-test-storage.XXXXXX", base ? base : "/var/tmp");
	ck_assert_ptr_nonnull(mkdtemp(g_dir));
}


static int
h_start_cfg(struct h *h, const struct stor_config *cfg)
{
	struct cfs_client_opts o = {.loops = 2, .timeout_ms = 30000};
	int rc;

	ck_assert_int_eq(cfs_client_create(&o, &h->c), 0);
	rc = rt_spawn(rt_loop_at(cfs_client_rt(h->c), 1), &stor_kind, cfg, 0, &h->addr);
	if (rc != 0)
		cfs_client_destroy(&h->c);
	return rc;
}

static int
h_start_cap(struct h *h, uint64_t capacity)
{
	struct stor_config cfg = {
		.target_id = TARGET,
		.path = g_dir,
		.capacity = capacity,
	};

	return h_start_cfg(h, &cfg);
}

static void
h_start(struct h *h)
{
	ck_assert_int_eq(h_start_cap(h, 4ull << 30), 0);
}

/* Stops the runtime: the actor's fini closes the target. */
static void
h_stop(struct h *h)
{
	cfs_client_destroy(&h->c);
}

static void
setup(void)
{
	dir_make();
}

static void
teardown(void)
{
	tp_rm_rf(g_dir);
}

/* ------------------------------------------------------------ requests */

static struct cfs_id128
id_of(uint64_t n)
{
	return cfs_chunk_id(1, n);
}

/* A write request of the given pattern; crc_delta corrupts the CRC sent. */
static struct rt_msg *
write_req(uint64_t chunk, uint32_t chunk_size, uint32_t off, uint32_t len, uint32_t seed)
{
	struct cfs_id128 id = id_of(chunk);
	struct rt_buf *b = rt_buf_get(len ? len : 1);
	struct rt_msg *m;

	ck_assert_ptr_nonnull(b);
	tp_fill(b->data, len, seed);
	ck_assert_int_eq(cfs_chunk_write_msg(TARGET, &id, chunk_size, off, b, 0, len, &m), 0);
	rt_buf_put(&b);
	return m;
}

static int
call(struct h *h, struct rt_msg *req, struct rt_msg **resp)
{
	struct rt_msg *r = NULL;
	int rc = cfs_client_call(h->c, h->addr, req, 0, &r);

	if (resp)
		*resp = r;
	else
		rt_msg_free(&r);
	return rc;
}

static int
do_write(struct h *h, uint64_t chunk, uint32_t chunk_size, uint32_t off, uint32_t len,
	 uint32_t seed, uint64_t *ver)
{
	struct rt_msg *resp;
	int rc = call(h, write_req(chunk, chunk_size, off, len, seed), &resp);

	if (rc == 0 && ver)
		*ver = RT_BODY(resp, chunk_write_resp)->version;
	rt_msg_free(&resp);
	return rc;
}

static struct rt_msg *
read_req(unsigned n)
{
	struct rt_msg *m = NULL;

	ck_assert_int_eq(cfs_chunk_read_msg(TARGET, 0, 0, NULL, n, &m), 0);
	return m;
}

static void
set_io(struct rt_msg *m, unsigned i, uint64_t chunk, uint32_t off, uint32_t len)
{
	RT_BODY(m, chunk_read)->ios[i] =
		(struct cfs_chunk_io){.chunk = id_of(chunk), .offset = off, .len = len};
}

/* Read one range; returns the request rc, *item_rc the result's, bytes into out. */
static int
do_read(struct h *h, uint64_t chunk, uint32_t off, uint32_t len, int *item_rc, uint8_t *out,
	uint32_t *got)
{
	struct rt_msg *req = read_req(1), *resp;
	const struct cfs_chunk_read_resp *r;
	int rc;

	set_io(req, 0, chunk, off, len);
	rc = call(h, req, &resp);
	if (rc != 0) {
		rt_msg_free(&resp);
		return rc;
	}
	r = RT_BODY(resp, chunk_read_resp);
	ck_assert_uint_eq(r->results_count, 1);
	*item_rc = r->results[0].rc;
	if (got)
		*got = r->results[0].len;
	if (r->results[0].rc == 0) {
		uint8_t *tmp = malloc(resp->plen ? resp->plen : 1);

		ck_assert_uint_eq(resp->plen, r->results[0].len);
		ck_assert_int_eq(rt_msg_payload_copy(resp, 0, tmp, resp->plen), 0);
		ck_assert_uint_eq(disk_crc32c(0, tmp, resp->plen), r->results[0].crc);
		if (out)
			memcpy(out, tmp, resp->plen);
		free(tmp);
	}
	rt_msg_free(&resp);
	return 0;
}

/* Read [off, off+len) and compare it with the pattern `seed` shifted by pat_off. */
static void
expect_bytes(struct h *h, uint64_t chunk, uint32_t off, uint32_t len, const uint8_t *want)
{
	uint8_t *got = malloc(len ? len : 1);
	uint32_t n = 0;
	int item = 1;

	ck_assert_int_eq(do_read(h, chunk, off, len, &item, got, &n), 0);
	ck_assert_int_eq(item, 0);
	ck_assert_uint_eq(n, len);
	ck_assert(memcmp(got, want, len) == 0);
	free(got);
}

static int
do_query(struct h *h, uint64_t chunk, struct cfs_chunk_query_resp *out)
{
	struct rt_msg *req = rt_msg_new(CFS_MSG_CHUNK_QUERY), *resp;
	int rc;

	RT_BODY(req, chunk_query)->target = TARGET;
	RT_BODY(req, chunk_query)->chunk = id_of(chunk);
	rc = call(h, req, &resp);
	if (rc == 0 && out)
		*out = *RT_BODY(resp, chunk_query_resp);
	rt_msg_free(&resp);
	return rc;
}

static int
do_stats(struct h *h, struct cfs_target_stats_resp *out)
{
	struct rt_msg *req = rt_msg_new(CFS_MSG_TARGET_STATS), *resp;
	int rc;

	RT_BODY(req, target_stats)->target = TARGET;
	rc = call(h, req, &resp);
	if (rc == 0) {
		*out = *RT_BODY(resp, target_stats_resp);
		out->path = (struct cfs_bytes){0}; /* dies with resp */
	}
	rt_msg_free(&resp);
	return rc;
}

/* ---------------------------------------------------------- round trips */

START_TEST(test_storage_write_read_round_trip_when_valid)
{
	static const uint32_t sizes[] = {4 * KIB, 64 * KIB, 1 * MIB, 4 * MIB};
	struct h h;

	h_start(&h);
	for (unsigned i = 0; i < 4; i++) {
		uint32_t len = sizes[i] - 100; /* not block aligned */
		uint8_t *want = malloc(len);
		struct cfs_chunk_query_resp q;
		uint64_t ver = 0;

		tp_fill(want, len, 10 + i);
		ck_assert_int_eq(do_write(&h, 10 + i, sizes[i], 0, len, 10 + i, &ver), 0);
		ck_assert_uint_eq(ver, 1);
		expect_bytes(&h, 10 + i, 0, len, want);
		expect_bytes(&h, 10 + i, 5000 % len, len - 5000 % len, want + 5000 % len);
		ck_assert_int_eq(do_query(&h, 10 + i, &q), 0);
		ck_assert_uint_eq(q.len, len);
		ck_assert_uint_eq(q.chunk_size, sizes[i]);
		ck_assert_uint_eq(q.committed, 1);
		ck_assert_uint_eq(q.pending, 0);
		ck_assert_uint_eq(q.crc, disk_crc32c(0, want, len));
		free(want);
	}
	h_stop(&h);
}
END_TEST

START_TEST(test_storage_write_response_names_new_state_when_overwritten)
{
	struct rt_msg *resp;
	struct h h;
	uint8_t want[8192];

	h_start(&h);
	ck_assert_int_eq(call(&h, write_req(1, 64 * KIB, 0, 8192, 1), &resp), 0);
	tp_fill(want, 8192, 1);
	ck_assert_uint_eq(RT_BODY(resp, chunk_write_resp)->version, 1);
	ck_assert_uint_eq(RT_BODY(resp, chunk_write_resp)->len, 8192);
	ck_assert_uint_eq(RT_BODY(resp, chunk_write_resp)->crc, disk_crc32c(0, want, 8192));
	ck_assert_uint_eq(RT_BODY(resp, chunk_write_resp)->chain_ver, 0);
	rt_msg_free(&resp);
	ck_assert_int_eq(call(&h, write_req(1, 64 * KIB, 0, 4096, 2), &resp), 0);
	ck_assert_uint_eq(RT_BODY(resp, chunk_write_resp)->version, 2);
	/* A shorter write at 0 keeps the tail: the length stays 8192. */
	ck_assert_uint_eq(RT_BODY(resp, chunk_write_resp)->len, 8192);
	rt_msg_free(&resp);
	h_stop(&h);
}
END_TEST

START_TEST(test_storage_partial_write_merges_when_offset_inside_chunk)
{
	uint8_t *want = calloc(1, 300000);
	struct cfs_chunk_query_resp q;
	uint64_t ver;
	struct h h;

	h_start(&h);
	tp_fill(want, 200000, 3);
	ck_assert_int_eq(do_write(&h, 3, 1 * MIB, 0, 200000, 3, &ver), 0);
	/* Overlapping the end and extending the chunk, not block aligned. */
	tp_fill(want + 150001, 100000, 4);
	ck_assert_int_eq(do_write(&h, 3, 1 * MIB, 150001, 100000, 4, &ver), 0);
	ck_assert_uint_eq(ver, 2);
	/* A write past the end leaves a hole of zeros. */
	tp_fill(want + 290000, 10000, 5);
	ck_assert_int_eq(do_write(&h, 3, 1 * MIB, 290000, 10000, 5, &ver), 0);
	ck_assert_uint_eq(ver, 3);
	ck_assert_int_eq(do_query(&h, 3, &q), 0);
	ck_assert_uint_eq(q.len, 300000);
	ck_assert_uint_eq(q.crc, disk_crc32c(0, want, 300000));
	expect_bytes(&h, 3, 0, 300000, want);
	expect_bytes(&h, 3, 149000, 3000, want + 149000);
	h_stop(&h);
	free(want);
}
END_TEST

START_TEST(test_storage_read_batch_answers_each_io_when_many_ios)
{
	enum { N = 64 };
	struct rt_msg *req, *resp;
	const struct cfs_chunk_read_resp *r;
	uint8_t *want[4];
	uint32_t poff = 0;
	struct h h;

	h_start(&h);
	for (unsigned c = 0; c < 4; c++) {
		want[c] = malloc(256 * KIB);
		tp_fill(want[c], 256 * KIB, 100 + c);
		ck_assert_int_eq(do_write(&h, 100 + c, 256 * KIB, 0, 256 * KIB, 100 + c, NULL), 0);
	}
	req = read_req(N);
	for (unsigned i = 0; i < N; i++) {
		if (i == 13)
			set_io(req, i, 999, 0, 4096); /* unknown chunk */
		else if (i == 27)
			RT_BODY(req, chunk_read)->ios[i] =
				(struct cfs_chunk_io){.len = 4096}; /* bad id */
		else if (i == 41)
			set_io(req, i, 101, 200 * KIB, 100 * KIB); /* beyond chunk_size */
		else
			set_io(req, i, 100 + i % 4, (i * 4099) % (200 * KIB), 4096 + i * 7);
	}
	ck_assert_int_eq(call(&h, req, &resp), 0);
	r = RT_BODY(resp, chunk_read_resp);
	ck_assert_uint_eq(r->results_count, N);
	for (unsigned i = 0; i < N; i++) {
		uint32_t off = (i * 4099) % (200 * KIB), len = 4096 + i * 7;
		uint8_t *got;

		if (i == 13) {
			ck_assert_int_eq(r->results[i].rc, -CFS_ENOCHUNK);
			continue;
		}
		if (i == 27 || i == 41) {
			ck_assert_int_eq(r->results[i].rc, -EINVAL);
			continue;
		}
		ck_assert_int_eq(r->results[i].rc, 0);
		ck_assert_uint_eq(r->results[i].len, len);
		ck_assert_uint_eq(r->results[i].version, 1);
		got = malloc(len);
		ck_assert_int_eq(rt_msg_payload_copy(resp, poff, got, len), 0);
		ck_assert(memcmp(got, want[i % 4] + off, len) == 0);
		ck_assert_uint_eq(r->results[i].crc, disk_crc32c(0, got, len));
		free(got);
		poff += len;
	}
	ck_assert_uint_eq(resp->plen, poff);
	/* No copy: one iov per successful result, each an engine buffer. */
	ck_assert_uint_eq(resp->iovcnt, N - 3);
	rt_msg_free(&resp);
	h_stop(&h);
	for (unsigned c = 0; c < 4; c++)
		free(want[c]);
}
END_TEST

START_TEST(test_storage_read_returns_short_when_past_end)
{
	uint8_t want[5000];
	uint32_t got = 0;
	int item = 1;
	struct h h;

	h_start(&h);
	tp_fill(want, 5000, 9);
	ck_assert_int_eq(do_write(&h, 9, 64 * KIB, 0, 5000, 9, NULL), 0);
	ck_assert_int_eq(do_read(&h, 9, 4000, 8192, &item, NULL, &got), 0);
	ck_assert_int_eq(item, 0);
	ck_assert_uint_eq(got, 1000);
	expect_bytes(&h, 9, 4000, 1000, want + 4000);
	h_stop(&h);
}
END_TEST

/* Pipelined writes from the client loop: many in flight at once, so the engine
 * group-commits them. */
struct pipe {
	struct h *h;
	unsigned n;
	struct rt_msg **reqs;
	int *rcs;
	uint64_t *vers;
	unsigned left;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

struct pipe_slot {
	struct pipe *p;
	unsigned i;
};

static void
pipe_done(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct pipe_slot *s = cb_arg;
	struct pipe *p = s->p;

	p->rcs[s->i] = rc;
	if (rc == 0 && resp->type == CFS_MSG_CHUNK_WRITE_RESP)
		p->vers[s->i] = RT_BODY(resp, chunk_write_resp)->version;
	free(s);
	pthread_mutex_lock(&p->mu);
	if (--p->left == 0)
		pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void
pipe_start(struct rt_actor *self, void *arg)
{
	struct pipe *p = arg;

	for (unsigned i = 0; i < p->n; i++) {
		struct pipe_slot *s = malloc(sizeof(*s));
		int rc;

		s->p = p;
		s->i = i;
		rc = rt_call(self, p->h->addr, p->reqs[i], 30000, pipe_done, s);
		if (rc != 0) {
			rt_msg_free(&p->reqs[i]);
			s->p->rcs[i] = rc;
			free(s);
			pthread_mutex_lock(&p->mu);
			p->left--;
			pthread_mutex_unlock(&p->mu);
		}
	}
}

static void
pipeline(struct h *h, struct rt_msg **reqs, unsigned n, int *rcs, uint64_t *vers)
{
	struct pipe p = {.h = h, .n = n, .reqs = reqs, .rcs = rcs, .vers = vers, .left = n};

	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	ck_assert_int_eq(cfs_client_actor_run(h->c, pipe_start, &p), 0);
	pthread_mutex_lock(&p.mu);
	while (p.left > 0)
		pthread_cond_wait(&p.cv, &p.mu);
	pthread_mutex_unlock(&p.mu);
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.mu);
}

START_TEST(test_storage_concurrent_writes_all_durable_when_pipelined)
{
	enum { N = 200 };
	struct rt_msg *reqs[N];
	int rcs[N];
	uint64_t vers[N];
	struct cfs_target_stats_resp st;
	struct h h;

	h_start(&h);
	/* 40 chunks, 5 writes each, all in flight together: per-chunk order holds. */
	for (unsigned i = 0; i < N; i++)
		reqs[i] = write_req(1000 + i % 40, 64 * KIB, (i / 40) * 4096, 4096, i);
	pipeline(&h, reqs, N, rcs, vers);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_int_eq(rcs[i], 0);
		ck_assert_uint_eq(vers[i], i / 40 + 1);
	}
	for (unsigned c = 0; c < 40; c++) {
		uint8_t want[5 * 4096];

		for (unsigned k = 0; k < 5; k++)
			tp_fill(want + k * 4096, 4096, c + 40 * k);
		expect_bytes(&h, 1000 + c, 0, sizeof(want), want);
	}
	ck_assert_int_eq(do_stats(&h, &st), 0);
	ck_assert_uint_eq(st.chunks, 40);
	ck_assert_uint_eq(st.writes, N);
	/* Group commit: fewer transactions than updates. */
	ck_assert_uint_ge(st.commit_items, N);
	ck_assert_uint_lt(st.commits, st.commit_items);
	h_stop(&h);
}
END_TEST

/* --------------------------------------------- remove, truncate, list, stats */

START_TEST(test_storage_remove_forgets_chunk_when_present)
{
	struct rt_msg *req, *resp;
	int item = 1;
	struct h h;

	h_start(&h);
	ck_assert_int_eq(do_write(&h, 5, 64 * KIB, 0, 10000, 5, NULL), 0);
	ck_assert_int_eq(do_write(&h, 5, 64 * KIB, 0, 10000, 6, NULL), 0);
	req = rt_msg_new(CFS_MSG_CHUNK_REMOVE);
	RT_BODY(req, chunk_remove)->target = TARGET;
	RT_BODY(req, chunk_remove)->chunk = id_of(5);
	ck_assert_int_eq(call(&h, req, &resp), 0);
	ck_assert_uint_eq(RT_BODY(resp, chunk_remove_resp)->version, 2);
	rt_msg_free(&resp);
	ck_assert_int_eq(do_query(&h, 5, NULL), -CFS_ENOCHUNK);
	ck_assert_int_eq(do_read(&h, 5, 0, 4096, &item, NULL, NULL), 0);
	ck_assert_int_eq(item, -CFS_ENOCHUNK);
	/* Removing it again: no such chunk. */
	req = rt_msg_new(CFS_MSG_CHUNK_REMOVE);
	RT_BODY(req, chunk_remove)->target = TARGET;
	RT_BODY(req, chunk_remove)->chunk = id_of(5);
	ck_assert_int_eq(call(&h, req, NULL), -CFS_ENOCHUNK);
	/* And writable afresh, from version 1. */
	uint64_t ver = 0;
	ck_assert_int_eq(do_write(&h, 5, 64 * KIB, 0, 100, 7, &ver), 0);
	ck_assert_uint_eq(ver, 1);
	h_stop(&h);
}
END_TEST

static struct rt_msg *
truncate_req(uint64_t chunk, uint32_t len, uint32_t chunk_size)
{
	struct rt_msg *m = rt_msg_new(CFS_MSG_CHUNK_TRUNCATE);

	RT_BODY(m, chunk_truncate)->target = TARGET;
	RT_BODY(m, chunk_truncate)->chunk = id_of(chunk);
	RT_BODY(m, chunk_truncate)->len = len;
	RT_BODY(m, chunk_truncate)->chunk_size = chunk_size;
	return m;
}

START_TEST(test_storage_truncate_shortens_and_extends_when_present)
{
	uint8_t want[20000];
	struct rt_msg *resp;
	struct h h;

	h_start(&h);
	tp_fill(want, 20000, 8);
	ck_assert_int_eq(do_write(&h, 8, 64 * KIB, 0, 20000, 8, NULL), 0);
	ck_assert_int_eq(call(&h, truncate_req(8, 7000, 0), &resp), 0);
	ck_assert_uint_eq(RT_BODY(resp, chunk_truncate_resp)->version, 2);
	ck_assert_uint_eq(RT_BODY(resp, chunk_truncate_resp)->len, 7000);
	ck_assert_uint_eq(RT_BODY(resp, chunk_truncate_resp)->crc, disk_crc32c(0, want, 7000));
	rt_msg_free(&resp);
	expect_bytes(&h, 8, 0, 7000, want);
	/* Extending fills with zeros. */
	memset(want + 7000, 0, 20000 - 7000);
	ck_assert_int_eq(call(&h, truncate_req(8, 20000, 64 * KIB), &resp), 0);
	ck_assert_uint_eq(RT_BODY(resp, chunk_truncate_resp)->len, 20000);
	rt_msg_free(&resp);
	expect_bytes(&h, 8, 0, 20000, want);
	h_stop(&h);
}
END_TEST

START_TEST(test_storage_list_pages_in_id_order_when_many_chunks)
{
	struct cfs_id128 begin = {{0}};
	unsigned seen = 0, pages = 0;
	bool more = true;
	struct h h;

	h_start(&h);
	/* Written out of order; listed in id order. */
	for (unsigned i = 0; i < 25; i++)
		ck_assert_int_eq(do_write(&h, 200 + (i * 7) % 25, 16 * KIB, 0, 100 + i, i, NULL),
				 0);
	while (more) {
		struct rt_msg *req = rt_msg_new(CFS_MSG_CHUNK_LIST), *resp;
		const struct cfs_chunk_list_resp *r;

		RT_BODY(req, chunk_list)->target = TARGET;
		RT_BODY(req, chunk_list)->begin = begin;
		RT_BODY(req, chunk_list)->max = 4;
		ck_assert_int_eq(call(&h, req, &resp), 0);
		r = RT_BODY(resp, chunk_list_resp);
		ck_assert_uint_le(r->chunks_count, 4);
		for (uint32_t i = 0; i < r->chunks_count; i++) {
			struct cfs_id128 want = id_of(200 + seen);

			ck_assert(memcmp(&r->chunks[i].chunk, &want, 16) == 0);
			ck_assert_uint_eq(r->chunks[i].committed, 1);
			seen++;
		}
		more = r->more;
		if (r->chunks_count)
			begin = disk_id_next(&r->chunks[r->chunks_count - 1].chunk);
		rt_msg_free(&resp);
		ck_assert_uint_lt(++pages, 20);
	}
	ck_assert_uint_eq(seen, 25);
	/* A bounded range: [205, 210). */
	{
		struct rt_msg *req = rt_msg_new(CFS_MSG_CHUNK_LIST), *resp;

		RT_BODY(req, chunk_list)->target = TARGET;
		RT_BODY(req, chunk_list)->begin = id_of(205);
		RT_BODY(req, chunk_list)->end = id_of(210);
		ck_assert_int_eq(call(&h, req, &resp), 0);
		ck_assert_uint_eq(RT_BODY(resp, chunk_list_resp)->chunks_count, 5);
		ck_assert(!RT_BODY(resp, chunk_list_resp)->more);
		rt_msg_free(&resp);
	}
	h_stop(&h);
}
END_TEST

START_TEST(test_storage_stats_count_io_when_used)
{
	struct cfs_target_stats_resp st;
	struct rt_msg *req, *resp;
	int item;
	struct h h;

	h_start(&h);
	ck_assert_int_eq(do_write(&h, 1, 64 * KIB, 0, 5000, 1, NULL), 0);
	ck_assert_int_eq(do_write(&h, 2, 64 * KIB, 0, 6000, 2, NULL), 0);
	ck_assert_int_eq(do_read(&h, 1, 0, 5000, &item, NULL, NULL), 0);
	ck_assert_int_eq(do_stats(&h, &st), 0);
	ck_assert_uint_eq(st.target, TARGET);
	ck_assert_uint_eq(st.capacity, 4ull << 30);
	ck_assert_uint_eq(st.chunks, 2);
	ck_assert_uint_eq(st.writes, 2);
	ck_assert_uint_eq(st.write_bytes, 11000);
	ck_assert_uint_ge(st.reads, 1);
	ck_assert_uint_ge(st.read_bytes, 5000);
	ck_assert_uint_ge(st.used, 2 * 64 * KIB);
	ck_assert_uint_eq(st.used + st.free, st.capacity);
	ck_assert_uint_eq(st.checksum_errors, 0);
	/* The path comes back as configured. */
	req = rt_msg_new(CFS_MSG_TARGET_STATS);
	RT_BODY(req, target_stats)->target = TARGET;
	ck_assert_int_eq(call(&h, req, &resp), 0);
	ck_assert_uint_eq(RT_BODY(resp, target_stats_resp)->path.len, strlen(g_dir));
	ck_assert(memcmp(RT_BODY(resp, target_stats_resp)->path.p, g_dir, strlen(g_dir)) == 0);
	rt_msg_free(&resp);
	h_stop(&h);
}
END_TEST

/* --------------------------------------------------------------- bad input */

START_TEST(test_storage_write_refused_when_range_beyond_chunk)
{
	struct cfs_target_stats_resp st;
	struct h h;

	h_start(&h);
	ck_assert_int_eq(do_write(&h, 1, 64 * KIB, 60 * KIB, 8 * KIB, 1, NULL), -EINVAL);
	ck_assert_int_eq(do_write(&h, 1, 64 * KIB, 0xfffff000u, 8 * KIB, 1, NULL), -EINVAL);
	ck_assert_int_eq(do_write(&h, 1, 0, 0, 4096, 1, NULL), -EINVAL);
	ck_assert_int_eq(do_write(&h, 1, 128 * MIB, 0, 4096, 1, NULL), -EINVAL);
	ck_assert_int_eq(do_query(&h, 1, NULL), -CFS_ENOCHUNK);
	ck_assert_int_eq(do_stats(&h, &st), 0);
	ck_assert_uint_eq(st.rejected, 4);
	ck_assert_uint_eq(st.writes, 0);
	h_stop(&h);
}
END_TEST

START_TEST(test_storage_write_refused_when_payload_differs_from_len)
{
	struct rt_msg *m;
	struct h h;

	h_start(&h);
	/* Body says 8192, payload carries 4096. */
	m = write_req(1, 64 * KIB, 0, 4096, 1);
	RT_BODY(m, chunk_write)->len = 8192;
	ck_assert_int_eq(call(&h, m, NULL), -EINVAL);
	/* Body says 100, payload carries 4096. */
	m = write_req(1, 64 * KIB, 0, 4096, 1);
	RT_BODY(m, chunk_write)->len = 100;
	ck_assert_int_eq(call(&h, m, NULL), -EINVAL);
	ck_assert_int_eq(do_query(&h, 1, NULL), -CFS_ENOCHUNK);
	h_stop(&h);
}
END_TEST

START_TEST(test_storage_write_refused_when_crc_mismatch)
{
	struct cfs_target_stats_resp st;
	struct rt_msg *m;
	struct h h;

	h_start(&h);
	m = write_req(1, 64 * KIB, 0, 4096, 1);
	RT_BODY(m, chunk_write)->crc ^= 1;
	ck_assert_int_eq(call(&h, m, NULL), -CFS_ECHECKSUM);
	ck_assert_int_eq(do_query(&h, 1, NULL), -CFS_ENOCHUNK);
	/* Over an existing chunk: the old content stays. */
	ck_assert_int_eq(do_write(&h, 1, 64 * KIB, 0, 4096, 2, NULL), 0);
	m = write_req(1, 64 * KIB, 0, 4096, 3);
	/* Flip a payload byte after the CRC was computed: corruption on the way. */
	m->iov[0].buf->data[100] ^= 0x40;
	ck_assert_int_eq(call(&h, m, NULL), -CFS_ECHECKSUM);
	{
		uint8_t want[4096];

		tp_fill(want, 4096, 2);
		expect_bytes(&h, 1, 0, 4096, want);
	}
	ck_assert_int_eq(do_stats(&h, &st), 0);
	ck_assert_uint_eq(st.writes, 1);
	h_stop(&h);
}
END_TEST

START_TEST(test_storage_refused_when_id_bad)
{
	struct cfs_id128 zero = {{0}};
	struct rt_buf *b = rt_buf_get(4096);
	struct rt_msg *m;
	struct h h;

	h_start(&h);
	memset(b->data, 1, 4096);
	ck_assert_int_eq(cfs_chunk_write_msg(TARGET, &zero, 64 * KIB, 0, b, 0, 4096, &m), 0);
	rt_buf_put(&b);
	ck_assert_int_eq(call(&h, m, NULL), -EINVAL);
	m = rt_msg_new(CFS_MSG_CHUNK_QUERY);
	RT_BODY(m, chunk_query)->target = TARGET;
	ck_assert_int_eq(call(&h, m, NULL), -EINVAL);
	m = rt_msg_new(CFS_MSG_CHUNK_REMOVE);
	RT_BODY(m, chunk_remove)->target = TARGET;
	ck_assert_int_eq(call(&h, m, NULL), -EINVAL);
	m = rt_msg_new(CFS_MSG_CHUNK_TRUNCATE);
	RT_BODY(m, chunk_truncate)->target = TARGET;
	ck_assert_int_eq(call(&h, m, NULL), -EINVAL);
	h_stop(&h);
}
END_TEST

START_TEST(test_storage_refused_when_target_or_chain_wrong)
{
	struct rt_msg *m;
	struct h h;

	h_start(&h);
	m = write_req(1, 64 * KIB, 0, 4096, 1);
	RT_BODY(m, chunk_write)->target = TARGET + 1;
	ck_assert_int_eq(call(&h, m, NULL), -CFS_ENOACTOR);
	m = write_req(1, 64 * KIB, 0, 4096, 1);
	RT_BODY(m, chunk_write)->chain_ver = 3;
	ck_assert_int_eq(call(&h, m, NULL), -CFS_ESTALECHAIN);
	m = read_req(1);
	set_io(m, 0, 1, 0, 4096);
	RT_BODY(m, chunk_read)->target = TARGET + 1;
	ck_assert_int_eq(call(&h, m, NULL), -CFS_ENOACTOR);
	m = rt_msg_new(CFS_MSG_CHUNK_QUERY);
	RT_BODY(m, chunk_query)->target = 0;
	RT_BODY(m, chunk_query)->chunk = id_of(1);
	ck_assert_int_eq(call(&h, m, NULL), -CFS_ENOACTOR);
	m = rt_msg_new(CFS_MSG_CHUNK_LIST);
	RT_BODY(m, chunk_list)->target = 99;
	ck_assert_int_eq(call(&h, m, NULL), -CFS_ENOACTOR);
	m = truncate_req(1, 0, 0);
	RT_BODY(m, chunk_truncate)->target = 99;
	ck_assert_int_eq(call(&h, m, NULL), -CFS_ENOACTOR);
	m = rt_msg_new(CFS_MSG_TARGET_STATS);
	RT_BODY(m, target_stats)->target = 99;
	ck_assert_int_eq(call(&h, m, NULL), -CFS_ENOACTOR);
	ck_assert_int_eq(do_query(&h, 1, NULL), -CFS_ENOCHUNK);
	h_stop(&h);
}
END_TEST

START_TEST(test_storage_read_refused_when_request_malformed)
{
	struct rt_msg *m;
	struct h h;

	h_start(&h);
	ck_assert_int_eq(do_write(&h, 1, 64 * KIB, 0, 4096, 1, NULL), 0);
	ck_assert_int_eq(call(&h, read_req(0), NULL), -EINVAL);
	m = read_req(RT_MSG_MAX_IOV + 1);
	for (unsigned i = 0; i <= RT_MSG_MAX_IOV; i++)
		set_io(m, i, 1, 0, 1);
	ck_assert_int_eq(call(&h, m, NULL), -EINVAL);
	/* More bytes than one reply may carry (64 MiB by default). */
	m = read_req(2);
	set_io(m, 0, 1, 0, 64 * MIB);
	set_io(m, 1, 1, 0, 4096);
	ck_assert_int_eq(call(&h, m, NULL), -CFS_ETOOBIG);
	/* Offset + len wrapping 32 bits: that read fails, alone. */
	{
		struct rt_msg *resp;

		m = read_req(2);
		set_io(m, 0, 1, 0xfffff000u, 0x2000);
		set_io(m, 1, 1, 0, 4096);
		ck_assert_int_eq(call(&h, m, &resp), 0);
		ck_assert_int_eq(RT_BODY(resp, chunk_read_resp)->results[0].rc, -EINVAL);
		ck_assert_int_eq(RT_BODY(resp, chunk_read_resp)->results[1].rc, 0);
		ck_assert_uint_eq(resp->plen, 4096);
		rt_msg_free(&resp);
	}
	h_stop(&h);
}
END_TEST

START_TEST(test_storage_refused_when_chunk_unknown)
{
	int item = 0;
	struct h h;

	h_start(&h);
	ck_assert_int_eq(do_read(&h, 77, 0, 4096, &item, NULL, NULL), 0);
	ck_assert_int_eq(item, -CFS_ENOCHUNK);
	ck_assert_int_eq(do_query(&h, 77, NULL), -CFS_ENOCHUNK);
	ck_assert_int_eq(call(&h, truncate_req(77, 0, 0), NULL), -CFS_ENOCHUNK);
	/* Truncate beyond the chunk size, or with another chunk size. */
	ck_assert_int_eq(do_write(&h, 78, 16 * KIB, 0, 4096, 1, NULL), 0);
	ck_assert_int_eq(call(&h, truncate_req(78, 32 * KIB, 0), NULL), -EINVAL);
	ck_assert_int_eq(call(&h, truncate_req(78, 100, 64 * KIB), NULL), -EINVAL);
	/* A write with another chunk size than the chunk's. */
	ck_assert_int_eq(do_write(&h, 78, 64 * KIB, 0, 4096, 1, NULL), -EINVAL);
	h_stop(&h);
}
END_TEST

START_TEST(test_storage_unhandled_message_refused_when_not_storage)
{
	struct rt_msg *m = rt_msg_new(CFS_MSG_PING);
	struct h h;

	h_start(&h);
	ck_assert_int_eq(call(&h, m, NULL), -CFS_ENOTSUP);
	h_stop(&h);
}
END_TEST

/* Whether the transport would send m under a header limit of max_hdr. */
static bool
fits(const struct rt_msg *m, uint32_t max_hdr)
{
	struct wire_limits lim = {.max_hdr = max_hdr, .max_payload = 64u << 20};
	struct wire_buf b;
	int rc;

	wire_buf_init(&b);
	rc = wire_encode(&b, m, &lim);
	wire_buf_fini(&b);
	return rc == 0;
}

START_TEST(test_storage_replies_fit_header_limit_when_limit_small)
{
	struct stor_config cfg = {
		.target_id = TARGET,
		.path = g_dir,
		.capacity = 1ull << 30,
		.max_hdr = 4096,
	};
	const unsigned max_reads = (4096 - 256) / 32, max_list = (4096 - 256) / 48;
	struct rt_msg *m, *resp;
	struct h h;

	ck_assert_int_eq(h_start_cfg(&h, &cfg), 0);
	for (unsigned i = 0; i < max_list + 5; i++)
		ck_assert_int_eq(do_write(&h, 400 + i, 4 * KIB, 0, 10, i, NULL), 0);
	/* As many reads as the header holds: fine; one more: refused. */
	m = read_req(max_reads);
	for (unsigned i = 0; i < max_reads; i++)
		set_io(m, i, 400 + i % 10, 0, 10);
	ck_assert_int_eq(call(&h, m, &resp), 0);
	ck_assert_uint_eq(RT_BODY(resp, chunk_read_resp)->results_count, max_reads);
	ck_assert_uint_eq(resp->plen, 10 * max_reads);
	ck_assert(fits(resp, 4096));
	rt_msg_free(&resp);
	m = read_req(max_reads + 1);
	for (unsigned i = 0; i <= max_reads; i++)
		set_io(m, i, 400 + i % 10, 0, 10);
	ck_assert_int_eq(call(&h, m, NULL), -EINVAL);
	/* A list page is cut to what the header holds, with more set. */
	m = rt_msg_new(CFS_MSG_CHUNK_LIST);
	RT_BODY(m, chunk_list)->target = TARGET;
	RT_BODY(m, chunk_list)->max = 1000;
	ck_assert_int_eq(call(&h, m, &resp), 0);
	ck_assert_uint_eq(RT_BODY(resp, chunk_list_resp)->chunks_count, max_list);
	ck_assert(RT_BODY(resp, chunk_list_resp)->more);
	ck_assert(fits(resp, 4096));
	rt_msg_free(&resp);
	h_stop(&h);
}
END_TEST

/* ------------------------------------------------------------------- faults */

START_TEST(test_storage_full_target_refuses_writes_when_capacity_reached)
{
	enum { MAXW = 4096 };
	uint8_t want[16384];
	unsigned ok = 0;
	int rc = 0, item;
	struct h h;

	/* The smallest capacity the engine takes that still grows in steps. */
	ck_assert_int_eq(h_start_cap(&h, 4 * MIB), 0);
	for (unsigned i = 0; i < MAXW; i++) {
		rc = do_write(&h, 5000 + i, 16 * KIB, 0, 16384, i, NULL);
		if (rc != 0)
			break;
		ok++;
	}
	ck_assert_int_eq(rc, -ENOSPC);
	ck_assert_uint_gt(ok, 0);
	ck_assert_uint_le((uint64_t)ok * 16 * KIB, 4 * MIB);
	/* Again: still full, still a clean error. */
	ck_assert_int_eq(do_write(&h, 9999, 16 * KIB, 0, 16384, 1, NULL), -ENOSPC);
	/* Every earlier chunk reads back intact; reads keep being served. */
	for (unsigned i = 0; i < ok; i++) {
		tp_fill(want, sizeof(want), i);
		expect_bytes(&h, 5000 + i, 0, sizeof(want), want);
	}
	ck_assert_int_eq(do_read(&h, 9999, 0, 4096, &item, NULL, NULL), 0);
	ck_assert_int_eq(item, -CFS_ENOCHUNK);
	/* Space freed by a remove is usable again. */
	{
		struct rt_msg *m = rt_msg_new(CFS_MSG_CHUNK_REMOVE);

		RT_BODY(m, chunk_remove)->target = TARGET;
		RT_BODY(m, chunk_remove)->chunk = id_of(5000);
		ck_assert_int_eq(call(&h, m, NULL), 0);
		ck_assert_int_eq(do_write(&h, 9999, 16 * KIB, 0, 16384, 77, NULL), 0);
	}
	h_stop(&h);
}
END_TEST

/* Flip one byte of the stored content, found by its pattern in the data files
 * (the test does not depend on the engine's file layout). */
static bool
flip_pattern(const char *dir, const uint8_t *pat, size_t patlen, size_t at)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool done = false;

	ck_assert_ptr_nonnull(d);
	while (!done && (e = readdir(d)) != NULL) {
		char p[512];
		struct stat sb;
		uint8_t *buf;
		int fd;

		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size == 0 ||
		    sb.st_size > (256 << 20))
			continue;
		fd = open(p, O_RDWR);
		ck_assert_int_ge(fd, 0);
		buf = malloc((size_t)sb.st_size);
		ck_assert_int_eq(pread(fd, buf, (size_t)sb.st_size, 0), sb.st_size);
		for (off_t o = 0; o + (off_t)patlen <= sb.st_size; o += 4096) {
			if (memcmp(buf + o, pat, patlen) == 0) {
				uint8_t x = buf[o + at] ^ 0x01;

				ck_assert_int_eq(pwrite(fd, &x, 1, o + (off_t)at), 1);
				fsync(fd);
				done = true;
				break;
			}
		}
		free(buf);
		close(fd);
	}
	closedir(d);
	return done;
}

START_TEST(test_storage_read_fails_checksum_when_data_file_byte_flipped)
{
	struct cfs_target_stats_resp st;
	uint8_t want[65536], *got;
	int item = 0;
	struct h h;

	h_start(&h);
	tp_fill(want, sizeof(want), 42);
	ck_assert_int_eq(do_write(&h, 42, 64 * KIB, 0, sizeof(want), 42, NULL), 0);
	ck_assert_int_eq(do_write(&h, 43, 64 * KIB, 0, 4096, 43, NULL), 0);
	h_stop(&h);

	ck_assert(flip_pattern(g_dir, want, 4096, 30000));

	h_start(&h);
	/* The corrupt range and the whole chunk fail; never the wrong bytes. */
	got = malloc(sizeof(want));
	ck_assert_int_eq(do_read(&h, 42, 28672, 4096, &item, got, NULL), 0);
	ck_assert_int_eq(item, -CFS_ECHECKSUM);
	ck_assert_int_eq(do_read(&h, 42, 0, sizeof(want), &item, got, NULL), 0);
	ck_assert_int_eq(item, -CFS_ECHECKSUM);
	free(got);
	/* Other chunks are served. */
	{
		uint8_t w43[4096];

		tp_fill(w43, 4096, 43);
		expect_bytes(&h, 43, 0, 4096, w43);
	}
	ck_assert_int_eq(do_stats(&h, &st), 0);
	ck_assert_uint_ge(st.checksum_errors, 1);
	/* Rewriting the chunk whole heals it. */
	ck_assert_int_eq(do_write(&h, 42, 64 * KIB, 0, sizeof(want), 42, NULL), 0);
	expect_bytes(&h, 42, 0, sizeof(want), want);
	h_stop(&h);
}
END_TEST

START_TEST(test_storage_chunks_survive_when_target_restarts)
{
	struct disk_ioeng *e;
	struct disk_target *dt;
	struct disk_check chk;
	struct ev_loop *ev;
	struct disk_target_opts o = {.path = g_dir, .capacity = 4ull << 30, .target_id = TARGET};
	struct h h;

	h_start(&h);
	for (unsigned i = 0; i < 20; i++)
		ck_assert_int_eq(do_write(&h, 300 + i, 64 * KIB, 0, 1000 * (i + 1), i, NULL), 0);
	ck_assert_int_eq(do_write(&h, 300, 64 * KIB, 100, 50, 99, NULL), 0);
	h_stop(&h);

	h_start(&h);
	for (unsigned i = 1; i < 20; i++) {
		uint8_t *want = malloc(1000 * (i + 1));

		tp_fill(want, 1000 * (i + 1), i);
		expect_bytes(&h, 300 + i, 0, 1000 * (i + 1), want);
		free(want);
	}
	{
		uint8_t want[1000];
		struct cfs_chunk_query_resp q;

		tp_fill(want, 1000, 0);
		tp_fill(want + 100, 50, 99);
		expect_bytes(&h, 300, 0, 1000, want);
		ck_assert_int_eq(do_query(&h, 300, &q), 0);
		ck_assert_uint_eq(q.committed, 2);
	}
	h_stop(&h);

	/* Offline: the slot accounting matches the index. */
	ev = ev_loop_new(EVFLAG_AUTO);
	ck_assert_int_eq(disk_aio_create(ev, 0, &e), 0);
	ck_assert_int_eq(disk_target_open(e, &o, &dt), 0);
	ck_assert_int_eq(disk_target_check(dt, &chk), 0);
	ck_assert_uint_eq(chk.chunks, 20);
	ck_assert_uint_eq(chk.rows, 20);
	disk_target_close(&dt);
	disk_aio_put(&e);
	ev_loop_destroy(ev);
}
END_TEST

START_TEST(test_storage_spawn_fails_when_config_bad)
{
	struct cfs_client_opts o = {.loops = 1};
	struct stor_config cfg = {.target_id = 0, .path = g_dir, .capacity = 1 << 30};
	struct cfs_client *c;
	cfs_addr_t addr;

	ck_assert_int_eq(cfs_client_create(&o, &c), 0);
	ck_assert_int_eq(rt_spawn(rt_loop_at(cfs_client_rt(c), 0), &stor_kind, &cfg, 0, &addr),
			 -EINVAL);
	/* A header limit with no room for a single result. */
	cfg.target_id = 1;
	cfg.max_hdr = 200;
	ck_assert_int_eq(rt_spawn(rt_loop_at(cfs_client_rt(c), 0), &stor_kind, &cfg, 0, &addr),
			 -EINVAL);
	cfg.max_hdr = 0;
	cfg.path = "/proc/no/such/dir";
	ck_assert_int_lt(rt_spawn(rt_loop_at(cfs_client_rt(c), 0), &stor_kind, &cfg, 0, &addr), 0);
	cfs_client_destroy(&c);
}
END_TEST

/* ----------------------------------------------------------- chunk ids */

START_TEST(test_storage_chunk_id_parse_accepts_both_forms_when_valid)
{
	struct cfs_id128 a, b, want = cfs_chunk_id(0x1234, 5);
	char s[CFS_CHUNK_ID_STR];

	ck_assert_int_eq(cfs_chunk_id_parse("4660:5", &a), 0);
	ck_assert(memcmp(&a, &want, 16) == 0);
	ck_assert_int_eq(cfs_chunk_id_parse("0x1234:0x5", &a), 0);
	ck_assert(memcmp(&a, &want, 16) == 0);
	cfs_chunk_id_format(&want, s);
	ck_assert_str_eq(s, "00000000000012340000000000000005");
	ck_assert_int_eq(cfs_chunk_id_parse(s, &b), 0);
	ck_assert(memcmp(&b, &want, 16) == 0);
	ck_assert_int_eq(cfs_chunk_id_parse("00000000000012340000000000000005", &b), 0);
	ck_assert_int_eq(cfs_chunk_id_parse("ABCDEF00000012340000000000000005", &b), 0);
	ck_assert_uint_eq(b.b[0], 0xab);
}
END_TEST

START_TEST(test_storage_chunk_id_parse_refuses_when_malformed)
{
	struct cfs_id128 a;

	ck_assert_int_eq(cfs_chunk_id_parse("", &a), -EINVAL);
	ck_assert_int_eq(cfs_chunk_id_parse("0:0", &a), -EINVAL);
	ck_assert_int_eq(cfs_chunk_id_parse("00000000000000000000000000000000", &a), -EINVAL);
	ck_assert_int_eq(cfs_chunk_id_parse("1234", &a), -EINVAL);
	ck_assert_int_eq(cfs_chunk_id_parse("0000000000001234000000000000000g", &a), -EINVAL);
	ck_assert_int_eq(cfs_chunk_id_parse("000000000000123400000000000000051", &a), -EINVAL);
	ck_assert_int_eq(cfs_chunk_id_parse("1:", &a), -EINVAL);
	ck_assert_int_eq(cfs_chunk_id_parse(":1", &a), -EINVAL);
	ck_assert_int_eq(cfs_chunk_id_parse("-1:1", &a), -EINVAL);
	ck_assert_int_eq(cfs_chunk_id_parse("1:2:3", &a), -EINVAL);
	ck_assert_int_eq(cfs_chunk_id_parse("99999999999999999999:1", &a), -EINVAL);
}
END_TEST

static Suite *
storage_suite(void)
{
	Suite *s = suite_create("storage");
	TCase *tc;

#define ADD(name, fn)                                                                              \
	do {                                                                                       \
		tc = tcase_create(name);                                                           \
		tcase_add_checked_fixture(tc, setup, teardown);                                    \
		tcase_set_timeout(tc, 120);                                                        \
		tcase_add_test(tc, fn);                                                            \
		suite_add_tcase(s, tc);                                                            \
	} while (0)

	ADD("round_trip", test_storage_write_read_round_trip_when_valid);
	ADD("write_resp", test_storage_write_response_names_new_state_when_overwritten);
	ADD("partial", test_storage_partial_write_merges_when_offset_inside_chunk);
	ADD("batch", test_storage_read_batch_answers_each_io_when_many_ios);
	ADD("short_read", test_storage_read_returns_short_when_past_end);
	ADD("pipelined", test_storage_concurrent_writes_all_durable_when_pipelined);
	ADD("remove", test_storage_remove_forgets_chunk_when_present);
	ADD("truncate", test_storage_truncate_shortens_and_extends_when_present);
	ADD("list", test_storage_list_pages_in_id_order_when_many_chunks);
	ADD("stats", test_storage_stats_count_io_when_used);
	ADD("bad_range", test_storage_write_refused_when_range_beyond_chunk);
	ADD("bad_payload", test_storage_write_refused_when_payload_differs_from_len);
	ADD("bad_crc", test_storage_write_refused_when_crc_mismatch);
	ADD("bad_id", test_storage_refused_when_id_bad);
	ADD("bad_target", test_storage_refused_when_target_or_chain_wrong);
	ADD("bad_read", test_storage_read_refused_when_request_malformed);
	ADD("unknown", test_storage_refused_when_chunk_unknown);
	ADD("notsup", test_storage_unhandled_message_refused_when_not_storage);
	ADD("hdr_limit", test_storage_replies_fit_header_limit_when_limit_small);
	ADD("full", test_storage_full_target_refuses_writes_when_capacity_reached);
	ADD("flipped", test_storage_read_fails_checksum_when_data_file_byte_flipped);
	ADD("restart", test_storage_chunks_survive_when_target_restarts);
	ADD("spawn", test_storage_spawn_fails_when_config_bad);
	ADD("id_parse", test_storage_chunk_id_parse_accepts_both_forms_when_valid);
	ADD("id_bad", test_storage_chunk_id_parse_refuses_when_malformed);
#undef ADD
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(storage_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

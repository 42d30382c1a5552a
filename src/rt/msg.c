/* SPDX-License-Identifier: MIT */
/*
 * Messages: one allocation (a "slab") holds the header, the typed body and a
 * small inline arena; arrays, strings and a grown iov table go to the inline
 * arena first, then to arena chunks that die with the message; payload
 * segments hold references on pooled buffers. None of this needs a loop: the
 * wire decoder, the fuzzer and client threads build messages off-loop.
 *
 * Every loop keeps a bounded free list of slabs (struct rt_msg_cache): on the
 * RPC hot path each call makes and frees four messages, and a burst of 64
 * calls overflows glibc's per-thread cache (7 chunks a size), which then
 * costs more than the rest of the runtime's work together. A message freed on
 * a loop goes to that loop's cache whichever loop or thread made it (slabs are
 * all the same size, so any of them fits any message); off-loop, or past the
 * cap, it goes back to malloc. Under valgrind, cached slabs are marked
 * inaccessible so that a use after free is still reported.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RT_LOG_SUBSYS "rt"
#include "rt/rt_internal.h"

/* valgrind's client requests cost a few instructions even natively, so they
 * run only when the cache saw valgrind at init. Without the header, or built
 * with -DRT_MSG_NO_VALGRIND (to count instructions with callgrind): none. */
#if defined(__has_include) && !defined(RT_MSG_NO_VALGRIND)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define MSG_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#define MSG_VG_NOACCESS(c, p, n)                                                                   \
	do {                                                                                       \
		if ((c)->vg)                                                                       \
			VALGRIND_MAKE_MEM_NOACCESS((p), (n));                                      \
	} while (0)
#define MSG_VG_UNDEFINED(c, p, n)                                                                  \
	do {                                                                                       \
		if ((c)->vg)                                                                       \
			VALGRIND_MAKE_MEM_UNDEFINED((p), (n));                                     \
	} while (0)
#define MSG_VG_DEFINED(c, p, n)                                                                    \
	do {                                                                                       \
		if ((c)->vg)                                                                       \
			VALGRIND_MAKE_MEM_DEFINED((p), (n));                                       \
	} while (0)
#endif
#endif
#ifndef MSG_VG_NOACCESS
#define MSG_ON_VALGRIND()	  false
#define MSG_VG_NOACCESS(c, p, n)  ((void)0)
#define MSG_VG_UNDEFINED(c, p, n) ((void)0)
#define MSG_VG_DEFINED(c, p, n)	  ((void)0)
#endif

#define ARENA_FIRST    512u
#define ARENA_MAX_STEP 65536u

/*
 * The allocation behind a struct rt_msg. Bookkeeping nobody outside this file
 * needs sits in front of the public header, so struct rt_msg stays what rt.h
 * says it is.
 */
struct msg_slab {
	uint32_t size;	/* bytes allocated: RT_MSG_SLAB_SIZE (cacheable) or more */
	uint32_t aoff;	/* inline arena: first byte, from the slab's start */
	uint32_t aused; /* inline arena bytes handed out */
	uint32_t pad;
	struct rt_msg m;
};

#define SLAB_HDR   ((offsetof(struct msg_slab, m) + sizeof(struct rt_msg) + 15u) & ~(size_t)15u)
#define SLAB_OF(m) RT_CONTAINER_OF((m), struct msg_slab, m)
_Static_assert(SLAB_HDR + 64 <= RT_MSG_SLAB_SIZE, "msg_init zeroes 64 body bytes");

struct rt_arena_chunk {
	struct rt_arena_chunk *next;
	size_t used;
	size_t cap;
	_Alignas(16) unsigned char data[];
};

/*
 * Body sizes rounded up to 16, by dense type (CFS_MSG_NONE: 0). Generated
 * from proto.def like proto.c's size table, so the two cannot disagree; it is
 * not derived from cfs_msg_body_size() because rt_msg_new is a leaf on the RPC
 * hot path (see there) and that call in another file would make it save
 * registers and round up on every message, and proto.c keeps its table
 * private, with unrounded sizes.
 */
#define CFS_STRUCT(lc, fields)
#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	[CFS_MSG_##UC] = (sizeof(struct cfs_##lc) + 15u) & ~15u,                                   \
	[CFS_MSG_##UC##_RESP] = (sizeof(struct cfs_##lc##_resp) + 15u) & ~15u,
static const uint16_t g_body_round[CFS_MSG__COUNT] = {
#include "chainfs/proto.def"
};
#undef CFS_RPC
#undef CFS_STRUCT

static inline struct msg_slab *
cache_pop(struct rt_msg_cache *c)
{
	struct rt_msg *m = c->free;
	struct msg_slab *s;

	if (!m)
		return NULL;
	s = SLAB_OF(m);
	MSG_VG_DEFINED(c, &m->next, sizeof(m->next));
	c->free = m->next;
	c->n--;
	MSG_VG_UNDEFINED(c, s, RT_MSG_SLAB_SIZE);
	return s;
}

void
rt_msg_cache_init(struct rt_msg_cache *c)
{
	*c = (struct rt_msg_cache){.vg = MSG_ON_VALGRIND()};
}

void
rt_msg_cache_fini(struct rt_msg_cache *c)
{
	struct msg_slab *s;

	while ((s = cache_pop(c)) != NULL)
		free(s);
}

/* The header fields of a fresh message (body, iov set per message). */
static inline void
msg_init(struct msg_slab *s, unsigned type, uint32_t size, uint32_t bs)
{
	struct rt_msg *m = &s->m;
	unsigned char *body = (unsigned char *)s + SLAB_HDR;

	s->size = size;
	s->aoff = (uint32_t)SLAB_HDR + bs;
	s->aused = 0;
	/* Field by field: iov_inline needs no zeroing (iovcnt is 0). A struct
	 * assignment zeroes it too and costs more. */
	m->next = NULL;
	m->type = (uint16_t)type;
	m->flags = 0;
	m->rc = 0;
	m->req_id = 0;
	m->src = 0;
	m->dst = 0;
	m->conn = 0;
	m->via_node = 0;
	m->deadline_ns = 0;
	m->body = bs ? body : NULL;
	m->iovcnt = 0;
	m->iovcap = RT_MSG_INLINE_IOV;
	m->plen = 0;
	m->iov = m->iov_inline;
	m->arena = NULL;
	/* Small bodies (most): four 16-byte stores and no loop; bytes past the
	 * body are arena, which rt_msg_alloc zeroes anyway when it hands them
	 * out, and SLAB_HDR + 64 fits every slab. Larger ones: whole 16-byte
	 * stores, no call into memset. */
	if (bs <= 64) {
		memset(body, 0, 64);
		return;
	}
	for (uint32_t i = 0; i < bs; i += 16)
		memset(body + i, 0, 16);
}

/* Everything but a cached slab: no loop, empty cache, large body, bad type. */
static __attribute__((noinline)) struct rt_msg *
msg_new_slow(unsigned type)
{
	struct rt_loop *loop = tls_loop;
	struct msg_slab *s = NULL;
	uint32_t bs, size;

	if (type >= CFS_MSG__COUNT)
		CFS_PANIC("rt_msg_new: type %u out of range", type);
	bs = g_body_round[type];
	size = (uint32_t)SLAB_HDR + bs;
	if (size <= RT_MSG_SLAB_SIZE) {
		if (loop)
			s = cache_pop(&loop->mcache);
		size = RT_MSG_SLAB_SIZE;
	}
	if (!s) {
		s = malloc(size);
		if (!s)
			return NULL;
	}
	msg_init(s, type, size, bs);
	return &s->m;
}

/*
 * The fast path, a leaf: a slab from the loop's cache. The slow path keeps
 * malloc, the panic and the valgrind requests out of it, so this one saves no
 * registers (half of its cost was prologue and epilogue when they shared it).
 */
struct rt_msg *
rt_msg_new(unsigned type)
{
	struct rt_loop *loop = tls_loop;
	struct rt_msg *m;
	uint32_t bs;

	if (__builtin_expect(
		    !loop || !loop->mcache.free || loop->mcache.vg || type >= CFS_MSG__COUNT, 0))
		return msg_new_slow(type);
	bs = g_body_round[type];
	if (__builtin_expect(SLAB_HDR + bs > RT_MSG_SLAB_SIZE, 0))
		return msg_new_slow(type);
	m = loop->mcache.free;
	loop->mcache.free = m->next;
	loop->mcache.n--;
	msg_init(SLAB_OF(m), type, RT_MSG_SLAB_SIZE, bs);
	return m;
}

/* Payload references, arena chunks, valgrind, a full cache or no loop. */
static __attribute__((noinline)) void
msg_free_slow(struct rt_msg *m)
{
	struct rt_arena_chunk *c, *next;
	struct rt_loop *loop = tls_loop;
	struct msg_slab *s;

	if (m->iovcap == RT_MSG_POISON)
		CFS_PANIC("rt_msg_free: message %p freed twice", (void *)m);
	for (uint32_t i = 0; i < m->iovcnt; i++)
		rt_buf_put(&m->iov[i].buf);
	for (c = m->arena; c; c = next) {
		next = c->next;
		free(c);
	}
	/* volatile: a plain store right before free() is a dead store to gcc. */
	*(volatile uint32_t *)&m->iovcap = RT_MSG_POISON;
	s = SLAB_OF(m);
	if (loop && s->size == RT_MSG_SLAB_SIZE && loop->mcache.n < RT_MSG_CACHE_MAX) {
		m->next = loop->mcache.free;
		loop->mcache.free = m;
		loop->mcache.n++;
		MSG_VG_NOACCESS(&loop->mcache, s, RT_MSG_SLAB_SIZE);
		return;
	}
	free(s);
}

void
rt_msg_free(struct rt_msg **pm)
{
	struct rt_msg *m = *pm;
	struct rt_loop *loop = tls_loop;

	*pm = NULL;
	if (!m)
		return;
	/* The common message: no payload, no arena chunk, freed on a loop whose
	 * cache has room (valgrind's bookkeeping is the slow path's). */
	if (__builtin_expect(!loop || m->iovcnt != 0 || m->arena != NULL ||
				     m->iovcap == RT_MSG_POISON || loop->mcache.vg ||
				     loop->mcache.n >= RT_MSG_CACHE_MAX ||
				     SLAB_OF(m)->size != RT_MSG_SLAB_SIZE,
			     0)) {
		msg_free_slow(m);
		return;
	}
	m->iovcap = RT_MSG_POISON;
	m->next = loop->mcache.free;
	loop->mcache.free = m;
	loop->mcache.n++;
}

void
rt_item_free(struct rt_msg *m)
{
	if (m->type == RT_MSG_T_POST)
		free(RT_CONTAINER_OF(m, struct rt_post, m));
	else
		rt_msg_free(&m);
}

void *
rt_msg_alloc(struct rt_msg *m, size_t size)
{
	struct rt_arena_chunk *c = m->arena;
	struct msg_slab *s;
	size_t want, cap;
	void *p;

	/* Zero-sized arrays still get a distinct, valid pointer. */
	want = size ? (size + 15u) & ~(size_t)15u : 16u;
	if (want < size || want > SIZE_MAX / 4)
		return NULL;
	/* The slab's tail first: most messages need no arena chunk at all. */
	s = SLAB_OF(m);
	if (s->size - s->aoff - s->aused >= want) {
		p = (char *)s + s->aoff + s->aused;
		s->aused += (uint32_t)want;
		memset(p, 0, want);
		return p;
	}
	if (c && c->cap - c->used >= want) {
		p = c->data + c->used;
		c->used += want;
		return p;
	}
	cap = c ? c->cap * 2 : ARENA_FIRST;
	if (cap > ARENA_MAX_STEP)
		cap = ARENA_MAX_STEP;
	if (cap < want)
		cap = want;
	/* calloc: arena bytes are handed out once and never reused, so zeroed. */
	c = calloc(1, sizeof(*c) + cap);
	if (!c)
		return NULL;
	c->cap = cap;
	c->used = want;
	if (m->arena && cap == want && m->arena->cap - m->arena->used >= 256) {
		/* A big one-off allocation: keep the current chunk's room for later. */
		c->next = m->arena->next;
		m->arena->next = c;
	} else {
		c->next = m->arena;
		m->arena = c;
	}
	return c->data;
}

int
rt_msg_copy_bytes(struct rt_msg *m, struct cfs_bytes *dst, const void *p, size_t len)
{
	void *copy;

	if (len > UINT32_MAX)
		return -E2BIG;
	if (len == 0) {
		dst->p = NULL;
		dst->len = 0;
		return 0;
	}
	copy = rt_msg_alloc(m, len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, p, len);
	dst->p = copy;
	dst->len = (uint32_t)len;
	return 0;
}

int
rt_msg_set_str(struct rt_msg *m, struct cfs_bytes *dst, const char *s)
{
	return rt_msg_copy_bytes(m, dst, s, s ? strlen(s) : 0);
}

int
rt_msg_add_iov(struct rt_msg *m, struct rt_buf *buf, uint32_t off, uint32_t len)
{
	struct rt_iov *iov;

	if (!buf || (uint64_t)off + len > buf->cap)
		return -EINVAL;
	if (m->iovcnt >= RT_MSG_MAX_IOV || (uint64_t)m->plen + len > UINT32_MAX)
		return -E2BIG;
	if (m->iovcnt == m->iovcap) {
		uint32_t cap = m->iovcap * 4;

		if (cap > RT_MSG_MAX_IOV)
			cap = RT_MSG_MAX_IOV;
		iov = rt_msg_alloc(m, cap * sizeof(*iov));
		if (!iov)
			return -ENOMEM;
		memcpy(iov, m->iov, m->iovcnt * sizeof(*iov));
		m->iov = iov;
		m->iovcap = cap;
	}
	rt_buf_ref(buf);
	m->iov[m->iovcnt++] = (struct rt_iov){.buf = buf, .off = off, .len = len};
	m->plen += len;
	return 0;
}

int
rt_msg_payload_copy(const struct rt_msg *m, uint32_t off, void *dst, uint32_t len)
{
	uint8_t *out = dst;

	if ((uint64_t)off + len > m->plen)
		return -EINVAL;
	for (uint32_t i = 0; i < m->iovcnt && len > 0; i++) {
		const struct rt_iov *v = &m->iov[i];
		uint32_t n;

		if (off >= v->len) {
			off -= v->len;
			continue;
		}
		n = v->len - off;
		if (n > len)
			n = len;
		memcpy(out, v->buf->data + v->off + off, n);
		out += n;
		len -= n;
		off = 0;
	}
	return 0;
}

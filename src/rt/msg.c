/* SPDX-License-Identifier: MIT */
/*
 * Messages: one malloc holds the header and the typed body; arrays, strings and
 * a grown iov table live in an arena of chunks that dies with the message;
 * payload segments hold references on pooled buffers. None of this needs a
 * loop: the wire decoder, the fuzzer and client threads build messages off-loop.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RT_LOG_SUBSYS "rt"
#include "rt/rt_internal.h"

#define MSG_HDR_SIZE   ((sizeof(struct rt_msg) + 15u) & ~(size_t)15u)
#define ARENA_FIRST    512u
#define ARENA_MAX_STEP 65536u

struct rt_arena_chunk {
	struct rt_arena_chunk *next;
	size_t used;
	size_t cap;
	_Alignas(16) unsigned char data[];
};

struct rt_msg *
rt_msg_new(unsigned type)
{
	size_t bs = cfs_msg_body_size(type);
	struct rt_msg *m;

	if (type >= CFS_MSG__COUNT)
		CFS_PANIC("rt_msg_new: type %u out of range", type);
	m = malloc(MSG_HDR_SIZE + bs);
	if (!m)
		return NULL;
	memset(m, 0, MSG_HDR_SIZE + bs);
	m->type = (uint16_t)type;
	m->body = bs ? (char *)m + MSG_HDR_SIZE : NULL;
	m->iov = m->iov_inline;
	m->iovcap = RT_MSG_INLINE_IOV;
	return m;
}

void
rt_msg_free(struct rt_msg **pm)
{
	struct rt_msg *m = *pm;
	struct rt_arena_chunk *c, *next;

	*pm = NULL;
	if (!m)
		return;
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
	free(m);
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
	size_t want, cap;
	void *p;

	/* Zero-sized arrays still get a distinct, valid pointer. */
	want = size ? (size + 15u) & ~(size_t)15u : 16u;
	if (want < size || want > SIZE_MAX / 4)
		return NULL;
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

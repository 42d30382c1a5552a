/* SPDX-License-Identifier: MIT */
/*
 * Sample message bodies for the wire tests and the fuzz seed generator,
 * generated from include/chainfs/proto.def: fill every field of any message
 * type with non-zero values (the variant picks the msgpack formats exercised:
 * fixints up to 64-bit ints, fixstr up to str16, fixarray up to array16), and
 * compare two bodies field by field. Header-only (static functions) because it
 * is test code shared by two programs.
 */
#ifndef CFS_TESTS_WIRE_SAMPLE_H
#define CFS_TESTS_WIRE_SAMPLE_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "rt/rt.h"

struct sample {
	struct rt_msg *m; /* arena for strings and arrays */
	uint64_t seed;
	unsigned variant; /* 0: small values, 1: boundary values, 2: large values */
	int err;	  /* -ENOMEM from the arena, sticky */
};

static inline uint64_t
sample_next(struct sample *s)
{
	/* splitmix64: deterministic, so a failure names a reproducible value. */
	uint64_t z = (s->seed += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A non-zero value, small, at a msgpack format boundary or large. */
static inline uint64_t
sample_u(struct sample *s, uint64_t max)
{
	static const uint64_t edges[] = {0x7f,	  0x80,		 0xff,		 0x100,	    0xffff,
					 0x10000, 0xffffffffull, 0x100000000ull, UINT64_MAX};
	uint64_t r = sample_next(s);
	uint64_t v;

	switch (s->variant) {
	case 0:
		v = 1 + r % 100;
		break;
	case 1:
		v = edges[r % (sizeof(edges) / sizeof(edges[0]))];
		break;
	default:
		v = r | (1ull << 63);
		break;
	}
	if (v > max)
		v = max - (r % 7);
	return v;
}

static inline int64_t
sample_i(struct sample *s, int64_t min, int64_t max)
{
	static const int64_t edges[] = {-1,	   -32,	      -33,
					-128,	   -129,      -32768,
					-32769,	   INT32_MIN, (int64_t)INT32_MIN - 1,
					INT64_MIN, 1,	      INT32_MAX,
					INT64_MAX};
	uint64_t r = sample_next(s);
	int64_t v;

	switch (s->variant) {
	case 0:
		v = (r & 1) ? -(int64_t)(1 + r % 30) : (int64_t)(1 + r % 100);
		break;
	case 1:
		v = edges[r % (sizeof(edges) / sizeof(edges[0]))];
		break;
	default:
		v = (int64_t)r;
		break;
	}
	if (v < min)
		v = min;
	if (v > max)
		v = max;
	return v != 0 ? v : -1;
}

static inline uint32_t
sample_len(struct sample *s)
{
	static const uint32_t lens[] = {1, 31, 32, 255, 256, 300};

	if (s->variant == 0)
		return 1 + sample_next(s) % 12;
	if (s->variant == 1)
		return lens[sample_next(s) % (sizeof(lens) / sizeof(lens[0]))];
	return 65536 + sample_next(s) % 100;
}

static inline uint32_t
sample_count(struct sample *s)
{
	/* 16 is the first count that needs array16. */
	return s->variant == 0 ? 1 + sample_next(s) % 3 : 15 + sample_next(s) % 3;
}

static inline void
sample_bytes(struct sample *s, struct cfs_bytes *v, bool text)
{
	uint32_t n = sample_len(s);
	uint8_t *p = rt_msg_alloc(s->m, n);
	uint32_t i;

	if (p == NULL) {
		s->err = -ENOMEM;
		return;
	}
	for (i = 0; i < n; i++)
		p[i] = text ? (uint8_t)('a' + sample_next(s) % 26) : (uint8_t)sample_next(s);
	v->p = p;
	v->len = n;
}

static inline void
fill_BOOL(struct sample *s, bool *v)
{
	*v = true;
}

static inline void
fill_U32(struct sample *s, uint32_t *v)
{
	*v = (uint32_t)sample_u(s, UINT32_MAX);
}

static inline void
fill_U64(struct sample *s, uint64_t *v)
{
	*v = sample_u(s, UINT64_MAX);
}

static inline void
fill_I32(struct sample *s, int32_t *v)
{
	*v = (int32_t)sample_i(s, INT32_MIN, INT32_MAX);
}

static inline void
fill_I64(struct sample *s, int64_t *v)
{
	*v = sample_i(s, INT64_MIN, INT64_MAX);
}

static inline void
fill_STR(struct sample *s, struct cfs_bytes *v)
{
	sample_bytes(s, v, true);
}

static inline void
fill_BYTES(struct sample *s, struct cfs_bytes *v)
{
	sample_bytes(s, v, false);
}

static inline void
fill_ID(struct sample *s, struct cfs_id128 *v)
{
	uint64_t a = sample_next(s) | 1, b = sample_next(s);

	memcpy(v->b, &a, 8);
	memcpy(v->b + 8, &b, 8);
}

static inline bool
eq_BOOL(const bool *a, const bool *b)
{
	return *a == *b;
}

static inline bool
eq_U32(const uint32_t *a, const uint32_t *b)
{
	return *a == *b;
}

static inline bool
eq_U64(const uint64_t *a, const uint64_t *b)
{
	return *a == *b;
}

static inline bool
eq_I32(const int32_t *a, const int32_t *b)
{
	return *a == *b;
}

static inline bool
eq_I64(const int64_t *a, const int64_t *b)
{
	return *a == *b;
}

static inline bool
eq_STR(const struct cfs_bytes *a, const struct cfs_bytes *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static inline bool
eq_BYTES(const struct cfs_bytes *a, const struct cfs_bytes *b)
{
	return eq_STR(a, b);
}

static inline bool
eq_ID(const struct cfs_id128 *a, const struct cfs_id128 *b)
{
	return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

/* Records: fill_rec_<lc>, diff_rec_<lc> (NULL when equal, else the field name). */
#define F(T, name) fill_##T(s, &b->name);
#define A(lc, name)
#define CFS_STRUCT(lc, fields)                                                                     \
	static inline void fill_rec_##lc(struct sample *s, struct cfs_##lc *b)                     \
	{                                                                                          \
		fields                                                                             \
	}
#define CFS_RPC(UC, lc, code, req, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT
#undef A
#undef F

#define F(T, name)                                                                                 \
	if (!eq_##T(&a->name, &b->name))                                                           \
		return #name;
#define A(lc, name)
#define CFS_STRUCT(lc, fields)                                                                     \
	static inline const char *diff_rec_##lc(const struct cfs_##lc *a,                          \
						const struct cfs_##lc *b)                          \
	{                                                                                          \
		fields;                                                                            \
		return NULL;                                                                       \
	}
#define CFS_RPC(UC, lc, code, req, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT
#undef A
#undef F

/* Bodies: an A() field gets sample_count records allocated in the arena. */
#define F(T, name) fill_##T(s, &b->name);
#define A(lc, name)                                                                                \
	b->name##_count = sample_count(s);                                                         \
	b->name = rt_msg_alloc(s->m, b->name##_count * sizeof(*b->name));                          \
	if (b->name == NULL) {                                                                     \
		s->err = -ENOMEM;                                                                  \
		b->name##_count = 0;                                                               \
	}                                                                                          \
	for (uint32_t i_ = 0; i_ < b->name##_count; i_++)                                          \
		fill_rec_##lc(s, &b->name[i_]);
#define GEN_FILL(fn, TYPE, fields)                                                                 \
	static inline void fn(struct sample *s, void *body)                                        \
	{                                                                                          \
		TYPE *b = body;                                                                    \
		fields                                                                             \
	}
#define CFS_STRUCT(lc, fields)
#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	GEN_FILL(fill_body_##lc, struct cfs_##lc, req)                                             \
	GEN_FILL(fill_body_##lc##_resp, struct cfs_##lc##_resp, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT
#undef GEN_FILL
#undef A
#undef F

#define F(T, name)                                                                                 \
	if (!eq_##T(&a->name, &b->name))                                                           \
		return #name;
#define A(lc, name)                                                                                \
	if (a->name##_count != b->name##_count)                                                    \
		return #name "_count";                                                             \
	for (uint32_t i_ = 0; i_ < a->name##_count; i_++) {                                        \
		const char *why_ = diff_rec_##lc(&a->name[i_], &b->name[i_]);                      \
		if (why_ != NULL)                                                                  \
			return why_;                                                               \
	}
#define GEN_DIFF(fn, TYPE, fields)                                                                 \
	static inline const char *fn(const void *pa, const void *pb)                               \
	{                                                                                          \
		const TYPE *a = pa, *b = pb;                                                       \
		fields;                                                                            \
		return NULL;                                                                       \
	}
#define CFS_STRUCT(lc, fields)
#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	GEN_DIFF(diff_body_##lc, struct cfs_##lc, req)                                             \
	GEN_DIFF(diff_body_##lc##_resp, struct cfs_##lc##_resp, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT
#undef GEN_DIFF
#undef A
#undef F

struct sample_ops {
	void (*fill)(struct sample *s, void *body);
	const char *(*diff)(const void *a, const void *b);
};

#define CFS_STRUCT(lc, fields)
#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	[CFS_MSG_##UC] = {fill_body_##lc, diff_body_##lc},                                         \
	[CFS_MSG_##UC##_RESP] = {fill_body_##lc##_resp, diff_body_##lc##_resp},
static const struct sample_ops g_sample_ops[CFS_MSG__COUNT] = {
#include "chainfs/proto.def"
};
#undef CFS_RPC
#undef CFS_STRUCT

/**
 * A new message of `type` with every body field non-zero and header fields
 * set; a response gets a negative rc (a positive one is refused on decode).
 * NULL on OOM.
 */
static inline struct rt_msg *
sample_msg(unsigned type, unsigned variant, uint64_t seed)
{
	struct sample s = {.seed = seed, .variant = variant};

	s.m = rt_msg_new(type);
	if (s.m == NULL)
		return NULL;
	g_sample_ops[type].fill(&s, s.m->body);
	if (s.err != 0) {
		rt_msg_free(&s.m);
		return NULL;
	}
	s.m->req_id = sample_u(&s, UINT64_MAX);
	s.m->src = sample_u(&s, UINT64_MAX);
	s.m->dst = sample_u(&s, UINT64_MAX);
	s.m->flags = RT_MSG_F_RELAXED;
	if (cfs_msg_is_resp(type)) {
		int32_t *rc = s.m->body;

		if (*rc > 0)
			*rc = -*rc;
		s.m->rc = *rc;
		s.m->flags |= RT_MSG_F_RESP;
	}
	return s.m;
}

/** NULL when the two bodies of `type` hold the same values, else a field name. */
static inline const char *
sample_diff(unsigned type, const void *a, const void *b)
{
	return g_sample_ops[type].diff(a, b);
}

#endif

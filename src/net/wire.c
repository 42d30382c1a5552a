/* SPDX-License-Identifier: MIT */
/*
 * The wire codec: frame encoding and decoding, and the per-message body
 * encoders and decoders, all generated from include/chainfs/proto.def with
 * X-macros (no hand-written per-message code). Encoding writes msgpack with a
 * small writer of our own straight into a struct wire_buf; decoding walks the
 * received bytes with the bounded reader of wire_reader.h. A decoded message
 * never points into the receive buffer: str/bin fields are copied into its
 * arena. See src/net/README.md for the frame format and the limits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/wire.h"
#include "net/wire_reader.h"
/* The writers are tiny but gcc -O2 keeps them out of line (wr_uint was ~35
 * instructions a call, seven calls a frame): force them in. */
#define AI __attribute__((always_inline)) inline

#define HDR_FIELDS 8
_Static_assert(CFS_PROTO_VERSION <= 0x7f, "the version is written as one fixint byte");

/* A body sits at depth 2 of a frame (header array, body array), its A()
 * arrays at 3 and their records at 4. */
#define BODY_DEPTH 2

static const struct wire_limits g_default_limits = WIRE_LIMITS_DEFAULT;

/* ------------------------------------------------------------ wire_buf */

void
wire_buf_init(struct wire_buf *b)
{
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
}

void
wire_buf_reset(struct wire_buf *b)
{
	b->len = 0;
}

void
wire_buf_fini(struct wire_buf *b)
{
	free(b->p);
	wire_buf_init(b);
}

int
wire_buf_reserve(struct wire_buf *b, size_t extra)
{
	size_t cap = b->cap ? b->cap : 256;
	uint8_t *p;

	if (b->cap - b->len >= extra)
		return 0;
	if (extra > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	while (cap - b->len < extra)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

void
wire_buf_consume(struct wire_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

/* -------------------------------------------------------------- writer */

/*
 * The msgpack writer. Errors are sticky: after the first one every write is a
 * no-op and the caller checks w->err once at the end, which keeps the
 * generated encoders free of error branches.
 */
struct wr {
	struct wire_buf *b;
	int err;
};

/* Room for n more bytes, or NULL with w->err set. */
static AI uint8_t *
wr_room(struct wr *w, size_t n)
{
	struct wire_buf *b = w->b;
	int rc;

	if (w->err != 0)
		return NULL;
	if (b->cap - b->len < n) {
		rc = wire_buf_reserve(b, n);
		if (rc != 0) {
			w->err = rc;
			return NULL;
		}
	}
	return b->p + b->len;
}

static inline void
store_be16(uint8_t *q, uint16_t v)
{
	q[0] = (uint8_t)(v >> 8);
	q[1] = (uint8_t)v;
}

static inline void
store_be32(uint8_t *q, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(q, &v, sizeof(v));
}

static inline void
store_be64(uint8_t *q, uint64_t v)
{
	v = __builtin_bswap64(v);
	memcpy(q, &v, sizeof(v));
}

/* The header array byte and seven integers of at most 9 bytes each. */
#define HDR_FIXED_MAX (1 + 7 * 9)

/* Smallest msgpack format for v, as msgpack-c's packer picks it, at q (room
 * reserved by the caller); returns the byte after it. */
static AI uint8_t *
put_uint(uint8_t *q, uint64_t v)
{
	if (v <= 0x7f) {
		q[0] = (uint8_t)v;
		return q + 1;
	}
	if (v <= 0xff) {
		q[0] = 0xcc;
		q[1] = (uint8_t)v;
		return q + 2;
	}
	if (v <= 0xffff) {
		q[0] = 0xcd;
		store_be16(q + 1, (uint16_t)v);
		return q + 3;
	}
	if (v <= 0xffffffff) {
		q[0] = 0xce;
		store_be32(q + 1, (uint32_t)v);
		return q + 5;
	}
	q[0] = 0xcf;
	store_be64(q + 1, v);
	return q + 9;
}

/* Smallest msgpack format for v, as msgpack-c's packer picks it. */
static AI void
wr_uint(struct wr *w, uint64_t v)
{
	uint8_t *q = wr_room(w, 9);

	if (q == NULL)
		return;
	w->b->len = (size_t)(put_uint(q, v) - w->b->p);
}

static AI uint8_t *
put_int(uint8_t *q, int64_t v)
{
	if (v >= 0)
		return put_uint(q, (uint64_t)v);
	if (v >= -32) {
		q[0] = (uint8_t)(int8_t)v;
		return q + 1;
	}
	if (v >= INT8_MIN) {
		q[0] = 0xd0;
		q[1] = (uint8_t)(int8_t)v;
		return q + 2;
	}
	if (v >= INT16_MIN) {
		q[0] = 0xd1;
		store_be16(q + 1, (uint16_t)(int16_t)v);
		return q + 3;
	}
	if (v >= INT32_MIN) {
		q[0] = 0xd2;
		store_be32(q + 1, (uint32_t)(int32_t)v);
		return q + 5;
	}
	q[0] = 0xd3;
	store_be64(q + 1, (uint64_t)v);
	return q + 9;
}

static AI uint8_t *
put_array(uint8_t *q, uint32_t n)
{
	if (n <= 15) {
		q[0] = (uint8_t)(0x90 | n);
		return q + 1;
	}
	if (n <= 0xffff) {
		q[0] = 0xdc;
		store_be16(q + 1, (uint16_t)n);
		return q + 3;
	}
	q[0] = 0xdd;
	store_be32(q + 1, n);
	return q + 5;
}

static inline uint8_t *
put_raw(uint8_t *q, bool str, const uint8_t *p, uint32_t n)
{
	if (str && n <= 31) {
		*q++ = (uint8_t)(0xa0 | n);
	} else if (n <= 0xff) {
		*q++ = str ? 0xd9 : 0xc4;
		*q++ = (uint8_t)n;
	} else if (n <= 0xffff) {
		*q++ = str ? 0xda : 0xc5;
		store_be16(q, (uint16_t)n);
		q += 2;
	} else {
		*q++ = str ? 0xdb : 0xc6;
		store_be32(q, n);
		q += 4;
	}
	if (n > 0)
		memcpy(q, p, n);
	return q + n;
}

static AI void
wr_int(struct wr *w, int64_t v)
{
	uint8_t *q = wr_room(w, 9);

	if (q == NULL)
		return;
	w->b->len = (size_t)(put_int(q, v) - w->b->p);
}

static AI void
wr_bool(struct wr *w, bool v)
{
	uint8_t *q = wr_room(w, 1);

	if (q == NULL)
		return;
	q[0] = v ? 0xc3 : 0xc2;
	w->b->len += 1;
}

static AI void
wr_array(struct wr *w, uint32_t n)
{
	uint8_t *q = wr_room(w, 5);

	if (q == NULL)
		return;
	w->b->len = (size_t)(put_array(q, n) - w->b->p);
}

/* str or bin: a header then the bytes. */
static inline void
wr_raw(struct wr *w, bool str, const uint8_t *p, uint32_t n)
{
	uint8_t *q;

	if (n > 0 && p == NULL) {
		if (w->err == 0)
			w->err = -EINVAL;
		return;
	}
	q = wr_room(w, (size_t)n + 5);
	if (q == NULL)
		return;
	w->b->len = (size_t)(put_raw(q, str, p, n) - w->b->p);
}

/* ------------------------------------------------ unchecked writers */

/*
 * The frame fast path: wire_encode reserves an upper bound of the body's size
 * once (room_body_<lc>, a constant for rows of fixed-size fields) and then
 * writes every item with the put_* functions, which check nothing. They
 * produce exactly the bytes of the checked wr_* writers (smallest formats),
 * which remain for the rare frame whose bound exceeds the header limit.
 */

/* Bound of a field the room functions cannot honour (NULL bytes with a length,
 * NULL array with a count): far above any limit, and a sum of a few hundred of
 * them does not overflow. wire_encode then takes the checked path, which
 * returns the precise error. */
#define ROOM_BAD ((size_t)1 << 48)

/* Per field type: the most bytes it can take (room_T) and its writer (put_T). */
static AI size_t
room_BOOL(const bool *v)
{
	return 1;
}

static AI size_t
room_U32(const uint32_t *v)
{
	return 5;
}

static AI size_t
room_U64(const uint64_t *v)
{
	return 9;
}

static AI size_t
room_I32(const int32_t *v)
{
	return 5;
}

static AI size_t
room_I64(const int64_t *v)
{
	return 9;
}

static AI size_t
room_STR(const struct cfs_bytes *v)
{
	return v->len > 0 && v->p == NULL ? ROOM_BAD : 5 + (size_t)v->len;
}

static AI size_t
room_BYTES(const struct cfs_bytes *v)
{
	return room_STR(v);
}

static AI size_t
room_ID(const struct cfs_id128 *v)
{
	return 2 + sizeof(v->b);
}

static AI uint8_t *
put_BOOL(uint8_t *q, const bool *v)
{
	*q = *v ? 0xc3 : 0xc2;
	return q + 1;
}

static AI uint8_t *
put_U32(uint8_t *q, const uint32_t *v)
{
	return put_uint(q, *v);
}

static AI uint8_t *
put_U64(uint8_t *q, const uint64_t *v)
{
	return put_uint(q, *v);
}

static AI uint8_t *
put_I32(uint8_t *q, const int32_t *v)
{
	return put_int(q, *v);
}

static AI uint8_t *
put_I64(uint8_t *q, const int64_t *v)
{
	return put_int(q, *v);
}

static AI uint8_t *
put_STR(uint8_t *q, const struct cfs_bytes *v)
{
	return put_raw(q, true, v->p, v->len);
}

static AI uint8_t *
put_BYTES(uint8_t *q, const struct cfs_bytes *v)
{
	return put_raw(q, false, v->p, v->len);
}

static AI uint8_t *
put_ID(uint8_t *q, const struct cfs_id128 *v)
{
	q[0] = 0xc4;
	q[1] = sizeof(v->b);
	memcpy(q + 2, v->b, sizeof(v->b));
	return q + 2 + sizeof(v->b);
}

/* ------------------------------------------- field encoders and decoders */

/* One encoder and one decoder per field type of proto.def (F(T, name)). The
 * decoders check the msgpack type and the range of the C type. */

static inline void
enc_BOOL(struct wr *w, const bool *v)
{
	wr_bool(w, *v);
}

static inline void
enc_U32(struct wr *w, const uint32_t *v)
{
	wr_uint(w, *v);
}

static inline void
enc_U64(struct wr *w, const uint64_t *v)
{
	wr_uint(w, *v);
}

static inline void
enc_I32(struct wr *w, const int32_t *v)
{
	wr_int(w, *v);
}

static inline void
enc_I64(struct wr *w, const int64_t *v)
{
	wr_int(w, *v);
}

static inline void
enc_STR(struct wr *w, const struct cfs_bytes *v)
{
	wr_raw(w, true, v->p, v->len);
}

static inline void
enc_BYTES(struct wr *w, const struct cfs_bytes *v)
{
	wr_raw(w, false, v->p, v->len);
}

static inline void
enc_ID(struct wr *w, const struct cfs_id128 *v)
{
	wr_raw(w, false, v->b, sizeof(v->b));
}

/*
 * Integer fast paths. Most integers of a frame are positive fixints, and the
 * rest (addresses, ids, sizes) use the unsigned formats 0xcc..0xcf: both are
 * read inline with one bounds check; any other format (signed ones carrying
 * a value, truncated input) goes to the generic reader out of line, which
 * decides exactly as before.
 */
static __attribute__((noinline)) int
rd_uint_slow(struct wire_rd *rd, uint64_t max, uint64_t *out)
{
	return wire_rd_uint_max(rd, max, out);
}

static __attribute__((noinline)) int
rd_int_slow(struct wire_rd *rd, int64_t min, int64_t max, int64_t *out)
{
	return wire_rd_int_range(rd, min, max, out);
}

/*
 * One integer in a format senders use (positive fixint, uint8..64), the
 * cursor in a register: the one unsigned decoder of this file, under the
 * header reader, the body fast path and rd_uint. false: anything else,
 * including too few bytes; the callers then go to the generic reader.
 */
static AI bool
get_uint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
	const uint8_t *p = *pp;
	uint64_t v;
	unsigned n;

	if (__builtin_expect(end - p >= 9, 1)) {
		/* Room for the widest format: one load, the unused bytes shifted
		 * out, no switch on the width. */
		if (p[0] <= 0x7f) {
			v = p[0];
			n = 0;
		} else if ((p[0] & 0xfc) == 0xcc) {
			n = 1u << (p[0] & 3);
			v = wire_load_be64(p + 1) >> (64 - 8 * n);
		} else {
			return false;
		}
	} else if (p == end) {
		return false;
	} else if (p[0] <= 0x7f) {
		v = p[0];
		n = 0;
	} else if ((p[0] & 0xfc) != 0xcc) {
		return false;
	} else {
		/* The last bytes of the buffer: only as many as the format has. */
		n = 1u << (p[0] & 3);
		if (end - p < 1 + (ptrdiff_t)n)
			return false;
		if (n == 1)
			v = p[1];
		else if (n == 2)
			v = wire_load_be16(p + 1);
		else if (n == 4)
			v = wire_load_be32(p + 1);
		else
			v = wire_load_be64(p + 1);
	}
	*out = v;
	*pp = p + 1 + n;
	return true;
}

static AI int
rd_uint(struct wire_rd *rd, uint64_t max, uint64_t *out)
{
	const uint8_t *p = rd->p;
	uint64_t v;

	if (!get_uint(&p, rd->end, &v))
		return rd_uint_slow(rd, max, out);
	if (v > max)
		return -CFS_EPROTO;
	*out = v;
	rd->p = p;
	return 0;
}

/* Signed fields: fixints of either sign inline (rc is 0 or a small negative
 * number), the rest through the generic reader. */
static AI int
rd_int(struct wire_rd *rd, int64_t min, int64_t max, int64_t *out)
{
	int64_t v;

	if (rd->p == rd->end || (rd->p[0] > 0x7f && rd->p[0] < 0xe0))
		return rd_int_slow(rd, min, max, out);
	v = (int8_t)rd->p[0];
	if (v < min || v > max)
		return -CFS_EPROTO;
	*out = v;
	rd->p++;
	return 0;
}

static AI int
dec_BOOL(struct wire_rd *rd, struct rt_msg *m, bool *v)
{
	return wire_rd_bool(rd, v);
}

static AI int
dec_U32(struct wire_rd *rd, struct rt_msg *m, uint32_t *v)
{
	uint64_t x;
	int rc;

	rc = rd_uint(rd, UINT32_MAX, &x);
	if (rc == 0)
		*v = (uint32_t)x;
	return rc;
}

static AI int
dec_U64(struct wire_rd *rd, struct rt_msg *m, uint64_t *v)
{
	return rd_uint(rd, UINT64_MAX, v);
}

static AI int
dec_I32(struct wire_rd *rd, struct rt_msg *m, int32_t *v)
{
	int64_t x;
	int rc;

	rc = rd_int(rd, INT32_MIN, INT32_MAX, &x);
	if (rc == 0)
		*v = (int32_t)x;
	return rc;
}

static AI int
dec_I64(struct wire_rd *rd, struct rt_msg *m, int64_t *v)
{
	return rd_int(rd, INT64_MIN, INT64_MAX, v);
}

/* Copied into the message's arena: the receive buffer is reused as soon as
 * wire_decode returns. Empty values stay {NULL, 0}, like a missing field. */
static inline int
copy_bytes(struct rt_msg *m, struct cfs_bytes *v, const uint8_t *p, uint32_t n)
{
	if (n == 0)
		return 0;
	return rt_msg_copy_bytes(m, v, p, n);
}

static inline int
dec_STR(struct wire_rd *rd, struct rt_msg *m, struct cfs_bytes *v)
{
	const uint8_t *p;
	uint32_t n;
	int rc;

	rc = wire_rd_str(rd, &p, &n);
	if (rc != 0)
		return rc;
	return copy_bytes(m, v, p, n);
}

static inline int
dec_BYTES(struct wire_rd *rd, struct rt_msg *m, struct cfs_bytes *v)
{
	const uint8_t *p;
	uint32_t n;
	int rc;

	rc = wire_rd_bin(rd, &p, &n);
	if (rc != 0)
		return rc;
	return copy_bytes(m, v, p, n);
}

static inline int
dec_ID(struct wire_rd *rd, struct rt_msg *m, struct cfs_id128 *v)
{
	const uint8_t *p;
	uint32_t n;
	int rc;

	rc = wire_rd_bin(rd, &p, &n);
	if (rc != 0)
		return rc;
	if (n != sizeof(v->b))
		return -CFS_EPROTO;
	memcpy(v->b, p, sizeof(v->b));
	return 0;
}

/* Extra trailing fields of a container at `depth`: skipped, with what is left
 * of WIRE_MAX_DEPTH as their nesting budget. */
static int
skip_extra(struct wire_rd *rd, uint32_t n, unsigned depth)
{
	int rc = 0;

	while (n-- > 0 && rc == 0)
		rc = wire_rd_skip(rd, WIRE_MAX_DEPTH - depth);
	return rc;
}

/* ---------------------------------------------------- generated codecs */

/* Field counts: NF_<lc> for records and request bodies, NF_<lc>_resp. */
#define F(T, name)			 +1
#define A(lc, name)			 +1
#define CFS_STRUCT(lc, fields)		 NF_##lc = 0 fields,
#define CFS_RPC(UC, lc, code, req, resp) NF_##lc = 0 req, NF_##lc##_resp = 0 resp,
enum {
#include "chainfs/proto.def"
};
#undef CFS_RPC
#undef CFS_STRUCT
#undef A
#undef F

/* Records hold scalars only: WIRE_MAX_DEPTH counts on it. A record with an A()
 * field needs WIRE_MAX_DEPTH raised (and old peers would refuse it). */
#define F(T, name)
#define A(lc, name) +1
#define CFS_STRUCT(lc, fields)                                                                     \
	_Static_assert((0 fields) == 0, "record " #lc " nests an array: raise WIRE_MAX_DEPTH");
#define CFS_RPC(UC, lc, code, req, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT
#undef A
#undef F

/* Record codecs: declared first so bodies may use any record. */
#define CFS_STRUCT(lc, fields)                                                                     \
	static void enc_rec_##lc(struct wr *w, const void *body);                                  \
	static int dec_rec_##lc(struct wire_rd *rd, struct rt_msg *m, void *body, unsigned depth);
#define CFS_RPC(UC, lc, code, req, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT

/* An A(lc, name) field: a msgpack array of records, allocated in the arena
 * only after wire_rd_array checked the count against the bytes left. */
#define CFS_STRUCT(lc, fields)                                                                     \
	static void enc_arr_##lc(struct wr *w, const struct cfs_##lc *a, uint32_t n)               \
	{                                                                                          \
		uint32_t i;                                                                        \
                                                                                                   \
		if (n > 0 && a == NULL) {                                                          \
			if (w->err == 0)                                                           \
				w->err = -EINVAL;                                                  \
			return;                                                                    \
		}                                                                                  \
		wr_array(w, n);                                                                    \
		for (i = 0; i < n; i++)                                                            \
			enc_rec_##lc(w, &a[i]);                                                    \
	}                                                                                          \
	static int dec_arr_##lc(struct wire_rd *rd, struct rt_msg *m, struct cfs_##lc **a,         \
				uint32_t *count, unsigned depth)                                   \
	{                                                                                          \
		struct cfs_##lc *v;                                                                \
		uint32_t i, n;                                                                     \
		int rc;                                                                            \
                                                                                                   \
		rc = wire_rd_array(rd, &n);                                                        \
		if (rc != 0 || n == 0)                                                             \
			goto out;                                                                  \
		v = rt_msg_alloc(m, (size_t)n * sizeof(*v));                                       \
		if (v == NULL) {                                                                   \
			rc = -ENOMEM;                                                              \
			goto out;                                                                  \
		}                                                                                  \
		for (i = 0; i < n && rc == 0; i++)                                                 \
			rc = dec_rec_##lc(rd, m, &v[i], depth + 1);                                \
		*a = v;                                                                            \
		*count = n;                                                                        \
	out:                                                                                       \
		return rc;                                                                         \
	}
#define CFS_RPC(UC, lc, code, req, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT

/*
 * The field list of a record or body, as encoder statements and as decoder
 * statements. A decoder stops cleanly at the sender's field count (missing
 * trailing fields stay zero) and skips what the sender has beyond ours.
 */
#define ENC_F(T, name)	enc_##T(w, &b->name);
#define ENC_A(lc, name) enc_arr_##lc(w, b->name, b->name##_count);
#define DEC_F(T, name)                                                                             \
	if (i == n)                                                                                \
		goto out;                                                                          \
	rc = dec_##T(rd, m, &b->name);                                                             \
	if (rc != 0)                                                                               \
		goto out;                                                                          \
	i++;
#define DEC_A(lc, name)                                                                            \
	if (i == n)                                                                                \
		goto out;                                                                          \
	rc = dec_arr_##lc(rd, m, &b->name, &b->name##_count, depth + 1);                           \
	if (rc != 0)                                                                               \
		goto out;                                                                          \
	i++;

/* Body and record functions; TYPE is the struct, NF its field count. */
#define GEN_ENC(fn, TYPE, NF, fields)                                                              \
	static void fn(struct wr *w, const void *body)                                             \
	{                                                                                          \
		const TYPE *b = body;                                                              \
                                                                                                   \
		wr_array(w, NF);                                                                   \
		fields                                                                             \
	}
#define GEN_DEC(fn, TYPE, fields)                                                                  \
	static int fn(struct wire_rd *rd, struct rt_msg *m, void *body, unsigned depth)            \
	{                                                                                          \
		TYPE *b = body;                                                                    \
		uint32_t i = 0, n;                                                                 \
		int rc;                                                                            \
                                                                                                   \
		rc = wire_rd_array(rd, &n);                                                        \
		if (rc != 0)                                                                       \
			goto out;                                                                  \
		fields;                                                                            \
		rc = skip_extra(rd, n - i, depth);                                                 \
	out:                                                                                       \
		return rc;                                                                         \
	}

#define F		       ENC_F
#define A		       ENC_A
#define CFS_STRUCT(lc, fields) GEN_ENC(enc_rec_##lc, struct cfs_##lc, NF_##lc, fields)
#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	GEN_ENC(enc_body_##lc, struct cfs_##lc, NF_##lc, req)                                      \
	GEN_ENC(enc_body_##lc##_resp, struct cfs_##lc##_resp, NF_##lc##_resp, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT
#undef A
#undef F

#define F		       DEC_F
#define A		       DEC_A
#define CFS_STRUCT(lc, fields) GEN_DEC(dec_rec_##lc, struct cfs_##lc, fields)
#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	GEN_DEC(dec_body_##lc, struct cfs_##lc, req)                                               \
	GEN_DEC(dec_body_##lc##_resp, struct cfs_##lc##_resp, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT
#undef A
#undef F

/*
 * The unchecked twins: room_<fn> bounds the bytes of a record or body (3 for
 * its array header, then each field's most), put_<fn> writes it into room
 * reserved by the caller. A bound of ROOM_BAD or more means a field the
 * checked encoder must refuse.
 */
#define CFS_STRUCT(lc, fields)                                                                     \
	static size_t room_rec_##lc(const void *body);                                             \
	static uint8_t *put_rec_##lc(uint8_t *q, const void *body);
#define CFS_RPC(UC, lc, code, req, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT

#define CFS_STRUCT(lc, fields)                                                                     \
	static size_t room_arr_##lc(const struct cfs_##lc *a, uint32_t n)                          \
	{                                                                                          \
		size_t r = 5;                                                                      \
                                                                                                   \
		if (n > 0 && a == NULL)                                                            \
			return ROOM_BAD;                                                           \
		for (uint32_t i = 0; i < n && r < ROOM_BAD; i++)                                   \
			r += room_rec_##lc(&a[i]);                                                 \
		return r;                                                                          \
	}                                                                                          \
	static uint8_t *put_arr_##lc(uint8_t *q, const struct cfs_##lc *a, uint32_t n)             \
	{                                                                                          \
		q = put_array(q, n);                                                               \
		for (uint32_t i = 0; i < n; i++)                                                   \
			q = put_rec_##lc(q, &a[i]);                                                \
		return q;                                                                          \
	}
#define CFS_RPC(UC, lc, code, req, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT

#define ROOM_F(T, name)	 +room_##T(&b->name)
#define ROOM_A(lc, name) +room_arr_##lc(b->name, b->name##_count)
#define PUT_F(T, name)	 q = put_##T(q, &b->name);
#define PUT_A(lc, name)	 q = put_arr_##lc(q, b->name, b->name##_count);
#define GEN_ROOM(fn, TYPE, fields)                                                                 \
	static size_t fn(const void *body)                                                         \
	{                                                                                          \
		const TYPE *b = body;                                                              \
                                                                                                   \
		(void)b;                                                                           \
		return 3 fields;                                                                   \
	}
#define GEN_PUT(fn, TYPE, NF, fields)                                                              \
	static uint8_t *fn(uint8_t *q, const void *body)                                           \
	{                                                                                          \
		const TYPE *b = body;                                                              \
                                                                                                   \
		q = put_array(q, NF);                                                              \
		fields return q;                                                                   \
	}

#define F		       ROOM_F
#define A		       ROOM_A
#define CFS_STRUCT(lc, fields) GEN_ROOM(room_rec_##lc, struct cfs_##lc, fields)
#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	GEN_ROOM(room_body_##lc, struct cfs_##lc, req)                                             \
	GEN_ROOM(room_body_##lc##_resp, struct cfs_##lc##_resp, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT
#undef A
#undef F

#define F		       PUT_F
#define A		       PUT_A
#define CFS_STRUCT(lc, fields) GEN_PUT(put_rec_##lc, struct cfs_##lc, NF_##lc, fields)
#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	GEN_PUT(put_body_##lc, struct cfs_##lc, NF_##lc, req)                                      \
	GEN_PUT(put_body_##lc##_resp, struct cfs_##lc##_resp, NF_##lc##_resp, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT
#undef A
#undef F

/*
 * Body fast path of the decoder: a body of exactly our field count, all of
 * them integers, booleans or ids in the formats senders use, read in
 * straight-line code with the cursor in a register. Anything else (fewer or
 * more fields, other formats, errors, rows with str/bin/array fields) makes it
 * return false without writing the cursor, and the generic decoder reads the
 * body from the start, deciding exactly as before. Fields it wrote are
 * rewritten by the generic decoder, which reads the same leading fields.
 */
static AI bool
fast_uint(const uint8_t **pp, const uint8_t *end, uint64_t max, uint64_t *out)
{
	uint64_t v;

	if (!get_uint(pp, end, &v))
		return false;
	if (v > max)
		return false;
	*out = v;
	return true;
}

static AI bool
fast_sint(const uint8_t **pp, const uint8_t *end, int64_t min, int64_t max, int64_t *out)
{
	const uint8_t *p = *pp;
	int64_t v;

	if (p == end || (p[0] > 0x7f && p[0] < 0xe0))
		return false;
	v = (int8_t)p[0];
	if (v < min || v > max)
		return false;
	*out = v;
	*pp = p + 1;
	return true;
}

static AI bool
fast_BOOL(const uint8_t **pp, const uint8_t *end, bool *v)
{
	const uint8_t *p = *pp;

	if (p == end || (p[0] & 0xfe) != 0xc2)
		return false;
	*v = p[0] == 0xc3;
	*pp = p + 1;
	return true;
}

static AI bool
fast_U32(const uint8_t **pp, const uint8_t *end, uint32_t *v)
{
	uint64_t x;

	if (!fast_uint(pp, end, UINT32_MAX, &x))
		return false;
	*v = (uint32_t)x;
	return true;
}

static AI bool
fast_U64(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	return fast_uint(pp, end, UINT64_MAX, v);
}

static AI bool
fast_I32(const uint8_t **pp, const uint8_t *end, int32_t *v)
{
	int64_t x;

	if (!fast_sint(pp, end, INT32_MIN, INT32_MAX, &x))
		return false;
	*v = (int32_t)x;
	return true;
}

static AI bool
fast_I64(const uint8_t **pp, const uint8_t *end, int64_t *v)
{
	return fast_sint(pp, end, INT64_MIN, INT64_MAX, v);
}

static AI bool
fast_ID(const uint8_t **pp, const uint8_t *end, struct cfs_id128 *v)
{
	const uint8_t *p = *pp;

	if (end - p < 2 + (ptrdiff_t)sizeof(v->b) || p[0] != 0xc4 || p[1] != sizeof(v->b))
		return false;
	memcpy(v->b, p + 2, sizeof(v->b));
	*pp = p + 2 + sizeof(v->b);
	return true;
}

/* Never called: rows with these fields have no fast decoder (FAST() below). */
static AI bool
fast_STR(const uint8_t **pp, const uint8_t *end, struct cfs_bytes *v)
{
	return false;
}

static AI bool
fast_BYTES(const uint8_t **pp, const uint8_t *end, struct cfs_bytes *v)
{
	return false;
}

#define FAST_F(T, name)                                                                            \
	if (!fast_##T(&p, end, &b->name))                                                          \
		return false;
#define FAST_A(lc, name) return false;
#define GEN_FAST(fn, TYPE, NF, fields)                                                             \
	static bool fn(const uint8_t **pp, const uint8_t *end, void *body)                         \
	{                                                                                          \
		const uint8_t *p = *pp;                                                            \
		TYPE *b = body;                                                                    \
                                                                                                   \
		if ((NF) > 15 || p == end || p[0] != (0x90 | (NF)))                                \
			return false;                                                              \
		p++;                                                                               \
		fields *pp = p;                                                                    \
		return true;                                                                       \
	}
#define F FAST_F
#define A FAST_A
#define CFS_STRUCT(lc, fields)
#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	GEN_FAST(fast_body_##lc, struct cfs_##lc, NF_##lc, req)                                    \
	GEN_FAST(fast_body_##lc##_resp, struct cfs_##lc##_resp, NF_##lc##_resp, resp)
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT
#undef A
#undef F

/* Constant bounds, for the table below: a field of fixed size adds its most,
 * a variable one ROOM_BAD (the row then has no constant bound). */
#define RC_BOOL	 1
#define RC_U32	 5
#define RC_U64	 9
#define RC_I32	 5
#define RC_I64	 9
#define RC_ID	 18
#define RC_STR	 ROOM_BAD
#define RC_BYTES ROOM_BAD

/* The tables, indexed by enum cfs_msg_type; every entry is called with the
 * body of its own type. */
typedef void (*enc_body_fn)(struct wr *w, const void *body);
typedef int (*dec_body_fn)(struct wire_rd *rd, struct rt_msg *m, void *body, unsigned depth);
typedef size_t (*room_body_fn)(const void *body);
typedef uint8_t *(*put_body_fn)(uint8_t *q, const void *body);
typedef bool (*fast_body_fn)(const uint8_t **pp, const uint8_t *end, void *body);

struct body_codec {
	enc_body_fn enc;
	dec_body_fn dec;
	room_body_fn room;
	put_body_fn put;
	fast_body_fn fast;   /* NULL: the row has fields it cannot read */
	uint32_t room_const; /* the bound when constant, else 0: call room */
	uint16_t code;	     /* wire code (responses with CFS_WIRE_RESP) */
};

#define ROOM_CONST(fields) ((3 fields) < ROOM_BAD ? (uint32_t)(3 fields) : 0)
#define FAST(fn, fields)   ((0 fields) < ROOM_BAD ? (fn) : NULL)
#define F(T, name)	   +RC_##T
#define A(lc, name)	   +ROOM_BAD
#define CFS_STRUCT(lc, fields)
#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	[CFS_MSG_##UC] = {enc_body_##lc,                                                           \
			  dec_body_##lc,                                                           \
			  room_body_##lc,                                                          \
			  put_body_##lc,                                                           \
			  FAST(fast_body_##lc, req),                                               \
			  ROOM_CONST(req),                                                         \
			  (code)},                                                                 \
	[CFS_MSG_##UC##_RESP] = {enc_body_##lc##_resp,                                             \
				 dec_body_##lc##_resp,                                             \
				 room_body_##lc##_resp,                                            \
				 put_body_##lc##_resp,                                             \
				 FAST(fast_body_##lc##_resp, resp),                                \
				 ROOM_CONST(resp),                                                 \
				 (code) | CFS_WIRE_RESP},
static const struct body_codec g_codecs[CFS_MSG__COUNT] = {
#include "chainfs/proto.def"
};
#undef CFS_RPC
#undef CFS_STRUCT
#undef A
#undef F

static const struct body_codec *
codec_of(unsigned type)
{
	if (type == CFS_MSG_NONE || type >= CFS_MSG__COUNT)
		return NULL;
	return &g_codecs[type];
}

/* -------------------------------------------------------------- frames */

int
wire_encode_body(struct wire_buf *out, unsigned type, const void *body)
{
	const struct body_codec *c = codec_of(type);
	size_t start = out->len;
	struct wr w = {.b = out};

	if (c == NULL || body == NULL)
		return -EINVAL;
	c->enc(&w, body);
	if (w.err != 0)
		out->len = start;
	return w.err;
}

/* The header array and its seven integers (at most HDR_FIXED_MAX bytes). */
static AI uint8_t *
put_hdr(uint8_t *q, const struct body_codec *c, const struct rt_msg *m, uint16_t flags)
{
	*q++ = (uint8_t)(0x90 | HDR_FIELDS);
	*q++ = CFS_PROTO_VERSION; /* a positive fixint (asserted at the top) */
	q = put_uint(q, c->code);
	q = put_uint(q, m->req_id);
	q = put_uint(q, m->src);
	q = put_uint(q, m->dst);
	q = put_uint(q, flags);
	return put_uint(q, m->plen);
}

/* The checked encoder: for a frame whose bound exceeds the header limit (it
 * may still fit) or that holds a field put_* cannot write. */
static int
encode_checked(struct wire_buf *out, const struct body_codec *c, const struct rt_msg *m,
	       uint16_t flags, const struct wire_limits *lim)
{
	size_t start = out->len;
	struct wr w = {.b = out};
	size_t hdr;
	int rc;

	/* The fixed part in one go: prefix, array header, seven integers. */
	if (wr_room(&w, WIRE_PREFIX + HDR_FIXED_MAX) == NULL)
		goto out_undo;
	out->len = (size_t)(put_hdr(out->p + out->len + WIRE_PREFIX, c, m, flags) - out->p);
	c->enc(&w, m->body);
	if (w.err != 0)
		goto out_undo;
	hdr = out->len - start - WIRE_PREFIX;
	if (hdr > lim->max_hdr) {
		w.err = -CFS_ETOOBIG;
		goto out_undo;
	}
	store_be32(out->p + start, (uint32_t)hdr);
	return 0;

out_undo:
	rc = w.err;
	out->len = start;
	return rc;
}

int
wire_encode(struct wire_buf *out, const struct rt_msg *m, const struct wire_limits *lim)
{
	const struct body_codec *c = codec_of(m->type);
	uint8_t *h, *q;
	uint16_t flags;
	size_t room, hdr;

	if (lim == NULL)
		lim = &g_default_limits;
	if (c == NULL || m->body == NULL)
		return -EINVAL;
	if (m->plen > lim->max_payload)
		return -CFS_ETOOBIG;
	/* The wire code says whether this is a response; the flag follows it. */
	flags = m->flags & ~RT_MSG_F_RESP;
	if (cfs_msg_is_resp(m->type))
		flags |= RT_MSG_F_RESP;
	room = c->room_const ? c->room_const : c->room(m->body);
	if (room > lim->max_hdr)
		return encode_checked(out, c, m, flags, lim);

	/* Fast path: one reservation for the bound, then unchecked writes. */
	room += WIRE_PREFIX + HDR_FIXED_MAX;
	if (out->cap - out->len < room && wire_buf_reserve(out, room) != 0)
		return -ENOMEM;
	h = out->p + out->len;
	q = h + WIRE_PREFIX;
	q = put_hdr(q, c, m, flags);
	q = c->put(q, m->body);
	hdr = (size_t)(q - h) - WIRE_PREFIX;
	if (hdr > lim->max_hdr)
		return -CFS_ETOOBIG;
	store_be32(h, (uint32_t)hdr);
	out->len += WIRE_PREFIX + hdr;
	return 0;
}

int
wire_hdr_len(const uint8_t *p, size_t n, const struct wire_limits *lim, uint32_t *hdr_len)
{
	uint32_t h;

	if (lim == NULL)
		lim = &g_default_limits;
	if (n < WIRE_PREFIX)
		return -EAGAIN;
	h = wire_load_be32(p);
	if (h == 0)
		return -CFS_EPROTO;
	if (h > lim->max_hdr)
		return -CFS_ETOOBIG;
	*hdr_len = h;
	return 0;
}

/* The seven scalars in front of the body. */
struct hdr_fields {
	uint64_t version, code, req_id, src, dst, flags, plen;
};

static int
read_hdr_fields(struct wire_rd *rd, struct hdr_fields *h)
{
	uint32_t n;
	int rc;

	rc = wire_rd_array(rd, &n);
	if (rc == 0 && n != HDR_FIELDS)
		rc = -CFS_EPROTO;
	if (rc == 0)
		rc = wire_rd_uint(rd, &h->version);
	if (rc == 0)
		rc = wire_rd_uint_max(rd, UINT16_MAX, &h->code);
	if (rc == 0)
		rc = wire_rd_uint(rd, &h->req_id);
	if (rc == 0)
		rc = wire_rd_uint(rd, &h->src);
	if (rc == 0)
		rc = wire_rd_uint(rd, &h->dst);
	if (rc == 0)
		rc = wire_rd_uint_max(rd, UINT16_MAX, &h->flags);
	if (rc == 0)
		rc = wire_rd_uint(rd, &h->plen);
	return rc;
}

/*
 * The seven header integers as senders write them (fixarray of 8, unsigned
 * formats), in straight-line code. Anything else (other formats, an error)
 * goes to read_hdr_fields from the start, which decides exactly as the
 * generic reader always did.
 */
static AI int
read_hdr(struct wire_rd *rd, struct hdr_fields *h)
{
	const uint8_t *p = rd->p, *end = rd->end;

	if (p != end && p[0] == (0x90 | HDR_FIELDS) && (p++, true) &&
	    get_uint(&p, end, &h->version) && get_uint(&p, end, &h->code) &&
	    get_uint(&p, end, &h->req_id) && get_uint(&p, end, &h->src) &&
	    get_uint(&p, end, &h->dst) && get_uint(&p, end, &h->flags) &&
	    get_uint(&p, end, &h->plen) && h->code <= UINT16_MAX && h->flags <= UINT16_MAX) {
		rd->p = p;
		return 0;
	}
	return read_hdr_fields(rd, h);
}

int
wire_decode(const uint8_t *hdr, uint32_t hdr_len, const struct wire_limits *lim,
	    struct rt_msg **out, uint64_t *plen)
{
	uint64_t max_payload;
	struct hdr_fields h;
	struct wire_rd rd;
	struct rt_msg *m;
	unsigned type;
	int rc;

	*out = NULL;
	if (lim == NULL)
		lim = &g_default_limits;
	/* rt_msg counts payload bytes in 32 bits. */
	max_payload = lim->max_payload < UINT32_MAX ? lim->max_payload : UINT32_MAX;
	if (hdr_len > lim->max_hdr)
		return -CFS_ETOOBIG;

	wire_rd_init(&rd, hdr, hdr_len);
	rc = read_hdr(&rd, &h);
	if (rc != 0)
		return rc;
	if (h.version != CFS_PROTO_VERSION)
		return -CFS_EPROTO;
	type = h.code <= UINT16_MAX ? cfs_msg_from_code((uint16_t)h.code) : CFS_MSG_NONE;
	if (type == CFS_MSG_NONE)
		return -CFS_EPROTO;
	if (h.plen > max_payload)
		return -CFS_ETOOBIG;

	m = rt_msg_new(type);
	if (m == NULL)
		return -ENOMEM;
	m->req_id = h.req_id;
	m->src = h.src;
	m->dst = h.dst;
	m->flags = (uint16_t)(h.flags & ~RT_MSG_F_RESP);
	if (g_codecs[type].fast && g_codecs[type].fast(&rd.p, rd.end, m->body))
		rc = 0;
	else
		rc = g_codecs[type].dec(&rd, m, m->body, BODY_DEPTH);
	if (rc != 0)
		goto out_free;
	if (rd.p != rd.end) {
		rc = -CFS_EPROTO;
		goto out_free;
	}
	if (cfs_msg_is_resp(type)) {
		/* Every response body starts with its rc (proto.h asserts it); a
		 * positive one is not an error value and would confuse callers. */
		memcpy(&m->rc, m->body, sizeof(m->rc));
		if (m->rc > 0) {
			rc = -CFS_EPROTO;
			goto out_free;
		}
		m->flags |= RT_MSG_F_RESP;
	}
	*out = m;
	*plen = h.plen;
	return 0;

out_free:
	rt_msg_free(&m);
	return rc;
}

int
wire_decode_body(const uint8_t *p, size_t n, struct rt_msg *m)
{
	const struct body_codec *c = codec_of(m->type);
	struct wire_rd rd;
	int rc;

	if (c == NULL || m->body == NULL)
		return -CFS_EPROTO;
	wire_rd_init(&rd, p, n);
	if (c->fast && c->fast(&rd.p, rd.end, m->body))
		rc = 0;
	else
		rc = c->dec(&rd, m, m->body, BODY_DEPTH);
	if (rc == 0 && rd.p != rd.end)
		rc = -CFS_EPROTO;
	return rc;
}

int
wire_decode_frame(const uint8_t *p, size_t n, const struct wire_limits *lim, struct rt_msg **out,
		  size_t *consumed)
{
	struct rt_msg *m = NULL;
	struct rt_buf *buf;
	uint32_t hlen;
	uint64_t plen;
	int rc;

	*out = NULL;
	rc = wire_hdr_len(p, n, lim, &hlen);
	if (rc != 0)
		return rc;
	if (n - WIRE_PREFIX < hlen)
		return -EAGAIN;
	rc = wire_decode(p + WIRE_PREFIX, hlen, lim, &m, &plen);
	if (rc != 0)
		return rc;
	if (n - WIRE_PREFIX - hlen < plen) {
		rc = -EAGAIN;
		goto out_free;
	}
	if (plen > 0) {
		buf = rt_buf_get(plen);
		if (buf == NULL) {
			rc = -ENOMEM;
			goto out_free;
		}
		memcpy(buf->data, p + WIRE_PREFIX + hlen, plen);
		buf->len = (uint32_t)plen;
		rc = rt_msg_add_iov(m, buf, 0, (uint32_t)plen);
		rt_buf_put(&buf);
		if (rc != 0)
			goto out_free;
	}
	*out = m;
	*consumed = WIRE_PREFIX + hlen + plen;
	return 0;

out_free:
	rt_msg_free(&m);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * A bounded msgpack reader for untrusted bytes: a cursor over [p, end) that
 * reads one msgpack item at a time and checks every length against the bytes
 * left before it moves. It never allocates, so a frame that announces more
 * than it holds costs nothing but the error. It exists because msgpack-c's
 * unpacker allocates for the element count an array header claims before it
 * looks at the bytes (DESIGN.md section 2: 17 bytes ask it for 128 GiB).
 *
 * All readers return 0 or -CFS_EPROTO (wrong type, value out of range, or not
 * enough bytes). After an error the cursor is unspecified: the caller gives up
 * on the whole input. The hot readers are inline: wire_decode calls them for
 * every field of every message.
 */
#ifndef CFS_NET_WIRE_READER_H
#define CFS_NET_WIRE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chainfs/errno.h"

struct wire_rd {
	const uint8_t *p;   /* next byte to read */
	const uint8_t *end; /* one past the last byte */
};

static inline void
wire_rd_init(struct wire_rd *rd, const uint8_t *p, size_t n)
{
	rd->p = p;
	rd->end = p + n;
}

static inline size_t
wire_rd_left(const struct wire_rd *rd)
{
	return (size_t)(rd->end - rd->p);
}

static inline uint16_t
wire_load_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t
wire_load_be32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return __builtin_bswap32(v);
}

static inline uint64_t
wire_load_be64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return __builtin_bswap64(v);
}

/*
 * Read any msgpack integer format. *neg tells whether the value is negative;
 * then *v holds its two's-complement bits, else *v is the value.
 */
/* always_inline: gcc -O2 otherwise calls the integer readers out of line, a
 * third of the decoder's instructions for small frames. */
static __attribute__((always_inline)) inline int
wire_rd_integer(struct wire_rd *rd, uint64_t *v, bool *neg)
{
	size_t left = wire_rd_left(rd);
	uint8_t b;

	if (left == 0)
		return -CFS_EPROTO;
	b = rd->p[0];
	*neg = false;
	if (b <= 0x7f) {
		*v = b;
		rd->p += 1;
		return 0;
	}
	if (b >= 0xe0) {
		*v = (uint64_t)(int64_t)(int8_t)b;
		*neg = true;
		rd->p += 1;
		return 0;
	}
	switch (b) {
	case 0xcc:
		if (left < 2)
			return -CFS_EPROTO;
		*v = rd->p[1];
		rd->p += 2;
		return 0;
	case 0xcd:
		if (left < 3)
			return -CFS_EPROTO;
		*v = wire_load_be16(rd->p + 1);
		rd->p += 3;
		return 0;
	case 0xce:
		if (left < 5)
			return -CFS_EPROTO;
		*v = wire_load_be32(rd->p + 1);
		rd->p += 5;
		return 0;
	case 0xcf:
		if (left < 9)
			return -CFS_EPROTO;
		*v = wire_load_be64(rd->p + 1);
		rd->p += 9;
		return 0;
	case 0xd0:
		if (left < 2)
			return -CFS_EPROTO;
		*v = (uint64_t)(int64_t)(int8_t)rd->p[1];
		rd->p += 2;
		break;
	case 0xd1:
		if (left < 3)
			return -CFS_EPROTO;
		*v = (uint64_t)(int64_t)(int16_t)wire_load_be16(rd->p + 1);
		rd->p += 3;
		break;
	case 0xd2:
		if (left < 5)
			return -CFS_EPROTO;
		*v = (uint64_t)(int64_t)(int32_t)wire_load_be32(rd->p + 1);
		rd->p += 5;
		break;
	case 0xd3:
		if (left < 9)
			return -CFS_EPROTO;
		*v = wire_load_be64(rd->p + 1);
		rd->p += 9;
		break;
	default:
		return -CFS_EPROTO;
	}
	/* Signed formats: a sender may use them for non-negative values too. */
	*neg = (int64_t)*v < 0;
	return 0;
}

/** Any integer format holding a value in [0, max]. */
static __attribute__((always_inline)) inline int
wire_rd_uint_max(struct wire_rd *rd, uint64_t max, uint64_t *out)
{
	uint64_t v;
	bool neg;
	int rc;

	rc = wire_rd_integer(rd, &v, &neg);
	if (rc != 0)
		return rc;
	if (neg || v > max)
		return -CFS_EPROTO;
	*out = v;
	return 0;
}

/** Any integer format holding a non-negative value. */
static __attribute__((always_inline)) inline int
wire_rd_uint(struct wire_rd *rd, uint64_t *out)
{
	return wire_rd_uint_max(rd, UINT64_MAX, out);
}

/** Any integer format holding a value in [min, max]. */
static __attribute__((always_inline)) inline int
wire_rd_int_range(struct wire_rd *rd, int64_t min, int64_t max, int64_t *out)
{
	uint64_t v;
	bool neg;
	int rc;

	rc = wire_rd_integer(rd, &v, &neg);
	if (rc != 0)
		return rc;
	if (!neg && v > (uint64_t)INT64_MAX)
		return -CFS_EPROTO;
	if ((int64_t)v < min || (int64_t)v > max)
		return -CFS_EPROTO;
	*out = (int64_t)v;
	return 0;
}

/** Any integer format holding a value that fits int64_t. */
static inline int
wire_rd_int(struct wire_rd *rd, int64_t *out)
{
	return wire_rd_int_range(rd, INT64_MIN, INT64_MAX, out);
}

/** true / false only (integers are not booleans). */
static inline int
wire_rd_bool(struct wire_rd *rd, bool *out)
{
	if (rd->p == rd->end || (rd->p[0] & 0xfe) != 0xc2)
		return -CFS_EPROTO;
	*out = rd->p[0] == 0xc3;
	rd->p += 1;
	return 0;
}

static inline int
wire_rd_nil(struct wire_rd *rd)
{
	if (rd->p == rd->end || rd->p[0] != 0xc0)
		return -CFS_EPROTO;
	rd->p += 1;
	return 0;
}

/* The header of a str or bin: `hlen` bytes of header announce `len` bytes of
 * data, which must be present. */
static inline int
wire_rd_span(struct wire_rd *rd, size_t hlen, uint32_t len, const uint8_t **p, uint32_t *n)
{
	if (wire_rd_left(rd) - hlen < len)
		return -CFS_EPROTO;
	*p = rd->p + hlen;
	*n = len;
	rd->p += hlen + len;
	return 0;
}

/** A str (fixstr, str8/16/32); *p points into the input. */
static inline int
wire_rd_str(struct wire_rd *rd, const uint8_t **p, uint32_t *n)
{
	size_t left = wire_rd_left(rd);
	uint8_t b;

	if (left == 0)
		return -CFS_EPROTO;
	b = rd->p[0];
	if ((b & 0xe0) == 0xa0)
		return wire_rd_span(rd, 1, b & 0x1f, p, n);
	if (b == 0xd9 && left >= 2)
		return wire_rd_span(rd, 2, rd->p[1], p, n);
	if (b == 0xda && left >= 3)
		return wire_rd_span(rd, 3, wire_load_be16(rd->p + 1), p, n);
	if (b == 0xdb && left >= 5)
		return wire_rd_span(rd, 5, wire_load_be32(rd->p + 1), p, n);
	return -CFS_EPROTO;
}

/** A bin (bin8/16/32); *p points into the input. */
static inline int
wire_rd_bin(struct wire_rd *rd, const uint8_t **p, uint32_t *n)
{
	size_t left = wire_rd_left(rd);
	uint8_t b;

	if (left < 2)
		return -CFS_EPROTO;
	b = rd->p[0];
	if (b == 0xc4)
		return wire_rd_span(rd, 2, rd->p[1], p, n);
	if (b == 0xc5 && left >= 3)
		return wire_rd_span(rd, 3, wire_load_be16(rd->p + 1), p, n);
	if (b == 0xc6 && left >= 5)
		return wire_rd_span(rd, 5, wire_load_be32(rd->p + 1), p, n);
	return -CFS_EPROTO;
}

/**
 * An array header (fixarray, array16/32). The count is refused when it exceeds
 * the bytes left after the header: every element takes at least one byte, so
 * a larger count cannot be honest, and a caller may size an allocation by it.
 */
static __attribute__((always_inline)) inline int
wire_rd_array(struct wire_rd *rd, uint32_t *n)
{
	size_t left = wire_rd_left(rd);
	size_t hlen;
	uint32_t count;
	uint8_t b;

	if (left == 0)
		return -CFS_EPROTO;
	b = rd->p[0];
	if ((b & 0xf0) == 0x90) {
		hlen = 1;
		count = b & 0x0f;
	} else if (b == 0xdc && left >= 3) {
		hlen = 3;
		count = wire_load_be16(rd->p + 1);
	} else if (b == 0xdd && left >= 5) {
		hlen = 5;
		count = wire_load_be32(rd->p + 1);
	} else {
		return -CFS_EPROTO;
	}
	if (count > left - hlen)
		return -CFS_EPROTO;
	rd->p += hlen;
	*n = count;
	return 0;
}

/**
 * Skip one whole value of any msgpack type (maps, ext and floats included).
 * Containers may nest at most max_depth levels counting the value itself
 * (0: scalars only); max_depth above WIRE_RD_SKIP_MAX is treated as that.
 * Iterative: the work is linear in the bytes skipped and uses no recursion.
 * @return 0 or -CFS_EPROTO.
 */
int wire_rd_skip(struct wire_rd *rd, unsigned max_depth);

#define WIRE_RD_SKIP_MAX 8

#endif

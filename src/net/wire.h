/* SPDX-License-Identifier: MIT */
/*
 * The wire codec: turns a struct rt_msg into a frame and a frame back into a
 * struct rt_msg. It owns the frame format, the limits a receiver enforces, and
 * the per-message encoders and decoders generated from include/chainfs/proto.def.
 * It does no I/O: the transport (src/net/tcp.c) moves the bytes.
 *
 * Frame:
 *   u32 big-endian H | H header bytes | plen raw payload bytes
 * where the header is one msgpack array of 8:
 *   [version, code, req_id, src, dst, flags, plen, body]
 * code is the 16-bit wire code of proto.def (responses: code | 0x8000) and body is
 * the message's fields as one msgpack array, in proto.def order.
 *
 * Decoding never trusts the peer: every length is checked against the bytes
 * present before anything is allocated, and msgpack-c's unpacker is never used
 * on received bytes (DESIGN.md section 2).
 */
#ifndef CFS_NET_WIRE_H
#define CFS_NET_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "rt/rt.h"

/** Bytes of the big-endian header-length prefix. */
#define WIRE_PREFIX 4

/*
 * Both limits are enforced by the receiver (wire_hdr_len, wire_decode) and by
 * the sender (wire_encode), so a frame the peer would refuse fails locally with
 * -CFS_ETOOBIG instead of costing the connection.
 */
struct wire_limits {
	uint32_t max_hdr;     /* largest header H accepted (prefix not counted) */
	uint64_t max_payload; /* largest plen accepted; capped at UINT32_MAX */
};

/* 1 MiB of header is far more than any body of proto.def needs; 64 MiB of
 * payload is the largest buffer rt_buf_get hands out. */
/* clang-format off */
#define WIRE_LIMITS_DEFAULT {.max_hdr = 1u << 20, .max_payload = 64ull << 20}
/* clang-format on */

/* Nesting of the deepest value the schema has: header array, body array, A()
 * array, record array. Deeper values (also inside ignored extra fields) are
 * refused with -CFS_EPROTO. */
#define WIRE_MAX_DEPTH 4

/** A growable byte buffer that wire_encode appends to. Zero-initialised is valid. */
struct wire_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
};

/** Initialise an empty buffer (no allocation). */
void wire_buf_init(struct wire_buf *b);
/** Forget the contents, keep the memory. */
void wire_buf_reset(struct wire_buf *b);
/** Free the memory; the buffer is empty and reusable afterwards. */
void wire_buf_fini(struct wire_buf *b);
/**
 * Make room for at least `extra` more bytes after b->len.
 * @return 0, or -ENOMEM (the buffer is unchanged).
 */
int wire_buf_reserve(struct wire_buf *b, size_t extra);
/** Drop the first n bytes (n <= b->len), moving the rest to the front. */
void wire_buf_consume(struct wire_buf *b, size_t n);

/**
 * Append the frame of m to out: prefix, header and body. The payload is NOT
 * copied: the header states plen = m->plen and the transport sends m->iov[]
 * right after the appended bytes. m->flags is sent with RT_MSG_F_RESP set
 * exactly when m->type is a response.
 *
 * @param lim  limits of the receiver; NULL means WIRE_LIMITS_DEFAULT.
 * @return 0; on error out->len is unchanged and:
 *         -EINVAL      m->type unknown, m->body NULL, or a cfs_bytes field has
 *                      len > 0 and p NULL;
 *         -CFS_ETOOBIG the header would exceed lim->max_hdr or m->plen exceeds
 *                      lim->max_payload;
 *         -ENOMEM.
 */
int wire_encode(struct wire_buf *out, const struct rt_msg *m, const struct wire_limits *lim);

/**
 * Read the header length from the first WIRE_PREFIX bytes of a frame.
 * @return 0 and *hdr_len = H; -EAGAIN when n < WIRE_PREFIX; -CFS_EPROTO when
 *         H == 0; -CFS_ETOOBIG when H > lim->max_hdr.
 */
int wire_hdr_len(const uint8_t *p, size_t n, const struct wire_limits *lim, uint32_t *hdr_len);

/**
 * Decode the H header bytes that follow the prefix into a new message: type,
 * flags, req_id, src, dst, body (str/bin fields copied into the message's
 * arena, so hdr may be reused at once) and, for a response, rc from the body.
 * The payload is not read: the caller reads *plen more bytes from the stream
 * and attaches them with rt_msg_add_iov.
 *
 * @return 0 with *out owned by the caller; on error *out is NULL and:
 *         -CFS_EPROTO  malformed: truncated, wrong msgpack type, version other
 *                      than CFS_PROTO_VERSION, unknown wire code, flags above
 *                      16 bits, nesting deeper than WIRE_MAX_DEPTH, or bytes
 *                      left after the 8-element header array;
 *         -CFS_ETOOBIG hdr_len > lim->max_hdr or plen > lim->max_payload;
 *         -ENOMEM.
 */
int wire_decode(const uint8_t *hdr, uint32_t hdr_len, const struct wire_limits *lim,
		struct rt_msg **out, uint64_t *plen);

/**
 * Decode one whole frame held in one buffer (tests, fuzzer, tools): like
 * wire_hdr_len + wire_decode, then the payload is copied into an rt_buf
 * attached as the message's only iov.
 *
 * @return 0 with *out owned by the caller and *consumed = bytes of the frame;
 *         -EAGAIN when p[0..n) holds only part of a frame (*out NULL);
 *         otherwise the errors of wire_hdr_len and wire_decode.
 */
int wire_decode_frame(const uint8_t *p, size_t n, const struct wire_limits *lim,
		      struct rt_msg **out, size_t *consumed);

/**
 * Encode only a body (no frame) of dense type `type` as its msgpack array.
 * For tools and tests that embed bodies elsewhere. Errors as wire_encode.
 */
int wire_encode_body(struct wire_buf *out, unsigned type, const void *body);

/**
 * Decode a msgpack body array of m->type from p[0..n) into m->body (which must
 * be the zeroed body rt_msg_new made); the whole range must be consumed.
 * @return 0, -CFS_EPROTO, -ENOMEM.
 */
int wire_decode_body(const uint8_t *p, size_t n, struct rt_msg *m);

#endif

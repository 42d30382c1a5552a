/* SPDX-License-Identifier: MIT */
/*
 * Tests of the wire codec (src/net/wire.c) and its bounded msgpack reader:
 * a generated round trip of every message type of proto.def, every truncated
 * prefix of every frame, wrong msgpack types per field kind, limits, malformed
 * headers, the msgpack-c allocation trap of DESIGN.md, nesting bombs and the
 * schema-evolution rules (missing trailing fields are zero, extra ones are
 * skipped). Hand-made frames are written with msgpack-c's packer, which is
 * safe for output and independent of our writer.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "net/wire.h"
#include "net/wire_reader.h"
#include "tests/fuzz/wire_sample.h"

/* Room for variant 2 (64 KiB strings in up to 17 records). */
static const struct wire_limits g_big = {.max_hdr = 16u << 20, .max_payload = 64ull << 20};

/* DESIGN.md section 2: an array32 claiming 3.6 billion elements. */
static const uint8_t g_trap[17] = {0x26, 0x29, 0x29, 0x29, 0x29, 0x29, 0x29, 0xdd, 0xd6,
				   0x29, 0x29, 0x29, 0x29, 0x29, 0x29, 0x29, 0x8a};

/* ------------------------------------------------------------ helpers */

/* A whole frame of a sample message with `plen` payload bytes appended. */
struct frame {
	struct wire_buf wb;
	uint32_t hlen;
};

static void
payload_fill(uint8_t *p, uint32_t n, unsigned seed)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed);
}

static void
attach_payload(struct rt_msg *m, uint32_t plen, unsigned seed)
{
	struct rt_buf *b;

	if (plen == 0)
		return;
	b = rt_buf_get(plen);
	ck_assert_ptr_nonnull(b);
	payload_fill(b->data, plen, seed);
	b->len = plen;
	ck_assert_int_eq(rt_msg_add_iov(m, b, 0, plen), 0);
	rt_buf_put(&b);
}

static void
frame_make(struct frame *f, const struct rt_msg *m)
{
	uint32_t i;
	int rc;

	wire_buf_init(&f->wb);
	rc = wire_encode(&f->wb, m, &g_big);
	ck_assert_msg(rc == 0, "encode %s: %d", cfs_msg_name(m->type), rc);
	ck_assert_int_eq(wire_hdr_len(f->wb.p, f->wb.len, &g_big, &f->hlen), 0);
	ck_assert_uint_eq(f->wb.len, WIRE_PREFIX + f->hlen);
	for (i = 0; i < m->iovcnt; i++) {
		const struct rt_iov *v = &m->iov[i];

		ck_assert_int_eq(wire_buf_reserve(&f->wb, v->len), 0);
		memcpy(f->wb.p + f->wb.len, v->buf->data + v->off, v->len);
		f->wb.len += v->len;
	}
}

static uint32_t
plen_of(unsigned type, unsigned variant)
{
	static const uint32_t sizes[] = {0, 1, 4095, 4096, 70000};

	return sizes[(type + variant) % (sizeof(sizes) / sizeof(sizes[0]))];
}

/* Hand-made frames: header fields up to the body, then the test packs the body. */
struct fb {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

static void
fb_hdr(struct fb *f, uint64_t version, uint64_t code, uint64_t flags, uint64_t plen)
{
	msgpack_sbuffer_init(&f->sb);
	msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
	msgpack_pack_array(&f->pk, 8);
	msgpack_pack_uint64(&f->pk, version);
	msgpack_pack_uint64(&f->pk, code);
	msgpack_pack_uint64(&f->pk, 7);
	msgpack_pack_uint64(&f->pk, CFS_ADDR(1, 2));
	msgpack_pack_uint64(&f->pk, CFS_ADDR(3, 4));
	msgpack_pack_uint64(&f->pk, flags);
	msgpack_pack_uint64(&f->pk, plen);
}

static void
fb_begin(struct fb *f, unsigned type)
{
	fb_hdr(f, CFS_PROTO_VERSION, cfs_msg_code(type), 0, 0);
}

static void
fb_raw(struct fb *f, const void *p, size_t n)
{
	msgpack_sbuffer_write(&f->sb, p, n);
}

static void
fb_str(struct fb *f, const char *s)
{
	msgpack_pack_str(&f->pk, strlen(s));
	msgpack_pack_str_body(&f->pk, s, strlen(s));
}

static void
fb_bin(struct fb *f, size_t n)
{
	static const uint8_t zeros[64];

	msgpack_pack_bin(&f->pk, n);
	msgpack_pack_bin_body(&f->pk, zeros, n);
}

/* Decode the header built so far; frees the builder. */
static int
fb_end_lim(struct fb *f, const struct wire_limits *lim, struct rt_msg **out)
{
	uint64_t plen = 0;
	int rc;

	*out = (struct rt_msg *)&plen; /* must be overwritten */
	rc = wire_decode((const uint8_t *)f->sb.data, (uint32_t)f->sb.size, lim, out, &plen);
	msgpack_sbuffer_destroy(&f->sb);
	if (rc != 0)
		ck_assert_ptr_null(*out);
	return rc;
}

static int
fb_end(struct fb *f, struct rt_msg **out)
{
	return fb_end_lim(f, NULL, out);
}

/* Expect the hand-made header to be refused with `want`. */
static void
fb_expect(struct fb *f, int want)
{
	struct rt_msg *m;
	int rc = fb_end(f, &m);

	if (rc == 0)
		rt_msg_free(&m);
	ck_assert_int_eq(rc, want);
}

/* ------------------------------------------------------------ round trip */

static void
check_roundtrip(unsigned type, unsigned variant)
{
	struct rt_msg *m, *d = NULL;
	struct wire_buf again;
	struct frame f;
	const char *why;
	size_t consumed = 0;
	uint8_t *pay;
	uint32_t plen = plen_of(type, variant);
	int rc;

	m = sample_msg(type, variant, 1000 * type + variant);
	ck_assert_ptr_nonnull(m);
	attach_payload(m, plen, type);
	frame_make(&f, m);

	rc = wire_decode_frame(f.wb.p, f.wb.len, &g_big, &d, &consumed);
	ck_assert_msg(rc == 0, "%s v%u: decode %d", cfs_msg_name(type), variant, rc);
	ck_assert_uint_eq(consumed, f.wb.len);
	ck_assert_uint_eq(d->type, type);
	ck_assert_uint_eq(d->flags, m->flags);
	ck_assert_uint_eq(d->req_id, m->req_id);
	ck_assert_uint_eq(d->src, m->src);
	ck_assert_uint_eq(d->dst, m->dst);
	ck_assert_int_eq(d->rc, m->rc);
	why = sample_diff(type, m->body, d->body);
	ck_assert_msg(why == NULL, "%s v%u: field %s differs", cfs_msg_name(type), variant, why);
	ck_assert_uint_eq(d->plen, plen);
	if (plen > 0) {
		pay = malloc(plen);
		ck_assert_ptr_nonnull(pay);
		ck_assert_int_eq(rt_msg_payload_copy(d, 0, pay, plen), 0);
		ck_assert_mem_eq(pay, f.wb.p + WIRE_PREFIX + f.hlen, plen);
		free(pay);
	}

	/* The encoding is canonical: decoding and encoding again gives the same bytes. */
	wire_buf_init(&again);
	ck_assert_int_eq(wire_encode(&again, d, &g_big), 0);
	ck_assert_uint_eq(again.len, WIRE_PREFIX + f.hlen);
	ck_assert_mem_eq(again.p, f.wb.p, again.len);

	wire_buf_fini(&again);
	wire_buf_fini(&f.wb);
	rt_msg_free(&d);
	rt_msg_free(&m);
}

START_TEST(test_wire_roundtrip_preserves_every_field_when_any_type)
{
	unsigned variant;

	for (variant = 0; variant < 3; variant++)
		check_roundtrip((unsigned)_i, variant);
}
END_TEST

/* Our output is ordinary msgpack: msgpack-c (safe on our own bytes) parses the
 * header to the end and sees the 8 fields we wrote. */
START_TEST(test_wire_encoding_parses_with_msgpack_c_when_any_type)
{
	msgpack_unpacked u;
	struct rt_msg *m;
	struct frame f;
	size_t off = 0;
	msgpack_object *o;

	m = sample_msg((unsigned)_i, 1, 77);
	ck_assert_ptr_nonnull(m);
	frame_make(&f, m);
	msgpack_unpacked_init(&u);
	ck_assert_int_eq(msgpack_unpack_next(&u, (const char *)f.wb.p + WIRE_PREFIX, f.hlen, &off),
			 MSGPACK_UNPACK_SUCCESS);
	ck_assert_uint_eq(off, f.hlen);
	ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(u.data.via.array.size, 8);
	o = u.data.via.array.ptr;
	ck_assert_uint_eq(o[0].via.u64, CFS_PROTO_VERSION);
	ck_assert_uint_eq(o[1].via.u64, cfs_msg_code(m->type));
	ck_assert_uint_eq(o[2].via.u64, m->req_id);
	ck_assert_uint_eq(o[3].via.u64, m->src);
	ck_assert_uint_eq(o[4].via.u64, m->dst);
	ck_assert_uint_eq(o[5].via.u64, m->flags);
	ck_assert_uint_eq(o[6].via.u64, 0);
	ck_assert_int_eq(o[7].type, MSGPACK_OBJECT_ARRAY);
	msgpack_unpacked_destroy(&u);
	wire_buf_fini(&f.wb);
	rt_msg_free(&m);
}
END_TEST

/* Byte for byte what msgpack-c's packer writes, at every integer format boundary. */
START_TEST(test_wire_body_matches_msgpack_c_packer_when_boundary_values)
{
	static const int64_t ints[] = {0, -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN};
	static const uint64_t uints[] = {
		0,	0x7f,	 0x80,		0xff,		0x100,
		0xffff, 0x10000, 0xffffffffull, 0x100000000ull, UINT64_MAX};
	struct cfs_ping_resp body;
	struct wire_buf wb;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	unsigned i;

	wire_buf_init(&wb);
	for (i = 0; i < sizeof(uints) / sizeof(uints[0]); i++) {
		body.rc = (int32_t)ints[i % (sizeof(ints) / sizeof(ints[0]))];
		body.sent_ns = uints[i];
		body.node_id = (uint32_t)uints[(i + 3) % 7];
		wire_buf_reset(&wb);
		ck_assert_int_eq(wire_encode_body(&wb, CFS_MSG_PING_RESP, &body), 0);

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 3);
		msgpack_pack_int64(&pk, body.rc);
		msgpack_pack_uint64(&pk, body.sent_ns);
		msgpack_pack_uint64(&pk, body.node_id);
		ck_assert_uint_eq(wb.len, sb.size);
		ck_assert_mem_eq(wb.p, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
	}
	wire_buf_fini(&wb);
}
END_TEST

/* wire_encode writes frames with unchecked writers into one reservation; the
 * result must be byte for byte msgpack-c's header (smallest formats) followed
 * by what the checked body encoder writes, for every type and value range. */
START_TEST(test_wire_frame_matches_packer_and_checked_body_when_any_type)
{
	struct wire_buf frame, body;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct rt_msg *m;
	unsigned variant;
	uint32_t hlen;

	for (variant = 0; variant < 3; variant++) {
		m = sample_msg((unsigned)_i, variant, 77 + variant);
		ck_assert_ptr_nonnull(m);
		wire_buf_init(&frame);
		wire_buf_init(&body);
		ck_assert_int_eq(wire_encode(&frame, m, &g_big), 0);
		ck_assert_int_eq(wire_encode_body(&body, m->type, m->body), 0);
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 8);
		msgpack_pack_uint64(&pk, CFS_PROTO_VERSION);
		msgpack_pack_uint64(&pk, cfs_msg_code(m->type));
		msgpack_pack_uint64(&pk, m->req_id);
		msgpack_pack_uint64(&pk, m->src);
		msgpack_pack_uint64(&pk, m->dst);
		msgpack_pack_uint64(&pk, m->flags);
		msgpack_pack_uint64(&pk, 0);
		msgpack_sbuffer_write(&sb, (const char *)body.p, body.len);
		ck_assert_int_eq(wire_hdr_len(frame.p, frame.len, &g_big, &hlen), 0);
		ck_assert_uint_eq(frame.len, WIRE_PREFIX + hlen);
		ck_assert_uint_eq(hlen, sb.size);
		ck_assert_msg(memcmp(frame.p + WIRE_PREFIX, sb.data, sb.size) == 0,
			      "%s variant %u: frame differs", cfs_msg_name(m->type), variant);
		msgpack_sbuffer_destroy(&sb);
		wire_buf_fini(&body);
		wire_buf_fini(&frame);
		rt_msg_free(&m);
	}
}
END_TEST

/* The decoder reads the formats senders use in straight-line code and leaves
 * the rest to the generic reader: every integer format that holds the value,
 * in the header and in the body, still decodes to the same message. */
START_TEST(test_wire_decode_accepts_wide_int_formats_when_header_and_body)
{
	struct rt_msg *m;
	struct fb f;
	int rc;

	for (int wide = 0; wide < 3; wide++) {
		msgpack_sbuffer_init(&f.sb);
		msgpack_packer_init(&f.pk, &f.sb, msgpack_sbuffer_write);
		if (wide < 2)
			msgpack_pack_array(&f.pk, 8);
		if (wide == 0) {
			/* Unsigned formats wider than needed. */
			msgpack_pack_fix_uint64(&f.pk, CFS_PROTO_VERSION);
			msgpack_pack_fix_uint32(&f.pk, cfs_msg_code(CFS_MSG_PING_RESP));
			msgpack_pack_fix_uint8(&f.pk, 7);
			msgpack_pack_fix_uint64(&f.pk, CFS_ADDR(1, 2));
			msgpack_pack_fix_uint16(&f.pk, 300);
			msgpack_pack_fix_uint64(&f.pk, RT_MSG_F_RESP);
			msgpack_pack_fix_uint32(&f.pk, 0);
			msgpack_pack_array(&f.pk, 3);
			msgpack_pack_fix_int32(&f.pk, -5);
			msgpack_pack_fix_uint64(&f.pk, 9);
			msgpack_pack_fix_uint8(&f.pk, 3);
		} else if (wide == 1) {
			/* Signed formats carrying non-negative values. */
			msgpack_pack_fix_int8(&f.pk, CFS_PROTO_VERSION);
			msgpack_pack_fix_int32(&f.pk, cfs_msg_code(CFS_MSG_PING_RESP));
			msgpack_pack_fix_int16(&f.pk, 7);
			msgpack_pack_fix_int64(&f.pk, (int64_t)CFS_ADDR(1, 2));
			msgpack_pack_fix_int32(&f.pk, 300);
			msgpack_pack_fix_int8(&f.pk, RT_MSG_F_RESP);
			msgpack_pack_fix_int64(&f.pk, 0);
			msgpack_pack_array(&f.pk, 3);
			msgpack_pack_fix_int8(&f.pk, -5);
			msgpack_pack_fix_int64(&f.pk, 9);
			msgpack_pack_fix_int16(&f.pk, 3);
		} else {
			/* The header as array16 of 8, the body as array16 of 3. */
			fb_raw(&f, "\xdc\x00\x08", 3);
			msgpack_pack_uint64(&f.pk, CFS_PROTO_VERSION);
			msgpack_pack_uint64(&f.pk, cfs_msg_code(CFS_MSG_PING_RESP));
			msgpack_pack_uint64(&f.pk, 7);
			msgpack_pack_uint64(&f.pk, CFS_ADDR(1, 2));
			msgpack_pack_uint64(&f.pk, 300);
			msgpack_pack_uint64(&f.pk, RT_MSG_F_RESP);
			msgpack_pack_uint64(&f.pk, 0);
			fb_raw(&f, "\xdc\x00\x03", 3);
			msgpack_pack_int64(&f.pk, -5);
			msgpack_pack_uint64(&f.pk, 9);
			msgpack_pack_uint64(&f.pk, 3);
		}
		rc = fb_end(&f, &m);
		ck_assert_msg(rc == 0, "variant %d: %d", wide, rc);
		ck_assert_uint_eq(m->type, CFS_MSG_PING_RESP);
		ck_assert_uint_eq(m->req_id, 7);
		ck_assert_uint_eq(m->src, CFS_ADDR(1, 2));
		ck_assert_uint_eq(m->dst, 300);
		ck_assert_int_eq(m->rc, -5);
		ck_assert_int_eq(RT_BODY(m, ping_resp)->rc, -5);
		ck_assert_uint_eq(RT_BODY(m, ping_resp)->sent_ns, 9);
		ck_assert_uint_eq(RT_BODY(m, ping_resp)->node_id, 3);
		rt_msg_free(&m);
	}
}
END_TEST

/*
 * The unsigned formats in the last bytes of a header, where the decoder cannot
 * load 8 bytes past the tag: a ping (its body takes the fast path) and a
 * target_stats_resp (a str field: the generic path), each ending with a u64 in
 * uint8..uint64. Whole, the value comes back; one byte short, -CFS_EPROTO.
 */
START_TEST(test_wire_decode_reads_uint_formats_when_last_bytes_of_header)
{
	static const uint64_t vals[] = {200, 60000, 4000000000u, UINT64_C(1) << 40, UINT64_MAX};
	struct rt_msg *m;
	struct fb f;
	int rc;

	for (unsigned i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		for (int cut = 0; cut < 2; cut++) {
			fb_begin(&f, CFS_MSG_PING);
			msgpack_pack_array(&f.pk, 1);
			msgpack_pack_uint64(&f.pk, vals[i]);
			f.sb.size -= (size_t)cut;
			rc = fb_end(&f, &m);
			if (cut) {
				ck_assert_msg(rc == -CFS_EPROTO, "ping %" PRIu64 " cut: %d",
					      vals[i], rc);
			} else {
				ck_assert_msg(rc == 0, "ping %" PRIu64 ": %d", vals[i], rc);
				ck_assert_uint_eq(RT_BODY(m, ping)->sent_ns, vals[i]);
				rt_msg_free(&m);
			}

			fb_begin(&f, CFS_MSG_TARGET_STATS_RESP);
			msgpack_pack_array(&f.pk, 17);
			msgpack_pack_int32(&f.pk, 0);
			msgpack_pack_uint32(&f.pk, 1);
			fb_str(&f, "/t");
			for (int k = 0; k < 13; k++)
				msgpack_pack_uint64(&f.pk, 0);
			msgpack_pack_uint64(&f.pk, vals[i]);
			f.sb.size -= (size_t)cut;
			rc = fb_end(&f, &m);
			if (cut) {
				ck_assert_msg(rc == -CFS_EPROTO, "target_stats_resp %" PRIu64 " cut: %d",
					      vals[i], rc);
			} else {
				ck_assert_int_eq(rc, 0);
				ck_assert_uint_eq(RT_BODY(m, target_stats_resp)->rejected, vals[i]);
				rt_msg_free(&m);
			}
		}
	}
}
END_TEST

START_TEST(test_wire_body_roundtrip_preserves_fields_when_bare_body)
{
	struct rt_msg *m, *d;
	struct wire_buf wb;
	const char *why;
	size_t k;

	m = sample_msg((unsigned)_i, 1, 31);
	ck_assert_ptr_nonnull(m);
	wire_buf_init(&wb);
	ck_assert_int_eq(wire_encode_body(&wb, m->type, m->body), 0);
	d = rt_msg_new(m->type);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(wire_decode_body(wb.p, wb.len, d), 0);
	why = sample_diff(m->type, m->body, d->body);
	ck_assert_msg(why == NULL, "%s: field %s differs", cfs_msg_name(m->type), why);
	rt_msg_free(&d);

	/* The whole range must be one body: short or with a byte after it fails. */
	for (k = 0; k < wb.len; k += 1 + k / 8) {
		d = rt_msg_new(m->type);
		ck_assert_ptr_nonnull(d);
		ck_assert_int_eq(wire_decode_body(wb.p, k, d), -CFS_EPROTO);
		rt_msg_free(&d);
	}
	ck_assert_int_eq(wire_buf_reserve(&wb, 1), 0);
	wb.p[wb.len++] = 0xc0;
	d = rt_msg_new(m->type);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(wire_decode_body(wb.p, wb.len, d), -CFS_EPROTO);
	rt_msg_free(&d);

	ck_assert_int_eq(wire_encode_body(&wb, CFS_MSG_NONE, m->body), -EINVAL);
	ck_assert_int_eq(wire_encode_body(&wb, m->type, NULL), -EINVAL);
	wire_buf_fini(&wb);
	rt_msg_free(&m);
}
END_TEST

/* ------------------------------------------------------------ truncation */

START_TEST(test_wire_decode_frame_returns_eagain_when_frame_truncated)
{
	unsigned variant;
	struct rt_msg *m, *d;
	struct frame f;
	size_t k, consumed;
	int rc;

	for (variant = 0; variant < 2; variant++) {
		m = sample_msg((unsigned)_i, variant, 5 + variant);
		ck_assert_ptr_nonnull(m);
		attach_payload(m, 3, 1);
		frame_make(&f, m);
		for (k = 0; k < f.wb.len; k++) {
			d = m;
			consumed = 12345;
			rc = wire_decode_frame(f.wb.p, k, &g_big, &d, &consumed);
			ck_assert_msg(rc == -EAGAIN, "%s: prefix %zu of %zu gave %d",
				      cfs_msg_name(m->type), k, f.wb.len, rc);
			ck_assert_ptr_null(d);
			ck_assert_uint_eq(consumed, 12345);
		}
		wire_buf_fini(&f.wb);
		rt_msg_free(&m);
	}
}
END_TEST

START_TEST(test_wire_decode_returns_eproto_when_header_shortened)
{
	unsigned variant;
	struct rt_msg *m, *d;
	struct frame f;
	uint64_t plen;
	uint32_t h;
	int rc;

	for (variant = 0; variant < 2; variant++) {
		m = sample_msg((unsigned)_i, variant, 9 + variant);
		ck_assert_ptr_nonnull(m);
		frame_make(&f, m);
		for (h = 0; h < f.hlen; h++) {
			rc = wire_decode(f.wb.p + WIRE_PREFIX, h, &g_big, &d, &plen);
			ck_assert_msg(rc == -CFS_EPROTO, "%s: header cut at %u of %u gave %d",
				      cfs_msg_name(m->type), h, f.hlen, rc);
			ck_assert_ptr_null(d);
		}
		wire_buf_fini(&f.wb);
		rt_msg_free(&m);
	}
}
END_TEST

/* ------------------------------------------------------- field types */

START_TEST(test_wire_decode_rejects_u32_when_not_a_32_bit_uint)
{
	static const uint8_t int8_five[] = {0xd0, 0x05};
	struct rt_msg *m;
	struct fb f;

	fb_begin(&f, CFS_MSG_CHUNK_WRITE);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, 1ull << 32);
	fb_expect(&f, -CFS_EPROTO);

	fb_begin(&f, CFS_MSG_CHUNK_WRITE);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_int64(&f.pk, -1);
	fb_expect(&f, -CFS_EPROTO);

	fb_begin(&f, CFS_MSG_CHUNK_WRITE);
	msgpack_pack_array(&f.pk, 1);
	fb_str(&f, "1");
	fb_expect(&f, -CFS_EPROTO);

	fb_begin(&f, CFS_MSG_CHUNK_WRITE);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_true(&f.pk);
	fb_expect(&f, -CFS_EPROTO);

	fb_begin(&f, CFS_MSG_CHUNK_WRITE);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_nil(&f.pk);
	fb_expect(&f, -CFS_EPROTO);

	fb_begin(&f, CFS_MSG_CHUNK_WRITE);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_double(&f.pk, 1.0);
	fb_expect(&f, -CFS_EPROTO);

	/* Any integer format with a value that fits is accepted. */
	fb_begin(&f, CFS_MSG_CHUNK_WRITE);
	msgpack_pack_array(&f.pk, 2);
	msgpack_pack_uint64(&f.pk, UINT32_MAX);
	fb_raw(&f, int8_five, sizeof(int8_five));
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert_uint_eq(RT_BODY(m, chunk_write)->target, UINT32_MAX);
	ck_assert_uint_eq(RT_BODY(m, chunk_write)->chain_id, 5);
	rt_msg_free(&m);
}
END_TEST

START_TEST(test_wire_decode_rejects_u64_when_negative_or_not_int)
{
	static const uint8_t int64_neg[] = {0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
	struct rt_msg *m;
	struct fb f;

	fb_begin(&f, CFS_MSG_PING);
	msgpack_pack_array(&f.pk, 1);
	fb_raw(&f, int64_neg, sizeof(int64_neg));
	fb_expect(&f, -CFS_EPROTO);

	fb_begin(&f, CFS_MSG_PING);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_float(&f.pk, 2.0f);
	fb_expect(&f, -CFS_EPROTO);

	fb_begin(&f, CFS_MSG_PING);
	msgpack_pack_array(&f.pk, 1);
	fb_bin(&f, 8);
	fb_expect(&f, -CFS_EPROTO);

	fb_begin(&f, CFS_MSG_PING);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, UINT64_MAX);
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert_uint_eq(RT_BODY(m, ping)->sent_ns, UINT64_MAX);
	rt_msg_free(&m);
}
END_TEST

/* status_resp: [rc, node_id, version, uptime_ms, loops: [[index, cpu, ...]], actors] */
static void
status_resp_with_cpu(struct fb *f, void (*pack_cpu)(msgpack_packer *pk, int64_t v), int64_t v)
{
	fb_begin(f, CFS_MSG_STATUS_RESP);
	msgpack_pack_array(&f->pk, 5);
	msgpack_pack_int32(&f->pk, 0);
	msgpack_pack_uint32(&f->pk, 1);
	fb_str(f, "0.1");
	msgpack_pack_uint64(&f->pk, 2);
	msgpack_pack_array(&f->pk, 1);
	msgpack_pack_array(&f->pk, 2);
	msgpack_pack_uint32(&f->pk, 0);
	pack_cpu(&f->pk, v);
}

static void
pack_i64(msgpack_packer *pk, int64_t v)
{
	msgpack_pack_int64(pk, v);
}

static void
pack_u64(msgpack_packer *pk, int64_t v)
{
	msgpack_pack_uint64(pk, (uint64_t)v);
}

static void
pack_bool(msgpack_packer *pk, int64_t v)
{
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

START_TEST(test_wire_decode_rejects_i32_when_out_of_range)
{
	struct rt_msg *m;
	struct fb f;

	status_resp_with_cpu(&f, pack_i64, (int64_t)INT32_MIN - 1);
	fb_expect(&f, -CFS_EPROTO);
	status_resp_with_cpu(&f, pack_u64, (int64_t)INT32_MAX + 1);
	fb_expect(&f, -CFS_EPROTO);
	status_resp_with_cpu(&f, pack_bool, 1);
	fb_expect(&f, -CFS_EPROTO);

	status_resp_with_cpu(&f, pack_i64, INT32_MIN);
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert_uint_eq(RT_BODY(m, status_resp)->loops_count, 1);
	ck_assert_int_eq(RT_BODY(m, status_resp)->loops[0].cpu, INT32_MIN);
	ck_assert_str_eq(cfs_msg_name(m->type), "status_resp");
	rt_msg_free(&m);

	status_resp_with_cpu(&f, pack_u64, INT32_MAX);
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert_int_eq(RT_BODY(m, status_resp)->loops[0].cpu, INT32_MAX);
	rt_msg_free(&m);
}
END_TEST

START_TEST(test_wire_decode_rejects_bool_when_not_true_or_false)
{
	struct rt_msg *m;
	struct fb f;
	unsigned k;

	for (k = 0; k < 3; k++) {
		fb_begin(&f, CFS_MSG_CHUNK_LIST_RESP);
		msgpack_pack_array(&f.pk, 3);
		msgpack_pack_int32(&f.pk, 0);
		msgpack_pack_array(&f.pk, 0);
		if (k == 0)
			msgpack_pack_uint32(&f.pk, 1);
		else if (k == 1)
			msgpack_pack_nil(&f.pk);
		else
			fb_str(&f, "true");
		fb_expect(&f, -CFS_EPROTO);
	}
	fb_begin(&f, CFS_MSG_CHUNK_LIST_RESP);
	msgpack_pack_array(&f.pk, 3);
	msgpack_pack_int32(&f.pk, -5);
	msgpack_pack_array(&f.pk, 0);
	msgpack_pack_true(&f.pk);
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert(RT_BODY(m, chunk_list_resp)->more);
	ck_assert_int_eq(m->rc, -5);
	ck_assert_ptr_null(RT_BODY(m, chunk_list_resp)->chunks);
	rt_msg_free(&m);
}
END_TEST

/* chunk_write: [target, chain_id, chain_ver, chunk(ID), ...] */
static void
chunk_write_head(struct fb *f)
{
	fb_begin(f, CFS_MSG_CHUNK_WRITE);
	msgpack_pack_array(&f->pk, 4);
	msgpack_pack_uint32(&f->pk, 1);
	msgpack_pack_uint64(&f->pk, 2);
	msgpack_pack_uint32(&f->pk, 3);
}

START_TEST(test_wire_decode_rejects_id_when_not_bin_of_16)
{
	struct rt_msg *m;
	struct fb f;

	chunk_write_head(&f);
	fb_bin(&f, 15);
	fb_expect(&f, -CFS_EPROTO);
	chunk_write_head(&f);
	fb_bin(&f, 17);
	fb_expect(&f, -CFS_EPROTO);
	chunk_write_head(&f);
	fb_str(&f, "0123456789abcdef");
	fb_expect(&f, -CFS_EPROTO);
	chunk_write_head(&f);
	msgpack_pack_uint64(&f.pk, 16);
	fb_expect(&f, -CFS_EPROTO);

	chunk_write_head(&f);
	msgpack_pack_bin(&f.pk, 16);
	msgpack_pack_bin_body(&f.pk, "0123456789abcdef", 16);
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert_mem_eq(RT_BODY(m, chunk_write)->chunk.b, "0123456789abcdef", 16);
	ck_assert_uint_eq(RT_BODY(m, chunk_write)->chain_ver, 3);
	rt_msg_free(&m);
}
END_TEST

/* status_resp: [rc, node_id, version(STR)] */
START_TEST(test_wire_decode_rejects_str_when_bin_or_int)
{
	const struct cfs_bytes *v;
	struct rt_msg *m;
	struct fb f;

	fb_begin(&f, CFS_MSG_STATUS_RESP);
	msgpack_pack_array(&f.pk, 3);
	msgpack_pack_int32(&f.pk, 0);
	msgpack_pack_uint32(&f.pk, 1);
	fb_bin(&f, 3);
	fb_expect(&f, -CFS_EPROTO);

	fb_begin(&f, CFS_MSG_STATUS_RESP);
	msgpack_pack_array(&f.pk, 3);
	msgpack_pack_int32(&f.pk, 0);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 3);
	fb_expect(&f, -CFS_EPROTO);

	fb_begin(&f, CFS_MSG_STATUS_RESP);
	msgpack_pack_array(&f.pk, 3);
	msgpack_pack_int32(&f.pk, 0);
	msgpack_pack_uint32(&f.pk, 1);
	fb_str(&f, "v1.2");
	ck_assert_int_eq(fb_end(&f, &m), 0);
	v = &RT_BODY(m, status_resp)->version;
	ck_assert_uint_eq(v->len, 4);
	ck_assert_mem_eq(v->p, "v1.2", 4);
	rt_msg_free(&m);
}
END_TEST

/* The decoded str must not point into the input: decode from a heap copy, free
 * it, then read the field (valgrind/ASan would flag a dangling pointer). */
START_TEST(test_wire_decode_copies_str_when_input_freed)
{
	struct rt_msg *m;
	struct frame f;
	struct rt_msg *d;
	uint8_t *copy;
	uint64_t plen;

	m = sample_msg(CFS_MSG_STATUS_RESP, 0, 3);
	ck_assert_ptr_nonnull(m);
	frame_make(&f, m);
	copy = malloc(f.hlen);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, f.wb.p + WIRE_PREFIX, f.hlen);
	ck_assert_int_eq(wire_decode(copy, f.hlen, NULL, &d, &plen), 0);
	memset(copy, 0xaa, f.hlen);
	free(copy);
	ck_assert_ptr_null(sample_diff(CFS_MSG_STATUS_RESP, m->body, d->body));
	rt_msg_free(&d);
	wire_buf_fini(&f.wb);
	rt_msg_free(&m);
}
END_TEST

/* chunk_read: [target, chain_id, chain_ver, flags, ios: [[chunk, offset, len]...]] */
static void
chunk_read_head(struct fb *f)
{
	fb_begin(f, CFS_MSG_CHUNK_READ);
	msgpack_pack_array(&f->pk, 5);
	msgpack_pack_uint32(&f->pk, 1);
	msgpack_pack_uint64(&f->pk, 2);
	msgpack_pack_uint32(&f->pk, 3);
	msgpack_pack_uint32(&f->pk, 4);
}

START_TEST(test_wire_decode_rejects_records_when_not_arrays)
{
	struct rt_msg *m;
	struct fb f;

	chunk_read_head(&f);
	msgpack_pack_uint32(&f.pk, 1);
	fb_expect(&f, -CFS_EPROTO);

	chunk_read_head(&f);
	msgpack_pack_map(&f.pk, 0);
	fb_expect(&f, -CFS_EPROTO);

	chunk_read_head(&f);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	fb_expect(&f, -CFS_EPROTO);

	chunk_read_head(&f);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_array(&f.pk, 2);
	fb_bin(&f, 16);
	msgpack_pack_int32(&f.pk, -2);
	fb_expect(&f, -CFS_EPROTO);

	/* Body itself not an array. */
	fb_begin(&f, CFS_MSG_CHUNK_READ);
	msgpack_pack_nil(&f.pk);
	fb_expect(&f, -CFS_EPROTO);

	chunk_read_head(&f);
	msgpack_pack_array(&f.pk, 2);
	msgpack_pack_array(&f.pk, 3);
	fb_bin(&f, 16);
	msgpack_pack_uint32(&f.pk, 4096);
	msgpack_pack_uint32(&f.pk, 512);
	msgpack_pack_array(&f.pk, 0);
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert_uint_eq(RT_BODY(m, chunk_read)->ios_count, 2);
	ck_assert_uint_eq(RT_BODY(m, chunk_read)->ios[0].offset, 4096);
	ck_assert_uint_eq(RT_BODY(m, chunk_read)->ios[0].len, 512);
	ck_assert_uint_eq(RT_BODY(m, chunk_read)->ios[1].offset, 0);
	rt_msg_free(&m);
}
END_TEST

/* ---------------------------------------------------------------- limits */

START_TEST(test_wire_hdr_len_checks_prefix_when_short_zero_or_oversize)
{
	const struct wire_limits lim = {.max_hdr = 100, .max_payload = 10};
	uint8_t p[4] = {0, 0, 0, 100};
	uint32_t h = 0;
	size_t n;

	for (n = 0; n < WIRE_PREFIX; n++)
		ck_assert_int_eq(wire_hdr_len(p, n, &lim, &h), -EAGAIN);
	ck_assert_int_eq(wire_hdr_len(p, 4, &lim, &h), 0);
	ck_assert_uint_eq(h, 100);
	p[3] = 101;
	ck_assert_int_eq(wire_hdr_len(p, 4, &lim, &h), -CFS_ETOOBIG);
	p[0] = 0x80;
	ck_assert_int_eq(wire_hdr_len(p, 4, NULL, &h), -CFS_ETOOBIG);
	memset(p, 0, sizeof(p));
	ck_assert_int_eq(wire_hdr_len(p, 4, &lim, &h), -CFS_EPROTO);
}
END_TEST

START_TEST(test_wire_decode_returns_etoobig_when_over_limits)
{
	const struct wire_limits lim = {.max_hdr = 64, .max_payload = 1000};
	struct rt_msg *m;
	struct fb f;
	uint8_t frame[8];
	size_t consumed;
	uint64_t plen;
	int rc;

	fb_hdr(&f, 1, cfs_msg_code(CFS_MSG_PING), 0, 1001);
	msgpack_pack_array(&f.pk, 0);
	ck_assert_int_eq(fb_end_lim(&f, &lim, &m), -CFS_ETOOBIG);

	fb_hdr(&f, 1, cfs_msg_code(CFS_MSG_PING), 0, 1000);
	msgpack_pack_array(&f.pk, 0);
	ck_assert_int_eq(fb_end_lim(&f, &lim, &m), 0);
	rt_msg_free(&m);

	/* A header length over the limit is refused before it is looked at. */
	fb_hdr(&f, 1, cfs_msg_code(CFS_MSG_PING), 0, 0);
	msgpack_pack_array(&f.pk, 1);
	fb_bin(&f, 64);
	rc = wire_decode((const uint8_t *)f.sb.data, (uint32_t)f.sb.size, &lim, &m, &plen);
	msgpack_sbuffer_destroy(&f.sb);
	ck_assert_int_eq(rc, -CFS_ETOOBIG);

	/* Payload lengths past rt_msg's 32-bit count are refused whatever the limit. */
	{
		const struct wire_limits huge = {.max_hdr = 64, .max_payload = UINT64_MAX};

		fb_hdr(&f, 1, cfs_msg_code(CFS_MSG_PING), 0, 1ull << 32);
		msgpack_pack_array(&f.pk, 0);
		ck_assert_int_eq(fb_end_lim(&f, &huge, &m), -CFS_ETOOBIG);
	}

	memcpy(frame, "\0\0\0\x41", 4);
	ck_assert_int_eq(wire_decode_frame(frame, 4, &lim, &m, &consumed), -CFS_ETOOBIG);
	ck_assert_ptr_null(m);
}
END_TEST

START_TEST(test_wire_encode_fails_cleanly_when_over_limits_or_invalid)
{
	const struct wire_limits lim = {.max_hdr = 40, .max_payload = 10};
	struct wire_buf wb;
	struct rt_msg *m;

	wire_buf_init(&wb);
	ck_assert_int_eq(wire_buf_reserve(&wb, 3), 0);
	memcpy(wb.p, "abc", 3);
	wb.len = 3;

	m = rt_msg_new(CFS_MSG_STATUS_RESP);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(wire_encode(&wb, m, &lim), 0);
	ck_assert_uint_gt(wb.len, 3);
	wb.len = 3;

	ck_assert_int_eq(rt_msg_set_str(m, &RT_BODY(m, status_resp)->version,
					"a version string longer than the header limit"),
			 0);
	ck_assert_int_eq(wire_encode(&wb, m, &lim), -CFS_ETOOBIG);
	ck_assert_uint_eq(wb.len, 3);
	ck_assert_int_eq(wire_encode(&wb, m, NULL), 0);
	wb.len = 3;

	attach_payload(m, 11, 0);
	ck_assert_int_eq(wire_encode(&wb, m, &lim), -CFS_ETOOBIG);
	ck_assert_uint_eq(wb.len, 3);

	/* Bytes that claim a length but have no pointer. */
	RT_BODY(m, status_resp)->version.p = NULL;
	ck_assert_int_eq(wire_encode(&wb, m, NULL), -EINVAL);
	ck_assert_uint_eq(wb.len, 3);
	RT_BODY(m, status_resp)->version.len = 0;
	RT_BODY(m, status_resp)->loops_count = 2;
	ck_assert_int_eq(wire_encode(&wb, m, NULL), -EINVAL);
	ck_assert_uint_eq(wb.len, 3);

	m->type = CFS_MSG_NONE;
	ck_assert_int_eq(wire_encode(&wb, m, NULL), -EINVAL);
	m->type = CFS_MSG__COUNT;
	ck_assert_int_eq(wire_encode(&wb, m, NULL), -EINVAL);
	m->type = CFS_MSG_STATUS_RESP;
	ck_assert_mem_eq(wb.p, "abc", 3);
	rt_msg_free(&m);
	wire_buf_fini(&wb);
}
END_TEST

/* ------------------------------------------------------------- malformed */

START_TEST(test_wire_decode_returns_eproto_when_code_or_version_unknown)
{
	static const uint64_t codes[] = {0, 0x7777, 0x8000, 0x8000 | 0x7777, 0x10000 + 1};
	unsigned i;
	struct fb f;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		fb_hdr(&f, 1, codes[i], 0, 0);
		msgpack_pack_array(&f.pk, 0);
		fb_expect(&f, -CFS_EPROTO);
	}
	fb_hdr(&f, 0, cfs_msg_code(CFS_MSG_PING), 0, 0);
	msgpack_pack_array(&f.pk, 0);
	fb_expect(&f, -CFS_EPROTO);
	fb_hdr(&f, CFS_PROTO_VERSION + 1, cfs_msg_code(CFS_MSG_PING), 0, 0);
	msgpack_pack_array(&f.pk, 0);
	fb_expect(&f, -CFS_EPROTO);
}
END_TEST

START_TEST(test_wire_decode_returns_eproto_when_bytes_trail_header)
{
	static const uint8_t nil = 0xc0;
	struct rt_msg *m;
	struct fb f;

	fb_begin(&f, CFS_MSG_PING);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, 9);
	fb_raw(&f, &nil, 1);
	fb_expect(&f, -CFS_EPROTO);

	/* The same header without the stray byte decodes. */
	fb_begin(&f, CFS_MSG_PING);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, 9);
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert_uint_eq(RT_BODY(m, ping)->sent_ns, 9);
	ck_assert_uint_eq(m->req_id, 7);
	ck_assert_uint_eq(m->src, CFS_ADDR(1, 2));
	ck_assert_uint_eq(m->dst, CFS_ADDR(3, 4));
	rt_msg_free(&m);
}
END_TEST

START_TEST(test_wire_decode_returns_eproto_when_header_not_array_of_8)
{
	struct fb f;
	unsigned n;

	for (n = 0; n <= 9; n++) {
		if (n == 8)
			continue;
		msgpack_sbuffer_init(&f.sb);
		msgpack_packer_init(&f.pk, &f.sb, msgpack_sbuffer_write);
		msgpack_pack_array(&f.pk, n);
		for (unsigned i = 0; i < n; i++)
			msgpack_pack_uint32(&f.pk, i == 0 ? 1 : 0);
		fb_expect(&f, -CFS_EPROTO);
	}
	msgpack_sbuffer_init(&f.sb);
	msgpack_packer_init(&f.pk, &f.sb, msgpack_sbuffer_write);
	msgpack_pack_map(&f.pk, 0);
	fb_expect(&f, -CFS_EPROTO);
}
END_TEST

START_TEST(test_wire_decode_checks_flags_and_rc_when_response)
{
	struct rt_msg *m;
	struct fb f;

	fb_hdr(&f, 1, cfs_msg_code(CFS_MSG_PING), 0x10000, 0);
	msgpack_pack_array(&f.pk, 0);
	fb_expect(&f, -CFS_EPROTO);

	/* The wire code decides what is a response; the flag bit follows it. */
	fb_hdr(&f, 1, cfs_msg_code(CFS_MSG_PING), RT_MSG_F_RESP | RT_MSG_F_RELAXED, 0);
	msgpack_pack_array(&f.pk, 0);
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert_uint_eq(m->flags, RT_MSG_F_RELAXED);
	rt_msg_free(&m);

	fb_hdr(&f, 1, cfs_msg_code(CFS_MSG_PING_RESP), 0, 0);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_int32(&f.pk, -CFS_ENOACTOR);
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert_uint_eq(m->type, CFS_MSG_PING_RESP);
	ck_assert_uint_eq(m->flags, RT_MSG_F_RESP);
	ck_assert_int_eq(m->rc, -CFS_ENOACTOR);
	rt_msg_free(&m);

	/* A positive rc is no error value. */
	fb_hdr(&f, 1, cfs_msg_code(CFS_MSG_PING_RESP), 0, 0);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_int32(&f.pk, 5);
	fb_expect(&f, -CFS_EPROTO);
}
END_TEST

/* The flags element of a frame we encoded, read with msgpack-c (our own bytes). */
static uint64_t
hdr_flags(const uint8_t *frame)
{
	msgpack_unpacked u;
	uint64_t flags;
	uint32_t h;

	ck_assert_int_eq(wire_hdr_len(frame, WIRE_PREFIX, NULL, &h), 0);
	msgpack_unpacked_init(&u);
	ck_assert_int_eq(msgpack_unpack_next(&u, (const char *)frame + WIRE_PREFIX, h, NULL),
			 MSGPACK_UNPACK_SUCCESS);
	ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
	flags = u.data.via.array.ptr[5].via.u64;
	msgpack_unpacked_destroy(&u);
	return flags;
}

START_TEST(test_wire_encode_sets_resp_flag_when_type_is_response)
{
	struct wire_buf wb;
	struct rt_msg *m, *d;
	size_t consumed;

	wire_buf_init(&wb);
	m = rt_msg_new(CFS_MSG_PING_RESP);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(wire_encode(&wb, m, NULL), 0);
	m->type = CFS_MSG_PING;
	m->flags = RT_MSG_F_RESP | RT_MSG_F_ONEWAY;
	ck_assert_int_eq(wire_encode(&wb, m, NULL), 0);
	rt_msg_free(&m);

	/* Look at the flags on the wire, not only after decoding. */
	ck_assert_uint_eq(hdr_flags(wb.p), RT_MSG_F_RESP);
	ck_assert_int_eq(wire_decode_frame(wb.p, wb.len, NULL, &d, &consumed), 0);
	ck_assert_uint_eq(d->flags, RT_MSG_F_RESP);
	rt_msg_free(&d);
	ck_assert_uint_eq(hdr_flags(wb.p + consumed), RT_MSG_F_ONEWAY);
	ck_assert_int_eq(wire_decode_frame(wb.p + consumed, wb.len - consumed, NULL, &d, &consumed),
			 0);
	ck_assert_uint_eq(d->flags, RT_MSG_F_ONEWAY);
	rt_msg_free(&d);
	wire_buf_fini(&wb);
}
END_TEST

START_TEST(test_wire_decode_returns_eproto_when_count_exceeds_bytes)
{
	static const uint8_t big_array[] = {0xdd, 0xd6, 0x29, 0x29, 0x29, 0x01};
	static const uint8_t big_array16[] = {0xdc, 0xff, 0xff, 0x90, 0x90};
	struct fb f;

	/* As the body. */
	fb_begin(&f, CFS_MSG_PING);
	fb_raw(&f, big_array, sizeof(big_array));
	fb_expect(&f, -CFS_EPROTO);

	/* As an A() field: nothing is allocated for 3.6 billion records. */
	chunk_read_head(&f);
	fb_raw(&f, big_array, sizeof(big_array));
	fb_expect(&f, -CFS_EPROTO);
	chunk_read_head(&f);
	fb_raw(&f, big_array16, sizeof(big_array16));
	fb_expect(&f, -CFS_EPROTO);

	/* As an ignored extra field. */
	fb_begin(&f, CFS_MSG_PING);
	msgpack_pack_array(&f.pk, 2);
	msgpack_pack_uint64(&f.pk, 1);
	fb_raw(&f, big_array, sizeof(big_array));
	fb_expect(&f, -CFS_EPROTO);

	/* str and bin longer than what is left. */
	fb_begin(&f, CFS_MSG_STATUS_RESP);
	msgpack_pack_array(&f.pk, 3);
	msgpack_pack_int32(&f.pk, 0);
	msgpack_pack_uint32(&f.pk, 1);
	fb_raw(&f,
	       "\xdb\x7f\xff\xff\xff"
	       "abc",
	       8);
	fb_expect(&f, -CFS_EPROTO);
	chunk_write_head(&f);
	fb_raw(&f,
	       "\xc6\x00\x00\x00\x10"
	       "abc",
	       8);
	fb_expect(&f, -CFS_EPROTO);
}
END_TEST

START_TEST(test_wire_decode_returns_eproto_when_nesting_too_deep)
{
	static uint8_t bomb[100000];
	struct rt_msg *m;
	struct fb f;
	unsigned depth;

	/* Extra fields of a body (depth 2) may nest two more levels, as an A()
	 * field does, and no more. */
	for (depth = 1; depth <= 3; depth++) {
		fb_begin(&f, CFS_MSG_PING);
		msgpack_pack_array(&f.pk, 2);
		msgpack_pack_uint64(&f.pk, 1);
		for (unsigned i = 0; i < depth; i++)
			msgpack_pack_array(&f.pk, 1);
		msgpack_pack_uint32(&f.pk, 0);
		if (depth <= 2) {
			ck_assert_int_eq(fb_end(&f, &m), 0);
			rt_msg_free(&m);
		} else {
			fb_expect(&f, -CFS_EPROTO);
		}
	}
	/* Maps count too. */
	fb_begin(&f, CFS_MSG_PING);
	msgpack_pack_array(&f.pk, 2);
	msgpack_pack_uint64(&f.pk, 1);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 0);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_array(&f.pk, 0);
	fb_expect(&f, -CFS_EPROTO);

	/* The bomb: 100000 nested one-element arrays, as an extra field and as
	 * the whole header. */
	memset(bomb, 0x91, sizeof(bomb));
	bomb[sizeof(bomb) - 1] = 0x01;
	fb_begin(&f, CFS_MSG_PING);
	msgpack_pack_array(&f.pk, 2);
	msgpack_pack_uint64(&f.pk, 1);
	fb_raw(&f, bomb, sizeof(bomb));
	fb_expect(&f, -CFS_EPROTO);
	msgpack_sbuffer_init(&f.sb);
	msgpack_packer_init(&f.pk, &f.sb, msgpack_sbuffer_write);
	fb_raw(&f, bomb, sizeof(bomb));
	fb_expect(&f, -CFS_EPROTO);

	/* Records (depth 4) may carry extra scalars, not containers. */
	chunk_read_head(&f);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_array(&f.pk, 4);
	fb_bin(&f, 16);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_array(&f.pk, 0);
	fb_expect(&f, -CFS_EPROTO);
}
END_TEST

START_TEST(test_wire_decode_rejects_trap_when_msgpack_c_would_allocate_128gib)
{
	const struct wire_limits open = {.max_hdr = UINT32_MAX, .max_payload = 64ull << 20};
	uint8_t frame[4 + sizeof(g_trap)];
	struct rt_msg *m = NULL;
	size_t consumed;
	uint64_t plen;
	struct fb f;

	/* As a header: the first byte is an int, not the header array. */
	ck_assert_int_eq(wire_decode(g_trap, sizeof(g_trap), NULL, &m, &plen), -CFS_EPROTO);
	ck_assert_ptr_null(m);
	/* As a frame: its first four bytes claim a 640 MiB header. */
	ck_assert_int_eq(wire_decode_frame(g_trap, sizeof(g_trap), NULL, &m, &consumed),
			 -CFS_ETOOBIG);
	ck_assert_ptr_null(m);
	/* ... which, with no header limit, is only an incomplete frame. */
	ck_assert_int_eq(wire_decode_frame(g_trap, sizeof(g_trap), &open, &m, &consumed), -EAGAIN);
	/* Behind an honest prefix. */
	memcpy(frame, "\0\0\0\x11", 4);
	memcpy(frame + 4, g_trap, sizeof(g_trap));
	ck_assert_int_eq(wire_decode_frame(frame, sizeof(frame), NULL, &m, &consumed), -CFS_EPROTO);
	ck_assert_ptr_null(m);
	/* As a body, and from its array32 on as a body and an A() field. */
	fb_begin(&f, CFS_MSG_CHUNK_READ);
	fb_raw(&f, g_trap, sizeof(g_trap));
	fb_expect(&f, -CFS_EPROTO);
	fb_begin(&f, CFS_MSG_CHUNK_READ);
	fb_raw(&f, g_trap + 7, sizeof(g_trap) - 7);
	fb_expect(&f, -CFS_EPROTO);
	chunk_read_head(&f);
	fb_raw(&f, g_trap + 7, sizeof(g_trap) - 7);
	fb_expect(&f, -CFS_EPROTO);
}
END_TEST

/* ------------------------------------------------------ schema evolution */

START_TEST(test_wire_decode_zeroes_fields_when_trailing_fields_missing)
{
	struct rt_msg *m;
	struct cfs_chunk_write *w;
	struct fb f;
	static const struct cfs_id128 zero_id;

	fb_begin(&f, CFS_MSG_CHUNK_WRITE);
	msgpack_pack_array(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, 5);
	msgpack_pack_uint64(&f.pk, 6);
	ck_assert_int_eq(fb_end(&f, &m), 0);
	w = RT_BODY(m, chunk_write);
	ck_assert_uint_eq(w->target, 5);
	ck_assert_uint_eq(w->chain_id, 6);
	ck_assert_uint_eq(w->chain_ver, 0);
	ck_assert_mem_eq(w->chunk.b, zero_id.b, 16);
	ck_assert_uint_eq(w->update_ver, 0);
	ck_assert_uint_eq(w->flags, 0);
	rt_msg_free(&m);

	/* An empty response body is rc 0. */
	fb_begin(&f, CFS_MSG_STATUS_RESP);
	msgpack_pack_array(&f.pk, 0);
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert_int_eq(m->rc, 0);
	ck_assert_ptr_null(RT_BODY(m, status_resp)->version.p);
	ck_assert_uint_eq(RT_BODY(m, status_resp)->version.len, 0);
	ck_assert_ptr_null(RT_BODY(m, status_resp)->loops);
	ck_assert_uint_eq(RT_BODY(m, status_resp)->actors_count, 0);
	rt_msg_free(&m);

	/* Records too. */
	status_resp_with_cpu(&f, pack_i64, -3);
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert_int_eq(RT_BODY(m, status_resp)->loops[0].cpu, -3);
	ck_assert_uint_eq(RT_BODY(m, status_resp)->loops[0].handled, 0);
	ck_assert_uint_eq(RT_BODY(m, status_resp)->loops[0].wakeups, 0);
	rt_msg_free(&m);
}
END_TEST

START_TEST(test_wire_decode_ignores_fields_when_extra_trailing_fields)
{
	static const uint8_t ext_and_fixext[] = {0xc7, 0x02, 0x05, 0xaa, 0xbb, 0xd4, 0x01, 0x02};
	struct rt_msg *m;
	struct fb f;

	fb_begin(&f, CFS_MSG_PING);
	msgpack_pack_array(&f.pk, 9);
	msgpack_pack_uint64(&f.pk, 42);
	fb_str(&f, "extra");
	msgpack_pack_array(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_array(&f.pk, 0);
	msgpack_pack_map(&f.pk, 1);
	fb_str(&f, "k");
	msgpack_pack_int64(&f.pk, INT64_MIN);
	msgpack_pack_double(&f.pk, 1.5);
	msgpack_pack_nil(&f.pk);
	fb_bin(&f, 3);
	fb_raw(&f, ext_and_fixext, sizeof(ext_and_fixext));
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert_uint_eq(RT_BODY(m, ping)->sent_ns, 42);
	rt_msg_free(&m);

	/* Extra scalars in a record. */
	chunk_read_head(&f);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_array(&f.pk, 5);
	fb_bin(&f, 16);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, 99);
	fb_str(&f, "x");
	ck_assert_int_eq(fb_end(&f, &m), 0);
	ck_assert_uint_eq(RT_BODY(m, chunk_read)->ios_count, 1);
	ck_assert_uint_eq(RT_BODY(m, chunk_read)->ios[0].len, 2);
	rt_msg_free(&m);

	/* A malformed extra field still fails the frame (0xc1 is never valid). */
	fb_begin(&f, CFS_MSG_PING);
	msgpack_pack_array(&f.pk, 2);
	msgpack_pack_uint64(&f.pk, 42);
	fb_raw(&f, "\xc1", 1);
	fb_expect(&f, -CFS_EPROTO);
}
END_TEST

/* ---------------------------------------------------------------- reader */

START_TEST(test_wire_rd_uint_accepts_every_int_format_when_value_fits)
{
	static const struct {
		const char *bytes;
		size_t n;
		uint64_t v;
	} ok[] = {
		{"\x05", 1, 5},
		{"\x7f", 1, 127},
		{"\xcc\xff", 2, 255},
		{"\xcd\x01\x00", 3, 256},
		{"\xce\xff\xff\xff\xff", 5, 0xffffffffull},
		{"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, UINT64_MAX},
		{"\xd0\x7f", 2, 127},
		{"\xd1\x7f\xff", 3, 0x7fff},
		{"\xd2\x7f\xff\xff\xff", 5, 0x7fffffff},
		{"\xd3\x7f\xff\xff\xff\xff\xff\xff\xff", 9, INT64_MAX},
	};
	static const struct {
		const char *bytes;
		size_t n;
	} bad[] = {
		{"\xff", 1}, {"\xe0", 1}, {"\xd0\x80", 2},     {"\xd3\x80\0\0\0\0\0\0\0", 9},
		{"\xc0", 1}, {"\xc2", 1}, {"\xca\0\0\0\0", 5}, {"\xa0", 1},
		{"\x90", 1}, {"\xc1", 1},
	};
	struct wire_rd rd;
	uint64_t v;
	unsigned i;
	size_t k;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		wire_rd_init(&rd, (const uint8_t *)ok[i].bytes, ok[i].n);
		ck_assert_int_eq(wire_rd_uint(&rd, &v), 0);
		ck_assert_uint_eq(v, ok[i].v);
		ck_assert_uint_eq(wire_rd_left(&rd), 0);
		/* Every truncation of it fails. */
		for (k = 0; k < ok[i].n; k++) {
			wire_rd_init(&rd, (const uint8_t *)ok[i].bytes, k);
			ck_assert_int_eq(wire_rd_uint(&rd, &v), -CFS_EPROTO);
		}
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wire_rd_init(&rd, (const uint8_t *)bad[i].bytes, bad[i].n);
		ck_assert_msg(wire_rd_uint(&rd, &v) == -CFS_EPROTO, "bad[%u] accepted", i);
	}
	wire_rd_init(&rd, (const uint8_t *)"\xcd\x01\x00", 3);
	ck_assert_int_eq(wire_rd_uint_max(&rd, 255, &v), -CFS_EPROTO);
}
END_TEST

START_TEST(test_wire_rd_int_checks_range_when_signed)
{
	struct wire_rd rd;
	int64_t v;

	wire_rd_init(&rd, (const uint8_t *)"\xe0", 1);
	ck_assert_int_eq(wire_rd_int(&rd, &v), 0);
	ck_assert_int_eq(v, -32);
	wire_rd_init(&rd, (const uint8_t *)"\xd3\x80\0\0\0\0\0\0\0", 9);
	ck_assert_int_eq(wire_rd_int(&rd, &v), 0);
	ck_assert(v == INT64_MIN);
	wire_rd_init(&rd, (const uint8_t *)"\xcf\x80\0\0\0\0\0\0\0", 9);
	ck_assert_int_eq(wire_rd_int(&rd, &v), -CFS_EPROTO);
	wire_rd_init(&rd, (const uint8_t *)"\xd1\xff\x7f", 3);
	ck_assert_int_eq(wire_rd_int_range(&rd, -128, 127, &v), -CFS_EPROTO);
	wire_rd_init(&rd, (const uint8_t *)"\xd1\xff\x80", 3);
	ck_assert_int_eq(wire_rd_int_range(&rd, -128, 127, &v), 0);
	ck_assert_int_eq(v, -128);
}
END_TEST

START_TEST(test_wire_rd_str_bin_check_type_and_length_when_read)
{
	const uint8_t *p;
	struct wire_rd rd;
	uint32_t n;

	wire_rd_init(&rd,
		     (const uint8_t *)"\xa3"
				      "abc",
		     4);
	ck_assert_int_eq(wire_rd_str(&rd, &p, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_mem_eq(p, "abc", 3);
	wire_rd_init(&rd,
		     (const uint8_t *)"\xa3"
				      "ab",
		     3);
	ck_assert_int_eq(wire_rd_str(&rd, &p, &n), -CFS_EPROTO);
	wire_rd_init(&rd,
		     (const uint8_t *)"\xd9\x02"
				      "ab",
		     4);
	ck_assert_int_eq(wire_rd_str(&rd, &p, &n), 0);
	wire_rd_init(&rd,
		     (const uint8_t *)"\xda\x00\x02"
				      "ab",
		     5);
	ck_assert_int_eq(wire_rd_str(&rd, &p, &n), 0);
	wire_rd_init(&rd,
		     (const uint8_t *)"\xdb\x00\x00\x00\x02"
				      "ab",
		     7);
	ck_assert_int_eq(wire_rd_str(&rd, &p, &n), 0);
	ck_assert_uint_eq(wire_rd_left(&rd), 0);
	wire_rd_init(&rd,
		     (const uint8_t *)"\xc4\x02"
				      "ab",
		     4);
	ck_assert_int_eq(wire_rd_str(&rd, &p, &n), -CFS_EPROTO);

	/* BYTES fields read bin: str is refused. */
	wire_rd_init(&rd,
		     (const uint8_t *)"\xc4\x02"
				      "ab",
		     4);
	ck_assert_int_eq(wire_rd_bin(&rd, &p, &n), 0);
	ck_assert_uint_eq(n, 2);
	wire_rd_init(&rd,
		     (const uint8_t *)"\xc5\x00\x02"
				      "ab",
		     5);
	ck_assert_int_eq(wire_rd_bin(&rd, &p, &n), 0);
	wire_rd_init(&rd,
		     (const uint8_t *)"\xc6\x00\x00\x00\x02"
				      "ab",
		     7);
	ck_assert_int_eq(wire_rd_bin(&rd, &p, &n), 0);
	wire_rd_init(&rd,
		     (const uint8_t *)"\xc6\x00\x00\x00\x03"
				      "ab",
		     7);
	ck_assert_int_eq(wire_rd_bin(&rd, &p, &n), -CFS_EPROTO);
	wire_rd_init(&rd,
		     (const uint8_t *)"\xa2"
				      "ab",
		     3);
	ck_assert_int_eq(wire_rd_bin(&rd, &p, &n), -CFS_EPROTO);
	wire_rd_init(&rd, (const uint8_t *)"\xc4", 1);
	ck_assert_int_eq(wire_rd_bin(&rd, &p, &n), -CFS_EPROTO);
}
END_TEST

START_TEST(test_wire_rd_array_refuses_count_when_larger_than_bytes_left)
{
	struct wire_rd rd;
	uint32_t n;

	wire_rd_init(&rd, (const uint8_t *)"\x93\x01\x02\x03", 4);
	ck_assert_int_eq(wire_rd_array(&rd, &n), 0);
	ck_assert_uint_eq(n, 3);
	wire_rd_init(&rd, (const uint8_t *)"\x93\x01\x02", 3);
	ck_assert_int_eq(wire_rd_array(&rd, &n), -CFS_EPROTO);
	wire_rd_init(&rd, (const uint8_t *)"\xdc\x00\x02\x01\x02", 5);
	ck_assert_int_eq(wire_rd_array(&rd, &n), 0);
	ck_assert_uint_eq(n, 2);
	wire_rd_init(&rd, (const uint8_t *)"\xdd\x00\x00\x00\x03\x01\x02", 7);
	ck_assert_int_eq(wire_rd_array(&rd, &n), -CFS_EPROTO);
	wire_rd_init(&rd, (const uint8_t *)"\xdd\x00\x00", 3);
	ck_assert_int_eq(wire_rd_array(&rd, &n), -CFS_EPROTO);
	wire_rd_init(&rd, (const uint8_t *)"\x80", 1);
	ck_assert_int_eq(wire_rd_array(&rd, &n), -CFS_EPROTO);
}
END_TEST

START_TEST(test_wire_rd_skip_walks_every_type_when_within_depth)
{
	/* One value of each kind inside an array of 21. */
	static const uint8_t all[] = {
		0xdc, 0x00, 21,	 0x01, 0xff, 0xc0, 0xc2, 0xc3, 0xcc, 1,	   0xcd, 0,    1,    0xce,
		0,    0,    0,	 1,    0xcf, 0,	   0,	 0,    0,    0,	   0,	 0,    1,    0xd0,
		1,    0xd1, 0,	 1,    0xd2, 0,	   0,	 0,    1,    0xd3, 0,	 0,    0,    0,
		0,    0,    0,	 1,    0xca, 0,	   0,	 0,    0,    0xcb, 0,	 0,    0,    0,
		0,    0,    0,	 0,    0xa1, 'x',  0xc4, 1,    'y',  0xd4, 1,	 2,    0xc8, 0,
		1,    7,    'z', 0x81, 0x01, 0x02, 0xdf, 0,    0,    0,	   1,	 0x01, 0x90,
	};
	struct wire_rd rd;

	wire_rd_init(&rd, all, sizeof(all));
	ck_assert_int_eq(wire_rd_skip(&rd, 3), 0);
	ck_assert_uint_eq(wire_rd_left(&rd), 0);
	/* The map32 holding an array inside the array16 needs three levels. */
	wire_rd_init(&rd, all, sizeof(all));
	ck_assert_int_eq(wire_rd_skip(&rd, 2), -CFS_EPROTO);
	wire_rd_init(&rd, all, sizeof(all));
	ck_assert_int_eq(wire_rd_skip(&rd, 0), -CFS_EPROTO);
	/* Every truncation fails. */
	for (size_t k = 0; k < sizeof(all); k++) {
		wire_rd_init(&rd, all, k);
		ck_assert_int_eq(wire_rd_skip(&rd, 4), -CFS_EPROTO);
	}
	wire_rd_init(&rd, (const uint8_t *)"\xc1", 1);
	ck_assert_int_eq(wire_rd_skip(&rd, 4), -CFS_EPROTO);
	/* A map's count is doubled before the check against the bytes left. */
	wire_rd_init(&rd, (const uint8_t *)"\x82\x01\x02\x03", 4);
	ck_assert_int_eq(wire_rd_skip(&rd, 4), -CFS_EPROTO);
	wire_rd_init(&rd, (const uint8_t *)"\xc9\xff\xff\xff\xff\x01", 6);
	ck_assert_int_eq(wire_rd_skip(&rd, 4), -CFS_EPROTO);
}
END_TEST

START_TEST(test_wire_buf_keeps_bytes_when_grown_and_consumed)
{
	struct wire_buf b;
	size_t i;

	wire_buf_init(&b);
	for (i = 0; i < 10000; i++) {
		ck_assert_int_eq(wire_buf_reserve(&b, 1), 0);
		b.p[b.len++] = (uint8_t)i;
	}
	ck_assert_uint_ge(b.cap, 10000);
	wire_buf_consume(&b, 9990);
	ck_assert_uint_eq(b.len, 10);
	ck_assert_uint_eq(b.p[0], (uint8_t)9990);
	wire_buf_consume(&b, 20);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(wire_buf_reserve(&b, SIZE_MAX - 8), -ENOMEM);
	wire_buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	wire_buf_fini(&b);
	ck_assert_ptr_null(b.p);
	ck_assert_uint_eq(b.cap, 0);
}
END_TEST

/* ----------------------------------------------------------------- suite */

static Suite *
wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc;

	tc = tcase_create("roundtrip");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_wire_roundtrip_preserves_every_field_when_any_type, 1,
			    CFS_MSG__COUNT);
	tcase_add_loop_test(tc, test_wire_encoding_parses_with_msgpack_c_when_any_type, 1,
			    CFS_MSG__COUNT);
	tcase_add_test(tc, test_wire_body_matches_msgpack_c_packer_when_boundary_values);
	tcase_add_loop_test(tc, test_wire_frame_matches_packer_and_checked_body_when_any_type, 1,
			    CFS_MSG__COUNT);
	tcase_add_test(tc, test_wire_decode_accepts_wide_int_formats_when_header_and_body);
	tcase_add_test(tc, test_wire_decode_reads_uint_formats_when_last_bytes_of_header);
	tcase_add_loop_test(tc, test_wire_body_roundtrip_preserves_fields_when_bare_body, 1,
			    CFS_MSG__COUNT);
	suite_add_tcase(s, tc);

	tc = tcase_create("truncation");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_wire_decode_frame_returns_eagain_when_frame_truncated, 1,
			    CFS_MSG__COUNT);
	tcase_add_loop_test(tc, test_wire_decode_returns_eproto_when_header_shortened, 1,
			    CFS_MSG__COUNT);
	suite_add_tcase(s, tc);

	tc = tcase_create("field_types");
	tcase_add_test(tc, test_wire_decode_rejects_u32_when_not_a_32_bit_uint);
	tcase_add_test(tc, test_wire_decode_rejects_u64_when_negative_or_not_int);
	tcase_add_test(tc, test_wire_decode_rejects_i32_when_out_of_range);
	tcase_add_test(tc, test_wire_decode_rejects_bool_when_not_true_or_false);
	tcase_add_test(tc, test_wire_decode_rejects_id_when_not_bin_of_16);
	tcase_add_test(tc, test_wire_decode_rejects_str_when_bin_or_int);
	tcase_add_test(tc, test_wire_decode_copies_str_when_input_freed);
	tcase_add_test(tc, test_wire_decode_rejects_records_when_not_arrays);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_wire_hdr_len_checks_prefix_when_short_zero_or_oversize);
	tcase_add_test(tc, test_wire_decode_returns_etoobig_when_over_limits);
	tcase_add_test(tc, test_wire_encode_fails_cleanly_when_over_limits_or_invalid);
	suite_add_tcase(s, tc);

	tc = tcase_create("malformed");
	tcase_add_test(tc, test_wire_decode_returns_eproto_when_code_or_version_unknown);
	tcase_add_test(tc, test_wire_decode_returns_eproto_when_bytes_trail_header);
	tcase_add_test(tc, test_wire_decode_returns_eproto_when_header_not_array_of_8);
	tcase_add_test(tc, test_wire_decode_checks_flags_and_rc_when_response);
	tcase_add_test(tc, test_wire_encode_sets_resp_flag_when_type_is_response);
	tcase_add_test(tc, test_wire_decode_returns_eproto_when_count_exceeds_bytes);
	tcase_add_test(tc, test_wire_decode_returns_eproto_when_nesting_too_deep);
	tcase_add_test(tc, test_wire_decode_rejects_trap_when_msgpack_c_would_allocate_128gib);
	suite_add_tcase(s, tc);

	tc = tcase_create("evolution");
	tcase_add_test(tc, test_wire_decode_zeroes_fields_when_trailing_fields_missing);
	tcase_add_test(tc, test_wire_decode_ignores_fields_when_extra_trailing_fields);
	suite_add_tcase(s, tc);

	tc = tcase_create("reader");
	tcase_add_test(tc, test_wire_rd_uint_accepts_every_int_format_when_value_fits);
	tcase_add_test(tc, test_wire_rd_int_checks_range_when_signed);
	tcase_add_test(tc, test_wire_rd_str_bin_check_type_and_length_when_read);
	tcase_add_test(tc, test_wire_rd_array_refuses_count_when_larger_than_bytes_left);
	tcase_add_test(tc, test_wire_rd_skip_walks_every_type_when_within_depth);
	tcase_add_test(tc, test_wire_buf_keeps_bytes_when_grown_and_consumed);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(wire_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the wire decoder: the input is a byte stream of frames,
 * decoded with wire_decode_frame one after the other until an error or the
 * end, as a connection's receive path would. Every decoded message is encoded
 * again and decoded again; the two encodings must be equal (the codec is
 * canonical after one pass), which checks the encoders on whatever values the
 * fuzzer reaches. Everything is freed, so libFuzzer's leak check is meaningful.
 * Built with clang by `make fuzz` (src/net/wire.mk).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Smaller than the default so that libFuzzer's -max_len inputs can reach the
 * limit checks; -rss_limit_mb still catches any allocation out of proportion. */
static const struct wire_limits g_lim = {.max_hdr = 49152, .max_payload = 16384};

static void
check_reencode(const struct rt_msg *m)
{
	struct wire_buf a, b;
	struct rt_msg *d = NULL;
	uint64_t plen;
	uint32_t h;

	wire_buf_init(&a);
	wire_buf_init(&b);
	/* A decoded message always fits the limits it was decoded under. */
	if (wire_encode(&a, m, &g_lim) != 0)
		abort();
	if (wire_hdr_len(a.p, a.len, &g_lim, &h) != 0 || a.len != WIRE_PREFIX + h)
		abort();
	if (wire_decode(a.p + WIRE_PREFIX, h, &g_lim, &d, &plen) != 0 || plen != m->plen)
		abort();
	/* d has no payload attached; its header must still state m's length. */
	d->plen = (uint32_t)plen;
	if (wire_encode(&b, d, &g_lim) != 0 || b.len != a.len || memcmp(a.p, b.p, a.len) != 0)
		abort();
	d->plen = 0;
	rt_msg_free(&d);
	wire_buf_fini(&b);
	wire_buf_fini(&a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rt_msg *m;
	size_t off = 0, used;

	while (off < size) {
		if (wire_decode_frame(data + off, size - off, &g_lim, &m, &used) != 0)
			break;
		if (used == 0 || used > size - off)
			abort();
		check_reencode(m);
		rt_msg_free(&m);
		off += used;
	}
	return 0;
}

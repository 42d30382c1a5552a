/* SPDX-License-Identifier: MIT */
/*
 * The out-of-line part of the bounded msgpack reader: skipping a whole value
 * of any type, used for the extra trailing fields a newer peer may send. The
 * per-type readers are inline in wire_reader.h.
 */
#include "net/wire_reader.h"

/*
 * Size of the item header at p and what follows it: for str/bin/ext, `data`
 * bytes of content; for containers, `count` child values. Returns the header
 * length, or 0 when the byte is not valid msgpack or the header is truncated.
 */
static size_t
item_header(const uint8_t *p, size_t left, uint64_t *data, uint64_t *count, bool *container)
{
	uint8_t b = p[0];

	*data = 0;
	*count = 0;
	*container = false;
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
		return 1;
	if ((b & 0xf0) == 0x80 || (b & 0xf0) == 0x90) {
		*container = true;
		*count = (uint64_t)(b & 0x0f) * ((b & 0xf0) == 0x80 ? 2 : 1);
		return 1;
	}
	if ((b & 0xe0) == 0xa0) {
		*data = b & 0x1f;
		return 1;
	}
	switch (b) {
	case 0xcc:
	case 0xd0:
		return left >= 2 ? 2 : 0;
	case 0xcd:
	case 0xd1:
		return left >= 3 ? 3 : 0;
	case 0xca:
	case 0xce:
	case 0xd2:
		return left >= 5 ? 5 : 0;
	case 0xcb:
	case 0xcf:
	case 0xd3:
		return left >= 9 ? 9 : 0;
	case 0xd4: /* fixext 1, 2, 4, 8, 16: type byte + data */
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		*data = 1 + (1u << (b - 0xd4));
		return 1;
	case 0xc4:
	case 0xd9:
		if (left < 2)
			return 0;
		*data = p[1];
		return 2;
	case 0xc5:
	case 0xda:
		if (left < 3)
			return 0;
		*data = wire_load_be16(p + 1);
		return 3;
	case 0xc6:
	case 0xdb:
		if (left < 5)
			return 0;
		*data = wire_load_be32(p + 1);
		return 5;
	case 0xc7: /* ext 8/16/32: length, type byte, data */
		if (left < 3)
			return 0;
		*data = (uint64_t)p[1] + 1;
		return 2;
	case 0xc8:
		if (left < 4)
			return 0;
		*data = (uint64_t)wire_load_be16(p + 1) + 1;
		return 3;
	case 0xc9:
		if (left < 6)
			return 0;
		*data = (uint64_t)wire_load_be32(p + 1) + 1;
		return 5;
	case 0xdc:
	case 0xde:
		if (left < 3)
			return 0;
		*container = true;
		*count = (uint64_t)wire_load_be16(p + 1) * (b == 0xde ? 2 : 1);
		return 3;
	case 0xdd:
	case 0xdf:
		if (left < 5)
			return 0;
		*container = true;
		*count = (uint64_t)wire_load_be32(p + 1) * (b == 0xdf ? 2 : 1);
		return 5;
	default: /* 0xc1: never used */
		return 0;
	}
}

int
wire_rd_skip(struct wire_rd *rd, unsigned max_depth)
{
	/* Values still to skip in each open container, outermost first. */
	uint64_t outer[WIRE_RD_SKIP_MAX];
	unsigned depth = 0;
	uint64_t pending = 1; /* values left at the current level */
	uint64_t data, count;
	bool container;
	size_t hlen, left;

	if (max_depth > WIRE_RD_SKIP_MAX)
		max_depth = WIRE_RD_SKIP_MAX;
	for (;;) {
		while (pending == 0) {
			if (depth == 0)
				return 0;
			pending = outer[--depth];
		}
		left = wire_rd_left(rd);
		if (left == 0)
			return -CFS_EPROTO;
		hlen = item_header(rd->p, left, &data, &count, &container);
		if (hlen == 0 || data > left - hlen)
			return -CFS_EPROTO;
		rd->p += hlen + data;
		pending--;
		if (!container)
			continue;
		/* Every child takes at least one byte: a count beyond the bytes left
		 * is a lie, refused here as in wire_rd_array. */
		if (count > left - hlen || depth == max_depth)
			return -CFS_EPROTO;
		outer[depth++] = pending;
		pending = count;
	}
}

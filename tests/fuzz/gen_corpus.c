/* SPDX-License-Identifier: MIT */
/*
 * Seed corpus for tests/fuzz/fuzz_frame: writes two valid frames per message
 * type of proto.def (with a few payload bytes) into DIR: <name>.frame with
 * small values and <name>.edge.frame with values at msgpack format boundaries
 * (int16/32 negatives, str16, array16), and one file holding a stream of three
 * frames, so the fuzzer starts from every decoder and every format. Run by
 * `make fuzz`; its output for the current proto.def is also committed in
 * tests/fuzz/corpus.
 *
 *   gen_corpus DIR
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/wire.h"
#include "tests/fuzz/wire_sample.h"

static int
write_file(const char *dir, const char *name, const char *suffix, const struct wire_buf *b)
{
	char path[4096];
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s%s.frame", dir, name, suffix);
	f = fopen(path, "wb");
	if (f == NULL)
		return -errno;
	if (fwrite(b->p, 1, b->len, f) != b->len)
		rc = -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* The frame of a sample message of `type` and its 3 payload bytes. */
static int
append_frame(struct wire_buf *b, unsigned type, unsigned variant)
{
	static const uint8_t payload[3] = {0xca, 0xfe, 0x00};
	struct rt_msg *m;
	int rc;

	m = sample_msg(type, variant, type);
	if (m == NULL)
		return -ENOMEM;
	m->plen = sizeof(payload); /* only the header is encoded from m */
	rc = wire_encode(b, m, NULL);
	m->plen = 0;
	rt_msg_free(&m);
	if (rc == 0)
		rc = wire_buf_reserve(b, sizeof(payload));
	if (rc != 0)
		return rc;
	memcpy(b->p + b->len, payload, sizeof(payload));
	b->len += sizeof(payload);
	return 0;
}

int
main(int argc, char **argv)
{
	struct wire_buf b;
	unsigned type;
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	wire_buf_init(&b);
	for (type = 1; type < CFS_MSG__COUNT && rc == 0; type++) {
		wire_buf_reset(&b);
		rc = append_frame(&b, type, 0);
		if (rc == 0)
			rc = write_file(argv[1], cfs_msg_name(type), "", &b);
		wire_buf_reset(&b);
		if (rc == 0)
			rc = append_frame(&b, type, 1);
		if (rc == 0)
			rc = write_file(argv[1], cfs_msg_name(type), ".edge", &b);
	}
	if (rc == 0) {
		wire_buf_reset(&b);
		rc = append_frame(&b, CFS_MSG_CHUNK_READ, 0);
		if (rc == 0)
			rc = append_frame(&b, CFS_MSG_CHUNK_READ_RESP, 0);
		if (rc == 0)
			rc = append_frame(&b, CFS_MSG_STATUS_RESP, 0);
		if (rc == 0)
			rc = write_file(argv[1], "stream3", "", &b);
	}
	wire_buf_fini(&b);
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], strerror(-rc));
		return 1;
	}
	return 0;
}

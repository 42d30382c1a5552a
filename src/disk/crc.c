/* SPDX-License-Identifier: MIT */
/*
 * CRC32C for the chunk engine and its clients: isa-l's crc32_iscsi (hardware
 * accelerated) wrapped to the usual pre/post-inverted convention, the combine
 * operation that builds a chunk's CRC from its 4 KiB block CRCs without a
 * second pass over the bytes, and the block-table helpers the engine uses.
 */
#include <isa-l/crc.h>
#include <limits.h>

#include "disk/disk_internal.h"

uint32_t
disk_crc32c(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *b = p;

	/* isa-l computes the raw register update (no final inversion) and takes an int
	 * length: invert around it and feed it in pieces. */
	crc = ~crc;
	while (n > 0) {
		size_t step = n > (1u << 30) ? (1u << 30) : n;

		crc = crc32_iscsi((unsigned char *)b, (int)step, crc);
		b += step;
		n -= step;
	}
	return ~crc;
}

/* Reflected Castagnoli polynomial. */
#define POLY 0x82f63b78u

/* a(x) * b(x) modulo p(x), in the reflected bit order the CRC uses. */
static uint32_t
multmodp(uint32_t a, uint32_t b)
{
	uint32_t m = 1u << 31;
	uint32_t p = 0;

	for (;;) {
		if (a & m) {
			p ^= b;
			if ((a & (m - 1)) == 0)
				break;
		}
		m >>= 1;
		b = b & 1 ? (b >> 1) ^ POLY : b >> 1;
	}
	return p;
}

/* x^(2^k) mod p(x) for k = 0..31, filled once. */
static uint32_t x2n_table[32];
static pthread_once_t x2n_once = PTHREAD_ONCE_INIT;

static void
x2n_init(void)
{
	uint32_t p = 1u << 30; /* x^1 */

	x2n_table[0] = p;
	for (int n = 1; n < 32; n++)
		x2n_table[n] = p = multmodp(p, p);
}

/* x^(n * 2^k) mod p(x). */
static uint32_t
x2nmodp(uint64_t n, unsigned k)
{
	uint32_t p = 1u << 31; /* x^0 == 1 */

	pthread_once(&x2n_once, x2n_init);
	while (n) {
		if (n & 1)
			p = multmodp(x2n_table[k & 31], p);
		n >>= 1;
		k++;
	}
	return p;
}

uint32_t
disk_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	return multmodp(x2nmodp(len_b, 3), crc_a) ^ crc_b;
}

/* Operator for one whole block, computed once: combining a table is then one
 * multiplication per block. */
static uint32_t block_op;
static pthread_once_t block_once = PTHREAD_ONCE_INIT;

static void
block_op_init(void)
{
	block_op = x2nmodp(DISK_BLOCK, 3);
}

uint32_t
disk_crc_blocks(const uint8_t *p, uint32_t len, uint32_t *table)
{
	uint32_t n = disk_nblocks(len);
	uint32_t crc = 0;

	pthread_once(&block_once, block_op_init);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t blen = i + 1 < n ? DISK_BLOCK : len - i * DISK_BLOCK;
		uint32_t c = disk_crc32c(0, p + (size_t)i * DISK_BLOCK, blen);

		if (table)
			table[i] = c;
		if (i == 0)
			crc = c;
		else if (blen == DISK_BLOCK)
			crc = multmodp(block_op, crc) ^ c;
		else
			crc = disk_crc32c_combine(crc, c, blen);
	}
	return crc;
}

uint32_t
disk_crc_table_combine(const uint32_t *table, uint32_t len)
{
	uint32_t n = disk_nblocks(len);
	uint32_t crc = 0;

	pthread_once(&block_once, block_op_init);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t blen = i + 1 < n ? DISK_BLOCK : len - i * DISK_BLOCK;

		if (i == 0)
			crc = table[i];
		else if (blen == DISK_BLOCK)
			crc = multmodp(block_op, crc) ^ table[i];
		else
			crc = disk_crc32c_combine(crc, table[i], blen);
	}
	return crc;
}

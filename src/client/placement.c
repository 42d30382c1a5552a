// SPDX-License-Identifier: MIT
/*
 * The frozen placement permutation of placement.h. Changing any constant or
 * step here moves chunks to other chains: tests/unit/test_mgmtd.c pins known
 * outputs so such a change cannot go unnoticed.
 */
#include "client/placement.h"

uint64_t
cfs_mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* One Feistel pass on a 2h-bit value: a bijection of [0, 2^(2h)). */
static uint64_t
feistel(uint64_t seed, unsigned h, uint64_t x)
{
	uint64_t m = (1ull << h) - 1;
	uint64_t l = x >> h, r = x & m;

	for (uint64_t round = 0; round < 4; round++) {
		uint64_t f = cfs_mix64(seed ^ (round << 56) ^ r) & m;
		uint64_t nl = r;

		r = l ^ f;
		l = nl;
	}
	return (l << h) | r;
}

uint32_t
cfs_perm(uint64_t seed, uint32_t n, uint32_t i)
{
	unsigned w = 2;
	uint64_t x = i;

	if (n <= 1 || i >= n)
		return 0;
	while ((1ull << w) < n)
		w += 2;
	/* Cycle walking: the walk from i stays on i's cycle of the w-bit
	 * permutation, which holds i itself, so it ends. */
	do
		x = feistel(seed, w / 2, x);
	while (x >= n);
	return (uint32_t)x;
}

uint32_t
cfs_place_chunk(uint64_t seed, uint64_t index, uint32_t stripe)
{
	if (stripe == 0)
		return 0;
	return cfs_perm(seed, stripe, (uint32_t)(index % stripe));
}

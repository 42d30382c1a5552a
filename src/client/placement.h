/* SPDX-License-Identifier: MIT */
/*
 * Frozen placement: which chain a file's chunk lives on. The functions here
 * are part of the on-disk format in effect (a chunk is looked for where they
 * say), so they are fixed arithmetic, spelled out below and pinned by unit
 * tests with known outputs; never rand(), a library shuffle or a hash whose
 * implementation may change between builds or libraries (3FS#368).
 *
 * mix64(z)  splitmix64's finalizer:
 *             z += 0x9e3779b97f4a7c15
 *             z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
 *             z = (z ^ (z >> 27)) * 0x94d049bb133111eb
 *             return z ^ (z >> 31)                      (all mod 2^64)
 *
 * perm(seed, n, i), i < n: the i-th element of a permutation of [0, n) chosen
 *   by seed. w = the smallest even number >= 2 with 2^w >= n, h = w / 2,
 *   m = 2^h - 1. One Feistel pass on a w-bit x:
 *             L = x >> h, R = x & m
 *             for r in 0..3:  (L, R) = (R, L ^ (mix64(seed ^ (r << 56) ^ R) & m))
 *             x = (L << h) | R
 *   Starting from x = i, apply passes until x < n ("cycle walking"); that x is
 *   the answer. Each pass is a bijection of [0, 2^w), so the result is a
 *   bijection of [0, n); 2^w < 4n bounds the expected passes by 4.
 *
 * chunk(seed, index, stripe) = perm(seed, stripe, index mod stripe): chunk
 *   `index` of a file whose layout has `stripe` chains and seed `seed` lives on
 *   the layout's chain number chunk(...). Every run of `stripe` consecutive
 *   chunks touches each of the file's chains once, and files with different
 *   seeds visit them in different orders.
 *
 * A layout that takes `stripe` chains out of the routing table's N chains (in
 * chain id order) takes positions perm(seed, N, 0 .. stripe-1).
 */
#ifndef CFS_CLIENT_PLACEMENT_H
#define CFS_CLIENT_PLACEMENT_H

#include <stdint.h>

/** splitmix64's finalizer (above). */
uint64_t cfs_mix64(uint64_t z);
/** The i-th element of the seed's permutation of [0, n). 0 when n == 0 or i >= n. */
uint32_t cfs_perm(uint64_t seed, uint32_t n, uint32_t i);
/** Which of a layout's `stripe` chains holds chunk `index`. 0 when stripe == 0. */
uint32_t cfs_place_chunk(uint64_t seed, uint64_t index, uint32_t stripe);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The in-memory chunk index of a target: a hash table (open addressing,
 * linear probing, backward-shift deletion) for the lookups of the read and
 * write paths, and an ordered index for list (paging a million chunks for a
 * resync must not sort or touch SQLite). The ordered index is a sorted array
 * of blocks of up to OMAP_BLK entry pointers: a lookup is two binary searches,
 * an insert or remove moves at most one block's worth of pointers, and
 * appending in id order (loading the index at open) fills blocks completely.
 * Also the map of the records of committed removes (disk_removed_find): a
 * chained hash on (id, request) plus the records in commit order, so the ones
 * past their retention leave from the front.
 */
#include <errno.h>
#include <stdlib.h>

#include "disk/disk_internal.h"

#define OMAP_BLK 256

struct disk_omap_blk {
	uint32_t n;
	struct disk_chunk *e[OMAP_BLK];
};

static uint64_t
fmix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t
id_hash(const struct cfs_id128 *id)
{
	uint64_t a, b;

	/* Ids are (inode, index) pairs or hashes: a full avalanche of both halves,
	 * so the big-endian indexes of one inode (which differ only in their high
	 * bytes once loaded) spread over the low bits the table uses. */
	memcpy(&a, id->b, 8);
	memcpy(&b, id->b + 8, 8);
	return fmix64(a ^ fmix64(b));
}

int
disk_cmap_init(struct disk_cmap *m)
{
	memset(m, 0, sizeof(*m));
	m->tab = calloc(1024, sizeof(*m->tab));
	if (m->tab == NULL)
		return -ENOMEM;
	m->mask = 1023;
	return 0;
}

void
disk_cmap_fini(struct disk_cmap *m)
{
	for (uint32_t i = 0; i < m->nblks; i++)
		free(m->blks[i]);
	free(m->blks);
	free(m->tab);
	memset(m, 0, sizeof(*m));
}

struct disk_chunk *
disk_cmap_find(const struct disk_cmap *m, const struct cfs_id128 *id)
{
	uint32_t i = (uint32_t)id_hash(id) & m->mask;

	for (;;) {
		struct disk_chunk *c = m->tab[i];

		if (c == NULL)
			return NULL;
		if (disk_id_cmp(&c->id, id) == 0)
			return c;
		i = (i + 1) & m->mask;
	}
}

static void
hash_put(struct disk_chunk **tab, uint32_t mask, struct disk_chunk *c)
{
	uint32_t i = (uint32_t)id_hash(&c->id) & mask;

	while (tab[i] != NULL)
		i = (i + 1) & mask;
	tab[i] = c;
}

static int
hash_grow(struct disk_cmap *m)
{
	uint32_t nsize = (m->mask + 1) * 2;
	struct disk_chunk **tab = calloc(nsize, sizeof(*tab));

	if (tab == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i <= m->mask; i++)
		if (m->tab[i] != NULL)
			hash_put(tab, nsize - 1, m->tab[i]);
	free(m->tab);
	m->tab = tab;
	m->mask = nsize - 1;
	return 0;
}

static void
hash_del(struct disk_cmap *m, struct disk_chunk *c)
{
	uint32_t i = (uint32_t)id_hash(&c->id) & m->mask;

	while (m->tab[i] != c)
		i = (i + 1) & m->mask;
	/* Backward shift: move later members of the probe run into the hole when
	 * their home position allows it, so lookups never need tombstones. */
	for (uint32_t j = (i + 1) & m->mask;; j = (j + 1) & m->mask) {
		struct disk_chunk *x = m->tab[j];
		uint32_t home;

		if (x == NULL)
			break;
		home = (uint32_t)id_hash(&x->id) & m->mask;
		/* x may fill hole i when i lies cyclically in [home, j). */
		if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
			m->tab[i] = x;
			i = j;
		}
	}
	m->tab[i] = NULL;
}

/* Index of the first block whose last entry is >= id (nblks when none). */
static uint32_t
omap_find_blk(const struct disk_cmap *m, const struct cfs_id128 *id)
{
	uint32_t lo = 0, hi = m->nblks;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct disk_omap_blk *b = m->blks[mid];

		if (disk_id_cmp(&b->e[b->n - 1]->id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* First index in b with entry >= id. */
static uint32_t
blk_lower(const struct disk_omap_blk *b, const struct cfs_id128 *id)
{
	uint32_t lo = 0, hi = b->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (disk_id_cmp(&b->e[mid]->id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
omap_insert_blk(struct disk_cmap *m, uint32_t at, struct disk_omap_blk *b)
{
	if (m->nblks == m->capblks) {
		uint32_t ncap = m->capblks ? m->capblks * 2 : 16;
		struct disk_omap_blk **nb = realloc(m->blks, ncap * sizeof(*nb));

		if (nb == NULL)
			return -ENOMEM;
		m->blks = nb;
		m->capblks = ncap;
	}
	memmove(&m->blks[at + 1], &m->blks[at], (m->nblks - at) * sizeof(*m->blks));
	m->blks[at] = b;
	m->nblks++;
	return 0;
}

static int
omap_insert(struct disk_cmap *m, struct disk_chunk *c)
{
	struct disk_omap_blk *b;
	uint32_t bi, pos;
	int rc;

	if (m->nblks == 0) {
		b = calloc(1, sizeof(*b));
		if (b == NULL)
			return -ENOMEM;
		rc = omap_insert_blk(m, 0, b);
		if (rc != 0) {
			free(b);
			return rc;
		}
		b->e[0] = c;
		b->n = 1;
		return 0;
	}
	bi = omap_find_blk(m, &c->id);
	if (bi == m->nblks)
		bi--; /* larger than everything: append to the last block */
	b = m->blks[bi];
	if (b->n == OMAP_BLK) {
		/* Split. Appends at the very end start a new block instead, so a
		 * load in id order leaves full blocks. */
		struct disk_omap_blk *nb = calloc(1, sizeof(*nb));
		uint32_t keep = bi == m->nblks - 1 && disk_id_cmp(&c->id, &b->e[b->n - 1]->id) > 0
					? OMAP_BLK
					: OMAP_BLK / 2;

		if (nb == NULL)
			return -ENOMEM;
		nb->n = b->n - keep;
		memcpy(nb->e, &b->e[keep], nb->n * sizeof(nb->e[0]));
		b->n = keep;
		rc = omap_insert_blk(m, bi + 1, nb);
		if (rc != 0) {
			b->n = OMAP_BLK;
			free(nb);
			return rc;
		}
		if (b->n == 0 || disk_id_cmp(&c->id, &b->e[b->n - 1]->id) > 0)
			b = nb;
	}
	pos = blk_lower(b, &c->id);
	memmove(&b->e[pos + 1], &b->e[pos], (b->n - pos) * sizeof(b->e[0]));
	b->e[pos] = c;
	b->n++;
	return 0;
}

static void
omap_remove(struct disk_cmap *m, struct disk_chunk *c)
{
	uint32_t bi = omap_find_blk(m, &c->id);
	struct disk_omap_blk *b;
	uint32_t pos;

	if (bi == m->nblks)
		return;
	b = m->blks[bi];
	pos = blk_lower(b, &c->id);
	if (pos == b->n || b->e[pos] != c)
		return;
	memmove(&b->e[pos], &b->e[pos + 1], (b->n - pos - 1) * sizeof(b->e[0]));
	b->n--;
	if (b->n == 0) {
		free(b);
		memmove(&m->blks[bi], &m->blks[bi + 1], (m->nblks - bi - 1) * sizeof(*m->blks));
		m->nblks--;
	} else if (bi + 1 < m->nblks && b->n + m->blks[bi + 1]->n <= OMAP_BLK / 2) {
		/* Merge thin neighbours so blocks stay at least a quarter full. */
		struct disk_omap_blk *nb = m->blks[bi + 1];

		memcpy(&b->e[b->n], nb->e, nb->n * sizeof(nb->e[0]));
		b->n += nb->n;
		free(nb);
		memmove(&m->blks[bi + 1], &m->blks[bi + 2], (m->nblks - bi - 2) * sizeof(*m->blks));
		m->nblks--;
	}
}

int
disk_cmap_insert(struct disk_cmap *m, struct disk_chunk *c)
{
	int rc;

	if ((uint64_t)(m->count + 1) * 4 > (uint64_t)(m->mask + 1) * 3) {
		rc = hash_grow(m);
		if (rc != 0)
			return rc;
	}
	rc = omap_insert(m, c);
	if (rc != 0)
		return rc;
	hash_put(m->tab, m->mask, c);
	m->count++;
	return 0;
}

void
disk_cmap_remove(struct disk_cmap *m, struct disk_chunk *c)
{
	hash_del(m, c);
	omap_remove(m, c);
	m->count--;
}

void
disk_cmap_seek(const struct disk_cmap *m, const struct cfs_id128 *id, struct disk_cmap_cursor *cur)
{
	cur->blk = 0;
	cur->idx = 0;
	if (id == NULL || m->nblks == 0)
		return;
	cur->blk = omap_find_blk(m, id);
	if (cur->blk < m->nblks)
		cur->idx = blk_lower(m->blks[cur->blk], id);
}

struct disk_chunk *
disk_cmap_next(const struct disk_cmap *m, struct disk_cmap_cursor *cur)
{
	while (cur->blk < m->nblks) {
		const struct disk_omap_blk *b = m->blks[cur->blk];

		if (cur->idx < b->n)
			return b->e[cur->idx++];
		cur->blk++;
		cur->idx = 0;
	}
	return NULL;
}

/* ----------------------------------------------------- removed records */

static uint32_t
rm_bucket(const struct disk_rmap *m, const struct cfs_id128 *id, uint64_t req)
{
	return (uint32_t)(fmix64(id_hash(id) ^ req) & m->mask);
}

void
disk_rmap_init(struct disk_rmap *m)
{
	memset(m, 0, sizeof(*m));
	m->tail = &m->head;
}

void
disk_rmap_fini(struct disk_rmap *m)
{
	while (m->head != NULL) {
		struct disk_rm *r = m->head;

		m->head = r->next;
		free(r);
	}
	free(m->tab);
	disk_rmap_init(m);
}

struct disk_rm *
disk_rmap_find(const struct disk_rmap *m, const struct cfs_id128 *id, uint64_t req)
{
	struct disk_rm *r;

	if (m->tab == NULL)
		return NULL;
	for (r = m->tab[rm_bucket(m, id, req)]; r != NULL; r = r->hnext)
		if (r->req == req && disk_id_cmp(&r->id, id) == 0)
			return r;
	return NULL;
}

/* Double the table (or make the first one). A failure keeps the old table:
 * chains grow longer, nothing is lost. */
static void
rm_grow(struct disk_rmap *m)
{
	uint32_t n = m->tab == NULL ? 256 : (m->mask + 1) * 2;
	struct disk_rm **tab = calloc(n, sizeof(*tab));
	struct disk_rmap nm = {.tab = tab, .mask = n - 1};

	if (tab == NULL)
		return;
	for (uint32_t i = 0; m->tab != NULL && i <= m->mask; i++) {
		while (m->tab[i] != NULL) {
			struct disk_rm *r = m->tab[i];
			uint32_t b = rm_bucket(&nm, &r->id, r->req);

			m->tab[i] = r->hnext;
			r->hnext = tab[b];
			tab[b] = r;
		}
	}
	free(m->tab);
	m->tab = tab;
	m->mask = n - 1;
}

int
disk_rmap_add(struct disk_rmap *m, const struct cfs_id128 *id, uint64_t req, uint64_t ver,
	      uint64_t at)
{
	struct disk_rm *r = disk_rmap_find(m, id, req);
	uint32_t b;

	if (r != NULL) {
		/* The same request removed the chunk again (it cannot, but then
		 * the newer commit is the answer). Its place in the order stays:
		 * at worst it outlives its time until the records before it go. */
		r->ver = ver;
		r->at = at;
		return 0;
	}
	if (m->tab == NULL || m->count > m->mask)
		rm_grow(m);
	if (m->tab == NULL)
		return -ENOMEM;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->id = *id;
	r->req = req;
	r->ver = ver;
	r->at = at;
	r->seq = ++m->seq;
	b = rm_bucket(m, id, req);
	r->hnext = m->tab[b];
	m->tab[b] = r;
	*m->tail = r;
	m->tail = &r->next;
	m->count++;
	return 0;
}

void
disk_rmap_expire(struct disk_rmap *m, uint64_t cutoff)
{
	while (m->head != NULL && m->head->at <= cutoff) {
		struct disk_rm *r = m->head;
		struct disk_rm **pr = &m->tab[rm_bucket(m, &r->id, r->req)];

		while (*pr != r)
			pr = &(*pr)->hnext;
		*pr = r->hnext;
		m->head = r->next;
		if (m->head == NULL)
			m->tail = &m->head;
		if (m->mark == r)
			m->mark = NULL; /* everything before it went too */
		m->count--;
		free(r);
	}
}

/* The list is in seq order (records join at the tail, expiry pops the head),
 * so the first record after *cursor is found from the head when the mark
 * (where the last page ended) is gone: expiry took it and everything before
 * it, and the skip is short. */
unsigned
disk_rmap_list(struct disk_rmap *m, uint64_t *cursor, struct disk_removed_rec *out, unsigned max,
	       bool *more)
{
	struct disk_rm *r;
	unsigned n = 0;

	if (*cursor != 0 && m->mark != NULL && m->mark->seq == *cursor)
		r = m->mark->next;
	else
		for (r = m->head; r != NULL && r->seq <= *cursor; r = r->next)
			;
	for (; r != NULL && n < max; r = r->next) {
		out[n++] = (struct disk_removed_rec){
			.id = r->id, .req = r->req, .ver = r->ver, .at = r->at};
		m->mark = r;
		*cursor = r->seq;
	}
	*more = r != NULL;
	return n;
}

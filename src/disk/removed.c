// SPDX-License-Identifier: MIT
/*
 * The records of committed removes, after open (target.c loads them): their
 * expiry, the lookups of the chain's exactly-once memory (disk_removed_find),
 * the walk a resync pages through (disk_removed_list), and the adoption of
 * records made on another target (disk_removed_adopt), written to the index
 * by the helper thread in its next group commit like any row.
 */
#include <errno.h>
#include <stdlib.h>

#define RT_LOG_SUBSYS "disk"
#include "disk/disk_internal.h"

/* An adoption on its way through the helper thread; recs[] is what it takes. */
struct disk_adopt {
	struct disk_sitem si;
	disk_adopt_fn cb;
	void *cb_arg;
	struct disk_removed_rec recs[];
};

/* Wall-clock time: a record must keep its age across a restart. A clock
 * stepped back keeps records longer; stepped forward, shorter (by the step). */
void
disk_removed_expire(struct disk_target *t)
{
	uint64_t now;

	if (t->removed.head == NULL)
		return;
	now = disk_wall_ms();
	if (now > t->removed_retention_ms)
		disk_rmap_expire(&t->removed, now - t->removed_retention_ms);
}

int
disk_removed_find(struct disk_target *t, const struct cfs_id128 *id, uint64_t req, uint64_t *tver)
{
	const struct disk_rm *r;

	if (req == 0)
		return -CFS_ENOCHUNK;
	disk_removed_expire(t);
	r = disk_rmap_find(&t->removed, id, req);
	if (r == NULL)
		return -CFS_ENOCHUNK;
	*tver = r->ver;
	return 0;
}

int
disk_removed_list(struct disk_target *t, uint64_t *cursor, struct disk_removed_rec *out,
		  unsigned max, bool *more)
{
	disk_removed_expire(t);
	return (int)disk_rmap_list(&t->removed, cursor, out, max, more);
}

/* Back on the loop: durable (rc 0), then in memory as well. */
static void
adopted(struct disk_target *t, struct disk_mitem *mi)
{
	struct disk_adopt *a =
		(struct disk_adopt *)((char *)mi - offsetof(struct disk_adopt, si.done));
	int rc = a->si.rc;

	for (unsigned i = 0; rc == 0 && i < a->si.nrecs; i++) {
		const struct disk_removed_rec *r = &a->recs[i];

		/* Taken meanwhile by a commit of our own: ours stays, as in
		 * the index (INSERT OR IGNORE). */
		if (disk_rmap_find(&t->removed, &r->id, r->req) == NULL)
			rc = disk_rmap_add(&t->removed, &r->id, r->req, r->ver, r->at);
	}
	/* A record missing from memory after ENOMEM is in the index: the next
	 * open has it, and the caller's retry takes it again. */
	t->ops_inflight--;
	t->cb_depth++;
	a->cb(a->cb_arg, rc);
	t->cb_depth--;
	free(a);
	disk_removed_expire(t);
}

int
disk_removed_adopt(struct disk_target *t, const struct disk_removed_rec *recs, unsigned n,
		   disk_adopt_fn cb, void *cb_arg)
{
	uint64_t now = disk_wall_ms();
	uint64_t cutoff = now > t->removed_retention_ms ? now - t->removed_retention_ms : 0;
	struct disk_adopt *a;
	unsigned k = 0;

	if (n == 0 || n > DISK_ADOPT_MAX || cb == NULL)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		if (recs[i].req == 0)
			return -EINVAL;
	if (t->closing)
		return -CFS_ENOTSERVING;
	if (__atomic_load_n(&t->index_failed, __ATOMIC_ACQUIRE))
		return -EIO;
	a = malloc(sizeof(*a) + n * sizeof(a->recs[0]));
	if (a == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		if (recs[i].at != 0 && recs[i].at <= cutoff)
			continue;
		if (disk_rmap_find(&t->removed, &recs[i].id, recs[i].req) != NULL)
			continue;
		a->recs[k] = recs[i];
		/* A time ahead of ours (a peer's clock) would hold the record,
		 * and every one taken after it, until then: now at most. */
		if (a->recs[k].at == 0 || a->recs[k].at > now)
			a->recs[k].at = now;
		k++;
	}
	a->si = (struct disk_sitem){.kind = DISK_SI_ADOPT,
				    .sync_cls = -1,
				    .recs = a->recs,
				    .nrecs = k,
				    .done.fn = adopted};
	a->cb = cb;
	a->cb_arg = cb_arg;
	t->ops_inflight++;
	if (k == 0)
		disk_mbox_post(t, &a->si.done); /* nothing to write; answered from the loop */
	else
		disk_sync_push(t, &a->si);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The helper thread of a target: group commit. The loop queues index updates
 * (one per mutation, after its data write completed) and file growth; the
 * thread takes everything queued at once, fdatasyncs the data files the batch
 * wrote (skipped when writes carry RWF_DSYNC), applies all rows in one SQLite
 * transaction (synchronous=FULL: durable when COMMIT returns) and posts the
 * batch back to the loop through an ev_async. While it syncs, the next batch
 * accumulates, so the number of fdatasyncs and commits per write falls as the
 * load rises. The loop never blocks on the disk: it only takes the mutex to
 * hand items over and to collect them. Each transaction also drops the
 * records of committed removes whose retention passed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* fallocate */
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RT_LOG_SUBSYS "disk"
#include "disk/disk_internal.h"

void
disk_mbox_post(struct disk_target *t, struct disk_mitem *mi)
{
	bool wake;

	mi->next = NULL;
	pthread_mutex_lock(&t->lock);
	wake = t->mb_head == NULL;
	*t->mb_tail = mi;
	t->mb_tail = &mi->next;
	pthread_mutex_unlock(&t->lock);
	if (wake)
		ev_async_send(t->ev, &t->wake);
}

void
disk_mbox_drain(struct disk_target *t)
{
	struct disk_mitem *mi;

	pthread_mutex_lock(&t->lock);
	mi = t->mb_head;
	t->mb_head = NULL;
	t->mb_tail = &t->mb_head;
	pthread_mutex_unlock(&t->lock);
	while (mi != NULL) {
		struct disk_mitem *next = mi->next;

		mi->fn(t, mi);
		mi = next;
	}
}

void
disk_sync_push(struct disk_target *t, struct disk_sitem *si)
{
	bool wake;

	si->next = NULL;
	pthread_mutex_lock(&t->lock);
	wake = t->sq_head == NULL;
	*t->sq_tail = si;
	t->sq_tail = &si->next;
	if (wake)
		pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

/* Make the file at least `size` bytes long, never shorter: a step may refill
 * holes inside the file (slots.c), where cutting it at the step's end would
 * drop every slot above, committed ones included. */
static int
extend_to(int fd, uint64_t size)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return -errno;
	if ((uint64_t)st.st_size >= size)
		return 0;
	return ftruncate(fd, (off_t)size) == 0 ? 0 : -errno;
}

static int
do_grow(struct disk_target *t, struct disk_sitem *si)
{
	int fd = t->cls[si->cls].fd;
	int rc = disk_index_reserve_restore(&t->ix); /* the index's room first */

	if (rc != 0) {
		si->holes_kept = si->refill; /* not touched */
		return rc;
	}
	if (fallocate(fd, 0, (off_t)si->off, (off_t)si->len) != 0) {
		rc = -errno;
		if (rc == -EOPNOTSUPP) /* no fallocate: size now, blocks on first write */
			rc = extend_to(fd, si->off + si->len);
		/* A full file system may have given part of the run: punched again,
		 * the run is all holes as the loop knows it, and the loop can make
		 * room elsewhere and try again. The punch (up to a millisecond)
		 * delays the commits queued behind it; it comes only with a full
		 * file system. */
		else if (si->refill)
			si->holes_kept = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						   (off_t)si->off, (off_t)si->len) == 0;
		/* At the end of the file, what it took in part (and the size it
		 * grew to) is cut off again: the loop takes the step back, and the
		 * file must not hold more than the slots it counts. */
		else if (ftruncate(fd, (off_t)si->off) != 0)
			RT_ERR(-errno, "target=%u cls=%u: cut back a failed growth", t->id,
			       t->cls[si->cls].size);
	}
	return rc;
}

/* The helper thread's own clock, for the time it spends syncing (stats). */
static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One transaction with the batch's rows; rolled back on error. The records
 * of committed removes past their retention leave in it too (index.c): no
 * transaction (and no WAL sync) of their own, and none at all while the
 * oldest record is young. */
static int
index_apply(struct disk_target *t, struct disk_sitem *batch, bool *at_commit)
{
	uint64_t now = disk_wall_ms();
	uint64_t cutoff = now > t->removed_retention_ms ? now - t->removed_retention_ms : 0;
	bool purge = cutoff != 0 && t->ix.rm_oldest != 0 && t->ix.rm_oldest <= cutoff;
	int rc = disk_index_begin(&t->ix);

	for (struct disk_sitem *si = batch; si != NULL && rc == 0; si = si->next) {
		if (si->kind == DISK_SI_ROW && si->rc == 0)
			rc = disk_index_put(&t->ix, &si->row);
		else if (si->kind == DISK_SI_ADOPT && si->rc == 0)
			rc = disk_index_adopt_removed(&t->ix, si->recs, si->nrecs);
	}
	if (rc == 0 && purge)
		rc = disk_index_purge_removed(&t->ix, cutoff);
	if (rc == 0) {
		rc = disk_index_commit(&t->ix);
		*at_commit = rc != 0;
	} else {
		disk_index_rollback(&t->ix);
	}
	if (rc == 0 && purge)
		disk_index_removed_oldest(&t->ix);
	return rc;
}

/* Durably apply the rows of a batch: data first, index after, so an index
 * entry never points at bytes that could still be lost. Two device cache
 * flushes, always: the data files' fdatasync, then the commit's sync of the
 * WAL. One would make both durable at its end, but not in order: a disk
 * losing power in the middle of it may keep the WAL's new row and not the
 * bytes it points at, and the version that row replaced is then lost too. */
static void
commit_rows(struct disk_target *t, struct disk_sitem *batch, unsigned n)
{
	bool synced[DISK_NCLASS] = {false};
	uint64_t t0 = mono_ns(), t1;
	bool at_commit = false;
	int rc = 0;

	for (struct disk_sitem *si = batch; si != NULL && rc == 0; si = si->next) {
		if (si->kind != DISK_SI_ROW || si->rc != 0 || si->sync_cls < 0 ||
		    synced[si->sync_cls])
			continue;
		synced[si->sync_cls] = true;
		if (fdatasync(t->cls[si->sync_cls].fd) != 0) {
			rc = -errno;
			RT_ERR(rc, "target=%u fdatasync cls=%u", t->id, t->cls[si->sync_cls].size);
		}
	}
	t1 = mono_ns();
	if (rc == 0) {
		rc = index_apply(t, batch, &at_commit);
		/* The file system is full: the index gets its reserve (index.c)
		 * and the batch, removals that make room among it, goes in after
		 * all. (Only here: a failed data sync must fail the batch.) */
		if (rc == -ENOSPC && disk_index_reserve_spend(&t->ix) == 0) {
			RT_WARN("target=%u: file system full: the index used its reserve; "
				"data space waits until the reserve is back",
				t->id);
			rc = index_apply(t, batch, &at_commit);
		}
	}
	/* Spent, the reserve comes back as soon as there is room again (not only
	 * when data grows: writes into freed slots never do). */
	if (rc == 0 && t->ix.reserve_spent && disk_index_reserve_restore(&t->ix) == 0)
		RT_INFO("target=%u: the index reserve is back", t->id);
	if (at_commit && rc != 0 && rc != -ENOSPC) {
		/* COMMIT itself failed: its frames may be in the WAL, and the
		 * transaction may come back at the next open (see index_failed).
		 * Earlier steps roll back and leave nothing behind. */
		if (!__atomic_exchange_n(&t->index_failed, true, __ATOMIC_ACQ_REL))
			RT_ERR(rc, "target=%u: index commit failed; writes refused until the "
				   "target is opened again",
			       t->id);
	}
	/* One failure fails the whole transaction: every row of it reports it. */
	for (struct disk_sitem *si = batch; si != NULL; si = si->next)
		if (si->kind != DISK_SI_GROW && si->rc == 0)
			si->rc = rc;
	pthread_mutex_lock(&t->lock);
	t->commits++;
	t->commit_items += n;
	t->fdatasync_ns += t1 - t0;
	t->commit_ns += mono_ns() - t1;
	pthread_mutex_unlock(&t->lock);
}

/* Hand a processed batch back to the loop with one lock and one wake-up. */
static void
post_batch(struct disk_target *t, struct disk_sitem *batch)
{
	struct disk_mitem *head = NULL, **tail = &head;
	bool wake;

	for (struct disk_sitem *si = batch; si != NULL; si = si->next) {
		si->done.next = NULL;
		*tail = &si->done;
		tail = &si->done.next;
	}
	pthread_mutex_lock(&t->lock);
	wake = t->mb_head == NULL;
	*t->mb_tail = head;
	t->mb_tail = tail;
	pthread_mutex_unlock(&t->lock);
	if (wake)
		ev_async_send(t->ev, &t->wake);
}

static void *
sync_main(void *arg)
{
	struct disk_target *t = arg;

	for (;;) {
		struct disk_sitem *batch, *si;
		unsigned nrows = 0;

		pthread_mutex_lock(&t->lock);
		while (t->sq_head == NULL && !t->stop)
			pthread_cond_wait(&t->cond, &t->lock);
		batch = t->sq_head;
		t->sq_head = NULL;
		t->sq_tail = &t->sq_head;
		pthread_mutex_unlock(&t->lock);
		if (batch == NULL)
			break; /* stop with nothing left */

		for (si = batch; si != NULL; si = si->next) {
			if (si->kind == DISK_SI_GROW)
				si->rc = do_grow(t, si);
			else if (si->rc == 0)
				nrows++;
		}
		if (nrows > 0)
			commit_rows(t, batch, nrows);
		post_batch(t, batch);
	}
	return NULL;
}

int
disk_sync_start(struct disk_target *t)
{
	int rc = pthread_create(&t->thread, NULL, sync_main, t);

	if (rc != 0)
		return -rc;
	t->thread_started = true;
	return 0;
}

void
disk_sync_stop(struct disk_target *t)
{
	if (!t->thread_started)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	t->thread_started = false;
}

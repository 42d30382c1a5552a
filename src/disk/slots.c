/* SPDX-License-Identifier: MIT */
/*
 * Size classes, data files and slot allocation of a target. Each class has one
 * data file of fixed-size slots. Which slots are in use is never stored: it is
 * derived from the index at open (a slot is used when a row references it),
 * so a crash can neither leak a slot nor hand one out twice. In memory a
 * bitmap per class also covers slots of operations in flight and freed slots
 * in quarantine:
 *  - a slot freed by a durable index change (old version after a commit, a
 *    removed chunk) becomes reusable only after every read that started
 *    before the change has finished (generation counter over the reads in
 *    flight), so a read never sees another chunk's bytes under its own CRCs;
 *  - a slot of a failed operation is freed at once (nothing could see it).
 * Data files grow by extents (grow_bytes) on the helper thread (fallocate),
 * within the capacity limit; extents of small classes are then zero-filled
 * through the aio engine because writing into never-written (unwritten)
 * extents costs about twice as much as overwriting (see README.md).
 *
 * A second bitmap marks "stable" slots: blocks allocated, written, and their
 * mapping committed by the file system. Overwriting a stable slot changes no
 * file system metadata, so the device cache flush that the index commit
 * issues (fdatasync of the SQLite WAL) also makes the slot's new content
 * durable: the group commit then skips the data file's fdatasync, one device
 * flush per batch instead of two. Writes into other slots (never written,
 * unwritten extents) keep the data fdatasync, after which they are stable.
 * At open, FIEMAP tells which slots are stable (after an fdatasync that
 * commits any mapping change a crashed process left in the journal).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_DIRECT */
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define RT_LOG_SUBSYS "disk"
#include "disk/disk_internal.h"

const uint32_t disk_class_size[DISK_NCLASS] = {
	4u << 10, 16u << 10, 64u << 10, 256u << 10, 1u << 20, 4u << 20, 16u << 20, 64u << 20,
};

/* Classes up to this size get zero-filled extents in DISK_PREP_AUTO: measured
 * (README.md) that first writes into unwritten extents cost 2.1x at 4 KiB,
 * 1.5x at 16 KiB, 1.2-1.3x at 64-256 KiB and nothing measurable at 1 MiB. */
#define ZERO_FILL_MAX (256u << 10)

int
disk_class_of(uint32_t chunk_size)
{
	for (int i = 0; i < DISK_NCLASS; i++)
		if (chunk_size <= disk_class_size[i])
			return i;
	return -1;
}

static void
class_name(char *buf, size_t n, int i)
{
	uint32_t s = disk_class_size[i];

	if (s >= (1u << 20))
		snprintf(buf, n, "slots-%uM.dat", s >> 20);
	else
		snprintf(buf, n, "slots-%uK.dat", s >> 10);
}

static int
bits_reserve(struct disk_class *k, uint32_t nslots)
{
	uint32_t words, oldwords;
	uint64_t *nb, *ns;

	if (nslots <= k->nbits)
		return 0;
	words = (nslots + 63) / 64;
	oldwords = k->nbits / 64;
	nb = realloc(k->bits, (size_t)words * sizeof(*nb));
	if (nb == NULL)
		return -ENOMEM;
	k->bits = nb;
	ns = realloc(k->stable, (size_t)words * sizeof(*ns));
	if (ns == NULL)
		return -ENOMEM;
	k->stable = ns;
	memset(nb + oldwords, 0, (words - oldwords) * sizeof(*nb));
	memset(ns + oldwords, 0, (words - oldwords) * sizeof(*ns));
	k->nbits = words * 64;
	return 0;
}

void
disk_slots_set_stable(struct disk_class *k, uint32_t first, uint32_t n)
{
	for (uint32_t s = first; s < first + n && s < k->nbits; s++)
		k->stable[s / 64] |= 1ull << (s % 64);
}

/* Mark the slots lying wholly inside written, mapped extents. Without FIEMAP
 * every slot stays unstable, which only costs fdatasyncs. */
static void
scan_stable(struct disk_class *k)
{
	enum { NEXT = 128 };
	size_t fmsize = sizeof(struct fiemap) + NEXT * sizeof(struct fiemap_extent);
	struct fiemap *fm = malloc(fmsize);
	uint64_t end = (uint64_t)k->nfile * k->size, pos = 0;
	uint64_t run_start = 0, run_end = 0; /* current run of adjacent written extents */

	if (fm == NULL || k->nfile == 0 || fdatasync(k->fd) != 0)
		goto out;
	while (pos < end) {
		bool last = false;

		memset(fm, 0, fmsize); /* all of it: valgrind does not model FIEMAP's output */
		fm->fm_start = pos;
		fm->fm_length = end - pos;
		fm->fm_extent_count = NEXT;
		if (ioctl(k->fd, FS_IOC_FIEMAP, fm) != 0 || fm->fm_mapped_extents == 0)
			break;
		for (uint32_t i = 0; i < fm->fm_mapped_extents; i++) {
			const struct fiemap_extent *x = &fm->fm_extents[i];
			bool written =
				!(x->fe_flags & (FIEMAP_EXTENT_UNWRITTEN | FIEMAP_EXTENT_UNKNOWN |
						 FIEMAP_EXTENT_DELALLOC));

			if (written && x->fe_logical == run_end) {
				run_end = x->fe_logical + x->fe_length;
			} else {
				if (run_end > run_start) {
					uint64_t a = (run_start + k->size - 1) / k->size;
					uint64_t b = run_end / k->size;

					if (b > a)
						disk_slots_set_stable(k, (uint32_t)a,
								      (uint32_t)(b - a));
				}
				run_start = x->fe_logical;
				run_end = written ? x->fe_logical + x->fe_length : x->fe_logical;
			}
			pos = x->fe_logical + x->fe_length;
			last = x->fe_flags & FIEMAP_EXTENT_LAST;
		}
		if (last)
			break;
	}
	if (run_end > run_start) {
		uint64_t a = (run_start + k->size - 1) / k->size;
		uint64_t b = run_end / k->size;

		if (b > a)
			disk_slots_set_stable(k, (uint32_t)a, (uint32_t)(b - a));
	}
out:
	free(fm);
}

int
disk_slots_open(struct disk_target *t)
{
	char name[64];
	char *p;
	int rc = 0;

	p = malloc(strlen(t->path) + sizeof(name) + 2);
	if (p == NULL)
		return -ENOMEM;
	for (int i = 0; i < DISK_NCLASS; i++) {
		struct disk_class *k = &t->cls[i];
		struct stat stb;

		k->size = disk_class_size[i];
		k->waitq_tail = &k->waitq;
		k->zero = t->prep == DISK_PREP_ZERO ||
			  (t->prep == DISK_PREP_AUTO && k->size <= ZERO_FILL_MAX);
		class_name(name, sizeof(name), i);
		sprintf(p, "%s/%s", t->path, name);
		k->fd = open(p, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
		if (k->fd < 0) {
			rc = -errno;
			RT_ERR(rc, "open %s", p);
			goto out;
		}
		if (fstat(k->fd, &stb) != 0) {
			rc = -errno;
			goto out;
		}
		/* A partial last slot (growth cut short) is not usable. */
		k->nslots = k->nfile = (uint32_t)((uint64_t)stb.st_size / k->size);
		t->file_bytes += (uint64_t)k->nfile * k->size;
		rc = bits_reserve(k, k->nfile);
		if (rc != 0)
			goto out;
		if (t->sync_mode == DISK_SYNC_FDATASYNC)
			scan_stable(k);
	}
out:
	free(p);
	return rc;
}

void
disk_slots_close(struct disk_target *t)
{
	for (int i = 0; i < DISK_NCLASS; i++) {
		struct disk_class *k = &t->cls[i];

		if (k->fd > 0)
			close(k->fd);
		k->fd = -1;
		free(k->bits);
		free(k->stable);
		k->bits = NULL;
		k->stable = NULL;
	}
	while (t->quar_head != NULL) {
		struct disk_quar *q = t->quar_head;

		t->quar_head = q->next;
		free(q);
	}
}

static void
bit_set(struct disk_class *k, uint32_t slot)
{
	k->bits[slot / 64] |= 1ull << (slot % 64);
	k->nused++;
}

static void
bit_clear(struct disk_class *k, uint32_t slot)
{
	k->bits[slot / 64] &= ~(1ull << (slot % 64));
	k->nused--;
	if (slot < k->hint)
		k->hint = slot;
}

int
disk_slot_mark(struct disk_target *t, uint8_t cls, uint32_t slot)
{
	struct disk_class *k = &t->cls[cls];

	if (slot >= k->nfile)
		return -ERANGE;
	if (disk_slot_isset(k, slot))
		return -EEXIST;
	bit_set(k, slot);
	return 0;
}

/* First clear bit in [from, limit), or limit. */
static uint32_t
bits_find_free(const struct disk_class *k, uint32_t from, uint32_t limit)
{
	for (uint32_t w = from / 64; w * 64 < limit; w++) {
		uint64_t word = k->bits[w];

		if (w == from / 64)
			word |= (1ull << (from % 64)) - 1; /* ignore bits below from */
		if (~word != 0) {
			uint32_t s = w * 64 + (uint32_t)__builtin_ctzll(~word);

			return s < limit ? s : limit;
		}
	}
	return limit;
}

static void grow_start(struct disk_target *t, uint8_t cls);

/* Slots a growth step adds to class k, within the capacity left. */
static uint32_t
grow_slots(const struct disk_target *t, const struct disk_class *k)
{
	uint64_t want = t->grow_bytes < k->size ? k->size : t->grow_bytes;
	uint64_t left = t->capacity > t->file_bytes ? t->capacity - t->file_bytes : 0;

	if (want > left)
		want = left;
	return (uint32_t)(want / k->size);
}

static void
maybe_grow(struct disk_target *t, uint8_t cls)
{
	struct disk_class *k = &t->cls[cls];
	uint32_t step, spare;

	if (k->growing || k->grow_failed || t->closing)
		return;
	step = grow_slots(t, k);
	if (step == 0)
		return;
	/* Keep a quarter of a growth step free ahead of the writers, so they rarely
	 * wait for a file to grow. */
	spare = k->nfile - (k->nused < k->nfile ? k->nused : k->nfile);
	if (spare <= step / 4)
		grow_start(t, cls);
}

int
disk_slot_alloc(struct disk_target *t, uint8_t cls, struct disk_op *op, uint32_t *slot)
{
	struct disk_class *k = &t->cls[cls];
	uint32_t s;

	/* Parked operations go first, in order. A new writer with nobody parked
	 * may try growing again after a failure (the file system may have room
	 * now); parked ones fail instead of retrying forever. */
	if (k->waitq == NULL) {
		k->grow_failed = false;
		s = bits_find_free(k, k->hint, k->nslots);
		if (s == k->nslots && k->hint > 0)
			s = bits_find_free(k, 0, k->nslots);
		if (s < k->nslots) {
			bit_set(k, s);
			k->hint = s + 1;
			*slot = s;
			maybe_grow(t, cls);
			return 0;
		}
	}
	maybe_grow(t, cls);
	if (!k->growing && k->nquar == 0 && k->waitq == NULL)
		return -ENOSPC;
	op->next = NULL;
	*k->waitq_tail = op;
	k->waitq_tail = &op->next;
	return -EAGAIN;
}

void
disk_slot_free_now(struct disk_target *t, uint8_t cls, uint32_t slot)
{
	bit_clear(&t->cls[cls], slot);
}

static void
quar_release(struct disk_target *t)
{
	uint64_t oldest = t->rt_head != NULL ? t->rt_head->gen : UINT64_MAX;

	while (t->quar_head != NULL && t->quar_head->gen < oldest) {
		struct disk_quar *q = t->quar_head;

		t->quar_head = q->next;
		if (t->quar_head == NULL)
			t->quar_tail = &t->quar_head;
		t->cls[q->cls].nquar--;
		bit_clear(&t->cls[q->cls], q->slot);
		free(q);
	}
}

void
disk_slot_free_visible(struct disk_target *t, uint8_t cls, uint32_t slot)
{
	struct disk_quar *q;

	if (t->rt_head == NULL) {
		bit_clear(&t->cls[cls], slot);
		return;
	}
	q = malloc(sizeof(*q));
	if (q == NULL) {
		/* Cannot remember it: keeping the slot used leaks it until the next
		 * open, which is safe; reusing it under a read would not be. */
		RT_ERRLOG("target=%u quarantine: out of memory, slot cls=%u slot=%u held", t->id,
			  cls, slot);
		return;
	}
	q->next = NULL;
	q->gen = t->rgen++;
	q->cls = cls;
	q->slot = slot;
	*t->quar_tail = q;
	t->quar_tail = &q->next;
	t->cls[cls].nquar++;
}

void
disk_rtrack_start(struct disk_target *t, struct disk_rtrack *r)
{
	r->gen = t->rgen;
	r->next = NULL;
	r->prev = t->rt_tail;
	if (t->rt_tail != NULL)
		t->rt_tail->next = r;
	else
		t->rt_head = r;
	t->rt_tail = r;
}

void
disk_rtrack_end(struct disk_target *t, struct disk_rtrack *r)
{
	bool was_head = r == t->rt_head;

	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		t->rt_head = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	else
		t->rt_tail = r->prev;
	if (was_head && t->quar_head != NULL) {
		quar_release(t);
		disk_slots_kick(t); /* writers may be waiting for those slots */
	}
}

void
disk_slots_kick(struct disk_target *t)
{
	for (int i = 0; i < DISK_NCLASS; i++) {
		struct disk_class *k = &t->cls[i];

		while (k->waitq != NULL) {
			struct disk_op *op = k->waitq;
			uint32_t s = bits_find_free(k, 0, k->nslots);

			if (s == k->nslots) {
				maybe_grow(t, (uint8_t)i);
				if (k->growing || k->nquar > 0)
					break;
				/* Nothing free and nothing coming: fail the waiters. */
				k->waitq = op->next;
				if (k->waitq == NULL)
					k->waitq_tail = &k->waitq;
				disk_op_slot_failed(op, -ENOSPC);
				continue;
			}
			k->waitq = op->next;
			if (k->waitq == NULL)
				k->waitq_tail = &k->waitq;
			bit_set(k, s);
			op->nv.slot = s;
			disk_op_slot_ready(op);
		}
	}
}

/* ------------------------------------------------------------------ growth */

struct grow {
	struct disk_sitem si;
	struct disk_target *t;
};

static void zero_next(struct disk_target *t, struct disk_class *k);

/* The zero-filled extent becomes stable once an fdatasync has committed its
 * unwritten-to-written conversion. */
struct stab {
	struct disk_sitem si;
};

static void
stabilize_done(struct disk_target *t, struct disk_mitem *mi)
{
	struct stab *s = (struct stab *)((char *)mi - offsetof(struct stab, si.done));
	struct disk_class *k = &t->cls[s->si.cls];

	if (s->si.rc == 0)
		disk_slots_set_stable(k, (uint32_t)(s->si.off / k->size),
				      (uint32_t)(s->si.len / k->size));
	t->bg_inflight--;
	free(s);
}

static void
stabilize(struct disk_target *t, struct disk_class *k, uint64_t from, uint64_t to)
{
	struct stab *s;

	if (t->sync_mode != DISK_SYNC_FDATASYNC || to <= from || t->closing)
		return;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return; /* the slots stay unstable: more fdatasyncs, nothing worse */
	s->si.kind = DISK_SI_FSYNC;
	s->si.sync_cls = (int8_t)(k - t->cls);
	s->si.cls = (uint8_t)(k - t->cls);
	s->si.off = from;
	s->si.len = to - from;
	s->si.done.fn = stabilize_done;
	t->bg_inflight++;
	disk_sync_push(t, &s->si);
}

static void
grow_finish(struct disk_target *t, struct disk_class *k)
{
	k->growing = false;
	t->bg_inflight--;
	disk_slots_kick(t);
}

static void
zero_done(struct disk_io *io, long res)
{
	struct disk_target *t = io->cb_arg;
	/* The io is embedded in its class. */
	struct disk_class *k = (struct disk_class *)((char *)io - offsetof(struct disk_class, zio));

	bool whole = res == (long)io->len && k->zero_next >= k->zero_end;

	k->zero_busy = false;
	if (t->closing && res == (long)io->len) {
		/* Do not make close wait for the rest: those slots are usable as
		 * they are (fallocated), only slower to write the first time. */
		k->zero_next = k->zero_end;
	} else if (res != (long)io->len) {
		/* The extent stays usable (fallocated): only the overwrite speed-up is
		 * lost for its remaining slots. */
		RT_WARN("target=%u zero-fill cls=%u off=%lu: %ld, leaving the rest unwritten",
			t->id, k->size, (unsigned long)io->off, res);
		k->zero_next = k->zero_end;
	}
	k->nslots = (uint32_t)(k->zero_next / k->size);
	if (k->zero_next >= k->zero_end) {
		k->nslots = k->nfile;
		if (whole) /* every byte of the extent written: stable once synced */
			stabilize(t, k, k->zero_start, k->zero_end);
		grow_finish(t, k);
		return;
	}
	disk_slots_kick(t);
	zero_next(t, k);
}

static void
zero_next(struct disk_target *t, struct disk_class *k)
{
	uint64_t n = k->zero_end - k->zero_next;

	if (n > DISK_ZERO_CHUNK)
		n = DISK_ZERO_CHUNK;
	k->zero_busy = true;
	k->zio = (struct disk_io){
		.fd = k->fd,
		.op = DISK_IO_WRITE,
		.buf = t->zero_buf,
		.len = (uint32_t)n,
		.off = k->zero_next,
		.cb = zero_done,
		.cb_arg = t,
	};
	k->zero_next += n;
	t->e->ops->submit(t->e, &k->zio);
}

static void
grow_done(struct disk_target *t, struct disk_mitem *mi)
{
	struct grow *g = (struct grow *)((char *)mi - offsetof(struct grow, si.done));
	struct disk_class *k = &t->cls[g->si.cls];
	uint32_t added = (uint32_t)(g->si.len / k->size);
	int rc = g->si.rc;

	if (rc != 0) {
		RT_ERR(rc, "target=%u grow cls=%u by %u slots", t->id, k->size, added);
		k->grow_failed = true;
		k->nfile -= added;
		t->file_bytes -= g->si.len;
		free(g);
		grow_finish(t, k);
		return;
	}
	if (k->zero && t->zero_buf != NULL) {
		k->zero_start = k->zero_next = g->si.off;
		k->zero_end = g->si.off + g->si.len;
		free(g);
		zero_next(t, k);
		return;
	}
	k->nslots = k->nfile;
	free(g);
	grow_finish(t, k);
}

static void
grow_start(struct disk_target *t, uint8_t cls)
{
	struct disk_class *k = &t->cls[cls];
	uint32_t step = grow_slots(t, k);
	struct grow *g;

	if (step == 0)
		return;
	if (bits_reserve(k, k->nfile + step) != 0)
		return;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return;
	g->t = t;
	g->si.kind = DISK_SI_GROW;
	g->si.sync_cls = -1;
	g->si.cls = cls;
	g->si.off = (uint64_t)k->nfile * k->size;
	g->si.len = (uint64_t)step * k->size;
	g->si.done.fn = grow_done;
	k->nfile += step;
	t->file_bytes += g->si.len;
	k->growing = true;
	t->bg_inflight++;
	disk_sync_push(t, &g->si);
}

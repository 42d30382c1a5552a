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
 * Space moves between classes ("reclaim", README.md): the capacity limits
 * the bytes the data files hold, not their sizes. A class that needs room
 * while the files hold the whole capacity starts a reclaim job that gives
 * free slots of other classes back to the file system: a free tail of a
 * file is cut off (ftruncate), free slots inside are punched out
 * (FALLOC_FL_PUNCH_HOLE); the room becomes a growth step of the class that
 * needed it. A punched slot is a "hole": free, unprepared; its class
 * prepares it again like a new extent (fallocate, zero-fill) before handing
 * it out. The job's syscalls wait for the direct I/O
 * in flight on the file and for the journal (measured 0.4-0.9 ms per punch,
 * ~25 ms for a 56 MiB truncate), so they run on a short-lived thread of
 * their own, neither on the loop nor in front of the group commit. Which
 * slots are used stays derived from the index: a job only touches slots no
 * row references, and holes are found again by FIEMAP at open.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_DIRECT */
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/falloc.h>
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
	uint64_t *nb, *nh;

	if (nslots <= k->nbits)
		return 0;
	words = (nslots + 63) / 64;
	oldwords = k->nbits / 64;
	nb = realloc(k->bits, (size_t)words * sizeof(*nb));
	if (nb == NULL)
		return -ENOMEM;
	k->bits = nb;
	nh = realloc(k->holes, (size_t)words * sizeof(*nh));
	if (nh == NULL)
		return -ENOMEM;
	k->holes = nh;
	memset(nb + oldwords, 0, (words - oldwords) * sizeof(*nb));
	memset(nh + oldwords, 0, (words - oldwords) * sizeof(*nh));
	k->nbits = words * 64;
	return 0;
}

static void
map_set(uint64_t *map, uint32_t first, uint32_t n, bool on)
{
	for (uint32_t s = first; s < first + n; s++) {
		if (on)
			map[s / 64] |= 1ull << (s % 64);
		else
			map[s / 64] &= ~(1ull << (s % 64));
	}
}

static uint32_t
holes_in(const struct disk_class *k, uint32_t first, uint32_t n)
{
	uint32_t c = 0;

	for (uint32_t s = first; s < first + n; s++)
		c += disk_slot_hole(k, s);
	return c;
}

/* Walk the extents of class k's file, FIEMAP_BATCH at a time, calling fn
 * for each; 0, or -errno when the file system cannot tell. */
#define FIEMAP_BATCH 128
static int
walk_extents(const struct disk_class *k, void (*fn)(void *arg, const struct fiemap_extent *x),
	     void *arg)
{
	size_t fmsize = sizeof(struct fiemap) + FIEMAP_BATCH * sizeof(struct fiemap_extent);
	struct fiemap *fm = malloc(fmsize);
	uint64_t end = (uint64_t)k->nfile * k->size, pos = 0;
	int rc = 0;

	if (fm == NULL)
		return -ENOMEM;
	while (pos < end) {
		bool last = false;

		memset(fm, 0, fmsize); /* all of it: valgrind does not model FIEMAP's output */
		fm->fm_start = pos;
		fm->fm_length = end - pos;
		fm->fm_extent_count = FIEMAP_BATCH;
		if (ioctl(k->fd, FS_IOC_FIEMAP, fm) != 0) {
			rc = -errno;
			break;
		}
		if (fm->fm_mapped_extents == 0)
			break;
		for (uint32_t i = 0; i < fm->fm_mapped_extents; i++) {
			const struct fiemap_extent *x = &fm->fm_extents[i];

			fn(arg, x);
			pos = x->fe_logical + x->fe_length;
			last = x->fe_flags & FIEMAP_EXTENT_LAST;
		}
		if (last)
			break;
	}
	free(fm);
	return rc;
}

struct scan {
	struct disk_class *k;
	uint64_t *mapped; /* slots with at least one mapped byte */
};

static void
scan_extent(void *arg, const struct fiemap_extent *x)
{
	struct scan *sc = arg;
	const struct disk_class *k = sc->k;
	uint64_t first = x->fe_logical / k->size;
	uint64_t last = (x->fe_logical + x->fe_length - 1) / k->size;

	if (x->fe_length == 0)
		return;
	if (last >= k->nfile)
		last = k->nfile - 1;
	if (first <= last)
		map_set(sc->mapped, (uint32_t)first, (uint32_t)(last - first + 1), true);
}

/* At open: mark the slots without any mapped byte as holes (punched by an
 * earlier reclaim). Without FIEMAP none is a hole (the space is counted as
 * held). */
static void
scan_extents(struct disk_class *k)
{
	struct scan sc = {.k = k};
	uint32_t words = (k->nfile + 63) / 64;

	if (k->nfile == 0)
		return;
	sc.mapped = calloc(words, sizeof(uint64_t));
	if (sc.mapped == NULL)
		return;
	if (walk_extents(k, scan_extent, &sc) == 0) {
		for (uint32_t s = 0; s < k->nfile; s++) {
			if (!((sc.mapped[s / 64] >> (s % 64)) & 1)) {
				k->holes[s / 64] |= 1ull << (s % 64);
				k->nholes++;
			}
		}
	}
	free(sc.mapped);
}

struct verify {
	const struct disk_class *k;
	uint32_t bad, first;
};

static void
verify_extent(void *arg, const struct fiemap_extent *x)
{
	struct verify *v = arg;
	const struct disk_class *k = v->k;
	uint64_t first = x->fe_logical / k->size;
	uint64_t last = x->fe_length ? (x->fe_logical + x->fe_length - 1) / k->size : 0;

	for (uint64_t s = first; x->fe_length && s <= last && s < k->nfile; s++) {
		if (disk_slot_hole(k, (uint32_t)s)) {
			if (v->bad++ == 0)
				v->first = (uint32_t)s;
		}
	}
}

int
disk_slots_verify_holes(struct disk_target *t, uint8_t cls, uint32_t *first)
{
	struct verify v = {.k = &t->cls[cls]};
	int rc;

	if (v.k->nholes == 0)
		return 0;
	rc = walk_extents(v.k, verify_extent, &v);
	if (rc != 0)
		return rc;
	*first = v.first;
	return (int)v.bad;
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
		rc = bits_reserve(k, k->nfile);
		if (rc != 0)
			goto out;
		scan_extents(k);
		t->file_bytes += (uint64_t)(k->nfile - k->nholes) * k->size;
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
		free(k->holes);
		k->bits = NULL;
		k->holes = NULL;
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

/* Slots that space management holds (being re-prepared or released): set in
 * the bitmap so no writer takes them, not counted as used. */
static void
resv_set(struct disk_class *k, uint32_t first, uint32_t n)
{
	map_set(k->bits, first, n, true);
}

static void
resv_clear(struct disk_class *k, uint32_t first, uint32_t n)
{
	map_set(k->bits, first, n, false);
	if (first < k->hint)
		k->hint = first;
}

int
disk_slot_mark(struct disk_target *t, uint8_t cls, uint32_t slot)
{
	struct disk_class *k = &t->cls[cls];

	if (slot >= k->nfile)
		return -ERANGE;
	if (disk_slot_isset(k, slot))
		return -EEXIST;
	if (disk_slot_hole(k, slot)) {
		/* A version lies there yet no block is mapped: its reads will fail
		 * their CRC. The slot is held like any used one. */
		RT_WARN("target=%u cls=%u slot=%u: referenced by the index, no block mapped", t->id,
			k->size, slot);
		map_set(k->holes, slot, 1, false);
		k->nholes--;
		t->file_bytes += k->size;
	}
	bit_set(k, slot);
	return 0;
}

/* First free prepared slot (neither used nor a hole) in [from, limit), or limit. */
static uint32_t
bits_find_free(const struct disk_class *k, uint32_t from, uint32_t limit)
{
	for (uint32_t w = from / 64; w * 64 < limit; w++) {
		uint64_t word = k->bits[w] | k->holes[w];

		if (w == from / 64)
			word |= (1ull << (from % 64)) - 1; /* ignore bits below from */
		if (~word != 0) {
			uint32_t s = w * 64 + (uint32_t)__builtin_ctzll(~word);

			return s < limit ? s : limit;
		}
	}
	return limit;
}

/* The lowest run of free holes, at most max long: its length (0: none). */
static uint32_t
find_hole_run(const struct disk_class *k, uint32_t max, uint32_t *first)
{
	uint32_t s = 0, n = 0;

	if (k->nholes == 0)
		return 0;
	while (s < k->nslots && !(disk_slot_hole(k, s) && !disk_slot_isset(k, s)))
		s++;
	while (s + n < k->nslots && n < max && disk_slot_hole(k, s + n) &&
	       !disk_slot_isset(k, s + n))
		n++;
	*first = s;
	return n;
}

static void prep_start(struct disk_target *t, uint8_t cls, uint32_t first, uint32_t n, bool refill);
static bool reclaim_start(struct disk_target *t, uint8_t cls, bool fs_full);

/* A reclaim job (see "reclaim" below). */
#define RECLAIM_MAX 256 /* ranges per job */

struct disk_reclaim_range {
	uint8_t cls;
	bool cut; /* ftruncate the file to `first` slots; else punch the range */
	int rc;
	uint32_t first, n;
};

struct disk_reclaim {
	struct disk_mitem done;
	struct disk_target *t;
	pthread_t thread;
	uint8_t cls; /* the class that needs room */
	unsigned n;
	struct disk_reclaim_range r[RECLAIM_MAX];
};

/* Bytes the capacity still allows the data files to take. */
static uint64_t
room(const struct disk_target *t)
{
	return t->capacity > t->file_bytes ? t->capacity - t->file_bytes : 0;
}

/* Slots a growth step adds to class k, within the room left. */
static uint32_t
grow_slots(const struct disk_target *t, const struct disk_class *k)
{
	uint64_t want = t->grow_bytes < k->size ? k->size : t->grow_bytes;
	uint64_t left = room(t);

	if (want > left)
		want = left;
	return (uint32_t)(want / k->size);
}

/* Prepare a growth step of class cls within the room left: its lowest run
 * of holes if it has some (the file keeps its size), else more file. */
static void
prepare(struct disk_target *t, uint8_t cls)
{
	struct disk_class *k = &t->cls[cls];
	uint32_t step = grow_slots(t, k), first = 0, n;

	if (step == 0)
		return;
	n = find_hole_run(k, step, &first);
	if (n > 0)
		prep_start(t, cls, first, n, true);
	else
		prep_start(t, cls, k->nfile, step, false);
}

static void
maybe_grow(struct disk_target *t, uint8_t cls)
{
	struct disk_class *k = &t->cls[cls];
	uint32_t step, spare, held;

	if (k->growing || k->shrinking || k->grow_failed || t->closing)
		return;
	/* A job releasing room for this class runs: the growth follows it (one
	 * started now could fail first, and its failure would park the class
	 * with the room on its way). */
	if (t->reclaim != NULL && t->reclaim->cls == cls)
		return;
	step = grow_slots(t, k);
	if (step == 0)
		return;
	/* Keep a quarter of a growth step free ahead of the writers, so they rarely
	 * wait for a file to grow. Holes are not ready: they do not count. */
	held = k->nused + k->nholes;
	spare = k->nfile > held ? k->nfile - held : 0;
	if (spare <= step / 4)
		prepare(t, cls);
}

/* Class cls has no free prepared slot: grow it within the room left, or
 * start releasing free slots of other classes to make room. */
static void
make_room(struct disk_target *t, uint8_t cls)
{
	struct disk_class *k = &t->cls[cls];

	if (k->growing || k->shrinking || k->grow_failed || t->closing)
		return;
	if (t->reclaim != NULL && t->reclaim->cls == cls)
		return; /* the room is being made: the growth follows the job */
	if (grow_slots(t, k) > 0)
		prepare(t, cls);
	else if (t->reclaim == NULL && !t->reclaim_failed)
		reclaim_start(t, cls, false);
}

/* Whether slots may still come to class k's waiters: its growth, a reclaim
 * job, a growth of another class (its free slots cannot be released while
 * it runs) or slots in quarantine (of any class: once free they can be
 * released for this one). Each of these ends with a kick. */
static bool
space_coming(const struct disk_target *t, const struct disk_class *k)
{
	if (k->growing || k->shrinking || t->reclaim != NULL)
		return true;
	for (int i = 0; i < DISK_NCLASS; i++)
		if (t->cls[i].nquar > 0 || t->cls[i].growing)
			return true;
	return false;
}

/* Take a free prepared slot of class cls: 0 and *slot, or -ENOSPC. */
static int
take(struct disk_target *t, uint8_t cls, uint32_t *slot)
{
	struct disk_class *k = &t->cls[cls];
	uint32_t s = bits_find_free(k, k->hint, k->nslots);

	if (s == k->nslots && k->hint > 0)
		s = bits_find_free(k, 0, k->nslots);
	if (s == k->nslots)
		return -ENOSPC;
	bit_set(k, s);
	k->hint = s + 1;
	*slot = s;
	return 0;
}

int
disk_slot_alloc(struct disk_target *t, uint8_t cls, struct disk_op *op, uint32_t *slot)
{
	struct disk_class *k = &t->cls[cls];

	/* Parked operations go first, in order. A new writer with nobody parked
	 * may try growing (or reclaiming) again after a failure (the file system
	 * may have room now); parked ones fail instead of retrying forever. */
	if (k->waitq == NULL) {
		k->grow_failed = false;
		if (take(t, cls, slot) == 0) {
			maybe_grow(t, cls);
			return 0;
		}
		t->reclaim_failed = false;
		make_room(t, cls);
		if (!space_coming(t, k))
			return -ENOSPC;
	}
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
			uint32_t s;

			if (take(t, (uint8_t)i, &s) != 0) {
				make_room(t, (uint8_t)i);
				if (space_coming(t, k))
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
			op->nv.slot = s;
			disk_op_slot_ready(op);
		}
	}
}

/* ------------------------------------------------------------------ growth */

/*
 * A growth step prepares slots [first, first + n) of a class: at the end of
 * the file (the file grows), or over a run of holes (refill: the file keeps
 * its size, the slots stay reserved until prepared). Either way: fallocate
 * on the helper thread, then zero-fill for small classes, exactly as for the
 * first extent of a class.
 */
struct grow {
	struct disk_sitem si;
	struct disk_target *t;
};

static void zero_next(struct disk_target *t, struct disk_class *k);

/* The step is over. A refilled run is prepared now; after a failure it is
 * still holes if the helper punched it again (holes_kept), else partly
 * allocated: a write there allocates the rest, and the space is counted as
 * held. */
static void
grow_finish(struct disk_target *t, struct disk_class *k, bool holes_kept)
{
	if (k->refill) {
		if (!holes_kept) {
			k->nholes -= holes_in(k, k->refill_first, k->refill_n);
			map_set(k->holes, k->refill_first, k->refill_n, false);
		}
		resv_clear(k, k->refill_first, k->refill_n);
		k->refill = false;
	}
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
	/* At the end of the file the slots become usable as the fill passes
	 * them; refilled holes when the whole run is done. */
	if (!k->refill)
		k->nslots = (uint32_t)(k->zero_next / k->size);
	if (k->zero_next >= k->zero_end) {
		if (!k->refill)
			k->nslots = k->nfile;
		grow_finish(t, k, false);
		return;
	}
	if (!k->refill)
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
		bool kept = g->si.holes_kept;

		RT_ERR(rc, "target=%u %s cls=%u by %u slots", t->id, k->refill ? "refill" : "grow",
		       k->size, added);
		if (!k->refill || kept) {
			if (!k->refill)
				k->nfile -= added;
			t->file_bytes -= g->si.len;
			/* The file system is full below the capacity: other classes'
			 * free slots can make room there too; the growth is retried
			 * when the job is done. A job that released nothing (its
			 * punches failed) starts no other: the next failure fails
			 * the waiters, instead of a job and a growth taking turns
			 * for ever over the same slots. */
			k->grow_failed = !(rc == -ENOSPC && !t->reclaim_failed &&
					   reclaim_start(t, g->si.cls, true));
		}
		free(g);
		grow_finish(t, k, kept);
		return;
	}
	if (k->zero && t->zero_buf != NULL) {
		k->zero_next = g->si.off;
		k->zero_end = g->si.off + g->si.len;
		free(g);
		zero_next(t, k);
		return;
	}
	if (!k->refill)
		k->nslots = k->nfile;
	free(g);
	grow_finish(t, k, false);
}

static void
prep_start(struct disk_target *t, uint8_t cls, uint32_t first, uint32_t n, bool refill)
{
	struct disk_class *k = &t->cls[cls];
	struct grow *g;

	if (!refill && bits_reserve(k, k->nfile + n) != 0)
		return;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return;
	g->t = t;
	g->si.kind = DISK_SI_GROW;
	g->si.sync_cls = -1;
	g->si.cls = cls;
	g->si.off = (uint64_t)first * k->size;
	g->si.len = (uint64_t)n * k->size;
	g->si.done.fn = grow_done;
	g->si.refill = refill;
	if (refill) {
		k->refill = true;
		k->refill_first = first;
		k->refill_n = n;
		resv_set(k, first, n);
	} else {
		k->nfile += n;
	}
	t->file_bytes += g->si.len;
	k->growing = true;
	t->bg_inflight++;
	disk_sync_push(t, &g->si);
}

/* ----------------------------------------------------------------- reclaim */

/*
 * A reclaim job releases free slots of other classes so that class `cls` can
 * grow: per victim, its free tail is cut off (ftruncate), then runs of free
 * prepared slots below are punched, highest first, until the job has what
 * the class needs (a growth step, at least one slot). The slots are reserved
 * in the bitmaps while the job runs; it runs on its own thread (the calls
 * block, see the top of this file); the results come back through the
 * target's mailbox. A failed range just stays free and held.
 */
static void *
reclaim_main(void *arg)
{
	struct disk_reclaim *j = arg;
	struct disk_target *t = j->t;

	for (unsigned i = 0; i < j->n; i++) {
		struct disk_reclaim_range *r = &j->r[i];
		const struct disk_class *k = &t->cls[r->cls];
		off_t off = (off_t)r->first * k->size;
		int ret;

		if (r->cut)
			ret = ftruncate(k->fd, off);
		else
			ret = fallocate(k->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
					(off_t)r->n * k->size);
		r->rc = ret == 0 ? 0 : -errno;
	}
	disk_mbox_post(t, &j->done);
	return NULL;
}

static void
reclaim_done(struct disk_target *t, struct disk_mitem *mi)
{
	struct disk_reclaim *j =
		(struct disk_reclaim *)((char *)mi - offsetof(struct disk_reclaim, done));
	uint64_t released = 0;
	uint8_t cls = j->cls;

	pthread_join(j->thread, NULL); /* it has posted: only its return is left */
	for (unsigned i = 0; i < j->n; i++) {
		struct disk_reclaim_range *r = &j->r[i];
		struct disk_class *k = &t->cls[r->cls];
		uint32_t holes = holes_in(k, r->first, r->n);
		uint64_t bytes = (uint64_t)(r->n - holes) * k->size;

		k->shrinking = false;
		resv_clear(k, r->first, r->n);
		if (r->rc != 0) {
			if (r->rc == -EOPNOTSUPP && !r->cut)
				t->no_punch = true;
			RT_ERR(r->rc, "target=%u reclaim cls=%u %s slots %u+%u", t->id, k->size,
			       r->cut ? "ftruncate" : "punch", r->first, r->n);
			continue;
		}
		released += bytes;
		t->file_bytes -= bytes;
		if (r->cut) {
			map_set(k->holes, r->first, r->n, false);
			k->nholes -= holes;
			k->nfile = k->nslots = r->first;
			if (k->hint > k->nslots)
				k->hint = k->nslots;
		} else {
			map_set(k->holes, r->first, r->n, true);
			k->nholes += r->n - holes;
		}
	}
	RT_INFO("target=%u reclaim for cls=%u: %u ranges, %lu KiB given back", t->id,
		disk_class_size[cls], j->n, (unsigned long)(released >> 10));
	t->reclaim = NULL;
	t->reclaim_failed = released == 0;
	free(j);
	t->bg_inflight--;
	make_room(t, cls); /* the class that asked is served first */
	disk_slots_kick(t);
}

/* Bytes a job could release from class i now. */
static uint64_t
reclaimable(const struct disk_target *t, int i)
{
	const struct disk_class *k = &t->cls[i];
	uint64_t n = 0;

	if (k->growing || k->shrinking || k->nslots != k->nfile)
		return 0;
	if (!t->no_punch) {
		uint64_t held = (uint64_t)k->nused + k->nholes;

		return k->nslots > held ? (k->nslots - held) * k->size : 0;
	}
	for (uint32_t s = k->nfile; s > 0 && !disk_slot_isset(k, s - 1); s--)
		n += !disk_slot_hole(k, s - 1);
	return n * k->size;
}

static bool
add_range(struct disk_reclaim *j, struct disk_class *k, uint8_t cls, bool cut, uint32_t first,
	  uint32_t n)
{
	if (j->n == RECLAIM_MAX)
		return false;
	j->r[j->n++] = (struct disk_reclaim_range){.cls = cls, .cut = cut, .first = first, .n = n};
	resv_set(k, first, n);
	return true;
}

/* Plan the release of up to `need` bytes of class v's free slots; returns
 * the bytes planned (holes inside a cut tail release nothing more). */
static uint64_t
plan_class(struct disk_target *t, struct disk_reclaim *j, uint8_t v, uint64_t need)
{
	struct disk_class *k = &t->cls[v];
	uint64_t got = 0;
	uint32_t s = k->nfile, i;

	/* The free tail first: cutting it off leaves no hole behind. */
	while (s > 0 && got < need && !disk_slot_isset(k, s - 1)) {
		s--;
		if (!disk_slot_hole(k, s))
			got += k->size;
	}
	while (s > 0 && !disk_slot_isset(k, s - 1) && disk_slot_hole(k, s - 1))
		s--;
	if (s < k->nfile && !add_range(j, k, v, true, s, k->nfile - s))
		return 0;
	if (t->no_punch)
		return got;
	i = s;
	while (got < need && i > 0 && j->n < RECLAIM_MAX) {
		uint32_t end;

		i--;
		if (disk_slot_isset(k, i) || disk_slot_hole(k, i))
			continue;
		end = i + 1;
		got += k->size;
		while (i > 0 && got < need && !disk_slot_isset(k, i - 1) &&
		       !disk_slot_hole(k, i - 1)) {
			i--;
			got += k->size;
		}
		add_range(j, k, v, false, i, end - i);
	}
	return got;
}

/*
 * Start a job releasing room for a growth step of class cls: room within the
 * capacity (fs_full false), or room on the file system, whose fallocate for
 * the step said ENOSPC below the capacity (fs_full). Returns whether a job
 * started.
 */
static bool
reclaim_start(struct disk_target *t, uint8_t cls, bool fs_full)
{
	struct disk_class *k = &t->cls[cls];
	uint64_t want = t->grow_bytes < k->size ? k->size : t->grow_bytes / k->size * k->size;
	uint64_t left = fs_full ? 0 : room(t), avail = 0, need, got = 0;
	uint64_t cand[DISK_NCLASS];
	struct disk_reclaim *j;
	int rc;

	if (t->reclaim != NULL || t->closing)
		return false;
	for (int i = 0; i < DISK_NCLASS; i++) {
		cand[i] = i == cls ? 0 : reclaimable(t, i);
		avail += cand[i];
	}
	/* Only when it can make room for one slot at least: otherwise the write
	 * fails with ENOSPC and nothing is released for nothing. */
	if (left >= k->size || left + avail < k->size)
		return false;
	need = want - left;
	if (need > avail)
		need = avail;
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return false;
	j->t = t;
	j->cls = cls;
	j->done.fn = reclaim_done;
	/* Victims with the most free space first: fewer files touched. */
	while (got < need && j->n < RECLAIM_MAX) {
		int v = -1;

		for (int i = 0; i < DISK_NCLASS; i++)
			if (cand[i] > 0 && (v < 0 || cand[i] > cand[v]))
				v = i;
		if (v < 0)
			break;
		cand[v] = 0;
		got += plan_class(t, j, (uint8_t)v, need - got);
	}
	if (j->n == 0) {
		free(j);
		return false;
	}
	for (unsigned i = 0; i < j->n; i++)
		t->cls[j->r[i].cls].shrinking = true;
	rc = pthread_create(&j->thread, NULL, reclaim_main, j);
	if (rc != 0) {
		RT_ERR(-rc, "target=%u reclaim thread", t->id);
		for (unsigned i = 0; i < j->n; i++) {
			t->cls[j->r[i].cls].shrinking = false;
			resv_clear(&t->cls[j->r[i].cls], j->r[i].first, j->r[i].n);
		}
		t->reclaim_failed = true;
		free(j);
		return false;
	}
	t->reclaim = j;
	t->bg_inflight++;
	return true;
}

void
disk_slots_foreach_reserved(struct disk_target *t,
			    void (*fn)(void *arg, uint8_t cls, uint32_t first, uint32_t n),
			    void *arg)
{
	for (int i = 0; i < DISK_NCLASS; i++)
		if (t->cls[i].refill)
			fn(arg, (uint8_t)i, t->cls[i].refill_first, t->cls[i].refill_n);
	if (t->reclaim != NULL)
		for (unsigned i = 0; i < t->reclaim->n; i++)
			fn(arg, t->reclaim->r[i].cls, t->reclaim->r[i].first, t->reclaim->r[i].n);
}

/* SPDX-License-Identifier: MIT */
/*
 * A storage target's life and its read-only views: open (files, index load
 * into memory, helper thread), close (drain everything in flight), the chunk
 * entries and their CRC table cache (LRU within a memory budget), query,
 * list, stats, the records of committed removes (loaded at open; the rest
 * of their life is removed.c) and the consistency check that
 * tests and tools run against
 * the SQLite index (and, for the space accounting, against the data files'
 * mapped blocks).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RT_LOG_SUBSYS "disk"
#include "disk/disk_internal.h"

#define DEFAULT_GROW	   (64ull << 20)
#define DEFAULT_CRC_BUDGET (1ull << 30)
#define LOG_PER_SEC	   10

bool
disk_log_ok(struct disk_target *t)
{
	uint64_t now = (uint64_t)(ev_now(t->ev) * 1e9);

	if (now >= t->log_budget_ns) {
		t->log_budget_ns = now + 1000000000ull;
		t->log_count = 0;
	}
	return t->log_count++ < LOG_PER_SEC;
}

uint64_t
disk_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int
load_removed(const struct disk_removed_rec *r, void *arg)
{
	struct disk_target *t = arg;

	return disk_rmap_add(&t->removed, &r->id, r->req, r->ver, r->at);
}

const char *
disk_target_path(const struct disk_target *t)
{
	return t->path;
}

uint64_t
disk_target_format_id(const struct disk_target *t)
{
	return t->ix.format_id;
}

/* ------------------------------------------------------------ CRC cache */

static void
lru_unlink(struct disk_target *t, struct disk_chunk *c)
{
	if (!c->on_lru)
		return;
	if (c->lru_prev != NULL)
		c->lru_prev->lru_next = c->lru_next;
	else
		t->lru_head = c->lru_next;
	if (c->lru_next != NULL)
		c->lru_next->lru_prev = c->lru_prev;
	else
		t->lru_tail = c->lru_prev;
	c->lru_prev = c->lru_next = NULL;
	c->on_lru = false;
}

static void
lru_append(struct disk_target *t, struct disk_chunk *c)
{
	c->lru_next = NULL;
	c->lru_prev = t->lru_tail;
	if (t->lru_tail != NULL)
		t->lru_tail->lru_next = c;
	else
		t->lru_head = c;
	t->lru_tail = c;
	c->on_lru = true;
}

void
disk_crc_drop(struct disk_target *t, struct disk_chunk *c, struct disk_ver *v)
{
	if (v->bcrc == NULL)
		return;
	t->crc_bytes -= (uint64_t)disk_nblocks(v->len) * sizeof(uint32_t);
	free(v->bcrc);
	v->bcrc = NULL;
	if (c->cur.bcrc == NULL && c->pend.bcrc == NULL)
		lru_unlink(t, c);
}

void
disk_crc_touch(struct disk_target *t, struct disk_chunk *c)
{
	if (c->on_lru && t->lru_tail != c) {
		lru_unlink(t, c);
		lru_append(t, c);
	}
}

void
disk_crc_attach(struct disk_target *t, struct disk_chunk *c, struct disk_ver *v, uint32_t *table)
{
	if (table == NULL)
		return;
	disk_crc_drop(t, c, v);
	v->bcrc = table;
	t->crc_bytes += (uint64_t)disk_nblocks(v->len) * sizeof(uint32_t);
	if (c->on_lru)
		lru_unlink(t, c);
	lru_append(t, c);
	/* Evict the least recently read chunks' tables; they are rebuilt by a
	 * whole-chunk read the next time they are needed. */
	while (t->crc_bytes > t->crc_budget && t->lru_head != NULL) {
		struct disk_chunk *old = t->lru_head;

		disk_crc_drop(t, old, &old->cur);
		disk_crc_drop(t, old, &old->pend);
	}
}

/* ---------------------------------------------------------- chunk entries */

/* Entries come from slabs of ENTRY_SLAB: a million chunks are a thousand
 * allocations, not a million, and free entries are reused first. */
#define ENTRY_SLAB 1024

struct entry_slab {
	struct entry_slab *next;
	struct disk_chunk e[ENTRY_SLAB];
};

static struct disk_chunk *
entry_alloc(struct disk_target *t)
{
	struct disk_chunk *c = t->free_entries;

	if (c != NULL) {
		t->free_entries = c->lru_next;
	} else {
		if (t->slab == NULL || t->slab_used == ENTRY_SLAB) {
			struct entry_slab *s = malloc(sizeof(*s));

			if (s == NULL)
				return NULL;
			s->next = t->slab;
			t->slab = s;
			t->slab_used = 0;
		}
		c = &t->slab->e[t->slab_used++];
	}
	memset(c, 0, sizeof(*c));
	return c;
}

static void
entry_free(struct disk_target *t, struct disk_chunk *c)
{
	c->lru_next = t->free_entries;
	t->free_entries = c;
}

/* A new entry for an id known to be absent. */
static struct disk_chunk *
chunk_new(struct disk_target *t, const struct cfs_id128 *id)
{
	struct disk_chunk *c = entry_alloc(t);

	if (c == NULL)
		return NULL;
	c->id = *id;
	c->cur.slot = c->pend.slot = DISK_NOSLOT;
	c->waitq_tail = &c->waitq;
	if (disk_cmap_insert(&t->map, c) != 0) {
		entry_free(t, c);
		return NULL;
	}
	return c;
}

struct disk_chunk *
disk_chunk_get(struct disk_target *t, const struct cfs_id128 *id, bool create)
{
	struct disk_chunk *c = disk_cmap_find(&t->map, id);

	if (c != NULL || !create)
		return c;
	return chunk_new(t, id);
}

void
disk_chunk_forget(struct disk_target *t, struct disk_chunk *c)
{
	disk_crc_drop(t, c, &c->cur);
	disk_crc_drop(t, c, &c->pend);
	disk_cmap_remove(&t->map, c);
	entry_free(t, c);
}

void
disk_chunk_info(const struct disk_chunk *c, struct disk_chunk_info *out)
{
	out->id = c->id;
	out->chunk_size = c->chunk_size;
	out->ver = c->cur.ver;
	out->len = c->cur.len;
	out->crc = c->cur.crc;
	out->pver = c->pend.ver;
	out->plen = c->pend.len;
	out->pcrc = c->pend.crc;
	out->req = c->cur.req;
	out->preq = c->pend.req;
	out->ptomb = c->pend.ver != 0 && c->pend.tomb;
}

int
disk_query(struct disk_target *t, const struct cfs_id128 *id, struct disk_chunk_info *out)
{
	struct disk_chunk *c = disk_cmap_find(&t->map, id);

	if (c == NULL || !disk_chunk_exists(c))
		return -CFS_ENOCHUNK;
	disk_chunk_info(c, out);
	return 0;
}

int
disk_list(struct disk_target *t, const struct cfs_id128 *begin, const struct cfs_id128 *end,
	  struct disk_chunk_info *out, unsigned max, bool *more)
{
	struct disk_cmap_cursor cur;
	struct disk_chunk *c;
	unsigned n = 0;

	*more = false;
	disk_cmap_seek(&t->map, begin, &cur);
	while ((c = disk_cmap_next(&t->map, &cur)) != NULL) {
		if (end != NULL && disk_id_cmp(&c->id, end) >= 0)
			break;
		if (!disk_chunk_exists(c))
			continue;
		if (n == max) {
			*more = true;
			break;
		}
		disk_chunk_info(c, &out[n++]);
	}
	return (int)n;
}

struct cfs_id128
disk_id_next(const struct cfs_id128 *id)
{
	struct cfs_id128 r = *id;

	for (int i = 15; i >= 0; i--)
		if (++r.b[i] != 0)
			break;
	return r;
}

void
disk_stats(struct disk_target *t, struct disk_stats *out)
{
	uint64_t used = 0, alloc = 0;

	for (int i = 0; i < DISK_NCLASS; i++) {
		used += (uint64_t)t->cls[i].nused * t->cls[i].size;
		alloc += (uint64_t)(t->cls[i].nslots - t->cls[i].nholes) * t->cls[i].size;
	}
	*out = t->st;
	out->capacity = t->capacity;
	out->allocated = alloc;
	out->used = used;
	out->free = t->capacity > used ? t->capacity - used : 0;
	out->chunks = t->nchunks;
	out->crc_cache_bytes = t->crc_bytes;
	pthread_mutex_lock(&t->lock);
	out->commits = t->commits;
	out->commit_items = t->commit_items;
	out->fdatasync_ns = t->fdatasync_ns;
	out->commit_ns = t->commit_ns;
	pthread_mutex_unlock(&t->lock);
}

/* ------------------------------------------------------------ open, close */

static int
mark_ver(struct disk_target *t, const struct disk_row *r, uint64_t ver, uint32_t slot, uint32_t len)
{
	int rc;

	if (ver == 0 || len == 0)
		return 0;
	if (len > r->chunk_size) {
		RT_ERRLOG("%s: chunk length %u over its size %u", t->path, len, r->chunk_size);
		return -EIO;
	}
	rc = disk_slot_mark(t, r->cls, slot);
	if (rc == -EEXIST)
		RT_ERRLOG("%s: slot cls=%u slot=%u referenced twice", t->path,
			  disk_class_size[r->cls], slot);
	else if (rc == -ERANGE)
		RT_ERRLOG("%s: slot cls=%u slot=%u beyond its data file", t->path,
			  disk_class_size[r->cls], slot);
	return rc != 0 ? -EIO : 0;
}

static int
load_row(const struct disk_row *r, void *arg)
{
	struct disk_target *t = arg;
	struct disk_chunk *c;
	int rc;

	if (r->chunk_size == 0 || r->chunk_size > DISK_MAX_CHUNK ||
	    disk_class_of(r->chunk_size) != r->cls || (r->ver == 0 && r->pver == 0) ||
	    (r->ptomb && r->plen != 0) || (r->pver != 0 && r->pver <= r->ver)) {
		RT_ERRLOG("%s: malformed index row (size %u class %u, versions %llu/%llu)",
			  t->path, r->chunk_size, r->cls, (unsigned long long)r->ver,
			  (unsigned long long)r->pver);
		return -EIO;
	}
	/* The id is the table's primary key, but a database written by anyone
	 * else may hold it twice (as text and as a blob, or a table without the
	 * key): two entries for one chunk corrupt the in-memory index. */
	if (disk_chunk_get(t, &r->id, false) != NULL) {
		RT_ERRLOG("%s: chunk listed twice in the index", t->path);
		return -EIO;
	}
	rc = mark_ver(t, r, r->ver, r->slot, r->len);
	if (rc == 0)
		rc = mark_ver(t, r, r->pver, r->pslot, r->plen);
	if (rc != 0)
		return rc;
	c = chunk_new(t, &r->id);
	if (c == NULL)
		return -ENOMEM;
	c->chunk_size = r->chunk_size;
	c->cls = r->cls;
	c->cur = (struct disk_ver){
		.ver = r->ver, .slot = r->slot, .len = r->len, .crc = r->crc, .req = r->req};
	c->pend = (struct disk_ver){
		.ver = r->pver,
		.slot = r->pslot,
		.len = r->plen,
		.crc = r->pcrc,
		.req = r->preq,
		.tomb = r->pver != 0 && r->ptomb,
	};
	if (c->cur.len == 0)
		c->cur.slot = DISK_NOSLOT;
	if (c->pend.len == 0)
		c->pend.slot = DISK_NOSLOT;
	t->nchunks++;
	return 0;
}

static void
wake_cb(struct ev_loop *ev, ev_async *w, int revents)
{
	disk_mbox_drain(w->data);
}

static void free_entries(struct disk_target *t);

/* "dir/name" in a new string (the caller frees it); NULL on OOM. */
static char *
path_in(const char *dir, const char *name)
{
	char *p = malloc(strlen(dir) + strlen(name) + 2);

	if (p != NULL)
		sprintf(p, "%s/%s", dir, name);
	return p;
}

/* Two openers of one directory (two [target.N] sections naming it, a
 * restart overlapping the old process) would hand out the same free slots and
 * overwrite each other's chunks: the second is refused. flock, not fcntl: it
 * also holds between two opens in one process, and the kernel drops it with
 * the process. */
static int
lock_dir(struct disk_target *t)
{
	char *lp = path_in(t->path, "lock");
	int rc = 0;

	if (lp == NULL)
		return -ENOMEM;
	t->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (t->lock_fd < 0) {
		rc = -errno;
		RT_ERR(rc, "open %s", lp);
	} else if (flock(t->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		RT_ERR(rc, "target=%u %s: the directory is in use by another opener", t->id,
		       t->path);
		close(t->lock_fd);
		t->lock_fd = -1;
	}
	free(lp);
	return rc;
}

int
disk_target_open(struct disk_ioeng *e, const struct disk_target_opts *o, struct disk_target **out)
{
	struct disk_target *t;
	struct timespec t0, t1;
	char *ipath = NULL;
	int rc;

	if (e == NULL || o == NULL || o->path == NULL || o->path[0] == 0 || o->capacity == 0 ||
	    o->sync_mode > DISK_SYNC_DSYNC || o->prep > DISK_PREP_ZERO)
		return -EINVAL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	t->e = e;
	t->ev = e->ev;
	t->id = o->target_id;
	t->capacity = o->capacity;
	t->grow_bytes = o->grow_bytes ? disk_roundup(o->grow_bytes) : DEFAULT_GROW;
	t->crc_budget = o->crc_cache_bytes ? o->crc_cache_bytes : DEFAULT_CRC_BUDGET;
	t->sync_mode = o->sync_mode;
	t->prep = o->prep;
	t->removed_retention_ms =
		o->removed_retention_ms ? o->removed_retention_ms : DISK_REMOVED_RETENTION_MS;
	disk_rmap_init(&t->removed);
	t->sq_tail = &t->sq_head;
	t->mb_tail = &t->mb_head;
	t->quar_tail = &t->quar_head;
	for (int i = 0; i < DISK_NCLASS; i++)
		t->cls[i].fd = -1;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->path = strdup(o->path);
	ipath = path_in(o->path, "index.db");
	if (t->path == NULL || ipath == NULL) {
		rc = -ENOMEM;
		goto out_free;
	}
	if (mkdir(o->path, 0755) != 0 && errno != EEXIST) {
		rc = -errno;
		RT_ERR(rc, "mkdir %s", o->path);
		goto out_free;
	}
	rc = lock_dir(t);
	if (rc != 0)
		goto out_free;
	if (disk_probe_cached(t->path, true) > 0)
		RT_WARN("target=%u %s: the file system keeps O_DIRECT data in the page cache: "
			"chunks are held twice in memory and reads may not reach the disk",
			t->id, t->path);
	rc = disk_cmap_init(&t->map);
	if (rc != 0)
		goto out_unlock;
	rc = disk_slots_open(t);
	if (rc != 0)
		goto out_slots;
	rc = disk_index_open(&t->ix, ipath);
	if (rc != 0)
		goto out_slots;
	rc = disk_index_load(ipath, t->ix.db, load_row, t);
	if (rc == 0) {
		uint64_t now = disk_wall_ms();

		rc = disk_index_load_removed(
			ipath, t->ix.db,
			now > t->removed_retention_ms ? now - t->removed_retention_ms : 0,
			load_removed, t);
	}
	if (rc != 0)
		goto out_index;
	if (posix_memalign(&t->zero_buf, DISK_BLOCK, DISK_ZERO_CHUNK) != 0) {
		t->zero_buf = NULL;
		rc = -ENOMEM;
		goto out_index;
	}
	memset(t->zero_buf, 0, DISK_ZERO_CHUNK);
	ev_async_init(&t->wake, wake_cb);
	t->wake.data = t;
	ev_async_start(t->ev, &t->wake);
	rc = disk_sync_start(t);
	if (rc != 0)
		goto out_async;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	RT_INFO("target=%u opened %s chunks=%lu removes=%u files=%luMiB in %ld ms", t->id, t->path,
		(unsigned long)t->nchunks, t->removed.count, (unsigned long)(t->file_bytes >> 20),
		(long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
	free(ipath);
	*out = t;
	return 0;
out_async:
	ev_async_stop(t->ev, &t->wake);
	free(t->zero_buf);
out_index:
	disk_index_close(&t->ix);
out_slots:
	disk_slots_close(t);
	free_entries(t);
	disk_cmap_fini(&t->map);
	disk_rmap_fini(&t->removed);
out_unlock:
	close(t->lock_fd);
out_free:
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(ipath);
	free(t->path);
	free(t);
	return rc;
}

static void
free_entries(struct disk_target *t)
{
	if (t->map.tab != NULL) {
		for (uint32_t i = 0; i <= t->map.mask; i++) {
			struct disk_chunk *c = t->map.tab[i];

			if (c == NULL)
				continue;
			free(c->cur.bcrc);
			free(c->pend.bcrc);
		}
	}
	while (t->slab != NULL) {
		struct entry_slab *s = t->slab;

		t->slab = s->next;
		free(s);
	}
	t->free_entries = NULL;
}

void
disk_target_close(struct disk_target **pt)
{
	struct disk_target *t = *pt;

	if (t == NULL)
		return;
	if (t->cb_depth > 0)
		CFS_PANIC("disk_target_close of %s from inside one of its callbacks", t->path);
	t->closing = true;
	/* Everything in flight completes normally: aio completions are reaped
	 * here, helper-thread results are taken from the mailbox. */
	while (t->ops_inflight > 0 || t->bg_inflight > 0) {
		if (t->e->ops->inflight(t->e) > 0)
			t->e->ops->poll(t->e, 10);
		else
			usleep(200);
		disk_mbox_drain(t);
	}
	disk_sync_stop(t);
	disk_mbox_drain(t);
	ev_async_stop(t->ev, &t->wake);
	disk_index_close(&t->ix);
	disk_slots_close(t);
	free_entries(t);
	disk_cmap_fini(&t->map);
	disk_rmap_fini(&t->removed);
	free(t->zero_buf);
	close(t->lock_fd); /* the directory is free for the next opener */
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	RT_INFO("target=%u closed %s", t->id, t->path);
	free(t->path);
	free(t);
	*pt = NULL;
}

/* ------------------------------------------------------------------ check */

struct check_ctx {
	struct disk_target *t;
	struct disk_check *out;
	uint64_t *ref[DISK_NCLASS];
	uint32_t nref[DISK_NCLASS];
};

static void problem(struct check_ctx *x, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
problem(struct check_ctx *x, const char *fmt, ...)
{
	va_list ap;

	if (x->out->first[0] != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(x->out->first, sizeof(x->out->first), fmt, ap);
	va_end(ap);
}

static void
check_ref(struct check_ctx *x, uint8_t cls, uint64_t ver, uint32_t slot, uint32_t len)
{
	const struct disk_class *k = &x->t->cls[cls];

	if (ver == 0 || len == 0)
		return;
	if (slot >= k->nfile || slot >= x->nref[cls]) {
		x->out->out_of_file++;
		problem(x, "cls=%u slot=%u beyond the data file (%u slots)", k->size, slot,
			k->nfile);
		return;
	}
	if ((x->ref[cls][slot / 64] >> (slot % 64)) & 1) {
		x->out->double_used++;
		problem(x, "cls=%u slot=%u referenced twice", k->size, slot);
		return;
	}
	if (disk_slot_hole(k, slot)) {
		/* its blocks were given back to the file system */
		x->out->out_of_file++;
		problem(x, "cls=%u slot=%u referenced but a hole", k->size, slot);
	}
	x->ref[cls][slot / 64] |= 1ull << (slot % 64);
}

/* Slots held by space management (refill, reclaim) are legitimately set. */
static void
check_reserved(void *arg, uint8_t cls, uint32_t first, uint32_t n)
{
	struct check_ctx *x = arg;

	for (uint32_t s = first; s < first + n && s < x->nref[cls]; s++)
		x->ref[cls][s / 64] |= 1ull << (s % 64);
}

/* Space accounting: the bytes the files hold, the holes, and (FIEMAP) that
 * no hole has blocks mapped, which would let the files exceed the capacity. */
static void
check_space(struct check_ctx *x)
{
	struct disk_target *t = x->t;
	uint64_t held = 0;

	for (int i = 0; i < DISK_NCLASS; i++) {
		const struct disk_class *k = &t->cls[i];
		uint32_t nh = 0, first = 0;
		int bad;

		for (uint32_t s = 0; s < k->nbits; s++) {
			if (!disk_slot_hole(k, s))
				continue;
			nh++;
			if (s >= k->nfile || (disk_slot_isset(k, s) && !k->refill)) {
				x->out->mismatched++;
				problem(x, "cls=%u slot=%u hole %s", k->size, s,
					s >= k->nfile ? "beyond the file" : "in use");
			}
		}
		if (nh != k->nholes) {
			x->out->mismatched++;
			problem(x, "cls=%u %u holes, counted %u", k->size, nh, k->nholes);
		}
		held += (uint64_t)(k->nfile - k->nholes) * k->size;
		if (k->growing || k->shrinking)
			continue;
		bad = disk_slots_verify_holes(t, (uint8_t)i, &first);
		if (bad > 0) {
			x->out->mismatched++;
			problem(x, "cls=%u slot=%u: a hole in memory, blocks in the file (%d)",
				k->size, first, bad);
		}
	}
	if (t->bg_inflight == 0 && held != t->file_bytes) {
		x->out->mismatched++;
		problem(x, "files hold %lu bytes, counted %lu", (unsigned long)held,
			(unsigned long)t->file_bytes);
	}
	if (t->bg_inflight == 0 && t->file_bytes > t->capacity && t->reclaim == NULL) {
		/* only a capacity lowered since the files grew explains this */
		RT_WARN("target=%u files hold %lu bytes over the capacity %lu", t->id,
			(unsigned long)t->file_bytes, (unsigned long)t->capacity);
	}
}

static bool
ver_eq(const struct disk_ver *v, uint64_t ver, uint32_t slot, uint32_t len, uint32_t crc,
       uint64_t req)
{
	if (v->ver != ver)
		return false;
	if (ver == 0)
		return true;
	return v->len == len && v->crc == crc && v->req == req && (len == 0 || v->slot == slot);
}

static int
check_row(const struct disk_row *r, void *arg)
{
	struct check_ctx *x = arg;
	struct disk_chunk *c;

	x->out->rows++;
	if (r->cls >= DISK_NCLASS)
		return -EIO;
	check_ref(x, r->cls, r->ver, r->slot, r->len);
	check_ref(x, r->cls, r->pver, r->pslot, r->plen);
	c = disk_cmap_find(&x->t->map, &r->id);
	if (c == NULL || c->chunk_size != r->chunk_size || c->cls != r->cls ||
	    !ver_eq(&c->cur, r->ver, r->slot, r->len, r->crc, r->req) ||
	    !ver_eq(&c->pend, r->pver, r->pslot, r->plen, r->pcrc, r->preq) ||
	    (r->pver != 0 && c->pend.tomb != r->ptomb)) {
		x->out->mismatched++;
		problem(x, "row %02x%02x%02x%02x... ver=%lu pver=%lu differs from memory",
			r->id.b[0], r->id.b[1], r->id.b[2], r->id.b[3], (unsigned long)r->ver,
			(unsigned long)r->pver);
	}
	return 0;
}

int
disk_target_check(struct disk_target *t, struct disk_check *out)
{
	struct check_ctx x = {.t = t, .out = out};
	sqlite3 *db = NULL;
	char *ipath;
	int rc;

	memset(out, 0, sizeof(*out));
	out->chunks = t->nchunks;
	ipath = path_in(t->path, "index.db");
	if (ipath == NULL)
		return -ENOMEM;
	rc = -ENOMEM;
	for (int i = 0; i < DISK_NCLASS; i++) {
		x.nref[i] = t->cls[i].nbits;
		x.ref[i] = calloc(x.nref[i] / 64 + 1, sizeof(uint64_t));
		if (x.ref[i] == NULL)
			goto out;
	}
	if (sqlite3_open_v2(ipath, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		rc = -EIO;
		goto out;
	}
	rc = disk_index_load(ipath, db, check_row, &x);
	if (rc != 0)
		goto out;
	/* Quarantined slots are legitimately held. */
	for (struct disk_quar *q = t->quar_head; q != NULL; q = q->next)
		if (q->slot < x.nref[q->cls])
			x.ref[q->cls][q->slot / 64] |= 1ull << (q->slot % 64);
	disk_slots_foreach_reserved(t, check_reserved, &x);
	check_space(&x);
	for (int i = 0; i < DISK_NCLASS; i++) {
		const struct disk_class *k = &t->cls[i];

		for (uint32_t s = 0; s < k->nbits; s++) {
			bool mem = disk_slot_isset(k, s);
			bool ref = (x.ref[i][s / 64] >> (s % 64)) & 1;

			out->slots_used += mem;
			if (mem && !ref) {
				out->leaked++;
				problem(&x, "cls=%u slot=%u used in memory, referenced by no row",
					k->size, s);
			} else if (!mem && ref) {
				out->missing++;
				problem(&x, "cls=%u slot=%u referenced but free in memory", k->size,
					s);
			}
		}
	}
	if (out->rows != t->nchunks) {
		out->mismatched++;
		problem(&x, "index has %lu rows, memory %lu chunks", (unsigned long)out->rows,
			(unsigned long)t->nchunks);
	}
	rc = out->leaked || out->missing || out->double_used || out->out_of_file || out->mismatched
		     ? -EUCLEAN
		     : 0;
out:
	if (db != NULL)
		sqlite3_close(db);
	for (int i = 0; i < DISK_NCLASS; i++)
		free(x.ref[i]);
	free(ipath);
	return rc;
}

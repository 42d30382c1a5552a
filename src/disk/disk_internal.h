/* SPDX-License-Identifier: MIT */
/*
 * Internals of the chunk engine shared by its files: the in-memory chunk
 * entry and its maps (chunkmap.c), size classes and slot bitmaps (slots.c),
 * the SQLite index (index.c), the group-commit thread (sync.c), mutations
 * (write.c), read batches (read.c) and the target itself (target.c).
 * Nothing outside src/disk includes this header.
 */
#ifndef CFS_DISK_INTERNAL_H
#define CFS_DISK_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <string.h>

#include "disk/disk.h"

#define DISK_NOSLOT UINT32_MAX

static inline uint32_t
disk_nblocks(uint32_t len)
{
	return (uint32_t)(((uint64_t)len + DISK_BLOCK - 1) / DISK_BLOCK);
}

static inline uint64_t
disk_roundup(uint64_t len)
{
	return (len + DISK_BLOCK - 1) & ~(uint64_t)(DISK_BLOCK - 1);
}

static inline int
disk_id_cmp(const struct cfs_id128 *a, const struct cfs_id128 *b)
{
	return memcmp(a->b, b->b, sizeof(a->b));
}

/* ------------------------------------------------------------------ crc.c */

/* CRC of p[0, len) computed per 4 KiB block: table[i] (when table is not NULL)
 * receives block i's CRC, the return value is the CRC of the whole. */
uint32_t disk_crc_blocks(const uint8_t *p, uint32_t len, uint32_t *table);
/* The CRC of content of length len from its block table. */
uint32_t disk_crc_table_combine(const uint32_t *table, uint32_t len);

/* ------------------------------------------------------------ chunk entry */

/* One stored version of a chunk. */
struct disk_ver {
	uint64_t ver;  /* 0: absent */
	uint32_t slot; /* DISK_NOSLOT when len == 0 */
	uint32_t len;
	uint32_t crc;
	bool tomb;	/* a tombstone (pending remove): no slot, length 0; only ever
			   the pending version: committing it removes the chunk (in
			   the padding before req: entries do not grow) */
	uint64_t req;	/* the request that made it (disk_write.req), 0: none */
	uint32_t *bcrc; /* per-4KiB CRCs, NULL when not in memory (or len <= 4 KiB) */
};

struct disk_op;
struct entry_slab;

struct disk_chunk {
	struct cfs_id128 id;
	uint32_t chunk_size;
	uint8_t cls;
	bool busy; /* a mutation is running; later ones wait in waitq */
	bool on_lru;
	struct disk_ver cur;  /* committed */
	struct disk_ver pend; /* pending */
	struct disk_op *waitq;
	struct disk_op **waitq_tail;
	struct disk_chunk *lru_prev, *lru_next; /* CRC table cache order */
};

static inline bool
disk_chunk_exists(const struct disk_chunk *c)
{
	return c->cur.ver != 0 || c->pend.ver != 0;
}

/* --------------------------------------------------------------- chunkmap.c */

struct disk_omap_blk;

/* Hash (open addressing, linear probing) for lookups plus an ordered index
 * (sorted blocks of pointers) for list. Both hold every entry. */
struct disk_cmap {
	struct disk_chunk **tab;
	uint32_t mask;
	uint32_t count;
	struct disk_omap_blk **blks;
	uint32_t nblks;
	uint32_t capblks;
};

struct disk_cmap_cursor {
	uint32_t blk;
	uint32_t idx;
};

int disk_cmap_init(struct disk_cmap *m);
void disk_cmap_fini(struct disk_cmap *m);
struct disk_chunk *disk_cmap_find(const struct disk_cmap *m, const struct cfs_id128 *id);
/* -ENOMEM; the id must not be present. */
int disk_cmap_insert(struct disk_cmap *m, struct disk_chunk *c);
void disk_cmap_remove(struct disk_cmap *m, struct disk_chunk *c);
/* Position at the first entry with id >= *id (NULL: the first entry). */
void disk_cmap_seek(const struct disk_cmap *m, const struct cfs_id128 *id,
		    struct disk_cmap_cursor *cur);
/* The entry at the cursor (NULL at the end), advancing it. */
struct disk_chunk *disk_cmap_next(const struct disk_cmap *m, struct disk_cmap_cursor *cur);

/* The records of committed removes (disk_removed_find): a chained hash on
 * (id, req) for lookups and a list in commit order, oldest first, so expiry
 * pops from the front. */
struct disk_rm {
	struct disk_rm *hnext; /* hash chain */
	struct disk_rm *next;  /* commit order */
	struct cfs_id128 id;
	uint64_t req;
	uint64_t ver; /* the tombstone's version */
	uint64_t at;  /* commit time, ms since the epoch (CLOCK_REALTIME) */
	uint64_t seq; /* place in the order, from 1 (disk_removed_list's cursor) */
};

struct disk_rmap {
	struct disk_rm **tab;
	uint32_t mask;
	uint32_t count;
	struct disk_rm *head, **tail;
	uint64_t seq;	      /* the last one given */
	struct disk_rm *mark; /* the last record listed (NULL: expired or none) */
};

void disk_rmap_init(struct disk_rmap *m);
void disk_rmap_fini(struct disk_rmap *m);
struct disk_rm *disk_rmap_find(const struct disk_rmap *m, const struct cfs_id128 *id, uint64_t req);
/* Add (or refresh) the record of (id, req); -ENOMEM. */
int disk_rmap_add(struct disk_rmap *m, const struct cfs_id128 *id, uint64_t req, uint64_t ver,
		  uint64_t at);
/* Drop records from the front of the commit order while at <= cutoff. */
void disk_rmap_expire(struct disk_rmap *m, uint64_t cutoff);
/* Up to max records after the one numbered *cursor (0: from the oldest), in
 * order; *cursor becomes the last one's number. */
unsigned disk_rmap_list(struct disk_rmap *m, uint64_t *cursor, struct disk_removed_rec *out,
			unsigned max, bool *more);

/* ------------------------------------------------------------------ index.c */

/* The durable image of one chunk, as the index stores it. */
struct disk_row {
	struct cfs_id128 id;
	bool del; /* delete the row */
	uint32_t chunk_size;
	uint8_t cls;
	uint64_t ver;
	uint32_t slot, len, crc;
	uint64_t pver;
	uint32_t pslot, plen, pcrc;
	uint64_t req, preq; /* the requests that made the versions (0: none) */
	bool ptomb;	    /* the pending version is a tombstone */
	/* With del: a committed tombstone made by request rm_req != 0; the index
	 * records (id, rm_req) -> (rm_ver, rm_at) in the same transaction. */
	uint64_t rm_req, rm_ver, rm_at;
};

struct disk_index {
	sqlite3 *db;
	sqlite3_stmt *upsert;
	sqlite3_stmt *del;
	sqlite3_stmt *begin;
	sqlite3_stmt *commit;
	sqlite3_stmt *rollback;
	sqlite3_stmt *rm_put;	/* record a committed remove */
	sqlite3_stmt *rm_adopt; /* take one made elsewhere, unless held */
	sqlite3_stmt *rm_purge; /* drop records up to a time */
	sqlite3_stmt *rm_min;	/* the oldest record's time */
	uint64_t rm_oldest;	/* helper thread: oldest record's time, 0: none */
	int reserve_fd;	    /* <index>.reserve, or -1 (none: no fallocate here) */
	bool reserve_spent; /* given back to the file system for the index */
	uint64_t format_id; /* meta 'format_id': random, written when first made */
};

/* Open or create path's index; -CFS_ECONFIG on a foreign format, -EIO. */
int disk_index_open(struct disk_index *ix, const char *path);
void disk_index_close(struct disk_index *ix);
/* Call fn for every row in id order; stops at fn's first error. -EIO. */
int disk_index_load(const char *path, sqlite3 *db, int (*fn)(const struct disk_row *r, void *arg),
		    void *arg);
int disk_index_begin(struct disk_index *ix);
int disk_index_put(struct disk_index *ix, const struct disk_row *r);
/* Inside a transaction: records of removes made elsewhere (disk_removed_adopt);
 * one held already stays as it is. -ENOSPC, -EIO. */
int disk_index_adopt_removed(struct disk_index *ix, const struct disk_removed_rec *recs,
			     unsigned n);
/* Commit; on error rolls back. -ENOSPC (SQLITE_FULL), -EIO. */
int disk_index_commit(struct disk_index *ix);
/* Inside a transaction: drop the removed records with at <= cutoff when the
 * oldest one is (rm_oldest). -ENOSPC, -EIO. */
int disk_index_purge_removed(struct disk_index *ix, uint64_t cutoff);
/* After a committed transaction: refresh rm_oldest (0 on error: no purge). */
void disk_index_removed_oldest(struct disk_index *ix);
/* Call fn for every removed record with at > since, oldest first. -EIO. */
int disk_index_load_removed(const char *path, sqlite3 *db, uint64_t since,
			    int (*fn)(const struct disk_removed_rec *r, void *arg), void *arg);
void disk_index_rollback(struct disk_index *ix);
/* The index's reserve (index.c): room held back on the file system so that
 * the index can still record removals when data filled it. Spend: give it
 * back (-ENOSPC when there is none left to give). Restore: take it again
 * (0 when held or unsupported; -ENOSPC while the file system has no room). */
int disk_index_reserve_spend(struct disk_index *ix);
int disk_index_reserve_restore(struct disk_index *ix);

/* ------------------------------------------------------------------- sync.c */

/* Something the helper thread posts back to the loop. */
struct disk_mitem {
	struct disk_mitem *next;
	void (*fn)(struct disk_target *t, struct disk_mitem *mi);
};

enum disk_sitem_kind {
	DISK_SI_ROW,   /* an index update (after fdatasync of sync_cls) */
	DISK_SI_GROW,  /* fallocate a data file extent */
	DISK_SI_ADOPT, /* records of removes made elsewhere (disk_removed_adopt) */
};

/* Work for the helper thread; `done` is posted back with rc set. */
struct disk_sitem {
	struct disk_sitem *next;
	uint8_t kind;
	int8_t sync_cls; /* data file to fdatasync first, -1: none */
	int rc;
	struct disk_row row;
	uint8_t cls; /* DISK_SI_GROW */
	/* DISK_SI_GROW over a run of holes inside the file. If its fallocate
	 * fails, the helper punches the run again (what it took in part goes
	 * back) and sets holes_kept: the run is holes as before. */
	bool refill, holes_kept;
	uint64_t off, len;
	const struct disk_removed_rec *recs; /* DISK_SI_ADOPT */
	unsigned nrecs;
	struct disk_mitem done;
};

int disk_sync_start(struct disk_target *t);
void disk_sync_stop(struct disk_target *t);
/* Queue for the helper thread (loop thread). */
void disk_sync_push(struct disk_target *t, struct disk_sitem *si);
/* Post mi to the loop (any thread). */
void disk_mbox_post(struct disk_target *t, struct disk_mitem *mi);
/* Run what was posted (loop thread). */
void disk_mbox_drain(struct disk_target *t);

/* ------------------------------------------------------------------ slots.c */

#define DISK_ZERO_CHUNK (1u << 20)

struct disk_class {
	uint32_t size; /* slot bytes */
	int fd;
	uint32_t nslots;  /* usable slots (prepared) */
	uint32_t nfile;	  /* slots the file holds or is growing to */
	uint32_t nbits;	  /* bitmap capacity */
	uint64_t *bits;	  /* 1: used by a version, an operation or quarantine */
	uint32_t nused;
	uint32_t hint;
	uint32_t nquar; /* of nused, waiting in quarantine */
	bool growing;
	bool grow_failed; /* the last growth failed: parked writers get -ENOSPC */
	bool zero;	  /* new extents are zero-filled */
	uint64_t zero_next, zero_end; /* bytes being zero-filled */
	bool zero_busy;
	struct disk_io zio;
	struct disk_op *waitq; /* operations waiting for a slot */
	struct disk_op **waitq_tail;
	/* Space shared between classes (slots.c "reclaim"). A hole is a free slot
	 * whose blocks were given back to the file system (punched): it is
	 * prepared again (fallocate, zero-fill) before use. t->file_bytes counts
	 * the bytes the files hold: (nfile - nholes) * size over the classes. */
	uint64_t *holes;
	uint32_t nholes;
	bool shrinking;			 /* a reclaim job is releasing some of its slots */
	bool refill;			 /* the growth in progress re-prepares holes: */
	uint32_t refill_first, refill_n; /* [refill_first, +refill_n) */
};

/* A freed slot waiting for the reads that may still use it. */
struct disk_quar {
	struct disk_quar *next;
	uint64_t gen;
	uint8_t cls;
	uint32_t slot;
};

/* Every read in flight, in start order, so a freed slot is reused only after
 * the reads that started before it was freed have finished. */
struct disk_rtrack {
	struct disk_rtrack *prev, *next;
	uint64_t gen;
};

int disk_class_of(uint32_t chunk_size);
int disk_slots_open(struct disk_target *t);
void disk_slots_close(struct disk_target *t);
/* Mark a slot used while loading the index: -EEXIST (already used), -ERANGE (beyond file). */
int disk_slot_mark(struct disk_target *t, uint8_t cls, uint32_t slot);
/* 0 and *slot, -EAGAIN (op parked on the class: it is retried when a slot frees
 * or the file grows), -ENOSPC. */
int disk_slot_alloc(struct disk_target *t, uint8_t cls, struct disk_op *op, uint32_t *slot);
/* Free a slot that no durable state references and no read can see. */
void disk_slot_free_now(struct disk_target *t, uint8_t cls, uint32_t slot);
/* Free a slot that was visible: it waits until earlier reads finish. */
void disk_slot_free_visible(struct disk_target *t, uint8_t cls, uint32_t slot);
/* Read tracking for the above. */
void disk_rtrack_start(struct disk_target *t, struct disk_rtrack *rt);
void disk_rtrack_end(struct disk_target *t, struct disk_rtrack *rt);
/* Retry parked operations where slots became available. */
void disk_slots_kick(struct disk_target *t);
static inline bool
disk_slot_isset(const struct disk_class *k, uint32_t slot)
{
	return slot < k->nbits && (k->bits[slot / 64] >> (slot % 64)) & 1;
}
static inline bool
disk_slot_hole(const struct disk_class *k, uint32_t slot)
{
	return slot < k->nbits && (k->holes[slot / 64] >> (slot % 64)) & 1;
}
/* Call fn for each run of slots that space management holds without any
 * version using them (being re-prepared, being released): the bitmap has
 * them set, no row references them. */
void disk_slots_foreach_reserved(struct disk_target *t,
				 void (*fn)(void *arg, uint8_t cls, uint32_t first, uint32_t n),
				 void *arg);
/* Compare class cls's holes with the data file (FIEMAP): how many slots
 * memory holds as holes have blocks mapped (*first: the first), or -errno. */
int disk_slots_verify_holes(struct disk_target *t, uint8_t cls, uint32_t *first);

/* ------------------------------------------------------------------ write.c */

enum disk_op_kind {
	DISK_OP_WRITE,
	DISK_OP_TRUNCATE,
	DISK_OP_COMMIT,
	DISK_OP_ABORT,
	DISK_OP_REMOVE,
	DISK_OP_TOMB, /* a remove as a version (disk_tombstone) */
};

/* What a mutation does to the in-memory entry once durable. */
enum disk_op_action {
	DISK_A_NONE,
	DISK_A_SET_PENDING, /* nv becomes the pending version */
	DISK_A_SET_CUR,	    /* nv becomes the committed version (pending dropped) */
	DISK_A_COMMIT,	    /* pending becomes committed */
	DISK_A_ABORT,	    /* pending dropped */
	DISK_A_REMOVE,	    /* both dropped */
};

struct disk_op {
	struct disk_op *next; /* chunk or class wait queue */
	struct disk_target *t;
	struct disk_chunk *c;
	uint8_t kind;
	uint8_t action;
	uint8_t cls;
	bool zero_copy; /* data written straight from the payload buffer */
	bool wrote_data;
	unsigned flags;
	int rc;
	uint64_t ver;
	uint64_t req; /* write, truncate: stored with the new version */
	uint32_t chunk_size, off, len;
	unsigned iovcnt;
	struct rt_iov *iov;
	struct disk_ver nv;   /* the new version being built */
	struct disk_ver base; /* copy of the committed version it builds on */
	struct rt_buf *buf;
	struct disk_io io;
	struct disk_sitem si;
	disk_done_fn cb;
	void *cb_arg;
	struct rt_iov iov_inline[2];
	/* Write: the payload's per-4KiB CRCs, computed by the payload check in
	 * the same pass (payload in one iov at a block-aligned offset), reused
	 * by the build step for the blocks the payload fills; or NULL. */
	uint32_t *ptab;
	uint32_t pcrc; /* with ptab: the payload's CRC32C (checked) */
};

/* Continue a parked operation after a slot became available (slots.c). */
void disk_op_slot_ready(struct disk_op *op);
/* Fail a parked operation (slots.c). */
void disk_op_slot_failed(struct disk_op *op, int rc);

/* ------------------------------------------------------------------ target */

struct disk_reclaim;
struct ritem;

struct disk_target {
	struct disk_ioeng *e;
	struct ev_loop *ev;
	char *path;
	int lock_fd; /* <path>/lock, flock'd: one opener per directory */
	uint32_t id;
	uint64_t capacity;
	uint64_t grow_bytes;
	uint64_t file_bytes; /* data file bytes, including growth in progress */
	enum disk_sync_mode sync_mode;
	enum disk_prep_mode prep;
	bool closing;
	/* An index commit failed: its transaction may still be in the WAL, and
	 * come back at the next open naming the batch's slots. Those are kept,
	 * and mutations are refused (-EIO) until the target is opened again.
	 * Written by the helper thread under lock, read by the loop. */
	bool index_failed;
	unsigned cb_depth; /* inside a user callback: close is refused */

	struct disk_cmap map;
	struct disk_rmap removed;      /* records of committed removes (loop thread) */
	uint64_t removed_retention_ms; /* read by the helper thread too (constant) */
	uint64_t nchunks;	 /* entries with a version */
	struct entry_slab *slab; /* entry memory (target.c) */
	unsigned slab_used;
	struct disk_chunk *free_entries;
	struct disk_class cls[DISK_NCLASS];
	struct disk_quar *quar_head, **quar_tail;
	struct disk_rtrack *rt_head, *rt_tail;
	uint64_t rgen;
	void *zero_buf; /* DISK_ZERO_CHUNK bytes of zeros, aligned */

	/* CRC table cache */
	uint64_t crc_bytes, crc_budget;
	struct disk_chunk *lru_head, *lru_tail;

	/* Whole-content reads (versions whose CRC table is not in memory) in
	 * flight, and the read items waiting to start one (read.c). */
	uint64_t whole_bytes;
	unsigned whole_count;
	struct ritem *whole_inflight;		/* newest first */
	struct ritem *whole_wait_head, *whole_wait_tail; /* FIFO */

	/* work in flight, waited for by close */
	uint64_t ops_inflight; /* mutations and read batches not yet called back */
	uint64_t bg_inflight;  /* growth and zero-fill */

	/* helper thread */
	struct disk_index ix;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct disk_sitem *sq_head, **sq_tail; /* to the thread */
	bool stop;
	struct disk_mitem *mb_head, **mb_tail; /* back to the loop */
	ev_async wake;
	/* counters the helper thread updates (under lock) */
	uint64_t commits, commit_items;
	uint64_t fdatasync_ns, commit_ns;

	struct disk_stats st;
	uint64_t log_budget_ns; /* rate limit of data-path error logs */
	uint32_t log_count;

	/* Space moving between classes (slots.c) */
	struct disk_reclaim *reclaim; /* the job releasing free slots, or NULL */
	bool reclaim_failed;	      /* the last job released nothing */
	bool no_punch;		      /* the file system cannot punch holes */
};

/* CRC table cache (target.c). */
void disk_crc_attach(struct disk_target *t, struct disk_chunk *c, struct disk_ver *v,
		     uint32_t *table);
void disk_crc_touch(struct disk_target *t, struct disk_chunk *c);
void disk_crc_drop(struct disk_target *t, struct disk_chunk *c, struct disk_ver *v);
/* Entry lifecycle (target.c). */
struct disk_chunk *disk_chunk_get(struct disk_target *t, const struct cfs_id128 *id, bool create);
void disk_chunk_forget(struct disk_target *t, struct disk_chunk *c);
void disk_chunk_info(const struct disk_chunk *c, struct disk_chunk_info *out);
/* Wall-clock time in ms (the removed records' time: it must survive restarts). */
uint64_t disk_wall_ms(void);
/* Drop the removed records older than the retention (target.c). */
void disk_removed_expire(struct disk_target *t);
/* Rate-limited data-path error log; true when the caller may log. */
bool disk_log_ok(struct disk_target *t);

#endif

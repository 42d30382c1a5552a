/* SPDX-License-Identifier: MIT */
/*
 * The chunk engine: what a storage target actor drives. Two objects:
 *
 *  - an I/O engine (struct disk_ioeng), one per loop, shared by the targets on
 *    that loop. The libaio implementation (disk_aio_*) submits O_DIRECT reads
 *    and writes batched per loop iteration in one io_submit (a read batch
 *    finding the device idle goes down at once) and reaps them
 *    through an eventfd watched by libev. It sits behind a small ops table so a
 *    simulator can replace the disk; nothing else in chainfs calls io_submit.
 *  - a target (struct disk_target), one per storage directory: data files per
 *    size class divided into slots, a SQLite index (WAL) of
 *    chunk id -> (class, slot, length, committed version, CRC32C, pending version),
 *    an in-memory hash + ordered index loaded at open, group commit on a helper
 *    thread, copy-on-write versions.
 *
 * Threading: a target and its I/O engine belong to one loop (the ev_loop given
 * at creation). Every function here except disk_crc32c*, disk_probe_cached,
 * disk_target_check and the registry calls is called on that loop's thread,
 * and every callback runs there. Callbacks are never called from inside the
 * call that started the operation: a function either returns <0 and never
 * calls its callback, or returns 0 and calls it exactly once later.
 *
 * Durability: a mutation's callback reports success only after its data and
 * its index entry are on stable storage (data fdatasync or RWF_DSYNC writes,
 * then a SQLite commit with synchronous=FULL).
 */
#ifndef CFS_DISK_H
#define CFS_DISK_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chainfs/errno.h"
#include "chainfs/proto.h"
#include "rt/rt.h"

/* ---------------------------------------------------------------- CRC32C */

/**
 * CRC32C (Castagnoli, the iSCSI polynomial) of n bytes, continuing from crc.
 * Start with crc = 0; disk_crc32c(disk_crc32c(0, a, na), b, nb) equals the CRC
 * of a followed by b. The check value of "123456789" is 0xE3069283. Clients
 * compute payload CRCs with this same function. Any thread. No errors.
 */
uint32_t disk_crc32c(uint32_t crc, const void *p, size_t n);

/**
 * CRC32C of A||B from crc_a = CRC(A), crc_b = CRC(B) and len_b = |B|, without
 * the bytes (zlib's crc32_combine for the Castagnoli polynomial). Any thread.
 */
uint32_t disk_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* ------------------------------------------------------------ I/O engine */

#define DISK_BLOCK 4096u /* O_DIRECT alignment and CRC block */

enum disk_io_op {
	DISK_IO_READ,
	DISK_IO_WRITE,
};

struct disk_io;
/** Completion: res = bytes transferred (may be short) or -errno. */
typedef void (*disk_io_fn)(struct disk_io *io, long res);

/*
 * One I/O request, owned by the caller until its callback. buf, len and off
 * must be DISK_BLOCK aligned (O_DIRECT).
 */
struct disk_io {
	struct disk_io *next; /* engine's queue link while queued */
	int fd;
	uint8_t op; /* enum disk_io_op */
	bool dsync; /* write with RWF_DSYNC */
	void *buf;
	uint32_t len;
	uint64_t off;
	disk_io_fn cb;
	void *cb_arg;
};

struct disk_ioeng;

/* What a disk implementation provides. The libaio one is disk_aio_create();
 * a simulator supplies its own. */
struct disk_ioeng_ops {
	const char *name;
	/* Queue io; it goes down with everything else queued, at the end of the
	 * current loop iteration at the latest (earlier when a kick sends the
	 * queue). Never fails: errors arrive in io->cb, never inside this call. */
	void (*submit)(struct disk_ioeng *e, struct disk_io *io);
	/* Optional: the caller has queued a whole batch. An engine with none of
	 * its requests outstanding sends everything queued now rather than at
	 * the end of the iteration. Never runs callbacks. */
	void (*kick)(struct disk_ioeng *e);
	/* Control path only (closing a target): submit what is queued, wait up to
	 * timeout_ms for completions and run their callbacks. Returns how many
	 * completed. */
	int (*poll)(struct disk_ioeng *e, int timeout_ms);
	/* Number of submitted or queued requests not yet completed. */
	unsigned (*inflight)(struct disk_ioeng *e);
	/* Optional: of those, the ones not yet handed to the device. */
	unsigned (*queued)(struct disk_ioeng *e);
	void (*destroy)(struct disk_ioeng *e);
};

struct disk_ioeng {
	const struct disk_ioeng_ops *ops;
	struct ev_loop *ev; /* the loop whose thread owns the engine */
};

/**
 * Create a libaio engine on ev: an aio context of `depth` slots (0: 1024),
 * an eventfd watched by an ev_io, and a prepare/idle pair that submits the
 * requests queued during each loop iteration in one io_submit. Call on the
 * loop's thread (or before the loop runs).
 * Errors: -ENOMEM, -EAGAIN (aio-max-nr reached) or another -errno from
 * io_setup/eventfd.
 */
int disk_aio_create(struct ev_loop *ev, unsigned depth, struct disk_ioeng **out);

/**
 * The shared engine of a loop: created on first use, refcounted. Any thread
 * before the loop runs, or the loop's own thread. Errors: as disk_aio_create.
 */
int disk_aio_get(struct ev_loop *ev, struct disk_ioeng **out);
/** Drop a reference from disk_aio_get (or destroy a disk_aio_create engine
 *  when it was not from the registry). All I/O must have completed. Sets *pe
 *  to NULL. */
void disk_aio_put(struct disk_ioeng **pe);
/** Whether a libaio engine takes completions off the ring the kernel maps
 * (128 KiB of reads per loop iteration at most), rather than with
 * io_getevents (an unknown ring layout, or under valgrind). */
bool disk_aio_reaps_ring(const struct disk_ioeng *e);

/* ----------------------------------------------------------------- target */

/* Size classes: a chunk lives in the smallest class that holds its chunk_size. */
#define DISK_NCLASS    8
#define DISK_MAX_CHUNK (64u << 20)
extern const uint32_t disk_class_size[DISK_NCLASS]; /* 4K 16K 64K 256K 1M 4M 16M 64M */

enum disk_sync_mode {
	DISK_SYNC_FDATASYNC, /* plain O_DIRECT writes, fdatasync per group commit */
	DISK_SYNC_DSYNC,     /* every data write carries RWF_DSYNC */
};

enum disk_prep_mode {
	DISK_PREP_AUTO,	     /* zero-fill new extents of classes <= 256 KiB, fallocate others */
	DISK_PREP_FALLOCATE, /* fallocate only */
	DISK_PREP_ZERO,	     /* fallocate, then write zeros over every new extent */
};

struct disk_target_opts {
	const char *path;   /* directory; created if missing */
	uint64_t capacity;  /* limit on the data files' total size, bytes */
	uint32_t target_id; /* for logs */
	enum disk_sync_mode sync_mode;
	enum disk_prep_mode prep;
	uint64_t grow_bytes;	  /* data file growth step per class; 0: 64 MiB */
	uint64_t crc_cache_bytes; /* budget for per-4KiB CRC tables; 0: 1 GiB */
	/* How long the record of a committed remove (disk_removed_find) is kept;
	 * 0: DISK_REMOVED_RETENTION_MS. It must exceed the time a client keeps
	 * retrying one request (its operation deadline). */
	uint64_t removed_retention_ms;
};

#define DISK_REMOVED_RETENTION_MS 120000u

struct disk_target;

/**
 * Open (or create) the target in o->path on engine e: the data files, the
 * SQLite index (loaded into memory: this blocks and is the only blocking
 * part), and the group-commit thread. Call on e's loop thread.
 * Errors: -EINVAL (bad options), -CFS_ECONFIG (the directory holds an index of
 * another format or class table), -EIO (SQLite error, corrupt index: two
 * chunks sharing a slot, a slot beyond its data file), -EBUSY (another
 * target, in this process or another, has the directory open: `lock`, flock),
 * -ENOMEM, other -errno from the file system.
 */
int disk_target_open(struct disk_ioeng *e, const struct disk_target_opts *o,
		     struct disk_target **out);

/**
 * Close: refuse new operations (-CFS_ENOTSERVING), let every operation in
 * flight or queued complete (their callbacks run from inside this call),
 * sync, stop the helper thread, close files, free. Blocks; call on the loop
 * thread on the control path only, never from inside one of the target's
 * callbacks (that panics). Sets *pt to NULL.
 */
void disk_target_close(struct disk_target **pt);

/* What the engine knows about a chunk: committed and pending versions, and
 * the request that made each (the caller's id, stored durably with the
 * version: CRAQ's exactly-once memory survives restarts through it). */
struct disk_chunk_info {
	struct cfs_id128 id;
	uint32_t chunk_size;
	uint64_t ver;  /* committed version, 0: none */
	uint32_t len;  /* committed length */
	uint32_t crc;  /* CRC32C of the committed content */
	uint64_t req;  /* request that made the committed version, 0: none known */
	uint64_t pver; /* pending version, 0: none */
	uint32_t plen;
	uint32_t pcrc;
	uint64_t preq; /* request that made the pending version, 0: none known */
	bool ptomb;    /* the pending version is a tombstone (a pending remove:
			  plen 0, nothing to read; committing it removes the chunk) */
};

/** Completion of a mutation. info (state after the operation) is valid only
 *  during the call and is NULL when rc < 0. */
typedef void (*disk_done_fn)(void *cb_arg, int rc, const struct disk_chunk_info *info);

enum {
	DISK_W_COMMIT = 1u << 0,  /* commit at once (single replica, chain tail) */
	DISK_W_FORCE = 1u << 1,	  /* install exactly version `ver` as committed, dropping a
				     pending one (resync); implies DISK_W_COMMIT */
	DISK_W_REPLACE = 1u << 2, /* the new content is the payload alone (zeros before off),
				     length off + len: a KV put, a resync copy */
};

/* A write: payload bytes at [off, off+len) of the chunk. */
struct disk_write {
	struct cfs_id128 id;
	uint32_t chunk_size; /* fixed for a chunk's life; selects the class */
	uint32_t off;
	uint32_t len;
	const struct rt_iov *iov; /* payload: at least len bytes; the engine takes refs and
				     may write straight from them: leave the bytes alone
				     until the callback */
	unsigned iovcnt;
	uint32_t crc;	/* CRC32C of the len payload bytes, checked first */
	uint64_t ver;	/* update version; 0: committed + 1 */
	unsigned flags; /* DISK_W_* */
	uint64_t req;	/* the caller's request id, stored with the new version (0: none);
			   disk_commit carries it from pending to committed */
};

/**
 * Write a new version of a chunk, copy-on-write: the whole new content goes to
 * a fresh slot (a partial write reads the committed content, checks its CRC
 * and merges; bytes between the old length and off read as zeros); the old
 * slot is freed once the new version is committed and durable. With
 * DISK_W_REPLACE nothing of the old content is kept. Without
 * DISK_W_COMMIT the new version is pending: readers see the committed one until
 * disk_commit(). Operations on one chunk run one at a time, in order; reads
 * never wait for them.
 *
 * Version rules (V committed, P pending, u = w->ver or V + 1 when 0):
 * pending write: P == u replaces the pending version; P != 0 otherwise -EBUSY;
 * u <= V -ESTALE; u > V + 1 -ERANGE. DISK_W_COMMIT: P != 0 -EBUSY, u <= V
 * -ESTALE. DISK_W_FORCE: any u >= 1. A chunk whose committed version is
 * UINT64_MAX (named by a caller) has no next one: -EOVERFLOW for ver 0.
 *
 * Returned at once: -EINVAL (chunk_size 0 or > DISK_MAX_CHUNK, off + len >
 * chunk_size, payload shorter than len, FORCE with ver 0), -CFS_ECHECKSUM
 * (payload CRC mismatch: nothing stored), -CFS_ENOTSERVING (closing),
 * -ENOMEM. Through cb: -EINVAL (chunk_size differs from the chunk's, unless
 * DISK_W_FORCE | DISK_W_REPLACE: a whole new life of the chunk, which may
 * change its size and class),
 * -EBUSY, -ESTALE, -ERANGE, -EOVERFLOW (see above), -ENOSPC (capacity or file system
 * full), -CFS_ECHECKSUM (the committed content to merge with is corrupt),
 * -EIO.
 */
int disk_write(struct disk_target *t, const struct disk_write *w, disk_done_fn cb, void *cb_arg);

/**
 * Truncate (or extend with zeros) to len bytes, copy-on-write like a write of
 * version ver (0: next) with the same flags and version rules; req is stored
 * with the new version like disk_write's w->req.
 * Returned at once: -CFS_ENOCHUNK (unknown chunk), -EINVAL (len > chunk_size),
 * -CFS_ENOTSERVING, -ENOMEM. Through cb: as disk_write.
 */
int disk_truncate(struct disk_target *t, const struct cfs_id128 *id, uint32_t len, uint64_t ver,
		  unsigned flags, uint64_t req, disk_done_fn cb, void *cb_arg);

/**
 * Commit pending version ver: it becomes the committed one (with its request
 * id) and the old committed slot is freed; a pending tombstone removes the
 * chunk instead (cb's info then names the chunk only, ver 0). Committing the
 * version already committed is a no-op success. Returned at once:
 * -CFS_ENOCHUNK, -CFS_ENOTSERVING, -ENOMEM. Through cb: -CFS_ENOCHUNK (removed
 * meanwhile), -ESTALE (ver older than the committed or pending one), -ERANGE
 * (no such pending version), -EIO.
 */
int disk_commit(struct disk_target *t, const struct cfs_id128 *id, uint64_t ver, disk_done_fn cb,
		void *cb_arg);

/**
 * Drop pending version ver (0: whatever is pending). Nothing pending: success.
 * Returned at once: -CFS_ENOCHUNK, -CFS_ENOTSERVING, -ENOMEM. Through cb:
 * -CFS_ENOCHUNK, -ESTALE (another version is pending), -EIO.
 */
int disk_abort(struct disk_target *t, const struct cfs_id128 *id, uint64_t ver, disk_done_fn cb,
	       void *cb_arg);

/**
 * Remove a chunk (both versions) at once, whatever its versions: the
 * standalone target and resync's removal of leftovers. Returned at once:
 * -CFS_ENOCHUNK, -CFS_ENOTSERVING, -ENOMEM. Through cb: -CFS_ENOCHUNK, -EIO.
 */
int disk_remove(struct disk_target *t, const struct cfs_id128 *id, disk_done_fn cb, void *cb_arg);

/**
 * A remove as an update version (chain replication): store a tombstone as
 * version ver (0: committed + 1) of an existing chunk, with the caller's
 * request id req. Without DISK_W_COMMIT the tombstone is the pending version:
 * no slot, length 0, durable (group commit) before cb, reported in
 * disk_chunk_info.ptomb and preq; readers still see the committed version
 * (DISK_R_PENDING on it: -CFS_ENOCHUNK); disk_commit(ver) removes the chunk
 * (the committed slot is freed once that is durable, the row is gone) and
 * disk_abort drops it like any pending version. With DISK_W_COMMIT the chunk
 * is removed at once (a chain's tail). Same version rules as a pending or a
 * committing disk_write (-EBUSY, -ESTALE, -ERANGE). With DISK_W_FORCE (ver
 * required) the chunk is removed at once whatever its versions, committed or
 * pending (a syncing replica, whose predecessor is authoritative), leaving
 * the record of req like any committed tombstone. The info given to cb after
 * a committed tombstone names the chunk only (ver and pver 0): it is gone.
 * Returned at once: -CFS_ENOCHUNK, -EINVAL (flags other than DISK_W_COMMIT
 * and DISK_W_FORCE, FORCE with ver 0),
 * -CFS_ENOTSERVING, -ENOMEM. Through cb: -CFS_ENOCHUNK (removed meanwhile),
 * -EBUSY, -ESTALE, -ERANGE, -EIO.
 */
int disk_tombstone(struct disk_target *t, const struct cfs_id128 *id, uint64_t ver, unsigned flags,
		   uint64_t req, disk_done_fn cb, void *cb_arg);

/**
 * The durable memory of committed removes: a tombstone (disk_tombstone) that
 * carried a request id req != 0 leaves, when it commits (the chunk's row
 * deleted), a record (id, req) -> (tombstone version, wall-clock time of the
 * commit), written in the same index transaction as the deletion, so a
 * request whose remove is applied is known to be applied after a restart and
 * after the chunk was created again by someone else. Records older than the
 * target's removed_retention_ms are dropped (from memory on lookup and after
 * mutations, from the index by a later group commit). Removes without a
 * request id (disk_remove: the standalone target, resync) leave none.
 *
 * Find the record of (id, req): 0 and *tver = the tombstone's version (the
 * remove's update version: the version it removed is *tver - 1). Loop thread,
 * memory only. Errors: -CFS_ENOCHUNK (no such record, req 0, or expired).
 */
int disk_removed_find(struct disk_target *t, const struct cfs_id128 *id, uint64_t req,
		      uint64_t *tver);

/** A record of a committed remove: (id, req) -> (tombstone version, commit
 *  time in ms since the epoch). */
struct disk_removed_rec {
	struct cfs_id128 id;
	uint64_t req, ver, at;
};

/**
 * Page through the records of committed removes, in the order they were
 * taken (commit, or adoption below). *cursor: 0 to begin, then what the
 * previous call left there; records taken while the walk runs come after
 * the ones before them, so a walk sees them too. Records that expired
 * meanwhile are skipped. Loop thread, memory only. Returns how many were
 * stored (>= 0); *more: whether others follow.
 */
int disk_removed_list(struct disk_target *t, uint64_t *cursor, struct disk_removed_rec *out,
		      unsigned max, bool *more);

typedef void (*disk_adopt_fn)(void *cb_arg, int rc);

/**
 * Take records of committed removes made elsewhere (a resync from the
 * chain's predecessor; a forwarded remove of a chunk this target does not
 * hold): written to the index in a group commit, then kept in memory like
 * the target's own; cb (rc 0) once durable. A record this target holds
 * already keeps its own version and time; records past the retention are
 * not taken, at 0 or in the future is now, and ones with req 0 are refused. Errors: -EINVAL (req 0,
 * n 0 or more than DISK_ADOPT_MAX), -CFS_ENOTSERVING (closing), -EIO (index failed), -ENOMEM;
 * through cb: the commit's error (nothing taken).
 */
#define DISK_ADOPT_MAX 1024u
int disk_removed_adopt(struct disk_target *t, const struct disk_removed_rec *recs, unsigned n,
		       disk_adopt_fn cb, void *cb_arg);

enum {
	DISK_R_PENDING = 1u << 0, /* read the pending version (error if none) */
};

/* One read of a batch. The caller fills the request part and keeps the array
 * alive until the batch callback. */
struct disk_read {
	struct cfs_id128 id;
	uint32_t off;
	uint32_t len;
	unsigned flags; /* DISK_R_* */
	/* results */
	int rc;		    /* 0, -CFS_ENOCHUNK, -EINVAL, -CFS_ECHECKSUM, -EIO, -ENOMEM,
			       -CFS_EBUSY (see disk_read) */
	uint64_t ver;	    /* version read */
	uint32_t crc;	    /* CRC32C of the returned bytes */
	struct rt_iov data; /* returned bytes (short at the chunk's end); the caller owns
			       the buffer reference: rt_buf_put(&data.buf). */
};

typedef void (*disk_read_fn)(void *cb_arg, struct disk_read *reads, unsigned n);

/**
 * Read a batch: all its I/O goes down in one submission. Every byte returned
 * was checked against the stored CRC32C (per-4KiB CRC tables kept in memory;
 * a chunk without one in memory is read whole once and checked against its
 * chunk CRC; reads of a chunk being read whole wait for that read, and whole
 * reads in flight are bounded per target). The version an item reads is
 * chosen when disk_read is called: one that waited for a whole read serves
 * that version (committed or pending by then), and gets -CFS_EBUSY when it is
 * gone (a newer version replaced it): never a newer pending version than the
 * caller chose. A mismatch gives that item
 * -CFS_ECHECKSUM, is counted and logged with target and chunk, and never
 * returns the bytes. Per-item errors: see struct disk_read (-EINVAL: off + len
 * > chunk_size). A read past the end returns the bytes up to it. cb runs once
 * for the batch.
 * Returned at once: -EINVAL (n == 0), -CFS_ENOTSERVING, -ENOMEM.
 */
int disk_read(struct disk_target *t, struct disk_read *reads, unsigned n, disk_read_fn cb,
	      void *cb_arg);

/** Query a chunk from memory. Errors: -CFS_ENOCHUNK. */
int disk_query(struct disk_target *t, const struct cfs_id128 *id, struct disk_chunk_info *out);

/**
 * List chunks with begin <= id < end in id order (memcmp of the 16 bytes),
 * from memory, at most max of them into out[]. begin NULL: from the first;
 * end NULL: to the last. *more is set when chunks remain in the range: go on
 * with begin = disk_id_next(last id). Chunks whose first write is still in
 * flight are not listed. Returns how many were stored (>= 0).
 */
int disk_list(struct disk_target *t, const struct cfs_id128 *begin, const struct cfs_id128 *end,
	      struct disk_chunk_info *out, unsigned max, bool *more);

/** The id right after id in list order (wraps to all zeros after all ones). */
struct cfs_id128 disk_id_next(const struct cfs_id128 *id);

struct disk_stats {
	uint64_t capacity;  /* configured limit */
	uint64_t allocated; /* data file bytes (prepared slots) */
	uint64_t used;	    /* bytes of slots holding a version */
	uint64_t free;	    /* capacity - used */
	uint64_t chunks;
	uint64_t reads, read_bytes;
	uint64_t writes, write_bytes; /* mutations applied, payload bytes */
	uint64_t checksum_errors;
	uint64_t io_errors;
	uint64_t commits;      /* group commits (SQLite transactions) */
	uint64_t commit_items; /* index updates they carried */
	uint64_t fdatasync_ns; /* helper thread time in data fdatasync */
	uint64_t commit_ns;    /* helper thread time in SQLite transactions */
	uint64_t crc_cache_bytes;
};

/** Counters and space. No errors. */
void disk_stats(struct disk_target *t, struct disk_stats *out);

/* Result of a consistency check. */
struct disk_check {
	uint64_t rows;	      /* index rows */
	uint64_t chunks;      /* in-memory chunks */
	uint64_t slots_used;  /* in-memory bitmap bits set */
	uint64_t leaked;      /* bitmap bits set that no row references */
	uint64_t missing;     /* slots referenced by rows but free in the bitmap */
	uint64_t double_used; /* slots referenced twice */
	uint64_t out_of_file; /* slots beyond their data file */
	uint64_t mismatched;  /* rows that differ from the in-memory entry */
	char first[160];      /* description of the first problem */
};

/**
 * Whether the file system under `dir` keeps a block written and read back in
 * the page cache: writes and reads one block of a scratch file (opened with
 * O_DIRECT when `direct`), asks mincore, removes the file. Some file systems
 * accept O_DIRECT and serve it buffered; then chunk data is held twice and
 * reads may come from memory. 1: cached, 0: not, or a negative errno (the
 * file system refused the file or O_DIRECT). Blocks; any thread.
 */
int disk_probe_cached(const char *dir, bool direct);

/**
 * Compare the slot bitmaps and the in-memory index against the SQLite index
 * (read through a separate connection). Call when no mutation is in flight
 * (for instance right after open, or after every callback has run): slots of
 * in-flight operations would count as leaked. Blocks (reads the database);
 * for tests, tools and admin commands. Returns 0 when consistent, -EUCLEAN
 * when any counter other than rows/chunks/slots_used is non-zero, -EIO when
 * the index cannot be read.
 */
int disk_target_check(struct disk_target *t, struct disk_check *out);

/** The target's directory and id (for logs). */
const char *disk_target_path(const struct disk_target *t);
/** The target's format id: random and nonzero, made when its index was first
 *  created and kept with it. Another one under the same directory means the
 *  target was made again (emptied, or a new disk). */
uint64_t disk_target_format_id(const struct disk_target *t);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Shared by the storage actor's files (storage.c, write.c, read.c, admin.c):
 * the target's state, the checks every handler makes before touching the
 * engine, the rate-limited event log, and the handlers the kind table lists.
 * Nothing outside actors/storage includes it.
 */
#ifndef CFS_ACTORS_STORAGE_INTERNAL_H
#define CFS_ACTORS_STORAGE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "actors/storage/storage.h"

/* Data-path error lines per second a target may write; the rest are counted
 * and summarised in the next line that gets through. */
#define STOR_LOG_PER_SEC 20u

/* Bounds on one request: reads per chunk_read (one reply iov each) and chunks
 * per chunk_list page. A reply's header must also fit the transport's header
 * limit: each record costs at most these many encoded bytes, plus a fixed
 * allowance for the rest of the header. */
#define STOR_MAX_READS	  RT_MSG_MAX_IOV
#define STOR_LIST_DEFAULT 1024u
#define STOR_LIST_MAX	  8192u
#define STOR_RESULT_WIRE  32u /* chunk_io_result: array(4) i32 u32 u32 u64 */
#define STOR_META_WIRE	  48u /* chunk_meta: array(6) bin(16) u32 u32 u64 u64 bool */
#define STOR_RECORD_WIRE  48u /* removed_record: array(4) bin(16) u64 u64 u64 */
#define STOR_HDR_SLACK	  256u

/* Longest chain a target keeps (members beyond it are refused as a routing
 * error), head entries of the per-chunk write queue table, and client requests
 * the head remembers for exactly-once retries. */
#define STOR_MAX_CHAIN	 16u
#define STOR_QBUCKETS	 256u
#define STOR_DEDUP_SLOTS 4096u

/* What NODE_TARGET_ROUTING last said about this target's chain. */
struct stor_chain {
	uint64_t routing_ver;
	uint64_t lease_until_ns; /* the node's lease at mgmtd, rt_now_ns clock */
	uint64_t chain_id;
	uint32_t chain_ver; /* 0: no chain (yet): every data request is refused */
	uint32_t public_state;
	uint32_t count;
	/* Indexes into members, -1: none. The write path is the serving members
	 * then the syncing one, in order (members behind them, offline or
	 * waiting, are skipped); a pending read asks the last serving member. */
	int pos;   /* us; -1: not a member */
	int head;  /* first of the write path */
	int succ;  /* our successor on the write path; -1: we are its tail */
	int rtail; /* last serving member */
	struct cfs_chain_member members[STOR_MAX_CHAIN];
	cfs_addr_t mgmtd;
};

/* A replica's memory of one client request (client_req, chunk), kept by every
 * replica the write passed (forwarded writes carry client_req), so that a head
 * after failover knows it too: the version stored for it here, pending or done
 * (committed here: ver, len, crc are the answer). A retry is answered, or its
 * pending version re-driven, instead of applied again. The ring is a cache:
 * the engine stores each version's client_req durably, and a request the
 * ring lacks is looked up there (craq.c, dd_from_engine). */
struct stor_dedup {
	uint64_t client_req; /* 0: free (it may still be linked in a bucket) */
	struct cfs_id128 chunk;
	bool done;
	bool busy;    /* head: a client op holding it is queued or in the chain */
	uint64_t ver; /* 0: nothing stored for it (yet) */
	uint32_t len;
	uint32_t crc;
	uint32_t bucket; /* hash bucket it is linked in, + 1; 0: not linked */
	uint32_t hnext;	 /* next slot of that bucket, + 1; 0: end */
};

struct craq_q;

/* Chunks a resync walk lists at a time. */
#define STOR_SYNC_PAGE 64u
/* Records of committed removes per chunk_removed of a resync. */
#define STOR_SYNC_RECORDS 256u

/* The resync walk (resync.c) towards our syncing successor. */
/* Where a stopped walk may go on: the page it was on, for the same syncing
 * target in the same public states (their state_ver unchanged: neither left
 * the chain's write path meanwhile, so what was copied is still there and
 * every write since reached it). */
struct stor_sync_mark {
	bool valid;
	bool sweeping;
	bool started; /* begin is valid (else the walk's first page) */
	uint32_t dst;
	uint64_t dst_state_ver, own_state_ver;
	uint64_t dst_format; /* the syncing target as made (0: not seen yet) */
	struct cfs_id128 begin;
};

struct stor_sync {
	bool running;
	bool more;    /* chunks remain after the page */
	bool started; /* next is valid */
	uint32_t chain_ver;
	uint32_t done_ver; /* mgmtd took our sync_done for this chain version */
	uint32_t dst;	   /* the syncing target */
	uint64_t dst_state_ver, own_state_ver; /* the routing's, at the start */
	uint64_t dst_format;		       /* what its answers name (0: none yet) */
	struct stor_sync_mark mark;
	struct cfs_id128 next;
	struct disk_chunk_info page[STOR_SYNC_PAGE];
	unsigned n, i;
	struct disk_read rd;
	uint64_t copied, compared, removed, records;
	bool sweeping;	       /* the second walk (the target's leftovers) */
	uint32_t dst_features; /* its chunk_list answer's (STOR_FEAT_*) */
	uint64_t rcursor;      /* the third walk's (records of removes) */
};

struct stor_target {
	struct rt_actor *self;
	struct rt_loop *loop;
	uint32_t id;
	/* disk_target_format_id: this target, as made. Answers to a resync
	 * carry it: a walk that sees it change starts over. */
	uint64_t format_id;
	bool format_told;   /* nodectl has it (tell_format) */
	uint64_t max_reply;
	uint32_t max_reads; /* per chunk_read: STOR_MAX_READS or what max_hdr allows */
	uint32_t max_list;  /* per chunk_list page: STOR_LIST_MAX or what max_hdr allows */
	uint32_t max_records; /* per chunk_removed: STOR_SYNC_RECORDS or what max_hdr allows */
	struct disk_ioeng *e;
	struct disk_target *dt;
	bool in_cluster;
	struct stor_chain chain;
	/* head: chunks with a write going down the chain, each with its queue */
	struct craq_q *q[STOR_QBUCKETS];
	/* head: recent client requests, a ring (the oldest is forgotten first) */
	struct stor_dedup *dedup;
	uint32_t *dedup_hash; /* STOR_DEDUP_SLOTS buckets: first slot + 1, 0: empty */
	uint32_t dedup_next;
	struct stor_sync sync;
	/* Resync: the walk's place in a chunk's queue (craq_sync_hold), or NULL. */
	struct craq_op *sync_hold;
	/* Head: the walk that re-drives versions left pending by failed attempts
	 * (craq.c), started when routing makes us head or changes our chain;
	 * continued (budget per step) and retried with backoff on the timer. */
	struct rt_timer redrive_timer;
	uint32_t redrive_backoff_ms;
	bool redrive_walking;
	bool redrive_again; /* a re-drive failed during the walk: walk again later */
	bool redrive_armed; /* the timer waits out a backoff: failures leave it be */
	bool redrive_started;
	/* A walk was due while we were not a serving head (our lease had
	 * lapsed): it runs when routing makes us one again, also under the same
	 * chain version (a renewed lease). */
	bool redrive_owed;
	struct cfs_id128 redrive_next;
	bool stopping; /* fini runs: no timers are armed any more */
	/* A walk that failed (say, the syncing target had not yet seen the new
	 * chain version) is tried again after sync_backoff_ms, not only at the
	 * next routing push. */
	struct rt_timer sync_retry;
	uint32_t sync_backoff_ms;
	/* requests refused before reaching the engine (bad input, wrong target) */
	uint64_t rejected;
	/* every walk's work, for target_stats */
	uint64_t sync_compared, sync_copied, sync_removed, sync_resumed, sync_records;
	/* rate limit of data-path logs */
	uint64_t log_window_ns;
	unsigned log_lines;
	uint64_t log_suppressed;
};

/* 32 lower-case hex digits and a NUL. */
#define STOR_ID_STR 33

/** Format a chunk id for logs. */
void stor_id_str(const struct cfs_id128 *id, char out[STOR_ID_STR]);

/** A chunk id the target accepts: anything but all zeros, which is reserved
 *  (the "no id" of list bounds and of missing fields). */
bool stor_id_valid(const struct cfs_id128 *id);

/**
 * Checks of the fields every chunk message carries: the target the sender
 * means and the chain version. Standalone only 0 is current; in a cluster
 * the chain's current version, and 0 too for inspection (query, list, stats).
 * @return 0, -CFS_ENOACTOR (another target: the sender's routing is stale),
 *         -CFS_ESTALECHAIN.
 */
int stor_check_target(const struct stor_target *t, uint32_t target, uint32_t chain_ver);

/* What a request wants of the chain (stor_check_chain). */
enum stor_use {
	STOR_USE_READ,	  /* a read: serving replica */
	STOR_USE_WRITE,	  /* a client's mutation: serving head */
	STOR_USE_FORWARD, /* a write forwarded by the predecessor: serving or syncing */
};

/**
 * The cluster checks of a data request, after stor_check_target's target
 * check; standalone targets accept only chain_ver 0. In a cluster, in order:
 * the node's lease must not have lapsed and the target must hold a chain
 * (-CFS_ENOTSERVING), chain_ver must be the chain's (-CFS_ESTALECHAIN), the
 * target's public state and place must fit `use` (-CFS_ENOTSERVING).
 * @return 0, -CFS_ENOACTOR, -CFS_ENOTSERVING, -CFS_ESTALECHAIN.
 */
int stor_check_chain(const struct stor_target *t, uint32_t target, uint32_t chain_ver,
		     enum stor_use use);

/** Whether a data-path line may be written now (STOR_LOG_PER_SEC). */
bool stor_log_ok(struct stor_target *t);

/**
 * Log a failed request once: what (message name), chunk (NULL: none) and rc.
 * Client mistakes and missing chunks go to debug, everything else to warn,
 * through the rate limit.
 */
void stor_log_fail(struct stor_target *t, const char *what, const struct cfs_id128 *chunk, int rc);

/* Handlers (the kind table in storage.c). */
int stor_on_chunk_write(struct rt_actor *self, struct rt_msg *req);
int stor_on_chunk_remove(struct rt_actor *self, struct rt_msg *req);
int stor_on_chunk_truncate(struct rt_actor *self, struct rt_msg *req);
int stor_on_chunk_read(struct rt_actor *self, struct rt_msg *req);
int stor_on_chunk_query(struct rt_actor *self, struct rt_msg *req);
int stor_on_chunk_list(struct rt_actor *self, struct rt_msg *req);
int stor_on_chunk_removed(struct rt_actor *self, struct rt_msg *req);
int stor_on_target_stats(struct rt_actor *self, struct rt_msg *req);
int stor_on_node_target_routing(struct rt_actor *self, struct rt_msg *req);

/* craq.c: chain replication of mutations (cluster mode). */

/* What a mutation request is. */
enum craq_kind {
	CRAQ_WRITE,    /* chunk_write */
	CRAQ_TRUNCATE, /* chunk_truncate */
	CRAQ_REMOVE,   /* chunk_remove */
};

/**
 * Take a checked chunk_write, chunk_truncate or chunk_remove (kind) in
 * cluster mode: the head queues it behind the chunk's mutation in flight (if
 * any), answers a retried client_req from memory or re-drives what its first
 * attempt left; every replica stores it pending (a remove: a pending
 * tombstone), forwards it to its successor and commits when the answer comes
 * back (committing a tombstone removes the chunk); the tail commits at once.
 * Answers req itself (always): besides the engine's errors, -CFS_EBUSY (the
 * same client_req is still in the chain), -CFS_ESTALECHAIN (the chain changed
 * meanwhile), the successor's error or -ETIMEDOUT, -EIO (the successor holds
 * other content under the version), -ESTALE (forwarded: we hold a newer
 * version, the response names it; or our successor did: refused, reported).
 */
void craq_mutate(struct stor_target *t, struct rt_msg *req, enum craq_kind kind);
/** craq_mutate(t, req, CRAQ_WRITE). */
void craq_write(struct stor_target *t, struct rt_msg *req);

/* The engine write a chunk_write request asks for: its chunk, range, payload
 * (borrowed from req, which must outlive the write) and CRC, at update
 * version ver with DISK_W_* flags; the engine stores its client_req with the
 * version (the durable half of the exactly-once memory, craq.c). */
static inline struct disk_write
stor_disk_write_of(const struct rt_msg *req, uint64_t ver, unsigned flags)
{
	const struct cfs_chunk_write *w = RT_BODY(req, chunk_write);

	return (struct disk_write){
		.id = w->chunk,
		.chunk_size = w->chunk_size,
		.off = w->offset,
		.len = w->len,
		.iov = req->iov,
		.iovcnt = req->iovcnt,
		.crc = w->crc,
		.ver = ver,
		.flags = flags,
		.req = w->client_req,
	};
}

/* One whole version of a chunk, sent as a forwarded chunk_write: a resync
 * copy (resync.c), a re-drive of a leftover pending version, or a mutation
 * forwarded to a syncing successor as the whole new content (craq.c). */
struct stor_whole {
	uint32_t target; /* the receiver (our successor on the write path) */
	uint64_t chain_id;
	uint32_t chain_ver;
	struct cfs_id128 chunk;
	uint32_t chunk_size;
	uint64_t ver;		   /* the version, installed at that number */
	uint64_t client_req;	   /* the request that made it (the receiver stores it), 0: none */
	uint32_t crc;		   /* CRC32C of the content */
	uint32_t flags;		   /* STOR_CW_F_SYNC or STOR_CW_F_WHOLE; FORWARD is added */
	const struct rt_iov *data; /* the content, by reference; NULL: empty */
};

/**
 * Build the chunk_write message of a whole version (craq.c): offset 0,
 * length and payload = the content (its buffer referenced, not copied).
 * @return 0 and *out, -ENOMEM (nothing to free).
 */
int stor_whole_msg(const struct stor_whole *w, struct rt_msg **out);

/**
 * Resync (resync.c) takes chunk id's turn in our per-chunk queue, like a
 * mutation: stor_sync_held(t) runs once every mutation of the chunk queued
 * before has finished here (at once when none), and no mutation of it starts
 * here until craq_sync_release(t), so none can be forwarded to the syncing
 * target between the walk's read of our state and its install there. One hold
 * at a time. Returns 0 (stor_sync_held runs, maybe before this returns) or
 * -ENOMEM.
 */
int craq_sync_hold(struct stor_target *t, const struct cfs_id128 *id);
/** End the hold (none: nothing); the chunk's next mutation starts. */
void craq_sync_release(struct stor_target *t);
/** The hold's turn came (resync.c). */
void stor_sync_held(struct stor_target *t);

/** Set up and tear down the resync retry timer (resync.c). */
void stor_sync_init(struct stor_target *t);
void stor_sync_fini(struct stor_target *t);
/** Start a resync walk (resync.c) if our successor on the write path is
 *  syncing and no walk runs; called on every routing push. */
void stor_sync_maybe_start(struct stor_target *t);

/** Routing changed (storage.c, after the new chain is in t->chain): when it
 *  makes us the serving head, changes the chain we head, or renews our lease
 *  after a re-drive fell due while it had lapsed, re-drive every version of
 *  ours left pending by a failed attempt. */
void craq_routing_changed(struct stor_target *t, uint32_t old_chain_ver, bool was_head);

/** A resync into this target begins (storage.c): forget the ring's requests
 *  but those of ops still under way; retries ask the engine, whose versions
 *  the resync replaces together with the requests that made them. */
void craq_dedup_forget(struct stor_target *t);

/** Allocate the cluster state (dedup ring); -ENOMEM. */
int craq_init(struct stor_target *t);
/** Free the cluster state; requests still queued are answered -CFS_ENOTSERVING. */
void craq_fini(struct stor_target *t);

#endif

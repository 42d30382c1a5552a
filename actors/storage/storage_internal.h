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
#define STOR_META_WIRE	  48u /* chunk_meta: array(5) bin(16) u32 u32 u64 u64 */
#define STOR_HDR_SLACK	  256u

struct stor_target {
	struct rt_actor *self;
	struct rt_loop *loop;
	uint32_t id;
	uint64_t max_reply;
	uint32_t max_reads; /* per chunk_read: STOR_MAX_READS or what max_hdr allows */
	uint32_t max_list;  /* per chunk_list page: STOR_LIST_MAX or what max_hdr allows */
	struct disk_ioeng *e;
	struct disk_target *dt;
	/* requests refused before reaching the engine (bad input, wrong target) */
	uint64_t rejected;
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
 * means and the chain version (no chains yet: only 0 is current).
 * @return 0, -CFS_ENOACTOR (another target: the sender's routing is stale),
 *         -CFS_ESTALECHAIN.
 */
int stor_check_target(const struct stor_target *t, uint32_t target, uint32_t chain_ver);

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
int stor_on_target_stats(struct rt_actor *self, struct rt_msg *req);

#endif

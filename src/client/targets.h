/* SPDX-License-Identifier: MIT */
/*
 * Reaching storage targets from a client: find a node's targets through its
 * `status` (actors of kind "storage", tag = target id), name chunks (16-byte
 * ids from (inode, index) or 32 hex digits), and build chunk_write requests
 * with their payload CRC32C and chunk_read requests with their io table.
 * Shared by the chunk client, the CLI, the tests and the benchmarks: the
 * chunk client reaches targets through routing (routing.h) and builds its
 * requests here; tools that address one node directly also find its targets
 * here.
 */
#ifndef CFS_CLIENT_TARGETS_H
#define CFS_CLIENT_TARGETS_H

#include <stdint.h>

#include "client/client.h"

/* One storage target of a node. */
struct cfs_target_ref {
	uint32_t target; /* target id */
	uint32_t loop;	 /* the loop it runs on */
	cfs_addr_t addr; /* CFS_ADDR(node as the caller named it, local id) */
};

/**
 * List the storage targets of the node the caller reaches as `node` (an id
 * from cfs_client_connect), sorted by target id. *out is malloc'd (free it);
 * *n may be 0.
 * @return 0; the status call's errors (-ETIMEDOUT, -ECONNREFUSED, ...), -ENOMEM.
 */
int cfs_targets_list(struct cfs_client *c, uint32_t node, struct cfs_target_ref **out, unsigned *n);

/**
 * The address of target `target` on `node`.
 * @return 0; -CFS_ENOACTOR (the node runs no such target); cfs_targets_list's errors.
 */
int cfs_target_find(struct cfs_client *c, uint32_t node, uint32_t target, cfs_addr_t *addr);

/** The chunk id of chunk `index` of inode `inode`: both big-endian, inode first,
 *  so a file's chunks sort together and in order. */
struct cfs_id128 cfs_chunk_id(uint64_t inode, uint64_t index);

/**
 * Parse a chunk id: 32 hex digits, or "INODE:INDEX" (decimal or 0x-hex each).
 * @return 0; -EINVAL (malformed, or the all-zero id, which names no chunk).
 */
int cfs_chunk_id_parse(const char *s, struct cfs_id128 *out);

#define CFS_CHUNK_ID_STR 33
/** 32 lower-case hex digits and a NUL. */
void cfs_chunk_id_format(const struct cfs_id128 *id, char out[CFS_CHUNK_ID_STR]);

/**
 * A new chunk_write request for `target`: write buf[boff, boff+len) at
 * `offset` of chunk `id` of size `chunk_size`, with the payload's CRC32C
 * computed here. The payload is attached by reference (no copy); buf stays the
 * caller's. update_ver 0 (the next version), chain fields 0.
 * @return 0 and *out; -EINVAL (range outside buf), -ENOMEM.
 */
int cfs_chunk_write_msg(uint32_t target, const struct cfs_id128 *id, uint32_t chunk_size,
			uint32_t offset, struct rt_buf *buf, uint32_t boff, uint32_t len,
			struct rt_msg **out);

/**
 * cfs_chunk_write_msg with the payload's CRC32C given by the caller, for a
 * caller that sends the same payload several times (retries) and computes it
 * once. crc must be disk_crc32c(0, buf->data + boff, len): the target refuses
 * a mismatch with -CFS_ECHECKSUM.
 * @return 0 and *out; -EINVAL (range outside buf), -ENOMEM.
 */
int cfs_chunk_write_msg_crc(uint32_t target, const struct cfs_id128 *id, uint32_t chunk_size,
			    uint32_t offset, struct rt_buf *buf, uint32_t boff, uint32_t len,
			    uint32_t crc, struct rt_msg **out);

/**
 * A new chunk_read request for `target` with `n` ranges in its io table
 * (allocated in the message's arena). When `ios` is non-NULL the n ranges are
 * copied from it; when NULL they are zeroed for the caller to fill through
 * RT_BODY(*out, chunk_read)->ios. chain_id/chain_ver as for any chained
 * request (0 = unchained); the body's flags and the message flags are 0.
 * n is not checked against the target's limit: the target refuses too many.
 * @return 0 and *out; -ENOMEM.
 */
int cfs_chunk_read_msg(uint32_t target, uint64_t chain_id, uint32_t chain_ver,
		       const struct cfs_chunk_io *ios, uint32_t n, struct rt_msg **out);

#endif

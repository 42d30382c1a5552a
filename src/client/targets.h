/* SPDX-License-Identifier: MIT */
/*
 * Reaching storage targets from a client: find a node's targets through its
 * `status` (actors of kind "storage", tag = target id), name chunks (16-byte
 * ids from (inode, index) or 32 hex digits), and build chunk_write requests
 * with their payload CRC32C. Shared by the CLI, the tests and the benchmark;
 * until chains and routing exist (next issue) this is how a client finds a
 * target.
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

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Actor addresses. An address is (node id, local id); the local id carries the
 * loop index in its top 8 bits, so a message finds its loop without a lookup
 * shared between threads.
 */
#ifndef CHAINFS_TYPES_H
#define CHAINFS_TYPES_H

#include <stdint.h>

typedef uint64_t cfs_addr_t;

#define CFS_ADDR(node, local) (((uint64_t)(uint32_t)(node) << 32) | (uint32_t)(local))
#define CFS_ADDR_NODE(a) ((uint32_t)((a) >> 32))
#define CFS_ADDR_LOCAL(a) ((uint32_t)(a))
#define CFS_LOCAL(loop, serial) ((((uint32_t)(loop)) << 24) | ((serial) & 0xffffffu))
#define CFS_LOCAL_LOOP(local) ((uint32_t)(local) >> 24)

/* Node id 0 on the wire means "the node that receives this frame": a client that
 * reached a node by host:port, not by id, addresses its actors that way. */
#define CFS_NODE_ANY 0u
/* Well-known local id of every node's control actor (ping, status). */
#define CFS_LOCAL_NODECTL CFS_LOCAL(0, 1)
/* Well-known local id of the cluster manager on the node that runs it: a node
 * or client that knows mgmtd only by host:port sends to CFS_ADDR(alias, this). */
#define CFS_LOCAL_MGMTD CFS_LOCAL(0, 2)

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Routing info as everyone outside mgmtd sees it, and the client-side cache
 * that keeps the newest copy.
 *
 * The vocabulary (states, flags) is in include/chainfs/cluster.h.
 *
 * The cache: an actor on a client loop subscribes to mgmtd
 * over its connection, takes every pushed update, polls at the heartbeat
 * interval to catch up on pushes it missed (and to keep its subscription
 * alive), and publishes each new version as an immutable, refcounted snapshot.
 * Any thread takes a snapshot with cfs_routing_get() and looks up a chain's
 * ordered members, a target or a node in it without locks; a snapshot never
 * changes, so a request uses one consistent view from start to end.
 */
#ifndef CFS_CLIENT_ROUTING_H
#define CFS_CLIENT_ROUTING_H

#include <stdbool.h>
#include <stdint.h>

#include "chainfs/proto.h"
#include "chainfs/types.h"

#include "chainfs/cluster.h"


/*
 * The routing arrays of either message that carries them (MGMTD_ROUTING_RESP
 * or ROUTING_UPDATE), borrowed from the message.
 */
struct cfs_routing_ref {
	uint64_t routing_ver;
	uint32_t heartbeat_ms;
	uint32_t lease_ms;
	const struct cfs_node_info *nodes;
	uint32_t nodes_count;
	const struct cfs_target_info *targets;
	uint32_t targets_count;
	const struct cfs_chain_info *chains;
	uint32_t chains_count;
	const struct cfs_chain_member *members;
	uint32_t members_count;
};

/* Fill ref from a MGMTD_ROUTING_RESP or ROUTING_UPDATE body; false for any
 * other type or when a chain's [first, first+count) leaves the members array. */
static inline bool
cfs_routing_ref_from(unsigned type, const void *body, struct cfs_routing_ref *ref)
{
#define CFS_ROUTING_REF_COPY(b)                                                                    \
	do {                                                                                       \
		ref->routing_ver = (b)->routing_ver;                                               \
		ref->heartbeat_ms = (b)->heartbeat_ms;                                             \
		ref->lease_ms = (b)->lease_ms;                                                     \
		ref->nodes = (b)->nodes;                                                           \
		ref->nodes_count = (b)->nodes_count;                                               \
		ref->targets = (b)->targets;                                                       \
		ref->targets_count = (b)->targets_count;                                           \
		ref->chains = (b)->chains;                                                         \
		ref->chains_count = (b)->chains_count;                                             \
		ref->members = (b)->members;                                                       \
		ref->members_count = (b)->members_count;                                           \
	} while (0)
	if (type == CFS_MSG_MGMTD_ROUTING_RESP)
		CFS_ROUTING_REF_COPY((const struct cfs_mgmtd_routing_resp *)body);
	else if (type == CFS_MSG_ROUTING_UPDATE)
		CFS_ROUTING_REF_COPY((const struct cfs_routing_update *)body);
	else
		return false;
#undef CFS_ROUTING_REF_COPY
	for (uint32_t i = 0; i < ref->chains_count; i++) {
		const struct cfs_chain_info *c = &ref->chains[i];

		if (c->first > ref->members_count || c->count > ref->members_count - c->first)
			return false;
	}
	return true;
}

/* ---------------------------------------------------------------- cache */

struct rt;
struct net;
struct cfs_routing;

/* One member of a chain, head first. */
struct cfs_route_member {
	uint32_t target;
	uint32_t node_id;
	cfs_addr_t addr; /* the storage actor: CFS_ADDR(node_id, local) */
	enum cfs_target_state state;
};

struct cfs_route_chain {
	uint64_t chain_id;
	uint32_t chain_ver;
	uint32_t count;
	const struct cfs_route_member *members; /* count entries, head first */
};

struct cfs_route_node {
	uint32_t node_id;
	enum cfs_node_state state;
	const char *endpoint; /* NUL-terminated, "host:port" */
};

struct cfs_route_target {
	uint32_t target;
	uint32_t node_id;
	cfs_addr_t addr;
	uint64_t chain_id; /* 0: in no chain */
	enum cfs_target_state state;
	enum cfs_local_state local_state;
};

/*
 * An immutable copy of one routing version. Arrays are sorted by id; chains[i]
 * is the i-th chain in chain id order, the order placement positions index.
 */
struct cfs_routing_snap {
	uint64_t routing_ver;
	uint32_t heartbeat_ms;
	uint32_t lease_ms;
	uint32_t nchains, ntargets, nnodes;
	const struct cfs_route_chain *chains;
	const struct cfs_route_target *targets;
	const struct cfs_route_node *nodes;
	int refs; /* atomic; owned by the snapshot functions */
};

/**
 * Build a snapshot from routing arrays (copies everything).
 * @return 0 and *out (one reference); -EINVAL (a chain member or target names
 *         an unknown target/node, duplicate ids), -ENOMEM.
 */
int cfs_routing_snap_build(const struct cfs_routing_ref *ref, struct cfs_routing_snap **out);
/** Drop a reference; the last one frees. Sets *ps to NULL. Any thread. */
void cfs_routing_snap_put(struct cfs_routing_snap **ps);
/** Take another reference. */
void cfs_routing_snap_ref(struct cfs_routing_snap *s);
/** The chain with this id, NULL when unknown. */
const struct cfs_route_chain *cfs_routing_chain(const struct cfs_routing_snap *s,
						uint64_t chain_id);
/** The target with this id, NULL when unknown. */
const struct cfs_route_target *cfs_routing_target(const struct cfs_routing_snap *s,
						  uint32_t target);
/** The node with this id, NULL when unknown. */
const struct cfs_route_node *cfs_routing_node(const struct cfs_routing_snap *s, uint32_t node_id);
/*
 * Chain roles. mgmtd keeps members ordered serving, syncing, waiting, then the
 * down ones (lastsrv, offline), so:
 *   head        members[0] when it is serving (writes enter here);
 *   write path  the serving members then the syncing one, in order: a write is
 *               forwarded along it and committed from its last member back;
 *   read set    the serving members (CRAQ: any of them answers a clean chunk);
 *   tail        the last serving member: the one a replica holding a pending
 *               version asks which version is committed.
 */
/** Index of the head, -1 when the chain has no serving member. */
int cfs_route_chain_head(const struct cfs_route_chain *c);
/** Index of the last serving member, -1 when none serves. */
int cfs_route_chain_tail(const struct cfs_route_chain *c);
/** Number of members on the write path (serving + syncing, a prefix of members). */
uint32_t cfs_route_chain_write_len(const struct cfs_route_chain *c);

struct cfs_routing_opts {
	cfs_addr_t mgmtd;    /* CFS_ADDR(node or alias, CFS_LOCAL_MGMTD) */
	struct net *net;     /* optional: nodes' endpoints are added as peers */
	unsigned loop;	     /* loop of the cache's actor; default 0 */
	uint32_t poll_ms;    /* 0: mgmtd's heartbeat interval (1000 until known) */
	uint32_t timeout_ms; /* per request; 0: the runtime's default */
};

/**
 * Start a routing cache on a running runtime: spawns its actor, which
 * subscribes at once. Call from a thread that is not that loop's.
 * @return 0 and *out; -EINVAL (no mgmtd address, loop out of range), -ENOMEM,
 *         rt_spawn's errors.
 */
int cfs_routing_create(struct rt *rt, const struct cfs_routing_opts *opts,
		       struct cfs_routing **out);
/** Stop the actor (waits for it) and free the cache; snapshots taken earlier stay
 *  valid until put. Call before the runtime shuts down, off its loop. Sets *pr NULL. */
void cfs_routing_destroy(struct cfs_routing **pr);
/** The newest snapshot (a new reference), or NULL when none arrived yet. Any thread. */
struct cfs_routing_snap *cfs_routing_get(struct cfs_routing *r);
/**
 * Wait until the cache holds a version >= min_ver (0: any), asking mgmtd at
 * once. Off the cache's loop only.
 * @return 0 and *out (a reference); -ETIMEDOUT after timeout_ms.
 */
int cfs_routing_wait(struct cfs_routing *r, uint64_t min_ver, uint32_t timeout_ms,
		     struct cfs_routing_snap **out);
/** Ask mgmtd for the newest version now (after a -CFS_ESTALECHAIN, say).
 *  Any thread; returns at once. @return 0, -ENOMEM. */
int cfs_routing_refresh(struct cfs_routing *r);
/** Last error of a poll (0 when the last one succeeded): for diagnostics. */
int cfs_routing_last_error(struct cfs_routing *r);

#endif

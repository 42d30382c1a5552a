/* SPDX-License-Identifier: MIT */
/*
 * The node-control actor: every chainfsd runs one, at the well-known address
 * (node, CFS_LOCAL_NODECTL). It answers ping and status and, when the node is
 * part of a cluster (mgmtd address set), it is the node's side of membership:
 *
 *   - registers the node and its storage targets with mgmtd and heartbeats
 *     every heartbeat interval (mgmtd tells the interval and the lease);
 *   - holds the newest routing info (pushed by mgmtd, or fetched when a
 *     heartbeat answer shows a newer version) and names every node of it to
 *     the transport, so storage actors reach their chain neighbours by
 *     CFS_ADDR(node, local);
 *   - keeps the node's lease: "valid until" = send time of the last heartbeat
 *     mgmtd answered + lease_ms, granted only once the node holds routing at
 *     least as new as that answer's version. mgmtd counts the same lease from
 *     when the heartbeat arrived, so the node always gives up first;
 *   - tells every local storage actor its chain and the lease with a one-way
 *     NODE_TARGET_ROUTING on every routing change and every lease renewal
 *     (it also carries mgmtd's address, for MGMTD_SYNC_DONE).
 *     A storage actor answers reads and writes only while
 *     rt_now_ns() < lease_until_ns and its state there is serving (or
 *     syncing, for forwarded writes);
 *   - takes NODE_TARGET_REPORT from storage actors: local state offline (disk
 *     failed), online, or up-to-date (it finished a resync), and the
 *     target's format id (sent once, with the first routing the actor gets),
 *     passed on to mgmtd with the next heartbeat, which is sent at once; and
 *     hands each actor the format id mgmtd knows for it, so a target made
 *     again serves nothing under the old one's state.
 *
 * Storage actors are found by walking the loops for actors of kind "storage"
 * tagged with a configured target id; a configured target without one is
 * reported offline.
 */
#ifndef CFS_ACTORS_NODECTL_H
#define CFS_ACTORS_NODECTL_H

#include "rt/rt.h"

struct net;

struct nodectl_target_config {
	uint32_t id;
	const char *path;
};

struct nodectl_config {
	const char *version;  /* shown by status */
	uint32_t node_id;     /* for mgmtd; 0: the runtime's node id */
	cfs_addr_t mgmtd;     /* CFS_ADDR(node or alias, CFS_LOCAL_MGMTD); 0: no cluster */
	const char *endpoint; /* host:port this node is reached at (registration) */
	struct net *net;      /* optional: peers learned from routing are added here */
	const struct nodectl_target_config *targets; /* copied during init */
	unsigned ntargets;
	uint32_t heartbeat_ms; /* until mgmtd tells its own; 0: 1000 */
};

/*
 * The kind; rt_spawn(loop0, &nodectl_kind, cfg, CFS_LOCAL_NODECTL, ...). init
 * errors: -EINVAL (mgmtd set without an endpoint, target id 0), -ENOMEM.
 */
extern const struct rt_actor_kind nodectl_kind;

#endif

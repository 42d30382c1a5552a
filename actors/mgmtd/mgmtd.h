/* SPDX-License-Identifier: MIT */
/*
 * The cluster manager actor, as a node spawns it: one per cluster, at the
 * well-known address (node, CFS_LOCAL_MGMTD) on loop 0. It keeps nodes,
 * targets and chains in SQLite, takes registrations and heartbeats, decides
 * target public states and chain order, and pushes versioned routing info to
 * its subscribers. actors/mgmtd/README.md has the messages and the state table.
 */
#ifndef CFS_ACTORS_MGMTD_H
#define CFS_ACTORS_MGMTD_H

#include <stdint.h>

#include "client/routing.h"
#include "rt/rt.h"

#define MGMTD_DEFAULT_HEARTBEAT_MS 1000
#define MGMTD_DEFAULT_LEASE_MS	   10000

/* What rt_spawn(loop, &mgmtd_kind, cfg, CFS_LOCAL_MGMTD, ...) takes; read during init only. */
struct mgmtd_config {
	const char *db_path;   /* SQLite file, created if missing */
	uint32_t heartbeat_ms; /* told to nodes; 0: default */
	uint32_t lease_ms;     /* a node silent this long is down; 0: default */
};

/*
 * The actor kind. init opens (or creates) the database, loads the state and
 * gives every node that was up a full lease from now. init errors: -EINVAL
 * (no db_path), -CFS_ECONFIG (lease_ms not above heartbeat_ms), -EIO (the
 * database cannot be opened, is not a mgmtd database, or a query fails),
 * -ENOMEM.
 */
extern const struct rt_actor_kind mgmtd_kind;

#endif

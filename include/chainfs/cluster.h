/* SPDX-License-Identifier: MIT */
/*
 * The vocabulary of the cluster messages of proto.def: target public and local
 * states, node states, MGMTD_ROUTING flags. Constants only, so actors and
 * custom clients include it without linking anything.
 */
#ifndef CHAINFS_CLUSTER_H
#define CHAINFS_CLUSTER_H

#include <stdint.h>

#include "chainfs/types.h"



/* Public state of a target in its chain, decided by mgmtd (3FS's states). */
/* clang-format off */
#define CFS_TARGET_STATES(X)                                                  \
	X(SERVING, 0, "serving")	/* reads and writes */                     \
	X(SYNCING, 1, "syncing")	/* takes forwarded writes, being filled */ \
	X(WAITING, 2, "waiting")	/* alive, waits its turn to sync */        \
	X(LASTSRV, 3, "lastsrv")	/* down, was the chain's last serving */   \
	X(OFFLINE, 4, "offline")	/* down */

enum cfs_target_state {
#define X(uc, n, s) CFS_TS_##uc = n,
	CFS_TARGET_STATES(X)
#undef X
	CFS_TS__COUNT
};

/* Local state of a target as its node reports it. */
#define CFS_LOCAL_STATES(X)                                                         \
	X(UPTODATE, 0, "up-to-date")	/* holds every committed write of its chain */ \
	X(ONLINE, 1, "online")		/* alive, data may be behind */                   \
	X(OFFLINE, 2, "offline")	/* down or its disk failed */

enum cfs_local_state {
#define X(uc, n, s) CFS_LS_##uc = n,
	CFS_LOCAL_STATES(X)
#undef X
	CFS_LS__COUNT
};
/* clang-format on */

enum cfs_node_state {
	CFS_NODE_UP = 0,
	CFS_NODE_DOWN = 1, /* missed its lease: its targets count as offline */
};

/* MGMTD_ROUTING flags. */
enum {
	/* Register (sender address, connection) for ROUTING_UPDATE pushes until
	 * one lease passes without another subscribe or heartbeat from it. */
	CFS_ROUTING_F_SUBSCRIBE = 1u << 0,
	/* Send the full info even when known_ver is current (admin listings). */
	CFS_ROUTING_F_FULL = 1u << 1,
};

/** "serving", ...; "?" out of range. */
static inline const char *
cfs_target_state_name(uint32_t s)
{
	static const char *const names[] = {
#define X(uc, n, str) [n] = str,
		CFS_TARGET_STATES(X)
#undef X
	};
	return s < CFS_TS__COUNT ? names[s] : "?";
}

/** "up-to-date", ...; "?" out of range. */
static inline const char *
cfs_local_state_name(uint32_t s)
{
	static const char *const names[] = {
#define X(uc, n, str) [n] = str,
		CFS_LOCAL_STATES(X)
#undef X
	};
	return s < CFS_LS__COUNT ? names[s] : "?";
}

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The storage target actor: one per configured [target.ID], living on one
 * loop, owning one chunk engine target (src/disk) and answering the chunk_*
 * and target_stats messages of proto.def. This header is what a node needs to
 * spawn one; the handlers' shared internals are in storage_internal.h.
 */
#ifndef CFS_ACTORS_STORAGE_H
#define CFS_ACTORS_STORAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "disk/disk.h"
#include "rt/rt.h"

/* Defaults of what the transport accepts: largest payload and header of one frame. */
#define STOR_DEFAULT_MAX_REPLY (64u << 20)
#define STOR_DEFAULT_MAX_HDR   (1u << 20)

/* What rt_spawn(loop, &stor_kind, cfg, ...) takes. Only read during init. */
struct stor_config {
	uint32_t target_id; /* 1.. ; shown as the actor's tag in `status` */
	const char *path;   /* the target's directory (created if missing) */
	uint64_t capacity;  /* bytes of data files the target may use */
	uint64_t max_reply; /* largest read payload per reply; 0: STOR_DEFAULT_MAX_REPLY */
	uint32_t max_hdr;   /* largest frame header ([net] max_frame_header); 0: default */
	enum disk_sync_mode sync_mode;
	enum disk_prep_mode prep;
	/* How long a committed remove's request stays known
	 * (disk_target_opts.removed_retention_ms); 0: the engine's default. */
	uint64_t removed_retention_ms;
	/* Part of a cluster (chainfsd has a [node] mgmtd or runs mgmtd): requests
	 * are checked against the routing nodectl pushes (NODE_TARGET_ROUTING) and
	 * writes go down the chain (CRAQ, craq.c). false: a standalone target,
	 * head and tail of itself, chain_ver 0 only. */
	bool in_cluster;
};

/* chunk_write.flags: set by a replica forwarding a write to its successor,
 * with update_ver the version the head assigned. Clients leave it clear. */
#define STOR_CW_F_FORWARD (1u << 0)
/* With STOR_CW_F_FORWARD: a resync copy of a whole chunk (offset 0, len its
 * length) at committed version update_ver, installed as is (resync.c). */
#define STOR_CW_F_SYNC (1u << 1)
/* With STOR_CW_F_FORWARD: the payload is the whole content (offset 0) of
 * version update_ver, stored as is (DISK_W_REPLACE) and forwarded on like any
 * forwarded write: how a head re-drives a version an earlier attempt left
 * pending (craq.c). The receiver compares it with what it holds. */
#define STOR_CW_F_WHOLE (1u << 2)

/* chunk_list_resp.features: what the answering target's build takes beyond
 * the first protocol (0 from older builds, which close a connection that
 * brings an unknown message). A resync sends its records of removes
 * (chunk_removed) only to a target that names this. */
#define STOR_FEAT_REMOVED_RECORDS (1u << 0)

/*
 * The actor kind. init opens the target (blocking: it loads the index) on the
 * actor's loop and tags the actor with the target id; init errors are those of
 * disk_target_open plus -EINVAL (target id 0, no path, capacity 0). fini closes
 * the target, completing every operation still in flight.
 */
extern const struct rt_actor_kind stor_kind;

#endif

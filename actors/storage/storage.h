/* SPDX-License-Identifier: MIT */
/*
 * The storage target actor: one per configured [target.ID], living on one
 * loop, owning one chunk engine target (src/disk) and answering the chunk_*
 * and target_stats messages of proto.def. This header is what a node needs to
 * spawn one; the handlers' shared internals are in storage_internal.h.
 */
#ifndef CFS_ACTORS_STORAGE_H
#define CFS_ACTORS_STORAGE_H

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
};

/*
 * The actor kind. init opens the target (blocking: it loads the index) on the
 * actor's loop and tags the actor with the target id; init errors are those of
 * disk_target_open plus -EINVAL (target id 0, no path, capacity 0). fini closes
 * the target, completing every operation still in flight.
 */
extern const struct rt_actor_kind stor_kind;

#endif

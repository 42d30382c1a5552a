// SPDX-License-Identifier: MIT
/*
 * The storage actor's read-only views, answered at once from the engine's
 * in-memory index and counters (no disk I/O): chunk_query (one chunk's
 * length, CRC and versions), chunk_list (a page of chunks in id order) and
 * target_stats (space and I/O counters).
 */
#define RT_LOG_SUBSYS "storage"
#include "actors/storage/storage_internal.h"

#include <errno.h>
#include <stdlib.h>

int
stor_on_chunk_query(struct rt_actor *self, struct rt_msg *req)
{
	struct stor_target *t = rt_actor_state(self);
	const struct cfs_chunk_query *m = RT_BODY(req, chunk_query);
	struct cfs_chunk_query_resp *r;
	struct disk_chunk_info info;
	struct rt_msg *resp;
	int rc;

	/* A replica asking which version its tail committed names its chain
	 * version: a tail past its lease, or moved on, must not answer for a
	 * chain mgmtd may have rebuilt without it. Tools send 0. */
	if (m->chain_ver != 0)
		rc = stor_check_chain(t, m->target, m->chain_ver, STOR_USE_READ);
	else
		rc = stor_check_target(t, m->target, 0);
	if (rc == 0 && !stor_id_valid(&m->chunk))
		rc = -EINVAL;
	if (rc != 0)
		t->rejected++;
	if (rc == 0)
		rc = disk_query(t->dt, &m->chunk, &info);
	if (rc != 0 && rc != -CFS_ENOCHUNK) {
		stor_log_fail(t, "query", &m->chunk, rc);
		return rc;
	}
	resp = rt_msg_new(CFS_MSG_CHUNK_QUERY_RESP);
	if (!resp)
		return -ENOMEM;
	r = RT_BODY(resp, chunk_query_resp);
	/* Also with ENOCHUNK: a resync learns from every answer which target,
	 * as made, it talks to. */
	r->format_id = t->format_id;
	if (rc != 0) {
		rt_reply(req, rc, resp);
		return 0;
	}
	r->len = info.len;
	r->crc = info.crc;
	r->committed = info.ver;
	r->pending = info.pver;
	r->chunk_size = info.chunk_size;
	r->ptomb = info.ptomb;
	rt_reply(req, 0, resp);
	return 0;
}

int
stor_on_chunk_list(struct rt_actor *self, struct rt_msg *req)
{
	struct stor_target *t = rt_actor_state(self);
	const struct cfs_chunk_list *m = RT_BODY(req, chunk_list);
	struct cfs_chunk_list_resp *r;
	struct disk_chunk_info *info;
	struct rt_msg *resp;
	unsigned max;
	bool more = false;
	int rc, n;

	rc = stor_check_target(t, m->target, 0);
	if (rc != 0) {
		t->rejected++;
		stor_log_fail(t, "list", NULL, rc);
		return rc;
	}
	max = m->max ? m->max : STOR_LIST_DEFAULT;
	if (max > t->max_list)
		max = t->max_list;
	resp = rt_msg_new(CFS_MSG_CHUNK_LIST_RESP);
	info = malloc(max * sizeof(*info));
	if (!resp || !info) {
		rc = -ENOMEM;
		goto out;
	}
	/* An all-zero bound is "none": it is also the smallest id, and no chunk
	 * has it (stor_id_valid), so begin needs no special case; end does. */
	n = disk_list(t->dt, &m->begin, stor_id_valid(&m->end) ? &m->end : NULL, info, max, &more);
	r = RT_BODY(resp, chunk_list_resp);
	r->chunks = rt_msg_alloc(resp, (size_t)n * sizeof(*r->chunks));
	if (!r->chunks) {
		rc = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		r->chunks[i] = (struct cfs_chunk_meta){
			.chunk = info[i].id,
			.len = info[i].len,
			.crc = info[i].crc,
			.committed = info[i].ver,
			.pending = info[i].pver,
			.ptomb = info[i].ptomb,
		};
	}
	r->chunks_count = (uint32_t)n;
	r->more = more;
	r->format_id = t->format_id;
	r->features = STOR_FEAT_REMOVED_RECORDS;
	free(info);
	rt_reply(req, 0, resp);
	return 0;

out:
	free(info);
	rt_msg_free(&resp);
	return rc;
}

int
stor_on_target_stats(struct rt_actor *self, struct rt_msg *req)
{
	struct stor_target *t = rt_actor_state(self);
	const struct cfs_target_stats *m = RT_BODY(req, target_stats);
	struct cfs_target_stats_resp *r;
	struct disk_stats st;
	struct rt_msg *resp;

	/* Target 0 asks "whichever target you are", for tools that found the
	 * actor by address and not yet by id. */
	if (m->target != 0 && m->target != t->id)
		return -CFS_ENOACTOR;
	resp = rt_msg_new(CFS_MSG_TARGET_STATS_RESP);
	if (!resp)
		return -ENOMEM;
	r = RT_BODY(resp, target_stats_resp);
	if (rt_msg_set_str(resp, &r->path, disk_target_path(t->dt)) != 0) {
		rt_msg_free(&resp);
		return -ENOMEM;
	}
	disk_stats(t->dt, &st);
	r->target = t->id;
	r->capacity = st.capacity;
	r->used = st.used;
	r->free = st.free;
	r->chunks = st.chunks;
	r->reads = st.reads;
	r->writes = st.writes;
	r->read_bytes = st.read_bytes;
	r->write_bytes = st.write_bytes;
	r->checksum_errors = st.checksum_errors;
	r->io_errors = st.io_errors;
	r->allocated = st.allocated;
	r->commits = st.commits;
	r->commit_items = st.commit_items;
	r->rejected = t->rejected;
	r->sync_compared = t->sync_compared;
	r->sync_copied = t->sync_copied;
	r->sync_removed = t->sync_removed;
	r->sync_resumed = t->sync_resumed;
	r->sync_records = t->sync_records;
	r->format_id = t->format_id;
	rt_reply(req, 0, resp);
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * The storage target actor's kind: its handler table, init (open the chunk
 * engine target on the actor's loop) and fini (close it), plus what every
 * handler shares: the target and chain checks and the rate-limited event log.
 * The handlers themselves are in write.c (write, remove, truncate), read.c and
 * admin.c (query, list, target_stats).
 */
#define RT_LOG_SUBSYS "storage"
#include "actors/storage/storage_internal.h"

#include <errno.h>
#include <inttypes.h>

#include "chainfs/cluster.h"

void
stor_id_str(const struct cfs_id128 *id, char out[STOR_ID_STR])
{
	static const char hex[] = "0123456789abcdef";

	for (unsigned i = 0; i < sizeof(id->b); i++) {
		out[2 * i] = hex[id->b[i] >> 4];
		out[2 * i + 1] = hex[id->b[i] & 15];
	}
	out[2 * sizeof(id->b)] = '\0';
}

bool
stor_id_valid(const struct cfs_id128 *id)
{
	for (unsigned i = 0; i < sizeof(id->b); i++) {
		if (id->b[i] != 0)
			return true;
	}
	return false;
}

int
stor_check_target(const struct stor_target *t, uint32_t target, uint32_t chain_ver)
{
	if (target != t->id)
		return -CFS_ENOACTOR;
	if (chain_ver != 0 && (!t->in_cluster || chain_ver != t->chain.chain_ver))
		return -CFS_ESTALECHAIN;
	return 0;
}

int
stor_check_chain(const struct stor_target *t, uint32_t target, uint32_t chain_ver,
		 enum stor_use use)
{
	const struct stor_chain *c = &t->chain;

	if (target != t->id)
		return -CFS_ENOACTOR;
	if (!t->in_cluster)
		return chain_ver == 0 ? 0 : -CFS_ESTALECHAIN;
	/* Past its lease mgmtd may already have moved the chain on without us:
	 * whatever we hold may be stale, so nothing is answered until nodectl
	 * pushes routing with a fresh lease. */
	if (c->chain_ver == 0 || c->pos < 0 || rt_now_ns(t->loop) >= c->lease_until_ns)
		return -CFS_ENOTSERVING;
	if (chain_ver != c->chain_ver)
		return -CFS_ESTALECHAIN;
	switch (use) {
	case STOR_USE_READ:
		return c->public_state == CFS_TS_SERVING ? 0 : -CFS_ENOTSERVING;
	case STOR_USE_WRITE:
		return c->public_state == CFS_TS_SERVING && c->pos == c->head ? 0
									      : -CFS_ENOTSERVING;
	case STOR_USE_FORWARD:
		return c->pos > c->head && (c->public_state == CFS_TS_SERVING ||
					    c->public_state == CFS_TS_SYNCING)
			       ? 0
			       : -CFS_ENOTSERVING;
	}
	return -CFS_ENOTSERVING;
}

/* Tell our nodectl (who sent us routing) the target's format id, for mgmtd;
 * one-way, again with the next routing if it could not be sent. */
static void
tell_format(struct stor_target *t, cfs_addr_t nodectl)
{
	struct rt_msg *m = rt_msg_new(CFS_MSG_NODE_TARGET_REPORT);
	struct cfs_node_target_report *b;

	if (!m)
		return;
	b = RT_BODY(m, node_target_report);
	b->target = t->id;
	b->local_state = CFS_LS__COUNT; /* no word on our state */
	b->format_id = t->format_id;
	m->dst = nodectl;
	m->flags |= RT_MSG_F_ONEWAY;
	if (rt_send(t->self, m) != 0) {
		rt_msg_free(&m);
		return;
	}
	t->format_told = true;
}

/*
 * NODE_TARGET_ROUTING: nodectl's view of our chain (one-way, node-local).
 * Taken as it comes, newest routing_ver wins; a lease extension with the same
 * routing_ver refreshes only the lease. A chain longer than STOR_MAX_CHAIN or
 * one we are not in leaves us without a chain (every data request refused).
 * Only our own nodectl sends it (the runtime refuses one from a connection:
 * cfs_msg_node_local).
 */
int
stor_on_node_target_routing(struct rt_actor *self, struct rt_msg *req)
{
	struct stor_target *t = rt_actor_state(self);
	const struct cfs_node_target_routing *m = RT_BODY(req, node_target_routing);
	struct stor_chain *c = &t->chain;
	uint32_t old_ver = c->chain_ver, old_state = c->public_state;
	bool was_head = c->pos >= 0 && c->pos == c->head;

	if (m->target != t->id)
		return -CFS_ENOACTOR;
	if (m->routing_ver < c->routing_ver)
		return -ESTALE;
	c->routing_ver = m->routing_ver;
	c->lease_until_ns = m->lease_until_ns;
	c->chain_id = m->chain_id;
	c->public_state = m->public_state;
	c->mgmtd = m->mgmtd;
	/* mgmtd's state is about the target it knew. Made again under our id
	 * (an emptied directory, a new disk), we are not that one: serve
	 * nothing until mgmtd has taken us for a new member (the format id
	 * our node reports) and sends our own state. */
	if (m->format_id != 0 && m->format_id != t->format_id) {
		if (c->public_state != CFS_TS_OFFLINE)
			RT_WARN("target=%" PRIu32 ": routing names format %016" PRIx64
				", this is %016" PRIx64 ": not serving until mgmtd knows it",
				t->id, m->format_id, t->format_id);
		c->public_state = CFS_TS_OFFLINE;
	}
	/* A resync begins: what it installs replaces our chunks, versions and
	 * the requests that made them. The ring's memory of requests from
	 * before would answer a retry from a chunk we no longer hold (a pending
	 * version taken for committed because a newer life's version number is
	 * higher): retries ask the engine again. */
	if (c->public_state == CFS_TS_SYNCING && old_state != CFS_TS_SYNCING)
		craq_dedup_forget(t);
	if (!t->format_told)
		tell_format(t, req->src);
	c->pos = -1;
	c->count = 0;
	c->chain_ver = 0;
	if (m->members_count > STOR_MAX_CHAIN) {
		RT_WARN("target=%" PRIu32 ": chain %" PRIu64 " has %" PRIu32
			" members, at most %u supported: not serving",
			t->id, m->chain_id, m->members_count, STOR_MAX_CHAIN);
		rt_reply(req, -E2BIG, NULL);
		return 0;
	}
	for (uint32_t i = 0; i < m->members_count; i++) {
		c->members[i] = m->members[i];
		if (m->members[i].target == t->id)
			c->pos = (int)i;
	}
	c->count = m->members_count;
	c->head = c->succ = c->rtail = -1;
	for (uint32_t i = 0; i < c->count; i++) {
		/* Our own state is the one addressed to us. */
		uint32_t st = (int)i == c->pos ? c->public_state : c->members[i].public_state;

		if (st != CFS_TS_SERVING && st != CFS_TS_SYNCING)
			continue;
		if (c->head < 0)
			c->head = (int)i;
		if (st == CFS_TS_SERVING)
			c->rtail = (int)i;
		if (c->succ < 0 && c->pos >= 0 && (int)i > c->pos)
			c->succ = (int)i;
	}
	if (c->pos >= 0)
		c->chain_ver = m->chain_ver;
	RT_DEBUG("target=%" PRIu32 ": routing %" PRIu64 " chain %" PRIu64 " v%" PRIu32
		 " pos %d/%" PRIu32 " state %" PRIu32,
		 t->id, c->routing_ver, c->chain_id, c->chain_ver, c->pos, c->count,
		 c->public_state);
	rt_reply(req, 0, NULL);
	craq_routing_changed(t, old_ver, was_head);
	stor_sync_maybe_start(t);
	return 0;
}

bool
stor_log_ok(struct stor_target *t)
{
	uint64_t now = rt_now_ns(t->loop);

	if (now - t->log_window_ns >= 1000000000u) {
		if (t->log_suppressed)
			RT_WARN("target=%" PRIu32 ": %" PRIu64 " error lines suppressed", t->id,
				t->log_suppressed);
		t->log_window_ns = now;
		t->log_lines = 0;
		t->log_suppressed = 0;
	}
	if (t->log_lines < STOR_LOG_PER_SEC) {
		t->log_lines++;
		return true;
	}
	t->log_suppressed++;
	return false;
}

/* Outcomes that are the caller's business, not the operator's. */
static bool
is_client_error(int rc)
{
	switch (rc) {
	case -EINVAL:
	case -ESTALE:
	case -ERANGE:
	case -EBUSY:
	case -CFS_ENOCHUNK:
	case -CFS_ENOACTOR:
	case -CFS_ESTALECHAIN:
	case -CFS_ENOTSERVING:
	case -EOPNOTSUPP:
	case -CFS_ETOOBIG:
		return true;
	default:
		return false;
	}
}

void
stor_log_fail(struct stor_target *t, const char *what, const struct cfs_id128 *chunk, int rc)
{
	char id[STOR_ID_STR] = "-";

	if (chunk)
		stor_id_str(chunk, id);
	if (is_client_error(rc)) {
		RT_DEBUG("target=%" PRIu32 " chunk=%s %s refused: %s", t->id, id, what,
			 cfs_errname(rc));
		return;
	}
	if (!stor_log_ok(t))
		return;
	RT_WARN("target=%" PRIu32 " chunk=%s %s failed: %s (%d) %s", t->id, id, what,
		cfs_errname(rc), rc, cfs_strerror(rc));
}

static int
stor_init(struct rt_actor *self, const void *arg)
{
	const struct stor_config *cfg = arg;
	struct stor_target *t = rt_actor_state(self);
	struct disk_target_opts o = {0};
	uint32_t hdr, room;
	int rc;

	if (!cfg || cfg->target_id == 0 || !cfg->path || !cfg->path[0] || cfg->capacity == 0)
		return -EINVAL;
	t->self = self;
	t->loop = rt_actor_loop(self);
	t->id = cfg->target_id;
	t->in_cluster = cfg->in_cluster;
	t->chain.pos = t->chain.head = t->chain.succ = t->chain.rtail = -1;
	t->max_reply = cfg->max_reply ? cfg->max_reply : STOR_DEFAULT_MAX_REPLY;
	hdr = cfg->max_hdr ? cfg->max_hdr : STOR_DEFAULT_MAX_HDR;
	room = hdr > STOR_HDR_SLACK ? hdr - STOR_HDR_SLACK : 0;
	t->max_reads =
		room / STOR_RESULT_WIRE < STOR_MAX_READS ? room / STOR_RESULT_WIRE : STOR_MAX_READS;
	t->max_list = room / STOR_META_WIRE < STOR_LIST_MAX ? room / STOR_META_WIRE : STOR_LIST_MAX;
	t->max_records = room / STOR_RECORD_WIRE < STOR_SYNC_RECORDS ? room / STOR_RECORD_WIRE
								     : STOR_SYNC_RECORDS;
	if (t->max_reads == 0 || t->max_list == 0 || t->max_records == 0)
		return -EINVAL;
	/* Failures are logged by the engine and by whoever spawned us (with the
	 * target's id and path), not a third time here. */
	rc = disk_aio_get(rt_loop_ev(t->loop), &t->e);
	if (rc != 0)
		return rc;
	o.path = cfg->path;
	o.capacity = cfg->capacity;
	o.target_id = cfg->target_id;
	o.sync_mode = cfg->sync_mode;
	o.prep = cfg->prep;
	o.removed_retention_ms = cfg->removed_retention_ms;
	rc = disk_target_open(t->e, &o, &t->dt);
	if (rc != 0) {
		disk_aio_put(&t->e);
		return rc;
	}
	t->format_id = disk_target_format_id(t->dt);
	rc = craq_init(t);
	if (rc != 0) {
		disk_target_close(&t->dt);
		disk_aio_put(&t->e);
		return rc;
	}
	stor_sync_init(t);
	/* The engine logs the open (chunks, time) and the node the address. */
	rt_actor_set_tag(self, t->id);
	return 0;
}

static void
stor_fini(struct rt_actor *self)
{
	struct stor_target *t = rt_actor_state(self);

	/* Operations in flight complete (and reply) from inside close. */
	t->stopping = true;
	stor_sync_fini(t);
	disk_target_close(&t->dt);
	craq_fini(t);
	disk_aio_put(&t->e);
}

static const rt_handler_fn stor_handlers[CFS_MSG__COUNT] = {
	[CFS_MSG_CHUNK_WRITE] = stor_on_chunk_write,
	[CFS_MSG_CHUNK_READ] = stor_on_chunk_read,
	[CFS_MSG_CHUNK_REMOVE] = stor_on_chunk_remove,
	[CFS_MSG_CHUNK_TRUNCATE] = stor_on_chunk_truncate,
	[CFS_MSG_CHUNK_QUERY] = stor_on_chunk_query,
	[CFS_MSG_CHUNK_LIST] = stor_on_chunk_list,
	[CFS_MSG_CHUNK_REMOVED] = stor_on_chunk_removed,
	[CFS_MSG_TARGET_STATS] = stor_on_target_stats,
	[CFS_MSG_NODE_TARGET_ROUTING] = stor_on_node_target_routing,
};

const struct rt_actor_kind stor_kind = {
	.name = "storage",
	.state_size = sizeof(struct stor_target),
	.init = stor_init,
	.fini = stor_fini,
	.handlers = stor_handlers,
};

// SPDX-License-Identifier: MIT
/*
 * The mgmtd actor: cluster operations on struct mgmtd_state (registration,
 * heartbeat, lease expiry, sync done, offline-target, create-chains) and the
 * kind that exposes them as messages. Every operation checks its whole input
 * first, then changes memory, then commits to SQLite; only a committed routing
 * version is ever answered or pushed. A failed commit reloads the state from
 * the database, so memory never runs ahead of what survives a restart.
 */
#define RT_LOG_SUBSYS "mgmtd"
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "actors/mgmtd/mgmtd_internal.h"

/* Real node ids stay below the transport's alias range (net.h NET_ALIAS_BASE). */
#define NODE_ID_MAX 0xfeffffffu

/* ---------------------------------------------------------- operations */

static bool
anything_dirty(const struct mgmtd_state *s)
{
	if (s->config_dirty || s->routing_changed)
		return true;
	for (uint32_t i = 0; i < s->nnodes; i++) {
		if (s->nodes[i].dirty)
			return true;
	}
	for (uint32_t i = 0; i < s->ntargets; i++) {
		if (s->targets[i].dirty)
			return true;
	}
	for (uint32_t i = 0; i < s->nchains; i++) {
		if (s->chains[i].dirty)
			return true;
	}
	return false;
}

/* A change that makes the routing larger than any node accepts by default
 * (MGMTD_ROUTING_MAX) is refused with -ENOSPC: nobody could fetch the routing
 * any more, and every lease would lapse. Only growth is refused: a routing
 * already that large (a database from before) still takes state changes. */
static int
routing_fits(struct mgmtd_state *s)
{
	size_t bytes;

	if (!s->routing_changed)
		return 0;
	bytes = mgmtd_routing_bytes(s);
	if (bytes > MGMTD_ROUTING_MAX && bytes > s->routing_bytes) {
		RT_WARN("the routing would take %zu bytes, more than %u: change refused", bytes,
			MGMTD_ROUTING_MAX);
		return -ENOSPC;
	}
	s->routing_bytes = bytes;
	return 0;
}

int
mgmtd_commit(struct mgmtd_state *s, uint64_t now_ns, bool *changed)
{
	bool bumped = false;
	int rc;

	if (changed)
		*changed = false;
	if (!anything_dirty(s))
		return 0;
	if (s->routing_changed) {
		s->routing_ver++;
		s->config_dirty = true;
		bumped = true;
		for (uint32_t i = 0; i < s->ntargets; i++) {
			if (s->targets[i].state_changed) {
				s->targets[i].state_ver = s->routing_ver;
				s->targets[i].state_changed = false;
				s->targets[i].dirty = true;
			}
		}
		s->routing_changed = false;
	}
	rc = mgmtd_db_save(s);
	if (rc != 0) {
		int rrc = mgmtd_db_reload(s, now_ns);

		RT_ERR(rc, "commit failed; state reloaded from the database (reload rc=%d)", rrc);
		return rrc != 0 ? rrc : rc;
	}
	if (bumped)
		RT_INFO("routing_ver=%" PRIu64 ": committed", s->routing_ver);
	if (changed)
		*changed = bumped;
	return 0;
}

static bool
valid_text(const struct cfs_bytes *b, size_t max, bool allow_empty)
{
	if (b->len == 0)
		return allow_empty;
	if (b->len >= max || !b->p)
		return false;
	return memchr(b->p, '\0', b->len) == NULL;
}

static char *
bytes_dup(const struct cfs_bytes *b)
{
	char *s = malloc((size_t)b->len + 1);

	if (s) {
		if (b->len)
			memcpy(s, b->p, b->len);
		s[b->len] = '\0';
	}
	return s;
}

static bool
bytes_eq(const struct cfs_bytes *b, const char *s)
{
	return s && strlen(s) == b->len && (b->len == 0 || memcmp(s, b->p, b->len) == 0);
}

/* Everything a register or heartbeat carries, checked before any change. */
static int
check_reports(struct mgmtd_state *s, uint32_t node_id, const struct cfs_target_report *r,
	      uint32_t n)
{
	/* Bounded, so that the duplicate check below stays cheap: a report is
	 * handled on mgmtd's loop, where a slow one holds off the heartbeats
	 * that keep every node's lease. */
	if (n > MGMTD_NODE_TARGETS_MAX) {
		RT_WARN("node=%" PRIu32 " reports %" PRIu32 " targets, more than %u: refused",
			node_id, n, MGMTD_NODE_TARGETS_MAX);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct mgmtd_target *t;

		if (r[i].target == 0 || r[i].local_state >= CFS_LS__COUNT ||
		    !valid_text(&r[i].path, MGMTD_PATH_MAX, true))
			return -EINVAL;
		for (uint32_t j = 0; j < i; j++) {
			if (r[j].target == r[i].target)
				return -EINVAL;
		}
		t = mgmtd_target_find(s, r[i].target);
		if (t && t->node != node_id) {
			RT_WARN("node=%" PRIu32 " reports target=%" PRIu32
				" which belongs to node=%" PRIu32 ": refused",
				node_id, t->id, t->node);
			return -CFS_ETARGETOWNED;
		}
	}
	return 0;
}

/* A node's lease is renewed only by a report that took effect. A refused one
 * is undone by a reload, which keeps the heartbeat times it finds: set
 * before, they would keep a node whose every report fails counted as up,
 * while the node, taking no lease from an error answer, serves nothing. */
static int
renew_lease(struct mgmtd_state *s, uint32_t node_id, uint64_t now_ns, int rc)
{
	struct mgmtd_node *n = rc == 0 ? mgmtd_node_find(s, node_id) : NULL;

	if (n) {
		n->last_hb_ns = now_ns;
		n->last_hb_wall_ms = s->wall_ms;
	}
	return rc;
}

/* Apply a node's report: endpoint, its targets' local states. */
static int
apply_node(struct mgmtd_state *s, uint64_t now_ns, struct mgmtd_node *node,
	   uint64_t node_routing_ver, const struct cfs_target_report *r, uint32_t n)
{
	if (node->state != CFS_NODE_UP) {
		RT_INFO("node=%" PRIu32 " endpoint=%s: up", node->id, node->endpoint);
		node->state = CFS_NODE_UP;
		node->dirty = true;
		s->routing_changed = true;
	}
	s->reports++;
	for (uint32_t i = 0; i < n; i++) {
		struct mgmtd_target *t = mgmtd_target_find(s, r[i].target);
		enum cfs_local_state ls = (enum cfs_local_state)r[i].local_state;

		if (!t) {
			t = mgmtd_target_add(s, r[i].target);
			if (!t)
				return -ENOMEM;
			t->path = bytes_dup(&r[i].path);
			if (!t->path)
				return -ENOMEM;
			t->node = node->id;
			t->addr = r[i].addr;
			t->format_id = r[i].format_id;
			t->local_state = ls;
			t->public_state = CFS_TS_OFFLINE;
			t->listed = s->reports;
			t->dirty = true;
			s->routing_changed = true;
			RT_INFO("node=%" PRIu32 " target=%" PRIu32 " path=%s: new", node->id, t->id,
				t->path);
			continue;
		}
		t->listed = s->reports;
		/* An "up-to-date" said before the node saw the target's last state
		 * change is about a state that is gone: count it as online. */
		if (ls == CFS_LS_UPTODATE && node_routing_ver < t->state_ver)
			ls = CFS_LS_ONLINE;
		/* Made again under its id (an emptied directory, a new disk): not
		 * the target the chain knew. It leaves the chain's live members
		 * as if it had gone down, and comes back through a resync. */
		if (r[i].format_id != 0 && r[i].format_id != t->format_id) {
			if (t->format_id != 0) {
				RT_WARN("node=%" PRIu32 " target=%" PRIu32 ": format %016" PRIx64
					" replaces %016" PRIx64 ": a new target, it resyncs",
					node->id, t->id, r[i].format_id, t->format_id);
				ls = CFS_LS_OFFLINE;
				t->replaced = t->chain_id != 0;
			}
			t->format_id = r[i].format_id;
			t->dirty = true;
			s->routing_changed = true;
		}
		if (t->addr != r[i].addr) {
			t->addr = r[i].addr;
			t->dirty = true;
			s->routing_changed = true;
		}
		if (!bytes_eq(&r[i].path, t->path)) {
			char *p = bytes_dup(&r[i].path);

			if (!p)
				return -ENOMEM;
			free(t->path);
			t->path = p;
			t->dirty = true;
			s->routing_changed = true;
		}
		if (t->local_state != ls) {
			t->local_state = ls;
			t->dirty = true;
		}
	}
	/* A target the node no longer reports is gone from it. */
	for (uint32_t i = 0; i < s->ntargets; i++) {
		struct mgmtd_target *t = &s->targets[i];

		if (t->node != node->id)
			continue;
		if (t->listed != s->reports && t->local_state != CFS_LS_OFFLINE) {
			t->local_state = CFS_LS_OFFLINE;
			t->dirty = true;
		}
	}
	mgmtd_chains_update_node(s, node->id);
	return 0;
}

int
mgmtd_op_register(struct mgmtd_state *s, uint64_t now_ns, uint32_t node_id, const char *endpoint,
		  size_t endpoint_len, const struct cfs_target_report *targets, uint32_t ntargets,
		  bool *changed)
{
	struct cfs_bytes ep = {.p = (const uint8_t *)endpoint, .len = (uint32_t)endpoint_len};
	struct mgmtd_node *node;
	int rc;

	if (changed)
		*changed = false;
	if (node_id == 0 || node_id > NODE_ID_MAX || endpoint_len >= MGMTD_ENDPOINT_MAX ||
	    !valid_text(&ep, MGMTD_ENDPOINT_MAX, false))
		return -EINVAL;
	rc = check_reports(s, node_id, targets, ntargets);
	if (rc != 0)
		return rc;
	node = mgmtd_node_find(s, node_id);
	if (!node) {
		node = mgmtd_node_add(s, node_id);
		if (!node)
			return -ENOMEM;
		node->state = CFS_NODE_DOWN; /* apply_node brings it up */
		node->dirty = true;
	}
	if (!bytes_eq(&ep, node->endpoint)) {
		char *e = bytes_dup(&ep);

		if (!e) {
			rc = -ENOMEM;
			goto out;
		}
		RT_INFO("node=%" PRIu32 " endpoint=%s (was %s): registered", node_id, e,
			node->endpoint ? node->endpoint : "-");
		free(node->endpoint);
		node->endpoint = e;
		node->dirty = true;
		s->routing_changed = true;
	}
	/* A registration carries no routing version: any "up-to-date" in it
	 * predates whatever changed, so it counts as online. */
	rc = apply_node(s, now_ns, node, 0, targets, ntargets);
	if (rc == 0)
		rc = routing_fits(s);
out:
	if (rc != 0) {
		int rrc = mgmtd_db_reload(s, now_ns);

		return rrc != 0 ? rrc : rc;
	}
	return renew_lease(s, node_id, now_ns, mgmtd_commit(s, now_ns, changed));
}

int
mgmtd_op_heartbeat(struct mgmtd_state *s, uint64_t now_ns, uint32_t node_id,
		   uint64_t node_routing_ver, const struct cfs_target_report *targets,
		   uint32_t ntargets, bool *changed)
{
	struct mgmtd_node *node;
	int rc;

	if (changed)
		*changed = false;
	if (node_id == 0)
		return -EINVAL;
	node = mgmtd_node_find(s, node_id);
	if (!node || !node->endpoint || !node->endpoint[0])
		return -CFS_ENONODE;
	rc = check_reports(s, node_id, targets, ntargets);
	if (rc != 0)
		return rc;
	rc = apply_node(s, now_ns, node, node_routing_ver, targets, ntargets);
	if (rc == 0)
		rc = routing_fits(s);
	if (rc != 0) {
		int rrc = mgmtd_db_reload(s, now_ns);

		return rrc != 0 ? rrc : rc;
	}
	return renew_lease(s, node_id, now_ns, mgmtd_commit(s, now_ns, changed));
}

int
mgmtd_op_tick(struct mgmtd_state *s, uint64_t now_ns, bool *changed)
{
	uint64_t lease_ns = (uint64_t)s->lease_ms * 1000000;
	bool any_down = false;

	/* Nodes may hold the longer leases of the last run (db.c, load_lease):
	 * none goes down before they have all run out, also one that beat
	 * since (it kept its longer lease). */
	if (s->granted_lease_ms > s->lease_ms) {
		if (now_ns < s->granted_until_ns)
			return mgmtd_commit(s, now_ns, changed);
		s->granted_lease_ms = s->lease_ms;
		s->config_dirty = true;
	}

	for (uint32_t i = 0; i < s->nnodes; i++) {
		struct mgmtd_node *n = &s->nodes[i];

		if (n->state == CFS_NODE_UP && now_ns > n->last_hb_ns &&
		    now_ns - n->last_hb_ns > lease_ns) {
			RT_WARN("node=%" PRIu32 " endpoint=%s: no heartbeat for %" PRIu64
				" ms (lease %" PRIu32 " ms): down",
				n->id, n->endpoint, (now_ns - n->last_hb_ns) / 1000000,
				s->lease_ms);
			n->state = CFS_NODE_DOWN;
			n->dirty = true;
			s->routing_changed = true;
			any_down = true;
		}
		/* Heartbeat times are for people; write them now and then only. */
		if (n->last_hb_wall_ms > n->saved_hb_wall_ms + s->lease_ms / 2)
			n->dirty = true;
	}
	/* Nodes that went down together are one change per chain, evaluated
	 * in chain order: of members lost at once, the last serving one in
	 * order is the one kept as lastsrv. */
	for (uint32_t i = 0; any_down && i < s->nchains; i++)
		mgmtd_chain_update(s, &s->chains[i]);
	return mgmtd_commit(s, now_ns, changed);
}

int
mgmtd_op_sync_done(struct mgmtd_state *s, uint64_t now_ns, uint32_t target, uint64_t chain_id,
		   uint32_t chain_ver, uint32_t *cur_ver, bool *changed)
{
	struct mgmtd_target *t = mgmtd_target_find(s, target);
	struct mgmtd_chain *c = mgmtd_chain_find(s, chain_id);

	if (changed)
		*changed = false;
	*cur_ver = c ? c->ver : 0;
	if (!t)
		return -CFS_ENOTARGET;
	if (!c)
		return -CFS_ENOCHAIN;
	if (t->chain_id != chain_id)
		return -EINVAL;
	if (chain_ver != c->ver)
		return -CFS_ESTALECHAIN;
	if (t->public_state != CFS_TS_SYNCING)
		return -CFS_ENOTSYNCING;
	RT_INFO("chain=%" PRIu64 " ver=%" PRIu32 " target=%" PRIu32 ": sync done", chain_id,
		chain_ver, target);
	t->local_state = CFS_LS_UPTODATE;
	t->dirty = true;
	mgmtd_chain_update(s, c);
	*cur_ver = c->ver;
	return mgmtd_commit(s, now_ns, changed);
}

int
mgmtd_op_offline_target(struct mgmtd_state *s, uint64_t now_ns, uint32_t target, bool undo,
			bool *changed)
{
	struct mgmtd_target *t = mgmtd_target_find(s, target);
	struct mgmtd_chain *c;

	if (changed)
		*changed = false;
	if (!t)
		return -CFS_ENOTARGET;
	if (t->admin_offline == !undo)
		return 0;
	RT_WARN("target=%" PRIu32 ": %s by the operator", target,
		undo ? "let back in" : "taken offline");
	t->admin_offline = !undo;
	t->dirty = true;
	/* Listings show the flag through the local state only after the node
	 * reports again; the chain reacts now. */
	c = t->chain_id ? mgmtd_chain_find(s, t->chain_id) : NULL;
	if (c)
		mgmtd_chain_update(s, c);
	return mgmtd_commit(s, now_ns, changed);
}

int
mgmtd_op_create_chains(struct mgmtd_state *s, uint64_t now_ns, uint32_t replicas, uint32_t want,
		       uint32_t *created, char *detail, size_t detail_len, bool *changed)
{
	int rc;

	if (changed)
		*changed = false;
	rc = mgmtd_chains_create(s, replicas, want, created, detail, detail_len);
	if (rc == 0 && *created)
		rc = routing_fits(s);
	if (rc != 0) {
		/* Nothing was created on -CFS_EPLACEMENT/-EINVAL; on -ENOMEM
		 * part may have been, and on -ENOSPC all was: drop it. */
		if (rc == -ENOMEM || rc == -ENOSPC) {
			int rrc = mgmtd_db_reload(s, now_ns);

			if (rrc != 0)
				return rrc;
		}
		*created = 0;
		return rc;
	}
	return mgmtd_commit(s, now_ns, changed);
}

/* ------------------------------------------------------------ the actor */

struct mgmtd {
	struct mgmtd_state s;
	struct mgmtd_subs subs;
	struct rt_timer tick;
	struct rt_actor *self;
	struct rt_loop *loop;
};

static uint64_t
now_ns(struct mgmtd *m)
{
	return rt_now_ns(m->loop);
}

static void
set_wall(struct mgmtd *m)
{
	m->s.wall_ms = rt_wall_ns(m->loop) / 1000000;
}

static void
push_routing(struct mgmtd *m)
{
	uint32_t sent = mgmtd_subs_push(m->self, &m->subs, &m->s, now_ns(m));

	RT_DEBUG("routing_ver=%" PRIu64 ": pushed to %" PRIu32 " subscribers", m->s.routing_ver,
		 sent);
}

static void
after_op(struct mgmtd *m, bool changed)
{
	if (changed)
		push_routing(m);
}

static void
subscribe(struct mgmtd *m, const struct rt_msg *req)
{
	uint64_t until = now_ns(m) + (uint64_t)m->s.lease_ms * 1000000;
	int rc = mgmtd_subs_add(&m->subs, req->src, req->conn, until);

	if (rc != 0)
		RT_WARN("subscriber addr=0x%016" PRIx64 ": not added: %s", req->src,
			cfs_errname(rc));
}

static void
on_tick(struct rt_timer *t, void *arg)
{
	struct mgmtd *m = arg;
	bool changed = false;
	int rc;

	if (m->s.broken)
		return;
	set_wall(m);
	rc = mgmtd_op_tick(&m->s, now_ns(m), &changed);
	if (rc != 0)
		RT_ERR(rc, "lease tick");
	mgmtd_subs_expire(&m->subs, now_ns(m));
	after_op(m, changed);
}

static int
on_register(struct rt_actor *self, struct rt_msg *req)
{
	struct mgmtd *m = rt_actor_state(self);
	const struct cfs_mgmtd_register *b = RT_BODY(req, mgmtd_register);
	struct rt_msg *resp;
	struct cfs_mgmtd_register_resp *r;
	bool changed = false;
	int rc;

	set_wall(m);
	rc = mgmtd_op_register(&m->s, now_ns(m), b->node_id, (const char *)b->endpoint.p,
			       b->endpoint.len, b->targets, b->targets_count, &changed);
	if (rc == 0)
		subscribe(m, req);
	resp = rt_msg_new(CFS_MSG_MGMTD_REGISTER_RESP);
	if (resp) {
		r = RT_BODY(resp, mgmtd_register_resp);
		r->routing_ver = m->s.routing_ver;
		r->heartbeat_ms = m->s.heartbeat_ms;
		r->lease_ms = m->s.lease_ms;
	}
	if (rc != 0)
		RT_WARN("register node=%" PRIu32 " from 0x%016" PRIx64 ": %s", b->node_id, req->src,
			cfs_errname(rc));
	rt_reply(req, rc, resp);
	after_op(m, changed);
	return 0;
}

static int
on_heartbeat(struct rt_actor *self, struct rt_msg *req)
{
	struct mgmtd *m = rt_actor_state(self);
	const struct cfs_mgmtd_heartbeat *b = RT_BODY(req, mgmtd_heartbeat);
	struct rt_msg *resp;
	struct cfs_mgmtd_heartbeat_resp *r;
	bool changed = false;
	int rc;

	set_wall(m);
	rc = mgmtd_op_heartbeat(&m->s, now_ns(m), b->node_id, b->routing_ver, b->targets,
				b->targets_count, &changed);
	if (rc == 0)
		subscribe(m, req);
	resp = rt_msg_new(CFS_MSG_MGMTD_HEARTBEAT_RESP);
	if (resp) {
		r = RT_BODY(resp, mgmtd_heartbeat_resp);
		r->routing_ver = m->s.routing_ver;
		r->heartbeat_ms = m->s.heartbeat_ms;
		r->lease_ms = m->s.lease_ms;
	}
	if (rc != 0 && rc != -CFS_ENONODE)
		RT_WARN("heartbeat node=%" PRIu32 ": %s", b->node_id, cfs_errname(rc));
	rt_reply(req, rc, resp);
	after_op(m, changed);
	return 0;
}

static int
on_routing(struct rt_actor *self, struct rt_msg *req)
{
	struct mgmtd *m = rt_actor_state(self);
	const struct cfs_mgmtd_routing *b = RT_BODY(req, mgmtd_routing);
	struct rt_msg *resp = rt_msg_new(CFS_MSG_MGMTD_ROUTING_RESP);
	struct cfs_mgmtd_routing_resp *r;
	int rc = 0;

	if (!resp)
		return -ENOMEM;
	if (b->flags & CFS_ROUTING_F_SUBSCRIBE)
		subscribe(m, req);
	if ((b->flags & CFS_ROUTING_F_FULL) || b->known_ver != m->s.routing_ver) {
		rc = mgmtd_routing_fill(&m->s, now_ns(m), resp);
	} else {
		/* Current already: the version alone says so. */
		r = RT_BODY(resp, mgmtd_routing_resp);
		r->routing_ver = m->s.routing_ver;
		r->heartbeat_ms = m->s.heartbeat_ms;
		r->lease_ms = m->s.lease_ms;
	}
	if (rc != 0) {
		rt_msg_free(&resp);
		return rc;
	}
	rt_reply(req, 0, resp);
	return 0;
}

static int
on_sync_done(struct rt_actor *self, struct rt_msg *req)
{
	struct mgmtd *m = rt_actor_state(self);
	const struct cfs_mgmtd_sync_done *b = RT_BODY(req, mgmtd_sync_done);
	struct rt_msg *resp = rt_msg_new(CFS_MSG_MGMTD_SYNC_DONE_RESP);
	uint32_t cur = 0;
	bool changed = false;
	int rc;

	set_wall(m);
	rc = mgmtd_op_sync_done(&m->s, now_ns(m), b->target, b->chain_id, b->chain_ver, &cur,
				&changed);
	if (rc != 0)
		RT_WARN("sync done target=%" PRIu32 " chain=%" PRIu64 " ver=%" PRIu32 ": %s",
			b->target, b->chain_id, b->chain_ver, cfs_errname(rc));
	if (resp) {
		RT_BODY(resp, mgmtd_sync_done_resp)->chain_ver = cur;
		RT_BODY(resp, mgmtd_sync_done_resp)->routing_ver = m->s.routing_ver;
	}
	rt_reply(req, rc, resp);
	after_op(m, changed);
	return 0;
}

static int
on_create_chains(struct rt_actor *self, struct rt_msg *req)
{
	struct mgmtd *m = rt_actor_state(self);
	const struct cfs_mgmtd_create_chains *b = RT_BODY(req, mgmtd_create_chains);
	struct rt_msg *resp = rt_msg_new(CFS_MSG_MGMTD_CREATE_CHAINS_RESP);
	char detail[512] = "";
	uint32_t created = 0;
	bool changed = false;
	int rc;

	set_wall(m);
	rc = mgmtd_op_create_chains(&m->s, now_ns(m), b->replicas, b->chains, &created, detail,
				    sizeof(detail), &changed);
	if (rc != 0)
		RT_WARN("create-chains replicas=%" PRIu32 " chains=%" PRIu32 ": %s: %s",
			b->replicas, b->chains, cfs_errname(rc), detail);
	if (resp) {
		struct cfs_mgmtd_create_chains_resp *r = RT_BODY(resp, mgmtd_create_chains_resp);

		r->created = created;
		r->routing_ver = m->s.routing_ver;
		if (detail[0] && rt_msg_set_str(resp, &r->detail, detail) != 0)
			r->detail = (struct cfs_bytes){0};
	}
	rt_reply(req, rc, resp);
	after_op(m, changed);
	return 0;
}

static int
on_offline_target(struct rt_actor *self, struct rt_msg *req)
{
	struct mgmtd *m = rt_actor_state(self);
	const struct cfs_mgmtd_offline_target *b = RT_BODY(req, mgmtd_offline_target);
	struct rt_msg *resp = rt_msg_new(CFS_MSG_MGMTD_OFFLINE_TARGET_RESP);
	bool changed = false;
	int rc;

	set_wall(m);
	rc = mgmtd_op_offline_target(&m->s, now_ns(m), b->target, b->undo, &changed);
	if (resp)
		RT_BODY(resp, mgmtd_offline_target_resp)->routing_ver = m->s.routing_ver;
	rt_reply(req, rc, resp);
	after_op(m, changed);
	return 0;
}

/* Central check before every handler: a mgmtd whose database broke answers
 * nothing it cannot stand behind. */
#define GUARDED(fn)                                                                                \
	static int fn##_guarded(struct rt_actor *self, struct rt_msg *req)                         \
	{                                                                                          \
		struct mgmtd *m = rt_actor_state(self);                                            \
		if (m->s.broken)                                                                   \
			return -EIO;                                                               \
		return fn(self, req);                                                              \
	}
GUARDED(on_register)
GUARDED(on_heartbeat)
GUARDED(on_routing)
GUARDED(on_sync_done)
GUARDED(on_create_chains)
GUARDED(on_offline_target)
#undef GUARDED

static int
mgmtd_init(struct rt_actor *self, const void *arg)
{
	const struct mgmtd_config *cfg = arg;
	struct mgmtd *m = rt_actor_state(self);
	uint32_t tick_ms;
	int rc;

	if (!cfg || !cfg->db_path || !cfg->db_path[0])
		return -EINVAL;
	m->self = self;
	m->loop = rt_actor_loop(self);
	m->s.heartbeat_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : MGMTD_DEFAULT_HEARTBEAT_MS;
	m->s.lease_ms = cfg->lease_ms ? cfg->lease_ms : MGMTD_DEFAULT_LEASE_MS;
	if (m->s.lease_ms <= m->s.heartbeat_ms) {
		RT_ERRLOG("lease_ms=%" PRIu32 " must be larger than heartbeat_ms=%" PRIu32,
			  m->s.lease_ms, m->s.heartbeat_ms);
		return -CFS_ECONFIG;
	}
	set_wall(m);
	rc = mgmtd_db_open(&m->s, cfg->db_path, now_ns(m));
	if (rc != 0)
		return rc;
	/* Leases are checked ten times per lease (at most once per heartbeat),
	 * so a node goes down within 10% of its lease after it ran out. */
	tick_ms = m->s.lease_ms / 10;
	if (tick_ms > m->s.heartbeat_ms)
		tick_ms = m->s.heartbeat_ms;
	if (tick_ms < 10)
		tick_ms = 10;
	rt_timer_init(m->loop, &m->tick, on_tick, m);
	rt_timer_start(&m->tick, tick_ms, tick_ms);
	RT_INFO("db=%s heartbeat_ms=%" PRIu32 " lease_ms=%" PRIu32 ": mgmtd serving", cfg->db_path,
		m->s.heartbeat_ms, m->s.lease_ms);
	return 0;
}

static void
mgmtd_fini(struct rt_actor *self)
{
	struct mgmtd *m = rt_actor_state(self);

	rt_timer_stop(&m->tick);
	mgmtd_subs_fini(&m->subs);
	mgmtd_state_fini(&m->s);
}

static const rt_handler_fn mgmtd_handlers[CFS_MSG__COUNT] = {
	[CFS_MSG_MGMTD_REGISTER] = on_register_guarded,
	[CFS_MSG_MGMTD_HEARTBEAT] = on_heartbeat_guarded,
	[CFS_MSG_MGMTD_ROUTING] = on_routing_guarded,
	[CFS_MSG_MGMTD_SYNC_DONE] = on_sync_done_guarded,
	[CFS_MSG_MGMTD_CREATE_CHAINS] = on_create_chains_guarded,
	[CFS_MSG_MGMTD_OFFLINE_TARGET] = on_offline_target_guarded,
};

const struct rt_actor_kind mgmtd_kind = {
	.name = "mgmtd",
	.state_size = sizeof(struct mgmtd),
	.init = mgmtd_init,
	.fini = mgmtd_fini,
	.handlers = mgmtd_handlers,
};

// SPDX-License-Identifier: MIT
/*
 * Node control: ping, status, and the node's side of cluster membership
 * (nodectl.h says what membership does).
 *
 * Status walks every loop: each loop lists its own actors on its own thread
 * (actor tables are loop-confined), writes into its own slot of a shared
 * collection, and the last loop to finish posts the reply back to the nodectl
 * loop. No locks; one atomic countdown. Finding the storage actors for
 * membership walks the loops the same way.
 *
 * Membership, per heartbeat tick: walk the loops (until every configured
 * target has its actor), then register (first time, or after mgmtd said
 * ENONODE) or heartbeat with each target's local state; the answer renews the
 * lease, or first fetches the newer routing it announces. Routing adopted
 * (pushed or fetched) is held as the message that carried it.
 */
#define RT_LOG_SUBSYS "nodectl"
#include "nodectl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "client/routing.h"
#include "net/net.h"

#define DEFAULT_HEARTBEAT_MS 1000

/* No report from the storage actor yet. */
#define REPORT_NONE CFS_LS__COUNT

struct nc_target {
	uint32_t id;
	char *path;
	cfs_addr_t addr;	     /* its storage actor; 0 until found */
	enum cfs_local_state report; /* what the actor said, REPORT_NONE */
	uint64_t format_id;	     /* what the actor said it is; 0: not yet */
};

struct member_walk;

struct nodectl {
	uint64_t started_ns;
	const char *version;
	struct rt_loop *loop;
	struct rt_actor *self;

	/* Membership; all of it idle when mgmtd == 0. */
	uint32_t node_id;
	cfs_addr_t mgmtd;
	char *endpoint;
	struct net *net;
	struct nc_target *targets;
	unsigned ntargets;
	struct rt_timer hb_timer;
	uint32_t hb_ms;
	uint32_t lease_ms;
	bool registered;
	bool hb_in_flight;
	bool fetch_in_flight;
	bool hb_again;		  /* a report came in while a heartbeat was out */
	int last_hb_rc;		  /* to log changes, not every failure */
	struct member_walk *walk; /* in flight, or NULL */

	struct rt_msg *routing;	    /* message holding the newest routing */
	struct cfs_routing_ref ref; /* its arrays */
	bool peers_owed;	    /* a node of ref is not yet known to net */
	uint64_t routing_ver;

	uint64_t lease_until_ns; /* 0: never held */
	bool lease_logged_lapse;
	bool grant_pending; /* answered heartbeat waiting for newer routing */
	uint64_t grant_sent_ns;
	uint64_t grant_need_ver;
};

/* One status request in flight across loops. */
struct status_walk {
	struct rt_msg *req; /* owned until replied */
	struct rt_msg *resp;
	struct rt_loop *home;
	atomic_uint remaining;
	unsigned nloops;
	struct {
		struct rt_loop_stats stats;
		struct cfs_actor_info *actors; /* malloc'd by the visited loop */
		unsigned count, cap;
	} per_loop[RT_MAX_LOOPS];
};

static int
on_ping(struct rt_actor *self, struct rt_msg *req)
{
	struct rt_msg *resp = rt_msg_new(CFS_MSG_PING_RESP);
	struct cfs_ping_resp *r;

	if (!resp)
		return -ENOMEM;
	r = RT_BODY(resp, ping_resp);
	r->sent_ns = RT_BODY(req, ping)->sent_ns;
	r->node_id = rt_node_id(rt_loop_rt(rt_actor_loop(self)));
	rt_reply(req, 0, resp);
	return 0;
}

struct collect_arg {
	struct status_walk *w;
	unsigned idx;
};

static void
collect_actor(struct rt_actor *a, uint64_t handled, void *arg)
{
	struct collect_arg *ca = arg;
	__typeof__(ca->w->per_loop[0]) *pl = &ca->w->per_loop[ca->idx];
	struct cfs_actor_info *ai;

	if (pl->count == pl->cap) {
		unsigned cap = pl->cap ? pl->cap * 2 : 16;
		void *n = realloc(pl->actors, cap * sizeof(*pl->actors));

		if (!n)
			return; /* status under memory pressure lists fewer actors */
		pl->actors = n;
		pl->cap = cap;
	}
	ai = &pl->actors[pl->count++];
	memset(ai, 0, sizeof(*ai));
	/* Kind names are static strings: borrowing them is safe until the reply copies. */
	ai->kind.p = (const uint8_t *)rt_actor_kind(a)->name;
	ai->kind.len = (uint32_t)strlen(rt_actor_kind(a)->name);
	ai->addr = rt_actor_addr(a);
	ai->loop = ca->idx;
	ai->tag = rt_actor_tag(a);
	ai->handled = handled;
}

static void status_finish(void *arg);

/* Runs on each loop in turn. */
static void
status_visit(void *arg)
{
	struct collect_arg *ca = arg;
	struct status_walk *w = ca->w;
	struct rt_loop *loop = rt_loop_current();

	rt_loop_stats(loop, &w->per_loop[ca->idx].stats);
	rt_loop_foreach_actor(loop, collect_actor, ca);
	free(ca);
	if (atomic_fetch_sub(&w->remaining, 1) == 1) {
		if (rt_loop_post(w->home, status_finish, w) != 0)
			CFS_PANIC("status: cannot post completion home");
	}
}

static void
status_free(struct status_walk *w)
{
	for (unsigned i = 0; i < w->nloops; i++)
		free(w->per_loop[i].actors);
	free(w);
}

/* Back on the nodectl loop: build the response in the message's arena. */
static void
status_finish(void *arg)
{
	struct status_walk *w = arg;
	struct cfs_status_resp *r = RT_BODY(w->resp, status_resp);
	unsigned total = 0, k = 0;
	int rc = 0;

	for (unsigned i = 0; i < w->nloops; i++)
		total += w->per_loop[i].count;
	r->node_id = rt_node_id(rt_loop_rt(w->home));
	r->loops = rt_msg_alloc(w->resp, w->nloops * sizeof(*r->loops));
	r->actors = rt_msg_alloc(w->resp, (total ? total : 1) * sizeof(*r->actors));
	if (!r->loops || !r->actors) {
		rc = -ENOMEM;
		goto out;
	}
	r->loops_count = w->nloops;
	for (unsigned i = 0; i < w->nloops; i++) {
		const struct rt_loop_stats *s = &w->per_loop[i].stats;

		r->loops[i] = (struct cfs_loop_info){
			.index = s->index,
			.cpu = s->cpu,
			.actors = s->actors,
			.handled = s->handled,
			.wakeups = s->wakeups,
		};
		for (unsigned j = 0; j < w->per_loop[i].count; j++) {
			struct cfs_actor_info *ai = &r->actors[k++];

			*ai = w->per_loop[i].actors[j];
			if (rt_msg_copy_bytes(w->resp, &ai->kind, ai->kind.p, ai->kind.len) != 0) {
				rc = -ENOMEM;
				goto out;
			}
		}
	}
	r->actors_count = k;
out:
	if (rc != 0)
		rt_msg_free(&w->resp);
	rt_reply(w->req, rc, w->resp);
	status_free(w);
}

static int
on_status(struct rt_actor *self, struct rt_msg *req)
{
	struct nodectl *nc = rt_actor_state(self);
	struct rt *rt = rt_loop_rt(nc->loop);
	struct status_walk *w = calloc(1, sizeof(*w));
	unsigned i;

	if (!w)
		return -ENOMEM;
	w->resp = rt_msg_new(CFS_MSG_STATUS_RESP);
	if (!w->resp) {
		free(w);
		return -ENOMEM;
	}
	/* What only nodectl knows goes in now: it may stop before the walk
	 * over the loops comes back. */
	RT_BODY(w->resp, status_resp)->uptime_ms = (rt_now_ns(nc->loop) - nc->started_ns) / 1000000;
	if (rt_msg_set_str(w->resp, &RT_BODY(w->resp, status_resp)->version, nc->version) != 0) {
		rt_msg_free(&w->resp);
		free(w);
		return -ENOMEM;
	}
	w->req = req;
	w->home = nc->loop;
	w->nloops = rt_loop_count(rt);
	atomic_init(&w->remaining, w->nloops);
	for (i = 0; i < w->nloops; i++) {
		struct collect_arg *ca = malloc(sizeof(*ca));

		if (ca) {
			ca->w = w;
			ca->idx = i;
		}
		if (!ca || rt_loop_post(rt_loop_at(rt, i), status_visit, ca) != 0) {
			/* Loops already posted still count down; we cannot take the
			 * request back, so finish with what is there. */
			free(ca);
			break;
		}
	}
	if (i < w->nloops) {
		unsigned missing = w->nloops - i;

		w->nloops = i;
		if (atomic_fetch_sub(&w->remaining, missing) == missing)
			status_finish(w);
	}
	return 0;
}

/* ---------------------------------------------------------- membership */

static void send_heartbeat(struct nodectl *nc);
static void push_targets(struct nodectl *nc);

/* The routing entry of target `id`, NULL when routing does not know it. */
static const struct cfs_target_info *
routing_target(const struct nodectl *nc, uint32_t id)
{
	for (uint32_t i = 0; nc->routing && i < nc->ref.targets_count; i++) {
		if (nc->ref.targets[i].target == id)
			return &nc->ref.targets[i];
	}
	return NULL;
}

static const struct cfs_chain_info *
routing_chain(const struct nodectl *nc, uint64_t id)
{
	for (uint32_t i = 0; nc->routing && id && i < nc->ref.chains_count; i++) {
		if (nc->ref.chains[i].chain_id == id)
			return &nc->ref.chains[i];
	}
	return NULL;
}

/*
 * What the node says about a target: offline without an actor or when the
 * actor said so; up-to-date when the routing we hold shows it serving, or the
 * actor finished a resync; online otherwise. mgmtd discounts an up-to-date
 * said from routing older than the target's last change.
 */
static enum cfs_local_state
local_state(const struct nodectl *nc, const struct nc_target *t)
{
	const struct cfs_target_info *ti = routing_target(nc, t->id);

	if (t->addr == 0 || t->report == CFS_LS_OFFLINE)
		return CFS_LS_OFFLINE;
	if (t->report == CFS_LS_UPTODATE)
		return CFS_LS_UPTODATE;
	return ti && ti->public_state == CFS_TS_SERVING ? CFS_LS_UPTODATE : CFS_LS_ONLINE;
}

static void
set_lease(struct nodectl *nc, uint64_t sent_ns)
{
	uint64_t until = sent_ns + (uint64_t)nc->lease_ms * 1000000;

	if (until <= nc->lease_until_ns)
		return;
	/* An answer that took longer than the lease grants nothing usable:
	 * record it, but do not call the lease held. */
	if (until > rt_now_ns(nc->loop) && (nc->lease_logged_lapse || nc->lease_until_ns == 0)) {
		RT_INFO("node=%" PRIu32 " routing_ver=%" PRIu64 ": lease held", nc->node_id,
			nc->routing_ver);
		nc->lease_logged_lapse = false;
	}
	nc->lease_until_ns = until;
	push_targets(nc);
}

static void
adopt_peers(struct nodectl *nc)
{
	nc->peers_owed = false;
	if (!nc->net)
		return;
	for (uint32_t i = 0; i < nc->ref.nodes_count; i++) {
		const struct cfs_node_info *n = &nc->ref.nodes[i];
		char ep[256];
		int rc;

		if (n->node_id == nc->node_id || n->endpoint.len == 0 ||
		    n->endpoint.len >= sizeof(ep))
			continue;
		memcpy(ep, n->endpoint.p, n->endpoint.len);
		ep[n->endpoint.len] = '\0';
		rc = net_add_peer(nc->net, n->node_id, ep);
		if (rc != 0) {
			/* A name that did not resolve (a DNS blip): the next
			 * heartbeat's answer tries again (hb_done). */
			RT_WARN("node=%" PRIu32 " endpoint=%s: cannot add peer: %s", n->node_id, ep,
				cfs_errname(rc));
			nc->peers_owed = true;
		}
	}
}

/* Keep m (a routing message we now own) if it is newer than what we hold. */
static void
adopt_routing(struct nodectl *nc, struct rt_msg *m)
{
	struct cfs_routing_ref ref;
	struct rt_msg *old_msg = nc->routing;

	if (!cfs_routing_ref_from(m->type, m->body, &ref) ||
	    (nc->routing && ref.routing_ver <= nc->routing_ver)) {
		rt_msg_free(&m);
		return;
	}
	nc->routing = m;
	nc->ref = ref;
	nc->routing_ver = ref.routing_ver;
	adopt_peers(nc);
	rt_msg_free(&old_msg);
	RT_DEBUG("routing_ver=%" PRIu64 " chains=%" PRIu32 ": adopted", nc->routing_ver,
		 ref.chains_count);
	/* A storage actor's "resync finished" is about the syncing it did: once
	 * routing shows the target anything but syncing (serving: it was heard;
	 * down or waiting: that sync is void), forget it, or a later resync
	 * would end before it began. */
	for (unsigned i = 0; i < nc->ntargets; i++) {
		const struct cfs_target_info *ti = routing_target(nc, nc->targets[i].id);

		if (nc->targets[i].report == CFS_LS_UPTODATE &&
		    (!ti || ti->public_state != CFS_TS_SYNCING))
			nc->targets[i].report = REPORT_NONE;
	}
	if (nc->grant_pending && nc->routing_ver >= nc->grant_need_ver) {
		nc->grant_pending = false;
		set_lease(nc, nc->grant_sent_ns);
	}
	push_targets(nc);
}

/* One NODE_TARGET_ROUTING to the storage actor of t. */
static void
push_target(struct nodectl *nc, const struct nc_target *t)
{
	struct rt_msg *m = rt_msg_new(CFS_MSG_NODE_TARGET_ROUTING);
	struct cfs_node_target_routing *b;
	const struct cfs_target_info *ti = routing_target(nc, t->id);
	const struct cfs_chain_info *ci = ti ? routing_chain(nc, ti->chain_id) : NULL;
	int rc;

	if (!m)
		return;
	b = RT_BODY(m, node_target_routing);
	b->target = t->id;
	b->routing_ver = nc->routing_ver;
	b->lease_until_ns = nc->lease_until_ns;
	b->public_state = ti ? ti->public_state : CFS_TS_OFFLINE;
	b->format_id = ti ? ti->format_id : 0;
	b->mgmtd = nc->mgmtd;
	if (ci) {
		b->chain_id = ci->chain_id;
		b->chain_ver = ci->chain_ver;
		b->members = rt_msg_alloc(m, (ci->count ? ci->count : 1) * sizeof(*b->members));
		if (!b->members) {
			rt_msg_free(&m);
			return;
		}
		memcpy(b->members, nc->ref.members + ci->first, ci->count * sizeof(*b->members));
		b->members_count = ci->count;
	}
	m->dst = t->addr;
	m->flags |= RT_MSG_F_ONEWAY;
	rc = rt_send(nc->self, m);
	if (rc != 0) {
		RT_DEBUG("target=%" PRIu32 ": routing not delivered: %s", t->id, cfs_errname(rc));
		rt_msg_free(&m);
	}
}

static void
push_targets(struct nodectl *nc)
{
	for (unsigned i = 0; i < nc->ntargets; i++) {
		if (nc->targets[i].addr)
			push_target(nc, &nc->targets[i]);
	}
}

static void
fetch_done(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct nodectl *nc = rt_actor_state(self);

	nc->fetch_in_flight = false;
	if (rc != 0) {
		RT_DEBUG("routing fetch: %s", cfs_errname(rc));
		return;
	}
	rt_msg_claim(resp);
	adopt_routing(nc, resp);
}

static void
fetch_routing(struct nodectl *nc)
{
	struct rt_msg *m;

	if (nc->fetch_in_flight)
		return;
	m = rt_msg_new(CFS_MSG_MGMTD_ROUTING);
	if (!m)
		return;
	RT_BODY(m, mgmtd_routing)->known_ver = nc->routing ? nc->routing_ver : 0;
	RT_BODY(m, mgmtd_routing)->flags = CFS_ROUTING_F_SUBSCRIBE;
	if (rt_call(nc->self, nc->mgmtd, m, nc->lease_ms / 2, fetch_done, NULL) != 0) {
		rt_msg_free(&m);
		return;
	}
	nc->fetch_in_flight = true;
}

/* What register and heartbeat both carry. */
static int
fill_reports(struct nodectl *nc, struct rt_msg *m, struct cfs_target_report **out)
{
	struct cfs_target_report *r;

	*out = NULL;
	if (nc->ntargets == 0)
		return 0;
	r = rt_msg_alloc(m, nc->ntargets * sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (unsigned i = 0; i < nc->ntargets; i++) {
		const struct nc_target *t = &nc->targets[i];

		r[i].target = t->id;
		r[i].addr = t->addr;
		r[i].local_state = local_state(nc, t);
		r[i].format_id = t->format_id;
		if (rt_msg_set_str(m, &r[i].path, t->path) != 0)
			return -ENOMEM;
	}
	*out = r;
	return 0;
}

static void
hb_log(struct nodectl *nc, const char *what, int rc)
{
	if (rc == nc->last_hb_rc)
		return;
	nc->last_hb_rc = rc;
	if (rc == 0)
		RT_INFO("node=%" PRIu32 " %s: mgmtd answers again", nc->node_id, what);
	else
		RT_WARN("node=%" PRIu32 " %s: %s (%d) %s", nc->node_id, what, cfs_errname(rc), rc,
			cfs_strerror(rc));
}

/* Interval or lease changed at mgmtd: follow it. */
static void
take_timing(struct nodectl *nc, uint32_t hb_ms, uint32_t lease_ms)
{
	if (lease_ms)
		nc->lease_ms = lease_ms;
	if (hb_ms && hb_ms != nc->hb_ms) {
		nc->hb_ms = hb_ms;
		rt_timer_start(&nc->hb_timer, hb_ms, hb_ms);
	}
}

/* A heartbeat or registration answered at sent_ns: renew the lease now, or
 * once we hold the routing version it announces. */
static void
answered(struct nodectl *nc, uint64_t sent_ns, uint64_t routing_ver)
{
	if (nc->routing && routing_ver <= nc->routing_ver) {
		nc->grant_pending = false;
		set_lease(nc, sent_ns);
		return;
	}
	nc->grant_pending = true;
	nc->grant_sent_ns = sent_ns;
	nc->grant_need_ver = routing_ver;
	fetch_routing(nc);
}

static void
hb_done(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct nodectl *nc = rt_actor_state(self);
	uint64_t sent_ns = (uint64_t)(uintptr_t)cb_arg;
	bool was_register = !nc->registered;

	nc->hb_in_flight = false;
	if (rc == -CFS_ECANCELED)
		return;
	hb_log(nc, was_register ? "register" : "heartbeat", rc);
	if (rc == -CFS_ENONODE) {
		/* mgmtd lost us (or never had us): register at once. */
		nc->registered = false;
		send_heartbeat(nc);
		return;
	}
	if (rc != 0)
		goto out;
	if (nc->peers_owed)
		adopt_peers(nc);
	if (resp->type == CFS_MSG_MGMTD_REGISTER_RESP) {
		const struct cfs_mgmtd_register_resp *r = RT_BODY(resp, mgmtd_register_resp);

		nc->registered = true;
		take_timing(nc, r->heartbeat_ms, r->lease_ms);
		answered(nc, sent_ns, r->routing_ver);
	} else {
		const struct cfs_mgmtd_heartbeat_resp *r = RT_BODY(resp, mgmtd_heartbeat_resp);

		take_timing(nc, r->heartbeat_ms, r->lease_ms);
		answered(nc, sent_ns, r->routing_ver);
	}
out:
	if (nc->hb_again) {
		nc->hb_again = false;
		send_heartbeat(nc);
	}
}

static void
send_heartbeat(struct nodectl *nc)
{
	uint64_t sent_ns = rt_now_ns(nc->loop);
	struct cfs_target_report *r;
	struct rt_msg *m;
	int rc;

	if (nc->hb_in_flight) {
		nc->hb_again = true;
		return;
	}
	if (!nc->registered) {
		struct cfs_mgmtd_register *b;

		m = rt_msg_new(CFS_MSG_MGMTD_REGISTER);
		if (!m)
			return;
		b = RT_BODY(m, mgmtd_register);
		b->node_id = nc->node_id;
		rc = rt_msg_set_str(m, &b->endpoint, nc->endpoint);
		if (rc == 0)
			rc = fill_reports(nc, m, &r);
		if (rc == 0) {
			b->targets = r;
			b->targets_count = r ? nc->ntargets : 0;
		}
	} else {
		struct cfs_mgmtd_heartbeat *b;

		m = rt_msg_new(CFS_MSG_MGMTD_HEARTBEAT);
		if (!m)
			return;
		b = RT_BODY(m, mgmtd_heartbeat);
		b->node_id = nc->node_id;
		b->routing_ver = nc->routing ? nc->routing_ver : 0;
		rc = fill_reports(nc, m, &r);
		if (rc == 0) {
			b->targets = r;
			b->targets_count = r ? nc->ntargets : 0;
		}
	}
	if (rc == 0)
		rc = rt_call(nc->self, nc->mgmtd, m, nc->lease_ms / 2, hb_done,
			     (void *)(uintptr_t)sent_ns);
	if (rc != 0) {
		rt_msg_free(&m);
		hb_log(nc, nc->registered ? "heartbeat" : "register", rc);
		return;
	}
	nc->hb_in_flight = true;
}

/* Finding storage actors: one slot per loop, like status. */
struct member_walk {
	struct nodectl *nc; /* NULL once nodectl stopped; home loop only */
	struct rt_loop *home;
	atomic_uint remaining;
	unsigned nloops;
	struct {
		uint64_t *tags;
		cfs_addr_t *addrs;
		unsigned count, cap;
	} per_loop[RT_MAX_LOOPS];
};

struct walk_arg {
	struct member_walk *w;
	unsigned idx;
};

static void
walk_collect(struct rt_actor *a, uint64_t handled, void *arg)
{
	struct walk_arg *wa = arg;
	__typeof__(wa->w->per_loop[0]) *pl = &wa->w->per_loop[wa->idx];

	if (strcmp(rt_actor_kind(a)->name, "storage") != 0)
		return;
	if (pl->count == pl->cap) {
		unsigned cap = pl->cap ? pl->cap * 2 : 8;
		uint64_t *t = realloc(pl->tags, cap * sizeof(*t));
		cfs_addr_t *ad = t ? realloc(pl->addrs, cap * sizeof(*ad)) : NULL;

		if (t)
			pl->tags = t;
		if (!ad)
			return; /* found next time */
		pl->addrs = ad;
		pl->cap = cap;
	}
	pl->tags[pl->count] = rt_actor_tag(a);
	pl->addrs[pl->count++] = rt_actor_addr(a);
}

static void
walk_free(struct member_walk *w)
{
	for (unsigned i = 0; i < w->nloops; i++) {
		free(w->per_loop[i].tags);
		free(w->per_loop[i].addrs);
	}
	free(w);
}

/* Home again: note the addresses, then talk to mgmtd. */
static void
walk_finish(void *arg)
{
	struct member_walk *w = arg;
	struct nodectl *nc = w->nc;

	if (nc) {
		nc->walk = NULL;
		for (unsigned l = 0; l < w->nloops; l++) {
			for (unsigned k = 0; k < w->per_loop[l].count; k++) {
				for (unsigned i = 0; i < nc->ntargets; i++) {
					if (nc->targets[i].id == w->per_loop[l].tags[k] &&
					    nc->targets[i].addr != w->per_loop[l].addrs[k]) {
						nc->targets[i].addr = w->per_loop[l].addrs[k];
						RT_INFO("target=%" PRIu32 " addr=0x%016" PRIx64
							": storage actor found",
							nc->targets[i].id, nc->targets[i].addr);
					}
				}
			}
		}
		send_heartbeat(nc);
		push_targets(nc);
	}
	walk_free(w);
}

static void
walk_visit(void *arg)
{
	struct walk_arg *wa = arg;
	struct member_walk *w = wa->w;

	rt_loop_foreach_actor(rt_loop_current(), walk_collect, wa);
	free(wa);
	if (atomic_fetch_sub(&w->remaining, 1) == 1) {
		if (rt_loop_post(w->home, walk_finish, w) != 0)
			CFS_PANIC("nodectl: cannot post the walk home");
	}
}

static bool
all_found(const struct nodectl *nc)
{
	for (unsigned i = 0; i < nc->ntargets; i++) {
		if (nc->targets[i].addr == 0)
			return false;
	}
	return true;
}

/* Walk the loops for storage actors, then heartbeat; straight to the
 * heartbeat when every target is known. */
static void
start_walk(struct nodectl *nc)
{
	struct rt *rt = rt_loop_rt(nc->loop);
	struct member_walk *w;
	unsigned i;

	if (nc->walk)
		return; /* its end sends the heartbeat */
	if (all_found(nc)) {
		send_heartbeat(nc);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		send_heartbeat(nc);
		return;
	}
	w->nc = nc;
	w->home = nc->loop;
	w->nloops = rt_loop_count(rt);
	atomic_init(&w->remaining, w->nloops);
	nc->walk = w;
	for (i = 0; i < w->nloops; i++) {
		struct walk_arg *wa = malloc(sizeof(*wa));

		if (wa) {
			wa->w = w;
			wa->idx = i;
		}
		if (!wa || rt_loop_post(rt_loop_at(rt, i), walk_visit, wa) != 0) {
			free(wa);
			break;
		}
	}
	if (i < w->nloops) {
		unsigned missing = w->nloops - i;

		w->nloops = i;
		if (atomic_fetch_sub(&w->remaining, missing) == missing)
			walk_finish(w);
	}
}

static void
on_hb_timer(struct rt_timer *t, void *arg)
{
	struct nodectl *nc = arg;
	uint64_t now = rt_now_ns(nc->loop);

	if (nc->lease_until_ns && now >= nc->lease_until_ns && !nc->lease_logged_lapse) {
		RT_WARN("node=%" PRIu32 ": lease at mgmtd lapsed; storage stops serving until "
			"a heartbeat is answered",
			nc->node_id);
		nc->lease_logged_lapse = true;
	}
	start_walk(nc);
}

static int
on_routing_update(struct rt_actor *self, struct rt_msg *req)
{
	struct nodectl *nc = rt_actor_state(self);

	if (nc->mgmtd == 0) {
		rt_reply(req, -CFS_ENOTSUP, NULL);
		return 0;
	}
	/* Routing comes from mgmtd: on the connection we opened to it, or from
	 * this process. Anyone else (any peer can connect and name any sender)
	 * could pin us to chains of its making with a version nothing outranks. */
	if (!rt_msg_from_node(req, CFS_ADDR_NODE(nc->mgmtd))) {
		RT_WARN("node=%" PRIu32 ": routing update on connection %" PRIx64
			" not from mgmtd: ignored",
			nc->node_id, req->conn);
		rt_reply(req, -EPERM, NULL);
		return 0;
	}
	if (req->flags & RT_MSG_F_ONEWAY) {
		adopt_routing(nc, req); /* keeps or frees it */
		return 0;
	}
	/* Sent as a request: answer, keep a copy of nothing (rare: tools). */
	rt_reply(req, 0, NULL);
	return 0;
}

static int
on_target_report(struct rt_actor *self, struct rt_msg *req)
{
	struct nodectl *nc = rt_actor_state(self);
	const struct cfs_node_target_report *b = RT_BODY(req, node_target_report);
	struct nc_target *t = NULL;
	enum cfs_local_state ls;

	for (unsigned i = 0; i < nc->ntargets && !t; i++) {
		if (nc->targets[i].id == b->target)
			t = &nc->targets[i];
	}
	if (!t)
		return -CFS_ENOTARGET;
	/* CFS_LS__COUNT: no word on the state (a report of the format id). */
	if (b->local_state > CFS_LS__COUNT)
		return -EINVAL;
	ls = (enum cfs_local_state)b->local_state;
	if (CFS_ADDR_NODE(req->src) == rt_node_id(rt_loop_rt(nc->loop)) && req->conn == 0)
		t->addr = req->src;
	if (b->format_id != 0 && b->format_id != t->format_id) {
		RT_INFO("target=%" PRIu32 " format %016" PRIx64, t->id, b->format_id);
		t->format_id = b->format_id;
		if (nc->mgmtd)
			send_heartbeat(nc);
	}
	/* "Up-to-date" ends a resync: said while our routing shows the target
	 * anything but syncing, it is late (the target left the chain since)
	 * and would count against a later resync. No word, then. */
	if (ls == CFS_LS_UPTODATE) {
		const struct cfs_target_info *ti = routing_target(nc, t->id);

		if (!ti || ti->public_state != CFS_TS_SYNCING) {
			RT_INFO("target=%" PRIu32 ": up-to-date while not syncing: not reported",
				t->id);
			ls = CFS_LS__COUNT;
		}
	}
	if (ls != CFS_LS__COUNT && t->report != ls) {
		RT_INFO("target=%" PRIu32 " reports %s", t->id, cfs_local_state_name(ls));
		t->report = ls;
		if (nc->mgmtd)
			send_heartbeat(nc);
	}
	rt_reply(req, 0, NULL);
	push_target(nc, t);
	return 0;
}

/* ------------------------------------------------------------ the kind */

static void
nodectl_free(struct nodectl *nc)
{
	for (unsigned i = 0; i < nc->ntargets; i++)
		free(nc->targets[i].path);
	free(nc->targets);
	free(nc->endpoint);
	nc->targets = NULL;
	nc->endpoint = NULL;
}

static int
nodectl_init(struct rt_actor *self, const void *arg)
{
	const struct nodectl_config *cfg = arg;
	struct nodectl *nc = rt_actor_state(self);

	nc->self = self;
	nc->loop = rt_actor_loop(self);
	nc->started_ns = rt_now_ns(nc->loop);
	nc->version = cfg && cfg->version ? cfg->version : "unknown";
	nc->node_id = cfg && cfg->node_id ? cfg->node_id : rt_node_id(rt_loop_rt(nc->loop));
	nc->hb_ms = cfg && cfg->heartbeat_ms ? cfg->heartbeat_ms : DEFAULT_HEARTBEAT_MS;
	nc->lease_ms = 10 * nc->hb_ms;
	if (!cfg || cfg->mgmtd == 0)
		return 0;
	if (!cfg->endpoint || !cfg->endpoint[0] || nc->node_id == 0)
		return -EINVAL;
	nc->mgmtd = cfg->mgmtd;
	nc->net = cfg->net;
	nc->endpoint = strdup(cfg->endpoint);
	nc->targets = calloc(cfg->ntargets ? cfg->ntargets : 1, sizeof(*nc->targets));
	if (!nc->endpoint || !nc->targets)
		goto out_nomem;
	for (unsigned i = 0; i < cfg->ntargets; i++) {
		if (cfg->targets[i].id == 0) {
			nodectl_free(nc);
			return -EINVAL;
		}
		nc->targets[i].id = cfg->targets[i].id;
		nc->targets[i].report = REPORT_NONE;
		nc->targets[i].path = strdup(cfg->targets[i].path ? cfg->targets[i].path : "");
		nc->ntargets++;
		if (!nc->targets[i].path)
			goto out_nomem;
	}
	if (strncmp(nc->endpoint, "*:", 2) == 0 || strncmp(nc->endpoint, "0.0.0.0:", 8) == 0 ||
	    strncmp(nc->endpoint, "[::]:", 5) == 0)
		RT_WARN("endpoint=%s: a wildcard address is registered as is; other nodes and "
			"clients cannot reach it (listen on a routable address)",
			nc->endpoint);
	rt_timer_init(nc->loop, &nc->hb_timer, on_hb_timer, nc);
	/* The first beat as soon as the loops run: storage actors exist by then. */
	rt_timer_start(&nc->hb_timer, 0, nc->hb_ms);
	RT_INFO("node=%" PRIu32 " endpoint=%s mgmtd=0x%016" PRIx64 " targets=%u: joining",
		nc->node_id, nc->endpoint, nc->mgmtd, nc->ntargets);
	return 0;

out_nomem:
	nodectl_free(nc);
	return -ENOMEM;
}

static void
nodectl_fini(struct rt_actor *self)
{
	struct nodectl *nc = rt_actor_state(self);

	if (nc->mgmtd)
		rt_timer_stop(&nc->hb_timer);
	if (nc->walk)
		nc->walk->nc = NULL; /* its end finds us gone */
	rt_msg_free(&nc->routing);
	nodectl_free(nc);
}

static const rt_handler_fn nodectl_handlers[CFS_MSG__COUNT] = {
	[CFS_MSG_PING] = on_ping,
	[CFS_MSG_STATUS] = on_status,
	[CFS_MSG_ROUTING_UPDATE] = on_routing_update,
	[CFS_MSG_NODE_TARGET_REPORT] = on_target_report,
};

const struct rt_actor_kind nodectl_kind = {
	.name = "nodectl",
	.state_size = sizeof(struct nodectl),
	.init = nodectl_init,
	.fini = nodectl_fini,
	.handlers = nodectl_handlers,
};

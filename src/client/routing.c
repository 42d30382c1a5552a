// SPDX-License-Identifier: MIT
/*
 * The client-side routing cache (routing.h): immutable snapshots of one
 * routing version, and the "routing" actor that keeps the newest one.
 *
 * The actor lives on one client loop. It subscribes with MGMTD_ROUTING
 * (flags SUBSCRIBE, known_ver = what it holds) at start and then every poll
 * interval; the answer carries the full info only when mgmtd has a newer
 * version, so a poll is one small round trip that also renews the
 * subscription. Pushes (ROUTING_UPDATE) arrive in between on the same
 * connection. Any newer version becomes a snapshot that replaces the current
 * one under a mutex; readers take references and never block the loop.
 *
 * Lifetime: struct cfs_routing is refcounted (the owner, and each function
 * posted to the loop), so a refresh posted just before destroy never touches
 * freed memory; the actor pointer is cleared by fini, on the loop, and posted
 * functions check it there.
 */
#define RT_LOG_SUBSYS "routing"
#include "client/routing.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/net.h"
#include "rt/rt.h"

/* ------------------------------------------------------------ snapshots */

struct snap_impl {
	struct cfs_routing_snap pub;
	struct cfs_route_chain *chains;
	struct cfs_route_member *members;
	struct cfs_route_target *targets;
	struct cfs_route_node *nodes;
	char *strings; /* endpoints, NUL-terminated, back to back */
};

static int
cmp_u32(uint32_t a, uint32_t b)
{
	return (a > b) - (a < b);
}

static int
cmp_node(const void *a, const void *b)
{
	return cmp_u32(((const struct cfs_route_node *)a)->node_id,
		       ((const struct cfs_route_node *)b)->node_id);
}

static int
cmp_target(const void *a, const void *b)
{
	return cmp_u32(((const struct cfs_route_target *)a)->target,
		       ((const struct cfs_route_target *)b)->target);
}

static int
cmp_chain(const void *a, const void *b)
{
	uint64_t x = ((const struct cfs_route_chain *)a)->chain_id;
	uint64_t y = ((const struct cfs_route_chain *)b)->chain_id;

	return (x > y) - (x < y);
}

static void
snap_free(struct snap_impl *si)
{
	free(si->chains);
	free(si->members);
	free(si->targets);
	free(si->nodes);
	free(si->strings);
	free(si);
}

int
cfs_routing_snap_build(const struct cfs_routing_ref *ref, struct cfs_routing_snap **out)
{
	struct snap_impl *si = calloc(1, sizeof(*si));
	size_t strbytes = 0, off = 0;
	uint64_t nm = 0;
	int rc = -ENOMEM;

	if (!si)
		return -ENOMEM;
	for (uint32_t i = 0; i < ref->nodes_count; i++)
		strbytes += (size_t)ref->nodes[i].endpoint.len + 1;
	/* Chains take disjoint ranges of the member table: more members in all
	 * than the table has means a malformed routing (and, unchecked, a
	 * 32-bit sum that wraps and an array too small for the copy below). */
	for (uint32_t i = 0; i < ref->chains_count; i++)
		nm += ref->chains[i].count;
	if (nm > ref->members_count) {
		free(si);
		return -EINVAL;
	}
	si->nodes = calloc(ref->nodes_count ? ref->nodes_count : 1, sizeof(*si->nodes));
	si->targets = calloc(ref->targets_count ? ref->targets_count : 1, sizeof(*si->targets));
	si->chains = calloc(ref->chains_count ? ref->chains_count : 1, sizeof(*si->chains));
	si->members = calloc(nm ? nm : 1, sizeof(*si->members));
	si->strings = malloc(strbytes ? strbytes : 1);
	if (!si->nodes || !si->targets || !si->chains || !si->members || !si->strings)
		goto out_free;
	rc = -EINVAL;
	for (uint32_t i = 0; i < ref->nodes_count; i++) {
		const struct cfs_node_info *n = &ref->nodes[i];

		if (n->endpoint.len && memchr(n->endpoint.p, '\0', n->endpoint.len))
			goto out_free;
		si->nodes[i].node_id = n->node_id;
		si->nodes[i].state = n->state == CFS_NODE_UP ? CFS_NODE_UP : CFS_NODE_DOWN;
		si->nodes[i].endpoint = si->strings + off;
		if (n->endpoint.len)
			memcpy(si->strings + off, n->endpoint.p, n->endpoint.len);
		off += n->endpoint.len;
		si->strings[off++] = '\0';
	}
	qsort(si->nodes, ref->nodes_count, sizeof(*si->nodes), cmp_node);
	for (uint32_t i = 1; i < ref->nodes_count; i++) {
		if (si->nodes[i].node_id == si->nodes[i - 1].node_id)
			goto out_free;
	}
	si->pub.nodes = si->nodes;
	si->pub.nnodes = ref->nodes_count;
	for (uint32_t i = 0; i < ref->targets_count; i++) {
		const struct cfs_target_info *t = &ref->targets[i];

		if (t->public_state >= CFS_TS__COUNT || t->local_state >= CFS_LS__COUNT ||
		    !cfs_routing_node(&si->pub, t->node_id))
			goto out_free;
		si->targets[i] = (struct cfs_route_target){
			.target = t->target,
			.node_id = t->node_id,
			.addr = t->addr,
			.chain_id = t->chain_id,
			.state = (enum cfs_target_state)t->public_state,
			.local_state = (enum cfs_local_state)t->local_state,
		};
	}
	qsort(si->targets, ref->targets_count, sizeof(*si->targets), cmp_target);
	for (uint32_t i = 1; i < ref->targets_count; i++) {
		if (si->targets[i].target == si->targets[i - 1].target)
			goto out_free;
	}
	si->pub.targets = si->targets;
	si->pub.ntargets = ref->targets_count;
	nm = 0;
	for (uint32_t i = 0; i < ref->chains_count; i++) {
		const struct cfs_chain_info *c = &ref->chains[i];

		if (c->first > ref->members_count || c->count > ref->members_count - c->first)
			goto out_free;
		si->chains[i].chain_id = c->chain_id;
		si->chains[i].chain_ver = c->chain_ver;
		si->chains[i].count = c->count;
		si->chains[i].members = si->members + nm;
		for (uint32_t k = 0; k < c->count; k++) {
			const struct cfs_chain_member *m = &ref->members[c->first + k];

			if (m->public_state >= CFS_TS__COUNT ||
			    !cfs_routing_target(&si->pub, m->target) ||
			    !cfs_routing_node(&si->pub, m->node_id))
				goto out_free;
			si->members[nm++] = (struct cfs_route_member){
				.target = m->target,
				.node_id = m->node_id,
				.addr = m->addr,
				.state = (enum cfs_target_state)m->public_state,
			};
		}
	}
	qsort(si->chains, ref->chains_count, sizeof(*si->chains), cmp_chain);
	for (uint32_t i = 1; i < ref->chains_count; i++) {
		if (si->chains[i].chain_id == si->chains[i - 1].chain_id)
			goto out_free;
	}
	si->pub.chains = si->chains;
	si->pub.nchains = ref->chains_count;
	si->pub.routing_ver = ref->routing_ver;
	si->pub.heartbeat_ms = ref->heartbeat_ms;
	si->pub.lease_ms = ref->lease_ms;
	si->pub.refs = 1;
	*out = &si->pub;
	return 0;

out_free:
	snap_free(si);
	return rc;
}

void
cfs_routing_snap_ref(struct cfs_routing_snap *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void
cfs_routing_snap_put(struct cfs_routing_snap **ps)
{
	struct cfs_routing_snap *s = *ps;

	*ps = NULL;
	if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
		snap_free((struct snap_impl *)s);
}

const struct cfs_route_chain *
cfs_routing_chain(const struct cfs_routing_snap *s, uint64_t chain_id)
{
	struct cfs_route_chain key = {.chain_id = chain_id};

	return s->nchains ? bsearch(&key, s->chains, s->nchains, sizeof(key), cmp_chain) : NULL;
}

const struct cfs_route_target *
cfs_routing_target(const struct cfs_routing_snap *s, uint32_t target)
{
	struct cfs_route_target key = {.target = target};

	return s->ntargets ? bsearch(&key, s->targets, s->ntargets, sizeof(key), cmp_target) : NULL;
}

const struct cfs_route_node *
cfs_routing_node(const struct cfs_routing_snap *s, uint32_t node_id)
{
	struct cfs_route_node key = {.node_id = node_id};

	return s->nnodes ? bsearch(&key, s->nodes, s->nnodes, sizeof(key), cmp_node) : NULL;
}

int
cfs_route_chain_head(const struct cfs_route_chain *c)
{
	return c->count && c->members[0].state == CFS_TS_SERVING ? 0 : -1;
}

int
cfs_route_chain_tail(const struct cfs_route_chain *c)
{
	int tail = -1;

	for (uint32_t i = 0; i < c->count && c->members[i].state == CFS_TS_SERVING; i++)
		tail = (int)i;
	return tail;
}

uint32_t
cfs_route_chain_write_len(const struct cfs_route_chain *c)
{
	uint32_t n = 0;

	while (n < c->count &&
	       (c->members[n].state == CFS_TS_SERVING || c->members[n].state == CFS_TS_SYNCING))
		n++;
	return n;
}

/* ---------------------------------------------------------------- cache */

#define DEFAULT_POLL_MS 1000

struct cfs_routing {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cfs_routing_snap *cur; /* under mu */
	int last_error;		      /* under mu */
	bool stopped;		      /* under mu: fini ran */
	int refs;		      /* atomic */
	struct rt_loop *loop;
	struct cfs_routing_opts opts;
	struct rt_actor *actor; /* loop only; NULL once stopped */
};

struct routing_actor {
	struct cfs_routing *r;
	struct rt_timer poll;
	uint32_t poll_ms;
	bool in_flight;
	struct cfs_routing_snap *held; /* loop's own reference to the newest */
	bool peers_owed;	       /* a node of held is not yet known to net */
};

static void
routing_put(struct cfs_routing *r)
{
	if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	cfs_routing_snap_put(&r->cur);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* Tell the transport where the nodes are, for those new or moved. False
 * when one could not be added (a name that did not resolve, say at a DNS
 * blip): poll_done tries again, or that node stays unreachable for good. */
static bool
add_peers(struct cfs_routing *r, const struct cfs_routing_snap *s)
{
	bool all = true;

	if (!r->opts.net)
		return true;
	for (uint32_t i = 0; i < s->nnodes; i++) {
		const struct cfs_route_node *n = &s->nodes[i];
		int rc;

		if (!n->endpoint[0])
			continue;
		rc = net_add_peer(r->opts.net, n->node_id, n->endpoint);
		if (rc != 0) {
			RT_WARN("node=%u endpoint=%s: cannot add peer: %s", n->node_id, n->endpoint,
				cfs_errname(rc));
			all = false;
		}
	}
	return all;
}

static void poll_now(struct routing_actor *ra);

/* A version newer than ours arrived (push or poll answer). */
static void
adopt(struct routing_actor *ra, unsigned type, const void *body)
{
	struct cfs_routing *r = ra->r;
	struct cfs_routing_ref ref;
	struct cfs_routing_snap *s = NULL, *old;
	int rc;

	if (!cfs_routing_ref_from(type, body, &ref)) {
		RT_WARN("malformed routing info ignored");
		return;
	}
	if (ra->held && ref.routing_ver <= ra->held->routing_ver)
		return;
	rc = cfs_routing_snap_build(&ref, &s);
	if (rc != 0) {
		RT_WARN("routing_ver=%llu: not usable: %s", (unsigned long long)ref.routing_ver,
			cfs_errname(rc));
		return;
	}
	ra->peers_owed = !add_peers(r, s);
	cfs_routing_snap_ref(s);
	pthread_mutex_lock(&r->mu);
	old = r->cur;
	r->cur = s;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	cfs_routing_snap_put(&old);
	cfs_routing_snap_put(&ra->held);
	ra->held = s;
	RT_DEBUG("routing_ver=%llu chains=%u targets=%u nodes=%u: adopted",
		 (unsigned long long)s->routing_ver, s->nchains, s->ntargets, s->nnodes);
	/* Follow mgmtd's heartbeat interval unless told otherwise. */
	if (r->opts.poll_ms == 0 && s->heartbeat_ms && s->heartbeat_ms != ra->poll_ms) {
		ra->poll_ms = s->heartbeat_ms;
		rt_timer_start(&ra->poll, ra->poll_ms, ra->poll_ms);
	}
}

static void
set_error(struct cfs_routing *r, int rc)
{
	pthread_mutex_lock(&r->mu);
	r->last_error = rc;
	pthread_mutex_unlock(&r->mu);
}

static void
poll_done(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct routing_actor *ra = rt_actor_state(self);

	ra->in_flight = false;
	if (rc == -CFS_ECANCELED)
		return; /* stopping: r may be going away */
	set_error(ra->r, rc);
	if (rc != 0) {
		RT_DEBUG("poll: %s", cfs_errname(rc));
		return;
	}
	if (ra->peers_owed && ra->held)
		ra->peers_owed = !add_peers(ra->r, ra->held);
	adopt(ra, resp->type, resp->body);
}

static void
poll_now(struct routing_actor *ra)
{
	struct cfs_routing *r = ra->r;
	struct rt_msg *m;
	int rc;

	if (ra->in_flight || !r->actor)
		return;
	m = rt_msg_new(CFS_MSG_MGMTD_ROUTING);
	if (!m)
		return;
	RT_BODY(m, mgmtd_routing)->known_ver = ra->held ? ra->held->routing_ver : 0;
	RT_BODY(m, mgmtd_routing)->flags = CFS_ROUTING_F_SUBSCRIBE;
	rc = rt_call(r->actor, r->opts.mgmtd, m, r->opts.timeout_ms, poll_done, NULL);
	if (rc != 0) {
		rt_msg_free(&m);
		set_error(r, rc);
		return;
	}
	ra->in_flight = true;
}

static void
on_poll_timer(struct rt_timer *t, void *arg)
{
	poll_now(arg);
}

static int
on_routing_update(struct rt_actor *self, struct rt_msg *req)
{
	struct routing_actor *ra = rt_actor_state(self);

	/* Only mgmtd's pushes, on the connection we opened to it (see nodectl). */
	if (!rt_msg_from_node(req, CFS_ADDR_NODE(ra->r->opts.mgmtd))) {
		rt_reply(req, -EPERM, NULL);
		return 0;
	}
	adopt(ra, req->type, req->body);
	rt_reply(req, 0, NULL); /* frees a one-way push */
	return 0;
}

static int
routing_actor_init(struct rt_actor *self, const void *arg)
{
	struct routing_actor *ra = rt_actor_state(self);
	struct cfs_routing *r = (struct cfs_routing *)arg;

	ra->r = r;
	r->actor = self;
	ra->poll_ms = r->opts.poll_ms ? r->opts.poll_ms : DEFAULT_POLL_MS;
	rt_timer_init(rt_actor_loop(self), &ra->poll, on_poll_timer, ra);
	/* First poll at once: it also subscribes. */
	rt_timer_start(&ra->poll, 0, ra->poll_ms);
	return 0;
}

static void
routing_actor_fini(struct rt_actor *self)
{
	struct routing_actor *ra = rt_actor_state(self);
	struct cfs_routing *r = ra->r;

	rt_timer_stop(&ra->poll);
	cfs_routing_snap_put(&ra->held);
	r->actor = NULL;
	pthread_mutex_lock(&r->mu);
	r->stopped = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	routing_put(r); /* the actor's reference */
}

static const rt_handler_fn routing_handlers[CFS_MSG__COUNT] = {
	[CFS_MSG_ROUTING_UPDATE] = on_routing_update,
};

static const struct rt_actor_kind routing_kind = {
	.name = "routing",
	.state_size = sizeof(struct routing_actor),
	.init = routing_actor_init,
	.fini = routing_actor_fini,
	.handlers = routing_handlers,
};

int
cfs_routing_create(struct rt *rt, const struct cfs_routing_opts *opts, struct cfs_routing **out)
{
	struct cfs_routing *r;
	cfs_addr_t addr;
	int rc;

	if (!rt || !opts || opts->mgmtd == 0 || opts->loop >= rt_loop_count(rt))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->opts = *opts;
	r->loop = rt_loop_at(rt, opts->loop);
	r->refs = 2; /* the caller's and the actor's */
	rc = rt_spawn(r->loop, &routing_kind, r, 0, &addr);
	if (rc != 0) {
		r->refs = 1;
		routing_put(r);
		return rc;
	}
	*out = r;
	return 0;
}

static void
stop_on_loop(void *arg)
{
	struct cfs_routing *r = arg;

	if (r->actor)
		rt_actor_stop(r->actor);
	routing_put(r); /* the post's reference */
}

void
cfs_routing_destroy(struct cfs_routing **pr)
{
	struct cfs_routing *r = *pr;

	*pr = NULL;
	if (!r)
		return;
	__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
	if (rt_loop_post(r->loop, stop_on_loop, r) != 0) {
		routing_put(r);
	} else {
		pthread_mutex_lock(&r->mu);
		while (!r->stopped)
			pthread_cond_wait(&r->cv, &r->mu);
		pthread_mutex_unlock(&r->mu);
	}
	routing_put(r); /* the caller's reference */
}

struct cfs_routing_snap *
cfs_routing_get(struct cfs_routing *r)
{
	struct cfs_routing_snap *s;

	pthread_mutex_lock(&r->mu);
	s = r->cur;
	if (s)
		cfs_routing_snap_ref(s);
	pthread_mutex_unlock(&r->mu);
	return s;
}

static void
refresh_on_loop(void *arg)
{
	struct cfs_routing *r = arg;

	if (r->actor)
		poll_now(rt_actor_state(r->actor));
	routing_put(r);
}

int
cfs_routing_refresh(struct cfs_routing *r)
{
	int rc;

	__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
	rc = rt_loop_post(r->loop, refresh_on_loop, r);
	if (rc != 0)
		routing_put(r);
	return rc;
}

int
cfs_routing_wait(struct cfs_routing *r, uint64_t min_ver, uint32_t timeout_ms,
		 struct cfs_routing_snap **out)
{
	struct timespec ts;
	int rc = 0;

	*out = NULL;
	cfs_routing_refresh(r);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&r->mu);
	while (!r->stopped && (!r->cur || r->cur->routing_ver < min_ver) && rc == 0)
		rc = pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	if (r->cur && r->cur->routing_ver >= min_ver) {
		*out = r->cur;
		cfs_routing_snap_ref(r->cur);
		rc = 0;
	} else {
		rc = r->stopped ? -CFS_ECANCELED : -ETIMEDOUT;
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int
cfs_routing_last_error(struct cfs_routing *r)
{
	int rc;

	pthread_mutex_lock(&r->mu);
	rc = r->last_error;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

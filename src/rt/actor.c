/* SPDX-License-Identifier: MIT */
/*
 * Actors: spawn, stop and deferred fini, the per-loop actor table, routing of
 * rt_send()/rt_reply()/rt_deliver(), and dispatch with the runtime's central
 * checks (unknown or stopping actor, deadline, handler present) before a
 * handler runs. The handler contract is SPDK's exactly-once rule: a handler
 * that returns 0 owns the request and replies once; one that returns <0 has not
 * replied and the runtime answers with that code.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RT_LOG_SUBSYS "rt"
#include "rt/rt_internal.h"

RT_TLS struct rt_actor *tls_actor;

/* ------------------------------------------------------------- actor table */

#define TABLE_MIN_BITS 6u

static unsigned
table_slot(const struct rt_actor_table *t, uint32_t local)
{
	return (uint32_t)(local * 2654435761u) >> (32 - t->bits);
}

struct rt_actor *
rt_actor_find(struct rt_loop *loop, uint32_t local)
{
	struct rt_actor_table *t = &loop->actors;
	struct rt_actor *a;

	if (!t->b)
		return NULL;
	for (a = t->b[table_slot(t, local)]; a; a = a->hnext) {
		if (a->local == local)
			return a;
	}
	return NULL;
}

static int
table_grow(struct rt_actor_table *t)
{
	unsigned bits = t->b ? t->bits + 1 : TABLE_MIN_BITS;
	struct rt_actor **nb = calloc((size_t)1 << bits, sizeof(*nb));
	struct rt_actor_table nt = {.b = nb, .bits = bits, .n = t->n};

	if (!nb)
		return -ENOMEM;
	for (size_t i = 0; t->b && i < ((size_t)1 << t->bits); i++) {
		struct rt_actor *a, *next;

		for (a = t->b[i]; a; a = next) {
			unsigned s = table_slot(&nt, a->local);

			next = a->hnext;
			a->hnext = nb[s];
			nb[s] = a;
		}
	}
	free(t->b);
	*t = nt;
	return 0;
}

static int
table_insert(struct rt_actor_table *t, struct rt_actor *a)
{
	unsigned s;

	if (!t->b || t->n >= (1u << t->bits)) {
		int rc = table_grow(t);

		/* A full table still works, only slower; an empty one cannot. */
		if (rc != 0 && !t->b)
			return rc;
	}
	s = table_slot(t, a->local);
	a->hnext = t->b[s];
	t->b[s] = a;
	t->n++;
	return 0;
}

static void
table_remove(struct rt_actor_table *t, struct rt_actor *a)
{
	struct rt_actor **pp = &t->b[table_slot(t, a->local)];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == a) {
			*pp = a->hnext;
			t->n--;
			return;
		}
	}
	CFS_PANIC("actor 0x%08x missing from its loop's table", a->local);
}

void
rt_actor_table_fini(struct rt_loop *loop)
{
	if (loop->actors.n != 0)
		RT_WARN("loop %u: %u actors left at destroy", loop->index, loop->actors.n);
	free(loop->actors.b);
	loop->actors = (struct rt_actor_table){0};
}

/* ------------------------------------------------------------ spawn, stop */

static uint32_t
next_local(struct rt_loop *loop)
{
	for (uint32_t tries = 0; tries <= RT_MAX_SERIAL; tries++) {
		uint32_t serial = loop->next_serial++;
		uint32_t local;

		if (loop->next_serial > RT_MAX_SERIAL)
			loop->next_serial = RT_FIRST_SERIAL;
		local = CFS_LOCAL(loop->index, serial);
		if (!rt_actor_find(loop, local))
			return local;
	}
	return 0;
}

/* An init that stopped its own actor and then failed: take it off the reap list. */
static void
dead_unlink(struct rt_loop *loop, struct rt_actor *a)
{
	struct rt_actor **pp;

	for (pp = &loop->dead; *pp; pp = &(*pp)->dnext) {
		if (*pp == a) {
			*pp = a->dnext;
			if (loop->dead_tailp == &a->dnext)
				loop->dead_tailp = pp;
			a->dnext = NULL;
			return;
		}
	}
}

/* On the actor's loop (or before any thread runs it). */
static int
spawn_here(struct rt_loop *loop, const struct rt_actor_kind *kind, const void *arg,
	   uint32_t want_local, cfs_addr_t *out)
{
	struct rt_actor *a, *prev_actor;
	uint32_t local;
	int rc;

	if (want_local != 0) {
		if (rt_actor_find(loop, want_local))
			return -EEXIST;
		local = want_local;
	} else {
		local = next_local(loop);
		if (local == 0)
			return -ENOSPC;
	}
	a = calloc(1, sizeof(*a) + kind->state_size);
	if (!a)
		return -ENOMEM;
	a->loop = loop;
	a->kind = kind;
	a->local = local;
	a->addr = CFS_ADDR(loop->rt->cfg.node_id, local);
	rc = table_insert(&loop->actors, a);
	if (rc != 0)
		goto out_free;
	prev_actor = tls_actor;
	tls_actor = a;
	rc = kind->init ? kind->init(a, arg) : 0;
	tls_actor = prev_actor;
	if (rc < 0)
		goto out_remove;
	if (out)
		*out = a->addr;
	return 0;

out_remove:
	/* fini is not run for a failed init; calls it made still complete once. */
	if (a->stopping)
		dead_unlink(loop, a);
	a->stopping = true;
	rt_call_cancel_all(a, -CFS_ECANCELED);
	table_remove(&loop->actors, a);
out_free:
	free(a);
	return rc;
}

struct spawn_req {
	struct rt_loop *loop;
	const struct rt_actor_kind *kind;
	const void *arg;
	uint32_t want_local;
	cfs_addr_t addr;
	int rc;
	bool done;
};

static void
spawn_on_loop(void *p)
{
	struct spawn_req *req = p;
	struct rt *rt = req->loop->rt;
	bool closed;

	pthread_mutex_lock(&rt->ctl_lock);
	closed = req->loop->closed;
	pthread_mutex_unlock(&rt->ctl_lock);
	/* A loop in shutdown drains its inbox once more: refuse, do not spawn. */
	req->rc = closed ? -ESHUTDOWN
			 : spawn_here(req->loop, req->kind, req->arg, req->want_local, &req->addr);
	pthread_mutex_lock(&rt->ctl_lock);
	req->done = true;
	pthread_cond_broadcast(&rt->ctl_cond);
	pthread_mutex_unlock(&rt->ctl_lock);
}

int
rt_spawn(struct rt_loop *loop, const struct rt_actor_kind *kind, const void *arg,
	 uint32_t want_local, cfs_addr_t *out)
{
	struct spawn_req req = {
		.loop = loop,
		.kind = kind,
		.arg = arg,
		.want_local = want_local,
	};
	struct rt_post *post;
	struct rt *rt;
	int rc;

	if (!loop || !kind)
		return -EINVAL;
	if (want_local != 0 && CFS_LOCAL_LOOP(want_local) != loop->index)
		return -EINVAL;
	rt = loop->rt;
	if (tls_loop == loop || !atomic_load(&loop->threaded)) {
		struct rt_loop *prev = tls_loop;

		if (loop->down)
			return -ESHUTDOWN;
		/* Before a thread runs the loop, run init here as if on the loop. */
		tls_loop = loop;
		rc = spawn_here(loop, kind, arg, want_local, out);
		tls_loop = prev;
		return rc;
	}
	post = calloc(1, sizeof(*post));
	if (!post)
		return -ENOMEM;
	post->m.type = RT_MSG_T_POST;
	post->fn = spawn_on_loop;
	post->arg = &req;
	pthread_mutex_lock(&rt->ctl_lock);
	if (loop->closed) {
		pthread_mutex_unlock(&rt->ctl_lock);
		free(post);
		return -ESHUTDOWN;
	}
	rt_loop_push_now(loop, &post->m);
	while (!req.done)
		pthread_cond_wait(&rt->ctl_cond, &rt->ctl_lock);
	pthread_mutex_unlock(&rt->ctl_lock);
	if (req.rc == 0 && out)
		*out = req.addr;
	return req.rc;
}

/* A thread other than the loop's own touching loop-confined state is a bug,
 * except a control thread before the loop has a thread of its own. */
static void
assert_on_loop(const struct rt_loop *loop, const char *what)
{
	if (tls_loop != loop && atomic_load_explicit(&loop->threaded, memory_order_relaxed))
		CFS_PANIC("%s called off the actor's loop (loop %u)", what, loop->index);
}

void
rt_actor_stop(struct rt_actor *self)
{
	struct rt_loop *loop = self->loop;

	assert_on_loop(loop, "rt_actor_stop");
	if (self->stopping)
		return;
	self->stopping = true;
	rt_call_stop_timers(self);
	self->dnext = NULL;
	*loop->dead_tailp = self;
	loop->dead_tailp = &self->dnext;
	/* Reaped at the end of this iteration's batch (the prepare watcher runs after
	 * every callback of the iteration) or by shutdown. */
}

void
rt_actor_reap(struct rt_loop *loop)
{
	struct rt_actor *a, *prev_actor;

	while ((a = loop->dead) != NULL) {
		loop->dead = a->dnext;
		if (!loop->dead)
			loop->dead_tailp = &loop->dead;
		a->dnext = NULL;
		rt_call_cancel_all(a, -CFS_ECANCELED);
		prev_actor = tls_actor;
		tls_actor = a;
		if (a->kind->fini)
			a->kind->fini(a);
		tls_actor = prev_actor;
		if (a->pending)
			CFS_PANIC("%s: calls left after fini", a->kind->name);
		table_remove(&loop->actors, a);
		free(a);
	}
}

void
rt_loop_stop_actors(struct rt_loop *loop)
{
	struct rt_actor_table *t = &loop->actors;

	for (size_t i = 0; t->b && i < ((size_t)1 << t->bits); i++) {
		for (struct rt_actor *a = t->b[i]; a; a = a->hnext) {
			if (!a->stopping)
				rt_actor_stop(a);
		}
	}
}

void *
rt_actor_state(struct rt_actor *self)
{
	return self->state;
}

cfs_addr_t
rt_actor_addr(const struct rt_actor *self)
{
	return self->addr;
}

struct rt_loop *
rt_actor_loop(const struct rt_actor *self)
{
	return self->loop;
}

const struct rt_actor_kind *
rt_actor_kind(const struct rt_actor *self)
{
	return self->kind;
}

void
rt_actor_set_tag(struct rt_actor *self, uint64_t tag)
{
	self->tag = tag;
}

uint64_t
rt_actor_tag(const struct rt_actor *a)
{
	return a->tag;
}

void
rt_loop_foreach_actor(struct rt_loop *loop,
		      void (*fn)(struct rt_actor *a, uint64_t handled, void *arg), void *arg)
{
	struct rt_actor_table *t = &loop->actors;

	assert_on_loop(loop, "rt_loop_foreach_actor");
	for (size_t i = 0; t->b && i < ((size_t)1 << t->bits); i++) {
		for (struct rt_actor *a = t->b[i]; a; a = a->hnext) {
			if (!a->stopping)
				fn(a, rt_stat_get(&a->handled), arg);
		}
	}
}

/* ----------------------------------------------------------------- routing */

static int
route_remote(struct rt_loop *cur, struct rt_msg *m)
{
	struct rt *rt = cur->rt;
	uint16_t via;
	int rc;

	if (!rt->tops)
		return -EHOSTUNREACH;
	if (m->conn != 0) {
		/* A connection belongs to one loop: only that loop may write to it. */
		unsigned owner = (unsigned)(m->conn >> 56);

		if (owner >= rt->nloops)
			return -EHOSTUNREACH;
		if (owner != cur->index) {
			m->flags |= RT_MSG_F__OUT;
			rt_loop_push(rt->loops[owner], m);
			return 0;
		}
	}
	if (!cur->tinit || cur->tdown)
		return -EHOSTUNREACH;
	/* The marks are for rt alone; a refused message keeps its routing mark
	 * for the caller's retry. */
	via = m->flags & RT_MSG_F_VIA_CONN;
	m->flags &= (uint16_t) ~(RT_MSG_F__INTERNAL | RT_MSG_F_VIA_CONN);
	rc = rt->tops->send(rt->tctx, cur, cur->tstate, m);
	if (rc != 0)
		m->flags |= via;
	return rc > 0 ? -rc : rc;
}

int
rt_route(struct rt_loop *cur, struct rt_msg *m)
{
	struct rt *rt = cur->rt;
	uint32_t node = CFS_ADDR_NODE(m->dst);
	struct rt_loop *dst;
	struct rt_actor *a;
	unsigned li;

	if (m->conn != 0 || (node != CFS_NODE_ANY && node != rt->cfg.node_id))
		return route_remote(cur, m);
	li = CFS_LOCAL_LOOP(CFS_ADDR_LOCAL(m->dst));
	if (li >= rt->nloops)
		return -CFS_ENOACTOR;
	dst = rt->loops[li];
	if (dst != cur) {
		rt_loop_push(dst, m);
		return 0;
	}
	a = rt_actor_find(cur, CFS_ADDR_LOCAL(m->dst));
	if (!a || a->stopping)
		return -CFS_ENOACTOR;
	/* Same loop: queue for this iteration, never call the handler from here. */
	rt_msgq_push(&cur->runq, m);
	return 0;
}

int
rt_send(struct rt_actor *self, struct rt_msg *m)
{
	struct rt_loop *loop = self->loop;

	assert_on_loop(loop, "rt_send");
	m->src = CFS_ADDR(loop->rt->cfg.node_id, self->local);
	m->flags &= (uint16_t)~RT_MSG_F__INTERNAL;
	/* Where a message came from is no reason to send it back there. */
	if (!(m->flags & RT_MSG_F_VIA_CONN))
		m->conn = 0;
	m->via_node = 0;
	return rt_route(loop, m);
}

int
rt_send_conn(struct rt_actor *self, uint64_t conn, struct rt_msg *m)
{
	m->conn = conn;
	if (conn != 0)
		m->flags |= RT_MSG_F_VIA_CONN;
	else
		m->flags &= (uint16_t)~RT_MSG_F_VIA_CONN;
	return rt_send(self, m);
}

/* The broken invariants of rt_reply, each with its own message. */
static __attribute__((noinline, cold)) void
reply_panic(struct rt_msg *req, struct rt_msg *resp)
{
	unsigned type = req->type;

	if (req->iovcap == RT_MSG_POISON)
		CFS_PANIC("rt_reply: request %p already replied or freed", (void *)req);
	if (req->flags & RT_MSG_F_RESP)
		CFS_PANIC("rt_reply: %s is a response", cfs_msg_name(type));
	if (!tls_loop)
		CFS_PANIC("rt_reply: %s answered off any loop", cfs_msg_name(type));
	CFS_PANIC("rt_reply: %s answered with %s", cfs_msg_name(type), cfs_msg_name(resp->type));
}

void
rt_reply(struct rt_msg *req, int rc, struct rt_msg *resp)
{
	struct rt_loop *cur = tls_loop;
	unsigned type = req->type;
	int err;

	if (__builtin_expect(req->iovcap == RT_MSG_POISON || (req->flags & RT_MSG_F_RESP) || !cur ||
				     (resp && resp->type != cfs_msg_resp_of(type)),
			     0))
		reply_panic(req, resp);
	if ((req->flags & RT_MSG_F_ONEWAY) || type == CFS_MSG_NONE || type >= CFS_MSG__COUNT ||
	    cfs_msg_is_resp(type)) {
		rt_msg_free(&resp);
		rt_msg_free(&req);
		return;
	}
	if (!resp) {
		resp = rt_msg_new(cfs_msg_resp_of(type));
		if (!resp) {
			RT_ERRLOG("out of memory answering %s req=%llx: caller will time out",
				  cfs_msg_name(type), (unsigned long long)req->req_id);
			rt_msg_free(&req);
			return;
		}
	}
	*(int32_t *)resp->body = rc;
	resp->rc = rc;
	resp->flags = RT_MSG_F_RESP | (req->conn != 0 ? RT_MSG_F_VIA_CONN : 0);
	resp->req_id = req->req_id;
	resp->dst = req->src;
	resp->src = CFS_ADDR(cur->rt->cfg.node_id, CFS_ADDR_LOCAL(req->dst));
	resp->conn = req->conn;
	rt_msg_free(&req);
	err = rt_route(cur, resp);
	if (err != 0) {
		RT_DEBUG("dropping %s req=%llx to %llx: %s", cfs_msg_name(resp->type),
			 (unsigned long long)resp->req_id, (unsigned long long)resp->dst,
			 cfs_errname(err));
		rt_msg_free(&resp);
	}
}

/* A message that cannot be delivered here: a response is dropped, a request
 * answered with rc. Out of line: the delivery path stays a leaf. */
static __attribute__((noinline, cold)) void
deliver_refuse(struct rt_loop *loop, struct rt_msg *m, int rc)
{
	if (rc == -CFS_EWRONGNODE)
		RT_DEBUG("%s for node %u arrived at node %u", cfs_msg_name(m->type),
			 CFS_ADDR_NODE(m->dst), loop->rt->cfg.node_id);
	if (m->flags & RT_MSG_F_RESP)
		rt_msg_free(&m);
	else
		rt_reply(m, rc, NULL);
}

void
rt_deliver(struct rt_loop *loop, struct rt_msg *m)
{
	struct rt *rt = loop->rt;
	uint32_t node = CFS_ADDR_NODE(m->dst);
	unsigned li = CFS_LOCAL_LOOP(CFS_ADDR_LOCAL(m->dst));

	assert_on_loop(loop, "rt_deliver");
	m->flags &= (uint16_t) ~(RT_MSG_F__INTERNAL | RT_MSG_F_VIA_CONN);
	if (cfs_msg_is_resp(m->type))
		m->flags |= RT_MSG_F_RESP;
	if (__builtin_expect(node != CFS_NODE_ANY && node != rt->cfg.node_id, 0)) {
		deliver_refuse(loop, m, -CFS_EWRONGNODE);
		return;
	}
	if (__builtin_expect(li >= rt->nloops, 0)) {
		deliver_refuse(loop, m, -CFS_ENOACTOR);
		return;
	}
	/* A node-local message from the wire could, say, give a storage actor a
	 * routing version that outranks its own node's for good. */
	if (__builtin_expect(m->conn != 0 && cfs_msg_node_local(m->type), 0)) {
		RT_WARN("%s from connection %llx refused: node-local only", cfs_msg_name(m->type),
			(unsigned long long)m->conn);
		deliver_refuse(loop, m, -EPERM);
		return;
	}
	if (rt->loops[li] == loop)
		rt_msgq_push(&loop->runq, m);
	else
		rt_loop_push(rt->loops[li], m);
}

/* ---------------------------------------------------------------- dispatch */

/* A response for an actor that is gone or stopping, or a message of a type
 * no actor handles: dropped with a line. */
static __attribute__((noinline, cold)) void
dispatch_drop(struct rt_msg *m)
{
	if (m->flags & RT_MSG_F_RESP)
		RT_DEBUG("dropping %s req=%llx: no actor 0x%08x", cfs_msg_name(m->type),
			 (unsigned long long)m->req_id, CFS_ADDR_LOCAL(m->dst));
	else
		RT_WARN("dropping message of bad type %u from %llx", m->type,
			(unsigned long long)m->src);
	rt_msg_free(&m);
}

/* The central checks of a request, then its handler. */
static void
dispatch_request(struct rt_loop *loop, struct rt_actor *a, struct rt_msg *m)
{
	struct rt_actor *prev_actor;
	rt_handler_fn h;
	unsigned type = m->type;
	int rc;

	if (type == CFS_MSG_NONE || type >= CFS_MSG__COUNT || cfs_msg_is_resp(type)) {
		dispatch_drop(m);
		return;
	}
	if (!a || a->stopping) {
		RT_DEBUG("%s for unknown actor 0x%08x from %llx", cfs_msg_name(type),
			 CFS_ADDR_LOCAL(m->dst), (unsigned long long)m->src);
		rt_reply(m, -CFS_ENOACTOR, NULL);
		return;
	}
	/* The iteration's time: a request a few microseconds past its deadline
	 * may still run, which is harmless; a clock read per message is not. */
	if (m->deadline_ns != 0 && rt_loop_now_ns(loop) > m->deadline_ns) {
		RT_DEBUG("dropping expired %s req=%llx from %llx", cfs_msg_name(type),
			 (unsigned long long)m->req_id, (unsigned long long)m->src);
		rt_msg_free(&m);
		return;
	}
	h = a->kind->handlers ? a->kind->handlers[type] : NULL;
	if (!h) {
		rt_reply(m, -CFS_ENOTSUP, NULL);
		return;
	}
	prev_actor = tls_actor;
	tls_actor = a;
	rc = h(a, m);
	tls_actor = prev_actor;
	rt_stat_add(&a->handled, 1);
	rt_stat_add(&loop->handled, 1);
	if (rc < 0)
		rt_reply(m, rc, NULL);
}

void
rt_dispatch(struct rt_loop *loop, struct rt_msg *m)
{
	struct rt_actor *a = rt_actor_find(loop, CFS_ADDR_LOCAL(m->dst));

	if (!(m->flags & RT_MSG_F_RESP)) {
		dispatch_request(loop, a, m);
		return;
	}
	if (__builtin_expect(!a || a->stopping, 0)) {
		dispatch_drop(m);
		return;
	}
	rt_stat_add(&a->handled, 1);
	rt_stat_add(&loop->handled, 1);
	rt_call_complete(a, m);
}

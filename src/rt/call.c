/* SPDX-License-Identifier: MIT */
/*
 * Request/response on top of messages: rt_call() records a pending call (in the
 * loop's hash by req_id and in the calling actor's list) with a timeout timer;
 * the response, the timeout, rt_peer_lost() or the actor's stop completes it,
 * and whichever comes first removes it, so the callback runs exactly once and
 * anything later (a late response) finds nothing and is dropped.
 */
#include <errno.h>
#include <stdlib.h>

#define RT_LOG_SUBSYS "rt"
#include "rt/rt_internal.h"

#define PENDING_MIN_BITS 6u
#define PENDING_FREE_MAX 4096u

static unsigned
pend_slot(const struct rt_pending_table *t, uint64_t req_id)
{
	return (unsigned)((req_id * 0x9e3779b97f4a7c15ull) >> (64 - t->bits));
}

void
rt_pending_table_init(struct rt_pending_table *t)
{
	*t = (struct rt_pending_table){0};
}

void
rt_pending_table_fini(struct rt_pending_table *t)
{
	struct rt_pending *p, *next;

	if (t->n != 0)
		RT_WARN("%u calls still pending at destroy", t->n);
	for (p = t->freelist; p; p = next) {
		next = p->hnext;
		free(p);
	}
	free(t->b);
	*t = (struct rt_pending_table){0};
}

static int
pend_grow(struct rt_pending_table *t)
{
	unsigned bits = t->b ? t->bits + 1 : PENDING_MIN_BITS;
	struct rt_pending **nb = calloc((size_t)1 << bits, sizeof(*nb));
	struct rt_pending_table nt = *t;

	if (!nb)
		return -ENOMEM;
	nt.b = nb;
	nt.bits = bits;
	for (size_t i = 0; t->b && i < ((size_t)1 << t->bits); i++) {
		struct rt_pending *p, *next;

		for (p = t->b[i]; p; p = next) {
			unsigned s = pend_slot(&nt, p->req_id);

			next = p->hnext;
			p->hnext = nb[s];
			nb[s] = p;
		}
	}
	free(t->b);
	*t = nt;
	return 0;
}

static struct rt_pending *
pend_find(struct rt_pending_table *t, uint64_t req_id)
{
	struct rt_pending *p;

	if (!t->b)
		return NULL;
	for (p = t->b[pend_slot(t, req_id)]; p; p = p->hnext) {
		if (p->req_id == req_id)
			return p;
	}
	return NULL;
}

/* Take p out of the loop's hash and its actor's list, and stop its timer. */
static void
pend_unlink(struct rt_loop *loop, struct rt_pending *p)
{
	struct rt_pending_table *t = &loop->pending;
	struct rt_pending **pp = &t->b[pend_slot(t, p->req_id)];

	while (*pp != p)
		pp = &(*pp)->hnext;
	*pp = p->hnext;
	t->n--;
	*p->aprev = p->anext;
	if (p->anext)
		p->anext->aprev = p->aprev;
	ev_timer_stop(loop->ev, &p->timer);
}

static void
pend_put(struct rt_loop *loop, struct rt_pending *p)
{
	struct rt_pending_table *t = &loop->pending;

	if (t->nfree >= PENDING_FREE_MAX) {
		free(p);
		return;
	}
	p->hnext = t->freelist;
	t->freelist = p;
	t->nfree++;
}

/* Complete p (already unlinked) with rc, as the calling actor. */
static void
pend_finish(struct rt_loop *loop, struct rt_pending *p, int rc, struct rt_msg *resp)
{
	struct rt_actor *prev_actor = tls_actor;
	struct rt_actor *a = p->actor;
	rt_reply_fn cb = p->cb;
	void *cb_arg = p->cb_arg;

	/* Recycle first: the callback may issue the next call with this entry. */
	pend_put(loop, p);
	tls_actor = a;
	cb(a, rc, resp, cb_arg);
	tls_actor = prev_actor;
}

static void
pend_timeout(struct ev_loop *ev, ev_timer *w, int revents)
{
	struct rt_pending *p = RT_CONTAINER_OF(w, struct rt_pending, timer);
	struct rt_loop *loop = p->actor->loop;

	RT_DEBUG("call req=%llx to node %u timed out", (unsigned long long)p->req_id, p->dst_node);
	pend_unlink(loop, p);
	pend_finish(loop, p, -ETIMEDOUT, NULL);
}

int
rt_call(struct rt_actor *self, cfs_addr_t dst, struct rt_msg *m, uint32_t timeout_ms,
	rt_reply_fn cb, void *cb_arg)
{
	struct rt_loop *loop = self->loop;
	struct rt_pending_table *t = &loop->pending;
	struct rt_pending *p;
	unsigned s;
	int rc;

	if (!cb || m->type == CFS_MSG_NONE || m->type >= CFS_MSG__COUNT || cfs_msg_is_resp(m->type))
		return -EINVAL;
	/* A stopping actor's calls are about to be canceled; a new one would
	 * outlive it. */
	if (self->stopping)
		return -CFS_ECANCELED;
	if (!t->b || t->n >= (1u << t->bits)) {
		rc = pend_grow(t);
		if (rc != 0 && !t->b)
			return rc;
	}
	p = t->freelist;
	if (p) {
		t->freelist = p->hnext;
		t->nfree--;
	} else {
		p = malloc(sizeof(*p));
		if (!p)
			return -ENOMEM;
	}
	/* Loop index in the top bits keeps ids unique across the process's loops. */
	t->counter = (t->counter + 1) & ((1ull << 56) - 1);
	p->req_id = ((uint64_t)loop->index << 56) | t->counter;
	p->actor = self;
	p->dst_node = CFS_ADDR_NODE(dst);
	p->cb = cb;
	p->cb_arg = cb_arg;
	s = pend_slot(t, p->req_id);
	p->hnext = t->b[s];
	t->b[s] = p;
	t->n++;
	p->anext = self->pending;
	p->aprev = &self->pending;
	if (self->pending)
		self->pending->aprev = &p->anext;
	self->pending = p;
	if (timeout_ms == 0)
		timeout_ms = loop->rt->cfg.default_timeout_ms;
	ev_timer_init(&p->timer, pend_timeout, (double)timeout_ms / 1000., 0.);
	ev_timer_start(loop->ev, &p->timer);

	m->dst = dst;
	m->req_id = p->req_id;
	m->flags &= (uint16_t) ~(RT_MSG_F_RESP | RT_MSG_F_ONEWAY);
	rc = rt_send(self, m);
	if (rc != 0) {
		pend_unlink(loop, p);
		pend_put(loop, p);
		m->req_id = 0;
	}
	return rc;
}

/* The response a reply callback is looking at, and whether it kept it. */
static __thread struct rt_msg *tls_resp;
static __thread bool tls_claimed;

void
rt_msg_claim(struct rt_msg *resp)
{
	if (!resp || resp != tls_resp)
		CFS_PANIC("rt_msg_claim outside the reply callback of that response");
	tls_claimed = true;
}

void
rt_call_complete(struct rt_actor *a, struct rt_msg *m)
{
	struct rt_loop *loop = a->loop;
	struct rt_pending *p = pend_find(&loop->pending, m->req_id);
	struct rt_msg *prev_resp = tls_resp;
	bool prev_claimed = tls_claimed, claimed;
	int rc = m->rc;

	if (!p || p->actor != a) {
		RT_DEBUG("dropping late %s req=%llx from %llx", cfs_msg_name(m->type),
			 (unsigned long long)m->req_id, (unsigned long long)m->src);
		rt_msg_free(&m);
		return;
	}
	if (rc > 0) {
		RT_WARN("%s req=%llx carries positive rc %d", cfs_msg_name(m->type),
			(unsigned long long)m->req_id, rc);
		rc = -CFS_EPROTO;
	}
	pend_unlink(loop, p);
	/* Saved and restored: a callback may complete other calls (rt_peer_lost). */
	tls_resp = m;
	tls_claimed = false;
	pend_finish(loop, p, rc, m);
	claimed = tls_claimed;
	tls_resp = prev_resp;
	tls_claimed = prev_claimed;
	if (!claimed)
		rt_msg_free(&m);
}

void
rt_call_stop_timers(struct rt_actor *a)
{
	for (struct rt_pending *p = a->pending; p; p = p->anext)
		ev_timer_stop(a->loop->ev, &p->timer);
}

void
rt_call_cancel_all(struct rt_actor *a, int rc)
{
	struct rt_pending *p;

	while ((p = a->pending) != NULL) {
		pend_unlink(a->loop, p);
		pend_finish(a->loop, p, rc, NULL);
	}
}

void
rt_peer_lost(struct rt_loop *loop, uint32_t node, int rc)
{
	struct rt_pending_table *t = &loop->pending;
	struct rt_pending *lost = NULL, *p, *next;

	if (tls_loop != loop && atomic_load(&loop->threaded))
		CFS_PANIC("rt_peer_lost called off loop %u", loop->index);
	if (rc >= 0)
		rc = -ECONNRESET;
	/* Collect first: callbacks may issue new calls and grow the table. */
	for (size_t i = 0; t->b && i < ((size_t)1 << t->bits); i++) {
		for (p = t->b[i]; p; p = next) {
			next = p->hnext;
			if (p->dst_node != node)
				continue;
			pend_unlink(loop, p);
			p->hnext = lost;
			lost = p;
		}
	}
	for (p = lost; p; p = next) {
		next = p->hnext;
		pend_finish(loop, p, rc, NULL);
	}
}

/* SPDX-License-Identifier: MIT */
/*
 * Request/response on top of messages: rt_call() records a pending call (in the
 * loop's table by req_id, in the calling actor's list and in a timeout list);
 * the response, the timeout, rt_peer_lost() or the actor's stop completes it,
 * and whichever comes first removes it, so the callback runs exactly once and
 * anything later (a late response) finds nothing and is dropped.
 *
 * Timeouts cost no libev call per call: see struct rt_call_tlist. Deadlines
 * are on the rt clock (rt_loop_now_ns, once per iteration); the one timer per
 * loop that wakes the loop for them runs on libev's clock like every timer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#define RT_LOG_SUBSYS "rt"
#include "rt/rt_internal.h"

#define PENDING_MIN_BITS 6u
#define PENDING_FREE_MAX 4096u

static void tl_on_timer(struct ev_loop *ev, ev_timer *w, int revents);

/*
 * The pending table is indexed by the request id itself: a call takes the slot
 * req_id & mask, so finding a response's call is one load and one compare (no
 * hash, no chain). Ids come from a per-loop counter; when the slot of the next
 * id is still held by an older call the counter skips ahead to a free one, so
 * ids stay unique and increasing. The table doubles when half full; doubling
 * never makes two calls share a slot (their ids already differed in the low
 * bits).
 */
static inline struct rt_pending **
pend_slot(struct rt_pending_table *t, uint64_t req_id)
{
	return &t->b[req_id & t->mask];
}

void
rt_pending_table_init(struct rt_loop *loop)
{
	struct rt_pending_table *t = &loop->pending;

	*t = (struct rt_pending_table){0};
	for (unsigned i = 0; i < RT_CALL_TLISTS; i++)
		t->tl[i].tailp = &t->tl[i].head;
	ev_timer_init(&t->timer, tl_on_timer, 0., 0.);
	t->timer.data = loop;
}

void
rt_pending_table_fini(struct rt_loop *loop)
{
	struct rt_pending_table *t = &loop->pending;
	struct rt_pending *p, *next;

	if (t->n != 0)
		RT_WARN("%u calls still pending at destroy", t->n);
	ev_timer_stop(loop->ev, &t->timer);
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
	size_t mask = t->b ? t->mask * 2 + 1 : ((size_t)1 << PENDING_MIN_BITS) - 1;
	struct rt_pending **nb = calloc(mask + 1, sizeof(*nb));

	if (!nb)
		return -ENOMEM;
	for (size_t i = 0; t->b && i <= t->mask; i++) {
		if (t->b[i])
			nb[t->b[i]->req_id & mask] = t->b[i];
	}
	free(t->b);
	t->b = nb;
	t->mask = mask;
	return 0;
}

static inline struct rt_pending *
pend_find(struct rt_pending_table *t, uint64_t req_id)
{
	struct rt_pending *p;

	if (!t->b)
		return NULL;
	p = *pend_slot(t, req_id);
	return p && p->req_id == req_id ? p : NULL;
}

/* ---------------------------------------------------------------- timeouts */

/* Set the loop's timer to the earliest deadline of any list, or stop it. */
static void
tl_rearm(struct rt_loop *loop)
{
	struct rt_pending_table *t = &loop->pending;
	uint64_t first = 0, now;

	for (unsigned i = 0; i < RT_CALL_TLISTS; i++) {
		struct rt_pending *h = t->tl[i].head;

		if (h && (first == 0 || h->deadline_ns < first))
			first = h->deadline_ns;
	}
	if (first == t->armed_ns)
		return;
	ev_timer_stop(loop->ev, &t->timer);
	t->armed_ns = first;
	if (first == 0)
		return;
	now = rt_loop_now_ns(loop);
	ev_timer_set(&t->timer, first > now ? (double)(first - now) / 1e9 : 0., 0.);
	ev_timer_start(loop->ev, &t->timer);
}

/* The list for calls of timeout_ms: the one already holding that timeout, a
 * free one, or (more distinct timeouts than lists) the last one, shared. */
static unsigned
tl_pick(struct rt_pending_table *t, uint32_t timeout_ms)
{
	unsigned i, free_i = RT_CALL_TLISTS;

	if (t->tl[t->tl_hint].timeout_ms == timeout_ms)
		return t->tl_hint;
	for (i = 0; i < RT_CALL_TLISTS; i++) {
		if (t->tl[i].timeout_ms == timeout_ms)
			break;
		if (!t->tl[i].head && free_i == RT_CALL_TLISTS)
			free_i = i;
	}
	if (i == RT_CALL_TLISTS) {
		i = free_i < RT_CALL_TLISTS ? free_i : RT_CALL_TLISTS - 1;
		if (!t->tl[i].head)
			t->tl[i].timeout_ms = timeout_ms;
	}
	t->tl_hint = i;
	return i;
}

static void
tl_add(struct rt_loop *loop, struct rt_pending *p, uint32_t timeout_ms)
{
	struct rt_pending_table *t = &loop->pending;
	unsigned i = tl_pick(t, timeout_ms);
	struct rt_call_tlist *l = &t->tl[i];
	struct rt_pending **pp = l->tailp;

	p->deadline_ns = rt_loop_now_ns(loop) + (uint64_t)timeout_ms * 1000000u;
	p->tlist = (uint8_t)i;
	/* Same timeout, so later or equal deadline: the tail is the place. Only
	 * a shared list walks back (pp names the link that would point to p). */
	while (pp != &l->head) {
		struct rt_pending *prev = RT_CONTAINER_OF(pp, struct rt_pending, tnext);

		if (prev->deadline_ns <= p->deadline_ns)
			break;
		pp = prev->tprev;
	}
	p->tnext = *pp;
	p->tprev = pp;
	if (p->tnext)
		p->tnext->tprev = &p->tnext;
	else
		l->tailp = &p->tnext;
	*pp = p;
	if (t->armed_ns == 0 || p->deadline_ns < t->armed_ns)
		tl_rearm(loop);
}

static void
tl_remove(struct rt_loop *loop, struct rt_pending *p)
{
	struct rt_call_tlist *l = &loop->pending.tl[p->tlist];

	if (!p->tprev)
		return;
	*p->tprev = p->tnext;
	if (p->tnext)
		p->tnext->tprev = p->tprev;
	else
		l->tailp = p->tprev;
	p->tnext = NULL;
	p->tprev = NULL;
	/* The timer stays where it is: a fire that finds nothing due re-arms. */
}

/* Take p out of the loop's hash, its actor's list and its timeout list. */
static void
pend_unlink(struct rt_loop *loop, struct rt_pending *p)
{
	struct rt_pending_table *t = &loop->pending;

	*pend_slot(t, p->req_id) = NULL;
	t->n--;
	*p->aprev = p->anext;
	if (p->anext)
		p->anext->aprev = p->aprev;
	tl_remove(loop, p);
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
tl_on_timer(struct ev_loop *ev, ev_timer *w, int revents)
{
	struct rt_loop *loop = w->data;
	struct rt_pending_table *t = &loop->pending;
	struct rt_pending *due = NULL, *p, *next;
	uint64_t now = rt_clock_mono_ns();

	/* A fresh reading: the timer fired, so this iteration's time is stale. */
	loop->now_ns = now;
	loop->now_valid = true;
	t->armed_ns = 0;
	/* Collect first: callbacks may issue calls into these very lists. */
	for (unsigned i = 0; i < RT_CALL_TLISTS; i++) {
		while ((p = t->tl[i].head) != NULL && p->deadline_ns <= now) {
			RT_DEBUG("call req=%llx to node %u timed out",
				 (unsigned long long)p->req_id, p->dst_node);
			pend_unlink(loop, p);
			p->hnext = due;
			due = p;
		}
	}
	for (p = due; p; p = next) {
		next = p->hnext;
		pend_finish(loop, p, -ETIMEDOUT, NULL);
	}
	tl_rearm(loop);
}

int
rt_call(struct rt_actor *self, cfs_addr_t dst, struct rt_msg *m, uint32_t timeout_ms,
	rt_reply_fn cb, void *cb_arg)
{
	struct rt_loop *loop = self->loop;
	struct rt_pending_table *t = &loop->pending;
	struct rt_pending *p;
	int rc;

	if (!cb || m->type == CFS_MSG_NONE || m->type >= CFS_MSG__COUNT || cfs_msg_is_resp(m->type))
		return -EINVAL;
	/* A stopping actor's calls are about to be canceled; a new one would
	 * outlive it. */
	if (self->stopping)
		return -CFS_ECANCELED;
	/* Half full: double, so the free slot below is found in a step or two.
	 * A failed growth still leaves room while the table is not full. */
	if (!t->b || t->n > t->mask / 2) {
		rc = pend_grow(t);
		if (rc != 0 && (!t->b || t->n > t->mask))
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
	/* Loop index in the top bits keeps ids unique across the process's loops.
	 * Skip the ids whose slot an older call still holds. */
	do {
		t->counter = (t->counter + 1) & ((1ull << 56) - 1);
		p->req_id = ((uint64_t)loop->index << 56) | t->counter;
	} while (*pend_slot(t, p->req_id) != NULL);
	p->actor = self;
	p->answered = false;
	p->dst_node = CFS_ADDR_NODE(dst);
	p->resp_type = (uint16_t)cfs_msg_resp_of(m->type);
	p->cb = cb;
	p->cb_arg = cb_arg;
	*pend_slot(t, p->req_id) = p;
	t->n++;
	p->anext = self->pending;
	p->aprev = &self->pending;
	if (self->pending)
		self->pending->aprev = &p->anext;
	self->pending = p;
	if (timeout_ms == 0)
		timeout_ms = loop->rt->cfg.default_timeout_ms;
	tl_add(loop, p, timeout_ms);

	m->dst = dst;
	m->req_id = p->req_id;
	m->flags &= (uint16_t) ~(RT_MSG_F_RESP | RT_MSG_F_ONEWAY);
	rc = rt_send(self, m);
	if (rc != 0) {
		/* The entry must still be this call's (rt_transport_ops.send). */
		if (pend_find(&loop->pending, m->req_id) != p)
			CFS_PANIC("rt_call: the transport completed req=%llx while refusing it",
				  (unsigned long long)m->req_id);
		pend_unlink(loop, p);
		pend_put(loop, p);
		m->req_id = 0;
	}
	return rc;
}

/* The response a reply callback is looking at, and whether it kept it. */
static RT_TLS struct rt_msg *tls_resp;
static RT_TLS bool tls_claimed;

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
	/* Only the node called may answer: another, or a peer that connected
	 * to us, could guess a request id (and, say, acknowledge a chain write
	 * that never reached the successor). */
	if (!rt_msg_from_node(m, p->dst_node)) {
		RT_WARN("%s req=%llx on connection %llx (node %" PRIu32
			") for a call to node %" PRIu32 ": dropped",
			cfs_msg_name(m->type), (unsigned long long)m->req_id,
			(unsigned long long)m->conn, m->via_node, p->dst_node);
		rt_msg_free(&m);
		return;
	}
	if (rc > 0) {
		RT_WARN("%s req=%llx carries positive rc %d", cfs_msg_name(m->type),
			(unsigned long long)m->req_id, rc);
		rc = -CFS_EPROTO;
	}
	if (m->type != p->resp_type) {
		/* The callback would read this body as another type's. */
		RT_WARN("%s req=%llx answers a call that waits for %s: refused",
			cfs_msg_name(m->type), (unsigned long long)m->req_id,
			cfs_msg_name(p->resp_type));
		pend_unlink(loop, p);
		pend_finish(loop, p, -CFS_EPROTO, NULL);
		rt_msg_free(&m);
		return;
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
		tl_remove(a->loop, p);
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

/* Set (or clear) `answered` on the calls whose responses are queued. */
static void
mark_answered(struct rt_loop *loop, bool on)
{
	for (struct rt_msg *m = loop->runq.head; m != NULL; m = m->next) {
		struct rt_pending *p;

		if (!(m->flags & RT_MSG_F_RESP))
			continue;
		p = pend_find(&loop->pending, m->req_id);
		if (p != NULL && p->actor->local == CFS_ADDR_LOCAL(m->dst) &&
		    rt_msg_from_node(m, p->dst_node))
			p->answered = on;
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
	/* A call whose response arrived before the connection ended is not
	 * lost: the response waits in the run queue (a loop iteration
	 * dispatches a bounded number) and completes it when its turn comes. */
	mark_answered(loop, true);
	/* Collect first: callbacks may issue new calls and grow the table. */
	for (size_t i = 0; t->b && i <= t->mask; i++) {
		p = t->b[i];
		if (!p || p->dst_node != node || p->answered)
			continue;
		pend_unlink(loop, p);
		p->hnext = lost;
		lost = p;
	}
	mark_answered(loop, false);
	/* An actor stopped earlier in this iteration still holds its calls
	 * until the reap: they end as canceled (rt.h), whatever the peer did. */
	for (p = lost; p; p = next) {
		next = p->hnext;
		pend_finish(loop, p, p->actor->stopping ? -CFS_ECANCELED : rc, NULL);
	}
}

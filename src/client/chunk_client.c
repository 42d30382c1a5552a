// SPDX-License-Identifier: MIT
/*
 * The routing-aware chunk client (chunk_client.h): a client runtime, a routing
 * cache subscribed to mgmtd, one "chunk_client" actor per client loop, and the
 * batch engine that runs operations on those actors.
 *
 * A batch is split into one contiguous part per loop (fewer when it is small);
 * each part is posted to its loop and runs there without locks. Every
 * operation is a small state machine on its loop: pick a target from the
 * newest routing snapshot (writes, removes, truncates: the chain's head;
 * reads and queries: a serving replica, spread by a hash of the chunk plus the
 * attempt number), rt_call it, and on an answer either finish or, for a
 * retryable code, refresh routing and try again after a backoff (exponential
 * from 5 ms, capped at 200 ms, with jitter) until the operation's deadline.
 * Reads of one target in one part leave as one chunk_read on their first
 * attempt; a retried read goes alone. The calling thread sleeps on a
 * condition variable until the batch's last operation finishes.
 *
 * Lifetime rule of the engine: the batch, its contexts and the caller's ops
 * live on the calling thread's stack / heap until the last operation finishes,
 * and the caller frees them as soon as it wakes. So after op_finish() nothing
 * may touch that operation's context or the batch: every path ends there.
 */
#define RT_LOG_SUBSYS "chunk"
#include "client/chunk_client.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "client/placement.h"
#include "client/routing.h"
#include "client/targets.h"
#include "disk/disk.h"

#define DEFAULT_TIMEOUT_MS	2000u
#define DEFAULT_DEADLINE_MS	30000u
#define DEFAULT_ROUTING_WAIT_MS 10000u
#define BACKOFF_MIN_MS		5u
#define BACKOFF_MAX_MS		200u
/* How long a chain unknown to routing is waited for (routing may lag a
 * create-chains by a push) before -CFS_ENOCHAIN. */
#define NOCHAIN_WAIT_MS 2000u
/* One chunk_read carries at most this many reads and bytes (the target
 * accepts 1024 ranges and 64 MiB by default; stay well inside). */
#define GROUP_MAX_IOS	256u
#define GROUP_MAX_BYTES (16u << 20)

struct cfs_chunk_client {
	struct cfs_client *cl;
	struct cfs_routing *routing;
	unsigned nloops;
	struct rt_actor *actors[RT_MAX_LOOPS]; /* actors[i] lives on loop i */
	uint32_t timeout_ms;
	uint32_t deadline_ms;
	/* client_req = req_base + counter: a random 64-bit start, so that two
	 * clients' ranges overlap with odds of about their length / 2^64, and
	 * one client never wraps (a 32-bit counter would after 2^32 mutations
	 * and could repeat the id a chunk's version was made with). */
	uint64_t req_base;
	uint64_t counter;		     /* atomic */
	struct cfs_chunk_client_stats stats; /* atomic counters */
	/* Submissions whose done has not run yet: destroy waits for them. */
	pthread_mutex_t mu;
	pthread_cond_t idle;
	unsigned submitted;
};

#define STAT_ADD(c, field, n) __atomic_add_fetch(&(c)->stats.field, (n), __ATOMIC_RELAXED)

/* ---------------------------------------------------------------- actor */

struct cc_actor {
	struct cfs_chunk_client *c;
	unsigned loop;
};

static int
cc_actor_init(struct rt_actor *self, const void *arg)
{
	struct cc_actor *a = rt_actor_state(self);

	a->c = (struct cfs_chunk_client *)arg;
	a->loop = rt_loop_index(rt_actor_loop(self));
	a->c->actors[a->loop] = self;
	return 0;
}

static void
cc_actor_fini(struct rt_actor *self)
{
	struct cc_actor *a = rt_actor_state(self);

	a->c->actors[a->loop] = NULL;
}

/* It only sends: every message type is refused centrally. */
static const rt_handler_fn cc_handlers[CFS_MSG__COUNT];

static const struct rt_actor_kind cc_kind = {
	.name = "chunk_client",
	.state_size = sizeof(struct cc_actor),
	.init = cc_actor_init,
	.fini = cc_actor_fini,
	.handlers = cc_handlers,
};

/* ---------------------------------------------------------------- batch */

/* The operations of one cfs_chunk_batch (a waiting caller: mu, cv, done) or
 * one cfs_chunk_submit (end_fn, and the batch owns its memory: struct
 * async_batch). */
struct batch {
	struct cfs_chunk_client *c;
	int remaining; /* atomic: operations not finished */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	cfs_chunk_done_fn end_fn; /* NULL: a caller waits on cv */
	void *end_arg;
	struct cfs_chunk_op *ops;
	unsigned n;
};

/* Replicas a read remembers as holding bad bytes (ECHECKSUM): as many as a
 * chain has members (mgmtd's MGMTD_MAX_REPLICAS). */
#define BAD_MAX 16u

/* One operation's retry state, on its part's loop. */
struct op_ctx {
	struct batch *b;
	struct cfs_chunk_op *op;
	struct rt_actor *self;
	struct rt_timer timer;
	struct rt_buf *buf;  /* write: the payload, copied once, kept across retries */
	uint32_t crc;	     /* write: its CRC32C, computed once with the copy */
	uint64_t client_req; /* mutations: the same for every retry */
	uint64_t deadline_ns;
	uint64_t nochain_since_ns; /* 0, or when routing first lacked the chain */
	uint64_t hash;		   /* of the chunk id: spreads reads over replicas */
	uint32_t want_chain_ver;   /* ESTALECHAIN named it: wait for routing to reach it */
	uint32_t backoffs;	   /* backoffs so far (the exponent) */
	uint32_t sent;		   /* attempts whose request left (rt_call took it) */
	uint32_t fast_tries;	   /* read: replicas tried without a backoff in a row */
	uint32_t nbad;		   /* read: replicas that answered ECHECKSUM, */
	uint32_t bad[BAD_MAX];	   /* by target id: not asked again */
	uint32_t nserving;	   /* read: serving replicas at the last attempt */
	uint32_t rng;
};

struct part {
	struct batch *b;
	struct op_ctx *ctx;
	unsigned count;
	unsigned loop;
};

/* Reads of one target sent together on their first attempt. */
struct read_group {
	uint32_t target;
	cfs_addr_t addr;
	uint16_t flags;
	uint32_t count;
	uint64_t bytes;
	struct op_ctx *ctx[GROUP_MAX_IOS];
};

static void op_attempt(struct op_ctx *x);

static void
batch_wake(struct batch *b)
{
	pthread_mutex_lock(&b->mu);
	b->done = true;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

/* n more (or, negative, fewer) submissions whose done is still to run. */
static void
submitted_add(struct cfs_chunk_client *c, int n)
{
	pthread_mutex_lock(&c->mu);
	c->submitted += (unsigned)n;
	if (c->submitted == 0)
		pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->mu);
}

/* The last operation of b ended: wake the caller, or run the submitter's
 * callback and free the batch (async_batch: b is its first member). */
static void
batch_end(struct batch *b)
{
	struct cfs_chunk_client *c = b->c;

	if (!b->end_fn) {
		batch_wake(b);
		return;
	}
	b->end_fn(b->end_arg, b->ops, b->n);
	free(b);
	submitted_add(c, -1);
}

/* The operation ends with rc. The last one ends the batch, which frees x and
 * the batch: touch neither after this call. */
static void
op_finish(struct op_ctx *x, int rc)
{
	struct batch *b = x->b;

	rt_timer_stop(&x->timer);
	rt_buf_put(&x->buf);
	x->op->rc = rc;
	if (rc != 0)
		STAT_ADD(b->c, failed, 1);
	if (__atomic_sub_fetch(&b->remaining, 1, __ATOMIC_ACQ_REL) == 0)
		batch_end(b);
}

static bool
op_is_read(const struct op_ctx *x)
{
	return x->op->kind == CFS_CHUNK_OP_READ || x->op->kind == CFS_CHUNK_OP_QUERY;
}

/* Worth another attempt: the chain or a replica may be fine again soon. */
static bool
retryable(int rc)
{
	switch (rc) {
	case -CFS_ESTALECHAIN:
	case -CFS_ENOTSERVING:
	case -CFS_EBUSY:
	case -ETIMEDOUT:
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -EPIPE:
	case -CFS_ENOACTOR:
	/* The replica's actor stopped with our request in it (its node shutting
	 * down): the chain fails over; a write's retry keeps its client_req. */
	case -CFS_ECANCELED:
	/* The transport names these when a node's endpoint is not (yet) known
	 * or its connection just went away: routing catches up. */
	case -EHOSTUNREACH:
	case -ENOTCONN:
		return true;
	default:
		return false;
	}
}

static uint32_t
xorshift32(uint32_t *s)
{
	uint32_t v = *s ? *s : 0x9e3779b9u;

	v ^= v << 13;
	v ^= v >> 17;
	v ^= v << 5;
	*s = v;
	return v;
}

/* Exponential from BACKOFF_MIN_MS, capped, in [d/2, d]: retries of many
 * operations that failed together do not come back together. */
static uint32_t
backoff_ms(struct op_ctx *x)
{
	uint32_t k = x->backoffs < 16 ? x->backoffs : 16;
	uint64_t d = (uint64_t)BACKOFF_MIN_MS << k;

	x->backoffs++;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	return (uint32_t)(d / 2 + xorshift32(&x->rng) % (d / 2 + 1));
}

static void
on_retry_timer(struct rt_timer *t, void *arg)
{
	(void)t;
	op_attempt(arg);
}

/* Try again after delay_ms, or end with -ETIMEDOUT when that passes the deadline. */
static void
op_retry_in(struct op_ctx *x, uint32_t delay_ms)
{
	uint64_t now = rt_now_ns(rt_actor_loop(x->self));

	if (now + (uint64_t)delay_ms * 1000000u >= x->deadline_ns) {
		op_finish(x, -ETIMEDOUT);
		return;
	}
	rt_timer_start(&x->timer, delay_ms, 0);
}

/* Whether target answered this read with bad bytes. */
static bool
bad_has(const struct op_ctx *x, uint32_t target)
{
	for (uint32_t i = 0; i < x->nbad; i++)
		if (x->bad[i] == target)
			return true;
	return false;
}

/*
 * An attempt failed with rc (named_ver: the chain version an ESTALECHAIN
 * answer carried, else 0). Retry or finish.
 */
static void
op_failed(struct op_ctx *x, int rc, uint32_t named_ver)
{
	bool read = op_is_read(x);

	RT_DEBUG("op kind=%d chain=%" PRIu64 " target=%" PRIu32 " attempt=%" PRIu32 ": %s",
		 (int)x->op->kind, x->op->chain_id, x->op->target, x->op->attempts,
		 cfs_errname(rc));
	if (rc == -CFS_ECHECKSUM && read && !(x->op->flags & CFS_CHUNK_F_REPLICA)) {
		/* That replica's copy (or the bytes on the way) is bad: another
		 * replica may hold a good one, and it is not asked again. Every
		 * serving one bad: the data is (op_pick finishes the read). */
		if (!bad_has(x, x->op->target)) {
			if (x->nbad == BAD_MAX) {
				/* A chain longer than any mgmtd makes: rather than
				 * ask the same bad ones again without a pause. */
				op_finish(x, rc);
				return;
			}
			x->bad[x->nbad++] = x->op->target;
		}
		op_retry_in(x, 0);
		return;
	}
	if (rc == -CFS_ENOCHUNK && x->op->kind == CFS_CHUNK_OP_REMOVE && x->sent > 1) {
		/* An earlier attempt of this remove left and failed in a way that
		 * may have applied it (its tombstone committed, the answer lost):
		 * "no such chunk" now is most likely our own remove. The removed
		 * version went to that lost answer: 0, unknown. (The window left:
		 * another client re-created and removed the chunk in between;
		 * actors/storage/README.md.) */
		x->op->version = 0;
		op_finish(x, 0);
		return;
	}
	if (!retryable(rc)) {
		op_finish(x, rc);
		return;
	}
	if (rc == -CFS_ESTALECHAIN && named_ver > x->want_chain_ver)
		x->want_chain_ver = named_ver;
	if (rc != -CFS_EBUSY)
		cfs_routing_refresh(x->b->c->routing);
	/* A read has other replicas: try the next one at once, once around. */
	if (read && rc != -CFS_ESTALECHAIN && rc != -CFS_EBUSY &&
	    !(x->op->flags & CFS_CHUNK_F_REPLICA) && x->fast_tries + 1 < x->nserving) {
		x->fast_tries++;
		op_retry_in(x, 0);
		return;
	}
	x->fast_tries = 0;
	op_retry_in(x, backoff_ms(x));
}

/* ------------------------------------------------------------- answers */

/* Copy one read result's bytes (payload [off, off+len) of resp) into the op
 * and check them end to end. */
/* A lent read: the caller gets a reference on the buffer the bytes arrived in
 * (the transport received the payload into one, so they are contiguous), after
 * the same end-to-end CRC check as a copied read. */
static int
read_lend(struct op_ctx *x, const struct rt_msg *resp, uint32_t off,
	  const struct cfs_chunk_io_result *r)
{
	struct cfs_chunk_op *op = x->op;
	const struct rt_iov *v = resp->iov;
	const uint8_t *p;

	for (uint32_t i = 0; i < resp->iovcnt && off >= v->len; i++, v++)
		off -= v->len;
	if (r->len && (v == resp->iov + resp->iovcnt || (uint64_t)off + r->len > v->len))
		return -CFS_EPROTO; /* no segment, or the bytes straddle two */
	p = r->len ? v->buf->data + v->off + off : NULL;
	if (disk_crc32c(0, p, r->len) != r->crc)
		return -CFS_ECHECKSUM;
	if (r->len) {
		rt_buf_ref(v->buf);
		op->out_lent = v->buf;
	}
	op->out_data = p;
	op->out_len = r->len;
	op->out_crc = r->crc;
	op->version = r->version;
	return 0;
}

void
cfs_chunk_op_release(struct cfs_chunk_op *op)
{
	struct rt_buf *b = op->out_lent;

	rt_buf_put(&b);
	op->out_lent = NULL;
	op->out_data = NULL;
}

static int
read_take(struct op_ctx *x, const struct rt_msg *resp, uint32_t off,
	  const struct cfs_chunk_io_result *r)
{
	struct cfs_chunk_op *op = x->op;
	int rc;

	if (r->len > op->len || (uint64_t)off + r->len > resp->plen)
		return -CFS_EPROTO;
	if (op->flags & CFS_CHUNK_F_LEND)
		return read_lend(x, resp, off, r);
	rc = rt_msg_payload_copy(resp, off, op->data, r->len);
	if (rc != 0)
		return -CFS_EPROTO;
	if (disk_crc32c(0, op->data, r->len) != r->crc)
		return -CFS_ECHECKSUM;
	op->out_len = r->len;
	op->out_crc = r->crc;
	op->version = r->version;
	return 0;
}

static void
on_read_group_done(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct read_group *g = cb_arg;
	const struct cfs_chunk_read_resp *r = resp ? RT_BODY(resp, chunk_read_resp) : NULL;
	uint32_t named = (rc == -CFS_ESTALECHAIN && r) ? r->chain_ver : 0;
	uint32_t count = g->count, off = 0;
	struct op_ctx *ctx[GROUP_MAX_IOS];

	(void)self;
	/* The group goes first: finishing the last op frees the batch, not g. */
	memcpy(ctx, g->ctx, count * sizeof(ctx[0]));
	free(g);
	if (rc == 0 && (!r || r->results_count != count))
		rc = -CFS_EPROTO;
	for (uint32_t i = 0; i < count; i++) {
		struct op_ctx *x = ctx[i];
		int xrc = rc;

		if (rc == 0) {
			const struct cfs_chunk_io_result *res = &r->results[i];

			xrc = res->rc;
			if (xrc == 0) {
				xrc = read_take(x, resp, off, res);
				off += res->len;
			}
		}
		if (xrc == 0)
			op_finish(x, 0);
		else
			op_failed(x, xrc, named);
	}
}

static void
on_op_done(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct op_ctx *x = cb_arg;
	struct cfs_chunk_op *op = x->op;
	uint32_t named = 0;

	(void)self;
	switch (op->kind) {
	case CFS_CHUNK_OP_WRITE:
		if (resp) {
			const struct cfs_chunk_write_resp *w = RT_BODY(resp, chunk_write_resp);

			named = w->chain_ver;
			if (rc == 0) {
				op->version = w->version;
				op->out_len = w->len;
				op->out_crc = w->crc;
			}
		}
		break;
	case CFS_CHUNK_OP_READ:
		if (resp) {
			const struct cfs_chunk_read_resp *r = RT_BODY(resp, chunk_read_resp);

			named = r->chain_ver;
			if (rc == 0 && r->results_count != 1)
				rc = -CFS_EPROTO;
			else if (rc == 0)
				rc = r->results[0].rc ? r->results[0].rc
						      : read_take(x, resp, 0, &r->results[0]);
		}
		break;
	case CFS_CHUNK_OP_REMOVE:
		if (rc == 0 && resp)
			op->version = RT_BODY(resp, chunk_remove_resp)->version;
		break;
	case CFS_CHUNK_OP_TRUNCATE:
		if (rc == 0 && resp) {
			const struct cfs_chunk_truncate_resp *t =
				RT_BODY(resp, chunk_truncate_resp);

			op->version = t->version;
			op->out_len = t->len;
			op->out_crc = t->crc;
		}
		break;
	case CFS_CHUNK_OP_QUERY:
		if (rc == 0 && resp) {
			const struct cfs_chunk_query_resp *q = RT_BODY(resp, chunk_query_resp);

			op->version = q->committed;
			op->pending = q->pending;
			op->pending_remove = q->ptomb;
			op->out_len = q->len;
			op->out_crc = q->crc;
			op->out_chunk_size = q->chunk_size;
		}
		break;
	}
	if (rc == 0 && !resp)
		rc = -CFS_EPROTO;
	if (rc == 0)
		op_finish(x, 0);
	else
		op_failed(x, rc, named);
}

/* ------------------------------------------------------------ attempts */

/* The request for one attempt of x at member m of chain ch. */
static int
op_msg(struct op_ctx *x, const struct cfs_route_chain *ch, const struct cfs_route_member *m,
       struct rt_msg **out)
{
	struct cfs_chunk_op *op = x->op;
	struct rt_msg *req = NULL;
	int rc = 0;

	switch (op->kind) {
	case CFS_CHUNK_OP_WRITE: {
		struct cfs_chunk_write *w;

		if (!x->buf)
			return -ENOMEM; /* part_run could not copy the payload */
		rc = cfs_chunk_write_msg_crc(m->target, &op->chunk, op->chunk_size, op->offset,
					     x->buf, 0, op->len, x->crc, &req);
		if (rc != 0)
			return rc;
		w = RT_BODY(req, chunk_write);
		w->chain_id = ch->chain_id;
		w->chain_ver = ch->chain_ver;
		w->client_req = x->client_req;
		break;
	}
	case CFS_CHUNK_OP_READ: {
		const struct cfs_chunk_io io = {
			.chunk = op->chunk, .offset = op->offset, .len = op->len};

		rc = cfs_chunk_read_msg(m->target, ch->chain_id, ch->chain_ver, &io, 1, &req);
		if (rc != 0)
			return rc;
		if (op->flags & CFS_CHUNK_F_RELAXED)
			req->flags |= RT_MSG_F_RELAXED;
		break;
	}
	case CFS_CHUNK_OP_REMOVE: {
		struct cfs_chunk_remove *r;

		req = rt_msg_new(CFS_MSG_CHUNK_REMOVE);
		if (!req)
			return -ENOMEM;
		r = RT_BODY(req, chunk_remove);
		r->target = m->target;
		r->chain_id = ch->chain_id;
		r->chain_ver = ch->chain_ver;
		r->chunk = op->chunk;
		r->client_req = x->client_req;
		break;
	}
	case CFS_CHUNK_OP_TRUNCATE: {
		struct cfs_chunk_truncate *t;

		req = rt_msg_new(CFS_MSG_CHUNK_TRUNCATE);
		if (!req)
			return -ENOMEM;
		t = RT_BODY(req, chunk_truncate);
		t->target = m->target;
		t->chain_id = ch->chain_id;
		t->chain_ver = ch->chain_ver;
		t->chunk = op->chunk;
		t->len = op->len;
		t->chunk_size = op->chunk_size;
		t->client_req = x->client_req;
		break;
	}
	case CFS_CHUNK_OP_QUERY:
		req = rt_msg_new(CFS_MSG_CHUNK_QUERY);
		if (!req)
			return -ENOMEM;
		RT_BODY(req, chunk_query)->target = m->target;
		RT_BODY(req, chunk_query)->chunk = op->chunk;
		/* Answered only by a tail that serves this chain version within
		 * its lease (a replica dropped from the chain would answer with
		 * what it held then). Inspecting one replica asks it as it is. */
		if (!(op->flags & CFS_CHUNK_F_REPLICA))
			RT_BODY(req, chunk_query)->chain_ver = ch->chain_ver;
		break;
	}
	*out = req;
	return rc;
}

enum pick {
	PICK_OK,   /* *member chosen */
	PICK_WAIT, /* routing not there yet (chain unknown, version behind): wait */
	PICK_NONE, /* no member can take it now (nothing serving): retry later;
		      with *rc set, finish with it */
};

/* Which member of the chain takes this attempt. */
static enum pick
op_pick(struct op_ctx *x, const struct cfs_routing_snap *s, const struct cfs_route_chain **chp,
	int *member, int *rc)
{
	struct cfs_chunk_op *op = x->op;
	const struct cfs_route_chain *ch = cfs_routing_chain(s, op->chain_id);
	int tail;

	*rc = 0;
	*chp = ch;
	if (!ch) {
		uint64_t now = rt_now_ns(rt_actor_loop(x->self));

		if (x->nochain_since_ns == 0)
			x->nochain_since_ns = now;
		else if (now - x->nochain_since_ns >= (uint64_t)NOCHAIN_WAIT_MS * 1000000u)
			*rc = -CFS_ENOCHAIN;
		return PICK_WAIT;
	}
	x->nochain_since_ns = 0;
	if (ch->chain_ver < x->want_chain_ver)
		return PICK_WAIT;
	if (!op_is_read(x)) {
		*member = cfs_route_chain_head(ch);
		return *member < 0 ? PICK_NONE : PICK_OK;
	}
	tail = cfs_route_chain_tail(ch);
	if (tail < 0)
		return PICK_NONE;
	x->nserving = (uint32_t)tail + 1;
	if (op->flags & CFS_CHUNK_F_REPLICA) {
		if (op->replica >= x->nserving) {
			*rc = -CFS_ENOTSERVING;
			return PICK_NONE;
		}
		*member = (int)op->replica;
		return PICK_OK;
	}
	/* A query asks the tail: it alone knows every committed version (a
	 * replica before it may hold a newer one only pending). */
	if (op->kind == CFS_CHUNK_OP_QUERY) {
		*member = tail;
		return PICK_OK;
	}
	/* Spread over the serving replicas, past those that answered bad bytes:
	 * a slow good one is asked again rather than a bad one. */
	for (uint32_t i = 0; i < x->nserving; i++) {
		uint32_t m = (uint32_t)((x->hash + op->attempts + i) % x->nserving);

		if (!bad_has(x, ch->members[m].target)) {
			*member = (int)m;
			return PICK_OK;
		}
	}
	*rc = -CFS_ECHECKSUM;
	return PICK_NONE;
}

static uint32_t
attempt_timeout(const struct op_ctx *x)
{
	uint64_t now = rt_now_ns(rt_actor_loop(x->self));
	uint64_t left_ms = x->deadline_ns > now ? (x->deadline_ns - now) / 1000000u : 0;
	uint32_t t = x->b->c->timeout_ms;

	if (left_ms < t)
		t = left_ms ? (uint32_t)left_ms : 1;
	return t;
}

/* One attempt of one operation, alone. */
static void
op_attempt(struct op_ctx *x)
{
	struct cfs_chunk_client *c = x->b->c;
	const struct cfs_route_chain *ch;
	struct cfs_routing_snap *s;
	struct rt_msg *req = NULL;
	int member = -1, rc = 0;
	enum pick p;

	if (rt_now_ns(rt_actor_loop(x->self)) >= x->deadline_ns) {
		op_finish(x, -ETIMEDOUT);
		return;
	}
	s = cfs_routing_get(c->routing);
	if (!s) {
		cfs_routing_refresh(c->routing);
		op_retry_in(x, backoff_ms(x));
		return;
	}
	p = op_pick(x, s, &ch, &member, &rc);
	if (p != PICK_OK) {
		cfs_routing_snap_put(&s);
		if (rc == -CFS_ENOCHAIN || (rc != 0 && p == PICK_NONE)) {
			op_finish(x, rc);
			return;
		}
		cfs_routing_refresh(c->routing);
		op_retry_in(x, backoff_ms(x));
		return;
	}
	x->op->target = ch->members[member].target;
	if (x->op->attempts++ > 0)
		STAT_ADD(c, retries, 1);
	STAT_ADD(c, requests, 1);
	rc = op_msg(x, ch, &ch->members[member], &req);
	if (rc == 0) {
		rc = rt_call(x->self, ch->members[member].addr, req, attempt_timeout(x), on_op_done,
			     x);
		if (rc != 0)
			rt_msg_free(&req);
		else
			x->sent++;
	}
	cfs_routing_snap_put(&s);
	if (rc != 0)
		op_failed(x, rc, 0);
}

/* A group that could not be sent: each read goes its own way (those not
 * counted as attempted yet start alone, the others count the failure). */
static void
group_unsent(struct read_group *g, int rc)
{
	uint32_t count = g->count;
	struct op_ctx *ctx[GROUP_MAX_IOS];

	memcpy(ctx, g->ctx, count * sizeof(ctx[0]));
	free(g);
	for (uint32_t i = 0; i < count; i++) {
		if (ctx[i]->op->attempts == 0)
			op_attempt(ctx[i]);
		else
			op_failed(ctx[i], rc, 0);
	}
}

/* Send a group of first-attempt reads as one chunk_read; on failure to send,
 * each read goes its own way. */
static void
group_send(struct op_ctx *x0, struct read_group *g, const struct cfs_route_chain *ch)
{
	struct cfs_chunk_read *r;
	struct rt_msg *req;
	int rc;

	rc = cfs_chunk_read_msg(g->target, ch->chain_id, ch->chain_ver, NULL, g->count, &req);
	if (rc != 0)
		goto out_fail;
	r = RT_BODY(req, chunk_read);
	for (uint32_t i = 0; i < g->count; i++) {
		const struct cfs_chunk_op *op = g->ctx[i]->op;

		r->ios[i] = (struct cfs_chunk_io){
			.chunk = op->chunk, .offset = op->offset, .len = op->len};
		g->ctx[i]->op->target = g->target;
		g->ctx[i]->op->attempts++;
	}
	req->flags |= g->flags;
	STAT_ADD(x0->b->c, requests, 1);
	rc = rt_call(x0->self, g->addr, req, attempt_timeout(x0), on_read_group_done, g);
	if (rc == 0)
		return;
	rt_msg_free(&req);
out_fail:
	group_unsent(g, rc);
}

/*
 * First attempts of a part: reads grouped per (target, relaxed), in order of
 * appearance; everything else (and reads that cannot be placed now) alone.
 */
static void
part_run(void *arg)
{
	struct part *pt = arg;
	struct cfs_chunk_client *c = pt->b->c;
	struct rt_actor *self = c->actors[pt->loop];
	struct cfs_routing_snap *s = cfs_routing_get(c->routing);
	struct read_group **groups = NULL;
	const struct cfs_route_chain **gchain = NULL;
	unsigned ngroups = 0, count = pt->count;
	struct op_ctx *ctx = pt->ctx;
	uint64_t now;

	/* pt lives in the caller's frame until the batch ends: copy what we
	 * need, as the batch may end before this function does. */
	if (!self)
		CFS_PANIC("chunk client: no actor on loop %u", pt->loop);
	now = rt_now_ns(rt_actor_loop(self));
	for (unsigned i = 0; i < count; i++) {
		ctx[i].self = self;
		ctx[i].deadline_ns = now + (uint64_t)c->deadline_ms * 1000000u;
		rt_timer_init(rt_actor_loop(self), &ctx[i].timer, on_retry_timer, &ctx[i]);
		/* The payload is copied here, on the loop, into a buffer of the
		 * loop's pool: off a loop rt_buf_get mallocs fresh pages, and their
		 * faults cost more than the copy itself (about a fifth of the client's
		 * CPU on 1 MiB writes). One copy and one CRC32C per operation, shared
		 * by its retries. No buffer: op_msg fails the write with -ENOMEM. */
		if (ctx[i].op->kind == CFS_CHUNK_OP_WRITE) {
			struct cfs_chunk_op *op = ctx[i].op;

			ctx[i].buf = rt_buf_get(op->len ? op->len : 1);
			if (ctx[i].buf) {
				if (op->len)
					memcpy(ctx[i].buf->data, op->data, op->len);
				ctx[i].buf->len = op->len;
				ctx[i].crc = disk_crc32c(0, ctx[i].buf->data, op->len);
			}
		}
	}
	if (s && count > 1) {
		groups = calloc(count, sizeof(*groups));
		gchain = calloc(count, sizeof(*gchain));
		if (!groups || !gchain) {
			/* No memory to group: every read alone. */
			free(groups);
			free(gchain);
			groups = NULL;
			gchain = NULL;
		}
	}
	/* Collect first, send after: no op may finish while we still walk ctx. */
	for (unsigned i = 0; i < count; i++) {
		struct op_ctx *x = &ctx[i];
		const struct cfs_route_chain *ch;
		struct read_group *g = NULL;
		uint16_t flags;
		int member, rc;

		x->op->target = 0;
		if (!groups || x->op->kind != CFS_CHUNK_OP_READ ||
		    op_pick(x, s, &ch, &member, &rc) != PICK_OK)
			continue;
		flags = (x->op->flags & CFS_CHUNK_F_RELAXED) ? RT_MSG_F_RELAXED : 0;
		for (unsigned k = 0; k < ngroups; k++) {
			struct read_group *h = groups[k];

			if (h->target == ch->members[member].target && h->flags == flags &&
			    gchain[k] == ch && h->count < GROUP_MAX_IOS &&
			    h->bytes + x->op->len <= GROUP_MAX_BYTES) {
				g = h;
				break;
			}
		}
		if (!g) {
			g = calloc(1, sizeof(*g));
			if (!g)
				continue;
			g->target = ch->members[member].target;
			g->addr = ch->members[member].addr;
			g->flags = flags;
			gchain[ngroups] = ch;
			groups[ngroups++] = g;
		}
		g->ctx[g->count++] = x;
		g->bytes += x->op->len;
		x->op->target = g->target; /* marks it as grouped */
	}
	/* Alone: everything not in a group of two or more. */
	for (unsigned k = 0; k < ngroups; k++) {
		if (groups[k]->count == 1) {
			groups[k]->ctx[0]->op->target = 0;
			free(groups[k]);
			groups[k] = NULL;
		}
	}
	/*
	 * Sending may finish ops (a failed send), and the batch ends with the
	 * last one. The ops that go alone are sent first: while a group is
	 * unsent its ops are pending, so the batch (and ctx) outlives this walk;
	 * after that only part_run's own groups, gchain and s are touched.
	 */
	for (unsigned i = 0; i < count; i++) {
		if (ctx[i].op->target == 0)
			op_attempt(&ctx[i]);
	}
	for (unsigned k = 0; k < ngroups; k++) {
		if (groups[k])
			group_send(groups[k]->ctx[0], groups[k], gchain[k]);
	}
	free(groups);
	free(gchain);
	cfs_routing_snap_put(&s);
}

/* ---------------------------------------------------------------- API */

/* Refuse what no retry can fix, before anything is sent. */
static int
op_check(const struct cfs_chunk_op *op)
{
	bool nonzero = false;

	for (unsigned i = 0; i < 16; i++)
		nonzero |= op->chunk.b[i] != 0;
	if (!nonzero || op->chain_id == 0)
		return -EINVAL;
	switch (op->kind) {
	case CFS_CHUNK_OP_WRITE:
		if (op->chunk_size == 0 || op->chunk_size > DISK_MAX_CHUNK ||
		    (uint64_t)op->offset + op->len > op->chunk_size || (op->len && !op->data))
			return -EINVAL;
		return 0;
	case CFS_CHUNK_OP_READ:
		if ((uint64_t)op->offset + op->len > DISK_MAX_CHUNK)
			return -EINVAL;
		if ((op->flags & CFS_CHUNK_F_LEND) ? op->data != NULL : (op->len && !op->data))
			return -EINVAL;
		return 0;
	case CFS_CHUNK_OP_TRUNCATE:
		if (op->chunk_size == 0 || op->chunk_size > DISK_MAX_CHUNK ||
		    op->len > op->chunk_size)
			return -EINVAL;
		return 0;
	case CFS_CHUNK_OP_REMOVE:
	case CFS_CHUNK_OP_QUERY:
		return 0;
	}
	return -EINVAL;
}

/* A mutation's request id, unique for good: never 0 (0 means none). */
static uint64_t
next_client_req(struct cfs_chunk_client *c)
{
	uint64_t id;

	do
		id = c->req_base + __atomic_add_fetch(&c->counter, 1, __ATOMIC_RELAXED);
	while (id == 0);
	return id;
}

/* Reset the outcome of ops[0, n), check each, and fill ctx with the valid
 * ones, packed at the front in order, belonging to b. Runs on the calling
 * thread: checks and ids (payloads are copied on the loop, in part_run).
 * Returns how many are valid. */
static unsigned
batch_prepare(struct batch *b, struct cfs_chunk_op *ops, unsigned n, struct op_ctx *ctx)
{
	struct cfs_chunk_client *c = b->c;
	unsigned nvalid = 0;

	for (unsigned i = 0; i < n; i++) {
		struct cfs_chunk_op *op = &ops[i];
		struct op_ctx *x = &ctx[nvalid];
		uint64_t w[2];

		op->rc = 0;
		op->out_len = 0;
		op->out_crc = 0;
		op->out_data = NULL;
		op->out_lent = NULL;
		op->version = 0;
		op->target = 0;
		op->attempts = 0;
		op->pending = 0;
		op->pending_remove = false;
		op->out_chunk_size = 0;
		op->rc = op_check(op);
		if (op->rc != 0)
			continue;
		memset(x, 0, sizeof(*x));
		x->b = b;
		x->op = op;
		memcpy(w, op->chunk.b, sizeof(w));
		x->hash = cfs_mix64(cfs_mix64(w[0]) ^ w[1]);
		x->rng = (uint32_t)(x->hash ^ (x->hash >> 32)) | 1u;
		/* Mutations carry one id for all their retries: the head answers a
		 * retry of one it applied with the recorded result. */
		if (op->kind == CFS_CHUNK_OP_WRITE || op->kind == CFS_CHUNK_OP_REMOVE ||
		    op->kind == CFS_CHUNK_OP_TRUNCATE)
			x->client_req = next_client_req(c);
		nvalid++;
	}
	return nvalid;
}

/*
 * Hand ctx[0, nvalid) to the client's loops: contiguous parts, at least 8 ops
 * each, at most one per loop. Once the last part is posted the batch may end
 * (and an async one be freed) on a loop thread at any moment: nothing of b or
 * parts is touched after that.
 */
static void
batch_launch(struct batch *b, struct op_ctx *ctx, unsigned nvalid, struct part *parts)
{
	struct cfs_chunk_client *c = b->c;
	struct rt *rt = cfs_client_rt(c->cl);
	unsigned nparts = (nvalid + 7) / 8;

	if (nparts > c->nloops)
		nparts = c->nloops;
	b->remaining = (int)nvalid;
	STAT_ADD(c, ops, nvalid);
	for (unsigned k = 0, first = 0; k < nparts; k++) {
		unsigned cnt = nvalid / nparts + (k < nvalid % nparts ? 1 : 0);

		parts[k] = (struct part){.b = b, .ctx = ctx + first, .count = cnt, .loop = k};
		first += cnt;
	}
	for (unsigned k = 0; k < nparts; k++) {
		struct op_ctx *pctx = parts[k].ctx;
		unsigned count = parts[k].count;
		int prc = rt_loop_post(rt_loop_at(rt, parts[k].loop), part_run, &parts[k]);

		if (prc == 0)
			continue;
		/* That loop never runs them: end them here. Only the last part's
		 * last op can end the batch, and nothing is touched after it. */
		for (unsigned i = 0; i < count; i++) {
			pctx[i].op->rc = prc;
			if (__atomic_sub_fetch(&b->remaining, 1, __ATOMIC_ACQ_REL) == 0)
				batch_end(b);
		}
	}
}

int
cfs_chunk_batch(struct cfs_chunk_client *c, struct cfs_chunk_op *ops, unsigned n)
{
	struct batch b = {.c = c};
	struct op_ctx *ctx = NULL;
	struct part parts[RT_MAX_LOOPS];
	unsigned nvalid;
	int rc = 0;

	if (n == 0)
		return 0;
	ctx = calloc(n, sizeof(*ctx));
	if (!ctx) {
		for (unsigned i = 0; i < n; i++)
			ops[i].rc = -ENOMEM;
		return -ENOMEM;
	}
	nvalid = batch_prepare(&b, ops, n, ctx);
	if (nvalid == 0)
		goto out;
	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	batch_launch(&b, ctx, nvalid, parts);
	pthread_mutex_lock(&b.mu);
	while (!b.done)
		pthread_cond_wait(&b.cv, &b.mu);
	pthread_mutex_unlock(&b.mu);
	pthread_cond_destroy(&b.cv);
	pthread_mutex_destroy(&b.mu);
out:
	/* Every payload buffer went back in op_finish, on the loop. */
	for (unsigned i = 0; i < n; i++) {
		if (rc == 0 && ops[i].rc != 0)
			rc = ops[i].rc;
	}
	free(ctx);
	return rc;
}

/* An async batch: one allocation, freed by batch_end after its callback. */
struct async_batch {
	struct batch b; /* first: batch_end frees through it */
	struct part parts[RT_MAX_LOOPS];
	struct op_ctx ctx[];
};

/* A submission whose every op failed its checks: the callback still runs on a
 * loop, never inside cfs_chunk_submit. */
static void
async_none(void *arg)
{
	batch_end(arg);
}

int
cfs_chunk_submit(struct cfs_chunk_client *c, struct cfs_chunk_op *ops, unsigned n,
		 cfs_chunk_done_fn done, void *arg)
{
	struct async_batch *a;
	unsigned nvalid;
	int rc;

	if (n == 0 || !done)
		return -EINVAL;
	a = calloc(1, sizeof(*a) + (size_t)n * sizeof(a->ctx[0]));
	if (!a) {
		for (unsigned i = 0; i < n; i++)
			ops[i].rc = -ENOMEM;
		return -ENOMEM;
	}
	a->b = (struct batch){.c = c, .end_fn = done, .end_arg = arg, .ops = ops, .n = n};
	submitted_add(c, 1);
	nvalid = batch_prepare(&a->b, ops, n, a->ctx);
	if (nvalid > 0) {
		batch_launch(&a->b, a->ctx, nvalid, a->parts);
		return 0;
	}
	rc = rt_loop_post(rt_loop_at(cfs_client_rt(c->cl), 0), async_none, a);
	if (rc != 0) {
		free(a);
		submitted_add(c, -1);
	}
	return rc;
}

int
cfs_chunk_put(struct cfs_chunk_client *c, uint64_t chain_id, const struct cfs_id128 *chunk,
	      uint32_t chunk_size, uint32_t offset, const void *data, uint32_t len,
	      uint64_t *version)
{
	struct cfs_chunk_op op = {
		.kind = CFS_CHUNK_OP_WRITE,
		.chain_id = chain_id,
		.chunk = *chunk,
		.chunk_size = chunk_size,
		.offset = offset,
		.len = len,
		.data = (void *)data,
	};
	int rc = cfs_chunk_batch(c, &op, 1);

	if (rc == 0 && version)
		*version = op.version;
	return rc;
}

int
cfs_chunk_get(struct cfs_chunk_client *c, uint64_t chain_id, const struct cfs_id128 *chunk,
	      uint32_t offset, void *data, uint32_t len, uint32_t flags, uint32_t *got,
	      uint64_t *version)
{
	struct cfs_chunk_op op = {
		.kind = CFS_CHUNK_OP_READ,
		.chain_id = chain_id,
		.chunk = *chunk,
		.offset = offset,
		.len = len,
		.data = data,
		/* The bytes go to data: nothing is lent (nobody would give it back). */
		.flags = flags & ~(CFS_CHUNK_F_REPLICA | CFS_CHUNK_F_LEND),
	};
	int rc = cfs_chunk_batch(c, &op, 1);

	if (rc == 0 && got)
		*got = op.out_len;
	if (rc == 0 && version)
		*version = op.version;
	return rc;
}

void
cfs_chunk_client_stats(struct cfs_chunk_client *c, struct cfs_chunk_client_stats *out)
{
	out->ops = __atomic_load_n(&c->stats.ops, __ATOMIC_RELAXED);
	out->requests = __atomic_load_n(&c->stats.requests, __ATOMIC_RELAXED);
	out->retries = __atomic_load_n(&c->stats.retries, __ATOMIC_RELAXED);
	out->failed = __atomic_load_n(&c->stats.failed, __ATOMIC_RELAXED);
}

struct cfs_routing_snap *
cfs_chunk_client_routing(struct cfs_chunk_client *c)
{
	return cfs_routing_get(c->routing);
}

uint64_t
cfs_chunk_client_place(struct cfs_chunk_client *c, uint64_t seed, uint64_t index, uint32_t stripe)
{
	struct cfs_routing_snap *s = cfs_routing_get(c->routing);
	uint64_t chain = 0;

	if (s && s->nchains > 0) {
		uint32_t n = s->nchains;
		uint32_t w = stripe == 0 || stripe > n ? n : stripe;

		chain = s->chains[cfs_perm(seed, n, cfs_place_chunk(seed, index, w))].chain_id;
	}
	cfs_routing_snap_put(&s);
	return chain;
}

int
cfs_chunk_client_create(const struct cfs_chunk_client_opts *opts, struct cfs_chunk_client **out)
{
	struct cfs_client_opts copts = {0};
	struct cfs_routing_opts ropts = {0};
	struct cfs_routing_snap *s = NULL;
	struct cfs_chunk_client *c;
	uint32_t alias, wait_ms;
	cfs_addr_t addr;
	int rc;

	*out = NULL;
	if (!opts || !opts->mgmtd || !opts->mgmtd[0] || opts->loops > RT_MAX_LOOPS)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->deadline_ms = opts->deadline_ms ? opts->deadline_ms : DEFAULT_DEADLINE_MS;
	c->nloops = opts->loops ? opts->loops : 1;
	c->req_base = rt_random64();
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->idle, NULL);
	copts.loops = c->nloops;
	copts.timeout_ms = c->timeout_ms;
	rc = cfs_client_create(&copts, &c->cl);
	if (rc != 0)
		goto out_free;
	rc = cfs_client_connect(c->cl, opts->mgmtd, &alias);
	if (rc != 0)
		goto out_client;
	for (unsigned i = 0; i < c->nloops; i++) {
		rc = rt_spawn(rt_loop_at(cfs_client_rt(c->cl), i), &cc_kind, c, 0, &addr);
		if (rc != 0)
			goto out_client;
	}
	ropts.mgmtd = CFS_ADDR(alias, CFS_LOCAL_MGMTD);
	ropts.net = cfs_client_net(c->cl);
	ropts.timeout_ms = c->timeout_ms;
	rc = cfs_routing_create(cfs_client_rt(c->cl), &ropts, &c->routing);
	if (rc != 0)
		goto out_client;
	/* Wait in slices: a node that answers but runs no mgmtd fails at once. */
	wait_ms = opts->routing_wait_ms ? opts->routing_wait_ms : DEFAULT_ROUTING_WAIT_MS;
	for (uint32_t waited = 0;;) {
		uint32_t slice = wait_ms - waited < 100 ? wait_ms - waited : 100;

		rc = cfs_routing_wait(c->routing, 0, slice, &s);
		waited += slice;
		if (rc == 0 || rc != -ETIMEDOUT)
			break;
		if (cfs_routing_last_error(c->routing) == -CFS_ENOACTOR) {
			rc = -CFS_ENOACTOR;
			break;
		}
		if (waited >= wait_ms)
			break;
	}
	if (rc != 0)
		goto out_routing;
	cfs_routing_snap_put(&s);
	*out = c;
	return 0;

out_routing:
	cfs_routing_destroy(&c->routing);
out_client:
	cfs_client_destroy(&c->cl);
out_free:
	pthread_cond_destroy(&c->idle);
	pthread_mutex_destroy(&c->mu);
	free(c);
	return rc;
}

void
cfs_chunk_client_destroy(struct cfs_chunk_client **pc)
{
	struct cfs_chunk_client *c = *pc;

	if (!c)
		return;
	/* From a done callback it would wait for itself. */
	if (rt_loop_current() != NULL && rt_loop_rt(rt_loop_current()) == cfs_client_rt(c->cl))
		CFS_PANIC("cfs_chunk_client_destroy called on one of the client's own loops");
	/* Every submission ends by its deadline: wait for their done calls, so
	 * that none runs into a freed client (or never runs). */
	pthread_mutex_lock(&c->mu);
	while (c->submitted != 0)
		pthread_cond_wait(&c->idle, &c->mu);
	pthread_mutex_unlock(&c->mu);
	cfs_routing_destroy(&c->routing);
	cfs_client_destroy(&c->cl);
	pthread_cond_destroy(&c->idle);
	pthread_mutex_destroy(&c->mu);
	free(c);
	*pc = NULL;
}

/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the runtime (src/rt): delivery order and exactly-once on one
 * loop and across loops, rt_call round trips, timeouts, error replies, actor
 * stop, spawn across loops, buffers and their pools, message arenas, the proto
 * and errno tables, logging, shutdown, and the remote path through a fake
 * transport that captures what rt hands it and injects frames back through
 * rt_deliver. Loops run on real threads; waits are "eventually, within a
 * generous bound", never timing assertions. One test steps loops by hand on a
 * single thread (rt_loop_step), the seed of a deterministic harness.
 *
 * Under valgrind: CK_FORK=no CK_EXCLUDE_TAGS=panic valgrind --leak-check=full
 * tests/unit/test_rt  (the panic case aborts on purpose).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RT_LOG_SUBSYS "test"
#include "rt/rt_internal.h"

#define WAIT_LIMIT_NS (60ull * 1000000000ull)
#define FLUSH_MARK    0xf1u
#define KICK_MARK     0xcafeu

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Wait until cond holds, within a generous bound; then assert it. */
#define EVENTUALLY(cond)                                                                           \
	do {                                                                                       \
		uint64_t until_ = mono_ns() + WAIT_LIMIT_NS;                                       \
		while (!(cond) && mono_ns() < until_)                                              \
			sleep_ms(1);                                                               \
		ck_assert_msg((cond), "never became true: %s", #cond);                             \
	} while (0)

/* ------------------------------------------------------------ shared state */

static struct {
	atomic_int fini;
	atomic_int echoed;
	atomic_int held;
	atomic_uint received;
	atomic_uint order_errors;
	atomic_int recursion;
	atomic_int y_ran;
	atomic_int flush_pending;
	atomic_int flush_saw;
	atomic_int fini_in_handler;
	atomic_int bad_fini;
	atomic_int init_on_loop;
	atomic_ullong last_conn; /* m->conn of the last request PING answered */
	atomic_uint last_flags;	 /* and its flags */
	pthread_t init_thread;
} g;

static void
setup(void)
{
	memset(&g, 0, sizeof(g));
}

/* ------------------------------------------------------ the test actor kind */

struct tact {
	struct rt_msg *held;  /* a request kept without answer */
	uint32_t next_seq[4]; /* per sender, for order checks */
	cfs_addr_t peer;      /* where KICK forwards */
};

static int
t_init(struct rt_actor *self, const void *arg)
{
	struct rt_actor **slot = (struct rt_actor **)arg;

	if (slot)
		*slot = self;
	g.init_thread = pthread_self();
	atomic_store(&g.init_on_loop, rt_loop_current() == rt_actor_loop(self));
	return 0;
}

static void
t_fini(struct rt_actor *self)
{
	struct tact *st = rt_actor_state(self);

	if (st->held)
		rt_reply(st->held, -CFS_ECANCELED, NULL);
	atomic_fetch_add(&g.fini, 1);
}

/* PING: echo sent_ns + 1. One-way PINGs are marks (small values) or carry
 * (sender 1..3) << 32 | sequence number, checked for order. */
static int
t_on_ping(struct rt_actor *self, struct rt_msg *req)
{
	struct tact *st = rt_actor_state(self);
	uint64_t v = RT_BODY(req, ping)->sent_ns;
	struct rt_msg *resp;

	if (req->flags & RT_MSG_F_ONEWAY) {
		if (v == FLUSH_MARK) {
			atomic_store(&g.flush_pending, 1);
		} else if (v == KICK_MARK) {
			struct rt_msg *m = rt_msg_new(CFS_MSG_PING);

			/* Forward to a same-loop peer: its handler must not run
			 * before rt_send returns. */
			m->dst = st->peer;
			m->flags = RT_MSG_F_ONEWAY;
			ck_assert_int_eq(rt_send(self, m), 0);
			if (atomic_load(&g.y_ran))
				atomic_fetch_add(&g.recursion, 1);
		} else if (v == 0) {
			atomic_store(&g.y_ran, 1);
		} else {
			unsigned sender = (unsigned)(v >> 32) & 3u;
			uint32_t seq = (uint32_t)v;

			if (seq != st->next_seq[sender])
				atomic_fetch_add(&g.order_errors, 1);
			st->next_seq[sender] = seq + 1;
			atomic_fetch_add(&g.received, 1);
		}
		rt_msg_free(&req);
		return 0;
	}
	resp = rt_msg_new(CFS_MSG_PING_RESP);
	if (!resp)
		return -ENOMEM;
	RT_BODY(resp, ping_resp)->sent_ns = v + 1;
	RT_BODY(resp, ping_resp)->node_id = rt_node_id(rt_loop_rt(rt_actor_loop(self)));
	atomic_store(&g.last_conn, req->conn);
	atomic_store(&g.last_flags, req->flags);
	atomic_fetch_add(&g.echoed, 1);
	rt_reply(req, 0, resp);
	return 0;
}

static int
t_on_status(struct rt_actor *self, struct rt_msg *req)
{
	return -ENOSPC;
}

/* CHUNK_QUERY: keep the request, answer nothing (until CHUNK_LIST). */
static int
t_on_hold(struct rt_actor *self, struct rt_msg *req)
{
	struct tact *st = rt_actor_state(self);

	if (st->held)
		return -CFS_EBUSY;
	st->held = req;
	atomic_fetch_add(&g.held, 1);
	return 0;
}

/* CHUNK_LIST: answer the held request (late, if its caller gave up), then this one. */
static int
t_on_release(struct rt_actor *self, struct rt_msg *req)
{
	struct tact *st = rt_actor_state(self);

	if (st->held) {
		rt_reply(st->held, 0, NULL);
		st->held = NULL;
	}
	rt_reply(req, 0, NULL);
	return 0;
}

/* TARGET_STATS: log from inside a handler, then fail. */
static int
t_on_log(struct rt_actor *self, struct rt_msg *req)
{
	RT_INFO("hello x=%d", 1);
	return -EIO;
}

/* CHUNK_REMOVE: the bug the runtime must catch. */
static int
t_on_double_reply(struct rt_actor *self, struct rt_msg *req)
{
	rt_reply(req, 0, NULL);
	rt_reply(req, 0, NULL);
	return 0;
}

/* CHUNK_TRUNCATE: stop self inside the handler; fini must wait. */
static int
t_on_stop_self(struct rt_actor *self, struct rt_msg *req)
{
	rt_actor_stop(self);
	atomic_store(&g.fini_in_handler, atomic_load(&g.fini));
	return -ESTALE;
}

static const rt_handler_fn t_handlers[CFS_MSG__COUNT] = {
	[CFS_MSG_PING] = t_on_ping,
	[CFS_MSG_STATUS] = t_on_status,
	[CFS_MSG_CHUNK_QUERY] = t_on_hold,
	[CFS_MSG_CHUNK_LIST] = t_on_release,
	[CFS_MSG_TARGET_STATS] = t_on_log,
	[CFS_MSG_CHUNK_REMOVE] = t_on_double_reply,
	[CFS_MSG_CHUNK_TRUNCATE] = t_on_stop_self,
};

static const struct rt_actor_kind t_kind = {
	.name = "t",
	.state_size = sizeof(struct tact),
	.init = t_init,
	.fini = t_fini,
	.handlers = t_handlers,
};

static const struct rt_actor_kind noh_kind = {
	.name = "noh",
	.init = t_init,
};

static int
bad_init(struct rt_actor *self, const void *arg)
{
	return -EPERM;
}

static void
bad_fini(struct rt_actor *self)
{
	atomic_fetch_add(&g.bad_fini, 1);
}

static const struct rt_actor_kind bad_kind = {
	.name = "bad",
	.init = bad_init,
	.fini = bad_fini,
};

/* A forwarder: hands every PING it receives, as the same message object, on
 * to the actor named at spawn (chain replication forwards writes this way). */
static int
fwd_init(struct rt_actor *self, const void *arg)
{
	*(cfs_addr_t *)rt_actor_state(self) = *(const cfs_addr_t *)arg;
	return 0;
}

static int
fwd_on_ping(struct rt_actor *self, struct rt_msg *req)
{
	req->dst = *(cfs_addr_t *)rt_actor_state(self);
	return rt_send(self, req);
}

static const rt_handler_fn fwd_handlers[CFS_MSG__COUNT] = {
	[CFS_MSG_PING] = fwd_on_ping,
};

static const struct rt_actor_kind fwd_kind = {
	.name = "fwd",
	.state_size = sizeof(cfs_addr_t),
	.init = fwd_init,
	.handlers = fwd_handlers,
};

/* A sink: keeps every PING without answering (until fini), so its callers'
 * calls can only time out or be canceled. */
#define SINK_MAX 32

struct sink {
	struct rt_msg *held[SINK_MAX];
	unsigned n;
};

static int
sink_on_ping(struct rt_actor *self, struct rt_msg *req)
{
	struct sink *k = rt_actor_state(self);

	if (k->n == SINK_MAX)
		return -CFS_EBUSY;
	k->held[k->n++] = req;
	return 0;
}

static void
sink_fini(struct rt_actor *self)
{
	struct sink *k = rt_actor_state(self);

	for (unsigned i = 0; i < k->n; i++)
		rt_reply(k->held[i], -CFS_ECANCELED, NULL);
}

static const rt_handler_fn sink_handlers[CFS_MSG__COUNT] = {
	[CFS_MSG_PING] = sink_on_ping,
};

static const struct rt_actor_kind sink_kind = {
	.name = "sink",
	.state_size = sizeof(struct sink),
	.fini = sink_fini,
	.handlers = sink_handlers,
};

/* ---------------------------------------------------------------- helpers */

static struct rt *
start_rt(unsigned loops, uint32_t node_id, const struct rt_transport_ops *tops, void *tctx)
{
	struct rt_config cfg = {.loops = loops, .node_id = node_id};
	struct rt *rt;

	ck_assert_int_eq(rt_create(&cfg, &rt), 0);
	if (tops)
		rt_set_transport(rt, tops, tctx);
	ck_assert_int_eq(rt_start(rt, false), 0);
	return rt;
}

static struct rt_actor *
spawn_t(struct rt *rt, unsigned loop, cfs_addr_t *addr)
{
	struct rt_actor *a = NULL;

	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, loop), &t_kind, &a, 0, addr), 0);
	ck_assert_ptr_nonnull(a);
	return a;
}

struct run_ctx {
	void (*fn)(void *arg);
	void *arg;
	struct rt_loop *loop;
	atomic_bool done;
	atomic_bool right_thread;
};

static void
run_tramp(void *p)
{
	struct run_ctx *c = p;

	atomic_store(&c->right_thread, rt_loop_current() == c->loop);
	c->fn(c->arg);
	atomic_store(&c->done, true);
}

/* Run fn(arg) on loop's thread and wait for it. */
static void
run_on(struct rt_loop *loop, void (*fn)(void *arg), void *arg)
{
	struct run_ctx c = {.fn = fn, .arg = arg, .loop = loop};

	ck_assert_int_eq(rt_loop_post(loop, run_tramp, &c), 0);
	EVENTUALLY(atomic_load(&c.done));
	ck_assert(atomic_load(&c.right_thread));
}

static void
nop(void *arg)
{
}

/* Every loop has run everything posted before this call. */
static void
barrier(struct rt *rt)
{
	for (int round = 0; round < 2; round++)
		for (unsigned i = 0; i < rt_loop_count(rt); i++)
			run_on(rt_loop_at(rt, i), nop, NULL);
}

struct call_ctx {
	struct rt_actor *from;
	cfs_addr_t to;
	unsigned type;
	uint32_t timeout_ms;
	uint64_t sent;
	uint64_t deadline_ns;
	int send_rc;
	atomic_int cbs;
	atomic_int rc;
	atomic_ullong val;
	atomic_bool cb_ok; /* on the caller's loop, as the caller */
	bool claim;	   /* keep the response (rt_msg_claim) */
	struct rt_msg *kept;
};

static void
call_cb(struct rt_actor *self, int rc, struct rt_msg *resp, void *arg)
{
	struct call_ctx *c = arg;

	if (resp && resp->type == CFS_MSG_PING_RESP)
		atomic_store(&c->val, RT_BODY(resp, ping_resp)->sent_ns);
	if (resp && c->claim) {
		rt_msg_claim(resp);
		c->kept = resp;
	}
	atomic_store(&c->cb_ok, self == c->from && rt_loop_current() == rt_actor_loop(self));
	atomic_store(&c->rc, rc);
	atomic_fetch_add(&c->cbs, 1);
}

static void
do_call(void *arg)
{
	struct call_ctx *c = arg;
	struct rt_msg *m = rt_msg_new(c->type);

	ck_assert_ptr_nonnull(m);
	if (c->type == CFS_MSG_PING)
		RT_BODY(m, ping)->sent_ns = c->sent;
	m->deadline_ns = c->deadline_ns;
	c->send_rc = rt_call(c->from, c->to, m, c->timeout_ms, call_cb, c);
	if (c->send_rc != 0)
		rt_msg_free(&m);
}

/* Issue c from its actor's loop; returns rt_call's own result. */
static int
call(struct call_ctx *c)
{
	run_on(rt_actor_loop(c->from), do_call, c);
	return c->send_rc;
}

/* Call and wait for the one completion; returns its rc. */
static int
call_wait(struct call_ctx *c)
{
	ck_assert_int_eq(call(c), 0);
	EVENTUALLY(atomic_load(&c->cbs) == 1);
	ck_assert(atomic_load(&c->cb_ok));
	return atomic_load(&c->rc);
}

/* -------------------------------------------------------- delivery order */

struct burst {
	struct rt_actor *from;
	cfs_addr_t to;
	unsigned sender;
	unsigned n;
};

static void
do_burst(void *arg)
{
	struct burst *b = arg;

	for (unsigned i = 0; i < b->n; i++) {
		struct rt_msg *m = rt_msg_new(CFS_MSG_PING);

		RT_BODY(m, ping)->sent_ns = ((uint64_t)b->sender << 32) | i;
		m->dst = b->to;
		m->flags = RT_MSG_F_ONEWAY;
		ck_assert_int_eq(rt_send(b->from, m), 0);
	}
}

START_TEST(test_rt_send_arrives_in_order_once_when_same_loop)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	cfs_addr_t sink;
	struct burst b = {.n = 50000, .sender = 1};

	spawn_t(rt, 0, &sink);
	b.from = spawn_t(rt, 0, NULL);
	b.to = sink;
	run_on(rt_loop_at(rt, 0), do_burst, &b);
	EVENTUALLY(atomic_load(&g.received) == b.n);
	barrier(rt);
	ck_assert_uint_eq(atomic_load(&g.received), b.n);
	ck_assert_uint_eq(atomic_load(&g.order_errors), 0);
	rt_destroy(&rt);
	ck_assert_ptr_null(rt);
}
END_TEST

START_TEST(test_rt_send_arrives_in_order_once_when_cross_loop)
{
	struct rt *rt = start_rt(3, 1, NULL, NULL);
	struct burst b[3];
	struct run_ctx c[3];
	cfs_addr_t sink;
	unsigned n = 30000;

	spawn_t(rt, 2, &sink);
	for (unsigned i = 0; i < 3; i++) {
		/* Senders 1..3: a zero sender field would make the marks below. */
		b[i] = (struct burst){
			.from = spawn_t(rt, i, NULL), .to = sink, .sender = i + 1, .n = n};
		c[i] = (struct run_ctx){.fn = do_burst, .arg = &b[i], .loop = rt_loop_at(rt, i)};
	}
	/* All three senders at once: two other loops and the sink's own. */
	for (unsigned i = 0; i < 3; i++)
		ck_assert_int_eq(rt_loop_post(rt_loop_at(rt, i), run_tramp, &c[i]), 0);
	EVENTUALLY(atomic_load(&g.received) == 3 * n);
	for (unsigned i = 0; i < 3; i++)
		EVENTUALLY(atomic_load(&c[i].done));
	barrier(rt);
	ck_assert_uint_eq(atomic_load(&g.received), 3 * n);
	ck_assert_uint_eq(atomic_load(&g.order_errors), 0);
	rt_destroy(&rt);
}
END_TEST

struct send_ctx {
	struct rt_actor *from;
	cfs_addr_t to;
	uint64_t v;
	int rc;
};

/* One one-way PING carrying v, from the actor's loop. */
static void
do_send(void *arg)
{
	struct send_ctx *sc = arg;
	struct rt_msg *m = rt_msg_new(CFS_MSG_PING);

	RT_BODY(m, ping)->sent_ns = sc->v;
	m->dst = sc->to;
	m->flags = RT_MSG_F_ONEWAY;
	sc->rc = rt_send(sc->from, m);
	if (sc->rc != 0)
		rt_msg_free(&m);
}

static int
send_oneway(struct rt_actor *from, cfs_addr_t to, uint64_t v)
{
	struct send_ctx sc = {.from = from, .to = to, .v = v};

	run_on(rt_actor_loop(from), do_send, &sc);
	return sc.rc;
}

START_TEST(test_rt_send_does_not_recurse_when_same_loop)
{
	struct rt *rt = start_rt(1, 1, NULL, NULL);
	struct rt_actor *x;
	cfs_addr_t xa, y;
	struct tact *st;

	x = spawn_t(rt, 0, &xa);
	spawn_t(rt, 0, &y);
	st = rt_actor_state(x);
	st->peer = y; /* before the first message: published by the post below */
	ck_assert_int_eq(send_oneway(x, xa, KICK_MARK), 0);
	EVENTUALLY(atomic_load(&g.y_ran) == 1);
	ck_assert_int_eq(atomic_load(&g.recursion), 0);
	rt_destroy(&rt);
}
END_TEST

/* ------------------------------------------------------------------ calls */

START_TEST(test_rt_call_round_trip_when_same_loop)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct call_ctx c = {.type = CFS_MSG_PING, .sent = 41};

	c.from = spawn_t(rt, 1, NULL);
	spawn_t(rt, 1, &c.to);
	ck_assert_int_eq(call_wait(&c), 0);
	ck_assert_uint_eq(atomic_load(&c.val), 42);
	barrier(rt);
	ck_assert_int_eq(atomic_load(&c.cbs), 1);
	rt_destroy(&rt);
}
END_TEST

START_TEST(test_rt_call_round_trip_when_cross_loop)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct call_ctx c = {.type = CFS_MSG_PING, .sent = 99};
	struct rt_loop_stats s;

	c.from = spawn_t(rt, 0, NULL);
	spawn_t(rt, 1, &c.to);
	ck_assert_uint_eq(CFS_LOCAL_LOOP(CFS_ADDR_LOCAL(c.to)), 1);
	ck_assert_int_eq(call_wait(&c), 0);
	ck_assert_uint_eq(atomic_load(&c.val), 100);
	barrier(rt);
	ck_assert_int_eq(atomic_load(&c.cbs), 1);
	rt_loop_stats(rt_loop_at(rt, 1), &s);
	ck_assert_uint_eq(s.index, 1);
	ck_assert_uint_eq(s.actors, 1);
	ck_assert_uint_ge(s.handled, 1);
	ck_assert_uint_ge(s.wakeups, 1);
	rt_destroy(&rt);
}
END_TEST

START_TEST(test_rt_msg_claim_keeps_response_when_claimed)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct call_ctx c = {.type = CFS_MSG_PING, .sent = 1, .claim = true};

	c.from = spawn_t(rt, 0, NULL);
	spawn_t(rt, 1, &c.to);
	ck_assert_int_eq(call_wait(&c), 0);
	barrier(rt);
	/* Still ours after the callback returned: valgrind checks the free. */
	ck_assert_ptr_nonnull(c.kept);
	ck_assert_uint_eq(c.kept->type, CFS_MSG_PING_RESP);
	ck_assert_uint_eq(RT_BODY(c.kept, ping_resp)->sent_ns, 2);
	rt_msg_free(&c.kept);
	rt_destroy(&rt);
}
END_TEST

START_TEST(test_rt_call_times_out_once_when_no_reply)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct call_ctx q = {.type = CFS_MSG_CHUNK_QUERY, .timeout_ms = 30};
	struct call_ctx r = {.type = CFS_MSG_CHUNK_LIST};

	q.from = r.from = spawn_t(rt, 0, NULL);
	spawn_t(rt, 1, &q.to);
	r.to = q.to;
	ck_assert_int_eq(call_wait(&q), -ETIMEDOUT);
	ck_assert_int_eq(atomic_load(&g.held), 1);
	/* Now the holder answers the timed-out request, then this one. Same
	 * sender and receiver: the late reply arrives first and must be dropped. */
	ck_assert_int_eq(call_wait(&r), 0);
	barrier(rt);
	ck_assert_int_eq(atomic_load(&q.cbs), 1);
	ck_assert_int_eq(atomic_load(&q.rc), -ETIMEDOUT);
	rt_destroy(&rt);
}
END_TEST

static void do_stop(void *arg);

/* Issue several calls in one go, in array order, from one loop iteration. */
struct call_batch {
	struct call_ctx *c;
	unsigned n;
};

static void
do_calls(void *arg)
{
	struct call_batch *b = arg;

	for (unsigned i = 0; i < b->n; i++)
		do_call(&b->c[i]);
}

START_TEST(test_rt_call_times_out_when_shorter_than_earlier_calls)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct call_ctx c[2 + 2 * RT_CALL_TLISTS] = {0};
	struct call_batch b = {.c = c, .n = 2 + 2 * RT_CALL_TLISTS};
	struct rt_actor *from = spawn_t(rt, 0, NULL);
	cfs_addr_t sink;

	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 1), &sink_kind, NULL, 0, &sink), 0);
	/* First a call that would wait ten minutes, then calls with more
	 * distinct timeouts than the loop has lists, shortest last: each must
	 * expire on its own deadline, not wait for an earlier, longer one. */
	for (unsigned i = 0; i < b.n; i++) {
		c[i].type = CFS_MSG_PING;
		c[i].from = from;
		c[i].to = sink;
		c[i].timeout_ms = i == 0 ? 600000 : 20 + 7 * (b.n - i);
	}
	c[1].timeout_ms = 590000;
	run_on(rt_loop_at(rt, 0), do_calls, &b);
	for (unsigned i = 0; i < b.n; i++)
		ck_assert_int_eq(c[i].send_rc, 0);
	for (unsigned i = 2; i < b.n; i++) {
		EVENTUALLY(atomic_load(&c[i].cbs) == 1);
		ck_assert_int_eq(atomic_load(&c[i].rc), -ETIMEDOUT);
		ck_assert(atomic_load(&c[i].cb_ok));
	}
	barrier(rt);
	/* The long ones are still waiting; stopping the caller cancels them. */
	ck_assert_int_eq(atomic_load(&c[0].cbs), 0);
	ck_assert_int_eq(atomic_load(&c[1].cbs), 0);
	run_on(rt_loop_at(rt, 0), do_stop, from);
	EVENTUALLY(atomic_load(&c[0].cbs) == 1 && atomic_load(&c[1].cbs) == 1);
	ck_assert_int_eq(atomic_load(&c[0].rc), -CFS_ECANCELED);
	ck_assert_int_eq(atomic_load(&c[1].rc), -CFS_ECANCELED);
	rt_destroy(&rt);
	for (unsigned i = 0; i < b.n; i++)
		ck_assert_int_eq(atomic_load(&c[i].cbs), 1);
}
END_TEST

START_TEST(test_rt_call_gets_handler_rc_when_handler_fails)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct call_ctx c = {.type = CFS_MSG_STATUS};

	c.from = spawn_t(rt, 0, NULL);
	spawn_t(rt, 1, &c.to);
	ck_assert_int_eq(call_wait(&c), -ENOSPC);
	rt_destroy(&rt);
}
END_TEST

START_TEST(test_rt_call_gets_enoactor_when_actor_unknown)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct call_ctx far = {.type = CFS_MSG_PING, .to = CFS_ADDR(1, CFS_LOCAL(1, 0x777))};
	struct call_ctx near = {.type = CFS_MSG_PING, .to = CFS_ADDR(0, CFS_LOCAL(0, 0x777))};
	struct call_ctx noloop = {.type = CFS_MSG_PING, .to = CFS_ADDR(0, CFS_LOCAL(9, 0x100))};

	far.from = near.from = noloop.from = spawn_t(rt, 0, NULL);
	/* Another loop: known only there, so the answer comes back as a reply. */
	ck_assert_int_eq(call_wait(&far), -CFS_ENOACTOR);
	/* Same loop, or no such loop: refused synchronously, no callback. */
	ck_assert_int_eq(call(&near), -CFS_ENOACTOR);
	ck_assert_int_eq(call(&noloop), -CFS_ENOACTOR);
	barrier(rt);
	ck_assert_int_eq(atomic_load(&near.cbs), 0);
	ck_assert_int_eq(atomic_load(&noloop.cbs), 0);
	rt_destroy(&rt);
}
END_TEST

START_TEST(test_rt_call_gets_enotsup_when_no_handler)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct call_ctx c = {.type = CFS_MSG_CHUNK_WRITE};
	struct call_ctx d = {.type = CFS_MSG_PING};

	c.from = d.from = spawn_t(rt, 0, NULL);
	spawn_t(rt, 1, &c.to);
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 1), &noh_kind, NULL, 0, &d.to), 0);
	ck_assert_int_eq(call_wait(&c), -CFS_ENOTSUP);
	ck_assert_int_eq(call_wait(&d), -CFS_ENOTSUP);
	rt_destroy(&rt);
}
END_TEST

START_TEST(test_rt_request_dropped_when_deadline_passed)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct call_ctx c = {.type = CFS_MSG_PING, .timeout_ms = 30, .deadline_ns = 1};
	struct call_ctx ok = {.type = CFS_MSG_PING, .deadline_ns = UINT64_MAX};

	c.from = ok.from = spawn_t(rt, 0, NULL);
	spawn_t(rt, 1, &c.to);
	ok.to = c.to;
	ck_assert_int_eq(call_wait(&c), -ETIMEDOUT);
	ck_assert_int_eq(atomic_load(&g.echoed), 0);
	ck_assert_int_eq(call_wait(&ok), 0);
	ck_assert_int_eq(atomic_load(&g.echoed), 1);
	rt_destroy(&rt);
}
END_TEST

/* ------------------------------------------------------------ actor stop */

static void
do_stop(void *arg)
{
	rt_actor_stop(arg);
}

START_TEST(test_rt_actor_stop_cancels_calls_when_pending)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct call_ctx q = {.type = CFS_MSG_CHUNK_QUERY, .timeout_ms = 600000};
	struct call_ctx r = {.type = CFS_MSG_CHUNK_LIST};
	struct call_ctx dead = {.type = CFS_MSG_PING};
	cfs_addr_t client;

	q.from = spawn_t(rt, 0, &client);
	spawn_t(rt, 1, &q.to);
	ck_assert_int_eq(call(&q), 0);
	EVENTUALLY(atomic_load(&g.held) == 1);
	run_on(rt_loop_at(rt, 0), do_stop, q.from);
	EVENTUALLY(atomic_load(&q.cbs) == 1);
	ck_assert_int_eq(atomic_load(&q.rc), -CFS_ECANCELED);
	EVENTUALLY(atomic_load(&g.fini) == 1);
	/* The holder answers now: the reply finds no caller and is dropped. */
	r.from = dead.from = spawn_t(rt, 1, NULL);
	r.to = q.to;
	ck_assert_int_eq(call_wait(&r), 0);
	/* Messages to the stopped actor are refused. */
	dead.to = client;
	ck_assert_int_eq(call_wait(&dead), -CFS_ENOACTOR);
	barrier(rt);
	ck_assert_int_eq(atomic_load(&q.cbs), 1);
	ck_assert_int_eq(atomic_load(&g.fini), 1);
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&g.fini), 3);
}
END_TEST

START_TEST(test_rt_actor_fini_deferred_when_stopped_in_handler)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct call_ctx c = {.type = CFS_MSG_CHUNK_TRUNCATE};

	c.from = spawn_t(rt, 0, NULL);
	spawn_t(rt, 0, &c.to);
	ck_assert_int_eq(call_wait(&c), -ESTALE);
	EVENTUALLY(atomic_load(&g.fini) == 1);
	ck_assert_int_eq(atomic_load(&g.fini_in_handler), 0);
	barrier(rt);
	ck_assert_int_eq(atomic_load(&g.fini), 1);
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&g.fini), 2);
}
END_TEST

/* ------------------------------------------------------------------ spawn */

struct spawn_ctx {
	struct rt_loop *target;
	int rc;
	cfs_addr_t addr;
};

static void
do_spawn(void *arg)
{
	struct spawn_ctx *s = arg;

	s->rc = rt_spawn(s->target, &t_kind, NULL, 0, &s->addr);
}

START_TEST(test_rt_spawn_runs_init_on_loop_when_before_and_after_start)
{
	struct rt_config cfg = {.loops = 2, .node_id = 3};
	struct spawn_ctx s = {0};
	struct rt *rt;
	cfs_addr_t a, b;

	ck_assert_int_eq(rt_create(&cfg, &rt), 0);
	/* Before start: init runs right here, but as if on the loop. */
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 1), &t_kind, NULL, 0, &a), 0);
	ck_assert(pthread_equal(g.init_thread, pthread_self()));
	ck_assert_int_eq(atomic_load(&g.init_on_loop), 1);
	ck_assert_uint_eq(CFS_ADDR_NODE(a), 3);
	ck_assert_uint_eq(CFS_LOCAL_LOOP(CFS_ADDR_LOCAL(a)), 1);
	ck_assert_uint_ge(CFS_ADDR_LOCAL(a) & 0xffffffu, RT_FIRST_SERIAL);
	ck_assert_int_eq(rt_start(rt, false), 0);
	ck_assert_int_eq(rt_start(rt, false), -EALREADY);
	/* After start: posted to the loop's thread, waited for. */
	atomic_store(&g.init_on_loop, 0);
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 1), &t_kind, NULL, 0, &b), 0);
	ck_assert(!pthread_equal(g.init_thread, pthread_self()));
	ck_assert_int_eq(atomic_load(&g.init_on_loop), 1);
	ck_assert_uint_ne(a, b);
	/* From one loop onto another. */
	s.target = rt_loop_at(rt, 0);
	run_on(rt_loop_at(rt, 1), do_spawn, &s);
	ck_assert_int_eq(s.rc, 0);
	ck_assert_uint_eq(CFS_LOCAL_LOOP(CFS_ADDR_LOCAL(s.addr)), 0);
	/* Well-known ids. */
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 0), &t_kind, NULL, CFS_LOCAL_NODECTL, &a), 0);
	ck_assert_uint_eq(a, CFS_ADDR(3, CFS_LOCAL_NODECTL));
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 0), &t_kind, NULL, CFS_LOCAL_NODECTL, &a),
			 -EEXIST);
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 1), &t_kind, NULL, CFS_LOCAL_NODECTL, &a),
			 -EINVAL);
	/* A failing init fails the spawn and never gets fini. */
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 1), &bad_kind, NULL, 0, &a), -EPERM);
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&g.bad_fini), 0);
	ck_assert_int_eq(atomic_load(&g.fini), 4);
}
END_TEST

/* ------------------------------------------------------------- flush hook */

static void
flush_hook(void *arg)
{
	if (atomic_exchange(&g.flush_pending, 0))
		atomic_fetch_add(&g.flush_saw, 1);
}

static void
add_flush(void *arg)
{
	rt_loop_add_flush(rt_loop_current(), flush_hook, NULL);
}

START_TEST(test_rt_flush_hook_runs_after_handlers_when_work_done)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct rt_actor *x;
	cfs_addr_t y;

	run_on(rt_loop_at(rt, 1), add_flush, NULL);
	x = spawn_t(rt, 0, NULL);
	spawn_t(rt, 1, &y);
	ck_assert_int_eq(send_oneway(x, y, FLUSH_MARK), 0);
	/* The hook saw the flag the handler set: it ran after that handler. */
	EVENTUALLY(atomic_load(&g.flush_saw) == 1);
	ck_assert_int_eq(atomic_load(&g.flush_pending), 0);
	rt_destroy(&rt);
}
END_TEST

/* --------------------------------------------------------- actor listing */

struct list_ctx {
	unsigned count;
	uint64_t tags;
};

static void
list_one(struct rt_actor *a, uint64_t handled, void *arg)
{
	struct list_ctx *l = arg;

	l->count++;
	l->tags += rt_actor_tag(a);
}

static void
do_list(void *arg)
{
	rt_loop_foreach_actor(rt_loop_current(), list_one, arg);
}

START_TEST(test_rt_loop_foreach_actor_lists_live_actors_when_asked)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct list_ctx l = {0};
	struct rt_actor *a = spawn_t(rt, 1, NULL);
	struct rt_actor *b = spawn_t(rt, 1, NULL);

	spawn_t(rt, 0, NULL);
	ck_assert_ptr_eq(rt_actor_kind(a), &t_kind);
	ck_assert_ptr_eq(rt_actor_loop(a), rt_loop_at(rt, 1));
	ck_assert_uint_eq(rt_loop_index(rt_actor_loop(b)), 1);
	ck_assert_ptr_eq(rt_loop_rt(rt_actor_loop(b)), rt);
	ck_assert_uint_eq(rt_node_id(rt), 1);
	ck_assert_ptr_nonnull(rt_loop_ev(rt_loop_at(rt, 0)));
	ck_assert_ptr_null(rt_loop_at(rt, 2));
	ck_assert_ptr_null(rt_loop_current());
	rt_actor_set_tag(a, 5); /* tags are plain fields set by their owner */
	rt_actor_set_tag(b, 7);
	run_on(rt_loop_at(rt, 1), do_list, &l);
	ck_assert_uint_eq(l.count, 2);
	ck_assert_uint_eq(l.tags, 12);
	rt_destroy(&rt);
}
END_TEST

/* ---------------------------------------------------------------- buffers */

START_TEST(test_rt_buf_is_aligned_when_off_loop)
{
	static const size_t sizes[] = {
		0, 1, 4095, 4096, 4097, 65536, 1u << 20, (1u << 20) + 3, (size_t)64 << 20};
	struct rt_buf *b, *b2;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		b = rt_buf_get(sizes[i]);
		ck_assert_ptr_nonnull(b);
		ck_assert_uint_eq((uintptr_t)b->data % 4096, 0);
		ck_assert_uint_ge(b->cap, sizes[i]);
		ck_assert_uint_ge(b->cap, 4096);
		ck_assert_uint_eq(b->cap & (b->cap - 1), 0);
		ck_assert_uint_lt(b->cap / 2, sizes[i] > 4096 ? sizes[i] : 4097);
		ck_assert_uint_eq(b->loop, RT_BUF_LOOP_NONE);
		ck_assert_int_eq(b->refs, 1);
		ck_assert_uint_eq(b->len, 0);
		b->data[0] = 1;
		b->data[b->cap - 1] = 2;
		rt_buf_put(&b);
		ck_assert_ptr_null(b);
	}
	ck_assert_ptr_null(rt_buf_get(((size_t)64 << 20) + 1));
	b = rt_buf_get(10);
	b2 = b;
	rt_buf_ref(b);
	ck_assert_int_eq(b->refs, 2);
	rt_buf_put(&b);
	ck_assert_int_eq(b2->refs, 1);
	b2->data[5] = 5; /* still alive: valgrind would see a use after free */
	rt_buf_put(&b2);
	rt_buf_put(&b2); /* NULL: no-op */
}
END_TEST

struct bufop {
	struct rt_buf *b;
	size_t size;
	uint64_t outstanding;
};

static void
do_buf_get(void *arg)
{
	struct bufop *o = arg;

	o->b = rt_buf_get(o->size);
}

static void
do_buf_put(void *arg)
{
	struct bufop *o = arg;

	rt_buf_put(&o->b);
}

static void
do_buf_outstanding(void *arg)
{
	struct bufop *o = arg;
	struct rt_buf_pool *pool = &rt_loop_current()->pool;

	rt_buf_pool_drain(pool);
	o->outstanding = rt_buf_pool_outstanding(pool);
}

START_TEST(test_rt_buf_returns_to_its_pool_when_put_on_other_thread)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);
	struct bufop o = {.size = 8192};
	struct rt_buf *b;

	run_on(rt_loop_at(rt, 1), do_buf_get, &o);
	b = o.b;
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(b->loop, 1);
	ck_assert_uint_eq(b->cap, 8192);
	ck_assert_uint_eq((uintptr_t)b->data % 4096, 0);
	run_on(rt_loop_at(rt, 1), do_buf_outstanding, &o);
	ck_assert_uint_eq(o.outstanding, 1);
	/* From the main thread: back through loop 1's return stack. */
	rt_buf_put(&o.b);
	run_on(rt_loop_at(rt, 1), do_buf_get, &o);
	ck_assert_ptr_eq(o.b, b);
	/* From another loop. */
	run_on(rt_loop_at(rt, 0), do_buf_put, &o);
	run_on(rt_loop_at(rt, 1), do_buf_get, &o);
	ck_assert_ptr_eq(o.b, b);
	/* On its own loop. */
	run_on(rt_loop_at(rt, 1), do_buf_put, &o);
	run_on(rt_loop_at(rt, 1), do_buf_outstanding, &o);
	ck_assert_uint_eq(o.outstanding, 0);
	/* A different class is a different buffer. */
	o.size = 100000;
	run_on(rt_loop_at(rt, 1), do_buf_get, &o);
	ck_assert_ptr_ne(o.b, b);
	ck_assert_uint_eq(o.b->cap, 131072);
	run_on(rt_loop_at(rt, 1), do_buf_put, &o);
	rt_destroy(&rt);
}
END_TEST

struct slabop {
	struct rt_buf *b[3];
	uint64_t allocated, released, cached;
};

static void
do_slab_get(void *arg)
{
	struct slabop *o = arg;
	struct rt_buf_pool *pool = &rt_loop_current()->pool;

	o->b[0] = rt_buf_get(65536);
	o->b[1] = rt_buf_get(65536);
	o->b[2] = rt_buf_get((size_t)4 << 20);
	o->allocated = pool->allocated;
	o->released = pool->released;
	o->cached = pool->cached;
}

static void
do_slab_put(void *arg)
{
	struct slabop *o = arg;
	struct rt_buf_pool *pool = &rt_loop_current()->pool;

	for (int i = 0; i < 3; i++)
		rt_buf_put(&o->b[i]);
	o->allocated = pool->allocated;
	o->released = pool->released;
	o->cached = pool->cached;
}

START_TEST(test_rt_buf_shares_a_2m_slab_when_64k_or_more)
{
	struct rt *rt = start_rt(1, 1, NULL, NULL);
	struct slabop o = {0};
	uintptr_t a, b;

	run_on(rt_loop_at(rt, 0), do_slab_get, &o);
	a = (uintptr_t)o.b[0]->data;
	b = (uintptr_t)o.b[1]->data;
	/* Two pieces of one 2 MiB-aligned slab; the slab's other 30 are cached. */
	ck_assert_uint_eq(o.b[0]->cap, 65536);
	ck_assert_uint_ne(a, b);
	ck_assert_uint_eq(a >> 21, b >> 21);
	ck_assert_uint_eq(a % 65536, 0);
	ck_assert_uint_eq(b % 65536, 0);
	/* 4 MiB: its own memory, on a 2 MiB boundary. */
	ck_assert_uint_eq((uintptr_t)o.b[2]->data % ((size_t)2 << 20), 0);
	ck_assert_uint_eq(o.allocated, 32 + 1);
	ck_assert_uint_eq(o.cached, 30);
	ck_assert_uint_eq(o.released, 0);
	run_on(rt_loop_at(rt, 0), do_slab_put, &o);
	ck_assert_uint_eq(o.cached, 33);
	ck_assert_uint_eq(o.released, 0);
	rt_destroy(&rt); /* frees the slab once its last piece goes (valgrind checks) */
}
END_TEST

static void
do_slab_mixed(void *arg)
{
	struct slabop *o = arg;
	struct rt_buf_pool *pool = &rt_loop_current()->pool;

	o->b[0] = rt_buf_get(65536);	/* slab A: 31 spares cached, 1.94 MiB */
	o->b[1] = rt_buf_get(262144);	/* slab B: its 7 spares exceed the cap */
	o->allocated = pool->allocated;
	o->released = pool->released;
	o->cached = pool->cached;
}

START_TEST(test_rt_buf_slab_pieces_are_released_when_pool_cap_is_small)
{
	struct rt_config cfg = {.loops = 1, .node_id = 1, .buf_pool_max_bytes = 2 << 20};
	struct slabop o = {0};
	struct rt *rt;

	ck_assert_int_eq(rt_create(&cfg, &rt), 0);
	ck_assert_int_eq(rt_start(rt, false), 0);
	run_on(rt_loop_at(rt, 0), do_slab_mixed, &o);
	ck_assert_uint_eq(o.allocated, 32 + 8);
	ck_assert_uint_eq(o.cached, 31);
	ck_assert_uint_eq(o.released, 7);
	/* The last piece of slab B goes back over the cap too: the slab is freed
	 * (valgrind checks), the 64 KiB one is kept. */
	run_on(rt_loop_at(rt, 0), do_slab_put, &o);
	ck_assert_uint_eq(o.released, 8);
	ck_assert_uint_eq(o.cached, 32);
	rt_destroy(&rt);
}
END_TEST

/* --------------------------------------------------------------- messages */

static bool
all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		if (b[i] != 0)
			return false;
	}
	return true;
}

START_TEST(test_rt_msg_arena_and_iov_work_when_off_loop)
{
	struct rt_msg *m = rt_msg_new(CFS_MSG_CHUNK_READ_RESP);
	uint8_t *ptrs[200], *big, out[256];
	size_t sz[200];
	struct cfs_bytes bb;
	struct rt_buf *b1, *b2;

	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(m->type, CFS_MSG_CHUNK_READ_RESP);
	ck_assert_ptr_nonnull(m->body);
	ck_assert(all_zero(m->body, cfs_msg_body_size(m->type)));
	ck_assert_ptr_eq(m->iov, m->iov_inline);
	ck_assert_uint_eq(m->iovcnt, 0);
	ck_assert_uint_eq(m->plen, 0);
	for (int i = 0; i < 200; i++) {
		sz[i] = (size_t)(i * 37) % 3000 + 1;
		ptrs[i] = rt_msg_alloc(m, sz[i]);
		ck_assert_ptr_nonnull(ptrs[i]);
		ck_assert_uint_eq((uintptr_t)ptrs[i] % 16, 0);
		ck_assert(all_zero(ptrs[i], sz[i]));
		memset(ptrs[i], i + 1, sz[i]);
	}
	for (int i = 0; i < 200; i++) {
		for (size_t j = 0; j < sz[i]; j++)
			ck_assert_uint_eq(ptrs[i][j], (uint8_t)(i + 1));
	}
	big = rt_msg_alloc(m, 300000);
	ck_assert_ptr_nonnull(big);
	ck_assert(all_zero(big, 300000));
	ck_assert_ptr_nonnull(rt_msg_alloc(m, 0));

	ck_assert_int_eq(rt_msg_copy_bytes(m, &bb, "abc", 3), 0);
	ck_assert_uint_eq(bb.len, 3);
	ck_assert_int_eq(memcmp(bb.p, "abc", 3), 0);
	ck_assert_int_eq(rt_msg_set_str(m, &bb, "hello"), 0);
	ck_assert_uint_eq(bb.len, 5);
	ck_assert_int_eq(memcmp(bb.p, "hello", 5), 0);
	ck_assert_int_eq(rt_msg_copy_bytes(m, &bb, NULL, 0), 0);
	ck_assert_uint_eq(bb.len, 0);

	b1 = rt_buf_get(4096);
	b2 = rt_buf_get(8192);
	for (unsigned i = 0; i < 4096; i++)
		b1->data[i] = (uint8_t)i;
	for (unsigned i = 0; i < 8192; i++)
		b2->data[i] = (uint8_t)(i * 7);
	ck_assert_int_eq(rt_msg_add_iov(m, b1, 100, 200), 0);
	ck_assert_int_eq(b1->refs, 2);
	ck_assert_int_eq(rt_msg_add_iov(m, b2, 0, 5000), 0);
	ck_assert_int_eq(rt_msg_add_iov(m, b1, 0, 10), 0);
	ck_assert_uint_eq(m->iovcnt, 3);
	ck_assert_uint_eq(m->plen, 5210);
	ck_assert_ptr_ne(m->iov, m->iov_inline);
	ck_assert_int_eq(rt_msg_payload_copy(m, 150, out, 200), 0);
	for (unsigned i = 0; i < 50; i++)
		ck_assert_uint_eq(out[i], (uint8_t)(250 + i));
	for (unsigned i = 50; i < 200; i++)
		ck_assert_uint_eq(out[i], (uint8_t)((i - 50) * 7));
	ck_assert_int_eq(rt_msg_payload_copy(m, 5200, out, 10), 0);
	for (unsigned i = 0; i < 10; i++)
		ck_assert_uint_eq(out[i], (uint8_t)i);
	ck_assert_int_eq(rt_msg_payload_copy(m, 5200, out, 11), -EINVAL);
	ck_assert_int_eq(rt_msg_add_iov(m, b1, 4000, 200), -EINVAL);
	ck_assert_int_eq(rt_msg_add_iov(m, NULL, 0, 0), -EINVAL);
	for (unsigned i = 3; i < RT_MSG_MAX_IOV; i++)
		ck_assert_int_eq(rt_msg_add_iov(m, b2, 0, 1), 0);
	ck_assert_int_eq(rt_msg_add_iov(m, b2, 0, 1), -E2BIG);
	ck_assert_uint_eq(m->iovcnt, RT_MSG_MAX_IOV);
	ck_assert_int_eq(b1->refs, 3);
	ck_assert_int_eq(b2->refs, 1 + 1 + RT_MSG_MAX_IOV - 3);
	rt_msg_free(&m);
	ck_assert_ptr_null(m);
	ck_assert_int_eq(b1->refs, 1);
	ck_assert_int_eq(b2->refs, 1);
	rt_buf_put(&b1);
	rt_buf_put(&b2);
	rt_msg_free(&m); /* NULL: no-op */
}
END_TEST

struct reuse_ctx {
	bool same_slab;
	bool clean;
	unsigned cached_before, cached_after;
};

/* On a loop: a freed message's slab is the next one handed out, and it comes
 * back as new (header, body and arena zero); the loop's cache is bounded. */
static void
do_reuse(void *arg)
{
	struct reuse_ctx *r = arg;
	struct rt_loop *loop = rt_loop_current();
	struct rt_msg *m = rt_msg_new(CFS_MSG_CHUNK_WRITE), *m2, **many;
	struct rt_buf *b = rt_buf_get(4096);
	unsigned char *a, *a2;
	void *old = m;

	memset(m->body, 0xff, cfs_msg_body_size(m->type));
	m->flags = 0x7;
	m->rc = -5;
	m->req_id = 9;
	m->src = m->dst = 11;
	m->conn = 12;
	m->deadline_ns = 13;
	a = rt_msg_alloc(m, 64);
	memset(a, 0xee, 64);
	rt_msg_add_iov(m, b, 0, 100);
	rt_buf_put(&b);
	rt_msg_free(&m);
	m2 = rt_msg_new(CFS_MSG_CHUNK_WRITE);
	r->same_slab = (void *)m2 == old;
	a2 = rt_msg_alloc(m2, 64);
	r->clean = m2->flags == 0 && m2->rc == 0 && m2->req_id == 0 && m2->src == 0 &&
		   m2->dst == 0 && m2->conn == 0 && m2->deadline_ns == 0 && m2->iovcnt == 0 &&
		   m2->plen == 0 && m2->iov == m2->iov_inline && m2->arena == NULL &&
		   all_zero(m2->body, cfs_msg_body_size(m2->type)) && all_zero(a2, 64);
	rt_msg_free(&m2);
	r->cached_before = loop->mcache.n;
	many = calloc(RT_MSG_CACHE_MAX + 100, sizeof(*many));
	for (unsigned i = 0; i < RT_MSG_CACHE_MAX + 100; i++)
		many[i] = rt_msg_new(CFS_MSG_PING);
	for (unsigned i = 0; i < RT_MSG_CACHE_MAX + 100; i++)
		rt_msg_free(&many[i]);
	free(many);
	r->cached_after = loop->mcache.n;
}

START_TEST(test_rt_msg_reused_as_new_when_freed_on_loop)
{
	struct rt *rt = start_rt(1, 1, NULL, NULL);
	struct reuse_ctx r = {0};

	run_on(rt_loop_at(rt, 0), do_reuse, &r);
	ck_assert(r.same_slab);
	ck_assert(r.clean);
	ck_assert_uint_ge(r.cached_before, 1);
	ck_assert_uint_eq(r.cached_after, RT_MSG_CACHE_MAX);
	rt_destroy(&rt);
}
END_TEST

/* ----------------------------------------------------------- proto, errno */

START_TEST(test_cfs_msg_tables_round_trip_when_every_type)
{
	ck_assert_str_eq(cfs_msg_name(CFS_MSG_NONE), "?");
	ck_assert_str_eq(cfs_msg_name(CFS_MSG__COUNT), "?");
	ck_assert_uint_eq(cfs_msg_code(CFS_MSG__COUNT), 0);
	ck_assert_uint_eq(cfs_msg_body_size(CFS_MSG__COUNT), 0);
	ck_assert_uint_eq(cfs_msg_from_code(0), CFS_MSG_NONE);
	ck_assert_uint_eq(cfs_msg_from_code(0x7fff), CFS_MSG_NONE);
	ck_assert_uint_eq(cfs_msg_from_code(0xffff), CFS_MSG_NONE);
	for (unsigned t = 1; t < CFS_MSG__COUNT; t++) {
		const char *name = cfs_msg_name(t);
		uint16_t code = cfs_msg_code(t);

		ck_assert_str_ne(name, "?");
		ck_assert_uint_ne(code, 0);
		ck_assert_uint_eq(cfs_msg_from_code(code), t);
		ck_assert_uint_gt(cfs_msg_body_size(t), 0);
		if (cfs_msg_is_resp(t)) {
			const char *req = cfs_msg_name(t - 1);
			size_t n = strlen(req);

			ck_assert_uint_eq(code, cfs_msg_code(t - 1) | CFS_WIRE_RESP);
			ck_assert_uint_eq(strlen(name), n + 5);
			ck_assert_int_eq(strncmp(name, req, n), 0);
			ck_assert_str_eq(name + n, "_resp");
			ck_assert_uint_ge(cfs_msg_body_size(t), sizeof(int32_t));
		} else {
			ck_assert_uint_eq(code & CFS_WIRE_RESP, 0);
			ck_assert_uint_eq(cfs_msg_resp_of(t), t + 1);
		}
		for (unsigned u = 1; u < t; u++) {
			ck_assert_str_ne(cfs_msg_name(u), name);
			ck_assert_uint_ne(cfs_msg_code(u), code);
		}
	}
	ck_assert_str_eq(cfs_msg_name(CFS_MSG_CHUNK_WRITE), "chunk_write");
	ck_assert_str_eq(cfs_msg_name(CFS_MSG_CHUNK_WRITE_RESP), "chunk_write_resp");
	ck_assert_uint_eq(cfs_msg_code(CFS_MSG_CHUNK_WRITE), 0x0101);
	ck_assert_uint_eq(cfs_msg_code(CFS_MSG_PING_RESP), 0x8001);
	ck_assert_uint_eq(cfs_msg_body_size(CFS_MSG_PING), sizeof(struct cfs_ping));
}
END_TEST

START_TEST(test_cfs_errname_names_codes_when_own_or_system)
{
	static const struct {
		int num;
		const char *name;
	} sys[] = {
		/* clang-format off */
		{ENOENT, "ENOENT"},	      {EINVAL, "EINVAL"},	{EIO, "EIO"},
		{ENOSPC, "ENOSPC"},	      {ENOMEM, "ENOMEM"},	{EAGAIN, "EAGAIN"},
		{ETIMEDOUT, "ETIMEDOUT"},     {ECONNREFUSED, "ECONNREFUSED"},
		{ECONNRESET, "ECONNRESET"},   {EHOSTUNREACH, "EHOSTUNREACH"},
		{EEXIST, "EEXIST"},	      {E2BIG, "E2BIG"},		{EBADMSG, "EBADMSG"},
		{ENOTCONN, "ENOTCONN"},	      {EPIPE, "EPIPE"},		{EPERM, "EPERM"},
		{EACCES, "EACCES"},	      {EROFS, "EROFS"},		{EFBIG, "EFBIG"},
		{ERANGE, "ERANGE"},	      {ENOTSUP, "ENOTSUP"},	{ECANCELED, "ECANCELED"},
		{ESTALE, "ESTALE"},	      {EPROTO, "EPROTO"},	{ESHUTDOWN, "ESHUTDOWN"},
		/* clang-format on */
	};

	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
		ck_assert_str_eq(cfs_errname(-sys[i].num), sys[i].name);
		ck_assert_str_eq(cfs_errname(sys[i].num), sys[i].name);
		ck_assert_str_ne(cfs_strerror(-sys[i].num), "unknown error");
	}
	ck_assert_str_eq(cfs_errname(-CFS_ESTALECHAIN), "ESTALECHAIN");
	ck_assert_str_eq(cfs_errname(-CFS_ENOACTOR), "ENOACTOR");
	ck_assert_str_eq(cfs_errname(-CFS_ETOOBIG), "ETOOBIG");
	ck_assert_str_eq(cfs_errname(-CFS_EPROTO), "EPROTO");
	ck_assert_str_eq(cfs_strerror(-CFS_ESTALECHAIN), "chain version is stale");
	ck_assert_str_eq(cfs_strerror(CFS_ENOACTOR), "no such actor on this node");
	ck_assert_str_eq(cfs_errname(0), "OK");
	ck_assert_str_eq(cfs_errname(-999), "E?");
	ck_assert_str_eq(cfs_errname(-1999), "E?");
	ck_assert_ptr_nonnull(cfs_strerror(-1999));
	ck_assert_ptr_nonnull(cfs_strerror(-998));
	/* A peer's rc may be any negative int: no -INT_MIN overflow (UBSan). */
	ck_assert_str_eq(cfs_errname(INT_MIN), "E?");
	ck_assert_str_eq(cfs_strerror(INT_MIN), "unknown chainfs error");
}
END_TEST

/* ---------------------------------------------------------------- logging */

START_TEST(test_rt_log_prefixes_actor_when_in_handler)
{
	struct rt *rt;
	struct call_ctx c = {.type = CFS_MSG_TARGET_STATS};
	char buf[65536], *line;
	enum rt_log_level lvl;
	int fds[2], saved;
	ssize_t n;

	ck_assert_int_eq(pipe(fds), 0);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	saved = dup(STDERR_FILENO);
	dup2(fds[1], STDERR_FILENO);
	rt = start_rt(2, 1, NULL, NULL);
	c.from = spawn_t(rt, 0, NULL);
	spawn_t(rt, 1, &c.to);
	ck_assert_int_eq(call_wait(&c), -EIO);
	rt_log(RT_LOG_INFO, "test", "outside y=%d", 2);
	rt_log_set_level(RT_LOG_WARN);
	RT_INFO("suppressed");
	ck_assert_int_eq(rt_log_get_level(), RT_LOG_WARN);
	rt_log_set_level(RT_LOG_INFO);
	rt_destroy(&rt);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	line = strstr(buf, " I test [t#0x01000100 L1] hello x=1\n");
	ck_assert_msg(line != NULL, "no actor line in: %s", buf);
	/* Walk back to the line's start: a UTC timestamp with milliseconds. */
	while (line > buf && line[-1] != '\n')
		line--;
	ck_assert_msg(strlen(line) > 24 && line[4] == '-' && line[7] == '-' && line[10] == 'T' &&
			      line[13] == ':' && line[16] == ':' && line[19] == '.' &&
			      line[23] == 'Z',
		      "bad timestamp: %s", line);
	ck_assert_ptr_nonnull(strstr(buf, "Z I test outside y=2\n"));
	ck_assert_ptr_null(strstr(buf, "suppressed"));
	ck_assert_int_eq(rt_log_parse_level("debug", &lvl), 0);
	ck_assert_int_eq(lvl, RT_LOG_DEBUG);
	ck_assert_int_eq(rt_log_parse_level("WARN", &lvl), 0);
	ck_assert_int_eq(lvl, RT_LOG_WARN);
	ck_assert_int_eq(rt_log_parse_level("error", &lvl), 0);
	ck_assert_int_eq(lvl, RT_LOG_ERR);
	ck_assert_int_eq(rt_log_parse_level("bogus", &lvl), -EINVAL);
}
END_TEST

/* --------------------------------------------------------------- shutdown */

START_TEST(test_rt_shutdown_runs_fini_and_joins_when_actors_live)
{
	struct rt *rt = start_rt(3, 1, NULL, NULL);
	struct call_ctx q = {.type = CFS_MSG_CHUNK_QUERY, .timeout_ms = 600000};

	q.from = spawn_t(rt, 0, NULL);
	spawn_t(rt, 0, NULL);
	spawn_t(rt, 1, NULL);
	spawn_t(rt, 1, NULL);
	spawn_t(rt, 2, &q.to);
	spawn_t(rt, 2, NULL);
	ck_assert_int_eq(call(&q), 0);
	EVENTUALLY(atomic_load(&g.held) == 1);
	rt_shutdown(rt);
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&g.fini), 6);
	/* Canceled by the caller's stop, or answered -ECANCELED by the holder's
	 * fini, whichever loop went first: exactly once either way. */
	ck_assert_int_eq(atomic_load(&q.cbs), 1);
	ck_assert_int_eq(atomic_load(&q.rc), -CFS_ECANCELED);
}
END_TEST

static struct rt *g_sig_rt;

static void
on_sigusr1(int sig)
{
	rt_shutdown(g_sig_rt);
}

START_TEST(test_rt_shutdown_works_when_called_from_signal_handler)
{
	struct rt *rt = start_rt(2, 1, NULL, NULL);

	spawn_t(rt, 0, NULL);
	spawn_t(rt, 1, NULL);
	g_sig_rt = rt;
	signal(SIGUSR1, on_sigusr1);
	raise(SIGUSR1);
	EVENTUALLY(atomic_load(&g.fini) == 2);
	rt_destroy(&rt);
	signal(SIGUSR1, SIG_DFL);
	ck_assert_int_eq(atomic_load(&g.fini), 2);
}
END_TEST

START_TEST(test_rt_destroy_runs_fini_when_never_started)
{
	struct rt_config cfg = {.loops = 2, .node_id = 1};
	struct send_ctx sc = {.v = 0x100000001ull};
	struct rt_buf *b;
	struct rt *rt;

	ck_assert_int_eq(rt_create(&cfg, &rt), 0);
	sc.from = NULL;
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 0), &t_kind, &sc.from, 0, NULL), 0);
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 1), &t_kind, NULL, 0, &sc.to), 0);
	/* Queued on loop 1's inbox; destroy drains it (delivering it) before it
	 * stops the actors. */
	do_send(&sc);
	ck_assert_int_eq(sc.rc, 0);
	b = rt_buf_get(4096);
	rt_buf_put(&b);
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&g.fini), 2);
	ck_assert_uint_eq(atomic_load(&g.received), 1);
}
END_TEST

/* ------------------------------------------------------ stepping by hand */

START_TEST(test_rt_loops_step_by_hand_when_not_started)
{
	struct rt_config cfg = {.loops = 2, .node_id = 1};
	struct call_ctx c = {.type = CFS_MSG_PING, .sent = 1};
	struct rt *rt;
	int steps = 0;

	ck_assert_int_eq(rt_create(&cfg, &rt), 0);
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 0), &t_kind, &c.from, 0, NULL), 0);
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 1), &t_kind, NULL, 0, &c.to), 0);
	do_call(&c);
	ck_assert_int_eq(c.send_rc, 0);
	while (atomic_load(&c.cbs) == 0 && steps++ < 100) {
		rt_loop_step(rt_loop_at(rt, 0));
		rt_loop_step(rt_loop_at(rt, 1));
	}
	ck_assert_int_eq(atomic_load(&c.cbs), 1);
	ck_assert(atomic_load(&c.cb_ok));
	ck_assert_int_eq(atomic_load(&c.rc), 0);
	ck_assert_uint_eq(atomic_load(&c.val), 2);
	ck_assert_int_le(steps, 4);
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&g.fini), 2);
}
END_TEST

/* Calls wrap around the pending table (64 slots) many times while one old call
 * still holds its slot: every new call must get an id of its own, complete
 * exactly once with its own answer, and the old call must still find its
 * answer at the end. Loops stepped by hand: deterministic. */
START_TEST(test_rt_call_ids_skip_held_slot_when_old_call_pending)
{
	struct rt_config cfg = {.loops = 2, .node_id = 1};
	struct call_ctx q = {.type = CFS_MSG_CHUNK_QUERY, .timeout_ms = 60000};
	struct call_ctx r = {.type = CFS_MSG_CHUNK_LIST, .timeout_ms = 60000};
	uint64_t prev_id = 0;
	struct rt *rt;
	int steps;

	ck_assert_int_eq(rt_create(&cfg, &rt), 0);
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 0), &t_kind, &q.from, 0, NULL), 0);
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 1), &t_kind, NULL, 0, &q.to), 0);
	r.from = q.from;
	r.to = q.to;
	do_call(&q);
	ck_assert_int_eq(q.send_rc, 0);
	for (steps = 0; atomic_load(&g.held) == 0 && steps < 10; steps++) {
		rt_loop_step(rt_loop_at(rt, 0));
		rt_loop_step(rt_loop_at(rt, 1));
	}
	ck_assert_int_eq(atomic_load(&g.held), 1);
	for (unsigned i = 0; i < 300; i++) {
		struct call_ctx c = {
			.type = CFS_MSG_PING, .sent = 1000 + i, .from = q.from, .to = q.to};
		struct rt_msg *m = rt_msg_new(CFS_MSG_PING);

		RT_BODY(m, ping)->sent_ns = c.sent;
		ck_assert_int_eq(rt_call(c.from, c.to, m, 60000, call_cb, &c), 0);
		/* Ids increase and never repeat, whatever slot they skip. (m now
		 * waits in loop 1's inbox, which nothing runs until the steps.) */
		ck_assert_uint_gt(m->req_id, prev_id);
		prev_id = m->req_id;
		for (steps = 0; atomic_load(&c.cbs) == 0 && steps < 10; steps++) {
			rt_loop_step(rt_loop_at(rt, 0));
			rt_loop_step(rt_loop_at(rt, 1));
		}
		ck_assert_int_eq(atomic_load(&c.cbs), 1);
		ck_assert_int_eq(atomic_load(&c.rc), 0);
		ck_assert_uint_eq(atomic_load(&c.val), c.sent + 1);
	}
	ck_assert_int_eq(atomic_load(&q.cbs), 0);
	/* The holder answers the old call now, then this one. */
	do_call(&r);
	ck_assert_int_eq(r.send_rc, 0);
	for (steps = 0; atomic_load(&r.cbs) == 0 && steps < 10; steps++) {
		rt_loop_step(rt_loop_at(rt, 0));
		rt_loop_step(rt_loop_at(rt, 1));
	}
	ck_assert_int_eq(atomic_load(&q.cbs), 1);
	ck_assert_int_eq(atomic_load(&q.rc), 0);
	ck_assert_int_eq(atomic_load(&r.cbs), 1);
	ck_assert_int_eq(atomic_load(&r.rc), 0);
	rt_destroy(&rt);
}
END_TEST

/* ------------------------------------------------ remote: fake transport */

#define TP_MAX 64

static struct {
	pthread_mutex_t lock;
	struct rt_msg *sent[TP_MAX];
	unsigned sent_loop[TP_MAX];
	atomic_uint nsent;
	atomic_int inits;
	atomic_int finis;
	atomic_int wrong; /* called on the wrong thread or with the wrong state */
	int send_rc;
} g_tp;

static int
tp_loop_init(void *ctx, struct rt_loop *loop, void **state)
{
	if (ctx != &g_tp || rt_loop_current() != loop)
		atomic_fetch_add(&g_tp.wrong, 1);
	*state = &g_tp.sent[rt_loop_index(loop)];
	atomic_fetch_add(&g_tp.inits, 1);
	return 0;
}

static void
tp_loop_fini(void *ctx, struct rt_loop *loop, void *state)
{
	if (rt_loop_current() != loop || state != &g_tp.sent[rt_loop_index(loop)])
		atomic_fetch_add(&g_tp.wrong, 1);
	atomic_fetch_add(&g_tp.finis, 1);
}

static int
tp_send(void *ctx, struct rt_loop *loop, void *state, struct rt_msg *m)
{
	unsigned n;

	if (g_tp.send_rc != 0)
		return g_tp.send_rc;
	if (rt_loop_current() != loop || state != &g_tp.sent[rt_loop_index(loop)] ||
	    (m->flags & RT_MSG_F__INTERNAL))
		atomic_fetch_add(&g_tp.wrong, 1);
	pthread_mutex_lock(&g_tp.lock);
	n = atomic_load(&g_tp.nsent);
	if (n < TP_MAX) {
		g_tp.sent[n] = m;
		g_tp.sent_loop[n] = rt_loop_index(loop);
		atomic_store(&g_tp.nsent, n + 1);
	} else {
		rt_msg_free(&m);
	}
	pthread_mutex_unlock(&g_tp.lock);
	return 0;
}

static const struct rt_transport_ops tp_ops = {
	.name = "fake",
	.loop_init = tp_loop_init,
	.loop_fini = tp_loop_fini,
	.send = tp_send,
};

static void
tp_reset(void)
{
	memset(&g_tp, 0, sizeof(g_tp));
	pthread_mutex_init(&g_tp.lock, NULL);
}

static void
tp_free(void)
{
	for (unsigned i = 0; i < atomic_load(&g_tp.nsent); i++)
		rt_msg_free(&g_tp.sent[i]);
	pthread_mutex_destroy(&g_tp.lock);
}

struct inject {
	struct rt_loop *loop;
	struct rt_msg *m;
};

static void
do_inject(void *arg)
{
	struct inject *in = arg;

	rt_deliver(in->loop, in->m);
}

/* Hand m to rt as the transport of `loop` would. */
static void
inject(struct rt *rt, unsigned loop, struct rt_msg *m)
{
	struct inject in = {.loop = rt_loop_at(rt, loop), .m = m};

	run_on(in.loop, do_inject, &in);
}

START_TEST(test_rt_call_uses_transport_when_node_remote)
{
	struct rt *rt;
	struct call_ctx c = {
		.type = CFS_MSG_PING, .sent = 7, .to = CFS_ADDR(9, CFS_LOCAL(0, 0x100))};
	struct rt_msg *m, *resp;
	cfs_addr_t me;

	tp_reset();
	rt = start_rt(2, 1, &tp_ops, &g_tp);
	ck_assert_int_eq(atomic_load(&g_tp.inits), 2);
	c.from = spawn_t(rt, 1, &me);
	ck_assert_int_eq(call(&c), 0);
	EVENTUALLY(atomic_load(&g_tp.nsent) == 1);
	m = g_tp.sent[0];
	ck_assert_uint_eq(g_tp.sent_loop[0], 1);
	ck_assert_uint_eq(m->type, CFS_MSG_PING);
	ck_assert_uint_eq(m->dst, c.to);
	ck_assert_uint_eq(m->src, me);
	ck_assert_uint_eq(CFS_ADDR_NODE(m->src), 1);
	ck_assert_uint_ne(m->req_id, 0);
	ck_assert_uint_eq(m->flags & RT_MSG_F_RESP, 0);
	ck_assert_uint_eq(RT_BODY(m, ping)->sent_ns, 7);
	/* The answer arrives on a connection of loop 0 and finds loop 1's caller. */
	resp = rt_msg_new(CFS_MSG_PING_RESP);
	resp->req_id = m->req_id;
	resp->src = m->dst;
	resp->dst = m->src;
	resp->conn = (0ull << 56) | 5;
	resp->via_node = 9; /* the transport: it came on our connection to node 9 */
	RT_BODY(resp, ping_resp)->sent_ns = 8;
	inject(rt, 0, resp);
	EVENTUALLY(atomic_load(&c.cbs) == 1);
	ck_assert(atomic_load(&c.cb_ok));
	ck_assert_int_eq(atomic_load(&c.rc), 0);
	ck_assert_uint_eq(atomic_load(&c.val), 8);
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&g_tp.finis), 2);
	ck_assert_int_eq(atomic_load(&g_tp.wrong), 0);
	tp_free();
}
END_TEST

START_TEST(test_rt_reply_goes_out_on_conn_loop_when_request_remote)
{
	struct rt *rt;
	struct rt_msg *req, *m;
	cfs_addr_t echo;

	tp_reset();
	rt = start_rt(2, 1, &tp_ops, &g_tp);
	spawn_t(rt, 0, &echo);
	req = rt_msg_new(CFS_MSG_PING);
	req->src = CFS_ADDR(9, 0x55);
	req->dst = CFS_ADDR(CFS_NODE_ANY, CFS_ADDR_LOCAL(echo));
	req->req_id = 77;
	req->conn = (1ull << 56) | 3;
	RT_BODY(req, ping)->sent_ns = 5;
	inject(rt, 1, req);
	EVENTUALLY(atomic_load(&g_tp.nsent) == 1);
	m = g_tp.sent[0];
	/* Handled on loop 0, written by loop 1, which owns the connection. */
	ck_assert_uint_eq(g_tp.sent_loop[0], 1);
	ck_assert_uint_eq(m->type, CFS_MSG_PING_RESP);
	ck_assert_uint_eq(m->flags, RT_MSG_F_RESP);
	ck_assert_uint_eq(m->req_id, 77);
	ck_assert_uint_eq(m->dst, CFS_ADDR(9, 0x55));
	ck_assert_uint_eq(m->src, CFS_ADDR(1, CFS_ADDR_LOCAL(echo)));
	ck_assert_uint_eq(m->conn, (1ull << 56) | 3);
	ck_assert_int_eq(m->rc, 0);
	ck_assert_int_eq(RT_BODY(m, ping_resp)->rc, 0);
	ck_assert_uint_eq(RT_BODY(m, ping_resp)->sent_ns, 6);
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&g_tp.wrong), 0);
	tp_free();
}
END_TEST

START_TEST(test_rt_deliver_answers_errors_when_request_misaddressed)
{
	struct rt *rt;
	struct rt_msg *req, *resp;

	tp_reset();
	rt = start_rt(2, 1, &tp_ops, &g_tp);
	/* Another node's actor. */
	req = rt_msg_new(CFS_MSG_PING);
	req->src = CFS_ADDR(9, 0x55);
	req->dst = CFS_ADDR(5, CFS_LOCAL(0, 0x100));
	req->req_id = 1;
	req->conn = (0ull << 56) | 1;
	inject(rt, 0, req);
	EVENTUALLY(atomic_load(&g_tp.nsent) == 1);
	ck_assert_int_eq(g_tp.sent[0]->rc, -CFS_EWRONGNODE);
	ck_assert_int_eq(RT_BODY(g_tp.sent[0], ping_resp)->rc, -CFS_EWRONGNODE);
	ck_assert_uint_eq(g_tp.sent[0]->req_id, 1);
	ck_assert_uint_eq(g_tp.sent_loop[0], 0);
	/* No such actor on loop 1; the refusal comes back to loop 0's connection. */
	req = rt_msg_new(CFS_MSG_PING);
	req->src = CFS_ADDR(9, 0x55);
	req->dst = CFS_ADDR(1, CFS_LOCAL(1, 0x999));
	req->req_id = 2;
	req->conn = (0ull << 56) | 2;
	inject(rt, 0, req);
	EVENTUALLY(atomic_load(&g_tp.nsent) == 2);
	ck_assert_int_eq(g_tp.sent[1]->rc, -CFS_ENOACTOR);
	ck_assert_uint_eq(g_tp.sent[1]->req_id, 2);
	ck_assert_uint_eq(g_tp.sent_loop[1], 0);
	ck_assert_uint_eq(g_tp.sent[1]->conn, 2);
	/* A response nobody waits for, and a one-way request to nobody: dropped. */
	resp = rt_msg_new(CFS_MSG_PING_RESP);
	resp->dst = CFS_ADDR(1, CFS_LOCAL(1, 0x999));
	resp->req_id = 3;
	resp->conn = 4;
	inject(rt, 0, resp);
	req = rt_msg_new(CFS_MSG_PING);
	req->dst = CFS_ADDR(1, CFS_LOCAL(0, 0x999));
	req->flags = RT_MSG_F_ONEWAY;
	req->conn = 4;
	inject(rt, 0, req);
	barrier(rt);
	ck_assert_uint_eq(atomic_load(&g_tp.nsent), 2);
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&g_tp.wrong), 0);
	tp_free();
}
END_TEST

START_TEST(test_rt_send_routes_by_dst_when_forwarding_request_from_conn)
{
	struct rt *rt;
	struct rt_msg *req;
	cfs_addr_t next, fwd;

	tp_reset();
	rt = start_rt(2, 1, &tp_ops, &g_tp);
	spawn_t(rt, 1, &next);
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 0), &fwd_kind, &next, 0, &fwd), 0);
	/* A client's request on a connection of loop 1; the forwarder passes the
	 * very object on with rt_send. It must reach `next`, not go back out on
	 * the client's connection. A peer's stray routing mark is ignored too. */
	req = rt_msg_new(CFS_MSG_PING);
	req->src = CFS_ADDR(0, 0x55);
	req->dst = CFS_ADDR(CFS_NODE_ANY, CFS_ADDR_LOCAL(fwd));
	req->req_id = 78;
	req->flags = RT_MSG_F_VIA_CONN;
	req->conn = (1ull << 56) | 3;
	RT_BODY(req, ping)->sent_ns = 5;
	inject(rt, 1, req);
	EVENTUALLY(atomic_load(&g.echoed) == 1);
	ck_assert_uint_eq(atomic_load(&g.last_conn), 0);
	ck_assert_uint_eq(atomic_load(&g.last_flags) & RT_MSG_F_VIA_CONN, 0);
	/* next's answer went to the forwarder (which made no call: dropped). */
	barrier(rt);
	ck_assert_uint_eq(atomic_load(&g_tp.nsent), 0);
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&g_tp.wrong), 0);
	tp_free();
}
END_TEST

struct push_ctx {
	struct rt_actor *from;
	cfs_addr_t dst;
	uint64_t conn;
	bool use_send_conn;
	int rc;
};

static void
do_push(void *arg)
{
	struct push_ctx *p = arg;
	struct rt_msg *m = rt_msg_new(CFS_MSG_PING);

	m->dst = p->dst;
	m->flags = RT_MSG_F_ONEWAY;
	if (p->use_send_conn) {
		p->rc = rt_send_conn(p->from, p->conn, m);
	} else {
		m->conn = p->conn; /* a bare conn is not a routing instruction */
		p->rc = rt_send(p->from, m);
	}
	if (p->rc != 0)
		rt_msg_free(&m);
}

START_TEST(test_rt_send_conn_pushes_on_conn_when_asked)
{
	struct push_ctx p = {0};
	struct rt *rt;
	struct rt_msg *m;
	cfs_addr_t local;

	tp_reset();
	rt = start_rt(2, 1, &tp_ops, &g_tp);
	p.from = spawn_t(rt, 0, &local);
	/* A push to a client: its address means nothing here, its connection
	 * (owned by loop 1) does. */
	p.dst = CFS_ADDR(0, 0x01000100);
	p.conn = (1ull << 56) | 7;
	p.use_send_conn = true;
	run_on(rt_loop_at(rt, 0), do_push, &p);
	ck_assert_int_eq(p.rc, 0);
	EVENTUALLY(atomic_load(&g_tp.nsent) == 1);
	m = g_tp.sent[0];
	ck_assert_uint_eq(g_tp.sent_loop[0], 1);
	ck_assert_uint_eq(m->conn, (1ull << 56) | 7);
	ck_assert_uint_eq(m->flags, RT_MSG_F_ONEWAY);
	ck_assert_uint_eq(m->src, local);
	/* conn 0: an ordinary send by dst (here a local actor). */
	p.dst = local;
	p.conn = 0;
	run_on(rt_loop_at(rt, 0), do_push, &p);
	ck_assert_int_eq(p.rc, 0);
	EVENTUALLY(atomic_load(&g.y_ran) == 1);
	/* rt_send with m->conn set but no mark: routed by dst, not the conn. */
	atomic_store(&g.y_ran, 0);
	p.conn = (1ull << 56) | 7;
	p.use_send_conn = false;
	run_on(rt_loop_at(rt, 0), do_push, &p);
	ck_assert_int_eq(p.rc, 0);
	EVENTUALLY(atomic_load(&g.y_ran) == 1);
	barrier(rt);
	ck_assert_uint_eq(atomic_load(&g_tp.nsent), 1);
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&g_tp.wrong), 0);
	tp_free();
}
END_TEST

struct lost_ctx {
	struct rt_loop *loop;
	uint32_t node;
};

static void
do_lost(void *arg)
{
	struct lost_ctx *l = arg;

	rt_peer_lost(l->loop, l->node, -ECONNRESET);
}

START_TEST(test_rt_peer_lost_fails_calls_when_node_lost)
{
	struct rt *rt;
	struct call_ctx a = {.type = CFS_MSG_PING, .to = CFS_ADDR(9, CFS_LOCAL(0, 0x100))};
	struct call_ctx b = {.type = CFS_MSG_PING, .to = CFS_ADDR(8, CFS_LOCAL(0, 0x100))};
	struct lost_ctx l = {.node = 9};

	tp_reset();
	rt = start_rt(2, 1, &tp_ops, &g_tp);
	a.from = b.from = spawn_t(rt, 0, NULL);
	l.loop = rt_loop_at(rt, 0);
	ck_assert_int_eq(call(&a), 0);
	ck_assert_int_eq(call(&b), 0);
	EVENTUALLY(atomic_load(&g_tp.nsent) == 2);
	run_on(l.loop, do_lost, &l);
	EVENTUALLY(atomic_load(&a.cbs) == 1);
	ck_assert_int_eq(atomic_load(&a.rc), -ECONNRESET);
	ck_assert(atomic_load(&a.cb_ok));
	barrier(rt);
	ck_assert_int_eq(atomic_load(&a.cbs), 1);
	ck_assert_int_eq(atomic_load(&b.cbs), 0);
	/* Shutdown completes the other one. */
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&b.cbs), 1);
	ck_assert_int_eq(atomic_load(&b.rc), -CFS_ECANCELED);
	tp_free();
}
END_TEST

/* The first calls of a loop take fresh memory for their entries: a lost
 * connection must fail them whatever bytes that memory held before. */
static void
call_on_dirty_memory(void *arg)
{
	volatile unsigned char *x = malloc(sizeof(struct rt_pending));

	ck_assert_ptr_nonnull((void *)x);
	/* glibc hands a chunk just freed to the next malloc of its size. */
	for (size_t i = 0; i < sizeof(struct rt_pending); i++)
		x[i] = 0x01;
	free((void *)x);
	do_call(arg);
}

START_TEST(test_rt_peer_lost_fails_call_when_entry_memory_was_dirty)
{
	struct rt *rt;
	struct call_ctx a = {.type = CFS_MSG_PING, .to = CFS_ADDR(9, CFS_LOCAL(0, 0x100))};
	struct lost_ctx l = {.node = 9};

	tp_reset();
	rt = start_rt(1, 1, &tp_ops, &g_tp);
	a.from = spawn_t(rt, 0, NULL);
	l.loop = rt_loop_at(rt, 0);
	run_on(l.loop, call_on_dirty_memory, &a);
	ck_assert_int_eq(a.send_rc, 0);
	EVENTUALLY(atomic_load(&g_tp.nsent) == 1);
	run_on(l.loop, do_lost, &l);
	EVENTUALLY(atomic_load(&a.cbs) == 1);
	ck_assert_int_eq(atomic_load(&a.rc), -ECONNRESET);
	rt_destroy(&rt);
	tp_free();
}
END_TEST

/* A response completes a call only when it comes from this process or on the
 * connection to the node called: not from a peer that connected to us, nor
 * on another node's connection, whatever request id it guessed. */
START_TEST(test_rt_response_ignored_when_not_from_node_called)
{
	static const uint32_t via[] = {0, 77};
	struct rt *rt;
	struct call_ctx c = {.type = CFS_MSG_PING, .to = CFS_ADDR(9, CFS_LOCAL(0, 0x100))};
	struct rt_msg *m, *resp;
	cfs_addr_t me;

	tp_reset();
	rt = start_rt(1, 1, &tp_ops, &g_tp);
	c.from = spawn_t(rt, 0, &me);
	ck_assert_int_eq(call(&c), 0);
	EVENTUALLY(atomic_load(&g_tp.nsent) == 1);
	m = g_tp.sent[0];
	for (unsigned i = 0; i <= 2; i++) {
		resp = rt_msg_new(CFS_MSG_PING_RESP);
		resp->req_id = m->req_id;
		resp->src = CFS_ADDR(9, 0x100); /* the sender's to write: proves nothing */
		resp->dst = me;
		resp->conn = (0ull << 56) | (5 + i);
		resp->via_node = i < 2 ? via[i] : 9;
		RT_BODY(resp, ping_resp)->sent_ns = 100 + i;
		inject(rt, 0, resp);
		barrier(rt);
		ck_assert_int_eq(atomic_load(&c.cbs), i < 2 ? 0 : 1);
	}
	ck_assert_int_eq(atomic_load(&c.rc), 0);
	ck_assert_uint_eq(atomic_load(&c.val), 102);
	rt_destroy(&rt);
	tp_free();
}
END_TEST

/* The clock an actor's init sees when spawned before rt_start (in the
 * caller's thread): read afresh for each spawn, not kept from an earlier
 * one (a call made there would have a deadline already behind it). */
static uint64_t g_init_now_ns;

static int
now_init(struct rt_actor *self, const void *arg)
{
	g_init_now_ns = rt_loop_now_ns(rt_actor_loop(self));
	return 0;
}

static const struct rt_actor_kind now_kind = {.name = "now", .init = now_init};

START_TEST(test_rt_clock_fresh_when_actor_spawned_before_start)
{
	struct rt_config cfg = {.loops = 1, .node_id = 1};
	struct rt *rt;
	uint64_t t0;

	ck_assert_int_eq(rt_create(&cfg, &rt), 0);
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 0), &now_kind, NULL, 0, NULL), 0);
	sleep_ms(20);
	t0 = rt_clock_mono_ns();
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 0), &now_kind, NULL, 0, NULL), 0);
	ck_assert_uint_ge(g_init_now_ns, t0);
	rt_destroy(&rt);
}
END_TEST

START_TEST(test_rt_call_fails_when_no_route_or_busy)
{
	struct rt *rt = start_rt(1, 1, NULL, NULL);
	struct call_ctx c = {.type = CFS_MSG_PING, .to = CFS_ADDR(9, CFS_LOCAL(0, 0x100))};

	c.from = spawn_t(rt, 0, NULL);
	ck_assert_int_eq(call(&c), -EHOSTUNREACH);
	rt_destroy(&rt);

	tp_reset();
	g_tp.send_rc = -CFS_EBUSY;
	rt = start_rt(1, 1, &tp_ops, &g_tp);
	c.from = spawn_t(rt, 0, NULL);
	ck_assert_int_eq(call(&c), -CFS_EBUSY);
	barrier(rt);
	ck_assert_int_eq(atomic_load(&c.cbs), 0);
	rt_destroy(&rt);
	tp_free();
}
END_TEST

static int
tp_loop_init_fail1(void *ctx, struct rt_loop *loop, void **state)
{
	if (rt_loop_index(loop) == 1)
		return -EADDRINUSE;
	return tp_loop_init(ctx, loop, state);
}

static const struct rt_transport_ops tp_fail_ops = {
	.name = "fake-failing",
	.loop_init = tp_loop_init_fail1,
	.loop_fini = tp_loop_fini,
	.send = tp_send,
};

START_TEST(test_rt_start_fails_when_transport_init_fails)
{
	struct rt_config cfg = {.loops = 2, .node_id = 1};
	struct rt *rt;

	tp_reset();
	ck_assert_int_eq(rt_create(&cfg, &rt), 0);
	rt_set_transport(rt, &tp_fail_ops, &g_tp);
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 0), &t_kind, NULL, 0, NULL), 0);
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 1), &t_kind, NULL, 0, NULL), 0);
	ck_assert_int_eq(rt_start(rt, false), -EADDRINUSE);
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&g.fini), 2);
	ck_assert_int_eq(atomic_load(&g_tp.inits), 1);
	ck_assert_int_eq(atomic_load(&g_tp.finis), 1);
	ck_assert_int_eq(atomic_load(&g_tp.wrong), 0);
	tp_free();
}
END_TEST

/* ---------------------------------------------------- loop 0 in the caller */

struct loop0_ctx {
	struct rt *rt;
	struct call_ctx *c;
};

static void *
shutdown_when_answered(void *arg)
{
	struct loop0_ctx *x = arg;
	uint64_t until = mono_ns() + WAIT_LIMIT_NS;

	while (atomic_load(&x->c->cbs) == 0 && mono_ns() < until)
		sleep_ms(1);
	rt_shutdown(x->rt);
	return NULL;
}

START_TEST(test_rt_run_loop0_serves_in_caller_when_asked)
{
	struct rt_config cfg = {.loops = 2, .node_id = 1};
	struct call_ctx c = {.type = CFS_MSG_PING, .sent = 10};
	struct loop0_ctx x = {.c = &c};
	pthread_t th;
	struct rt *rt;

	ck_assert_int_eq(rt_create(&cfg, &rt), 0);
	ck_assert_int_eq(rt_run_loop0(rt), -EINVAL);
	ck_assert_int_eq(rt_start(rt, true), 0);
	/* Loop 0 is ours and not running yet: init runs right here. */
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 0), &t_kind, &c.from, 0, NULL), 0);
	ck_assert(pthread_equal(g.init_thread, pthread_self()));
	/* Loop 1 has its own thread. */
	ck_assert_int_eq(rt_spawn(rt_loop_at(rt, 1), &t_kind, NULL, 0, &c.to), 0);
	ck_assert(!pthread_equal(g.init_thread, pthread_self()));
	do_call(&c);
	ck_assert_int_eq(c.send_rc, 0);
	x.rt = rt;
	ck_assert_int_eq(pthread_create(&th, NULL, shutdown_when_answered, &x), 0);
	ck_assert_int_eq(rt_run_loop0(rt), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(atomic_load(&c.cbs), 1);
	ck_assert(atomic_load(&c.cb_ok));
	ck_assert_int_eq(atomic_load(&c.rc), 0);
	ck_assert_uint_eq(atomic_load(&c.val), 11);
	ck_assert_ptr_null(rt_loop_current());
	rt_destroy(&rt);
	ck_assert_int_eq(atomic_load(&g.fini), 2);
}
END_TEST

/* ----------------------------------------------------------------- panics */

START_TEST(test_rt_reply_panics_when_called_twice)
{
	struct rt *rt = start_rt(1, 1, NULL, NULL);
	struct call_ctx c = {.type = CFS_MSG_CHUNK_REMOVE};

	c.from = spawn_t(rt, 0, NULL);
	spawn_t(rt, 0, &c.to);
	ck_assert_int_eq(call(&c), 0);
	EVENTUALLY(atomic_load(&c.cbs) == 99); /* the abort comes first */
}
END_TEST

START_TEST(test_rt_msg_free_panics_when_freed_twice)
{
	struct rt_msg *m = rt_msg_new(CFS_MSG_PING), *alias = m;

	rt_msg_free(&m);
	rt_msg_free(&alias);
}
END_TEST

struct stop_lost_ctx {
	struct rt_actor *a;
	struct rt_loop *loop;
};

static void
do_stop_then_lost(void *arg)
{
	struct stop_lost_ctx *s = arg;

	rt_actor_stop(s->a);
	rt_peer_lost(s->loop, 9, -ECONNRESET);
}

/* A call of an actor stopped earlier in the same loop iteration (not reaped
 * yet) whose peer is then lost completes with -CFS_ECANCELED, as rt.h
 * promises for a stopped actor's calls, not with the connection's error:
 * callbacks take ECANCELED as "stopping, touch nothing". */
START_TEST(test_rt_peer_lost_cancels_calls_when_caller_stopping)
{
	struct rt *rt;
	struct call_ctx a = {.type = CFS_MSG_PING, .to = CFS_ADDR(9, CFS_LOCAL(0, 0x100))};
	struct stop_lost_ctx s;

	tp_reset();
	rt = start_rt(1, 1, &tp_ops, &g_tp);
	a.from = spawn_t(rt, 0, NULL);
	s.a = a.from;
	s.loop = rt_loop_at(rt, 0);
	ck_assert_int_eq(call(&a), 0);
	EVENTUALLY(atomic_load(&g_tp.nsent) == 1);
	run_on(s.loop, do_stop_then_lost, &s);
	EVENTUALLY(atomic_load(&a.cbs) == 1);
	ck_assert_int_eq(atomic_load(&a.rc), -CFS_ECANCELED);
	rt_destroy(&rt);
	tp_free();
}
END_TEST

/* ------------------------------------------------------------------- main */

static void
add_case(Suite *s, const char *name, const TTest *t, int signal)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 120);
	if (signal) {
		tcase_set_tags(tc, "panic");
		tcase_add_test_raise_signal(tc, t, signal);
	} else {
		tcase_add_test(tc, t);
	}
	suite_add_tcase(s, tc);
}

int
main(void)
{
	Suite *s = suite_create("rt");
	SRunner *sr;
	int failed;

	add_case(s, "send_order_same_loop", test_rt_send_arrives_in_order_once_when_same_loop, 0);
	add_case(s, "send_order_cross_loop", test_rt_send_arrives_in_order_once_when_cross_loop, 0);
	add_case(s, "send_not_recursive", test_rt_send_does_not_recurse_when_same_loop, 0);
	add_case(s, "call_same_loop", test_rt_call_round_trip_when_same_loop, 0);
	add_case(s, "call_cross_loop", test_rt_call_round_trip_when_cross_loop, 0);
	add_case(s, "claim", test_rt_msg_claim_keeps_response_when_claimed, 0);
	add_case(s, "call_timeout", test_rt_call_times_out_once_when_no_reply, 0);
	add_case(s, "call_timeout_order", test_rt_call_times_out_when_shorter_than_earlier_calls,
		 0);
	add_case(s, "call_handler_rc", test_rt_call_gets_handler_rc_when_handler_fails, 0);
	add_case(s, "call_enoactor", test_rt_call_gets_enoactor_when_actor_unknown, 0);
	add_case(s, "call_enotsup", test_rt_call_gets_enotsup_when_no_handler, 0);
	add_case(s, "deadline", test_rt_request_dropped_when_deadline_passed, 0);
	add_case(s, "stop_cancels", test_rt_actor_stop_cancels_calls_when_pending, 0);
	add_case(s, "stop_deferred", test_rt_actor_fini_deferred_when_stopped_in_handler, 0);
	add_case(s, "spawn", test_rt_spawn_runs_init_on_loop_when_before_and_after_start, 0);
	add_case(s, "flush", test_rt_flush_hook_runs_after_handlers_when_work_done, 0);
	add_case(s, "foreach", test_rt_loop_foreach_actor_lists_live_actors_when_asked, 0);
	add_case(s, "buf_aligned", test_rt_buf_is_aligned_when_off_loop, 0);
	add_case(s, "buf_pool", test_rt_buf_returns_to_its_pool_when_put_on_other_thread, 0);
	add_case(s, "buf_slab", test_rt_buf_shares_a_2m_slab_when_64k_or_more, 0);
	add_case(s, "buf_slab_cap", test_rt_buf_slab_pieces_are_released_when_pool_cap_is_small, 0);
	add_case(s, "msg", test_rt_msg_arena_and_iov_work_when_off_loop, 0);
	add_case(s, "msg_reuse", test_rt_msg_reused_as_new_when_freed_on_loop, 0);
	add_case(s, "proto", test_cfs_msg_tables_round_trip_when_every_type, 0);
	add_case(s, "errno", test_cfs_errname_names_codes_when_own_or_system, 0);
	add_case(s, "log", test_rt_log_prefixes_actor_when_in_handler, 0);
	add_case(s, "shutdown", test_rt_shutdown_runs_fini_and_joins_when_actors_live, 0);
	add_case(s, "shutdown_signal", test_rt_shutdown_works_when_called_from_signal_handler, 0);
	add_case(s, "destroy_unstarted", test_rt_destroy_runs_fini_when_never_started, 0);
	add_case(s, "step", test_rt_loops_step_by_hand_when_not_started, 0);
	add_case(s, "call_ids_wrap", test_rt_call_ids_skip_held_slot_when_old_call_pending, 0);
	add_case(s, "remote_call", test_rt_call_uses_transport_when_node_remote, 0);
	add_case(s, "remote_reply", test_rt_reply_goes_out_on_conn_loop_when_request_remote, 0);
	add_case(s, "remote_misaddressed", test_rt_deliver_answers_errors_when_request_misaddressed,
		 0);
	add_case(s, "forward_by_dst", test_rt_send_routes_by_dst_when_forwarding_request_from_conn,
		 0);
	add_case(s, "send_conn", test_rt_send_conn_pushes_on_conn_when_asked, 0);
	add_case(s, "peer_lost", test_rt_peer_lost_fails_calls_when_node_lost, 0);
	add_case(s, "peer_lost_dirty", test_rt_peer_lost_fails_call_when_entry_memory_was_dirty, 0);
	add_case(s, "resp_callee", test_rt_response_ignored_when_not_from_node_called, 0);
	add_case(s, "clock_before_start", test_rt_clock_fresh_when_actor_spawned_before_start, 0);
	add_case(s, "no_route", test_rt_call_fails_when_no_route_or_busy, 0);
	add_case(s, "transport_init_fails", test_rt_start_fails_when_transport_init_fails, 0);
	add_case(s, "run_loop0", test_rt_run_loop0_serves_in_caller_when_asked, 0);
	add_case(s, "double_reply", test_rt_reply_panics_when_called_twice, SIGABRT);
	add_case(s, "double_free", test_rt_msg_free_panics_when_freed_twice, SIGABRT);
	add_case(s, "stop_lost", test_rt_peer_lost_cancels_calls_when_caller_stopping, 0);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}

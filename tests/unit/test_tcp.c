/* SPDX-License-Identifier: MIT */
/*
 * Tests of the TCP transport (src/net/net.c, src/net/tcp.c) over real sockets
 * on 127.0.0.1 with kernel-chosen ports: two runtimes in one process (a
 * server with two loops running an echo actor, a client with one loop running
 * a driver actor), round trips with payloads of many sizes, many calls in
 * flight, back-pressure against a peer that never reads, malformed frames from
 * a raw socket while a well-behaved client keeps working, peer death failing
 * calls through rt_peer_lost, and reconnecting to a restarted server.
 *
 * The test thread never touches a loop's state: it posts functions to the
 * client loop (rt_loop_post) and waits for their callbacks on a condition
 * variable. Waits have a generous bound only so that a bug fails the test
 * instead of hanging it; nothing asserts on time.
 */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <stddef.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"
#include "net/transport.h"
#include "net/wire.h"
#include "rt/rt.h"

#define SRV_NODE	1u
#define ECHO_LOCAL	CFS_LOCAL(0, 0x10)
#define WAIT_S		60 /* hang guard, not a performance bound */
#define LONG_TIMEOUT_MS 60000

/* DESIGN.md section 2: an array32 claiming 3.6 billion elements. */
static const uint8_t g_trap[17] = {0x26, 0x29, 0x29, 0x29, 0x29, 0x29, 0x29, 0xdd, 0xd6,
				   0x29, 0x29, 0x29, 0x29, 0x29, 0x29, 0x29, 0x8a};

/* ------------------------------------------------------------- waiting */

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned count;
};

static void
waiter_init(struct waiter *w)
{
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->count = 0;
}

static void
waiter_fini(struct waiter *w)
{
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
}

static void
waiter_add(struct waiter *w)
{
	pthread_mutex_lock(&w->mu);
	w->count++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Wait until count >= n; false when the hang guard fired. */
static bool
waiter_wait(struct waiter *w, unsigned n)
{
	struct timespec ts;
	bool ok = true;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_S;
	pthread_mutex_lock(&w->mu);
	while (w->count < n && ok)
		ok = pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0 || w->count >= n;
	pthread_mutex_unlock(&w->mu);
	return w->count >= n;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* --------------------------------------------------------- payload pattern */

static uint8_t
pat(uint32_t i, unsigned seed)
{
	return (uint8_t)(i * 131u + seed * 7u + (i >> 12));
}

static struct rt_buf *
pattern_buf(uint32_t len, unsigned seed)
{
	struct rt_buf *b = rt_buf_get(len ? len : 1);

	if (!b)
		return NULL;
	for (uint32_t i = 0; i < len; i++)
		b->data[i] = pat(i, seed);
	b->len = len;
	return b;
}

static bool
payload_matches(const struct rt_msg *m, uint32_t len, unsigned seed)
{
	uint8_t *p;
	bool ok = true;

	if (m->plen != len)
		return false;
	if (len == 0)
		return true;
	p = malloc(len);
	if (!p || rt_msg_payload_copy(m, 0, p, len) != 0) {
		free(p);
		return false;
	}
	for (uint32_t i = 0; i < len && ok; i++)
		ok = p[i] == pat(i, seed);
	free(p);
	return ok;
}

/* ------------------------------------------------------------ echo server */

/* PING: answer with the same sent_ns, our node id and the request's payload
 * (by reference: the response holds the same buffers). */
static int
echo_on_ping(struct rt_actor *self, struct rt_msg *req)
{
	struct rt_msg *resp = rt_msg_new(CFS_MSG_PING_RESP);
	int rc;

	if (!resp)
		return -ENOMEM;
	RT_BODY(resp, ping_resp)->sent_ns = RT_BODY(req, ping)->sent_ns;
	RT_BODY(resp, ping_resp)->node_id = rt_node_id(rt_loop_rt(rt_actor_loop(self)));
	for (uint32_t i = 0; i < req->iovcnt; i++) {
		rc = rt_msg_add_iov(resp, req->iov[i].buf, req->iov[i].off, req->iov[i].len);
		if (rc != 0) {
			rt_msg_free(&resp);
			return rc;
		}
	}
	rt_reply(req, 0, resp);
	return 0;
}

static const rt_handler_fn echo_handlers[CFS_MSG__COUNT] = {
	[CFS_MSG_PING] = echo_on_ping,
};

static const struct rt_actor_kind echo_kind = {
	.name = "echo",
	.state_size = 0,
	.handlers = echo_handlers,
};

struct srv {
	struct rt *rt;
	struct net *net;
	uint16_t port;
	char ep[64];
};

/* A server of `loops` loops with the echo actor, configured as *base says
 * (its listen address aside). */
static void
srv_start_cfg(struct srv *s, unsigned loops, uint16_t port, const struct net_config *base)
{
	struct rt_config rc = {.loops = loops, .node_id = SRV_NODE};
	struct net_config nc = *base;
	char listen[64];
	cfs_addr_t addr;

	memset(s, 0, sizeof(*s));
	ck_assert_int_eq(rt_create(&rc, &s->rt), 0);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	nc.listen = listen;
	ck_assert_int_eq(net_create(s->rt, &nc, &s->net), 0);
	s->port = net_listen_port(s->net);
	ck_assert_uint_ne(s->port, 0);
	if (port)
		ck_assert_uint_eq(s->port, port);
	snprintf(s->ep, sizeof(s->ep), "127.0.0.1:%u", s->port);
	ck_assert_int_eq(rt_spawn(rt_loop_at(s->rt, 0), &echo_kind, NULL, ECHO_LOCAL, &addr), 0);
	ck_assert_int_eq(rt_start(s->rt, false), 0);
}

/* max_outq 0: the default. */
static void
srv_start_outq(struct srv *s, unsigned loops, uint16_t port, size_t max_outq)
{
	struct net_config nc;

	net_config_init(&nc);
	if (max_outq)
		nc.max_outq_bytes = max_outq;
	srv_start_cfg(s, loops, port, &nc);
}

static void
srv_start(struct srv *s, unsigned loops, uint16_t port)
{
	srv_start_outq(s, loops, port, 0);
}

static void
srv_stop(struct srv *s)
{
	rt_shutdown(s->rt);
	rt_destroy(&s->rt);
	net_destroy(&s->net);
}

/* A server of `loops` loops whose connections are served by the loops in
 * conn_loops, with the echo actor on loop 0; not started, so that a test
 * may spawn more actors first. */
static void
srv_create_conn_loops(struct srv *s, unsigned loops, uint64_t conn_loops, size_t max_outq)
{
	struct rt_config rc = {.loops = loops, .node_id = SRV_NODE};
	struct net_config nc;
	cfs_addr_t addr;

	memset(s, 0, sizeof(*s));
	ck_assert_int_eq(rt_create(&rc, &s->rt), 0);
	net_config_init(&nc);
	nc.listen = "127.0.0.1:0";
	if (max_outq)
		nc.max_outq_bytes = max_outq;
	ck_assert_int_eq(net_create(s->rt, &nc, &s->net), 0);
	ck_assert_int_eq(net_set_conn_loops(s->net, conn_loops), 0);
	s->port = net_listen_port(s->net);
	ck_assert_int_eq(rt_spawn(rt_loop_at(s->rt, 0), &echo_kind, NULL, ECHO_LOCAL, &addr), 0);
}

/* The sum over all loops of one net_stats counter (at byte offset off). */
static uint64_t
stat_sum(struct rt *rt, struct net *net, size_t off)
{
	struct net_stats st;
	uint64_t sum = 0;

	for (unsigned i = 0; i < rt_loop_count(rt); i++) {
		ck_assert_int_eq(net_stats(net, i, &st), 0);
		sum += *(const uint64_t *)((const char *)&st + off);
	}
	return sum;
}
#define STAT_SUM(rt, net, field) stat_sum((rt), (net), offsetof(struct net_stats, field))

static uint64_t
srv_proto_errors(struct srv *s)
{
	return STAT_SUM(s->rt, s->net, proto_errors);
}

/* ------------------------------------------------------- client and driver */

struct cli {
	struct rt *rt;
	struct net *net;
	struct rt_actor *drv;		     /* the driver on loop 0 */
	struct rt_actor *drvs[RT_MAX_LOOPS]; /* one per loop, set by the driver's init */
};

static int
drv_init(struct rt_actor *self, const void *arg)
{
	((struct cli *)arg)->drvs[rt_loop_index(rt_actor_loop(self))] = self;
	return 0;
}

static const rt_handler_fn drv_handlers[CFS_MSG__COUNT];

static const struct rt_actor_kind drv_kind = {
	.name = "driver",
	.state_size = 0,
	.init = drv_init,
	.handlers = drv_handlers,
};

static void
cli_start_loops(struct cli *c, const struct net_config *nc, unsigned loops)
{
	struct rt_config rc = {.loops = loops, .node_id = 0};
	cfs_addr_t addr;

	memset(c, 0, sizeof(*c));
	ck_assert_int_eq(rt_create(&rc, &c->rt), 0);
	ck_assert_int_eq(net_create(c->rt, nc, &c->net), 0);
	for (unsigned i = 0; i < loops; i++) {
		ck_assert_int_eq(rt_spawn(rt_loop_at(c->rt, i), &drv_kind, c, 0, &addr), 0);
		ck_assert_ptr_nonnull(c->drvs[i]);
	}
	c->drv = c->drvs[0];
	ck_assert_int_eq(rt_start(c->rt, false), 0);
}

static void
cli_start_cfg(struct cli *c, const struct net_config *nc)
{
	cli_start_loops(c, nc, 1);
}

static void
cli_start(struct cli *c)
{
	struct net_config nc;

	net_config_init(&nc);
	nc.reconnect_min_ms = 10;
	nc.reconnect_max_ms = 100;
	cli_start_cfg(c, &nc);
}

static void
cli_stop(struct cli *c)
{
	rt_shutdown(c->rt);
	rt_destroy(&c->rt);
	net_destroy(&c->net);
}

/* One rt_call and its outcome. */
struct rpc {
	struct cli *c;
	cfs_addr_t dst;
	uint32_t len;  /* payload bytes to send, echoed back */
	uint32_t segs; /* payload split into this many iovs (0: 1) */
	unsigned seed;
	uint32_t timeout_ms;
	unsigned loop; /* client loop that calls */
	struct waiter *w;
	bool hold; /* keep the answer's payload buffers (held, nheld) */
	/* results */
	int rc;
	bool done;
	bool payload_ok;
	struct rt_iov held[4];
	uint32_t nheld;
	uint32_t node_id;
	uint64_t sent_ns;
};

static void
rpc_done(struct rt_actor *self, int rc, struct rt_msg *resp, void *arg)
{
	struct rpc *r = arg;

	r->rc = rc;
	if (resp) {
		r->payload_ok = payload_matches(resp, r->len, r->seed);
		for (uint32_t i = 0; r->hold && i < resp->iovcnt && i < 4; i++) {
			rt_buf_ref(resp->iov[i].buf);
			r->held[r->nheld++] = resp->iov[i];
		}
		r->node_id = RT_BODY(resp, ping_resp)->node_id;
		r->sent_ns = RT_BODY(resp, ping_resp)->sent_ns;
	}
	r->done = true;
	waiter_add(r->w);
}

/* On the client loop: build the request and call. */
static void
rpc_issue(struct rpc *r)
{
	struct rt_msg *m = rt_msg_new(CFS_MSG_PING);
	uint32_t segs = r->segs ? r->segs : 1;
	struct rt_buf *b;
	int rc = -ENOMEM;

	if (!m)
		goto out_fail;
	RT_BODY(m, ping)->sent_ns = 1000 + r->seed;
	if (r->len) {
		b = pattern_buf(r->len, r->seed);
		if (!b)
			goto out_free;
		/* Split into segs slices of one buffer: many iovs per frame. */
		for (uint32_t i = 0, off = 0; i < segs; i++) {
			uint32_t n = i + 1 == segs ? r->len - off : r->len / segs;

			rc = rt_msg_add_iov(m, b, off, n);
			if (rc != 0)
				break;
			off += n;
		}
		rt_buf_put(&b);
		if (rc != 0)
			goto out_free;
	}
	rc = rt_call(r->c->drvs[r->loop], r->dst, m,
		     r->timeout_ms ? r->timeout_ms : LONG_TIMEOUT_MS, rpc_done, r);
	if (rc == 0)
		return;
out_free:
	rt_msg_free(&m);
out_fail:
	r->rc = rc;
	r->done = true;
	waiter_add(r->w);
}

struct rpc_batch {
	struct rpc *r;
	unsigned n;
};

static void
rpc_issue_all(void *arg)
{
	/* A copy: once the last call completes, the waiting thread's batch is gone. */
	struct rpc_batch b = *(struct rpc_batch *)arg;

	for (unsigned i = 0; i < b.n; i++)
		rpc_issue(&b.r[i]);
}

/* Run n calls, all issued in one loop iteration (so that they really are in
 * flight together), and wait for all of them. */
static void
rpc_run(struct cli *c, struct rpc *r, unsigned n)
{
	struct rpc_batch *batches;
	struct waiter w;
	unsigned i, j, nb;

	waiter_init(&w);
	for (i = 0; i < n; i++) {
		r[i].c = c;
		r[i].w = &w;
		r[i].done = false;
		r[i].payload_ok = false;
	}
	/* Consecutive calls of one loop form one batch (one post). A batch is
	 * read by its loop before any of its calls can complete, so it outlives
	 * that read: the wait below needs all of them. */
	batches = calloc(n, sizeof(*batches));
	ck_assert_ptr_nonnull(batches);
	for (i = 0, nb = 0; i < n; i = j, nb++) {
		batches[nb].r = &r[i];
		for (j = i; j < n && r[j].loop == r[i].loop; j++)
			batches[nb].n++;
		ck_assert_int_eq(
			rt_loop_post(rt_loop_at(c->rt, r[i].loop), rpc_issue_all, &batches[nb]), 0);
	}
	ck_assert_msg(waiter_wait(&w, n), "calls did not complete");
	waiter_fini(&w);
	free(batches);
}

static int
call_once(struct cli *c, cfs_addr_t dst, uint32_t len, unsigned seed)
{
	struct rpc r = {.dst = dst, .len = len, .seed = seed};

	rpc_run(c, &r, 1);
	if (r.rc == 0)
		ck_assert_msg(r.payload_ok, "payload of %u bytes differs", len);
	return r.rc;
}

/* --------------------------------------------------------------- raw sockets */

static int
raw_connect(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {.tv_sec = WAIT_S};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* A listener that is never accepted from: the kernel completes handshakes and
 * buffers a little, then the peer's writes stall. */
static int
raw_listen(uint16_t *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* True when the server closed the connection (EOF or reset), false when the
 * hang guard (SO_RCVTIMEO) fired first. Bytes the server sends are skipped. */
static bool
raw_wait_closed(int fd)
{
	char buf[4096];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0 && errno != EINTR)
			return false;
	}
}

static void
raw_write(int fd, const void *p, size_t n)
{
	ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
}

static void ping_frame(struct wire_buf *wb);

/* True when a PING sent on fd gets an answer, false when the server closed
 * fd (or the hang guard fired). */
static bool
raw_ping_answered(int fd)
{
	struct wire_buf wb;
	char buf[256];
	ssize_t n;
	bool sent;

	ping_frame(&wb);
	sent = send(fd, wb.p, wb.len, MSG_NOSIGNAL) == (ssize_t)wb.len;
	wire_buf_fini(&wb);
	if (!sent)
		return false;
	do {
		n = read(fd, buf, sizeof(buf));
	} while (n < 0 && errno == EINTR);
	return n > 0;
}

/* A valid PING frame announcing plen payload bytes in wb (the header only:
 * the payload is for the caller to send, or not). */
static void ping_frame_to(struct wire_buf *wb, uint32_t plen, uint64_t local, uint32_t src_node);

static void
ping_frame_plen(struct wire_buf *wb, uint32_t plen)
{
	ping_frame_to(wb, plen, ECHO_LOCAL, 0);
}

/* A PING frame for actor `local` announcing plen bytes of payload (the
 * header only in wb; the payload bytes are the caller's to send), from node
 * src_node (0: a client). */
static void
ping_frame_to(struct wire_buf *wb, uint32_t plen, uint64_t local, uint32_t src_node)
{
	struct rt_msg *m = rt_msg_new(CFS_MSG_PING);
	struct rt_buf *b;

	ck_assert_ptr_nonnull(m);
	if (plen) {
		b = rt_buf_get(plen);
		ck_assert_ptr_nonnull(b);
		b->len = plen;
		ck_assert_int_eq(rt_msg_add_iov(m, b, 0, plen), 0);
		rt_buf_put(&b);
	}
	m->req_id = 77;
	m->src = CFS_ADDR(src_node, 0x01000100);
	m->dst = CFS_ADDR(CFS_NODE_ANY, local);
	wire_buf_init(wb);
	ck_assert_int_eq(wire_encode(wb, m, NULL), 0);
	rt_msg_free(&m);
}

/* A valid PING frame (no payload) in wb. */
static void
ping_frame(struct wire_buf *wb)
{
	ping_frame_plen(wb, 0);
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int
sbuf_write(void *data, const char *buf, size_t len)
{
	msgpack_sbuffer_write(data, buf, len);
	return 0;
}

/* ------------------------------------------------------------------- tests */

START_TEST(test_tcp_round_trip_when_alias)
{
	struct srv s;
	struct cli c;
	uint32_t alias, again;
	struct rpc r = {.len = 0, .seed = 3};

	srv_start(&s, 2, 0);
	cli_start(&c);
	ck_assert_int_eq(net_connect_alias(c.net, s.ep, &alias), 0);
	ck_assert_uint_ge(alias, NET_ALIAS_BASE);
	ck_assert_int_eq(net_connect_alias(c.net, s.ep, &again), 0);
	ck_assert_uint_eq(again, alias);
	r.dst = CFS_ADDR(alias, ECHO_LOCAL);
	rpc_run(&c, &r, 1);
	ck_assert_int_eq(r.rc, 0);
	ck_assert_uint_eq(r.node_id, SRV_NODE);
	ck_assert_uint_eq(r.sent_ns, 1003);
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_tcp_round_trip_when_peer_named_by_node_id)
{
	struct srv s;
	struct cli c;
	struct net_stats st;

	srv_start(&s, 2, 0);
	cli_start(&c);
	ck_assert_int_eq(net_add_peer(c.net, SRV_NODE, s.ep), 0);
	ck_assert_int_eq(call_once(&c, CFS_ADDR(SRV_NODE, ECHO_LOCAL), 10, 1), 0);
	ck_assert_int_eq(call_once(&c, CFS_ADDR(SRV_NODE, ECHO_LOCAL), 10, 2), 0);
	/* One connection carried both calls, and the counters saw them. */
	ck_assert_int_eq(net_stats(c.net, 0, &st), 0);
	ck_assert_uint_eq(st.conns_connected, 1);
	ck_assert_uint_eq(st.conns_open, 1);
	ck_assert_uint_eq(st.frames_out, 2);
	ck_assert_uint_eq(st.frames_in, 2);
	ck_assert_uint_gt(st.bytes_out, 20);
	ck_assert_int_eq(net_stats(c.net, 1, &st), -EINVAL);
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_tcp_each_loop_connects_when_client_has_many_loops)
{
	struct net_config nc;
	struct net_stats st;
	struct srv s;
	struct cli c;
	struct rpc r[4 * 16];
	uint64_t accepted = 0, open = 0;
	uint32_t alias;

	srv_start(&s, 2, 0);
	net_config_init(&nc);
	cli_start_loops(&c, &nc, 4);
	ck_assert_int_eq(net_connect_alias(c.net, s.ep, &alias), 0);
	memset(r, 0, sizeof(r));
	for (unsigned i = 0; i < 64; i++) {
		r[i].dst = CFS_ADDR(alias, ECHO_LOCAL);
		r[i].loop = i / 16;
		r[i].len = 3000 + i;
		r[i].seed = i;
	}
	rpc_run(&c, r, 64);
	for (unsigned i = 0; i < 64; i++) {
		ck_assert_msg(r[i].rc == 0, "call %u: %d", i, r[i].rc);
		ck_assert(r[i].payload_ok);
	}
	/* Every client loop opened its own connection; the server's loop 0
	 * accepted all four and handed them to its loops in turn, two each, and
	 * the replies on loop 1's connections went back through loop 1 even
	 * though the echo actor lives on loop 0. */
	for (unsigned i = 0; i < 4; i++) {
		ck_assert_int_eq(net_stats(c.net, i, &st), 0);
		ck_assert_uint_eq(st.conns_connected, 1);
		ck_assert_uint_eq(st.frames_in, 16);
	}
	for (unsigned i = 0; i < 2; i++) {
		ck_assert_int_eq(net_stats(s.net, i, &st), 0);
		ck_assert_uint_eq(st.conns_accepted, 2);
		ck_assert_uint_eq(st.frames_in, 32);
		accepted += st.conns_accepted;
		open += st.conns_open;
	}
	ck_assert_uint_eq(accepted, 4);
	ck_assert_uint_eq(open, 4);
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

/* net_set_conn_loops: accepted connections go only to the loops in the mask
 * (a node hands them to the loops of its storage targets); the accepting
 * loop 0 keeps none when it is not in the mask, and the replies of an actor
 * on loop 0 still leave through the connection's own loop. */
START_TEST(test_tcp_conns_owned_by_chosen_loops_when_mask_set)
{
	struct rt_config rcfg = {.loops = 3, .node_id = SRV_NODE};
	struct net_config nc;
	struct net_stats st;
	struct srv s;
	struct cli c;
	struct rpc r[4 * 8];
	cfs_addr_t addr;
	uint32_t alias;

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(rt_create(&rcfg, &s.rt), 0);
	net_config_init(&nc);
	nc.listen = "127.0.0.1:0";
	ck_assert_int_eq(net_create(s.rt, &nc, &s.net), 0);
	ck_assert_int_eq(net_set_conn_loops(s.net, 0), -EINVAL);
	ck_assert_int_eq(net_set_conn_loops(s.net, 1ull << 3), -EINVAL); /* no such loop */
	ck_assert_int_eq(net_set_conn_loops(s.net, 1ull << 2 | 1ull << 5), 0);
	s.port = net_listen_port(s.net);
	snprintf(s.ep, sizeof(s.ep), "127.0.0.1:%u", s.port);
	ck_assert_int_eq(rt_spawn(rt_loop_at(s.rt, 0), &echo_kind, NULL, ECHO_LOCAL, &addr), 0);
	ck_assert_int_eq(rt_start(s.rt, false), 0);

	net_config_init(&nc);
	cli_start_loops(&c, &nc, 4);
	ck_assert_int_eq(net_connect_alias(c.net, s.ep, &alias), 0);
	memset(r, 0, sizeof(r));
	for (unsigned i = 0; i < 32; i++) {
		r[i].dst = CFS_ADDR(alias, ECHO_LOCAL);
		r[i].loop = i / 8;
		r[i].len = 1000 + i;
		r[i].seed = i;
	}
	rpc_run(&c, r, 32);
	for (unsigned i = 0; i < 32; i++) {
		ck_assert_msg(r[i].rc == 0, "call %u: %d", i, r[i].rc);
		ck_assert(r[i].payload_ok);
	}
	for (unsigned i = 0; i < 3; i++) {
		ck_assert_int_eq(net_stats(s.net, i, &st), 0);
		ck_assert_uint_eq(st.conns_accepted, i == 2 ? 4 : 0);
		/* (frames_out is counted after the write returns: racy here) */
		ck_assert_uint_eq(st.frames_in, i == 2 ? 32 : 0);
	}
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_tcp_wrong_node_refused_when_id_names_another_node)
{
	struct srv s;
	struct cli c;

	srv_start(&s, 1, 0);
	cli_start(&c);
	/* Node 7 is configured at the server's endpoint: the server is node 1. */
	ck_assert_int_eq(net_add_peer(c.net, 7, s.ep), 0);
	ck_assert_int_eq(call_once(&c, CFS_ADDR(7, ECHO_LOCAL), 0, 0), -CFS_EWRONGNODE);
	/* An unknown actor on the right node is the runtime's answer, too. */
	ck_assert_int_eq(net_add_peer(c.net, SRV_NODE, s.ep), 0);
	ck_assert_int_eq(call_once(&c, CFS_ADDR(SRV_NODE, CFS_LOCAL(0, 0x999)), 0, 0),
			 -CFS_ENOACTOR);
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_tcp_payload_exact_when_sizes_vary)
{
	static const uint32_t sizes[] = {0, 1, 4095, 4096, 65537, (1u << 20), (1u << 20) + 3};
	struct srv s;
	struct cli c;
	uint32_t alias;

	srv_start(&s, 2, 0);
	cli_start(&c);
	ck_assert_int_eq(net_connect_alias(c.net, s.ep, &alias), 0);
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		ck_assert_msg(call_once(&c, CFS_ADDR(alias, ECHO_LOCAL), sizes[i], i) == 0,
			      "size %u", sizes[i]);
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

/* Large and small frames interleaved on one connection, many in flight: after
 * a large payload the receiver reads the next header in a short window, and
 * frames without payload, small ones and large ones must all still be cut
 * exactly, whatever lands in which read. */
START_TEST(test_tcp_payload_exact_when_large_and_small_frames_interleave)
{
	static const uint32_t sizes[] = {(1u << 20) + 3, 0, 100, 70000, 5, 65536, 0, 200000};
	struct rpc r[48];
	struct srv s;
	struct cli c;
	uint32_t alias;

	srv_start(&s, 2, 0);
	cli_start(&c);
	ck_assert_int_eq(net_connect_alias(c.net, s.ep, &alias), 0);
	memset(r, 0, sizeof(r));
	for (unsigned i = 0; i < 48; i++) {
		r[i].dst = CFS_ADDR(alias, ECHO_LOCAL);
		r[i].len = sizes[i % 8];
		r[i].seed = 100 + i;
	}
	rpc_run(&c, r, 48);
	for (unsigned i = 0; i < 48; i++) {
		ck_assert_msg(r[i].rc == 0, "call %u: %d", i, r[i].rc);
		ck_assert_msg(r[i].payload_ok, "call %u: payload of %u bytes differs", i, r[i].len);
	}
	ck_assert_uint_eq(srv_proto_errors(&s), 0);
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

/* Answers of 16 KiB and more that arrive whole in one read are handed up as
 * slices of the connection's receive buffer (no copy). Holding them must not
 * let the reads that follow write over them: every held answer is checked
 * only after all 96 arrived, megabytes later. */
START_TEST(test_tcp_answers_held_intact_when_payloads_sliced)
{
	struct srv s;
	struct cli c;
	struct rpc r[96];
	uint32_t alias;
	unsigned sliced = 0;

	srv_start(&s, 2, 0);
	cli_start(&c);
	ck_assert_int_eq(net_connect_alias(c.net, s.ep, &alias), 0);
	memset(r, 0, sizeof(r));
	for (unsigned i = 0; i < 96; i++) {
		r[i].dst = CFS_ADDR(alias, ECHO_LOCAL);
		r[i].len = 16384 + (i * 5171u) % 20000;
		r[i].seed = 300 + i;
		r[i].hold = true;
	}
	rpc_run(&c, r, 96);
	for (unsigned i = 0; i < 96; i++) {
		uint32_t pos = 0;

		ck_assert_msg(r[i].rc == 0, "call %u: %d", i, r[i].rc);
		ck_assert_msg(r[i].nheld >= 1, "call %u: no payload held", i);
		/* A buffer of its own starts at 0; a slice sits behind a header. */
		if (r[i].held[0].off != 0)
			sliced++;
		for (uint32_t k = 0; k < r[i].nheld; k++) {
			const struct rt_iov *v = &r[i].held[k];

			for (uint32_t j = 0; j < v->len; j++, pos++)
				ck_assert_msg(v->buf->data[v->off + j] == pat(pos, r[i].seed),
					      "call %u: held byte %u overwritten", i, pos);
			rt_buf_put(&r[i].held[k].buf);
		}
		ck_assert_uint_eq(pos, r[i].len);
	}
	ck_assert_msg(sliced > 0, "no answer was handed up as a slice of the receive buffer");
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_tcp_all_complete_when_64_in_flight)
{
	struct srv s;
	struct cli c;
	struct rpc r[64];
	uint32_t alias;

	srv_start(&s, 2, 0);
	cli_start(&c);
	ck_assert_int_eq(net_connect_alias(c.net, s.ep, &alias), 0);
	memset(r, 0, sizeof(r));
	for (unsigned i = 0; i < 64; i++) {
		r[i].dst = CFS_ADDR(alias, ECHO_LOCAL);
		r[i].len = (i % 4 == 0) ? 70000 + i : 100 + i; /* payloads of two sizes */
		r[i].seed = i;
	}
	rpc_run(&c, r, 64);
	for (unsigned i = 0; i < 64; i++) {
		ck_assert_msg(r[i].rc == 0, "call %u: %d", i, r[i].rc);
		ck_assert_msg(r[i].payload_ok, "call %u payload", i);
		ck_assert_uint_eq(r[i].sent_ns, 1000 + i);
	}
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_tcp_payload_exact_when_frames_exceed_iov_max)
{
	struct srv s;
	struct cli c;
	struct rpc r[3];
	uint32_t alias;

	srv_start(&s, 1, 0);
	cli_start(&c);
	ck_assert_int_eq(net_connect_alias(c.net, s.ep, &alias), 0);
	/* 3 x 700 segments in one flush: more than one writev's IOV_MAX. */
	memset(r, 0, sizeof(r));
	for (unsigned i = 0; i < 3; i++) {
		r[i].dst = CFS_ADDR(alias, ECHO_LOCAL);
		r[i].len = 700 * 37 + i;
		r[i].segs = 700;
		r[i].seed = 40 + i;
	}
	rpc_run(&c, r, 3);
	for (unsigned i = 0; i < 3; i++) {
		ck_assert_int_eq(r[i].rc, 0);
		ck_assert(r[i].payload_ok);
	}
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

/*
 * Back-pressure: one-way sends of 16 KiB to a peer that never reads, with a
 * 64 KiB queue bound. Sends succeed while the kernel's socket buffers absorb
 * the bytes; then the transport refuses with -CFS_EBUSY, and keeps refusing
 * (the bytes written stop growing), and an rt_call is refused the same way.
 */
#define BP_MSG (16u << 10)

struct bp {
	struct cli *c;
	cfs_addr_t dst;
	bool call; /* this attempt is an rt_call, not an rt_send */
	int rc;
	struct waiter w;
};

static void
bp_call_done(struct rt_actor *self, int rc, struct rt_msg *resp, void *arg)
{
}

static void
bp_try(void *arg)
{
	struct bp *b = arg;
	struct rt_msg *m = rt_msg_new(CFS_MSG_PING);
	struct rt_buf *buf = pattern_buf(BP_MSG, 1);

	if (!m || !buf || rt_msg_add_iov(m, buf, 0, BP_MSG) != 0) {
		b->rc = -ENOMEM;
	} else if (b->call) {
		b->rc = rt_call(b->c->drv, b->dst, m, LONG_TIMEOUT_MS, bp_call_done, NULL);
	} else {
		m->dst = b->dst;
		m->flags = RT_MSG_F_ONEWAY;
		b->rc = rt_send(b->c->drv, m);
	}
	if (b->rc != 0)
		rt_msg_free(&m);
	if (buf)
		rt_buf_put(&buf);
	waiter_add(&b->w);
}

static int
bp_attempt(struct bp *b, bool call)
{
	unsigned target = b->w.count + 1;

	b->call = call;
	ck_assert_int_eq(rt_loop_post(rt_loop_at(b->c->rt, 0), bp_try, b), 0);
	ck_assert(waiter_wait(&b->w, target));
	return b->rc;
}

/* Name node `node` of c's runtime as 127.0.0.1:port. */
static void
cli_peer_at(struct cli *c, uint32_t node, uint16_t port)
{
	char ep[64];

	snprintf(ep, sizeof(ep), "127.0.0.1:%u", port);
	ck_assert_int_eq(net_add_peer(c->net, node, ep), 0);
}

/* A client with a 64 KiB queue bound whose peer 5 is a raw listener that
 * never reads; returns the listener (close it after cli_stop). */
static int
cli_start_to_unread_peer(struct cli *c)
{
	struct net_config nc;
	uint16_t port;
	int lfd = raw_listen(&port);

	net_config_init(&nc);
	nc.max_outq_bytes = 64u << 10;
	cli_start_cfg(c, &nc);
	cli_peer_at(c, 5, port);
	return lfd;
}

START_TEST(test_tcp_send_refused_busy_when_peer_does_not_read)
{
	struct net_stats st;
	struct cli c;
	struct bp b = {0};
	uint64_t last_out = 0;
	unsigned sent = 0, stable = 0;
	int lfd = cli_start_to_unread_peer(&c);
	int rc;

	b.c = &c;
	b.dst = CFS_ADDR(5, ECHO_LOCAL);
	waiter_init(&b.w);
	/* 100000 x 16 KiB = 1.6 GiB: far more than socket buffers hold. */
	for (unsigned i = 0; i < 100000 && stable < 20; i++) {
		rc = bp_attempt(&b, false);
		if (rc == 0) {
			sent++;
			stable = 0;
			continue;
		}
		ck_assert_int_eq(rc, -CFS_EBUSY);
		ck_assert_int_eq(net_stats(c.net, 0, &st), 0);
		stable = st.bytes_out == last_out ? stable + 1 : 0;
		last_out = st.bytes_out;
		sleep_ms(5);
	}
	ck_assert_uint_ge(stable, 20);
	/* The queue bound admitted several frames; the kernel took more. */
	ck_assert_uint_ge(sent, 4);
	ck_assert_uint_gt(last_out, 4 * BP_MSG);
	ck_assert_int_eq(bp_attempt(&b, true), -CFS_EBUSY);
	ck_assert_int_eq(net_stats(c.net, 0, &st), 0);
	ck_assert_uint_ge(st.busy, 21);
	cli_stop(&c);
	waiter_fini(&b.w);
	close(lfd);
}
END_TEST

/* Small frames to a peer that never reads: one post sends up to 10000 of
 * them (one-way PINGs without payload), stopping at the first refusal. */
struct smallq {
	struct cli *c;
	cfs_addr_t dst;
	unsigned sent; /* in this post */
	int rc;	       /* the refusal, or 0 */
	struct waiter w;
};

static void
smallq_try(void *arg)
{
	struct smallq *q = arg;

	q->sent = 0;
	q->rc = 0;
	while (q->sent < 10000) {
		struct rt_msg *m = rt_msg_new(CFS_MSG_PING);

		if (!m) {
			q->rc = -ENOMEM;
			break;
		}
		m->dst = q->dst;
		m->flags = RT_MSG_F_ONEWAY;
		q->rc = rt_send(q->c->drv, m);
		if (q->rc != 0) {
			rt_msg_free(&m);
			break;
		}
		q->sent++;
	}
	waiter_add(&q->w);
}

/* The queue bound counts what a queued frame holds, not only its bytes:
 * 18-byte frames waiting for a peer that never reads each keep a message,
 * so 64 KiB of bound must not pin thousands of them. */
START_TEST(test_tcp_queue_bound_counts_frames_when_small_frames_wait)
{
	struct net_stats st;
	struct cli c;
	struct smallq q = {0};
	uint64_t total = 0, last_out = UINT64_MAX;
	unsigned stable = 0, posts = 0;
	int lfd = cli_start_to_unread_peer(&c);

	q.c = &c;
	q.dst = CFS_ADDR(5, ECHO_LOCAL);
	waiter_init(&q.w);
	/* Until the kernel takes no more and the queue refuses at once. */
	while (stable < 20) {
		ck_assert_int_eq(rt_loop_post(rt_loop_at(c.rt, 0), smallq_try, &q), 0);
		ck_assert(waiter_wait(&q.w, ++posts));
		total += q.sent;
		if (q.rc != 0)
			ck_assert_int_eq(q.rc, -CFS_EBUSY);
		ck_assert_int_eq(net_stats(c.net, 0, &st), 0);
		stable = q.rc != 0 && q.sent == 0 && st.bytes_out == last_out ? stable + 1 : 0;
		last_out = st.bytes_out;
		ck_assert_uint_lt(posts, 100000);
		if (q.rc != 0)
			sleep_ms(5);
	}
	/* What waits is what was accepted minus what was written. */
	ck_assert_uint_gt(total, st.frames_out);
	ck_assert_uint_le(total - st.frames_out, (64u << 10) / 512 + 1);
	cli_stop(&c);
	waiter_fini(&q.w);
	close(lfd);
}
END_TEST

/* A send queue that a burst grew gives its ring back once it has drained:
 * small frames queue for a peer that reads nothing until the ring holds
 * 16384 entries or more, then the peer reads them all. */
START_TEST(test_tcp_send_queue_ring_given_back_when_burst_drained)
{
	struct net_config nc;
	struct net_stats st = {0};
	struct cli c;
	struct smallq q = {0};
	uint64_t total = 0;
	uint16_t port;
	unsigned posts = 0;
	static char buf[1 << 16];
	int lfd = raw_listen(&port), fd;

	net_config_init(&nc);
	nc.max_outq_bytes = 1u << 30; /* the bound is not what this is about */
	cli_start_cfg(&c, &nc);
	cli_peer_at(&c, 5, port);
	q.c = &c;
	q.dst = CFS_ADDR(5, ECHO_LOCAL);
	waiter_init(&q.w);
	/* The kernel's socket buffers take megabytes of them first. */
	while (net_txq_slots(c.net) < 16384) {
		ck_assert_int_eq(rt_loop_post(rt_loop_at(c.rt, 0), smallq_try, &q), 0);
		ck_assert(waiter_wait(&q.w, ++posts));
		ck_assert_int_eq(q.rc, 0);
		total += q.sent;
		ck_assert_uint_lt(posts, 1000);
	}
	fd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(fd, 0);
	for (int idle = 0; idle < 10000;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		ck_assert(n != 0);
		ck_assert_int_eq(net_stats(c.net, 0, &st), 0);
		if (st.frames_out == total && net_txq_slots(c.net) <= 256)
			break;
		if (n < 0) {
			idle++;
			sleep_ms(1);
		}
	}
	ck_assert_uint_eq(st.frames_out, total);
	ck_assert_uint_le(net_txq_slots(c.net), 256);
	cli_stop(&c);
	waiter_fini(&q.w);
	close(fd);
	close(lfd);
}
END_TEST

static long
rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	}
	if (f)
		fclose(f);
	return v;
}

struct rss_peak {
	volatile bool stop;
	long peak;
	pthread_t th;
};

static void *
rss_peak_main(void *arg)
{
	struct rss_peak *s = arg;

	while (!s->stop) {
		long r = rss_kib();

		if (r > s->peak)
			s->peak = r;
		sleep_ms(2);
	}
	return NULL;
}

static void
block_loop_ms(void *arg)
{
	sleep_ms((unsigned)(uintptr_t)arg);
}

/* N PINGs written at once on a raw connection to s that never reads the
 * answers; loop `loop` of s reads them, and loop 0 is kept busy block_ms
 * first (0: not). Returns by how much s grew meanwhile (KiB, peak RSS), with
 * that loop's counters in *st once all were read. */
static long
flood_growth_kib(struct srv *s, unsigned loop, unsigned block_ms, struct net_stats *st)
{
	enum { N = 1 << 20 };
	struct rss_peak rp = {0};
	struct wire_buf wb;
	uint8_t *flood;
	long base;
	int fd;

	ping_frame(&wb);
	flood = malloc(wb.len * N);
	ck_assert_ptr_nonnull(flood);
	for (size_t i = 0; i < N; i++)
		memcpy(flood + i * wb.len, wb.p, wb.len);
	fd = raw_connect(s->port);
	sleep_ms(50);
	base = rss_kib();
	rp.peak = base;
	ck_assert_int_eq(pthread_create(&rp.th, NULL, rss_peak_main, &rp), 0);
	if (block_ms)
		ck_assert_int_eq(rt_loop_post(rt_loop_at(s->rt, 0), block_loop_ms,
					      (void *)(uintptr_t)block_ms),
				 0);
	raw_write(fd, flood, wb.len * N);
	memset(st, 0, sizeof(*st));
	while (st->frames_in < N) {
		sleep_ms(5);
		ck_assert_int_eq(net_stats(s->net, loop, st), 0);
	}
	sleep_ms(200);
	rp.stop = true;
	pthread_join(rp.th, NULL);
	close(fd);
	free(flood);
	wire_buf_fini(&wb);
	return rp.peak - base;
}

/* A peer pipelining small requests faster than the loop handles them, and
 * never reading the answers: the server stops reading while its backlog is
 * long, so what it holds stays bounded (without the pause: ~400 MiB for
 * these 18 MiB of requests), and it still handles every request. */
START_TEST(test_tcp_server_memory_bounded_when_peer_floods_requests)
{
	struct net_stats st;
	struct srv s;
	long grew;

	srv_start_outq(&s, 1, 0, 64u << 10);
	grew = flood_growth_kib(&s, 0, 0, &st);
	srv_stop(&s);
	ck_assert_msg(grew < 64 * 1024, "server grew by %ld KiB", grew);
	ck_assert_uint_gt(st.rx_pauses, 0);
}
END_TEST

/* The same flood read by loop 1 for an actor of loop 0, which is busy: what
 * loop 1 hands over waits in loop 0's inbox, which counts as backlog too, so
 * loop 1 stops reading (without it: ~350 MiB, the flood in memory). */
START_TEST(test_tcp_server_memory_bounded_when_flood_is_for_another_loop)
{
	struct net_stats st;
	struct srv s;
	long grew;

	srv_create_conn_loops(&s, 2, 1u << 1, 64u << 10);
	ck_assert_int_eq(rt_start(s.rt, false), 0);
	grew = flood_growth_kib(&s, 1, 1500, &st);
	srv_stop(&s);
	ck_assert_msg(grew < 64 * 1024, "server grew by %ld KiB", grew);
	ck_assert_uint_gt(st.rx_pauses, 0);
}
END_TEST

/* Loop 0 of a server held until g_loop_held drops (loop_hold posted to it). */
static atomic_bool g_loop_held;

static void
loop_hold(void *arg)
{
	(void)arg;
	while (atomic_load(&g_loop_held))
		sleep_ms(1);
}

struct raw_flood {
	int fd;
	const uint8_t *p;
	size_t len;
	pthread_t th;
};

static void *
raw_flood_main(void *arg)
{
	struct raw_flood *f = arg;

	raw_write(f->fd, f->p, f->len);
	return NULL;
}

/* One loop stalled stops only the connections that feed it: loop 1 reads a
 * flood for an actor of loop 0, which is held; that connection pauses, and
 * another connection of loop 1 still gets its PING to loop 1's actor
 * answered (before, any long inbox paused every connection of the process
 * until it drained). Once loop 0 runs again the flood is read to its end. */
START_TEST(test_tcp_other_loops_served_when_one_loop_stalls)
{
	enum { N = 40000 };
	const uint64_t echo1 = CFS_LOCAL(1, 0x10);
	struct timeval tv = {.tv_sec = 10};
	struct raw_flood f = {0};
	struct net_stats st;
	struct wire_buf wb, one;
	struct srv s;
	cfs_addr_t addr;
	uint8_t *flood;
	char buf[256];
	ssize_t n;
	int fd;

	srv_create_conn_loops(&s, 2, 1u << 1, 0);
	ck_assert_int_eq(rt_spawn(rt_loop_at(s.rt, 1), &echo_kind, NULL, echo1, &addr), 0);
	ck_assert_int_eq(rt_start(s.rt, false), 0);

	/* Both connections accepted (by loop 0) and answered before it is held. */
	f.fd = raw_connect(s.port);
	ck_assert(raw_ping_answered(f.fd));
	fd = raw_connect(s.port);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ping_frame_to(&one, 0, echo1, 0);
	raw_write(fd, one.p, one.len);
	ck_assert_int_gt(read(fd, buf, sizeof(buf)), 0);

	atomic_store(&g_loop_held, true);
	ck_assert_int_eq(rt_loop_post(rt_loop_at(s.rt, 0), loop_hold, NULL), 0);
	ping_frame(&wb);
	flood = malloc(wb.len * N);
	ck_assert_ptr_nonnull(flood);
	for (size_t i = 0; i < N; i++)
		memcpy(flood + i * wb.len, wb.p, wb.len);
	f.p = flood;
	f.len = wb.len * N;
	ck_assert_int_eq(pthread_create(&f.th, NULL, raw_flood_main, &f), 0);
	memset(&st, 0, sizeof(st));
	for (unsigned i = 0; st.rx_pauses == 0; i++) {
		ck_assert_msg(i < WAIT_S * 200, "the flood never paused");
		sleep_ms(5);
		ck_assert_int_eq(net_stats(s.net, 1, &st), 0);
	}

	raw_write(fd, one.p, one.len);
	do {
		n = read(fd, buf, sizeof(buf));
	} while (n < 0 && errno == EINTR);
	atomic_store(&g_loop_held, false);
	ck_assert_msg(n > 0, "PING to loop 1 unanswered while loop 0 was held");

	pthread_join(f.th, NULL);
	for (unsigned i = 0; st.frames_in < N + 3; i++) {
		ck_assert_msg(i < WAIT_S * 200, "the flood was not read to its end");
		sleep_ms(5);
		ck_assert_int_eq(net_stats(s.net, 1, &st), 0);
	}
	close(fd);
	close(f.fd);
	free(flood);
	wire_buf_fini(&one);
	wire_buf_fini(&wb);
	srv_stop(&s);
}
END_TEST

/* An actor that keeps every PING it gets (as one waiting for a slow disk
 * would) until keeper_release() answers them; on the server's loop 0. */
#define KEEP_LOCAL CFS_LOCAL(0, 0x11)
#define KEEP_MAX   1024u
static struct rt_msg *g_kept[KEEP_MAX];
static atomic_uint g_kept_n, g_kept_total;

static int
keeper_on_ping(struct rt_actor *self, struct rt_msg *req)
{
	unsigned n = atomic_load(&g_kept_n);

	(void)self;
	if (n == KEEP_MAX)
		return -CFS_EBUSY;
	g_kept[n] = req;
	atomic_store(&g_kept_n, n + 1);
	atomic_fetch_add(&g_kept_total, 1);
	return 0;
}

static const rt_handler_fn keeper_handlers[CFS_MSG__COUNT] = {
	[CFS_MSG_PING] = keeper_on_ping,
};

static const struct rt_actor_kind keeper_kind = {
	.name = "keeper",
	.handlers = keeper_handlers,
};

static void
keeper_release(void *arg)
{
	unsigned n = atomic_load(&g_kept_n);

	(void)arg;
	for (unsigned i = 0; i < n; i++)
		rt_reply(g_kept[i], 0, NULL);
	atomic_store(&g_kept_n, 0);
}

struct flood_writer {
	int fd;
	unsigned frames;
	uint32_t plen;
	uint32_t src_node;
	pthread_t th;
};

static void *
flood_writer_main(void *arg)
{
	static uint8_t zeros[1u << 20];
	struct flood_writer *w = arg;
	struct wire_buf wb;

	ping_frame_to(&wb, w->plen, KEEP_LOCAL, w->src_node);
	for (unsigned i = 0; i < w->frames; i++) {
		if (write(w->fd, wb.p, wb.len) != (ssize_t)wb.len ||
		    write(w->fd, zeros, w->plen) != (ssize_t)w->plen)
			break;
	}
	wire_buf_fini(&wb);
	return NULL;
}

/* A server of one loop with the keeper and max_rx_held, and w's frames
 * written to it from a thread. */
static void
keeper_flood_start(struct srv *s, struct flood_writer *w, uint64_t held_max)
{
	struct net_config nc;
	cfs_addr_t addr;

	atomic_store(&g_kept_n, 0);
	atomic_store(&g_kept_total, 0);
	net_config_init(&nc);
	nc.max_rx_held = held_max;
	srv_start_cfg(s, 1, 0, &nc);
	ck_assert_int_eq(rt_spawn(rt_loop_at(s->rt, 0), &keeper_kind, NULL, KEEP_LOCAL, &addr), 0);
	w->fd = raw_connect(s->port);
	ck_assert_int_eq(pthread_create(&w->th, NULL, flood_writer_main, w), 0);
}

/* Once w is done: the keeper answers what it holds, every counted byte is
 * released, the server stops. */
static void
keeper_flood_end(struct srv *s, struct flood_writer *w)
{
	ck_assert_int_eq(rt_loop_post(rt_loop_at(s->rt, 0), keeper_release, NULL), 0);
	for (unsigned i = 0; rt_rx_held(s->rt) != 0; i++) {
		ck_assert_msg(i < WAIT_S * 100, "%llu bytes still counted",
			      (unsigned long long)rt_rx_held(s->rt));
		sleep_ms(10);
	}
	close(w->fd);
	srv_stop(s);
}

/* Requests whose payloads an actor holds (queued for a disk slower than the
 * network) count against max_rx_held: a peer pipelining 1 MiB writes gets
 * no further than about that much held, the rest waits in its socket, and
 * once the actor lets go the server reads on until every request arrived.
 * Without the bound the server read the whole flood into memory. */
START_TEST(test_tcp_server_stops_reading_when_held_payloads_reach_max)
{
	enum { FRAMES = 512, PLEN = 1 << 20, HELD_MAX = 64 << 20 };
	struct flood_writer w = {.frames = FRAMES, .plen = PLEN};
	struct net_stats st;
	struct srv s;
	unsigned held;

	keeper_flood_start(&s, &w, HELD_MAX);

	/* hang guard (WAIT_S), not a performance bound */
	for (unsigned i = 0; atomic_load(&g_kept_n) < HELD_MAX / PLEN; i++) {
		ck_assert_msg(i < WAIT_S * 100, "the keeper got %u requests",
			      atomic_load(&g_kept_n));
		sleep_ms(10);
	}
	sleep_ms(300); /* what the server would read on, it reads by now */
	held = atomic_load(&g_kept_n);
	/* It stops at the header after the limit: no buffer taken for it. */
	ck_assert_msg(held == HELD_MAX / PLEN, "held %u MiB of requests with max_rx_held %u MiB",
		      held, HELD_MAX >> 20);
	ck_assert_int_eq(net_stats(s.net, 0, &st), 0);
	ck_assert_uint_gt(st.rx_held_pauses, 0);
	ck_assert_uint_eq(rt_rx_held(s.rt), (uint64_t)held * PLEN);

	/* Let go: the rest comes in. */
	for (unsigned i = 0; atomic_load(&g_kept_total) < FRAMES; i++) {
		ck_assert_msg(i < WAIT_S * 100, "only %u of %u requests arrived",
			      atomic_load(&g_kept_total), FRAMES);
		ck_assert_int_eq(rt_loop_post(rt_loop_at(s.rt, 0), keeper_release, NULL), 0);
		sleep_ms(10);
	}
	pthread_join(w.th, NULL);
	keeper_flood_end(&s, &w);
}
END_TEST

/* Reads from fd until n bytes came (false: closed, or the hang guard). */
static bool
raw_read_n(int fd, size_t n)
{
	static uint8_t buf[64 << 10];

	while (n > 0) {
		ssize_t k = read(fd, buf, n < sizeof(buf) ? n : sizeof(buf));

		if (k <= 0)
			return false;
		n -= (size_t)k;
	}
	return true;
}

/* Clients caught in the middle of their payloads when max_rx_held is
 * reached finish them: the pause comes only at a header, before its buffer
 * is taken, so a paused connection holds nothing half filled (stopping in
 * the middle wedged them all for good: their own buffers kept the count
 * up). Each connection's very first frame counts too. */
START_TEST(test_tcp_clients_finish_payloads_when_held_max_reached_midway)
{
	enum { CONNS = 5, PLEN = 1 << 20, FIRST = 100 << 10, HELD_MAX = 4 << 20 };
	static uint8_t zeros[PLEN];
	struct net_config nc;
	struct net_stats st;
	struct wire_buf wb;
	struct srv s;
	int fd[CONNS];

	net_config_init(&nc);
	nc.max_rx_held = HELD_MAX;
	srv_start_cfg(&s, 1, 0, &nc);
	ping_frame_plen(&wb, PLEN);
	for (unsigned i = 0; i < CONNS; i++) {
		fd[i] = raw_connect(s.port);
		raw_write(fd[i], wb.p, wb.len);
		raw_write(fd[i], zeros, FIRST);
	}
	sleep_ms(100);
	for (unsigned i = 0; i < CONNS; i++)
		raw_write(fd[i], zeros, PLEN - FIRST);
	/* Each gets its echo (at least as many bytes as the payload). */
	for (unsigned i = 0; i < CONNS; i++)
		ck_assert_msg(raw_read_n(fd[i], PLEN), "connection %u got no answer", i);
	ck_assert_int_eq(net_stats(s.net, 0, &st), 0);
	ck_assert_uint_gt(st.rx_held_pauses, 0);
	for (unsigned i = 0; i < CONNS; i++)
		close(fd[i]);
	wire_buf_fini(&wb);
	srv_stop(&s);
}
END_TEST

/* A client whose frame was held back at max_rx_held, then read and
 * answered, stays connected while idle afterwards: its frame clock stopped
 * with the frame (the re-parse on resume once left it running, and the
 * sweep cut the idle connection as stalled). */
START_TEST(test_tcp_client_kept_idle_after_held_frame_answered)
{
	enum { PLEN = 1 << 20, HELD_MAX = 4 << 20 };
	struct flood_writer w = {.frames = HELD_MAX / PLEN, .plen = PLEN};
	struct net_config nc;
	struct net_stats st;
	struct wire_buf wb;
	struct srv s;
	cfs_addr_t addr;
	uint8_t *frame;
	int fd;

	atomic_store(&g_kept_n, 0);
	atomic_store(&g_kept_total, 0);
	net_config_init(&nc);
	nc.max_rx_held = HELD_MAX;
	nc.frame_timeout_ms = 300;
	srv_start_cfg(&s, 1, 0, &nc);
	ck_assert_int_eq(rt_spawn(rt_loop_at(s.rt, 0), &keeper_kind, NULL, KEEP_LOCAL, &addr), 0);
	w.fd = raw_connect(s.port);
	flood_writer_main(&w);
	/* hang guard (WAIT_S), not a performance bound */
	for (unsigned i = 0; atomic_load(&g_kept_n) < HELD_MAX / PLEN; i++) {
		ck_assert_msg(i < WAIT_S * 100, "the keeper got %u", atomic_load(&g_kept_n));
		sleep_ms(10);
	}
	/* A small echo, whole in one write, held back at its header. */
	ping_frame_plen(&wb, 1024);
	frame = calloc(1, wb.len + 1024);
	ck_assert_ptr_nonnull(frame);
	memcpy(frame, wb.p, wb.len);
	fd = raw_connect(s.port);
	raw_write(fd, frame, wb.len + 1024);
	free(frame);
	sleep_ms(100);
	ck_assert_int_eq(rt_loop_post(rt_loop_at(s.rt, 0), keeper_release, NULL), 0);
	ck_assert_msg(raw_read_n(fd, 1024), "the held frame got no answer");
	sleep_ms(1500); /* idle for five frame timeouts */
	ck_assert_int_eq(net_stats(s.net, 0, &st), 0);
	ck_assert_uint_eq(st.frame_timeouts, 0);
	ck_assert(raw_ping_answered(fd));
	close(fd);
	wire_buf_fini(&wb);
	close(w.fd);
	srv_stop(&s);
}
END_TEST

/* A connection another node opened is not paused for max_rx_held: it
 * brings that node's forwards down our chains, which it holds until we
 * answer; two nodes full of writes for each other's chains would otherwise
 * wait for ever. Its writes arrive whole while the keeper holds them all. */
START_TEST(test_tcp_node_connection_read_on_when_held_payloads_reach_max)
{
	enum { FRAMES = 48, PLEN = 1 << 20, HELD_MAX = 16 << 20 };
	struct flood_writer w = {.frames = FRAMES, .plen = PLEN, .src_node = 5};
	struct net_stats st;
	struct srv s;

	keeper_flood_start(&s, &w, HELD_MAX);
	/* hang guard (WAIT_S), not a performance bound */
	for (unsigned i = 0; atomic_load(&g_kept_n) < FRAMES; i++) {
		ck_assert_msg(i < WAIT_S * 100, "the keeper got %u of %u forwards",
			      atomic_load(&g_kept_n), FRAMES);
		sleep_ms(10);
	}
	pthread_join(w.th, NULL);
	ck_assert_uint_ge(rt_rx_held(s.rt), (uint64_t)FRAMES * PLEN);
	ck_assert_int_eq(net_stats(s.net, 0, &st), 0);
	ck_assert_uint_eq(st.rx_held_pauses, 0);
	keeper_flood_end(&s, &w);
}
END_TEST

/* Malformed input on one raw connection closes that connection only. */
enum bad_kind {
	BAD_GARBAGE_TEXT,
	BAD_GARBAGE_BODY,
	BAD_TRUNCATED,
	BAD_HDR_OVER_MAX,
	BAD_UNKNOWN_CODE,
	BAD_TRAP,
	BAD_TRAILING,
	BAD_PAYLOAD_OVER_MAX,
	BAD__COUNT
};

static void
bad_send(int fd, enum bad_kind kind)
{
	static const char text[] = "GET / HTTP/1.1\r\nHost: chainfs\r\n\r\n";
	static const uint8_t body[] = {0, 0, 0, 6, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1};
	struct wire_buf wb;
	uint8_t pfx[4];
	msgpack_sbuffer sb;
	msgpack_packer pk;

	switch (kind) {
	case BAD_GARBAGE_TEXT:
		raw_write(fd, text, sizeof(text) - 1);
		break;
	case BAD_GARBAGE_BODY:
		raw_write(fd, body, sizeof(body));
		break;
	case BAD_TRUNCATED:
		ping_frame(&wb);
		raw_write(fd, wb.p, wb.len - 3);
		wire_buf_fini(&wb);
		shutdown(fd, SHUT_WR);
		break;
	case BAD_HDR_OVER_MAX:
		put_be32(pfx, (1u << 20) + 1);
		raw_write(fd, pfx, 4);
		break;
	case BAD_UNKNOWN_CODE:
	case BAD_PAYLOAD_OVER_MAX:
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, sbuf_write);
		msgpack_pack_array(&pk, 8);
		msgpack_pack_uint32(&pk, CFS_PROTO_VERSION);
		msgpack_pack_uint32(&pk, kind == BAD_UNKNOWN_CODE ? 0x7777 : 0x0001);
		msgpack_pack_uint64(&pk, 1);
		msgpack_pack_uint64(&pk, CFS_ADDR(0, 0x01000100));
		msgpack_pack_uint64(&pk, CFS_ADDR(0, ECHO_LOCAL));
		msgpack_pack_uint32(&pk, 0);
		msgpack_pack_uint64(&pk, kind == BAD_UNKNOWN_CODE ? 0 : (64ull << 20) + 1);
		msgpack_pack_array(&pk, 1);
		msgpack_pack_uint64(&pk, 5);
		put_be32(pfx, (uint32_t)sb.size);
		raw_write(fd, pfx, 4);
		raw_write(fd, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		break;
	case BAD_TRAP:
		put_be32(pfx, sizeof(g_trap));
		raw_write(fd, pfx, 4);
		raw_write(fd, g_trap, sizeof(g_trap));
		break;
	case BAD_TRAILING:
		/* A valid header array, then one more byte inside the stated length. */
		ping_frame(&wb);
		ck_assert_int_eq(wire_buf_reserve(&wb, 1), 0);
		wb.p[wb.len++] = 0xc0;
		put_be32(wb.p, (uint32_t)(wb.len - 4));
		raw_write(fd, wb.p, wb.len);
		wire_buf_fini(&wb);
		break;
	default:
		ck_abort();
	}
}

START_TEST(test_tcp_bad_conn_closed_when_frame_malformed)
{
	enum bad_kind kind = (enum bad_kind)_i;
	struct srv s;
	struct cli c;
	uint32_t alias;
	uint64_t before;
	int fd;

	srv_start(&s, 2, 0);
	cli_start(&c);
	ck_assert_int_eq(net_connect_alias(c.net, s.ep, &alias), 0);
	ck_assert_int_eq(call_once(&c, CFS_ADDR(alias, ECHO_LOCAL), 100, 1), 0);
	before = srv_proto_errors(&s);

	fd = raw_connect(s.port);
	bad_send(fd, kind);
	ck_assert_msg(raw_wait_closed(fd), "server kept a connection after bad input %d", kind);
	close(fd);
	if (kind != BAD_TRUNCATED)
		ck_assert_uint_eq(srv_proto_errors(&s), before + 1);

	/* The well-behaved client, connected all along, still gets answers. */
	ck_assert_int_eq(call_once(&c, CFS_ADDR(alias, ECHO_LOCAL), 5000, 2), 0);
	ck_assert_int_eq(call_once(&c, CFS_ADDR(alias, ECHO_LOCAL), 0, 3), 0);
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

/* A peer that stops inside a frame (its payload, or its header) is cut off
 * after frame_timeout_ms without a byte; one that is merely quiet between
 * frames is not, nor one whose frame comes slowly but steadily (it takes
 * one and a half times the timeout, a piece every twentieth of it): a small
 * frame, read piece by piece, and a large one whose pieces wait under
 * SO_RCVLOWAT without waking the server. */
START_TEST(test_tcp_conn_closed_when_peer_stalls_inside_frame)
{
	enum { SLOW_LEN = 30 << 10, BIG_LEN = 1 << 20, PIECE = 1 << 10 };
	static char zeros[BIG_LEN];
	struct net_config nc;
	struct wire_buf wb;
	struct srv s;
	struct cli c;
	uint32_t alias;
	int in_payload, in_header, quiet, slow, slow_big;
	char buf[256];

	net_config_init(&nc);
	nc.frame_timeout_ms = 1000;
	srv_start_cfg(&s, 2, 0, &nc);
	cli_start(&c);
	ck_assert_int_eq(net_connect_alias(c.net, s.ep, &alias), 0);
	ck_assert_int_eq(call_once(&c, CFS_ADDR(alias, ECHO_LOCAL), 100, 1), 0);

	/* A PING announcing 1 MiB of payload, of which 10 bytes come, after
	 * the server has (most likely) read the header and waits for more
	 * than 10 bytes under SO_RCVLOWAT. */
	ping_frame_plen(&wb, BIG_LEN);
	in_payload = raw_connect(s.port);
	raw_write(in_payload, wb.p, wb.len);
	wire_buf_fini(&wb);
	sleep_ms(100);
	raw_write(in_payload, "0123456789", 10);

	ping_frame(&wb);
	in_header = raw_connect(s.port);
	raw_write(in_header, wb.p, wb.len / 2);
	wire_buf_fini(&wb);

	quiet = raw_connect(s.port);
	ck_assert(raw_ping_answered(quiet));

	ping_frame_plen(&wb, SLOW_LEN);
	slow = raw_connect(s.port);
	raw_write(slow, wb.p, wb.len);
	wire_buf_fini(&wb);
	ping_frame_plen(&wb, BIG_LEN);
	slow_big = raw_connect(s.port);
	raw_write(slow_big, wb.p, wb.len);
	wire_buf_fini(&wb);
	for (unsigned i = 0; i < SLOW_LEN / PIECE; i++) {
		sleep_ms(50);
		raw_write(slow, zeros, PIECE);
		raw_write(slow_big, zeros, PIECE);
	}
	ck_assert_msg(read(slow, buf, sizeof(buf)) > 0, "a slow, steady frame was cut off");
	raw_write(slow_big, zeros, BIG_LEN - SLOW_LEN);
	ck_assert_msg(read(slow_big, buf, sizeof(buf)) > 0,
		      "a slow, steady frame under SO_RCVLOWAT was cut off");

	ck_assert_msg(raw_wait_closed(in_payload), "kept a peer stalled inside a payload");
	ck_assert_msg(raw_wait_closed(in_header), "kept a peer stalled inside a header");
	ck_assert_uint_eq(STAT_SUM(s.rt, s.net, frame_timeouts), 2);
	/* Quiet for longer than the frame timeout by now, and still served. */
	ck_assert(raw_ping_answered(quiet));
	ck_assert_int_eq(call_once(&c, CFS_ADDR(alias, ECHO_LOCAL), 5000, 2), 0);
	close(in_payload);
	close(in_header);
	close(quiet);
	close(slow);
	close(slow_big);
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

/* max_conns accepted connections: the next one is closed as it arrives, the
 * open ones keep working, and a place freed is taken again. */
START_TEST(test_tcp_accept_refused_when_max_conns_open)
{
	struct net_config nc;
	struct srv s;
	int a, b, extra, again = -1;

	net_config_init(&nc);
	nc.max_conns = 2;
	srv_start_cfg(&s, 2, 0, &nc);
	a = raw_connect(s.port);
	ck_assert(raw_ping_answered(a));
	b = raw_connect(s.port);
	ck_assert(raw_ping_answered(b));

	extra = raw_connect(s.port); /* the kernel completes the handshake */
	ck_assert_msg(raw_wait_closed(extra), "a third connection kept with max_conns 2");
	ck_assert_uint_eq(STAT_SUM(s.rt, s.net, conns_refused), 1);
	ck_assert(raw_ping_answered(a));
	ck_assert(raw_ping_answered(b));

	/* a's place frees once the server has seen it go. */
	close(a);
	for (unsigned i = 0; i < WAIT_S * 100; i++) {
		again = raw_connect(s.port);
		if (raw_ping_answered(again))
			break;
		close(again);
		again = -1;
		sleep_ms(10);
	}
	ck_assert_msg(again >= 0, "no connection accepted after one closed");
	ck_assert(raw_ping_answered(b));
	close(again);
	close(b);
	close(extra);
	srv_stop(&s);
}
END_TEST

/* lo of this process's network namespace up or down. */
static void
lo_set(bool up)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	ck_assert_int_eq(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
	if (up)
		ifr.ifr_flags |= IFF_UP;
	else
		ifr.ifr_flags &= ~IFF_UP;
	ck_assert_int_eq(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
	close(fd);
}

/* A peer whose network goes silent (no reset, no FIN: lo down in a network
 * namespace of this test's own) is declared dead after peer_timeout_ms, on
 * both sides: the waiting call fails with the connection's ETIMEDOUT long
 * before its own timeout, and the server drops the idle connection through
 * its keepalive probes. Before, both waited for the kernel's ~15 minutes of
 * retransmissions. */
START_TEST(test_tcp_calls_fail_when_peer_goes_silent)
{
	const char *fork_mode = getenv("CK_FORK");
	struct net_config nc;
	struct srv s;
	struct cli c;
	uint32_t alias;
	struct rpc r = {0};
	unsigned i;

	/* The namespace must be this test's process alone. */
	if (fork_mode && strcmp(fork_mode, "no") == 0) {
		printf("skipped: calls_fail_when_peer_goes_silent needs CK_FORK=yes\n");
		return;
	}
	if (unshare(CLONE_NEWNET) != 0) {
		printf("skipped: calls_fail_when_peer_goes_silent: unshare(CLONE_NEWNET): %s\n",
		       strerror(errno));
		return;
	}
	lo_set(true);
	net_config_init(&nc);
	nc.peer_timeout_ms = 1000;
	srv_start_cfg(&s, 1, 0, &nc);
	nc.reconnect_min_ms = 10;
	nc.reconnect_max_ms = 100;
	cli_start_cfg(&c, &nc);
	ck_assert_int_eq(net_connect_alias(c.net, s.ep, &alias), 0);
	ck_assert_int_eq(call_once(&c, CFS_ADDR(alias, ECHO_LOCAL), 100, 1), 0);

	lo_set(false);
	/* Its own timeout is past the hang guard: only the dead connection can
	 * end this call in time. */
	r.dst = CFS_ADDR(alias, ECHO_LOCAL);
	r.len = 100;
	r.seed = 2;
	r.timeout_ms = 2 * WAIT_S * 1000;
	rpc_run(&c, &r, 1);
	ck_assert_int_eq(r.rc, -ETIMEDOUT);
	ck_assert_uint_eq(STAT_SUM(c.rt, c.net, conn_errors), 1);
	for (i = 0; i < WAIT_S * 100 && STAT_SUM(s.rt, s.net, conns_open) != 0; i++)
		sleep_ms(10);
	ck_assert_msg(STAT_SUM(s.rt, s.net, conns_open) == 0,
		      "the server kept the connection of a silent peer");

	lo_set(true);
	ck_assert_int_eq(call_once(&c, CFS_ADDR(alias, ECHO_LOCAL), 100, 3), 0);
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

/* Peer death: a server that takes the request and dies without answering. */
struct dying {
	int lfd;
	pthread_t th;
};

static void *
dying_main(void *arg)
{
	struct dying *d = arg;
	char buf[256];
	int fd = accept(d->lfd, NULL, NULL);

	if (fd >= 0) {
		/* Wait for the request to arrive, then die. */
		if (read(fd, buf, sizeof(buf)) < 0)
			perror("dying read");
		close(fd);
	}
	return NULL;
}

/* A server thread on a raw socket: reads n requests, answers them all in one
 * write, and closes. */
struct answer_all {
	int lfd;
	unsigned n;
	bool wrong_type; /* answer with chunk_query_resp instead of ping_resp */
	pthread_t th;
};

static void *
answer_all_main(void *arg)
{
	struct answer_all *a = arg;
	size_t cap = 64u << 20, have = 0, off = 0;
	uint8_t *in = malloc(cap);
	struct wire_buf out;
	unsigned got = 0;
	int fd = accept(a->lfd, NULL, NULL);

	wire_buf_init(&out);
	while (in && fd >= 0 && got < a->n) {
		ssize_t k = read(fd, in + have, cap - have);

		if (k <= 0)
			break;
		have += (size_t)k;
		for (;;) {
			struct rt_msg *m, *r;
			size_t used;

			if (wire_decode_frame(in + off, have - off, NULL, &m, &used) != 0)
				break;
			off += used;
			r = rt_msg_new(a->wrong_type ? CFS_MSG_CHUNK_QUERY_RESP
						     : CFS_MSG_PING_RESP);
			r->req_id = m->req_id;
			r->dst = m->src;
			r->src = m->dst;
			if (!a->wrong_type)
				RT_BODY(r, ping_resp)->sent_ns = RT_BODY(m, ping)->sent_ns;
			wire_encode(&out, r, NULL);
			rt_msg_free(&r);
			rt_msg_free(&m);
			got++;
		}
	}
	if (fd >= 0) {
		if (write(fd, out.p, out.len) != (ssize_t)out.len)
			perror("answer_all write");
		close(fd);
	}
	wire_buf_fini(&out);
	free(in);
	return NULL;
}

/* n calls from a client to an answer_all server (n requests, every answer
 * of the wanted type in one write, then close): r[i].rc for each. */
static void
answer_all_run(struct rpc *r, unsigned n, bool wrong_type)
{
	struct answer_all a = {.n = n, .wrong_type = wrong_type};
	struct cli c;
	uint16_t port;

	a.lfd = raw_listen(&port);
	ck_assert_int_eq(pthread_create(&a.th, NULL, answer_all_main, &a), 0);
	cli_start(&c);
	cli_peer_at(&c, 9, port);
	for (unsigned i = 0; i < n; i++) {
		r[i] = (struct rpc){0};
		r[i].dst = CFS_ADDR(9, ECHO_LOCAL);
		r[i].timeout_ms = LONG_TIMEOUT_MS;
	}
	rpc_run(&c, r, n);
	pthread_join(a.th, NULL);
	close(a.lfd);
	cli_stop(&c);
}

/* Every call was answered before the connection ended. A loop iteration
 * dispatches a bounded number of messages, so many answers are still queued
 * when the end of the stream is read: none of those calls may fail with
 * ECONNRESET (a caller would retry a request that ran). */
START_TEST(test_tcp_answered_calls_succeed_when_connection_ends_behind_answers)
{
	unsigned n = 40000, ok = 0;
	struct rpc *r = calloc(n, sizeof(*r));

	ck_assert_ptr_nonnull(r);
	answer_all_run(r, n, false);
	for (unsigned i = 0; i < n; i++)
		ok += r[i].rc == 0;
	free(r);
	ck_assert_uint_eq(ok, n);
}
END_TEST

/* A response of another type than the call waits for (a peer's bug, or a
 * forged req_id) fails the call with EPROTO: its callback would read the body
 * as the wrong struct. */
START_TEST(test_tcp_call_fails_eproto_when_response_type_wrong)
{
	struct rpc r[4];

	answer_all_run(r, 4, true);
	for (unsigned i = 0; i < 4; i++)
		ck_assert_int_eq(r[i].rc, -CFS_EPROTO);
}
END_TEST

START_TEST(test_tcp_pending_call_fails_when_peer_dies)
{
	struct dying d;
	struct cli c;
	struct rpc r[4];
	uint16_t port;

	d.lfd = raw_listen(&port);
	ck_assert_int_eq(pthread_create(&d.th, NULL, dying_main, &d), 0);
	cli_start(&c);
	cli_peer_at(&c, 9, port);
	memset(r, 0, sizeof(r));
	for (unsigned i = 0; i < 4; i++) {
		r[i].dst = CFS_ADDR(9, ECHO_LOCAL);
		r[i].len = 10;
		r[i].timeout_ms = LONG_TIMEOUT_MS;
	}
	/* The calls' timeout is a minute; they must fail by rt_peer_lost, not by it. */
	rpc_run(&c, r, 4);
	for (unsigned i = 0; i < 4; i++)
		ck_assert_msg(r[i].rc == -ECONNRESET, "call %u: %d", i, r[i].rc);
	pthread_join(d.th, NULL);
	close(d.lfd);
	cli_stop(&c);
}
END_TEST

START_TEST(test_tcp_call_refused_when_nobody_listens)
{
	struct cli c;
	uint16_t port;
	int lfd = raw_listen(&port);

	close(lfd); /* the port is now (almost certainly) closed */
	cli_start(&c);
	cli_peer_at(&c, 4, port);
	ck_assert_int_eq(call_once(&c, CFS_ADDR(4, ECHO_LOCAL), 0, 0), -ECONNREFUSED);
	/* No route at all is refused at once. */
	ck_assert_int_eq(call_once(&c, CFS_ADDR(12, ECHO_LOCAL), 0, 0), -EHOSTUNREACH);
	cli_stop(&c);
}
END_TEST

START_TEST(test_tcp_reconnects_when_server_restarts)
{
	struct srv s;
	struct cli c;
	uint16_t port;
	int rc = -1;

	srv_start(&s, 2, 0);
	port = s.port;
	cli_start(&c);
	ck_assert_int_eq(net_add_peer(c.net, SRV_NODE, s.ep), 0);
	ck_assert_int_eq(call_once(&c, CFS_ADDR(SRV_NODE, ECHO_LOCAL), 64, 1), 0);

	srv_stop(&s);
	rc = call_once(&c, CFS_ADDR(SRV_NODE, ECHO_LOCAL), 64, 2);
	ck_assert_msg(rc == -ECONNRESET || rc == -ECONNREFUSED, "while down: %d", rc);

	srv_start(&s, 2, port);
	/* The backoff may still be running: retry until it lets a connect through. */
	for (unsigned i = 0; i < 600; i++) {
		rc = call_once(&c, CFS_ADDR(SRV_NODE, ECHO_LOCAL), 64, 3);
		if (rc == 0)
			break;
		ck_assert_msg(rc == -ECONNREFUSED || rc == -ECONNRESET, "retry: %d", rc);
		sleep_ms(50);
	}
	ck_assert_int_eq(rc, 0);
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_tcp_create_fails_when_listen_address_bad)
{
	struct rt_config rc = {.loops = 2, .node_id = 1};
	struct net_config nc;
	struct rt *rt;
	struct net *net = NULL;
	char ep[64];

	ck_assert_int_eq(rt_create(&rc, &rt), 0);
	net_config_init(&nc);
	nc.listen = "127.0.0.1";
	ck_assert_int_eq(net_create(rt, &nc, &net), -EINVAL);
	nc.listen = "127.0.0.1:99999";
	ck_assert_int_eq(net_create(rt, &nc, &net), -EINVAL);
	nc.listen = "::1:80";
	ck_assert_int_eq(net_create(rt, &nc, &net), -EINVAL);
	/* Limits past what a frame can use: a header limit near 4 GiB would
	 * wrap the reader's 32-bit length arithmetic. */
	nc.listen = NULL;
	nc.limits.max_hdr = UINT32_MAX;
	ck_assert_int_eq(net_create(rt, &nc, &net), -CFS_ECONFIG);
	nc.limits.max_hdr = 0;
	nc.limits.max_payload = 128ull << 20;
	ck_assert_int_eq(net_create(rt, &nc, &net), -CFS_ECONFIG);
	nc.limits.max_payload = 0;
	/* A port another process listens on without SO_REUSEPORT is busy. */
	{
		uint16_t port;
		int lfd = raw_listen(&port);

		snprintf(ep, sizeof(ep), "127.0.0.1:%u", port);
		nc.listen = ep;
		ck_assert_int_eq(net_create(rt, &nc, &net), -EADDRINUSE);
		close(lfd);
	}
	ck_assert_ptr_null(net);
	rt_destroy(&rt);

	/* Never started: net_destroy closes the listeners itself. */
	ck_assert_int_eq(rt_create(&rc, &rt), 0);
	nc.listen = "127.0.0.1:0";
	ck_assert_int_eq(net_create(rt, &nc, &net), 0);
	ck_assert_uint_ne(net_listen_port(net), 0);
	rt_destroy(&rt);
	net_destroy(&net);
	ck_assert_ptr_null(net);
}
END_TEST

START_TEST(test_tcp_listen_fails_when_another_server_holds_address)
{
	struct rt_config rc = {.loops = 2, .node_id = 2};
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct net_config nc;
	struct net_stats st;
	struct net *net = NULL;
	struct rt *rt;
	struct srv s;
	struct cli c;
	struct rpc r[8];
	int one = 1, fd;

	srv_start(&s, 2, 0);
	/* A second server on the same address is refused... */
	ck_assert_int_eq(rt_create(&rc, &rt), 0);
	net_config_init(&nc);
	nc.listen = s.ep;
	ck_assert_int_eq(net_create(rt, &nc, &net), -EADDRINUSE);
	ck_assert_ptr_null(net);
	rt_destroy(&rt);
	/* ...and so is any socket that asks to share it (SO_REUSEPORT, as an
	 * older chainfsd did on every loop). */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
	sa.sin_port = htons(s.port);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), -1);
	ck_assert_int_eq(errno, EADDRINUSE);
	close(fd);
	/* The server still spreads its connections over both loops: eight
	 * client loops, eight connections, four per server loop. */
	net_config_init(&nc);
	cli_start_loops(&c, &nc, 8);
	ck_assert_int_eq(net_add_peer(c.net, SRV_NODE, s.ep), 0);
	memset(r, 0, sizeof(r));
	for (unsigned i = 0; i < 8; i++) {
		r[i].dst = CFS_ADDR(SRV_NODE, ECHO_LOCAL);
		r[i].loop = i;
		r[i].seed = i;
	}
	rpc_run(&c, r, 8);
	for (unsigned i = 0; i < 8; i++)
		ck_assert_msg(r[i].rc == 0, "call %u: %d", i, r[i].rc);
	for (unsigned i = 0; i < 2; i++) {
		ck_assert_int_eq(net_stats(s.net, i, &st), 0);
		ck_assert_uint_eq(st.conns_accepted, 4);
		ck_assert_uint_eq(st.conns_open, 4);
	}
	cli_stop(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_tcp_peer_rejected_when_node_id_reserved)
{
	struct cli c;

	cli_start(&c);
	ck_assert_int_eq(net_add_peer(c.net, 0, "127.0.0.1:1"), -EINVAL);
	ck_assert_int_eq(net_add_peer(c.net, NET_ALIAS_BASE, "127.0.0.1:1"), -EINVAL);
	ck_assert_int_eq(net_add_peer(c.net, 3, "127.0.0.1"), -EINVAL);
	ck_assert_int_eq(net_add_peer(c.net, 3, "[::1]:80"), 0);
	ck_assert_int_eq(net_add_peer(c.net, 3, "localhost:80"), 0);
	cli_stop(&c);
}
END_TEST

static void
bulk_cb(struct net_conn *c, int rc, void *arg)
{
	*(int *)arg = rc + 100;
}

START_TEST(test_tcp_bulk_from_stream_when_desc_inside_payload)
{
	struct rt_msg *m = rt_msg_new(CFS_MSG_PING);
	struct rt_buf *b = pattern_buf(100, 0);
	struct net_bulk_desc d = {.addr = 10, .len = 90};
	uint32_t rkey = 7;
	int got = 0;

	ck_assert_int_eq(rt_msg_add_iov(m, b, 0, 100), 0);
	rt_buf_put(&b);
	ck_assert_int_eq(net_tcp_type.mr_register(NULL, m, 100, &rkey), 0);
	ck_assert_uint_eq(rkey, 0);
	ck_assert_int_eq(net_tcp_type.bulk_pull(NULL, m, &d, bulk_cb, &got), 0);
	ck_assert_int_eq(got, 100);
	d.len = 91;
	got = 0;
	ck_assert_int_eq(net_tcp_type.bulk_pull(NULL, m, &d, bulk_cb, &got), -EINVAL);
	ck_assert_int_eq(got, 0);
	d = (struct net_bulk_desc){.addr = 0, .len = 100};
	ck_assert_int_eq(net_tcp_type.bulk_push(NULL, m, &d, bulk_cb, &got), 0);
	ck_assert_int_eq(got, 100);
	d.len = 99;
	ck_assert_int_eq(net_tcp_type.bulk_push(NULL, m, &d, bulk_cb, &got), -EINVAL);
	rt_msg_free(&m);
}
END_TEST

static Suite *
tcp_suite(void)
{
	Suite *s = suite_create("tcp");
	TCase *tc;

	tc = tcase_create("round_trip");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_tcp_round_trip_when_alias);
	tcase_add_test(tc, test_tcp_round_trip_when_peer_named_by_node_id);
	tcase_add_test(tc, test_tcp_wrong_node_refused_when_id_names_another_node);
	tcase_add_test(tc, test_tcp_each_loop_connects_when_client_has_many_loops);
	tcase_add_test(tc, test_tcp_conns_owned_by_chosen_loops_when_mask_set);
	suite_add_tcase(s, tc);

	tc = tcase_create("payload");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_tcp_payload_exact_when_sizes_vary);
	tcase_add_test(tc, test_tcp_payload_exact_when_large_and_small_frames_interleave);
	tcase_add_test(tc, test_tcp_answers_held_intact_when_payloads_sliced);
	tcase_add_test(tc, test_tcp_all_complete_when_64_in_flight);
	tcase_add_test(tc, test_tcp_payload_exact_when_frames_exceed_iov_max);
	tcase_add_test(tc, test_tcp_bulk_from_stream_when_desc_inside_payload);
	suite_add_tcase(s, tc);

	tc = tcase_create("backpressure");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_tcp_send_refused_busy_when_peer_does_not_read);
	tcase_add_test(tc, test_tcp_queue_bound_counts_frames_when_small_frames_wait);
	tcase_add_test(tc, test_tcp_send_queue_ring_given_back_when_burst_drained);
	tcase_add_test(tc, test_tcp_server_memory_bounded_when_peer_floods_requests);
	tcase_add_test(tc, test_tcp_server_memory_bounded_when_flood_is_for_another_loop);
	tcase_add_test(tc, test_tcp_other_loops_served_when_one_loop_stalls);
	tcase_add_test(tc, test_tcp_server_stops_reading_when_held_payloads_reach_max);
	tcase_add_test(tc, test_tcp_node_connection_read_on_when_held_payloads_reach_max);
	tcase_add_test(tc, test_tcp_clients_finish_payloads_when_held_max_reached_midway);
	tcase_add_test(tc, test_tcp_client_kept_idle_after_held_frame_answered);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad_input");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_tcp_bad_conn_closed_when_frame_malformed, 0, BAD__COUNT);
	suite_add_tcase(s, tc);

	tc = tcase_create("peer_failure");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_tcp_pending_call_fails_when_peer_dies);
	tcase_add_test(tc, test_tcp_answered_calls_succeed_when_connection_ends_behind_answers);
	tcase_add_test(tc, test_tcp_call_fails_eproto_when_response_type_wrong);
	tcase_add_test(tc, test_tcp_call_refused_when_nobody_listens);
	tcase_add_test(tc, test_tcp_reconnects_when_server_restarts);
	tcase_add_test(tc, test_tcp_calls_fail_when_peer_goes_silent);
	tcase_add_test(tc, test_tcp_conn_closed_when_peer_stalls_inside_frame);
	tcase_add_test(tc, test_tcp_accept_refused_when_max_conns_open);
	suite_add_tcase(s, tc);

	tc = tcase_create("config");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_tcp_create_fails_when_listen_address_bad);
	tcase_add_test(tc, test_tcp_listen_fails_when_another_server_holds_address);
	tcase_add_test(tc, test_tcp_peer_rejected_when_node_id_reserved);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(tcp_suite());
	int failed;

	rt_log_set_level(getenv("TCP_TEST_DEBUG") ? RT_LOG_DEBUG : RT_LOG_ERR);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

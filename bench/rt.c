// SPDX-License-Identifier: MIT
/*
 * bench_rt: the runtime and the TCP RPC path against what the machine can do
 * without them, measured in one run:
 *   1. actor messages/s, same loop and across loops (request + response each);
 *   2. RPC round trips/s over loopback TCP with 1 and 64 in flight, against a
 *      minimal raw libev ping-pong exchanging frames of the same size;
 *   3. 1 MiB payload throughput over one connection, against a raw socket
 *      sender/receiver pair.
 * Candidate and baseline alternate for ROUNDS rounds; medians are compared,
 * on the network BENCH_NET picks (bench/net.h; both sides on the same one).
 * Prints a table and a last line "ratio: name=value ...".
 */
#define RT_LOG_SUBSYS "bench"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/net.h"
#include "bench/stats.h"
#include "actors/node/nodectl.h"
#include "net/net.h"
#include "net/wire.h"
#include "rt/rt.h"

static double g_seconds = 2.0;
static unsigned g_rounds = 3;

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------- driver actor (candidate) */

struct job {
	cfs_addr_t dst;
	unsigned window;
	uint32_t payload;	/* bytes attached to each ping */
	double seconds;
	/* results */
	uint64_t calls;
	uint64_t errors;
	double elapsed;
	/* completion */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

struct driver {
	struct job *job;
	struct rt_timer kick;
	struct rt_timer stop; /* ends the run: no clock read per reply */
	struct rt_buf *payload;
	uint64_t t0;
	unsigned outstanding;
	bool stopping;
};

static void issue(struct rt_actor *self);

static void
finish(struct rt_actor *self)
{
	struct driver *d = rt_actor_state(self);
	struct job *j = d->job;

	j->elapsed = (double)(rt_now_ns(rt_actor_loop(self)) - d->t0) / 1e9;
	rt_buf_put(&d->payload);
	pthread_mutex_lock(&j->mu);
	j->done = true;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	rt_actor_stop(self);
}

static void
on_reply(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct driver *d = rt_actor_state(self);

	d->outstanding--;
	if (rc == 0)
		d->job->calls++;
	else
		d->job->errors++;
	if (!d->stopping) {
		issue(self);
		return;
	}
	if (d->outstanding == 0)
		finish(self);
}

static void
issue(struct rt_actor *self)
{
	struct driver *d = rt_actor_state(self);
	struct rt_msg *m = rt_msg_new(CFS_MSG_PING);

	if (!m)
		CFS_PANIC("bench: out of memory");
	if (d->payload && rt_msg_add_iov(m, d->payload, 0, d->job->payload) != 0)
		CFS_PANIC("bench: add_iov");
	if (rt_call(self, d->job->dst, m, 10000, on_reply, NULL) != 0) {
		rt_msg_free(&m);
		d->job->errors++;
		return;
	}
	d->outstanding++;
}

static void
stop_run(struct rt_timer *t, void *arg)
{
	struct rt_actor *self = arg;
	struct driver *d = rt_actor_state(self);

	d->stopping = true;
	if (d->outstanding == 0)
		finish(self);
}

static void
kick(struct rt_timer *t, void *arg)
{
	struct rt_actor *self = arg;
	struct driver *d = rt_actor_state(self);

	d->t0 = rt_now_ns(rt_actor_loop(self));
	/* A timer ends the run, as the raw client checks the clock once per
	 * read rather than once per message: no clock read per reply. */
	rt_timer_start(&d->stop, (uint64_t)(d->job->seconds * 1e3), 0);
	for (unsigned i = 0; i < d->job->window; i++)
		issue(self);
	if (d->outstanding == 0)
		finish(self);
}

static int
driver_init(struct rt_actor *self, const void *arg)
{
	struct driver *d = rt_actor_state(self);

	d->job = (struct job *)arg;
	if (d->job->payload) {
		d->payload = rt_buf_get(d->job->payload);
		if (!d->payload)
			return -ENOMEM;
		memset(d->payload->data, 0xa5, d->job->payload);
		d->payload->len = d->job->payload;
	}
	rt_timer_init(rt_actor_loop(self), &d->kick, kick, self);
	rt_timer_init(rt_actor_loop(self), &d->stop, stop_run, self);
	rt_timer_start(&d->kick, 0, 0);
	return 0;
}

static void
driver_fini(struct rt_actor *self)
{
	struct driver *d = rt_actor_state(self);

	rt_timer_stop(&d->kick);
	rt_timer_stop(&d->stop);
	rt_buf_put(&d->payload);
}

static const rt_handler_fn driver_handlers[CFS_MSG__COUNT];
static const struct rt_actor_kind driver_kind = {
	.name = "bench-driver",
	.state_size = sizeof(struct driver),
	.init = driver_init,
	.fini = driver_fini,
	.handlers = driver_handlers,
};

/* Run one job on `loop` and wait for it. Returns calls per second. */
static double
run_job(struct rt_loop *loop, struct job *j)
{
	cfs_addr_t addr;
	int rc;

	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	j->done = false;
	j->calls = j->errors = 0;
	rc = rt_spawn(loop, &driver_kind, j, 0, &addr);
	if (rc != 0) {
		fprintf(stderr, "bench: spawn driver: %s\n", cfs_strerror(rc));
		exit(1);
	}
	pthread_mutex_lock(&j->mu);
	while (!j->done)
		pthread_cond_wait(&j->cv, &j->mu);
	pthread_mutex_unlock(&j->mu);
	if (j->errors)
		fprintf(stderr, "bench: %llu calls failed\n", (unsigned long long)j->errors);
	return (double)j->calls / j->elapsed;
}

/* ------------------------------------------------------ raw TCP baselines */

static int
tcp_listener(uint16_t *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0) {
		perror("bench: raw listen");
		exit(1);
	}
	getsockname(fd, (struct sockaddr *)&a, &al);
	*port = ntohs(a.sin_port);
	return fd;
}

static int
tcp_connect(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		perror("bench: raw connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Raw ping-pong: the server echoes every byte; the client keeps `window`
 * messages of `size` bytes in flight, both on libev, non-blocking. */
struct raw_pp {
	int lfd, sfd, cfd;
	size_t size;
	unsigned window;
	double seconds;
	uint64_t msgs;
	double elapsed;
	atomic_bool server_quit;
};

static void
raw_echo_cb(struct ev_loop *l, ev_io *w, int revents)
{
	char buf[65536];
	ssize_t n = read(w->fd, buf, sizeof(buf));

	if (n <= 0) {
		ev_io_stop(l, w);
		ev_break(l, EVBREAK_ALL);
		return;
	}
	for (ssize_t off = 0; off < n;) {
		ssize_t k = write(w->fd, buf + off, (size_t)(n - off));

		if (k < 0 && errno == EAGAIN)
			continue;	/* tiny windows: the socket buffer never fills */
		if (k < 0)
			return;
		off += k;
	}
}

static void *
raw_server(void *arg)
{
	struct raw_pp *r = arg;
	struct ev_loop *l = ev_loop_new(EVFLAG_AUTO);
	ev_io w;
	int one = 1;

	r->sfd = accept(r->lfd, NULL, NULL);
	setsockopt(r->sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_io_init(&w, raw_echo_cb, r->sfd, EV_READ);
	ev_io_start(l, &w);
	ev_run(l, 0);
	ev_loop_destroy(l);
	close(r->sfd);
	return NULL;
}

struct raw_client {
	struct raw_pp *r;
	size_t partial;
	uint64_t deadline_sent;
	double t_end;
	unsigned inflight;
	bool stopping;
	char *msg;
};

static void
raw_client_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct raw_client *c = w->data;
	char buf[65536];
	ssize_t n = read(w->fd, buf, sizeof(buf));
	size_t got;

	if (n <= 0) {
		ev_break(l, EVBREAK_ALL);
		return;
	}
	c->partial += (size_t)n;
	got = c->partial / c->r->size;
	c->partial %= c->r->size;
	c->r->msgs += got;
	c->inflight -= (unsigned)got;
	if (!c->stopping && mono_s() >= c->t_end)
		c->stopping = true;
	if (c->stopping) {
		if (c->inflight == 0)
			ev_break(l, EVBREAK_ALL);
		return;
	}
	/* Answer every completed message at once, as the RPC path batches its
	 * sends per loop iteration: one write for all of them. */
	if (got && write(w->fd, c->msg, got * c->r->size) != (ssize_t)(got * c->r->size))
		ev_break(l, EVBREAK_ALL);
	c->inflight += (unsigned)got;
}

static double
raw_pingpong(size_t size, unsigned window, double seconds)
{
	struct raw_pp r = {.size = size, .window = window, .seconds = seconds};
	struct raw_client c = {.r = &r};
	struct ev_loop *l = ev_loop_new(EVFLAG_AUTO);
	pthread_t th;
	uint16_t port;
	ev_io w;
	double t0;

	r.lfd = tcp_listener(&port);
	pthread_create(&th, NULL, raw_server, &r);
	r.cfd = tcp_connect(port);
	c.msg = calloc(window, size);
	ev_io_init(&w, raw_client_cb, r.cfd, EV_READ);
	w.data = &c;
	ev_io_start(l, &w);
	t0 = mono_s();
	c.t_end = t0 + seconds;
	if (write(r.cfd, c.msg, window * size) == (ssize_t)(window * size))
		c.inflight = window;
	ev_run(l, 0);
	r.elapsed = mono_s() - t0;
	ev_loop_destroy(l);
	shutdown(r.cfd, SHUT_RDWR);
	close(r.cfd);
	pthread_join(th, NULL);
	close(r.lfd);
	free(c.msg);
	return (double)r.msgs / r.elapsed;
}

/* Raw bulk: one thread writes 1 MiB buffers, the other reads them. */
struct raw_bulk {
	int lfd;
	size_t chunk;
	uint64_t bytes;
};

static void *
raw_bulk_reader(void *arg)
{
	struct raw_bulk *b = arg;
	int fd = accept(b->lfd, NULL, NULL);
	char *buf = aligned_alloc(4096, b->chunk);
	ssize_t n;

	while ((n = read(fd, buf, b->chunk)) > 0)
		b->bytes += (uint64_t)n;
	free(buf);
	close(fd);
	return NULL;
}

static double
raw_bulk(size_t chunk, double seconds)
{
	struct raw_bulk b = {.chunk = chunk};
	pthread_t th;
	uint16_t port;
	char *buf = aligned_alloc(4096, chunk);
	double t0, el;
	int fd;

	memset(buf, 0xa5, chunk);
	b.lfd = tcp_listener(&port);
	pthread_create(&th, NULL, raw_bulk_reader, &b);
	fd = tcp_connect(port);
	t0 = mono_s();
	while (mono_s() - t0 < seconds) {
		for (size_t off = 0; off < chunk;) {
			ssize_t k = write(fd, buf + off, chunk - off);

			if (k <= 0)
				goto out;
			off += (size_t)k;
		}
	}
out:
	close(fd);
	pthread_join(th, NULL);
	el = mono_s() - t0;
	close(b.lfd);
	free(buf);
	return (double)b.bytes / el;
}

/* --------------------------------------------------------------- main */

struct row {
	const char *name;
	const char *unit;
	double cand[16], base[16];
	bool has_base;
};

static void
print_row(struct row *r, double scale)
{
	double c = bench_median(r->cand, g_rounds) / scale;

	if (r->has_base) {
		double b = bench_median(r->base, g_rounds) / scale;

		printf("%-34s %14.0f %14.0f %8.2f  %s\n", r->name, c, b, c / b, r->unit);
	} else {
		printf("%-34s %14.0f %14s %8s  %s\n", r->name, c, "-", "-", r->unit);
	}
}

int
main(int argc, char **argv)
{
	/* Not pinned: the raw baseline's threads are not either, and on a busy
	 * machine a pinned thread cannot move off a CPU another process holds. */
	struct rt_config scfg = {.loops = 1, .pin = false, .node_id = 1};
	struct rt_config ccfg = {.loops = 1, .node_id = 0};
	struct rt_config lcfg = {.loops = 2, .pin = true, .node_id = 1};
	struct rt *srt, *crt, *lrt;
	struct net *snet, *cnet;
	struct net_config ncfg;
	cfs_addr_t a0, a1;
	uint32_t alias;
	char ep[64];
	struct row rows[] = {
		{"actor calls, same loop", "calls/s"},
		{"actor calls, across loops", "calls/s"},
		{"rpc tcp, 1 in flight", "calls/s", .has_base = true},
		{"rpc tcp, 64 in flight", "calls/s", .has_base = true},
		{"bulk tcp, 1 MiB payloads", "MiB/s", .has_base = true},
	};
	struct wire_buf wb;
	struct rt_msg *probe;
	size_t frame_size;

	if (argc > 1)
		g_seconds = atof(argv[1]);
	if (argc > 2)
		g_rounds = (unsigned)atoi(argv[2]);
	if (g_seconds <= 0 || g_rounds == 0 || g_rounds > 16) {
		fprintf(stderr, "usage: bench_rt [SECONDS_PER_RUN [ROUNDS<=16]]\n");
		return 2;
	}
	rt_log_set_level(RT_LOG_WARN);
	printf("bench_rt: %s\n", bench_net_setup());

	/* In-process: a driver on loop 0 calls nodectl actors on loops 0 and 1. */
	rt_create(&lcfg, &lrt);
	rt_spawn(rt_loop_at(lrt, 0), &nodectl_kind, NULL, CFS_LOCAL_NODECTL, &a0);
	rt_spawn(rt_loop_at(lrt, 1), &nodectl_kind, NULL, 0, &a1);
	rt_start(lrt, false);

	/* Over TCP: a server runtime (1 loop) and a client runtime (1 loop). */
	rt_create(&scfg, &srt);
	net_config_init(&ncfg);
	ncfg.listen = "127.0.0.1:0";
	ncfg.limits.max_payload = 64ull << 20;
	net_create(srt, &ncfg, &snet);
	rt_spawn(rt_loop_at(srt, 0), &nodectl_kind, NULL, CFS_LOCAL_NODECTL, &a0);
	rt_start(srt, false);
	rt_create(&ccfg, &crt);
	net_config_init(&ncfg);
	ncfg.listen = NULL;
	net_create(crt, &ncfg, &cnet);
	rt_start(crt, false);
	snprintf(ep, sizeof(ep), "127.0.0.1:%u", net_listen_port(snet));
	if (net_connect_alias(cnet, ep, &alias) != 0) {
		fprintf(stderr, "bench: cannot name %s\n", ep);
		return 1;
	}

	/* The raw ping-pong moves frames exactly as large as our ping request. */
	probe = rt_msg_new(CFS_MSG_PING);
	wire_buf_init(&wb);
	RT_BODY(probe, ping)->sent_ns = 1;
	probe->req_id = 1;
	probe->src = CFS_ADDR(1, 0x01000100);
	probe->dst = CFS_ADDR(0, CFS_LOCAL_NODECTL);
	wire_encode(&wb, probe, NULL);
	frame_size = wb.len;
	wire_buf_fini(&wb);
	rt_msg_free(&probe);

	for (unsigned r = 0; r < g_rounds; r++) {
		struct job j;

		j = (struct job){.dst = CFS_ADDR(1, CFS_LOCAL_NODECTL), .window = 128,
				 .seconds = g_seconds};
		rows[0].cand[r] = run_job(rt_loop_at(lrt, 0), &j);
		j = (struct job){.dst = a1, .window = 128, .seconds = g_seconds};
		rows[1].cand[r] = run_job(rt_loop_at(lrt, 0), &j);

		j = (struct job){.dst = CFS_ADDR(alias, CFS_LOCAL_NODECTL), .window = 1,
				 .seconds = g_seconds};
		rows[2].cand[r] = run_job(rt_loop_at(crt, 0), &j);
		rows[2].base[r] = raw_pingpong(frame_size, 1, g_seconds);
		j = (struct job){.dst = CFS_ADDR(alias, CFS_LOCAL_NODECTL), .window = 64,
				 .seconds = g_seconds};
		rows[3].cand[r] = run_job(rt_loop_at(crt, 0), &j);
		rows[3].base[r] = raw_pingpong(frame_size, 64, g_seconds);
		j = (struct job){.dst = CFS_ADDR(alias, CFS_LOCAL_NODECTL), .window = 4,
				 .payload = 1u << 20, .seconds = g_seconds};
		rows[4].cand[r] = run_job(rt_loop_at(crt, 0), &j) * (double)(1u << 20);
		rows[4].base[r] = raw_bulk(1u << 20, g_seconds);
	}

	printf("bench_rt: %u rounds of %.1f s each, medians; ping frame %zu bytes\n", g_rounds,
	       g_seconds, frame_size);
	printf("%-34s %14s %14s %8s  %s\n", "test", "chainfs", "baseline", "ratio", "unit");
	for (unsigned i = 0; i < 4; i++)
		print_row(&rows[i], 1);
	print_row(&rows[4], 1 << 20);
	printf("actor messages/s (2 per call): same loop %.0f, across loops %.0f\n",
	       2 * bench_median(rows[0].cand, g_rounds), 2 * bench_median(rows[1].cand, g_rounds));
	printf("ratio: rpc_qd1=%.2f rpc_qd64=%.2f bulk_1m=%.2f\n",
	       bench_median(rows[2].cand, g_rounds) / bench_median(rows[2].base, g_rounds),
	       bench_median(rows[3].cand, g_rounds) / bench_median(rows[3].base, g_rounds),
	       bench_median(rows[4].cand, g_rounds) / bench_median(rows[4].base, g_rounds));

	rt_shutdown(crt);
	rt_destroy(&crt);
	net_destroy(&cnet);
	rt_shutdown(srt);
	rt_destroy(&srt);
	net_destroy(&snet);
	rt_shutdown(lrt);
	rt_destroy(&lrt);
	return 0;
}

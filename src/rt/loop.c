/* SPDX-License-Identifier: MIT */
/*
 * Loops and the runtime: one libev loop per thread, optionally pinned; the
 * inbox drain (ev_async), the per-iteration work done before the loop blocks
 * (ev_prepare: the same-loop run queue, reaping stopped actors, flush hooks),
 * start-up with the transport's per-loop init, and shutdown: each loop stops
 * its actors, finalizes its transport state and leaves ev_run; rt_destroy joins
 * the threads and frees what is left.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_setaffinity_np, pthread_setname_np */
#endif
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RT_LOG_SUBSYS "rt"
#include "rt/rt_internal.h"

#define DEFAULT_TIMEOUT_MS 5000u
#define DEFAULT_POOL_BYTES ((size_t)256 << 20)
/* Shutdown alternates stopping actors and draining the run queue: fini may send
 * to actors not stopped yet. A few rounds always settle it; the cap is a guard. */
#define SHUTDOWN_ROUNDS 16

RT_TLS struct rt_loop *tls_loop;

/* ------------------------------------------------------------ per iteration */

void
rt_loop_push_now(struct rt_loop *dst, struct rt_msg *m)
{
	/* Only the push that finds the inbox empty wakes the loop: one eventfd
	 * write per batch, however many messages the batch holds. */
	atomic_fetch_add_explicit(&dst->inbox_n, 1, memory_order_relaxed);
	if (rt_mpsc_push(&dst->inbox, m))
		ev_async_send(dst->ev, &dst->wake);
}

void
rt_loop_push(struct rt_loop *dst, struct rt_msg *m)
{
	struct rt_loop *cur = tls_loop;

	atomic_fetch_add_explicit(&dst->inbox_n, 1, memory_order_relaxed);
	if (!rt_mpsc_push(&dst->inbox, m))
		return;
	/* From inside a running loop, wake at the end of the iteration: by then
	 * the whole batch is in the inbox and the receiver drains it in one go
	 * (cross-core wake-ups dominate on pinned loops, virtual machines most). */
	if (cur && cur->defer_wakes && cur->rt == dst->rt) {
		cur->wake_mask |= 1ull << dst->index;
		return;
	}
	ev_async_send(dst->ev, &dst->wake);
}

static void
loop_send_wakes(struct rt_loop *loop)
{
	uint64_t mask = loop->wake_mask;

	loop->wake_mask = 0;
	while (mask) {
		struct rt_loop *dst = loop->rt->loops[__builtin_ctzll(mask)];

		mask &= mask - 1;
		ev_async_send(dst->ev, &dst->wake);
	}
}

unsigned
rt_loop_run_queue(struct rt_loop *loop, unsigned budget)
{
	struct rt_msg *m;

	while (budget > 0 && (m = rt_msgq_pop(&loop->runq)) != NULL) {
		rt_dispatch(loop, m);
		budget--;
	}
	return budget;
}

static void
loop_item(struct rt_loop *loop, struct rt_msg *m)
{
	int rc;

	if (m->type == RT_MSG_T_POST) {
		struct rt_post *post = RT_CONTAINER_OF(m, struct rt_post, m);
		void (*fn)(void *) = post->fn;
		void *arg = post->arg;

		free(post);
		fn(arg);
		return;
	}
	if (m->flags & RT_MSG_F__OUT) {
		/* Another loop's message for a connection of ours. */
		rc = rt_route(loop, m);
		if (rc != 0) {
			RT_DEBUG("dropping %s req=%llx on conn %llx: %s", cfs_msg_name(m->type),
				 (unsigned long long)m->req_id, (unsigned long long)m->conn,
				 cfs_errname(rc));
			rt_msg_free(&m);
		}
		return;
	}
	rt_dispatch(loop, m);
}

static void
loop_drain_inbox(struct rt_loop *loop)
{
	struct rt_msg *m, *next;
	size_t n = 0;

	for (m = rt_mpsc_take(&loop->inbox); m; m = next) {
		next = m->next;
		m->next = NULL;
		n++;
		loop_item(loop, m);
	}
	/* Once per batch: the counter is shared with every pushing thread. */
	if (n)
		atomic_fetch_sub_explicit(&loop->inbox_n, n, memory_order_relaxed);
}

static void
loop_run_flush(struct rt_loop *loop)
{
	/* Index loop: a hook may add hooks (and move the array). */
	for (unsigned i = 0; i < loop->nflush; i++)
		loop->flush[i].fn(loop->flush[i].arg);
}

static void loop_shutdown(struct rt_loop *loop);

static void
loop_on_wake(struct ev_loop *ev, ev_async *w, int revents)
{
	struct rt_loop *loop = w->data;

	rt_stat_add(&loop->wakeups, 1);
	loop_drain_inbox(loop);
	if (atomic_load(&loop->rt->shutdown))
		loop_shutdown(loop);
}

/* Runs after every callback of an iteration and before the loop blocks. */
static void
loop_on_prepare(struct ev_loop *ev, ev_prepare *w, int revents)
{
	struct rt_loop *loop = w->data;

	rt_loop_run_queue(loop, RT_RUNQ_BUDGET);
	rt_actor_reap(loop);
	rt_buf_pool_drain(&loop->pool);
	loop_run_flush(loop);
	/* The loop may block now: the next iteration reads the clock afresh. */
	loop->now_valid = false;
	/* Work left (budget spent, or created by fini or a flush hook): poll
	 * without blocking and come back. */
	if (!rt_msgq_empty(&loop->runq) || loop->dead)
		ev_idle_start(ev, &loop->idle);
	else
		ev_idle_stop(ev, &loop->idle);
	loop_send_wakes(loop);
	loop->defer_wakes = false;
}

/* First callback after each poll (highest priority): the iteration's handlers
 * run from here on, and their cross-loop wakes go out together in prepare. */
static void
loop_on_check(struct ev_loop *ev, ev_check *w, int revents)
{
	struct rt_loop *loop = w->data;

	loop->defer_wakes = loop->in_run;
	/* The poll may have slept: a time cached after rt's prepare (by a
	 * watcher of lower priority that made a call) is from before it. */
	loop->now_valid = false;
}

static void
loop_on_idle(struct ev_loop *ev, ev_idle *w, int revents)
{
	/* Nothing: being active is what keeps the next poll from blocking. */
}

/* ---------------------------------------------------------------- shutdown */

static void
loop_shutdown(struct rt_loop *loop)
{
	struct rt *rt = loop->rt;
	struct rt_msg *m;

	if (loop->down)
		return;
	loop->down = true;
	/* From here on a spawn posted from another thread is refused; the ones
	 * already in the inbox are answered by the drain below. */
	pthread_mutex_lock(&rt->ctl_lock);
	loop->closed = true;
	pthread_mutex_unlock(&rt->ctl_lock);
	loop_drain_inbox(loop);
	for (int round = 0; round < SHUTDOWN_ROUNDS; round++) {
		rt_loop_stop_actors(loop);
		rt_loop_run_queue(loop, UINT_MAX);
		rt_actor_reap(loop);
		if (loop->actors.n == 0 && rt_msgq_empty(&loop->runq))
			break;
	}
	/* Let batched writes of final replies go out before the transport closes. */
	loop_run_flush(loop);
	if (loop->tinit) {
		loop->tinit = false;
		if (rt->tops->loop_fini)
			rt->tops->loop_fini(rt->tctx, loop, loop->tstate);
		loop->tstate = NULL;
	}
	loop->tdown = true;
	while ((m = rt_msgq_pop(&loop->runq)) != NULL)
		rt_msg_free(&m);
	loop_send_wakes(loop);
	loop->defer_wakes = false;
	loop->in_run = false;
	ev_async_stop(loop->ev, &loop->wake);
	ev_prepare_stop(loop->ev, &loop->prepare);
	ev_check_stop(loop->ev, &loop->check);
	ev_idle_stop(loop->ev, &loop->idle);
	ev_break(loop->ev, EVBREAK_ALL);
}

void
rt_shutdown(struct rt *rt)
{
	/* Async-signal-safe: an atomic store and ev_async_send. */
	atomic_store(&rt->shutdown, true);
	for (unsigned i = 0; i < rt->nloops; i++)
		ev_async_send(rt->loops[i]->ev, &rt->loops[i]->wake);
}

/* ------------------------------------------------------------------ threads */

/* Pin to the index-th CPU this process may run on (containers often allow a
 * subset, so CPU i itself may be off limits). */
static void
loop_pin(struct rt_loop *loop)
{
	cpu_set_t allowed, one;
	int count, cpu = -1, seen = 0, rc;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
		RT_WARN("loop %u: cannot read the CPU affinity; not pinned", loop->index);
		return;
	}
	count = CPU_COUNT(&allowed);
	if (count <= 0)
		return;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &allowed))
			continue;
		if (seen++ == (int)(loop->index % (unsigned)count)) {
			cpu = c;
			break;
		}
	}
	if (cpu < 0)
		return;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	rc = pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	if (rc != 0) {
		RT_ERR(-rc, "loop %u: cannot pin to cpu %d", loop->index, cpu);
		return;
	}
	loop->cpu = cpu;
}

/* On the loop's thread, before ev_run: pinning and the transport's state. */
static int
loop_enter(struct rt_loop *loop)
{
	struct rt *rt = loop->rt;
	char name[16];
	int rc;

	tls_loop = loop;
	snprintf(name, sizeof(name), "cfs-loop%u", loop->index);
	pthread_setname_np(pthread_self(), name);
	if (rt->cfg.pin)
		loop_pin(loop);
	if (rt->tops && rt->tops->loop_init) {
		rc = rt->tops->loop_init(rt->tctx, loop, &loop->tstate);
		if (rc < 0) {
			RT_ERR(rc, "loop %u: transport %s init failed", loop->index,
			       rt->tops->name ? rt->tops->name : "?");
			return rc;
		}
		loop->tinit = true;
	}
	return 0;
}

static void *
loop_thread(void *arg)
{
	struct rt_loop *loop = arg;
	struct rt *rt = loop->rt;
	int rc = loop_enter(loop);

	pthread_mutex_lock(&rt->ctl_lock);
	loop->init_rc = rc;
	loop->init_done = true;
	pthread_cond_broadcast(&rt->ctl_cond);
	pthread_mutex_unlock(&rt->ctl_lock);
	/* Even after a failed init: rt_start shuts down, and the loop must be
	 * running to stop its actors on its own thread. */
	loop->in_run = true;
	ev_run(loop->ev, 0);
	loop->in_run = false;
	tls_loop = NULL;
	return NULL;
}

/* ------------------------------------------------------- create, destroy */

static int
loop_create(struct rt *rt, unsigned index, struct rt_loop **out)
{
	struct rt_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return -ENOMEM;
	loop->ev = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!loop->ev) {
		free(loop);
		return -EMFILE;
	}
	ev_set_userdata(loop->ev, loop);
	loop->rt = rt;
	loop->index = index;
	loop->cpu = -1;
	rt_mpsc_init(&loop->inbox);
	rt_msgq_init(&loop->runq);
	loop->dead_tailp = &loop->dead;
	loop->next_serial = RT_FIRST_SERIAL;
	rt_pending_table_init(loop);
	rt_buf_pool_init(&loop->pool, rt, (uint16_t)index, rt->cfg.buf_pool_max_bytes);
	rt_msg_cache_init(&loop->mcache);
	atomic_init(&loop->handled, 0);
	atomic_init(&loop->wakeups, 0);
	atomic_init(&loop->threaded, false);
	ev_async_init(&loop->wake, loop_on_wake);
	loop->wake.data = loop;
	ev_async_start(loop->ev, &loop->wake);
	ev_prepare_init(&loop->prepare, loop_on_prepare);
	loop->prepare.data = loop;
	ev_prepare_start(loop->ev, &loop->prepare);
	ev_idle_init(&loop->idle, loop_on_idle);
	loop->idle.data = loop;
	ev_check_init(&loop->check, loop_on_check);
	ev_set_priority(&loop->check, EV_MAXPRI);
	loop->check.data = loop;
	ev_check_start(loop->ev, &loop->check);
	*out = loop;
	return 0;
}

static void
loop_free(struct rt_loop *loop)
{
	rt_pending_table_fini(loop);
	rt_actor_table_fini(loop);
	free(loop->flush);
	rt_msg_cache_fini(&loop->mcache);
	rt_buf_pool_fini(&loop->pool);
	ev_loop_destroy(loop->ev);
	free(loop);
}

int
rt_create(const struct rt_config *cfg, struct rt **out)
{
	struct rt *rt;
	unsigned n;
	int rc;

	*out = NULL;
	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	if (cfg)
		rt->cfg = *cfg;
	if (rt->cfg.default_timeout_ms == 0)
		rt->cfg.default_timeout_ms = DEFAULT_TIMEOUT_MS;
	if (rt->cfg.buf_pool_max_bytes == 0)
		rt->cfg.buf_pool_max_bytes = DEFAULT_POOL_BYTES;
	n = rt->cfg.loops;
	if (n == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);

		n = c > 0 ? (unsigned)c : 1;
		if (n > RT_MAX_LOOPS)
			n = RT_MAX_LOOPS;
	}
	if (n > RT_MAX_LOOPS) {
		free(rt);
		return -EINVAL;
	}
	rt->cfg.loops = n;
	atomic_init(&rt->shutdown, false);
	pthread_mutex_init(&rt->ctl_lock, NULL);
	pthread_cond_init(&rt->ctl_cond, NULL);
	for (unsigned i = 0; i < n; i++) {
		rc = loop_create(rt, i, &rt->loops[i]);
		if (rc != 0)
			goto out_destroy;
		rt->nloops++;
	}
	*out = rt;
	return 0;

out_destroy:
	rt_destroy(&rt);
	return rc;
}

void
rt_set_transport(struct rt *rt, const struct rt_transport_ops *ops, void *ctx)
{
	if (rt->started)
		CFS_PANIC("rt_set_transport after rt_start");
	rt->tops = ops;
	rt->tctx = ctx;
}

int
rt_start(struct rt *rt, bool run_loop0_in_caller)
{
	unsigned first = run_loop0_in_caller ? 1 : 0;
	int rc = 0, err;

	if (rt->started)
		return -EALREADY;
	rt->started = true;
	rt->loop0_in_caller = run_loop0_in_caller;
	/* Mark all first: a loop thread spawning onto a sibling must post to it. */
	for (unsigned i = first; i < rt->nloops; i++)
		atomic_store(&rt->loops[i]->threaded, true);
	for (unsigned i = first; i < rt->nloops; i++) {
		struct rt_loop *loop = rt->loops[i];

		err = pthread_create(&loop->thread, NULL, loop_thread, loop);
		if (err != 0) {
			rc = -err;
			RT_ERR(rc, "cannot start the thread of loop %u", i);
			for (unsigned j = i; j < rt->nloops; j++)
				atomic_store(&rt->loops[j]->threaded, false);
			break;
		}
		loop->thread_created = true;
	}
	pthread_mutex_lock(&rt->ctl_lock);
	for (unsigned i = first; i < rt->nloops; i++) {
		struct rt_loop *loop = rt->loops[i];

		if (!loop->thread_created)
			continue;
		while (!loop->init_done)
			pthread_cond_wait(&rt->ctl_cond, &rt->ctl_lock);
		if (loop->init_rc != 0 && rc == 0)
			rc = loop->init_rc;
	}
	pthread_mutex_unlock(&rt->ctl_lock);
	if (rc != 0)
		rt_shutdown(rt);
	return rc;
}

int
rt_run_loop0(struct rt *rt)
{
	struct rt_loop *loop = rt->loops[0];
	int rc;

	if (!rt->started || !rt->loop0_in_caller || loop->down)
		return -EINVAL;
	atomic_store(&loop->threaded, true);
	rc = loop_enter(loop);
	if (rc == 0) {
		loop->in_run = true;
		ev_run(loop->ev, 0);
		loop->in_run = false;
	} else {
		atomic_store(&loop->threaded, false);
	}
	tls_loop = NULL;
	return rc;
}

void
rt_destroy(struct rt **prt)
{
	struct rt *rt = *prt;

	*prt = NULL;
	if (!rt)
		return;
	if (tls_loop && tls_loop->rt == rt)
		CFS_PANIC("rt_destroy called from one of its own loops");
	rt_shutdown(rt);
	for (unsigned i = 0; i < rt->nloops; i++) {
		if (rt->loops[i]->thread_created)
			pthread_join(rt->loops[i]->thread, NULL);
	}
	/* Loops no thread ran (never started, or loop 0 of a caller that did not
	 * run it): stop their actors here, as if on the loop. */
	for (unsigned i = 0; i < rt->nloops; i++) {
		struct rt_loop *loop = rt->loops[i];

		if (!loop->down) {
			atomic_store(&loop->threaded, false);
			tls_loop = loop;
			loop_shutdown(loop);
			tls_loop = NULL;
		}
	}
	/* Everything still queued was sent to a loop that had already stopped.
	 * Free it all before the pools: messages hold buffers of any loop. */
	for (unsigned i = 0; i < rt->nloops; i++) {
		struct rt_msg *m, *next;

		for (m = rt_mpsc_take(&rt->loops[i]->inbox); m; m = next) {
			next = m->next;
			rt_item_free(m);
		}
	}
	for (unsigned i = 0; i < rt->nloops; i++)
		loop_free(rt->loops[i]);
	pthread_cond_destroy(&rt->ctl_cond);
	pthread_mutex_destroy(&rt->ctl_lock);
	free(rt);
}

/* --------------------------------------------------------------- accessors */

unsigned
rt_loop_count(const struct rt *rt)
{
	return rt->nloops;
}

struct rt_loop *
rt_loop_at(struct rt *rt, unsigned index)
{
	return index < rt->nloops ? rt->loops[index] : NULL;
}

struct rt_loop *
rt_loop_current(void)
{
	return tls_loop;
}

unsigned
rt_loop_index(const struct rt_loop *loop)
{
	return loop->index;
}

struct ev_loop *
rt_loop_ev(struct rt_loop *loop)
{
	return loop->ev;
}

struct rt *
rt_loop_rt(struct rt_loop *loop)
{
	return loop->rt;
}

uint32_t
rt_node_id(const struct rt *rt)
{
	return rt->cfg.node_id;
}

int
rt_loop_post(struct rt_loop *loop, void (*fn)(void *arg), void *arg)
{
	struct rt_post *post = calloc(1, sizeof(*post));

	if (!post)
		return -ENOMEM;
	post->m.type = RT_MSG_T_POST;
	post->fn = fn;
	post->arg = arg;
	/* At once: the poster may block until fn has run (it must not be a
	 * loop waiting on itself, though). */
	rt_loop_push_now(loop, &post->m);
	return 0;
}

size_t
rt_loop_backlog(const struct rt_loop *loop)
{
	return loop->runq.n + atomic_load_explicit(&loop->inbox_n, memory_order_relaxed);
}

size_t
rt_inbox_max(const struct rt *rt, uint64_t loops)
{
	size_t max = 0;

	for (unsigned i = 0; i < rt->nloops; i++) {
		size_t n;

		if (!(loops & rt_loop_bit(i)))
			continue;
		n = atomic_load_explicit(&rt->loops[i]->inbox_n, memory_order_relaxed);

		max = n > max ? n : max;
	}
	return max;
}

void
rt_loop_add_flush(struct rt_loop *loop, void (*fn)(void *arg), void *arg)
{
	if (tls_loop != loop && atomic_load(&loop->threaded))
		CFS_PANIC("rt_loop_add_flush called off loop %u", loop->index);
	if (loop->nflush == loop->flush_cap) {
		unsigned cap = loop->flush_cap ? loop->flush_cap * 2 : 4;
		struct rt_flush *f = realloc(loop->flush, cap * sizeof(*f));

		if (!f)
			CFS_PANIC("out of memory adding a flush hook");
		loop->flush = f;
		loop->flush_cap = cap;
	}
	loop->flush[loop->nflush++] = (struct rt_flush){.fn = fn, .arg = arg};
}

void
rt_loop_stats(struct rt_loop *loop, struct rt_loop_stats *out)
{
	*out = (struct rt_loop_stats){
		.index = loop->index,
		.cpu = loop->cpu,
		.actors = loop->actors.n,
		.handled = rt_stat_get(&loop->handled),
		.wakeups = rt_stat_get(&loop->wakeups),
	};
}

void
rt_loop_step(struct rt_loop *loop)
{
	struct rt_loop *prev = tls_loop;

	if (atomic_load(&loop->threaded))
		CFS_PANIC("rt_loop_step on loop %u, which a thread runs", loop->index);
	tls_loop = loop;
	if (!loop->down)
		ev_run(loop->ev, EVRUN_NOWAIT);
	tls_loop = prev;
}

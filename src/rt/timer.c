/* SPDX-License-Identifier: MIT */
/*
 * Timers: a thin layer over libev's ev_timer so that actors never touch libev
 * directly and a simulated loop can later replace this file. A timer belongs to
 * one loop and is started and stopped only on that loop's thread (or before the
 * loop runs). Its owner stops it before freeing it, typically in fini.
 */
#include "rt/rt_internal.h"

static void
timer_fire(struct ev_loop *ev, ev_timer *w, int revents)
{
	struct rt_timer *t = RT_CONTAINER_OF(w, struct rt_timer, w);

	t->cb(t, t->cb_arg);
}

void
rt_timer_init(struct rt_loop *loop, struct rt_timer *t, rt_timer_fn cb, void *cb_arg)
{
	ev_timer_init(&t->w, timer_fire, 0., 0.);
	t->loop = loop;
	t->cb = cb;
	t->cb_arg = cb_arg;
}

void
rt_timer_start(struct rt_timer *t, uint64_t after_ms, uint64_t repeat_ms)
{
	ev_timer_stop(t->loop->ev, &t->w);
	ev_timer_set(&t->w, (double)after_ms / 1000., (double)repeat_ms / 1000.);
	ev_timer_start(t->loop->ev, &t->w);
}

void
rt_timer_stop(struct rt_timer *t)
{
	ev_timer_stop(t->loop->ev, &t->w);
}

/* SPDX-License-Identifier: MIT */
/*
 * The clock edge: the only file of chainfs that reads a clock. Monotonic time
 * (deadlines, uptime) and wall time (logs, metadata timestamps) come through a
 * small ops table so that a deterministic simulator can install virtual time.
 */
#include <time.h>

#include "rt/rt_internal.h"

static uint64_t
sys_read(clockid_t id)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC and CLOCK_REALTIME cannot fail on Linux (vDSO). */
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
sys_mono_ns(void *ctx)
{
	return sys_read(CLOCK_MONOTONIC);
}

static uint64_t
sys_wall_ns(void *ctx)
{
	return sys_read(CLOCK_REALTIME);
}

static const struct rt_clock_ops g_sys_clock = {
	.mono_ns = sys_mono_ns,
	.wall_ns = sys_wall_ns,
};

static const struct rt_clock_ops *g_clock = &g_sys_clock;

void
rt_clock_set_ops(const struct rt_clock_ops *ops)
{
	g_clock = ops ? ops : &g_sys_clock;
}

uint64_t
rt_clock_mono_ns(void)
{
	return g_clock->mono_ns(g_clock->ctx);
}

uint64_t
rt_clock_wall_ns(void)
{
	return g_clock->wall_ns(g_clock->ctx);
}

uint64_t
rt_now_ns(struct rt_loop *loop)
{
	return rt_clock_mono_ns();
}

uint64_t
rt_wall_ns(struct rt_loop *loop)
{
	return rt_clock_wall_ns();
}

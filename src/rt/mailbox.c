/* SPDX-License-Identifier: MIT */
/*
 * The loop's inbox: a lock-free multi-producer single-consumer queue of
 * intrusive messages. Producers push onto a Treiber stack with one CAS; the
 * consumer takes the whole stack with one atomic exchange and reverses it, so
 * each batch comes out oldest first and every producer's messages keep their
 * order. The consumer never pops single items, so there is no ABA problem.
 * Push reports whether the stack was empty: only that push needs to wake the
 * consumer (ev_async_send), which keeps the wake-up syscalls to one per batch.
 */
#include "rt/rt_internal.h"

void
rt_mpsc_init(struct rt_mpsc *q)
{
	atomic_init(&q->head, NULL);
}

bool
rt_mpsc_push(struct rt_mpsc *q, struct rt_msg *m)
{
	struct rt_msg *old = atomic_load_explicit(&q->head, memory_order_relaxed);

	do {
		m->next = old;
	} while (!atomic_compare_exchange_weak_explicit(&q->head, &old, m, memory_order_release,
							memory_order_relaxed));
	return old == NULL;
}

struct rt_msg *
rt_mpsc_take(struct rt_mpsc *q)
{
	struct rt_msg *m, *next, *fifo = NULL;

	if (atomic_load_explicit(&q->head, memory_order_relaxed) == NULL)
		return NULL;
	m = atomic_exchange_explicit(&q->head, NULL, memory_order_acquire);
	/* The stack is newest first; reverse it into arrival order. */
	while (m) {
		next = m->next;
		m->next = fifo;
		fifo = m;
		m = next;
	}
	return fifo;
}

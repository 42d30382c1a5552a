/* SPDX-License-Identifier: MIT */
/*
 * What the files of src/rt share and nobody else sees: the layout of struct rt,
 * struct rt_loop and struct rt_actor, the inbox and run queue, the pending-call
 * table, the buffer pool, the clock edge, and the few functions one rt file
 * calls in another. Tests of rt (and a future deterministic harness) may include
 * it; no other module may.
 *
 * Ownership in one paragraph: everything hanging off a struct rt_loop is touched
 * only by the thread running that loop, except three atomics that other threads
 * may write: the inbox head (rt_mpsc), the buffer pool's return stack, and the
 * loop's counters (relaxed, read racily by status). Control-path state (spawn
 * across loops, start-up handshake) is under rt->ctl_lock.
 */
#ifndef CFS_RT_INTERNAL_H
#define CFS_RT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "rt/rt.h"

/* -------------------------------------------------------- internal markers */

/* Inbox item to hand to the transport on the receiving loop (a message whose
 * conn belongs to that loop). Never leaves rt: cleared before ops->send. */
#define RT_MSG_F__OUT	   (1u << 15)
#define RT_MSG_F__INTERNAL RT_MSG_F__OUT

/* Inbox item that is a struct rt_post (rt_loop_post), not a message. */
#define RT_MSG_T_POST 0xfff0u

/* Written into a freed message so that a second rt_reply()/rt_msg_free() of the
 * same message is caught cheaply (valgrind/ASan catch the rest). Placed in
 * iovcap, past the bytes glibc's allocator reuses for its free-list links. */
#define RT_MSG_POISON 0xdeadbeefu

/* rt_buf.loop of buffers allocated off-loop: plain aligned memory, no pool. */
#define RT_BUF_LOOP_NONE 0xffffu
#define RT_BUF_MIN_SHIFT 12u
#define RT_BUF_CLASSES	 15u /* 4 KiB << 0 .. 4 KiB << 14 = 64 MiB */
#define RT_BUF_MAX_SIZE	 ((size_t)1 << (RT_BUF_MIN_SHIFT + RT_BUF_CLASSES - 1))

/* Messages dispatched from the run queue per loop iteration before the loop
 * polls I/O again: a ping-pong between two actors of one loop cannot starve
 * sockets and timers. */
#define RT_RUNQ_BUDGET 4096u

/* Serials below this are reserved for well-known ids (CFS_LOCAL_NODECTL...). */
#define RT_FIRST_SERIAL 0x100u
#define RT_MAX_SERIAL	0xffffffu

#define RT_CONTAINER_OF(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* Relaxed counters: written by the owning loop only, read racily by status. */
static inline void
rt_stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline uint64_t
rt_stat_get(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* ------------------------------------------------------------------ queues */

/* Intrusive FIFO of messages, single-threaded (the loop's run queue). */
struct rt_msgq {
	struct rt_msg *head;
	struct rt_msg **tailp;
	size_t n;
};

static inline void
rt_msgq_init(struct rt_msgq *q)
{
	q->head = NULL;
	q->tailp = &q->head;
	q->n = 0;
}

static inline bool
rt_msgq_empty(const struct rt_msgq *q)
{
	return q->head == NULL;
}

static inline void
rt_msgq_push(struct rt_msgq *q, struct rt_msg *m)
{
	m->next = NULL;
	*q->tailp = m;
	q->tailp = &m->next;
	q->n++;
}

static inline struct rt_msg *
rt_msgq_pop(struct rt_msgq *q)
{
	struct rt_msg *m = q->head;

	if (m) {
		q->head = m->next;
		if (!q->head)
			q->tailp = &q->head;
		m->next = NULL;
		q->n--;
	}
	return m;
}

/* Multi-producer single-consumer inbox (mailbox.c). */
struct rt_mpsc {
	_Atomic(struct rt_msg *) head;
};

void rt_mpsc_init(struct rt_mpsc *q);
/* Push from any thread; returns true when the inbox was empty before (the only
 * case in which the consumer needs a wake-up). */
bool rt_mpsc_push(struct rt_mpsc *q, struct rt_msg *m);
/* Consumer only: take everything pushed so far, oldest first (FIFO per producer). */
struct rt_msg *rt_mpsc_take(struct rt_mpsc *q);

/* An rt_loop_post() item travels through the inbox dressed as a message. */
struct rt_post {
	struct rt_msg m; /* type RT_MSG_T_POST; first, so the inbox sees a message */
	void (*fn)(void *arg);
	void *arg;
};

/* ------------------------------------------------------------------ buffers */

struct rt_buf_pool {
	struct rt *rt;
	uint16_t index;	  /* owning loop */
	size_t max_bytes; /* cap of cached_bytes */
	size_t cached_bytes;
	struct rt_buf *free[RT_BUF_CLASSES];
	_Atomic(struct rt_buf *) returned; /* puts from other threads */
	/* Owner-only bookkeeping, for leak reports at destroy and for tests. */
	uint64_t allocated; /* taken from the system */
	uint64_t released;  /* given back to the system */
	uint64_t cached;    /* sitting in free[] */
};

void rt_buf_pool_init(struct rt_buf_pool *pool, struct rt *rt, uint16_t index, size_t max_bytes);
/* Owner (or anyone once the owner thread is gone): move returned buffers to free[]. */
void rt_buf_pool_drain(struct rt_buf_pool *pool);
/* Buffers handed out and not yet back (call after rt_buf_pool_drain). */
uint64_t rt_buf_pool_outstanding(const struct rt_buf_pool *pool);
void rt_buf_pool_fini(struct rt_buf_pool *pool);

/* -------------------------------------------------------------------- clock */

/* The clock edge: the only place rt reads time. A simulator installs its own
 * before creating any runtime. Timers still run on libev's clock; a simulated
 * loop drives libev time itself (see README.md). */
struct rt_clock_ops {
	uint64_t (*mono_ns)(void *ctx);
	uint64_t (*wall_ns)(void *ctx);
	void *ctx;
};

/* NULL restores the system clock. Not thread-safe: call before rt_create. */
void rt_clock_set_ops(const struct rt_clock_ops *ops);
uint64_t rt_clock_mono_ns(void);
uint64_t rt_clock_wall_ns(void);

/* ------------------------------------------------------------------- actors */

struct rt_pending;

struct rt_actor {
	struct rt_actor *hnext; /* actor table chain */
	struct rt_actor *dnext; /* loop's reap list */
	struct rt_loop *loop;
	const struct rt_actor_kind *kind;
	cfs_addr_t addr;
	uint32_t local;
	bool stopping;
	_Atomic uint64_t handled;
	uint64_t tag;
	struct rt_pending *pending; /* this actor's calls in flight */
	_Alignas(16) unsigned char state[];
};

/* Open hash of actors by local id, chained; one per loop. */
struct rt_actor_table {
	struct rt_actor **b;
	unsigned bits;
	unsigned n;
};

/* One rt_call in flight: in the loop's table at slot req_id & mask (call.c),
 * in its actor's list and, until its actor stops, in one of the loop's timeout
 * lists. */
struct rt_pending {
	struct rt_pending *hnext; /* free list; lists of calls being completed */
	struct rt_pending *anext;
	struct rt_pending **aprev;
	struct rt_pending *tnext;  /* timeout list, sorted by deadline */
	struct rt_pending **tprev; /* NULL: in no timeout list */
	struct rt_actor *actor;
	uint64_t req_id;
	uint64_t deadline_ns; /* rt_loop_now_ns() + timeout */
	uint32_t dst_node;
	uint16_t resp_type; /* the response it waits for (request type + 1) */
	uint8_t tlist;	    /* index of its timeout list */
	bool answered; /* rt_peer_lost: its response waits in the run queue */
	rt_reply_fn cb;
	void *cb_arg;
};

/*
 * Call timeouts without a libev timer per call. Calls are kept in a few FIFO
 * lists, one per timeout value: appending a call to the list of its own
 * timeout keeps that list sorted by deadline for free, and removing one is an
 * unlink. One ev_timer per loop is armed at the earliest head; it is moved
 * only when a new call would expire before it, and a fire that finds nothing
 * due (the call it was armed for completed) just re-arms. More distinct
 * timeouts than lists share the last one with a sorted insert from the tail.
 */
#define RT_CALL_TLISTS 8u

struct rt_call_tlist {
	uint32_t timeout_ms;
	struct rt_pending *head;
	struct rt_pending **tailp;
};

struct rt_pending_table {
	struct rt_pending **b; /* mask + 1 slots, indexed by req_id & mask */
	size_t mask;
	unsigned n;
	struct rt_pending *freelist; /* recycled entries: no malloc per call */
	unsigned nfree;
	uint64_t counter;
	struct rt_call_tlist tl[RT_CALL_TLISTS];
	unsigned tl_hint; /* list of the last call: usually the next one's too */
	ev_timer timer;
	uint64_t armed_ns; /* deadline the timer is set for; 0: stopped */
};

struct rt_flush {
	void (*fn)(void *arg);
	void *arg;
};

/* ----------------------------------------------------------------- messages */

/* Every message of an ordinary size lives in a slab of this many bytes (header,
 * body, inline arena); loops cache free slabs (msg.c). */
#define RT_MSG_SLAB_SIZE 512u
/* Slabs a loop keeps (512 KiB); more are given back to malloc. */
#define RT_MSG_CACHE_MAX 1024u

struct rt_msg_cache {
	struct rt_msg *free; /* linked through next */
	unsigned n;
	bool vg; /* under valgrind: cached slabs are marked inaccessible */
};

/* --------------------------------------------------------------------- loop */

struct rt_loop {
	struct rt *rt;
	unsigned index;
	int cpu; /* pinned CPU or -1 */
	struct ev_loop *ev;
	ev_async wake;	    /* inbox non-empty, or shutdown */
	ev_prepare prepare; /* run queue, reaping, flush hooks */
	ev_idle idle;	    /* keeps the poll non-blocking while work remains */
	ev_check check;	    /* after each poll: cross-loop wakes may be deferred */

	struct rt_mpsc inbox;
	/* Messages pushed to inbox and not taken yet: counted before the push,
	 * so a reader on another loop never sees it below the truth. */
	atomic_size_t inbox_n;
	struct rt_msgq runq;
	struct rt_actor_table actors;
	struct rt_actor *dead; /* stopped actors waiting for fini */
	struct rt_actor **dead_tailp;
	uint32_t next_serial;
	struct rt_pending_table pending;
	struct rt_flush *flush;
	unsigned nflush;
	unsigned flush_cap;

	void *tstate; /* transport's per-loop state */
	bool tinit;   /* transport loop_init succeeded */
	bool tdown;   /* transport finalized: no more sends */

	struct rt_buf_pool pool;
	struct rt_msg_cache mcache;

	/* Monotonic time read at most once per iteration (rt_loop_now_ns). */
	uint64_t now_ns;
	bool now_valid;

	bool in_run;	    /* this loop's own thread is inside ev_run */
	uint64_t wake_mask; /* loops to wake at the end of this iteration */
	/* From the poll until the rt prepare watcher has sent wake_mask: a push
	 * to another loop may wait for that send. After it (the disk engine's
	 * lower-priority prepare watcher, say) a push wakes at once, or the wake
	 * would sit in wake_mask while this loop blocks. */
	bool defer_wakes;

	_Atomic uint64_t handled;
	_Atomic uint64_t wakeups;

	pthread_t thread;
	bool thread_created;
	/* Some thread other than the control thread runs (or is about to run) this
	 * loop: cross-thread spawns must post and wait. */
	atomic_bool threaded;
	bool down;	/* shutdown ran: watchers stopped */
	bool closed;	/* under rt->ctl_lock: refuses spawn posts */
	bool init_done; /* under rt->ctl_lock: start-up handshake */
	int init_rc;
};

struct rt {
	struct rt_config cfg;
	unsigned nloops;
	struct rt_loop *loops[RT_MAX_LOOPS];
	const struct rt_transport_ops *tops;
	void *tctx;
	bool started;
	bool loop0_in_caller;
	atomic_bool shutdown;
	_Atomic uint64_t rx_held; /* rt_rx_held() */
	pthread_mutex_t ctl_lock;
	pthread_cond_t ctl_cond;
};

/*
 * Initial-exec TLS: libtool compiles everything -fPIC, where the default model
 * makes each access a call to __tls_get_addr as far as the compiler knows.
 * The linker relaxes the call away in a program, but the register allocation
 * around it stays: every function that touched tls_loop saved and restored
 * registers it did not otherwise need (a third of rt_msg_free's instructions).
 * rt is linked into programs or loaded with them, never dlopen'ed late, which
 * is what initial-exec asks.
 */
#define RT_TLS __thread __attribute__((tls_model("initial-exec")))

extern RT_TLS struct rt_loop *tls_loop;
extern RT_TLS struct rt_actor *tls_actor;

/* loop.c */
/* Push m onto dst's inbox from any thread. dst needs a wake-up only when its
 * inbox was empty; from a running loop of the same runtime that wake-up is
 * deferred to the end of the current iteration, so a batch of handlers sending
 * to the same loop costs one ev_async_send. */
void rt_loop_push(struct rt_loop *dst, struct rt_msg *m);
/* Same, but wakes dst at once: for a caller about to block waiting on dst. */
void rt_loop_push_now(struct rt_loop *dst, struct rt_msg *m);
/* Run one non-blocking iteration of a loop that no thread runs (deterministic
 * tests and the future simulator harness). */
void rt_loop_step(struct rt_loop *loop);
/* Dispatch everything queued on the loop's run queue (up to budget). */
unsigned rt_loop_run_queue(struct rt_loop *loop, unsigned budget);
/* The rt clock as of this loop iteration: read once per iteration, so a batch
 * of calls costs one clock read (deadlines need no more precision than libev's
 * own timers, which start from the iteration's time as well). */
static inline uint64_t
rt_loop_now_ns(struct rt_loop *loop)
{
	if (!loop->now_valid) {
		loop->now_ns = rt_clock_mono_ns();
		/* Cached only while the loop runs: between its check and its
		 * prepare. Before rt_start (an actor's init in the caller's
		 * thread) nothing would invalidate it. */
		loop->now_valid = loop->in_run;
	}
	return loop->now_ns;
}

/* actor.c */
struct rt_actor *rt_actor_find(struct rt_loop *loop, uint32_t local);
/* Route a message from loop `cur` (m->src already set). On error the caller
 * still owns m. */
int rt_route(struct rt_loop *cur, struct rt_msg *m);
/* Deliver a message to an actor of `loop` (the dispatch of the brief: central
 * checks, then the handler or the pending call). Consumes m. */
void rt_dispatch(struct rt_loop *loop, struct rt_msg *m);
/* fini and free actors stopped so far. */
void rt_actor_reap(struct rt_loop *loop);
/* rt_actor_stop() every live actor of the loop (shutdown). */
void rt_loop_stop_actors(struct rt_loop *loop);
void rt_actor_table_fini(struct rt_loop *loop);

/* call.c */
void rt_pending_table_init(struct rt_loop *loop);
void rt_pending_table_fini(struct rt_loop *loop);
/* A response reached actor a: match it, run the callback. Consumes m. */
void rt_call_complete(struct rt_actor *a, struct rt_msg *m);
/* Stop the timeout timers of a's calls (rt_actor_stop). */
void rt_call_stop_timers(struct rt_actor *a);
/* Complete all of a's calls with rc (reap, failed init). */
void rt_call_cancel_all(struct rt_actor *a, int rc);

/* msg.c */
/* Free a message whose type may be RT_MSG_T_POST (inbox leftovers). */
void rt_item_free(struct rt_msg *m);
void rt_msg_cache_init(struct rt_msg_cache *c);
/* Give a loop's cached slabs back to malloc (loop destroy). */
void rt_msg_cache_fini(struct rt_msg_cache *c);

#endif

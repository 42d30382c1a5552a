/* SPDX-License-Identifier: MIT */
/*
 * The chainfs runtime: per-core libev loops, actors with handler tables and
 * mailboxes, request/response with timeouts, timers, aligned I/O buffers and
 * logging. Everything above it (net, disk, actors) is written against this
 * header. rt knows nothing of the wire format or of any actor kind; the
 * transport and the clock are edges reached through small ops tables so that
 * a simulator can replace them.
 *
 * Threading: a struct rt_loop belongs to one pinned thread. An actor lives on
 * one loop for its whole life. The only cross-thread operations are
 * rt_send()/rt_reply() to an actor of another loop (MPSC inbox + ev_async) and
 * rt_buf_put() of a buffer owned by another loop.
 */
#ifndef CFS_RT_H
#define CFS_RT_H

#include <ev.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chainfs/errno.h"
#include "chainfs/proto.h"
#include "chainfs/types.h"

#define RT_MAX_LOOPS 64

struct rt;
struct rt_loop;
struct rt_actor;
struct rt_msg;
struct rt_buf;

/* ------------------------------------------------------------------ buffers */

/*
 * A refcounted, 4 KiB-aligned I/O buffer from its loop's pool (size classes of
 * powers of two, 4 KiB .. 64 MiB). Usable for O_DIRECT and, later, RDMA
 * registration. `len` is how many bytes are valid, set by whoever fills it.
 */
struct rt_buf {
	uint8_t *data;
	uint32_t cap;
	uint32_t len;
	int refs;		/* atomic */
	uint16_t loop;		/* owning loop: the buffer returns to its pool */
	uint8_t cls;
	uint8_t rx;		/* counted in rt_rx_held() until its last put */
	struct rt_buf *next;	/* pool free list / return stack */
};

/** Get a buffer of at least `size` bytes from the current loop's pool (refs = 1,
 *  len = 0). Off-loop (no current loop: tests, fuzzers, a client's main thread)
 *  it is plain aligned memory with loop = 0xffff, freed by the last put.
 *  Returns NULL only when out of memory or size > 64 MiB. */
struct rt_buf *rt_buf_get(size_t size);
/** Add a reference. Any thread. */
void rt_buf_ref(struct rt_buf *b);
/** Drop a reference; the last one returns the buffer to its owning loop's pool,
 *  from any thread (another thread's put goes through the owner's lock-free
 *  return stack). Sets *pb to NULL; NULL is a no-op. Every pooled buffer must be
 *  put before rt_destroy of its runtime. */
void rt_buf_put(struct rt_buf **pb);
/** Count b, a pooled buffer a transport fills with a payload it received, in
 *  rt_rx_held() until its last put, wherever the message waits meanwhile (an
 *  actor's queue, the disk): what peers' requests hold of this process's
 *  memory. On b's loop; an unpooled buffer is not counted. */
void rt_buf_count_rx(struct rt_buf *b);
/** Bytes of counted receive buffers alive in rt; any thread, racy. */
uint64_t rt_rx_held(const struct rt *rt);

/** 64 random bits (getrandom; time and pid when it has no entropy yet): for
 *  identities that must differ between processes and runs, not secrets. */
uint64_t rt_random64(void);

/* A slice of a buffer: payload segments of a message. */
struct rt_iov {
	struct rt_buf *buf;	/* the message holds one reference */
	uint32_t off;
	uint32_t len;
};

/* ----------------------------------------------------------------- messages */

enum {
	RT_MSG_F_RESP = 1u << 0,	/* a response: req_id names the request */
	RT_MSG_F_RELAXED = 1u << 1,	/* reader accepts a relaxed (non-linearizable) read */
	RT_MSG_F_ONEWAY = 1u << 2,	/* request that wants no response */
	/* Local routing mark, never sent: leave on connection m->conn, not by
	 * m->dst. Set only by rt_reply() and rt_send_conn(); see rt_send(). */
	RT_MSG_F_VIA_CONN = 1u << 14,
};

#define RT_MSG_MAX_IOV 1024
#define RT_MSG_INLINE_IOV 2

/*
 * One message: header fields, a typed body (struct cfs_<lc> from proto.h), and
 * optional bulk payload segments that are never copied into msgpack. Body,
 * arrays inside it and the bytes its cfs_bytes fields point to live in the
 * message's arena and die with it (the decoder copies str/bin fields there, so
 * a message never pins a connection's receive buffer).
 */
struct rt_msg {
	struct rt_msg *next;	/* intrusive link: mailbox, inbox */
	uint16_t type;		/* enum cfs_msg_type */
	uint16_t flags;		/* RT_MSG_F_* */
	int32_t rc;		/* responses: copy of body rc, set by rt_reply */
	uint64_t req_id;
	cfs_addr_t src;
	cfs_addr_t dst;
	uint64_t conn;		/* connection it arrived on (0: local); see rt_send() */
	/* The node whose connection (one this node opened) it arrived on; 0 when
	 * local or from a peer that connected to us. Set by the transport before
	 * rt_deliver; it, unlike src, is not the sender's to choose. */
	uint32_t via_node;
	uint64_t deadline_ns;	/* 0: none; handlers of expired requests are not run */
	void *body;
	uint32_t iovcnt;
	uint32_t iovcap;
	uint32_t plen;		/* sum of iov lengths */
	struct rt_iov *iov;	/* iov_inline, or grown in the arena */
	struct rt_iov iov_inline[RT_MSG_INLINE_IOV];
	struct rt_arena_chunk *arena;
};

/** A new message of dense type `type` (< CFS_MSG__COUNT, else CFS_PANIC) with a
 *  zeroed body, in one allocation. Any thread, no loop needed. NULL only on OOM. */
struct rt_msg *rt_msg_new(unsigned type);
/** Free a message, its arena and its payload references (any thread). Sets *pm
 *  NULL; NULL is a no-op; freeing a message twice is caught (CFS_PANIC) where
 *  cheaply detectable. */
void rt_msg_free(struct rt_msg **pm);
/** Allocate `size` zeroed, 16-byte aligned bytes that live as long as the
 *  message (size 0 still gives a valid pointer). NULL on OOM. */
void *rt_msg_alloc(struct rt_msg *m, size_t size);
/** Copy bytes into the message's arena and point *dst at the copy. -ENOMEM. */
int rt_msg_copy_bytes(struct rt_msg *m, struct cfs_bytes *dst, const void *p, size_t len);
/** Convenience: copy a C string (not NUL-terminated on the wire). -ENOMEM. */
int rt_msg_set_str(struct rt_msg *m, struct cfs_bytes *dst, const char *s);
/** Append a payload segment; takes a new reference on buf. -EINVAL when buf is
 *  NULL or [off, off+len) exceeds buf->cap; -E2BIG past RT_MSG_MAX_IOV segments or
 *  4 GiB of payload; -ENOMEM when the segment table cannot grow. */
int rt_msg_add_iov(struct rt_msg *m, struct rt_buf *buf, uint32_t off, uint32_t len);
/** Copy the payload bytes [off, off+len) into dst; -EINVAL when out of range. */
int rt_msg_payload_copy(const struct rt_msg *m, uint32_t off, void *dst, uint32_t len);

#define RT_BODY(m, lc) ((struct cfs_##lc *)(m)->body)

/** Whether m comes from this process or from `node` itself: on the connection
 *  this node opened to it (m->via_node). Neither src, which the sender writes,
 *  nor a connection a peer opened to us proves where a message is from. */
static inline bool
rt_msg_from_node(const struct rt_msg *m, uint32_t node)
{
	return m->conn == 0 || m->via_node == node;
}

/* ------------------------------------------------------------------- actors */

/*
 * Before a handler runs, the runtime checks centrally: the actor exists and is
 * not stopping (else -CFS_ENOACTOR), the deadline has not passed (else the
 * request is dropped: the caller times out), the kind has a handler for the
 * type (else -CFS_ENOTSUP).
 *
 * Handler contract (SPDK's exactly-once rule):
 *   return 0   the handler owns req and calls rt_reply() exactly once, now or
 *              later (one-way messages: it frees req with rt_msg_free);
 *   return <0  it did not reply and does not keep req; the runtime replies with
 *              that code and frees req.
 */
typedef int (*rt_handler_fn)(struct rt_actor *self, struct rt_msg *req);

/* Completion of rt_call(), on the caller's loop, exactly once: rc is 0 or
 * negative (the response's rc, -ETIMEDOUT, -CFS_ECANCELED when the caller
 * stopped, rt_peer_lost's code, -CFS_EPROTO when the response is not of the
 * request's response type). resp is NULL when no response arrived. The
 * runtime frees resp after the callback returns unless the callback took it
 * with rt_msg_claim(); or keep payload buffers with rt_buf_ref(). */
typedef void (*rt_reply_fn)(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg);

struct rt_actor_kind {
	const char *name;
	size_t state_size;
	int (*init)(struct rt_actor *self, const void *arg);	/* <0: spawn fails */
	void (*fini)(struct rt_actor *self);
	const rt_handler_fn *handlers;	/* CFS_MSG__COUNT entries, NULL: -CFS_ENOTSUP */
};

/** Spawn an actor on `loop`. The call may come from any thread; when a thread
 *  runs `loop` and it is not the caller's, the spawn is posted there and the
 *  caller blocks until init has run (control path: never spawn across loops in
 *  both directions at once). Before a thread runs `loop` (before rt_start, or
 *  loop 0 before rt_run_loop0 from the thread that called rt_start) init runs
 *  in the caller, with rt_loop_current() == loop.
 *  want_local: 0 assigns a local id (serials from 0x100 up); otherwise that id
 *  (must name `loop`; lower serials are the well-known ids).
 *  Errors: -EINVAL (want_local names another loop), -EEXIST (id taken),
 *  -ENOMEM, -ENOSPC (no free id), -ESHUTDOWN (loop shut down), init's error
 *  (then fini is not called). */
int rt_spawn(struct rt_loop *loop, const struct rt_actor_kind *kind, const void *arg,
	     uint32_t want_local, cfs_addr_t *out);
/** Mark the actor stopping: new messages to it are refused with -CFS_ENOACTOR,
 *  responses to it are dropped, its calls' timeout timers stop, and after the
 *  current handler returns (same loop iteration) its pending calls complete
 *  with -CFS_ECANCELED, then fini runs, then it is freed. Its own rt_timers are
 *  fini's to stop. Idempotent. On its own loop only (CFS_PANIC otherwise). */
void rt_actor_stop(struct rt_actor *self);
void *rt_actor_state(struct rt_actor *self);
cfs_addr_t rt_actor_addr(const struct rt_actor *self);
struct rt_loop *rt_actor_loop(const struct rt_actor *self);
const struct rt_actor_kind *rt_actor_kind(const struct rt_actor *self);
/** A per-actor number shown by `status` (a storage target's id, say). */
void rt_actor_set_tag(struct rt_actor *self, uint64_t tag);

/** Send m to m->dst (local loop, other loop or other node: the caller does not
 *  care). m->src is set to self's address. Local means dst node 0 or ours.
 *  Never runs a handler before it returns. On self's loop only. On 0 the
 *  runtime owns m; on error the caller still does.
 *
 *  Connections. A message that arrived over the network keeps the id of its
 *  connection in m->conn, as a record of where it came from (a handler may
 *  save it for rt_send_conn). Routing by connection happens only for messages
 *  marked RT_MSG_F_VIA_CONN: the responses rt_reply() makes and the pushes of
 *  rt_send_conn(). rt_send() of anything else clears m->conn and routes by
 *  m->dst, so an actor that forwards a received request object (chain
 *  replication) sends it on to m->dst, never back to the client it came from.
 *  A marked message goes out on its connection, written by the loop that owns
 *  it (conn >> 56).
 *
 *  Errors: -CFS_ENOACTOR (unknown local actor, detected only when on the same
 *  loop; or no such loop), -CFS_EBUSY (transport back-pressure),
 *  -EHOSTUNREACH (no transport, or no route to node), -ENOTCONN (the
 *  connection of a marked message is closed, when detected on the loop that
 *  owns it; from another loop the message is dropped there), other transport
 *  errors. */
int rt_send(struct rt_actor *self, struct rt_msg *m);
/** Push m out on connection `conn` (an id a received message carried in
 *  m->conn): how a server sends to a client that subscribed over a
 *  connection (mgmtd's routing updates), since a client has no address of its
 *  own that another node could route to. conn 0 means "no connection": m goes
 *  by m->dst exactly as with rt_send. Sets m->conn and RT_MSG_F_VIA_CONN
 *  (conn != 0) and sends; errors as rt_send. */
int rt_send_conn(struct rt_actor *self, uint64_t conn, struct rt_msg *m);
/** Send request m to dst and call cb exactly once with the response, an error
 *  or -ETIMEDOUT after timeout_ms (0: the runtime's default). Sets m->dst and
 *  m->req_id (unique in the process) and clears the ONEWAY flag. On error
 *  returns <0, cb is not called and the caller still owns m. Errors: -EINVAL
 *  (no cb, m not a request type), -CFS_ECANCELED (self is stopping), -ENOMEM,
 *  and rt_send's. */
int rt_call(struct rt_actor *self, cfs_addr_t dst, struct rt_msg *m, uint32_t timeout_ms,
	    rt_reply_fn cb, void *cb_arg);
/** Inside an rt_reply_fn: take ownership of resp, so the runtime does not free
 *  it when the callback returns; free it later with rt_msg_free. CFS_PANIC when
 *  resp is not the response of the running callback. */
void rt_msg_claim(struct rt_msg *resp);
/** Answer req with rc and resp (resp may be NULL: an empty response of the
 *  paired type is made; resp's rc and its body's rc are set to rc). A request
 *  that arrived on a connection is answered on that connection
 *  (RT_MSG_F_VIA_CONN), any other one by req->src. Consumes
 *  req and resp. Any loop may call it for a request it owns; exactly once per
 *  request: a second reply, a reply off every loop, or a resp of the wrong type
 *  is a CFS_PANIC where cheaply detectable. A one-way request (RT_MSG_F_ONEWAY)
 *  is just freed. A response that cannot be routed is logged (debug) and
 *  dropped: the caller times out. */
void rt_reply(struct rt_msg *req, int rc, struct rt_msg *resp);

/* ------------------------------------------------------------------- timers */

struct rt_timer;
typedef void (*rt_timer_fn)(struct rt_timer *t, void *cb_arg);
struct rt_timer {
	ev_timer w;
	struct rt_loop *loop;
	rt_timer_fn cb;
	void *cb_arg;
};
/** Clock edge: nanoseconds of monotonic time as the loop sees it. */
uint64_t rt_now_ns(struct rt_loop *loop);
/** Wall-clock nanoseconds since the epoch (logs, timestamps in metadata). */
uint64_t rt_wall_ns(struct rt_loop *loop);
/* Timers are used on their loop's thread only (or before it runs); stop one
 * before freeing it. */
void rt_timer_init(struct rt_loop *loop, struct rt_timer *t, rt_timer_fn cb, void *cb_arg);
/** (Re)arm: fire once after after_ms, then every repeat_ms if non-zero. */
void rt_timer_start(struct rt_timer *t, uint64_t after_ms, uint64_t repeat_ms);
void rt_timer_stop(struct rt_timer *t);

/* ------------------------------------------------------------- loops, rt */

struct rt_config {
	unsigned loops;			/* 0: one per online CPU (at most RT_MAX_LOOPS) */
	bool pin;			/* pin loop i to CPU i % ncpu */
	uint32_t node_id;		/* this node's id; 0 for clients */
	uint32_t default_timeout_ms;	/* rt_call with timeout 0; default 5000 */
	size_t buf_pool_max_bytes;	/* per loop cache of free buffers; default 256 MiB */
};

/*
 * Transport edge. rt hands every message whose destination is another node (or
 * whose conn is set) to ops->send on the loop that sends it; the transport
 * consumes it (0) or refuses (<0, the caller keeps the message). Received
 * messages come back in through rt_deliver(). Each loop has its own transport
 * state, created by loop_init on that loop's thread. send must not call
 * rt_peer_lost() itself (a connection that fails inside send is closed later,
 * from the loop): the call being sent would complete before rt_call returns
 * its error (a CFS_PANIC).
 */
struct rt_transport_ops {
	const char *name;
	int (*loop_init)(void *ctx, struct rt_loop *loop, void **loop_state);
	void (*loop_fini)(void *ctx, struct rt_loop *loop, void *loop_state);
	int (*send)(void *ctx, struct rt_loop *loop, void *loop_state, struct rt_msg *m);
};

/** Create the runtime with cfg->loops loops (threads not started yet; cfg may be
 *  NULL for defaults). Errors: -EINVAL (loops > RT_MAX_LOOPS), -ENOMEM,
 *  -EMFILE (no event loop could be created). */
int rt_create(const struct rt_config *cfg, struct rt **out);
/** Install the transport before rt_start (CFS_PANIC after). */
void rt_set_transport(struct rt *rt, const struct rt_transport_ops *ops, void *ctx);
/** Start one thread per loop (pinned if asked) and wait until each has run the
 *  transport's loop_init. Loop 0 may instead be run by the calling thread with
 *  rt_run_loop0() (the CLI does this). Errors: -EALREADY, a thread creation
 *  error, a transport loop_init error; on error the runtime is already shutting
 *  down and only rt_destroy is left to call. */
int rt_start(struct rt *rt, bool run_loop0_in_caller);
/** Run loop 0 in the calling thread (the one that called rt_start) until
 *  rt_shutdown. Errors: -EINVAL (not started with run_loop0_in_caller),
 *  the transport's loop_init error. */
int rt_run_loop0(struct rt *rt);
/** Ask every loop to stop all actors (fini) and exit; any thread, also signal-safe
 *  via ev_async. */
void rt_shutdown(struct rt *rt);
/** Shut down if not done yet, join threads, stop the actors of loops no thread
 *  ran, free messages still queued, free loops. Not from one of its own loops.
 *  Sets *prt to NULL. */
void rt_destroy(struct rt **prt);

unsigned rt_loop_count(const struct rt *rt);
struct rt_loop *rt_loop_at(struct rt *rt, unsigned index);
/** The loop of the calling thread, NULL off-loop. */
struct rt_loop *rt_loop_current(void);
unsigned rt_loop_index(const struct rt_loop *loop);
struct ev_loop *rt_loop_ev(struct rt_loop *loop);
struct rt *rt_loop_rt(struct rt_loop *loop);
uint32_t rt_node_id(const struct rt *rt);
/** Run fn(arg) on `loop`'s thread (posted through its inbox, FIFO with the
 *  messages posted by the same thread). Posted to a loop that has already shut
 *  down, fn never runs (the post is freed by rt_destroy). -ENOMEM. */
int rt_loop_post(struct rt_loop *loop, void (*fn)(void *arg), void *arg);
/** Hook a function to run once per loop iteration after the inbox drains,
 *  before blocking (the disk engine submits its batched aio there), and once
 *  more at shutdown before the transport's loop_fini. On that loop's thread. */
void rt_loop_add_flush(struct rt_loop *loop, void (*fn)(void *arg), void *arg);

/** Entry point for the transport: route m (a request or response received on
 *  connection m->conn) to its destination actor, on whichever loop it lives.
 *  Local-only flags a peer may have set (RT_MSG_F_VIA_CONN) are cleared.
 *  Called on the receiving loop; the runtime owns m afterwards. Requests for
 *  unknown actors get a -CFS_ENOACTOR reply; for another node, -CFS_EWRONGNODE;
 *  such responses are dropped. A response type sets RT_MSG_F_RESP. */
void rt_deliver(struct rt_loop *loop, struct rt_msg *m);
/** The transport lost its connection to `node`: fail pending calls from this
 *  loop's actors towards that node with rc (>= 0 becomes -ECONNRESET). On
 *  `loop`'s thread. Calls to clients (node 0) over a connection are not
 *  singled out by this call. */
void rt_peer_lost(struct rt_loop *loop, uint32_t node, int rc);

/** Messages waiting for `loop` (delivered, not yet handled: its run queue
 *  and its inbox); on that loop's thread. A transport reads no more while it
 *  is long: what a peer sends faster than the loop handles it must wait in
 *  the socket. */
size_t rt_loop_backlog(const struct rt_loop *loop);
/** The longest inbox (messages other threads handed a loop, not taken yet)
 *  among the loops in `loops`, a mask from rt_loop_bit(); any thread, racy. A
 *  loop that reads a connection hands what is for another loop's actors to
 *  that loop's inbox: while that inbox is long the connection reads no more
 *  either, and the connections that feed other loops read on. */
size_t rt_inbox_max(const struct rt *rt, uint64_t loops);
/** The bit of loop `index` in an rt_inbox_max() mask: loops 63 and up share
 *  the last bit. */
static inline uint64_t
rt_loop_bit(unsigned index)
{
	return 1ull << (index < 63 ? index : 63);
}

/* Counters, read racily by the status actor. */
struct rt_loop_stats {
	unsigned index;
	int cpu;
	unsigned actors;
	uint64_t handled;
	uint64_t wakeups;
};
void rt_loop_stats(struct rt_loop *loop, struct rt_loop_stats *out);
/** Visit every live actor of `loop`; only on that loop's thread. */
void rt_loop_foreach_actor(struct rt_loop *loop,
			   void (*fn)(struct rt_actor *a, uint64_t handled, void *arg), void *arg);
uint64_t rt_actor_tag(const struct rt_actor *a);

/* ------------------------------------------------------------------ logging */

enum rt_log_level { RT_LOG_ERR, RT_LOG_WARN, RT_LOG_INFO, RT_LOG_DEBUG };
void rt_log_set_level(enum rt_log_level lvl);
enum rt_log_level rt_log_get_level(void);
/** Parse "error|warn|info|debug"; -EINVAL. */
int rt_log_parse_level(const char *s, enum rt_log_level *out);
void rt_log(enum rt_log_level lvl, const char *subsys, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#ifndef RT_LOG_SUBSYS
#define RT_LOG_SUBSYS "-"
#endif
/* Lines look like: 2026-11-25T17:40:01.123Z W storage [storage#0x01000003 L1] msg key=v */
#define RT_LOG_AT(lvl, ...)                                         \
	do {                                                        \
		if ((lvl) <= rt_log_get_level())                    \
			rt_log((lvl), RT_LOG_SUBSYS, __VA_ARGS__);  \
	} while (0)
#define RT_ERRLOG(...) RT_LOG_AT(RT_LOG_ERR, __VA_ARGS__)
#define RT_WARN(...) RT_LOG_AT(RT_LOG_WARN, __VA_ARGS__)
#define RT_INFO(...) RT_LOG_AT(RT_LOG_INFO, __VA_ARGS__)
#define RT_DEBUG(...) RT_LOG_AT(RT_LOG_DEBUG, __VA_ARGS__)
/* Error with the code appended: "...: ENOSPC (-28) no space left on device" */
#define RT_ERR(rc, fmt, ...) \
	RT_ERRLOG(fmt ": %s (%d) %s", ##__VA_ARGS__, cfs_errname(rc), (rc), cfs_strerror(rc))

#define CFS_PANIC(...) rt_panic(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void rt_panic(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif

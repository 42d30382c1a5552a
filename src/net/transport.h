/* SPDX-License-Identifier: MIT */
/*
 * Connection types: the vtable below rt's transport edge, in the spirit of
 * Redis's src/connection.h. net.c owns the generic part (which connection a
 * message goes to, connection ids, peers, backoff, counters) and calls a type
 * only through struct net_conn_type; a type (tcp.c; rdma.c later) owns its
 * sockets or queue pairs, its framing buffers and its event watchers, and
 * reports back through the net_conn_* functions at the end of this header.
 * This header is internal to src/net.
 *
 * Everything here runs on the loop that owns the connection, except
 * listen/unlisten (control path, any thread, before the loops start or after
 * they stopped).
 *
 * Listening. A node has one listening endpoint, bound without SO_REUSEPORT so
 * that a second process asking for the same address fails with -EADDRINUSE
 * instead of silently taking half the connections. Loop 0 accepts; every
 * accepted connection is handed (net_conn_handoff) to the loops in turn, and
 * the loop that gets it sets it up (adopt) and owns it from then on.
 *
 * Bulk data and RDMA. A message's payload (m->iov) is never copied into the
 * msgpack header. TCP carries those bytes in the stream right after the frame
 * header, so on TCP a "pull" (the receiver fetching the bytes a request
 * offers) and a "push" (the responder placing the bytes a response returns)
 * are satisfied from the stream: the payload simply arrives as the received
 * message's iov, and a response's iov simply follows its header. An RDMA type
 * slots in without touching rt or the actors, because actors only ever see
 * m->iov:
 *   - each loop's buffer pool regions are registered once with mr_register
 *     (addr, len) -> rkey;
 *   - send_frame of a message with payload sends the header with a flag saying
 *     "payload by descriptor" and, instead of the bytes, a list of
 *     (addr, rkey, len) descriptors of m->iov; the type keeps m's buffer
 *     references until the peer's response to that req_id comes back on the
 *     connection (or the connection closes);
 *   - the receiver's type sees the descriptors, allocates a pool buffer,
 *     bulk_pull()s the bytes with RDMA READ, attaches the buffer to the
 *     message with rt_msg_add_iov and only then calls net_conn_frame(): the
 *     handler sees exactly what it sees on TCP;
 *   - for a response carrying payload to a request that offered destination
 *     descriptors (a read), the responder's type bulk_push()es the payload
 *     with RDMA WRITE into them and sends the response header without bytes.
 * The descriptor flag and list belong to the wire format (src/net/wire.h)
 * when the RDMA issue adds them. TCP implements the bulk calls with the
 * stream semantics above, so code written against them runs on both.
 */
#ifndef CFS_NET_TRANSPORT_H
#define CFS_NET_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/net.h"
#include "net/wire.h"
#include "rt/rt.h"

struct net_loop;
struct net_peer;
struct net_conn_type;

enum net_conn_state {
	NET_CONN_CONNECTING, /* outgoing, not established yet: sends queue */
	NET_CONN_UP,
	NET_CONN_CLOSED, /* closed, waiting to be freed at the end of the iteration */
};

/*
 * The generic part of a connection; a type embeds it first in its own struct.
 * net.c fills everything but `type` private state; the type reads lim,
 * max_outq, ev and stats on its hot paths without calling back.
 */
struct net_conn {
	const struct net_conn_type *type;
	struct net_loop *nl;
	uint64_t id; /* (loop index << 56) | generation << 32 | slot */
	enum net_conn_state state;
	bool accepted;	       /* incoming (true) or to a peer (false) */
	/* Accepted, and its first frame came from a client (source node 0), not
	 * from another node: max_rx_held pauses it (net_conn_rx_hold). */
	bool from_client;
	bool classified;       /* from_client is set (a first header was decoded) */
	bool dirty;	       /* on the loop's flush list */
	bool rx_paused;	       /* on the loop's list of connections not read */
	/* rt_loop_bit() of the loops its frames went to since the last read that
	 * found them all short (net_conn_rx_pause): whose inboxes stop it. */
	uint64_t fed_loops;
	struct net_peer *peer; /* outgoing: the loop's peer entry */
	struct net_conn *dirty_next;
	struct net_conn *paused_next;
	struct net_conn *dead_next;
	struct ev_loop *ev;
	struct rt_loop *loop;
	struct net_stats *stats;
	struct wire_limits lim;
	size_t max_outq;
	uint32_t peer_timeout_ms; /* the type applies it to its socket */
	bool rx_stalled;	  /* closed by the frame timeout */
	uint64_t rx_frame_ns;	  /* last byte of a frame in progress; 0: none */
	char name[64];		  /* peer endpoint, for logs */
};

/* The listening endpoint of a node (accepted from by loop 0). */
struct net_listener {
	const struct net_conn_type *type;
	struct sockaddr_storage sa; /* port 0 for loop 0 means "pick one" */
	socklen_t salen;
	uint16_t port; /* bound port, set by listen */
	void *priv;    /* the type's state (TCP: the socket and its watcher) */
};

/* An accepted connection on its way from the accepting loop to the loop that
 * will own it. The type allocates it with malloc; net.c frees it. */
struct net_handoff {
	struct net_handoff *next;
	intptr_t handle; /* the type's: TCP, the socket */
	char name[64];	 /* peer endpoint, for logs */
};

/* Remote memory, as an RDMA peer describes it; for TCP, addr is an offset
 * into the message's inline payload and rkey is 0. */
struct net_bulk_desc {
	uint64_t addr;
	uint32_t rkey;
	uint32_t len;
};

typedef void (*net_bulk_fn)(struct net_conn *c, int rc, void *cb_arg);

struct net_conn_type {
	const char *name;

	/** Bind l->sa exclusively and listen, filling l->port. Control path,
	 *  any thread. @return 0, -errno of socket/bind/listen (-EADDRINUSE
	 *  when anyone, SO_REUSEPORT or not, holds the address), -ENOMEM. */
	int (*listen)(struct net_listener *l);
	/** Start accepting on loop nl (its thread). Every accepted connection
	 *  goes to net_conn_handoff(). @return 0, -ENOMEM. */
	int (*accept)(struct net_loop *nl, struct net_listener *l);
	/** Stop accepting and release the endpoint. Its loop's thread if accept
	 *  was called, else any thread. */
	void (*unlisten)(struct net_listener *l);
	/** Set up the handed-off connection h->handle on nl (its thread) and
	 *  register it with net_conn_accepted(); on failure close the handle.
	 *  h itself stays net.c's. */
	void (*adopt)(struct net_loop *nl, struct net_handoff *h);
	/** Close h->handle: no loop will adopt it (shutdown). Any thread. */
	void (*discard)(struct net_handoff *h);

	/** Allocate a connection of this type (zeroed, net_conn first). NULL: OOM. */
	struct net_conn *(*alloc)(void);
	/** Start connecting c (already registered with net.c) to sa; the outcome
	 *  comes later through net_conn_up() or net_conn_close(). Messages may be
	 *  queued with send_frame meanwhile.
	 *  @return 0, or -errno when the attempt failed at once (c stays unused). */
	int (*connect)(struct net_conn *c, const struct sockaddr *sa, socklen_t salen,
		       uint32_t timeout_ms);
	/** Release the transport resources of c (socket, watchers, timers) and
	 *  free the messages still queued or half received. Called once, from
	 *  net_conn_close(); c itself stays allocated until release. */
	void (*close)(struct net_conn *c);
	/** Free c's memory; nothing references it any more. */
	void (*release)(struct net_conn *c);

	/**
	 * Queue m (header and body encoded now, payload iovs by reference) for
	 * sending; the type owns m on success and frees it once written. Writes
	 * happen in flush, after net_conn_want_flush().
	 * @return 0; -CFS_EBUSY (queue over c->max_outq), -CFS_ETOOBIG, -EINVAL,
	 *         -ENOMEM, -ENOTCONN (closed). On error the caller keeps m.
	 */
	int (*send_frame)(struct net_conn *c, struct rt_msg *m);
	/** Write what is queued (once per loop iteration, for every connection
	 *  that asked). May close c through net_conn_close(). */
	void (*flush)(struct net_conn *c);
	/** Read c again after net_conn_rx_pause() or net_conn_rx_hold() (then
	 *  parse first the header kept back): its loop's backlog is short
	 *  again. Not called for a closed connection. */
	void (*rx_resume)(struct net_conn *c);
	/** Whether the frame in progress moved on although nothing was read
	 *  since net_conn_rx_mark(): bytes arrived since last asked, or wait for
	 *  a read the loop will do (TCP: in the socket, under SO_RCVLOWAT or
	 *  past it). False means the peer sent nothing new. */
	bool (*rx_progress)(struct net_conn *c);

	/** Make [addr, addr+len) usable as a bulk source/destination; once per
	 *  pool region. TCP: nothing to register, *rkey = 0. @return 0, -errno. */
	int (*mr_register)(struct net_loop *nl, void *addr, size_t len, uint32_t *rkey);
	/** Fetch the bytes d describes, offered by the peer with request m, as
	 *  m's payload; cb(c, rc, cb_arg) when they are there (possibly before
	 *  returning). TCP: they came in the stream, d must lie inside m's payload.
	 *  @return 0 (cb will be called) or -EINVAL (cb not called). */
	int (*bulk_pull)(struct net_conn *c, struct rt_msg *m, const struct net_bulk_desc *d,
			 net_bulk_fn cb, void *cb_arg);
	/** Place resp's payload where d (given by the requester) says; cb when the
	 *  bytes are placed. TCP: they travel after resp's header, so resp's
	 *  payload must fit d->len. @return 0 (cb will be called) or -EINVAL. */
	int (*bulk_push)(struct net_conn *c, struct rt_msg *resp, const struct net_bulk_desc *d,
			 net_bulk_fn cb, void *cb_arg);
};

extern const struct net_conn_type net_tcp_type;

/* ------------------------------------------------ from a type up into net.c */

/** The accepting loop nl accepted a connection: give it to the next loop in
 *  turn (nl included), which calls type->adopt with it on its own thread
 *  (type->discard if that loop is shutting down). Takes h. */
void net_conn_handoff(struct net_loop *nl, struct net_handoff *h);
/** The accepting loop nl accepted a socket from name: may it stay? false
 *  when max_conns accepted connections are open (counted and logged; the type
 *  closes the socket). true counts it until conn_unregister, or until
 *  net_accept_forget() when it never gets that far. */
bool net_accept_admit(struct net_loop *nl, const char *name);
/** An admitted socket was closed before net_conn_accepted() succeeded. */
void net_accept_forget(struct net_loop *nl);
/** A type set up an accepted connection on nl (in adopt): register it (id,
 *  counters, limits) and fill its generic fields. name is the peer's endpoint
 *  for logs. @return 0, -ENOMEM (the caller closes its socket and frees c). */
int net_conn_accepted(struct net_loop *nl, struct net_conn *c, const char *name);
/** After a read on c that brought bytes: `partial` says a frame is half
 *  received. Its clock restarts: the frame timeout closes c when a frame in
 *  progress gets no byte for frame_timeout_ms. */
void net_conn_rx_mark(struct net_conn *c, bool partial);
/** An outgoing connection is established: the peer's backoff resets. */
void net_conn_up(struct net_conn *c);
/** A whole message arrived on c: stamp m->conn, count it, hand it to rt. */
void net_conn_frame(struct net_conn *c, struct rt_msg *m);
/** c has bytes queued: call type->flush(c) at the end of this loop iteration. */
void net_conn_want_flush(struct net_conn *c);
/** c's send queue took (delta > 0) or gave back ring entries: net_txq_slots. */
void net_conn_txq_held(struct net_conn *c, int64_t delta);
/** Whether c should stop reading for now: its loop has more delivered
 *  messages waiting than it handles in a few iterations. When true, c is
 *  listed and type->rx_resume(c) runs once the backlog is short again; the
 *  type stops reading until then (what the peer sends waits in the socket). */
bool net_conn_rx_pause(struct net_conn *c);
/** A header announcing plen payload bytes was decoded on c (before its
 *  buffer is taken): whether c must stop before it, because clients hold
 *  max_rx_held bytes of payloads already (net.c, held_over). When true, c is
 *  paused and listed like net_conn_rx_pause()'s; the type keeps the header
 *  unparsed, takes no buffer, and parses it again when rx_resume(c) runs.
 *  Never true in the middle of a frame, so a paused connection holds no
 *  buffer half filled. Also learns from m whether c is a client's. */
bool net_conn_rx_hold(struct net_conn *c, const struct rt_msg *m, uint64_t plen);
/**
 * Close c because of rc (0: orderly shutdown, -ECONNRESET, -CFS_EPROTO, ...):
 * type->close, forget the id, fail the peer's pending calls with rt_peer_lost,
 * free c after the current iteration. Safe to call more than once and from
 * inside c's own callbacks; after it returns c->state is NET_CONN_CLOSED and
 * the caller must not touch the type's resources any more.
 */
void net_conn_close(struct net_conn *c, int rc);
/** Log one warning line about c (rate-limited per loop): "conn=<name> <what>: ERR". */
void net_conn_log_error(struct net_conn *c, const char *what, int rc);
/** The same for loop-level events (accept failures); who names the endpoint. */
void net_loop_log_error(struct net_loop *nl, const char *who, const char *what, int rc);
struct ev_loop *net_loop_ev(struct net_loop *nl);
struct rt_loop *net_loop_rt(struct net_loop *nl);

/* Counter updates from the owning loop; readers elsewhere read racily. */
#define NET_STAT_ADD(s, field, n) __atomic_store_n(&(s)->field, (s)->field + (n), __ATOMIC_RELAXED)

#endif

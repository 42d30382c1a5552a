/* SPDX-License-Identifier: MIT */
/*
 * The network transport as the rest of chainfs sees it: create it on a runtime,
 * name the peers, and from then on rt_send()/rt_call() to CFS_ADDR(node, local)
 * reach other nodes over TCP. It implements rt's transport edge
 * (struct rt_transport_ops); below that, connection types (src/net/transport.h)
 * move the frames. Lifetime, in this order:
 *
 *	rt_create -> net_create (installs itself, binds the listen address)
 *	-> rt_start (each loop starts listening in its loop_init)
 *	-> ... net_add_peer / net_connect_alias at any time ...
 *	-> rt_shutdown -> rt_destroy (each loop closes its connections in loop_fini)
 *	-> net_destroy.
 *
 * Peers are connected lazily, per loop: the first message a loop sends to a
 * node opens that loop's connection to it. When a connect attempt fails, the
 * loop's peer enters a backoff (reconnect_min_ms, doubling up to
 * reconnect_max_ms); while it runs, sends to that node fail at once with the
 * connect error (-ECONNREFUSED, -EHOSTUNREACH, ...) and the caller keeps the
 * message; the first send after the backoff tries again. While a connection is
 * being established or is up, sends queue up to max_outq_bytes, then fail with
 * -CFS_EBUSY. A connection that breaks fails the calls waiting on it through
 * rt_peer_lost() with -ECONNRESET (or the socket's error); the next send
 * reconnects at once.
 */
#ifndef CFS_NET_NET_H
#define CFS_NET_NET_H

#include <stddef.h>
#include <stdint.h>

#include "net/wire.h"
#include "rt/rt.h"

struct net;

/* Node ids from net_connect_alias(): never real node ids (those are < 0xff000000). */
#define NET_ALIAS_BASE 0xff000000u

struct net_config {
	const char *listen;	   /* "host:port", "[v6]:port", "*:port"; NULL/"": no listener */
	struct wire_limits limits; /* what this node accepts and sends */
	size_t max_outq_bytes;	   /* per connection: queued bytes + 576 per frame */
	uint32_t connect_timeout_ms;
	uint32_t reconnect_min_ms; /* first backoff after a failed connect */
	uint32_t reconnect_max_ms; /* backoff cap */
	/* A peer that acknowledges nothing for this long is dead: unacknowledged
	 * data (TCP_USER_TIMEOUT), or keepalive probes on an idle connection.
	 * Linux (5.11 on) also ends a connection whose peer keeps its receive
	 * window shut that long: one alive but reading nothing. */
	uint32_t peer_timeout_ms;
	/* A frame in progress may go this long without a byte (time this node
	 * is not reading, its own backlog, not counted). */
	uint32_t frame_timeout_ms;
	uint32_t max_conns; /* accepted connections open at once, this process */
	/* Payload bytes received and not yet released, this process (requests
	 * waiting in actors' queues or for the disk): above it, connections
	 * clients opened stop reading until a quarter is released. */
	uint64_t max_rx_held;
};

#define NET_DEFAULT_MAX_OUTQ	       (64u << 20)
#define NET_DEFAULT_CONNECT_TIMEOUT_MS 2000
#define NET_DEFAULT_RECONNECT_MIN_MS   100
#define NET_DEFAULT_RECONNECT_MAX_MS   5000
#define NET_DEFAULT_PEER_TIMEOUT_MS    30000
#define NET_DEFAULT_FRAME_TIMEOUT_MS   30000
#define NET_DEFAULT_MAX_CONNS	       4096
#define NET_DEFAULT_MAX_RX_HELD	       (1ull << 30)

/** Fill cfg with the defaults (no listener, WIRE_LIMITS_DEFAULT, 64 MiB queue,
 *  2 s connect timeout, backoff 100 ms .. 5 s, peers dead after 30 s of
 *  silence, frames stalled 30 s, 4096 accepted connections, 1 GiB of
 *  received payloads held). */
void net_config_init(struct net_config *cfg);

/**
 * Create the transport for rt and install it with rt_set_transport(); call it
 * after rt_create and before rt_start. When cfg->listen is set, the address is
 * bound here, exclusively (no SO_REUSEPORT: a second process on the same
 * address fails with -EADDRINUSE rather than sharing the connections), so a
 * bad or busy address fails now and net_listen_port() is valid as soon as this
 * returns. Loop 0 accepts and hands the connections to all loops in turn.
 * Zero fields of cfg take their defaults; cfg (and cfg->listen) may die after
 * the call.
 *
 * @return 0 and *out; -EINVAL (unparsable listen address), -CFS_ECONFIG
 *         (inconsistent limits; max_hdr or max_payload over 64 MiB),
 *         -EADDRINUSE and other bind/listen errors,
 *         -ENOMEM.
 */
int net_create(struct rt *rt, const struct net_config *cfg, struct net **out);

/** Free the transport. Call after rt_destroy (the loops have closed their
 *  connections by then) or when rt_start was never called. Sets *pnet to NULL. */
void net_destroy(struct net **pnet);

/**
 * Choose the loops that own accepted connections: bit i set = loop i takes
 * its turn (the accepting loop 0 still accepts them all). By default every
 * loop does. A node whose storage targets live on some loops hands its
 * connections to those: a request then usually finds its target on the loop
 * that read it, with no hop through another loop's inbox and no wake-up of a
 * second thread each way. Call before rt_start.
 *
 * @return 0; -EINVAL (no bit set below the number of loops).
 */
int net_set_conn_loops(struct net *net, uint64_t mask);

/** The TCP port the listener is bound to (the real one for "host:0"); 0 without a listener. */
uint16_t net_listen_port(const struct net *net);

/**
 * Name node `node` as reachable at "host:port". Any thread, any time (control
 * path: takes a lock, may resolve the name). A new address for a known node is
 * used from that loop's next connect on; the endpoint a node is known at
 * already is not resolved again (0 at once), so routing adopters may call this
 * for every node, and again for the ones that failed.
 *
 * @return 0; -EINVAL (node 0, node >= NET_ALIAS_BASE, unparsable endpoint),
 *         -EHOSTUNREACH (name does not resolve), -ENOMEM.
 */
int net_add_peer(struct net *net, uint32_t node, const char *endpoint);

/**
 * For a client that knows a server only by endpoint: an alias node id
 * (>= NET_ALIAS_BASE) to use in CFS_ADDR(alias, local). Frames sent to it carry
 * dst node CFS_NODE_ANY ("whoever receives this"), so they reach the actor
 * `local` of whichever node listens there. The same endpoint string returns the
 * same alias. Nothing is connected here: each loop connects on its first send.
 *
 * @return 0 and *node; -EINVAL, -EHOSTUNREACH, -ENOMEM, -ENOSPC (2^24 aliases).
 */
int net_connect_alias(struct net *net, const char *endpoint, uint32_t *node);

/**
 * Send-queue ring entries all of net's TCP connections hold. A queue grows
 * while a peer reads slower than frames are queued, and a ring of more than
 * 256 entries is given back once it has drained. A gauge, for tests and
 * memory accounting.
 */
uint64_t net_txq_slots(const struct net *net);

/* Per loop counters; written by their loop, read racily by anyone. */
struct net_stats {
	uint64_t frames_in;
	uint64_t frames_out;
	uint64_t bytes_in; /* header + payload bytes read */
	uint64_t bytes_out;
	uint64_t conns_accepted;  /* incoming connections this loop owns */
	uint64_t conns_connected; /* outgoing connects that succeeded */
	uint64_t conns_open;	  /* gauge: currently open, either direction */
	uint64_t connect_failures;
	uint64_t conn_errors;  /* connections closed by an I/O error or reset */
	uint64_t proto_errors; /* connections closed for a bad frame */
	uint64_t busy;	       /* sends refused with -CFS_EBUSY */
	uint64_t rx_pauses;    /* a connection stopped reading: backlog or memory */
	uint64_t rx_held_pauses; /* of which for max_rx_held */
	uint64_t frame_timeouts; /* connections closed: a frame took too long */
	uint64_t conns_refused;	 /* accepted and closed at once: max_conns reached */
};

/**
 * Counters of loop `index` (a racy snapshot; zero before the loop started).
 * @return 0, -EINVAL (index out of range).
 */
int net_stats(const struct net *net, unsigned index, struct net_stats *out);

#endif

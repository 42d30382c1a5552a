// SPDX-License-Identifier: MIT
/*
 * The transport edge of the runtime (struct rt_transport_ops) and the generic
 * half of every connection: which connection a message leaves on, connection
 * ids, per-loop peers with lazy connect and backoff, the per-iteration flush
 * list, deferred frees, counters and rate-limited error logs. The bytes are
 * moved by a connection type (transport.h; TCP in tcp.c).
 *
 * State is per loop (struct net_loop) and touched only by its thread; the
 * shared things are the table of peer endpoints (node -> address), written by
 * net_add_peer/net_connect_alias from any thread under a mutex and read by a
 * loop only when it creates its peer entry or starts a connect (never per
 * message), and the handoff stacks through which the accepting loop (loop 0,
 * the only one with a listening socket) gives accepted connections to the
 * loops in turn.
 */
#define RT_LOG_SUBSYS "net"
#include <config.h>

#include "net/net.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/transport.h"

/* Error lines per loop per second before the rest are only counted. */
#define NET_LOG_BURST 10

/* A named endpoint, shared by all loops (under net->lock). */
struct net_endpoint {
	uint32_t node;
	bool alias;
	char *text; /* "host:port" as given */
	struct sockaddr_storage sa;
	socklen_t salen;
};

/* One loop's view of a node: its connection and its backoff. */
struct net_peer {
	uint32_t node;
	bool alias;	       /* rewrite dst node to CFS_NODE_ANY on the wire */
	struct net_conn *conn; /* NULL: not connected */
	uint64_t retry_at_ns;  /* no connect attempt before this */
	uint32_t backoff_ms;   /* the next backoff after a failed attempt */
	int last_err;	       /* what sends get while the backoff runs */
};

struct net_loop {
	struct net *net;
	struct rt_loop *loop;
	struct ev_loop *ev;
	unsigned index;
	uint32_t node_id;
	bool finishing; /* loop_fini: no more rt_peer_lost */
	bool accepting;
	struct net_stats *stats;

	/* Connections by slot: id = index << 56 | gen << 32 | slot. */
	struct net_conn **slots;
	uint32_t *gens;
	uint32_t nslots; /* slots in use or freed, <= cap */
	uint32_t cap;
	uint32_t *free_slots;
	uint32_t nfree;

	/* Peers by node id: open addressing, power-of-two capacity. */
	struct net_peer **peers;
	uint32_t pcap;
	uint32_t pcount;

	struct net_conn *dirty; /* want a flush this iteration */
	struct net_conn *dead;	/* closed, freed at the end of the iteration */
	struct net_conn *paused; /* not read while the loop's backlog is long */
	struct rt_timer sweep;	 /* looks for frames over frame_timeout_ms */
	struct rt_timer resume;	 /* while connections are paused: may they read? */

	uint64_t log_window_ns;
	unsigned log_lines;
	unsigned log_dropped;
};

struct net_stats_slot {
	struct net_stats s;
} __attribute__((aligned(64)));

/* Accepted connections waiting for loop `index` to adopt them: a lock-free
 * stack pushed by the accepting loop, taken whole by a post to `index`. */
struct net_handoff_q {
	_Atomic(struct net_handoff *) head;
	struct net *net;
	unsigned index;
} __attribute__((aligned(64)));

struct net {
	struct rt *rt;
	const struct net_conn_type *type;
	struct net_config cfg;
	unsigned nloops;
	struct net_listener listener;
	bool listening; /* listener is bound (net_create) */
	uint16_t port;
	unsigned next_owner; /* round-robin; the accepting loop's alone */
	uint64_t conn_loops; /* loops that own accepted connections; 0: all */
	/* Each loop's state, written by that loop in loop_init/loop_fini and
	 * read by its own handoff drain (and by net_destroy after the join). */
	struct net_loop *nls[RT_MAX_LOOPS];
	struct net_handoff_q hq[RT_MAX_LOOPS];

	pthread_mutex_t lock; /* endpoints, next_alias */
	struct net_endpoint *eps;
	unsigned neps;
	unsigned eps_cap;
	uint32_t next_alias;

	/* Accepted connections open (or on their way to a loop), against
	 * cfg.max_conns: admitted by the accepting loop, let go by any. */
	_Atomic uint32_t accepted_open;
	/* Send-queue ring entries the connections hold (net_txq_slots). */
	_Atomic uint64_t txq_slots;

	struct net_stats_slot stats[RT_MAX_LOOPS];
};

void
net_config_init(struct net_config *cfg)
{
	*cfg = (struct net_config){
		.listen = NULL,
		.limits = WIRE_LIMITS_DEFAULT,
		.max_outq_bytes = NET_DEFAULT_MAX_OUTQ,
		.connect_timeout_ms = NET_DEFAULT_CONNECT_TIMEOUT_MS,
		.reconnect_min_ms = NET_DEFAULT_RECONNECT_MIN_MS,
		.reconnect_max_ms = NET_DEFAULT_RECONNECT_MAX_MS,
		.peer_timeout_ms = NET_DEFAULT_PEER_TIMEOUT_MS,
		.frame_timeout_ms = NET_DEFAULT_FRAME_TIMEOUT_MS,
		.max_rx_held = NET_DEFAULT_MAX_RX_HELD,
		.max_conns = NET_DEFAULT_MAX_CONNS,
	};
}

struct ev_loop *
net_loop_ev(struct net_loop *nl)
{
	return nl->ev;
}

struct rt_loop *
net_loop_rt(struct net_loop *nl)
{
	return nl->loop;
}

/* ------------------------------------------------------------------ logging */

void
net_loop_log_error(struct net_loop *nl, const char *who, const char *what, int rc)
{
	uint64_t now = rt_now_ns(nl->loop);

	/* A peer spraying bad frames, or a flapping link, must not flood the log. */
	if (now - nl->log_window_ns >= 1000000000ull) {
		if (nl->log_dropped)
			RT_WARN("loop=%u %u more connection errors not logged", nl->index,
				nl->log_dropped);
		nl->log_window_ns = now;
		nl->log_lines = 0;
		nl->log_dropped = 0;
	}
	if (nl->log_lines >= NET_LOG_BURST) {
		nl->log_dropped++;
		return;
	}
	nl->log_lines++;
	RT_WARN("conn=%s loop=%u %s: %s (%d)", who, nl->index, what, cfs_errname(rc), rc);
}

void
net_conn_log_error(struct net_conn *c, const char *what, int rc)
{
	net_loop_log_error(c->nl, c->name, what, rc);
}

/* ---------------------------------------------------------------- endpoints */

/*
 * "host:port", "[v6]:port", ":port" or "*:port" (any address, for listening).
 * Names are resolved here, on the control path, never by a loop.
 */
static int
parse_endpoint(const char *text, bool passive, struct sockaddr_storage *sa, socklen_t *salen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char host[256];
	const char *port;
	const char *hend;
	size_t hlen;
	char *end;
	unsigned long pn;
	int rc;

	if (!text || !*text)
		return -EINVAL;
	if (text[0] == '[') {
		hend = strchr(text, ']');
		if (!hend || hend[1] != ':')
			return -EINVAL;
		text++;
		port = hend + 2;
	} else {
		hend = strrchr(text, ':');
		if (!hend || strchr(text, ':') != hend)
			return -EINVAL; /* no port, or a bare IPv6 address */
		port = hend + 1;
	}
	hlen = (size_t)(hend - text);
	if (hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	errno = 0;
	pn = strtoul(port, &end, 10);
	if (!*port || *end || errno || pn > 65535 || *port == '-' || *port == '+')
		return -EINVAL;

	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	rc = getaddrinfo((hlen == 0 || strcmp(host, "*") == 0) ? NULL : host, port, &hints, &res);
	if (rc == EAI_MEMORY)
		return -ENOMEM;
	if (rc != 0 || !res)
		return -EHOSTUNREACH;
	memcpy(sa, res->ai_addr, res->ai_addrlen);
	*salen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static struct net_endpoint *
endpoint_find_locked(struct net *net, uint32_t node)
{
	for (unsigned i = 0; i < net->neps; i++)
		if (net->eps[i].node == node)
			return &net->eps[i];
	return NULL;
}

static int
endpoint_add_locked(struct net *net, uint32_t node, bool alias, const char *text,
		    const struct sockaddr_storage *sa, socklen_t salen)
{
	struct net_endpoint *ep;
	char *copy = strdup(text);

	if (!copy)
		return -ENOMEM;
	if (net->neps == net->eps_cap) {
		unsigned cap = net->eps_cap ? net->eps_cap * 2 : 16;
		void *n = realloc(net->eps, cap * sizeof(*net->eps));

		if (!n) {
			free(copy);
			return -ENOMEM;
		}
		net->eps = n;
		net->eps_cap = cap;
	}
	ep = &net->eps[net->neps++];
	*ep = (struct net_endpoint){.node = node, .alias = alias, .text = copy, .salen = salen};
	memcpy(&ep->sa, sa, salen);
	return 0;
}

int
net_add_peer(struct net *net, uint32_t node, const char *endpoint)
{
	struct sockaddr_storage sa;
	struct net_endpoint *ep;
	socklen_t salen;
	char *copy;
	bool known;
	int rc;

	if (node == CFS_NODE_ANY || node >= NET_ALIAS_BASE)
		return -EINVAL;
	/* Known there already: nothing to resolve again (routing adopters call
	 * this for every node of every version, and again for those that
	 * failed). */
	pthread_mutex_lock(&net->lock);
	ep = endpoint_find_locked(net, node);
	known = ep && !ep->alias && strcmp(ep->text, endpoint) == 0;
	pthread_mutex_unlock(&net->lock);
	if (known)
		return 0;
	rc = parse_endpoint(endpoint, false, &sa, &salen);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&net->lock);
	ep = endpoint_find_locked(net, node);
	if (!ep) {
		rc = endpoint_add_locked(net, node, false, endpoint, &sa, salen);
		goto out_unlock;
	}
	copy = strdup(endpoint);
	if (!copy) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	free(ep->text);
	ep->text = copy;
	memcpy(&ep->sa, &sa, salen);
	ep->salen = salen;
out_unlock:
	pthread_mutex_unlock(&net->lock);
	return rc;
}

int
net_connect_alias(struct net *net, const char *endpoint, uint32_t *node)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	int rc;

	rc = parse_endpoint(endpoint, false, &sa, &salen);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&net->lock);
	for (unsigned i = 0; i < net->neps; i++) {
		if (net->eps[i].alias && strcmp(net->eps[i].text, endpoint) == 0) {
			*node = net->eps[i].node;
			goto out_unlock;
		}
	}
	if (net->next_alias == 0) {
		rc = -ENOSPC; /* wrapped past 0xffffffff */
		goto out_unlock;
	}
	rc = endpoint_add_locked(net, net->next_alias, true, endpoint, &sa, salen);
	if (rc != 0)
		goto out_unlock;
	*node = net->next_alias++;
out_unlock:
	pthread_mutex_unlock(&net->lock);
	return rc;
}

/* ------------------------------------------------------------- connections */

static int
slots_grow(struct net_loop *nl)
{
	uint32_t cap = nl->cap ? nl->cap * 2 : 64;
	struct net_conn **s;
	uint32_t *g, *f;

	if (cap > (1u << 30))
		return -ENOMEM;
	s = realloc(nl->slots, cap * sizeof(*s));
	if (!s)
		return -ENOMEM;
	nl->slots = s;
	g = realloc(nl->gens, cap * sizeof(*g));
	if (!g)
		return -ENOMEM;
	nl->gens = g;
	f = realloc(nl->free_slots, cap * sizeof(*f));
	if (!f)
		return -ENOMEM;
	nl->free_slots = f;
	memset(&nl->gens[nl->cap], 0, (cap - nl->cap) * sizeof(*g));
	nl->cap = cap;
	return 0;
}

/* Give c an id on nl and fill its generic fields. */
static int
conn_register(struct net_loop *nl, struct net_conn *c, bool accepted, const char *name)
{
	struct net *net = nl->net;
	uint32_t slot;
	int rc;

	if (nl->nfree) {
		slot = nl->free_slots[--nl->nfree];
	} else {
		if (nl->nslots == nl->cap) {
			rc = slots_grow(nl);
			if (rc != 0)
				return rc;
		}
		slot = nl->nslots++;
	}
	/* The generation makes a stale id (a reply for a connection that closed
	 * while the request was handled) miss instead of hitting its successor. */
	nl->gens[slot] = (nl->gens[slot] + 1) & 0xffffffu;
	if (nl->gens[slot] == 0)
		nl->gens[slot] = 1;
	nl->slots[slot] = c;
	c->nl = nl;
	c->id = (uint64_t)nl->index << 56 | (uint64_t)nl->gens[slot] << 32 | slot;
	c->accepted = accepted;
	c->ev = nl->ev;
	c->loop = nl->loop;
	c->stats = nl->stats;
	c->lim = net->cfg.limits;
	c->max_outq = net->cfg.max_outq_bytes;
	c->peer_timeout_ms = net->cfg.peer_timeout_ms;
	snprintf(c->name, sizeof(c->name), "%s", name);
	NET_STAT_ADD(nl->stats, conns_open, 1);
	return 0;
}

static void
conn_unregister(struct net_loop *nl, struct net_conn *c)
{
	uint32_t slot = (uint32_t)c->id;

	if (slot < nl->nslots && nl->slots[slot] == c) {
		nl->slots[slot] = NULL;
		nl->free_slots[nl->nfree++] = slot;
		NET_STAT_ADD(nl->stats, conns_open, -1);
		if (c->accepted)
			net_accept_forget(nl);
	}
}

static struct net_conn *
conn_lookup(struct net_loop *nl, uint64_t id)
{
	uint32_t slot = (uint32_t)id;
	struct net_conn *c;

	if ((id >> 56) != nl->index || slot >= nl->nslots)
		return NULL;
	c = nl->slots[slot];
	return c && c->id == id ? c : NULL;
}

bool
net_accept_admit(struct net_loop *nl, const char *name)
{
	struct net *net = nl->net;

	/* Only the accepting loop adds, so load-then-add cannot overshoot. */
	if (atomic_load_explicit(&net->accepted_open, memory_order_relaxed) >=
	    net->cfg.max_conns) {
		NET_STAT_ADD(nl->stats, conns_refused, 1);
		net_loop_log_error(nl, name, "max_conns connections open, refused", -EMFILE);
		return false;
	}
	atomic_fetch_add_explicit(&net->accepted_open, 1, memory_order_relaxed);
	return true;
}

void
net_accept_forget(struct net_loop *nl)
{
	atomic_fetch_sub_explicit(&nl->net->accepted_open, 1, memory_order_relaxed);
}

int
net_conn_accepted(struct net_loop *nl, struct net_conn *c, const char *name)
{
	int rc = conn_register(nl, c, true, name);

	if (rc != 0)
		return rc;
	c->state = NET_CONN_UP;
	NET_STAT_ADD(nl->stats, conns_accepted, 1);
	RT_DEBUG("conn=%s loop=%u accepted id=0x%016llx", c->name, nl->index,
		 (unsigned long long)c->id);
	return 0;
}

void
net_conn_up(struct net_conn *c)
{
	struct net_peer *p = c->peer;

	c->state = NET_CONN_UP;
	NET_STAT_ADD(c->stats, conns_connected, 1);
	if (p) {
		p->backoff_ms = c->nl->net->cfg.reconnect_min_ms;
		p->retry_at_ns = 0;
		p->last_err = 0;
	}
	RT_DEBUG("conn=%s loop=%u connected", c->name, c->nl->index);
}

void
net_conn_frame(struct net_conn *c, struct rt_msg *m)
{
	NET_STAT_ADD(c->stats, frames_in, 1);
	m->conn = c->id;
	m->via_node = !c->accepted && c->peer ? c->peer->node : 0;
	c->fed_loops |= rt_loop_bit(CFS_LOCAL_LOOP(CFS_ADDR_LOCAL(m->dst)));
	rt_deliver(c->loop, m);
}

void
net_conn_rx_mark(struct net_conn *c, bool partial)
{
	c->rx_frame_ns = partial ? rt_now_ns(c->loop) : 0;
}

/* Close the connections whose frame in progress got no byte for
 * frame_timeout_ms: a peer that stops inside a frame holds a receive buffer
 * as large as the payload it announced. Not the peer's fault, and skipped:
 * connections this loop is not reading (its backlog; their clocks restart
 * when read again), and ones whose bytes wait unread (this loop was busy, or
 * the transport waits for more before waking it). */
static void
frame_sweep(struct rt_timer *t, void *arg)
{
	struct net_loop *nl = arg;
	uint64_t now = rt_now_ns(nl->loop);
	uint64_t limit = (uint64_t)nl->net->cfg.frame_timeout_ms * 1000000ull;

	for (uint32_t i = 0; i < nl->nslots; i++) {
		struct net_conn *c = nl->slots[i];

		if (!c || c->state != NET_CONN_UP || c->rx_paused || !c->rx_frame_ns ||
		    now - c->rx_frame_ns <= limit)
			continue;
		if (c->type->rx_progress(c)) {
			c->rx_frame_ns = now;
			continue;
		}
		c->rx_stalled = true;
		net_conn_close(c, -ETIMEDOUT);
	}
}

/* A loop's backlog (delivered messages not yet handled) above which its
 * connections stop reading, and below which they read again: one readv may
 * deliver ~14 000 small frames, an iteration handles RT_RUNQ_BUDGET (4096). */
#define NET_RX_BACKLOG_HIGH 16384u
#define NET_RX_BACKLOG_LOW  4096u
/* While paused for another loop's inbox, how often to look again. */
#define NET_RX_RESUME_MS 1

/* This loop's own backlog: every connection it reads adds to it. */
static bool
backlog_over(struct net_loop *nl, size_t mark)
{
	return rt_loop_backlog(nl->loop) >= mark;
}

/* What c reads may be for actors of other loops: the inboxes of those it
 * fed count as much as our own run queue. Only those: one loop stalled (a
 * slow disk, a long handler) stops the connections that feed it, not every
 * connection of the process. */
static bool
fed_over(const struct net_conn *c, size_t mark)
{
	uint64_t others = c->fed_loops & ~rt_loop_bit(rt_loop_index(c->loop));

	return others != 0 && rt_inbox_max(c->nl->net->rt, others) >= mark;
}

/* Payloads received and still held (waiting in actors' queues, for the
 * disk) stop only connections clients opened. Ours carry the answers that
 * release them; those other nodes opened carry their forwards down our
 * chains, which they hold until we answer: two nodes full of writes for
 * each other's chains would wait for ever. What nodes forward is bounded by
 * what they took from their own clients. */
static bool
held_over(struct net_loop *nl, uint64_t mark)
{
	return rt_rx_held(nl->net->rt) >= mark;
}

static void
rx_pause(struct net_conn *c, bool held)
{
	struct net_loop *nl = c->nl;

	/* Another loop draining its inbox, or releasing buffers, does not wake
	 * us: look again soon. */
	if (!nl->paused)
		rt_timer_start(&nl->resume, NET_RX_RESUME_MS, NET_RX_RESUME_MS);
	c->rx_paused = true;
	c->paused_next = nl->paused;
	nl->paused = c;
	NET_STAT_ADD(nl->stats, rx_pauses, 1);
	if (held)
		NET_STAT_ADD(nl->stats, rx_held_pauses, 1);
}

bool
net_conn_rx_pause(struct net_conn *c)
{
	if (c->rx_paused)
		return true;
	if (!backlog_over(c->nl, NET_RX_BACKLOG_HIGH) && !fed_over(c, NET_RX_BACKLOG_HIGH)) {
		c->fed_loops = 0;
		return false;
	}
	rx_pause(c, false);
	return true;
}

bool
net_conn_rx_hold(struct net_conn *c, const struct rt_msg *m, uint64_t plen)
{
	struct net_loop *nl = c->nl;

	if (!c->classified) {
		c->classified = true;
		c->from_client = c->accepted && CFS_ADDR_NODE(m->src) == 0;
	}
	if (!plen || !c->from_client || !held_over(nl, nl->net->cfg.max_rx_held))
		return false;
	if (!c->rx_paused)
		rx_pause(c, true);
	return true;
}

/* After the iteration's handlers ran: read the paused connections again once
 * the backlog and the inboxes they fed are short, and clients' once a
 * quarter of max_rx_held was released. */
static void
rx_resume_all(struct net_loop *nl)
{
	struct net_conn **pp = &nl->paused, *c;
	bool held;

	if (nl->paused && backlog_over(nl, NET_RX_BACKLOG_LOW))
		return;
	held = nl->paused && held_over(nl, nl->net->cfg.max_rx_held / 4 * 3);
	while ((c = *pp)) {
		if ((held && c->from_client) || fed_over(c, NET_RX_BACKLOG_LOW)) {
			pp = &c->paused_next;
			continue;
		}
		*pp = c->paused_next;
		c->paused_next = NULL;
		c->rx_paused = false;
		if (c->rx_frame_ns)
			c->rx_frame_ns = rt_now_ns(nl->loop);
		if (c->state != NET_CONN_CLOSED)
			c->type->rx_resume(c);
	}
	if (!nl->paused)
		rt_timer_stop(&nl->resume); /* none left, or the paused ones closed */
}

static void
resume_tick(struct rt_timer *t, void *arg)
{
	rx_resume_all(arg);
}

static void
rx_unpause(struct net_loop *nl, struct net_conn *c)
{
	struct net_conn **pp = &nl->paused;

	if (!c->rx_paused)
		return;
	while (*pp != c)
		pp = &(*pp)->paused_next;
	*pp = c->paused_next;
	c->paused_next = NULL;
	c->rx_paused = false;
}

void
net_conn_txq_held(struct net_conn *c, int64_t delta)
{
	if (c->nl)
		atomic_fetch_add(&c->nl->net->txq_slots, (uint64_t)delta);
}

uint64_t
net_txq_slots(const struct net *net)
{
	return atomic_load(&net->txq_slots);
}

void
net_conn_want_flush(struct net_conn *c)
{
	if (c->dirty || c->state == NET_CONN_CLOSED)
		return;
	c->dirty = true;
	c->dirty_next = c->nl->dirty;
	c->nl->dirty = c;
}

static void
peer_backoff(struct net_loop *nl, struct net_peer *p, int rc)
{
	const struct net_config *cfg = &nl->net->cfg;

	p->last_err = rc;
	p->retry_at_ns = rt_now_ns(nl->loop) + (uint64_t)p->backoff_ms * 1000000ull;
	p->backoff_ms = p->backoff_ms >= cfg->reconnect_max_ms / 2 ? cfg->reconnect_max_ms
								   : p->backoff_ms * 2;
}

void
net_conn_close(struct net_conn *c, int rc)
{
	struct net_loop *nl = c->nl;
	struct net_peer *p = c->peer;
	bool was_up = c->state == NET_CONN_UP;

	if (c->state == NET_CONN_CLOSED)
		return;
	c->state = NET_CONN_CLOSED;
	/* Count and log before the socket closes: whoever watches the other end
	 * (a test, an operator) may look at the counters as soon as it sees EOF. */
	if (c->rx_stalled) {
		NET_STAT_ADD(nl->stats, frame_timeouts, 1);
		net_conn_log_error(c, "frame not complete within frame_timeout_ms, connection closed",
				   rc);
	} else if (rc == -CFS_EPROTO || rc == -CFS_ETOOBIG) {
		NET_STAT_ADD(nl->stats, proto_errors, 1);
		net_conn_log_error(c, "bad frame, connection closed", rc);
	} else if (!was_up && !nl->finishing) {
		NET_STAT_ADD(nl->stats, connect_failures, 1);
		net_conn_log_error(c, "connect failed", rc);
	} else if (rc != 0 && !(c->accepted && rc == -ECONNRESET)) {
		/* An accepted connection ending is a client leaving: not worth a line. */
		NET_STAT_ADD(nl->stats, conn_errors, 1);
		net_conn_log_error(c, "connection lost", rc);
	}
	c->type->close(c);
	rx_unpause(nl, c);
	conn_unregister(nl, c);
	c->dead_next = nl->dead;
	nl->dead = c;
	if (!p)
		return;
	/* Peer state first: the callbacks rt_peer_lost runs may send again. */
	p->conn = NULL;
	c->peer = NULL;
	if (!was_up)
		peer_backoff(nl, p, rc ? rc : -ECONNREFUSED);
	if (!nl->finishing)
		rt_peer_lost(nl->loop, p->node, rc ? rc : -ECONNRESET);
}

/* ---------------------------------------------------------------- handoff */

/* Everything handed over to q so far, oldest first. */
static struct net_handoff *
handoff_take(struct net_handoff_q *q)
{
	struct net_handoff *h, *next, *fifo = NULL;

	h = atomic_exchange_explicit(&q->head, NULL, memory_order_acquire);
	for (; h; h = next) {
		next = h->next;
		h->next = fifo;
		fifo = h;
	}
	return fifo;
}

/* Set up the connections of list on nl; close them when nl is gone (NULL) or
 * finishing. */
static void
handoff_adopt(struct net *net, struct net_loop *nl, struct net_handoff *list)
{
	struct net_handoff *h, *next;

	for (h = list; h; h = next) {
		next = h->next;
		if (nl && !nl->finishing) {
			net->type->adopt(nl, h);
		} else {
			net->type->discard(h);
			atomic_fetch_sub_explicit(&net->accepted_open, 1, memory_order_relaxed);
		}
		free(h);
	}
}

/* Posted to loop q->index: adopt what the accepting loop handed over. */
static void
handoff_drain(void *arg)
{
	struct net_handoff_q *q = arg;

	handoff_adopt(q->net, q->net->nls[q->index], handoff_take(q));
}

/* net_destroy: what no loop took (posts to loops that had stopped). */
static void
handoff_discard_all(struct net *net)
{
	for (unsigned i = 0; i < net->nloops; i++)
		handoff_adopt(net, NULL, handoff_take(&net->hq[i]));
}

void
net_conn_handoff(struct net_loop *nl, struct net_handoff *h)
{
	struct net *net = nl->net;
	struct net_handoff_q *q;
	struct net_handoff *old;
	unsigned t;

	/* net_set_conn_loops checked that some loop below nloops is in the mask. */
	do {
		t = net->next_owner++ % net->nloops;
	} while (net->conn_loops && !(net->conn_loops >> t & 1));
	q = &net->hq[t];
	if (t == nl->index) {
		h->next = NULL;
		handoff_adopt(net, nl, h);
		return;
	}
	old = atomic_load_explicit(&q->head, memory_order_relaxed);
	do {
		h->next = old;
	} while (!atomic_compare_exchange_weak_explicit(&q->head, &old, h, memory_order_release,
							memory_order_relaxed));
	/* A drain is already on its way unless the stack was empty. */
	if (old != NULL)
		return;
	if (rt_loop_post(rt_loop_at(net->rt, t), handoff_drain, q) == 0)
		return;
	/* No memory for the post: nobody else will drain this stack (only we
	 * push, and no drain is pending), so serve its connections here. */
	handoff_adopt(net, nl, handoff_take(q));
}

/* ------------------------------------------------------------------- peers */

static uint32_t
peer_hash(uint32_t node)
{
	return node * 2654435761u;
}

static struct net_peer *
peer_find(struct net_loop *nl, uint32_t node)
{
	uint32_t mask = nl->pcap - 1;

	if (!nl->pcap)
		return NULL;
	for (uint32_t i = peer_hash(node) & mask;; i = (i + 1) & mask) {
		struct net_peer *p = nl->peers[i];

		if (!p || p->node == node)
			return p;
	}
}

static int
peer_insert(struct net_loop *nl, struct net_peer *p)
{
	uint32_t mask;

	if ((nl->pcount + 1) * 2 > nl->pcap) {
		uint32_t cap = nl->pcap ? nl->pcap * 2 : 16;
		struct net_peer **old = nl->peers;
		uint32_t ocap = nl->pcap;

		nl->peers = calloc(cap, sizeof(*nl->peers));
		if (!nl->peers) {
			nl->peers = old;
			return -ENOMEM;
		}
		nl->pcap = cap;
		nl->pcount = 0;
		for (uint32_t i = 0; i < ocap; i++)
			if (old[i])
				peer_insert(nl, old[i]);
		free(old);
	}
	mask = nl->pcap - 1;
	for (uint32_t i = peer_hash(p->node) & mask;; i = (i + 1) & mask) {
		if (!nl->peers[i]) {
			nl->peers[i] = p;
			nl->pcount++;
			return 0;
		}
	}
}

/* The loop's entry for node, made on first use from the shared endpoint table. */
static int
peer_get(struct net_loop *nl, uint32_t node, struct net_peer **out)
{
	struct net *net = nl->net;
	struct net_endpoint *ep;
	struct net_peer *p = peer_find(nl, node);
	bool alias;
	int rc;

	if (p) {
		*out = p;
		return 0;
	}
	pthread_mutex_lock(&net->lock);
	ep = endpoint_find_locked(net, node);
	alias = ep && ep->alias;
	pthread_mutex_unlock(&net->lock);
	if (!ep)
		return -EHOSTUNREACH;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->node = node;
	p->alias = alias;
	p->backoff_ms = net->cfg.reconnect_min_ms;
	rc = peer_insert(nl, p);
	if (rc != 0) {
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

static int
peer_connect(struct net_loop *nl, struct net_peer *p)
{
	struct net *net = nl->net;
	struct sockaddr_storage sa;
	struct net_endpoint *ep;
	struct net_conn *c;
	socklen_t salen = 0;
	char name[64];
	int rc;

	/* Read the address now, not when the peer entry was made: net_add_peer
	 * may have moved the node since. */
	pthread_mutex_lock(&net->lock);
	ep = endpoint_find_locked(net, p->node);
	if (ep) {
		memcpy(&sa, &ep->sa, ep->salen);
		salen = ep->salen;
		if (ep->alias)
			snprintf(name, sizeof(name), "%s", ep->text);
		else
			snprintf(name, sizeof(name), "%s/node=%u", ep->text, p->node);
	}
	pthread_mutex_unlock(&net->lock);
	if (!salen)
		return -EHOSTUNREACH;

	c = net->type->alloc();
	if (!c)
		return -ENOMEM;
	c->type = net->type;
	rc = conn_register(nl, c, false, name);
	if (rc != 0)
		goto out_free;
	c->state = NET_CONN_CONNECTING;
	rc = net->type->connect(c, (struct sockaddr *)&sa, salen, net->cfg.connect_timeout_ms);
	if (rc != 0)
		goto out_unregister;
	c->peer = p;
	p->conn = c;
	return 0;

out_unregister:
	conn_unregister(nl, c);
	NET_STAT_ADD(nl->stats, connect_failures, 1);
	net_conn_log_error(c, "connect failed", rc);
	peer_backoff(nl, p, rc);
out_free:
	net->type->release(c);
	return rc;
}

/* ------------------------------------------------------- rt transport edge */

static void
net_loop_flush(void *arg)
{
	struct net_loop *nl = arg;
	struct net_conn *c;

	/* A flush may close a connection, and the calls that fails may send
	 * again and dirty others: take them one at a time off the list head. */
	while ((c = nl->dirty)) {
		nl->dirty = c->dirty_next;
		c->dirty_next = NULL;
		c->dirty = false;
		if (c->state == NET_CONN_UP)
			c->type->flush(c);
	}
	while ((c = nl->dead)) {
		nl->dead = c->dead_next;
		c->type->release(c);
	}
	rx_resume_all(nl);
}

static int
net_send(void *ctx, struct rt_loop *loop, void *loop_state, struct rt_msg *m)
{
	struct net_loop *nl = loop_state;
	struct net_conn *c;
	struct net_peer *p;
	cfs_addr_t dst = m->dst;
	int rc;

	if (m->conn) {
		/* A reply (or a push) to whoever is on the other end of m->conn. */
		c = conn_lookup(nl, m->conn);
		if (!c)
			return -ENOTCONN;
	} else {
		rc = peer_get(nl, CFS_ADDR_NODE(m->dst), &p);
		if (rc != 0)
			return rc;
		c = p->conn;
		if (!c) {
			if (p->retry_at_ns && rt_now_ns(loop) < p->retry_at_ns)
				return p->last_err;
			rc = peer_connect(nl, p);
			if (rc != 0)
				return rc;
			c = p->conn;
		}
		/* An alias is our name for "whoever listens there": the receiver
		 * knows itself as node 0 of the frame. */
		if (p->alias)
			m->dst = CFS_ADDR(CFS_NODE_ANY, CFS_ADDR_LOCAL(dst));
	}
	m->src = CFS_ADDR(nl->node_id, CFS_ADDR_LOCAL(m->src));
	rc = c->type->send_frame(c, m);
	if (rc != 0) {
		m->dst = dst; /* the caller keeps m and may retry it */
		if (rc == -CFS_EBUSY)
			NET_STAT_ADD(nl->stats, busy, 1);
	}
	return rc;
}

static int
net_loop_init(void *ctx, struct rt_loop *loop, void **loop_state)
{
	struct net *net = ctx;
	struct net_loop *nl;
	unsigned index = rt_loop_index(loop);
	uint64_t period;
	int rc;

	if (index >= net->nloops)
		return -EINVAL;
	nl = calloc(1, sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	nl->net = net;
	nl->loop = loop;
	nl->ev = rt_loop_ev(loop);
	nl->index = index;
	nl->node_id = rt_node_id(net->rt);
	nl->stats = &net->stats[index].s;
	if (net->listening && index == 0) {
		rc = net->type->accept(nl, &net->listener);
		if (rc != 0) {
			free(nl);
			return rc;
		}
		nl->accepting = true;
	}
	/* A frame is closed at most a quarter of its timeout late (a second at
	 * most): a sweep costs a walk over the loop's connections. */
	period = net->cfg.frame_timeout_ms / 4;
	period = period < 10 ? 10 : period > 1000 ? 1000 : period;
	rt_timer_init(loop, &nl->sweep, frame_sweep, nl);
	rt_timer_start(&nl->sweep, period, period);
	rt_timer_init(loop, &nl->resume, resume_tick, nl);
	rt_loop_add_flush(loop, net_loop_flush, nl);
	net->nls[index] = nl;
	*loop_state = nl;
	return 0;
}

static void
net_loop_fini(void *ctx, struct rt_loop *loop, void *loop_state)
{
	struct net *net = ctx;
	struct net_loop *nl = loop_state;

	if (!nl)
		return;
	nl->finishing = true;
	rt_timer_stop(&nl->sweep);
	rt_timer_stop(&nl->resume);
	if (nl->accepting) {
		net->type->unlisten(&net->listener);
		nl->accepting = false;
	}
	/* Connections handed to us before we stopped: closed, not adopted. */
	handoff_adopt(net, NULL, handoff_take(&net->hq[nl->index]));
	net->nls[nl->index] = NULL;
	for (uint32_t i = 0; i < nl->nslots; i++)
		if (nl->slots[i])
			net_conn_close(nl->slots[i], 0);
	nl->dirty = NULL;
	net_loop_flush(nl);
	for (uint32_t i = 0; i < nl->pcap; i++)
		free(nl->peers[i]);
	free(nl->peers);
	free(nl->slots);
	free(nl->gens);
	free(nl->free_slots);
	free(nl);
}

static const struct rt_transport_ops net_ops = {
	.name = "net",
	.loop_init = net_loop_init,
	.loop_fini = net_loop_fini,
	.send = net_send,
};

/* --------------------------------------------------------------- lifetime */

static int
net_listen(struct net *net, const char *text)
{
	struct net_listener *l = &net->listener;
	int rc;

	rc = parse_endpoint(text, true, &l->sa, &l->salen);
	if (rc != 0)
		return rc == -EHOSTUNREACH ? -EINVAL : rc;
	l->type = net->type;
	rc = net->type->listen(l);
	if (rc != 0) {
		RT_ERR(rc, "listen=%s", text);
		return rc;
	}
	net->port = l->port;
	net->listening = true;
	return 0;
}

int
net_create(struct rt *rt, const struct net_config *cfg, struct net **out)
{
	struct net_config dflt;
	struct net *net;
	int rc;

	net_config_init(&dflt);
	net = calloc(1, sizeof(*net));
	if (!net)
		return -ENOMEM;
	net->rt = rt;
	net->type = &net_tcp_type;
	net->nloops = rt_loop_count(rt);
	net->next_alias = NET_ALIAS_BASE;
	atomic_init(&net->accepted_open, 0);
	for (unsigned i = 0; i < RT_MAX_LOOPS; i++) {
		atomic_init(&net->hq[i].head, NULL);
		net->hq[i].net = net;
		net->hq[i].index = i;
	}
	net->cfg = cfg ? *cfg : dflt;
	net->cfg.listen = NULL; /* the caller's string may die */
	if (!net->cfg.limits.max_hdr)
		net->cfg.limits.max_hdr = dflt.limits.max_hdr;
	if (!net->cfg.limits.max_payload)
		net->cfg.limits.max_payload = dflt.limits.max_payload;
	if (!net->cfg.max_outq_bytes)
		net->cfg.max_outq_bytes = dflt.max_outq_bytes;
	if (!net->cfg.connect_timeout_ms)
		net->cfg.connect_timeout_ms = dflt.connect_timeout_ms;
	if (!net->cfg.reconnect_min_ms)
		net->cfg.reconnect_min_ms = dflt.reconnect_min_ms;
	if (!net->cfg.reconnect_max_ms)
		net->cfg.reconnect_max_ms = dflt.reconnect_max_ms;
	if (!net->cfg.peer_timeout_ms)
		net->cfg.peer_timeout_ms = dflt.peer_timeout_ms;
	if (!net->cfg.frame_timeout_ms)
		net->cfg.frame_timeout_ms = dflt.frame_timeout_ms;
	if (!net->cfg.max_rx_held)
		net->cfg.max_rx_held = dflt.max_rx_held;
	if (!net->cfg.max_conns)
		net->cfg.max_conns = dflt.max_conns;
	/* A payload lands in one rt_buf, and rt_buf_get stops at 64 MiB; a
	 * header over 64 MiB has no use, and near 4 GiB the reader's 32-bit
	 * prefix + header length would wrap. */
	if (net->cfg.limits.max_payload > (64ull << 20) || net->cfg.limits.max_hdr > (64u << 20) ||
	    net->cfg.reconnect_min_ms > net->cfg.reconnect_max_ms || net->nloops == 0 ||
	    net->nloops > RT_MAX_LOOPS) {
		rc = -CFS_ECONFIG;
		goto out_free;
	}
	rc = -pthread_mutex_init(&net->lock, NULL);
	if (rc != 0)
		goto out_free;
	if (cfg && cfg->listen && *cfg->listen) {
		rc = net_listen(net, cfg->listen);
		if (rc != 0)
			goto out_mutex;
	}
	rt_set_transport(rt, &net_ops, net);
	*out = net;
	return 0;

out_mutex:
	pthread_mutex_destroy(&net->lock);
out_free:
	free(net);
	return rc;
}

void
net_destroy(struct net **pnet)
{
	struct net *net = *pnet;

	if (!net)
		return;
	/* The listener of a loop 0 that never ran (rt_start not called) is still ours. */
	if (net->listener.priv)
		net->type->unlisten(&net->listener);
	handoff_discard_all(net);
	for (unsigned i = 0; i < net->neps; i++)
		free(net->eps[i].text);
	free(net->eps);
	pthread_mutex_destroy(&net->lock);
	free(net);
	*pnet = NULL;
}

int
net_set_conn_loops(struct net *net, uint64_t mask)
{
	if (net->nloops < 64)
		mask &= (1ull << net->nloops) - 1;
	if (mask == 0)
		return -EINVAL;
	net->conn_loops = mask;
	return 0;
}

uint16_t
net_listen_port(const struct net *net)
{
	return net ? net->port : 0;
}

int
net_stats(const struct net *net, unsigned index, struct net_stats *out)
{
	const uint64_t *src;
	uint64_t *dst;

	if (index >= net->nloops)
		return -EINVAL;
	/* Every counter is a uint64_t, each read whole: a new one cannot be
	 * forgotten here. */
	_Static_assert(sizeof(struct net_stats) % sizeof(uint64_t) == 0, "net_stats: uint64_t only");
	src = (const uint64_t *)&net->stats[index].s;
	dst = (uint64_t *)out;
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	return 0;
}

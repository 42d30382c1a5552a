// SPDX-License-Identifier: MIT
/*
 * The TCP connection type: non-blocking sockets on the loop's libev, one
 * exclusive listener (accepted from by loop 0, which hands each connection to
 * the loop that will own it), non-blocking connect with a timeout, and the
 * two byte paths.
 *
 * Send: send_frame encodes the header and body into the connection's header
 * buffer (wire_encode) and queues the message; once per loop iteration (rt's
 * flush hook) all queued frames go out in one gathering sendmsg (a writev
 * with MSG_NOSIGNAL), header bytes from the header buffer and payload
 * straight from the messages' rt_bufs (never copied), up to IOV_MAX segments
 * per call. A message is freed, dropping its buffer references, only when its
 * last byte is written. When the socket is full the write watcher takes over
 * until it drains.
 *
 * Syscalls per loop iteration and connection: one sendmsg and one readv, so
 * 64 requests that arrive together are answered with one write. Flushing at
 * once when the socket is idle would add a syscall per message for a burst and
 * saves no latency: the flush hook runs before the loop next blocks.
 *
 * Receive: one readv per readable event into a per-connection receive buffer
 * (an rt_buf); frames are cut with wire_hdr_len/wire_decode. On a connection
 * we opened, a payload of TCP_RX_SLICE or more that arrived whole in the
 * receive buffer is handed up as a slice of it, not copied: a client's 4 KiB
 * read wave brings four 32 KiB answers in one readv, and copying them out cost
 * it 15 % of its CPU time (bench_storage). A sliced receive buffer is never
 * written again: the next read goes into a fresh one from the loop's pool, and
 * the old one returns there when its last slice is put. Connections peers
 * opened to us copy instead, so that a client's small writes, held until they
 * are durable, each hold only their own bytes against max_rx_held, not a
 * whole receive buffer. Any other payload goes into an aligned
 * rt_buf of its exact size: what already sits in the receive buffer is copied,
 * the rest is read from the socket straight into the rt_buf (the same readv
 * also fills the receive buffer behind it with the frames that follow). After
 * a large payload the next read into the receive buffer is kept short too:
 * the next frame probably carries one as well, and whatever of it lands in the
 * receive buffer costs a second copy (a 1 MiB write would otherwise bring up
 * to 256 KiB of its payload through it).
 * While a large payload is arriving, SO_RCVLOWAT asks the kernel to wake the
 * loop only once the rest of it (up to 1 MiB) is there: one wake-up and one
 * readv per payload instead of one per burst of segments, the senders' pace
 * (a loopback peer's sendmsg delivers a 1 MiB frame in several bursts). It is
 * set only for payloads of TCP_RX_BIG and more, and back to 1 when none is
 * pending, so small frames never pay the extra system call.
 * Any decode error closes this connection, and only it.
 */
#define RT_LOG_SUBSYS "tcp"
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "net/transport.h"
#include "net/wire.h"

#define TCP_RBUF_SIZE	    (256u << 10)
#define TCP_RX_TAIL	    (16u << 10)
#define TCP_ACCEPT_BATCH    64
#define TCP_ACCEPT_PAUSE_MS 100
#define TCP_IOV_MAX	    (IOV_MAX < 1024 ? IOV_MAX : 1024)
/* What a queued frame holds besides its bytes, counted against max_outq: its
 * message (a 512-byte slab at least) and its ring entry. Counting bytes alone
 * let a peer that never reads pin ~30 times max_outq in small replies. */
#define TCP_FRAME_COST 576u
/* A payload at least this large makes the next header read short, and its
 * arrival is awaited with SO_RCVLOWAT (at most TCP_RX_LOWAT_MAX at a time). */
#define TCP_RX_BIG	 (64u << 10)
/* A payload at least this large, whole in the receive buffer of a connection
 * we opened, is handed up as a slice of it: a slice holds at most 16 times its
 * size of the buffer's memory while the message lives. */
#define TCP_RX_SLICE	 (16u << 10)
#define TCP_RX_LOWAT_MAX (1u << 20)
/* Header buffer bytes already written before it is worth moving the rest down. */
#define TCP_HDRS_COMPACT (64u << 10)
#define TCP_HDRS_KEEP	 (1u << 20)
/* Send-queue ring entries kept once the queue is empty: a burst to a slow
 * peer can grow the ring to max_outq / TCP_FRAME_COST entries (about 24 bytes
 * each), which an idle connection should not hold on to. */
#define TCP_TXQ_KEEP 256u

/* One queued frame: its header bytes in c->hdrs, its payload in m->iov. */
struct tcp_txe {
	struct rt_msg *m;
	size_t hoff;
	uint32_t hlen;
};

struct tcp_conn {
	struct net_conn base;
	int fd;
	ev_io rio;
	ev_io wio;
	struct rt_timer ctimer; /* connect timeout */
	bool ctimer_on;
	bool wblocked; /* socket full: wio drives the writes */

	/* Send queue: a ring of frames, headers encoded back to back in hdrs. */
	struct wire_buf hdrs;
	struct tcp_txe *txq;
	uint32_t txcap; /* power of two */
	uint32_t txhead;
	uint32_t txcount;
	size_t head_done; /* bytes of the head frame already written */
	size_t outq;	  /* per frame not yet written: its bytes + TCP_FRAME_COST */

	/* Receive: bytes [rpos, rend) of rb are not parsed yet; rcap of its
	 * bytes are ours to read into. Once a payload went up as a slice of rb
	 * (rb_sliced), rb is read-only: rbuf_renew moves to a fresh buffer. */
	struct rt_buf *rb;
	uint32_t rcap;
	uint32_t rpos;
	uint32_t rend;
	bool rb_sliced;
	struct rt_msg *rx_msg; /* decoded header waiting for its payload */
	struct rt_buf *rx_buf;
	uint32_t rx_plen;
	uint32_t rx_got;
	bool rx_big;	   /* the last payload was >= TCP_RX_BIG */
	uint32_t rx_lowat; /* SO_RCVLOWAT as last set (0 or 1: the default) */
	uint32_t rx_unread_seen; /* unread bytes the frame sweep last saw */
	bool rx_held_back;	 /* a header left in rb by net_conn_rx_hold */
	/* Reads the header held back once the connection resumes (tcp_rx_resume):
	 * a 0 ms timer, so that the loop polls without blocking and the frames
	 * go to the next iteration's run queue. Set up with rb (tcp_start). */
	struct rt_timer rx_kick;
};

struct tcp_listener {
	int fd;
	ev_io io;
	struct net_loop *nl;
	struct rt_timer pause; /* accept paused after EMFILE and friends */
	bool pause_inited;
};

static inline struct tcp_conn *
tcp_of(struct net_conn *c)
{
	return (struct tcp_conn *)c;
}

static void
sockaddr_name(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(out, len, "%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(out, len, "[%s]:%u", host, port);
	} else {
		snprintf(out, len, "family%d", sa->sa_family);
	}
}

static void
set_nodelay(int fd)
{
	int one = 1;

	/* Frames are already batched per loop iteration; Nagle would only add
	 * a round trip of latency to every small request. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A peer that acknowledges nothing for timeout_ms is gone: with data
 * outstanding TCP_USER_TIMEOUT says so; an idle connection sends keepalive
 * probes from half the timeout on, and the user timeout decides when their
 * silence ends it (tcp(7)). Without these a powered-off peer leaves the
 * connection open, and every send queues into it, for the kernel's ~15
 * minutes of retransmissions. A failed setsockopt leaves the kernel's
 * defaults: worth a line, not the connection. */
static void
set_peer_timeout(struct tcp_conn *c, uint32_t timeout_ms)
{
	int one = 1, idle = (int)(timeout_ms / 2000), intvl = (int)(timeout_ms / 5000);
	unsigned user = timeout_ms;

	idle = idle < 1 ? 1 : idle;
	intvl = intvl < 1 ? 1 : intvl;
	if (setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) != 0 ||
	    setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
	    setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
	    setsockopt(c->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof(user)) != 0)
		net_conn_log_error(&c->base, "peer timeout not set", -errno);
}

/* ------------------------------------------------------------------ receive */

static void tcp_read_cb(struct ev_loop *ev, ev_io *w, int revents);
static void tcp_write_cb(struct ev_loop *ev, ev_io *w, int revents);

/* Attach the finished payload and hand the message up. */
static void
rx_finish(struct tcp_conn *c)
{
	struct rt_msg *m = c->rx_msg;
	struct rt_buf *b = c->rx_buf;
	int rc;

	c->rx_msg = NULL;
	c->rx_buf = NULL;
	b->len = c->rx_plen;
	rc = rt_msg_add_iov(m, b, 0, c->rx_plen);
	rt_buf_put(&b);
	if (rc != 0) {
		rt_msg_free(&m);
		net_conn_close(&c->base, rc);
		return;
	}
	net_conn_frame(&c->base, m);
}

/* The unparsed bytes move to the front of a fresh receive buffer of cap bytes
 * (rb itself stays with the slices that hold it). */
static int
rbuf_renew(struct tcp_conn *c, uint32_t cap)
{
	uint32_t n = c->rend - c->rpos;
	struct rt_buf *b;

	/* rt_buf_get's bound: only a header within 4 bytes of a max_frame_header
	 * of 64M gets here, its prefix making the frame head larger. */
	if (cap > (64u << 20))
		return -CFS_ETOOBIG;
	b = rt_buf_get(cap);
	if (!b)
		return -ENOMEM;
	memcpy(b->data, c->rb->data + c->rpos, n);
	rt_buf_put(&c->rb);
	c->rb = b;
	c->rcap = cap;
	c->rpos = 0;
	c->rend = n;
	c->rb_sliced = false;
	return 0;
}

/* The unparsed bytes move to the front of a receive buffer we may write. */
static int
rbuf_compact(struct tcp_conn *c)
{
	uint32_t n = c->rend - c->rpos;

	if (c->rb_sliced)
		return rbuf_renew(c, c->rcap);
	if (c->rpos == 0)
		return 0;
	memmove(c->rb->data, c->rb->data + c->rpos, n);
	c->rpos = 0;
	c->rend = n;
	return 0;
}

/* Hand up a payload that sits whole in rb as a slice of it. */
static int
rx_slice(struct tcp_conn *c, struct rt_msg *m, uint32_t plen)
{
	int rc = rt_msg_add_iov(m, c->rb, c->rpos, plen);

	if (rc != 0)
		return rc;
	/* Counted as a received payload, at its full size, until its last
	 * slice is put: what it holds of this process's memory. */
	rt_buf_count_rx(c->rb);
	c->rb_sliced = true;
	c->rpos += plen;
	c->rx_big = plen >= TCP_RX_BIG;
	return 0;
}

/* Cut and deliver every whole frame in rb. */
static void
rx_parse(struct tcp_conn *c)
{
	struct net_conn *nc = &c->base;
	struct rt_msg *m;
	struct rt_buf *b;
	uint32_t hlen, avail, take, need;
	uint64_t plen;
	int rc;

	while (nc->state != NET_CONN_CLOSED) {
		avail = c->rend - c->rpos;
		rc = wire_hdr_len(c->rb->data + c->rpos, avail, &nc->lim, &hlen);
		if (rc == -EAGAIN)
			break;
		if (rc != 0)
			goto out_bad;
		need = WIRE_PREFIX + hlen;
		if (avail < need) {
			/* A header larger than rb (allowed up to lim.max_hdr): grow. */
			if (need > c->rcap)
				rc = rbuf_renew(c, need);
			else if (c->rcap - c->rpos < need)
				rc = rbuf_compact(c);
			if (rc != 0)
				goto out_bad;
			break;
		}
		rc = wire_decode(c->rb->data + c->rpos + WIRE_PREFIX, hlen, &nc->lim, &m, &plen);
		if (rc != 0)
			goto out_bad;
		if (net_conn_rx_hold(nc, m, plen)) {
			/* No buffer taken: the header waits in rb for the resume. */
			rt_msg_free(&m);
			c->rx_held_back = true;
			break;
		}
		c->rpos += need;
		if (plen == 0) {
			c->rx_big = false;
			net_conn_frame(nc, m);
			continue;
		}
		take = c->rend - c->rpos;
		if (take >= plen && plen >= TCP_RX_SLICE && !nc->accepted) {
			rc = rx_slice(c, m, (uint32_t)plen);
			if (rc != 0) {
				rt_msg_free(&m);
				goto out_bad;
			}
			net_conn_frame(nc, m);
			continue;
		}
		b = rt_buf_get(plen);
		if (!b) {
			rt_msg_free(&m);
			net_conn_close(nc, -ENOMEM);
			return;
		}
		rt_buf_count_rx(b);
		if (take > plen)
			take = (uint32_t)plen;
		memcpy(b->data, c->rb->data + c->rpos, take);
		c->rpos += take;
		c->rx_msg = m;
		c->rx_buf = b;
		c->rx_plen = (uint32_t)plen;
		c->rx_got = take;
		c->rx_big = plen >= TCP_RX_BIG;
		if (take < plen)
			break; /* the rest comes straight from the socket */
		rx_finish(c);
	}
	if (nc->state == NET_CONN_CLOSED)
		return;
	if (c->rpos == c->rend) {
		c->rpos = c->rend = 0;
		/* A huge header grew rb; do not keep the memory (without a
		 * smaller buffer, keep the big one). */
		if (c->rcap > TCP_RBUF_SIZE)
			(void)rbuf_renew(c, TCP_RBUF_SIZE);
	} else if (c->rcap - c->rend < c->rcap / 4) {
		rc = rbuf_compact(c);
		if (rc != 0)
			goto out_bad;
	}
	return;

out_bad:
	net_conn_close(nc, rc);
}

/* Wake for the rest of a large pending payload, else for any byte. A failed
 * setsockopt only costs wake-ups, so it is not an error. */
static void
rx_set_lowat(struct tcp_conn *c)
{
	uint32_t want = 1, left = c->rx_msg ? c->rx_plen - c->rx_got : 0;
	int v;

	if (left >= TCP_RX_BIG)
		want = left < TCP_RX_LOWAT_MAX ? left : TCP_RX_LOWAT_MAX;
	if (want == c->rx_lowat || (want == 1 && c->rx_lowat == 0))
		return;
	v = (int)want;
	(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v));
	c->rx_lowat = want;
}

/* Parse rb, then set what follows from where it stopped: the read watcher
 * off if a header was held back (net_conn_rx_hold), the frame clock, and
 * SO_RCVLOWAT. False when c closed or paused: read no more now. */
static bool
rx_parse_settle(struct tcp_conn *c)
{
	struct net_conn *nc = &c->base;

	rx_parse(c);
	if (nc->state == NET_CONN_CLOSED)
		return false;
	if (nc->rx_paused)
		ev_io_stop(nc->ev, &c->rio);
	net_conn_rx_mark(nc, c->rx_msg || c->rpos != c->rend);
	rx_set_lowat(c);
	return !nc->rx_paused;
}

static void
tcp_read_cb(struct ev_loop *ev, ev_io *w, int revents)
{
	struct tcp_conn *c = w->data;
	struct net_conn *nc = &c->base;
	struct iovec iov[2];
	size_t left, take;
	ssize_t n;
	int cnt = 0;

	/* The loop has more than it can handle soon: leave the peer's bytes in
	 * the socket (TCP flow control slows it) until net.c resumes us. */
	if (net_conn_rx_pause(nc)) {
		ev_io_stop(nc->ev, &c->rio);
		return;
	}
	/* The read below may find nothing: a frame clock left running from
	 * the pause would cut an idle connection. */
	if (c->rx_held_back) {
		c->rx_held_back = false;
		if (!rx_parse_settle(c))
			return;
	}
	if (c->rx_msg) {
		iov[cnt].iov_base = c->rx_buf->data + c->rx_got;
		iov[cnt].iov_len = c->rx_plen - c->rx_got;
		cnt++;
	}
	if (c->rpos == c->rend)
		c->rpos = c->rend = 0;
	if (c->rb_sliced && rbuf_renew(c, c->rcap) != 0) {
		net_conn_close(nc, -ENOMEM);
		return;
	}
	iov[cnt].iov_base = c->rb->data + c->rend;
	iov[cnt].iov_len = c->rcap - c->rend;
	/* Behind a payload, or after a large one, take only enough for the
	 * headers that follow: a next large payload read into rb would have
	 * to be copied out again. */
	if ((c->rx_msg || c->rx_big) && iov[cnt].iov_len > TCP_RX_TAIL)
		iov[cnt].iov_len = TCP_RX_TAIL;
	cnt++;
	do {
		n = readv(c->fd, iov, cnt);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		net_conn_close(nc, -errno);
		return;
	}
	if (n == 0) {
		/* A peer that stops inside a frame sent a truncated one. */
		if (c->rx_msg || c->rpos != c->rend)
			net_conn_log_error(nc, "connection closed inside a frame", -CFS_EPROTO);
		net_conn_close(nc, -ECONNRESET);
		return;
	}
	NET_STAT_ADD(nc->stats, bytes_in, (uint64_t)n);
	c->rx_unread_seen = 0;
	left = (size_t)n;
	if (c->rx_msg) {
		take = c->rx_plen - c->rx_got;
		if (take > left)
			take = left;
		c->rx_got += (uint32_t)take;
		left -= take;
		if (c->rx_got < c->rx_plen) {
			net_conn_rx_mark(nc, true);
			rx_set_lowat(c);
			return;
		}
		rx_finish(c);
		if (nc->state == NET_CONN_CLOSED)
			return;
	}
	c->rend += (uint32_t)left;
	rx_parse_settle(c);
}

/* --------------------------------------------------------------------- send */

static int
txq_grow(struct tcp_conn *c)
{
	uint32_t cap = c->txcap ? c->txcap * 2 : 64;
	struct tcp_txe *n = malloc(cap * sizeof(*n));

	if (!n)
		return -ENOMEM;
	/* Unroll the ring into the new array, head first. */
	for (uint32_t i = 0; i < c->txcount; i++)
		n[i] = c->txq[(c->txhead + i) & (c->txcap - 1)];
	free(c->txq);
	net_conn_txq_held(&c->base, (int64_t)cap - (int64_t)c->txcap);
	c->txq = n;
	c->txcap = cap;
	c->txhead = 0;
	return 0;
}

/* The queue is empty: give back a ring a burst grew far past normal. */
static void
txq_trim(struct tcp_conn *c)
{
	if (c->txcount || c->txcap <= TCP_TXQ_KEEP)
		return;
	net_conn_txq_held(&c->base, -(int64_t)c->txcap);
	free(c->txq);
	c->txq = NULL;
	c->txcap = 0;
	c->txhead = 0;
}

static int
tcp_send_frame(struct net_conn *nc, struct rt_msg *m)
{
	struct tcp_conn *c = tcp_of(nc);
	size_t old = c->hdrs.len;
	struct tcp_txe *e;
	size_t hlen, total;
	int rc;

	if (nc->state == NET_CONN_CLOSED)
		return -ENOTCONN;
	if (c->txcount == c->txcap) {
		rc = txq_grow(c);
		if (rc != 0)
			return rc;
	}
	rc = wire_encode(&c->hdrs, m, &nc->lim);
	if (rc != 0)
		return rc;
	hlen = c->hdrs.len - old;
	total = hlen + m->plen + TCP_FRAME_COST;
	/* One frame always fits an empty queue, however large: the bound is
	 * about how much may wait, not about frame size (lim does that). */
	if (c->outq && c->outq + total > nc->max_outq) {
		c->hdrs.len = old;
		return -CFS_EBUSY;
	}
	e = &c->txq[(c->txhead + c->txcount) & (c->txcap - 1)];
	e->m = m;
	e->hoff = old;
	e->hlen = (uint32_t)hlen;
	c->txcount++;
	c->outq += total;
	if (nc->state == NET_CONN_UP && !c->wblocked)
		net_conn_want_flush(nc);
	return 0;
}

/* n more bytes went out: free the frames they completed. */
static void
tx_advance(struct tcp_conn *c, size_t n)
{
	size_t done = c->head_done + n;

	while (c->txcount) {
		struct tcp_txe *e = &c->txq[c->txhead];
		size_t total = e->hlen + (size_t)e->m->plen;

		if (done < total)
			break;
		done -= total;
		c->outq -= total + TCP_FRAME_COST;
		rt_msg_free(&e->m);
		c->txhead = (c->txhead + 1) & (c->txcap - 1);
		c->txcount--;
		NET_STAT_ADD(c->base.stats, frames_out, 1);
	}
	c->head_done = done;
}

/* Headers already written pile up at the front of hdrs; drop them. */
static void
hdrs_trim(struct tcp_conn *c)
{
	size_t off;

	if (c->txcount == 0) {
		/* After a burst, give back a header buffer grown far past normal. */
		if (c->hdrs.cap > TCP_HDRS_KEEP)
			wire_buf_fini(&c->hdrs);
		else
			wire_buf_reset(&c->hdrs);
		return;
	}
	off = c->txq[c->txhead].hoff;
	if (off < TCP_HDRS_COMPACT || off < c->hdrs.len / 2)
		return;
	wire_buf_consume(&c->hdrs, off);
	for (uint32_t i = 0; i < c->txcount; i++)
		c->txq[(c->txhead + i) & (c->txcap - 1)].hoff -= off;
}

/* Gather up to TCP_IOV_MAX segments starting head_done bytes into the queue.
 * Headers of frames without payload lie back to back in hdrs: they become one
 * segment, so a burst of small frames costs the kernel one copy, not one per
 * frame. */
static int
tx_gather(struct tcp_conn *c, struct iovec *iov, size_t *bytes)
{
	size_t skip = c->head_done;
	size_t sum = 0;
	int n = 0;

	for (uint32_t i = 0; i < c->txcount && n < TCP_IOV_MAX; i++) {
		struct tcp_txe *e = &c->txq[(c->txhead + i) & (c->txcap - 1)];
		struct rt_msg *m = e->m;

		if (skip < e->hlen) {
			uint8_t *p = c->hdrs.p + e->hoff + skip;
			size_t len = e->hlen - skip;

			if (n > 0 && (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == p) {
				iov[n - 1].iov_len += len;
			} else {
				iov[n].iov_base = p;
				iov[n].iov_len = len;
				n++;
			}
			sum += len;
			skip = 0;
		} else {
			skip -= e->hlen;
		}
		for (uint32_t j = 0; j < m->iovcnt && n < TCP_IOV_MAX; j++) {
			const struct rt_iov *v = &m->iov[j];

			if (skip >= v->len) {
				skip -= v->len;
				continue;
			}
			iov[n].iov_base = v->buf->data + v->off + skip;
			iov[n].iov_len = v->len - skip;
			sum += iov[n].iov_len;
			n++;
			skip = 0;
		}
	}
	*bytes = sum;
	return n;
}

static void
tcp_flush(struct net_conn *nc)
{
	struct tcp_conn *c = tcp_of(nc);
	struct iovec iov[TCP_IOV_MAX];
	struct msghdr msg = {0};
	size_t want;
	ssize_t n;
	int cnt;

	while (c->txcount) {
		cnt = tx_gather(c, iov, &want);
		/* sendmsg is writev with flags: a peer gone away must give EPIPE,
		 * not a SIGPIPE that kills the process. */
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)cnt;
		do {
			n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		} while (n < 0 && errno == EINTR);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			net_conn_close(nc, errno == EPIPE ? -ECONNRESET : -errno);
			return;
		}
		NET_STAT_ADD(nc->stats, bytes_out, (uint64_t)n);
		tx_advance(c, (size_t)n);
		/* Short write: the socket buffer is full, no point asking again. */
		if ((size_t)n < want)
			break;
	}
	hdrs_trim(c);
	txq_trim(c);
	if (c->txcount && !c->wblocked) {
		c->wblocked = true;
		ev_io_start(nc->ev, &c->wio);
	} else if (!c->txcount && c->wblocked) {
		c->wblocked = false;
		ev_io_stop(nc->ev, &c->wio);
	}
}

static void
tcp_rx_kick(struct rt_timer *t, void *arg)
{
	struct tcp_conn *c = arg;

	(void)t;
	tcp_read_cb(c->base.ev, &c->rio, EV_READ);
}

static void
tcp_rx_resume(struct net_conn *nc)
{
	struct tcp_conn *c = tcp_of(nc);

	ev_io_start(nc->ev, &c->rio);
	/* A header kept back may be all there is: nothing more will arrive to
	 * wake the watcher. Not an event fed now: resumes run in the loop's
	 * prepare hook, after it decided whether to block, and the frames read
	 * would wait in the run queue until something else woke the loop. */
	if (c->rx_held_back)
		rt_timer_start(&c->rx_kick, 0, 0);
}

/* Bytes at or past SO_RCVLOWAT wake the loop (it was busy); fewer do not,
 * so a trickle below it counts only while it grows. */
static bool
tcp_rx_progress(struct net_conn *nc)
{
	struct tcp_conn *c = tcp_of(nc);
	uint32_t wake = c->rx_lowat ? c->rx_lowat : 1;
	int n = 0;

	if (ioctl(c->fd, FIONREAD, &n) != 0 || n <= 0)
		return false;
	if ((uint32_t)n >= wake)
		return true;
	if ((uint32_t)n == c->rx_unread_seen)
		return false;
	c->rx_unread_seen = (uint32_t)n;
	return true;
}

static void
tcp_write_cb(struct ev_loop *ev, ev_io *w, int revents)
{
	struct tcp_conn *c = w->data;

	tcp_flush(&c->base);
}

/* ---------------------------------------------------------- connection life */

static struct net_conn *
tcp_alloc(void)
{
	struct tcp_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = -1;
	c->base.type = &net_tcp_type;
	wire_buf_init(&c->hdrs);
	return &c->base;
}

/* The socket is connected: start reading. */
static int
tcp_start(struct tcp_conn *c)
{
	c->rb = rt_buf_get(TCP_RBUF_SIZE);
	if (!c->rb)
		return -ENOMEM;
	c->rcap = TCP_RBUF_SIZE;
	set_peer_timeout(c, c->base.peer_timeout_ms);
	ev_io_init(&c->rio, tcp_read_cb, c->fd, EV_READ);
	c->rio.data = c;
	ev_io_init(&c->wio, tcp_write_cb, c->fd, EV_WRITE);
	c->wio.data = c;
	rt_timer_init(c->base.loop, &c->rx_kick, tcp_rx_kick, c);
	ev_io_start(c->base.ev, &c->rio);
	return 0;
}

static void
tcp_connect_timeout(struct rt_timer *t, void *arg)
{
	struct tcp_conn *c = arg;

	c->ctimer_on = false;
	/* Reported as unreachable, not -ETIMEDOUT, so that a caller can tell a
	 * dead link from a slow server answering late. */
	net_conn_close(&c->base, -EHOSTUNREACH);
}

static void
tcp_connect_cb(struct ev_loop *ev, ev_io *w, int revents)
{
	struct tcp_conn *c = w->data;
	struct net_conn *nc = &c->base;
	socklen_t len = sizeof(int);
	int err = 0;
	int rc;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == EINPROGRESS)
		return;
	ev_io_stop(ev, &c->wio);
	if (c->ctimer_on) {
		rt_timer_stop(&c->ctimer);
		c->ctimer_on = false;
	}
	if (err != 0) {
		net_conn_close(nc, -err);
		return;
	}
	rc = tcp_start(c);
	if (rc != 0) {
		net_conn_close(nc, rc);
		return;
	}
	net_conn_up(nc);
	if (c->txcount)
		net_conn_want_flush(nc);
}

static int
tcp_connect(struct net_conn *nc, const struct sockaddr *sa, socklen_t salen, uint32_t timeout_ms)
{
	struct tcp_conn *c = tcp_of(nc);
	int fd, rc;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	set_nodelay(fd);
	/* Even a connect that succeeds at once is confirmed by the watcher, so
	 * net.c sees one path: connect() returns, then up or close. */
	if (connect(fd, sa, salen) != 0 && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	c->fd = fd;
	ev_io_init(&c->wio, tcp_connect_cb, fd, EV_WRITE);
	c->wio.data = c;
	ev_io_start(nc->ev, &c->wio);
	rt_timer_init(nc->loop, &c->ctimer, tcp_connect_timeout, c);
	rt_timer_start(&c->ctimer, timeout_ms, 0);
	c->ctimer_on = true;
	return 0;
}

static void
tcp_close(struct net_conn *nc)
{
	struct tcp_conn *c = tcp_of(nc);

	if (c->ctimer_on) {
		rt_timer_stop(&c->ctimer);
		c->ctimer_on = false;
	}
	if (c->rb) /* started: its timer is set up */
		rt_timer_stop(&c->rx_kick);
	if (c->fd >= 0) {
		ev_io_stop(nc->ev, &c->rio);
		ev_io_stop(nc->ev, &c->wio);
		close(c->fd);
		c->fd = -1;
	}
	c->wblocked = false;
	while (c->txcount) {
		rt_msg_free(&c->txq[c->txhead].m);
		c->txhead = (c->txhead + 1) & (c->txcap - 1);
		c->txcount--;
	}
	c->outq = 0;
	c->head_done = 0;
	wire_buf_fini(&c->hdrs);
	net_conn_txq_held(&c->base, -(int64_t)c->txcap);
	free(c->txq);
	c->txq = NULL;
	c->txcap = 0;
	rt_msg_free(&c->rx_msg);
	if (c->rx_buf)
		rt_buf_put(&c->rx_buf);
	rt_buf_put(&c->rb);
}

static void
tcp_release(struct net_conn *nc)
{
	free(tcp_of(nc));
}

/* ----------------------------------------------------------------- listening */

static int
tcp_listen(struct net_listener *l)
{
	struct tcp_listener *tl;
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	int one = 1;
	int rc;

	tl = calloc(1, sizeof(*tl));
	if (!tl)
		return -ENOMEM;
	tl->fd = socket(l->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (tl->fd < 0) {
		rc = -errno;
		goto out_free;
	}
	/* REUSEADDR: restart on the same port while old sockets sit in
	 * TIME_WAIT. Never REUSEPORT: with it a second chainfsd on the same
	 * address would bind without error and take half the connections. */
	if (setsockopt(tl->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
		rc = -errno;
		goto out_close;
	}
	if (bind(tl->fd, (struct sockaddr *)&l->sa, l->salen) != 0 ||
	    listen(tl->fd, SOMAXCONN) != 0 ||
	    getsockname(tl->fd, (struct sockaddr *)&sa, &len) != 0) {
		rc = -errno;
		goto out_close;
	}
	l->port = ntohs(sa.ss_family == AF_INET ? ((struct sockaddr_in *)&sa)->sin_port
						: ((struct sockaddr_in6 *)&sa)->sin6_port);
	l->priv = tl;
	return 0;

out_close:
	close(tl->fd);
out_free:
	free(tl);
	return rc;
}

static void
tcp_accept_resume(struct rt_timer *t, void *arg)
{
	struct tcp_listener *tl = arg;

	ev_io_start(net_loop_ev(tl->nl), &tl->io);
}

/* Set up an accepted socket as a connection of nl; closes fd on failure. */
static void
tcp_accept_one(struct net_loop *nl, int fd, const char *name)
{
	struct tcp_conn *c;
	int rc;

	c = (struct tcp_conn *)tcp_alloc();
	if (!c) {
		rc = -ENOMEM;
		goto out_forget;
	}
	c->fd = fd;
	rc = net_conn_accepted(nl, &c->base, name);
	if (rc != 0)
		goto out_free;
	rc = tcp_start(c);
	if (rc != 0) {
		c->fd = -1; /* closed below, not by net_conn_close */
		net_conn_close(&c->base, rc);
		goto out_close;
	}
	return;

out_free:
	free(c);
out_forget:
	net_accept_forget(nl);
out_close:
	close(fd);
	net_loop_log_error(nl, name, "accept dropped", rc);
}

static void
tcp_adopt(struct net_loop *nl, struct net_handoff *h)
{
	tcp_accept_one(nl, (int)h->handle, h->name);
}

static void
tcp_discard(struct net_handoff *h)
{
	close((int)h->handle);
}

static void
tcp_accept_cb(struct ev_loop *ev, ev_io *w, int revents)
{
	struct tcp_listener *tl = w->data;

	for (int i = 0; i < TCP_ACCEPT_BATCH; i++) {
		struct sockaddr_storage sa;
		socklen_t len = sizeof(sa);
		struct net_handoff *h;
		char name[64];
		int fd =
			accept4(tl->fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			sockaddr_name((struct sockaddr *)&sa, name, sizeof(name));
			if (!net_accept_admit(tl->nl, name)) {
				close(fd);
				continue;
			}
			set_nodelay(fd);
			h = malloc(sizeof(*h));
			if (!h) {
				/* Keep it here rather than drop it. */
				tcp_accept_one(tl->nl, fd, name);
				continue;
			}
			h->handle = fd;
			memcpy(h->name, name, sizeof(h->name));
			net_conn_handoff(tl->nl, h);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		/* Out of descriptors or memory: the pending connection stays
		 * readable, so stop looking for a while instead of spinning. */
		net_loop_log_error(tl->nl, "listener", "accept failed, pausing", -errno);
		ev_io_stop(ev, &tl->io);
		rt_timer_start(&tl->pause, TCP_ACCEPT_PAUSE_MS, 0);
		return;
	}
}

static int
tcp_accept(struct net_loop *nl, struct net_listener *l)
{
	struct tcp_listener *tl = l->priv;

	tl->nl = nl;
	ev_io_init(&tl->io, tcp_accept_cb, tl->fd, EV_READ);
	tl->io.data = tl;
	rt_timer_init(net_loop_rt(nl), &tl->pause, tcp_accept_resume, tl);
	tl->pause_inited = true;
	ev_io_start(net_loop_ev(nl), &tl->io);
	return 0;
}

static void
tcp_unlisten(struct net_listener *l)
{
	struct tcp_listener *tl = l->priv;

	if (!tl)
		return;
	if (tl->nl) {
		ev_io_stop(net_loop_ev(tl->nl), &tl->io);
		rt_timer_stop(&tl->pause);
	}
	close(tl->fd);
	free(tl);
	l->priv = NULL;
}

/* ---------------------------------------------------------------- bulk data */

static int
tcp_mr_register(struct net_loop *nl, void *addr, size_t len, uint32_t *rkey)
{
	/* The kernel copies from and to any user memory: nothing to pin. */
	*rkey = 0;
	return 0;
}

static int
tcp_bulk_pull(struct net_conn *c, struct rt_msg *m, const struct net_bulk_desc *d, net_bulk_fn cb,
	      void *cb_arg)
{
	/* The bytes followed m's header in the stream: they are m's payload. */
	if (d->rkey != 0 || d->addr > m->plen || d->len > m->plen - d->addr)
		return -EINVAL;
	cb(c, 0, cb_arg);
	return 0;
}

static int
tcp_bulk_push(struct net_conn *c, struct rt_msg *resp, const struct net_bulk_desc *d,
	      net_bulk_fn cb, void *cb_arg)
{
	/* resp's payload will follow its header in the stream. */
	if (d->rkey != 0 || resp->plen > d->len)
		return -EINVAL;
	cb(c, 0, cb_arg);
	return 0;
}

const struct net_conn_type net_tcp_type = {
	.name = "tcp",
	.listen = tcp_listen,
	.accept = tcp_accept,
	.unlisten = tcp_unlisten,
	.adopt = tcp_adopt,
	.discard = tcp_discard,
	.alloc = tcp_alloc,
	.connect = tcp_connect,
	.close = tcp_close,
	.release = tcp_release,
	.send_frame = tcp_send_frame,
	.flush = tcp_flush,
	.rx_resume = tcp_rx_resume,
	.rx_progress = tcp_rx_progress,
	.mr_register = tcp_mr_register,
	.bulk_pull = tcp_bulk_pull,
	.bulk_push = tcp_bulk_push,
};

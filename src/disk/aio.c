/* SPDX-License-Identifier: MIT */
/*
 * The libaio I/O engine: one aio context per loop, shared by the targets of
 * that loop, and the only place in chainfs that calls io_submit.
 *
 * Requests queued during a loop iteration go down together in one io_submit
 * from an ev_prepare watcher (it runs once per iteration, before the loop
 * blocks). Since other prepare watchers (the runtime's own) may still queue
 * requests after ours ran, an ev_idle watcher is active whenever requests are
 * queued: it keeps the loop from blocking, so they go down one iteration
 * later at worst. Completions are signalled on an eventfd (io_set_eventfd)
 * watched by an ev_io and reaped without blocking, straight from the
 * completion ring the kernel maps into the process (struct aio_ring, as fio's
 * userspace_reap does): no io_getevents system call while completions are
 * there, one eventfd read per wake-up. At most REAP_READS reads and
 * REAP_BYTES of them are handed to their callbacks per iteration (see reap). When more requests are
 * queued than the context has slots, the rest wait in FIFO order for completions.
 *
 * One exception (aio_kick): a caller that has queued a whole batch while
 * none of this engine's requests is outstanding (submitted and not yet
 * reaped) sends everything queued at once. The disk is idle, waiting for us;
 * the batches handled later in the iteration join its queue while it works.
 * Measured on bench_storage's 4 KiB row (4 requests of 8 reads arriving
 * together): the device starts after one request's preparation instead of
 * all four's, and the row went from about 0.56 to 0.63 of fio.
 * bench/bench_disk_passes measures the device alone: 8 reads then 24 finish a
 * wave sooner than one io_submit of 32 (the call itself costs about 1.2 us
 * per read before its notification), while a first part of 1 or 2 reads
 * completes in a pass of its own. A kick also sends the queue once it holds
 * KICK_BATCH reads, disk busy or not: the later batches then reach the
 * device as they are parsed, not all after the last one (as fio's
 * iodepth_batch_submit=8 does). With daemon and client on one CPU, over
 * fourteen alternating pairs of runs, the 4 KiB row's median went from 0.66
 * to 0.68 of fio and its spread from 0.46-0.78 to 0.60-0.72. Smaller
 * batches still wait for the prepare watcher, so many single-read requests
 * do not cost an io_submit each.
 *
 * The prepare watcher runs at the lowest priority, after the runtime's own
 * (which runs the actors' queued messages): the reads and writes a handler
 * queues go down in the same iteration, not one iteration (and one extra
 * epoll_wait) later.
 *
 * The per-loop registry (disk_aio_get/put) hands the same engine to every
 * target of a loop.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RWF_DSYNC */
#endif
#include <errno.h>
#include <libaio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define RT_LOG_SUBSYS "disk"
#include "disk/disk.h"

#ifndef RWF_DSYNC
#define RWF_DSYNC 0x00000002
#endif

#define DEFAULT_DEPTH 1024
#define REAP_BATCH    256
#define KICK_BATCH    8 /* queued reads that go down at once while the disk works */
#define PREFETCH_MAX_IO (16u << 10)  /* larger reads are left to the hardware prefetcher */
#define PREFETCH_BYTES	(256u << 10) /* per reap batch: stays in L2 until checked */
#define REAP_BYTES	(128u << 10) /* read bytes handed to callbacks per loop iteration */
#define REAP_READS	8	     /* reads handed to callbacks per loop iteration */
#define STARVED_RETRY_S 0.001	     /* io_submit refused for resources, none of ours out */

/* The head of the completion ring the kernel maps at the address io_setup
 * returns (fs/aio.c); its layout is kernel ABI. The kernel writes events and
 * tail, the process consumes from head. */
struct aio_uring {
	unsigned id;
	unsigned nr; /* events in the ring */
	unsigned head;
	unsigned tail;
	unsigned magic;
	unsigned compat_features;
	unsigned incompat_features;
	unsigned header_length;
	struct io_event events[];
};
#define AIO_URING_MAGIC 0xa10a10a1u

struct aio_eng {
	struct disk_ioeng pub;
	io_context_t ctx;
	unsigned depth;
	unsigned submitted; /* in the kernel */
	unsigned queued;    /* waiting for io_submit */
	int efd;
	ev_io efd_w;
	ev_prepare prep_w;
	ev_idle idle_w;
	ev_timer retry_w; /* starved with nothing in flight: when to try again */
	struct disk_io *qhead, **qtail;
	struct iocb *iocbs;
	struct iocb **freel; /* free iocbs */
	unsigned nfree;
	struct iocb **batch;
	struct io_event events[REAP_BATCH];
	struct aio_uring *ring; /* NULL: reap with io_getevents only */
	bool flushing;		/* in aio_flush: a callback's kick must not nest */
	bool reap_more;		/* the reap budget left completions on the ring */
	bool starved;		/* io_submit said EAGAIN: wait for a completion or retry_w */
	unsigned refusals;	/* EAGAINs since io_submit last took a request */
	/* registry */
	int refs;
	bool registered;
};

/* Put batch[i..n) back at the front of the queue, in order. */
static void
requeue(struct aio_eng *a, unsigned i, unsigned n)
{
	for (unsigned j = n; j-- > i;) {
		struct disk_io *io = a->batch[j]->data;

		a->freel[a->nfree++] = a->batch[j];
		io->next = a->qhead;
		if (a->qhead == NULL)
			a->qtail = &io->next;
		a->qhead = io;
		a->queued++;
	}
}

/* Submit what is queued. may_complete: a request the kernel refuses gets its
 * callback here; otherwise (inside a caller that is still queueing) it and
 * the ones behind it stay queued for the prepare watcher's flush. Nothing
 * while starved: a completion or retry_w lifts that. */
static void
aio_flush(struct aio_eng *a, bool may_complete)
{
	bool completed = false, starved = false;
	unsigned n = 0;

	if (a->starved)
		return;
	a->flushing = true;
	while (a->qhead != NULL && a->nfree > 0) {
		struct disk_io *io = a->qhead;
		struct iocb *cb = a->freel[--a->nfree];

		a->qhead = io->next;
		a->queued--;
		if (io->op == DISK_IO_READ)
			io_prep_pread(cb, io->fd, io->buf, io->len, (long long)io->off);
		else
			io_prep_pwrite(cb, io->fd, io->buf, io->len, (long long)io->off);
		cb->aio_rw_flags = io->op == DISK_IO_WRITE && io->dsync ? RWF_DSYNC : 0;
		io_set_eventfd(cb, a->efd);
		cb->data = io;
		a->batch[n++] = cb;
	}
	if (a->qhead == NULL)
		a->qtail = &a->qhead;

	for (unsigned i = 0; i < n;) {
		int rc = io_submit(a->ctx, (long)(n - i), &a->batch[i]);

		if (rc > 0) {
			if (a->refusals > 0)
				RT_INFO("io_submit: kernel took requests again after %u refusals",
					a->refusals);
			a->refusals = 0;
			a->submitted += (unsigned)rc;
			i += (unsigned)rc;
			continue;
		}
		if (rc == -EAGAIN || rc == 0 || !may_complete) {
			/* Kernel out of resources: put the rest back in front, in order,
			 * and retry when completions arrive (or, for a refused request
			 * while the caller still queues, from the prepare watcher). */
			requeue(a, i, n);
			starved = rc == -EAGAIN || rc == 0;
			break;
		}
		/* The first request is bad (-EINVAL, -EBADF...): fail it alone and
		 * go on with the others. */
		{
			struct disk_io *io = a->batch[i]->data;

			a->freel[a->nfree++] = a->batch[i];
			i++;
			io->cb(io, rc);
			completed = true;
		}
	}
	if (!a->reap_more && (a->qhead == NULL || a->nfree == 0)) {
		if (ev_is_active(&a->idle_w))
			ev_idle_stop(a->pub.ev, &a->idle_w);
	}
	/* From the prepare watcher, which runs after the runtime's: what those
	 * callbacks started (a reply, a message to another loop) waits for the
	 * runtime's next prepare, so the loop must not block before it. */
	if (completed)
		ev_idle_start(a->pub.ev, &a->idle_w);
	/* Our own slots are counted (nfree), so EAGAIN means the kernel is short
	 * of memory. Retrying at every iteration would spin the loop; a
	 * completion of ours retries, and with none in flight a timer does. */
	if (starved) {
		if (a->refusals++ == 0)
			RT_WARN("io_submit: kernel out of resources, %u requests wait", a->queued);
		a->starved = true;
		if (a->submitted == 0 && !ev_is_active(&a->retry_w)) {
			ev_timer_set(&a->retry_w, STARVED_RETRY_S, 0.);
			ev_timer_start(a->pub.ev, &a->retry_w);
		}
	}
	a->flushing = false;
}

static void
retry_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
	struct aio_eng *a = w->data;

	a->starved = false;
	if (a->qhead != NULL && !ev_is_active(&a->idle_w))
		ev_idle_start(ev, &a->idle_w);
}

static void
prep_cb(struct ev_loop *ev, ev_prepare *w, int revents)
{
	struct aio_eng *a = w->data;

	if (a->qhead != NULL)
		aio_flush(a, true);
}

/* What one loop iteration hands to callbacks: reads and their bytes. */
struct reap_budget {
	unsigned reads;
	size_t bytes;
};

/* Take up to max completions off the mapped ring into out, without a system
 * call, stopping after the read that spends the budget (the rest stay on the
 * ring for the next iteration). Only this loop consumes, so reading head
 * plainly is fine; the acquire load of tail orders the event reads after the
 * kernel's writes, the release store of head lets the kernel reuse the slots
 * only after they were copied. */
static int
ring_take(struct aio_uring *r, struct io_event *out, int max, struct reap_budget *b)
{
	unsigned head = r->head, nr = r->nr;
	unsigned tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
	int n = 0;

	if (head >= nr)
		head %= nr;
	while (head != tail % nr && n < max) {
		const struct disk_io *io = ((const struct iocb *)r->events[head].obj)->data;
		long res = (long)r->events[head].res;

		if (b->reads == 0 || b->bytes == 0)
			break;
		out[n++] = r->events[head];
		head = head + 1 == nr ? 0 : head + 1;
		if (io->op == DISK_IO_READ && res > 0) {
			b->reads--;
			b->bytes = (size_t)res < b->bytes ? b->bytes - (size_t)res : 0;
		}
	}
	if (n > 0)
		__atomic_store_n(&r->head, head, __ATOMIC_RELEASE);
	return n;
}

static bool
ring_empty(const struct aio_uring *r)
{
	return r->head % r->nr == __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) % r->nr;
}

/* The device wrote the buffers of completed reads behind the caches' back, and
 * each callback reads its buffer at once (the CRC32C check). Touched one after
 * the other, every small buffer costs a full trip to memory; asked for all at
 * once they arrive in parallel: on bench_storage's waves of 32 random 4 KiB
 * reads the checks went from about 20 to 14 us a wave (bench/README.md).
 * Larger reads stream well enough through the hardware prefetcher, and
 * PREFETCH_BYTES keeps a big batch from pushing its own first buffers out of
 * the cache before their callbacks run. */
static void
prefetch_reads(const struct io_event *ev, int n)
{
	size_t budget = PREFETCH_BYTES;

	for (int i = 0; i < n && budget > 0; i++) {
		const struct disk_io *io = ((const struct iocb *)ev[i].obj)->data;
		long res = (long)ev[i].res;
		size_t len;

		if (io->op != DISK_IO_READ || res <= 0 || (size_t)res > PREFETCH_MAX_IO)
			continue;
		len = (size_t)res < budget ? (size_t)res : budget;
		for (size_t off = 0; off < len; off += 64)
			__builtin_prefetch((const uint8_t *)io->buf + off, 0, 3);
		budget -= len;
	}
}

/* Hand completions to their callbacks. From the loop (min_nr 0, the mapped
 * ring) at most REAP_READS reads and REAP_BYTES of them per call: their
 * callbacks check CRCs and queue replies, which go out when the iteration
 * ends, so a wave completing together (32 reads of 4 KiB, 16 of 64 KiB) is
 * answered in parts, and the client's next requests reach the idle disk
 * after the first part's checks and copies instead of after the whole
 * wave's. The idle watcher keeps the loop from blocking while the rest wait;
 * new requests arriving meanwhile are read first. In bench_storage, parts of
 * 8 reads took the 4 KiB row from about 0.73 to 0.85 of fio, and parts of
 * 128 KiB the 64 KiB row from about 1000 to 1300-1500 MiB/s; parts of one
 * 64 KiB read cost more CPU for no more (bench/README.md). */
static unsigned
reap(struct aio_eng *a, long min_nr, struct timespec *ts)
{
	struct timespec zero = {0, 0};
	struct reap_budget budget = {REAP_READS, REAP_BYTES};
	unsigned total = 0;

	a->reap_more = false;
	for (;;) {
		/* Events are copied out before any callback runs: a callback
		 * may submit, and a nested poll may reap. */
		int n = a->ring && min_nr == 0
				? ring_take(a->ring, a->events, REAP_BATCH, &budget)
				: io_getevents(a->ctx, min_nr, REAP_BATCH, a->events, ts);

		if (n <= 0)
			break;
		min_nr = 0;
		prefetch_reads(a->events, n);
		for (int i = 0; i < n; i++) {
			struct iocb *cb = a->events[i].obj;
			struct disk_io *io = cb->data;
			long res = (long)a->events[i].res;

			a->freel[a->nfree++] = cb;
			a->submitted--;
			io->cb(io, res);
		}
		total += (unsigned)n;
		a->starved = false;
		if ((budget.reads == 0 || budget.bytes == 0) && a->ring && !ring_empty(a->ring)) {
			a->reap_more = true;
			break;
		}
		if (n < REAP_BATCH)
			break;
		ts = &zero;
	}
	if ((a->reap_more || (a->qhead != NULL && a->nfree > 0)) && !ev_is_active(&a->idle_w))
		ev_idle_start(a->pub.ev, &a->idle_w);
	return total;
}

static void
idle_cb(struct ev_loop *ev, ev_idle *w, int revents)
{
	struct aio_eng *a = w->data;

	/* It keeps the loop from blocking: the flush happens in the prepare
	 * watcher of the next iteration, and completions reap() left on the
	 * ring are taken here. */
	if (a->reap_more)
		reap(a, 0, &(struct timespec){0});
	if (!a->reap_more && (a->qhead == NULL || a->nfree == 0 || a->starved))
		ev_idle_stop(ev, w);
}

static void
efd_cb(struct ev_loop *ev, ev_io *w, int revents)
{
	struct aio_eng *a = w->data;
	uint64_t cnt;

	if (read(a->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		RT_WARN("aio eventfd read: %d", errno);
	reap(a, 0, &(struct timespec){0});
}

static void
aio_submit(struct disk_ioeng *e, struct disk_io *io)
{
	struct aio_eng *a = (struct aio_eng *)e;

	io->next = NULL;
	*a->qtail = io;
	a->qtail = &io->next;
	a->queued++;
	if (a->nfree > 0 && !ev_is_active(&a->idle_w))
		ev_idle_start(e->ev, &a->idle_w);
}

/* A caller's batch is complete: if none of our requests is outstanding, or
 * KICK_BATCH or more are queued, send everything queued now (see the top of
 * the file). A refused request is not failed here, inside the caller, but
 * left queued for the prepare watcher. Not while a flush runs: a callback it
 * calls (a refused request's) may queue and kick, and a nested flush would
 * reuse the batch array under it; what that callback queued goes down in the
 * next flush (the idle watcher is on). */
static void
aio_kick(struct disk_ioeng *e)
{
	struct aio_eng *a = (struct aio_eng *)e;

	if (!a->flushing && (a->submitted == 0 || a->queued >= KICK_BATCH) && a->qhead != NULL &&
	    a->nfree > 0)
		aio_flush(a, false);
}

static int
aio_poll(struct disk_ioeng *e, int timeout_ms)
{
	struct aio_eng *a = (struct aio_eng *)e;
	struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};

	a->starved = false;
	if (a->qhead != NULL)
		aio_flush(a, true);
	if (a->submitted == 0)
		return 0;
	return (int)reap(a, 1, &ts);
}

static unsigned
aio_queued(struct disk_ioeng *e)
{
	return ((struct aio_eng *)e)->queued;
}

static unsigned
aio_inflight(struct disk_ioeng *e)
{
	struct aio_eng *a = (struct aio_eng *)e;

	return a->submitted + a->queued;
}

static void
aio_destroy(struct disk_ioeng *e)
{
	struct aio_eng *a = (struct aio_eng *)e;

	if (a == NULL)
		return;
	while (a->submitted > 0)
		reap(a, 1, NULL);
	ev_io_stop(e->ev, &a->efd_w);
	ev_ref(e->ev); /* balance the ev_unref made when it started */
	ev_prepare_stop(e->ev, &a->prep_w);
	ev_idle_stop(e->ev, &a->idle_w);
	ev_timer_stop(e->ev, &a->retry_w);
	io_destroy(a->ctx);
	close(a->efd);
	free(a->iocbs);
	free(a->freel);
	free(a->batch);
	free(a);
}

static const struct disk_ioeng_ops aio_ops = {
	.name = "libaio",
	.submit = aio_submit,
	.kick = aio_kick,
	.poll = aio_poll,
	.inflight = aio_inflight,
	.queued = aio_queued,
	.destroy = aio_destroy,
};

int
disk_aio_create(struct ev_loop *ev, unsigned depth, struct disk_ioeng **out)
{
	struct aio_eng *a;
	int rc;

	if (depth == 0)
		depth = DEFAULT_DEPTH;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	a->pub.ops = &aio_ops;
	a->pub.ev = ev;
	a->depth = depth;
	a->qtail = &a->qhead;
	a->efd = -1;
	a->iocbs = calloc(depth, sizeof(*a->iocbs));
	a->freel = calloc(depth, sizeof(*a->freel));
	a->batch = calloc(depth, sizeof(*a->batch));
	if (a->iocbs == NULL || a->freel == NULL || a->batch == NULL) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (unsigned i = 0; i < depth; i++)
		a->freel[a->nfree++] = &a->iocbs[i];
	rc = io_setup((int)depth, &a->ctx);
	if (rc != 0) {
		RT_ERR(rc, "io_setup depth=%u", depth);
		goto out_free;
	}
	a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a->efd < 0) {
		rc = -errno;
		goto out_ctx;
	}
	ev_io_init(&a->efd_w, efd_cb, a->efd, EV_READ);
	a->efd_w.data = a;
	ev_io_start(ev, &a->efd_w);
	{
		struct aio_uring *r = (struct aio_uring *)a->ctx;

		/* A kernel without the mapped ring (or a changed layout) gets the
		 * system call path; so does valgrind, which learns that a read
		 * filled its buffer only from io_getevents. */
		if (r->magic == AIO_URING_MAGIC && r->nr > 0 && r->header_length == sizeof(*r) &&
		    !RUNNING_ON_VALGRIND)
			a->ring = r;
	}
	ev_prepare_init(&a->prep_w, prep_cb);
	a->prep_w.data = a;
	/* After the runtime's prepare watcher, which runs the handlers that
	 * queue I/O (libev invokes higher priorities first). */
	ev_set_priority(&a->prep_w, EV_MINPRI);
	ev_prepare_start(ev, &a->prep_w);
	/* The prepare watcher alone must not keep a loop alive. */
	ev_unref(ev);
	ev_idle_init(&a->idle_w, idle_cb);
	a->idle_w.data = a;
	ev_init(&a->retry_w, retry_cb);
	a->retry_w.data = a;
	*out = &a->pub;
	return 0;
out_ctx:
	io_destroy(a->ctx);
out_free:
	free(a->iocbs);
	free(a->freel);
	free(a->batch);
	free(a);
	return rc;
}

bool
disk_aio_reaps_ring(const struct disk_ioeng *e)
{
	return e->ops == &aio_ops && ((const struct aio_eng *)e)->ring != NULL;
}

/* ---------------------------------------------------------------- registry */

#define MAX_ENGINES 256

static pthread_mutex_t g_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct aio_eng *g_reg[MAX_ENGINES];

int
disk_aio_get(struct ev_loop *ev, struct disk_ioeng **out)
{
	struct disk_ioeng *e = NULL;
	int rc = 0, free_at = -1;

	pthread_mutex_lock(&g_reg_lock);
	for (int i = 0; i < MAX_ENGINES; i++) {
		if (g_reg[i] != NULL && g_reg[i]->pub.ev == ev) {
			g_reg[i]->refs++;
			e = &g_reg[i]->pub;
			goto out;
		}
		if (g_reg[i] == NULL && free_at < 0)
			free_at = i;
	}
	if (free_at < 0) {
		rc = -ENOMEM;
		goto out;
	}
	rc = disk_aio_create(ev, 0, &e);
	if (rc != 0)
		goto out;
	g_reg[free_at] = (struct aio_eng *)e;
	g_reg[free_at]->refs = 1;
	g_reg[free_at]->registered = true;
out:
	pthread_mutex_unlock(&g_reg_lock);
	if (rc == 0)
		*out = e;
	return rc;
}

void
disk_aio_put(struct disk_ioeng **pe)
{
	struct disk_ioeng *e = *pe;
	struct aio_eng *a;
	bool destroy = true;

	if (e == NULL)
		return;
	*pe = NULL;
	if (e->ops != &aio_ops) {
		e->ops->destroy(e);
		return;
	}
	a = (struct aio_eng *)e;
	if (a->registered) {
		pthread_mutex_lock(&g_reg_lock);
		if (--a->refs > 0) {
			destroy = false;
		} else {
			for (int i = 0; i < MAX_ENGINES; i++)
				if (g_reg[i] == a)
					g_reg[i] = NULL;
		}
		pthread_mutex_unlock(&g_reg_lock);
	}
	if (destroy)
		aio_destroy(e);
}

// SPDX-License-Identifier: MIT
/*
 * CRAQ chain replication of chunk mutations (cluster mode; DESIGN.md section
 * 3). Owns the path of a chunk_write, chunk_truncate or chunk_remove once
 * write.c has checked it: the per-chunk queue, every replica's memory of
 * client requests (exactly-once retries, across failover too), storing the
 * update pending, forwarding it to the successor, committing it when the
 * successor's answer comes back, and re-driving what a failed attempt left
 * behind. README.md ("Cluster mode: CRAQ") tells the whole protocol.
 *
 * The head serializes the mutations of one chunk: only one is in the chain at
 * a time, the others wait in the chunk's queue, so the engine's rule "one
 * pending version per chunk" holds on every replica and the head's next
 * version is always committed + 1 (the engine assigns it: update_ver 0). The
 * forwarded mutation is the same message with STOR_CW_F_FORWARD and
 * update_ver = that version (a write carries the same payload buffers, by
 * reference). The tail commits and answers; each replica checks the answer is
 * its own version (length and CRC too), commits, and answers its predecessor.
 *
 * The memory of client requests is a RAM ring backed by the engine: every
 * version is stored with the client_req that made it (durably, in its index
 * row), and a request the ring does not know is looked up there
 * (dd_from_engine), so a restart or an eviction does not make a retry apply
 * twice while the chunk still holds the version the request made. A remove
 * that committed leaves no version: the engine keeps a record of the request
 * instead (disk_removed_find, written with the row's deletion, kept for the
 * target's remove memory), and a retry that finds it is answered the removed
 * version, not applied again, also when someone created the chunk since.
 *
 * Failed forwards never drop anything: the tail may have committed the
 * version already. The replica keeps it pending and answers a retryable
 * error; the head re-drives the leftover pending version (whole, at the same
 * version) before the chunk's next mutation, when a client retries, and by
 * itself when routing makes it head or changes its chain. A replica holding
 * that version committed already answers it again (idempotent), so a version
 * is applied at most once and never carries two contents. A head whose own
 * mutation failed that way also re-drives by itself, after a backoff (the
 * re-drive walk), so a chunk does not stay pending until a client returns.
 * A successor holding a newer committed version answers -ESTALE: reported
 * and refused, never taken (versions start over at 1 when a chunk is
 * removed and created again: a higher version may be an older life).
 *
 * A syncing successor (the chain's last member) gets every mutation as a
 * whole committed version (STOR_CW_F_SYNC, like a resync copy) and a remove
 * as its tombstone; it installs the version over whatever it holds, or
 * removes whatever it holds: its predecessor is authoritative, and sends
 * only in the chunk's turn of its queue (a mutation, or a resync step:
 * craq_sync_hold), so nothing of the chunk overtakes what it sends.
 *
 * A remove is an update version like a write: the head stores a pending
 * tombstone at committed + 1 (disk_tombstone, with the client_req), forwards
 * it as a chunk_remove with update_ver = that version, every replica stores it
 * pending, the tail removes the chunk (commits the tombstone at once), and
 * each replica commits (removes) as the answer passes it; the head answers the
 * removed version (tombstone - 1). A leftover pending tombstone is re-driven
 * exactly like a leftover pending write (op->tomb: it travels as a forwarded
 * chunk_remove instead of a whole chunk_write). At a replica other than the
 * head, a forwarded tombstone u meets:
 *  - no chunk at all: it removed the chunk already (an earlier attempt got
 *    this far) or never had it: success, so the sender commits;
 *  - a committed version >= u: -ESTALE (as for a write);
 *  - a pending tombstone u: kept, forwarded (or committed at the tail);
 *  - anything else: stored like a write of u (pending; at the tail removed,
 *    or stored pending and committed when an older pending u is in the way).
 * A replica holding a pending tombstone u treats everything else as it would
 * a pending write u: a forwarded write of u replaces it (the head made u a
 * write: it never had the tombstone), of another version -EBUSY/-ESTALE (the
 * engine's rules; the head re-drives its leftover first, so this needs two
 * heads); a resync copy (sent to a syncing target, the chain's last member,
 * which may hold a tombstone pending from a life as a middle replica before
 * it left) installs the committed version over it; chunk_query and
 * chunk_list report it (pending = u, ptomb), and a read at a non-tail
 * replica asks the tail as for any pending version: the tail's "no chunk"
 * means removed.
 *
 * Every replica queues a chunk's mutations the same way, so a resync copy or
 * removal (STOR_CW_F_SYNC, resync.c) and a forwarded mutation of one chunk
 * never overtake each other; the predecessor's resync walk takes its turn in
 * the same queue (craq_sync_hold). Every op lives in its request's arena and
 * dies with the reply.
 */
#define RT_LOG_SUBSYS "storage"
#include "actors/storage/storage_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chainfs/cluster.h"

struct craq_op {
	struct stor_target *t;
	struct rt_msg *req;    /* the request; a proactive re-drive's own carrier */
	struct craq_op *next;  /* the next mutation of the chunk's queue */
	struct stor_dedup *dd; /* the slot remembering client_req, or NULL */
	enum craq_kind kind;
	/* The request's fields, whichever message it is. */
	struct cfs_id128 chunk;
	uint64_t chain_id;
	uint32_t chain_ver;
	uint64_t client_req;
	uint32_t flags;
	uint32_t tlen;	   /* truncate: the new length */
	bool queued;	   /* owns its chunk's queue while in flight */
	bool tail;	   /* we are the write path's tail: nothing to forward */
	bool synthetic;	   /* head: a proactive re-drive, nobody to answer */
	bool retry;	   /* head: a retried client_req, maybe with a version here */
	bool busy;	   /* head: we set dd->busy (and clear it when done) */
	bool redrive;	   /* head: re-driving the chunk's leftover pending version */
	bool tomb;	   /* the version in the chain is a tombstone (a remove) */
	bool commit_after; /* tail: stored pending (one was there), commit it next */
	bool sync_hold;	   /* resync's turn in the chunk's queue (craq_sync_hold) */
	uint64_t ver;	   /* the version in the chain now (pending unless tail) */
	uint32_t plen;	   /* its length and CRC: what the successor must answer */
	uint32_t pcrc;
	uint32_t csize; /* the chunk's size, for a whole copy */
	uint32_t rcsize; /* re-drive: the leftover's chunk size (csize stays the request's) */
	uint64_t rreq;	/* re-drive: the request that made the version (engine), 0: unknown */
	struct disk_read rd;
};

/* The mutations of one chunk: first is in the chain, the rest wait. */
struct craq_q {
	struct craq_q *next; /* bucket chain */
	struct cfs_id128 id;
	struct craq_op *first, *last;
};

static void start(struct craq_op *op);
static void head_step(struct craq_op *op);
static void redrive_failed(struct stor_target *t, int rc, bool walk);
static void redrive_succeeded(struct stor_target *t);

/* ------------------------------------------------------------- the queue */

static struct craq_q **
q_slot(struct stor_target *t, const struct cfs_id128 *id)
{
	uint64_t h = 1469598103934665603ull;
	struct craq_q **pq;

	for (unsigned i = 0; i < sizeof(id->b); i++)
		h = (h ^ id->b[i]) * 1099511628211ull;
	pq = &t->q[h % STOR_QBUCKETS];
	while (*pq && memcmp(&(*pq)->id, id, sizeof(*id)) != 0)
		pq = &(*pq)->next;
	return pq;
}

/* Append op to its chunk's queue: 1 when it is first (start it now), 0 when it
 * waits, -ENOMEM. */
static int
q_push(struct stor_target *t, struct craq_op *op)
{
	const struct cfs_id128 *id = &op->chunk;
	struct craq_q **pq = q_slot(t, id);

	if (*pq) {
		(*pq)->last->next = op;
		(*pq)->last = op;
		return 0;
	}
	*pq = calloc(1, sizeof(**pq));
	if (!*pq)
		return -ENOMEM;
	(*pq)->id = *id;
	(*pq)->first = (*pq)->last = op;
	return 1;
}

/* Op (first of its queue) is done: the next write of the chunk, or NULL. */
static struct craq_op *
q_pop(struct stor_target *t, const struct cfs_id128 *id)
{
	struct craq_q **pq = q_slot(t, id);
	struct craq_q *q = *pq;
	struct craq_op *next;

	if (!q)
		return NULL;
	next = q->first->next;
	q->first = next;
	if (!next) {
		*pq = q->next;
		free(q);
	}
	return next;
}

/* ---------------------------------------------------------------- dedup */

static uint32_t
dd_bucket(uint64_t client_req, const struct cfs_id128 *chunk)
{
	uint64_t h = client_req * 0x9e3779b97f4a7c15ull;

	for (unsigned i = 0; i < sizeof(chunk->b); i++)
		h = (h ^ chunk->b[i]) * 1099511628211ull;
	return (uint32_t)(h >> 32) % STOR_DEDUP_SLOTS;
}

static struct stor_dedup *
dd_find(struct stor_target *t, uint64_t client_req, const struct cfs_id128 *chunk)
{
	uint32_t i = t->dedup_hash[dd_bucket(client_req, chunk)];

	while (i != 0) {
		struct stor_dedup *d = &t->dedup[i - 1];

		if (d->client_req == client_req && memcmp(&d->chunk, chunk, sizeof(*chunk)) == 0)
			return d;
		i = d->hnext;
	}
	return NULL;
}

/* The request whose version ver of chunk is stored here and not yet done
 * (a re-driven version: its retry must find the answer); NULL: none known. */
static struct stor_dedup *
dd_find_ver(struct stor_target *t, const struct cfs_id128 *chunk, uint64_t ver)
{
	for (uint32_t i = 0; i < STOR_DEDUP_SLOTS; i++) {
		struct stor_dedup *d = &t->dedup[i];

		if (d->client_req != 0 && !d->done && d->ver == ver &&
		    memcmp(&d->chunk, chunk, sizeof(*chunk)) == 0)
			return d;
	}
	return NULL;
}

/* The oldest slot is reused; an op still in flight whose slot was taken just
 * is not remembered (dd_ours). */
static struct stor_dedup *
dd_claim(struct stor_target *t, uint64_t client_req, const struct cfs_id128 *chunk)
{
	uint32_t self = t->dedup_next + 1, b = dd_bucket(client_req, chunk);
	struct stor_dedup *d = &t->dedup[t->dedup_next];

	t->dedup_next = (t->dedup_next + 1) % STOR_DEDUP_SLOTS;
	if (d->bucket != 0) {
		/* Unlink the slot from the bucket of the request it held. */
		uint32_t *pi = &t->dedup_hash[d->bucket - 1];

		while (*pi != self)
			pi = &t->dedup[*pi - 1].hnext;
		*pi = d->hnext;
	}
	*d = (struct stor_dedup){.client_req = client_req, .chunk = *chunk, .bucket = b + 1};
	d->hnext = t->dedup_hash[b];
	t->dedup_hash[b] = self;
	return d;
}

void
craq_dedup_forget(struct stor_target *t)
{
	if (!t->dedup)
		return;
	memset(t->dedup_hash, 0, STOR_DEDUP_SLOTS * sizeof(*t->dedup_hash));
	for (uint32_t i = 0; i < STOR_DEDUP_SLOTS; i++) {
		struct stor_dedup *d = &t->dedup[i];
		uint32_t b;

		if (d->client_req == 0 || !d->busy) {
			*d = (struct stor_dedup){0};
			continue;
		}
		b = d->bucket - 1;
		d->hnext = t->dedup_hash[b];
		t->dedup_hash[b] = i + 1;
	}
}

static bool
dd_ours(const struct stor_dedup *d, const struct craq_op *op)
{
	return d && op->client_req != 0 && d->client_req == op->client_req &&
	       memcmp(&d->chunk, &op->chunk, sizeof(op->chunk)) == 0;
}

static void
dd_set_done(struct stor_dedup *d, const struct disk_chunk_info *info)
{
	d->done = true;
	d->ver = info->ver;
	d->len = info->len;
	d->crc = info->crc;
}

/*
 * The ring does not know client_req on chunk (the target restarted, or 4096
 * newer requests pushed it out): the engine stores with each version the
 * request that made it, durably, so it refills the ring. The committed
 * version made by client_req gives a done entry (its answer); a pending one
 * the entry of a stored, unfinished request, which head_step re-drives and
 * then answers. A remove whose tombstone committed left no version but a
 * record (disk_removed_find, kept for the target's remove memory): a done
 * entry answering the version it removed, also when the chunk was created
 * again since by someone else, whose chunk the retry must not remove. NULL:
 * none of these is the request's (it never stored here, the chunk was
 * written again since, or the remove's record expired: applied as new).
 */
static struct stor_dedup *
dd_from_engine(struct stor_target *t, uint64_t client_req, const struct cfs_id128 *chunk,
	       enum craq_kind kind)
{
	struct disk_chunk_info info;
	struct stor_dedup *d;
	uint64_t tver;

	if (disk_query(t->dt, chunk, &info) != 0) {
		if (kind != CRAQ_REMOVE || disk_removed_find(t->dt, chunk, client_req, &tver) != 0)
			return NULL;
		goto removed;
	}
	if (info.ver != 0 && info.req == client_req) {
		d = dd_claim(t, client_req, chunk);
		dd_set_done(d, &info);
		return d;
	}
	if (info.pver != 0 && info.preq == client_req) {
		d = dd_claim(t, client_req, chunk);
		d->ver = info.pver;
		d->len = info.plen;
		d->crc = info.pcrc;
		return d;
	}
	if (kind != CRAQ_REMOVE || disk_removed_find(t->dt, chunk, client_req, &tver) != 0)
		return NULL;
removed:
	/* The head answered the version the tombstone removed: tver - 1. */
	d = dd_claim(t, client_req, chunk);
	dd_set_done(d, &(struct disk_chunk_info){.id = *chunk, .ver = tver - 1});
	return d;
}

static void
dd_set_stored(struct craq_op *op)
{
	if (dd_ours(op->dd, op)) {
		op->dd->ver = op->ver;
		op->dd->len = op->plen;
		op->dd->crc = op->pcrc;
	}
}

/* ---------------------------------------------------------------- answer */

/* info: the committed state to report (a success, or -ESTALE: what we hold
 * instead), or NULL. */
static void
answer(struct craq_op *op, int rc, const struct disk_chunk_info *info)
{
	struct stor_target *t = op->t;
	struct rt_msg *resp = NULL;

	switch (op->kind) {
	case CRAQ_WRITE:
		resp = rt_msg_new(CFS_MSG_CHUNK_WRITE_RESP);
		if (resp) {
			struct cfs_chunk_write_resp *r = RT_BODY(resp, chunk_write_resp);

			r->chain_ver = t->chain.chain_ver;
			if (info) {
				r->version = info->ver;
				r->len = info->len;
				r->crc = info->crc;
			}
		}
		break;
	case CRAQ_TRUNCATE:
		resp = rt_msg_new(CFS_MSG_CHUNK_TRUNCATE_RESP);
		if (resp && info) {
			RT_BODY(resp, chunk_truncate_resp)->version = info->ver;
			RT_BODY(resp, chunk_truncate_resp)->len = info->len;
			RT_BODY(resp, chunk_truncate_resp)->crc = info->crc;
		}
		break;
	case CRAQ_REMOVE:
		resp = rt_msg_new(CFS_MSG_CHUNK_REMOVE_RESP);
		if (resp && info)
			RT_BODY(resp, chunk_remove_resp)->version = info->ver;
		break;
	}
	if (!resp && rc == 0) {
		/* Applied, but we cannot say which version: the client retries
		 * with the same client_req and gets the remembered answer. */
		rc = -ENOMEM;
	}
	rt_reply(op->req, rc, resp);
}

static const char *
kind_name(const struct craq_op *op)
{
	static const char *const names[] = {"write", "truncate", "remove"};

	return op->synthetic ? "re-drive" : names[op->kind];
}

/* The end of op at this replica: remember and answer, then start the chunk's
 * next queued mutation. info is the committed state on success (NULL for a
 * re-drive walk's op with nothing to do), or what to report with an error. */
/* A queued mutation that will not run (the target stops): the client hears
 * -CFS_ENOTSERVING and retries elsewhere; a re-drive's carrier is dropped. */
static void
refuse(struct craq_op *op)
{
	struct rt_msg *m = op->req; /* op lives in its arena */

	if (op->sync_hold) {
		op->t->sync_hold = NULL; /* the target stops: so does its walk */
		rt_msg_free(&m);
	} else if (op->synthetic)
		rt_msg_free(&m);
	else
		rt_reply(m, -CFS_ENOTSERVING, NULL);
}

static bool
left_pending(struct stor_target *t, const struct cfs_id128 *chunk)
{
	struct disk_chunk_info info;

	return disk_query(t->dt, chunk, &info) == 0 && info.pver != 0;
}

static void
finish(struct craq_op *op, int rc, const struct disk_chunk_info *info)
{
	struct stor_target *t = op->t;
	struct craq_op *next = NULL;
	struct disk_chunk_info gone;

	/* A tombstone done: the chunk is gone, the answer is the version it
	 * removed (the engine's info after a removal names no version). */
	if (rc == 0 && op->tomb) {
		gone = (struct disk_chunk_info){.id = op->chunk, .ver = op->ver - 1};
		info = &gone;
	}
	/* Canceled: our actor is stopping, which the node logs itself. */
	if (rc != 0 && rc != -CFS_ECANCELED)
		stor_log_fail(t, kind_name(op), &op->chunk, rc);
	if (dd_ours(op->dd, op)) {
		if (rc == 0 && info)
			dd_set_done(op->dd, info);
		else if (rc != 0 && op->dd->ver == 0 && (op->busy || !op->dd->busy))
			op->dd->client_req = 0; /* nothing applied: a retry runs again */
		/* Otherwise our version stays pending here: a retry re-drives
		 * it. */
		if (op->busy)
			op->dd->busy = false;
	}
	/* A head's own mutation that failed with its version (or a leftover
	 * it re-drove) still pending here: nobody else brings it down the
	 * chain until a client retries (reads meanwhile ask the tail, and may
	 * answer -CFS_EBUSY), so the re-drive walk runs after a backoff. */
	if (rc != 0 && rc != -CFS_ECANCELED && !op->synthetic && !op->sync_hold &&
	    !(op->flags & STOR_CW_F_FORWARD) && left_pending(t, &op->chunk))
		redrive_failed(t, rc, false);
	if (op->queued)
		next = q_pop(t, &op->chunk);
	if (op->synthetic) {
		struct rt_msg *m = op->req; /* op lives in its arena */

		if (rc != 0)
			redrive_failed(t, rc, true);
		else
			redrive_succeeded(t);
		rt_msg_free(&m);
	} else {
		answer(op, rc, rc == 0 || rc == -ESTALE ? info : NULL);
	}
	/* op is gone with its request. */
	if (rc == -CFS_ECANCELED) {
		/* Our actor is stopping: what waits behind op never starts. */
		while (next) {
			struct craq_op *after = q_pop(t, &next->chunk);

			refuse(next);
			next = after;
		}
		return;
	}
	if (next)
		start(next);
}

/* ------------------------------------------------------------ the chain */

static void
committed(void *cb_arg, int rc, const struct disk_chunk_info *info)
{
	struct craq_op *op = cb_arg;
	struct disk_chunk_info gone;
	struct stor_dedup *d;

	if (op->tomb && (rc == 0 || rc == -CFS_ENOCHUNK)) {
		/* Removed (or gone already): the answer names the removed version. */
		rc = 0;
		gone = (struct disk_chunk_info){.id = op->chunk, .ver = op->ver - 1};
		info = &gone;
	}
	if (rc != 0 || !op->redrive) {
		finish(op, rc, info);
		return;
	}
	/* A leftover version is committed everywhere on the path now: its
	 * request's retry gets this answer (from the ring when it is there,
	 * else from the engine, which stored the request with the version).
	 * Then the op's own work. */
	d = op->rreq ? dd_find(op->t, op->rreq, &op->chunk) : NULL;
	if (!d || d->done || d->ver != op->ver)
		d = dd_find_ver(op->t, &op->chunk, op->ver);
	if (d)
		dd_set_done(d, info);
	op->redrive = false;
	op->tomb = false;
	head_step(op);
}

/* Commit our pending op->ver here (a tombstone: remove the chunk); the
 * outcome, also a failure to start, goes through committed(). */
static void
commit_here(struct craq_op *op)
{
	int rc = disk_commit(op->t->dt, &op->chunk, op->ver, committed, op);

	if (rc != 0)
		committed(op, rc, NULL);
}

static void forward(struct craq_op *op);

/* An earlier attempt stored op->ver here already: keep it and go on down the
 * chain, or commit it at the tail. */
static void
go_on_stored(struct craq_op *op)
{
	dd_set_stored(op);
	if (op->tail)
		commit_here(op);
	else
		forward(op);
}

/* Our successor did not take the mutation: keep our version pending here
 * (the tail may have committed it) and pass a retryable error up. The chunk's
 * next mutation at the head, a client's retry or the head's re-drive walk
 * re-drive it. */
static void
fwd_failed(struct craq_op *op, int rc)
{
	/* -CFS_ECANCELED here is our own stop (forwarded() turns a successor's
	 * into -CFS_ENOTSERVING): kept, so finish() refuses the chunk's queue. */
	if (rc != -CFS_ECANCELED && op->chain_ver != op->t->chain.chain_ver)
		rc = -CFS_ESTALECHAIN;
	finish(op, rc, NULL);
}

static void
removed(void *cb_arg, int rc, const struct disk_chunk_info *info)
{
	struct craq_op *op = cb_arg;
	struct disk_chunk_info done = {.id = op->chunk, .ver = op->ver};

	(void)info;
	if (rc == -CFS_ENOCHUNK)
		rc = 0; /* gone already */
	finish(op, rc, &done);
}

/* A resync removal (the predecessor lacks the chunk): at once, both versions. */
static void
remove_here(struct craq_op *op)
{
	int rc = disk_remove(op->t->dt, &op->chunk, removed, op);

	if (rc != 0)
		removed(op, rc, NULL);
}

/*
 * Our successor answered -ESTALE: it holds a committed version newer than the
 * version we hold pending. A divergence to report, never a source of truth:
 * versions start over at 1 when a chunk is removed and created again, so the
 * successor's "newer" version may be an old life of the chunk (a replica that
 * was away while the chunk was removed and re-created), and taking it would
 * lose acknowledged data. Refused: our version stays pending, the client
 * gets -ESTALE.
 */
static void
estale_logged(struct craq_op *op, uint64_t theirs)
{
	char id[STOR_ID_STR];

	if (!stor_log_ok(op->t))
		return;
	stor_id_str(&op->chunk, id);
	RT_WARN("target=%" PRIu32 " chunk=%s: successor holds v%" PRIu64
		", newer than our pending v%" PRIu64 "%s: refused",
		op->t->id, id, theirs, op->ver, op->tomb ? " (a remove)" : "");
}

static void
forwarded(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct craq_op *op = cb_arg;
	uint64_t ver = 0;
	uint32_t len = 0, crc = 0;
	char id[STOR_ID_STR];

	(void)self;
	/* A successor whose actor stopped with our mutation in it answers
	 * -CFS_ECANCELED: to us a successor gone, retryable (and our re-drive
	 * armed). Only without a response is the cancel ours (our actor stops,
	 * t->stopping not yet set: the calls are canceled before fini), which
	 * alone may refuse the chunk's queue. */
	if (rc == -CFS_ECANCELED && resp)
		rc = -CFS_ENOTSERVING;
	if (op->tomb) {
		if (rc == -ESTALE && resp && resp->type == CFS_MSG_CHUNK_REMOVE_RESP)
			estale_logged(op, RT_BODY(resp, chunk_remove_resp)->version);
		if (rc != 0) {
			fwd_failed(op, rc);
			return;
		}
		/* Removed further down (or never there): remove here. */
		commit_here(op);
		return;
	}
	if (resp && resp->type == CFS_MSG_CHUNK_WRITE_RESP) {
		ver = RT_BODY(resp, chunk_write_resp)->version;
		len = RT_BODY(resp, chunk_write_resp)->len;
		crc = RT_BODY(resp, chunk_write_resp)->crc;
	} else if (resp && resp->type == CFS_MSG_CHUNK_TRUNCATE_RESP) {
		ver = RT_BODY(resp, chunk_truncate_resp)->version;
		len = RT_BODY(resp, chunk_truncate_resp)->len;
		crc = RT_BODY(resp, chunk_truncate_resp)->crc;
	}
	if (rc == 0 && (!resp || ver != op->ver || len != op->plen || crc != op->pcrc)) {
		/* The successor holds other content under this version: never
		 * commit ours over it. */
		stor_id_str(&op->chunk, id);
		RT_WARN("target=%" PRIu32 " chunk=%s: successor answered v%" PRIu64 " len %" PRIu32
			" crc %08" PRIx32 " for our v%" PRIu64 " len %" PRIu32 " crc %08" PRIx32,
			op->t->id, id, ver, len, crc, op->ver, op->plen, op->pcrc);
		rc = -EIO;
	} else if (rc == -ESTALE && resp) {
		estale_logged(op, ver);
	}
	if (rc != 0) {
		fwd_failed(op, rc);
		return;
	}
	commit_here(op);
}

static bool
chain_moved(const struct craq_op *op)
{
	const struct stor_chain *c = &op->t->chain;

	return op->chain_ver != c->chain_ver || c->pos < 0 || c->succ < 0;
}

/* The one builder of whole-version chunk_writes (here and resync.c), so a
 * copy, a re-drive and a forward to a syncing successor carry the same
 * fields, the request id included. */
int
stor_whole_msg(const struct stor_whole *w, struct rt_msg **out)
{
	struct rt_msg *m = rt_msg_new(CFS_MSG_CHUNK_WRITE);
	struct cfs_chunk_write *f;
	int rc;

	*out = NULL;
	if (!m)
		return -ENOMEM;
	f = RT_BODY(m, chunk_write);
	f->target = w->target;
	f->chain_id = w->chain_id;
	f->chain_ver = w->chain_ver;
	f->chunk = w->chunk;
	f->offset = 0;
	f->len = w->data ? w->data->len : 0;
	f->crc = w->crc;
	f->chunk_size = w->chunk_size;
	f->update_ver = w->ver;
	f->client_req = w->client_req;
	f->flags = STOR_CW_F_FORWARD | w->flags;
	if (f->len) {
		rc = rt_msg_add_iov(m, w->data->buf, w->data->off, w->data->len);
		if (rc != 0) {
			rt_msg_free(&m);
			return rc;
		}
	}
	*out = m;
	return 0;
}

/* The request a forwarded version names, which the successors remember
 * (durably): the op's own, or for a re-driven leftover the engine's record
 * (or the ring's, for a version stored before the engine kept it). */
static uint64_t
fwd_req(struct craq_op *op)
{
	struct stor_dedup *d;

	if (!op->redrive)
		return op->client_req;
	if (op->rreq)
		return op->rreq;
	d = dd_find_ver(op->t, &op->chunk, op->ver);
	return d ? d->client_req : 0;
}

/* Send the whole content of our version op->ver (data NULL: empty) to the
 * successor: as a resync copy when it is syncing, else as a whole forwarded
 * write it stores pending and forwards on. */
static void
send_whole(struct craq_op *op, const struct rt_iov *data, uint32_t crc)
{
	struct stor_target *t = op->t;
	const struct stor_chain *c = &t->chain;
	struct rt_msg *m = NULL;
	int rc = 0;

	if (chain_moved(op))
		rc = -CFS_ESTALECHAIN;
	if (rc == 0) {
		struct stor_whole w = {
			.target = c->members[c->succ].target,
			.chain_id = op->chain_id,
			.chain_ver = op->chain_ver,
			.chunk = op->chunk,
			.chunk_size = op->redrive ? op->rcsize : op->csize,
			.ver = op->ver,
			.client_req = op->client_req,
			.crc = crc,
			.flags = c->members[c->succ].public_state == CFS_TS_SYNCING
					 ? STOR_CW_F_SYNC
					 : STOR_CW_F_WHOLE,
			.data = data,
		};

		w.client_req = fwd_req(op);
		rc = stor_whole_msg(&w, &m);
	}
	if (rc == 0)
		rc = rt_call(t->self, c->members[c->succ].addr, m, 0, forwarded, op);
	if (rc != 0) {
		rt_msg_free(&m);
		fwd_failed(op, rc);
	}
}

static void
whole_read(void *cb_arg, struct disk_read *dr, unsigned n)
{
	struct craq_op *op = cb_arg;
	/* dr lives in op, which finish() may free (a failed send ends in it
	 * too): everything needed after it is taken first. */
	struct rt_iov data = dr->data;
	struct rt_buf *buf = dr->data.buf;
	int rc = dr->rc == 0 && dr->ver != op->ver ? -EIO : dr->rc;

	(void)n;
	dr->data.buf = NULL;
	if (rc != 0)
		finish(op, rc, NULL);
	else
		send_whole(op, &data, dr->crc);
	rt_buf_put(&buf);
}

/*
 * Forward our pending version op->ver whole (read back with DISK_R_PENDING):
 * to a syncing successor, which may lack the earlier content a partial
 * mutation would apply to, and when re-driving a version an earlier attempt
 * left pending (we no longer have its request).
 */
static void
forward_whole(struct craq_op *op)
{
	int rc;

	if (op->plen == 0) {
		send_whole(op, NULL, op->pcrc);
		return;
	}
	op->rd = (struct disk_read){
		.id = op->chunk,
		.len = op->plen,
		.flags = DISK_R_PENDING,
	};
	rc = disk_read(op->t->dt, &op->rd, 1, whole_read, op);
	if (rc != 0)
		finish(op, rc, NULL);
}

/* The forwarded form of op's request (not a write: those copy theirs), or of
 * the tombstone op carries. */
static struct rt_msg *
fwd_msg(struct craq_op *op, uint32_t target)
{
	struct rt_msg *m;

	if (op->tomb) {
		/* A tombstone (ours, or a leftover re-driven): update_ver is its
		 * version, the removed one + 1. */
		struct cfs_chunk_remove *r;

		m = rt_msg_new(CFS_MSG_CHUNK_REMOVE);
		if (!m)
			return NULL;
		r = RT_BODY(m, chunk_remove);
		r->target = target;
		r->chain_id = op->chain_id;
		r->chain_ver = op->chain_ver;
		r->chunk = op->chunk;
		r->update_ver = op->ver;
		r->client_req = fwd_req(op);
		r->flags = STOR_CW_F_FORWARD;
		return m;
	}
	m = rt_msg_new(CFS_MSG_CHUNK_TRUNCATE);
	if (m) {
		struct cfs_chunk_truncate *r = RT_BODY(m, chunk_truncate);

		r->target = target;
		r->chain_id = op->chain_id;
		r->chain_ver = op->chain_ver;
		r->chunk = op->chunk;
		r->len = op->tlen;
		r->chunk_size = op->csize;
		r->update_ver = op->ver;
		r->client_req = op->client_req;
		r->flags = STOR_CW_F_FORWARD;
	}
	return m;
}

static void
forward(struct craq_op *op)
{
	struct stor_target *t = op->t;
	const struct stor_chain *c = &t->chain;
	struct rt_msg *req = op->req;
	struct rt_msg *m;
	int rc;

	/* The chain may have changed while we stored: its new version sends
	 * the client back to mgmtd's routing. */
	if (chain_moved(op)) {
		fwd_failed(op, -CFS_ESTALECHAIN);
		return;
	}
	/* A tombstone goes as it is, also to a syncing successor: it has no
	 * content for a whole copy to carry, and one that lacks the chunk
	 * answers it as done. */
	if (!op->tomb && c->members[c->succ].public_state == CFS_TS_SYNCING) {
		forward_whole(op);
		return;
	}
	if (op->kind != CRAQ_WRITE || op->tomb) {
		m = fwd_msg(op, c->members[c->succ].target);
		if (!m) {
			fwd_failed(op, -ENOMEM);
			return;
		}
	} else {
		struct cfs_chunk_write *f;

		m = rt_msg_new(CFS_MSG_CHUNK_WRITE);
		if (!m) {
			fwd_failed(op, -ENOMEM);
			return;
		}
		f = RT_BODY(m, chunk_write);
		*f = *RT_BODY(req, chunk_write); /* client_req too: every replica remembers it */
		f->target = c->members[c->succ].target;
		f->update_ver = op->ver;
		f->flags |= STOR_CW_F_FORWARD;
		for (uint32_t i = 0; i < req->iovcnt; i++) {
			rc = rt_msg_add_iov(m, req->iov[i].buf, req->iov[i].off, req->iov[i].len);
			if (rc != 0)
				goto out_msg;
		}
	}
	rc = rt_call(t->self, c->members[c->succ].addr, m, 0, forwarded, op);
	if (rc != 0)
		goto out_msg;
	return;

out_msg:
	rt_msg_free(&m);
	fwd_failed(op, rc);
}

/* Our version is stored: pending (forward it) or, at the tail, committed. */
static void
stored(void *cb_arg, int rc, const struct disk_chunk_info *info)
{
	struct craq_op *op = cb_arg;

	if (rc != 0) {
		finish(op, rc, NULL);
		return;
	}
	if (op->tomb) {
		/* op->ver was chosen before (a removal leaves no version to
		 * report); nothing to compare but the version. */
		op->plen = op->pcrc = 0;
	} else {
		op->ver = info->pver ? info->pver : info->ver;
		op->plen = info->pver ? info->plen : info->len;
		op->pcrc = info->pver ? info->pcrc : info->crc;
	}
	dd_set_stored(op);
	if (op->tail) {
		if (!op->commit_after) {
			finish(op, 0, info);
			return;
		}
		commit_here(op);
		return;
	}
	forward(op);
}

/* Store op's write, truncate or tombstone at version ver (0: next) with
 * flags. */
static void
store(struct craq_op *op, uint64_t ver, unsigned flags)
{
	struct disk_write dw;
	int rc;

	if (op->tomb) {
		rc = disk_tombstone(op->t->dt, &op->chunk, ver, flags, op->client_req, stored, op);
	} else if (op->kind == CRAQ_TRUNCATE) {
		rc = disk_truncate(op->t->dt, &op->chunk, op->tlen, ver, flags, op->client_req,
				   stored, op);
	} else {
		dw = stor_disk_write_of(op->req, ver, flags);
		rc = disk_write(op->t->dt, &dw, stored, op);
	}
	if (rc != 0)
		finish(op, rc, NULL);
}

/*
 * A resync copy from our predecessor (or a mutation it forwards to us while we
 * sync, or a leftover it re-drives: whole versions all): the whole committed
 * content of a chunk at version update_ver, installed as committed
 * (DISK_W_FORCE, REPLACE) over whatever we hold (of another chunk size
 * too), unless we hold exactly that already. The predecessor is
 * authoritative: it sends under its own per-chunk queue (craq_sync_hold,
 * or the mutation's own turn), so nothing of that
 * chunk overtakes it, and what we hold may be a stale life of the chunk
 * (removed and created again while we were away: versions start over at 1,
 * so a higher version here proves nothing). Never forwarded on.
 * A resync removal (chunk_remove): a chunk the predecessor does not hold
 * committed: removed, whatever we hold.
 */
static void
start_sync_copy(struct craq_op *op)
{
	struct stor_target *t = op->t;
	struct rt_msg *req = op->req;
	const struct cfs_chunk_write *w;
	struct disk_chunk_info info;
	struct disk_write dw;
	int rc;

	op->tail = true;
	rc = disk_query(t->dt, &op->chunk, &info);
	if (op->kind == CRAQ_REMOVE) {
		if (rc == 0)
			remove_here(op);
		else
			finish(op, 0, NULL); /* gone already */
		return;
	}
	if (op->kind != CRAQ_WRITE) {
		finish(op, -EINVAL, NULL);
		return;
	}
	w = RT_BODY(req, chunk_write);
	if (w->offset != 0) {
		finish(op, -EINVAL, NULL);
		return;
	}
	if (rc == 0 && info.pver == 0 && info.ver == op->ver && info.crc == w->crc &&
	    info.len == w->len && info.chunk_size == w->chunk_size) {
		finish(op, 0, &info);
		return;
	}
	dw = stor_disk_write_of(req, op->ver, DISK_W_FORCE | DISK_W_REPLACE);
	rc = disk_write(t->dt, &dw, stored, op);
	if (rc != 0)
		finish(op, rc, NULL);
}

/* A forwarded tombstone of version u = op->ver (top of the file). */
static void
tomb_recorded(void *cb_arg, int rc)
{
	finish(cb_arg, rc, NULL);
}

static void
start_forwarded_tomb(struct craq_op *op)
{
	struct stor_target *t = op->t;
	struct disk_chunk_info info = {0};
	char id[STOR_ID_STR];
	unsigned flags = 0;
	uint64_t tver;
	int rc;

	op->tomb = true;
	rc = disk_query(t->dt, &op->chunk, &info);
	if (t->chain.public_state == CFS_TS_SYNCING && rc == 0) {
		/* We sync: the predecessor is authoritative (it sends under the
		 * chunk's turn, see start_sync_copy), and what we hold may be a
		 * stale life of the chunk: removed, whatever it is, and the
		 * request remembered like any committed remove. */
		store(op, op->ver, DISK_W_FORCE);
		return;
	}
	if (rc == -CFS_ENOCHUNK) {
		/* Removed here already (an earlier attempt got this far), or never
		 * here (a syncing target the chunk has not reached): the remove is
		 * committed as far as we are concerned, and its request is
		 * remembered like one we applied, for when we are head. */
		dd_set_stored(op);
		if (op->client_req != 0) {
			/* One held already stays as it is (disk_removed_adopt). */
			const struct disk_removed_rec rec = {
				.id = op->chunk, .req = op->client_req, .ver = op->ver};

			rc = disk_removed_adopt(t->dt, &rec, 1, tomb_recorded, op);
			if (rc != 0)
				finish(op, rc, NULL);
			return;
		}
		finish(op, 0, NULL);
		return;
	}
	if (rc != 0) {
		finish(op, rc, NULL);
		return;
	}
	if (info.ver >= op->ver) {
		op->tomb = false; /* the answer is what we hold */
		finish(op, -ESTALE, &info);
		return;
	}
	if (op->client_req != 0 && info.preq != op->client_req &&
	    disk_removed_find(t->dt, &op->chunk, op->client_req, &tver) == 0) {
		/* Our head lacks the record of this request's committed remove
		 * (it joined by resync after it, or forgot it sooner) and applies the retry as new.
		 * Followed all the same: answering success unapplied would
		 * have the head remove a chunk we keep (README.md, "window"). */
		stor_id_str(&op->chunk, id);
		RT_WARN("target=%" PRIu32 " chunk=%s: remove request %" PRIu64
			" committed here at v%" PRIu64 " arrives again as v%" PRIu64,
			t->id, id, op->client_req, tver, op->ver);
	}
	if (info.pver == op->ver && info.ptomb) {
		go_on_stored(op); /* stored by an earlier attempt */
		return;
	}
	if (op->tail && info.pver != 0)
		op->commit_after = true; /* a committing tombstone would find it busy */
	else if (op->tail)
		flags = DISK_W_COMMIT;
	store(op, op->ver, flags);
}

/*
 * A forwarded mutation of version u = update_ver at a replica other than the
 * head. A tombstone (chunk_remove): see the top of the file. For a write or
 * truncate, what we hold decides:
 *  - u committed here already: an earlier attempt got this far (the answer was
 *    lost on the way back). Answer what we hold; the sender checks that it is
 *    the same length and CRC as its own version before committing, so two
 *    contents under one version are never both committed.
 *  - a newer version committed here: -ESTALE with what we hold.
 *  - u pending here with the same whole content: keep it, forward (or commit
 *    at the tail) without writing again.
 *  - otherwise store it (pending; at the tail committed, or pending and then
 *    committed when an older attempt's pending u is in the way).
 */
static void
start_forwarded(struct craq_op *op)
{
	struct stor_target *t = op->t;
	const struct cfs_chunk_write *w =
		op->kind == CRAQ_WRITE ? RT_BODY(op->req, chunk_write) : NULL;
	bool whole = w && (op->flags & STOR_CW_F_WHOLE);
	struct disk_chunk_info info = {0};
	unsigned flags;
	int rc;

	if (op->kind == CRAQ_REMOVE) {
		start_forwarded_tomb(op);
		return;
	}
	if (whole && w->offset != 0) {
		finish(op, -EINVAL, NULL);
		return;
	}
	rc = disk_query(t->dt, &op->chunk, &info);
	if (rc != 0 && rc != -CFS_ENOCHUNK) {
		finish(op, rc, NULL);
		return;
	}
	if (info.ver == op->ver) {
		finish(op, 0, &info);
		return;
	}
	if (info.ver > op->ver) {
		finish(op, -ESTALE, &info);
		return;
	}
	if (whole && info.pver == op->ver && info.plen == w->len && info.pcrc == w->crc) {
		op->plen = info.plen;
		op->pcrc = info.pcrc;
		go_on_stored(op);
		return;
	}
	flags = whole ? DISK_W_REPLACE : 0;
	if (op->tail && info.pver != 0)
		op->commit_after = true; /* a committing write would find it busy */
	else if (op->tail)
		flags |= DISK_W_COMMIT;
	store(op, op->ver, flags);
}

/* Head: before the op's own work, drive the chunk's leftover pending version
 * (info->pver, an earlier attempt's) down the chain as it is now and commit
 * it: the tail may have committed it already, so it must never be dropped
 * and its version never given to another mutation. */
static void
redrive(struct craq_op *op, const struct disk_chunk_info *info)
{
	op->redrive = true;
	op->tomb = info->ptomb;
	op->ver = info->pver;
	op->plen = info->plen;
	op->pcrc = info->pcrc;
	op->rreq = info->preq;
	/* Not csize: the op's own request is checked against it afterwards (a
	 * truncate naming the wrong chunk size is refused). */
	op->rcsize = info->chunk_size;
	if (!op->tail) {
		if (op->tomb)
			forward(op); /* a tombstone has no content: the remove itself */
		else
			forward_whole(op);
		return;
	}
	commit_here(op); /* we alone are the chain now */
}

/*
 * Head, first of its chunk's queue: a leftover pending version (a write's, a
 * truncate's or a tombstone) is re-driven first (and this step runs again);
 * then a retry is answered if its version got committed meanwhile, and
 * anything else applied as a new version (a remove: a pending tombstone).
 */
static void
head_step(struct craq_op *op)
{
	struct stor_target *t = op->t;
	struct disk_chunk_info info = {0};
	int rc;

	if (dd_ours(op->dd, op) && op->dd->done) {
		info.ver = op->dd->ver;
		info.len = op->dd->len;
		info.crc = op->dd->crc;
		finish(op, 0, &info);
		return;
	}
	rc = disk_query(t->dt, &op->chunk, &info);
	if (rc == 0 && info.pver != 0) {
		redrive(op, &info);
		return;
	}
	if (op->synthetic) {
		finish(op, 0, NULL);
		return;
	}
	if (op->retry && dd_ours(op->dd, op) && op->dd->ver != 0) {
		if (op->kind != CRAQ_REMOVE && rc == 0 && info.ver >= op->dd->ver) {
			/* Committed without us noting it (its pending version was
			 * installed by a resync copy): the remembered content. */
			info.ver = op->dd->ver;
			info.len = op->dd->len;
			info.crc = op->dd->crc;
			finish(op, 0, &info);
			return;
		}
		/* Its pending version is gone (never committed): a new one. */
		op->dd->ver = 0;
	}
	switch (op->kind) {
	case CRAQ_WRITE:
		/* The engine assigns committed + 1. */
		store(op, 0, op->tail ? DISK_W_COMMIT : 0);
		return;
	case CRAQ_TRUNCATE:
		if (rc != 0) {
			finish(op, rc, NULL);
			return;
		}
		/* chunk_size is optional (0); when given it must be the chunk's. */
		if ((op->csize != 0 && op->csize != info.chunk_size) ||
		    op->tlen > info.chunk_size) {
			t->rejected++;
			finish(op, -EINVAL, NULL);
			return;
		}
		op->csize = info.chunk_size;
		store(op, 0, op->tail ? DISK_W_COMMIT : 0);
		return;
	case CRAQ_REMOVE:
		if (rc != 0) {
			finish(op, rc, NULL);
			return;
		}
		/* A pending tombstone at the next version (the answer names
		 * the version it removes, this one - 1); a tail alone removes
		 * at once. */
		op->tomb = true;
		op->ver = info.ver + 1;
		op->csize = info.chunk_size;
		store(op, op->ver, op->tail ? DISK_W_COMMIT : 0);
		return;
	}
}

static void
start(struct craq_op *op)
{
	struct stor_target *t = op->t;
	const struct stor_chain *c = &t->chain;

	if (op->sync_hold) {
		stor_sync_held(t); /* resync checks its chain itself */
		return;
	}
	/* Queued behind another mutation, it may meet a newer chain, or a
	 * lapsed lease: mgmtd may have moved the chain on without us, and our
	 * successors may not have heard yet (as stor_check_chain on arrival). */
	if (op->chain_ver != c->chain_ver || c->pos < 0) {
		finish(op, -CFS_ESTALECHAIN, NULL);
		return;
	}
	if (t->in_cluster && rt_now_ns(t->loop) >= c->lease_until_ns) {
		finish(op, -CFS_ENOTSERVING, NULL);
		return;
	}
	op->tail = c->succ < 0;
	if (!(op->flags & STOR_CW_F_FORWARD))
		head_step(op);
	else if (op->flags & STOR_CW_F_SYNC)
		start_sync_copy(op);
	else
		start_forwarded(op);
}

/* Head: a retried client request is answered from memory (true), or op gets
 * a slot to remember its answer in (false: go on). */
static bool
remembered(struct stor_target *t, struct craq_op *op)
{
	struct stor_dedup *d;

	if (op->client_req == 0)
		return false;
	d = dd_find(t, op->client_req, &op->chunk);
	if (!d)
		d = dd_from_engine(t, op->client_req, &op->chunk, op->kind);
	if (d && d->done) {
		struct disk_chunk_info info = {.ver = d->ver, .len = d->len, .crc = d->crc};

		answer(op, 0, &info);
		return true;
	}
	if (d && d->busy) {
		/* The first attempt is still in the chain: its answer is
		 * remembered when it completes; try again then. */
		rt_reply(op->req, -CFS_EBUSY, NULL);
		return true;
	}
	if (d) {
		/* An earlier attempt failed here or passed us as a forwarded
		 * mutation (we were not head then): its version, if stored, is
		 * re-driven rather than applied again. */
		op->retry = true;
	} else {
		d = dd_claim(t, op->client_req, &op->chunk);
	}
	d->busy = true;
	op->busy = true;
	op->dd = d;
	return false;
}

/* The fields of req that the chain needs, whichever message it is. The three
 * rows share their chain fields by name, not by layout. */
static void
op_fill(struct craq_op *op, struct rt_msg *req, enum craq_kind kind)
{
#define OP_FILL_CHAIN_FIELDS(m)                                                                    \
	do {                                                                                       \
		op->chunk = (m)->chunk;                                                            \
		op->chain_id = (m)->chain_id;                                                      \
		op->chain_ver = (m)->chain_ver;                                                    \
		op->client_req = (m)->client_req;                                                  \
		op->flags = (m)->flags;                                                            \
		op->ver = (m)->update_ver;                                                         \
	} while (0)
	op->req = req;
	op->kind = kind;
	switch (kind) {
	case CRAQ_WRITE:
		OP_FILL_CHAIN_FIELDS(RT_BODY(req, chunk_write));
		op->csize = RT_BODY(req, chunk_write)->chunk_size;
		break;
	case CRAQ_TRUNCATE:
		OP_FILL_CHAIN_FIELDS(RT_BODY(req, chunk_truncate));
		op->csize = RT_BODY(req, chunk_truncate)->chunk_size;
		op->tlen = RT_BODY(req, chunk_truncate)->len;
		break;
	case CRAQ_REMOVE:
		OP_FILL_CHAIN_FIELDS(RT_BODY(req, chunk_remove));
		break;
	}
#undef OP_FILL_CHAIN_FIELDS
}

void
craq_mutate(struct stor_target *t, struct rt_msg *req, enum craq_kind kind)
{
	struct craq_op *op = rt_msg_alloc(req, sizeof(*op));
	int rc;

	if (!op) {
		rt_reply(req, -ENOMEM, NULL);
		return;
	}
	op->t = t;
	op_fill(op, req, kind);
	if (op->flags & STOR_CW_F_FORWARD) {
		/* The head serialized it and chose its version (a resync
		 * removal names the version it drops, 0 for none). */
		if (op->ver == 0 && !(kind == CRAQ_REMOVE && (op->flags & STOR_CW_F_SYNC))) {
			t->rejected++;
			finish(op, -EINVAL, NULL);
			return;
		}
		if (op->client_req != 0 && !(op->flags & STOR_CW_F_SYNC)) {
			op->dd = dd_find(t, op->client_req, &op->chunk);
			if (!op->dd)
				op->dd = dd_claim(t, op->client_req, &op->chunk);
		}
	} else {
		op->ver = 0;
		if (remembered(t, op))
			return;
	}
	/* Queued at every replica: at the head it serializes the chunk's
	 * mutations, at the others it keeps a resync copy and a forwarded
	 * mutation of one chunk from overtaking each other. */
	rc = q_push(t, op);
	if (rc < 0) {
		finish(op, rc, NULL);
		return;
	}
	op->queued = true;
	if (rc == 1)
		start(op);
}

void
craq_write(struct stor_target *t, struct rt_msg *req)
{
	craq_mutate(t, req, CRAQ_WRITE);
}

/* ------------------------------------------------------- re-drive walk */

#define REDRIVE_PAGE	    64u
#define REDRIVE_BUDGET	    4096u /* chunks looked at per step of the walk */
#define REDRIVE_BACKOFF_MIN 50u
#define REDRIVE_BACKOFF_MAX 5000u

static bool
serving_head(const struct stor_target *t)
{
	const struct stor_chain *c = &t->chain;

	return t->in_cluster && !t->stopping && c->pos >= 0 && c->pos == c->head &&
	       c->public_state == CFS_TS_SERVING && rt_now_ns(t->loop) < c->lease_until_ns;
}

/* Queue a re-drive of chunk's leftover pending version behind whatever the
 * chunk has queued (unless a re-drive is last already). */
static void
redrive_chunk(struct stor_target *t, const struct cfs_id128 *id, uint32_t chunk_size)
{
	struct craq_q **pq = q_slot(t, id);
	struct cfs_chunk_write *w;
	struct craq_op *op;
	struct rt_msg *m;
	int rc;

	if (*pq && (*pq)->last->synthetic)
		return;
	m = rt_msg_new(CFS_MSG_CHUNK_WRITE);
	op = m ? rt_msg_alloc(m, sizeof(*op)) : NULL;
	if (!op) {
		rt_msg_free(&m);
		redrive_failed(t, -ENOMEM, true);
		return;
	}
	w = RT_BODY(m, chunk_write);
	w->target = t->id;
	w->chain_id = t->chain.chain_id;
	w->chain_ver = t->chain.chain_ver;
	w->chunk = *id;
	w->chunk_size = chunk_size;
	op->t = t;
	op_fill(op, m, CRAQ_WRITE);
	op->synthetic = true;
	rc = q_push(t, op);
	if (rc < 0) {
		rt_msg_free(&m);
		redrive_failed(t, rc, true);
		return;
	}
	op->queued = true;
	if (rc == 1)
		start(op);
}

/* One step of the walk: up to REDRIVE_BUDGET chunks, then the timer goes on. */
static void
redrive_walk(struct stor_target *t)
{
	struct disk_chunk_info page[REDRIVE_PAGE];
	unsigned seen = 0;
	bool more = true;

	while (more && seen < REDRIVE_BUDGET) {
		int n;

		if (!serving_head(t)) {
			t->redrive_walking = false;
			t->redrive_owed = true;
			return;
		}
		n = disk_list(t->dt, t->redrive_started ? &t->redrive_next : NULL, NULL, page,
			      REDRIVE_PAGE, &more);
		t->redrive_started = true;
		for (int i = 0; i < n; i++) {
			if (page[i].pver != 0)
				redrive_chunk(t, &page[i].id, page[i].chunk_size);
		}
		if (n > 0)
			t->redrive_next = disk_id_next(&page[n - 1].id);
		seen += (unsigned)n;
	}
	if (more) {
		rt_timer_start(&t->redrive_timer, 0, 0);
		return;
	}
	t->redrive_walking = false;
	if (t->redrive_again) {
		t->redrive_again = false;
		redrive_failed(t, -EAGAIN, true);
	}
}

static void
redrive_begin(struct stor_target *t)
{
	if (!serving_head(t)) {
		t->redrive_owed = true;
		return;
	}
	t->redrive_owed = false;
	t->redrive_walking = true;
	t->redrive_started = false;
	t->redrive_again = false;
	redrive_walk(t);
}

static void
redrive_timer(struct rt_timer *timer, void *cb_arg)
{
	struct stor_target *t = cb_arg;

	(void)timer;
	t->redrive_armed = false;
	if (t->redrive_walking)
		redrive_walk(t);
	else
		redrive_begin(t);
}

/* A re-drive failed (typically: the successor has not seen the new chain
 * version yet), or a head's own mutation left its version pending: walk
 * again after a backoff, while we are head. A timer already armed is left
 * be (re-arming on every failure would starve it under steady failures),
 * and only the walk's own failures (walk) grow the backoff: a client's
 * failing writes say nothing of whether the last walk was premature. */
static void
redrive_failed(struct stor_target *t, int rc, bool walk)
{
	if (t->stopping || rc == -CFS_ECANCELED)
		return;
	if (t->redrive_walking) {
		t->redrive_again = true;
		return;
	}
	if (t->redrive_armed)
		return;
	t->redrive_armed = true;
	rt_timer_start(&t->redrive_timer, t->redrive_backoff_ms, 0);
	if (walk)
		t->redrive_backoff_ms = t->redrive_backoff_ms * 2 > REDRIVE_BACKOFF_MAX
						? REDRIVE_BACKOFF_MAX
						: t->redrive_backoff_ms * 2;
}

static void
redrive_succeeded(struct stor_target *t)
{
	t->redrive_backoff_ms = REDRIVE_BACKOFF_MIN;
}

/* ------------------------------------------------------- resync's turn */

int
craq_sync_hold(struct stor_target *t, const struct cfs_id128 *id)
{
	struct rt_msg *m = rt_msg_new(CFS_MSG_CHUNK_QUERY); /* a carrier for the op */
	struct craq_op *op = m ? rt_msg_alloc(m, sizeof(*op)) : NULL;
	int rc;

	if (!op) {
		rt_msg_free(&m);
		return -ENOMEM;
	}
	op->t = t;
	op->req = m;
	op->chunk = *id;
	op->sync_hold = true;
	rc = q_push(t, op);
	if (rc < 0) {
		rt_msg_free(&m);
		return rc;
	}
	op->queued = true;
	t->sync_hold = op;
	if (rc == 1)
		start(op);
	return 0;
}

void
craq_sync_release(struct stor_target *t)
{
	struct craq_op *op = t->sync_hold, *next = NULL;
	struct craq_q **pq, *q;
	struct rt_msg *m;

	if (!op)
		return;
	t->sync_hold = NULL;
	pq = q_slot(t, &op->chunk);
	q = *pq;
	if (q && q->first == op) {
		next = q_pop(t, &op->chunk);
	} else if (q) {
		/* Still waiting (the walk stopped): leave the queue. */
		struct craq_op *prev = q->first;

		while (prev && prev->next != op)
			prev = prev->next;
		if (prev) {
			prev->next = op->next;
			if (q->last == op)
				q->last = prev;
		}
	}
	m = op->req; /* op lives in its arena */
	rt_msg_free(&m);
	if (!t->stopping) {
		if (next)
			start(next);
		return;
	}
	/* Our actor is stopping: what waited behind the hold never starts, and
	 * craq_fini() would take the first of the queue for one in flight. */
	while (next) {
		struct craq_op *after = q_pop(t, &next->chunk);

		refuse(next);
		next = after;
	}
}

void
craq_routing_changed(struct stor_target *t, uint32_t old_chain_ver, bool was_head)
{
	if (!serving_head(t) ||
	    (was_head && old_chain_ver == t->chain.chain_ver && !t->redrive_owed))
		return;
	t->redrive_backoff_ms = REDRIVE_BACKOFF_MIN;
	redrive_begin(t);
}

int
craq_init(struct stor_target *t)
{
	rt_timer_init(t->loop, &t->redrive_timer, redrive_timer, t);
	t->redrive_backoff_ms = REDRIVE_BACKOFF_MIN;
	if (!t->in_cluster)
		return 0;
	t->dedup = calloc(STOR_DEDUP_SLOTS, sizeof(*t->dedup));
	t->dedup_hash = calloc(STOR_DEDUP_SLOTS, sizeof(*t->dedup_hash));
	if (!t->dedup || !t->dedup_hash) {
		free(t->dedup);
		free(t->dedup_hash);
		t->dedup = NULL;
		t->dedup_hash = NULL;
		return -ENOMEM;
	}
	return 0;
}

void
craq_fini(struct stor_target *t)
{
	rt_timer_stop(&t->redrive_timer);
	for (unsigned b = 0; b < STOR_QBUCKETS; b++) {
		while (t->q[b]) {
			struct craq_q *q = t->q[b];
			struct craq_op *op = q->first->next;

			/* The first is in the engine or the chain and answers from
			 * there; the waiting ones never started. */
			while (op) {
				struct craq_op *next = op->next;

				refuse(op);
				op = next;
			}
			t->q[b] = q->next;
			free(q);
		}
	}
	if (t->sync_hold) {
		/* First of its queue: a walk step in flight, which ends with
		 * the actor. */
		struct rt_msg *m = t->sync_hold->req;

		t->sync_hold = NULL;
		rt_msg_free(&m);
	}
	free(t->dedup);
	free(t->dedup_hash);
	t->dedup = NULL;
	t->dedup_hash = NULL;
}

// SPDX-License-Identifier: MIT
/*
 * CRAQ chain replication of chunk writes (cluster mode; DESIGN.md section 3).
 * Owns the path of a chunk_write once write.c has checked it: the head's
 * per-chunk write queue, the head's memory of client requests (exactly-once
 * retries), storing the update pending, forwarding it to the successor and
 * committing it when the successor's answer comes back.
 *
 * The head serializes the writes of one chunk: only one is in the chain at a
 * time, the others wait in the chunk's queue, so the engine's rule "one pending
 * version per chunk" holds on every replica and the head's next version is
 * always committed + 1 (the engine assigns it: update_ver 0). The forwarded
 * write is a chunk_write with STOR_CW_F_FORWARD and update_ver = that version,
 * carrying the same payload buffers (references, no copy). The tail writes with
 * DISK_W_COMMIT and answers; each replica commits its pending version when the
 * answer passes it, and the head answers the client. A replica whose successor
 * fails drops its pending version and passes the error up: the client retries
 * (with the same client_req), after mgmtd has repaired the chain if needed.
 *
 * Every replica queues the writes of a chunk the same way: at the others
 * it keeps a resync copy (STOR_CW_F_SYNC, resync.c) from overtaking a
 * forwarded write of the same chunk.
 *
 * Every op lives in its request's arena and dies with the reply.
 */
#define RT_LOG_SUBSYS "storage"
#include "actors/storage/storage_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chainfs/cluster.h"

struct craq_op {
	struct stor_target *t;
	struct rt_msg *req;
	struct craq_op *next;  /* head: the next write of the chunk's queue */
	struct stor_dedup *dd; /* head: the slot remembering client_req, or NULL */
	bool queued;	       /* head: owns its chunk's queue while in flight */
	bool tail;	       /* stored with DISK_W_COMMIT: nothing to forward */
	uint64_t ver;	       /* the version stored here (pending unless tail) */
	int fwd_rc;	       /* the successor's error, while the pending one is dropped */
	uint32_t plen;	       /* length of our pending version */
	struct disk_read rd;   /* forward_whole: our pending version */
};

/* The writes of one chunk at the head: first is in the chain, the rest wait. */
struct craq_q {
	struct craq_q *next; /* bucket chain */
	struct cfs_id128 id;
	struct craq_op *first, *last;
};

static void start(struct craq_op *op);

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
	const struct cfs_id128 *id = &RT_BODY(op->req, chunk_write)->chunk;
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

static struct stor_dedup *
dd_find(struct stor_target *t, uint64_t client_req, const struct cfs_id128 *chunk)
{
	for (uint32_t i = 0; i < STOR_DEDUP_SLOTS; i++) {
		struct stor_dedup *d = &t->dedup[i];

		if (d->client_req == client_req && memcmp(&d->chunk, chunk, sizeof(*chunk)) == 0)
			return d;
	}
	return NULL;
}

/* The oldest slot is reused; an op still in flight whose slot was taken just
 * is not remembered (dd_ours). */
static struct stor_dedup *
dd_claim(struct stor_target *t, uint64_t client_req, const struct cfs_id128 *chunk)
{
	struct stor_dedup *d = &t->dedup[t->dedup_next];

	t->dedup_next = (t->dedup_next + 1) % STOR_DEDUP_SLOTS;
	*d = (struct stor_dedup){.client_req = client_req, .chunk = *chunk};
	return d;
}

static bool
dd_ours(const struct stor_dedup *d, const struct cfs_chunk_write *w)
{
	return d && d->client_req == w->client_req &&
	       memcmp(&d->chunk, &w->chunk, sizeof(w->chunk)) == 0;
}

/* ---------------------------------------------------------------- answer */

static void
answer(struct stor_target *t, struct rt_msg *req, int rc, uint64_t ver, uint32_t len, uint32_t crc)
{
	struct rt_msg *resp = rt_msg_new(CFS_MSG_CHUNK_WRITE_RESP);

	if (resp) {
		struct cfs_chunk_write_resp *r = RT_BODY(resp, chunk_write_resp);

		r->chain_ver = t->chain.chain_ver;
		if (rc == 0) {
			r->version = ver;
			r->len = len;
			r->crc = crc;
		}
	} else if (rc == 0) {
		/* Stored, but we cannot say which version: the client retries with
		 * the same client_req and gets the remembered answer. */
		rc = -ENOMEM;
	}
	rt_reply(req, rc, resp);
}

/* The end of op at this replica: remember and answer, then start the chunk's
 * next queued write. info is NULL on error. */
static void
finish(struct craq_op *op, int rc, const struct disk_chunk_info *info)
{
	struct stor_target *t = op->t;
	const struct cfs_chunk_write *w = RT_BODY(op->req, chunk_write);
	struct craq_op *next = NULL;

	/* Canceled: our actor is stopping, which the node logs itself. */
	if (rc != 0 && rc != -CFS_ECANCELED)
		stor_log_fail(t, "write", &w->chunk, rc);
	if (dd_ours(op->dd, w)) {
		if (rc == 0) {
			op->dd->done = true;
			op->dd->ver = info->ver;
			op->dd->len = info->len;
			op->dd->crc = info->crc;
		} else {
			/* Nothing was applied: a retry must run again. */
			op->dd->client_req = 0;
		}
	}
	if (op->queued)
		next = q_pop(t, &w->chunk);
	if (rc == 0)
		answer(t, op->req, 0, info->ver, info->len, info->crc);
	else
		answer(t, op->req, rc, 0, 0, 0);
	/* op is gone with its request. */
	if (next)
		start(next);
}

/* ------------------------------------------------------------ the chain */

static void
committed(void *cb_arg, int rc, const struct disk_chunk_info *info)
{
	finish(cb_arg, rc, info);
}

static void
aborted(void *cb_arg, int rc, const struct disk_chunk_info *info)
{
	struct craq_op *op = cb_arg;

	(void)rc;
	(void)info;
	finish(op, op->fwd_rc, NULL);
}

/* The successor failed: drop our pending version, then pass its error up. */
static void
undo(struct craq_op *op, int rc)
{
	const struct cfs_chunk_write *w = RT_BODY(op->req, chunk_write);

	op->fwd_rc = rc;
	if (disk_abort(op->t->dt, &w->chunk, op->ver, aborted, op) != 0)
		finish(op, rc, NULL);
}

static void
forwarded(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct craq_op *op = cb_arg;
	const struct cfs_chunk_write *w = RT_BODY(op->req, chunk_write);

	(void)self;
	if (rc == 0 && resp && RT_BODY(resp, chunk_write_resp)->version != op->ver)
		rc = -EIO; /* the successor stored another version: a bug, never commit */
	if (rc != 0) {
		undo(op, rc);
		return;
	}
	rc = disk_commit(op->t->dt, &w->chunk, op->ver, committed, op);
	if (rc != 0)
		finish(op, rc, NULL);
}

/* Our pending version, read whole: send it as a resync copy. */
static void
whole_read(void *cb_arg, struct disk_read *dr, unsigned n)
{
	struct craq_op *op = cb_arg;
	struct stor_target *t = op->t;
	const struct stor_chain *c = &t->chain;
	const struct cfs_chunk_write *w = RT_BODY(op->req, chunk_write);
	struct cfs_chunk_write *f;
	struct rt_msg *m = NULL;
	int rc = dr->rc;

	(void)n;
	if (rc == 0 && (w->chain_ver != c->chain_ver || c->succ < 0))
		rc = -CFS_ESTALECHAIN;
	if (rc == 0 && dr->ver != op->ver)
		rc = -EIO;
	if (rc == 0) {
		m = rt_msg_new(CFS_MSG_CHUNK_WRITE);
		rc = m ? 0 : -ENOMEM;
	}
	if (rc == 0) {
		f = RT_BODY(m, chunk_write);
		*f = *w;
		f->target = c->members[c->succ].target;
		f->offset = 0;
		f->len = dr->data.len;
		f->crc = dr->crc;
		f->update_ver = op->ver;
		f->flags |= STOR_CW_F_FORWARD | STOR_CW_F_SYNC;
		if (dr->data.len)
			rc = rt_msg_add_iov(m, dr->data.buf, dr->data.off, dr->data.len);
	}
	if (rc == 0)
		rc = rt_call(t->self, c->members[c->succ].addr, m, 0, forwarded, op);
	if (dr->data.buf)
		rt_buf_put(&dr->data.buf);
	if (rc != 0) {
		rt_msg_free(&m);
		undo(op, rc);
	}
}

/*
 * A syncing successor may lack the chunk's earlier versions (not copied yet),
 * so a partial write could not be merged there: it gets our whole pending
 * version as a resync copy instead, installed as is at the same version.
 */
static void
forward_whole(struct craq_op *op)
{
	const struct cfs_chunk_write *w = RT_BODY(op->req, chunk_write);
	int rc;

	op->rd = (struct disk_read){
		.id = w->chunk,
		.len = op->plen,
		.flags = DISK_R_PENDING,
	};
	rc = disk_read(op->t->dt, &op->rd, 1, whole_read, op);
	if (rc != 0)
		undo(op, rc);
}

static void
forward(struct craq_op *op)
{
	struct stor_target *t = op->t;
	const struct stor_chain *c = &t->chain;
	struct rt_msg *req = op->req;
	const struct cfs_chunk_write *w = RT_BODY(req, chunk_write);
	struct cfs_chunk_write *f;
	struct rt_msg *m;
	int rc;

	/* The chain may have changed while we stored: its new version sends
	 * the client back to mgmtd's routing. */
	if (w->chain_ver != c->chain_ver || c->pos < 0 || c->succ < 0) {
		undo(op, -CFS_ESTALECHAIN);
		return;
	}
	if (c->members[c->succ].public_state == CFS_TS_SYNCING) {
		forward_whole(op);
		return;
	}
	m = rt_msg_new(CFS_MSG_CHUNK_WRITE);
	if (!m) {
		undo(op, -ENOMEM);
		return;
	}
	f = RT_BODY(m, chunk_write);
	*f = *w; /* scalars and the id only */
	f->target = c->members[c->succ].target;
	f->update_ver = op->ver;
	f->flags |= STOR_CW_F_FORWARD;
	for (uint32_t i = 0; i < req->iovcnt; i++) {
		rc = rt_msg_add_iov(m, req->iov[i].buf, req->iov[i].off, req->iov[i].len);
		if (rc != 0)
			goto out_msg;
	}
	rc = rt_call(t->self, c->members[c->succ].addr, m, 0, forwarded, op);
	if (rc != 0)
		goto out_msg;
	return;

out_msg:
	rt_msg_free(&m);
	undo(op, rc);
}

static void
stored(void *cb_arg, int rc, const struct disk_chunk_info *info)
{
	struct craq_op *op = cb_arg;

	if (rc != 0) {
		finish(op, rc, NULL);
		return;
	}
	if (op->tail) {
		finish(op, 0, info);
		return;
	}
	op->ver = info->pver;
	op->plen = info->plen;
	forward(op);
}

/*
 * A resync copy from our predecessor: the whole committed content of a chunk
 * at version update_ver, installed as committed (DISK_W_FORCE, REPLACE) unless
 * we already hold it or a newer version (a forwarded write that overtook the
 * copy: it ran before it in this chunk's queue). Never forwarded on.
 */
static void
start_sync_copy(struct craq_op *op)
{
	struct stor_target *t = op->t;
	struct rt_msg *req = op->req;
	const struct cfs_chunk_write *w = RT_BODY(req, chunk_write);
	struct disk_chunk_info info;
	struct disk_write dw;
	int rc;

	op->tail = true;
	if (w->offset != 0) {
		finish(op, -EINVAL, NULL);
		return;
	}
	rc = disk_query(t->dt, &w->chunk, &info);
	if (rc == 0 && info.pver == 0 &&
	    (info.ver > op->ver ||
	     (info.ver == op->ver && info.crc == w->crc && info.len == w->len))) {
		finish(op, 0, &info);
		return;
	}
	dw = stor_disk_write_of(req, op->ver, DISK_W_FORCE | DISK_W_REPLACE);
	rc = disk_write(t->dt, &dw, stored, op);
	if (rc != 0)
		finish(op, rc, NULL);
}

static void
start(struct craq_op *op)
{
	struct stor_target *t = op->t;
	const struct stor_chain *c = &t->chain;
	struct rt_msg *req = op->req;
	const struct cfs_chunk_write *w = RT_BODY(req, chunk_write);
	struct disk_write dw;
	int rc;

	/* Queued behind another write, it may meet a newer chain. */
	if (w->chain_ver != c->chain_ver || c->pos < 0) {
		finish(op, -CFS_ESTALECHAIN, NULL);
		return;
	}
	op->tail = c->succ < 0;
	if (w->flags & STOR_CW_F_SYNC) {
		start_sync_copy(op);
		return;
	}
	/* op->ver at the head is 0: the engine's committed + 1. */
	dw = stor_disk_write_of(req, op->ver, op->tail ? DISK_W_COMMIT : 0);
	rc = disk_write(t->dt, &dw, stored, op);
	if (rc != 0)
		finish(op, rc, NULL);
}

/* Head: a retried client request is answered from memory (true), or op gets
 * a slot to remember its answer in (false: go on). */
static bool
remembered(struct stor_target *t, struct craq_op *op)
{
	const struct cfs_chunk_write *w = RT_BODY(op->req, chunk_write);
	struct stor_dedup *d;

	if (w->client_req == 0)
		return false;
	d = dd_find(t, w->client_req, &w->chunk);
	if (d && d->done) {
		answer(t, op->req, 0, d->ver, d->len, d->crc);
		return true;
	}
	if (d) {
		/* The first attempt is still in the chain: its answer is
		 * remembered when it completes; try again then. */
		rt_reply(op->req, -CFS_EBUSY, NULL);
		return true;
	}
	op->dd = dd_claim(t, w->client_req, &w->chunk);
	return false;
}

void
craq_write(struct stor_target *t, struct rt_msg *req)
{
	const struct cfs_chunk_write *w = RT_BODY(req, chunk_write);
	struct craq_op *op = rt_msg_alloc(req, sizeof(*op));
	int rc;

	if (!op) {
		stor_log_fail(t, "write", &w->chunk, -ENOMEM);
		rt_reply(req, -ENOMEM, NULL);
		return;
	}
	op->t = t;
	op->req = req;
	if (w->flags & STOR_CW_F_FORWARD) {
		/* The head serialized it and chose its version. */
		op->ver = w->update_ver;
		if (op->ver == 0) {
			t->rejected++;
			finish(op, -EINVAL, NULL);
			return;
		}
	} else if (remembered(t, op)) {
		return;
	}
	/* Queued at every replica: at the head it serializes the chunk's
	 * writes, at the others it keeps a resync copy and a forwarded write of
	 * one chunk from overtaking each other. */
	rc = q_push(t, op);
	if (rc < 0) {
		finish(op, rc, NULL);
		return;
	}
	op->queued = true;
	if (rc == 1)
		start(op);
}

int
craq_init(struct stor_target *t)
{
	if (!t->in_cluster)
		return 0;
	t->dedup = calloc(STOR_DEDUP_SLOTS, sizeof(*t->dedup));
	return t->dedup ? 0 : -ENOMEM;
}

void
craq_fini(struct stor_target *t)
{
	for (unsigned b = 0; b < STOR_QBUCKETS; b++) {
		while (t->q[b]) {
			struct craq_q *q = t->q[b];
			struct craq_op *op = q->first->next;

			/* The first is in the engine or the chain and answers from
			 * there; the waiting ones never started. */
			while (op) {
				struct craq_op *next = op->next;

				rt_reply(op->req, -CFS_ENOTSERVING, NULL);
				op = next;
			}
			t->q[b] = q->next;
			free(q);
		}
	}
	free(t->dedup);
	t->dedup = NULL;
}

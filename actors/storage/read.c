// SPDX-License-Identifier: MIT
/*
 * chunk_read: many (chunk, offset, len) reads in one request, served by one
 * engine batch (one io_submit for all of them) and answered once every read
 * has completed. The reply carries one result per requested read, in request
 * order, and the payload is the concatenation of the bytes of the successful
 * ones: one iov per result, each referencing the engine's own aligned buffer,
 * so the bytes read from disk are never copied before the socket.
 *
 * A read that fails its own checks (bad chunk id, range overflowing the
 * largest chunk) gets its error in its result and never reaches the engine;
 * the others still run. Errors of the whole request (wrong target, no reads,
 * too many, reply too large) refuse it before anything is read.
 *
 * In a cluster, reads are CRAQ's apportioned queries: a chunk with no pending
 * version here is clean and served at once; for one with a pending version
 * (a write is going down the chain) the tail is asked which version it has
 * committed (chunk_query), and that version is served, committed or pending,
 * both kept by the engine. A remove under way is a pending version too (a
 * tombstone: craq.c stores it before forwarding it), so it is asked about the
 * same way: the tail's "no such chunk" is the answer once the remove has
 * passed it. The tail itself and RT_MSG_F_RELAXED reads serve the local
 * committed version without asking.
 */
#define RT_LOG_SUBSYS "storage"
#include "actors/storage/storage_internal.h"

#include <errno.h>

struct stor_read {
	struct stor_target *t;
	struct rt_msg *req;
	struct rt_msg *resp;
	struct cfs_chunk_io_result *res; /* resp's results, one per request io */
	struct disk_read *dr;		 /* the reads given to the engine */
	uint32_t *which;		 /* dr[k] answers request io which[k] */
	uint32_t nd;
	/* apportioned queries: the tail's answer for dr[k] */
	struct stor_ask *ask;
	uint32_t waiting;
};

struct stor_ask {
	struct stor_read *rd;
	bool asked;
	int rc;
	uint64_t committed; /* at the tail */
};

static void
read_done(void *cb_arg, struct disk_read *dr, unsigned n)
{
	struct stor_read *rd = cb_arg;
	const struct cfs_chunk_read *m = RT_BODY(rd->req, chunk_read);
	struct rt_msg *resp = rd->resp;

	for (unsigned k = 0; k < n; k++) {
		struct cfs_chunk_io_result *r = &rd->res[rd->which[k]];
		struct disk_read *d = &dr[k];
		int rc = d->rc;

		if (rc == 0 && d->data.len > 0)
			rc = rt_msg_add_iov(resp, d->data.buf, d->data.off, d->data.len);
		if (d->data.buf)
			rt_buf_put(&d->data.buf);
		r->rc = rc;
		if (rc == 0) {
			r->len = d->data.len;
			r->crc = d->crc;
			r->version = d->ver;
		}
		/* The engine logs checksum errors itself (with target and chunk). */
		if (rc != 0 && rc != -CFS_ECHECKSUM)
			stor_log_fail(rd->t, "read", &m->ios[rd->which[k]].chunk, rc);
	}
	RT_BODY(resp, chunk_read_resp)->chain_ver = rd->t->chain.chain_ver;
	rt_reply(rd->req, 0, resp);
}

/* Hand the reads to the engine, or answer when none is left. */
static void
read_submit(struct stor_read *rd)
{
	int rc;

	if (rd->nd == 0) {
		/* Nothing valid to read: the per-read errors are the answer. */
		RT_BODY(rd->resp, chunk_read_resp)->chain_ver = rd->t->chain.chain_ver;
		rt_reply(rd->req, 0, rd->resp);
		return;
	}
	rc = disk_read(rd->t->dt, rd->dr, rd->nd, read_done, rd);
	if (rc != 0) {
		stor_log_fail(rd->t, "read", NULL, rc);
		rt_msg_free(&rd->resp);
		rt_reply(rd->req, rc, NULL);
	}
}

/* Every tail answer is in: pick each asked read's version, drop the ones that
 * cannot be served (their result gets the error), then read. */
static void
asked_all(struct stor_read *rd)
{
	uint32_t kept = 0;

	for (uint32_t k = 0; k < rd->nd; k++) {
		struct stor_ask *a = &rd->ask[k];
		struct disk_chunk_info info;
		int rc = a->rc;

		if (a->asked && rc == 0) {
			/* Decided now, on our loop, right before the engine takes the
			 * batch: the local state cannot move in between. */
			rc = disk_query(rd->t->dt, &rd->dr[k].id, &info);
			if (rc == 0 && info.ver == a->committed)
				rd->dr[k].flags = 0;
			else if (rc == 0 && info.pver != 0 && info.pver == a->committed)
				rd->dr[k].flags = DISK_R_PENDING;
			else if (rc == 0)
				rc = -CFS_EBUSY; /* the chain moved meanwhile: retry */
		}
		if (rc != 0) {
			rd->res[rd->which[k]].rc = rc;
			stor_log_fail(rd->t, "read", &rd->dr[k].id, rc);
			continue;
		}
		rd->dr[kept] = rd->dr[k];
		rd->which[kept++] = rd->which[k];
	}
	rd->nd = kept;
	read_submit(rd);
}

static void
tail_answered(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct stor_ask *a = cb_arg;
	struct stor_read *rd = a->rd;

	(void)self;
	a->rc = rc;
	if (rc == 0)
		a->committed = RT_BODY(resp, chunk_query_resp)->committed;
	if (--rd->waiting == 0)
		asked_all(rd);
}

/* Ask the tail about every read of a chunk with a pending version here; the
 * reads go to the engine once all answers are in (or at once if none). */
static void
read_ask_tail(struct stor_read *rd)
{
	struct stor_target *t = rd->t;
	const struct cfs_chain_member *tail = &t->chain.members[t->chain.rtail];

	rd->ask = rt_msg_alloc(rd->req, rd->nd * sizeof(*rd->ask));
	if (!rd->ask) {
		rt_msg_free(&rd->resp);
		rt_reply(rd->req, -ENOMEM, NULL);
		return;
	}
	/* Held until every call is placed, so no answer completes it early. */
	rd->waiting = 1;
	for (uint32_t k = 0; k < rd->nd; k++) {
		struct stor_ask *a = &rd->ask[k];
		struct disk_chunk_info info;
		struct rt_msg *q;
		int rc;

		a->rd = rd;
		/* Clean (or unknown: the engine says so) unless a version is
		 * pending here (a remove under way is a pending tombstone). */
		if (disk_query(t->dt, &rd->dr[k].id, &info) != 0 || info.pver == 0)
			continue;
		a->asked = true;
		q = rt_msg_new(CFS_MSG_CHUNK_QUERY);
		if (!q) {
			a->rc = -ENOMEM;
			continue;
		}
		RT_BODY(q, chunk_query)->target = tail->target;
		RT_BODY(q, chunk_query)->chunk = rd->dr[k].id;
		RT_BODY(q, chunk_query)->chain_ver = t->chain.chain_ver;
		rd->waiting++;
		rc = rt_call(t->self, tail->addr, q, 0, tail_answered, a);
		if (rc != 0) {
			rd->waiting--;
			rt_msg_free(&q);
			a->rc = rc;
		}
	}
	if (--rd->waiting == 0)
		asked_all(rd);
}

int
stor_on_chunk_read(struct rt_actor *self, struct rt_msg *req)
{
	struct stor_target *t = rt_actor_state(self);
	const struct cfs_chunk_read *m = RT_BODY(req, chunk_read);
	struct stor_read *rd;
	uint64_t total = 0;
	int rc;

	rc = stor_check_chain(t, m->target, m->chain_ver, STOR_USE_READ);
	if (rc == -CFS_ESTALECHAIN) {
		struct rt_msg *resp = rt_msg_new(CFS_MSG_CHUNK_READ_RESP);

		t->rejected++;
		stor_log_fail(t, "read", NULL, rc);
		if (resp)
			RT_BODY(resp, chunk_read_resp)->chain_ver = t->chain.chain_ver;
		rt_reply(req, rc, resp);
		return 0;
	}
	if (rc == 0 && (m->ios_count == 0 || m->ios_count > t->max_reads))
		rc = -EINVAL;
	if (rc != 0) {
		t->rejected++;
		stor_log_fail(t, "read", NULL, rc);
		return rc;
	}
	for (uint32_t i = 0; i < m->ios_count; i++)
		total += m->ios[i].len;
	if (total > t->max_reply) {
		t->rejected++;
		stor_log_fail(t, "read", NULL, -CFS_ETOOBIG);
		return -CFS_ETOOBIG;
	}

	rd = rt_msg_alloc(req, sizeof(*rd));
	if (!rd)
		return -ENOMEM;
	rd->t = t;
	rd->req = req;
	rd->resp = rt_msg_new(CFS_MSG_CHUNK_READ_RESP);
	if (!rd->resp)
		return -ENOMEM;
	rd->res = rt_msg_alloc(rd->resp, m->ios_count * sizeof(*rd->res));
	rd->dr = rt_msg_alloc(req, m->ios_count * sizeof(*rd->dr));
	rd->which = rt_msg_alloc(req, m->ios_count * sizeof(*rd->which));
	if (!rd->res || !rd->dr || !rd->which) {
		rc = -ENOMEM;
		goto out_resp;
	}
	RT_BODY(rd->resp, chunk_read_resp)->results = rd->res;
	RT_BODY(rd->resp, chunk_read_resp)->results_count = m->ios_count;

	for (uint32_t i = 0; i < m->ios_count; i++) {
		const struct cfs_chunk_io *io = &m->ios[i];

		if (!stor_id_valid(&io->chunk) || (uint64_t)io->offset + io->len > DISK_MAX_CHUNK) {
			rd->res[i].rc = -EINVAL;
			t->rejected++;
			stor_log_fail(t, "read", &io->chunk, -EINVAL);
			continue;
		}
		rd->dr[rd->nd] = (struct disk_read){
			.id = io->chunk,
			.off = io->offset,
			.len = io->len,
		};
		rd->which[rd->nd++] = i;
	}
	if (t->in_cluster && rd->nd > 0 && !(req->flags & RT_MSG_F_RELAXED) &&
	    t->chain.pos != t->chain.rtail) {
		read_ask_tail(rd);
		return 0;
	}
	read_submit(rd);
	return 0;

out_resp:
	rt_msg_free(&rd->resp);
	return rc;
}

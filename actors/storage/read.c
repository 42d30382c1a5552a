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
	rt_reply(rd->req, 0, resp);
}

int
stor_on_chunk_read(struct rt_actor *self, struct rt_msg *req)
{
	struct stor_target *t = rt_actor_state(self);
	const struct cfs_chunk_read *m = RT_BODY(req, chunk_read);
	struct stor_read *rd;
	uint64_t total = 0;
	int rc;

	rc = stor_check_target(t, m->target, m->chain_ver);
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
	if (rd->nd == 0) {
		/* Nothing valid to read: the per-read errors are the answer. */
		rt_reply(req, 0, rd->resp);
		return 0;
	}
	rc = disk_read(t->dt, rd->dr, rd->nd, read_done, rd);
	if (rc != 0) {
		stor_log_fail(t, "read", NULL, rc);
		goto out_resp;
	}
	return 0;

out_resp:
	rt_msg_free(&rd->resp);
	return rc;
}

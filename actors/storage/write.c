// SPDX-License-Identifier: MIT
/*
 * The storage actor's mutations: chunk_write, chunk_remove, chunk_truncate.
 * Each handler checks its arguments, hands the operation to the chunk engine
 * and answers from the engine's completion, which comes only once the new
 * state is durable (data and index). A standalone target commits every
 * mutation at once (the single replica is head and tail); the chain fields are
 * checked (chain_ver must be 0). In a cluster (stor_config.in_cluster) the requests are
 * checked against the chain nodectl pushed and go to craq.c, which replicates
 * them down the chain (a request with STOR_CW_F_FORWARD in its flags comes
 * from our predecessor).
 *
 * The write payload is never copied here: the request's iovs (aligned buffers
 * filled by the transport) go to the engine, which takes its own references
 * and verifies the client's CRC32C over them before storing anything, so the
 * CRC is checked exactly once, there.
 *
 * Per-operation context lives in the request's arena and dies with it when
 * rt_reply consumes the request: nothing to free on any path.
 */
#define RT_LOG_SUBSYS "storage"
#include "actors/storage/storage_internal.h"

#include <errno.h>

struct stor_mut {
	struct stor_target *t;
	struct rt_msg *req;
	uint64_t removed_ver; /* chunk_remove: the committed version it drops */
};

static struct stor_mut *
mut_new(struct stor_target *t, struct rt_msg *req)
{
	struct stor_mut *op = rt_msg_alloc(req, sizeof(*op));

	if (op) {
		op->t = t;
		op->req = req;
	}
	return op;
}

/* Count and log a request that fails before or in the engine; the handler then
 * returns rc and the runtime answers it. */
static int
refuse(struct stor_target *t, const char *what, const struct cfs_id128 *chunk, int rc)
{
	if (rc == -EINVAL || rc == -CFS_ENOACTOR || rc == -CFS_ESTALECHAIN ||
	    rc == -CFS_ENOTSERVING || rc == -EOPNOTSUPP)
		t->rejected++;
	stor_log_fail(t, what, chunk, rc);
	return rc;
}

/* ------------------------------------------------------------------- write */

static void
write_done(void *cb_arg, int rc, const struct disk_chunk_info *info)
{
	struct stor_mut *op = cb_arg;
	struct rt_msg *req = op->req;
	const struct cfs_chunk_write *w = RT_BODY(req, chunk_write);
	struct rt_msg *resp = NULL;

	if (rc != 0) {
		stor_log_fail(op->t, "write", &w->chunk, rc);
		rt_reply(req, rc, NULL);
		return;
	}
	resp = rt_msg_new(CFS_MSG_CHUNK_WRITE_RESP);
	if (resp) {
		struct cfs_chunk_write_resp *r = RT_BODY(resp, chunk_write_resp);

		r->version = info->ver;
		r->len = info->len;
		r->crc = info->crc;
		r->chain_ver = 0;
	} else {
		/* Stored and durable, but we cannot say which version: the client
		 * sees -ENOMEM and retries, which writes the same bytes again. */
		rc = -ENOMEM;
	}
	rt_reply(req, rc, resp);
}

/* SYNC and WHOLE mean something only between replicas, with FORWARD: a head
 * that took them from a client would pass them on down the chain, where the
 * payload is installed as is, and the replicas would differ for good. */
static bool
flags_valid(uint32_t flags)
{
	if (flags & ~(STOR_CW_F_FORWARD | STOR_CW_F_SYNC | STOR_CW_F_WHOLE))
		return false;
	return flags == 0 || (flags & STOR_CW_F_FORWARD);
}

int
stor_on_chunk_write(struct rt_actor *self, struct rt_msg *req)
{
	struct stor_target *t = rt_actor_state(self);
	const struct cfs_chunk_write *w = RT_BODY(req, chunk_write);
	struct disk_write dw;
	struct stor_mut *op;
	int rc;

	rc = stor_check_chain(t, w->target, w->chain_ver,
			      (w->flags & STOR_CW_F_FORWARD) ? STOR_USE_FORWARD : STOR_USE_WRITE);
	if (rc == -CFS_ESTALECHAIN) {
		/* Name the current version so the client knows how far behind it is. */
		struct rt_msg *resp = rt_msg_new(CFS_MSG_CHUNK_WRITE_RESP);

		refuse(t, "write", &w->chunk, rc);
		if (resp)
			RT_BODY(resp, chunk_write_resp)->chain_ver = t->chain.chain_ver;
		rt_reply(req, rc, resp);
		return 0;
	}
	if (rc != 0)
		return refuse(t, "write", &w->chunk, rc);
	/* The payload must be exactly the bytes the body announces: a short one
	 * would make the engine read past it, a long one means the client and we
	 * disagree about the frame. */
	if (!stor_id_valid(&w->chunk) || !flags_valid(w->flags) || w->chunk_size == 0 ||
	    w->chunk_size > DISK_MAX_CHUNK || (uint64_t)w->offset + w->len > w->chunk_size ||
	    req->plen != w->len)
		return refuse(t, "write", &w->chunk, -EINVAL);
	if (t->in_cluster) {
		craq_write(t, req);
		return 0;
	}
	op = mut_new(t, req);
	if (!op)
		return refuse(t, "write", &w->chunk, -ENOMEM);
	dw = stor_disk_write_of(req, w->update_ver, DISK_W_COMMIT);
	rc = disk_write(t->dt, &dw, write_done, op);
	if (rc != 0)
		return refuse(t, "write", &w->chunk, rc);
	return 0;
}

/* ------------------------------------------------------------------ remove */

static void
remove_done(void *cb_arg, int rc, const struct disk_chunk_info *info)
{
	struct stor_mut *op = cb_arg;
	struct rt_msg *req = op->req;
	struct rt_msg *resp = NULL;

	(void)info;
	if (rc != 0) {
		stor_log_fail(op->t, "remove", &RT_BODY(req, chunk_remove)->chunk, rc);
		rt_reply(req, rc, NULL);
		return;
	}
	resp = rt_msg_new(CFS_MSG_CHUNK_REMOVE_RESP);
	if (resp)
		RT_BODY(resp, chunk_remove_resp)->version = op->removed_ver;
	/* Without a response body the client still learns rc 0. */
	rt_reply(req, 0, resp);
}

/* Checks of a standalone remove or truncate: an existing chunk. Fills *info
 * with the chunk's state. */
static int
standalone_check(struct stor_target *t, uint32_t target, uint32_t chain_ver,
		 const struct cfs_id128 *id, struct disk_chunk_info *info)
{
	int rc = stor_check_chain(t, target, chain_ver, STOR_USE_WRITE);

	if (rc != 0)
		return rc;
	if (!stor_id_valid(id))
		return -EINVAL;
	return disk_query(t->dt, id, info);
}

/* Cluster mode: the chain checks of a remove or truncate, then craq.c. */
static int
to_chain(struct stor_target *t, struct rt_msg *req, const char *what, uint32_t target,
	 uint32_t chain_ver, const struct cfs_id128 *id, uint32_t flags, enum craq_kind kind)
{
	int rc = stor_check_chain(t, target, chain_ver,
				  (flags & STOR_CW_F_FORWARD) ? STOR_USE_FORWARD : STOR_USE_WRITE);

	if (rc == 0 && (!stor_id_valid(id) || !flags_valid(flags)))
		rc = -EINVAL;
	if (rc != 0)
		return refuse(t, what, id, rc);
	craq_mutate(t, req, kind);
	return 0;
}

int
stor_on_chunk_remove(struct rt_actor *self, struct rt_msg *req)
{
	struct stor_target *t = rt_actor_state(self);
	const struct cfs_chunk_remove *m = RT_BODY(req, chunk_remove);
	struct disk_chunk_info info;
	struct stor_mut *op;
	int rc;

	if (t->in_cluster)
		return to_chain(t, req, "remove", m->target, m->chain_ver, &m->chunk, m->flags,
				CRAQ_REMOVE);
	rc = standalone_check(t, m->target, m->chain_ver, &m->chunk, &info);
	if (rc != 0)
		return refuse(t, "remove", &m->chunk, rc);
	op = mut_new(t, req);
	if (!op)
		return refuse(t, "remove", &m->chunk, -ENOMEM);
	/* Mutations of one chunk run in order in the engine, so the version seen
	 * now is the one this remove drops unless a write queued before it lands
	 * first; the reply then names the older one, which is only informative. */
	op->removed_ver = info.ver;
	rc = disk_remove(t->dt, &m->chunk, remove_done, op);
	if (rc != 0)
		return refuse(t, "remove", &m->chunk, rc);
	return 0;
}

/* ---------------------------------------------------------------- truncate */

static void
truncate_done(void *cb_arg, int rc, const struct disk_chunk_info *info)
{
	struct stor_mut *op = cb_arg;
	struct rt_msg *req = op->req;
	struct rt_msg *resp = NULL;

	if (rc != 0) {
		stor_log_fail(op->t, "truncate", &RT_BODY(req, chunk_truncate)->chunk, rc);
		rt_reply(req, rc, NULL);
		return;
	}
	resp = rt_msg_new(CFS_MSG_CHUNK_TRUNCATE_RESP);
	if (resp) {
		struct cfs_chunk_truncate_resp *r = RT_BODY(resp, chunk_truncate_resp);

		r->version = info->ver;
		r->len = info->len;
		r->crc = info->crc;
	} else {
		rc = -ENOMEM;
	}
	rt_reply(req, rc, resp);
}

int
stor_on_chunk_truncate(struct rt_actor *self, struct rt_msg *req)
{
	struct stor_target *t = rt_actor_state(self);
	const struct cfs_chunk_truncate *m = RT_BODY(req, chunk_truncate);
	struct disk_chunk_info info;
	struct stor_mut *op;
	int rc;

	if (t->in_cluster)
		return to_chain(t, req, "truncate", m->target, m->chain_ver, &m->chunk, m->flags,
				CRAQ_TRUNCATE);
	rc = standalone_check(t, m->target, m->chain_ver, &m->chunk, &info);
	if (rc != 0)
		return refuse(t, "truncate", &m->chunk, rc);
	/* chunk_size is optional here (0); when given it must be the chunk's. */
	if ((m->chunk_size != 0 && m->chunk_size != info.chunk_size) || m->len > info.chunk_size)
		return refuse(t, "truncate", &m->chunk, -EINVAL);
	op = mut_new(t, req);
	if (!op)
		return refuse(t, "truncate", &m->chunk, -ENOMEM);
	rc = disk_truncate(t->dt, &m->chunk, m->len, m->update_ver, DISK_W_COMMIT, m->client_req,
			   truncate_done, op);
	if (rc != 0)
		return refuse(t, "truncate", &m->chunk, rc);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * Mutations of a target: write, truncate, tombstone, commit, abort, remove.
 * Each is a
 * struct disk_op that runs alone on its chunk (later ones wait in the chunk's
 * queue, reads never wait) through these steps:
 *
 *   plan      check version rules, decide the action and the new content size
 *   slot      allocate a fresh slot (copy-on-write); may park on the class
 *   base      partial updates read the committed content and check its CRC
 *   build     merge, compute the per-4KiB CRC table and the chunk CRC
 *   write     one aio write of the whole new content into the new slot
 *   sync      the row image goes to the helper thread: fdatasync + SQLite
 *   durable   back on the loop: apply to the in-memory entry, free old slots,
 *             call back, start the chunk's next operation
 *
 * Every completion, also an early error, goes through the target's mailbox,
 * so a callback never runs inside the call that submitted its operation.
 *
 * A tombstone (disk_tombstone) is a remove as a version, for chain
 * replication: planned like a write (same version rules) but with no content,
 * so it skips slot, base, build and write and goes straight to sync. Pending,
 * it is the chunk's pending version (flag `tomb`, column ptomb); committed
 * (at once with DISK_W_COMMIT, or by disk_commit) it is a remove: both
 * versions dropped, the row deleted, the committed slot freed once durable.
 * A committed tombstone made by a request (req != 0) leaves a record of it
 * (disk_removed_find) written with the row's deletion: the request stays
 * known as applied after the row is gone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define RT_LOG_SUBSYS "disk"
#include "disk/disk_internal.h"

static void op_start(struct disk_op *op);

static struct disk_op *
op_new(struct disk_target *t, unsigned iovcnt)
{
	size_t extra = iovcnt > 2 ? iovcnt * sizeof(struct rt_iov) : 0;
	struct disk_op *op = calloc(1, sizeof(*op) + extra);

	if (op == NULL)
		return NULL;
	op->t = t;
	op->iov = iovcnt > 2 ? (struct rt_iov *)(op + 1) : op->iov_inline;
	op->nv.slot = DISK_NOSLOT;
	return op;
}

static void
op_free(struct disk_op *op)
{
	for (unsigned i = 0; i < op->iovcnt; i++)
		rt_buf_put(&op->iov[i].buf);
	if (op->buf != NULL)
		rt_buf_put(&op->buf);
	free(op->nv.bcrc);
	free(op->ptab);
	free(op);
}

/* index_failed is set by the helper thread: read it as such. */
static bool
t_index_failed(const struct disk_target *t)
{
	return __atomic_load_n(&t->index_failed, __ATOMIC_ACQUIRE);
}

static void
chunk_release(struct disk_target *t, struct disk_chunk *c)
{
	struct disk_op *next = c->waitq;

	if (next != NULL) {
		c->waitq = next->next;
		if (c->waitq == NULL)
			c->waitq_tail = &c->waitq;
		op_start(next);
		return;
	}
	c->busy = false;
	if (!disk_chunk_exists(c))
		disk_chunk_forget(t, c);
}

/* Drop a version that readers could see: its slot waits for them. */
static void
release_ver(struct disk_target *t, struct disk_chunk *c, struct disk_ver *v)
{
	if (v->ver != 0 && v->slot != DISK_NOSLOT)
		disk_slot_free_visible(t, c->cls, v->slot);
	disk_crc_drop(t, c, v);
	memset(v, 0, sizeof(*v));
	v->slot = DISK_NOSLOT;
}

/* Install op's new version as *v, moving its CRC table into the cache. */
static void
install_nv(struct disk_target *t, struct disk_op *op, struct disk_ver *v)
{
	uint32_t *table = op->nv.bcrc;

	*v = op->nv;
	v->bcrc = NULL;
	op->nv.bcrc = NULL;
	op->nv.slot = DISK_NOSLOT; /* now owned by the entry */
	disk_crc_attach(t, op->c, v, table);
}

static void
apply(struct disk_op *op)
{
	struct disk_target *t = op->t;
	struct disk_chunk *c = op->c;
	bool existed = disk_chunk_exists(c);

	switch (op->action) {
	case DISK_A_SET_PENDING:
		release_ver(t, c, &c->pend);
		c->chunk_size = op->chunk_size;
		c->cls = op->cls;
		install_nv(t, op, &c->pend);
		break;
	case DISK_A_SET_CUR:
		release_ver(t, c, &c->cur);
		release_ver(t, c, &c->pend);
		c->chunk_size = op->chunk_size;
		c->cls = op->cls;
		install_nv(t, op, &c->cur);
		break;
	case DISK_A_COMMIT:
		release_ver(t, c, &c->cur);
		c->cur = c->pend;
		memset(&c->pend, 0, sizeof(c->pend));
		c->pend.slot = DISK_NOSLOT;
		break;
	case DISK_A_ABORT:
		release_ver(t, c, &c->pend);
		break;
	case DISK_A_REMOVE:
		release_ver(t, c, &c->cur);
		release_ver(t, c, &c->pend);
		/* Memory failing only shortens the memory to this process's
		 * life: the record is durable, the next open loads it. */
		if (op->si.row.rm_req != 0 &&
		    disk_rmap_add(&t->removed, &c->id, op->si.row.rm_req, op->si.row.rm_ver,
				  op->si.row.rm_at) != 0 &&
		    disk_log_ok(t))
			RT_WARN("target=%u: no memory for the record of a remove", t->id);
		break;
	default:
		break;
	}
	if (existed && !disk_chunk_exists(c))
		t->nchunks--;
	else if (!existed && disk_chunk_exists(c))
		t->nchunks++;
}

/* Back on the loop: the operation is durable (rc 0) or failed. */
static void
op_durable(struct disk_target *t, struct disk_mitem *mi)
{
	struct disk_op *op = (struct disk_op *)((char *)mi - offsetof(struct disk_op, si.done));
	struct disk_chunk *c = op->c;
	struct disk_chunk_info info;
	int rc = op->si.rc;

	if (rc == 0) {
		apply(op);
		if (op->kind == DISK_OP_WRITE || op->kind == DISK_OP_TRUNCATE) {
			t->st.writes++;
			t->st.write_bytes += op->kind == DISK_OP_WRITE ? op->len : 0;
		}
		disk_chunk_info(c, &info);
	} else if (op->nv.slot != DISK_NOSLOT && !t_index_failed(t)) {
		/* Never referenced by the index nor visible to reads. (After a
		 * failed commit it may be, at the next open: kept.) */
		disk_slot_free_now(t, op->cls, op->nv.slot);
		op->nv.slot = DISK_NOSLOT;
	}
	if (op->cb != NULL) {
		t->cb_depth++;
		op->cb(op->cb_arg, rc, rc == 0 ? &info : NULL);
		t->cb_depth--;
	}
	chunk_release(t, c);
	t->ops_inflight--;
	op_free(op);
	disk_slots_kick(t);
	disk_removed_expire(t);
}

static void
op_finish(struct disk_op *op, int rc)
{
	op->si.rc = rc;
	op->si.done.fn = op_durable;
	disk_mbox_post(op->t, &op->si.done);
}

/* Hand the row image of the state after op to the helper thread. */
static void
op_sync(struct disk_op *op, bool wrote_data)
{
	struct disk_target *t = op->t;
	struct disk_chunk *c = op->c;
	struct disk_row *r = &op->si.row;
	const struct disk_ver *cur = &c->cur, *pend = &c->pend;
	static const struct disk_ver none = {.slot = DISK_NOSLOT};

	switch (op->action) {
	case DISK_A_SET_PENDING:
		pend = &op->nv;
		break;
	case DISK_A_SET_CUR:
		cur = &op->nv;
		pend = &none;
		break;
	case DISK_A_COMMIT:
		cur = &c->pend;
		pend = &none;
		break;
	case DISK_A_ABORT:
		pend = &none;
		break;
	case DISK_A_REMOVE:
		cur = pend = &none;
		break;
	default:
		break;
	}
	memset(r, 0, sizeof(*r));
	r->id = c->id;
	r->del = cur->ver == 0 && pend->ver == 0;
	r->chunk_size = op->chunk_size;
	r->cls = op->cls;
	r->ver = cur->ver;
	r->slot = cur->slot;
	r->len = cur->len;
	r->crc = cur->crc;
	r->pver = pend->ver;
	r->pslot = pend->slot;
	r->plen = pend->len;
	r->pcrc = pend->crc;
	r->req = cur->ver != 0 ? cur->req : 0;
	r->preq = pend->ver != 0 ? pend->req : 0;
	r->ptomb = pend->ver != 0 && pend->tomb;
	/* A tombstone committing (at once, or the pending one by disk_commit):
	 * the row goes, the record of the request that removed it comes. */
	if (r->del && op->action == DISK_A_REMOVE) {
		const struct disk_ver *tv = op->kind == DISK_OP_TOMB	 ? &op->nv
					    : op->kind == DISK_OP_COMMIT ? &c->pend
									 : NULL;

		if (tv != NULL && tv->tomb && tv->req != 0) {
			r->rm_req = tv->req;
			r->rm_ver = tv->ver;
			r->rm_at = disk_wall_ms();
		}
	}
	op->si.kind = DISK_SI_ROW;
	op->si.rc = 0;
	op->si.sync_cls =
		wrote_data && t->sync_mode == DISK_SYNC_FDATASYNC ? (int8_t)op->cls : -1;
	op->wrote_data = wrote_data;
	op->si.done.fn = op_durable;
	disk_sync_push(t, &op->si);
}

static void
data_written(struct disk_io *io, long res)
{
	struct disk_op *op = io->cb_arg;

	if (res != (long)io->len) {
		int rc = res < 0 ? (int)res : -EIO;

		if (rc != -ENOSPC)
			op->t->st.io_errors++;
		if (disk_log_ok(op->t))
			RT_ERR(rc, "target=%u write cls=%u slot=%u len=%u: %ld", op->t->id,
			       op->t->cls[op->cls].size, op->nv.slot, io->len, res);
		op_finish(op, rc == -ENOSPC ? -ENOSPC : -EIO);
		return;
	}
	op_sync(op, true);
}

static void
submit_write(struct disk_op *op, void *data)
{
	struct disk_target *t = op->t;
	struct disk_class *k = &t->cls[op->cls];

	op->io = (struct disk_io){
		.fd = k->fd,
		.op = DISK_IO_WRITE,
		.dsync = t->sync_mode == DISK_SYNC_DSYNC,
		.buf = data,
		.len = (uint32_t)disk_roundup(op->nv.len),
		.off = (uint64_t)op->nv.slot * k->size,
		.cb = data_written,
		.cb_arg = op,
	};
	t->e->ops->submit(t->e, &op->io);
}

/* Copy payload bytes [0, len) into dst. */
static void
copy_payload(const struct disk_op *op, uint8_t *dst)
{
	uint32_t left = op->len;

	for (unsigned i = 0; i < op->iovcnt && left > 0; i++) {
		uint32_t n = op->iov[i].len < left ? op->iov[i].len : left;

		memcpy(dst, op->iov[i].buf->data + op->iov[i].off, n);
		dst += n;
		left -= n;
	}
}

static uint32_t
block_len(uint32_t len, uint32_t i)
{
	uint64_t start = (uint64_t)i * DISK_BLOCK;

	return len - start >= DISK_BLOCK ? DISK_BLOCK : (uint32_t)(len - start);
}

/* New content in data[0, nv.len): its CRC table and CRC. base_tab (the
 * verified table of the base content, or NULL) lets blocks the update did
 * not touch keep their CRC, and op->ptab (the payload's, from the payload
 * check) gives those the payload fills whole: no second pass over either.
 * A whole-chunk write takes op->ptab itself. */
static void
build_crc(struct disk_op *op, const uint8_t *data, const uint32_t *base_tab)
{
	uint32_t len = op->nv.len;
	uint32_t nb = disk_nblocks(len);
	uint32_t nb_base = disk_nblocks(op->base.len);
	uint32_t pfirst = op->off / DISK_BLOCK, pnb = disk_nblocks(op->len);
	uint32_t *tab;

	/* The payload is the whole new content: its checked table and CRC are
	 * the version's, handed over as they are. */
	if (op->ptab != NULL && op->off == 0 && op->len == len) {
		op->nv.crc = op->pcrc;
		op->nv.bcrc = op->ptab;
		op->ptab = NULL;
		return;
	}
	tab = nb > 1 ? malloc((size_t)nb * sizeof(*tab)) : NULL;
	if (tab == NULL || (base_tab == NULL && op->ptab == NULL)) {
		op->nv.crc = disk_crc_blocks(data, len, tab);
		op->nv.bcrc = tab;
		return;
	}
	for (uint32_t i = 0; i < nb; i++) {
		uint64_t bs = (uint64_t)i * DISK_BLOCK, be = bs + DISK_BLOCK;
		bool touched = op->kind == DISK_OP_WRITE && op->len > 0 &&
			       bs < (uint64_t)op->off + op->len && op->off < be;
		bool same = base_tab != NULL && !touched && i < nb_base &&
			    block_len(len, i) == block_len(op->base.len, i);

		/* ptab exists only for block-aligned payloads: payload block
		 * i - pfirst is chunk block i, and when their lengths agree the
		 * block holds payload bytes only. */
		if (touched && op->ptab != NULL && i >= pfirst && i - pfirst < pnb &&
		    block_len(len, i) == block_len(op->len, i - pfirst))
			tab[i] = op->ptab[i - pfirst];
		else
			tab[i] = same ? base_tab[i] : disk_crc32c(0, data + bs, block_len(len, i));
	}
	op->nv.crc = disk_crc_table_combine(tab, len);
	op->nv.bcrc = tab;
}

/* Merge into op->buf (which holds the base content, if any) and write. */
static void
build_and_write(struct disk_op *op, const uint32_t *base_tab)
{
	uint8_t *data = op->buf->data;
	uint32_t len = op->nv.len;
	uint32_t blen = op->base.len;

	if (op->kind == DISK_OP_WRITE) {
		if (op->off > blen)
			memset(data + blen, 0, op->off - blen);
		copy_payload(op, data + op->off);
	} else if (len > blen) {
		memset(data + blen, 0, len - blen);
	}
	memset(data + len, 0, disk_roundup(len) - len);
	build_crc(op, data, base_tab);
	submit_write(op, data);
}

static void
base_read(struct disk_io *io, long res)
{
	struct disk_op *op = io->cb_arg;
	struct disk_target *t = op->t;
	uint32_t nb = disk_nblocks(op->base.len);
	uint32_t *tab = NULL;
	uint32_t crc;

	if (res != (long)io->len) {
		int rc = res < 0 ? (int)res : -EIO;

		t->st.io_errors++;
		if (disk_log_ok(t))
			RT_ERR(rc, "target=%u read base slot=%u len=%u: %ld", t->id, op->base.slot,
			       io->len, res);
		op_finish(op, -EIO);
		return;
	}
	/* Never merge into content that fails its CRC: the new version would
	 * carry the corruption under a fresh, valid CRC. */
	if (nb > 1)
		tab = malloc((size_t)nb * sizeof(*tab));
	crc = disk_crc_blocks(op->buf->data, op->base.len, tab);
	if (crc != op->base.crc) {
		char hex[33];

		t->st.checksum_errors++;
		for (int i = 0; i < 16; i++)
			sprintf(hex + 2 * i, "%02x", op->c->id.b[i]);
		if (disk_log_ok(t))
			RT_ERRLOG(
				"target=%u chunk=%s ver=%lu: checksum mismatch in committed content"
				" (merge refused)",
				t->id, hex, (unsigned long)op->base.ver);
		free(tab);
		op_finish(op, -CFS_ECHECKSUM);
		return;
	}
	build_and_write(op, tab);
	free(tab);
}

/* A slot is ours: read the base if the update keeps some of it, else build. */
static void
data_phase(struct disk_op *op)
{
	struct disk_target *t = op->t;
	uint64_t nbytes = disk_roundup(op->nv.len);
	uint64_t bbytes = disk_roundup(op->base.len);
	bool need_base;

	if (op->kind == DISK_OP_WRITE)
		need_base = op->base.len > 0 && !(op->off == 0 && op->len >= op->base.len);
	else
		need_base = op->base.len > 0;

	/* Zero copy: a whole-chunk write of whole blocks whose payload already sits
	 * aligned in one pool buffer goes straight to the disk. (A partial last
	 * block would write the caller's bytes past the payload, maybe another
	 * request's, into the slot.) */
	if (!need_base && op->kind == DISK_OP_WRITE && op->off == 0 && op->iovcnt == 1 &&
	    op->len % DISK_BLOCK == 0) {
		const struct rt_iov *v = &op->iov[0];
		const uint8_t *p = v->buf->data + v->off;

		if (((uintptr_t)p & (DISK_BLOCK - 1)) == 0 && v->buf->cap - v->off >= nbytes) {
			op->zero_copy = true;
			build_crc(op, p, NULL);
			submit_write(op, (void *)p);
			return;
		}
	}
	op->buf = rt_buf_get(need_base && bbytes > nbytes ? bbytes : nbytes);
	if (op->buf == NULL) {
		op_finish(op, -ENOMEM);
		return;
	}
	if (!need_base) {
		build_and_write(op, NULL);
		return;
	}
	op->io = (struct disk_io){
		.fd = t->cls[op->c->cls].fd,
		.op = DISK_IO_READ,
		.buf = op->buf->data,
		.len = (uint32_t)bbytes,
		.off = (uint64_t)op->base.slot * t->cls[op->c->cls].size,
		.cb = base_read,
		.cb_arg = op,
	};
	t->e->ops->submit(t->e, &op->io);
}

void
disk_op_slot_ready(struct disk_op *op)
{
	data_phase(op);
}

void
disk_op_slot_failed(struct disk_op *op, int rc)
{
	op_finish(op, rc);
}

/* Version rules of a write or truncate; sets action, nv.ver, base, nv.len. */
static int
plan_update(struct disk_op *op)
{
	struct disk_chunk *c = op->c;
	uint64_t V = c->cur.ver, P = c->pend.ver, u = op->ver;

	if (op->kind == DISK_OP_TRUNCATE || op->kind == DISK_OP_TOMB) {
		if (!disk_chunk_exists(c))
			return -CFS_ENOCHUNK;
		op->chunk_size = c->chunk_size;
		if (op->len > op->chunk_size)
			return -EINVAL;
	} else if (disk_chunk_exists(c) && c->chunk_size != op->chunk_size &&
		   (op->flags & (DISK_W_FORCE | DISK_W_REPLACE)) !=
			   (DISK_W_FORCE | DISK_W_REPLACE)) {
		/* A forced whole version (a resync copy, a forwarded new life of
		 * the chunk) may change the chunk size: it keeps nothing of the
		 * old content and apply() frees both old slots in their old class
		 * before taking the new one. Anything else would mix classes. */
		return -EINVAL;
	}
	if (op->flags & DISK_W_FORCE) {
		/* A forced tombstone removes whatever is there. */
		op->action = op->kind == DISK_OP_TOMB ? DISK_A_REMOVE : DISK_A_SET_CUR;
	} else if (op->flags & DISK_W_COMMIT) {
		if (P != 0)
			return -EBUSY;
		if (u == 0 && V == UINT64_MAX)
			return -EOVERFLOW; /* no version left after the last */
		if (u == 0)
			u = V + 1;
		if (u <= V)
			return -ESTALE;
		/* A committed tombstone is the chunk's removal. */
		op->action = op->kind == DISK_OP_TOMB ? DISK_A_REMOVE : DISK_A_SET_CUR;
	} else {
		if (u == 0 && V == UINT64_MAX)
			return -EOVERFLOW;
		if (u == 0)
			u = V + 1;
		if (P != 0 && u != P)
			return -EBUSY;
		if (u <= V)
			return -ESTALE;
		if (u > V + 1)
			return -ERANGE;
		op->action = DISK_A_SET_PENDING;
	}
	op->nv.ver = u;
	op->nv.req = op->req;
	op->nv.tomb = op->kind == DISK_OP_TOMB;
	op->cls = (uint8_t)disk_class_of(op->chunk_size);
	op->base = c->cur;
	op->base.bcrc = NULL; /* the cache may drop it; the merge recomputes */
	if (op->flags & DISK_W_REPLACE) {
		memset(&op->base, 0, sizeof(op->base));
		op->base.slot = DISK_NOSLOT;
	}
	if (op->kind == DISK_OP_WRITE) {
		uint64_t end = (uint64_t)op->off + op->len;

		op->nv.len = (uint32_t)(end > op->base.len ? end : op->base.len);
	} else {
		op->nv.len = op->len;
	}
	return 0;
}

static void
op_start(struct disk_op *op)
{
	struct disk_chunk *c = op->c;
	uint64_t P = c->pend.ver, V = c->cur.ver;
	int rc = 0;

	op->chunk_size = op->kind == DISK_OP_WRITE ? op->chunk_size : c->chunk_size;
	op->cls = c->cls;
	/* Queued behind its chunk before an index commit failed: refused too. */
	if (t_index_failed(op->t)) {
		op_finish(op, -EIO);
		return;
	}
	switch (op->kind) {
	case DISK_OP_WRITE:
	case DISK_OP_TRUNCATE:
	case DISK_OP_TOMB:
		rc = plan_update(op);
		if (rc != 0)
			break;
		if (op->nv.len == 0) {
			/* No content (an empty version, a tombstone): only the row. */
			op_sync(op, false);
			return;
		}
		rc = disk_slot_alloc(op->t, op->cls, op, &op->nv.slot);
		if (rc == -EAGAIN)
			return; /* parked: disk_op_slot_ready() continues */
		if (rc == 0)
			data_phase(op);
		else
			op->nv.slot = DISK_NOSLOT;
		break;
	case DISK_OP_COMMIT:
		if (!disk_chunk_exists(c))
			rc = -CFS_ENOCHUNK;
		else if (P != 0 && op->ver == P)
			op->action = c->pend.tomb ? DISK_A_REMOVE : DISK_A_COMMIT;
		else if (P == 0 && op->ver == V)
			op->action = DISK_A_NONE;
		else if (op->ver < (P != 0 ? P : V))
			rc = -ESTALE;
		else
			rc = -ERANGE;
		break;
	case DISK_OP_ABORT:
		if (!disk_chunk_exists(c))
			rc = -CFS_ENOCHUNK;
		else if (P == 0)
			op->action = DISK_A_NONE;
		else if (op->ver == 0 || op->ver == P)
			op->action = DISK_A_ABORT;
		else
			rc = -ESTALE;
		break;
	case DISK_OP_REMOVE:
		if (!disk_chunk_exists(c))
			rc = -CFS_ENOCHUNK;
		else
			op->action = DISK_A_REMOVE;
		break;
	}
	if (rc != 0 || op->kind == DISK_OP_WRITE || op->kind == DISK_OP_TRUNCATE ||
	    op->kind == DISK_OP_TOMB) {
		if (rc != 0)
			op_finish(op, rc);
		return;
	}
	if (op->action == DISK_A_NONE)
		op_finish(op, 0);
	else
		op_sync(op, false);
}

static void
op_enqueue(struct disk_op *op, struct disk_chunk *c)
{
	op->c = c;
	op->t->ops_inflight++;
	if (c->busy) {
		op->next = NULL;
		*c->waitq_tail = op;
		c->waitq_tail = &op->next;
		return;
	}
	c->busy = true;
	op_start(op);
}

int
disk_write(struct disk_target *t, const struct disk_write *w, disk_done_fn cb, void *cb_arg)
{
	struct disk_chunk *c;
	struct disk_op *op;
	uint64_t have = 0;
	uint32_t crc = 0, left;
	uint32_t *ptab = NULL;
	unsigned n = 0;

	if (t->closing)
		return -CFS_ENOTSERVING;
	if (t_index_failed(t))
		return -EIO;
	if (w->chunk_size == 0 || w->chunk_size > DISK_MAX_CHUNK ||
	    (uint64_t)w->off + w->len > w->chunk_size || ((w->flags & DISK_W_FORCE) && w->ver == 0))
		return -EINVAL;
	for (unsigned i = 0; i < w->iovcnt && have < w->len; i++) {
		if (w->iov[i].buf == NULL)
			return -EINVAL;
		have += w->iov[i].len;
		n = i + 1;
	}
	if (have < w->len)
		return -EINVAL;
	/* The payload CRC first: a payload damaged on the way stores nothing.
	 * A payload in one piece at a block-aligned offset is checked block by
	 * block: the same pass yields the CRCs of the blocks it fills, which the
	 * new version's table reuses (combining them costs a multiply each). */
	if (n == 1 && w->off % DISK_BLOCK == 0 && disk_nblocks(w->len) > 1)
		ptab = malloc((size_t)disk_nblocks(w->len) * sizeof(*ptab));
	if (ptab != NULL) {
		crc = disk_crc_blocks(w->iov[0].buf->data + w->iov[0].off, w->len, ptab);
	} else {
		left = w->len;
		for (unsigned i = 0; i < n; i++) {
			uint32_t k = w->iov[i].len < left ? w->iov[i].len : left;

			crc = disk_crc32c(crc, w->iov[i].buf->data + w->iov[i].off, k);
			left -= k;
		}
	}
	if (crc != w->crc) {
		free(ptab);
		return -CFS_ECHECKSUM;
	}

	op = op_new(t, n);
	if (op == NULL) {
		free(ptab);
		return -ENOMEM;
	}
	op->ptab = ptab;
	op->pcrc = crc;
	c = disk_chunk_get(t, &w->id, true);
	if (c == NULL) {
		free(ptab);
		free(op);
		return -ENOMEM;
	}
	op->kind = DISK_OP_WRITE;
	op->flags = w->flags;
	op->ver = w->ver;
	op->req = w->req;
	op->chunk_size = w->chunk_size;
	op->off = w->off;
	op->len = w->len;
	op->iovcnt = n;
	for (unsigned i = 0; i < n; i++) {
		op->iov[i] = w->iov[i];
		rt_buf_ref(op->iov[i].buf);
	}
	op->cb = cb;
	op->cb_arg = cb_arg;
	op_enqueue(op, c);
	return 0;
}

/* Common submission of the operations that need an existing chunk. */
static int
submit_simple(struct disk_target *t, const struct cfs_id128 *id, uint8_t kind, uint64_t ver,
	      uint32_t len, unsigned flags, uint64_t req, disk_done_fn cb, void *cb_arg)
{
	struct disk_chunk *c;
	struct disk_op *op;

	if (t->closing)
		return -CFS_ENOTSERVING;
	if (t_index_failed(t))
		return -EIO;
	c = disk_chunk_get(t, id, false);
	if (c == NULL)
		return -CFS_ENOCHUNK;
	if (kind == DISK_OP_TRUNCATE && disk_chunk_exists(c) && len > c->chunk_size)
		return -EINVAL;
	op = op_new(t, 0);
	if (op == NULL)
		return -ENOMEM;
	op->kind = kind;
	op->ver = ver;
	op->len = len;
	op->flags = flags;
	op->req = req;
	op->cb = cb;
	op->cb_arg = cb_arg;
	op_enqueue(op, c);
	return 0;
}

int
disk_truncate(struct disk_target *t, const struct cfs_id128 *id, uint32_t len, uint64_t ver,
	      unsigned flags, uint64_t req, disk_done_fn cb, void *cb_arg)
{
	if ((flags & DISK_W_FORCE) && ver == 0)
		return -EINVAL;
	return submit_simple(t, id, DISK_OP_TRUNCATE, ver, len, flags, req, cb, cb_arg);
}

int
disk_commit(struct disk_target *t, const struct cfs_id128 *id, uint64_t ver, disk_done_fn cb,
	    void *cb_arg)
{
	return submit_simple(t, id, DISK_OP_COMMIT, ver, 0, 0, 0, cb, cb_arg);
}

int
disk_abort(struct disk_target *t, const struct cfs_id128 *id, uint64_t ver, disk_done_fn cb,
	   void *cb_arg)
{
	return submit_simple(t, id, DISK_OP_ABORT, ver, 0, 0, 0, cb, cb_arg);
}

int
disk_remove(struct disk_target *t, const struct cfs_id128 *id, disk_done_fn cb, void *cb_arg)
{
	return submit_simple(t, id, DISK_OP_REMOVE, 0, 0, 0, 0, cb, cb_arg);
}

int
disk_tombstone(struct disk_target *t, const struct cfs_id128 *id, uint64_t ver, unsigned flags,
	       uint64_t req, disk_done_fn cb, void *cb_arg)
{
	if ((flags & ~(unsigned)(DISK_W_COMMIT | DISK_W_FORCE)) ||
	    ((flags & DISK_W_FORCE) && ver == 0))
		return -EINVAL;
	return submit_simple(t, id, DISK_OP_TOMB, ver, 0, flags, req, cb, cb_arg);
}

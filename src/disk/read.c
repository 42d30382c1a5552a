/* SPDX-License-Identifier: MIT */
/*
 * Read batches. Each item is resolved against the in-memory index when the
 * batch is submitted (so a read never waits for a mutation of its chunk) and
 * becomes one aio read; a batch's reads go down together in one io_submit,
 * with whatever else the loop's engine has queued: at once when none of its
 * requests is outstanding (the engine's kick), else at the end of the loop
 * iteration.
 *
 * Checking: a chunk version whose per-4KiB CRC table is in memory is read
 * only over the blocks the request covers, each checked against the table
 * (the expected CRCs are copied into the item, so the table may be evicted
 * or replaced meanwhile). Without a table, the whole content is read once and
 * checked against the chunk CRC; the table built on the way is then cached.
 * Reading only the covered blocks is what keeps 4 KiB random reads of large
 * chunks at disk speed (README.md has the numbers).
 *
 * Whole reads are bounded, because what they cost is not what the caller
 * asked for: 1024 one-byte reads of an uncached 64 MiB chunk would otherwise
 * allocate and read 64 GiB for a 1 KiB reply. An item that needs one waits,
 * in FIFO order, while a whole read of the same chunk is in flight (the table
 * it builds then serves the item's blocks alone), or while WHOLE_BUDGET bytes
 * or WHOLE_MAX reads are in flight; one whole read may always run, whatever
 * its size. Each completed whole read starts the waiting items it can.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define RT_LOG_SUBSYS "disk"
#include "disk/disk_internal.h"

/* Whole reads in flight per target: bytes, and reads. */
#define WHOLE_BUDGET ((uint64_t)128 << 20)
#define WHOLE_MAX    64u

struct rbatch;

struct ritem {
	struct disk_io io;
	struct ritem *next; /* whole reads: in flight, or waiting to start */
	struct rbatch *rb;
	struct disk_read *r;
	struct disk_rtrack track;
	struct rt_buf *buf;
	uint32_t a;   /* chunk offset of buf[0] */
	uint32_t end; /* chunk offset after the last byte returned */
	uint32_t vlen, vcrc, slot;
	uint64_t ver;
	bool whole;
	bool admitted; /* may start a whole read without waiting */
	bool pending;
	uint32_t first; /* first block read */
	uint32_t nexp;
	uint32_t *exp;
	uint32_t exp_inline[4];
};

struct rbatch {
	struct disk_target *t;
	struct disk_read *reads;
	unsigned n;
	unsigned left;
	disk_read_fn cb;
	void *cb_arg;
	struct disk_mitem defer;
	struct ritem it[];
};

static void
batch_done(struct rbatch *rb)
{
	struct disk_target *t = rb->t;

	t->cb_depth++;
	rb->cb(rb->cb_arg, rb->reads, rb->n);
	t->cb_depth--;
	t->ops_inflight--;
	free(rb);
}

static void
batch_deferred(struct disk_target *t, struct disk_mitem *mi)
{
	batch_done((struct rbatch *)((char *)mi - offsetof(struct rbatch, defer)));
}

static void
item_end(struct ritem *it)
{
	struct rbatch *rb = it->rb;

	if (it->exp != it->exp_inline)
		free(it->exp);
	it->exp = NULL;
	if (--rb->left == 0)
		batch_done(rb);
}

static void
log_checksum(struct disk_target *t, const struct ritem *it, uint32_t block)
{
	char hex[33];

	t->st.checksum_errors++;
	if (!disk_log_ok(t))
		return;
	for (int i = 0; i < 16; i++)
		sprintf(hex + 2 * i, "%02x", it->r->id.b[i]);
	RT_ERRLOG("target=%u path=%s chunk=%s ver=%lu block=%u: checksum mismatch", t->id, t->path,
		  hex, (unsigned long)it->ver, block);
}

static uint32_t
blen_of(uint32_t vlen, uint32_t block)
{
	uint64_t s = (uint64_t)block * DISK_BLOCK;

	return vlen - s >= DISK_BLOCK ? DISK_BLOCK : (uint32_t)(vlen - s);
}

/* Cache the table built by a whole read if the chunk still has that version. */
static void
keep_table(struct disk_target *t, struct ritem *it, uint32_t *tab)
{
	struct disk_chunk *c = disk_chunk_get(t, &it->r->id, false);
	struct disk_ver *v = NULL;

	if (c != NULL) {
		struct disk_ver *cand = it->pending ? &c->pend : &c->cur;

		if (cand->ver == it->ver && cand->slot == it->slot && cand->bcrc == NULL)
			v = cand;
	}
	if (v != NULL)
		disk_crc_attach(t, c, v, tab);
	else
		free(tab);
}

static bool
whole_busy(const struct disk_target *t, const struct cfs_id128 *id)
{
	for (const struct ritem *w = t->whole_inflight; w != NULL; w = w->next) {
		if (memcmp(w->r->id.b, id->b, sizeof(id->b)) == 0)
			return true;
	}
	return false;
}

/* Whether the budget has room for one more whole read of `bytes`. */
static bool
whole_room(const struct disk_target *t, uint64_t bytes)
{
	return t->whole_count < WHOLE_MAX && t->whole_bytes + bytes <= WHOLE_BUDGET;
}

/* Whether a whole read of `bytes` for chunk id may start now. */
static bool
whole_may_start(const struct disk_target *t, const struct cfs_id128 *id, uint64_t bytes)
{
	return t->whole_count == 0 || (whole_room(t, bytes) && !whole_busy(t, id));
}

static void
whole_end(struct disk_target *t, struct ritem *it)
{
	struct ritem **pp = &t->whole_inflight;

	while (*pp != it)
		pp = &(*pp)->next;
	*pp = it->next;
	t->whole_bytes -= it->io.len;
	t->whole_count--;
}

static int item_start(struct rbatch *rb, struct ritem *it);

/* Start the waiting items that may start now, oldest first. One held back by
 * the budget holds back the ones behind it; one held back only because its
 * chunk is being read whole is passed over (that read's end retries it). A
 * started item may finish at once and call its batch back, and that callback
 * may queue new items: the list stays consistent at every step. Called with a
 * batch of this target still in flight, so t stays valid. */
static void
whole_resume(struct disk_target *t)
{
	struct ritem *prev = NULL, *it = t->whole_wait_head;

	while (it != NULL) {
		if (!whole_may_start(t, &it->r->id, it->io.len)) {
			if (!whole_room(t, it->io.len))
				break;
			prev = it;
			it = it->next;
			continue;
		}
		if (prev != NULL)
			prev->next = it->next;
		else
			t->whole_wait_head = it->next;
		if (t->whole_wait_tail == it)
			t->whole_wait_tail = prev;
		it->next = NULL;
		it->admitted = true;
		if (item_start(it->rb, it) != 0)
			item_end(it);
		it = prev != NULL ? prev->next : t->whole_wait_head;
	}
}

static void
read_done(struct disk_io *io, long res)
{
	struct ritem *it = (struct ritem *)io;
	struct disk_target *t = it->rb->t;
	struct disk_read *r = it->r;
	const uint8_t *data = it->buf->data;
	uint32_t crc = 0;
	int rc = 0;

	disk_rtrack_end(t, &it->track);
	if (res != (long)io->len) {
		rc = -EIO;
		t->st.io_errors++;
		if (disk_log_ok(t))
			RT_ERRLOG("target=%u read slot=%u off=%lu len=%u: %ld", t->id, it->slot,
				  (unsigned long)io->off, io->len, res);
		goto out;
	}
	if (it->whole) {
		uint32_t nb = disk_nblocks(it->vlen);
		uint32_t *tab = nb > 1 ? malloc((size_t)nb * sizeof(*tab)) : NULL;

		if (disk_crc_blocks(data, it->vlen, tab) != it->vcrc) {
			free(tab);
			log_checksum(t, it, UINT32_MAX);
			rc = -CFS_ECHECKSUM;
			goto out;
		}
		if (tab != NULL)
			keep_table(t, it, tab);
	} else {
		for (uint32_t i = 0; i < it->nexp; i++) {
			uint32_t b = it->first + i;

			if (disk_crc32c(0, data + (size_t)i * DISK_BLOCK, blen_of(it->vlen, b)) !=
			    it->exp[i]) {
				log_checksum(t, it, b);
				rc = -CFS_ECHECKSUM;
				goto out;
			}
		}
	}
	/* CRC of the bytes returned: combined from block CRCs when the slice is
	 * whole blocks (the common aligned case), else one pass over it. */
	{
		uint32_t off = r->off - it->a, n = it->end - r->off;

		if (!it->whole && off == 0 && (n % DISK_BLOCK == 0 || it->end == it->vlen)) {
			uint32_t k = disk_nblocks(n);

			crc = it->exp[0];
			for (uint32_t i = 1; i < k; i++)
				crc = disk_crc32c_combine(crc, it->exp[i],
							  blen_of(it->vlen, it->first + i));
		} else {
			crc = disk_crc32c(0, data + off, n);
		}
		r->data.buf = it->buf;
		r->data.off = off;
		r->data.len = n;
		r->crc = crc;
		it->buf = NULL;
		t->st.reads++;
		t->st.read_bytes += n;
	}
out:
	if (rc != 0)
		rt_buf_put(&it->buf);
	r->rc = rc;
	if (it->whole) {
		whole_end(t, it);
		whole_resume(t);
	}
	item_end(it);
}

/* Resolve one item; 0 when its read was submitted, 1 when it is done. */
static int
item_start(struct rbatch *rb, struct ritem *it)
{
	struct disk_target *t = rb->t;
	struct disk_read *r = it->r;
	struct disk_chunk *c = disk_chunk_get(t, &r->id, false);
	const struct disk_ver *v;
	uint32_t b, nb;

	if (c == NULL)
		goto out_noent;
	if (it->admitted) {
		/* It waited for a whole read of its chunk, and the chunk may have
		 * moved meanwhile: serve the version chosen when it was asked
		 * (committed since, or still pending), never a newer pending one,
		 * which no tail may have committed. */
		v = c->cur.ver == it->ver ? &c->cur : c->pend.ver == it->ver ? &c->pend : NULL;
		if (v == NULL || v->tomb) {
			r->rc = -CFS_EBUSY;
			return 1;
		}
		it->pending = v == &c->pend;
	} else {
		it->pending = (r->flags & DISK_R_PENDING) != 0;
		v = it->pending ? &c->pend : &c->cur;
	}
	/* A pending tombstone is a remove under way: as that version the chunk
	 * does not exist. */
	if (v->ver == 0 || v->tomb)
		goto out_noent;
	if ((uint64_t)r->off + r->len > c->chunk_size) {
		r->rc = -EINVAL;
		return 1;
	}
	r->ver = v->ver;
	if (r->off >= v->len || r->len == 0) {
		t->st.reads++;
		return 1; /* nothing there: an empty success */
	}
	it->end = r->off + r->len < v->len ? r->off + r->len : v->len;
	it->vlen = v->len;
	it->vcrc = v->crc;
	it->ver = v->ver;
	it->slot = v->slot;
	nb = disk_nblocks(v->len);
	if (nb == 1 || v->bcrc != NULL) {
		it->a = r->off & ~(DISK_BLOCK - 1);
		b = (uint32_t)disk_roundup(it->end);
		it->first = it->a / DISK_BLOCK;
		it->nexp = (b - it->a) / DISK_BLOCK;
		it->exp = it->nexp <= 4 ? it->exp_inline : malloc(it->nexp * sizeof(*it->exp));
		if (it->exp == NULL) {
			r->rc = -ENOMEM;
			return 1;
		}
		if (nb == 1)
			it->exp[0] = v->crc;
		else
			memcpy(it->exp, v->bcrc + it->first, it->nexp * sizeof(*it->exp));
		disk_crc_touch(t, c);
	} else {
		b = (uint32_t)disk_roundup(v->len);
		/* Behind the ones already waiting, too: a stream of small whole
		 * reads passing a large one at the head kept it waiting for as
		 * long as the stream lasted (whole_resume starts them in order). */
		if (!it->admitted && (t->whole_wait_head != NULL || !whole_may_start(t, &r->id, b))) {
			/* Wait; io.len holds the size for the budget check. */
			it->io.len = b;
			it->next = NULL;
			if (t->whole_wait_tail != NULL)
				t->whole_wait_tail->next = it;
			else
				t->whole_wait_head = it;
			t->whole_wait_tail = it;
			return 0;
		}
		it->admitted = false;
		it->whole = true;
		it->a = 0;
	}
	it->buf = rt_buf_get(b - it->a);
	if (it->buf == NULL) {
		if (it->exp != it->exp_inline)
			free(it->exp);
		it->exp = NULL;
		r->rc = -ENOMEM;
		return 1;
	}
	it->io = (struct disk_io){
		.fd = t->cls[c->cls].fd,
		.op = DISK_IO_READ,
		.buf = it->buf->data,
		.len = b - it->a,
		.off = (uint64_t)v->slot * t->cls[c->cls].size + it->a,
		.cb = read_done,
		.cb_arg = it,
	};
	if (it->whole) {
		it->next = t->whole_inflight;
		t->whole_inflight = it;
		t->whole_bytes += it->io.len;
		t->whole_count++;
	}
	disk_rtrack_start(t, &it->track);
	t->e->ops->submit(t->e, &it->io);
	return 0;
out_noent:
	r->rc = -CFS_ENOCHUNK;
	return 1;
}

int
disk_read(struct disk_target *t, struct disk_read *reads, unsigned n, disk_read_fn cb, void *cb_arg)
{
	struct rbatch *rb;

	if (t->closing)
		return -CFS_ENOTSERVING;
	if (n == 0 || reads == NULL || cb == NULL)
		return -EINVAL;
	rb = calloc(1, sizeof(*rb) + n * sizeof(rb->it[0]));
	if (rb == NULL)
		return -ENOMEM;
	rb->t = t;
	rb->reads = reads;
	rb->n = n;
	rb->left = n + 1; /* held until every item is submitted */
	rb->cb = cb;
	rb->cb_arg = cb_arg;
	t->ops_inflight++;
	for (unsigned i = 0; i < n; i++) {
		struct ritem *it = &rb->it[i];
		struct disk_read *r = &reads[i];

		r->rc = 0;
		r->ver = 0;
		r->crc = 0;
		r->data = (struct rt_iov){0};
		it->rb = rb;
		it->r = r;
		if (item_start(rb, it) != 0)
			rb->left--;
	}
	if (t->e->ops->kick != NULL)
		t->e->ops->kick(t->e);
	/* Completions only arrive from the loop, so none ran yet: if nothing was
	 * submitted, finish through the mailbox rather than inside this call. */
	if (--rb->left == 0) {
		rb->defer.fn = batch_deferred;
		disk_mbox_post(t, &rb->defer);
	}
	return 0;
}

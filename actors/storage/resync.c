// SPDX-License-Identifier: MIT
/*
 * Resync (cluster mode): the predecessor of a syncing target fills it. Owns
 * the walk over our chunks, the comparison with the syncing target, the copy
 * of every chunk that differs, and the final MGMTD_SYNC_DONE.
 *
 * Started from the routing handler when our successor on the write path is
 * syncing (and we serve); one walk per target at a time, stopped at the next
 * step when the chain version changes, then started over for the new chain.
 * New writes reach the syncing target meanwhile as forwarded writes (craq.c),
 * so once every chunk listed here has been compared (and copied if needed)
 * the target holds every committed write: we tell mgmtd. The walk pages
 * through our chunks (disk_list, STOR_SYNC_PAGE at a time); for each it asks
 * the target (chunk_query) and, when the version, length or CRC differs or
 * the target lacks it, reads our committed content and sends it as a
 * chunk_write with STOR_CW_F_FORWARD | STOR_CW_F_SYNC, which the target
 * installs as is, over whatever it holds (craq.c, start_sync_copy). Then a
 * second walk pages through the syncing target's chunks (chunk_list) and
 * removes those we do not hold (chunk_remove with STOR_CW_F_FORWARD |
 * STOR_CW_F_SYNC): leftovers from before it left, whose removes it missed.
 * A third walk pages through the records of removes committed here and
 * sends them (chunk_removed), which the target keeps as its own: as head
 * later it answers a late retry of such a remove instead of applying it
 * again. Only then MGMTD_SYNC_DONE.
 *
 * Each chunk's step (compare, then copy or removal, until the target's
 * answer) runs in the chunk's turn of our per-chunk queue (craq_sync_hold),
 * like a mutation: no mutation of that chunk is forwarded to the target
 * between our reading of it and the target's install, so the target can take
 * every copy as the truth. (It could not trust versions instead: they start
 * over at 1 when a chunk is removed and created again, and the target may
 * hold an older life of the chunk under a higher version.) A chunk we hold
 * only pending (a first write whose forward failed) has no committed state:
 * the target's copy is removed, and the head's re-drive brings the version
 * later; a pending tombstone here copies the committed version (the
 * tombstone follows as a re-drive). A failed step ends the walk and
 * arms a retry with backoff (the usual cause: the syncing target has not yet
 * received the routing that names the new chain version); a routing push also
 * restarts it. A restarted walk goes on from the page the stopped one was on
 * (its mark) when the routing shows both ends in the states of the same
 * change (state_ver); otherwise it starts over, and chunks already equal are
 * only compared.
 */
#define RT_LOG_SUBSYS "storage"
#include "actors/storage/storage_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "chainfs/cluster.h"

static void sync_step(struct stor_target *t);

/* The walk is about to list a page: everything before it is done. */
static void
sync_mark(struct stor_target *t)
{
	struct stor_sync *s = &t->sync;

	s->mark = (struct stor_sync_mark){
		.valid = true,
		.sweeping = s->sweeping,
		.started = s->started,
		.dst = s->dst,
		.dst_state_ver = s->dst_state_ver,
		.own_state_ver = s->own_state_ver,
		.dst_format = s->dst_format,
		.begin = s->next,
	};
}

/* Whether an answer of the syncing target comes from the target, as made,
 * the walk has been copying to (the first answer names it; 0: a target that
 * does not say). */
static bool
sync_same_format(struct stor_sync *s, uint64_t format_id)
{
	if (format_id == 0)
		return true;
	if (s->dst_format == 0)
		s->dst_format = format_id;
	return s->dst_format == format_id;
}

/* A walk stopped (the chain version moved, a step failed) goes on from its
 * mark when neither end left the write path since: the routing shows both in
 * the public states of the same change. state_ver 0 is a mgmtd that does not
 * send it. */
static bool
sync_resume(struct stor_sync *s, const struct stor_sync_mark *mk)
{
	if (!mk->valid || mk->dst != s->dst || s->dst_state_ver == 0 ||
	    mk->dst_state_ver != s->dst_state_ver || mk->own_state_ver != s->own_state_ver)
		return false;
	s->mark = *mk;
	s->dst_format = mk->dst_format;
	s->sweeping = mk->sweeping;
	s->started = mk->started;
	s->next = mk->begin;
	return true;
}

/* Whether the walk still serves the chain we hold. */
static bool
sync_current(const struct stor_target *t)
{
	const struct stor_sync *s = &t->sync;
	const struct stor_chain *c = &t->chain;

	return c->chain_ver == s->chain_ver && c->succ >= 0 &&
	       c->members[c->succ].target == s->dst && rt_now_ns(t->loop) < c->lease_until_ns;
}

#define SYNC_BACKOFF_MIN_MS 50u
#define SYNC_BACKOFF_MAX_MS 5000u

static void
sync_retry(struct rt_timer *timer, void *cb_arg)
{
	stor_sync_maybe_start(cb_arg);
}

void
stor_sync_init(struct stor_target *t)
{
	rt_timer_init(t->loop, &t->sync_retry, sync_retry, t);
	t->sync_backoff_ms = SYNC_BACKOFF_MIN_MS;
}

void
stor_sync_fini(struct stor_target *t)
{
	rt_timer_stop(&t->sync_retry);
}

static void
sync_stop(struct stor_target *t, int rc, const char *why)
{
	struct stor_sync *s = &t->sync;

	craq_sync_release(t);
	s->running = false;
	if (rc == 0 || rc == -CFS_ECANCELED) {
		t->sync_backoff_ms = SYNC_BACKOFF_MIN_MS;
		return;
	}
	RT_WARN("target=%" PRIu32 ": resync of target %" PRIu32
		" stopped (%s): %s; retry in %" PRIu32 " ms",
		t->id, s->dst, why, cfs_errname(rc), t->sync_backoff_ms);
	rt_timer_start(&t->sync_retry, t->sync_backoff_ms, 0);
	t->sync_backoff_ms = t->sync_backoff_ms * 2 > SYNC_BACKOFF_MAX_MS ? SYNC_BACKOFF_MAX_MS
									  : t->sync_backoff_ms * 2;
}

/* The chain moved under the walk: stop it and start over for the new one
 * if our successor is (still) syncing. */
static void
sync_changed(struct stor_target *t)
{
	sync_stop(t, 0, "chain changed");
	stor_sync_maybe_start(t);
}

/* The syncing target was made again since the walk started (an emptied
 * directory, a new disk): what was copied before is gone. */
static void
sync_made_again(struct stor_target *t)
{
	RT_INFO("target=%" PRIu32 ": target %" PRIu32
		" was made again during its resync: starting over",
		t->id, t->sync.dst);
	t->sync.mark.valid = false;
	sync_stop(t, 0, "made again");
	stor_sync_maybe_start(t);
}

static void
done_answered(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct stor_target *t = rt_actor_state(self);
	struct stor_sync *s = &t->sync;

	(void)resp;
	(void)cb_arg;
	if (rc == 0) {
		s->done_ver = s->chain_ver;
		s->mark.valid = false;
		RT_INFO("target=%" PRIu32 ": resync of target %" PRIu32 " done: %" PRIu64
			" chunks copied, %" PRIu64 " compared, %" PRIu64 " removed, %" PRIu64
			" records of removes",
			t->id, s->dst, s->copied, s->compared, s->removed, s->records);
	}
	sync_stop(t, rc, "sync_done");
}

static void
sync_report(struct stor_target *t)
{
	struct stor_sync *s = &t->sync;
	struct rt_msg *m = rt_msg_new(CFS_MSG_MGMTD_SYNC_DONE);
	int rc;

	if (!m) {
		sync_stop(t, -ENOMEM, "sync_done");
		return;
	}
	RT_BODY(m, mgmtd_sync_done)->target = s->dst;
	RT_BODY(m, mgmtd_sync_done)->chain_id = t->chain.chain_id;
	RT_BODY(m, mgmtd_sync_done)->chain_ver = s->chain_ver;
	rc = rt_call(t->self, t->chain.mgmtd, m, 0, done_answered, NULL);
	if (rc != 0) {
		rt_msg_free(&m);
		sync_stop(t, rc, "sync_done");
	}
}

static void
copied(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct stor_target *t = rt_actor_state(self);

	(void)resp;
	(void)cb_arg;
	if (rc != 0) {
		sync_stop(t, rc, "copy");
		return;
	}
	t->sync.copied++;
	t->sync_copied++;
	t->sync.i++;
	sync_step(t);
}

/* The syncing target must not hold the chunk: remove it there, whatever it
 * holds (we are in the chunk's turn). */
static void
send_removal(struct stor_target *t, const struct disk_chunk_info *info, rt_reply_fn done)
{
	struct stor_sync *s = &t->sync;
	struct rt_msg *m = rt_msg_new(CFS_MSG_CHUNK_REMOVE);
	struct cfs_chunk_remove *r;
	int rc;

	if (!m) {
		sync_stop(t, -ENOMEM, "remove");
		return;
	}
	r = RT_BODY(m, chunk_remove);
	r->target = s->dst;
	r->chain_id = t->chain.chain_id;
	r->chain_ver = s->chain_ver;
	r->chunk = info->id;
	r->update_ver = info->ver;
	r->flags = STOR_CW_F_FORWARD | STOR_CW_F_SYNC;
	rc = rt_call(t->self, t->chain.members[t->chain.succ].addr, m, 0, done, NULL);
	if (rc != 0) {
		rt_msg_free(&m);
		sync_stop(t, rc, "remove");
	}
}

/* Send the bytes read (data may be NULL for an empty chunk). */
static void
send_copy(struct stor_target *t, const struct disk_chunk_info *info, uint64_t ver, uint32_t crc,
	  const struct rt_iov *data)
{
	struct stor_sync *s = &t->sync;
	/* The request that made the version goes along: the syncing target
	 * stores it with the copy, so a client's retry that reaches it as head
	 * later is answered, not applied again (craq.c, dd_from_engine). */
	const struct stor_whole w = {
		.target = s->dst,
		.chain_id = t->chain.chain_id,
		.chain_ver = s->chain_ver,
		.chunk = info->id,
		.chunk_size = info->chunk_size,
		.ver = ver,
		.client_req = ver == info->ver ? info->req : 0,
		.crc = crc,
		.flags = STOR_CW_F_SYNC,
		.data = data,
	};
	struct rt_msg *m = NULL;
	int rc = stor_whole_msg(&w, &m);

	if (rc != 0)
		goto out_stop;
	rc = rt_call(t->self, t->chain.members[t->chain.succ].addr, m, 0, copied, NULL);
	if (rc != 0)
		goto out_msg;
	return;

out_msg:
	rt_msg_free(&m);
out_stop:
	sync_stop(t, rc, "copy");
}

static void
read_for_copy(void *cb_arg, struct disk_read *dr, unsigned n)
{
	struct stor_target *t = cb_arg;
	struct stor_sync *s = &t->sync;
	/* dr is s->rd, which a walk started over from sync_changed() zeroes:
	 * the buffer is taken first, or it would be lost with it. */
	struct rt_iov data = dr->data;
	struct rt_buf *buf = dr->data.buf;

	(void)n;
	dr->data.buf = NULL;
	if (!sync_current(t))
		sync_changed(t);
	else if (dr->rc != 0)
		sync_stop(t, dr->rc, "read");
	else
		send_copy(t, &s->page[s->i], dr->ver, dr->crc, &data);
	rt_buf_put(&buf);
}

static void
copy_chunk(struct stor_target *t)
{
	struct stor_sync *s = &t->sync;
	struct disk_chunk_info *info = &s->page[s->i];
	int rc;

	/* The committed state now, not when the page was listed. */
	rc = disk_query(t->dt, &info->id, info);
	if (rc == -CFS_ENOCHUNK) {
		s->i++;
		sync_step(t);
		return;
	}
	if (rc != 0) {
		sync_stop(t, rc, "query");
		return;
	}
	if (info->ver == 0) {
		/* Only a leftover first version, pending (our turn: nothing of
		 * it is in flight): nothing committed here, so nothing there;
		 * the head's re-drive brings the version. */
		send_removal(t, info, copied);
		return;
	}
	if (info->len == 0) {
		send_copy(t, info, info->ver, info->crc, NULL);
		return;
	}
	s->rd = (struct disk_read){.id = info->id, .len = info->len};
	rc = disk_read(t->dt, &s->rd, 1, read_for_copy, t);
	if (rc != 0)
		sync_stop(t, rc, "read");
}

static void
compared(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct stor_target *t = rt_actor_state(self);
	struct stor_sync *s = &t->sync;
	const struct disk_chunk_info *info = &s->page[s->i];
	const struct cfs_chunk_query_resp *q;

	(void)cb_arg;
	if (rc != 0 && rc != -CFS_ENOCHUNK) {
		sync_stop(t, rc, "compare");
		return;
	}
	if (!sync_current(t)) {
		sync_changed(t);
		return;
	}
	if (resp && !sync_same_format(s, RT_BODY(resp, chunk_query_resp)->format_id)) {
		sync_made_again(t);
		return;
	}
	s->compared++;
	t->sync_compared++;
	q = rc == 0 ? RT_BODY(resp, chunk_query_resp) : NULL;
	/* The chunk size too: a new life of the chunk may hold the same bytes
	 * under another size, and the size is part of what the copy installs. */
	if ((q && q->committed == info->ver && q->len == info->len && q->crc == info->crc &&
	     q->chunk_size == info->chunk_size && q->pending == 0) ||
	    (!q && info->ver == 0)) {
		/* Equal, or nothing committed on either side. */
		s->i++;
		sync_step(t);
		return;
	}
	copy_chunk(t);
}

/* ------------------------------------------- second walk: the leftovers */

static void sweep_step(struct stor_target *t);
static void records_step(struct stor_target *t);

/* The third walk: the records of removes committed here (disk_removed_find),
 * which the target needs once it is head, to answer a late retry of such a
 * remove instead of applying it again to a chunk made anew since. A page
 * at a time, in the order they were taken; ones taken meanwhile also
 * reach the target as forwarded removes (start_forwarded_tomb records
 * them). No chunk's turn is needed: records change no chunk. */
static void
records_begin(struct stor_target *t)
{
	struct stor_sync *s = &t->sync;

	if (!(s->dst_features & STOR_FEAT_REMOVED_RECORDS)) {
		RT_INFO("target=%" PRIu32 ": target %" PRIu32
			" is of an older build: the records of removes are not copied",
			t->id, s->dst);
		sync_report(t);
		return;
	}
	s->rcursor = 0;
	s->more = true;
	records_step(t);
}

static void
records_sent(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct stor_target *t = rt_actor_state(self);
	struct stor_sync *s = &t->sync;

	(void)cb_arg;
	if (rc != 0) {
		sync_stop(t, rc, "records");
		return;
	}
	if (!sync_current(t)) {
		sync_changed(t);
		return;
	}
	if (!sync_same_format(s, RT_BODY(resp, chunk_removed_resp)->format_id)) {
		sync_made_again(t);
		return;
	}
	s->records += s->n;
	t->sync_records += s->n;
	records_step(t);
}

static void
records_step(struct stor_target *t)
{
	struct stor_sync *s = &t->sync;
	struct disk_removed_rec recs[STOR_SYNC_RECORDS];
	struct cfs_chunk_removed *r;
	struct rt_msg *m;
	int n, rc;

	if (!sync_current(t)) {
		sync_changed(t);
		return;
	}
	n = s->more ? disk_removed_list(t->dt, &s->rcursor, recs, t->max_records, &s->more) : 0;
	if (n == 0) {
		sync_report(t);
		return;
	}
	m = rt_msg_new(CFS_MSG_CHUNK_REMOVED);
	r = m ? RT_BODY(m, chunk_removed) : NULL;
	if (r)
		r->records = rt_msg_alloc(m, (size_t)n * sizeof(*r->records));
	if (!r || !r->records) {
		rt_msg_free(&m);
		sync_stop(t, -ENOMEM, "records");
		return;
	}
	r->target = s->dst;
	r->chain_ver = s->chain_ver;
	for (int i = 0; i < n; i++)
		r->records[i] = (struct cfs_removed_record){.chunk = recs[i].id,
							    .req = recs[i].req,
							    .tver = recs[i].ver,
							    .at_ms = recs[i].at};
	r->records_count = (uint32_t)n;
	s->n = (unsigned)n;
	rc = rt_call(t->self, t->chain.members[t->chain.succ].addr, m, 0, records_sent, NULL);
	if (rc != 0) {
		rt_msg_free(&m);
		sync_stop(t, rc, "records");
	}
}

/* The syncing target's side: a page of records, durable before the answer. */
struct records_ctx {
	struct stor_target *t;
	struct rt_msg *req;
};

static void
records_taken(void *cb_arg, int rc)
{
	struct records_ctx *x = cb_arg;
	struct rt_msg *resp = rt_msg_new(CFS_MSG_CHUNK_REMOVED_RESP);

	if (rc != 0)
		stor_log_fail(x->t, "records", NULL, rc);
	if (resp)
		RT_BODY(resp, chunk_removed_resp)->format_id = x->t->format_id;
	rt_reply(x->req, resp ? rc : -ENOMEM, resp); /* x lives in req's arena */
}

int
stor_on_chunk_removed(struct rt_actor *self, struct rt_msg *req)
{
	struct stor_target *t = rt_actor_state(self);
	const struct cfs_chunk_removed *m = RT_BODY(req, chunk_removed);
	struct disk_removed_rec *recs;
	struct records_ctx *x;
	int rc = stor_check_chain(t, m->target, m->chain_ver, STOR_USE_FORWARD);

	if (rc == 0 && (m->records_count == 0 || m->records_count > DISK_ADOPT_MAX))
		rc = -EINVAL;
	for (uint32_t i = 0; rc == 0 && i < m->records_count; i++)
		if (!stor_id_valid(&m->records[i].chunk) || m->records[i].req == 0)
			rc = -EINVAL;
	if (rc != 0) {
		t->rejected++;
		stor_log_fail(t, "records", NULL, rc);
		return rc;
	}
	recs = rt_msg_alloc(req, m->records_count * sizeof(*recs));
	x = rt_msg_alloc(req, sizeof(*x));
	if (!recs || !x)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->records_count; i++)
		recs[i] = (struct disk_removed_rec){.id = m->records[i].chunk,
						    .req = m->records[i].req,
						    .ver = m->records[i].tver,
						    .at = m->records[i].at_ms};
	*x = (struct records_ctx){.t = t, .req = req};
	return disk_removed_adopt(t->dt, recs, m->records_count, records_taken, x);
}

static void
swept(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct stor_target *t = rt_actor_state(self);

	(void)resp;
	(void)cb_arg;
	if (rc != 0) {
		sync_stop(t, rc, "remove");
		return;
	}
	t->sync.removed++;
	t->sync_removed++;
	t->sync.i++;
	sweep_step(t);
}

static void
listed(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct stor_target *t = rt_actor_state(self);
	struct stor_sync *s = &t->sync;
	const struct cfs_chunk_list_resp *r;

	(void)cb_arg;
	if (rc != 0) {
		sync_stop(t, rc, "list");
		return;
	}
	if (!sync_current(t)) {
		sync_changed(t);
		return;
	}
	r = RT_BODY(resp, chunk_list_resp);
	if (!sync_same_format(s, r->format_id)) {
		sync_made_again(t);
		return;
	}
	s->dst_features = r->features;
	s->n = r->chunks_count < STOR_SYNC_PAGE ? r->chunks_count : STOR_SYNC_PAGE;
	s->more = r->more || r->chunks_count > STOR_SYNC_PAGE;
	s->i = 0;
	for (unsigned k = 0; k < s->n; k++) {
		s->page[k] = (struct disk_chunk_info){
			.id = r->chunks[k].chunk,
			.ver = r->chunks[k].committed,
			.pver = r->chunks[k].pending,
			.ptomb = r->chunks[k].ptomb,
		};
	}
	if (s->n > 0)
		s->next = disk_id_next(&s->page[s->n - 1].id);
	sweep_step(t);
}

/* One step of the second walk: the next of the target's chunks we lack, the
 * next page of its list, or the end (sync_done). */
static void
sweep_step(struct stor_target *t)
{
	struct stor_sync *s = &t->sync;
	struct cfs_chunk_list *l;
	struct disk_chunk_info mine;
	struct rt_msg *m;
	int rc;

	craq_sync_release(t);
	if (!sync_current(t)) {
		sync_changed(t);
		return;
	}
	for (; s->i < s->n; s->i++) {
		/* Held here, even only pending (a first write in flight): kept. */
		if (disk_query(t->dt, &s->page[s->i].id, &mine) == -CFS_ENOCHUNK) {
			rc = craq_sync_hold(t, &s->page[s->i].id);
			if (rc != 0)
				sync_stop(t, rc, "queue");
			return; /* sweep_held goes on */
		}
	}
	if (!s->more) {
		records_begin(t);
		return;
	}
	m = rt_msg_new(CFS_MSG_CHUNK_LIST);
	if (!m) {
		sync_stop(t, -ENOMEM, "list");
		return;
	}
	sync_mark(t);
	l = RT_BODY(m, chunk_list);
	l->target = s->dst;
	if (s->started)
		l->begin = s->next;
	l->max = STOR_SYNC_PAGE;
	s->started = true;
	rc = rt_call(t->self, t->chain.members[t->chain.succ].addr, m, 0, listed, NULL);
	if (rc != 0) {
		rt_msg_free(&m);
		sync_stop(t, rc, "list");
	}
}

/* The chunk's turn: remove it there if we still lack it. */
static void
sweep_held(struct stor_target *t)
{
	struct stor_sync *s = &t->sync;
	struct disk_chunk_info mine;

	if (!sync_current(t)) {
		sync_changed(t);
		return;
	}
	if (disk_query(t->dt, &s->page[s->i].id, &mine) != -CFS_ENOCHUNK) {
		s->i++; /* written here meanwhile: it went there too */
		sweep_step(t);
		return;
	}
	send_removal(t, &s->page[s->i], swept);
}

/* Our chunks are all compared (and copied): now the target's leftovers. */
static void
sync_finish(struct stor_target *t)
{
	struct stor_sync *s = &t->sync;

	craq_sync_release(t);
	s->sweeping = true;
	s->started = false;
	s->more = true;
	s->n = s->i = 0;
	sweep_step(t);
}

/* One step: the next chunk of the page, the next page, or the end. */
static void
sync_step(struct stor_target *t)
{
	struct stor_sync *s = &t->sync;
	int rc;

	craq_sync_release(t);
	if (!sync_current(t)) {
		sync_changed(t);
		return;
	}
	while (s->i == s->n) {
		if (!s->more) {
			sync_finish(t);
			return;
		}
		sync_mark(t);
		s->n = (unsigned)disk_list(t->dt, s->started ? &s->next : NULL, NULL, s->page,
					   STOR_SYNC_PAGE, &s->more);
		s->started = true;
		s->i = 0;
		if (s->n > 0)
			s->next = disk_id_next(&s->page[s->n - 1].id);
	}
	rc = craq_sync_hold(t, &s->page[s->i].id);
	if (rc != 0)
		sync_stop(t, rc, "queue");
	/* compare_held goes on */
}

/* The chunk's turn: compare it with the target's. */
static void
compare_held(struct stor_target *t)
{
	struct stor_sync *s = &t->sync;
	struct rt_msg *m;
	int rc;

	if (!sync_current(t)) {
		sync_changed(t);
		return;
	}
	/* Our state in the chunk's turn, not when the page was listed. */
	rc = disk_query(t->dt, &s->page[s->i].id, &s->page[s->i]);
	if (rc == -CFS_ENOCHUNK) {
		s->i++; /* removed meanwhile, there too (or the sweep will) */
		sync_step(t);
		return;
	}
	if (rc != 0) {
		sync_stop(t, rc, "query");
		return;
	}
	m = rt_msg_new(CFS_MSG_CHUNK_QUERY);
	if (!m) {
		sync_stop(t, -ENOMEM, "compare");
		return;
	}
	RT_BODY(m, chunk_query)->target = s->dst;
	RT_BODY(m, chunk_query)->chunk = s->page[s->i].id;
	rc = rt_call(t->self, t->chain.members[t->chain.succ].addr, m, 0, compared, NULL);
	if (rc != 0) {
		rt_msg_free(&m);
		sync_stop(t, rc, "compare");
	}
}

void
stor_sync_held(struct stor_target *t)
{
	if (!t->sync.running) {
		craq_sync_release(t); /* stopped meanwhile */
		return;
	}
	if (t->sync.sweeping)
		sweep_held(t);
	else
		compare_held(t);
}

void
stor_sync_maybe_start(struct stor_target *t)
{
	const struct stor_chain *c = &t->chain;
	struct stor_sync *s = &t->sync;
	struct stor_sync_mark mark;

	if (!t->in_cluster || s->running || c->pos < 0 || c->succ < 0 ||
	    c->public_state != CFS_TS_SERVING ||
	    c->members[c->succ].public_state != CFS_TS_SYNCING || c->mgmtd == 0 ||
	    s->done_ver == c->chain_ver || rt_now_ns(t->loop) >= c->lease_until_ns)
		return;
	mark = s->mark;
	*s = (struct stor_sync){
		.running = true,
		.more = true,
		.chain_ver = c->chain_ver,
		.dst = c->members[c->succ].target,
		.dst_state_ver = c->members[c->succ].state_ver,
		.own_state_ver = c->members[c->pos].state_ver,
		.done_ver = s->done_ver,
	};
	if (sync_resume(s, &mark)) {
		t->sync_resumed++;
		RT_INFO("target=%" PRIu32 ": resync of target %" PRIu32 " (chain %" PRIu64
			" v%" PRIu32 ") goes on where it stopped (%s)",
			t->id, s->dst, c->chain_id, c->chain_ver,
			s->sweeping ? "removing leftovers" : "comparing");
	} else {
		RT_INFO("target=%" PRIu32 ": resync of target %" PRIu32 " (chain %" PRIu64
			" v%" PRIu32 ") starts",
			t->id, s->dst, c->chain_id, c->chain_ver);
	}
	if (s->sweeping)
		sweep_step(t);
	else
		sync_step(t);
}

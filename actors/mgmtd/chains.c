// SPDX-License-Identifier: MIT
/*
 * Chains: the public-state transition function (pure), how a chain's members
 * are re-evaluated and re-ordered after any change, and how create-chains
 * places replicas on distinct nodes. Nothing here talks to the database or the
 * network; callers commit.
 */
#define RT_LOG_SUBSYS "mgmtd"
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/mgmtd/mgmtd_internal.h"

/*
 * The table of README.md, "Target states". Reading it row by row:
 * a down target (local offline) that was serving becomes lastsrv when no other
 * member still serves (it holds the newest data: the chain must wait for it),
 * offline otherwise; an alive one comes back through waiting, and one at a
 * time (per chain) moves on to syncing while a serving member can feed it;
 * syncing ends as serving once the target is up to date (sync done).
 */
enum cfs_target_state
mgmtd_next_state(enum cfs_target_state cur, enum cfs_local_state local,
		 const struct mgmtd_chain_ctx *ctx)
{
	if (local == CFS_LS_OFFLINE) {
		switch (cur) {
		case CFS_TS_SERVING:
			return ctx->other_serving ? CFS_TS_OFFLINE : CFS_TS_LASTSRV;
		case CFS_TS_LASTSRV:
			return CFS_TS_LASTSRV;
		default:
			return CFS_TS_OFFLINE;
		}
	}
	switch (cur) {
	case CFS_TS_SERVING:
		return CFS_TS_SERVING;
	case CFS_TS_SYNCING:
		if (local == CFS_LS_UPTODATE)
			return CFS_TS_SERVING;
		return ctx->other_serving ? CFS_TS_SYNCING : CFS_TS_WAITING;
	case CFS_TS_WAITING:
		return ctx->other_serving && !ctx->other_syncing ? CFS_TS_SYNCING : CFS_TS_WAITING;
	case CFS_TS_LASTSRV:
		/* Someone else serves already: its data wins, ours gets resynced. */
		return ctx->other_serving ? CFS_TS_WAITING : CFS_TS_SERVING;
	default:
		return CFS_TS_WAITING;
	}
}

enum cfs_local_state
mgmtd_effective_local(struct mgmtd_state *s, const struct mgmtd_target *t)
{
	struct mgmtd_node *n = mgmtd_node_find(s, t->node);

	if (!n || n->state != CFS_NODE_UP || t->admin_offline)
		return CFS_LS_OFFLINE;
	return t->local_state < CFS_LS__COUNT ? t->local_state : CFS_LS_OFFLINE;
}

static bool
is_down(enum cfs_target_state st)
{
	return st == CFS_TS_LASTSRV || st == CFS_TS_OFFLINE;
}

/* Order group of a member: serving, syncing, waiting, down before, down now. */
static unsigned
order_group(enum cfs_target_state before, enum cfs_target_state now)
{
	switch (now) {
	case CFS_TS_SERVING:
		return 0;
	case CFS_TS_SYNCING:
		return 1;
	case CFS_TS_WAITING:
		return 2;
	default:
		return is_down(before) ? 3 : 4;
	}
}

bool
mgmtd_chain_update(struct mgmtd_state *s, struct mgmtd_chain *c)
{
	struct mgmtd_target *t[MGMTD_MAX_REPLICAS];
	enum cfs_target_state before[MGMTD_MAX_REPLICAS], now[MGMTD_MAX_REPLICAS];
	enum cfs_local_state local[MGMTD_MAX_REPLICAS];
	uint32_t order[MGMTD_MAX_REPLICAS], k = 0;
	bool changed = false, moved = true;

	for (uint32_t i = 0; i < c->n; i++) {
		t[i] = mgmtd_target_find(s, c->members[i]);
		if (!t[i])
			CFS_PANIC("chain %" PRIu64 " names unknown target %" PRIu32, c->id,
				  c->members[i]);
		before[i] = now[i] = t[i]->public_state;
		/* "Up-to-date" speaks of the copy a resync made, or of a
		 * serving replica; reported for a member that is neither (a
		 * late report, a member taken out since), it is only online:
		 * it must not carry the member from offline to serving, in this
		 * evaluation or (kept) the next, past the writes it missed. */
		if (t[i]->local_state == CFS_LS_UPTODATE && before[i] != CFS_TS_SYNCING &&
		    before[i] != CFS_TS_SERVING) {
			t[i]->local_state = CFS_LS_ONLINE;
			t[i]->dirty = true;
		}
		local[i] = mgmtd_effective_local(s, t[i]);
	}
	/* Made again (a new disk): its chunks are gone, so it is no lastsrv to
	 * wait for, even if it was the last one holding the data. */
	for (uint32_t i = 0; i < c->n; i++) {
		bool had_data = before[i] == CFS_TS_SERVING || before[i] == CFS_TS_LASTSRV;
		bool other = false;

		if (!t[i]->replaced)
			continue;
		t[i]->replaced = false;
		for (uint32_t j = 0; j < c->n; j++)
			other |= j != i &&
				 (before[j] == CFS_TS_SERVING || before[j] == CFS_TS_LASTSRV);
		if (had_data && !other)
			RT_ERRLOG("chain=%" PRIu64 " target=%" PRIu32
				  ": its only up-to-date replica was made again;"
				  " the chain waits for an operator",
				  c->id, t[i]->id);
		now[i] = CFS_TS_OFFLINE;
		local[i] = CFS_LS_OFFLINE;
	}
	/* Each pass can only move a member along offline -> waiting -> syncing ->
	 * serving or down, so a fixpoint comes within a few passes. */
	for (unsigned pass = 0; moved && pass < 4 * MGMTD_MAX_REPLICAS; pass++) {
		moved = false;
		for (uint32_t i = 0; i < c->n; i++) {
			struct mgmtd_chain_ctx ctx = {0};
			enum cfs_target_state next;

			for (uint32_t j = 0; j < c->n; j++) {
				if (j == i)
					continue;
				ctx.other_serving |= now[j] == CFS_TS_SERVING;
				ctx.other_syncing |= now[j] == CFS_TS_SYNCING;
			}
			next = mgmtd_next_state(now[i], local[i], &ctx);
			if (next != now[i]) {
				now[i] = next;
				moved = true;
			}
		}
	}
	for (unsigned g = 0; g < 5; g++) {
		for (uint32_t i = 0; i < c->n; i++) {
			if (order_group(before[i], now[i]) == g)
				order[k++] = i;
		}
	}
	for (uint32_t p = 0; p < c->n; p++) {
		struct mgmtd_target *m = t[order[p]];

		if (m->public_state != now[order[p]]) {
			RT_INFO("chain=%" PRIu64 " target=%" PRIu32 " %s -> %s local=%s", c->id,
				m->id, cfs_target_state_name(m->public_state),
				cfs_target_state_name(now[order[p]]),
				cfs_local_state_name(local[order[p]]));
			/* A member out of serving has stopped getting writes: an
			 * "up-to-date" its node said before is about data that
			 * is now behind. Only a new report (sync done, or one
			 * made under routing that shows the change) counts; one
			 * kept from before would let it straight back in,
			 * unsynced, when the operator undoes offline-target
			 * before its node beats again. */
			if (m->public_state == CFS_TS_SERVING && m->local_state == CFS_LS_UPTODATE)
				m->local_state = CFS_LS_ONLINE;
			m->public_state = now[order[p]];
			m->state_changed = true;
			m->dirty = true;
			changed = true;
		}
		if (c->members[p] != m->id || m->position != p) {
			changed |= c->members[p] != m->id;
			c->members[p] = m->id;
			m->position = p;
			m->dirty = true;
		}
	}
	if (changed) {
		c->ver++;
		c->dirty = true;
		s->routing_changed = true;
		RT_INFO("chain=%" PRIu64 " ver=%" PRIu32 ": members reordered or states changed",
			c->id, c->ver);
	}
	return changed;
}

bool
mgmtd_chains_update_node(struct mgmtd_state *s, uint32_t node)
{
	bool changed = false;

	for (uint32_t i = 0; i < s->nchains; i++) {
		struct mgmtd_chain *c = &s->chains[i];
		bool touches = false;

		for (uint32_t m = 0; m < c->n && !touches; m++) {
			struct mgmtd_target *t = mgmtd_target_find(s, c->members[m]);

			touches = t && t->node == node;
		}
		if (touches)
			changed |= mgmtd_chain_update(s, c);
	}
	return changed;
}

/* ------------------------------------------------------- create-chains */

struct free_node {
	uint32_t node;
	uint32_t nfree;
	uint32_t next;	   /* index of its next free target in the sorted list */
	uint32_t *targets; /* free target ids, ascending */
};

static int
cmp_free_node(const void *a, const void *b)
{
	const struct free_node *x = a, *y = b;

	if (x->nfree != y->nfree)
		return x->nfree < y->nfree ? 1 : -1;
	return (x->node > y->node) - (x->node < y->node);
}

/* How many chains of `replicas` the free counts allow: always take one from
 * each of the `replicas` fullest nodes (a copy of the counts is consumed). */
static uint32_t
max_chains(const struct free_node *nodes, uint32_t nn, uint32_t replicas)
{
	uint32_t *cnt = malloc((nn ? nn : 1) * sizeof(*cnt));
	uint32_t made = 0;

	if (!cnt)
		return 0;
	for (uint32_t i = 0; i < nn; i++)
		cnt[i] = nodes[i].nfree;
	for (;;) {
		/* Selection of the `replicas` largest counts, by repeated maximum. */
		uint32_t pick[MGMTD_MAX_REPLICAS], k;

		for (k = 0; k < replicas; k++) {
			uint32_t best = UINT32_MAX;

			for (uint32_t i = 0; i < nn; i++) {
				bool taken = false;

				for (uint32_t j = 0; j < k; j++)
					taken |= pick[j] == i;
				if (!taken && cnt[i] > 0 &&
				    (best == UINT32_MAX || cnt[i] > cnt[best]))
					best = i;
			}
			if (best == UINT32_MAX)
				break;
			pick[k] = best;
		}
		if (k < replicas)
			break;
		for (k = 0; k < replicas; k++)
			cnt[pick[k]]--;
		made++;
	}
	free(cnt);
	return made;
}

static void
describe_free(const struct free_node *nodes, uint32_t nn, char *detail, size_t len, size_t off)
{
	for (uint32_t i = 0; i < nn && off < len; i++) {
		int w = snprintf(detail + off, len - off, "%snode %" PRIu32 ": %" PRIu32,
				 i ? ", " : "", nodes[i].node, nodes[i].nfree);

		if (w < 0)
			return;
		off += (size_t)w;
	}
}

int
mgmtd_chains_create(struct mgmtd_state *s, uint32_t replicas, uint32_t want, uint32_t *created,
		    char *detail, size_t detail_len)
{
	struct free_node *nodes = NULL;
	uint32_t *ids = NULL, nn = 0, possible, made = 0;
	int rc = 0;

	*created = 0;
	if (detail_len)
		detail[0] = '\0';
	if (replicas == 0 || replicas > MGMTD_MAX_REPLICAS) {
		snprintf(detail, detail_len, "replicas must be 1..%d", MGMTD_MAX_REPLICAS);
		return -EINVAL;
	}
	nodes = calloc(s->nnodes ? s->nnodes : 1, sizeof(*nodes));
	ids = malloc((s->ntargets ? s->ntargets : 1) * sizeof(*ids));
	if (!nodes || !ids) {
		rc = -ENOMEM;
		goto out;
	}
	/* Targets are sorted by id, so each node's list comes out ascending. */
	for (uint32_t n = 0, used = 0; n < s->nnodes; n++) {
		struct free_node *fn = &nodes[nn];

		fn->node = s->nodes[n].id;
		fn->targets = ids + used;
		for (uint32_t i = 0; i < s->ntargets; i++) {
			struct mgmtd_target *t = &s->targets[i];

			if (t->node == fn->node && t->chain_id == 0 &&
			    mgmtd_effective_local(s, t) != CFS_LS_OFFLINE)
				fn->targets[fn->nfree++] = t->id;
		}
		used += fn->nfree;
		if (fn->nfree)
			nn++;
	}
	possible = max_chains(nodes, nn, replicas);
	if (possible == 0 || (want && possible < want)) {
		int off;

		if (possible == 0)
			off = snprintf(detail, detail_len,
				       "%" PRIu32 " replicas need %" PRIu32 " distinct nodes with "
				       "free alive targets; found %" PRIu32 " (",
				       replicas, replicas, nn);
		else
			off = snprintf(detail, detail_len,
				       "%" PRIu32 " chains of %" PRIu32 " replicas do not fit: at "
				       "most %" PRIu32 " on distinct nodes (",
				       want, replicas, possible);
		if (off > 0 && (size_t)off < detail_len) {
			describe_free(nodes, nn, detail, detail_len, (size_t)off);
			off = (int)strlen(detail);
			snprintf(detail + off, detail_len - (size_t)off, "%sfree targets)",
				 nn ? " " : "no ");
		}
		rc = -CFS_EPLACEMENT;
		goto out;
	}
	if (want == 0)
		want = possible;
	if (s->nchains + want < s->nchains) {
		rc = -EINVAL;
		goto out;
	}
	while (made < want) {
		struct mgmtd_chain *c;
		uint32_t pick[MGMTD_MAX_REPLICAS];
		uint64_t id = s->next_chain_id ? s->next_chain_id : 1;

		qsort(nodes, nn, sizeof(*nodes), cmp_free_node);
		c = mgmtd_chain_add(s, id);
		if (!c) {
			rc = -ENOMEM;
			goto out;
		}
		s->next_chain_id = id + 1;
		s->config_dirty = true;
		for (uint32_t k = 0; k < replicas; k++) {
			pick[k] = nodes[k].targets[nodes[k].next++];
			nodes[k].nfree--;
		}
		c->ver = 1;
		c->n = replicas;
		c->dirty = true;
		for (uint32_t k = 0; k < replicas; k++) {
			uint32_t tid = pick[(k + id) % replicas];
			struct mgmtd_target *t = mgmtd_target_find(s, tid);

			c->members[k] = tid;
			t->chain_id = id;
			t->position = k;
			t->public_state = CFS_TS_SERVING;
			t->state_changed = true;
			t->dirty = true;
		}
		s->routing_changed = true;
		made++;
		RT_INFO("chain=%" PRIu64 " ver=1 replicas=%" PRIu32 ": created", id, replicas);
	}
	*created = made;
out:
	free(nodes);
	free(ids);
	return rc;
}

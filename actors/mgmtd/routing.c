// SPDX-License-Identifier: MIT
/*
 * Routing info out of mgmtd: the state turned into the arrays of
 * MGMTD_ROUTING_RESP / ROUTING_UPDATE, and the subscribers that get a
 * ROUTING_UPDATE on every new routing version. A subscriber is the address a
 * request came from plus the connection it came on (0: same node), so a
 * client that is not a listening node still gets pushes: they go back on its
 * own connection, as replies do. A subscription lasts one lease and is renewed
 * by every subscribe or heartbeat; a push the runtime refuses drops it, and a
 * push lost on the way is made up by the subscriber's next poll, which
 * carries its version.
 */
#define RT_LOG_SUBSYS "mgmtd"
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "actors/mgmtd/mgmtd_internal.h"

static int
set_cstr(struct rt_msg *m, struct cfs_bytes *dst, const char *s)
{
	return rt_msg_set_str(m, dst, s ? s : "");
}

/* msgpack at its widest: array or str header 5, U32 5, U64 9 (wire.c). */
#define MP_HDR 5u
#define MP_U32 5u
#define MP_U64 9u

size_t
mgmtd_routing_bytes(const struct mgmtd_state *s)
{
	/* The frame's own fields, the body's scalars and its four arrays. */
	size_t n = 128 + 4 * MP_HDR;

	for (uint32_t i = 0; i < s->nnodes; i++)
		n += MP_HDR + MP_U32 + MP_HDR + MP_U32 + MP_U64 +
		     (s->nodes[i].endpoint ? strlen(s->nodes[i].endpoint) : 0);
	for (uint32_t i = 0; i < s->ntargets; i++)
		n += MP_HDR + 4 * MP_U32 + 3 * MP_U64 + MP_HDR +
		     (s->targets[i].path ? strlen(s->targets[i].path) : 0);
	for (uint32_t i = 0; i < s->nchains; i++)
		n += MP_HDR + MP_U64 + 3 * MP_U32 +
		     (size_t)s->chains[i].n * (MP_HDR + 3 * MP_U32 + 2 * MP_U64);
	return n;
}

int
mgmtd_routing_fill(const struct mgmtd_state *s, uint64_t now_ns, struct rt_msg *m)
{
	struct cfs_node_info *nodes;
	struct cfs_target_info *targets;
	struct cfs_chain_info *chains;
	struct cfs_chain_member *members;
	uint32_t nmembers = 0, k = 0;

	for (uint32_t i = 0; i < s->nchains; i++)
		nmembers += s->chains[i].n;
	nodes = rt_msg_alloc(m, (s->nnodes ? s->nnodes : 1) * sizeof(*nodes));
	targets = rt_msg_alloc(m, (s->ntargets ? s->ntargets : 1) * sizeof(*targets));
	chains = rt_msg_alloc(m, (s->nchains ? s->nchains : 1) * sizeof(*chains));
	members = rt_msg_alloc(m, (nmembers ? nmembers : 1) * sizeof(*members));
	if (!nodes || !targets || !chains || !members)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->nnodes; i++) {
		const struct mgmtd_node *n = &s->nodes[i];

		nodes[i].node_id = n->id;
		nodes[i].state = n->state;
		nodes[i].hb_age_ms =
			now_ns > n->last_hb_ns ? (now_ns - n->last_hb_ns) / 1000000 : 0;
		if (set_cstr(m, &nodes[i].endpoint, n->endpoint) != 0)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->ntargets; i++) {
		const struct mgmtd_target *t = &s->targets[i];

		targets[i].target = t->id;
		targets[i].node_id = t->node;
		targets[i].addr = t->addr;
		targets[i].chain_id = t->chain_id;
		targets[i].public_state = t->public_state;
		/* What mgmtd acts on: offline also when the node is down or an
		 * operator took the target out. */
		targets[i].local_state = mgmtd_effective_local((struct mgmtd_state *)s, t);
		targets[i].format_id = t->format_id;
		if (set_cstr(m, &targets[i].path, t->path) != 0)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->nchains; i++) {
		const struct mgmtd_chain *c = &s->chains[i];

		chains[i].chain_id = c->id;
		chains[i].chain_ver = c->ver;
		chains[i].first = k;
		chains[i].count = c->n;
		for (uint32_t p = 0; p < c->n; p++, k++) {
			/* Lookups on a const state: the arrays are sorted, search them here. */
			const struct mgmtd_target *t = NULL;
			uint32_t lo = 0, hi = s->ntargets;

			while (lo < hi) {
				uint32_t mid = lo + (hi - lo) / 2;

				if (s->targets[mid].id == c->members[p]) {
					t = &s->targets[mid];
					break;
				}
				if (s->targets[mid].id < c->members[p])
					lo = mid + 1;
				else
					hi = mid;
			}
			members[k].target = c->members[p];
			members[k].node_id = t ? t->node : 0;
			members[k].addr = t ? t->addr : 0;
			members[k].public_state = t ? t->public_state : CFS_TS_OFFLINE;
			members[k].state_ver = t ? t->state_ver : 0;
		}
	}

#define FILL(b)                                                                                    \
	do {                                                                                       \
		(b)->routing_ver = s->routing_ver;                                                 \
		(b)->heartbeat_ms = s->heartbeat_ms;                                               \
		(b)->lease_ms = s->lease_ms;                                                       \
		(b)->nodes = nodes;                                                                \
		(b)->nodes_count = s->nnodes;                                                      \
		(b)->targets = targets;                                                            \
		(b)->targets_count = s->ntargets;                                                  \
		(b)->chains = chains;                                                              \
		(b)->chains_count = s->nchains;                                                    \
		(b)->members = members;                                                            \
		(b)->members_count = nmembers;                                                     \
	} while (0)
	if (m->type == CFS_MSG_MGMTD_ROUTING_RESP)
		FILL(RT_BODY(m, mgmtd_routing_resp));
	else if (m->type == CFS_MSG_ROUTING_UPDATE)
		FILL(RT_BODY(m, routing_update));
	else
		return -EINVAL;
#undef FILL
	return 0;
}

/* --------------------------------------------------------- subscribers */

int
mgmtd_subs_add(struct mgmtd_subs *subs, cfs_addr_t addr, uint64_t conn, uint64_t expires_ns)
{
	uint32_t same_conn = 0;

	for (uint32_t i = 0; i < subs->n; i++) {
		if (subs->v[i].conn != conn)
			continue;
		if (subs->v[i].addr == addr) {
			subs->v[i].expires_ns = expires_ns;
			return 0;
		}
		same_conn++;
	}
	/* One connection may not take the table: every push costs a copy of
	 * the whole routing per subscriber. */
	if (subs->n >= MGMTD_MAX_SUBSCRIBERS || (conn != 0 && same_conn >= MGMTD_SUBS_PER_CONN))
		return -CFS_EBUSY;
	if (subs->n == subs->cap) {
		uint32_t cap = subs->cap ? subs->cap * 2 : 16;
		void *p = realloc(subs->v, cap * sizeof(*subs->v));

		if (!p)
			return -ENOMEM;
		subs->v = p;
		subs->cap = cap;
	}
	subs->v[subs->n++] =
		(struct mgmtd_sub){.addr = addr, .conn = conn, .expires_ns = expires_ns};
	return 0;
}

void
mgmtd_subs_remove(struct mgmtd_subs *subs, uint32_t i)
{
	subs->v[i] = subs->v[--subs->n];
}

uint32_t
mgmtd_subs_expire(struct mgmtd_subs *subs, uint64_t now_ns)
{
	uint32_t gone = 0;

	for (uint32_t i = 0; i < subs->n;) {
		if (subs->v[i].expires_ns <= now_ns) {
			RT_DEBUG("subscriber addr=0x%016" PRIx64 " conn=0x%" PRIx64 ": expired",
				 subs->v[i].addr, subs->v[i].conn);
			mgmtd_subs_remove(subs, i);
			gone++;
		} else {
			i++;
		}
	}
	return gone;
}

void
mgmtd_subs_fini(struct mgmtd_subs *subs)
{
	free(subs->v);
	*subs = (struct mgmtd_subs){0};
}

uint32_t
mgmtd_subs_push(struct rt_actor *self, struct mgmtd_subs *subs, const struct mgmtd_state *s,
		uint64_t now_ns)
{
	uint32_t sent = 0;

	for (uint32_t i = 0; i < subs->n;) {
		struct rt_msg *m = rt_msg_new(CFS_MSG_ROUTING_UPDATE);
		int rc = m ? mgmtd_routing_fill(s, now_ns, m) : -ENOMEM;

		if (rc == 0) {
			m->dst = subs->v[i].addr;
			m->flags |= RT_MSG_F_ONEWAY;
			/* Back over the connection it subscribed on (conn 0: by address). */
			rc = rt_send_conn(self, subs->v[i].conn, m);
		}
		if (rc == 0) {
			sent++;
			i++;
			continue;
		}
		rt_msg_free(&m);
		if (rc == -ENOMEM || rc == -CFS_EBUSY) {
			/* The subscriber may be fine; its next poll catches up. */
			i++;
			continue;
		}
		RT_INFO("subscriber addr=0x%016" PRIx64 " conn=0x%" PRIx64 ": dropped: %s",
			subs->v[i].addr, subs->v[i].conn, cfs_errname(rc));
		mgmtd_subs_remove(subs, i);
	}
	return sent;
}

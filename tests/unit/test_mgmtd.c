/* SPDX-License-Identifier: MIT */
/*
 * Tests of the cluster manager (actors/mgmtd), the node side of membership
 * (actors/node/nodectl.c), the client routing cache (src/client/routing.c) and
 * the frozen placement (src/client/placement.c).
 *
 * Three levels:
 *   - pure functions: the placement permutation against pinned outputs (from
 *     an independent Python version of placement.h's text), the transition
 *     function against its table for every input;
 *   - the cluster state (struct mgmtd_state) on SQLite in a temp dir, driven
 *     with explicit times, so leases run out without sleeping: registration,
 *     heartbeats, failover, resync, lastsrv, create-chains, restart, bad input,
 *     and a seeded random walk of failures checked against a model of which
 *     replicas hold every committed write;
 *   - actors on a real runtime in this process: mgmtd, fake nodes (a driver
 *     actor), real nodectl actors with fake storage actors, and the routing
 *     cache. Waits there poll for a condition with a hang guard only; nothing
 *     asserts on time.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "actors/mgmtd/mgmtd_internal.h"
#include "actors/node/nodectl.h"
#include "client/placement.h"
#include "client/routing.h"
#include "net/wire.h"
#include "rt/rt.h"

#define MS	 1000000ull
#define HB_MS	 100
#define LEASE_MS 1000
#define WAIT_S	 60 /* hang guard, not a performance bound */

/* ----------------------------------------------------------- temp dirs */

struct tmp {
	char dir[64];
	char db[128];
};

/* On tmpfs when there is one: the tests commit thousands of transactions and
 * what they check is the logic, not the disk (synchronous=FULL stays on). */
static void
tmp_make(struct tmp *t)
{
	snprintf(t->dir, sizeof(t->dir), "%s/test_mgmtd.XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(t->dir));
	snprintf(t->db, sizeof(t->db), "%s/mgmtd.db", t->dir);
}

static void
tmp_remove(struct tmp *t)
{
	DIR *d = opendir(t->dir);
	struct dirent *e;
	char p[512];

	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", t->dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(t->dir);
}

/* ------------------------------------------------------------ placement */

START_TEST(test_placement_mix64_pinned_when_known_inputs)
{
	ck_assert_uint_eq(cfs_mix64(0), 0xe220a8397b1dcdafull);
	ck_assert_uint_eq(cfs_mix64(1), 0x910a2dec89025cc1ull);
	ck_assert_uint_eq(cfs_mix64(0xdeadbeef), 0x4adfb90f68c9eb9bull);
}
END_TEST

START_TEST(test_placement_perm_pinned_when_known_inputs)
{
	/* From tests' independent Python rendering of placement.h's definition. */
	static const struct {
		uint64_t seed;
		uint32_t n;
		uint32_t out[10];
	} rows[] = {
		{0, 3, {0, 1, 2}},
		{1, 3, {1, 0, 2}},
		{42, 8, {1, 2, 5, 7, 3, 4, 0, 6}},
		{0x123456789abcdefull, 10, {3, 2, 0, 5, 8, 6, 1, 4, 9, 7}},
		{7, 1000, {256, 152, 981, 858, 959, 236, 304, 992, 128, 649}},
		{0xffffffffffffffffull, 5, {0, 2, 4, 3, 1}},
	};
	static const uint32_t chunks[12] = {4, 3, 0, 1, 2, 5, 4, 3, 0, 1, 2, 5};

	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		for (uint32_t i = 0; i < rows[r].n && i < 10; i++)
			ck_assert_uint_eq(cfs_perm(rows[r].seed, rows[r].n, i), rows[r].out[i]);
	}
	for (uint64_t i = 0; i < 12; i++)
		ck_assert_uint_eq(cfs_place_chunk(99, i, 6), chunks[i]);
	ck_assert_uint_eq(cfs_perm(5, 4000000000u, 123456789), 3989381619u);
	ck_assert_uint_eq(cfs_perm(5, 4000000000u, 0), 2516553599u);
}
END_TEST

START_TEST(test_placement_perm_is_bijection_when_sizes_vary)
{
	static uint8_t seen[1100];

	for (uint32_t n = 1; n <= 1100; n += (n < 70 ? 1 : 97)) {
		for (uint64_t seed = 0; seed < 5; seed++) {
			memset(seen, 0, sizeof(seen));
			for (uint32_t i = 0; i < n; i++) {
				uint32_t p = cfs_perm(seed * 0x9e3779b97f4a7c15ull, n, i);

				ck_assert_uint_lt(p, n);
				ck_assert_uint_eq(seen[p], 0);
				seen[p] = 1;
			}
		}
	}
	ck_assert_uint_eq(cfs_perm(3, 0, 0), 0);
	ck_assert_uint_eq(cfs_perm(3, 4, 4), 0);
	ck_assert_uint_eq(cfs_place_chunk(3, 10, 0), 0);
}
END_TEST

START_TEST(test_placement_chunks_touch_every_chain_when_one_stripe_runs)
{
	for (uint32_t stripe = 1; stripe <= 32; stripe++) {
		for (uint64_t start = 0; start < 3 * stripe; start += stripe) {
			uint64_t mask = 0;

			for (uint64_t i = start; i < start + stripe; i++)
				mask |= 1ull << cfs_place_chunk(1234, i, stripe);
			ck_assert_uint_eq(mask, stripe == 64 ? ~0ull : (1ull << stripe) - 1);
		}
	}
}
END_TEST

/* ----------------------------------------------------- transition table */

START_TEST(test_transition_matches_table_when_every_input)
{
	enum {
		S = CFS_TS_SERVING,
		Y = CFS_TS_SYNCING,
		W = CFS_TS_WAITING,
		L = CFS_TS_LASTSRV,
		O = CFS_TS_OFFLINE
	};
	/* exp[cur][local][other_serving][other_syncing], as in README.md. */
	static const int exp[5][3][2][2] = {
		/* serving:  up-to-date, online, offline */
		[S] = {{{S, S}, {S, S}}, {{S, S}, {S, S}}, {{L, L}, {O, O}}},
		[Y] = {{{S, S}, {S, S}}, {{W, W}, {Y, Y}}, {{O, O}, {O, O}}},
		[W] = {{{W, W}, {Y, W}}, {{W, W}, {Y, W}}, {{O, O}, {O, O}}},
		[L] = {{{S, S}, {W, W}}, {{S, S}, {W, W}}, {{L, L}, {L, L}}},
		[O] = {{{W, W}, {W, W}}, {{W, W}, {W, W}}, {{O, O}, {O, O}}},
	};
	unsigned n = 0;

	for (int cur = 0; cur < CFS_TS__COUNT; cur++) {
		for (int loc = 0; loc < CFS_LS__COUNT; loc++) {
			for (int os = 0; os < 2; os++) {
				for (int osy = 0; osy < 2; osy++) {
					struct mgmtd_chain_ctx ctx = {.other_serving = os,
								      .other_syncing = osy};
					enum cfs_target_state got =
						mgmtd_next_state((enum cfs_target_state)cur,
								 (enum cfs_local_state)loc, &ctx);

					ck_assert_msg((int)got == exp[cur][loc][os][osy],
						      "cur=%s local=%s os=%d osy=%d: got %s",
						      cfs_target_state_name(cur),
						      cfs_local_state_name(loc), os, osy,
						      cfs_target_state_name(got));
					n++;
				}
			}
		}
	}
	ck_assert_uint_eq(n, 60);
}
END_TEST

/* ------------------------------------------------------ state fixtures */

struct cl {
	struct tmp tmp;
	struct mgmtd_state s;
	uint64_t now;
};

/* (Re)open the database as a mgmtd with lease_ms (heartbeats at a tenth). */
static void
cl_open_lease(struct cl *c, uint32_t lease_ms)
{
	memset(&c->s, 0, sizeof(c->s));
	c->s.heartbeat_ms = lease_ms / 10;
	c->s.lease_ms = lease_ms;
	ck_assert_int_eq(mgmtd_db_open(&c->s, c->tmp.db, c->now), 0);
}

static void
cl_open(struct cl *c)
{
	cl_open_lease(c, LEASE_MS);
}

static void
cl_start(struct cl *c)
{
	memset(c, 0, sizeof(*c));
	tmp_make(&c->tmp);
	c->now = 1000 * MS;
	cl_open(c);
}

static void
cl_stop(struct cl *c)
{
	mgmtd_state_fini(&c->s);
	tmp_remove(&c->tmp);
}

/* Report `n` targets first, first+1, ... with local state ls. */
/* Each target's format id as its node reports it (by target id; 0: a node
 * that does not say). */
static uint64_t g_format[64];

static void
reports(struct cfs_target_report *r, uint32_t first, uint32_t n, enum cfs_local_state ls)
{
	static char paths[64][32];

	for (uint32_t i = 0; i < n; i++) {
		snprintf(paths[(first + i) % 64], sizeof(paths[0]), "/d/%u", first + i);
		r[i] = (struct cfs_target_report){
			.target = first + i,
			.addr = CFS_ADDR(first / 10, 0x100 + i),
			.local_state = ls,
			.format_id = g_format[(first + i) % 64],
			.path = {(const uint8_t *)paths[(first + i) % 64],
				 (uint32_t)strlen(paths[(first + i) % 64])},
		};
	}
}

/* Node k runs targets 10k+1 .. 10k+n. */
static int
reg(struct cl *c, uint32_t node, uint32_t n)
{
	struct cfs_target_report r[8];
	char ep[32];

	reports(r, node * 10 + 1, n, CFS_LS_ONLINE);
	snprintf(ep, sizeof(ep), "127.0.0.1:%u", 7000 + node);
	return mgmtd_op_register(&c->s, c->now, node, ep, strlen(ep), r, n, NULL);
}

static int
hb(struct cl *c, uint32_t node, uint32_t n, enum cfs_local_state ls, uint64_t seen_ver)
{
	struct cfs_target_report r[8];

	reports(r, node * 10 + 1, n, ls);
	return mgmtd_op_heartbeat(&c->s, c->now, node, seen_ver, r, n, NULL);
}

static void
advance(struct cl *c, uint64_t ms)
{
	c->now += ms * MS;
	ck_assert_int_eq(mgmtd_op_tick(&c->s, c->now, NULL), 0);
}

static enum cfs_target_state
pstate(struct cl *c, uint32_t target)
{
	struct mgmtd_target *t = mgmtd_target_find(&c->s, target);

	ck_assert_ptr_nonnull(t);
	return t->public_state;
}

/* "21:S 31:O" style picture of a chain, head first. */
static const char *
chain_str(struct cl *c, uint64_t id)
{
	static char buf[256];
	struct mgmtd_chain *ch = mgmtd_chain_find(&c->s, id);
	size_t off = 0;

	ck_assert_ptr_nonnull(ch);
	buf[0] = '\0';
	for (uint32_t i = 0; i < ch->n; i++) {
		static const char letter[] = "SYWLO";

		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%u:%c", i ? " " : "",
					ch->members[i], letter[pstate(c, ch->members[i])]);
	}
	return buf;
}

/* Three nodes with one target each and one chain of three over them. */
static void
three_node_chain(struct cl *c)
{
	uint32_t made = 0;
	char detail[256];

	for (uint32_t n = 1; n <= 3; n++)
		ck_assert_int_eq(reg(c, n, 1), 0);
	ck_assert_int_eq(
		mgmtd_op_create_chains(&c->s, c->now, 3, 1, &made, detail, sizeof(detail), NULL),
		0);
	ck_assert_uint_eq(made, 1);
}

/* Heartbeat every node in `alive` (bit k: node k) with its routing view. */
static void
beat(struct cl *c, unsigned alive, uint32_t per_node)
{
	for (uint32_t n = 1; n <= 3; n++) {
		if (alive & (1u << n))
			ck_assert_int_eq(hb(c, n, per_node, CFS_LS_ONLINE, c->s.routing_ver), 0);
	}
}

/* --------------------------------------------------------- registration */

START_TEST(test_register_records_node_and_targets_when_new)
{
	struct cl c;
	struct mgmtd_node *n;
	struct mgmtd_target *t;
	uint64_t v0;

	cl_start(&c);
	v0 = c.s.routing_ver;
	ck_assert_int_eq(reg(&c, 2, 3), 0);
	ck_assert_uint_gt(c.s.routing_ver, v0);
	n = mgmtd_node_find(&c.s, 2);
	ck_assert_ptr_nonnull(n);
	ck_assert_str_eq(n->endpoint, "127.0.0.1:7002");
	ck_assert_int_eq(n->state, CFS_NODE_UP);
	ck_assert_uint_eq(c.s.ntargets, 3);
	t = mgmtd_target_find(&c.s, 22);
	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(t->node, 2);
	ck_assert_str_eq(t->path, "/d/22");
	ck_assert_uint_eq(t->chain_id, 0);
	ck_assert_int_eq(t->local_state, CFS_LS_ONLINE);
	cl_stop(&c);
}
END_TEST

START_TEST(test_register_refused_when_input_is_bad)
{
	struct cl c;
	struct cfs_target_report r[3];
	uint64_t v0;

	cl_start(&c);
	ck_assert_int_eq(reg(&c, 1, 2), 0);
	v0 = c.s.routing_ver;
	reports(r, 21, 2, CFS_LS_ONLINE);
	ck_assert_int_eq(mgmtd_op_register(&c.s, c.now, 0, "h:1", 3, r, 2, NULL), -EINVAL);
	ck_assert_int_eq(mgmtd_op_register(&c.s, c.now, 0xff000001u, "h:1", 3, r, 2, NULL),
			 -EINVAL);
	ck_assert_int_eq(mgmtd_op_register(&c.s, c.now, 2, "", 0, r, 2, NULL), -EINVAL);
	ck_assert_int_eq(mgmtd_op_register(&c.s, c.now, 2, "a\0b", 3, r, 2, NULL), -EINVAL);
	r[1].target = 21; /* twice */
	ck_assert_int_eq(mgmtd_op_register(&c.s, c.now, 2, "h:1", 3, r, 2, NULL), -EINVAL);
	reports(r, 21, 2, CFS_LS_ONLINE);
	r[0].target = 0;
	ck_assert_int_eq(mgmtd_op_register(&c.s, c.now, 2, "h:1", 3, r, 2, NULL), -EINVAL);
	reports(r, 21, 2, CFS_LS_ONLINE);
	r[1].local_state = 7;
	ck_assert_int_eq(mgmtd_op_register(&c.s, c.now, 2, "h:1", 3, r, 2, NULL), -EINVAL);
	/* Target 11 is node 1's. */
	reports(r, 21, 2, CFS_LS_ONLINE);
	r[1].target = 11;
	ck_assert_int_eq(mgmtd_op_register(&c.s, c.now, 2, "h:1", 3, r, 2, NULL),
			 -CFS_ETARGETOWNED);
	/* Nothing of it stuck. */
	ck_assert_ptr_null(mgmtd_node_find(&c.s, 2));
	ck_assert_uint_eq(c.s.ntargets, 2);
	ck_assert_uint_eq(c.s.routing_ver, v0);
	/* Heartbeat of an unknown node: register first. */
	ck_assert_int_eq(hb(&c, 5, 1, CFS_LS_ONLINE, 0), -CFS_ENONODE);
	ck_assert_int_eq(mgmtd_op_heartbeat(&c.s, c.now, 0, 0, NULL, 0, NULL), -EINVAL);
	cl_stop(&c);
}
END_TEST

/* The routing as mgmtd sends it; its encoding is checked to fit the bound
 * mgmtd_routing_bytes() counts. */
static struct rt_msg *
routing_msg(struct cl *c)
{
	struct rt_msg *m = rt_msg_new(CFS_MSG_MGMTD_ROUTING_RESP);
	struct wire_buf wb;

	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(mgmtd_routing_fill(&c->s, c->now, m), 0);
	m->flags |= RT_MSG_F_RESP;
	wire_buf_init(&wb);
	ck_assert_int_eq(wire_encode(&wb, m, NULL), 0);
	ck_assert_uint_le(wb.len, mgmtd_routing_bytes(&c->s));
	wire_buf_fini(&wb);
	return m;
}

/* Reports are bounded (a node has at most 256 targets), and so is the
 * routing: a registration that would make it larger than a node accepts
 * (its frame header, 1 MiB by default) is refused and changes nothing, while
 * the nodes already there keep beating. */
START_TEST(test_register_refused_when_reports_or_routing_too_large)
{
	enum { N = MGMTD_NODE_TARGETS_MAX };
	static struct cfs_target_report r[N + 1];
	static char path[MGMTD_PATH_MAX];
	struct rt_msg *m;
	struct cl c;
	uint64_t v0;

	memset(path, 'p', sizeof(path) - 1);
	cl_start(&c);
	for (uint32_t i = 0; i <= N; i++)
		r[i] = (struct cfs_target_report){.target = 1000 + i,
						  .local_state = CFS_LS_ONLINE,
						  .path = {(const uint8_t *)path, sizeof(path) - 1}};
	ck_assert_int_eq(mgmtd_op_register(&c.s, c.now, 1, "h:1", 3, r, N + 1, NULL), -EINVAL);
	ck_assert_ptr_null(mgmtd_node_find(&c.s, 1));
	/* 256 targets with 4095-byte paths: about 1 MiB of routing. */
	ck_assert_int_eq(mgmtd_op_register(&c.s, c.now, 1, "h:1", 3, r, N / 2, NULL), 0);
	v0 = c.s.routing_ver;
	for (uint32_t i = 0; i < N; i++)
		r[i].target = 2000 + i;
	ck_assert_int_eq(mgmtd_op_register(&c.s, c.now, 2, "h:2", 3, r, N, NULL), -ENOSPC);
	ck_assert_ptr_null(mgmtd_node_find(&c.s, 2));
	ck_assert_uint_eq(c.s.ntargets, N / 2);
	ck_assert_uint_eq(c.s.routing_ver, v0);
	for (uint32_t i = 0; i < N / 2; i++)
		r[i].target = 1000 + i;
	ck_assert_int_eq(mgmtd_op_heartbeat(&c.s, c.now, 1, v0, r, N / 2, NULL), 0);
	/* What is there still goes out whole, within the bound counted. */
	m = routing_msg(&c);
	rt_msg_free(&m);
	cl_stop(&c);
}
END_TEST

/* Each chain member in the routing carries the routing version of its last
 * public-state change (a predecessor's resync goes on across chain versions
 * only while both ends keep theirs), within the size bound counted. */
START_TEST(test_routing_members_carry_their_last_state_change)
{
	const struct cfs_mgmtd_routing_resp *r;
	struct rt_msg *m;
	struct cl c;

	cl_start(&c);
	three_node_chain(&c);
	ck_assert_int_eq(mgmtd_op_offline_target(&c.s, c.now, 21, false, NULL), 0);
	m = routing_msg(&c);
	r = RT_BODY(m, mgmtd_routing_resp);
	ck_assert_uint_eq(r->members_count, 3);
	for (uint32_t i = 0; i < r->members_count; i++)
		ck_assert_uint_eq(r->members[i].state_ver,
				  mgmtd_target_find(&c.s, r->members[i].target)->state_ver);
	ck_assert_uint_eq(mgmtd_target_find(&c.s, 21)->state_ver, c.s.routing_ver);
	rt_msg_free(&m);
	cl_stop(&c);
}
END_TEST

/* One connection holds at most MGMTD_SUBS_PER_CONN subscribers, whatever
 * sender addresses it writes; others and local ones still get in. */
START_TEST(test_subscribers_bounded_when_one_connection_names_many)
{
	struct mgmtd_subs subs = {0};

	for (uint32_t i = 0; i < MGMTD_SUBS_PER_CONN; i++)
		ck_assert_int_eq(mgmtd_subs_add(&subs, CFS_ADDR(7, 100 + i), 5, 1000), 0);
	ck_assert_int_eq(mgmtd_subs_add(&subs, CFS_ADDR(7, 999), 5, 1000), -CFS_EBUSY);
	/* Renewing one already there is fine. */
	ck_assert_int_eq(mgmtd_subs_add(&subs, CFS_ADDR(7, 100), 5, 2000), 0);
	ck_assert_int_eq(mgmtd_subs_add(&subs, CFS_ADDR(8, 100), 6, 1000), 0);
	for (uint32_t i = 0; i < 2 * MGMTD_SUBS_PER_CONN; i++)
		ck_assert_int_eq(mgmtd_subs_add(&subs, CFS_ADDR(1, 200 + i), 0, 1000), 0);
	ck_assert_uint_eq(subs.n, 3 * MGMTD_SUBS_PER_CONN + 1);
	mgmtd_subs_fini(&subs);
}
END_TEST

/* ------------------------------------------------------------- failover */

START_TEST(test_chain_member_moves_to_end_when_its_node_misses_the_lease)
{
	struct cl c;
	struct mgmtd_chain *ch;
	uint32_t v;

	cl_start(&c);
	three_node_chain(&c);
	ch = mgmtd_chain_find(&c.s, 1);
	v = ch->ver;
	ck_assert_str_eq(chain_str(&c, 1), "21:S 31:S 11:S"); /* rotated by chain id */
	/* Node 2 (the head) goes silent; the others keep beating. */
	for (int i = 0; i < 9; i++) {
		advance(&c, LEASE_MS / 10);
		beat(&c, 1u << 1 | 1u << 3, 1);
	}
	ck_assert_int_eq(mgmtd_node_find(&c.s, 2)->state, CFS_NODE_UP); /* lease not over */
	advance(&c, LEASE_MS / 10 + 1);
	ck_assert_int_eq(mgmtd_node_find(&c.s, 2)->state, CFS_NODE_DOWN);
	ck_assert_str_eq(chain_str(&c, 1), "31:S 11:S 21:O");
	ck_assert_uint_eq(ch->ver, v + 1);
	cl_stop(&c);
}
END_TEST

/* A refused request undoes its changes by reloading the database; that must
 * not renew every node's lease: refused on every beat, it kept a dead node
 * up (and its target serving) for good. */
START_TEST(test_lease_runs_out_when_refused_requests_reload_state)
{
	static struct cfs_target_report r[MGMTD_NODE_TARGETS_MAX];
	static char path[MGMTD_PATH_MAX];
	struct cl c;

	memset(path, 'p', sizeof(path) - 1);
	for (uint32_t i = 0; i < MGMTD_NODE_TARGETS_MAX; i++)
		r[i] = (struct cfs_target_report){.target = 900 + i,
						  .local_state = CFS_LS_ONLINE,
						  .path = {(const uint8_t *)path, sizeof(path) - 1}};
	cl_start(&c);
	three_node_chain(&c);
	/* Node 2 goes silent; the others beat, and node 9 is refused each time. */
	for (int i = 0; i < 11; i++) {
		advance(&c, LEASE_MS / 10);
		beat(&c, 1u << 1 | 1u << 3, 1);
		ck_assert_int_eq(mgmtd_op_register(&c.s, c.now, 9, "h:9", 3, r,
						   MGMTD_NODE_TARGETS_MAX, NULL),
				 -ENOSPC);
	}
	ck_assert_int_eq(mgmtd_node_find(&c.s, 2)->state, CFS_NODE_DOWN);
	ck_assert_str_eq(chain_str(&c, 1), "31:S 11:S 21:O");
	ck_assert_ptr_null(mgmtd_node_find(&c.s, 9));
	cl_stop(&c);
}
END_TEST

/* Nor does a node's own report that is refused after it was applied (here
 * -ENOSPC: its new disks would not fit the routing): the node takes no lease
 * from an error answer, so mgmtd must let its lease run out and fail its
 * targets over. Before, apply_node set the heartbeat time before the check
 * and the reload kept it: the node stayed up, its targets serving, and
 * every chain with a member there refused writes. */
START_TEST(test_lease_runs_out_when_node_own_reports_refused)
{
	enum { N = MGMTD_NODE_TARGETS_MAX };
	static struct cfs_target_report big[N], r[1 + N / 2];
	static char path[MGMTD_PATH_MAX];
	struct cl c;

	memset(path, 'p', sizeof(path) - 1);
	cl_start(&c);
	three_node_chain(&c);
	/* Node 9 takes about half the routing's room. */
	for (uint32_t i = 0; i < N / 2; i++)
		big[i] = (struct cfs_target_report){
			.target = 900 + i,
			.local_state = CFS_LS_ONLINE,
			.path = {(const uint8_t *)path, sizeof(path) - 1}};
	ck_assert_int_eq(mgmtd_op_register(&c.s, c.now, 9, "h:9", 3, big, N / 2, NULL), 0);
	/* Node 1 reports as many new targets: every heartbeat is refused. */
	reports(r, 11, 1, CFS_LS_ONLINE);
	for (uint32_t i = 0; i < N / 2; i++)
		r[1 + i] = (struct cfs_target_report){
			.target = 1200 + i,
			.local_state = CFS_LS_ONLINE,
			.path = {(const uint8_t *)path, sizeof(path) - 1}};
	for (int i = 0; i < 11; i++) {
		advance(&c, LEASE_MS / 10);
		beat(&c, 1u << 2 | 1u << 3, 1);
		ck_assert_int_eq(
			mgmtd_op_heartbeat(&c.s, c.now, 1, c.s.routing_ver, r, 1 + N / 2, NULL),
			-ENOSPC);
	}
	ck_assert_int_eq(mgmtd_node_find(&c.s, 1)->state, CFS_NODE_DOWN);
	ck_assert_str_eq(chain_str(&c, 1), "21:S 31:S 11:O");
	cl_stop(&c);
}
END_TEST

/* "Up-to-date" counts only for a member that is syncing (its resync is done)
 * or serving. Reported for one the operator took out (a late report of a
 * finished resync, under current routing), it was kept, and letting the
 * member back made it serving at once, without the writes made while it was
 * out; now it comes back through a resync. */
START_TEST(test_uptodate_of_member_taken_out_gives_no_serving_on_return)
{
	struct cl c;

	cl_start(&c);
	three_node_chain(&c);
	ck_assert_int_eq(mgmtd_op_offline_target(&c.s, c.now, 21, false, NULL), 0);
	ck_assert_str_eq(chain_str(&c, 1), "31:S 11:S 21:O");
	ck_assert_int_eq(hb(&c, 2, 1, CFS_LS_UPTODATE, c.s.routing_ver), 0);
	ck_assert_int_eq(mgmtd_op_offline_target(&c.s, c.now, 21, true, NULL), 0);
	ck_assert_str_eq(chain_str(&c, 1), "31:S 11:S 21:Y");
	/* Not at the next evaluation either (another node's heartbeat). */
	ck_assert_int_eq(hb(&c, 1, 1, CFS_LS_ONLINE, c.s.routing_ver), 0);
	ck_assert_str_eq(chain_str(&c, 1), "31:S 11:S 21:Y");
	/* Likewise a serving member's own "up-to-date", still held when the
	 * operator takes it out and at once lets it back. */
	ck_assert_int_eq(hb(&c, 2, 1, CFS_LS_UPTODATE, c.s.routing_ver), 0);
	ck_assert_str_eq(chain_str(&c, 1), "31:S 11:S 21:S");
	ck_assert_int_eq(mgmtd_op_offline_target(&c.s, c.now, 21, false, NULL), 0);
	ck_assert_int_eq(mgmtd_op_offline_target(&c.s, c.now, 21, true, NULL), 0);
	ck_assert_str_eq(chain_str(&c, 1), "31:S 11:S 21:Y");
	cl_stop(&c);
}
END_TEST

START_TEST(test_chain_member_resyncs_at_tail_when_its_node_returns)
{
	struct cl c;
	uint32_t cur = 0;
	struct mgmtd_chain *ch;

	cl_start(&c);
	three_node_chain(&c);
	advance(&c, LEASE_MS + 1); /* everyone silent: all down */
	/* Sequential evaluation keeps exactly one lastsrv: the tail of the old order. */
	ck_assert_str_eq(chain_str(&c, 1), "21:O 31:O 11:L");
	/* Node 2 returns first: nothing serves, so it must wait for the lastsrv. */
	beat(&c, 1u << 2, 1);
	ck_assert_str_eq(chain_str(&c, 1), "21:W 31:O 11:L");
	/* Node 1 (the lastsrv) returns: it serves, 21 syncs from it. */
	beat(&c, 1u << 1, 1);
	ck_assert_str_eq(chain_str(&c, 1), "11:S 21:Y 31:O");
	/* Node 3 returns: one syncing target per chain, so it waits. */
	beat(&c, 1u << 3, 1);
	ck_assert_str_eq(chain_str(&c, 1), "11:S 21:Y 31:W");
	ch = mgmtd_chain_find(&c.s, 1);
	/* A stale sync-done is refused with the current version. */
	ck_assert_int_eq(mgmtd_op_sync_done(&c.s, c.now, 21, 1, ch->ver - 1, &cur, NULL),
			 -CFS_ESTALECHAIN);
	ck_assert_uint_eq(cur, ch->ver);
	ck_assert_int_eq(mgmtd_op_sync_done(&c.s, c.now, 31, 1, ch->ver, &cur, NULL),
			 -CFS_ENOTSYNCING);
	ck_assert_int_eq(mgmtd_op_sync_done(&c.s, c.now, 21, 1, ch->ver, &cur, NULL), 0);
	ck_assert_str_eq(chain_str(&c, 1), "11:S 21:S 31:Y");
	ck_assert_int_eq(mgmtd_op_sync_done(&c.s, c.now, 31, 1, ch->ver, &cur, NULL), 0);
	ck_assert_str_eq(chain_str(&c, 1), "11:S 21:S 31:S");
	/* The nodes' next reports (online, from older routing) change nothing. */
	beat(&c, 0xe, 1);
	ck_assert_str_eq(chain_str(&c, 1), "11:S 21:S 31:S");
	cl_stop(&c);
}
END_TEST

START_TEST(test_sync_done_refused_when_input_is_bad)
{
	struct cl c;
	uint32_t cur;

	cl_start(&c);
	three_node_chain(&c);
	ck_assert_int_eq(reg(&c, 4, 1), 0); /* target 41, in no chain */
	ck_assert_int_eq(mgmtd_op_sync_done(&c.s, c.now, 99, 1, 1, &cur, NULL), -CFS_ENOTARGET);
	ck_assert_int_eq(mgmtd_op_sync_done(&c.s, c.now, 21, 9, 1, &cur, NULL), -CFS_ENOCHAIN);
	ck_assert_int_eq(mgmtd_op_sync_done(&c.s, c.now, 41, 1, 1, &cur, NULL), -EINVAL);
	ck_assert_int_eq(mgmtd_op_sync_done(&c.s, c.now, 21, 1, 1, &cur, NULL), -CFS_ENOTSYNCING);
	cl_stop(&c);
}
END_TEST

START_TEST(test_uptodate_counts_as_online_when_said_from_stale_routing)
{
	struct cl c;
	uint64_t seen;

	cl_start(&c);
	three_node_chain(&c);
	seen = c.s.routing_ver; /* node 3 saw the chain with 11 serving */
	for (int i = 0; i < 11; i++) {
		advance(&c, LEASE_MS / 10);
		beat(&c, 1u << 1 | 1u << 2, 1);
	}
	ck_assert_str_eq(chain_str(&c, 1), "21:S 11:S 31:O");
	/* Node 3 wakes up believing 31 serves: its "up-to-date" is about a
	 * state that is gone, so 31 resyncs instead of serving at once. */
	ck_assert_int_eq(hb(&c, 3, 1, CFS_LS_UPTODATE, seen), 0);
	ck_assert_int_eq(pstate(&c, 31), CFS_TS_SYNCING);
	/* Said from current routing, up-to-date while syncing ends the sync. */
	ck_assert_int_eq(hb(&c, 3, 1, CFS_LS_UPTODATE, c.s.routing_ver), 0);
	ck_assert_int_eq(pstate(&c, 31), CFS_TS_SERVING);
	cl_stop(&c);
}
END_TEST

START_TEST(test_offline_target_takes_member_out_when_operator_asks)
{
	struct cl c;
	uint32_t cur;
	bool changed = false;

	cl_start(&c);
	three_node_chain(&c);
	ck_assert_int_eq(mgmtd_op_offline_target(&c.s, c.now, 77, false, NULL), -CFS_ENOTARGET);
	ck_assert_int_eq(mgmtd_op_offline_target(&c.s, c.now, 31, false, &changed), 0);
	ck_assert(changed);
	ck_assert_str_eq(chain_str(&c, 1), "21:S 11:S 31:O");
	/* Its node still says online: it stays out. */
	beat(&c, 0xe, 1);
	ck_assert_str_eq(chain_str(&c, 1), "21:S 11:S 31:O");
	ck_assert_int_eq(mgmtd_op_offline_target(&c.s, c.now, 31, true, &changed), 0);
	ck_assert_str_eq(chain_str(&c, 1), "21:S 11:S 31:Y");
	ck_assert_int_eq(
		mgmtd_op_sync_done(&c.s, c.now, 31, 1, mgmtd_chain_find(&c.s, 1)->ver, &cur, NULL),
		0);
	ck_assert_str_eq(chain_str(&c, 1), "21:S 11:S 31:S");
	cl_stop(&c);
}
END_TEST

/* Nodes say up-to-date for the targets their routing shows serving. An
 * operator who takes one out and lets it back in before its node beats
 * again must get a resync, not a serving member that missed the writes made
 * meanwhile. */
START_TEST(test_target_resyncs_when_let_back_in_before_its_node_beats)
{
	struct cl c;

	cl_start(&c);
	three_node_chain(&c);
	for (uint32_t n = 1; n <= 3; n++)
		ck_assert_int_eq(hb(&c, n, 1, CFS_LS_UPTODATE, c.s.routing_ver), 0);
	ck_assert_str_eq(chain_str(&c, 1), "21:S 31:S 11:S");
	ck_assert_int_eq(mgmtd_op_offline_target(&c.s, c.now, 31, false, NULL), 0);
	ck_assert_str_eq(chain_str(&c, 1), "21:S 11:S 31:O");
	ck_assert_int_eq(mgmtd_op_offline_target(&c.s, c.now, 31, true, NULL), 0);
	ck_assert_str_eq(chain_str(&c, 1), "21:S 11:S 31:Y");
	cl_stop(&c);
}
END_TEST

START_TEST(test_target_missing_from_report_goes_offline_when_node_drops_it)
{
	struct cl c;

	cl_start(&c);
	three_node_chain(&c);
	/* Node 3 now reports no targets at all. */
	ck_assert_int_eq(mgmtd_op_heartbeat(&c.s, c.now, 3, c.s.routing_ver, NULL, 0, NULL), 0);
	ck_assert_str_eq(chain_str(&c, 1), "21:S 11:S 31:O");
	cl_stop(&c);
}
END_TEST

/* -------------------------------------------------------- create-chains */

START_TEST(test_create_chains_never_shares_a_node_when_placing)
{
	/* Nodes with 4, 3, 2, 2, 1 free targets, replicas 3: at most 4 chains. */
	static const uint32_t per_node[5] = {4, 3, 2, 2, 1};
	struct cl c;
	uint32_t made = 0;
	char detail[256];
	unsigned used[6] = {0};

	cl_start(&c);
	for (uint32_t n = 1; n <= 5; n++)
		ck_assert_int_eq(reg(&c, n, per_node[n - 1]), 0);
	ck_assert_int_eq(
		mgmtd_op_create_chains(&c.s, c.now, 3, 5, &made, detail, sizeof(detail), NULL),
		-CFS_EPLACEMENT);
	ck_assert_uint_eq(made, 0);
	ck_assert_uint_eq(c.s.nchains, 0);
	ck_assert_ptr_nonnull(strstr(detail, "at most 4"));
	ck_assert_int_eq(
		mgmtd_op_create_chains(&c.s, c.now, 3, 0, &made, detail, sizeof(detail), NULL), 0);
	ck_assert_uint_eq(made, 4);
	for (uint32_t i = 0; i < c.s.nchains; i++) {
		struct mgmtd_chain *ch = &c.s.chains[i];

		ck_assert_uint_eq(ch->n, 3);
		ck_assert_uint_eq(ch->ver, 1);
		for (uint32_t a = 0; a < ch->n; a++) {
			struct mgmtd_target *t = mgmtd_target_find(&c.s, ch->members[a]);

			ck_assert_int_eq(t->public_state, CFS_TS_SERVING);
			ck_assert_uint_eq(t->chain_id, ch->id);
			ck_assert_uint_eq(t->position, a);
			used[t->node]++;
			for (uint32_t b = 0; b < a; b++)
				ck_assert_uint_ne(mgmtd_target_find(&c.s, ch->members[b])->node,
						  t->node);
		}
	}
	/* Heads spread: not every chain starts on the same node. */
	ck_assert_uint_ne(mgmtd_target_find(&c.s, c.s.chains[0].members[0])->node,
			  mgmtd_target_find(&c.s, c.s.chains[1].members[0])->node);
	/* Nothing free is left that could make another chain. */
	ck_assert_int_eq(
		mgmtd_op_create_chains(&c.s, c.now, 3, 0, &made, detail, sizeof(detail), NULL),
		-CFS_EPLACEMENT);
	ck_assert_int_eq(
		mgmtd_op_create_chains(&c.s, c.now, 0, 0, &made, detail, sizeof(detail), NULL),
		-EINVAL);
	ck_assert_int_eq(mgmtd_op_create_chains(&c.s, c.now, MGMTD_MAX_REPLICAS + 1, 0, &made,
						detail, sizeof(detail), NULL),
			 -EINVAL);
	cl_stop(&c);
}
END_TEST

START_TEST(test_create_chains_refused_when_too_few_nodes)
{
	struct cl c;
	uint32_t made = 7;
	char detail[256];

	cl_start(&c);
	ck_assert_int_eq(reg(&c, 1, 4), 0);
	ck_assert_int_eq(reg(&c, 2, 4), 0);
	ck_assert_int_eq(
		mgmtd_op_create_chains(&c.s, c.now, 3, 0, &made, detail, sizeof(detail), NULL),
		-CFS_EPLACEMENT);
	ck_assert_uint_eq(made, 0);
	ck_assert_msg(strstr(detail, "3 replicas need 3 distinct nodes") != NULL, "%s", detail);
	/* Targets of a down node are not free. */
	advance(&c, LEASE_MS + 1);
	ck_assert_int_eq(hb(&c, 1, 4, CFS_LS_ONLINE, c.s.routing_ver), 0);
	ck_assert_int_eq(
		mgmtd_op_create_chains(&c.s, c.now, 2, 0, &made, detail, sizeof(detail), NULL),
		-CFS_EPLACEMENT);
	ck_assert_int_eq(
		mgmtd_op_create_chains(&c.s, c.now, 1, 0, &made, detail, sizeof(detail), NULL), 0);
	ck_assert_uint_eq(made, 4);
	cl_stop(&c);
}
END_TEST

/* The chain of three_node_chain, its targets 11, 21, 31 reporting format
 * ids 0x1111, 0x2121, 0x3131 (kept: the first ones mgmtd hears). */
static void
formats_chain(struct cl *c)
{
	cl_start(c);
	memset(g_format, 0, sizeof(g_format));
	three_node_chain(c);
	g_format[11] = 0x1111;
	g_format[21] = 0x2121;
	g_format[31] = 0x3131;
	beat(c, 1u << 1 | 1u << 2 | 1u << 3, 1);
}

/* A target made again under its id (its directory emptied, a new disk)
 * reports another format id: it is not the member the chain knew, so it
 * leaves the live members as if it had gone down, comes back waiting, and
 * syncs from scratch. The first format id a target reports is just kept. */
START_TEST(test_target_resyncs_when_its_format_changes)
{
	struct cl c;

	formats_chain(&c);
	ck_assert_uint_eq(mgmtd_target_find(&c.s, 21)->format_id, 0x2121);
	ck_assert_str_eq(chain_str(&c, 1), "21:S 31:S 11:S");

	/* Node 2 comes back within its lease, target 21 on an empty disk; it
	 * reports it up to date (its routing shows it serving). */
	g_format[21] = 0x2222;
	ck_assert_int_eq(hb(&c, 2, 1, CFS_LS_UPTODATE, c.s.routing_ver), 0);
	ck_assert_str_eq(chain_str(&c, 1), "31:S 11:S 21:O");
	ck_assert_uint_eq(mgmtd_target_find(&c.s, 21)->format_id, 0x2222);
	/* Its node, still on the old routing, says up to date again: online. */
	ck_assert_int_eq(hb(&c, 2, 1, CFS_LS_UPTODATE, c.s.routing_ver - 1), 0);
	ck_assert_str_eq(chain_str(&c, 1), "31:S 11:S 21:Y");

	/* The format is saved with the target. */
	mgmtd_state_fini(&c.s);
	cl_open(&c);
	ck_assert_uint_eq(mgmtd_target_find(&c.s, 21)->format_id, 0x2222);
	memset(g_format, 0, sizeof(g_format));
	cl_stop(&c);
}
END_TEST

/* The last serving member made again is no lastsrv: its chunks are gone,
 * there is nothing to wait for. It goes offline like any replaced target and
 * the chain waits (for an operator); before, it came back as lastsrv, then
 * serving, empty, and the others would have resynced from it. */
START_TEST(test_replaced_last_serving_target_is_not_kept_as_lastsrv)
{
	struct cl c;

	formats_chain(&c);
	/* Nodes 1 and 3 go silent: 21 serves alone. */
	for (int i = 0; i < 11; i++) {
		advance(&c, LEASE_MS / 10);
		beat(&c, 1u << 2, 1);
	}
	ck_assert_str_eq(chain_str(&c, 1), "21:S 31:O 11:O");
	g_format[21] = 0x2222;
	ck_assert_int_eq(hb(&c, 2, 1, CFS_LS_UPTODATE, c.s.routing_ver), 0);
	ck_assert_str_eq(chain_str(&c, 1), "31:O 11:O 21:O");
	ck_assert_int_eq(hb(&c, 2, 1, CFS_LS_ONLINE, c.s.routing_ver), 0);
	ck_assert_int_eq(pstate(&c, 21), CFS_TS_WAITING);
	/* The others come back: nobody serves, nobody syncs from the empty one. */
	beat(&c, 1u << 1 | 1u << 2 | 1u << 3, 1);
	ck_assert_int_eq(pstate(&c, 11), CFS_TS_WAITING);
	ck_assert_int_eq(pstate(&c, 21), CFS_TS_WAITING);
	ck_assert_int_eq(pstate(&c, 31), CFS_TS_WAITING);
	memset(g_format, 0, sizeof(g_format));
	cl_stop(&c);
}
END_TEST

/* ------------------------------------------------------------ persistence */

START_TEST(test_state_survives_restart_when_database_reopened)
{
	struct cl c;
	uint64_t ver;
	uint32_t cver;

	cl_start(&c);
	three_node_chain(&c);
	for (int i = 0; i < 11; i++) {
		advance(&c, LEASE_MS / 10);
		beat(&c, 1u << 1 | 1u << 3, 1);
	}
	ck_assert_int_eq(mgmtd_op_offline_target(&c.s, c.now, 11, false, NULL), 0);
	ck_assert_str_eq(chain_str(&c, 1), "31:S 21:O 11:O");
	ver = c.s.routing_ver;
	cver = mgmtd_chain_find(&c.s, 1)->ver;
	mgmtd_state_fini(&c.s);

	c.now += 3600 * 1000 * MS; /* an hour later */
	cl_open(&c);
	ck_assert_uint_eq(c.s.routing_ver, ver);
	ck_assert_uint_eq(c.s.next_chain_id, 2);
	ck_assert_uint_eq(mgmtd_chain_find(&c.s, 1)->ver, cver);
	ck_assert_str_eq(chain_str(&c, 1), "31:S 21:O 11:O");
	ck_assert(mgmtd_target_find(&c.s, 11)->admin_offline);
	ck_assert_str_eq(mgmtd_node_find(&c.s, 3)->endpoint, "127.0.0.1:7003");
	ck_assert_int_eq(mgmtd_node_find(&c.s, 2)->state, CFS_NODE_DOWN);
	/* Node 3 was up: it gets a full lease from the restart, not from its
	 * last heartbeat an hour ago. */
	advance(&c, LEASE_MS - 1);
	ck_assert_int_eq(mgmtd_node_find(&c.s, 3)->state, CFS_NODE_UP);
	ck_assert_int_eq(pstate(&c, 31), CFS_TS_SERVING);
	advance(&c, 2);
	ck_assert_int_eq(mgmtd_node_find(&c.s, 3)->state, CFS_NODE_DOWN);
	/* The last one serving is kept as lastsrv, at the end like any down member. */
	ck_assert_str_eq(chain_str(&c, 1), "21:O 11:O 31:L");
	cl_stop(&c);
}
END_TEST

/* The nodes of the last run hold leases of its lease_ms. Restarted with a
 * shorter one, mgmtd waits for the longer lease before marking a silent node
 * down (it may still serve its targets), also across a second restart in
 * that window; afterwards it saves the shorter one and uses it. */
START_TEST(test_restart_with_shorter_lease_waits_for_the_longer_one)
{
	struct cl c;

	cl_start(&c);
	three_node_chain(&c);
	mgmtd_state_fini(&c.s);

	c.now += 10 * MS;
	cl_open_lease(&c, LEASE_MS / 4);
	advance(&c, LEASE_MS / 2);
	ck_assert_int_eq(mgmtd_node_find(&c.s, 1)->state, CFS_NODE_UP);
	ck_assert_uint_eq(c.s.granted_lease_ms, LEASE_MS);
	/* Restarted again inside the window: the window is the longer lease
	 * from this start. */
	mgmtd_state_fini(&c.s);
	cl_open_lease(&c, LEASE_MS / 4);
	/* Node 1 beats once inside the window, then falls silent: it kept its
	 * longer lease, so it too stays up to the window's end. */
	advance(&c, 10);
	ck_assert_int_eq(hb(&c, 1, 1, CFS_LS_ONLINE, c.s.routing_ver), 0);
	advance(&c, LEASE_MS - 11);
	ck_assert_int_eq(mgmtd_node_find(&c.s, 1)->state, CFS_NODE_UP);
	beat(&c, 1u << 2 | 1u << 3, 1);
	advance(&c, 2);
	ck_assert_int_eq(mgmtd_node_find(&c.s, 1)->state, CFS_NODE_DOWN);
	ck_assert_int_eq(mgmtd_node_find(&c.s, 2)->state, CFS_NODE_UP);
	ck_assert_uint_eq(c.s.granted_lease_ms, LEASE_MS / 4);

	/* Saved: the next restart gives the short lease only. */
	mgmtd_state_fini(&c.s);
	cl_open_lease(&c, LEASE_MS / 4);
	advance(&c, LEASE_MS / 4 + 1);
	ck_assert_int_eq(mgmtd_node_find(&c.s, 2)->state, CFS_NODE_DOWN);

	/* A longer lease than saved is saved at once. */
	mgmtd_state_fini(&c.s);
	cl_open(&c);
	ck_assert_uint_eq(c.s.granted_lease_ms, LEASE_MS);
	mgmtd_state_fini(&c.s);
	cl_open_lease(&c, LEASE_MS / 4);
	ck_assert_uint_eq(c.s.granted_lease_ms, LEASE_MS);
	cl_stop(&c);
}
END_TEST

/* A database made before targets had a format id opens: the column is
 * added, the targets read 0 (not known), and the next report fills it in
 * without taking the target for a new one. */
START_TEST(test_open_adds_format_id_when_database_older)
{
	struct cl c;
	sqlite3 *db = NULL;

	memset(&c, 0, sizeof(c));
	tmp_make(&c.tmp);
	c.now = 1000 * MS;
	ck_assert_int_eq(sqlite3_open(c.tmp.db, &db), SQLITE_OK);
	ck_assert_int_eq(
		sqlite3_exec(
			db,
			"CREATE TABLE config(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
			"INSERT INTO config VALUES('schema', 1), ('routing_ver', 5),"
			" ('next_chain_id', 1);"
			"CREATE TABLE nodes(id INTEGER PRIMARY KEY, endpoint TEXT NOT NULL,"
			" state INTEGER NOT NULL, last_hb_ms INTEGER NOT NULL);"
			"INSERT INTO nodes VALUES(2, '127.0.0.1:7002', 0, 0);"
			"CREATE TABLE targets(id INTEGER PRIMARY KEY, node INTEGER NOT NULL,"
			" addr INTEGER NOT NULL, path TEXT NOT NULL, local_state INTEGER NOT NULL,"
			" public_state INTEGER NOT NULL, chain INTEGER NOT NULL, position INTEGER"
			" NOT NULL, admin_offline INTEGER NOT NULL, state_ver INTEGER NOT NULL);"
			"INSERT INTO targets VALUES(21, 2, 0, '/d/21', 1, 0, 0, 0, 0, 3);",
			NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	cl_open(&c);
	ck_assert_uint_eq(c.s.routing_ver, 5);
	ck_assert_uint_eq(mgmtd_target_find(&c.s, 21)->format_id, 0);
	g_format[21] = 0x2121;
	ck_assert_int_eq(hb(&c, 2, 1, CFS_LS_ONLINE, c.s.routing_ver), 0);
	ck_assert_uint_eq(mgmtd_target_find(&c.s, 21)->format_id, 0x2121);
	ck_assert_int_eq(mgmtd_target_find(&c.s, 21)->local_state, CFS_LS_ONLINE);
	g_format[21] = 0;
	mgmtd_state_fini(&c.s);
	cl_open(&c);
	ck_assert_uint_eq(mgmtd_target_find(&c.s, 21)->format_id, 0x2121);
	cl_stop(&c);
}
END_TEST

START_TEST(test_open_fails_when_file_is_not_a_database)
{
	struct tmp t;
	struct mgmtd_state s = {.heartbeat_ms = HB_MS, .lease_ms = LEASE_MS};
	FILE *f;

	tmp_make(&t);
	f = fopen(t.db, "w");
	ck_assert_ptr_nonnull(f);
	fputs("this is not sqlite, not at all, but long enough to look like a header....\n", f);
	fclose(f);
	ck_assert_int_eq(mgmtd_db_open(&s, t.db, 0), -EIO);
	ck_assert_ptr_null(s.db);
	tmp_remove(&t);
}
END_TEST

/* ---------------------------------------------- model-checked random walk */

/*
 * One chain of three over three nodes; each step a seeded generator kills or
 * revives a node, takes a target out or lets it in, finishes a sync, or sends
 * a stale "up-to-date", and time moves a third of a lease. The model knows
 * which replicas hold every committed write: a write commits in a step only
 * when the chain has a serving member and every member on its write path is
 * alive; then every replica off the path misses it. A replica catches up only
 * through sync done. Checked after every step: every serving replica holds
 * every committed write; at most one syncing and one lastsrv; the order is
 * serving, syncing, waiting, down; a lastsrv means no one serves.
 */
static uint64_t
rng(uint64_t *x)
{
	*x = *x * 6364136223846793005ull + 1442695040888963407ull;
	return *x >> 33;
}

static unsigned
rank(enum cfs_target_state s)
{
	return s == CFS_TS_SERVING ? 0 : s == CFS_TS_SYNCING ? 1 : s == CFS_TS_WAITING ? 2 : 3;
}

START_TEST(test_chain_keeps_committed_writes_when_failures_are_random)
{
	struct cl c;
	uint64_t x = 0x5eed0000ull + (uint64_t)_i;
	bool alive[4] = {false, true, true, true}, out[4] = {false};
	bool complete[4] = {false, true, true, true}; /* target 10k+1 of node k */
	unsigned commits = 0, syncs = 0;

	cl_start(&c);
	three_node_chain(&c);
	for (int step = 0; step < 400; step++) {
		uint64_t r = rng(&x) % 100;
		uint32_t k = 1 + (uint32_t)(rng(&x) % 3), tid = 10 * k + 1, cur;
		struct mgmtd_chain *ch = mgmtd_chain_find(&c.s, 1);
		unsigned nsync = 0, nlast = 0, nserv = 0, prev_rank = 0;
		bool path_alive = true, any_serving = false;

		if (r < 15) {
			alive[k] = false;
		} else if (r < 35) {
			alive[k] = true;
		} else if (r < 42) {
			out[k] = !out[k];
			ck_assert_int_eq(mgmtd_op_offline_target(&c.s, c.now, tid, !out[k], NULL),
					 0);
		} else if (r < 70) {
			if (pstate(&c, tid) == CFS_TS_SYNCING && alive[k] && !out[k] &&
			    mgmtd_op_sync_done(&c.s, c.now, tid, 1, ch->ver, &cur, NULL) == 0) {
				complete[k] = true; /* the sync copied everything */
				syncs++;
			}
		} else if (r < 78 && alive[k]) {
			/* Up-to-date from routing older than anything that changed. */
			ck_assert_int_eq(hb(&c, k, 1, CFS_LS_UPTODATE, 0), 0);
		}
		advance(&c, LEASE_MS / 3);
		for (uint32_t n = 1; n <= 3; n++) {
			if (!alive[n])
				continue;
			/* A node says up-to-date only for a target its routing shows serving. */
			ck_assert_int_eq(hb(&c, n, 1,
					    pstate(&c, 10 * n + 1) == CFS_TS_SERVING
						    ? CFS_LS_UPTODATE
						    : CFS_LS_ONLINE,
					    c.s.routing_ver),
					 0);
		}
		/* Writes of this step. */
		for (uint32_t i = 0; i < ch->n; i++) {
			uint32_t m = ch->members[i], node = m / 10;
			enum cfs_target_state st = pstate(&c, m);

			if (st == CFS_TS_SERVING)
				any_serving = true;
			if ((st == CFS_TS_SERVING || st == CFS_TS_SYNCING) &&
			    (!alive[node] || out[node]))
				path_alive = false;
		}
		if (any_serving && path_alive) {
			commits++;
			for (uint32_t i = 0; i < ch->n; i++) {
				uint32_t m = ch->members[i];
				enum cfs_target_state st = pstate(&c, m);

				if (st != CFS_TS_SERVING && st != CFS_TS_SYNCING)
					complete[m / 10] = false;
			}
		}
		/* Invariants. */
		for (uint32_t i = 0; i < ch->n; i++) {
			uint32_t m = ch->members[i];
			enum cfs_target_state st = pstate(&c, m);

			ck_assert_msg(rank(st) >= prev_rank, "step %d: order %s", step,
				      chain_str(&c, 1));
			prev_rank = rank(st);
			nsync += st == CFS_TS_SYNCING;
			nlast += st == CFS_TS_LASTSRV;
			nserv += st == CFS_TS_SERVING;
			if (st == CFS_TS_SERVING)
				ck_assert_msg(complete[m / 10],
					      "step %d: %u serves without every write: %s", step, m,
					      chain_str(&c, 1));
		}
		ck_assert_msg(nsync <= 1 && nlast <= 1 && !(nlast && nserv), "step %d: %s", step,
			      chain_str(&c, 1));
	}
	/* Everyone back, syncs finish: the chain heals completely. */
	for (uint32_t k = 1; k <= 3; k++) {
		alive[k] = true;
		if (out[k])
			ck_assert_int_eq(
				mgmtd_op_offline_target(&c.s, c.now, 10 * k + 1, true, NULL), 0);
	}
	for (int round = 0; round < 10; round++) {
		struct mgmtd_chain *ch = mgmtd_chain_find(&c.s, 1);
		uint32_t cur;

		advance(&c, LEASE_MS / 3);
		beat(&c, 0xe, 1);
		for (uint32_t i = 0; i < ch->n; i++) {
			if (pstate(&c, ch->members[i]) == CFS_TS_SYNCING)
				mgmtd_op_sync_done(&c.s, c.now, ch->members[i], 1, ch->ver, &cur,
						   NULL);
		}
	}
	for (uint32_t k = 1; k <= 3; k++)
		ck_assert_int_eq(pstate(&c, 10 * k + 1), CFS_TS_SERVING);
	ck_assert_uint_gt(commits, 0);
	(void)syncs;
	cl_stop(&c);
}
END_TEST

/* ============================================================ actors */

/* Wait for cond (evaluated under h.mu) with a hang guard. */
struct h {
	struct tmp tmp;
	struct rt *rt;
	cfs_addr_t mgmtd;
	cfs_addr_t driver;
	struct rt_actor *driver_actor; /* loop 0 only */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* What the driver saw. */
	uint64_t push_ver; /* newest ROUTING_UPDATE */
	unsigned pushes;
	/* Fake storage actors: last NODE_TARGET_ROUTING per target 1..4. */
	struct {
		uint64_t routing_ver, lease_until_ns, chain_id, mgmtd;
		uint32_t chain_ver, state, members;
		unsigned count;
	} stor[5];
};

static struct h *g_h; /* the actors' way back to the fixture */

static void
h_signal(struct h *h)
{
	pthread_cond_broadcast(&h->cv);
}

static int
driver_on_push(struct rt_actor *self, struct rt_msg *req)
{
	const struct cfs_routing_update *u = RT_BODY(req, routing_update);

	pthread_mutex_lock(&g_h->mu);
	if (u->routing_ver > g_h->push_ver)
		g_h->push_ver = u->routing_ver;
	g_h->pushes++;
	h_signal(g_h);
	pthread_mutex_unlock(&g_h->mu);
	rt_reply(req, 0, NULL);
	return 0;
}

static int
driver_init(struct rt_actor *self, const void *arg)
{
	g_h->driver_actor = self;
	return 0;
}

static const rt_handler_fn driver_handlers[CFS_MSG__COUNT] = {
	[CFS_MSG_ROUTING_UPDATE] = driver_on_push,
};

static const struct rt_actor_kind driver_kind = {
	.name = "driver",
	.state_size = 1,
	.init = driver_init,
	.handlers = driver_handlers,
};

/* A stand-in for a storage actor: kind "storage", tagged with its target id. */
static int
fake_stor_init(struct rt_actor *self, const void *arg)
{
	rt_actor_set_tag(self, (uint64_t)(uintptr_t)arg);
	return 0;
}

static int
fake_stor_on_routing(struct rt_actor *self, struct rt_msg *req)
{
	const struct cfs_node_target_routing *b = RT_BODY(req, node_target_routing);
	uint64_t id = rt_actor_tag(self);

	ck_assert_uint_eq(b->target, id);
	pthread_mutex_lock(&g_h->mu);
	if (id < 5 && b->routing_ver >= g_h->stor[id].routing_ver) {
		g_h->stor[id].routing_ver = b->routing_ver;
		g_h->stor[id].lease_until_ns = b->lease_until_ns;
		g_h->stor[id].chain_id = b->chain_id;
		g_h->stor[id].chain_ver = b->chain_ver;
		g_h->stor[id].state = b->public_state;
		g_h->stor[id].members = b->members_count;
		g_h->stor[id].mgmtd = b->mgmtd;
		g_h->stor[id].count++;
	}
	h_signal(g_h);
	pthread_mutex_unlock(&g_h->mu);
	rt_reply(req, 0, NULL);
	return 0;
}

static const rt_handler_fn fake_stor_handlers[CFS_MSG__COUNT] = {
	[CFS_MSG_NODE_TARGET_ROUTING] = fake_stor_on_routing,
};

static const struct rt_actor_kind fake_stor_kind = {
	.name = "storage",
	.state_size = 1,
	.init = fake_stor_init,
	.handlers = fake_stor_handlers,
};

static void
h_start(struct h *h, unsigned loops, uint32_t hb_ms, uint32_t lease_ms)
{
	struct rt_config rc = {.loops = loops, .node_id = 1, .default_timeout_ms = 10000};
	struct mgmtd_config mc = {.heartbeat_ms = hb_ms, .lease_ms = lease_ms};

	memset(h, 0, sizeof(*h));
	g_h = h;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	tmp_make(&h->tmp);
	mc.db_path = h->tmp.db;
	ck_assert_int_eq(rt_create(&rc, &h->rt), 0);
	ck_assert_int_eq(
		rt_spawn(rt_loop_at(h->rt, 0), &mgmtd_kind, &mc, CFS_LOCAL_MGMTD, &h->mgmtd), 0);
	ck_assert_int_eq(rt_spawn(rt_loop_at(h->rt, 0), &driver_kind, NULL, 0, &h->driver), 0);
	ck_assert_int_eq(rt_start(h->rt, false), 0);
}

static void
h_stop(struct h *h)
{
	rt_shutdown(h->rt);
	rt_destroy(&h->rt);
	tmp_remove(&h->tmp);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	g_h = NULL;
}

struct h_call {
	struct h *h;
	cfs_addr_t dst;
	struct rt_msg *req;
	struct rt_msg *resp;
	int rc;
	bool done;
};

static void
h_call_done(struct rt_actor *self, int rc, struct rt_msg *resp, void *arg)
{
	struct h_call *hc = arg;

	if (resp)
		rt_msg_claim(resp);
	pthread_mutex_lock(&hc->h->mu);
	hc->rc = rc;
	hc->resp = resp;
	hc->done = true;
	h_signal(hc->h);
	pthread_mutex_unlock(&hc->h->mu);
}

static void
h_call_start(void *arg)
{
	struct h_call *hc = arg;
	int rc = rt_call(hc->h->driver_actor, hc->dst, hc->req, 0, h_call_done, hc);

	if (rc != 0) {
		rt_msg_free(&hc->req);
		h_call_done(NULL, rc, NULL, hc);
	}
}

static bool
h_wait_locked(struct h *h, bool (*pred)(struct h *, void *), void *arg)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_S;
	while (!pred(h, arg)) {
		if (pthread_cond_timedwait(&h->cv, &h->mu, &ts) != 0)
			return pred(h, arg);
	}
	return true;
}

static bool
call_is_done(struct h *h, void *arg)
{
	return ((struct h_call *)arg)->done;
}

/* Call dst from the driver; *resp (may be NULL) must be freed by the caller. */
static int
h_call(struct h *h, cfs_addr_t dst, struct rt_msg *req, struct rt_msg **resp)
{
	struct h_call hc = {.h = h, .dst = dst, .req = req};

	ck_assert_int_eq(rt_loop_post(rt_loop_at(h->rt, 0), h_call_start, &hc), 0);
	pthread_mutex_lock(&h->mu);
	ck_assert(h_wait_locked(h, call_is_done, &hc));
	pthread_mutex_unlock(&h->mu);
	if (resp)
		*resp = hc.resp;
	else
		rt_msg_free(&hc.resp);
	return hc.rc;
}

static int
h_create_chains(struct h *h, uint32_t replicas, uint32_t chains, uint32_t *created)
{
	struct rt_msg *req = rt_msg_new(CFS_MSG_MGMTD_CREATE_CHAINS), *resp = NULL;
	int rc;

	RT_BODY(req, mgmtd_create_chains)->replicas = replicas;
	RT_BODY(req, mgmtd_create_chains)->chains = chains;
	rc = h_call(h, h->mgmtd, req, &resp);
	if (created)
		*created = resp ? RT_BODY(resp, mgmtd_create_chains_resp)->created : 0;
	rt_msg_free(&resp);
	return rc;
}

/* Full routing, as `chainfs admin` fetches it. */
static int
h_routing(struct h *h, uint32_t flags, uint64_t known, struct rt_msg **resp)
{
	struct rt_msg *req = rt_msg_new(CFS_MSG_MGMTD_ROUTING);

	RT_BODY(req, mgmtd_routing)->flags = flags;
	RT_BODY(req, mgmtd_routing)->known_ver = known;
	return h_call(h, h->mgmtd, req, resp);
}

static int
h_register(struct h *h, uint32_t node, uint32_t ntargets)
{
	struct rt_msg *req = rt_msg_new(CFS_MSG_MGMTD_REGISTER);
	struct cfs_mgmtd_register *b = RT_BODY(req, mgmtd_register);
	struct cfs_target_report *r = rt_msg_alloc(req, 8 * sizeof(*r));
	char ep[32];

	snprintf(ep, sizeof(ep), "127.0.0.1:%u", 7000 + node);
	b->node_id = node;
	ck_assert_int_eq(rt_msg_set_str(req, &b->endpoint, ep), 0);
	for (uint32_t i = 0; i < ntargets; i++) {
		r[i].target = node * 10 + 1 + i;
		r[i].local_state = CFS_LS_ONLINE;
		r[i].addr = CFS_ADDR(node, 0x100 + i);
	}
	b->targets = r;
	b->targets_count = ntargets;
	return h_call(h, h->mgmtd, req, NULL);
}

START_TEST(test_actor_answers_and_pushes_when_nodes_register)
{
	struct h h;
	struct rt_msg *resp = NULL;
	struct cfs_routing_ref ref;
	uint32_t made = 0;
	uint64_t ver;

	h_start(&h, 2, HB_MS, LEASE_MS);
	/* The driver subscribes (it is a local subscriber: connection 0). */
	ck_assert_int_eq(h_routing(&h, CFS_ROUTING_F_SUBSCRIBE, 0, &resp), 0);
	rt_msg_free(&resp);
	for (uint32_t n = 1; n <= 3; n++)
		ck_assert_int_eq(h_register(&h, n, 2), 0);
	ck_assert_int_eq(h_create_chains(&h, 3, 0, &made), 0);
	ck_assert_uint_eq(made, 2);
	ck_assert_int_eq(h_create_chains(&h, 4, 0, &made), -CFS_EPLACEMENT);
	ck_assert_int_eq(h_create_chains(&h, 0, 0, &made), -EINVAL);

	ck_assert_int_eq(h_routing(&h, CFS_ROUTING_F_FULL, 0, &resp), 0);
	ck_assert(cfs_routing_ref_from(resp->type, resp->body, &ref));
	ver = ref.routing_ver;
	ck_assert_uint_eq(ref.nodes_count, 3);
	ck_assert_uint_eq(ref.targets_count, 6);
	ck_assert_uint_eq(ref.chains_count, 2);
	ck_assert_uint_eq(ref.members_count, 6);
	ck_assert_uint_eq(ref.heartbeat_ms, HB_MS);
	ck_assert_uint_eq(ref.lease_ms, LEASE_MS);
	for (uint32_t i = 0; i < ref.chains_count; i++) {
		ck_assert_uint_eq(ref.chains[i].count, 3);
		for (uint32_t k = 0; k < 3; k++)
			ck_assert_uint_eq(ref.members[ref.chains[i].first + k].public_state,
					  CFS_TS_SERVING);
	}
	rt_msg_free(&resp);
	/* Current already: only the version comes back. */
	ck_assert_int_eq(h_routing(&h, 0, ver, &resp), 0);
	ck_assert(cfs_routing_ref_from(resp->type, resp->body, &ref));
	ck_assert_uint_eq(ref.routing_ver, ver);
	ck_assert_uint_eq(ref.chains_count, 0);
	rt_msg_free(&resp);
	/* Every version went to the subscriber. */
	pthread_mutex_lock(&h.mu);
	ck_assert_uint_eq(h.push_ver, ver);
	ck_assert_uint_ge(h.pushes, 4);
	pthread_mutex_unlock(&h.mu);

	/* Bad input through the actor. */
	{
		struct rt_msg *req = rt_msg_new(CFS_MSG_MGMTD_OFFLINE_TARGET);

		RT_BODY(req, mgmtd_offline_target)->target = 999;
		ck_assert_int_eq(h_call(&h, h.mgmtd, req, NULL), -CFS_ENOTARGET);
		req = rt_msg_new(CFS_MSG_MGMTD_HEARTBEAT);
		RT_BODY(req, mgmtd_heartbeat)->node_id = 42;
		ck_assert_int_eq(h_call(&h, h.mgmtd, req, NULL), -CFS_ENONODE);
		req = rt_msg_new(CFS_MSG_MGMTD_SYNC_DONE);
		RT_BODY(req, mgmtd_sync_done)->target = 11;
		RT_BODY(req, mgmtd_sync_done)->chain_id = 1;
		RT_BODY(req, mgmtd_sync_done)->chain_ver = 77;
		ck_assert_int_eq(h_call(&h, h.mgmtd, req, &resp), -CFS_ESTALECHAIN);
		ck_assert_uint_eq(RT_BODY(resp, mgmtd_sync_done_resp)->chain_ver, 1);
		rt_msg_free(&resp);
		req = rt_msg_new(CFS_MSG_CHUNK_WRITE); /* not mgmtd's */
		ck_assert_int_eq(h_call(&h, h.mgmtd, req, NULL), -CFS_ENOTSUP);
	}
	h_stop(&h);
}
END_TEST

/* mgmtd with nodes 1..3 registered, and a routing cache on loop 1 that polls
 * only every minute (a new version can only come by push): its first
 * snapshot in *s. */
static struct cfs_routing *
cache_start(struct h *h, struct cfs_routing_snap **s)
{
	struct cfs_routing_opts o = {0};
	struct cfs_routing *r = NULL;

	h_start(h, 2, HB_MS, LEASE_MS);
	for (uint32_t n = 1; n <= 3; n++)
		ck_assert_int_eq(h_register(h, n, 1), 0);
	o.mgmtd = h->mgmtd;
	o.loop = 1;
	o.poll_ms = 60000;
	ck_assert_int_eq(cfs_routing_create(h->rt, &o, &r), 0);
	ck_assert_int_eq(cfs_routing_wait(r, 1, WAIT_S * 1000, s), 0);
	return r;
}

/* The cache's first snapshot newer than s, without refreshing (a push). */
static struct cfs_routing_snap *
cache_next(struct cfs_routing *r, const struct cfs_routing_snap *s)
{
	struct timespec ts = {0, 10 * 1000000};
	struct cfs_routing_snap *s2 = NULL;

	for (int guard = WAIT_S * 100; guard > 0; guard--) {
		s2 = cfs_routing_get(r);
		if (s2 && s2->routing_ver > s->routing_ver)
			return s2;
		cfs_routing_snap_put(&s2);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

START_TEST(test_routing_cache_follows_mgmtd_when_routing_changes)
{
	struct h h;
	struct cfs_routing *r;
	struct cfs_routing_snap *s = NULL, *s2 = NULL;
	const struct cfs_route_chain *ch;
	uint32_t made;

	r = cache_start(&h, &s);
	ck_assert_uint_eq(s->nnodes, 3);
	ck_assert_uint_eq(s->nchains, 0);
	ck_assert_ptr_null(cfs_routing_chain(s, 1));
	ck_assert_int_eq(h_create_chains(&h, 3, 1, &made), 0);
	/* The push brings it. */
	s2 = cache_next(r, s);
	ck_assert_ptr_nonnull(s2);
	ch = cfs_routing_chain(s2, 1);
	ck_assert_ptr_nonnull(ch);
	ck_assert_uint_eq(ch->count, 3);
	ck_assert_int_eq(cfs_route_chain_head(ch), 0);
	ck_assert_int_eq(cfs_route_chain_tail(ch), 2);
	ck_assert_uint_eq(cfs_route_chain_write_len(ch), 3);
	for (uint32_t k = 0; k < 3; k++) {
		const struct cfs_route_target *t = cfs_routing_target(s2, ch->members[k].target);

		ck_assert_ptr_nonnull(t);
		ck_assert_uint_eq(t->addr, ch->members[k].addr);
		ck_assert_uint_eq(t->node_id, ch->members[k].node_id);
		ck_assert_ptr_nonnull(cfs_routing_node(s2, t->node_id));
	}
	ck_assert_str_eq(cfs_routing_node(s2, 2)->endpoint, "127.0.0.1:7002");
	/* The old snapshot is still whole. */
	ck_assert_uint_eq(s->nchains, 0);
	ck_assert_int_eq(cfs_routing_last_error(r), 0);
	cfs_routing_snap_put(&s);
	cfs_routing_snap_put(&s2);
	cfs_routing_destroy(&r);
	h_stop(&h);
}
END_TEST

START_TEST(test_routing_snapshot_refused_when_info_is_inconsistent)
{
	struct cfs_node_info nodes[1] = {{.node_id = 1, .endpoint = {(const uint8_t *)"h:1", 3}}};
	struct cfs_target_info targets[2] = {{.target = 5, .node_id = 1},
					     {.target = 6, .node_id = 2}};
	struct cfs_chain_info chains[1] = {{.chain_id = 1, .chain_ver = 1, .first = 0, .count = 2}};
	struct cfs_chain_member members[1] = {{.target = 5, .node_id = 1}};
	struct cfs_routing_ref ref = {
		.routing_ver = 3,
		.nodes = nodes,
		.nodes_count = 1,
		.targets = targets,
		.targets_count = 1,
		.chains = chains,
		.chains_count = 1,
		.members = members,
		.members_count = 1,
	};
	struct cfs_routing_snap *s = NULL;

	/* A chain reaching past the members array. */
	ck_assert_int_eq(cfs_routing_snap_build(&ref, &s), -EINVAL);
	chains[0].count = 1;
	ck_assert_int_eq(cfs_routing_snap_build(&ref, &s), 0);
	ck_assert_uint_eq(cfs_routing_chain(s, 1)->members[0].target, 5);
	cfs_routing_snap_put(&s);
	/* A target on an unknown node. */
	ref.targets_count = 2;
	ck_assert_int_eq(cfs_routing_snap_build(&ref, &s), -EINVAL);
	/* A bad state. */
	ref.targets_count = 1;
	members[0].public_state = 9;
	ck_assert_int_eq(cfs_routing_snap_build(&ref, &s), -EINVAL);
	ck_assert_ptr_null(s);
	members[0].public_state = 0;
	/* A member naming an unknown target, or a target on another node. */
	members[0].target = 99;
	ck_assert_int_eq(cfs_routing_snap_build(&ref, &s), -EINVAL);
	members[0].target = 5;
	members[0].node_id = 7;
	ck_assert_int_eq(cfs_routing_snap_build(&ref, &s), -EINVAL);
	members[0].node_id = 1;
	ck_assert_int_eq(cfs_routing_snap_build(&ref, &s), 0);
	cfs_routing_snap_put(&s);
	/* Chains whose members add up past the table (each range valid on its
	 * own): 65537 x 65536 wraps a 32-bit sum to 65536. */
	{
		enum { NCH = 65537, NMEM = 65536 };
		struct cfs_chain_info *many = calloc(NCH, sizeof(*many));
		struct cfs_chain_member *mem = calloc(NMEM, sizeof(*mem));

		ck_assert_ptr_nonnull(many);
		ck_assert_ptr_nonnull(mem);
		for (unsigned i = 0; i < NMEM; i++)
			mem[i] = (struct cfs_chain_member){.target = 5, .node_id = 1};
		for (unsigned i = 0; i < NCH; i++)
			many[i] = (struct cfs_chain_info){
				.chain_id = i + 1, .chain_ver = 1, .first = 0, .count = NMEM};
		ref.chains = many;
		ref.chains_count = NCH;
		ref.members = mem;
		ref.members_count = NMEM;
		ck_assert_int_eq(cfs_routing_snap_build(&ref, &s), -EINVAL);
		ck_assert_ptr_null(s);
		free(many);
		free(mem);
	}
}
END_TEST

static bool
stor_has(struct h *h, void *arg)
{
	uint32_t *want = arg; /* {target, min chain_id, state} */

	return h->stor[want[0]].chain_id >= want[1] && h->stor[want[0]].state == want[2] &&
	       h->stor[want[0]].lease_until_ns != 0;
}

static bool
node_down(struct h *h, void *arg)
{
	struct rt_msg *resp = NULL;
	struct cfs_routing_ref ref;
	bool down = false;

	pthread_mutex_unlock(&h->mu); /* h_routing waits on the same lock */
	if (h_routing(h, CFS_ROUTING_F_FULL, 0, &resp) == 0 &&
	    cfs_routing_ref_from(resp->type, resp->body, &ref)) {
		for (uint32_t i = 0; i < ref.nodes_count; i++)
			down |= ref.nodes[i].node_id == *(uint32_t *)arg &&
				ref.nodes[i].state == CFS_NODE_DOWN;
	}
	rt_msg_free(&resp);
	if (!down) {
		struct timespec ts = {0, 20 * 1000000};

		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&h->mu);
	return down;
}

/* Three real nodectl actors (node ids 2..4, one fake storage actor each,
 * targets 2..4) join the in-process mgmtd. */
static void
start_nodes(struct h *h, cfs_addr_t nc[5])
{
	for (uint32_t n = 2; n <= 4; n++) {
		struct nodectl_target_config tc = {.id = n, .path = "/d"};
		struct nodectl_config cfg = {
			.version = "test",
			.node_id = n,
			.mgmtd = h->mgmtd,
			.endpoint = "127.0.0.1:1",
			.targets = &tc,
			.ntargets = 1,
			.heartbeat_ms = 20,
		};
		cfs_addr_t a;

		ck_assert_int_eq(rt_spawn(rt_loop_at(h->rt, n % 2), &fake_stor_kind,
					  (void *)(uintptr_t)n, 0, &a),
				 0);
		ck_assert_int_eq(rt_spawn(rt_loop_at(h->rt, 0), &nodectl_kind, &cfg, 0, &nc[n]), 0);
	}
}

struct stopper {
	cfs_addr_t addr;
	bool done;
};

static void
stop_visit(struct rt_actor *a, uint64_t handled, void *arg)
{
	struct stopper *st = arg;

	if (rt_actor_addr(a) == st->addr)
		rt_actor_stop(a);
}

static void
stop_actor_on_loop(void *arg)
{
	struct stopper *st = arg;

	rt_loop_foreach_actor(rt_loop_current(), stop_visit, st);
	pthread_mutex_lock(&g_h->mu);
	st->done = true;
	h_signal(g_h);
	pthread_mutex_unlock(&g_h->mu);
}

static bool
stopper_done(struct h *h, void *arg)
{
	return ((struct stopper *)arg)->done;
}

/* As the transport hands up a frame: on connection 0x1234 of loop 0, which
 * this node opened to node `via` (0: a peer connected to us). */
static void
deliver_from_wire(void *arg)
{
	struct rt_msg *m = arg;

	m->conn = 0x1234;
	rt_deliver(rt_loop_current(), m);
}

/* A one-way ROUTING_UPDATE to nodectl `to` that, if believed, would pin
 * chain 1 at version 1 with every member serving, at a routing version
 * nothing outranks. */
static void
forge_routing_update(struct h *h, cfs_addr_t to, uint32_t via)
{
	struct rt_msg *m = rt_msg_new(CFS_MSG_ROUTING_UPDATE);
	struct cfs_routing_update *u = RT_BODY(m, routing_update);

	u->routing_ver = UINT64_MAX;
	u->heartbeat_ms = 20;
	u->lease_ms = 400;
	u->nodes = rt_msg_alloc(m, 3 * sizeof(*u->nodes));
	u->targets = rt_msg_alloc(m, 3 * sizeof(*u->targets));
	u->chains = rt_msg_alloc(m, sizeof(*u->chains));
	u->members = rt_msg_alloc(m, 3 * sizeof(*u->members));
	for (uint32_t i = 0; i < 3; i++) {
		u->nodes[i] = (struct cfs_node_info){.node_id = 2 + i, .state = CFS_NODE_UP};
		u->targets[i] = (struct cfs_target_info){
			.target = 2 + i, .node_id = 2 + i, .chain_id = 1, .public_state = CFS_TS_SERVING};
		u->members[i] = (struct cfs_chain_member){
			.target = 2 + i, .node_id = 2 + i, .public_state = CFS_TS_SERVING};
	}
	u->chains[0] = (struct cfs_chain_info){.chain_id = 1, .chain_ver = 1, .count = 3};
	u->nodes_count = u->targets_count = u->members_count = 3;
	u->chains_count = 1;
	m->src = CFS_ADDR(1, CFS_LOCAL_MGMTD); /* a sender can write anything here */
	m->dst = to;
	m->via_node = via;
	m->flags |= RT_MSG_F_ONEWAY;
	ck_assert_int_eq(rt_loop_post(rt_loop_at(h->rt, 0), deliver_from_wire, m), 0);
}

static bool
stor_chain_ver_past(struct h *h, void *arg)
{
	const uint32_t *want = arg; /* {target, chain_ver} */

	return h->stor[want[0]].chain_ver >= want[1];
}

struct kind_find {
	const char *kind;
	cfs_addr_t addr; /* atomic: 0 until found */
	bool done;	 /* atomic */
};

static void
kind_visit(struct rt_actor *a, uint64_t handled, void *arg)
{
	struct kind_find *f = arg;

	if (strcmp(rt_actor_kind(a)->name, f->kind) == 0)
		__atomic_store_n(&f->addr, rt_actor_addr(a), __ATOMIC_RELEASE);
}

static void
kind_find_on_loop(void *arg)
{
	struct kind_find *f = arg;

	rt_loop_foreach_actor(rt_loop_current(), kind_visit, f);
	__atomic_store_n(&f->done, true, __ATOMIC_RELEASE);
}

/* The client's routing cache, like nodectl, takes routing only from mgmtd:
 * forged pushes (a peer's connection, another node's) are ignored, and the
 * cache follows mgmtd's next version. */
START_TEST(test_routing_cache_ignores_routing_not_from_mgmtd)
{
	struct h h;
	struct cfs_routing *r;
	struct cfs_routing_snap *s = NULL, *s2 = NULL;
	struct kind_find f = {.kind = "routing"};
	uint32_t made;

	r = cache_start(&h, &s);
	ck_assert_int_eq(rt_loop_post(rt_loop_at(h.rt, 1), kind_find_on_loop, &f), 0);
	for (int guard = WAIT_S * 100; !__atomic_load_n(&f.done, __ATOMIC_ACQUIRE) && guard > 0;
	     guard--) {
		struct timespec ts = {0, 10 * 1000000};

		nanosleep(&ts, NULL);
	}
	ck_assert_uint_ne(__atomic_load_n(&f.addr, __ATOMIC_ACQUIRE), 0);
	forge_routing_update(&h, f.addr, 0);
	forge_routing_update(&h, f.addr, 77);
	ck_assert_int_eq(h_create_chains(&h, 3, 1, &made), 0);
	s2 = cache_next(r, s);
	ck_assert_ptr_nonnull(s2);
	ck_assert_uint_lt(s2->routing_ver, UINT64_MAX);
	ck_assert_ptr_nonnull(cfs_routing_chain(s2, 1));
	cfs_routing_snap_put(&s);
	cfs_routing_snap_put(&s2);
	cfs_routing_destroy(&r);
	h_stop(&h);
}
END_TEST

START_TEST(test_nodectl_joins_and_tells_storage_when_chains_change)
{
	struct h h;
	cfs_addr_t nc[5];
	uint32_t made, want[3];
	struct stopper st;

	h_start(&h, 2, 20, 400);
	start_nodes(&h, nc);
	/* Wait for all three to register: create-chains succeeds then. */
	for (int guard = 0; guard < WAIT_S * 50; guard++) {
		struct timespec ts = {0, 20 * 1000000};

		if (h_create_chains(&h, 3, 1, &made) == 0)
			break;
		nanosleep(&ts, NULL);
	}
	ck_assert_uint_eq(made, 1);
	/* Each storage actor hears its chain, serving, under a held lease. */
	pthread_mutex_lock(&h.mu);
	for (uint32_t t = 2; t <= 4; t++) {
		want[0] = t;
		want[1] = 1;
		want[2] = CFS_TS_SERVING;
		ck_assert(h_wait_locked(&h, stor_has, want));
		ck_assert_uint_eq(h.stor[t].members, 3);
		ck_assert_uint_eq(h.stor[t].mgmtd, h.mgmtd);
		ck_assert_uint_ge(h.stor[t].chain_ver, 1);
	}
	pthread_mutex_unlock(&h.mu);

	/* Routing that does not come from mgmtd, on a connection a peer opened
	 * or one to another node, is ignored: node 2 follows mgmtd below. */
	forge_routing_update(&h, nc[2], 0);
	forge_routing_update(&h, nc[2], 77);

	/* Node 3's nodectl dies: after its lease mgmtd marks it down and the
	 * others hear that target 3 is offline. */
	st = (struct stopper){.addr = nc[3]};
	ck_assert_int_eq(rt_loop_post(rt_loop_at(h.rt, 0), stop_actor_on_loop, &st), 0);
	pthread_mutex_lock(&h.mu);
	ck_assert(h_wait_locked(&h, stopper_done, &st));
	{
		uint32_t node = 3;

		ck_assert(h_wait_locked(&h, node_down, &node));
	}
	/* The survivors' storage actors learn the new chain version. */
	want[0] = 2;
	want[1] = 1;
	want[2] = CFS_TS_SERVING;
	ck_assert(h_wait_locked(&h, stor_has, want));
	want[1] = 2;
	ck_assert_msg(h_wait_locked(&h, stor_chain_ver_past, want),
		      "target 2 stayed at chain version %u", h.stor[2].chain_ver);
	want[0] = 4;
	ck_assert(h_wait_locked(&h, stor_chain_ver_past, want));
	pthread_mutex_unlock(&h.mu);
	{
		struct rt_msg *resp = NULL;
		struct cfs_routing_ref ref;

		ck_assert_int_eq(h_routing(&h, CFS_ROUTING_F_FULL, 0, &resp), 0);
		ck_assert(cfs_routing_ref_from(resp->type, resp->body, &ref));
		ck_assert_uint_eq(ref.chains[0].chain_ver, 2);
		ck_assert_uint_eq(ref.members[2].target, 3);
		ck_assert_uint_eq(ref.members[2].public_state, CFS_TS_OFFLINE);
		rt_msg_free(&resp);
	}
	h_stop(&h);
}
END_TEST

static Suite *
mgmtd_suite(void)
{
	Suite *s = suite_create("mgmtd");
	TCase *tc;

	tc = tcase_create("placement");
	tcase_add_test(tc, test_placement_mix64_pinned_when_known_inputs);
	tcase_add_test(tc, test_placement_perm_pinned_when_known_inputs);
	tcase_add_test(tc, test_placement_perm_is_bijection_when_sizes_vary);
	tcase_add_test(tc, test_placement_chunks_touch_every_chain_when_one_stripe_runs);
	suite_add_tcase(s, tc);

	tc = tcase_create("transition");
	tcase_add_test(tc, test_transition_matches_table_when_every_input);
	suite_add_tcase(s, tc);

	tc = tcase_create("registration");
	tcase_add_test(tc, test_register_records_node_and_targets_when_new);
	tcase_add_test(tc, test_register_refused_when_input_is_bad);
	tcase_add_test(tc, test_register_refused_when_reports_or_routing_too_large);
	tcase_add_test(tc, test_routing_members_carry_their_last_state_change);
	tcase_add_test(tc, test_target_resyncs_when_its_format_changes);
	tcase_add_test(tc, test_replaced_last_serving_target_is_not_kept_as_lastsrv);
	tcase_add_test(tc, test_subscribers_bounded_when_one_connection_names_many);
	suite_add_tcase(s, tc);

	tc = tcase_create("failover");
	tcase_add_test(tc, test_chain_member_moves_to_end_when_its_node_misses_the_lease);
	tcase_add_test(tc, test_lease_runs_out_when_refused_requests_reload_state);
	tcase_add_test(tc, test_lease_runs_out_when_node_own_reports_refused);
	tcase_add_test(tc, test_uptodate_of_member_taken_out_gives_no_serving_on_return);
	tcase_add_test(tc, test_chain_member_resyncs_at_tail_when_its_node_returns);
	tcase_add_test(tc, test_sync_done_refused_when_input_is_bad);
	tcase_add_test(tc, test_uptodate_counts_as_online_when_said_from_stale_routing);
	tcase_add_test(tc, test_offline_target_takes_member_out_when_operator_asks);
	tcase_add_test(tc, test_target_resyncs_when_let_back_in_before_its_node_beats);
	tcase_add_test(tc, test_target_missing_from_report_goes_offline_when_node_drops_it);
	tcase_add_loop_test(tc, test_chain_keeps_committed_writes_when_failures_are_random, 0, 8);
	suite_add_tcase(s, tc);

	tc = tcase_create("create_chains");
	tcase_add_test(tc, test_create_chains_never_shares_a_node_when_placing);
	tcase_add_test(tc, test_create_chains_refused_when_too_few_nodes);
	suite_add_tcase(s, tc);

	tc = tcase_create("persistence");
	tcase_add_test(tc, test_state_survives_restart_when_database_reopened);
	tcase_add_test(tc, test_open_adds_format_id_when_database_older);
	tcase_add_test(tc, test_restart_with_shorter_lease_waits_for_the_longer_one);
	tcase_add_test(tc, test_open_fails_when_file_is_not_a_database);
	suite_add_tcase(s, tc);

	tc = tcase_create("actors");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_actor_answers_and_pushes_when_nodes_register);
	tcase_add_test(tc, test_routing_cache_follows_mgmtd_when_routing_changes);
	tcase_add_test(tc, test_routing_snapshot_refused_when_info_is_inconsistent);
	tcase_add_test(tc, test_nodectl_joins_and_tells_storage_when_chains_change);
	tcase_add_test(tc, test_routing_cache_ignores_routing_not_from_mgmtd);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(mgmtd_suite());
	int failed;

	rt_log_set_level(getenv("MGMTD_TEST_DEBUG") ? RT_LOG_DEBUG : RT_LOG_ERR);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

// SPDX-License-Identifier: MIT
/*
 * mgmtd's state in memory and in SQLite. Memory holds sorted arrays of nodes,
 * targets and chains; the database holds the same rows, written by
 * mgmtd_db_save() for whatever is dirty, in one transaction, with WAL and
 * synchronous=FULL so that a routing version that was pushed survives a crash.
 * A chain's order lives in its targets' (chain, position) columns: one source
 * of truth, shown in order by the view chain_members.
 */
#define RT_LOG_SUBSYS "mgmtd"
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "actors/mgmtd/mgmtd_internal.h"

#define SCHEMA_VERSION 1

static const char g_schema[] =
	"CREATE TABLE IF NOT EXISTS config(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS nodes(id INTEGER PRIMARY KEY, endpoint TEXT NOT NULL,"
	" state INTEGER NOT NULL, last_hb_ms INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS targets(id INTEGER PRIMARY KEY, node INTEGER NOT NULL,"
	" addr INTEGER NOT NULL, path TEXT NOT NULL, local_state INTEGER NOT NULL,"
	" public_state INTEGER NOT NULL, chain INTEGER NOT NULL, position INTEGER NOT NULL,"
	" admin_offline INTEGER NOT NULL, state_ver INTEGER NOT NULL,"
	" format_id INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS chains(id INTEGER PRIMARY KEY, version INTEGER NOT NULL);"
	"CREATE VIEW IF NOT EXISTS chain_members AS SELECT c.id AS chain, c.version AS version,"
	" t.position AS position, t.id AS target, t.node AS node, t.public_state AS public_state"
	" FROM chains c JOIN targets t ON t.chain = c.id ORDER BY c.id, t.position;";

/* ------------------------------------------------------- memory: lookups */

#define FIND_SORTED(arr, n, key)                                                                   \
	do {                                                                                       \
		uint32_t lo = 0, hi = (n);                                                         \
		while (lo < hi) {                                                                  \
			uint32_t mid = lo + (hi - lo) / 2;                                         \
			if ((arr)[mid].id == (key))                                                \
				return &(arr)[mid];                                                \
			if ((arr)[mid].id < (key))                                                 \
				lo = mid + 1;                                                      \
			else                                                                       \
				hi = mid;                                                          \
		}                                                                                  \
		return NULL;                                                                       \
	} while (0)

struct mgmtd_node *
mgmtd_node_find(struct mgmtd_state *s, uint32_t id)
{
	FIND_SORTED(s->nodes, s->nnodes, id);
}

struct mgmtd_target *
mgmtd_target_find(struct mgmtd_state *s, uint32_t id)
{
	FIND_SORTED(s->targets, s->ntargets, id);
}

struct mgmtd_chain *
mgmtd_chain_find(struct mgmtd_state *s, uint64_t id)
{
	FIND_SORTED(s->chains, s->nchains, id);
}

/* Insert a zeroed element with this id at its sorted place. */
static void *
sorted_insert(void **arr, uint32_t *n, uint32_t *cap, size_t size, uint64_t id,
	      uint64_t (*id_of)(const void *))
{
	uint32_t at = *n;
	char *base;

	if (*n == *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 8;
		void *p = realloc(*arr, (size_t)ncap * size);

		if (!p)
			return NULL;
		*arr = p;
		*cap = ncap;
	}
	base = *arr;
	while (at > 0 && id_of(base + (size_t)(at - 1) * size) > id)
		at--;
	memmove(base + (size_t)(at + 1) * size, base + (size_t)at * size, (size_t)(*n - at) * size);
	memset(base + (size_t)at * size, 0, size);
	(*n)++;
	return base + (size_t)at * size;
}

static uint64_t
node_id_of(const void *p)
{
	return ((const struct mgmtd_node *)p)->id;
}

static uint64_t
target_id_of(const void *p)
{
	return ((const struct mgmtd_target *)p)->id;
}

static uint64_t
chain_id_of(const void *p)
{
	return ((const struct mgmtd_chain *)p)->id;
}

struct mgmtd_node *
mgmtd_node_add(struct mgmtd_state *s, uint32_t id)
{
	struct mgmtd_node *n = sorted_insert((void **)&s->nodes, &s->nnodes, &s->cap_nodes,
					     sizeof(*n), id, node_id_of);

	if (n)
		n->id = id;
	return n;
}

struct mgmtd_target *
mgmtd_target_add(struct mgmtd_state *s, uint32_t id)
{
	struct mgmtd_target *t = sorted_insert((void **)&s->targets, &s->ntargets, &s->cap_targets,
					       sizeof(*t), id, target_id_of);

	if (t)
		t->id = id;
	return t;
}

struct mgmtd_chain *
mgmtd_chain_add(struct mgmtd_state *s, uint64_t id)
{
	struct mgmtd_chain *c = sorted_insert((void **)&s->chains, &s->nchains, &s->cap_chains,
					      sizeof(*c), id, chain_id_of);

	if (c)
		c->id = id;
	return c;
}

static void
free_rows(struct mgmtd_state *s)
{
	for (uint32_t i = 0; i < s->nnodes; i++)
		free(s->nodes[i].endpoint);
	for (uint32_t i = 0; i < s->ntargets; i++)
		free(s->targets[i].path);
	free(s->nodes);
	free(s->targets);
	free(s->chains);
	s->nodes = NULL;
	s->targets = NULL;
	s->chains = NULL;
	s->nnodes = s->cap_nodes = 0;
	s->ntargets = s->cap_targets = 0;
	s->nchains = s->cap_chains = 0;
}

void
mgmtd_state_fini(struct mgmtd_state *s)
{
	free_rows(s);
	if (s->db)
		sqlite3_close(s->db);
	s->db = NULL;
	free(s->db_path);
	s->db_path = NULL;
}

/* ------------------------------------------------------------- database */

static int
db_err(struct mgmtd_state *s, const char *what)
{
	RT_ERRLOG("db=%s %s: %s", s->db_path ? s->db_path : "?", what,
		  s->db ? sqlite3_errmsg(s->db) : "not open");
	return -EIO;
}

static int
exec(struct mgmtd_state *s, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		RT_ERRLOG("db=%s '%.40s': %s", s->db_path, sql, msg ? msg : "?");
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

static int
config_get(struct mgmtd_state *s, const char *key, uint64_t *out, bool *found)
{
	sqlite3_stmt *st;
	int rc;

	*found = false;
	if (sqlite3_prepare_v2(s->db, "SELECT value FROM config WHERE key = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return db_err(s, "prepare config");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = (uint64_t)sqlite3_column_int64(st, 0);
		*found = true;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_err(s, "read config");
}

static char *
col_strdup(sqlite3_stmt *st, int col)
{
	const unsigned char *p = sqlite3_column_text(st, col);

	return strdup(p ? (const char *)p : "");
}

static int
load_nodes(struct mgmtd_state *s, uint64_t now_ns)
{
	sqlite3_stmt *st;
	int rc, err = 0;

	if (sqlite3_prepare_v2(s->db, "SELECT id, endpoint, state, last_hb_ms FROM nodes", -1, &st,
			       NULL) != SQLITE_OK)
		return db_err(s, "prepare nodes");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		struct mgmtd_node *n;

		if (id <= 0 || id > UINT32_MAX || mgmtd_node_find(s, (uint32_t)id)) {
			RT_ERRLOG("db=%s: bad node row id=%" PRId64, s->db_path, id);
			err = -EIO;
			break;
		}
		n = mgmtd_node_add(s, (uint32_t)id);
		if (!n || !(n->endpoint = col_strdup(st, 1))) {
			err = -ENOMEM;
			break;
		}
		n->state = sqlite3_column_int(st, 2) == CFS_NODE_UP ? CFS_NODE_UP : CFS_NODE_DOWN;
		n->last_hb_wall_ms = n->saved_hb_wall_ms = (uint64_t)sqlite3_column_int64(st, 3);
		/* A restarted mgmtd cannot know who died while it was away: every
		 * node that was up gets a full lease from now to heartbeat again. */
		n->last_hb_ns = now_ns;
	}
	sqlite3_finalize(st);
	if (err == 0 && rc != SQLITE_DONE)
		err = db_err(s, "read nodes");
	return err;
}

static int
load_targets(struct mgmtd_state *s)
{
	sqlite3_stmt *st;
	int rc, err = 0;

	if (sqlite3_prepare_v2(s->db,
			       "SELECT id, node, addr, path, local_state, public_state, chain,"
			       " position, admin_offline, state_ver, format_id FROM targets",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(s, "prepare targets");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		int ls = sqlite3_column_int(st, 4), ps = sqlite3_column_int(st, 5);
		struct mgmtd_target *t;

		if (id <= 0 || id > UINT32_MAX || mgmtd_target_find(s, (uint32_t)id) || ls < 0 ||
		    ls >= CFS_LS__COUNT || ps < 0 || ps >= CFS_TS__COUNT) {
			RT_ERRLOG("db=%s: bad target row id=%" PRId64, s->db_path, id);
			err = -EIO;
			break;
		}
		t = mgmtd_target_add(s, (uint32_t)id);
		if (!t || !(t->path = col_strdup(st, 3))) {
			err = -ENOMEM;
			break;
		}
		t->node = (uint32_t)sqlite3_column_int64(st, 1);
		t->addr = (cfs_addr_t)sqlite3_column_int64(st, 2);
		t->local_state = (enum cfs_local_state)ls;
		t->public_state = (enum cfs_target_state)ps;
		t->chain_id = (uint64_t)sqlite3_column_int64(st, 6);
		t->position = (uint32_t)sqlite3_column_int64(st, 7);
		t->admin_offline = sqlite3_column_int(st, 8) != 0;
		t->state_ver = (uint64_t)sqlite3_column_int64(st, 9);
		t->format_id = (uint64_t)sqlite3_column_int64(st, 10);
	}
	sqlite3_finalize(st);
	if (err == 0 && rc != SQLITE_DONE)
		err = db_err(s, "read targets");
	return err;
}

/* Chains, and their members from the targets' (chain, position). */
static int
load_chains(struct mgmtd_state *s)
{
	sqlite3_stmt *st;
	int rc, err = 0;

	if (sqlite3_prepare_v2(s->db, "SELECT id, version FROM chains", -1, &st, NULL) != SQLITE_OK)
		return db_err(s, "prepare chains");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		struct mgmtd_chain *c;

		if (id <= 0 || mgmtd_chain_find(s, (uint64_t)id)) {
			err = -EIO;
			break;
		}
		c = mgmtd_chain_add(s, (uint64_t)id);
		if (!c) {
			err = -ENOMEM;
			break;
		}
		c->ver = (uint32_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (err == 0 && rc != SQLITE_DONE)
		err = db_err(s, "read chains");
	if (err != 0)
		return err;
	for (uint32_t i = 0; i < s->ntargets; i++) {
		struct mgmtd_target *t = &s->targets[i];
		struct mgmtd_chain *c;

		if (t->chain_id == 0)
			continue;
		c = mgmtd_chain_find(s, t->chain_id);
		if (!c || t->position >= MGMTD_MAX_REPLICAS || c->members[t->position] != 0) {
			RT_ERRLOG("db=%s: target=%" PRIu32 " chain=%" PRIu64 " position=%" PRIu32
				  ": inconsistent",
				  s->db_path, t->id, t->chain_id, t->position);
			return -EIO;
		}
		c->members[t->position] = t->id;
		if (t->position + 1 > c->n)
			c->n = t->position + 1;
	}
	for (uint32_t i = 0; i < s->nchains; i++) {
		for (uint32_t p = 0; p < s->chains[i].n; p++) {
			if (s->chains[i].members[p] == 0) {
				RT_ERRLOG("db=%s: chain=%" PRIu64 " has a hole at %" PRIu32,
					  s->db_path, s->chains[i].id, p);
				return -EIO;
			}
		}
	}
	return 0;
}

static int
load_all(struct mgmtd_state *s, uint64_t now_ns)
{
	uint64_t v = 0;
	bool found;
	int rc;

	rc = config_get(s, "schema", &v, &found);
	if (rc != 0)
		return rc;
	if (found && v != SCHEMA_VERSION) {
		RT_ERRLOG("db=%s: schema version %" PRIu64 ", this mgmtd knows %d", s->db_path, v,
			  SCHEMA_VERSION);
		return -EIO;
	}
	if (!found)
		s->config_dirty = true;
	rc = config_get(s, "routing_ver", &s->routing_ver, &found);
	if (rc == 0)
		rc = config_get(s, "next_chain_id", &s->next_chain_id, &found);
	if (rc == 0 && !found)
		s->next_chain_id = 1;
	if (rc == 0)
		rc = load_nodes(s, now_ns);
	if (rc == 0)
		rc = load_targets(s);
	if (rc == 0)
		rc = load_chains(s);
	if (rc == 0)
		s->routing_bytes = mgmtd_routing_bytes(s);
	return rc;
}

/* A database made before targets had a format id gets the column (0: not
 * known yet; the next report fills it in). */
static int
add_format_id(struct mgmtd_state *s)
{
	sqlite3_stmt *st;
	bool have = false;
	int rc;

	if (sqlite3_prepare_v2(s->db, "PRAGMA table_info(targets)", -1, &st, NULL) != SQLITE_OK)
		return db_err(s, "prepare table_info");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);

		if (name && strcmp(name, "format_id") == 0)
			have = true;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_err(s, "read table_info");
	if (have)
		return 0;
	return exec(s, "ALTER TABLE targets ADD COLUMN format_id INTEGER NOT NULL DEFAULT 0;");
}

/* The nodes of the last run hold leases of the lease_ms it granted, counted
 * from before this start, and a node never shortens the lease it holds.
 * When that was longer than ours, no node is marked down until it ran out
 * (mgmtd_op_tick): a node cut off from us keeps serving its targets that
 * long, and they must not be given to others meanwhile. */
static int
load_lease(struct mgmtd_state *s, uint64_t now_ns)
{
	uint64_t prev = 0;
	bool found;
	int rc;

	rc = config_get(s, "lease_ms", &prev, &found);
	if (rc != 0)
		return rc;
	if (!found || prev > UINT32_MAX)
		prev = 0;
	s->granted_lease_ms = s->lease_ms;
	if (prev > s->lease_ms) {
		s->granted_lease_ms = (uint32_t)prev;
		s->granted_until_ns = now_ns + prev * 1000000ull;
		RT_INFO("db=%s: lease_ms %" PRIu32 " is shorter than the %" PRIu64
			" ms last granted: no node is marked down for that long",
			s->db_path, s->lease_ms, prev);
	}
	if (prev != s->granted_lease_ms)
		s->config_dirty = true;
	return 0;
}

int
mgmtd_db_open(struct mgmtd_state *s, const char *path, uint64_t now_ns)
{
	int rc;

	s->db_path = strdup(path);
	if (!s->db_path)
		return -ENOMEM;
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		rc = db_err(s, "open");
		goto out_fail;
	}
	sqlite3_busy_timeout(s->db, 5000);
	/* A file that is not SQLite fails here, at the first read. */
	rc = exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
	if (rc == 0)
		rc = exec(s, g_schema);
	if (rc == 0)
		rc = add_format_id(s);
	if (rc == 0)
		rc = load_all(s, now_ns);
	if (rc == 0)
		rc = load_lease(s, now_ns);
	if (rc == 0 && s->config_dirty)
		rc = mgmtd_db_save(s);
	if (rc != 0)
		goto out_fail;
	RT_INFO("db=%s nodes=%" PRIu32 " targets=%" PRIu32 " chains=%" PRIu32
		" routing_ver=%" PRIu64 ": loaded",
		path, s->nnodes, s->ntargets, s->nchains, s->routing_ver);
	return 0;

out_fail:
	mgmtd_state_fini(s);
	return rc;
}

int
mgmtd_db_reload(struct mgmtd_state *s, uint64_t now_ns)
{
	/* When the nodes last beat lives in memory only. A reload undoes a
	 * refused change, and must not give every node a fresh lease with it:
	 * one refused request per heartbeat would keep dead nodes up. */
	struct hb {
		uint32_t id;
		uint64_t ns, wall_ms;
	} *hb = malloc((s->nnodes ? s->nnodes : 1) * sizeof(*hb));
	uint32_t nhb = hb ? s->nnodes : 0;
	int rc;

	for (uint32_t i = 0; i < nhb; i++)
		hb[i] = (struct hb){s->nodes[i].id, s->nodes[i].last_hb_ns,
				    s->nodes[i].last_hb_wall_ms};
	free_rows(s);
	s->routing_changed = false;
	s->config_dirty = false;
	rc = load_all(s, now_ns);
	if (rc != 0) {
		free_rows(s);
		s->broken = true;
		RT_ERR(rc, "db=%s: reload failed: mgmtd stops answering", s->db_path);
	}
	for (uint32_t i = 0; rc == 0 && i < nhb; i++) {
		struct mgmtd_node *n = mgmtd_node_find(s, hb[i].id);

		if (n) {
			n->last_hb_ns = hb[i].ns;
			n->last_hb_wall_ms = hb[i].wall_ms;
		}
	}
	free(hb);
	return rc;
}

static int
save_config(struct mgmtd_state *s, sqlite3_stmt *st, const char *key, uint64_t v)
{
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)v);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(s, "write config");
}

int
mgmtd_db_save(struct mgmtd_state *s)
{
	sqlite3_stmt *cfg = NULL, *node = NULL, *tgt = NULL, *chain = NULL;
	int rc;

	rc = exec(s, "BEGIN IMMEDIATE");
	if (rc != 0)
		return rc;
	if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO config(key, value) VALUES(?, ?)", -1,
			       &cfg, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db,
			       "INSERT OR REPLACE INTO nodes(id, endpoint, state, last_hb_ms)"
			       " VALUES(?, ?, ?, ?)",
			       -1, &node, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
		    s->db,
		    "INSERT OR REPLACE INTO targets(id, node, addr, path, local_state,"
		    " public_state, chain, position, admin_offline, state_ver, format_id)"
		    " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		    -1, &tgt, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO chains(id, version) VALUES(?, ?)", -1,
			       &chain, NULL) != SQLITE_OK) {
		rc = db_err(s, "prepare save");
		goto out_rollback;
	}
	if (s->config_dirty) {
		rc = save_config(s, cfg, "schema", SCHEMA_VERSION);
		if (rc == 0)
			rc = save_config(s, cfg, "routing_ver", s->routing_ver);
		if (rc == 0)
			rc = save_config(s, cfg, "next_chain_id", s->next_chain_id);
		if (rc == 0)
			rc = save_config(s, cfg, "lease_ms", s->granted_lease_ms);
		if (rc != 0)
			goto out_rollback;
	}
	for (uint32_t i = 0; i < s->nnodes; i++) {
		struct mgmtd_node *n = &s->nodes[i];

		if (!n->dirty)
			continue;
		sqlite3_reset(node);
		sqlite3_bind_int64(node, 1, n->id);
		sqlite3_bind_text(node, 2, n->endpoint ? n->endpoint : "", -1, SQLITE_STATIC);
		sqlite3_bind_int(node, 3, n->state);
		sqlite3_bind_int64(node, 4, (int64_t)n->last_hb_wall_ms);
		if (sqlite3_step(node) != SQLITE_DONE) {
			rc = db_err(s, "write node");
			goto out_rollback;
		}
	}
	for (uint32_t i = 0; i < s->ntargets; i++) {
		struct mgmtd_target *t = &s->targets[i];

		if (!t->dirty)
			continue;
		sqlite3_reset(tgt);
		sqlite3_bind_int64(tgt, 1, t->id);
		sqlite3_bind_int64(tgt, 2, t->node);
		sqlite3_bind_int64(tgt, 3, (int64_t)t->addr);
		sqlite3_bind_text(tgt, 4, t->path ? t->path : "", -1, SQLITE_STATIC);
		sqlite3_bind_int(tgt, 5, t->local_state);
		sqlite3_bind_int(tgt, 6, t->public_state);
		sqlite3_bind_int64(tgt, 7, (int64_t)t->chain_id);
		sqlite3_bind_int64(tgt, 8, t->position);
		sqlite3_bind_int(tgt, 9, t->admin_offline);
		sqlite3_bind_int64(tgt, 10, (int64_t)t->state_ver);
		sqlite3_bind_int64(tgt, 11, (int64_t)t->format_id);
		if (sqlite3_step(tgt) != SQLITE_DONE) {
			rc = db_err(s, "write target");
			goto out_rollback;
		}
	}
	for (uint32_t i = 0; i < s->nchains; i++) {
		struct mgmtd_chain *c = &s->chains[i];

		if (!c->dirty)
			continue;
		sqlite3_reset(chain);
		sqlite3_bind_int64(chain, 1, (int64_t)c->id);
		sqlite3_bind_int64(chain, 2, c->ver);
		if (sqlite3_step(chain) != SQLITE_DONE) {
			rc = db_err(s, "write chain");
			goto out_rollback;
		}
	}
	rc = exec(s, "COMMIT");
	if (rc != 0)
		goto out_rollback;
	/* Durable: forget what was dirty. */
	s->config_dirty = false;
	for (uint32_t i = 0; i < s->nnodes; i++) {
		if (s->nodes[i].dirty)
			s->nodes[i].saved_hb_wall_ms = s->nodes[i].last_hb_wall_ms;
		s->nodes[i].dirty = false;
	}
	for (uint32_t i = 0; i < s->ntargets; i++)
		s->targets[i].dirty = false;
	for (uint32_t i = 0; i < s->nchains; i++)
		s->chains[i].dirty = false;
	goto out;

out_rollback:
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_finalize(cfg);
	sqlite3_finalize(node);
	sqlite3_finalize(tgt);
	sqlite3_finalize(chain);
	return rc;
}

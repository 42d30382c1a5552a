/* SPDX-License-Identifier: MIT */
/*
 * The durable index of a target: one SQLite database (WAL, synchronous=FULL)
 * with one row per chunk holding both its committed and its pending version
 * (each with the id of the request that made it; the pending one may be a
 * tombstone: a pending remove), the records of committed removes (table
 * removed: which request removed which chunk at which version and when,
 * written in the transaction that deletes the chunk's row, dropped after the
 * retention by a later group commit; created on open when missing), and a
 * meta table recording
 * the format and the class table the slots were cut with. The helper thread
 * owns the connection after open; loading runs on the opening thread before
 * the helper starts. Slot allocation is not stored: it is whatever the rows
 * reference. Indexes of older builds gain the columns added since (migrate).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* fallocate */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define RT_LOG_SUBSYS "disk"
#include "disk/disk_internal.h"

/*
 * Format 2: rows may hold a pending tombstone (ptomb). A build of format 1
 * would read such a row as an empty pending write and re-drive it as one, so
 * format 1 builds must refuse these directories, and do: they open only
 * their own format ("index of another format"). This build opens format 1
 * (adding the columns it lacks, migrate) and writes 2.
 */
#define INDEX_FORMAT	 2
#define INDEX_FORMAT_OLD 1 /* opened and migrated */

/*
 * The reserve: INDEX_RESERVE bytes allocated to <index>.reserve. Data grows
 * until the file system is full, and then the index could not record a removal
 * either (its WAL has to grow for the transaction), so nothing could make room
 * from inside the target. When a commit fails with ENOSPC the helper thread
 * gives the reserve back and commits again; while it is spent, each commit is
 * followed by a RESTART checkpoint, so the WAL is rewritten from its start
 * instead of growing. It is taken back after any later commit once there is
 * room (sync.c), and data growth takes it back first and fails with
 * ENOSPC while it cannot (slots.c then releases free slots of other classes,
 * as for any ENOSPC), so data never eats the index's room.
 */
#define INDEX_RESERVE (1u << 20)

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY NOT NULL, v TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS chunks ("
	" id BLOB PRIMARY KEY NOT NULL,"
	" csize INTEGER NOT NULL, cls INTEGER NOT NULL,"
	" ver INTEGER NOT NULL, slot INTEGER NOT NULL, len INTEGER NOT NULL, crc INTEGER NOT NULL,"
	" pver INTEGER NOT NULL, pslot INTEGER NOT NULL, plen INTEGER NOT NULL,"
	" pcrc INTEGER NOT NULL,"
	" req INTEGER NOT NULL DEFAULT 0, preq INTEGER NOT NULL DEFAULT 0,"
	" ptomb INTEGER NOT NULL DEFAULT 0"
	") WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS removed ("
	" id BLOB NOT NULL, req INTEGER NOT NULL, ver INTEGER NOT NULL, at INTEGER NOT NULL,"
	" PRIMARY KEY (id, req)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS removed_at ON removed (at);";

/* Columns added after the first format, with what an existing row gets. */
static const char *const added_cols[][2] = {
	{"req", "ALTER TABLE chunks ADD COLUMN req INTEGER NOT NULL DEFAULT 0"},
	{"preq", "ALTER TABLE chunks ADD COLUMN preq INTEGER NOT NULL DEFAULT 0"},
	{"ptomb", "ALTER TABLE chunks ADD COLUMN ptomb INTEGER NOT NULL DEFAULT 0"},
};

static int
sql_err(sqlite3 *db, int src, const char *what)
{
	int rc = (src & 0xff) == SQLITE_FULL ? -ENOSPC : -EIO;

	RT_ERR(rc, "sqlite %s: %s", what, db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(src));
	return rc;
}

static int
exec(sqlite3 *db, const char *sql)
{
	int src = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return src == SQLITE_OK ? 0 : sql_err(db, src, sql);
}

/* The class table as text, so an index cut with other classes is refused. */
static void
class_table(char *buf, size_t n)
{
	size_t off = 0;

	buf[0] = 0;
	for (int i = 0; i < DISK_NCLASS && off < n; i++)
		off += (size_t)snprintf(buf + off, n - off, "%s%u", i ? "," : "",
					disk_class_size[i]);
}

/* The target's identity: made with the index, kept with it. A directory
 * emptied (or a disk replaced) makes another, so the cluster can tell the
 * target it knew from a new one under the same id. */
static int
load_format_id(struct disk_index *ix)
{
	sqlite3_stmt *st = NULL;
	char sql[128];
	uint64_t id = 0;
	int src, rc = 0;

	src = sqlite3_prepare_v2(ix->db, "SELECT v FROM meta WHERE k = 'format_id'", -1, &st, NULL);
	if (src != SQLITE_OK)
		return sql_err(ix->db, src, "prepare format_id");
	src = sqlite3_step(st);
	if (src == SQLITE_ROW && sqlite3_column_text(st, 0))
		id = strtoull((const char *)sqlite3_column_text(st, 0), NULL, 16);
	else if (src != SQLITE_DONE)
		rc = sql_err(ix->db, src, "read format_id");
	sqlite3_finalize(st);
	if (rc != 0)
		return rc;
	if (id == 0) {
		do
			id = rt_random64();
		while (id == 0);
		snprintf(sql, sizeof(sql),
			 "INSERT OR REPLACE INTO meta VALUES('format_id','%016llx');",
			 (unsigned long long)id);
		/* An index from before format ids, on a full file system: it
		 * still opens, with no id to report (0) until one is written. */
		if (exec(ix->db, sql) != 0) {
			RT_WARN("index: no format id written; the target reports none");
			id = 0;
		}
	}
	ix->format_id = id;
	return 0;
}

static int
check_meta(sqlite3 *db)
{
	char want[160], fmt[16], old[16];
	sqlite3_stmt *st = NULL;
	int rc = 0, src, seen = 0;

	class_table(want, sizeof(want));
	snprintf(fmt, sizeof(fmt), "%d", INDEX_FORMAT);
	snprintf(old, sizeof(old), "%d", INDEX_FORMAT_OLD);
	src = sqlite3_prepare_v2(db, "SELECT k, v FROM meta", -1, &st, NULL);
	if (src != SQLITE_OK)
		return sql_err(db, src, "prepare meta");
	while ((src = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		const char *v = (const char *)sqlite3_column_text(st, 1);

		if (k == NULL || v == NULL)
			continue;
		if (strcmp(k, "format") == 0) {
			seen |= 1;
			if (strcmp(v, old) == 0) {
				seen &= ~1; /* migrated below, then written as fmt */
			} else if (strcmp(v, fmt) != 0) {
				RT_ERRLOG("index format %s, this build reads %s", v, fmt);
				rc = -CFS_ECONFIG;
			}
		} else if (strcmp(k, "classes") == 0) {
			seen |= 2;
			if (strcmp(v, want) != 0) {
				RT_ERRLOG("index was cut with classes %s, this build has %s", v,
					  want);
				rc = -CFS_ECONFIG;
			}
		}
	}
	if (src != SQLITE_DONE && rc == 0)
		rc = sql_err(db, src, "read meta");
	sqlite3_finalize(st);
	if (rc == 0 && seen != 3) {
		char sql[320];

		snprintf(sql, sizeof(sql),
			 "INSERT OR REPLACE INTO meta VALUES('format','%s');"
			 "INSERT OR REPLACE INTO meta VALUES('classes','%s');",
			 fmt, want);
		rc = exec(db, sql);
	}
	return rc;
}

/*
 * Bring an index made by an older build up to the current columns: the
 * request ids of the versions (CRAQ's durable exactly-once memory) came later,
 * then the tombstone flag of the pending version (a pending remove). Its rows
 * get 0 (no request known, no tombstone), which is what they meant. The format
 * number stays: the columns only add, and the statements name every column.
 */
static int
migrate(sqlite3 *db)
{
	bool have[sizeof(added_cols) / sizeof(added_cols[0])] = {false};
	sqlite3_stmt *st = NULL;
	int rc = 0, src;

	src = sqlite3_prepare_v2(db, "PRAGMA table_info(chunks)", -1, &st, NULL);
	if (src != SQLITE_OK)
		return sql_err(db, src, "prepare table_info");
	while ((src = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);

		for (size_t i = 0; name != NULL && i < sizeof(have) / sizeof(have[0]); i++)
			if (strcmp(name, added_cols[i][0]) == 0)
				have[i] = true;
	}
	if (src != SQLITE_DONE)
		rc = sql_err(db, src, "table_info");
	sqlite3_finalize(st);
	for (size_t i = 0; rc == 0 && i < sizeof(have) / sizeof(have[0]); i++) {
		if (have[i])
			continue;
		RT_INFO("index: adding column %s", added_cols[i][0]);
		rc = exec(db, added_cols[i][1]);
	}
	return rc;
}

/*
 * The tables as this build uses them, checked after migrate: CREATE TABLE IF
 * NOT EXISTS keeps whatever table of that name is there, and a database made
 * or changed by hand (no primary key, so INSERT OR REPLACE adds a second row
 * for a chunk; a column without NOT NULL; a trigger that rewrites rows
 * behind the engine) would be used as it is. Such an index is refused with
 * the first difference named, before any row is read.
 */
struct index_col {
	const char *name, *type;
	int pk; /* position in the primary key, 0: not in it */
};

static const struct index_col meta_cols[] = {{"k", "TEXT", 1}, {"v", "TEXT", 0}};
static const struct index_col chunks_cols[] = {
	{"id", "BLOB", 1},	{"csize", "INTEGER", 0}, {"cls", "INTEGER", 0},
	{"ver", "INTEGER", 0},	{"slot", "INTEGER", 0},	 {"len", "INTEGER", 0},
	{"crc", "INTEGER", 0},	{"pver", "INTEGER", 0},	 {"pslot", "INTEGER", 0},
	{"plen", "INTEGER", 0}, {"pcrc", "INTEGER", 0},	 {"req", "INTEGER", 0},
	{"preq", "INTEGER", 0}, {"ptomb", "INTEGER", 0},
};
static const struct index_col removed_cols[] = {
	{"id", "BLOB", 1}, {"req", "INTEGER", 2}, {"ver", "INTEGER", 0}, {"at", "INTEGER", 0}};

static int
check_table(sqlite3 *db, const char *table, const struct index_col *cols, int ncols)
{
	char sql[64];
	sqlite3_stmt *st = NULL;
	int rc = 0, src, n = 0;

	snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
	src = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (src != SQLITE_OK)
		return sql_err(db, src, "prepare table_info");
	while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);
		const char *type = (const char *)sqlite3_column_text(st, 2);
		int notnull = sqlite3_column_int(st, 3), pk = sqlite3_column_int(st, 5);
		const struct index_col *c = n < ncols ? &cols[n] : NULL;

		if (c == NULL || name == NULL || type == NULL || strcmp(name, c->name) != 0 ||
		    strcasecmp(type, c->type) != 0 || !notnull || pk != c->pk) {
			RT_ERRLOG("index: table %s, column %d is %s %s%s (primary key %d), this "
				  "build needs %s %s NOT NULL (primary key %d): not an index "
				  "this build made; refused",
				  table, n + 1, name ? name : "?", type && *type ? type : "untyped",
				  notnull ? " NOT NULL" : "", pk, c ? c->name : "no column",
				  c ? c->type : "-", c ? c->pk : 0);
			rc = -CFS_ECONFIG;
		}
		n++;
	}
	if (rc == 0 && src != SQLITE_DONE)
		rc = sql_err(db, src, "table_info");
	sqlite3_finalize(st);
	if (rc == 0 && n < ncols) {
		RT_ERRLOG("index: table %s has %d columns, this build needs %d (from %s on): "
			  "refused",
			  table, n, ncols, cols[n].name);
		rc = -CFS_ECONFIG;
	}
	return rc;
}

#define TABLE(name, cols)                                                                          \
	{                                                                                          \
		name, cols, (int)(sizeof(cols) / sizeof(cols[0]))                                  \
	}
static const struct index_table {
	const char *name;
	const struct index_col *cols;
	int ncols;
} index_tables[] = {
	TABLE("meta", meta_cols),
	TABLE("chunks", chunks_cols),
	TABLE("removed", removed_cols),
};
#undef TABLE

static int
check_schema(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int rc = 0, src;

	for (size_t i = 0; rc == 0 && i < sizeof(index_tables) / sizeof(index_tables[0]); i++)
		rc = check_table(db, index_tables[i].name, index_tables[i].cols,
				 index_tables[i].ncols);
	if (rc != 0)
		return rc;
	src = sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'trigger'", -1,
				 &st, NULL);
	if (src != SQLITE_OK)
		return sql_err(db, src, "prepare trigger list");
	src = sqlite3_step(st);
	if (src == SQLITE_ROW) {
		RT_ERRLOG("index: has trigger %s, which would change rows behind the engine: "
			  "refused",
			  (const char *)sqlite3_column_text(st, 0));
		rc = -CFS_ECONFIG;
	} else if (src != SQLITE_DONE) {
		rc = sql_err(db, src, "trigger list");
	}
	sqlite3_finalize(st);
	return rc;
}

static int
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	int src = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);

	return src == SQLITE_OK ? 0 : sql_err(db, src, sql);
}

int
disk_index_reserve_restore(struct disk_index *ix)
{
	int rc;

	if (ix->reserve_fd < 0 || !ix->reserve_spent)
		return 0;
	if (fallocate(ix->reserve_fd, 0, 0, INDEX_RESERVE) != 0) {
		rc = -errno;
		if (rc == -EOPNOTSUPP) {
			/* Nothing to hold room with: no reserve, and so none spent
			 * (a spent one would checkpoint at every commit). */
			close(ix->reserve_fd);
			ix->reserve_fd = -1;
			ix->reserve_spent = false;
			return 0;
		}
		(void)ftruncate(ix->reserve_fd, 0); /* give back what it got */
		return rc;
	}
	ix->reserve_spent = false;
	return 0;
}

int
disk_index_reserve_spend(struct disk_index *ix)
{
	if (ix->reserve_fd < 0 || ix->reserve_spent)
		return -ENOSPC;
	if (ftruncate(ix->reserve_fd, 0) != 0)
		return -errno;
	ix->reserve_spent = true;
	return 0;
}

static void
reserve_open(struct disk_index *ix, const char *path)
{
	char rpath[PATH_MAX];
	int rc;

	snprintf(rpath, sizeof(rpath), "%s.reserve", path);
	ix->reserve_fd = open(rpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (ix->reserve_fd < 0) {
		RT_WARN("%s: %s: the index has no reserve", rpath, strerror(errno));
		return;
	}
	ix->reserve_spent = true;
	rc = disk_index_reserve_restore(ix);
	if (rc != 0)
		RT_WARN("%s: %s: the index reserve waits for room", rpath, strerror(-rc));
}

int
disk_index_open(struct disk_index *ix, const char *path)
{
	int src, rc;

	memset(ix, 0, sizeof(*ix));
	ix->reserve_fd = -1;
	src = sqlite3_open_v2(path, &ix->db,
			      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			      NULL);
	if (src != SQLITE_OK) {
		rc = sql_err(ix->db, src, "open");
		goto out_close;
	}
	/* synchronous=FULL in WAL mode syncs the WAL at every commit: a commit
	 * that returned is durable, which is what acknowledging a write needs. */
	{
		int persist = 1;

		sqlite3_file_control(ix->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	}
	rc = exec(ix->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			  "PRAGMA wal_autocheckpoint=4000; PRAGMA cache_size=-65536;");
	if (rc != 0)
		goto out_close;
	rc = exec(ix->db, schema);
	if (rc != 0)
		goto out_close;
	rc = check_meta(ix->db);
	if (rc == 0)
		rc = load_format_id(ix);
	if (rc != 0)
		goto out_close;
	rc = migrate(ix->db);
	if (rc == 0)
		rc = check_schema(ix->db);
	if (rc != 0)
		goto out_close;
	if ((rc = prepare(
		     ix->db,
		     "INSERT OR REPLACE INTO chunks (id, csize, cls, ver, slot, len, crc, pver,"
		     " pslot, plen, pcrc, req, preq, ptomb) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
		     &ix->upsert)) != 0 ||
	    (rc = prepare(ix->db, "DELETE FROM chunks WHERE id = ?", &ix->del)) != 0 ||
	    (rc = prepare(ix->db, "BEGIN", &ix->begin)) != 0 ||
	    (rc = prepare(ix->db, "COMMIT", &ix->commit)) != 0 ||
	    (rc = prepare(ix->db, "ROLLBACK", &ix->rollback)) != 0 ||
	    (rc = prepare(ix->db,
			  "INSERT OR REPLACE INTO removed (id, req, ver, at) VALUES (?,?,?,?)",
			  &ix->rm_put)) != 0 ||
	    (rc = prepare(ix->db,
			  "INSERT OR IGNORE INTO removed (id, req, ver, at) VALUES (?,?,?,?)",
			  &ix->rm_adopt)) != 0 ||
	    (rc = prepare(ix->db, "DELETE FROM removed WHERE at <= ?", &ix->rm_purge)) != 0 ||
	    (rc = prepare(ix->db, "SELECT min(at) FROM removed", &ix->rm_min)) != 0)
		goto out_close;
	disk_index_removed_oldest(ix);
	reserve_open(ix, path);
	return 0;
out_close:
	disk_index_close(ix);
	return rc;
}

void
disk_index_close(struct disk_index *ix)
{
	sqlite3_finalize(ix->upsert);
	sqlite3_finalize(ix->del);
	sqlite3_finalize(ix->begin);
	sqlite3_finalize(ix->commit);
	sqlite3_finalize(ix->rollback);
	sqlite3_finalize(ix->rm_put);
	sqlite3_finalize(ix->rm_adopt);
	sqlite3_finalize(ix->rm_purge);
	sqlite3_finalize(ix->rm_min);
	if (ix->db != NULL)
		sqlite3_close(ix->db);
	if (ix->reserve_fd >= 0)
		close(ix->reserve_fd);
	memset(ix, 0, sizeof(*ix));
	ix->reserve_fd = -1;
}

int
disk_index_load(const char *path, sqlite3 *db, int (*fn)(const struct disk_row *r, void *arg),
		void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc = 0, src;

	src = sqlite3_prepare_v2(
		db,
		"SELECT id, csize, cls, ver, slot, len, crc, pver, pslot, plen, pcrc, req, preq,"
		" ptomb"
		" FROM chunks ORDER BY id",
		-1, &st, NULL);
	if (src != SQLITE_OK)
		return sql_err(db, src, "prepare load");
	while ((src = sqlite3_step(st)) == SQLITE_ROW) {
		struct disk_row r = {0};
		int cls = sqlite3_column_int(st, 2);

		if (sqlite3_column_bytes(st, 0) != (int)sizeof(r.id.b) || cls < 0 ||
		    cls >= DISK_NCLASS) {
			RT_ERRLOG("%s: malformed index row", path);
			rc = -EIO;
			break;
		}
		memcpy(r.id.b, sqlite3_column_blob(st, 0), sizeof(r.id.b));
		r.chunk_size = (uint32_t)sqlite3_column_int64(st, 1);
		r.cls = (uint8_t)cls;
		r.ver = (uint64_t)sqlite3_column_int64(st, 3);
		r.slot = (uint32_t)sqlite3_column_int64(st, 4);
		r.len = (uint32_t)sqlite3_column_int64(st, 5);
		r.crc = (uint32_t)sqlite3_column_int64(st, 6);
		r.pver = (uint64_t)sqlite3_column_int64(st, 7);
		r.pslot = (uint32_t)sqlite3_column_int64(st, 8);
		r.plen = (uint32_t)sqlite3_column_int64(st, 9);
		r.pcrc = (uint32_t)sqlite3_column_int64(st, 10);
		r.req = (uint64_t)sqlite3_column_int64(st, 11);
		r.preq = (uint64_t)sqlite3_column_int64(st, 12);
		r.ptomb = sqlite3_column_int(st, 13) != 0;
		rc = fn(&r, arg);
		if (rc != 0)
			break;
	}
	if (rc == 0 && src != SQLITE_DONE)
		rc = sql_err(db, src, "load");
	sqlite3_finalize(st);
	return rc;
}

static int
step_reset(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
	int src = sqlite3_step(st);

	sqlite3_reset(st);
	return src == SQLITE_DONE ? 0 : sql_err(db, src, what);
}

int
disk_index_begin(struct disk_index *ix)
{
	return step_reset(ix->db, ix->begin, "begin");
}

static int
put_removed(struct disk_index *ix, sqlite3_stmt *st, const struct disk_removed_rec *r)
{
	int rc;

	sqlite3_bind_blob(st, 1, r->id.b, sizeof(r->id.b), SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)r->req);
	sqlite3_bind_int64(st, 3, (int64_t)r->ver);
	sqlite3_bind_int64(st, 4, (int64_t)r->at);
	rc = step_reset(ix->db, st, "record remove");
	if (rc == 0 && (ix->rm_oldest == 0 || r->at < ix->rm_oldest))
		ix->rm_oldest = r->at;
	return rc;
}

int
disk_index_put(struct disk_index *ix, const struct disk_row *r)
{
	sqlite3_stmt *st = r->del ? ix->del : ix->upsert;
	int rc;

	sqlite3_bind_blob(st, 1, r->id.b, sizeof(r->id.b), SQLITE_STATIC);
	if (!r->del) {
		sqlite3_bind_int64(st, 2, r->chunk_size);
		sqlite3_bind_int(st, 3, r->cls);
		sqlite3_bind_int64(st, 4, (int64_t)r->ver);
		sqlite3_bind_int64(st, 5, r->slot);
		sqlite3_bind_int64(st, 6, r->len);
		sqlite3_bind_int64(st, 7, r->crc);
		sqlite3_bind_int64(st, 8, (int64_t)r->pver);
		sqlite3_bind_int64(st, 9, r->pslot);
		sqlite3_bind_int64(st, 10, r->plen);
		sqlite3_bind_int64(st, 11, r->pcrc);
		sqlite3_bind_int64(st, 12, (int64_t)r->req);
		sqlite3_bind_int64(st, 13, (int64_t)r->preq);
		sqlite3_bind_int(st, 14, r->ptomb ? 1 : 0);
	}
	rc = step_reset(ix->db, st, r->del ? "delete" : "upsert");
	if (rc != 0 || !r->del || r->rm_req == 0)
		return rc;
	/* A committed remove of a request: remembered with the deletion. */
	return put_removed(
		ix, ix->rm_put,
		&(struct disk_removed_rec){
			.id = r->id, .req = r->rm_req, .ver = r->rm_ver, .at = r->rm_at});
}

int
disk_index_adopt_removed(struct disk_index *ix, const struct disk_removed_rec *recs, unsigned n)
{
	int rc = 0;

	for (unsigned i = 0; i < n && rc == 0; i++)
		rc = put_removed(ix, ix->rm_adopt, &recs[i]);
	return rc;
}

int
disk_index_purge_removed(struct disk_index *ix, uint64_t cutoff)
{
	if (ix->rm_oldest == 0 || ix->rm_oldest > cutoff)
		return 0;
	sqlite3_bind_int64(ix->rm_purge, 1, (int64_t)cutoff);
	return step_reset(ix->db, ix->rm_purge, "purge removed");
}

void
disk_index_removed_oldest(struct disk_index *ix)
{
	int src = sqlite3_step(ix->rm_min);

	ix->rm_oldest = 0;
	if (src == SQLITE_ROW && sqlite3_column_type(ix->rm_min, 0) != SQLITE_NULL)
		ix->rm_oldest = (uint64_t)sqlite3_column_int64(ix->rm_min, 0);
	sqlite3_reset(ix->rm_min);
}

int
disk_index_load_removed(const char *path, sqlite3 *db, uint64_t since,
			int (*fn)(const struct disk_removed_rec *r, void *arg), void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc = 0, src;

	src = sqlite3_prepare_v2(
		db, "SELECT id, req, ver, at FROM removed WHERE at > ? ORDER BY at", -1, &st, NULL);
	if (src != SQLITE_OK)
		return sql_err(db, src, "prepare load removed");
	sqlite3_bind_int64(st, 1, (int64_t)since);
	while ((src = sqlite3_step(st)) == SQLITE_ROW) {
		struct disk_removed_rec r = {0};

		if (sqlite3_column_bytes(st, 0) != (int)sizeof(r.id.b)) {
			RT_ERRLOG("%s: malformed removed record", path);
			rc = -EIO;
			break;
		}
		memcpy(r.id.b, sqlite3_column_blob(st, 0), sizeof(r.id.b));
		r.req = (uint64_t)sqlite3_column_int64(st, 1);
		r.ver = (uint64_t)sqlite3_column_int64(st, 2);
		r.at = (uint64_t)sqlite3_column_int64(st, 3);
		rc = fn(&r, arg);
		if (rc != 0)
			break;
	}
	if (rc == 0 && src != SQLITE_DONE)
		rc = sql_err(db, src, "load removed");
	sqlite3_finalize(st);
	return rc;
}

int
disk_index_commit(struct disk_index *ix)
{
	int rc = step_reset(ix->db, ix->commit, "commit");

	if (rc != 0)
		disk_index_rollback(ix);
	else if (ix->reserve_spent)
		(void)sqlite3_wal_checkpoint_v2(ix->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL,
						NULL);
	return rc;
}

void
disk_index_rollback(struct disk_index *ix)
{
	if (!sqlite3_get_autocommit(ix->db))
		step_reset(ix->db, ix->rollback, "rollback");
}

/*
 * db.c — the caddie results database: open + migrate, the run state machine, batched
 * inserts (see db.h for the contract).
 *
 * Every statement is prepared once per connection and cached (stmt_get), values are bound,
 * never formatted into SQL. Writes run inside BEGIN IMMEDIATE transactions, taken by the
 * function itself unless the caller already holds one (tx_begin/tx_end), so batching is
 * the caller's choice and single calls are still atomic.
 * Not here: reading run directories (ingest.c), sweep logic (plan.c), scheduling (sched.c).
 */
#include "db/db.h"

#include "db/db_internal.h"
#include "db/schema_sql.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the statement cache -------------------------------------------------------------- */

enum {
    ST_RUN_GET,
    ST_RUN_EXISTS,
    ST_RUN_LIST,
    ST_RUN_COUNT,
    ST_RUN_INSERT,
    ST_PARAMS_FROM_CONFIG,
    ST_RUN_DELETE,
    ST_FIND_DONE_HASH,
    ST_FIND_PENDING_HASH,
    ST_STATUS_GET,
    ST_TO_RUNNING,
    ST_TO_FINAL,
    ST_TO_QUEUED,
    ST_CLAIM,
    ST_CLAIM_NEXT_PICK,
    ST_SET_PROCESS,
    ST_SET_EXIT,
    ST_SET_ERROR,
    ST_SET_PROVENANCE,
    ST_EVENT_INSERT,
    ST_LAUNCH_GET,
    ST_JSON_ARRAY_TEXT,
    ST_JSON_OBJECT_TEXT,
    ST_JSON_EXTRACT_TEXT,
    ST_RUN_JSON,
    ST_MEAN_DURATION,
    ST_SWEEP_UPSERT,
    ST_SWEEP_ID,
    ST_SWEEP_RUNS,
    ST_METRIC_INSERT,
    ST_METRIC_REPLACE,
    ST_RESULT_SET,
    ST_RESULT_GET,
    ST_ARTIFACT_ADD,
    ST_COUNT_
};

#define RUN_COLS                                                                                 \
    "r.run_id, r.sweep_id, s.name, r.name, r.engine, r.config, r.config_hash, r.group_hash, "   \
    "r.seed, r.status, r.priority, r.devices_requested, r.devices_assigned, r.attempts, "       \
    "r.retries, r.timeout_s, r.launch, r.host, r.pid, r.boot_id, r.proc_start_time, "           \
    "r.queued_at, r.started_at, r.ended_at, r.exit_code, r.error, r.git_commit, r.git_dirty, "  \
    "r.engine_version, r.run_dir "                                                              \
    "FROM runs r LEFT JOIN sweeps s ON s.id = r.sweep_id "

static const char *const stmt_sql[ST_COUNT_] = {
    [ST_RUN_GET] = "SELECT " RUN_COLS "WHERE r.run_id = ?1",
    [ST_RUN_EXISTS] = "SELECT 1 FROM runs WHERE run_id = ?1",
    [ST_RUN_LIST] = "SELECT " RUN_COLS
                    "WHERE instr(?1, ',' || r.status || ',') > 0 AND (?2 IS NULL OR s.name = ?2) "
                    "ORDER BY r.priority DESC, r.queued_at, r.run_id",
    [ST_RUN_COUNT] = "SELECT r.status, count(*) FROM runs r LEFT JOIN sweeps s ON s.id = r.sweep_id "
                     "WHERE ?1 IS NULL OR s.name = ?1 GROUP BY r.status",
    [ST_RUN_INSERT] =
        "INSERT INTO runs(run_id, sweep_id, name, engine, config, config_hash, group_hash, seed, "
        "status, priority, devices_requested, retries, timeout_s, launch, engine_version, "
        "git_commit, git_dirty, run_dir, queued_at) "
        "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)",
    [ST_PARAMS_FROM_CONFIG] =
        "INSERT OR REPLACE INTO params(run_id, key, num, text) "
        "SELECT ?1, key, CASE type WHEN 'integer' THEN value WHEN 'real' THEN value "
        "                          WHEN 'true' THEN 1 WHEN 'false' THEN 0 END, "
        "       CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN NULL "
        "                 ELSE CAST(value AS TEXT) END "
        "FROM json_each(?2)",
    [ST_RUN_DELETE] = "DELETE FROM runs WHERE run_id = ?1",
    [ST_FIND_DONE_HASH] = "SELECT count(*), (SELECT run_id FROM runs WHERE config_hash = ?1 AND "
                          "status IN ('done','stopped') ORDER BY ended_at DESC, run_id DESC LIMIT 1) "
                          "FROM runs WHERE config_hash = ?1 AND status IN ('done','stopped')",
    [ST_FIND_PENDING_HASH] = "SELECT run_id FROM runs WHERE config_hash = ?1 AND status IN "
                             "('queued','running') ORDER BY queued_at, run_id LIMIT 1",
    [ST_STATUS_GET] = "SELECT status FROM runs WHERE run_id = ?1",
    [ST_TO_RUNNING] = "UPDATE runs SET status = 'running', started_at = ?2, ended_at = NULL, "
                      "exit_code = NULL, error = NULL WHERE run_id = ?1",
    [ST_TO_FINAL] = "UPDATE runs SET status = ?2, ended_at = ?3 WHERE run_id = ?1",
    [ST_TO_QUEUED] = "UPDATE runs SET status = 'queued', started_at = NULL, ended_at = NULL, "
                     "pid = NULL, proc_start_time = NULL, boot_id = NULL, host = NULL, "
                     "devices_assigned = NULL, exit_code = NULL, "
                     "attempts = CASE WHEN ?2 THEN 0 ELSE attempts END WHERE run_id = ?1",
    [ST_CLAIM] = "UPDATE runs SET status = 'running', attempts = attempts + 1, "
                 "devices_assigned = ?2, host = ?3, boot_id = ?4, started_at = ?5, "
                 "ended_at = NULL, pid = NULL, proc_start_time = NULL, exit_code = NULL, "
                 "error = NULL WHERE run_id = ?1 AND status = 'queued'",
    [ST_CLAIM_NEXT_PICK] = "SELECT run_id FROM runs WHERE status = 'queued' AND "
                           "devices_requested <= ?1 ORDER BY priority DESC, queued_at, run_id "
                           "LIMIT 1",
    [ST_SET_PROCESS] = "UPDATE runs SET pid = ?2, proc_start_time = ?3 WHERE run_id = ?1",
    [ST_SET_EXIT] = "UPDATE runs SET exit_code = ?2, error = ?3 WHERE run_id = ?1",
    [ST_SET_ERROR] = "UPDATE runs SET error = ?2 WHERE run_id = ?1",
    [ST_SET_PROVENANCE] =
        "UPDATE runs SET engine_version = coalesce(nullif(?2, ''), engine_version), "
        "git_commit = coalesce(nullif(?3, ''), git_commit), "
        "git_dirty = CASE WHEN ?4 < 0 THEN git_dirty ELSE ?4 END WHERE run_id = ?1",
    [ST_EVENT_INSERT] = "INSERT INTO events(run_id, at, from_status, to_status, reason) "
                        "VALUES(?1, ?2, ?3, ?4, coalesce(?5, ''))",
    [ST_LAUNCH_GET] = "SELECT launch FROM runs WHERE run_id = ?1",
    [ST_JSON_ARRAY_TEXT] = "SELECT CAST(value AS TEXT) FROM json_each(?1, ?2) ORDER BY key",
    [ST_JSON_OBJECT_TEXT] = "SELECT key, CAST(value AS TEXT) FROM json_each(?1, ?2) ORDER BY id",
    [ST_JSON_EXTRACT_TEXT] = "SELECT CAST(json_extract(?1, ?2) AS TEXT)",
    [ST_RUN_JSON] =
        "SELECT r.run_dir, json_object("
        " 'format', 'caddie-run/1', 'run_id', r.run_id, 'name', r.name, 'engine', r.engine,"
        " 'config', json(r.config), 'config_hash', r.config_hash, 'group_hash', r.group_hash,"
        " 'seed', r.seed, 'status', r.status, 'priority', r.priority,"
        " 'devices_requested', r.devices_requested, 'devices_assigned', r.devices_assigned,"
        " 'attempts', r.attempts, 'retries', r.retries, 'timeout_s', r.timeout_s,"
        " 'launch', json(r.launch), 'host', r.host, 'pid', r.pid, 'boot_id', r.boot_id,"
        " 'proc_start_time', r.proc_start_time, 'queued_at', r.queued_at,"
        " 'started_at', r.started_at, 'ended_at', r.ended_at, 'exit_code', r.exit_code,"
        " 'error', r.error, 'git_commit', r.git_commit, 'git_dirty', r.git_dirty,"
        " 'engine_version', r.engine_version,"
        " 'sweep', json(CASE WHEN s.id IS NULL THEN NULL ELSE json_object('name', s.name,"
        "   'description', s.description, 'spec', s.spec, 'spec_hash', s.spec_hash,"
        "   'created_at', s.created_at) END),"
        " 'events', json((SELECT json_group_array(json_object('at', at, 'from', from_status,"
        "   'to', to_status, 'reason', reason)) FROM (SELECT * FROM events e"
        "   WHERE e.run_id = r.run_id ORDER BY e.id))))"
        " FROM runs r LEFT JOIN sweeps s ON s.id = r.sweep_id WHERE r.run_id = ?1",
    [ST_MEAN_DURATION] =
        "SELECT avg((julianday(r.ended_at) - julianday(r.started_at)) * 86400.0), count(*) "
        "FROM runs r LEFT JOIN sweeps s ON s.id = r.sweep_id "
        "WHERE r.status = 'done' AND r.started_at IS NOT NULL AND r.ended_at IS NOT NULL "
        "AND r.devices_requested = ?3 AND (?1 IS NULL OR s.name = ?1) "
        "AND (?2 IS NULL OR r.engine = ?2)",
    [ST_SWEEP_UPSERT] =
        "INSERT INTO sweeps(name, description, spec, spec_hash, created_at) "
        "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(name) DO UPDATE SET "
        "description = excluded.description, spec = excluded.spec, spec_hash = excluded.spec_hash "
        "RETURNING id",
    [ST_SWEEP_ID] = "SELECT id FROM sweeps WHERE name = ?1",
    [ST_SWEEP_RUNS] = "SELECT r.run_id, r.status FROM runs r JOIN sweeps s ON s.id = r.sweep_id "
                      "WHERE s.name = ?1 ORDER BY r.priority DESC, r.queued_at, r.run_id",
    [ST_METRIC_INSERT] = "INSERT INTO metrics(run_id, name, step, value, wall_ms) "
                         "VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_METRIC_REPLACE] = "INSERT OR REPLACE INTO metrics(run_id, name, step, value, wall_ms) "
                          "VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_RESULT_SET] =
        "INSERT OR REPLACE INTO results(run_id, val_loss, val_bpb, prequant_val_loss, "
        "prequant_val_bpb, artifact_bytes, model_bytes, code_bytes, train_ms, eval_ms, steps, "
        "tokens, partial) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
    [ST_RESULT_GET] =
        "SELECT val_loss, val_bpb, prequant_val_loss, prequant_val_bpb, artifact_bytes, "
        "model_bytes, code_bytes, train_ms, eval_ms, steps, tokens, partial "
        "FROM results WHERE run_id = ?1",
    [ST_ARTIFACT_ADD] = "INSERT OR REPLACE INTO artifacts(run_id, kind, path, bytes, sha256) "
                        "VALUES(?1, ?2, ?3, ?4, ?5)",
};

/* A statement of another db/ file, keyed by the address of its SQL text (db_internal.h). */
typedef struct ext_stmt {
    const char *sql;
    sqlite3_stmt *st;
} ext_stmt;

/* how long a statement waits for another process's lock before SQLITE_BUSY */
#define CAD_DB_BUSY_MS 10000

struct cad_db {
    sqlite3 *h;
    char *path;
    int readonly;
    int run_json_lenient;           /* cad_db_set_run_json_lenient */
    char run_json_failure[CAD_ERRMSG_MAX]; /* the last run.json a lenient change missed */
    sqlite3_stmt *st[ST_COUNT_];
    ext_stmt *ext;  /* cad_db_stmt's cache; a handful of queries, searched linearly */
    int n_ext, cap_ext;
};

static int db_fail(cad_db *db, cad_err *e, const char *what) {
    int code = sqlite3_errcode(db->h) & 0xff;
    /* a damaged file is not fixed by trying again: say what is (db.h, "damaged") */
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
        return cad_fail(e, CAD_EDB,
                        "%s: %s: %s: the database file is damaged; the run dirs are the truth: "
                        "move it aside and run 'caddie db rebuild --db %s'",
                        db->path, what, sqlite3_errmsg(db->h), db->path);
    /* the three a user can fix without losing anything: say which and how, in the same line */
    /* ENOSPC can also surface as a disk I/O error (growing the -shm or -wal) */
    if (code == SQLITE_FULL || (code == SQLITE_IOERR && sqlite3_system_errno(db->h) == ENOSPC))
        return cad_fail(e, CAD_EDB,
                        "%s: %s: %s: the disk holding the database is full; free space there (or "
                        "move the DB elsewhere and pass --db) and rerun; nothing was lost, the "
                        "run dirs are the truth",
                        db->path, what, sqlite3_errmsg(db->h));
    if (code == SQLITE_READONLY)
        return cad_fail(e, CAD_EDB,
                        "%s: %s: %s: the database cannot be written (read-only file system, "
                        "immutable or read-only file, or its directory not writable for the "
                        "-wal/-shm files); make it writable, or copy it somewhere writable and "
                        "pass --db",
                        db->path, what, sqlite3_errmsg(db->h));
    /* a WAL database needs its -shm (and -wal) beside it: on a read-only mount even a reader
     * fails here, with SQLite's bare "unable to open database file" */
    if (code == SQLITE_CANTOPEN)
        return cad_fail(e, CAD_EDB,
                        "%s: %s: %s: cannot open the database or create its -wal/-shm files "
                        "beside it; its directory must be writable (not a read-only mount): "
                        "copy it somewhere writable and pass --db",
                        db->path, what, sqlite3_errmsg(db->h));
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        return cad_fail(e, CAD_EDB,
                        "%s: %s: %s: another process held a lock on the database for longer "
                        "than the %d s busy timeout; find it with 'fuser %s' (e.g. a sqlite3 "
                        "shell inside BEGIN, or a second writer), end its transaction, and rerun",
                        db->path, what, sqlite3_errmsg(db->h), CAD_DB_BUSY_MS / 1000, db->path);
    return cad_fail(e, CAD_EDB, "%s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
}

/* The cached statement, reset and with bindings cleared. */
static sqlite3_stmt *stmt_get(cad_db *db, int id, cad_err *e) {
    sqlite3_stmt *s = db->st[id];
    if (!s) {
        if (sqlite3_prepare_v3(db->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) !=
            SQLITE_OK) {
            db_fail(db, e, "preparing a statement");
            return NULL;
        }
        db->st[id] = s;
    } else {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
    return s;
}

int cad_db_fail(cad_db *db, cad_err *e, const char *what) { return db_fail(db, e, what); }

sqlite3 *cad_db_sqlite(cad_db *db) { return db->h; }

sqlite3_stmt *cad_db_stmt(cad_db *db, const char *sql, cad_err *e) {
    for (int i = 0; i < db->n_ext; i++)
        if (db->ext[i].sql == sql) {
            sqlite3_reset(db->ext[i].st);
            sqlite3_clear_bindings(db->ext[i].st);
            return db->ext[i].st;
        }
    if (db->n_ext == db->cap_ext) {
        int cap = db->cap_ext ? 2 * db->cap_ext : 16;
        ext_stmt *nv = realloc(db->ext, (size_t)cap * sizeof *nv);
        if (!nv) {
            cad_fail(e, CAD_ENOMEM, "%s: out of memory preparing a statement", db->path);
            return NULL;
        }
        db->ext = nv;
        db->cap_ext = cap;
    }
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
        db_fail(db, e, "preparing a statement");
        return NULL;
    }
    db->ext[db->n_ext++] = (ext_stmt){sql, s};
    return s;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v) {
    if (v) sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, i);
}

/* Step a write statement to completion and reset it. */
static int step_done(cad_db *db, sqlite3_stmt *s, cad_err *e, const char *what) {
    int rc = sqlite3_step(s);
    while (rc == SQLITE_ROW) rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) {
        db_fail(db, e, what);
        sqlite3_reset(s);
        return CAD_EDB;
    }
    sqlite3_reset(s);
    return CAD_OK;
}

static char *col_dup(sqlite3_stmt *s, int i) {
    if (sqlite3_column_type(s, i) == SQLITE_NULL) return NULL;
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? strdup((const char *)t) : NULL;
}

static int64_t col_i64(sqlite3_stmt *s, int i, int64_t null_value) {
    return sqlite3_column_type(s, i) == SQLITE_NULL ? null_value : sqlite3_column_int64(s, i);
}

static double col_dbl(sqlite3_stmt *s, int i) {
    return sqlite3_column_type(s, i) == SQLITE_NULL ? NAN : sqlite3_column_double(s, i);
}

/* ---- transactions -------------------------------------------------------------------- */

int cad_db_in_transaction(cad_db *db) { return !sqlite3_get_autocommit(db->h); }

int cad_db_begin(cad_db *db, cad_err *e) {
    if (cad_db_in_transaction(db))
        return cad_fail(e, CAD_EDB, "%s: a transaction is already open", db->path);
    if (sqlite3_exec(db->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(db, e, "BEGIN");
    return CAD_OK;
}

int cad_db_commit(cad_db *db, cad_err *e) {
    if (sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        int rc = db_fail(db, e, "COMMIT");
        cad_db_rollback(db);
        return rc;
    }
    return CAD_OK;
}

void cad_db_rollback(cad_db *db) {
    if (cad_db_in_transaction(db)) sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

/* Open a transaction unless the caller holds one; *owned says whether we must end it. */
static int tx_begin(cad_db *db, int *owned, cad_err *e) {
    *owned = 0;
    if (cad_db_in_transaction(db)) return CAD_OK;
    int rc = cad_db_begin(db, e);
    if (rc == CAD_OK) *owned = 1;
    return rc;
}

static int tx_end(cad_db *db, int owned, int rc, cad_err *e) {
    if (!owned) return rc;
    if (rc != CAD_OK) {
        cad_db_rollback(db);
        return rc;
    }
    return cad_db_commit(db, e);
}

/* ---- opening and migrations ------------------------------------------------------------ */

const char *cad_db_path(const char *opt_db) {
    if (opt_db && *opt_db) return opt_db;
    const char *env = getenv("CADDIE_DB");
    if (env && *env) return env;
    return "caddie.db";
}

int cad_db_schema_latest(void) {
    int latest = 0;
    for (const cad_schema_migration *m = cad_schema_migrations; m->name; m++) latest = atoi(m->name);
    return latest;
}

static int user_version(cad_db *db, int *v, cad_err *e) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return db_fail(db, e, "reading user_version");
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(s);
        return db_fail(db, e, "reading user_version");
    }
    *v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return CAD_OK;
}

int cad_db_schema_version(cad_db *db) {
    int v = -1;
    if (user_version(db, &v, NULL) != CAD_OK) return -1;
    return v;
}

int cad_db_migrate(cad_db *db, int *from, int *to, cad_err *e) {
    int v;
    int rc = user_version(db, &v, e);
    if (rc) return rc;
    int first_from = -1; /* version under the write lock when this process applied its first */
    int latest = cad_db_schema_latest();
    if (v > latest)
        return cad_fail(e, CAD_EDB,
                        "%s: schema version %d is newer than this caddie knows (%d): "
                        "use a newer caddie",
                        db->path, v, latest);
    int expect = 1;
    for (const cad_schema_migration *m = cad_schema_migrations; m->name; m++, expect++) {
        int num = atoi(m->name);
        /* The build embeds files in name order; a gap means a missing or misnamed file. */
        CAD_ASSERT(num == expect);
        if (num <= v) continue;
        /* BEGIN IMMEDIATE takes the write lock first, then re-reads the version: two
         * processes opening a fresh DB at once apply each migration exactly once. */
        if ((rc = cad_db_begin(db, e))) return cad_wrap(e, "migrating to %s", m->name);
        int cur;
        if ((rc = user_version(db, &cur, e))) {
            cad_db_rollback(db);
            return rc;
        }
        if (cur >= num) { /* another process applied it meanwhile */
            cad_db_rollback(db);
            v = cur;
            continue;
        }
        if (first_from < 0) first_from = cur;
        char *msg = NULL;
        if (sqlite3_exec(db->h, m->sql, NULL, NULL, &msg) != SQLITE_OK) {
            rc = cad_fail(e, CAD_EDB, "%s: migration %s failed: %s", db->path, m->name,
                          msg ? msg : sqlite3_errmsg(db->h));
            sqlite3_free(msg);
            cad_db_rollback(db);
            return rc;
        }
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", num);
        if (sqlite3_exec(db->h, pragma, NULL, NULL, NULL) != SQLITE_OK) {
            rc = db_fail(db, e, "setting user_version");
            cad_db_rollback(db);
            return rc;
        }
        if ((rc = cad_db_commit(db, e))) return rc;
        v = num;
    }
    if (from) *from = first_from >= 0 ? first_from : v;
    if (to) *to = v;
    return CAD_OK;
}

int cad_db_open(const char *path, int flags, cad_db **out, cad_err *e) {
    *out = NULL;
    struct stat st;
    if ((flags & CAD_DB_MUST_EXIST) && stat(path, &st) != 0)
        return cad_fail(e, CAD_EIO,
                        "no database '%s' (queue runs with 'caddie sweep add FILE', or pass "
                        "--db FILE / set CADDIE_DB)",
                        path);
    cad_db *db = calloc(1, sizeof *db);
    if (!db) return cad_fail(e, CAD_ENOMEM, "out of memory opening %s", path);
    db->path = strdup(path);
    db->readonly = (flags & CAD_DB_READONLY) != 0;
    int oflags = db->readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path, &db->h, oflags, NULL) != SQLITE_OK) {
        int rc = cad_fail(e, CAD_EDB, "%s: cannot open database: %s", path,
                          db->h ? sqlite3_errmsg(db->h) : "out of memory");
        cad_db_close(db);
        return rc;
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, CAD_DB_BUSY_MS);
    int rc = CAD_OK;
    if (!db->readonly) {
        /* WAL: readers (sqlite3, reports) never block the runner and vice versa.
         * synchronous=NORMAL is durable across process crashes (kill -9, OOM), which is what
         * we need: only a power cut or kernel crash can lose the last commits, and those are
         * in the run directories (`caddie db rebuild`). journal_mode=OFF/MEMORY or
         * synchronous=OFF would be faster and could corrupt the file: never. */
        /* A bigger page cache and fewer, larger checkpoints: metric ingestion is bound by
         * B-tree page writes (make bench: ~2x on a VM disk over the defaults). */
        /* Switching a fresh file to WAL can answer SQLITE_BUSY at once, without the busy
         * handler, while another process creates the same DB (SQLite avoids a deadlock that
         * way): retry for as long as the busy timeout would have waited. */
        int xrc = SQLITE_BUSY;
        for (int tries = 0; tries < 1000 && (xrc & 0xff) == SQLITE_BUSY; tries++) {
            xrc = sqlite3_exec(db->h, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
            if ((xrc & 0xff) == SQLITE_BUSY) sqlite3_sleep(10);
        }
        if (xrc != SQLITE_OK ||
            sqlite3_exec(db->h,
                         "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; "
                         "PRAGMA wal_autocheckpoint=4000; PRAGMA temp_store=MEMORY;",
                         NULL, NULL, NULL) != SQLITE_OK)
            rc = db_fail(db, e, "setting WAL mode");
    }
    if (!rc && db->readonly &&
        sqlite3_exec(db->h, "PRAGMA cache_size=-32768", NULL, NULL, NULL) != SQLITE_OK)
        rc = db_fail(db, e, "setting the cache size");
    if (!rc && sqlite3_exec(db->h, "PRAGMA foreign_keys=ON", NULL, NULL, NULL) != SQLITE_OK)
        rc = db_fail(db, e, "enabling foreign keys");
    if (!rc && !db->readonly && !(flags & CAD_DB_NO_MIGRATE)) rc = cad_db_migrate(db, NULL, NULL, e);
    if (!rc && db->readonly) {
        int v;
        rc = user_version(db, &v, e);
        if (!rc && v < cad_db_schema_latest())
            rc = cad_fail(e, CAD_EDB,
                          "%s: schema version %d, this caddie needs %d: run 'caddie db migrate'",
                          path, v, cad_db_schema_latest());
    }
    if (rc) {
        cad_db_close(db);
        return rc;
    }
    *out = db;
    return CAD_OK;
}

void cad_db_close(cad_db *db) {
    if (!db) return;
    for (int i = 0; i < ST_COUNT_; i++) sqlite3_finalize(db->st[i]);
    for (int i = 0; i < db->n_ext; i++) sqlite3_finalize(db->ext[i].st);
    free(db->ext);
    if (db->h) sqlite3_close(db->h);
    free(db->path);
    free(db);
}

const char *cad_db_file(const cad_db *db) { return db->path; }

int cad_db_exec(cad_db *db, const char *sql, cad_err *e) {
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = cad_fail(e, CAD_EDB, "%s: %s", db->path, msg ? msg : sqlite3_errmsg(db->h));
        sqlite3_free(msg);
        return rc;
    }
    return CAD_OK;
}

void cad_db_now(char *buf, size_t cap) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03ldZ", base, ts.tv_nsec / 1000000L);
}

/* ---- statuses -------------------------------------------------------------------------- */

static const char *const status_names[CAD_RUN_NSTATUS] = {
    "queued", "running", "done", "failed", "cancelled", "interrupted", "stopped",
};

const char *cad_run_status_name(cad_run_status s) {
    return (unsigned)s < CAD_RUN_NSTATUS ? status_names[s] : "?";
}

int cad_run_status_parse(const char *name, cad_run_status *out) {
    for (int i = 0; i < CAD_RUN_NSTATUS; i++)
        if (name && strcmp(name, status_names[i]) == 0) {
            *out = (cad_run_status)i;
            return CAD_OK;
        }
    return CAD_ERR;
}

int cad_run_status_transition_ok(cad_run_status from, cad_run_status to) {
    switch (from) {
    /* queued -> failed: a prerequisite it waits for failed (cad_db_fail_queued) */
    case CAD_RUN_QUEUED: return to == CAD_RUN_RUNNING || to == CAD_RUN_CANCELLED || to == CAD_RUN_FAILED;
    case CAD_RUN_RUNNING:
        return to == CAD_RUN_DONE || to == CAD_RUN_FAILED || to == CAD_RUN_INTERRUPTED ||
               to == CAD_RUN_CANCELLED || to == CAD_RUN_STOPPED || to == CAD_RUN_QUEUED;
    case CAD_RUN_DONE:
    case CAD_RUN_FAILED:
    case CAD_RUN_CANCELLED:
    case CAD_RUN_INTERRUPTED: return to == CAD_RUN_QUEUED;
    default: return 0;
    }
}

/* ---- runs ------------------------------------------------------------------------------ */

void cad_run_free(cad_run *r) {
    if (!r) return;
    char **strs[] = {&r->sweep, &r->name, &r->engine, &r->config, &r->config_hash,
                     &r->group_hash, &r->devices_assigned, &r->launch, &r->host, &r->boot_id,
                     &r->queued_at, &r->started_at, &r->ended_at, &r->error, &r->git_commit,
                     &r->engine_version, &r->run_dir};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}

void cad_run_list_free(cad_run *runs, int n) {
    if (!runs) return;
    for (int i = 0; i < n; i++) cad_run_free(&runs[i]);
    free(runs);
}

static void run_from_row(sqlite3_stmt *s, cad_run *r) {
    memset(r, 0, sizeof *r);
    const unsigned char *id = sqlite3_column_text(s, 0);
    snprintf(r->run_id, sizeof r->run_id, "%s", id ? (const char *)id : "");
    r->sweep_id = col_i64(s, 1, -1);
    r->sweep = col_dup(s, 2);
    r->name = col_dup(s, 3);
    r->engine = col_dup(s, 4);
    r->config = col_dup(s, 5);
    r->config_hash = col_dup(s, 6);
    r->group_hash = col_dup(s, 7);
    r->has_seed = sqlite3_column_type(s, 8) != SQLITE_NULL;
    r->seed = col_i64(s, 8, -1);
    cad_run_status st = CAD_RUN_QUEUED;
    cad_run_status_parse((const char *)sqlite3_column_text(s, 9), &st);
    r->status = st;
    r->priority = (int)col_i64(s, 10, 0);
    r->devices_requested = (int)col_i64(s, 11, 1);
    r->devices_assigned = col_dup(s, 12);
    r->attempts = (int)col_i64(s, 13, 0);
    r->retries = (int)col_i64(s, 14, 0);
    r->timeout_s = sqlite3_column_type(s, 15) == SQLITE_NULL ? 0 : sqlite3_column_double(s, 15);
    r->launch = col_dup(s, 16);
    r->host = col_dup(s, 17);
    r->pid = col_i64(s, 18, -1);
    r->boot_id = col_dup(s, 19);
    r->proc_start_time = col_i64(s, 20, -1);
    r->queued_at = col_dup(s, 21);
    r->started_at = col_dup(s, 22);
    r->ended_at = col_dup(s, 23);
    r->has_exit_code = sqlite3_column_type(s, 24) != SQLITE_NULL;
    r->exit_code = (int)col_i64(s, 24, 0);
    r->error = col_dup(s, 25);
    r->git_commit = col_dup(s, 26);
    r->git_dirty = (int)col_i64(s, 27, -1);
    r->engine_version = col_dup(s, 28);
    r->run_dir = col_dup(s, 29);
}

int cad_db_get_run(cad_db *db, const char *run_id, cad_run *out, cad_err *e) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = stmt_get(db, ST_RUN_GET, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, run_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        run_from_row(s, out);
        sqlite3_reset(s);
        return CAD_OK;
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return cad_fail(e, CAD_ERR, "no run '%s'", run_id);
    return db_fail(db, e, "reading a run");
}

int cad_db_run_exists(cad_db *db, const char *run_id, cad_err *e) {
    sqlite3_stmt *s = stmt_get(db, ST_RUN_EXISTS, e);
    if (!s) return -1;
    bind_text(s, 1, run_id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) return 0;
    db_fail(db, e, "looking up a run");
    return -1;
}

int cad_db_list_runs(cad_db *db, unsigned status_mask, const char *sweep, cad_run **out,
                     int *n, cad_err *e) {
    *out = NULL;
    *n = 0;
    char statuses[128] = ",";
    for (int i = 0; i < CAD_RUN_NSTATUS; i++)
        if (status_mask & CAD_RUN_MASK(i)) {
            strcat(statuses, status_names[i]);
            strcat(statuses, ",");
        }
    sqlite3_stmt *s = stmt_get(db, ST_RUN_LIST, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, statuses);
    bind_text(s, 2, sweep);
    int cap = 0, rc;
    cad_run *v = NULL;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            cad_run *nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                sqlite3_reset(s);
                cad_run_list_free(v, *n);
                *n = 0;
                return cad_fail(e, CAD_ENOMEM, "out of memory listing runs");
            }
            v = nv;
        }
        run_from_row(s, &v[(*n)++]);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        cad_run_list_free(v, *n);
        *n = 0;
        return db_fail(db, e, "listing runs");
    }
    *out = v;
    return CAD_OK;
}

int cad_db_count_by_status(cad_db *db, const char *sweep, int counts[CAD_RUN_NSTATUS],
                           cad_err *e) {
    for (int i = 0; i < CAD_RUN_NSTATUS; i++) counts[i] = 0;
    sqlite3_stmt *s = stmt_get(db, ST_RUN_COUNT, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, sweep);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        cad_run_status st;
        if (cad_run_status_parse((const char *)sqlite3_column_text(s, 0), &st) == CAD_OK)
            counts[st] = sqlite3_column_int(s, 1);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return db_fail(db, e, "counting runs");
    return CAD_OK;
}

static int event_insert(cad_db *db, const char *run_id, const char *at, const char *from,
                        const char *to, const char *reason, cad_err *e) {
    sqlite3_stmt *s = stmt_get(db, ST_EVENT_INSERT, e);
    if (!s) return CAD_EDB;
    char now[32];
    if (!at) {
        cad_db_now(now, sizeof now);
        at = now;
    }
    bind_text(s, 1, run_id);
    bind_text(s, 2, at);
    bind_text(s, 3, from);
    bind_text(s, 4, to);
    bind_text(s, 5, reason);
    return step_done(db, s, e, "writing an event");
}

int cad_db_add_event(cad_db *db, const char *run_id, const char *at, const char *from_status,
                     const char *to_status, const char *reason, cad_err *e) {
    return event_insert(db, run_id, at, from_status, to_status, reason, e);
}

int cad_db_insert_run(cad_db *db, const cad_run_new *r, cad_err *e) {
    int owned, rc = tx_begin(db, &owned, e);
    if (rc) return rc;
    int ex = cad_db_run_exists(db, r->run_id, e);
    if (ex != 0) {
        rc = ex < 0 ? CAD_EDB : cad_fail(e, CAD_ERR, "run '%s' already exists", r->run_id);
        return tx_end(db, owned, rc, e);
    }
    char now[32];
    cad_db_now(now, sizeof now);
    sqlite3_stmt *s = stmt_get(db, ST_RUN_INSERT, e);
    if (!s) return tx_end(db, owned, CAD_EDB, e);
    bind_text(s, 1, r->run_id);
    if (r->sweep_id >= 0) sqlite3_bind_int64(s, 2, r->sweep_id);
    bind_text(s, 3, r->name ? r->name : "");
    bind_text(s, 4, r->engine ? r->engine : "caddie");
    bind_text(s, 5, r->config ? r->config : "{}");
    bind_text(s, 6, r->config_hash ? r->config_hash : "");
    bind_text(s, 7, r->group_hash ? r->group_hash : "");
    if (r->has_seed) sqlite3_bind_int64(s, 8, r->seed);
    bind_text(s, 9, cad_run_status_name(r->status));
    sqlite3_bind_int(s, 10, r->priority);
    sqlite3_bind_int(s, 11, r->devices_requested > 0 ? r->devices_requested : 1);
    sqlite3_bind_int(s, 12, r->retries);
    /* NULL for Inf too: run.json is built by json_object, and an Inf there makes the run dir
     * unreadable for 'caddie db rebuild' (t0412's bad-inf) */
    if (r->timeout_s > 0 && isfinite(r->timeout_s)) sqlite3_bind_double(s, 13, r->timeout_s);
    bind_text(s, 14, r->launch ? r->launch : "{}");
    bind_text(s, 15, r->engine_version ? r->engine_version : "");
    bind_text(s, 16, r->git_commit);
    if (r->git_dirty >= 0) sqlite3_bind_int(s, 17, r->git_dirty);
    bind_text(s, 18, r->run_dir ? r->run_dir : "");
    bind_text(s, 19, r->queued_at ? r->queued_at : now);
    rc = step_done(db, s, e, "inserting a run");
    if (!rc) {
        sqlite3_stmt *p = stmt_get(db, ST_PARAMS_FROM_CONFIG, e);
        if (!p) rc = CAD_EDB;
        else {
            bind_text(p, 1, r->run_id);
            bind_text(p, 2, r->config ? r->config : "{}");
            rc = step_done(db, p, e, "inserting params (is the config a JSON object?)");
        }
    }
    if (!rc)
        rc = event_insert(db, r->run_id, r->queued_at ? r->queued_at : now, NULL,
                          cad_run_status_name(r->status), r->reason, e);
    return tx_end(db, owned, rc, e);
}

int cad_db_delete_run(cad_db *db, const char *run_id, cad_err *e) {
    sqlite3_stmt *s = stmt_get(db, ST_RUN_DELETE, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, run_id);
    return step_done(db, s, e, "deleting a run");
}

int cad_db_find_done_by_hash(cad_db *db, const char *config_hash, int *n_done,
                             char *run_id_out, size_t cap, cad_err *e) {
    *n_done = 0;
    if (run_id_out && cap) run_id_out[0] = 0;
    sqlite3_stmt *s = stmt_get(db, ST_FIND_DONE_HASH, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, config_hash);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *n_done = sqlite3_column_int(s, 0);
        const unsigned char *id = sqlite3_column_text(s, 1);
        if (run_id_out && cap && id) snprintf(run_id_out, cap, "%s", (const char *)id);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) return db_fail(db, e, "looking up done runs");
    return CAD_OK;
}

int cad_db_find_pending_by_hash(cad_db *db, const char *config_hash, char *run_id_out,
                                size_t cap, cad_err *e) {
    if (cap) run_id_out[0] = 0;
    sqlite3_stmt *s = stmt_get(db, ST_FIND_PENDING_HASH, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, config_hash);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && cap)
        snprintf(run_id_out, cap, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_fail(db, e, "looking up pending runs");
    return CAD_OK;
}

/* ---- state changes ----------------------------------------------------------------------- */

static int status_get(cad_db *db, const char *run_id, cad_run_status *out, cad_err *e) {
    sqlite3_stmt *s = stmt_get(db, ST_STATUS_GET, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, run_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        cad_run_status st = CAD_RUN_QUEUED;
        cad_run_status_parse((const char *)sqlite3_column_text(s, 0), &st);
        *out = st;
        sqlite3_reset(s);
        return CAD_OK;
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return cad_fail(e, CAD_ERR, "no run '%s'", run_id);
    return db_fail(db, e, "reading a run's status");
}

/* The transition itself, inside a transaction the caller holds. expect_from < 0: any
 * allowed from-status. reset_attempts only matters for -> queued. */
static int transition(cad_db *db, const char *run_id, int expect_from, cad_run_status to,
                      int reset_attempts, const char *reason, cad_err *e) {
    cad_run_status from;
    int rc = status_get(db, run_id, &from, e);
    if (rc) return rc;
    if (expect_from >= 0 && (int)from != expect_from)
        return cad_fail(e, CAD_ERR, "run %s is %s, not %s", run_id, cad_run_status_name(from),
                        cad_run_status_name((cad_run_status)expect_from));
    if (!cad_run_status_transition_ok(from, to))
        return cad_fail(e, CAD_ERR, "run %s is %s, cannot become %s", run_id,
                        cad_run_status_name(from), cad_run_status_name(to));
    char now[32];
    cad_db_now(now, sizeof now);
    sqlite3_stmt *s;
    if (to == CAD_RUN_RUNNING) {
        if (!(s = stmt_get(db, ST_TO_RUNNING, e))) return CAD_EDB;
        bind_text(s, 1, run_id);
        bind_text(s, 2, now);
    } else if (to == CAD_RUN_QUEUED) {
        if (!(s = stmt_get(db, ST_TO_QUEUED, e))) return CAD_EDB;
        bind_text(s, 1, run_id);
        sqlite3_bind_int(s, 2, reset_attempts);
    } else {
        if (!(s = stmt_get(db, ST_TO_FINAL, e))) return CAD_EDB;
        bind_text(s, 1, run_id);
        bind_text(s, 2, cad_run_status_name(to));
        bind_text(s, 3, now);
    }
    if ((rc = step_done(db, s, e, "changing a run's status"))) return rc;
    return event_insert(db, run_id, now, cad_run_status_name(from), cad_run_status_name(to),
                        reason, e);
}

/* Rewrite run.json as part of a change, while this connection holds the write lock
 * (BEGIN IMMEDIATE, ours or the caller's): writers are serialized by SQLite, so the file
 * written last is the newest state and two processes (runner, `caddie cancel`) can never
 * leave an older snapshot on disk. If the commit then fails, run.json is one change ahead
 * of the DB until the next change rewrites it. */
static int write_json_in_tx(cad_db *db, const char *run_id, int rc, cad_err *e) {
    if (rc) return rc;
    cad_err we = {0};
    rc = cad_db_write_run_json(db, run_id, &we);
    if (rc == CAD_EIO && db->run_json_lenient) { /* the DB change stands; say what lags */
        snprintf(db->run_json_failure, sizeof db->run_json_failure, "%s", we.msg);
        return CAD_OK;
    }
    if (rc) *e = we;
    return rc;
}

void cad_db_set_run_json_lenient(cad_db *db, int on) { db->run_json_lenient = on != 0; }

int cad_db_take_run_json_failure(cad_db *db, char *buf, size_t cap) {
    if (!db->run_json_failure[0]) return 0;
    snprintf(buf, cap, "%s", db->run_json_failure);
    db->run_json_failure[0] = 0;
    return 1;
}

static int set_status(cad_db *db, const char *run_id, int expect_from, cad_run_status to,
                      const char *reason, cad_err *e) {
    int owned, rc = tx_begin(db, &owned, e);
    if (rc) return rc;
    rc = transition(db, run_id, expect_from, to, 0, reason, e);
    rc = write_json_in_tx(db, run_id, rc, e);
    return tx_end(db, owned, rc, e);
}

int cad_db_set_status(cad_db *db, const char *run_id, cad_run_status to, const char *reason,
                      cad_err *e) {
    return set_status(db, run_id, -1, to, reason, e);
}

int cad_db_set_status_from(cad_db *db, const char *run_id, cad_run_status from,
                           cad_run_status to, const char *reason, cad_err *e) {
    return set_status(db, run_id, (int)from, to, reason, e);
}

int cad_db_claim(cad_db *db, const char *run_id, const cad_run_claim *c, cad_err *e) {
    int owned, rc = tx_begin(db, &owned, e);
    if (rc) return rc;
    char now[32];
    cad_db_now(now, sizeof now);
    sqlite3_stmt *s = stmt_get(db, ST_CLAIM, e);
    if (!s) return tx_end(db, owned, CAD_EDB, e);
    bind_text(s, 1, run_id);
    bind_text(s, 2, c ? c->devices_assigned : NULL);
    bind_text(s, 3, c ? c->host : NULL);
    bind_text(s, 4, c ? c->boot_id : NULL);
    bind_text(s, 5, now);
    rc = step_done(db, s, e, "claiming a run");
    if (!rc && sqlite3_changes(db->h) != 1) {
        cad_run_status st;
        rc = status_get(db, run_id, &st, e);
        if (!rc)
            rc = cad_fail(e, CAD_ERR, "run %s is %s, cannot be started", run_id,
                          cad_run_status_name(st));
    }
    if (!rc) rc = event_insert(db, run_id, now, "queued", "running", "started", e);
    rc = write_json_in_tx(db, run_id, rc, e);
    return tx_end(db, owned, rc, e);
}

int cad_db_claim_next(cad_db *db, int free_devices, const cad_run_claim *c, int *claimed,
                      cad_run *out, cad_err *e) {
    *claimed = 0;
    memset(out, 0, sizeof *out);
    int owned, rc = tx_begin(db, &owned, e);
    if (rc) return rc;
    sqlite3_stmt *s = stmt_get(db, ST_CLAIM_NEXT_PICK, e);
    if (!s) return tx_end(db, owned, CAD_EDB, e);
    sqlite3_bind_int(s, 1, free_devices);
    char run_id[CAD_RUN_ID_MAX] = "";
    int st = sqlite3_step(s);
    if (st == SQLITE_ROW)
        snprintf(run_id, sizeof run_id, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_reset(s);
    if (st != SQLITE_ROW && st != SQLITE_DONE) rc = db_fail(db, e, "picking the next run");
    if (!rc && run_id[0]) {
        /* Nested: cad_db_claim sees our transaction and does not commit on its own. */
        rc = cad_db_claim(db, run_id, c, e);
        if (!rc) rc = cad_db_get_run(db, run_id, out, e);
        if (!rc) *claimed = 1;
    }
    rc = tx_end(db, owned, rc, e);
    if (rc && *claimed) {
        cad_run_free(out);
        *claimed = 0;
    }
    return rc;
}

int cad_db_set_process(cad_db *db, const char *run_id, int64_t pid, int64_t proc_start_time,
                       cad_err *e) {
    int owned, rc = tx_begin(db, &owned, e);
    if (rc) return rc;
    sqlite3_stmt *s = stmt_get(db, ST_SET_PROCESS, e);
    if (!s) return tx_end(db, owned, CAD_EDB, e);
    bind_text(s, 1, run_id);
    sqlite3_bind_int64(s, 2, pid);
    if (proc_start_time >= 0) sqlite3_bind_int64(s, 3, proc_start_time);
    rc = step_done(db, s, e, "recording a run's process");
    rc = write_json_in_tx(db, run_id, rc, e);
    return tx_end(db, owned, rc, e);
}

int cad_db_finish(cad_db *db, const char *run_id, cad_run_status to, int has_exit_code,
                  int exit_code, const char *error, const char *reason, cad_err *e) {
    int owned, rc = tx_begin(db, &owned, e);
    if (rc) return rc;
    rc = transition(db, run_id, CAD_RUN_RUNNING, to, 0, reason, e);
    if (!rc) {
        sqlite3_stmt *s = stmt_get(db, ST_SET_EXIT, e);
        if (!s) rc = CAD_EDB;
        else {
            bind_text(s, 1, run_id);
            if (has_exit_code) sqlite3_bind_int(s, 2, exit_code);
            bind_text(s, 3, error);
            rc = step_done(db, s, e, "recording a run's exit");
        }
    }
    rc = write_json_in_tx(db, run_id, rc, e);
    return tx_end(db, owned, rc, e);
}

int cad_db_fail_queued(cad_db *db, const char *run_id, const char *error, cad_err *e) {
    int owned, rc = tx_begin(db, &owned, e);
    if (rc) return rc;
    rc = transition(db, run_id, CAD_RUN_QUEUED, CAD_RUN_FAILED, 0, error, e);
    if (!rc) {
        sqlite3_stmt *s = stmt_get(db, ST_SET_EXIT, e);
        if (!s) rc = CAD_EDB;
        else {
            bind_text(s, 1, run_id);
            bind_text(s, 3, error);
            rc = step_done(db, s, e, "recording why a run failed");
        }
    }
    rc = write_json_in_tx(db, run_id, rc, e);
    return tx_end(db, owned, rc, e);
}

int cad_db_requeue(cad_db *db, const char *run_id, int reset_attempts, const char *reason,
                   cad_err *e) {
    int owned, rc = tx_begin(db, &owned, e);
    if (rc) return rc;
    rc = transition(db, run_id, -1, CAD_RUN_QUEUED, reset_attempts, reason, e);
    rc = write_json_in_tx(db, run_id, rc, e);
    return tx_end(db, owned, rc, e);
}

/* cancel/retry over a run id or a sweep name. */
static int apply_to_target(cad_db *db, const char *target, int cancel, const char *reason,
                           int *n_changed, cad_err *e) {
    *n_changed = 0;
    int ex = cad_db_run_exists(db, target, e);
    if (ex < 0) return CAD_EDB;
    char **ids = NULL;
    int n = 0, cap = 0, rc = CAD_OK;
    if (ex) {
        ids = malloc(sizeof *ids);
        if (!ids) return cad_fail(e, CAD_ENOMEM, "out of memory");
        ids[n++] = strdup(target);
    } else {
        int64_t sid;
        if (cad_db_sweep_id(db, target, &sid, NULL) != CAD_OK)
            return cad_fail(e, CAD_ERR, "no run or sweep '%s'", target);
        sqlite3_stmt *s = stmt_get(db, ST_SWEEP_RUNS, e);
        if (!s) return CAD_EDB;
        bind_text(s, 1, target);
        int st;
        while ((st = sqlite3_step(s)) == SQLITE_ROW) {
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                char **nv = realloc(ids, (size_t)cap * sizeof *ids);
                if (!nv) {
                    rc = cad_fail(e, CAD_ENOMEM, "out of memory");
                    break;
                }
                ids = nv;
            }
            ids[n++] = strdup((const char *)sqlite3_column_text(s, 0));
        }
        sqlite3_reset(s);
        if (!rc && st != SQLITE_DONE) rc = db_fail(db, e, "listing a sweep's runs");
    }
    for (int i = 0; i < n && !rc; i++) {
        cad_run_status st;
        if ((rc = status_get(db, ids[i], &st, e))) break;
        int act = cancel ? (st == CAD_RUN_QUEUED || st == CAD_RUN_RUNNING)
                         : (st == CAD_RUN_FAILED || st == CAD_RUN_INTERRUPTED ||
                            st == CAD_RUN_CANCELLED);
        if (!act) continue;
        rc = cancel ? cad_db_set_status(db, ids[i], CAD_RUN_CANCELLED, reason, e)
                    : cad_db_requeue(db, ids[i], 1, reason, e);
        if (!rc) (*n_changed)++;
    }
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
    return rc;
}

int cad_db_cancel(cad_db *db, const char *target, const char *reason, int *n_changed,
                  cad_err *e) {
    return apply_to_target(db, target, 1, reason ? reason : "cancelled by user", n_changed, e);
}

int cad_db_retry(cad_db *db, const char *target, const char *reason, int *n_changed,
                 cad_err *e) {
    return apply_to_target(db, target, 0, reason ? reason : "retried by user", n_changed, e);
}

int cad_db_set_error(cad_db *db, const char *run_id, const char *error, cad_err *e) {
    int owned, rc = tx_begin(db, &owned, e);
    if (rc) return rc;
    sqlite3_stmt *s = stmt_get(db, ST_SET_ERROR, e);
    if (!s) return tx_end(db, owned, CAD_EDB, e);
    bind_text(s, 1, run_id);
    bind_text(s, 2, error);
    rc = write_json_in_tx(db, run_id, step_done(db, s, e, "recording a run's error"), e);
    return tx_end(db, owned, rc, e);
}

int cad_db_set_provenance(cad_db *db, const char *run_id, const char *engine_version,
                          const char *git_commit, int git_dirty, cad_err *e) {
    sqlite3_stmt *s = stmt_get(db, ST_SET_PROVENANCE, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, run_id);
    bind_text(s, 2, engine_version ? engine_version : "");
    bind_text(s, 3, git_commit ? git_commit : "");
    sqlite3_bind_int(s, 4, git_dirty);
    return step_done(db, s, e, "recording provenance");
}

/* ---- launch recipe ----------------------------------------------------------------------- */

void cad_launch_free(cad_launch *l) {
    if (!l) return;
    for (int i = 0; i < l->argc; i++) free(l->argv[i]);
    for (int i = 0; i < l->nenv; i++) free(l->env[i]);
    free(l->argv);
    free(l->env);
    free(l->cwd);
    memset(l, 0, sizeof *l);
}

/* Collect the strings of a JSON array (path) or "key=value" of an object. */
static int json_strings(cad_db *db, const char *json, const char *path, int object,
                        char ***out, int *n, cad_err *e) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = stmt_get(db, object ? ST_JSON_OBJECT_TEXT : ST_JSON_ARRAY_TEXT, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, json);
    bind_text(s, 2, path);
    int cap = 0, rc;
    char **v = NULL;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n + 1 >= cap) {
            cap = cap ? 2 * cap : 8;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                sqlite3_reset(s);
                for (int i = 0; i < *n; i++) free(v[i]);
                free(v);
                *n = 0;
                return cad_fail(e, CAD_ENOMEM, "out of memory");
            }
            v = nv;
        }
        char *str;
        if (object) {
            const char *k = (const char *)sqlite3_column_text(s, 0);
            const char *val = (const char *)sqlite3_column_text(s, 1);
            size_t len = strlen(k) + (val ? strlen(val) : 0) + 2;
            str = malloc(len);
            if (str) snprintf(str, len, "%s=%s", k, val ? val : "");
        } else {
            const char *val = (const char *)sqlite3_column_text(s, 0);
            str = strdup(val ? val : "");
        }
        v[(*n)++] = str;
    }
    sqlite3_reset(s);
    if (!v) {
        v = calloc(1, sizeof *v);
        if (!v) return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    v[*n] = NULL;
    *out = v;
    if (rc != SQLITE_DONE) return db_fail(db, e, "decoding a launch recipe");
    return CAD_OK;
}

int cad_db_get_launch(cad_db *db, const char *run_id, cad_launch *out, cad_err *e) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = stmt_get(db, ST_LAUNCH_GET, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, run_id);
    int st = sqlite3_step(s);
    char *launch = st == SQLITE_ROW ? col_dup(s, 0) : NULL;
    sqlite3_reset(s);
    if (st == SQLITE_DONE) return cad_fail(e, CAD_ERR, "no run '%s'", run_id);
    if (st != SQLITE_ROW) return db_fail(db, e, "reading a launch recipe");
    int rc = json_strings(db, launch ? launch : "{}", "$.argv", 0, &out->argv, &out->argc, e);
    if (!rc) rc = json_strings(db, launch ? launch : "{}", "$.env", 1, &out->env, &out->nenv, e);
    if (!rc) {
        sqlite3_stmt *c = stmt_get(db, ST_JSON_EXTRACT_TEXT, e);
        if (!c) rc = CAD_EDB;
        else {
            bind_text(c, 1, launch ? launch : "{}");
            bind_text(c, 2, "$.cwd");
            int cst = sqlite3_step(c);
            if (cst == SQLITE_ROW) out->cwd = col_dup(c, 0);
            else if (cst != SQLITE_DONE) rc = db_fail(db, e, "reading a launch recipe's cwd");
            sqlite3_reset(c);
        }
    }
    if (!rc && out->argc == 0)
        rc = cad_fail(e, CAD_ERR, "run %s has no command to launch (launch: %s)", run_id,
                      launch ? launch : "NULL");
    free(launch);
    if (rc) cad_launch_free(out);
    return rc;
}

/* ---- run.json ------------------------------------------------------------------------------ */

int cad_db_write_run_json(cad_db *db, const char *run_id, cad_err *e) {
    sqlite3_stmt *s = stmt_get(db, ST_RUN_JSON, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, run_id);
    int st = sqlite3_step(s);
    if (st != SQLITE_ROW) {
        sqlite3_reset(s);
        if (st == SQLITE_DONE) return cad_fail(e, CAD_ERR, "no run '%s'", run_id);
        return db_fail(db, e, "building run.json");
    }
    char *dir = col_dup(s, 0);
    char *json = col_dup(s, 1);
    sqlite3_reset(s);
    int rc = CAD_OK;
    struct stat sb;
    if (dir && *dir && json && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        size_t len = strlen(dir) + 32;
        char *path = malloc(len), *tmp = malloc(len);
        if (!path || !tmp) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
        else {
            snprintf(path, len, "%s/run.json", dir);
            /* per-process temp name: a crashed writer's leftover never collides */
            snprintf(tmp, len, "%s/run.json.%ld.tmp", dir, (long)getpid());
            FILE *f = fopen(tmp, "w");
            if (!f) rc = cad_fail(e, CAD_EIO, "%s: cannot write: %s", tmp, strerror(errno));
            else {
                int bad = fputs(json, f) == EOF || fputc('\n', f) == EOF || fflush(f) != 0;
                int err = errno;
                if (fclose(f) != 0 && !bad) bad = 1, err = errno;
                if (bad) {
                    /* the old run.json stays whole; a partial temp file goes */
                    rc = cad_fail(e, CAD_EIO, "%s: write failed: %s", tmp, strerror(err));
                    unlink(tmp);
                } else if (rename(tmp, path) != 0) {
                    rc = cad_fail(e, CAD_EIO, "%s: rename failed: %s", path, strerror(errno));
                    unlink(tmp);
                }
            }
        }
        free(path);
        free(tmp);
    }
    free(dir);
    free(json);
    return rc;
}

int cad_db_mean_duration(cad_db *db, const char *sweep, const char *engine, int devices,
                         double *mean_s, int *n, cad_err *e) {
    *n = 0;
    sqlite3_stmt *s = stmt_get(db, ST_MEAN_DURATION, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, sweep);
    bind_text(s, 2, engine);
    sqlite3_bind_int(s, 3, devices);
    int st = sqlite3_step(s);
    if (st == SQLITE_ROW) {
        *n = sqlite3_column_int(s, 1);
        if (*n > 0) *mean_s = sqlite3_column_double(s, 0);
    }
    sqlite3_reset(s);
    if (st != SQLITE_ROW) return db_fail(db, e, "averaging run durations");
    return CAD_OK;
}

/* ---- sweeps ------------------------------------------------------------------------------ */

int cad_db_sweep_upsert(cad_db *db, const char *name, const char *description,
                        const char *spec, const char *spec_hash, int64_t *id, cad_err *e) {
    sqlite3_stmt *s = stmt_get(db, ST_SWEEP_UPSERT, e);
    if (!s) return CAD_EDB;
    char now[32];
    cad_db_now(now, sizeof now);
    bind_text(s, 1, name);
    bind_text(s, 2, description ? description : "");
    bind_text(s, 3, spec ? spec : "");
    bind_text(s, 4, spec_hash ? spec_hash : "");
    bind_text(s, 5, now);
    int st = sqlite3_step(s);
    if (st == SQLITE_ROW && id) *id = sqlite3_column_int64(s, 0);
    int rc = st == SQLITE_ROW ? CAD_OK : db_fail(db, e, "saving a sweep");
    sqlite3_reset(s);
    return rc;
}

int cad_db_sweep_id(cad_db *db, const char *name, int64_t *id, cad_err *e) {
    sqlite3_stmt *s = stmt_get(db, ST_SWEEP_ID, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, name);
    int st = sqlite3_step(s);
    if (st == SQLITE_ROW) *id = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (st == SQLITE_ROW) return CAD_OK;
    if (st == SQLITE_DONE) return cad_fail(e, CAD_ERR, "no sweep '%s'", name);
    return db_fail(db, e, "looking up a sweep");
}

/* ---- metrics, results, artifacts ------------------------------------------------------- */

/* Rows go in with a plain INSERT, and only a row whose (run_id, name, step) is already there
 * (a log that printed a step twice, a re-read tail) is retried with INSERT OR REPLACE, so the
 * last of equal rows still wins: with foreign keys on, OR REPLACE made every row ~25% slower
 * (measured with Python's sqlite3 on the import bench's rows). */
static void bind_metric(sqlite3_stmt *s, const cad_metric *m) {
    sqlite3_bind_text(s, 2, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, m->step);
    if (isnan(m->value)) sqlite3_bind_null(s, 4);
    else sqlite3_bind_double(s, 4, m->value);
    if (m->wall_ms < 0 || isnan(m->wall_ms)) sqlite3_bind_null(s, 5);
    else sqlite3_bind_double(s, 5, m->wall_ms);
}

int cad_db_insert_metrics(cad_db *db, const char *run_id, const cad_metric *rows, size_t n,
                          cad_err *e) {
    if (n == 0) return CAD_OK;
    int owned, rc = tx_begin(db, &owned, e);
    if (rc) return rc;
    sqlite3_stmt *s = stmt_get(db, ST_METRIC_INSERT, e);
    if (!s) return tx_end(db, owned, CAD_EDB, e);
    /* bindings survive sqlite3_reset: run_id is bound once for the whole batch, and the text
     * bindings are SQLITE_STATIC (read in place, no copy per row) */
    sqlite3_bind_text(s, 1, run_id, -1, SQLITE_STATIC);
    for (size_t i = 0; i < n && !rc; i++) {
        const cad_metric *m = &rows[i];
        bind_metric(s, m);
        int st = sqlite3_step(s);
        sqlite3_reset(s);
        /* extended result codes are on for this connection: step returns the precise one */
        if (st == SQLITE_CONSTRAINT_PRIMARYKEY || st == SQLITE_CONSTRAINT_UNIQUE) {
            sqlite3_stmt *r = stmt_get(db, ST_METRIC_REPLACE, e);
            if (!r) {
                rc = CAD_EDB;
                break;
            }
            sqlite3_bind_text(r, 1, run_id, -1, SQLITE_STATIC);
            bind_metric(r, m);
            st = sqlite3_step(r);
            sqlite3_reset(r);
            sqlite3_clear_bindings(r);
        }
        if (st != SQLITE_DONE)
            rc = cad_fail(e, CAD_EDB, "%s: inserting metric %s step %ld of run %s: %s", db->path,
                          m->name, m->step, run_id, sqlite3_errmsg(db->h));
    }
    sqlite3_clear_bindings(s);
    return tx_end(db, owned, rc, e);
}

void cad_result_init(cad_result *r) {
    memset(r, 0, sizeof *r);
    r->val_loss = r->val_bpb = r->prequant_val_loss = r->prequant_val_bpb = NAN;
    r->train_ms = r->eval_ms = NAN;
    r->artifact_bytes = r->model_bytes = r->code_bytes = r->steps = r->tokens = -1;
    r->git_dirty = -1;
}

/* non-finite → NULL: a result Inf would be ranked and averaged as a number */
static void bind_dbl(sqlite3_stmt *s, int i, double v) {
    if (!isfinite(v)) sqlite3_bind_null(s, i);
    else sqlite3_bind_double(s, i, v);
}

static void bind_i64(sqlite3_stmt *s, int i, int64_t v) {
    if (v < 0) sqlite3_bind_null(s, i);
    else sqlite3_bind_int64(s, i, v);
}

int cad_db_set_result(cad_db *db, const char *run_id, const cad_result *r, cad_err *e) {
    int owned, rc = tx_begin(db, &owned, e);
    if (rc) return rc;
    sqlite3_stmt *s = stmt_get(db, ST_RESULT_SET, e);
    if (!s) return tx_end(db, owned, CAD_EDB, e);
    bind_text(s, 1, run_id);
    bind_dbl(s, 2, r->val_loss);
    bind_dbl(s, 3, r->val_bpb);
    bind_dbl(s, 4, r->prequant_val_loss);
    bind_dbl(s, 5, r->prequant_val_bpb);
    bind_i64(s, 6, r->artifact_bytes);
    bind_i64(s, 7, r->model_bytes);
    bind_i64(s, 8, r->code_bytes);
    bind_dbl(s, 9, r->train_ms);
    bind_dbl(s, 10, r->eval_ms);
    bind_i64(s, 11, r->steps);
    bind_i64(s, 12, r->tokens);
    sqlite3_bind_int(s, 13, r->partial ? 1 : 0);
    rc = step_done(db, s, e, "saving a result");
    if (!rc) rc = cad_db_set_provenance(db, run_id, r->engine_version, r->git_commit, r->git_dirty, e);
    return tx_end(db, owned, rc, e);
}

int cad_db_get_result(cad_db *db, const char *run_id, cad_result *out, int *found, cad_err *e) {
    cad_result_init(out);
    *found = 0;
    sqlite3_stmt *s = stmt_get(db, ST_RESULT_GET, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, run_id);
    int st = sqlite3_step(s);
    if (st == SQLITE_ROW) {
        *found = 1;
        out->val_loss = col_dbl(s, 0);
        out->val_bpb = col_dbl(s, 1);
        out->prequant_val_loss = col_dbl(s, 2);
        out->prequant_val_bpb = col_dbl(s, 3);
        out->artifact_bytes = col_i64(s, 4, -1);
        out->model_bytes = col_i64(s, 5, -1);
        out->code_bytes = col_i64(s, 6, -1);
        out->train_ms = col_dbl(s, 7);
        out->eval_ms = col_dbl(s, 8);
        out->steps = col_i64(s, 9, -1);
        out->tokens = col_i64(s, 10, -1);
        out->partial = (int)col_i64(s, 11, 0);
    }
    sqlite3_reset(s);
    if (st != SQLITE_ROW && st != SQLITE_DONE) return db_fail(db, e, "reading a result");
    return CAD_OK;
}

int cad_db_add_artifact(cad_db *db, const char *run_id, const char *kind, const char *path,
                        int64_t bytes, const char *sha256, cad_err *e) {
    sqlite3_stmt *s = stmt_get(db, ST_ARTIFACT_ADD, e);
    if (!s) return CAD_EDB;
    bind_text(s, 1, run_id);
    bind_text(s, 2, kind);
    bind_text(s, 3, path);
    bind_i64(s, 4, bytes);
    bind_text(s, 5, sha256);
    return step_done(db, s, e, "recording an artifact");
}

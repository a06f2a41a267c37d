/*
 * db.h — the caddie results database (SQLite): open + migrate, the run queue and its state
 * machine, and the batched inserts every ingestion path uses.
 *
 * One file (--db FILE > $CADDIE_DB > ./caddie.db), opened in WAL mode with foreign keys and
 * a busy timeout, migrated on open from the SQL in schema/ (compiled into the binary), so
 * `sqlite3 caddie.db` can read at any time while the runner writes. Every statement is a
 * prepared statement with bound values; no value is ever spliced into SQL text.
 *
 * Who calls what:
 *   sweep add    cad_db_sweep_upsert, cad_db_insert_run (inside cad_db_begin/commit)
 *   runner       cad_db_list_runs(QUEUED|RUNNING), cad_db_claim, cad_db_set_process,
 *                cad_db_finish, cad_db_set_status, cad_db_requeue, the checks of
 *                db/runs.h; live curves through db/ingest.h (cad_ingest_run_dir)
 *   log import   db/import.h (cad_db_insert_run, then db/ingest.h)
 *   status/ls    cad_db_get_run, cad_db_count_by_status, the listings of db/runs.h
 *   reports      the views only (run_summary, leaderboard, sweep_groups, curves), opened
 *                read-only with cad_db_open(path, CAD_DB_READONLY, ...)
 *
 * State machine of runs.status (cad_db_set_status refuses anything else):
 *   queued      -> running | cancelled | failed (a prerequisite failed: cad_db_fail_queued)
 *   running     -> done | failed | interrupted | cancelled | stopped | queued (runner lost
 *                  the slot)
 *   stopped     final: the sweep's stop: rule ended it (docs/sweeps.md#early-stopping); never
 *               requeued, and dedup counts its config as done
 *   failed | interrupted | cancelled | done -> queued   (retry / requeue)
 * Every change writes one events row and, when the run dir exists, rewrites
 * <run_dir>/run.json (the run's row + its events) so `caddie db rebuild` loses nothing.
 *
 * Errors: CAD_EDB with "<db file>: <what>: <SQLite's message>"; when SQLite finds the file
 * damaged (SQLITE_CORRUPT, SQLITE_NOTADB) the message says so and what to do: the run dirs
 * are the truth, so move the file aside and `caddie db rebuild`.
 *
 * Not here: reading run directories (db/ingest.h), sweep expansion (sweep/plan.h),
 * scheduling policy (runner/sched.h), process handling (runner/proc.h).
 */
#ifndef CADDIE_DB_H
#define CADDIE_DB_H

#include "engine/config.h"
#include "engine/status.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cad_db cad_db;

/* ---- opening ------------------------------------------------------------------------ */

enum {
    CAD_DB_READONLY = 1,   /* open read-only; fails if the schema is older than this binary */
    CAD_DB_NO_MIGRATE = 2, /* open read-write but do not migrate (for `db migrate` reporting) */
    CAD_DB_MUST_EXIST = 4, /* a missing file is an error (CAD_EIO, "no database ..."), not a new DB:
                            * for the commands that only look at what was queued */
};

/* The DB path to use: opt_db (from --db) if non-NULL and non-empty, else $CADDIE_DB if set
 * and non-empty, else "caddie.db". Never NULL; the returned pointer is opt_db, getenv's
 * or a static string. */
const char *cad_db_path(const char *opt_db);

/* Open (creating the file when needed) and migrate to the newest schema. Sets WAL,
 * foreign_keys=ON, synchronous=NORMAL, busy_timeout=10 s. *out is freed by cad_db_close. */
int cad_db_open(const char *path, int flags, cad_db **out, cad_err *e);
void cad_db_close(cad_db *db);

/* Apply pending migrations; from and to (may be NULL) receive user_version before/after
 * what THIS call applied (from == to when another process or an earlier call did it).
 * Each migration runs in its own BEGIN IMMEDIATE transaction that re-reads the version, so
 * concurrent openers apply each migration exactly once; running it again is a no-op. */
int cad_db_migrate(cad_db *db, int *from, int *to, cad_err *e);
/* Newest migration compiled into this binary, and the DB's PRAGMA user_version. */
int cad_db_schema_latest(void);
int cad_db_schema_version(cad_db *db);

/* The path the DB was opened with. */
const char *cad_db_file(const cad_db *db);

/* Run SQL text without parameters (several statements allowed). Only for fixed SQL written
 * in the source, never for text containing user values. */
int cad_db_exec(cad_db *db, const char *sql, cad_err *e);

/* Transactions (BEGIN IMMEDIATE, so a writer waits at the start instead of failing later).
 * Not nested: cad_db_begin inside an open transaction is an error. */
int cad_db_begin(cad_db *db, cad_err *e);
int cad_db_commit(cad_db *db, cad_err *e);
void cad_db_rollback(cad_db *db);
int cad_db_in_transaction(cad_db *db);

/* Current time as ISO-8601 UTC with milliseconds ("2026-11-22T08:01:02.345Z"), the format
 * of every timestamp column. buf needs CAD_DB_TIME_MAX bytes. */
#define CAD_DB_TIME_MAX 32
void cad_db_now(char *buf, size_t cap);

/* ---- runs --------------------------------------------------------------------------- */

typedef enum {
    CAD_RUN_QUEUED = 0,
    CAD_RUN_RUNNING,
    CAD_RUN_DONE,
    CAD_RUN_FAILED,
    CAD_RUN_CANCELLED,
    CAD_RUN_INTERRUPTED,
    CAD_RUN_STOPPED,     /* ended early by the sweep's stop: rule; final (never retried) */
    CAD_RUN_NSTATUS
} cad_run_status;

/* Bit masks for cad_db_list_runs: CAD_RUN_MASK(CAD_RUN_QUEUED) | ... */
#define CAD_RUN_MASK(s) (1u << (s))
#define CAD_RUN_MASK_ALL ((1u << CAD_RUN_NSTATUS) - 1u)

const char *cad_run_status_name(cad_run_status s);                /* "queued", ... */
int cad_run_status_parse(const char *name, cad_run_status *out);  /* CAD_OK or CAD_ERR */
/* 1 when from -> to is allowed by the state machine above. */
int cad_run_status_transition_ok(cad_run_status from, cad_run_status to);

/* One runs row (plus its sweep's name). Strings are malloc'd (NULL when the column is
 * NULL); release with cad_run_free. Integers are -1 when NULL (seed: has_seed). */
typedef struct cad_run {
    char run_id[CAD_RUN_ID_MAX];
    int64_t sweep_id;        /* -1: not part of a sweep */
    char *sweep;             /* sweep name or NULL */
    char *name;
    char *engine;            /* "caddie" | "command" | "log" */
    char *config;            /* canonical JSON */
    char *config_hash, *group_hash;
    int has_seed;
    int64_t seed;
    cad_run_status status;
    int priority;
    int devices_requested;
    char *devices_assigned;  /* "0,1" or NULL */
    int attempts, retries;
    double timeout_s;        /* <= 0: none */
    char *launch;            /* JSON {"argv":[..],"env":{..},"cwd":".."}; see cad_db_get_launch */
    char *host;
    int64_t pid;
    char *boot_id;
    int64_t proc_start_time;
    char *queued_at, *started_at, *ended_at;
    int has_exit_code;
    int exit_code;
    char *error;
    char *git_commit;
    int git_dirty;           /* -1 unknown */
    char *engine_version;
    char *run_dir;
} cad_run;

void cad_run_free(cad_run *r);
/* Free an array from cad_db_list_runs (each element and the array). */
void cad_run_list_free(cad_run *runs, int n);

/* Read one run; CAD_ERR with "no run 'X'" when absent. */
int cad_db_get_run(cad_db *db, const char *run_id, cad_run *out, cad_err *e);
/* 1 if the run exists, 0 if not, -1 on a DB error. */
int cad_db_run_exists(cad_db *db, const char *run_id, cad_err *e);

/* Runs whose status is in status_mask; sweep (NULL = any) restricts to one sweep name.
 * Order: priority DESC, queued_at, run_id — i.e. the order the runner starts queued runs. */
int cad_db_list_runs(cad_db *db, unsigned status_mask, const char *sweep, cad_run **out,
                     int *n, cad_err *e);

/* Counts per status (index = cad_run_status), for status lines. sweep may be NULL. */
int cad_db_count_by_status(cad_db *db, const char *sweep, int counts[CAD_RUN_NSTATUS],
                           cad_err *e);

/* What a new run needs (sweep add, import). Strings are borrowed. NULL engine_version,
 * git_commit, launch, queued_at: defaults ("", NULL, "{}", now). */
typedef struct cad_run_new {
    const char *run_id;
    int64_t sweep_id;        /* -1: none */
    const char *name;
    const char *engine;
    const char *config;      /* canonical JSON object: its keys become params rows */
    const char *config_hash;
    const char *group_hash;
    int has_seed;
    int64_t seed;
    cad_run_status status;   /* usually CAD_RUN_QUEUED; imports insert DONE/FAILED */
    int priority;
    int devices_requested;
    int retries;
    double timeout_s;        /* <= 0: none */
    const char *launch;
    const char *engine_version;
    const char *git_commit;
    int git_dirty;           /* -1 unknown */
    const char *run_dir;
    const char *queued_at;
    const char *reason;      /* reason of the first event ("queued by sweep add x.yaml") */
} cad_run_new;

/* Insert a run, its params (from config) and its first event. CAD_ERR "run 'X' already
 * exists" on a duplicate run_id. Does not write run.json (sweep add writes the run dir). */
int cad_db_insert_run(cad_db *db, const cad_run_new *r, cad_err *e);

/* Delete a run and everything that references it (metrics, results, ...). */
int cad_db_delete_run(cad_db *db, const char *run_id, cad_err *e);

/* Done or stopped runs with this config hash (dedup: an early-stopped config is not run
 * again unless forced): *n_done receives the count, and when run_id_out is non-NULL the
 * newest matching run id (or "" when none). */
int cad_db_find_done_by_hash(cad_db *db, const char *config_hash, int *n_done,
                             char *run_id_out, size_t cap, cad_err *e);
/* Any run (any status) with this config hash that is queued or running: its id, or "". */
int cad_db_find_pending_by_hash(cad_db *db, const char *config_hash, char *run_id_out,
                                size_t cap, cad_err *e);

/* ---- state changes (each one transaction unless called inside cad_db_begin) ---------- */

/* Move a run to status `to`, checking that the current status allows it (state machine
 * above): CAD_ERR "run X is running, cannot become queued" otherwise. Writes an events
 * row with reason, maintains started_at/ended_at (to running: started_at=now,
 * ended_at=NULL; to a final status: ended_at=now; to queued: the process columns
 * cleared, queued_at kept so a requeued run keeps its place), then rewrites
 * <run_dir>/run.json. */
int cad_db_set_status(cad_db *db, const char *run_id, cad_run_status to, const char *reason,
                      cad_err *e);
/* Same, but only if the current status is `from` (compare-and-set). */
int cad_db_set_status_from(cad_db *db, const char *run_id, cad_run_status from,
                           cad_run_status to, const char *reason, cad_err *e);

/* Where the runner starts a run. */
typedef struct cad_run_claim {
    const char *devices_assigned; /* "0,1,2" (GPU ids or CPU slot numbers) */
    const char *host;             /* gethostname */
    const char *boot_id;          /* /proc/sys/kernel/random/boot_id */
} cad_run_claim;

/* queued -> running: attempts++, records devices/host/boot_id, started_at=now. Fails with
 * CAD_ERR exactly when the run is no longer queued (cancelled meanwhile) or gone, so the
 * runner must claim before it spawns; any other code (CAD_EIO: run.json could not be
 * written, a full disk; CAD_EDB) is a real failure, not "cancelled". */
int cad_db_claim(cad_db *db, const char *run_id, const cad_run_claim *c, cad_err *e);

/* Convenience for simple runners: claim the first queued run (priority DESC, queued_at)
 * needing at most free_devices devices. *claimed = 0 when none fits; else the run is
 * read into *out (caller frees with cad_run_free). */
int cad_db_claim_next(cad_db *db, int free_devices, const cad_run_claim *c, int *claimed,
                      cad_run *out, cad_err *e);

/* After spawning: the child's pid and its /proc start time (for stale-run detection). */
int cad_db_set_process(cad_db *db, const char *run_id, int64_t pid, int64_t proc_start_time,
                       cad_err *e);

/* running -> done | failed | interrupted | cancelled, with exit code (has_exit_code=0:
 * none, e.g. killed by a signal) and error text (NULL for none), in one transaction. */
int cad_db_finish(cad_db *db, const char *run_id, cad_run_status to, int has_exit_code,
                  int exit_code, const char *error, const char *reason, cad_err *e);

/* queued -> failed without ever starting: a run whose prerequisite (db/deps.h) failed, with
 * error as its runs.error and its event's reason. */
int cad_db_fail_queued(cad_db *db, const char *run_id, const char *error, cad_err *e);

/* -> queued (from failed/interrupted/cancelled/done/running): a retry or a requeue after
 * a crash. reset_attempts=1 (user `retry`) also zeroes attempts so retries start over. */
int cad_db_requeue(cad_db *db, const char *run_id, int reset_attempts, const char *reason,
                   cad_err *e);

/* cancel/retry of one run or of every run of a sweep (`caddie cancel|retry RUN|SWEEP`).
 * target is tried as a run id first, then as a sweep name. Cancel touches queued and
 * running runs (running ones are only marked; the runner kills their process group when
 * it sees the status); retry requeues failed/interrupted/cancelled runs. *n_changed gets
 * how many runs changed; CAD_ERR "no run or sweep 'X'" when target matches nothing. */
int cad_db_cancel(cad_db *db, const char *target, const char *reason, int *n_changed,
                  cad_err *e);
int cad_db_retry(cad_db *db, const char *target, const char *reason, int *n_changed,
                 cad_err *e);

/* Runner-owned columns written outside status changes. */
int cad_db_set_error(cad_db *db, const char *run_id, const char *error, cad_err *e);
int cad_db_set_provenance(cad_db *db, const char *run_id, const char *engine_version,
                          const char *git_commit, int git_dirty, cad_err *e);

/* The launch recipe of a run, decoded from runs.launch (JSON1). argv[0]=="caddie" means
 * "this caddie binary" (/proc/self/exe). env holds "NAME=value" strings to ADD to the
 * runner's environment. Values are literal: never pass them through a shell. */
typedef struct cad_launch {
    int argc;
    char **argv;   /* argc entries + NULL */
    int nenv;
    char **env;    /* nenv "NAME=value" entries + NULL */
    char *cwd;     /* working directory (absolute), NULL = the runner's */
} cad_launch;
int cad_db_get_launch(cad_db *db, const char *run_id, cad_launch *out, cad_err *e);
void cad_launch_free(cad_launch *l);

/* What a status change does when <run_dir>/run.json cannot be rewritten (CAD_EIO: a full
 * disk, a read-only run dir). Strict (the default): the change fails naming the file and is
 * rolled back. Lenient (the runner, so that no run stays `running` because its run dir is
 * full): the change is committed and the failure kept; cad_db_take_run_json_failure gives
 * its message (1) and forgets it, or 0 when none. The run dir then lags behind the DB until
 * its next status change; a rebuild from it at worst sees an older status (a `running` run
 * is then recovered as interrupted by the next runner). */
void cad_db_set_run_json_lenient(cad_db *db, int on);
int cad_db_take_run_json_failure(cad_db *db, char *buf, size_t cap);

/* Rewrite <run_dir>/run.json from the DB (row, sweep name/spec, events), atomically.
 * Called by every state change; exposed for imports. No-op when run_dir does not exist. */
int cad_db_write_run_json(cad_db *db, const char *run_id, cad_err *e);

/* Mean wall-clock seconds of done runs of a sweep with this device count, *n = how many
 * (0: no history, *mean_s unchanged). sweep NULL: any sweep with the same engine. */
int cad_db_mean_duration(cad_db *db, const char *sweep, const char *engine, int devices,
                         double *mean_s, int *n, cad_err *e);

/* ---- sweeps ------------------------------------------------------------------------- */

/* Insert a sweep, or update description/spec/spec_hash of the one with this name.
 * *id receives its id. */
int cad_db_sweep_upsert(cad_db *db, const char *name, const char *description,
                        const char *spec, const char *spec_hash, int64_t *id, cad_err *e);
/* The id of a sweep by name: CAD_OK with *id, or CAD_ERR "no sweep 'X'". */
int cad_db_sweep_id(cad_db *db, const char *name, int64_t *id, cad_err *e);

/* ---- metrics, results, artifacts ---------------------------------------------------- */

/* One curve point. Same layout as cad_log_metric (db/logparse.h). wall_ms < 0: unknown
 * (stored NULL). value NaN is stored NULL (SQLite has no NaN); +-Inf are kept. */
typedef struct cad_metric {
    char name[32];
    long step;
    double value;
    double wall_ms;
} cad_metric;

/* Insert or replace n points (key run_id,name,step: re-inserting never duplicates), in one
 * transaction unless one is open. ~1M rows/s on one core with the cached statement. */
int cad_db_insert_metrics(cad_db *db, const char *run_id, const cad_metric *rows, size_t n,
                          cad_err *e);

/* Final numbers of a run. Doubles NAN and integers -1 when unknown (stored NULL). */
typedef struct cad_result {
    double val_loss, val_bpb;
    double prequant_val_loss, prequant_val_bpb;
    int64_t artifact_bytes, model_bytes, code_bytes;
    double train_ms, eval_ms;
    int64_t steps, tokens;
    int partial;               /* 1: evaluation limited to a prefix of val */
    char engine_version[64];   /* "" unknown; else copied to runs.engine_version */
    char git_commit[64];       /* "" unknown; else copied to runs.git_commit */
    int git_dirty;             /* -1 unknown */
} cad_result;

/* A cad_result with every field unknown. */
void cad_result_init(cad_result *r);
/* Insert or replace the results row (and provenance into runs). */
int cad_db_set_result(cad_db *db, const char *run_id, const cad_result *r, cad_err *e);
/* Read it back: *found = 0 when the run has no results row. */
int cad_db_get_result(cad_db *db, const char *run_id, cad_result *out, int *found, cad_err *e);

/* Insert or replace an artifact row (path absolute; sha256 may be NULL). */
int cad_db_add_artifact(cad_db *db, const char *run_id, const char *kind, const char *path,
                        int64_t bytes, const char *sha256, cad_err *e);

/* Insert one events row as-is (rebuild/import restoring history; state changes write
 * their own events). at NULL = now, from_status NULL = none. */
int cad_db_add_event(cad_db *db, const char *run_id, const char *at, const char *from_status,
                     const char *to_status, const char *reason, cad_err *e);

#endif

/*
 * ingest.c — run directory -> database, the single ingestion path (contract in ingest.h).
 *
 * JSON is read with SQLite's JSON1 on this connection (no JSON library) — except the metrics
 * lines engines write, which a small strict parser here reads much faster (lines it is not sure
 * about still go through JSON1); result.json and run.json are read with one SELECT each.
 * Everything a call inserts is one transaction.
 * Not here: text-log parsing (logparse.c), the runner's loop.
 */
#include "engine/fsutil.h"
#include "db/ingest.h"
#include "db/db_internal.h"

#include "engine/config.h"
#include "engine/jsonw.h"
#include "sweep/plan.h"
#include "engine/sha256.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void cad_ingest_state_init(cad_ingest_state *s) { memset(s, 0, sizeof *s); }

static int db_err(cad_db *db, cad_err *e, const char *what) { return cad_db_fail(db, e, what); }

/* Read a whole file (NUL-terminated); *len may be NULL. NULL with errno on failure. */
static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static void join(char *out, size_t cap, const char *dir, const char *name) {
    snprintf(out, cap, "%s/%s", dir, name);
}

/* ---- metrics.jsonl ---------------------------------------------------------------------------- */

/* Lines are parsed here, in C, when they are the flat objects engines write
 * ({"step":int,"name":"text","value":num|null,"wall_ms":num|null}, keys in any order, other
 * scalar keys ignored), and inserted in batches through cad_db_insert_metrics: SQLite's JSON1
 * parse of the same lines capped ingestion at ~190k rows/s. Anything this parser is not sure
 * about (escapes, nesting, long names, odd numbers, repeated keys) goes through
 * metric_line_sql, JSON1's reading of the line, which defines what a valid metric line is; the
 * batch is flushed first so rows land in file order (the last of two equal (name, step) wins). */
static const char metric_line_sql[] =
    "INSERT OR REPLACE INTO metrics(run_id, name, step, value, wall_ms) "
    "SELECT ?1, json_extract(?2, '$.name'), json_extract(?2, '$.step'), "
    "       json_extract(?2, '$.value'), json_extract(?2, '$.wall_ms') "
    "WHERE json_valid(?2) AND json_type(?2, '$.name') = 'text' "
    "  AND json_type(?2, '$.step') = 'integer' "
    "  AND coalesce(json_type(?2, '$.value'), 'null') IN ('integer', 'real', 'null') "
    "  AND coalesce(json_type(?2, '$.wall_ms'), 'null') IN ('integer', 'real', 'null')";

#define METRIC_BATCH_ROWS 4096

enum { LINE_OK, LINE_BAD, LINE_UNSURE };

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    return p;
}

/* A JSON string without escapes at p (p at the opening quote): [*s, *s + *n). */
static const char *plain_string(const char *p, const char *end, const char **s, size_t *n) {
    if (p >= end || *p != '"') return NULL;
    const char *q = ++p;
    while (q < end && *q != '"') {
        if (*q == '\\' || (unsigned char)*q < 0x20) return NULL;
        q++;
    }
    if (q >= end) return NULL;
    *s = p, *n = (size_t)(q - p);
    return q + 1;
}

/* A JSON number (RFC 8259 grammar) at p; *is_int when it has no fraction or exponent. */
static const char *json_number(const char *p, const char *end, double *v, int *is_int) {
    const char *q = p;
    if (q < end && *q == '-') q++;
    if (q >= end || *q < '0' || *q > '9') return NULL;
    if (*q == '0') q++;
    else
        while (q < end && *q >= '0' && *q <= '9') q++;
    *is_int = 1;
    if (q < end && *q == '.') {
        *is_int = 0, q++;
        if (q >= end || *q < '0' || *q > '9') return NULL;
        while (q < end && *q >= '0' && *q <= '9') q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        *is_int = 0, q++;
        if (q < end && (*q == '+' || *q == '-')) q++;
        if (q >= end || *q < '0' || *q > '9') return NULL;
        while (q < end && *q >= '0' && *q <= '9') q++;
    }
    char tmp[64];
    if ((size_t)(q - p) >= sizeof tmp) return NULL;
    memcpy(tmp, p, (size_t)(q - p));
    tmp[q - p] = 0;
    *v = strtod(tmp, NULL);
    if (!isfinite(*v)) return NULL;
    if (*is_int && fabs(*v) >= 9007199254740992.0) return NULL; /* beyond exact doubles: JSON1 decides */
    return q;
}

/* One metrics line (without its newline) -> *m. LINE_BAD: JSON1 would drop it too (wrong
 * types, no name or step). LINE_UNSURE: let JSON1 read it. */
static int parse_metric_line(const char *p, size_t len, cad_metric *m) {
    const char *end = p + len;
    int have_name = 0, have_step = 0, have_value = 0, have_wall = 0;
    m->value = NAN, m->wall_ms = -1;
    p = skip_ws(p, end);
    if (p >= end || *p++ != '{') return LINE_UNSURE;
    p = skip_ws(p, end);
    if (p < end && *p == '}') return LINE_BAD; /* {}: no name, no step */
    for (;;) {
        const char *k;
        size_t kn;
        p = plain_string(skip_ws(p, end), end, &k, &kn);
        if (!p) return LINE_UNSURE;
        p = skip_ws(p, end);
        if (p >= end || *p++ != ':') return LINE_UNSURE;
        p = skip_ws(p, end);
        if (p >= end) return LINE_UNSURE;
        int *seen = kn == 4 && !memcmp(k, "name", 4)      ? &have_name
                    : kn == 4 && !memcmp(k, "step", 4)    ? &have_step
                    : kn == 5 && !memcmp(k, "value", 5)   ? &have_value
                    : kn == 7 && !memcmp(k, "wall_ms", 7) ? &have_wall
                                                           : NULL;
        if (seen && *seen) return LINE_UNSURE; /* a repeated key: which one counts is JSON1's call */
        if (seen) *seen = 1;
        if (*p == '"') {
            const char *sv;
            size_t sn;
            p = plain_string(p, end, &sv, &sn);
            if (!p) return LINE_UNSURE;
            if (seen == &have_name) {
                if (sn >= sizeof m->name) return LINE_UNSURE;
                memcpy(m->name, sv, sn);
                m->name[sn] = 0;
            } else if (seen) {
                return LINE_BAD; /* step/value/wall_ms as text */
            }
        } else if (*p == 'n' && end - p >= 4 && !memcmp(p, "null", 4)) {
            p += 4;
            if (seen == &have_name || seen == &have_step) return LINE_BAD;
        } else if ((*p == 't' && end - p >= 4 && !memcmp(p, "true", 4)) ||
                   (*p == 'f' && end - p >= 5 && !memcmp(p, "false", 5))) {
            p += *p == 't' ? 4 : 5;
            if (seen) return LINE_BAD;
        } else if (*p == '{' || *p == '[') {
            return LINE_UNSURE;
        } else {
            double v;
            int is_int;
            p = json_number(p, end, &v, &is_int);
            if (!p) return LINE_UNSURE;
            if (seen == &have_name) return LINE_BAD;
            if (seen == &have_step) {
                if (!is_int) return LINE_BAD;
                m->step = (long)v;
            } else if (seen == &have_value) {
                m->value = v;
            } else if (seen == &have_wall) {
                if (v < 0) return LINE_UNSURE; /* cad_db_insert_metrics stores negatives as NULL */
                m->wall_ms = v;
            }
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '}') {
            p = skip_ws(p + 1, end);
            if (p != end) return LINE_UNSURE;
            return have_name && have_step ? LINE_OK : LINE_BAD;
        }
        return LINE_UNSURE;
    }
}

typedef struct {
    cad_db *db;
    const char *run_id, *path;
    sqlite3_stmt *line; /* metric_line_sql, prepared on first need */
    cad_metric rows[METRIC_BATCH_ROWS];
    size_t n;
    cad_ingest_state *s;
} metric_batch;

static int batch_flush(metric_batch *b, cad_err *e) {
    if (b->n == 0) return CAD_OK;
    int rc = cad_db_insert_metrics(b->db, b->run_id, b->rows, b->n, e);
    if (!rc) b->s->metrics_rows += (long)b->n;
    b->n = 0;
    return rc;
}

static int line_via_json1(metric_batch *b, const char *line, size_t n, cad_err *e) {
    sqlite3 *h = cad_db_sqlite(b->db);
    int rc = batch_flush(b, e);
    if (rc) return rc;
    if (!b->line) {
        if (sqlite3_prepare_v2(h, metric_line_sql, -1, &b->line, NULL) != SQLITE_OK)
            return db_err(b->db, e, "preparing the metrics insert");
        sqlite3_bind_text(b->line, 1, b->run_id, -1, SQLITE_STATIC);
    }
    sqlite3_bind_text(b->line, 2, line, (int)n, SQLITE_STATIC);
    if (sqlite3_step(b->line) != SQLITE_DONE) {
        rc = cad_fail(e, CAD_EDB, "%s: inserting a metric from %s: %s", cad_db_file(b->db), b->path,
                      sqlite3_errmsg(h));
    } else if (sqlite3_changes(h) == 1) {
        b->s->metrics_rows++;
    } else {
        b->s->bad_lines++;
    }
    sqlite3_reset(b->line);
    return rc;
}

static int batch_add(metric_batch *b, const char *line, size_t n, cad_err *e) {
    cad_metric *m = &b->rows[b->n];
    switch (parse_metric_line(line, n, m)) {
    case LINE_OK: return ++b->n == METRIC_BATCH_ROWS ? batch_flush(b, e) : CAD_OK;
    case LINE_BAD: b->s->bad_lines++; return CAD_OK;
    default: return line_via_json1(b, line, n, e);
    }
}

/* The longest metrics.jsonl line read; an engine's line is well under 1 KB. */
#define METRIC_LINE_MAX (1 << 20)

static int ingest_metrics(cad_db *db, const char *run_id, const char *run_dir,
                          cad_ingest_state *s, cad_err *e) {
    char path[PATH_MAX];
    join(path, sizeof path, run_dir, "metrics.jsonl");
    FILE *f = fopen(path, "rb");
    if (!f) return CAD_OK; /* not written yet */
    if (fseeko(f, (off_t)s->metrics_offset, SEEK_SET) != 0) {
        fclose(f);
        return cad_fail(e, CAD_EIO, "%s: cannot seek to %lld", path, (long long)s->metrics_offset);
    }
    int rc = CAD_OK;
    metric_batch *b = malloc(sizeof *b);
    /* blocks scanned for '\n' (not getline, which grows its buffer to any line's size: a
     * 100 MB line without a newline was read whole into memory, then silently dropped) */
    size_t cap = METRIC_LINE_MAX + (256u << 10), have = 0, start = 0;
    char *buf = b ? malloc(cap) : NULL;
    if (!b || !buf) rc = cad_fail(e, CAD_ENOMEM, "out of memory reading %s", path);
    else {
        b->db = db, b->run_id = run_id, b->path = path, b->line = NULL, b->n = 0, b->s = s;
        while (!rc) {
            char *nl = memchr(buf + start, '\n', have - start);
            if (!nl) {
                if (have - start > METRIC_LINE_MAX) {
                    /* refuse the line, not the file: the rows before it are kept, and when
                     * its newline is there the next call goes on after it, so the runner
                     * warns once and keeps ingesting; without one it is refused again */
                    rc = batch_flush(b, e);
                    if (rc) break;
                    int64_t skipped = (int64_t)(have - start), line_no = s->metrics_lines + 1;
                    have = start = 0;
                    for (size_t got; (got = fread(buf, 1, cap, f)) > 0;) {
                        char *end = memchr(buf, '\n', got);
                        if (end) {
                            s->metrics_offset += skipped + (end - buf) + 1;
                            s->metrics_lines++;
                            break;
                        }
                        skipped += (int64_t)got;
                    }
                    rc = cad_fail(e, CAD_EFORMAT,
                                  "%s: line %lld is longer than %d MiB (the engine writes one "
                                  "short JSON object per line): refused, the lines around it "
                                  "are read; the file is damaged",
                                  path, (long long)line_no, METRIC_LINE_MAX >> 20);
                    break;
                }
                memmove(buf, buf + start, have - start);
                have -= start, start = 0;
                size_t got = fread(buf + have, 1, cap - have, f);
                if (got == 0) break; /* EOF: a partial last line is the writer mid-line */
                have += got;
                continue;
            }
            char *line = buf + start;
            size_t n = (size_t)(nl - line) + 1;
            start += n;
            s->metrics_offset += (int64_t)n;
            s->metrics_lines++;
            size_t len = n - 1;
            while (len && (line[len - 1] == '\r' || line[len - 1] == ' ')) len--;
            if (len == 0) continue;
            rc = batch_add(b, line, len, e);
        }
        if (!rc && ferror(f)) rc = cad_fail(e, CAD_EIO, "%s: read failed", path);
        if (!rc) rc = batch_flush(b, e);
        sqlite3_finalize(b->line);
    }
    free(buf);
    free(b);
    fclose(f);
    return rc;
}

/* ---- result.json ---------------------------------------------------------------------------- */

static const char result_sql[] =
    "SELECT json_extract(?1,'$.val_loss'), json_extract(?1,'$.val_bpb'), "
    "json_extract(?1,'$.prequant_val_loss'), json_extract(?1,'$.prequant_val_bpb'), "
    "json_extract(?1,'$.artifact_bytes'), json_extract(?1,'$.model_bytes'), "
    "json_extract(?1,'$.code_bytes'), json_extract(?1,'$.train_ms'), json_extract(?1,'$.eval_ms'), "
    "json_extract(?1,'$.steps'), json_extract(?1,'$.tokens'), json_extract(?1,'$.partial'), "
    "json_extract(?1,'$.engine_version'), json_extract(?1,'$.git_commit'), "
    "json_extract(?1,'$.git_dirty'), json_valid(?1)";

static double opt_dbl(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}
static int64_t opt_i64(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

static int read_result(cad_db *db, const char *path, cad_result *r, cad_err *e) {
    char *text;
    int read_rc = cad_read_file(path, &text, NULL, e);
    if (read_rc) return read_rc;
    sqlite3_stmt *st = NULL;
    int rc = CAD_OK;
    if (sqlite3_prepare_v2(cad_db_sqlite(db), result_sql, -1, &st, NULL) != SQLITE_OK) {
        free(text);
        return db_err(db, e, "preparing the result read");
    }
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    cad_result_init(r);
    if (sqlite3_step(st) != SQLITE_ROW || !sqlite3_column_int(st, 15)) {
        rc = cad_fail(e, CAD_EFORMAT, "%s: not a valid JSON object", path);
    } else {
        r->val_loss = opt_dbl(st, 0);
        r->val_bpb = opt_dbl(st, 1);
        r->prequant_val_loss = opt_dbl(st, 2);
        r->prequant_val_bpb = opt_dbl(st, 3);
        r->artifact_bytes = opt_i64(st, 4);
        r->model_bytes = opt_i64(st, 5);
        r->code_bytes = opt_i64(st, 6);
        r->train_ms = opt_dbl(st, 7);
        r->eval_ms = opt_dbl(st, 8);
        r->steps = opt_i64(st, 9);
        r->tokens = opt_i64(st, 10);
        r->partial = (int)(opt_i64(st, 11) > 0);
        const unsigned char *ev = sqlite3_column_text(st, 12), *gc = sqlite3_column_text(st, 13);
        if (ev) snprintf(r->engine_version, sizeof r->engine_version, "%s", (const char *)ev);
        if (gc) snprintf(r->git_commit, sizeof r->git_commit, "%s", (const char *)gc);
        r->git_dirty = (int)opt_i64(st, 14);
    }
    sqlite3_finalize(st);
    free(text);
    return rc;
}

/* ---- artifacts -------------------------------------------------------------------------------- */

static const struct {
    const char *file, *kind;
} artifact_files[] = {
    {"final_model.int8.ptz", "model"}, {"weights.safetensors", "weights"},
    {"checkpoint.bin", "checkpoint"},  {"log.txt", "log"},
    {"metrics.jsonl", "metrics"},      {"result.json", "result"},
    {"config.yaml", "config"},         {NULL, NULL},
};

static int ingest_artifacts(cad_db *db, const char *run_id, const char *run_dir, cad_err *e) {
    char abs[PATH_MAX];
    if (!realpath(run_dir, abs)) snprintf(abs, sizeof abs, "%s", run_dir);
    for (int i = 0; artifact_files[i].file; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", abs, artifact_files[i].file);
        if (!file_exists(path)) continue;
        char hex[65];
        int64_t bytes = 0;
        int rc = cad_sha256_file_hex(path, hex, &bytes, e);
        if (rc) return rc;
        if ((rc = cad_db_add_artifact(db, run_id, artifact_files[i].kind, path, bytes, hex, e))) return rc;
    }
    return CAD_OK;
}

int cad_ingest_run_dir(cad_db *db, const char *run_id, const char *run_dir,
                       cad_ingest_state *s, cad_err *e) {
    int owned = 0, rc = CAD_OK;
    if (!cad_db_in_transaction(db)) {
        if ((rc = cad_db_begin(db, e))) return rc;
        owned = 1;
    }
    cad_ingest_state before = *s;
    /* an overlong metrics line is refused alone (ingest_metrics): what was read around it is
     * stored, and its error returned once that is committed */
    cad_err line_err = {0};
    rc = ingest_metrics(db, run_id, run_dir, s, e);
    if (rc == CAD_EFORMAT) line_err = *e, rc = CAD_OK;
    char path[PATH_MAX];
    join(path, sizeof path, run_dir, "result.json");
    if (!rc && !s->result_done && file_exists(path)) {
        cad_result r;
        rc = read_result(db, path, &r, e);
        if (!rc) rc = cad_db_set_result(db, run_id, &r, e);
        if (!rc) s->result_done = 1;
    }
    if (!rc && s->result_done && !s->artifacts_done) {
        rc = ingest_artifacts(db, run_id, run_dir, e);
        if (!rc) s->artifacts_done = 1;
    }
    if (owned) {
        if (rc) cad_db_rollback(db);
        else rc = cad_db_commit(db, e);
    }
    if (rc && owned) *s = before; /* nothing was stored: read the same bytes next time */
    if (!rc && line_err.code) {
        *e = line_err;
        return line_err.code;
    }
    return rc;
}

/* ---- import of a whole run dir ------------------------------------------------------------------ */

static const char run_json_insert_sql[] =
    "INSERT INTO runs(run_id, sweep_id, name, engine, config, config_hash, group_hash, seed, status, "
    "priority, devices_requested, devices_assigned, attempts, retries, timeout_s, launch, host, pid, "
    "boot_id, proc_start_time, queued_at, started_at, ended_at, exit_code, error, git_commit, "
    "git_dirty, engine_version, run_dir) "
    "SELECT json_extract(?1,'$.run_id'), ?2, coalesce(json_extract(?1,'$.name'),''), "
    "coalesce(json_extract(?1,'$.engine'),'caddie'), coalesce(json(json_extract(?1,'$.config')),'{}'), "
    "coalesce(json_extract(?1,'$.config_hash'),''), coalesce(json_extract(?1,'$.group_hash'),''), "
    "json_extract(?1,'$.seed'), json_extract(?1,'$.status'), coalesce(json_extract(?1,'$.priority'),0), "
    "coalesce(json_extract(?1,'$.devices_requested'),1), json_extract(?1,'$.devices_assigned'), "
    "coalesce(json_extract(?1,'$.attempts'),0), coalesce(json_extract(?1,'$.retries'),0), "
    "json_extract(?1,'$.timeout_s'), coalesce(json(json_extract(?1,'$.launch')),'{}'), "
    "json_extract(?1,'$.host'), json_extract(?1,'$.pid'), json_extract(?1,'$.boot_id'), "
    "json_extract(?1,'$.proc_start_time'), json_extract(?1,'$.queued_at'), "
    "json_extract(?1,'$.started_at'), json_extract(?1,'$.ended_at'), json_extract(?1,'$.exit_code'), "
    "json_extract(?1,'$.error'), json_extract(?1,'$.git_commit'), json_extract(?1,'$.git_dirty'), "
    "coalesce(json_extract(?1,'$.engine_version'),''), ?3";

static const char run_json_sweep_sql[] =
    "INSERT INTO sweeps(name, description, spec, spec_hash, created_at) "
    "SELECT json_extract(?1,'$.sweep.name'), coalesce(json_extract(?1,'$.sweep.description'),''), "
    "coalesce(json_extract(?1,'$.sweep.spec'),''), coalesce(json_extract(?1,'$.sweep.spec_hash'),''), "
    "coalesce(json_extract(?1,'$.sweep.created_at'), strftime('%Y-%m-%dT%H:%M:%fZ','now')) "
    "WHERE json_type(?1,'$.sweep.name') = 'text' "
    "ON CONFLICT(name) DO UPDATE SET description = excluded.description, spec = excluded.spec, "
    "spec_hash = excluded.spec_hash, created_at = min(created_at, excluded.created_at) "
    "RETURNING id";

static const char run_json_events_sql[] =
    "INSERT INTO events(run_id, at, from_status, to_status, reason) "
    "SELECT ?2, json_extract(value,'$.at'), json_extract(value,'$.from'), json_extract(value,'$.to'), "
    "coalesce(json_extract(value,'$.reason'),'') FROM json_each(?1, '$.events') ORDER BY key";

static const char run_json_params_sql[] =
    "INSERT OR REPLACE INTO params(run_id, key, num, text) "
    "SELECT ?1, key, CASE type WHEN 'integer' THEN value WHEN 'real' THEN value "
    "                          WHEN 'true' THEN 1 WHEN 'false' THEN 0 END, "
    "       CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN NULL "
    "                 ELSE CAST(value AS TEXT) END "
    "FROM json_each(?2)";

static const char run_json_id_sql[] =
    "SELECT json_valid(?1), json_extract(?1,'$.run_id'), json_extract(?1,'$.config'), "
    "json_type(?1,'$.config')";

/* Run one statement with text params (NULL = bind null), first column of the first row as
 * int64 into *out (may be NULL). */
static int exec_bound(cad_db *db, const char *sql, const char *a1, const char *a2, const char *a3,
                      int64_t *out, int *got_row, cad_err *e) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(cad_db_sqlite(db), sql, -1, &st, NULL) != SQLITE_OK)
        return db_err(db, e, "preparing an import statement");
    const char *args[3] = {a1, a2, a3};
    for (int i = 0; i < 3 && i < sqlite3_bind_parameter_count(st); i++)
        if (args[i]) sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (got_row) *got_row = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW && out) *out = sqlite3_column_int64(st, 0);
    while (rc == SQLITE_ROW) rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? CAD_OK : db_err(db, e, "importing a run");
    sqlite3_finalize(st);
    return ret;
}

static int import_run_json(cad_db *db, const char *abs_dir, const char *json_path, int replace,
                           char *id_out, size_t cap, cad_err *e) {
    char *text;
    int read_rc = cad_read_file(json_path, &text, NULL, e);
    if (read_rc) return read_rc;
    int rc = CAD_OK;
    sqlite3_stmt *st = NULL;
    char run_id[CAD_RUN_ID_MAX] = "";
    char *config = NULL;
    if (sqlite3_prepare_v2(cad_db_sqlite(db), run_json_id_sql, -1, &st, NULL) != SQLITE_OK) {
        free(text);
        return db_err(db, e, "preparing the run.json read");
    }
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW || !sqlite3_column_int(st, 0) ||
        sqlite3_column_type(st, 1) != SQLITE_TEXT)
        rc = cad_fail(e, CAD_EFORMAT, "%s: not a caddie run.json (no run_id)", json_path);
    else {
        snprintf(run_id, sizeof run_id, "%s", (const char *)sqlite3_column_text(st, 1));
        const unsigned char *c = sqlite3_column_text(st, 2);
        config = strdup(c ? (const char *)c : "{}");
    }
    sqlite3_finalize(st);
    if (!rc) {
        int ex = cad_db_run_exists(db, run_id, e);
        if (ex < 0) rc = CAD_EDB;
        else if (ex && !replace) rc = cad_fail(e, CAD_ERR, "run '%s' already exists", run_id);
        else if (ex) rc = cad_db_delete_run(db, run_id, e);
    }
    int64_t sweep_id = -1;
    int got = 0;
    if (!rc) rc = exec_bound(db, run_json_sweep_sql, text, NULL, NULL, &sweep_id, &got, e);
    if (!rc) {
        char sid[32];
        snprintf(sid, sizeof sid, "%lld", (long long)sweep_id);
        sqlite3_stmt *ins = NULL;
        if (sqlite3_prepare_v2(cad_db_sqlite(db), run_json_insert_sql, -1, &ins, NULL) != SQLITE_OK)
            rc = db_err(db, e, "preparing the run import");
        else {
            sqlite3_bind_text(ins, 1, text, -1, SQLITE_STATIC);
            if (got) sqlite3_bind_int64(ins, 2, sweep_id);
            sqlite3_bind_text(ins, 3, abs_dir, -1, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE)
                rc = cad_fail(e, CAD_EDB, "%s: importing %s: %s", cad_db_file(db), json_path,
                              sqlite3_errmsg(cad_db_sqlite(db)));
            sqlite3_finalize(ins);
        }
    }
    if (!rc) rc = exec_bound(db, run_json_params_sql, run_id, config, NULL, NULL, NULL, e);
    if (!rc) rc = exec_bound(db, run_json_events_sql, text, run_id, NULL, NULL, NULL, e);
    free(config);
    free(text);
    if (!rc) snprintf(id_out, cap, "%s", run_id);
    return rc;
}

static void iso_of_mtime(const char *path, char *buf, size_t cap, int *ok) {
    struct stat sb;
    *ok = 0;
    if (stat(path, &sb) != 0) return;
    struct tm tm;
    gmtime_r(&sb.st_mtim.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%.20s.%03dZ", base, (int)(sb.st_mtim.tv_nsec / 1000000L) % 1000);
    *ok = 1;
}

/* A standalone `caddie train` run dir: no run.json, build the row from config.yaml. */
static int import_config_yaml(cad_db *db, const char *abs_dir, int replace, char *id_out,
                              size_t cap, cad_err *e) {
    char cfg_path[PATH_MAX + 32], res_path[PATH_MAX + 32], met_path[PATH_MAX + 32];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.yaml", abs_dir);
    snprintf(res_path, sizeof res_path, "%s/result.json", abs_dir);
    snprintf(met_path, sizeof met_path, "%s/metrics.jsonl", abs_dir);
    cad_config c;
    int rc = cad_config_init(&c, e);
    if (rc) return rc;
    if ((rc = cad_config_load_yaml(&c, cfg_path, e))) {
        cad_config_free(&c);
        return rc;
    }
    char run_id[CAD_RUN_ID_MAX];
    const char *base = strrchr(abs_dir, '/');
    snprintf(run_id, sizeof run_id, "%.127s", c.run_id && *c.run_id ? c.run_id : base ? base + 1 : abs_dir);
    char *json = cad_plan_config_json(&c, 0), *idjson = cad_plan_config_identity_json(&c, 0);
    char *gjson = cad_plan_config_identity_json(&c, 1);
    char hash[65], ghash[65];
    const char *ev = cad_plan_caddie_engine_version();
    int hashed = idjson && gjson;
    if (hashed) {
        cad_plan_hash(ev, idjson, "devices=1", hash); /* as plan.c hashes a 1-device run */
        cad_plan_hash(ev, gjson, "devices=1", ghash);
    }
    free(idjson);
    int has_result = file_exists(res_path);
    char started[40], ended[40];
    int ok_s, ok_e;
    iso_of_mtime(cfg_path, started, sizeof started, &ok_s);
    iso_of_mtime(has_result ? res_path : met_path, ended, sizeof ended, &ok_e);
    if (!json || !hashed) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    if (!rc) {
        int ex = cad_db_run_exists(db, run_id, e);
        if (ex < 0) rc = CAD_EDB;
        else if (ex && !replace) rc = cad_fail(e, CAD_ERR, "run '%s' already exists", run_id);
        else if (ex) rc = cad_db_delete_run(db, run_id, e);
    }
    if (!rc) {
        char launch[PATH_MAX + 128];
        char *lbuf = NULL;
        size_t llen = 0;
        FILE *lf = open_memstream(&lbuf, &llen);
        if (lf) {
            fputs("{\"argv\":[\"caddie\",\"train\",", lf);
            cad_json_write_string(lf, cfg_path);
            fputs("],\"env\":{}}", lf);
            fclose(lf);
        }
        snprintf(launch, sizeof launch, "%s", lbuf ? lbuf : "{}");
        free(lbuf);
        cad_run_new nr = {
            .run_id = run_id, .sweep_id = -1, .name = run_id, .engine = "caddie",
            .config = json, .config_hash = hash, .group_hash = ghash, .has_seed = 1,
            .seed = c.seed, .status = CAD_RUN_QUEUED, .devices_requested = 1, .launch = launch,
            .engine_version = ev, .git_dirty = -1, .run_dir = abs_dir,
            .queued_at = ok_s ? started : NULL, .reason = "imported by caddie import-run",
        };
        rc = cad_db_insert_run(db, &nr, e);
        /* Replay the life of the run so its events and timestamps read like a runner's. */
        if (!rc) {
            sqlite3_stmt *st = NULL;
            const char *sql =
                "UPDATE runs SET status = ?2, started_at = ?3, ended_at = ?4, attempts = 1, error = ?5 "
                "WHERE run_id = ?1";
            if (sqlite3_prepare_v2(cad_db_sqlite(db), sql, -1, &st, NULL) != SQLITE_OK)
                rc = db_err(db, e, "preparing the import update");
            else {
                sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, has_result ? "done" : "failed", -1, SQLITE_STATIC);
                if (ok_s) sqlite3_bind_text(st, 3, started, -1, SQLITE_STATIC);
                if (ok_e) sqlite3_bind_text(st, 4, ended, -1, SQLITE_STATIC);
                if (!has_result)
                    sqlite3_bind_text(st, 5, "no result.json in the run directory (imported)", -1,
                                      SQLITE_STATIC);
                if (sqlite3_step(st) != SQLITE_DONE) rc = db_err(db, e, "updating an imported run");
                sqlite3_finalize(st);
            }
        }
        if (!rc)
            rc = cad_db_add_event(db, run_id, ok_e ? ended : NULL, "queued", has_result ? "done" : "failed",
                                  has_result ? "imported: result.json present"
                                             : "imported: no result.json",
                                  e);
    }
    free(json);
    free(gjson);
    cad_config_free(&c);
    if (!rc) snprintf(id_out, cap, "%s", run_id);
    return rc;
}

int cad_ingest_import(cad_db *db, const char *run_dir, int replace, char *run_id_out,
                      size_t cap, cad_err *e) {
    char abs[PATH_MAX];
    if (!realpath(run_dir, abs)) return cad_fail(e, CAD_EIO, "%s: %s", run_dir, strerror(errno));
    char json_path[PATH_MAX + 32], cfg_path[PATH_MAX + 32];
    snprintf(json_path, sizeof json_path, "%s/run.json", abs);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.yaml", abs);
    int owned = 0, rc;
    if (!cad_db_in_transaction(db)) {
        if ((rc = cad_db_begin(db, e))) return rc;
        owned = 1;
    }
    char run_id[CAD_RUN_ID_MAX] = "";
    if (file_exists(json_path)) rc = import_run_json(db, abs, json_path, replace, run_id, sizeof run_id, e);
    else if (file_exists(cfg_path)) rc = import_config_yaml(db, abs, replace, run_id, sizeof run_id, e);
    else rc = cad_fail(e, CAD_ERR, "%s: not a run directory (no run.json or config.yaml)", run_dir);
    if (!rc) {
        cad_ingest_state s;
        cad_ingest_state_init(&s);
        rc = cad_ingest_run_dir(db, run_id, abs, &s, e);
        if (!rc && s.bad_lines)
            fprintf(stderr, "caddie: %s/metrics.jsonl: %lld malformed lines skipped\n", abs,
                    (long long)s.bad_lines);
    }
    if (rc) cad_wrap(e, "importing %s", run_dir);
    if (owned) {
        if (rc) cad_db_rollback(db);
        else rc = cad_db_commit(db, e);
    }
    if (!rc && run_id_out && cap) snprintf(run_id_out, cap, "%s", run_id);
    return rc;
}

static int dirent_cmp(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Whether a failed import of one run dir was the dir's fault (bad JSON, a value a column
 * refuses: skip it) rather than the database's (full disk, damaged file, out of memory:
 * stop). Asked before the savepoint is rolled back, which resets SQLite's error code. */
static int dir_was_bad(cad_db *db, int rc) {
    if (rc == CAD_ENOMEM) return 0;
    if (rc != CAD_EDB) return 1;
    int code = sqlite3_errcode(cad_db_sqlite(db)) & 0xff;
    return code == SQLITE_CONSTRAINT || code == SQLITE_MISMATCH || code == SQLITE_RANGE ||
           code == SQLITE_TOOBIG;
}

typedef struct rebuild_ctx {
    int *n_runs, *n_skipped;
    cad_ingest_skip_fn on_skip;
    void *ctx;
} rebuild_ctx;

/* Import one run dir inside a savepoint: a bad dir leaves nothing behind and is skipped. */
static int rebuild_one(cad_db *db, const char *sub, rebuild_ctx *rb, cad_err *e) {
    int rc = cad_db_exec(db, "SAVEPOINT rebuild_run", e);
    if (rc) return rc;
    cad_err ie = {0};
    rc = cad_ingest_import(db, sub, 0, NULL, 0, &ie);
    if (!rc) {
        (*rb->n_runs)++;
        return cad_db_exec(db, "RELEASE rebuild_run", e);
    }
    int bad = dir_was_bad(db, rc);
    int rb_rc = cad_db_exec(db, "ROLLBACK TO rebuild_run; RELEASE rebuild_run", e);
    if (!bad) {
        *e = ie;
        return rc;
    }
    if (rb_rc) return rb_rc;
    (*rb->n_skipped)++;
    if (rb->on_skip) rb->on_skip(rb->ctx, sub, ie.msg);
    return CAD_OK;
}

/* Import every run directory below dir. A directory holding run.json or config.yaml is a run
 * dir (never descended into: its attempts/ are history); any other directory is a container,
 * such as runs/imported/ from import-log, and is scanned in turn (a few levels deep). */
static int rebuild_scan(cad_db *db, const char *dir, int depth, rebuild_ctx *rb, cad_err *e) {
    struct dirent **list = NULL;
    int n = scandir(dir, &list, NULL, dirent_cmp);
    if (n < 0) return cad_fail(e, CAD_EIO, "%s: cannot list: %s", dir, strerror(errno));
    int rc = CAD_OK;
    for (int i = 0; i < n && !rc; i++) {
        const char *name = list[i]->d_name;
        if (name[0] == '.') continue;
        char sub[PATH_MAX], p1[PATH_MAX + 32], p2[PATH_MAX + 32];
        snprintf(sub, sizeof sub, "%s/%s", dir, name);
        struct stat st;
        if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        snprintf(p1, sizeof p1, "%s/run.json", sub);
        snprintf(p2, sizeof p2, "%s/config.yaml", sub);
        if (file_exists(p1) || file_exists(p2)) {
            rc = rebuild_one(db, sub, rb, e);
        } else if (depth < 3) {
            rc = rebuild_scan(db, sub, depth + 1, rb, e);
        }
    }
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
    return rc;
}

int cad_ingest_rebuild(cad_db *db, const char *runs_dir, int *n_runs, int *n_skipped,
                       cad_ingest_skip_fn on_skip, void *ctx, cad_err *e) {
    *n_runs = 0;
    *n_skipped = 0;
    rebuild_ctx rb = {n_runs, n_skipped, on_skip, ctx};
    int rc = cad_db_begin(db, e);
    if (!rc)
        rc = cad_db_exec(db,
                         "DELETE FROM events; DELETE FROM artifacts; DELETE FROM results; "
                         "DELETE FROM metrics; DELETE FROM params; DELETE FROM runs; "
                         "DELETE FROM sweeps;",
                         e);
    if (!rc) rc = rebuild_scan(db, runs_dir, 0, &rb, e);
    /* prerequisites are not in run.json: a run needs the prepare run whose cache entry holds
     * its tokenizer (db/deps.h), which both configs say */
    if (!rc)
        rc = cad_db_exec(db,
                         "INSERT OR IGNORE INTO run_deps(run_id, needs) SELECT r.run_id, p.run_id "
                         "FROM runs p JOIN runs r ON r.engine = 'caddie' AND "
                         "json_extract(r.config, '$.tokenizer_path') = "
                         "json_extract(p.config, '$.dir') || '/tokenizer.model' WHERE p.engine = 'prepare';",
                         e);
    if (rc) {
        cad_db_rollback(db);
        *n_runs = 0;
        return rc;
    }
    return cad_db_commit(db, e);
}

/* ---- writers for command-engine runs ----------------------------------------------------------- */

/* Decimal digits of u into buf; returns the length. (snprintf's "%lld" and "%.17g" were a
 * sixth of an import's instructions.) */
static int put_u64(char *buf, uint64_t u) {
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + u % 10), u /= 10;
    while (u);
    for (int i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    return n;
}

/* A JSON number into buf (>= 32 bytes) that reads back as exactly v; "null" when not finite.
 * Returns the length. An integral value below 2^53 is its digits. A value with at most 9
 * decimals that a log printed (4.0123, 51.37) is m / 10^k with m < 2^53 integral: when the
 * division m / 10^k (both exact doubles, the quotient correctly rounded) gives back v, the
 * text "m with k decimals" reads back as v too, since strtod also returns the double nearest
 * to that decimal. Everything else is %.17g, which always reads back exactly. */
static int metric_number(char *buf, double v) {
    static const double p10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    if (!isfinite(v)) {
        memcpy(buf, "null", 4);
        return 4;
    }
    if (v == 0) { /* -0.0 keeps its sign through %.17g */
        if (signbit(v)) return snprintf(buf, 32, "%.17g", v);
        buf[0] = '0';
        return 1;
    }
    int neg = v < 0, o = neg;
    double a = neg ? -v : v;
    if (neg) buf[0] = '-';
    for (int k = 0; k < 10; k++) {
        double m = nearbyint(a * p10[k]);
        if (m >= 9007199254740992.0) break;
        if (m / p10[k] != a) continue;
        uint64_t u = (uint64_t)m;
        if (k == 0) return o + put_u64(buf + o, u);
        char digits[24];
        int nd = put_u64(digits, u);
        if (nd <= k) { /* 0.000ddd: leading zeros after the point */
            buf[o++] = '0', buf[o++] = '.';
            for (int z = 0; z < k - nd; z++) buf[o++] = '0';
            memcpy(buf + o, digits, (size_t)nd);
            return o + nd;
        }
        memcpy(buf + o, digits, (size_t)(nd - k));
        o += nd - k;
        buf[o++] = '.';
        memcpy(buf + o, digits + nd - k, (size_t)k);
        return o + k;
    }
    return snprintf(buf, 32, "%.17g", v);
}

int cad_ingest_write_metric(FILE *f, const cad_metric *m) {
    /* the line is built in memory and written with one call: fprintf and a fputc per name
     * byte, each taking the stream's lock, were most of an import's time */
    char line[64 + 6 * sizeof m->name + 3 * 32];
    memcpy(line, "{\"step\":", 8);
    int n = 8;
    if (m->step < 0) line[n++] = '-';
    n += put_u64(line + n, m->step < 0 ? 0 - (uint64_t)m->step : (uint64_t)m->step);
    memcpy(line + n, ",\"name\":\"", 9);
    n += 9;
    for (size_t i = 0; i < sizeof m->name && m->name[i]; i++) {
        unsigned char c = (unsigned char)m->name[i];
        if (c == '"' || c == '\\') {
            line[n++] = '\\';
            line[n++] = (char)c;
        } else if (c < 0x20) n += snprintf(line + n, 7, "\\u%04x", c);
        else line[n++] = (char)c;
    }
    memcpy(line + n, "\",\"value\":", 10);
    n += 10;
    n += metric_number(line + n, m->value);
    memcpy(line + n, ",\"wall_ms\":", 11);
    n += 11;
    n += metric_number(line + n, m->wall_ms < 0 ? NAN : m->wall_ms);
    memcpy(line + n, "}\n", 2);
    n += 2;
    fwrite(line, 1, (size_t)n, f);
    /* the stream's error flag covers the write (a full disk shows here or at the caller's
     * fflush, which must be checked too) */
    return ferror(f) ? -1 : 0;
}

static void put_num(FILE *f, const char *key, double v, int *first) {
    fprintf(f, "%s\n  \"%s\": ", *first ? "" : ",", key);
    *first = 0;
    cad_json_write_number(f, v); /* NaN -> null */
}
static void put_int(FILE *f, const char *key, int64_t v, int *first) {
    fprintf(f, "%s\n  \"%s\": ", *first ? "" : ",", key);
    *first = 0;
    if (v < 0) fputs("null", f);
    else fprintf(f, "%lld", (long long)v);
}

void cad_ingest_result_from_log(cad_result *r, const cad_log_summary *s) {
    cad_result_init(r);
    r->val_loss = s->val_loss;
    r->val_bpb = s->val_bpb;
    r->prequant_val_loss = s->prequant_val_loss;
    r->prequant_val_bpb = s->prequant_val_bpb;
    r->artifact_bytes = s->artifact_bytes;
    r->model_bytes = s->model_bytes;
    r->code_bytes = s->code_bytes;
    r->train_ms = s->train_ms;
    r->eval_ms = s->eval_ms;
    r->steps = s->steps;
}

int cad_ingest_write_result(const char *path, const char *run_id, const cad_result *r, cad_err *e) {
    size_t len = strlen(path) + 8;
    char *tmp = malloc(len);
    if (!tmp) return cad_fail(e, CAD_ENOMEM, "out of memory");
    snprintf(tmp, len, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        int rc = cad_fail(e, CAD_EIO, "%s: cannot write: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    int first = 1;
    fputs("{\n  \"run_id\": ", f);
    cad_json_write_string(f, run_id);
    first = 0;
    put_num(f, "val_loss", r->val_loss, &first);
    put_num(f, "val_bpb", r->val_bpb, &first);
    put_num(f, "prequant_val_loss", r->prequant_val_loss, &first);
    put_num(f, "prequant_val_bpb", r->prequant_val_bpb, &first);
    put_int(f, "artifact_bytes", r->artifact_bytes, &first);
    put_int(f, "model_bytes", r->model_bytes, &first);
    put_int(f, "code_bytes", r->code_bytes, &first);
    put_num(f, "train_ms", r->train_ms, &first);
    put_num(f, "eval_ms", r->eval_ms, &first);
    put_int(f, "steps", r->steps, &first);
    put_int(f, "tokens", r->tokens, &first);
    put_int(f, "partial", r->partial ? 1 : 0, &first);
    fputs(",\n  \"engine_version\": ", f);
    cad_json_write_string(f, r->engine_version[0] ? r->engine_version : NULL);
    fputs(",\n  \"git_commit\": ", f);
    cad_json_write_string(f, r->git_commit[0] ? r->git_commit : NULL);
    fputs(",\n  \"git_dirty\": ", f);
    if (r->git_dirty < 0) fputs("null", f);
    else fprintf(f, "%d", r->git_dirty);
    fputs("\n}\n", f);
    int rc = CAD_OK;
    int bad = ferror(f) || fflush(f) != 0, err = errno;
    if (fclose(f) != 0 && !bad) bad = 1, err = errno;
    if (bad) {
        rc = cad_fail(e, CAD_EIO, "%s: write failed: %s", tmp, strerror(err ? err : EIO));
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        rc = cad_fail(e, CAD_EIO, "%s: rename failed: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

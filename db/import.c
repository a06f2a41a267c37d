/*
 * import.c — training logs and record folders into run directories and the DB (contract in
 * import.h).
 *
 * A log goes in through named steps (import_one): the paths (run id, run dir), the parse
 * into metrics.jsonl, the params and provenance, the run dir's other files, the identity
 * hashes, and the DB rows, each small enough to read at once. The submission JSON of a
 * record is read with SQLite's JSON1 (no JSON library).
 * Not here: log parsing (logparse.c), ingestion of a run dir (ingest.c), printing (cli/).
 */
#include "db/import.h"

#include "db/db_internal.h"
#include "db/ingest.h"
#include "db/logparse.h"
#include "engine/fsutil.h"
#include "engine/jsonw.h"
#include "engine/sha256.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_DEPTH_MAX 4      /* folder levels searched for logs inside a record */
#define RECORD_NAME_MAX 256  /* a record's folder name: the sweep name */
#define RUN_NAME_MAX 256     /* an imported run's name (its log's path) */
#define DESCRIPTION_MAX 512  /* a sweep description (submission name, README title) */
#define README_LINE_MAX 1024 /* longest README line looked at for the title */
#define README_TITLE_MAX 400 /* the README title kept */
#define SUBMISSION_FILE_MAX 64
#define JSON_VALUE_MAX 512   /* a submission field (track, author) */
#define NUMBER_TEXT_MAX 64   /* a number as text (claims, seeds) */
#define JSON_PATH_MAX 128    /* a JSON1 path into the submission */
#define CLAIM_SOURCE_MAX 256 /* "<submission file> <json path>" */
#define HASH_HEX_MAX 65      /* cad_sha256_hex: 64 hex digits and the NUL */
#define LOG_CHUNK ((size_t)1 << 16) /* a log is copied and parsed this many bytes at a time */

/* ---- a small key/value list (params + provenance) ----------------------------------- */

typedef struct kv {
    char *key, *value;
} kv;

typedef struct kv_list {
    kv *v;
    int n, cap;
} kv_list;

static int kv_set(kv_list *l, const char *key, const char *value) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i].key, key) == 0) {
            char *nv = strdup(value);
            if (!nv) return -1;
            free(l->v[i].value);
            l->v[i].value = nv;
            return 0;
        }
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 64;
        kv *nb = realloc(l->v, (size_t)nc * sizeof *nb);
        if (!nb) return -1;
        l->v = nb;
        l->cap = nc;
    }
    l->v[l->n].key = strdup(key);
    l->v[l->n].value = strdup(value);
    if (!l->v[l->n].key || !l->v[l->n].value) return -1;
    l->n++;
    return 0;
}

static void kv_free(kv_list *l) {
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].key);
        free(l->v[i].value);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int kv_cmp(const void *a, const void *b) {
    return strcmp(((const kv *)a)->key, ((const kv *)b)->key);
}

/* JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int is_json_number(const char *s) {
    const char *p = s;
    if (*p == '-') p++;
    if (*p == '0') p++;
    else if (isdigit((unsigned char)*p)) while (isdigit((unsigned char)*p)) p++;
    else return 0;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return 0;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return 0;
        while (isdigit((unsigned char)*p)) p++;
    }
    return *p == 0;
}

/* A JSON number that is also a finite double: "1e999" fits the grammar but every reader
 * (SQLite's JSON1 too) makes it Inf, so it stays text. */
static int is_finite_number(const char *s) {
    return is_json_number(s) && isfinite(strtod(s, NULL));
}

static const char *bool_word(const char *s) {
    if (!strcmp(s, "True") || !strcmp(s, "true")) return "true";
    if (!strcmp(s, "False") || !strcmp(s, "false")) return "false";
    return NULL;
}

/* A scalar as JSON (numbers and booleans typed, the rest strings): the DB's params get
 * num for numbers and booleans, so WHERE key='qk_gain_init' AND num=5.25 works. */
static void write_json_scalar(FILE *f, const char *v) {
    const char *b = bool_word(v);
    if (b) fputs(b, f);
    else if (is_finite_number(v)) fputs(v, f);
    else cad_json_write_string(f, v);
}

/* Canonical JSON object (sorted keys) of l; malloc'd. */
static char *kv_to_json(kv_list *l) {
    qsort(l->v, (size_t)l->n, sizeof *l->v, kv_cmp);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fputc('{', f);
    for (int i = 0; i < l->n; i++) {
        if (i) fputc(',', f);
        cad_json_write_string(f, l->v[i].key);
        fputc(':', f);
        write_json_scalar(f, l->v[i].value);
    }
    fputc('}', f);
    if (fclose(f) != 0) { /* the stream could not grow: out of memory */
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- files -------------------------------------------------------------------------- */

/* Copy with truncation to cap-1 bytes (names are bounded; a longer one is cut). */
static void copy_str(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* [A-Za-z0-9._-] kept, anything else '_'; no leading '.' or '-'. */
static void sanitize_id(const char *in, char *out, size_t cap) {
    size_t k = 0;
    for (const char *p = in; *p && k + 1 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        out[k++] = (isalnum(c) || c == '.' || c == '_' || c == '-') ? (char)c : '_';
    }
    out[k] = 0;
    for (size_t i = 0; i < k && (out[i] == '.' || out[i] == '-'); i++) out[i] = '_';
}

/* "a/b/train_seed42.log" -> "a/b/train_seed42" */
static void strip_ext(char *s) {
    char *slash = strrchr(s, '/');
    char *dot = strrchr(s, '.');
    if (dot && (!slash || dot > slash) && dot != s) *dot = 0;
}

/* The log name with its seed removed, so the seed logs of one configuration share a
 * group: the seed's digits (as a whole number, the last occurrence) and a "seed", "seed_"
 * or "_s" marker in front of them go: "train_seed42" -> "train", "ternary_log_7" ->
 * "ternary_log", "train0" -> "train", "..._seq32768_s42" -> "..._seq32768". Names that do
 * not contain the seed stay whole ("baseline_..._seq8192" keeps its 8192). */
static void group_stem(const char *stem, int has_seed, long seed, char *out, size_t cap) {
    copy_str(out, cap, stem);
    if (!has_seed) return;
    char num[NUMBER_TEXT_MAX];
    snprintf(num, sizeof num, "%ld", seed);
    size_t nl = strlen(num), n = strlen(out);
    char *hit = NULL;
    for (size_t i = 0; i + nl <= n; i++) {
        if (memcmp(out + i, num, nl) != 0) continue;
        if (i > 0 && isdigit((unsigned char)out[i - 1])) continue;
        if (i + nl < n && isdigit((unsigned char)out[i + nl])) continue;
        hit = out + i;
    }
    if (!hit) return;
    char *from = hit, *to = hit + nl;
    if (from - out >= 5 && strncmp(from - 5, "seed_", 5) == 0) from -= 5;
    else if (from - out >= 4 && strncmp(from - 4, "seed", 4) == 0) from -= 4;
    else if (from - out >= 2 && from[-1] == 's' && (from[-2] == '_' || from[-2] == '-')) from -= 2;
    memmove(from, to, strlen(to) + 1);
    n = strlen(out);
    while (n && (out[n - 1] == '_' || out[n - 1] == '-')) out[--n] = 0;
}

/* A seed printed in the file name: "seed42", "seed_42", "_s42", trailing digits. */
static int seed_from_name(const char *stem, long *seed) {
    const char *base = strrchr(stem, '/');
    base = base ? base + 1 : stem;
    const char *s = strstr(base, "seed");
    if (s) {
        s += 4;
        if (*s == '_' || *s == '-') s++;
        if (isdigit((unsigned char)*s)) {
            *seed = strtol(s, NULL, 10);
            return 1;
        }
    }
    size_t n = strlen(base), k = n;
    while (k && isdigit((unsigned char)base[k - 1])) k--;
    if (k < n && k >= 2 && base[k - 1] == 's' && (base[k - 2] == '_' || base[k - 2] == '-')) {
        *seed = strtol(base + k, NULL, 10);
        return 1;
    }
    return 0;
}

/* ---- the record's submission JSON (read with JSON1) ---------------------------------- */

typedef struct record_info {
    char dir[PATH_MAX];      /* the folder */
    char name[RECORD_NAME_MAX]; /* folder base name: the sweep name */
    char *submission;        /* JSON text or NULL */
    char submission_file[SUBMISSION_FILE_MAX];
    int n_logs;              /* logs found in the folder */
    char claim[NUMBER_TEXT_MAX];       /* the record's one claim ("" none) */
    char claim_src[CLAIM_SOURCE_MAX];  /* where it is: "submission.json $.val_bpb", "README.md:7" */
} record_info;

static int record_text(const record_info *ri, const char *path, const char *what, size_t max,
                       char **buf, int *present, cad_err *e);

/* json_extract(json, path) as text into out; 1 when found and not null (0 also when the
 * JSON is invalid or the query fails: a record without readable claims is imported without
 * them). */
static const char json_text_sql[] = "SELECT CASE WHEN json_valid(?1) THEN json_extract(?1, ?2) END";

static int json_text(cad_db *db, const char *json, const char *path, char *out, size_t cap) {
    if (!json) return 0;
    cad_err ignored = {0};
    sqlite3_stmt *st = cad_db_stmt(db, json_text_sql, &ignored);
    if (!st) return 0;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
    int ok = 0;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, cap, "%s", t ? (const char *)t : "");
        ok = 1;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st); /* json is the caller's and may go */
    return ok;
}

/* The claim for one log of a record: seed_results.<seed> (every multi-seed submission
 * since 2026-03-19 keys its per-seed results so), else the top-level val_bpb when the
 * record has one log or names this log's seed as its `seed`. Pairing is by seed only:
 * the JSON's other per-seed fields are too often copied between seeds to check against
 * (2026-04-08 lists one artifact size for three different artifacts), so a record that
 * holds several configurations run with the same seed pairs each of them with the claim
 * (tests/fixtures/logs/EXCEPTIONS.md lists the one case in the fixtures). */
static void record_claim_of_log(cad_db *db, const record_info *ri, long seed, int has_seed,
                                kv_list *prov) {
    char v[NUMBER_TEXT_MAX], path[JSON_PATH_MAX], src[CLAIM_SOURCE_MAX];
    const char *sub = ri->submission;
    if (!sub) return;
    if (has_seed) {
        snprintf(path, sizeof path, "$.seed_results.\"%ld\".val_bpb", seed);
        if (json_text(db, sub, path, v, sizeof v)) {
            kv_set(prov, "claimed_val_bpb", v);
            snprintf(src, sizeof src, "%s %s", ri->submission_file, path);
            kv_set(prov, "claim_source", src);
            snprintf(path, sizeof path, "$.seed_results.\"%ld\".val_loss", seed);
            if (json_text(db, sub, path, v, sizeof v)) kv_set(prov, "claimed_val_loss", v);
            return;
        }
    }
    char seed_txt[NUMBER_TEXT_MAX] = "";
    int top_seed = json_text(db, sub, "$.seed", seed_txt, sizeof seed_txt);
    int single = ri->n_logs == 1 && !json_text(db, sub, "$.seed_results", v, sizeof v);
    int seed_named = top_seed && has_seed && strtol(seed_txt, NULL, 10) == seed;
    if ((single || seed_named) && json_text(db, sub, "$.val_bpb", v, sizeof v)) {
        kv_set(prov, "claimed_val_bpb", v);
        snprintf(src, sizeof src, "%s $.val_bpb", ri->submission_file);
        kv_set(prov, "claim_source", src);
        if (json_text(db, sub, "$.val_loss", v, sizeof v)) kv_set(prov, "claimed_val_loss", v);
    }
}

static const char *kv_get(const kv_list *l, const char *key) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i].key, key) == 0) return l->v[i].value;
    return NULL;
}

/* The claim for one log: its own (record_claim_of_log: claimed_val_bpb, claim_source), else
 * the record's one claim (record_claimed_val_bpb, record_claim_source), which is not this
 * log's but the record's, checked against all its logs at the end (record_check_claim). */
static void record_claim(cad_db *db, const record_info *ri, long seed, int has_seed,
                         kv_list *prov) {
    record_claim_of_log(db, ri, seed, has_seed, prov);
    if (kv_get(prov, "claimed_val_bpb") || !ri->claim[0]) return;
    kv_set(prov, "record_claimed_val_bpb", ri->claim);
    kv_set(prov, "record_claim_source", ri->claim_src);
}

/* Half a unit in the last printed decimal of a claim ("1.09816" -> 0.000005), at most
 * 0.00005 (a JSON claim's text comes back without its trailing zeros: 1.3000 -> "1.3"): a
 * parsed score within it is the same number. */
static double claim_tolerance(const char *claim) {
    const char *dot = strchr(claim, '.');
    int dec = 0;
    if (dot)
        for (const char *c = dot + 1; isdigit((unsigned char)*c); c++) dec++;
    return 0.5 * pow(10.0, -(dec > 4 ? dec : 4)) + 1e-12;
}

/* The record's one claim, for records whose logs have none of their own: the submission's
 * top-level val_bpb, else the first number after "val_bpb" in the README. */
static void record_level_claim(cad_db *db, record_info *ri) {
    char v[NUMBER_TEXT_MAX];
    if (json_text(db, ri->submission, "$.val_bpb", v, sizeof v) && is_finite_number(v)) {
        copy_str(ri->claim, sizeof ri->claim, v);
        snprintf(ri->claim_src, sizeof ri->claim_src, "%s $.val_bpb", ri->submission_file);
        return;
    }
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/README.md", ri->dir);
    char *text = NULL;
    int present = 0;
    cad_err ignored = {0};
    if (record_text(ri, p, "README", CAD_IMPORT_README_MAX, &text, &present, &ignored) || !text)
        return;
    int line = 1;
    for (const char *c = text; *c; c++) {
        if (*c == '\n') line++;
        if (strncasecmp(c, "val_bpb", 7) != 0) continue;
        const char *n = c + 7;
        while (*n && strchr(" \t:=*|`", *n)) n++;
        size_t k = 0;
        while ((isdigit((unsigned char)n[k]) || n[k] == '.') && k + 1 < sizeof v) v[k] = n[k], k++;
        v[k] = 0;
        if (k && isdigit((unsigned char)v[0]) && is_finite_number(v)) {
            copy_str(ri->claim, sizeof ri->claim, v);
            snprintf(ri->claim_src, sizeof ri->claim_src, "README.md:%d", line);
            break;
        }
    }
    free(text);
}

/* Where parsed metrics go: a line of metrics.jsonl each (the run dir is the truth), and at
 * once into the metrics table in batches of METRIC_BATCH (the import's transaction is open
 * and its foreign keys deferred, so the rows go in before their runs row), so ingesting the
 * run dir afterwards need not read metrics.jsonl back. Values the JSON line stores as null
 * (non-finite, negative wall time) are stored as NULL here too. */
#define METRIC_BATCH 4096
typedef struct metric_sink {
    FILE *f;
    long n;
    cad_db *db;
    const char *run_id;
    cad_metric *rows;         /* METRIC_BATCH of them */
    size_t nb;
    int rc;                   /* a failed batch insert: its status (message in *e) */
    cad_err *e;
} metric_sink;

static int sink_flush(metric_sink *s) {
    if (s->nb == 0 || s->rc) return s->rc;
    s->rc = cad_db_insert_metrics(s->db, s->run_id, s->rows, s->nb, s->e);
    s->nb = 0;
    return s->rc;
}

static int sink_metric(void *ctx, const cad_log_metric *m) {
    metric_sink *s = ctx;
    cad_metric *cm = &s->rows[s->nb];
    memcpy(cm->name, m->name, sizeof cm->name);
    cm->step = m->step;
    cm->value = isfinite(m->value) ? m->value : NAN;
    cm->wall_ms = isfinite(m->wall_ms) && m->wall_ms >= 0 ? m->wall_ms : -1;
    cad_ingest_write_metric(s->f, cm);
    s->n++;
    if (++s->nb == METRIC_BATCH && sink_flush(s)) return 1;
    return 0;
}

static int write_config_yaml(const char *path, const kv_list *l, cad_err *e) {
    FILE *f = fopen(path, "wb");
    if (!f) return cad_fail(e, CAD_EIO, "%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "# hyperparameters printed by the imported log, plus import provenance\n");
    for (int i = 0; i < l->n; i++) {
        fprintf(f, "%s: ", l->v[i].key);
        const char *b = bool_word(l->v[i].value);
        if (b) fputs(b, f);
        else if (is_finite_number(l->v[i].value)) fputs(l->v[i].value, f);
        else cad_json_write_string(f, l->v[i].value); /* a JSON string is a YAML scalar */
        fputc('\n', f);
    }
    if (fclose(f) != 0) return cad_fail(e, CAD_EIO, "%s: write failed", path);
    return CAD_OK;
}

static void remove_run_dir(const char *dir) {
    static const char *const files[] = {"log.txt", "metrics.jsonl", "result.json",
                                        "config.yaml", "run.json", NULL};
    char p[PATH_MAX + 32];
    for (int i = 0; files[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* One log on its way in: what the caller says, then what the steps find out. */
typedef struct import_job {
    cad_db *db;
    const cad_import_opts *o;
    const char *log_path;
    const char *run_id_src;    /* readable source of the run id ("<record>-<path>") */
    const char *group_base;    /* with the seedless stem: the group */
    const char *stem;
    int64_t sweep_id;          /* -1: none */
    const char *sweep_name;
    const record_info *ri;     /* NULL: a plain log, not part of a record */
    const char *rel_in_record; /* the log's path inside the record, or NULL */
    /* found by the steps */
    char run_id[CAD_RUN_ID_MAX];
    char run_dir[PATH_MAX];
    char abs_log[PATH_MAX];
    int exists;                /* the run id is in the DB already (replace) */
    int fd;                    /* the log, opened by job_open; -1 when closed */
    cad_logparse *p;
    cad_log_summary s;
    long n_metrics;            /* metric rows parsed (already in the DB) */
    int64_t metrics_bytes;     /* size of the metrics.jsonl written with them */
    long seed;
    int has_seed;
    kv_list params;
    char *config;
    char config_hash[HASH_HEX_MAX], group_hash[HASH_HEX_MAX];
} import_job;

static void job_init(import_job *j, cad_db *db, const cad_import_opts *o) {
    memset(j, 0, sizeof *j);
    j->db = db;
    j->o = o;
    j->fd = -1;
    j->sweep_id = -1;
}

static void job_free(import_job *j) {
    free(j->config);
    kv_free(&j->params);
    if (j->p) cad_logparse_free(j->p);
    if (j->fd >= 0) close(j->fd);
}

/* The log must be a regular file: a FIFO or device would block the import or never end. */
static int job_open(import_job *j, cad_err *e) {
    return cad_open_regular(j->log_path, "log", &j->fd, e);
}

/* The run id, the run dir under <runs_dir>/imported/, and whether the id is taken. */
static int job_paths(import_job *j, cad_err *e) {
    sanitize_id(j->run_id_src, j->run_id, sizeof j->run_id);
    char abs_runs[PATH_MAX];
    if (!realpath(j->o->runs_dir, abs_runs)) {
        int rc = cad_mkdir_p(j->o->runs_dir, e);
        if (rc) return rc;
        if (!realpath(j->o->runs_dir, abs_runs))
            return cad_fail(e, CAD_EIO, "%s: %s", j->o->runs_dir, strerror(errno));
    }
    if (snprintf(j->run_dir, sizeof j->run_dir, "%s/imported/%s", abs_runs, j->run_id) >=
        (int)sizeof j->run_dir)
        return cad_fail(e, CAD_EIO, "%s/imported/%s: path too long", abs_runs, j->run_id);
    j->exists = cad_db_run_exists(j->db, j->run_id, e);
    if (j->exists < 0) return e->code ? e->code : CAD_EDB;
    if (j->exists && !j->o->replace)
        return cad_fail(e, CAD_ERR, "run '%s' already exists (from %s); --replace re-imports it",
                        j->run_id, j->log_path);
    if (!realpath(j->log_path, j->abs_log)) copy_str(j->abs_log, sizeof j->abs_log, j->log_path);
    return CAD_OK;
}

/* Copy the open log to <run_dir>/log.txt and feed the same chunks to the parser, whose
 * metrics go to metrics.jsonl. The log is never held whole: memory is one LOG_CHUNK plus
 * the parser's longest line (CAD_LOG_MAX_LINE), whatever the log's size. */
static int stream_log(import_job *j, FILE *copy, const char *copy_path, metric_sink *sink,
                      cad_err *e) {
    char *buf = malloc(LOG_CHUNK);
    if (!buf) return cad_fail(e, CAD_ENOMEM, "out of memory reading %s", j->log_path);
    int rc = CAD_OK;
    for (;;) {
        ssize_t r = read(j->fd, buf, LOG_CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = cad_fail(e, CAD_EIO, "%s: read error: %s", j->log_path, strerror(errno));
            break;
        }
        if (r == 0) break;
        if (fwrite(buf, 1, (size_t)r, copy) != (size_t)r) {
            rc = cad_fail(e, CAD_EIO, "%s: write failed: %s", copy_path, strerror(errno));
            break;
        }
        int fr = cad_logparse_feed(j->p, buf, (size_t)r, sink_metric, sink);
        if (fr > 0) {
            rc = sink->rc;
            break;
        }
        if (fr < 0) {
            rc = cad_fail(e, CAD_ENOMEM, "out of memory parsing %s", j->log_path);
            break;
        }
    }
    free(buf);
    if (!rc) {
        int fr = cad_logparse_finish(j->p, sink_metric, sink);
        if (fr > 0) rc = sink->rc;
        else if (fr < 0) rc = cad_fail(e, CAD_ENOMEM, "out of memory parsing %s", j->log_path);
    }
    if (!rc) rc = sink_flush(sink);
    return rc;
}

/* Parse the log into <run_dir>/metrics.jsonl and its summary (j->s), copying it to
 * <run_dir>/log.txt on the way. */
static int job_parse(import_job *j, cad_err *e) {
    j->p = cad_logparse_new();
    if (!j->p) return cad_fail(e, CAD_ENOMEM, "out of memory parsing %s", j->log_path);
    int rc = cad_mkdir_p(j->run_dir, e);
    if (rc) return rc;
    char mpath[PATH_MAX], lpath[PATH_MAX];
    if (snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", j->run_dir) >= (int)sizeof mpath ||
        snprintf(lpath, sizeof lpath, "%s/log.txt", j->run_dir) >= (int)sizeof lpath)
        return cad_fail(e, CAD_EIO, "%s: path too long", j->run_dir);
    FILE *copy = fopen(lpath, "wb");
    if (!copy) return cad_fail(e, CAD_EIO, "%s: cannot write: %s", lpath, strerror(errno));
    metric_sink sink = {fopen(mpath, "wb"), 0, j->db, j->run_id, malloc(sizeof(cad_metric) * METRIC_BATCH), 0, 0, e};
    if (!sink.rows) {
        if (sink.f) fclose(sink.f);
        fclose(copy);
        return cad_fail(e, CAD_ENOMEM, "out of memory parsing %s", j->log_path);
    }
    if (!sink.f) {
        free(sink.rows);
        fclose(copy);
        return cad_fail(e, CAD_EIO, "%s: cannot write: %s", mpath, strerror(errno));
    }
    rc = stream_log(j, copy, lpath, &sink, e);
    free(sink.rows);
    int bad_copy = fclose(copy) != 0, bad_metrics = ferror(sink.f) | (fclose(sink.f) != 0);
    if (!rc && bad_copy) rc = cad_fail(e, CAD_EIO, "%s: write failed", lpath);
    if (!rc && bad_metrics) rc = cad_fail(e, CAD_EIO, "%s: write failed", mpath);
    close(j->fd);
    j->fd = -1;
    cad_logparse_summary(j->p, &j->s);
    j->n_metrics = sink.n;
    struct stat st;
    j->metrics_bytes = !rc && stat(mpath, &st) == 0 ? (int64_t)st.st_size : 0;
    return rc;
}

/* The hyperparameters the log printed, its seed, and where it came from. */
static int job_params(import_job *j, cad_err *e) {
    int rc = CAD_OK;
    for (int i = 0; i < cad_logparse_param_count(j->p); i++) {
        const char *k, *v;
        cad_logparse_param_get(j->p, i, &k, &v);
        if (kv_set(&j->params, k, v)) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    j->seed = j->s.seed;
    j->has_seed = j->s.seed >= 0;
    if (!j->has_seed)
        j->has_seed = seed_from_name(j->rel_in_record ? j->rel_in_record : j->run_id_src, &j->seed);
    if (j->has_seed) {
        char sb[NUMBER_TEXT_MAX];
        snprintf(sb, sizeof sb, "%ld", j->seed);
        kv_set(&j->params, "seed", sb);
    }
    kv_set(&j->params, "source_log", j->rel_in_record ? j->rel_in_record : j->abs_log);
    const record_info *ri = j->ri;
    if (ri) {
        kv_set(&j->params, "record", ri->name);
        char v[JSON_VALUE_MAX];
        if (json_text(j->db, ri->submission, "$.track", v, sizeof v))
            kv_set(&j->params, "record_track", v);
        if (json_text(j->db, ri->submission, "$.author", v, sizeof v))
            kv_set(&j->params, "record_author", v);
        record_claim(j->db, ri, j->seed, j->has_seed, &j->params);
    }
    if (j->s.has_score) kv_set(&j->params, "score_line", j->s.score_line_kind);
    return rc;
}

/* config.yaml and (with a score) result.json; an older result.json goes. (log.txt was
 * copied while parsing.) */
static int job_files(import_job *j, cad_err *e) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", j->run_dir);
    int rc = write_config_yaml(path, &j->params, e);
    snprintf(path, sizeof path, "%s/result.json", j->run_dir);
    unlink(path);
    if (!rc && j->s.has_score) {
        cad_result r;
        cad_ingest_result_from_log(&r, &j->s);
        rc = cad_ingest_write_result(path, j->run_id, &r, e);
    }
    return rc;
}

/* The canonical config JSON and the identity hashes: config_hash of "log\n<config>",
 * group_hash of the source without its seed. */
static int job_identity(import_job *j, cad_err *e) {
    j->config = kv_to_json(&j->params);
    if (!j->config) return cad_fail(e, CAD_ENOMEM, "out of memory");
    size_t cl = strlen(j->config);
    char *hin = malloc(cl + 5);
    if (!hin) return cad_fail(e, CAD_ENOMEM, "out of memory");
    memcpy(hin, "log\n", 4);
    memcpy(hin + 4, j->config, cl + 1);
    cad_sha256_hex(hin, cl + 4, j->config_hash);
    free(hin);
    char gstem[PATH_MAX], gb[PATH_MAX * 3];
    group_stem(j->stem, j->has_seed, j->seed, gstem, sizeof gstem);
    int gl = snprintf(gb, sizeof gb, "log-group\n%s/%s", j->group_base, gstem);
    cad_sha256_hex(gb, (size_t)gl, j->group_hash);
    return CAD_OK;
}

/* The runs row, its error when unscored, the run dir's result and artifacts through the one
 * ingestion path (its curves are in already: job_parse inserted them), inside import_one's
 * transaction. */
static int job_insert(import_job *j, cad_err *e) {
    char reason[PATH_MAX + 64];
    snprintf(reason, sizeof reason, "imported from %s", j->abs_log);
    char label[RUN_NAME_MAX];
    copy_str(label, sizeof label, j->rel_in_record ? j->rel_in_record : j->run_id_src);
    cad_run_new rn;
    memset(&rn, 0, sizeof rn);
    rn.run_id = j->run_id;
    rn.sweep_id = j->sweep_id;
    rn.name = label;
    rn.engine = "log";
    rn.config = j->config;
    rn.config_hash = j->config_hash;
    rn.group_hash = j->group_hash;
    rn.has_seed = j->has_seed;
    rn.seed = j->seed;
    rn.status = j->s.has_score ? CAD_RUN_DONE : CAD_RUN_FAILED;
    rn.devices_requested = 1;
    rn.git_dirty = -1;
    rn.run_dir = j->run_dir;
    rn.reason = reason;
    int rc = cad_db_insert_run(j->db, &rn, e);
    if (!rc && !j->s.has_score)
        rc = cad_db_set_error(j->db, j->run_id, "imported log has no final evaluation line", e);
    if (!rc) {
        cad_ingest_state st;
        cad_ingest_state_init(&st);
        st.metrics_offset = j->metrics_bytes; /* inserted while parsing */
        st.metrics_rows = j->n_metrics;
        rc = cad_ingest_run_dir(j->db, j->run_id, j->run_dir, &st, e);
    }
    return rc;
}

/* out->note: the first line that looks like a score but was not understood, the first line
 * too long to parse (skipped, so a log that is one endless line is refused visibly, not
 * swallowed), and a claim of this log's own that differs from its parsed score. */
static void job_note(const import_job *j, cad_import_result *out) {
    size_t o = 0;
    out->note[0] = 0;
    if (j->s.n_unread_score_lines > 0) {
        o += (size_t)snprintf(out->note, sizeof out->note, "line %ld: not understood: %s",
                              j->s.first_unread_score_line, j->s.first_unread_score_text);
        if (j->s.n_unread_score_lines > 1 && o < sizeof out->note)
            o += (size_t)snprintf(out->note + o, sizeof out->note - o, " (and %ld more such line%s)",
                                  j->s.n_unread_score_lines - 1,
                                  j->s.n_unread_score_lines == 2 ? "" : "s");
    }
    if (j->s.n_long_lines > 0 && o < sizeof out->note) {
        o += (size_t)snprintf(out->note + o, sizeof out->note - o,
                              "%sline %ld: longer than %zu MiB: not parsed (kept in log.txt)",
                              o ? "; " : "", j->s.first_long_line, CAD_LOG_MAX_LINE >> 20);
        if (j->s.n_long_lines > 1 && o < sizeof out->note)
            o += (size_t)snprintf(out->note + o, sizeof out->note - o, " (and %ld more such line%s)",
                                  j->s.n_long_lines - 1, j->s.n_long_lines == 2 ? "" : "s");
    }
    const char *claim = kv_get(&j->params, "claimed_val_bpb");
    const char *src = kv_get(&j->params, "claim_source");
    /* the record's one claim (several logs) is checked against all of them at the end */
    if (claim && src && j->s.has_score && o < sizeof out->note &&
        fabs(strtod(claim, NULL) - j->s.val_bpb) > claim_tolerance(claim))
        snprintf(out->note + o, sizeof out->note - o,
                 "%sclaimed %s (%s) differs from the parsed %.8f: both kept", o ? "; " : "", claim,
                 src, j->s.val_bpb);
}

static void job_result(const import_job *j, cad_import_result *out) {
    copy_str(out->run_id, sizeof out->run_id, j->run_id);
    out->status = j->s.has_score ? CAD_RUN_DONE : CAD_RUN_FAILED;
    out->has_score = j->s.has_score;
    out->val_bpb = j->s.has_score ? j->s.val_bpb : NAN;
    const char *claim = kv_get(&j->params, "claimed_val_bpb");
    if (!claim) claim = kv_get(&j->params, "record_claimed_val_bpb");
    if (claim) copy_str(out->claimed_val_bpb, sizeof out->claimed_val_bpb, claim);
    if (j->s.has_score) copy_str(out->score_line, sizeof out->score_line, j->s.score_line_kind);
    out->sweep = j->sweep_name;
    job_note(j, out);
}

/* Foreign keys back on after a new run's transaction (import_one). A failure here leaves this
 * connection without them, and the connection ends with the command: nothing to report. */
static void foreign_keys_on(cad_db *db) {
    cad_err ignored;
    cad_db_exec(db, "PRAGMA foreign_keys = ON", &ignored);
}

/* What the foreign keys would have checked for a new run's rows, inserted with them off: every
 * row of the import names j->run_id, so the runs row must exist, and its sweep when it has
 * one. */
static int new_run_rows_consistent(import_job *j, cad_err *e) {
    static const char sql[] =
        "SELECT count(*) FROM runs r WHERE r.run_id = ?1 "
        "AND (r.sweep_id IS NULL OR EXISTS (SELECT 1 FROM sweeps s WHERE s.id = r.sweep_id))";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cad_db_sqlite(j->db), sql, -1, &st, NULL) != SQLITE_OK)
        return cad_db_fail(j->db, e, "checking an imported run's rows");
    sqlite3_bind_text(st, 1, j->run_id, -1, SQLITE_STATIC);
    int ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
    sqlite3_finalize(st);
    if (!ok)
        return cad_fail(e, CAD_EDB, "%s: importing %s: run %s has no runs row (or its sweep is "
                        "gone) at the commit; nothing was stored", cad_db_file(j->db), j->log_path, j->run_id);
    return CAD_OK;
}

/* Import one log (j's inputs set). A file with no training output at all is not a log:
 * out->skipped, its run dir removed. A failure removes the run dir of a new run. */
static int import_one(import_job *j, cad_import_result *out, cad_err *e) {
    memset(out, 0, sizeof *out);
    out->val_bpb = NAN;
    int rc = job_open(j, e);
    if (!rc) rc = job_paths(j, e);
    if (rc) return rc;
    /* One transaction for the whole log; the curves go in while it is parsed, before the
     * runs row they reference. A re-import deletes the old run first, which needs the foreign
     * keys' cascade: they stay on, deferred to the commit. A new run's rows all carry this
     * run id, so the keys are off for its transaction (their lookup of the runs row was a fifth
     * of each metric insert) and new_run_rows_consistent checks the one thing they would have,
     * that the runs row (and its sweep) is there, before the commit. */
    int fk_off = !j->exists;
    if (fk_off && (rc = cad_db_exec(j->db, "PRAGMA foreign_keys = OFF", e))) return rc;
    rc = cad_db_begin(j->db, e);
    if (rc) {
        if (fk_off) foreign_keys_on(j->db);
        return rc;
    }
    if (!fk_off) rc = cad_db_exec(j->db, "PRAGMA defer_foreign_keys = ON", e);
    if (!rc && j->exists) rc = cad_db_delete_run(j->db, j->run_id, e);
    /* parse first: a file with no training output is not imported */
    if (!rc) rc = job_parse(j, e);
    if (!rc && j->n_metrics == 0 && !j->s.has_score) {
        cad_db_rollback(j->db);
        if (fk_off) foreign_keys_on(j->db);
        out->skipped = 1;
        job_note(j, out);
        remove_run_dir(j->run_dir);
        return CAD_OK;
    }
    if (!rc) rc = job_params(j, e);
    if (!rc) rc = job_files(j, e);
    if (!rc) rc = job_identity(j, e);
    if (!rc) rc = job_insert(j, e);
    if (!rc && fk_off) rc = new_run_rows_consistent(j, e);
    if (!rc) rc = cad_db_commit(j->db, e);
    else cad_db_rollback(j->db);
    if (fk_off) foreign_keys_on(j->db);
    if (!rc) rc = cad_db_write_run_json(j->db, j->run_id, e);
    if (rc) {
        if (!j->exists) remove_run_dir(j->run_dir);
        return rc;
    }
    job_result(j, out);
    return CAD_OK;
}

/* ---- import-log and sweeps ----------------------------------------------------------------- */

const char *cad_import_default_runs_dir(void) {
    const char *env = getenv("CADDIE_RUNS");
    return env && *env ? env : "runs";
}

int cad_import_sweep(cad_db *db, const char *name, const char *description, int64_t *id,
                     cad_err *e) {
    cad_err probe;
    cad_err_clear(&probe);
    if (cad_db_sweep_id(db, name, id, &probe) == CAD_OK) return CAD_OK;
    return cad_db_sweep_upsert(db, name, description ? description : "", "", "", id, e);
}

int cad_import_log(cad_db *db, const cad_import_opts *o, const char *log_path,
                   const char *sweep, int64_t sweep_id, cad_import_result *out, cad_err *e) {
    memset(out, 0, sizeof *out);
    /* run id and group: "<parent dir>-<file stem>" keeps the many train.log apart */
    char abs[PATH_MAX];
    if (!realpath(log_path, abs)) return cad_fail(e, CAD_EIO, "%s: %s", log_path, strerror(errno));
    char stem[PATH_MAX], parent[PATH_MAX];
    const char *base = strrchr(abs, '/');
    copy_str(stem, sizeof stem, base ? base + 1 : abs);
    strip_ext(stem);
    snprintf(parent, sizeof parent, "%.*s", base ? (int)(base - abs) : 0, abs);
    const char *pb = strrchr(parent, '/');
    pb = pb ? pb + 1 : parent;
    char id_src[PATH_MAX * 2];
    snprintf(id_src, sizeof id_src, "%s%s%s", sweep ? sweep : pb, "-", stem);
    import_job j;
    job_init(&j, db, o);
    j.log_path = log_path;
    j.run_id_src = id_src;
    j.group_base = parent;
    j.stem = stem;
    j.sweep_id = sweep_id;
    j.sweep_name = sweep;
    int rc = import_one(&j, out, e);
    job_free(&j);
    return rc;
}

/* ---- import-record ------------------------------------------------------------------- */

/* A record is walked without leaving it: a symbolic link is followed only when its target
 * (resolved through every link) lies inside the record folder; one that leaves it is
 * reported, not followed (docs/database.md "Importing logs and records"). Folders are
 * entered once each (by device and inode), so a link back to a parent is no loop, and a
 * file reached by several paths (links, hard links) is imported once, under the path
 * without links, else the first in sorted order. */

typedef struct found_log {
    char *rel;              /* path relative to the record folder */
    dev_t dev;
    ino_t ino;
    int via_link;           /* reached through a symbolic link */
} found_log;

typedef struct file_id {
    dev_t dev;
    ino_t ino;
} file_id;

typedef struct link_out {
    char *rel, *target;     /* a link of the record and where it leads */
} link_out;

typedef struct record_walk {
    const char *root;       /* the record folder (a realpath) */
    found_log *logs;
    int n_logs, cap_logs;
    file_id *dirs;          /* folders entered */
    int n_dirs, cap_dirs;
    link_out *outside;      /* links leaving the folder, in walk order */
    int n_outside, cap_outside;
    int oom;
} record_walk;

static void *grow(void *v, int *cap, int n, size_t size, int *oom) {
    if (n < *cap) return v;
    int nc = *cap ? *cap * 2 : 16;
    void *nv = realloc(v, (size_t)nc * size);
    if (!nv) {
        *oom = 1;
        return NULL;
    }
    *cap = nc;
    return nv;
}

static void walk_free(record_walk *w) {
    for (int i = 0; i < w->n_logs; i++) free(w->logs[i].rel);
    for (int i = 0; i < w->n_outside; i++) {
        free(w->outside[i].rel);
        free(w->outside[i].target);
    }
    free(w->logs);
    free(w->dirs);
    free(w->outside);
}

/* path is root itself or below it. */
static int inside_root(const char *root, const char *path) {
    size_t n = strlen(root);
    return strncmp(path, root, n) == 0 && (path[n] == 0 || path[n] == '/');
}

/* 1 when the folder (dev, ino) was entered before; else remembers it. */
static int dir_seen(record_walk *w, dev_t dev, ino_t ino) {
    for (int i = 0; i < w->n_dirs; i++)
        if (w->dirs[i].dev == dev && w->dirs[i].ino == ino) return 1;
    file_id *nd = grow(w->dirs, &w->cap_dirs, w->n_dirs, sizeof *nd, &w->oom);
    if (!nd) return 1;
    w->dirs = nd;
    w->dirs[w->n_dirs++] = (file_id){dev, ino};
    return 0;
}

static void note_outside(record_walk *w, const char *rel, const char *target) {
    link_out *no = grow(w->outside, &w->cap_outside, w->n_outside, sizeof *no, &w->oom);
    if (!no) return;
    w->outside = no;
    link_out l = {strdup(rel), strdup(target)};
    if (!l.rel || !l.target) {
        free(l.rel);
        free(l.target);
        w->oom = 1;
        return;
    }
    w->outside[w->n_outside++] = l;
}

static void add_log(record_walk *w, const char *rel, const struct stat *st, int via_link) {
    found_log *nl = grow(w->logs, &w->cap_logs, w->n_logs, sizeof *nl, &w->oom);
    if (!nl) return;
    w->logs = nl;
    char *r = strdup(rel);
    if (!r) {
        w->oom = 1;
        return;
    }
    w->logs[w->n_logs++] = (found_log){r, st->st_dev, st->st_ino, via_link};
}

static int is_log_name(const char *name) {
    size_t n = strlen(name);
    if (strcmp(name, "requirements.txt") == 0) return 0;
    return (n > 4 && (strcmp(name + n - 4, ".log") == 0 || strcmp(name + n - 4, ".txt") == 0));
}

static void walk_dir(record_walk *w, const char *rel, int depth, int via_link);

/* One directory entry: a log, a folder to enter, or a link to follow or report. */
static void walk_entry(record_walk *w, const char *name, const char *rel, int depth, int via_link) {
    char full[PATH_MAX * 2];
    snprintf(full, sizeof full, "%s/%s", w->root, rel);
    struct stat st;
    if (lstat(full, &st) != 0) return;
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        if (!realpath(full, target) || stat(target, &st) != 0) return; /* dangling */
        if (!inside_root(w->root, target)) {
            if (S_ISDIR(st.st_mode) || is_log_name(name)) note_outside(w, rel, target);
            return;
        }
        via_link = 1;
    }
    if (S_ISDIR(st.st_mode)) {
        if (depth < LOG_DEPTH_MAX) walk_dir(w, rel, depth + 1, via_link);
    } else if (S_ISREG(st.st_mode) && is_log_name(name)) {
        add_log(w, rel, &st, via_link);
    }
}

/* Logs under root/rel (recursive), as paths relative to root. */
static void walk_dir(record_walk *w, const char *rel, int depth, int via_link) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s%s%s", w->root, *rel ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d) return;
    struct stat st;
    if (fstat(dirfd(d), &st) != 0 || dir_seen(w, st.st_dev, st.st_ino)) {
        closedir(d);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) && !w->oom) {
        if (de->d_name[0] == '.') continue;
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >= (int)sizeof sub)
            continue;
        walk_entry(w, de->d_name, sub, depth, via_link);
    }
    closedir(d);
}

static int log_by_file(const void *a, const void *b) {
    const found_log *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    if (x->via_link != y->via_link) return x->via_link - y->via_link;
    return strcmp(x->rel, y->rel);
}

static int log_by_path(const void *a, const void *b) {
    return strcmp(((const found_log *)a)->rel, ((const found_log *)b)->rel);
}

/* Each distinct file once (the path without links first, then the first by name); then
 * sorted by path, the order they are imported in. */
static void dedupe_logs(record_walk *w) {
    if (w->n_logs < 2) return;
    qsort(w->logs, (size_t)w->n_logs, sizeof *w->logs, log_by_file);
    int k = 0;
    for (int i = 0; i < w->n_logs; i++) {
        if (k && w->logs[k - 1].dev == w->logs[i].dev && w->logs[k - 1].ino == w->logs[i].ino) {
            free(w->logs[i].rel);
            continue;
        }
        w->logs[k++] = w->logs[i];
    }
    w->n_logs = k;
    qsort(w->logs, (size_t)w->n_logs, sizeof *w->logs, log_by_path);
}

/* A text file of the record (submission JSON, README) for reading: must not be a link out
 * of the folder. *present is 0 when there is no such file (not an error). */
static int record_text(const record_info *ri, const char *path, const char *what, size_t max,
                       char **buf, int *present, cad_err *e) {
    *buf = NULL;
    *present = 0;
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return CAD_OK;
        return cad_fail(e, CAD_EIO, "%s: %s", path, strerror(errno));
    }
    *present = 1;
    char target[PATH_MAX];
    if (S_ISLNK(st.st_mode) && (!realpath(path, target) || !inside_root(ri->dir, target)))
        return cad_fail(e, CAD_EIO, "%s: symbolic link leaving the record folder: not followed",
                        path);
    return cad_read_regular_file(path, what, max, buf, NULL, e);
}

/* The submission JSON (submission.json, else the first submission*.json by name). A file
 * that is no regular file, too big or unreadable fails the record; one that is not valid
 * JSON is imported without claims (json_text finds nothing in it). */
static int load_submission(record_info *ri, cad_err *e) {
    DIR *d = opendir(ri->dir);
    if (!d) return cad_fail(e, CAD_EIO, "%s: %s", ri->dir, strerror(errno));
    struct dirent *de;
    char best[NAME_MAX + 1] = "";
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        size_t l = strlen(n);
        if (strncmp(n, "submission", 10) == 0 && l > 5 && strcmp(n + l - 5, ".json") == 0) {
            /* prefer plain submission.json over submission_<variant>.json */
            if (!best[0] || strcmp(n, "submission.json") == 0 || strcmp(n, best) < 0)
                if (strcmp(best, "submission.json") != 0) snprintf(best, sizeof best, "%s", n);
        }
    }
    closedir(d);
    if (!best[0]) return CAD_OK;
    char p[PATH_MAX + 300];
    snprintf(p, sizeof p, "%s/%s", ri->dir, best);
    int present;
    int rc = record_text(ri, p, "submission", CAD_IMPORT_SUBMISSION_MAX, &ri->submission,
                         &present, e);
    if (!rc) copy_str(ri->submission_file, sizeof ri->submission_file, best);
    return rc;
}

/* The README's first heading, for the sweep description ("" without a README). */
static int readme_title(const record_info *ri, char *out, size_t cap, cad_err *e) {
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/README.md", ri->dir);
    out[0] = 0;
    char *text;
    int present;
    int rc = record_text(ri, p, "README", CAD_IMPORT_README_MAX, &text, &present, e);
    if (rc || !present) return rc;
    for (const char *line = text; *line;) {
        size_t n = strcspn(line, "\n");
        if (line[0] == '#') {
            const char *s = line;
            while (*s == '#' || *s == ' ') s++;
            size_t k = n - (size_t)(s - line);
            while (k && s[k - 1] == '\r') k--;
            if (k >= cap) k = cap - 1;
            memcpy(out, s, k);
            out[k] = 0;
            break;
        }
        line += n + (line[n] == '\n');
    }
    free(text);
    return CAD_OK;
}

/* Report each link that leaves the record (not followed) through fn. */
static void report_outside(const record_info *ri, const record_walk *w, cad_import_record_fn fn,
                           void *ctx) {
    for (int i = 0; i < w->n_outside; i++) {
        cad_err le;
        cad_err_clear(&le);
        const link_out *o = &w->outside[i];
        cad_fail(&le, CAD_EIO,
                 "%s/%s: symbolic link to %s, outside the record folder: not followed", ri->dir,
                 o->rel, o->target);
        cad_import_record_log l = {ri->name, o->rel, NULL, &le, NULL};
        fn(ctx, &l);
    }
}

/* The folder, its logs, its submission and its description: everything before the logs go
 * in. Fails when the record cannot be imported at all. */
static int record_open(const char *dir, record_info *ri, record_walk *w, char *desc, size_t cap,
                       cad_db *db, cad_err *e) {
    if (!realpath(dir, ri->dir)) return cad_fail(e, CAD_EIO, "%s: %s", dir, strerror(errno));
    struct stat st;
    if (stat(ri->dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cad_fail(e, CAD_EIO, "%s: not a directory", dir);
    const char *b = strrchr(ri->dir, '/');
    copy_str(ri->name, sizeof ri->name, b ? b + 1 : ri->dir);
    w->root = ri->dir;
    walk_dir(w, "", 0, 0);
    if (w->oom) return cad_fail(e, CAD_ENOMEM, "out of memory listing %s", dir);
    dedupe_logs(w);
    ri->n_logs = w->n_logs;
    if (w->n_logs == 0) {
        if (w->n_outside)
            return cad_fail(e, CAD_ERR,
                            "%s: no training logs (*.log, *.txt) in the record (%d symbolic "
                            "link%s leaving the folder not followed, e.g. %s -> %s)",
                            dir, w->n_outside, w->n_outside == 1 ? "" : "s", w->outside[0].rel,
                            w->outside[0].target);
        return cad_fail(e, CAD_ERR, "%s: no training logs (*.log, *.txt) in the record", dir);
    }
    int rc = load_submission(ri, e);
    if (!rc) record_level_claim(db, ri);
    if (!rc && !json_text(db, ri->submission, "$.name", desc, cap)) {
        char title[README_TITLE_MAX];
        rc = readme_title(ri, title, sizeof title, e);
        copy_str(desc, cap, title);
    }
    return rc;
}

/* The record's one claim against the parsed scores of the logs that carry it: nothing to
 * say when it is one of them; else a note that it is their mean, or differs from every one
 * (both kept in any case). */
static void record_check_claim(const record_info *ri, const double *scores, int n,
                               cad_import_record_fn fn, void *ctx) {
    double claim = strtod(ri->claim, NULL), tol = claim_tolerance(ri->claim), sum = 0;
    for (int i = 0; i < n; i++) {
        if (fabs(scores[i] - claim) <= tol) return;
        sum += scores[i];
    }
    char note[CAD_IMPORT_NOTE_MAX];
    double mean = sum / n;
    size_t o;
    if (n > 1 && fabs(mean - claim) <= tol)
        o = (size_t)snprintf(note, sizeof note,
                             "claimed val_bpb %s is the mean of the %d parsed scores (%.8f):",
                             ri->claim, n, mean);
    else
        o = (size_t)snprintf(note, sizeof note,
                             "claimed val_bpb %s differs from every parsed score (mean %.8f), "
                             "both kept:", ri->claim, mean);
    for (int i = 0; i < n && o < sizeof note; i++)
        o += (size_t)snprintf(note + o, sizeof note - o, " %.8f", scores[i]);
    cad_import_record_log l = {ri->name, ri->claim_src, NULL, NULL, note};
    fn(ctx, &l);
}

int cad_import_record(cad_db *db, const cad_import_opts *o, const char *dir,
                      cad_import_record_fn fn, void *ctx, cad_err *e) {
    record_info ri;
    memset(&ri, 0, sizeof ri);
    record_walk w;
    memset(&w, 0, sizeof w);
    char desc[DESCRIPTION_MAX] = "";
    int rc = record_open(dir, &ri, &w, desc, sizeof desc, db, e);
    int64_t sweep_id = -1;
    double *scores = NULL; /* parsed scores of the logs that got the record's one claim */
    int n_scores = 0;
    if (!rc) rc = cad_import_sweep(db, ri.name, desc, &sweep_id, e);
    if (!rc) report_outside(&ri, &w, fn, ctx);
    for (int k = 0; k < w.n_logs && !rc; k++) {
        const char *rel = w.logs[k].rel;
        char full[PATH_MAX * 2], stem[PATH_MAX], id_src[PATH_MAX * 2];
        snprintf(full, sizeof full, "%s/%s", ri.dir, rel);
        copy_str(stem, sizeof stem, rel);
        strip_ext(stem);
        snprintf(id_src, sizeof id_src, "%s-%s", ri.name, stem);
        import_job j;
        job_init(&j, db, o);
        j.log_path = full;
        j.run_id_src = id_src;
        j.group_base = ri.name;
        j.stem = stem;
        j.sweep_id = sweep_id;
        j.sweep_name = ri.name;
        j.ri = &ri;
        j.rel_in_record = rel;
        cad_import_result res;
        cad_err le;
        cad_err_clear(&le);
        int r = import_one(&j, &res, &le);
        int claimed_here = !r && !res.skipped && kv_get(&j.params, "record_claimed_val_bpb");
        job_free(&j);
        if (claimed_here && res.has_score) {
            double *ns = realloc(scores, sizeof *scores * (size_t)(n_scores + 1));
            if (ns) (scores = ns)[n_scores++] = res.val_bpb;
        }
        cad_import_record_log l = {ri.name, rel, r ? NULL : &res, r ? &le : NULL, NULL};
        fn(ctx, &l);
    }
    if (!rc && n_scores > 0) record_check_claim(&ri, scores, n_scores, fn, ctx);
    free(scores);
    walk_free(&w);
    free(ri.submission);
    return rc;
}

/*
 * cmd_import.c — `caddie import-log` and `caddie import-record`: bring existing
 * train_gpt.py-style training logs (and Parameter Golf record folders) into the DB.
 *
 * One ingestion path (architecture.md): an imported log first becomes a run directory,
 * runs/imported/<run_id>/ with
 *   log.txt        the log, copied byte for byte
 *   metrics.jsonl  the curves the parser found (db/logparse.h)
 *   result.json    the parsed final numbers (only when the log has a final score)
 *   config.yaml    the hyperparameters the log printed, plus provenance keys
 *                  (source_log, and for records: record, claimed_val_bpb, claim_source, ...)
 * and then goes into the DB like any other run: a runs row (engine "log", status done, or
 * failed when the log has curves but no final evaluation), then cad_ingest_run_dir for
 * metrics/result/artifacts, then run.json so `caddie db rebuild` restores it. A record
 * folder (README.md + submission*.json + logs) becomes a sweep named after the folder with
 * one run per log; logs differing only by seed share a group_hash, so `sweep_groups` gives
 * mean ± std over seeds. The submission's claimed val_bpb for a log (seed_results.<seed>,
 * or the top-level val_bpb of a single-log record) is kept as the param claimed_val_bpb,
 * next to the parsed results.val_bpb.
 *
 * Not here: parsing (db/logparse.c), DB and ingestion internals (db/db.c,
 * db/ingest.c), live runs of the command engine (the runner).
 */
#include "engine/fsutil.h"
#include "cli/cli.h"
#include "db/db.h"
#include "db/ingest.h"
#include "engine/jsonw.h"
#include "db/logparse.h"
#include "engine/sha256.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    else if (is_json_number(v)) fputs(v, f);
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
    fclose(f);
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

static int write_file(const char *path, const char *data, size_t n, cad_err *e) {
    FILE *f = fopen(path, "wb");
    if (!f) return cad_fail(e, CAD_EIO, "%s: cannot write: %s", path, strerror(errno));
    size_t put = fwrite(data, 1, n, f);
    if (fclose(f) != 0 || put != n)
        return cad_fail(e, CAD_EIO, "%s: write failed: %s", path, strerror(errno));
    return CAD_OK;
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
    char num[32];
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
    char name[256];          /* folder base name: the sweep name */
    char *submission;        /* JSON text or NULL */
    char submission_file[64];
    int n_logs;              /* logs found in the folder */
} record_info;

/* json_extract(json, path) as text into out; 1 when found and not null. */
static int json_text(cad_db *db, const char *json, const char *path, char *out, size_t cap) {
    if (!json) return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cad_db_handle(db),
                           "SELECT CASE WHEN json_valid(?1) THEN json_extract(?1, ?2) END", -1,
                           &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
    int ok = 0;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, cap, "%s", t ? (const char *)t : "");
        ok = 1;
    }
    sqlite3_finalize(st);
    return ok;
}

/* The claim for one log of a record: seed_results.<seed> (every multi-seed submission
 * since 2026-03-19 keys its per-seed results so), else the top-level val_bpb when the
 * record has one log or names this log's seed as its `seed`. Pairing is by seed only:
 * the JSON's other per-seed fields are too often copied between seeds to check against
 * (2026-04-08 lists one artifact size for three different artifacts), so a record that
 * holds several configurations run with the same seed pairs each of them with the claim
 * (tests/fixtures/logs/EXCEPTIONS.md lists the one case in the fixtures). */
static void record_claim(cad_db *db, const record_info *ri, long seed, int has_seed,
                         kv_list *prov) {
    char v[64], path[128], src[256];
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
    char seed_txt[32] = "";
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

/* ---- one log -> run dir -> DB ---------------------------------------------------------- */

typedef struct import_opts {
    const char *runs_dir;   /* parent of imported/ */
    int replace;
} import_opts;

typedef struct metric_sink {
    FILE *f;
    long n;
} metric_sink;

static int sink_metric(void *ctx, const cad_log_metric *m) {
    metric_sink *s = ctx;
    cad_metric cm;
    memcpy(cm.name, m->name, sizeof cm.name);
    cm.step = m->step;
    cm.value = m->value;
    cm.wall_ms = m->wall_ms;
    cad_ingest_write_metric(s->f, &cm);
    s->n++;
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
        else if (is_json_number(l->v[i].value)) fputs(l->v[i].value, f);
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

/* Import one log. label is the readable source name used for run_id ("<record>-<path>")
 * and group; sweep_id -1 for none. Prints one line per run. *skipped = 1 when the file
 * has no training output at all (not a log). */
static int import_one(cad_db *db, const import_opts *o, const char *log_path,
                      const char *run_id_src, const char *group_base, const char *stem,
                      int64_t sweep_id,
                      const char *sweep_name, const record_info *ri, const char *rel_in_record,
                      int *skipped, cad_err *e) {
    *skipped = 0;
    size_t len;
    char *text;
    int read_rc = cad_read_file(log_path, &text, &len, e);
    if (read_rc) return read_rc;

    char run_id[CAD_RUN_ID_MAX];
    sanitize_id(run_id_src, run_id, sizeof run_id);
    char run_dir[PATH_MAX], abs_runs[PATH_MAX];
    if (!realpath(o->runs_dir, abs_runs)) {
        int rc = cad_mkdir_p(o->runs_dir, e);
        if (rc || !realpath(o->runs_dir, abs_runs)) {
            free(text);
            return rc ? rc : cad_fail(e, CAD_EIO, "%s: %s", o->runs_dir, strerror(errno));
        }
    }
    if (snprintf(run_dir, sizeof run_dir, "%s/imported/%s", abs_runs, run_id) >= (int)sizeof run_dir) {
        free(text);
        return cad_fail(e, CAD_EIO, "%s/imported/%s: path too long", abs_runs, run_id);
    }

    int exists = cad_db_run_exists(db, run_id, e);
    if (exists < 0) {
        free(text);
        return e->code ? e->code : CAD_EDB;
    }
    if (exists && !o->replace) {
        free(text);
        return cad_fail(e, CAD_ERR, "run '%s' already exists (from %s); --replace re-imports it",
                        run_id, log_path);
    }

    /* parse first: a file with no training output is not imported */
    cad_logparse *p = cad_logparse_new();
    if (!p) {
        free(text);
        return cad_fail(e, CAD_ENOMEM, "out of memory parsing %s", log_path);
    }
    char tmp_metrics[PATH_MAX];
    int rc = cad_mkdir_p(run_dir, e);
    if (rc) {
        cad_logparse_free(p);
        free(text);
        return rc;
    }
    if (snprintf(tmp_metrics, sizeof tmp_metrics, "%s/metrics.jsonl", run_dir) >= (int)sizeof tmp_metrics) {
        cad_logparse_free(p);
        free(text);
        return cad_fail(e, CAD_EIO, "%s: path too long", run_dir);
    }
    metric_sink sink = {fopen(tmp_metrics, "wb"), 0};
    if (!sink.f) {
        rc = cad_fail(e, CAD_EIO, "%s: cannot write: %s", tmp_metrics, strerror(errno));
        cad_logparse_free(p);
        free(text);
        return rc;
    }
    cad_logparse_feed(p, text, len, sink_metric, &sink);
    cad_logparse_finish(p, sink_metric, &sink);
    if (fclose(sink.f) != 0) rc = cad_fail(e, CAD_EIO, "%s: write failed", tmp_metrics);
    cad_log_summary s;
    cad_logparse_summary(p, &s);
    if (!rc && sink.n == 0 && !s.has_score) {
        *skipped = 1;
        remove_run_dir(run_dir);
        cad_logparse_free(p);
        free(text);
        return CAD_OK;
    }

    /* hyperparameters + provenance */
    kv_list params = {0};
    for (int i = 0; i < cad_logparse_param_count(p); i++) {
        const char *k, *v;
        cad_logparse_param_get(p, i, &k, &v);
        if (kv_set(&params, k, v)) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    long seed = s.seed;
    int has_seed = s.seed >= 0;
    if (!has_seed) has_seed = seed_from_name(rel_in_record ? rel_in_record : run_id_src, &seed);
    if (has_seed) {
        char sb[32];
        snprintf(sb, sizeof sb, "%ld", seed);
        kv_set(&params, "seed", sb);
    }
    char abs_log[PATH_MAX];
    if (!realpath(log_path, abs_log)) snprintf(abs_log, sizeof abs_log, "%s", log_path);
    kv_set(&params, "source_log", rel_in_record ? rel_in_record : abs_log);
    if (ri) {
        kv_set(&params, "record", ri->name);
        char v[512];
        if (json_text(db, ri->submission, "$.track", v, sizeof v)) kv_set(&params, "record_track", v);
        if (json_text(db, ri->submission, "$.author", v, sizeof v)) kv_set(&params, "record_author", v);
        record_claim(db, ri, seed, has_seed, &params);
    }
    if (s.has_score) kv_set(&params, "score_line", s.score_line_kind);

    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/log.txt", run_dir);
    if (!rc) rc = write_file(path, text, len, e);
    snprintf(path, sizeof path, "%s/config.yaml", run_dir);
    if (!rc) rc = write_config_yaml(path, &params, e);
    snprintf(path, sizeof path, "%s/result.json", run_dir);
    unlink(path);
    if (!rc && s.has_score) {
        cad_result r;
        cad_ingest_result_from_log(&r, &s);
        rc = cad_ingest_write_result(path, run_id, &r, e);
    }

    /* the DB: the runs row, then the one ingestion path */
    char *config = rc ? NULL : kv_to_json(&params);
    if (!rc && !config) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    char config_hash[65], group_hash[65];
    if (!rc) {
        char *hin = NULL;
        size_t hl = 0;
        FILE *hf = open_memstream(&hin, &hl);
        fprintf(hf, "log\n%s", config);
        fclose(hf);
        cad_sha256_hex(hin, hl, config_hash);
        free(hin);
        char gstem[PATH_MAX], gb[PATH_MAX * 3];
        group_stem(stem, has_seed, seed, gstem, sizeof gstem);
        int gl = snprintf(gb, sizeof gb, "log-group\n%s/%s", group_base, gstem);
        cad_sha256_hex(gb, (size_t)gl, group_hash);
    }
    char reason[PATH_MAX + 64];
    snprintf(reason, sizeof reason, "imported from %s", abs_log);
    char label[256];
    snprintf(label, sizeof label, "%s", rel_in_record ? rel_in_record : run_id_src);
    int began = 0;
    if (!rc) {
        rc = cad_db_begin(db, e);
        began = rc == CAD_OK;
    }
    if (!rc && exists) rc = cad_db_delete_run(db, run_id, e);
    if (!rc) {
        cad_run_new rn;
        memset(&rn, 0, sizeof rn);
        rn.run_id = run_id;
        rn.sweep_id = sweep_id;
        rn.name = label;
        rn.engine = "log";
        rn.config = config;
        rn.config_hash = config_hash;
        rn.group_hash = group_hash;
        rn.has_seed = has_seed;
        rn.seed = seed;
        rn.status = s.has_score ? CAD_RUN_DONE : CAD_RUN_FAILED;
        rn.devices_requested = 1;
        rn.git_dirty = -1;
        rn.run_dir = run_dir;
        rn.reason = reason;
        rc = cad_db_insert_run(db, &rn, e);
    }
    if (!rc && !s.has_score)
        rc = cad_db_set_error(db, run_id, "imported log has no final evaluation line", e);
    if (!rc) {
        cad_ingest_state st;
        cad_ingest_state_init(&st);
        rc = cad_ingest_run_dir(db, run_id, run_dir, &st, e);
    }
    if (!rc) rc = cad_db_commit(db, e);
    else if (began) cad_db_rollback(db);
    if (!rc) rc = cad_db_write_run_json(db, run_id, e);
    if (rc) {
        if (!exists) remove_run_dir(run_dir);
    } else {
        const char *claimed = "-";
        for (int i = 0; i < params.n; i++)
            if (strcmp(params.v[i].key, "claimed_val_bpb") == 0) claimed = params.v[i].value;
        char bpb[32];
        if (s.has_score) snprintf(bpb, sizeof bpb, "%.8f", s.val_bpb);
        else snprintf(bpb, sizeof bpb, "-");
        printf("%s\t%s\t%s\t%s\t%s\t%s\n", run_id, s.has_score ? "done" : "failed", bpb, claimed,
               s.has_score ? s.score_line_kind : "no final evaluation line",
               sweep_name ? sweep_name : "-");
    }
    free(config);
    kv_free(&params);
    cad_logparse_free(p);
    free(text);
    return rc;
}

/* $CADDIE_RUNS or ./runs, as for every command that writes run directories. */
static const char *default_runs_dir(void) {
    const char *env = getenv("CADDIE_RUNS");
    return env && *env ? env : "runs";
}

/* The sweep's id, creating it when new. An existing sweep is left as it is: importing
 * logs into a sweep queued from a YAML file must not blank its spec. */
static int64_t ensure_sweep(cad_db *db, const char *name, const char *description, int *rc,
                            cad_err *e) {
    int64_t id = -1;
    cad_err probe;
    cad_err_clear(&probe);
    if (cad_db_sweep_id(db, name, &id, &probe) == CAD_OK) {
        *rc = CAD_OK;
        return id;
    }
    *rc = cad_db_sweep_upsert(db, name, description ? description : "", "", "", &id, e);
    return id;
}

/* ---- import-log ---------------------------------------------------------------------- */

static void print_header(void) {
    printf("run_id\tstatus\tval_bpb\tclaimed_val_bpb\tscore_line\tsweep\n");
}

int cmd_import_log(int argc, char **argv) {
    static const struct option opts[] = {{"sweep", required_argument, 0, 's'},
                                         {"db", required_argument, 0, 'd'},
                                         {"runs-dir", required_argument, 0, 'r'},
                                         {"replace", no_argument, 0, 'R'},
                                         {0, 0, 0, 0}};
    const char *sweep = NULL, *dbpath = NULL;
    import_opts o = {default_runs_dir(), 0};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': sweep = optarg; break;
        case 'd': dbpath = optarg; break;
        case 'r': o.runs_dir = optarg; break;
        case 'R': o.replace = 1; break;
        default: return cli_usage_error("import-log", "unknown option");
        }
    }
    if (optind >= argc) return cli_usage_error("import-log", "expected at least one log FILE");
    if (sweep && !*sweep) return cli_usage_error("import-log", "--sweep needs a name");
    cad_err e;
    cad_err_clear(&e);
    cad_db *db;
    if (cad_db_open(cad_db_path(dbpath), 0, &db, &e))
        return cli_fail("import-log", "%s", e.msg);
    int64_t sweep_id = -1;
    int rc = CAD_OK;
    if (sweep) {
        sweep_id = ensure_sweep(db, sweep, "imported training logs", &rc, &e);
        if (rc) {
            cad_db_close(db);
            return cli_fail("import-log", "%s", e.msg);
        }
    }
    int failures = 0, imported = 0;
    print_header();
    for (int i = optind; i < argc; i++) {
        const char *f = argv[i];
        /* run id and group: "<parent dir>-<file stem>" keeps the many train.log apart */
        char abs[PATH_MAX];
        if (!realpath(f, abs)) {
            fprintf(stderr, "caddie import-log: %s: %s\n", f, strerror(errno));
            failures++;
            continue;
        }
        char stem[PATH_MAX], parent[PATH_MAX];
        const char *base = strrchr(abs, '/');
        snprintf(stem, sizeof stem, "%s", base ? base + 1 : abs);
        strip_ext(stem);
        snprintf(parent, sizeof parent, "%.*s", base ? (int)(base - abs) : 0, abs);
        const char *pb = strrchr(parent, '/');
        pb = pb ? pb + 1 : parent;
        char id_src[PATH_MAX * 2];
        snprintf(id_src, sizeof id_src, "%s%s%s", sweep ? sweep : pb, "-", stem);
        int skipped;
        cad_err_clear(&e);
        rc = import_one(db, &o, f, id_src, parent, stem, sweep_id, sweep, NULL, NULL, &skipped, &e);
        if (rc) {
            fprintf(stderr, "caddie import-log: %s\n", e.msg);
            failures++;
        } else if (skipped) {
            fprintf(stderr, "caddie import-log: %s: no training output recognised (no step or final evaluation lines)\n", f);
            failures++;
        } else {
            imported++;
        }
    }
    cad_db_close(db);
    fprintf(stderr, "caddie import-log: %d imported, %d failed\n", imported, failures);
    return failures ? 1 : 0;
}

/* ---- import-record ------------------------------------------------------------------- */

typedef struct path_list {
    char **v;
    int n, cap;
} path_list;

static int path_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_log_name(const char *name) {
    size_t n = strlen(name);
    if (strcmp(name, "requirements.txt") == 0) return 0;
    return (n > 4 && (strcmp(name + n - 4, ".log") == 0 || strcmp(name + n - 4, ".txt") == 0));
}

/* Logs under dir (recursive), as paths relative to root. */
static int find_logs(const char *root, const char *rel, path_list *out, int depth) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char sub[PATH_MAX], full[PATH_MAX * 2];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat st;
        if (stat(full, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < 4) find_logs(root, sub, out, depth + 1);
        } else if (S_ISREG(st.st_mode) && is_log_name(de->d_name)) {
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 16;
                out->v = realloc(out->v, (size_t)out->cap * sizeof *out->v);
                if (!out->v) {
                    closedir(d);
                    return -1;
                }
            }
            out->v[out->n++] = strdup(sub);
        }
    }
    closedir(d);
    return 0;
}

static void load_submission(record_info *ri) {
    DIR *d = opendir(ri->dir);
    if (!d) return;
    struct dirent *de;
    char best[256] = "";
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
    if (!best[0]) return;
    char p[PATH_MAX + 300];
    snprintf(p, sizeof p, "%s/%s", ri->dir, best);
    cad_err ignored; /* a record without a readable submission.json is imported without claims */
    if (cad_read_file(p, &ri->submission, NULL, &ignored)) ri->submission = NULL;
    copy_str(ri->submission_file, sizeof ri->submission_file, best);
}

/* The README's first heading, for the sweep description. */
static void readme_title(const char *dir, char *out, size_t cap) {
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/README.md", dir);
    out[0] = 0;
    FILE *f = fopen(p, "rb");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') {
            char *s = line;
            while (*s == '#' || *s == ' ') s++;
            s[strcspn(s, "\r\n")] = 0;
            snprintf(out, cap, "%s", s);
            break;
        }
    }
    fclose(f);
}

int cmd_import_record(int argc, char **argv) {
    static const struct option opts[] = {{"db", required_argument, 0, 'd'},
                                         {"runs-dir", required_argument, 0, 'r'},
                                         {"replace", no_argument, 0, 'R'},
                                         {0, 0, 0, 0}};
    const char *dbpath = NULL;
    import_opts o = {default_runs_dir(), 0};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dbpath = optarg; break;
        case 'r': o.runs_dir = optarg; break;
        case 'R': o.replace = 1; break;
        default: return cli_usage_error("import-record", "unknown option");
        }
    }
    if (optind >= argc) return cli_usage_error("import-record", "expected at least one record DIR");
    cad_err e;
    cad_err_clear(&e);
    cad_db *db;
    if (cad_db_open(cad_db_path(dbpath), 0, &db, &e))
        return cli_fail("import-record", "%s", e.msg);
    int failures = 0, imported = 0;
    print_header();
    for (int i = optind; i < argc; i++) {
        record_info ri;
        memset(&ri, 0, sizeof ri);
        if (!realpath(argv[i], ri.dir)) {
            fprintf(stderr, "caddie import-record: %s: %s\n", argv[i], strerror(errno));
            failures++;
            continue;
        }
        struct stat st;
        if (stat(ri.dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "caddie import-record: %s: not a directory\n", argv[i]);
            failures++;
            continue;
        }
        const char *b = strrchr(ri.dir, '/');
        copy_str(ri.name, sizeof ri.name, b ? b + 1 : ri.dir);
        load_submission(&ri);
        path_list logs = {0};
        find_logs(ri.dir, "", &logs, 0);
        if (logs.n > 1) qsort(logs.v, (size_t)logs.n, sizeof *logs.v, path_cmp);
        ri.n_logs = logs.n;
        if (logs.n == 0) {
            fprintf(stderr, "caddie import-record: %s: no training logs (*.log, *.txt) in the record\n",
                    argv[i]);
            failures++;
        }
        char desc[512] = "", title[400];
        if (!json_text(db, ri.submission, "$.name", desc, sizeof desc)) {
            readme_title(ri.dir, title, sizeof title);
            snprintf(desc, sizeof desc, "%s", title);
        }
        int rc = CAD_OK;
        int64_t sweep_id = logs.n ? ensure_sweep(db, ri.name, desc, &rc, &e) : -1;
        if (rc) {
            fprintf(stderr, "caddie import-record: %s\n", e.msg);
            failures++;
        }
        for (int k = 0; k < logs.n && !rc; k++) {
            char full[PATH_MAX * 2], stem[PATH_MAX], id_src[PATH_MAX * 2];
            snprintf(full, sizeof full, "%s/%s", ri.dir, logs.v[k]);
            snprintf(stem, sizeof stem, "%s", logs.v[k]);
            strip_ext(stem);
            snprintf(id_src, sizeof id_src, "%s-%s", ri.name, stem);
            int skipped;
            cad_err_clear(&e);
            int r = import_one(db, &o, full, id_src, ri.name, stem, sweep_id, ri.name, &ri, logs.v[k],
                               &skipped, &e);
            if (r) {
                fprintf(stderr, "caddie import-record: %s\n", e.msg);
                failures++;
            } else if (skipped) {
                fprintf(stderr, "caddie import-record: %s/%s: skipped, no training output (no step or final evaluation lines)\n",
                        ri.name, logs.v[k]);
            } else {
                imported++;
            }
        }
        for (int k = 0; k < logs.n; k++) free(logs.v[k]);
        free(logs.v);
        free(ri.submission);
    }
    cad_db_close(db);
    fprintf(stderr, "caddie import-record: %d runs imported, %d failed\n", imported, failures);
    return failures ? 1 : 0;
}

/*
 * cmd_report.c — the reporting commands: `caddie report` (one HTML file), `caddie top`,
 * `caddie compare A B`, `caddie seeds-needed` (aligned terminal tables) and
 * `caddie export-submission` (what a record PR needs: submission.json, README.md, logs).
 *
 * All of them load the same cad_report_data (reports/report.h) from the DB's public views, so the
 * page and the terminal agree on every number. The database is opened through db/db.h
 * (migrations apply) and then switched to query_only: reports never write. The cad_db goes to
 * reports/, which reads it through db/views.h; nothing here touches SQLite.
 * Not here: statistics (stats.c), grouping, selections and seed planning (report.c), the page
 * (report_html.c), the record folder's logs and README (submission.c). Each command's usage text
 * and option table sit beside its code below.
 */
#include "cli/cli.h"
#include "db/db.h"
#include "engine/config.h"
#include "engine/jsonw.h"
#include "reports/matched.h"
#include "reports/report.h"
#include "reports/submission.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SWEEP_ARGS 64
/* compare's seed planner stops here (seeds-needed goes to CAD_REPORT_MAX_SEEDS). */
#define COMPARE_MAX_SEEDS 1000

/* ---- shared plumbing ---------------------------------------------------------------------- */

typedef struct report_args {
    const char *db;
    const char *sweeps[MAX_SWEEP_ARGS];
    int n_sweeps;
    const char *where;
    const char *ref;
} report_args;

/* Open the DB (it must exist: a report of a fresh empty file helps nobody), migrate, and make
 * the connection read-only for everything after. */
static int open_for_reading(const char *cmd, const char *opt_db, cad_db **db) {
    cad_err e = {0};
    if (cad_db_open(cad_db_path(opt_db), CAD_DB_MUST_EXIST, db, &e) != CAD_OK) return cli_fail(cmd, "%s", e.msg);
    if (cad_db_exec(*db, "PRAGMA query_only = ON;", &e) != CAD_OK) {
        cad_db_close(*db);
        return cli_fail(cmd, "%s", e.msg);
    }
    return 0;
}

/* The reports' key_default: a caddie key's default as the params table shows it (numbers and
 * booleans through their number, "%.10g"; strings and lists as written). */
static int engine_key_default(const char *key, char *text, size_t cap, double *num) {
    const cad_config_key *k = cad_config_key_find(key);
    if (!k) return 0;
    *num = NAN;
    if (k->type == CAD_KEY_INT || k->type == CAD_KEY_FLOAT || k->type == CAD_KEY_BOOL) {
        char *end;
        double v = strtod(k->def, &end);
        if (end != k->def && !*end) {
            *num = v;
            snprintf(text, cap, "%.10g", v);
            return 1;
        }
    }
    snprintf(text, cap, "%s", k->def);
    return 1;
}

static int load_data(const char *cmd, cad_db *db, const report_args *a, cad_report_data *d) {
    cad_report_query q = {a->sweeps, a->n_sweeps, a->where, a->ref, engine_key_default};
    cad_err e = {0};
    int rc = cad_report_data_load(db, &q, d, &e);
    if (rc == CAD_EUSAGE) return cli_usage_error(cmd, "%s", e.msg);
    if (rc) return cli_fail(cmd, "%s", e.msg);
    for (int i = 0; i < a->n_sweeps; i++) {
        int found = 0;
        for (int s = 0; s < d->n_sweeps && !found; s++) found = !strcmp(d->sweeps[s].name, a->sweeps[i]);
        if (!found) {
            cad_report_data_free(d);
            return cli_fail(cmd, "no runs in sweep '%s'%s", a->sweeps[i], a->where ? " matching --runs" : "");
        }
    }
    return 0;
}

/* "2026-11-22 08:01 UTC" and the like. */
#define TIME_TEXT_MAX 64

/* The "generated" time of a page: SOURCE_DATE_EPOCH when set (reproducible output), else now. */
static void timestamp_utc(char *buf, size_t n, const char *fmt) {
    time_t t = time(NULL);
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    if (sde && *sde) t = (time_t)strtoll(sde, NULL, 10);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, fmt, &tm);
}

/* ---- aligned terminal tables -------------------------------------------------------------- */

#define TBL_MAX_COLS 16
#define TBL_CELL 96

typedef struct tbl {
    int ncols, nrows, cap;
    const char *head[TBL_MAX_COLS];
    int right[TBL_MAX_COLS]; /* 1: right-aligned (numbers) */
    char (*cells)[TBL_MAX_COLS][TBL_CELL];
} tbl;

static size_t utf8_width(const char *s) {
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

static void tbl_col(tbl *t, const char *head, int right) {
    t->head[t->ncols] = head;
    t->right[t->ncols] = right;
    t->ncols++;
}

static char (*tbl_row(tbl *t))[TBL_CELL] {
    if (t->nrows == t->cap) {
        int nc = t->cap ? t->cap * 2 : 16;
        void *p = realloc(t->cells, (size_t)nc * sizeof *t->cells);
        if (!p) return NULL;
        t->cells = p;
        t->cap = nc;
    }
    memset(t->cells[t->nrows], 0, sizeof t->cells[t->nrows]);
    return t->cells[t->nrows++];
}

static void tbl_print(const tbl *t, FILE *f) {
    size_t w[TBL_MAX_COLS];
    for (int c = 0; c < t->ncols; c++) {
        w[c] = utf8_width(t->head[c]);
        for (int r = 0; r < t->nrows; r++)
            if (utf8_width(t->cells[r][c]) > w[c]) w[c] = utf8_width(t->cells[r][c]);
    }
    for (int r = -1; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *s = r < 0 ? t->head[c] : t->cells[r][c];
            size_t pad = w[c] - utf8_width(s);
            if (t->right[c]) fprintf(f, "%*s%s", (int)pad, "", s);
            else if (c < t->ncols - 1) fprintf(f, "%s%*s", s, (int)pad, "");
            else fputs(s, f);
            if (c < t->ncols - 1) fputs("  ", f);
        }
        fputc('\n', f);
    }
}

static void tbl_free(tbl *t) {
    free(t->cells);
}

static void cell_label(char *cell, const char *label) {
    size_t len = strlen(label);
    if (len < 44) snprintf(cell, TBL_CELL, "%s", label);
    else snprintf(cell, TBL_CELL, "...%s", label + len - 40);
}

static const char *verdict_word(int v) {
    return v == 1 ? "yes" : v == 0 ? "no" : "-";
}

/* ---- report ------------------------------------------------------------------------------- */

enum report_opt { REP_SWEEP, REP_RUNS, REP_REF, REP_OUT, REP_LOG_X, REP_MAX_GROUPS, REP_DB };
static const cli_opt report_opts[] = {
    {REP_SWEEP, "sweep", 0, "NAME", "only this sweep (repeatable; default: every sweep)"},
    {REP_RUNS, "runs", 0, "SQL-WHERE",
     "only runs matching an SQL expression over run_summary columns,\n"
     "e.g. --runs \"started_at > '2026-04-20'\""},
    {REP_REF, "ref", 0, "GROUP",
     "reference group: group hash (or prefix), run id, run name or label\n"
     "(default: a group named baseline, else the first group that ran)"},
    {REP_OUT, "out", 'o', "FILE.html", "output file (default report.html; - for stdout)"},
    {REP_LOG_X, "log-x", 0, NULL, "log-scaled step axis for the loss curves"},
    {REP_MAX_GROUPS, "max-groups", 0, "N", "groups drawn in the curve charts, 1..8 (default 8)"},
    CLI_OPT_DB(REP_DB),
    CLI_OPT_END,
};

static int cmd_report(int argc, char **argv) {
    report_args a = {0};
    const char *out = "report.html";
    cad_report_html_options ho = {0};
    ho.max_curve_groups = 8;
    int id;
    cli_parser p;
    cli_parser_init(&p, &cmd_report_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum report_opt)id) {
        case REP_SWEEP:
            if (a.n_sweeps == MAX_SWEEP_ARGS) return cli_usage_error("report", "too many --sweep options");
            a.sweeps[a.n_sweeps++] = p.arg;
            break;
        case REP_RUNS: a.where = p.arg; break;
        case REP_REF: a.ref = p.arg; break;
        case REP_OUT: out = p.arg; break;
        case REP_DB: a.db = p.arg; break;
        case REP_LOG_X: ho.log_x = 1; break;
        case REP_MAX_GROUPS:
            if (cli_parse_int(p.arg, 1, 8, &ho.max_curve_groups))
                return cli_usage_error("report", "--max-groups wants 1..8, got '%s'", p.arg);
            break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind < argc) return cli_usage_error("report", "unexpected argument '%s'", argv[p.ind]);
    cad_db *db;
    if (open_for_reading("report", a.db, &db)) return 1;
    cad_report_data d;
    int rc = load_data("report", db, &a, &d);
    if (rc) {
        cad_db_close(db);
        return rc;
    }
    char when[TIME_TEXT_MAX];
    timestamp_utc(when, sizeof when, "%Y-%m-%d %H:%M UTC");
    ho.db_path = cad_db_file(db);
    ho.generated_at = when;
    int to_stdout = !strcmp(out, "-");
    char tmp[PATH_MAX];
    FILE *f = stdout;
    if (!to_stdout) {
        if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid()) >= (int)sizeof tmp) {
            cad_report_data_free(&d);
            cad_db_close(db);
            return cli_fail("report", "%s: path too long", out);
        }
        f = fopen(tmp, "w");
        if (!f) {
            cad_report_data_free(&d);
            cad_db_close(db);
            return cli_fail("report", "%s: cannot write: %s", tmp, strerror(errno));
        }
    }
    cad_err e = {0};
    rc = cad_report_html_write(db, &d, &ho, f, &e);
    if (!to_stdout) {
        if (fclose(f) != 0 && !rc) rc = cad_fail(&e, CAD_EIO, "%s: write failed: %s", tmp, strerror(errno));
        if (!rc && rename(tmp, out) != 0) rc = cad_fail(&e, CAD_EIO, "%s: cannot rename to %s: %s", tmp, out, strerror(errno));
        if (rc) unlink(tmp);
    }
    if (!rc && !to_stdout)
        printf("wrote %s: %d sweep%s, %d runs, %d config groups\n", out, d.n_sweeps, d.n_sweeps == 1 ? "" : "s",
               d.n_runs, d.n_groups);
    cad_report_data_free(&d);
    cad_db_close(db);
    return rc ? cli_fail("report", "%s", e.msg) : 0;
}

const cli_command cmd_report_def = {
    .name = "report",
    .fn = cmd_report,
    .summary = "write one self-contained HTML report: groups, seed statistics, curves, budgets",
    .synopsis = (const char *const[]){"[--sweep NAME]... [--runs SQL-WHERE] [--ref GROUP] [--out FILE.html]\n"
                                      "[--log-x] [--max-groups N] [--db FILE]",
                                      NULL},
    .description =
        "Groups runs by config (seeds aggregated) and writes one HTML file (inline SVG + CSS, no\n"
        "network): per group n, mean ± std val_bpb, Δ vs the reference group, one-sided Welch p,\n"
        "the record bar (0.005 nats at p < 0.01) and the frontier rule (p < 0.25), budgets\n"
        "(16,000,000 bytes, 600 s train/eval); loss curves with seed bands; val_bpb against every\n"
        "swept parameter (heatmap for two); artifact, time and throughput bars; failed runs.\n",
    .opts = report_opts,
};

/* ---- top ---------------------------------------------------------------------------------- */

static void group_cells(const cad_report_data *d, const cad_report_group *g, char (*row)[TBL_CELL], int *c) {
    cell_label(row[(*c)++], g->label);
    snprintf(row[(*c)++], TBL_CELL, "%.12s", g->group_hash);
    snprintf(row[(*c)++], TBL_CELL, "%d", g->n_runs);
    if (isfinite(g->bpb.std)) snprintf(row[(*c)++], TBL_CELL, "%.5f ± %.5f", g->bpb.mean, g->bpb.std);
    else snprintf(row[(*c)++], TBL_CELL, "%.5f", g->bpb.mean);
    snprintf(row[(*c)++], TBL_CELL, "%.5f", g->bpb.min);
    if (g->cmp.has) {
        cad_report_fmt_signed(row[(*c)++], TBL_CELL, g->cmp.bpb.delta, 4);
        cad_report_fmt_signed(row[(*c)++], TBL_CELL, g->cmp.delta_nats, 4);
        cad_report_fmt_p(row[(*c)++], TBL_CELL, g->cmp.bpb.p);
        snprintf(row[(*c)++], TBL_CELL, "%s", verdict_word(g->cmp.clears_bar));
        snprintf(row[(*c)++], TBL_CELL, "%s", verdict_word(g->cmp.frontier));
    } else {
        snprintf(row[(*c)++], TBL_CELL, "ref");
        for (int k = 0; k < 4; k++) snprintf(row[(*c)++], TBL_CELL, "-");
    }
    cad_report_fmt_bytes(row[(*c)++], TBL_CELL, g->max_artifact_bytes);
    if (g->n_invalid) snprintf(row[(*c)++], TBL_CELL, "NO (%d/%d over)", g->n_invalid, g->n_runs);
    else if (g->n_valid == g->n_runs) snprintf(row[(*c)++], TBL_CELL, "yes");
    else snprintf(row[(*c)++], TBL_CELL, "?");
    (void)d;
}

static void top_columns(tbl *t, int with_sweep) {
    tbl_col(t, "#", 1);
    if (with_sweep) tbl_col(t, "sweep", 0);
    tbl_col(t, "group", 0);
    tbl_col(t, "hash", 0);
    tbl_col(t, "n", 1);
    tbl_col(t, "val_bpb mean ± std", 1);
    tbl_col(t, "best", 1);
    tbl_col(t, "Δbpb", 1);
    tbl_col(t, "Δnats", 1);
    tbl_col(t, "p", 1);
    tbl_col(t, "bar", 1);
    tbl_col(t, "frontier", 1);
    tbl_col(t, "bytes", 1);
    tbl_col(t, "valid", 0);
}

enum top_opt { TOP_SWEEP, TOP_N, TOP_RUNS, TOP_REF, TOP_DB };
static const cli_opt top_opts[] = {
    {TOP_SWEEP, "sweep", 0, "NAME", "only this sweep (repeatable)"},
    {TOP_N, NULL, 'n', "N", "show the N best groups (default 10)"},
    {TOP_RUNS, "runs", 0, "SQL-WHERE", "only runs matching an SQL expression over run_summary columns"},
    {TOP_REF, "ref", 0, "GROUP", "reference group for Δ and p (default as in 'caddie report')"},
    CLI_OPT_DB(TOP_DB),
    CLI_OPT_END,
};

static int cmd_top(int argc, char **argv) {
    report_args a = {0};
    int top_n = 10, id;
    cli_parser p;
    cli_parser_init(&p, &cmd_top_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum top_opt)id) {
        case TOP_SWEEP:
            if (a.n_sweeps == MAX_SWEEP_ARGS) return cli_usage_error("top", "too many --sweep options");
            a.sweeps[a.n_sweeps++] = p.arg;
            break;
        case TOP_RUNS: a.where = p.arg; break;
        case TOP_REF: a.ref = p.arg; break;
        case TOP_DB: a.db = p.arg; break;
        case TOP_N:
            if (cli_parse_int(p.arg, 1, 100000, &top_n)) return cli_usage_error("top", "-n wants a positive count, got '%s'", p.arg);
            break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind < argc) return cli_usage_error("top", "unexpected argument '%s'", argv[p.ind]);
    cad_db *db;
    if (open_for_reading("top", a.db, &db)) return 1;
    cad_report_data d;
    int rc = load_data("top", db, &a, &d);
    if (rc) {
        cad_db_close(db);
        return rc;
    }
    if (d.n_groups == 0) {
        printf("no finished runs with a val_bpb%s\n", a.n_sweeps ? " in this selection" : " yet");
        cad_report_data_free(&d);
        cad_db_close(db);
        return 0;
    }
    int with_sweep = d.n_sweeps > 1;
    tbl t = {0};
    top_columns(&t, with_sweep);
    for (int g = 0; g < d.n_groups && g < top_n; g++) {
        char(*row)[TBL_CELL] = tbl_row(&t);
        if (!row) break;
        int col = 0;
        snprintf(row[col++], TBL_CELL, "%d", g + 1);
        if (with_sweep) snprintf(row[col++], TBL_CELL, "%s", d.groups[g].sweep[0] ? d.groups[g].sweep : "(none)");
        group_cells(&d, &d.groups[g], row, &col);
    }
    tbl_print(&t, stdout);
    tbl_free(&t);
    printf("\n%d of %d groups. Δ and p vs each sweep's reference:", d.n_groups < top_n ? d.n_groups : top_n, d.n_groups);
    for (int s = 0; s < d.n_sweeps; s++)
        if (d.sweeps[s].ref_group >= 0)
            printf("%s %s%s%s", s ? ";" : "", with_sweep ? (d.sweeps[s].name[0] ? d.sweeps[s].name : "(none)") : "",
                   with_sweep ? ": " : "",
                   d.groups[d.sweeps[s].ref_group].label);
    printf(".\np: one-sided Welch t-test on val_bpb; bar: better by more than 0.005 nats (in bpb via\n"
           "val_loss/val_bpb) at p < 0.01; frontier: p < 0.25; valid: bytes <= 16,000,000, train and eval <= 600 s.\n");
    cad_report_data_free(&d);
    cad_db_close(db);
    return 0;
}

const cli_command cmd_top_def = {
    .name = "top",
    .fn = cmd_top,
    .summary = "the best config groups as an aligned table, with the same statistics as the report",
    .synopsis = (const char *const[]){"[--sweep NAME]... [-n N] [--runs SQL-WHERE] [--ref GROUP] [--db FILE]", NULL},
    .opts = top_opts,
};

/* ---- compare ------------------------------------------------------------------------------ */

/* "n (seed, seed, ...)" text of a selection. */
#define SEEDS_TEXT_MAX 64
/* A formatted p-value or signed difference ("+0.00123", "<1e-6"). */
#define NUM_TEXT_MAX 32

static void seeds_text(const cad_report_data *d, const cad_report_group *g, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < g->n_runs && o < n; i++) {
        const cad_report_run *r = &d->runs[g->runs[i]];
        if (r->has_seed) o += (size_t)snprintf(buf + o, n - o, "%s%lld", o ? ", " : "", r->seed);
    }
}

/* One cell of the A/B table: row r of selection g. */
static void compare_cell(const cad_report_data *d, const cad_report_group *g, int is_run, const char *what, int r,
                         char *cell) {
    switch (r) {
    case 0: snprintf(cell, TBL_CELL, "%s %s", is_run ? "run" : "group", what); break;
    case 1: cell_label(cell, is_run ? d->groups[d->runs[g->runs[0]].group].label : g->label); break;
    case 2: {
        char s[SEEDS_TEXT_MAX];
        seeds_text(d, g, s, sizeof s);
        snprintf(cell, TBL_CELL, "%d (%s)", g->n_runs, s);
        break;
    }
    case 3:
        if (isfinite(g->bpb.std)) snprintf(cell, TBL_CELL, "%.5f ± %.5f", g->bpb.mean, g->bpb.std);
        else snprintf(cell, TBL_CELL, "%.5f", g->bpb.mean);
        break;
    case 4: snprintf(cell, TBL_CELL, "%.5f", g->bpb.min); break;
    case 5: snprintf(cell, TBL_CELL, isfinite(g->loss.mean) ? "%.5f" : "-", g->loss.mean); break;
    case 6: cad_report_fmt_bytes(cell, TBL_CELL, g->max_artifact_bytes); break;
    case 7: snprintf(cell, TBL_CELL, isfinite(g->max_train_ms) ? "%.1f" : "-", g->max_train_ms / 1000); break;
    case 8: snprintf(cell, TBL_CELL, isfinite(g->max_eval_ms) ? "%.1f" : "-", g->max_eval_ms / 1000); break;
    default: snprintf(cell, TBL_CELL, "%s", g->n_invalid ? "OVER" : g->n_valid == g->n_runs ? "fits" : "unknown");
    }
}

static void compare_table(const cad_report_data *d, const cad_report_group sel[2], const int is_run[2],
                          char *const what[2]) {
    static const char *const rows[] = {"what", "group", "seeds", "val_bpb mean ± std", "val_bpb best",
                                       "val_loss mean (nats)", "artifact bytes (max)", "train s (max)",
                                       "eval s (max)", "budget"};
    tbl t = {0};
    tbl_col(&t, "", 0);
    tbl_col(&t, "A", 1);
    tbl_col(&t, "B", 1);
    for (int r = 0; r < (int)(sizeof rows / sizeof rows[0]); r++) {
        char(*row)[TBL_CELL] = tbl_row(&t);
        if (!row) break;
        snprintf(row[0], TBL_CELL, "%s", rows[r]);
        for (int k = 0; k < 2; k++) compare_cell(d, &sel[k], is_run[k], what[k], r, row[1 + k]);
    }
    tbl_print(&t, stdout);
    tbl_free(&t);
}

/* The difference, the tests and the seed count of A against B. */
static void compare_verdict(const cad_report_group sel[2]) {
    const cad_report_cmp *cm = &sel[0].cmp;
    char db_s[NUM_TEXT_MAX], dn[NUM_TEXT_MAX], p[NUM_TEXT_MAX], pb[NUM_TEXT_MAX];
    cad_report_fmt_signed(db_s, sizeof db_s, cm->bpb.delta, 5);
    cad_report_fmt_signed(dn, sizeof dn, cm->delta_nats, 5);
    cad_report_fmt_p(p, sizeof p, cm->bpb.p);
    cad_report_fmt_p(pb, sizeof pb, cm->bar.p);
    printf("\nA - B: %s bpb, %s nats (negative: A is better)\n", db_s, dn);
    if (cm->bpb.ok) {
        printf("one-sided Welch t-test (H1: A better): t = %.3f, df = %.2f, p = %s\n", cm->bpb.t, cm->bpb.df, p);
        if (cm->bpb.se > 0) {
            double half = cad_stats_t_quantile(0.975, cm->bpb.df) * cm->bpb.se;
            printf("95%% confidence interval of A - B: [%+.5f, %+.5f] bpb\n", cm->bpb.delta - half, cm->bpb.delta + half);
        }
    }
    else
        printf("one-sided Welch t-test: needs at least 2 seeds on each side\n");
    printf("record bar (A better by >= 0.005 nats at p < 0.01): %s",
           cm->clears_bar == 1 ? "cleared" : cm->clears_bar == 0 ? "not cleared" : "cannot tell");
    if (cm->bar.ok) printf(" (p = %s)", pb);
    printf("\nfrontier rule (p < 0.25): %s\n", cm->frontier == 1 ? "yes" : cm->frontier == 0 ? "no" : "cannot tell");
    if (isfinite(sel[0].loss.std) && isfinite(sel[1].loss.std) && isfinite(cm->delta_nats)) {
        int n = cad_stats_seeds_needed(-cm->delta_nats, 0, sel[0].loss.std, sel[1].loss.std, CAD_STATS_BAR_ALPHA,
                                       COMPARE_MAX_SEEDS);
        if (n > 0) printf("seeds per side for the observed difference to reach p < 0.01: %d\n", n);
        else printf("seeds per side for the observed difference to reach p < 0.01: no number of seeds (A is not better)\n");
    }
}

/* Same-seed pairs, when both sides ran the same seeds. */
static void compare_same_seeds(const cad_report_data *d, const cad_report_group sel[2]) {
    int header = 0;
    for (int i = 0; i < sel[0].n_runs; i++) {
        const cad_report_run *ra = &d->runs[sel[0].runs[i]];
        for (int j = 0; j < sel[1].n_runs && ra->has_seed; j++) {
            const cad_report_run *rb = &d->runs[sel[1].runs[j]];
            if (!rb->has_seed || rb->seed != ra->seed) continue;
            if (!header) printf("\nsame seed    A val_bpb    B val_bpb    A - B\n");
            header = 1;
            printf("%9lld  %11.5f  %11.5f  %+.5f\n", ra->seed, ra->val_bpb, rb->val_bpb, ra->val_bpb - rb->val_bpb);
        }
    }
}

/* The step-matched / wallclock-matched comparison from the curves (reports/matched.h). */
static void compare_matched(const cad_report_data *d, const cad_report_matched *m, const char *metric) {
    char at[64];
    if (m->by_wall) snprintf(at, sizeof at, "training time %.0f ms", m->x);
    else snprintf(at, sizeof at, "step %.0f", m->x);
    printf("\n%s-matched: %s at %s (%s; linear between logged points)\n", m->by_wall ? "wallclock" : "step",
           metric, at, m->x_given ? "as asked" : m->by_wall ? "the last time every run reached" : "the last step every run reached");
    tbl t = {0};
    tbl_col(&t, "", 0);
    tbl_col(&t, "A", 1);
    tbl_col(&t, "B", 1);
    static const char *const rows[] = {"runs", "mean ± std", "best"};
    for (int r = 0; r < 3; r++) {
        char(*row)[TBL_CELL] = tbl_row(&t);
        if (!row) break;
        if (r > 0) snprintf(row[0], TBL_CELL, "%s", rows[r]);
        else snprintf(row[0], TBL_CELL, "%s %.0f", m->by_wall ? "runs at ms" : "runs at step", m->x);
        for (int k = 0; k < 2; k++) {
            const cad_stats_summary *su = &m->sum[k];
            if (r == 0) snprintf(row[1 + k], TBL_CELL, "%d of %d", m->n[k], m->n[k] + m->n_missing[k]);
            else if (r == 1 && isfinite(su->std)) snprintf(row[1 + k], TBL_CELL, "%.5f ± %.5f", su->mean, su->std);
            else if (r == 1) snprintf(row[1 + k], TBL_CELL, "%.5f", su->mean);
            else snprintf(row[1 + k], TBL_CELL, "%.5f", su->min);
        }
    }
    tbl_print(&t, stdout);
    tbl_free(&t);
    char dl[NUM_TEXT_MAX], p[NUM_TEXT_MAX];
    cad_report_fmt_signed(dl, sizeof dl, m->sum[0].mean - m->sum[1].mean, 5);
    printf("A - B at %s: %s %s (negative: A is better)", at, dl, metric);
    if (m->welch.ok) {
        cad_report_fmt_p(p, sizeof p, m->welch.p);
        printf("; one-sided Welch t-test: t = %.3f, df = %.2f, p = %s", m->welch.t, m->welch.df, p);
    }
    putchar('\n');
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < m->n[k]; i++)
            printf("  %s  %-40s %.5f\n", k ? "B" : "A", d->runs[m->run[k][i]].run_id, m->values[k][i]);
}

enum compare_opt { CMP_SWEEP, CMP_DB, CMP_STEP_MATCHED, CMP_STEP, CMP_WALL, CMP_METRIC };
static const cli_opt compare_opts[] = {
    {CMP_SWEEP, "sweep", 0, "NAME", "look A and B up in this sweep only (repeatable)"},
    {CMP_STEP_MATCHED, "step-matched", 0, NULL, "also compare at an equal step, from the curves (default: the last step every run reached)"},
    {CMP_STEP, "step", 0, "N", "the step of --step-matched (implies it)"},
    {CMP_WALL, "wallclock-matched", 0, "MS", "also compare at an equal training time of MS milliseconds, from the curves"},
    {CMP_METRIC, "metric", 0, "NAME", "the curve of --step-matched/--wallclock-matched (default val_bpb)"},
    CLI_OPT_DB(CMP_DB),
    CLI_OPT_END,
};

static int cmd_compare(int argc, char **argv) {
    report_args a = {0};
    int id, matched = 0, x_given = 0, by_wall = 0;
    double x = 0;
    const char *metric = "val_bpb";
    cli_parser p;
    cli_parser_init(&p, &cmd_compare_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum compare_opt)id) {
        case CMP_DB: a.db = p.arg; break;
        case CMP_STEP_MATCHED: matched = 1; break;
        case CMP_METRIC: metric = p.arg; break;
        case CMP_STEP:
        case CMP_WALL: {
            char *end;
            errno = 0;
            x = strtod(p.arg, &end);
            if (errno || end == p.arg || *end || !isfinite(x) || x < 0)
                return cli_usage_error("compare", "--%s '%s': expected a number >= 0",
                                       id == CMP_STEP ? "step" : "wallclock-matched", p.arg);
            x_given = 1;
            if (id == CMP_WALL) by_wall = 1;
            else matched = 1;
            break;
        }
        case CMP_SWEEP:
            if (a.n_sweeps == MAX_SWEEP_ARGS) return cli_usage_error("compare", "too many --sweep options");
            a.sweeps[a.n_sweeps++] = p.arg;
            break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (argc - p.ind != 2) return cli_usage_error("compare", "expected two runs or groups (A B), got %d arguments", argc - p.ind);
    if (matched && by_wall)
        return cli_usage_error("compare", "--step-matched/--step and --wallclock-matched: choose one");
    cad_db *db;
    if (open_for_reading("compare", a.db, &db)) return 1;
    cad_report_data d;
    int rc = load_data("compare", db, &a, &d);
    if (rc) {
        cad_db_close(db);
        return rc;
    }
    cad_report_group sel[2];
    int is_run[2];
    cad_err e = {0};
    for (int k = 0; k < 2; k++) {
        if (cad_report_select(&d, argv[p.ind + k], &sel[k], &is_run[k], &e)) {
            if (k == 1) free(sel[0].runs);
            cad_report_data_free(&d);
            cad_db_close(db);
            return cli_fail("compare", "%s", e.msg);
        }
    }
    cad_report_group_compare(&d, &sel[0], &sel[1]);
    compare_table(&d, sel, is_run, &argv[p.ind]);
    compare_verdict(sel);
    compare_same_seeds(&d, sel);
    int mrc = 0;
    if (matched || by_wall) {
        cad_report_matched m;
        if (cad_report_matched_compare(db, &d, sel, metric, by_wall, x_given, x, &m, &e) == CAD_OK) {
            compare_matched(&d, &m, metric);
            cad_report_matched_free(&m);
        } else {
            mrc = cli_fail("compare", "%s", e.msg);
        }
    }
    free(sel[0].runs);
    free(sel[1].runs);
    cad_report_data_free(&d);
    cad_db_close(db);
    return mrc;
}

const cli_command cmd_compare_def = {
    .name = "compare",
    .fn = cmd_compare,
    .summary = "compare two runs or groups: means, Welch p, record bar, frontier rule",
    .synopsis = (const char *const[]){"A B [--sweep NAME]... [--step-matched [--step N] | --wallclock-matched MS]\n"
                                      "          [--metric NAME] [--db FILE]", NULL},
    .description =
        "A and B are run ids (one run) or groups (group hash or prefix, run name, or label: all\n"
        "seeds). Prints both side by side, A - B in bpb and nats, the one-sided Welch test that A\n"
        "is better, the record bar, the frontier rule, and same-seed pairs.\n"
        "--step-matched adds the comparison at an equal step from the curves (the records'\n"
        "step-matched comparison): each run's metric at step N (--step; default the last step\n"
        "every run reached), linear between logged points, with the step named in the table;\n"
        "--wallclock-matched MS the same at an equal training time.\n",
    .opts = compare_opts,
};

/* ---- seeds-needed ------------------------------------------------------------------------- */

/* A seed count, or ">10000" when none up to the planner's limit suffices. */
static void seeds_cell(char *cell, int n) {
    if (n) snprintf(cell, TBL_CELL, "%d", n);
    else snprintf(cell, TBL_CELL, ">%d", CAD_REPORT_MAX_SEEDS);
}

static void seeds_row(const cad_report_group *grp, const cad_report_group *ref, double pooled, double delta,
                      char (*row)[TBL_CELL]) {
    cad_report_seeds s;
    cad_report_seeds_needed(grp, ref, pooled, delta, &s);
    cell_label(row[0], grp->label);
    snprintf(row[1], TBL_CELL, "%d", grp->n_runs);
    snprintf(row[2], TBL_CELL, isfinite(s.std) ? "%.5f%s" : "-", s.std, s.own_std ? "" : "*");
    snprintf(row[3], TBL_CELL, isfinite(s.ref_std) ? "%.5f%s" : "-", s.ref_std, s.own_ref_std ? "" : "*");
    cad_report_fmt_signed(row[4], TBL_CELL, grp->cmp.delta_nats, 5);
    if (!s.has_std) snprintf(row[5], TBL_CELL, "-");
    else seeds_cell(row[5], s.for_delta);
    if (!s.has_delta || !s.has_std) snprintf(row[6], TBL_CELL, "-");
    else if (grp->cmp.delta_nats >= 0) snprintf(row[6], TBL_CELL, "never (not better)");
    else seeds_cell(row[6], s.observed);
    if (!s.has_delta || !s.has_std) snprintf(row[7], TBL_CELL, "-");
    else if (-grp->cmp.delta_nats <= CAD_STATS_BAR_NATS) snprintf(row[7], TBL_CELL, "never (Δ < 0.005)");
    else seeds_cell(row[7], s.record_bar);
}

static void seeds_table(const cad_report_data *d, const cad_report_group *ref, double pooled, double delta) {
    tbl t = {0};
    tbl_col(&t, "group", 0);
    tbl_col(&t, "n", 1);
    tbl_col(&t, "std nats", 1);
    tbl_col(&t, "ref std", 1);
    tbl_col(&t, "Δnats observed", 1);
    char h_delta[TBL_CELL];
    snprintf(h_delta, sizeof h_delta, "seeds for Δ=%.4g", delta);
    tbl_col(&t, h_delta, 1);
    tbl_col(&t, "seeds: observed Δ", 1);
    tbl_col(&t, "seeds: record bar", 1);
    for (int g = 0; g < d->n_groups; g++) {
        if (&d->groups[g] == ref) continue;
        char(*row)[TBL_CELL] = tbl_row(&t);
        if (!row) break;
        seeds_row(&d->groups[g], ref, pooled, delta, row);
    }
    tbl_print(&t, stdout);
    tbl_free(&t);
}

static void seeds_print(const cad_report_data *d, double delta) {
    const cad_report_sweep *sw = &d->sweeps[0];
    int dof;
    double pooled = cad_report_pooled_loss_std(d, &dof);
    const cad_report_group *ref = sw->ref_group >= 0 ? &d->groups[sw->ref_group] : NULL;
    printf("sweep %s: reference %s\n", sw->name, ref ? ref->label : "(none)");
    if (isfinite(pooled)) printf("pooled seed std of val_loss: %.5f nats (%d degrees of freedom)\n", pooled, dof);
    else printf("no group has 2 or more seeds yet: seed std unknown, run more seeds first\n");
    if (ref && isfinite(ref->nats_per_bpb) && ref->nats_per_bpb > 0)
        printf("%.4g nats = %.4f bpb for the reference's tokenizer\n", delta, delta / ref->nats_per_bpb);
    printf("seeds per side (equal counts) so that the expected t reaches the one-sided p < 0.01 critical value\n\n");
    seeds_table(d, ref, pooled, delta);
    printf("\n* pooled std (the group has fewer than 2 seeds). 'record bar': seeds for the observed\n"
           "improvement to be significantly larger than 0.005 nats; 'observed Δ': significantly > 0.\n");
}

enum seeds_opt { SEEDS_SWEEP, SEEDS_DELTA, SEEDS_REF, SEEDS_DB };
static const cli_opt seeds_opts[] = {
    {SEEDS_SWEEP, "sweep", 0, "NAME", "the sweep (required)"},
    {SEEDS_DELTA, "delta", 0, "NATS", "improvement to detect (default 0.005)"},
    {SEEDS_REF, "ref", 0, "GROUP", "reference group (default as in 'caddie report')"},
    CLI_OPT_DB(SEEDS_DB),
    CLI_OPT_END,
};

static int cmd_seeds_needed(int argc, char **argv) {
    report_args a = {0};
    double delta = CAD_STATS_BAR_NATS;
    int id;
    cli_parser p;
    cli_parser_init(&p, &cmd_seeds_needed_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum seeds_opt)id) {
        case SEEDS_SWEEP:
            if (a.n_sweeps == 1) return cli_usage_error("seeds-needed", "one --sweep at a time");
            a.sweeps[a.n_sweeps++] = p.arg;
            break;
        case SEEDS_DELTA:
            if (cli_parse_double(p.arg, 0, INFINITY, &delta) || !(delta > 0))
                return cli_usage_error("seeds-needed", "--delta wants a positive number of nats, got '%s'", p.arg);
            break;
        case SEEDS_REF: a.ref = p.arg; break;
        case SEEDS_DB: a.db = p.arg; break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind < argc) return cli_usage_error("seeds-needed", "unexpected argument '%s'", argv[p.ind]);
    if (a.n_sweeps != 1) return cli_usage_error("seeds-needed", "--sweep NAME is required");
    cad_db *db;
    if (open_for_reading("seeds-needed", a.db, &db)) return 1;
    cad_report_data d;
    int rc = load_data("seeds-needed", db, &a, &d);
    if (rc) {
        cad_db_close(db);
        return rc;
    }
    seeds_print(&d, delta);
    cad_report_data_free(&d);
    cad_db_close(db);
    return 0;
}

const cli_command cmd_seeds_needed_def = {
    .name = "seeds-needed",
    .fn = cmd_seeds_needed,
    .summary = "how many seeds each comparison needs for p < 0.01",
    .synopsis = (const char *const[]){"--sweep NAME [--delta NATS] [--ref GROUP] [--db FILE]", NULL},
    .description =
        "From the observed seed std of val_loss (pooled when a group has one seed): the seeds per\n"
        "side for a true improvement of --delta nats, for the observed Δ, and for the observed Δ\n"
        "to clear the 0.005-nat record bar, each at one-sided p < 0.01.\n",
    .opts = seeds_opts,
};

/* ---- export-submission -------------------------------------------------------------------- */

/* `git config user.name` output, "$USER" and a date: each fits easily. */
#define WHO_MAX 256
#define DATE_MAX 32
/* What submission.json says that caddie cannot know: the user's options and the date. */
typedef struct submission_info {
    const char *name, *author, *github_id, *blurb, *track, *date;
} submission_info;

/* A seed_results key: a seed number or "run<N>". */
#define SEED_KEY_MAX 32

/* `git config user.name`, trimmed; "" when git or the setting is missing. */
static void git_user_name(char *buf, size_t n) {
    buf[0] = 0;
    FILE *p = popen("git config user.name 2>/dev/null", "r");
    if (!p) return;
    if (fgets(buf, (int)n, p)) buf[strcspn(buf, "\r\n")] = 0;
    pclose(p);
}

/* submission.json in the records' format (info: what the user gave). */
static int write_submission_json(const char *path, const cad_report_data *d, const cad_report_group *g,
                                 const submission_info *info, cad_err *e) {
    FILE *f = cad_submission_create(path, e);
    if (!f) return e->code;
    cad_submission_compliance ok;
    cad_submission_check(d, g, &ok);
    fputs("{\n  \"author\": ", f);
    cad_json_write_string(f, info->author);
    fputs(",\n  \"github_id\": ", f);
    cad_json_write_string(f, info->github_id);
    fputs(",\n  \"name\": ", f);
    cad_json_write_string(f, info->name);
    fputs(",\n  \"blurb\": ", f);
    cad_json_write_string(f, info->blurb);
    fputs(",\n  \"date\": ", f);
    cad_json_write_string(f, info->date);
    fputs(",\n  \"track\": ", f);
    cad_json_write_string(f, info->track);
    fputs(",\n  \"val_loss\": ", f);
    cad_json_write_number(f, g->loss.mean);
    fputs(",\n  \"val_bpb\": ", f);
    cad_json_write_number(f, g->bpb.mean);
    if (g->n_runs > 1) {
        fputs(",\n  \"val_bpb_std\": ", f);
        cad_json_write_number(f, g->bpb.std);
    }
    fputs(",\n  \"seeds\": [", f);
    for (int i = 0, k = 0; i < g->n_runs; i++) {
        const cad_report_run *r = &d->runs[g->runs[i]];
        if (r->has_seed) fprintf(f, "%s%lld", k++ ? ", " : "", r->seed);
    }
    fputs("],\n  \"seed_results\": {", f);
    for (int i = 0; i < g->n_runs; i++) {
        const cad_report_run *r = &d->runs[g->runs[i]];
        char key[SEED_KEY_MAX];
        if (r->has_seed) snprintf(key, sizeof key, "%lld", r->seed);
        else snprintf(key, sizeof key, "run%d", i + 1);
        fprintf(f, "%s\n    ", i ? "," : "");
        cad_json_write_string(f, key);
        fputs(": {\"val_bpb\": ", f);
        cad_json_write_number(f, r->val_bpb);
        fputs(", \"val_loss\": ", f);
        cad_json_write_number(f, r->val_loss);
        fputs(", \"artifact_bytes\": ", f);
        cad_json_write_number(f, r->artifact_bytes);
        fputs(", \"train_ms\": ", f);
        cad_json_write_number(f, r->train_ms);
        fputs(", \"eval_ms\": ", f);
        cad_json_write_number(f, r->eval_ms);
        fputs(", \"run_id\": ", f);
        cad_json_write_string(f, r->run_id);
        fputs("}", f);
    }
    fputs("\n  },\n  \"bytes_total\": ", f);
    cad_json_write_number(f, g->max_artifact_bytes);
    fputs(",\n  \"bytes_code\": ", f);
    cad_json_write_number(f, g->max_code_bytes);
    fprintf(f, ",\n  \"compliance\": {\n    \"train_under_600s\": %s,\n    \"artifact_under_16mb\": %s,\n"
               "    \"eval_under_600s\": %s,\n    \"three_seeds\": %s\n  },\n  \"caddie\": {\"sweep\": ",
            ok.train_under_600s ? "true" : "false", ok.artifact_under_16mb ? "true" : "false",
            ok.eval_under_600s ? "true" : "false", ok.three_seeds ? "true" : "false");
    cad_json_write_string(f, g->sweep);
    fputs(", \"group_hash\": ", f);
    cad_json_write_string(f, g->group_hash);
    fputs(", \"config\": ", f);
    cad_json_write_string(f, g->label);
    fputs("}\n}\n", f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return cad_fail(e, CAD_EIO, "%s: write failed", path);
    return CAD_OK;
    return CAD_OK;
}

/* Defaults the user did not give: the author from git or $USER, the name from the group. */
static void export_defaults(const cad_report_group *g, submission_info *info, char *who, size_t who_n) {
    if (!info->author) {
        git_user_name(who, who_n);
        if (!who[0]) snprintf(who, who_n, "%s", getenv("USER") ? getenv("USER") : "unknown");
        info->author = who;
    }
    if (!info->name) info->name = g->label;
}

/* Logs first, then submission.json and README.md, into out. */
static int export_folder(const cad_report_data *d, const cad_report_group *g, const char *out,
                         const submission_info *info, cad_err *e) {
    char path[PATH_MAX];
    if (cad_submission_copy_logs(d, g, out, e)) return e->code;
    snprintf(path, sizeof path, "%s/submission.json", out);
    if (write_submission_json(path, d, g, info, e)) return e->code;
    snprintf(path, sizeof path, "%s/README.md", out);
    return cad_submission_write_readme(path, d, g, info->name, e);
}

enum export_opt { EXP_OUT, EXP_NAME, EXP_AUTHOR, EXP_GITHUB_ID, EXP_BLURB, EXP_TRACK, EXP_DB };
static const cli_opt export_opts[] = {
    {EXP_OUT, "out", 'o', "DIR", "output directory (required; created)"},
    {EXP_NAME, "name", 0, "NAME", "submission name (default: the group label)"},
    {EXP_AUTHOR, "author", 0, "NAME", "author (default: git config user.name, else $USER)"},
    {EXP_GITHUB_ID, "github-id", 0, "ID", "GitHub id (default empty)"},
    {EXP_BLURB, "blurb", 0, "TEXT", "one-paragraph description (default empty)"},
    {EXP_TRACK, "track", 0, "TRACK", "track (default 10min_16mb)"},
    CLI_OPT_DB(EXP_DB),
    CLI_OPT_END,
};

static int cmd_export_submission(int argc, char **argv) {
    report_args a = {0};
    const char *out = NULL;
    submission_info info = {NULL, NULL, "", "", "10min_16mb", NULL};
    int id;
    cli_parser p;
    cli_parser_init(&p, &cmd_export_submission_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum export_opt)id) {
        case EXP_OUT: out = p.arg; break;
        case EXP_DB: a.db = p.arg; break;
        case EXP_NAME: info.name = p.arg; break;
        case EXP_AUTHOR: info.author = p.arg; break;
        case EXP_GITHUB_ID: info.github_id = p.arg; break;
        case EXP_BLURB: info.blurb = p.arg; break;
        case EXP_TRACK: info.track = p.arg; break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (argc - p.ind != 1) return cli_usage_error("export-submission", "expected one RUN or GROUP");
    if (!out) return cli_usage_error("export-submission", "--out DIR is required");
    cad_db *db;
    if (open_for_reading("export-submission", a.db, &db)) return 1;
    cad_report_data d;
    int rc = load_data("export-submission", db, &a, &d);
    if (rc) {
        cad_db_close(db);
        return rc;
    }
    cad_report_group g;
    int is_run;
    cad_err e = {0};
    char who[WHO_MAX], date[DATE_MAX];
    rc = cad_report_select(&d, argv[p.ind], &g, &is_run, &e);
    if (!rc) {
        export_defaults(&g, &info, who, sizeof who);
        timestamp_utc(date, sizeof date, "%Y-%m-%d");
        info.date = date;
        rc = export_folder(&d, &g, out, &info, &e);
    }
    if (!rc)
        printf("wrote %s: submission.json, README.md, %d log%s (val_bpb %.5f over %d seed%s, %s)\n", out, g.n_runs,
               g.n_runs == 1 ? "" : "s", g.bpb.mean, g.n_runs, g.n_runs == 1 ? "" : "s",
               g.n_invalid ? "OVER A BUDGET" : "within budgets");
    free(g.runs);
    cad_report_data_free(&d);
    cad_db_close(db);
    return rc ? cli_fail("export-submission", "%s", e.msg) : 0;
}

const cli_command cmd_export_submission_def = {
    .name = "export-submission",
    .fn = cmd_export_submission,
    .summary = "write a record folder: submission.json, README.md, logs",
    .synopsis = (const char *const[]){"RUN|GROUP --out DIR [--name NAME] [--author NAME]\n"
                                      "[--github-id ID] [--blurb TEXT] [--track TRACK] [--db FILE]",
                                      NULL},
    .description =
        "RUN exports one run; GROUP (hash or prefix, run name, label) exports all its seeds.\n"
        "Writes DIR/submission.json in the challenge's format (val_bpb mean and std, seeds,\n"
        "seed_results, bytes_total, bytes_code, compliance), DIR/README.md with the seed table,\n"
        "DIR/train_seed<S>.log copied from each run dir's log.txt, and DIR/config.yaml.\n",
    .opts = export_opts,
};

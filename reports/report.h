/*
 * report.h — results loaded from the database's public views, grouped by config (seeds
 * aggregated), compared with a reference group, and written as one self-contained HTML page.
 *
 * Reads only through db/views.h: the documented views run_summary and curves and the params
 * table (see schema/), never a private table, never a write (the connection is set
 * query_only); no SQL lives in reports/.
 * The same loaded cad_report_data feeds the HTML page (cad_report_html_write) and the terminal
 * tables of `caddie top/compare/seeds-needed/export-submission` (cli/cmd_report.c), so
 * both show the same statistics.
 *
 * Grouping: a group is (sweep, group_hash) — the resolved config without the seed. Its label
 * is made of the swept parameters: keys whose value differs between groups of a sweep but is
 * constant inside every group (so seeds, run ids and run dirs never count as swept). A path
 * value shows its shortest tail of whole components that no other value of the key ends in
 * (data/a/x and data/b/x: "a/x", "b/x"), so two groups never share a label through it.
 * Statistics per group use runs with status 'done' and a val_bpb; failed, interrupted and
 * cancelled runs are listed apart with their error text.
 * Not here: HTML/SVG primitives (svg.c), the t distribution (stats.c), command lines.
 */
#ifndef CADDIE_REPORTS_REPORT_H
#define CADDIE_REPORTS_REPORT_H

#include "db/db.h"
#include "engine/status.h"
#include "reports/stats.h"

#include <stdio.h>

/* One row of run_summary. Missing numbers are NaN; missing text is NULL. */
typedef struct cad_report_run {
    char *run_id, *sweep, *name, *status, *error, *run_dir, *group_hash, *config_hash, *config;
    char *started_at, *ended_at;
    char *engine; /* NULL when the DB has none (an imported run) */
    long long seed;
    int has_seed;
    double val_loss, val_bpb, prequant_val_bpb;
    double artifact_bytes, model_bytes, code_bytes, train_ms, eval_ms, steps, tokens;
    int valid;   /* 1 fits all budgets, 0 over a budget, -1 unknown */
    int partial; /* 1 when eval was limited to val_max_tokens */
    int attempts;
    int group;   /* index into cad_report_data.groups, -1 for runs without a result */
    /* typed params of this run (sorted by key) */
    int n_params;
    char **param_keys;
    char **param_texts; /* canonical text of the value (numbers printed with %.10g) */
    double *param_nums; /* NaN when not numeric */
} cad_report_run;

/* A comparison of a group with the reference group. */
typedef struct cad_report_cmp {
    int has;                 /* 0 for the reference itself or when there is no reference */
    cad_stats_welch bpb;         /* val_bpb, margin 0: the plain one-sided p and the frontier rule */
    cad_stats_welch bar;         /* val_bpb with margin bar_margin_bpb: the record bar */
    double bar_margin_bpb;   /* 0.005 nats in bpb: 0.005 / (val_loss/val_bpb), the smaller
                                ratio of the two groups when their tokenizers differ */
    int clears_bar;          /* 1 yes, 0 no, -1 cannot tell (n < 2 or no val_loss) */
    int frontier;            /* p_bpb < 0.25: 1 yes, 0 no, -1 cannot tell */
    double delta_nats;       /* Δ val_bpb in the reference's nats (= Δ val_loss on one
                                tokenizer); negative = better */
} cad_report_cmp;

typedef struct cad_report_group {
    char *sweep;      /* "" for runs outside any sweep */
    char *group_hash;
    char *label;      /* "qk_gain_init=5.25 weight_decay=0.095", or the run name when none */
    char *name;       /* name of the group's first run (without a trailing seed suffix) */
    int *runs;        /* indices of done runs with a val_bpb, seed order */
    int n_runs;
    cad_stats_summary bpb, loss;     /* val_bpb and val_loss (nats) over seeds */
    double nats_per_bpb;         /* mean val_loss / val_bpb (ln2 · bytes per token) */
    double max_artifact_bytes, max_code_bytes, max_train_ms, max_eval_ms;
    double mean_step_ms, mean_tokens_per_s;
    int n_valid, n_invalid, n_partial;
    int is_ref;
    cad_report_cmp cmp;
} cad_report_group;

/* Per sweep: its swept keys (for the parameter charts) and its reference group. */
typedef struct cad_report_sweep {
    char *name;
    char **swept_keys;
    int n_swept;
    int ref_group;       /* index into groups, -1 when none */
    char ref_reason[160];
    int n_total, n_done, n_failed, n_running, n_queued, n_other;
} cad_report_sweep;

typedef struct cad_report_query {
    const char *const *sweeps; /* --sweep NAME..., NULL/0 = all */
    int n_sweeps;
    const char *where;         /* --runs SQL-WHERE over run_summary columns, or NULL */
    const char *ref;           /* --ref: group hash (prefix), run id or run name, or NULL */
    /* The value of a config key in a caddie-engine run that does not record it (a key added to
     * caddie after the run; its default is what the run did): 1 with the text as params are
     * shown (numbers "%.10g") and num (NaN for text values), 0 for a key it does not know.
     * NULL: such keys stay "(unset)". The CLI passes the engine's key table. */
    int (*key_default)(const char *key, char *text, size_t cap, double *num);
} cad_report_query;

typedef struct cad_report_data {
    cad_report_run *runs;
    int n_runs;
    cad_report_group *groups; /* sorted by mean val_bpb, best first */
    int n_groups;
    cad_report_sweep *sweeps;
    int n_sweeps;
} cad_report_data;

/* Load the runs the query selects, group them, pick references and compare. The filter in
 * q->where must be one expression over run_summary's columns (db/views.h checks it: anything
 * else is CAD_EUSAGE). */
int cad_report_data_load(cad_db *db, const cad_report_query *q, cad_report_data *out, cad_err *e);
void cad_report_data_free(cad_report_data *d);

/* Index of the sweep record for a group, or -1. */
int cad_report_sweep_of_group(const cad_report_data *d, int group);
/* Resolve a user's name for a group: group hash or unique prefix, run id, or run name.
 * Returns the group index or -1 with e filled (unknown / ambiguous / run has no result). */
int cad_report_group_find(const cad_report_data *d, const char *what, cad_err *e);
/* Recompute g->cmp against ref (used by compare A B and when --ref changes). */
void cad_report_group_compare(const cad_report_data *d, cad_report_group *g, const cad_report_group *ref);
/* Collect the val_bpb (or val_loss when nats) values of a group's runs into out (size >=
 * g->n_runs); returns the count. */
int cad_report_group_values(const cad_report_data *d, const cad_report_group *g, int nats, double *out);

/* A selection for `compare` and `export-submission`: one run (given by run id) or a whole
 * group (anything cad_report_group_find resolves). Filled as a group owned by the caller:
 * out->runs is malloc'd (free it), the strings are borrowed from d. A single run's group
 * carries that run's numbers and its name as the label; *is_run says which it was. */
int cad_report_select(const cad_report_data *d, const char *what, cad_report_group *out, int *is_run,
                      cad_err *e);

/* Pooled seed std of val_loss (nats) over the groups with two or more seeds, the fallback
 * for groups that ran one seed; NaN when there is none. *dof gets its degrees of freedom. */
double cad_report_pooled_loss_std(const cad_report_data *d, int *dof);

/* Seeds per side a group needs against the reference (`caddie seeds-needed`). The stds are
 * the groups' own, or the pooled one when a group has fewer than two seeds. A count of 0
 * means more than CAD_REPORT_MAX_SEEDS; the counts are meaningless unless has_std (and,
 * for the two observed ones, has_delta). */
#define CAD_REPORT_MAX_SEEDS 10000
typedef struct cad_report_seeds {
    double std, ref_std;   /* nats */
    int own_std, own_ref_std; /* 1: the group's own std, 0: the pooled one */
    int has_std;           /* both stds known */
    int has_delta;         /* the observed difference is known */
    int for_delta;         /* seeds to show a true improvement of `delta` nats at p < 0.01 */
    int observed;          /* ... the observed improvement as significantly > 0 */
    int record_bar;        /* ... the observed improvement as significantly > 0.005 nats */
} cad_report_seeds;
void cad_report_seeds_needed(const cad_report_group *g, const cad_report_group *ref, double pooled, double delta,
                             cad_report_seeds *out);

/* Options of the page. */
typedef struct cad_report_html_options {
    const char *db_path;   /* shown in the header */
    int log_x;             /* log-scaled step axis for the loss curves */
    int max_curve_groups;  /* groups drawn in the curve charts (best first + reference) */
    const char *generated_at; /* timestamp text for the header (tests pin it) */
} cad_report_html_options;

/* Write the whole page to f. Reads curves for the groups it draws. */
int cad_report_html_write(cad_db *db, const cad_report_data *d, const cad_report_html_options *o, FILE *f,
                      cad_err *e);

/* Formatting shared by the page and the terminal tables. */
void cad_report_fmt_p(char *buf, size_t n, double p);         /* "0.0031", "<1e-6", "–" */
void cad_report_fmt_bytes(char *buf, size_t n, double bytes); /* "15,992,694" */
void cad_report_fmt_signed(char *buf, size_t n, double v, int decimals); /* "+0.0012", "-0.0031" */

#endif

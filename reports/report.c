/*
 * report.c — load run_summary/params (through db/views.h) into cad_report_data: group by
 * config, find the swept
 * parameters, pick each sweep's reference group and compare every group with it.
 * (The page itself is report_html.c; the terminal commands are cmd_report.c.)
 *
 * Why the statistics are computed here and not read from the sweep_groups view: the tests
 * need every seed's value (Welch uses both variances), the bar is tested on val_loss in
 * nats while the view aggregates val_bpb, and --runs may select a subset of a group.
 * Not here: SQL of any kind (db/views.c), HTML, option parsing.
 */
#include "reports/report.h"
#include "reports/svg.h"

#include "db/views.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A group label ("k=v k2=v2 ..."); longer ones are cut (the page shortens them anyway). */
#define LABEL_MAX 512

/* Keys that identify a run rather than configure it: never "swept" even when they differ. */
static const char *const per_run_keys[] = {"seed", "run_id", "run_dir", "run_name", "name", NULL};

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static int str_null_cmp(const char *a, const char *b) {
    if (!a && !b) return 0;
    if (!a) return 1; /* NULL last */
    if (!b) return -1;
    return strcmp(a, b);
}

void cad_report_data_free(cad_report_data *d) {
    for (int i = 0; i < d->n_runs; i++) {
        cad_report_run *r = &d->runs[i];
        free(r->run_id); free(r->sweep); free(r->name); free(r->status); free(r->error);
        free(r->run_dir); free(r->group_hash); free(r->config_hash); free(r->config);
        free(r->started_at); free(r->ended_at); free(r->engine);
        for (int k = 0; k < r->n_params; k++) {
            free(r->param_keys[k]);
            free(r->param_texts[k]);
        }
        free(r->param_keys); free(r->param_texts); free(r->param_nums);
    }
    free(d->runs);
    for (int g = 0; g < d->n_groups; g++) {
        free(d->groups[g].sweep); free(d->groups[g].group_hash); free(d->groups[g].label);
        free(d->groups[g].name); free(d->groups[g].runs);
    }
    free(d->groups);
    for (int s = 0; s < d->n_sweeps; s++) {
        free(d->sweeps[s].name);
        for (int k = 0; k < d->sweeps[s].n_swept; k++) free(d->sweeps[s].swept_keys[k]);
        free(d->sweeps[s].swept_keys);
    }
    free(d->sweeps);
    memset(d, 0, sizeof *d);
}

/* ---- loading (db/views.h) ----------------------------------------------------------------- */

/* Initial room for runs and for one run's params; doubled as needed. */
#define RUNS_INITIAL_CAP 64
#define PARAMS_INITIAL_CAP 32
/* A numeric param printed with %.10g: sign, 10 digits, point, exponent, NUL fit easily. */
#define PARAM_NUM_TEXT 64

/* What add_run needs besides the data: the room in d->runs. */
typedef struct run_ctx {
    cad_report_data *d;
    int cap;
} run_ctx;

static int add_run(const cad_view_run *v, void *ud, cad_err *e) {
    run_ctx *c = ud;
    cad_report_data *d = c->d;
    if (d->n_runs == c->cap) {
        int cap = c->cap ? c->cap * 2 : RUNS_INITIAL_CAP;
        cad_report_run *nr = realloc(d->runs, (size_t)cap * sizeof *nr);
        if (!nr) return cad_fail(e, CAD_ENOMEM, "out of memory");
        d->runs = nr;
        c->cap = cap;
    }
    cad_report_run *r = &d->runs[d->n_runs++];
    memset(r, 0, sizeof *r);
    r->run_id = dup_or_null(v->run_id);
    r->sweep = dup_or_null(v->sweep);
    r->name = dup_or_null(v->name);
    r->status = dup_or_null(v->status);
    r->has_seed = v->has_seed;
    r->seed = v->seed;
    r->val_loss = v->val_loss;
    r->val_bpb = v->val_bpb;
    r->prequant_val_bpb = v->prequant_val_bpb;
    r->artifact_bytes = v->artifact_bytes;
    r->model_bytes = v->model_bytes;
    r->code_bytes = v->code_bytes;
    r->train_ms = v->train_ms;
    r->eval_ms = v->eval_ms;
    r->steps = v->steps;
    r->tokens = v->tokens;
    r->valid = v->valid;
    r->partial = v->partial;
    r->config = dup_or_null(v->config);
    r->config_hash = dup_or_null(v->config_hash);
    r->group_hash = dup_or_null(v->group_hash);
    r->error = dup_or_null(v->error);
    r->attempts = v->attempts;
    r->started_at = dup_or_null(v->started_at);
    r->ended_at = dup_or_null(v->ended_at);
    r->run_dir = dup_or_null(v->run_dir);
    r->engine = dup_or_null(v->engine);
    r->group = -1;
    if (!r->run_id || !r->status) return cad_fail(e, CAD_EDB, "run_summary row %d has no run_id or status", d->n_runs);
    if (!r->group_hash) r->group_hash = strdup(r->config_hash ? r->config_hash : r->run_id);
    return CAD_OK;
}

static int cmp_run_id_idx(const void *a, const void *b, void *ctx) {
    const cad_report_data *d = ctx;
    return strcmp(d->runs[*(const int *)a].run_id, d->runs[*(const int *)b].run_id);
}

static int find_run(const cad_report_data *d, const int *by_id, const char *run_id) {
    int lo = 0, hi = d->n_runs - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(d->runs[by_id[mid]].run_id, run_id);
        if (c == 0) return by_id[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* What add_param needs besides the data: runs sorted by id, and each run's params room. */
typedef struct param_ctx {
    cad_report_data *d;
    int *by_id;
    int *caps;
} param_ctx;

static int add_param(const cad_view_param *p, void *ud, cad_err *e) {
    param_ctx *c = ud;
    int ri = find_run(c->d, c->by_id, p->run_id);
    if (ri < 0) return CAD_OK;
    cad_report_run *r = &c->d->runs[ri];
    if (r->n_params == c->caps[ri]) {
        int nc = c->caps[ri] ? c->caps[ri] * 2 : PARAMS_INITIAL_CAP;
        char **k2 = realloc(r->param_keys, (size_t)nc * sizeof *k2);
        if (k2) r->param_keys = k2;
        char **t2 = realloc(r->param_texts, (size_t)nc * sizeof *t2);
        if (t2) r->param_texts = t2;
        double *n2 = realloc(r->param_nums, (size_t)nc * sizeof *n2);
        if (n2) r->param_nums = n2;
        if (!k2 || !t2 || !n2) return cad_fail(e, CAD_ENOMEM, "reading params: out of memory");
        c->caps[ri] = nc;
    }
    char text[PARAM_NUM_TEXT];
    const char *val = p->text ? p->text : "";
    if (p->has_num) {
        snprintf(text, sizeof text, "%.10g", p->num);
        val = text;
    }
    r->param_keys[r->n_params] = strdup(p->key);
    r->param_texts[r->n_params] = strdup(val);
    r->param_nums[r->n_params] = p->has_num ? p->num : NAN;
    r->n_params++;
    return CAD_OK;
}

static int load_params(cad_db *db, const cad_view_filter *f, cad_report_data *d, cad_err *e) {
    if (d->n_runs == 0) return CAD_OK;
    param_ctx c = {d, malloc((size_t)d->n_runs * sizeof(int)), calloc((size_t)d->n_runs, sizeof(int))};
    int rc = CAD_OK;
    if (!c.by_id || !c.caps) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    if (!rc) {
        for (int i = 0; i < d->n_runs; i++) c.by_id[i] = i;
        qsort_r(c.by_id, (size_t)d->n_runs, sizeof *c.by_id, cmp_run_id_idx, d);
        rc = cad_view_params(db, f, add_param, &c, e);
    }
    free(c.by_id);
    free(c.caps);
    return rc;
}

/* A caddie-engine run records every key of its resolved config, so a key it lacks was added to
 * caddie after it ran, and a new key's default is the old behaviour: the run had the default.
 * Without filling it in, an upgrade mid-sweep makes every new key look swept ("(unset)" against
 * its default) and labels groups with it. Only keys that another caddie run of the same sweep
 * records are filled (the comparison is within a sweep), from q->key_default. Command-engine
 * runs record only what their sweep set, so there absence means "not set" and is left alone. */
static const char *run_param(const cad_report_run *r, const char *key, double *num);
static const char *sweep_key(const cad_report_run *r);

static int is_caddie_run(const cad_report_run *r) { return r->engine && !strcmp(r->engine, "caddie"); }

/* Insert (key, text, num) into r's params, keeping them sorted by key for run_param. */
static int insert_param(cad_report_run *r, const char *key, const char *text, double num) {
    int at = 0;
    while (at < r->n_params && strcmp(r->param_keys[at], key) < 0) at++;
    char **k2 = realloc(r->param_keys, (size_t)(r->n_params + 1) * sizeof *k2);
    if (k2) r->param_keys = k2;
    char **t2 = realloc(r->param_texts, (size_t)(r->n_params + 1) * sizeof *t2);
    if (t2) r->param_texts = t2;
    double *n2 = realloc(r->param_nums, (size_t)(r->n_params + 1) * sizeof *n2);
    if (n2) r->param_nums = n2;
    char *kd = strdup(key), *td = strdup(text);
    if (!k2 || !t2 || !n2 || !kd || !td) {
        free(kd), free(td);
        return CAD_ENOMEM;
    }
    size_t tail = (size_t)(r->n_params - at);
    memmove(r->param_keys + at + 1, r->param_keys + at, tail * sizeof *k2);
    memmove(r->param_texts + at + 1, r->param_texts + at, tail * sizeof *t2);
    memmove(r->param_nums + at + 1, r->param_nums + at, tail * sizeof *n2);
    r->param_keys[at] = kd;
    r->param_texts[at] = td;
    r->param_nums[at] = num;
    r->n_params++;
    return CAD_OK;
}

static int cmp_str_at(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Runs [lo, hi) are one sweep: every key a caddie run of it records (their union, sorted and
 * made unique), filled into the caddie runs that lack it. R x K log K, not R^2. */
static int fill_sweep(cad_report_data *d, int lo, int hi, const cad_report_query *q) {
    size_t n = 0;
    for (int i = lo; i < hi; i++)
        if (is_caddie_run(&d->runs[i])) n += (size_t)d->runs[i].n_params;
    if (n == 0) return CAD_OK;
    /* borrowed: insert_param grows a run's arrays but never frees the key strings in them */
    const char **keys = malloc(n * sizeof *keys);
    if (!keys) return CAD_ENOMEM;
    size_t m = 0, u = 0;
    for (int i = lo; i < hi; i++)
        if (is_caddie_run(&d->runs[i]))
            for (int k = 0; k < d->runs[i].n_params; k++) keys[m++] = d->runs[i].param_keys[k];
    qsort(keys, m, sizeof *keys, cmp_str_at);
    for (size_t k = 0; k < m; k++)
        if (!u || strcmp(keys[k], keys[u - 1])) keys[u++] = keys[k];
    m = u;
    int rc = CAD_OK;
    for (size_t k = 0; k < m && !rc; k++) {
        char text[512];
        double num;
        int known = -1;
        for (int i = lo; i < hi && !rc; i++) {
            cad_report_run *r = &d->runs[i];
            if (!is_caddie_run(r) || run_param(r, keys[k], NULL)) continue;
            if (known < 0) known = q->key_default(keys[k], text, sizeof text, &num);
            if (!known) break;
            rc = insert_param(r, keys[k], text, num);
        }
    }
    free((void *)keys);
    return rc;
}

static int fill_keys_of_older_runs(cad_report_data *d, const cad_report_query *q, cad_err *e) {
    if (!q->key_default) return CAD_OK;
    /* runs arrive ordered by sweep */
    for (int lo = 0, hi; lo < d->n_runs; lo = hi) {
        for (hi = lo + 1; hi < d->n_runs && !strcmp(sweep_key(&d->runs[hi]), sweep_key(&d->runs[lo])); hi++) {}
        if (fill_sweep(d, lo, hi, q)) return cad_fail(e, CAD_ENOMEM, "reading params: out of memory");
    }
    return CAD_OK;
}

/* ---- grouping ----------------------------------------------------------------------------- */

static const char *run_param(const cad_report_run *r, const char *key, double *num) {
    int lo = 0, hi = r->n_params - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(r->param_keys[mid], key);
        if (c == 0) {
            if (num) *num = r->param_nums[mid];
            return r->param_texts[mid];
        }
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    if (num) *num = NAN;
    return NULL;
}

static int run_counts(const cad_report_run *r) {
    return r->status && strcmp(r->status, "done") == 0 && isfinite(r->val_bpb);
}

static const char *sweep_key(const cad_report_run *r) {
    return r->sweep ? r->sweep : "";
}

static int add_sweep(cad_report_data *d, const char *name) {
    for (int s = 0; s < d->n_sweeps; s++)
        if (strcmp(d->sweeps[s].name, name) == 0) return s;
    cad_report_sweep *ns = realloc(d->sweeps, (size_t)(d->n_sweeps + 1) * sizeof *ns);
    if (!ns) return -1;
    d->sweeps = ns;
    cad_report_sweep *s = &d->sweeps[d->n_sweeps];
    memset(s, 0, sizeof *s);
    s->name = strdup(name);
    s->ref_group = -1;
    return d->n_sweeps++;
}

int cad_report_sweep_of_group(const cad_report_data *d, int group) {
    if (group < 0 || group >= d->n_groups) return -1;
    for (int s = 0; s < d->n_sweeps; s++)
        if (strcmp(d->sweeps[s].name, d->groups[group].sweep) == 0) return s;
    return -1;
}

int cad_report_group_values(const cad_report_data *d, const cad_report_group *g, int nats, double *out) {
    int n = 0;
    for (int i = 0; i < g->n_runs; i++) {
        double v = nats ? d->runs[g->runs[i]].val_loss : d->runs[g->runs[i]].val_bpb;
        if (isfinite(v)) out[n++] = v;
    }
    return n;
}

/* A group's name is its first run's name ("qk_gain_init=5.25 seed=42") without the seed
 * token, since the group stands for all seeds. Returns a malloc'd string. */
static char *name_without_seed(const char *name) {
    char *out = strdup(name);
    if (!out) return NULL;
    char *p = out;
    while ((p = strstr(p, "seed="))) {
        if (p != out && p[-1] != ' ') {
            p += 5;
            continue;
        }
        char *end = p + 5;
        while (*end && *end != ' ') end++;
        while (*end == ' ') end++;
        memmove(p, end, strlen(end) + 1);
    }
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == ' ') out[--n] = 0;
    if (n == 0) {
        free(out);
        return strdup(name);
    }
    return out;
}

static int build_groups(cad_report_data *d, cad_err *e) {
    /* runs arrive ordered by sweep, group_hash: consecutive equal keys form a group */
    for (int i = 0; i < d->n_runs; i++) {
        cad_report_run *r = &d->runs[i];
        int s = add_sweep(d, sweep_key(r));
        if (s < 0) return cad_fail(e, CAD_ENOMEM, "out of memory");
        cad_report_sweep *sw = &d->sweeps[s];
        sw->n_total++;
        const char *st = r->status;
        if (!strcmp(st, "done")) sw->n_done++;
        else if (!strcmp(st, "failed") || !strcmp(st, "interrupted") || !strcmp(st, "cancelled")) sw->n_failed++;
        else if (!strcmp(st, "running")) sw->n_running++;
        else if (!strcmp(st, "queued")) sw->n_queued++;
        else sw->n_other++;
        if (!run_counts(r)) continue;
        int g = -1;
        for (int k = d->n_groups - 1; k >= 0; k--)
            if (!strcmp(d->groups[k].sweep, sweep_key(r)) && !strcmp(d->groups[k].group_hash, r->group_hash)) {
                g = k;
                break;
            }
        if (g < 0) {
            cad_report_group *ng = realloc(d->groups, (size_t)(d->n_groups + 1) * sizeof *ng);
            if (!ng) return cad_fail(e, CAD_ENOMEM, "out of memory");
            d->groups = ng;
            g = d->n_groups++;
            cad_report_group *grp = &d->groups[g];
            memset(grp, 0, sizeof *grp);
            grp->sweep = strdup(sweep_key(r));
            grp->group_hash = strdup(r->group_hash);
            grp->name = name_without_seed(r->name && *r->name ? r->name : r->run_id);
            grp->runs = malloc((size_t)d->n_runs * sizeof *grp->runs);
            if (!grp->sweep || !grp->group_hash || !grp->name || !grp->runs)
                return cad_fail(e, CAD_ENOMEM, "out of memory");
        }
        cad_report_group *grp = &d->groups[g];
        grp->runs[grp->n_runs++] = i;
        r->group = g;
    }
    for (int g = 0; g < d->n_groups; g++) {
        cad_report_group *grp = &d->groups[g];
        double *v = malloc((size_t)(grp->n_runs + 1) * sizeof *v);
        if (!v) return cad_fail(e, CAD_ENOMEM, "out of memory");
        cad_stats_summarize(v, cad_report_group_values(d, grp, 0, v), &grp->bpb);
        cad_stats_summarize(v, cad_report_group_values(d, grp, 1, v), &grp->loss);
        free(v);
        double ratio = 0, step_ms = 0, tps = 0;
        int n_ratio = 0, n_step = 0, n_tps = 0;
        grp->max_artifact_bytes = grp->max_code_bytes = grp->max_train_ms = grp->max_eval_ms = NAN;
        for (int i = 0; i < grp->n_runs; i++) {
            const cad_report_run *r = &d->runs[grp->runs[i]];
            if (isfinite(r->val_loss) && r->val_bpb > 0) { ratio += r->val_loss / r->val_bpb; n_ratio++; }
            if (r->train_ms > 0 && r->steps > 0) { step_ms += r->train_ms / r->steps; n_step++; }
            if (r->train_ms > 0 && r->tokens > 0) { tps += r->tokens / (r->train_ms / 1000); n_tps++; }
            if (isfinite(r->artifact_bytes) && !(r->artifact_bytes <= grp->max_artifact_bytes)) grp->max_artifact_bytes = r->artifact_bytes;
            if (isfinite(r->code_bytes) && !(r->code_bytes <= grp->max_code_bytes)) grp->max_code_bytes = r->code_bytes;
            if (isfinite(r->train_ms) && !(r->train_ms <= grp->max_train_ms)) grp->max_train_ms = r->train_ms;
            if (isfinite(r->eval_ms) && !(r->eval_ms <= grp->max_eval_ms)) grp->max_eval_ms = r->eval_ms;
            if (r->valid == 1) grp->n_valid++;
            if (r->valid == 0) grp->n_invalid++;
            if (r->partial) grp->n_partial++;
        }
        grp->nats_per_bpb = n_ratio ? ratio / n_ratio : NAN;
        grp->mean_step_ms = n_step ? step_ms / n_step : NAN;
        grp->mean_tokens_per_s = n_tps ? tps / n_tps : NAN;
    }
    return CAD_OK;
}

/* ---- swept parameters and labels ---------------------------------------------------------- */

static int str_in(const char *s, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(s, *list)) return 1;
    return 0;
}

/* The value of key for group g ("(unset)" when absent), or NULL when it differs inside g. */
static const char *group_param(const cad_report_data *d, const cad_report_group *g, const char *key) {
    const char *first = NULL;
    for (int i = 0; i < g->n_runs; i++) {
        const char *v = run_param(&d->runs[g->runs[i]], key, NULL);
        if (!v) v = "(unset)";
        if (i == 0) first = v;
        else if (strcmp(v, first) != 0) return NULL;
    }
    return first;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Number of distinct strings in v[0..n) (sorts v). */
static int count_distinct(const char **v, int n) {
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_cstr);
    int k = 1;
    for (int i = 1; i < n; i++) k += strcmp(v[i], v[i - 1]) != 0;
    return k;
}

/* Two keys are one bundle when their values determine each other across the groups
 * (vocab_size with tokenizer_path and data_path): then one chart is enough. That holds iff
 * #distinct(a) == #distinct(b) == #distinct(a, b) — counted by sorting, so a sweep of
 * thousands of groups stays fast. Returns -1 when out of memory. */
static int keys_bijective(const cad_report_data *d, const int *gs, int ng, const char *ka, const char *kb) {
    const char **va = malloc((size_t)(ng + 1) * sizeof *va), **vb = malloc((size_t)(ng + 1) * sizeof *vb);
    const char **vp = malloc((size_t)(ng + 1) * sizeof *vp);
    char *pairs = NULL;
    size_t cap = 0, used = 0;
    int result = -1;
    if (!va || !vb || !vp) goto done;
    for (int i = 0; i < ng; i++) {
        va[i] = group_param(d, &d->groups[gs[i]], ka);
        vb[i] = group_param(d, &d->groups[gs[i]], kb);
        cap += strlen(va[i]) + strlen(vb[i]) + 2;
    }
    pairs = malloc(cap + 1);
    if (!pairs) goto done;
    for (int i = 0; i < ng; i++) {
        /* \x1f (unit separator) cannot occur in a config value printed from YAML scalars */
        vp[i] = pairs + used;
        used += (size_t)sprintf(pairs + used, "%s\x1f%s", va[i], vb[i]) + 1;
    }
    int na = count_distinct(va, ng), nb = count_distinct(vb, ng), np = count_distinct(vp, ng);
    result = na == nb && nb == np;
done:
    free(va);
    free(vb);
    free(vp);
    free(pairs);
    return result;
}

static int key_is_numeric(const cad_report_data *d, const int *gs, int ng, const char *key) {
    for (int i = 0; i < ng; i++) {
        double num;
        const cad_report_group *g = &d->groups[gs[i]];
        if (!run_param(&d->runs[g->runs[0]], key, &num) || !isfinite(num)) return 0;
    }
    return 1;
}

/* The groups of one sweep (indexes into d->groups) and the steps' working lists. */
typedef struct swept_ctx {
    cad_report_data *d;
    cad_report_sweep *sw;
    int *gs, ng;
    char **keys;           /* candidate keys (borrowed from the runs), sorted */
    int nk;
    const char **mode;     /* per swept key: its most common value (ablations), or NULL */
    int ablation;
    /* keys bundled into a swept key (their values determine each other): the key (borrowed
     * from the runs) and the index of the swept key it goes with; an ablation's labels name
     * them beside it (one technique setting several keys), grids show the swept key alone */
    const char **bundled;
    int *bundled_with, n_bundled;
} swept_ctx;

/* The keys any run of the sweep's groups sets, except the per-run ones (seed, run id...). */
static int candidate_keys(swept_ctx *c, cad_err *e) {
    int capk = 0;
    for (int i = 0; i < c->ng; i++) {
        const cad_report_group *g = &c->d->groups[c->gs[i]];
        for (int r = 0; r < g->n_runs; r++) {
            const cad_report_run *run = &c->d->runs[g->runs[r]];
            for (int k = 0; k < run->n_params; k++) {
                const char *key = run->param_keys[k];
                int seen = 0;
                for (int j = 0; j < c->nk && !seen; j++) seen = !strcmp(c->keys[j], key);
                if (seen || str_in(key, per_run_keys)) continue;
                if (c->nk == capk) {
                    capk = capk ? capk * 2 : 64;
                    char **nkeys = realloc(c->keys, (size_t)capk * sizeof *nkeys);
                    if (!nkeys) return cad_fail(e, CAD_ENOMEM, "out of memory");
                    c->keys = nkeys;
                }
                c->keys[c->nk++] = (char *)key;
            }
        }
    }
    if (c->nk > 1) qsort(c->keys, (size_t)c->nk, sizeof *c->keys, cmp_str_ptr);
    return CAD_OK;
}

/* key is constant inside every group and differs between some two. */
static int key_varies(const swept_ctx *c, const char *key) {
    const char *first = NULL;
    int differs = 0;
    for (int i = 0; i < c->ng; i++) {
        const char *v = group_param(c->d, &c->d->groups[c->gs[i]], key);
        if (!v) return 0;
        if (!first) first = v;
        else if (strcmp(first, v) != 0) differs = 1;
    }
    return differs;
}

/* The swept keys: the varying candidates, one per bundle of keys whose values determine each
 * other (named by a numeric key: vocab_size rather than tokenizer_path). */
static int pick_swept_keys(swept_ctx *c, cad_err *e) {
    cad_report_sweep *sw = c->sw;
    sw->swept_keys = malloc((size_t)(c->nk + 1) * sizeof *sw->swept_keys);
    c->bundled = malloc((size_t)(c->nk + 1) * sizeof *c->bundled);
    c->bundled_with = malloc((size_t)(c->nk + 1) * sizeof *c->bundled_with);
    if (!sw->swept_keys || !c->bundled || !c->bundled_with) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (int k = 0; k < c->nk; k++) {
        if (!key_varies(c, c->keys[k])) continue;
        int bundled = 0;
        for (int j = 0; j < sw->n_swept && !bundled; j++) {
            int bij = keys_bijective(c->d, c->gs, c->ng, sw->swept_keys[j], c->keys[k]);
            if (bij < 0) return cad_fail(e, CAD_ENOMEM, "out of memory");
            if (!bij) continue;
            bundled = 1;
            const char *partner = c->keys[k];
            if (!key_is_numeric(c->d, c->gs, c->ng, sw->swept_keys[j]) &&
                key_is_numeric(c->d, c->gs, c->ng, c->keys[k])) {
                char *nk = strdup(c->keys[k]);
                if (!nk) return cad_fail(e, CAD_ENOMEM, "out of memory");
                for (int q = 0; q < c->nk; q++) /* the displaced key becomes the partner */
                    if (!strcmp(c->keys[q], sw->swept_keys[j])) partner = c->keys[q];
                free(sw->swept_keys[j]);
                sw->swept_keys[j] = nk;
            }
            c->bundled[c->n_bundled] = partner;
            c->bundled_with[c->n_bundled++] = j;
        }
        if (bundled) continue;
        if (!(sw->swept_keys[sw->n_swept] = strdup(c->keys[k])))
            return cad_fail(e, CAD_ENOMEM, "out of memory");
        sw->n_swept++;
    }
    return CAD_OK;
}

/* An ablation (three or more keys varied together, e.g. one technique per zip column) is
 * labelled by what each group changes: keys at their most common value across the groups
 * are left out, and the group that changes nothing is the "baseline" (which also makes it
 * the reference). Modes are found among the groups in sweep order, first seen wins ties. */
static int ablation_modes(swept_ctx *c, cad_err *e) {
    int n = c->sw->n_swept;
    c->mode = calloc((size_t)(n ? n : 1), sizeof *c->mode);
    if (!c->mode) return cad_fail(e, CAD_ENOMEM, "out of memory");
    c->ablation = n >= 3 && c->ng >= 3;
    for (int k = 0; c->ablation && k < n; k++) {
        int best = 0;
        for (int i = 0; i < c->ng; i++) {
            const char *v = group_param(c->d, &c->d->groups[c->gs[i]], c->sw->swept_keys[k]);
            int cnt = 0;
            for (int j = 0; j < c->ng; j++) {
                const char *w = group_param(c->d, &c->d->groups[c->gs[j]], c->sw->swept_keys[k]);
                cnt += v && w && !strcmp(v, w);
            }
            if (cnt > best) best = cnt, c->mode[k] = v;
        }
    }
    return CAD_OK;
}

/* The tail of v after its n-th '/' from the end; v itself when it has fewer. */
static const char *path_tail(const char *v, int n) {
    int seen = 0;
    for (const char *p = v + strlen(v); p > v;)
        if (*--p == '/' && ++seen == n) return p + 1;
    return v;
}

typedef struct tail_at {
    const char *tail;
    int at;                /* index of its value */
} tail_at;

static int cmp_tail(const void *a, const void *b) {
    return strcmp(((const tail_at *)a)->tail, ((const tail_at *)b)->tail);
}

/* Path values shortened to their fewest last components that no other value ends in:
 * data/a/x and data/b/x become a/x and b/x, not both x; a value with no unique shorter tail
 * stays whole. Labels stay distinct: two equal tails have the same number of components,
 * and a tail is taken only when no other value's tail of that length is the same. out[i]
 * points into vals[i]. Level by level with a sort, so thousands of groups stay fast. */
static int short_values(const char **vals, int n, const char **out, cad_err *e) {
    const char **dv = malloc((size_t)(n + 1) * sizeof *dv), **res = calloc((size_t)n + 1, sizeof *res);
    tail_at *t = malloc((size_t)(n + 1) * sizeof *t);
    if (!dv || !res || !t) {
        free(dv), free(res), free(t);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    memcpy(dv, vals, (size_t)n * sizeof *dv);
    int nd = count_distinct(dv, n), open = 0; /* dv sorted; its first nd are the distinct values */
    for (int i = 1, k = 1; i < n; i++)
        if (strcmp(dv[i], dv[k - 1]) != 0) dv[k++] = dv[i];
    for (int d = 0; d < nd; d++) open += !(res[d] = strchr(dv[d], '/') ? NULL : dv[d]);
    for (int level = 1; open; level++) {
        for (int d = 0; d < nd; d++) t[d] = (tail_at){path_tail(dv[d], level), d};
        qsort(t, (size_t)nd, sizeof *t, cmp_tail);
        for (int a = 0, b; a < nd; a = b) {
            for (b = a + 1; b < nd && !strcmp(t[b].tail, t[a].tail);) b++;
            int d = t[a].at;
            if (b - a == 1 && !res[d] && *t[a].tail) res[d] = t[a].tail, open--;
        }
        for (int d = 0; d < nd; d++) /* no tail shorter than the whole value was unique */
            if (!res[d] && path_tail(dv[d], level) == dv[d]) res[d] = dv[d], open--;
    }
    for (int i = 0; i < n; i++) {
        const char **hit = bsearch(&vals[i], dv, (size_t)nd, sizeof *dv, cmp_cstr);
        const char *r = res[hit - dv];
        out[i] = vals[i] + (r - *hit); /* the same tail of this group's own string */
    }
    free(dv), free(res), free(t);
    return CAD_OK;
}

/* Labels "k=v k2=v2" (path values shortened by short_values), the group name when nothing
 * was swept, "baseline" for an ablation's unchanged group. */
static int make_labels(swept_ctx *c, cad_err *e) {
    const cad_report_sweep *sw = c->sw;
    const char **vals = malloc((size_t)(c->ng + 1) * sizeof *vals);
    if (!vals) return cad_fail(e, CAD_ENOMEM, "out of memory");
    /* per key, each group's value as shown (column k at shown + k * ng) */
    const char **shown = calloc((size_t)c->ng * (size_t)(sw->n_swept ? sw->n_swept : 1), sizeof *shown);
    if (!shown) {
        free(vals);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    int rc = CAD_OK;
    for (int k = 0; k < sw->n_swept && !rc; k++) {
        for (int i = 0; i < c->ng; i++) vals[i] = group_param(c->d, &c->d->groups[c->gs[i]], sw->swept_keys[k]);
        rc = short_values(vals, c->ng, shown + (size_t)k * (size_t)c->ng, e);
    }
    for (int i = 0; i < c->ng && !rc; i++) {
        cad_report_group *g = &c->d->groups[c->gs[i]];
        char buf[LABEL_MAX] = "";
        size_t o = 0;
        for (int k = 0; k < sw->n_swept && o < sizeof buf - 1; k++) {
            const char *v = group_param(c->d, g, sw->swept_keys[k]);
            if (c->ablation && c->mode[k] && !strcmp(v, c->mode[k])) continue;
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s=%s", o ? " " : "", sw->swept_keys[k],
                                  shown[(size_t)k * (size_t)c->ng + (size_t)i]);
            for (int b = 0; c->ablation && b < c->n_bundled && o < sizeof buf - 1; b++) {
                const char *pv = c->bundled_with[b] == k ? group_param(c->d, g, c->bundled[b]) : NULL;
                if (pv) o += (size_t)snprintf(buf + o, sizeof buf - o, " %s=%s", c->bundled[b], pv);
            }
        }
        if (o >= sizeof buf) o = sizeof buf - 1;
        g->label = strdup(o ? buf : c->ablation ? "baseline" : g->name);
        if (!g->label) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    free(shown);
    free(vals);
    return rc;
}

/* A sweep's swept keys and its groups' labels, in named steps. */
static int find_swept(cad_report_data *d, cad_report_sweep *sw, cad_err *e) {
    swept_ctx c = {d, sw, NULL, 0, NULL, 0, NULL, 0, NULL, NULL, 0};
    c.gs = malloc((size_t)(d->n_groups + 1) * sizeof *c.gs);
    if (!c.gs) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (int g = 0; g < d->n_groups; g++)
        if (!strcmp(d->groups[g].sweep, sw->name)) c.gs[c.ng++] = g;
    int rc = candidate_keys(&c, e);
    if (!rc) rc = pick_swept_keys(&c, e);
    free(c.keys);
    if (!rc) rc = ablation_modes(&c, e);
    if (!rc) rc = make_labels(&c, e);
    free(c.bundled);
    free(c.bundled_with);
    free(c.mode);
    free(c.gs);
    return rc;
}

/* ---- reference and comparisons ------------------------------------------------------------ */

void cad_report_group_compare(const cad_report_data *d, cad_report_group *g, const cad_report_group *ref) {
    memset(&g->cmp, 0, sizeof g->cmp);
    g->cmp.clears_bar = g->cmp.frontier = -1;
    g->cmp.delta_nats = g->cmp.bar_margin_bpb = NAN;
    if (!ref || ref == g) return;
    g->cmp.has = 1;
    int cap = (g->n_runs > ref->n_runs ? g->n_runs : ref->n_runs) + 1;
    double *a = malloc((size_t)cap * sizeof *a), *b = malloc((size_t)cap * sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        g->cmp.has = 0;
        return;
    }
    int na = cad_report_group_values(d, g, 0, a), nb = cad_report_group_values(d, ref, 0, b);
    cad_stats_welch_test(a, na, b, nb, 0, &g->cmp.bpb);
    if (g->cmp.bpb.ok) g->cmp.frontier = g->cmp.bpb.p < CAD_STATS_FRONTIER_ALPHA;
    /* The bar is 0.005 nats of val_loss. val_loss = val_bpb * (nats per bpb), a constant of
     * the tokenizer and val set, so on one tokenizer testing val_bpb against 0.005/ratio is
     * the same test as val_loss against 0.005 — and it stays meaningful when the tokenizers
     * differ (nats per *token* are then not comparable): we take the smaller ratio, i.e. the
     * larger, stricter margin in bpb. */
    double ra = g->nats_per_bpb, rb = ref->nats_per_bpb;
    if (isfinite(ra) && isfinite(rb) && ra > 0 && rb > 0) {
        g->cmp.bar_margin_bpb = CAD_STATS_BAR_NATS / (ra < rb ? ra : rb);
        g->cmp.delta_nats = g->cmp.bpb.delta * rb;
        cad_stats_welch_test(a, na, b, nb, g->cmp.bar_margin_bpb, &g->cmp.bar);
        if (g->cmp.bar.ok) g->cmp.clears_bar = g->cmp.bar.p < CAD_STATS_BAR_ALPHA;
    } else {
        g->cmp.bar.ok = 0;
        g->cmp.bar.p = g->cmp.bar.t = g->cmp.bar.df = g->cmp.bar.se = NAN;
        g->cmp.bar.delta = g->cmp.bpb.delta;
    }
    free(a);
    free(b);
}

static int name_has_baseline(const char *s) {
    if (!s) return 0;
    for (; *s; s++)
        if (strncasecmp(s, "baseline", 8) == 0) return 1;
    return 0;
}

int cad_report_group_find(const cad_report_data *d, const char *what, cad_err *e) {
    size_t n = strlen(what);
    if (n == 0) return cad_fail(e, CAD_EUSAGE, "empty group or run name"), -1;
    for (int g = 0; g < d->n_groups; g++)
        if (!strcmp(d->groups[g].group_hash, what)) return g;
    int found = -1, count = 0;
    for (int g = 0; g < d->n_groups; g++)
        if (!strncmp(d->groups[g].group_hash, what, n)) {
            if (found < 0 || strcmp(d->groups[found].group_hash, d->groups[g].group_hash)) count++;
            found = g;
        }
    if (count == 1) return found;
    if (count > 1) return cad_fail(e, CAD_EUSAGE, "'%s' is an ambiguous group hash prefix (%d groups)", what, count), -1;
    for (int i = 0; i < d->n_runs; i++) {
        const cad_report_run *r = &d->runs[i];
        if (strcmp(r->run_id, what) && !(r->name && !strcmp(r->name, what))) continue;
        if (r->group >= 0) return r->group;
        cad_fail(e, CAD_ERR, "run '%s' has no result (status %s)", what, r->status);
        return -1;
    }
    found = -1;
    count = 0;
    for (int g = 0; g < d->n_groups; g++)
        if (d->groups[g].label && !strcmp(d->groups[g].label, what)) { found = g; count++; }
    if (count == 1) return found;
    if (count > 1) return cad_fail(e, CAD_EUSAGE, "'%s' names groups in %d sweeps: use the group hash", what, count), -1;
    cad_fail(e, CAD_ERR, "no group or run matches '%s' (give a group hash or prefix, a run id, a run name or a group label)", what);
    return -1;
}

/* Earliest start time of a group's runs (NULL when none has one) and its first run index. */
static const char *group_first_start(const cad_report_data *d, const cad_report_group *g, int *first_idx) {
    const char *best = NULL;
    *first_idx = d->n_runs;
    for (int i = 0; i < g->n_runs; i++) {
        const cad_report_run *r = &d->runs[g->runs[i]];
        if (r->started_at && (!best || strcmp(r->started_at, best) < 0)) best = r->started_at;
        if (g->runs[i] < *first_idx) *first_idx = g->runs[i];
    }
    return best;
}

static int pick_references(cad_report_data *d, const cad_report_query *q, cad_err *e) {
    int global_ref = -1;
    if (q->ref) {
        global_ref = cad_report_group_find(d, q->ref, e);
        if (global_ref < 0) return cad_wrap(e, "--ref");
    }
    for (int s = 0; s < d->n_sweeps; s++) {
        cad_report_sweep *sw = &d->sweeps[s];
        if (global_ref >= 0) {
            sw->ref_group = global_ref;
            snprintf(sw->ref_reason, sizeof sw->ref_reason, "chosen with --ref %.100s", q->ref);
            continue;
        }
        int best = -1, best_idx = 0;
        const char *best_start = NULL;
        for (int g = 0; g < d->n_groups; g++) {
            cad_report_group *grp = &d->groups[g];
            if (strcmp(grp->sweep, sw->name)) continue;
            int named = name_has_baseline(grp->name) || name_has_baseline(grp->label);
            if (named) {
                best = g;
                snprintf(sw->ref_reason, sizeof sw->ref_reason, "its name says baseline; --ref picks another");
                break;
            }
            int idx;
            const char *start = group_first_start(d, grp, &idx);
            int c = best < 0 ? -1 : str_null_cmp(start, best_start);
            if (best < 0 || c < 0 || (c == 0 && idx < best_idx)) {
                best = g;
                best_start = start;
                best_idx = idx;
                snprintf(sw->ref_reason, sizeof sw->ref_reason, "the first group that ran; --ref picks another");
            }
        }
        sw->ref_group = best;
    }
    return CAD_OK;
}

/* Sort groups best first (mean val_bpb), keeping run->group and ref indices right. */
static int cmp_group_mean(const void *a, const void *b, void *ctx) {
    const cad_report_group *g = ctx;
    double x = g[*(const int *)a].bpb.mean, y = g[*(const int *)b].bpb.mean;
    if (x < y) return -1;
    if (x > y) return 1;
    return strcmp(g[*(const int *)a].group_hash, g[*(const int *)b].group_hash);
}

static int sort_groups(cad_report_data *d, cad_err *e) {
    int n = d->n_groups;
    if (n < 2) return CAD_OK;
    int *order = malloc((size_t)n * sizeof *order), *where = malloc((size_t)n * sizeof *where);
    cad_report_group *sorted = malloc((size_t)n * sizeof *sorted);
    if (!order || !where || !sorted) {
        free(order); free(where); free(sorted);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) order[i] = i;
    qsort_r(order, (size_t)n, sizeof *order, cmp_group_mean, d->groups);
    for (int i = 0; i < n; i++) {
        sorted[i] = d->groups[order[i]];
        where[order[i]] = i;
    }
    free(d->groups);
    d->groups = sorted;
    for (int i = 0; i < d->n_runs; i++)
        if (d->runs[i].group >= 0) d->runs[i].group = where[d->runs[i].group];
    free(order);
    free(where);
    return CAD_OK;
}

int cad_report_data_load(cad_db *db, const cad_report_query *q, cad_report_data *out, cad_err *e) {
    memset(out, 0, sizeof *out);
    cad_view_filter f = {q->sweeps, q->n_sweeps, q->where};
    run_ctx rc_ctx = {out, 0};
    int rc = cad_view_runs(db, &f, add_run, &rc_ctx, e);
    if (!rc) rc = load_params(db, &f, out, e);
    if (!rc) rc = fill_keys_of_older_runs(out, q, e);
    if (!rc) rc = build_groups(out, e);
    if (!rc) rc = sort_groups(out, e);
    for (int s = 0; !rc && s < out->n_sweeps; s++) rc = find_swept(out, &out->sweeps[s], e);
    if (!rc) rc = pick_references(out, q, e);
    if (rc) {
        cad_report_data_free(out);
        return rc;
    }
    for (int g = 0; g < out->n_groups; g++) {
        int s = cad_report_sweep_of_group(out, g);
        int ref = s >= 0 ? out->sweeps[s].ref_group : -1;
        out->groups[g].is_ref = ref == g;
        cad_report_group_compare(out, &out->groups[g], ref >= 0 ? &out->groups[ref] : NULL);
    }
    return CAD_OK;
}

/* ---- selections and seed planning --------------------------------------------------------- */

int cad_report_select(const cad_report_data *d, const char *what, cad_report_group *out, int *is_run,
                      cad_err *e) {
    memset(out, 0, sizeof *out);
    *is_run = 0;
    for (int i = 0; i < d->n_runs; i++) {
        const cad_report_run *r = &d->runs[i];
        if (strcmp(r->run_id, what)) continue;
        if (r->group < 0) return cad_fail(e, CAD_ERR, "run '%s' has no result (status %s)", what, r->status);
        *out = d->groups[r->group];
        out->runs = malloc(sizeof *out->runs);
        if (!out->runs) return cad_fail(e, CAD_ENOMEM, "out of memory");
        out->runs[0] = i;
        out->n_runs = 1;
        out->label = r->name && *r->name ? r->name : r->run_id;
        double v[1];
        cad_stats_summarize(v, cad_report_group_values(d, out, 0, v), &out->bpb);
        cad_stats_summarize(v, cad_report_group_values(d, out, 1, v), &out->loss);
        out->max_artifact_bytes = r->artifact_bytes;
        out->max_code_bytes = r->code_bytes;
        out->max_train_ms = r->train_ms;
        out->max_eval_ms = r->eval_ms;
        out->n_valid = r->valid == 1;
        out->n_invalid = r->valid == 0;
        *is_run = 1;
        return CAD_OK;
    }
    int g = cad_report_group_find(d, what, e);
    if (g < 0) return e->code ? e->code : CAD_ERR;
    *out = d->groups[g];
    out->runs = malloc((size_t)out->n_runs * sizeof *out->runs);
    if (!out->runs) return cad_fail(e, CAD_ENOMEM, "out of memory");
    memcpy(out->runs, d->groups[g].runs, (size_t)out->n_runs * sizeof *out->runs);
    return CAD_OK;
}

double cad_report_pooled_loss_std(const cad_report_data *d, int *dof) {
    double ss = 0;
    *dof = 0;
    for (int g = 0; g < d->n_groups; g++)
        if (isfinite(d->groups[g].loss.std)) {
            ss += d->groups[g].loss.std * d->groups[g].loss.std * (d->groups[g].loss.n - 1);
            *dof += d->groups[g].loss.n - 1;
        }
    return *dof ? sqrt(ss / *dof) : NAN;
}

void cad_report_seeds_needed(const cad_report_group *g, const cad_report_group *ref, double pooled, double delta,
                             cad_report_seeds *out) {
    memset(out, 0, sizeof *out);
    out->own_std = isfinite(g->loss.std);
    out->own_ref_std = ref && isfinite(ref->loss.std);
    out->std = out->own_std ? g->loss.std : pooled;
    out->ref_std = out->own_ref_std ? ref->loss.std : pooled;
    out->has_std = isfinite(out->std) && isfinite(out->ref_std);
    out->has_delta = isfinite(g->cmp.delta_nats);
    double sa = out->std, sb = out->ref_std;
    out->for_delta = cad_stats_seeds_needed(delta, 0, sa, sb, CAD_STATS_BAR_ALPHA, CAD_REPORT_MAX_SEEDS);
    if (out->has_delta) {
        out->observed = cad_stats_seeds_needed(-g->cmp.delta_nats, 0, sa, sb, CAD_STATS_BAR_ALPHA, CAD_REPORT_MAX_SEEDS);
        out->record_bar =
            cad_stats_seeds_needed(-g->cmp.delta_nats, CAD_STATS_BAR_NATS, sa, sb, CAD_STATS_BAR_ALPHA, CAD_REPORT_MAX_SEEDS);
    }
}

/* ---- formatting shared with the terminal tables ------------------------------------------ */

void cad_report_fmt_p(char *buf, size_t n, double p) {
    if (!isfinite(p)) snprintf(buf, n, "–");
    else if (p < 1e-6) snprintf(buf, n, "<1e-6");
    else if (p < 0.001) snprintf(buf, n, "%.1e", p);
    else snprintf(buf, n, "%.4f", p);
}

void cad_report_fmt_bytes(char *buf, size_t n, double bytes) {
    if (!isfinite(bytes)) {
        snprintf(buf, n, "–");
        return;
    }
    cad_svg_format_thousands(buf, n, llround(bytes));
}

void cad_report_fmt_signed(char *buf, size_t n, double v, int decimals) {
    if (!isfinite(v)) snprintf(buf, n, "–");
    else snprintf(buf, n, "%s%.*f", v < 0 ? "-" : "+", decimals, fabs(v));
}

/*
 * earlystop.c — median and ASHA stopping decisions on step-matched curves (earlystop.h).
 */
#include "runner/earlystop.h"

#include "db/runs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cad_es_set_free(cad_es_set *set) {
    for (int i = 0; i < set->n; i++) {
        free(set->c[i].step);
        free(set->c[i].value);
    }
    free(set->c);
    memset(set, 0, sizeof *set);
}

int cad_es_add(cad_es_set *set, const char *run_id, long step, double value, cad_err *e) {
    cad_es_curve *c = set->n ? &set->c[set->n - 1] : NULL;
    if (!c || strcmp(c->run_id, run_id) != 0) {
        c = NULL;
        for (int i = 0; i < set->n && !c; i++)
            if (strcmp(set->c[i].run_id, run_id) == 0) c = &set->c[i];
    }
    if (!c) {
        if (set->n == set->cap) {
            int nc = set->cap ? 2 * set->cap : 16;
            cad_es_curve *nv = realloc(set->c, (size_t)nc * sizeof *nv);
            if (!nv) return cad_fail(e, CAD_ENOMEM, "out of memory");
            set->c = nv;
            set->cap = nc;
        }
        c = &set->c[set->n++];
        memset(c, 0, sizeof *c);
        snprintf(c->run_id, sizeof c->run_id, "%s", run_id);
    }
    if (c->n && step <= c->step[c->n - 1])
        return cad_fail(e, CAD_ERR, "%s: step %ld after step %ld", run_id, step, c->step[c->n - 1]);
    if (c->n == c->cap) {
        int nc = c->cap ? 2 * c->cap : 32;
        long *ns = realloc(c->step, (size_t)nc * sizeof *ns);
        if (!ns) return cad_fail(e, CAD_ENOMEM, "out of memory");
        c->step = ns;
        double *nv = realloc(c->value, (size_t)nc * sizeof *nv);
        if (!nv) return cad_fail(e, CAD_ENOMEM, "out of memory");
        c->value = nv;
        c->cap = nc;
    }
    c->step[c->n] = step;
    c->value[c->n] = value;
    c->n++;
    return CAD_OK;
}

typedef struct load_ctx {
    cad_es_set *set;
    cad_err *e;
} load_ctx;

static int load_point(void *ctx, const char *run_id, long step, double value) {
    load_ctx *l = ctx;
    return cad_es_add(l->set, run_id, step, value, l->e);
}

int cad_es_load(cad_db *db, const char *sweep, const char *metric, cad_es_set *set, cad_err *e) {
    cad_es_set_free(set);
    load_ctx l = {set, e};
    return cad_db_each_sweep_curve_point(db, sweep, metric, load_point, &l, e);
}

int cad_es_value_at(const cad_es_curve *c, long step, double *value) {
    if (c->n == 0 || step < c->step[0] || step > c->step[c->n - 1]) return 0;
    int lo = 0, hi = c->n - 1; /* the last point at or before step */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (c->step[mid] <= step) lo = mid;
        else hi = mid - 1;
    }
    if (c->step[lo] == step || lo == c->n - 1) {
        *value = c->value[lo];
        return 1;
    }
    double t = (double)(step - c->step[lo]) / (double)(c->step[lo + 1] - c->step[lo]);
    *value = c->value[lo] + t * (c->value[lo + 1] - c->value[lo]);
    return 1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The values of every curve but self's at step into v; returns how many. */
static int others_at(const cad_es_set *set, const cad_es_curve *self, long step, double *v) {
    int n = 0;
    for (int i = 0; i < set->n; i++) {
        double x;
        if (&set->c[i] != self && cad_es_value_at(&set->c[i], step, &x) && isfinite(x)) v[n++] = x;
    }
    return n;
}

static int decide_median(const cad_sweep_stop *rule, const cad_es_set *set, const cad_es_curve *self,
                         long planned, double *v, long *at_step, char *why, size_t cap) {
    double from = rule->min_fraction * (double)planned;
    for (int k = 0; k < self->n; k++) {
        if ((double)self->step[k] < from || !isfinite(self->value[k])) continue;
        int n = others_at(set, self, self->step[k], v);
        if (n < rule->grace_runs) continue;
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
        if (self->value[k] > med) {
            *at_step = self->step[k];
            snprintf(why, cap, "median: %s %.4f at step %ld > median %.4f of %d runs", rule->metric,
                     self->value[k], self->step[k], med, n);
            return 1;
        }
    }
    return 0;
}

static int decide_asha(const cad_sweep_stop *rule, const cad_es_set *set, const cad_es_curve *self,
                       long planned, double *v, long *at_step, char *why, size_t cap) {
    for (int r = 0; r < rule->n_rungs; r++) {
        long rung = (long)ceil(rule->rungs[r] * (double)planned);
        if (rung < 1) rung = 1;
        double mine;
        if (!cad_es_value_at(self, rung, &mine) || !isfinite(mine)) continue;
        int n = others_at(set, self, rung, v);
        if (n < rule->grace_runs) continue;
        int better = 0;
        for (int i = 0; i < n; i++) better += v[i] < mine;
        int total = n + 1, rank = better + 1;
        int keep = (int)floor((double)total / rule->reduction_factor);
        if (keep < 1) keep = 1;
        if (rank > keep) {
            *at_step = rung;
            snprintf(why, cap, "asha: %s %.4f at step %ld (rung %g) ranks %d of %d > top 1/%g = %d",
                     rule->metric, mine, rung, rule->rungs[r], rank, total,
                     rule->reduction_factor, keep);
            return 1;
        }
    }
    return 0;
}

int cad_es_decide(const cad_sweep_stop *rule, const cad_es_set *set, const char *run_id,
                  long planned_steps, long *at_step, char *why, size_t cap) {
    if (rule->rule == CAD_STOP_OFF || planned_steps <= 0) return 0;
    const cad_es_curve *self = NULL;
    for (int i = 0; i < set->n && !self; i++)
        if (strcmp(set->c[i].run_id, run_id) == 0) self = &set->c[i];
    if (!self || self->n == 0) return 0;
    double *v = malloc((size_t)(set->n ? set->n : 1) * sizeof *v);
    if (!v) return 0; /* no memory to judge: the run goes on, judged again next time */
    int stop = rule->rule == CAD_STOP_MEDIAN
                   ? decide_median(rule, set, self, planned_steps, v, at_step, why, cap)
                   : decide_asha(rule, set, self, planned_steps, v, at_step, why, cap);
    free(v);
    return stop;
}

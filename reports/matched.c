/*
 * matched.c — step-matched and wallclock-matched comparisons from the curves (matched.h).
 */
#include "reports/matched.h"

#include "db/views.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int cad_report_interp(const double *xs, const double *ys, int n, double x, double *y) {
    if (n <= 0 || x < xs[0] || x > xs[n - 1]) return 0;
    int lo = 0, hi = n - 1; /* the last point at or before x */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (xs[mid] <= x) lo = mid;
        else hi = mid - 1;
    }
    if (xs[lo] == x || lo == n - 1) {
        *y = ys[lo];
        return 1;
    }
    double t = (x - xs[lo]) / (xs[lo + 1] - xs[lo]);
    *y = ys[lo] + t * (ys[lo + 1] - ys[lo]);
    return 1;
}

void cad_report_matched_free(cad_report_matched *m) {
    for (int k = 0; k < 2; k++) {
        free(m->values[k]);
        free(m->run[k]);
        m->values[k] = NULL;
        m->run[k] = NULL;
    }
}

typedef struct curve {
    double *x, *y;
    int n;
} curve;

static int read_curve(cad_view_curves *vc, const char *run_id, const char *metric, int by_wall, curve *c,
                      cad_err *e) {
    return by_wall ? cad_view_curve_read_wall(vc, run_id, metric, &c->x, &c->y, &c->n, e)
                   : cad_view_curve_read(vc, run_id, metric, &c->x, &c->y, &c->n, e);
}

int cad_report_matched_compare(cad_db *db, const cad_report_data *d, const cad_report_group sel[2],
                               const char *metric, int by_wall, int x_given, double x,
                               cad_report_matched *out, cad_err *e) {
    memset(out, 0, sizeof *out);
    out->by_wall = by_wall;
    out->x_given = x_given;
    int total = sel[0].n_runs + sel[1].n_runs;
    curve *cv = calloc((size_t)(total ? total : 1), sizeof *cv);
    if (!cv) return cad_fail(e, CAD_ENOMEM, "out of memory");
    cad_view_curves *vc = NULL;
    int rc = cad_view_curves_open(db, &vc, e);
    for (int k = 0, i = 0; k < 2 && !rc; k++)
        for (int j = 0; j < sel[k].n_runs && !rc; j++, i++)
            rc = read_curve(vc, d->runs[sel[k].runs[j]].run_id, metric, by_wall, &cv[i], e);
    cad_view_curves_close(vc);
    const char *what = by_wall ? "training time" : "step";
    /* the common last x: the smallest last point over every run that has the curve */
    if (!rc && !x_given) {
        double last = INFINITY;
        for (int i = 0; i < total; i++)
            if (cv[i].n && cv[i].x[cv[i].n - 1] < last) last = cv[i].x[cv[i].n - 1];
        if (!isfinite(last)) rc = cad_fail(e, CAD_ERR, "no run of A or B has a %s curve", metric);
        x = last;
    }
    out->x = x;
    for (int k = 0, i = 0; k < 2 && !rc; k++) {
        out->values[k] = malloc((size_t)(sel[k].n_runs ? sel[k].n_runs : 1) * sizeof(double));
        out->run[k] = malloc((size_t)(sel[k].n_runs ? sel[k].n_runs : 1) * sizeof(int));
        if (!out->values[k] || !out->run[k]) {
            rc = cad_fail(e, CAD_ENOMEM, "out of memory");
            break;
        }
        for (int j = 0; j < sel[k].n_runs; j++, i++) {
            double y;
            if (cad_report_interp(cv[i].x, cv[i].y, cv[i].n, x, &y)) {
                out->values[k][out->n[k]] = y;
                out->run[k][out->n[k]++] = sel[k].runs[j];
            } else {
                out->n_missing[k]++;
            }
        }
        if (!out->n[k])
            rc = cad_fail(e, CAD_ERR, "no run of %s has %s at %s %g", k ? "B" : "A", metric, what, x);
    }
    for (int i = 0; i < total; i++) {
        free(cv[i].x);
        free(cv[i].y);
    }
    free(cv);
    if (rc) {
        cad_report_matched_free(out);
        return rc;
    }
    for (int k = 0; k < 2; k++) cad_stats_summarize(out->values[k], out->n[k], &out->sum[k]);
    cad_stats_welch_test(out->values[0], out->n[0], out->values[1], out->n[1], 0, &out->welch);
    return CAD_OK;
}

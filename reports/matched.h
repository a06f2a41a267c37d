/*
 * matched.h — two selections (runs or groups of seeds) compared at an equal step or an equal
 * training time, from their curves, not only from the final score: `caddie compare
 * --step-matched [--step N]` and `--wallclock-matched MS`, the records' step-matched
 * comparisons.
 *
 * Each run's value at x (a step, or a training time in ms) is its logged point at x or the
 * straight line between the points on either side (linear interpolation). Without a given x
 * the comparison is at the last step (time) every run of both sides reached. A run whose
 * curve does not reach x is left out and counted.
 * Reads only through db/views.h (the curves view).
 * Not here: the final-score comparison (report.h), printing (cli/cmd_report.c).
 */
#ifndef CADDIE_REPORTS_MATCHED_H
#define CADDIE_REPORTS_MATCHED_H

#include "db/db.h"
#include "reports/report.h"
#include "reports/stats.h"

typedef struct cad_report_matched {
    int by_wall;           /* 0: x is a step; 1: x is a training time in ms */
    int x_given;           /* 1: x was asked for; 0: the last x every run reached */
    double x;
    int n[2];              /* runs of each side with a value at x */
    int n_missing[2];      /* runs of each side whose curve does not reach x */
    double *values[2];     /* n[k] values, in the selection's run order */
    int *run[2];           /* their indices into cad_report_data.runs */
    cad_stats_summary sum[2];
    cad_stats_welch welch; /* one-sided, H1: A better (lower) */
} cad_report_matched;

/* Compare sel[0] (A) with sel[1] (B) on metric at x (x_given = 0: the common last x).
 * CAD_ERR with a message when a side has no curve of metric, or no run reaches x. */
int cad_report_matched_compare(cad_db *db, const cad_report_data *d, const cad_report_group sel[2],
                               const char *metric, int by_wall, int x_given, double x,
                               cad_report_matched *out, cad_err *e);
void cad_report_matched_free(cad_report_matched *m);

/* y of the polyline (xs ascending, n points) at x; 0 when x is outside [xs[0], xs[n-1]]. */
int cad_report_interp(const double *xs, const double *ys, int n, double x, double *y);

#endif

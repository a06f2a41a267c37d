/*
 * stop.h — a sweep's early-stopping rule (the `stop:` section of a sweep file), typed.
 *
 *   stop: {rule: median, metric: val_bpb, min_fraction: 0.25, grace_runs: 4}
 *   stop: {rule: asha, metric: val_bpb, reduction_factor: 3, rungs: [0.25, 0.5], grace_runs: 4}
 *
 * Off when the section is absent (or `rule: off`). The runner applies it (runner/earlystop.h)
 * with the rule read back from the sweep's stored YAML text (sweeps.spec), so a rule survives
 * `caddie db rebuild` and the file need not exist at run time. docs/sweeps.md#early-stopping
 * documents the keys and how to choose.
 * Not here: the decision (runner/earlystop.h), the rest of the sweep file (sweep/spec.h).
 */
#ifndef CADDIE_SWEEP_STOP_H
#define CADDIE_SWEEP_STOP_H

#include "engine/status.h"
#include "engine/yamltree.h"

typedef enum { CAD_STOP_OFF = 0, CAD_STOP_MEDIAN, CAD_STOP_ASHA } cad_stop_rule;

#define CAD_STOP_MAX_RUNGS 16
#define CAD_STOP_METRIC_MAX 32   /* a metric name, as in the metrics table */

typedef struct cad_sweep_stop {
    cad_stop_rule rule;
    char metric[CAD_STOP_METRIC_MAX]; /* default "val_bpb"; lower is better */
    double min_fraction;     /* median: judge points past this fraction of the planned steps (0.25) */
    int grace_runs;          /* both: decide only once this many other runs reached the step (4) */
    double reduction_factor; /* asha: eta > 1; the top 1/eta of a rung continue (3) */
    int n_rungs;             /* asha: rungs as fractions of the planned steps, increasing */
    double rungs[CAD_STOP_MAX_RUNGS]; /* default 0.25, 0.5 */
} cad_sweep_stop;

/* The rule's defaults with rule = off. */
void cad_sweep_stop_init(cad_sweep_stop *s);

/* Parse the value of `stop:` (a map) in document d: unknown keys (with the closest name),
 * keys of the other rule, out-of-range values are errors "file:line:col: message". */
int cad_sweep_stop_parse(const yt_doc *d, const yt_node *n, cad_sweep_stop *out, cad_err *e);

/* The rule of a sweep from its whole YAML text (as stored in sweeps.spec): only `stop:` is
 * read; no section means off. name is used in messages. */
int cad_sweep_stop_from_text(const char *name, const char *text, size_t len, cad_sweep_stop *out,
                             cad_err *e);

/* "rule" name: "off", "median", "asha". */
const char *cad_stop_rule_name(cad_stop_rule r);

#endif

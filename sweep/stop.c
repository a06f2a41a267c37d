/*
 * stop.c — the `stop:` section of a sweep file (see stop.h).
 */
#include "sweep/stop.h"

#include "engine/config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const stop_keys[] = {"rule", "metric", "min_fraction", "grace_runs",
                                        "reduction_factor", "rungs", NULL};
static const char *const rule_names[] = {"off", "median", "asha", NULL};

const char *cad_stop_rule_name(cad_stop_rule r) {
    return (unsigned)r < 3 ? rule_names[r] : "?";
}

void cad_sweep_stop_init(cad_sweep_stop *s) {
    memset(s, 0, sizeof *s);
    s->rule = CAD_STOP_OFF;
    snprintf(s->metric, sizeof s->metric, "val_bpb");
    s->min_fraction = 0.25;
    s->grace_runs = 4;
    s->reduction_factor = 3;
    s->n_rungs = 2;
    s->rungs[0] = 0.25;
    s->rungs[1] = 0.5;
}

static const char *closest(const char *name, const char *const *list) {
    const char *best = list[0];
    int bd = 1 << 30;
    for (int i = 0; list[i]; i++) {
        int d = cad_edit_distance(name, list[i]);
        if (d < bd) bd = d, best = list[i];
    }
    return best;
}

static int want_double(const yt_doc *d, const yt_node *n, const char *what, double lo, double hi,
                       int lo_open, int hi_open, double *out, cad_err *e) {
    if (n->kind != YT_SCALAR || yt_scalar_double(d, n, out, NULL) != CAD_OK || !isfinite(*out))
        return yt_fail(e, CAD_EFORMAT, d, n, "stop: '%s' must be a number", what);
    if ((lo_open ? *out <= lo : *out < lo) || (hi_open ? *out >= hi : *out > hi))
        return yt_fail(e, CAD_ECONFIG, d, n, "stop: '%s' must be in %c%g, %g%c, got %g", what,
                       lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']', *out);
    return CAD_OK;
}

static int parse_rungs(const yt_doc *d, const yt_node *n, cad_sweep_stop *s, cad_err *e) {
    if (n->kind != YT_SEQ || n->n == 0)
        return yt_fail(e, CAD_EFORMAT, d, n, "stop: 'rungs' must be a non-empty list of fractions");
    if (n->n > CAD_STOP_MAX_RUNGS)
        return yt_fail(e, CAD_ECONFIG, d, n, "stop: at most %d rungs, got %zu", CAD_STOP_MAX_RUNGS,
                       n->n);
    s->n_rungs = (int)n->n;
    for (size_t i = 0; i < n->n; i++) {
        int rc = want_double(d, n->items[i], "rungs", 0, 1, 1, 1, &s->rungs[i], e);
        if (rc) return rc;
        if (i > 0 && s->rungs[i] <= s->rungs[i - 1])
            return yt_fail(e, CAD_ECONFIG, d, n->items[i],
                           "stop: rungs must increase (%g after %g)", s->rungs[i], s->rungs[i - 1]);
    }
    return CAD_OK;
}

int cad_sweep_stop_parse(const yt_doc *d, const yt_node *n, cad_sweep_stop *out, cad_err *e) {
    cad_sweep_stop_init(out);
    if (n->kind != YT_MAP)
        return yt_fail(e, CAD_EFORMAT, d, n,
                       "'stop' must be a map, e.g. {rule: median, metric: val_bpb}");
    for (size_t i = 0; i < n->n; i++) {
        const char *k = n->keys[i]->value;
        int known = 0;
        for (int j = 0; stop_keys[j]; j++) known |= strcmp(k, stop_keys[j]) == 0;
        if (!known)
            return yt_fail(e, CAD_EFORMAT, d, n->keys[i], "stop: unknown key '%s' (did you mean '%s'?)",
                           k, closest(k, stop_keys));
    }
    const yt_node *r = yt_map_get(n, "rule");
    if (!r) return yt_fail(e, CAD_EFORMAT, d, n, "stop: 'rule' is required (median, asha or off)");
    if (r->kind != YT_SCALAR || !r->value)
        return yt_fail(e, CAD_EFORMAT, d, r, "stop: 'rule' must be median, asha or off");
    int which = -1;
    for (int j = 0; rule_names[j]; j++)
        if (strcmp(r->value, rule_names[j]) == 0) which = j;
    if (which < 0)
        return yt_fail(e, CAD_ECONFIG, d, r, "stop: unknown rule '%s' (did you mean '%s'?)", r->value,
                       closest(r->value, rule_names));
    out->rule = (cad_stop_rule)which;
    int rc;
    const yt_node *v;
    if ((v = yt_map_get(n, "metric"))) {
        if (v->kind != YT_SCALAR || !v->value || !v->value[0] ||
            strlen(v->value) >= sizeof out->metric)
            return yt_fail(e, CAD_EFORMAT, d, v, "stop: 'metric' must be a metric name (e.g. val_bpb)");
        snprintf(out->metric, sizeof out->metric, "%s", v->value);
    }
    if ((v = yt_map_get(n, "grace_runs"))) {
        long x;
        if (v->kind != YT_SCALAR || yt_scalar_long(d, v, &x, NULL) != CAD_OK || x < 1 || x > 1000)
            return yt_fail(e, CAD_ECONFIG, d, v, "stop: 'grace_runs' must be an integer in [1, 1000]");
        out->grace_runs = (int)x;
    }
    /* keys of the other rule would silently do nothing: refuse them */
    const char *median_only[] = {"min_fraction", NULL}, *asha_only[] = {"reduction_factor", "rungs", NULL};
    const char **foreign = out->rule == CAD_STOP_MEDIAN ? asha_only
                           : out->rule == CAD_STOP_ASHA ? median_only
                                                        : NULL;
    for (int j = 0; foreign && foreign[j]; j++)
        if ((v = yt_map_get(n, foreign[j])))
            return yt_fail(e, CAD_ECONFIG, d, v, "stop: '%s' is not a key of rule %s", foreign[j],
                           rule_names[which]);
    if ((v = yt_map_get(n, "min_fraction")) &&
        (rc = want_double(d, v, "min_fraction", 0, 1, 0, 1, &out->min_fraction, e)))
        return rc;
    if ((v = yt_map_get(n, "reduction_factor")) &&
        (rc = want_double(d, v, "reduction_factor", 1, 1000, 1, 0, &out->reduction_factor, e)))
        return rc;
    if ((v = yt_map_get(n, "rungs")) && (rc = parse_rungs(d, v, out, e))) return rc;
    return CAD_OK;
}

int cad_sweep_stop_from_text(const char *name, const char *text, size_t len, cad_sweep_stop *out,
                             cad_err *e) {
    cad_sweep_stop_init(out);
    yt_doc *d = NULL;
    int rc = yt_load_string(name, text, len, &d, e);
    if (rc) return rc;
    const yt_node *n = d->root ? yt_map_get(d->root, "stop") : NULL;
    if (n) rc = cad_sweep_stop_parse(d, n, out, e);
    yt_doc_free(d);
    return rc;
}

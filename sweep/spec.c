/*
 * spec.c — parse and validate a sweep YAML file (see spec.h and the README "Sweep file
 * reference"). Every check names file:line:col of the offending node, so a user fixes the
 * file without guessing; nothing is queued unless the whole file passes.
 * Not here: expansion into runs and config resolution (plan.c).
 */
#include "sweep/spec.h"

#include "engine/config.h"
#include "engine/fsutil.h"
#include "engine/prepare.h"
#include "engine/prepcache.h"
#include "engine/shard.h"
#include "engine/sha256.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const cad_sweep_builtin_templates[] = {"run_id", "run_dir", "devices", "sweep", "seed",
                                                   NULL};

static const char *const top_keys[] = {"name",    "description", "engine",  "base",
                                        "set",     "grid",        "zip",     "seeds",
                                        "devices", "timeout",     "retries", "priority",
                                        "command", "env",         "workdir", "stop",
                                        "prepare", "kind",        "candidates", "metric",
                                        "margin",  "max_rounds",  NULL};

static const char *closest_of(const char *name, const char *const *list) {
    const char *best = NULL;
    int bd = 1 << 30;
    for (int i = 0; list[i]; i++) {
        int d = cad_edit_distance(name, list[i]);
        if (d < bd) bd = d, best = list[i];
    }
    return best;
}

static const char *kind_name(const yt_node *n) {
    return n->kind == YT_MAP ? "a map" : n->kind == YT_SEQ ? "a list" : "a scalar";
}

char *cad_sweep_value_text(const yt_node *v) {
    if (v->kind == YT_SCALAR) return strdup(v->value ? v->value : "");
    size_t len = 1;
    for (size_t i = 0; i < v->n; i++)
        len += (v->items[i]->kind == YT_SCALAR && v->items[i]->value ? strlen(v->items[i]->value) : 0) + 1;
    char *s = malloc(len);
    if (!s) return NULL;
    s[0] = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (i) strcat(s, ",");
        if (v->items[i]->kind == YT_SCALAR && v->items[i]->value) strcat(s, v->items[i]->value);
    }
    return s;
}

int cad_template_scan(const char *text, cad_template_fn fn, void *ctx, cad_err *e) {
    for (const char *p = text; *p; p++) {
        if (p[0] == '{' && p[1] == '{') { p++; continue; }
        if (p[0] == '}' && p[1] == '}') { p++; continue; }
        if (*p != '{') continue;
        const char *end = strchr(p + 1, '}');
        if (!end) return cad_fail(e, CAD_EFORMAT, "unclosed '{' in template \"%s\"", text);
        if (end == p + 1) return cad_fail(e, CAD_EFORMAT, "empty '{}' in template \"%s\"", text);
        int rc = fn(ctx, p + 1, (size_t)(end - p - 1), e);
        if (rc) return rc;
        p = end;
    }
    return CAD_OK;
}

/* ---- the validation context --------------------------------------------------------------- */

typedef struct {
    const char *key;
    const yt_node *node;
    const char *where; /* "base", "set", "grid", "zip" */
} seen_key;

/* A hash index from a key name to a number (a seen_key's slot), so the duplicate checks stay
 * linear in the size of the file: a sweep may name hundreds of thousands of keys or bundles,
 * where a pairwise scan would take minutes (issue 16). Open addressing, power-of-two table. */
typedef struct {
    const char **names;
    int *slots;
    size_t cap, n;
} name_index;

static size_t name_hash(const char *s) {
    size_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot of name, or -1. */
static int name_index_get(const name_index *ix, const char *name) {
    if (!ix->cap) return -1;
    for (size_t i = name_hash(name) & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1)) {
        if (!ix->names[i]) return -1;
        if (strcmp(ix->names[i], name) == 0) return ix->slots[i];
    }
}

/* Set name's slot (name must outlive the index). Returns -1 when out of memory. */
static int name_index_put(name_index *ix, const char *name, int slot) {
    if (2 * (ix->n + 1) > ix->cap) { /* keep the table at most half full */
        name_index g = {NULL, NULL, ix->cap ? 2 * ix->cap : 64, 0};
        g.names = calloc(g.cap, sizeof *g.names);
        g.slots = calloc(g.cap, sizeof *g.slots);
        if (!g.names || !g.slots) { free(g.names), free(g.slots); return -1; }
        for (size_t i = 0; i < ix->cap; i++)
            if (ix->names[i]) name_index_put(&g, ix->names[i], ix->slots[i]); /* cannot grow again */
        free(ix->names), free(ix->slots);
        *ix = g;
    }
    size_t i = name_hash(name) & (ix->cap - 1);
    while (ix->names[i] && strcmp(ix->names[i], name) != 0) i = (i + 1) & (ix->cap - 1);
    if (!ix->names[i]) ix->n++;
    ix->names[i] = name;
    ix->slots[i] = slot;
    return 0;
}

static void name_index_free(name_index *ix) {
    free(ix->names);
    free(ix->slots);
    memset(ix, 0, sizeof *ix);
}

typedef struct {
    cad_sweep_spec *s;
    const yt_doc *d;
    cad_config scratch; /* for type-checking engine values (caddie engine) */
    int scratch_ok;
    seen_key *seen;     /* every key the sweep sets, once, in the order first set */
    int n_seen, cap_seen;
    name_index seen_ix; /* key -> index in seen */
    int *used;          /* command engine: which seen keys a template references */
    int used_seed;      /* command engine: some template uses {seed} */
} vctx;

static int seen_add(vctx *v, const char *key, const yt_node *node, const char *where, cad_err *e) {
    int i = name_index_get(&v->seen_ix, key);
    if (i >= 0 && strcmp(v->seen[i].where, "base") == 0) {
        v->seen[i] = (seen_key){key, node, where}; /* the sweep overrides its base */
        return name_index_put(&v->seen_ix, key, i) ? cad_fail(e, CAD_ENOMEM, "out of memory") : CAD_OK;
    }
    if (i >= 0)
        return yt_fail(e, CAD_ECONFIG, v->d, node, "'%s' is already set in %s (line %d)", key, v->seen[i].where,
                       v->seen[i].node->line);
    if (v->n_seen == v->cap_seen) {
        v->cap_seen = v->cap_seen ? 2 * v->cap_seen : 16;
        seen_key *nv = realloc(v->seen, (size_t)v->cap_seen * sizeof *nv);
        if (!nv) return cad_fail(e, CAD_ENOMEM, "out of memory");
        v->seen = nv;
    }
    if (name_index_put(&v->seen_ix, key, v->n_seen)) return cad_fail(e, CAD_ENOMEM, "out of memory");
    v->seen[v->n_seen++] = (seen_key){key, node, where};
    return CAD_OK;
}

/* Check that key=value is acceptable for the engine. */
static int check_assign(vctx *v, const yt_node *key, const yt_node *val, cad_err *e) {
    const char *k = key->value;
    if (!k || !*k) return yt_fail(e, CAD_EFORMAT, v->d, key, "empty key");
    if (v->s->engine == CAD_ENGINE_COMMAND) {
        for (const char *p = k; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '_')
                return yt_fail(e, CAD_EFORMAT, v->d, key,
                               "param name '%s' may only use letters, digits and '_' "
                               "(it is used as a {template} name)",
                               k);
        if (val->kind == YT_MAP)
            return yt_fail(e, CAD_EFORMAT, v->d, val, "value of '%s' must be a scalar, not a map", k);
        for (size_t i = 0; val->kind == YT_SEQ && i < val->n; i++)
            if (val->items[i]->kind != YT_SCALAR)
                return yt_fail(e, CAD_EFORMAT, v->d, val->items[i],
                               "items of '%s' must be scalars (a list is passed joined with ','), got %s",
                               k, kind_name(val->items[i]));
        return CAD_OK;
    }
    if (strcmp(k, "run_id") == 0 || strcmp(k, "run_dir") == 0)
        return yt_fail(e, CAD_ECONFIG, v->d, key,
                       "'%s' is chosen by caddie for each run of a sweep; remove it", k);
    const cad_config_key *ck = cad_config_key_find(k);
    if (!ck)
        return yt_fail(e, CAD_ECONFIG, v->d, key,
                       "unknown engine key '%s' for engine caddie (did you mean '%s'?)", k,
                       cad_config_key_closest(k));
    if (val->kind == YT_MAP)
        return yt_fail(e, CAD_EFORMAT, v->d, val, "'%s' expects %s, got a map", k,
                       cad_config_type_name(ck->type));
    if (val->kind == YT_SEQ && ck->type != CAD_KEY_LIST)
        return yt_fail(e, CAD_EFORMAT, v->d, val, "'%s' expects %s, got a list", k,
                       cad_config_type_name(ck->type));
    if (val->kind == YT_SEQ)
        for (size_t i = 0; i < val->n; i++)
            if (val->items[i]->kind != YT_SCALAR)
                return yt_fail(e, CAD_EFORMAT, v->d, val->items[i],
                               "items of '%s' must be scalars, got %s", k, kind_name(val->items[i]));
    if (v->scratch_ok) {
        char *text = cad_sweep_value_text(val);
        if (!text) return cad_fail(e, CAD_ENOMEM, "out of memory");
        cad_err e2;
        cad_err_clear(&e2);
        int rc = cad_config_set(&v->scratch, k, text, NULL, &e2);
        free(text);
        if (rc) return yt_fail(e, CAD_ECONFIG, v->d, val, "%s", e2.msg);
    }
    return CAD_OK;
}

static int want_scalar(vctx *v, const yt_node *n, const char *what, cad_err *e) {
    if (n->kind != YT_SCALAR)
        return yt_fail(e, CAD_EFORMAT, v->d, n, "'%s' must be a scalar, got %s", what, kind_name(n));
    return CAD_OK;
}

static int want_long(vctx *v, const yt_node *n, const char *what, long lo, long hi, long *out,
                     cad_err *e) {
    int rc = want_scalar(v, n, what, e);
    if (rc) return rc;
    if (yt_scalar_long(v->d, n, out, NULL) != CAD_OK)
        return yt_fail(e, CAD_EFORMAT, v->d, n, "'%s' must be an integer, got '%s'", what, n->value);
    if (*out < lo || *out > hi)
        return yt_fail(e, CAD_ECONFIG, v->d, n, "'%s' must be in [%ld, %ld], got %ld", what, lo, hi,
                       *out);
    return CAD_OK;
}

static int parse_timeout(vctx *v, const yt_node *n, double *out, cad_err *e) {
    int rc = want_scalar(v, n, "timeout", e);
    if (rc) return rc;
    const char *t = n->value ? n->value : "";
    char *end;
    errno = 0;
    double x = strtod(t, &end);
    double mul = 1;
    if (end == t) x = NAN;
    else if (*end == 's' && !end[1]) mul = 1;
    else if (*end == 'm' && !end[1]) mul = 60;
    else if (*end == 'h' && !end[1]) mul = 3600;
    else if (*end) x = NAN;
    if (!(x > 0) || !isfinite(x))
        return yt_fail(e, CAD_EFORMAT, v->d, n,
                       "'timeout' must be a positive number of seconds or a duration like "
                       "\"90s\", \"20m\", \"2h\", got '%s'",
                       t);
    /* Bounded after the unit is applied: "1e308h" is finite text but an infinite number of
     * seconds, and the timeout goes into run.json, where Inf is not JSON. */
    double secs = x * mul;
    if (!(secs >= CAD_SWEEP_MIN_TIMEOUT_S && secs <= CAD_SWEEP_MAX_TIMEOUT_S))
        return yt_fail(e, CAD_ECONFIG, v->d, n,
                       "'timeout' must be between %g s and %g s (%g days), got '%s'",
                       CAD_SWEEP_MIN_TIMEOUT_S, CAD_SWEEP_MAX_TIMEOUT_S,
                       CAD_SWEEP_MAX_TIMEOUT_S / 86400, t);
    *out = secs;
    return CAD_OK;
}

static char *dup_or_fail(const char *s, int *rc, cad_err *e) {
    char *d = strdup(s ? s : "");
    if (!d) *rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    return d;
}

/* A plain grid value: one assignment key = item. */
static int parse_grid_value(vctx *v, cad_sweep_point *p, const yt_node *key, const yt_node *item, cad_err *e) {
    p->n = 1;
    p->a = calloc(1, sizeof *p->a);
    if (!p->a) return cad_fail(e, CAD_ENOMEM, "out of memory");
    p->a[0] = (cad_sweep_assign){key->value, key, item};
    return check_assign(v, key, item, e);
}

/* A bundle {k: v, ...} of a grid axis. first_keys indexes the keys of the axis' first bundle.
 * caddie engine: a key a bundle leaves out keeps its base/default value, so bundles may differ
 * (an ablation: one technique per bundle; the axis is then ragged). A command engine has no
 * defaults: every bundle must give every key its templates use. */
static int parse_grid_bundle(vctx *v, cad_sweep_axis *ax, cad_sweep_point *p, const yt_node *key,
                             const yt_node *first, const name_index *first_keys, const yt_node *item, cad_err *e) {
    int caddie = v->s->engine == CAD_ENGINE_CADDIE;
    if (item->n == 0) return yt_fail(e, CAD_ECONFIG, v->d, item, "empty bundle in grid '%s'", key->value);
    if (item->n != first->n && !caddie)
        return yt_fail(e, CAD_ECONFIG, v->d, item,
                       "bundle sets %zu keys but the first bundle of '%s' (line %d) sets %zu: "
                       "with engine command every bundle of an axis must set the same keys",
                       item->n, key->value, first->line, first->n);
    int same = item->n == first->n;
    p->n = (int)item->n;
    p->a = calloc(item->n, sizeof *p->a);
    if (!p->a) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (size_t k = 0; k < item->n; k++) {
        const yt_node *bk = item->keys[k];
        if (name_index_get(first_keys, bk->value) < 0) {
            if (!caddie)
                return yt_fail(e, CAD_ECONFIG, v->d, bk,
                               "bundle key '%s' is not in the first bundle of '%s' (line %d): "
                               "with engine command every bundle of an axis must set the same keys",
                               bk->value, key->value, first->line);
            same = 0;
        }
        p->a[k] = (cad_sweep_assign){bk->value, bk, item->vals[k]};
        int rc = check_assign(v, bk, item->vals[k], e);
        if (rc) return rc;
    }
    if (!same) ax->is_ragged = 1;
    return CAD_OK;
}

/* Every key any bundle of the axis sets, once, in the order first set. */
static int seen_add_bundle_keys(vctx *v, const yt_node *vals, cad_err *e) {
    name_index axis_keys = {0};
    int rc = CAD_OK;
    for (size_t j = 0; j < vals->n && !rc; j++) {
        const yt_node *item = vals->items[j];
        for (size_t k = 0; k < item->n && !rc; k++) {
            const char *name = item->keys[k]->value;
            if (name_index_get(&axis_keys, name) >= 0) continue;
            if (name_index_put(&axis_keys, name, 0)) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
            else rc = seen_add(v, name, item->keys[k], "grid", e);
        }
    }
    name_index_free(&axis_keys);
    return rc;
}

/* One grid entry: key: [values] or axis: [{k: v, ...}, ...]. */
static int parse_grid_axis(vctx *v, const yt_node *key, const yt_node *vals, cad_err *e) {
    if (vals->kind != YT_SEQ)
        return yt_fail(e, CAD_EFORMAT, v->d, vals,
                       "grid '%s' must be a list of values, got %s (use 'set' for a fixed value)", key->value,
                       kind_name(vals));
    if (vals->n == 0)
        return yt_fail(e, CAD_ECONFIG, v->d, vals, "empty grid axis '%s': give at least one value", key->value);
    cad_sweep_spec *s = v->s;
    cad_sweep_axis *ax = &s->axes[s->n_axes++];
    int rc = 0;
    ax->label = dup_or_fail(key->value, &rc, e);
    if (rc) return rc;
    ax->node = key;
    ax->is_bundle = vals->items[0]->kind == YT_MAP;
    ax->points = calloc(vals->n, sizeof *ax->points);
    if (!ax->points) return cad_fail(e, CAD_ENOMEM, "out of memory");
    const yt_node *first = vals->items[0];
    name_index first_keys = {0};
    for (size_t k = 0; ax->is_bundle && k < first->n && !rc; k++)
        if (name_index_put(&first_keys, first->keys[k]->value, (int)k)) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    for (size_t j = 0; j < vals->n && !rc; j++) {
        const yt_node *item = vals->items[j];
        cad_sweep_point *p = &ax->points[ax->n_points++];
        if (ax->is_bundle != (item->kind == YT_MAP))
            rc = yt_fail(e, CAD_EFORMAT, v->d, item, "grid '%s' mixes bundles (maps) and plain values", key->value);
        else if (ax->is_bundle) rc = parse_grid_bundle(v, ax, p, key, first, &first_keys, item, e);
        else rc = parse_grid_value(v, p, key, item, e);
    }
    name_index_free(&first_keys);
    if (rc) return rc;
    return ax->is_bundle ? seen_add_bundle_keys(v, vals, e) : seen_add(v, key->value, key, "grid", e);
}

/* grid: key: [values]  |  axis: [{k: v, ...}, ...] */
static int parse_grid(vctx *v, const yt_node *g, cad_err *e) {
    if (g->kind != YT_MAP)
        return yt_fail(e, CAD_EFORMAT, v->d, g, "'grid' must be a map of key: [values], got %s", kind_name(g));
    if (g->n == 0) return yt_fail(e, CAD_ECONFIG, v->d, g, "empty grid: give at least one key with values");
    for (size_t i = 0; i < g->n; i++) {
        int rc = parse_grid_axis(v, g->keys[i], g->vals[i], e);
        if (rc) return rc;
    }
    return CAD_OK;
}

/* zip: {a: [..], b: [..]} or a list of such maps; lists of one map vary in lockstep. */
static int parse_zip_group(vctx *v, const yt_node *z, cad_err *e) {
    if (z->kind != YT_MAP)
        return yt_fail(e, CAD_EFORMAT, v->d, z, "'zip' must be a map of key: [values] (or a list of them), got %s",
                       kind_name(z));
    if (z->n == 0) return yt_fail(e, CAD_ECONFIG, v->d, z, "empty zip: give at least one key with values");
    size_t len = 0;
    for (size_t i = 0; i < z->n; i++) {
        const yt_node *vals = z->vals[i];
        if (vals->kind != YT_SEQ)
            return yt_fail(e, CAD_EFORMAT, v->d, vals, "zip '%s' must be a list of values, got %s",
                           z->keys[i]->value, kind_name(vals));
        if (vals->n == 0)
            return yt_fail(e, CAD_ECONFIG, v->d, vals, "empty zip list '%s'", z->keys[i]->value);
        if (i == 0) len = vals->n;
        else if (vals->n != len)
            return yt_fail(e, CAD_ECONFIG, v->d, vals,
                           "zip lists must have the same length: '%s' has %zu values, '%s' has %zu",
                           z->keys[i]->value, vals->n, z->keys[0]->value, len);
    }
    cad_sweep_spec *s = v->s;
    cad_sweep_axis *ax = &s->axes[s->n_axes++];
    ax->is_zip = 1;
    ax->node = z;
    size_t lab = 1;
    for (size_t i = 0; i < z->n; i++) lab += strlen(z->keys[i]->value) + 1;
    ax->label = calloc(lab, 1);
    ax->points = calloc(len, sizeof *ax->points);
    if (!ax->label || !ax->points) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (size_t i = 0; i < z->n; i++) {
        if (i) strcat(ax->label, "+");
        strcat(ax->label, z->keys[i]->value);
    }
    for (size_t j = 0; j < len; j++) {
        cad_sweep_point *p = &ax->points[ax->n_points++];
        p->n = (int)z->n;
        p->a = calloc(z->n, sizeof *p->a);
        if (!p->a) return cad_fail(e, CAD_ENOMEM, "out of memory");
        for (size_t i = 0; i < z->n; i++) {
            const yt_node *val = z->vals[i]->items[j];
            p->a[i] = (cad_sweep_assign){z->keys[i]->value, z->keys[i], val};
            int rc = check_assign(v, z->keys[i], val, e);
            if (rc) return rc;
        }
    }
    for (size_t i = 0; i < z->n; i++) {
        int rc = seen_add(v, z->keys[i]->value, z->keys[i], "zip", e);
        if (rc) return rc;
    }
    return CAD_OK;
}

/* ---- command engine templates ------------------------------------------------------------ */

#define TEMPLATE_NAME_MAX 128 /* longer names are rejected: a {template} names a short key */

typedef struct {
    vctx *v;
    const yt_node *node;
} tctx;

static int template_name_check(void *ctx, const char *name, size_t len, cad_err *e) {
    tctx *t = ctx;
    vctx *v = t->v;
    char buf[TEMPLATE_NAME_MAX];
    if (len >= sizeof buf)
        return yt_fail(e, CAD_EFORMAT, v->d, t->node, "template name too long in \"%s\"", t->node->value);
    memcpy(buf, name, len);
    buf[len] = 0;
    for (int i = 0; cad_sweep_builtin_templates[i]; i++)
        if (strcmp(buf, cad_sweep_builtin_templates[i]) == 0) {
            if (strcmp(buf, "seed") == 0) {
                if (v->s->n_seeds == 0) break; /* then 'seed' must be a param of set/grid/zip */
                v->used_seed = 1;
            }
            return CAD_OK;
        }
    int slot = name_index_get(&v->seen_ix, buf);
    if (slot >= 0) {
        v->used[slot] = 1;
        return CAD_OK;
    }
    /* Unknown: suggest the closest param or built-in. */
    const char *best = NULL;
    int bd = 1 << 30;
    for (int i = 0; i < v->n_seen; i++) {
        int dd = cad_edit_distance(buf, v->seen[i].key);
        if (dd < bd) bd = dd, best = v->seen[i].key;
    }
    for (int i = 0; cad_sweep_builtin_templates[i]; i++) {
        int dd = cad_edit_distance(buf, cad_sweep_builtin_templates[i]);
        if (dd < bd) bd = dd, best = cad_sweep_builtin_templates[i];
    }
    return yt_fail(e, CAD_ECONFIG, v->d, t->node,
                   "unknown template '{%s}' (did you mean '{%s}'?): templates name a key of "
                   "set/grid/zip or one of {run_id} {run_dir} {devices} {sweep} {seed}",
                   buf, best ? best : "run_id");
}

static int check_templates(vctx *v, cad_err *e) {
    cad_sweep_spec *s = v->s;
    v->used = calloc((size_t)v->n_seen + 1, sizeof *v->used);
    if (!v->used) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (int pass = 0; pass < 2; pass++) {
        int n = pass ? s->n_env : s->n_argv;
        cad_sweep_template *ts = pass ? s->env : s->argv;
        for (int i = 0; i < n; i++) {
            tctx t = {v, ts[i].node};
            cad_err e2;
            cad_err_clear(&e2);
            int rc = cad_template_scan(ts[i].node->value ? ts[i].node->value : "",
                                       template_name_check, &t, &e2);
            if (rc) {
                /* template_name_check positions its own message; the scanner's are bare. */
                if (rc == CAD_EFORMAT && (strncmp(e2.msg, "unclosed", 8) == 0 ||
                                          strncmp(e2.msg, "empty", 5) == 0))
                    return yt_fail(e, CAD_EFORMAT, v->d, ts[i].node, "%s", e2.msg);
                if (e) *e = e2;
                return rc;
            }
        }
    }
    if (s->n_seeds && !v->used_seed)
        return yt_fail(e, CAD_ECONFIG, v->d, s->seeds_node,
                       "'seeds' is given but no template uses {seed}: add e.g. SEED: \"{seed}\" to env");
    for (int i = 0; i < v->n_seen; i++)
        if (!v->used[i] && strcmp(v->seen[i].where, "base") != 0)
            return yt_fail(e, CAD_ECONFIG, v->d, v->seen[i].node,
                           "%s key '%s' is not used by 'command' or 'env': add a template such "
                           "as %s: \"{%s}\" (the command engine passes values only through templates)",
                           v->seen[i].where, v->seen[i].key, v->seen[i].key, v->seen[i].key);
    return CAD_OK;
}

static int parse_templates(vctx *v, const yt_node *cmd, const yt_node *env, cad_err *e) {
    cad_sweep_spec *s = v->s;
    if (!cmd)
        return yt_fail(e, CAD_ECONFIG, v->d, v->d->root,
                       "engine command needs 'command': the program and its arguments as a list");
    if (cmd->kind != YT_SEQ || cmd->n == 0)
        return yt_fail(e, CAD_EFORMAT, v->d, cmd,
                       "'command' must be a non-empty list (program and arguments; no shell), got %s",
                       cmd->kind == YT_SEQ ? "an empty list" : kind_name(cmd));
    s->argv = calloc(cmd->n, sizeof *s->argv);
    if (!s->argv) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (size_t i = 0; i < cmd->n; i++) {
        int rc = want_scalar(v, cmd->items[i], "command", e);
        if (rc) return rc;
        s->argv[s->n_argv].name = strdup("");
        s->argv[s->n_argv++].node = cmd->items[i];
    }
    if (env) {
        if (env->kind != YT_MAP)
            return yt_fail(e, CAD_EFORMAT, v->d, env, "'env' must be a map NAME: \"template\", got %s",
                           kind_name(env));
        s->env = calloc(env->n + 1, sizeof *s->env);
        if (!s->env) return cad_fail(e, CAD_ENOMEM, "out of memory");
        for (size_t i = 0; i < env->n; i++) {
            const char *k = env->keys[i]->value;
            for (const char *p = k; *p; p++)
                if (!(isalnum((unsigned char)*p) || *p == '_') || (p == k && isdigit((unsigned char)*p)))
                    return yt_fail(e, CAD_EFORMAT, v->d, env->keys[i],
                                   "'%s' is not a valid environment variable name", k);
            int rc = want_scalar(v, env->vals[i], k, e);
            if (rc) return rc;
            s->env[s->n_env].name = strdup(k);
            s->env[s->n_env++].node = env->vals[i];
        }
    }
    return CAD_OK;
}

/* ---- the whole file ----------------------------------------------------------------------- */

#define SWEEP_NAME_MAX 64   /* it names run directories and DB rows */
#define SEEDS_COUNT_MAX 1000 /* 'seeds: N' */
#define FIRST_SEED 1337      /* train_gpt.py's default seed: 'seeds: N' is 1337, 1338, ... */

static int check_top_keys(vctx *v, const yt_node *root, cad_err *e) {
    for (size_t i = 0; i < root->n; i++) {
        const char *k = root->keys[i]->value;
        int known = 0;
        for (int j = 0; top_keys[j]; j++) known |= strcmp(k, top_keys[j]) == 0;
        if (!known)
            return yt_fail(e, CAD_EFORMAT, v->d, root->keys[i], "unknown key '%s' (did you mean '%s'?)", k,
                           closest_of(k, top_keys));
    }
    return CAD_OK;
}

/* name (required; it names run directories) and description */
static int parse_name(vctx *v, const yt_node *root, cad_err *e) {
    cad_sweep_spec *s = v->s;
    const yt_node *n = yt_map_get(root, "name");
    int rc = 0;
    if (!n) return yt_fail(e, CAD_ECONFIG, v->d, root, "missing required key 'name'");
    if ((rc = want_scalar(v, n, "name", e))) return rc;
    if (!n->value || !*n->value || strlen(n->value) > SWEEP_NAME_MAX)
        return yt_fail(e, CAD_ECONFIG, v->d, n, "'name' must be 1 to %d characters", SWEEP_NAME_MAX);
    for (const char *p = n->value; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return yt_fail(e, CAD_ECONFIG, v->d, n,
                           "'name' may only use letters, digits, '-', '_' and '.' (it names run "
                           "directories), got '%s'",
                           n->value);
    s->name = dup_or_fail(n->value, &rc, e);
    if (rc) return rc;
    if ((n = yt_map_get(root, "description"))) {
        if ((rc = want_scalar(v, n, "description", e))) return rc;
        s->description = dup_or_fail(n->value, &rc, e);
    } else s->description = dup_or_fail("", &rc, e);
    return rc;
}

/* engine: caddie (the default; values are type-checked against the config key table) or
 * command (command/env/workdir templates). */
static int parse_engine(vctx *v, const yt_node *root, cad_err *e) {
    cad_sweep_spec *s = v->s;
    const yt_node *n = yt_map_get(root, "engine");
    s->engine = CAD_ENGINE_CADDIE;
    if (n) {
        int rc = want_scalar(v, n, "engine", e);
        if (rc) return rc;
        if (strcmp(n->value, "caddie") == 0) s->engine = CAD_ENGINE_CADDIE;
        else if (strcmp(n->value, "command") == 0) s->engine = CAD_ENGINE_COMMAND;
        else {
            static const char *const engines[] = {"caddie", "command", NULL};
            return yt_fail(e, CAD_ECONFIG, v->d, n, "unknown engine '%s' (did you mean '%s'?): use caddie or command",
                           n->value, closest_of(n->value, engines));
        }
    }
    if (s->engine != CAD_ENGINE_CADDIE) return CAD_OK;
    const yt_node *cmd = yt_map_get(root, "command"), *env = yt_map_get(root, "env"), *wd = yt_map_get(root, "workdir");
    const yt_node *bad = cmd ? cmd : env ? env : wd;
    if (bad)
        return yt_fail(e, CAD_ECONFIG, v->d, bad,
                       "'command', 'env' and 'workdir' belong to engine: command (this sweep's engine is caddie)");
    cad_err e2;
    v->scratch_ok = cad_config_init(&v->scratch, &e2) == CAD_OK;
    return CAD_OK;
}

/* base: a config file relative to the sweep file. caddie engine: it must load as a run
 * config; command engine: a flat map whose keys templates may use. */
static int parse_base(vctx *v, const yt_node *n, cad_err *e) {
    cad_sweep_spec *s = v->s;
    int rc = want_scalar(v, n, "base", e);
    if (rc) return rc;
    const char *b = n->value;
    if (b[0] == '/') s->base = strdup(b);
    else {
        char *tmp = strdup(v->d->path);
        if (!tmp) return cad_fail(e, CAD_ENOMEM, "out of memory");
        const char *dir = dirname(tmp);
        size_t len = strlen(dir) + strlen(b) + 2;
        s->base = malloc(len);
        if (s->base) snprintf(s->base, len, "%s/%s", dir, b);
        free(tmp);
    }
    if (!s->base) return cad_fail(e, CAD_ENOMEM, "out of memory");
    /* opened only to name an unreadable base here, at the sweep's line; a regular file only:
     * fopen of a FIFO would block here forever (engine/fsutil.h) */
    int base_fd;
    cad_err oe;
    cad_err_clear(&oe);
    if (cad_open_regular(s->base, NULL, &base_fd, &oe))
        return yt_fail(e, CAD_EIO, v->d, n, "base config '%s' (resolved to %s): %s", b, s->base, oe.msg);
    close(base_fd);
    if (s->engine == CAD_ENGINE_CADDIE && v->scratch_ok) {
        cad_err e2;
        cad_err_clear(&e2);
        if (cad_config_load_yaml(&v->scratch, s->base, &e2) != CAD_OK)
            return yt_fail(e, CAD_ECONFIG, v->d, n, "in base config: %s", e2.msg);
    } else if (s->engine == CAD_ENGINE_COMMAND) {
        if ((rc = yt_load_file(s->base, &s->base_doc, e))) return rc;
        const yt_node *br = s->base_doc->root;
        int ok = !br || br->kind == YT_MAP;
        for (size_t i = 0; ok && br && i < br->n; i++)
            if (br->vals[i]->kind == YT_MAP) ok = 0;
        if (!ok)
            return yt_fail(e, CAD_EFORMAT, v->d, n, "base '%s' must be a flat map of key: value for engine command", b);
        /* Base params may be used by templates; they need not be (unlike sweep keys). */
        for (size_t i = 0; br && i < br->n; i++)
            if ((rc = seen_add(v, br->keys[i]->value, br->keys[i], "base", e))) return rc;
    }
    return CAD_OK;
}

static int parse_set(vctx *v, const yt_node *n, cad_err *e) {
    cad_sweep_spec *s = v->s;
    if (n->kind != YT_MAP)
        return yt_fail(e, CAD_EFORMAT, v->d, n, "'set' must be a map of key: value, got %s", kind_name(n));
    s->set = calloc(n->n + 1, sizeof *s->set);
    if (!s->set) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (size_t i = 0; i < n->n; i++) {
        int rc = check_assign(v, n->keys[i], n->vals[i], e);
        if (!rc) rc = seen_add(v, n->keys[i]->value, n->keys[i], "set", e);
        if (rc) return rc;
        s->set[s->n_set++] = (cad_sweep_assign){n->keys[i]->value, n->keys[i], n->vals[i]};
    }
    return CAD_OK;
}

/* grid and zip: the axes of the cartesian product */
static int parse_axes(vctx *v, const yt_node *root, cad_err *e) {
    cad_sweep_spec *s = v->s;
    const yt_node *grid = yt_map_get(root, "grid"), *zip = yt_map_get(root, "zip");
    size_t max_axes = (grid && grid->kind == YT_MAP ? grid->n : 0) + (zip ? (zip->kind == YT_SEQ ? zip->n : 1) : 0);
    s->axes = calloc(max_axes + 1, sizeof *s->axes);
    if (!s->axes) return cad_fail(e, CAD_ENOMEM, "out of memory");
    int rc;
    if (grid && (rc = parse_grid(v, grid, e))) return rc;
    if (!zip) return CAD_OK;
    if (zip->kind != YT_SEQ) return parse_zip_group(v, zip, e);
    if (zip->n == 0) return yt_fail(e, CAD_ECONFIG, v->d, zip, "empty zip list");
    for (size_t i = 0; i < zip->n; i++)
        if ((rc = parse_zip_group(v, zip->items[i], e))) return rc;
    return CAD_OK;
}

typedef struct {
    long seed;
    size_t at; /* index in the list */
} seed_at;

static int seed_at_cmp(const void *a, const void *b) {
    const seed_at *x = a, *y = b;
    if (x->seed != y->seed) return x->seed < y->seed ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* The first list position whose seed appeared earlier, or -1: sorted, so a list of any length
 * is checked in n log n. */
static long first_repeated_seed(const long *seeds, int n, cad_err *e, int *rc) {
    seed_at *t = malloc(((size_t)n + 1) * sizeof *t);
    if (!t) { *rc = cad_fail(e, CAD_ENOMEM, "out of memory"); return -1; }
    for (int i = 0; i < n; i++) t[i] = (seed_at){seeds[i], (size_t)i};
    qsort(t, (size_t)n, sizeof *t, seed_at_cmp);
    long first = -1;
    for (int i = 1; i < n; i++)
        if (t[i].seed == t[i - 1].seed && (first < 0 || (long)t[i].at < first))
            first = (long)t[i].at;
    free(t);
    return first;
}

/* seeds: N (FIRST_SEED, FIRST_SEED+1, ...) or a list of distinct integers */
static int parse_seeds(vctx *v, const yt_node *n, cad_err *e) {
    cad_sweep_spec *s = v->s;
    int rc = CAD_OK;
    s->seeds_node = n;
    if (n->kind == YT_SCALAR) {
        long cnt;
        if ((rc = want_long(v, n, "seeds", 1, SEEDS_COUNT_MAX, &cnt, e))) return rc;
        s->seeds = calloc((size_t)cnt, sizeof *s->seeds);
        if (!s->seeds) return cad_fail(e, CAD_ENOMEM, "out of memory");
        for (long i = 0; i < cnt; i++) s->seeds[s->n_seeds++] = FIRST_SEED + i;
    } else if (n->kind == YT_SEQ) {
        if (n->n == 0) return yt_fail(e, CAD_ECONFIG, v->d, n, "empty 'seeds': give a list of integers or a count");
        s->seeds = calloc(n->n, sizeof *s->seeds);
        if (!s->seeds) return cad_fail(e, CAD_ENOMEM, "out of memory");
        for (size_t i = 0; i < n->n && !rc; i++) {
            long sd;
            if (!(rc = want_long(v, n->items[i], "seeds", 0, 2147483647L, &sd, e))) s->seeds[s->n_seeds++] = sd;
        }
        /* a repeat before the first bad item is the first error in the file */
        int rc2 = CAD_OK;
        long dup = first_repeated_seed(s->seeds, s->n_seeds, e, &rc2);
        if (rc2) return rc2;
        if (dup >= 0)
            return yt_fail(e, CAD_ECONFIG, v->d, n->items[dup], "seed %ld is listed twice", s->seeds[dup]);
        if (rc) return rc;
    } else
        return yt_fail(e, CAD_EFORMAT, v->d, n, "'seeds' must be a list of integers or a count, got a map");
    int i = name_index_get(&v->seen_ix, "seed");
    if (i >= 0 && strcmp(v->seen[i].where, "base") != 0)
        return yt_fail(e, CAD_ECONFIG, v->d, v->seen[i].node, "'seed' is set in %s and by 'seeds' (line %d): keep one",
                       v->seen[i].where, n->line);
    return CAD_OK;
}

/* devices, timeout, retries, priority */
static int parse_limits(vctx *v, const yt_node *root, cad_err *e) {
    cad_sweep_spec *s = v->s;
    const yt_node *n;
    long x;
    int rc;
    s->devices = 1;
    if ((n = yt_map_get(root, "devices"))) {
        if ((rc = want_long(v, n, "devices", 1, 64, &x, e))) return rc;
        s->devices = (int)x;
        /* engine caddie: devices N runs N data-parallel ranks (`caddie launch`, sweep/plan.c) */
    }
    s->timeout_s = CAD_SWEEP_DEFAULT_TIMEOUT_S;
    if ((n = yt_map_get(root, "timeout")) && (rc = parse_timeout(v, n, &s->timeout_s, e))) return rc;
    if ((n = yt_map_get(root, "retries"))) {
        if ((rc = want_long(v, n, "retries", 0, 100, &x, e))) return rc;
        s->retries = (int)x;
    }
    if ((n = yt_map_get(root, "priority"))) {
        if ((rc = want_long(v, n, "priority", -1000000, 1000000, &x, e))) return rc;
        s->priority = (int)x;
    }
    return CAD_OK;
}

/* stop: the early-stopping rule (sweep/stop.h); off when absent */
static int parse_stop(vctx *v, const yt_node *root, cad_err *e) {
    cad_sweep_stop_init(&v->s->stop);
    const yt_node *n = yt_map_get(root, "stop");
    return n ? cad_sweep_stop_parse(v->d, n, &v->s->stop, e) : CAD_OK;
}

/* prepare: {corpus: FILE, val_docs: N, shard_tokens: N, cache: DIR, timeout: T,
 *           tokenizers: [{vocab: N}, ...]} — hashing the corpus here keys the cache by
 * its bytes, so an edited corpus gets new entries instead of stale ones. */
static const char *const prepare_keys[] = {"corpus", "val_docs", "shard_tokens", "cache", "timeout", "tokenizers", NULL};

static char *path_beside(const char *doc_path, const char *p) {
    if (p[0] == '/') return strdup(p);
    char *tmp = strdup(doc_path);
    if (!tmp) return NULL;
    const char *dir = dirname(tmp);
    size_t len = strlen(dir) + strlen(p) + 2;
    char *out = malloc(len);
    if (out) snprintf(out, len, "%s/%s", dir, p);
    free(tmp);
    return out;
}

static char *abs_from_cwd(const char *p) {
    if (p[0] == '/') return strdup(p);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    size_t len = strlen(cwd) + strlen(p) + 2;
    char *out = malloc(len);
    if (out) snprintf(out, len, "%s/%s", cwd, p);
    return out;
}

static int parse_prepare_tokenizers(vctx *v, cad_sweep_prepare *pr, const yt_node *t, cad_err *e) {
    if (t->kind != YT_SEQ || t->n == 0)
        return yt_fail(e, CAD_EFORMAT, v->d, t, "'prepare.tokenizers' must be a non-empty list of {vocab: N}, got %s",
                       t->kind == YT_SEQ ? "an empty list" : kind_name(t));
    pr->tok = calloc(t->n, sizeof *pr->tok);
    if (!pr->tok) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (size_t i = 0; i < t->n; i++) {
        const yt_node *it = t->items[i];
        if (it->kind != YT_MAP)
            return yt_fail(e, CAD_EFORMAT, v->d, it, "a tokenizer of 'prepare' must be a map {vocab: N}, got %s",
                           kind_name(it));
        for (size_t k = 0; k < it->n; k++)
            if (strcmp(it->keys[k]->value, "vocab") != 0)
                return yt_fail(e, CAD_EFORMAT, v->d, it->keys[k], "unknown tokenizer key '%s' (expected 'vocab')",
                               it->keys[k]->value);
        const yt_node *vn = yt_map_get(it, "vocab");
        if (!vn) return yt_fail(e, CAD_ECONFIG, v->d, it, "tokenizer needs 'vocab'");
        long vocab;
        /* 4 special ids + 256 byte pieces at least; shards store uint16 ids */
        int rc = want_long(v, vn, "vocab", 260, 65536, &vocab, e);
        if (rc) return rc;
        for (int j = 0; j < pr->n_tok; j++)
            if (pr->tok[j].vocab == vocab)
                return yt_fail(e, CAD_ECONFIG, v->d, vn, "vocab %ld is listed twice (line %d)", vocab,
                               pr->tok[j].node->line);
        cad_sweep_prep_tok *pt = &pr->tok[pr->n_tok++];
        pt->vocab = (int)vocab;
        pt->node = it;
        cad_prepcache_key(pr->corpus_sha256, pt->vocab, pr->val_docs, pr->shard_tokens, pt->key);
        size_t len = strlen(pr->cache) + 70;
        if (!(pt->dir = malloc(len))) return cad_fail(e, CAD_ENOMEM, "out of memory");
        snprintf(pt->dir, len, "%s/%s", pr->cache, pt->key);
    }
    return CAD_OK;
}

static int parse_prepare(vctx *v, const yt_node *n, cad_err *e) {
    cad_sweep_prepare *pr = &v->s->prepare;
    int rc;
    if (n->kind != YT_MAP)
        return yt_fail(e, CAD_EFORMAT, v->d, n, "'prepare' must be a map {corpus: FILE, tokenizers: [...]}, got %s",
                       kind_name(n));
    for (size_t i = 0; i < n->n; i++) {
        const char *k = n->keys[i]->value;
        int known = 0;
        for (int j = 0; prepare_keys[j]; j++) known |= strcmp(k, prepare_keys[j]) == 0;
        if (!known)
            return yt_fail(e, CAD_EFORMAT, v->d, n->keys[i], "unknown prepare key '%s' (did you mean '%s'?)", k,
                           closest_of(k, prepare_keys));
    }
    if (v->s->engine != CAD_ENGINE_CADDIE)
        return yt_fail(e, CAD_ECONFIG, v->d, n,
                       "'prepare' needs engine caddie (it sets tokenizer_path/data_path of each run's config)");
    pr->node = n;
    const yt_node *c = yt_map_get(n, "corpus"), *t = yt_map_get(n, "tokenizers"), *x;
    if (!c) return yt_fail(e, CAD_ECONFIG, v->d, n, "'prepare' needs 'corpus': the text file to train and cut");
    if (!t) return yt_fail(e, CAD_ECONFIG, v->d, n, "'prepare' needs 'tokenizers': a list of {vocab: N}");
    if ((rc = want_scalar(v, c, "corpus", e))) return rc;
    pr->val_docs = CAD_PREPARE_DEFAULT_VAL_DOCS;
    pr->shard_tokens = CAD_SHARD_DEFAULT_TOKENS;
    pr->timeout_s = CAD_SWEEP_PREPARE_TIMEOUT_S;
    if ((x = yt_map_get(n, "val_docs")) && (rc = want_long(v, x, "val_docs", 0, 1000000000L, &pr->val_docs, e)))
        return rc;
    if ((x = yt_map_get(n, "shard_tokens")) &&
        (rc = want_long(v, x, "shard_tokens", 1, CAD_SHARD_MAX_TOKENS, &pr->shard_tokens, e)))
        return rc;
    if ((x = yt_map_get(n, "timeout")) && (rc = parse_timeout(v, x, &pr->timeout_s, e))) return rc;
    const char *cache = "prep";
    if ((x = yt_map_get(n, "cache"))) {
        if ((rc = want_scalar(v, x, "cache", e))) return rc;
        if (!x->value || !*x->value) return yt_fail(e, CAD_ECONFIG, v->d, x, "'cache' must name a directory");
        cache = x->value;
    }
    if (!(pr->cache = abs_from_cwd(cache)) || !(pr->corpus = path_beside(v->d->path, c->value ? c->value : "")))
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    int fd;
    cad_err oe;
    cad_err_clear(&oe);
    if (cad_open_regular(pr->corpus, NULL, &fd, &oe))
        return yt_fail(e, CAD_EIO, v->d, c, "prepare corpus '%s' (resolved to %s): %s", c->value, pr->corpus, oe.msg);
    close(fd);
    if (cad_sha256_file_hex(pr->corpus, pr->corpus_sha256, NULL, &oe))
        return yt_fail(e, CAD_EIO, v->d, c, "prepare corpus '%s': %s", c->value, oe.msg);
    if ((rc = parse_prepare_tokenizers(v, pr, t, e))) return rc;
    /* the prepared entry decides these two for every run: a value set in the sweep would be
     * silently replaced */
    static const char *const owned[] = {"tokenizer_path", "data_path", NULL};
    for (int j = 0; owned[j]; j++) {
        int i = name_index_get(&v->seen_ix, owned[j]);
        if (i >= 0)
            return yt_fail(e, CAD_ECONFIG, v->d, v->seen[i].node,
                           "'%s' is set by 'prepare' (line %d) for every run: remove it from %s", owned[j], n->line,
                           v->seen[i].where);
    }
    return CAD_OK;
}

/* ---- kind: greedy ---------------------------------------------------------------------------- */

static const char *const greedy_only[] = {"candidates", "metric", "margin", "max_rounds", NULL};

/* kind (grid | greedy); for greedy, candidates, metric, margin, max_rounds. Called after set,
 * so a command engine's candidate keys can be checked for a starting value. */
static int parse_kind(vctx *v, const yt_node *root, cad_err *e) {
    cad_sweep_spec *s = v->s;
    const yt_node *n = yt_map_get(root, "kind");
    int rc;
    s->kind = CAD_SWEEP_KIND_GRID;
    if (n) {
        if ((rc = want_scalar(v, n, "kind", e))) return rc;
        if (strcmp(n->value, "greedy") == 0) s->kind = CAD_SWEEP_KIND_GREEDY;
        else if (strcmp(n->value, "grid") != 0)
            return yt_fail(e, CAD_ECONFIG, v->d, n, "unknown kind '%s': use grid (the default) or greedy", n->value);
    }
    if (s->kind == CAD_SWEEP_KIND_GRID) {
        for (int i = 0; greedy_only[i]; i++)
            if ((n = yt_map_get(root, greedy_only[i])))
                return yt_fail(e, CAD_ECONFIG, v->d, n, "'%s' belongs to kind: greedy (this sweep's kind is grid)",
                               greedy_only[i]);
        return CAD_OK;
    }
    static const char *const no_greedy[] = {"grid", "zip", "prepare", NULL};
    for (int i = 0; no_greedy[i]; i++)
        if ((n = yt_map_get(root, no_greedy[i])))
            return yt_fail(e, CAD_ECONFIG, v->d, n,
                           "a greedy sweep has no '%s': its runs are the current config and each candidate on "
                           "top of it",
                           no_greedy[i]);
    if (strlen(s->name) > CAD_SWEEP_GREEDY_NAME_MAX)
        return yt_fail(e, CAD_ECONFIG, v->d, yt_map_get(root, "name"),
                       "a greedy sweep's name may have at most %d characters (its rounds are <name>.r<k>)",
                       CAD_SWEEP_GREEDY_NAME_MAX);
    cad_sweep_greedy *g = &s->greedy;
    const yt_node *c = yt_map_get(root, "candidates");
    if (!c) return yt_fail(e, CAD_ECONFIG, v->d, root, "kind: greedy needs 'candidates': a map name: {key: value, ...}");
    if (c->kind != YT_MAP || c->n == 0)
        return yt_fail(e, CAD_EFORMAT, v->d, c, "'candidates' must be a non-empty map name: {key: value, ...}, got %s",
                       c->kind == YT_MAP ? "an empty map" : kind_name(c));
    g->cands_node = c;
    if (!(g->cands = calloc(c->n, sizeof *g->cands))) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (size_t i = 0; i < c->n; i++) {
        const yt_node *name = c->keys[i], *m = c->vals[i];
        const char *nm = name->value ? name->value : "";
        int ok = *nm && strlen(nm) <= 40 && strcmp(nm, "base") != 0;
        for (const char *p = nm; *p && ok; p++) ok = isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.';
        if (!ok)
            return yt_fail(e, CAD_ECONFIG, v->d, name,
                           "candidate name '%s' must be 1 to 40 of [A-Za-z0-9_.-] and not 'base' (it names runs)", nm);
        if (m->kind != YT_MAP || m->n == 0)
            return yt_fail(e, CAD_EFORMAT, v->d, m, "candidate '%s' must be a non-empty map {key: value, ...}, got %s", nm,
                           m->kind == YT_MAP ? "an empty map" : kind_name(m));
        cad_sweep_point *pt = &g->cands[g->n_cands++];
        pt->label = nm;
        if (!(pt->a = calloc(m->n, sizeof *pt->a))) return cad_fail(e, CAD_ENOMEM, "out of memory");
        for (size_t k = 0; k < m->n; k++) {
            if ((rc = check_assign(v, m->keys[k], m->vals[k], e))) return rc;
            /* a command engine has no defaults: the base run needs a value for every key */
            if (s->engine == CAD_ENGINE_COMMAND && name_index_get(&v->seen_ix, m->keys[k]->value) < 0)
                return yt_fail(e, CAD_ECONFIG, v->d, m->keys[k],
                               "candidate key '%s' has no starting value: give it one in 'set' (or the base file)",
                               m->keys[k]->value);
            pt->a[pt->n++] = (cad_sweep_assign){m->keys[k]->value, m->keys[k], m->vals[k]};
        }
    }
    const yt_node *x;
    g->metric = dup_or_fail("val_bpb", &rc, e);
    if (rc) return rc;
    if ((x = yt_map_get(root, "metric"))) {
        if ((rc = want_scalar(v, x, "metric", e))) return rc;
        if (strcmp(x->value, "val_bpb") != 0 && strcmp(x->value, "val_loss") != 0)
            return yt_fail(e, CAD_ECONFIG, v->d, x, "'metric' must be val_bpb or val_loss (lower is better), got '%s'",
                           x->value);
        free(g->metric);
        if (!(g->metric = strdup(x->value))) return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    if ((x = yt_map_get(root, "margin"))) {
        if ((rc = want_scalar(v, x, "margin", e))) return rc;
        if (yt_scalar_double(v->d, x, &g->margin, NULL) != CAD_OK || !(g->margin >= 0) || !isfinite(g->margin))
            return yt_fail(e, CAD_ECONFIG, v->d, x, "'margin' must be a number >= 0, got '%s'", x->value);
    }
    g->max_rounds = g->n_cands;
    if ((x = yt_map_get(root, "max_rounds"))) {
        long mr;
        if ((rc = want_long(v, x, "max_rounds", 1, g->n_cands, &mr, e))) return rc;
        g->max_rounds = (int)mr;
    }
    return CAD_OK;
}

int cad_sweep_greedy_pick(const double *scores, const int *have, int n, double margin, int *winner) {
    *winner = 0;
    if (n < 1 || !have[0]) return CAD_ERR;
    int best = 0;
    for (int i = 1; i < n; i++)
        if (have[i] && (best == 0 || scores[i] < scores[best])) best = i;
    if (best > 0 && scores[best] < scores[0] - margin) *winner = best;
    return CAD_OK;
}

int cad_sweep_greedy_round(const cad_sweep_spec *g, int round, const int *accepted, int n_accepted,
                           cad_sweep_spec **out, cad_err *e) {
    *out = NULL;
    if (g->kind != CAD_SWEEP_KIND_GREEDY) return cad_fail(e, CAD_ERR, "%s: not a greedy sweep", g->path);
    cad_sweep_spec *r = calloc(1, sizeof *r);
    if (!r) return cad_fail(e, CAD_ENOMEM, "out of memory");
    *r = *g;
    r->round_of = g;
    r->kind = CAD_SWEEP_KIND_GRID;
    r->name = r->description = NULL;
    r->set = NULL;
    r->axes = NULL;
    r->n_set = 0;
    r->n_axes = 0;
    const cad_sweep_greedy *gr = &g->greedy;
    int n_set = g->n_set;
    for (int i = 0; i < n_accepted; i++) n_set += gr->cands[accepted[i]].n;
    size_t nlen = strlen(g->name) + 16;
    r->name = malloc(nlen);
    r->set = calloc((size_t)n_set + 1, sizeof *r->set);
    r->axes = calloc(1, sizeof *r->axes);
    cad_sweep_point *pts = calloc((size_t)gr->n_cands + 1, sizeof *pts);
    if (r->axes) r->axes[0].points = pts;
    if (r->axes) r->axes[0].label = strdup("candidate");
    if (!r->name || !r->set || !r->axes || !pts || !r->axes[0].label) {
        if (!r->axes) free(pts);
        cad_sweep_spec_free(r);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    r->n_axes = 1;
    snprintf(r->name, nlen, "%s.r%d", g->name, round);
    /* the greedy set, then the kept candidates in the order kept (a later one wins a key) */
    for (int i = 0; i < g->n_set; i++) r->set[r->n_set++] = g->set[i];
    char *desc = NULL;
    size_t dlen = 0;
    FILE *f = open_memstream(&desc, &dlen);
    if (f) fprintf(f, "round %d of greedy %s, from base", round, g->name);
    for (int i = 0; i < n_accepted; i++) {
        const cad_sweep_point *c = &gr->cands[accepted[i]];
        for (int k = 0; k < c->n; k++) r->set[r->n_set++] = c->a[k];
        if (f) fprintf(f, "+%s", c->label);
    }
    if (f) fclose(f);
    r->description = desc;
    cad_sweep_axis *ax = &r->axes[0];
    ax->node = gr->cands_node;
    ax->is_bundle = ax->is_ragged = 1;
    ax->points[ax->n_points++] = (cad_sweep_point){0, NULL, "base"};
    for (int i = 0; i < gr->n_cands; i++) {
        int kept = 0;
        for (int j = 0; j < n_accepted; j++) kept |= accepted[j] == i;
        if (!kept) ax->points[ax->n_points++] = gr->cands[i];
    }
    if (!r->description) {
        cad_sweep_spec_free(r);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    *out = r;
    return CAD_OK;
}

/* engine command: command, env, workdir, and every template name checked */
static int parse_command_engine(vctx *v, const yt_node *root, cad_err *e) {
    cad_sweep_spec *s = v->s;
    const yt_node *wd = yt_map_get(root, "workdir");
    int rc = parse_templates(v, yt_map_get(root, "command"), yt_map_get(root, "env"), e);
    if (rc) return rc;
    if (wd) {
        if ((rc = want_scalar(v, wd, "workdir", e))) return rc;
        s->workdir = dup_or_fail(wd->value, &rc, e);
        if (rc) return rc;
    }
    return check_templates(v, e);
}

/* The whole file, in the order its parts depend on each other: the engine decides how keys
 * are checked, base and set come before the axes that may not repeat them, seeds before the
 * templates that use {seed}. */
static int spec_parse(vctx *v, cad_err *e) {
    const yt_doc *d = v->d;
    const yt_node *root = d->root, *n;
    int rc;
    if (!root) return cad_fail(e, CAD_EFORMAT, "%s:1:1: empty sweep file", d->path);
    if (root->kind != YT_MAP)
        return yt_fail(e, CAD_EFORMAT, d, root, "a sweep file must be a map of keys, got %s", kind_name(root));
    if ((rc = check_top_keys(v, root, e))) return rc;
    if ((rc = parse_name(v, root, e))) return rc;
    if ((rc = parse_engine(v, root, e))) return rc;
    if ((n = yt_map_get(root, "base")) && (rc = parse_base(v, n, e))) return rc;
    if ((n = yt_map_get(root, "set")) && (rc = parse_set(v, n, e))) return rc;
    if ((rc = parse_kind(v, root, e))) return rc;
    if ((rc = parse_axes(v, root, e))) return rc;
    if ((n = yt_map_get(root, "seeds")) && (rc = parse_seeds(v, n, e))) return rc;
    if ((rc = parse_limits(v, root, e))) return rc;
    if ((rc = parse_stop(v, root, e))) return rc;
    if ((n = yt_map_get(root, "prepare")) && (rc = parse_prepare(v, n, e))) return rc;
    if (v->s->engine == CAD_ENGINE_COMMAND) return parse_command_engine(v, root, e);
    return CAD_OK;
}

static int spec_load(const char *path, const char *text, size_t len, cad_sweep_spec **out, cad_err *e) {
    *out = NULL;
    cad_sweep_spec *s = calloc(1, sizeof *s);
    if (!s) return cad_fail(e, CAD_ENOMEM, "out of memory");
    int rc = text ? yt_load_string(path, text, len, &s->doc, e) : yt_load_file(path, &s->doc, e);
    if (rc) {
        free(s);
        return rc;
    }
    s->path = strdup(path);
    s->spec_hash = malloc(65);
    if (!s->path || !s->spec_hash) {
        cad_sweep_spec_free(s);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    cad_sha256_hex(s->doc->text, s->doc->text_len, s->spec_hash);
    vctx v = {.s = s, .d = s->doc};
    rc = spec_parse(&v, e);
    if (v.scratch_ok) cad_config_free(&v.scratch);
    free(v.seen);
    name_index_free(&v.seen_ix);
    free(v.used);
    if (rc) {
        cad_sweep_spec_free(s);
        return rc;
    }
    *out = s;
    return CAD_OK;
}

int cad_sweep_spec_load(const char *path, cad_sweep_spec **out, cad_err *e) {
    return spec_load(path, NULL, 0, out, e);
}

int cad_sweep_spec_load_text(const char *path, const char *text, size_t len, cad_sweep_spec **out,
                             cad_err *e) {
    return spec_load(path, text, len, out, e);
}

void cad_sweep_spec_free(cad_sweep_spec *s) {
    if (!s) return;
    if (s->round_of) { /* a greedy round: only its own arrays; the points' assignments are borrowed */
        if (s->axes) {
            free(s->axes[0].points);
            free(s->axes[0].label);
        }
        free(s->axes);
        free(s->set);
        free(s->name);
        free(s->description);
        free(s);
        return;
    }
    for (int i = 0; i < s->greedy.n_cands; i++) free(s->greedy.cands[i].a);
    free(s->greedy.cands);
    free(s->greedy.metric);
    for (int i = 0; i < s->n_axes; i++) {
        for (int j = 0; j < s->axes[i].n_points; j++) free(s->axes[i].points[j].a);
        free(s->axes[i].points);
        free(s->axes[i].label);
    }
    free(s->axes);
    free(s->set);
    free(s->seeds);
    for (int i = 0; i < s->n_argv; i++) free(s->argv[i].name);
    for (int i = 0; i < s->n_env; i++) free(s->env[i].name);
    free(s->argv);
    free(s->env);
    free(s->workdir);
    for (int i = 0; i < s->prepare.n_tok; i++) free(s->prepare.tok[i].dir);
    free(s->prepare.tok);
    free(s->prepare.corpus);
    free(s->prepare.cache);
    free(s->base);
    yt_doc_free(s->base_doc);
    free(s->name);
    free(s->description);
    free(s->spec_hash);
    free(s->path);
    yt_doc_free(s->doc);
    free(s);
}

/*
 * spec.c — parse and validate a sweep YAML file (see spec.h and the README "Sweep file
 * reference"). Every check names file:line:col of the offending node, so a user fixes the
 * file without guessing; nothing is queued unless the whole file passes.
 * Not here: expansion into runs and config resolution (plan.c).
 */
#include "sweep/spec.h"

#include "engine/config.h"
#include "engine/fsutil.h"
#include "engine/sha256.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
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
                                        "command", "env",         "workdir", NULL};

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
    const char *where; /* "set", "grid", "zip" */
} seen_key;

typedef struct {
    cad_sweep_spec *s;
    const yt_doc *d;
    cad_config scratch; /* for type-checking engine values (caddie engine) */
    int scratch_ok;
    seen_key *seen;
    int n_seen, cap_seen;
    int *used;          /* command engine: which seen keys a template references */
    int used_seed;      /* command engine: some template uses {seed} */
} vctx;

static int seen_add(vctx *v, const char *key, const yt_node *node, const char *where, cad_err *e) {
    for (int i = 0; i < v->n_seen; i++)
        if (strcmp(v->seen[i].key, key) == 0 && strcmp(v->seen[i].where, "base") == 0) {
            v->seen[i] = (seen_key){key, node, where}; /* the sweep overrides its base */
            return CAD_OK;
        } else if (strcmp(v->seen[i].key, key) == 0)
            return yt_fail(e, CAD_ECONFIG, v->d, node, "'%s' is already set in %s (line %d)", key,
                           v->seen[i].where, v->seen[i].node->line);
    if (v->n_seen == v->cap_seen) {
        v->cap_seen = v->cap_seen ? 2 * v->cap_seen : 16;
        seen_key *nv = realloc(v->seen, (size_t)v->cap_seen * sizeof *nv);
        if (!nv) return cad_fail(e, CAD_ENOMEM, "out of memory");
        v->seen = nv;
    }
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
    *out = x * mul;
    return CAD_OK;
}

static char *dup_or_fail(const char *s, int *rc, cad_err *e) {
    char *d = strdup(s ? s : "");
    if (!d) *rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    return d;
}

/* grid: key: [values]  |  axis: [{k: v, ...}, ...] */
static int parse_grid(vctx *v, const yt_node *g, cad_err *e) {
    if (g->kind != YT_MAP)
        return yt_fail(e, CAD_EFORMAT, v->d, g, "'grid' must be a map of key: [values], got %s",
                       kind_name(g));
    if (g->n == 0) return yt_fail(e, CAD_ECONFIG, v->d, g, "empty grid: give at least one key with values");
    cad_sweep_spec *s = v->s;
    for (size_t i = 0; i < g->n; i++) {
        const yt_node *key = g->keys[i], *vals = g->vals[i];
        if (vals->kind != YT_SEQ)
            return yt_fail(e, CAD_EFORMAT, v->d, vals,
                           "grid '%s' must be a list of values, got %s (use 'set' for a fixed value)",
                           key->value, kind_name(vals));
        if (vals->n == 0)
            return yt_fail(e, CAD_ECONFIG, v->d, vals, "empty grid axis '%s': give at least one value",
                           key->value);
        cad_sweep_axis *ax = &s->axes[s->n_axes++];
        int rc = 0;
        ax->label = dup_or_fail(key->value, &rc, e);
        if (rc) return rc;
        ax->node = key;
        ax->is_bundle = vals->items[0]->kind == YT_MAP;
        ax->points = calloc(vals->n, sizeof *ax->points);
        if (!ax->points) return cad_fail(e, CAD_ENOMEM, "out of memory");
        const yt_node *first = vals->items[0];
        for (size_t j = 0; j < vals->n; j++) {
            const yt_node *item = vals->items[j];
            cad_sweep_point *p = &ax->points[ax->n_points++];
            if (ax->is_bundle != (item->kind == YT_MAP))
                return yt_fail(e, CAD_EFORMAT, v->d, item,
                               "grid '%s' mixes bundles (maps) and plain values", key->value);
            if (!ax->is_bundle) {
                p->n = 1;
                p->a = calloc(1, sizeof *p->a);
                if (!p->a) return cad_fail(e, CAD_ENOMEM, "out of memory");
                p->a[0] = (cad_sweep_assign){key->value, key, item};
                if ((rc = check_assign(v, key, item, e))) return rc;
                continue;
            }
            if (item->n == 0)
                return yt_fail(e, CAD_ECONFIG, v->d, item, "empty bundle in grid '%s'", key->value);
            /* caddie engine: a key a bundle leaves out keeps its base/default value, so bundles
             * may differ (an ablation: one technique per bundle). A command engine has no
             * defaults: every bundle must give every key its templates use. */
            int same = item->n == first->n;
            for (size_t k = 0; same && k < item->n; k++) same = yt_map_get(first, item->keys[k]->value) != NULL;
            if (!same && s->engine == CAD_ENGINE_CADDIE) ax->is_ragged = 1;
            if (item->n != first->n && s->engine != CAD_ENGINE_CADDIE)
                return yt_fail(e, CAD_ECONFIG, v->d, item,
                               "bundle sets %zu keys but the first bundle of '%s' (line %d) sets %zu: "
                               "with engine command every bundle of an axis must set the same keys",
                               item->n, key->value, first->line, first->n);
            p->n = (int)item->n;
            p->a = calloc(item->n, sizeof *p->a);
            if (!p->a) return cad_fail(e, CAD_ENOMEM, "out of memory");
            for (size_t k = 0; k < item->n; k++) {
                const yt_node *bk = item->keys[k];
                if (!yt_map_get(first, bk->value) && s->engine != CAD_ENGINE_CADDIE)
                    return yt_fail(e, CAD_ECONFIG, v->d, bk,
                                   "bundle key '%s' is not in the first bundle of '%s' (line %d): "
                                   "with engine command every bundle of an axis must set the same keys",
                                   bk->value, key->value, first->line);
                p->a[k] = (cad_sweep_assign){bk->value, bk, item->vals[k]};
                if ((rc = check_assign(v, bk, item->vals[k], e))) return rc;
            }
        }
        if (ax->is_bundle) { /* every key any bundle sets, once */
            for (size_t j = 0; j < vals->n; j++) {
                const yt_node *item = vals->items[j];
                for (size_t k = 0; k < item->n; k++) {
                    int dup = 0;
                    for (size_t jj = 0; jj < j && !dup; jj++) dup = yt_map_get(vals->items[jj], item->keys[k]->value) != NULL;
                    for (size_t kk = 0; kk < k && !dup; kk++) dup = !strcmp(item->keys[kk]->value, item->keys[k]->value);
                    if (dup) continue;
                    int rc2 = seen_add(v, item->keys[k]->value, item->keys[k], "grid", e);
                    if (rc2) return rc2;
                }
            }
        } else if ((rc = seen_add(v, key->value, key, "grid", e)))
            return rc;
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

typedef struct {
    vctx *v;
    const yt_node *node;
} tctx;

static int template_name_check(void *ctx, const char *name, size_t len, cad_err *e) {
    tctx *t = ctx;
    vctx *v = t->v;
    char buf[128];
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
    for (int i = 0; i < v->n_seen; i++)
        if (strcmp(v->seen[i].key, buf) == 0) {
            v->used[i] = 1;
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

static int spec_parse(vctx *v, cad_err *e) {
    cad_sweep_spec *s = v->s;
    const yt_doc *d = v->d;
    const yt_node *root = d->root;
    int rc = 0;
    if (!root) return cad_fail(e, CAD_EFORMAT, "%s:1:1: empty sweep file", d->path);
    if (root->kind != YT_MAP)
        return yt_fail(e, CAD_EFORMAT, d, root, "a sweep file must be a map of keys, got %s",
                       kind_name(root));
    for (size_t i = 0; i < root->n; i++) {
        const char *k = root->keys[i]->value;
        int known = 0;
        for (int j = 0; top_keys[j]; j++) known |= strcmp(k, top_keys[j]) == 0;
        if (!known)
            return yt_fail(e, CAD_EFORMAT, d, root->keys[i], "unknown key '%s' (did you mean '%s'?)", k,
                           closest_of(k, top_keys));
    }
    const yt_node *n;
    if (!(n = yt_map_get(root, "name")))
        return yt_fail(e, CAD_ECONFIG, d, root, "missing required key 'name'");
    if ((rc = want_scalar(v, n, "name", e))) return rc;
    if (!n->value || !*n->value || strlen(n->value) > 64)
        return yt_fail(e, CAD_ECONFIG, d, n, "'name' must be 1 to 64 characters");
    for (const char *p = n->value; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return yt_fail(e, CAD_ECONFIG, d, n,
                           "'name' may only use letters, digits, '-', '_' and '.' (it names run "
                           "directories), got '%s'",
                           n->value);
    s->name = dup_or_fail(n->value, &rc, e);
    if (rc) return rc;
    if ((n = yt_map_get(root, "description"))) {
        if ((rc = want_scalar(v, n, "description", e))) return rc;
        s->description = dup_or_fail(n->value, &rc, e);
    } else s->description = dup_or_fail("", &rc, e);
    if (rc) return rc;

    s->engine = CAD_ENGINE_CADDIE;
    if ((n = yt_map_get(root, "engine"))) {
        if ((rc = want_scalar(v, n, "engine", e))) return rc;
        if (strcmp(n->value, "caddie") == 0) s->engine = CAD_ENGINE_CADDIE;
        else if (strcmp(n->value, "command") == 0) s->engine = CAD_ENGINE_COMMAND;
        else {
            static const char *const engines[] = {"caddie", "command", NULL};
            return yt_fail(e, CAD_ECONFIG, d, n, "unknown engine '%s' (did you mean '%s'?): use caddie or command",
                           n->value, closest_of(n->value, engines));
        }
    }
    const yt_node *cmd = yt_map_get(root, "command"), *env = yt_map_get(root, "env"),
                  *wd = yt_map_get(root, "workdir");
    if (s->engine == CAD_ENGINE_CADDIE) {
        const yt_node *bad = cmd ? cmd : env ? env : wd;
        if (bad)
            return yt_fail(e, CAD_ECONFIG, d, bad,
                           "'command', 'env' and 'workdir' belong to engine: command (this sweep's engine is caddie)");
        cad_err e2;
        v->scratch_ok = cad_config_init(&v->scratch, &e2) == CAD_OK;
    }

    if ((n = yt_map_get(root, "base"))) {
        if ((rc = want_scalar(v, n, "base", e))) return rc;
        const char *b = n->value;
        if (b[0] == '/') s->base = strdup(b);
        else {
            char *tmp = strdup(d->path);
            if (!tmp) return cad_fail(e, CAD_ENOMEM, "out of memory");
            const char *dir = dirname(tmp);
            size_t len = strlen(dir) + strlen(b) + 2;
            s->base = malloc(len);
            if (s->base) snprintf(s->base, len, "%s/%s", dir, b);
            free(tmp);
        }
        if (!s->base) return cad_fail(e, CAD_ENOMEM, "out of memory");
        /* a regular file only: fopen of a FIFO would block here forever (engine/fsutil.h) */
        int base_fd;
        cad_err oe;
        cad_err_clear(&oe);
        if (cad_open_regular(s->base, NULL, &base_fd, &oe))
            return yt_fail(e, CAD_EIO, d, n, "base config '%s' (resolved to %s): %s", b, s->base, oe.msg);
        close(base_fd);
        if (s->engine == CAD_ENGINE_CADDIE && v->scratch_ok) {
            cad_err e2;
            cad_err_clear(&e2);
            if (cad_config_load_yaml(&v->scratch, s->base, &e2) != CAD_OK)
                return yt_fail(e, CAD_ECONFIG, d, n, "in base config: %s", e2.msg);
        } else if (s->engine == CAD_ENGINE_COMMAND) {
            if ((rc = yt_load_file(s->base, &s->base_doc, e))) return rc;
            const yt_node *br = s->base_doc->root;
            int ok = !br || br->kind == YT_MAP;
            if (ok && br)
                for (size_t i = 0; i < br->n; i++)
                    if (br->vals[i]->kind == YT_MAP) ok = 0;
            if (!ok)
                return yt_fail(e, CAD_EFORMAT, d, n,
                               "base '%s' must be a flat map of key: value for engine command", b);
            /* Base params may be used by templates; they need not be (unlike sweep keys). */
            for (size_t i = 0; br && i < br->n; i++)
                if ((rc = seen_add(v, br->keys[i]->value, br->keys[i], "base", e))) return rc;
        }
    }

    if ((n = yt_map_get(root, "set"))) {
        if (n->kind != YT_MAP)
            return yt_fail(e, CAD_EFORMAT, d, n, "'set' must be a map of key: value, got %s", kind_name(n));
        s->set = calloc(n->n + 1, sizeof *s->set);
        if (!s->set) return cad_fail(e, CAD_ENOMEM, "out of memory");
        for (size_t i = 0; i < n->n; i++) {
            if ((rc = check_assign(v, n->keys[i], n->vals[i], e))) return rc;
            if ((rc = seen_add(v, n->keys[i]->value, n->keys[i], "set", e))) return rc;
            s->set[s->n_set++] = (cad_sweep_assign){n->keys[i]->value, n->keys[i], n->vals[i]};
        }
    }

    const yt_node *grid = yt_map_get(root, "grid"), *zip = yt_map_get(root, "zip");
    size_t max_axes = (grid && grid->kind == YT_MAP ? grid->n : 0) +
                      (zip ? (zip->kind == YT_SEQ ? zip->n : 1) : 0);
    s->axes = calloc(max_axes + 1, sizeof *s->axes);
    if (!s->axes) return cad_fail(e, CAD_ENOMEM, "out of memory");
    if (grid && (rc = parse_grid(v, grid, e))) return rc;
    if (zip) {
        if (zip->kind == YT_SEQ) {
            if (zip->n == 0) return yt_fail(e, CAD_ECONFIG, d, zip, "empty zip list");
            for (size_t i = 0; i < zip->n; i++)
                if ((rc = parse_zip_group(v, zip->items[i], e))) return rc;
        } else if ((rc = parse_zip_group(v, zip, e)))
            return rc;
    }

    if ((n = yt_map_get(root, "seeds"))) {
        s->seeds_node = n;
        if (n->kind == YT_SCALAR) {
            long cnt;
            if ((rc = want_long(v, n, "seeds", 1, 1000, &cnt, e))) return rc;
            s->seeds = calloc((size_t)cnt, sizeof *s->seeds);
            if (!s->seeds) return cad_fail(e, CAD_ENOMEM, "out of memory");
            for (long i = 0; i < cnt; i++) s->seeds[s->n_seeds++] = 1337 + i;
        } else if (n->kind == YT_SEQ) {
            if (n->n == 0)
                return yt_fail(e, CAD_ECONFIG, d, n, "empty 'seeds': give a list of integers or a count");
            s->seeds = calloc(n->n, sizeof *s->seeds);
            if (!s->seeds) return cad_fail(e, CAD_ENOMEM, "out of memory");
            for (size_t i = 0; i < n->n; i++) {
                long sd;
                if ((rc = want_long(v, n->items[i], "seeds", 0, 2147483647L, &sd, e))) return rc;
                for (int j = 0; j < s->n_seeds; j++)
                    if (s->seeds[j] == sd)
                        return yt_fail(e, CAD_ECONFIG, d, n->items[i], "seed %ld is listed twice", sd);
                s->seeds[s->n_seeds++] = sd;
            }
        } else
            return yt_fail(e, CAD_EFORMAT, d, n, "'seeds' must be a list of integers or a count, got a map");
        for (int i = 0; i < v->n_seen; i++)
            if (strcmp(v->seen[i].key, "seed") == 0 && strcmp(v->seen[i].where, "base") != 0)
                return yt_fail(e, CAD_ECONFIG, d, v->seen[i].node,
                               "'seed' is set in %s and by 'seeds' (line %d): keep one", v->seen[i].where,
                               n->line);
    }

    long x;
    s->devices = 1;
    if ((n = yt_map_get(root, "devices"))) {
        if ((rc = want_long(v, n, "devices", 1, 64, &x, e))) return rc;
        s->devices = (int)x;
        /* Reserving 8 GPUs for a process that trains on one would waste 7 for the whole run. */
        if (s->engine == CAD_ENGINE_CADDIE && x > 1)
            return yt_fail(e, CAD_ECONFIG, d, n,
                           "'devices: %ld' with engine caddie: caddie's engine trains on one device "
                           "(no data parallel yet); use devices: 1, or engine: command with torchrun "
                           "for multi-GPU runs", x);
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

    if (s->engine == CAD_ENGINE_COMMAND) {
        if ((rc = parse_templates(v, cmd, env, e))) return rc;
        if (wd) {
            if ((rc = want_scalar(v, wd, "workdir", e))) return rc;
            s->workdir = dup_or_fail(wd->value, &rc, e);
            if (rc) return rc;
        }
        if ((rc = check_templates(v, e))) return rc;
    }
    return CAD_OK;
}

int cad_sweep_spec_load(const char *path, cad_sweep_spec **out, cad_err *e) {
    *out = NULL;
    cad_sweep_spec *s = calloc(1, sizeof *s);
    if (!s) return cad_fail(e, CAD_ENOMEM, "out of memory");
    int rc = yt_load_file(path, &s->doc, e);
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
    free(v.used);
    if (rc) {
        cad_sweep_spec_free(s);
        return rc;
    }
    *out = s;
    return CAD_OK;
}

void cad_sweep_spec_free(cad_sweep_spec *s) {
    if (!s) return;
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
    free(s->base);
    yt_doc_free(s->base_doc);
    free(s->name);
    free(s->description);
    free(s->spec_hash);
    free(s->path);
    yt_doc_free(s->doc);
    free(s);
}

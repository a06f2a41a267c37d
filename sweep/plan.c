/*
 * plan.c — expand a sweep spec into runs, resolve and hash their configs, dedup against the
 * DB, estimate the duration, and queue them (contract in plan.h).
 *
 * Values reach a command-engine process only through its launch recipe: each argv entry and
 * env value is rendered from its template by plain text substitution and stored as a
 * separate JSON string; nothing is ever joined into a shell command line.
 * Not here: validating the YAML (spec.c), running anything (runner.c).
 */
#include "engine/fsutil.h"
#include "sweep/plan.h"

#include "engine/buildinfo.h"
#include "engine/jsonw.h"
#include "engine/prepcache.h"
#include "engine/sha256.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------------------------ */

void cad_plan_format_double(double v, char *buf, size_t cap) {
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* %g picks exponents for 30 ("3e+01") and 10000 ("1e+04"); people write those plainly,
     * so use fixed notation in the usual range when it reads back the same. */
    double a = fabs(v);
    if (strchr(buf, 'e') && a >= 1e-4 && a < 1e15) {
        int decimals = prec - 1 - (int)floor(log10(a));
        char alt[64];
        snprintf(alt, sizeof alt, "%.*f", decimals > 0 ? decimals : 0, v);
        if (strtod(alt, NULL) == v) snprintf(buf, cap, "%s", alt);
    }
    /* "inf"/"nan" are not JSON: callers only pass finite values. */
}

void cad_plan_hash(const char *engine_version, const char *json, const char *extra, char hex[65]) {
    cad_sha256 s;
    cad_sha256_init(&s);
    cad_sha256_update(&s, engine_version, strlen(engine_version));
    cad_sha256_update(&s, "\n", 1);
    cad_sha256_update(&s, json, strlen(json));
    if (extra) {
        cad_sha256_update(&s, "\n", 1);
        cad_sha256_update(&s, extra, strlen(extra));
    }
    uint8_t d[32];
    cad_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

const char *cad_plan_caddie_engine_version(void) { return "caddie " CADDIE_VERSION; }

const char *cad_plan_action_name(cad_plan_action a) {
    static const char *const names[] = {"queue", "requeue", "done", "pending", "duplicate"};
    return (unsigned)a < 5 ? names[a] : "?";
}

/* Absolute form of a path relative to the current directory (need not exist). */
static char *abs_path(const char *p) {
    if (p[0] == '/') return strdup(p);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    while (p[0] == '.' && p[1] == '/') p += 2;
    if (strcmp(p, ".") == 0 || !*p) return strdup(cwd);
    size_t len = strlen(cwd) + strlen(p) + 2;
    char *r = malloc(len);
    if (r) snprintf(r, len, "%s/%s", cwd, p);
    return r;
}

typedef struct {
    char *key;
    char *text;  /* value as written (what templates substitute) */
    char *json;  /* value as canonical JSON */
} kv;

static int kv_cmp(const void *a, const void *b) {
    return strcmp(((const kv *)a)->key, ((const kv *)b)->key);
}

/* Close a memstream opened on *buf and hand back its text (fclose sets *buf); NULL, and the
 * text freed, when the stream ran out of memory, which open_memstream reports only here. */
static char *memstream_done(FILE *f, char **buf) {
    int bad = ferror(f);
    if (fclose(f) || bad) {
        free(*buf);
        *buf = NULL;
    }
    return *buf;
}

static char *json_string(const char *s) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    cad_json_write_string(f, s);
    return memstream_done(f, &buf);
}

/* JSON for a command-engine value: numbers when written unquoted as numbers. */
static char *json_of_value(const yt_node *v, const char *text) {
    if (v && v->kind == YT_SCALAR && !v->quoted && *text) {
        char *end;
        errno = 0;
        long l = strtol(text, &end, 10);
        if (!*end && !errno) {
            char b[32];
            snprintf(b, sizeof b, "%ld", l);
            return strdup(b);
        }
        double d = strtod(text, &end);
        if (!*end && isfinite(d)) {
            char b[40];
            cad_plan_format_double(d, b, sizeof b);
            return strdup(b);
        }
    }
    return json_string(text);
}

/* {"k":v,...} from sorted kvs, skipping skip (may be NULL). */
static char *kv_json(const kv *kvs, int n, const char *skip) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fputc('{', f);
    int first = 1;
    for (int i = 0; i < n; i++) {
        if (skip && strcmp(kvs[i].key, skip) == 0) continue;
        if (!first) fputc(',', f);
        first = 0;
        cad_json_write_string(f, kvs[i].key);
        fputc(':', f);
        fputs(kvs[i].json, f);
    }
    fputc('}', f);
    return memstream_done(f, &buf);
}

static void kv_free(kv *kvs, int n) {
    for (int i = 0; i < n; i++) {
        free(kvs[i].key);
        free(kvs[i].text);
        free(kvs[i].json);
    }
    free(kvs);
}

/* One key's value as JSON (malloc'd). */
static char *config_value_json(const cad_config *c, const cad_config_key *k) {
    const char *field = (const char *)c + k->offset;
    char b[64];
    char *json = NULL;
        switch (k->type) {
        case CAD_KEY_INT:
            snprintf(b, sizeof b, "%ld", *(const long *)field);
            json = strdup(b);
            break;
        case CAD_KEY_FLOAT: {
            double d = *(const double *)field;
            if (isfinite(d)) cad_plan_format_double(d, b, sizeof b);
            else snprintf(b, sizeof b, "null");
            json = strdup(b);
            break;
        }
        case CAD_KEY_BOOL: json = strdup(*(const int *)field ? "true" : "false"); break;
        case CAD_KEY_STR:
        case CAD_KEY_LIST: {
            const char *sv = *(char *const *)field;
            json = json_string(sv ? sv : "");
            break;
        }
        }
    return json;
}

/* defaults: NULL = every key; otherwise only the keys whose value differs from it. */
static char *config_json(const cad_config *c, int skip_seed, const cad_config *defaults) {
    int n = cad_config_key_count();
    kv *kvs = calloc((size_t)n, sizeof *kvs);
    if (!kvs) return NULL;
    int m = 0;
    for (int i = 0; i < n; i++) {
        const cad_config_key *k = cad_config_key_at(i);
        if (strcmp(k->name, "run_id") == 0 || strcmp(k->name, "run_dir") == 0) continue;
        if (skip_seed && strcmp(k->name, "seed") == 0) continue;
        if (defaults && cad_config_key_inert(c, k->name)) continue; /* its switch is off */
        char *json = config_value_json(c, k);
        if (json && defaults) {
            char *def = config_value_json(defaults, k);
            int same = def && strcmp(def, json) == 0;
            free(def);
            if (same) {
                free(json);
                continue;
            }
        }
        kvs[m].key = strdup(k->name);
        kvs[m].json = json;
        m++;
    }
    qsort(kvs, (size_t)m, sizeof *kvs, kv_cmp);
    char *out = kv_json(kvs, m, NULL);
    kv_free(kvs, m);
    return out;
}

char *cad_plan_config_json(const cad_config *c, int skip_seed) { return config_json(c, skip_seed, NULL); }

char *cad_plan_config_identity_json(const cad_config *c, int skip_seed) {
    cad_config d;
    cad_err e;
    if (cad_config_init(&d, &e)) return NULL;
    char *out = config_json(c, skip_seed, &d);
    cad_config_free(&d);
    return out;
}

/* ---- per-run resolved state ---------------------------------------------------------------- */

typedef struct {
    cad_config cfg;   /* caddie engine */
    int has_cfg;
    kv *params;       /* command engine: sorted */
    int n_params;
} run_priv;

typedef struct {
    const cad_sweep_spec *s;
    char *runs_dir;   /* absolute */
    char *cwd;        /* absolute: caddie cwd / command workdir */
    char *templates;  /* command engine: JSON of the raw templates (part of the hash) */
} plan_ctx;

static int set_kv(kv **kvs, int *n, const char *key, const char *text, const yt_node *node) {
    for (int i = 0; i < *n; i++)
        if (strcmp((*kvs)[i].key, key) == 0) {
            free((*kvs)[i].text);
            free((*kvs)[i].json);
            (*kvs)[i].text = strdup(text);
            (*kvs)[i].json = json_of_value(node, text);
            return (*kvs)[i].text && (*kvs)[i].json ? CAD_OK : CAD_ENOMEM;
        }
    kv *nv = realloc(*kvs, (size_t)(*n + 1) * sizeof *nv);
    if (!nv) return CAD_ENOMEM;
    *kvs = nv;
    nv[*n] = (kv){strdup(key), strdup(text), json_of_value(node, text)};
    (*n)++;
    return nv[*n - 1].key && nv[*n - 1].text && nv[*n - 1].json ? CAD_OK : CAD_ENOMEM;
}

/* Render one template with the run's params and built-ins. */
typedef struct {
    const plan_ctx *pc;
    const cad_plan_run *r;
    const run_priv *pv;
    FILE *out;
} render_ctx;

static int render_name(void *vctx, const char *name, size_t len, cad_err *e) {
    render_ctx *rc = vctx;
    char key[128];
    snprintf(key, sizeof key, "%.*s", (int)len, name);
    for (int i = 0; i < rc->pv->n_params; i++)
        if (strcmp(rc->pv->params[i].key, key) == 0) {
            fputs(rc->pv->params[i].text, rc->out);
            return CAD_OK;
        }
    if (strcmp(key, "run_id") == 0) fputs(rc->r->run_id, rc->out);
    else if (strcmp(key, "run_dir") == 0) fputs(rc->r->run_dir, rc->out);
    else if (strcmp(key, "devices") == 0) fprintf(rc->out, "%d", rc->pc->s->devices);
    else if (strcmp(key, "sweep") == 0) fputs(rc->pc->s->name, rc->out);
    else return cad_fail(e, CAD_ECONFIG, "unknown template '{%s}'", key);
    return CAD_OK;
}

/* Text substitution: literal text copied, {{ }} unescaped, {name} replaced. */
static char *render(const char *tmpl, render_ctx *rc, cad_err *e) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        cad_fail(e, CAD_ENOMEM, "out of memory");
        return NULL;
    }
    rc->out = f;
    int err = 0;
    for (const char *p = tmpl; *p && !err; p++) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            fputc(*p, f);
            p++;
            continue;
        }
        if (*p != '{') {
            fputc(*p, f);
            continue;
        }
        const char *end = strchr(p + 1, '}');
        if (!end) {
            err = cad_fail(e, CAD_EFORMAT, "unclosed '{' in template \"%s\"", tmpl);
            break;
        }
        err = render_name(rc, p + 1, (size_t)(end - p - 1), e);
        p = end;
    }
    buf = memstream_done(f, &buf);
    if (err) {
        free(buf);
        return NULL;
    }
    if (!buf) cad_fail(e, CAD_ENOMEM, "out of memory");
    return buf;
}

/* caddie engine: the resolved config with this run's id and dir, launched as `caddie train`
 * (through `caddie launch --nproc N` for devices: N > 1). */
static int finalize_caddie_run(const plan_ctx *pc, cad_plan_run *r, run_priv *pv, cad_err *e) {
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    if (!f) return cad_fail(e, CAD_ENOMEM, "out of memory");
    int rc = cad_config_set(&pv->cfg, "run_id", r->run_id, "sweep", e);
    if (!rc) rc = cad_config_set(&pv->cfg, "run_dir", r->run_dir, "sweep", e);
    if (!rc) rc = cad_config_write_yaml(&pv->cfg, f);
    buf = memstream_done(f, &buf);
    if (rc) {
        free(buf);
        return rc;
    }
    if (!(r->config_yaml = buf)) return cad_fail(e, CAD_ENOMEM, "out of memory");
    buf = NULL;
    f = open_memstream(&buf, &blen);
    if (!f) return cad_fail(e, CAD_ENOMEM, "out of memory");
    char cfg_path[PATH_MAX + 16];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.yaml", r->run_dir);
    /* more than one device: one rank per device, started (and stopped together) by launch */
    if (pc->s->devices > 1) fprintf(f, "{\"argv\":[\"caddie\",\"launch\",\"--nproc\",\"%d\",\"train\",", pc->s->devices);
    else fputs("{\"argv\":[\"caddie\",\"train\",", f);
    cad_json_write_string(f, cfg_path);
    fputs("],\"env\":{},\"cwd\":", f);
    cad_json_write_string(f, pc->cwd);
    fputc('}', f);
    if (!(r->launch_json = memstream_done(f, &buf))) return cad_fail(e, CAD_ENOMEM, "out of memory");
    return CAD_OK;
}

/* command engine: the launch recipe with every template rendered for this run. */
static int render_launch_json(const plan_ctx *pc, cad_plan_run *r, run_priv *pv, char **out, cad_err *e) {
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    if (!f) return cad_fail(e, CAD_ENOMEM, "out of memory");
    render_ctx rc = {pc, r, pv, NULL};
    int err = 0;
    fputs("{\"argv\":[", f);
    for (int i = 0; i < pc->s->n_argv && !err; i++) {
        char *v = render(pc->s->argv[i].node->value, &rc, e);
        if (!v) err = CAD_ECONFIG;
        else {
            if (i) fputc(',', f);
            cad_json_write_string(f, v);
            free(v);
        }
    }
    fputs("],\"env\":{", f);
    for (int i = 0; i < pc->s->n_env && !err; i++) {
        char *v = render(pc->s->env[i].node->value, &rc, e);
        if (!v) err = CAD_ECONFIG;
        else {
            if (i) fputc(',', f);
            cad_json_write_string(f, pc->s->env[i].name);
            fputc(':', f);
            cad_json_write_string(f, v);
            free(v);
        }
    }
    fputs("},\"cwd\":", f);
    cad_json_write_string(f, pc->cwd);
    fputc('}', f);
    buf = memstream_done(f, &buf);
    if (err) {
        free(buf);
        return err;
    }
    if (!(*out = buf)) return cad_fail(e, CAD_ENOMEM, "out of memory");
    return CAD_OK;
}

/* command engine: a commented params file for the run dir, and the rendered launch recipe. */
static int finalize_command_run(const plan_ctx *pc, cad_plan_run *r, run_priv *pv, cad_err *e) {
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    if (!f) return cad_fail(e, CAD_ENOMEM, "out of memory");
    fprintf(f, "# params of command-engine run %s (sweep %s); the launch recipe is in run.json\n",
            r->run_id, pc->s->name);
    for (int i = 0; i < pv->n_params; i++) fprintf(f, "%s: %s\n", pv->params[i].key, pv->params[i].json);
    if (!(r->config_yaml = memstream_done(f, &buf))) return cad_fail(e, CAD_ENOMEM, "out of memory");
    return render_launch_json(pc, r, pv, &r->launch_json, e);
}

/* run_dir, config_yaml, launch_json from the (final) run id. */
static int finalize_run(const plan_ctx *pc, cad_plan_run *r, cad_err *e) {
    run_priv *pv = r->priv_;
    free(r->run_dir);
    free(r->config_yaml);
    free(r->launch_json);
    r->config_yaml = r->launch_json = NULL;
    size_t len = strlen(pc->runs_dir) + strlen(r->run_id) + 2;
    r->run_dir = malloc(len);
    if (!r->run_dir) return cad_fail(e, CAD_ENOMEM, "out of memory");
    snprintf(r->run_dir, len, "%s/%s", pc->runs_dir, r->run_id);
    return pv->has_cfg ? finalize_caddie_run(pc, r, pv, e) : finalize_command_run(pc, r, pv, e);
}

/* ---- expansion ----------------------------------------------------------------------------- */

#define ENGINE_VERSION_MAX 96 /* "command sha256:" and 12 hex digits, with room to spare */

static char *command_engine_version(const cad_sweep_spec *s, const char *workdir) {
    cad_sha256 h;
    cad_sha256_init(&h);
    int files = 0;
    for (int i = 0; i < s->n_argv; i++) {
        const char *a = s->argv[i].node->value;
        if (!a || strchr(a, '{')) continue;
        char path[PATH_MAX];
        if (a[0] == '/') snprintf(path, sizeof path, "%s", a);
        else snprintf(path, sizeof path, "%s/%s", workdir, a);
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        char hex[65];
        if (cad_sha256_file_hex(path, hex, NULL, NULL) != CAD_OK) continue;
        cad_sha256_update(&h, hex, 64);
        files++;
    }
    char *out = malloc(ENGINE_VERSION_MAX);
    if (!out) return NULL;
    if (!files) {
        snprintf(out, ENGINE_VERSION_MAX, "command");
        return out;
    }
    uint8_t d[32];
    cad_sha256_final(&h, d);
    snprintf(out, ENGINE_VERSION_MAX, "command sha256:");
    for (int i = 0; i < 6; i++) snprintf(out + strlen(out), 3, "%02x", d[i]);
    return out;
}

static char *templates_json(const cad_sweep_spec *s) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fputs("{\"argv\":[", f);
    for (int i = 0; i < s->n_argv; i++) {
        if (i) fputc(',', f);
        cad_json_write_string(f, s->argv[i].node->value);
    }
    fputs("],\"env\":{", f);
    for (int i = 0; i < s->n_env; i++) {
        if (i) fputc(',', f);
        cad_json_write_string(f, s->env[i].name);
        fputc(':', f);
        cad_json_write_string(f, s->env[i].node->value);
    }
    fputs("},\"workdir\":", f);
    cad_json_write_string(f, s->workdir ? s->workdir : "");
    fputc('}', f);
    return memstream_done(f, &buf);
}

static void priv_free(run_priv *pv) {
    if (!pv) return;
    if (pv->has_cfg) cad_config_free(&pv->cfg);
    kv_free(pv->params, pv->n_params);
    free(pv);
}

void cad_plan_free(cad_plan *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        cad_plan_run *r = &p->runs[i];
        free(r->name);
        free(r->config_json);
        free(r->run_dir);
        free(r->launch_json);
        free(r->config_yaml);
        priv_free(r->priv_);
    }
    free(p->runs);
    for (int i = 0; i < p->n_prep; i++) {
        free(p->prep[i].name);
        free(p->prep[i].run_dir);
        free(p->prep[i].config_json);
        free(p->prep[i].config_yaml);
        free(p->prep[i].launch_json);
    }
    free(p->prep);
    free(p->runs_dir);
    free(p->cwd_);
    memset(p, 0, sizeof *p);
}

/* What rendering a run needs besides the run itself; rebuilt from the spec when needed. */
static int plan_ctx_init(plan_ctx *pc, const cad_sweep_spec *s, const char *runs_dir, const char *cwd,
                         cad_err *e) {
    memset(pc, 0, sizeof *pc);
    pc->s = s;
    pc->runs_dir = abs_path(runs_dir && *runs_dir ? runs_dir : "runs");
    if (cwd && *cwd && (!s->workdir || s->workdir[0] != '/')) {
        size_t len = strlen(cwd) + (s->workdir ? strlen(s->workdir) : 0) + 2;
        if ((pc->cwd = malloc(len))) snprintf(pc->cwd, len, "%s%s%s", cwd, s->workdir ? "/" : "", s->workdir ? s->workdir : "");
    } else
        pc->cwd = abs_path(s->workdir ? s->workdir : ".");
    if (!pc->runs_dir || !pc->cwd) return cad_fail(e, CAD_EIO, "cannot resolve the current directory");
    size_t l = strlen(pc->runs_dir);
    while (l > 1 && pc->runs_dir[l - 1] == '/') pc->runs_dir[--l] = 0;
    if (s->engine == CAD_ENGINE_COMMAND && !(pc->templates = templates_json(s)))
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    return CAD_OK;
}

static void plan_ctx_free(plan_ctx *pc) {
    free(pc->runs_dir);
    free(pc->cwd);
    free(pc->templates);
}

static void append_name(char **name, const char *part) {
    size_t a = *name ? strlen(*name) : 0, b = strlen(part);
    char *n = realloc(*name, a + b + 2);
    if (!n) return;
    if (a) n[a++] = ' ';
    memcpy(n + a, part, b + 1);
    *name = n;
}

/* Call fn on every assignment of the run at idx, in the order where a later one wins: the
 * sweep's set, then each axis' point. Stops at the first nonzero return. */
typedef int (*assign_fn)(void *ctx, const cad_sweep_assign *as, cad_err *e);

static int for_each_assign(const cad_sweep_spec *s, const int *idx, assign_fn fn, void *ctx,
                           cad_err *e) {
    int rc = CAD_OK;
    for (int k = 0; k < s->n_set && !rc; k++) rc = fn(ctx, &s->set[k], e);
    for (int a = 0; a < s->n_axes && !rc; a++) {
        const cad_sweep_point *pt = &s->axes[a].points[idx[a]];
        for (int k = 0; k < pt->n && !rc; k++) rc = fn(ctx, &pt->a[k], e);
    }
    return rc;
}

typedef struct assign_ctx {
    const char *spec_path;
    run_priv *pv;
} assign_ctx;

/* caddie engine: into the run's config, each value's origin "spec:line:col" for errors */
static int assign_config(void *ctx, const cad_sweep_assign *as, cad_err *e) {
    const assign_ctx *c = ctx;
    char *t = cad_sweep_value_text(as->value);
    char origin[96];
    snprintf(origin, sizeof origin, "%s:%d:%d", c->spec_path, as->value->line, as->value->col);
    int rc = t ? cad_config_set(&c->pv->cfg, as->key, t, origin, e) : CAD_ENOMEM;
    free(t);
    return rc;
}

/* command engine: into the run's free-form params (the caller reports a failure) */
static int assign_param(void *ctx, const cad_sweep_assign *as, cad_err *e) {
    (void)e;
    const assign_ctx *c = ctx;
    char *t = cad_sweep_value_text(as->value);
    int rc = t ? set_kv(&c->pv->params, &c->pv->n_params, as->key, t, as->value) : CAD_ENOMEM;
    free(t);
    return rc;
}

/* prepare: the entry whose vocab is the run's vocab_size gives its tokenizer and shards. */
static int assign_prepared(const cad_sweep_spec *s, run_priv *pv, cad_plan_run *r, cad_err *e) {
    const cad_sweep_prepare *pr = &s->prepare;
    for (int i = 0; i < pr->n_tok; i++) {
        if (pr->tok[i].vocab != pv->cfg.vocab_size) continue;
        char path[PATH_MAX + 80];
        snprintf(path, sizeof path, "%s/%s", pr->tok[i].dir, CAD_PREPCACHE_TOKENIZER);
        int rc = cad_config_set(&pv->cfg, "tokenizer_path", path, "prepare", e);
        snprintf(path, sizeof path, "%s/%s", pr->tok[i].dir, CAD_PREPCACHE_DATA);
        if (!rc) rc = cad_config_set(&pv->cfg, "data_path", path, "prepare", e);
        r->prep = i;
        return rc;
    }
    char have[256];
    size_t o = 0;
    have[0] = 0;
    for (int i = 0; i < pr->n_tok && o < sizeof have; i++)
        o += (size_t)snprintf(have + o, sizeof have - o, "%s%d", i ? ", " : "", pr->tok[i].vocab);
    return cad_fail(e, CAD_ECONFIG,
                    "%s:%d:%d: run '%s': vocab_size %ld has no tokenizer in 'prepare' (it lists %s): add "
                    "{vocab: %ld} to prepare.tokenizers",
                    s->path, pr->node->line, pr->node->col, r->name, pv->cfg.vocab_size, have, pv->cfg.vocab_size);
}

/* The readable name of a run: the varied values only ("qk_gain_init=2,seed=1337"); the sweep's
 * name when nothing varies. */
static void name_run(const cad_sweep_spec *s, const int *idx, long seed, int has_seed, cad_plan_run *r) {
    for (int a = 0; a < s->n_axes; a++) {
        const cad_sweep_axis *ax = &s->axes[a];
        const cad_sweep_point *pt = &ax->points[idx[a]];
        if (pt->label) { /* a greedy round's point: its candidate's name, "candidate=wd" */
            char part[512];
            snprintf(part, sizeof part, "%s=%s", ax->label, pt->label);
            append_name(&r->name, part);
        } else if (ax->is_bundle && ax->is_ragged) { /* what this bundle sets: "technique=muon_wd:0.04" */
            char part[512];
            size_t o = (size_t)snprintf(part, sizeof part, "%s=", ax->label);
            for (int k = 0; k < pt->n && o < sizeof part; k++) {
                char *t = cad_sweep_value_text(pt->a[k].value);
                o += (size_t)snprintf(part + o, sizeof part - o, "%s%s:%s", k ? "," : "", pt->a[k].key, t ? t : "");
                free(t);
            }
            append_name(&r->name, part);
        } else if (ax->is_bundle) {
            char *t = cad_sweep_value_text(pt->a[0].value);
            char part[512];
            snprintf(part, sizeof part, "%s=%s", ax->label, t ? t : "");
            free(t);
            append_name(&r->name, part);
        } else
            for (int k = 0; k < pt->n; k++) {
                char *t = cad_sweep_value_text(pt->a[k].value);
                char part[512];
                snprintf(part, sizeof part, "%s=%s", pt->a[k].key, t ? t : "");
                free(t);
                append_name(&r->name, part);
            }
    }
    if (has_seed) {
        char part[64];
        snprintf(part, sizeof part, "seed=%ld", seed);
        append_name(&r->name, part);
    }
    if (!r->name) r->name = strdup(s->name);
}

/* A caddie-engine run: the full config (base file, then set, axes and seed in order, then
 * what prepare: supplies), validated; its JSON, and the identity and group hashes over the
 * keys that take effect. *group_json is the caller's to free, on failure too. */
static int resolve_caddie_run(const plan_ctx *pc, const cad_plan *p, const int *idx, long seed,
                              int has_seed, cad_plan_run *r, run_priv *pv, char **group_json, cad_err *e) {
    const cad_sweep_spec *s = pc->s;
    int rc;
    if ((rc = cad_config_init(&pv->cfg, e))) return rc;
    pv->has_cfg = 1;
    if (s->base && (rc = cad_config_load_yaml(&pv->cfg, s->base, e))) return rc;
    assign_ctx ac = {s->path, pv};
    rc = for_each_assign(s, idx, assign_config, &ac, e);
    if (!rc && has_seed) {
        char t[32];
        snprintf(t, sizeof t, "%ld", seed);
        rc = cad_config_set(&pv->cfg, "seed", t, "seeds", e);
    }
    if (!rc && s->prepare.n_tok) rc = assign_prepared(s, pv, r, e);
    if (!rc && (rc = cad_config_validate(&pv->cfg, e)))
        cad_wrap(e, "%s: run '%s'", s->path, r->name);
    if (rc) return rc;
    r->has_seed = 1;
    r->seed = pv->cfg.seed;
    r->config_json = cad_plan_config_json(&pv->cfg, 0);
    char *id_json = cad_plan_config_identity_json(&pv->cfg, 0);
    *group_json = cad_plan_config_identity_json(&pv->cfg, 1);
    if (!r->config_json || !id_json || !*group_json) {
        free(id_json);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    char extra[32];
    snprintf(extra, sizeof extra, "devices=%d", s->devices);
    cad_plan_hash(p->engine_version, id_json, extra, r->config_hash);
    cad_plan_hash(p->engine_version, *group_json, extra, r->group_hash);
    free(id_json);
    return CAD_OK;
}

/* A command-engine run: the parameters (base file, then set, axes and seed in order) sorted by
 * key, their JSON, and the hashes over them plus the command templates. *group_json is the
 * caller's to free, on failure too. */
static int resolve_command_run(const plan_ctx *pc, const cad_plan *p, const int *idx, long seed,
                               int has_seed, cad_plan_run *r, run_priv *pv, char **group_json, cad_err *e) {
    const cad_sweep_spec *s = pc->s;
    int rc = CAD_OK;
    const yt_node *br = s->base_doc ? s->base_doc->root : NULL;
    for (size_t i = 0; br && i < br->n && !rc; i++) {
        char *t = cad_sweep_value_text(br->vals[i]);
        rc = t ? set_kv(&pv->params, &pv->n_params, br->keys[i]->value, t, br->vals[i]) : CAD_ENOMEM;
        free(t);
    }
    assign_ctx ac = {s->path, pv};
    if (!rc) rc = for_each_assign(s, idx, assign_param, &ac, e);
    if (!rc && has_seed) {
        char t[32];
        snprintf(t, sizeof t, "%ld", seed);
        rc = set_kv(&pv->params, &pv->n_params, "seed", t, NULL);
        /* a seed is a number: json_of_value(NULL, ..) quoted it; store it as one */
        for (int i = 0; !rc && i < pv->n_params; i++)
            if (strcmp(pv->params[i].key, "seed") == 0) {
                free(pv->params[i].json);
                pv->params[i].json = strdup(t);
            }
    }
    if (rc) return cad_fail(e, CAD_ENOMEM, "out of memory");
    /* a sweep with nothing varied has no params (NULL): qsort(NULL, 0) is undefined */
    if (pv->n_params > 1) qsort(pv->params, (size_t)pv->n_params, sizeof *pv->params, kv_cmp);
    for (int i = 0; i < pv->n_params; i++)
        if (strcmp(pv->params[i].key, "seed") == 0) {
            char *end;
            long sd = strtol(pv->params[i].text, &end, 10);
            if (!*end && *pv->params[i].text) r->has_seed = 1, r->seed = sd;
        }
    r->config_json = kv_json(pv->params, pv->n_params, NULL);
    *group_json = kv_json(pv->params, pv->n_params, "seed");
    if (!r->config_json || !*group_json) {
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    size_t elen = strlen(pc->templates) + 32;
    char *extra = malloc(elen);
    if (!extra) {
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    snprintf(extra, elen, "%s\ndevices=%d", pc->templates, s->devices);
    cad_plan_hash(p->engine_version, r->config_json, extra, r->config_hash);
    cad_plan_hash(p->engine_version, *group_json, extra, r->group_hash);
    free(extra);
    return CAD_OK;
}

static int resolve_run(const plan_ctx *pc, const cad_plan *p, const int *idx, long seed,
                       int has_seed, cad_plan_run *r, cad_err *e) {
    const cad_sweep_spec *s = pc->s;
    run_priv *pv = calloc(1, sizeof *pv);
    if (!pv) return cad_fail(e, CAD_ENOMEM, "out of memory");
    r->priv_ = pv;
    r->prep = -1;
    name_run(s, idx, seed, has_seed, r);
    char *group_json = NULL;
    int rc = s->engine == CAD_ENGINE_CADDIE
                 ? resolve_caddie_run(pc, p, idx, seed, has_seed, r, pv, &group_json, e)
                 : resolve_command_run(pc, p, idx, seed, has_seed, r, pv, &group_json, e);
    free(group_json);
    if (rc) return rc;
    snprintf(r->run_id, sizeof r->run_id, "%s-%.8s", s->name, r->config_hash);
    return finalize_run(pc, r, e);
}

/* The queue items of the prepare section, one per tokenizer. */
static int expand_prep(const plan_ctx *pc, cad_plan *p, cad_err *e) {
    const cad_sweep_prepare *pr = &pc->s->prepare;
    if (!pr->n_tok) return CAD_OK;
    if (!(p->prep = calloc((size_t)pr->n_tok, sizeof *p->prep))) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (int i = 0; i < pr->n_tok; i++) {
        const cad_sweep_prep_tok *t = &pr->tok[i];
        cad_plan_prep *q = &p->prep[p->n_prep++];
        q->tok = i;
        q->action = CAD_PLAN_QUEUE;
        snprintf(q->run_id, sizeof q->run_id, "prep-%.12s", t->key);
        for (int j = 0; j < p->n; j++) q->used += p->runs[j].prep == i;
        char name[64];
        snprintf(name, sizeof name, "prepare vocab=%d", t->vocab);
        size_t len = strlen(pc->runs_dir) + strlen(q->run_id) + 2;
        q->name = strdup(name);
        q->run_dir = malloc(len);
        if (!q->name || !q->run_dir) return cad_fail(e, CAD_ENOMEM, "out of memory");
        snprintf(q->run_dir, len, "%s/%s", pc->runs_dir, q->run_id);
        char *buf = NULL;
        size_t blen = 0;
        FILE *f = open_memstream(&buf, &blen);
        if (!f) return cad_fail(e, CAD_ENOMEM, "out of memory");
        fputs("{\"corpus\":", f);
        cad_json_write_string(f, pr->corpus);
        fprintf(f, ",\"corpus_sha256\":\"%s\",\"dir\":", pr->corpus_sha256);
        cad_json_write_string(f, t->dir);
        fprintf(f, ",\"shard_tokens\":%ld,\"val_docs\":%ld,\"vocab\":%d}", pr->shard_tokens, pr->val_docs,
                t->vocab);
        if (!(q->config_json = memstream_done(f, &buf))) return cad_fail(e, CAD_ENOMEM, "out of memory");
        if (!(f = open_memstream(&buf, &blen))) return cad_fail(e, CAD_ENOMEM, "out of memory");
        fprintf(f, "# prepare job %s (a tokenizer and shards for the runs of sweep %s; `caddie data build`)\n",
                q->run_id, pc->s->name);
        fprintf(f, "corpus: %s\ncorpus_sha256: %s\nvocab: %d\nval_docs: %ld\nshard_tokens: %ld\nout: %s\n",
                pr->corpus, pr->corpus_sha256, t->vocab, pr->val_docs, pr->shard_tokens, t->dir);
        if (!(q->config_yaml = memstream_done(f, &buf))) return cad_fail(e, CAD_ENOMEM, "out of memory");
        if (!(f = open_memstream(&buf, &blen))) return cad_fail(e, CAD_ENOMEM, "out of memory");
        char num[3][32];
        snprintf(num[0], sizeof num[0], "%d", t->vocab);
        snprintf(num[1], sizeof num[1], "%ld", pr->val_docs);
        snprintf(num[2], sizeof num[2], "%ld", pr->shard_tokens);
        const char *argv[] = {"caddie", "data", "build", "--input", pr->corpus, "--vocab", num[0],
                              "--val-docs", num[1], "--shard-tokens", num[2], "--corpus-sha256",
                              pr->corpus_sha256, "--out", t->dir, NULL};
        fputs("{\"argv\":[", f);
        for (int k = 0; argv[k]; k++) {
            if (k) fputc(',', f);
            cad_json_write_string(f, argv[k]);
        }
        fputs("],\"env\":{},\"cwd\":", f);
        cad_json_write_string(f, pc->cwd);
        fputc('}', f);
        if (!(q->launch_json = memstream_done(f, &buf))) return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    return CAD_OK;
}

int cad_plan_expand(const cad_sweep_spec *s, const cad_plan_opts *o, cad_plan *out, cad_err *e) {
    memset(out, 0, sizeof *out);
    plan_ctx pc;
    int rc = plan_ctx_init(&pc, s, o ? o->runs_dir : NULL, o ? o->cwd : NULL, e);
    if (rc) {
        plan_ctx_free(&pc);
        return rc;
    }
    out->runs_dir = strdup(pc.runs_dir);
    if (o && o->cwd && !(out->cwd_ = strdup(o->cwd))) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    if (s->engine == CAD_ENGINE_CADDIE)
        snprintf(out->engine_version, sizeof out->engine_version, "%s", cad_plan_caddie_engine_version());
    else {
        char *ev = command_engine_version(s, pc.cwd);
        snprintf(out->engine_version, sizeof out->engine_version, "%s", ev ? ev : "command");
        free(ev);
    }
    long total = s->n_seeds ? s->n_seeds : 1;
    for (int a = 0; a < s->n_axes; a++) {
        total *= s->axes[a].n_points;
        if (total > 100000) {
            plan_ctx_free(&pc);
            return cad_fail(e, CAD_ECONFIG, "%s: the sweep expands to more than 100000 runs", s->path);
        }
    }
    out->runs = calloc((size_t)total, sizeof *out->runs);
    int *idx = calloc((size_t)s->n_axes + 1, sizeof *idx);
    if (!out->runs || !idx) {
        free(idx);
        plan_ctx_free(&pc);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    long per_seed = total / (s->n_seeds ? s->n_seeds : 1);
    for (long i = 0; i < total && !rc; i++) {
        long seed_i = i / per_seed, rest = i % per_seed;
        for (int a = s->n_axes - 1; a >= 0; a--) {
            idx[a] = (int)(rest % s->axes[a].n_points);
            rest /= s->axes[a].n_points;
        }
        cad_plan_run *r = &out->runs[out->n++];
        rc = resolve_run(&pc, out, idx, s->n_seeds ? s->seeds[seed_i] : 0, s->n_seeds > 0, r, e);
        if (rc) break;
        r->action = CAD_PLAN_QUEUE;
        for (int j = 0; j < out->n - 1; j++)
            if (strcmp(out->runs[j].config_hash, r->config_hash) == 0) {
                r->action = CAD_PLAN_SKIP_DUP;
                snprintf(r->other_run_id, sizeof r->other_run_id, "%s", out->runs[j].run_id);
                break;
            }
    }
    free(idx);
    if (!rc) rc = expand_prep(&pc, out, e);
    plan_ctx_free(&pc);
    if (rc) {
        cad_plan_free(out);
        return rc;
    }
    for (int i = 0; i < out->n; i++) out->n_action[out->runs[i].action]++;
    return CAD_OK;
}

/* ---- renaming a run ---------------------------------------------------------------------- */

int cad_plan_rename_run(const cad_sweep_spec *s, cad_plan *p, int i, const char *run_id, cad_err *e) {
    if (i < 0 || i >= p->n) return cad_fail(e, CAD_ERR, "cad_plan_rename_run: run %d of %d", i, p->n);
    cad_plan_run *r = &p->runs[i];
    if (strlen(run_id) >= sizeof r->run_id)
        return cad_fail(e, CAD_ECONFIG, "run id '%.40s...' is longer than %zu characters", run_id,
                        sizeof r->run_id - 1);
    plan_ctx pc;
    /* the same cwd expand rendered into every run's launch recipe */
    int rc = plan_ctx_init(&pc, s, p->runs_dir, p->cwd_, e);
    if (!rc) {
        snprintf(r->run_id, sizeof r->run_id, "%s", run_id);
        /* run_dir, config.yaml and the launch recipe carry the id: render them again */
        rc = finalize_run(&pc, r, e);
    }
    plan_ctx_free(&pc);
    return rc;
}

void cad_plan_count_actions(cad_plan *p) {
    memset(p->n_action, 0, sizeof p->n_action);
    for (int i = 0; i < p->n; i++) p->n_action[p->runs[i].action]++;
}

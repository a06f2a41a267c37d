/*
 * config.c — the key table, value parsing, YAML < env < --set resolution and validation of
 * the run configuration (see config.h for the contract).
 * Not here: meaning of the keys beyond range/combination checks.
 */
#include "engine/config.h"
#include "engine/export.h"
#include "engine/model.h"
#include "engine/mamba.h"
#include "engine/optim.h"
#include "engine/quant_ext.h"
#include "engine/ttt_lora.h"

#include "engine/yamltree.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const cad_config_key config_keys[] = {
#define CAD_CONFIG_ROW_(type, name, def, doc) \
    {#name, CAD_KEY_##type, def, doc, offsetof(cad_config, name)},
    CAD_CONFIG_KEYS(CAD_CONFIG_ROW_)
#undef CAD_CONFIG_ROW_
};
#define N_KEYS ((int)(sizeof config_keys / sizeof config_keys[0]))
_Static_assert(sizeof config_keys / sizeof config_keys[0] <= CAD_CONFIG_MAX_KEYS,
               "raise CAD_CONFIG_MAX_KEYS in config.h");

int cad_config_key_count(void) { return N_KEYS; }

const cad_config_key *cad_config_key_at(int i) {
    return i >= 0 && i < N_KEYS ? &config_keys[i] : NULL;
}

const cad_config_key *cad_config_key_find(const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(config_keys[i].name, name) == 0) return &config_keys[i];
    return NULL;
}

int cad_edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    int *row = malloc((nb + 1) * sizeof *row);
    if (!row) return (int)(na > nb ? na : nb);
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            int best = diag + cost;
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    int d = row[nb];
    free(row);
    return d;
}

const cad_config_key *cad_config_key_closest_key(const char *name) {
    int best = -1, best_d = 1 << 30;
    for (int i = 0; i < N_KEYS; i++) {
        int d = cad_edit_distance(name, config_keys[i].name);
        if (d < best_d) best_d = d, best = i;
    }
    return &config_keys[best];
}

const char *cad_config_key_closest(const char *name) {
    return cad_config_key_closest_key(name)->name;
}

const char *cad_config_type_name(cad_key_type t) {
    switch (t) {
    case CAD_KEY_INT: return "int";
    case CAD_KEY_FLOAT: return "float";
    case CAD_KEY_BOOL: return "bool";
    case CAD_KEY_STR: return "string";
    case CAD_KEY_LIST: return "list";
    }
    return "?";
}

static int key_index(const cad_config_key *k) { return (int)(k - config_keys); }

static void *field_ptr(cad_config *c, const cad_config_key *k) { return (char *)c + k->offset; }
static const void *field_cptr(const cad_config *c, const cad_config_key *k) {
    return (const char *)c + k->offset;
}

/* Longest number text accepted (after removing "_"): longer is refused, never cut — a cut
 * "0000...(127 zeros)5xyz" read as 0 and hid both the digit and the junk. */
#define NUMBER_MAX_CHARS 128

/* Numbers may carry Python-style digit separators ("524_288"). -1 if out (cap bytes with
 * the NUL) cannot hold the text. */
static int strip_underscores(const char *in, char *out, size_t cap) {
    size_t j = 0;
    for (size_t i = 0; in[i]; i++) {
        if (in[i] == '_') continue;
        if (j + 1 >= cap) return -1;
        out[j++] = in[i];
    }
    out[j] = 0;
    return 0;
}

/* The engine hands every integer key to code that takes an int (model shapes, step and token
 * counts, thread counts), so a value must fit one: model_dim=4294967424 would otherwise
 * train a 128-wide model. The seed alone stays a full long (it seeds a 64-bit generator). */
static int int_key_fits(const cad_config_key *k, long v) {
    if (strcmp(k->name, "seed") == 0) return 1;
    return v >= INT_MIN && v <= INT_MAX;
}

static int parse_value(const cad_config_key *k, const char *text, void *dst, cad_err *e) {
    char buf[NUMBER_MAX_CHARS + 1];
    switch (k->type) {
    case CAD_KEY_INT: {
        if (strip_underscores(text, buf, sizeof buf))
            return cad_fail(e, CAD_ECONFIG, "key '%s': integer expected, got %zu characters", k->name,
                            strlen(text));
        char *end;
        errno = 0;
        long v = strtol(buf, &end, 10);
        if (!buf[0] || *end || (errno && errno != ERANGE))
            return cad_fail(e, CAD_ECONFIG, "key '%s': integer expected, got '%s'", k->name, text);
        if (errno == ERANGE || !int_key_fits(k, v))
            return cad_fail(e, CAD_ECONFIG, "key '%s': integer %s out of range (%d..%d)", k->name, text,
                            INT_MIN, INT_MAX);
        *(long *)dst = v;
        return CAD_OK;
    }
    case CAD_KEY_FLOAT: {
        if (strip_underscores(text, buf, sizeof buf))
            return cad_fail(e, CAD_ECONFIG, "key '%s': number expected, got %zu characters", k->name,
                            strlen(text));
        char *end;
        errno = 0;
        double v = strtod(buf, &end);
        if (!buf[0] || *end || errno || !isfinite(v))
            return cad_fail(e, CAD_ECONFIG, "key '%s': finite number expected, got '%s'", k->name, text);
        *(double *)dst = v;
        return CAD_OK;
    }
    case CAD_KEY_BOOL: {
        static const char *const yes[] = {"1", "true", "True", "TRUE", "yes", "on"};
        static const char *const no[] = {"0", "false", "False", "FALSE", "no", "off"};
        for (size_t i = 0; i < 6; i++) {
            if (strcmp(text, yes[i]) == 0) { *(int *)dst = 1; return CAD_OK; }
            if (strcmp(text, no[i]) == 0) { *(int *)dst = 0; return CAD_OK; }
        }
        return cad_fail(e, CAD_ECONFIG, "key '%s': boolean expected (1/0/true/false), got '%s'",
                        k->name, text);
    }
    case CAD_KEY_STR:
    case CAD_KEY_LIST: {
        char *s = strdup(text);
        if (!s) return cad_fail(e, CAD_ENOMEM, "key '%s': out of memory", k->name);
        free(*(char **)dst);
        *(char **)dst = s;
        return CAD_OK;
    }
    }
    return cad_fail(e, CAD_ERR, "key '%s': bad type", k->name);
}

int cad_config_init(cad_config *c, cad_err *e) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_KEYS; i++) {
        int rc = parse_value(&config_keys[i], config_keys[i].def, field_ptr(c, &config_keys[i]), e);
        if (rc) return rc;
        snprintf(c->origin[i], sizeof c->origin[i], "default");
    }
    return CAD_OK;
}

void cad_config_free(cad_config *c) {
    for (int i = 0; i < N_KEYS; i++)
        if (config_keys[i].type == CAD_KEY_STR || config_keys[i].type == CAD_KEY_LIST) {
            char **p = field_ptr(c, &config_keys[i]);
            free(*p);
            *p = NULL;
        }
}

static int unknown_key(const char *key, const char *where, cad_err *e) {
    return cad_fail(e, CAD_ECONFIG, "%s%sunknown key '%s' (did you mean '%s'?)", where ? where : "",
                    where ? ": " : "", key, cad_config_key_closest(key));
}

int cad_config_set(cad_config *c, const char *key, const char *value, const char *origin,
                   cad_err *e) {
    const cad_config_key *k = cad_config_key_find(key);
    if (!k) return unknown_key(key, origin, e);
    int rc = parse_value(k, value, field_ptr(c, k), e);
    if (rc) return origin ? cad_wrap(e, "%s", origin) : rc;
    snprintf(c->origin[key_index(k)], sizeof c->origin[0], "%s", origin ? origin : "set");
    return CAD_OK;
}

int cad_config_set_assignment(cad_config *c, const char *assignment, cad_err *e) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return cad_fail(e, CAD_EUSAGE, "--set '%s': expected key=value", assignment);
    char key[128];
    size_t n = (size_t)(eq - assignment);
    if (n >= sizeof key) return cad_fail(e, CAD_EUSAGE, "--set '%s': key too long", assignment);
    memcpy(key, assignment, n);
    key[n] = 0;
    return cad_config_set(c, key, eq + 1, "--set", e);
}

/* A YAML map for a list key ({mlp: 5, attn: 6}, quant_bits_overrides) is stored as its
 * "name:value" entries joined with ",", the text form --set and the environment take. */
static int set_from_map(cad_config *c, const cad_config_key *k, const yt_doc *d, const yt_node *vn, const char *origin,
                        cad_err *e) {
    size_t len = 1;
    for (size_t j = 0; j < vn->n; j++) {
        if (vn->vals[j]->kind != YT_SCALAR)
            return yt_fail(e, CAD_ECONFIG, d, vn->vals[j], "key '%s': map values must be scalars (name: bits)", k->name);
        len += strlen(vn->keys[j]->value) + strlen(vn->vals[j]->value) + 2;
    }
    char *joined = calloc(len, 1);
    if (!joined) return cad_fail(e, CAD_ENOMEM, "out of memory");
    for (size_t j = 0; j < vn->n; j++) {
        if (j) strcat(joined, ",");
        strcat(joined, vn->keys[j]->value);
        strcat(joined, ":");
        strcat(joined, vn->vals[j]->value);
    }
    int rc = cad_config_set(c, k->name, joined, origin, e);
    free(joined);
    return rc;
}

int cad_config_load_yaml(cad_config *c, const char *path, cad_err *e) {
    yt_doc *d = NULL;
    int rc = yt_load_file(path, &d, e);
    if (rc) return rc;
    const yt_node *root = d->root;
    if (!root) goto done; /* an empty file changes nothing */
    if (root->kind != YT_MAP) {
        rc = yt_fail(e, CAD_ECONFIG, d, root, "a map of config keys expected");
        goto done;
    }
    for (size_t i = 0; i < root->n; i++) {
        const yt_node *kn = root->keys[i], *vn = root->vals[i];
        const cad_config_key *k = cad_config_key_find(kn->value);
        if (!k) {
            rc = yt_fail(e, CAD_ECONFIG, d, kn, "unknown key '%s' (did you mean '%s'?)", kn->value,
                         cad_config_key_closest(kn->value));
            goto done;
        }
        char origin[96];
        snprintf(origin, sizeof origin, "%s:%d:%d", d->path, vn->line, vn->col);
        if (vn->kind == YT_SEQ && k->type == CAD_KEY_LIST) {
            size_t len = 1;
            for (size_t j = 0; j < vn->n; j++) {
                if (vn->items[j]->kind != YT_SCALAR) {
                    rc = yt_fail(e, CAD_ECONFIG, d, vn->items[j], "key '%s': list of strings expected",
                                 k->name);
                    goto done;
                }
                len += strlen(vn->items[j]->value) + 1;
            }
            char *joined = calloc(len, 1);
            if (!joined) { rc = cad_fail(e, CAD_ENOMEM, "out of memory"); goto done; }
            for (size_t j = 0; j < vn->n; j++) {
                if (j) strcat(joined, ",");
                strcat(joined, vn->items[j]->value);
            }
            rc = cad_config_set(c, k->name, joined, origin, e);
            free(joined);
            if (rc) goto done;
            continue;
        }
        if (vn->kind == YT_MAP && k->type == CAD_KEY_LIST) {
            rc = set_from_map(c, k, d, vn, origin, e);
            if (rc) goto done;
            continue;
        }
        if (vn->kind != YT_SCALAR) {
            rc = yt_fail(e, CAD_ECONFIG, d, vn, "key '%s': a single %s value expected", k->name,
                         cad_config_type_name(k->type));
            goto done;
        }
        cad_err sub = {0};
        if (cad_config_set(c, k->name, vn->value, NULL, &sub)) {
            rc = yt_fail(e, CAD_ECONFIG, d, vn, "%s", sub.msg);
            goto done;
        }
        snprintf(c->origin[key_index(k)], sizeof c->origin[0], "%s", origin);
    }
done:
    yt_doc_free(d);
    return rc;
}

int cad_config_load_env(cad_config *c, cad_err *e) {
    for (int i = 0; i < N_KEYS; i++) {
        char env[64], origin[96];
        size_t j = 0;
        for (; config_keys[i].name[j] && j + 1 < sizeof env; j++)
            env[j] = (char)toupper((unsigned char)config_keys[i].name[j]);
        env[j] = 0;
        const char *v = getenv(env);
        if (!v) continue;
        snprintf(origin, sizeof origin, "environment variable %s", env);
        int rc = cad_config_set(c, config_keys[i].name, v, origin, e);
        if (rc) return rc;
    }
    return CAD_OK;
}

int cad_config_resolve(cad_config *c, const char *path, int n_sets, char *const *sets, cad_err *e) {
    int rc = cad_config_init(c, e);
    if (!rc && path) rc = cad_config_load_yaml(c, path, e);
    if (!rc) rc = cad_config_load_env(c, e);
    for (int i = 0; !rc && i < n_sets; i++) rc = cad_config_set_assignment(c, sets[i], e);
    if (!rc) rc = cad_config_validate(c, e);
    return rc;
}

int cad_config_grad_accum(const cad_config *c) {
    /* train_gpt.py: grad_accum_steps = 8 // world_size; caddie runs one rank (world 1). */
    return c->grad_accum_steps > 0 ? (int)c->grad_accum_steps : 8;
}

long cad_config_local_tokens(const cad_config *c) {
    return c->train_batch_tokens / cad_config_grad_accum(c);
}

#define CFG_REQUIRE(cond, ...) \
    do {                        \
        if (!(cond)) return cad_fail(e, CAD_ECONFIG, __VA_ARGS__); \
    } while (0)

/* The run id names the run directory (runs/<run_id>) and the files in it: "." or ".." would
 * put them in runs/ itself or the current directory, "/" anywhere else. Empty means "make a
 * uuid" (train.c), so only a non-empty id is checked. */
static int validate_run_id(const cad_config *c, cad_err *e) {
    const char *id = c->run_id;
    if (!id || !id[0]) return CAD_OK;
    CFG_REQUIRE(strcmp(id, ".") != 0 && strcmp(id, "..") != 0,
                "run_id='%s': not a directory name (it would write the run's files outside its own "
                "directory)", id);
    for (const char *p = id; *p; p++)
        CFG_REQUIRE(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.',
                    "run_id='%s': only letters, digits, '-', '_' and '.' are allowed (found byte 0x%02x)",
                    id, (unsigned char)*p);
    return CAD_OK;
}

/* the model's shape (train_gpt.py's GPT constructor asserts) */
static int validate_model(const cad_config *c, cad_err *e) {
    CFG_REQUIRE(c->vocab_size > 0 && c->vocab_size <= 65536,
                "vocab_size=%ld: expected 1..65536 (tokens are uint16)", c->vocab_size);
    CFG_REQUIRE(c->num_layers > 0, "num_layers=%ld: expected > 0", c->num_layers);
    CFG_REQUIRE(c->model_dim > 0, "model_dim=%ld: expected > 0", c->model_dim);
    CFG_REQUIRE(c->num_heads > 0, "num_heads=%ld: expected > 0", c->num_heads);
    CFG_REQUIRE(c->num_kv_heads > 0, "num_kv_heads=%ld: expected > 0", c->num_kv_heads);
    CFG_REQUIRE(c->model_dim % c->num_heads == 0,
                "model_dim=%ld must be divisible by num_heads=%ld", c->model_dim, c->num_heads);
    CFG_REQUIRE(c->num_heads % c->num_kv_heads == 0,
                "num_heads=%ld must be divisible by num_kv_heads=%ld", c->num_heads, c->num_kv_heads);
    CFG_REQUIRE((c->model_dim / c->num_heads) % 2 == 0,
                "head_dim = model_dim/num_heads = %ld must be even for RoPE",
                c->model_dim / c->num_heads);
    CFG_REQUIRE(c->mlp_mult > 0, "mlp_mult=%ld: expected > 0", c->mlp_mult);
    CFG_REQUIRE(c->logit_softcap > 0, "logit_softcap=%g: must be positive", c->logit_softcap);
    CFG_REQUIRE(c->rope_base > 0, "rope_base=%g: must be positive", c->rope_base);
    CFG_REQUIRE(c->tied_embed_init_std >= 0, "tied_embed_init_std=%g: must be >= 0",
                c->tied_embed_init_std);
    return CAD_OK;
}

/* steps, schedule and how a batch splits into micro-steps of whole sequences */
static int validate_batch(const cad_config *c, cad_err *e) {
    CFG_REQUIRE(c->iterations >= 0, "iterations=%ld: expected >= 0", c->iterations);
    CFG_REQUIRE(c->warmup_steps >= 0, "warmup_steps=%ld: expected >= 0", c->warmup_steps);
    CFG_REQUIRE(c->max_wallclock_seconds >= 0, "max_wallclock_seconds=%g: expected >= 0",
                c->max_wallclock_seconds);
    CFG_REQUIRE(c->train_seq_len > 0, "train_seq_len=%ld: expected > 0", c->train_seq_len);
    CFG_REQUIRE(c->grad_accum_steps >= 0 && c->grad_accum_steps <= 4096,
                "grad_accum_steps=%ld: expected 0 (= 8) or 1..4096", c->grad_accum_steps);
    int accum = cad_config_grad_accum(c);
    CFG_REQUIRE(c->train_batch_tokens > 0, "train_batch_tokens=%ld: expected > 0",
                c->train_batch_tokens);
    long local = c->train_batch_tokens / accum;
    CFG_REQUIRE(c->train_batch_tokens % accum == 0 && local % c->train_seq_len == 0 && local > 0,
                "train_batch_tokens=%ld / grad_accum_steps=%d = %ld tokens per micro-step must be a "
                "positive multiple of train_seq_len=%ld",
                c->train_batch_tokens, accum, local, c->train_seq_len);
    CFG_REQUIRE(c->eval_seq_len >= 0, "eval_seq_len=%ld: expected 0 (= train_seq_len) or > 0", c->eval_seq_len);
    long eval_T = cad_config_eval_seq_len(c);
    CFG_REQUIRE(c->val_batch_size / accum >= eval_T,
                "val_batch_size=%ld must provide at least one sequence per micro-batch: "
                "val_batch_size / grad_accum_steps(%d) >= %s(%ld)",
                c->val_batch_size, accum, c->eval_seq_len ? "eval_seq_len" : "train_seq_len", eval_T);
    CFG_REQUIRE(c->val_loss_every >= 0, "val_loss_every=%ld: expected >= 0", c->val_loss_every);
    CFG_REQUIRE(c->train_log_every >= 0, "train_log_every=%ld: expected >= 0", c->train_log_every);
    CFG_REQUIRE(c->warmdown_iters >= 0, "warmdown_iters=%ld: expected >= 0", c->warmdown_iters);
    return CAD_OK;
}

/* learning rates, Muon/Adam, clipping, weight decay, EMA */
static int validate_optimizer(const cad_config *c, cad_err *e) {
    CFG_REQUIRE(c->embed_lr >= 0 && c->head_lr >= 0 && c->tied_embed_lr >= 0 && c->matrix_lr >= 0 &&
                    c->scalar_lr >= 0,
                "learning rates must be >= 0");
    CFG_REQUIRE(c->muon_backend_steps >= 0, "muon_backend_steps=%ld: expected >= 0",
                c->muon_backend_steps);
    CFG_REQUIRE(c->muon_momentum_warmup_steps >= 0, "muon_momentum_warmup_steps=%ld: expected >= 0",
                c->muon_momentum_warmup_steps);
    CFG_REQUIRE(c->beta1 >= 0 && c->beta1 < 1, "beta1=%g: expected in [0, 1)", c->beta1);
    CFG_REQUIRE(c->beta2 >= 0 && c->beta2 < 1, "beta2=%g: expected in [0, 1)", c->beta2);
    CFG_REQUIRE(c->adam_eps > 0, "adam_eps=%g: expected > 0", c->adam_eps);
    CFG_REQUIRE(c->grad_clip_norm >= 0, "grad_clip_norm=%g: expected >= 0", c->grad_clip_norm);
    CFG_REQUIRE(c->dp_bucket_mb >= 0 && isfinite(c->dp_bucket_mb), "dp_bucket_mb=%g: expected 0 (one all-reduce after the backward) or a size in MiB > 0",
                c->dp_bucket_mb);
    CFG_REQUIRE(c->muon_wd >= 0 && c->embed_wd >= 0 && c->scalar_wd >= 0,
                "muon_wd=%g embed_wd=%g scalar_wd=%g: weight decay must be >= 0", c->muon_wd, c->embed_wd,
                c->scalar_wd);
    CFG_REQUIRE(c->ema_decay >= 0 && c->ema_decay < 1, "ema_decay=%g: expected 0 (off) or in (0, 1)", c->ema_decay);
    CFG_REQUIRE(cad_lr_schedule_parse(c->lr_schedule) >= 0, "lr_schedule='%s': expected linear_warmdown or cosine",
                c->lr_schedule);
    CFG_REQUIRE(c->min_lr_frac >= 0 && c->min_lr_frac <= 1, "min_lr_frac=%g: expected 0 <= f <= 1", c->min_lr_frac);
    CFG_REQUIRE(cad_muon_ns_parse(c->muon_ns) >= 0, "muon_ns='%s': expected quintic or polar_express", c->muon_ns);
    CFG_REQUIRE(cad_muon_ns_parse(c->muon_ns) != CAD_NS_POLAR_EXPRESS || c->muon_backend_steps <= CAD_POLAR_EXPRESS_STEPS,
                "muon_ns=polar_express has %d coefficient tuples: muon_backend_steps=%ld must be at most %d",
                CAD_POLAR_EXPRESS_STEPS, c->muon_backend_steps, CAD_POLAR_EXPRESS_STEPS);
    CFG_REQUIRE(c->ema_start_frac >= 0 && c->ema_start_frac < 1, "ema_start_frac=%g: expected 0 <= f < 1",
                c->ema_start_frac);
    return CAD_OK;
}

/* the validation token cap */
static int validate_eval_budget(const cad_config *c, cad_err *e) {
    CFG_REQUIRE(c->val_max_tokens >= 0, "val_max_tokens=%ld: expected >= 0 (0 = whole split)",
                c->val_max_tokens);
    CFG_REQUIRE(c->val_max_tokens == 0 || c->val_max_tokens >= cad_config_eval_seq_len(c),
                "val_max_tokens=%ld must be 0 or at least the eval sequence length %ld", c->val_max_tokens,
                cad_config_eval_seq_len(c));
    return CAD_OK;
}

/* the techniques: recurrence, TTT, parallel residual, XSA, leaky relu, quantization, sliding
 * window eval */
static int validate_techniques(const cad_config *c, cad_err *e) {
    int rf, rl;
    CFG_REQUIRE(cad_config_recur_span(c, &rf, &rl) == 0, "recur_layers='%s': expected 'a-b' or 'a' (block numbers)",
                c->recur_layers);
    CFG_REQUIRE(c->recur_loops >= 1 && c->recur_loops <= 16, "recur_loops=%ld: expected 1..16", c->recur_loops);
    CFG_REQUIRE(c->recur_start_frac >= 0 && c->recur_start_frac < 1, "recur_start_frac=%g: expected 0 <= f < 1",
                c->recur_start_frac);
    CFG_REQUIRE(c->recur_loops == 1 || (rl >= rf && rf >= 0 && rl < c->num_layers),
                "recur_loops=%ld needs recur_layers within blocks 0..%ld, got '%s'", c->recur_loops,
                c->num_layers - 1, c->recur_layers);
    long sl[CAD_SEQ_SCHEDULE_MAX];
    double sf[CAD_SEQ_SCHEDULE_MAX];
    int ns = cad_config_seq_schedule(c, sl, sf, CAD_SEQ_SCHEDULE_MAX);
    CFG_REQUIRE(ns >= 0,
                "seq_len_schedule='%s': expected up to %d entries T@frac (T > 0, fractions rising from 0 and below 1), "
                "e.g. '128@0,256@0.5'", c->seq_len_schedule, CAD_SEQ_SCHEDULE_MAX);
    for (int i = 0; i < ns; i++)
        CFG_REQUIRE(cad_config_local_tokens(c) % sl[i] == 0,
                    "seq_len_schedule entry %ld@%g: expected a length dividing the %ld tokens of a micro-step "
                    "(train_batch_tokens / grad_accum_steps)", sl[i], sf[i], cad_config_local_tokens(c));
    CFG_REQUIRE(!strcmp(c->curriculum, "none") || !strcmp(c->curriculum, "length"),
                "curriculum='%s': expected none or length", c->curriculum);
    CFG_REQUIRE(c->curriculum_window >= 1, "curriculum_window=%ld: expected >= 1 token", c->curriculum_window);
    CFG_REQUIRE(cad_config_attn_gate(c) >= 0, "attn_gate='%s': expected none, sparse or full", c->attn_gate);
    CFG_REQUIRE(c->eval_recur_loops >= 0 && c->eval_recur_loops <= 16,
                "eval_recur_loops=%ld: expected 0 (= recur_loops) or 1..16", c->eval_recur_loops);
    CFG_REQUIRE(c->eval_recur_loops <= 1 || (rl >= rf && rf >= 0 && rl < c->num_layers),
                "eval_recur_loops=%ld needs recur_layers within blocks 0..%ld, got '%s'", c->eval_recur_loops,
                c->num_layers - 1, c->recur_layers);
    CFG_REQUIRE(c->ttt_lr >= 0 && c->ttt_momentum >= 0 && c->ttt_momentum < 1 && c->ttt_grad_clip >= 0,
                "ttt_lr=%g ttt_momentum=%g ttt_grad_clip=%g: expected lr >= 0, 0 <= momentum < 1, clip >= 0", c->ttt_lr,
                c->ttt_momentum, c->ttt_grad_clip);
    CFG_REQUIRE(c->ttt_epochs >= 0 && c->ttt_batch_seqs >= 1 && c->ttt_chunk_tokens >= cad_config_eval_seq_len(c),
                "ttt_epochs=%ld ttt_batch_seqs=%ld ttt_chunk_tokens=%ld: expected >= 0, >= 1, >= the eval sequence length (%ld)",
                c->ttt_epochs, c->ttt_batch_seqs, c->ttt_chunk_tokens, cad_config_eval_seq_len(c));
    CFG_REQUIRE(!strcmp(c->ttt_mode, "sgd") || !strcmp(c->ttt_mode, "lora"), "ttt_mode='%s': expected sgd or lora",
                c->ttt_mode);
    CFG_REQUIRE(c->ttt_lora_rank >= 1 && c->ttt_lora_rank <= 4096, "ttt_lora_rank=%ld: expected 1..4096", c->ttt_lora_rank);
    int lora = !strcmp(c->ttt_mode, "lora") && c->ttt_lr > 0; /* its chunk bound depends on the window */
    CFG_REQUIRE(!lora || (c->ttt_lora_chunk >= 1 && c->ttt_lora_chunk <= cad_config_eval_seq_len(c)),
                "ttt_lora_chunk=%ld: expected 1..the eval sequence length (%ld)", c->ttt_lora_chunk,
                cad_config_eval_seq_len(c));
    unsigned lora_targets;
    int rc = cad_lora_targets_parse(c->ttt_lora_targets, "ttt_lora_targets", &lora_targets, e);
    if (rc) return rc;
    CFG_REQUIRE(!(lora_targets & 1u << CAD_LORA_FC) || c->mlp_experts == 0 || !lora,
                "ttt_lora_targets='%s': mlp needs a dense MLP (mlp_experts=%ld)", c->ttt_lora_targets, c->mlp_experts);
    CFG_REQUIRE(!c->early_exit_layers[0] || !lora,
                "ttt_mode=lora with early_exit_layers='%s': not supported (the exits' losses are not windowed)",
                c->early_exit_layers);
    CFG_REQUIRE(c->parallel_residual_layers >= 0 && c->parallel_residual_layers <= c->num_layers,
                "parallel_residual_layers=%ld: expected 0..num_layers (%ld)", c->parallel_residual_layers, c->num_layers);
    CFG_REQUIRE(c->xsa_last_layers >= 0 && c->xsa_last_layers <= c->num_layers,
                "xsa_last_layers=%ld: expected 0..num_layers (%ld)", c->xsa_last_layers, c->num_layers);
    CFG_REQUIRE(c->mlp_leaky_slope >= 0 && c->mlp_leaky_slope < 1, "mlp_leaky_slope=%g: expected 0 <= slope < 1",
                c->mlp_leaky_slope);
    CFG_REQUIRE(c->quant_matrix_bits >= 2 && c->quant_matrix_bits <= 8 && c->quant_embed_bits >= 2 &&
                    c->quant_embed_bits <= 8,
                "quant_matrix_bits=%ld quant_embed_bits=%ld: expected 2..8", c->quant_matrix_bits, c->quant_embed_bits);
    CFG_REQUIRE(c->quant_sdclip_k >= 0 && c->quant_sdclip_embed_k >= 0, "quant_sdclip_k=%g quant_sdclip_embed_k=%g: expected >= 0",
                c->quant_sdclip_k, c->quant_sdclip_embed_k);
    CFG_REQUIRE(cad_compressor_parse(c->artifact_compressor) >= 0,
                "artifact_compressor='%s': expected zlib, zstd, lzma or brotli", c->artifact_compressor);
    CFG_REQUIRE(cad_config_qat_bits(c) >= 0, "qat_bits='%s': expected 0 (off), 8, 6, 5, 4, 3, 2 or ternary", c->qat_bits);
    CFG_REQUIRE(c->qat_start_frac >= 0 && c->qat_start_frac <= 1, "qat_start_frac=%g: expected 0..1", c->qat_start_frac);
    /* the fake quantisation is the plain quantile clip, so the artifact must quantise the same way */
    CFG_REQUIRE(cad_config_qat_bits(c) == 0 || (!c->quant_clip_search && c->quant_sdclip_k <= 0),
                "qat_bits=%s with quant_clip_search=%d quant_sdclip_k=%g: QAT exports with the plain per-row clip it "
                "trained with; expected quant_clip_search=0 and quant_sdclip_k=0", c->qat_bits, c->quant_clip_search,
                c->quant_sdclip_k);
    int gptq = !strcmp(c->quant_method, "gptq");
    CFG_REQUIRE(gptq || !strcmp(c->quant_method, "clip_search"), "quant_method='%s': expected clip_search or gptq",
                c->quant_method);
    CFG_REQUIRE(c->gptq_calib_batches >= 1 && c->gptq_calib_batches <= 4096,
                "gptq_calib_batches=%ld: expected 1..4096", c->gptq_calib_batches);
    CFG_REQUIRE(c->gptq_damp > 0 && c->gptq_damp <= 1, "gptq_damp=%g: expected 0 < damp <= 1", c->gptq_damp);
    CFG_REQUIRE(!strcmp(c->gptq_calib, "train") || !strcmp(c->gptq_calib, "self_generated"),
                "gptq_calib='%s': expected train or self_generated", c->gptq_calib);
    /* QAT trained for round-to-nearest codes; GPTQ would choose others than the forward saw */
    CFG_REQUIRE(!gptq || cad_config_qat_bits(c) == 0, "quant_method=gptq with qat_bits=%s: expected one of the two",
                c->qat_bits);
    CFG_REQUIRE(!strcmp(c->code_compress, "none") || !strcmp(c->code_compress, "lzma") || !strcmp(c->code_compress, "zlib"),
                "code_compress='%s': expected none, lzma or zlib", c->code_compress);
    CFG_REQUIRE(c->eval_stride >= 0 && c->eval_stride <= cad_config_eval_seq_len(c),
                "eval_stride=%ld: expected 0 (off) or 1..the eval sequence length (%ld)", c->eval_stride,
                cad_config_eval_seq_len(c));
    return CAD_OK;
}

/* the artifact's per-tensor refinements (quant_ext.h): mixed bits, AWQ-lite, LQER */
static int validate_quant_ext(const cad_config *c, cad_err *e) {
    int rc = cad_quant_overrides_check("quant_bits_overrides", c->quant_bits_overrides, e);
    if (!rc) rc = cad_quant_selection_check("lqer_tensors", c->lqer_tensors, e);
    if (rc) return rc;
    int qat = cad_config_qat_bits(c) != 0, gptq = !strcmp(c->quant_method, "gptq");
    CFG_REQUIRE(c->awq_salient_frac >= 0 && c->awq_salient_frac <= 0.5, "awq_salient_frac=%g: expected 0 (off) .. 0.5",
                c->awq_salient_frac);
    /* GPTQ's sweep has one step per row and QAT's fake quantisation knows no salient columns */
    CFG_REQUIRE(c->awq_salient_frac == 0 || (!gptq && !qat),
                "awq_salient_frac=%g with quant_method=%s qat_bits=%s: expected quant_method=clip_search and qat_bits=0",
                c->awq_salient_frac, c->quant_method, c->qat_bits);
    CFG_REQUIRE(c->lqer_rank >= 0 && c->lqer_rank <= CAD_LQER_MAX_RANK, "lqer_rank=%ld: expected 0 (off) .. %d",
                c->lqer_rank, CAD_LQER_MAX_RANK);
    /* the correction would make the artifact differ from the weights QAT trained with */
    CFG_REQUIRE(c->lqer_rank == 0 || !qat, "lqer_rank=%ld with qat_bits=%s: expected one of the two", c->lqer_rank,
                c->qat_bits);
    return CAD_OK;
}

/* knowledge distillation: the teacher's files are checked when the run opens them (distill.c) */
static int validate_distill(const cad_config *c, cad_err *e) {
    if (!c->distill_from[0]) return CAD_OK;
    CFG_REQUIRE(c->distill_teacher_config[0], "distill_from='%s' without distill_teacher_config: expected the "
                "teacher's caddie config YAML (its model shape)", c->distill_from);
    CFG_REQUIRE(c->distill_alpha >= 0 && c->distill_alpha <= 1, "distill_alpha=%g: expected 0..1", c->distill_alpha);
    CFG_REQUIRE(c->distill_temp > 0 && c->distill_temp <= 100, "distill_temp=%g: expected 0 < T <= 100",
                c->distill_temp);
    return CAD_OK;
}

/* model techniques: embeddings, gates, norms (sizes the model's own check repeats) */
static int validate_model_techniques(const cad_config *c, cad_err *e) {
    long hd = c->num_heads > 0 ? c->model_dim / c->num_heads : 0;
    CFG_REQUIRE(c->embed_dim >= 0 && c->embed_dim < c->model_dim,
                "embed_dim=%ld: expected 0 (off) or 1..model_dim-1 (%ld)", c->embed_dim, c->model_dim - 1);
    CFG_REQUIRE(c->bigram_buckets == 0 || (c->bigram_buckets >= 2 && c->bigram_buckets <= 1048576),
                "bigram_buckets=%ld: expected 0 (off) or 2..1048576", c->bigram_buckets);
    CFG_REQUIRE(c->bigram_dim >= 1 && c->bigram_dim <= 65536, "bigram_dim=%ld: expected 1..65536", c->bigram_dim);
    CFG_REQUIRE(c->rope_dims >= 0 && c->rope_dims % 2 == 0 && c->rope_dims <= hd,
                "rope_dims=%ld: expected 0 (all) or an even number of dims up to head_dim (%ld)", c->rope_dims, hd);
    return CAD_OK;
}

int cad_config_early_exits(const cad_config *c, int *depths, int max) {
    const char *p = c->early_exit_layers ? c->early_exit_layers : "";
    int n = 0;
    long prev = 0;
    while (*p) {
        while (*p == ' ') p++;
        char *end;
        long d = strtol(p, &end, 10);
        if (end == p || d <= prev || d >= c->num_layers || n >= max) return -1;
        depths[n++] = (int)d;
        prev = d;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return n;
}

/* micro-MoE and early exit */
static int validate_moe_exit(const cad_config *c, cad_err *e) {
    long E = c->mlp_experts, H = c->mlp_mult * c->model_dim;
    CFG_REQUIRE(E == 0 || (E >= 2 && E <= CAD_MOE_MAX_EXPERTS && H % E == 0),
                "mlp_experts=%ld: expected 0 (dense) or 2..%d dividing mlp_mult*model_dim (%ld)", E,
                CAD_MOE_MAX_EXPERTS, H);
    CFG_REQUIRE(c->mlp_top_k >= 1 && (E == 0 || c->mlp_top_k <= E), "mlp_top_k=%ld: expected 1..mlp_experts (%ld)",
                c->mlp_top_k, E);
    CFG_REQUIRE(c->moe_aux_weight >= 0, "moe_aux_weight=%g: expected >= 0", c->moe_aux_weight);
    CFG_REQUIRE(E == 0 || strcmp(c->quant_method, "gptq") != 0,
                "mlp_experts=%ld with quant_method=gptq: GPTQ's calibration knows only the dense MLP; expected "
                "clip_search", E);
    int d[CAD_MAX_EARLY_EXITS];
    int n = cad_config_early_exits(c, d, CAD_MAX_EARLY_EXITS);
    CFG_REQUIRE(n >= 0, "early_exit_layers='%s': expected up to %d increasing block depths in 1..num_layers-1 (%ld)",
                c->early_exit_layers, CAD_MAX_EARLY_EXITS, c->num_layers - 1);
    CFG_REQUIRE(c->early_exit_weight >= 0, "early_exit_weight=%g: expected >= 0", c->early_exit_weight);
    CFG_REQUIRE(c->early_exit_threshold > 0 && c->early_exit_threshold <= 1,
                "early_exit_threshold=%g: expected 0 < t <= 1 (1 = never exit)", c->early_exit_threshold);
    CFG_REQUIRE(n == 0 || c->embed_dim == 0,
                "early_exit_layers with embed_dim=%ld: exit heads read the plain tied head; expected embed_dim 0",
                c->embed_dim);
    return CAD_OK;
}

/* how and where the run executes: threads, checkpoints, backend, files, run id */
static int validate_run(const cad_config *c, cad_err *e) {
    CFG_REQUIRE(c->threads >= 0 && c->threads <= 1024, "threads=%ld: expected 0..1024", c->threads);
    CFG_REQUIRE(c->checkpoint_every >= 0, "checkpoint_every=%ld: expected >= 0", c->checkpoint_every);
    CFG_REQUIRE(strcmp(c->backend, "cpu") == 0 || strcmp(c->backend, "cuda") == 0,
                "backend='%s': expected cpu or cuda", c->backend);
    CFG_REQUIRE(strcmp(c->matmul_precision, "fp32") == 0 || strcmp(c->matmul_precision, "bf16") == 0,
                "matmul_precision='%s': expected fp32 or bf16", c->matmul_precision);
    size_t tl = strlen(c->tokenizer_path);
    CFG_REQUIRE(tl >= 6 && strcmp(c->tokenizer_path + tl - 6, ".model") == 0,
                "tokenizer_path='%s': only SentencePiece .model files are supported",
                c->tokenizer_path);
    CFG_REQUIRE(c->data_path[0], "data_path is empty");
    return validate_run_id(c, e);
}

/* block_type and the Mamba keys (engine/mamba.h) */
static int validate_mamba(const cad_config *c, cad_err *e) {
    cad_model_config mc = {.num_layers = (int)c->num_layers, .model_dim = (int)c->model_dim};
    int rc = cad_mamba_model_config(c, &mc, e);
    if (rc) return rc;
    CFG_REQUIRE(!mc.mamba_mask || strcmp(c->quant_method, "gptq") != 0,
                "quant_method=gptq with block_type '%s': GPTQ calibrates attention and MLP inputs only; "
                "expected quant_method=clip_search with Mamba blocks", c->block_type);
    return cad_mamba_config_check(&mc, e);
}

/* One group per concern; the first failing check names its key and what was expected. */
int cad_config_validate(const cad_config *c, cad_err *e) {
    int rc = validate_model(c, e);
    if (!rc) rc = validate_batch(c, e);
    if (!rc) rc = validate_optimizer(c, e);
    if (!rc) rc = validate_eval_budget(c, e);
    if (!rc) rc = validate_techniques(c, e);
    if (!rc) rc = validate_model_techniques(c, e);
    if (!rc) rc = validate_quant_ext(c, e);
    if (!rc) rc = validate_distill(c, e);
    if (!rc) rc = validate_moe_exit(c, e);
    if (!rc) rc = validate_mamba(c, e);
    if (!rc) rc = validate_run(c, e);
    return rc;
}

void cad_config_format(const cad_config *c, const cad_config_key *k, char *buf, size_t cap) {
    const void *p = field_cptr(c, k);
    switch (k->type) {
    case CAD_KEY_INT: snprintf(buf, cap, "%ld", *(const long *)p); break;
    case CAD_KEY_FLOAT: {
        /* shortest text that parses back to the same double */
        double v = *(const double *)p;
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, cap, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) break;
        }
        if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", cap - strlen(buf) - 1);
        break;
    }
    case CAD_KEY_BOOL: snprintf(buf, cap, "%d", *(const int *)p); break;
    case CAD_KEY_STR:
    case CAD_KEY_LIST: snprintf(buf, cap, "%s", *(char *const *)p ? *(char *const *)p : ""); break;
    }
}

/* YAML double-quoted scalar (the values are paths and names: escape " and \ only). */
static void write_quoted(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int cad_config_write_yaml(const cad_config *c, FILE *f) {
    char buf[4096];
    for (int i = 0; i < N_KEYS; i++) {
        const cad_config_key *k = &config_keys[i];
        cad_config_format(c, k, buf, sizeof buf);
        fprintf(f, "%s: ", k->name);
        if (k->type == CAD_KEY_STR || k->type == CAD_KEY_LIST) write_quoted(f, buf);
        else fputs(buf, f);
        fputc('\n', f);
    }
    return ferror(f) ? CAD_EIO : CAD_OK;
}

int cad_config_recur_span(const cad_config *c, int *first, int *last) {
    *first = 0, *last = -1;
    const char *p = c->recur_layers;
    if (!p || !*p) return 0;
    char *end;
    long a = strtol(p, &end, 10), b = a;
    if (end == p || a < 0 || a > 4096) return -1;
    if (*end == '-') {
        const char *q = end + 1;
        b = strtol(q, &end, 10);
        if (end == q || b < 0 || b > 4096) return -1;
    }
    if (*end) return -1;
    *first = (int)a, *last = (int)b;
    return 0;
}

int cad_config_qat_bits(const cad_config *c) {
    const char *v = c->qat_bits;
    if (!strcmp(v, "ternary")) return CAD_QUANT_TERNARY;
    if (v[0] >= '2' && v[0] <= '8' && v[1] == 0 && v[0] != '7') return v[0] - '0';
    return !strcmp(v, "0") ? 0 : -1;
}

int cad_config_seq_schedule(const cad_config *c, long *lens, double *fracs, int max) {
    int n = 0;
    for (const char *p = c->seq_len_schedule; *p;) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        char *end;
        long T = strtol(p, &end, 10);
        if (end == p || *end != '@' || T <= 0 || n >= max) return -1;
        p = end + 1;
        double f = strtod(p, &end);
        if (end == p || !(f >= 0 && f < 1) || (n == 0 && f != 0) || (n > 0 && f <= fracs[n - 1])) return -1;
        while (*end == ' ') end++;
        if (*end && *end != ',') return -1;
        lens[n] = T, fracs[n] = f, n++;
        p = end;
    }
    return n;
}

long cad_config_train_seq_len_at(const cad_config *c, double frac) {
    long lens[CAD_SEQ_SCHEDULE_MAX];
    double fracs[CAD_SEQ_SCHEDULE_MAX];
    int n = cad_config_seq_schedule(c, lens, fracs, CAD_SEQ_SCHEDULE_MAX);
    long T = c->train_seq_len;
    for (int i = 0; i < n && fracs[i] <= frac; i++) T = lens[i];
    return T;
}

long cad_config_train_seq_len_max(const cad_config *c) {
    long lens[CAD_SEQ_SCHEDULE_MAX];
    double fracs[CAD_SEQ_SCHEDULE_MAX];
    int n = cad_config_seq_schedule(c, lens, fracs, CAD_SEQ_SCHEDULE_MAX);
    long T = n > 0 ? lens[0] : c->train_seq_len;
    for (int i = 1; i < n; i++) T = lens[i] > T ? lens[i] : T;
    return T;
}

int cad_config_attn_gate(const cad_config *c) {
    static const char *const modes[] = {"none", "sparse", "full"}; /* CAD_ATTN_GATE_* order */
    for (int i = 0; i < 3; i++)
        if (!strcmp(c->attn_gate, modes[i])) return i;
    return -1;
}

long cad_config_eval_seq_len(const cad_config *c) { return c->eval_seq_len > 0 ? c->eval_seq_len : c->train_seq_len; }

int cad_config_key_inert(const cad_config *c, const char *key) {
    if (!strcmp(c->qat_bits, "0") && !strcmp(key, "qat_start_frac")) return 1;
    if (strcmp(c->quant_method, "gptq") && !strncmp(key, "gptq_", 5) &&
        !(c->awq_salient_frac > 0 && (!strcmp(key, "gptq_calib_batches") || !strcmp(key, "gptq_calib")))) /* AWQ-lite calibrates too */
        return 1;
    if (strcmp(c->qat_bits, "0") && !strcmp(key, "quant_matrix_bits")) return 1; /* QAT exports at qat_bits */
    if (c->recur_loops <= 1 && (!strcmp(key, "recur_start_frac") || !strcmp(key, "recur_loop_scales"))) return 1;
    if (c->recur_loops <= 1 && c->eval_recur_loops <= 1 && !strcmp(key, "recur_layers")) return 1;
    if (c->ttt_lr <= 0 && !strncmp(key, "ttt_", 4) && strcmp(key, "ttt_lr") != 0) return 1;
    int lora = !strcmp(c->ttt_mode, "lora"); /* each TTT kind reads its own settings */
    if (!lora && !strncmp(key, "ttt_lora_", 9)) return 1;
    if (lora && (!strcmp(key, "ttt_chunk_tokens") || !strcmp(key, "ttt_momentum") || !strcmp(key, "ttt_batch_seqs") ||
                 !strcmp(key, "ttt_grad_clip")))
        return 1;
    if (c->ema_decay <= 0 && !strcmp(key, "ema_start_frac")) return 1;
    if (!c->distill_from[0] && !strncmp(key, "distill_", 8) && strcmp(key, "distill_from") != 0) return 1;
    if (!strcmp(c->curriculum, "none") && !strcmp(key, "curriculum_window")) return 1;
    if (c->bigram_buckets == 0 && !strcmp(key, "bigram_dim")) return 1;
    if (c->lqer_rank == 0 && !strcmp(key, "lqer_tensors")) return 1;
    if (c->mlp_experts == 0 && (!strcmp(key, "mlp_top_k") || !strcmp(key, "moe_aux_weight"))) return 1;
    if (!c->early_exit_layers[0] && (!strcmp(key, "early_exit_weight") || !strcmp(key, "early_exit_threshold")))
        return 1;
    if (!strncmp(key, "mamba_", 6) && !strstr(c->block_type, "mamba")) return 1;
    return 0;
}

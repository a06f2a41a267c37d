/*
 * spec.h — a sweep YAML file, parsed and validated into a typed cad_sweep_spec.
 *
 * The whole file is checked before anything is queued; the first problem is reported as
 * "file:line:col: message" (unknown key with the closest name, wrong type, empty grid or
 * axis, unequal zip lengths, a key set twice, engine keys unknown to `caddie train`,
 * unknown {template} names and params no template uses for the command engine).
 * The README section "Sweep file reference" documents every key.
 *
 * Not here: expanding the grid into runs (sweep/plan.h), the DB.
 */
#ifndef CADDIE_SPEC_H
#define CADDIE_SPEC_H

#include "engine/status.h"
#include "engine/yamltree.h"
#include "sweep/stop.h"

/* prepare: a prepared-data cache entry build (`caddie data build`, queued by a sweep's
 * prepare: section), never an engine of a sweep file. */
typedef enum { CAD_ENGINE_CADDIE = 0, CAD_ENGINE_COMMAND = 1, CAD_ENGINE_PREPARE = 2 } cad_engine_kind;

/* key = value, where value is a scalar node or (for list keys) a sequence of scalars. */
typedef struct cad_sweep_assign {
    const char *key;
    const yt_node *key_node;
    const yt_node *value;
} cad_sweep_assign;

/* One value of an axis: the assignments it makes (1 for a plain value, several for a
 * bundle map or a zip row). */
typedef struct cad_sweep_point {
    int n;
    cad_sweep_assign *a;
    const char *label;      /* a greedy round's point: the candidate's name ("base" for none);
                             * NULL for grid/zip points (named by their values) */
} cad_sweep_point;

/* A dimension of the cartesian product: a grid key, a bundle axis, or a zip group. */
typedef struct cad_sweep_axis {
    char *label;            /* grid key / bundle axis name / "zip" keys joined with '+' */
    const yt_node *node;    /* where it is declared */
    int is_bundle, is_zip;
    int is_ragged;          /* a bundle axis whose bundles set different keys (caddie engine only) */
    int n_points;
    cad_sweep_point *points;
} cad_sweep_axis;

typedef struct cad_sweep_template {
    char *name;             /* env var name (env) or "" (argv) */
    const yt_node *node;    /* its scalar: the template text, e.g. "{qk_gain_init}" */
} cad_sweep_template;

/* One tokenizer of a `prepare:` section: a cache entry (engine/prepcache.h) built from the
 * section's corpus with this vocabulary. */
typedef struct cad_sweep_prep_tok {
    int vocab;
    const yt_node *node;    /* its {vocab: N} map */
    char key[65];           /* cad_prepcache_key of corpus hash + options */
    char *dir;              /* absolute <cache>/<key> */
} cad_sweep_prep_tok;

/* `prepare:`: tokenizers and shards the sweep's runs need, built by the runner before them
 * (as runs of engine prepare) into a content-addressed cache. n_tok == 0: no section. */
typedef struct cad_sweep_prepare {
    int n_tok;
    cad_sweep_prep_tok *tok;
    char *corpus;           /* absolute path (given relative to the sweep file) */
    char corpus_sha256[65];
    long val_docs;          /* default CAD_PREPARE_DEFAULT_VAL_DOCS */
    long shard_tokens;      /* default CAD_SHARD_DEFAULT_TOKENS */
    double timeout_s;       /* per build attempt; default CAD_SWEEP_PREPARE_TIMEOUT_S */
    char *cache;            /* absolute cache directory (given relative to the current one) */
    const yt_node *node;
} cad_sweep_prepare;

#define CAD_SWEEP_PREPARE_TIMEOUT_S (6.0 * 3600)

typedef enum { CAD_SWEEP_KIND_GRID = 0, CAD_SWEEP_KIND_GREEDY = 1 } cad_sweep_kind;

/* `kind: greedy`: forward selection. Round k runs the current config (set/base plus the
 * candidates kept so far) and every remaining candidate applied on top of it, each with
 * every seed; the candidate with the best mean metric is kept if it beats the current
 * config's mean by more than margin, and round k+1 starts from it; else, or after
 * max_rounds, the selection ends. Each round is a sweep of its own ("<name>.r<k>",
 * cad_sweep_greedy_round); db/greedy.h drives them. */
typedef struct cad_sweep_greedy {
    int n_cands;
    cad_sweep_point *cands; /* label = the candidate's name; its assignments */
    const yt_node *cands_node;
    char *metric;           /* "val_bpb" (default) or "val_loss"; lower is better */
    double margin;          /* >= 0; default 0 */
    int max_rounds;         /* default n_cands */
} cad_sweep_greedy;

#define CAD_SWEEP_GREEDY_NAME_MAX 56 /* room for ".r<round>" within the 64 of a sweep name */

typedef struct cad_sweep_spec {
    const struct cad_sweep_spec *round_of; /* a greedy round: the greedy spec it borrows from */
    cad_sweep_kind kind;
    cad_sweep_greedy greedy; /* kind greedy only */
    yt_doc *doc;            /* owns every node below */
    char *path;             /* sweep file as given */
    char *spec_hash;        /* sha256 hex of the file text */
    char *name;
    char *description;
    cad_engine_kind engine;
    char *base;             /* base run config, resolved relative to the sweep file; NULL none */
    yt_doc *base_doc;       /* engine command: the base file's flat params map (else NULL) */
    int n_set;
    cad_sweep_assign *set;
    int n_axes;             /* grid axes (in file order), then zip groups */
    cad_sweep_axis *axes;
    int n_seeds;            /* 0: no seeds axis */
    long *seeds;
    const yt_node *seeds_node;
    int devices;            /* per run, default 1 */
    double timeout_s;       /* per attempt; default CAD_SWEEP_DEFAULT_TIMEOUT_S */
    int retries;            /* default 0 */
    int priority;           /* default 0; higher first */
    /* engine: command */
    int n_argv;
    cad_sweep_template *argv;
    int n_env;
    cad_sweep_template *env;
    char *workdir;          /* NULL: the directory `caddie sweep add` runs in */
    cad_sweep_stop stop;    /* early stopping (`stop:`); rule CAD_STOP_OFF when absent */
    cad_sweep_prepare prepare; /* `prepare:` (caddie engine only); n_tok 0 when absent */
} cad_sweep_spec;

#define CAD_SWEEP_DEFAULT_TIMEOUT_S 1800.0
/* The accepted range of 'timeout' (after its unit): shorter than the runner's poll is no
 * limit at all, longer than 30 days is a typo; both ends keep run.json's number finite. */
#define CAD_SWEEP_MIN_TIMEOUT_S 0.1
#define CAD_SWEEP_MAX_TIMEOUT_S (30.0 * 86400)

/* Built-in template names of the command engine (besides the sweep's own params). */
extern const char *const cad_sweep_builtin_templates[]; /* NULL-terminated */

/* Load + validate. On error *out is NULL and e says file:line:col: message. */
int cad_sweep_spec_load(const char *path, cad_sweep_spec **out, cad_err *e);
/* The same from text already read (a greedy spec stored in the DB); path names it in messages
 * and is where base and corpus resolve from. */
int cad_sweep_spec_load_text(const char *path, const char *text, size_t len, cad_sweep_spec **out,
                             cad_err *e);
/* A greedy spec's round (1-based) as an ordinary grid spec named "<name>.r<round>": set =
 * the greedy set plus the accepted candidates (indices, in the order kept), one axis
 * "candidate" whose points are "base" (nothing more) and each candidate not accepted. It
 * borrows g's nodes: free it before g, with cad_sweep_spec_free. */
int cad_sweep_greedy_round(const cad_sweep_spec *g, int round, const int *accepted, int n_accepted,
                           cad_sweep_spec **out, cad_err *e);
/* The greedy choice: scores[i] of point i (0 = base) is valid when have[i]; *winner gets the
 * point (>= 1) with the lowest score if it is below scores[0] - margin, else 0 (keep the
 * base). Ties go to the earlier point. Returns CAD_ERR when the base has no score. */
int cad_sweep_greedy_pick(const double *scores, const int *have, int n, double margin, int *winner);
void cad_sweep_spec_free(cad_sweep_spec *s);

/* The text of a value node as it goes into a config: a scalar's text, or a sequence's
 * items joined with ","; malloc'd. */
char *cad_sweep_value_text(const yt_node *v);

/* Scan a template: call fn for each {name} in text (name without braces, len bytes).
 * "{{" and "}}" are literal braces. Returns CAD_OK, or CAD_EFORMAT on an unclosed '{' or
 * an empty name (message without position; the caller adds it). */
typedef int (*cad_template_fn)(void *ctx, const char *name, size_t len, cad_err *e);
int cad_template_scan(const char *text, cad_template_fn fn, void *ctx, cad_err *e);

#endif

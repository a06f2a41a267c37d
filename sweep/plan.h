/*
 * plan.h — a validated sweep spec expanded into runs: every combination of the grid axes,
 * bundles and zip groups (cartesian), times the seeds; each with its resolved config as
 * canonical JSON, a config hash for dedup, a stable run id, its launch recipe and the
 * config.yaml its run directory starts with.
 *
 * Hashes: config_hash = sha256(engine_version "\n" canonical config JSON "\n" [command
 * templates JSON "\n"] "devices=N") — the device count is part of a run's identity (world
 * size changes steps under the wallclock cap); group_hash is the same without the seed, so
 * runs differing only by seed share it (sweep_groups view). Canonical JSON: keys sorted,
 * numbers in their shortest round-trip form, run_id/run_dir left out (they name the run,
 * they are not its config). Run id: "<sweep>-<first 8 hex of config_hash>", "-r2", "-r3"
 * for forced repeats.
 * Order: seeds outermost (every config runs once before any gets a second seed), then the
 * axes in file order, the last axis varying fastest.
 *
 * Not here: YAML validation (spec.h), dedup against and queueing into the DB (db/queue.h),
 * the runner.
 */
#ifndef CADDIE_PLAN_H
#define CADDIE_PLAN_H

#include "engine/config.h"
#include "sweep/spec.h"

typedef enum {
    CAD_PLAN_QUEUE = 0,    /* new run, will be queued */
    CAD_PLAN_REQUEUE,      /* same run exists failed/cancelled/interrupted: queued again */
    CAD_PLAN_SKIP_DONE,    /* a done run has the same config hash (use --force) */
    CAD_PLAN_SKIP_PENDING, /* a queued/running run has the same config hash */
    CAD_PLAN_SKIP_DUP,     /* this sweep produces the same config twice: kept once */
} cad_plan_action;

const char *cad_plan_action_name(cad_plan_action a); /* "queue", "requeue", "done", ... */

typedef struct cad_plan_run {
    char run_id[CAD_RUN_ID_MAX];
    char *name;          /* the varied values, e.g. "qk_gain_init=5.25 seed=42" */
    char *config_json;   /* canonical, sorted keys, without run_id/run_dir */
    char config_hash[65], group_hash[65];
    int has_seed;
    long seed;
    char *run_dir;       /* absolute */
    char *launch_json;   /* {"argv":[...],"env":{...},"cwd":"..."} */
    char *config_yaml;   /* text of <run_dir>/config.yaml */
    cad_plan_action action;
    char other_run_id[CAD_RUN_ID_MAX]; /* the done/pending run or earlier duplicate it matches */
    int prep;            /* index into the spec's prepare.tok this run trains on, or -1 */
    void *priv_;         /* plan.c's resolved values (to re-render when the run id changes) */
} cad_plan_run;

/* A prepared-data entry (the spec's prepare.tok[tok]) as a queue item of engine prepare:
 * `caddie data build` into the cache, run id "prep-<first 12 hex of the entry key>" (shared
 * by every sweep that needs the same entry), config_hash = the entry key. */
typedef struct cad_plan_prep {
    char run_id[CAD_RUN_ID_MAX];
    char *name;          /* "prepare vocab=512" */
    char *run_dir;       /* absolute: <runs_dir>/<run_id> (its log and run.json) */
    char *config_json;   /* corpus, corpus_sha256, vocab, val_docs, shard_tokens, dir */
    char *config_yaml;
    char *launch_json;
    int tok;
    int used;            /* how many runs of the plan train on it */
    cad_plan_action action; /* QUEUE, REQUEUE, SKIP_DONE (the entry is complete: no job),
                             * SKIP_PENDING (its job is queued or running) */
} cad_plan_prep;

typedef struct cad_plan {
    int n;
    cad_plan_run *runs;
    int n_prep;          /* one per prepare tokenizer (0 without prepare:) */
    cad_plan_prep *prep;
    char engine_version[96];
    char *runs_dir;       /* absolute directory holding the run dirs */
    char *cwd_;           /* cad_plan_opts.cwd as given (NULL: the current directory) */
    int n_action[5];      /* runs per cad_plan_action */
    /* estimate (cad_plan_estimate) */
    double est_run_s;     /* per run */
    int est_history_n;    /* past runs it is averaged from; 0 = from the timeout */
    const char *est_source; /* "this sweep", "engine <x>", "timeout" */
    double est_total_s;   /* makespan of the queued runs on est_devices devices */
    int est_devices;
} cad_plan;

typedef struct cad_plan_opts {
    const char *runs_dir; /* NULL: "runs" (relative to the current directory) */
    const char *cwd;      /* absolute: where the sweep was added (a greedy round planned later by
                           * the runner); the caddie engine's run cwd and the base of a relative
                           * workdir. NULL: the current directory */
} cad_plan_opts;

/* Expand and resolve (no DB). Errors (an invalid combination of values) name the sweep
 * file and the run. */
int cad_plan_expand(const cad_sweep_spec *s, const cad_plan_opts *o, cad_plan *out, cad_err *e);
/* Give run i a new id (a forced repeat's "-rN") and render its run_dir, config.yaml and
 * launch recipe again, since they carry the id. */
int cad_plan_rename_run(const cad_sweep_spec *s, cad_plan *p, int i, const char *run_id, cad_err *e);
/* Recount p->n_action after actions changed. */
void cad_plan_count_actions(cad_plan *p);
void cad_plan_free(cad_plan *p);

/* The engine version a caddie-engine run records ("caddie 0.1.0"). */
const char *cad_plan_caddie_engine_version(void);
/* Canonical JSON of a resolved caddie config (every key but run_id/run_dir); malloc'd.
 * skip_seed=1 leaves the seed out too (for the group hash). */
char *cad_plan_config_json(const cad_config *c, int skip_seed);
/* What a caddie run's config_hash and group_hash are computed over: the same JSON without the
 * keys at their default value. A key added later (techniques are keys, off by default) then
 * leaves the hashes of existing configs alone: a finished run stays "done" for `sweep plan` and
 * old and new runs of one config share a group. Keys whose switch is off (recur_layers with
 * recur_loops 1, ttt_* with ttt_lr 0: cad_config_key_inert) are left out too. (A changed default changes behaviour; that is
 * an engine version bump, which is part of every hash.) */
char *cad_plan_config_identity_json(const cad_config *c, int skip_seed);
/* sha256 hex of engine_version "\n" json [ "\n" extra ] (extra may be NULL). */
void cad_plan_hash(const char *engine_version, const char *json, const char *extra, char hex[65]);
/* Shortest "%.*g" text that reads back as exactly v (finite v). */
void cad_plan_format_double(double v, char *buf, size_t cap);

#endif

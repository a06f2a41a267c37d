/*
 * engines.h — how a run's launch recipe becomes a process, per engine kind.
 *
 * Two engines (runs.engine):
 *   caddie   our own `caddie train <run_dir>/config.yaml`. The engine writes log.txt,
 *            metrics.jsonl and result.json into its run dir itself; the runner captures the
 *            process's stdout+stderr into <run_dir>/console.txt (so a crash before log.txt
 *            exists, or an ASan report, is kept) and never touches log.txt: one writer per
 *            file. Curves come from metrics.jsonl.
 *   command  any train_gpt.py-style program: argv list + env vars from the sweep file. The
 *            runner captures stdout+stderr into <run_dir>/log.txt, parses it live
 *            (db/logparse.h) and writes metrics.jsonl and, at a good end, result.json, so
 *            the run dir looks the same as a caddie-engine one to `caddie db rebuild`.
 *   prepare  `caddie data build` of one prepared-data cache entry (a sweep's prepare:
 *            section); stdout+stderr go to <run_dir>/log.txt, and exit 0 is success: the
 *            command exits 0 only once the entry is complete (renamed into place).
 * Template values ({qk_gain_init}, {devices}, {run_dir}, {seed}) are expanded by
 * `sweep add` (sweep/plan.c) into the run's launch recipe (runs.launch): each into its
 * OWN argv entry or env value. Here the recipe is exec'd as is (execvpe, never a shell),
 * so a value like "; rm -rf ~" arrives as those literal characters.
 * Not here: scheduling, the DB, reading logs.
 */
#ifndef CADDIE_ENGINES_H
#define CADDIE_ENGINES_H

#include "db/db.h"
#include "sweep/spec.h"
#include "engine/status.h"

/* "caddie" / "command" / "prepare" -> kind (the enum is the sweep spec's, sweep/spec.h); CAD_ECONFIG
 * naming the known engines otherwise. */
int cad_engine_parse(const char *name, cad_engine_kind *out, cad_err *e);

/* ---- from launch recipe to exec ----------------------------------------------------- */

/* What the runner adds for one attempt. */
typedef struct cad_engine_slot {
    const char *devices;     /* "0,1,2" GPU ids, or NULL in CPU-slot mode */
    int cpu_threads;         /* CPU-slot mode: OMP_NUM_THREADS for the run (> 0), else 0 */
    const char *run_id;
    const char *run_dir;
    int attempt;             /* 1-based */
    int env_additions_only;  /* 1: envp holds only what the run adds (a job script for a
                              * scheduler whose jobs get the submitter's environment) */
    int executor_devices;    /* > 0: the executor hands out this many devices itself (Slurm
                              * GRES sets CUDA_VISIBLE_DEVICES): it is left alone */
    int cpu_devices;         /* CPU mode (devices NULL, no executor_devices): the CPU slots the
                              * run holds, one per device it asked for (a `devices: 2` run holds
                              * two), so its CADDIE_DEVICES says 2 as on GPUs; 0 counts as 1 */
} cad_engine_slot;

/* An exec-ready process description (everything malloc'd; cad_engine_exec_free). */
typedef struct cad_engine_exec {
    cad_engine_kind kind;
    char **argv;             /* NULL-terminated; argv[0] "caddie" replaced by this binary */
    char **envp;             /* NULL-terminated complete environment */
    char *cwd;               /* NULL = the runner's */
    char *capture_path;      /* where stdout+stderr go: console.txt or log.txt */
    int parse_log;           /* 1: the runner parses capture_path (command engine) */
} cad_engine_exec;

/* Build the process for a run. Environment = the runner's environment, then the recipe's
 * env (NAME=value, overriding), then the runner's own variables, which win:
 * CUDA_VISIBLE_DEVICES (the assigned GPUs; "" in CPU-slot mode so a CPU run never grabs a
 * GPU), CADDIE_RUN_ID, CADDIE_RUN_DIR, CADDIE_ATTEMPT, CADDIE_DEVICES (the count of GPUs, or
 * of CPU slots, the run holds); in CPU-slot
 * mode OMP_NUM_THREADS too, unless the recipe sets it. With env_additions_only the runner's
 * environment is left out; with executor_devices CUDA_VISIBLE_DEVICES is not set. self_exe is this binary's path
 * (readlink /proc/self/exe), substituted for argv[0] == "caddie". */
int cad_engine_exec_build(const char *engine, const cad_launch *l, const cad_engine_slot *s,
                          const char *self_exe, cad_engine_exec *out, cad_err *e);
void cad_engine_exec_free(cad_engine_exec *x);

/* This binary's absolute path (/proc/self/exe) into buf. */
int cad_engine_self_exe(char *buf, size_t cap, cad_err *e);

#endif

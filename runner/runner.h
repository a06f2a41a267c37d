/*
 * runner.h — `caddie run`: the overnight runner, the one process that drives the queue.
 *
 * The runner takes queued runs from the DB in order (priority, then queue order), packs
 * them onto its devices (GPU ids, or CPU slots) with the policy in runner/sched.h, starts
 * each as its own process group (runner/proc.h) with CUDA_VISIBLE_DEVICES set to its
 * devices, tails each run dir and ingests curves in one batched transaction per tick
 * (db/ingest.h), and turns the way a process ended into a status:
 *   done         exit 0 and a final result (result.json, or the final score line of a
 *                command-engine log)
 *   failed       non-zero exit, killed by a signal, timeout (TERM to the group, KILL after
 *                the grace), NaN/Inf loss (the run is stopped at once), or exit 0 without a
 *                final result; the reason and the last log lines go to runs.error. A failed
 *                run is queued again while its failures <= its `retries`.
 *   cancelled    `caddie cancel` marked it; the runner kills its group.
 *   interrupted  the runner stopped (SIGINT/SIGTERM) or died; requeued by the next runner.
 * A queued run with prerequisites (db/deps.h: a sweep's prepare: builds) starts only once
 * they are done, and fails without starting ("prepare <id> failed: <reason>") when one failed
 * or was cancelled. Greedy sweeps (db/greedy.h) are advanced whenever runs end: a round that
 * is over is decided and the next one queued before the queue is read.
 * Exactly one runner per DB FILE: an exclusive flock on the DB file itself (released by the
 * kernel even on kill -9), so a second runner fails and names the holder whatever name it
 * reaches the file by (a symlink, a hard link); "<resolved db>.runner.lock" beside it holds
 * the holder's "pid N on HOST since TIME".
 *
 * Crash safety. Every state change is one transaction. At start the runner looks at every
 * run marked running: if its process (pid + start time + boot id) is gone it is marked
 * interrupted; if it is somehow still alive (it ignored the TERM the kernel sent when the
 * old runner died, PR_SET_PDEATHSIG), its group gets TERM then KILL first. Interrupted
 * runs are requeued with their attempt count kept. A requeued run restarts FROM SCRATCH:
 * the previous attempt's log/console/metrics.jsonl/result.json/checkpoint move to
 * <run_dir>/attempts/<n>/ and its metrics/results rows are deleted before the new attempt
 * starts, so the curve in the DB is exactly the last attempt's: no gaps, no duplicates.
 * One exception, opt-in: a caddie-engine run whose config says `resume: true` (with
 * `checkpoint_every: N`), whose last attempt was interrupted (not failed) and whose run
 * dir holds checkpoint.bin RESUMES: the run dir and the curve so far are kept, caddie
 * train continues from the checkpoint and appends; steps logged twice replace each other
 * (metrics are keyed run, name, step), so the curve stays whole and, the engine's resume
 * being exact, equal to an uninterrupted run's (tests/cli/t0406).
 * Where a run's engine lives is the executor's business (runner/executor.h): a process group
 * here (local, the default) or a Slurm job (--executor slurm): the states, retries, ingestion
 * and crash safety above are the same for both, except that Slurm jobs outlive the runner: a
 * stopping runner leaves them running, and the next one re-attaches to them by job id
 * (docs/sweeps.md#more-than-one-box).
 * Not here: the packing policy (sched.h), building the process (engines.h), the SQL.
 */
#ifndef CADDIE_RUNNER_H
#define CADDIE_RUNNER_H

#include "runner/sched.h"
#include "engine/status.h"

#include <stdio.h>

typedef struct cad_runner_opts {
    const char *db_path;
    cad_sched_devset devices;   /* GPU mode: the GPU ids to use (cpu_slots == 0) */
    int cpu_slots;          /* CPU mode: this many concurrent runs (> 0) */
    int cpu_threads;        /* CPU mode: OMP_NUM_THREADS per run (> 0) */
    int until_empty;        /* exit once nothing is running and nothing runnable is queued */
    double grace_s;         /* seconds between TERM and KILL */
    double poll_s;          /* tick length (a child's exit wakes the runner at once) */
    double default_est_s;   /* duration estimate when a run has no history and no timeout */
    const char *executor;   /* "local" (default): process groups on this host; "slurm": one
                             * Slurm job per run (runner/executor.h) */
    const char *partition;  /* slurm: sbatch --partition (NULL: the cluster's default) */
    const char *gres;       /* slurm: GRES name a run's devices are asked as ("gpu"), NULL:
                             * CPU runs with cpu_threads CPUs per device */
    int gpus_per_node;      /* slurm: > 0: a data-parallel caddie run spans ceil(devices / this)
                             * nodes, one `caddie launch` per node through srun (0: one node) */
    int max_jobs;           /* slurm: runs handed to Slurm at once (waiting or running there) */
    int tty;                /* 1: live status line (\r), 0: plain lines */
    FILE *out;              /* progress output */
} cad_runner_opts;

/* Defaults: local executor, 1 CPU slot, grace 10 s, poll 0.5 s, estimate 600 s, 100 Slurm
 * jobs at most, out = stdout. */
void cad_runner_opts_init(cad_runner_opts *o);

/* Run until stopped (or until empty). Returns CAD_OK, or an error in e (lock held by
 * another runner: CAD_ERR naming it; DB errors: CAD_EDB). *stop_signal receives the
 * signal that stopped it (SIGINT/SIGTERM) or 0. */
int cad_runner_run(const cad_runner_opts *o, int *stop_signal, cad_err *e);

/* Path of the holder-text file for a DB into buf: "<db>.runner.lock", with the DB's name
 * resolved (symlinks followed), so every name of one file gives the same path. */
void cad_runner_lock_path(const char *db_path, char *buf, size_t cap);

/* 1 when a runner holds the lock of the DB file at db_path (by any of its names), with
 * who = "pid N on HOST since TIME" (or what is known of the holder, "" if nothing);
 * 0 when no runner holds it or the file does not exist. */
int cad_runner_holder(const char *db_path, char *who, size_t cap);

#endif

/*
 * executor.h — where a run's process lives: the seam between the runner loop and whatever
 * starts, watches and stops the engine of a run.
 *
 * The runner (runner/runner.c) owns the queue, the DB, ingestion from the run dir and the
 * state machine (done / failed / cancelled / interrupted / stopped, retries); an executor only
 * answers four questions through its table of operations:
 *   submit    start these runs (the runner has claimed them and prepared their run dirs)
 *   poll      how is each of these jobs now: waiting, running, or ended and how
 *   signal    stop one (TERM, or KILL when hard)
 *   reattach  after a runner restart: is the job of a run marked running still ours to watch
 * Two executors:
 *   local  (runner/exec_local.c) a process group on this host, per device slot; the default.
 *          Jobs die with the runner (PR_SET_PDEATHSIG), so reattach only cleans up.
 *   slurm  (runner/exec_slurm.c) one Slurm job per run (sbatch; one job array per group of
 *          runs of the same shape), watched with squeue and, once Slurm forgot a job, the
 *          jobcomp file or sacct; the run dir on the shared filesystem carries the exit code.
 *          Jobs outlive the runner, so a restarted runner re-attaches by job id.
 * Another scheduler (Kubernetes, ...) is one more table of these operations.
 * Not here: what to run (runner/engines.h), the queue and the state machine (runner/runner.c,
 * db/db.h), the SQL (db/runs.h).
 */
#ifndef CADDIE_EXECUTOR_H
#define CADDIE_EXECUTOR_H

#include "db/db.h"
#include "engine/status.h"
#include "runner/engines.h"

#define CAD_JOB_ID_MAX 64
#define CAD_JOB_DETAIL_MAX 512

typedef enum { CAD_JOB_WAITING, CAD_JOB_RUNNING, CAD_JOB_ENDED } cad_job_phase;

/* How an ended job ended. */
typedef enum {
    CAD_JOB_EXITED,    /* the engine exited: exit_code */
    CAD_JOB_SIGNALED,  /* the engine was killed by a signal: sig */
    CAD_JOB_TIMEOUT,   /* the executor's own time limit ended it (Slurm: TIMEOUT) */
    CAD_JOB_CANCELLED, /* cancelled outside caddie (a scancel by hand): the run is cancelled */
    CAD_JOB_LOST,      /* preempted, node failure, or the job vanished: not the run's fault, so
                        * it is interrupted and queued again, attempt count kept */
    CAD_JOB_FAILED,    /* the executor failed it without an exit status (out of memory, no
                        * exit record in the run dir): detail says why */
} cad_job_end;

/* One run's job, kept by the runner in the run's slot. */
typedef struct cad_job {
    char id[CAD_JOB_ID_MAX];   /* local: the pid; slurm: "<array job id>_<task>" */
    int pid;                   /* local: process group leader (pgid == pid) */
    const char *run_dir;       /* borrowed from the runner's slot */
    cad_job_phase phase;
    double running_since;      /* monotonic seconds when first seen running (timeouts count
                                * from here, not from a wait in a cluster queue) */
    double term_at, kill_at;   /* when TERM / KILL were sent (0: not yet) */
    cad_job_end end;           /* once phase == CAD_JOB_ENDED */
    int exit_code, sig;
    char detail[CAD_JOB_DETAIL_MAX]; /* the executor's words for the end, or why it could not
                                      * start (start_failed) */
    int start_failed;          /* submit: this run could not be started (detail says why) */
    int reaped, wait_status;   /* local: the leader was waited for, and how it ended */
    double exit_wait_since;    /* slurm: ended, but job.exit not visible yet since then */
} cad_job;

/* What submit starts: one entry per run. */
typedef struct cad_job_spec {
    const char *run_id, *run_dir;
    int attempt;                 /* 1-based */
    const cad_engine_exec *x;    /* argv, cwd, capture path; envp is the complete environment
                                  * (local) or only what the run adds (remote executors) */
    int ndev;                    /* devices the run asked for */
    int append;                  /* 1: append to the capture file (resumed from a checkpoint) */
    double timeout_s;            /* <= 0: none */
} cad_job_spec;

typedef struct cad_executor cad_executor;

typedef struct cad_executor_ops {
    const char *name;  /* "local", "slurm" */
    int remote;        /* 1: jobs run elsewhere and outlive the runner: the job's environment
                        * is only what the run adds, the devices are the executor's to give,
                        * and a stopping runner leaves its jobs running (the next re-attaches) */
    /* Start n runs; jobs[i] is filled (phase, id) or marked start_failed with the reason.
     * Returns CAD_OK unless the DB failed (e). */
    int (*submit)(cad_executor *x, const cad_job_spec *specs, int n, cad_job *jobs, cad_err *e);
    /* Refresh phase / end of each job. A scheduler that cannot be asked right now leaves the
     * jobs as they were (and says so through warn); only the DB failing is an error. */
    int (*poll)(cad_executor *x, cad_job *const *jobs, int n, cad_err *e);
    /* TERM (hard = 0) or KILL (hard = 1) to the job; said gets what was done, for the log
     * ("TERM to process group 4711", "scancel 12_3"). */
    void (*signal)(cad_executor *x, cad_job *job, int hard, char *said, size_t cap);
    /* A run the DB says is running whose runner is gone. *attached = 1: job is filled and the
     * runner watches it again; 0: the job is gone (why says what was found and done) and the
     * run is interrupted. */
    int (*reattach)(cad_executor *x, const cad_run *run, cad_job *job, int *attached, char *why,
                    size_t cap, cad_err *e);
    void (*destroy)(cad_executor *x);
} cad_executor_ops;

/* Lines an executor wants in the runner's log (a scheduler that did not answer). */
typedef void (*cad_executor_warn_fn)(void *ctx, const char *msg);

struct cad_executor {
    const cad_executor_ops *ops;
    void *impl;
    cad_executor_warn_fn warn;
    void *warn_ctx;
};

/* ---- local ---------------------------------------------------------------------------- */

/* The local executor: grace_s between TERM and KILL of a leftover group at reattach. */
int cad_executor_local(double grace_s, cad_executor *out, cad_err *e);

/* ---- slurm ---------------------------------------------------------------------------- */

typedef struct cad_slurm_opts {
    const char *partition;   /* sbatch --partition, NULL: the cluster's default */
    const char *gres;        /* "gpu" or "gpu:TYPE": a run with N devices asks --gres=G:N, and
                              * Slurm sets CUDA_VISIBLE_DEVICES; NULL: CPU runs
                              * (CUDA_VISIBLE_DEVICES empty, OMP_NUM_THREADS = threads) */
    int threads;             /* CPUs per device: --cpus-per-task = devices x threads */
    double grace_s;          /* added to a run's timeout for Slurm's --time backstop */
    cad_db *db;              /* where job names and ids are recorded (table slurm_jobs) */
    int gpus_per_node;       /* > 0 (with gres): a run started as `caddie launch --nproc N ...`
                              * (data parallel) asks ceil(N / this) nodes with --gres=G:this
                              * each, and job.sh starts one launch per node through srun, the
                              * ranks meeting over TCP at the first node; N must be a multiple */
} cad_slurm_opts;

/* The Slurm executor. Asks `scontrol show config` once, so a cluster that cannot be reached
 * fails here with Slurm's message (is SLURM_CONF set? is slurmctld up?). */
int cad_executor_slurm(const cad_slurm_opts *o, cad_executor *out, cad_err *e);

/* scancel a job by id (for `caddie cancel` when no runner watches it). CAD_ERR with scancel's
 * message when it failed. */
int cad_slurm_cancel(const char *job_id, cad_err *e);

/* Text for a POSIX shell: s in single quotes, each ' written as '\'' (so nothing in s is
 * interpreted). Returns a malloc'd string, NULL when out of memory. For job scripts. */
char *cad_shell_quote(const char *s);

#endif

/*
 * cmd_runs.c — the commands around the queue and its runs: `caddie run` (the runner, see
 * runner/runner.h), `status`, `ls`, `show`, `logs`, `cancel`, `retry`; their usage texts,
 * option tables and printing.
 *
 * Everything but `run`, `cancel` and `retry` only reads: the DB is opened read-only and the
 * rows come from the named queries of db/runs.h (the run_summary view, runs, events).
 * Not here: the runner loop (runner/runner.c), any SQL (db/db.c, db/runs.c).
 */
#include "cli/cli.h"
#include "db/db.h"
#include "db/deps.h"
#include "db/greedy.h"
#include "db/runs.h"
#include "runner/executor.h"
#include "runner/proc.h"
#include "runner/runner.h"
#include "runner/sched.h"
#include "runner/tail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- shared helpers --------------------------------------------------------------------- */

/* Open the DB a command looks at; a missing file is an error, not a new DB. */
static int open_existing(const char *cmd, const char *opt_db, int flags, cad_db **db) {
    cad_err e = {0};
    if (cad_db_open(cad_db_path(opt_db), flags | CAD_DB_MUST_EXIST, db, &e) != CAD_OK)
        return cli_fail(cmd, "%s", e.msg);
    return 0;
}

/* The table of the commands whose only option is --db FILE (status, show, cancel, retry). */
enum db_only_opt { DBO_DB };
static const cli_opt db_only_opts[] = {CLI_OPT_DB(DBO_DB), CLI_OPT_END};

/* Parse such a command's options: 0 with *opt_db set (NULL when absent) and *ind at the first
 * operand, or the usage error's exit code. */
static int parse_db_option(const cli_command *c, int argc, char **argv, const char **opt_db,
                           int *ind) {
    cli_parser p;
    cli_parser_init(&p, c, NULL, argc, argv);
    int id;
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum db_only_opt)id) {
        case DBO_DB: *opt_db = p.arg; break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    *ind = p.ind;
    return 0;
}

/* Open the DB read-only and load one run; on failure nothing stays open. */
static int open_run(const char *cmd, const char *opt_db, const char *run_id, cad_db **db,
                    cad_run *run) {
    int rc = open_existing(cmd, opt_db, CAD_DB_READONLY, db);
    if (rc) return rc;
    cad_err e = {0};
    memset(run, 0, sizeof *run);
    if (cad_db_get_run(*db, run_id, run, &e) != CAD_OK) {
        cad_db_close(*db);
        *db = NULL;
        return cli_fail(cmd, "%s", e.msg);
    }
    return 0;
}

/* s, or dflt when s is NULL (a NULL column). */
static const char *or(const char *s, const char *dflt) { return s ? s : dflt; }

/* ---- caddie run ------------------------------------------------------------------------- */

/* GPUs the NVIDIA driver lists, as the set 0..n-1 (0 when none). */
static cad_sched_devset detect_gpus(void) {
    DIR *d = opendir("/proc/driver/nvidia/gpus");
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    if (n > CAD_SCHED_MAX_DEVICES) n = CAD_SCHED_MAX_DEVICES;
    return n == 0 ? 0 : n == 64 ? ~(cad_sched_devset)0 : (((cad_sched_devset)1 << n) - 1);
}

enum run_opt {
    RUN_DEVICES, RUN_CPU_SLOTS, RUN_THREADS, RUN_UNTIL_EMPTY, RUN_GRACE, RUN_POLL, RUN_EXECUTOR,
    RUN_PARTITION, RUN_GRES, RUN_GPUS_PER_NODE, RUN_MAX_JOBS, RUN_DB
};
static const cli_opt run_opts[] = {
    {RUN_DEVICES, "devices", 0, "LIST",
     "GPU ids, e.g. 0-7 or 0,2,4-5 (default: every GPU the NVIDIA\n"
     "driver lists, else one CPU slot)"},
    {RUN_CPU_SLOTS, "cpu-slots", 0, "N", "run N runs at a time on the CPU (CUDA_VISIBLE_DEVICES empty)"},
    {RUN_THREADS, "threads", 0, "N", "OMP_NUM_THREADS per CPU run (default: cores / N)"},
    {RUN_UNTIL_EMPTY, "until-empty", 0, NULL, "exit once nothing runs and nothing runnable is queued"},
    {RUN_GRACE, "grace", 0, "SECONDS", "between TERM and KILL (default 10)"},
    {RUN_POLL, "poll", 0, "SECONDS", "tick of the loop (default 0.5; a run's exit wakes it at once)"},
    {RUN_EXECUTOR, "executor", 0, "NAME", "local (default: process groups on this host) or slurm\n"
     "(each run one Slurm job; the run dirs must be on a filesystem\n"
     "the nodes share)"},
    {RUN_PARTITION, "partition", 0, "P", "slurm: sbatch --partition (default: the cluster's)"},
    {RUN_GRES, "gres", 0, "NAME", "slurm: a run's devices as this GRES, e.g. gpu or gpu:h100\n"
     "(a 4-device run asks --gres=gpu:4; default: CPU runs with\n"
     "--threads CPUs per device)"},
    {RUN_GPUS_PER_NODE, "gpus-per-node", 0, "G", "slurm, with --gres: a data-parallel caddie run of N devices\n"
     "spans N/G nodes, one `caddie launch` per node through srun\n"
     "(default: every run on one node)"},
    {RUN_MAX_JOBS, "max-jobs", 0, "N", "slurm: runs handed to Slurm at once (default 100)"},
    CLI_OPT_DB(RUN_DB),
    CLI_OPT_END,
};

static int cmd_run(int argc, char **argv) {
    cad_runner_opts o;
    cad_runner_opts_init(&o);
    const char *opt_db = NULL, *devices = NULL;
    int cpu_slots = 0, threads = 0, slurm_only = 0;
    int id;
    cli_parser p;
    cli_parser_init(&p, &cmd_run_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum run_opt)id) {
        case RUN_DEVICES: devices = p.arg; break;
        case RUN_CPU_SLOTS:
            if (cli_parse_int(p.arg, 1, CAD_SCHED_MAX_DEVICES, &cpu_slots) != 0)
                return cli_usage_error("run", "--cpu-slots '%s': expected 1..%d", p.arg,
                                       CAD_SCHED_MAX_DEVICES);
            break;
        case RUN_THREADS:
            if (cli_parse_int(p.arg, 1, 1000000, &threads) != 0)
                return cli_usage_error("run", "--threads '%s': expected a positive integer", p.arg);
            break;
        case RUN_UNTIL_EMPTY: o.until_empty = 1; break;
        case RUN_DB: opt_db = p.arg; break;
        case RUN_EXECUTOR: o.executor = p.arg; break;
        case RUN_PARTITION: o.partition = p.arg; slurm_only = 1; break;
        case RUN_GRES: o.gres = p.arg; slurm_only = 1; break;
        case RUN_GPUS_PER_NODE:
            if (cli_parse_int(p.arg, 1, 1024, &o.gpus_per_node) != 0)
                return cli_usage_error("run", "--gpus-per-node '%s': expected a positive integer", p.arg);
            slurm_only = 1;
            break;
        case RUN_MAX_JOBS:
            if (cli_parse_int(p.arg, 1, 1000000, &o.max_jobs) != 0)
                return cli_usage_error("run", "--max-jobs '%s': expected a positive integer", p.arg);
            slurm_only = 1;
            break;
        case RUN_GRACE:
            if (cli_parse_double(p.arg, 0, INFINITY, &o.grace_s) != 0)
                return cli_usage_error("run", "--grace '%s': expected seconds >= 0", p.arg);
            break;
        case RUN_POLL:
            if (cli_parse_double(p.arg, 0.01, 60, &o.poll_s) != 0)
                return cli_usage_error("run", "--poll '%s': expected 0.01..60 seconds", p.arg);
            break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind < argc) return cli_usage_error("run", "unexpected argument '%s'", argv[p.ind]);
    if (devices && cpu_slots)
        return cli_usage_error("run", "--devices and --cpu-slots exclude each other");
    if (strcmp(o.executor, "local") != 0 && strcmp(o.executor, "slurm") != 0)
        return cli_usage_error("run", "--executor '%s': expected local or slurm", o.executor);
    if (o.gres && (!o.gres[0] || strchr(o.gres, ',') || strspn(o.gres, "0123456789") == strlen(o.gres)))
        return cli_usage_error("run", "--gres '%s': expected a GRES name such as gpu or gpu:h100 "
                                      "(the count is each run's devices)", o.gres);
    if (o.gpus_per_node && !o.gres)
        return cli_usage_error("run", "--gpus-per-node needs --gres (the devices a node gives a run)");
    if (strcmp(o.executor, "slurm") == 0) {
        if (devices || cpu_slots)
            return cli_usage_error("run", "--executor slurm: Slurm hands out the devices; use "
                                          "--gres (and --partition) instead of --devices/--cpu-slots");
        o.cpu_threads = threads ? threads : 1;
        o.db_path = cad_db_path(opt_db);
        o.tty = isatty(STDOUT_FILENO);
        o.out = stdout;
        cad_err e = {0};
        int sig = 0;
        if (cad_runner_run(&o, &sig, &e) != CAD_OK) return cli_fail("run", "%s", e.msg);
        return sig ? 128 + sig : 0;
    }
    if (slurm_only)
        return cli_usage_error("run", "--partition, --gres, --gpus-per-node and --max-jobs need --executor slurm");
    if (devices) {
        if (cad_sched_devset_parse(devices, &o.devices) != 0)
            return cli_usage_error("run", "--devices '%s': expected a list like 0-7 or 0,2,4-5 "
                                          "(ids < %d)", devices, CAD_SCHED_MAX_DEVICES);
        o.cpu_slots = 0;
    } else if (cpu_slots) {
        o.cpu_slots = cpu_slots;
    } else if ((o.devices = detect_gpus()) != 0) {
        o.cpu_slots = 0; /* default: every GPU the driver lists */
    } else {
        o.cpu_slots = 1; /* no GPU: one CPU slot */
    }
    if (o.cpu_slots) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int per = cores > 0 ? (int)(cores / o.cpu_slots) : 1;
        o.cpu_threads = threads ? threads : per < 1 ? 1 : per;
    } else if (threads) {
        return cli_usage_error("run", "--threads applies to --cpu-slots only");
    }
    o.db_path = cad_db_path(opt_db);
    o.tty = isatty(STDOUT_FILENO);
    o.out = stdout;
    cad_err e = {0};
    int sig = 0;
    if (cad_runner_run(&o, &sig, &e) != CAD_OK) return cli_fail("run", "%s", e.msg);
    return sig ? 128 + sig : 0;
}

const cli_command cmd_run_def = {
    .name = "run",
    .fn = cmd_run,
    .summary = "the runner: start queued runs on GPUs or CPU slots, record everything in the DB",
    .synopsis = (const char *const[]){"[--devices LIST | --cpu-slots N [--threads N]] [--until-empty]\n"
                                      "[--grace SECONDS] [--poll SECONDS] [--db FILE]",
                                      "--executor slurm [--partition P] [--gres NAME [--gpus-per-node G]] [--threads N]\n"
                                      "[--max-jobs N] [--until-empty] [--grace SECONDS] [--db FILE]",
                                      NULL},
    .description =
        "The one process that drives the queue (one per DB: a second one is refused and told\n"
        "who runs). Runs start in priority order, each in its own process group with\n"
        "CUDA_VISIBLE_DEVICES set to its devices; an 8-device run reserves devices as they free\n"
        "up, 1-device runs backfill only where they end before it can start. Curves are\n"
        "ingested live. Timeout: TERM to the run's group, KILL after the grace. Non-zero exit,\n"
        "NaN loss or no final result: failed (reason + last log lines in runs.error), retried\n"
        "up to the sweep's `retries`. Runs a killed runner left behind are requeued at start.\n"
        "SIGINT/SIGTERM: no new runs, TERM to the running ones (marked interrupted), exit\n"
        "128+signal; a second signal KILLs them.\n"
        "--executor slurm: each run is one Slurm job (sbatch; runs of one shape as one job\n"
        "array), watched with squeue; states and retries as above. The DB stays on this host;\n"
        "the run dirs must be on a filesystem the nodes share. Jobs outlive the runner: a\n"
        "signal or a crash leaves them running and the next runner re-attaches by job id.\n"
        "With --gpus-per-node G a data-parallel caddie run of N devices is one job on N/G nodes\n"
        "(--gres=NAME:G each): srun starts one `caddie launch --nproc G` per node, the ranks\n"
        "meeting over TCP at the first node.\n",
    .opts = run_opts,
};

/* ---- caddie status ---------------------------------------------------------------------- */

#define RECENT_FAILURES 5 /* failed runs `caddie status` lists */

static int print_running(void *ctx, const cad_running_row *r) {
    int *n = ctx;
    if ((*n)++ == 0) printf("running:\n");
    long el = (long)r->elapsed_s;
    printf("  %-40s devices %-8s attempt %d  %ld:%02ld:%02ld", or(r->run_id, ""),
           or(r->devices_assigned, "-"), r->attempts, el / 3600, el / 60 % 60, el % 60);
    if (r->has_step)
        printf("  step %lld train_loss %s", (long long)r->step, or(r->train_loss, "nan"));
    printf("\n");
    return 0;
}

static int print_failure(void *ctx, const cad_failure_row *r) {
    int *n = ctx;
    if ((*n)++ == 0) printf("recent failures:\n");
    printf("  %-40s %.19s  %s\n", or(r->run_id, ""), or(r->ended_at, ""), or(r->error_line, ""));
    return 0;
}

static int print_greedy(void *ctx, const cad_greedy_row *r) {
    int *n = ctx;
    if ((*n)++ == 0) printf("greedy:\n");
    if (strcmp(r->status, "done") == 0) printf("  %-24s round %d, done: %s\n", r->name, r->round, or(r->result, ""));
    else printf("  %-24s round %d running (sweep %s.r%d), kept %s\n", r->name, r->round, r->name, r->round, or(r->accepted, "[]"));
    return 0;
}

static int cmd_status(int argc, char **argv) {
    const char *opt_db = NULL;
    int ind;
    int rc = parse_db_option(&cmd_status_def, argc, argv, &opt_db, &ind);
    if (rc) return rc;
    if (ind < argc) return cli_usage_error("status", "unexpected argument '%s'", argv[ind]);
    cad_db *db = NULL;
    rc = open_existing("status", opt_db, CAD_DB_READONLY, &db);
    if (rc) return rc;
    char who[512];
    int held = cad_runner_holder(cad_db_file(db), who, sizeof who);
    printf("database: %s\n", cad_db_file(db));
    printf("runner:   %s%s\n", held ? "running, " : "not running",
           held ? (who[0] ? who : "holder unknown") : "");
    int counts[CAD_RUN_NSTATUS] = {0};
    cad_err e = {0};
    if (cad_db_count_by_status(db, NULL, counts, &e) != CAD_OK) {
        cad_db_close(db);
        return cli_fail("status", "%s", e.msg);
    }
    printf("runs:    ");
    for (int s = 0; s < CAD_RUN_NSTATUS; s++)
        printf(" %d %s%s", counts[s], cad_run_status_name((cad_run_status)s),
               s + 1 < CAD_RUN_NSTATUS ? "," : "\n");
    int n_running = 0, n_failed = 0;
    int st = cad_db_each_running(db, print_running, &n_running, &e);
    if (st == CAD_OK)
        st = cad_db_each_recent_failure(db, RECENT_FAILURES, print_failure, &n_failed, &e);
    int n_greedy = 0;
    if (st == CAD_OK) st = cad_greedy_each(db, print_greedy, &n_greedy, &e);
    cad_db_close(db);
    return st == CAD_OK ? 0 : cli_fail("status", "%s", e.msg);
}

const cli_command cmd_status_def = {
    .name = "status",
    .fn = cmd_status,
    .summary = "is a runner active; runs per status; what runs now; recent failures; greedy sweeps",
    .synopsis = (const char *const[]){"[--db FILE]", NULL},
    .opts = db_only_opts,
};

/* ---- caddie ls -------------------------------------------------------------------------- */

static int print_summary(void *ctx, const cad_summary_row *r) {
    int *n = ctx;
    (*n)++;
    char bpb[32] = "-", bytes[32] = "-", secs[32] = "-";
    if (!isnan(r->val_bpb)) snprintf(bpb, sizeof bpb, "%.6f", r->val_bpb);
    if (r->artifact_bytes >= 0) snprintf(bytes, sizeof bytes, "%lld", (long long)r->artifact_bytes);
    if (!isnan(r->duration_s)) snprintf(secs, sizeof secs, "%.1f", r->duration_s);
    printf("%-40s %-11s %3d %3d %10s %10s %9s  %s\n", or(r->run_id, ""), or(r->status, ""),
           r->attempts, r->devices, bpb, bytes, secs, or(r->name, ""));
    return 0;
}

enum ls_opt { LS_SWEEP, LS_STATUS, LS_DB };
static const cli_opt ls_opts[] = {
    {LS_SWEEP, "sweep", 0, "NAME", "only the runs of this sweep"},
    {LS_STATUS, "status", 0, "STATUS", "queued, running, done, failed, cancelled, interrupted or stopped"},
    CLI_OPT_DB(LS_DB),
    CLI_OPT_END,
};

static int cmd_ls(int argc, char **argv) {
    const char *opt_db = NULL, *sweep = NULL, *status = NULL;
    int id;
    cli_parser p;
    cli_parser_init(&p, &cmd_ls_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum ls_opt)id) {
        case LS_DB: opt_db = p.arg; break;
        case LS_SWEEP: sweep = p.arg; break;
        case LS_STATUS: status = p.arg; break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind < argc) return cli_usage_error("ls", "unexpected argument '%s'", argv[p.ind]);
    cad_run_status want;
    if (status && cad_run_status_parse(status, &want) != CAD_OK)
        return cli_usage_error("ls", "--status '%s': expected queued, running, done, failed, "
                                     "cancelled, interrupted or stopped", status);
    cad_db *db = NULL;
    int rc = open_existing("ls", opt_db, CAD_DB_READONLY, &db);
    if (rc) return rc;
    printf("%-40s %-11s %3s %3s %10s %10s %9s  %s\n", "RUN", "STATUS", "ATT", "DEV", "VAL_BPB",
           "BYTES", "SECONDS", "NAME");
    int n = 0;
    cad_err e = {0};
    if (cad_db_each_summary(db, sweep, status, print_summary, &n, &e) != CAD_OK)
        rc = cli_fail("ls", "%s", e.msg);
    else if (n == 0 && sweep) {
        int64_t id;
        if (cad_db_sweep_id(db, sweep, &id, &e) != CAD_OK) rc = cli_fail("ls", "%s", e.msg);
    }
    cad_db_close(db);
    return rc;
}

const cli_command cmd_ls_def = {
    .name = "ls",
    .fn = cmd_ls,
    .summary = "list runs: status, attempts, devices, val_bpb, bytes, duration",
    .synopsis = (const char *const[]){"[--sweep NAME] [--status STATUS] [--db FILE]", NULL},
    .opts = ls_opts,
};

/* ---- caddie show ------------------------------------------------------------------------ */

static int print_field(void *ctx, const char *column, const char *value) {
    (void)ctx;
    if (strcmp(column, "error") != 0) printf("%-18s %s\n", column, or(value, ""));
    return 0;
}

static int print_metric_stats(void *ctx, const cad_metric_stats *m) {
    int *n = ctx;
    if ((*n)++ == 0) printf("metrics:\n");
    printf("  %-16s %6d points, steps %lld..%lld, last %s\n", or(m->name, ""), m->points,
           (long long)m->min_step, (long long)m->max_step, or(m->last_value, "nan"));
    return 0;
}

static int print_event(void *ctx, const cad_event_row *ev) {
    (void)ctx;
    printf("  %s  %-11s -> %-11s %s\n", or(ev->at, ""), or(ev->from_status, "-"),
           or(ev->to_status, ""), or(ev->reason, ""));
    return 0;
}

static int cmd_show(int argc, char **argv) {
    const char *opt_db = NULL;
    int ind;
    int rc = parse_db_option(&cmd_show_def, argc, argv, &opt_db, &ind);
    if (rc) return rc;
    if (argc - ind != 1) return cli_usage_error("show", "expected one RUN id");
    const char *run_id = argv[ind];
    cad_db *db = NULL;
    cad_run run;
    rc = open_run("show", opt_db, run_id, &db, &run);
    if (rc) return rc;
    cad_err e = {0};
    /* every column of the public view, in its order; the error text comes last */
    int st = cad_db_each_summary_field(db, run_id, print_field, NULL, &e);
    printf("%-18s %s\n", "devices_assigned", run.devices_assigned ? run.devices_assigned : "-");
    if (run.host) printf("%-18s %s\n", "host", run.host);
    if (run.pid > 0) printf("%-18s %lld\n", "pid", (long long)run.pid);
    printf("%-18s %s\n", "launch", run.launch ? run.launch : "{}");
    char deps[1024];
    if (st == CAD_OK) st = cad_db_deps_text(db, run_id, deps, sizeof deps, &e);
    if (st == CAD_OK && deps[0]) printf("%-18s %s\n", "needs", deps);
    int n_metrics = 0;
    if (st == CAD_OK) st = cad_db_each_metric_stats(db, run_id, print_metric_stats, &n_metrics, &e);
    if (st == CAD_OK) {
        printf("events:\n");
        st = cad_db_each_event(db, run_id, print_event, NULL, &e);
    }
    if (st != CAD_OK) rc = cli_fail("show", "%s", e.msg);
    if (run.error && run.error[0]) printf("error:\n%s\n", run.error);
    cad_run_free(&run);
    cad_db_close(db);
    return rc;
}

const cli_command cmd_show_def = {
    .name = "show",
    .fn = cmd_show,
    .summary = "everything about one run: summary, launch recipe, curves, events, error",
    .synopsis = (const char *const[]){"RUN [--db FILE]", NULL},
    .opts = db_only_opts,
};

/* ---- caddie logs ------------------------------------------------------------------------ */

static int print_line(void *ctx, const char *line, size_t len) {
    (void)ctx;
    fwrite(line, 1, len, stdout);
    fputc('\n', stdout);
    return 0;
}

/* The file holding what the run printed: the runner's capture (console.txt for the caddie
 * engine, log.txt for a command engine), else the engine's own log.txt. */
static void log_path_of(const cad_run *run, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/console.txt", run->run_dir ? run->run_dir : ".");
    struct stat st;
    if (run->engine && strcmp(run->engine, "caddie") == 0 && stat(buf, &st) == 0) return;
    snprintf(buf, cap, "%s/log.txt", run->run_dir ? run->run_dir : ".");
}

enum logs_opt { LOGS_FOLLOW, LOGS_DB };
static const cli_opt logs_opts[] = {
    {LOGS_FOLLOW, "follow", 'f', NULL, "keep printing new lines while the run is queued or running"},
    CLI_OPT_DB(LOGS_DB),
    CLI_OPT_END,
};

static int cmd_logs(int argc, char **argv) {
    const char *opt_db = NULL;
    int follow = 0, id;
    cli_parser p;
    cli_parser_init(&p, &cmd_logs_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum logs_opt)id) {
        case LOGS_DB: opt_db = p.arg; break;
        case LOGS_FOLLOW: follow = 1; break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (argc - p.ind != 1) return cli_usage_error("logs", "expected one RUN id");
    const char *run_id = argv[p.ind];
    cad_db *db = NULL;
    cad_run run;
    int rc = open_run("logs", opt_db, run_id, &db, &run);
    if (rc) return rc;
    char path[4200];
    log_path_of(&run, path, sizeof path);
    struct stat sb;
    if (!follow && stat(path, &sb) != 0) {
        cad_run_status s = run.status;
        cad_run_free(&run);
        cad_db_close(db);
        return cli_fail("logs", "run %s has no log yet (%s; status %s)", run_id, path,
                        cad_run_status_name(s));
    }
    cad_tail_file t;
    cad_tail_init(&t, path);
    cad_tail_read(&t, print_line, NULL, 0, NULL);
    fflush(stdout);
    /* follow while the run may still write: queued or running */
    while (follow && (run.status == CAD_RUN_QUEUED || run.status == CAD_RUN_RUNNING)) {
        struct timespec ts = {0, 300 * 1000000L};
        nanosleep(&ts, NULL);
        int restarted = 0;
        if (stat(path, &sb) != 0) {
            /* a caddie-engine run starts writing console.txt once it runs */
            char again[4200];
            log_path_of(&run, again, sizeof again);
            if (strcmp(again, path) != 0) {
                cad_tail_free(&t);
                snprintf(path, sizeof path, "%s", again);
                cad_tail_init(&t, path);
            }
        }
        cad_tail_read(&t, print_line, NULL, 0, &restarted);
        if (restarted) printf("--- %s was restarted (new attempt) ---\n", path);
        fflush(stdout);
        cad_run_status prev = run.status;
        cad_run_free(&run);
        memset(&run, 0, sizeof run);
        cad_err e = {0};
        if (cad_db_get_run(db, run_id, &run, &e) != CAD_OK) {
            run.status = prev == CAD_RUN_QUEUED ? CAD_RUN_CANCELLED : CAD_RUN_DONE;
        }
        if (run.status != CAD_RUN_QUEUED && run.status != CAD_RUN_RUNNING) {
            cad_tail_read(&t, print_line, NULL, 0, NULL);
            cad_tail_flush_partial(&t, print_line, NULL);
        }
    }
    if (!follow) cad_tail_flush_partial(&t, print_line, NULL);
    cad_tail_free(&t);
    cad_run_free(&run);
    cad_db_close(db);
    return 0;
}

const cli_command cmd_logs_def = {
    .name = "logs",
    .fn = cmd_logs,
    .summary = "print what a run printed; -f follows it until the run ends",
    .synopsis = (const char *const[]){"RUN [-f|--follow] [--db FILE]", NULL},
    .description = "Prints <run_dir>/log.txt (command engine) or console.txt (caddie engine: stdout and\n"
                   "stderr as captured by the runner).\n",
    .opts = logs_opts,
};

/* ---- caddie cancel / retry -------------------------------------------------------------- */

/* The Slurm job ids of the running runs a cancel is about to mark (a list of ids). */
typedef struct job_list {
    char (*id)[CAD_JOB_ID_MAX];
    int n, cap;
} job_list;

static int collect_job(void *ctx, const char *run_id, const char *job_id) {
    (void)run_id;
    job_list *l = ctx;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char (*v)[CAD_JOB_ID_MAX] = realloc(l->id, sizeof *v * (size_t)cap);
        if (!v) return 1;
        l->id = v;
        l->cap = cap;
    }
    snprintf(l->id[l->n++], CAD_JOB_ID_MAX, "%s", job_id);
    return 0;
}

static int cancel_or_retry(const cli_command *c, int argc, char **argv, int cancel) {
    const char *cmd = c->name, *opt_db = NULL;
    int ind;
    int rc = parse_db_option(c, argc, argv, &opt_db, &ind);
    if (rc) return rc;
    if (argc - ind != 1) return cli_usage_error(cmd, "expected one RUN id or SWEEP name");
    const char *target = argv[ind];
    cad_db *db = NULL;
    rc = open_existing(cmd, opt_db, 0, &db);
    if (rc) return rc;
    cad_err e = {0};
    int n = 0;
    char reason[256];
    snprintf(reason, sizeof reason, "caddie %s %s", cmd, target);
    /* runs that are Slurm jobs are scancelled here too, so they stop even when no runner
     * watches them (the runner, when there is one, sees the status and scancels as well) */
    job_list jobs = {0};
    int st = cancel ? cad_db_each_running_slurm_job(db, target, collect_job, &jobs, &e) : CAD_OK;
    if (st == CAD_OK)
        st = cancel ? cad_db_cancel(db, target, reason, &n, &e)
                    : cad_db_retry(db, target, reason, &n, &e);
    cad_db_close(db);
    if (st != CAD_OK) {
        free(jobs.id);
        return cli_fail(cmd, "%s", e.msg);
    }
    int failed = 0;
    for (int i = 0; i < jobs.n; i++) {
        cad_err se = {0};
        if (cad_slurm_cancel(jobs.id[i], &se) != CAD_OK) {
            fprintf(stderr, "caddie %s: %s\n", cmd, se.msg);
            failed = 1;
        } else {
            printf("scancel %s\n", jobs.id[i]);
        }
    }
    free(jobs.id);
    if (cancel)
        printf("cancelled %d run%s of '%s'%s\n", n, n == 1 ? "" : "s", target,
               n ? " (a running one is stopped by the runner within a second)" : "");
    else
        printf("queued %d run%s of '%s' again\n", n, n == 1 ? "" : "s", target);
    return failed;
}

static int cmd_cancel(int argc, char **argv) {
    return cancel_or_retry(&cmd_cancel_def, argc, argv, 1);
}

const cli_command cmd_cancel_def = {
    .name = "cancel",
    .fn = cmd_cancel,
    .summary = "cancel a run, or every queued/running run of a sweep",
    .synopsis = (const char *const[]){"RUN|SWEEP [--db FILE]", NULL},
    .description = "A running run is stopped by the runner (TERM to its process group, KILL after the\n"
                   "grace) and stays cancelled. A run that is a Slurm job (caddie run --executor slurm)\n"
                   "is also scancelled here, so it stops even when no runner watches it.\n",
    .opts = db_only_opts,
};

static int cmd_retry(int argc, char **argv) {
    return cancel_or_retry(&cmd_retry_def, argc, argv, 0);
}

const cli_command cmd_retry_def = {
    .name = "retry",
    .fn = cmd_retry,
    .summary = "queue failed, cancelled or interrupted runs (of a run or a sweep) again (never stopped ones)",
    .synopsis = (const char *const[]){"RUN|SWEEP [--db FILE]", NULL},
    .description = "Resets the attempt count, so the sweep's `retries` apply again.\n",
    .opts = db_only_opts,
};

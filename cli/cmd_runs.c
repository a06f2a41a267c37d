/*
 * cmd_runs.c — the commands around the queue and its runs: `caddie run` (the runner, see
 * runner/runner.h), `status`, `ls`, `show`, `logs`, `cancel`, `retry`.
 *
 * Everything but `run`, `cancel` and `retry` only reads: the DB is opened read-only and the
 * rows come from the named queries of db/runs.h (the run_summary view, runs, events).
 * Not here: the runner loop (runner/runner.c), any SQL (db/db.c, db/runs.c).
 */
#include "cli/cli.h"
#include "db/db.h"
#include "db/runs.h"
#include "runner/proc.h"
#include "runner/runner.h"
#include "runner/sched.h"
#include "runner/tail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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

/* The options of a command whose only option is --db FILE: 0 with *opt_db set (NULL when
 * absent) and optind at the first operand, or the usage error's exit code. */
static int parse_db_option(const char *cmd, int argc, char **argv, const char **opt_db) {
    static const struct option opts[] = {{"db", required_argument, 0, 'D'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'D') *opt_db = optarg;
        else return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
    }
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

int cmd_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"devices", required_argument, 0, 'd'}, {"cpu-slots", required_argument, 0, 'c'},
        {"threads", required_argument, 0, 't'}, {"until-empty", no_argument, 0, 'u'},
        {"db", required_argument, 0, 'D'},      {"grace", required_argument, 0, 'g'},
        {"poll", required_argument, 0, 'p'},    {0, 0, 0, 0}};
    cad_runner_opts o;
    cad_runner_opts_init(&o);
    const char *opt_db = NULL, *devices = NULL;
    int cpu_slots = 0, threads = 0;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': devices = optarg; break;
        case 'c':
            if (cli_parse_int(optarg, 1, CAD_SCHED_MAX_DEVICES, &cpu_slots) != 0)
                return cli_usage_error("run", "--cpu-slots '%s': expected 1..%d", optarg,
                                       CAD_SCHED_MAX_DEVICES);
            break;
        case 't':
            if (cli_parse_int(optarg, 1, 1000000, &threads) != 0)
                return cli_usage_error("run", "--threads '%s': expected a positive integer", optarg);
            break;
        case 'u': o.until_empty = 1; break;
        case 'D': opt_db = optarg; break;
        case 'g':
            if (cli_parse_double(optarg, 0, INFINITY, &o.grace_s) != 0)
                return cli_usage_error("run", "--grace '%s': expected seconds >= 0", optarg);
            break;
        case 'p':
            if (cli_parse_double(optarg, 0.01, 60, &o.poll_s) != 0)
                return cli_usage_error("run", "--poll '%s': expected 0.01..60 seconds", optarg);
            break;
        default: return cli_usage_error("run", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
    if (devices && cpu_slots)
        return cli_usage_error("run", "--devices and --cpu-slots exclude each other");
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

int cmd_status(int argc, char **argv) {
    const char *opt_db = NULL;
    int rc = parse_db_option("status", argc, argv, &opt_db);
    if (rc) return rc;
    if (optind < argc) return cli_usage_error("status", "unexpected argument '%s'", argv[optind]);
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
    cad_db_close(db);
    return st == CAD_OK ? 0 : cli_fail("status", "%s", e.msg);
}

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

int cmd_ls(int argc, char **argv) {
    static const struct option opts[] = {{"db", required_argument, 0, 'D'},
                                         {"sweep", required_argument, 0, 's'},
                                         {"status", required_argument, 0, 'S'},
                                         {0, 0, 0, 0}};
    const char *opt_db = NULL, *sweep = NULL, *status = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'D') opt_db = optarg;
        else if (c == 's') sweep = optarg;
        else if (c == 'S') status = optarg;
        else return cli_usage_error("ls", "unknown option '%s'", argv[optind - 1]);
    }
    if (optind < argc) return cli_usage_error("ls", "unexpected argument '%s'", argv[optind]);
    cad_run_status want;
    if (status && cad_run_status_parse(status, &want) != CAD_OK)
        return cli_usage_error("ls", "--status '%s': expected queued, running, done, failed, "
                                     "cancelled or interrupted", status);
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

int cmd_show(int argc, char **argv) {
    const char *opt_db = NULL;
    int rc = parse_db_option("show", argc, argv, &opt_db);
    if (rc) return rc;
    if (argc - optind != 1) return cli_usage_error("show", "expected one RUN id");
    const char *run_id = argv[optind];
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

int cmd_logs(int argc, char **argv) {
    static const struct option opts[] = {{"db", required_argument, 0, 'D'},
                                         {"follow", no_argument, 0, 'f'},
                                         {0, 0, 0, 0}};
    const char *opt_db = NULL;
    int follow = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
        if (c == 'D') opt_db = optarg;
        else if (c == 'f') follow = 1;
        else return cli_usage_error("logs", "unknown option '%s'", argv[optind - 1]);
    }
    if (argc - optind != 1) return cli_usage_error("logs", "expected one RUN id");
    const char *run_id = argv[optind];
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

/* ---- caddie cancel / retry -------------------------------------------------------------- */

static int cancel_or_retry(const char *cmd, int argc, char **argv, int cancel) {
    const char *opt_db = NULL;
    int rc = parse_db_option(cmd, argc, argv, &opt_db);
    if (rc) return rc;
    if (argc - optind != 1) return cli_usage_error(cmd, "expected one RUN id or SWEEP name");
    const char *target = argv[optind];
    cad_db *db = NULL;
    rc = open_existing(cmd, opt_db, 0, &db);
    if (rc) return rc;
    cad_err e = {0};
    int n = 0;
    char reason[256];
    snprintf(reason, sizeof reason, "caddie %s %s", cmd, target);
    int st = cancel ? cad_db_cancel(db, target, reason, &n, &e)
                    : cad_db_retry(db, target, reason, &n, &e);
    cad_db_close(db);
    if (st != CAD_OK) return cli_fail(cmd, "%s", e.msg);
    if (cancel)
        printf("cancelled %d run%s of '%s'%s\n", n, n == 1 ? "" : "s", target,
               n ? " (a running one is stopped by the runner within a second)" : "");
    else
        printf("queued %d run%s of '%s' again\n", n, n == 1 ? "" : "s", target);
    return 0;
}

int cmd_cancel(int argc, char **argv) {
    return cancel_or_retry("cancel", argc, argv, 1);
}

int cmd_retry(int argc, char **argv) {
    return cancel_or_retry("retry", argc, argv, 0);
}

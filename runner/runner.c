/*
 * runner.c — the overnight runner loop (see runner.h for the contract and crash safety).
 *
 * One thread, one loop: ingest what the running runs wrote (one transaction for all of them),
 * ask the executor how each run's job is (local: reap children; Slurm: squeue), enforce
 * cancel/timeout/NaN, finish runs whose job ended, start new runs where the packing policy
 * allows (or, with a remote executor, as far as --max-jobs allows), draw the status line, then
 * sleep in sigtimedwait until a child exits, a signal arrives or the tick ends. Signals are
 * blocked and taken synchronously, so there is no async handler state to get wrong.
 * Not here: the packing policy (sched.c), where a job runs and how it is watched (executor.h,
 * exec_local.c, exec_slurm.c), building argv/env (engines.c), every query (db/db.c,
 * db/runs.c), reading run dirs (ingest.c).
 */
#include "engine/fsutil.h"
#include "runner/runner.h"

#include "db/db.h"
#include "db/deps.h"
#include "db/greedy.h"
#include "runner/earlystop.h"
#include "runner/engines.h"
#include "runner/executor.h"
#include "db/ingest.h"
#include "db/logparse.h"
#include "db/runs.h"
#include "engine/config.h"
#include "runner/proc.h"
#include "runner/tail.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define LAST_LINES 20          /* log lines kept in runs.error of a failed run */
#define NAN_CHECK_EVERY_S 1.0  /* how often a run's new loss rows are checked for NaN */
#define QUEUE_READ_EVERY_S 1.0 /* the queue is re-read this often, and whenever a run ends */
#define EST_CACHE 64           /* (sweep, engine, devices) estimates kept per queue read */
#define LAST_LINES_MAX_BYTES 8192 /* at most this much of them */
#define REASON_MAX 1024        /* a status change's reason, a stop reason */
#define PREFIXED_REASON_MAX (REASON_MAX + 64) /* a reason with "automatic retry ..." in front */
#define STATUS_TEXT_MAX 32     /* a status name */
#define DEVICES_TEXT_MAX 256   /* "0,1,...,63": CAD_SCHED_MAX_DEVICES ids */
#define HOST_TEXT_MAX 256      /* gethostname */
#define LOCK_TEXT_MAX 600      /* "pid N on HOST since TIME" in the lock file */
#define STATUS_LINE_MAX 512    /* the live status line */
#define REMOTE_POLL_EVERY_S 2.0 /* a remote executor's jobs are asked about (squeue) this often */

/* Copy src into dst (cap bytes), truncating; snprintf("%s") would make gcc warn. */
static void str_copy(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

void cad_runner_opts_init(cad_runner_opts *o) {
    memset(o, 0, sizeof *o);
    o->cpu_slots = 1;
    o->cpu_threads = 1;
    o->grace_s = 10;
    o->poll_s = 0.5;
    o->default_est_s = 600;
    o->executor = "local";
    o->max_jobs = 100;
    o->out = stdout;
}

/* The DB file as the kernel knows it: a symlink resolved (realpath of the file, or of its
 * directory when the file does not exist yet, so two names of one DB give one lock path). */
static void resolve_db(const char *db_path, char *buf, size_t cap) {
    char real[PATH_MAX];
    if (realpath(db_path, real)) {
        str_copy(buf, cap, real);
        return;
    }
    char dir[PATH_MAX];
    str_copy(dir, sizeof dir, db_path);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : db_path;
    if (slash == dir) str_copy(dir, sizeof dir, "/");
    else if (slash) *slash = 0;
    else str_copy(dir, sizeof dir, ".");
    if (!realpath(dir, real)) {
        str_copy(buf, cap, db_path);
        return;
    }
    size_t n = strlen(real);
    if (n == 1) n = 0; /* "/" */
    str_copy(buf, cap, real);
    if (n + 1 < cap) {
        buf[n] = '/';
        str_copy(buf + n + 1, cap - n - 1, base);
    }
}

void cad_runner_lock_path(const char *db_path, char *buf, size_t cap) {
    char real[PATH_MAX];
    resolve_db(db_path, real, sizeof real);
    snprintf(buf, cap, "%s.runner.lock", real);
}

/* The pid holding an flock on the file (dev, ino), from /proc/locks; 0 when not found.
 * For a runner reached through a hard link, whose lock text lies beside its own name. */
static long flock_holder(dev_t dev, ino_t ino) {
    FILE *f = fopen("/proc/locks", "re");
    if (!f) return 0;
    char line[256];
    long pid = 0;
    while (!pid && fgets(line, sizeof line, f)) {
        char kind[16], mode[16], rw[16];
        long p;
        unsigned maj, min;
        unsigned long long in;
        if (sscanf(line, "%*[^:]: %15s %15s %15s %ld %x:%x:%llu", kind, mode, rw, &p, &maj, &min,
                   &in) == 7 &&
            strcmp(kind, "FLOCK") == 0 && maj == major(dev) && min == minor(dev) &&
            in == (unsigned long long)ino)
            pid = p;
    }
    fclose(f);
    return pid;
}

/* 1 when a runner holds the DB file's lock: who gets its "pid N on HOST since TIME" (or the
 * pid alone when only /proc/locks knows it). */
static int lock_holder_of(int db_fd, const char *lock_path, char *who, size_t cap) {
    who[0] = 0;
    if (flock(db_fd, LOCK_SH | LOCK_NB) == 0) {
        flock(db_fd, LOCK_UN);
        return 0;
    }
    if (errno != EWOULDBLOCK) return 0;
    /* the text is the holder's only while its file is locked too: beside another name of
     * a hard-linked DB it may be an old runner's */
    int fd = open(lock_path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) == 0) {
        close(fd);
        fd = -1;
    }
    if (fd >= 0) {
        ssize_t n = pread(fd, who, cap - 1, 0);
        who[n > 0 ? n : 0] = 0;
        who[strcspn(who, "\n")] = 0;
        close(fd);
    }
    struct stat st;
    if (!who[0] && fstat(db_fd, &st) == 0) {
        long pid = flock_holder(st.st_dev, st.st_ino);
        if (pid > 0) snprintf(who, cap, "pid %ld (through another name of the same file)", pid);
    }
    return 1;
}

int cad_runner_holder(const char *db_path, char *who, size_t cap) {
    who[0] = 0;
    int fd = open(db_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char lock[PATH_MAX + 16];
    cad_runner_lock_path(db_path, lock, sizeof lock);
    int held = lock_holder_of(fd, lock, who, cap);
    close(fd);
    return held;
}

/* ---- the lock ------------------------------------------------------------------------- */

/* Take the exclusive runner lock: an flock on the DB file itself (so every name of it, a
 * symlink or a hard link, meets the same lock; SQLite's own locks are fcntl locks, which
 * flock does not touch), then the text file beside the resolved name that says who holds
 * it. On contention name the holder. *fd_out gets both fds (the DB file's first). */
static int lock_take(const char *db_path, int fd_out[2], cad_err *e) {
    char path[PATH_MAX + 16];
    cad_runner_lock_path(db_path, path, sizeof path);
    int dbfd = open(db_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (dbfd < 0) return cad_fail(e, CAD_EIO, "%s: %s", db_path, strerror(errno));
    if (flock(dbfd, LOCK_EX | LOCK_NB) != 0) {
        char who[LOCK_TEXT_MAX] = "";
        lock_holder_of(dbfd, path, who, sizeof who);
        close(dbfd);
        return cad_fail(e, CAD_ERR, "another runner is using %s: %s (lock %s)", db_path,
                        who[0] ? who : "holder unknown", path);
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int rc = cad_fail(e, CAD_EIO, "%s: %s", path, strerror(errno));
        close(dbfd);
        return rc;
    }
    /* a runner of an older caddie locks only this file */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char who[LOCK_TEXT_MAX] = "";
        ssize_t n = pread(fd, who, sizeof who - 1, 0);
        who[n > 0 ? n : 0] = 0;
        who[strcspn(who, "\n")] = 0;
        close(fd);
        close(dbfd);
        return cad_fail(e, CAD_ERR, "another runner is using %s: %s (lock %s)", db_path,
                        who[0] ? who : "holder unknown", path);
    }
    char host[HOST_TEXT_MAX] = "?", when[CAD_DB_TIME_MAX], text[LOCK_TEXT_MAX];
    gethostname(host, sizeof host - 1);
    cad_db_now(when, sizeof when);
    int len = snprintf(text, sizeof text, "pid %d on %s since %s\n", (int)getpid(), host, when);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)len, 0) != len) {
        /* the lock itself is what matters; the text only helps the message above */
    }
    fd_out[0] = dbfd;
    fd_out[1] = fd;
    return CAD_OK;
}

/* ---- running runs ----------------------------------------------------------------------- */

typedef enum {
    STOP_NONE = 0,
    STOP_TIMEOUT,
    STOP_NAN,
    STOP_CANCEL,
    STOP_SHUTDOWN,
    STOP_IOFAIL,  /* the runner could not write the run's files (a full disk): failed */
    STOP_EARLY,   /* the sweep's stop: rule ended it; the DB already says stopped */
} stop_kind;

typedef struct slot {
    int used;
    char run_id[CAD_RUN_ID_MAX];
    char *run_dir;
    char *sweep;
    char *engine;
    cad_engine_kind kind;
    cad_sched_devset devs;
    int ndev;
    int attempt;
    int retries;
    cad_job job;             /* where its engine runs (runner/executor.h) */
    double start_mono;
    double est_s;
    double timeout_s;        /* <= 0: none */
    stop_kind stop;
    char stop_reason[REASON_MAX];
    char *capture_path;
    cad_ingest_state ing;
    int64_t nan_checked_rows;
    double nan_checked_at;
    /* command engine: the runner turns the log into metrics.jsonl */
    cad_tail_file log_tail;
    cad_logparse *lp;
    FILE *journal;
    char io_error[REASON_MAX]; /* a write to the run's files failed: why ("" none) */
    cad_sweep_stop stop_rule;  /* the sweep's early-stopping rule (off: none) */
    long planned_steps;        /* caddie engine: iterations of its config (0: unknown) */
} slot;

typedef struct runner {
    const cad_runner_opts *o;
    cad_db *db;
    cad_executor local;      /* always there: it recovers runs a local runner left behind */
    cad_executor slurm;      /* --executor slurm */
    cad_executor *ex;        /* the one that starts runs: &local or &slurm */
    slot *slots;
    int nslots;              /* capacity: one per device (local), --max-jobs or the jobs
                              * re-attached (remote) */
    cad_sched_devset all;
    char boot_id[CAD_PROC_BOOT_ID_LEN];
    char host[HOST_TEXT_MAX];
    char self_exe[PATH_MAX];
    int stopping;            /* signal received, or fatal set: launch nothing more */
    char fatal[REASON_MAX];  /* a write error that stops the runner (said at exit), or "" */
    int stop_signal;
    int n_done, n_failed, n_started, n_stopped;
    long long es_rows_seen;  /* metric rows ingested when the stop rules last looked */
    int n_finished;          /* slots freed so far (the queue is re-read when it changes) */
    double last_plain_status;
    int status_line_len;     /* TTY: characters of the status line now on screen */
    double last_remote_poll; /* when a remote executor was last asked (monotonic) */
    char **warned;           /* run ids already reported unrunnable */
    int nwarned;
} runner;

static void say(runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(runner *r, const char *fmt, ...) {
    FILE *f = r->o->out;
    if (r->status_line_len) { /* wipe the live status line before a normal line */
        fprintf(f, "\r%*s\r", r->status_line_len, "");
        r->status_line_len = 0;
    }
    char when[CAD_DB_TIME_MAX];
    cad_db_now(when, sizeof when);
    fprintf(f, "%.19s ", when);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
}

/* Current status of a run as text into buf ("" when the run vanished from the DB). A DB
 * that cannot say is an error for the caller to pass up, never "the run is gone": a
 * transient lock was already waited out by the busy timeout. */
static int db_status(runner *r, const char *run_id, char *buf, size_t cap, cad_err *e) {
    buf[0] = 0;
    cad_run_status st;
    int found = 0;
    int rc = cad_db_run_status(r->db, run_id, &st, &found, e);
    if (!rc && found) str_copy(buf, cap, cad_run_status_name(st));
    return rc;
}

/* Say that a status change could not rewrite run.json (lenient mode: the DB has it). */
static void say_run_json_lag(runner *r) {
    char msg[CAD_ERRMSG_MAX];
    if (cad_db_take_run_json_failure(r->db, msg, sizeof msg))
        say(r, "warning: %s (the DB has the run's status; run.json catches up at its next change)",
            msg);
}

/* ---- run directory housekeeping ------------------------------------------------------- */

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Move what a previous attempt left into <run_dir>/attempts/<n>/ so the new attempt starts
 * from scratch and nothing is lost. n = the previous attempt's number. */
static int archive_previous_attempt(const char *run_dir, int n, cad_err *e) {
    /* everything an attempt writes; config.yaml and run.json describe the run and stay */
    static const char *files[] = {"log.txt",        "console.txt",          "metrics.jsonl",
                                  "result.json",    "checkpoint.bin",       "final_model.int8.ptz",
                                  "weights.safetensors", "code_files.txt",  "grandchild.pid",
                                  "job.sh",         "job.exit"};
    int any = 0;
    char src[PATH_MAX + 64], dst[PATH_MAX + 64], dir[PATH_MAX];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(src, sizeof src, "%s/%s", run_dir, files[i]);
        if (!file_exists(src)) continue;
        if (!any) {
            /* the first free number from n on: `caddie retry` resets the attempt count,
             * and an older archive must not be overwritten */
            for (int k = n < 1 ? 1 : n;; k++) {
                snprintf(dir, sizeof dir, "%s/attempts/%d", run_dir, k);
                if (!file_exists(dir)) break;
            }
            int mk = cad_mkdir_p(dir, e);
            if (mk) return mk;
            any = 1;
        }
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        if (rename(src, dst) != 0)
            return cad_fail(e, CAD_EIO, "move %s to %s: %s", src, dst, strerror(errno));
    }
    return CAD_OK;
}

/* ---- ingestion -------------------------------------------------------------------------- */

typedef struct log_ctx {
    slot *s;
} log_ctx;

/* The first write error on the run's metrics.jsonl, kept for the slot's stop reason. */
static void journal_failed(slot *s, int err) {
    if (!s->io_error[0])
        snprintf(s->io_error, sizeof s->io_error, "%s/metrics.jsonl: write failed: %s",
                 s->run_dir, strerror(err ? err : EIO));
}

static int journal_metric(void *ctx, const cad_log_metric *m) {
    slot *s = ctx;
    if (!s->journal || s->io_error[0]) return 0; /* the run is being failed for it */
    cad_metric row;
    memset(&row, 0, sizeof row);
    str_copy(row.name, sizeof row.name, m->name);
    row.step = m->step;
    row.value = m->value;
    row.wall_ms = m->wall_ms;
    if (cad_ingest_write_metric(s->journal, &row) != 0) journal_failed(s, errno);
    return 0;
}

static int log_line(void *ctx, const char *line, size_t len) {
    slot *s = ctx;
    cad_log_metric ms[CAD_LOG_MAX_METRICS_PER_LINE];
    int n = cad_logparse_line(s->lp, line, len, ms, CAD_LOG_MAX_METRICS_PER_LINE);
    for (int i = 0; i < n; i++) journal_metric(s, &ms[i]);
    return 0;
}

/* 1 when SIGINT/SIGTERM/SIGHUP waits (blocked, taken by the loop's sigtimedwait). */
static int stop_signal_pending(void) {
    sigset_t p;
    if (sigpending(&p) != 0) return 0;
    return sigismember(&p, SIGINT) == 1 || sigismember(&p, SIGTERM) == 1 ||
           sigismember(&p, SIGHUP) == 1;
}

#define PUMP_CHUNK (4u << 20) /* log bytes parsed per run per tick */

/* Command engine: parse new log lines into metrics.jsonl (flushed, so ingestion sees
 * them); at_end also parses a partial last line. */
static void pump_log(slot *s, int at_end) {
    if (!s->lp) return;
    int restarted = 0;
    /* live: at most PUMP_CHUNK per tick, so one chatty run cannot stall the others; at the
     * end: everything that is left, chunk by chunk until the file is read (not until a
     * chunk without a newline: a long line spans chunks), unless a stop signal waits: the
     * runner must answer it within seconds whatever a run printed (what is left unparsed
     * stays in log.txt) */
    for (;;) {
        long long before = s->log_tail.offset;
        cad_tail_read(&s->log_tail, log_line, s, PUMP_CHUNK, &restarted);
        if (!at_end || s->log_tail.offset == before || stop_signal_pending()) break;
    }
    if (at_end) cad_tail_flush_partial(&s->log_tail, log_line, s);
    if (s->journal && !s->io_error[0] && fflush(s->journal) != 0) journal_failed(s, errno);
}

/* NaN/Inf loss rows of the run, checked when new rows arrived (at most once a second):
 * *found = 1 with why filled. A DB error is returned, not taken for "no NaN". */
static int nan_check(runner *r, slot *s, char *why, size_t cap, int force, int *found,
                     cad_err *e) {
    *found = 0;
    double now = cad_proc_now_mono();
    if (s->ing.metrics_rows == s->nan_checked_rows) return CAD_OK;
    if (!force && now - s->nan_checked_at < NAN_CHECK_EVERY_S) return CAD_OK;
    cad_metric m;
    int rc = cad_db_find_nonfinite_loss(r->db, s->run_id, &m, found, e);
    if (rc) return rc;
    s->nan_checked_rows = s->ing.metrics_rows;
    s->nan_checked_at = now;
    if (*found) snprintf(why, cap, "NaN/Inf %s at step %lld", m.name, (long long)m.step);
    return CAD_OK;
}

/* A write to the run's files failed: the run is failed for it, and the runner stops
 * launching (every next run would hit the same full disk) and ends with the message once
 * its runs are down; the other runs are interrupted, so the next runner requeues them. */
static void stop_slot(runner *r, slot *s, stop_kind why, const char *reason);
static void io_fatal(runner *r, slot *s) {
    if (s->stop == STOP_NONE || s->stop == STOP_SHUTDOWN) {
        s->stop = STOP_IOFAIL;
        str_copy(s->stop_reason, sizeof s->stop_reason, s->io_error);
    }
    if (s->job.phase != CAD_JOB_ENDED) stop_slot(r, s, STOP_IOFAIL, s->io_error);
    if (r->fatal[0]) return;
    str_copy(r->fatal, sizeof r->fatal, s->io_error);
    r->stopping = 1;
    char why[REASON_MAX + 32];
    snprintf(why, sizeof why, "runner stopping: %s", s->io_error);
    for (int i = 0; i < r->nslots; i++)
        if (r->slots[i].used && &r->slots[i] != s)
            stop_slot(r, &r->slots[i], STOP_SHUTDOWN, why);
}

static void stop_slot(runner *r, slot *s, stop_kind why, const char *reason) {
    if (s->stop == STOP_NONE || why == STOP_SHUTDOWN) {
        if (s->stop == STOP_NONE) {
            s->stop = why;
            str_copy(s->stop_reason, sizeof s->stop_reason, reason);
        }
    }
    if (!s->job.term_at) {
        s->job.term_at = cad_proc_now_mono();
        char said[CAD_JOB_DETAIL_MAX];
        r->ex->ops->signal(r->ex, &s->job, 0, said, sizeof said);
        say(r, "stopping %s: %s (%s)", s->run_id, reason, said);
    }
}

/* ---- early stopping (the sweep's stop: rule, runner/earlystop.h) -------------------------- */

/* At start: the rule of the run's sweep (from the YAML text it was queued with) and, for
 * the caddie engine, the planned steps (its config's iterations; a command engine's come
 * from the N of its step:S/N lines). A rule that cannot be read is said and left off. */
static void earlystop_setup(runner *r, slot *s) {
    cad_sweep_stop_init(&s->stop_rule);
    if (!s->sweep) return;
    char *text = NULL;
    cad_err ee = {0};
    if (cad_db_sweep_spec_text(r->db, s->sweep, &text, &ee) != CAD_OK || !text) {
        if (ee.msg[0]) say(r, "warning: %s: stop rule not read: %s", s->run_id, ee.msg);
        free(text);
        return;
    }
    if (cad_sweep_stop_from_text(s->sweep, text, strlen(text), &s->stop_rule, &ee) != CAD_OK) {
        say(r, "warning: %s: stop rule not read (early stopping off): %s", s->run_id, ee.msg);
        cad_sweep_stop_init(&s->stop_rule);
    }
    free(text);
    if (s->stop_rule.rule == CAD_STOP_OFF || s->kind != CAD_ENGINE_CADDIE) return;
    cad_config c;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/config.yaml", s->run_dir);
    if (cad_config_init(&c, &ee) != CAD_OK) return;
    if (cad_config_load_yaml(&c, path, &ee) == CAD_OK) s->planned_steps = c.iterations;
    else say(r, "warning: %s: planned steps unknown, early stopping off: %s", s->run_id, ee.msg);
    cad_config_free(&c);
}

static long earlystop_planned(const slot *s) {
    if (!s->lp) return s->planned_steps;
    cad_log_summary sum;
    cad_logparse_summary(s->lp, &sum);
    return sum.total_steps;
}

/* Inside ingest_tick's transaction, after the batch: whenever new points arrived, each
 * running run with a rule is judged on the curves now in the DB; a run to stop becomes
 * `stopped` (with the rule and the numbers as the reason) in the same transaction, and gets
 * its TERM after the commit (earlystop_signal). A runner killed before the commit leaves it
 * running (recovered, rerun and judged again); after it, the kernel's PDEATHSIG ends it. */
static int earlystop_tick(runner *r, cad_err *e) {
    long long rows = 0;
    int any = 0;
    for (int i = 0; i < r->nslots; i++)
        if (r->slots[i].used) {
            rows += r->slots[i].ing.metrics_rows;
            any |= r->slots[i].stop_rule.rule != CAD_STOP_OFF;
        }
    if (!any || rows == r->es_rows_seen) return CAD_OK;
    r->es_rows_seen = rows;
    cad_es_set set = {0};
    int rc = CAD_OK;
    for (int i = 0; i < r->nslots && !rc; i++) {
        slot *s = &r->slots[i];
        if (!s->used || s->job.phase == CAD_JOB_ENDED || s->stop != STOP_NONE ||
            s->stop_rule.rule == CAD_STOP_OFF)
            continue;
        long planned = earlystop_planned(s);
        if (planned <= 0) continue;
        if ((rc = cad_es_load(r->db, s->sweep, s->stop_rule.metric, &set, e))) break;
        long at = 0;
        char why[REASON_MAX];
        if (!cad_es_decide(&s->stop_rule, &set, s->run_id, planned, &at, why, sizeof why))
            continue;
        cad_err se = {0};
        int sc = cad_db_set_status_from(r->db, s->run_id, CAD_RUN_RUNNING, CAD_RUN_STOPPED, why, &se);
        if (sc == CAD_EDB) rc = cad_fail(e, CAD_EDB, "%s", se.msg);
        if (sc) continue; /* no longer running (cancelled meanwhile): tick_slots sees it */
        /* the reason also in runs.error: what run_summary, `caddie ls/show` and reports read */
        if ((rc = cad_db_set_error(r->db, s->run_id, why, e))) break;
        s->stop = STOP_EARLY;
        str_copy(s->stop_reason, sizeof s->stop_reason, why);
    }
    cad_es_set_free(&set);
    return rc;
}

/* After the commit: TERM to each run just marked stopped, as a cancel does. */
static void earlystop_signal(runner *r) {
    for (int i = 0; i < r->nslots; i++) {
        slot *s = &r->slots[i];
        if (!s->used || s->stop != STOP_EARLY || s->job.term_at) continue;
        r->n_stopped++;
        say_run_json_lag(r);
        s->job.term_at = cad_proc_now_mono();
        char said[CAD_JOB_DETAIL_MAX];
        r->ex->ops->signal(r->ex, &s->job, 0, said, sizeof said);
        say(r, "stopped %s: %s (%s)", s->run_id, s->stop_reason, said);
    }
}

/* One pass of ingestion over every running run, in one transaction. */
static int ingest_tick(runner *r, cad_err *e) {
    int any = 0;
    for (int i = 0; i < r->nslots; i++) any |= r->slots[i].used;
    if (!any) return CAD_OK;
    int rc = cad_db_begin(r->db, e);
    if (rc) return rc;
    for (int i = 0; i < r->nslots && !rc; i++) {
        slot *s = &r->slots[i];
        if (!s->used) continue;
        pump_log(s, 0);
        cad_err ie = {0};
        if (cad_ingest_run_dir(r->db, s->run_id, s->run_dir, &s->ing, &ie) != CAD_OK) {
            if (ie.code == CAD_EDB) rc = cad_fail(e, CAD_EDB, "%s", ie.msg);
            else say(r, "warning: %s: %s", s->run_id, ie.msg);
        }
        char why[REASON_MAX];
        if (!rc && s->stop == STOP_NONE && s->lp) { /* command engine: the parser saw it */
            cad_log_summary sum;
            cad_logparse_summary(s->lp, &sum);
            if (sum.n_nan > 0) {
                snprintf(why, sizeof why, "NaN/Inf loss printed (after step %ld)", sum.steps);
                stop_slot(r, s, STOP_NAN, why);
            }
        }
        int nan = 0;
        if (!rc && s->stop == STOP_NONE) rc = nan_check(r, s, why, sizeof why, 0, &nan, e);
        if (!rc && nan) stop_slot(r, s, STOP_NAN, why);
        if (!rc && s->io_error[0] && s->stop != STOP_IOFAIL) io_fatal(r, s);
    }
    if (!rc) rc = earlystop_tick(r, e);
    if (rc) {
        cad_db_rollback(r->db);
        return rc;
    }
    rc = cad_db_commit(r->db, e);
    if (!rc) earlystop_signal(r);
    return rc;
}

/* ---- finishing a run -------------------------------------------------------------------- */

static char *failure_text(const char *reason, const char *capture) {
    char *last = cad_tail_last_lines(capture, LAST_LINES, LAST_LINES_MAX_BYTES);
    const char *base = strrchr(capture, '/');
    base = base ? base + 1 : capture;
    size_t n = strlen(reason) + strlen(last ? last : "") + strlen(base) + 64;
    char *t = malloc(n);
    if (t)
        snprintf(t, n, "%s\n--- last lines of %s ---\n%s", reason, base, last ? last : "");
    free(last);
    return t;
}

/* Close the command engine's metrics.jsonl; a failed close (a full disk) fails the run
 * (finish_slot), since the curve on disk then misses points. */
static void journal_close(runner *r, slot *s) {
    (void)r;
    if (!s->journal) return;
    if (fclose(s->journal) != 0) journal_failed(s, errno);
    s->journal = NULL;
}

static void slot_release(runner *r, slot *s) {
    journal_close(r, s);
    free(s->run_dir);
    free(s->sweep);
    free(s->engine);
    free(s->capture_path);
    if (s->lp) cad_logparse_free(s->lp);
    cad_tail_free(&s->log_tail);
    memset(s, 0, sizeof *s);
}

/* How the engine ended (from its job): its exit code when it exited; has_result: result.json
 * is there. */
typedef struct exit_info {
    int has_exit, exit_code, has_result;
} exit_info;

/* Last words of a command engine: the rest of the log, a NaN it printed, and result.json
 * from its final score when it exited 0 (the runner writes that file for it). */
static void last_words(runner *r, slot *s, const exit_info *x) {
    pump_log(s, 1);
    journal_close(r, s);
    if (!s->lp) return;
    cad_log_summary sum;
    cad_logparse_summary(s->lp, &sum);
    if (sum.n_nan > 0 && s->stop == STOP_NONE) {
        s->stop = STOP_NAN;
        snprintf(s->stop_reason, sizeof s->stop_reason, "NaN/Inf loss printed (%ld lines)",
                 sum.n_nan);
    }
    if (x->has_exit && x->exit_code == 0 && sum.has_score && s->stop == STOP_NONE) {
        cad_result res;
        cad_ingest_result_from_log(&res, &sum);
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/result.json", s->run_dir);
        cad_err we = {0};
        if (cad_ingest_write_result(path, s->run_id, &res, &we) != CAD_OK && !s->io_error[0])
            str_copy(s->io_error, sizeof s->io_error, we.msg);
    }
}

/* Inside the caller's transaction, two passes: the last metrics first (a NaN among them
 * fails the run), then result.json, read only from a run that ended well, and the artifact
 * files (hashed), recorded once now that nothing writes them any more (see launch). */
static int ingest_final(runner *r, slot *s, const exit_info *x, cad_err *e) {
    char why[REASON_MAX];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (x->has_result && s->stop == STOP_NONE && x->has_exit && x->exit_code == 0)
                s->ing.result_done = 0;
            s->ing.artifacts_done = 0;
        }
        cad_err ie = {0};
        if (cad_ingest_run_dir(r->db, s->run_id, s->run_dir, &s->ing, &ie) != CAD_OK) {
            if (ie.code == CAD_EDB) return cad_fail(e, CAD_EDB, "%s", ie.msg);
            say(r, "warning: %s: %s", s->run_id, ie.msg);
        }
        int nan = 0;
        if (pass == 0 && s->stop == STOP_NONE) {
            int rc = nan_check(r, s, why, sizeof why, 1, &nan, e);
            if (rc) return rc;
        }
        if (nan) {
            s->stop = STOP_NAN;
            str_copy(s->stop_reason, sizeof s->stop_reason, why);
        }
    }
    return CAD_OK;
}

/* The final status of a run still marked running, and the reason; 1 when it failed. An end
 * only an executor can see (Slurm's time limit, a scancel by hand, a preemption) maps onto the
 * same states as a local run's: failed, cancelled, or interrupted and queued again. */
static int decide_outcome(const slot *s, const exit_info *x, cad_run_status *to,
                          char *reason, size_t cap) {
    int failed = 0;
    const cad_job *j = &s->job;
    *to = CAD_RUN_DONE;
    switch (s->stop) {
    case STOP_TIMEOUT:
    case STOP_NAN:
    case STOP_IOFAIL:
        failed = 1;
        str_copy(reason, cap, s->stop_reason);
        break;
    case STOP_SHUTDOWN:
        *to = CAD_RUN_INTERRUPTED;
        str_copy(reason, cap, s->stop_reason);
        break;
    case STOP_CANCEL: /* status is no longer running: finish_slot handled it */
    case STOP_EARLY:
    case STOP_NONE:
        if (j->end == CAD_JOB_CANCELLED) {
            *to = CAD_RUN_CANCELLED;
            str_copy(reason, cap, j->detail);
        } else if (j->end == CAD_JOB_LOST) {
            *to = CAD_RUN_INTERRUPTED;
            str_copy(reason, cap, j->detail);
        } else if (j->end == CAD_JOB_TIMEOUT || j->end == CAD_JOB_FAILED) {
            failed = 1;
            str_copy(reason, cap, j->detail);
        } else if (!x->has_exit) {
            failed = 1;
            snprintf(reason, cap, "killed by signal %d (%s)", j->sig, strsignal(j->sig));
        } else if (x->exit_code != 0) {
            failed = 1;
            snprintf(reason, cap, "exit code %d", x->exit_code);
        } else if (!x->has_result && s->kind != CAD_ENGINE_PREPARE) { /* prepare: exit 0 = built */
            failed = 1;
            snprintf(reason, cap, "exited 0 without a final result (%s)",
                     s->kind == CAD_ENGINE_CADDIE ? "no result.json"
                                                  : "no final val_bpb line in log.txt");
        }
        break;
    }
    if (failed) *to = CAD_RUN_FAILED;
    return failed;
}

/* Inside the caller's transaction: the final status, and a requeue when the run failed
 * and its retry budget allows (*retry = 1). */
static int record_outcome(runner *r, slot *s, const exit_info *x, cad_run_status to,
                          const char *reason, int *retry, cad_err *e) {
    int failed = to == CAD_RUN_FAILED;
    char *err = failed ? failure_text(reason, s->capture_path) : NULL;
    int rc = cad_db_finish(r->db, s->run_id, to, x->has_exit, x->exit_code, err,
                           failed ? reason : (to == CAD_RUN_DONE ? "finished" : reason), e);
    free(err);
    *retry = 0;
    /* a job lost to the cluster (preempted, node failure) is no failure of the run: it is
     * queued again at once, its attempt count kept, as after a runner crash */
    if (!rc && to == CAD_RUN_INTERRUPTED && s->job.end == CAD_JOB_LOST && s->stop == STOP_NONE) {
        char why[PREFIXED_REASON_MAX];
        snprintf(why, sizeof why, "requeued after: %s", reason);
        rc = cad_db_requeue(r->db, s->run_id, 0, why, e);
        *retry = 1;
    }
    int failures = 0;
    /* a run failed by a full disk is not retried now: the runner is stopping for it */
    if (!rc && failed && s->stop != STOP_IOFAIL) rc = cad_db_count_failures(r->db, s->run_id, &failures, e);
    if (!rc && failed && s->stop != STOP_IOFAIL) {
        if (failures <= s->retries) {
            char why[PREFIXED_REASON_MAX];
            snprintf(why, sizeof why, "automatic retry %d of %d after: %s", failures, s->retries,
                     reason);
            rc = cad_db_requeue(r->db, s->run_id, 0, why, e);
            *retry = 1;
        }
    }
    return rc;
}

static void say_finished(runner *r, slot *s, cad_run_status to, const char *reason, int retry) {
    double secs = cad_proc_now_mono() - s->start_mono;
    if (to == CAD_RUN_DONE) {
        r->n_done++;
        cad_result res;
        int found = 0;
        cad_err ge = {0};
        if (cad_db_get_result(r->db, s->run_id, &res, &found, &ge) == CAD_OK && found)
            say(r, "done    %s in %.1fs: val_bpb %.6f, artifact %lld bytes", s->run_id, secs,
                res.val_bpb, (long long)res.artifact_bytes);
        else say(r, "done    %s in %.1fs", s->run_id, secs);
    } else if (to == CAD_RUN_INTERRUPTED) {
        say(r, "interrupted %s after %.1fs%s%s%s", s->run_id, secs, retry ? ": " : "",
            retry ? reason : "", retry ? " (queued again)" : "");
    } else if (to == CAD_RUN_CANCELLED) {
        say(r, "cancelled %s after %.1fs: %s", s->run_id, secs, reason);
    } else {
        r->n_failed++;
        say(r, "failed  %s after %.1fs: %s%s", s->run_id, secs, reason,
            retry ? " (queued again)" : "");
    }
}

/* The leader exited and the group is empty: decide the status, write it, maybe retry. */
static int finish_slot(runner *r, slot *s, cad_err *e) {
    exit_info x = {0, -1, 0};
    if (s->job.end == CAD_JOB_EXITED) {
        x.has_exit = 1;
        x.exit_code = s->job.exit_code;
    }
    last_words(r, s, &x);
    if (s->io_error[0] && s->stop != STOP_IOFAIL) io_fatal(r, s);
    char result_path[PATH_MAX];
    snprintf(result_path, sizeof result_path, "%s/result.json", s->run_dir);
    x.has_result = file_exists(result_path);
    int rc = cad_db_begin(r->db, e);
    if (rc) return rc;
    rc = ingest_final(r, s, &x, e);
    if (rc) {
        cad_db_rollback(r->db);
        return rc;
    }
    char status[STATUS_TEXT_MAX];
    rc = db_status(r, s->run_id, status, sizeof status, e);
    if (rc) {
        cad_db_rollback(r->db);
        return rc;
    }
    if (strcmp(status, "running") != 0) {
        /* cancelled (or changed) behind our back: keep what the user decided */
        rc = cad_db_commit(r->db, e);
        say(r, "%s %s (process ended)", status[0] ? status : "gone", s->run_id);
        return rc;
    }
    cad_run_status to;
    char reason[REASON_MAX] = "";
    decide_outcome(s, &x, &to, reason, sizeof reason);
    int retry = 0;
    rc = record_outcome(r, s, &x, to, reason, &retry, e);
    if (rc) {
        cad_db_rollback(r->db);
        return rc;
    }
    rc = cad_db_commit(r->db, e);
    if (rc) return rc;
    say_run_json_lag(r);
    say_finished(r, s, to, reason, retry);
    return CAD_OK;
}

/* ---- starting a run --------------------------------------------------------------------- */

typedef struct est_cache {
    int n;
    struct {
        const char *sweep, *engine; /* borrowed from the queue list of this read */
        int devices;
        double mean;
        int have;
    } e[EST_CACHE];
} est_cache;

static int same_str(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Estimated duration: mean of finished runs like it, else its timeout, else the default.
 * The history query is cached per (sweep, engine, devices) for one read of the queue. */
static double estimate(runner *r, est_cache *c, const cad_run *run) {
    double fallback = run->timeout_s > 0 ? run->timeout_s : r->o->default_est_s;
    for (int k = 0; k < c->n; k++)
        if (same_str(c->e[k].sweep, run->sweep) && same_str(c->e[k].engine, run->engine) &&
            c->e[k].devices == run->devices_requested)
            return c->e[k].have ? c->e[k].mean : fallback;
    double mean = 0;
    int n = 0;
    cad_err e = {0};
    int ok = cad_db_mean_duration(r->db, run->sweep, run->engine, run->devices_requested, &mean,
                                  &n, &e) == CAD_OK &&
             n > 0;
    if (c->n < EST_CACHE) {
        c->e[c->n].sweep = run->sweep;
        c->e[c->n].engine = run->engine;
        c->e[c->n].devices = run->devices_requested;
        c->e[c->n].mean = mean;
        c->e[c->n].have = ok;
        c->n++;
    }
    return ok ? mean : fallback;
}

static slot *slot_free(runner *r) {
    for (int i = 0; i < r->nslots; i++)
        if (!r->slots[i].used) return &r->slots[i];
    return NULL;
}

/* *yes = 1 when this start continues an interrupted caddie-engine run from its checkpoint: the
 * run's config says resume: true, the last attempt was interrupted (not failed) and
 * <run_dir>/checkpoint.bin exists. caddie train then appends to log.txt/metrics.jsonl. */
static int resumes_from_checkpoint(runner *r, const cad_run *run, int *yes, cad_err *e) {
    *yes = 0;
    if (!run->run_dir || !run->run_dir[0]) return CAD_OK;
    char ckpt[PATH_MAX];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.bin", run->run_dir);
    if (!file_exists(ckpt)) return CAD_OK;
    return cad_db_run_resumes(r->db, run->run_id, yes, e);
}

/* queued -> running, and what an earlier attempt left in the DB goes (from scratch: the
 * curve starts empty; resumed: the points so far stay, the engine appends from the
 * checkpoint step on, and a step logged twice replaces, never adds). *claimed = 0 when the
 * run is no longer queued (cancelled meanwhile). */
static int claim_run(runner *r, const cad_run *run, const char *devtext, int resume,
                     int *claimed, cad_err *e) {
    *claimed = 0;
    cad_run_claim claim = {devtext, r->host, r->boot_id};
    int rc = cad_db_begin(r->db, e);
    if (rc) return rc;
    cad_err ce = {0};
    /* strict run.json here (a run whose dir cannot be written is not started): a full disk
     * is CAD_EIO and stops the runner with its message; only CAD_ERR means "no longer
     * queued" (cancelled meanwhile) */
    cad_db_set_run_json_lenient(r->db, 0);
    rc = cad_db_claim(r->db, run->run_id, &claim, &ce);
    cad_db_set_run_json_lenient(r->db, 1);
    if (rc != CAD_OK) {
        cad_db_rollback(r->db);
        if (ce.code == CAD_ERR) return CAD_OK;
        *e = ce;
        return ce.code ? ce.code : CAD_EDB;
    }
    rc = cad_db_clear_attempt(r->db, run->run_id, resume, e);
    if (!rc) rc = cad_db_commit(r->db, e);
    else cad_db_rollback(r->db);
    if (!rc) *claimed = 1;
    return rc;
}

/* The process description of a run for this runner's executor: a local run gets the whole
 * environment and its devices (GPU ids or a CPU slot); a remote job only what the run adds,
 * and its devices from the scheduler (with --gres; else CPU runs). */
static int build_exec(runner *r, const cad_run *run, const char *devtext, int attempt,
                      cad_engine_exec *x, cad_err *e) {
    cad_launch l;
    memset(&l, 0, sizeof l);
    int rc = cad_db_get_launch(r->db, run->run_id, &l, e);
    if (!rc) {
        int remote = r->ex->ops->remote;
        int ndev = run->devices_requested < 1 ? 1 : run->devices_requested;
        int cpu = remote ? !r->o->gres : r->o->cpu_slots > 0;
        cad_engine_slot es = {cpu || remote ? NULL : devtext, cpu ? r->o->cpu_threads : 0,
                              run->run_id, run->run_dir, attempt, remote,
                              remote && !cpu ? ndev : 0, cpu ? ndev : 0};
        rc = cad_engine_exec_build(run->engine, &l, &es, r->self_exe, x, e);
    }
    cad_launch_free(&l);
    return rc;
}

/* Prepare the run dir and the process description: why (non-empty) says what stopped it. */
static void prepare_run(runner *r, const cad_run *run, const char *devtext, int resume,
                        int attempt, cad_engine_exec *x, char *why, size_t cap) {
    const char *run_dir = run->run_dir && run->run_dir[0] ? run->run_dir : NULL;
    cad_err le = {0};
    why[0] = 0;
    if (!run_dir) snprintf(why, cap, "run has no run_dir");
    else if (cad_mkdir_p(run_dir, &le) != CAD_OK)
        str_copy(why, cap, le.msg);
    else if (!resume && archive_previous_attempt(run_dir, attempt - 1, &le) != CAD_OK)
        str_copy(why, cap, le.msg);
    else if (build_exec(r, run, devtext, attempt, x, &le) != CAD_OK)
        str_copy(why, cap, le.msg);
}

/* A run that could not even be started is failed, and retried by the usual rule. */
static int fail_start(runner *r, const cad_run *run, const char *why, cad_err *e) {
    char reason[PREFIXED_REASON_MAX];
    snprintf(reason, sizeof reason, "could not start: %s", why);
    int rc = cad_db_begin(r->db, e);
    if (rc) return rc;
    rc = cad_db_finish(r->db, run->run_id, CAD_RUN_FAILED, 0, 0, reason, reason, e);
    int retry = 0, failures = 0;
    if (!rc) rc = cad_db_count_failures(r->db, run->run_id, &failures, e);
    if (!rc && failures <= run->retries) {
        rc = cad_db_requeue(r->db, run->run_id, 0, "automatic retry after start failure", e);
        retry = 1;
    }
    if (rc) {
        cad_db_rollback(r->db);
        return rc;
    }
    r->n_failed++;
    rc = cad_db_commit(r->db, e);
    if (rc) return rc;
    say_run_json_lag(r);
    say(r, "failed  %s: %s%s", run->run_id, reason, retry ? " (queued again)" : "");
    return CAD_OK;
}

/* The slot of a started (or re-attached) run. */
static void slot_fill(runner *r, slot *s, const cad_run *run, cad_sched_devset devs, double est,
                      int attempt, const cad_job *job, const cad_engine_exec *x) {
    (void)r;
    memset(s, 0, sizeof *s);
    s->used = 1;
    str_copy(s->run_id, sizeof s->run_id, run->run_id);
    s->run_dir = strdup(run->run_dir);
    s->sweep = run->sweep ? strdup(run->sweep) : NULL;
    s->engine = strdup(run->engine);
    s->kind = x->kind;
    s->devs = devs;
    s->ndev = r->ex->ops->remote ? (run->devices_requested < 1 ? 1 : run->devices_requested)
                                 : cad_sched_devset_count(devs);
    s->attempt = attempt;
    s->retries = run->retries;
    s->job = *job;
    s->job.run_dir = s->run_dir;
    s->start_mono = cad_proc_now_mono();
    s->est_s = est;
    s->timeout_s = run->timeout_s;
    s->capture_path = strdup(x->capture_path);
    cad_ingest_state_init(&s->ing);
    s->ing.result_done = 1; /* not before the end: finish_slot decides if the run is done */
    s->ing.artifacts_done = 1;
    cad_tail_init(&s->log_tail, x->capture_path);
    if (x->parse_log) {
        /* written from the log, from its first line: a re-attached run's journal is written
         * again whole, and its points replace the ones in the DB (keyed by step) */
        char jpath[PATH_MAX];
        snprintf(jpath, sizeof jpath, "%s/metrics.jsonl", run->run_dir);
        s->lp = cad_logparse_new();
        s->journal = fopen(jpath, "w");
        if (!s->journal)
            snprintf(s->io_error, sizeof s->io_error, "%.900s: cannot write: %.100s", jpath,
                     strerror(errno));
    }
}

/* A run to start, as the policy picked it. */
typedef struct start_req {
    const cad_run *run;
    cad_sched_devset devs;
    double est;
    int resume, attempt;
    char devtext[DEVICES_TEXT_MAX];
    cad_engine_exec x;
} start_req;

/* Claim, prepare and hand the runs to the executor (all at once: Slurm submits runs of one
 * shape as one array). Returns CAD_OK unless the DB itself failed. */
static int launch_many(runner *r, start_req *req, int n, cad_err *e) {
    cad_job_spec *specs = calloc((size_t)n + 1, sizeof *specs);
    cad_job *jobs = calloc((size_t)n + 1, sizeof *jobs);
    int *which = calloc((size_t)n + 1, sizeof *which);
    if (!specs || !jobs || !which) {
        free(specs);
        free(jobs);
        free(which);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    int rc = CAD_OK, m = 0;
    const char *claim_text = r->ex->ops->remote ? r->ex->ops->name : NULL;
    for (int i = 0; i < n && !rc; i++) {
        start_req *q = &req[i];
        const cad_run *run = q->run;
        cad_sched_devset_format(q->devs, q->devtext, sizeof q->devtext);
        int claimed = 0;
        rc = resumes_from_checkpoint(r, run, &q->resume, e);
        if (!rc) rc = claim_run(r, run, claim_text ? claim_text : q->devtext, q->resume, &claimed, e);
        if (rc || !claimed) continue;
        q->attempt = run->attempts + 1;
        char why[REASON_MAX];
        prepare_run(r, run, q->devtext, q->resume, q->attempt, &q->x, why, sizeof why);
        if (why[0]) {
            cad_engine_exec_free(&q->x);
            rc = fail_start(r, run, why, e);
            continue;
        }
        specs[m] = (cad_job_spec){run->run_id, run->run_dir, q->attempt, &q->x,
                                  run->devices_requested < 1 ? 1 : run->devices_requested,
                                  q->resume, run->timeout_s};
        which[m++] = i;
    }
    if (!rc && m) rc = r->ex->ops->submit(r->ex, specs, m, jobs, e);
    for (int k = 0; k < m; k++) {
        start_req *q = &req[which[k]];
        const cad_run *run = q->run;
        cad_job *j = &jobs[k];
        if (j->start_failed) {
            if (!rc) rc = fail_start(r, run, j->detail, e);
        } else {
            /* a started job gets its slot even after a DB error, so that it is watched (and,
             * local, stopped) until the runner is down */
            if (j->pid > 0) { /* a local process; a run that already exited records 0 */
                long long start_ticks = 0;
                cad_err pe = {0};
                cad_proc_start_ticks(j->pid, &start_ticks, &pe);
                cad_err se = {0};
                int sr = cad_db_set_process(r->db, run->run_id, j->pid, start_ticks, &se);
                if (sr && !rc) {
                    rc = sr;
                    *e = se;
                }
            }
            slot *s = slot_free(r);
            CAD_ASSERT(s != NULL); /* the policy never picks more runs than free slots */
            slot_fill(r, s, run, q->devs, q->est, q->attempt, j, &q->x);
            earlystop_setup(r, s);
            r->n_started++;
            const char *how = q->resume ? ", resuming from checkpoint.bin" : "";
            if (r->ex->ops->remote)
                say(r, "submit  %s (attempt %d%s) as Slurm job %s", run->run_id, q->attempt, how,
                    j->id);
            else if (r->o->cpu_slots)
                say(r, "start   %s (attempt %d%s) on cpu slot %s, pid %d", run->run_id, q->attempt,
                    how, q->devtext, j->pid);
            else
                say(r, "start   %s (attempt %d%s) on CUDA_VISIBLE_DEVICES=%s, pid %d", run->run_id,
                    q->attempt, how, q->devtext, j->pid);
        }
    }
    for (int i = 0; i < n; i++) cad_engine_exec_free(&req[i].x);
    free(specs);
    free(jobs);
    free(which);
    return rc;
}

static int warned_once(runner *r, const char *run_id) {
    for (int i = 0; i < r->nwarned; i++)
        if (strcmp(r->warned[i], run_id) == 0) return 1;
    char **w = realloc(r->warned, sizeof *w * (size_t)(r->nwarned + 1));
    if (!w) return 1;
    r->warned = w;
    r->warned[r->nwarned++] = strdup(run_id);
    return 0;
}

/* ---- prerequisites (db/deps.h) ----------------------------------------------------------- */

typedef struct id_at {
    const char *id;
    int at;
} id_at;

static int id_at_cmp(const void *a, const void *b) {
    return strcmp(((const id_at *)a)->id, ((const id_at *)b)->id);
}

/* A queued run whose prerequisite failed, was cancelled or stopped can never start: it fails
 * now, naming the prerequisite and its reason. */
static int fail_dependant(runner *r, const cad_dep_wait *w, cad_err *e) {
    char why[REASON_MAX];
    const char *what = strncmp(w->needs, "prep-", 5) == 0 ? "prepare" : "prerequisite";
    if (w->needs_status == CAD_RUN_FAILED)
        snprintf(why, sizeof why, "%s %s failed: %.700s", what, w->needs, w->needs_error ? w->needs_error : "");
    else
        snprintf(why, sizeof why, "%s %s is %s", what, w->needs, cad_run_status_name(w->needs_status));
    int rc = cad_db_fail_queued(r->db, w->run_id, why, e);
    if (rc == CAD_ERR) return CAD_OK; /* no longer queued: cancelled meanwhile */
    if (rc) return rc;
    say_run_json_lag(r);
    r->n_failed++;
    say(r, "failed  %s: %s", w->run_id, why);
    return CAD_OK;
}

/* waiting[i] = 1 for the queued runs q[i] that must not start yet (a prerequisite is queued
 * or running), 2 for those failed just now (a prerequisite failed). */
static int deps_tick(runner *r, const cad_run *q, int nq, int *waiting, cad_err *e) {
    cad_dep_wait *w = NULL;
    int nw = 0;
    int rc = cad_db_list_dep_waits(r->db, &w, &nw, e);
    if (rc || nw == 0) return rc;
    id_at *ix = malloc(((size_t)nq + 1) * sizeof *ix);
    if (!ix) {
        cad_dep_wait_free(w, nw);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    for (int i = 0; i < nq; i++) ix[i] = (id_at){q[i].run_id, i};
    if (nq > 1) qsort(ix, (size_t)nq, sizeof *ix, id_at_cmp);
    const char *failed_last = "";
    for (int k = 0; k < nw && !rc; k++) {
        id_at key = {w[k].run_id, 0}, *hit = nq ? bsearch(&key, ix, (size_t)nq, sizeof *ix, id_at_cmp) : NULL;
        int final = w[k].needs_status == CAD_RUN_FAILED || w[k].needs_status == CAD_RUN_CANCELLED ||
                    w[k].needs_status == CAD_RUN_STOPPED;
        if (hit && waiting[hit->at] < 2) waiting[hit->at] = final ? 2 : 1;
        if (final && strcmp(failed_last, w[k].run_id) != 0) {
            rc = fail_dependant(r, &w[k], e);
            failed_last = w[k].run_id;
        }
    }
    free(ix);
    cad_dep_wait_free(w, nw);
    return rc;
}

/* Ask the policy what starts now and start it. *n_runnable gets the number of queued
 * runs this runner could ever run (for --until-empty); runs waiting for a prerequisite
 * count, they become startable when it is done. */
static int schedule(runner *r, int *n_runnable, int *n_queued, double *eta_s, cad_err *e) {
    cad_run *all_q = NULL;
    int n_all = 0;
    int rc = cad_db_list_runs(r->db, CAD_RUN_MASK(CAD_RUN_QUEUED), NULL, &all_q, &n_all, e);
    if (rc) return rc;
    int *waiting = calloc((size_t)n_all + 1, sizeof *waiting);
    cad_run *q = calloc((size_t)n_all + 1, sizeof *q);
    if (!waiting || !q) {
        free(waiting), free(q);
        cad_run_list_free(all_q, n_all);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    if ((rc = deps_tick(r, all_q, n_all, waiting, e))) {
        free(waiting), free(q);
        cad_run_list_free(all_q, n_all);
        return rc;
    }
    /* the runs that may start now, moved (not copied) out of the list */
    int nq = 0, n_wait = 0;
    for (int i = 0; i < n_all; i++) {
        if (waiting[i]) {
            n_wait += waiting[i] == 1; /* a failed one is no longer queued */
            continue;
        }
        q[nq++] = all_q[i];
        memset(&all_q[i], 0, sizeof all_q[i]);
    }
    double now = cad_proc_now_mono();
    cad_sched_running *run = calloc((size_t)r->nslots + 1, sizeof *run);
    cad_sched_queued *qq = calloc((size_t)nq + 1, sizeof *qq);
    cad_sched_pick *picks = calloc((size_t)nq + 1, sizeof *picks);
    int nrun = 0, total = cad_sched_devset_count(r->all);
    double work = 0; /* device-seconds left, for the ETA */
    for (int i = 0; i < r->nslots; i++) {
        slot *s = &r->slots[i];
        if (!s->used) continue;
        double end = s->start_mono + s->est_s;
        run[nrun++] = (cad_sched_running){s->devs, end};
        work += (end > now ? end - now : 0) * s->ndev;
    }
    int runnable = 0, remote = r->ex->ops->remote;
    /* remote: the scheduler packs; every run is runnable, the ETA counts jobs as devices */
    if (remote) total = r->nslots;
    est_cache *cache = calloc(1, sizeof *cache);
    for (int i = 0; i < nq; i++) {
        qq[i].ndev = q[i].devices_requested < 1 ? 1 : q[i].devices_requested;
        qq[i].est_s = cache ? estimate(r, cache, &q[i])
                            : q[i].timeout_s > 0 ? q[i].timeout_s : r->o->default_est_s;
        if (remote) qq[i].ndev = 1;
        if (qq[i].ndev <= total) {
            runnable++;
            work += qq[i].est_s * qq[i].ndev;
        } else if (!warned_once(r, q[i].run_id)) {
            say(r, "skip    %s: needs %d devices, this runner has %d", q[i].run_id, qq[i].ndev,
                total);
        }
    }
    *n_runnable = runnable + n_wait;
    *n_queued = nq + n_wait;
    *eta_s = total > 0 ? work / total : 0;
    start_req *req = calloc((size_t)nq + 1, sizeof *req);
    if (!req) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    if (!rc && !r->stopping) {
        cad_sched_outcome out = {0};
        if (remote) {
            /* Slurm queues and packs: hand it the head of the queue, in order, as far as
             * --max-jobs allows (its own priority then decides among them) */
            for (int i = 0; i < nq && out.n_picks < r->nslots - nrun; i++)
                picks[out.n_picks++] = (cad_sched_pick){i, 0};
        } else {
            cad_sched_decide(r->all, run, nrun, qq, nq, now, picks, &out);
        }
        for (int k = 0; k < out.n_picks; k++)
            req[k] = (start_req){&q[picks[k].index], picks[k].devs, qq[picks[k].index].est_s,
                                 0, 0, "", {0}};
        rc = launch_many(r, req, out.n_picks, e);
        *n_queued -= out.n_picks;
    }
    free(req);
    free(cache);
    free(run);
    free(qq);
    free(picks);
    cad_run_list_free(q, nq);
    cad_run_list_free(all_q, n_all);
    free(waiting);
    return rc;
}

/* ---- greedy sweeps (db/greedy.h) --------------------------------------------------------- */

static void greedy_say(void *ctx, const char *line) { say(ctx, "%s", line); }

static int greedy_tick(runner *r, cad_err *e) {
    int queued = 0;
    return cad_greedy_tick(r->db, greedy_say, r, &queued, e);
}

/* ---- crash recovery ------------------------------------------------------------------- */

/* Room for at least n slots (a remote runner re-attaching more jobs than --max-jobs). */
static int ensure_slots(runner *r, int n, cad_err *e) {
    if (n <= r->nslots) return CAD_OK;
    slot *ns = realloc(r->slots, sizeof *ns * (size_t)n);
    if (!ns) return cad_fail(e, CAD_ENOMEM, "out of memory");
    memset(ns + r->nslots, 0, sizeof *ns * (size_t)(n - r->nslots));
    r->slots = ns;
    r->nslots = n;
    return CAD_OK;
}

/* Watch a remote job again: the run's slot, as if it had just been submitted (its log is read
 * again from the start; the points replace those in the DB, keyed by step). */
static int adopt(runner *r, const cad_run *run, const cad_job *job, cad_err *e) {
    cad_engine_exec x;
    memset(&x, 0, sizeof x);
    int rc = build_exec(r, run, NULL, run->attempts, &x, e);
    if (rc) return rc;
    slot *s = slot_free(r);
    CAD_ASSERT(s != NULL); /* ensure_slots made room for every running run */
    double est = run->timeout_s > 0 ? run->timeout_s : r->o->default_est_s;
    slot_fill(r, s, run, 0, est, run->attempts, job, &x);
    earlystop_setup(r, s);
    cad_engine_exec_free(&x);
    return CAD_OK;
}

/* Runs marked running by a runner that is gone. A Slurm job (its attempt has a slurm_jobs row)
 * lives on without the runner: it is re-attached. A local run died with its runner: whatever is
 * left of it is killed, it is marked interrupted; then every interrupted run is requeued
 * (attempt count kept). */
static int recover(runner *r, cad_err *e) {
    cad_run *runs = NULL;
    int n = 0;
    int rc = cad_db_list_runs(r->db, CAD_RUN_MASK(CAD_RUN_RUNNING), NULL, &runs, &n, e);
    if (rc) return rc;
    if (r->ex->ops->remote) rc = ensure_slots(r, n, e);
    for (int i = 0; i < n && !rc; i++) {
        cad_run *run = &runs[i];
        char reason[REASON_MAX];
        cad_slurm_job sj;
        int remote_job = 0, attached = 0;
        rc = cad_db_slurm_job_get(r->db, run->run_id, run->attempts, &sj, &remote_job, e);
        if (rc) break;
        cad_job job;
        memset(&job, 0, sizeof job);
        if (remote_job && r->ex != &r->slurm) {
            rc = cad_fail(e, CAD_ERR,
                          "run %s is running as Slurm job %s (a runner with --executor slurm "
                          "submitted it): start the runner with --executor slurm to re-attach, or "
                          "'caddie cancel %s' first", run->run_id, sj.job_id[0] ? sj.job_id : sj.job_name,
                          run->run_id);
            break;
        }
        cad_executor *ex = remote_job ? &r->slurm : &r->local;
        rc = ex->ops->reattach(ex, run, &job, &attached, reason, sizeof reason, e);
        if (rc) break;
        if (attached) {
            rc = adopt(r, run, &job, e);
            if (!rc) say(r, "recover %s: %s", run->run_id, reason);
            continue;
        }
        rc = cad_db_finish(r->db, run->run_id, CAD_RUN_INTERRUPTED, 0, 0, NULL, reason, e);
        if (!rc) say_run_json_lag(r);
        if (!rc) say(r, "recover %s: interrupted (%s)", run->run_id, reason);
    }
    cad_run_list_free(runs, n);
    if (rc) return rc;
    rc = cad_db_list_runs(r->db, CAD_RUN_MASK(CAD_RUN_INTERRUPTED), NULL, &runs, &n, e);
    if (rc) return rc;
    for (int i = 0; i < n && !rc; i++) {
        rc = cad_db_requeue(r->db, runs[i].run_id, 0, "requeued by caddie run after an interruption", e);
        if (!rc) say(r, "requeue %s (attempts so far: %d)", runs[i].run_id, runs[i].attempts);
    }
    cad_run_list_free(runs, n);
    return rc;
}

/* ---- the loop --------------------------------------------------------------------------- */

/* Ask the executor how every running run's job is (a remote one at most every
 * REMOTE_POLL_EVERY_S: each asks the cluster's controller). */
static int poll_jobs(runner *r, cad_err *e) {
    double now = cad_proc_now_mono();
    if (r->ex->ops->remote && now - r->last_remote_poll < REMOTE_POLL_EVERY_S) return CAD_OK;
    r->last_remote_poll = now;
    cad_job **jobs = calloc((size_t)r->nslots + 1, sizeof *jobs);
    if (!jobs) return cad_fail(e, CAD_ENOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < r->nslots; i++)
        if (r->slots[i].used) jobs[n++] = &r->slots[i].job;
    int rc = r->ex->ops->poll(r->ex, jobs, n, e);
    free(jobs);
    return rc;
}

static void fmt_hms(double s, char *buf, size_t cap) {
    long t = s < 0 ? 0 : (long)(s + 0.5);
    snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

static void status_line(runner *r, int nqueued, double eta_s) {
    int running = 0;
    for (int i = 0; i < r->nslots; i++) running += r->slots[i].used;
    int counts[CAD_RUN_NSTATUS] = {0};
    cad_err e = {0};
    cad_db_count_by_status(r->db, NULL, counts, &e);
    char eta[32], line[STATUS_LINE_MAX], cancelled[48] = "";
    fmt_hms(eta_s, eta, sizeof eta);
    if (counts[CAD_RUN_CANCELLED]) /* short line: it must fit a terminal to be redrawn */
        snprintf(cancelled, sizeof cancelled, " · cancelled %d", counts[CAD_RUN_CANCELLED]);
    snprintf(line, sizeof line, "running %d · queued %d · done %d · failed %d%s · ETA %s%s",
             running, nqueued, counts[CAD_RUN_DONE], counts[CAD_RUN_FAILED], cancelled, eta,
             r->stopping ? " · stopping" : "");
    double now = cad_proc_now_mono();
    if (r->o->tty) {
        int len = (int)strlen(line);
        fprintf(r->o->out, "\r%s%*s", line, r->status_line_len > len ? r->status_line_len - len : 0,
                "");
        r->status_line_len = len > r->status_line_len ? len : r->status_line_len;
        fflush(r->o->out);
    } else if (now - r->last_plain_status >= 60) {
        r->last_plain_status = now;
        say(r, "status  %s", line);
    }
}

static int tick_slots(runner *r, cad_err *e) {
    int rc = poll_jobs(r, e);
    if (rc) return rc;
    double now = cad_proc_now_mono();
    for (int i = 0; i < r->nslots; i++) {
        slot *s = &r->slots[i];
        if (!s->used) continue;
        cad_job *j = &s->job;
        if (j->phase != CAD_JOB_ENDED && s->stop == STOP_NONE) {
            char st[STATUS_TEXT_MAX];
            rc = db_status(r, s->run_id, st, sizeof st, e);
            if (rc) return rc;
            if (strcmp(st, "running") != 0)
                stop_slot(r, s, STOP_CANCEL, st[0] ? "cancelled" : "run deleted from the DB");
        }
        /* the timeout counts from when the job runs, not from a wait in a cluster's queue */
        if (j->phase == CAD_JOB_RUNNING && s->stop == STOP_NONE && s->timeout_s > 0 &&
            now - j->running_since > s->timeout_s) {
            char why[REASON_MAX];
            snprintf(why, sizeof why, "timeout after %.0fs", s->timeout_s);
            stop_slot(r, s, STOP_TIMEOUT, why);
        }
        if (j->term_at && !j->kill_at && j->phase != CAD_JOB_ENDED &&
            now - j->term_at >= r->o->grace_s) {
            j->kill_at = now;
            char said[CAD_JOB_DETAIL_MAX];
            r->ex->ops->signal(r->ex, j, 1, said, sizeof said);
            say(r, "kill    %s: still alive %.1fs after TERM (%s)", s->run_id, r->o->grace_s, said);
        }
        if (j->phase == CAD_JOB_ENDED) {
            rc = finish_slot(r, s, e);
            slot_release(r, s);
            r->n_finished++;
            if (rc) return rc;
        }
    }
    return CAD_OK;
}

static int nproc_online(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* The device slots of this runner, from the options; a remote executor has one slot per job it
 * may have in the cluster at once (--max-jobs). */
static int runner_devices(runner *r, const cad_runner_opts *o, cad_err *e) {
    if (o->executor && strcmp(o->executor, "local") != 0) {
        if (strcmp(o->executor, "slurm") != 0)
            return cad_fail(e, CAD_EUSAGE, "--executor '%s': expected local or slurm", o->executor);
        if (o->max_jobs < 1)
            return cad_fail(e, CAD_EUSAGE, "--max-jobs %d: expected at least 1", o->max_jobs);
        r->all = 0;
        r->nslots = o->max_jobs;
        return CAD_OK;
    }
    if (o->cpu_slots > 0) {
        if (o->cpu_slots > CAD_SCHED_MAX_DEVICES)
            return cad_fail(e, CAD_EUSAGE, "--cpu-slots %d: at most %d", o->cpu_slots,
                            CAD_SCHED_MAX_DEVICES);
        r->all = o->cpu_slots == 64 ? ~(cad_sched_devset)0
                                    : (((cad_sched_devset)1 << o->cpu_slots) - 1);
    } else {
        r->all = o->devices;
    }
    if (!r->all) return cad_fail(e, CAD_EUSAGE, "no devices to run on");
    r->nslots = cad_sched_devset_count(r->all);
    return CAD_OK;
}

/* What an executor has to say goes into the runner's log. */
static void executor_said(void *ctx, const char *msg) { say(ctx, "%s", msg); }

/* Everything after the lock: who and where we are, the DB, the executor, the slots. */
static int runner_open(runner *r, cad_err *e) {
    int rc = cad_proc_boot_id(r->boot_id, e);
    if (!rc) rc = cad_engine_self_exe(r->self_exe, sizeof r->self_exe, e);
    if (!rc) rc = cad_proc_become_subreaper(e);
    gethostname(r->host, sizeof r->host - 1);
    if (!rc) rc = cad_db_open(r->o->db_path, 0, &r->db, e);
    /* the end of a run is recorded even when its run dir is full (db.h) */
    if (!rc) cad_db_set_run_json_lenient(r->db, 1);
    if (!rc) rc = cad_executor_local(r->o->grace_s, &r->local, e);
    r->local.warn = executor_said;
    r->local.warn_ctx = r;
    r->ex = &r->local;
    if (!rc && r->o->executor && strcmp(r->o->executor, "slurm") == 0) {
        cad_slurm_opts so = {r->o->partition, r->o->gres, r->o->cpu_threads, r->o->grace_s, r->db,
                             r->o->gpus_per_node};
        rc = cad_executor_slurm(&so, &r->slurm, e);
        r->slurm.warn = executor_said;
        r->slurm.warn_ctx = r;
        if (!rc) r->ex = &r->slurm;
    }
    r->slots = calloc((size_t)r->nslots, sizeof *r->slots);
    if (!rc && !r->slots) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    return rc;
}

static void say_hello(runner *r) {
    const cad_runner_opts *o = r->o;
    char devs[DEVICES_TEXT_MAX];
    cad_sched_devset_format(r->all, devs, sizeof devs);
    if (r->ex->ops->remote)
        say(r, "runner  pid %d on %s: Slurm executor, up to %d jobs, partition %s, %s, db %s",
            (int)getpid(), r->host, r->nslots, o->partition ? o->partition : "(default)",
            o->gres ? o->gres : "CPU runs (no --gres)", o->db_path);
    else if (o->cpu_slots)
        say(r, "runner  pid %d on %s: %d cpu slot%s x %d thread%s (%d cores), db %s",
            (int)getpid(), r->host, o->cpu_slots, o->cpu_slots == 1 ? "" : "s", o->cpu_threads,
            o->cpu_threads == 1 ? "" : "s", nproc_online(), o->db_path);
    else
        say(r, "runner  pid %d on %s: GPUs %s, db %s", (int)getpid(), r->host, devs, o->db_path);
}

/* SIGINT/SIGTERM/SIGHUP: the first stops launching and TERMs every run; the second KILLs. */
static void on_signal(runner *r, int sig, int *second_signal) {
    if (!r->stopping && r->ex->ops->remote) {
        /* the jobs do not need the runner: leave them, the next runner re-attaches */
        r->stopping = 1;
        r->stop_signal = sig;
        const char *name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP";
        int n = 0;
        for (int i = 0; i < r->nslots; i++)
            if (r->slots[i].used) {
                n++;
                slot_release(r, &r->slots[i]);
            }
        say(r, "runner  got %s: no new runs; %d %s job%s left running (the next 'caddie run "
               "--executor %s' re-attaches)", name, n, r->ex->ops->name, n == 1 ? "" : "s",
            r->ex->ops->name);
    } else if (!r->stopping) {
        r->stopping = 1;
        r->stop_signal = sig;
        const char *name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP";
        say(r, "runner  got %s: no new runs; stopping the running ones", name);
        char why[REASON_MAX];
        snprintf(why, sizeof why, "runner stopped by %s", name);
        for (int i = 0; i < r->nslots; i++)
            if (r->slots[i].used) stop_slot(r, &r->slots[i], STOP_SHUTDOWN, why);
    } else if (!*second_signal) {
        *second_signal = 1;
        say(r, "runner  second signal: KILL to every run");
        for (int i = 0; i < r->nslots; i++)
            if (r->slots[i].used) {
                char said[CAD_JOB_DETAIL_MAX];
                r->ex->ops->signal(r->ex, &r->slots[i].job, 1, said, sizeof said);
                r->slots[i].job.kill_at = cad_proc_now_mono();
            }
    }
}

/* The loop, until stopped and empty (or, with until_empty, nothing runnable is left). */
static int runner_loop(runner *r, const sigset_t *sigs, cad_err *e) {
    const cad_runner_opts *o = r->o;
    int rc = CAD_OK, second_signal = 0, first = 1, seen_finished = 0, runnable = 0, nqueued = 0;
    double last_read = 0, eta = 0;
    while (!rc) {
        rc = ingest_tick(r, e);
        if (!rc) rc = tick_slots(r, e);
        if (rc) break;
        /* the queue is read when a run ended (devices freed) or every QUEUE_READ_EVERY_S
         * (new runs queued, cancels): not every tick, it can hold thousands of runs */
        double now = cad_proc_now_mono();
        if (first || r->n_finished != seen_finished || now - last_read >= QUEUE_READ_EVERY_S) {
            /* greedy sweeps first: a round that just ended queues the next before the pick */
            if (!r->stopping) rc = greedy_tick(r, e);
            if (!rc) rc = schedule(r, &runnable, &nqueued, &eta, e);
            if (rc) break;
            first = 0;
            seen_finished = r->n_finished;
            last_read = now;
        }
        int running = 0;
        for (int i = 0; i < r->nslots; i++) running += r->slots[i].used;
        if (running == 0 && (r->stopping || (o->until_empty && runnable == 0))) break;
        status_line(r, nqueued, eta);
        struct timespec ts;
        ts.tv_sec = (time_t)o->poll_s;
        ts.tv_nsec = (long)((o->poll_s - (double)ts.tv_sec) * 1e9);
        siginfo_t info;
        int sig = sigtimedwait(sigs, &info, &ts);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) on_signal(r, sig, &second_signal);
    }
    if (!rc && r->fatal[0])
        rc = cad_fail(e, CAD_EIO,
                      "stopped: %s (free space, then 'caddie retry' the failed run; the "
                      "interrupted and queued ones start with the next 'caddie run')",
                      r->fatal);
    return rc;
}

/* Wait (polling the executor about every running job: a local poll reaps whichever child
 * ended) until the slot's job ended or secs passed; 1 if it ended. */
static int wait_job_end(runner *r, slot *s, double secs) {
    double until = cad_proc_now_mono() + secs;
    cad_job **jobs = calloc((size_t)r->nslots + 1, sizeof *jobs);
    if (!jobs) return 0;
    int n = 0;
    for (int i = 0; i < r->nslots; i++)
        if (r->slots[i].used) jobs[n++] = &r->slots[i].job;
    for (;;) {
        cad_err pe = {0};
        r->ex->ops->poll(r->ex, jobs, n, &pe);
        if (s->job.phase == CAD_JOB_ENDED) {
            free(jobs);
            return 1;
        }
        if (cad_proc_now_mono() > until) {
            free(jobs);
            return 0;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* TERM, KILL after the grace, and wait for the end (a local run on the runner's way out). */
static void stop_and_wait(runner *r, slot *s) {
    char said[CAD_JOB_DETAIL_MAX];
    r->ex->ops->signal(r->ex, &s->job, 0, said, sizeof said);
    if (!wait_job_end(r, s, r->o->grace_s)) {
        r->ex->ops->signal(r->ex, &s->job, 1, said, sizeof said);
        wait_job_end(r, s, 5);
    }
}

/* After the loop: on an error no local engine is left running unsupervised, and its runs are
 * marked interrupted when the DB still takes it (else they stay `running` and the next
 * runner recovers them: pid gone -> interrupted -> requeued); Slurm jobs are left to the
 * next runner, which re-attaches. Then every resource goes. */
static void runner_close(runner *r, int rc, const cad_err *e) {
    const cad_runner_opts *o = r->o;
    if (rc) {
        char why[REASON_MAX];
        snprintf(why, sizeof why, "runner stopped on an error: %.960s", e->msg);
        if (r->db) cad_db_rollback(r->db);
        for (int i = 0; r->ex && r->ex->ops && !r->ex->ops->remote && i < r->nslots; i++)
            if (r->slots[i].used) {
                slot *s = &r->slots[i];
                stop_and_wait(r, s);
                cad_err fe = {0};
                if (r->db &&
                    cad_db_set_status_from(r->db, s->run_id, CAD_RUN_RUNNING,
                                           CAD_RUN_INTERRUPTED, why, &fe) == CAD_OK)
                    say(r, "interrupted %s: %s", s->run_id, why);
            }
    }
    if (r->status_line_len) fputc('\n', o->out);
    if (!rc) {
        char stopped[64] = "";
        if (r->n_stopped) snprintf(stopped, sizeof stopped, ", %d stopped early", r->n_stopped);
        say(r, "runner  exit: %d started, %d done, %d failed%s this session", r->n_started,
            r->n_done, r->n_failed, stopped);
    }
    for (int i = 0; r->slots && i < r->nslots; i++)
        if (r->slots[i].used) slot_release(r, &r->slots[i]);
    free(r->slots);
    for (int i = 0; i < r->nwarned; i++) free(r->warned[i]);
    free(r->warned);
    if (r->slurm.ops) r->slurm.ops->destroy(&r->slurm);
    if (r->local.ops) r->local.ops->destroy(&r->local);
    if (r->db) cad_db_close(r->db);
}

int cad_runner_run(const cad_runner_opts *o, int *stop_signal, cad_err *e) {
    *stop_signal = 0;
    runner R;
    memset(&R, 0, sizeof R);
    runner *r = &R;
    r->o = o;
    int rc = runner_devices(r, o, e);
    if (rc) return rc;
    int lock_fd[2] = {-1, -1};
    rc = lock_take(o->db_path, lock_fd, e);
    if (rc) return rc;
    rc = runner_open(r, e);
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGCHLD);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &sigs, &old);
    /* a closed stdout (caddie run | head) must not kill the runner and orphan its runs */
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
    if (!rc) say_hello(r);
    if (!rc) rc = recover(r, e);
    if (!rc) rc = runner_loop(r, &sigs, e);
    runner_close(r, rc, e);
    sigprocmask(SIG_SETMASK, &old, NULL);
    signal(SIGPIPE, old_pipe);
    close(lock_fd[1]);
    close(lock_fd[0]);
    *stop_signal = r->stop_signal;
    return rc;
}

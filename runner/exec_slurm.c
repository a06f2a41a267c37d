/*
 * exec_slurm.c — the Slurm executor (runner/executor.h): each run one Slurm job, runs of one
 * shape (devices, time limit) submitted together as one job array.
 *
 * What a job runs is <run_dir>/job.sh, written here: the run's environment additions and argv,
 * each value single-quoted (nothing in a value is interpreted by the shell), its output into the
 * run's capture file, and at the end "exit N" into <run_dir>/job.exit. The run dir lives on the
 * filesystem the submitting host shares with the nodes, so it is the truth: the runner tails it
 * as for a local run and reads the exit code from it. Slurm is asked only what it alone knows:
 * whether a job waits, runs, or ended without the script's say (cancelled, time limit,
 * preempted, node failure, out of memory) — squeue while the controller remembers the job, then
 * the jobcomp file (jobcomp/filetxt) or sacct (with accounting).
 *
 * Crash safety: the job name and array index of each run are recorded in the DB (slurm_jobs)
 * BEFORE sbatch runs, the job id right after it answered; a runner killed in between finds the
 * job again by name. So a restarted runner re-attaches and never submits a run twice.
 * Slurm is told --no-requeue: retries are the runner's (each attempt archived, counted).
 * Not here: the queue, the state machine, ingestion (runner/runner.c); the SQL (db/runs.c).
 */
#include "runner/executor.h"

#include "db/runs.h"
#include "engine/fsutil.h"
#include "runner/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CMD_TIMEOUT_S 60.0       /* a Slurm command that hangs longer is taken as failed */
#define CMD_OUT_MAX (64u << 20)  /* squeue output kept at most (a huge cluster's queue) */
#define EXIT_WAIT_S 60.0         /* how long an ended job's job.exit may take to appear (NFS
                                  * attribute caches hold a missing file that long) */
#define ARRAY_MAX 1000           /* tasks per array: Slurm's default MaxArraySize is 1001 */

typedef struct slurm_impl {
    cad_slurm_opts o;
    char *partition, *gres;
    char jobcomp_path[PATH_MAX]; /* "" unless JobCompType=jobcomp/filetxt */
    int accounting;              /* AccountingStorageType is not accounting_storage/none */
    unsigned seq;                /* arrays submitted by this runner */
    int warned_squeue;           /* said once that squeue failed, until it answers again */
} slurm_impl;

/* ---- running a Slurm command -------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static int buf_add(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

/* Run argv (PATH lookup, no shell) with `in` on its stdin, its stdout into *out and stderr into
 * *err (malloc'd, NUL-terminated), at most CMD_TIMEOUT_S. *status: the exit code, or -1 when
 * it did not exit normally (signal, timeout). CAD_ERR only when it could not be run at all. */
static int run_cmd(char *const argv[], const char *in, char **out, char **err, int *status,
                   cad_err *e) {
    *out = *err = NULL;
    *status = -1;
    int pin[2], pout[2], perr[2];
    if (pipe2(pin, O_CLOEXEC) != 0) return cad_fail(e, CAD_ERR, "pipe: %s", strerror(errno));
    if (pipe2(pout, O_CLOEXEC) != 0) {
        close(pin[0]);
        close(pin[1]);
        return cad_fail(e, CAD_ERR, "pipe: %s", strerror(errno));
    }
    if (pipe2(perr, O_CLOEXEC) != 0) {
        close(pin[0]);
        close(pin[1]);
        close(pout[0]);
        close(pout[1]);
        return cad_fail(e, CAD_ERR, "pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        int err_no = errno;
        for (int k = 0; k < 2; k++) {
            close(pin[k]);
            close(pout[k]);
            close(perr[k]);
        }
        return cad_fail(e, CAD_ERR, "fork for %s: %s", argv[0], strerror(err_no));
    }
    if (pid == 0) {
        /* the runner blocks and ignores signals it takes synchronously: not for this child */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    buf bo = {0}, be = {0};
    size_t in_len = in ? strlen(in) : 0, in_off = 0;
    if (!in_len) {
        close(pin[1]);
        pin[1] = -1;
    } else {
        fcntl(pin[1], F_SETFL, O_NONBLOCK);
    }
    double until = cad_proc_now_mono() + CMD_TIMEOUT_S;
    int open_out = 1, open_err = 1, oom = 0;
    while (open_out || open_err) {
        struct pollfd fds[3];
        int nf = 0;
        int io = -1, ie = -1, ii = -1;
        if (open_out) { fds[nf] = (struct pollfd){pout[0], POLLIN, 0}; io = nf++; }
        if (open_err) { fds[nf] = (struct pollfd){perr[0], POLLIN, 0}; ie = nf++; }
        if (pin[1] >= 0) { fds[nf] = (struct pollfd){pin[1], POLLOUT, 0}; ii = nf++; }
        double left = until - cad_proc_now_mono();
        if (left <= 0) break;
        int pr = poll(fds, (nfds_t)nf, (int)(left * 1000) + 1);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) continue;
        char tmp[65536];
        if (io >= 0 && fds[io].revents) {
            ssize_t k = read(pout[0], tmp, sizeof tmp);
            if (k > 0 && bo.n < CMD_OUT_MAX) oom |= buf_add(&bo, tmp, (size_t)k);
            if (k == 0 || (k < 0 && errno != EINTR)) open_out = 0;
        }
        if (ie >= 0 && fds[ie].revents) {
            ssize_t k = read(perr[0], tmp, sizeof tmp);
            if (k > 0 && be.n < CMD_OUT_MAX) oom |= buf_add(&be, tmp, (size_t)k);
            if (k == 0 || (k < 0 && errno != EINTR)) open_err = 0;
        }
        if (ii >= 0 && fds[ii].revents) {
            ssize_t k = write(pin[1], in + in_off, in_len - in_off);
            if (k > 0) in_off += (size_t)k;
            if ((k < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) {
                close(pin[1]);
                pin[1] = -1;
            }
        }
    }
    if (pin[1] >= 0) close(pin[1]);
    close(pout[0]);
    close(perr[0]);
    int timed_out = open_out || open_err;
    if (timed_out) kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (!timed_out && WIFEXITED(st)) *status = WEXITSTATUS(st);
    if (oom) {
        free(bo.p);
        free(be.p);
        return cad_fail(e, CAD_ENOMEM, "out of memory reading %s", argv[0]);
    }
    if (!bo.p) buf_add(&bo, "", 0);
    if (!be.p) buf_add(&be, "", 0);
    if (timed_out && be.p) {
        char note[96];
        snprintf(note, sizeof note, "%s%s did not answer within %.0f s", be.n ? "; " : "",
                 argv[0], CMD_TIMEOUT_S);
        buf_add(&be, note, strlen(note));
    }
    *out = bo.p;
    *err = be.p;
    return CAD_OK;
}

/* The first line of s into dst (for messages). */
static void first_line(char *dst, size_t cap, const char *s) {
    size_t n = strcspn(s ? s : "", "\n");
    if (n >= cap) n = cap - 1;
    memcpy(dst, s ? s : "", n);
    dst[n] = 0;
}

/* ---- quoting and the job script ----------------------------------------------------------- */

char *cad_shell_quote(const char *s) {
    size_t n = 3;
    for (const char *c = s; *c; c++) n += *c == '\'' ? 4 : 1;
    char *q = malloc(n);
    if (!q) return NULL;
    char *w = q;
    *w++ = '\'';
    for (const char *c = s; *c; c++) {
        if (*c == '\'') {
            memcpy(w, "'\\''", 4);
            w += 4;
        } else {
            *w++ = *c;
        }
    }
    *w++ = '\'';
    *w = 0;
    return q;
}

/* Write one single-quoted value. */
static int put_quoted(FILE *f, const char *s) {
    char *q = cad_shell_quote(s);
    if (!q) return -1;
    fputs(q, f);
    free(q);
    return 0;
}

static int shell_name_ok(const char *s, size_t n) {
    if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* With --gpus-per-node G: the nodes a data-parallel caddie run (`caddie launch --nproc N
 * train ...`, sweep/plan.c's recipe) spans, ceil(N / G); 0 for any other run (one node, as
 * before); -1 when N is not a multiple of G (the ranks would not fill the nodes evenly). */
static int run_nodes(const slurm_impl *S, const cad_job_spec *sp) {
    char *const *a = sp->x->argv;
    int g = S->o.gpus_per_node;
    if (g <= 0 || !S->gres || !a[0] || !a[1] || strcmp(a[1], "launch") || !a[2] || strcmp(a[2], "--nproc") ||
        !a[3] || !a[4])
        return 0;
    int n = atoi(a[3]);
    if (n < 1) return 0;
    return n % g ? -1 : n / g;
}

/* <run_dir>/job.sh for one run: why gets the reason when it cannot be written. nodes > 0: the
 * run's launch goes through srun, one per node (run_nodes), --nproc per_node each. */
static int write_job_script(const cad_job_spec *sp, const char *job_name, int index, int nodes, int per_node,
                            char *why, size_t cap) {
    for (char **p = sp->x->envp; p && *p; p++) {
        const char *eq = strchr(*p, '=');
        if (!eq || !shell_name_ok(*p, (size_t)(eq - *p))) {
            snprintf(why, cap, "environment entry '%.200s' is not NAME=value with a shell variable "
                               "name: a Slurm job script cannot export it", *p);
            return -1;
        }
    }
    char path[PATH_MAX + 16], tmp[PATH_MAX + 32], exitp[PATH_MAX + 16], exitt[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/job.sh", sp->run_dir);
    snprintf(tmp, sizeof tmp, "%s/job.sh.tmp", sp->run_dir);
    snprintf(exitp, sizeof exitp, "%s/job.exit", sp->run_dir);
    snprintf(exitt, sizeof exitt, "%s/job.exit.tmp", sp->run_dir);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(why, cap, "%.400s: cannot write: %s", tmp, strerror(errno));
        return -1;
    }
    int bad = 0;
    fprintf(f, "#!/bin/sh\n# job.sh: run %s, attempt %d, written by `caddie run --executor slurm`;\n"
               "# Slurm starts it as task %d of the array %s. Every value is single-quoted: the\n"
               "# shell interprets none of it. At the end \"exit N\" goes into job.exit.\n",
            sp->run_id, sp->attempt, index, job_name);
    fputs(sp->append ? "exec </dev/null >>" : "exec </dev/null >", f);
    bad |= put_quoted(f, sp->x->capture_path);
    fputs(" 2>&1\nunset rc\n", f);
    for (char **p = sp->x->envp; p && *p; p++) {
        const char *eq = strchr(*p, '=');
        fprintf(f, "export %.*s=", (int)(eq - *p), *p);
        bad |= put_quoted(f, eq + 1);
        fputc('\n', f);
    }
    if (sp->x->cwd) {
        fputs("cd ", f);
        bad |= put_quoted(f, sp->x->cwd);
        fputs(" || { echo \"caddie: cannot enter the working directory\" >&2; rc=127; }\n", f);
    }
    fputs("if [ -z \"${rc:-}\" ]; then\n   ", f);
    if (nodes > 0) {
        /* one launch per node (srun), each with its node's index from SLURM_NODEID, meeting at
         * the first node on a port derived from the job id (array tasks differ) */
        fprintf(f, " head=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
                   "    srun --nodes=%d --ntasks-per-node=1 --kill-on-bad-exit=1 ", nodes);
        bad |= put_quoted(f, sp->x->argv[0]);
        fprintf(f, " launch --nproc %d --nnodes %d --master \"$head:$((29500 + ${SLURM_JOB_ID:-0} %% 20000))\"",
                per_node, nodes);
    }
    for (int i = nodes > 0 ? 4 : 0; sp->x->argv[i]; i++) {
        fputc(' ', f);
        bad |= put_quoted(f, sp->x->argv[i]);
    }
    fputs("\n    rc=$?\nfi\nprintf 'exit %d\\n' \"$rc\" >", f);
    bad |= put_quoted(f, exitt);
    fputs(" && mv -f ", f);
    bad |= put_quoted(f, exitt);
    fputc(' ', f);
    bad |= put_quoted(f, exitp);
    fputs("\nexit \"$rc\"\n", f);
    if (ferror(f)) bad = 1;
    int err_no = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        err_no = errno;
    }
    if (bad) {
        snprintf(why, cap, "%.400s: write failed: %s", tmp, strerror(err_no ? err_no : EIO));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(why, cap, "rename %.200s to %.200s: %s", tmp, path, strerror(errno));
        return -1;
    }
    /* a job.exit left by an earlier attempt must not say how this one ended */
    unlink(exitp);
    return 0;
}

/* ---- submit --------------------------------------------------------------------------------- */

/* Submit specs[idx[0..n-1]] (one shape) as one array; fills jobs, records names and ids. */
static int submit_array(cad_executor *x, const cad_job_spec *specs, const int *idx, int n,
                        cad_job *jobs, cad_err *e) {
    slurm_impl *S = x->impl;
    const cad_job_spec *first = &specs[idx[0]];
    char name[64];
    snprintf(name, sizeof name, "caddie-%lx-%x-%u", (unsigned long)time(NULL),
             (unsigned)getpid(), ++S->seq);
    static const char head[] = "#!/bin/sh\n# caddie: one array task per run; each runs the "
                               "job.sh in its run dir\ncase \"$SLURM_ARRAY_TASK_ID\" in\n";
    buf script = {0};
    int oom = buf_add(&script, head, strlen(head));
    /* the tasks are numbered 0..ok-1 over the runs whose job.sh could be written; the names
     * and indices are committed before sbatch runs (crash safety, see the top) */
    int ok = 0, nodes = run_nodes(S, first); /* the same for the whole array (slurm_submit) */
    int *task = calloc((size_t)n + 1, sizeof *task);
    int began = !cad_db_in_transaction(S->o.db);
    int rc = !task ? cad_fail(e, CAD_ENOMEM, "out of memory") : CAD_OK;
    if (!rc && began) rc = cad_db_begin(S->o.db, e);
    if (rc) {
        free(task);
        free(script.p);
        return rc;
    }
    for (int k = 0; k < n; k++) {
        const cad_job_spec *sp = &specs[idx[k]];
        cad_job *j = &jobs[idx[k]];
        task[k] = -1;
        if (nodes < 0) {
            snprintf(j->detail, sizeof j->detail, "devices %d is not a multiple of --gpus-per-node %d: the "
                     "ranks would not fill the nodes evenly", sp->ndev, S->o.gpus_per_node);
            j->start_failed = 1;
            continue;
        }
        if (write_job_script(sp, name, ok, nodes, S->o.gpus_per_node, j->detail, sizeof j->detail) != 0) {
            j->start_failed = 1;
            continue;
        }
        char path[PATH_MAX + 16], line[PATH_MAX * 4 + 64];
        snprintf(path, sizeof path, "%s/job.sh", sp->run_dir);
        char *q = cad_shell_quote(path);
        if (!q) {
            oom = 1;
            break;
        }
        snprintf(line, sizeof line, "%d) exec /bin/sh %s ;;\n", ok, q);
        free(q);
        oom |= buf_add(&script, line, strlen(line));
        rc = cad_db_slurm_job_record(S->o.db, sp->run_id, sp->attempt, name, ok, e);
        if (rc) break;
        task[k] = ok++;
    }
    if (began) {
        if (rc) cad_db_rollback(S->o.db);
        else rc = cad_db_commit(S->o.db, e);
    }
    if (rc) {
        free(task);
        free(script.p);
        return rc;
    }
    const char *tail = "esac\necho \"caddie: no run for array task $SLURM_ARRAY_TASK_ID\" >&2\nexit 97\n";
    oom |= buf_add(&script, tail, strlen(tail));
    if (oom || !ok) {
        free(task);
        free(script.p);
        return oom ? cad_fail(e, CAD_ENOMEM, "out of memory writing a job script") : CAD_OK;
    }
    char a_name[96], a_array[48], a_part[300], a_gres[300], a_cpus[48], a_time[48], a_nodes[48];
    char *argv[16];
    int ac = 0;
    argv[ac++] = "sbatch";
    argv[ac++] = "--parsable";
    snprintf(a_name, sizeof a_name, "--job-name=%s", name);
    argv[ac++] = a_name;
    snprintf(a_array, sizeof a_array, "--array=0-%d", ok - 1);
    argv[ac++] = a_array;
    argv[ac++] = "--output=/dev/null"; /* each job.sh writes the run's own capture file */
    argv[ac++] = "--no-requeue";       /* retries are the runner's, each attempt archived */
    if (S->partition) {
        snprintf(a_part, sizeof a_part, "--partition=%s", S->partition);
        argv[ac++] = a_part;
    }
    int ndev = first->ndev < 1 ? 1 : first->ndev;
    if (nodes > 0) { /* each node: its share of the devices, one task (the node's launch) */
        snprintf(a_nodes, sizeof a_nodes, "--nodes=%d", nodes);
        argv[ac++] = a_nodes;
        argv[ac++] = "--ntasks-per-node=1";
        ndev = S->o.gpus_per_node;
    }
    if (S->gres) {
        snprintf(a_gres, sizeof a_gres, "--gres=%s:%d", S->gres, ndev);
        argv[ac++] = a_gres;
    }
    snprintf(a_cpus, sizeof a_cpus, "--cpus-per-task=%d", ndev * (S->o.threads > 0 ? S->o.threads : 1));
    argv[ac++] = a_cpus;
    if (first->timeout_s > 0) {
        /* a backstop for when no runner watches: the runner's own timeout comes first */
        double mins = ceil((first->timeout_s + S->o.grace_s) / 60.0) + 1;
        snprintf(a_time, sizeof a_time, "--time=%.0f", mins);
        argv[ac++] = a_time;
    }
    argv[ac] = NULL;
    char *out = NULL, *err = NULL;
    int status = -1;
    cad_err ce = {0};
    rc = run_cmd(argv, script.p, &out, &err, &status, &ce);
    free(script.p);
    char why[CAD_JOB_DETAIL_MAX] = "";
    long long job = -1;
    if (rc) {
        snprintf(why, sizeof why, "sbatch: %.400s", ce.msg);
    } else if (status != 0) {
        char l1[400];
        first_line(l1, sizeof l1, err && err[0] ? err : out);
        snprintf(why, sizeof why, "sbatch %s: %s (exit %d)", a_array, l1[0] ? l1 : "failed", status);
    } else {
        char *end = NULL;
        job = strtoll(out, &end, 10);
        if (!end || end == out || job <= 0 || (*end && *end != ';' && *end != '\n')) {
            char l1[200];
            first_line(l1, sizeof l1, out);
            snprintf(why, sizeof why, "sbatch printed '%s', expected a job id", l1);
            job = -1;
        }
    }
    free(out);
    free(err);
    if (rc == CAD_ENOMEM) {
        free(task);
        return cad_fail(e, CAD_ENOMEM, "%s", ce.msg);
    }
    if (began && (rc = cad_db_begin(S->o.db, e))) {
        free(task);
        return rc;
    }
    rc = CAD_OK;
    for (int k = 0; k < n && !rc; k++) {
        const cad_job_spec *sp = &specs[idx[k]];
        cad_job *j = &jobs[idx[k]];
        if (j->start_failed || task[k] < 0) continue;
        if (job < 0) {
            j->start_failed = 1;
            snprintf(j->detail, sizeof j->detail, "%s", why);
            continue;
        }
        snprintf(j->id, sizeof j->id, "%lld_%d", job, task[k]);
        j->phase = CAD_JOB_WAITING;
        rc = cad_db_slurm_job_set_id(S->o.db, sp->run_id, sp->attempt, j->id, e);
    }
    free(task);
    if (began) {
        if (rc) cad_db_rollback(S->o.db);
        else rc = cad_db_commit(S->o.db, e);
    }
    return rc;
}

/* Runs of one shape (device count, timeout, nodes) go into one array, at most ARRAY_MAX each. */
static int slurm_submit(cad_executor *x, const cad_job_spec *specs, int n, cad_job *jobs,
                        cad_err *e) {
    int *idx = calloc((size_t)n + 1, sizeof *idx);
    char *taken = calloc((size_t)n + 1, 1);
    if (!idx || !taken) {
        free(idx);
        free(taken);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    int rc = CAD_OK;
    for (int i = 0; i < n && !rc; i++) {
        if (taken[i]) continue;
        int m = 0;
        for (int k = i; k < n && m < ARRAY_MAX; k++)
            if (!taken[k] && specs[k].ndev == specs[i].ndev &&
                specs[k].timeout_s == specs[i].timeout_s &&
                run_nodes(x->impl, &specs[k]) == run_nodes(x->impl, &specs[i])) {
                taken[k] = 1;
                idx[m++] = k;
            }
        rc = submit_array(x, specs, idx, m, jobs, e);
    }
    free(idx);
    free(taken);
    return rc;
}

/* ---- poll ------------------------------------------------------------------------------------- */

/* How the job script said it ended: 1 with *code when <run_dir>/job.exit holds "exit N". */
static int read_exit_file(const char *run_dir, int *code) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/job.exit", run_dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = fscanf(f, "exit %d", code) == 1;
    fclose(f);
    return ok;
}

/* The job ended with Slurm's `state`: fill the job's end from it and the run dir. */
static void end_with_state(cad_job *j, const char *state) {
    int code = 0;
    if (strcmp(state, "COMPLETED") == 0 || strcmp(state, "FAILED") == 0) {
        if (read_exit_file(j->run_dir, &code)) {
            j->phase = CAD_JOB_ENDED;
            if (code > 128 && code < 128 + 65) {
                j->end = CAD_JOB_SIGNALED; /* the shell's 128+N for a child killed by signal N */
                j->sig = code - 128;
            } else {
                j->end = CAD_JOB_EXITED;
                j->exit_code = code;
            }
            return;
        }
        double now = cad_proc_now_mono();
        if (j->exit_wait_since == 0) j->exit_wait_since = now;
        if (now - j->exit_wait_since < EXIT_WAIT_S) return;
        j->phase = CAD_JOB_ENDED;
        j->end = CAD_JOB_FAILED;
        snprintf(j->detail, sizeof j->detail,
                 "Slurm job %s %s but left no job.exit in %s: is the run dir on a filesystem the "
                 "compute node shares?", j->id, state, j->run_dir);
        return;
    }
    j->phase = CAD_JOB_ENDED;
    if (strcmp(state, "CANCELLED") == 0) {
        j->end = CAD_JOB_CANCELLED;
        snprintf(j->detail, sizeof j->detail, "Slurm job %s CANCELLED", j->id);
    } else if (strcmp(state, "TIMEOUT") == 0) {
        j->end = CAD_JOB_TIMEOUT;
        snprintf(j->detail, sizeof j->detail, "Slurm job %s hit its time limit (TIMEOUT)", j->id);
    } else if (strcmp(state, "OUT_OF_MEMORY") == 0) {
        j->end = CAD_JOB_FAILED;
        snprintf(j->detail, sizeof j->detail, "Slurm job %s ran out of memory (OUT_OF_MEMORY)", j->id);
    } else {
        /* PREEMPTED, NODE_FAIL, BOOT_FAIL, DEADLINE, REVOKED, or the job vanished */
        j->end = CAD_JOB_LOST;
        snprintf(j->detail, sizeof j->detail, "Slurm job %s %s", j->id, state);
    }
}

/* Apply a state Slurm reported for a job; 1 when the state was understood. */
static int apply_state(cad_job *j, const char *state) {
    static const char *const waiting[] = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD",
                                          "REQUEUE_FED", "RESV_DEL_HOLD", NULL};
    static const char *const running[] = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT",
                                          "RESIZING", "STOPPED", "SUSPENDED", NULL};
    static const char *const ended[] = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                        "OUT_OF_MEMORY", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL",
                                        "DEADLINE", "REVOKED", "SPECIAL_EXIT", NULL};
    for (int i = 0; waiting[i]; i++)
        if (strcmp(state, waiting[i]) == 0) {
            if (j->phase != CAD_JOB_RUNNING) j->phase = CAD_JOB_WAITING;
            return 1;
        }
    for (int i = 0; running[i]; i++)
        if (strcmp(state, running[i]) == 0) {
            if (j->phase != CAD_JOB_RUNNING) {
                j->phase = CAD_JOB_RUNNING;
                j->running_since = cad_proc_now_mono();
            }
            return 1;
        }
    for (int i = 0; ended[i]; i++)
        if (strcmp(state, ended[i]) == 0) {
            end_with_state(j, state);
            return 1;
        }
    return 0;
}

/* The value of " Key=" in a jobcomp line into dst ("" when absent). */
static void comp_field(const char *line, const char *key, char *dst, size_t cap) {
    dst[0] = 0;
    size_t kl = strlen(key);
    for (const char *p = line; (p = strstr(p, key)) != NULL; p += kl) {
        if ((p != line && p[-1] != ' ') || p[kl] != '=') continue;
        const char *v = p + kl + 1;
        size_t n = strcspn(v, " \n");
        if (n >= cap) n = cap - 1;
        memcpy(dst, v, n);
        dst[n] = 0;
        return;
    }
}

/* Find a job that squeue no longer lists in the jobcomp file: by id "A_T", or (id NULL) by
 * job name and array index. 1 with its state (and its id when found by name). */
static int jobcomp_find(const slurm_impl *S, const char *id, const char *name, int index,
                        char *state, size_t scap, char *id_out, size_t icap) {
    if (!S->jobcomp_path[0]) return 0;
    FILE *f = fopen(S->jobcomp_path, "r");
    if (!f) return 0;
    char *line = NULL;
    size_t cap = 0;
    int found = 0;
    char a[32], t[32], nm[128], st[64], jid[32], full[96];
    while (getline(&line, &cap, f) > 0) {
        comp_field(line, "ArrayJobId", a, sizeof a);
        comp_field(line, "ArrayTaskId", t, sizeof t);
        comp_field(line, "JobId", jid, sizeof jid);
        if (a[0] && t[0]) snprintf(full, sizeof full, "%s_%s", a, t);
        else snprintf(full, sizeof full, "%s", jid);
        int match;
        if (id) {
            match = strcmp(full, id) == 0;
        } else {
            comp_field(line, "Name", nm, sizeof nm);
            match = strcmp(nm, name) == 0 && t[0] && atoi(t) == index;
        }
        if (!match) continue;
        comp_field(line, "JobState", st, sizeof st);
        snprintf(state, scap, "%s", st);
        if (id_out) snprintf(id_out, icap, "%.60s", full);
        found = 1; /* the last line wins: the file only grows */
    }
    free(line);
    fclose(f);
    return found;
}

/* sacct's state of a job (with accounting): 1 with state ("CANCELLED by 0" -> "CANCELLED"). */
static int sacct_find(const slurm_impl *S, const char *id, char *state, size_t cap) {
    if (!S->accounting) return 0;
    char ja[96];
    snprintf(ja, sizeof ja, "--jobs=%s", id);
    char *argv[] = {"sacct", "-n", "-P", "-X", ja, "--format=JobID,State", NULL};
    char *out = NULL, *err = NULL;
    int status = -1, found = 0;
    cad_err ce = {0};
    if (run_cmd(argv, NULL, &out, &err, &status, &ce) == CAD_OK && status == 0) {
        for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
            char *bar = strchr(l, '|');
            if (!bar) continue;
            *bar = 0;
            if (strcmp(l, id) != 0) continue;
            size_t n = strcspn(bar + 1, " |");
            if (n >= cap) n = cap - 1;
            memcpy(state, bar + 1, n);
            state[n] = 0;
            found = 1;
        }
    }
    free(out);
    free(err);
    return found;
}

static void warn(cad_executor *x, const char *fmt, const char *a, const char *b) {
    if (!x->warn) return;
    char msg[1024];
    snprintf(msg, sizeof msg, fmt, a, b);
    x->warn(x->warn_ctx, msg);
}

/* squeue's view of every job of this user: lines "ID|STATE". NULL when squeue failed (said). */
static char *squeue_all(cad_executor *x, const char *name) {
    slurm_impl *S = x->impl;
    char na[96];
    char *argv[10];
    int ac = 0;
    argv[ac++] = "squeue";
    argv[ac++] = "--noheader";
    argv[ac++] = "--array";
    argv[ac++] = "--states=all";
    argv[ac++] = "--format=%i|%T";
    if (name) {
        snprintf(na, sizeof na, "--name=%s", name);
        argv[ac++] = na;
    } else {
        argv[ac++] = "--me";
    }
    argv[ac] = NULL;
    char *out = NULL, *err = NULL;
    int status = -1;
    cad_err ce = {0};
    if (run_cmd(argv, NULL, &out, &err, &status, &ce) != CAD_OK || status != 0) {
        if (!S->warned_squeue) {
            char l1[400];
            first_line(l1, sizeof l1, ce.msg[0] ? ce.msg : err);
            warn(x, "warning: squeue failed (%s%s); the Slurm jobs are left as they were until it "
                    "answers", l1, "");
            S->warned_squeue = 1;
        }
        free(out);
        free(err);
        return NULL;
    }
    S->warned_squeue = 0;
    free(err);
    return out;
}

/* The state squeue printed for id in its output, into state; 1 when listed. */
static int squeue_state(const char *listing, const char *id, char *state, size_t cap) {
    size_t il = strlen(id);
    for (const char *l = listing; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        if (n > il && strncmp(l, id, il) == 0 && l[il] == '|') {
            size_t sn = n - il - 1;
            if (sn >= cap) sn = cap - 1;
            memcpy(state, l + il + 1, sn);
            state[sn] = 0;
            return 1;
        }
        l = nl ? nl + 1 : l + n;
    }
    return 0;
}

static int slurm_poll(cad_executor *x, cad_job *const *jobs, int n, cad_err *e) {
    (void)e;
    slurm_impl *S = x->impl;
    int any = 0;
    for (int i = 0; i < n; i++) any |= jobs[i]->phase != CAD_JOB_ENDED && jobs[i]->id[0];
    if (!any) return CAD_OK;
    char *listing = squeue_all(x, NULL);
    if (!listing) return CAD_OK;
    for (int i = 0; i < n; i++) {
        cad_job *j = jobs[i];
        if (j->phase == CAD_JOB_ENDED || !j->id[0]) continue;
        char state[64];
        if (squeue_state(listing, j->id, state, sizeof state) ||
            jobcomp_find(S, j->id, NULL, 0, state, sizeof state, NULL, 0) ||
            sacct_find(S, j->id, state, sizeof state)) {
            if (!apply_state(j, state))
                warn(x, "warning: Slurm job %s is in state %s, which caddie does not know; "
                        "waiting for a state it knows", j->id, state);
            continue;
        }
        /* Slurm no longer knows it and keeps no record: the run dir may still say */
        int code = 0;
        if (read_exit_file(j->run_dir, &code)) end_with_state(j, "COMPLETED");
        else end_with_state(j, "VANISHED (squeue, sacct and the jobcomp file do not know it)");
    }
    free(listing);
    return CAD_OK;
}

/* ---- signal, reattach ------------------------------------------------------------------- */

static int scancel(const char *id, int hard, char *msg, size_t cap) {
    char *argv[] = {"scancel", hard ? "--signal=KILL" : NULL, NULL, NULL};
    char idbuf[CAD_JOB_ID_MAX];
    snprintf(idbuf, sizeof idbuf, "%s", id);
    if (hard) argv[2] = idbuf;
    else argv[1] = idbuf;
    char *out = NULL, *err = NULL;
    int status = -1;
    cad_err ce = {0};
    int rc = run_cmd(argv, NULL, &out, &err, &status, &ce);
    if (rc == CAD_OK && status != 0) {
        char l1[400];
        first_line(l1, sizeof l1, err);
        snprintf(msg, cap, "scancel %s: %s (exit %d)", id, l1, status);
        rc = CAD_ERR;
    } else if (rc) {
        snprintf(msg, cap, "scancel %s: %.400s", id, ce.msg);
    }
    free(out);
    free(err);
    return rc;
}

int cad_slurm_cancel(const char *job_id, cad_err *e) {
    char msg[CAD_ERRMSG_MAX];
    if (scancel(job_id, 0, msg, sizeof msg) != CAD_OK) return cad_fail(e, CAD_ERR, "%s", msg);
    return CAD_OK;
}

static void slurm_signal(cad_executor *x, cad_job *job, int hard, char *said, size_t cap) {
    (void)x;
    if (!job->id[0]) {
        snprintf(said, cap, "no Slurm job id yet");
        return;
    }
    char msg[512];
    if (scancel(job->id, hard, msg, sizeof msg) != CAD_OK) snprintf(said, cap, "%s", msg);
    else snprintf(said, cap, "scancel%s %s", hard ? " --signal=KILL" : "", job->id);
}

static int slurm_reattach(cad_executor *x, const cad_run *run, cad_job *job, int *attached,
                          char *why, size_t cap, cad_err *e) {
    slurm_impl *S = x->impl;
    *attached = 0;
    cad_slurm_job sj;
    int found = 0;
    int rc = cad_db_slurm_job_get(S->o.db, run->run_id, run->attempts, &sj, &found, e);
    if (rc) return rc;
    if (!found) {
        snprintf(why, cap, "previous runner died; attempt %d of the run has no Slurm job",
                 run->attempts);
        return CAD_OK;
    }
    if (!sj.job_id[0]) {
        /* the runner died between recording the job and sbatch's answer: find it by name */
        char *listing = squeue_all(x, sj.job_name);
        char state[64], id[CAD_JOB_ID_MAX] = "";
        if (!listing) return cad_fail(e, CAD_ERR, "squeue failed: cannot tell whether run %s "
                                                  "(job %s) was submitted; start the runner again "
                                                  "once Slurm answers", run->run_id, sj.job_name);
        for (char *l = listing; *l && !id[0];) {
            char *nl = strchr(l, '\n');
            if (nl) *nl = 0;
            char *us = strchr(l, '_');
            if (us && atoi(us + 1) == sj.array_index) {
                size_t n = strcspn(l, "|");
                if (n < sizeof id) {
                    memcpy(id, l, n);
                    id[n] = 0;
                }
            }
            l = nl ? nl + 1 : l + strlen(l);
        }
        free(listing);
        if (!id[0]) jobcomp_find(S, NULL, sj.job_name, sj.array_index, state, sizeof state, id,
                                 sizeof id);
        if (!id[0]) {
            snprintf(why, cap, "previous runner died while submitting it; Slurm has no job %s "
                               "task %d", sj.job_name, sj.array_index);
            return CAD_OK;
        }
        rc = cad_db_slurm_job_set_id(S->o.db, run->run_id, run->attempts, id, e);
        if (rc) return rc;
        snprintf(sj.job_id, sizeof sj.job_id, "%s", id);
    }
    snprintf(job->id, sizeof job->id, "%s", sj.job_id);
    job->phase = CAD_JOB_WAITING;
    *attached = 1;
    snprintf(why, cap, "re-attached to Slurm job %s", sj.job_id);
    return CAD_OK;
}

static void slurm_destroy(cad_executor *x) {
    slurm_impl *S = x->impl;
    if (S) {
        free(S->partition);
        free(S->gres);
    }
    free(S);
    x->impl = NULL;
}

static const cad_executor_ops slurm_ops = {
    "slurm", 1, slurm_submit, slurm_poll, slurm_signal, slurm_reattach, slurm_destroy,
};

/* ---- setup ------------------------------------------------------------------------------ */

/* The value of "Key = value" in `scontrol show config` output. */
static void config_value(const char *text, const char *key, char *dst, size_t cap) {
    dst[0] = 0;
    size_t kl = strlen(key);
    for (const char *l = text; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        if (n > kl && strncmp(l, key, kl) == 0 && (l[kl] == ' ' || l[kl] == '=')) {
            const char *v = l + kl;
            while (*v == ' ' || *v == '=') v++;
            size_t vn = n - (size_t)(v - l);
            if (vn >= cap) vn = cap - 1;
            memcpy(dst, v, vn);
            dst[vn] = 0;
            return;
        }
        l = nl ? nl + 1 : l + n;
    }
}

int cad_executor_slurm(const cad_slurm_opts *o, cad_executor *out, cad_err *e) {
    memset(out, 0, sizeof *out);
    slurm_impl *S = calloc(1, sizeof *S);
    if (!S) return cad_fail(e, CAD_ENOMEM, "out of memory");
    S->o = *o;
    S->partition = o->partition ? strdup(o->partition) : NULL;
    S->gres = o->gres ? strdup(o->gres) : NULL;
    if ((o->partition && !S->partition) || (o->gres && !S->gres)) {
        free(S->partition);
        free(S);
        return cad_fail(e, CAD_ENOMEM, "out of memory");
    }
    out->ops = &slurm_ops;
    out->impl = S;
    char *argv[] = {"scontrol", "show", "config", NULL};
    char *text = NULL, *err = NULL;
    int status = -1;
    cad_err ce = {0};
    int rc = run_cmd(argv, NULL, &text, &err, &status, &ce);
    if (rc == CAD_OK && status == 127) {
        char l1[400];
        first_line(l1, sizeof l1, err);
        rc = cad_fail(e, CAD_ERR, "--executor slurm: %s: are Slurm's client commands (slurm-client) "
                                  "installed and on PATH?", l1);
    } else if (rc == CAD_OK && status != 0) {
        char l1[400];
        first_line(l1, sizeof l1, err);
        rc = cad_fail(e, CAD_ERR, "--executor slurm: 'scontrol show config' failed: %s (exit %d); "
                                  "is Slurm's client configured here (SLURM_CONF) and slurmctld up?",
                      l1, status);
    } else if (rc) {
        rc = cad_fail(e, CAD_ERR, "--executor slurm: %.400s (is slurm-client installed?)", ce.msg);
    }
    if (!rc) {
        char type[128], loc[PATH_MAX], acct[128];
        config_value(text, "JobCompType", type, sizeof type);
        config_value(text, "JobCompLoc", loc, sizeof loc);
        config_value(text, "AccountingStorageType", acct, sizeof acct);
        if (strcmp(type, "jobcomp/filetxt") == 0 && loc[0] == '/')
            snprintf(S->jobcomp_path, sizeof S->jobcomp_path, "%s", loc);
        S->accounting = acct[0] && strcmp(acct, "accounting_storage/none") != 0;
    }
    free(text);
    free(err);
    if (rc) slurm_destroy(out);
    return rc;
}

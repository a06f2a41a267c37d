/*
 * exec_local.c — the local executor (runner/executor.h): each run is a process group on this
 * host, started with setsid and PR_SET_PDEATHSIG (runner/proc.h), watched by waitpid and by
 * looking for what is left of its group, stopped with killpg.
 * Jobs end with the runner (the kernel TERMs them when it dies), so reattach never adopts a
 * job: it makes sure nothing of the old one lives on (TERM, KILL after the grace) and says
 * what it found. Not here: device slots (runner/sched.h), argv/env (runner/engines.h).
 */
#include "runner/executor.h"

#include "runner/proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

typedef struct local_impl {
    double grace_s;
    char boot_id[CAD_PROC_BOOT_ID_LEN];
} local_impl;

static int local_submit(cad_executor *x, const cad_job_spec *specs, int n, cad_job *jobs,
                        cad_err *e) {
    (void)x;
    (void)e;
    for (int i = 0; i < n; i++) {
        const cad_job_spec *sp = &specs[i];
        cad_job *j = &jobs[i];
        cad_proc_spawn_opts po = {sp->x->argv, sp->x->envp, sp->x->cwd, sp->x->capture_path,
                                  sp->append};
        pid_t pid = 0;
        cad_err se = {0};
        if (cad_proc_spawn_group(&po, &pid, &se) != CAD_OK) {
            j->start_failed = 1;
            snprintf(j->detail, sizeof j->detail, "%.500s", se.msg);
            continue;
        }
        j->pid = (int)pid;
        snprintf(j->id, sizeof j->id, "%d", (int)pid);
        j->phase = CAD_JOB_RUNNING;
        j->running_since = cad_proc_now_mono();
    }
    return CAD_OK;
}

/* Reap every child that ended (runs' leaders, and orphans reparented to the runner as its
 * subreaper); an ended leader is the end of its job only once its whole group is gone: a
 * leftover (a torchrun worker, a data loader) gets TERM, and the runner KILLs after the grace. */
static int local_poll(cad_executor *x, cad_job *const *jobs, int n, cad_err *e) {
    (void)x;
    (void)e;
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (int i = 0; i < n; i++)
            if (jobs[i]->pid == pid && !jobs[i]->reaped) {
                jobs[i]->reaped = 1;
                jobs[i]->wait_status = st;
            }
    }
    for (int i = 0; i < n; i++) {
        cad_job *j = jobs[i];
        if (j->phase == CAD_JOB_ENDED || !j->reaped) continue;
        if (cad_proc_group_alive(j->pid)) {
            if (!j->term_at) {
                j->term_at = cad_proc_now_mono();
                cad_proc_group_signal(j->pid, SIGTERM);
            }
            continue;
        }
        j->phase = CAD_JOB_ENDED;
        if (WIFEXITED(j->wait_status)) {
            j->end = CAD_JOB_EXITED;
            j->exit_code = WEXITSTATUS(j->wait_status);
        } else {
            j->end = CAD_JOB_SIGNALED;
            j->sig = WTERMSIG(j->wait_status);
        }
    }
    return CAD_OK;
}

static void local_signal(cad_executor *x, cad_job *job, int hard, char *said, size_t cap) {
    (void)x;
    cad_proc_group_signal(job->pid, hard ? SIGKILL : SIGTERM);
    if (hard) snprintf(said, cap, "KILL to group %d", job->pid);
    else snprintf(said, cap, "TERM to process group %d", job->pid);
}

/* Wait (polling) until process group pgid is empty or `secs` passed; 1 if empty. */
static int wait_group_gone(int pgid, double secs) {
    double until = cad_proc_now_mono() + secs;
    while (cad_proc_group_alive(pgid)) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {} /* orphans reparented to us */
        if (cad_proc_now_mono() > until) return 0;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 1;
}

/* The runner that started the run is gone, and with it (PDEATHSIG) normally the run: kill
 * whatever is left — the process if it ignored the TERM (same pid, start time and boot id),
 * else leftovers of its group on this boot — and never adopt it. */
static int local_reattach(cad_executor *x, const cad_run *run, cad_job *job, int *attached,
                          char *why, size_t cap, cad_err *e) {
    (void)job;
    (void)e;
    local_impl *L = x->impl;
    *attached = 0;
    cad_proc_identity id = {0};
    id.pid = (int)run->pid;
    id.start_ticks = run->proc_start_time;
    snprintf(id.boot_id, sizeof id.boot_id, "%s", run->boot_id ? run->boot_id : "");
    int same_boot = run->boot_id && strcmp(run->boot_id, L->boot_id) == 0;
    /* claimed, then the runner died before recording a process (one it had started got its
     * PDEATHSIG) */
    if (run->pid <= 0) {
        snprintf(why, cap, "previous runner died before it recorded a process for the run");
        return CAD_OK;
    }
    if (run->pid > 1 && cad_proc_identity_alive(&id)) {
        if (x->warn) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "recover %s: its process %lld is still alive: TERM, KILL after %.1fs",
                     run->run_id, (long long)run->pid, L->grace_s);
            x->warn(x->warn_ctx, msg);
        }
        cad_proc_group_signal((int)run->pid, SIGTERM);
        if (!wait_group_gone((int)run->pid, L->grace_s)) {
            cad_proc_group_signal((int)run->pid, SIGKILL);
            wait_group_gone((int)run->pid, 5);
        }
        snprintf(why, cap, "previous runner died; its process %lld was still running and was killed",
                 (long long)run->pid);
        return CAD_OK;
    }
    /* the leader is gone; leftovers of its group (same boot only) go too */
    if (same_boot && run->pid > 1 && cad_proc_group_alive((int)run->pid)) {
        cad_proc_group_signal((int)run->pid, SIGKILL);
        wait_group_gone((int)run->pid, 5);
    }
    snprintf(why, cap, "previous runner died; process %lld is gone%s", (long long)run->pid,
             same_boot ? "" : " (machine rebooted)");
    return CAD_OK;
}

static void local_destroy(cad_executor *x) {
    free(x->impl);
    x->impl = NULL;
}

static const cad_executor_ops local_ops = {
    "local", 0, local_submit, local_poll, local_signal, local_reattach, local_destroy,
};

int cad_executor_local(double grace_s, cad_executor *out, cad_err *e) {
    memset(out, 0, sizeof *out);
    local_impl *L = calloc(1, sizeof *L);
    if (!L) return cad_fail(e, CAD_ENOMEM, "out of memory");
    L->grace_s = grace_s;
    int rc = cad_proc_boot_id(L->boot_id, e);
    if (rc) {
        free(L);
        return rc;
    }
    out->ops = &local_ops;
    out->impl = L;
    return CAD_OK;
}

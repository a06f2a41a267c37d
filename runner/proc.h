/*
 * proc.h — child processes for the runner: start one in its own process group, signal the
 * whole group, and recognise a process again after the runner itself died.
 *
 * A run is a process group (setsid): its leader is the engine (caddie train, torchrun,
 * python), and whatever it forks (torchrun workers, data loader workers) stays in the group,
 * so one killpg reaches all of them. A process is identified across runner restarts by
 * (pid, process start time in clock ticks since boot, boot id): a pid alone is reused, and
 * a start time alone means nothing after a reboot.
 * Not here: what to run (runner/engines.h), when to run it (runner/sched.h), the database.
 */
#ifndef CADDIE_PROC_H
#define CADDIE_PROC_H

#include "engine/status.h"

#include <sys/types.h>

#define CAD_PROC_BOOT_ID_LEN 64

/* Who a process is, stable across runner restarts (stored in the runs table). */
typedef struct cad_proc_identity {
    int pid;                         /* also the process group id: the leader called setsid */
    long long start_ticks;           /* field 22 of /proc/<pid>/stat */
    char boot_id[CAD_PROC_BOOT_ID_LEN];  /* /proc/sys/kernel/random/boot_id, no newline */
} cad_proc_identity;

/* The current boot id into out (CAD_PROC_BOOT_ID_LEN bytes). */
int cad_proc_boot_id(char *out, cad_err *e);

/* Start time of pid in clock ticks since boot; CAD_ERR (e filled) if pid does not exist. */
int cad_proc_start_ticks(int pid, long long *out, cad_err *e);

/* 1 when the process described by id is still running on this boot (same pid, same start
 * time, same boot id; a zombie counts as gone), else 0. */
int cad_proc_identity_alive(const cad_proc_identity *id);

/* 1 when a process that has not exited is left in process group pgid, else 0. Zombies
 * do not count: they run nothing, and one whose parent is a PID 1 that reaps late (or
 * never, in some containers) would otherwise keep a group "alive" forever. */
int cad_proc_group_alive(int pgid);

/* Send sig to every process of group pgid; ESRCH (group empty) is not an error. */
void cad_proc_group_signal(int pgid, int sig);

/* What cad_proc_spawn_group starts. */
typedef struct cad_proc_spawn_opts {
    char *const *argv;     /* argv[0] is looked up in PATH (execvpe); never a shell */
    char *const *envp;     /* complete environment of the child */
    const char *cwd;       /* working directory, NULL = the runner's */
    const char *out_path;  /* stdout and stderr both go here (created 0644) */
    int out_append;        /* 1: O_APPEND, 0: O_TRUNC */
} cad_proc_spawn_opts;

/* Fork + exec a new session/process group leader. The child gets stdin from /dev/null,
 * stdout+stderr into out_path, default signal dispositions, an empty signal mask, and
 * PR_SET_PDEATHSIG(SIGTERM), so a runner killed with -9 takes its engines down with it.
 * Returns CAD_OK with *pid_out once exec succeeded; when exec fails (binary not found,
 * not executable) returns CAD_ECHILD naming argv[0] and errno — the child is reaped. */
int cad_proc_spawn_group(const cad_proc_spawn_opts *o, pid_t *pid_out, cad_err *e);

/* Make this process the reaper of orphaned descendants (PR_SET_CHILD_SUBREAPER): a run's
 * grandchildren whose parent died are reparented to the runner, which reaps them, instead of
 * a PID 1 that may never reap (containers), leaving zombies that keep a group "alive". */
int cad_proc_become_subreaper(cad_err *e);

/* Monotonic seconds (CLOCK_MONOTONIC) and wall-clock seconds since the epoch. */
double cad_proc_now_mono(void);
double cad_proc_now_wall(void);

#endif

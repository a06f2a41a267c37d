/*
 * proc.c — process groups, process identity and spawning for the runner (see proc.h).
 * Linux only on purpose: /proc, prctl and setsid are what make a run killable as a whole
 * and recognisable after a crash. Not here: any policy about when to signal what.
 */
#include "runner/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int cad_proc_boot_id(char *out, cad_err *e) {
    const char *path = "/proc/sys/kernel/random/boot_id";
    FILE *f = fopen(path, "r");
    if (!f) return cad_fail(e, CAD_EIO, "%s: %s", path, strerror(errno));
    if (!fgets(out, CAD_PROC_BOOT_ID_LEN, f)) {
        fclose(f);
        return cad_fail(e, CAD_EIO, "%s: empty", path);
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = 0;
    return CAD_OK;
}

/* Read /proc/<pid>/stat and return the state letter and start time. The command name
 * (field 2) may hold spaces and ')', so fields are counted from the LAST ')'. */
static int stat_read(int pid, char *state, long long *start, cad_err *e) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cad_fail(e, CAD_ERR, "process %d: %s", pid, strerror(errno));
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return cad_fail(e, CAD_ERR, "process %d: unreadable %s", pid, path);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return cad_fail(e, CAD_EFORMAT, "%s: no ')' after the command name", path);
    p++;
    /* after ')': field 3 is the state, field 22 the start time -> token 1 and token 20 */
    char *save = NULL;
    int field = 2;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 3) *state = tok[0];
        if (field == 22) {
            *start = strtoll(tok, NULL, 10);
            return CAD_OK;
        }
    }
    return cad_fail(e, CAD_EFORMAT, "%s: fewer than 22 fields", path);
}

int cad_proc_start_ticks(int pid, long long *out, cad_err *e) {
    char state = 0;
    return stat_read(pid, &state, out, e);
}

int cad_proc_identity_alive(const cad_proc_identity *id) {
    if (id->pid <= 0) return 0;
    char boot[CAD_PROC_BOOT_ID_LEN];
    if (cad_proc_boot_id(boot, NULL) != CAD_OK || strcmp(boot, id->boot_id) != 0) return 0;
    char state = 0;
    long long start = -1;
    if (stat_read(id->pid, &state, &start, NULL) != CAD_OK) return 0;
    return start == id->start_ticks && state != 'Z' && state != 'X';
}

/* State letter and process group of pid from /proc/<pid>/stat (fields 3 and 5). */
static int stat_state_pgrp(const char *pid, char *state, long *pgrp) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    long ppid = 0;
    if (!p || sscanf(p + 1, " %c %ld %ld", state, &ppid, pgrp) != 3) return -1;
    return 0;
}

int cad_proc_group_alive(int pgid) {
    if (pgid <= 1) return 0;
    if (kill(-pgid, 0) != 0 && errno != EPERM) return 0; /* nobody left, not even zombies */
    /* someone is left: zombies do not count (their parent, perhaps a PID 1 that reaps
     * late, has not collected them yet, but they hold no GPU and run nothing) */
    DIR *d = opendir("/proc");
    if (!d) return 1;
    int alive = 0;
    struct dirent *de;
    while (!alive && (de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        char state = 0;
        long pgrp = 0;
        if (stat_state_pgrp(de->d_name, &state, &pgrp) == 0 && pgrp == pgid && state != 'Z' &&
            state != 'X')
            alive = 1;
    }
    closedir(d);
    return alive;
}

void cad_proc_group_signal(int pgid, int sig) {
    if (pgid > 1) kill(-pgid, sig); /* pgid <= 1 would signal the runner or everything */
}

int cad_proc_become_subreaper(cad_err *e) {
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        return cad_fail(e, CAD_ERR, "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
    return CAD_OK;
}

/* In the child between fork and exec: only async-signal-safe calls. On failure the errno
 * goes up the close-on-exec pipe so the parent can name the cause. */
static void child_exec(const cad_proc_spawn_opts *o, pid_t parent, int err_fd) {
    int err = 0;
    if (setsid() < 0) goto fail;
    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0) goto fail;
    if (getppid() != parent) _exit(128 + SIGTERM); /* the runner died before prctl */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++) sigaction(s, &dfl, NULL); /* fails harmlessly on KILL/STOP */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (o->cwd && chdir(o->cwd) != 0) goto fail;
    int in = open("/dev/null", O_RDONLY);
    if (in < 0) goto fail;
    int out = open(o->out_path, O_WRONLY | O_CREAT | (o->out_append ? O_APPEND : O_TRUNC), 0644);
    if (out < 0) goto fail;
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) goto fail;
    if (in > 2) close(in);
    if (out > 2) close(out);
    execvpe(o->argv[0], o->argv, o->envp);
fail:
    err = errno;
    if (write(err_fd, &err, sizeof err) < 0) { /* nothing more we can do */ }
    _exit(127);
}

int cad_proc_spawn_group(const cad_proc_spawn_opts *o, pid_t *pid_out, cad_err *e) {
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) return cad_fail(e, CAD_ECHILD, "pipe: %s", strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return cad_fail(e, CAD_ECHILD, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(pfd[0]);
        child_exec(o, parent, pfd[1]);
    }
    close(pfd[1]);
    int err = 0;
    ssize_t n;
    do n = read(pfd[0], &err, sizeof err);
    while (n < 0 && errno == EINTR);
    close(pfd[0]);
    if (n == (ssize_t)sizeof err) { /* exec failed: the child is exiting with 127 */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        return cad_fail(e, CAD_ECHILD, "cannot start '%s' (in %s): %s", o->argv[0],
                        o->cwd ? o->cwd : ".", strerror(err));
    }
    *pid_out = pid;
    return CAD_OK;
}

double cad_proc_now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double cad_proc_now_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

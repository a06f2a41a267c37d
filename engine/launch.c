/*
 * launch.c — start, watch and stop the ranks of a data-parallel run (see launch.h).
 * Not here: the collective (collective.c), the trainer (train.c).
 */
#include "engine/launch.h"

#include "engine/coll_tcp.h"
#include "engine/collective.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int cad_launch_rank_devices(const char *parent, int rank, int nproc, char *out, size_t cap, cad_err *e) {
    if (!parent) {
        snprintf(out, cap, "%d", rank);
        return CAD_OK;
    }
    if (!*parent) { /* a CPU slot: no rank may grab a GPU */
        out[0] = 0;
        return CAD_OK;
    }
    const char *p = parent;
    for (int i = 0; i < rank && p; i++) {
        p = strchr(p, ',');
        if (p) p++;
    }
    int n = 1;
    for (const char *q = parent; *q; q++) n += *q == ',';
    if (!p || n < nproc)
        return cad_fail(e, CAD_ECONFIG, "CUDA_VISIBLE_DEVICES=%s lists %d device%s for %d ranks", parent, n,
                        n == 1 ? "" : "s", nproc);
    size_t len = strcspn(p, ",");
    if (len >= cap) len = cap - 1;
    memcpy(out, p, len);
    out[len] = 0;
    return CAD_OK;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Exec one rank (in the child: only async-signal-safe work would be ideal, but the launcher is
 * single-threaded, so setenv is safe here). Never returns. */
static void exec_rank(const cad_launch_opts *o, int local, const char *shm, const char *devs, pid_t parent) {
    /* die with the launcher, even if it went before this line ran */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(126);
    char num[32];
    snprintf(num, sizeof num, "%d", o->node_rank * o->nproc + local);
    setenv("RANK", num, 1);
    snprintf(num, sizeof num, "%d", local);
    setenv("LOCAL_RANK", num, 1);
    snprintf(num, sizeof num, "%d", o->nnodes * o->nproc);
    setenv("WORLD_SIZE", num, 1);
    snprintf(num, sizeof num, "%d", o->nproc);
    setenv("LOCAL_WORLD_SIZE", num, 1);
    snprintf(num, sizeof num, "%d", o->node_rank);
    setenv("GROUP_RANK", num, 1); /* torchrun's name for the machine's index */
    if (o->master) {
        setenv("CADDIE_COLL_TCP", o->master, 1);
        unsetenv("CADDIE_COLL_SHM");
    } else {
        setenv("CADDIE_COLL_SHM", shm, 1);
        unsetenv("CADDIE_COLL_TCP");
    }
    if (o->join_timeout_s > 0) {
        snprintf(num, sizeof num, "%.0f", o->join_timeout_s);
        setenv("CADDIE_COLL_JOIN_TIMEOUT_S", num, 1);
    }
    setenv("CUDA_VISIBLE_DEVICES", devs, 1);
    execv(o->argv[0], o->argv);
    _exit(127);
}

/* SIGTERM/SIGINT/SIGHUP to the launcher (a runner's timeout, Ctrl-C, scancel): remembered here and
 * handled by the wait loop, which stops the ranks as for a failed rank and removes the shared
 * memory's name — which otherwise outlives a launch killed before its ranks joined. */
static volatile sig_atomic_t launch_signal;
static void on_launch_signal(int sig) { launch_signal = sig; }

static void describe(char *buf, size_t cap, int rank, int pid, int status) {
    if (WIFSIGNALED(status))
        snprintf(buf, cap, "rank %d (pid %d) killed by signal %d", rank, pid, WTERMSIG(status));
    else
        snprintf(buf, cap, "rank %d (pid %d) exited %d", rank, pid, WEXITSTATUS(status));
}

int cad_launch_ranks(const cad_launch_opts *o, cad_err *e) {
    if (o->nproc < 1 || o->nproc > CAD_COLL_MAX_WORLD)
        return cad_fail(e, CAD_EUSAGE, "--nproc %d: expected 1..%d", o->nproc, CAD_COLL_MAX_WORLD);
    if (o->nnodes < 1 || (long)o->nnodes * o->nproc > CAD_COLL_MAX_WORLD)
        return cad_fail(e, CAD_EUSAGE, "--nnodes %d x --nproc %d: expected a world of 1..%d ranks", o->nnodes, o->nproc,
                        CAD_COLL_MAX_WORLD);
    if (o->node_rank < 0 || o->node_rank >= o->nnodes)
        return cad_fail(e, CAD_EUSAGE, "--node-rank %d: expected 0..%d", o->node_rank, o->nnodes - 1);
    if (o->nnodes > 1 && !o->master)
        return cad_fail(e, CAD_EUSAGE, "--nnodes %d: the machines meet at rank 0's address: give --master HOST:PORT "
                                       "(node 0's host name or address, a free port)", o->nnodes);
    char host[256], port[16];
    if (o->master && cad_coll_tcp_parse_addr(o->master, host, sizeof host, port, sizeof port, e))
        return cad_fail(e, CAD_EUSAGE, "--master %s: expected HOST:PORT (port 1..65535)", o->master);
    if (!o->argv || !o->argv[0]) return cad_fail(e, CAD_EUSAGE, "no command to launch");
    const char *parent_devs = getenv("CUDA_VISIBLE_DEVICES");
    char devs[CAD_COLL_MAX_WORLD][64];
    for (int r = 0; r < o->nproc; r++) {
        int rc = cad_launch_rank_devices(parent_devs, r, o->nproc, devs[r], sizeof devs[r], e);
        if (rc) return rc;
    }
    char shm[96] = "";
    int rc = CAD_OK;
    if (!o->master) { /* one machine: the ranks meet in shared memory */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(shm, sizeof shm, "/caddie-coll-%d-%lx", (int)getpid(), (unsigned long)ts.tv_nsec);
        if ((rc = cad_coll_shm_create(shm, o->nproc, e))) return rc;
    }
    static const int caught[] = {SIGTERM, SIGINT, SIGHUP};
    struct sigaction sa, old[3];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_launch_signal;
    sigemptyset(&sa.sa_mask);
    launch_signal = 0;
    for (int i = 0; i < 3; i++) sigaction(caught[i], &sa, &old[i]); /* exec resets them in the ranks */
    pid_t pids[CAD_COLL_MAX_WORLD];
    int done[CAD_COLL_MAX_WORLD] = {0};
    pid_t self = getpid();
    int started = 0;
    for (; started < o->nproc; started++) {
        fflush(NULL); /* nothing buffered may be written twice */
        pid_t pid = fork();
        if (pid < 0) {
            rc = cad_fail(e, CAD_ECHILD, "fork rank %d: %s", started, strerror(errno));
            break;
        }
        if (pid == 0) exec_rank(o, started, shm, devs[started], self);
        pids[started] = pid;
        if (o->on_start) o->on_start(o->ud, o->node_rank * o->nproc + started, (int)pid);
    }
    /* wait; the first failure stops the rest */
    int left = started, stopping = rc != CAD_OK, cause_by_signal = 0;
    double kill_at = 0;
    if (stopping) {
        for (int r = 0; r < started; r++) kill(pids[r], SIGTERM);
        kill_at = now_s() + o->grace_s;
    }
    while (left > 0) {
        if (launch_signal && !stopping) {
            rc = cad_fail(e, CAD_ECHILD, "got signal %d; stopping the ranks", (int)launch_signal);
            stopping = 1;
            for (int r = 0; r < started; r++)
                if (!done[r]) kill(pids[r], SIGTERM);
            kill_at = now_s() + o->grace_s;
        }
        int status;
        /* polled, not blocking: a signal between the check above and a blocking wait would
         * otherwise go unnoticed until a rank exits */
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR) continue;
        if (pid < 0) break; /* no children left to wait for */
        if (pid == 0) { /* nobody exited yet: wait a little; when stopping, then insist */
            if (stopping && now_s() >= kill_at)
                for (int r = 0; r < started; r++)
                    if (!done[r]) kill(pids[r], SIGKILL);
            struct timespec nap = {0, 20 * 1000000L};
            nanosleep(&nap, NULL);
            continue;
        }
        int r = 0;
        while (r < started && pids[r] != pid) r++;
        if (r == started) continue; /* not a rank (cannot happen: the launcher forks nothing else) */
        done[r] = 1;
        left--;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
        /* The cause is named: a rank killed by a signal the launcher does not send (SIGKILL
         * from outside, SIGSEGV) outranks ranks that exited 1 because their collective saw a
         * peer die, whichever of them the kernel reported first. */
        int outside = WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM && !cause_by_signal;
        if (!stopping || outside) {
            char what[128];
            describe(what, sizeof what, o->node_rank * o->nproc + r, (int)pid, status);
            rc = cad_fail(e, CAD_ECHILD, "%s; stopping the other ranks", what);
            cause_by_signal |= outside;
        }
        if (!stopping) {
            stopping = 1;
            for (int q = 0; q < started; q++)
                if (!done[q]) kill(pids[q], SIGTERM);
            kill_at = now_s() + o->grace_s;
        }
    }
    for (int i = 0; i < 3; i++) sigaction(caught[i], &old[i], NULL);
    if (shm[0]) cad_coll_shm_unlink(shm); /* rank 0 unlinks it after the join; this covers a run that never joined */
    return rc;
}

/*
 * bench_coll.c — `make bench` figures for the data-parallel collective's host transports: the
 * shared-memory segment (one machine) against the TCP star to rank 0 (several machines; here over
 * loopback), at world 2 and 4: barrier latency and the all-reduce mean of a gradient-sized float
 * buffer (ms per call, and bus bytes per second as NCCL counts them: 2 (w-1)/w x the buffer).
 * On CUDA the gradients go through NCCL instead; these transports carry them on the CPU backend.
 * Not a test: prints figures, exits 0 unless a transport failed.
 *   usage: bench_coll [MIB] [REPEATS]      (default 16 MiB, 10 all-reduces per figure)
 */
#include "engine/collective.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &len)
                   ? ntohs(a.sin_port)
                   : -1;
    if (fd >= 0) close(fd);
    return port;
}

/* One rank: 1000 barriers, then `reps` all-reduces of n floats; rank 0 prints. */
static int rank_main(cad_coll *c, size_t n, int reps, const char *what) {
    cad_err e = {0};
    float *x = malloc(n * sizeof *x);
    if (!x) return 1;
    for (size_t i = 0; i < n; i++) x[i] = (float)(i % 1000) * 1e-3f;
    const int barriers = 1000;
    if (cad_coll_barrier(c, &e)) goto fail;
    double t0 = now_s();
    for (int i = 0; i < barriers; i++)
        if (cad_coll_barrier(c, &e)) goto fail;
    double t_bar = (now_s() - t0) / barriers;
    if (cad_coll_allreduce_mean(c, x, n, &e)) goto fail; /* warm: pages touched, connections busy */
    t0 = now_s();
    for (int i = 0; i < reps; i++)
        if (cad_coll_allreduce_mean(c, x, n, &e)) goto fail;
    double t_ar = (now_s() - t0) / reps;
    int w = cad_coll_world(c);
    if (cad_coll_rank(c) == 0) {
        double bus = 2.0 * (w - 1) / w * (double)(n * sizeof *x);
        printf("%-14s world %d   barrier %8.1f us   all-reduce %6.1f MiB %8.2f ms   bus %6.2f GB/s\n", what, w,
               t_bar * 1e6, (double)(n * sizeof *x) / (1 << 20), t_ar * 1e3, bus / t_ar / 1e9);
        fflush(stdout);
    }
    free(x);
    return 0;
fail:
    fprintf(stderr, "rank %d (%s): %s\n", cad_coll_rank(c), what, e.msg);
    free(x);
    return 1;
}

/* world ranks in child processes over one transport (tcp: loopback, else shared memory). */
static int run(int world, int tcp, size_t n, int reps) {
    char shm[64], addr[64];
    snprintf(shm, sizeof shm, "/caddie-bench-%d-%d", (int)getpid(), world);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    cad_err e = {0};
    if (!tcp && cad_coll_shm_create(shm, world, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    pid_t pids[CAD_COLL_MAX_WORLD];
    for (int r = 0; r < world; r++) {
        fflush(stdout);
        pids[r] = fork();
        if (pids[r] == 0) {
            cad_coll *c;
            int rc = tcp ? cad_coll_open_tcp(r, world, addr, 30, &c, &e) : cad_coll_open(r, world, shm, &c, &e);
            if (rc) {
                fprintf(stderr, "rank %d: %s\n", r, e.msg);
                _exit(1);
            }
            rc = rank_main(c, n, reps, tcp ? "tcp loopback" : "shared memory");
            cad_coll_free(c);
            _exit(rc);
        }
    }
    int bad = 0;
    for (int r = 0; r < world; r++) {
        int st;
        waitpid(pids[r], &st, 0);
        bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    if (!tcp) cad_coll_shm_unlink(shm);
    return bad;
}

int main(int argc, char **argv) {
    double mib = argc > 1 ? atof(argv[1]) : 16;
    int reps = argc > 2 ? atoi(argv[2]) : 10;
    size_t n = (size_t)(mib * (1 << 20)) / sizeof(float);
    if (n == 0 || reps < 1) {
        fprintf(stderr, "usage: bench_coll [MIB > 0] [REPEATS >= 1]\n");
        return 2;
    }
    int bad = 0;
    for (int world = 2; world <= 4; world += 2)
        for (int tcp = 0; tcp <= 1; tcp++) bad |= run(world, tcp, n, reps);
    return bad;
}

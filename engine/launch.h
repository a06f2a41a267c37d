/*
 * launch.h — torchrun's job for caddie on one machine: start N ranks of a command, each with
 * RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE, the collective's shared memory
 * (CADDIE_COLL_SHM, engine/collective.h) and its own GPU (CUDA_VISIBLE_DEVICES), wait for all,
 * and when one fails stop the others (SIGTERM, then SIGKILL after a grace period) so a run
 * never half-lives.
 *
 * Several machines: one launch per machine with the same nnodes and master, each its own
 * node_rank; its ranks are node_rank*N .. node_rank*N + N-1 of a world of nnodes*N, and the
 * collective runs over TCP to rank 0 at master (CADDIE_COLL_TCP, engine/coll_tcp.h), which is
 * on node 0. Every launch stops its own ranks when one fails; the ranks on the other machines
 * fail through the collective (a closed connection) and their launches stop theirs.
 *
 * GPUs: with CUDA_VISIBLE_DEVICES unset rank r sees GPU r; set to a list (the runner's
 * assignment) rank r sees its r-th entry, and a list shorter than N is an error; set empty (a
 * CPU slot) every rank sees none.
 * Each rank dies with the launcher (PR_SET_PDEATHSIG), so killing the launcher alone stops
 * the run too. SIGTERM, SIGINT or SIGHUP to the launcher stop the ranks the same way as a failed
 * rank (grace, then SIGKILL) and the launch fails naming the signal; cad_launch_ranks installs
 * its handlers for its own duration only.
 * Not here: the ranks' collective itself, option parsing (cli/cmd_launch.c).
 */
#ifndef CADDIE_LAUNCH_H
#define CADDIE_LAUNCH_H

#include "engine/status.h"

#include <stddef.h>

typedef struct cad_launch_opts {
    int nproc;                 /* ranks on this machine; nproc * nnodes <= CAD_COLL_MAX_WORLD */
    int nnodes, node_rank;     /* machines, and which one this is (0 for one machine) */
    const char *master;        /* "HOST:PORT" of rank 0: TCP collective (NULL: shared memory) */
    double join_timeout_s;     /* ranks wait this long for each other to start (0: default) */
    char *const *argv;         /* what every rank runs (argv[0] a path), NULL-terminated */
    double grace_s;            /* after a failure: SIGTERM, this long, then SIGKILL */
    /* called once per started rank (the CLI prints the pids); may be NULL */
    void (*on_start)(void *ud, int rank, int pid);
    void *ud;
} cad_launch_opts;

/* CAD_OK when every rank exited 0; CAD_ECHILD naming the first rank that failed (its exit
 * status or signal) otherwise; other codes when the ranks could not be started. */
int cad_launch_ranks(const cad_launch_opts *o, cad_err *e);

/* The CUDA_VISIBLE_DEVICES value rank `rank` of `nproc` gets from the launcher's own value
 * `parent` (NULL: unset), into out; CAD_ECONFIG when parent lists fewer than nproc devices. */
int cad_launch_rank_devices(const char *parent, int rank, int nproc, char *out, size_t cap, cad_err *e);

#endif

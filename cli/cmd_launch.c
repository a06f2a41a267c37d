/*
 * cmd_launch.c — `caddie launch --nproc N [--nnodes K --node-rank R --master HOST:PORT] COMMAND
 * [ARGS...]`: torchrun's role for caddie's own commands (data parallel `caddie train`), on one
 * machine or several: its usage text, option table and the rank lines on stderr.
 * Not here: starting and stopping ranks (engine/launch.c).
 */
#include "cli/cli.h"
#include "engine/launch.h"
#include "runner/engines.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum launch_opt { LAUNCH_NPROC, LAUNCH_NNODES, LAUNCH_NODE_RANK, LAUNCH_MASTER, LAUNCH_JOIN_TIMEOUT, LAUNCH_GRACE };
static const cli_opt launch_opts[] = {
    {LAUNCH_NPROC, "nproc", 'n', "N", "ranks to start on this machine (one per GPU; on the CPU, N processes)"},
    {LAUNCH_NNODES, "nnodes", 0, "K", "machines in the run, each running this launch (default 1)"},
    {LAUNCH_NODE_RANK, "node-rank", 0, "R", "this machine's index, 0..K-1; machine 0 holds rank 0 (default:\n"
                                              "$SLURM_NODEID inside a Slurm step, else 0)"},
    {LAUNCH_MASTER, "master", 0, "HOST:PORT", "rank 0's machine and a free port: the ranks meet there over TCP\n"
                                             "(required with --nnodes > 1; on one machine it replaces shared memory)"},
    {LAUNCH_JOIN_TIMEOUT, "join-timeout", 0, "S", "seconds the ranks wait for each other to start (default 60)"},
    {LAUNCH_GRACE, "grace", 0, "S", "after a rank failed: seconds between SIGTERM and SIGKILL to the\nothers (default 5)"},
    CLI_OPT_END,
};

static void say_start(void *ud, int rank, int pid) {
    (void)ud;
    fprintf(stderr, "launch: rank %d pid %d\n", rank, pid);
    fflush(stderr);
}

static int cmd_launch(int argc, char **argv) {
    /* launch's own options end at the first operand (the command): everything after it is the
     * command's, which getopt must not permute into launch's */
    int end = 1;
    while (end < argc && argv[end][0] == '-') {
        if (!strcmp(argv[end], "--")) break;
        static const char *const valued[] = {"--nproc", "-n", "--nnodes", "--node-rank", "--master", "--join-timeout", "--grace"};
        int takes_value = 0;
        for (size_t i = 0; i < sizeof valued / sizeof *valued; i++) takes_value |= !strcmp(argv[end], valued[i]);
        end += takes_value ? 2 : 1;
    }
    if (end > argc) end = argc;
    int nproc = 0, nnodes = 1, node_rank = -1, id;
    const char *master = NULL;
    double grace = 5, join_timeout = 0;
    cli_parser p;
    cli_parser_init(&p, &cmd_launch_def, NULL, end, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        char *tail;
        switch ((enum launch_opt)id) {
        case LAUNCH_NPROC:
            nproc = (int)strtol(p.arg, &tail, 10);
            if (*tail || nproc < 1) return cli_usage_error("launch", "--nproc %s: expected a positive integer", p.arg);
            break;
        case LAUNCH_NNODES:
            nnodes = (int)strtol(p.arg, &tail, 10);
            if (*tail || nnodes < 1) return cli_usage_error("launch", "--nnodes %s: expected a positive integer", p.arg);
            break;
        case LAUNCH_NODE_RANK:
            node_rank = (int)strtol(p.arg, &tail, 10);
            if (*tail || !*p.arg || node_rank < 0)
                return cli_usage_error("launch", "--node-rank %s: expected an integer >= 0", p.arg);
            break;
        case LAUNCH_MASTER: master = p.arg; break;
        case LAUNCH_JOIN_TIMEOUT:
            join_timeout = strtod(p.arg, &tail);
            if (*tail || !(join_timeout >= 1)) return cli_usage_error("launch", "--join-timeout %s: expected seconds >= 1", p.arg);
            break;
        case LAUNCH_GRACE:
            grace = strtod(p.arg, &tail);
            if (*tail || !(grace >= 0)) return cli_usage_error("launch", "--grace %s: expected seconds >= 0", p.arg);
            break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    int first = p.ind < end ? p.ind : end;
    if (first < argc && !strcmp(argv[first], "--")) first++;
    if (!nproc) return cli_usage_error("launch", "--nproc N is required");
    if (node_rank < 0) { /* under srun each node's step knows its index: one command for all */
        const char *sid = nnodes > 1 ? getenv("SLURM_NODEID") : NULL;
        char *tail;
        node_rank = sid && *sid ? (int)strtol(sid, &tail, 10) : 0;
        if (sid && *sid && (*tail || node_rank < 0))
            return cli_usage_error("launch", "SLURM_NODEID=%s: expected an integer >= 0 (or give --node-rank)", sid);
    }
    if (first >= argc) return cli_usage_error("launch", "expected a command to launch (train CONFIG.yaml)");
    if (strcmp(argv[first], "train") != 0)
        return cli_usage_error("launch", "'%s': only `train` runs data parallel", argv[first]);
    char self[PATH_MAX];
    cad_err e = {0};
    if (cad_engine_self_exe(self, sizeof self, &e)) return cli_fail("launch", "%s", e.msg);
    /* the ranks' argv: this binary, then the command and its arguments as given */
    char **rargv = calloc((size_t)(argc - first + 2), sizeof *rargv);
    if (!rargv) return cli_fail("launch", "out of memory");
    rargv[0] = self;
    for (int i = first; i < argc; i++) rargv[i - first + 1] = argv[i];
    cad_launch_opts lo = {.nproc = nproc, .nnodes = nnodes, .node_rank = node_rank, .master = master,
                          .join_timeout_s = join_timeout, .argv = rargv, .grace_s = grace, .on_start = say_start};
    int rc = cad_launch_ranks(&lo, &e);
    free(rargv);
    if (rc == CAD_EUSAGE) return cli_usage_error("launch", "%s", e.msg);
    if (rc) return cli_fail("launch", "%s", e.msg);
    return 0;
}

const cli_command cmd_launch_def = {
    .name = "launch",
    .fn = cmd_launch,
    .summary = "run `caddie train` data parallel: N ranks on this machine, or on several (torchrun's role)",
    .synopsis = (const char *const[]){"--nproc N [--grace S] train CONFIG.yaml [TRAIN-ARGS]...",
                                      "--nproc N --nnodes K --node-rank R --master HOST:PORT [--join-timeout S] [--grace S]\n"
                                      "    train CONFIG.yaml [TRAIN-ARGS]...",
                                      NULL},
    .description =
        "Starts N copies of `caddie train ...` with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE\n"
        "and the shared memory their collective uses (CADDIE_COLL_SHM); on CUDA each rank gets one\n"
        "GPU through CUDA_VISIBLE_DEVICES (rank r: the r-th of the launcher's list, or GPU r when it\n"
        "is unset). Waits for all; when one rank fails the others are stopped and launch exits 1\n"
        "naming it. Prints \"launch: rank R pid P\" per rank on stderr; rank 0 prints the log.\n"
        "TRAIN-ARGS are `caddie train`'s own (--set KEY=VALUE ...), passed to every rank.\n"
        "Several machines: run the same launch on each, with the same --nnodes and --master (node 0's\n"
        "address and a free port) and its own --node-rank; machine R runs ranks R*N..R*N+N-1 of\n"
        "K*N, and the collective goes over TCP to rank 0 (NCCL carries the gradients on CUDA). The\n"
        "run dir and the data must be at the same paths on every machine (a shared filesystem):\n"
        "rank 0 writes the run, every rank reads the checkpoint on resume. Under Slurm, one launch\n"
        "per node (--node-rank defaults to the step's SLURM_NODEID):\n"
        "  head=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
        "  srun --ntasks-per-node=1 caddie launch --nproc 8 --nnodes \"$SLURM_NNODES\" \\\n"
        "      --master \"$head:29500\" train CONFIG.yaml\n",
    .opts = launch_opts,
};

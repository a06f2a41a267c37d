/*
 * cmd_launch.c — `caddie launch --nproc N COMMAND [ARGS...]`: torchrun's role for caddie's own
 * commands (data parallel `caddie train`): its usage text, option table and the rank lines on
 * stderr.
 * Not here: starting and stopping ranks (engine/launch.c).
 */
#include "cli/cli.h"
#include "engine/launch.h"
#include "runner/engines.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum launch_opt { LAUNCH_NPROC, LAUNCH_GRACE };
static const cli_opt launch_opts[] = {
    {LAUNCH_NPROC, "nproc", 'n', "N", "ranks to start (one per GPU; on the CPU, N processes)"},
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
        int takes_value = !strcmp(argv[end], "--nproc") || !strcmp(argv[end], "-n") || !strcmp(argv[end], "--grace");
        end += takes_value ? 2 : 1;
    }
    if (end > argc) end = argc;
    int nproc = 0, id;
    double grace = 5;
    cli_parser p;
    cli_parser_init(&p, &cmd_launch_def, NULL, end, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        char *tail;
        switch ((enum launch_opt)id) {
        case LAUNCH_NPROC:
            nproc = (int)strtol(p.arg, &tail, 10);
            if (*tail || nproc < 1) return cli_usage_error("launch", "--nproc %s: expected a positive integer", p.arg);
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
    cad_launch_opts lo = {nproc, rargv, grace, say_start, NULL};
    int rc = cad_launch_ranks(&lo, &e);
    free(rargv);
    if (rc == CAD_EUSAGE) return cli_usage_error("launch", "%s", e.msg);
    if (rc) return cli_fail("launch", "%s", e.msg);
    return 0;
}

const cli_command cmd_launch_def = {
    .name = "launch",
    .fn = cmd_launch,
    .summary = "run `caddie train` data parallel: N ranks on this machine (torchrun's role)",
    .synopsis = (const char *const[]){"--nproc N [--grace S] train CONFIG.yaml [TRAIN-ARGS]...", NULL},
    .description =
        "Starts N copies of `caddie train ...` with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE\n"
        "and the shared memory their collective uses (CADDIE_COLL_SHM); on CUDA each rank gets one\n"
        "GPU through CUDA_VISIBLE_DEVICES (rank r: the r-th of the launcher's list, or GPU r when it\n"
        "is unset). Waits for all; when one rank fails the others are stopped and launch exits 1\n"
        "naming it. Prints \"launch: rank R pid P\" per rank on stderr; rank 0 prints the log.\n"
        "TRAIN-ARGS are `caddie train`'s own (--set KEY=VALUE ...), passed to every rank.\n",
    .opts = launch_opts,
};

/*
 * cmd_gpu.c — `caddie gpu selftest`: every CUDA backend op against the CPU reference, op by op,
 * on the GPU of this machine (engine/backend_check.c: NMSE, NaN/Inf agreement, guard values).
 *
 * The same comparison runs in `make test` with the kernels compiled for the CPU emulation layer
 * (tests/unit/test_kernels_emu.c); this command is its counterpart on real hardware, where it
 * additionally covers cuBLAS itself, real warp timing and device memory.
 * A build without nvcc (or CUDA=0) has no CUDA backend: the command says so and fails (exit 1),
 * as it does when the CUDA backend finds no device.
 *
 * Not here: the kernels (kernels/), the comparison logic (engine/backend_check.c).
 */
#include "engine/backend.h"
#include "engine/backend_check.h"
#include "cli/cli.h"
#include "engine/status.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct selftest_tally {
    int n, failed, verbose;
} selftest_tally;

static void selftest_print(const cad_opcheck_result *r, void *ud) {
    selftest_tally *t = ud;
    t->n++;
    t->failed += !r->pass;
    if (!r->pass || t->verbose)
        printf("%-4s %-24s %-18s nmse %9.2e  max_abs %9.2e  nonfinite %ld  guard %ld  [%s]\n",
               r->pass ? "ok" : "FAIL", r->op, r->tensor, r->nmse, r->max_abs,
               r->nonfinite_mismatch, r->guard_hits, r->shape);
    fflush(stdout);
}

static int gpu_selftest(int argc, char **argv) {
    static const struct option opts[] = {{"seed", required_argument, NULL, 's'},
                                         {"large", no_argument, NULL, 'l'},
                                         {"max-nmse", required_argument, NULL, 'm'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {NULL, 0, NULL, 0}};
    cad_opcheck_opts o = {1, 1e-7, 0};
    selftest_tally t = {0, 0, 1};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 's':
            errno = 0;
            o.seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end)
                return cli_usage_error("gpu", "--seed: '%s' is not a non-negative integer", optarg);
            break;
        case 'l': o.large = 1; break;
        case 'm':
            o.max_nmse = strtod(optarg, &end);
            if (end == optarg || *end || !(o.max_nmse > 0))
                return cli_usage_error("gpu", "--max-nmse: '%s' is not a positive number", optarg);
            break;
        case 'q': t.verbose = 0; break;
        default: return cli_usage_error("gpu", "unknown option");
        }
    }
    if (optind != argc) return cli_usage_error("gpu", "selftest takes no arguments ('%s')", argv[optind]);
#ifndef CADDIE_CUDA
    (void)selftest_print; /* options are still parsed, so usage errors stay usage errors */
    (void)t;
    (void)o;
    return cli_fail("gpu", "this build has no CUDA backend (nvcc was not found when it was built, "
                           "or CUDA=0): rebuild with `make` on a machine with the CUDA toolkit");
#else
    cad_err e;
    cad_err_clear(&e);
    const cad_backend *cuda = cad_backend_cuda(&e);
    if (!cuda) return cli_fail("gpu", "%s", e.msg);
    printf("device: %s\n", cad_cuda_device_name());
    int fails = cad_backend_opcheck(cad_backend_cpu(), cuda, &o, selftest_print, &t);
    printf("%d comparisons, %d failed (max nmse %.0e, seed %llu%s)\n", t.n, fails, o.max_nmse,
           (unsigned long long)o.seed, o.large ? ", large shapes" : "");
    return fails ? 1 : 0;
#endif
}

int cmd_gpu(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("gpu", "missing subcommand (selftest)");
    if (strcmp(argv[1], "selftest") == 0) return gpu_selftest(argc - 1, argv + 1);
    return cli_usage_error("gpu", "unknown subcommand '%s' (expected selftest)", argv[1]);
}

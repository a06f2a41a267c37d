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
#include "engine/train_check.h"

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

static void selftest_pick(const cad_gemm_pick *g, void *ud) {
    selftest_tally *t = ud;
    t->n++;
    t->failed += !g->pass;
    printf("%-4s kernels %-4s %-18s %-44s %s%s\n", g->pass ? "ok" : "FAIL", g->precision, g->slot, g->shape,
           g->kernels, g->tf32 ? "  <- TF32" : "");
    fflush(stdout);
}

static void selftest_item(const cad_check_item *it, void *ud) {
    selftest_tally *t = ud;
    t->n++;
    t->failed += !it->pass;
    if (!it->pass || t->verbose)
        printf("%-4s %-11s %-4s %-48s ref %.9g  dut %.9g  err %.3g (max %.3g)\n", it->pass ? "ok" : "FAIL", it->check,
               it->precision, it->what, it->ref, it->dut, it->err, it->limit);
    fflush(stdout);
}

static int gpu_selftest(int argc, char **argv) {
    static const struct option opts[] = {{"seed", required_argument, NULL, 's'},
                                         {"large", no_argument, NULL, 'l'},
                                         {"max-nmse", required_argument, NULL, 'm'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"ops-only", no_argument, NULL, 'o'},
                                         {"train-config", required_argument, NULL, 'c'},
                                         {"grad-seqs", required_argument, NULL, 'g'},
                                         {NULL, 0, NULL, 0}};
    cad_opcheck_opts o = {1, 1e-7, 0};
    selftest_tally t = {0, 0, 1};
    /* training checks: bundled sample config, 20 parity steps, 5 determinism steps, gradients of
     * the 9x512 baseline on 8 x 1024 tokens (about 1 TFLOP on the CPU reference per precision) */
    cad_train_selftest_opts to = {"experiments/configs/sample_cpu.yaml", 1, 8, 20, 5, 1e-8, 1e-4, 1e-3};
    int ops_only = 0;
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
        case 'o': ops_only = 1; break;
        case 'c': to.config = optarg; break;
        case 'g':
            if (cli_parse_long(optarg, 1, 512, &to.grad_B))
                return cli_usage_error("gpu", "--grad-seqs: '%s' is not an integer in [1, 512]", optarg);
            break;
        default: return cli_usage_error("gpu", "unknown option");
        }
    }
    if (optind != argc) return cli_usage_error("gpu", "selftest takes no arguments ('%s')", argv[optind]);
#ifndef CADDIE_CUDA
    (void)selftest_print; /* options are still parsed, so usage errors stay usage errors */
    (void)selftest_pick;
    (void)selftest_item;
    (void)to;
    (void)ops_only;
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
    if (!ops_only) {
        int nf = 0;
        if (cad_cuda_gemm_report(cuda, selftest_pick, &t, &nf, &e)) {
            printf("FAIL kernels: %s\n", e.msg);
            t.n++, t.failed++, nf++;
        }
        fails += nf;
        if (cad_train_selftest(&to, cad_backend_cpu(), cuda, selftest_item, &t, &nf, &e))
            return cli_fail("gpu", "training checks: %s", e.msg);
        fails += nf;
    }
    printf("%d comparisons, %d failed (max nmse %.0e, seed %llu%s%s)\n", t.n, fails, o.max_nmse,
           (unsigned long long)o.seed, o.large ? ", large shapes" : "", ops_only ? ", ops only" : "");
    return fails ? 1 : 0;
#endif
}

int cmd_gpu(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("gpu", "missing subcommand (selftest)");
    if (strcmp(argv[1], "selftest") == 0) return gpu_selftest(argc - 1, argv + 1);
    return cli_usage_error("gpu", "unknown subcommand '%s' (expected selftest)", argv[1]);
}

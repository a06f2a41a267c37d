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

enum selftest_opt { ST_SEED, ST_LARGE, ST_MAX_NMSE, ST_QUIET, ST_OPS_ONLY, ST_TRAIN_CONFIG, ST_GRAD_SEQS };
static const cli_opt selftest_opts[] = {
    {ST_SEED, "seed", 0, "N", "input data seed (default 1)"},
    {ST_LARGE, "large", 0, NULL, "also run model-sized shapes (T=1024 attention, 4096-row norms)"},
    {ST_MAX_NMSE, "max-nmse", 0, "X", "NMSE bound per output (default 1e-7, ggml's fp32 default)"},
    {ST_QUIET, "quiet", 0, NULL, "print only failing outputs and the summary"},
    {ST_OPS_ONLY, "ops-only", 0, NULL, "only the op-by-op comparison"},
    {ST_TRAIN_CONFIG, "train-config", 0, "FILE", "config of the training checks (data, tokenizer, model)"},
    {ST_GRAD_SEQS, "grad-seqs", 0, "N", "sequences of 1024 tokens in the gradient check (CPU time grows with N)"},
    CLI_OPT_END,
};
static int gpu_selftest(int argc, char **argv);
static const cli_subcommand gpu_selftest_sub = {
    .name = "selftest",
    .fn = gpu_selftest,
    .synopsis = (const char *const[]){"[--seed N] [--large] [--max-nmse X] [--quiet] [--ops-only]",
                                      "[--train-config FILE] [--grad-seqs N]", NULL},
    .description =
        "Runs every backend op (matmul, embedding, rmsnorm, q/k norm + RoPE, attention, relu^2,\n"
        "residual mixes, softcap cross-entropy, axpby/scale/sumsq/Adam; forward and backward) on\n"
        "the CUDA backend and on the CPU reference with identical inputs, and compares each\n"
        "output: NMSE against --max-nmse, NaN/Inf positions, guard values around outputs.\n"
        "Prints one line per compared output and a summary; exit 0 when all pass, 1 when one\n"
        "fails or when there is no CUDA backend (built without nvcc) or no visible device.\n"
        "Then (unless --ops-only): which kernels matmul, matmul_batched, gram_batched and\n"
        "attention_forward launch in each precision (CUPTI; a TF32 kernel fails), and for fp32 and\n"
        "bf16: every parameter gradient of the 9x512 baseline on --grad-seqs x 1024 tokens (default\n"
        "8; NMSE <= 1e-8 fp32, 1e-4 bf16; loss within 1e-3 relative), a 20-step training run of\n"
        "--train-config (default experiments/configs/sample_cpu.yaml: the loss of every step within\n"
        "1e-3 relative of the CPU's) and two 5-step CUDA runs that must be bit-identical.\n",
    .opts = selftest_opts,
};

static int gpu_selftest(int argc, char **argv) {
    cad_opcheck_opts o = {1, 1e-7, 0};
    selftest_tally t = {0, 0, 1};
    /* training checks: bundled sample config, 20 parity steps, 5 determinism steps, gradients of
     * the 9x512 baseline on 8 x 1024 tokens (about 1 TFLOP on the CPU reference per precision) */
    cad_train_selftest_opts to = {"experiments/configs/sample_cpu.yaml", 1, 8, 20, 5, 1e-8, 1e-4, 1e-3};
    int ops_only = 0;
    int id;
    cli_parser p;
    cli_parser_init(&p, &cmd_gpu_def, &gpu_selftest_sub, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        char *end;
        switch ((enum selftest_opt)id) {
        case ST_SEED:
            errno = 0;
            o.seed = strtoull(p.arg, &end, 10);
            if (errno || end == p.arg || *end)
                return cli_usage_error("gpu", "--seed: '%s' is not a non-negative integer", p.arg);
            break;
        case ST_LARGE: o.large = 1; break;
        case ST_MAX_NMSE:
            o.max_nmse = strtod(p.arg, &end);
            if (end == p.arg || *end || !(o.max_nmse > 0))
                return cli_usage_error("gpu", "--max-nmse: '%s' is not a positive number", p.arg);
            break;
        case ST_QUIET: t.verbose = 0; break;
        case ST_OPS_ONLY: ops_only = 1; break;
        case ST_TRAIN_CONFIG: to.config = p.arg; break;
        case ST_GRAD_SEQS:
            if (cli_parse_long(p.arg, 1, 512, &to.grad_B))
                return cli_usage_error("gpu", "--grad-seqs: '%s' is not an integer in [1, 512]", p.arg);
            break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind != argc) return cli_usage_error("gpu", "selftest takes no arguments ('%s')", argv[p.ind]);
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

const cli_command cmd_gpu_def = {
    .name = "gpu",
    .summary = "check the CUDA backend against the CPU reference on this machine's GPU",
    .subs = (const cli_subcommand *const[]){&gpu_selftest_sub, NULL},
};

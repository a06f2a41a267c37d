/*
 * cmd_bench.c — `caddie bench`: timed train steps of a config on the cpu or cuda backend
 * (engine/bench.c), ms/step, tokens/s, model TFLOP/s and MFU, the per-slot time table of a
 * profiled step (engine/timed_backend.c), and optionally train_gpt.py's step_avg on the same
 * data and config side by side.
 *
 * Not here: the step loop, FLOP formula, timers, the PyTorch run (engine/bench.c).
 */
#include "engine/backend.h"
#include "engine/bench.h"
#include "engine/config.h"
#include "engine/status.h"
#include "engine/timed_backend.h"
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BENCH_MAX_SETS 64
#define BENCH_TIMER_MARKS 65536

static int bench_cmp_ms(const void *a, const void *b) {
    const cad_slot_stat *x = a, *y = b;
    return (x->ms < y->ms) - (x->ms > y->ms);
}

static void bench_print(const cad_config *c, const char *device, const cad_bench_result *r, double peak,
                        const char *peak_src) {
    printf("bench: backend %s%s%s%s, matmul_precision %s\n", c->backend, device[0] ? " (" : "", device,
           device[0] ? ")" : "", c->matmul_precision);
    printf("model: %ldx%ld, %ld/%ld heads, mlp_mult %ld, vocab %ld, T=%d, params %ld\n", c->num_layers, c->model_dim,
           c->num_heads, c->num_kv_heads, c->mlp_mult, c->vocab_size, r->T, r->n_params);
    printf("step: %ld tokens = %d micro-steps x %d x %d\n", r->tokens_per_step, r->accum, r->B, r->T);
    printf("ms/step:       %.1f (min %.1f, max %.1f)\n", r->ms_mean, r->ms_min, r->ms_max);
    printf("tokens/s:      %.0f\n", r->tokens_per_s);
    printf("model TFLOP/s: %.2f  (%.4g FLOP/step = 6*P*tokens + 6*L*T*C*tokens: P=%ld params, L=%d, T=%d, C=%ld)\n",
           r->tflops, r->model_flops, r->n_params, r->layers, r->T, c->model_dim);
    if (peak > 0)
        printf("MFU:           %.2f%% of %.0f TFLOP/s (%s)\n", 100.0 * r->tflops / peak, peak, peak_src);
    else
        printf("MFU:           n/a (unknown device peak: pass --peak-tflops X)\n");
    printf("loss:          %.4f (first timed step) -> %.4f (last)\n", r->first_loss, r->last_loss);
}

static void bench_print_slots(const cad_bench_result *r) {
    cad_slot_stat s[CAD_TIMED_NSLOTS];
    memcpy(s, r->slots, sizeof s);
    qsort(s, CAD_TIMED_NSLOTS, sizeof s[0], bench_cmp_ms);
    double in_slots = 0;
    for (int i = 0; i < CAD_TIMED_NSLOTS; i++) in_slots += s[i].ms;
    double total = r->profile_ms > in_slots ? r->profile_ms : in_slots;
    printf("\nper-slot time: %ld profiled step%s, %s; %% of the profiled steps' wall time (%.1f ms)\n",
           r->profiled_steps, r->profiled_steps == 1 ? "" : "s", r->timer_what, r->profile_ms);
    printf("%-24s %9s %12s %8s\n", "slot", "calls", "total_ms", "%step");
    for (int i = 0; i < CAD_TIMED_NSLOTS; i++)
        if (s[i].calls) printf("%-24s %9ld %12.3f %8.2f\n", s[i].slot, s[i].calls, s[i].ms, 100.0 * s[i].ms / total);
    printf("%-24s %9s %12.3f %8.2f\n", "(outside slots)", "-", total - in_slots, 100.0 * (total - in_slots) / total);
}

static int cmd_bench(int argc, char **argv);

enum bench_opt {
    BN_BACKEND, BN_CONFIG, BN_SET, BN_STEPS, BN_WARMUP, BN_PROFILE_STEPS, BN_PEAK, BN_TORCH, BN_PYTHON
};
static const cli_opt bench_opts[] = {
    {BN_BACKEND, "backend", 0, "B", "cpu or cuda (overrides the config's backend key)"},
    {BN_CONFIG, "config", 0, "FILE", "run config (YAML; the keys of caddie train)"},
    {BN_SET, "set", 0, "KEY=VALUE", "override a config key (repeatable)"},
    {BN_STEPS, "steps", 0, "N", "timed steps (default 10)"},
    {BN_WARMUP, "warmup", 0, "N", "untimed steps first (default 3)"},
    {BN_PROFILE_STEPS, "profile-steps", 0, "N", "steps of the per-slot table (default 1; 0: no table)"},
    {BN_PEAK, "peak-tflops", 0, "X", "device peak for MFU (default: by device name, H100/H200 = 989)"},
    {BN_TORCH, "torch-script", 0, "PATH",
     "also run train_gpt.py (when PYTHON can import torch) on the same data\n"
     "and config with ITERATIONS=N WARMUP_STEPS=warmup VAL_LOSS_EVERY=0 and\n"
     "print its step_avg and the ratio; skipped with a line when no torch"},
    {BN_PYTHON, "python", 0, "PYTHON", "interpreter for --torch-script (default python3)"},
    CLI_OPT_END,
};

static int cmd_bench(int argc, char **argv) {
    const char *backend = NULL, *config = NULL, *torch = NULL, *python = "python3";
    cad_bench_opts bo = {3, 10, 1};
    double peak_opt = 0;
    char *sets[BENCH_MAX_SETS + 2];
    int n_sets = 0;
    int id;
    cli_parser p;
    cli_parser_init(&p, &cmd_bench_def, NULL, argc, argv);
    while ((id = cli_next_opt(&p)) >= 0) {
        switch ((enum bench_opt)id) {
        case BN_BACKEND: backend = p.arg; break;
        case BN_CONFIG: config = p.arg; break;
        case BN_STEPS:
            if (cli_parse_long(p.arg, 1, 1000000, &bo.steps))
                return cli_usage_error("bench", "--steps: '%s' is not an integer >= 1", p.arg);
            break;
        case BN_WARMUP:
            if (cli_parse_long(p.arg, 0, 1000000, &bo.warmup))
                return cli_usage_error("bench", "--warmup: '%s' is not an integer >= 0", p.arg);
            break;
        case BN_PROFILE_STEPS:
            if (cli_parse_long(p.arg, 0, 1000, &bo.profile_steps))
                return cli_usage_error("bench", "--profile-steps: '%s' is not an integer in [0, 1000]", p.arg);
            break;
        case BN_TORCH: torch = p.arg; break;
        case BN_PYTHON: python = p.arg; break;
        case BN_PEAK:
            if (cli_parse_double(p.arg, 1e-9, 1e9, &peak_opt))
                return cli_usage_error("bench", "--peak-tflops: '%s' is not a positive number", p.arg);
            break;
        case BN_SET:
            if (n_sets == BENCH_MAX_SETS) return cli_usage_error("bench", "too many --set options (max %d)", BENCH_MAX_SETS);
            sets[n_sets++] = p.arg;
            break;
        }
    }
    if (id == CLI_OPTS_BAD) return 2;
    if (p.ind != argc) return cli_usage_error("bench", "unexpected argument '%s'", argv[p.ind]);
    /* values are checked after the whole command line parsed, so an unknown option is named first */
    if (backend && strcmp(backend, "cpu") != 0 && strcmp(backend, "cuda") != 0)
        return cli_usage_error("bench", "--backend: '%s' is not cpu or cuda", backend);
    /* without --config: train_gpt.py's baseline (the config defaults) on the bundled sample */
    char *all_sets[BENCH_MAX_SETS + 3];
    int n_all = 0;
    static char data_set[] = "data_path=data/sample/fineweb10B_sp1024";
    static char tok_set[] = "tokenizer_path=data/sample/fineweb_1024_bpe.model";
    if (!config) all_sets[n_all++] = data_set, all_sets[n_all++] = tok_set;
    char backend_set[32];
    if (backend) {
        snprintf(backend_set, sizeof backend_set, "backend=%s", backend);
        all_sets[n_all++] = backend_set;
    }
    for (int i = 0; i < n_sets; i++) all_sets[n_all++] = sets[i];

    cad_config cfg;
    cad_err e;
    cad_err_clear(&e);
    int rc = cad_config_resolve(&cfg, config, n_all, all_sets, &e);
    if (rc) {
        cad_config_free(&cfg);
        return rc == CAD_EUSAGE ? cli_usage_error("bench", "%s", e.msg) : cli_fail("bench", "%s", e.msg);
    }
    const cad_backend *be = NULL;
    cad_slot_timer *timer = NULL;
    const char *device = "";
    if (strcmp(cfg.backend, "cuda") == 0) {
#ifdef CADDIE_CUDA
        be = cad_backend_cuda(&e);
        if (be) device = cad_cuda_device_name();
        if (be && bo.profile_steps) rc = cad_cuda_event_timer_create(be, &timer, BENCH_TIMER_MARKS, &e);
#else
        cad_fail(&e, CAD_ERR, "no CUDA device: this build has no CUDA backend (nvcc was not found when it was built, or CUDA=0)");
#endif
        if (!be) {
            cad_config_free(&cfg);
            return cli_fail("bench", "%s", e.msg);
        }
    } else {
        be = cad_backend_cpu();
        if (bo.profile_steps) rc = cad_clock_timer_create(&timer, BENCH_TIMER_MARKS, &e);
    }
    cad_bench_result r;
    if (!rc) rc = cad_bench_run(&cfg, be, timer, &bo, &r, &e);
    cad_slot_timer_free(timer);
    if (rc) {
        cad_config_free(&cfg);
        return cli_fail("bench", "%s", e.msg);
    }
    double peak = peak_opt > 0 ? peak_opt : cad_bench_peak_tflops(device);
    bench_print(&cfg, device, &r, peak,
                peak_opt > 0 ? "--peak-tflops" : "H100/H200 bf16 dense tensor-core peak, no sparsity");
    if (torch) {
        if (!cad_bench_torch_available(python)) {
            printf("torch:         skipped (%s cannot import torch)\n", python);
        } else {
            char log[256];
            const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
            snprintf(log, sizeof log, "%s/caddie-bench-torch-%ld.log", tmp, (long)getpid());
            printf("torch:         running %s %s (%ld warmup + %ld steps; log %s)\n", python, torch, bo.warmup, bo.steps, log);
            fflush(stdout);
            double step_avg = 0;
            if (cad_bench_torch_run(python, torch, &cfg, bo.warmup, bo.steps, tmp, log, &step_avg, &e)) {
                fprintf(stderr, "caddie bench: torch run failed: %s\n", e.msg);
                rc = 1;
            } else {
                printf("torch ms/step: %.1f (train_gpt.py step_avg)   caddie/torch: %.2fx\n", step_avg, r.ms_mean / step_avg);
            }
        }
    }
    if (r.profiled_steps) bench_print_slots(&r);
    cad_config_free(&cfg);
    return rc ? 1 : 0;
}

const cli_command cmd_bench_def = {
    .name = "bench",
    .fn = cmd_bench,
    .summary = "time train steps of a config on cpu or cuda: ms/step, tokens/s, MFU, per-op table",
    .synopsis = (const char *const[]){"[--backend cpu|cuda] [--config FILE] [--set KEY=VALUE]... [--steps N]\n"
                                      "[--warmup N] [--profile-steps N] [--peak-tflops X]\n"
                                      "[--torch-script train_gpt.py] [--python PYTHON]",
                                      NULL},
    .description =
        "Runs --warmup untimed then --steps timed optimizer steps of the config (each: grad_accum\n"
        "micro-steps of forward+backward on the training stream, Muon/Adam, a backend sync) and prints\n"
        "ms/step, tokens/s, model TFLOP/s with model FLOPs/step = 6*P*tokens + 6*L*T*C*tokens (P all\n"
        "parameters, L blocks, causal attention 12*L*T*C per token halved) and MFU against 989 TFLOP/s\n"
        "(bf16 dense) on an H100/H200, else against --peak-tflops. Then --profile-steps more steps\n"
        "through a timing wrapper: one line per backend slot called (calls, total ms, % of those\n"
        "steps' wall time; cpu: wall clock, cuda: CUDA events) and the time outside slots.\n"
        "Without --config: train_gpt.py's baseline (9x512, T=1024, 524,288 tokens/step = 8 micro-steps\n"
        "of 64x1024 on one device) on the bundled sample (`make sample`). The lr schedule ignores the\n"
        "wallclock; nothing is written. --backend cuda without a GPU fails (exit 1, \"no CUDA device\").\n",
    .opts = bench_opts,
};

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

#include <getopt.h>
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

int cmd_bench(int argc, char **argv) {
    static const struct option opts[] = {{"backend", required_argument, NULL, 'b'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"steps", required_argument, NULL, 'n'},
                                         {"warmup", required_argument, NULL, 'w'},
                                         {"profile-steps", required_argument, NULL, 'p'},
                                         {"torch-script", required_argument, NULL, 't'},
                                         {"python", required_argument, NULL, 'y'},
                                         {"peak-tflops", required_argument, NULL, 'k'},
                                         {"set", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    const char *backend = NULL, *config = NULL, *torch = NULL, *python = "python3";
    cad_bench_opts bo = {3, 10, 1};
    double peak_opt = 0;
    char *sets[BENCH_MAX_SETS + 2];
    int n_sets = 0;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'b':
            if (strcmp(optarg, "cpu") != 0 && strcmp(optarg, "cuda") != 0)
                return cli_usage_error("bench", "--backend: '%s' is not cpu or cuda", optarg);
            backend = optarg;
            break;
        case 'c': config = optarg; break;
        case 'n':
            if (cli_parse_long(optarg, 1, 1000000, &bo.steps)) return cli_usage_error("bench", "--steps: '%s' is not an integer >= 1", optarg);
            break;
        case 'w':
            if (cli_parse_long(optarg, 0, 1000000, &bo.warmup)) return cli_usage_error("bench", "--warmup: '%s' is not an integer >= 0", optarg);
            break;
        case 'p':
            if (cli_parse_long(optarg, 0, 1000, &bo.profile_steps))
                return cli_usage_error("bench", "--profile-steps: '%s' is not an integer in [0, 1000]", optarg);
            break;
        case 't': torch = optarg; break;
        case 'y': python = optarg; break;
        case 'k':
            if (cli_parse_double(optarg, 1e-9, 1e9, &peak_opt)) return cli_usage_error("bench", "--peak-tflops: '%s' is not a positive number", optarg);
            break;
        case 's':
            if (n_sets == BENCH_MAX_SETS) return cli_usage_error("bench", "too many --set options (max %d)", BENCH_MAX_SETS);
            sets[n_sets++] = optarg;
            break;
        default: return cli_usage_error("bench", "unknown option");
        }
    }
    if (optind != argc) return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
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

/*
 * bench.h — the timed train-step loop of `caddie bench` on any backend, the model-FLOP count
 * and MFU peak it reports, the side-by-side PyTorch run (train_gpt.py on the same data and
 * config), and the train-step session the GPU selftest's parity checks (engine/train_check.c)
 * share with it.
 *
 * A step here is exactly train_gpt.py's (and cad_train_run's) optimizer step: zero grads,
 * grad_accum micro-steps of forward + backward on the next batches of the training stream,
 * gradient scaling, clip, Muon/Adam with the schedule's lr multiplier and Muon momentum; then a
 * backend sync so the step's time is complete. Differences from cad_train_run, on purpose: no
 * warmup restore, no validation, no logs, no run directory; the lr multiplier ignores the
 * wallclock (elapsed 0), so runs are deterministic and comparable across backends.
 *
 * Model FLOPs per step (what MFU divides):  6 * P * tokens  +  6 * L * T * C * tokens
 * with P every parameter (the tied embedding counted once: its products are the output head's),
 * L the blocks a forward runs, T the sequence length, C model_dim; the second term is causal
 * attention, 12*L*T*C per token halved by the mask. Elementwise work and the optimizer are not
 * counted (PaLM's convention, so figures compare with the usual MFU numbers).
 *
 * Not here: the per-slot timing (engine/timed_backend.c), printing (cli/cmd_bench.c).
 */
#ifndef CADDIE_BENCH_H
#define CADDIE_BENCH_H

#include "engine/backend.h"
#include "engine/config.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/status.h"
#include "engine/stream.h"
#include "engine/timed_backend.h"

#include <stdint.h>

/* ---- train-step session ----------------------------------------------------------------- */

typedef struct cad_bench_session {
    cad_config *c;
    const cad_backend *be;
    cad_model m;
    cad_optim o;
    cad_train_loader L;
    int have_model, have_optim, have_loader;
    int32_t *x, *y;
    int accum, B, T;
    long step; /* optimizer steps taken */
} cad_bench_session;

/* Model (weights from c->seed), optimizer and training stream of config c (validated) on be,
 * with be's threads and matmul precision set from c. On failure s is left closed. */
int cad_bench_session_open(cad_bench_session *s, cad_config *c, const cad_backend *be, cad_err *e);
/* Gradients of one optimizer step (zeroed first, accum micro-steps, scaled by 1/accum), left
 * in the model's grad arena; *loss = mean micro-step loss. */
int cad_bench_session_grads(cad_bench_session *s, float *loss, cad_err *e);
/* One full optimizer step (grads, clip, update, zero grads, sync). */
int cad_bench_session_step(cad_bench_session *s, float *loss, cad_err *e);
void cad_bench_session_close(cad_bench_session *s);

/* ---- benchmark --------------------------------------------------------------------------- */

typedef struct cad_bench_opts {
    long warmup;        /* untimed steps first (kernel/cuBLAS priming, page faults) */
    long steps;         /* timed steps */
    long profile_steps; /* then steps with per-slot timing (0: no table) */
} cad_bench_opts;

typedef struct cad_bench_result {
    long tokens_per_step;
    int accum, B, T, layers;
    long n_params;
    double model_flops;             /* per step, the formula above */
    double ms_mean, ms_min, ms_max; /* over the timed steps */
    double tokens_per_s, tflops;    /* from ms_mean */
    double first_loss, last_loss;   /* of the timed steps */
    long profiled_steps;
    double profile_ms;              /* wall time of the profiled steps (synced) */
    const char *timer_what;         /* how slot times were taken */
    cad_slot_stat slots[CAD_TIMED_NSLOTS]; /* totals over the profiled steps */
} cad_bench_result;

/* Run o->warmup + o->steps (+ o->profile_steps with timer) steps of config c on be. timer may
 * be NULL only when o->profile_steps is 0; it must time be (a clock for cpu, events for cuda). */
int cad_bench_run(cad_config *c, const cad_backend *be, cad_slot_timer *timer, const cad_bench_opts *o,
                  cad_bench_result *r, cad_err *e);

double cad_bench_model_flops(double n_params, int layers, int T, int C, double tokens);
/* Dense bf16 tensor-core peak (TFLOP/s) of a device by its name: 989 for H100 and H200 (SXM,
 * without sparsity), 0 when unknown (the caller asks for --peak-tflops). */
double cad_bench_peak_tflops(const char *device_name);

/* ---- PyTorch side by side ----------------------------------------------------------------- */

/* 1 when `python -c 'import torch'` succeeds (python: "python3" when NULL). */
int cad_bench_torch_available(const char *python);
/* Run `python script` (train_gpt.py) in a fresh directory under tmp_root with the environment
 * train_gpt.py reads set from c (DATA_PATH, TOKENIZER_PATH, VOCAB_SIZE, the model shape,
 * TRAIN_SEQ_LEN, TRAIN_BATCH_TOKENS, ITERATIONS=steps, WARMUP_STEPS=warmup, VAL_LOSS_EVERY=0,
 * TRAIN_LOG_EVERY=1, MAX_WALLCLOCK_SECONDS=0, SEED), its stdout+stderr to log_path, and parse
 * the step_avg of its last step line. A failing script is CAD_ECHILD naming log_path. */
int cad_bench_torch_run(const char *python, const char *script, const cad_config *c, long warmup, long steps,
                        const char *tmp_root, const char *log_path, double *step_avg_ms, cad_err *e);
/* The step_avg (ms) of the last "step:..." line with one in text; CAD_EFORMAT when none. */
int cad_bench_parse_step_avg(const char *text, double *ms, cad_err *e);

#endif

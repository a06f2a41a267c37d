/*
 * test_engine_bench.c — the benchmark and selftest libraries on the CPU: the per-slot timing
 * wrapper (engine/timed_backend.c: forwards results unchanged, counts every call, survives a
 * timer that runs out of marks), the FLOP formula and peak lookup, the step_avg parser of the
 * PyTorch log (engine/bench.c), and the whole-model checks (engine/train_check.c) CPU vs CPU,
 * which must pass, and CPU vs deliberately broken backends, which must fail: a backend whose
 * products are 5% off (gradient and training parity) and one whose Adam step drifts with a call
 * counter (determinism). The bundled sample shards feed a 2-layer x 32 model.
 *
 * Not here: timings (never asserted), the GPU (caddie gpu selftest runs the same checks there).
 */
#include "check.h"

#include "engine/backend.h"
#include "engine/bench.h"
#include "engine/config.h"
#include "engine/timed_backend.h"
#include "engine/train_check.h"

static int tiny(cad_config *c, int n_extra, char **extra) {
    char d[4300], tok[4300];
    snprintf(d, sizeof d, "data_path=%s", check_src_path("data/sample/fineweb10B_sp1024"));
    snprintf(tok, sizeof tok, "tokenizer_path=%s", check_src_path("data/sample/fineweb_1024_bpe.model"));
    char *sets[32] = {d, tok, "num_layers=2", "model_dim=32", "num_heads=2", "num_kv_heads=1", "train_seq_len=32",
                      "train_batch_tokens=256", "grad_accum_steps=2", "iterations=20", "warmdown_iters=5",
                      "threads=1", "max_wallclock_seconds=0"};
    int n = 13;
    for (int i = 0; i < n_extra; i++) sets[n++] = extra[i];
    cad_err e = {0};
    int rc = cad_config_resolve(c, NULL, n, sets, &e);
    if (rc) {
        printf("config: %s\n", e.msg);
        cad_config_free(c);
    }
    return rc;
}

/* ---- timing wrapper ------------------------------------------------------------------------- */

static void test_timed_forwards_and_counts(void) {
    const cad_backend *cpu = cad_backend_cpu();
    cad_err e = {0};
    cad_slot_timer *t;
    cad_timed_backend *tb;
    /* 6 marks: room for 3 calls, so the 10 calls below force flushes inside the run */
    CHECK(cad_clock_timer_create(&t, 6, &e) == CAD_OK);
    CHECK(cad_timed_backend_create(cpu, t, &tb, &e) == CAD_OK);
    const cad_backend *be = cad_timed_backend_get(tb);
    CHECK_STR(be->name, "cpu");
    float *x = be->alloc(be, 64 * sizeof(float)), *y = be->alloc(be, 64 * sizeof(float));
    float h[64];
    for (int i = 0; i < 64; i++) h[i] = (float)i * 0.5f;
    cad_timed_backend_enable(tb, 1);
    be->copy_to_device(be, x, h, sizeof h);
    for (int i = 0; i < 5; i++) be->axpby(be, 64, 1.0f, x, 1.0f, y); /* y = 5x */
    double s = be->sumsq(be, y, 64);
    be->scale(be, 64, 2.0f, y);
    be->copy_to_host(be, h, y, sizeof h);
    be->sync(be);
    cad_timed_backend_enable(tb, 0);
    double want = 0;
    for (int i = 0; i < 64; i++) want += (5.0 * i * 0.5) * (5.0 * i * 0.5);
    CHECK_NEAR(s, want, 0, 1e-12);
    CHECK_NEAR(h[63], 10.0 * 63 * 0.5, 0, 1e-6);
    const cad_slot_stat *st = cad_timed_stats(tb);
    long total = 0;
    for (int i = 0; i < CAD_TIMED_NSLOTS; i++) {
        CHECK(st[i].ms >= 0);
        total += st[i].calls;
        if (strcmp(st[i].slot, "axpby") == 0) CHECK_EQ_INT(st[i].calls, 5);
        if (strcmp(st[i].slot, "sumsq") == 0) CHECK_EQ_INT(st[i].calls, 1);
        if (strcmp(st[i].slot, "alloc") == 0) CHECK_EQ_INT(st[i].calls, 0); /* before enable */
    }
    CHECK_EQ_INT(total, 10);
    /* disabled: forwarded, not counted */
    be->scale(be, 64, 2.0f, y);
    CHECK_EQ_INT(total, 10);
    cad_timed_reset(tb);
    for (int i = 0; i < CAD_TIMED_NSLOTS; i++) CHECK_EQ_INT(cad_timed_stats(tb)[i].calls, 0);
    be->free(be, x);
    be->free(be, y);
    cad_timed_backend_free(tb);
    cad_slot_timer_free(t);
    CHECK(cad_clock_timer_create(&t, 1, &e) == CAD_ECONFIG);
}

static void test_flops_peak_parse(void) {
    /* 6*P*tok + 6*L*T*C*tok: the baseline at 524,288 tokens */
    CHECK_NEAR(cad_bench_model_flops(17e6, 9, 1024, 512, 524288.0),
               6.0 * 17e6 * 524288.0 + 6.0 * 9 * 1024 * 512 * 524288.0, 0, 1e-15);
    CHECK_NEAR(cad_bench_peak_tflops("NVIDIA H200"), 989.0, 0, 0);
    CHECK_NEAR(cad_bench_peak_tflops("NVIDIA H100 80GB HBM3"), 989.0, 0, 0);
    CHECK_NEAR(cad_bench_peak_tflops("NVIDIA A100-SXM4-80GB"), 0.0, 0, 0);
    CHECK_NEAR(cad_bench_peak_tflops(""), 0.0, 0, 0);
    cad_err e = {0};
    double ms = -1;
    const char *log = "warmup_step:1/3\n"
                      "step:1/10 train_loss:6.9403 train_time:331ms step_avg:331.44ms\n"
                      "step:10/10 train_loss:5.1 train_time:3256ms step_avg:325.60ms\n"
                      "step:10/10 val_loss:5.2 val_bpb:3.0 train_time:3256ms step_avg:325.61ms\n"
                      "peak memory allocated: 10 MiB\n";
    CHECK(cad_bench_parse_step_avg(log, &ms, &e) == CAD_OK);
    CHECK_NEAR(ms, 325.61, 0, 1e-12);
    CHECK(cad_bench_parse_step_avg("warmup_step:1/3\nno steps here step_avg:3ms\n", &ms, &e) == CAD_EFORMAT);
    CHECK(cad_bench_parse_step_avg("step:1/2 step_avg:xms\n", &ms, &e) == CAD_EFORMAT);
}

static void test_bench_run_cpu(void) {
    cad_config c;
    if (tiny(&c, 0, NULL)) { CHECK(0); return; }
    cad_err e = {0};
    cad_slot_timer *t;
    CHECK(cad_clock_timer_create(&t, 1024, &e) == CAD_OK);
    cad_bench_opts o = {1, 2, 1};
    cad_bench_result r;
    CHECK_MSG(cad_bench_run(&c, cad_backend_cpu(), t, &o, &r, &e) == CAD_OK, "%s", e.msg);
    CHECK_EQ_INT(r.tokens_per_step, 256);
    CHECK_EQ_INT(r.accum, 2);
    CHECK_EQ_INT(r.B * r.T, 128);
    CHECK(r.ms_mean > 0 && r.ms_min <= r.ms_mean && r.ms_mean <= r.ms_max);
    CHECK(isfinite(r.last_loss) && r.last_loss > 0);
    CHECK_NEAR(r.model_flops, cad_bench_model_flops((double)r.n_params, 2, 32, 32, 256.0), 0, 1e-15);
    /* the profiled step called the model's ops, 2 micro-steps each */
    long fwd = -1;
    double in_slots = 0;
    for (int i = 0; i < CAD_TIMED_NSLOTS; i++) {
        in_slots += r.slots[i].ms;
        if (strcmp(r.slots[i].slot, "embedding_forward") == 0) fwd = r.slots[i].calls;
    }
    CHECK_EQ_INT(fwd, 2);
    CHECK(in_slots <= r.profile_ms + 1e-6);
    cad_bench_opts bad = {0, 0, 0};
    CHECK(cad_bench_run(&c, cad_backend_cpu(), NULL, &bad, &r, &e) == CAD_ECONFIG);
    cad_slot_timer_free(t);
    cad_config_free(&c);
}

/* ---- whole-model checks ----------------------------------------------------------------------- */

typedef struct tally {
    int n, failed;
    char first_fail[160];
} tally;

static void count_item(const cad_check_item *it, void *ud) {
    tally *t = ud;
    t->n++;
    if (!it->pass && !t->failed++) snprintf(t->first_fail, sizeof t->first_fail, "%s %s %s", it->check, it->precision, it->what);
}

/* products 5% too large */
static void off_matmul(const cad_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    (void)be;
    cad_backend_cpu()->matmul(cad_backend_cpu(), ta, tb, M, N, K, alpha * 1.05f, A, lda, B, ldb, beta, C, ldc);
}
/* an Adam step whose lr drifts with a process-wide call counter: two runs differ */
static long adam_calls;
static void drift_adam(const cad_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr,
                       float b1, float b2, float eps, float bc1, float bc2) {
    (void)be;
    adam_calls++;
    cad_backend_cpu()->adam_update(cad_backend_cpu(), p, g, m, v, n, lr * (1.0f + 1e-4f * (float)adam_calls), b1, b2,
                                   eps, bc1, bc2);
}

static void test_parity_cpu_vs_cpu_passes(void) {
    cad_config c;
    if (tiny(&c, 0, NULL)) { CHECK(0); return; }
    const cad_backend *cpu = cad_backend_cpu();
    cad_err e = {0};
    tally t = {0};
    int nf = -1;
    CHECK_MSG(cad_check_grads(&c, cpu, cpu, 7, 1e-12, 1e-9, count_item, &t, &nf, &e) == CAD_OK, "%s", e.msg);
    CHECK_EQ_INT(nf, 0);
    CHECK(t.n >= 10); /* the loss and every non-empty parameter */
    memset(&t, 0, sizeof t);
    CHECK_MSG(cad_check_train(&c, cpu, cpu, 4, 1e-9, count_item, &t, &nf, &e) == CAD_OK, "%s", e.msg);
    CHECK_EQ_INT(nf, 0);
    CHECK_EQ_INT(t.n, 4);
    memset(&t, 0, sizeof t);
    CHECK_MSG(cad_check_determinism(&c, cpu, 3, count_item, &t, &nf, &e) == CAD_OK, "%s", e.msg);
    CHECK_MSG(nf == 0, "%s", t.first_fail);
    CHECK_EQ_INT(t.n, 4); /* 3 losses + the final weights */
    cad_config_free(&c);
}

static void test_parity_catches_broken_backends(void) {
    cad_config c;
    if (tiny(&c, 0, NULL)) { CHECK(0); return; }
    const cad_backend *cpu = cad_backend_cpu();
    cad_backend off = *cpu, drift = *cpu;
    off.matmul = off_matmul;
    drift.adam_update = drift_adam;
    cad_err e = {0};
    tally t = {0};
    int nf = 0;
    CHECK_MSG(cad_check_grads(&c, cpu, &off, 7, 1e-8, 1e-3, count_item, &t, &nf, &e) == CAD_OK, "%s", e.msg);
    CHECK(nf > 0);
    CHECK_EQ_INT(nf, t.failed);
    memset(&t, 0, sizeof t);
    CHECK_MSG(cad_check_train(&c, cpu, &off, 4, 1e-3, count_item, &t, &nf, &e) == CAD_OK, "%s", e.msg);
    CHECK(nf > 0);
    memset(&t, 0, sizeof t);
    CHECK_MSG(cad_check_determinism(&c, &drift, 3, count_item, &t, &nf, &e) == CAD_OK, "%s", e.msg);
    CHECK(nf > 0);
    CHECK_MSG(strstr(t.first_fail, "determinism") != NULL, "%s", t.first_fail);
    /* the drifting Adam step is still close: the parity check with a loose bound passes it */
    CHECK_MSG(cad_check_train(&c, cpu, &drift, 3, 1e-2, NULL, NULL, &nf, &e) == CAD_OK, "%s", e.msg);
    CHECK_EQ_INT(nf, 0);
    CHECK(cad_check_train(&c, cpu, cpu, 0, 1e-3, NULL, NULL, &nf, &e) == CAD_ECONFIG);
    cad_config_free(&c);
}

static void test_selftest_sequence(void) {
    /* the selftest's sequence on the CPU: both precisions, config from a file */
    char cfg[4400];
    snprintf(cfg, sizeof cfg, "%s/tiny.yaml", check_tmpdir());
    FILE *f = fopen(cfg, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "data_path: %s\ntokenizer_path: %s\nnum_layers: 1\nmodel_dim: 32\nnum_heads: 2\nnum_kv_heads: 1\n"
               "train_seq_len: 32\ntrain_batch_tokens: 128\ngrad_accum_steps: 1\nthreads: 1\n",
            check_src_path("data/sample/fineweb10B_sp1024"), check_src_path("data/sample/fineweb_1024_bpe.model"));
    CHECK(fclose(f) == 0);
    cad_train_selftest_opts o = {cfg, 0, 0, 3, 2, 1e-12, 1e-12, 1e-9};
    const cad_backend *cpu = cad_backend_cpu();
    cad_err e = {0};
    tally t = {0};
    int nf = -1;
    CHECK_MSG(cad_train_selftest(&o, cpu, cpu, count_item, &t, &nf, &e) == CAD_OK, "%s", e.msg);
    CHECK_MSG(nf == 0, "%s", t.first_fail);
    /* per precision: grads (loss + params) + 3 train steps + 2 determinism steps + final weights */
    CHECK(t.n > 2 * (1 + 3 + 3));
    o.config = "/nonexistent/config.yaml";
    CHECK(cad_train_selftest(&o, cpu, cpu, NULL, NULL, &nf, &e) != CAD_OK);
}

int main(void) {
    RUN(test_timed_forwards_and_counts);
    RUN(test_flops_peak_parse);
    RUN(test_bench_run_cpu);
    RUN(test_parity_cpu_vs_cpu_passes);
    RUN(test_parity_catches_broken_backends);
    RUN(test_selftest_sequence);
    return check_report();
}

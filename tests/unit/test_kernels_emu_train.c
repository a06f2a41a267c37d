/*
 * test_kernels_emu_train.c — the GPU selftest's whole-model checks (engine/train_check.c) with
 * the CUDA backend's kernels compiled for the CPU emulation layer as the backend under test:
 * one step's loss and every parameter gradient, and a 3-step training run, against the CPU
 * reference, in fp32 and bf16 products, on a 1-layer x 32 model over the bundled sample. What
 * `caddie gpu selftest` runs on a GPU at larger sizes; here it proves the sequence works through
 * the real slot code (kernels/k_backend.cuh) and not only CPU vs CPU.
 *
 * One translation unit with the emulator, like test_kernels_emu.c (the product binary carries no
 * emulation code). Not here: op-level checks (test_kernels_emu.c), timings.
 */
#include "check.h"

#include "kernels/emu/cuda_emu.c"

#include "engine/config.h"
#include "engine/train_check.h"
#include "kernels/k_backend.cuh"

static kb_ctx emu_ctx;
static cad_backend emu_be;

static const cad_backend *emu_backend(void) {
    if (!emu_be.alloc) {
        kb_ctx_init(&emu_ctx);
        kb_backend_fill(&emu_be, &emu_ctx, "cuda-emu");
    }
    return &emu_be;
}

static int tiny(cad_config *c, const char *prec) {
    char d[4300], tok[4300], p[64];
    snprintf(d, sizeof d, "data_path=%s", check_src_path("data/sample/fineweb10B_sp1024"));
    snprintf(tok, sizeof tok, "tokenizer_path=%s", check_src_path("data/sample/fineweb_1024_bpe.model"));
    snprintf(p, sizeof p, "matmul_precision=%s", prec);
    char *sets[] = {d, tok, p, "num_layers=1", "model_dim=32", "num_heads=2", "num_kv_heads=1", "train_seq_len=32",
                    "train_batch_tokens=128", "grad_accum_steps=1", "threads=1", "max_wallclock_seconds=0"};
    cad_err e = {0};
    int rc = cad_config_resolve(c, NULL, (int)(sizeof sets / sizeof sets[0]), sets, &e);
    if (rc) {
        printf("config: %s\n", e.msg);
        cad_config_free(c);
    }
    return rc;
}

typedef struct tally {
    int n, failed;
    char first_fail[200];
} tally;

static void count_item(const cad_check_item *it, void *ud) {
    tally *t = ud;
    t->n++;
    if (!it->pass && !t->failed++)
        snprintf(t->first_fail, sizeof t->first_fail, "%s %s %s: err %.3g > %.3g", it->check, it->precision, it->what,
                 it->err, it->limit);
}

static void check_precision(const char *prec, double grad_nmse) {
    cad_config c;
    if (tiny(&c, prec)) { CHECK(0); return; }
    cad_err e = {0};
    tally t = {0};
    int nf = -1;
    CHECK_MSG(cad_check_grads(&c, cad_backend_cpu(), emu_backend(), 3, grad_nmse, 1e-5, count_item, &t, &nf, &e) == CAD_OK,
              "%s", e.msg);
    CHECK_MSG(nf == 0, "%s", t.first_fail);
    CHECK(t.n > 5);
    memset(&t, 0, sizeof t);
    CHECK_MSG(cad_check_train(&c, cad_backend_cpu(), emu_backend(), 3, 1e-3, count_item, &t, &nf, &e) == CAD_OK, "%s",
              e.msg);
    CHECK_MSG(nf == 0, "%s", t.first_fail);
    CHECK_EQ_INT(t.n, 3);
    cad_config_free(&c);
}

static void test_emu_vs_cpu_fp32(void) { check_precision("fp32", 1e-8); }
static void test_emu_vs_cpu_bf16(void) { check_precision("bf16", 1e-4); }

int main(void) {
    emu_set_seed(1);
    RUN(test_emu_vs_cpu_fp32);
    RUN(test_emu_vs_cpu_bf16);
    return check_report();
}

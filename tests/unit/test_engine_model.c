/*
 * test_engine_model.c — the whole model (engine/model.c on the CPU backend): parameter table
 * against train_gpt.py's state_dict, init values, PyTorch parity of loss/logits/every gradient,
 * finite differences of the whole model, accumulation/determinism, and error reporting.
 *
 * Parity fixtures come from tests/scripts/gen_model_fixture.py (torch 1.13, fp32, CPU):
 * model_parity_v1.bin (tied, 3 layers, GQA 4/2) and model_parity_untied_v1.bin (untied head,
 * 4 layers, MHA). Both sides compute in fp32 with different summation orders (and caddie uses
 * polynomial exp/tanh of ~2 ulp), so agreement is to fp32 rounding amplified through the depth
 * of the network; each tolerance below says what it allows.
 *
 * Not here: single ops (test_engine_ops.c), optimizers and training (trainer tests).
 */
#include "check.h"
#include "engine/model.h"
#include "engine/export.h"
#include "test_util.h" /* after model.h, export.h: check_int8_roundtrip */
#include "parity_fixture.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Init a model for the fixture and copy its weights in by state_dict name; checks that the
 * parameter table matches the fixture's state_dict (names, order, shapes). */
static int model_from_fixture(cad_model *m, const pf_file *f, int *B, int *T) {
    *B = (int)pf_scalar(f, "config.B");
    *T = (int)pf_scalar(f, "config.T");
    cad_model_config c = pf_model_config(f, *B);
    cad_err e;
    int rc = cad_model_init(m, &c, cad_backend_cpu(), 1, &e);
    CHECK_MSG(rc == CAD_OK, "cad_model_init: %s", e.msg);
    if (rc) return -1;
    /* the fixture lists the state_dict right after the config.* records, in order */
    int first = 0;
    while (first < f->n && strncmp(f->r[first].name, "config.", 7) == 0) first++;
    for (int i = 0; i < m->n_params; i++) {
        cad_param *p = &m->params[i];
        const pf_record *r = first + i < f->n ? &f->r[first + i] : NULL;
        CHECK_MSG(r && strcmp(r->name, p->name) == 0, "param %d is '%s', state_dict has '%s'", i, p->name,
                  r ? r->name : "(end)");
        if (!r || strcmp(r->name, p->name) != 0) return -1;
        CHECK_EQ_INT(r->ndim, p->ndim);
        for (int d = 0; d < p->ndim; d++) CHECK_EQ_INT(r->shape[d], p->shape[d]);
        CHECK_EQ_INT(r->numel, p->numel);
        if (r->numel != p->numel) return -1;
        m->be->copy_to_device(m->be, p->data, r->data, sizeof(float) * (size_t)p->numel);
    }
    const pf_record *after = first + m->n_params < f->n ? &f->r[first + m->n_params] : NULL;
    CHECK_MSG(after && strcmp(after->name, "x") == 0, "state_dict has more tensors than the model (next '%s')",
              after ? after->name : "(end)");
    return 0;
}

/* The fixture at rel (a repo path) and a model holding its weights: 0, or -1 with the reason
 * checked and nothing left allocated. */
static int load_case(const char *rel, pf_file *f, cad_model *m, int *B, int *T) {
    if (pf_load(check_src_path(rel), f)) {
        CHECK_MSG(0, "fixture %s unreadable", rel);
        return -1;
    }
    if (model_from_fixture(m, f, B, T)) {
        pf_free(f);
        return -1;
    }
    return 0;
}

/* max |a-b| and max |a-b| / max|b| over a tensor, printed; returns whether within atol+rtol*max|b|. */
static int compare_tensor(const char *what, const float *got, const float *want, long n, double atol, double rtol) {
    double maxabs = 0.0, maxref = 0.0;
    for (long i = 0; i < n; i++) {
        maxabs = fmax(maxabs, fabs((double)got[i] - want[i]));
        maxref = fmax(maxref, fabs((double)want[i]));
    }
    double rel = maxref > 0 ? maxabs / maxref : 0.0;
    int ok = maxabs <= atol + rtol * maxref;
    printf("    %-34s n=%-6ld max|ref|=%-10.4g max abs err=%-10.3g rel(max)=%-10.3g %s\n", what, n, maxref, maxabs, rel,
           ok ? "" : "  <-- FAIL");
    CHECK_MSG(ok, "%s: max abs error %g > %g + %g * %g", what, maxabs, atol, rtol, maxref);
    return ok;
}

/* ---- parity ------------------------------------------------------------------------------ */

static void parity_case(const char *rel) {
    pf_file f;
    cad_model m;
    int B, T;
    if (load_case(rel, &f, &m, &B, &T)) return;
    const pf_record *x = pf_get(&f, "x"), *y = pf_get(&f, "y");
    cad_err e;
    float loss = 0.0f;
    int rc = cad_model_forward(&m, x->data, y->data, B, T, &loss, &e);
    CHECK_MSG(rc == CAD_OK, "forward: %s", e.msg);
    float want_loss = ((float *)pf_get(&f, "loss")->data)[0];
    long N = (long)B * T, V = m.cfg.vocab_size;
    printf("    loss caddie %.8f torch %.8f\n", loss, want_loss);
    /* loss ~ 4-8 nats; fp32 mean of N terms each correct to ~1e-6 relative */
    CHECK_NEAR(loss, want_loss, 1e-5, 1e-5);
    /* logits in [-cap, cap]: fast tanh (~2 ulp) and reordered sums, 1e-5 of the largest logit */
    compare_tensor("logits", m.logits, pf_get(&f, "logits")->data, N * V, 1e-6, 1e-5);
    compare_tensor("token_loss", m.token_loss, pf_get(&f, "token_loss")->data, N, 1e-6, 1e-5);
    if (m.cfg.mlp_experts || m.cfg.n_exits) { /* + the aux and exit losses backward differentiates */
        float want_obj = ((float *)pf_get(&f, "objective")->data)[0];
        printf("    objective caddie %.8f torch %.8f\n", m.objective, want_obj);
        CHECK_NEAR(m.objective, want_obj, 1e-5, 1e-5);
    }
    rc = cad_model_backward(&m, &e);
    CHECK_MSG(rc == CAD_OK, "backward: %s", e.msg);
    for (int i = 0; i < m.n_params; i++) {
        cad_param *p = &m.params[i];
        char gname[160];
        snprintf(gname, sizeof gname, "grad.%s", p->name);
        const pf_record *r = pf_get(&f, gname);
        CHECK_MSG(r && r->numel == p->numel, "fixture lacks %s", gname);
        if (!r || r->numel != p->numel) continue;
        /* Gradients pass backward through up to 4 blocks of fp32 GEMMs and normalisations:
         * allow 2e-5 of the tensor's largest entry (observed <= 3.2e-6 of it; a wrong formula
         * is off by O(1) of it). atol 1e-8 covers tensors whose gradient is ~0 everywhere. */
        compare_tensor(gname, p->grad, r->data, p->numel, 1e-8, 2e-5);
    }
    cad_model_free(&m);
    pf_free(&f);
}

static void test_parity_tied_gqa(void) { parity_case("tests/fixtures/engine/model_parity_v1.bin"); }
static void test_parity_untied_mha(void) { parity_case("tests/fixtures/engine/model_parity_untied_v1.bin"); }
/* depth recurrence: blocks 1-2 of 4 run 3x with shared weights (8 virtual blocks, 4 skips);
 * each shared block's gradient is the sum over its three uses */
static void test_parity_depth_recurrence(void) { parity_case("tests/fixtures/engine/model_parity_recur_v1.bin"); }
/* recur_loop_scales: the same loop with passes 1 and 2 scaled by their own attn/mlp vectors */
static void test_parity_recur_loop_scales(void) {
    parity_case("tests/fixtures/engine/model_parity_recur_scales_v1.bin");
}

/* recur_loop_scales with every extra-pass row equal to its block's attn_scale / mlp_scale is the
 * model without them, bit for bit (the same products in the same order); one changed row changes
 * the loss (the rows are used). */
static void test_recur_loop_scales_copies_are_plain_recurrence(void) {
    pf_file f;
    cad_model plain;
    int B, T;
    if (load_case("tests/fixtures/engine/model_parity_recur_v1.bin", &f, &plain, &B, &T)) return;
    cad_model_config c = plain.cfg;
    c.recur_loop_scales = 1;
    cad_model sc;
    cad_err e;
    CHECK(cad_model_init(&sc, &c, cad_backend_cpu(), 1, &e) == CAD_OK);
    CHECK_EQ_INT(sc.n_params, plain.n_params + 2 * (c.recur_last - c.recur_first + 1));
    for (int i = 0; i < plain.n_params; i++) {
        cad_param *p = cad_model_param(&sc, plain.params[i].name);
        CHECK(p && p->numel == plain.params[i].numel);
        if (p) memcpy(p->data, plain.params[i].data, sizeof(float) * (size_t)p->numel);
    }
    char nm[64];
    for (int l = c.recur_first; l <= c.recur_last; l++) {
        const char *kind[2] = {"attn", "mlp"};
        for (int k = 0; k < 2; k++) {
            snprintf(nm, sizeof nm, "blocks.%d.%s_scales", l, kind[k]);
            cad_param *rows = cad_model_param(&sc, nm);
            snprintf(nm, sizeof nm, "blocks.%d.%s_scale", l, kind[k]);
            cad_param *one = cad_model_param(&sc, nm);
            CHECK(rows && one && rows->ndim == 2 && rows->shape[0] == c.recur_loops - 1 && rows->is_control);
            if (!rows || !one) continue;
            for (int r = 0; r < c.recur_loops - 1; r++)
                memcpy(rows->data + (size_t)r * c.model_dim, one->data, sizeof(float) * (size_t)c.model_dim);
        }
    }
    const pf_record *x = pf_get(&f, "x"), *y = pf_get(&f, "y");
    float l0 = 0, l1 = 0, l2 = 0;
    CHECK(cad_model_forward(&plain, x->data, y->data, B, T, &l0, &e) == CAD_OK);
    CHECK(cad_model_forward(&sc, x->data, y->data, B, T, &l1, &e) == CAD_OK);
    CHECK_MSG(l0 == l1, "copied per-pass scales: loss %.9g vs %.9g", l1, l0);
    cad_param *rows = cad_model_param(&sc, "blocks.2.mlp_scales");
    if (rows) rows->data[(size_t)c.model_dim + 3] += 0.5f; /* pass 2 of block 2 */
    CHECK(cad_model_forward(&sc, x->data, y->data, B, T, &l2, &e) == CAD_OK);
    CHECK_MSG(l2 != l1, "a changed pass-2 scale left the loss unchanged");
    cad_model_free(&sc);
    cad_model_free(&plain);
    pf_free(&f);
}


/* the records' MLP activation, leaky_relu(x, 0.5)^2 */
static void test_parity_leaky_relu2(void) { parity_case("tests/fixtures/engine/model_parity_leaky_v1.bin"); }
/* XSA in the last 2 of 3 blocks (GQA: the value gradient sums over two heads) */
static void test_parity_xsa(void) { parity_case("tests/fixtures/engine/model_parity_xsa_v1.bin"); }
/* GPT-J parallel residual in the last 2 of 4 blocks */
static void test_parity_parallel_residual(void) { parity_case("tests/fixtures/engine/model_parity_parallel_v1.bin"); }

/* factorized embedding (tok_emb 64x12, embed_proj 32x12, the tied head through both) + LN scale */
static void test_parity_factorized_embedding(void) { parity_case("tests/fixtures/engine/model_parity_embed_v1.bin"); }
/* BigramHash (40 buckets x 8, projected) + SmearGate with BOS at a row start and inside rows */
static void test_parity_bigram_smear(void) { parity_case("tests/fixtures/engine/model_parity_bigram_v1.bin"); }
/* BigramHash at bigram_dim = model_dim (no projection), untied head, LN scale by physical block
 * under recurrence (the repeated blocks keep their own factor) */
static void test_parity_bigram_same_width(void) { parity_case("tests/fixtures/engine/model_parity_bigram_same_v1.bin"); }
/* partial RoPE, 4 of 8 head dims, in caddie's pairing (the generator checks it against the
 * records' pairing under cad_model_rope_perm) */
/* micro-MoE: top-2 of 4 experts with renormalised gates and the load-balance loss, LN scale */
static void test_parity_moe(void) { parity_case("tests/fixtures/engine/model_parity_moe_v1.bin"); }
/* top-1 (Switch gate), untied head, exit heads after blocks 1 and 3 of 4 in the objective */
static void test_parity_moe_early_exit(void) { parity_case("tests/fixtures/engine/model_parity_moe_exit_v1.bin"); }

static void test_parity_partial_rope(void) { parity_case("tests/fixtures/engine/model_parity_rope_v1.bin"); }
/* attn_gate: sparse (12 input dims) after XSA with LN scale; full over recurrence (the shared
 * blocks' gates used twice), untied (gate weights spread so the gates are not all 0.5) */
static void test_parity_attn_gate(void) { parity_case("tests/fixtures/engine/model_parity_gate_v1.bin"); }
static void test_parity_attn_gate_full(void) { parity_case("tests/fixtures/engine/model_parity_gate_full_v1.bin"); }

/* matmul_precision: bf16 against the same fp32 torch fixture: every dense product now reads
 * operands rounded to bf16 (relative error up to 2^-9 each), so the loss and gradients move by
 * bf16 noise, not by a formula error. The loss must differ from the fp32 one (the setting is in
 * effect) and stay within bf16 distance of torch's. */
static void test_parity_bf16_matmuls(void) {
    pf_file f;
    cad_model m;
    int B, T;
    if (load_case("tests/fixtures/engine/model_parity_v1.bin", &f, &m, &B, &T)) return;
    const pf_record *x = pf_get(&f, "x"), *y = pf_get(&f, "y");
    cad_err e;
    float loss32 = 0.0f, loss16 = 0.0f;
    CHECK(cad_model_forward(&m, x->data, y->data, B, T, &loss32, &e) == CAD_OK);
    CHECK(m.be->set_matmul_precision(m.be, CAD_PREC_BF16) == 0);
    cad_model_zero_grad(&m);
    CHECK(cad_model_forward(&m, x->data, y->data, B, T, &loss16, &e) == CAD_OK);
    CHECK(cad_model_backward(&m, &e) == CAD_OK);
    m.be->set_matmul_precision(m.be, CAD_PREC_FP32);
    float want = ((float *)pf_get(&f, "loss")->data)[0];
    printf("    loss bf16 %.8f fp32 %.8f torch %.8f\n", loss16, loss32, want);
    CHECK_MSG(loss16 != loss32, "bf16 loss equals the fp32 loss bit for bit: precision not applied");
    CHECK_NEAR(loss16, want, 0.0, 1e-3); /* observed 5.1e-4 relative */
    for (int i = 0; i < m.n_params; i++) {
        cad_param *p = &m.params[i];
        char gname[160];
        snprintf(gname, sizeof gname, "grad.%s", p->name);
        const pf_record *r = pf_get(&f, gname);
        if (!r || r->numel != p->numel) continue;
        /* observed <= 1.9e-2 of the tensor's largest entry, 3.2e-2 for a q_gain (a sum over
         * every token of small bf16-noisy terms); a wrong formula is off by O(1) of it */
        compare_tensor(gname, p->grad, r->data, p->numel, 1e-7, 5e-2);
    }
    cad_model_free(&m);
    pf_free(&f);
}

/* ---- finite differences of the whole model ----------------------------------------------- */

static void fd_case(const char *rel, const char *const *names, size_t n_names) {
    pf_file f;
    cad_model m;
    int B, T;
    if (load_case(rel, &f, &m, &B, &T)) return;
    int32_t *x = pf_get(&f, "x")->data, *y = pf_get(&f, "y")->data;
    cad_err e;
    float loss;
    cad_model_zero_grad(&m);
    CHECK(cad_model_forward(&m, x, y, B, T, &loss, &e) == CAD_OK);
    CHECK(cad_model_backward(&m, &e) == CAD_OK);
    uint64_t s = 42;
    for (size_t k = 0; k < n_names; k++) {
        cad_param *p = cad_model_param(&m, names[k]);
        CHECK_MSG(p != NULL, "no parameter %s", names[k]);
        if (!p) continue;
        double gmax = 0.0;
        for (long i = 0; i < p->numel; i++) gmax = fmax(gmax, fabs(p->grad[i]));
        double worst = 0.0;
        for (int t = 0; t < 6; t++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            long i = (long)((s >> 33) % (uint64_t)p->numel);
            /* h = 1e-2: the mean loss is ~8 in fp32 (rounding ~5e-7), so the quotient's noise is
             * ~5e-5; truncation O(h^2 f''') is of the same order (observed <= 5e-5).
             * Tolerance: 2e-3 of the tensor's largest gradient plus 1e-4 absolute. */
            float v = p->data[i], h = 1e-2f, lp, lm;
            p->data[i] = v + h;
            cad_model_forward(&m, x, y, B, T, &lp, &e);
            p->data[i] = v - h;
            cad_model_forward(&m, x, y, B, T, &lm, &e);
            p->data[i] = v;
            double fd = ((double)lp - lm) / (2.0 * h), an = p->grad[i], tol = 1e-4 + 2e-3 * gmax;
            worst = fmax(worst, fabs(fd - an) / tol);
            CHECK_MSG(fabs(fd - an) <= tol, "%s[%ld]: finite difference %.6g vs backward %.6g (tol %.3g)", names[k], i,
                      fd, an, tol);
        }
        printf("    %-28s max|grad|=%-10.4g worst err/tol=%.3f\n", names[k], gmax, worst);
    }
    cad_model_free(&m);
    pf_free(&f);
}

static void test_model_finite_differences(void) {
    /* one sample of every tensor kind, incl. the skip weights of the odd-depth U-Net */
    static const char *const tied[] = {
        "tok_emb.weight", "skip_weights", "blocks.0.resid_mix", "blocks.0.attn.q_gain",
        "blocks.0.attn.c_q.weight", "blocks.1.attn.c_k.weight", "blocks.2.attn.c_v.weight",
        "blocks.1.attn.proj.weight", "blocks.2.mlp.fc.weight", "blocks.0.mlp.proj.weight",
        "blocks.1.attn_scale", "blocks.2.mlp_scale"};
    fd_case("tests/fixtures/engine/model_parity_v1.bin", tied, sizeof(tied) / sizeof(tied[0]));
    /* untied head: lm_head and the input-only embedding */
    static const char *const untied[] = {"lm_head.weight", "tok_emb.weight", "skip_weights", "blocks.3.attn.c_q.weight"};
    fd_case("tests/fixtures/engine/model_parity_untied_v1.bin", untied, sizeof(untied) / sizeof(untied[0]));
    /* recurrence: the shared blocks 1 and 2 (three uses each) and a once-used one */
    static const char *const recur[] = {"skip_weights", "blocks.1.attn.c_q.weight", "blocks.2.mlp.proj.weight",
                                        "blocks.1.resid_mix", "blocks.2.attn.q_gain", "blocks.3.mlp.fc.weight"};
    fd_case("tests/fixtures/engine/model_parity_recur_v1.bin", recur, sizeof(recur) / sizeof(recur[0]));
    /* per-pass scales: pass 1 and 2 rows, and the pass-0 vector beside them */
    static const char *const rscales[] = {"blocks.1.attn_scales", "blocks.2.mlp_scales", "blocks.1.attn_scale",
                                          "blocks.2.attn.c_q.weight"};
    fd_case("tests/fixtures/engine/model_parity_recur_scales_v1.bin", rscales, sizeof(rscales) / sizeof(rscales[0]));
    /* XSA: c_v feeds the projection's value term as well as attention */
    static const char *const xsa[] = {"blocks.2.attn.c_v.weight", "blocks.1.attn.c_q.weight", "blocks.2.attn.proj.weight"};
    fd_case("tests/fixtures/engine/model_parity_xsa_v1.bin", xsa, sizeof(xsa) / sizeof(xsa[0]));
    /* parallel residual: both branches of block 3 read the same norm */
    static const char *const par[] = {"blocks.3.mlp.fc.weight", "blocks.3.attn_scale", "blocks.3.resid_mix",
                                      "blocks.2.attn.c_q.weight"};
    fd_case("tests/fixtures/engine/model_parity_parallel_v1.bin", par, sizeof(par) / sizeof(par[0]));
    /* factorized embedding: both uses of tok_emb and embed_proj (input and tied head), LN scale */
    static const char *const emb[] = {"tok_emb.weight", "embed_proj.weight", "blocks.2.attn.c_q.weight",
                                      "blocks.1.mlp.fc.weight"};
    fd_case("tests/fixtures/engine/model_parity_embed_v1.bin", emb, sizeof(emb) / sizeof(emb[0]));
    /* BigramHash table, projection and scalar; the SmearGate gate */
    static const char *const bg[] = {"bigram.embed.weight", "bigram.proj.weight", "bigram.scale", "smear.gate",
                                     "tok_emb.weight"};
    fd_case("tests/fixtures/engine/model_parity_bigram_v1.bin", bg, sizeof(bg) / sizeof(bg[0]));
    static const char *const bgs[] = {"bigram.embed.weight", "bigram.scale", "blocks.2.attn.c_k.weight"};
    fd_case("tests/fixtures/engine/model_parity_bigram_same_v1.bin", bgs, sizeof(bgs) / sizeof(bgs[0]));
    static const char *const rope[] = {"blocks.1.attn.c_q.weight", "blocks.2.attn.c_k.weight"};
    fd_case("tests/fixtures/engine/model_parity_rope_v1.bin", rope, sizeof(rope) / sizeof(rope[0]));
    /* attn_gate: the gate weights, and c_q whose input the gate reads too */
    static const char *const gate[] = {"blocks.1.attn.attn_gate_w", "blocks.2.attn.attn_gate_w", "blocks.0.attn.c_q.weight"};
    fd_case("tests/fixtures/engine/model_parity_gate_v1.bin", gate, sizeof(gate) / sizeof(gate[0]));
    static const char *const gfull[] = {"blocks.1.attn.attn_gate_w", "blocks.3.attn.attn_gate_w", "blocks.2.attn.proj.weight"};
    fd_case("tests/fixtures/engine/model_parity_gate_full_v1.bin", gfull, sizeof(gfull) / sizeof(gfull[0]));
}

/* ---- table, init, semantics -------------------------------------------------------------- */

static cad_model_config tiny_config(void) {
    cad_model_config c = {.vocab_size = 64, .num_layers = 3, .model_dim = 32, .num_heads = 4, .num_kv_heads = 2,
                          .mlp_mult = 2, .tie_embeddings = 1, .rope_base = 10000.0f, .logit_softcap = 30.0f,
                          .qk_gain_init = 1.5f, .tied_embed_init_std = 0.005f, .max_batch_seqs = 2, .max_seq_len = 16};
    return c;
}

static void test_param_table_and_groups(void) {
    cad_model_config c = tiny_config();
    c.tie_embeddings = 0;
    cad_model m;
    cad_err e;
    CHECK(cad_model_init(&m, &c, cad_backend_cpu(), 7, &e) == CAD_OK);
    CHECK_EQ_INT(m.n_params, 2 + 3 * 10 + 1);
    CHECK_STR(m.params[0].name, "skip_weights");
    CHECK_STR(m.params[1].name, "tok_emb.weight");
    CHECK_STR(m.params[2].name, "blocks.0.attn_scale");
    CHECK_STR(m.params[6].name, "blocks.0.attn.c_q.weight");
    CHECK_STR(m.params[m.n_params - 1].name, "lm_head.weight");
    struct { const char *name; int group, control; long d0, d1; } want[] = {
        {"skip_weights", CAD_PG_SCALAR, 1, 1, 32},
        {"tok_emb.weight", CAD_PG_EMBED, 0, 64, 32},
        {"lm_head.weight", CAD_PG_HEAD, 0, 64, 32},
        {"blocks.1.resid_mix", CAD_PG_SCALAR, 1, 2, 32},
        {"blocks.1.attn.q_gain", CAD_PG_SCALAR, 1, 4, 0},
        {"blocks.2.attn.c_k.weight", CAD_PG_MATRIX, 0, 16, 32},
        {"blocks.2.mlp.fc.weight", CAD_PG_MATRIX, 0, 64, 32},
        {"blocks.2.mlp.proj.weight", CAD_PG_MATRIX, 0, 32, 64},
        {"blocks.0.mlp_scale", CAD_PG_SCALAR, 1, 32, 0},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        cad_param *p = cad_model_param(&m, want[i].name);
        CHECK_MSG(p != NULL, "missing %s", want[i].name);
        if (!p) continue;
        CHECK_EQ_INT(p->group, want[i].group);
        CHECK_EQ_INT(p->is_control, want[i].control);
        CHECK_EQ_INT(p->shape[0], want[i].d0);
        if (want[i].d1) CHECK_EQ_INT(p->shape[1], want[i].d1);
    }
    CHECK(cad_model_param(&m, "blocks.3.attn_scale") == NULL);
    long total = 0;
    for (int i = 0; i < m.n_params; i++) total += m.params[i].numel;
    CHECK_EQ_INT(total, (long)m.n_param_floats);
    CHECK(m.act_bytes > 0);
    cad_model_free(&m);
}

static void test_init_values(void) {
    cad_model_config c = tiny_config();
    c.vocab_size = 512, c.model_dim = 64, c.num_heads = 4;
    cad_model m;
    cad_err e;
    CHECK(cad_model_init(&m, &c, cad_backend_cpu(), 3, &e) == CAD_OK);
    cad_param *emb = cad_model_param(&m, "tok_emb.weight");
    double ss = 0.0, mean = 0.0;
    for (long i = 0; i < emb->numel; i++) mean += emb->data[i], ss += (double)emb->data[i] * emb->data[i];
    mean /= emb->numel;
    double std = sqrt(ss / emb->numel - mean * mean);
    CHECK_NEAR(std, 0.005, 0.0, 0.03); /* 32768 samples: std of the std estimate ~0.4% */
    CHECK(fabs(mean) < 1e-4);
    cad_param *q = cad_model_param(&m, "blocks.1.attn.c_q.weight");
    float bound = 1.0f / sqrtf(64.0f), mx = 0.0f;
    for (long i = 0; i < q->numel; i++) mx = fmaxf(mx, fabsf(q->data[i]));
    CHECK(mx <= bound && mx > 0.95f * bound); /* U(-1/sqrt(in), 1/sqrt(in)) */
    const char *zero[] = {"blocks.0.attn.proj.weight", "blocks.2.mlp.proj.weight"};
    for (int k = 0; k < 2; k++) {
        cad_param *p = cad_model_param(&m, zero[k]);
        for (long i = 0; i < p->numel; i++) CHECK(p->data[i] == 0.0f);
    }
    cad_param *g = cad_model_param(&m, "blocks.2.attn.q_gain"), *mix = cad_model_param(&m, "blocks.0.resid_mix");
    for (long i = 0; i < g->numel; i++) CHECK(g->data[i] == 1.5f);
    for (long i = 0; i < 64; i++) CHECK(mix->data[i] == 1.0f && mix->data[64 + i] == 0.0f);
    cad_param *sk = cad_model_param(&m, "skip_weights");
    for (long i = 0; i < sk->numel; i++) CHECK(sk->data[i] == 1.0f);
    for (size_t i = 0; i < m.n_param_floats; i++)
        if (m.grad_mem[i] != 0.0f) { CHECK_MSG(0, "grad %zu not zero after init", i); break; }
    /* same seed -> same weights; other seed -> other weights */
    cad_model m2;
    CHECK(cad_model_init(&m2, &c, cad_backend_cpu(), 3, &e) == CAD_OK);
    CHECK(memcmp(m.param_mem, m2.param_mem, m.n_param_floats * sizeof(float)) == 0);
    cad_model_free(&m2);
    CHECK(cad_model_init(&m2, &c, cad_backend_cpu(), 4, &e) == CAD_OK);
    CHECK(memcmp(m.param_mem, m2.param_mem, m.n_param_floats * sizeof(float)) != 0);
    cad_model_free(&m2);
    cad_model_free(&m);
}

static void test_config_errors_name_keys(void) {
    cad_err e;
    cad_model_config c = tiny_config();
    c.model_dim = 30;
    CHECK_EQ_INT(cad_model_config_check(&c, &e), CAD_ECONFIG);
    CHECK(strstr(e.msg, "model_dim") && strstr(e.msg, "num_heads"));
    c = tiny_config(), c.model_dim = 24, c.num_heads = 8; /* head_dim 3 */
    CHECK_EQ_INT(cad_model_config_check(&c, &e), CAD_ECONFIG);
    CHECK(strstr(e.msg, "head_dim") && strstr(e.msg, "even"));
    c = tiny_config(), c.num_kv_heads = 3;
    CHECK_EQ_INT(cad_model_config_check(&c, &e), CAD_ECONFIG);
    CHECK(strstr(e.msg, "num_kv_heads"));
    c = tiny_config(), c.logit_softcap = 0.0f;
    CHECK_EQ_INT(cad_model_config_check(&c, &e), CAD_ECONFIG);
    CHECK(strstr(e.msg, "logit_softcap"));
    c = tiny_config();
    CHECK_EQ_INT(cad_model_config_check(&c, &e), CAD_OK);
    cad_model m;
    c.num_heads = 0;
    CHECK_EQ_INT(cad_model_init(&m, &c, cad_backend_cpu(), 1, &e), CAD_ECONFIG);
    CHECK(strstr(e.msg, "num_heads"));
}

static void test_accumulate_determinism_and_errors(void) {
    cad_model_config c = tiny_config();
    c.num_layers = 1; /* no skips: skip_weights is [0, C] like torch */
    cad_model m;
    cad_err e;
    CHECK(cad_model_init(&m, &c, cad_backend_cpu(), 5, &e) == CAD_OK);
    CHECK_EQ_INT(cad_model_param(&m, "skip_weights")->numel, 0);
    /* make the zero-init projections non-zero so every grad is non-trivial */
    for (size_t i = 0; i < m.n_param_floats; i++)
        if (m.param_mem[i] == 0.0f) m.param_mem[i] = 0.01f * (float)((i * 37) % 11) - 0.05f;
    int B = 2, T = 16, N = B * T;
    int32_t x[32], y[32];
    for (int n = 0; n < N; n++) x[n] = (n * 13 + 1) % 64, y[n] = (n * 7 + 3) % 64;
    float l1, l2;
    CHECK(cad_model_forward(&m, x, y, B, T, &l1, &e) == CAD_OK);
    CHECK(cad_model_backward(&m, &e) == CAD_OK);
    float *g1 = malloc(m.n_param_floats * sizeof(float));
    memcpy(g1, m.grad_mem, m.n_param_floats * sizeof(float));
    CHECK(cad_model_forward(&m, x, y, B, T, &l2, &e) == CAD_OK);
    CHECK(l1 == l2);
    CHECK(cad_model_backward(&m, &e) == CAD_OK);
    /* grads accumulate: g + g == 2g up to rounding (sgemm with beta 1 adds its K-blocks into C
     * one by one, so the sum is not bit-exactly 2g); a "=" bug would give g, off by 50% */
    double gmax = 0.0, worst = 0.0;
    for (size_t i = 0; i < m.n_param_floats; i++) gmax = fmax(gmax, fabs(g1[i]));
    for (size_t i = 0; i < m.n_param_floats; i++) worst = fmax(worst, fabs(m.grad_mem[i] - 2.0 * g1[i]));
    CHECK_MSG(worst <= 1e-5 * gmax, "backward does not accumulate (+=): max |g2 - 2 g1| = %g (max|g1| %g)", worst, gmax);
    cad_model_zero_grad(&m);
    CHECK(cad_model_forward(&m, x, y, B, T, &l2, &e) == CAD_OK);
    CHECK(cad_model_backward(&m, &e) == CAD_OK);
    CHECK_MSG(memcmp(g1, m.grad_mem, m.n_param_floats * sizeof(float)) == 0, "backward is not deterministic");
    /* token_loss averages to the mean loss */
    double s = 0.0;
    for (int n = 0; n < N; n++) s += m.token_loss[n];
    CHECK_NEAR(s / N, l2, 1e-6, 0.0);
    /* logits-only forward gives the same logits, refuses backward */
    float *lg = malloc(sizeof(float) * N * 64);
    CHECK(cad_model_forward(&m, x, y, B, T, &l2, &e) == CAD_OK);
    memcpy(lg, m.logits, sizeof(float) * N * 64);
    CHECK(cad_model_forward(&m, x, NULL, B, T, NULL, &e) == CAD_OK);
    CHECK(memcmp(lg, m.logits, sizeof(float) * N * 64) == 0);
    CHECK_EQ_INT(cad_model_backward(&m, &e), CAD_ERR);
    CHECK(strstr(e.msg, "targets") != NULL);
    /* smaller batch shapes are fine; larger ones and bad tokens are refused with the reason */
    CHECK(cad_model_forward(&m, x, y, 4, 8, &l2, &e) == CAD_OK);
    CHECK(cad_model_forward(&m, x, y, 1, 17, &l2, &e) == CAD_ECONFIG);
    CHECK(strstr(e.msg, "max_seq_len") != NULL);
    x[5] = 64;
    CHECK_EQ_INT(cad_model_forward(&m, x, y, B, T, &l2, &e), CAD_EFORMAT);
    CHECK(strstr(e.msg, "position 5") != NULL);
    free(g1), free(lg);
    cad_model_free(&m);
}

static void test_bench_flops(void) {
    /* config (b): 9 x 512, 8/4 heads, vocab 1024, seq 1024, 8 seqs: dense part 6*N*params_matmul */
    cad_model_config c = {.vocab_size = 1024, .num_layers = 9, .model_dim = 512, .num_heads = 8, .num_kv_heads = 4,
                          .mlp_mult = 2, .tie_embeddings = 1, .rope_base = 1e4f, .logit_softcap = 30.f,
                          .qk_gain_init = 1.5f, .tied_embed_init_std = 0.005f, .max_batch_seqs = 8, .max_seq_len = 1024};
    double N = 8192, per_layer = 512.0 * (512 + 512 + 256 + 256) + 2 * 512.0 * 1024;
    double dense = 6.0 * N * (9 * per_layer + 1024 * 512.0);
    double attn = 3.0 * 9 * 4.0 * 8 * 8 * 64 * 1024.0 * 1025 / 2;
    CHECK_NEAR(cad_model_bench_flops(&c, 8, 1024), dense + attn, 0.0, 1e-12);
}

/* Fill every tensor of m with fixed nonzero values (zero-init projections would hide the blocks). */
static void fill_weights(cad_model *m) {
    for (int i = 0; i < m->n_params; i++) {
        cad_param *p = &m->params[i];
        for (long k = 0; k < p->numel; k++) p->data[k] = 0.3f * sinf(0.37f * (float)(k + 13 * i)) + (k % 5 == 0);
    }
}

/* recur_start_frac: a looped model switched off is the plain model (each block once, the
 * first skip_weights rows): same loss and gradients, bit for bit; switched on again it is the
 * looped model again. */
static void test_recurrence_switch(void) {
    cad_model_config c = tiny_config();
    c.num_layers = 4;
    cad_model_config cl = c;
    cl.recur_first = 1, cl.recur_last = 2, cl.recur_loops = 3;
    cad_model loop, plain;
    cad_err e;
    CHECK(cad_model_init(&loop, &cl, cad_backend_cpu(), 5, &e) == CAD_OK);
    CHECK(cad_model_init(&plain, &c, cad_backend_cpu(), 6, &e) == CAD_OK);
    /* give every tensor values (zero-init projections would hide the blocks) and copy by name */
    fill_weights(&loop);
    for (int i = 0; i < loop.n_params; i++) {
        cad_param *p = &loop.params[i], *q = cad_model_param(&plain, p->name);
        CHECK(q != NULL);
        if (q) memcpy(q->data, p->data, sizeof(float) * (size_t)q->numel); /* skip_weights: the first rows */
    }
    int32_t x[32], y[32];
    for (int i = 0; i < 32; i++) x[i] = (i * 5) % 64, y[i] = (i * 7 + 1) % 64;
    float l_on, l_off, l_plain, l_on2;
    cad_model_zero_grad(&loop);
    CHECK(cad_model_forward(&loop, x, y, 2, 16, &l_on, &e) == CAD_OK);
    cad_model_set_recurrence(&loop, 0);
    CHECK_EQ_INT(loop.n_virtual, 4);
    cad_model_zero_grad(&loop);
    cad_model_zero_grad(&plain);
    CHECK(cad_model_forward(&loop, x, y, 2, 16, &l_off, &e) == CAD_OK && cad_model_backward(&loop, &e) == CAD_OK);
    CHECK(cad_model_forward(&plain, x, y, 2, 16, &l_plain, &e) == CAD_OK && cad_model_backward(&plain, &e) == CAD_OK);
    CHECK_MSG(l_off == l_plain, "off %.9g vs plain %.9g", (double)l_off, (double)l_plain);
    CHECK(l_on != l_off);
    for (int i = 0; i < plain.n_params; i++) {
        cad_param *q = &plain.params[i], *p = cad_model_param(&loop, q->name);
        CHECK_MSG(p && memcmp(p->grad, q->grad, sizeof(float) * (size_t)q->numel) == 0, "grad %s differs", q->name);
    }
    cad_model_set_recurrence(&loop, 1);
    CHECK(cad_model_forward(&loop, x, y, 2, 16, &l_on2, &e) == CAD_OK);
    CHECK(l_on2 == l_on);
    cad_model_free(&loop);
    cad_model_free(&plain);
}

/* attn_gate: blocks.N.attn.attn_gate_w right after q_gain, [NH, 12] (sparse; [NH, C] full), a
 * control tensor in the Adam scalar group; sparse starts at zero (gates 0.5), full near it. */
static void test_attn_gate_params(void) {
    for (int mode = CAD_ATTN_GATE_SPARSE; mode <= CAD_ATTN_GATE_FULL; mode++) {
        cad_model_config c = tiny_config();
        c.attn_gate = mode;
        cad_model m;
        cad_err e;
        CHECK(cad_model_init(&m, &c, cad_backend_cpu(), 5, &e) == CAD_OK);
        for (int l = 0; l < c.num_layers; l++) {
            char name[64];
            snprintf(name, sizeof name, "blocks.%d.attn.attn_gate_w", l);
            cad_param *p = cad_model_param(&m, name);
            CHECK_MSG(p != NULL, "no %s", name);
            if (!p) continue;
            CHECK(strstr(p[-1].name, "attn.q_gain") != NULL && strstr(p[1].name, "attn.c_q.weight") != NULL);
            CHECK_EQ_INT(p->shape[0], c.num_heads);
            CHECK_EQ_INT(p->shape[1], mode == CAD_ATTN_GATE_FULL ? c.model_dim : CAD_ATTN_GATE_WINDOW);
            CHECK_EQ_INT(p->group, CAD_PG_SCALAR);
            CHECK_EQ_INT(p->is_control, 1);
            double amax = 0;
            for (long k = 0; k < p->numel; k++) amax = fmax(amax, fabs(p->data[k]));
            CHECK(mode == CAD_ATTN_GATE_SPARSE ? amax == 0.0 : amax > 0.0 && amax < 0.05);
        }
        c.attn_gate = 3;
        CHECK(cad_model_config_check(&c, &e) == CAD_ECONFIG && strstr(e.msg, "attn_gate"));
        cad_model_free(&m);
    }
}


/* eval_recur_loops: a model trained with 2 passes (recur_loops_max 3, per-pass scales on) set
 * to 3 passes is the 3-pass model on the same weights, loss and gradients bit for bit; set back
 * to 2 it is the 2-pass model again (whose tensors are the 3-pass ones' first rows). */
static void test_eval_recur_loops(void) {
    cad_model_config c = tiny_config();
    c.num_layers = 4, c.recur_first = 1, c.recur_last = 2, c.recur_loop_scales = 1;
    cad_model_config c2 = c, c3 = c;
    c2.recur_loops = 2, c2.recur_loops_max = 3;
    c3.recur_loops = 3;
    cad_model m2, m3;
    cad_err e;
    CHECK(cad_model_init(&m2, &c2, cad_backend_cpu(), 5, &e) == CAD_OK);
    CHECK(cad_model_init(&m3, &c3, cad_backend_cpu(), 6, &e) == CAD_OK);
    CHECK_EQ_INT(m2.n_params, m3.n_params);
    CHECK_EQ_INT(m2.n_virtual, 6); /* trains with 2 passes */
    fill_weights(&m2);
    for (int i = 0; i < m2.n_params; i++) { /* same shapes: skip_weights and the scales sized for 3 passes */
        cad_param *p = &m2.params[i], *q = cad_model_param(&m3, p->name);
        CHECK(q && q->numel == p->numel);
        if (q) memcpy(q->data, p->data, sizeof(float) * (size_t)p->numel);
    }
    int32_t x[32], y[32];
    for (int i = 0; i < 32; i++) x[i] = (i * 5) % 64, y[i] = (i * 7 + 1) % 64;
    float l2, l3, l_ref, l2b;
    CHECK(cad_model_forward(&m2, x, y, 2, 16, &l2, &e) == CAD_OK);
    cad_model_set_loops(&m2, 3);
    CHECK_EQ_INT(m2.n_virtual, 8);
    cad_model_zero_grad(&m2);
    cad_model_zero_grad(&m3);
    CHECK(cad_model_forward(&m2, x, y, 2, 16, &l3, &e) == CAD_OK && cad_model_backward(&m2, &e) == CAD_OK);
    CHECK(cad_model_forward(&m3, x, y, 2, 16, &l_ref, &e) == CAD_OK && cad_model_backward(&m3, &e) == CAD_OK);
    CHECK_MSG(l3 == l_ref, "3 passes %.9g vs the 3-pass model %.9g", (double)l3, (double)l_ref);
    CHECK(l3 != l2);
    for (int i = 0; i < m3.n_params; i++) {
        cad_param *q = &m3.params[i], *p = cad_model_param(&m2, q->name);
        CHECK_MSG(p && memcmp(p->grad, q->grad, sizeof(float) * (size_t)q->numel) == 0, "grad %s differs", q->name);
    }
    cad_model_set_loops(&m2, 9); /* clamped to the planned maximum */
    CHECK_EQ_INT(m2.loops, 3);
    cad_model_set_recurrence(&m2, 1);
    CHECK_EQ_INT(m2.loops, 2);
    CHECK(cad_model_forward(&m2, x, y, 2, 16, &l2b, &e) == CAD_OK);
    CHECK(l2b == l2);
    cad_model_free(&m2);
    cad_model_free(&m3);
}

/* QAT: the artifact decodes bit-exactly to the fake-quantised weights the last forward read.
 * A model whose fused c_q|c_k|c_v mixes a quantised c_q (>65,536 elements) with c_k/c_v that the
 * artifact keeps fp16 (so QAT copies them), random weights with outliers; for int6, int3 and ternary: forward under QAT,
 * export at the same bits, import, and (1) every quantised matrix's decode equals qat_mem bit
 * for bit, the others equal the fp32 weights; (2) the fp32 weights are untouched; (3) a forward
 * with QAT off on the decoded matrices gives the same loss, bit for bit (the forward really read
 * qat_mem); (4) the backward puts its gradient into the fp32 weights' grads (straight through). */
static void test_qat_forward_matches_artifact(void) {
    cad_model_config c = {.vocab_size = 64, .num_layers = 1, .model_dim = 272, .num_heads = 2, .num_kv_heads = 1,
                          .mlp_mult = 2, .tie_embeddings = 1, .rope_base = 10000.0f, .logit_softcap = 30.0f,
                          .qk_gain_init = 1.5f, .tied_embed_init_std = 0.005f, .max_batch_seqs = 2, .max_seq_len = 8};
    const cad_backend *be = cad_backend_cpu();
    cad_model m;
    cad_err e = {0};
    if (cad_model_init(&m, &c, be, 5, &e)) { CHECK_MSG(0, "%s", e.msg); return; }
    int32_t x[16], y[16];
    for (int i = 0; i < 16; i++) x[i] = (i * 7 + 3) % 64, y[i] = (i * 5 + 1) % 64;
    uint32_t seed = 77;
    int n_quantised = 0, n_copied = 0;
    for (int i = 0; i < m.n_params; i++) { /* random matrices (proj starts at zero) with outliers */
        cad_param *p = &m.params[i];
        if (p->group != CAD_PG_MATRIX) continue;
        for (long k = 0; k < p->numel; k++) {
            seed = seed * 1664525u + 1013904223u;
            p->data[k] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.2f;
        }
        p->data[p->numel / 3] = 1.5f;
        n_quantised += cad_model_qat_quantised(&m, i);
        n_copied += !cad_model_qat_quantised(&m, i);
    }
    CHECK_EQ_INT(n_quantised, 4); /* c_q, attn proj (272x272), fc, mlp proj */
    CHECK_EQ_INT(n_copied, 2);    /* c_k, c_v (136x272: stored fp16 by the artifact) */
    size_t nf = m.n_param_floats;
    float *orig = malloc(nf * 4), *seen = malloc(nf * 4), *dec = malloc(nf * 4);
    memcpy(orig, m.param_mem, nf * 4);
    cad_named_tensor *ts = calloc((size_t)m.n_params, sizeof *ts);
    static const int bits_list[] = {6, 3, CAD_QUANT_TERNARY};
    for (size_t b = 0; b < sizeof bits_list / sizeof *bits_list; b++) {
        int bits = bits_list[b];
        memcpy(m.param_mem, orig, nf * 4);
        CHECK(cad_model_set_qat(&m, bits, &e) == CAD_OK);
        float loss_qat = 0, loss_dec = 0;
        CHECK(cad_model_forward(&m, x, y, 2, 8, &loss_qat, &e) == CAD_OK);
        memcpy(seen, m.qat_mem, nf * 4);
        cad_model_zero_grad(&m);
        CHECK(cad_model_backward(&m, &e) == CAD_OK);
        CHECK(memcmp(m.param_mem, orig, nf * 4) == 0);
        for (int i = 0; i < m.n_params; i++) {
            cad_param *p = &m.params[i];
            ts[i] = (cad_named_tensor){p->name, p->ndim, {p->shape[0], p->shape[1]}, (size_t)p->numel, p->data};
            /* at int3/ternary most of these random weights quantise to 0, which can zero a
             * matrix's gradient legitimately; int6 keeps them */
            if (p->group == CAD_PG_MATRIX && bits == 6)
                CHECK_MSG(be->sumsq(be, p->grad, (size_t)p->numel) > 0, "bits %d: no gradient in %s", bits, p->name);
        }
        cad_quant_opts qo = {CAD_COMPRESS_ZLIB, bits, 8, 0, 0.0, 0.0, NULL, {0, 0, 0}};
        cad_int8_stats st;
        const char *art = check_tmp_path("qat.ptz");
        CHECK_MSG(cad_int8_export(art, ts, m.n_params, &qo, &st, &e) == CAD_OK, "%s", e.msg);
        for (int i = 0; i < m.n_params; i++) ts[i].data = dec + (m.params[i].data - m.param_mem);
        CHECK_MSG(cad_int8_import(art, ts, m.n_params, &e) == CAD_OK, "%s", e.msg);
        for (int i = 0; i < m.n_params; i++) {
            cad_param *p = &m.params[i];
            if (p->group != CAD_PG_MATRIX) continue;
            size_t off = (size_t)(p->data - m.param_mem), bad = 0;
            const float *want = cad_model_qat_quantised(&m, i) ? dec + off : orig + off;
            for (long k = 0; k < p->numel; k++) bad += memcmp(&seen[off + k], &want[k], 4) != 0;
            CHECK_MSG(bad == 0, "bits %d: %s: %zu of %ld values differ from the %s", bits, p->name, bad, p->numel,
                      cad_model_qat_quantised(&m, i) ? "artifact's decode" : "fp32 weights");
        }
        /* the decoded matrices in the fp32 slots, QAT off: the same forward */
        for (int i = 0; i < m.n_params; i++) {
            cad_param *p = &m.params[i];
            if (cad_model_qat_quantised(&m, i))
                memcpy(p->data, dec + (p->data - m.param_mem), (size_t)p->numel * 4);
        }
        CHECK(cad_model_set_qat(&m, 0, &e) == CAD_OK);
        CHECK(cad_model_forward(&m, x, y, 2, 8, &loss_dec, &e) == CAD_OK);
        CHECK_MSG(memcmp(&loss_qat, &loss_dec, 4) == 0, "bits %d: QAT forward loss %.9g, decoded artifact %.9g", bits,
                  (double)loss_qat, (double)loss_dec);
    }
    CHECK_EQ_INT(cad_model_set_qat(&m, 7 + 2, &e), CAD_ECONFIG);
    free(orig), free(seen), free(dec), free(ts);
    cad_model_free(&m);
}

/* The new tensors in the artifact: a factorized embedding (tok_emb 512x160 and a 1024x80 bigram
 * table, both past the 65,536-element threshold, so stored per-row int8; embed_proj 192x160 per
 * row; the 0-dim bigram.scale and smear.gate small) survive export + import with their names and
 * shapes, every value within its row's quantisation step, and the decoded model scores like the
 * fp32 one (int8 noise: well under 1% of the loss; a wrong shape or a dropped tensor is not). */
static void test_artifact_roundtrip_model_techniques(void) {
    cad_model_config c = {.vocab_size = 512, .num_layers = 1, .model_dim = 192, .num_heads = 2, .num_kv_heads = 1,
                          .mlp_mult = 1, .tie_embeddings = 1, .rope_base = 10000.0f, .logit_softcap = 30.0f,
                          .qk_gain_init = 1.5f, .tied_embed_init_std = 0.005f, .max_batch_seqs = 2, .max_seq_len = 8,
                          .embed_dim = 160, .bigram_buckets = 1024, .bigram_dim = 80, .smear_gate = 1, .ln_scale = 1,
                          .attn_gate = CAD_ATTN_GATE_SPARSE};
    cad_model m;
    cad_err e = {0};
    if (cad_model_init(&m, &c, cad_backend_cpu(), 9, &e)) { CHECK_MSG(0, "%s", e.msg); return; }
    uint32_t seed = 4242;
    for (size_t k = 0; k < m.n_param_floats; k++) { /* every tensor non-trivial (zero-init ones too) */
        seed = seed * 1664525u + 1013904223u;
        m.param_mem[k] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.3f;
    }
    const char *want[] = {"tok_emb.weight", "embed_proj.weight", "bigram.embed.weight", "bigram.proj.weight",
                          "bigram.scale", "smear.gate", "blocks.0.attn.attn_gate_w"};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) CHECK_MSG(cad_model_param(&m, want[k]), "no %s", want[k]);
    CHECK_EQ_INT(cad_model_param(&m, "bigram.scale")->ndim, 0);
    CHECK_EQ_INT(cad_model_param(&m, "tok_emb.weight")->shape[1], 160);
    int32_t x[16], y[16];
    for (int i = 0; i < 16; i++) x[i] = (i * 37 + 5) % 512, y[i] = (i * 11 + 2) % 512;
    x[9] = CAD_BOS_ID;
    float l32 = 0, l8 = 0;
    CHECK(cad_model_forward(&m, x, y, 2, 8, &l32, &e) == CAD_OK);
    size_t nf = m.n_param_floats;
    cad_named_tensor *ts;
    cad_int8_stats st;
    float *dec = check_int8_roundtrip(&m, "techniques.ptz", &ts, &st);
    for (int i = 0; i < m.n_params; i++) {
        cad_param *p = &m.params[i];
        const float *d = dec + (p->data - m.param_mem);
        double worst = 0.0;
        for (long k = 0; k < p->numel; k++) worst = fmax(worst, fabs((double)d[k] - p->data[k]));
        /* a per-row step is max(clip, 1)/127 = 1/127 here (|w| <= 0.15, train_gpt.py's scale
         * floor), so rounding is at most half of it, plus |q| <= 20 times the fp16 rounding of
         * the scale (<= 4e-6 each); fp16 tensors keep ~1e-4 */
        CHECK_MSG(worst <= 0.5 / 127 + 1e-4, "%s: max decode error %g", p->name, worst);
        CHECK_MSG(cad_int8_scheme(&ts[i]) != CAD_Q_PER_ROW || worst > 0, "%s: per-row codes decoded exactly?", p->name);
    }
    CHECK_EQ_INT(cad_int8_scheme(&ts[cad_model_param(&m, "tok_emb.weight") - m.params]), CAD_Q_PER_ROW);
    CHECK_EQ_INT(cad_int8_scheme(&ts[cad_model_param(&m, "bigram.embed.weight") - m.params]), CAD_Q_PER_ROW);
    cad_param *gw = cad_model_param(&m, "blocks.0.attn.attn_gate_w"); /* a control tensor: fp32, exact */
    CHECK_EQ_INT(cad_int8_scheme(&ts[gw - m.params]), CAD_Q_FP32);
    CHECK(memcmp(dec + (gw->data - m.param_mem), gw->data, sizeof(float) * (size_t)gw->numel) == 0);
    memcpy(m.param_mem, dec, nf * sizeof(float));
    CHECK(cad_model_forward(&m, x, y, 2, 8, &l8, &e) == CAD_OK);
    printf("    loss fp32 %.6f int8 round trip %.6f\n", l32, l8);
    CHECK_NEAR(l8, l32, 0.0, 1e-2);
    free(dec), free(ts);
    cad_model_free(&m);
}

int main(void) {
    RUN(test_param_table_and_groups);
    RUN(test_init_values);
    RUN(test_config_errors_name_keys);
    RUN(test_parity_tied_gqa);
    RUN(test_parity_untied_mha);
    RUN(test_parity_depth_recurrence);
    RUN(test_parity_recur_loop_scales);
    RUN(test_recur_loop_scales_copies_are_plain_recurrence);
    RUN(test_recurrence_switch);
    RUN(test_eval_recur_loops);
    RUN(test_attn_gate_params);
    RUN(test_parity_leaky_relu2);
    RUN(test_parity_xsa);
    RUN(test_parity_parallel_residual);
    RUN(test_parity_factorized_embedding);
    RUN(test_parity_bigram_smear);
    RUN(test_parity_bigram_same_width);
    RUN(test_parity_partial_rope);
    RUN(test_parity_attn_gate);
    RUN(test_parity_attn_gate_full);
    RUN(test_parity_moe);
    RUN(test_parity_moe_early_exit);
    RUN(test_parity_bf16_matmuls);
    RUN(test_model_finite_differences);
    RUN(test_accumulate_determinism_and_errors);
    RUN(test_bench_flops);
    RUN(test_qat_forward_matches_artifact);
    RUN(test_artifact_roundtrip_model_techniques);
    return check_report();
}

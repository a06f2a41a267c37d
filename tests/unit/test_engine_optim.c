/*
 * test_engine_optim.c — Muon/Adam/clipping against PyTorch (tests/fixtures/engine/
 * optim_ref.safetensors from tests/scripts/gen_optim_fixture.py) and the lr_mul / momentum
 * schedules against values worked out by hand from train_gpt.py's formulas.
 */
#include "engine/backend.h"
#include "engine/config.h"
#include "engine/optim.h"
#include "engine/model.h"
#include "parity_fixture.h"
#include "engine/safetensors.h"
#include "test_util.h"

static cad_safetensors_file fx;
static int fx_ok;

static const cad_named_tensor *fx_get(const char *name) { return check_tensor_get(&fx, name); }

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m) m = d;
    }
    return m;
}

static void test_fixture_version(void) {
    CHECK(fx_ok);
    if (!fx_ok) return;
    CHECK_EQ_INT(fx_get("fixture_version")->data[0], 1);
}

static void check_ns(const char *tag) {
    const cad_backend *be = cad_backend_cpu();
    char in_name[32], out_name[32];
    snprintf(in_name, sizeof in_name, "ns_in_%s", tag);
    snprintf(out_name, sizeof out_name, "ns_out_%s", tag);
    const cad_named_tensor *in = fx_get(in_name), *ref = fx_get(out_name);
    int rows = (int)in->shape[0], cols = (int)in->shape[1];
    float *out = calloc(in->numel, sizeof(float));
    float *scratch = calloc(cad_muon_ns_scratch_floats(rows, cols), sizeof(float));
    cad_muon_newton_schulz(be, out, in->data, rows, cols, 5, scratch);
    /* fp32 on both sides; NS5 amplifies rounding (coefficients ~4.8) over 5 iterations and the
     * tall case uses XᵀX instead of transposing: measured 1.3e-6 (wide), 4.8e-7 (tall);
     * 2e-5 absolute on O(1) entries. */
    double d = max_abs_diff(out, ref->data, in->numel);
    CHECK_MSG(d < 2e-5, "NS5 %s: max |diff| %.3g", tag, d);
    printf("# NS5 %s %dx%d vs torch fp32: max |diff| %.3g\n", tag, rows, cols, d);
    free(out);
    free(scratch);
}

static void test_newton_schulz_wide(void) { if (fx_ok) check_ns("wide"); }
static void test_newton_schulz_tall(void) { if (fx_ok) check_ns("tall"); }

static void test_newton_schulz_orthogonalizes(void) {
    /* Independent of the fixture: after NS5 the singular values of a random matrix lie in
     * roughly [0.7, 1.2] (the quintic's fixed band), i.e. X Xᵀ is near the identity. */
    const cad_backend *be = cad_backend_cpu();
    int r = 8, c = 32;
    float G[8 * 32], X[8 * 32], XXt[64];
    unsigned s = 7;
    for (int i = 0; i < r * c; i++) { s = s * 1103515245u + 12345u; G[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f; }
    float *scratch = calloc(cad_muon_ns_scratch_floats(r, c), sizeof(float));
    cad_muon_newton_schulz(be, X, G, r, c, 5, scratch);
    be->matmul(be, 0, 1, r, r, c, 1.0f, X, c, X, c, 0.0f, XXt, r);
    for (int i = 0; i < r; i++) {
        CHECK_MSG(XXt[i * r + i] > 0.45 && XXt[i * r + i] < 1.5, "diag %d = %g", i, XXt[i * r + i]);
        for (int j = 0; j < r; j++)
            if (i != j) CHECK_MSG(fabsf(XXt[i * r + j]) < 0.35f, "offdiag %d,%d = %g", i, j, XXt[i * r + j]);
    }
    free(scratch);
}

static void test_optimizer_steps_match_torch(void) {
    if (!fx_ok) return;
    const cad_backend *be = cad_backend_cpu();
    static const char *names[4] = {"W1", "W2", "emb", "sc"};
    float *data[4], *grad[4];
    cad_optim_param ps[4];
    memset(ps, 0, sizeof ps);
    for (int k = 0; k < 4; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "init_%s", names[k]);
        const cad_named_tensor *t = fx_get(nm);
        data[k] = be->alloc(be, t->numel * 4);
        grad[k] = be->alloc(be, t->numel * 4);
        memcpy(data[k], t->data, t->numel * 4);
        ps[k].name = names[k];
        ps[k].numel = t->numel;
        ps[k].rows = (int)t->shape[0];
        ps[k].cols = t->ndim == 2 ? (int)t->shape[1] : 1;
        ps[k].kind = k < 2 ? CAD_OPT_MUON : CAD_OPT_ADAM;
        ps[k].base_lr = k < 2 ? 0.04 : k == 2 ? 0.05 : 0.04;
        ps[k].data = data[k];
        ps[k].grad = grad[k];
    }
    cad_optim_hparams hp = {0.9, 0.95, 1e-8, 5, 0.0, 0, CAD_NS_QUINTIC};
    cad_optim o;
    cad_err e = {0};
    CHECK(cad_optim_init(&o, be, &hp, 4, ps, &e) == CAD_OK);
    const float *lr_muls = fx_get("lr_muls")->data, *moms = fx_get("momentums")->data;
    const float *norms = fx_get("clip_norms")->data;
    double worst_step = 0;
    for (int s = 0; s < 6; s++) {
        for (int k = 0; k < 4; k++) {
            char nm[32];
            snprintf(nm, sizeof nm, "grad%d_%s", s, names[k]);
            memcpy(grad[k], fx_get(nm)->data, ps[k].numel * 4);
        }
        double norm = cad_optim_clip_grad_norm(&o, 0.5);
        /* torch sums fp32 per-tensor norms; we sum squares in double */
        CHECK_NEAR(norm, norms[s], 1e-5, 1e-5);
        cad_optim_step(&o, lr_muls[s], moms[s]);
        for (int k = 0; k < 4; k++) {
            char nm[32];
            snprintf(nm, sizeof nm, "after%d_%s", s, names[k]);
            const cad_named_tensor *ref = fx_get(nm);
            double d = max_abs_diff(data[k], ref->data, ref->numel);
            /* Adam divides by sqrt(v)+eps with v ~ g^2: fp32 rounding in m, v and the bias
             * corrections gives ~1e-7 relative per step; Muon's NS5 ~1e-6 on updates of size
             * lr*O(1)=0.04. Measured 1.2e-7; 2e-6 absolute over 6 steps on weights <= 1.3. */
            CHECK_MSG(d < 2e-6, "step %d %s: max |diff| %.3g", s, names[k], d);
            if (d > worst_step) worst_step = d;
        }
    }
    printf("# Muon+Adam+clip, 6 steps vs torch: max |weight diff| %.3g\n", worst_step);
    /* the warmup restore path: reset gives a fresh optimizer */
    cad_optim_reset(&o);
    CHECK_EQ_INT(o.adam_step, 0);
    CHECK(be->sumsq(be, o.state, o.state_floats) == 0.0);
    cad_optim_free(&o);
    for (int k = 0; k < 4; k++) be->free(be, data[k]), be->free(be, grad[k]);
}

static void test_muon_rejects_bad_shape(void) {
    const cad_backend *be = cad_backend_cpu();
    float d[6], g[6];
    cad_optim_param p = {.name = "bad", .kind = CAD_OPT_MUON, .rows = 4, .cols = 4, .numel = 6, .base_lr = 0.1, .data = d, .grad = g};
    cad_optim_hparams hp = {0.9, 0.95, 1e-8, 5, 0.0, 0, CAD_NS_QUINTIC};
    cad_optim o;
    cad_err e = {0};
    CHECK(cad_optim_init(&o, be, &hp, 1, &p, &e) == CAD_ECONFIG);
    CHECK(strstr(e.msg, "'bad'") != NULL);
    cad_optim_free(&o);
}

static void test_lr_mul_by_iterations(void) {
    cad_config c;
    cad_err e = {0};
    CHECK(cad_config_init(&c, &e) == CAD_OK);
    c.max_wallclock_seconds = 0;
    c.iterations = 100;
    c.warmdown_iters = 20;
    /* warmdown_start = 80: 1.0 before, then (100-step)/20 */
    CHECK_NEAR(cad_lr_mul(&c, 0, 0), 1.0, 0, 0);
    CHECK_NEAR(cad_lr_mul(&c, 79, 0), 1.0, 0, 0);
    CHECK_NEAR(cad_lr_mul(&c, 80, 0), 1.0, 1e-15, 0);
    CHECK_NEAR(cad_lr_mul(&c, 90, 0), 0.5, 1e-15, 0);
    CHECK_NEAR(cad_lr_mul(&c, 99, 0), 0.05, 1e-15, 0);
    CHECK_NEAR(cad_lr_mul(&c, 100, 0), 1.0, 0, 0); /* step == iterations: outside the window */
    c.warmdown_iters = 150; /* longer than the run: start clamps to 0 */
    CHECK_NEAR(cad_lr_mul(&c, 0, 0), 100.0 / 150.0, 1e-15, 0);
    CHECK_NEAR(cad_lr_mul(&c, 50, 0), 50.0 / 150.0, 1e-15, 0);
    c.warmdown_iters = 0;
    CHECK_NEAR(cad_lr_mul(&c, 99, 0), 1.0, 0, 0);
    cad_config_free(&c);
}

static void test_lr_mul_by_wallclock(void) {
    cad_config c;
    cad_err e = {0};
    CHECK(cad_config_init(&c, &e) == CAD_OK);
    /* defaults: 600 s cap, warmdown 1200 step-times */
    /* step 1000 at 300 s: step_ms 300, warmdown_ms 360000, remaining 300000 -> 300000/360000 */
    CHECK_NEAR(cad_lr_mul(&c, 1000, 300000.0), 300000.0 / 360000.0, 1e-12, 0);
    /* step 100 at 10 s: step_ms 100, warmdown 120000 < remaining 590000 -> 1 */
    CHECK_NEAR(cad_lr_mul(&c, 100, 10000.0), 1.0, 0, 0);
    /* step 0 uses max(step,1): 50 ms elapsed -> warmdown 60000 < remaining */
    CHECK_NEAR(cad_lr_mul(&c, 0, 50.0), 1.0, 0, 0);
    /* past the cap: remaining clamps to 0 */
    CHECK_NEAR(cad_lr_mul(&c, 2000, 700000.0), 0.0, 0, 0);
    cad_config_free(&c);
}

/* min_lr_frac floors train_gpt.py's warmdown (the records' max(mul, MIN_LR)); cosine runs
 * min + (1-min)(1+cos(pi f))/2 over the fraction of training, by steps or by wallclock. */
static void test_lr_schedules(void) {
    cad_config c;
    cad_err e = {0};
    CHECK(cad_config_init(&c, &e) == CAD_OK);
    c.max_wallclock_seconds = 0;
    c.iterations = 100;
    c.warmdown_iters = 20;
    c.min_lr_frac = 0.1;
    CHECK_NEAR(cad_lr_mul(&c, 50, 0), 1.0, 0, 0);
    CHECK_NEAR(cad_lr_mul(&c, 90, 0), 0.5, 1e-15, 0);   /* above the floor: the warmdown value */
    CHECK_NEAR(cad_lr_mul(&c, 98, 0), 0.1, 1e-15, 0);   /* 2/20 = 0.1: at the floor */
    CHECK_NEAR(cad_lr_mul(&c, 99, 0), 0.1, 0, 0);       /* 1/20 = 0.05 -> floored */
    c.max_wallclock_seconds = 600; /* the same floor under a wallclock warmdown */
    CHECK_NEAR(cad_lr_mul(&c, 2000, 599900.0), 0.1, 0, 0); /* 100 ms left of a ~6 s warmdown */
    CHECK_NEAR(cad_lr_mul(&c, 1000, 300000.0), 1.0, 0, 0); /* warmdown 20*300 ms < 300 s left */
    CHECK(cad_config_set(&c, "lr_schedule", "cosine", "test", &e) == CAD_OK);
    c.max_wallclock_seconds = 0;
    c.min_lr_frac = 0;
    CHECK_NEAR(cad_lr_mul(&c, 0, 0), 1.0, 0, 0);
    CHECK_NEAR(cad_lr_mul(&c, 25, 0), 0.5 * (1 + cos(M_PI / 4)), 1e-15, 0);
    CHECK_NEAR(cad_lr_mul(&c, 50, 0), 0.5, 1e-15, 0);
    CHECK_NEAR(cad_lr_mul(&c, 100, 0), 0.0, 1e-15, 0);
    c.min_lr_frac = 0.2;
    CHECK_NEAR(cad_lr_mul(&c, 50, 0), 0.2 + 0.8 * 0.5, 1e-15, 0);
    CHECK_NEAR(cad_lr_mul(&c, 100, 0), 0.2, 1e-15, 0);
    c.max_wallclock_seconds = 600; /* by wallclock: 150 s of 600 = f 0.25, whatever the step */
    CHECK_NEAR(cad_lr_mul(&c, 7, 150000.0), 0.2 + 0.8 * 0.5 * (1 + cos(M_PI / 4)), 1e-15, 0);
    CHECK_NEAR(cad_lr_mul(&c, 7, 900000.0), 0.2, 1e-15, 0); /* past the cap: clamped */
    CHECK(cad_config_set(&c, "lr_schedule", "step", "test", &e) == CAD_OK);
    CHECK(cad_config_validate(&c, &e) == CAD_ECONFIG && strstr(e.msg, "lr_schedule") != NULL);
    cad_config_free(&c);
}

static void test_muon_momentum_warmup(void) {
    cad_config c;
    cad_err e = {0};
    CHECK(cad_config_init(&c, &e) == CAD_OK);
    CHECK_NEAR(cad_muon_momentum_at(&c, 0), 0.85, 1e-15, 0);
    CHECK_NEAR(cad_muon_momentum_at(&c, 250), 0.90, 1e-12, 0);
    CHECK_NEAR(cad_muon_momentum_at(&c, 500), 0.95, 1e-15, 0);
    CHECK_NEAR(cad_muon_momentum_at(&c, 5000), 0.95, 1e-15, 0);
    c.muon_momentum_warmup_steps = 0;
    CHECK_NEAR(cad_muon_momentum_at(&c, 0), 0.95, 1e-15, 0);
    cad_config_free(&c);
}

/* 10 train steps of the tiny parity model (forward, backward, clip, Muon + Adam with the
 * lr_mul warmdown and momentum warmup) against PyTorch (tests/scripts/gen_train_fixture.py). */
static void check_trajectory(const char *fixture) {
    pf_file f;
    if (pf_load(check_src_path(fixture), &f)) { CHECK(0); return; }
    int B = (int)pf_scalar(&f, "config.B"), T = (int)pf_scalar(&f, "config.T");
    cad_model_config mc = pf_model_config(&f, B);
    cad_model m;
    cad_err e = {0};
    CHECK_MSG(cad_model_init(&m, &mc, cad_backend_cpu(), 1, &e) == CAD_OK, "%s", e.msg);
    for (int i = 0; i < m.n_params; i++) {
        const pf_record *r = pf_get(&f, m.params[i].name);
        CHECK(r && r->numel == m.params[i].numel);
        if (r) memcpy(m.params[i].data, r->data, (size_t)r->numel * 4);
    }
    cad_config c;
    CHECK(cad_config_init(&c, &e) == CAD_OK);
    static const char *hp[] = {"iterations", "warmdown_iters", "muon_momentum", "muon_momentum_warmup_start",
                               "muon_momentum_warmup_steps", "matrix_lr", "scalar_lr", "tied_embed_lr", "embed_lr", "head_lr", "beta1",
                               "beta2", "adam_eps", "grad_clip_norm", "muon_backend_steps"};
    for (size_t i = 0; i < sizeof hp / sizeof hp[0]; i++) {
        char key[64], val[64];
        snprintf(key, sizeof key, "hp.%s", hp[i]);
        double v = pf_scalar(&f, key);
        const cad_config_key *k = cad_config_key_find(hp[i]);
        if (k->type == CAD_KEY_INT) snprintf(val, sizeof val, "%ld", (long)v);
        else snprintf(val, sizeof val, "%.9g", v);
        CHECK(cad_config_set(&c, hp[i], val, "fixture", &e) == CAD_OK);
    }
    /* the fixture stores hp in float32: use train_gpt.py's exact decimal values */
    c.max_wallclock_seconds = 0;
    c.adam_eps = 1e-8, c.beta1 = 0.9, c.beta2 = 0.95, c.matrix_lr = 0.04, c.scalar_lr = 0.04, c.tied_embed_lr = 0.05;
    c.muon_momentum = 0.95, c.muon_momentum_warmup_start = 0.85, c.embed_lr = 0.6, c.head_lr = 0.008;
    c.tie_embeddings = mc.tie_embeddings;
    cad_optim o;
    CHECK_MSG(cad_optim_init_model(&o, &m, &c, &e) == CAD_OK, "%s", e.msg);
    const float *want = pf_get(&f, "traj_loss")->data;
    double max_rel = 0;
    float last = 0;
    for (int s = 0; s < (int)c.iterations; s++) {
        char xn[16], yn[16];
        snprintf(xn, sizeof xn, "x.%d", s);
        snprintf(yn, sizeof yn, "y.%d", s);
        const pf_record *x = pf_get(&f, xn), *y = pf_get(&f, yn);
        float loss;
        cad_model_zero_grad(&m);
        CHECK(cad_model_forward(&m, x->data, y->data, B, T, &loss, &e) == CAD_OK);
        CHECK(cad_model_backward(&m, &e) == CAD_OK);
        /* fp32 vs fp32 with different summation orders: measured max 3.3e-7 relative over the
         * 10 steps (NS5 and Adam's 1/sqrt(v) amplify rounding); 1e-5 leaves a 30x margin. */
        CHECK_NEAR(loss, want[s], 0, 1e-5);
        if (fabs(loss - want[s]) / want[s] > max_rel) max_rel = fabs(loss - want[s]) / want[s];
        last = loss;
        cad_optim_clip_grad_norm(&o, c.grad_clip_norm);
        cad_optim_step(&o, cad_lr_mul(&c, s, 0), cad_muon_momentum_at(&c, s));
    }
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m.n_params; i++) {
        char nm[160];
        snprintf(nm, sizeof nm, "final.%s", m.params[i].name);
        const pf_record *r = pf_get(&f, nm);
        if (!r) continue;
        double d = max_abs_diff(m.params[i].data, r->data, (size_t)r->numel);
        if (d > worst) worst = d, worst_name = m.params[i].name;
    }
    /* weights are O(0.1-2); measured max 1.5e-5 (tok_emb, Adam on rare rows): 2e-4 bound */
    CHECK_MSG(worst < 2e-4, "final weights: max |diff| %.3g in %s", worst, worst_name);
    printf("# trajectory parity %s: step-10 loss %.6f (torch %.6f), max loss rel diff %.2g, max weight diff %.3g (%s)\n",
           fixture, (double)last, (double)want[9], max_rel, worst, worst_name);
    cad_optim_free(&o);
    cad_model_free(&m);
    cad_config_free(&c);
    pf_free(&f);
}

static void test_trajectory_matches_torch(void) { check_trajectory("tests/fixtures/engine/train_parity_v1.bin"); }
static void test_trajectory_untied_matches_torch(void) {
    check_trajectory("tests/fixtures/engine/train_parity_untied_v1.bin");
}

/* Decoupled weight decay (muon_wd, embed_wd, scalar_wd): one step from the same weights and
 * gradients with and without decay differs by exactly lr_t * wd * p for every tensor of the
 * group (p' = (1 - lr_t wd) p - lr_t u), and wd = 0 is the untouched baseline optimizer. */
static void test_weight_decay_is_decoupled(void) {
    cad_model_config mc = {.vocab_size = 64, .num_layers = 2, .model_dim = 32, .num_heads = 4, .num_kv_heads = 2,
                           .mlp_mult = 2, .tie_embeddings = 1, .rope_base = 10000.0f, .logit_softcap = 30.0f,
                           .qk_gain_init = 1.5f, .tied_embed_init_std = 0.5f, .max_batch_seqs = 2, .max_seq_len = 8};
    cad_model m;
    cad_err e = {0};
    CHECK_MSG(cad_model_init(&m, &mc, cad_backend_cpu(), 3, &e) == CAD_OK, "%s", e.msg);
    int32_t x[16], y[16];
    for (int i = 0; i < 16; i++) x[i] = (i * 7) % 64, y[i] = (i * 11 + 3) % 64;
    float loss;
    cad_model_zero_grad(&m);
    CHECK(cad_model_forward(&m, x, y, 2, 8, &loss, &e) == CAD_OK && cad_model_backward(&m, &e) == CAD_OK);
    size_t nf = m.n_param_floats;
    float *p0 = malloc(nf * 4), *p1 = malloc(nf * 4), *g0 = malloc(nf * 4);
    memcpy(p0, m.param_mem, nf * 4);
    memcpy(g0, m.grad_mem, nf * 4);
    cad_config c;
    CHECK(cad_config_init(&c, &e) == CAD_OK);
    const double lr_mul = 0.5;
    for (int pass = 0; pass < 2; pass++) {
        c.muon_wd = pass ? 0.2 : 0.0, c.embed_wd = pass ? 0.3 : 0.0, c.scalar_wd = pass ? 0.4 : 0.0;
        memcpy(m.param_mem, p0, nf * 4);
        memcpy(m.grad_mem, g0, nf * 4);
        cad_optim o;
        CHECK_MSG(cad_optim_init_model(&o, &m, &c, &e) == CAD_OK, "%s", e.msg);
        cad_optim_step(&o, lr_mul, 0.9);
        if (!pass) {
            memcpy(p1, m.param_mem, nf * 4);
        } else {
            for (int i = 0; i < o.n; i++) {
                const cad_optim_param *q = &o.params[i];
                size_t off = (size_t)(q->data - m.param_mem);
                double want_wd = q->kind == CAD_OPT_MUON ? 0.2 : strstr(q->name, "tok_emb") ? 0.3 : 0.4;
                CHECK_MSG(q->wd == want_wd, "%s: wd %g, expected %g", q->name, q->wd, want_wd);
                double worst = 0;
                for (size_t j = 0; j < q->numel; j++) {
                    double want = p1[off + j] - q->base_lr * lr_mul * q->wd * p0[off + j];
                    double d = fabs(q->data[j] - want) / (fabs(want) + 1e-3);
                    if (d > worst) worst = d;
                }
                /* two float roundings of O(1) values: 1e-6 relative */
                CHECK_MSG(worst < 1e-6, "%s: decayed step off by %.3g relative", q->name, worst);
            }
        }
        cad_optim_free(&o);
    }
    free(p0), free(p1), free(g0);
    cad_config_free(&c);
    cad_model_free(&m);
}

/* ema_decay: the average starts at the weights, follows ema = d ema + (1-d) p after every
 * step (checked against the recurrence on host copies), lives in the state arena (one more
 * numel per parameter), restarts from the weights on reset, and load_ema copies it back. */
static void test_ema_of_weights(void) {
    float d[6] = {1, 2, 3, 4, 5, 6}, g[6] = {0.5f, -1, 0.25f, 2, -0.5f, 1};
    cad_optim_param p = {.name = "w", .kind = CAD_OPT_ADAM, .rows = 6, .cols = 1, .numel = 6, .base_lr = 0.1,
                         .data = d, .grad = g};
    cad_optim_hparams hp = {0.9, 0.95, 1e-8, 5, 0.75, 0, CAD_NS_QUINTIC};
    cad_optim o;
    cad_err e = {0};
    CHECK(cad_optim_init(&o, cad_backend_cpu(), &hp, 1, &p, &e) == CAD_OK);
    CHECK_EQ_INT(o.state_floats, 3 * 6); /* Adam m, v + EMA */
    float want[6];
    memcpy(want, d, sizeof want);
    CHECK(memcmp(o.params[0].ema, d, sizeof d) == 0);
    for (int step = 0; step < 3; step++) {
        cad_optim_step(&o, 1.0, 0.9);
        for (int i = 0; i < 6; i++) want[i] = 0.25f * d[i] + 0.75f * want[i];
    }
    double worst = 0;
    for (int i = 0; i < 6; i++) worst = fmax(worst, fabs(o.params[0].ema[i] - want[i]));
    CHECK_MSG(worst < 1e-6, "ema off by %g", worst);
    CHECK(memcmp(o.params[0].ema, d, sizeof d) != 0); /* it lags the weights */
    float avg[6];
    memcpy(avg, o.params[0].ema, sizeof avg);
    cad_optim_load_ema(&o);
    CHECK(memcmp(d, avg, sizeof d) == 0);
    d[0] = 42;
    cad_optim_reset(&o);
    CHECK(o.params[0].ema[0] == 42);
    cad_optim_free(&o);
    hp.ema_decay = 0;
    CHECK(cad_optim_init(&o, cad_backend_cpu(), &hp, 1, &p, &e) == CAD_OK);
    CHECK_EQ_INT(o.state_floats, 2 * 6);
    CHECK(o.params[0].ema == NULL);
    cad_optim_load_ema(&o); /* a no-op */
    CHECK(d[0] == 42);
    cad_optim_free(&o);
}

/* muon_ns=polar_express: Newton-Schulz with the records' per-iteration (a, b, c) against float64
 * PyTorch (tests/scripts/gen_polar_express_ref.py, muon_ref.ns_polar_express) on exact inputs
 * G[i][j] = ((7i + 3j) % 11 - 5) / 4, wide and tall; the quintic result must differ (the
 * tuples are in effect), and an optimizer step with muon_ns set uses them. */
static const double pe_wide[15] = {-0.684390793, -0.029128158, 0.0285702971, 0.58319949, -0.465969915, 0.036153171, 0.828802259, -0.379333003, 0.105284625, 0.300369534, -0.34377693, 0.298737399, 0.633220267, -0.671486374, -0.129605487};
static const double pe_tall[15] = {-0.63281761, -0.279841856, -0.176079761, 0.166440423, 0.569594237, -0.165214631, -0.0634234057, 0.404226445, 0.772810181, 0.635191503, -0.407221499, 0.0369520353, -0.023357645, 0.34157147, -0.481511278};
static void pe_case(int rows, int cols, const double *want) {
    float G[15], out[15], q[15];
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) G[i * cols + j] = (float)(((7 * i + 3 * j) % 11 - 5) / 4.0);
    float *scratch = malloc(cad_muon_ns_scratch_floats(rows, cols) * sizeof(float));
    cad_muon_newton_schulz_ns(cad_backend_cpu(), out, G, rows, cols, 5, CAD_NS_POLAR_EXPRESS, scratch);
    cad_muon_newton_schulz(cad_backend_cpu(), q, G, rows, cols, 5, scratch);
    double worst = 0, apart = 0;
    for (int i = 0; i < rows * cols; i++) {
        worst = fmax(worst, fabs(out[i] - want[i]));
        apart = fmax(apart, fabs(q[i] - want[i]));
    }
    printf("    %dx%d polar express max err %.3g (quintic differs by %.3g)\n", rows, cols, worst, apart);
    /* fp32 against float64 through 5 iterations of entries O(1): observed 5e-6 */
    CHECK_MSG(worst < 2e-5, "%dx%d polar express off by %.3g", rows, cols, worst);
    CHECK_MSG(apart > 1e-2, "%dx%d quintic equals polar express (%.3g)", rows, cols, apart);
    /* one Muon step (momentum 0: u = g) through the optimizer's batched path */
    float d[15] = {0};
    cad_optim_param p = {.name = "w", .kind = CAD_OPT_MUON, .rows = rows, .cols = cols, .numel = (size_t)(rows * cols),
                         .base_lr = 1.0, .data = d, .grad = G};
    cad_optim_hparams hp = {0.9, 0.95, 1e-8, 5, 0.0, 0, CAD_NS_POLAR_EXPRESS};
    cad_optim o;
    cad_err e = {0};
    CHECK(cad_optim_init(&o, cad_backend_cpu(), &hp, 1, &p, &e) == CAD_OK);
    cad_optim_step(&o, 1.0, 0.0);
    double scale = sqrt(rows > cols ? (double)rows / cols : 1.0);
    for (int i = 0; i < rows * cols; i++) CHECK_NEAR(d[i], -scale * out[i], 1e-6, 1e-6);
    cad_optim_free(&o);
    free(scratch);
}

static void test_newton_schulz_polar_express(void) {
    pe_case(3, 5, pe_wide);
    pe_case(5, 3, pe_tall);
    cad_config c;
    cad_err e = {0};
    CHECK(cad_config_init(&c, &e) == CAD_OK);
    CHECK(cad_config_set(&c, "muon_ns", "polar_express", "test", &e) == CAD_OK);
    CHECK(cad_config_validate(&c, &e) == CAD_OK);
    c.muon_backend_steps = 6; /* the table has 5 tuples */
    CHECK(cad_config_validate(&c, &e) == CAD_ECONFIG && strstr(e.msg, "muon_backend_steps") != NULL);
    cad_config_free(&c);
}

/* ema_start_frac: while inactive the average is the weights after every step (bit for bit);
 * once active it averages from there: ema = d ema + (1-d) p. */
static void test_ema_start(void) {
    float d[4] = {1, -2, 3, 0.5f}, g[4] = {0.5f, -1, 0.25f, 2};
    cad_optim_param p = {.name = "w", .kind = CAD_OPT_ADAM, .rows = 4, .cols = 1, .numel = 4, .base_lr = 0.1,
                         .data = d, .grad = g};
    cad_optim_hparams hp = {0.9, 0.95, 1e-8, 5, 0.5, 0, CAD_NS_QUINTIC};
    cad_optim o;
    cad_err e = {0};
    CHECK(cad_optim_init(&o, cad_backend_cpu(), &hp, 1, &p, &e) == CAD_OK);
    cad_optim_set_ema_active(&o, 0);
    for (int step = 0; step < 2; step++) {
        cad_optim_step(&o, 1.0, 0.9);
        CHECK(memcmp(o.params[0].ema, d, sizeof d) == 0);
    }
    float want[4];
    memcpy(want, d, sizeof want);
    cad_optim_set_ema_active(&o, 1);
    cad_optim_step(&o, 1.0, 0.9);
    for (int i = 0; i < 4; i++) {
        want[i] = 0.5f * d[i] + 0.5f * want[i];
        CHECK_NEAR(o.params[0].ema[i], want[i], 1e-6, 0);
    }
    CHECK(memcmp(o.params[0].ema, d, sizeof d) != 0);
    cad_optim_free(&o);
}

/* MuonEq-R (muon_row_norm): the step equals train_gpt.py's Muon applied to the Nesterov update
 * with each row divided by its L2 norm, computed here by hand; without it the rows' relative
 * scale survives (the two updates differ). */
static void test_muon_row_norm(void) {
    enum { RW = 12, CL = 8 };
    float p0[RW * CL], g[RW * CL], d[RW * CL], u[RW * CL], want[RW * CL];
    unsigned seed = 3;
    for (int i = 0; i < RW * CL; i++) {
        seed = seed * 1664525u + 1013904223u;
        p0[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
        seed = seed * 1664525u + 1013904223u;
        g[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * (float)(1 + i / CL); /* rows of growing scale */
    }
    const double lr = 0.1, mu = 0.9;
    for (int i = 0; i < RW * CL; i++) u[i] = (float)(g[i] + mu * g[i]); /* first step: buf = g */
    for (int r = 0; r < RW; r++) {
        double nrm = 0;
        for (int c = 0; c < CL; c++) nrm += (double)u[r * CL + c] * u[r * CL + c];
        nrm = sqrt(nrm);
        for (int c = 0; c < CL; c++) u[r * CL + c] = (float)(u[r * CL + c] / (nrm > 1e-7 ? nrm : 1e-7));
    }
    float *scratch = malloc(cad_muon_ns_scratch_floats(RW, CL) * sizeof(float));
    cad_muon_newton_schulz(cad_backend_cpu(), want, u, RW, CL, 5, scratch);
    double scale = sqrt((double)RW / CL);
    for (int i = 0; i < RW * CL; i++) want[i] = (float)(p0[i] - lr * scale * want[i]);
    cad_err e = {0};
    for (int on = 1; on >= 0; on--) {
        memcpy(d, p0, sizeof d);
        cad_optim_param p = {.name = "w", .kind = CAD_OPT_MUON, .rows = RW, .cols = CL, .numel = RW * CL, .base_lr = lr,
                             .data = d, .grad = g};
        cad_optim_hparams hp = {0.9, 0.95, 1e-8, 5, 0.0, on, CAD_NS_QUINTIC};
        cad_optim o;
        CHECK(cad_optim_init(&o, cad_backend_cpu(), &hp, 1, &p, &e) == CAD_OK);
        cad_optim_step(&o, 1.0, mu);
        double worst = max_abs_diff(d, want, RW * CL);
        if (on) CHECK_MSG(worst < 1e-5, "MuonEq-R step off by %.3g", worst);
        else CHECK_MSG(worst > 1e-3, "plain Muon matched the row-normalised update (%.3g)", worst);
        cad_optim_free(&o);
    }
    free(scratch);
}

int main(void) {
    cad_err e = {0};
    fx_ok = cad_safetensors_load(check_src_path("tests/fixtures/engine/optim_ref.safetensors"), &fx, &e) == CAD_OK;
    if (!fx_ok) printf("cannot load fixture: %s\n", e.msg);
    RUN(test_fixture_version);
    RUN(test_newton_schulz_wide);
    RUN(test_newton_schulz_tall);
    RUN(test_newton_schulz_orthogonalizes);
    RUN(test_newton_schulz_polar_express);
    RUN(test_optimizer_steps_match_torch);
    RUN(test_muon_rejects_bad_shape);
    RUN(test_lr_mul_by_iterations);
    RUN(test_lr_mul_by_wallclock);
    RUN(test_lr_schedules);
    RUN(test_muon_momentum_warmup);
    RUN(test_weight_decay_is_decoupled);
    RUN(test_ema_of_weights);
    RUN(test_ema_start);
    RUN(test_muon_row_norm);
    RUN(test_trajectory_matches_torch);
    RUN(test_trajectory_untied_matches_torch);
    cad_safetensors_file_free(&fx);
    return check_report();
}

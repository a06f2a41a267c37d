/*
 * test_engine_eval.c — val_loss / val_bpb:
 *  - parity with train_gpt.py's eval_val in PyTorch on the tiny parity model with a synthetic
 *    LUT (tests/fixtures/engine/train_parity_v1.bin from tests/scripts/gen_train_fixture.py),
 *    with the val batch evaluated whole and in chunks;
 *  - on the bundled sample's val split (data/sample/fineweb10B_sp1024, `make sample`) with fixed
 *    (seeded) weights, against an independent computation in this file: per-token losses of
 *    one window at a time summed in float64, and bytes counted from the tokenizer's pieces by
 *    the rule in parameter-golf.md §6 (not through bpb_luts.c);
 *  - val_max_tokens marks the result partial; chunking does not change the result;
 *  - sliding-window evaluation against an independent per-target window assignment.
 */
#include "check.h"
#include "engine/bpb_luts.h"
#include "engine/eval.h"
#include "engine/model.h"
#include "parity_fixture.h"
#include "engine/stream.h"
#include "engine/tokenizer.h"
#include "bundled_val.h"

static int load_params(cad_model *m, const pf_file *f, const char *prefix) {
    for (int i = 0; i < m->n_params; i++) {
        char nm[160];
        snprintf(nm, sizeof nm, "%s%s", prefix, m->params[i].name);
        const pf_record *r = pf_get(f, nm);
        if (!r || r->numel != m->params[i].numel) return -1;
        m->be->copy_to_device(m->be, m->params[i].data, r->data, (size_t)r->numel * 4);
    }
    return 0;
}

static void check_eval(const char *fixture) {
    pf_file f;
    if (pf_load(check_src_path(fixture), &f)) { CHECK(0); return; }
    const pf_record *vt = pf_get(&f, "val_tokens"), *bb = pf_get(&f, "lut.base_bytes"),
                    *hs = pf_get(&f, "lut.has_leading_space"), *ib = pf_get(&f, "lut.is_boundary");
    CHECK(vt && bb && hs && ib);
    if (!vt || !bb || !hs || !ib) { pf_free(&f); return; }
    int V = (int)bb->numel, T = (int)pf_scalar(&f, "val.seq_len");
    cad_bpb_luts l = {V, malloc((size_t)V * 2), malloc((size_t)V), malloc((size_t)V)};
    for (int i = 0; i < V; i++) {
        l.base_bytes[i] = (int16_t)((int32_t *)bb->data)[i];
        l.has_leading_space[i] = (uint8_t)((int32_t *)hs->data)[i];
        l.is_boundary[i] = (uint8_t)((int32_t *)ib->data)[i];
    }
    long n = vt->numel;
    uint16_t *tok = malloc((size_t)n * 2);
    for (long i = 0; i < n; i++) tok[i] = (uint16_t)((int32_t *)vt->data)[i];
    double want_loss = pf_scalar(&f, "val_loss"), want_bpb = pf_scalar(&f, "val_bpb");
    /* max_batch_seqs 2 = torch's val batch (exact eval_val grouping); 1 = chunked */
    for (int mbs = 2; mbs >= 1; mbs--) {
        cad_model_config mc = pf_model_config(&f, mbs);
        cad_model m;
        cad_err e = {0};
        CHECK_MSG(cad_model_init(&m, &mc, cad_backend_cpu(), 1, &e) == CAD_OK, "%s", e.msg);
        CHECK(load_params(&m, &f, "") == 0);
        int32_t *x = malloc((size_t)mbs * T * 4), *y = malloc((size_t)mbs * T * 4);
        cad_eval_spec sp = {T, (long)pf_scalar(&f, "val.batch_tokens"), 1, 0, 0, 1};
        cad_eval_result r;
        CHECK_MSG(cad_eval_val(&m, tok, n, &l, &sp, x, y, &r, &e) == CAD_OK, "%s", e.msg);
        /* fp32 forward vs torch fp32 (different summation orders): per-token NLL agree to ~1e-6
         * relative; the fixture stores the float64 results as float32 (6e-8 relative). */
        CHECK_NEAR(r.val_loss, want_loss, 0, 2e-6);
        CHECK_NEAR(r.val_bpb, want_bpb, 0, 2e-6);
        printf("# eval_val parity (val batch in %d chunk(s)): val_loss %.8f torch %.8f, val_bpb %.8f torch %.8f\n",
               3 - mbs, r.val_loss, want_loss, r.val_bpb, want_bpb);
        CHECK_EQ_INT(r.n_seqs, (n - 1) / T);
        CHECK_EQ_INT(r.partial, 0);
        free(x), free(y);
        cad_model_free(&m);
    }
    free(tok);
    cad_bpb_luts_free(&l);
    pf_free(&f);
}

static void test_eval_matches_torch(void) { check_eval("tests/fixtures/engine/train_parity_v1.bin"); }
static void test_eval_untied_matches_torch(void) { check_eval("tests/fixtures/engine/train_parity_untied_v1.bin"); }

/* parameter-golf.md §6, written out independently of bpb_luts.c */
static int piece_bytes(const cad_tokenizer *t, int id, int *leading_space, int *boundary) {
    *leading_space = 0;
    *boundary = 1;
    if (cad_tokenizer_is_control(t, id) || cad_tokenizer_is_unknown(t, id) || cad_tokenizer_is_unused(t, id)) return 0;
    *boundary = 0;
    if (cad_tokenizer_is_byte(t, id)) return 1;
    const char *p = cad_tokenizer_piece(t, id);
    if (strncmp(p, "\xe2\x96\x81", 3) == 0) { /* U+2581 */
        *leading_space = 1;
        p += 3;
    }
    return (int)strlen(p);
}

static void test_bundled_val_split_independent(void) {
    int T = 64;
    bundled_val bv;
    if (bundled_val_open(&bv, T)) return;
    BUNDLED_NAMES(bv);
    cad_err e = {0};
    cad_model m;
    if (bundled_tiny_model(&m, 4, T, 4242)) { bundled_val_close(&bv); return; }
    int32_t *x = malloc(4 * (size_t)T * 4), *y = malloc(4 * (size_t)T * 4);
    long windows = 40; /* a prefix keeps the test fast under ASan */
    cad_eval_spec sp = {T, 8 * 4 * T, 8, windows * T, 0, 1};
    cad_eval_result r;
    CHECK_MSG(cad_eval_val(&m, tok, n, &l, &sp, x, y, &r, &e) == CAD_OK, "%s", e.msg);
    CHECK_EQ_INT(r.partial, 1);
    CHECK_EQ_INT(r.n_seqs, windows);

    /* independent: one window at a time, sum per-token NLL in float64, bytes from pieces */
    double loss = 0, bytes = 0;
    int bos_targets = 0;
    for (long w = 0; w < windows; w++) {
        for (int i = 0; i < T; i++) x[i] = tok[w * T + i], y[i] = tok[w * T + i + 1];
        float mean;
        CHECK(cad_model_forward(&m, x, y, 1, T, &mean, &e) == CAD_OK);
        for (int i = 0; i < T; i++) {
            loss += m.token_loss[i];
            int ls, bd, lsp, bdp;
            int b = piece_bytes(tk, y[i], &ls, &bd);
            piece_bytes(tk, x[i], &lsp, &bdp);
            bytes += b + (ls && !bdp);
            bos_targets += y[i] == cad_tokenizer_bos_id(tk);
        }
    }
    double tokens = (double)windows * T;
    CHECK(bos_targets > 0); /* the prefix crosses document starts: BOS targets with 0 bytes */
    CHECK_NEAR(r.token_count, tokens, 0, 0);
    CHECK_NEAR(r.byte_count, bytes, 0, 0);
    /* mean*count per batch vs a float64 sum of the per-token fp32 losses: ~1e-7 relative */
    CHECK_NEAR(r.val_loss, loss / tokens, 0, 1e-6);
    CHECK_NEAR(r.val_bpb, loss / log(2.0) / bytes, 0, 1e-6);
    printf("# bundled val prefix: val_bpb %.8f, independent %.8f; bytes %.0f = %.0f; %d BOS targets\n", r.val_bpb,
           loss / log(2.0) / bytes, r.byte_count, bytes, bos_targets);

    /* the whole-batch vs chunked grouping gives the same numbers */
    cad_eval_spec sp2 = {T, 8 * T, 8, windows * T, 0, 1};
    cad_eval_result r2;
    CHECK(cad_eval_val(&m, tok, n, &l, &sp2, x, y, &r2, &e) == CAD_OK);
    CHECK_NEAR(r2.val_loss, r.val_loss, 0, 1e-6);
    CHECK_NEAR(r2.byte_count, r.byte_count, 0, 0);
    cad_eval_spec bad = {T, 4 * T, 8, 0, 0, 1}; /* val_batch_size / accum < seq_len */
    CHECK(cad_eval_val(&m, tok, n, &l, &bad, x, y, &r2, &e) == CAD_ECONFIG);
    free(x), free(y);
    cad_model_free(&m);
    bundled_val_close(&bv);
}

/* Sliding-window eval (eval_stride) on the bundled val prefix against an independent
 * assignment: target t < L belongs to window 0 at position t; a later target to window
 * k = floor((t - L) / S) + 1 at position t - kS, with exactly that window's tokens as context.
 * Every target is scored once (counts and LUT bytes exact), the NLL sums agree to float64
 * rounding, and S = L reproduces cad_eval_val. */
static void test_sliding_window_eval(void) {
    const int L = 32;
    bundled_val bv;
    if (bundled_val_open(&bv, L)) return;
    BUNDLED_NAMES(bv);
    cad_err e = {0};
    cad_model m;
    if (bundled_tiny_model(&m, 4, L, 77)) { bundled_val_close(&bv); return; }
    /* train_gpt.py zero-initialises the output projections, which would make every token's
     * loss independent of its context (and all strides equal): give them weights */
    unsigned seed = 5;
    for (int i = 0; i < m.n_params; i++)
        if (strstr(m.params[i].name, "proj.weight"))
            for (long j = 0; j < m.params[i].numel; j++) {
                seed = seed * 1103515245u + 12345u;
                m.params[i].data[j] = ((float)(seed >> 8) / (float)(1u << 24) - 0.5f) * 0.6f;
            }
    int32_t *x = malloc(4 * (size_t)L * 4), *y = malloc(4 * (size_t)L * 4);
    const long windows = 9, N = windows * L;
    cad_eval_spec sp = {L, 8 * 4 * L, 8, N, 0, 1};
    cad_eval_result base, r;
    CHECK(cad_eval_val(&m, tok, n, &l, &sp, x, y, &base, &e) == CAD_OK);
    static const int strides[] = {32, 16, 12, 7, 1};
    for (size_t si = 0; si < sizeof strides / sizeof *strides; si++) {
        int S = strides[si];
        CHECK_MSG(cad_eval_sliding(&m, tok, n, &l, &sp, S, x, y, &r, &e) == CAD_OK, "%s", e.msg);
        CHECK_EQ_INT(r.partial, 1);
        double loss = 0, bytes = 0;
        for (long t = 0; t < N;) { /* one window per group of targets */
            long k = t < L ? 0 : (t - L) / S + 1, ws = k * S;
            long last = k == 0 ? (N < L ? N : L) : (ws + L < N ? ws + L : N); /* targets [t, last) */
            int T = (int)(last - ws);
            for (int i = 0; i < T; i++) x[i] = tok[ws + i], y[i] = tok[ws + i + 1];
            float mean;
            CHECK(cad_model_forward(&m, x, y, 1, T, &mean, &e) == CAD_OK);
            for (long u = t; u < last; u++) {
                int i = (int)(u - ws), ls, bd, lsp, bdp;
                loss += m.token_loss[i];
                int b = piece_bytes(tk, y[i], &ls, &bd);
                piece_bytes(tk, x[i], &lsp, &bdp);
                bytes += b + (ls && !bdp);
            }
            t = last;
        }
        CHECK_NEAR(r.token_count, (double)N, 0, 0);
        CHECK_NEAR(r.byte_count, bytes, 0, 0);
        CHECK_NEAR(r.byte_count, base.byte_count, 0, 0);
        /* batches of 4 windows vs one window at a time: fp32 GEMM blocking moves each token's
         * NLL by ~1e-7 relative (measured sums within 1e-8); a wrong window or position moves
         * the sum by > 1e-4 (the strides below differ by 0.1-1%) */
        CHECK_MSG(fabs(r.loss_sum - loss) <= 1e-7 * loss, "stride %d: loss sum %.12g, independent %.12g", S, r.loss_sum, loss);
        if (S == L) CHECK_NEAR(r.val_loss, base.val_loss, 0, 1e-6);
        else CHECK_MSG(fabs(r.val_loss - base.val_loss) > 1e-6, "stride %d: context made no difference", S);
        printf("# sliding stride %2d: %ld windows, val_bpb %.6f (non-overlapping %.6f)\n", S, r.n_seqs, r.val_bpb,
               base.val_bpb);
    }
    CHECK(cad_eval_sliding(&m, tok, n, &l, &sp, L + 1, x, y, &r, &e) == CAD_ECONFIG);
    CHECK(cad_eval_sliding(&m, tok, n, &l, &sp, 0, x, y, &r, &e) == CAD_ECONFIG);
    free(x), free(y);
    cad_model_free(&m);
    bundled_val_close(&bv);
}

int main(void) {
    RUN(test_eval_matches_torch);
    RUN(test_eval_untied_matches_torch);
    RUN(test_bundled_val_split_independent);
    RUN(test_sliding_window_eval);
    return check_report();
}

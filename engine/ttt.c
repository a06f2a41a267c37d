/*
 * ttt.c — score-first SGD test-time training over the validation chunks (see ttt.h).
 * Not here: the sliding schedule itself (eval.c), the model's forward/backward (model.c).
 */
#include "engine/ttt.h"

#include <math.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One SGD step on sequences [first, first + B) of length L starting at tokens[base]: the mean
 * loss over all B*L targets, micro-batched to the model's plan. */
static int ttt_step(cad_model *m, const uint16_t *tokens, long base, int L, int B, const cad_ttt_spec *t, double lr,
                    float *buf, int32_t *xbuf, int32_t *ybuf, cad_err *e) {
    const cad_backend *be = m->be;
    size_t n = m->n_param_floats;
    int mb = m->cfg.max_batch_seqs, prev = 0;
    cad_model_zero_grad(m);
    for (int off = 0; off < B; off += mb) {
        int b = B - off < mb ? B - off : mb;
        const uint16_t *src = tokens + base + (long)off * L;
        for (long i = 0; i < (long)b * L; i++) xbuf[i] = src[i], ybuf[i] = src[i + 1];
        float loss;
        int rc = cad_model_forward(m, xbuf, ybuf, b, L, &loss, e);
        if (rc) return cad_wrap(e, "ttt: sequences at token %ld", base + (long)off * L);
        /* grads hold (sum of b_j g_j) / prev; rescale to / b before adding g (b's mean) */
        if (prev && prev != b) be->scale(be, n, (float)prev / (float)b, m->grad_mem);
        if ((rc = cad_model_backward(m, e))) return rc;
        prev = b;
    }
    if (prev != B) be->scale(be, n, (float)prev / (float)B, m->grad_mem);
    if (t->grad_clip > 0) { /* torch.nn.utils.clip_grad_norm_ */
        double total = sqrt(be->sumsq(be, m->grad_mem, n)), coef = t->grad_clip / (total + 1e-6);
        if (coef < 1.0) be->scale(be, n, (float)coef, m->grad_mem);
    }
    /* torch SGD, dampening 0, no nesterov: buf = mu buf + g; p -= lr buf */
    be->axpby(be, n, 1.0f, m->grad_mem, (float)t->momentum, buf);
    be->axpby(be, n, (float)-lr, buf, 1.0f, m->param_mem);
    return CAD_OK;
}

int cad_eval_ttt(cad_model *m, const uint16_t *tokens, long n_tokens, const cad_bpb_luts *luts,
                 const cad_eval_spec *spec, const cad_ttt_spec *t, int32_t *xbuf, int32_t *ybuf,
                 cad_eval_result *r, cad_ttt_progress_fn progress, void *ud, cad_err *e) {
    double t0 = now_ms();
    memset(r, 0, sizeof *r);
    const int L = spec->seq_len, S = t->stride;
    if (t->chunk_tokens < L)
        return cad_fail(e, CAD_ECONFIG, "ttt_chunk_tokens=%ld: expected at least train_seq_len (%d)", t->chunk_tokens, L);
    if (t->batch_seqs <= 0 || t->epochs < 0)
        return cad_fail(e, CAD_ECONFIG, "ttt_batch_seqs=%d / ttt_epochs=%d: expected > 0 / >= 0", t->batch_seqs,
                        t->epochs);
    long N, n_win;
    int rc = cad_eval_sliding_plan(m, n_tokens, spec, S, &N, &n_win, &r->partial, e);
    if (rc) return rc;
    long n_chunks = (N + t->chunk_tokens - 1) / t->chunk_tokens;
    const cad_backend *be = m->be;
    float *buf = t->epochs > 0 ? be->alloc(be, m->n_param_floats * sizeof(float)) : NULL;
    if (t->epochs > 0 && !buf)
        return cad_fail(e, CAD_ENOMEM, "ttt: cannot allocate the SGD momentum buffer (%zu bytes) on %s",
                        m->n_param_floats * sizeof(float), be->name);
    double sums[3] = {0, 0, 0};
    long k = 0;
    for (long ci = 0; ci < n_chunks && !rc; ci++) {
        /* score first: the windows whose scored targets start in this chunk */
        long k1 = k;
        while (k1 < n_win) {
            long c = cad_sliding_scored_start(L, S, k1) / t->chunk_tokens;
            if ((c < n_chunks - 1 ? c : n_chunks - 1) > ci) break;
            k1++;
        }
        if ((rc = cad_eval_windows(m, tokens, N, L, S, k, k1, luts, xbuf, ybuf, sums, e))) break;
        k = k1;
        if (progress) progress(ud, ci, n_chunks, sums, now_ms() - t0);
        if (ci == n_chunks - 1 || t->epochs == 0) continue; /* the last chunk is never trained on */
        /* then train on the chunk's tokens */
        long cs = ci * t->chunk_tokens, ce = cs + t->chunk_tokens < N ? cs + t->chunk_tokens : N;
        long seqs = (ce - cs) / L;
        double lr = t->lr * 0.5 * (1.0 + cos(M_PI * (double)ci / (double)(n_chunks - 1 > 1 ? n_chunks - 1 : 1)));
        for (int ep = 0; ep < t->epochs && !rc; ep++)
            for (long bs = 0; bs < seqs && !rc; bs += t->batch_seqs) {
                int B = (int)(seqs - bs < t->batch_seqs ? seqs - bs : t->batch_seqs);
                rc = ttt_step(m, tokens, cs + bs * L, L, B, t, lr, buf, xbuf, ybuf, e);
            }
    }
    be->free(be, buf);
    if (rc) return rc;
    r->n_seqs = n_win;
    if ((rc = cad_eval_result_finish(r, sums, e))) return rc;
    r->eval_ms = now_ms() - t0;
    return CAD_OK;
}

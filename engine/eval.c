/*
 * eval.c — eval_val and sliding-window evaluation on the CPU/CUDA model (see eval.h).
 * Not here: test-time training.
 */
#include "engine/eval.h"

#include <math.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int cad_eval_val(cad_model *m, const uint16_t *tokens, long n_tokens, const cad_bpb_luts *luts,
                 const cad_eval_spec *spec, int32_t *xbuf, int32_t *ybuf, cad_eval_result *r,
                 cad_err *e) {
    double t0 = now_ms();
    memset(r, 0, sizeof *r);
    const int L = spec->seq_len;
    int world = spec->world > 0 ? spec->world : 1;
    long local_batch_tokens = spec->val_batch_size / ((long)world * spec->grad_accum_steps);
    if (local_batch_tokens < L)
        return cad_fail(e, CAD_ECONFIG,
                        "VAL_BATCH_SIZE must provide at least one sequence per rank; got "
                        "val_batch_size=%ld, world_size=%d, grad_accum_steps=%d, train_seq_len=%d",
                        spec->val_batch_size, world, spec->grad_accum_steps, L);
    long local_batch_seqs = local_batch_tokens / L;
    long total_seqs = (n_tokens - 1) / L;
    if (spec->val_max_tokens > 0 && spec->val_max_tokens / L < total_seqs) {
        total_seqs = spec->val_max_tokens / L;
        r->partial = 1;
    }
    if (total_seqs <= 0) return cad_fail(e, CAD_ECONFIG, "validation split shorter than one window of %d", L);
    int chunk_max = m->cfg.max_batch_seqs;
    if (L > m->cfg.max_seq_len)
        return cad_fail(e, CAD_ECONFIG, "train_seq_len %d exceeds the model's planned %d", L, m->cfg.max_seq_len);
    double loss_sum = 0, token_count = 0, byte_count = 0;
    long seq_start = total_seqs * spec->rank / world, seq_end = total_seqs * (spec->rank + 1) / world;
    for (long bs = seq_start; bs < seq_end; bs += local_batch_seqs) {
        long be_ = bs + local_batch_seqs < seq_end ? bs + local_batch_seqs : seq_end;
        for (long cs = bs; cs < be_; cs += chunk_max) {
            long ce = cs + chunk_max < be_ ? cs + chunk_max : be_;
            int B = (int)(ce - cs);
            long n = (long)B * L;
            const uint16_t *src = tokens + cs * L;
            int64_t bytes = 0;
            for (long i = 0; i < n; i++) {
                xbuf[i] = src[i];
                ybuf[i] = src[i + 1];
                if (src[i] >= luts->size || src[i + 1] >= luts->size)
                    return cad_fail(e, CAD_EFORMAT, "val token id %d >= LUT size %d",
                                    src[i] > src[i + 1] ? src[i] : src[i + 1], luts->size);
                bytes += cad_bpb_token_bytes(luts, src[i], src[i + 1]);
            }
            float mean_loss = 0;
            int rc = cad_model_forward(m, xbuf, ybuf, B, L, &mean_loss, e);
            if (rc) return cad_wrap(e, "val windows %ld..%ld", cs, ce);
            loss_sum += (double)mean_loss * (double)n;
            token_count += (double)n;
            byte_count += (double)bytes;
        }
    }
    r->n_seqs = total_seqs;
    r->loss_sum = loss_sum;
    r->token_count = token_count;
    r->byte_count = byte_count;
    r->val_loss = loss_sum / token_count;
    if (world > 1) { /* this rank's share only: the caller reduces the sums and finishes */
        r->eval_ms = now_ms() - t0;
        return CAD_OK;
    }
    if (byte_count <= 0)
        return cad_fail(e, CAD_ENUMERIC, "validation prefix has 0 bytes (all targets are control tokens)");
    r->val_bpb = r->val_loss / log(2.0) * (token_count / byte_count);
    r->eval_ms = now_ms() - t0;
    return CAD_OK;
}

/* Windows [w0, w1) of the schedule in eval.h, all full length L: one forward; adds the scored
 * targets of each (window ws scores positions [ws ? L - S : 0, L)). */
static int sliding_batch(cad_model *m, const uint16_t *tokens, long w0, long w1, int L, int S, int T,
                         const cad_bpb_luts *luts, int32_t *xbuf, int32_t *ybuf, double sums[3], cad_err *e) {
    int B = (int)(w1 - w0);
    for (int b = 0; b < B; b++) {
        const uint16_t *src = tokens + (w0 + b) * S;
        for (int i = 0; i < T; i++) {
            if (src[i] >= luts->size || src[i + 1] >= luts->size)
                return cad_fail(e, CAD_EFORMAT, "val token id %d >= LUT size %d",
                                src[i] > src[i + 1] ? src[i] : src[i + 1], luts->size);
            xbuf[(size_t)b * T + i] = src[i];
            ybuf[(size_t)b * T + i] = src[i + 1];
        }
    }
    float mean_loss;
    if (cad_model_forward(m, xbuf, ybuf, B, T, &mean_loss, e))
        return cad_wrap(e, "sliding windows %ld..%ld", w0, w1);
    for (int b = 0; b < B; b++) {
        int first = w0 + b == 0 ? 0 : L - S;
        for (int i = first; i < T; i++) {
            size_t k = (size_t)b * T + i;
            sums[0] += (double)m->token_loss[k];
            sums[1] += 1.0;
            sums[2] += (double)cad_bpb_token_bytes(luts, xbuf[k], ybuf[k]);
        }
    }
    return CAD_OK;
}

/* Targets evaluated (k*L, val_max_tokens included) and the window count of the schedule. */
int cad_eval_sliding_plan(const cad_model *m, long n_tokens, const cad_eval_spec *spec, int S, long *N,
                          long *n_win, int *partial, cad_err *e) {
    const int L = spec->seq_len;
    if (S <= 0 || S > L) return cad_fail(e, CAD_ECONFIG, "eval_stride=%d: expected 1..train_seq_len (%d)", S, L);
    if (L > m->cfg.max_seq_len)
        return cad_fail(e, CAD_ECONFIG, "train_seq_len %d exceeds the model's planned %d", L, m->cfg.max_seq_len);
    long total_seqs = (n_tokens - 1) / L;
    *partial = 0;
    if (spec->val_max_tokens > 0 && spec->val_max_tokens / L < total_seqs) {
        total_seqs = spec->val_max_tokens / L;
        *partial = 1;
    }
    if (total_seqs <= 0) return cad_fail(e, CAD_ECONFIG, "validation split shorter than one window of %d", L);
    *N = total_seqs * L;
    *n_win = 1 + (*N - L + S - 1) / S; /* k >= 1 needs k*S + L - S < N */
    return CAD_OK;
}

long cad_sliding_scored_start(int L, int S, long k) { return k == 0 ? 0 : k * S + L - S; }

int cad_eval_windows(cad_model *m, const uint16_t *tokens, long N, int L, int S, long k0, long k1,
                     const cad_bpb_luts *luts, int32_t *xbuf, int32_t *ybuf, double sums[3], cad_err *e) {
    long n_full = 1 + (N - L) / S; /* windows whose k*S + L <= N */
    long full_end = k1 < n_full ? k1 : n_full;
    int chunk = m->cfg.max_batch_seqs;
    for (long w = k0; w < full_end; w += chunk) {
        long w1 = w + chunk < full_end ? w + chunk : full_end;
        int rc = sliding_batch(m, tokens, w, w1, L, S, L, luts, xbuf, ybuf, sums, e);
        if (rc) return rc;
    }
    if (k1 > n_full && k0 <= n_full) { /* the cut window at the end: N - ws targets, the last ones scored */
        int rc = sliding_batch(m, tokens, n_full, n_full + 1, L, S, (int)(N - n_full * S), luts, xbuf, ybuf, sums, e);
        if (rc) return rc;
    }
    return CAD_OK;
}

int cad_eval_result_finish(cad_eval_result *r, const double sums[3], cad_err *e) {
    r->loss_sum = sums[0];
    r->token_count = sums[1];
    r->byte_count = sums[2];
    if (sums[2] <= 0)
        return cad_fail(e, CAD_ENUMERIC, "validation prefix has 0 bytes (all targets are control tokens)");
    r->val_loss = sums[0] / sums[1];
    r->val_bpb = r->val_loss / log(2.0) * (sums[1] / sums[2]);
    return CAD_OK;
}

int cad_eval_sliding(cad_model *m, const uint16_t *tokens, long n_tokens, const cad_bpb_luts *luts,
                     const cad_eval_spec *spec, int stride, int32_t *xbuf, int32_t *ybuf,
                     cad_eval_result *r, cad_err *e) {
    double t0 = now_ms();
    memset(r, 0, sizeof *r);
    long N, n_win;
    int rc = cad_eval_sliding_plan(m, n_tokens, spec, stride, &N, &n_win, &r->partial, e);
    if (rc) return rc;
    double sums[3] = {0, 0, 0};
    if ((rc = cad_eval_windows(m, tokens, N, spec->seq_len, stride, 0, n_win, luts, xbuf, ybuf, sums, e))) return rc;
    r->n_seqs = n_win;
    if ((rc = cad_eval_result_finish(r, sums, e))) return rc;
    r->eval_ms = now_ms() - t0;
    return CAD_OK;
}

/*
 * eval.h — val_loss and val_bpb exactly as train_gpt.py's eval_val: the val stream cut into
 * non-overlapping train_seq_len windows, batches of val_batch_size / grad_accum_steps tokens,
 * loss_sum += mean_batch_loss * n_targets and byte_count += LUT bytes (base_bytes[y] +
 * leading space unless the previous token is a boundary), all in float64;
 * val_loss = loss_sum / token_count, val_bpb = val_loss / ln 2 * token_count / byte_count.
 *
 * When a val batch holds more sequences than the model's activation plan (max_batch_seqs), it
 * is evaluated in chunks and each chunk contributes mean_chunk_loss * chunk_targets: the same
 * sum up to fp32 rounding inside the mean. val_max_tokens > 0 evaluates only the first
 * floor(val_max_tokens / seq_len) windows and marks the result partial.
 *
 * Not here: the model (model.h), the LUTs (bpb_luts.h), loading the val split (stream.h),
 * test-time training.
 */
#ifndef CADDIE_EVAL_H
#define CADDIE_EVAL_H

#include "engine/bpb_luts.h"
#include "engine/model.h"
#include "engine/status.h"

#include <stdint.h>

typedef struct cad_eval_result {
    double val_loss, val_bpb;
    double loss_sum, token_count, byte_count; /* the float64 sums */
    long n_seqs;                              /* windows evaluated */
    int partial;                              /* 1 when val_max_tokens cut the split */
    double eval_ms;
} cad_eval_result;

typedef struct cad_eval_spec {
    int seq_len;           /* train_seq_len */
    long val_batch_size;   /* tokens per val batch over all micro-steps */
    int grad_accum_steps;  /* world 1: val batch = val_batch_size / grad_accum_steps */
    long val_max_tokens;   /* 0 = the whole split */
    /* data parallel, as eval_val: rank evaluates windows [total*rank/world, total*(rank+1)/world)
     * in batches of val_batch_size / (world * grad_accum_steps) tokens; the caller all-reduces
     * the float64 sums (cad_eval_result_finish). world 0 means 1 (rank 0). */
    int rank, world;
} cad_eval_spec;

/* Sliding-window evaluation (eval_stride S): windows of seq_len L start every S tokens; the
 * first window scores all its targets, every later one only those at window positions
 * [L - S, L), so each scored target sees at least L - S tokens of context. Windows start at
 * ws = 0, S, 2S, ... while ws + L - S < N (N = targets evaluated: the same k*L as
 * cad_eval_val, val_max_tokens included), the last one cut at N: every target is scored
 * exactly once (the records' 04-01 fix; earlier versions scored tail targets twice or not at
 * all). S = L is exactly cad_eval_val's sums. Batches of up to max_batch_seqs full windows;
 * the cut tail window runs alone at its own length (causal: same outputs). Float64 sums of
 * per-target NLL and LUT bytes, as eval_val. */
int cad_eval_sliding(cad_model *m, const uint16_t *tokens, long n_tokens, const cad_bpb_luts *luts,
                     const cad_eval_spec *spec, int stride, int32_t *xbuf, int32_t *ybuf,
                     cad_eval_result *r, cad_err *e);

/* Pieces of the sliding schedule, for evaluators built on it (ttt.c):
 * the targets N and window count for a stride; the first target window k scores; windows
 * [k0, k1) scored into sums {nll, targets, bytes} (float64); a result from such sums. */
int cad_eval_sliding_plan(const cad_model *m, long n_tokens, const cad_eval_spec *spec, int stride, long *N,
                          long *n_win, int *partial, cad_err *e);
long cad_sliding_scored_start(int L, int S, long k);
int cad_eval_windows(cad_model *m, const uint16_t *tokens, long N, int L, int S, long k0, long k1,
                     const cad_bpb_luts *luts, int32_t *xbuf, int32_t *ybuf, double sums[3], cad_err *e);
int cad_eval_result_finish(cad_eval_result *r, const double sums[3], cad_err *e);

/* Evaluate m on tokens[0..n_tokens) (already trimmed to k*seq_len+1 by cad_val_tokens_load).
 * xbuf/ybuf are host scratch of m->cfg.max_batch_seqs * seq_len int32 each. */
int cad_eval_val(cad_model *m, const uint16_t *tokens, long n_tokens, const cad_bpb_luts *luts,
                 const cad_eval_spec *spec, int32_t *xbuf, int32_t *ybuf, cad_eval_result *r,
                 cad_err *e);

#endif

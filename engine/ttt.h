/*
 * ttt.h — score-first test-time training (techniques.md §8, the records' PR #461/#549 SGD TTT):
 * the validation targets are cut into chunks of ttt_chunk_tokens; each chunk is first SCORED
 * with the sliding-window schedule of eval.h (the windows whose scored targets start in the
 * chunk), and only then are all weights trained on that chunk's tokens (SGD with momentum,
 * lr = ttt_lr * (1 + cos(pi * chunk / (chunks - 1))) / 2, ttt_epochs passes of ttt_batch_seqs
 * sequences of seq_len, global grad-norm clip); the last chunk is not trained. Every target is
 * scored once, by weights that have seen only earlier chunks: the legality conditions of
 * issue #1017 (score before any update that uses those tokens, a single pass).
 *
 * The weights are changed in place (TTT is the last thing a run does). A sequence batch larger
 * than the model's plan (max_batch_seqs) runs as several micro-batches whose gradients are
 * weighted to the batch mean.
 *
 * Not here: LoRA / per-document / phased TTT variants, multi-rank sharding.
 */
#ifndef CADDIE_TTT_H
#define CADDIE_TTT_H

#include "engine/eval.h"

typedef struct cad_ttt_spec {
    int stride;         /* sliding stride used for scoring (seq_len = non-overlapping) */
    long chunk_tokens;  /* records: 32768 */
    double lr;          /* peak SGD lr (records: 0.002 at SP1024, 0.005 at SP8192) */
    double momentum;    /* 0.9 */
    int epochs;         /* 3; 0 = score only (equals cad_eval_sliding) */
    int batch_seqs;     /* sequences per SGD step (records: 32) */
    double grad_clip;   /* global grad-norm clip (records: 1.0); 0 = off */
} cad_ttt_spec;

/* Called after each chunk with the running sums {nll, targets, bytes} (may be NULL). */
typedef void (*cad_ttt_progress_fn)(void *ud, long chunk, long n_chunks, const double sums[3], double elapsed_ms);

int cad_eval_ttt(cad_model *m, const uint16_t *tokens, long n_tokens, const cad_bpb_luts *luts,
                 const cad_eval_spec *spec, const cad_ttt_spec *ttt, int32_t *xbuf, int32_t *ybuf,
                 cad_eval_result *r, cad_ttt_progress_fn progress, void *ud, cad_err *e);

#endif

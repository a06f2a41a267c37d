/*
 * ttt_lora.h — per-document LoRA test-time training (techniques.md §8, the LoRA_TTT record,
 * 2026-03-17): the base weights stay frozen; low-rank adapters (delta = x A^T B^T, A [r, in]
 * and B [out, r]) on the targeted projections adapt to each validation document while it is
 * scored, and are reset before the next one.
 *
 * The schedule, as the record's eval_val_ttt_lora: the evaluated val targets (the same N as
 * eval_val, val_max_tokens included) are split into documents at BOS: a document runs from a
 * BOS (or the stream start) up to and including the next BOS, so every target belongs to
 * exactly one. Its P targets are cut into chunks of `chunk` tokens; chunk i is one forward
 * over the window from max(0, (i+1)*chunk - seq_len) to the chunk's end, inside the document
 * (never crossing into the previous one; the record starts it seq_len before the chunk's
 * actual end, which for a document's last chunk depends on where the next BOS is, a later
 * token: here it never does). That forward SCORES the chunk's
 * targets; then (every chunk but the document's last) `epochs` Adam steps on the mean NLL of
 * the chunk's targets in that window train the adapters, the first step reusing the scoring
 * forward. A target's score therefore depends only on the artifact, its own document's earlier
 * tokens and adapters trained on earlier chunks (the legality conditions of issue #1017).
 *
 * Adapters: the record's init, A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0, drawn once from the seed
 * and restored at every reset (the record redraws A per batch; a fixed draw makes a
 * document's score independent of the order documents are visited). Adam (torch.optim.Adam,
 * betas 0.9/0.95, eps 1e-10 as the record), state reset per document. One document per
 * forward (B = 1): the record batches 64 documents with per-element adapters.
 *
 * Targets (ttt_lora_targets): q, k, v (the fused c_q|c_k|c_v output's column slices), o
 * (attn.proj), mlp (mlp.fc and mlp.proj), head (the logits, before the softcap). Adapters are
 * per physical block (passes of a recurrent block share them); attention sites of Mamba blocks
 * have none.
 *
 * Not here: the model's forward/backward (model.c calls cad_lora_apply / cad_lora_grad where a
 * targeted projection runs), score-first SGD TTT over all weights (ttt.h), batching documents,
 * the phased / global-SGD variants, multi-rank sharding.
 */
#ifndef CADDIE_TTT_LORA_H
#define CADDIE_TTT_LORA_H

#include "engine/eval.h"
#include "engine/ttt.h"

#include <stdint.h>

/* Adapter sites: bit (1u << site) of a target mask. */
enum { CAD_LORA_Q, CAD_LORA_K, CAD_LORA_V, CAD_LORA_O, CAD_LORA_FC, CAD_LORA_MLP_PROJ, CAD_LORA_HEAD, CAD_LORA_NSITES };

typedef struct cad_lora_spec {
    int rank;          /* r >= 1 (records: 8) */
    unsigned targets;  /* site mask (cad_lora_targets_parse) */
    int chunk;         /* targets scored per step, 1..seq_len (records: 256) */
    int epochs;        /* Adam steps per chunk (records: 1); 0 = score only, no adapters */
    double lr;         /* Adam lr (records: 0.01) */
    uint64_t seed;     /* A's init */
} cad_lora_spec;

typedef struct cad_lora cad_lora;

/* "q,v,head" -> mask. Names: q k v o mlp head (mlp = fc and proj). CAD_ECONFIG naming
 * `key` and the offending name; an empty list is an error. */
int cad_lora_targets_parse(const char *text, const char *key, unsigned *mask, cad_err *e);

/* Adapters for m (backend memory: params, grads, Adam moments, the init copy, scratch for
 * m's largest batch), reset. The mlp target needs a dense MLP (CAD_ECONFIG with mlp_experts). */
int cad_lora_create(cad_lora **out, const cad_model *m, const cad_lora_spec *s, cad_err *e);
void cad_lora_free(cad_lora *lo);
/* A back to its init, B, grads and Adam state to zero. */
void cad_lora_reset(cad_lora *lo);
/* The flat parameter / gradient arenas (A then B per adapter; tests and the optimizer). */
float *cad_lora_params(cad_lora *lo, size_t *n_floats);
float *cad_lora_grads(cad_lora *lo);

/* Hooks for model.c, no-ops when (block, site) has no adapter (block is ignored for HEAD).
 * apply: y[N, out] (+=) (alpha x[N, in]) A^T B^T, rows of stride ldx / ldy.
 * grad: from dy (the gradient of y): dA, dB (+=); dx (+=) the input's share (skipped when NULL).
 * x and alpha are what apply read. */
void cad_lora_apply(const cad_lora *lo, const cad_backend *be, int block, int site, const float *x, int ldx,
                    float alpha, float *y, int ldy, int N);
void cad_lora_grad(cad_lora *lo, const cad_backend *be, int block, int site, const float *dy, int lddy,
                   const float *x, int ldx, float alpha, float *dx, int lddx, int N);

/* Per-document LoRA TTT evaluation (schedule above) of m on tokens[0..n_tokens), spec->seq_len
 * the longest window. nll (may be NULL): HOST [N], the score of every target (target t is
 * tokens[t+1]), for tests. progress (may be NULL) is called after every document with the
 * running sums (chunk = the document's index, n_chunks = documents). n_seqs of the result =
 * documents. m's weights are not changed. */
int cad_eval_ttt_lora(cad_model *m, const uint16_t *tokens, long n_tokens, const cad_bpb_luts *luts,
                      const cad_eval_spec *spec, const cad_lora_spec *ls, int32_t *xbuf, int32_t *ybuf,
                      float *nll, cad_eval_result *r, cad_ttt_progress_fn progress, void *ud, cad_err *e);

#endif

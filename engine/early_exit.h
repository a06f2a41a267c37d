/*
 * early_exit.h — early-exit heads: after exit_depths[i] blocks, the residual stream goes through
 * the final norm and the model's own output head (the tied embedding, or lm_head when untied;
 * the same logit softcap), so the heads add no parameters.
 *
 * Training: backward differentiates main + early_exit_weight * mean over exits of each exit's
 * mean NLL (cad_model.objective). Evaluation with a threshold t < 1 (cad_model_set_exit_threshold):
 * each token is scored by the first exit whose max softmax probability (of its softcapped
 * logits) is >= t, else by the main head — one head per token, its NLL of the true next token,
 * so val_bpb stays exact under the challenge's byte rule; the model's token_loss and mean_loss
 * then hold those losses. Every block still runs (the forward is batched, so this measures the
 * depth a token-by-token decoder would need, not a speed-up); the mean depth is counted.
 * t = 1 (the default) never exits: scores are the main head's, bit for bit.
 *
 * Not here: the trainer's logging of the depth (train.c).
 */
#ifndef CADDIE_EARLY_EXIT_H
#define CADDIE_EARLY_EXIT_H

#include "engine/model.h"

int cad_ee_init(cad_model *m, cad_err *e);
void cad_ee_free(cad_model *m);
/* Forward, after virtual block l with targets on the device: the exit head at depth l + 1, if
 * any (uses m->xf, rstdf, logits, logit_lse, loss_dev as scratch: the main head rewrites them). */
void cad_ee_after_block(cad_model *m, int l, int N);
/* Forward, after the main head filled token_loss: the exits' share of the objective, and with a
 * threshold below 1 each token's exit decision (token_loss rewritten; *mean_loss the new mean). */
double cad_ee_finish_forward(cad_model *m, int N, float *mean_loss);
/* Backward, at virtual block l with d(out[l]) in m->d_res: adds the exit head's gradient (+=). */
void cad_ee_backward_block(cad_model *m, int l, int N);

/* The evaluation policy: threshold >= 1 switches exits off (the default). Resets the counters. */
void cad_model_set_exit_threshold(cad_model *m, float threshold);
/* Tokens scored and the sum of their depths (blocks run before their head) since the last
 * cad_model_set_exit_threshold; zeros without exits or with the threshold off. */
void cad_model_exit_stats(const cad_model *m, double *tokens, double *depth_sum);

#endif

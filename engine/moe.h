/*
 * moe.h — micro-MoE: the MLP of every block as E small relu^2 experts behind a learned top-k
 * router, on the backend's slots (model.c calls these where the dense MLP would run).
 *
 * Per block, over the N token rows of a forward (xn = the MLP's normed input, s its LN scale):
 *   router logits z = s xn Wr^T ([N, E], blocks.L.mlp.router.weight [E, C]), p = softmax(z);
 *   each token takes its top-k experts (highest p; ties to the lower index), gates
 *   g_j = p_j / sum_topk p when k >= 2 (Mixtral's renormalisation), g = p when k = 1 (Switch:
 *   a renormalised single gate would be 1 and the router would learn from the aux loss only);
 *   out = sum_j g_j * expert_{e_j}(xn), expert_e(x) = relu2(s x Wfc_e^T) Wproj_e^T with
 *   Wfc_e [He, C], Wproj_e [C, He], He = mlp_mult * C / E (so the experts together hold as many
 *   weights as the dense MLP; the router adds E*C per block).
 * Capacity: none is enforced — every expert takes every token routed to it (capacity = N*k
 * rows in total), no token is dropped, on every backend. The routing is computed on the host
 * from the router logits (N x E floats each way), so CPU and CUDA route identically; the rows
 * are gathered into expert order (embedding_forward as a row gather), each expert runs on its
 * contiguous rows with matmul, and moe_combine sums the gated rows back per token.
 * Load balance (Switch): aux = E * sum_i f_i * P_i per block, f_i = share of the N*k routing
 * slots that went to expert i (no gradient), P_i = mean over tokens of p_i; the objective
 * adds moe_aux_weight * sum over blocks of aux.
 * Optimizers: expert matrices are block matrices (Muon, matrix_lr); the router is Adam at
 * scalar_lr — Newton-Schulz would equalise its singular values, i.e. fix the sharpness of
 * every routing direction, which is exactly what the router has to learn.
 *
 * Not here: the parameter table (model.c registers router and experts), export (generic).
 */
#ifndef CADDIE_MOE_H
#define CADDIE_MOE_H

#include "engine/model.h"

/* Allocate the routing state for m (after its arenas exist); CAD_ENOMEM naming the size. */
int cad_moe_init(cad_model *m, cad_err *e);
void cad_moe_free(cad_model *m);
/* Virtual block l's MLP on xn [N, C] (scaled by L->ln_s): writes L->mlp_out. Adds the block's
 * load-balance loss to *aux (unweighted). */
void cad_moe_forward(cad_model *m, int l, const float *xn, int N, double *aux);
/* Backward of block l's MLP from d(mlp_out) in dout: parameter grads (+=), and dxn (=) the
 * gradient of xn (router path included), with dloss_aux = moe_aux_weight (the aux loss's
 * weight in the objective). */
void cad_moe_backward(cad_model *m, int l, const float *xn, const float *dout, float *dxn, int N);
/* Load-balance loss of every block in the last forward, unweighted and summed (E*sum f_i P_i
 * is 1 for a perfectly balanced router, E for one that sends everything to one expert). */
double cad_moe_last_aux(const cad_model *m);

#endif

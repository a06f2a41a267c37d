/*
 * mamba.h — the Mamba-1 selective state-space block that `block_type: mamba` puts in place of a
 * block's attention sub-block (engine/model.c keeps the block's resid_mix, norms, attn_scale, MLP
 * and U-Net skips around it).
 *
 * The block, on the attention norm's output xn [N,C] (Gu & Dao 2023, mamba_simple.Mamba):
 *   x | z = in_proj(xn)                               [N,2E], E = mamba_expand * C
 *   u     = silu(causal depthwise conv1d(x) + bias)   mamba_d_conv taps
 *   dt | B | C = x_proj(u)                            [N, R + 2S], R = dt rank, S = mamba_d_state
 *   y     = selective_scan(u, dt_proj(dt), A = -exp(A_log), B, C, D, z, dt_proj.bias)   (backend.h)
 *   out   = out_proj(y)                               [N,C], then x += attn_scale * out
 * Parameters (state_dict names under blocks.N.mamba.): A_log [E,S], D [E], in_proj.weight [2E,C],
 * conv1d.weight [E,K] (torch's [E,1,K] without the middle 1), conv1d.bias [E], x_proj.weight
 * [R+2S,E], dt_proj.weight [E,R], dt_proj.bias [E], out_proj.weight [C,E]. The four projections
 * are Muon matrices; A_log, D, the conv and dt_proj.bias train with Adam at scalar_lr.
 *
 * Not here: the ops (backend.h causal_conv1d_* and selective_scan_*), the block's placement in the
 * residual stream (model.c), the artifact (export.c treats these tensors like any other).
 */
#ifndef CADDIE_MAMBA_H
#define CADDIE_MAMBA_H

#include "engine/config.h"
#include "engine/model.h"
#include "engine/status.h"

/* block_type as the config holds it: "attention", "mamba", or one entry per layer separated by
 * commas (a YAML list; brackets and spaces allowed) -> *mask, bit l = block l is a Mamba block.
 * CAD_ECONFIG naming the entry or the count when it is neither. */
int cad_mamba_parse_block_type(const char *block_type, int num_layers, unsigned long long *mask, cad_err *e);

/* The Mamba fields of a model config from the run config (block_type parsed against num_layers,
 * which mc must already hold). */
int cad_mamba_model_config(const cad_config *c, cad_model_config *mc, cad_err *e);

/* The dt rank in use: mamba_dt_rank, or ceil(model_dim / 16) when it is 0. */
int cad_mamba_dt_rank(const cad_model_config *c);

/* The Mamba keys' ranges (only checked when some block is a Mamba block). */
int cad_mamba_config_check(const cad_model_config *c, cad_err *e);

/* Initial values of a Mamba parameter as mamba_simple.Mamba sets them: A_log = log(1..S) per row,
 * D = 1, dt_proj.bias = softplus^-1(dt), dt log-uniform in [1e-3, 1e-1] floored at 1e-4,
 * dt_proj.weight U(+-R^-0.5), conv1d U(+-1/sqrt(K)) (nn.Conv1d's default, fan_in K), in_proj and
 * x_proj nn.Linear's U(+-1/sqrt(in)); out_proj zero, like every other residual-branch output
 * projection of train_gpt.py (_zero_init). `suffix` is the name after "mamba."; uniform() draws
 * from (0,1). Returns 0, or -1 for a name that is not a Mamba parameter. */
int cad_mamba_init_param(const cad_model_config *c, const char *suffix, float *h, long rows, long cols,
                         double (*uniform)(void *), void *rng);

/* Forward of virtual block L's Mamba sub-block for the current batch: reads L->xn1 (times the
 * block's LN scale), writes L->attn_out and the saved activations. */
void cad_mamba_forward(cad_model *m, cad_model_layer *L);
/* Backward: m->d_proj holds d(attn_out); writes m->d_xn (=) d(xn1) and accumulates the block's
 * parameter gradients. */
void cad_mamba_backward(cad_model *m, cad_model_layer *L);

/* Matmul FLOPs of one Mamba sub-block's forward over N tokens (projections; the scan and the
 * conv add ~(9S + 2K) E FLOPs a token, listed separately in kernels/README.md). */
double cad_mamba_forward_flops(const cad_model_config *c, double N);

#endif

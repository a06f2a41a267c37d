/*
 * model.h — the train_gpt.py baseline GPT on a cad_backend: parameter table, memory plan,
 * forward (loss + per-token NLL) and backward (gradients of the mean loss).
 *
 * The model is exactly train_gpt.py's GPT (techniques.md §1): token embedding (tied to the
 * head, or an untied lm_head), weightless RMSNorm (eps = FLT_EPSILON, F.rms_norm's default),
 * x0 anchor mixed back in every block by resid_mix, attention with per-head q/k RMSNorm, RoPE,
 * q_gain and GQA, relu^2 MLP, attn_scale/mlp_scale, U-Net skips (the first L/2 blocks push
 * their outputs, the others pop them LIFO weighted by skip_weights), final norm, logits
 * softcap, fp32 cross-entropy. Parameter names, shapes and order are train_gpt.py's
 * state_dict, so weights move between caddie and PyTorch by name.
 *
 * Memory is planned up front: one arena each for parameters, gradients and activations (all
 * backend memory), sized from the config's max_batch_seqs x max_seq_len before anything is
 * allocated; forward and backward never allocate.
 *
 * Not here: optimizers (optim.h), the training loop, data loading, serialization formats.
 */
#ifndef CADDIE_MODEL_H
#define CADDIE_MODEL_H

#include "engine/backend.h"
#include "engine/status.h"

#include <stddef.h>
#include <stdint.h>

#define CAD_MOE_MAX_EXPERTS 64 /* mlp_experts */
#define CAD_MAX_EARLY_EXITS 8  /* entries of early_exit_layers */

struct cad_moe;        /* engine/moe.h: routing state and buffers */
struct cad_early_exit; /* engine/early_exit.h: exit-head buffers and the eval policy */
struct cad_lora;       /* engine/ttt_lora.h: LoRA test-time-training adapters */
struct cad_distill;    /* engine/distill.h: the distillation teacher */

typedef struct cad_model_config {
    int vocab_size, num_layers, model_dim, num_heads, num_kv_heads, mlp_mult, tie_embeddings;
    float rope_base, logit_softcap, qk_gain_init, tied_embed_init_std;
    int max_batch_seqs, max_seq_len; /* activation planning: largest B and T a forward will see */
    /* Depth recurrence (off when recur_loops <= 1): physical blocks recur_first..recur_last run
     * recur_loops times in a row with shared weights. The virtual block sequence (e.g. 11 blocks,
     * 3..5 x3: 0 1 2 3 4 5 3 4 5 3 4 5 6 7 8 9 10) is what the U-Net split applies to: its first
     * half are encoders, skip_weights has one row per virtual skip. */
    int recur_first, recur_last, recur_loops;
    /* Evaluation with another number of passes (eval_recur_loops; 0 = recur_loops): activations,
     * skip_weights rows and recur_loop_scales rows are planned for max(recur_loops,
     * recur_loops_max) passes, so cad_model_set_loops can run any count up to it. Rows that only
     * a longer schedule reads keep their init (skip weight 1, scale 1): training never reads them. */
    int recur_loops_max;
    /* MLP activation: relu(x)^2 at 0 (train_gpt.py), leaky_relu(x, slope)^2 otherwise (records: 0.5) */
    float mlp_leaky_slope;
    /* XSA (exclusive self-attention) in the last xsa_last blocks of the schedule: each head
     * output minus its component along the token's own value (records: 3, 4 or all). 0 = off. */
    int xsa_last;
    /* GPT-J parallel residual in the last parallel_last blocks: out = x + a Attn(n x) + s MLP(n x)
     * (the records' single-lane variant, PR #1412) instead of the MLP reading the post-attention
     * stream. 0 = off. */
    int parallel_last;
    /* With recurrence: each extra pass p >= 1 over a recurrent block scales its attention and MLP
     * outputs by its own learnable vectors, rows p-1 of blocks.N.attn_scales / blocks.N.mlp_scales
     * ([recur_loops-1, C], init 1, control tensors); pass 0 keeps attn_scale / mlp_scale. 0 = off. */
    int recur_loop_scales;
    /* Factorized embeddings (0 = off): tok_emb is [V, embed_dim] and embed_proj.weight [C, embed_dim]
     * (nn.Linear(embed_dim, C), Muon) maps it to the residual width: x = tok_emb[ids] W^T; the tied
     * head reads both transposed, logits = (x W) tok_emb^T. An untied lm_head stays [V, C]. */
    int embed_dim;
    /* LN scale: every block's attn_norm / mlp_norm output times 1/sqrt(b + 1), b the physical
     * block index (the records' ln_scale_factor). Applied as the alpha of the products that read
     * the norm outputs, so the stored outputs stay what rmsnorm_backward needs. 0 = off. */
    int ln_scale;
    /* BigramHash (0 = off): bigram.embed.weight [bigram_buckets, bigram_dim] (zero init, Adam with
     * the embedding), bigram.proj.weight [C, bigram_dim] when bigram_dim != C (Muon) and the scalar
     * bigram.scale (init 0.05) add scale * proj(table[h]) to the embedding before its norm, with
     * h_0 = buckets-1 and h_t = (36313 id_t XOR 27191 id_{t-1}) mod (buckets-1) (int32 products, as
     * the records' torch code computes them), computed on the host per batch. */
    int bigram_buckets, bigram_dim;
    /* SmearGate (records' v1, PR #65/#102): after the embedding norm, x_t <- (1-g) x_t + g x_{t-1},
     * g = sigmoid(smear.gate) per channel (init 0), with x_{t-1} = 0 at the first position of a row
     * and where id_t is BOS (PR #1851's fix: no mixing across documents). 0 = off. */
    int smear_gate;
    /* Partial RoPE (0 = all of head_dim): only rope_dims dims of each head rotate, with the
     * records' frequencies base^(-2i/rope_dims). The qk_norm_rope op pairs dim i with i + HD/2, so
     * the rotated pairs are (i, i + HD/2) for i < rope_dims/2 (the other pairs get cos 1, sin 0);
     * the records pair (i, i + rope_dims/2) within the first rope_dims dims. Both models are the
     * same up to a fixed permutation of each head's c_q / c_k rows (cad_model_rope_perm). */
    int rope_dims;
    /* Micro-MoE (engine/moe.h; 0 = the dense MLP): every block's MLP is mlp_experts relu^2
     * experts of hidden mlp_mult*C/mlp_experts behind a router (C -> E linear, softmax, top
     * mlp_top_k), with the Switch load-balance loss weighted by moe_aux_weight. */
    int mlp_experts, mlp_top_k;
    float moe_aux_weight;
    /* Attention output gate (attn_gate; CAD_ATTN_GATE_*, 0 = off): every attention block's head
     * h output is multiplied by sigmoid(blocks.N.attn.attn_gate_w[h] . x[:W]) before the output
     * projection (after XSA), x the attention's input (the attn_norm output times the LN scale),
     * W = CAD_ATTN_GATE_WINDOW dims (sparse, the records' SparseAttnGate of PR #1787: zero init,
     * so every gate starts at 0.5) or all model_dim (full, PR #1736's gated attention: init
     * N(0, 0.005)). attn_gate_w is [NH, W], a control tensor (Adam at scalar_lr, fp32 in the
     * artifact) listed after attn.q_gain, as torch registers it. */
    int attn_gate;
    /* Early exit (engine/early_exit.h; n_exits 0 = off): exit heads after exit_depths[i] blocks
     * (increasing, 1..num_layers-1), each the final norm + the main head + softcap, trained with
     * loss = main + early_exit_weight * mean of the exits' losses. */
    int n_exits, exit_depths[CAD_MAX_EARLY_EXITS];
    float early_exit_weight;
    /* Mamba blocks (engine/mamba.h): bit l set = physical block l's attention sub-block is a Mamba-1
     * selective state-space block (the MLP, norms, scales and resid_mix stay). 0 = all attention.
     * Inner width E = mamba_expand * C, state S = mamba_d_state (a power of two <= 32), conv taps
     * mamba_d_conv, dt rank mamba_dt_rank (0 = ceil(C / 16)). */
    unsigned long long mamba_mask;
    int mamba_d_state, mamba_d_conv, mamba_expand, mamba_dt_rank;
} cad_model_config;

enum { CAD_ATTN_GATE_OFF = 0, CAD_ATTN_GATE_SPARSE = 1, CAD_ATTN_GATE_FULL = 2 };
#define CAD_ATTN_GATE_WINDOW 12 /* the records' gate_window: input dims the sparse gate reads */

/* The id of BOS, which starts every document (data prepare: BOS + sp.encode(text)). */
#define CAD_BOS_ID 1

/* Optimizer group, as train_gpt.py's optimizer split assigns it. */
enum cad_param_group {
    CAD_PG_EMBED,  /* tok_emb.weight: Adam, tied_embed_lr or embed_lr */
    CAD_PG_HEAD,   /* lm_head.weight (untied only): Adam, head_lr */
    CAD_PG_MATRIX, /* 2-D block matrices that are not control tensors: Muon, matrix_lr */
    CAD_PG_SCALAR  /* block vectors/control tensors and skip_weights: Adam, scalar_lr */
};

typedef struct cad_param {
    const char *name; /* state_dict key: "tok_emb.weight", "blocks.0.attn.c_q.weight", ... */
    int ndim;
    long shape[4];
    long numel; /* may be 0: skip_weights of a 1-layer model is [0, C], as in torch */
    int group;      /* enum cad_param_group */
    int is_control; /* name matches CONTROL_TENSOR_NAME_PATTERNS (kept fp32 in the int8 export) */
    float *data, *grad; /* slices of param_mem / grad_mem (backend memory) */
} cad_param;

/* Per-block activations saved by forward for backward (private to model.c). Shapes use
 * N = max_batch_seqs*max_seq_len rows; see model.c's plan for the full list. */
typedef struct cad_model_layer {
    float *out;      /* (N,C) block output (the residual stream after the block) */
    float *xin;      /* (N,C) block input: x0 (block 0), previous out, or the skip sum */
    float *xn1;      /* (N,C) attn_norm output */
    float *rstd1;    /* (N) */
    float *qkv;      /* (N,QKV) fused c_q|c_k|c_v output */
    float *att_y;    /* (N,C) attention output before proj */
    float *att_lse;  /* (B,NH,T) */
    float *attn_out; /* (N,C) proj output (before attn_scale) */
    float *xn2;      /* (N,C) mlp_norm output */
    float *rstd2;    /* (N) */
    float *hpre;     /* (N,H) fc output (relu^2 is recomputed from it) */
    float *mlp_out;  /* (N,C) mlp proj output (before mlp_scale) */
    float *skip_sum; /* (N,C) x + skip_weights * skip when a decoder pops a skip; NULL if never */
    float *xsa_y;    /* (N,C) att_y after XSA (the proj input) when this block can use XSA, else NULL */
    float *gate_pre; /* (N,NH) attn_gate pre-activations, NULL without the gate */
    float *gated_y;  /* (N,C) head outputs times their gates (the proj input), NULL without the gate */
    int p_attn_gate; /* blocks.N.attn.attn_gate_w, -1 without the gate (or in a Mamba block) */
    int p_attn_scale, p_mlp_scale, p_resid_mix, p_q_gain, p_c_q, p_proj, p_fc, p_mlp_proj;
    int p_attn_scales, p_mlp_scales; /* recur_loop_scales: per-pass scales of a recurrent block, else -1 */
    int p_router;                    /* micro-MoE: blocks.N.mlp.router.weight, experts follow it as
                                      * (fc, proj) pairs; -1 for a dense MLP (p_fc, p_mlp_proj are then -1) */
    float ln_s;                      /* norm output scale: 1/sqrt(physical index + 1) with ln_scale, else 1 */
    int pass;                        /* which pass over its physical block this virtual block is (0 = first) */
    int block;                       /* its physical block (LoRA adapters are per physical block) */
    /* Mamba block (engine/mamba.h): its parameter indices (is_mamba 0: an attention block) and
     * activations, planned for a virtual block that is a Mamba block in either schedule. */
    struct {
        int is_mamba, p_A_log, p_D, p_in_proj, p_conv_w, p_conv_b, p_x_proj, p_dt_w, p_dt_b, p_out_proj;
    } mb;
    float *mb_xz;   /* (N,2E) in_proj output: x | z */
    float *mb_u;    /* (N,E) conv + SiLU output, the scan's input */
    float *mb_xdbl; /* (N,R+2S) x_proj output: dt | B | C */
    float *mb_dt;   /* (N,E) dt_proj output (bias and softplus are the scan's) */
    float *mb_y;    /* (N,E) gated scan output (out_proj's input) */
    float *mb_hs;   /* (B, ceil(T/CAD_SCAN_CHUNK), E, S) chunk-entry states for the backward */
} cad_model_layer;

typedef struct cad_model {
    cad_model_config cfg;
    const cad_backend *be;
    int n_params;
    cad_param *params; /* in train_gpt.py state_dict order */
    size_t n_param_floats;
    float *param_mem, *grad_mem; /* one arena each (backend memory), same layout */
    size_t act_bytes;            /* activation arena size (logged by the trainer) */
    float *token_loss;           /* HOST (B*T): per-position NLL of the last forward with targets */
    float *logits;               /* backend (B*T, V): softcapped logits of the last forward; the
                                  * backward overwrites them with their gradient */

    /* QAT (cad_model_set_qat): 0 = off, else the artifact's block-matrix bits (2..8, or
     * CAD_QUANT_TERNARY). While on, every forward first writes the fake-quantised block matrices
     * into qat_mem (backend, laid out like param_mem, allocated on first use) and forward and
     * backward read them there: a straight-through estimator, the gradients land unchanged in
     * the fp32 weights' grads. */
    int qat_bits;
    float *qat_mem;
    /* Per-parameter QAT bits (quant_bits_overrides, cad_model_set_qat_overrides): 0 = qat_bits;
     * NULL when no override is set. */
    signed char *qat_param_bits;
    /* GPTQ calibration (cad_model_calib_begin): while calib_on, every forward adds X^T X of each
     * block matrix's input into calib_mem (backend, per physical block: attention input C x C,
     * proj input C x C, fc input C x C, mlp proj input H x H; fp32 sums like the records'). */
    int calib_on;
    float *calib_mem;
    /* Gradient readiness (data-parallel buckets, engine/dp_buckets.c): when set, the backward
     * calls grad_ready(grad_ready_ctx, stage) as soon as every gradient of that stage is final
     * (cad_model_grad_stage); a non-zero return ends the backward with that status. NULL: none. */
    int (*grad_ready)(void *ctx, int stage, cad_err *e);
    void *grad_ready_ctx;
    /* LoRA test-time training (engine/ttt_lora.h): while set, forward adds each targeted
     * projection's adapter output x A^T B^T and backward accumulates the adapters' gradients
     * (the base weights' grads are still written, and ignored). NULL = none: the default path
     * pays one pointer test per projection. */
    struct cad_lora *lora;
    /* Backward's loss window (loss_t1 > 0): it differentiates the mean NLL over positions
     * [loss_t0, loss_t1) of every row instead of all B*T targets (per-token TTT losses that
     * train on a chunk inside its context window). forward's mean_loss is unchanged. */
    int loss_t0, loss_t1;

    /* ---- private: set by cad_model_init, used only by model.c ---- */
    int head_dim, kv_dim, qkv_dim, hidden, n_enc, n_dec, n_skip;
    int n_virtual;                            /* blocks run per forward now (num_layers when recurrence is off) */
    int n_virtual_max, recur_on;              /* the longest schedule's length; whether loops > 1 now */
    int loops;                                /* passes over the recurrent span now (1 = plain) */
    cad_model_layer *phys;                    /* num_layers: each physical block's parameter indices */
    int p_tok_emb, p_skip_weights, p_lm_head; /* indices into params (-1: absent) */
    int p_embed_proj, p_bigram_embed, p_bigram_proj, p_bigram_scale, p_smear; /* techniques (-1: absent) */
    float *emb_e, *head_e, *d_e;              /* (N,E) factorized: tok_emb rows, tied head input, grads */
    int32_t *bg_ids, *bg_host;                /* (N) bigram buckets: backend copy, host staging */
    float *bg_e, *bg_u, *bg_d, *bg_svec, *bg_ds; /* (N,Db) x3, (Db) scale copies, (Db) scale grad partials */
    float bg_scale, *bg_shost;                /* bigram.scale as the last forward read it; HOST (Db) staging */
    float *xn0, *x_prev, *smear_mix, *smear_dmix; /* smear: (N,C) normed, (N,C) shifted, (2,C), (2,C) */
    float *smear_host;                        /* HOST (4C): gate staging */
    int32_t *smear_zero;                      /* HOST (N): rows whose x_{t-1} is zeroed; n_smear_zero of them */
    int n_smear_zero;
    char *names;                              /* storage of the param names */
    void *act_mem;                            /* activation arena */
    cad_model_layer *layers;                  /* n_virtual: activations each, parameters of its physical block */
    int32_t *ids, *targets;                   /* (N) backend copies of the batch */
    float *rope_cos, *rope_sin;               /* (max_seq_len, HD/2) */
    float *x0, *rstd0;                        /* (N,C), (N) normalised embedding */
    float *xf, *rstdf;                        /* (N,C), (N) final norm */
    float *logit_lse, *loss_dev;              /* (N), (N) */
    float *q_r, *k_r, *rstd_q, *rstd_k;       /* (N,C), (N,KVD), (N,NH), (N,KV) shared */
    float *act;                               /* (N,H) relu^2 output, shared */
    float *d_res, *d_x0, *d_xn, *d_proj, *d_atty, *d_qkv, *d_q, *d_k, *d_h; /* grads, shared */
    float *d_gate;                            /* (N,NH) attn_gate pre-activation grads, shared */
    float **d_skip;                           /* n_skip x (N,C) */
    void *att_scratch;
    size_t att_scratch_bytes;
    int cur_B, cur_T, have_targets;
    struct cad_moe *moe;       /* micro-MoE state (NULL when mlp_experts is 0) */
    struct cad_early_exit *ee; /* early-exit state (NULL without exits) */
    /* What backward differentiates, from the last forward with targets: the main mean NLL plus
     * early_exit_weight * the exits' mean NLL plus moe_aux_weight * the blocks' load-balance
     * losses (mean_loss stays the main head's NLL, comparable with dense runs); with a
     * distillation teacher attached (kd) the main NLL weighs 1 - alpha and the KL term is added. */
    double objective;
    /* Knowledge distillation (engine/distill.h): the teacher, attached by the trainer only around a
     * training micro-step's forward and backward (NULL otherwise). While set, a forward with targets
     * adds the distill_kl term to the objective and backward weights the cross-entropy 1 - alpha. */
    struct cad_distill *kd;
    /* Mamba (when any block is one): shared gradient buffers and the scan's backward scratch */
    float *mb_dxz, *mb_du, *mb_dxdbl, *mb_ddt, *mb_dy; /* (N,2E), (N,E), (N,R+2S), (N,E), (N,E) */
    void *scan_scratch;
    size_t scan_scratch_bytes;
} cad_model;

/* Partial RoPE: perm[j] (j < head_dim) is the caddie head dim that holds the records' dim j,
 * so that caddie's c_q / c_k row h*HD + perm[j] = the records' row h*HD + j gives the same model.
 * The identity when rope_dims is 0 or head_dim. */
void cad_model_rope_perm(int head_dim, int rope_dims, int *perm);

/* Blocks a forward runs: num_layers plus (recur_loops - 1) extra passes over the recurrent span. */
int cad_model_virtual_layers(const cad_model_config *c);

/* The model's seeded RNG (splitmix64, as weight init): h[n] uniform in (-bound, bound),
 * advancing *state. For parameters created outside the model (LoRA adapters). */
void cad_model_fill_uniform(uint64_t *state, float *h, size_t n, double bound);

/* Validate a config; the message names the offending key(s) and values. */
int cad_model_config_check(const cad_model_config *c, cad_err *e);

/* Plan and allocate every arena on be, and initialise the weights like train_gpt.py (tied
 * embedding N(0, tied_embed_init_std), untied embedding N(0,1), zero-init attn/mlp proj and
 * lm_head, default nn.Linear U(-1/sqrt(in), 1/sqrt(in)) otherwise, q_gain = qk_gain_init,
 * scales 1, resid_mix (1,0), skip_weights 1) from caddie's own seeded RNG (deterministic, not
 * bit-identical to torch). Grads start at zero. On failure m is left freed. */
int cad_model_init(cad_model *m, const cad_model_config *c, const cad_backend *be, uint64_t seed,
                   cad_err *e);
void cad_model_free(cad_model *m);

/* Depth recurrence on (the looped schedule) or off (plain: each block once, skips paired over
 * num_layers, using the first rows of skip_weights). Models are created with it on; a run with
 * recur_start_frac switches it on at that fraction of training, as the records do. No-op
 * without recurrence. Between steps only (activations of the last forward are discarded). */
void cad_model_set_recurrence(cad_model *m, int on);
/* Run `loops` passes over the recurrent span (1 = plain), clamped to 1..max(recur_loops,
 * recur_loops_max): the skips pair over that schedule's virtual blocks (its first rows of
 * skip_weights), pass p >= 1 reads row p-1 of the per-pass scales. Between steps only. */
void cad_model_set_loops(cad_model *m, int loops);

/* QAT on (bits as qat_bits above) or off (0), between steps. The first switch-on allocates
 * qat_mem (CAD_ENOMEM naming its size on failure); bits outside 0, 1 (ternary), 2..8 is
 * CAD_ECONFIG. Evaluation forwards should run with it off (the records fake-quantise only in
 * training mode). */
int cad_model_set_qat(cad_model *m, int bits, cad_err *e);
/* quant_bits_overrides (quant_ext.h's text, checked) for QAT: each fake-quantised block matrix
 * with an override uses those bits instead of qat_bits, as the artifact will. CAD_ENOMEM. */
int cad_model_set_qat_overrides(cad_model *m, const char *overrides, cad_err *e);
/* Whether QAT fake-quantises params[i]: a block matrix (Muon group) that the artifact stores
 * per row (export.h's scheme: 2-D and more than 65,536 elements); the other block matrices are
 * copied unchanged into qat_mem. */
int cad_model_qat_quantised(const cad_model *m, int i);
/* The weights forward reads for params[i] now: its qat_mem slice for a block matrix while QAT
 * is on, else params[i].data (backend memory). */
const float *cad_model_weights_used(const cad_model *m, int i);

/* GPTQ calibration: begin zeroes (allocating on first use: CAD_ENOMEM naming the size) and
 * switches accumulation on for the following forwards; end switches it off. */
int cad_model_calib_begin(cad_model *m, cad_err *e);
void cad_model_calib_end(cad_model *m);
/* The accumulated H (backend memory, [*dim, *dim]) of params[i]'s input: c_q/c_k/c_v share the
 * attention input's; NULL (and *dim 0) when params[i] is no block matrix or nothing was begun. */
const float *cad_model_calib_hessian(const cad_model *m, int i, int *dim);

/* The parameter with this state_dict name, or NULL. */
cad_param *cad_model_param(cad_model *m, const char *name);

/* Forward of B sequences of T tokens: x, y are HOST int32 arrays (B*T). y may be NULL (logits
 * only; mean_loss is then not written and backward is refused). Needs T <= max_seq_len and
 * B*T <= max_batch_seqs*max_seq_len; token ids must be in [0, vocab_size). Fills token_loss
 * and *mean_loss (mean NLL in nats) when y is given. */
int cad_model_forward(cad_model *m, const int32_t *x, const int32_t *y, int B, int T,
                      float *mean_loss, cad_err *e);

/* Backward of the last forward (which must have had targets). ACCUMULATES (+=) into every
 * param's grad, scaled as gradients of mean_loss (the trainer scales for accumulation). */
int cad_model_backward(cad_model *m, cad_err *e);

/* The backward's readiness stages, in the order it reaches them: 0 after the head, k (1 ..
 * n_virtual) after virtual block n_virtual - k, n_virtual + 1 after the embeddings (the last).
 * cad_model_grad_stage(m, i) is the first stage after which param i's gradient is no longer
 * written: a block's parameters after the lowest virtual block that runs them (recurrence
 * shares them), the untied head after the head when no early exit reads it, everything else
 * (embeddings, skip weights, a head the exits share) at the last stage. Both follow the current
 * recurrence schedule (cad_model_set_recurrence). */
int cad_model_grad_stages(const cad_model *m);
int cad_model_grad_stage(const cad_model *m, int param);

void cad_model_zero_grad(cad_model *m);

/* Floating point operations of one forward+backward over B x T tokens (matmuls and causal
 * attention score/value products; elementwise work not counted): 3x the forward's FLOPs. */
double cad_model_bench_flops(const cad_model_config *c, int B, int T);

#endif

/*
 * optim.h — train_gpt.py's optimizers and schedule on backend memory: Muon (Nesterov momentum,
 * Newton–Schulz-5 orthogonalisation, √max(1,rows/cols) scale) for block matrices, Adam groups
 * (embedding / head / scalars, each with its own LR), global grad-norm clipping, the lr_mul
 * warmdown (by iterations or by wallclock) and the Muon momentum warmup.
 *
 * Every operation goes through the cad_backend slots (matmul, axpby, scale, sumsq,
 * adam_update), so the same code drives the CPU reference and the CUDA backend. All optimizer
 * state lives in ONE backend arena (m, v, momentum buffers) so checkpoints and the warmup
 * restore are one copy.
 *
 * Deliberate differences from train_gpt.py on the CPU reference (documented, tested with
 * tolerances): Newton–Schulz runs in fp32 rather than bf16, and the Muon update is applied in
 * fp32 rather than through the bf16 `updates_flat` buffer. For rows > cols the iteration uses
 * the equivalent right-multiplied form (A = XᵀX, X ← aX + X·B) instead of transposing, which
 * is the same polynomial of the same matrix.
 *
 * Not here: which parameter is in which group (the model's cad_param.group decides, mapped in
 * cad_optim_init_model), gradient computation, the training loop.
 */
#ifndef CADDIE_OPTIM_H
#define CADDIE_OPTIM_H

#include "engine/backend.h"
#include "engine/collective.h"
#include "engine/config.h"
#include "engine/model.h"
#include "engine/status.h"

#include <stddef.h>

typedef enum { CAD_OPT_ADAM = 0, CAD_OPT_MUON = 1 } cad_opt_kind;

/* muon_ns values; Polar Express has one coefficient tuple per iteration, this many. */
enum { CAD_NS_QUINTIC = 0, CAD_NS_POLAR_EXPRESS = 1 };
#define CAD_POLAR_EXPRESS_STEPS 5
/* "quintic" / "polar_express" -> CAD_NS_*, else -1. */
int cad_muon_ns_parse(const char *name);

/* One parameter tensor as the optimizer sees it. data/grad are backend tensors owned by the
 * caller (the model); rows/cols describe a 2-D view (Muon needs it; Adam ignores it). */
typedef struct cad_optim_param {
    const char *name;
    cad_opt_kind kind;
    int rows, cols;
    size_t numel;
    double base_lr;     /* lr before lr_mul */
    double wd;          /* decoupled weight decay: p *= 1 - lr*wd before the update (0 = off) */
    float *data, *grad;
    /* state (carved from the optimizer arena): Adam m, v; Muon momentum buffer in m */
    float *m, *v;
    float *ema; /* exponential moving average of data (ema_decay > 0), else NULL */
} cad_optim_param;

typedef struct cad_optim_hparams {
    double beta1, beta2, adam_eps;
    int muon_backend_steps;
    /* > 0: after every step ema = d*ema + (1-d)*p for every parameter (fp32, in the state arena,
     * so checkpoints carry it); ema starts as the weights at init / reset. 0 = off. */
    double ema_decay;
    /* MuonEq-R: each row of the Nesterov update divided by its L2 norm before Newton-Schulz
     * (the records' PR #1217/#1260, about -0.001 bpb). 0 = train_gpt.py's Muon. */
    int muon_row_norm;
    /* Newton-Schulz coefficients: CAD_NS_QUINTIC, train_gpt.py's fixed (3.4445, -4.7750, 2.0315)
     * every iteration, or CAD_NS_POLAR_EXPRESS, the records' per-iteration minimax tuples (at
     * most CAD_POLAR_EXPRESS_STEPS iterations). */
    int muon_ns;
} cad_optim_hparams;

typedef struct cad_optim {
    const cad_backend *be;
    cad_optim_hparams hp;
    int n;
    cad_optim_param *params;
    long adam_step;        /* torch Adam's per-param "step" (all Adam params step together) */
    float *state;          /* backend arena: every m and v */
    size_t state_floats;
    float *ns_scratch;     /* backend scratch for Newton–Schulz of one shape group: X, X2, A, B, norms */
    float *row_scratch;    /* backend [max Muon rows]: the row norms of MuonEq-R (NULL when off) */
    size_t ns_floats;
    /* Muon params grouped by shape (planned at init): group g is muon_order[first .. first +
     * group_len[g]) with first = sum of the earlier lengths; a group is orthogonalised as one
     * batch of same-shape matrices. */
    int n_groups;
    int *muon_order, *group_len;
    int max_rows, max_cols;
    int ema_inactive; /* 1 before ema_start_frac: ema = p after each step (cad_optim_set_ema_active) */
    /* data parallel (cad_optim_step_dp): the all-gathered Muon updates, planned for dp_world */
    int dp_world;
    float *dp_upd;
    size_t *dp_off;
    size_t dp_seg_off[CAD_COLL_MAX_WORLD], dp_seg_len[CAD_COLL_MAX_WORLD];
} cad_optim;

/* Take ownership of nothing: copies the params array (name pointers must outlive o).
 * Plans and allocates the state arena and NS scratch on be. Muon params need rows*cols==numel. */
int cad_optim_init(cad_optim *o, const cad_backend *be, const cad_optim_hparams *hp, int n,
                   const cad_optim_param *params, cad_err *e);
void cad_optim_free(cad_optim *o);

/* train_gpt.py's optimizer split over a model's parameters (empty ones skipped, like
 * skip_weights of a 1-layer model): tok_emb -> Adam (tied_embed_lr or embed_lr), lm_head ->
 * Adam (head_lr), block matrices -> Muon (matrix_lr), scalars/control tensors -> Adam
 * (scalar_lr); betas, eps and NS steps from c. Decoupled weight decay per group (off by
 * default): muon_wd on the block matrices, embed_wd on tok_emb/lm_head, scalar_wd on the
 * scalars, each applied as p *= 1 - lr_t*wd before that step's update (AdamW's order, and the
 * records' Muon WD). */
int cad_optim_init_model(cad_optim *o, cad_model *m, const cad_config *c, cad_err *e);

/* Bytes of optimizer state + scratch (logged with the memory plan). */
size_t cad_optim_bytes(const cad_optim *o);

/* Zero the state and the Adam step count (a fresh optimizer); the EMA restarts from the
 * current weights. */
void cad_optim_reset(cad_optim *o);

/* ema_start_frac: while inactive, each step sets ema = p (the average tracks the weights);
 * active (the default) averages. No-op without EMA. */
void cad_optim_set_ema_active(cad_optim *o, int active);

/* ema_decay > 0: overwrite every parameter with its moving average (what records evaluate and
 * quantize at the end of training). No-op without EMA. */
void cad_optim_load_ema(cad_optim *o);

/* torch.nn.utils.clip_grad_norm_(params, max_norm): total = ‖all grads‖₂; every grad is
 * multiplied by min(max_norm / (total + 1e-6), 1). Returns total. */
double cad_optim_clip_grad_norm(cad_optim *o, double max_norm);

/* One step of every optimizer with lr = base_lr * lr_mul and Muon momentum `momentum`. */
void cad_optim_step(cad_optim *o, double lr_mul, double momentum);

/* The same step at data parallel world > 1 (gradients already averaged): as train_gpt.py's
 * Muon, Muon member j (in shape-group order) is orthogonalised only by rank j % world, then an
 * all-gather hands every rank every update, which all apply; Adam, the momentum buffers and
 * the EMA update on every rank, so every rank's state stays whole. The result is the one
 * cad_optim_step gives (bit-identical on the CPU backend: tests/unit/test_engine_dp.c). Fails
 * only when the collective does (a peer died). */
int cad_optim_step_dp(cad_optim *o, double lr_mul, double momentum, cad_coll *coll, cad_err *e);

/* zeropower_via_newtonschulz5 on backend memory: out[rows,cols] = NS_steps(G / (‖G‖+1e-7)).
 * scratch must hold cad_muon_ns_scratch_floats(rows, cols) floats. G is not modified; out
 * must not alias G. */
size_t cad_muon_ns_scratch_floats(int rows, int cols);
void cad_muon_newton_schulz(const cad_backend *be, float *out, const float *G, int rows, int cols,
                            int steps, float *scratch);
/* The same with the coefficients of muon_ns (CAD_NS_*). */
void cad_muon_newton_schulz_ns(const cad_backend *be, float *out, const float *G, int rows, int cols,
                               int steps, int ns, float *scratch);

/* lr_schedule values. */
enum { CAD_LR_LINEAR_WARMDOWN = 0, CAD_LR_COSINE = 1 };
/* "linear_warmdown" -> CAD_LR_LINEAR_WARMDOWN, "cosine" -> CAD_LR_COSINE, else -1. */
int cad_lr_schedule_parse(const char *name);

/* Fraction of training done: elapsed / max_wallclock_seconds under a wallclock cap, else
 * step / iterations (what recur_start_frac and ema_start_frac compare against). */
double cad_train_frac(const cad_config *c, long step, double elapsed_ms);

/* The lr multiplier. linear_warmdown is exactly train_gpt.py's lr_mul(step, elapsed_ms):
 * warmdown by iterations when max_wallclock_seconds == 0, else by the projected remaining
 * wallclock; then floored at min_lr_frac (the records' max(mul, MIN_LR)). cosine:
 * min + (1 - min) (1 + cos(pi f)) / 2 with f = cad_train_frac clamped to [0, 1] and
 * min = min_lr_frac (warmdown_iters unused). */
double cad_lr_mul(const cad_config *c, long step, double elapsed_ms);
/* Muon momentum warmup: linear from muon_momentum_warmup_start to muon_momentum. */
double cad_muon_momentum_at(const cad_config *c, long step);

#endif

/*
 * model.c — the baseline GPT (model.h) as a sequence of cad_backend op calls: parameter
 * table, memory plan, weight init, forward, backward.
 *
 * Layout decisions that the rest of the engine can rely on:
 * - Parameters sit in param_mem in state_dict order; each block's c_q, c_k, c_v weights are
 *   adjacent there, so they form ONE [(NH+2KV)*HD, C] matrix and q/k/v come out of a single
 *   sgemm (and their gradients out of one).
 * - Every forward buffer a backward step needs is kept per layer (model.h cad_model_layer);
 *   cheap values (relu^2 output, rotated q/k) are recomputed in backward instead of stored.
 * - All parameter gradients use += (gradient accumulation); activation gradients are
 *   written into a small set of shared buffers reused by every layer.
 *
 * Not here: the op implementations (backend_cpu.c / kernels/), optimizers, training loop.
 */
#include "engine/model.h"

#include "engine/distill.h"
#include "engine/early_exit.h"
#include "engine/export.h"
#include "engine/quant_ext.h"
#include "engine/moe.h"
#include "engine/mamba.h"
#include "engine/ttt_lora.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* F.rms_norm(x, shape) with eps=None uses torch.finfo(x.dtype).eps. */
#define RMS_EPS FLT_EPSILON

static const char *const control_patterns[] = {
    "attn_scale", "attn_scales", "mlp_scale", "mlp_scales", "resid_mix",
    "resid_mixes", "q_gain", "skip_weight", "skip_weights", "attn_gate_w",
};

static int name_is_control(const char *name) {
    for (size_t i = 0; i < sizeof(control_patterns) / sizeof(control_patterns[0]); i++)
        if (strstr(name, control_patterns[i])) return 1;
    return 0;
}

/* ---- deterministic RNG (splitmix64 -> uniform / Box-Muller normal) ----------------------- */

typedef struct { uint64_t s; } model_rng;

static uint64_t rng_next(model_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(model_rng *r) { /* (0,1) */
    return ((double)(rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double rng_normal(model_rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- config ------------------------------------------------------------------------------ */

/* Input dims the attention output gate reads (0 without it). */
static int attn_gate_width(const cad_model_config *c) {
    if (c->attn_gate == CAD_ATTN_GATE_FULL) return c->model_dim;
    if (c->attn_gate == CAD_ATTN_GATE_SPARSE) return c->model_dim < CAD_ATTN_GATE_WINDOW ? c->model_dim : CAD_ATTN_GATE_WINDOW;
    return 0;
}

/* The most passes any forward runs: the training schedule's, or recur_loops_max (eval). */
static int loops_max(const cad_model_config *c) {
    int k = c->recur_loops_max > c->recur_loops ? c->recur_loops_max : c->recur_loops;
    return k > 1 ? k : 1; /* recur_loops 0 in a hand-made config means no recurrence */
}

/* Blocks a forward with `loops` passes over the recurrent span runs. */
static int virtual_count(const cad_model_config *c, int loops) {
    return loops > 1 ? c->num_layers + (loops - 1) * (c->recur_last - c->recur_first + 1) : c->num_layers;
}

int cad_model_virtual_layers(const cad_model_config *c) { return virtual_count(c, c->recur_loops); }

/* Physical block of virtual block v with `loops` passes: 0..last, then (loops-1) more passes
 * over first..last, then last+1..num_layers-1. */
static int virtual_to_physical(const cad_model_config *c, int loops, int v) {
    if (loops <= 1 || v <= c->recur_last) return v;
    int span = c->recur_last - c->recur_first + 1, extra = (loops - 1) * span;
    if (v <= c->recur_last + extra) return c->recur_first + (v - c->recur_last - 1) % span;
    return v - extra;
}

int cad_model_config_check(const cad_model_config *c, cad_err *e) {
    if (c->vocab_size <= 0) return cad_fail(e, CAD_ECONFIG, "vocab_size must be positive, got %d", c->vocab_size);
    if (c->num_layers <= 0) return cad_fail(e, CAD_ECONFIG, "num_layers must be positive, got %d", c->num_layers);
    if (c->model_dim <= 0) return cad_fail(e, CAD_ECONFIG, "model_dim must be positive, got %d", c->model_dim);
    if (c->num_heads <= 0) return cad_fail(e, CAD_ECONFIG, "num_heads must be positive, got %d", c->num_heads);
    if (c->num_kv_heads <= 0)
        return cad_fail(e, CAD_ECONFIG, "num_kv_heads must be positive, got %d", c->num_kv_heads);
    if (c->mlp_mult <= 0) return cad_fail(e, CAD_ECONFIG, "mlp_mult must be positive, got %d", c->mlp_mult);
    if (c->model_dim % c->num_heads != 0)
        return cad_fail(e, CAD_ECONFIG, "model_dim (%d) must be divisible by num_heads (%d)", c->model_dim,
                        c->num_heads);
    if ((c->model_dim / c->num_heads) % 2 != 0)
        return cad_fail(e, CAD_ECONFIG, "head_dim = model_dim/num_heads = %d/%d = %d must be even for RoPE",
                        c->model_dim, c->num_heads, c->model_dim / c->num_heads);
    if (c->num_heads % c->num_kv_heads != 0)
        return cad_fail(e, CAD_ECONFIG, "num_heads (%d) must be divisible by num_kv_heads (%d)", c->num_heads,
                        c->num_kv_heads);
    if (c->tie_embeddings != 0 && c->tie_embeddings != 1)
        return cad_fail(e, CAD_ECONFIG, "tie_embeddings must be 0 or 1, got %d", c->tie_embeddings);
    if (!(c->logit_softcap > 0.0f))
        return cad_fail(e, CAD_ECONFIG, "logit_softcap must be positive, got %g", (double)c->logit_softcap);
    if (!(c->rope_base > 0.0f)) return cad_fail(e, CAD_ECONFIG, "rope_base must be positive, got %g", (double)c->rope_base);
    if (!(c->tied_embed_init_std >= 0.0f))
        return cad_fail(e, CAD_ECONFIG, "tied_embed_init_std must be >= 0, got %g", (double)c->tied_embed_init_std);
    if (!isfinite(c->qk_gain_init))
        return cad_fail(e, CAD_ECONFIG, "qk_gain_init must be finite, got %g", (double)c->qk_gain_init);
    if (loops_max(c) > 1 && (c->recur_first < 0 || c->recur_last < c->recur_first || c->recur_last >= c->num_layers))
        return cad_fail(e, CAD_ECONFIG, "recur_layers %d-%d: expected a span of blocks within 0..%d", c->recur_first,
                        c->recur_last, c->num_layers - 1);
    if (c->recur_loops > 16) return cad_fail(e, CAD_ECONFIG, "recur_loops must be at most 16, got %d", c->recur_loops);
    if (c->recur_loops_max < 0 || c->recur_loops_max > 16)
        return cad_fail(e, CAD_ECONFIG, "recur_loops_max (eval_recur_loops) must be 0 (= recur_loops) or 1..16, got %d",
                        c->recur_loops_max);
    if (c->parallel_last < 0 || c->parallel_last > c->num_layers)
        return cad_fail(e, CAD_ECONFIG, "parallel_residual_layers must be in 0..num_layers (%d), got %d", c->num_layers,
                        c->parallel_last);
    if (c->xsa_last < 0 || c->xsa_last > c->num_layers)
        return cad_fail(e, CAD_ECONFIG, "xsa_last_layers must be in 0..num_layers (%d), got %d", c->num_layers, c->xsa_last);
    if (c->embed_dim < 0 || c->embed_dim >= c->model_dim)
        return cad_fail(e, CAD_ECONFIG, "embed_dim must be 0 (off) or 1..model_dim-1 (%d), got %d", c->model_dim - 1,
                        c->embed_dim);
    if (c->bigram_buckets != 0 && (c->bigram_buckets < 2 || c->bigram_dim <= 0))
        return cad_fail(e, CAD_ECONFIG, "bigram_buckets (%d) must be 0 (off) or >= 2 with bigram_dim (%d) >= 1",
                        c->bigram_buckets, c->bigram_dim);
    if (c->rope_dims < 0 || c->rope_dims % 2 || c->rope_dims > c->model_dim / c->num_heads)
        return cad_fail(e, CAD_ECONFIG, "rope_dims must be 0 (all) or even and at most head_dim (%d), got %d",
                        c->model_dim / c->num_heads, c->rope_dims);
    if (c->mlp_experts != 0 && (c->mlp_experts < 2 || c->mlp_experts > CAD_MOE_MAX_EXPERTS ||
                                (c->mlp_mult * c->model_dim) % c->mlp_experts != 0))
        return cad_fail(e, CAD_ECONFIG, "mlp_experts must be 0 (dense) or 2..%d dividing mlp_mult*model_dim (%d), got %d",
                        CAD_MOE_MAX_EXPERTS, c->mlp_mult * c->model_dim, c->mlp_experts);
    if (c->mlp_experts && (c->mlp_top_k < 1 || c->mlp_top_k > c->mlp_experts))
        return cad_fail(e, CAD_ECONFIG, "mlp_top_k must be in 1..mlp_experts (%d), got %d", c->mlp_experts, c->mlp_top_k);
    if (c->n_exits < 0 || c->n_exits > CAD_MAX_EARLY_EXITS)
        return cad_fail(e, CAD_ECONFIG, "early exits: %d heads, expected 0..%d", c->n_exits, CAD_MAX_EARLY_EXITS);
    for (int k = 0; k < c->n_exits; k++)
        if (c->exit_depths[k] < 1 || c->exit_depths[k] >= c->num_layers || (k && c->exit_depths[k] <= c->exit_depths[k - 1]))
            return cad_fail(e, CAD_ECONFIG, "early_exit_layers: depth %d (entry %d) must increase within 1..num_layers-1 (%d)",
                            c->exit_depths[k], k, c->num_layers - 1);
    if (c->attn_gate < CAD_ATTN_GATE_OFF || c->attn_gate > CAD_ATTN_GATE_FULL)
        return cad_fail(e, CAD_ECONFIG, "attn_gate must be 0 (off), 1 (sparse) or 2 (full), got %d", c->attn_gate);
    if (c->n_exits && c->embed_dim)
        return cad_fail(e, CAD_ECONFIG, "early_exit_layers with embed_dim %d: exit heads read the plain head; expected embed_dim 0",
                        c->embed_dim);
    int rc_mamba = cad_mamba_config_check(c, e);
    if (rc_mamba) return rc_mamba;
    if (c->max_batch_seqs <= 0 || c->max_seq_len <= 0)
        return cad_fail(e, CAD_ECONFIG, "max_batch_seqs (%d) and max_seq_len (%d) must be positive",
                        c->max_batch_seqs, c->max_seq_len);
    if ((double)c->max_batch_seqs * c->max_seq_len * (double)c->vocab_size > 2147483647.0)
        return cad_fail(e, CAD_ECONFIG,
                        "max_batch_seqs*max_seq_len*vocab_size = %d*%d*%d exceeds 2^31 logits per forward",
                        c->max_batch_seqs, c->max_seq_len, c->vocab_size);
    return CAD_OK;
}

/* ---- parameter table --------------------------------------------------------------------- */

/* Append one parameter; names are written into m->names (sized by a counting pass). */
typedef struct {
    cad_model *m;
    size_t name_off, float_off;
} param_builder;

static int param_add(param_builder *pb, const char *name, int ndim, long d0, long d1, int group) {
    cad_model *m = pb->m;
    int i = m->n_params++;
    size_t len = strlen(name) + 1;
    if (m->params) {
        cad_param *p = &m->params[i];
        memcpy(m->names + pb->name_off, name, len);
        p->name = m->names + pb->name_off;
        p->ndim = ndim;
        p->shape[0] = d0;
        p->shape[1] = ndim > 1 ? d1 : 0;
        p->numel = ndim > 1 ? d0 * d1 : ndim == 1 ? d0 : 1; /* ndim 0: a torch scalar, shape [] */
        p->group = group;
        p->is_control = name_is_control(name);
        p->data = m->param_mem ? m->param_mem + pb->float_off : NULL;
        p->grad = m->grad_mem ? m->grad_mem + pb->float_off : NULL;
    }
    pb->name_off += len;
    pb->float_off += (size_t)(ndim > 1 ? d0 * d1 : ndim == 1 ? d0 : 1);
    return i;
}

/* A Mamba block's parameters in the order torch's state_dict lists a mamba_simple.Mamba-style
 * module: its own A_log and D, then in_proj, conv1d, x_proj, dt_proj, out_proj (mamba.h). */
static void mamba_params_add(param_builder *pb, const cad_model_config *c, int l, cad_model_layer *L) {
    long C = c->model_dim, E = (long)c->mamba_expand * C, R = cad_mamba_dt_rank(c), S = c->mamba_d_state;
    char name[96];
    int idx[9];
    static const char *const suffix[9] = {"A_log", "D", "in_proj.weight", "conv1d.weight", "conv1d.bias",
                                          "x_proj.weight", "dt_proj.weight", "dt_proj.bias", "out_proj.weight"};
    const long shp[9][4] = {/* ndim, d0, d1, Muon */
                            {2, E, S, 0}, {1, E, 0, 0}, {2, 2 * E, C, 1}, {2, E, c->mamba_d_conv, 0}, {1, E, 0, 0},
                            {2, R + 2 * S, E, 1}, {2, E, R, 1}, {1, E, 0, 0}, {2, C, E, 1}};
    for (int s = 0; s < 9; s++) {
        snprintf(name, sizeof(name), "blocks.%d.mamba.%s", l, suffix[s]);
        idx[s] = param_add(pb, name, (int)shp[s][0], shp[s][1], shp[s][2], shp[s][3] ? CAD_PG_MATRIX : CAD_PG_SCALAR);
    }
    if (!L) return;
    L->mb.is_mamba = 1;
    L->mb.p_A_log = idx[0], L->mb.p_D = idx[1], L->mb.p_in_proj = idx[2], L->mb.p_conv_w = idx[3];
    L->mb.p_conv_b = idx[4], L->mb.p_x_proj = idx[5], L->mb.p_dt_w = idx[6], L->mb.p_dt_b = idx[7];
    L->mb.p_out_proj = idx[8];
}

/* Walk the state_dict in order. Called twice: counting (params == NULL) and filling. */
static void params_build(cad_model *m, size_t *name_bytes) {
    const cad_model_config *c = &m->cfg;
    long C = c->model_dim;
    param_builder pb = {m, 0, 0};
    char name[96];
    m->n_params = 0;
    m->p_lm_head = m->p_embed_proj = m->p_bigram_embed = m->p_bigram_proj = m->p_bigram_scale = m->p_smear = -1;
    /* torch order: GPT registers skip_weights, tok_emb, embed_proj, bigram, smear, then blocks */
    m->p_skip_weights = param_add(&pb, "skip_weights", 2, m->n_skip, C, CAD_PG_SCALAR);
    long E = c->embed_dim ? c->embed_dim : C;
    m->p_tok_emb = param_add(&pb, "tok_emb.weight", 2, c->vocab_size, E, CAD_PG_EMBED);
    if (c->embed_dim) m->p_embed_proj = param_add(&pb, "embed_proj.weight", 2, C, E, CAD_PG_MATRIX);
    if (c->bigram_buckets) { /* the records: table with the token embedding (Adam), proj with Muon;
                              * torch lists a module's own parameter (scale) before its children's */
        m->p_bigram_scale = param_add(&pb, "bigram.scale", 0, 0, 0, CAD_PG_SCALAR);
        m->p_bigram_embed = param_add(&pb, "bigram.embed.weight", 2, c->bigram_buckets, c->bigram_dim, CAD_PG_EMBED);
        if (c->bigram_dim != C) m->p_bigram_proj = param_add(&pb, "bigram.proj.weight", 2, C, c->bigram_dim, CAD_PG_MATRIX);
    }
    if (c->smear_gate) m->p_smear = param_add(&pb, "smear.gate", 1, C, 0, CAD_PG_SCALAR);
    for (int l = 0; l < c->num_layers; l++) {
        cad_model_layer *L = m->layers ? &m->layers[l] : NULL;
        int idx[10];
        static const char *const suffix[10] = {
            "attn_scale", "mlp_scale", "resid_mix", "attn.q_gain", "attn.c_q.weight",
            "attn.c_k.weight", "attn.c_v.weight", "attn.proj.weight", "mlp.fc.weight", "mlp.proj.weight"};
        const long shp[10][3] = {
            /* ndim, d0, d1 */
            {1, C, 0}, {1, C, 0}, {2, 2, C}, {1, c->num_heads, 0}, {2, C, C},
            {2, m->kv_dim, C}, {2, m->kv_dim, C}, {2, C, C}, {2, m->hidden, C}, {2, C, m->hidden}};
        int p_as = -1, p_ms = -1, p_router = -1, p_gate = -1, mamba = (int)((c->mamba_mask >> l) & 1);
        idx[8] = idx[9] = -1;
        for (int s = 0; s < (c->mlp_experts ? 8 : 10); s++) { /* micro-MoE: router + experts below */
            if (mamba && s >= 3 && s <= 7) { /* the Mamba block in place of attention */
                if (s == 3) mamba_params_add(&pb, c, l, L);
                idx[s] = -1;
                continue;
            }
            snprintf(name, sizeof(name), "blocks.%d.%s", l, suffix[s]);
            int matrix = shp[s][0] == 2 && !name_is_control(name);
            idx[s] = param_add(&pb, name, (int)shp[s][0], shp[s][1], shp[s][2],
                               matrix ? CAD_PG_MATRIX : CAD_PG_SCALAR);
            if (s == 3 && c->attn_gate) { /* attn's own parameters: q_gain, attn_gate_w, then c_q... */
                snprintf(name, sizeof(name), "blocks.%d.attn.attn_gate_w", l);
                p_gate = param_add(&pb, name, 2, c->num_heads, attn_gate_width(c), CAD_PG_SCALAR);
            }
            /* the per-pass scales follow resid_mix: the Block's own parameters come first in torch */
            if (s == 2 && c->recur_loop_scales && c->recur_loops > 1 && l >= c->recur_first && l <= c->recur_last) {
                snprintf(name, sizeof(name), "blocks.%d.attn_scales", l);
                p_as = param_add(&pb, name, 2, loops_max(c) - 1, C, CAD_PG_SCALAR);
                snprintf(name, sizeof(name), "blocks.%d.mlp_scales", l);
                p_ms = param_add(&pb, name, 2, loops_max(c) - 1, C, CAD_PG_SCALAR);
            }
        }
        if (c->mlp_experts) { /* MoE module order: router, then experts.0.fc, experts.0.proj, ... (moe.h) */
            snprintf(name, sizeof(name), "blocks.%d.mlp.router.weight", l);
            p_router = param_add(&pb, name, 2, c->mlp_experts, C, CAD_PG_SCALAR); /* Adam: see moe.h */
            long He = m->hidden / c->mlp_experts;
            for (int x = 0; x < c->mlp_experts; x++) {
                snprintf(name, sizeof(name), "blocks.%d.mlp.experts.%d.fc.weight", l, x);
                param_add(&pb, name, 2, He, C, CAD_PG_MATRIX);
                snprintf(name, sizeof(name), "blocks.%d.mlp.experts.%d.proj.weight", l, x);
                param_add(&pb, name, 2, C, He, CAD_PG_MATRIX);
            }
        }
        if (L) {
            L->p_router = p_router;
            L->p_attn_gate = p_gate;
            L->p_attn_scales = p_as, L->p_mlp_scales = p_ms, L->pass = 0;
            L->p_attn_scale = idx[0], L->p_mlp_scale = idx[1], L->p_resid_mix = idx[2];
            L->p_q_gain = idx[3], L->p_c_q = idx[4], L->p_proj = idx[7];
            L->p_fc = idx[8], L->p_mlp_proj = idx[9];
        }
    }
    if (!c->tie_embeddings) m->p_lm_head = param_add(&pb, "lm_head.weight", 2, c->vocab_size, C, CAD_PG_HEAD);
    m->n_param_floats = pb.float_off;
    if (name_bytes) *name_bytes = pb.name_off;
}

void cad_model_set_recurrence(cad_model *m, int on) { cad_model_set_loops(m, on ? m->cfg.recur_loops : 1); }

void cad_model_set_loops(cad_model *m, int loops) {
    const cad_model_config *c = &m->cfg;
    if (loops < 1) loops = 1;
    if (loops > loops_max(c)) loops = loops_max(c);
    if (loops == m->loops) return;
    m->loops = loops;
    int on = m->recur_on = loops > 1;
    m->n_virtual = virtual_count(c, loops);
    m->n_enc = m->n_virtual / 2;
    m->n_dec = m->n_virtual - m->n_enc;
    m->n_skip = m->n_enc < m->n_dec ? m->n_enc : m->n_dec;
    for (int v = 0; v < m->n_virtual; v++) { /* parameters of the physical block, own activations */
        const cad_model_layer *P = &m->phys[on ? virtual_to_physical(c, loops, v) : v];
        cad_model_layer *L = &m->layers[v];
        L->p_attn_scale = P->p_attn_scale, L->p_mlp_scale = P->p_mlp_scale, L->p_resid_mix = P->p_resid_mix;
        L->p_q_gain = P->p_q_gain, L->p_c_q = P->p_c_q, L->p_proj = P->p_proj, L->p_fc = P->p_fc;
        L->p_mlp_proj = P->p_mlp_proj;
        L->p_router = P->p_router;
        L->p_attn_gate = P->p_attn_gate;
        L->p_attn_scales = P->p_attn_scales, L->p_mlp_scales = P->p_mlp_scales;
        L->mb = P->mb;
        int b = on ? virtual_to_physical(c, loops, v) : v; /* LN scale follows the physical block */
        L->ln_s = c->ln_scale ? (float)(1.0 / sqrt((double)(b + 1))) : 1.0f;
        L->block = b;
        /* pass over the physical block: 0 up to recur_last, then 1.. for each extra loop */
        int span = c->recur_last - c->recur_first + 1;
        L->pass = on && v > c->recur_last && v <= c->recur_last + (loops - 1) * span ? 1 + (v - c->recur_last - 1) / span : 0;
        int dec = v - m->n_enc;
        if (v == 0) L->xin = m->x0;
        else if (dec >= 0 && dec < m->n_skip) L->xin = L->skip_sum;
        else L->xin = m->layers[v - 1].out;
        CAD_ASSERT(L->xin != NULL);
    }
    m->have_targets = 0; /* a pending backward would see the other schedule */
}

cad_param *cad_model_param(cad_model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    return NULL;
}

/* ---- activation plan --------------------------------------------------------------------- */

/* Carves 64-byte aligned slices out of the activation arena; with base == NULL it only
 * measures, so the same code sizes the arena and then points into it. */
typedef struct {
    char *base;
    size_t off;
} act_planner;

static void *act_take(act_planner *ap, size_t bytes) {
    size_t off = ap->off;
    ap->off += (bytes + 63) & ~(size_t)63;
    return ap->base ? ap->base + off : NULL;
}

#define TAKE_F(ap, n) ((float *)act_take((ap), sizeof(float) * (size_t)(n)))

/* Whether virtual block l is an attention block (*att) or a Mamba block (*mamba) in any schedule
 * (1..loops_max passes): its activations are planned for both kinds it can be. */
static void layer_kinds(const cad_model *m, int l, int *att, int *mamba) {
    const cad_model_config *c = &m->cfg;
    *att = *mamba = 0;
    for (int k = 1; k <= loops_max(c); k++) {
        if (l >= virtual_count(c, k)) continue;
        if ((c->mamba_mask >> virtual_to_physical(c, k, l)) & 1) *mamba = 1;
        else *att = 1;
    }
}

/* Whether virtual block l pops a skip (x + skip_weights[i] * skip) in any schedule. */
static int layer_pops_skip(const cad_model *m, int l) {
    for (int k = 1; k <= loops_max(&m->cfg); k++) {
        int n = virtual_count(&m->cfg, k), enc = n / 2;
        if (l > 0 && l < n && l >= enc && l - enc < enc) return 1;
    }
    return 0;
}

static void act_plan(cad_model *m, act_planner *ap) {
    const cad_model_config *c = &m->cfg;
    size_t N = (size_t)c->max_batch_seqs * c->max_seq_len, C = c->model_dim;
    int NH = c->num_heads, KV = c->num_kv_heads;
    m->ids = (int32_t *)act_take(ap, sizeof(int32_t) * N);
    m->targets = (int32_t *)act_take(ap, sizeof(int32_t) * N);
    m->rope_cos = TAKE_F(ap, (size_t)c->max_seq_len * m->head_dim / 2);
    m->rope_sin = TAKE_F(ap, (size_t)c->max_seq_len * m->head_dim / 2);
    m->x0 = TAKE_F(ap, N * C);
    m->rstd0 = TAKE_F(ap, N);
    size_t E = (size_t)c->embed_dim, Db = (size_t)c->bigram_dim;
    if (E) m->emb_e = TAKE_F(ap, N * E), m->head_e = TAKE_F(ap, N * E), m->d_e = TAKE_F(ap, N * E);
    if (c->bigram_buckets) {
        m->bg_ids = (int32_t *)act_take(ap, sizeof(int32_t) * N);
        m->bg_e = TAKE_F(ap, N * Db), m->bg_u = TAKE_F(ap, N * Db), m->bg_d = TAKE_F(ap, N * Db);
        m->bg_svec = TAKE_F(ap, Db), m->bg_ds = TAKE_F(ap, Db);
    }
    if (c->smear_gate) {
        m->xn0 = TAKE_F(ap, N * C), m->x_prev = TAKE_F(ap, N * C);
        m->smear_mix = TAKE_F(ap, 2 * C), m->smear_dmix = TAKE_F(ap, 2 * C);
    }
    size_t Em = (size_t)c->mamba_expand * C, W = (size_t)cad_mamba_dt_rank(c) + 2 * (size_t)c->mamba_d_state;
    size_t n_hs = (size_t)c->max_batch_seqs * ((size_t)(c->max_seq_len + CAD_SCAN_CHUNK - 1) / CAD_SCAN_CHUNK) * Em *
                  (size_t)c->mamba_d_state;
    for (int l = 0; l < m->n_virtual_max; l++) {
        cad_model_layer *L = &m->layers[l];
        int att_b, mamba_b; /* what this virtual block can be in either schedule */
        layer_kinds(m, l, &att_b, &mamba_b);
        if (mamba_b) {
            L->mb_xz = TAKE_F(ap, N * 2 * Em), L->mb_u = TAKE_F(ap, N * Em), L->mb_xdbl = TAKE_F(ap, N * W);
            L->mb_dt = TAKE_F(ap, N * Em), L->mb_y = TAKE_F(ap, N * Em), L->mb_hs = TAKE_F(ap, n_hs);
        }
        L->out = TAKE_F(ap, N * C);
        /* a skip-sum buffer where a decoder pops a skip in any schedule (plain, looped, eval) */
        L->skip_sum = layer_pops_skip(m, l) ? TAKE_F(ap, N * C) : NULL;
        /* the last xsa_last blocks of either schedule (plain num_layers <= looped) */
        L->xsa_y = c->xsa_last > 0 && l >= c->num_layers - c->xsa_last ? TAKE_F(ap, N * C) : NULL;
        L->xn1 = TAKE_F(ap, N * C);
        L->rstd1 = TAKE_F(ap, N);
        if (att_b) {
            L->qkv = TAKE_F(ap, N * m->qkv_dim);
            L->att_y = TAKE_F(ap, N * C);
            L->att_lse = TAKE_F(ap, N * NH);
            if (c->attn_gate) L->gate_pre = TAKE_F(ap, N * NH), L->gated_y = TAKE_F(ap, N * C);
        }
        L->attn_out = TAKE_F(ap, N * C);
        L->xn2 = TAKE_F(ap, N * C);
        L->rstd2 = TAKE_F(ap, N);
        L->hpre = c->mlp_experts ? NULL : TAKE_F(ap, N * m->hidden); /* MoE keeps its own (moe.c) */
        L->mlp_out = TAKE_F(ap, N * C);
    }
    m->xf = TAKE_F(ap, N * C);
    m->rstdf = TAKE_F(ap, N);
    m->logits = TAKE_F(ap, N * c->vocab_size);
    m->logit_lse = TAKE_F(ap, N);
    m->loss_dev = TAKE_F(ap, N);
    m->q_r = TAKE_F(ap, N * C);
    m->k_r = TAKE_F(ap, N * m->kv_dim);
    m->rstd_q = TAKE_F(ap, N * NH);
    m->rstd_k = TAKE_F(ap, N * KV);
    m->act = TAKE_F(ap, N * m->hidden);
    m->d_res = TAKE_F(ap, N * C);
    m->d_x0 = TAKE_F(ap, N * C);
    m->d_xn = TAKE_F(ap, N * C);
    m->d_proj = TAKE_F(ap, N * C);
    m->d_atty = TAKE_F(ap, N * C);
    m->d_qkv = TAKE_F(ap, N * m->qkv_dim);
    m->d_q = TAKE_F(ap, N * C);
    m->d_k = TAKE_F(ap, N * m->kv_dim);
    m->d_h = TAKE_F(ap, N * m->hidden);
    if (c->attn_gate) m->d_gate = TAKE_F(ap, N * NH);
    for (int s = 0; s < m->n_virtual_max / 2; s++) m->d_skip[s] = TAKE_F(ap, N * C);
    m->att_scratch = act_take(ap, m->att_scratch_bytes);
    if (c->mamba_mask) {
        m->mb_dxz = TAKE_F(ap, N * 2 * Em), m->mb_du = TAKE_F(ap, N * Em), m->mb_dxdbl = TAKE_F(ap, N * W);
        m->mb_ddt = TAKE_F(ap, N * Em), m->mb_dy = TAKE_F(ap, N * Em);
        m->scan_scratch = act_take(ap, m->scan_scratch_bytes);
    }
}

/* ---- init / free ------------------------------------------------------------------------- */

static double rng_uniform_ctx(void *r) { return rng_uniform((model_rng *)r); }

static void fill_uniform(model_rng *r, float *h, size_t n, double bound) {
    for (size_t i = 0; i < n; i++) h[i] = (float)((2.0 * rng_uniform(r) - 1.0) * bound);
}

void cad_model_fill_uniform(uint64_t *state, float *h, size_t n, double bound) {
    model_rng r = {*state};
    fill_uniform(&r, h, n, bound);
    *state = r.s;
}

static void weights_init(cad_model *m, float *host, uint64_t seed) {
    const cad_model_config *c = &m->cfg;
    model_rng r = {seed ^ 0x63616464696500ull}; /* "caddie" */
    for (int i = 0; i < m->n_params; i++) {
        cad_param *p = &m->params[i];
        float *h = host + (p->data - m->param_mem);
        const char *nm = p->name;
        size_t n = (size_t)p->numel;
        const char *mamba_name = strstr(nm, ".mamba.");
        if (mamba_name) {
            int rc = cad_mamba_init_param(c, mamba_name + 7, h, p->shape[0], p->ndim > 1 ? p->shape[1] : 0,
                                          rng_uniform_ctx, &r);
            CAD_ASSERT(rc == 0); /* mamba_params_add names only what cad_mamba_init_param knows */
        } else if (i == m->p_bigram_embed) {
            memset(h, 0, n * sizeof(float)); /* the records' zero-init table */
        } else if (i == m->p_bigram_proj || i == m->p_embed_proj) {
            /* nn.Linear's default: the records zero-init bigram.proj but their OrthoInit then
             * overwrites it (a zero table and a zero proj would never receive a gradient) */
            fill_uniform(&r, h, n, 1.0 / sqrt((double)p->shape[1]));
        } else if (i == m->p_bigram_scale) {
            h[0] = 0.05f;
        } else if (strstr(nm, ".attn_gate_w")) { /* sparse: zero (gates 0.5); full: N(0, 0.005) */
            for (size_t k = 0; k < n; k++)
                h[k] = c->attn_gate == CAD_ATTN_GATE_FULL ? (float)(0.005 * rng_normal(&r)) : 0.0f;
        } else if (i == m->p_smear) {
            memset(h, 0, n * sizeof(float)); /* gate 0: sigmoid 0.5 */
        } else if (i == m->p_tok_emb) {
            double std = c->tie_embeddings ? c->tied_embed_init_std : 1.0; /* nn.Embedding: N(0,1) */
            for (size_t k = 0; k < n; k++) h[k] = (float)(std * rng_normal(&r));
        } else if (i == m->p_lm_head || strstr(nm, ".proj.weight")) {
            memset(h, 0, n * sizeof(float)); /* _zero_init */
        } else if (strstr(nm, ".weight")) {
            fill_uniform(&r, h, n, 1.0 / sqrt((double)p->shape[1])); /* nn.Linear default */
        } else if (strstr(nm, "q_gain")) {
            for (size_t k = 0; k < n; k++) h[k] = c->qk_gain_init;
        } else if (strstr(nm, "resid_mix")) {
            for (size_t k = 0; k < n; k++) h[k] = k < (size_t)c->model_dim ? 1.0f : 0.0f;
        } else { /* attn_scale, mlp_scale, skip_weights */
            for (size_t k = 0; k < n; k++) h[k] = 1.0f;
        }
    }
}

void cad_model_free(cad_model *m) {
    if (!m) return;
    if (m->be) {
        m->be->free(m->be, m->param_mem);
        m->be->free(m->be, m->grad_mem);
        m->be->free(m->be, m->act_mem);
        m->be->free(m->be, m->qat_mem);
        m->be->free(m->be, m->calib_mem);
        cad_moe_free(m);
        cad_ee_free(m);
    }
    free(m->qat_param_bits);
    free(m->params);
    free(m->names);
    free(m->layers);
    free(m->phys);
    free(m->d_skip);
    free(m->token_loss);
    free(m->bg_host);
    free(m->bg_shost);
    free(m->smear_host);
    free(m->smear_zero);
    memset(m, 0, sizeof(*m));
}

int cad_model_init(cad_model *m, const cad_model_config *c, const cad_backend *be, uint64_t seed,
                   cad_err *e) {
    memset(m, 0, sizeof(*m));
    int rc = cad_model_config_check(c, e);
    if (rc) return rc;
    m->cfg = *c;
    m->be = be;
    m->head_dim = c->model_dim / c->num_heads;
    m->kv_dim = c->num_kv_heads * m->head_dim;
    m->qkv_dim = c->model_dim + 2 * m->kv_dim;
    m->hidden = c->mlp_mult * c->model_dim;
    m->n_virtual_max = virtual_count(c, loops_max(c));
    m->n_virtual = m->n_virtual_max; /* sizes skip_weights: one row per skip of the longest schedule */
    m->n_enc = m->n_virtual / 2;
    m->n_dec = m->n_virtual - m->n_enc;
    m->n_skip = m->n_enc < m->n_dec ? m->n_enc : m->n_dec;
    /* L - L/2 >= L/2, so every encoder output is popped once: d_skip is indexed by encoder */
    CAD_ASSERT(m->n_skip == m->n_enc);

    size_t name_bytes = 0;
    params_build(m, &name_bytes); /* counting pass */
    int np = m->n_params;
    size_t N = (size_t)c->max_batch_seqs * c->max_seq_len;
    m->params = calloc((size_t)np, sizeof(cad_param));
    m->names = malloc(name_bytes);
    m->layers = calloc((size_t)m->n_virtual_max, sizeof(cad_model_layer));
    m->phys = calloc((size_t)c->num_layers, sizeof(cad_model_layer));
    m->d_skip = calloc((size_t)m->n_skip + 1, sizeof(float *));
    m->token_loss = calloc(N, sizeof(float));
    if (c->bigram_buckets)
        m->bg_host = calloc(N, sizeof(int32_t)), m->bg_shost = calloc((size_t)c->bigram_dim, sizeof(float));
    if (c->smear_gate) m->smear_host = calloc(4 * (size_t)c->model_dim, sizeof(float)), m->smear_zero = calloc(N, sizeof(int32_t));
    if (!m->params || !m->names || !m->layers || !m->phys || !m->d_skip || !m->token_loss ||
        (c->bigram_buckets && (!m->bg_host || !m->bg_shost)) || (c->smear_gate && (!m->smear_host || !m->smear_zero))) {
        cad_model_free(m);
        return cad_fail(e, CAD_ENOMEM, "model: out of host memory for the parameter table");
    }
    size_t pbytes = m->n_param_floats * sizeof(float);
    m->param_mem = be->alloc(be, pbytes);
    m->grad_mem = be->alloc(be, pbytes);
    if (!m->param_mem || !m->grad_mem) {
        cad_model_free(m);
        return cad_fail(e, CAD_ENOMEM, "model: cannot allocate parameters + gradients (2 x %zu bytes) on %s",
                        pbytes, be->name);
    }
    params_build(m, NULL); /* filling pass: names, shapes, slices; layers[0..num_layers) = blocks */
    memcpy(m->phys, m->layers, sizeof(cad_model_layer) * (size_t)c->num_layers);
    /* the fused qkv sgemm relies on c_q|c_k|c_v being adjacent in the arena */
    for (int l = 0; l < c->num_layers; l++) {
        cad_model_layer *L = &m->layers[l];
        if (L->mb.is_mamba) continue;
        CAD_ASSERT(m->params[L->p_c_q + 1].data == m->params[L->p_c_q].data + m->params[L->p_c_q].numel);
        CAD_ASSERT(m->params[L->p_c_q + 2].data == m->params[L->p_c_q + 1].data + m->params[L->p_c_q + 1].numel);
    }

    m->att_scratch_bytes =
        be->attention_scratch_bytes(be, c->max_batch_seqs, c->max_seq_len, c->num_heads, c->num_kv_heads, m->head_dim);
    if (c->mamba_mask)
        m->scan_scratch_bytes = be->selective_scan_scratch_bytes(be, c->max_batch_seqs, c->max_seq_len,
                                                                 c->mamba_expand * c->model_dim, c->mamba_d_state);
    act_planner ap = {NULL, 0};
    act_plan(m, &ap); /* measure */
    m->act_bytes = ap.off;
    m->act_mem = be->alloc(be, m->act_bytes);
    if (!m->act_mem) {
        size_t want = m->act_bytes;
        cad_model_free(m);
        return cad_fail(e, CAD_ENOMEM,
                        "model: cannot allocate the activation arena (%zu bytes for max_batch_seqs=%d x "
                        "max_seq_len=%d) on %s", want, c->max_batch_seqs, c->max_seq_len, be->name);
    }
    ap.base = m->act_mem;
    ap.off = 0;
    act_plan(m, &ap); /* point */
    m->loops = 0; /* none yet: the call below lays out the training schedule */
    cad_model_set_recurrence(m, 1);
    if ((c->mlp_experts && (rc = cad_moe_init(m, e))) || (c->n_exits && (rc = cad_ee_init(m, e)))) {
        cad_model_free(m);
        return rc;
    }

    /* host staging: weights, then the RoPE tables (Rotary: fp32 inv_freq, fp32 outer product) */
    size_t half = (size_t)m->head_dim / 2, tab = (size_t)c->max_seq_len * half;
    size_t stage_floats = m->n_param_floats > 2 * tab ? m->n_param_floats : 2 * tab;
    float *host = malloc((stage_floats ? stage_floats : 1) * sizeof(float));
    if (!host) {
        cad_model_free(m);
        return cad_fail(e, CAD_ENOMEM, "model: out of host memory staging %zu floats", stage_floats);
    }
    weights_init(m, host, seed);
    be->copy_to_device(be, m->param_mem, host, pbytes);
    /* partial RoPE: the first rope_dims/2 pairs rotate with the records' Rotary(rope_dims)
     * frequencies, the rest get cos 1, sin 0 (the identity) */
    int rd = c->rope_dims ? c->rope_dims : m->head_dim;
    for (size_t i = 0; i < half; i++) {
        int rot = (int)i < rd / 2;
        float inv_freq = rot ? 1.0f / powf(c->rope_base, (float)(2 * i) / (float)rd) : 0.0f;
        for (int t = 0; t < c->max_seq_len; t++) {
            float f = (float)t * inv_freq;
            host[(size_t)t * half + i] = rot ? cosf(f) : 1.0f;
            host[tab + (size_t)t * half + i] = rot ? sinf(f) : 0.0f;
        }
    }
    be->copy_to_device(be, m->rope_cos, host, tab * sizeof(float));
    be->copy_to_device(be, m->rope_sin, host + tab, tab * sizeof(float));
    free(host);
    be->sync(be);
    return CAD_OK;
}

void cad_model_zero_grad(cad_model *m) {
    m->be->memset_zero(m->be, m->grad_mem, m->n_param_floats * sizeof(float));
}

/* ---- QAT -------------------------------------------------------------------------------- */

int cad_model_qat_quantised(const cad_model *m, int i) {
    const cad_param *p = &m->params[i];
    if (p->group != CAD_PG_MATRIX) return 0;
    cad_named_tensor t = {p->name, p->ndim, {p->shape[0], p->shape[1]}, (size_t)p->numel, NULL};
    return cad_int8_scheme(&t) == CAD_Q_PER_ROW;
}

int cad_model_set_qat(cad_model *m, int bits, cad_err *e) {
    if (bits != 0 && bits != CAD_QUANT_TERNARY && (bits < 2 || bits > 8))
        return cad_fail(e, CAD_ECONFIG, "qat: %d bits (expected 0 = off, 1 = ternary or 2..8)", bits);
    if (bits && !m->qat_mem) {
        size_t bytes = m->n_param_floats * sizeof(float);
        m->qat_mem = m->be->alloc(m->be, bytes ? bytes : sizeof(float));
        if (!m->qat_mem)
            return cad_fail(e, CAD_ENOMEM, "qat: cannot allocate the fake-quantised weights (%zu bytes) on %s", bytes,
                            m->be->name);
    }
    m->qat_bits = bits;
    return CAD_OK;
}

int cad_model_set_qat_overrides(cad_model *m, const char *overrides, cad_err *e) {
    free(m->qat_param_bits);
    m->qat_param_bits = NULL;
    if (!overrides || !overrides[0]) return CAD_OK;
    m->qat_param_bits = calloc((size_t)(m->n_params ? m->n_params : 1), 1);
    if (!m->qat_param_bits) return cad_fail(e, CAD_ENOMEM, "qat: out of memory for per-tensor bits");
    for (int i = 0; i < m->n_params; i++)
        if (cad_model_qat_quantised(m, i)) m->qat_param_bits[i] = (signed char)cad_quant_bits_for(overrides, m->params[i].name, 0);
    return CAD_OK;
}

const float *cad_model_weights_used(const cad_model *m, int i) {
    const cad_param *p = &m->params[i];
    if (!m->qat_bits || p->group != CAD_PG_MATRIX) return p->data;
    return m->qat_mem + (p->data - m->param_mem);
}

/* The forward's first step under QAT: fake-quantise (or copy) every block matrix into qat_mem. */
static void qat_refresh(cad_model *m) {
    const cad_backend *be = m->be;
    for (int i = 0; i < m->n_params; i++) {
        cad_param *p = &m->params[i];
        if (p->group != CAD_PG_MATRIX || p->numel == 0) continue;
        float *dst = m->qat_mem + (p->data - m->param_mem);
        if (cad_model_qat_quantised(m, i))
            be->fake_quant_rows(be, dst, p->data, (int)p->shape[0], (int)p->shape[1],
                                m->qat_param_bits && m->qat_param_bits[i] ? m->qat_param_bits[i] : m->qat_bits);
        else
            be->copy(be, dst, p->data, (size_t)p->numel * sizeof(float));
    }
}

/* ---- GPTQ calibration ------------------------------------------------------------------- */

static size_t calib_block_floats(const cad_model *m) {
    size_t C = (size_t)m->cfg.model_dim, H = (size_t)m->hidden;
    return 3 * C * C + H * H;
}

int cad_model_calib_begin(cad_model *m, cad_err *e) {
    size_t bytes = calib_block_floats(m) * (size_t)m->cfg.num_layers * sizeof(float);
    if (!m->calib_mem) {
        m->calib_mem = m->be->alloc(m->be, bytes);
        if (!m->calib_mem)
            return cad_fail(e, CAD_ENOMEM, "gptq: cannot allocate the calibration Hessians (%zu bytes) on %s", bytes,
                            m->be->name);
    }
    m->be->memset_zero(m->be, m->calib_mem, bytes);
    m->calib_on = 1;
    return CAD_OK;
}

void cad_model_calib_end(cad_model *m) { m->calib_on = 0; }

/* The Hessian slot (0 attention input, 1 proj, 2 fc, 3 mlp proj) of physical block b. */
static float *calib_slot(const cad_model *m, int b, int slot) {
    size_t C = (size_t)m->cfg.model_dim;
    return m->calib_mem + (size_t)b * calib_block_floats(m) + (size_t)slot * C * C;
}

const float *cad_model_calib_hessian(const cad_model *m, int i, int *dim) {
    *dim = 0;
    if (!m->calib_mem) return NULL;
    for (int b = 0; b < m->cfg.num_layers; b++) {
        const cad_model_layer *P = &m->phys[b];
        if (P->mb.is_mamba) continue; /* GPTQ is refused with Mamba blocks (config.c) */
        int slot = i >= P->p_c_q && i <= P->p_c_q + 2 ? 0 : i == P->p_proj ? 1 : i == P->p_fc ? 2
                 : i == P->p_mlp_proj ? 3 : -1;
        if (slot < 0) continue;
        *dim = slot == 3 ? m->hidden : m->cfg.model_dim;
        return calib_slot(m, b, slot);
    }
    return NULL;
}

/* H[slot of virtual layer L's physical block] += (sX)^T (sX), X [N, K]: s is the LN scale the
 * layer's input carries (1 for the inputs that have none). */
static void calib_add(cad_model *m, const cad_model_layer *L, int slot, const float *X, int N, int K, float s) {
    int b = 0;
    while (b < m->cfg.num_layers - 1 && m->phys[b].p_c_q != L->p_c_q) b++;
    m->be->matmul(m->be, 1, 0, K, K, N, s * s, X, K, X, K, 1.0f, calib_slot(m, b, slot), K);
}

/* ---- forward ----------------------------------------------------------------------------- */

#define PD(i) (m->params[(i)].data)
#define PG(i) (m->params[(i)].grad)
/* a block matrix as the forward reads it: fake-quantised under QAT (straight-through) */
#define WD(i) ((float *)cad_model_weights_used(m, (i)))

/* The attention / MLP output scale of virtual block L (data, or grad when g): the block's own
 * vector on its first pass, its row of attn_scales / mlp_scales on later ones. */
static float *attn_s(const cad_model *m, const cad_model_layer *L, int g) {
    const cad_param *p = &m->params[L->pass > 0 && L->p_attn_scales >= 0 ? L->p_attn_scales : L->p_attn_scale];
    size_t off = p->ndim == 2 ? (size_t)(L->pass - 1) * (size_t)m->cfg.model_dim : 0;
    return (g ? p->grad : p->data) + off;
}
static float *mlp_s(const cad_model *m, const cad_model_layer *L, int g) {
    const cad_param *p = &m->params[L->pass > 0 && L->p_mlp_scales >= 0 ? L->p_mlp_scales : L->p_mlp_scale];
    size_t off = p->ndim == 2 ? (size_t)(L->pass - 1) * (size_t)m->cfg.model_dim : 0;
    return (g ? p->grad : p->data) + off;
}

/* GPT-J parallel residual in the last parallel_last blocks of the schedule in use. */
static int uses_parallel(const cad_model *m, int l) {
    return m->cfg.parallel_last > 0 && l >= m->n_virtual - m->cfg.parallel_last;
}

/* XSA in the last xsa_last blocks of the schedule in use. */
static int uses_xsa(const cad_model *m, int l) {
    return m->cfg.xsa_last > 0 && l >= m->n_virtual - m->cfg.xsa_last && m->layers[l].xsa_y;
}

/* Decoder layer l's skip source: decoder i pops encoder n_enc-1-i (LIFO). */
static int skip_source(const cad_model *m, int l) { return m->n_enc - 1 - (l - m->n_enc); }

/* LoRA TTT adapters of a projection (ttt_lora.h): its output y (+=) the adapter's, and in
 * backward the adapter's grads and dx (+=) its input share. L NULL = the head. */
static void lora_fwd(cad_model *m, const cad_model_layer *L, int site, const float *x, int ldx, float a, float *y,
                     int ldy, int N) {
    if (m->lora) cad_lora_apply(m->lora, m->be, L ? L->block : -1, site, x, ldx, a, y, ldy, N);
}
static void lora_bwd(cad_model *m, const cad_model_layer *L, int site, const float *dy, int lddy, const float *x,
                     int ldx, float a, float *dx, int lddx, int N) {
    if (m->lora) cad_lora_grad(m->lora, m->be, L ? L->block : -1, site, dy, lddy, x, ldx, a, dx, lddx, N);
}


/* ---- input: embedding, factorized projection, BigramHash, SmearGate ------------------------ */

void cad_model_rope_perm(int head_dim, int rope_dims, int *perm) {
    int hh = head_dim / 2, rh = (rope_dims ? rope_dims : head_dim) / 2;
    for (int j = 0; j < head_dim; j++) {
        if (j < rh) perm[j] = j;                           /* first member of a rotated pair */
        else if (j < 2 * rh) perm[j] = j - rh + hh;        /* its partner: i + rope_dims/2 -> i + HD/2 */
        else if (j - 2 * rh < hh - rh) perm[j] = j - rh;   /* unrotated dims fill the free slots */
        else perm[j] = j;
    }
}

/* The records' bigram bucket of (prev, cur): (36313*cur XOR 27191*prev) mod (buckets-1), with
 * torch's int32 arithmetic (products wrap) and its remainder (sign of the divisor). */
static int32_t bigram_bucket(int32_t cur, int32_t prev, int32_t mod) {
    int32_t h = (int32_t)(((uint32_t)cur * 36313u) ^ ((uint32_t)prev * 27191u));
    int32_t r = h % mod;
    return r < 0 ? r + mod : r;
}

/* x0 = smear(xn0): x_prev is xn0 shifted down one row within each sequence, zero at t = 0 and
 * at BOS rows; the mix (1-g, g) is tiny and computed on the host. */
static void smear_forward(cad_model *m, const int32_t *x, int B, int T) {
    const cad_backend *be = m->be;
    int C = m->cfg.model_dim, N = B * T;
    float *h = m->smear_host; /* [0,2C) mix rows, [2C,3C) gate */
    be->copy_to_host(be, h + 2 * C, PD(m->p_smear), sizeof(float) * (size_t)C);
    for (int k = 0; k < C; k++) {
        float g = 1.0f / (1.0f + expf(-h[2 * C + k]));
        h[k] = 1.0f - g, h[C + k] = g;
    }
    be->copy_to_device(be, m->smear_mix, h, sizeof(float) * 2 * (size_t)C);
    be->memset_zero(be, m->x_prev, sizeof(float) * (size_t)N * C);
    for (int b = 0; b < B && T > 1; b++)
        be->copy(be, m->x_prev + ((size_t)b * T + 1) * C, m->xn0 + (size_t)b * T * C, sizeof(float) * (size_t)(T - 1) * C);
    m->n_smear_zero = 0;
    for (int n = 0; n < N; n++)
        if (n % T > 0 && x[n] == CAD_BOS_ID) { /* a document starts here: nothing of the previous one */
            m->smear_zero[m->n_smear_zero++] = n;
            be->memset_zero(be, m->x_prev + (size_t)n * C, sizeof(float) * (size_t)C);
        }
    be->resid_mix_forward(be, m->x0, m->xn0, m->x_prev, m->smear_mix, N, C);
}

/* d_x0 -> d(xn0) in place; the gate's gradient sigmoid'(theta) (dmix[1] - dmix[0]) on the host. */
static void smear_backward(cad_model *m) {
    const cad_backend *be = m->be;
    int C = m->cfg.model_dim, T = m->cur_T, B = m->cur_B, N = B * T;
    be->memset_zero(be, m->smear_dmix, sizeof(float) * 2 * (size_t)C);
    be->memset_zero(be, m->d_xn, sizeof(float) * (size_t)N * C);
    be->resid_mix_backward(be, m->d_x0, m->d_xn, m->smear_dmix, m->d_x0, m->xn0, m->x_prev, m->smear_mix, N, C);
    for (int k = 0; k < m->n_smear_zero; k++) /* those x_prev rows were constants */
        be->memset_zero(be, m->d_xn + (size_t)m->smear_zero[k] * C, sizeof(float) * (size_t)C);
    for (int b = 0; b < B && T > 1; b++) /* x_prev row t was xn0 row t-1 */
        be->axpby(be, (size_t)(T - 1) * C, 1.0f, m->d_xn + ((size_t)b * T + 1) * C, 1.0f, m->d_x0 + (size_t)b * T * C);
    float *h = m->smear_host; /* [0,2C) dmix (the mix is no longer needed), [2C,3C) gate, [3C,4C) grad */
    be->copy_to_host(be, h, m->smear_dmix, sizeof(float) * 2 * (size_t)C);
    be->copy_to_host(be, h + 3 * C, PG(m->p_smear), sizeof(float) * (size_t)C);
    for (int k = 0; k < C; k++) {
        double g = 1.0 / (1.0 + exp(-(double)h[2 * C + k]));
        h[3 * C + k] += (float)(((double)h[C + k] - h[k]) * g * (1.0 - g));
    }
    be->copy_to_device(be, PG(m->p_smear), h + 3 * C, sizeof(float) * (size_t)C);
}

/* The model's input: x0 = smear(rmsnorm(tok_emb[ids] [W^T] + scale * bigram)). */
static void embed_forward(cad_model *m, const int32_t *x, int B, int T) {
    const cad_model_config *c = &m->cfg;
    const cad_backend *be = m->be;
    int N = B * T, C = c->model_dim, E = c->embed_dim;
    float *xe = c->smear_gate ? m->xn0 : m->x0; /* normalised in place: rmsnorm_backward reads its output */
    if (E) {
        be->embedding_forward(be, m->emb_e, m->ids, PD(m->p_tok_emb), N, E);
        be->matmul(be, 0, 1, N, C, E, 1.0f, m->emb_e, E, WD(m->p_embed_proj), E, 0.0f, xe, C);
    } else {
        be->embedding_forward(be, xe, m->ids, PD(m->p_tok_emb), N, C);
    }
    if (c->bigram_buckets) {
        int Db = c->bigram_dim;
        int32_t mod = c->bigram_buckets - 1;
        for (int n = 0; n < N; n++) m->bg_host[n] = n % T == 0 ? mod : bigram_bucket(x[n], x[n - 1], mod);
        be->copy_to_device(be, m->bg_ids, m->bg_host, sizeof(int32_t) * (size_t)N);
        be->copy_to_host(be, &m->bg_scale, PD(m->p_bigram_scale), sizeof(float));
        for (int k = 0; k < Db; k++) m->bg_shost[k] = m->bg_scale; /* the scalar as scale_add's vector */
        be->copy_to_device(be, m->bg_svec, m->bg_shost, sizeof(float) * (size_t)Db);
        be->embedding_forward(be, m->bg_e, m->bg_ids, PD(m->p_bigram_embed), N, Db);
        if (m->p_bigram_proj >= 0) /* xe += scale * bg_e W^T: the scalar rides as the product's alpha */
            be->matmul(be, 0, 1, N, C, Db, m->bg_scale, m->bg_e, Db, WD(m->p_bigram_proj), Db, 1.0f, xe, C);
        else
            be->scale_add_forward(be, xe, xe, m->bg_svec, m->bg_e, N, C);
    }
    be->rmsnorm_forward(be, xe, m->rstd0, xe, N, C, RMS_EPS);
    if (c->smear_gate) smear_forward(m, x, B, T);
}

/* Gradients of the input from d_x0 (consumed; d_res, d_xn, d_e are scratch here). */
static void embed_backward(cad_model *m) {
    const cad_model_config *c = &m->cfg;
    const cad_backend *be = m->be;
    int N = m->cur_B * m->cur_T, C = c->model_dim, E = c->embed_dim;
    if (c->smear_gate) smear_backward(m);
    be->memset_zero(be, m->d_res, sizeof(float) * (size_t)N * C);
    be->rmsnorm_backward(be, m->d_res, m->d_x0, c->smear_gate ? m->xn0 : m->x0, m->rstd0, N, C);
    if (c->bigram_buckets) {
        int Db = c->bigram_dim;
        const float *u = m->d_res; /* gradient of the unscaled bigram vector, over its Db columns */
        if (m->p_bigram_proj >= 0) {
            be->matmul(be, 1, 0, C, Db, N, m->bg_scale, m->d_res, C, m->bg_e, Db, 1.0f, PG(m->p_bigram_proj), Db);
            be->matmul(be, 0, 0, N, Db, C, 1.0f, m->d_res, C, WD(m->p_bigram_proj), Db, 0.0f, m->bg_u, Db);
            u = m->bg_u;
        }
        /* d table rows = scale * u; d scale = sum over rows and columns of u * bg_e */
        be->memset_zero(be, m->bg_ds, sizeof(float) * (size_t)Db);
        be->scale_add_backward(be, m->bg_d, m->bg_ds, u, m->bg_e, m->bg_svec, N, Db);
        be->embedding_backward(be, PG(m->p_bigram_embed), m->bg_d, m->bg_ids, N, Db);
        be->copy_to_host(be, m->bg_shost, m->bg_ds, sizeof(float) * (size_t)Db);
        double ds = 0.0;
        for (int k = 0; k < Db; k++) ds += m->bg_shost[k];
        float g;
        be->copy_to_host(be, &g, PG(m->p_bigram_scale), sizeof(float));
        g += (float)ds;
        be->copy_to_device(be, PG(m->p_bigram_scale), &g, sizeof(float));
    }
    if (E) {
        be->matmul(be, 1, 0, C, E, N, 1.0f, m->d_res, C, m->emb_e, E, 1.0f, PG(m->p_embed_proj), E);
        be->matmul(be, 0, 0, N, E, C, 1.0f, m->d_res, C, WD(m->p_embed_proj), E, 0.0f, m->d_e, E);
        be->embedding_backward(be, PG(m->p_tok_emb), m->d_e, m->ids, N, E);
    } else {
        be->embedding_backward(be, PG(m->p_tok_emb), m->d_res, m->ids, N, C);
    }
}

int cad_model_forward(cad_model *m, const int32_t *x, const int32_t *y, int B, int T,
                      float *mean_loss, cad_err *e) {
    const cad_model_config *c = &m->cfg;
    const cad_backend *be = m->be;
    if (B <= 0 || T <= 0 || T > c->max_seq_len || (long)B * T > (long)c->max_batch_seqs * c->max_seq_len)
        return cad_fail(e, CAD_ECONFIG,
                        "forward: batch %d x %d tokens does not fit the plan (max_seq_len %d, max tokens %d)", B,
                        T, c->max_seq_len, c->max_batch_seqs * c->max_seq_len);
    int N = B * T, C = c->model_dim, V = c->vocab_size, NH = c->num_heads, KV = c->num_kv_heads;
    int HD = m->head_dim, KVD = m->kv_dim, QKV = m->qkv_dim, H = m->hidden;
    m->have_targets = 0; /* a failed forward leaves nothing for backward to use */
    for (int n = 0; n < N; n++) {
        if (x[n] < 0 || x[n] >= V)
            return cad_fail(e, CAD_EFORMAT, "forward: input token %d at position %d is outside [0, %d)", x[n], n, V);
        if (y && (y[n] < 0 || y[n] >= V))
            return cad_fail(e, CAD_EFORMAT, "forward: target token %d at position %d is outside [0, %d)", y[n], n, V);
    }
    m->cur_B = B, m->cur_T = T, m->have_targets = y != NULL;
    if (m->qat_bits) qat_refresh(m);
    be->copy_to_device(be, m->ids, x, sizeof(int32_t) * N);
    if (y) be->copy_to_device(be, m->targets, y, sizeof(int32_t) * N);

    float att_scale = 1.0f / sqrtf((float)HD);
    double aux = 0.0; /* micro-MoE load-balance losses of this forward */
    embed_forward(m, x, B, T);
    for (int l = 0; l < m->n_virtual; l++) {
        cad_model_layer *L = &m->layers[l];
        int dec = l - m->n_enc;
        if (dec >= 0 && dec < m->n_skip) /* x = x + skip_weights[i] * skips.pop() */
            be->scale_add_forward(be, L->xin, m->layers[l - 1].out, PD(m->p_skip_weights) + (size_t)dec * C,
                                  m->layers[skip_source(m, l)].out, N, C);
        be->resid_mix_forward(be, L->out, L->xin, m->x0, PD(L->p_resid_mix), N, C);
        /* attention, or the Mamba block in its place */
        be->rmsnorm_forward(be, L->xn1, L->rstd1, L->out, N, C, RMS_EPS);
        if (L->mb.is_mamba) {
            cad_mamba_forward(m, L);
            be->scale_add_forward(be, L->out, L->out, attn_s(m, L, 0), L->attn_out, N, C);
            goto mlp;
        }
        if (m->calib_on) calib_add(m, L, 0, L->xn1, N, C, L->ln_s);
        be->matmul(be, 0, 1, N, QKV, C, L->ln_s, L->xn1, C, WD(L->p_c_q), C, 0.0f, L->qkv, QKV);
        lora_fwd(m, L, CAD_LORA_Q, L->xn1, C, L->ln_s, L->qkv, QKV, N);
        lora_fwd(m, L, CAD_LORA_K, L->xn1, C, L->ln_s, L->qkv + C, QKV, N);
        lora_fwd(m, L, CAD_LORA_V, L->xn1, C, L->ln_s, L->qkv + C + KVD, QKV, N);
        be->qk_norm_rope_forward(be, m->q_r, m->k_r, m->rstd_q, m->rstd_k, L->qkv, PD(L->p_q_gain), m->rope_cos,
                                 m->rope_sin, B, T, NH, KV, HD, RMS_EPS);
        be->attention_forward(be, L->att_y, C, L->att_lse, m->q_r, C, m->k_r, KVD, L->qkv + C + KVD, QKV, B, T, NH,
                              KV, HD, att_scale, m->att_scratch, m->att_scratch_bytes);
        const float *proj_in = L->att_y;
        if (uses_xsa(m, l)) {
            be->xsa_forward(be, L->xsa_y, C, L->att_y, C, L->qkv + C + KVD, QKV, N, NH, KV, HD);
            proj_in = L->xsa_y;
        }
        if (L->p_attn_gate >= 0) { /* y_h *= sigmoid(W_g (s x)[:W]) */
            int W = attn_gate_width(c);
            be->matmul(be, 0, 1, N, NH, W, L->ln_s, L->xn1, C, PD(L->p_attn_gate), W, 0.0f, L->gate_pre, NH);
            be->head_gate_forward(be, L->gated_y, C, proj_in, C, L->gate_pre, N, NH, HD);
            proj_in = L->gated_y;
        }
        if (m->calib_on) calib_add(m, L, 1, proj_in, N, C, 1.0f);
        be->matmul(be, 0, 1, N, C, C, 1.0f, proj_in, C, WD(L->p_proj), C, 0.0f, L->attn_out, C);
        lora_fwd(m, L, CAD_LORA_O, proj_in, C, 1.0f, L->attn_out, C, N);
        be->scale_add_forward(be, L->out, L->out, attn_s(m, L, 0), L->attn_out, N, C);
    mlp:;
        /* mlp: of the block's output so far, or (parallel residual) of the same norm the
         * attention read, x + a Attn(n x) + s MLP(n x) */
        const float *mlp_in = L->xn1;
        if (!uses_parallel(m, l)) {
            be->rmsnorm_forward(be, L->xn2, L->rstd2, L->out, N, C, RMS_EPS);
            mlp_in = L->xn2;
        }
        if (L->p_router >= 0) {
            cad_moe_forward(m, l, mlp_in, N, &aux);
        } else {
            if (m->calib_on) calib_add(m, L, 2, mlp_in, N, C, L->ln_s);
            be->matmul(be, 0, 1, N, H, C, L->ln_s, mlp_in, C, WD(L->p_fc), C, 0.0f, L->hpre, H);
            lora_fwd(m, L, CAD_LORA_FC, mlp_in, C, L->ln_s, L->hpre, H, N);
            be->relu2_forward(be, m->act, L->hpre, (size_t)N * H, c->mlp_leaky_slope);
            if (m->calib_on) calib_add(m, L, 3, m->act, N, H, 1.0f);
            be->matmul(be, 0, 1, N, C, H, 1.0f, m->act, H, WD(L->p_mlp_proj), H, 0.0f, L->mlp_out, C);
            lora_fwd(m, L, CAD_LORA_MLP_PROJ, m->act, H, 1.0f, L->mlp_out, C, N);
        }
        be->scale_add_forward(be, L->out, L->out, mlp_s(m, L, 0), L->mlp_out, N, C);
        if (y && m->ee) cad_ee_after_block(m, l, N);
    }
    be->rmsnorm_forward(be, m->xf, m->rstdf, m->layers[m->n_virtual - 1].out, N, C, RMS_EPS);
    if (c->embed_dim && c->tie_embeddings) { /* logits = (xf W) tok_emb^T, W = embed_proj [C, E] */
        int E = c->embed_dim;
        be->matmul(be, 0, 0, N, E, C, 1.0f, m->xf, C, WD(m->p_embed_proj), E, 0.0f, m->head_e, E);
        be->matmul(be, 0, 1, N, V, E, 1.0f, m->head_e, E, PD(m->p_tok_emb), E, 0.0f, m->logits, V);
    } else {
        const float *w_head = PD(c->tie_embeddings ? m->p_tok_emb : m->p_lm_head);
        be->matmul(be, 0, 1, N, V, C, 1.0f, m->xf, C, w_head, C, 0.0f, m->logits, V);
    }
    lora_fwd(m, NULL, CAD_LORA_HEAD, m->xf, C, 1.0f, m->logits, V, N);
    be->softcap_xent_forward(be, m->logits, m->logit_lse, m->loss_dev, y ? m->targets : NULL, N, V,
                             c->logit_softcap);
    if (!y) {
        be->sync(be);
        return CAD_OK;
    }
    be->copy_to_host(be, m->token_loss, m->loss_dev, sizeof(float) * N);
    double sum = 0.0;
    for (int n = 0; n < N; n++) sum += m->token_loss[n];
    float mean = (float)(sum / N);
    if (!isfinite(mean)) return cad_fail(e, CAD_ENUMERIC, "forward: loss is %g (non-finite)", (double)mean);
    m->objective = (double)mean + (double)c->moe_aux_weight * aux;
    if (m->ee) m->objective += cad_ee_finish_forward(m, N, &mean); /* with a threshold: the exits' scores */
    if (m->kd) { /* (1 - alpha) CE + the KL term; mean_loss stays the CE, comparable with other runs */
        double kl;
        int rc = cad_distill_after_forward(m, N, &kl, e);
        if (rc) return rc;
        m->objective += kl - (double)m->kd->alpha * mean;
    }
    if (mean_loss) *mean_loss = mean;
    return CAD_OK;
}

/* ---- backward ---------------------------------------------------------------------------- */

static int grad_ready(cad_model *m, int stage, cad_err *e) {
    return m->grad_ready ? m->grad_ready(m->grad_ready_ctx, stage, e) : CAD_OK;
}

int cad_model_backward(cad_model *m, cad_err *e) {
    const cad_model_config *c = &m->cfg;
    const cad_backend *be = m->be;
    if (!m->have_targets)
        return cad_fail(e, CAD_ERR, "backward: the last forward had no targets (call forward with y first)");
    m->have_targets = 0; /* the logits are consumed below */
    int B = m->cur_B, T = m->cur_T, N = B * T, C = c->model_dim, V = c->vocab_size;
    int NH = c->num_heads, KV = c->num_kv_heads, HD = m->head_dim, KVD = m->kv_dim, QKV = m->qkv_dim;
    int H = m->hidden;
    float att_scale = 1.0f / sqrtf((float)HD);
    size_t NC = (size_t)N * C;

    /* head: logits -> d raw logits (in place), then dW_head and d xf */
    int t0 = m->loss_t0, t1 = m->loss_t1;
    if (t1 > 0 && (t0 < 0 || t0 >= t1 || t1 > T))
        return cad_fail(e, CAD_ECONFIG, "backward: loss window [%d, %d) outside the %d positions", t0, t1, T);
    if (t1 <= 0) t0 = 0, t1 = T;
    float ce_w = m->kd ? 1.0f - m->kd->alpha : 1.0f; /* distillation: (1 - alpha) CE; 1 - 0 is exactly 1 */
    be->softcap_xent_backward(be, m->logits, m->logit_lse, m->targets, N, V, c->logit_softcap,
                              ce_w / (float)(B * (t1 - t0)));
    if (m->kd) cad_distill_add_grad(m, N);
    for (int b = 0; t1 - t0 < T && b < B; b++) { /* positions outside the window carry no loss */
        be->memset_zero(be, m->logits + (size_t)b * T * V, (size_t)t0 * V * sizeof(float));
        be->memset_zero(be, m->logits + ((size_t)b * T + t1) * V, (size_t)(T - t1) * V * sizeof(float));
    }
    if (c->embed_dim && c->tie_embeddings) { /* through head_e = xf W, then W */
        int E = c->embed_dim;
        be->matmul(be, 1, 0, V, E, N, 1.0f, m->logits, V, m->head_e, E, 1.0f, PG(m->p_tok_emb), E);
        be->matmul(be, 0, 0, N, E, V, 1.0f, m->logits, V, PD(m->p_tok_emb), E, 0.0f, m->d_e, E);
        be->matmul(be, 1, 0, C, E, N, 1.0f, m->xf, C, m->d_e, E, 1.0f, PG(m->p_embed_proj), E);
        be->matmul(be, 0, 1, N, C, E, 1.0f, m->d_e, E, WD(m->p_embed_proj), E, 0.0f, m->d_xn, C);
    } else {
        int p_head = c->tie_embeddings ? m->p_tok_emb : m->p_lm_head;
        be->matmul(be, 1, 0, V, C, N, 1.0f, m->logits, V, m->xf, C, 1.0f, PG(p_head), C);
        be->matmul(be, 0, 0, N, C, V, 1.0f, m->logits, V, PD(p_head), C, 0.0f, m->d_xn, C);
    }
    lora_bwd(m, NULL, CAD_LORA_HEAD, m->logits, V, m->xf, C, 1.0f, m->d_xn, C, N);
    be->memset_zero(be, m->d_res, NC * sizeof(float));
    be->memset_zero(be, m->d_x0, NC * sizeof(float));
    be->rmsnorm_backward(be, m->d_res, m->d_xn, m->xf, m->rstdf, N, C);
    int rc = grad_ready(m, 0, e);

    for (int l = m->n_virtual - 1; l >= 0 && !rc; l--) {
        cad_model_layer *L = &m->layers[l];
        /* d_res holds d(out[l]); an encoder's output also fed a decoder's skip */
        if (l < m->n_enc) be->axpby(be, NC, 1.0f, m->d_skip[l], 1.0f, m->d_res);
        if (m->ee) cad_ee_backward_block(m, l, N); /* an exit head reading out[l] */
        /* mlp branch */
        be->scale_add_backward(be, m->d_proj, mlp_s(m, L, 1), m->d_res, L->mlp_out, mlp_s(m, L, 0), N, C);
        int par = uses_parallel(m, l);
        if (L->p_router >= 0) {
            cad_moe_backward(m, l, par ? L->xn1 : L->xn2, m->d_proj, m->d_xn, N);
        } else {
            be->relu2_forward(be, m->act, L->hpre, (size_t)N * H, c->mlp_leaky_slope);
            be->matmul(be, 1, 0, C, H, N, 1.0f, m->d_proj, C, m->act, H, 1.0f, PG(L->p_mlp_proj), H);
            be->matmul(be, 0, 0, N, H, C, 1.0f, m->d_proj, C, WD(L->p_mlp_proj), H, 0.0f, m->d_h, H);
            lora_bwd(m, L, CAD_LORA_MLP_PROJ, m->d_proj, C, m->act, H, 1.0f, m->d_h, H, N);
            be->relu2_backward(be, m->d_h, m->d_h, L->hpre, (size_t)N * H, c->mlp_leaky_slope);
            /* LN scale s: the fc read s*xn, so dW takes s and d xn = s * dh W (rmsnorm_backward
             * then reads the unscaled norm output, as its contract wants) */
            be->matmul(be, 1, 0, H, C, N, L->ln_s, m->d_h, H, par ? L->xn1 : L->xn2, C, 1.0f, PG(L->p_fc), C);
            be->matmul(be, 0, 0, N, C, H, L->ln_s, m->d_h, H, WD(L->p_fc), C, 0.0f, m->d_xn, C);
            lora_bwd(m, L, CAD_LORA_FC, m->d_h, H, par ? L->xn1 : L->xn2, C, L->ln_s, m->d_xn, C, N);
        }
        /* sequential: the MLP read the output after attention, so its norm path joins d_res
         * before the attention branch; parallel: both branches take d(out) itself, and the
         * MLP's norm path (through n x, like the attention's) is added after */
        if (!par) be->rmsnorm_backward(be, m->d_res, m->d_xn, L->xn2, L->rstd2, N, C);
        /* attention branch */
        be->scale_add_backward(be, m->d_proj, attn_s(m, L, 1), m->d_res, L->attn_out, attn_s(m, L, 0), N, C);
        if (par) be->rmsnorm_backward(be, m->d_res, m->d_xn, L->xn1, L->rstd1, N, C);
        if (L->mb.is_mamba) {
            cad_mamba_backward(m, L);
            goto attn_norm;
        }
        int xsa = uses_xsa(m, l), gate = L->p_attn_gate >= 0, W = attn_gate_width(c);
        const float *pre_gate = xsa ? L->xsa_y : L->att_y; /* the head outputs the gate scaled */
        be->matmul(be, 1, 0, C, C, N, 1.0f, m->d_proj, C, gate ? L->gated_y : pre_gate, C, 1.0f, PG(L->p_proj), C);
        be->matmul(be, 0, 0, N, C, C, 1.0f, m->d_proj, C, WD(L->p_proj), C, 0.0f, m->d_atty, C);
        lora_bwd(m, L, CAD_LORA_O, m->d_proj, C, gate ? L->gated_y : pre_gate, C, 1.0f, m->d_atty, C, N);
        if (gate) { /* d_atty becomes d(pre_gate) in place; dW_g += s dgate^T x[:W] */
            be->head_gate_backward(be, m->d_atty, C, m->d_gate, m->d_atty, C, pre_gate, C, L->gate_pre, N, NH, HD);
            be->matmul(be, 1, 0, NH, W, N, L->ln_s, m->d_gate, NH, L->xn1, C, 1.0f, PG(L->p_attn_gate), W);
        }
        float *d_att = m->d_atty; /* gradient of the attention output (before XSA) */
        if (xsa) { /* d_proj is free again: it takes d(att_y); d_atty keeps d(xsa_y) for dv below */
            be->xsa_backward(be, m->d_proj, C, NULL, 0, m->d_atty, C, L->att_y, C, L->qkv + C + KVD, QKV, N, NH, KV, HD);
            d_att = m->d_proj;
        }
        be->qk_norm_rope_forward(be, m->q_r, m->k_r, m->rstd_q, m->rstd_k, L->qkv, PD(L->p_q_gain), m->rope_cos,
                                 m->rope_sin, B, T, NH, KV, HD, RMS_EPS);
        be->attention_backward(be, m->d_q, C, m->d_k, KVD, m->d_qkv + C + KVD, QKV, d_att, C, L->att_y, C,
                               L->att_lse, m->q_r, C, m->k_r, KVD, L->qkv + C + KVD, QKV, B, T, NH, KV, HD,
                               att_scale, m->att_scratch, m->att_scratch_bytes);
        if (xsa) /* the value's share of XSA, added to what attention wrote (=) */
            be->xsa_backward(be, NULL, 0, m->d_qkv + C + KVD, QKV, m->d_atty, C, L->att_y, C, L->qkv + C + KVD, QKV, N,
                             NH, KV, HD);
        be->qk_norm_rope_backward(be, m->d_qkv, PG(L->p_q_gain), m->d_q, m->d_k, L->qkv, m->rstd_q, m->rstd_k,
                                  PD(L->p_q_gain), m->rope_cos, m->rope_sin, B, T, NH, KV, HD);
        be->matmul(be, 1, 0, QKV, C, N, L->ln_s, m->d_qkv, QKV, L->xn1, C, 1.0f, PG(L->p_c_q), C);
        be->matmul(be, 0, 0, N, C, QKV, L->ln_s, m->d_qkv, QKV, WD(L->p_c_q), C, 0.0f, m->d_xn, C);
        lora_bwd(m, L, CAD_LORA_Q, m->d_qkv, QKV, L->xn1, C, L->ln_s, m->d_xn, C, N);
        lora_bwd(m, L, CAD_LORA_K, m->d_qkv + C, QKV, L->xn1, C, L->ln_s, m->d_xn, C, N);
        lora_bwd(m, L, CAD_LORA_V, m->d_qkv + C + KVD, QKV, L->xn1, C, L->ln_s, m->d_xn, C, N);
        if (gate) /* the gate read x[:W] too: d xn[:, :W] += s dgate W_g */
            be->matmul(be, 0, 0, N, W, NH, L->ln_s, m->d_gate, NH, PD(L->p_attn_gate), W, 1.0f, m->d_xn, C);
    attn_norm:
        be->rmsnorm_backward(be, m->d_res, m->d_xn, L->xn1, L->rstd1, N, C);
        /* resid_mix: d_res becomes d(xin), x0 collects its share */
        be->resid_mix_backward(be, m->d_res, m->d_x0, PG(L->p_resid_mix), m->d_res, L->xin, m->x0,
                               PD(L->p_resid_mix), N, C);
        if (l == 0) {
            be->axpby(be, NC, 1.0f, m->d_res, 1.0f, m->d_x0); /* block 0's input is x0 itself */
        } else {
            int dec = l - m->n_enc;
            if (dec >= 0 && dec < m->n_skip) /* d skip source; d_res passes to out[l-1] unchanged */
                be->scale_add_backward(be, m->d_skip[skip_source(m, l)], PG(m->p_skip_weights) + (size_t)dec * C,
                                       m->d_res, m->layers[skip_source(m, l)].out,
                                       PD(m->p_skip_weights) + (size_t)dec * C, N, C);
        }
        rc = grad_ready(m, m->n_virtual - l, e);
    }
    if (rc) return rc;
    embed_backward(m);
    rc = grad_ready(m, m->n_virtual + 1, e);
    be->sync(be);
    return rc;
}

int cad_model_grad_stages(const cad_model *m) { return m->n_virtual + 2; }

/* Mirrors the writes in cad_model_backward above (test_engine_dp.c checks it against them by
 * snapshots of the gradients at every stage, over the techniques that write gradients). */
int cad_model_grad_stage(const cad_model *m, int param) {
    int last = m->n_virtual + 1, l;
    if (param == m->p_lm_head && !m->ee) return 0;
    if (sscanf(m->params[param].name, "blocks.%d.", &l) != 1) return last;
    for (int v = 0; v < m->n_virtual; v++) /* the lowest virtual block running physical block l */
        if ((m->recur_on ? virtual_to_physical(&m->cfg, m->loops, v) : v) == l) return m->n_virtual - v;
    return last;
}

/* ---- flops ------------------------------------------------------------------------------- */

double cad_model_bench_flops(const cad_model_config *c, int B, int T) {
    double N = (double)B * T, C = c->model_dim, V = c->vocab_size;
    double HD = (double)c->model_dim / c->num_heads, KVD = c->num_kv_heads * HD, H = (double)c->mlp_mult * C;
    double mlp = 2.0 * C * H; /* micro-MoE: each token runs k experts of H/E, plus the router */
    if (c->mlp_experts) mlp = 2.0 * C * (H / c->mlp_experts) * c->mlp_top_k + C * c->mlp_experts;
    double linear = 2.0 * N * (C * (C + 2 * KVD) + C * C + mlp);               /* per layer */
    double attn = 2.0 * 2.0 * B * c->num_heads * HD * (double)T * (T + 1) / 2.0; /* QK^T and PV, causal */
    double fwd = 2.0 * N * C * V;
    for (int v = 0; v < cad_model_virtual_layers(c); v++) { /* a Mamba block: its projections instead */
        double mlp = 2.0 * N * 2.0 * C * H;
        fwd += (c->mamba_mask >> virtual_to_physical(c, c->recur_loops, v)) & 1 ? cad_mamba_forward_flops(c, N) + mlp : linear + attn;
    }
    return 3.0 * fwd;
}

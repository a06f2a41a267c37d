/*
 * moe.c — micro-MoE forward and backward (moe.h) as backend slot calls plus the host-side
 * routing: softmax, top-k, gates, the expert ordering, the load-balance loss and the router's
 * gradient through softmax and gate renormalisation.
 *
 * Why the routing is on the host: it is N x E numbers, and computing it in one place makes the
 * CPU and CUDA backends route every token identically (a top-k tie or a 1-ulp softmax
 * difference would otherwise send a token to another expert). The price on CUDA is one small
 * copy each way per block; the heavy work (gather, expert matmuls, combine) stays on the device.
 *
 * Not here: the parameter table and init (model.c), the op kernels (backend_cpu.c, kernels/).
 */
#include "engine/moe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct moe_layer {
    /* host, from the forward */
    float *probs;       /* [N, E] softmax of the router logits */
    int32_t *sel;       /* [N, K] chosen experts, by decreasing probability */
    float *gate_h;      /* [N, K] gates */
    int32_t *tok_h;     /* [N*K] token of each expert-ordered row */
    int32_t *pos_h;     /* [N*K] expert-ordered row of (token, j) */
    int *off;           /* [E+1] first row of each expert */
    float *f;           /* [E] share of routing slots */
    /* device */
    int32_t *tok, *pos; /* [N*K] */
    float *gate;        /* [N*K] */
    float *hpre;        /* [N*K, He] expert fc outputs */
    float *eo;          /* [N*K, C] expert outputs */
} moe_layer;

struct cad_moe {
    int E, K, He, N; /* N: the planned maximum rows */
    moe_layer *layers; /* n_virtual_max */
    void **dev;        /* every device allocation, for free */
    int n_dev, cap_dev;
    double aux;        /* last forward's summed load-balance loss */
    /* host scratch */
    float *logits_h, *dlog_h, *dgate_h; /* [N, E], [N, E], [N*K] */
    /* device scratch shared by the layers */
    float *rl, *dlog;    /* [N, E] router logits, their gradient */
    float *xe, *dxe;     /* [N*K, C] gathered inputs, their gradient */
    float *act, *dh;     /* [N*K, He] relu^2 output, gradient of the fc output */
    float *deo, *dgate;  /* [N*K, C], [N*K] */
};

static void *dev_alloc(cad_model *m, struct cad_moe *s, size_t bytes, int *fail) {
    if (*fail) return NULL;
    if (s->n_dev == s->cap_dev) { /* sized exactly in cad_moe_init */
        *fail = 1;
        return NULL;
    }
    void *p = m->be->alloc(m->be, bytes ? bytes : 4);
    if (!p) *fail = 1;
    else s->dev[s->n_dev++] = p;
    return p;
}

void cad_moe_free(cad_model *m) {
    struct cad_moe *s = m->moe;
    if (!s) return;
    for (int i = 0; i < s->n_dev; i++) m->be->free(m->be, s->dev[i]);
    if (s->layers)
        for (int l = 0; l < m->n_virtual_max; l++) {
            moe_layer *L = &s->layers[l];
            free(L->probs), free(L->sel), free(L->gate_h), free(L->tok_h), free(L->pos_h), free(L->off), free(L->f);
        }
    free(s->layers), free(s->dev), free(s->logits_h), free(s->dlog_h), free(s->dgate_h);
    free(s);
    m->moe = NULL;
}

int cad_moe_init(cad_model *m, cad_err *e) {
    const cad_model_config *c = &m->cfg;
    struct cad_moe *s = calloc(1, sizeof *s);
    if (!s) return cad_fail(e, CAD_ENOMEM, "moe: out of host memory");
    m->moe = s;
    s->E = c->mlp_experts, s->K = c->mlp_top_k, s->He = m->hidden / c->mlp_experts;
    s->N = c->max_batch_seqs * c->max_seq_len;
    size_t N = (size_t)s->N, E = (size_t)s->E, NK = N * (size_t)s->K, C = (size_t)c->model_dim, He = (size_t)s->He;
    int nl = m->n_virtual_max;
    s->cap_dev = 8 + 5 * nl;
    s->layers = calloc((size_t)nl, sizeof *s->layers);
    s->dev = calloc((size_t)s->cap_dev, sizeof *s->dev);
    s->logits_h = malloc(N * E * sizeof(float)), s->dlog_h = malloc(N * E * sizeof(float));
    s->dgate_h = malloc(NK * sizeof(float));
    int fail = !s->layers || !s->dev || !s->logits_h || !s->dlog_h || !s->dgate_h;
    for (int l = 0; l < nl && !fail; l++) {
        moe_layer *L = &s->layers[l];
        L->probs = malloc(N * E * sizeof(float)), L->sel = malloc(NK * sizeof(int32_t));
        L->gate_h = malloc(NK * sizeof(float)), L->tok_h = malloc(NK * sizeof(int32_t));
        L->pos_h = malloc(NK * sizeof(int32_t)), L->off = calloc(E + 1, sizeof(int)), L->f = calloc(E, sizeof(float));
        fail = !L->probs || !L->sel || !L->gate_h || !L->tok_h || !L->pos_h || !L->off || !L->f;
    }
    if (fail) {
        cad_moe_free(m);
        return cad_fail(e, CAD_ENOMEM, "moe: out of host memory for the routing tables (%d blocks x %zu slots)", nl, NK);
    }
    int dfail = 0;
    size_t dev_bytes = 0;
#define DEV(ptr, type, n) (dev_bytes += (n) * sizeof(type), (ptr) = (type *)dev_alloc(m, s, (n) * sizeof(type), &dfail))
    DEV(s->rl, float, N * E), DEV(s->dlog, float, N * E), DEV(s->xe, float, NK * C), DEV(s->dxe, float, NK * C);
    DEV(s->act, float, NK * He), DEV(s->dh, float, NK * He), DEV(s->deo, float, NK * C), DEV(s->dgate, float, NK);
    for (int l = 0; l < nl; l++) {
        moe_layer *L = &s->layers[l];
        DEV(L->tok, int32_t, NK), DEV(L->pos, int32_t, NK), DEV(L->gate, float, NK);
        DEV(L->hpre, float, NK * He), DEV(L->eo, float, NK * C);
    }
#undef DEV
    if (dfail) {
        cad_moe_free(m);
        return cad_fail(e, CAD_ENOMEM, "moe: cannot allocate the expert activations (%zu bytes) on %s", dev_bytes,
                        m->be->name);
    }
    return CAD_OK;
}

double cad_moe_last_aux(const cad_model *m) { return m->moe ? m->moe->aux : 0.0; }

#define PD(i) (m->params[(i)].data)
#define PG(i) (m->params[(i)].grad)
#define WD(i) ((float *)cad_model_weights_used(m, (i)))

/* Host routing of one block from the router logits in s->logits_h. */
static double route(struct cad_moe *s, moe_layer *L, int N) {
    int E = s->E, K = s->K;
    int count[CAD_MOE_MAX_EXPERTS] = {0};
    double Psum[CAD_MOE_MAX_EXPERTS] = {0};
    for (int n = 0; n < N; n++) {
        const float *z = s->logits_h + (size_t)n * E;
        float *p = L->probs + (size_t)n * E;
        float mx = z[0];
        for (int i = 1; i < E; i++) mx = z[i] > mx ? z[i] : mx;
        double sum = 0.0;
        for (int i = 0; i < E; i++) sum += exp((double)z[i] - mx);
        for (int i = 0; i < E; i++) p[i] = (float)(exp((double)z[i] - mx) / sum), Psum[i] += p[i];
        /* top-k by selection: the highest remaining p, the lower index on ties */
        int32_t *sel = L->sel + (size_t)n * K;
        unsigned long long taken = 0;
        double topsum = 0.0;
        for (int j = 0; j < K; j++) {
            int best = -1;
            for (int i = 0; i < E; i++)
                if (!(taken >> i & 1) && (best < 0 || p[i] > p[best])) best = i;
            taken |= 1ull << best;
            sel[j] = best;
            topsum += p[best];
            count[best]++;
        }
        for (int j = 0; j < K; j++)
            L->gate_h[(size_t)n * K + j] = K == 1 ? p[sel[0]] : (float)(p[sel[j]] / topsum);
    }
    /* expert order: expert by expert, tokens in order within each */
    L->off[0] = 0;
    for (int i = 0; i < E; i++) L->off[i + 1] = L->off[i] + count[i];
    int fill[CAD_MOE_MAX_EXPERTS];
    for (int i = 0; i < E; i++) fill[i] = L->off[i];
    for (int n = 0; n < N; n++)
        for (int j = 0; j < K; j++) {
            int r = fill[L->sel[(size_t)n * K + j]]++;
            L->tok_h[r] = n;
            L->pos_h[(size_t)n * K + j] = r;
        }
    double aux = 0.0;
    for (int i = 0; i < E; i++) {
        L->f[i] = (float)((double)count[i] / ((double)N * K));
        aux += (double)L->f[i] * (Psum[i] / N);
    }
    return E * aux;
}

void cad_moe_forward(cad_model *m, int l, const float *xn, int N, double *aux) {
    struct cad_moe *s = m->moe;
    const cad_backend *be = m->be;
    const cad_model_layer *ML = &m->layers[l];
    moe_layer *L = &s->layers[l];
    int E = s->E, K = s->K, He = s->He, C = m->cfg.model_dim, NK = N * K;
    float ls = ML->ln_s;
    be->matmul(be, 0, 1, N, E, C, ls, xn, C, PD(ML->p_router), C, 0.0f, s->rl, E);
    be->copy_to_host(be, s->logits_h, s->rl, sizeof(float) * (size_t)N * E);
    double a = route(s, L, N);
    if (l == 0) s->aux = 0.0;
    s->aux += a;
    if (aux) *aux += a;
    be->copy_to_device(be, L->tok, L->tok_h, sizeof(int32_t) * (size_t)NK);
    be->copy_to_device(be, L->pos, L->pos_h, sizeof(int32_t) * (size_t)NK);
    be->copy_to_device(be, L->gate, L->gate_h, sizeof(float) * (size_t)NK);
    be->embedding_forward(be, s->xe, L->tok, xn, NK, C); /* rows gathered into expert order */
    for (int i = 0; i < E; i++) {
        int r0 = L->off[i], cnt = L->off[i + 1] - r0, p_fc = ML->p_router + 1 + 2 * i;
        if (cnt == 0) continue;
        be->matmul(be, 0, 1, cnt, He, C, ls, s->xe + (size_t)r0 * C, C, WD(p_fc), C, 0.0f, L->hpre + (size_t)r0 * He,
                   He);
    }
    be->relu2_forward(be, s->act, L->hpre, (size_t)NK * He, m->cfg.mlp_leaky_slope);
    for (int i = 0; i < E; i++) {
        int r0 = L->off[i], cnt = L->off[i + 1] - r0, p_proj = ML->p_router + 2 + 2 * i;
        if (cnt == 0) continue;
        be->matmul(be, 0, 1, cnt, C, He, 1.0f, s->act + (size_t)r0 * He, He, WD(p_proj), He, 0.0f,
                   L->eo + (size_t)r0 * C, C);
    }
    be->moe_combine_forward(be, ML->mlp_out, L->eo, L->gate, L->pos, N, K, C);
}

/* d logits of one block on the host: through the gates (renormalised or not) and the aux
 * loss's P_i = mean_n p_i, then the softmax. */
static void router_grad(struct cad_moe *s, const moe_layer *L, int N, float aux_w) {
    int E = s->E, K = s->K;
    for (int n = 0; n < N; n++) {
        const float *p = L->probs + (size_t)n * E;
        const int32_t *sel = L->sel + (size_t)n * K;
        const float *dg = s->dgate_h + (size_t)n * K, *g = L->gate_h + (size_t)n * K;
        double dp[CAD_MOE_MAX_EXPERTS];
        for (int i = 0; i < E; i++) dp[i] = (double)aux_w * E * L->f[i] / N;
        if (K == 1) {
            dp[sel[0]] += dg[0];
        } else { /* g_j = p_j / S: dp_i += (dg_i - sum_j dg_j g_j) / S for the chosen i */
            double S = 0.0, dot = 0.0;
            for (int j = 0; j < K; j++) S += p[sel[j]], dot += (double)dg[j] * g[j];
            for (int j = 0; j < K; j++) dp[sel[j]] += ((double)dg[j] - dot) / S;
        }
        double pdp = 0.0;
        for (int i = 0; i < E; i++) pdp += p[i] * dp[i];
        for (int i = 0; i < E; i++) s->dlog_h[(size_t)n * E + i] = (float)(p[i] * (dp[i] - pdp));
    }
}

void cad_moe_backward(cad_model *m, int l, const float *xn, const float *dout, float *dxn, int N) {
    struct cad_moe *s = m->moe;
    const cad_backend *be = m->be;
    const cad_model_layer *ML = &m->layers[l];
    moe_layer *L = &s->layers[l];
    int E = s->E, K = s->K, He = s->He, C = m->cfg.model_dim, NK = N * K;
    float ls = ML->ln_s, slope = m->cfg.mlp_leaky_slope;
    be->moe_combine_backward(be, s->deo, s->dgate, dout, L->eo, L->gate, L->pos, N, K, C);
    be->relu2_forward(be, s->act, L->hpre, (size_t)NK * He, slope);
    be->embedding_forward(be, s->xe, L->tok, xn, NK, C); /* xe is shared by the blocks: gather again */
    for (int i = 0; i < E; i++) {
        int r0 = L->off[i], cnt = L->off[i + 1] - r0, p_proj = ML->p_router + 2 + 2 * i;
        if (cnt == 0) continue;
        const float *deo = s->deo + (size_t)r0 * C;
        be->matmul(be, 1, 0, C, He, cnt, 1.0f, deo, C, s->act + (size_t)r0 * He, He, 1.0f, PG(p_proj), He);
        be->matmul(be, 0, 0, cnt, He, C, 1.0f, deo, C, WD(p_proj), He, 0.0f, s->dh + (size_t)r0 * He, He);
    }
    be->relu2_backward(be, s->dh, s->dh, L->hpre, (size_t)NK * He, slope);
    for (int i = 0; i < E; i++) {
        int r0 = L->off[i], cnt = L->off[i + 1] - r0, p_fc = ML->p_router + 1 + 2 * i;
        if (cnt == 0) continue;
        const float *dh = s->dh + (size_t)r0 * He;
        be->matmul(be, 1, 0, He, C, cnt, ls, dh, He, s->xe + (size_t)r0 * C, C, 1.0f, PG(p_fc), C);
        be->matmul(be, 0, 0, cnt, C, He, ls, dh, He, WD(p_fc), C, 0.0f, s->dxe + (size_t)r0 * C, C);
    }
    be->memset_zero(be, dxn, sizeof(float) * (size_t)N * C);
    be->embedding_backward(be, dxn, s->dxe, L->tok, NK, C); /* rows scattered back to their tokens */
    be->copy_to_host(be, s->dgate_h, s->dgate, sizeof(float) * (size_t)NK);
    router_grad(s, L, N, m->cfg.moe_aux_weight);
    be->copy_to_device(be, s->dlog, s->dlog_h, sizeof(float) * (size_t)N * E);
    be->matmul(be, 1, 0, E, C, N, ls, s->dlog, E, xn, C, 1.0f, PG(ML->p_router), C);
    be->matmul(be, 0, 0, N, C, E, ls, s->dlog, E, PD(ML->p_router), C, 1.0f, dxn, C);
}

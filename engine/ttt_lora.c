/*
 * ttt_lora.c — per-document LoRA test-time training: the adapters, their forward/backward
 * hooks (four matmuls each, on the backend seam: nothing backend-specific) and the score-first
 * evaluation (see ttt_lora.h). Not here: where in the model the hooks run (model.c), SGD TTT
 * over all weights (ttt.c).
 */
#include "engine/ttt_lora.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* the record's optimizer: torch.optim.Adam(betas=(0.9, 0.95), eps=1e-10) */
#define LORA_BETA1 0.9
#define LORA_BETA2 0.95
#define LORA_EPS 1e-10

typedef struct {
    int in, out;
    float *A, *B, *dA, *dB; /* [r, in], [out, r] and their grads (backend) */
} lora_adapter;

struct cad_lora {
    const cad_backend *be;
    int rank, n_blocks;
    unsigned targets;
    lora_adapter *ad;           /* n_blocks * CAD_LORA_NSITES block sites, then the head; in 0 = none */
    size_t n;                   /* floats of the parameter arena */
    float *mem;                 /* backend: params, grads, Adam m, Adam v, init copy (n floats each) */
    float *u, *du;              /* backend scratch (rows, rank): x A^T, its gradient */
    long step;                  /* Adam steps since the reset */
};

static const char *const site_names[] = {"q", "k", "v", "o", "mlp", "head"};

int cad_lora_targets_parse(const char *text, const char *key, unsigned *mask, cad_err *e) {
    *mask = 0;
    const char *p = text ? text : "";
    while (*p) {
        const char *q = p;
        while (*q && *q != ',') q++;
        size_t len = (size_t)(q - p);
        while (len && p[0] == ' ') p++, len--;
        while (len && p[len - 1] == ' ') len--;
        int found = -1;
        for (int i = 0; i < (int)(sizeof site_names / sizeof *site_names); i++)
            if (strlen(site_names[i]) == len && !strncmp(site_names[i], p, len)) found = i;
        if (found < 0)
            return cad_fail(e, CAD_ECONFIG, "%s='%s': unknown target '%.*s' (expected a list of q, k, v, o, mlp, head)",
                            key, text, (int)len, p);
        if (found == 4) *mask |= 1u << CAD_LORA_FC | 1u << CAD_LORA_MLP_PROJ;
        else if (found == 5) *mask |= 1u << CAD_LORA_HEAD;
        else *mask |= 1u << found;
        p = *q ? q + 1 : q;
    }
    if (!*mask) return cad_fail(e, CAD_ECONFIG, "%s='%s': expected at least one of q, k, v, o, mlp, head", key, text);
    return CAD_OK;
}

static lora_adapter *adapter(const cad_lora *lo, int block, int site) {
    if (!(lo->targets & 1u << site)) return NULL;
    return &lo->ad[site == CAD_LORA_HEAD ? (size_t)lo->n_blocks * CAD_LORA_NSITES : (size_t)block * CAD_LORA_NSITES + site];
}

void cad_lora_free(cad_lora *lo) {
    if (!lo) return;
    lo->be->free(lo->be, lo->mem);
    lo->be->free(lo->be, lo->u);
    free(lo->ad);
    free(lo);
}

int cad_lora_create(cad_lora **out, const cad_model *m, const cad_lora_spec *s, cad_err *e) {
    const cad_model_config *c = &m->cfg;
    *out = NULL;
    if (s->rank < 1) return cad_fail(e, CAD_ECONFIG, "ttt_lora_rank=%d: expected >= 1", s->rank);
    if (!s->targets) return cad_fail(e, CAD_ECONFIG, "ttt_lora_targets: no target");
    if ((s->targets & 1u << CAD_LORA_FC) && c->mlp_experts)
        return cad_fail(e, CAD_ECONFIG, "ttt_lora_targets=mlp needs a dense MLP (mlp_experts=%d)", c->mlp_experts);
    if (c->n_exits)
        return cad_fail(e, CAD_ECONFIG, "ttt_mode=lora: early_exit_layers is not supported (the exits' losses are not windowed to the chunk)");
    cad_lora *lo = calloc(1, sizeof *lo);
    int n_ad = c->num_layers * CAD_LORA_NSITES + 1;
    if (!lo || !(lo->ad = calloc((size_t)n_ad, sizeof *lo->ad))) {
        free(lo);
        return cad_fail(e, CAD_ENOMEM, "ttt_lora: out of host memory");
    }
    lo->be = m->be, lo->rank = s->rank, lo->n_blocks = c->num_layers, lo->targets = s->targets;
    int C = c->model_dim, H = m->hidden, KVD = m->kv_dim;
    for (int i = 0; i < n_ad; i++) {
        int site = i == n_ad - 1 ? CAD_LORA_HEAD : i % CAD_LORA_NSITES;
        if (site == CAD_LORA_HEAD && i != n_ad - 1) continue;
        if (!(s->targets & 1u << site)) continue;
        int dims[CAD_LORA_NSITES][2] = {{C, C}, {C, KVD}, {C, KVD}, {C, C}, {C, H}, {H, C}, {C, c->vocab_size}};
        lo->ad[i].in = dims[site][0], lo->ad[i].out = dims[site][1];
        lo->n += (size_t)s->rank * (lo->ad[i].in + lo->ad[i].out);
    }
    const cad_backend *be = m->be;
    size_t rows = (size_t)c->max_batch_seqs * c->max_seq_len;
    lo->mem = be->alloc(be, 5 * lo->n * sizeof(float));
    lo->u = be->alloc(be, 2 * rows * s->rank * sizeof(float));
    float *host = malloc(lo->n * sizeof(float));
    if (!lo->mem || !lo->u || !host) {
        cad_lora_free(lo);
        free(host);
        return cad_fail(e, CAD_ENOMEM, "ttt_lora: cannot allocate %zu adapter floats x 5 and %zu scratch on %s", lo->n,
                        2 * rows * s->rank, be->name);
    }
    lo->du = lo->u + rows * s->rank;
    /* A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming-uniform as the record), B = 0; kept as the init copy */
    uint64_t state = s->seed ^ 0x6c6f7261ull; /* "lora" */
    size_t off = 0;
    memset(host, 0, lo->n * sizeof(float));
    for (int i = 0; i < n_ad; i++) {
        lora_adapter *a = &lo->ad[i];
        if (!a->in) continue;
        size_t na = (size_t)s->rank * a->in, nb = (size_t)s->rank * a->out;
        cad_model_fill_uniform(&state, host + off, na, 1.0 / sqrt((double)a->in));
        a->A = lo->mem + off, a->B = a->A + na;
        a->dA = a->A + lo->n, a->dB = a->B + lo->n;
        off += na + nb;
    }
    be->copy_to_device(be, lo->mem + 4 * lo->n, host, lo->n * sizeof(float));
    free(host);
    cad_lora_reset(lo);
    *out = lo;
    return CAD_OK;
}

void cad_lora_reset(cad_lora *lo) {
    const cad_backend *be = lo->be;
    be->copy(be, lo->mem, lo->mem + 4 * lo->n, lo->n * sizeof(float));
    be->memset_zero(be, lo->mem + lo->n, 3 * lo->n * sizeof(float));
    lo->step = 0;
}

float *cad_lora_params(cad_lora *lo, size_t *n_floats) {
    *n_floats = lo->n;
    return lo->mem;
}
float *cad_lora_grads(cad_lora *lo) { return lo->mem + lo->n; }

void cad_lora_apply(const cad_lora *lo, const cad_backend *be, int block, int site, const float *x, int ldx,
                    float alpha, float *y, int ldy, int N) {
    const lora_adapter *a = adapter(lo, block, site);
    if (!a) return;
    int r = lo->rank;
    be->matmul(be, 0, 1, N, r, a->in, alpha, x, ldx, a->A, a->in, 0.0f, lo->u, r);
    be->matmul(be, 0, 1, N, a->out, r, 1.0f, lo->u, r, a->B, r, 1.0f, y, ldy);
}

void cad_lora_grad(cad_lora *lo, const cad_backend *be, int block, int site, const float *dy, int lddy,
                   const float *x, int ldx, float alpha, float *dx, int lddx, int N) {
    const lora_adapter *a = adapter(lo, block, site);
    if (!a) return;
    int r = lo->rank;
    /* u = alpha x A^T (recomputed: N x r is cheap next to the projection itself) */
    be->matmul(be, 0, 1, N, r, a->in, alpha, x, ldx, a->A, a->in, 0.0f, lo->u, r);
    be->matmul(be, 1, 0, a->out, r, N, 1.0f, dy, lddy, lo->u, r, 1.0f, a->dB, r);    /* dB += dy^T u */
    be->matmul(be, 0, 0, N, r, a->out, 1.0f, dy, lddy, a->B, r, 0.0f, lo->du, r);    /* du = dy B */
    be->matmul(be, 1, 0, r, a->in, N, alpha, lo->du, r, x, ldx, 1.0f, a->dA, a->in); /* dA += alpha du^T x */
    if (dx) be->matmul(be, 0, 0, N, a->in, r, alpha, lo->du, r, a->A, a->in, 1.0f, dx, lddx); /* dx += alpha du A */
}

/* ---- the evaluation ---------------------------------------------------------------------- */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One Adam step of the adapters on the gradient of the last forward's windowed loss. */
static int lora_step(cad_model *m, cad_lora *lo, double lr, int t0, int t1, cad_err *e) {
    const cad_backend *be = m->be;
    be->memset_zero(be, lo->mem + lo->n, lo->n * sizeof(float));
    m->loss_t0 = t0, m->loss_t1 = t1;
    int rc = cad_model_backward(m, e);
    m->loss_t0 = m->loss_t1 = 0;
    if (rc) return rc;
    lo->step++;
    float bc1 = (float)(1.0 - pow(LORA_BETA1, (double)lo->step)), bc2 = (float)(1.0 - pow(LORA_BETA2, (double)lo->step));
    be->adam_update(be, lo->mem, lo->mem + lo->n, lo->mem + 2 * lo->n, lo->mem + 3 * lo->n, lo->n, (float)lr,
                    (float)LORA_BETA1, (float)LORA_BETA2, (float)LORA_EPS, bc1, bc2);
    return CAD_OK;
}

/* Document [s, s + P] (its P targets are tokens s+1..s+P): chunks scored, then trained on. */
static int lora_document(cad_model *m, cad_lora *lo, const uint16_t *tokens, long s, long P, int L,
                         const cad_lora_spec *ls, const cad_bpb_luts *luts, int32_t *xbuf, int32_t *ybuf, float *nll,
                         double sums[3], cad_err *e) {
    long nc = (P + ls->chunk - 1) / ls->chunk;
    if (lo) cad_lora_reset(lo);
    for (long ci = 0; ci < nc; ci++) {
        long cs = ci * ls->chunk, ce = cs + ls->chunk < P ? cs + ls->chunk : P;
        /* the window ends at the chunk's nominal end, so where the document ends (the next BOS, a
         * later token) never changes a score's context: >= L - chunk tokens before the chunk */
        long ws = cs + ls->chunk - L > 0 ? cs + ls->chunk - L : 0;
        int T = (int)(ce - ws), first = (int)(cs - ws);
        const uint16_t *src = tokens + s + ws;
        for (int i = 0; i < T; i++) {
            if (src[i] >= luts->size || src[i + 1] >= luts->size)
                return cad_fail(e, CAD_EFORMAT, "val token id %d >= LUT size %d", src[i] > src[i + 1] ? src[i] : src[i + 1],
                                luts->size);
            xbuf[i] = src[i], ybuf[i] = src[i + 1];
        }
        float mean;
        if (cad_model_forward(m, xbuf, ybuf, 1, T, &mean, e))
            return cad_wrap(e, "ttt_lora: document at token %ld, chunk %ld", s, ci);
        for (int i = first; i < T; i++) { /* score first */
            sums[0] += (double)m->token_loss[i];
            sums[1] += 1.0;
            sums[2] += (double)cad_bpb_token_bytes(luts, xbuf[i], ybuf[i]);
            if (nll) nll[s + ws + i] = m->token_loss[i];
        }
        if (!lo || ci == nc - 1) continue; /* the document's last chunk is never trained on */
        for (int ep = 0; ep < ls->epochs; ep++) {
            if (ep > 0 && cad_model_forward(m, xbuf, ybuf, 1, T, &mean, e))
                return cad_wrap(e, "ttt_lora: document at token %ld, chunk %ld, epoch %d", s, ci, ep);
            int rc = lora_step(m, lo, ls->lr, first, T, e);
            if (rc) return cad_wrap(e, "ttt_lora: document at token %ld, chunk %ld", s, ci);
        }
    }
    return CAD_OK;
}

int cad_eval_ttt_lora(cad_model *m, const uint16_t *tokens, long n_tokens, const cad_bpb_luts *luts,
                      const cad_eval_spec *spec, const cad_lora_spec *ls, int32_t *xbuf, int32_t *ybuf,
                      float *nll, cad_eval_result *r, cad_ttt_progress_fn progress, void *ud, cad_err *e) {
    double t0 = now_ms();
    memset(r, 0, sizeof *r);
    const int L = spec->seq_len;
    if (ls->chunk < 1 || ls->chunk > L)
        return cad_fail(e, CAD_ECONFIG, "ttt_lora_chunk=%d: expected 1..the eval sequence length (%d)", ls->chunk, L);
    if (ls->epochs < 0) return cad_fail(e, CAD_ECONFIG, "ttt_epochs=%d: expected >= 0", ls->epochs);
    long N, n_win;
    int rc = cad_eval_sliding_plan(m, n_tokens, spec, L, &N, &n_win, &r->partial, e);
    if (rc) return rc;
    cad_lora *lo = NULL;
    if (ls->epochs > 0 && (rc = cad_lora_create(&lo, m, ls, e))) return rc;
    m->lora = lo;
    long n_docs = 0; /* documents: the stream start and every later BOS among the targets */
    for (long t = 0; t < N; t++) n_docs += t == 0 || tokens[t] == CAD_BOS_ID;
    double sums[3] = {0, 0, 0};
    long doc = 0;
    for (long s = 0; s < N && !rc; doc++) {
        long end = s + 1; /* the next BOS (a target of this document), or the end of the targets */
        while (end < N && tokens[end] != CAD_BOS_ID) end++;
        rc = lora_document(m, lo, tokens, s, end - s, L, ls, luts, xbuf, ybuf, nll, sums, e);
        s = end;
        if (!rc && progress) progress(ud, doc, n_docs, sums, now_ms() - t0);
    }
    m->lora = NULL;
    cad_lora_free(lo);
    if (rc) return rc;
    r->n_seqs = n_docs; /* documents */
    if ((rc = cad_eval_result_finish(r, sums, e))) return rc;
    r->eval_ms = now_ms() - t0;
    return CAD_OK;
}

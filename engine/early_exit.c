/*
 * early_exit.c — exit heads (early_exit.h): forward losses and confidences, the exit policy at
 * evaluation, and the heads' gradients, as backend slot calls on the model's head buffers.
 *
 * The confidence max_v softmax(z)_v = exp(max z - lse) needs each row's largest logit; no slot
 * returns a row maximum, so with a threshold set the exit logits come to the host (N x V
 * floats per exit, evaluation only).
 *
 * Not here: the main head (model.c), the trainer's reporting.
 */
#include "engine/early_exit.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cad_early_exit {
    int N, V;
    float threshold;        /* >= 1: off */
    float *loss_h;          /* [n_exits, N] per-token NLL of each exit, last forward */
    float *conf_h;          /* [n_exits, N] max softmax probability (threshold on only) */
    float *logits_h, *lse_h; /* [N, V], [N] staging, allocated when a threshold is first set */
    double tokens, depth_sum;
};

int cad_ee_init(cad_model *m, cad_err *e) {
    const cad_model_config *c = &m->cfg;
    struct cad_early_exit *x = calloc(1, sizeof *x);
    if (!x) return cad_fail(e, CAD_ENOMEM, "early exit: out of host memory");
    m->ee = x;
    x->N = c->max_batch_seqs * c->max_seq_len, x->V = c->vocab_size, x->threshold = 1.0f;
    size_t n = (size_t)c->n_exits * (size_t)x->N;
    x->loss_h = malloc(n * sizeof(float)), x->conf_h = malloc(n * sizeof(float));
    if (!x->loss_h || !x->conf_h) {
        cad_ee_free(m);
        return cad_fail(e, CAD_ENOMEM, "early exit: out of host memory for %d exits x %d tokens", c->n_exits, x->N);
    }
    return CAD_OK;
}

void cad_ee_free(cad_model *m) {
    struct cad_early_exit *x = m->ee;
    if (!x) return;
    free(x->loss_h), free(x->conf_h), free(x->logits_h), free(x->lse_h);
    free(x);
    m->ee = NULL;
}

void cad_model_set_exit_threshold(cad_model *m, float threshold) {
    struct cad_early_exit *x = m->ee;
    if (!x) return;
    x->tokens = x->depth_sum = 0.0;
    if (threshold < 1.0f && !x->logits_h) { /* on first use: N x V host floats */
        x->logits_h = malloc((size_t)x->N * x->V * sizeof(float));
        x->lse_h = malloc((size_t)x->N * sizeof(float));
        if (!x->logits_h || !x->lse_h) { /* no staging, no exits: the full-depth score stays exact */
            free(x->logits_h), free(x->lse_h);
            x->logits_h = x->lse_h = NULL;
            threshold = 1.0f;
        }
    }
    x->threshold = threshold;
}

void cad_model_exit_stats(const cad_model *m, double *tokens, double *depth_sum) {
    *tokens = m->ee ? m->ee->tokens : 0.0;
    *depth_sum = m->ee ? m->ee->depth_sum : 0.0;
}

static int exit_index(const cad_model *m, int l) {
    for (int k = 0; k < m->cfg.n_exits; k++)
        if (m->cfg.exit_depths[k] == l + 1) return k;
    return -1;
}

static const float *head_weights(const cad_model *m) {
    return m->params[m->cfg.tie_embeddings ? m->p_tok_emb : m->p_lm_head].data;
}

/* logits (softcapped in place), lse and per-token NLL of the exit head over out[l]. */
static void exit_head(cad_model *m, int l, int N) {
    const cad_backend *be = m->be;
    int C = m->cfg.model_dim, V = m->cfg.vocab_size;
    be->rmsnorm_forward(be, m->xf, m->rstdf, m->layers[l].out, N, C, FLT_EPSILON);
    be->matmul(be, 0, 1, N, V, C, 1.0f, m->xf, C, head_weights(m), C, 0.0f, m->logits, V);
    be->softcap_xent_forward(be, m->logits, m->logit_lse, m->loss_dev, m->targets, N, V, m->cfg.logit_softcap);
}

void cad_ee_after_block(cad_model *m, int l, int N) {
    struct cad_early_exit *x = m->ee;
    int k = exit_index(m, l);
    if (!x || k < 0) return;
    const cad_backend *be = m->be;
    int V = m->cfg.vocab_size;
    exit_head(m, l, N);
    be->copy_to_host(be, x->loss_h + (size_t)k * x->N, m->loss_dev, sizeof(float) * (size_t)N);
    if (x->threshold >= 1.0f) return;
    be->copy_to_host(be, x->logits_h, m->logits, sizeof(float) * (size_t)N * V);
    be->copy_to_host(be, x->lse_h, m->logit_lse, sizeof(float) * (size_t)N);
    float *conf = x->conf_h + (size_t)k * x->N;
    for (int n = 0; n < N; n++) {
        const float *z = x->logits_h + (size_t)n * V;
        float mx = z[0];
        for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        conf[n] = expf(mx - x->lse_h[n]);
    }
}

double cad_ee_finish_forward(cad_model *m, int N, float *mean_loss) {
    struct cad_early_exit *x = m->ee;
    if (!x) return 0.0;
    const cad_model_config *c = &m->cfg;
    double exits = 0.0;
    for (int k = 0; k < c->n_exits; k++) {
        double s = 0.0;
        for (int n = 0; n < N; n++) s += x->loss_h[(size_t)k * x->N + n];
        exits += s / N;
    }
    if (x->threshold < 1.0f) {
        double sum = 0.0;
        for (int n = 0; n < N; n++) {
            int depth = m->n_virtual;
            for (int k = 0; k < c->n_exits; k++)
                if (x->conf_h[(size_t)k * x->N + n] >= x->threshold) {
                    m->token_loss[n] = x->loss_h[(size_t)k * x->N + n];
                    depth = c->exit_depths[k];
                    break;
                }
            sum += m->token_loss[n];
            x->depth_sum += depth;
        }
        x->tokens += N;
        if (mean_loss) *mean_loss = (float)(sum / N);
    }
    return c->early_exit_weight * exits / c->n_exits;
}

void cad_ee_backward_block(cad_model *m, int l, int N) {
    if (!m->ee || exit_index(m, l) < 0) return;
    const cad_backend *be = m->be;
    const cad_model_config *c = &m->cfg;
    int C = c->model_dim, V = c->vocab_size;
    int p_head = c->tie_embeddings ? m->p_tok_emb : m->p_lm_head;
    exit_head(m, l, N); /* recomputed: N x V logits per exit are not kept from the forward */
    be->softcap_xent_backward(be, m->logits, m->logit_lse, m->targets, N, V, c->logit_softcap,
                              c->early_exit_weight / ((float)c->n_exits * (float)N));
    be->matmul(be, 1, 0, V, C, N, 1.0f, m->logits, V, m->xf, C, 1.0f, m->params[p_head].grad, C);
    be->matmul(be, 0, 0, N, C, V, 1.0f, m->logits, V, head_weights(m), C, 0.0f, m->d_xn, C);
    be->rmsnorm_backward(be, m->d_res, m->d_xn, m->xf, m->rstdf, N, C);
}

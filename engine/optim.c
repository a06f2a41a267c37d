/*
 * optim.c — Muon + Adam + grad clipping + lr_mul/momentum schedules (see optim.h), written
 * against the backend slots only.
 * Not here: parameter grouping policy, the loop that calls these.
 */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t cad_muon_ns_scratch_floats(int rows, int cols) {
    size_t k = (size_t)(rows < cols ? rows : cols);
    return 2 * (size_t)rows * (size_t)cols + 2 * k * k;
}

/* The NS5 coefficients of train_gpt.py's zeropower_via_newtonschulz5. */
#define NS_A 3.4445f
#define NS_B (-4.7750f)
#define NS_C 2.0315f

void cad_muon_newton_schulz(const cad_backend *be, float *out, const float *G, int rows, int cols,
                            int steps, float *scratch) {
    size_t rc = (size_t)rows * (size_t)cols;
    int k = rows < cols ? rows : cols;
    float *X = scratch, *X2 = scratch + rc, *A = scratch + 2 * rc, *Bm = A + (size_t)k * k;
    be->copy(be, X, G, rc * sizeof(float));
    /* X /= X.norm() + eps */
    double norm = sqrt(be->sumsq(be, X, rc));
    be->scale(be, rc, (float)(1.0 / (norm + 1e-7)), X);
    for (int it = 0; it < steps; it++) {
        if (rows <= cols) {
            /* A = X Xᵀ [k,k]; B = b A + c A A; X = a X + B X */
            be->matmul(be, 0, 1, k, k, cols, 1.0f, X, cols, X, cols, 0.0f, A, k);
            be->copy(be, Bm, A, (size_t)k * k * sizeof(float));
            be->matmul(be, 0, 0, k, k, k, NS_C, A, k, A, k, NS_B, Bm, k);
            be->copy(be, X2, X, rc * sizeof(float));
            be->matmul(be, 0, 0, rows, cols, k, 1.0f, Bm, k, X, cols, NS_A, X2, cols);
        } else {
            /* Tall matrix: train_gpt.py transposes (X' = Xᵀ) and iterates X' ← aX' + B'X' with
             * B' from A' = X'X'ᵀ = XᵀX. Untransposed that is X ← aX + X B' (B' symmetric). */
            be->matmul(be, 1, 0, k, k, rows, 1.0f, X, cols, X, cols, 0.0f, A, k);
            be->copy(be, Bm, A, (size_t)k * k * sizeof(float));
            be->matmul(be, 0, 0, k, k, k, NS_C, A, k, A, k, NS_B, Bm, k);
            be->copy(be, X2, X, rc * sizeof(float));
            be->matmul(be, 0, 0, rows, cols, k, 1.0f, X, cols, Bm, k, NS_A, X2, cols);
        }
        float *t = X;
        X = X2;
        X2 = t;
    }
    be->copy(be, out, X, rc * sizeof(float));
}

int cad_optim_init(cad_optim *o, const cad_backend *be, const cad_optim_hparams *hp, int n,
                   const cad_optim_param *params, cad_err *e) {
    memset(o, 0, sizeof *o);
    o->be = be;
    o->hp = *hp;
    o->n = n;
    o->params = calloc((size_t)(n > 0 ? n : 1), sizeof *o->params);
    if (!o->params) return cad_fail(e, CAD_ENOMEM, "optimizer: out of memory for %d params", n);
    memcpy(o->params, params, (size_t)n * sizeof *params);
    size_t state = 0, ns = 0;
    for (int i = 0; i < n; i++) {
        cad_optim_param *p = &o->params[i];
        if (p->kind == CAD_OPT_MUON) {
            if (p->rows <= 0 || p->cols <= 0 || (size_t)p->rows * (size_t)p->cols != p->numel)
                return cad_fail(e, CAD_ECONFIG,
                                "optimizer: Muon param '%s' needs a 2-D shape, got %dx%d for %zu "
                                "elements", p->name, p->rows, p->cols, p->numel);
            state += p->numel; /* momentum buffer */
            /* u (Nesterov update) + NS scratch + NS output */
            size_t need = 2 * p->numel + cad_muon_ns_scratch_floats(p->rows, p->cols);
            if (need > ns) ns = need;
        } else {
            state += 2 * p->numel;
        }
    }
    o->state_floats = state;
    o->ns_floats = ns;
    if (state) {
        o->state = be->alloc(be, state * sizeof(float));
        if (!o->state)
            return cad_fail(e, CAD_ENOMEM, "optimizer: cannot allocate %zu bytes of state",
                            state * sizeof(float));
    }
    if (ns) {
        o->ns_scratch = be->alloc(be, ns * sizeof(float));
        if (!o->ns_scratch)
            return cad_fail(e, CAD_ENOMEM, "optimizer: cannot allocate %zu bytes of Muon scratch",
                            ns * sizeof(float));
    }
    float *s = o->state;
    for (int i = 0; i < n; i++) {
        cad_optim_param *p = &o->params[i];
        p->m = s;
        s += p->numel;
        if (p->kind == CAD_OPT_ADAM) {
            p->v = s;
            s += p->numel;
        } else {
            p->v = NULL;
        }
    }
    return CAD_OK;
}

int cad_optim_init_model(cad_optim *o, cad_model *m, const cad_config *c, cad_err *e) {
    cad_optim_param *ps = calloc((size_t)(m->n_params > 0 ? m->n_params : 1), sizeof *ps);
    if (!ps) return cad_fail(e, CAD_ENOMEM, "optimizer: out of memory");
    int n = 0;
    for (int i = 0; i < m->n_params; i++) {
        cad_param *p = &m->params[i];
        if (p->numel == 0) continue; /* train_gpt.py: skip_weights only when numel > 0 */
        cad_optim_param *q = &ps[n++];
        q->name = p->name;
        q->numel = (size_t)p->numel;
        q->data = p->data;
        q->grad = p->grad;
        q->rows = (int)p->shape[0];
        q->cols = p->ndim >= 2 ? (int)(p->numel / p->shape[0]) : 1;
        switch (p->group) {
        case CAD_PG_EMBED:
            q->kind = CAD_OPT_ADAM;
            q->base_lr = c->tie_embeddings ? c->tied_embed_lr : c->embed_lr;
            break;
        case CAD_PG_HEAD: q->kind = CAD_OPT_ADAM; q->base_lr = c->head_lr; break;
        case CAD_PG_MATRIX: q->kind = CAD_OPT_MUON; q->base_lr = c->matrix_lr; break;
        default: q->kind = CAD_OPT_ADAM; q->base_lr = c->scalar_lr; break;
        }
    }
    cad_optim_hparams hp = {c->beta1, c->beta2, c->adam_eps, (int)c->muon_backend_steps};
    int rc = cad_optim_init(o, m->be, &hp, n, ps, e);
    free(ps);
    return rc;
}

void cad_optim_free(cad_optim *o) {
    if (o->be) {
        o->be->free(o->be, o->state);
        o->be->free(o->be, o->ns_scratch);
    }
    free(o->params);
    memset(o, 0, sizeof *o);
}

size_t cad_optim_bytes(const cad_optim *o) { return (o->state_floats + o->ns_floats) * sizeof(float); }

void cad_optim_reset(cad_optim *o) {
    if (o->state) o->be->memset_zero(o->be, o->state, o->state_floats * sizeof(float));
    o->adam_step = 0;
}

double cad_optim_clip_grad_norm(cad_optim *o, double max_norm) {
    double total = 0;
    for (int i = 0; i < o->n; i++) total += o->be->sumsq(o->be, o->params[i].grad, o->params[i].numel);
    total = sqrt(total);
    double coef = max_norm / (total + 1e-6);
    if (coef > 1.0) coef = 1.0;
    /* torch multiplies by the clamped coefficient unconditionally (a no-op at 1.0). */
    if (coef < 1.0)
        for (int i = 0; i < o->n; i++) o->be->scale(o->be, o->params[i].numel, (float)coef, o->params[i].grad);
    return total;
}

void cad_optim_step(cad_optim *o, double lr_mul, double momentum) {
    const cad_backend *be = o->be;
    int any_adam = 0;
    for (int i = 0; i < o->n; i++) any_adam |= o->params[i].kind == CAD_OPT_ADAM;
    double bc1 = 1, bc2 = 1;
    if (any_adam) {
        o->adam_step++;
        bc1 = 1.0 - pow(o->hp.beta1, (double)o->adam_step);
        bc2 = 1.0 - pow(o->hp.beta2, (double)o->adam_step);
    }
    for (int i = 0; i < o->n; i++) {
        cad_optim_param *p = &o->params[i];
        double lr = p->base_lr * lr_mul;
        if (p->kind == CAD_OPT_ADAM) {
            be->adam_update(be, p->data, p->grad, p->m, p->v, p->numel, (float)lr,
                            (float)o->hp.beta1, (float)o->hp.beta2, (float)o->hp.adam_eps,
                            (float)bc1, (float)bc2);
            continue;
        }
        /* Muon: buf = μ buf + g; u = g + μ buf (Nesterov); u = NS5(u); p -= lr √max(1,r/c) u */
        float *u = o->ns_scratch, *upd = u + p->numel, *scratch = upd + p->numel;
        be->axpby(be, p->numel, 1.0f, p->grad, (float)momentum, p->m);
        be->copy(be, u, p->grad, p->numel * sizeof(float));
        be->axpby(be, p->numel, (float)momentum, p->m, 1.0f, u);
        cad_muon_newton_schulz(be, upd, u, p->rows, p->cols, o->hp.muon_backend_steps, scratch);
        double ratio = (double)p->rows / (double)p->cols;
        double scale = sqrt(ratio > 1.0 ? ratio : 1.0);
        /* train_gpt.py scales g in place, then p.add_(g, alpha=-lr) */
        if (scale != 1.0) be->scale(be, p->numel, (float)scale, upd);
        be->axpby(be, p->numel, (float)(-lr), upd, 1.0f, p->data);
    }
}

double cad_lr_mul(const cad_config *c, long step, double elapsed_ms) {
    if (c->warmdown_iters <= 0) return 1.0;
    if (c->max_wallclock_seconds <= 0) {
        long start = c->iterations - c->warmdown_iters;
        if (start < 0) start = 0;
        if (start <= step && step < c->iterations) {
            double v = (double)(c->iterations - step) / (double)(c->warmdown_iters > 1 ? c->warmdown_iters : 1);
            return v > 0.0 ? v : 0.0;
        }
        return 1.0;
    }
    double max_ms = 1000.0 * c->max_wallclock_seconds;
    double step_ms = elapsed_ms / (double)(step > 1 ? step : 1);
    double warmdown_ms = (double)c->warmdown_iters * step_ms;
    double remaining = max_ms - elapsed_ms;
    if (remaining < 0) remaining = 0;
    return remaining <= warmdown_ms ? remaining / (warmdown_ms > 1e-9 ? warmdown_ms : 1e-9) : 1.0;
}

double cad_muon_momentum_at(const cad_config *c, long step) {
    double frac = 1.0;
    if (c->muon_momentum_warmup_steps > 0) {
        frac = (double)step / (double)c->muon_momentum_warmup_steps;
        if (frac > 1.0) frac = 1.0;
    }
    return (1 - frac) * c->muon_momentum_warmup_start + frac * c->muon_momentum;
}

/*
 * optim.c — Muon + Adam + grad clipping + lr_mul/momentum schedules (see optim.h), written
 * against the backend slots only.
 * Not here: parameter grouping policy, the loop that calls these.
 */
#include "engine/optim.h"

#include "engine/collective.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* X, X2 (rows*cols each), A, B (k*k each) and the norm's sum of squares (one double, 2 floats:
 * the offset before it is even, so it stays 8-byte aligned in 64-byte aligned scratch). */
size_t cad_muon_ns_scratch_floats(int rows, int cols) {
    size_t k = (size_t)(rows < cols ? rows : cols);
    return 2 * (size_t)rows * (size_t)cols + 2 * k * k + 2;
}

/* The NS5 coefficients of train_gpt.py's zeropower_via_newtonschulz5. */
#define NS_A 3.4445f
#define NS_B (-4.7750f)
#define NS_C 2.0315f

/* Polar Express (PR #1344, the records' PolarNS): one minimax (a, b, c) per iteration. */
static const float polar_express[CAD_POLAR_EXPRESS_STEPS][3] = {
    {8.156554524902461f, -22.48329292557795f, 15.878769915207462f},
    {4.042929935166739f, -2.808917465908714f, 0.5000178451051316f},
    {3.8916678022926607f, -2.772484153217685f, 0.5060648178503393f},
    {3.285753657755655f, -2.3681294933425376f, 0.46449024233003106f},
    {2.3465413258596377f, -1.7097828382687081f, 0.42323551169305323f},
};

int cad_muon_ns_parse(const char *name) {
    if (strcmp(name, "quintic") == 0) return CAD_NS_QUINTIC;
    if (strcmp(name, "polar_express") == 0) return CAD_NS_POLAR_EXPRESS;
    return -1;
}

/* Members of a shape group orthogonalised in one batch: all of them while their scratch stays
 * within NS_BATCH_FLOATS (128 MiB), so a deep model does not double its memory for it. */
#define NS_BATCH_FLOATS ((size_t)1 << 25)
static int ns_batch_max(size_t per_member_floats, int group_len) {
    size_t fit = NS_BATCH_FLOATS / per_member_floats;
    if (fit < 1) fit = 1;
    return (size_t)group_len < fit ? group_len : (int)fit;
}

/* `steps` Newton–Schulz iterations on `count` same-shape matrices stacked in X (each already
 * normalised), using X2 (count*rows*cols), A and Bm (count*k*k floats each) as scratch. Returns
 * the buffer holding the result (X or X2). A = X Xᵀ and A·A = A Aᵀ are Gram products (half the
 * FLOPs of a matmul, exactly symmetric); the whole batch goes through each slot at once. */
static float *ns_iterate(const cad_backend *be, float *X, float *X2, float *A, float *Bm, int rows,
                         int cols, int count, int steps, int ns) {
    long long rc = (long long)rows * cols;
    int k = rows < cols ? rows : cols;
    long long kk = (long long)k * k;
    for (int it = 0; it < steps; it++) {
        /* (a, b, c) of this iteration; config validation keeps polar_express within its table */
        int pe = ns == CAD_NS_POLAR_EXPRESS && it < CAD_POLAR_EXPRESS_STEPS;
        float NA = pe ? polar_express[it][0] : NS_A, NB = pe ? polar_express[it][1] : NS_B;
        float NC = pe ? polar_express[it][2] : NS_C;
        /* wide: A = X Xᵀ; tall: A = XᵀX (train_gpt.py's transposed iteration, untransposed) */
        be->gram_batched(be, rows > cols, k, rows > cols ? rows : cols, 1.0f, X, cols, rc, 0.0f, A,
                         k, kk, count);
        /* B = b A + c A·A */
        be->copy(be, Bm, A, (size_t)(kk * count) * sizeof(float));
        be->gram_batched(be, 0, k, k, NC, A, k, kk, NB, Bm, k, kk, count);
        /* wide: X = a X + B X; tall: X = a X + X B (B symmetric) */
        be->copy(be, X2, X, (size_t)(rc * count) * sizeof(float));
        if (rows <= cols)
            be->matmul_batched(be, 0, 0, rows, cols, k, 1.0f, Bm, k, kk, X, cols, rc, NA, X2, cols,
                               rc, count);
        else
            be->matmul_batched(be, 0, 0, rows, cols, k, 1.0f, X, cols, rc, Bm, k, kk, NA, X2, cols,
                               rc, count);
        float *t = X;
        X = X2;
        X2 = t;
    }
    return X;
}

void cad_muon_newton_schulz(const cad_backend *be, float *out, const float *G, int rows, int cols,
                            int steps, float *scratch) {
    cad_muon_newton_schulz_ns(be, out, G, rows, cols, steps, CAD_NS_QUINTIC, scratch);
}

void cad_muon_newton_schulz_ns(const cad_backend *be, float *out, const float *G, int rows, int cols,
                               int steps, int ns, float *scratch) {
    size_t rc = (size_t)rows * (size_t)cols;
    int k = rows < cols ? rows : cols;
    float *X = scratch, *X2 = scratch + rc, *A = scratch + 2 * rc, *Bm = A + (size_t)k * k;
    double *sq = (double *)(void *)(Bm + (size_t)k * k);
    be->copy(be, X, G, rc * sizeof(float));
    /* X /= X.norm() + eps */
    be->normalize_batched(be, X, rc, (long long)rc, 1, 1e-7, sq);
    X = ns_iterate(be, X, X2, A, Bm, rows, cols, 1, steps, ns);
    be->copy(be, out, X, rc * sizeof(float));
}

/* The moving average starts from the weights as they are now. */
static void ema_restart(cad_optim *o) {
    for (int i = 0; i < o->n; i++)
        if (o->params[i].ema) o->be->copy(o->be, o->params[i].ema, o->params[i].data, o->params[i].numel * sizeof(float));
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
    o->muon_order = calloc((size_t)(n > 0 ? n : 1), sizeof *o->muon_order);
    o->group_len = calloc((size_t)(n > 0 ? n : 1), sizeof *o->group_len);
    if (!o->muon_order || !o->group_len) return cad_fail(e, CAD_ENOMEM, "optimizer: out of memory for %d params", n);
    int placed = 0;
    for (int i = 0; i < n; i++) {
        cad_optim_param *p = &o->params[i];
        if (p->kind == CAD_OPT_MUON) {
            if (p->rows <= 0 || p->cols <= 0 || (size_t)p->rows * (size_t)p->cols != p->numel)
                return cad_fail(e, CAD_ECONFIG,
                                "optimizer: Muon param '%s' needs a 2-D shape, got %dx%d for %zu "
                                "elements", p->name, p->rows, p->cols, p->numel);
            state += p->numel; /* momentum buffer */
        } else {
            state += 2 * p->numel;
        }
        if (hp->ema_decay > 0) state += p->numel;
    }
    /* shape groups in order of first appearance, members in parameter order */
    for (int i = 0; i < n; i++) {
        cad_optim_param *p = &o->params[i];
        int seen = 0;
        for (int j = 0; j < placed && !seen; j++) {
            cad_optim_param *q = &o->params[o->muon_order[j]];
            seen = q->rows == p->rows && q->cols == p->cols;
        }
        if (p->kind != CAD_OPT_MUON || seen) continue;
        int len = 0;
        for (int j = i; j < n; j++) {
            cad_optim_param *q = &o->params[j];
            if (q->kind == CAD_OPT_MUON && q->rows == p->rows && q->cols == p->cols) o->muon_order[placed + len++] = j;
        }
        o->group_len[o->n_groups++] = len;
        placed += len;
        size_t per = cad_muon_ns_scratch_floats(p->rows, p->cols); /* X, X2, A, B per member */
        size_t need = (size_t)ns_batch_max(per, len) * per;
        if (need > ns) ns = need;
    }
    o->state_floats = state;
    o->ns_floats = ns;
    if (state) {
        o->state = be->alloc(be, state * sizeof(float));
        if (!o->state)
            return cad_fail(e, CAD_ENOMEM, "optimizer: cannot allocate %zu bytes of state",
                            state * sizeof(float));
    }
    if (hp->muon_row_norm) {
        int max_rows = 1;
        for (int i = 0; i < n; i++)
            if (o->params[i].kind == CAD_OPT_MUON && o->params[i].rows > max_rows) max_rows = o->params[i].rows;
        o->row_scratch = be->alloc(be, (size_t)max_rows * sizeof(float));
        if (!o->row_scratch) return cad_fail(e, CAD_ENOMEM, "optimizer: cannot allocate the MuonEq-R row norms");
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
        p->ema = NULL;
        if (hp->ema_decay > 0) {
            p->ema = s;
            s += p->numel;
        }
    }
    ema_restart(o);
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
            q->wd = c->embed_wd;
            break;
        case CAD_PG_HEAD: q->kind = CAD_OPT_ADAM; q->base_lr = c->head_lr; q->wd = c->embed_wd; break;
        case CAD_PG_MATRIX: q->kind = CAD_OPT_MUON; q->base_lr = c->matrix_lr; q->wd = c->muon_wd; break;
        default: q->kind = CAD_OPT_ADAM; q->base_lr = c->scalar_lr; q->wd = c->scalar_wd; break;
        }
    }
    cad_optim_hparams hp = {c->beta1, c->beta2, c->adam_eps, (int)c->muon_backend_steps, c->ema_decay,
                            c->muon_row_norm, cad_muon_ns_parse(c->muon_ns)};
    int rc = cad_optim_init(o, m->be, &hp, n, ps, e);
    free(ps);
    return rc;
}

void cad_optim_free(cad_optim *o) {
    if (o->be) {
        o->be->free(o->be, o->state);
        o->be->free(o->be, o->ns_scratch);
        o->be->free(o->be, o->row_scratch);
        o->be->free(o->be, o->dp_upd);
    }
    free(o->dp_off);
    free(o->params);
    free(o->muon_order);
    free(o->group_len);
    memset(o, 0, sizeof *o);
}

size_t cad_optim_bytes(const cad_optim *o) { return (o->state_floats + o->ns_floats) * sizeof(float); }

void cad_optim_reset(cad_optim *o) {
    if (o->state) o->be->memset_zero(o->be, o->state, o->state_floats * sizeof(float));
    o->adam_step = 0;
    ema_restart(o);
}

void cad_optim_load_ema(cad_optim *o) {
    for (int i = 0; i < o->n; i++)
        if (o->params[i].ema) o->be->copy(o->be, o->params[i].data, o->params[i].ema, o->params[i].numel * sizeof(float));
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

/* Data parallel: Muon member j (in muon_order) belongs to rank j % world; its update lives at
 * dp_off[j] of dp_upd, the members of rank 0 first, then rank 1's, ..., so each rank's share is
 * one contiguous segment for the all-gather. Planned on first use. */
static int dp_plan(cad_optim *o, int world, cad_err *e) {
    if (o->dp_world == world) return CAD_OK;
    int placed = 0;
    for (int g = 0; g < o->n_groups; g++) placed += o->group_len[g];
    free(o->dp_off);
    o->dp_off = calloc((size_t)placed + 1, sizeof *o->dp_off);
    if (!o->dp_off) return cad_fail(e, CAD_ENOMEM, "optimizer: out of memory");
    size_t total = 0;
    for (int r = 0; r < world && r < CAD_COLL_MAX_WORLD; r++) {
        o->dp_seg_off[r] = total;
        for (int j = r; j < placed; j += world) {
            o->dp_off[j] = total;
            total += o->params[o->muon_order[j]].numel;
        }
        o->dp_seg_len[r] = total - o->dp_seg_off[r];
    }
    o->be->free(o->be, o->dp_upd);
    o->dp_upd = total ? o->be->alloc(o->be, total * sizeof(float)) : NULL;
    if (total && !o->dp_upd)
        return cad_fail(e, CAD_ENOMEM, "optimizer: cannot allocate %zu bytes of sharded Muon updates", total * sizeof(float));
    o->dp_world = world;
    return CAD_OK;
}

/* cad_optim_step; with coll at world > 1 the Newton-Schulz work is shared out (optim.h). */
static int optim_step(cad_optim *o, double lr_mul, double momentum, cad_coll *coll, cad_err *e) {
    const cad_backend *be = o->be;
    int world = cad_coll_world(coll), rank = cad_coll_rank(coll);
    if (world > 1) {
        int rc = dp_plan(o, world, e);
        if (rc) return rc;
    }
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
        if (p->kind != CAD_OPT_ADAM) continue;
        if (p->wd > 0) be->scale(be, p->numel, (float)(1.0 - p->base_lr * lr_mul * p->wd), p->data);
        be->adam_update(be, p->data, p->grad, p->m, p->v, p->numel, (float)(p->base_lr * lr_mul),
                        (float)o->hp.beta1, (float)o->hp.beta2, (float)o->hp.adam_eps, (float)bc1,
                        (float)bc2);
    }
    /* Muon, one shape group at a time: every member's Nesterov update is stacked in X, the
     * group is orthogonalised as one batch, then each member takes its update. Sharded: every
     * rank keeps every momentum buffer (so checkpoints hold them all) but stacks only its own
     * members; their scaled updates go to dp_upd, and after the all-gather every rank applies
     * all of them with the same operations as the unsharded step. */
    const int *group = o->muon_order;
    int gfirst = 0; /* position of the group's first member in muon_order */
    for (int g = 0; g < o->n_groups; gfirst += o->group_len[g], group += o->group_len[g], g++) {
        const cad_optim_param *p0 = &o->params[group[0]];
        int rows = p0->rows, cols = p0->cols, k = rows < cols ? rows : cols;
        size_t rc = p0->numel;
        int bmax = ns_batch_max(cad_muon_ns_scratch_floats(rows, cols), o->group_len[g]);
        for (int first = 0; first < o->group_len[g]; first += bmax) {
            const int *member = group + first;
            int count = o->group_len[g] - first < bmax ? o->group_len[g] - first : bmax;
            int own[count > 0 ? count : 1], n_own = 0; /* batch positions this rank orthogonalises */
            for (int j = 0; j < count; j++) {
                cad_optim_param *p = &o->params[member[j]];
                /* buf = μ buf + g */
                be->axpby(be, rc, 1.0f, p->grad, (float)momentum, p->m);
                if (world == 1 || (gfirst + first + j) % world == rank) own[n_own++] = j;
            }
            float *X = o->ns_scratch, *X2 = X + (size_t)n_own * rc, *A = X2 + (size_t)n_own * rc;
            float *Bm = A + (size_t)n_own * k * k;
            double *sq = (double *)(void *)(Bm + (size_t)n_own * k * k); /* n_own doubles */
            for (int q = 0; q < n_own; q++) {
                cad_optim_param *p = &o->params[member[own[q]]];
                float *u = X + (size_t)q * rc;
                /* u = g + μ buf (Nesterov); u /= ‖u‖ + eps after the loop */
                be->copy(be, u, p->grad, rc * sizeof(float));
                be->axpby(be, rc, (float)momentum, p->m, 1.0f, u);
                /* MuonEq-R: rows to equal norm. rmsnorm scales each row to norm sqrt(cols)
                 * instead of 1 (and its eps sits inside the mean): the Frobenius normalisation
                 * below removes the common factor, so the result is the row-normalised update. */
                if (o->hp.muon_row_norm) be->rmsnorm_forward(be, u, o->row_scratch, u, rows, cols, FLT_EPSILON);
            }
            /* every owned member's u /= ‖u‖ + eps at once, the norms staying in backend memory:
             * the step queues without waiting on the device (a host-read norm per matrix did) */
            float *R = X;
            if (n_own) {
                be->normalize_batched(be, X, rc, (long long)rc, n_own, 1e-7, sq);
                R = ns_iterate(be, X, X2, A, Bm, rows, cols, n_own, o->hp.muon_backend_steps, o->hp.muon_ns);
            }
            double ratio = (double)rows / (double)cols;
            double scale = sqrt(ratio > 1.0 ? ratio : 1.0);
            for (int q = 0; q < n_own; q++) {
                cad_optim_param *p = &o->params[member[own[q]]];
                float *upd = R + (size_t)q * rc;
                /* p -= lr √max(1,r/c) u; train_gpt.py scales g in place, then p.add_(g, alpha=-lr) */
                if (scale != 1.0) be->scale(be, rc, (float)scale, upd);
                if (world > 1) {
                    be->copy(be, o->dp_upd + o->dp_off[gfirst + first + own[q]], upd, rc * sizeof(float));
                    continue;
                }
                if (p->wd > 0) be->scale(be, rc, (float)(1.0 - p->base_lr * lr_mul * p->wd), p->data);
                be->axpby(be, rc, (float)(-(p->base_lr * lr_mul)), upd, 1.0f, p->data);
            }
        }
    }
    if (world > 1) {
        int rc = cad_coll_allgather(coll, o->dp_upd, o->dp_seg_off, o->dp_seg_len, e);
        if (rc) return rc;
        for (int j = 0; j < gfirst; j++) {
            cad_optim_param *p = &o->params[o->muon_order[j]];
            if (p->wd > 0) be->scale(be, p->numel, (float)(1.0 - p->base_lr * lr_mul * p->wd), p->data);
            be->axpby(be, p->numel, (float)(-(p->base_lr * lr_mul)), o->dp_upd + o->dp_off[j], 1.0f, p->data);
        }
    }
    if (o->hp.ema_decay > 0 && o->ema_inactive) { /* before ema_start_frac: track the weights */
        ema_restart(o);
    } else if (o->hp.ema_decay > 0) { /* ema = d ema + (1 - d) p, after the step (the records' order) */
        float d = (float)o->hp.ema_decay;
        for (int i = 0; i < o->n; i++) be->axpby(be, o->params[i].numel, 1.0f - d, o->params[i].data, d, o->params[i].ema);
    }
    return CAD_OK;
}

void cad_optim_step(cad_optim *o, double lr_mul, double momentum) {
    /* world 1 never fails: no collective, no allocation */
    optim_step(o, lr_mul, momentum, NULL, NULL);
}

int cad_optim_step_dp(cad_optim *o, double lr_mul, double momentum, cad_coll *coll, cad_err *e) {
    return optim_step(o, lr_mul, momentum, coll, e);
}

void cad_optim_set_ema_active(cad_optim *o, int active) { o->ema_inactive = !active; }

int cad_lr_schedule_parse(const char *name) {
    if (strcmp(name, "linear_warmdown") == 0) return CAD_LR_LINEAR_WARMDOWN;
    if (strcmp(name, "cosine") == 0) return CAD_LR_COSINE;
    return -1;
}

double cad_train_frac(const cad_config *c, long step, double elapsed_ms) {
    if (c->max_wallclock_seconds > 0) return elapsed_ms / (1000.0 * c->max_wallclock_seconds);
    return (double)step / (double)(c->iterations > 0 ? c->iterations : 1);
}

/* train_gpt.py's lr_mul, unchanged. */
static double linear_warmdown_mul(const cad_config *c, long step, double elapsed_ms) {
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

double cad_lr_mul(const cad_config *c, long step, double elapsed_ms) {
    double lo = c->min_lr_frac;
    if (cad_lr_schedule_parse(c->lr_schedule) == CAD_LR_COSINE) {
        double f = cad_train_frac(c, step, elapsed_ms);
        f = f < 0.0 ? 0.0 : f > 1.0 ? 1.0 : f;
        return lo + (1.0 - lo) * 0.5 * (1.0 + cos(M_PI * f));
    }
    double mul = linear_warmdown_mul(c, step, elapsed_ms);
    return mul > lo ? mul : lo; /* at the default 0 this is the warmdown value itself (it is >= 0) */
}

double cad_muon_momentum_at(const cad_config *c, long step) {
    double frac = 1.0;
    if (c->muon_momentum_warmup_steps > 0) {
        frac = (double)step / (double)c->muon_momentum_warmup_steps;
        if (frac > 1.0) frac = 1.0;
    }
    return (1 - frac) * c->muon_momentum_warmup_start + frac * c->muon_momentum;
}

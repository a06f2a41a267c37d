/*
 * dp_buckets.c — the gradient bucket plan and its launch from the backward's readiness hook
 * (see dp_buckets.h). Not here: how a bucket is reduced (collective.c), the model's readiness
 * stages (model.c).
 */
#include "engine/dp_buckets.h"

#include <stdlib.h>
#include <string.h>

static int push(cad_dp_buckets *d, cad_dp_bucket b, cad_err *e) {
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 16;
        cad_dp_bucket *nb = realloc(d->b, (size_t)cap * sizeof *nb);
        if (!nb) return cad_fail(e, CAD_ENOMEM, "data parallel: out of memory planning gradient buckets");
        d->b = nb;
        d->cap = cap;
    }
    d->b[d->n++] = b;
    return CAD_OK;
}

int cad_dp_buckets_plan(cad_dp_buckets *d, const cad_model *m, double bucket_mb, cad_err *e) {
    if (!(bucket_mb > 0))
        return cad_fail(e, CAD_ECONFIG, "dp_bucket_mb=%g: a bucket plan needs a positive size", bucket_mb);
    double cap_floats = bucket_mb * 1048576.0 / sizeof(float);
    d->n = 0;
    cad_dp_bucket cur = {0, 0, 0, -1, -1};
    for (int i = m->n_params - 1; i >= 0; i--) {
        size_t off = (size_t)(m->params[i].grad - m->grad_mem), n = (size_t)m->params[i].numel;
        int stage = cad_model_grad_stage(m, i);
        if (cur.n && (double)(cur.n + n) > cap_floats) { /* full: this tensor starts the next one */
            int rc = push(d, cur, e);
            if (rc) return rc;
            cur.n = 0;
        }
        if (!cur.n) {
            cur = (cad_dp_bucket){off, n, stage, i, i};
            continue;
        }
        CAD_ASSERT(off + n == cur.off); /* the arena holds the parameters back to back */
        cur.off = off;
        cur.n += n;
        cur.first = i;
        if (stage > cur.stage) cur.stage = stage;
    }
    return cur.n ? push(d, cur, e) : CAD_OK;
}

/* The backward reached `stage`: queue its buckets, in plan order. */
static int on_grad_ready(void *ctx, int stage, cad_err *e) {
    cad_dp_buckets *d = ctx;
    const cad_backend *be = d->m->be;
    for (int k = 0; k < d->n; k++) {
        if (d->b[k].stage != stage) continue;
        float *g = d->m->grad_mem + d->b[k].off;
        if (d->scale != 1.0f) be->scale(be, d->b[k].n, d->scale, g);
        int rc = cad_coll_allreduce_mean_async(d->coll, g, d->b[k].n, e);
        if (rc) return rc;
        d->launched++;
    }
    return CAD_OK;
}

void cad_dp_buckets_arm(cad_dp_buckets *d, cad_model *m, cad_coll *coll, float scale) {
    d->m = m;
    d->coll = coll;
    d->scale = scale;
    d->launched = 0;
    m->grad_ready = on_grad_ready;
    m->grad_ready_ctx = d;
}

int cad_dp_buckets_finish(cad_dp_buckets *d, cad_err *e) {
    if (!d->m) return CAD_OK;
    d->m->grad_ready = NULL;
    d->m->grad_ready_ctx = NULL;
    int launched = d->launched;
    d->m = NULL;
    int rc = cad_coll_wait(d->coll, e);
    if (!rc && launched != d->n)
        rc = cad_fail(e, CAD_ERR, "data parallel: %d of %d gradient buckets were launched by the backward", launched, d->n);
    return rc;
}

void cad_dp_buckets_free(cad_dp_buckets *d) {
    free(d->b);
    memset(d, 0, sizeof *d);
}

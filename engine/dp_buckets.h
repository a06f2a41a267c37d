/*
 * dp_buckets.h — data-parallel gradient buckets all-reduced while the backward still runs
 * (dp_bucket_mb): which contiguous slices of the gradient arena go together, when each is
 * complete, and launching each one's all-reduce (mean) through the collective's overlapped
 * queue the moment the backward reaches that point.
 *
 * Plan: the parameters in reverse arena order (the last blocks' gradients are the first the
 * backward finishes), greedily packed into buckets of at most dp_bucket_mb MiB; a tensor never
 * splits, so one bigger than the cap is a bucket of its own. A bucket is ready at the latest
 * readiness stage of its tensors (cad_model_grad_stage). Buckets of one stage launch in plan
 * order, stages in backward order, so every rank queues the same sequence.
 *
 * Bits: each bucket is scaled by 1/accum and reduced exactly as the flat path scales and reduces
 * the whole arena (element-wise, the same rank order), so a bucketed step is bit-identical to a
 * flat one at the same world size.
 *
 * Not here: the collective itself (collective.h), the micro-step loop (train.c).
 */
#ifndef CADDIE_DP_BUCKETS_H
#define CADDIE_DP_BUCKETS_H

#include "engine/collective.h"
#include "engine/model.h"
#include "engine/status.h"

#include <stddef.h>

typedef struct cad_dp_bucket {
    size_t off, n; /* floats of the gradient arena: [off, off + n) */
    int stage;     /* launched when the backward reaches this readiness stage */
    int first, last; /* parameter indices it holds, first <= last */
} cad_dp_bucket;

typedef struct cad_dp_buckets {
    cad_dp_bucket *b;
    int n, cap;
    /* while armed (cad_dp_buckets_arm .. _finish) */
    cad_model *m;
    cad_coll *coll;
    float scale;   /* 1/accum, or 1: no scaling (as the flat path, which scales only accum > 1) */
    int launched;  /* buckets queued so far */
} cad_dp_buckets;

/* (Re)build the plan for m's current parameters and recurrence schedule; bucket_mb > 0 (MiB of
 * fp32 gradients). Cheap (one pass over the parameters), so the trainer redoes it every step. */
int cad_dp_buckets_plan(cad_dp_buckets *d, const cad_model *m, double bucket_mb, cad_err *e);
/* Hook the plan into m's next backward: each bucket is scaled by `scale` (unless 1) and queued
 * on coll when the backward reaches its stage. */
void cad_dp_buckets_arm(cad_dp_buckets *d, cad_model *m, cad_coll *coll, float scale);
/* Unhook, and wait for every queued bucket (cad_coll_wait); returns the first failure. After a
 * successful backward every bucket was launched. */
int cad_dp_buckets_finish(cad_dp_buckets *d, cad_err *e);
void cad_dp_buckets_free(cad_dp_buckets *d);

#endif

/*
 * k_distill_kl.cuh — knowledge distillation's fused KL term, one block per token row
 * (backend.h distill_kl): from the student's and the teacher's softcapped logits at temperature
 * T, the row's alpha*T^2*KL(teacher || student) and, in place over the teacher's row, the
 * gradient w.r.t. the student's raw logits.
 *
 * Three passes over the row: the two maxima (of z/T), the two exp sums, then each thread reads
 * its own teacher elements and overwrites them with the gradient while summing the KL; the
 * barriers inside the block reductions separate the passes, so no teacher value is read after
 * another thread wrote it. libm expf/logf and a float KL sum versus the CPU reference's double
 * sum: rounding-level differences inside the tests' NMSE bound.
 *
 * Not here: the cross-entropy (k_softcap_xent.cuh) and the sum of the two gradients (axpby).
 */
#ifndef CADDIE_K_DISTILL_KL_CUH
#define CADDIE_K_DISTILL_KL_CUH

#include "kernels/k_common.cuh"

#define K_KD_BLOCK 256

typedef struct k_distill_kl_params {
    float *tlogits;
    float *loss;
    const float *zs;
    int N, V;
    float inv_temp, inv_cap, gscale, lscale;
} k_distill_kl_params;

__global__ void k_distill_kl(k_distill_kl_params p) {
    __shared__ float sh[32];
    float *zt = p.tlogits + (size_t)blockIdx.x * p.V;
    const float *z = p.zs + (size_t)blockIdx.x * p.V;
    float ms = -INFINITY, mt = -INFINITY;
    for (int j = threadIdx.x; j < p.V; j += blockDim.x) {
        ms = fmaxf(ms, z[j] * p.inv_temp);
        mt = fmaxf(mt, zt[j] * p.inv_temp);
    }
    ms = k_block_max(ms, sh);
    mt = k_block_max(mt, sh);
    float ss = 0.0f, st = 0.0f;
    for (int j = threadIdx.x; j < p.V; j += blockDim.x) {
        ss += expf(z[j] * p.inv_temp - ms);
        st += expf(zt[j] * p.inv_temp - mt);
    }
    ss = k_block_sum(ss, sh);
    st = k_block_sum(st, sh);
    float ls = ms + logf(ss), lt = mt + logf(st), kl = 0.0f;
    for (int j = threadIdx.x; j < p.V; j += blockDim.x) {
        float lp = zt[j] * p.inv_temp - lt, lq = z[j] * p.inv_temp - ls, pr = expf(lp), th = z[j] * p.inv_cap;
        kl += pr * (lp - lq);
        zt[j] = p.gscale * (expf(lq) - pr) * (1.0f - th * th);
    }
    kl = k_block_sum(kl, sh);
    if (threadIdx.x == 0) p.loss[blockIdx.x] = p.lscale * kl;
}
EMU_KERNEL(k_distill_kl, k_distill_kl_params)

static void k_distill_kl_launch(cudaStream_t s, float *tlogits, float *loss, const float *zs, int N, int V, float temp,
                                float alpha, float cap, float dloss) {
    if (N <= 0) return;
    k_distill_kl_params p = {tlogits, loss, zs, N, V, 1.0f / temp, 1.0f / cap, dloss * alpha * temp,
                             alpha * temp * temp};
    KLAUNCH(k_distill_kl, N, k_row_block(V, K_KD_BLOCK), 0, s, p);
    K_CHECK_LAUNCH();
}

#endif

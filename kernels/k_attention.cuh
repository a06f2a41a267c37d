/*
 * k_attention.cuh — causal self-attention with GQA (backend.h attention_*): cuBLAS
 * strided-batched GEMMs for the score and value products, small kernels for the causal
 * softmax and its backward.
 *
 * Per query head h (kv head g = h / (NH/KV)), batched over the B sequences:
 *   forward   S = scale * Q_h K_g^T            (gemm, [B][T,T] in scratch)
 *             P = causal softmax(S), lse        (k_attention_forward_softmax, in place)
 *             Y_h = P V_g                       (gemm, into y's head columns)
 *   backward  S, P again (k_attention_backward_probs from lse: probabilities are never stored)
 *             dV_g (+)= P^T dY_h, dP = dY_h V_g^T, dS = P * (dP - rowsum(dY_h*Y_h)) * scale,
 *             dQ_h = dS K_g, dK_g (+)= dS^T Q_h  (the first head of a group writes, the others
 *             accumulate: the group's heads run in order, so dk/dv are deterministic)
 * The full T x T products are computed and the upper triangle masked (2x the causal FLOPs;
 * simple and cuBLAS-fast). Scratch: S and dP, 2*B*T*T floats.
 *
 * Not here: q/k norm and RoPE (k_qk_norm_rope.cuh), the projections (model code via matmul).
 */
#ifndef CADDIE_K_ATTENTION_CUH
#define CADDIE_K_ATTENTION_CUH

#include "kernels/k_common.cuh"
#include "kernels/k_gemm.cuh"

#define K_ATT_BLOCK 128

typedef struct k_attention_params {
    float *S;          /* [B][T,T] scores -> probabilities */
    float *dP;         /* backward: [B][T,T] dP -> dS */
    float *lse;        /* [B,NH,T] */
    const float *dy, *y;
    int lddy, ldy;
    int B, T, NH, HD, h;
    float scale;
} k_attention_params;

/* grid (T, B): row t of sequence b. Masked entries (j > t) become exact zeros. */
__global__ void k_attention_forward_softmax(k_attention_params p) {
    __shared__ float sh[32];
    int t = blockIdx.x, b = blockIdx.y, nv = t + 1;
    float *s = p.S + ((size_t)b * p.T + t) * p.T;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < nv; j += blockDim.x) mx = fmaxf(mx, s[j]);
    mx = k_block_max(mx, sh);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < nv; j += blockDim.x) {
        float e = expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    sum = k_block_sum(sum, sh);
    float inv = 1.0f / sum;
    for (int j = threadIdx.x; j < p.T; j += blockDim.x) s[j] = j < nv ? s[j] * inv : 0.0f;
    if (threadIdx.x == 0) p.lse[((size_t)b * p.NH + p.h) * p.T + t] = mx + logf(sum);
}
EMU_KERNEL(k_attention_forward_softmax, k_attention_params)

/* grid (T, B): P = exp(S - lse) below the diagonal, 0 above. */
__global__ void k_attention_backward_probs(k_attention_params p) {
    int t = blockIdx.x, b = blockIdx.y;
    float *s = p.S + ((size_t)b * p.T + t) * p.T;
    float l = p.lse[((size_t)b * p.NH + p.h) * p.T + t];
    for (int j = threadIdx.x; j < p.T; j += blockDim.x) s[j] = j <= t ? expf(s[j] - l) : 0.0f;
}
EMU_KERNEL(k_attention_backward_probs, k_attention_params)

/* grid (T, B): dS = P * (dP - D) * scale with D = dy_row . y_row (= sum_j P dP). */
__global__ void k_attention_backward_dscores(k_attention_params p) {
    __shared__ float sh[32];
    int t = blockIdx.x, b = blockIdx.y;
    size_t row = (size_t)b * p.T + t;
    const float *dyr = p.dy + row * p.lddy + (size_t)p.h * p.HD;
    const float *yr = p.y + row * p.ldy + (size_t)p.h * p.HD;
    float dd = 0.0f;
    for (int d = threadIdx.x; d < p.HD; d += blockDim.x) dd += dyr[d] * yr[d];
    dd = k_block_sum(dd, sh);
    const float *s = p.S + row * p.T;
    float *dp = p.dP + row * p.T;
    for (int j = threadIdx.x; j < p.T; j += blockDim.x)
        dp[j] = j <= t ? s[j] * (dp[j] - dd) * p.scale : 0.0f;
}
EMU_KERNEL(k_attention_backward_dscores, k_attention_params)

static size_t k_attention_scratch_bytes(int B, int T) {
    return 2 * (size_t)B * T * T * sizeof(float);
}

static void k_attention_forward_launch(cudaStream_t s, cublasHandle_t blas, float *y, int ldy,
                                       float *lse, const float *q, int ldq, const float *k,
                                       int ldk, const float *v, int ldv, int B, int T, int NH,
                                       int KV, int HD, float scale, void *scratch,
                                       size_t scratch_bytes) {
    if (B <= 0 || T <= 0) return;
    K_ASSERT(KV > 0 && NH % KV == 0 && T <= 65535);
    K_ASSERT(scratch_bytes >= (size_t)B * T * T * sizeof(float));
    int group = NH / KV;
    long long tt = (long long)T * T;
    float *S = (float *)scratch;
    for (int h = 0; h < NH; h++) {
        int g = h / group;
        k_gemm_rm(blas, 0, 1, T, T, HD, scale, q + (size_t)h * HD, ldq, (long long)T * ldq,
                  k + (size_t)g * HD, ldk, (long long)T * ldk, 0.0f, S, T, tt, B);
        k_attention_params p = {S, NULL, lse, NULL, NULL, 0, 0, B, T, NH, HD, h, scale};
        KLAUNCH(k_attention_forward_softmax, KDIM3(T, B, 1), k_row_block(T, K_ATT_BLOCK), 0, s, p);
        K_CHECK_LAUNCH();
        k_gemm_rm(blas, 0, 0, T, HD, T, 1.0f, S, T, tt, v + (size_t)g * HD, ldv,
                  (long long)T * ldv, 0.0f, y + (size_t)h * HD, ldy, (long long)T * ldy, B);
    }
}

static void k_attention_backward_launch(cudaStream_t s, cublasHandle_t blas, float *dq, int lddq,
                                        float *dk, int lddk, float *dv, int lddv, const float *dy,
                                        int lddy, const float *y, int ldy, const float *lse,
                                        const float *q, int ldq, const float *k, int ldk,
                                        const float *v, int ldv, int B, int T, int NH, int KV,
                                        int HD, float scale, void *scratch, size_t scratch_bytes) {
    if (B <= 0 || T <= 0) return;
    K_ASSERT(KV > 0 && NH % KV == 0 && T <= 65535);
    K_ASSERT(scratch_bytes >= k_attention_scratch_bytes(B, T));
    int group = NH / KV;
    long long tt = (long long)T * T;
    float *S = (float *)scratch, *dP = S + (size_t)B * T * T;
    for (int h = 0; h < NH; h++) {
        int g = h / group;
        float beta_kv = h % group == 0 ? 0.0f : 1.0f; /* first head of the group writes */
        const float *qh = q + (size_t)h * HD, *kg = k + (size_t)g * HD, *vg = v + (size_t)g * HD;
        const float *dyh = dy + (size_t)h * HD;
        k_gemm_rm(blas, 0, 1, T, T, HD, scale, qh, ldq, (long long)T * ldq, kg, ldk,
                  (long long)T * ldk, 0.0f, S, T, tt, B);
        k_attention_params p = {S, dP, (float *)lse, dy, y, lddy, ldy, B, T, NH, HD, h, scale};
        KLAUNCH(k_attention_backward_probs, KDIM3(T, B, 1), k_row_block(T, K_ATT_BLOCK), 0, s, p);
        K_CHECK_LAUNCH();
        /* dV_g (+)= P^T dY_h */
        k_gemm_rm(blas, 1, 0, T, HD, T, 1.0f, S, T, tt, dyh, lddy, (long long)T * lddy, beta_kv,
                  dv + (size_t)g * HD, lddv, (long long)T * lddv, B);
        /* dP = dY_h V_g^T */
        k_gemm_rm(blas, 0, 1, T, T, HD, 1.0f, dyh, lddy, (long long)T * lddy, vg, ldv,
                  (long long)T * ldv, 0.0f, dP, T, tt, B);
        KLAUNCH(k_attention_backward_dscores, KDIM3(T, B, 1), k_row_block(T, K_ATT_BLOCK), 0, s, p);
        K_CHECK_LAUNCH();
        /* dQ_h = dS K_g ; dK_g (+)= dS^T Q_h */
        k_gemm_rm(blas, 0, 0, T, HD, T, 1.0f, dP, T, tt, kg, ldk, (long long)T * ldk, 0.0f,
                  dq + (size_t)h * HD, lddq, (long long)T * lddq, B);
        k_gemm_rm(blas, 1, 0, T, HD, T, 1.0f, dP, T, tt, qh, ldq, (long long)T * ldq, beta_kv,
                  dk + (size_t)g * HD, lddk, (long long)T * lddk, B);
    }
}

#endif

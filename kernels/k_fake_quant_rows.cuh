/*
 * k_fake_quant_rows.cuh — QAT's quantise-dequantise of a weight matrix (backend.h
 * fake_quant_rows): each row quantised and decoded exactly as the artifact does it.
 *
 * One thread per row, walking the row in column order: the ternary scale is a double sum whose
 * value depends on the order of the additions, and the export (engine/export.c) sums in column
 * order, so a parallel reduction could differ from the artifact in the last bit. The clip needs
 * only the two largest |w| (see engine/backend_cpu.c), and every product/sum below is rounded on
 * its own (K_FQ_MUL/K_FQ_ADD): nvcc would otherwise contract a*b+c into an FMA and lose the
 * bit-exactness with the CPU export. Runs once per weight matrix per training forward, so the
 * row-serial walk costs little next to the matmuls that read the result.
 *
 * Not here: the export's clip search / SDClip (QAT is restricted to the plain quantile clip).
 */
#ifndef CADDIE_K_FAKE_QUANT_ROWS_CUH
#define CADDIE_K_FAKE_QUANT_ROWS_CUH

#include "kernels/k_common.cuh"

#include <math.h>
#include <string.h>

#ifdef __CUDACC__
#define K_FQ_MUL(a, b) __fmul_rn((a), (b))
#define K_FQ_ADD(a, b) __fadd_rn((a), (b))
#else
#define K_FQ_MUL(a, b) ((a) * (b))
#define K_FQ_ADD(a, b) ((a) + (b))
#endif

/* engine/export.h's INT8 clip quantile and CAD_QUANT_TERNARY (kernels include no engine header
 * but backend.h) */
#define K_FQ_CLIP_Q 0.9999984
#define K_FQ_TERNARY 1

typedef struct k_fake_quant_rows_params {
    float *out;
    const float *w;
    int rows, cols, bits;
} k_fake_quant_rows_params;

/* fp32 -> fp16 bits, round to nearest even (engine/safetensors.c cad_f32_to_f16) and back:
 * written out rather than __float2half_rn so the emulator runs the same code. */
static __device__ __forceinline__ float k_fq_f16_round(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, exp = (x >> 23) & 0xffu, man = x & 0x7fffffu, h;
    int e = (int)exp - 127 + 15;
    if (exp == 0xff) h = sign | 0x7c00u | (man ? 0x200u : 0);
    else if (e >= 0x1f) h = sign | 0x7c00u;
    else if (e <= 0) {
        if (e < -10) h = sign;
        else {
            man |= 0x800000u;
            int shift = 14 - e;
            uint32_t v = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
            if (rem > half || (rem == half && (v & 1u))) v++;
            h = sign | v;
        }
    } else {
        uint32_t v = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (v & 1u))) v++;
        h = sign | v;
    }
    /* back to fp32 (cad_f16_to_f32) */
    uint32_t hs = (h & 0x8000u) << 16, he = (h >> 10) & 0x1fu, hm = h & 0x3ffu, y;
    if (he == 0) {
        if (hm == 0) y = hs;
        else {
            int k = -1;
            do { hm <<= 1; k++; } while (!(hm & 0x400u));
            y = hs | ((uint32_t)(127 - 15 - k) << 23) | ((hm & 0x3ffu) << 13);
        }
    } else if (he == 0x1f) y = hs | 0x7f800000u | (hm << 13);
    else y = hs | ((he + 127 - 15) << 23) | (hm << 13);
    float r;
    memcpy(&r, &y, 4);
    return r;
}

__global__ void k_fake_quant_rows(k_fake_quant_rows_params p) {
    int r = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (r >= p.rows) return;
    const float *row = p.w + (size_t)r * p.cols;
    float *o = p.out + (size_t)r * p.cols;
    int n = p.cols;
    float scale, clip, qmax;
    if (p.bits == K_FQ_TERNARY) {
        double sum = 0;
        for (int c = 0; c < n; c++) sum += (double)fabsf(row[c]);
        scale = (float)(sum / n);
        if (!(scale > 0)) scale = 1.0f;
        clip = INFINITY, qmax = 1.0f;
    } else {
        float top1 = -1.0f, top2 = -1.0f;
        for (int c = 0; c < n; c++) {
            float a = fabsf(row[c]);
            if (a > top1) top2 = top1, top1 = a;
            else if (a > top2) top2 = a;
        }
        if (n == 1) top2 = top1;
        float rank = K_FQ_MUL((float)K_FQ_CLIP_Q, (float)(n - 1));
        size_t lo = (size_t)rank, hi = (size_t)ceilf(rank);
        if (hi >= (size_t)n) hi = (size_t)n - 1;
        float w = rank - (float)lo, a = lo + 1 >= (size_t)n ? top1 : top2, b = hi + 1 >= (size_t)n ? top1 : top2;
        clip = fabsf(w) < 0.5f ? K_FQ_ADD(a, K_FQ_MUL(w, b - a)) : b - K_FQ_MUL(b - a, 1.0f - w);
        qmax = (float)((1 << (p.bits - 1)) - 1);
        scale = clip / qmax;
        if (scale < 1.0f / qmax) scale = 1.0f / qmax;
    }
    float deq = k_fq_f16_round(scale);
    for (int c = 0; c < n; c++) {
        float v = row[c] < clip ? row[c] : clip;
        v = v > -clip ? v : -clip;
        float qv = rintf(v / scale); /* round half to even, like nearbyintf on the CPU */
        if (qv > qmax) qv = qmax;
        if (qv < -qmax) qv = -qmax;
        o[c] = K_FQ_MUL((float)(int)qv, deq); /* through the integer code like the artifact: -0 -> 0 */
    }
}
EMU_KERNEL(k_fake_quant_rows, k_fake_quant_rows_params)

static void k_fake_quant_rows_launch(cudaStream_t s, float *out, const float *w, int rows, int cols, int bits) {
    if (rows <= 0) return;
    K_ASSERT(cols >= 1 && cols < 600000 && (bits == K_FQ_TERNARY || (bits >= 2 && bits <= 8)));
    k_fake_quant_rows_params p = {out, w, rows, cols, bits};
    KLAUNCH(k_fake_quant_rows, K_CEIL_DIV(rows, K_EW_BLOCK), K_EW_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif

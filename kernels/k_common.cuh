/*
 * k_common.cuh — what every kernel source includes first: the CUDA headers under nvcc or the CPU
 * emulation layer under gcc, the launch macro, and the warp/block reductions the kernels share.
 *
 * Kernel sources (kernels/k_*.cuh) are written in the C11 ∩ CUDA C++ subset so that nvcc builds
 * them for the GPU (kernels/backend_cuda.cu) and gcc builds them against kernels/emu/cuda_emu.h
 * for the emulated-kernel tests. The rules that follow from that:
 * - a kernel takes ONE parameter struct by value and is followed by EMU_KERNEL(kernel, type)
 *   (the emulation layer's per-kernel entry; nothing under nvcc);
 * - launches go through KLAUNCH(kernel, grid, block, shmem_bytes, stream, params) with params a
 *   named struct variable; grid/block are ints or KDIM3(x, y, z);
 * - dynamic shared memory is declared with KSHARED_DYN(name) (always float);
 * - no templates, references, classes, default arguments, designated initialisers, `restrict`,
 *   or implicit void* conversions; shuffles always take three arguments (full warp width);
 * - every thread of a block reaches every __syncthreads(): no early return before a barrier
 *   (the emulator aborts on it; the GPU would silently misbehave).
 *
 * Not here: the kernels (one family per k_<op>.cuh), cuBLAS calls (k_backend.cuh).
 */
#ifndef CADDIE_K_COMMON_CUH
#define CADDIE_K_COMMON_CUH

#ifdef __CUDACC__
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#define KLAUNCH(kernel, grid, block, shmem, stream, params)                                  \
    kernel<<<(grid), (block), (shmem), (stream)>>>(params)
#define EMU_KERNEL(kernel, param_type)
#define KSHARED_DYN(name) extern __shared__ float name[]
#define KDIM3(x, y, z) dim3((x), (y), (z))
#else
#include "kernels/emu/cuda_emu.h"
#define KLAUNCH(kernel, grid, block, shmem, stream, params)                                  \
    do {                                                                                     \
        (void)(stream);                                                                      \
        emu_launch(kernel##_emu_entry, &(params), EMU_DIM3(grid), EMU_DIM3(block), (shmem),   \
                   #kernel, __FILE__, __LINE__);                                             \
    } while (0)
#define KSHARED_DYN(name) float *name = (float *)emu_dynamic_shared()
#define KDIM3(x, y, z) ((dim3){(unsigned)(x), (unsigned)(y), (unsigned)(z)})
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_check.h"

#define K_FULL_MASK 0xffffffffu
/* Unroll the next loop under nvcc (register arrays indexed by its counter stay in registers);
 * nothing under gcc, where `#pragma unroll` would be an unknown-pragma warning. */
#ifdef __CUDACC__
#define K_UNROLL _Pragma("unroll")
#else
#define K_UNROLL
#endif
#define K_CEIL_DIV(a, b) (((a) + (b)-1) / (b))

/* Invariant of a launcher's arguments (a caller bug): print and abort, like CUDA_CHECK. */
#define K_ASSERT(cond)                                                                        \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "[KERNEL ASSERT] %s failed in %s at %s:%d\n", #cond, __func__,   \
                    __FILE__, __LINE__);                                                      \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

/* Launch-time check after every KLAUNCH (a no-op under the emulator, which aborts itself). */
#define K_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

/* Threads per block of the elementwise grid-stride kernels (relu2, axpby, scale, adam_update,
 * the resid_mix / scale_add forwards). */
#define K_EW_BLOCK 256

/* Grid for a grid-stride loop over n elements with `block` threads: enough blocks to cover n,
 * at most 65536 (each thread then loops). */
static inline int k_grid_for(size_t n, int block) {
    size_t g = (n + (size_t)block - 1) / (size_t)block;
    if (g < 1) g = 1;
    return g > 65536 ? 65536 : (int)g;
}

/* Threads for a block that walks a row of `width` elements: whole warps, no more than the row
 * needs (a short row leaves no warp idle), at most max_threads. */
static inline int k_row_block(int width, int max_threads) {
    int t = (width + 31) / 32 * 32;
    if (t < 32) t = 32;
    return t > max_threads ? max_threads : t;
}

/* Sum / max over the 32 lanes; every lane gets the same bits (xor butterfly: both partners of
 * each step add the same two values). */
static __device__ __forceinline__ float k_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(K_FULL_MASK, v, o);
    return v;
}
static __device__ __forceinline__ double k_warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(K_FULL_MASK, v, o);
    return v;
}
static __device__ __forceinline__ float k_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(K_FULL_MASK, v, o));
    return v;
}

/* Block-wide sum/max for a 1-D block whose size is a multiple of 32 (<= 1024); every thread
 * gets the result. sh is a 32-float shared array owned by the caller; the leading barrier lets
 * callers use the same array for consecutive reductions. */
static __device__ __forceinline__ float k_block_sum(float v, float *sh) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = k_warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    return k_warp_sum(lane < nw ? sh[lane] : 0.0f);
}
static __device__ __forceinline__ float k_block_max(float v, float *sh) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = k_warp_max(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    return k_warp_max(lane < nw ? sh[lane] : -INFINITY);
}
static __device__ __forceinline__ double k_block_sum_d(double v, double *sh) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = k_warp_sum_d(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    return k_warp_sum_d(lane < nw ? sh[lane] : 0.0);
}

/* ---- vector helpers: 128-bit loads/stores and bf16 rounding ----------------------------------
 * k_f4 is CUDA's float4 (16-byte aligned, so nvcc emits one LDG.128/STG.128; k_f2 likewise float2,
 * 8-byte aligned) and a struct of the
 * same layout under the emulator, where the accesses go through memcpy (no strict-aliasing
 * games in gcc). Only for 16-byte aligned addresses: launchers test k_aligned16() on every
 * pointer (and that row lengths keep later rows aligned) and fall back to the scalar loop
 * otherwise; the element order and the per-element formula are the scalar ones, so both paths
 * give the same bits. */
#ifdef __CUDACC__
typedef float2 k_f2; /* 64-bit shared loads (SIMT attention) */
static __device__ __forceinline__ k_f2 k_ld2(const float *p) { return *(const float2 *)p; }
typedef float4 k_f4;
static __device__ __forceinline__ k_f4 k_ld4(const float *p) { return *(const float4 *)p; }
static __device__ __forceinline__ void k_st4(float *p, k_f4 v) { *(float4 *)p = v; }
static __device__ __forceinline__ unsigned k_float_bits(float x) { return __float_as_uint(x); }
/* four bf16 values (8 bytes, 8-byte aligned) in one store */
static __device__ __forceinline__ void k_st_bf16x4(unsigned short *p, unsigned lo, unsigned hi) {
    *(uint2 *)p = make_uint2(lo, hi);
}
#else
typedef struct k_f2 {
    _Alignas(8) float x;
    float y;
} k_f2;
static inline k_f2 k_ld2(const float *p) {
    k_f2 v;
    memcpy(&v, p, sizeof v);
    return v;
}
typedef struct k_f4 {
    _Alignas(16) float x;
    float y, z, w;
} k_f4;
static inline k_f4 k_ld4(const float *p) {
    k_f4 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void k_st4(float *p, k_f4 v) { memcpy(p, &v, sizeof v); }
static inline unsigned k_float_bits(float x) {
    unsigned u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline void k_st_bf16x4(unsigned short *p, unsigned lo, unsigned hi) {
    unsigned w[2] = {lo, hi};
    memcpy(p, w, sizeof w);
}
#endif

/* Host side: may a kernel use k_ld4/k_st4 at p? (cudaMalloc memory is 256-byte aligned; views
 * into it at odd float offsets are not.) */
static inline int k_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* float -> bf16 bits, round to nearest even, NaN kept NaN (quietened): the exact rule of the CPU
 * backend's cad_bf16_from_float (engine/gemm_bf16.c), so both backends feed the same bf16
 * operands to their GEMMs. (__float2bfloat16_rn agrees except for the NaN payload.) */
static __device__ __forceinline__ unsigned k_bf16_rne(float x) {
    unsigned u = k_float_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x0040u;
    u += 0x7fffu + ((u >> 16) & 1u);
    return u >> 16;
}

/* ---- bf16 tensor-core product ------------------------------------------------------------- */

/* float -> bfloat16 bits, round to nearest even: k_bf16_rne, the CPU backend's rule. */
static __device__ __forceinline__ unsigned k_bf16_bits(float x) { return k_bf16_rne(x); }
/* Two floats as one bf16x2 register: lo in the lower half (the element of smaller index, as
 * the mma fragments expect). */
static __device__ __forceinline__ unsigned k_bf16_pack(float lo, float hi) {
    return k_bf16_bits(lo) | (k_bf16_bits(hi) << 16);
}

/* d[4] = A[16x16] B[16x8] + c[4] for the whole warp (all 32 lanes must call it together):
 * mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32. Fragments per lane (groupID g =
 * lane>>2, tig = lane&3), the PTX ISA's table: a[0] A[g][2tig..+1], a[1] A[g+8][2tig..+1],
 * a[2] A[g][2tig+8..+9], a[3] A[g+8][2tig+8..+9]; b[0] B[2tig..+1][g], b[1] B[2tig+8..+9][g]; c/d[0..1]
 * C[g][2tig..+1], c/d[2..3] C[g+8][2tig..+1]. d may alias c. The emulator implements the same
 * layout as a warp barrier (kernels/emu/cuda_emu.h), pinned by test_emu_mma. */
static __device__ __forceinline__ void k_mma_bf16_16816(float *d, const unsigned *a,
                                                        const unsigned *b, const float *c) {
#ifdef __CUDACC__
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),
                   "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    emu_mma_bf16_16816(d, a, b, c, __FILE__, __LINE__);
#endif
}

/* ---- ldmatrix and cp.async (the FA2-style attention, k_attention_mma2.cuh) ------------------
 * k_ldmatrix_x4{,_trans}(r, row): ldmatrix.sync.aligned.m8n8.x4{.trans}.shared.b16 for the whole
 * warp (all 32 lanes together). Lane l passes the shared address of row l%8 of matrix l/8 (16
 * bytes, 16-byte aligned); r[i] receives two b16 of matrix i: row l/4, columns 2(l%4), 2(l%4)+1
 * (lower half first), or with .trans column l/4, rows 2(l%4), 2(l%4)+1. That is exactly the
 * B fragment of k_mma_bf16_16816 for an 8x8 block stored n-major (no .trans) or k-major (.trans),
 * and x4 over (rows 0-7, k lo) (rows 8-15, k lo) (rows 0-7, k hi) (rows 8-15, k hi) is its A
 * fragment. The emulator implements the PTX table (cuda_emu.h), pinned by test_emu_ldmatrix.
 * k_cp_async16(dst, src): cp.async.cg.shared.global, 16 bytes, L2 only (each tile is read once
 * per block); k_cp_async_commit() closes the thread's group; K_CP_ASYNC_WAIT(n) (n a constant)
 * waits until at most the n newest groups are pending. A __syncthreads() after the wait makes
 * the copies of every thread visible to the block. */
#ifdef __CUDACC__
#define K_ALIGN16 __align__(16) /* shared arrays that cp.async / ldmatrix address */
#define K_LAUNCH_BOUNDS(threads, blocks) __launch_bounds__(threads, blocks)
static __device__ __forceinline__ unsigned k_smem_addr(const void *p) {
    return (unsigned)__cvta_generic_to_shared(p);
}
static __device__ __forceinline__ void k_ldmatrix_x4(unsigned *r, const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(k_smem_addr(row)));
}
static __device__ __forceinline__ void k_ldmatrix_x4_trans(unsigned *r, const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(k_smem_addr(row)));
}
static __device__ __forceinline__ void k_cp_async16(void *dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(k_smem_addr(dst)), "l"(src)
                 : "memory");
}
static __device__ __forceinline__ void k_cp_async_commit(void) {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
#define K_CP_ASYNC_WAIT(n) asm volatile("cp.async.wait_group %0;\n" ::"n"(n) : "memory")
#else
#define K_ALIGN16 _Alignas(16)
#define K_LAUNCH_BOUNDS(threads, blocks)
static inline void k_ldmatrix_x4(unsigned *r, const void *row) { emu_ldmatrix(r, 4, 0, row, __FILE__, __LINE__); }
static inline void k_ldmatrix_x4_trans(unsigned *r, const void *row) {
    emu_ldmatrix(r, 4, 1, row, __FILE__, __LINE__);
}
static inline void k_cp_async16(void *dst, const void *src) { emu_cp_async16(dst, src, __FILE__, __LINE__); }
static inline void k_cp_async_commit(void) { emu_cp_async_commit(); }
#define K_CP_ASYNC_WAIT(n) emu_cp_async_wait((n), __FILE__, __LINE__)
#endif

#endif

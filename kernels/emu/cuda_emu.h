/*
 * cuda_emu.h — a CUDA emulation layer so the SAME kernel sources (kernels/k_*.cuh) compile with
 * gcc as C11 and run on the CPU, where the unit tests compare them with the CPU reference.
 *
 * Model (see kernels/README.md "Emulation model" for what it can and cannot catch):
 * - Every CUDA thread of a block is a fibre (ucontext, its own mmap'd stack with a guard page).
 *   Blocks run one at a time, in a random order; within a block the fibres run one at a time,
 *   each until its next barrier (or its end), picked by random priorities (starving the
 *   low-priority ones) or uniformly at random, the policy redrawn at every __syncthreads.
 *   Any schedule this produces is a legal CUDA schedule, so code that is correct on the GPU is
 *   correct here, and code with a shared-memory race gives seed-dependent results here.
 * - __syncthreads() is a real barrier over all threads of the block; a thread that exits while
 *   others wait, or threads waiting at different __syncthreads() call sites, abort with a
 *   message naming the kernel, block and sites (on the GPU both are undefined behaviour).
 * - Warp operations (__shfl_*_sync, __ballot_sync, __syncwarp) are barriers over the lanes of the mask; the
 *   exchange happens when the last lane arrives. A lane in the mask that never arrives (exited,
 *   waits elsewhere) aborts as a deadlock; reading a lane outside the mask aborts.
 * - __shared__ arrays are `static _Thread_local` storage: one instance per OS thread, shared by
 *   the fibres of the block that is running (blocks never overlap). They are NOT cleared between
 *   blocks (stale values from the previous block are not detected; the randomised block order
 *   makes results that depend on them vary with the seed). Dynamic shared memory (KSHARED_DYN)
 *   is filled with 0xff bytes (NaN) at every block start, so reading it before writing shows.
 * - Seed: CADDIE_EMU_SEED (default 1) or emu_set_seed(); the schedule is a function of it.
 * - Under -fsanitize=address the fibre switches are announced with
 *   __sanitizer_start/finish_switch_fiber, so ASan checks kernel memory accesses as usual.
 * - Runtime/cuBLAS subset: cudaMalloc/Free/MemcpyAsync/MemsetAsync/StreamSynchronize/... on host
 *   memory, cublasSgemm/cublasSgemmStridedBatched/cublasSsyrk and cublasGemm(StridedBatched)Ex (fp32
 *   or bf16 matrices) as plain column-major loops with cuBLAS's argument validation (so the
 *   row-major mapping, leading dimensions and data types are tested), cublasGetStream.
 *
 * Kernel source rules (the C11 ∩ CUDA C++ subset): no templates, references, classes, default
 * arguments or designated initialisers; every kernel takes ONE parameter struct by value and is
 * followed by EMU_KERNEL(kernel, param_type); launches use KLAUNCH (kernels/k_common.cuh);
 * shuffles always pass exactly three arguments (full warp width).
 *
 * Not here: the kernels themselves, the GPU build (nvcc never sees this file), timing or
 * memory-coalescing models.
 */
#ifndef CADDIE_CUDA_EMU_H
#define CADDIE_CUDA_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- launch geometry ------------------------------------------------------------------------ */

typedef struct dim3 {
    unsigned int x, y, z;
} dim3;

/* Per-fibre built-ins: the scheduler stores the running fibre's values here before switching to
 * it (thread-local so separate OS threads can each run emulated launches). */
extern _Thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
#define warpSize 32

/* ---- qualifiers --------------------------------------------------------------------------- */

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static _Thread_local
#define __restrict__

/* ---- barriers and warp operations ---------------------------------------------------------- */

void emu_syncthreads(const char *file, int line);
void emu_syncwarp(unsigned mask, const char *file, int line);

enum emu_shfl_kind { EMU_SHFL_IDX, EMU_SHFL_XOR, EMU_SHFL_DOWN, EMU_SHFL_UP };
float emu_shfl_f(unsigned mask, float v, int arg, int kind, const char *file, int line);
double emu_shfl_d(unsigned mask, double v, int arg, int kind, const char *file, int line);
int emu_shfl_i(unsigned mask, int v, int arg, int kind, const char *file, int line);
unsigned emu_shfl_u(unsigned mask, unsigned v, int arg, int kind, const char *file, int line);

#define EMU_SHFL_(mask, v, arg, kind)                                                        \
    _Generic((v), float: emu_shfl_f, double: emu_shfl_d, int: emu_shfl_i,                    \
             unsigned: emu_shfl_u)((mask), (v), (arg), (kind), __FILE__, __LINE__)
#define __syncthreads() emu_syncthreads(__FILE__, __LINE__)
#define __syncwarp(mask) emu_syncwarp((mask), __FILE__, __LINE__)
#define __shfl_sync(mask, v, src) EMU_SHFL_(mask, v, src, EMU_SHFL_IDX)
#define __shfl_xor_sync(mask, v, lm) EMU_SHFL_(mask, v, lm, EMU_SHFL_XOR)
#define __shfl_down_sync(mask, v, d) EMU_SHFL_(mask, v, d, EMU_SHFL_DOWN)
#define __shfl_up_sync(mask, v, d) EMU_SHFL_(mask, v, d, EMU_SHFL_UP)
/* Bit l of the result is set when lane l of the mask passed a non-zero predicate. */
unsigned emu_ballot(unsigned mask, int pred, const char *file, int line);
#define __ballot_sync(mask, pred) emu_ballot((mask), (pred) != 0, __FILE__, __LINE__)
static inline int __ffs(int x) { return __builtin_ffs(x); }

/* Warp-level tensor-core product mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (what
 * k_mma_bf16_16816 in k_common.cuh issues as inline PTX under nvcc): a barrier over all 32 lanes
 * like the shuffles. Each lane deposits its fragments (a: 4 registers of two bf16, b: 2, c: 4
 * floats); when the last lane arrives the 16x8 product D = A B + C is formed from the PTX ISA
 * fragment layout (groupID = lane>>2, tig = lane&3; registers a[0]/a[2] row groupID, a[1]/a[3]
 * row groupID+8, a[0]/a[1] cols 2*tig+{0,1}, a[2]/a[3] cols 2*tig+8+{0,1} — the PTX table's
 * elements a0..a7 two to a register; b[0] rows 2*tig+{0,1}, b[1] rows 2*tig+8+{0,1},
 * col groupID; c0/c1 row groupID cols 2*tig+{0,1}, c2/c3 row groupID+8; the lower 16 bits of a
 * register hold the element of smaller index), summed in k order in fp32 (bf16 products are
 * exact in fp32), and each lane's d is written. d may alias c. */
void emu_mma_bf16_16816(float *d, const unsigned *a, const unsigned *b, const float *c,
                        const char *file, int line);

/* Warp-level shared-memory matrix load ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{.trans}.shared.b16
 * (what k_ldmatrix_x4{,_trans} in k_common.cuh issue under nvcc): a barrier over all 32 lanes
 * like mma.sync. Each lane deposits one row address (`row`, 16-byte aligned: a row is 8 b16
 * elements); matrix i (i < num) takes its rows 0..7 from lanes 8i..8i+7 (the PTX ISA's address
 * table; with num < 4 the other lanes' addresses are ignored). When the last lane arrives every
 * lane t gets r[i] = two b16 of matrix i, the lower half the element of smaller column index:
 * without .trans row t/4, columns 2(t%4) and 2(t%4)+1 (the PTX fragment figure: a group of four
 * consecutive threads holds one row); with .trans (trans != 0) the same positions of the
 * transposed matrix, i.e. column t/4, rows 2(t%4) and 2(t%4)+1 of the matrix as stored.
 * Aborts on a misaligned row or lanes that disagree on num/trans. */
void emu_ldmatrix(unsigned *r, int num, int trans, const void *row, const char *file, int line);

/* Asynchronous global -> shared copies, cp.async.cg.shared.global (16 bytes) with
 * cp.async.commit_group / cp.async.wait_group N, per thread as in the PTX ISA: a copy belongs
 * to the group the thread's next commit closes; wait_group N returns once at most the N most
 * recently committed groups are still pending (copies not yet committed are not waited for).
 * The emulator performs each copy either at issue or at the wait that completes it (a coin
 * flip from the schedule seed), the two extremes the GPU allows: reading a tile before its wait
 * (and the barrier after it) sees stale data under some seeds, and overwriting a buffer other
 * threads still read shows up under others. Both addresses must be 16-byte aligned; a copy
 * still pending when its thread ends is dropped (its block's shared memory dies with it). */
void emu_cp_async16(void *dst, const void *src, const char *file, int line);
void emu_cp_async_commit(void);
void emu_cp_async_wait(int n, const char *file, int line);

/* cuda_bf16.h subset: bfloat16 as its bit pattern. __float2bfloat16_rn rounds to nearest even
 * (NaN stays NaN), the rule of the CPU backend's engine/gemm_bf16.h. */
typedef struct __nv_bfloat16 {
    unsigned short x;
} __nv_bfloat16;
__nv_bfloat16 __float2bfloat16_rn(float f);
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
static inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t u = (uint32_t)h.x << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Atomics: fibres never run concurrently, so a read-modify-write is atomic by construction; the
 * ORDER of the adds follows the randomised schedule, as on the GPU. */
static inline float emu_atomic_add_f(float *p, float v) { float o = *p; *p = o + v; return o; }
static inline double emu_atomic_add_d(double *p, double v) { double o = *p; *p = o + v; return o; }
static inline int emu_atomic_add_i(int *p, int v) { int o = *p; *p = o + v; return o; }
static inline unsigned emu_atomic_add_u(unsigned *p, unsigned v) { unsigned o = *p; *p = o + v; return o; }
#define atomicAdd(p, v)                                                                      \
    _Generic((p), float *: emu_atomic_add_f, double *: emu_atomic_add_d, int *: emu_atomic_add_i, \
             unsigned *: emu_atomic_add_u)((p), (v))

/* Device math that C lacks (C99 expf/logf/sqrtf/tanhf/fmaxf exist under both compilers). */
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

/* ---- dynamic shared memory and launches ---------------------------------------------------- */

/* Base of the running block's dynamic shared memory (the launch's shmem bytes). */
void *emu_dynamic_shared(void);

/* Run entry(params) as a grid of blocks of fibres (blocking; returns when all blocks ended).
 * Aborts, like an invalid launch on the GPU, on a block of more than 1024 threads, a zero or
 * over-limit dimension, or more than 48 KiB of dynamic shared memory. */
void emu_launch(void (*entry)(const void *params), const void *params, dim3 grid, dim3 block,
                size_t shmem, const char *kernel, const char *file, int line);

static inline dim3 emu_dim3_from_dim3(dim3 d) { return d; }
static inline dim3 emu_dim3_from_int(long long v) {
    dim3 d = {(unsigned)v, 1u, 1u};
    return d;
}
#define EMU_DIM3(v) _Generic((v), dim3: emu_dim3_from_dim3, default: emu_dim3_from_int)(v)

/* Declares the entry the emulated launch calls in every fibre (nothing under nvcc). */
#define EMU_KERNEL(kernel, param_type)                                                       \
    static void kernel##_emu_entry(const void *emu_params_) {                                \
        param_type emu_p_;                                                                   \
        memcpy(&emu_p_, emu_params_, sizeof emu_p_);                                         \
        kernel(emu_p_);                                                                      \
    }

/* Schedule seed (overrides CADDIE_EMU_SEED); the next launches draw their order from it. */
void emu_set_seed(uint64_t seed);
/* Fibre switches since the process started (a cost figure for tests). */
unsigned long long emu_switch_count(void);

/* ---- runtime subset on host memory -------------------------------------------------------- */

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
} cudaError_t;
typedef struct emu_stream *cudaStream_t;
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};

const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t s);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);

/* ---- cuBLAS subset (column-major, fp32) ----------------------------------------------------- */

typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_INVALID_VALUE = 7,
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_FILL_MODE_LOWER = 0, CUBLAS_FILL_MODE_UPPER = 1 } cublasFillMode_t;
typedef struct emu_cublas *cublasHandle_t;

const char *cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float *alpha, const float *A, int lda,
                           const float *B, int ldb, const float *beta, float *C, int ldc);
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda,
                                         long long strideA, const float *B, int ldb,
                                         long long strideB, const float *beta, float *C, int ldc,
                                         long long strideC, int batch);
/* cublasGemmEx / cublasGemmStridedBatchedEx for fp32 matrices only: CUBLAS_COMPUTE_32F is
 * cublasSgemm; CUBLAS_COMPUTE_32F_FAST_16BF rounds each operand element to bfloat16 (nearest
 * even) and accumulates in fp32, which is what the tensor-core path computes. */
typedef enum { CUDA_R_32F = 0, CUDA_R_16BF = 14 } cudaDataType_t;
typedef enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_16BF = 75 } cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType_t Atype, int lda,
                            const void *B, cudaDataType_t Btype, int ldb, const void *beta, void *C,
                            cudaDataType_t Ctype, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo);
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                          int m, int n, int k, const void *alpha, const void *A,
                                          cudaDataType_t Atype, int lda, long long strideA,
                                          const void *B, cudaDataType_t Btype, int ldb,
                                          long long strideB, const void *beta, void *C,
                                          cudaDataType_t Ctype, int ldc, long long strideC,
                                          int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t algo);
/* ---- cuBLAS subset: bf16 operands, stream query ---- */
/* cublasGemmEx / cublasGemmStridedBatchedEx also take bf16 matrices: Atype == Btype ==
 * CUDA_R_16BF (raw bf16 bits, uint16), Ctype CUDA_R_32F, compute CUBLAS_COMPUTE_32F: each bf16
 * element widens to float exactly, products and sums in fp32 (what the tensor cores compute,
 * up to summation order). Other combinations return CUBLAS_STATUS_INVALID_VALUE. */
cublasStatus_t cublasGetStream(cublasHandle_t h, cudaStream_t *s);

/* C = alpha op(A) op(A)^T + beta C on the `uplo` triangle only (the other is not touched);
 * trans N: A is [n,k]; T: A is [k,n]. */
cublasStatus_t cublasSsyrk(cublasHandle_t h, cublasFillMode_t uplo, cublasOperation_t trans, int n,
                           int k, const float *alpha, const float *A, int lda, const float *beta,
                           float *C, int ldc);

#endif

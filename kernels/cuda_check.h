/*
 * cuda_check.h — CUDA_CHECK / CUBLAS_CHECK / NCCL_CHECK: abort on a CUDA, cuBLAS or NCCL error
 * with the failing statement, the function, file:line and the library's error string.
 *
 * A CUDA error is a bug (bad launch configuration, out-of-bounds access, wrong leading
 * dimension) or broken hardware, never bad user input, so these abort instead of returning a
 * cad_status (engine/status.h). Launches are checked with CUDA_CHECK(cudaGetLastError()).
 * The same macros work under the CPU emulation layer (kernels/emu/cuda_emu.h), which provides
 * the error types, codes and *GetErrorString functions with CUDA's names.
 *
 * Not here: user-facing errors (no device, NCCL peers missing) — those are reported through
 * cad_err by the callers in backend_cuda.cu.
 */
#ifndef CADDIE_CUDA_CHECK_H
#define CADDIE_CUDA_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CAD_GPU_ABORT(lib, stmt, code, msg)                                                   \
    do {                                                                                      \
        fprintf(stderr, "[%s ERROR] %s failed in %s at %s:%d: %s (code %d)\n", lib, stmt,     \
                __func__, __FILE__, __LINE__, msg, (int)(code));                              \
        fflush(stderr);                                                                       \
        abort();                                                                              \
    } while (0)

#define CUDA_CHECK(stmt)                                                                      \
    do {                                                                                      \
        cudaError_t cuda_check_rc_ = (stmt);                                                  \
        if (cuda_check_rc_ != cudaSuccess)                                                    \
            CAD_GPU_ABORT("CUDA", #stmt, cuda_check_rc_, cudaGetErrorString(cuda_check_rc_)); \
    } while (0)

/* cuBLAS has no public status->string function before 11.4; cublasGetStatusString exists in
 * every toolkit this project supports (12+, and the emulation layer). */
#define CUBLAS_CHECK(stmt)                                                                    \
    do {                                                                                      \
        cublasStatus_t cublas_check_rc_ = (stmt);                                             \
        if (cublas_check_rc_ != CUBLAS_STATUS_SUCCESS)                                        \
            CAD_GPU_ABORT("CUBLAS", #stmt, cublas_check_rc_,                                  \
                          cublasGetStatusString(cublas_check_rc_));                           \
    } while (0)

#define NCCL_CHECK(stmt)                                                                      \
    do {                                                                                      \
        ncclResult_t nccl_check_rc_ = (stmt);                                                 \
        if (nccl_check_rc_ != ncclSuccess)                                                    \
            CAD_GPU_ABORT("NCCL", #stmt, nccl_check_rc_, ncclGetErrorString(nccl_check_rc_)); \
    } while (0)

#endif

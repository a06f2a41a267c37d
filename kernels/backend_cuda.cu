/*
 * backend_cuda.cu — the CUDA backend: creates the device context and exposes the cad_backend
 * whose slots are kernels/k_backend.cuh (kernels + cuBLAS), plus NCCL data parallelism.
 *
 * This is the only file nvcc compiles. It is C++ only because nvcc is; the kernels it includes
 * are the C11 ∩ CUDA subset that tests/unit/test_kernels_emu.c also compiles with gcc, so what
 * runs here is what the emulated tests checked (launch geometry and GEMM mapping included).
 *
 * Not here: kernel code, model logic, process launching (the runner/trainer start one process
 * per GPU, see kernels/README.md).
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <stdio.h>
#include <string.h>

extern "C" {
#include "engine/backend.h"
#include "engine/status.h"
}
#include "kernels/backend_cuda.h"
#include "kernels/cuda_check.h"
#include "kernels/k_backend.cuh"

static kb_ctx cuda_ctx;
static cad_backend cuda_backend;
static int cuda_ready;
static char cuda_device_name[256];

extern "C" const cad_backend *cad_backend_cuda(cad_err *e) {
    if (cuda_ready) return &cuda_backend;
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess || n == 0) {
        const char *why = rc != cudaSuccess ? cudaGetErrorString(rc) : "0 devices visible";
        (void)cudaGetLastError(); /* clear the error so later calls start clean */
        cad_fail(e, CAD_ERR, "no CUDA device: %s (CUDA_VISIBLE_DEVICES=%s)", why,
                 getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "unset");
        return NULL;
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaSetDevice(0));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    snprintf(cuda_device_name, sizeof cuda_device_name, "%s", prop.name);
    kb_ctx_init(&cuda_ctx);
    kb_backend_fill(&cuda_backend, &cuda_ctx, "cuda");
    cuda_ready = 1;
    return &cuda_backend;
}

extern "C" const char *cad_cuda_device_name(void) { return cuda_device_name; }

/* ---- NCCL ------------------------------------------------------------------------------------ */

static ncclComm_t dp_comm;
static int dp_ready;

extern "C" int cad_cuda_dp_unique_id(char hex[CAD_NCCL_ID_HEX_CHARS + 1], cad_err *e) {
    ncclUniqueId id;
    ncclResult_t rc = ncclGetUniqueId(&id);
    if (rc != ncclSuccess)
        return cad_fail(e, CAD_ERR, "ncclGetUniqueId: %s", ncclGetErrorString(rc));
    for (int i = 0; i < NCCL_UNIQUE_ID_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)id.internal[i]);
    return CAD_OK;
}

extern "C" int cad_cuda_dp_init(const cad_backend *be, int rank, int world, const char *hex,
                                cad_err *e) {
    if (!be || be->ctx != &cuda_ctx)
        return cad_fail(e, CAD_ERR, "cad_cuda_dp_init: the backend is not the CUDA backend");
    if (world < 1 || rank < 0 || rank >= world)
        return cad_fail(e, CAD_ECONFIG, "data parallel: rank %d out of range for world size %d",
                        rank, world);
    if (!hex || strlen(hex) != CAD_NCCL_ID_HEX_CHARS)
        return cad_fail(e, CAD_ECONFIG, "data parallel: NCCL id must be %d hex characters, got %zu",
                        CAD_NCCL_ID_HEX_CHARS, hex ? strlen(hex) : (size_t)0);
    ncclUniqueId id;
    for (int i = 0; i < NCCL_UNIQUE_ID_BYTES; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return cad_fail(e, CAD_ECONFIG, "data parallel: NCCL id has a non-hex character at %d",
                            2 * i);
        id.internal[i] = (char)v;
    }
    ncclResult_t rc = ncclCommInitRank(&dp_comm, world, id, rank);
    if (rc != ncclSuccess)
        return cad_fail(e, CAD_ERR, "ncclCommInitRank(rank %d of %d): %s", rank, world,
                        ncclGetErrorString(rc));
    dp_ready = 1;
    return CAD_OK;
}

extern "C" void cad_cuda_dp_allreduce_mean(const cad_backend *be, float *buf, size_t n) {
    if (!dp_ready || n == 0) return; /* single process: nothing to average */
    NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat32, ncclAvg, dp_comm, kb_of(be)->stream));
}

extern "C" void cad_cuda_dp_free(void) {
    if (!dp_ready) return;
    NCCL_CHECK(ncclCommDestroy(dp_comm));
    dp_ready = 0;
}

/*
 * backend_cuda.h — the CUDA backend's C entry points: the cad_backend (engine/backend.h) on the
 * first visible GPU, and NCCL data parallelism (one process per GPU; kernels/README.md).
 *
 * Only code built with CADDIE_CUDA defined may call these (the Makefile defines it, and links
 * build/cuda/libcaddie_cuda.a, when nvcc was found); everything else reaches the GPU only
 * through the cad_backend struct. Errors a user can cause (no device, bad NCCL id, peers that
 * never join) come back as cad_err; CUDA errors after that are bugs and abort (cuda_check.h).
 *
 * Not here: the kernels (kernels/k_*.cuh), backend selection policy (the trainer's config).
 */
#ifndef CADDIE_BACKEND_CUDA_H
#define CADDIE_BACKEND_CUDA_H

#include "engine/backend.h"
#include "engine/status.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* cad_backend_cuda() and cad_cuda_device_name() are declared in engine/backend.h. */

/* ---- data parallel (NCCL), one process per GPU ------------------------------------------------
 * The launcher (rank 0's parent, or rank 0 itself before it forks/execs the others) calls
 * cad_cuda_dp_unique_id once and hands the hex string to every rank (env CADDIE_NCCL_ID); each
 * rank then calls cad_cuda_dp_init with its rank and the world size, and after every backward
 * cad_cuda_dp_allreduce_mean on the flat gradient arena (or, with dp_bucket_mb, during the
 * backward cad_cuda_dp_allreduce_mean_async per gradient bucket, then cad_cuda_dp_wait). The process that created the id must
 * stay alive until every rank finished cad_cuda_dp_init (it hosts NCCL's bootstrap root). */
#define CAD_NCCL_ID_HEX_CHARS 256 /* 2 * NCCL_UNIQUE_ID_BYTES */
int cad_cuda_dp_unique_id(char hex[CAD_NCCL_ID_HEX_CHARS + 1], cad_err *e);
int cad_cuda_dp_init(const cad_backend *be, int rank, int world, const char *hex, cad_err *e);
/* In place on backend memory, queued on the backend's stream: buf = mean over ranks of buf. */
void cad_cuda_dp_allreduce_mean(const cad_backend *be, float *buf, size_t n);
/* The same on a second (communication) stream, ordered after the work queued on the backend's
 * stream so far by an event; the host does not block. cad_cuda_dp_wait makes the backend's
 * stream wait for everything queued there (an event again), e.g. before the optimizer step. */
void cad_cuda_dp_allreduce_mean_async(const cad_backend *be, float *buf, size_t n);
void cad_cuda_dp_wait(const cad_backend *be);
/* In place on backend memory, queued on the stream: buf = root's buf (the sharded Muon's
 * all-gather, one owner at a time). */
void cad_cuda_dp_broadcast(const cad_backend *be, float *buf, size_t n, int root);
/* ncclCommAbort, safe from another thread (engine/collective.c's peer watchdog). */
void cad_cuda_dp_abort(void);
void cad_cuda_dp_free(void);

#ifdef __cplusplus
}
#endif

#endif

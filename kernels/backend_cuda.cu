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
#include <cupti.h>
#include <nccl.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "engine/backend.h"
#include "engine/backend_check.h"
#include "engine/status.h"
#include "engine/timed_backend.h"
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
/* The overlapped all-reduces: their own stream, so the compute stream goes on with the backward
 * while a bucket is reduced; `ready` orders a bucket after the compute work that wrote it,
 * `done` orders the optimizer after every bucket. Made on first use, kept for the process. */
static cudaStream_t dp_comm_stream;
static cudaEvent_t dp_ready_ev, dp_done_ev;
static int dp_have_comm_stream;

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

/* Record `ready` on the compute stream, the communication stream waits on it (on the GPU: the
 * host does not block), then ncclAvg there. Re-recording one event is enough: a wait takes the
 * event's most recent record at the time it is issued. */
extern "C" void cad_cuda_dp_allreduce_mean_async(const cad_backend *be, float *buf, size_t n) {
    if (!dp_ready || n == 0) return;
    if (!dp_have_comm_stream) {
        CUDA_CHECK(cudaStreamCreateWithFlags(&dp_comm_stream, cudaStreamNonBlocking));
        CUDA_CHECK(cudaEventCreateWithFlags(&dp_ready_ev, cudaEventDisableTiming));
        CUDA_CHECK(cudaEventCreateWithFlags(&dp_done_ev, cudaEventDisableTiming));
        dp_have_comm_stream = 1;
    }
    CUDA_CHECK(cudaEventRecord(dp_ready_ev, kb_of(be)->stream));
    CUDA_CHECK(cudaStreamWaitEvent(dp_comm_stream, dp_ready_ev, 0));
    NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat32, ncclAvg, dp_comm, dp_comm_stream));
}

/* The compute stream waits for everything queued on the communication stream so far. */
extern "C" void cad_cuda_dp_wait(const cad_backend *be) {
    if (!dp_have_comm_stream) return;
    CUDA_CHECK(cudaEventRecord(dp_done_ev, dp_comm_stream));
    CUDA_CHECK(cudaStreamWaitEvent(kb_of(be)->stream, dp_done_ev, 0));
}

extern "C" void cad_cuda_dp_broadcast(const cad_backend *be, float *buf, size_t n, int root) {
    if (!dp_ready || n == 0) return;
    NCCL_CHECK(ncclBroadcast(buf, buf, n, ncclFloat32, root, dp_comm, kb_of(be)->stream));
}

/* From the collective's watchdog thread when a peer died: NCCL kernels waiting for it end (and
 * the next NCCL call fails, aborting this rank) instead of hanging. */
extern "C" void cad_cuda_dp_abort(void) {
    if (!dp_ready) return;
    dp_ready = 0;
    ncclCommAbort(dp_comm);
}

extern "C" void cad_cuda_dp_free(void) {
    if (dp_have_comm_stream) { /* after an abort too: the stream and events are plain CUDA objects */
        CUDA_CHECK(cudaStreamSynchronize(dp_comm_stream));
        CUDA_CHECK(cudaEventDestroy(dp_ready_ev));
        CUDA_CHECK(cudaEventDestroy(dp_done_ev));
        CUDA_CHECK(cudaStreamDestroy(dp_comm_stream));
        dp_have_comm_stream = 0;
    }
    if (!dp_ready) return;
    NCCL_CHECK(ncclCommDestroy(dp_comm));
    dp_ready = 0;
}

/* ---- event timer for the per-slot timing wrapper (engine/timed_backend.h) -------------------- */

typedef struct ev_timer {
    cudaStream_t stream;
    cudaEvent_t *ev;
    int n, cap;
} ev_timer;

static int ev_mark(void *ctx) {
    ev_timer *t = (ev_timer *)ctx;
    if (t->n >= t->cap) return -1;
    CUDA_CHECK(cudaEventRecord(t->ev[t->n], t->stream));
    return t->n++;
}
static double ev_span(void *ctx, int from, int to) {
    ev_timer *t = (ev_timer *)ctx;
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, t->ev[from], t->ev[to]));
    return ms;
}
static void ev_reset(void *ctx) { ((ev_timer *)ctx)->n = 0; }
static void ev_destroy(void *ctx) {
    ev_timer *t = (ev_timer *)ctx;
    if (!t) return;
    for (int i = 0; i < t->cap; i++) CUDA_CHECK(cudaEventDestroy(t->ev[i]));
    free(t->ev);
    free(t);
}

extern "C" int cad_cuda_event_timer_create(const cad_backend *cuda, cad_slot_timer **out, int capacity,
                                           cad_err *e) {
    *out = NULL;
    if (!cuda || cuda->ctx != &cuda_ctx)
        return cad_fail(e, CAD_ERR, "cad_cuda_event_timer_create: the backend is not the CUDA backend");
    if (capacity < 2) return cad_fail(e, CAD_ECONFIG, "event timer: capacity %d < 2", capacity);
    cad_slot_timer *st = (cad_slot_timer *)calloc(1, sizeof *st);
    ev_timer *t = (ev_timer *)calloc(1, sizeof *t);
    cudaEvent_t *ev = (cudaEvent_t *)calloc((size_t)capacity, sizeof *ev);
    if (!st || !t || !ev) {
        free(st), free(t), free(ev);
        return cad_fail(e, CAD_ENOMEM, "event timer: out of memory for %d events", capacity);
    }
    for (int i = 0; i < capacity; i++) CUDA_CHECK(cudaEventCreate(&ev[i]));
    t->stream = cuda_ctx.stream;
    t->ev = ev;
    t->cap = capacity;
    st->what = "CUDA events";
    st->ctx = t;
    st->capacity = capacity;
    st->mark = ev_mark;
    st->span_ms = ev_span;
    st->reset = ev_reset;
    st->destroy = ev_destroy;
    *out = st;
    return CAD_OK;
}

/* ---- which kernels each dense product launches (CUPTI callbacks, libcupti loaded at run time) -- */

typedef CUptiResult (*cupti_subscribe_fn)(CUpti_SubscriberHandle *, CUpti_CallbackFunc, void *);
typedef CUptiResult (*cupti_enable_domain_fn)(uint32_t, CUpti_SubscriberHandle, CUpti_CallbackDomain);
typedef CUptiResult (*cupti_unsubscribe_fn)(CUpti_SubscriberHandle);

/* Distinct kernel names seen since the last clear, "; "-separated. */
typedef struct launch_log {
    char names[1024];
    int n;
} launch_log;

static void CUPTIAPI on_api(void *ud, CUpti_CallbackDomain dom, CUpti_CallbackId id, const void *data) {
    (void)dom, (void)id;
    const CUpti_CallbackData *cb = (const CUpti_CallbackData *)data;
    launch_log *l = (launch_log *)ud;
    if (cb->callbackSite != CUPTI_API_ENTER || !cb->symbolName || !cb->symbolName[0]) return;
    if (strstr(l->names, cb->symbolName)) return;
    size_t len = strlen(l->names);
    snprintf(l->names + len, sizeof l->names - len, "%s%s", l->n ? "; " : "", cb->symbolName);
    l->n++;
}

extern "C" int cad_cuda_gemm_report(const cad_backend *cuda, cad_gemm_pick_fn fn, void *ud, int *n_failed,
                                    cad_err *e) {
    *n_failed = 0;
    if (!cuda || cuda->ctx != &cuda_ctx)
        return cad_fail(e, CAD_ERR, "cad_cuda_gemm_report: the backend is not the CUDA backend");
    const char *libs[] = {"libcupti.so", "libcupti.so.13", "libcupti.so.12"};
    void *h = NULL;
    for (int i = 0; i < 3 && !h; i++) h = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return cad_fail(e, CAD_ERR, "kernel report: cannot load libcupti (%s); add the toolkit's lib64 or "
                        "extras/CUPTI/lib64 to LD_LIBRARY_PATH", dlerror());
    cupti_subscribe_fn sub = (cupti_subscribe_fn)dlsym(h, "cuptiSubscribe");
    cupti_enable_domain_fn en = (cupti_enable_domain_fn)dlsym(h, "cuptiEnableDomain");
    cupti_unsubscribe_fn unsub = (cupti_unsubscribe_fn)dlsym(h, "cuptiUnsubscribe");
    if (!sub || !en || !unsub) {
        dlclose(h);
        return cad_fail(e, CAD_ERR, "kernel report: libcupti lacks cuptiSubscribe/cuptiEnableDomain");
    }
    static launch_log log; /* the callback's target; one report at a time */
    CUpti_SubscriberHandle sh;
    CUptiResult cr = sub(&sh, (CUpti_CallbackFunc)on_api, &log);
    if (cr != CUPTI_SUCCESS) {
        dlclose(h);
        return cad_fail(e, CAD_ERR, "kernel report: cuptiSubscribe failed (CUPTI error %d; is a profiler attached?)",
                        (int)cr);
    }
    en(1, sh, CUPTI_CB_DOMAIN_DRIVER_API);
    en(1, sh, CUPTI_CB_DOMAIN_RUNTIME_API);

    /* the baseline's shapes: 8192-token micro-batch rows, C=512, MLP 1024, Muon's 512x512 and
     * 512x1024 matrices batched, attention at T=1024 with 8/4 heads of 64 */
    const int N = 8192, C = 512, H = 1024, B = 2, T = 1024, NH = 8, KV = 4, HD = 64;
    size_t fl = (size_t)N * H * 2 + (size_t)4 * C * H * 2;
    float *buf = (float *)cuda->alloc(cuda, fl * sizeof(float) * 3);
    cuda->set_matmul_precision(cuda, CAD_PREC_BF16); /* the larger scratch: packed operands */
    size_t sbytes = cuda->attention_scratch_bytes(cuda, B, T, NH, KV, HD);
    void *scratch = sbytes ? cuda->alloc(cuda, sbytes) : NULL;
    float *lse = (float *)cuda->alloc(cuda, (size_t)B * NH * T * sizeof(float));
    int rc = CAD_OK;
    if (!buf || (sbytes && !scratch) || !lse) rc = cad_fail(e, CAD_ENOMEM, "kernel report: device allocation failed");
    float *X = buf, *Y = buf + fl, *Z = buf + 2 * fl;
    const char *precs[2] = {"fp32", "bf16"};
    for (int p = 0; p < 2 && rc == CAD_OK; p++) {
        cuda->set_matmul_precision(cuda, p ? CAD_PREC_BF16 : CAD_PREC_FP32);
        for (int k = 0; k < 6; k++) {
            cad_gemm_pick g;
            memset(&g, 0, sizeof g);
            g.precision = precs[p];
            cuda->sync(cuda);
            log.names[0] = 0, log.n = 0;
            switch (k) {
            case 0:
                g.slot = "matmul";
                snprintf(g.shape, sizeof g.shape, "y[%d,%d] = x W^T (linear forward)", N, H);
                cuda->matmul(cuda, 0, 1, N, H, C, 1.0f, X, C, Y, C, 0.0f, Z, H);
                break;
            case 1:
                g.slot = "matmul";
                snprintf(g.shape, sizeof g.shape, "dx[%d,%d] = dy W (linear backward)", N, C);
                cuda->matmul(cuda, 0, 0, N, C, H, 1.0f, X, H, Y, C, 0.0f, Z, C);
                break;
            case 2:
                g.slot = "matmul";
                snprintf(g.shape, sizeof g.shape, "dW[%d,%d] += dy^T x (weight gradient)", H, C);
                cuda->matmul(cuda, 1, 0, H, C, N, 1.0f, X, H, Y, C, 1.0f, Z, C);
                break;
            case 3:
                g.slot = "matmul_batched";
                snprintf(g.shape, sizeof g.shape, "4 x [%d,%d]x[%d,%d] (Newton-Schulz)", C, C, C, H);
                cuda->matmul_batched(cuda, 0, 0, C, H, C, 1.0f, X, C, (long long)C * C, Y, H, (long long)C * H, 0.0f,
                                     Z, H, (long long)C * H, 4);
                break;
            case 4:
                g.slot = "gram_batched";
                snprintf(g.shape, sizeof g.shape, "4 x [%d,%d][%d,%d]^T (Newton-Schulz)", C, H, C, H);
                cuda->gram_batched(cuda, 0, C, H, 1.0f, X, H, (long long)C * H, 0.0f, Z, C, (long long)C * C, 4);
                break;
            default:
                g.slot = "attention_forward";
                snprintf(g.shape, sizeof g.shape, "B=%d T=%d NH=%d KV=%d HD=%d", B, T, NH, KV, HD);
                cuda->attention_forward(cuda, Z, NH * HD, lse, X, NH * HD, Y, KV * HD, Y + (size_t)B * T * KV * HD,
                                        KV * HD, B, T, NH, KV, HD, 0.125f, scratch, sbytes);
                break;
            }
            cuda->sync(cuda);
            snprintf(g.kernels, sizeof g.kernels, "%s", log.n ? log.names : "(no kernel launch seen)");
            g.n_kernels = log.n;
            g.tf32 = cad_gemm_kernel_is_tf32(log.names);
            g.pass = !g.tf32 && log.n > 0;
            if (!g.pass) (*n_failed)++;
            if (fn) fn(&g, ud);
        }
    }
    cuda->set_matmul_precision(cuda, CAD_PREC_FP32);
    unsub(sh);
    /* libcupti stays loaded: it keeps hooks in the driver after cuptiUnsubscribe, and unmapping
     * it made the next CUDA call crash on an H200 (selftest segfault, 2026-12-04) */
    cuda->free(cuda, buf);
    cuda->free(cuda, scratch);
    cuda->free(cuda, lse);
    return rc;
}

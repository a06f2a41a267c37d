/*
 * k_embedding.cuh — token embedding gather (forward, one block per token row) and the
 * deterministic scatter-add of its gradient (backward).
 *
 * Backward without atomics on the gradient: the slot passes no V and no scratch, so the vocab
 * rows are owned by hash: with G blocks (a power of two chosen from N), block g owns every id
 * with id % G == g. Each block scans all N ids in chunks, collects its tokens as 64-bit keys
 * (id / G) << 32 | n in shared memory (an integer shared counter hands out the slots, in
 * schedule order), sorts them (bitonic), so every run of one id lists its tokens in ascending
 * n, then walks the runs: per column, acc = dwte[id][c]; acc += dout[n][c] for each n in order;
 * one store. That is the CPU reference's order per element ((dwte + d_n1) + d_n2 ...), so the
 * result is bit-identical to the CPU and to itself on every schedule. A block whose list would
 * overflow processes it and starts a new one; the stored partial sum is where the next list's
 * adds continue, so the order is still ascending n.
 * Cost (baseline N 65,536, C 512, V 1024, G 512): every block reads all ids (G·N·4 B = 134 MB of
 * L2 reads), dout once (134 MB of HBM), dwte once per owned id; a very frequent id serialises its
 * tokens in one block (the CPU order demands it): 2 column loads in flight per thread.
 *
 * Not here: id validation (the data stream checks 0 <= id < V before they reach a backend).
 */
#ifndef CADDIE_K_EMBEDDING_CUH
#define CADDIE_K_EMBEDDING_CUH

#include "kernels/k_common.cuh"

#define K_EMB_BLOCK 128 /* forward */

typedef struct k_embedding_params {
    float *dst;        /* out[N,C] */
    const float *src;  /* wte[V,C] */
    const int32_t *ids;
    int N, C;
} k_embedding_params;

__global__ void k_embedding_forward(k_embedding_params p) {
    const float *row = p.src + (size_t)p.ids[blockIdx.x] * p.C;
    float *out = p.dst + (size_t)blockIdx.x * p.C;
    for (int c = threadIdx.x; c < p.C; c += blockDim.x) out[c] = row[c];
}
EMU_KERNEL(k_embedding_forward, k_embedding_params)

/* Backward tiling: 256 threads; each scan chunk covers K_EMB_SCAN ids per thread; the key list
 * holds K_EMB_LIST keys and is processed when another chunk might not fit. */
#define K_EMB_BWD_BLOCK 256
#define K_EMB_SCAN 4
#define K_EMB_LIST 2048
#define K_EMB_ACC 2 /* columns per thread per pass: independent loads in flight */
#define K_EMB_MAX_OWNERS 512

typedef struct k_embedding_bwd_params {
    float *dwte;
    const float *dout;
    const int32_t *ids;
    int N, C;
    int lg; /* G = 1 << lg owner blocks */
} k_embedding_bwd_params;

/* Sort keys[0, P) ascending, P a power of two, all threads of the block (bitonic network). */
static __device__ void k_emb_sort(unsigned long long *keys, int P) {
    for (int k = 2; k <= P; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int i = threadIdx.x; i < P; i += blockDim.x) {
                int ixj = i ^ j;
                if (ixj > i) {
                    unsigned long long a = keys[i], b = keys[ixj];
                    if ((a > b) == ((i & k) == 0)) {
                        keys[i] = b;
                        keys[ixj] = a;
                    }
                }
            }
            __syncthreads();
        }
}

/* Add the sorted list's rows into dwte: runs of one id, tokens in ascending order. */
static __device__ void k_emb_accumulate(const k_embedding_bwd_params *p, const unsigned long long *keys, int L,
                                        int g) {
    for (int c0 = 0; c0 < p->C; c0 += K_EMB_ACC * (int)blockDim.x) {
        float acc[K_EMB_ACC], nxt[K_EMB_ACC];
        int col[K_EMB_ACC];
        K_UNROLL
        for (int a = 0; a < K_EMB_ACC; a++) {
            col[a] = c0 + a * (int)blockDim.x + (int)threadIdx.x;
            acc[a] = 0.0f;
            nxt[a] = 0.0f;
        }
        /* the next token's values are loaded one step ahead, so two rows' loads are in flight */
        size_t n0 = (size_t)(unsigned)(keys[0] & 0xffffffffu);
        K_UNROLL
        for (int a = 0; a < K_EMB_ACC; a++)
            if (col[a] < p->C) nxt[a] = p->dout[n0 * p->C + col[a]];
        int cur = -1;
        for (int i = 0; i < L; i++) {
            int id = (int)(((unsigned)(keys[i] >> 32) << p->lg) | (unsigned)g);
            float v[K_EMB_ACC];
            K_UNROLL
            for (int a = 0; a < K_EMB_ACC; a++) v[a] = nxt[a];
            if (i + 1 < L) {
                size_t n1 = (size_t)(unsigned)(keys[i + 1] & 0xffffffffu);
                K_UNROLL
                for (int a = 0; a < K_EMB_ACC; a++)
                    if (col[a] < p->C) nxt[a] = p->dout[n1 * p->C + col[a]];
            }
            if (id != cur) {
                K_UNROLL
                for (int a = 0; a < K_EMB_ACC; a++) {
                    if (cur >= 0 && col[a] < p->C) p->dwte[(size_t)cur * p->C + col[a]] = acc[a];
                    if (col[a] < p->C) acc[a] = p->dwte[(size_t)id * p->C + col[a]];
                }
                cur = id;
            }
            K_UNROLL
            for (int a = 0; a < K_EMB_ACC; a++) acc[a] += v[a];
        }
        K_UNROLL
        for (int a = 0; a < K_EMB_ACC; a++)
            if (col[a] < p->C) p->dwte[(size_t)cur * p->C + col[a]] = acc[a];
    }
}

__global__ void k_embedding_backward(k_embedding_bwd_params p) {
    __shared__ unsigned long long keys[K_EMB_LIST];
    __shared__ int cnt;
    int g = (int)blockIdx.x, mask = (1 << p.lg) - 1, chunk = K_EMB_SCAN * (int)blockDim.x;
    if (threadIdx.x == 0) cnt = 0;
    __syncthreads();
    for (int b0 = 0; b0 < p.N; b0 += chunk) {
        K_UNROLL
        for (int k = 0; k < K_EMB_SCAN; k++) { /* coalesced: the slot order does not matter */
            int n = b0 + k * (int)blockDim.x + (int)threadIdx.x;
            if (n < p.N) {
                int id = p.ids[n];
                if ((id & mask) == g) {
                    int slot = atomicAdd(&cnt, 1);
                    keys[slot] = ((unsigned long long)(unsigned)(id >> p.lg) << 32) | (unsigned)n;
                }
            }
        }
        __syncthreads();
        int L = cnt;
        __syncthreads(); /* every thread has L before anyone changes cnt again */
        if (L > K_EMB_LIST - chunk || (b0 + chunk >= p.N && L > 0)) {
            int P = 1;
            while (P < L) P <<= 1;
            for (int i = L + (int)threadIdx.x; i < P; i += blockDim.x) keys[i] = ~0ull; /* sorts last */
            __syncthreads();
            k_emb_sort(keys, P);
            k_emb_accumulate(&p, keys, L, g);
            __syncthreads(); /* the list is read by all before it is refilled */
            if (threadIdx.x == 0) cnt = 0;
            __syncthreads();
        }
    }
}
EMU_KERNEL(k_embedding_backward, k_embedding_bwd_params)

static void k_embedding_forward_launch(cudaStream_t s, float *out, const int32_t *ids,
                                       const float *wte, int N, int C) {
    if (N <= 0) return;
    k_embedding_params p = {out, wte, ids, N, C};
    KLAUNCH(k_embedding_forward, N, k_row_block(C, K_EMB_BLOCK), 0, s, p);
    K_CHECK_LAUNCH();
}

/* G = the largest power of two <= N / 64 (about 64 tokens per owner), 1 to K_EMB_MAX_OWNERS:
 * more owners cost every block a scan of all N ids, fewer lengthen each block's serial list. */
static void k_embedding_backward_launch(cudaStream_t s, float *dwte, const float *dout,
                                        const int32_t *ids, int N, int C) {
    if (N <= 0 || C <= 0) return;
    int lg = 0;
    while ((1 << (lg + 1)) <= N / 64 && (1 << (lg + 1)) <= K_EMB_MAX_OWNERS) lg++;
    k_embedding_bwd_params p = {dwte, dout, ids, N, C, lg};
    KLAUNCH(k_embedding_backward, 1 << lg, K_EMB_BWD_BLOCK, 0, s, p);
    K_CHECK_LAUNCH();
}

#endif

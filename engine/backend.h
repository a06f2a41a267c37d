/*
 * backend.h — the op seam between the model/optimizer code and the hardware.
 *
 * A cad_backend is a struct of function pointers (ggml's backend vtable idea): memory
 * (alloc/free/copies/sync) plus one slot per op, forward and backward as separate slots
 * where the op has a gradient. engine/model.c and the optimizers call ONLY these slots on
 * tensor memory, never memcpy/BLAS/CUDA directly, so the CPU reference (backend_cpu.c) and
 * the CUDA backend (kernels/) are interchangeable and can be checked against each other op
 * by op. Every slot is mandatory (there is no "unsupported op" path).
 *
 * One name per op: an op `foo` with a gradient has the slots foo_forward / foo_backward (an op
 * without one has a single descriptive slot: matmul, axpby, adam_update, ...), its CPU reference
 * is the functions cpu_<slot> in the `---- foo ----` section of backend_cpu.c (sections in the
 * slot order below), its CUDA kernels k_foo_forward / k_foo_backward in kernels/k_foo.cuh, its
 * op check check_foo in backend_check.c and its CPU test test_foo in
 * tests/unit/test_engine_ops.c. kernels/README.md has the table; tests/cli/t0901 checks it.
 *
 * Not here: model structure (model.c decides which op runs on which buffer), optimizer
 * policy (learning rates, schedules), host-side I/O. No slot allocates memory: scratch a
 * slot needs is planned by the caller (see attention_scratch_bytes).
 *
 * Conventions (all slots)
 * - Every pointer argument marked "tensor" is backend memory (from alloc). Host pointers
 *   appear only in the copy slots and in results returned by value.
 * - Row-major, contiguous unless a leading dimension (ld*) is given; ld is in floats.
 * - Shape letters: B batch sequences, T sequence length, N = B*T token rows,
 *   C model_dim, V vocab, H mlp hidden (mlp_mult*C), NH query heads, KV key/value heads,
 *   HD head_dim = C/NH (even), QKV = (NH + 2*KV)*HD (the fused c_q|c_k|c_v output width).
 *   Token row n = b*T + t; position t is n % T.
 * - Gradient semantics are part of each slot's contract and are spelled out as (=) "written"
 *   or (+=) "accumulated". Parameter gradients are ALWAYS accumulated (+=) so gradient
 *   accumulation across micro-batches works; activation gradients are written (=) unless
 *   they naturally sum into the residual stream, where (+=) saves a pass.
 * - Aliasing: outputs never alias inputs unless the slot says "may alias".
 * - Slots may run asynchronously (CUDA stream order); only the slots that return a host value
 *   (sumsq) and copy_to_host/sync wait for completion (normalize_batched leaves its sums in
 *   backend memory and does not wait).
 * - Reductions over rows (parameter grads of vectors) are deterministic for a fixed thread
 *   count, so CPU training is bit-reproducible with the same `threads`.
 */
#ifndef CADDIE_BACKEND_H
#define CADDIE_BACKEND_H

#include "engine/status.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cad_backend cad_backend;

enum { CAD_PREC_FP32 = 0, CAD_PREC_BF16 = 1 }; /* set_matmul_precision */

/* selective_scan: positions per chunk whose entering state the forward saves (hs) for the
 * backward's recomputation; memory B*E*S*ceil(T/CHUNK) floats per layer instead of B*E*S*T. */
#define CAD_SCAN_CHUNK 32

struct cad_backend {
    const char *name; /* "cpu", "cuda": logged and recorded with results */
    void *ctx;        /* backend-private state (CUDA: stream, cuBLAS handle); NULL for cpu */

    /* ---- memory ------------------------------------------------------------------------ */
    /* Zero-filled allocation of `bytes`, aligned to at least 64 bytes. NULL on failure
     * (the caller reports CAD_ENOMEM naming what it was planning). */
    void *(*alloc)(const cad_backend *be, size_t bytes);
    void (*free)(const cad_backend *be, void *p); /* p may be NULL */
    void (*copy_to_device)(const cad_backend *be, void *dst, const void *host_src, size_t bytes);
    void (*copy_to_host)(const cad_backend *be, void *host_dst, const void *src, size_t bytes);
    void (*copy)(const cad_backend *be, void *dst, const void *src, size_t bytes); /* device->device, no overlap */
    void (*memset_zero)(const cad_backend *be, void *p, size_t bytes);
    void (*sync)(const cad_backend *be); /* wait until every queued slot finished */
    /* Number of CPU threads the backend's ops use (cpu: OpenMP team size, BLAS stays single
     * threaded per call and is parallelised by the backend itself). n <= 0 keeps the default.
     * CUDA: ignored. Call before planning memory: attention_scratch_bytes depends on it. */
    void (*set_threads)(const cad_backend *be, int n);

    /* Operand precision of every dense product below (matmul, matmul_batched, gram_batched and
     * attention's score and value products): CAD_PREC_FP32, exact fp32 (the default, and what
     * parity tests check), or CAD_PREC_BF16, operands rounded to bfloat16 with fp32 accumulation
     * and fp32 results, which is what train_gpt.py's torch.autocast(bfloat16) and its bf16
     * Newton-Schulz do to the products. Backend-wide, like set_threads. Returns 0, or -1 for a
     * precision this backend does not know. */
    int (*set_matmul_precision)(const cad_backend *be, int precision);

    /* ---- matmul, matmul_batched, gram_batched: dense linear algebra ------------------------- */
    /* C[M,N] = alpha * op(A) * op(B) + beta * C, row-major (cblas_sgemm(CblasRowMajor, ...)).
     * op(A) is [M,K]: A is [M,K] (lda >= K) or, with trans_a, [K,M] (lda >= M); likewise
     * op(B) is [K,N]: B is [K,N] (ldb >= N) or, with trans_b, [N,K] (ldb >= K). ldc >= N.
     * beta == 0 means C is not read (may hold garbage/NaN). Linear layers use it as
     *   y[N,out] = x[N,in] W[out,in]^T          (trans_b, beta 0)
     *   dx[N,in] = dy[N,out] W[out,in]          (beta 0)
     *   dW[out,in] += dy[N,out]^T x[N,in]        (trans_a, beta 1) */
    void (*matmul)(const cad_backend *be, int trans_a, int trans_b, int M, int N, int K,
                   float alpha, const float *A, int lda, const float *B, int ldb,
                   float beta, float *C, int ldc);
    /* Strided batch of matmuls: for b in [0, batch), with X_b = X + b*stride_x (in floats),
     * C_b = alpha * op(A_b) * op(B_b) + beta * C_b, each exactly as `matmul` (same shapes, same
     * beta == 0 rule). The C_b must not overlap one another. Muon's Newton-Schulz runs every
     * same-shape parameter of a step as one batch, so a CPU thread can own whole matrices
     * instead of every thread taking a slice of each small one. */
    void (*matmul_batched)(const cad_backend *be, int trans_a, int trans_b, int M, int N, int K,
                           float alpha, const float *A, int lda, long long stride_a,
                           const float *B, int ldb, long long stride_b, float beta, float *C,
                           int ldc, long long stride_c, int batch);
    /* Strided batch of Gram products (BLAS syrk): C_b[M,M] = alpha * op(A_b) op(A_b)^T + beta * C_b
     * where op(A_b) is [M,K]: A_b is [M,K] (lda >= K) or, with trans_a, [K,M] (lda >= M). The
     * result is symmetric, so it costs half the FLOPs of the same matmul; BOTH triangles of C_b
     * are written and C_b comes out exactly symmetric (one triangle is computed and mirrored).
     * beta == 0: C_b is not read; otherwise C_b must be symmetric on entry (only one triangle is
     * read). Newton-Schulz uses it for A = X X^T and for A*A = A A^T (A symmetric). */
    void (*gram_batched)(const cad_backend *be, int trans_a, int M, int K, float alpha,
                         const float *A, int lda, long long stride_a, float beta, float *C,
                         int ldc, long long stride_c, int batch);

    /* ---- embedding: token embedding lookup -------------------------------------------------- */
    /* out[N,C] = wte[ids[n], :]. ids (tensor, int32) in [0,V); the caller validated them. */
    void (*embedding_forward)(const cad_backend *be, float *out, const int32_t *ids,
                              const float *wte, int N, int C);
    /* dwte[V,C] (+=) scatter-add of dout[N,C] rows by ids[N]. */
    void (*embedding_backward)(const cad_backend *be, float *dwte, const float *dout,
                               const int32_t *ids, int N, int C);

    /* ---- rmsnorm: RMSNorm without weight (F.rms_norm(x, (C,), eps)) ------------------------- */
    /* out[N,C] = in * rstd, rstd[N] = 1/sqrt(mean_c(in^2) + eps). out may alias in. */
    void (*rmsnorm_forward)(const cad_backend *be, float *out, float *rstd, const float *in,
                            int N, int C, float eps);
    /* din[N,C] (+=) rstd * (dout - out * mean_c(dout*out)). Uses the forward OUTPUT and rstd
     * (no need to keep the input). din must not alias dout or out. */
    void (*rmsnorm_backward)(const cad_backend *be, float *din, const float *dout,
                             const float *out, const float *rstd, int N, int C);

    /* ---- qk_norm_rope: attention pre-processing, per-head q/k RMSNorm, RoPE, q_gain --------- */
    /* Reads the q and k columns of qkv[N,QKV] (q: cols [0,NH*HD), k: [NH*HD,(NH+KV)*HD)).
     * Per token and head: u = rmsnorm(x_head, eps); r = rope(u) with the half-split pairing
     * (r1 = u1*cos + u2*sin, r2 = -u1*sin + u2*cos, halves of HD/2, cos/sin[T,HD/2] at position
     * t); q_out[N,NH*HD] = q_gain[h] * r_q, k_out[N,KV*HD] = r_k.
     * rstd_q[N,NH], rstd_k[N,KV] (=) the per-head 1/rms, kept for backward. */
    void (*qk_norm_rope_forward)(const cad_backend *be, float *q_out, float *k_out,
                                 float *rstd_q, float *rstd_k, const float *qkv,
                                 const float *q_gain, const float *cos, const float *sin,
                                 int B, int T, int NH, int KV, int HD, float eps);
    /* dqkv[N,QKV]: q and k columns (=), v columns untouched (attention_backward writes them).
     * dq_gain[NH] (+=). dq_out[N,NH*HD], dk_out[N,KV*HD] are the gradients of q_out/k_out. */
    void (*qk_norm_rope_backward)(const cad_backend *be, float *dqkv, float *dq_gain,
                                  const float *dq_out, const float *dk_out, const float *qkv,
                                  const float *rstd_q, const float *rstd_k, const float *q_gain,
                                  const float *cos, const float *sin,
                                  int B, int T, int NH, int KV, int HD);

    /* ---- attention: causal self-attention with GQA ------------------------------------------ */
    /* Bytes of scratch attention_forward/backward need for these shapes (with the thread count
     * set now). The caller plans it into its activation arena and passes it to every call. */
    size_t (*attention_scratch_bytes)(const cad_backend *be, int B, int T, int NH, int KV, int HD);
    /* y = softmax(scale * q k^T + causal mask) v per (b, h); query head h reads kv head
     * h / (NH/KV) (torch repeat_interleave / enable_gqa semantics; kv is never materialised
     * repeated). Rows: q[n*ldq + h*HD + d], k[n*ldk + g*HD + d], v[n*ldv + g*HD + d],
     * y[n*ldy + h*HD + d]. lse[B,NH,T] (=) log-sum-exp of each scaled score row, kept for
     * backward (probabilities are recomputed, never stored). */
    void (*attention_forward)(const cad_backend *be, float *y, int ldy, float *lse,
                              const float *q, int ldq, const float *k, int ldk,
                              const float *v, int ldv, int B, int T, int NH, int KV, int HD,
                              float scale, void *scratch, size_t scratch_bytes);
    /* dq (=), dk (=), dv (=) with their own row strides (dk/dv sum over the NH/KV query heads of
     * a group). dy[n*lddy + h*HD + d] is the gradient of y; y and lse are forward outputs. */
    void (*attention_backward)(const cad_backend *be, float *dq, int lddq, float *dk, int lddk,
                               float *dv, int lddv, const float *dy, int lddy, const float *y,
                               int ldy, const float *lse, const float *q, int ldq,
                               const float *k, int ldk, const float *v, int ldv,
                               int B, int T, int NH, int KV, int HD, float scale,
                               void *scratch, size_t scratch_bytes);

    /* ---- xsa: exclusive self-attention ------------------------------------------------------ */
    /* out[n, h] = y[n, h] - (y[n, h] . u) u with u = v[n, g] / |v[n, g]| (g = h / (NH/KV)): each
     * head output loses its component along the token's own value. Rows of N tokens with
     * strides ldy/ldv/ldo (y and out are [N, NH*HD], v is [N, KV*HD] columns of its rows).
     * out may not alias y. */
    void (*xsa_forward)(const cad_backend *be, float *out, int ldo, const float *y, int ldy, const float *v,
                        int ldv, int N, int NH, int KV, int HD);
    /* dy (=) dout - (dout . u) u; dv (+=) the value's share summed over the group's heads:
     * -[(dout.v) y + (y.v) dout] / |v|^2 + 2 (y.v)(dout.v) v / |v|^4. dy may alias dout.
     * dy or dv may be NULL: that half is skipped (the model needs dy before the attention
     * backward and adds dv into the value gradient after it, which that backward overwrites). */
    void (*xsa_backward)(const cad_backend *be, float *dy, int lddy, float *dv, int lddv, const float *dout,
                         int lddo, const float *y, int ldy, const float *v, int ldv, int N, int NH, int KV, int HD);

    /* ---- head_gate: per-head output gate of attention (attn_gate) ------------------------- */
    /* out[n, h*HD + d] = y[n, h*HD + d] * sigmoid(gate[n*NH + h]): each head's output scaled by
     * its own gate (the records' SparseAttnGate / gated attention). y and out are [N, NH*HD] rows
     * with strides ldy/ldo, gate [N, NH] dense pre-activations. out may not alias y. */
    void (*head_gate_forward)(const cad_backend *be, float *out, int ldo, const float *y, int ldy,
                              const float *gate, int N, int NH, int HD);
    /* dy (=) dout * sigmoid(gate) (rows of stride lddy; dy may alias dout); dgate[N, NH] (=)
     * sigmoid'(gate) * sum_d dout[n,h,d] * y[n,h,d], the dot summed in double in d order. */
    void (*head_gate_backward)(const cad_backend *be, float *dy, int lddy, float *dgate, const float *dout,
                               int lddo, const float *y, int ldy, const float *gate, int N, int NH, int HD);

    /* ---- relu2: MLP activation -------------------------------------------------------------- */
    /* out[n] = act(in)^2 over n elements, act(x) = x for x > 0 and slope*x otherwise: relu^2
     * at slope 0 (train_gpt.py), the records' leaky_relu(x, 0.5)^2 at 0.5. out may alias in. */
    void (*relu2_forward)(const cad_backend *be, float *out, const float *in, size_t n, float slope);
    /* din[n] (=) dout * 2*act(in)*act'(in) (act' = 1 for in > 0, else slope). din may alias dout. */
    void (*relu2_backward)(const cad_backend *be, float *din, const float *dout,
                           const float *in, size_t n, float slope);

    /* ---- resid_mix, scale_add: residual stream ---------------------------------------------- */
    /* out[N,C] = mix[0,:] * x + mix[1,:] * x0 (Block.resid_mix, mix is [2,C]). out may alias x. */
    void (*resid_mix_forward)(const cad_backend *be, float *out, const float *x,
                              const float *x0, const float *mix, int N, int C);
    /* dx (=) mix[0]*dout (dx may alias dout), dx0 (+=) mix[1]*dout, dmix[2,C] (+=)
     * sum_n (dout*x, dout*x0). dx must not alias dx0. */
    void (*resid_mix_backward)(const cad_backend *be, float *dx, float *dx0, float *dmix,
                               const float *dout, const float *x, const float *x0,
                               const float *mix, int N, int C);
    /* out[N,C] = x + s[C] * y (attn_scale, mlp_scale, skip_weights[i]). out may alias x. */
    void (*scale_add_forward)(const cad_backend *be, float *out, const float *x,
                              const float *s, const float *y, int N, int C);
    /* dy (=) s * dout, ds[C] (+=) sum_n dout*y. The x gradient is dout itself (identity), so
     * callers keep dout as the residual gradient. dy must not alias dout. */
    void (*scale_add_backward)(const cad_backend *be, float *dy, float *ds, const float *dout,
                               const float *y, const float *s, int N, int C);

    /* ---- softcap_xent: logit softcap + cross-entropy (fused) -------------------------------- */
    /* In place on logits[N,V]: raw -> z = cap * tanh(raw / cap). lse[N] (=) logsumexp(z row).
     * If targets (tensor, int32 [N], in [0,V)) is non-NULL, loss[N] (=) lse - z[target]
     * (per-token NLL in nats, computed in fp32 like F.cross_entropy on float logits). */
    void (*softcap_xent_forward)(const cad_backend *be, float *logits, float *lse, float *loss,
                                 const int32_t *targets, int N, int V, float cap);
    /* In place on logits[N,V]: z -> d raw = dloss * (softmax(z) - onehot(target)) * (1 - (z/cap)^2),
     * the gradient of dloss * sum_n loss[n] w.r.t. the raw (pre-cap) logits (dloss = 1/N for a
     * mean). Needs lse from the forward. */
    void (*softcap_xent_backward)(const cad_backend *be, float *logits, const float *lse,
                                  const int32_t *targets, int N, int V, float cap, float dloss);

    /* ---- distill_kl: knowledge distillation's KL term (fused loss + gradient) ---------------- */
    /* Per row n of the student's softcapped logits zs[N,V] (softcap_xent_forward's output) and the
     * teacher's tlogits[N,V] (its own softcapped logits), at temperature temp:
     *   p = softmax(tlogits/temp), q = softmax(zs/temp),
     *   loss[n] (=) alpha * temp^2 * sum_v p (log p - log q)     (KL(p || q) in nats, fp32 sums)
     *   tlogits (=, in place) dloss * alpha * temp * (q - p) * (1 - (zs/cap)^2),
     * the gradient of dloss * sum_n loss[n] w.r.t. the student's RAW (pre-cap) logits, which the
     * caller adds to the cross-entropy's. The teacher's row is read before it is overwritten. */
    void (*distill_kl)(const cad_backend *be, float *tlogits, float *loss, const float *zs, int N, int V,
                       float temp, float alpha, float cap, float dloss);

    /* ---- axpby, scale, sumsq, adam_update: vectors (optimizers, grad clipping) -------------- */
    /* y[n] = a*x + b*y (b == 0: y is not read). x may alias y. */
    void (*axpby)(const cad_backend *be, size_t n, float a, const float *x, float b, float *y);
    /* x[n] *= a. */
    void (*scale)(const cad_backend *be, size_t n, float a, float *x);
    /* Sum of squares of x[n], accumulated in double, returned to the host (waits). */
    double (*sumsq)(const cad_backend *be, const float *x, size_t n);
    /* torch.optim.Adam step (no weight decay), elementwise over n:
     *   m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g;
     *   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
     * with bc1 = 1 - beta1^step, bc2 = 1 - beta2^step computed by the caller. */
    void (*adam_update)(const cad_backend *be, float *p, const float *g, float *m, float *v,
                        size_t n, float lr, float beta1, float beta2, float eps, float bc1,
                        float bc2);

    /* ---- fake_quant_rows: QAT's quantise-dequantise of a weight matrix ------------------------ */
    /* out[rows,cols] (=) each row of w quantised and decoded exactly as the artifact does it
     * (engine/export.h, cad_quantize_rows without clip search, then q * fp16 scale in fp32):
     *   bits 2..8: clip = torch.quantile(|row|, 0.9999984) (linear interpolation in fp32),
     *     scale = max(clip / qmax, 1 / qmax), qmax = 2^(bits-1) - 1,
     *     q = clamp(round_half_even(clamp(w, -clip, clip) / scale), -qmax, qmax);
     *   bits 1 (CAD_QUANT_TERNARY): scale = mean|row| summed in double in column order (1 for a
     *     zero row), q = clamp(round_half_even(w / scale), -1, 1);
     *   out = q * f16_to_f32(f32_to_f16(scale)).
     * Bit-exact with the export on every backend. Needs 1 <= cols < 600000 (the quantile then
     * lies between the two largest |w| of the row). out must not alias w. */
    void (*fake_quant_rows)(const cad_backend *be, float *out, const float *w, int rows, int cols,
                            int bits);

    /* ---- normalize_batched: Muon's per-matrix Frobenius normalisation ------------------------- */
    /* For b in [0, batch), x_b = x + b*stride (n floats each, non-overlapping):
     *   sumsq[b] (=) sum of squares of x_b, accumulated in double (tensor of `batch` doubles);
     *   x_b *= (float)(1 / (sqrt(sumsq[b]) + eps)), the factor computed in double.
     * Newton-Schulz's X /= ‖X‖ + eps for a whole shape group with the norms kept in backend
     * memory: the step never waits on the host (sumsq + scale per matrix did, 54 round trips
     * per step at the baseline). The CPU reference is exactly `sumsq` then `scale` per matrix,
     * so CPU Muon is bit-identical to what it was; sums are deterministic (fixed order). */
    void (*normalize_batched)(const cad_backend *be, float *x, size_t n, long long stride, int batch,
                              double eps, double *sumsq);

    /* ---- moe_combine: micro-MoE, the gated sum of each token's expert outputs ----------------- */
    /* The model gathers each token's rows into expert order (embedding_forward as a row gather),
     * runs every expert's MLP on its contiguous rows with matmul, and combines here:
     *   out[n, :] (=) sum_{j<K} gate[n*K + j] * h[pos[n*K + j], :]   (j in increasing order)
     * h is [N*K, C] (expert-ordered rows), gate (tensor) [N*K] the token's renormalised top-k
     * gates, pos (tensor, int32) [N*K] a permutation of [0, N*K): the row of h that holds the
     * output of the token's j-th expert. out must not alias h. */
    void (*moe_combine_forward)(const cad_backend *be, float *out, const float *h, const float *gate,
                                const int32_t *pos, int N, int K, int C);
    /* dh[pos[n*K+j], :] (=) gate[n*K+j] * dout[n, :] (every row of dh written once: pos is a
     * permutation); dgate[n*K+j] (=) sum_c dout[n, c] * h[pos[n*K+j], c], summed in double in
     * column order (deterministic on every backend). dh must not alias dout or h. */
    void (*moe_combine_backward)(const cad_backend *be, float *dh, float *dgate, const float *dout,
                                 const float *h, const float *gate, const int32_t *pos, int N, int K, int C);
    /* ---- causal_conv1d: Mamba's depthwise causal convolution + SiLU -------------------------- */
    /* out[N,E] (=) silu(pre), pre[n,e] = bias[e] + sum_{k<K} w[e*K + k] * x[(n - (K-1) + k)*ldx + e],
     * the term 0 where t - (K-1) + k < 0 (t = n % T: no mixing across sequences), i.e. torch's
     * nn.Conv1d(E, E, K, groups=E, padding=K-1)(x)[..., :T] then F.silu. w is [E,K] (torch's
     * [E,1,K]), x a column slice of its rows (ldx >= E); 1 <= K <= 16. out must not alias x. */
    void (*causal_conv1d_forward)(const cad_backend *be, float *out, const float *x, int ldx,
                                  const float *w, const float *bias, int B, int T, int E, int K);
    /* dx (=) [N,E] rows with stride lddx; dw[E,K] (+=), dbias[E] (+=) summed over all N rows;
     * dout[N,E] is the gradient of out. pre is recomputed from x. dx must not alias dout or x. */
    void (*causal_conv1d_backward)(const cad_backend *be, float *dx, int lddx, float *dw, float *dbias,
                                   const float *dout, const float *x, int ldx, const float *w,
                                   const float *bias, int B, int T, int E, int K);

    /* ---- selective_scan: Mamba-1's selective state-space scan (selective_scan_fn) ------------ */
    /* Bytes of scratch selective_scan_backward needs for these shapes (deterministic partial sums
     * of the gradients that add over channels or sequences). Planned by the caller like attention's. */
    size_t (*selective_scan_scratch_bytes)(const cad_backend *be, int B, int T, int E, int S);
    /* Per sequence b, channel e and state s (1 <= S <= 32, a power of two), over t = 0..T-1:
     *   delta = softplus(dt[n,e] + dt_bias[e])   (torch: x > 20 -> x, else log1p(exp(x)))
     *   A = -exp(A_log[e,s]);  h = exp(delta*A) * h + delta * Bm[n,s] * u[n,e]   (h = 0 before t = 0)
     *   y[n,e] (=) (sum_s Cm[n,s] h + D[e] u[n,e]) * silu(z[n,e])
     * u, dt, y are [N,E]; Bm, Cm rows of stride ldbc (column slices of x_proj's output), z rows of
     * stride ldz. hs[B, nc, E, S] (=), nc = ceil(T / CAD_SCAN_CHUNK): the state entering every
     * chunk of CAD_SCAN_CHUNK positions (zeros for chunk 0), kept for the backward, which
     * recomputes the states inside a chunk from it instead of storing all T of them. */
    void (*selective_scan_forward)(const cad_backend *be, float *y, float *hs, const float *u,
                                   const float *dt, const float *A_log, const float *Bm,
                                   const float *Cm, int ldbc, const float *D, const float *z, int ldz,
                                   const float *dt_bias, int B, int T, int E, int S);
    /* Gradients from dy[N,E]: du (=) [N,E]; ddt (=) [N,E] (of the raw dt, before bias and softplus);
     * dBm, dCm (=) [N,S] rows of stride lddbc (each a sum over the E channels); dz (=) rows of
     * stride lddz; dA_log[E,S], dD[E], ddt_bias[E] (+=) summed over every sequence and position.
     * hs is the forward's. No output aliases an input or another output. */
    void (*selective_scan_backward)(const cad_backend *be, float *du, float *ddt, float *dBm,
                                    float *dCm, int lddbc, float *dz, int lddz, float *dA_log, float *dD,
                                    float *ddt_bias, const float *dy, const float *u, const float *dt,
                                    const float *A_log, const float *Bm, const float *Cm, int ldbc,
                                    const float *D, const float *z, int ldz, const float *dt_bias,
                                    const float *hs, int B, int T, int E, int S, void *scratch,
                                    size_t scratch_bytes);
};

/* The CPU reference backend (OpenMP + OpenBLAS sgemm). A static singleton: never freed. */
const cad_backend *cad_backend_cpu(void);

/* The CUDA backend on device 0 of CUDA_VISIBLE_DEVICES (a process-wide singleton, created on
 * the first call, never freed), implemented in kernels/backend_cuda.cu and linked only into
 * builds with CADDIE_CUDA defined. NULL with e filled ("no CUDA device: ...") when no usable
 * device or driver is present. Declared here so the engine picks a backend without including
 * anything from kernels/ (the engine depends on no other folder). */
#ifdef __cplusplus
extern "C" {
#endif
const cad_backend *cad_backend_cuda(cad_err *e);
/* Name of the device the CUDA backend runs on ("NVIDIA H100 80GB HBM3"), "" before creation. */
const char *cad_cuda_device_name(void);
#ifdef __cplusplus
}
#endif

#endif

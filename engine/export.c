/*
 * export.c — int8 quantization, the artifact container and its compressors (see export.h).
 * Not here: deciding which weights to export (the caller passes the model's tensors).
 */
#include "engine/export.h"
#include "engine/quant_ext.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <lzma.h>
#include <brotli/decode.h>
#include <brotli/encode.h>

#define CONTAINER_MAGIC "CADQINT8"
#define CONTAINER_VERSION 2u /* 2: a crc32 trailer (export.h); 1 is still read */

/* train_gpt.py CONTROL_TENSOR_NAME_PATTERNS (= INT8_KEEP_FLOAT_FP32_NAME_PATTERNS). */
static const char *const control_patterns[] = {"attn_scale", "attn_scales", "mlp_scale",
                                               "mlp_scales", "resid_mix", "resid_mixes",
                                               "q_gain", "skip_weight", "skip_weights",
                                               "attn_gate_w"}; /* + caddie's attn_gate, as the records */

int cad_int8_is_control_name(const char *name) {
    for (size_t i = 0; i < sizeof control_patterns / sizeof control_patterns[0]; i++)
        if (strstr(name, control_patterns[i])) return 1;
    return 0;
}

int cad_int8_scheme(const cad_named_tensor *t) {
    if (t->numel <= CAD_INT8_KEEP_FLOAT_MAX_NUMEL)
        return cad_int8_is_control_name(t->name) ? CAD_Q_FP32 : CAD_Q_FP16;
    return t->ndim == 2 ? CAD_Q_PER_ROW : CAD_Q_PER_TENSOR;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

float cad_int8_quantile_abs(const float *x, size_t n, float q, float *work) {
    if (n == 0) return 0.0f;
    for (size_t i = 0; i < n; i++) work[i] = fabsf(x[i]);
    qsort(work, n, sizeof *work, cmp_float);
    /* torch.quantile (linear): rank = q * (n-1) in the input dtype; lerp(below, above, frac) */
    float rank = q * (float)(n - 1);
    size_t lo = (size_t)rank, hi = (size_t)ceilf(rank);
    if (hi >= n) hi = n - 1;
    float w = rank - (float)lo, a = work[lo], b = work[hi];
    /* torch's CPU lerp: |w| < 0.5 ? a + w*(b-a) : b - (b-a)*(1-w) */
    return fabsf(w) < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

static int8_t quantize_one_q(float v, float clip, float scale, float qmax) {
    float c = v < clip ? v : clip;
    c = c > -clip ? c : -clip;
    float r = nearbyintf(c / scale); /* torch.round: half to even (default FE_TONEAREST) */
    if (r > qmax) r = qmax;
    if (r < -qmax) r = -qmax;
    return (int8_t)r;
}

static int8_t quantize_one(float v, float clip, float scale) { return quantize_one_q(v, clip, scale, 127.0f); }

/* GPTQ-lite's candidate clips (techniques.md §6), as quantiles of |row| */
static const float clip_candidates[] = {0.999f, 0.9995f, 0.9999f, 0.99999f, 1.0f};

void cad_quantize_rows(const float *t, int rows, int cols, int bits, int clip_search, int8_t *q, uint16_t *scale_f16,
                       float *work) {
    if (bits == CAD_QUANT_TERNARY) {
        for (int r = 0; r < rows; r++) {
            const float *row = t + (size_t)r * cols;
            double sum = 0;
            for (int c = 0; c < cols; c++) sum += fabsf(row[c]);
            float scale = (float)(sum / cols);
            if (!(scale > 0)) scale = 1.0f;
            for (int c = 0; c < cols; c++) q[(size_t)r * cols + c] = quantize_one_q(row[c], INFINITY, scale, 1.0f);
            scale_f16[r] = cad_f32_to_f16(scale);
        }
        return;
    }
    const float qmax = (float)((1 << (bits - 1)) - 1), min_scale = 1.0f / qmax;
    int n_cand = clip_search ? (int)(sizeof clip_candidates / sizeof *clip_candidates) : 1;
    for (int r = 0; r < rows; r++) {
        const float *row = t + (size_t)r * cols;
        int8_t *qr = q + (size_t)r * cols;
        double best_mse = INFINITY;
        float best_scale = 1.0f, best_clip = 0.0f;
        for (int k = 0; k < n_cand; k++) {
            float p = clip_search ? clip_candidates[k] : (float)CAD_INT8_CLIP_Q;
            float clip = cad_int8_quantile_abs(row, (size_t)cols, p, work);
            float scale = clip / qmax; /* train_gpt.py's (and the records') clamp_min(1/qmax) */
            if (scale < min_scale) scale = min_scale;
            if (!clip_search) { best_clip = clip, best_scale = scale; break; }
            double mse = 0; /* reconstruction error with the fp32 scale, as the records rank them */
            for (int c = 0; c < cols; c++) {
                double d = (double)quantize_one_q(row[c], clip, scale, qmax) * scale - row[c];
                mse += d * d;
            }
            if (mse < best_mse) best_mse = mse, best_clip = clip, best_scale = scale;
        }
        for (int c = 0; c < cols; c++) qr[c] = quantize_one_q(row[c], best_clip, best_scale, qmax);
        scale_f16[r] = cad_f32_to_f16(best_scale);
    }
}

void cad_quantize_rows_sdclip(const float *t, int rows, int cols, int bits, double k, int8_t *q, uint16_t *scale_f16) {
    const float qmax = (float)((1 << (bits - 1)) - 1), min_scale = 1.0f / qmax;
    for (int r = 0; r < rows; r++) {
        const float *row = t + (size_t)r * cols;
        double mean = 0, var = 0;
        for (int c = 0; c < cols; c++) mean += row[c];
        mean /= cols;
        for (int c = 0; c < cols; c++) var += (row[c] - mean) * (row[c] - mean);
        float clip = (float)(k * sqrt(var / cols));
        float scale = clip / qmax;
        if (scale < min_scale) scale = min_scale;
        for (int c = 0; c < cols; c++) q[(size_t)r * cols + c] = quantize_one_q(row[c], clip, scale, qmax);
        scale_f16[r] = cad_f32_to_f16(scale);
    }
}

void cad_int8_quantize_rows(const float *t, int rows, int cols, int8_t *q, uint16_t *scale_f16,
                            float *work) {
    cad_quantize_rows(t, rows, cols, 8, 0, q, scale_f16, work);
}

/* tok_emb / lm_head: the records keep the embedding at higher precision than the blocks */
static int is_embedding_name(const char *name) {
    return strstr(name, "tok_emb") != NULL || strstr(name, "lm_head") != NULL;
}

/* GPTQ's codes for t with the per-row scales already chosen (scale_f16): the steps are the
 * scales the reader will decode with. */
static int gptq_codes(const cad_named_tensor *t, int bits, const cad_quant_opts *qo, const float *Hf,
                      const uint16_t *scale_f16, int8_t *q, cad_err *e) {
    int rows = (int)t->shape[0], cols = (int)t->shape[1];
    double *W = malloc(t->numel * sizeof *W), *H = malloc((size_t)cols * cols * sizeof *H);
    float *step = malloc((size_t)rows * sizeof *step);
    if (!W || !H || !step) {
        free(W), free(H), free(step);
        return cad_fail(e, CAD_ENOMEM, "gptq: out of memory for tensor '%s'", t->name);
    }
    for (size_t k = 0; k < t->numel; k++) W[k] = t->data[k];
    for (size_t k = 0; k < (size_t)cols * cols; k++) H[k] = Hf[k];
    for (int r = 0; r < rows; r++) step[r] = cad_f16_to_f32(scale_f16[r]);
    int qmax = bits == CAD_QUANT_TERNARY ? 1 : (1 << (bits - 1)) - 1;
    int rc = cad_gptq_sweep(W, rows, cols, H, step, qmax, &qo->gptq, q, e);
    if (rc) cad_wrap(e, "tensor '%s'", t->name);
    free(W), free(H), free(step);
    return rc;
}

/* ---- quant_ext.h's refinements ---------------------------------------------------------- */

/* The bits a per-row tensor gets: its override, else embed_bits / matrix_bits. */
static int tensor_bits(const cad_quant_opts *qo, const cad_quant_ext_opts *qx, const char *name) {
    return cad_quant_bits_for(qx->bits_overrides, name, is_embedding_name(name) ? qo->embed_bits : qo->matrix_bits);
}

static int awq_applies(const cad_quant_ext_opts *qx, int i, const cad_named_tensor *t) {
    return qx->awq_frac > 0 && qx->calib && qx->calib[i] && !is_embedding_name(t->name) && t->shape[1] >= 2;
}

static int lqer_applies(const cad_quant_ext_opts *qx, const cad_named_tensor *t) {
    if (qx->lqer_rank <= 0) return 0;
    if (qx->lqer_tensors && qx->lqer_tensors[0]) return cad_quant_selected(qx->lqer_tensors, t->name);
    return !is_embedding_name(t->name);
}

/* Scheme 4 for a per-row tensor: only when a refinement applies, and never for ternary codes
 * (QAT's, which the refinements exclude in the config). */
static int ext_wanted(const cad_quant_opts *qo, const cad_quant_ext_opts *qx, int i, const cad_named_tensor *t) {
    if (tensor_bits(qo, qx, t->name) == CAD_QUANT_TERNARY) return 0;
    return awq_applies(qx, i, t) || lqer_applies(qx, t);
}

/* Encode and write one scheme-4 payload; *payload gets its byte count. */
static int write_ext(FILE *f, const cad_quant_opts *qo, const cad_quant_ext_opts *qx, int i, const cad_named_tensor *t, size_t *payload, cad_err *e) {
    int rows = (int)t->shape[0], cols = (int)t->shape[1], emb = is_embedding_name(t->name);
    cad_quantx_spec sp = {tensor_bits(qo, qx, t->name), qo->clip_search, emb ? qo->sdclip_embed_k : qo->sdclip_k, NULL, 0.0};
    double *energy = NULL;
    if (awq_applies(qx, i, t)) {
        energy = malloc((size_t)cols * sizeof *energy);
        if (!energy) return cad_fail(e, CAD_ENOMEM, "tensor '%s': out of memory", t->name);
        for (int c = 0; c < cols; c++) energy[c] = qx->calib[i][(size_t)c * cols + c];
        sp.energy = energy, sp.salient_frac = qx->awq_frac;
    }
    cad_quantx x;
    int rc = cad_quantx_encode(t->data, rows, cols, &sp, &x, t->name, e);
    free(energy);
    /* GPTQ's codes with the chosen scales (its sweep has one step per row, so not with salient
     * columns: the config refuses that pair), then LQER on what those codes leave */
    if (!rc && !emb && !(x.flags & CAD_QX_SALIENT) && qo->hessians && qo->hessians[i])
        rc = gptq_codes(t, sp.bits, qo, qo->hessians[i], x.scale, x.q, e);
    if (!rc && lqer_applies(qx, t)) {
        int rank = qx->lqer_rank < CAD_LQER_MAX_RANK ? qx->lqer_rank : CAD_LQER_MAX_RANK;
        rc = cad_quantx_add_lqer(t->data, &x, rank, t->name, e);
    }
    if (!rc) {
        cad_quantx_write(f, &x);
        *payload = cad_quantx_payload_bytes(rows, cols, x.flags, x.n_sal, x.rank);
    }
    cad_quantx_free(&x);
    return rc;
}

size_t cad_int8_tensor_plan(const cad_named_tensor *t, int i, const cad_quant_opts *qo, const cad_quant_ext_opts *qx,
                            int *scheme, int *bits) {
    static const cad_quant_opts baseline = {CAD_COMPRESS_ZLIB, 8, 8, 0, 0.0, 0.0, NULL, {0, 0, 0}};
    static const cad_quant_ext_opts none = {NULL, 0.0, NULL, 0, NULL};
    if (!qo) qo = &baseline;
    if (!qx) qx = &none;
    int sc = cad_int8_scheme(t);
    size_t head = 2 + strlen(t->name) + 1 + 1 + 8 * (size_t)t->ndim, numel = t->numel;
    *bits = sc == CAD_Q_FP32 ? 32 : sc == CAD_Q_FP16 ? 16 : 8;
    if (sc == CAD_Q_PER_ROW) {
        *bits = tensor_bits(qo, qx, t->name);
        if (ext_wanted(qo, qx, i, t)) {
            int rows = (int)t->shape[0], cols = (int)t->shape[1], flags = 0, n_sal = 0, rank = 0;
            if (awq_applies(qx, i, t)) {
                n_sal = (int)ceil(qx->awq_frac * cols);
                n_sal = n_sal < 1 ? 1 : n_sal > cols - 1 ? cols - 1 : n_sal;
                flags |= CAD_QX_SALIENT;
            }
            if (lqer_applies(qx, t)) {
                rank = qx->lqer_rank < CAD_LQER_MAX_RANK ? qx->lqer_rank : CAD_LQER_MAX_RANK;
                rank = rank < rows ? rank : rows;
                rank = rank < cols ? rank : cols;
                if (rank > 0) flags |= CAD_QX_LQER;
            }
            *scheme = CAD_Q_PER_ROW_EXT;
            return head + cad_quantx_payload_bytes(rows, cols, flags, n_sal, rank);
        }
    }
    *scheme = sc;
    switch (sc) {
    case CAD_Q_FP32: return head + 4 * numel;
    case CAD_Q_FP16: return head + 2 * numel;
    case CAD_Q_PER_ROW: return head + 2 * (size_t)t->shape[0] + numel;
    default: return head + 4 + numel;
    }
}

/* ---- container writing -------------------------------------------------------------------- */

static void put(FILE *f, const void *p, size_t n) { fwrite(p, 1, n, f); }
static void put_u32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    put(f, b, 4);
}

static const char *const compressor_names[] = {"zlib", "zstd", "lzma", "brotli"};

int cad_compressor_parse(const char *name) {
    for (int i = 0; i < (int)(sizeof compressor_names / sizeof *compressor_names); i++)
        if (!strcmp(name, compressor_names[i])) return i;
    return -1;
}

const char *cad_compressor_name(int compressor) {
    return compressor > 0 && compressor < (int)(sizeof compressor_names / sizeof *compressor_names)
               ? compressor_names[compressor] : "zlib";
}

/* ---- compressors --------------------------------------------------------------------------- */

int cad_compress_buf(int compressor, const void *src, size_t n, unsigned char **out, size_t *out_len,
                     const char *what, cad_err *e) {
    size_t cap;
    switch (compressor) {
    case CAD_COMPRESS_ZSTD: cap = ZSTD_compressBound(n); break;
    case CAD_COMPRESS_LZMA: cap = lzma_stream_buffer_bound(n); break;
    case CAD_COMPRESS_BROTLI: cap = BrotliEncoderMaxCompressedSize(n); break;
    default: cap = (size_t)compressBound((uLong)n); break;
    }
    if (cap == 0) cap = n + 1024; /* brotli answers 0 when it has no bound (huge inputs) */
    unsigned char *z = malloc(cap);
    if (!z) return cad_fail(e, CAD_ENOMEM, "%s: out of memory compressing", what);
    if (compressor == CAD_COMPRESS_ZSTD) {
        size_t r = ZSTD_compress(z, cap, src, n, ZSTD_maxCLevel());
        if (ZSTD_isError(r)) { free(z); return cad_fail(e, CAD_ERR, "%s: zstd compress failed: %s", what, ZSTD_getErrorName(r)); }
        cap = r;
    } else if (compressor == CAD_COMPRESS_LZMA) {
        /* the records' lzma.compress(preset=9|PRESET_EXTREME): an .xz container, CRC64 check */
        size_t pos = 0;
        lzma_ret r = lzma_easy_buffer_encode(9 | LZMA_PRESET_EXTREME, LZMA_CHECK_CRC64, NULL, src, n, z, &pos, cap);
        if (r != LZMA_OK) { free(z); return cad_fail(e, CAD_ERR, "%s: lzma compress failed (%d)", what, (int)r); }
        cap = pos;
    } else if (compressor == CAD_COMPRESS_BROTLI) {
        /* quality 11 (the maximum) and the largest standard window, as brotli.compress(q=11) */
        size_t zl = cap;
        if (!BrotliEncoderCompress(BROTLI_MAX_QUALITY, BROTLI_MAX_WINDOW_BITS, BROTLI_MODE_GENERIC, n, src, &zl, z)) {
            free(z);
            return cad_fail(e, CAD_ERR, "%s: brotli compress failed", what);
        }
        cap = zl;
    } else {
        uLongf zl = (uLongf)cap;
        int zrc = compress2(z, &zl, (const Bytef *)src, (uLong)n, 9);
        if (zrc != Z_OK) { free(z); return cad_fail(e, CAD_ERR, "%s: zlib compress failed (%d)", what, zrc); }
        cap = zl;
    }
    *out = z;
    *out_len = cap;
    return CAD_OK;
}

/* Grow *buf (capacity *cap) to hold at least need bytes; 0 when out of memory. */
static int grow(unsigned char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 1 << 16;
    while (c < need) c *= 2;
    unsigned char *nb = realloc(*buf, c);
    if (!nb) return 0;
    *buf = nb, *cap = c;
    return 1;
}

/* A zstd frame (magic 28 b5 2f fd) decompressed in one call: the encoder stores its size. */
static int unzstd(const unsigned char *src, size_t len, unsigned char **out, size_t *out_len, const char *what,
                  cad_err *e) {
    unsigned long long size = ZSTD_getFrameContentSize(src, len);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > ((size_t)1 << 34))
        return cad_fail(e, CAD_EFORMAT, "%s: not a complete zstd frame (truncated artifact?)", what);
    /* the size is the frame's own claim, allocated before a byte is decoded: no zstd block
     * expands more than 128 KiB from its 4 bytes (an RLE block), so a larger claim is a lie
     * (make fuzz: a 22-byte frame claiming 3.7 GB) */
    if (size / 32768 > len)
        return cad_fail(e, CAD_EFORMAT,
                        "%s: zstd frame claims %llu bytes from %zu compressed: the artifact is "
                        "damaged", what, size, len);
    unsigned char *dst = malloc(size ? (size_t)size : 1);
    if (!dst) return cad_fail(e, CAD_ENOMEM, "%s: out of memory", what);
    size_t r = ZSTD_decompress(dst, (size_t)size, src, len);
    if (ZSTD_isError(r) || r != size) {
        free(dst);
        return cad_fail(e, CAD_EFORMAT, "%s: zstd decompress failed: %s", what,
                        ZSTD_isError(r) ? ZSTD_getErrorName(r) : "size mismatch");
    }
    *out = dst;
    *out_len = (size_t)size;
    return CAD_OK;
}

static int unzlib(const unsigned char *src, size_t len, unsigned char **out, size_t *out_len, const char *what,
                  cad_err *e) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK) return cad_fail(e, CAD_ERR, "%s: zlib init failed", what);
    unsigned char *buf = NULL;
    size_t cap = 0, olen = 0;
    int rc = CAD_OK, zrc = Z_OK;
    zs.next_in = (Bytef *)(uintptr_t)src;
    zs.avail_in = (uInt)len; /* artifacts are far below 4 GiB; a longer input reads as truncated */
    while (zrc != Z_STREAM_END) {
        if (!grow(&buf, &cap, olen + (1 << 16))) { rc = cad_fail(e, CAD_ENOMEM, "%s: out of memory", what); break; }
        zs.next_out = buf + olen;
        zs.avail_out = (uInt)(cap - olen);
        zrc = inflate(&zs, Z_NO_FLUSH);
        olen = cap - zs.avail_out;
        if (zrc == Z_BUF_ERROR) { /* no progress with output room left: the input ran out */
            rc = cad_fail(e, CAD_EFORMAT, "%s: truncated zlib stream (not an int8 artifact?)", what);
            break;
        }
        if (zrc != Z_OK && zrc != Z_STREAM_END) {
            rc = cad_fail(e, CAD_EFORMAT, "%s: not a zlib stream (inflate error %d)", what, zrc);
            break;
        }
    }
    inflateEnd(&zs);
    if (rc) { free(buf); return rc; }
    *out = buf;
    *out_len = olen;
    return CAD_OK;
}

static int unxz(const unsigned char *src, size_t len, unsigned char **out, size_t *out_len, const char *what,
                cad_err *e) {
    lzma_stream zs = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&zs, UINT64_MAX, 0) != LZMA_OK) return cad_fail(e, CAD_ERR, "%s: lzma init failed", what);
    unsigned char *buf = NULL;
    size_t cap = 0;
    int rc = CAD_OK;
    zs.next_in = src;
    zs.avail_in = len;
    lzma_ret r = LZMA_OK;
    while (r != LZMA_STREAM_END) {
        size_t olen = (size_t)zs.total_out;
        if (!grow(&buf, &cap, olen + (1 << 16))) { rc = cad_fail(e, CAD_ENOMEM, "%s: out of memory", what); break; }
        zs.next_out = buf + olen;
        zs.avail_out = cap - olen;
        r = lzma_code(&zs, LZMA_FINISH);
        if (r != LZMA_OK && r != LZMA_STREAM_END) {
            rc = cad_fail(e, CAD_EFORMAT, "%s: %s xz stream (lzma error %d)", what,
                          r == LZMA_BUF_ERROR ? "truncated" : "not an", (int)r);
            break;
        }
    }
    *out_len = (size_t)zs.total_out;
    lzma_end(&zs);
    if (rc) { free(buf); return rc; }
    *out = buf;
    return CAD_OK;
}

static int unbrotli(const unsigned char *src, size_t len, unsigned char **out, size_t *out_len, const char *what,
                    cad_err *e) {
    BrotliDecoderState *st = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    if (!st) return cad_fail(e, CAD_ENOMEM, "%s: brotli init failed", what);
    unsigned char *buf = NULL;
    size_t cap = 0, olen = 0, avail_in = len;
    const uint8_t *next_in = src;
    int rc = CAD_OK;
    BrotliDecoderResult r = BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT;
    while (r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) {
        if (!grow(&buf, &cap, olen + (1 << 16))) { rc = cad_fail(e, CAD_ENOMEM, "%s: out of memory", what); break; }
        size_t avail_out = cap - olen;
        uint8_t *next_out = buf + olen;
        r = BrotliDecoderDecompressStream(st, &avail_in, &next_in, &avail_out, &next_out, NULL);
        olen = (size_t)(next_out - buf);
    }
    if (!rc && (r != BROTLI_DECODER_RESULT_SUCCESS || avail_in != 0))
        rc = cad_fail(e, CAD_EFORMAT, "%s: not a zlib, zstd, xz or brotli stream (%s)", what,
                      r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT ? "truncated brotli stream"
                      : r == BROTLI_DECODER_RESULT_SUCCESS        ? "bytes after the brotli stream"
                                                                  : BrotliDecoderErrorString(BrotliDecoderGetErrorCode(st)));
    BrotliDecoderDestroyInstance(st);
    if (rc) { free(buf); return rc; }
    *out = buf;
    *out_len = olen;
    return CAD_OK;
}

int cad_decompress_buf(const unsigned char *src, size_t n, unsigned char **out, size_t *out_len, const char *what,
                       cad_err *e) {
    static const unsigned char xz_magic[6] = {0xfd, '7', 'z', 'X', 'Z', 0};
    if (n >= 4 && src[0] == 0x28 && src[1] == 0xb5 && src[2] == 0x2f && src[3] == 0xfd)
        return unzstd(src, n, out, out_len, what, e);
    if (n >= 6 && !memcmp(src, xz_magic, 6)) return unxz(src, n, out, out_len, what, e);
    /* zlib header: deflate method (CMF low nibble 8) and (CMF*256 + FLG) % 31 == 0 */
    if (n >= 2 && (src[0] & 0x0f) == 8 && ((src[0] << 8) | src[1]) % 31 == 0) return unzlib(src, n, out, out_len, what, e);
    return unbrotli(src, n, out, out_len, what, e);
}

int cad_int8_export(const char *path, const cad_named_tensor *ts, int n, const cad_quant_opts *qo,
                    cad_int8_stats *st, cad_err *e) {
    return cad_int8_export_ext(path, ts, n, qo, NULL, st, e);
}

int cad_int8_export_ext(const char *path, const cad_named_tensor *ts, int n, const cad_quant_opts *qo,
                        const cad_quant_ext_opts *qx, cad_int8_stats *st, cad_err *e) {
    static const cad_quant_opts baseline = {CAD_COMPRESS_ZLIB, 8, 8, 0, 0.0, 0.0, NULL, {0, 0, 0}};
    static const cad_quant_ext_opts none = {NULL, 0.0, NULL, 0, NULL};
    if (!qx) qx = &none;
    if (!qo) qo = &baseline;
    int compressor = qo->compressor;
    memset(st, 0, sizeof *st);
    char *raw = NULL;
    size_t raw_len = 0;
    FILE *f = open_memstream(&raw, &raw_len);
    if (!f) return cad_fail(e, CAD_ENOMEM, "%s: cannot build the container", path);
    put(f, CONTAINER_MAGIC, 8);
    put_u32(f, CONTAINER_VERSION);
    put_u32(f, (uint32_t)n);
    size_t max_numel = 0;
    for (int i = 0; i < n; i++) if (ts[i].numel > max_numel) max_numel = ts[i].numel;
    float *work = malloc((max_numel ? max_numel : 1) * sizeof(float));
    int8_t *qbuf = malloc(max_numel ? max_numel : 1);
    uint16_t *hbuf = malloc((max_numel ? max_numel : 1) * sizeof(uint16_t));
    if (!work || !qbuf || !hbuf) {
        fclose(f), free(raw), free(work), free(qbuf), free(hbuf);
        return cad_fail(e, CAD_ENOMEM, "%s: out of memory quantizing", path);
    }
    for (int i = 0; i < n; i++) {
        const cad_named_tensor *t = &ts[i];
        int scheme = cad_int8_scheme(t);
        int ext = scheme == CAD_Q_PER_ROW && ext_wanted(qo, qx, i, t);
        if (ext) scheme = CAD_Q_PER_ROW_EXT;
        size_t name_len = strlen(t->name);
        uint16_t nl = (uint16_t)name_len;
        put(f, &nl, 2);
        put(f, t->name, name_len);
        unsigned char sc = (unsigned char)scheme, nd = (unsigned char)t->ndim;
        put(f, &sc, 1);
        put(f, &nd, 1);
        for (int d = 0; d < t->ndim; d++) put(f, &t->shape[d], 8);
        st->param_count += t->numel;
        st->num_tensors++;
        st->baseline_tensor_bytes += t->numel * 4;
        if (scheme == CAD_Q_FP32) {
            put(f, t->data, t->numel * 4);
            st->int8_payload_bytes += t->numel * 4;
        } else if (scheme == CAD_Q_FP16) {
            for (size_t k = 0; k < t->numel; k++) hbuf[k] = cad_f32_to_f16(t->data[k]);
            put(f, hbuf, t->numel * 2);
            st->int8_payload_bytes += t->numel * 2;
        } else if (scheme == CAD_Q_PER_ROW_EXT) {
            size_t pb = 0;
            int xrc = write_ext(f, qo, qx, i, t, &pb, e);
            if (xrc) { fclose(f), free(raw), free(work), free(qbuf), free(hbuf); return xrc; }
            st->num_float_tensors++;
            st->int8_payload_bytes += pb;
        } else if (scheme == CAD_Q_PER_ROW) {
            int rows = (int)t->shape[0], cols = (int)t->shape[1];
            int emb = is_embedding_name(t->name);
            int bits = tensor_bits(qo, qx, t->name);
            double k = emb ? qo->sdclip_embed_k : qo->sdclip_k;
            if (k > 0) cad_quantize_rows_sdclip(t->data, rows, cols, bits, k, qbuf, hbuf);
            else cad_quantize_rows(t->data, rows, cols, bits, qo->clip_search, qbuf, hbuf, work);
            if (!emb && qo->hessians && qo->hessians[i]) {
                int grc = gptq_codes(t, bits, qo, qo->hessians[i], hbuf, qbuf, e);
                if (grc) { fclose(f), free(raw), free(work), free(qbuf), free(hbuf); return grc; }
            }
            put(f, hbuf, (size_t)rows * 2);
            put(f, qbuf, t->numel);
            st->num_float_tensors++;
            st->int8_payload_bytes += t->numel + (size_t)rows * 2;
        } else {
            /* vectors/scalars: one scale; clip_abs/127 in double, stored as an fp32 tensor */
            float clip = cad_int8_quantile_abs(t->data, t->numel, (float)CAD_INT8_CLIP_Q, work);
            float scale = clip > 0 ? (float)((double)clip / 127.0) : 1.0f;
            for (size_t k = 0; k < t->numel; k++) qbuf[k] = quantize_one(t->data[k], clip, scale);
            put(f, &scale, 4);
            put(f, qbuf, t->numel);
            st->num_float_tensors++;
            st->int8_payload_bytes += t->numel + 4;
        }
    }
    free(work), free(qbuf), free(hbuf);
    if (fclose(f)) { free(raw); return cad_fail(e, CAD_EIO, "%s: cannot build the container", path); }
    char *grown = realloc(raw, raw_len + 4);
    if (!grown) { free(raw); return cad_fail(e, CAD_ENOMEM, "%s: out of memory", path); }
    raw = grown;
    uint32_t crc = (uint32_t)crc32_z(0L, (const Bytef *)raw, raw_len);
    memcpy(raw + raw_len, &crc, 4);
    raw_len += 4;
    st->raw_bytes = raw_len;

    unsigned char *z;
    size_t zlen;
    int zrc = cad_compress_buf(compressor, raw, raw_len, &z, &zlen, path, e);
    free(raw);
    if (zrc) return zrc;
    st->compressed_bytes = zlen;

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *out = fopen(tmp, "wb");
    if (!out) { free(z); return cad_fail(e, CAD_EIO, "%s: cannot create: %s", tmp, strerror(errno)); }
    size_t w = fwrite(z, 1, zlen, out);
    free(z);
    if (fclose(out) || w != zlen) { unlink(tmp); return cad_fail(e, CAD_EIO, "%s: write failed", tmp); }
    if (rename(tmp, path)) { unlink(tmp); return cad_fail(e, CAD_EIO, "%s: rename failed: %s", path, strerror(errno)); }
    return CAD_OK;
}

/* ---- reading --------------------------------------------------------------------------------- */

typedef struct rd {
    const unsigned char *p, *end;
} rd;

static int take(rd *r, void *dst, size_t n) {
    if ((size_t)(r->end - r->p) < n) return 0;
    memcpy(dst, r->p, n);
    r->p += n;
    return 1;
}

/* The whole file, decompressed by whichever compressor wrote it. */
static int inflate_all(const char *path, unsigned char **out, size_t *out_len, cad_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return cad_fail(e, CAD_EIO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char *src = NULL;
    size_t cap = 0, len = 0, got;
    do {
        if (!grow(&src, &cap, len + (1 << 20))) { fclose(f); free(src); return cad_fail(e, CAD_ENOMEM, "%s: out of memory", path); }
        got = fread(src + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(src); return cad_fail(e, CAD_EIO, "%s: read failed", path); }
    int rc = cad_decompress_buf(src, len, out, out_len, path, e);
    free(src);
    return rc;
}

int cad_int8_import(const char *path, cad_named_tensor *ts, int n, cad_err *e) {
    unsigned char *buf;
    size_t len;
    int rc = inflate_all(path, &buf, &len, e);
    if (rc) return rc;
    rd r = {buf, buf + len};
    char magic[8];
    uint32_t version = 0, count = 0;
    char *seen = calloc((size_t)(n ? n : 1), 1);
    if (!seen) { free(buf); return cad_fail(e, CAD_ENOMEM, "out of memory"); }
    if (!take(&r, magic, 8) || memcmp(magic, CONTAINER_MAGIC, 8) != 0) {
        rc = cad_fail(e, CAD_EFORMAT, "%s: bad magic (expected %s)", path, CONTAINER_MAGIC);
        goto done;
    }
    if (!take(&r, &version, 4) || version < 1 || version > CONTAINER_VERSION) {
        rc = cad_fail(e, CAD_EFORMAT, "%s: container version %u (expected 1..%u)", path, version, CONTAINER_VERSION);
        goto done;
    }
    if (version >= 2) {
        uint32_t want, got;
        if (len < 20) { rc = cad_fail(e, CAD_EFORMAT, "%s: truncated header", path); goto done; }
        memcpy(&want, buf + len - 4, 4);
        got = (uint32_t)crc32_z(0L, buf, len - 4);
        if (got != want) {
            rc = cad_fail(e, CAD_EFORMAT,
                          "%s: checksum mismatch (crc32 %08x, stored %08x): the artifact is "
                          "damaged; export it again from the run (its weights file or a rerun)",
                          path, got, want);
            goto done;
        }
        r.end -= 4;
    }
    if (!take(&r, &count, 4)) { rc = cad_fail(e, CAD_EFORMAT, "%s: truncated header", path); goto done; }
    for (uint32_t k = 0; k < count; k++) {
        uint16_t nl;
        char name[1024];
        unsigned char scheme, ndim;
        int64_t shape[CAD_TENSOR_MAX_DIMS];
        if (!take(&r, &nl, 2) || nl >= sizeof name || !take(&r, name, nl)) {
            rc = cad_fail(e, CAD_EFORMAT, "%s: truncated tensor %u header", path, k);
            goto done;
        }
        name[nl] = 0;
        if (!take(&r, &scheme, 1) || !take(&r, &ndim, 1) || ndim > CAD_TENSOR_MAX_DIMS || scheme > CAD_Q_PER_ROW_EXT ||
            !take(&r, shape, (size_t)ndim * 8)) {
            rc = cad_fail(e, CAD_EFORMAT, "%s: tensor '%s': bad header", path, name);
            goto done;
        }
        int i = 0;
        while (i < n && strcmp(ts[i].name, name) != 0) i++;
        if (i == n) { rc = cad_fail(e, CAD_EFORMAT, "%s: unexpected tensor '%s'", path, name); goto done; }
        cad_named_tensor *t = &ts[i];
        int same = t->ndim == ndim;
        for (int d = 0; same && d < ndim; d++) same = shape[d] == t->shape[d];
        if (!same) { rc = cad_fail(e, CAD_EFORMAT, "%s: tensor '%s': shape differs from the model", path, name); goto done; }
        if ((scheme == CAD_Q_PER_ROW || scheme == CAD_Q_PER_ROW_EXT) && ndim != 2) { rc = cad_fail(e, CAD_EFORMAT, "%s: tensor '%s': per-row scheme needs 2-D", path, name); goto done; }
        seen[i] = 1;
        size_t numel = t->numel;
        if (scheme == CAD_Q_FP32) {
            if (!take(&r, t->data, numel * 4)) goto trunc;
        } else if (scheme == CAD_Q_FP16) {
            for (size_t j = 0; j < numel; j++) {
                uint16_t h;
                if (!take(&r, &h, 2)) goto trunc;
                t->data[j] = cad_f16_to_f32(h);
            }
        } else if (scheme == CAD_Q_PER_ROW) {
            size_t rows = (size_t)shape[0], cols = (size_t)shape[1];
            const unsigned char *sc = r.p;
            if ((size_t)(r.end - r.p) < rows * 2 + numel) goto trunc;
            const int8_t *q = (const int8_t *)(r.p + rows * 2);
            for (size_t row = 0; row < rows; row++) {
                uint16_t h;
                memcpy(&h, sc + 2 * row, 2);
                float s = cad_f16_to_f32(h);
                for (size_t c = 0; c < cols; c++) t->data[row * cols + c] = (float)q[row * cols + c] * s;
            }
            r.p += rows * 2 + numel;
        } else if (scheme == CAD_Q_PER_ROW_EXT) {
            rc = cad_quantx_read(&r.p, r.end, (int)shape[0], (int)shape[1], t->data, path, name, e);
            if (rc) goto done;
        } else {
            float s;
            if (!take(&r, &s, 4) || (size_t)(r.end - r.p) < numel) goto trunc;
            const int8_t *q = (const int8_t *)r.p;
            for (size_t j = 0; j < numel; j++) t->data[j] = (float)q[j] * s;
            r.p += numel;
        }
        continue;
    trunc:
        rc = cad_fail(e, CAD_EFORMAT, "%s: tensor '%s': payload truncated", path, name);
        goto done;
    }
    if (r.p != r.end) { rc = cad_fail(e, CAD_EFORMAT, "%s: %zu trailing bytes after the last tensor", path, (size_t)(r.end - r.p)); goto done; }
    for (int i = 0; i < n; i++)
        if (!seen[i]) { rc = cad_fail(e, CAD_EFORMAT, "%s: tensor '%s' missing", path, ts[i].name); goto done; }
done:
    free(seen);
    free(buf);
    return rc;
}

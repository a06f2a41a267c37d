/*
 * export.h — the baseline int8+zlib artifact, exactly train_gpt.py's quantize_state_dict_int8 /
 * dequantize_state_dict_int8, in caddie's own container:
 *   - float tensors with more than 65,536 elements: int8 with the 99.99984th-percentile clip
 *     (torch.quantile's linear interpolation, in fp32), per row with fp16 scales for 2-D
 *     tensors, one fp32 scale otherwise;
 *   - smaller tensors whose name contains a control pattern (attn_scale, mlp_scale, resid_mix,
 *     q_gain, skip_weight, ...): kept fp32; other small tensors: stored fp16;
 *   - then zlib level 9 over the whole container (train_gpt.py), or zstd level 22 with
 *     artifact_compressor: zstd (the records' switch, ~5% smaller), or lzma (xz container,
 *     preset 9|extreme) or brotli (quality 11, window 24) as later records do; reading detects
 *     which by the leading magic (brotli has none: it is what remains after the other three).
 * Dequantizing reproduces what the PyTorch round trip loads (q * fp16 scale in fp32), and that
 * round-tripped model is what the final score evaluates.
 *
 * Container (before zlib), little-endian:
 *   "CADQINT8" | u32 version (2) | u32 n_tensors | per tensor:
 *   u16 name_len | name | u8 scheme (0 per-row int8, 1 per-tensor int8, 2 fp16, 3 fp32) |
 *   u8 ndim | i64 shape[ndim] | payload:
 *     0: fp16 scale[rows] then int8 q[numel]; 1: f32 scale then int8 q[numel];
 *     2: fp16 [numel]; 3: f32 [numel]; 4: per-row with AWQ-lite salient columns and/or LQER
 *     factors (quant_ext.h; written only when those keys are on)
 *   then (version 2) u32 crc32 (zlib's) of every container byte before it, checked on read:
 *   brotli and zstd frames carry no checksum of their own, so a flipped bit could decode into
 *   wrong weights. Version 1 files (no crc) are still read.
 * Not here: code-byte accounting (train.c sums the counted files), torch.save compatibility.
 */
#ifndef CADDIE_EXPORT_H
#define CADDIE_EXPORT_H

#include "engine/gptq.h"
#include "engine/safetensors.h"
#include "engine/status.h"

#include <stddef.h>
#include <stdint.h>

#define CAD_INT8_KEEP_FLOAT_MAX_NUMEL 65536
#define CAD_INT8_CLIP_Q 0.9999984 /* INT8_CLIP_PERCENTILE / 100 */

enum { CAD_Q_PER_ROW = 0, CAD_Q_PER_TENSOR = 1, CAD_Q_FP16 = 2, CAD_Q_FP32 = 3 };

typedef struct cad_int8_stats {
    size_t param_count, num_tensors, num_float_tensors;
    size_t baseline_tensor_bytes; /* fp32 bytes of the inputs */
    size_t int8_payload_bytes;    /* q + scales + passthrough bytes */
    size_t raw_bytes;             /* container size before zlib */
    size_t compressed_bytes;      /* the artifact file size */
} cad_int8_stats;

enum { CAD_COMPRESS_ZLIB = 0, CAD_COMPRESS_ZSTD = 1, CAD_COMPRESS_LZMA = 2, CAD_COMPRESS_BROTLI = 3 };
/* "zlib" / "zstd" / "lzma" / "brotli" -> CAD_COMPRESS_*, -1 if unknown; and back (for log lines). */
int cad_compressor_parse(const char *name);
const char *cad_compressor_name(int compressor);

/* Compress src[n] into a malloc'd buffer (*out, *out_len) with one of CAD_COMPRESS_* at the
 * artifact's settings; and decompress any of them (format told by magic as above). Used for the
 * artifact and for the counted code bytes (code_compress). CAD_ERR/CAD_EFORMAT name `what`. */
int cad_compress_buf(int compressor, const void *src, size_t n, unsigned char **out, size_t *out_len,
                     const char *what, cad_err *e);
int cad_decompress_buf(const unsigned char *src, size_t n, unsigned char **out, size_t *out_len, const char *what,
                       cad_err *e);

/* Is this name a control tensor (kept in fp32 when small)? Substring match like train_gpt.py. */
int cad_int8_is_control_name(const char *name);

/* The scheme a tensor gets. */
int cad_int8_scheme(const cad_named_tensor *t);

/* torch.quantile(|x|, q) over n values with linear interpolation, in fp32 like torch.
 * work holds n floats. */
float cad_int8_quantile_abs(const float *x, size_t n, float q, float *work);

/* Per-row int8 of a [rows, cols] matrix: q[rows*cols], scale_f16[rows] (train_gpt.py's
 * quantize_float_tensor for ndim == 2). work holds cols floats. */
void cad_int8_quantize_rows(const float *t, int rows, int cols, int8_t *q, uint16_t *scale_f16,
                            float *work);

/* How the artifact is made. The baseline (NULL) is train_gpt.py's: int8 everywhere, the
 * 99.99984th-percentile clip, zlib-9. Low-bit codes are still stored one per int8 byte (the
 * records' "int6 in int8 containers": the compressor squeezes the unused range), so the
 * container and its reader do not change; scale = max(clip / qmax, 1 / qmax), qmax = 2^(b-1)-1. */
typedef struct cad_quant_opts {
    int compressor;  /* CAD_COMPRESS_* */
    int matrix_bits; /* per-row 2-D tensors other than the embedding: 8 (baseline), 6 or 5;
                      * CAD_QUANT_TERNARY: ternary (qat_bits: ternary) */
    int embed_bits;  /* tok_emb / lm_head rows: 8 (records keep the embedding at int8) */
    int clip_search; /* GPTQ-lite: per row the clip quantile of {0.999, 0.9995, 0.9999,
                      * 0.99999, 1} with the least reconstruction MSE, instead of 0.9999984 */
    double sdclip_k; /* SDClip: clip = k * std(row) (records: 12.85 for int6 matrices); 0 = off.
                      * Takes precedence over clip_search for the block matrices. */
    double sdclip_embed_k; /* the same for tok_emb / lm_head rows (records: 20 at int8); 0 = off */
    /* Full GPTQ (quant_method: gptq): hessians[i], when the array and the entry are non-NULL,
     * is H = X^T X (fp32 [cols, cols]) of tensor i's input; that per-row block matrix keeps the
     * scales chosen above but takes its codes from GPTQ's column sweep (gptq.h) with these
     * settings. The embedding rows never use it. */
    const float *const *hessians;
    cad_gptq_opts gptq;
} cad_quant_opts;

/* quant_ext.h's refinements (all off when zero/NULL): per-tensor bits "group:bits,..."
 * replacing embed_bits / matrix_bits; AWQ-lite's salient column fraction, chosen from the
 * diagonal of calib[i] (the same X^T X as hessians, but without GPTQ; a block matrix only);
 * LQER's rank and the tensors it applies to ("" = every per-row block matrix). */
typedef struct cad_quant_ext_opts {
    const char *bits_overrides;
    double awq_frac;
    const float *const *calib;
    int lqer_rank;
    const char *lqer_tensors;
} cad_quant_ext_opts;

/* bits value of BitNet b1.58 ternary rows (qat_bits: ternary): per row scale = mean|w| (summed
 * in double in column order, then rounded to fp32), q = clamp(round(w / scale), -1, 1); a zero
 * row gets scale 1. No clip and no 1/qmax floor: the absmean is the scale. */
#define CAD_QUANT_TERNARY 1

/* Per-row quantization of a [rows, cols] matrix to bits (2..8, or CAD_QUANT_TERNARY, where
 * clip_search is ignored) as above; bits 8 without clip search is cad_int8_quantize_rows. */
void cad_quantize_rows(const float *t, int rows, int cols, int bits, int clip_search, int8_t *q, uint16_t *scale_f16,
                       float *work);
/* SDClip rows: clip = k * (population) standard deviation of the row, then as above. */
void cad_quantize_rows_sdclip(const float *t, int rows, int cols, int bits, double k, int8_t *q, uint16_t *scale_f16);

/* Quantize + serialize + compress + write atomically to path. qo NULL = the baseline. */
int cad_int8_export(const char *path, const cad_named_tensor *ts, int n, const cad_quant_opts *qo,
                    cad_int8_stats *stats, cad_err *e);
/* The same with quant_ext.h's refinements (qx NULL = none: cad_int8_export). */
int cad_int8_export_ext(const char *path, const cad_named_tensor *ts, int n, const cad_quant_opts *qo,
                        const cad_quant_ext_opts *qx, cad_int8_stats *stats, cad_err *e);

/* The scheme (CAD_Q_* or CAD_Q_PER_ROW_EXT), code bits (per-row: its bits; per-tensor 8; fp16
 * 16; fp32 32) and container bytes (header + payload) that cad_int8_export_ext gives ts[i]
 * under qo / qx (NULL: none): what `caddie budget` counts. AWQ-lite columns count when
 * qx->calib[i] is set, as in the export. */
size_t cad_int8_tensor_plan(const cad_named_tensor *t, int i, const cad_quant_opts *qo, const cad_quant_ext_opts *qx,
                            int *scheme, int *bits);
/* The container bytes around the tensors: magic, version, count and the crc32 trailer. */
#define CAD_INT8_CONTAINER_OVERHEAD 20

/* Read an artifact and dequantize every tensor of ts (matched by name, shapes checked; every
 * tensor must be present, and every tensor in the file must be in ts). */
int cad_int8_import(const char *path, cad_named_tensor *ts, int n, cad_err *e);

#endif

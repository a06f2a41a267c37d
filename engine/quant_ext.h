/*
 * quant_ext.h — the artifact's per-tensor refinements on top of export.h's per-row codes:
 *
 *   - mixed bits (quant_bits_overrides): "group:bits,..." where a group is tok_emb, lm_head,
 *     attn (blocks.N.attn.c_q/c_k/c_v/proj), mlp (blocks.N.mlp.fc/proj) or one full tensor name
 *     ("blocks.3.mlp.fc.weight", which wins over its group); bits 2..8. Applies to every tensor
 *     the artifact stores per row, and to QAT's fake quantisation of the block matrices (so the
 *     artifact still decodes exactly to what QAT trained with).
 *   - AWQ-lite (awq_salient_frac f): the ceil(f * cols) input columns with the largest
 *     calibration energy diag(XᵀX) (the GPTQ calibration's Hessian diagonal) are quantised at
 *     8 bits with their own per-row scale; the other columns at the tensor's bits with the
 *     clip rule applied to them alone (so the salient columns' outliers no longer widen the
 *     scale of the rest).
 *   - LQER (lqer_rank r, lqer_tensors): after quantisation, the rank-r factors A [rows, r],
 *     B [r, cols] of the residual W − deq(Q(W)) (randomised subspace iteration in double, then
 *     fp16), stored beside the codes; the reader adds A·B.
 *
 * A tensor with either of the last two is written with scheme CAD_Q_PER_ROW_EXT (4); everything
 * else keeps its old scheme, so artifacts of configs without these keys are byte-identical to
 * before and old readers see an unknown scheme only when a new feature is used. Payload of
 * scheme 4, little-endian, after the usual header:
 *   u8 flags (1 salient columns, 2 LQER) | fp16 scale[rows] |
 *   [flags&1: u32 n_sal | u32 col[n_sal] (strictly ascending) | fp16 sal_scale[rows]] |
 *   int8 q[rows*cols] | [flags&2: u32 rank | fp16 A[rows*rank] | fp16 B[rank*cols]]
 * Decode: w[r][c] = q[r][c] * (salient c ? sal_scale[r] : scale[r]), then, with LQER,
 * + the fp32 sum over k ascending of A[r][k]*B[k][c] — one function (cad_quantx_decode) that
 * the exporter also uses to compute the residual, so the decode is exactly what it planned.
 *
 * Not here: the container and the other schemes (export.c), collecting calibration (train.c).
 */
#ifndef CADDIE_QUANT_EXT_H
#define CADDIE_QUANT_EXT_H

#include "engine/status.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CAD_Q_PER_ROW_EXT 4
#define CAD_QX_SALIENT 1
#define CAD_QX_LQER 2
#define CAD_LQER_MAX_RANK 64
#define CAD_QX_MAX_OVERRIDES 64

/* "tok_emb", "lm_head", "attn", "mlp", or NULL: the group a tensor name belongs to. */
const char *cad_quant_group(const char *tensor_name);

/* Check an overrides text ("" = none): each comma-separated entry NAME:BITS (or NAME=BITS) with
 * NAME a group or a full tensor name (it contains a '.') and BITS 2..8, no NAME twice.
 * CAD_ECONFIG naming `key` and the entry otherwise. */
int cad_quant_overrides_check(const char *key, const char *text, cad_err *e);
/* The bits of tensor `name` under the overrides (a checked text): its full name's entry, else
 * its group's, else def. */
int cad_quant_bits_for(const char *overrides, const char *name, int def);
/* Check a tensor selection text (lqer_tensors): comma-separated groups or full tensor names. */
int cad_quant_selection_check(const char *key, const char *text, cad_err *e);
/* Whether `name` is selected: "" selects every tensor; else its full name or its group listed. */
int cad_quant_selected(const char *selection, const char *name);
/* Every full tensor name used in overrides/selection must be one of names[n]: a misspelt name
 * would otherwise silently change nothing. CAD_ECONFIG naming key and the name. */
int cad_quant_names_check(const char *key, const char *text, const char *const *names, int n, cad_err *e);

/* AWQ-lite: the salient columns of a [*, cols] matrix, ceil(frac*cols) (at least 1, at most
 * cols-1) by descending energy[c] (ties: lower index first), written ascending to col; returns
 * their count. */
int cad_awq_salient_cols(const double *energy, int cols, double frac, int *col);

/* One tensor's scheme-4 encoding in memory. */
typedef struct cad_quantx {
    int rows, cols, flags;
    uint16_t *scale;           /* [rows] */
    int n_sal;                 /* salient columns (flags & CAD_QX_SALIENT) */
    int *sal;                  /* [n_sal], ascending */
    uint16_t *sal_scale;       /* [rows] */
    int8_t *q;                 /* [rows*cols] */
    int rank;                  /* LQER (flags & CAD_QX_LQER) */
    uint16_t *A, *B;           /* [rows*rank], [rank*cols] */
} cad_quantx;

/* What the exporter needs to encode one matrix. */
typedef struct cad_quantx_spec {
    int bits;            /* 2..8 for the non-salient columns */
    int clip_search;     /* the clip rule (export.h's cad_quant_opts) */
    double sdclip_k;     /* > 0: SDClip */
    const double *energy;/* [cols] calibration energy, or NULL: no salient columns */
    double salient_frac; /* AWQ-lite fraction (used with energy) */
} cad_quantx_spec;

/* Encode t [rows, cols] into x: codes and scales, salient columns when sp asks (buffers
 * malloc'd; cad_quantx_free, also after a failure). CAD_ENOMEM naming `name`. */
int cad_quantx_encode(const float *t, int rows, int cols, const cad_quantx_spec *sp, cad_quantx *x,
                      const char *name, cad_err *e);
/* LQER: rank-r factors of t - decode(x) (the codes as they are now, e.g. after GPTQ changed
 * them) added to x; rank is capped at min(rows, cols) and CAD_LQER_MAX_RANK by the caller. */
int cad_quantx_add_lqer(const float *t, cad_quantx *x, int rank, const char *name, cad_err *e);
void cad_quantx_free(cad_quantx *x);
/* The weights x decodes to (out [rows*cols]); with_lqer 0 leaves the low-rank term out. */
void cad_quantx_decode(const cad_quantx *x, int with_lqer, float *out);
/* Serialized payload size (after the tensor header) and writing it. */
size_t cad_quantx_payload_bytes(int rows, int cols, int flags, int n_sal, int rank);
void cad_quantx_write(FILE *f, const cad_quantx *x);
/* Parse a payload at *p (< end) for a [rows, cols] tensor and decode it into out; *p advances.
 * CAD_EFORMAT naming path and tensor when truncated or malformed. */
int cad_quantx_read(const unsigned char **p, const unsigned char *end, int rows, int cols, float *out,
                    const char *path, const char *name, cad_err *e);

/* LQER factors of a residual R [rows, cols] (double), rank r <= min(rows, cols): A [rows, r],
 * B [r, cols] as fp16, from 4 rounds of subspace iteration on a fixed pseudo-random start, B
 * computed from the fp16-rounded A. CAD_ENOMEM naming `name`. */
int cad_lqer_factors(const double *R, int rows, int cols, int rank, uint16_t *A, uint16_t *B, const char *name,
                     cad_err *e);

#endif

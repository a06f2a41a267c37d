/*
 * budget.h — `caddie budget`: the artifact bytes a config will make, without training. The
 * parameter table comes from the model plan itself (cad_model_init on the CPU, initial
 * weights), each tensor's bytes in the artifact container from the scheme and bits the export
 * would choose (export.h, quant_ext.h: exactly the container's raw size), and its compressed
 * size from one of three sources:
 *   - none given: the default ratio table (compressed / raw bytes per scheme, bits and
 *     compressor, measured on a trained sample model; docs/engine.md#artifact-budget);
 *   - a .safetensors file of this model's weights: those weights quantised at the config's bits
 *     and compressed by the real exporter (so the total is the real artifact size for the
 *     clip-rule export; GPTQ codes and AWQ-lite's calibrated columns are not reproduced), each
 *     tensor's share from compressing its own container bytes alone, scaled to that total;
 *   - any other file, an artifact (.ptz): its measured ratio (file size / container size) for
 *     every tensor.
 * Code bytes are counted as the trainer counts them (code_files, packed with code_compress).
 *
 * Not here: printing (cli/cmd_budget.c), the export itself (export.c).
 */
#ifndef CADDIE_BUDGET_H
#define CADDIE_BUDGET_H

#include "engine/config.h"
#include "engine/status.h"

#include <stddef.h>

#define CAD_ARTIFACT_LIMIT 16000000L /* the challenge's cap: code bytes + compressed model bytes */

typedef struct cad_budget_tensor {
    char *name;
    int ndim;
    long shape[4];
    long params;
    int scheme;      /* export.h's CAD_Q_*, or quant_ext.h's CAD_Q_PER_ROW_EXT */
    int bits;        /* code bits of per-row tensors (8 for per-tensor int8, 16/32 for fp16/fp32) */
    size_t raw_bytes;/* its bytes in the container: header and payload */
    double est_bytes;/* estimated compressed bytes */
} cad_budget_tensor;

enum { CAD_BUDGET_DEFAULT = 0, CAD_BUDGET_WEIGHTS = 1, CAD_BUDGET_ARTIFACT = 2 };

typedef struct cad_budget {
    int n;
    cad_budget_tensor *t;
    long params;
    size_t raw_bytes;          /* the whole container (magic, count, tensors, crc) */
    double est_model_bytes;    /* estimated compressed model bytes */
    long exact_model_bytes;    /* source WEIGHTS: the real compressed size; else -1 */
    int source;                /* CAD_BUDGET_* */
    double artifact_ratio;     /* source ARTIFACT: its file size / container size */
    int compressor;            /* CAD_COMPRESS_* */
    long code_bytes, raw_code_bytes;
    int n_code_files;
    double total_bytes;        /* est_model_bytes (rounded up) + code_bytes */
    double margin;             /* CAD_ARTIFACT_LIMIT - total_bytes */
} cad_budget;

/* The default ratio (compressed / raw container bytes) of a tensor stored with scheme at bits
 * under compressor (budget.c's measured table). */
double cad_budget_default_ratio(int scheme, int bits, int compressor);

/* Fill b for config c (validated) with weights (NULL, a .safetensors path or an artifact
 * path). Errors name the file or tensor. Free with cad_budget_free. */
int cad_budget_compute(const cad_config *c, const char *weights, cad_budget *b, cad_err *e);
void cad_budget_free(cad_budget *b);

#endif

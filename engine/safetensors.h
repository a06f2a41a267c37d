/*
 * safetensors.h — read and write .safetensors files (8-byte little-endian header length, a
 * JSON header {"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}, then the
 * raw little-endian data), so weights move between caddie and PyTorch under train_gpt.py's
 * state_dict names (`tok_emb.weight`, `blocks.0.attn.c_q.weight`, `skip_weights`, ...).
 *
 * Also defines cad_named_tensor, the host-side "name + shape + fp32 data" view that the
 * exporters (safetensors, int8 artifact) work on.
 * Writing always produces F32. Reading accepts F32, F16 and BF16 (converted to fp32).
 * Not here: which tensors a model has (model.c), the int8 artifact (export.h).
 */
#ifndef CADDIE_SAFETENSORS_H
#define CADDIE_SAFETENSORS_H

#include "engine/status.h"

#include <stddef.h>
#include <stdint.h>

#define CAD_TENSOR_MAX_DIMS 4

typedef struct cad_named_tensor {
    const char *name;
    int ndim;
    int64_t shape[CAD_TENSOR_MAX_DIMS];
    size_t numel;
    float *data; /* host memory, numel floats */
} cad_named_tensor;

/* Write tensors (in the given order) as F32 to path, atomically (tmp + rename). */
int cad_safetensors_write(const char *path, const cad_named_tensor *ts, int n, cad_err *e);

/* Fill every tensor of ts from the file by name: each must be present with the same shape
 * (dtype F32/F16/BF16). With strict, a tensor in the file that is not in ts is an error too.
 * Errors name the path and the tensor. */
int cad_safetensors_read_into(const char *path, cad_named_tensor *ts, int n, int strict,
                              cad_err *e);

/* A whole file loaded into memory: names, shapes and fp32 data (owned). */
typedef struct cad_safetensors_file {
    int n;
    cad_named_tensor *tensors; /* names and data owned */
} cad_safetensors_file;
int cad_safetensors_load(const char *path, cad_safetensors_file *out, cad_err *e);
void cad_safetensors_file_free(cad_safetensors_file *f);

/* IEEE half / bfloat16 conversions (round to nearest even), shared with export.c. */
uint16_t cad_f32_to_f16(float f);
float cad_f16_to_f32(uint16_t h);
float cad_bf16_to_f32(uint16_t h);

#endif

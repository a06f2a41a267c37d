/*
 * test_engine_export.c — the int8+zlib artifact: quantization bit-identical to train_gpt.py's
 * quantize_float_tensor (fixture from tests/scripts/gen_optim_fixture.py), fp16 rounding like
 * torch, round-trip error bounds per row, exact fp32 for control tensors, and format errors.
 */
#include "engine/export.h"
#include "engine/gptq.h"
#include "engine/safetensors.h"

#include <zlib.h>

#include "test_util.h"

static cad_safetensors_file fx;
static int fx_ok;

static const cad_named_tensor *fx_get(const char *name) { return check_tensor_get(&fx, name); }

static void test_f16_matches_torch(void) {
    if (!fx_ok) return;
    const cad_named_tensor *in = fx_get("f16_in"), *out = fx_get("f16_out");
    for (size_t i = 0; i < in->numel; i++) {
        float got = cad_f16_to_f32(cad_f32_to_f16(in->data[i]));
        CHECK_MSG(memcmp(&got, &out->data[i], 4) == 0, "f16(%.9g) = %.9g, torch %.9g", in->data[i], got,
                  out->data[i]);
    }
    /* every half value survives f16 -> f32 -> f16 */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        CHECK_MSG(cad_f32_to_f16(cad_f16_to_f32((uint16_t)h)) == h, "half 0x%04x", h);
    }
}

static void test_per_row_matches_torch(void) {
    if (!fx_ok) return;
    const cad_named_tensor *m = fx_get("q_mat"), *qref = fx_get("q_mat_q"), *sref = fx_get("q_mat_scale");
    int rows = (int)m->shape[0], cols = (int)m->shape[1];
    int8_t *q = malloc(m->numel);
    uint16_t *s = malloc((size_t)rows * 2);
    float *work = malloc((size_t)cols * 4);
    cad_int8_quantize_rows(m->data, rows, cols, q, s, work);
    int bad_q = 0, bad_s = 0;
    for (size_t i = 0; i < m->numel; i++) bad_q += q[i] != (int8_t)qref->data[i];
    for (int r = 0; r < rows; r++) bad_s += cad_f16_to_f32(s[r]) != sref->data[r];
    /* bit-identical: same quantile interpolation, same fp32 division, same half-even rounding */
    CHECK_MSG(bad_q == 0, "%d of %zu int8 codes differ from torch", bad_q, m->numel);
    CHECK_MSG(bad_s == 0, "%d of %d row scales differ from torch", bad_s, rows);
    CHECK_NEAR(cad_f16_to_f32(s[9]), 1.0 / 127.0, 1e-5, 0); /* zero row: clamp_min(1/127) */
    free(q), free(s), free(work);
}

static void test_per_tensor_matches_torch(void) {
    if (!fx_ok) return;
    const cad_named_tensor *v = fx_get("q_vec"), *qref = fx_get("q_vec_q");
    float sref = fx_get("q_vec_scale")->data[0];
    float *back = malloc(v->numel * 4);
    cad_named_tensor t = {"blocks.0.big_vector", 1, {(int64_t)v->numel}, v->numel, v->data};
    CHECK_EQ_INT(cad_int8_scheme(&t), CAD_Q_PER_TENSOR);
    cad_int8_stats st;
    cad_err e = {0};
    CHECK(cad_int8_export(check_tmp_path("vec.ptz"), &t, 1, NULL, &st, &e) == CAD_OK);
    cad_named_tensor r = t;
    r.data = back;
    CHECK_MSG(cad_int8_import(check_tmp_path("vec.ptz"), &r, 1, &e) == CAD_OK, "%s", e.msg);
    int bad = 0;
    for (size_t i = 0; i < v->numel; i++) bad += back[i] != qref->data[i] * sref;
    CHECK_MSG(bad == 0, "%d of %zu dequantized values differ from torch's q*scale", bad, v->numel);
    CHECK_EQ_INT(st.int8_payload_bytes, v->numel + 4);
    free(back);
}

/* A small model-like state: a big matrix, a big embedding, control vectors, a small matrix. */
typedef struct { cad_named_tensor t[5]; float *buf[5]; } state5;

static void make_state(state5 *s, unsigned seed) {
    static const char *names[5] = {"tok_emb.weight", "blocks.0.attn.c_q.weight", "blocks.0.attn_scale",
                                   "skip_weights", "blocks.0.attn.c_k.weight"};
    static const int64_t shapes[5][2] = {{512, 160}, {300, 256}, {256, 0}, {2, 256}, {64, 256}};
    for (int i = 0; i < 5; i++) {
        cad_named_tensor *t = &s->t[i];
        t->name = names[i];
        t->ndim = shapes[i][1] ? 2 : 1;
        t->shape[0] = shapes[i][0];
        t->shape[1] = shapes[i][1];
        t->numel = (size_t)shapes[i][0] * (size_t)(shapes[i][1] ? shapes[i][1] : 1);
        s->buf[i] = t->data = malloc(t->numel * 4);
        for (size_t k = 0; k < t->numel; k++) {
            seed = seed * 1664525u + 1013904223u;
            float u = (float)(seed >> 8) / 16777216.0f - 0.5f;
            t->data[k] = (i == 2 ? 1.0f : 0.0f) + u * (i == 0 ? 0.02f : 0.1f);
        }
    }
    s->t[1].data[77] = 3.0f; /* an outlier beyond the clip */
}

static void free_state(state5 *s) { for (int i = 0; i < 5; i++) free(s->buf[i]); }

static void test_round_trip_bounds(void) {
    state5 a, b;
    make_state(&a, 1);
    make_state(&b, 2); /* receives the round trip */
    cad_int8_stats st;
    cad_err e = {0};
    const char *p = check_tmp_path("model.ptz");
    CHECK_MSG(cad_int8_export(p, a.t, 5, NULL, &st, &e) == CAD_OK, "%s", e.msg);
    CHECK_MSG(cad_int8_import(p, b.t, 5, &e) == CAD_OK, "%s", e.msg);
    CHECK_EQ_INT(st.num_tensors, 5);
    CHECK_EQ_INT(st.num_float_tensors, 2); /* 512x160 and 300x256 > 65536 elements */
    CHECK_EQ_INT(cad_int8_scheme(&a.t[0]), CAD_Q_PER_ROW);
    CHECK_EQ_INT(cad_int8_scheme(&a.t[2]), CAD_Q_FP32);
    CHECK_EQ_INT(cad_int8_scheme(&a.t[3]), CAD_Q_FP32);
    CHECK_EQ_INT(cad_int8_scheme(&a.t[4]), CAD_Q_FP16);
    size_t want_payload = 512 * 160 + 512 * 2 + 300 * 256 + 300 * 2 + 256 * 4 + 512 * 4 + 64 * 256 * 2;
    CHECK_EQ_INT(st.int8_payload_bytes, want_payload);
    CHECK(st.compressed_bytes > 0 && st.compressed_bytes < st.raw_bytes);
    /* control tensors come back bit-exact in fp32 */
    CHECK(memcmp(a.t[2].data, b.t[2].data, a.t[2].numel * 4) == 0);
    CHECK(memcmp(a.t[3].data, b.t[3].data, a.t[3].numel * 4) == 0);
    /* small non-control tensor: exactly its fp16 rounding */
    for (size_t k = 0; k < a.t[4].numel; k++)
        CHECK_MSG(b.t[4].data[k] == cad_f16_to_f32(cad_f32_to_f16(a.t[4].data[k])), "c_k[%zu]", k);
    /* per-row int8: |x - deq| <= scale/2 (rounding) + 127*|scale - fp16(scale)| for values
     * inside the clip; clipped values land on +-round(clip/scale)*fp16(scale). Note that
     * train_gpt.py clamps the scale to >= 1/127, so rows with |w| < 1 get coarse codes, and the
     * 99.99984th percentile of a few hundred values is (nearly) the row max. */
    for (int ti = 0; ti < 2; ti++) {
        cad_named_tensor *x = &a.t[ti], *y = &b.t[ti];
        int rows = (int)x->shape[0], cols = (int)x->shape[1];
        float *work = malloc((size_t)cols * 4);
        for (int r = 0; r < rows; r++) {
            const float *row = x->data + (size_t)r * cols;
            float clip = cad_int8_quantile_abs(row, (size_t)cols, (float)CAD_INT8_CLIP_Q, work);
            float s32 = clip / 127.0f > 1.0f / 127.0f ? clip / 127.0f : 1.0f / 127.0f;
            float s16 = cad_f16_to_f32(cad_f32_to_f16(s32));
            double bound = s32 / 2 + 127 * fabs(s32 - s16) + 1e-7;
            for (int c = 0; c < cols; c++) {
                double v = row[c], d = y->data[(size_t)r * cols + c];
                if (fabs(v) <= clip) CHECK_MSG(fabs(v - d) <= bound, "%s[%d,%d] %g -> %g (bound %g)", x->name, r, c, v, d, bound);
                else CHECK_MSG(fabs(fabs(d) - nearbyintf(clip / s32) * s16) < 1e-7, "clipped %g -> %g", v, d);
            }
        }
        free(work);
    }
    CHECK(fabsf(b.t[1].data[77] - 3.0f) < 0.02f); /* the row max sets its scale */
    free_state(&a);
    free_state(&b);
}

/* artifact_compressor: zstd holds the same container (lossless either way: the round trip is
 * bit-identical to zlib's), is found by its magic when read, and a truncated frame is an error. */
static void test_zstd_container(void) {
    state5 a, bz, bs;
    make_state(&a, 4);
    make_state(&bz, 5);
    make_state(&bs, 6);
    cad_int8_stats sz, ss;
    cad_err e = {0};
    char pz[4200], ps[4200];
    snprintf(pz, sizeof pz, "%s", check_tmp_path("m.zlib.ptz"));
    snprintf(ps, sizeof ps, "%s", check_tmp_path("m.zstd.ptz"));
    cad_quant_opts zstd = {CAD_COMPRESS_ZSTD, 8, 8, 0, 0, 0, NULL, {0, 0, 0}};
    CHECK(cad_int8_export(pz, a.t, 5, NULL, &sz, &e) == CAD_OK);
    CHECK_MSG(cad_int8_export(ps, a.t, 5, &zstd, &ss, &e) == CAD_OK, "%s", e.msg);
    CHECK_EQ_INT(ss.raw_bytes, sz.raw_bytes);
    size_t n = 0;
    unsigned char *f = (unsigned char *)check_slurp(ps, &n);
    CHECK(f && n == ss.compressed_bytes && f[0] == 0x28 && f[1] == 0xb5 && f[2] == 0x2f && f[3] == 0xfd);
    CHECK(cad_int8_import(pz, bz.t, 5, &e) == CAD_OK);
    CHECK_MSG(cad_int8_import(ps, bs.t, 5, &e) == CAD_OK, "%s", e.msg);
    for (int i = 0; i < 5; i++) CHECK(memcmp(bz.t[i].data, bs.t[i].data, bz.t[i].numel * 4) == 0);
    const char *cut = check_tmp_path("cut.zstd.ptz");
    if (f) check_write_bytes(cut, f, n / 2);
    CHECK(cad_int8_import(cut, bs.t, 5, &e) == CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "cut.zstd.ptz") != NULL, "%s", e.msg);
    CHECK_EQ_INT(cad_compressor_parse("zstd"), CAD_COMPRESS_ZSTD);
    CHECK_EQ_INT(cad_compressor_parse("xz"), -1);
    free(f);
    free_state(&a), free_state(&bz), free_state(&bs);
}

/* lzma and brotli beside zlib/zstd: each artifact decodes (detected by magic, brotli by
 * elimination) to exactly the zlib one's tensors, the xz file carries its magic, each
 * compressor's output differs (so the switch is real), a truncated file of each is a format
 * error naming the file, and the buffer helpers round-trip arbitrary bytes losslessly. */
static void test_lzma_brotli_containers(void) {
    static const char *names[4] = {"zlib", "zstd", "lzma", "brotli"};
    state5 a, ref, got;
    make_state(&a, 7);
    make_state(&ref, 8);
    make_state(&got, 9);
    cad_err e = {0};
    cad_int8_stats st[4];
    size_t len[4] = {0};
    unsigned char *file[4] = {0};
    char p[4][4200];
    for (int k = 0; k < 4; k++) {
        CHECK_EQ_INT(cad_compressor_parse(names[k]), k);
        CHECK(strcmp(cad_compressor_name(k), names[k]) == 0);
        cad_quant_opts qo = {k, 8, 8, 0, 0, 0, NULL, {0, 0, 0}};
        char fn[64];
        snprintf(fn, sizeof fn, "m.%s.ptz", names[k]);
        snprintf(p[k], sizeof p[k], "%s", check_tmp_path(fn));
        CHECK_MSG(cad_int8_export(p[k], a.t, 5, &qo, &st[k], &e) == CAD_OK, "%s: %s", names[k], e.msg);
        file[k] = (unsigned char *)check_slurp(p[k], &len[k]);
        CHECK(file[k] && len[k] == st[k].compressed_bytes && st[k].raw_bytes == st[0].raw_bytes);
        CHECK_MSG(cad_int8_import(p[k], k ? got.t : ref.t, 5, &e) == CAD_OK, "%s: %s", names[k], e.msg);
        if (k)
            for (int i = 0; i < 5; i++)
                CHECK_MSG(memcmp(ref.t[i].data, got.t[i].data, ref.t[i].numel * 4) == 0, "%s: tensor %d", names[k], i);
    }
    CHECK(file[2] && len[2] > 6 && memcmp(file[2], "\xfd" "7zXZ", 6) == 0);
    for (int k = 1; k < 4; k++)
        CHECK_MSG(len[k] != len[0] || memcmp(file[k], file[0], len[0]) != 0, "%s wrote zlib's bytes", names[k]);
    for (int k = 2; k < 4; k++) {
        const char *cut = check_tmp_path(k == 2 ? "cut.lzma.ptz" : "cut.brotli.ptz");
        if (file[k]) check_write_bytes(cut, file[k], len[k] / 2);
        CHECK_EQ_INT(cad_int8_import(cut, got.t, 5, &e), CAD_EFORMAT);
        CHECK_MSG(strstr(e.msg, k == 2 ? "cut.lzma.ptz" : "cut.brotli.ptz") != NULL, "%s", e.msg);
    }
    /* arbitrary bytes (every value, runs and noise) survive each compressor bit for bit */
    unsigned char src[5000];
    unsigned s = 99;
    for (size_t i = 0; i < sizeof src; i++) s = s * 1103515245u + 12345u, src[i] = i < 2000 ? (unsigned char)i : (unsigned char)(s >> 16);
    for (int k = 0; k < 4; k++) {
        unsigned char *z = NULL, *back = NULL;
        size_t zl = 0, bl = 0;
        CHECK(cad_compress_buf(k, src, sizeof src, &z, &zl, "buf", &e) == CAD_OK);
        CHECK_MSG(cad_decompress_buf(z, zl, &back, &bl, "buf", &e) == CAD_OK, "%s: %s", names[k], e.msg);
        CHECK_MSG(bl == sizeof src && back && memcmp(back, src, bl) == 0, "%s: round trip differs", names[k]);
        free(z), free(back);
    }
    for (int k = 0; k < 4; k++) free(file[k]);
    free_state(&a), free_state(&ref), free_state(&got);
}

/* Low-bit rows (quant_matrix_bits) and GPTQ-lite's clip search: codes stay within +-qmax,
 * scale = max(clip/qmax, 1/qmax) as the records', the searched clip has the least
 * reconstruction MSE of the candidates (recomputed here independently), int6 artifacts come
 * out smaller than int8 ones, and the embedding keeps its own bit width. */
static void test_low_bit_rows_and_clip_search(void) {
    enum { R = 240, C = 300 }; /* > 65,536 elements: quantized, not kept as fp16 */
    float *t = malloc(sizeof(float) * R * C), *work = malloc(sizeof(float) * C);
    int8_t *q = malloc(R * C);
    uint16_t *sc = malloc(sizeof(uint16_t) * R);
    unsigned seed = 9;
    for (int i = 0; i < R * C; i++) { /* heavy-ish tails: a few large values per row */
        seed = seed * 1664525u + 1013904223u;
        float u = (float)(seed >> 8) / 16777216.0f - 0.5f;
        t[i] = (i % 97 == 0 ? 8.0f : 1.0f) * u * (1.0f + (float)(i / C) * 0.3f);
    }
    static const float cand[] = {0.999f, 0.9995f, 0.9999f, 0.99999f, 1.0f};
    for (int search = 0; search < 2; search++) {
        cad_quantize_rows(t, R, C, 6, search, q, sc, work);
        for (int r = 0; r < R; r++) {
            const float *row = t + (size_t)r * C;
            double best = INFINITY, got = 0;
            float s16 = cad_f16_to_f32(sc[r]);
            for (int c = 0; c < C; c++) {
                CHECK(q[r * C + c] >= -31 && q[r * C + c] <= 31);
                double d = (double)q[r * C + c] * s16 - row[c];
                got += d * d;
            }
            for (size_t k = 0; k < (search ? 5 : 0); k++) {
                float clip = cad_int8_quantile_abs(row, C, cand[k], work);
                float s = clip / 31.0f > 1.0f / 31.0f ? clip / 31.0f : 1.0f / 31.0f;
                double mse = 0;
                for (int c = 0; c < C; c++) {
                    float v = row[c] < clip ? row[c] : clip;
                    v = v > -clip ? v : -clip;
                    float qq = nearbyintf(v / s);
                    qq = qq > 31 ? 31 : qq < -31 ? -31 : qq;
                    double d = (double)qq * s - row[c];
                    mse += d * d;
                }
                if (mse < best) best = mse;
            }
            /* the chosen row, dequantized with its fp16 scale, is within fp16 rounding of the best */
            if (search) CHECK_MSG(got <= best * 1.01 + 1e-9, "row %d: mse %.6g, best candidate %.6g", r, got, best);
        }
    }
    /* whole artifacts: int6 + search smaller than int8; the embedding keeps 8 bits */
    cad_named_tensor ts[2] = {{"blocks.0.mlp.fc.weight", 2, {R, C}, (size_t)R * C, t},
                              {"tok_emb.weight", 2, {R, C}, (size_t)R * C, t}};
    cad_quant_opts b8 = {CAD_COMPRESS_ZLIB, 8, 8, 0, 0, 0, NULL, {0, 0, 0}}, b6 = {CAD_COMPRESS_ZLIB, 6, 8, 1, 0, 0, NULL, {0, 0, 0}};
    cad_int8_stats s8, s6;
    cad_err e = {0};
    char p8[4200], p6[4200];
    snprintf(p8, sizeof p8, "%s", check_tmp_path("q8.ptz"));
    snprintf(p6, sizeof p6, "%s", check_tmp_path("q6.ptz"));
    CHECK(cad_int8_export(p8, ts, 1, &b8, &s8, &e) == CAD_OK);
    CHECK(cad_int8_export(p6, ts, 1, &b6, &s6, &e) == CAD_OK);
    CHECK_MSG(s6.compressed_bytes < s8.compressed_bytes, "int6 %zu bytes vs int8 %zu", s6.compressed_bytes,
              s8.compressed_bytes);
    float *back = malloc(sizeof(float) * R * C * 2);
    cad_named_tensor rt[2] = {{"blocks.0.mlp.fc.weight", 2, {R, C}, (size_t)R * C, back},
                              {"tok_emb.weight", 2, {R, C}, (size_t)R * C, back + R * C}};
    CHECK(cad_int8_export(p6, ts, 2, &b6, &s6, &e) == CAD_OK);
    CHECK_MSG(cad_int8_import(p6, rt, 2, &e) == CAD_OK, "%s", e.msg);
    cad_quantize_rows(t, R, C, 8, 1, q, sc, work); /* what the embedding must have become */
    int same = 1;
    for (int i = 0; i < R * C; i++) same &= back[R * C + i] == (float)q[i] * cad_f16_to_f32(sc[i / C]);
    CHECK_MSG(same, "the embedding was not quantized at quant_embed_bits = 8");
    /* SDClip: clip = k * std(row): every code of a row whose values lie within the clip is the
     * rounded value / (k std / qmax), the rest saturate at +-qmax */
    cad_quantize_rows_sdclip(t, R, C, 6, 2.5, q, sc);
    int bad = 0;
    for (int r = 0; r < R && !bad; r++) {
        const float *row = t + (size_t)r * C;
        double mean = 0, var = 0;
        for (int c = 0; c < C; c++) mean += row[c];
        mean /= C;
        for (int c = 0; c < C; c++) var += (row[c] - mean) * (row[c] - mean);
        float clip = (float)(2.5 * sqrt(var / C)), s = clip / 31.0f > 1.0f / 31.0f ? clip / 31.0f : 1.0f / 31.0f;
        for (int c = 0; c < C; c++) {
            float v = row[c] < clip ? (row[c] > -clip ? row[c] : -clip) : clip, w = nearbyintf(v / s);
            w = w > 31 ? 31 : w < -31 ? -31 : w;
            bad += q[r * C + c] != (int8_t)w;
        }
        bad += sc[r] != cad_f32_to_f16(s);
    }
    CHECK_MSG(bad == 0, "SDClip codes differ from k*std clipping");
    free(t), free(work), free(q), free(back), free(sc);
}

static void test_format_errors(void) {
    state5 a;
    make_state(&a, 3);
    cad_err e = {0};
    cad_int8_stats st;
    char p[4200];
    snprintf(p, sizeof p, "%s", check_tmp_path("ok.ptz"));
    CHECK(cad_int8_export(p, a.t, 5, NULL, &st, &e) == CAD_OK);

    /* missing file */
    CHECK(cad_int8_import(check_tmp_path("nope.ptz"), a.t, 5, &e) == CAD_EIO);
    /* not zlib */
    const char *g = check_tmp_path("garbage.ptz");
    check_write_file(g, "this is not a zlib stream at all");
    CHECK(cad_int8_import(g, a.t, 5, &e) == CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "garbage.ptz"), "%s", e.msg);
    /* zlib, wrong magic */
    unsigned char z[128];
    uLongf zl = sizeof z;
    compress2(z, &zl, (const Bytef *)"NOTMAGIC\1\0\0\0\0\0\0\0", 16, 9);
    const char *wm = check_tmp_path("magic.ptz");
    check_write_bytes(wm, z, zl);
    CHECK(cad_int8_import(wm, a.t, 5, &e) == CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "bad magic"), "%s", e.msg);
    /* truncated artifact */
    size_t n = 0;
    char *buf = check_slurp(p, &n);
    CHECK(buf != NULL);
    const char *tr = check_tmp_path("trunc.ptz");
    check_write_bytes(tr, buf ? buf : "", n / 2);
    free(buf);
    CHECK(cad_int8_import(tr, a.t, 5, &e) == CAD_EFORMAT);
    /* model lacks a tensor the file has; model has a tensor the file lacks; shape differs */
    CHECK(cad_int8_import(p, a.t, 4, &e) == CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "unexpected tensor 'blocks.0.attn.c_k.weight'"), "%s", e.msg);
    CHECK(cad_int8_export(p, a.t, 4, NULL, &st, &e) == CAD_OK);
    CHECK(cad_int8_import(p, a.t, 5, &e) == CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "'blocks.0.attn.c_k.weight' missing"), "%s", e.msg);
    a.t[4].shape[0] = 32, a.t[4].shape[1] = 512;
    CHECK(cad_int8_export(p, a.t, 5, NULL, &st, &e) == CAD_OK);
    a.t[4].shape[0] = 64, a.t[4].shape[1] = 256;
    CHECK(cad_int8_import(p, a.t, 5, &e) == CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "shape"), "%s", e.msg);
    free_state(&a);
}

/* GPTQ's column sweep against the direct PyTorch computation of tests/scripts/gen_gptq_fixture.py
 * (a 6x10 matrix, blocks of 4 so the last is partial, one dead column; without and with
 * act-order): the codes agree exactly, the error-fed weights to 1e-9, and the fixture is not
 * trivial (the codes differ from round-to-nearest somewhere). */
static void test_gptq_sweep_matches_torch(void) {
    size_t len = 0;
    char *txt = check_slurp(check_src_path("tests/fixtures/engine/gptq_ref.txt"), &len);
    CHECK(txt != NULL);
    if (!txt) return;
    char *p = txt;
    int cases = 0;
    while ((p = strstr(p, "case "))) {
        int rows, cols, qmax, block, act;
        double damp;
        char *end;
        CHECK(sscanf(p, "case %d %d %d %d %d %lf", &rows, &cols, &qmax, &block, &act, &damp) == 6);
        p = strchr(p, '\n') + 1;
        size_t n = (size_t)rows * cols;
        double *W = malloc(n * sizeof *W), *H = malloc((size_t)cols * cols * sizeof *H), *Wout = malloc(n * sizeof *Wout);
        float *step = malloc((size_t)rows * sizeof *step);
        int8_t *qref = malloc(n), *q = malloc(n);
        for (size_t i = 0; i < n; i++) W[i] = strtod(p, &end), p = end;
        for (size_t i = 0; i < (size_t)cols * cols; i++) H[i] = strtod(p, &end), p = end;
        for (int r = 0; r < rows; r++) step[r] = strtof(p, &end), p = end;
        for (size_t i = 0; i < n; i++) qref[i] = (int8_t)strtol(p, &end, 10), p = end;
        for (size_t i = 0; i < n; i++) Wout[i] = strtod(p, &end), p = end;
        int rtn_differs = 0;
        for (size_t i = 0; i < n; i++) {
            double r = nearbyint(W[i] / step[i / cols]);
            r = r > qmax ? qmax : r < -qmax ? -qmax : r;
            rtn_differs += (int)r != qref[i] && i % cols != 6;
        }
        cad_gptq_opts o = {damp, act, block};
        cad_err e = {0};
        CHECK_MSG(cad_gptq_sweep(W, rows, cols, H, step, qmax, &o, q, &e) == CAD_OK, "%s", e.msg);
        int bad = 0;
        double maxd = 0;
        for (size_t i = 0; i < n; i++) {
            bad += q[i] != qref[i];
            if (fabs(W[i] - Wout[i]) > maxd) maxd = fabs(W[i] - Wout[i]);
        }
        CHECK_MSG(bad == 0, "act_order %d: %d of %zu codes differ from torch's GPTQ", act, bad, n);
        CHECK_MSG(maxd < 1e-9, "act_order %d: error-fed weights differ by %g", act, maxd);
        CHECK_MSG(rtn_differs > 0, "act_order %d: GPTQ chose round-to-nearest everywhere (weak fixture)", act);
        free(W), free(H), free(Wout), free(step), free(qref), free(q);
        cases++;
    }
    CHECK_EQ_INT(cases, 2);
    /* a Hessian that damping cannot make definite is an error, not NaN codes */
    double W1[2] = {0.5, -0.5}, Hbad[4] = {1, 2, 2, 1};
    float st[1] = {0.1f};
    int8_t q1[2];
    cad_gptq_opts o = {0.01, 0, 128};
    cad_err e = {0};
    CHECK_EQ_INT(cad_gptq_sweep(W1, 1, 2, Hbad, st, 7, &o, q1, &e), CAD_ENUMERIC);
    CHECK_MSG(strstr(e.msg, "not positive definite") != NULL, "%s", e.msg);
    free(txt);
}

/* The container's crc32 (version 2): one flipped bit in the container, recompressed so every
 * compressor's own framing is intact (brotli and zstd have no checksum to catch it), is refused
 * naming the file; a flipped bit in the compressed file is refused too; a version 1 file
 * (no crc) still reads. */
static void test_container_checksum(void) {
    state5 a, b;
    make_state(&a, 7);
    make_state(&b, 8);
    cad_err e = {0};
    for (int comp = 0; comp < 4; comp++) {
        cad_quant_opts qo = {comp, 8, 8, 0, 0, 0, NULL, {0, 0, 0}};
        cad_int8_stats st;
        char p[4200];
        snprintf(p, sizeof p, "%s", check_tmp_path("crc.ptz"));
        CHECK_MSG(cad_int8_export(p, a.t, 5, &qo, &st, &e) == CAD_OK, "%s", e.msg);
        size_t n = 0, rn = 0, zn = 0;
        unsigned char *f = (unsigned char *)check_slurp(p, &n), *raw = NULL, *z = NULL;
        if (!f || cad_decompress_buf(f, n, &raw, &rn, p, &e) != CAD_OK) { CHECK(0); free(f); break; }
        uint32_t version;
        memcpy(&version, raw + 8, 4);
        CHECK_EQ_INT(version, 2);
        /* one bit of a tensor payload in the middle of the container */
        raw[rn / 2] ^= 0x04;
        CHECK(cad_compress_buf(comp, raw, rn, &z, &zn, p, &e) == CAD_OK);
        if (z) check_write_bytes(p, z, zn);
        free(z), z = NULL;
        CHECK_EQ_INT(cad_int8_import(p, b.t, 5, &e), CAD_EFORMAT);
        CHECK_MSG(strstr(e.msg, "crc.ptz: checksum mismatch") && strstr(e.msg, "export it again"),
                  "%s", e.msg);
        raw[rn / 2] ^= 0x04;
        /* a flipped bit in the compressed file: refused, by the codec or by the crc */
        f[n / 2] ^= 0x01;
        check_write_bytes(p, f, n);
        CHECK_MSG(cad_int8_import(p, b.t, 5, &e) != CAD_OK, "compressor %d: a flipped bit was read", comp);
        /* version 1, as written before the crc: read as it was */
        uint32_t v1 = 1;
        memcpy(raw + 8, &v1, 4);
        CHECK(cad_compress_buf(comp, raw, rn - 4, &z, &zn, p, &e) == CAD_OK);
        if (z) check_write_bytes(p, z, zn);
        CHECK_MSG(cad_int8_import(p, b.t, 5, &e) == CAD_OK, "%s", e.msg);
        free(z), free(raw), free(f);
    }
    /* make fuzz's find: a 22-byte zstd frame whose header claims 3.7 GB was allocated at once */
    static const unsigned char bomb[] = {0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0xe3, 0x0a, 0x01, 0xdc, 0x0e, 0x44,
                                         0x51, 0x49, 0x4e, 0x3d, 0xff, 0xff, 0x00, 0xdc, 0x0e, 0x0e, 0x00};
    const char *pb = check_write_bytes(check_tmp_path("bomb.ptz"), bomb, sizeof bomb);
    CHECK_EQ_INT(cad_int8_import(pb, b.t, 5, &e), CAD_EFORMAT);
    CHECK_MSG(strstr(e.msg, "bomb.ptz: zstd frame claims 3691055843 bytes from 22 compressed"), "%s", e.msg);
    free_state(&a), free_state(&b);
}

int main(void) {
    RUN(test_container_checksum);
    cad_err e = {0};
    fx_ok = cad_safetensors_load(check_src_path("tests/fixtures/engine/optim_ref.safetensors"), &fx, &e) == CAD_OK;
    if (!fx_ok) printf("FAIL cannot load fixture: %s\n", e.msg);
    RUN(test_f16_matches_torch);
    RUN(test_per_row_matches_torch);
    RUN(test_per_tensor_matches_torch);
    RUN(test_round_trip_bounds);
    RUN(test_zstd_container);
    RUN(test_lzma_brotli_containers);
    RUN(test_low_bit_rows_and_clip_search);
    RUN(test_format_errors);
    RUN(test_gptq_sweep_matches_torch);
    cad_safetensors_file_free(&fx);
    return check_report() || !fx_ok;
}

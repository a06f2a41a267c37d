/*
 * quant_ext.c — mixed per-tensor bits, AWQ-lite salient columns and LQER low-rank residual
 * factors for the artifact (see quant_ext.h for the format and the rules).
 * Not here: the container, compressors and the other schemes (export.c).
 */
#include "engine/quant_ext.h"

#include "engine/export.h"
#include "engine/safetensors.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *cad_quant_group(const char *name) {
    if (!strncmp(name, "tok_emb", 7)) return "tok_emb";
    if (!strncmp(name, "lm_head", 7)) return "lm_head";
    /* the control tensors (attn_scale, q_gain, ...) never reach a per-row scheme, but a group
     * names the matrices only, so they are left out explicitly */
    if (cad_int8_is_control_name(name)) return NULL;
    if (strstr(name, ".attn.")) return "attn";
    if (strstr(name, ".mlp.")) return "mlp";
    return NULL;
}

static int is_group(const char *s, size_t n) {
    static const char *const groups[] = {"tok_emb", "lm_head", "attn", "mlp"};
    for (size_t i = 0; i < sizeof groups / sizeof *groups; i++)
        if (strlen(groups[i]) == n && !strncmp(groups[i], s, n)) return 1;
    return 0;
}

/* One entry of a comma list: [s, s+n) trimmed of spaces. */
typedef struct entry {
    const char *name;
    size_t name_len;
    const char *val; /* after ':' or '=', NULL when absent */
    size_t val_len;
} entry;

/* Split text into entries (at most cap); -1 when there are more. */
static int split_entries(const char *text, entry *out, int cap) {
    int n = 0;
    const char *p = text ? text : "";
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (b > a) {
            if (n == cap) return -1;
            entry *en = &out[n++];
            const char *sep = a;
            while (sep < b && *sep != ':' && *sep != '=') sep++;
            const char *ne = sep;
            while (ne > a && isspace((unsigned char)ne[-1])) ne--;
            en->name = a, en->name_len = (size_t)(ne - a);
            if (sep < b) {
                const char *v = sep + 1;
                while (v < b && isspace((unsigned char)*v)) v++;
                en->val = v, en->val_len = (size_t)(b - v);
            } else {
                en->val = NULL, en->val_len = 0;
            }
        }
        p = *end ? end + 1 : end;
    }
    return n;
}

static int entry_bits(const entry *en) {
    if (!en->val || en->val_len != 1 || en->val[0] < '2' || en->val[0] > '8') return -1;
    return en->val[0] - '0';
}

static int name_ok(const entry *en) {
    return en->name_len > 0 && (is_group(en->name, en->name_len) || memchr(en->name, '.', en->name_len));
}

int cad_quant_overrides_check(const char *key, const char *text, cad_err *e) {
    entry en[CAD_QX_MAX_OVERRIDES];
    int n = split_entries(text, en, CAD_QX_MAX_OVERRIDES);
    if (n < 0) return cad_fail(e, CAD_ECONFIG, "%s: more than %d entries", key, CAD_QX_MAX_OVERRIDES);
    for (int i = 0; i < n; i++) {
        if (!name_ok(&en[i]))
            return cad_fail(e, CAD_ECONFIG,
                            "%s: '%.*s': expected a group (tok_emb, lm_head, attn, mlp) or a full tensor name "
                            "(blocks.0.mlp.fc.weight) before ':'", key, (int)en[i].name_len, en[i].name);
        if (entry_bits(&en[i]) < 0)
            return cad_fail(e, CAD_ECONFIG, "%s: '%.*s': expected bits 2..8 after '%.*s:', got '%.*s'", key,
                            (int)en[i].name_len, en[i].name, (int)en[i].name_len, en[i].name,
                            (int)en[i].val_len, en[i].val ? en[i].val : "");
        for (int j = 0; j < i; j++)
            if (en[j].name_len == en[i].name_len && !strncmp(en[j].name, en[i].name, en[i].name_len))
                return cad_fail(e, CAD_ECONFIG, "%s: '%.*s' is given twice", key, (int)en[i].name_len, en[i].name);
    }
    return CAD_OK;
}

int cad_quant_selection_check(const char *key, const char *text, cad_err *e) {
    entry en[CAD_QX_MAX_OVERRIDES];
    int n = split_entries(text, en, CAD_QX_MAX_OVERRIDES);
    if (n < 0) return cad_fail(e, CAD_ECONFIG, "%s: more than %d entries", key, CAD_QX_MAX_OVERRIDES);
    for (int i = 0; i < n; i++)
        if (en[i].val || !name_ok(&en[i]))
            return cad_fail(e, CAD_ECONFIG,
                            "%s: '%.*s': expected a group (tok_emb, lm_head, attn, mlp) or a full tensor name",
                            key, (int)(en[i].val ? (size_t)(en[i].val - en[i].name) + en[i].val_len : en[i].name_len),
                            en[i].name);
    return CAD_OK;
}

static int entry_is(const entry *en, const char *s) {
    return s && strlen(s) == en->name_len && !strncmp(en->name, s, en->name_len);
}

int cad_quant_bits_for(const char *overrides, const char *name, int def) {
    entry en[CAD_QX_MAX_OVERRIDES];
    int n = split_entries(overrides, en, CAD_QX_MAX_OVERRIDES);
    const char *g = cad_quant_group(name);
    int by_group = -1;
    for (int i = 0; i < n; i++) {
        if (entry_is(&en[i], name)) return entry_bits(&en[i]);
        if (entry_is(&en[i], g)) by_group = entry_bits(&en[i]);
    }
    return by_group > 0 ? by_group : def;
}

int cad_quant_selected(const char *selection, const char *name) {
    entry en[CAD_QX_MAX_OVERRIDES];
    int n = split_entries(selection, en, CAD_QX_MAX_OVERRIDES);
    if (n == 0) return 1;
    const char *g = cad_quant_group(name);
    for (int i = 0; i < n; i++)
        if (entry_is(&en[i], name) || entry_is(&en[i], g)) return 1;
    return 0;
}

int cad_quant_names_check(const char *key, const char *text, const char *const *names, int n, cad_err *e) {
    entry en[CAD_QX_MAX_OVERRIDES];
    int m = split_entries(text, en, CAD_QX_MAX_OVERRIDES);
    for (int i = 0; i < m; i++) {
        if (is_group(en[i].name, en[i].name_len)) continue;
        int found = 0;
        for (int j = 0; j < n && !found; j++) found = entry_is(&en[i], names[j]);
        if (!found)
            return cad_fail(e, CAD_ECONFIG, "%s: '%.*s' is no tensor of this model (expected a group or a name such "
                            "as '%s')", key, (int)en[i].name_len, en[i].name, n > 1 ? names[1] : n ? names[0] : "");
    }
    return CAD_OK;
}

/* ---- AWQ-lite -------------------------------------------------------------------------------- */

static const double *sort_energy; /* qsort has no context argument; export is single-threaded */
static int cmp_energy_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_energy[i] != sort_energy[j]) return sort_energy[i] > sort_energy[j] ? -1 : 1;
    return (i > j) - (i < j);
}
static int cmp_int(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    return (i > j) - (i < j);
}

int cad_awq_salient_cols(const double *energy, int cols, double frac, int *col) {
    if (cols < 2 || !(frac > 0)) return 0;
    int k = (int)ceil(frac * cols);
    if (k < 1) k = 1;
    if (k > cols - 1) k = cols - 1;
    int *order = malloc((size_t)cols * sizeof *order);
    if (!order) return -1;
    for (int c = 0; c < cols; c++) order[c] = c;
    sort_energy = energy;
    qsort(order, (size_t)cols, sizeof *order, cmp_energy_desc);
    memcpy(col, order, (size_t)k * sizeof *col);
    qsort(col, (size_t)k, sizeof *col, cmp_int);
    free(order);
    return k;
}

/* ---- encode / decode ------------------------------------------------------------------------- */

void cad_quantx_free(cad_quantx *x) {
    free(x->scale), free(x->sal), free(x->sal_scale), free(x->q), free(x->A), free(x->B);
    memset(x, 0, sizeof *x);
}

/* Codes and scales of the [rows, k] matrix m by the clip rule at bits. */
static void quantize_block(const float *m, int rows, int k, int bits, int clip_search, double sdclip_k, int8_t *q,
                           uint16_t *scale, float *work) {
    if (sdclip_k > 0) cad_quantize_rows_sdclip(m, rows, k, bits, sdclip_k, q, scale);
    else cad_quantize_rows(m, rows, k, bits, clip_search, q, scale, work);
}

int cad_quantx_encode(const float *t, int rows, int cols, const cad_quantx_spec *sp, cad_quantx *x, const char *name,
                      cad_err *e) {
    memset(x, 0, sizeof *x);
    x->rows = rows, x->cols = cols;
    size_t numel = (size_t)rows * cols;
    x->scale = malloc((size_t)rows * sizeof *x->scale);
    x->q = malloc(numel ? numel : 1);
    float *work = malloc((size_t)(cols ? cols : 1) * sizeof *work);
    int ok = x->scale && x->q && work;
    if (ok && sp->energy && sp->salient_frac > 0) {
        x->sal = malloc((size_t)cols * sizeof *x->sal);
        ok = x->sal != NULL;
        if (ok) x->n_sal = cad_awq_salient_cols(sp->energy, cols, sp->salient_frac, x->sal);
        ok = ok && x->n_sal >= 0;
    }
    if (!ok) goto oom;
    if (x->n_sal > 0) {
        x->flags |= CAD_QX_SALIENT;
        int ns = x->n_sal, nr = cols - ns;
        char *is_sal = calloc((size_t)cols, 1);
        float *mr = malloc((size_t)rows * nr * sizeof *mr), *ms = malloc((size_t)rows * ns * sizeof *ms);
        int8_t *qr = malloc((size_t)rows * nr), *qs = malloc((size_t)rows * ns);
        x->sal_scale = malloc((size_t)rows * sizeof *x->sal_scale);
        if (!is_sal || !mr || !ms || !qr || !qs || !x->sal_scale) {
            free(is_sal), free(mr), free(ms), free(qr), free(qs);
            goto oom;
        }
        for (int k = 0; k < ns; k++) is_sal[x->sal[k]] = 1;
        for (int r = 0; r < rows; r++) {
            int a = 0, b = 0;
            for (int c = 0; c < cols; c++) {
                float v = t[(size_t)r * cols + c];
                if (is_sal[c]) ms[(size_t)r * ns + a++] = v;
                else mr[(size_t)r * nr + b++] = v;
            }
        }
        /* the rest at the tensor's bits with its clip rule; the salient columns at 8 bits with
         * train_gpt.py's plain quantile clip (few columns: a search has nothing to choose) */
        quantize_block(mr, rows, nr, sp->bits, sp->clip_search, sp->sdclip_k, qr, x->scale, work);
        cad_quantize_rows(ms, rows, ns, 8, 0, qs, x->sal_scale, work);
        for (int r = 0; r < rows; r++) {
            int a = 0, b = 0;
            for (int c = 0; c < cols; c++)
                x->q[(size_t)r * cols + c] = is_sal[c] ? qs[(size_t)r * ns + a++] : qr[(size_t)r * nr + b++];
        }
        free(is_sal), free(mr), free(ms), free(qr), free(qs);
    } else {
        quantize_block(t, rows, cols, sp->bits, sp->clip_search, sp->sdclip_k, x->q, x->scale, work);
    }
    free(work);
    return CAD_OK;
oom:
    free(work);
    cad_quantx_free(x);
    return cad_fail(e, CAD_ENOMEM, "tensor '%s': out of memory quantizing", name);
}

int cad_quantx_add_lqer(const float *t, cad_quantx *x, int rank, const char *name, cad_err *e) {
    int rows = x->rows, cols = x->cols;
    size_t numel = (size_t)rows * cols;
    if (rank > rows) rank = rows;
    if (rank > cols) rank = cols;
    if (rank <= 0) return CAD_OK;
    float *deq = malloc(numel * sizeof *deq);
    double *R = malloc(numel * sizeof *R);
    if (deq && R) {
        cad_quantx_decode(x, 0, deq);
        for (size_t k = 0; k < numel; k++) R[k] = (double)t[k] - (double)deq[k];
        x->A = malloc((size_t)rows * rank * sizeof *x->A);
        x->B = malloc((size_t)rank * cols * sizeof *x->B);
    }
    if (!deq || !R || !x->A || !x->B) {
        free(deq), free(R);
        return cad_fail(e, CAD_ENOMEM, "lqer: out of memory for tensor '%s'", name);
    }
    int rc = cad_lqer_factors(R, rows, cols, rank, x->A, x->B, name, e);
    free(deq), free(R);
    if (rc) return rc;
    x->rank = rank;
    x->flags |= CAD_QX_LQER;
    return CAD_OK;
}

/* The decode on raw arrays, shared by the exporter's in-memory form and the reader. */
static void decode_raw(int rows, int cols, const uint16_t *scale, int n_sal, const int *sal, const uint16_t *sal_scale,
                       const int8_t *q, int rank, const uint16_t *A, const uint16_t *B, float *out) {
    for (int r = 0; r < rows; r++) {
        float s = cad_f16_to_f32(scale[r]), ss = n_sal ? cad_f16_to_f32(sal_scale[r]) : 0.0f;
        int k = 0;
        for (int c = 0; c < cols; c++) {
            int salient = k < n_sal && sal[k] == c;
            if (salient) k++;
            out[(size_t)r * cols + c] = (float)q[(size_t)r * cols + c] * (salient ? ss : s);
        }
    }
    if (rank <= 0) return;
    float *Bf = malloc((size_t)rank * cols * sizeof *Bf);
    float Ar[CAD_LQER_MAX_RANK];
    for (size_t k = 0; Bf && k < (size_t)rank * cols; k++) Bf[k] = cad_f16_to_f32(B[k]);
    for (int r = 0; r < rows; r++) {
        for (int k = 0; k < rank; k++) Ar[k] = cad_f16_to_f32(A[(size_t)r * rank + k]);
        for (int c = 0; c < cols; c++) {
            float acc = 0.0f;
            for (int k = 0; k < rank; k++) acc += Ar[k] * (Bf ? Bf[(size_t)k * cols + c] : cad_f16_to_f32(B[(size_t)k * cols + c]));
            out[(size_t)r * cols + c] += acc;
        }
    }
    free(Bf);
}

void cad_quantx_decode(const cad_quantx *x, int with_lqer, float *out) {
    decode_raw(x->rows, x->cols, x->scale, x->n_sal, x->sal, x->sal_scale, x->q, with_lqer ? x->rank : 0, x->A, x->B,
               out);
}

size_t cad_quantx_payload_bytes(int rows, int cols, int flags, int n_sal, int rank) {
    size_t b = 1 + (size_t)rows * 2 + (size_t)rows * cols;
    if (flags & CAD_QX_SALIENT) b += 4 + (size_t)n_sal * 4 + (size_t)rows * 2;
    if (flags & CAD_QX_LQER) b += 4 + (size_t)rank * ((size_t)rows + cols) * 2;
    return b;
}

static void put_u32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    fwrite(b, 1, 4, f);
}

void cad_quantx_write(FILE *f, const cad_quantx *x) {
    unsigned char fl = (unsigned char)x->flags;
    fwrite(&fl, 1, 1, f);
    fwrite(x->scale, 2, (size_t)x->rows, f);
    if (x->flags & CAD_QX_SALIENT) {
        put_u32(f, (uint32_t)x->n_sal);
        for (int k = 0; k < x->n_sal; k++) put_u32(f, (uint32_t)x->sal[k]);
        fwrite(x->sal_scale, 2, (size_t)x->rows, f);
    }
    fwrite(x->q, 1, (size_t)x->rows * x->cols, f);
    if (x->flags & CAD_QX_LQER) {
        put_u32(f, (uint32_t)x->rank);
        fwrite(x->A, 2, (size_t)x->rows * x->rank, f);
        fwrite(x->B, 2, (size_t)x->rank * x->cols, f);
    }
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int cad_quantx_read(const unsigned char **pp, const unsigned char *end, int rows, int cols, float *out, const char *path,
                    const char *name, cad_err *e) {
    const unsigned char *p = *pp;
    size_t left = (size_t)(end - p), numel = (size_t)rows * cols;
#define NEED(n) do { if (left < (size_t)(n)) goto trunc; } while (0)
    NEED(1);
    int flags = p[0];
    p++, left--;
    if (flags & ~(CAD_QX_SALIENT | CAD_QX_LQER))
        return cad_fail(e, CAD_EFORMAT, "%s: tensor '%s': unknown refinement flags 0x%02x", path, name, flags);
    NEED((size_t)rows * 2);
    const unsigned char *scale = p;
    p += (size_t)rows * 2, left -= (size_t)rows * 2;
    int n_sal = 0, rank = 0;
    int *sal = NULL;
    const unsigned char *sal_scale = NULL, *A = NULL, *B = NULL;
    if (flags & CAD_QX_SALIENT) {
        NEED(4);
        uint32_t ns = get_u32(p);
        p += 4, left -= 4;
        if (ns == 0 || ns >= (uint32_t)cols)
            return cad_fail(e, CAD_EFORMAT, "%s: tensor '%s': %u salient columns (expected 1..%d)", path, name, ns, cols - 1);
        NEED((size_t)ns * 4 + (size_t)rows * 2);
        sal = malloc((size_t)ns * sizeof *sal);
        if (!sal) return cad_fail(e, CAD_ENOMEM, "%s: tensor '%s': out of memory", path, name);
        for (uint32_t k = 0; k < ns; k++) {
            uint32_t c = get_u32(p + 4 * k);
            if (c >= (uint32_t)cols || (k > 0 && c <= (uint32_t)sal[k - 1])) {
                free(sal);
                return cad_fail(e, CAD_EFORMAT, "%s: tensor '%s': salient column list not ascending within 0..%d", path,
                                name, cols - 1);
            }
            sal[k] = (int)c;
        }
        n_sal = (int)ns;
        p += (size_t)ns * 4, left -= (size_t)ns * 4;
        sal_scale = p;
        p += (size_t)rows * 2, left -= (size_t)rows * 2;
    }
    if (left < numel) { free(sal); goto trunc; }
    const int8_t *q = (const int8_t *)p;
    p += numel, left -= numel;
    if (flags & CAD_QX_LQER) {
        if (left < 4) { free(sal); goto trunc; }
        uint32_t rk = get_u32(p);
        p += 4, left -= 4;
        if (rk == 0 || rk > CAD_LQER_MAX_RANK || rk > (uint32_t)rows || rk > (uint32_t)cols) {
            free(sal);
            return cad_fail(e, CAD_EFORMAT, "%s: tensor '%s': LQER rank %u (expected 1..%d)", path, name, rk,
                            CAD_LQER_MAX_RANK);
        }
        rank = (int)rk;
        size_t nb = (size_t)rank * ((size_t)rows + cols) * 2;
        if (left < nb) { free(sal); goto trunc; }
        A = p, B = p + (size_t)rows * rank * 2;
        p += nb, left -= nb;
    }
    /* the scale and factor bytes may be unaligned in the buffer: copy them out */
    uint16_t *s16 = malloc((size_t)rows * 2 * 2 + (size_t)rank * ((size_t)rows + cols) * 2 + 2);
    if (!s16) { free(sal); return cad_fail(e, CAD_ENOMEM, "%s: tensor '%s': out of memory", path, name); }
    uint16_t *ss16 = s16 + rows, *A16 = ss16 + rows, *B16 = A16 + (size_t)rows * rank;
    memcpy(s16, scale, (size_t)rows * 2);
    if (sal_scale) memcpy(ss16, sal_scale, (size_t)rows * 2);
    if (rank) memcpy(A16, A, (size_t)rows * rank * 2), memcpy(B16, B, (size_t)rank * cols * 2);
    decode_raw(rows, cols, s16, n_sal, sal, ss16, q, rank, A16, B16, out);
    free(s16), free(sal);
    *pp = p;
    return CAD_OK;
#undef NEED
trunc:
    return cad_fail(e, CAD_EFORMAT, "%s: tensor '%s': payload truncated", path, name);
}

/* ---- LQER ------------------------------------------------------------------------------------- */

/* Orthonormalise the k columns of M [n, k] (row-major) by modified Gram-Schmidt; a column that
 * vanishes (a residual of lower rank) becomes zero. */
static void orthonormalise(double *M, int n, int k) {
    for (int j = 0; j < k; j++) {
        for (int i = 0; i < j; i++) {
            double d = 0;
            for (int r = 0; r < n; r++) d += M[(size_t)r * k + i] * M[(size_t)r * k + j];
            for (int r = 0; r < n; r++) M[(size_t)r * k + j] -= d * M[(size_t)r * k + i];
        }
        double nn = 0;
        for (int r = 0; r < n; r++) nn += M[(size_t)r * k + j] * M[(size_t)r * k + j];
        double inv = nn > 1e-300 ? 1.0 / sqrt(nn) : 0.0;
        for (int r = 0; r < n; r++) M[(size_t)r * k + j] *= inv;
    }
}

int cad_lqer_factors(const double *R, int rows, int cols, int rank, uint16_t *A, uint16_t *B, const char *name,
                     cad_err *e) {
    double *Y = malloc((size_t)rows * rank * sizeof *Y), *Z = malloc((size_t)cols * rank * sizeof *Z);
    if (!Y || !Z) {
        free(Y), free(Z);
        return cad_fail(e, CAD_ENOMEM, "lqer: out of memory for tensor '%s'", name);
    }
    /* a fixed start, so the artifact is a function of the weights alone */
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t k = 0; k < (size_t)cols * rank; k++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        Z[k] = (double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
    }
    for (int it = 0; it < 5; it++) {
        if (it) { /* Z = R^T Y */
            memset(Z, 0, (size_t)cols * rank * sizeof *Z);
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++) {
                    double v = R[(size_t)r * cols + c];
                    for (int k = 0; k < rank; k++) Z[(size_t)c * rank + k] += v * Y[(size_t)r * rank + k];
                }
        }
        orthonormalise(Z, cols, rank);
        memset(Y, 0, (size_t)rows * rank * sizeof *Y); /* Y = R Z */
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                double v = R[(size_t)r * cols + c];
                for (int k = 0; k < rank; k++) Y[(size_t)r * rank + k] += v * Z[(size_t)c * rank + k];
            }
        orthonormalise(Y, rows, rank);
    }
    /* A = Y in fp16; B = A_h^T R from the rounded A, so B absorbs A's rounding */
    for (size_t k = 0; k < (size_t)rows * rank; k++) {
        A[k] = cad_f32_to_f16((float)Y[k]);
        Y[k] = cad_f16_to_f32(A[k]);
    }
    for (int k = 0; k < rank; k++)
        for (int c = 0; c < cols; c++) {
            double d = 0;
            for (int r = 0; r < rows; r++) d += Y[(size_t)r * rank + k] * R[(size_t)r * cols + c];
            B[(size_t)k * cols + c] = cad_f32_to_f16((float)d);
        }
    free(Y), free(Z);
    return CAD_OK;
}

/*
 * mamba.c — the Mamba-1 block of mamba.h as cad_backend calls: block_type parsing, the Mamba
 * keys' checks, parameter init, forward and backward of the sub-block that replaces attention.
 *
 * Memory: every activation the backward reads is kept per block (in_proj, conv, x_proj and
 * dt_proj outputs, the gated scan output) except the scan's T states per channel: the scan saves
 * the state entering each chunk of CAD_SCAN_CHUNK positions and its backward recomputes the rest
 * (32x less than storing them, for one more pass of the recurrence).
 *
 * Not here: where the block sits in the residual stream (model.c), the ops themselves.
 */
#include "engine/mamba.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- config ------------------------------------------------------------------------------ */

int cad_mamba_parse_block_type(const char *block_type, int num_layers, unsigned long long *mask, cad_err *e) {
    *mask = 0;
    const char *p = block_type ? block_type : "";
    int n = 0, mamba_one = 0;
    unsigned long long bits = 0;
    char word[32];
    while (*p) {
        while (*p == ' ' || *p == '[' || *p == ']' || *p == ',' || *p == '\t') p++;
        if (!*p) break;
        size_t len = 0;
        while (p[len] && p[len] != ',' && p[len] != ']' && p[len] != ' ' && p[len] != '\t') len++;
        if (len >= sizeof word) len = sizeof word - 1;
        memcpy(word, p, len);
        word[len] = 0;
        p += len;
        int is_mamba = !strcmp(word, "mamba");
        if (!is_mamba && strcmp(word, "attention") != 0)
            return cad_fail(e, CAD_ECONFIG, "block_type: entry %d is '%s', expected attention or mamba", n, word);
        if (is_mamba && n >= 64)
            return cad_fail(e, CAD_ECONFIG, "block_type: block %d is mamba, but at most 64 blocks can be listed", n);
        if (is_mamba) bits |= 1ull << n;
        mamba_one = is_mamba;
        n++;
    }
    if (n == 0) return cad_fail(e, CAD_ECONFIG, "block_type is empty: expected attention, mamba or a list of them");
    if (n == 1) { /* one word (or a one-entry YAML list, joined to the same text): every block */
        if (mamba_one && num_layers > 64)
            return cad_fail(e, CAD_ECONFIG, "block_type=mamba supports at most 64 blocks, num_layers is %d", num_layers);
        *mask = mamba_one ? (num_layers >= 64 ? ~0ull : (1ull << num_layers) - 1) : 0;
        return CAD_OK;
    }
    if (n != num_layers)
        return cad_fail(e, CAD_ECONFIG, "block_type lists %d blocks, expected one word or num_layers (%d) entries", n,
                        num_layers);
    *mask = bits;
    return CAD_OK;
}

int cad_mamba_model_config(const cad_config *c, cad_model_config *mc, cad_err *e) {
    int rc = cad_mamba_parse_block_type(c->block_type, mc->num_layers, &mc->mamba_mask, e);
    if (rc) return rc;
    mc->mamba_d_state = (int)c->mamba_d_state, mc->mamba_d_conv = (int)c->mamba_d_conv;
    mc->mamba_expand = (int)c->mamba_expand, mc->mamba_dt_rank = (int)c->mamba_dt_rank;
    return CAD_OK;
}

int cad_mamba_dt_rank(const cad_model_config *c) {
    return c->mamba_dt_rank > 0 ? c->mamba_dt_rank : (c->model_dim + 15) / 16;
}

int cad_mamba_config_check(const cad_model_config *c, cad_err *e) {
    if (!c->mamba_mask) return CAD_OK;
    if (c->num_layers < 64 && (c->mamba_mask >> c->num_layers) != 0)
        return cad_fail(e, CAD_ECONFIG, "block_type: Mamba blocks beyond num_layers (%d)", c->num_layers);
    int S = c->mamba_d_state;
    if (S < 1 || S > 32 || (S & (S - 1)))
        return cad_fail(e, CAD_ECONFIG, "mamba_d_state must be a power of two in 1..32 (the scan kernel sums the "
                        "states in a warp), got %d", S);
    if (c->mamba_d_conv < 1 || c->mamba_d_conv > 16)
        return cad_fail(e, CAD_ECONFIG, "mamba_d_conv must be in 1..16, got %d", c->mamba_d_conv);
    if (c->mamba_expand < 1 || c->mamba_expand > 16)
        return cad_fail(e, CAD_ECONFIG, "mamba_expand must be in 1..16, got %d", c->mamba_expand);
    if (c->mamba_dt_rank < 0 || c->mamba_dt_rank > c->mamba_expand * c->model_dim)
        return cad_fail(e, CAD_ECONFIG, "mamba_dt_rank must be 0 (= ceil(model_dim/16)) or 1..mamba_expand*model_dim "
                        "(%d), got %d", c->mamba_expand * c->model_dim, c->mamba_dt_rank);
    return CAD_OK;
}

/* ---- init -------------------------------------------------------------------------------- */

static void uniform_fill(float *h, size_t n, double bound, double (*uniform)(void *), void *rng) {
    for (size_t i = 0; i < n; i++) h[i] = (float)((2.0 * uniform(rng) - 1.0) * bound);
}

int cad_mamba_init_param(const cad_model_config *c, const char *suffix, float *h, long rows, long cols,
                         double (*uniform)(void *), void *rng) {
    size_t n = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    if (!strcmp(suffix, "A_log")) { /* S4D-real: A = -(1..S) in every channel */
        for (long r = 0; r < rows; r++)
            for (long s = 0; s < cols; s++) h[r * cols + s] = logf((float)(s + 1));
    } else if (!strcmp(suffix, "D")) {
        for (size_t i = 0; i < n; i++) h[i] = 1.0f;
    } else if (!strcmp(suffix, "dt_proj.bias")) { /* softplus(bias) = dt, dt log-uniform in [1e-3, 1e-1] */
        for (size_t i = 0; i < n; i++) {
            double dt = exp(uniform(rng) * (log(0.1) - log(0.001)) + log(0.001));
            if (dt < 1e-4) dt = 1e-4;
            h[i] = (float)(dt + log(-expm1(-dt)));
        }
    } else if (!strcmp(suffix, "dt_proj.weight")) {
        uniform_fill(h, n, 1.0 / sqrt((double)cad_mamba_dt_rank(c)), uniform, rng);
    } else if (!strcmp(suffix, "conv1d.weight") || !strcmp(suffix, "conv1d.bias")) {
        uniform_fill(h, n, 1.0 / sqrt((double)c->mamba_d_conv), uniform, rng);
    } else if (!strcmp(suffix, "in_proj.weight") || !strcmp(suffix, "x_proj.weight")) {
        uniform_fill(h, n, 1.0 / sqrt((double)cols), uniform, rng);
    } else if (!strcmp(suffix, "out_proj.weight")) {
        memset(h, 0, n * sizeof(float));
    } else {
        return -1;
    }
    return 0;
}

/* ---- forward / backward ------------------------------------------------------------------ */

#define MPD(i) (m->params[(i)].data)
#define MPG(i) (m->params[(i)].grad)
#define MWD(i) ((float *)cad_model_weights_used(m, (i))) /* fake-quantised under QAT */

void cad_mamba_forward(cad_model *m, cad_model_layer *L) {
    const cad_model_config *c = &m->cfg;
    const cad_backend *be = m->be;
    int B = m->cur_B, T = m->cur_T, N = B * T, C = c->model_dim, E = c->mamba_expand * C;
    int R = cad_mamba_dt_rank(c), S = c->mamba_d_state, K = c->mamba_d_conv, W = R + 2 * S;
    be->matmul(be, 0, 1, N, 2 * E, C, L->ln_s, L->xn1, C, MWD(L->mb.p_in_proj), C, 0.0f, L->mb_xz, 2 * E);
    be->causal_conv1d_forward(be, L->mb_u, L->mb_xz, 2 * E, MPD(L->mb.p_conv_w), MPD(L->mb.p_conv_b), B, T, E, K);
    be->matmul(be, 0, 1, N, W, E, 1.0f, L->mb_u, E, MWD(L->mb.p_x_proj), E, 0.0f, L->mb_xdbl, W);
    be->matmul(be, 0, 1, N, E, R, 1.0f, L->mb_xdbl, W, MWD(L->mb.p_dt_w), R, 0.0f, L->mb_dt, E);
    be->selective_scan_forward(be, L->mb_y, L->mb_hs, L->mb_u, L->mb_dt, MPD(L->mb.p_A_log), L->mb_xdbl + R,
                               L->mb_xdbl + R + S, W, MPD(L->mb.p_D), L->mb_xz + E, 2 * E, MPD(L->mb.p_dt_b), B, T, E,
                               S);
    be->matmul(be, 0, 1, N, C, E, 1.0f, L->mb_y, E, MWD(L->mb.p_out_proj), E, 0.0f, L->attn_out, C);
}

void cad_mamba_backward(cad_model *m, cad_model_layer *L) {
    const cad_model_config *c = &m->cfg;
    const cad_backend *be = m->be;
    int B = m->cur_B, T = m->cur_T, N = B * T, C = c->model_dim, E = c->mamba_expand * C;
    int R = cad_mamba_dt_rank(c), S = c->mamba_d_state, K = c->mamba_d_conv, W = R + 2 * S;
    /* out_proj */
    be->matmul(be, 1, 0, C, E, N, 1.0f, m->d_proj, C, L->mb_y, E, 1.0f, MPG(L->mb.p_out_proj), E);
    be->matmul(be, 0, 0, N, E, C, 1.0f, m->d_proj, C, MWD(L->mb.p_out_proj), E, 0.0f, m->mb_dy, E);
    /* scan: du, ddt, dB|dC into their columns of d xdbl, dz into the z half of d xz */
    be->selective_scan_backward(be, m->mb_du, m->mb_ddt, m->mb_dxdbl + R, m->mb_dxdbl + R + S, W, m->mb_dxz + E, 2 * E,
                                MPG(L->mb.p_A_log), MPG(L->mb.p_D), MPG(L->mb.p_dt_b), m->mb_dy, L->mb_u, L->mb_dt,
                                MPD(L->mb.p_A_log), L->mb_xdbl + R, L->mb_xdbl + R + S, W, MPD(L->mb.p_D),
                                L->mb_xz + E, 2 * E, MPD(L->mb.p_dt_b), L->mb_hs, B, T, E, S, m->scan_scratch,
                                m->scan_scratch_bytes);
    /* dt_proj: its input is the first R columns of xdbl; their gradient fills those columns */
    be->matmul(be, 1, 0, E, R, N, 1.0f, m->mb_ddt, E, L->mb_xdbl, W, 1.0f, MPG(L->mb.p_dt_w), R);
    be->matmul(be, 0, 0, N, R, E, 1.0f, m->mb_ddt, E, MWD(L->mb.p_dt_w), R, 0.0f, m->mb_dxdbl, W);
    /* x_proj: u's gradient gets x_proj's share on top of the scan's */
    be->matmul(be, 1, 0, W, E, N, 1.0f, m->mb_dxdbl, W, L->mb_u, E, 1.0f, MPG(L->mb.p_x_proj), E);
    be->matmul(be, 0, 0, N, E, W, 1.0f, m->mb_dxdbl, W, MWD(L->mb.p_x_proj), E, 1.0f, m->mb_du, E);
    /* conv: into the x half of d xz */
    be->causal_conv1d_backward(be, m->mb_dxz, 2 * E, MPG(L->mb.p_conv_w), MPG(L->mb.p_conv_b), m->mb_du, L->mb_xz,
                               2 * E, MPD(L->mb.p_conv_w), MPD(L->mb.p_conv_b), B, T, E, K);
    /* in_proj read ln_s * xn1: dW takes ln_s, and so does d xn1 */
    be->matmul(be, 1, 0, 2 * E, C, N, L->ln_s, m->mb_dxz, 2 * E, L->xn1, C, 1.0f, MPG(L->mb.p_in_proj), C);
    be->matmul(be, 0, 0, N, C, 2 * E, L->ln_s, m->mb_dxz, 2 * E, MWD(L->mb.p_in_proj), C, 0.0f, m->d_xn, C);
}

double cad_mamba_forward_flops(const cad_model_config *c, double N) {
    double C = c->model_dim, E = (double)c->mamba_expand * C, R = cad_mamba_dt_rank(c), S = c->mamba_d_state;
    return 2.0 * N * (C * 2.0 * E + E * (R + 2.0 * S) + R * E + E * C);
}

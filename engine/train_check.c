/*
 * train_check.c — the whole-model checks of train_check.h, on engine/bench.h's train-step
 * session (the very step `caddie bench` times and `caddie train` runs).
 */
#include "engine/train_check.h"

#include "engine/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *cur_precision = "fp32"; /* set by each check from its config */

static void report(cad_check_report_fn fn, void *ud, int *n_failed, cad_check_item *it) {
    it->precision = cur_precision;
    if (!it->pass) (*n_failed)++;
    if (fn) fn(it, ud);
}

static double rel_err(double ref, double dut) {
    double d = fabs(dut - ref), s = fabs(ref);
    if (d == 0) return 0;
    return s > 0 ? d / s : INFINITY;
}

/* splitmix64 -> uniform in [-1, 1) */
static double noise(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static float *host_floats(size_t n, cad_err *e) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) cad_fail(e, CAD_ENOMEM, "out of memory for %zu floats", n);
    return p;
}

/* Gradients of one step with weights w (host) on backend be: *loss and g (host). */
static int grads_on(cad_config *c, const cad_backend *be, float *w, uint64_t noise_seed, float *g, float *loss,
                    cad_err *e) {
    cad_bench_session s;
    int rc = cad_bench_session_open(&s, c, be, e);
    if (rc) return cad_wrap(e, "backend %s", be->name);
    size_t n = s.m.n_param_floats;
    if (noise_seed) { /* the reference: init + noise, returned in w for the other backend */
        be->copy_to_host(be, w, s.m.param_mem, n * sizeof(float));
        uint64_t st = noise_seed;
        for (size_t i = 0; i < n; i++) w[i] += (float)(0.02 * noise(&st));
    }
    be->copy_to_device(be, s.m.param_mem, w, n * sizeof(float));
    rc = cad_bench_session_grads(&s, loss, e);
    if (!rc) be->copy_to_host(be, g, s.m.grad_mem, n * sizeof(float));
    cad_bench_session_close(&s);
    return rc ? cad_wrap(e, "backend %s", be->name) : CAD_OK;
}

int cad_check_grads(cad_config *c, const cad_backend *ref, const cad_backend *dut, uint64_t noise_seed,
                    double max_nmse, double max_loss_rel, cad_check_report_fn fn, void *ud, int *n_failed,
                    cad_err *e) {
    *n_failed = 0;
    cur_precision = c->matmul_precision;
    /* the parameter table (names, sizes) without allocating a model: one on ref */
    cad_bench_session probe;
    int rc = cad_bench_session_open(&probe, c, ref, e);
    if (rc) return rc;
    size_t n = probe.m.n_param_floats;
    int np = probe.m.n_params;
    cad_param *params = malloc((size_t)np * sizeof *params);
    if (params) memcpy(params, probe.m.params, (size_t)np * sizeof *params);
    float *base = probe.m.param_mem;
    /* names live in the model: keep copies of the offsets only, and the names as text */
    char (*names)[96] = malloc((size_t)np * sizeof *names);
    long *off = malloc((size_t)np * sizeof *off);
    for (int i = 0; params && names && off && i < np; i++) {
        snprintf(names[i], sizeof names[i], "%s", params[i].name);
        off[i] = (long)(params[i].data - base);
    }
    cad_bench_session_close(&probe);
    float *w = host_floats(n, e), *gr = host_floats(n, e), *gd = host_floats(n, e);
    if (!params || !names || !off || !w || !gr || !gd) {
        rc = cad_fail(e, CAD_ENOMEM, "out of memory for the gradient check");
        goto out;
    }
    float lr, ld;
    if ((rc = grads_on(c, ref, w, noise_seed ? noise_seed : 1, gr, &lr, e))) goto out;
    if ((rc = grads_on(c, dut, w, 0, gd, &ld, e))) goto out;
    cad_check_item it = {"grads", NULL, "loss", lr, ld, rel_err(lr, ld), max_loss_rel, 0};
    it.pass = it.err <= max_loss_rel;
    report(fn, ud, n_failed, &it);
    /* mean square of the whole reference gradient: the floor of each tensor's NMSE denominator */
    double all = 0;
    for (size_t k = 0; k < n; k++) all += (double)gr[k] * gr[k];
    double ms_all = n ? all / (double)n : 0;
    for (int i = 0; i < np; i++) {
        if (params[i].numel == 0) continue;
        double num = 0, den = 0, nd = 0;
        int nonfinite = 0;
        for (long k = 0; k < params[i].numel; k++) {
            double a = gr[off[i] + k], b = gd[off[i] + k];
            if (!isfinite(a) || !isfinite(b)) nonfinite++;
            num += (b - a) * (b - a), den += a * a, nd += b * b;
        }
        double floor = CAD_CHECK_GRAD_FLOOR * (double)params[i].numel * ms_all;
        cad_check_item g = {"grads", NULL, "", sqrt(den), sqrt(nd), 0, max_nmse, 0};
        if (den < floor) den = floor;
        snprintf(g.what, sizeof g.what, "%s", names[i]);
        g.err = nonfinite ? INFINITY : num == 0 ? 0 : den > 0 ? num / den : INFINITY;
        g.pass = g.err <= max_nmse;
        report(fn, ud, n_failed, &g);
    }
out:
    free(params), free(names), free(off), free(w), free(gr), free(gd);
    return rc;
}

/* steps losses of a run on be; final weights to *wout (malloc'd) when wout is non-NULL. */
static int run_steps(cad_config *c, const cad_backend *be, long steps, double *loss, float **wout, size_t *nw,
                     cad_err *e) {
    cad_bench_session s;
    int rc = cad_bench_session_open(&s, c, be, e);
    if (rc) return cad_wrap(e, "backend %s", be->name);
    for (long i = 0; i < steps && !rc; i++) {
        float l;
        rc = cad_bench_session_step(&s, &l, e);
        loss[i] = l;
    }
    if (!rc && wout) {
        *nw = s.m.n_param_floats;
        *wout = host_floats(*nw, e);
        if (!*wout) rc = CAD_ENOMEM;
        else be->copy_to_host(be, *wout, s.m.param_mem, *nw * sizeof(float));
    }
    cad_bench_session_close(&s);
    return rc ? cad_wrap(e, "backend %s", be->name) : CAD_OK;
}

int cad_check_train(cad_config *c, const cad_backend *ref, const cad_backend *dut, long steps, double max_rel,
                    cad_check_report_fn fn, void *ud, int *n_failed, cad_err *e) {
    *n_failed = 0;
    cur_precision = c->matmul_precision;
    if (steps < 1) return cad_fail(e, CAD_ECONFIG, "train parity: steps must be >= 1");
    double *lr = malloc((size_t)steps * sizeof *lr), *ld = malloc((size_t)steps * sizeof *ld);
    int rc = (!lr || !ld) ? cad_fail(e, CAD_ENOMEM, "out of memory") : CAD_OK;
    if (!rc) rc = run_steps(c, ref, steps, lr, NULL, NULL, e);
    if (!rc) rc = run_steps(c, dut, steps, ld, NULL, NULL, e);
    for (long i = 0; !rc && i < steps; i++) {
        cad_check_item it = {"train", NULL, "", lr[i], ld[i], rel_err(lr[i], ld[i]), max_rel, 0};
        snprintf(it.what, sizeof it.what, "step %ld loss", i + 1);
        it.pass = it.err <= max_rel;
        report(fn, ud, n_failed, &it);
    }
    free(lr), free(ld);
    return rc;
}

int cad_check_determinism(cad_config *c, const cad_backend *be, long steps, cad_check_report_fn fn, void *ud,
                          int *n_failed, cad_err *e) {
    *n_failed = 0;
    cur_precision = c->matmul_precision;
    if (steps < 1) return cad_fail(e, CAD_ECONFIG, "determinism: steps must be >= 1");
    double *l1 = malloc((size_t)steps * sizeof *l1), *l2 = malloc((size_t)steps * sizeof *l2);
    float *w1 = NULL, *w2 = NULL;
    size_t n1 = 0, n2 = 0;
    int rc = (!l1 || !l2) ? cad_fail(e, CAD_ENOMEM, "out of memory") : CAD_OK;
    if (!rc) rc = run_steps(c, be, steps, l1, &w1, &n1, e);
    if (!rc) rc = run_steps(c, be, steps, l2, &w2, &n2, e);
    if (!rc) {
        for (long i = 0; i < steps; i++) {
            cad_check_item it = {"determinism", NULL, "", l1[i], l2[i], memcmp(&l1[i], &l2[i], sizeof(double)) != 0, 0, 0};
            snprintf(it.what, sizeof it.what, "step %ld loss", i + 1);
            it.pass = it.err == 0;
            report(fn, ud, n_failed, &it);
        }
        /* which tensors differ: the parameter table of a fresh model on be */
        long diff = 0;
        for (size_t k = 0; k < n1 && n1 == n2; k++) diff += memcmp(&w1[k], &w2[k], sizeof(float)) != 0;
        cad_check_item it = {"determinism", NULL, "final weights", 0, 0, (double)diff, 0, diff == 0 && n1 == n2};
        if (diff) {
            cad_bench_session s;
            if (cad_bench_session_open(&s, c, be, e) == CAD_OK) {
                int nt = 0;
                const char *first = NULL;
                for (int i = 0; i < s.m.n_params; i++) {
                    size_t o = (size_t)(s.m.params[i].data - s.m.param_mem);
                    if (s.m.params[i].numel &&
                        memcmp(w1 + o, w2 + o, (size_t)s.m.params[i].numel * sizeof(float)) != 0) {
                        nt++;
                        if (!first) first = s.m.params[i].name;
                    }
                }
                snprintf(it.what, sizeof it.what, "final weights: %d tensors differ, first %s", nt,
                         first ? first : "?");
                cad_bench_session_close(&s);
            } else {
                rc = cad_wrap(e, "backend %s", be->name);
            }
        }
        if (!rc) report(fn, ud, n_failed, &it);
    }
    free(l1), free(l2), free(w1), free(w2);
    return rc;
}

/* Resolve o->config with the precision (and, for the gradient check, the baseline shape). */
static int selftest_config(cad_config *c, const cad_train_selftest_opts *o, const char *prec, int grads, cad_err *e) {
    char sets[8][64];
    char *argv[8];
    int n = 0;
    snprintf(sets[n++], sizeof sets[0], "matmul_precision=%s", prec);
    if (grads && o->grad_full_size) {
        snprintf(sets[n++], sizeof sets[0], "num_layers=9");
        snprintf(sets[n++], sizeof sets[0], "model_dim=512");
        snprintf(sets[n++], sizeof sets[0], "num_heads=8");
        snprintf(sets[n++], sizeof sets[0], "num_kv_heads=4");
        snprintf(sets[n++], sizeof sets[0], "train_seq_len=1024");
        snprintf(sets[n++], sizeof sets[0], "train_batch_tokens=%ld", o->grad_B * 1024);
        snprintf(sets[n++], sizeof sets[0], "grad_accum_steps=1");
    }
    for (int i = 0; i < n; i++) argv[i] = sets[i];
    return cad_config_resolve(c, o->config, n, argv, e); /* c needs cad_config_free either way */
}

int cad_train_selftest(const cad_train_selftest_opts *o, const cad_backend *ref, const cad_backend *dut,
                       cad_check_report_fn fn, void *ud, int *n_failed, cad_err *e) {
    *n_failed = 0;
    const char *precs[2] = {"fp32", "bf16"};
    int rc = CAD_OK;
    for (int p = 0; p < 2 && !rc; p++) {
        for (int part = 0; part < 3 && !rc; part++) {
            if (part == 2 && o->det_steps <= 0) continue;
            cad_config c;
            int nf = 0;
            rc = selftest_config(&c, o, precs[p], part == 0, e);
            if (!rc) {
                if (part == 0)
                    rc = cad_check_grads(&c, ref, dut, 1, p ? o->grad_nmse_bf16 : o->grad_nmse_fp32, o->loss_rel, fn,
                                         ud, &nf, e);
                else if (part == 1)
                    rc = cad_check_train(&c, ref, dut, o->train_steps, o->loss_rel, fn, ud, &nf, e);
                else
                    rc = cad_check_determinism(&c, dut, o->det_steps, fn, ud, &nf, e);
            }
            cad_config_free(&c);
            *n_failed += nf;
        }
    }
    /* leave both backends as the default promises */
    ref->set_matmul_precision(ref, CAD_PREC_FP32);
    dut->set_matmul_precision(dut, CAD_PREC_FP32);
    return rc;
}

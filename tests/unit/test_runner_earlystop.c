/*
 * test_runner_earlystop.c — the stop: rule (sweep/stop.h: parsing, defaults, errors) and the
 * decision (runner/earlystop.h): step-matched values with linear interpolation, the median
 * rule (min_fraction, grace_runs, strictly worse, the first failing point), ASHA (rungs,
 * top 1/eta, grace), and the reasons with their numbers.
 */
#include "check.h"
#include "runner/earlystop.h"

#include <math.h>
#include <string.h>

static void add_line(cad_es_set *s, const char *id, double base, long from, long to, long every) {
    cad_err e = {0};
    for (long k = from; k <= to; k += every) CHECK_EQ_INT(cad_es_add(s, id, k, base + 10.0 / (double)k, &e), CAD_OK);
}

static void test_value_at_interpolates(void) {
    cad_es_set s = {0};
    cad_err e = {0};
    CHECK_EQ_INT(cad_es_add(&s, "a", 10, 4.0, &e), CAD_OK);
    CHECK_EQ_INT(cad_es_add(&s, "a", 20, 2.0, &e), CAD_OK);
    CHECK_EQ_INT(cad_es_add(&s, "a", 40, 1.0, &e), CAD_OK);
    CHECK_EQ_INT(cad_es_add(&s, "a", 40, 1.0, &e), CAD_ERR); /* steps must increase */
    double v = 0;
    CHECK(cad_es_value_at(&s.c[0], 10, &v) && v == 4.0);
    CHECK(cad_es_value_at(&s.c[0], 15, &v) && fabs(v - 3.0) < 1e-12);
    CHECK(cad_es_value_at(&s.c[0], 30, &v) && fabs(v - 1.5) < 1e-12);
    CHECK(cad_es_value_at(&s.c[0], 40, &v) && v == 1.0);
    CHECK(!cad_es_value_at(&s.c[0], 9, &v));
    CHECK(!cad_es_value_at(&s.c[0], 41, &v));
    cad_es_set_free(&s);
}

static void test_median_rule(void) {
    cad_sweep_stop r;
    cad_sweep_stop_init(&r);
    r.rule = CAD_STOP_MEDIAN;
    r.grace_runs = 3;
    r.min_fraction = 0.5;
    cad_es_set s = {0};
    /* three finished good runs logged every 10 steps; a candidate logged every 5 */
    add_line(&s, "g1", 1.0, 10, 100, 10);
    add_line(&s, "g2", 1.1, 10, 100, 10);
    add_line(&s, "g3", 1.2, 10, 100, 10);
    add_line(&s, "bad", 2.0, 5, 55, 5);
    long at = 0;
    char why[256] = "";
    CHECK_EQ_INT(cad_es_decide(&r, &s, "bad", 100, &at, why, sizeof why), 1);
    CHECK_EQ_INT(at, 50); /* the first point at or past 0.5 * 100 */
    CHECK_STR(why, "median: val_bpb 2.2000 at step 50 > median 1.3000 of 3 runs");
    /* a good run is never stopped; a step between others' points is interpolated */
    add_line(&s, "good", 0.9, 5, 55, 5);
    CHECK_EQ_INT(cad_es_decide(&r, &s, "good", 100, &at, why, sizeof why), 0);
    /* before min_fraction nothing is judged */
    CHECK_EQ_INT(cad_es_decide(&r, &s, "bad", 1000, &at, why, sizeof why), 0);
    /* fewer than grace_runs others at the step: not judged */
    r.grace_runs = 6;
    CHECK_EQ_INT(cad_es_decide(&r, &s, "bad", 100, &at, why, sizeof why), 0);
    /* unknown planned steps or an unknown run: goes on */
    r.grace_runs = 3;
    CHECK_EQ_INT(cad_es_decide(&r, &s, "bad", 0, &at, why, sizeof why), 0);
    CHECK_EQ_INT(cad_es_decide(&r, &s, "nosuch", 100, &at, why, sizeof why), 0);
    /* equal to the median is not worse */
    cad_es_set t = {0};
    add_line(&t, "a", 1.0, 10, 20, 10);
    add_line(&t, "b", 1.0, 10, 20, 10);
    add_line(&t, "c", 1.0, 10, 20, 10);
    add_line(&t, "x", 1.0, 10, 20, 10);
    CHECK_EQ_INT(cad_es_decide(&r, &t, "x", 20, &at, why, sizeof why), 0);
    cad_es_set_free(&t);
    cad_es_set_free(&s);
}

static void test_asha_rule(void) {
    cad_sweep_stop r;
    cad_sweep_stop_init(&r);
    r.rule = CAD_STOP_ASHA;
    r.reduction_factor = 2;
    r.grace_runs = 3;
    r.n_rungs = 2;
    r.rungs[0] = 0.25;
    r.rungs[1] = 0.5;
    cad_es_set s = {0};
    add_line(&s, "r1", 1.0, 10, 100, 10);
    add_line(&s, "r2", 1.1, 10, 100, 10);
    add_line(&s, "r3", 1.2, 10, 100, 10);
    add_line(&s, "mid", 1.05, 10, 60, 10); /* rank 2 of 4 at rung 25: keep 2 */
    long at = 0;
    char why[256] = "";
    CHECK_EQ_INT(cad_es_decide(&r, &s, "mid", 100, &at, why, sizeof why), 0);
    add_line(&s, "new", 1.15, 10, 30, 10); /* 1.65 at 20, 1.4833 at 30: 1.5667 at 25, rank 4 of 5: keep 2 */
    CHECK_EQ_INT(cad_es_decide(&r, &s, "new", 100, &at, why, sizeof why), 1);
    CHECK_EQ_INT(at, 25);
    CHECK_STR(why, "asha: val_bpb 1.5667 at step 25 (rung 0.25) ranks 4 of 5 > top 1/2 = 2");
    /* a run not yet at the first rung is not judged */
    add_line(&s, "young", 9.0, 10, 20, 10);
    CHECK_EQ_INT(cad_es_decide(&r, &s, "young", 100, &at, why, sizeof why), 0);
    cad_es_set_free(&s);
}

static void test_stop_parse(void) {
    cad_sweep_stop st;
    cad_err e = {0};
    const char *ok = "name: x\nstop: {rule: asha, metric: val_loss, reduction_factor: 4, rungs: [0.1, 0.3, 0.9], grace_runs: 2}\n";
    CHECK_EQ_INT(cad_sweep_stop_from_text("s.yaml", ok, strlen(ok), &st, &e), CAD_OK);
    CHECK_EQ_INT(st.rule, CAD_STOP_ASHA);
    CHECK_STR(st.metric, "val_loss");
    CHECK_EQ_INT(st.n_rungs, 3);
    CHECK(st.rungs[2] == 0.9 && st.reduction_factor == 4 && st.grace_runs == 2);
    const char *none = "name: x\n";
    CHECK_EQ_INT(cad_sweep_stop_from_text("s.yaml", none, strlen(none), &st, &e), CAD_OK);
    CHECK_EQ_INT(st.rule, CAD_STOP_OFF);
    CHECK_STR(st.metric, "val_bpb");
    CHECK(st.min_fraction == 0.25 && st.grace_runs == 4);
    static const struct { const char *text, *msg; } bad[] = {
        {"stop: {rule: median, min_fraction: 1.5}\n", "s.yaml:1:36: stop: 'min_fraction' must be in [0, 1), got 1.5"},
        {"stop: {rule: asha, reduction_factor: 1}\n", "stop: 'reduction_factor' must be in (1, 1000], got 1"},
        {"stop: {rule: median, grace: 3}\n", "stop: unknown key 'grace' (did you mean 'rule'?)"},
        {"stop: {metric: val_bpb}\n", "stop: 'rule' is required"},
        {"stop: {rule: asha, min_fraction: 0.5}\n", "stop: 'min_fraction' is not a key of rule asha"},
        {"stop: [median]\n", "'stop' must be a map"},
        {"stop: {rule: asha, rungs: []}\n", "stop: 'rungs' must be a non-empty list"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cad_err be = {0};
        CHECK(cad_sweep_stop_from_text("s.yaml", bad[i].text, strlen(bad[i].text), &st, &be) != CAD_OK);
        CHECK_MSG(strstr(be.msg, bad[i].msg) != NULL, "'%s': got '%s'", bad[i].text, be.msg);
    }
}

int main(void) {
    RUN(test_value_at_interpolates);
    RUN(test_median_rule);
    RUN(test_asha_rule);
    RUN(test_stop_parse);
    return check_report();
}

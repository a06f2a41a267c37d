/*
 * test_runner_sched.c — the runner's packing policy (runner/sched.h) and device lists:
 * 1-device runs pack, an 8-device run reserves devices as they free up, backfill only
 * when it ends before the reservation, nothing is ever double-booked.
 */
#include "check.h"
#include "runner/sched.h"

#include <math.h>

static void test_devset_parse_and_format(void) {
    cad_sched_devset s = 0;
    char buf[128];
    CHECK_EQ_INT(cad_sched_devset_parse("0-7", &s), 0);
    CHECK_EQ_INT(s, 0xff);
    CHECK_EQ_INT(cad_sched_devset_parse("0,2,4-5", &s), 0);
    cad_sched_devset_format(s, buf, sizeof buf);
    CHECK_STR(buf, "0,2,4,5");
    CHECK_EQ_INT(cad_sched_devset_count(s), 4);
    CHECK_EQ_INT(cad_sched_devset_parse("", &s), -1);
    CHECK_EQ_INT(cad_sched_devset_parse("3-1", &s), -1);
    CHECK_EQ_INT(cad_sched_devset_parse("0,", &s), -1);
    CHECK_EQ_INT(cad_sched_devset_parse("64", &s), -1);
    CHECK_EQ_INT(cad_sched_devset_parse("a", &s), -1);
}

static void test_ones_pack_on_lowest_free_devices(void) {
    cad_sched_queued q[3] = {{1, 10}, {1, 10}, {1, 10}};
    cad_sched_running r[1] = {{0x1, 5}};
    cad_sched_pick p[3];
    cad_sched_outcome o;
    cad_sched_decide(0xf, r, 1, q, 3, 0, p, &o);
    CHECK_EQ_INT(o.n_picks, 3);
    CHECK_EQ_INT(p[0].devs, 0x2);
    CHECK_EQ_INT(p[1].devs, 0x4);
    CHECK_EQ_INT(p[2].devs, 0x8);
    CHECK_EQ_INT(o.reserved_index, -1);
}

static void test_eight_reserves_and_blocks_long_backfill(void) {
    /* 8 devices, 6 busy with runs ending at t=100; queue: 8-dev run, then 1-dev runs */
    cad_sched_running r[6];
    for (int i = 0; i < 6; i++) r[i] = (cad_sched_running){(cad_sched_devset)1 << i, 100};
    cad_sched_queued q[3] = {{8, 600}, {1, 600}, {1, 50}};
    cad_sched_pick p[3];
    cad_sched_outcome o;
    cad_sched_decide(0xff, r, 6, q, 3, 0, p, &o);
    CHECK_EQ_INT(o.reserved_index, 0);
    CHECK_NEAR(o.shadow_time, 100, 0, 0);
    /* the 600 s run would delay the 8-dev run: not started; the 50 s run fits before T */
    CHECK_EQ_INT(o.n_picks, 1);
    CHECK_EQ_INT(p[0].index, 2);
    CHECK_EQ_INT(p[0].devs, 0x40);
}

static void test_unknown_estimate_never_backfills(void) {
    cad_sched_running r[1] = {{0x1, 100}};
    cad_sched_queued q[2] = {{2, 10}, {1, INFINITY}};
    cad_sched_pick p[2];
    cad_sched_outcome o;
    cad_sched_decide(0x3, r, 1, q, 2, 0, p, &o);
    CHECK_EQ_INT(o.reserved_index, 0);
    CHECK_EQ_INT(o.n_picks, 0);
}

static void test_spare_devices_at_shadow_allow_backfill(void) {
    /* 4 devices, a 2-dev run is reserved; at T two devices will be spare, so one long
     * 1-dev run may take a spare one, and a second one may too, but not a third */
    cad_sched_running r[2] = {{0x1, 100}, {0x2, 100}};
    cad_sched_queued q[4] = {{4, 10}, {1, 1000}, {1, 1000}, {1, 1000}};
    cad_sched_pick p[4];
    cad_sched_outcome o;
    cad_sched_decide(0xf, r, 2, q, 4, 0, p, &o);
    CHECK_EQ_INT(o.reserved_index, 0);
    CHECK_EQ_INT(o.n_picks, 0); /* 4-dev run needs every device: nothing spare */
    cad_sched_queued q2[4] = {{2, 10}, {1, 1000}, {1, 1000}, {1, 1000}};
    cad_sched_running r2[3] = {{0x1, 100}, {0x2, 100}, {0x4, 100}};
    cad_sched_decide(0xf, r2, 3, q2, 4, 0, p, &o);
    /* free: device 3; T=100 with 4 free, spare = 2; the first 1-dev long run takes dev 3 */
    CHECK_EQ_INT(o.reserved_index, 0);
    CHECK_EQ_INT(o.n_picks, 1);
    CHECK_EQ_INT(p[0].devs, 0x8);
}

static void test_too_wide_is_unrunnable(void) {
    cad_sched_queued q[2] = {{8, 10}, {1, 10}};
    cad_sched_pick p[2];
    cad_sched_outcome o;
    cad_sched_decide(0x3, NULL, 0, q, 2, 0, p, &o);
    CHECK_EQ_INT(o.n_unrunnable, 1);
    CHECK_EQ_INT(o.n_picks, 1);
    CHECK_EQ_INT(o.reserved_index, -1);
}

/* Simulate a queue of mixed runs over time: no device is ever in two runs, every run
 * starts, and the 8-device run is not starved by the 1-device runs queued after it. */
static void test_simulated_night_no_double_booking(void) {
    enum { N = 20 };
    cad_sched_queued q[N];
    double dur[N];
    for (int i = 0; i < N; i++) {
        q[i] = (cad_sched_queued){i == 5 ? 8 : 1, i % 3 == 0 ? 30 : 10};
        dur[i] = q[i].est_s;
    }
    int started[N] = {0}, done[N] = {0};
    double start_t[N], end_t[N];
    cad_sched_devset devs_of[N];
    double now = 0;
    int ok = 1;
    for (int iter = 0; iter < 1000; iter++) {
        cad_sched_running r[N];
        int nr = 0;
        cad_sched_devset busy = 0;
        for (int i = 0; i < N; i++) {
            if (started[i] && !done[i] && end_t[i] <= now) done[i] = 1;
            if (started[i] && !done[i]) {
                if (busy & devs_of[i]) ok = 0;
                busy |= devs_of[i];
                r[nr++] = (cad_sched_running){devs_of[i], end_t[i]};
            }
        }
        cad_sched_queued qq[N];
        int map[N], nq = 0;
        for (int i = 0; i < N; i++)
            if (!started[i]) { map[nq] = i; qq[nq++] = q[i]; }
        if (nq == 0 && nr == 0) break;
        cad_sched_pick p[N];
        cad_sched_outcome o;
        cad_sched_decide(0xff, r, nr, qq, nq, now, p, &o);
        for (int k = 0; k < o.n_picks; k++) {
            int i = map[p[k].index];
            if (busy & p[k].devs) ok = 0;
            busy |= p[k].devs;
            started[i] = 1;
            devs_of[i] = p[k].devs;
            start_t[i] = now;
            end_t[i] = now + dur[i];
        }
        now += 1;
    }
    CHECK(ok);
    for (int i = 0; i < N; i++) CHECK_MSG(done[i], "run %d never finished", i);
    /* runs queued after the 8-device run that started after it must not have started
     * before it unless they finished before it started (backfill) */
    for (int i = 6; i < N; i++)
        if (start_t[i] < start_t[5]) CHECK_MSG(end_t[i] <= start_t[5], "run %d delayed the 8-dev run", i);
    CHECK(start_t[5] <= 30);
}

int main(void) {
    RUN(test_devset_parse_and_format);
    RUN(test_ones_pack_on_lowest_free_devices);
    RUN(test_eight_reserves_and_blocks_long_backfill);
    RUN(test_unknown_estimate_never_backfills);
    RUN(test_spare_devices_at_shadow_allow_backfill);
    RUN(test_too_wide_is_unrunnable);
    RUN(test_simulated_night_no_double_booking);
    return check_report();
}

#!/usr/bin/env bash
# t0603 — `caddie seeds-needed`: seeds per side for p < 0.01 from the observed seed std.
# Expected counts were computed with scipy (t.ppf over n, Welch–Satterthwaite df) for the
# fixture's values: best group std 0.0010507 nats, reference 0.00069583 nats, observed
# improvement 0.01105 nats -> 3 seeds for Δ=0.005, 2 for the observed Δ, 3 for the bar;
# Δ=0.001 needs 11.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/reports_lib.sh"


test_expect_success 'fixture database' '
    fixture_db
'
test_expect_success 'seeds-needed: the table and its header lines' '
    caddie seeds-needed --sweep qk-wd >out &&
    test_grep "^sweep qk-wd: reference muon_wd=0.04 qk_gain_init=4$" out &&
    test_grep "^pooled seed std of val_loss: 0.00088 nats \\(12 degrees of freedom\\)$" out &&
    test_grep "^0.005 nats = 0.0019 bpb" out &&
    grep "^muon_wd=0.095 qk_gain_init=5.25 " out | grep -q -E "0.00105 +0.00070 +-0.01105 +3 +2 +3$"
'
test_expect_success 'an improvement below the bar can never clear it' '
    grep "^muon_wd=0.095 qk_gain_init=4 " out | grep -q "never (Δ < 0.005)"
'
test_expect_success '--delta changes the detectable improvement' '
    caddie seeds-needed --sweep qk-wd --delta 0.001 >out2 &&
    grep "^muon_wd=0.095 qk_gain_init=5.25 " out2 | grep -q -E " 11 +2 +3$"
'
test_expect_success 'a single-seed reference uses the pooled std (marked *)' '
    caddie seeds-needed --sweep vocab >v &&
    grep "^vocab_size=8192 " v | grep -q "0.00140\\*"
'
test_expect_success 'usage: --sweep is required, --delta must be positive' '
    test_must_fail 2 caddie seeds-needed 2>err && test_grep "sweep NAME is required" err &&
    test_must_fail 2 caddie seeds-needed --sweep qk-wd --delta -1 &&
    test_must_fail 1 caddie seeds-needed --sweep nope 2>err && test_grep "no runs in sweep" err
'
test_done

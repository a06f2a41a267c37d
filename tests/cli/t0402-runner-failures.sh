#!/usr/bin/env bash
# t0402 — how runs fail: non-zero exit, NaN loss (stopped early), exit 0 without a final
# score, timeout (TERM then KILL to the whole group: a grandchild that ignores TERM dies
# too), automatic retries; each failure keeps its reason and the last log lines.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

# one sweep, one run per failure mode (a bundle axis sets the fake engine's knobs)
cat >fail.yaml <<EOF
name: fail
engine: command
command: ["bash", "$FAKE"]
env:
  FAKE_EXIT: "{exit}"
  FAKE_NAN_AT: "{nan_at}"
  FAKE_NO_FINAL: "{no_final}"
  FAKE_STEPS: "{steps}"
  FAKE_SLEEP: "0.05"
grid:
  mode:
    - {exit: 3, nan_at: 0, no_final: 0, steps: 3}
    - {exit: 0, nan_at: 2, no_final: 0, steps: 200}
    - {exit: 0, nan_at: 0, no_final: 1, steps: 3}
timeout: 60
EOF

test_expect_success 'three failing runs end failed' '
    caddie sweep add fail.yaml >/dev/null &&
    run_fast --cpu-slots 3 >run.out 2>&1 &&
    test "$(n_status failed)" = 3 &&
    test_grep "runner +exit: 3 started, 0 done, 3 failed" run.out
'
test_expect_success 'non-zero exit: reason, exit code and the last log lines' '
    cfg_num_col exit 3 "exit_code, error" >err3 &&
    test_grep "^3\|exit code 3" err3 && test_grep "last lines of log.txt" err3 &&
    test_grep "^final_int8_zlib_roundtrip_exact" err3
'
test_expect_success 'NaN loss: failed at once, long before its 200 steps' '
    cfg_num_col nan_at 2 error >errnan &&
    test_grep "NaN" errnan && test_grep "step 2|NaN/Inf loss" errnan &&
    id=$(cfg_num_col nan_at 2 run_id) &&
    curve_stats train_loss | grep "^$id|" | awk -F"|" "{ exit !(\$5 < 150) }" &&
    test "$(run_col "$id" "(SELECT count(*) FROM results x WHERE x.run_id = runs.run_id)")" = 0
'
test_expect_success 'exit 0 without a final score line is a failure' '
    cfg_num_col no_final 1 error >errnf &&
    test_grep "without a final result" errnf &&
    test "$(q "SELECT count(*) FROM leaderboard")" = 0
'

cat >timeout.yaml <<EOF
name: timeout
engine: command
command: ["bash", "$FAKE"]
env:
  FAKE_STEPS: "1000"
  FAKE_SLEEP: "0.05"
  FAKE_IGNORE_TERM: "1"
  FAKE_GRANDCHILD: "{gc}"
grid:
  gc: [1]
timeout: 0.5
EOF
test_expect_success 'timeout: TERM, then KILL to the group; the grandchild dies too' '
    caddie sweep add timeout.yaml >/dev/null &&
    run_fast --cpu-slots 1 >run2.out 2>&1 &&
    dir=$(sweep_col timeout run_dir) &&
    test "$(sweep_col timeout status)" = failed &&
    sweep_col timeout error | grep -q "timeout after" &&
    test_grep "stopping timeout-.*timeout after" run2.out &&
    test_grep "kill +timeout-.*KILL to group" run2.out &&
    gc=$(cat "$dir/grandchild.pid") && test -n "$gc" &&
    wait_until 5 "gone $gc"   # killed: gone, or a zombie until the reparenting init reaps it
'

cat >retry.yaml <<EOF
name: retry
engine: command
command: ["bash", "$FAKE"]
env:
  FAKE_FAIL_FIRST: "$TRASH/{marker}"
  FAKE_STEPS: "3"
  FAKE_SLEEP: "0.02"
  FAKE_EXIT: "{exit}"
grid:
  case:
    - {marker: flaky, exit: 0}
    - {marker: broken, exit: 5}
retries: 1
EOF
test_expect_success 'a flaky run is retried and ends done on its second attempt' '
    caddie sweep add retry.yaml >/dev/null &&
    run_fast --cpu-slots 1 >run3.out 2>&1 &&
    cfg_col marker flaky "status, attempts" >flaky &&
    test "$(cat flaky)" = "done|2" &&
    test_grep "queued again" run3.out &&
    dir=$(cfg_col marker flaky run_dir) &&
    test -s "$dir/attempts/1/log.txt" && test_grep "fake crash" "$dir/attempts/1/log.txt" &&
    id=$(cfg_col marker flaky run_id) &&
    curve_stats train_loss | grep -qx "$id|3|3|1|3"
'
test_expect_success 'retries are bounded: a broken run fails after 1 + retries attempts' '
    test "$(cfg_col marker broken "status, attempts")" = "failed|2" &&
    id=$(cfg_col marker broken run_id) &&
    n_events retry failed | grep -qx "$id|2"
'
test_done

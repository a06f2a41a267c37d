#!/usr/bin/env bash
# t0416 — early stopping (`stop:` in a sweep file) with the fake command engine: a sweep
# where planted bad runs (a higher loss curve; they hang after step 12, so only the rule can
# end them before their timeout) are cut by the median rule and by ASHA at the expected
# steps, with the rule and the numbers as the reason, while good runs finish; stopped runs
# are final (no retry, dedup counts them as done, never on the leaderboard or in groups);
# kill -9 of the runner around a stop decision loses nothing.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

# stop_sweep NAME 'STOP' 'I...' 'BASE...' 'HANG...' — 20 steps, a val point every 2 steps
stop_sweep() {
    cat >"$1.yaml" <<YAML
name: $1
engine: command
command: ["bash", "$FAKE", "{i}"]
env:
  FAKE_STEPS: "20"
  FAKE_SLEEP: "0.02"
  FAKE_VAL_EVERY: "2"
  FAKE_BASE: "{base}"
  FAKE_HANG_AT: "{hang}"
zip:
  i: [$3]
  base: [$4]
  hang: [$5]
timeout: 120
stop: $2
YAML
}
# per run of a sweep: base|status|max val_bpb step|the reason of its event into stopped
outcome() {
    q "SELECT json_extract(r.config, '\$.base'), r.status,
              (SELECT max(step) FROM metrics m WHERE m.run_id = r.run_id AND m.name = 'val_bpb'),
              coalesce((SELECT group_concat(reason, ' / ') FROM events e
                        WHERE e.run_id = r.run_id AND e.to_status = 'stopped'), '')
       FROM runs r JOIN sweeps s ON s.id = r.sweep_id WHERE s.name = '$1' ORDER BY 1"
}
n_stopped_events() { q "SELECT count(*) FROM events e JOIN runs r USING(run_id) JOIN sweeps s ON s.id = r.sweep_id WHERE s.name = '$1' AND e.to_status = 'stopped'"; }
n_after_stop() { q "SELECT count(*) FROM events e WHERE e.to_status = 'queued' AND e.id > (SELECT min(id) FROM events f WHERE f.run_id = e.run_id AND f.to_status = 'stopped')"; }
in_views() { q "SELECT (SELECT count(*) FROM leaderboard WHERE sweep = '$1'), (SELECT sum(n) FROM sweep_groups WHERE sweep = '$1'), (SELECT count(*) FROM results x JOIN runs r USING(run_id) WHERE r.status = 'stopped')"; }

MEDIAN='{rule: median, metric: val_bpb, min_fraction: 0.25, grace_runs: 4}'
GOOD_I='1, 2, 3, 4' GOOD_B='3.04, 3.01, 3.02, 3.03' GOOD_H='0, 0, 0, 0'

test_expect_success 'median: four good runs first; fewer than grace_runs others, none judged' '
    stop_sweep med "$MEDIAN" "$GOOD_I" "$GOOD_B" "$GOOD_H" &&
    caddie sweep add med.yaml >/dev/null && run_fast --cpu-slots 1 >m1.out 2>&1 &&
    test "$(n_sweep med done)" = 4 && test "$(n_stopped_events med)" = 0
'
test_expect_success 'median: the bad half is stopped at step 6, the good runs finish' '
    stop_sweep med "$MEDIAN" "$GOOD_I, 5, 6, 7, 8, 9, 10" "$GOOD_B, 6.0, 6.01, 2.90, 6.02, 2.89, 6.03" \
        "$GOOD_H, 12, 12, 0, 12, 0, 12" &&
    caddie sweep add med.yaml >add2.out && test_grep "queued 6 runs" add2.out &&
    run_fast --cpu-slots 1 >m2.out 2>&1 &&
    outcome med >got &&
    cat >want <<-\EOF &&
	2.89|done|20|
	2.9|done|20|
	3.01|done|20|
	3.02|done|20|
	3.03|done|20|
	3.04|done|20|
	EOF
    grep "|done|" got >got_done && test_cmp want got_done &&
    grep "|stopped|" got >got_stopped && test "$(wc -l <got_stopped)" = 4 &&
    ! grep -Ev "^6(\.0[1-3])?\|stopped\|(6|8|10|12)\|median: val_bpb [0-9.]+ at step 6 > median [0-9.]+ of [4-9] runs$" got_stopped &&
    test_grep "^.{19} stopped med-[0-9a-f]+: median: val_bpb .* at step 6 > median .* \(TERM to process group" m2.out &&
    test_grep "runner +exit: 6 started, 2 done, 0 failed, 4 stopped early" m2.out
'
test_expect_success 'median: the reason names the numbers: the run value and the median of the others' '
    id=$(q "SELECT run_id FROM runs WHERE json_extract(config, '"'"'\$.base'"'"') = 6.0") &&
    caddie show "$id" >show.out && test_grep "^status +stopped" show.out &&
    test_grep "running +-> stopped +median: val_bpb 3\.8771 at step 6 > median 2\.1[0-9]+ of [4-7] runs" show.out
'
test_expect_success 'stopped runs: partial curve kept, no result, not on the leaderboard or in groups' '
    test "$(in_views med)" = "6|6|0" &&
    caddie ls --status stopped --sweep med >ls.out && test "$(grep -c " stopped " ls.out)" = 4
'
test_expect_success 'the report shows the stopped runs: partial curves and the reasons' '
    caddie report --sweep med --out med.html >/dev/null &&
    test_grep "<h3>Stopped early \(4\)</h3>" med.html &&
    test_grep "id=\"stopped-med\"" med.html &&
    test "$(grep -o "<tr class=\"stopped\">" med.html | wc -l)" = 4 &&
    test "$(grep -Eo "median: val_bpb [0-9.]+ at step 6 &gt; median [0-9.]+ of [4-9] runs" med.html | wc -l)" = 4
'
test_expect_success 'stopped runs are final: retry leaves them, plan/add count them as done unless --force' '
    caddie retry med >retry.out 2>&1; test "$(n_after_stop)" = 0 &&
    caddie sweep plan med.yaml >plan.out && test_grep "^0 to queue, 10 already done" plan.out &&
    caddie sweep plan --force med.yaml >planf.out && test_grep "^10 to queue" planf.out
'

ASHA='{rule: asha, metric: val_bpb, reduction_factor: 2, rungs: [0.25, 0.5], grace_runs: 3}'
test_expect_success 'asha: three good runs first (not judged), then the bad half is cut at rung step 5' '
    stop_sweep asha "$ASHA" "11, 12, 13" "3.04, 3.01, 3.02" "0, 0, 0" &&
    caddie sweep add asha.yaml >/dev/null && run_fast --cpu-slots 1 >a1.out 2>&1 &&
    test "$(n_sweep asha done)" = 3 &&
    stop_sweep asha "$ASHA" "11, 12, 13, 14, 15, 16, 17" "3.04, 3.01, 3.02, 6.0, 6.01, 2.9, 6.02" "0, 0, 0, 12, 12, 0, 12" &&
    caddie sweep add asha.yaml >/dev/null && run_fast --cpu-slots 1 >a2.out 2>&1 &&
    outcome asha >got &&
    test "$(grep -c "|done|20|$" got)" = 4 &&
    grep "|stopped|" got >got_stopped && test "$(wc -l <got_stopped)" = 3 &&
    ! grep -Ev "^6(\.0[1-2])?\|stopped\|(6|8|10|12)\|asha: val_bpb [0-9.]+ at step 5 \(rung 0\.25\) ranks [4-7] of [4-7] > top 1/2 = [23]$" got_stopped
'

test_expect_success 'kill -9 of the runner around a stop decision: stopped with its reason, or decided again' '
    stop_sweep crash "$MEDIAN" "21, 22, 23, 24" "$GOOD_B" "$GOOD_H" &&
    caddie sweep add crash.yaml >/dev/null && run_fast --cpu-slots 1 >k0.out 2>&1 &&
    stop_sweep crash "$MEDIAN" "21, 22, 23, 24, 25, 26, 27, 28" "$GOOD_B, 6.0, 6.01, 2.90, 6.02" "$GOOD_H, 12, 12, 0, 12" &&
    caddie sweep add crash.yaml >/dev/null &&
    { "$CADDIE" run --cpu-slots 1 --poll 0.05 --grace 0.5 >k1.out 2>&1 & } &&
    pid=$! &&
    { wait_until 60 "test \$(n_stopped_events crash) -ge 1" || { kill -9 $pid; false; }; } &&
    kill -9 $pid && { wait $pid; true; } &&
    run_fast --cpu-slots 1 >k2.out 2>&1 &&
    outcome crash >got &&
    test "$(grep -c "|done|20|$" got)" = 5 &&
    grep "|stopped|" got >got_stopped && test "$(wc -l <got_stopped)" = 3 &&
    ! grep -Ev "^6(\.0[1-2])?\|stopped\|(6|8|10|12)\|median: val_bpb [0-9.]+ at step 6 > median [0-9.]+ of [4-7] runs$" got_stopped &&
    test "$(n_stopped_events crash)" = 3 && test "$(n_after_stop)" = 0 &&
    test "$(q "SELECT count(*) FROM runs WHERE status = '"'"'running'"'"'")" = 0
'
test_expect_success 'the stop rule is read back from the DB: it survives a rebuild' '
    snapshot >before && mv caddie.db caddie.db.old && caddie db rebuild >/dev/null &&
    snapshot >after && test_cmp before after
'
test_expect_success 'a bad stop: section is refused with file:line:col' '
    stop_sweep bad "{rule: medain}" "1" "3" "0" &&
    test_must_fail 1 caddie sweep plan bad.yaml 2>err && test_grep "bad.yaml:[0-9]+:[0-9]+: stop: unknown rule .medain. \(did you mean .median.\?\)" err &&
    stop_sweep bad "{rule: median, rungs: [0.5]}" "1" "3" "0" &&
    test_must_fail 1 caddie sweep plan bad.yaml 2>err && test_grep "stop: .rungs. is not a key of rule median" err &&
    stop_sweep bad "{rule: asha, rungs: [0.5, 0.25]}" "1" "3" "0" &&
    test_must_fail 1 caddie sweep plan bad.yaml 2>err && test_grep "stop: rungs must increase" err
'
test_done

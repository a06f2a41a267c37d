#!/usr/bin/env bash
# t0404 — crash safety: kill -9 the runner in the middle of a sweep, start it again: the
# runs it left "running" are found dead (pid + start time + boot id), marked interrupted,
# requeued and rerun from scratch; every run ends done exactly once and its curve in the
# DB has no gaps and no duplicates, and a DB rebuilt from the run dirs says the same.
# Also: a run that survived the runner's death is killed by the next runner; SIGTERM to
# the runner interrupts runs cleanly.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

STEPS=15
fake_sweep crash "$STEPS" 0.08 "1, 2, 3, 4, 5, 6"

test_expect_success 'kill -9 the runner while runs are half way' '
    caddie sweep add crash.yaml >/dev/null &&
    { "$CADDIE" run --cpu-slots 2 --poll 0.05 --grace 0.5 >r1.out 2>&1 & } &&
    pid=$! &&
    wait_until 60 "test \$(n_sweep crash done) -ge 1 && test \$(n_sweep crash running) -ge 1 &&
        test \$(curve_stats train_loss | wc -l) -ge 3" &&
    kill -9 $pid && { wait $pid; true; } &&
    test $(n_sweep crash running) -ge 1 &&
    q "SELECT pid FROM runs WHERE status = '"'"'running'"'"'" >pids &&
    for p in $(cat pids); do wait_until 5 "gone $p" || exit 1; done
'
test_expect_success 'the next runner marks them interrupted, requeues and finishes them' '
    run_fast --cpu-slots 2 >r2.out 2>&1 &&
    test_grep "recover crash-.*: interrupted \(previous runner died; process [0-9]+ is gone\)" r2.out &&
    test_grep "requeue crash-" r2.out &&
    test $(n_sweep crash done) = 6
'
test_expect_success 'every run ended done exactly once' '
    n_events crash done >done_events &&
    test "$(wc -l <done_events)" = 6 && ! grep -v "|1$" done_events
'
test_expect_success 'interrupted runs were started twice, the first attempt archived' '
    q "SELECT run_id, attempts, run_dir FROM runs WHERE run_id IN
       (SELECT run_id FROM events WHERE to_status = '"'"'interrupted'"'"')" >intr &&
    test -s intr && ! grep -v "|2|" intr &&
    for d in $(cut -d"|" -f3 intr); do test -s "$d/attempts/1/log.txt" || exit 1; done
'
test_expect_success 'every curve is whole: steps 1..N once each, no gaps, no duplicates' '
    curve_stats train_loss >curves &&
    test "$(wc -l <curves)" = 6 && ! grep -v "|$STEPS|$STEPS|1|$STEPS$" curves &&
    curve_stats val_loss >vcurves && test "$(grep -c "|1|1|$STEPS|$STEPS$" vcurves)" = 6 &&
    for d in $(q "SELECT run_dir FROM runs"); do
        test "$(grep -c "\"train_loss\"" "$d/metrics.jsonl")" = $STEPS || exit 1
    done
'
test_expect_success 'delete the DB: caddie db rebuild gives back the same runs, curves, events' '
    snapshot >before &&
    caddie db rebuild --db rebuilt.db --runs-dir runs >/dev/null &&
    CADDIE_DB=rebuilt.db snapshot >after &&
    test_cmp before after && test "$(wc -l <before)" -gt 30
'

fake_sweep survivor 400 0.05 1 '  FAKE_IGNORE_TERM: "{i}"'
test_expect_success 'a run that outlived its runner (ignored TERM) is killed by the next one' '
    caddie sweep add survivor.yaml >/dev/null &&
    { "$CADDIE" run --cpu-slots 1 --poll 0.05 >r3.out 2>&1 & } &&
    pid=$! &&
    wait_until 30 "test \$(n_sweep survivor running) = 1 && test -n \"\$(run_col \$(running_id) pid)\"" &&
    child=$(run_col "$(running_id)" pid) &&
    kill -9 $pid && { wait $pid; true; } && sleep 0.3 && kill -0 $child &&
    { "$CADDIE" run --cpu-slots 1 --poll 0.05 --grace 0.3 >r4.out 2>&1 & } &&
    pid2=$! &&
    wait_until 30 "grep -q \"recover survivor-.*still alive\" r4.out" &&
    wait_until 10 "gone $child" &&
    wait_until 10 "grep -Eq \"recover survivor-.*interrupted \\(previous runner died; its process [0-9]+ was still running and was killed\\)\" r4.out" &&
    caddie cancel survivor >/dev/null &&
    wait_until 20 "grep -q \"cancelled survivor-.*process ended\" r4.out" &&
    kill -TERM $pid2 && { wait $pid2; true; }
'

fake_sweep term 200 0.05 "1, 2"
test_expect_success 'SIGTERM to the runner: TERM to its runs, marked interrupted, exit 143' '
    caddie sweep add term.yaml >/dev/null &&
    { "$CADDIE" run --cpu-slots 2 --poll 0.05 --grace 2 >r5.out 2>&1 & } &&
    pid=$! &&
    wait_until 30 "test \$(n_sweep term running) = 2" &&
    kill -TERM $pid && { wait $pid; rc=$?; } && test $rc = 143 &&
    test $(n_sweep term interrupted) = 2 &&
    test_grep "interrupted term-" r5.out &&
    for id in $(sweep_col term run_id); do caddie show "$id" | grep -q "interrupted .*runner stopped by SIGTERM" || exit 1; done &&
    caddie cancel term >/dev/null
'
test_done

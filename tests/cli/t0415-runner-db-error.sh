#!/usr/bin/env bash
# t0415 — a DB error while a run lives is an error, not "the run is gone": with the runs
# table out of reach (renamed behind the runner's back: "no such table") the runner ends
# naming the DB and the error instead of stopping the run as if it were deleted or
# cancelled and carrying on; the run stays recoverable: once the table is back, the next
# runner recovers it (interrupted, requeued) and completes it.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

fake_sweep dberr 60 0.1 1
test_expect_success 'the runs table goes away under a live run: the runner ends with the DB error' '
    caddie sweep add dberr.yaml >/dev/null &&
    { "$CADDIE" run --cpu-slots 1 --poll 0.05 --grace 1 >r1.out 2>r1.err & } &&
    pid=$! &&
    wait_until 60 "test \$(n_status running) = 1 && test -n \"\$(run_col \$(running_id) pid)\"" &&
    child=$(run_col "$(running_id)" pid) &&
    q "ALTER TABLE runs RENAME TO runs_away" &&
    wait_until 60 "gone $pid" && { wait $pid; rc=$?; true; } && test $rc = 1 &&
    test_grep "caddie run: .*caddie.db: .*no such table: runs" r1.err &&
    ! grep -q "run deleted from the DB" r1.out && wait_until 10 "gone $child"
'
test_expect_success 'table back: the next runner recovers the run and completes it' '
    q "ALTER TABLE runs_away RENAME TO runs" &&
    test $(n_status running) = 1 &&
    run_fast --cpu-slots 1 >r2.out 2>&1 &&
    test_grep "recover dberr-.*interrupted" r2.out &&
    test $(n_status done) = 1 && test "$(curve_stats train_loss | cut -d"|" -f2)" = 60
'
test_done

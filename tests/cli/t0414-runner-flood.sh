#!/usr/bin/env bash
# t0414 — the runner stays responsive whatever a run prints: a command-engine run printing
# 200 MB of '\r' (one huge line, no newline) does not stall it; SIGTERM to the runner stops
# it and its run (interrupted) within the hang guard, and the run's later lines still parse.
# Before, the tail rescanned its whole partial line on every 64 KB read (quadratic) and
# buffered all of it.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

fake_sweep flood 400 0.05 1 '  FAKE_FLOOD_MB: "200"'
test_expect_success 'a run printing 200 MB of \r: its step lines after it still parse' '
    caddie sweep add flood.yaml >/dev/null &&
    { "$CADDIE" run --cpu-slots 1 --poll 0.05 --grace 2 >r.out 2>&1 & } &&
    echo $! >r.pid &&
    wait_until 120 "test \$(n_status running) = 1 && test -n \"\$(run_col \$(running_id) pid)\"" &&
    id=$(running_id) && run_col "$id" pid >child.pid &&
    wait_until 120 "test \$(n_points $id train_loss) -ge 3"
'
test_expect_success 'SIGTERM to the runner: it and its run stop (hang guard 60 s)' '
    kill -TERM $(cat r.pid) &&
    wait_until 60 "gone $(cat r.pid)" && wait_until 10 "gone $(cat child.pid)" &&
    test $(n_status interrupted) = 1 && test $(n_status running) = 0 &&
    test_grep "runner  got SIGTERM" r.out
'
rm -rf runs
test_done

#!/usr/bin/env bash
# t0411 — one runner per DB FILE, whatever name reaches it: a second `caddie run` through a
# symlink or a hard link to the DB of a live runner fails and names the holder, and the
# first runner's run goes on untouched (before the fix the second one "recovered" it: TERM
# to a live run, marked interrupted). `caddie status` through either name sees the runner.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

fake_sweep live 400 0.05 1
test_expect_success 'a runner holds the DB with a run going' '
    caddie sweep add live.yaml >/dev/null &&
    { "$CADDIE" run --cpu-slots 1 --poll 0.05 >r1.out 2>&1 & } &&
    echo $! >r1.pid &&
    wait_until 30 "test \$(n_sweep live running) = 1 && test -n \"\$(run_col \$(running_id) pid)\"" &&
    run_col "$(running_id)" pid >child.pid
'
test_expect_success 'a second runner through a symlink fails, naming the first' '
    ln -s caddie.db link.db &&
    test_must_fail timeout -k 5 60 "$CADDIE" run --db link.db --cpu-slots 1 --until-empty 2>r2.err &&
    test_grep "another runner is using link.db: pid $(cat r1.pid) on " r2.err
'
test_expect_success 'a second runner through a hard link fails, naming the first' '
    mkdir other && ln caddie.db other/hard.db &&
    test_must_fail timeout -k 5 60 "$CADDIE" run --db other/hard.db --cpu-slots 1 --until-empty 2>r3.err &&
    test_grep "another runner is using other/hard.db: pid $(cat r1.pid)" r3.err
'
test_expect_success 'the live run was left alone: still running, same process, no recovery' '
    test $(n_sweep live running) = 1 && kill -0 $(cat child.pid) &&
    test "$(run_col "$(running_id)" pid)" = "$(cat child.pid)" &&
    test $(q "SELECT count(*) FROM events WHERE to_status = '"'"'interrupted'"'"'") = 0
'
test_expect_success 'status through either name sees the runner' '
    caddie status --db link.db >s1 && test_grep "^runner: +running, pid $(cat r1.pid) " s1 &&
    caddie status --db other/hard.db >s2 && test_grep "^runner: +running, pid $(cat r1.pid)" s2
'
test_expect_success 'the first runner stops cleanly; then a runner through the hard link may start' '
    caddie cancel live >/dev/null &&
    wait_until 30 "gone $(cat child.pid)" &&
    kill -TERM $(cat r1.pid) && wait_until 30 "gone $(cat r1.pid)" &&
    timeout -k 5 60 "$CADDIE" run --db other/hard.db --cpu-slots 1 --until-empty >r4.out 2>&1 &&
    test_grep "runner  exit" r4.out
'
test_done

#!/usr/bin/env bash
# t0405 — cancel and retry while a runner works: cancelling a running run stops its
# process group within a tick and keeps the status cancelled; cancelling a sweep drops its
# queued runs; retry queues cancelled/failed runs again; `status` shows the live runner
# and its running run; curves appear while a run runs; `logs -f` follows a run to its end.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

fake_sweep long 400 0.05 "1, 2, 3"
fake_sweep short 6 0.1 1 '' 'priority: 5'

test_expect_success 'start a runner on three long runs' '
    caddie sweep add long.yaml >/dev/null &&
    { "$CADDIE" run --cpu-slots 1 --poll 0.05 --grace 0.5 >runner.out 2>&1 & } &&
    echo $! >runner.pid &&
    wait_until 30 "test \$(n_status running) = 1"
'
test_expect_success 'curves appear in the DB while the run is still running' '
    id=$(running_id) &&
    wait_until 20 "test \$(n_points $id train_loss) -ge 3" &&
    test "$(run_col "$id" status)" = running
'
test_expect_success 'status shows the live runner and the running run' '
    caddie status >st.out &&
    test_grep "^runner: +running, pid $(cat runner.pid) on " st.out &&
    test_grep "^  long-.* devices 0 " st.out
'
test_expect_success 'cancel RUN stops the running run; the runner starts the next one' '
    id=$(running_id) && pid=$(run_col "$id" pid) &&
    caddie cancel "$id" >c.out && test_grep "cancelled 1 run of" c.out &&
    wait_until 10 "gone $pid" &&
    wait_until 10 "test \$(run_col $id status) = cancelled" &&
    wait_until 10 "test \$(n_status running) = 1" &&
    test_grep "cancelled $id \(process ended\)" runner.out
'
test_expect_success 'a higher-priority run queued later goes first; logs -f follows it to its end' '
    caddie sweep add short.yaml >/dev/null &&
    caddie cancel "$(running_id)" >/dev/null &&
    wait_until 20 "test \$(n_sweep short running) = 1" &&
    test "$(n_sweep long queued)" = 1 &&
    id=$(sweep_col short run_id) &&
    caddie logs -f "$id" >follow.out &&
    test_grep "^final_int8_zlib_roundtrip_exact" follow.out &&
    test "$(run_col "$id" status)" = done
'
test_expect_success 'cancel SWEEP stops its running run and drops its queued ones' '
    wait_until 20 "test \$(n_sweep long running) = 1" &&
    caddie cancel long >c2.out && test_grep "cancelled 1 run of .long." c2.out &&
    wait_until 10 "test \$(n_sweep long cancelled) = 3"
'
test_expect_success 'retry SWEEP queues the cancelled runs again' '
    caddie retry long >r.out && test_grep "queued 3 runs of .long. again" r.out &&
    wait_until 10 "test \$((\$(n_sweep long queued) + \$(n_sweep long running))) = 3" &&
    caddie cancel long >/dev/null &&
    caddie retry short >r2.out && test_grep "queued 0 runs of .short. again" r2.out
'
test_expect_success 'cancel/retry of something unknown fails' '
    test_must_fail 1 caddie cancel nosuch 2>err && test_grep "nosuch" err &&
    test_must_fail 2 caddie retry 2>err
'
test_expect_success 'stop the runner' '
    kill -TERM $(cat runner.pid) && wait_until 10 "gone $(cat runner.pid)"
'
test_done

#!/usr/bin/env bash
# t0421 — how Slurm jobs end maps onto the runner's states and retries, on a real single-node
# cluster (tests/cli/slurm_lib.sh): a failing engine is retried (the attempt archived with its
# job.sh), the runner's timeout scancels a hung job (failed), a scancel by hand cancels the run,
# a node failure interrupts it and queues it again (attempt count kept) until it is done.
# Skipped only where Slurm is not installed or its daemons cannot run here.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"
. "$CADDIE_SRC/tests/cli/slurm_lib.sh"

if ! slurm_start; then
    test_skip 'Slurm job ends and the runner states' "$SLURM_WHY"
    test_done
    exit
fi

# job_of RUN — the Slurm job id of the run's latest attempt ("" before sbatch answered)
job_of() { q "SELECT coalesce(job_id, '') FROM slurm_jobs WHERE run_id = '$1' ORDER BY attempt DESC LIMIT 1"; }

fake_sweep retry 4 0.1 1 "  FAKE_FAIL_FIRST: \"$TRASH/failed-once\"" "retries: 1"
fake_sweep hang 20 0.1 1 '  FAKE_HANG_AT: "{i}"' 'timeout: "3s"'
fake_sweep byhand 400 0.1 1
fake_sweep node 60 0.2 1
for f in retry hang byhand; do caddie sweep add $f.yaml >/dev/null || exit 1; done

test_expect_success 'the runner takes the three runs to Slurm' '
    { "$CADDIE" run --executor slurm --gres gpu --poll 0.1 --grace 1 >r.out 2>&1 & } &&
    echo $! >r.pid &&
    wait_until 60 "test \$(grep -c \"^.\{19\} submit \" r.out) -ge 3"
'
test_expect_success 'a failed job is retried: attempt 1 archived, attempt 2 done' '
    wait_until 90 "test \$(n_sweep retry done) = 1" &&
    id=$(sweep_col retry run_id) && test "$(run_col $id attempts)" = 2 &&
    test_grep "failed  $id after .*: exit code 1 \(queued again\)" r.out &&
    d=$(run_col $id run_dir) && test -s "$d/attempts/1/job.sh" &&
    test "$(cat "$d/attempts/1/job.exit")" = "exit 1" && test "$(cat "$d/job.exit")" = "exit 0" &&
    test "$(q "SELECT group_concat(attempt) FROM slurm_jobs WHERE run_id = '"'"'$id'"'"'")" = "1,2"
'
test_expect_success 'the runner s timeout scancels a hung job: failed' '
    wait_until 90 "test \$(n_sweep hang failed) = 1" &&
    id=$(sweep_col hang run_id) &&
    test_grep "stopping $id: timeout after 3s \(scancel [0-9]+_0\)" r.out &&
    run_col $id error | grep -q "^timeout after 3s"
'
test_expect_success 'a scancel by hand cancels the run' '
    id=$(sweep_col byhand run_id) &&
    job=$(job_of $id) &&
    wait_until 60 "test \"\$(slurm_state $job)\" = RUNNING" &&
    scancel "$job" &&
    wait_until 30 "test \$(n_sweep byhand cancelled) = 1" &&
    test_grep "cancelled $id after .*: Slurm job $job CANCELLED" r.out
'
test_expect_success 'a node failure interrupts the run and queues it again until it is done' '
    caddie sweep add node.yaml >/dev/null && id=$(sweep_col node run_id) &&
    wait_until 30 "test -n \"\$(job_of $id)\"" && job=$(job_of $id) &&
    wait_until 60 "test \"\$(slurm_state $job)\" = RUNNING && test -s $(run_col $id run_dir)/log.txt" &&
    scontrol update nodename="$SLURM_NODE" state=down reason=caddie-test &&
    wait_until 60 "test \"\$(slurm_state $job)\" = NODE_FAIL" &&
    { scontrol update nodename="$SLURM_NODE" state=resume 2>/dev/null; true; } &&
    wait_until 60 "sinfo -h -o %T | grep -qx idle" &&
    wait_until 120 "test \$(n_sweep node done) = 1" &&
    test_grep "interrupted $id after .*: Slurm job $job NODE_FAIL \(queued again\)" r.out &&
    test "$(run_col $id attempts)" = 2 &&
    test "$(n_points $id train_loss)" = 60
'
test_expect_success 'SIGTERM stops the runner, which leaves Slurm jobs alone' '
    kill -TERM $(cat r.pid) && wait_until 30 "gone $(cat r.pid)" &&
    test_grep "runner  got SIGTERM: no new runs; 0 slurm jobs left running" r.out
'
slurm_stop
test_done

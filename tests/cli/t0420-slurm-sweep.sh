#!/usr/bin/env bash
# t0420 — the Slurm executor on a real single-node cluster (munged + slurmctld + slurmd started
# here, tests/cli/slurm_lib.sh): a 6-run sweep becomes one job array with one GPU (GRES) per
# run; the runner is killed with -9 in the middle, started again, re-attaches to the jobs by
# the ids in the DB, and every run ends done exactly once (one start of its engine, one Slurm
# job) with a complete curve. Values reach the engine literally through the job script.
# `caddie cancel` scancels a job no runner watches. Skipped only where Slurm is not installed
# or its daemons cannot run here.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"
. "$CADDIE_SRC/tests/cli/slurm_lib.sh"

if ! slurm_start; then
    test_skip 'the Slurm executor on a single-node cluster' "$SLURM_WHY"
    test_done
    exit
fi

STEPS=12
fake_sweep sl "$STEPS" 0.4 "1, 2, 3, 4, 5, 6" "  FAKE_RECORD: \"$TRASH/record\"
  FAKE_ECHO_ENV: \"V,CUDA_VISIBLE_DEVICES\"
  V: \"it's \$(touch INJECTED); rm -rf ~\""
# the runner's options (not a function: a background function is a subshell, and kill -9 of
# its pid would leave the runner alive)
SRUN="run --executor slurm --gres gpu --poll 0.1 --grace 1"

test_expect_success 'the runner submits the sweep as one array, one GPU per run' '
    caddie sweep add sl.yaml >/dev/null &&
    { "$CADDIE" $SRUN >r1.out 2>&1 & } && echo $! >r1.pid &&
    wait_until 60 "test \$(grep -c \"^.\{19\} submit  sl-\" r1.out) = 6" &&
    test "$(grep -o "as Slurm job [0-9]*_" r1.out | sort -u | wc -l)" = 1 &&
    test "$(q "SELECT count(DISTINCT job_name) || \"|\" || count(DISTINCT job_id) FROM slurm_jobs")" = "1|6"
'
test_expect_success 'kill -9 the runner while jobs run and wait in Slurm' '
    wait_until 90 "test \$(n_sweep sl done) -ge 1 && test -n \"\$(squeue -h -t running)\" &&
        test \$(curve_stats train_loss | wc -l) -ge 3" &&
    kill -9 $(cat r1.pid) && { wait $(cat r1.pid); true; } &&
    test $(n_sweep sl running) -ge 1 &&
    test -n "$(squeue -h -t pending,running)"
'
test_expect_success 'the jobs go on without a runner' '
    id=$(q "SELECT j.job_id FROM slurm_jobs j JOIN runs r USING(run_id) WHERE r.status = '"'"'running'"'"' ORDER BY j.job_id DESC LIMIT 1") &&
    test -n "$id" && wait_until 60 "test \"\$(slurm_state $id)\" = RUNNING"
'
test_expect_success 'the next runner re-attaches by job id and finishes the sweep' '
    timeout -k 5 180 "$CADDIE" $SRUN --until-empty >r2.out 2>&1 &&
    test_grep "recover sl-.*: re-attached to Slurm job [0-9]+_[0-5]" r2.out &&
    ! grep -q "^.\{19\} submit " r2.out &&
    test $(n_sweep sl done) = 6
'
test_expect_success 'every run ended done exactly once, on its first and only attempt' '
    n_events sl done >done_events &&
    test "$(wc -l <done_events)" = 6 && ! grep -v "|1$" done_events &&
    test "$(q "SELECT count(*) FROM runs WHERE attempts = 1")" = 6 &&
    test "$(q "SELECT count(*) FROM events WHERE to_status = '"'"'interrupted'"'"'")" = 0
'
test_expect_success 'each engine started once: one Slurm job per run, 6 COMPLETED in the jobcomp file' '
    test "$(grep -c "^start " record)" = 6 &&
    test "$(cut -d" " -f2 record | sort | uniq -c | grep -vc " 2 ")" = 0 &&
    test "$(slurm_jobs_in COMPLETED)" = 6 && test "$(grep -c JobId= "$SL/jobcomp.txt")" = 6
'
test_expect_success 'every curve is whole: steps 1..N once each' '
    curve_stats train_loss >curves &&
    test "$(wc -l <curves)" = 6 && ! grep -v "|$STEPS|$STEPS|1|$STEPS$" curves &&
    test "$(q "SELECT count(*) FROM results")" = 6
'
test_expect_success 'GRES gave each run one GPU; values arrived literally' '
    q "SELECT run_dir FROM runs WHERE run_id LIKE '"'"'sl-%'"'"'" >dirs && test "$(wc -l <dirs)" = 6 &&
    for d in $(cat dirs); do
        grep -Eqx "env:CUDA_VISIBLE_DEVICES=[01]" "$d/log.txt" &&
        grep -qxF "env:V=it'"'"'s \$(touch INJECTED); rm -rf ~" "$d/log.txt" &&
        test "$(cat "$d/job.exit")" = "exit 0" || exit 1
    done &&
    test ! -e INJECTED && test -e "$HOME/canary"
'

fake_sweep byname 20 0.2 1 "  FAKE_RECORD: \"$TRASH/record2\""
test_expect_success 'a runner killed before it recorded the job id finds the job by name' '
    caddie sweep add byname.yaml >/dev/null &&
    { "$CADDIE" $SRUN >r7.out 2>&1 & } && echo $! >r7.pid &&
    wait_until 60 "grep -q \"submit  byname-\" r7.out" &&
    kill -9 $(cat r7.pid) && { wait $(cat r7.pid); true; } &&
    id=$(sweep_col byname run_id) && job=$(q "SELECT job_id FROM slurm_jobs WHERE run_id = '"'"'$id'"'"'") &&
    q "UPDATE slurm_jobs SET job_id = NULL WHERE run_id = '"'"'$id'"'"'" &&
    timeout -k 5 120 "$CADDIE" $SRUN --until-empty >r8.out 2>&1 &&
    test_grep "recover $id: re-attached to Slurm job $job$" r8.out &&
    test $(n_sweep byname done) = 1 && test "$(run_col $id attempts)" = 1 &&
    test "$(grep -c "^start " record2)" = 1 &&
    test "$(q "SELECT job_id FROM slurm_jobs WHERE run_id = '"'"'$id'"'"'")" = "$job"
'

fake_sweep long 400 0.1 1
test_expect_success 'caddie cancel scancels a job that no runner watches' '
    caddie sweep add long.yaml >/dev/null &&
    { "$CADDIE" $SRUN >r3.out 2>&1 & } && echo $! >r3.pid &&
    wait_until 60 "grep -q \"submit  long-\" r3.out" &&
    id=$(q "SELECT job_id FROM slurm_jobs WHERE run_id LIKE '"'"'long-%'"'"'") &&
    wait_until 60 "test \"\$(slurm_state $id)\" = RUNNING" &&
    kill -9 $(cat r3.pid) && { wait $(cat r3.pid); true; } &&
    caddie cancel long >c.out && test_grep "^scancel $id$" c.out &&
    wait_until 30 "test \"\$(slurm_state $id)\" = CANCELLED" &&
    test $(n_sweep long cancelled) = 1 &&
    timeout -k 5 60 "$CADDIE" $SRUN --until-empty >r4.out 2>&1 &&
    test $(n_sweep long cancelled) = 1 && ! grep -q "recover long-" r4.out
'
test_expect_success 'a local runner refuses a DB whose running run is a Slurm job' '
    caddie sweep add long.yaml --force >/dev/null &&
    { "$CADDIE" $SRUN >r5.out 2>&1 & } && echo $! >r5.pid &&
    wait_until 60 "grep -q \"submit  long-\" r5.out" &&
    kill -9 $(cat r5.pid) && { wait $(cat r5.pid); true; } &&
    test_must_fail 1 "$CADDIE" run --cpu-slots 1 --until-empty >r6.out 2>&1 &&
    test_grep "is running as Slurm job [0-9]+_0 .*--executor slurm to re-attach" r6.out &&
    caddie cancel long >/dev/null
'
slurm_stop
test_done

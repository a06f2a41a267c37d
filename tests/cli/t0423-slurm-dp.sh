#!/usr/bin/env bash
# t0423 — `devices: 2` caddie-engine runs (data parallel, CPU ranks) through the Slurm executor
# on a real single-node cluster (tests/cli/slurm_lib.sh: two fake GPUs as GRES gpu:2): the job
# asks for both GPUs, launch starts two ranks that each see their own one of them, and both
# runs end done with world_size 2. A rank killed with SIGKILL ends the whole job within seconds
# (no rank left behind) and the run fails with the cause in its error; `caddie cancel` of a
# running 2-device run scancels it and leaves no rank behind. Without --gres a devices: 2 job
# asks for two CPUs and no GPU, and is told it holds two devices (CADDIE_DEVICES).
# Skipped only where Slurm is not installed or its daemons cannot run here, or without the
# bundled sample's shards (make sample).
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"
. "$CADDIE_SRC/tests/cli/slurm_lib.sh"

if ! [ -f "$CADDIE_SRC/data/sample/fineweb10B_sp1024/fineweb_val_000000.bin" ]; then
    test_skip 'data parallel runs under Slurm' 'no sample shards (make sample)'
    test_done
    exit
fi
if ! slurm_start; then
    test_skip 'data parallel runs under Slurm' "$SLURM_WHY"
    test_done
    exit
fi

slurm_record_sbatch # the runner's sbatch calls recorded in sbatch.args (slurm_lib.sh)

# t0203's micro model: 512 tokens a step over 2 ranks of 64-token windows = 4 accumulation steps
MICRO="train_seq_len=64 train_batch_tokens=512 grad_accum_steps=0 warmdown_iters=2 val_loss_every=0
       val_batch_size=2048 val_max_tokens=1024 grad_clip_norm=1.0"
micro_config micro.yaml $MICRO iterations=4
micro_config endless.yaml $MICRO iterations=100000 # runs that go on until stopped
# dp_sweep NAME BASE 'VALUES' — NAME.yaml: a devices: 2 caddie sweep over qk_gain_init
dp_sweep() {
    printf 'name: %s\nengine: caddie\nbase: %s\ndevices: 2\ngrid:\n  qk_gain_init: [%s]\n' \
        "$1" "$2" "$3" >"$1.yaml"
}
dp_sweep dp micro.yaml "1.5, 2.0"
dp_sweep killed endless.yaml 1.25
dp_sweep cancelled endless.yaml 1.75
SRUN="run --executor slurm --gres gpu --poll 0.1 --grace 1"

# ranks RUN_DIR — "PID0 PID1": the ranks launch started (its lines in the run's console.txt)
ranks() {
    sed -n 's/^launch: rank \([01]\) pid \([0-9]*\)$/\1 \2/p' "$1/console.txt" 2>/dev/null |
        sort -n | cut -d' ' -f2 | tr '\n' ' '
}
# env_of PID NAME — the variable's value in the environment the process started with
env_of() { tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n "s/^$2=//p"; }
ppid_of() { awk '{print $4}' "/proc/$1/stat" 2>/dev/null; } # PID
# left_in RUN_DIR — live processes whose command line names the run dir (job.sh, launch and
# the ranks do; the run dir is unique to this test): none once the job is gone. pgrep takes a
# regular expression: the path's special characters are escaped.
left_in() { pgrep -f -- "$(printf '%s/' "$1" | sed 's/[][\\.*^$+?(){}|]/\\&/g')" || true; }
# job_of RUN — the Slurm job id of the run's latest attempt
job_of() { q "SELECT coalesce(job_id, '') FROM slurm_jobs WHERE run_id = '$1' ORDER BY attempt DESC LIMIT 1"; }
# slurm_pids — the pids slurmd tracks as processes of jobs on this node
slurm_pids() { scontrol listpids 2>/dev/null | awk 'NR > 1 {print $1}'; }
# started SWEEP — wait until the sweep's run trains (rank 0 logged step 2), then write
# SWEEP.pids: "RANK0 RANK1 LAUNCH"; RANK0's parent must be the launcher of RANK1 too
started() {
    local d
    wait_until 60 "test -n \"\$(sweep_col $1 run_dir)\"" && d=$(sweep_col "$1" run_dir) &&
    wait_until 90 "grep -q '^step:2/' '$d/log.txt' 2>/dev/null && test -n \"\$(ranks '$d')\"" &&
    set -- "$1" $(ranks "$d") && test $# = 3 &&
    test "$(ppid_of "$2")" = "$(ppid_of "$3")" && test -n "$(ppid_of "$2")" &&
    echo "$2 $3 $(ppid_of "$2")" >"$1.pids"
}

test_expect_success 'two devices: 2 runs: one array asking --gres=gpu:2, both done with world_size 2' '
    caddie sweep add dp.yaml >/dev/null &&
    timeout -k 5 240 "$CADDIE" $SRUN --until-empty >r1.out 2>&1 &&
    test "$(n_sweep dp done)" = 2 &&
    test "$(wc -l <sbatch.args)" = 1 && test_grep "(^| )--gres=gpu:2( |$)" sbatch.args &&
    test_grep "(^| )--array=0-1( |$)" sbatch.args &&
    test "$(slurm_jobs_in COMPLETED)" = 2 &&
    for id in $(sweep_col dp run_id); do
        d=$(run_col $id run_dir) &&
        test_grep "^world_size:2 grad_accum_steps:4$" "$d/log.txt" &&
        test_grep "^launch: rank 0 pid [0-9]+$" "$d/console.txt" &&
        test_grep "^launch: rank 1 pid [0-9]+$" "$d/console.txt" &&
        test -f "$d/result.json" && test "$(cat "$d/job.exit")" = "exit 0" || exit 1
    done
'

# Nothing records the devices a rank saw: its environment is read from /proc while it runs, so
# it is checked on the endless run that is killed next.
test_expect_success 'a running 2-device job holds both GPUs; each rank sees its own one' '
    caddie sweep add killed.yaml >/dev/null &&
    { "$CADDIE" $SRUN --until-empty >r2.out 2>&1 & } && echo $! >r2.pid &&
    started killed && set -- $(cat killed.pids) && job=$(job_of $(sweep_col killed run_id)) &&
    scontrol show job "$job" >job.txt && test_grep "TresPerNode=gres:gpu:2$" job.txt &&
    all=$(env_of $3 CUDA_VISIBLE_DEVICES) &&
    test "$(echo "$all" | tr , "\n" | sort -u | grep -c "^[01]$")" = 2 &&
    test "$(env_of $1 CUDA_VISIBLE_DEVICES)" = "${all%%,*}" &&
    test "$(env_of $2 CUDA_VISIBLE_DEVICES)" = "${all#*,}" &&
    test "$(env_of $1 RANK)|$(env_of $2 RANK)|$(env_of $2 WORLD_SIZE)" = "0|1|2" &&
    test "$(env_of $3 CADDIE_DEVICES)" = 2 &&
    slurm_pids >tracked && grep -qx "$1" tracked && grep -qx "$2" tracked && grep -qx "$3" tracked
'
test_expect_success 'kill -9 of rank 1 ends the whole job within seconds: no rank left' '
    set -- $(cat killed.pids) && id=$(sweep_col killed run_id) && job=$(job_of $id) &&
    d=$(run_col $id run_dir) && test -n "$(left_in "$d")" &&
    kill -9 $2 &&
    wait_until 10 "gone $1 && gone $2 && gone $3" &&
    wait_until 10 "test \"\$(slurm_state $job)\" = FAILED" &&
    test -z "$(left_in "$d")" && ! ls /dev/shm | grep -q "^caddie-coll-$3-"
'
test_expect_success 'the run is failed, the killed rank named in its error' '
    set -- $(cat killed.pids) && id=$(sweep_col killed run_id) &&
    wait_until 30 "test \$(n_sweep killed failed) = 1" &&
    wait_until 30 "gone $(cat r2.pid)" &&
    run_col $id error >err &&
    test_grep "^exit code 1$" err &&
    test_grep "^caddie launch: rank 1 \(pid $2\) killed by signal 9; stopping the other ranks$" err &&
    test "$(run_col $id attempts)" = 1 &&
    test "$(cat "$(run_col $id run_dir)/job.exit")" = "exit 1" &&
    test "$(slurm_jobs_in FAILED)" = 1
'

test_expect_success 'caddie cancel of a running 2-device run scancels it: no rank left' '
    caddie sweep add cancelled.yaml >/dev/null && id=$(sweep_col cancelled run_id) &&
    { "$CADDIE" $SRUN --until-empty >r3.out 2>&1 & } && echo $! >r3.pid &&
    started cancelled && set -- $(cat cancelled.pids) && job=$(job_of $id) &&
    d=$(run_col $id run_dir) &&
    caddie cancel cancelled >c.out && test_grep "^scancel $job$" c.out &&
    wait_until 10 "gone $1 && gone $2 && gone $3" &&
    wait_until 10 "test \"\$(slurm_state $job)\" = CANCELLED" &&
    test -z "$(left_in "$d")" && ! ls /dev/shm | grep -q "^caddie-coll-$3-" &&
    wait_until 30 "gone $(cat r3.pid)" &&
    test "$(n_sweep cancelled cancelled)" = 1
'

# without --gres a run's devices are CPUs: a devices: 2 job asks for two (--threads 1 each), no
# GPU, and is told it holds two devices (CADDIE_DEVICES), as launch starts two ranks
fake_sweep cpu 1 0 1 '  FAKE_ECHO_ENV: "CADDIE_DEVICES,CUDA_VISIBLE_DEVICES,OMP_NUM_THREADS"' 'devices: 2'
test_expect_success 'without --gres a devices: 2 job gets 2 CPUs, no GPU, CADDIE_DEVICES=2' '
    caddie sweep add cpu.yaml >/dev/null &&
    timeout -k 5 120 "$CADDIE" run --executor slurm --poll 0.1 --grace 1 --until-empty >r4.out 2>&1 &&
    test "$(n_sweep cpu done)" = 1 &&
    tail -n 1 sbatch.args >cpu.args && test_grep "(^| )--cpus-per-task=2( |$)" cpu.args &&
    ! grep -q -- "--gres" cpu.args &&
    d=$(sweep_col cpu run_dir) &&
    test_grep "^env:CADDIE_DEVICES=2$" "$d/log.txt" &&
    test_grep "^env:CUDA_VISIBLE_DEVICES=$" "$d/log.txt" &&
    test_grep "^env:OMP_NUM_THREADS=1$" "$d/log.txt"
'
# a runner a failed check left waiting: stopped (its jobs go with slurm_stop's scancel)
for f in r2.pid r3.pid; do test -f $f && kill -TERM "$(cat $f)" 2>/dev/null; done
slurm_stop
test_done

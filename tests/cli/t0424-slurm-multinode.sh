#!/usr/bin/env bash
# t0424 — data-parallel caddie runs wider than a node under the Slurm executor
# (`--gpus-per-node G`): a devices: N run becomes one job on N/G nodes with --gres=gpu:G each,
# whose job.sh starts one `caddie launch --nproc G` per node through srun, the ranks meeting over
# TCP at the first node. On this single-node cluster (tests/cli/slurm_lib.sh, gpu:2): N = 2, G = 2
# runs for real (srun, one node, the TCP collective, world_size 2, done); N = 2, G = 1 asks for two
# nodes, which this one-node cluster leaves pending: the request, the job and job.sh are
# checked, then it is cancelled; N = 3, G = 2 is refused before submission; --gpus-per-node needs --gres.
# Skipped only where Slurm cannot run here, or without the bundled sample's shards.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"
. "$CADDIE_SRC/tests/cli/slurm_lib.sh"

test_expect_success '--gpus-per-node needs --gres and the Slurm executor' '
    test_must_fail 2 caddie run --executor slurm --gpus-per-node 2 2>err && test_grep "needs --gres" err &&
    test_must_fail 2 caddie run --gpus-per-node 2 --gres gpu 2>err && test_grep "need --executor slurm" err
'
if ! [ -f "$CADDIE_SRC/data/sample/fineweb10B_sp1024/fineweb_val_000000.bin" ]; then
    test_skip 'runs across nodes under Slurm' 'no sample shards (make sample)'
    test_done
    exit
fi
if ! slurm_start; then
    test_skip 'runs across nodes under Slurm' "$SLURM_WHY"
    test_done
    exit
fi
slurm_record_sbatch # the runner's sbatch calls recorded in sbatch.args (slurm_lib.sh)

micro_config micro.yaml train_seq_len=64 train_batch_tokens=512 grad_accum_steps=0 warmdown_iters=2 \
    val_loss_every=0 val_batch_size=2048 val_max_tokens=1024 grad_clip_norm=1.0 iterations=4
# dp_sweep NAME DEVICES QK_GAIN — a caddie sweep of one run (the gains keep the three runs
# distinct configs: an identical one would be deduplicated against the first)
dp_sweep() { printf 'name: %s\nengine: caddie\nbase: micro.yaml\ndevices: %s\ngrid:\n  qk_gain_init: [%s]\n' "$1" "$2" "$3" >"$1.yaml"; }
dp_sweep wide 2 1.5
dp_sweep twonodes 2 1.75
dp_sweep odd 3 2.0
job_of() { q "SELECT coalesce(job_id, '') FROM slurm_jobs WHERE run_id = '$1' ORDER BY attempt DESC LIMIT 1"; }
SRUN="run --executor slurm --gres gpu --poll 0.1 --grace 1 --until-empty"

test_expect_success 'G = 2, N = 2: one node through srun and the TCP collective, done with world_size 2' '
    caddie sweep add wide.yaml >/dev/null &&
    timeout -k 5 240 "$CADDIE" $SRUN --gpus-per-node 2 >r1.out 2>&1 &&
    test "$(n_sweep wide done)" = 1 &&
    tail -n 1 sbatch.args >wide.args &&
    test_grep "(^| )--nodes=1 --ntasks-per-node=1 --gres=gpu:2( |$)" wide.args &&
    d=$(sweep_col wide run_dir) &&
    test_grep "srun --nodes=1 --ntasks-per-node=1 --kill-on-bad-exit=1 .* launch --nproc 2 --nnodes 1 --master " "$d/job.sh" &&
    test_grep "^world_size:2 grad_accum_steps:4$" "$d/log.txt" &&
    test_grep "^launch: rank 1 pid [0-9]+$" "$d/console.txt" && test -f "$d/result.json"
'
# this one-node cluster takes a two-node job and keeps it pending: the request and job.sh are
# checked, then the run is cancelled (scancel) and the runner, left with nothing, exits
test_expect_success 'G = 1, N = 2: one job asking two nodes of gpu:1, one launch per node in job.sh' '
    caddie sweep add twonodes.yaml >/dev/null && id=$(sweep_col twonodes run_id) &&
    { "$CADDIE" $SRUN --gpus-per-node 1 >r2.out 2>&1 & } && echo $! >r2.pid &&
    wait_until 30 "test -n \"\$(job_of $id)\"" &&
    tail -n 1 sbatch.args >two.args &&
    test_grep "(^| )--nodes=2 --ntasks-per-node=1 --gres=gpu:1 --cpus-per-task=1( |$)" two.args &&
    test_grep "srun --nodes=2 --ntasks-per-node=1 --kill-on-bad-exit=1 .* launch --nproc 1 --nnodes 2 --master " \
        "$(run_col $id run_dir)/job.sh" &&
    scontrol show job "$(job_of $id)" >job.txt && test_grep "NumNodes=2" job.txt &&
    caddie cancel twonodes >c.out && wait_until 30 "test \$(n_sweep twonodes cancelled) = 1" &&
    wait_until 30 "gone $(cat r2.pid)"
'
test_expect_success 'G = 2, N = 3: refused before submission, named' '
    n=$(wc -l <sbatch.args) && caddie sweep add odd.yaml >/dev/null &&
    timeout -k 5 120 "$CADDIE" $SRUN --gpus-per-node 2 >r3.out 2>&1 &&
    test "$(n_sweep odd failed)" = 1 && test "$(wc -l <sbatch.args)" = "$n" &&
    run_col $(sweep_col odd run_id) error >err &&
    test_grep "devices 3 is not a multiple of --gpus-per-node 2" err
'
test -f r2.pid && kill -TERM "$(cat r2.pid)" 2>/dev/null # a runner a failed check left waiting
slurm_stop
test_done

#!/usr/bin/env bash
# t0203 — data-parallel `caddie train` through `caddie launch` on the bundled sample (CPU ranks,
# the shared-memory collective): two ranks train one run (rank 0 alone prints and writes the
# run dir), a rank killed with SIGKILL takes the whole launch down within seconds (no hang),
# WORLD_SIZE without launch is refused, and the runner starts a `devices: 2` caddie run with
# `--cpu-slots 2` through launch. Gradient buckets (dp_bucket_mb): the bucketed run is
# bit-identical to the flat one (every loss line, the artifact), a negative size is refused, and
# the kill test holds for a bucketed launch too.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

S=$CADDIE_SRC/data/sample
if ! [ -f "$S/fineweb10B_sp1024/fineweb_val_000000.bin" ]; then
    test_skip 'data parallel train' 'no sample shards (make sample)'
    test_done
    exit
fi
micro_config micro.yaml train_seq_len=64 train_batch_tokens=512 grad_accum_steps=0 iterations=6 \
    warmdown_iters=2 val_loss_every=3 val_batch_size=2048 val_max_tokens=1024 grad_clip_norm=1.0

test_expect_success 'launch --nproc 2: one run, rank 0 prints and writes it, world_size:2 x accum 4' '
    timeout 300 "$CADDIE" launch --nproc 2 train micro.yaml --set run_dir=dp --set run_id=dp >out 2>err &&
    test_grep "^launch: rank 0 pid [0-9]+$" err && test_grep "^launch: rank 1 pid [0-9]+$" err &&
    test_grep "^world_size:2 grad_accum_steps:4$" dp/log.txt &&
    test_cmp out dp/log.txt &&
    test "$(grep -c "^step:6/6 val_loss:" out)" = 1 &&
    test -f dp/result.json && test -f dp/final_model.int8.ptz &&
    ! ls /dev/shm | grep -q "^caddie-coll-"
'
test_expect_success 'WORLD_SIZE=2 without launch is refused with the way to start ranks' '
    test_must_fail env WORLD_SIZE=2 RANK=0 "$CADDIE" train micro.yaml --set run_dir=nolaunch 2>err &&
    test_grep "caddie launch --nproc 2" err
'
test_expect_success 'launch needs --nproc and a train command' '
    test_must_fail 2 caddie launch train micro.yaml 2>err && test_grep "nproc" err &&
    test_must_fail 2 caddie launch --nproc 2 eval micro.yaml 2>err && test_grep "only .train." err
'
# kill -9 of rank 1 once rank 0 logged step 2: the launch exits 1 within seconds, naming it, and
# rank 0 is gone without a result. $1: the run dir; more args: --set options.
kill_rank1() {
    local dir=$1
    shift
    (timeout 300 "$CADDIE" launch --nproc 2 --grace 2 train micro.yaml --set run_dir="$dir" \
        --set iterations=100000 --set val_loss_every=0 "$@" >"$dir.out" 2>"$dir.err"; echo $? >"$dir.rc") &
    for i in $(seq 600); do grep -q "^step:2/" "$dir/log.txt" 2>/dev/null && break; sleep 0.1; done &&
    test_grep "^step:2/" "$dir/log.txt" &&
    r0=$(sed -n "s/^launch: rank 0 pid //p" "$dir.err") && r1=$(sed -n "s/^launch: rank 1 pid //p" "$dir.err") &&
    kill -9 "$r1" &&
    for i in $(seq 150); do test -f "$dir.rc" && break; sleep 0.1; done &&
    test -f "$dir.rc" && test "$(cat "$dir.rc")" = 1 &&
    test_grep "rank 1 \(pid $r1\) killed by signal 9" "$dir.err" &&
    ! kill -0 "$r0" 2>/dev/null && ! test -f "$dir/result.json"
}
test_expect_success 'kill -9 of rank 1: launch and every rank exit non-zero within seconds' '
    kill_rank1 killed
'
test_expect_success 'the same with gradient buckets (dp_bucket_mb) being reduced' '
    kill_rank1 killed_b --set dp_bucket_mb=0.001 && test_grep "^dp_buckets:" killed_b/log.txt
'
# (after its first "launch: rank" line: the handlers are in place before the first fork)
test_expect_success 'SIGTERM to launch: the ranks stop within seconds, launch fails naming it, no shared memory left' '
    (timeout 300 "$CADDIE" launch --nproc 2 --grace 2 train micro.yaml --set run_dir=termed \
        --set iterations=100000 --set val_loss_every=0 >termed.out 2>termed.err; echo $? >termed.rc) &
    for i in $(seq 300); do grep -q "^launch: rank 0 pid" termed.err 2>/dev/null && break; sleep 0.05; done &&
    r0=$(sed -n "s/^launch: rank 0 pid //p" termed.err) && launcher=$(ps -o ppid= -p "$r0" | tr -d " ") &&
    test -n "$launcher" && kill -TERM "$launcher" &&
    for i in $(seq 150); do test -f termed.rc && break; sleep 0.1; done &&
    test "$(cat termed.rc)" = 1 && test_grep "got signal 15; stopping the ranks" termed.err &&
    ! kill -0 "$r0" 2>/dev/null && ! pgrep -f "run_dir=termed" >/dev/null &&
    ! ls /dev/shm | grep -q "^caddie-coll-$launcher-"
'
# the log without its clock readings, so two runs compare line by line
losses() { sed -E 's/ (train_time|step_avg|eval_time):[0-9.]+ms//g' "$1" | grep -E "^(step:|final_)"; }
test_expect_success 'dp_bucket_mb: the bucketed world-2 run is bit-identical to the flat one' '
    timeout 300 "$CADDIE" launch --nproc 2 train micro.yaml --set run_dir=bucketed --set run_id=b \
        --set dp_bucket_mb=0.01 >/dev/null 2>&1 &&
    test_grep "^dp_buckets:[0-9]+ bucket_mb:0.01$" bucketed/log.txt && ! grep -q "^dp_buckets:" dp/log.txt &&
    losses dp/log.txt >flat.losses && losses bucketed/log.txt >bucketed.losses &&
    test "$(grep -c "^step:6/6 val_loss:" bucketed.losses)" = 1 &&
    test_cmp flat.losses bucketed.losses &&
    cmp dp/final_model.int8.ptz bucketed/final_model.int8.ptz
'
test_expect_success 'a negative dp_bucket_mb is refused before any work' '
    test_must_fail caddie train micro.yaml --set dp_bucket_mb=-1 --set run_dir=neg 2>err &&
    test_grep "dp_bucket_mb=-1" err && ! test -d neg
'
cat >dp2.yaml <<EOF2
name: dp2
engine: caddie
base: micro.yaml
devices: 2
grid:
  qk_gain_init: [1.5]
timeout: 5m
EOF2
test_expect_success 'the runner starts a devices: 2 caddie run through launch on 2 cpu slots' '
    caddie sweep add dp2.yaml >/dev/null &&
    run_fast --cpu-slots 2 >run.out 2>&1 &&
    test "$(n_sweep dp2 done)" = 1 &&
    id=$(sweep_col dp2 run_id) && dir=$(run_col "$id" run_dir) &&
    test_grep "^world_size:2 grad_accum_steps:4$" "$dir/log.txt" &&
    test_grep "^launch: rank 1 pid" "$dir/console.txt"
'
test_done

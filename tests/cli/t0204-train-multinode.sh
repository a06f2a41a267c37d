#!/usr/bin/env bash
# t0204 — data parallel across machines: `caddie launch --nnodes K --node-rank R --master
# HOST:PORT`, one launch per "machine", here K launches on this one over loopback (the ranks meet
# over TCP, as on separate hosts). Two machines x 1 rank and 2 x 2 give the same bits as one
# machine with 2 and 4 ranks over shared memory (every loss line, the artifact); a rank killed
# with SIGKILL on machine 1, or machine 0's launch killed, takes every launch down within seconds
# naming the cause; launches that disagree on the world size, a missing --master and a node rank
# out of range are refused. Under srun the node rank comes from SLURM_NODEID.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

S=$CADDIE_SRC/data/sample
if ! [ -f "$S/fineweb10B_sp1024/fineweb_val_000000.bin" ]; then
    test_skip 'data parallel across machines' 'no sample shards (make sample)'
    test_done
    exit
fi
micro_config micro.yaml train_seq_len=64 train_batch_tokens=512 grad_accum_steps=0 iterations=6 \
    warmdown_iters=2 val_loss_every=3 val_batch_size=2048 val_max_tokens=1024 grad_clip_norm=1.0

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# a port nobody listens on now, different on every call
PORT=$(( 20000 + (RANDOM * 3 + $$) % 30000 ))
next_port() {
    PORT=$((PORT + 1))
    while ! port_free $PORT; do PORT=$((PORT + 1)); done
}
# the log without its clock readings, so two runs compare line by line
losses() { sed -E 's/ (train_time|step_avg|eval_time):[0-9.]+ms//g' "$1" | grep -E "^(step:|final_)"; }

# nodes K N DIR [ARGS...]: K launches of N ranks each (machine R's output in DIR.R.out/err,
# exit status in DIR.R.rc), waited for
nodes() {
    local k=$1 n=$2 dir=$3 r
    shift 3
    next_port
    for r in $(seq 0 $((k - 1))); do
        (timeout 300 "$CADDIE" launch --nproc "$n" --nnodes "$k" --node-rank "$r" --master "127.0.0.1:$PORT" \
            train micro.yaml --set run_dir="$dir" --set run_id="$dir" "$@" >"$dir.$r.out" 2>"$dir.$r.err"
         echo $? >"$dir.$r.rc") &
    done
    wait
}

test_expect_success '2 machines x 1 rank: the same bits as 2 ranks on one machine' '
    timeout 300 "$CADDIE" launch --nproc 2 train micro.yaml --set run_dir=shm2 --set run_id=shm2 >/dev/null 2>&1 &&
    nodes 2 1 tcp2 &&
    test "$(cat tcp2.0.rc tcp2.1.rc)" = "0
0" &&
    test_grep "^launch: rank 0 pid [0-9]+$" tcp2.0.err && test_grep "^launch: rank 1 pid [0-9]+$" tcp2.1.err &&
    test_grep "^world_size:2 grad_accum_steps:4$" tcp2/log.txt &&
    test_cmp tcp2.0.out tcp2/log.txt && ! test -s tcp2.1.out &&
    losses shm2/log.txt >shm2.l && losses tcp2/log.txt >tcp2.l &&
    test "$(grep -c "^step:6/6 val_loss:" tcp2.l)" = 1 && test_cmp shm2.l tcp2.l &&
    cmp shm2/final_model.int8.ptz tcp2/final_model.int8.ptz
'
# as srun starts them: no --node-rank, each launch reads SLURM_NODEID
nodes_slurm() {
    local r
    next_port
    for r in 0 1; do
        (SLURM_NODEID=$r timeout 300 "$CADDIE" launch --nproc 1 --nnodes 2 --master "127.0.0.1:$PORT" \
            train micro.yaml --set run_dir=$1 --set run_id=$1 >"$1.$r.out" 2>"$1.$r.err"; echo $? >"$1.$r.rc") &
    done
    wait
}
test_expect_success 'the node rank from SLURM_NODEID (as under srun): the same bits again' '
    nodes_slurm env2 && test "$(cat env2.0.rc env2.1.rc)" = "0
0" &&
    test_grep "^launch: rank 1 pid" env2.1.err &&
    losses env2/log.txt >env2.l && test_cmp shm2.l env2.l && cmp shm2/final_model.int8.ptz env2/final_model.int8.ptz
'
test_expect_success '2 machines x 2 ranks: the same bits as 4 ranks on one machine' '
    timeout 300 "$CADDIE" launch --nproc 4 train micro.yaml --set run_dir=shm4 --set run_id=shm4 >/dev/null 2>&1 &&
    nodes 2 2 tcp4 &&
    test "$(cat tcp4.0.rc tcp4.1.rc)" = "0
0" &&
    test_grep "^launch: rank 2 pid" tcp4.1.err && test_grep "^launch: rank 3 pid" tcp4.1.err &&
    test_grep "^world_size:4 grad_accum_steps:2$" tcp4/log.txt &&
    losses shm4/log.txt >shm4.l && losses tcp4/log.txt >tcp4.l && test_cmp shm4.l tcp4.l &&
    cmp shm4/final_model.int8.ptz tcp4/final_model.int8.ptz
'

# start 2 machines x 1 rank on a long run, wait for step 2 in rank 0's log
long_run() {
    local dir=$1 r
    next_port
    for r in 0 1; do
        (timeout 300 "$CADDIE" launch --nproc 1 --nnodes 2 --node-rank $r --master "127.0.0.1:$PORT" --grace 2 \
            train micro.yaml --set run_dir="$dir" --set iterations=100000 --set val_loss_every=0 \
            >"$dir.$r.out" 2>"$dir.$r.err"; echo $? >"$dir.$r.rc") &
    done
    for i in $(seq 600); do grep -q "^step:2/" "$dir/log.txt" 2>/dev/null && break; sleep 0.1; done
    test_grep "^step:2/" "$dir/log.txt"
}
# both launches ended (their .rc written) within 15 s
both_end() {
    for i in $(seq 150); do test -f "$1.0.rc" && test -f "$1.1.rc" && break; sleep 0.1; done
    test -f "$1.0.rc" && test -f "$1.1.rc"
}
test_expect_success 'kill -9 of the rank on machine 1: both launches exit 1 within seconds, naming it' '
    long_run kr &&
    r1=$(sed -n "s/^launch: rank 1 pid //p" kr.1.err) && r0=$(sed -n "s/^launch: rank 0 pid //p" kr.0.err) &&
    kill -9 "$r1" && both_end kr &&
    test "$(cat kr.0.rc)" = 1 && test "$(cat kr.1.rc)" = 1 &&
    test_grep "rank 1 \(pid $r1\) killed by signal 9" kr.1.err &&
    test_grep "rank 0: data parallel: rank 1 died" kr.0.err &&
    ! kill -0 "$r0" 2>/dev/null && ! test -f kr/result.json
'
test_expect_success 'machine 0 going away (its launch killed): machine 1 exits 1 within seconds' '
    long_run k0 &&
    r0=$(sed -n "s/^launch: rank 0 pid //p" k0.0.err) && r1=$(sed -n "s/^launch: rank 1 pid //p" k0.1.err) &&
    launch0=$(ps -o ppid= -p "$r0" | tr -d " ") && test -n "$launch0" &&
    kill -9 "$launch0" && both_end k0 &&
    test "$(cat k0.1.rc)" = 1 && test_grep "rank 1: data parallel: lost rank 0 at 127.0.0.1:$PORT" k0.1.err &&
    for i in $(seq 50); do kill -0 "$r0" 2>/dev/null || break; sleep 0.1; done &&
    ! kill -0 "$r0" 2>/dev/null && ! kill -0 "$r1" 2>/dev/null
'
# machine 0 with 1 rank and machine 1 with 2: worlds of 2 and 4
mismatched() {
    next_port
    (timeout 120 "$CADDIE" launch --nproc 1 --nnodes 2 --node-rank 0 --master "127.0.0.1:$PORT" --join-timeout 20 \
        train micro.yaml --set run_dir=mismatch >mm.0.out 2>mm.0.err; echo $? >mm.0.rc) &
    (timeout 120 "$CADDIE" launch --nproc 2 --nnodes 2 --node-rank 1 --master "127.0.0.1:$PORT" --join-timeout 20 \
        train micro.yaml --set run_dir=mismatch >mm.1.out 2>mm.1.err; echo $? >mm.1.rc) &
    wait
}
test_expect_success 'machines that disagree on the world size are refused, naming both sizes' '
    mismatched &&
    test "$(cat mm.0.rc)" = 1 && test "$(cat mm.1.rc)" = 1 &&
    test_grep "was started for a world of 4, rank 0 for 2" mm.0.err &&
    test_grep "refused rank [23]: rank [23] was started for a world of 4" mm.1.err
'
test_expect_success 'launch: --nnodes needs --master; --node-rank must be below --nnodes' '
    test_must_fail 2 caddie launch --nproc 1 --nnodes 2 train micro.yaml 2>err && test_grep "give --master HOST:PORT" err &&
    test_must_fail 2 caddie launch --nproc 1 --nnodes 2 --node-rank 2 --master 127.0.0.1:1 train micro.yaml 2>err &&
    test_grep "node-rank 2: expected 0..1" err &&
    test_must_fail 2 caddie launch --nproc 1 --master nocolon train micro.yaml --set run_dir=badaddr 2>err &&
    test_grep "expected HOST:PORT" err
'
test_done

#!/usr/bin/env bash
# t0406 — the runner with the real engine (`caddie train`, a micro model on the bundled
# sample): runs end done with results and artifacts, the runner's capture of
# stdout+stderr is console.txt while log.txt stays the engine's own; a run with
# `resume: true` that the runner lost (kill -9) continues from its checkpoint.bin and its
# curve is whole, each step once, and equal to the curve of the same run never interrupted.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

sample="$CADDIE_SRC/data/sample"
if ! [ -f "$sample/fineweb10B_sp1024/fineweb_val_000000.bin" ]; then
    test_skip 'the caddie engine under the runner' 'no sample shards (make sample)'
    test_done
    exit
fi

micro_config micro.yaml
cat >cad.yaml <<EOF
name: cad
engine: caddie
base: micro.yaml
grid:
  qk_gain_init: [1.5, 5.25]
timeout: 2m
EOF

test_expect_success 'two caddie-engine runs end done with results and artifacts' '
    caddie sweep add cad.yaml >/dev/null &&
    run_fast --cpu-slots 2 >run.out 2>&1 &&
    test "$(n_sweep cad done)" = 2 &&
    test "$(q "SELECT count(*) FROM results WHERE val_bpb > 0 AND partial = 1 AND artifact_bytes > 0")" = 2 &&
    test "$(n_artifacts model)" = 2 &&
    curve_stats train_loss >curves && ! grep -v "|12|12|1|12$" curves
'
test_expect_success 'console.txt is the capture, log.txt the engine'"'"'s own' '
    id=$(sweep_col cad run_id | head -n 1) && dir=$(run_col "$id" run_dir) &&
    test_grep "^final_int8_zlib_roundtrip_exact" "$dir/log.txt" &&
    test_grep "^final_int8_zlib_roundtrip_exact" "$dir/console.txt" &&
    caddie logs "$id" >logs.out && test_cmp "$dir/console.txt" logs.out
'

cat >res.yaml <<EOF
name: res
engine: caddie
base: micro.yaml
set:
  iterations: 300
  warmdown_iters: 100
  train_log_every: 50
  val_loss_every: 100
  checkpoint_every: 20
  resume: true
grid:
  qk_gain_init: [2.0]
timeout: 5m
EOF
expected_steps() { { seq 1 10; seq 50 50 300; } | paste -sd, -; }

test_expect_success 'kill -9 the runner after a checkpoint; the next one resumes the run' '
    caddie sweep add res.yaml >/dev/null && id=$(sweep_col res run_id) && dir=$(run_col "$id" run_dir) &&
    { "$CADDIE" run --cpu-slots 1 --poll 0.05 >r1.out 2>&1 & } && pid=$! &&
    { wait_until 60 "test -f $dir/checkpoint.bin && test \$(n_points_from $id train_loss 50) -ge 1" ||
      { kill -9 $pid; false; }; } &&
    child=$(run_col "$id" pid) &&
    kill -9 $pid && { wait $pid; true; } &&
    wait_until 10 "gone $child" &&
    test "$(run_col "$id" status)" = running &&
    run_fast --cpu-slots 1 >r2.out 2>&1 &&
    test_grep "start +$id \(attempt 2, resuming from checkpoint.bin\)" r2.out &&
    test_grep "^resume:step:[0-9]+/300" "$dir/log.txt" &&
    test "$(run_col "$id" "status || attempts")" = done2 &&
    ! test -d "$dir/attempts"
'
test_expect_success 'the resumed curve is whole: each logged step exactly once' '
    id=$(sweep_col res run_id) &&
    test "$(steps_of "$id" train_loss)" = "$(expected_steps)" &&
    n_events res done | grep -qx "$id|1"
'
test_expect_success 'and equals the same run never interrupted (same curve, same score)' '
    caddie sweep add res.yaml --force >/dev/null &&
    run_fast --cpu-slots 1 >r3.out 2>&1 &&
    test "$(n_sweep res done)" = 2 &&
    sweep_scores res >scores && test "$(wc -l <scores)" = 1 &&
    test "$(curve_spread res train_loss)" = 1 && test "$(curve_spread res val_bpb)" = 1
'
test_done

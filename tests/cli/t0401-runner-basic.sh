#!/usr/bin/env bash
# t0401 — the runner end to end with the fake command engine: runs end done with curves,
# results and run-dir files; CPU slots get OMP_NUM_THREADS and no GPU, a devices: 2 run on them
# is told it holds two (CADDIE_DEVICES); ls/show/logs/status;
# grid values reach the engine literally (no shell); one runner per DB.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

cat >basic.yaml <<EOF
name: basic
description: two fake runs
engine: command
command: ["bash", "$FAKE", "--qk", "{qk}"]
env:
  QK: "{qk}"
  FAKE_ECHO_ENV: "QK,CUDA_VISIBLE_DEVICES,OMP_NUM_THREADS,CADDIE_RUN_ID,CADDIE_ATTEMPT"
  FAKE_STEPS: "4"
  FAKE_SLEEP: "0.02"
grid:
  qk: [1.5, 2.5]
timeout: 30
EOF

test_expect_success 'sweep add queues two runs' '
    caddie sweep add basic.yaml >add.out &&
    test "$(n_status queued)" = 2
'
test_expect_success 'run --until-empty runs both to done' '
    run_fast --cpu-slots 2 >run.out 2>run.err &&
    test "$(n_status done)" = 2 &&
    test_grep "^.{19} done +basic-" run.out &&
    test_grep "runner +exit: 2 started, 2 done, 0 failed" run.out
'
test_expect_success 'each run has its whole curve and a result' '
    curve_stats train_loss >curves &&
    test "$(wc -l <curves)" = 2 && ! grep -v "|4|4|1|4$" curves &&
    test "$(q "SELECT count(*) FROM results WHERE val_bpb > 0 AND artifact_bytes = 1050000")" = 2 &&
    test "$(q "SELECT count(*) FROM leaderboard")" = 2
'
test_expect_success 'run dir holds log.txt, metrics.jsonl and result.json' '
    dir=$(sweep_col basic run_dir | head -n 1) &&
    test -s "$dir/log.txt" && test -s "$dir/metrics.jsonl" && test -s "$dir/result.json" &&
    test_grep "^step:4/4 train_loss" "$dir/log.txt" &&
    test_grep "\"name\": ?\"train_loss\"" "$dir/metrics.jsonl"
'
test_expect_success 'a CPU slot gets OMP_NUM_THREADS, an empty CUDA_VISIBLE_DEVICES and its run id' '
    id=$(sweep_col basic run_id | head -n 1) &&
    dir=$(run_col "$id" run_dir) &&
    test_grep "^env:CUDA_VISIBLE_DEVICES=$" "$dir/log.txt" &&
    test_grep "^env:OMP_NUM_THREADS=[0-9]+$" "$dir/log.txt" &&
    test_grep "^env:CADDIE_RUN_ID=$id$" "$dir/log.txt" &&
    test_grep "^env:CADDIE_ATTEMPT=1$" "$dir/log.txt"
'
test_expect_success 'ls lists runs, filters by status and sweep' '
    caddie ls >ls.out && test "$(grep -c "^basic-" ls.out)" = 2 &&
    caddie ls --status done --sweep basic >ls2.out && test "$(grep -c " done " ls2.out)" = 2 &&
    caddie ls --status failed >ls3.out && test "$(wc -l <ls3.out)" = 1 &&
    test_must_fail 2 caddie ls --status bogus 2>err && test_grep "expected queued" err &&
    test_must_fail 1 caddie ls --sweep nosuch 2>err && test_grep "nosuch" err
'
test_expect_success 'show prints the summary, metrics and events of a run' '
    id=$(sweep_col basic run_id | head -n 1) &&
    caddie show "$id" >show.out &&
    test_grep "^status +done" show.out && test_grep "^val_bpb " show.out &&
    test_grep "^  train_loss +4 points" show.out &&
    test_grep "queued +-> running" show.out && test_grep "running +-> done" show.out &&
    test_must_fail 1 caddie show nosuch-run 2>err && test_grep "nosuch-run" err
'
test_expect_success 'logs prints what the run printed' '
    id=$(sweep_col basic run_id | head -n 1) &&
    caddie logs "$id" >logs.out && test_grep "^final_int8_zlib_roundtrip_exact" logs.out &&
    caddie logs -f "$id" >logs2.out && test_cmp logs.out logs2.out
'
test_expect_success 'status says no runner and counts runs' '
    caddie status >st.out && test_grep "^runner: +not running" st.out &&
    test_grep " 2 done" st.out
'

# a devices: 2 run on the CPU holds two slots (one rank each under launch): it is told so
fake_sweep two 1 0 1 '  FAKE_ECHO_ENV: "CADDIE_DEVICES,CUDA_VISIBLE_DEVICES"' 'devices: 2'
test_expect_success 'a devices: 2 run on CPU slots holds two of them: CADDIE_DEVICES=2' '
    caddie sweep add two.yaml >/dev/null && run_fast --cpu-slots 2 >run3.out 2>&1 &&
    test "$(n_sweep two done)" = 1 && test_grep " on cpu slot 0,1, pid " run3.out &&
    dir=$(sweep_col two run_dir) &&
    test_grep "^env:CADDIE_DEVICES=2$" "$dir/log.txt" &&
    test_grep "^env:CUDA_VISIBLE_DEVICES=$" "$dir/log.txt"
'

cat >inject.yaml <<EOF
name: inject
engine: command
command: ["bash", "$FAKE", "{v}"]
env:
  V: "{v}"
  FAKE_ECHO_ENV: "V"
  FAKE_STEPS: "1"
  FAKE_SLEEP: "0"
grid:
  v: ["; rm -rf ~", "\$(touch INJECTED)", "\`touch INJECTED2\`", "a b' \\" c"]
EOF
test_expect_success 'grid values reach the engine literally, never through a shell' '
    caddie sweep add inject.yaml >/dev/null && run_fast --cpu-slots 2 >run2.out 2>&1 &&
    test "$(n_sweep inject done)" = 4 &&
    for d in $(sweep_col inject run_dir); do cat "$d/log.txt"; done >all.log &&
    grep -qxF "arg:; rm -rf ~" all.log && grep -qxF "env:V=; rm -rf ~" all.log &&
    grep -qxF "arg:\$(touch INJECTED)" all.log && grep -qxF "arg:\`touch INJECTED2\`" all.log &&
    grep -qxF "env:V=a b'"'"' \" c" all.log &&
    test -f "$HOME/canary" && ! find "$TRASH" -name "INJECTED*" | grep -q .
'

test_expect_success 'a second runner on the same DB is refused and names the holder' '
    { "$CADDIE" run --cpu-slots 1 --poll 0.05 >daemon.out 2>&1 & } &&
    pid=$! &&
    wait_until 10 "caddie status 2>/dev/null | grep -q \"^runner: *running\"" &&
    test_must_fail 1 caddie run --cpu-slots 1 --until-empty 2>second.err &&
    test_grep "another runner is using .*: pid $pid on " second.err &&
    kill -TERM $pid && { wait $pid; rc=$?; } && test $rc = 143 &&
    caddie status >st2.out && test_grep "^runner: +not running" st2.out
'
test_expect_success 'usage errors exit 2' '
    test_must_fail 2 caddie run --devices 0-7 --cpu-slots 2 &&
    test_must_fail 2 caddie run --devices x &&
    test_must_fail 2 caddie run --cpu-slots 0 &&
    test_must_fail 2 caddie run extra
'
test_done

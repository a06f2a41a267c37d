#!/usr/bin/env bash
# t0413 — a full disk under runs/ (a small tmpfs; skipped where mount is not allowed):
#   a few KB free: the command-engine run whose metrics.jsonl cannot be written fails with
#   "No space left on device" named and the runner exits with it (before: points silently
#   lost, the run left `running`); every point written before is in the DB;
#   0 KB free: the runner exits at once naming the error (before: it stalled forever, the
#   claim failure read as "cancelled meanwhile"); nothing is left `running`, queued runs
#   stay queued;
#   space back: `caddie retry` and a new runner complete every run.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

mkdir runs
if ! mount -t tmpfs -o size=48k tmpfs runs 2>/dev/null; then
    test_skip 'disk full under runs/' 'cannot mount a tmpfs here (needs root)'
    test_done
    exit 0
fi
cleanup() { cd "$TRASH" && umount runs 2>/dev/null; }
trap cleanup EXIT

fake_sweep full 400 0.005 "1, 2"
test_expect_success 'a few KB free: the run fails naming the full disk, the runner exits with it' '
    caddie sweep add full.yaml >/dev/null &&
    test_must_fail run_fast --cpu-slots 1 >r1.out 2>r1.err &&
    test_grep "metrics.jsonl: write failed: No space left on device" r1.err &&
    test $(n_status running) = 0 && test $(n_status failed) = 1 && test $(n_status queued) = 1 &&
    id=$(q "SELECT run_id FROM runs WHERE status = '"'"'failed'"'"'") &&
    run_col "$id" error | grep -q "No space left on device" &&
    test_grep "failed  $id .*No space left on device" r1.out
'
test_expect_success 'every point that reached metrics.jsonl is in the DB' '
    id=$(q "SELECT run_id FROM runs WHERE status = '"'"'failed'"'"'") &&
    d=$(run_col "$id" run_dir) &&
    on_disk=$(grep -c "^{.*}$" "$d/metrics.jsonl") &&
    test "$on_disk" -gt 0 && test "$(q "SELECT count(*) FROM metrics WHERE run_id = '"'"'$id'"'"'")" = "$on_disk"
'
test_expect_success '0 KB free: the runner exits at once naming the error, nothing left running' '
    { dd if=/dev/zero of=runs/filler bs=4k count=64 2>/dev/null; true; } &&
    test_must_fail timeout -k 5 60 "$CADDIE" run --cpu-slots 1 --poll 0.05 --until-empty >r2.out 2>r2.err &&
    test_grep "run.json.*No space left on device" r2.err &&
    test $(n_status running) = 0 && test $(n_status queued) = 1 && test $(n_status failed) = 1
'
test_expect_success 'space back: caddie retry, then every run completes' '
    rm -f runs/filler && mount -o remount,size=8m runs &&
    caddie retry full >/dev/null &&
    run_fast --cpu-slots 1 >r3.out 2>&1 &&
    test $(n_status done) = 2 &&
    test "$(curve_stats train_loss | cut -d"|" -f2 | sort -u)" = 400
'
cleanup
trap - EXIT
test_done

#!/usr/bin/env bash
# t0403 — packing 1- and 8-device runs on 8 simulated GPUs (--devices 0-7; only
# CUDA_VISIBLE_DEVICES is assigned, no GPU is needed): every run gets as many distinct
# devices as it asked for, no device is ever in two runs at once (checked from the times
# the fake engine recorded), the 8-device run gets all eight and is not starved by the
# 1-device runs queued after it: only runs estimated to end before it can start backfill
# (`quick`, 2 s timeout, does; `later`, 60 s, does not). A run wider than the runner is
# skipped, not hung on.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

sweep() { # name devices timeout n-runs sleep
    cat >"$1.yaml" <<EOF
name: $1
engine: command
command: ["bash", "$FAKE", "{i}"]
env:
  FAKE_RECORD: "$TRASH/record"
  FAKE_TAG: "$1"
  FAKE_STEPS: "3"
  FAKE_SLEEP: "$5"
grid:
  i: [$(seq -s, 1 "$4")]
devices: $2
timeout: $3
EOF
    caddie sweep add "$1.yaml" >/dev/null
}

test_expect_success 'queue: 4 one-device runs, one 8-device run, 2 short and 6 long one-device runs' '
    sweep first 1 30 4 0.3 && sweep wide 8 30 1 0.05 && sweep quick 1 2 2 0.02 &&
    sweep later 1 60 6 0.05 &&
    test "$(n_status queued)" = 13
'
test_expect_success 'the runner packs them on 8 simulated GPUs' '
    run_fast --devices 0-7 >run.out 2>&1 &&
    test "$(n_status done)" = 13 &&
    test "$(grep -c "^start " record)" = 13 && test "$(grep -c "^end " record)" = 13
'
test_expect_success 'each run got as many distinct devices as it asked for' '
    q "SELECT run_id, devices_requested, devices_assigned FROM runs" >assigned &&
    awk -F"|" "{ n = split(\$3, d, \",\"); if (n != \$2) exit 1;
                 delete seen; for (i = 1; i <= n; i++) { if (d[i] in seen || d[i] > 7) exit 1; seen[d[i]] = 1 } }" assigned &&
    grep -q "^wide-.*|8|0,1,2,3,4,5,6,7$" assigned &&
    grep -q " wide-.* 0,1,2,3,4,5,6,7 " record
'
test_expect_success 'no device is ever double-booked (recorded start/end times)' '
    awk "{ if (\$1 == \"start\") { s[\$2] = \$4; d[\$2] = \$3 } else e[\$2] = \$4 }
         END { for (a in s) for (b in s) if (a < b) {
                 na = split(d[a], da, \",\"); nb = split(d[b], db, \",\"); share = 0
                 for (i = 1; i <= na; i++) for (j = 1; j <= nb; j++) if (da[i] == db[j]) share = 1
                 if (share && s[a] < e[b] && s[b] < e[a]) { print \"overlap\", a, b; bad = 1 } }
               exit bad }" record
'
test_expect_success 'the 8-device run started before every long run queued after it' '
    ws=$(awk "\$1 == \"start\" && \$2 ~ /^wide-/ { print \$4 }" record) &&
    test -n "$ws" &&
    awk -v ws="$ws" "\$1 == \"start\" && \$2 ~ /^later-/ && \$4 < ws { bad = 1 } END { exit bad }" record
'
test_expect_success 'short runs queued behind it backfilled: they ended before it started' '
    ws=$(awk "\$1 == \"start\" && \$2 ~ /^wide-/ { print \$4 }" record) &&
    test "$(awk -v ws="$ws" "\$2 ~ /^quick-/ && \$4 < ws" record | wc -l)" = 4
'
test_expect_success 'a run needing more devices than the runner has is skipped' '
    sweep huge 8 30 1 0 &&
    run_fast --devices 0-3 >run2.out 2>&1 &&
    test_grep "skip +huge-.*needs 8 devices, this runner has 4" run2.out &&
    test "$(sweep_col huge status)" = queued
'
test_done

#!/usr/bin/env bash
# run_fuzz.sh — the runner behind `make fuzz`: runs each built harness build/fuzz/fuzz_<target>
# under libFuzzer for SECONDS, one target after the other, and prints per target
#   fuzz <target>: <execs> execs in <s> s (<rate>/s), <n> crashes
# then a totals line; exits 1 when any target crashed (or could not run).
#
# Usage: run_fuzz.sh SECONDS 'target:max_len:fixture globs...' ...
# Run from the repo root. The corpus of a target is $FUZZ_OUT/corpus/<target>/ (FUZZ_OUT
# defaults to build/fuzz; kept between runs, so coverage grows), seeded each time from
# tests/fuzz/seeds/<target>/ and the fixture globs (bash globstar); crashing inputs (crash-,
# leak-, oom-, timeout-) go to $FUZZ_OUT/crashes/<target>/, libFuzzer's output to
# $FUZZ_OUT/logs/<target>.log. Extra libFuzzer flags: FUZZ_FLAGS (e.g. -jobs, -dict).
# Not here: building the harnesses (the Makefile), replaying crashes (t0802), the short CI
# run (t0803, which points FUZZ_OUT at its scratch folder).
set -u
shopt -s globstar nullglob
secs=$1; shift
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# The harnesses write each input to a file (and record import a folder, a DB's run dirs) under
# $TMPDIR: in memory where there is one, as fsyncs to a disk would be most of an exec's time.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
out=${FUZZ_OUT:-build/fuzz}
total_execs=0 total_secs=0 total_crashes=0 failed=0
for spec in "$@"; do
    target=${spec%%:*}; rest=${spec#*:}
    maxlen=${rest%%:*}; globs=${rest#*:}
    bin=build/fuzz/fuzz_$target
    corpus=$out/corpus/$target seeds=$out/seeds/$target crashes=$out/crashes/$target
    log=$out/logs/$target.log
    mkdir -p "$corpus" "$crashes" "$out/logs"
    rm -rf "$seeds" && mkdir -p "$seeds"
    n=0
    # Fixture names are unique only within their folder: copy under a running number.
    for f in tests/fuzz/seeds/$target/* $globs; do
        [ -f "$f" ] || continue
        n=$((n+1)); cp "$f" "$seeds/$n-$(basename "$f")"
    done
    stamp=$(mktemp) && touch "$stamp"
    start=$(date +%s.%N)
    "$bin" -max_total_time="$secs" -max_len="${maxlen:-4096}" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$crashes/" ${FUZZ_FLAGS:-} "$corpus" "$seeds" >"$log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    # a crash ends the run before the final stats: take the last status line's count
    [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    execs=${execs:-0}
    ncrash=$(find "$crashes" -type f -newer "$stamp" | wc -l)
    rm -f "$stamp"
    el=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
    rate=$(awk -v x="$execs" -v t="$el" 'BEGIN { printf "%.0f", (t > 0 ? x / t : 0) }')
    echo "fuzz $target: $execs execs in $el s ($rate/s), $ncrash crashes"
    if [ "$rc" -ne 0 ] && [ "$ncrash" -eq 0 ]; then
        echo "fuzz $target: libFuzzer exited $rc without a crash file; see $log" >&2
        failed=1
    fi
    if [ "$ncrash" -gt 0 ]; then
        grep -m1 -E 'ERROR: |runtime error|fuzz invariant failed' "$log" | sed "s/^/fuzz $target:   /"
        ls -t "$crashes" | head -n "$ncrash" | sed "s|^|fuzz $target:   input $crashes/|"
    fi
    total_execs=$((total_execs+execs)); total_secs=$((total_secs+el)); total_crashes=$((total_crashes+ncrash))
done
echo "fuzz total: $total_execs execs in $total_secs s, $total_crashes crashes in $# targets"
[ "$total_crashes" -eq 0 ] && [ "$failed" -eq 0 ]

#!/usr/bin/env bash
# run.sh — the one test runner behind `make test`.
#
# Runs every unit-test executable in $1 (build/asan/tests/test_*) and every CLI test
# script tests/cli/t*.sh against the sanitized binary $2, prints each failure with
# file:line (and every line of a crashed test), and ends with the totals line
# "N passed, N failed[, N skipped]". Exit status is non-zero on any failure, including a
# test executable that crashed or printed no summary (a test that cannot report is a failure).
set -u
testdir=$1 caddie=$2
src=$(cd "$(dirname "$0")/.." && pwd)
export CADDIE_SRC=$src CADDIE=$(cd "$(dirname "$caddie")" && pwd)/$(basename "$caddie")
export CADDIE_TMP=$(mktemp -d "${TMPDIR:-/tmp}/caddie-test.XXXXXX")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
filter=${TESTS:-}
pass=0 fail=0 skip=0

run_one() {  # name, command...
    local name=$1; shift
    local log="$CADDIE_TMP/$name.log" rc
    "$@" >"$log" 2>&1; rc=$?
    local summary; summary=$(grep -E '^# passed [0-9]+ failed [0-9]+ skipped [0-9]+$' "$log" | tail -n 1)
    grep -E '^(FAIL|skip|info) ' "$log"
    grep -E '^    \| ' "$log"
    if [ -z "$summary" ]; then
        echo "FAIL $name: exited $rc without a summary line (crash?); last lines:"
        tail -n 25 "$log" | sed 's/^/    | /'
        fail=$((fail+1)); return
    fi
    set -- $summary
    pass=$((pass+$3)); fail=$((fail+$5)); skip=$((skip+$7))
    if [ "$rc" -ne 0 ] && [ "$5" -eq 0 ]; then
        echo "FAIL $name: exited $rc although every test passed; last lines:"
        tail -n 25 "$log" | sed 's/^/    | /'
        fail=$((fail+1))
    fi
    if [ -n "${VERBOSE:-}" ]; then cat "$log"; fi
}

for t in "$testdir"/test_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t")
    [ -n "$filter" ] && ! [[ "$n" == *$filter* ]] && continue
    echo "== $n"
    run_one "$n" "$t"
done
for t in "$src"/tests/cli/t[0-9]*.sh; do
    [ -f "$t" ] || continue
    n=$(basename "$t" .sh)
    [ -n "$filter" ] && ! [[ "$n" == *$filter* ]] && continue
    echo "== $n"
    run_one "$n" bash "$t"
done
rm -rf "$CADDIE_TMP"
line="$pass passed, $fail failed"
[ $skip -gt 0 ] && line="$line, $skip skipped"
echo "$line"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# t0802 — the fuzz harnesses' seeds and saved crash inputs replay cleanly: every
# tests/fuzz/fuzz_<target>.c has a gcc ASan+UBSan replay binary (build/asan/fuzz/replay_<target>,
# built by `make test`) that runs the real parser over tests/fuzz/seeds/<target>/* and
# tests/fuzz/crashes/<target>/* without a crash, a sanitizer report or a harness invariant
# failure. A crash input stays here after its fix, so the bug cannot come back unnoticed.
. "$CADDIE_SRC/tests/cli/lib.sh"

replay_dir=$(dirname "$CADDIE")/fuzz
n_targets=0
for src in "$CADDIE_SRC"/tests/fuzz/fuzz_*.c; do
    [ -f "$src" ] || continue
    t=$(basename "$src" .c); t=${t#fuzz_}
    n_targets=$((n_targets+1))
    test_expect_success "replay_$t is built" "test -x '$replay_dir/replay_$t'"
    for kind in seeds crashes; do
        files=("$CADDIE_SRC"/tests/fuzz/$kind/$t/*)
        if ! [ -f "${files[0]}" ]; then
            # every target starts from seeds; crash inputs exist only once something crashed
            [ $kind = seeds ] && test_expect_success "$t has seeds in tests/fuzz/seeds/$t/" false
            continue
        fi
        # Run in this (scratch) directory; a sanitizer report fails the test even if the
        # process managed to exit 0.
        test_expect_success "$t: ${#files[@]} $kind input(s) replay without a sanitizer report" '
            "$replay_dir/replay_$t" "${files[@]}" >out 2>&1; rc=$?
            if [ $rc -ne 0 ] || grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:|fuzz invariant failed" out; then
                grep -m1 -A14 -E "ERROR: |runtime error:|fuzz invariant failed" out || tail -n 25 out
                echo "replay_$t exited $rc"; false
            fi &&
            test "$(grep -c "^replayed " out)" -eq ${#files[@]}
        '
    done
done
test_expect_success 'there are fuzz harnesses to replay' 'test $n_targets -ge 8'
test_done

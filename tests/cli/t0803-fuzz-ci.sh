#!/usr/bin/env bash
# t0803 — a short libFuzzer run of every harness in tests/fuzz/ (clang, -fsanitize=fuzzer,
# address,undefined), so a parser regression a few seconds of fuzzing can find fails `make
# test`, not only a later `make fuzz`. Each target runs FUZZ_CI_SECONDS (default 12; 8 targets
# is about 100 s) from a fresh corpus of its seeds, through `make fuzz` (tests/fuzz/run_fuzz.sh);
# any crash, sanitizer report, leak, timeout (10 s per input) or out-of-memory (2 GB) fails it.
# The execs of each target are printed as info lines. Crash inputs stay in
# build/fuzz/ci/crashes/<target>/ for replay (build/asan/fuzz/replay_<target> FILE) and, once
# fixed, go to tests/fuzz/crashes/<target>/ (replayed by t0802).
# Without clang or its libFuzzer runtime (make test-deps installs both) it skips, saying why.
. "$CADDIE_SRC/tests/cli/lib.sh"

secs=${FUZZ_CI_SECONDS:-12}
what="libFuzzer run of every harness"
cat >probe.c <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }
EOF
cc=${FUZZ_CC:-clang} # the Makefile's FUZZ_CC
if ! command -v "$cc" >/dev/null 2>&1; then
    test_skip "$what" "$cc not installed (make test-deps installs it: Debian's clang, libclang-rt-dev)"
elif ! "$cc" -fsanitize=fuzzer,address,undefined probe.c -o probe >probe.err 2>&1; then
    test_skip "$what" "clang cannot link -fsanitize=fuzzer: $(grep -m1 -i error probe.err)"
else
    ci_dir=$CADDIE_SRC/build/fuzz/ci
    rm -rf "$ci_dir"
    targets=$(cd "$CADDIE_SRC/tests/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
    n_targets=$(echo "$targets" | wc -w)

    test_expect_success 'the harnesses build with clang (make fuzz-build)' '
        make -s -C "$CADDIE_SRC" --no-print-directory fuzz-build FUZZ_CC="$cc" >build.log 2>&1 || { tail -n 20 build.log; false; }
    '
    # make fuzz runs each target in turn and prints one line each, then the totals.
    FUZZ_OUT=$ci_dir make -s -C "$CADDIE_SRC" --no-print-directory fuzz FUZZ_CC="$cc" FUZZ_SECONDS="$secs" >fuzz.out 2>&1
    rc=$?
    while IFS= read -r l; do test_info "$l"; done < <(grep -E '^fuzz [a-z0-9_]+: [0-9]+ execs|^fuzz total:' fuzz.out)

    test_expect_success "each of the $n_targets targets ran ${secs} s and executed inputs" '
        for t in $targets; do
            n=$(sed -n "s/^fuzz $t: \([0-9]*\) execs.*/\1/p" fuzz.out)
            test -n "$n" && test "$n" -gt 0 || { echo "target $t: no execs (${n:-no line})"; cat fuzz.out; exit 1; }
        done
    '
    test_expect_success 'no crash, sanitizer report, leak, timeout or out-of-memory' '
        if [ $rc -ne 0 ] || ! grep -qE "^fuzz total: .* 0 crashes in $n_targets targets" fuzz.out; then
            grep -E "crashes$|^fuzz [a-z0-9_]+:   |exited" fuzz.out | grep -v " 0 crashes$"
            for f in "$ci_dir"/logs/*.log; do
                grep -q -E "ERROR: |runtime error|fuzz invariant failed" "$f" || continue
                echo "== $f"; grep -m1 -A12 -E "ERROR: |runtime error|fuzz invariant failed" "$f"
            done
            echo "make fuzz exited $rc; crash inputs under $ci_dir/crashes/"
            false
        fi
    '
fi
test_done

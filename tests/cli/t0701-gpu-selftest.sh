#!/usr/bin/env bash
# t0701 — `caddie gpu selftest`: usage errors, and a clear failure (exit 1) when the binary has
# no CUDA backend or the machine has no GPU; on a CUDA build with a GPU it must pass.
. "$CADDIE_SRC/tests/cli/lib.sh"

test_expect_success 'gpu without a subcommand is a usage error' '
    test_must_fail 2 caddie gpu 2>err && test_grep "missing subcommand" err
'
test_expect_success 'unknown gpu subcommand is a usage error' '
    test_must_fail 2 caddie gpu frobnicate 2>err && test_grep "unknown subcommand .frobnicate." err
'
test_expect_success 'bad --seed is a usage error' '
    test_must_fail 2 caddie gpu selftest --seed x 2>err && test_grep "not a non-negative integer" err
'
test_expect_success 'help gpu documents selftest and its options' '
    caddie help gpu >out && test_grep "caddie gpu selftest" out && test_grep "max-nmse" out
'
# (the test binary is the ASan build, which never links CUDA; a CUDA build on a GPU must pass)
test_expect_success 'selftest passes on a GPU, otherwise fails (exit 1) saying why' '
    if caddie gpu selftest --quiet >out 2>err; then
        test_grep "^device: " out && test_grep " 0 failed" out
    else
        rc=$? && test $rc = 1 &&
        test_grep "this build has no CUDA backend|no CUDA device" err && ! test -s out
    fi
'
test_done

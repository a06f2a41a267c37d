#!/usr/bin/env bash
# t0001 — the command table: help lists commands, help X shows usage, version, exit codes.
. "$CADDIE_SRC/tests/cli/lib.sh"

test_expect_success 'help lists every command with a summary' '
    caddie help >out &&
    test_grep "^  help " out && test_grep "^  version " out &&
    ! grep -E "^  [a-z-]+ *$" out
'
test_expect_success 'help X shows the usage of X' '
    caddie help version >out && test_grep "usage: caddie version" out
'
test_expect_success 'X --help is help X' '
    caddie version --help >out && test_grep "usage: caddie version" out
'
test_expect_success 'unknown command is a usage error (exit 2) on stderr' '
    test_must_fail 2 caddie frobnicate 2>err >out &&
    test_grep "not a caddie command" err && ! test -s out
'
test_expect_success 'help of an unknown command exits 2' '
    test_must_fail 2 caddie help frobnicate 2>err
'
test_expect_success 'version names commit, compiler and the cpu backend' '
    caddie version >out &&
    test_grep "^commit: +[0-9a-f]{7,}|^commit: +unknown" out &&
    test_grep "^compiler: +gcc" out &&
    test_grep "^backends: +cpu" out
'
test_expect_success 'every listed command has usage text and X --help works' '
    caddie help | sed -n "s/^  \([a-z-]*\)  .*/\1/p" >names &&
    test "$(wc -l <names)" -ge 20 &&
    while read -r c; do
        caddie help "$c" >out && test_grep "^usage: caddie $c" out &&
        caddie "$c" --help >out2 && test_cmp out out2 || { echo "command $c"; return 1; }
    done <names
'
test_done

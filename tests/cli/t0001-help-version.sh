#!/usr/bin/env bash
# t0001 — the command table: help lists commands, help X shows usage, version, exit codes, and
# every command and subcommand refuses an unknown option (exit 2, naming it). Each option of
# each table against its help and its parser: tests/unit/test_cli_opts.c.
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
test_expect_success 'every command and subcommand: an unknown option is a usage error naming it' '
    caddie help | sed -n "s/^  \([a-z-]*\)  .*/\1/p" >names &&
    test "$(wc -l <names)" -ge 20 &&
    while read -r c; do
        caddie help "$c" | sed -nE "s/^(usage: +| +)caddie $c ([a-z][a-z-]*)( .*)?\$/\\2/p" | sort -u >subs
        test -s subs || echo >subs
        while read -r sub; do
            test_must_fail 2 caddie $c $sub --no-such-option 2>err >out &&
            test_grep "^caddie $c: .*unknown option .--no-such-option." err && ! test -s out ||
            { echo "caddie $c $sub"; return 1; }
        done <subs || return 1
    done <names
'
test_expect_success 'options are listed in the usage of the command that takes them' '
    caddie help logs >out && test_grep "^  -f, --follow +keep printing" out &&
    caddie help top >out && test_grep "^  -n N +show the N best" out &&
    caddie help sweep >out && test "$(grep -c "^  --devices N " out)" = 1 &&
    test "$(grep -c "^  --force " out)" = 2
'
test_done

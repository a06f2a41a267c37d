# lib.sh — git-style helpers for the shell-level CLI tests (tests/cli/t*.sh).
#
# Each test file sources this, calls test_expect_success / test_expect_failure, and
# ends with test_done. Output protocol is the same as tests/unit/check.h:
#   ok <desc> | FAIL <file>:<line>: <desc> | skip <desc>: <reason> ; then "# passed N failed M skipped K".
# Each file runs in its own scratch dir ($TRASH); $CADDIE is the binary under test,
# $CADDIE_SRC the repo root. Not here: anything product-specific.

set -u
: "${CADDIE:?CADDIE must point at the caddie binary}"
: "${CADDIE_SRC:?CADDIE_SRC must point at the repo root}"
TEST_FILE=$(basename "$0")
TRASH=$(mktemp -d "${CADDIE_TMP:-/tmp}/cli.XXXXXX")
cd "$TRASH" || exit 2
_n_pass=0 _n_fail=0 _n_skip=0

caddie() { "$CADDIE" "$@"; }

# test_expect_success 'description' 'shell commands'  — passes when the commands exit 0
test_expect_success() {
    local line=${BASH_LINENO[0]}
    local out
    if out=$( (eval "$2") 2>&1 ); then
        _n_pass=$((_n_pass+1)); echo "ok $1"
    else
        _n_fail=$((_n_fail+1)); echo "FAIL $TEST_FILE:$line: $1"
        printf '%s\n' "$out" | tail -n 20 | sed 's/^/    | /'
    fi
}

# test_skip 'description' 'reason'
test_skip() { _n_skip=$((_n_skip+1)); echo "skip $1: $2"; }

# test_info 'line' — a figure the run should show (tests/run.sh prints "info" lines, like
# "skip" ones, even when everything passed): one line each, never a verdict.
test_info() { echo "info $TEST_FILE: $*"; }

# test_must_fail [CODE] cmd...  — succeeds when cmd fails (with exit CODE if given)
test_must_fail() {
    local want=""
    case "$1" in [0-9]*) want=$1; shift;; esac
    "$@"; local rc=$?
    if [ $rc -eq 0 ]; then echo "expected failure, got exit 0: $*" >&2; return 1; fi
    if [ $rc -gt 128 ]; then echo "died by signal $((rc-128)): $*" >&2; return 1; fi
    if [ -n "$want" ] && [ "$rc" != "$want" ]; then echo "expected exit $want, got $rc: $*" >&2; return 1; fi
    return 0
}

# test_cmp expected actual — diff with context on mismatch
test_cmp() { diff -u "$1" "$2"; }

# test_grep PATTERN FILE — grep that shows the file on failure
test_grep() {
    if grep -q -E -- "$1" "$2"; then return 0; fi
    echo "pattern '$1' not found in $2:" >&2; head -n 40 "$2" >&2; return 1
}

test_done() {
    echo "# passed $_n_pass failed $_n_fail skipped $_n_skip"
    cd / && rm -rf "$TRASH"
    [ $_n_fail -eq 0 ]
}

#!/usr/bin/env bash
# t0606-report-labels.sh — group labels of path values keep what tells them apart: runs
# swept over data/a/x and data/b/x are "a/x" and "b/x" (once both "x"), short unique tails
# are still used ("y/z" -> "z"), and a value with no unique shorter tail stays whole.
. "$(dirname "$0")/lib.sh"

# A minimal train_gpt.py-style log that prints data_path ($1) and scores $2.
mklog() {
    printf 'data_path:%s\nstep:1/10 train_loss:3.0 train_time:10ms step_avg:10ms\n' "$1"
    printf 'step:10/10 val_loss:2.0 val_bpb:%s train_time:100ms step_avg:10ms\n' "$2"
    printf 'final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:%s\n' "$2"
}

test_expect_success 'labels of path values that share their last component stay distinct' '
    mkdir logs &&
    mklog data/a/x 1.21 >logs/r1.log && mklog data/b/x 1.22 >logs/r2.log &&
    mklog x 1.23 >logs/r3.log && mklog y/z 1.24 >logs/r4.log &&
    caddie import-log --db l.db --runs-dir runs --sweep p logs/r1.log logs/r2.log logs/r3.log logs/r4.log >/dev/null &&
    CADDIE_DB=l.db caddie top --sweep p >out &&
    awk "/^[0-9]+  / { print \$2 }" out >labels &&
    printf "%s\n" data_path=a/x data_path=b/x data_path=x data_path=z >expect &&
    test_cmp expect labels
'

test_done

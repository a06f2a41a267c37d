#!/usr/bin/env bash
# t0606-report-labels.sh — group labels of path values keep what tells them apart: runs
# swept over data/a/x and data/b/x are "a/x" and "b/x" (once both "x"), short unique tails
# are still used ("y/z" -> "z"), and a value with no unique shorter tail stays whole.
# Caddie-engine runs recorded by an older caddie (a key added since is missing from their
# params) count as having its default, so the new key is not taken for a swept one; an
# ablation's label names every key its bundle sets.
. "$(dirname "$0")/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

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

# Caddie-engine runs: an ablation over bundles of keys, then one run's params made to look as an
# older caddie recorded them (keys added since are missing).
S=$CADDIE_SRC/data/sample
first_run() { q "SELECT run_id FROM run_summary WHERE sweep = 'ab' ORDER BY run_id LIMIT 1"; }
forget_keys() { q "DELETE FROM params WHERE run_id = '$1' AND key IN ('smear_gate', 'attn_gate', 'qk_gain_init')"; }
labels() { awk '/^ *[0-9]+  / { print $2, $3 }' "$1" | sort; }
if [ -f "$S/fineweb10B_sp1024/fineweb_val_000000.bin" ]; then
    micro_config micro.yaml iterations=4 warmdown_iters=1 val_loss_every=0
    cat >ab.yaml <<EOF
name: ab
engine: caddie
base: micro.yaml
grid:
  technique:
    - {muon_wd: 0.0}
    - {muon_wd: 0.04}
    - {ema_decay: 0.97, ema_start_frac: 0.5}
    - {xsa_last_layers: 1}
timeout: 5m
EOF
    test_expect_success 'an ablation label names every key its bundle sets' '
        caddie sweep add ab.yaml >/dev/null && run_fast --cpu-slots 2 >run.out 2>&1 &&
        test "$(n_sweep ab done)" = 4 &&
        caddie top --sweep ab >before &&
        test_grep "ema_decay=0.97 ema_start_frac=0.5 " before && test_grep "^ *[0-9]+  baseline " before
    '
    test_expect_success 'a caddie run missing keys added since counts as their defaults: nothing new looks swept' '
        forget_keys "$(first_run)" && test "$(q "SELECT count(*) FROM params WHERE key = '"'smear_gate'"'")" = 3 &&
        caddie top --sweep ab >after &&
        labels before >labels.before && labels after >labels.after && test_cmp labels.before labels.after &&
        ! grep -E "smear_gate|attn_gate|qk_gain_init" after
    '
else
    test_skip 'labels of caddie-engine runs' 'no sample shards (make sample)'
fi

test_done

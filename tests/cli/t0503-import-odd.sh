#!/usr/bin/env bash
# t0503-import-odd.sh — crafted record folders that no published record looks like: a log
# with no step lines but a final score, a different final metric name, a score line the
# parser does not know (named by file:line, the rest still imported), a README whose claim
# is the mean over its seed logs, and claims that differ from the parse (both kept, and said).
. "$(dirname "$0")/lib.sh"

q() { sqlite3 -batch -noheader "$DB" "$1"; }
DB=$TRASH/odd.db
steps() { printf 'step:1/2 train_loss:5.0000 train_time:10ms step_avg:10.00ms\nstep:2/2 train_loss:4.5000 train_time:20ms step_avg:10.00ms\n'; }

test_expect_success 'setup: the crafted records' '
    mkdir -p odd mean single &&
    printf "# Odd record\n\nval_bpb: 1.3000\n" >odd/README.md &&
    printf "{\"name\": \"odd\", \"val_bpb\": 1.3000}\n" >odd/submission.json &&
    printf "loading data\nepoch 1 done\nfinal val_bpb: 1.2500\n" >odd/nongpt.log &&
    { steps; printf "final_q4_eval val_loss:2.1000 val_bpb:1.2400\n"; } >odd/othermetric.log &&
    { steps; printf "Final: val_bpb=1.2300 val_loss=2.2\n"; } >odd/weird.log &&
    printf "garbage only\n" >odd/notes.txt &&
    printf "# Mean record\n\nResult: **val_bpb 1.2133** (mean of 3 seeds)\n" >mean/README.md &&
    for s in 1:1.2000 2:1.2150 3:1.2250; do
        { printf "seed:%s\n" ${s%%:*}; steps;
          printf "final_int8_zlib_roundtrip_exact val_loss:2.00000000 val_bpb:%s0000\n" ${s#*:}; } >mean/train_seed${s%%:*}.log || return 1
    done &&
    printf "{\"val_bpb\": 1.1000, \"val_loss\": 1.9}\n" >single/submission.json &&
    { steps; printf "final_int8_zlib_roundtrip_exact val_loss:2.00000000 val_bpb:1.20000000\n"; } >single/train.log
'

test_expect_success 'import-record: an odd record imports what parses and names the rest' '
    caddie import-record --db "$DB" odd >out 2>err &&
    test_grep "^odd-nongpt	done	1.25000000	1.3	final	odd$" out &&
    test_grep "^odd-othermetric	done	1.24000000	1.3	final_q4_eval	odd$" out &&
    test_grep "^odd-weird	failed	-	1.3	no final evaluation line	odd$" out &&
    test_grep "odd/weird.log:3: not understood: Final: val_bpb=1.2300 val_loss=2.2$" err &&
    test_grep "odd/notes.txt: skipped" err &&
    test_grep "3 runs imported, 0 failed" err &&
    test "$(q "SELECT count(*) FROM metrics WHERE run_id = '\''odd-weird'\'' AND name = '\''train_loss'\''")" = 2
'

test_expect_success 'import-record: a record claim matching no parsed score is kept and said so' '
    grep -qxF "caddie import-record: odd/submission.json \$.val_bpb: claimed val_bpb 1.3 differs from every parsed score (mean 1.24500000), both kept: 1.25000000 1.24000000" err &&
    test "$(q "SELECT group_concat(run_id || '\''='\'' || val_bpb || '\''/'\'' || claimed_val_bpb, '\'' '\'') FROM (SELECT * FROM run_summary WHERE sweep = '\''odd'\'' AND status = '\''done'\'' ORDER BY run_id)")" = "odd-nongpt=1.25/1.3 odd-othermetric=1.24/1.3" &&
    test "$(q "SELECT text FROM params WHERE run_id = '\''odd-nongpt'\'' AND key = '\''record_claim_source'\''")" = "submission.json \$.val_bpb" &&
    test "$(q "SELECT count(*) FROM params WHERE key = '\''claimed_val_bpb'\'' AND run_id LIKE '\''odd-%'\''")" = 0
'

test_expect_success 'import-record: a README claim that is the mean over the seed logs' '
    caddie import-record --db "$DB" mean >out 2>err &&
    test "$(grep -c "	done	" out)" = 3 &&
    grep -qxF "caddie import-record: mean/README.md:3: claimed val_bpb 1.2133 is the mean of the 3 parsed scores (1.21333333): 1.20000000 1.21500000 1.22500000" err &&
    test "$(q "SELECT count(*) FROM run_summary WHERE sweep = '\''mean'\'' AND claimed_val_bpb = 1.2133")" = 3 &&
    ! grep -q "differs" err
'

test_expect_success 'import-record: a log whose own claim differs from its parse keeps both' '
    caddie import-record --db "$DB" single >out 2>err &&
    test_grep "^single-train	done	1.20000000	1.1	" out &&
    grep -qxF "caddie import-record: single/train.log: claimed 1.1 (submission.json \$.val_bpb) differs from the parsed 1.20000000: both kept" err &&
    test "$(q "SELECT val_bpb || '\''/'\'' || claimed_val_bpb FROM run_summary WHERE run_id = '\''single-train'\''")" = "1.2/1.1"
'

test_expect_success 'import-log: a score line not understood is named even when the log is skipped' '
    printf "Epoch 3/3 | loss 2.31\nFinal: val_bpb=1.2500 val_loss=2.2\n" >alone.log &&
    test_must_fail 1 caddie import-log --db "$DB" alone.log 2>err &&
    test_grep "alone.log: no training output recognised" err &&
    test_grep "alone.log:2: not understood: Final: val_bpb=1.2500 val_loss=2.2$" err
'

test_expect_success 'import-log: a published log has no line left not understood' '
    caddie import-log --db "$DB" "$CADDIE_SRC/tests/fixtures/logs/track_10min_16mb/2026-03-18_LowerLR/train.log" 2>err &&
    ! grep -q "not understood" err
'

test_done

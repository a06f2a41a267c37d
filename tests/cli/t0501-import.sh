#!/usr/bin/env bash
# t0501-import.sh — `caddie import-log` and `caddie import-record` bring published
# Parameter Golf logs into a fresh DB through run directories (runs/imported/<run_id>/),
# with the parsed score, curves, typed params and the submission's claim side by side.
. "$(dirname "$0")/lib.sh"

LOGS=$CADDIE_SRC/tests/fixtures/logs
T10=$LOGS/track_10min_16mb
NR=$LOGS/track_non_record_16mb
q() { sqlite3 -batch -noheader "$DB" "$1"; }
DB=$TRASH/import.db

test_expect_success 'import-log: one baseline log into a sweep' '
    caddie import-log --db "$DB" --sweep lr "$T10/2026-03-18_LowerLR/train.log" >out &&
    test_grep "^lr-train	done	1.22296644	-	final_int8_zlib_roundtrip_exact	lr$" out &&
    test "$(q "SELECT val_bpb FROM run_summary WHERE run_id='\''lr-train'\''")" = 1.22296644 &&
    test "$(q "SELECT sweep||'\''|'\''||status||'\''|'\''||artifact_bytes||'\''|'\''||code_bytes||'\''|'\''||steps||'\''|'\''||seed||'\''|'\''||valid FROM run_summary")" = "lr|done|15854246|50919|14421|1337|1"
'

test_expect_success 'import-log: the run dir holds the log, curves, result, config, run.json' '
    d=runs/imported/lr-train &&
    cmp "$T10/2026-03-18_LowerLR/train.log" $d/log.txt &&
    test -s $d/metrics.jsonl && test -s $d/result.json && test -s $d/config.yaml &&
    test -s $d/run.json &&
    test_grep "^matrix_lr: 0.02$" $d/config.yaml &&
    test "$(q "SELECT run_dir FROM runs")" = "$(cd $d && pwd)"
'

test_expect_success 'import-log: every train_loss step line is a curve point' '
    want=$(grep -cE "^step:[0-9]+/[0-9]+ train_loss:" "$T10/2026-03-18_LowerLR/train.log") &&
    got=$(q "SELECT count(*) FROM curves WHERE run_id='\''lr-train'\'' AND name='\''train_loss'\''") &&
    test "$want" = "$got" && test "$got" -gt 100 &&
    test "$(q "SELECT value||'\''@'\''||wall_ms FROM curves WHERE run_id='\''lr-train'\'' AND name='\''val_bpb'\'' AND step=14421")" = "1.2183@599847.0"
'

test_expect_success 'import-log: printed hyperparameters are typed params' '
    test "$(q "SELECT num FROM params WHERE run_id='\''lr-train'\'' AND key='\''matrix_lr'\''")" = 0.02 &&
    test "$(q "SELECT count(*) FROM params WHERE key='\''tie_embeddings'\'' AND num=1")" = 1 &&
    test "$(q "SELECT text FROM params WHERE key='\''attention_mode'\''")" = gqa
'

test_expect_success 'import-log: importing the same log again needs --replace' '
    before=$(q "SELECT count(*) FROM metrics WHERE run_id='\''lr-train'\''") &&
    test_must_fail 1 caddie import-log --db "$DB" --sweep lr "$T10/2026-03-18_LowerLR/train.log" 2>err &&
    test_grep "already exists" err &&
    caddie import-log --db "$DB" --sweep lr --replace "$T10/2026-03-18_LowerLR/train.log" >out &&
    test "$(q "SELECT count(*) FROM runs")" = 1 &&
    test "$(q "SELECT count(*) FROM metrics WHERE run_id='\''lr-train'\''")" = "$before"
'

test_expect_success 'import-log: a file without training output is refused' '
    printf "hello\nworld\n" >notalog.txt &&
    test_must_fail 1 caddie import-log --db "$DB" notalog.txt 2>err &&
    test_grep "no training output" err &&
    test "$(q "SELECT count(*) FROM runs")" = 1 && ! test -e runs/imported/notalog
'

test_expect_success 'import-log: usage errors exit 2' '
    test_must_fail 2 caddie import-log --db "$DB" &&
    test_must_fail 2 caddie import-log --db "$DB" --bogus x.log
'

R4=2026-04-01_Vocab4096_MLPMult4_WD085
test_expect_success 'import-record: a 3-seed record is a sweep with one run per seed' '
    caddie import-record --db "$DB" "$T10/$R4" >out &&
    test "$(q "SELECT count(*) FROM run_summary WHERE sweep='\''$R4'\''")" = 3 &&
    test "$(q "SELECT group_concat(seed||'\''='\''||val_bpb, '\'' '\'') FROM (SELECT seed, val_bpb FROM run_summary WHERE sweep='\''$R4'\'' ORDER BY seed)")" = "42=1.0974384 1337=1.09794973 2025=1.09816278"
'

test_expect_success 'import-record: the claimed val_bpb sits next to the parsed one' '
    test "$(q "SELECT count(*) FROM run_summary r JOIN params p ON p.run_id=r.run_id AND p.key='\''claimed_val_bpb'\'' WHERE r.sweep='\''$R4'\'' AND abs(r.val_bpb - p.num) <= 0.000005")" = 3 &&
    test "$(q "SELECT p.num FROM runs r JOIN params p ON p.run_id=r.run_id AND p.key='\''claimed_val_bpb'\'' WHERE r.seed=2025")" = 1.09816
'

test_expect_success 'import-record: seeds of one record form one group' '
    test "$(q "SELECT n||'\''|'\''||round(mean_val_bpb,6) FROM sweep_groups WHERE sweep='\''$R4'\''")" = "3|1.09785" &&
    test "$(q "SELECT seeds FROM sweep_groups WHERE sweep='\''$R4'\''" | tr , "\n" | sort -n | tr "\n" " ")" = "42 1337 2025 "
'

R23=2026-04-23_SP8192_CaseOps_SparseGate_QuantGate_Loop45_PhasedTTT_PolarNS_MinLR_FusedCE
test_expect_success 'import-record: TTT re-evaluation record, summary.log skipped' '
    caddie import-record --db "$DB" "$T10/$R23" >out 2>err &&
    test_grep "ttt_pr1767/summary.log: skipped" err &&
    test "$(q "SELECT count(*) FROM run_summary WHERE sweep='\''$R23'\''")" = 6 &&
    test "$(q "SELECT val_bpb FROM run_summary WHERE run_id='\''$R23-ttt_pr1767_seed_0'\''")" = 1.06307957 &&
    test "$(q "SELECT p.num FROM params p WHERE p.run_id='\''$R23-ttt_pr1767_seed_0'\'' AND p.key='\''claimed_val_bpb'\''")" = 1.06308 &&
    test "$(q "SELECT val_bpb FROM run_summary WHERE run_id='\''$R23-train_seed0'\''")" = 1.06353012
'

test_expect_success 'import-record: a record whose logs carry no seed_results (GDN study)' '
    caddie import-record --db "$DB" "$NR/2026-04-04_GDN_Hybrid_LongContext" >out &&
    test "$(q "SELECT count(*) FROM run_summary WHERE sweep='\''2026-04-04_GDN_Hybrid_LongContext'\''")" = 10 &&
    test "$(q "SELECT val_bpb FROM run_summary WHERE run_id='\''2026-04-04_GDN_Hybrid_LongContext-logs_experiment_baseline_1xh100_600s_seq8192'\''")" = 1.3507326 &&
    test "$(q "SELECT p.num FROM params p WHERE p.run_id='\''2026-04-04_GDN_Hybrid_LongContext-logs_experiment_hybrid_gdn_1xh100_600s_seq32768_s42'\'' AND p.key='\''claimed_val_bpb'\''")" = 1.4716 &&
    test "$(q "SELECT n FROM sweep_groups WHERE sweep='\''2026-04-04_GDN_Hybrid_LongContext'\'' AND config LIKE '\''%seq16384_seed%'\''")" = 2
'

test_expect_success 'import-record: ternary dialect and submission_ternary.json' '
    caddie import-record --db "$DB" "$T10/2026-03-24_74M_Ternary_UNet_FP8_10L_8192BPE_YaRN_NeoMuon" >out &&
    test "$(q "SELECT group_concat(val_bpb||'\''/'\''||artifact_bytes, '\'' '\'') FROM (SELECT val_bpb, artifact_bytes FROM run_summary WHERE sweep LIKE '\''2026-03-24_74M%'\'' ORDER BY seed)")" = "1.1578/15992753 1.1565/15993853 1.1568/15995705" &&
    test "$(q "SELECT description FROM sweeps WHERE name LIKE '\''2026-03-24_74M%'\''")" != ""
'

test_expect_success 'import-record: a record without logs fails and imports nothing' '
    n=$(q "SELECT count(*) FROM runs") &&
    test_must_fail 1 caddie import-record --db "$DB" "$NR/2026-03-21_DepthRecurrence_MixedPrecisionQuant" 2>err &&
    test_grep "no training logs" err &&
    test "$(q "SELECT count(*) FROM runs")" = "$n"
'

test_expect_success 'import-record: all fixture records; claims differ only where documented' '
    test_must_fail 1 caddie import-record --db all.db --runs-dir all-runs "$LOGS"/track_*/* >out 2>err &&
    test_grep "79 runs imported, 1 failed" err &&
    sqlite3 -batch -noheader all.db "SELECT r.run_id FROM run_summary r JOIN params p ON p.run_id = r.run_id AND p.key = '\''claimed_val_bpb'\'' WHERE abs(r.val_bpb - p.num) > 0.00005 ORDER BY r.run_id" >mismatch &&
    cat >expect <<-EOF &&
	2026-03-19_MLP3x_QAT_Int6_SlidingWindow-train
	2026-04-04_GDN_Hybrid_LongContext-logs_experiment_hybrid_gdn_1xh100_600s_seq16384_seed1341
	$R23-train_seed0
	$R23-train_seed1234
	$R23-train_seed42
	EOF
    test_cmp expect mismatch &&
    test "$(sqlite3 all.db "SELECT count(*) FROM params WHERE key='\''claimed_val_bpb'\''")" = 49
'

test_expect_success 'import-record: db rebuild from the run dirs restores every imported run' '
    caddie db rebuild --runs-dir all-runs/imported --db re.db >/dev/null &&
    for d in all.db re.db; do
        sqlite3 -batch $d "SELECT run_id, sweep, status, seed, val_bpb, artifact_bytes, (SELECT count(*) FROM metrics m WHERE m.run_id = s.run_id) FROM run_summary s ORDER BY run_id" >$d.txt || return 1
    done &&
    test_cmp all.db.txt re.db.txt && test "$(wc -l <re.db.txt)" = 79
'

test_expect_success 'db rebuild of the top runs dir descends into runs/imported' '
    caddie db rebuild --runs-dir all-runs --db top.db >/dev/null &&
    sqlite3 -batch top.db "SELECT run_id, sweep, status, seed, val_bpb, artifact_bytes, (SELECT count(*) FROM metrics m WHERE m.run_id = s.run_id) FROM run_summary s ORDER BY run_id" >top.db.txt &&
    test_cmp all.db.txt top.db.txt
'

test_expect_success 'import-log --sweep into an existing sweep keeps its description' '
    caddie import-record --db keep.db --runs-dir keep-runs "$T10/$R4" >/dev/null &&
    caddie import-log --db keep.db --runs-dir keep-runs --sweep "$R4" "$T10/2026-03-18_LowerLR/train.log" >/dev/null &&
    test "$(sqlite3 keep.db "SELECT description FROM sweeps")" = "4096-Vocab + Larger Model + High WD + Simplifications" &&
    test "$(sqlite3 keep.db "SELECT count(*) FROM run_summary WHERE sweep='\''$R4'\''")" = 4
'

test_done

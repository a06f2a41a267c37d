#!/usr/bin/env bash
# t0510-import-integrity.sh — the fast import path (db/import.c: foreign keys off for a new
# run's transaction, plain INSERTs with an OR REPLACE retry) stores what the careful path did:
# no orphan rows, the last of a repeated step wins, a re-import replaces the run's rows, and the
# connection's foreign keys are on again afterwards (a later delete still cascades).
. "$(dirname "$0")/lib.sh"

q() { sqlite3 -batch -noheader "$DB" "PRAGMA foreign_keys=ON; $1"; }
DB=$TRASH/integrity.db

mkdir lg && cat >lg/dup.log <<'LOG'
seed:7
step:1/3 train_loss:4.5000 train_time:10ms step_avg:10.00ms
step:2/3 train_loss:4.2500 train_time:20ms step_avg:10.00ms
step:2/3 train_loss:4.1250 train_time:21ms step_avg:10.50ms
step:3/3 train_loss:4.0000 train_time:30ms step_avg:10.00ms
final_int8_zlib_roundtrip_exact val_loss:2.07000000 val_bpb:1.22436570
LOG

test_expect_success 'import-log: a new run, no orphans, the repeated step keeps its last value' '
    caddie import-log --db "$DB" lg/dup.log >out &&
    test_grep "^lg-dup	done	1.22436570" out &&
    test "$(q "SELECT count(*) FROM pragma_foreign_key_check")" = 0 &&
    test "$(q "SELECT value FROM metrics WHERE run_id='\''lg-dup'\'' AND name='\''train_loss'\'' AND step=2")" = 4.125 &&
    test "$(q "SELECT count(*) FROM metrics WHERE run_id='\''lg-dup'\'' AND name='\''train_loss'\''")" = 3 &&
    test "$(q "SELECT count(*) FROM artifacts WHERE run_id='\''lg-dup'\''")" -ge 3
'

test_expect_success 'import-log: metrics.jsonl numbers read back as the log printed them' '
    test_grep "^{\"step\":2,\"name\":\"train_loss\",\"value\":4.125,\"wall_ms\":21}$" runs/imported/lg-dup/metrics.jsonl
'

test_expect_success 'import-log again: the run is replaced (keys on, cascade), still no orphans' '
    sed -i "s/train_loss:4.0000/train_loss:3.7500/" lg/dup.log &&
    caddie import-log --db "$DB" --replace lg/dup.log >out &&
    test "$(q "SELECT value FROM metrics WHERE run_id='\''lg-dup'\'' AND name='\''train_loss'\'' AND step=3")" = 3.75 &&
    test "$(q "SELECT count(*) FROM runs")" = 1 &&
    test "$(q "SELECT count(*) FROM pragma_foreign_key_check")" = 0
'

test_expect_success 'a second log in the same sweep: the sweep row is checked, both runs kept' '
    cp lg/dup.log lg/other.log &&
    caddie import-log --db "$DB" --sweep s lg/other.log >out &&
    test "$(q "SELECT count(*) FROM runs r JOIN sweeps s ON s.id = r.sweep_id WHERE s.name='\''s'\''")" = 1 &&
    test "$(q "SELECT count(*) FROM pragma_foreign_key_check")" = 0
'

test_expect_success 'db delete of an imported run cascades to its curves' '
    q "DELETE FROM runs WHERE run_id='\''lg-dup'\''" &&
    test "$(q "SELECT count(*) FROM metrics WHERE run_id='\''lg-dup'\''")" = 0
'

test_done

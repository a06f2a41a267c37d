#!/usr/bin/env bash
# t0301 — `caddie sweep add` queues runs (run dirs + DB), dedups by config hash, --force
# repeats; values reach a command engine literally; `db migrate`, `db rebuild` (the DB is
# recreated from run dirs, queued runs included) and `import-run`.
. "$CADDIE_SRC/tests/cli/lib.sh"

cat >qk.yaml <<'Y'
name: qk
set:
  iterations: 5
grid:
  qk_gain_init: [1.5, 5.25]
seeds: [1337, 42]
retries: 2
priority: 3
Y
test_expect_success 'add queues 4 runs with run dirs and DB rows' '
    caddie sweep add qk.yaml >out 2>err &&
    test_grep "^sweep qk: queued 4 runs" out &&
    test $(ls runs | wc -l) -eq 4 &&
    for d in runs/*; do test -f $d/config.yaml && test -f $d/run.json || exit 1; done &&
    test "$(sqlite3 caddie.db "SELECT count(*) FROM run_summary WHERE sweep=\"qk\" AND status=\"queued\"")" = 4 &&
    test "$(sqlite3 caddie.db "SELECT count(*) FROM runs r JOIN params p USING(run_id) WHERE p.key=\"qk_gain_init\" AND p.num=5.25")" = 2 &&
    test "$(sqlite3 caddie.db "SELECT DISTINCT retries || \",\" || priority FROM runs")" = "2,3" &&
    grep -q "^qk_gain_init: 5.25$" $(grep -l "5.25" runs/*/config.yaml | head -1)
'
test_expect_success 'adding again queues nothing: the configs are already queued' '
    caddie sweep add qk.yaml >out &&
    test_grep "queued 0 runs; skipped 0 done, 4 already queued or running" out &&
    caddie sweep plan qk.yaml >out &&
    test $(grep -c "^pending " out) -eq 4
'
cat >inj.yaml <<'Y'
name: inj
engine: command
command: [sh, -c, "echo \"$ARG\"", "{arg}"]
env:
  ARG: "{arg}"
grid:
  arg: ["; rm -rf ~", "$(touch pwned)"]
Y
test_expect_success 'grid values reach the command engine literally (argv and env)' '
    caddie sweep add inj.yaml >out &&
    sqlite3 caddie.db "SELECT json_extract(launch, \"\$.env.ARG\") FROM runs WHERE sweep_id=(SELECT id FROM sweeps WHERE name=\"inj\") ORDER BY run_id" | sort >got &&
    printf "%s\n" "\$(touch pwned)" "; rm -rf ~" | sort >want &&
    test_cmp want got &&
    sqlite3 caddie.db "SELECT json_extract(launch, \"\$.argv[3]\") FROM runs WHERE engine=\"command\"" | sort >got &&
    test_cmp want got &&
    ! test -e pwned
'
dump() {
    sqlite3 "$1" "SELECT run_id, sweep, name, status, seed, config, config_hash, group_hash, attempts, queued_at, run_dir FROM run_summary ORDER BY run_id;
                  SELECT run_id, key, num, text FROM params ORDER BY run_id, key;
                  SELECT run_id, at, from_status, to_status, reason FROM events ORDER BY run_id, at, id;
                  SELECT name, description, spec, spec_hash, created_at FROM sweeps ORDER BY name;"
}
test_expect_success 'db rebuild recreates the deleted DB from the run dirs (queued runs too)' '
    dump caddie.db >before &&
    rm -f caddie.db caddie.db-wal caddie.db-shm &&
    caddie db rebuild >out && test_grep "rebuilt from runs: 6 runs" out &&
    dump caddie.db >after &&
    test_cmp before after
'
test_expect_success 'a done run is skipped by plan and queued again with --force under -r2' '
    id=$(sqlite3 caddie.db "SELECT run_id FROM run_summary WHERE sweep=\"qk\" ORDER BY run_id LIMIT 1") &&
    sqlite3 caddie.db "UPDATE runs SET status=\"done\" WHERE run_id=\"$id\"" &&
    caddie sweep plan qk.yaml >out &&
    test_grep "^done +$id " out &&
    caddie sweep add qk.yaml --force >out &&
    test_grep "queued 4 runs" out &&
    test "$(sqlite3 caddie.db "SELECT count(*) FROM runs WHERE run_id LIKE \"%-r2\"")" = 4 &&
    test -f runs/$id-r2/run.json
'
test_expect_success 'db migrate reports the schema version, and is idempotent' '
    caddie db migrate --db fresh.db >out && test_grep "^fresh.db: schema version 0 -> [0-9]+$" out &&
    caddie db migrate --db fresh.db >out && test_grep "^fresh.db: schema version [0-9]+ \\(up to date\\)$" out
'
test_expect_success 'processes migrating one fresh DB at once apply each migration once' '
    pids="" &&
    for i in 1 2 3 4; do caddie db migrate --db race.db >race$i.out 2>&1 & pids="$pids $!"; done &&
    for p in $pids; do wait $p || exit 1; done &&
    test $(grep -l "schema version 0 -> " race*.out | wc -l) -eq 1 &&
    test "$(sqlite3 race.db "PRAGMA user_version")" -ge 1 &&
    test "$(sqlite3 race.db "SELECT count(*) FROM sqlite_master WHERE name = \"run_summary\"")" = 1
'
test_expect_success 'CADDIE_DB chooses the database' '
    CADDIE_DB=env.db caddie db migrate >out && test -f env.db && test_grep "^env.db:" out
'
test_expect_success 'import-run adds a standalone caddie train run dir' '
    mkdir -p solo &&
    printf "run_id: solo\nqk_gain_init: 2.5\n" >solo/config.yaml &&
    printf "{\"step\":1,\"name\":\"train_loss\",\"value\":6.5,\"wall_ms\":10}\n" >solo/metrics.jsonl &&
    printf "{\"run_id\":\"solo\",\"val_bpb\":1.5,\"val_loss\":2.5,\"artifact_bytes\":1000,\"train_ms\":10,\"eval_ms\":5,\"partial\":1}\n" >solo/result.json &&
    caddie import-run solo --db imp.db >out &&
    test_grep "^solo  done  " out &&
    test "$(sqlite3 imp.db "SELECT val_bpb || \",\" || valid || \",\" || partial FROM run_summary")" = "1.5,1,1" &&
    test "$(sqlite3 imp.db "SELECT count(*) FROM curves WHERE run_id=\"solo\"")" = 1 &&
    caddie import-run solo --db imp.db >out &&
    test_must_fail 1 caddie import-run solo --no-replace --db imp.db 2>err &&
    test_grep "already exists" err &&
    test_must_fail 1 caddie import-run nowhere --db imp.db 2>err
'
test_expect_success 'db usage errors exit 2' '
    test_must_fail 2 caddie db 2>err &&
    test_must_fail 2 caddie db frob 2>err &&
    test_must_fail 2 caddie db rebuild extra 2>err &&
    test_must_fail 2 caddie import-run 2>err
'
test_done

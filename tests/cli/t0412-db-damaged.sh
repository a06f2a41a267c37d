#!/usr/bin/env bash
# t0412 — a damaged DB and bad run dirs:
#   a zeroed page in a copy of a DB with runs: ls, status, show and top each fail (never a
#   header and exit 0), naming the DB, saying it is damaged and to run `caddie db rebuild`;
#   `caddie db rebuild` skips a bad run dir (run.json with Inf, invalid, truncated) with a
#   one-line message naming it, imports the rest, and exits 1 (documented in database.md).
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

fake_sweep dmg 3 0.01 "1, 2, 3, 4, 5, 6, 7, 8"
test_expect_success 'a DB with some runs' '
    caddie sweep add dmg.yaml >/dev/null && run_fast --cpu-slots 2 >r.out 2>&1 &&
    test $(n_status done) = 8 && q "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
'
# zero the root page of each table a command reads: a command that reads it fails with the
# message (at least `show`, which reads them all); one that does not may still answer
zero_page() { # TABLE -> z.db, a copy of caddie.db with TABLE's root page zeroed
    local page; page=$(q "SELECT rootpage FROM sqlite_master WHERE name = '$1'")
    cp caddie.db z.db && rm -f z.db-wal z.db-shm &&
    dd if=/dev/zero of=z.db bs=$(q "PRAGMA page_size") seek=$((page - 1)) count=1 conv=notrunc status=none
}
for t in metrics events results; do
    test_expect_success "zeroed $t page: a command that reads it fails naming the DB and the fix" '
        zero_page '$t' && id=$(q "SELECT run_id FROM runs ORDER BY run_id LIMIT 1") &&
        n_failed=0 &&
        for cmd in ls status "show $id" top; do
            "$CADDIE" $cmd --db z.db >out 2>err && continue
            n_failed=$((n_failed + 1))
            grep -q "z.db.*damaged.*caddie db rebuild --db z.db" err || { echo "$cmd:"; cat err; exit 1; }
        done &&
        test_must_fail "$CADDIE" show "$id" --db z.db >/dev/null 2>&1 && test $n_failed -ge 1
    '
done
test_expect_success 'a zeroed runs page: every one of ls, status, show, top fails' '
    zero_page runs && id=$(q "SELECT run_id FROM runs ORDER BY run_id LIMIT 1") &&
    for cmd in ls status "show $id" top; do
        test_must_fail "$CADDIE" $cmd --db z.db >out 2>err || exit 1
        grep -q "z.db.*damaged.*caddie db rebuild --db z.db" err || { cat err; exit 1; }
    done
'
test_expect_success 'db rebuild skips bad run dirs, names each, imports the rest, exits 1' '
    mkdir runs/bad-inf runs/bad-json runs/bad-trunc &&
    printf "{\"format\":\"caddie-run/1\",\"run_id\":\"bad-inf\",\"timeout_s\":Inf}\n" >runs/bad-inf/run.json &&
    printf "not json at all\n" >runs/bad-json/run.json &&
    head -c 200 "$(ls -d runs/dmg-* | head -1)/run.json" >runs/bad-trunc/run.json &&
    test_must_fail 1 caddie db rebuild --db re.db --runs-dir runs >re.out 2>re.err &&
    test "$(grep -c "skipped runs/bad-" re.err)" = 3 &&
    test_grep "skipped runs/bad-inf: .*bad-inf/run.json" re.err &&
    test_grep "skipped runs/bad-trunc: " re.err &&
    test_grep "rebuilt from runs: 8 runs, 3 run dirs skipped" re.out &&
    test "$(CADDIE_DB=re.db n_status done)" = 8 &&
    snapshot >before && CADDIE_DB=re.db snapshot >after && test_cmp before after
'
test_done

#!/usr/bin/env bash
# t0601 — `caddie report` on the fixture DB: one self-contained HTML file with the summary
# table (numbers checked against scipy), charts, budgets and failures; filters and errors.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/reports_lib.sh"

test_expect_success 'fixture database (db migrate + fixture rows)' '
    fixture_db &&
    test "$(sqlite3 "$CADDIE_DB" "select count(*) from run_summary")" = 27
'
test_expect_success 'report writes one HTML file and says so' '
    SOURCE_DATE_EPOCH=1776900000 caddie report --out r.html >out &&
    test_grep "^wrote r.html: 2 sweeps, 27 runs, 9 config groups" out &&
    test -s r.html && ! ls r.html.tmp.* 2>/dev/null &&
    test_grep "^<!DOCTYPE html>" r.html && test_grep "</html>" r.html
'
test_expect_success 'the page is self-contained: no script, no external resource' '
    ! grep -i -E "<script|<link|<img|<iframe|@import|url\\(http" r.html &&
    ! grep -o -E "(https?:)?//[a-z0-9.-]+" r.html | grep -v -x -E "http://www.w3.org" 
'
test_expect_success 'summary tables: one row per config group, best first' '
    test "$(grep -c "<tr class=\"group" r.html)" = 9 &&
    grep -o "<table class=\"summary\" id=\"summary-[a-z-]*\"" r.html >ids &&
    test_grep "summary-qk-wd" ids && test_grep "summary-vocab" ids &&
    grep "<tr class=\"group" r.html | head -n 1 | grep -q "c49d20428e674608" &&
    grep "<tr class=\"group best" r.html | grep -q "muon_wd=0.095 qk_gain_init=5.25"
'
test_expect_success 'best group: mean ± std, Welch p and bar p agree with scipy' '
    # scipy.stats.ttest_ind(best, ref, equal_var=False, alternative="less"):
    #   p = 1.3425e-04 on val_bpb; with the 0.005-nat margin (0.005/2.63 bpb) p = 0.0010362
    row=$(grep "<tr class=\"group best" r.html | head -n 1) &&
    echo "$row" | grep -q "1.0850 ± 0.0004" &&
    echo "$row" | grep -q "1.3e-04" &&
    echo "$row" | grep -q "✓ yes</span><br><span class=\"muted\">p=0.0010<" &&
    echo "$row" | grep -q "15,966,000"
'
test_expect_success 'reference row and reason; invalid groups are marked' '
    grep "<tr class=\"group ref" r.html | grep -q "muon_wd=0.04 qk_gain_init=4<span class=\"badge b-ref\">REF" &&
    test_grep "the first group that ran" r.html &&
    test "$(grep -c "✗ 3/3 over" r.html)" = 3 &&
    test_grep "<td class=\"num bad\">16,026,200</td>" r.html
'
test_expect_success 'a group with one seed cannot be tested (n<2), not a made-up p' '
    grep "<tr class=\"group" r.html | grep "vocab_size=4096" | grep -q "– n&lt;2\|– n<2"
'
test_expect_success 'charts: curves, parameter response, heatmap for two swept keys, budgets' '
    for id in qk-wd-train-loss qk-wd-val-bpb qk-wd-param-muon_wd qk-wd-param-qk_gain_init \
              qk-wd-heatmap qk-wd-artifact qk-wd-time qk-wd-step-time qk-wd-tokens \
              vocab-train-loss vocab-val-bpb vocab-param-vocab_size vocab-artifact; do
        grep -q "<svg class=\"chart[a-z ]*\" id=\"$id\"" r.html || { echo "missing chart $id"; exit 1; }
    done &&
    ! grep -q "id=\"vocab-heatmap\"" r.html &&
    test_grep "16,000,000 bytes" r.html && test_grep "600 s cap" r.html
'
test_expect_success 'the vocab bundle (vocab_size + tokenizer_path) is one swept parameter' '
    ! grep -q "vocab-param-tokenizer_path" r.html &&
    grep -q "swept: <code>vocab_size</code></p>" r.html
'
test_expect_success 'failed and interrupted runs are listed with their error text' '
    test_grep "Failed and interrupted runs \\(2\\)" r.html &&
    test_grep "train_loss is NaN at step 412" r.html &&
    test_grep "step:412/20000 train_loss:nan" r.html &&
    test_grep "boot id changed" r.html &&
    test_grep "Failed and interrupted runs \\(0\\)" r.html
'
test_expect_success 'the generated time honours SOURCE_DATE_EPOCH' '
    test_grep "generated 2026-04-22 23:20 UTC" r.html
'
test_expect_success '--sweep selects sections; --log-x changes the step axis' '
    caddie report --sweep vocab --log-x --out v.html >/dev/null &&
    test_grep "id=\"sweep-vocab\"" v.html && ! grep -q "id=\"sweep-qk-wd\"" v.html &&
    test_grep "step \\(log scale\\)" v.html
'
test_expect_success '--runs filters with an SQL expression over run_summary' '
    caddie report --runs "seed = 42" --out s.html >out &&
    test_grep "wrote s.html: 2 sweeps, 9 runs, 9 config groups" out &&
    test "$(grep "<tr class=\"group" s.html | grep -c "<td class=\"num\">1</td><td class=\"num\"><b>")" = 9
'
test_expect_success '--ref picks another reference group (by label)' '
    caddie report --sweep qk-wd --ref "muon_wd=0.095 qk_gain_init=4" --out ref.html >/dev/null &&
    grep "<tr class=\"group ref" ref.html | grep -q "muon_wd=0.095 qk_gain_init=4<span" &&
    test_grep "chosen with --ref" ref.html
'
test_expect_success 'a group whose run names say baseline is the default reference' '
    cp "$CADDIE_DB" base.db &&
    sqlite3 base.db "UPDATE runs SET name = \"baseline \" || name WHERE run_id LIKE \"qk-wd-11_\"" &&
    caddie report --db base.db --sweep qk-wd --out base.html >/dev/null &&
    grep "<tr class=\"group ref" base.html | grep -q "muon_wd=0.095 qk_gain_init=5<span" &&
    test_grep "its name says baseline" base.html
'
test_expect_success 'a selection without runs still writes a page that says so' '
    caddie report --runs "seed = -1" --out none.html >out &&
    test_grep "0 sweeps, 0 runs" out && test_grep "The selection matched no run" none.html
'
test_expect_success '--out - writes the page to stdout' '
    caddie report --sweep vocab --out - >stdout.html && test_grep "^<!DOCTYPE html>" stdout.html
'
test_expect_success 'a broken --runs expression is a usage error naming the expression' '
    test_must_fail 2 caddie report --runs "seed = = 1" --out x.html 2>err &&
    test_grep "seed = = 1" err && ! test -e x.html
'
test_expect_success '--runs cannot smuggle a second statement, and reports never write' '
    test_must_fail 2 caddie report --runs "1); DROP TABLE runs; SELECT (1" --out x.html 2>err &&
    test "$(sqlite3 "$CADDIE_DB" "select count(*) from runs")" = 27 &&
    test_must_fail 2 caddie report --runs "1) ORDER BY 1; DELETE FROM runs --" --out x.html 2>err &&
    test "$(sqlite3 "$CADDIE_DB" "select count(*) from runs")" = 27
'
test_expect_success 'an unknown sweep or a missing database fails with a message' '
    test_must_fail 1 caddie report --sweep nope --out x.html 2>err && test_grep "no runs in sweep .nope." err &&
    test_must_fail 1 caddie report --db "$TRASH/missing.db" 2>err && test_grep "no database" err &&
    ! test -e "$TRASH/missing.db"
'
test_expect_success 'an unknown --ref fails and names it' '
    test_must_fail 1 caddie report --ref zzz-none --out x.html 2>err && test_grep "zzz-none" err
'
test_expect_success 'usage errors exit 2' '
    test_must_fail 2 caddie report --max-groups 0 &&
    test_must_fail 2 caddie report stray-argument &&
    test_must_fail 2 caddie report --frobnicate
'
test_done

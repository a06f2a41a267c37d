#!/usr/bin/env bash
# t0604 — `caddie export-submission`: a record folder from a group (all seeds) or one run:
# submission.json in the challenge's format, README.md with the seed table, the logs.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/reports_lib.sh"


test_expect_success 'fixture database and run dirs with logs (the fixture run_dir is runs/<id>)' '
    fixture_db &&
    for id in qk-wd-210 qk-wd-211 qk-wd-212; do
        mkdir -p runs/$id &&
        printf "step:1/20000 train_loss:9.01 train_time:129ms step_avg:129.00ms\nrun %s\n" $id >runs/$id/log.txt &&
        printf "qk_gain_init: 5.25\nmuon_wd: 0.095\n" >runs/$id/config.yaml || exit 1
    done
'
test_expect_success 'export a group: every seed, challenge fields, logs copied byte for byte' '
    caddie export-submission c49d20428e674608 --out rec --author "Ada Golf" --github-id ada \
        --name "QK 5.25 + WD 0.095" --blurb "fixture export" >out &&
    test_grep "^wrote rec: submission.json, README.md, 3 logs \\(val_bpb 1.08500 over 3 seeds, within budgets\\)" out &&
    cmp runs/qk-wd-210/log.txt rec/train_seed42.log &&
    cmp runs/qk-wd-211/log.txt rec/train_seed314.log &&
    cmp runs/qk-wd-212/log.txt rec/train_seed999.log &&
    cmp runs/qk-wd-210/config.yaml rec/config.yaml
'
test_expect_success 'submission.json is valid JSON with the record fields' '
    test "$(sqlite3 :memory: "select json_valid(readfile(\"rec/submission.json\"))")" = 1 &&
    f() { sqlite3 :memory: "select json_extract(readfile(\"rec/submission.json\"), \"$1\")"; } &&
    test "$(f "\$.author")" = "Ada Golf" && test "$(f "\$.github_id")" = ada &&
    test "$(f "\$.name")" = "QK 5.25 + WD 0.095" && test "$(f "\$.track")" = 10min_16mb &&
    test "$(f "\$.blurb")" = "fixture export" &&
    test "$(sqlite3 :memory: "select printf(\"%.5f\", json_extract(readfile(\"rec/submission.json\"), \"\$.val_bpb\"))")" = 1.08500 &&
    test "$(sqlite3 :memory: "select printf(\"%.5f\", json_extract(readfile(\"rec/submission.json\"), \"\$.val_bpb_std\"))")" = 0.00040 &&
    test "$(f "\$.seeds")" = "[42,314,999]" &&
    test "$(f "\$.seed_results.314.val_bpb")" = 1.0851 &&
    test "$(f "\$.seed_results.42.artifact_bytes")" = 15964600 &&
    test "$(f "\$.bytes_total")" = 15966000 && test "$(f "\$.bytes_code")" = 16630 &&
    test "$(f "\$.compliance.artifact_under_16mb")" = 1 && test "$(f "\$.compliance.three_seeds")" = 1 &&
    f "\$.date" | grep -q -E "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
'
test_expect_success 'README.md: headline and one table row per seed plus mean and std' '
    test_grep "^# QK 5.25 \\+ WD 0.095$" rec/README.md &&
    test_grep "^\\*\\*val_bpb = 1.0850\\*\\* \\(3-seed mean, std 0.0004\\)" rec/README.md &&
    test "$(grep -c "^| [0-9]" rec/README.md)" = 3 &&
    test_grep "^\\| 314 \\| 2.85381 \\| 1.08510 \\|" rec/README.md &&
    test_grep "train_seed999.log \\|$" rec/README.md &&
    test_grep "^\\| \\*\\*Mean\\*\\*" rec/README.md
'
test_expect_success 'an over-budget group is exported but flagged, compliance false' '
    for id in qk-wd-200 qk-wd-201 qk-wd-202; do mkdir -p runs/$id && echo log >runs/$id/log.txt; done &&
    caddie export-submission b755fa9e --out over >out &&
    test_grep "OVER A BUDGET" out &&
    test "$(sqlite3 :memory: "select json_extract(readfile(\"over/submission.json\"), \"\$.compliance.artifact_under_16mb\")")" = 0
'
test_expect_success 'export one run: a one-seed submission' '
    caddie export-submission qk-wd-211 --out one >out &&
    test_grep "1 log \\(val_bpb 1.08510 over 1 seed" out &&
    test "$(sqlite3 :memory: "select json_extract(readfile(\"one/submission.json\"), \"\$.seeds\")")" = "[314]" &&
    test "$(sqlite3 :memory: "select json_type(readfile(\"one/submission.json\"), \"\$.val_bpb_std\")")" = ""
'
test_expect_success 'a missing log fails and names the run and the file' '
    test_must_fail 1 caddie export-submission 2c75b948 --out nolog 2>err &&
    test_grep "qk-wd-00[0-2].*runs/qk-wd-00[0-2]/log.txt" err && ! test -e nolog/submission.json
'
test_expect_success 'usage: --out required, one target' '
    test_must_fail 2 caddie export-submission c49d 2>err && test_grep "out DIR is required" err &&
    test_must_fail 2 caddie export-submission --out x &&
    test_must_fail 1 caddie export-submission qk-wd-failed --out x 2>err && test_grep "no result" err
'
test_done

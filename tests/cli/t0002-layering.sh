#!/usr/bin/env bash
# t0002 — the source tree keeps the architecture's one-way layering (tests/layers.sh):
# the real tree passes, and a planted upward include or a folder-less include is caught.
. "$CADDIE_SRC/tests/cli/lib.sh"

test_expect_success 'the source tree follows the layering' '
    bash "$CADDIE_SRC/tests/layers.sh" "$CADDIE_SRC" >out && test_grep "^layers: ok" out
'
plant() {  # copy the layered folders into ./tree, then append one include line to $1
    rm -rf tree && mkdir tree &&
    for d in engine kernels sweep db runner reports cli; do cp -r "$CADDIE_SRC/$d" tree/; done &&
    echo "$2" >>"tree/$1"
}
test_expect_success 'engine including the runner is refused, naming file and edge' '
    plant engine/train.c "#include \"runner/runner.h\"" &&
    test_must_fail bash "$CADDIE_SRC/tests/layers.sh" tree >out &&
    test_grep "engine/train.c:[0-9]+: engine/ must not include \"runner/runner.h\"" out
'
test_expect_success 'reports reaching past db/ is refused' '
    plant reports/report.c "#include \"runner/sched.h\"" &&
    test_must_fail bash "$CADDIE_SRC/tests/layers.sh" tree >out &&
    test_grep "reports/ must not include" out
'
test_expect_success 'sweep including the database is refused' '
    plant sweep/plan.c "#include \"db/db.h\"" &&
    test_must_fail bash "$CADDIE_SRC/tests/layers.sh" tree >out &&
    test_grep "sweep/ must not include \"db/db.h\"" out
'
test_expect_success 'the SQLite handle header outside db/ is refused' '
    plant runner/runner.c "#include \"db/db_internal.h\"" &&
    test_must_fail bash "$CADDIE_SRC/tests/layers.sh" tree >out &&
    test_grep "runner/runner.c:[0-9]+: \"db/db_internal.h\" is for db/ sources only" out
'
test_expect_success 'a SQLite call outside db/ is refused' '
    plant cli/cmd_runs.c "static int f(void *h) { return sqlite3_exec(h, \"\", 0, 0, 0); }" &&
    test_must_fail bash "$CADDIE_SRC/tests/layers.sh" tree >out &&
    test_grep "cli/cmd_runs.c:[0-9]+: SQLite outside db/" out
'
test_expect_success 'an include without its folder is refused' '
    plant db/db.c "#include \"status.h\"" &&
    test_must_fail bash "$CADDIE_SRC/tests/layers.sh" tree >out &&
    test_grep "does not name its folder" out
'
test_done

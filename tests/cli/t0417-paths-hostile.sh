#!/usr/bin/env bash
# t0417 — names and paths from YAML files and options cannot make caddie write outside what it
# owns (runs/<run_id>/ and the --out folder):
#   sweep `name:` with `../`, an absolute path or a `/` is refused (it names run directories);
#   `run_dir:` in a sweep is refused (caddie chooses it); a sweep that varies nothing (no
#   params) queues (before: qsort(NULL, 0) in sweep/plan.c, a UBSan abort);
#   `workdir:` (command engine) and `code_files:` are never written by caddie: workdir is only
#   the command's cwd, code_files are only read and counted (docs/reliability.md); the
#   run's own files still go to runs/<run_id>/;
#   `export-submission --out DIR` with a symlink planted in DIR (README.md -> a file outside):
#   refused naming the link, the target untouched (before: the export overwrote the target).
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

for nm in ../evil /tmp/abs a/b; do
    test_expect_success "sweep name '$nm' is refused" '
        printf "name: \"%s\"\nengine: command\ncommand: [\"true\"]\n" "'"$nm"'" >n.yaml &&
        test_must_fail caddie sweep add n.yaml >out 2>err &&
        test_grep "n.yaml:1:7: .name. may only use letters, digits" err && ! test -e evil && ! test -e runs
    '
done
test_expect_success 'run_dir in a sweep is refused' '
    printf "name: rd\nset:\n  run_dir: /tmp/elsewhere\n  iterations: 1\n" >rd.yaml &&
    test_must_fail caddie sweep add rd.yaml >out 2>err &&
    test_grep "rd.yaml:3:3: .run_dir. is chosen by caddie" err
'
test_expect_success 'workdir outside: a sweep varying nothing queues and runs; caddie writes only runs/<id>/' '
    mkdir -p outside work && printf "name: wd\nengine: command\ncommand: [\"bash\", \"-c\", \"pwd >{run_dir}/cwd.txt && exec bash %s 1\"]\nenv:\n  FAKE_STEPS: \"2\"\n  FAKE_SLEEP: \"0\"\nworkdir: ../outside\n" "$FAKE" >work/wd.yaml &&
    (cd work && caddie sweep add wd.yaml --db ../caddie.db --runs-dir ../runs >../add.out 2>../add.err) &&
    test $(n_status queued) = 1 &&
    run_fast --cpu-slots 1 >r.out 2>&1 && test $(n_status done) = 1 &&
    d=$(q "SELECT run_dir FROM runs") && test "$(cat "$d/cwd.txt")" = "$TRASH/outside" &&
    test -z "$(ls -A outside)" && test -f "$d/log.txt" || { cat add.err r.out; run_col "$(q "SELECT run_id FROM runs")" error; exit 1; }
'
. "$CADDIE_SRC/tests/cli/reports_lib.sh"
test_expect_success 'export-submission never writes through a symlink planted in --out' '
    fixture_db &&
    for id in qk-wd-210 qk-wd-211 qk-wd-212; do
        mkdir -p runs/$id && echo "log $id" >runs/$id/log.txt || exit 1
    done &&
    echo precious >outside/victim && mkdir rec && ln -s ../outside/victim rec/README.md &&
    test_must_fail caddie export-submission c49d20428e674608 --out rec >out 2>err &&
    test_grep "rec/README.md: is a symbolic link; export-submission writes only plain files .* remove the link or choose another --out" err &&
    test "$(cat outside/victim)" = precious &&
    rm -rf rec && mkdir rec && ln -s ../outside/victim rec/train_seed42.log &&
    test_must_fail caddie export-submission c49d20428e674608 --out rec >out 2>err &&
    test_grep "rec/train_seed42.log: is a symbolic link" err && test "$(cat outside/victim)" = precious
'
test_done

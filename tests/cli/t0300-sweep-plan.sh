#!/usr/bin/env bash
# t0300 — `caddie sweep plan`: every shipped sweep in experiments/ validates and expands;
# the plan lists runs, counts and an estimate; errors are file:line:col on stderr with exit
# 1 and create nothing; usage errors exit 2.
. "$CADDIE_SRC/tests/cli/lib.sh"

test_expect_success 'every shipped sweep validates and plans (no DB is created)' '
    for f in "$CADDIE_SRC"/experiments/*.yaml; do
        caddie sweep plan "$f" --db none.db >out 2>err || { cat err >&2; exit 1; }
        test_grep "^sweep $(basename "$f" .yaml) " out || exit 1
        test_grep "^estimate: " out || exit 1
    done &&
    ! test -e none.db
'
test_expect_success 'the quick-start sweep has 4 runs: 2 qk_gain_init values x 2 seeds' '
    caddie sweep plan "$CADDIE_SRC/experiments/quickstart_cpu.yaml" --db none.db >out &&
    test $(grep -c "^queue " out) -eq 4 &&
    test_grep "^queue +quickstart_cpu-[0-9a-f]{8} +qk_gain_init=1.5 seed=1337$" out &&
    test_grep "^queue +quickstart_cpu-[0-9a-f]{8} +qk_gain_init=5.25 seed=42$" out &&
    test_grep "^4 to queue, 0 already done" out
'
test_expect_success 'dedup across sweeps: baseline seed 1337 is qk_gain_init=1.5 and vocab=1024' '
    caddie sweep add "$CADDIE_SRC/experiments/baseline.yaml" --db x.db --runs-dir xr >out &&
    caddie sweep plan "$CADDIE_SRC/experiments/qk_gain.yaml" --db x.db >out &&
    test_grep "^pending +qk_gain-[0-9a-f]{8} +qk_gain_init=1.5 seed=1337  \(= baseline-[0-9a-f]{8}\)$" out &&
    test $(grep -c "^queue " out) -eq 8 && test $(grep -c "^pending " out) -eq 2 &&
    caddie sweep plan "$CADDIE_SRC/experiments/vocab.yaml" --db x.db >out &&
    test_grep "^pending +vocab-[0-9a-f]{8} +vocab=1024 seed=1337  \(= baseline-" out
'
# The sweep examples of docs/sweeps.md's "Sweep file reference" must stay valid.
mkdir -p readme && cp -r "$CADDIE_SRC/experiments/configs" readme/configs
awk '/^## Sweep file reference/{s=1; next} /^## /{s=0} s && /^```yaml$/{f=1; n++; next}
     s && f && /^```$/{f=0; next} s && f {print > sprintf("readme/example%d.yaml", n)}' "$CADDIE_SRC/docs/sweeps.md"
test_expect_success 'the docs/sweeps.md sweep examples validate and expand as documented' '
    caddie sweep plan readme/example1.yaml --db none.db >out &&
    test $(grep -c "^queue " out) -eq 8 &&
    test_grep "^queue +vocab_lr-[0-9a-f]{8} +vocab=4096 matrix_lr=0.04 scalar_lr=0.04 seed=42$" out &&
    caddie sweep plan readme/example2.yaml --db none.db >out &&
    test $(grep -c "^queue " out) -eq 3 &&
    ! test -e none.db
'
cat >grid.yaml <<'Y'
name: g
grid:
  qk_gain_init: [1.5, 3.0, 5.25]
seeds: [1, 2]
timeout: 100
Y
test_expect_success 'the estimate packs runs on --devices N (timeout when no history)' '
    caddie sweep plan grid.yaml --devices 4 --db none.db >out &&
    test_grep "^estimate: at most 3m20s on 4 devices \\(6 runs x the 1m40s timeout" out
'
cat >typo.yaml <<'Y'
name: g
gird:
  qk_gain_init: [1.5]
Y
test_expect_success 'an unknown key is file:line:col with the closest name, exit 1, nothing created' '
    test_must_fail 1 caddie sweep add typo.yaml --db t.db 2>err >out &&
    test_grep "^typo.yaml:2:1: unknown key .gird. \\(did you mean .grid.\\?\\)$" err &&
    ! test -e t.db && ! test -e runs
'
cat >badkey.yaml <<'Y'
name: g
set:
  iterations: 10
grid:
  qk_gain_int: [1.5, 2]
Y
test_expect_success 'an unknown engine key names the closest config key' '
    test_must_fail 1 caddie sweep plan badkey.yaml 2>err &&
    test_grep "^badkey.yaml:5:3: unknown engine key .qk_gain_int. for engine caddie \\(did you mean .qk_gain_init.\\?\\)" err
'
cat >wide.yaml <<'Y'
name: wide
engine: command
command: [torchrun, "--nproc_per_node={devices}", train_gpt.py]
env: {QK_GAIN_INIT: "{qk_gain_init}"}
devices: 8
grid:
  qk_gain_init: [1.5, 2]
Y
cat >wide_caddie.yaml <<'Y'
name: wide_caddie
devices: 8
Y
test_expect_success 'the caddie engine plans devices > 1 (data parallel ranks through caddie launch)' '
    caddie sweep plan wide_caddie.yaml --devices 8 --db none.db >out 2>err &&
    test_must_fail 1 caddie sweep plan wide_caddie.yaml --devices 4 --db none.db 2>err &&
    test_grep "needs 8 devices but only 4" err
'
test_expect_success 'a run needing more devices than --devices is an error' '
    test_must_fail 1 caddie sweep plan wide.yaml --devices 4 --db none.db 2>err &&
    test_grep "needs 8 devices but only 4" err
'
test_expect_success 'usage errors exit 2' '
    test_must_fail 2 caddie sweep 2>err &&
    test_must_fail 2 caddie sweep frob x.yaml 2>err &&
    test_must_fail 2 caddie sweep plan 2>err &&
    test_must_fail 2 caddie sweep plan grid.yaml --devices 0 2>err &&
    test_must_fail 2 caddie sweep plan grid.yaml --bogus 2>err
'
test_done

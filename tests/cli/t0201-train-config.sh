#!/usr/bin/env bash
# t0201 — `caddie train` config handling: the key table, YAML < env < --set, unknown keys with
# the closest name, invalid combinations rejected before any work, usage errors.
. "$CADDIE_SRC/tests/cli/lib.sh"

cat >base.yaml <<'YAML'
num_layers: 4
model_dim: 256
qk_gain_init: 2.0
run_id: cfgtest
YAML

test_expect_success 'train --keys prints the key table with train_gpt.py defaults' '
    caddie train --keys >out &&
    test_grep "^\| \`qk_gain_init\` \| float \| \`1.5\` \|" out &&
    test_grep "^\| \`train_batch_tokens\` \| int \| \`524288\` \|" out &&
    test_grep "^\| \`val_max_tokens\` \|" out
'
test_expect_success 'the key table of docs/engine.md is exactly train --keys (docs cannot drift from the code)' '
    caddie train --keys | grep "^| \`" >keys &&
    awk "/^## Config keys/{s=1; next} /^## /{s=0} s && /^\\| \`/" "$CADDIE_SRC/docs/engine.md" >doc_keys &&
    test -s doc_keys &&
    test_cmp keys doc_keys
'
test_expect_success 'precedence: file < environment < --set' '
    QK_GAIN_INIT=5.25 MATRIX_LR=0.02 caddie train base.yaml --set matrix_lr=0.01 --print-config >out &&
    test_grep "^num_layers: 4$" out && test_grep "^model_dim: 256$" out &&
    test_grep "^qk_gain_init: 5.25$" out && test_grep "^matrix_lr: 0.01$" out &&
    test_grep "^num_heads: 8$" out
'
test_expect_success 'unknown key in the file names file:line:col and the closest key' '
    printf "num_layers: 4\nmodel_dmi: 256\n" >typo.yaml &&
    test_must_fail 1 caddie train typo.yaml 2>err &&
    test_grep "typo.yaml:2:1: unknown key .model_dmi. \(did you mean .model_dim.\?\)" err
'
test_expect_success 'unknown key in --set suggests the closest key' '
    test_must_fail 1 caddie train base.yaml --set warmup_step=3 2>err &&
    test_grep "did you mean .warmup_steps." err
'
test_expect_success 'invalid combination fails before any work (no run dir)' '
    test_must_fail 1 caddie train base.yaml --set num_kv_heads=3 2>err &&
    test_grep "num_heads=8 must be divisible by num_kv_heads=3" err &&
    ! test -e runs
'
test_expect_success 'bad value type names the environment variable' '
    SEED=abc test_must_fail 1 caddie train base.yaml 2>err &&
    test_grep "SEED" err && test_grep "integer expected" err
'
test_expect_success 'usage errors exit 2' '
    test_must_fail 2 caddie train 2>err &&
    test_must_fail 2 caddie train a.yaml b.yaml 2>err &&
    test_must_fail 2 caddie train base.yaml --set nokeyvalue 2>err &&
    test_must_fail 2 caddie eval base.yaml 2>err
'
test_done

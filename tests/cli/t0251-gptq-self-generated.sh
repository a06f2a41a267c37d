#!/usr/bin/env bash
# t0251 — gptq_calib: self_generated on the bundled sample: GPTQ calibrated on sequences the
# trained model samples itself (BOS-started, temperature 0.8, seeded) instead of train batches.
# The artifact is deterministic (two runs, the same bytes), differs from the train-calibrated
# one (the key does something), and decodes (the round trip scores it). 1 block of width 192:
# the smallest model whose MLP matrices the artifact stores per row, so GPTQ touches them.
# Not here: GPTQ itself (test_engine_quant), train calibration (t0202's config paths).
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

test_expect_success 'setup: a 1 x 192 model with int4 GPTQ on 2 calibration batches' '
    micro_config g.yaml num_layers=1 model_dim=192 num_heads=2 num_kv_heads=1 iterations=6 \
        val_loss_every=0 quant_method=gptq gptq_calib_batches=2 quant_matrix_bits=4
'
test_expect_success 'self_generated calibration is deterministic and logged' '
    caddie train g.yaml --set run_dir=s1 --set gptq_calib=self_generated >s1.out 2>/dev/null &&
    caddie train g.yaml --set run_dir=s2 --set gptq_calib=self_generated >s2.out 2>/dev/null &&
    test_grep "^gptq: calib:self_generated seqs:16 tokens:512 temperature:0.8 seed:1337 gen_time:[0-9]+ms$" s1.out &&
    test_grep "^gptq: calib_batches:2 tokens:512 matrices:2 " s1.out &&
    cmp s1/final_model.int8.ptz s2/final_model.int8.ptz &&
    test_grep "^final_int8_zlib_roundtrip_exact val_loss:[0-9]+\.[0-9]{8} val_bpb:[0-9]+\.[0-9]{8}$" s1.out &&
    test_cmp <(grep roundtrip_exact s1.out) <(grep roundtrip_exact s2.out)
'
test_expect_success 'train calibration (the default) gives another artifact and no generation' '
    caddie train g.yaml --set run_dir=t1 >t1.out 2>/dev/null &&
    ! grep -q "calib:self_generated" t1.out &&
    test_grep "^final_int8_zlib_roundtrip_exact val_loss:[0-9.]+ val_bpb:[0-9.]+$" t1.out &&
    ! cmp -s s1/final_model.int8.ptz t1/final_model.int8.ptz
'
test_expect_success 'an unknown calibration source is refused' '
    test_must_fail 1 caddie train g.yaml --set run_dir=bad --set gptq_calib=val 2>err &&
    test_grep "gptq_calib=.val.: expected train or self_generated" err
'
test_done

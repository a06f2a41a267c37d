#!/usr/bin/env bash
# t0215 — `caddie budget`: on a short sample run (1x192: its MLP matrices are stored per row),
# with mixed bits and LQER, the budget with the run's saved weights gives exactly the run's
# artifact bytes, code bytes and their sum; the budget from the artifact's ratio agrees within
# 0.1%; the default ratio table only within 40%: it was measured on a trained model (and is
# within 2% of those; docs/engine.md#artifact-budget), while 4 steps leave the zero-initialised
# projections near zero, which compress far better (measured: the table 32% high); params and
# container bytes equal the real ones; --json; exit 3 over the cap.
. "$CADDIE_SRC/tests/cli/lib.sh"

S=$CADDIE_SRC/data/sample
CFG=$CADDIE_SRC/experiments/configs/sample_cpu.yaml
small() {
    echo --set data_path=$S/fineweb10B_sp1024 --set tokenizer_path=$S/fineweb_1024_bpe.model \
        --set num_layers=1 --set model_dim=192 --set num_heads=2 --set num_kv_heads=1 \
        --set train_seq_len=64 --set train_batch_tokens=512 --set val_batch_size=2048 \
        --set val_max_tokens=1024 --set iterations=4 --set warmdown_iters=2 --set val_loss_every=0 \
        --set threads=1 --set quant_matrix_bits=6 --set quant_bits_overrides=mlp:5,tok_emb:7 \
        --set lqer_rank=2 --set artifact_compressor=zstd --set code_compress=lzma \
        --set "code_files=$CADDIE_SRC/engine/quant_ext.*"
}
num() { sed -nE "s/.*\"$1\":(-?[0-9.e+]+).*/\\1/p" "$2"; }

test_expect_success 'a short run with mixed bits and LQER' '
    caddie train "$CFG" $(small) --set run_dir=r --set save_weights=w.safetensors >out 2>err &&
    test_grep "^quant_ext: bits_overrides:mlp:5,tok_emb:7 awq_salient_frac:0 lqer_rank:2 lqer_tensors:all$" out &&
    test -f r/final_model.int8.ptz
'
test_expect_success 'budget --weights W.safetensors: the run'"'"'s artifact, code and total bytes exactly' '
    caddie budget "$CFG" $(small) --weights w.safetensors --json >b.json &&
    test "$(num exact_model_bytes b.json)" = "$(stat -c %s r/final_model.int8.ptz)" &&
    test "$(num code_bytes b.json)" = "$(num code_bytes r/result.json)" &&
    test "$(num total_bytes b.json)" = "$(num artifact_bytes r/result.json)" &&
    test_grep "\"fits\":true" b.json
'
test_expect_success 'the table: per-row+ for the LQER matrices, bits per group, the margin line' '
    caddie budget "$CFG" $(small) --weights w.safetensors >b.txt &&
    test_grep "^blocks\.0\.mlp\.fc\.weight +384x192 +73728 per-row\+ +5 " b.txt &&
    test_grep "^tok_emb\.weight +1024x192 +196608 per-row +7 " b.txt &&
    test_grep "^total: [0-9]+ bytes of 16000000: margin [0-9]+ \(fits\)$" b.txt
'
test_expect_success 'params are the model'"'"'s, the artifact ratio within 0.1%, the default table within 40%' '
    caddie budget "$CFG" $(small) --weights r/final_model.int8.ptz --json >a.json &&
    caddie budget "$CFG" $(small) --json >d.json &&
    real=$(stat -c %s r/final_model.int8.ptz) &&
    awk -v a="$(num model_bytes a.json)" -v d="$(num model_bytes d.json)" -v r="$real" "BEGIN {
        ea = (a - r) / r; ed = (d - r) / r; print \"artifact ratio\", ea, \"default table\", ed;
        exit !(ea < 0.001 && ea > -0.001 && ed < 0.40 && ed > -0.40) }" &&
    test "$(num params d.json)" = "$(num params b.json)" &&
    test "$(num container_bytes d.json)" = "$(num container_bytes b.json)" &&
    test "$(num exact_model_bytes d.json)" = -1
'
test_expect_success 'over the cap: exit status 3 and OVER' '
    test_must_fail 3 caddie budget "$CFG" $(small) --set num_layers=9 --set model_dim=512 --set num_heads=8 \
        --set num_kv_heads=4 --set mlp_mult=4 --set quant_bits_overrides= --set quant_matrix_bits=8 >o.txt &&
    test_grep "\(OVER\)$" o.txt
'
test_expect_success 'a tensor name that is no tensor of the model is an error naming the key' '
    test_must_fail caddie budget "$CFG" $(small) --set quant_bits_overrides=blocks.7.mlp.fc.weight:4 2>e &&
    test_grep "quant_bits_overrides: .blocks\.7\.mlp\.fc\.weight. is no tensor of this model" e
'
test_done

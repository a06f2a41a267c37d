#!/usr/bin/env bash
# t0202 — `caddie train` end to end on the bundled sample (`make sample`): train_gpt.py's log
# format on stdout == run_dir/log.txt, progress on stderr, metrics.jsonl, result.json only on
# success, the artifact, save_weights + `caddie eval --weights`, resume from a checkpoint.
. "$CADDIE_SRC/tests/cli/lib.sh"

S=$CADDIE_SRC/data/sample
tiny() {
    caddie train "$CADDIE_SRC/experiments/configs/sample_cpu.yaml" \
        --set data_path=$S/fineweb10B_sp1024 --set tokenizer_path=$S/fineweb_1024_bpe.model \
        --set num_layers=2 --set model_dim=32 --set num_heads=2 --set num_kv_heads=1 \
        --set train_seq_len=64 --set train_batch_tokens=512 --set val_batch_size=2048 \
        --set val_max_tokens=1024 --set iterations=6 --set warmdown_iters=2 --set val_loss_every=3 \
        --set train_log_every=1 --set threads=1 "$@"
}

test_expect_success 'the sample shards exist (make sample)' '
    test -f $S/fineweb10B_sp1024/fineweb_val_000000.bin
'
test_expect_success 'train writes the run dir; stdout is train_gpt.py-format and equals log.txt' '
    tiny --set run_dir=r1 --set run_id=r1 --set save_weights=w.safetensors >out 2>err &&
    test_cmp out r1/log.txt &&
    test_grep "^step:0/6 val_loss:[0-9.]+ val_bpb:[0-9.]+ train_time:[0-9]+ms step_avg:[0-9.]+ms$" out &&
    test_grep "^step:1/6 train_loss:[0-9.]+ train_time:[0-9]+ms step_avg:[0-9.]+ms$" out &&
    test_grep "^step:6/6 val_loss:" out &&
    test_grep "^Serialized model int8\+zlib: [0-9]+ bytes" out &&
    test_grep "^Total submission size int8\+zlib: [0-9]+ bytes$" out &&
    test_grep "^final_int8_zlib_roundtrip_exact val_loss:[0-9]+\.[0-9]{8} val_bpb:[0-9]+\.[0-9]{8}$" out &&
    test_grep "^progress step:6/6 tokens_per_s:[0-9]+ " err &&
    ! grep -q "^progress" out &&
    test -f r1/final_model.int8.ptz && test -f r1/config.yaml && test -f r1/code_files.txt &&
    test_grep "\"partial\":1" r1/result.json && test_grep "\"steps\":6" r1/result.json &&
    test_grep "^\{\"step\":1,\"name\":\"train_loss\",\"value\":[0-9.e-]+,\"wall_ms\":[0-9]+\}$" r1/metrics.jsonl
'
test_expect_success 'eval --weights reproduces the final pre-quant validation' '
    caddie eval "$CADDIE_SRC/experiments/configs/sample_cpu.yaml" --weights w.safetensors \
        --set data_path=$S/fineweb10B_sp1024 --set tokenizer_path=$S/fineweb_1024_bpe.model \
        --set num_layers=2 --set model_dim=32 --set num_heads=2 --set num_kv_heads=1 \
        --set train_seq_len=64 --set train_batch_tokens=512 --set val_batch_size=2048 \
        --set val_max_tokens=1024 --set threads=1 --roundtrip >ev &&
    want=$(sed -n "s/^step:6\/6 val_loss:\([0-9.]*\) .*/\1/p" r1/log.txt) &&
    got=$(sed -n "s/^eval val_loss:\([0-9.]*\) .*/\1/p" ev) &&
    awk -v a="$want" -v b="$got" "BEGIN { exit !(a - b < 1e-4 && b - a < 1e-4) }" &&
    rt_want=$(sed -n "s/^final_int8_zlib_roundtrip_exact //p" r1/log.txt) &&
    test_grep "^final_int8_zlib_roundtrip_exact $rt_want$" ev
'
test_expect_success 'a failing run leaves no result.json and exits 1' '
    test_must_fail 1 tiny --set run_dir=r2 --set vocab_size=512 2>err &&
    test_grep "does not match tokenizer vocab_size=1024" err && ! test -e r2/result.json
'
test_expect_success 'resume continues the same curve from checkpoint.bin' '
    tiny --set run_dir=r3 --set checkpoint_every=3 >a.out 2>/dev/null &&
    test -f r3/checkpoint.bin &&
    tiny --set run_dir=r3 --set resume=1 >b.out 2>/dev/null &&
    test_grep "^resume:step:3/6" b.out &&
    grep "^step:[4-6]/6 train_loss" a.out | sed "s/ train_time.*//" >a.loss &&
    grep "^step:[4-6]/6 train_loss" b.out | sed "s/ train_time.*//" >b.loss &&
    test_cmp a.loss b.loss && test -s a.loss
'
test_done

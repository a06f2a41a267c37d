#!/usr/bin/env bash
# t0102 — caddie data stats: per-split counts and the official LUT byte totals equal the
# Python reference on the sample (tests/fixtures/data/sample_export.txt); the val eval trim;
# corrupt shards and wrong tokenizers are one-line errors naming the file.
. "$CADDIE_SRC/tests/cli/lib.sh"

FIX=$CADDIE_SRC/tests/fixtures/data
MODEL=$CADDIE_SRC/data/sample/fineweb_1024_bpe.model
SAMPLE=$CADDIE_SRC/data/sample/fineweb_sample.jsonl
fixture() { awk -v k="$1" '$1 == k { print $2 }' "$FIX/sample_export.txt"; }

caddie data prepare --tokenizer "$MODEL" --input "$SAMPLE" --val-docs 60 --out d >/dev/null 2>&1

test_expect_success 'per split: shards, tokens, documents, LUT bytes as the Python rule' '
    caddie data stats d --tokenizer "$MODEL" >out &&
    awk "\$1==\"val\" && NF==6 {print \$2, \$3, \$4, \$5}" out >actual &&
    echo "1 $(fixture tokens_val) $(fixture docs_val) $(fixture val_lut_bytes_all)" >expect &&
    test_cmp expect actual &&
    awk "\$1==\"train\" {print \$2, \$3, \$4, \$5}" out >actual &&
    echo "1 $(fixture tokens_train) $(fixture docs_train) $(fixture train_lut_bytes_all)" >expect &&
    test_cmp expect actual
'
test_expect_success 'val eval window at seq_len 1024 as train_gpt.py trims it' '
    n=$(fixture val_eval_tokens_1024) &&
    test_grep "^val eval at seq_len 1024: $n tokens kept, $((n-1)) targets, $(fixture val_eval_lut_bytes_1024) lut_bytes" out
'
test_expect_success '--seq-len changes the trim; too long is reported' '
    caddie data stats d --tokenizer "$MODEL" --seq-len 100000 >out2 &&
    test_grep "too short" out2 &&
    caddie data stats d --tokenizer "$MODEL" --seq-len 1 >out3 &&
    test_grep "^val eval at seq_len 1: $(fixture tokens_val) tokens kept, .* $(fixture val_lut_bytes_all) lut_bytes" out3
'
test_expect_success 'stats over many small shards equals stats over one' '
    caddie data prepare --tokenizer "$MODEL" --input "$SAMPLE" --val-docs 60 --shard-tokens 7777 --out many >/dev/null 2>&1 &&
    caddie data stats many --tokenizer "$MODEL" | awk "/^(val|train) / && NF==6 {print \$1, \$3, \$4, \$5}" >a &&
    awk "/^(val|train) / && NF==6 {print \$1, \$3, \$4, \$5}" out >b && test_cmp b a
'
test_expect_success 'a truncated shard is a one-line error naming it' '
    mkdir -p bad && cp d/*.bin bad/ && truncate -s 2000 bad/fineweb_train_000000.bin &&
    test_must_fail 1 caddie data stats bad --tokenizer "$MODEL" 2>err &&
    test_grep "bad/fineweb_train_000000.bin: shard size mismatch" err && test "$(wc -l <err)" = 1
'
test_expect_success 'a bad magic is a one-line error naming the shard' '
    mkdir -p magic && cp d/*.bin magic/ &&
    printf "\x00\x00\x00\x00" | dd of=magic/fineweb_val_000000.bin conv=notrunc 2>/dev/null &&
    test_must_fail 1 caddie data stats magic --tokenizer "$MODEL" 2>err &&
    test_grep "magic/fineweb_val_000000.bin: bad shard magic 0 \(expected 20240520\)" err
'
test_expect_success 'ids beyond the tokenizer vocab are an error naming the shard' '
    caddie data prepare --tokenizer "$FIX/fineweb_8192_bpe.model" --input "$SAMPLE" --val-docs 60 --out d8 >/dev/null 2>&1 &&
    test_must_fail 1 caddie data stats d8 --tokenizer "$MODEL" 2>err &&
    test_grep "d8/fineweb_val_000000.bin: token [0-9]+ has id [0-9]+ >= vocab size 1024" err
'
test_expect_success 'no shards, or not a directory, is an error' '
    mkdir -p empty &&
    test_must_fail 1 caddie data stats empty --tokenizer "$MODEL" 2>err && test_grep "empty: no fineweb_val" err &&
    test_must_fail 1 caddie data stats nodir --tokenizer "$MODEL" 2>err && test_grep "nodir: not a directory" err &&
    test_must_fail 2 caddie data stats d 2>err && test_grep "needs --tokenizer" err &&
    test_must_fail 2 caddie data stats --tokenizer "$MODEL" 2>err
'
test_done

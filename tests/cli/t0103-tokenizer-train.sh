#!/usr/bin/env bash
# t0103 — caddie tokenizer train: with the exporter's options it reproduces python
# sentencepiece's model (the .vocab of a 512 model trained on the sample, committed by
# tests/scripts/gen_tokenizer_fixtures.py), the model works with data prepare, errors.
. "$CADDIE_SRC/tests/cli/lib.sh"

FIX=$CADDIE_SRC/tests/fixtures/data
SAMPLE=$CADDIE_SRC/data/sample/fineweb_sample.jsonl

test_expect_success 'a 512 model equals the one python sentencepiece trains' '
    caddie tokenizer train --vocab 512 --input "$SAMPLE" --out tok512 >out 2>err &&
    test_grep "wrote tok512.model and tok512.vocab: 512 pieces" out &&
    test_cmp "$FIX/tok_train_512.vocab" tok512.vocab
'
test_expect_success 'the trained model prepares data and reports stats' '
    caddie data prepare --tokenizer tok512.model --input "$SAMPLE" --val-docs 10 --out d >/dev/null 2>&1 &&
    caddie data stats d --tokenizer tok512.model >s &&
    test_grep "^val +1 " s && test_grep "vocab 512" s
'
test_expect_success 'a bad input line stops training with file:line' '
    { head -n 50 "$SAMPLE"; echo "{\"text\": 3}"; } >bad.jsonl &&
    test_must_fail 1 caddie tokenizer train --vocab 512 --input bad.jsonl --out badtok 2>err &&
    test_grep "bad.jsonl:51:10: invalid JSON: \"text\" is not a string" err &&
    ! test -e badtok.model
'
test_expect_success 'errors: missing options, bad vocab, missing input, missing directory' '
    test_must_fail 2 caddie tokenizer train --input "$SAMPLE" --out x 2>err && test_grep "needs --vocab" err &&
    test_must_fail 2 caddie tokenizer train --vocab 0 --input "$SAMPLE" --out x 2>err &&
    test_must_fail 2 caddie tokenizer train --vocab 70000 --input "$SAMPLE" --out x 2>err &&
    test_must_fail 1 caddie tokenizer train --vocab 100 --input "$SAMPLE" --out x 2>err &&
    test_grep "vocab size 100 out of range" err &&
    test_must_fail 1 caddie tokenizer train --vocab 512 --input nope.txt --out x 2>err &&
    test_grep "nope.txt: cannot open input" err &&
    test_must_fail 1 caddie tokenizer train --vocab 512 --input "$SAMPLE" --out nodir/x 2>err &&
    test_grep "nodir: output directory does not exist" err &&
    test_must_fail 2 caddie tokenizer 2>err && test_must_fail 2 caddie tokenizer fit 2>err
'
test_done

#!/usr/bin/env bash
# t0101 — caddie data prepare: the bundled sample gives byte-identical shards to the
# challenge exporter (sha256 from a Python replica, tests/fixtures/data/sample_export.txt),
# deterministic output, the plain-text document rule, several inputs, stale shards removed,
# and every bad input is a one-line error naming the file.
. "$CADDIE_SRC/tests/cli/lib.sh"

FIX=$CADDIE_SRC/tests/fixtures/data
MODEL=$CADDIE_SRC/data/sample/fineweb_1024_bpe.model
SAMPLE=$CADDIE_SRC/data/sample/fineweb_sample.jsonl

# expected sha256 lines for a fixture label, as "sha256  name"
expected_sums() { awk -v l="$1" '$1 == l { print $3 "  " $2 }' "$FIX/sample_export.txt"; }
fixture() { awk -v k="$1" '$1 == k { print $2 }' "$FIX/sample_export.txt"; }

test_expect_success 'sample shards are byte-identical to the exporter replica' '
    caddie data prepare --tokenizer "$MODEL" --input "$SAMPLE" --val-docs 60 --out out >summary 2>err &&
    (cd out && sha256sum fineweb_*.bin) >actual &&
    expected_sums default >expect &&
    test_cmp expect actual
'
test_expect_success 'summary: documents, tokens and UTF-8 bytes per split' '
    awk "\$1==\"val\" {print \$2, \$3, \$4, \$5}" summary >actual &&
    echo "1 $(fixture docs_val) $(fixture tokens_val) $(fixture bytes_val)" >expect &&
    test_cmp expect actual &&
    awk "\$1==\"train\" {print \$2, \$3, \$4, \$5}" summary >actual &&
    echo "1 $(fixture docs_train) $(fixture tokens_train) $(fixture bytes_train)" >expect &&
    test_cmp expect actual &&
    test_grep "^total +2 +300 " summary &&
    test_grep "tokens/s" err
'
test_expect_success 'small --shard-tokens splits like the exporter (sha256 of all 9 shards)' '
    caddie data prepare --tokenizer "$MODEL" --input "$SAMPLE" --val-docs 60 \
        --shard-tokens 50000 --out small >/dev/null 2>&1 &&
    (cd small && sha256sum fineweb_*.bin) >actual &&
    expected_sums small >expect &&
    test_cmp expect actual
'
test_expect_success 'output is deterministic and leaves no temporary files' '
    caddie data prepare --tokenizer "$MODEL" --input "$SAMPLE" --val-docs 60 --out again >/dev/null 2>&1 &&
    for f in out/*.bin; do cmp "$f" "again/$(basename "$f")" || exit 1; done &&
    test "$(ls again | wc -l)" = 2
'
test_expect_success 'stale shards in the output directory are removed first' '
    mkdir -p stale && cp out/fineweb_val_000000.bin stale/fineweb_train_000099.bin &&
    caddie data prepare --tokenizer "$MODEL" --input "$SAMPLE" --val-docs 60 --out stale >/dev/null 2>&1 &&
    ! test -e stale/fineweb_train_000099.bin && test -e stale/fineweb_train_000000.bin
'
test_expect_success 'plain text: documents are separated by blank lines' '
    printf "First doc, line one\nline two\n\n\n   \nSecond doc\r\n\nThird  doc" >docs.txt &&
    printf "%s\n" "{\"text\": \"First doc, line one\\nline two\"}" "{\"text\": \"Second doc\"}" \
        "{\"text\": \"Third  doc\"}" >docs.jsonl &&
    caddie data prepare --tokenizer "$MODEL" --input docs.txt --val-docs 1 --out txt >s1 2>/dev/null &&
    caddie data prepare --tokenizer "$MODEL" --input docs.jsonl --val-docs 1 --out js >s2 2>/dev/null &&
    test_grep "^total +2 +3 " s1 &&
    cmp txt/fineweb_val_000000.bin js/fineweb_val_000000.bin &&
    cmp txt/fineweb_train_000000.bin js/fineweb_train_000000.bin
'
test_expect_success 'several inputs are read in order, as one document stream' '
    head -n 100 "$SAMPLE" >a.jsonl && tail -n +101 "$SAMPLE" >b.jsonl &&
    caddie data prepare --tokenizer "$MODEL" --val-docs 60 --out two --input a.jsonl b.jsonl >/dev/null 2>&1 &&
    cmp two/fineweb_val_000000.bin out/fineweb_val_000000.bin &&
    cmp two/fineweb_train_000000.bin out/fineweb_train_000000.bin
'
test_expect_success '--val-docs 0 writes only train shards' '
    caddie data prepare --tokenizer "$MODEL" --input docs.jsonl --val-docs 0 --out noval >s 2>/dev/null &&
    ! test -e noval/fineweb_val_000000.bin && test -e noval/fineweb_train_000000.bin
'
test_expect_success 'usage errors exit 2' '
    test_must_fail 2 caddie data prepare --input "$SAMPLE" --out x 2>err && test_grep "needs --tokenizer" err &&
    test_must_fail 2 caddie data prepare --tokenizer "$MODEL" --input "$SAMPLE" 2>err && test_grep "needs --out" err &&
    test_must_fail 2 caddie data prepare --tokenizer "$MODEL" --out x 2>err && test_grep "needs --input" err &&
    test_must_fail 2 caddie data prepare --tokenizer "$MODEL" --input "$SAMPLE" --out x --shard-tokens 0 2>err &&
    test_must_fail 2 caddie data prepare --tokenizer "$MODEL" --input "$SAMPLE" --out x --val-docs -3 2>err &&
    test_must_fail 2 caddie data prepare --bogus 2>err && test_grep "unknown option" err &&
    test_must_fail 2 caddie data frobnicate 2>err && test_grep "unknown subcommand" err &&
    test_must_fail 2 caddie data 2>err
'
test_expect_success 'a missing input file is named, before any work' '
    test_must_fail 1 caddie data prepare --tokenizer "$MODEL" --input "$SAMPLE" --input nope.jsonl --out m 2>err &&
    test_grep "nope.jsonl: cannot open input" err && test "$(wc -l <err)" = 1 &&
    ! ls m/*.bin 2>/dev/null &&
    test_must_fail 1 caddie data prepare --tokenizer "$MODEL" --input nope.jsonl --out out 2>err &&
    test -e out/fineweb_val_000000.bin
'
test_expect_success 'a bad JSON line is named file:line:col and no shards are left' '
    { head -n 3 "$SAMPLE"; echo "{\"text\": \"broken"; } >bad.jsonl &&
    test_must_fail 1 caddie data prepare --tokenizer "$MODEL" --input bad.jsonl --val-docs 1 --out b 2>err &&
    test_grep "bad.jsonl:4:10: invalid JSON: unterminated string" err && test "$(wc -l <err)" = 1 &&
    ! ls b/*.bin 2>/dev/null
'
test_expect_success 'more --val-docs than documents is an error' '
    test_must_fail 1 caddie data prepare --tokenizer "$MODEL" --input docs.jsonl --val-docs 5 --out v 2>err &&
    test_grep "val-docs 5 but the input has only 3 documents" err &&
    ! ls v/*.bin 2>/dev/null
'
test_expect_success 'an input without documents is an error' '
    printf "\n  \n" >blank.txt &&
    test_must_fail 1 caddie data prepare --tokenizer "$MODEL" --input blank.txt --val-docs 0 --out nodocs 2>err &&
    test_grep "blank.txt: no documents in the input" err
'
test_expect_success 'a bad tokenizer path is named' '
    test_must_fail 1 caddie data prepare --tokenizer nope.model --input docs.jsonl --out t 2>err &&
    test_grep "nope.model" err && test "$(wc -l <err)" = 1
'
test_done

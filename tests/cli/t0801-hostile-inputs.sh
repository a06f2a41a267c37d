#!/usr/bin/env bash
# t0801 — hostile inputs through the real commands: a FIFO or a device where a YAML config, a
# sweep's base: file or a text corpus is expected is refused at once with "not a regular file"
# naming the path (each would block or read forever: `timeout 10` turns a hang into a
# failure), and a run id that is not a directory name is refused before anything is written.
. "$CADDIE_SRC/tests/cli/lib.sh"

mkfifo fifo.yaml fifo.jsonl

test_expect_success 'train with a FIFO as the config file fails fast, naming it' '
    test_must_fail 1 timeout 10 "$CADDIE" train fifo.yaml --print-config 2>err &&
    test_grep "fifo.yaml: not a regular file \(a FIFO\)" err
'
test_expect_success 'a sweep whose base: is /dev/zero fails fast, naming it' '
    printf "name: z\nengine: caddie\nbase: /dev/zero\nseeds: [1]\n" >z.yaml &&
    test_must_fail 1 timeout 10 "$CADDIE" sweep plan z.yaml --db none.db 2>err &&
    test_grep "/dev/zero: not a regular file \(a character device\)" err &&
    ! test -e none.db
'
test_expect_success 'a sweep whose base: is a FIFO fails fast too' '
    printf "name: f\nengine: caddie\nbase: fifo.yaml\nseeds: [1]\n" >f.yaml &&
    test_must_fail 1 timeout 10 "$CADDIE" sweep plan f.yaml --db none.db 2>err &&
    test_grep "fifo.yaml: not a regular file" err
'
test_expect_success 'data prepare with a FIFO as an input fails fast, naming it' '
    test_must_fail 1 timeout 10 "$CADDIE" data prepare --tokenizer "$CADDIE_SRC/data/sample/fineweb_1024_bpe.model" \
        --input fifo.jsonl --out out 2>err &&
    test_grep "fifo.jsonl: not a regular file \(a FIFO\)" err &&
    ! test -e out/fineweb_train_000000.bin
'
test_expect_success 'run_id=.. is refused before any file is written' '
    : >empty.yaml &&
    test_must_fail 1 "$CADDIE" train empty.yaml --set run_id=.. 2>err &&
    test_grep "run_id=.\.\..: not a directory name" err &&
    ! test -e config.yaml && ! test -e log.txt && ! test -e runs
'

test_done

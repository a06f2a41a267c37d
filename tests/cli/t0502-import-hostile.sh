#!/usr/bin/env bash
# t0502-import-hostile.sh — import-log / import-record against hostile inputs: symbolic links
# that leave a record folder (reported, not followed), a directory link loop and hard links
# (each distinct log imported once), a FIFO or device where a log, submission.json or
# README.md is expected (refused at once, naming the path; `timeout 10` turns a hang into a
# failure), an oversized submission.json, and a log much bigger than any one allocation the
# import may make (streamed, never held whole).
. "$(dirname "$0")/lib.sh"

L=$CADDIE_SRC/tests/fixtures/logs/track_10min_16mb/2026-03-18_LowerLR/train.log
q() { sqlite3 -batch -noheader "$1" "$2"; }
P=$(pwd -P) # what realpath makes of the scratch dir, as the messages print it

test_expect_success 'import-record: links leaving the folder are reported, not followed' '
    mkdir -p outside/sub rec1 &&
    cp "$L" rec1/train_seed1.log && cp "$L" outside/secret.log && cp "$L" outside/sub/other.log &&
    ln -s ../outside/secret.log rec1/train_seed2.log &&
    ln -s "$PWD/outside/sub" rec1/more &&
    test_must_fail 1 timeout 60 "$CADDIE" import-record --db l.db --runs-dir runs rec1 >out 2>err &&
    test_grep "rec1/train_seed2.log: symbolic link to $P/outside/secret.log, outside the record folder: not followed" err &&
    test_grep "rec1/more: symbolic link to $P/outside/sub, outside the record folder: not followed" err &&
    test_grep "1 runs imported, 2 failed" err &&
    test "$(q l.db "SELECT group_concat(run_id) FROM runs")" = rec1-train_seed1 &&
    test "$(q l.db "SELECT count(*) FROM params WHERE text LIKE '\''%outside%'\''")" = 0
'

test_expect_success 'import-record: a record of only outside links has no logs, and says why' '
    mkdir -p rec1b && ln -s ../outside/secret.log rec1b/train.log &&
    test_must_fail 1 timeout 60 "$CADDIE" import-record --db l.db --runs-dir runs rec1b 2>err &&
    test_grep "no training logs .*1 symbolic link leaving the folder not followed, e.g. train.log -> $P/outside/secret.log" err
'

test_expect_success 'import-record: a directory link loop and duplicate links import each log once' '
    mkdir -p rec2/logs && cp "$L" rec2/logs/train_seed7.log &&
    ln -s .. rec2/logs/up &&
    ln -s ../logs rec2/logs/again &&
    ln -s train_seed7.log rec2/logs/alias.log &&
    ln -s logs/train_seed7.log rec2/a_first.log &&
    timeout 60 "$CADDIE" import-record --db loop.db --runs-dir runs rec2 >out 2>err &&
    test_grep "1 runs imported, 0 failed" err &&
    test "$(q loop.db "SELECT run_id FROM runs")" = rec2-logs_train_seed7 &&
    test "$(q loop.db "SELECT n FROM sweep_groups WHERE sweep='\''rec2'\''")" = 1
'

test_expect_success 'import-record: hard links to one log are one run' '
    mkdir -p rec3 && cp "$L" rec3/train_seed3.log && ln rec3/train_seed3.log rec3/copy_seed3.log &&
    timeout 60 "$CADDIE" import-record --db hard.db --runs-dir runs rec3 >out 2>err &&
    test "$(q hard.db "SELECT count(*) FROM runs")" = 1
'

test_expect_success 'import-record: a link inside the folder is followed' '
    mkdir -p rec4/real && cp "$L" rec4/real/train_seed5.log && ln -s real rec4/linked &&
    mkdir -p rec4b && cp "$L" rec4b/store.dat && ln -s store.dat rec4b/train_seed6.log &&
    timeout 60 "$CADDIE" import-record --db in.db --runs-dir runs rec4 rec4b >out 2>err &&
    test "$(q in.db "SELECT group_concat(run_id, '\'' '\'') FROM (SELECT run_id FROM runs ORDER BY run_id)")" = "rec4-real_train_seed5 rec4b-train_seed6"
'

test_expect_success 'import-log: a printed number that overflows to Inf stays text, never Inf in JSON' '
    printf "matrix_lr:1e999\nscalar_lr:0.04\nstep:1/10 train_loss:3.0 train_time:10ms step_avg:10ms\n" >inf_lr.log &&
    printf "final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2\n" >>inf_lr.log &&
    "$CADDIE" import-log --db inf.db --runs-dir runs inf_lr.log >/dev/null &&
    test "$(q inf.db "SELECT quote(num) || '\''|'\'' || text FROM params WHERE key='\''matrix_lr'\''")" = "NULL|1e999" &&
    test "$(q inf.db "SELECT num FROM params WHERE key='\''scalar_lr'\''")" = 0.04 &&
    test_grep "^matrix_lr: \"1e999\"$" runs/imported/*-inf_lr/config.yaml &&
    ! grep -E "[:,\[](-?Inf|NaN|-?1e999)[],}]" runs/imported/*-inf_lr/run.json
'

mkfifo fifo.log

test_expect_success 'import-log: a FIFO is refused at once, naming it' '
    test_must_fail 1 timeout 10 "$CADDIE" import-log --db f.db --runs-dir runs fifo.log 2>err &&
    test_grep "fifo.log: not a regular file \(a FIFO\)" err &&
    test "$(q f.db "SELECT count(*) FROM runs")" = 0
'

test_expect_success 'import-log: a device is refused at once, naming it' '
    test_must_fail 1 timeout 10 "$CADDIE" import-log --db f.db --runs-dir runs /dev/zero 2>err &&
    test_grep "/dev/zero: not a regular file \(a character device\)" err
'

test_expect_success 'import-record: a FIFO submission.json is refused at once, naming it' '
    mkdir -p recf && cp "$L" recf/train.log && mkfifo recf/submission.json &&
    test_must_fail 1 timeout 10 "$CADDIE" import-record --db f.db --runs-dir runs recf 2>err &&
    test_grep "recf/submission.json: not a regular file \(a FIFO\)" err &&
    test "$(q f.db "SELECT count(*) FROM runs")" = 0
'

test_expect_success 'import-record: a FIFO README.md is refused at once, naming it' '
    mkdir -p recr && cp "$L" recr/train.log && mkfifo recr/README.md &&
    test_must_fail 1 timeout 10 "$CADDIE" import-record --db f.db --runs-dir runs recr 2>err &&
    test_grep "recr/README.md: not a regular file \(a FIFO\)" err &&
    test "$(q f.db "SELECT count(*) FROM runs")" = 0
'

test_expect_success 'import-record: a submission.json over 1 MiB is refused, naming it' '
    mkdir -p recb && cp "$L" recb/train.log && truncate -s 1048577 recb/submission.json &&
    test_must_fail 1 timeout 10 "$CADDIE" import-record --db f.db --runs-dir runs recb 2>err &&
    test_grep "recb/submission.json: 1048577 bytes, more than the 1048576-byte limit" err
'

test_expect_success 'import-record: a README link out of the folder is not followed' '
    mkdir -p recl && cp "$L" recl/train.log && printf "# secret\n" >outside/README.md &&
    ln -s ../outside/README.md recl/README.md &&
    test_must_fail 1 timeout 10 "$CADDIE" import-record --db f.db --runs-dir runs recl 2>err &&
    test_grep "recl/README.md: symbolic link leaving the record folder: not followed" err
'

# A 40 MB log: the fixture with 40 MB of long warning lines after its hyperparameters. Under
# AddressSanitizer no single allocation may pass 16 MB (max_allocation_size_mb; ulimit -v
# cannot be used: ASan reserves terabytes of address space for its shadow), so holding the
# log whole (or any buffer that grows with it) fails the import with "out of memory".
if grep -q __asan_init "$CADDIE" 2>/dev/null; then
    test_expect_success 'import-log: a 40 MB log streams through 16 MB allocations' '
        n=$(grep -n -m1 "^step:" "$L" | cut -d: -f1) &&
        head -n $((n - 1)) "$L" >big.log &&
        noise=$(printf "[rank0]:W NCCL WARN transient network hiccup, retrying collective; %.0s" $(seq 64)) &&
        { yes "$noise" | head -c 40000000; echo; } >>big.log &&
        tail -n +"$n" "$L" >>big.log &&
        test "$(stat -c %s big.log)" -gt 40000000 &&
        ASAN_OPTIONS="${ASAN_OPTIONS:-}:max_allocation_size_mb=16:allocator_may_return_null=1" \
            timeout 300 "$CADDIE" import-log --db big.db --runs-dir runs big.log >out 2>err &&
        test_grep "^cli\.[^	]*-big	done	1.22296644	" out &&
        cmp big.log runs/imported/*-big/log.txt &&
        test "$(q big.db "SELECT count(*) FROM curves WHERE name='\''train_loss'\''")" = \
             "$(grep -cE "^step:[0-9]+/[0-9]+ train_loss:" "$L")"
    '
    rm -f big.log
else
    test_skip 'import-log: a 40 MB log streams through 16 MB allocations' 'needs an AddressSanitizer build (make test)'
fi

test_done

#!/usr/bin/env bash
# t0511-import-memory.sh — importing is streaming: peak memory (max RSS, GNU time's %M) does
# not grow with the input. Against the peak of importing the small fixture log:
#   - import-log of a 50 MB log of 1M lines stays within 16 MiB of it (read 64 KiB at a time,
#     one line held at most);
#   - import-log of a log holding one 100 MB line stays within 16 MiB too, imports the rest and
#     says which line it did not parse (a line over 1 MiB is refused, not swallowed);
#   - import-run of a metrics.jsonl of 1M lines (1M curve points) stays within the SQLite page
#     cache (64 MiB, db/db.c) plus 16 MiB.
# Holding any of these files whole would add its size (50 to 100 MB) and fail. Under ASan the
# quarantine of freed memory (256 MB by default) would count as growth: it is off here.
# The full-size figures (500 MB log, 10M-line metrics.jsonl) are in docs/reliability.md.
. "$(dirname "$0")/lib.sh"

L=$CADDIE_SRC/tests/fixtures/logs/track_10min_16mb/2026-03-18_LowerLR/train.log
q() { sqlite3 -batch -noheader "$1" "$2"; }
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=0"
MiB=1024 # KB, GNU time's unit

# peak FILE cmd... — run cmd, its max RSS (KB) into FILE; cmd's stdout/stderr to out/err
peak() {
    local f=$1; shift
    /usr/bin/time -f %M -o "$f" "$@" >out 2>err
}
# within NAME BASE KB — the peak in NAME.rss is at most KB above the one in BASE.rss; the
# figures also go to NAME.msg (printed as an info line)
within() {
    local got base lim
    got=$(tail -n 1 "$1.rss"); base=$(tail -n 1 "$2.rss"); lim=$((base + $3))
    echo "$1: peak RSS $((got / MiB)) MiB, small import $((base / MiB)) MiB, limit $((lim / MiB)) MiB" | tee "$1.msg"
    test "$got" -le "$lim"
}
show() { [ -f "$1.msg" ] && test_info "$(cat "$1.msg")"; }

if ! [ -x /usr/bin/time ]; then
    test_skip 'import memory stays bounded' 'GNU time (/usr/bin/time) not installed: make test-deps installs it'
    test_done; exit
fi

n=$(grep -n -m1 "^step:" "$L" | cut -d: -f1)
n_loss=$(grep -cE "^step:[0-9]+/[0-9]+ train_loss:" "$L")

test_expect_success 'the small fixture log imports (the baseline peak)' '
    peak small.rss "$CADDIE" import-log --db small.db --runs-dir runs "$L" &&
    test "$(q small.db "SELECT count(*) FROM curves WHERE name='\''train_loss'\''")" = "$n_loss"
'

test_expect_success 'import-log of a 50 MB, 1M-line log: peak within 16 MiB of the small one' '
    { head -n $((n - 1)) "$L" &&
      awk "BEGIN { for (i = 0; i < 1000000; i++) printf \"[rank0]:W NCCL WARN transient network hiccup %07d, retrying\\n\", i }" &&
      tail -n +"$n" "$L"; } >big.log &&
    test "$(stat -c %s big.log)" -gt 50000000 &&
    peak big.rss "$CADDIE" import-log --db big.db --runs-dir runs big.log &&
    test_grep "^cli\.[^	]*-big	done	1.22296644	" out &&
    cmp big.log runs/imported/*-big/log.txt &&
    test "$(q big.db "SELECT count(*) FROM curves WHERE name='\''train_loss'\''")" = "$n_loss" &&
    within big small $((16 * MiB))
'
show big
rm -rf big.log runs/imported/*-big

test_expect_success 'import-log of a log with one 100 MB line: refused by line, the rest imported, peak bounded' '
    { head -n $((n - 1)) "$L" && head -c 100000000 /dev/zero | tr "\\0" x && echo && tail -n +"$n" "$L"; } >line.log &&
    peak line.rss "$CADDIE" import-log --db line.db --runs-dir runs line.log &&
    test_grep "line.log:$n: longer than 1 MiB: not parsed \(kept in log.txt\)" err &&
    test_grep "^cli\.[^	]*-line	done	1.22296644	" out &&
    test "$(q line.db "SELECT count(*) FROM curves WHERE name='\''train_loss'\''")" = "$n_loss" &&
    within line small $((16 * MiB))
'
show line
rm -rf line.log runs/imported/*-line

test_expect_success 'import-run of a 1M-line metrics.jsonl: peak within the page cache + 16 MiB' '
    mkdir -p m0 m1 &&
    printf "run_id: m0\n" >m0/config.yaml && printf "run_id: m1\n" >m1/config.yaml &&
    awk "BEGIN { for (i = 0; i < 1000; i++) printf \"{\\\"step\\\":%d,\\\"name\\\":\\\"train_loss\\\",\\\"value\\\":%.6f,\\\"wall_ms\\\":%d}\\n\", i, 3 + i / 1e6, i }" >m0/metrics.jsonl &&
    awk "BEGIN { for (i = 0; i < 1000000; i++) printf \"{\\\"step\\\":%d,\\\"name\\\":\\\"train_loss\\\",\\\"value\\\":%.6f,\\\"wall_ms\\\":%d}\\n\", i, 3 + i / 1e6, i }" >m1/metrics.jsonl &&
    test "$(stat -c %s m1/metrics.jsonl)" -gt 50000000 &&
    peak m0.rss "$CADDIE" import-run --db m0.db m0 &&
    peak m1.rss "$CADDIE" import-run --db m1.db m1 &&
    test "$(q m1.db "SELECT count(*) FROM metrics")" = 1000000 &&
    within m1 m0 $(((64 + 16) * MiB))
'
show m1
rm -rf m0 m1

test_done

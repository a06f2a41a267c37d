#!/usr/bin/env bash
# bench.sh — the `make bench` driver: a sequence of independent sections, each building what it
# needs with release flags and printing figures (never pass/fail; a failing section is reported
# and the next one still runs). Add a section as a function + one line in the list at the end.
# Run from anywhere; assumes `make all` ran (the Makefile's bench target does that).
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src" || exit 1
threads=${BENCH_THREADS:-$(nproc)}
CC=${CC:-gcc}
REL="-std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -iquote ."
# the release library `make all` just built (build/rel, or build/rel-cuda when nvcc was found)
LIBCADDIE=$(ls -t build/rel*/libcaddie.a 2>/dev/null | head -n 1)
LIBS="-lsentencepiece -lsentencepiece_train -lsqlite3 -lyaml -lopenblas -lzstd -lz -lstdc++ -lpthread -lm"

section() { printf '\n== %s\n' "$1"; }

# ---- engine: CPU train step vs sgemm peak ----------------------------------------------
bench_engine_train() {
    section "engine: CPU train step (fwd+bwd+Muon/Adam), $threads threads"
    mkdir -p build/bench
    $CC $REL tests/bench_train.c "$LIBCADDIE" $LIBS -o build/bench/bench_train || return 1
    OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=1 ./build/bench/bench_train "$threads"
    echo "reference: PyTorch 1.13 fp32 on this 2-core machine (the issue's figures): (a) ~3,400 tok/s, (b) ~400 tok/s;"
    echo "  BENCH_TORCH=1 make bench measures torch on this machine too, fp32 and bf16 autocast"
}

# ---- PyTorch on this machine: the same train steps in torch 1.13, fp32 and bf16 autocast ----
# ~4 minutes on 2 cores, so only with BENCH_TORCH=1 (needs Debian's python3-torch).
bench_torch_train() {
    section "PyTorch reference train step (tests/scripts/torch_bench.py), $threads threads"
    if [ "${BENCH_TORCH:-0}" != 1 ]; then echo "skipped: set BENCH_TORCH=1 to measure (about 4 minutes)"; return 0; fi
    /usr/bin/python3 -c "import torch" 2>/dev/null || { echo "skipped: /usr/bin/python3 has no torch (apt-get install python3-torch)"; return 0; }
    /usr/bin/python3 tests/scripts/torch_bench.py "$threads" a b
}

# ---- results database: metric ingest rate, curve / run_summary query latency ------------
# Issue 5 targets: >= 200,000 metric rows/s; < 50 ms for one run's curve and for the
# run_summary of one sweep, on 2,000 runs x 20,000 steps (40M rows, ~2.3 GB). The full size
# takes minutes on a small machine: BENCH_DB_FULL=0 runs only the 2,000 x 2,000 size.
bench_db() {
    section "results database: ingest and queries (sqlite $(sqlite3 --version | cut -d' ' -f1))"
    mkdir -p build/bench
    $CC $REL tests/bench_db.c "$LIBCADDIE" $LIBS -o build/bench/bench_db || return 1
    local db=${BENCH_DB_DIR:-build/bench}/bench.db
    echo "-- 2,000 runs x 2,000 steps"
    ./build/bench/bench_db 2000 2000 "$db" 10 || return 1
    if [ "${BENCH_DB_FULL:-1}" != 0 ]; then
        echo "-- 2,000 runs x 20,000 steps"
        ./build/bench/bench_db 2000 20000 "$db" 10 || return 1
    fi
    rm -f "$db" "$db-wal" "$db-shm"
}

# ---- import-log: a 1M-row train_gpt.py-style log vs Python's sqlite3 inserting the same rows --
# Issue target: caddie import-log (parse, copy the log, write metrics.jsonl, insert, hash the
# artifacts) at least as fast as Python's executemany of the rows alone (built before its clock
# starts). Both are timed back to back, in wall time and in CPU seconds: on a shared machine
# the wall figures move with the other tenants' load, the CPU ones much less. BENCH_IMPORT_ROWS
# changes the size.
bench_import() {
    local n=${BENCH_IMPORT_ROWS:-1000000} d=build/bench/import
    section "import-log: $n metric rows vs /usr/bin/python3 sqlite3 inserts"
    rm -rf "$d" && mkdir -p "$d" || return 1
    /usr/bin/python3 tests/scripts/gen_train_log.py "$n" "$d/train.log" || return 1
    local t rows py TIMEFORMAT='%R %U %S'
    t=$( { time ./build/caddie import-log "$d/train.log" --db "$d/c.db" --runs-dir "$d/runs" >/dev/null 2>"$d/err"; } 2>&1 ) || { cat "$d/err" >&2; return 1; }
    rows=$(sqlite3 "$d/c.db" "SELECT count(*) FROM metrics")
    if ! /usr/bin/python3 -c "import sqlite3" 2>/dev/null; then
        awk -v rows="$rows" -v t="$t" 'BEGIN { split(t, c, " ");
            printf "caddie import-log: %d rows in %.3f s = %.0f rows/s wall\n", rows, c[1], rows / c[1] }'
        echo "python3 sqlite3: skipped: /usr/bin/python3 cannot import sqlite3 (no ratio)"
        rm -rf "$d"
        return 0
    fi
    py=$(/usr/bin/python3 tests/scripts/sqlite_insert_baseline.py "$n" "$d/py.db") || return 1
    awk -v rows="$rows" -v t="$t" -v py="$py" 'BEGIN {
        split(t, c, " "); split(py, p, " "); ccpu = c[2] + c[3];
        printf "caddie import-log: %d rows in %.3f s = %.0f rows/s wall, %.0f rows per CPU second (whole import)\n",
               rows, c[1], rows / c[1], rows / ccpu;
        printf "python3 sqlite3:   %d rows in %.3f s = %.0f rows/s wall, %.0f rows per CPU second (executemany alone)\n",
               p[1], p[2], p[1] / p[2], p[1] / p[3];
        printf "ratio caddie/python: %.2f wall, %.2f CPU\n", (rows / c[1]) / (p[1] / p[2]), (rows / ccpu) / (p[1] / p[3]) }'
    rm -rf "$d"
}

# ---- data parallel on the CPU: flat gradient all-reduce vs dp_bucket_mb buckets ----------------
# World 2 through `caddie launch` (the shared-memory collective, 1 thread a rank), the sample_cpu
# model with one micro-batch a step (the record's 8 x accum 1 shape, where the whole backward can
# overlap). Runs alternate flat / bucketed BENCH_DP_REPEATS times; each prints its step_avg (the
# trainer's training time per step, evals excluded) and the CPU seconds of the launch.
bench_dp_buckets() {
    section "data parallel: world 2 CPU step time, flat all-reduce vs gradient buckets"
    [ -f data/sample/fineweb10B_sp1024/fineweb_val_000000.bin ] || { echo "skipped: no sample shards (make sample)"; return 0; }
    local d steps=${BENCH_DP_STEPS:-40} mb=${BENCH_DP_BUCKET_MB:-0.5} r mode t
    d=$(mktemp -d)
    for r in $(seq "${BENCH_DP_REPEATS:-2}"); do
        for mode in 0 "$mb"; do
            /usr/bin/time -o "$d/time" -f "%U %S" ./build/caddie launch --nproc 2 train experiments/configs/sample_cpu.yaml \
                --set run_dir="$d/run" --set grad_accum_steps=1 --set iterations="$steps" --set warmup_steps=0 \
                --set val_loss_every=0 --set val_max_tokens=2048 --set train_log_every="$steps" --set threads=1 \
                --set dp_bucket_mb="$mode" >"$d/out" 2>/dev/null || { rm -rf "$d"; return 1; }
            t=$(tail -n 1 "$d/time")
            awk -v mode="$mode" -v cpu="$t" '/^step:.*step_avg:/ { sub(/.*step_avg:/, ""); avg = $0 }
                END { split(cpu, c, " "); printf "%-22s step_avg %7.2f ms   launch CPU %.1f s\n",
                      mode == 0 ? "flat (dp_bucket_mb 0)" : "buckets " mode " MiB", avg + 0, c[1] + c[2] }' "$d/out"
            grep -h "^dp_buckets:" "$d/out" || true
            rm -rf "$d/run"
        done
    done
    rm -rf "$d"
}

# ---- collective: the host transports of data parallel (shared memory, TCP star) ---------------
bench_coll() {
    section "data parallel: collective host transports, barrier and all-reduce (${BENCH_COLL_MIB:-16} MiB)"
    mkdir -p build/bench
    # the collective reaches NCCL when the library was built with CUDA
    local cuda=""
    case $LIBCADDIE in *rel-cuda*) cuda="build/cuda/libcaddie_cuda.a -L${CUDA_HOME:-/usr/local/cuda}/lib64
        -Wl,-rpath,${CUDA_HOME:-/usr/local/cuda}/lib64 -lcublas -lcudart -lnccl" ;; esac
    $CC $REL tests/bench_coll.c "$LIBCADDIE" $cuda "$LIBCADDIE" $LIBS -o build/bench/bench_coll || return 1
    ./build/bench/bench_coll "${BENCH_COLL_MIB:-16}" "${BENCH_COLL_REPEATS:-10}"
}

status=0
# BENCH_SECTIONS="bench_engine_train" runs only the named sections
for s in ${BENCH_SECTIONS:-bench_engine_train bench_torch_train bench_db bench_import bench_dp_buckets bench_coll}; do
    "$s" || { echo "bench section $s failed" >&2; status=1; }
done
exit $status

#!/usr/bin/env bash
# device_run.sh — the one prepared measurement of the CUDA backend on a borrowed GPU machine.
#
#   bash kernels/device_run.sh bundle [SRC_TREE]   here (no GPU): build a portable caddie binary
#                                                  into .gpu/ with the non-CUDA libraries it needs
#                                                  and train_gpt.py beside it
#   bash kernels/device_run.sh measure             there (GPU): selftest, bench (the attention
#                                                  kernels v1 and v2 side by side), train_gpt.py;
#                                                  logs under $OUT, a summary table last
#                                                  (SKIP_TORCH=1: no train_gpt.py run, ~2 min less;
#                                                  NCU_KERNELS=regex: ncu counters of those kernels)
#
# Why a bundle: the GPU machine has the CUDA runtime, cuBLAS and (inside its PyTorch venv) NCCL,
# but none of our Debian libraries (SQLite, libyaml, sentencepiece, OpenBLAS, compressors), and a
# lease is ~15 minutes, so nothing is built there. The binary is linked with RUNPATH
# $ORIGIN/lib so the bundled libraries reach only caddie, never the python3 that runs
# train_gpt.py (LD_LIBRARY_PATH would hand torch our older libstdc++/zlib). -march=x86-64-v3
# because -march=native here (AMD) may not run on the GPU host's CPU.
#
# Not here: the benchmark itself (`caddie bench`, engine/bench.c) or the checks (`caddie gpu
# selftest`); this only builds, carries and calls them in an order that survives a failed step.
set -u

bundle() {
    local src=${1:-.} dst=.gpu
    make -C "$src" ARCH=-march=x86-64-v3 -j2 build/caddie >/dev/null || return 1
    # relink with the bundle's RUNPATH; the objects and archives are those make just built
    local cudalib
    cudalib=$(dirname "$(ldd "$src/build/caddie" | awk '/libcublas\.so/{print $3}')")
    rm -rf "$dst" && mkdir -p "$dst/lib"
    (cd "$src" && gcc -fopenmp -O2 -march=x86-64-v3 build/rel-cuda/cli/main.o build/rel-cuda/libcaddie.a \
        build/cuda/libcaddie_cuda.a -L"$cudalib" \
        -Wl,-rpath,'$ORIGIN/lib:/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/local/cuda/lib64' \
        -lcublas -lcudart -lnccl -lsentencepiece_train -lsentencepiece -lsqlite3 -lyaml -lopenblas -lzstd \
        -llzma -lbrotlienc -lbrotlidec -lz -lstdc++ -lpthread -lm -o "$OLDPWD/$dst/caddie") || return 1
    for l in $(ldd "$dst/caddie" | awk '$3 ~ /^\/(usr\/)?lib/ {print $3}'); do
        case $(basename "$l") in libc.so*|libm.so*|libpthread*|libdl.so*|librt.so*) ;; *) cp -L "$l" "$dst/lib/" ;; esac
    done
    (cd "$dst" && tar -cJf libs.tar.xz lib && rm -rf lib)
    local tg=${TRAIN_GPT:-}
    [ -n "$tg" ] && cp "$tg" "$dst/train_gpt.py"
    [ -f "$dst/train_gpt.py" ] || echo "bundle: no train_gpt.py (set TRAIN_GPT=path): the PyTorch side will be skipped" >&2
    local ex; ex=$(git rev-parse --git-path info/exclude); mkdir -p "$(dirname "$ex")"
    grep -qx '/.gpu/' "$ex" 2>/dev/null || echo '/.gpu/' >>"$ex"
    du -sh "$dst"
    echo "carry: .gpu data/sample/fineweb10B_sp1024   command: bash kernels/device_run.sh measure"
}

# a step: name, timeout (s), command...; its output goes to $OUT/<name>.log; skipped when the
# lease's own deadline (BUDGET_S from the start) would be passed
step() {
    local name=$1 limit=$2; shift 2
    local now=$((SECONDS))
    if [ $((now + limit)) -gt "${BUDGET_S:-560}" ]; then
        limit=$(( ${BUDGET_S:-560} - now ))
        if [ "$limit" -lt 20 ]; then echo "== $name: skipped (lease budget)"; RESULTS+=("$name: skipped (budget)"); return; fi
    fi
    echo "== $name (limit ${limit}s): $*"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    RESULTS+=("$name: rc=$rc in $((SECONDS - t0))s")
    tail -n "${TAIL_LINES:-40}" "$OUT/$name.log"
}

measure() {
    OUT=${OUT:-/tmp/caddie-device}
    mkdir -p "$OUT"
    RESULTS=()
    tar -xJf .gpu/libs.tar.xz -C .gpu || return 1
    # NCCL lives in the PyTorch venv there, CUPTI in the toolkit's extras or the venv
    local nccl cupti
    nccl=$(find /opt /usr/local /usr/lib -name 'libnccl.so.2' 2>/dev/null | head -n1)
    cupti=$(find /usr/local /opt -name 'libcupti.so*' 2>/dev/null | head -n1)
    export LD_LIBRARY_PATH=${nccl:+$(dirname "$nccl")}${cupti:+:$(dirname "$cupti")}
    {
        date -u; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv
        python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'
        echo "nccl: $nccl"; echo "cupti: $cupti"; ldd .gpu/caddie | grep -E 'not found|cublas|nccl'
        .gpu/caddie version
    } >"$OUT/env.log" 2>&1
    cat "$OUT/env.log"
    local B=.gpu/caddie
    # the tensor-core attention in both generations (CADDIE_ATTN_KERNEL, kernels/k_attention.cuh):
    # v1 is the default (verified on a GPU); v2 runs on the same warm machine right after it, so
    # the two compare, and its large selftest is what can make it the default
    step bench_bf16 120 $B bench --backend cuda --set matmul_precision=bf16 --steps 10 --warmup 3 --profile-steps 1
    step bench_bf16_attn_v2 120 env CADDIE_ATTN_KERNEL=v2 $B bench --backend cuda --set matmul_precision=bf16 \
        --steps 10 --warmup 3 --profile-steps 1
    TAIL_LINES=15 step selftest_attn_v2 200 env CADDIE_ATTN_KERNEL=v2 $B gpu selftest --large --quiet
    TAIL_LINES=5 step selftest 60 $B gpu selftest --quiet
    [ -f .gpu/train_gpt.py ] && [ -z "${SKIP_TORCH:-}" ] &&
        TAIL_LINES=12 step bench_torch 240 $B bench --backend cuda --set matmul_precision=bf16 --steps 10 --warmup 3 \
            --profile-steps 0 --torch-script .gpu/train_gpt.py
    TAIL_LINES=8 step bench_fp32 60 $B bench --backend cuda --set matmul_precision=fp32 --steps 3 --warmup 1 --profile-steps 1
    # NCU_KERNELS=regex: hardware counters of the first launches of those kernels (ncu works on
    # the Firecracker machines; --clock-control none leaves the clocks as found)
    if [ -n "${NCU_KERNELS:-}" ]; then
        local ncu
        ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n1)
        [ -n "$ncu" ] && TAIL_LINES=60 step ncu 120 "$ncu" --clock-control none -k "regex:$NCU_KERNELS" \
            --launch-count "${NCU_COUNT:-3}" --section SpeedOfLight --section WarpStateStats --section Occupancy \
            $B bench --backend cuda --set matmul_precision=bf16 --steps 1 --warmup 0 --profile-steps 0
    fi
    cp /tmp/caddie-bench-torch-*.log "$OUT/" 2>/dev/null
    echo; echo "== summary"
    printf '%s\n' "${RESULTS[@]}"
    grep -H -E '^(ms/step|tokens/s|MFU|torch ms/step)' "$OUT"/bench_*.log
    echo "attention per slot, v1 (bench_bf16) and v2 (bench_bf16_attn_v2):"
    grep -H -E 'attention_(forward|backward)' "$OUT"/bench_bf16.log "$OUT"/bench_bf16_attn_v2.log 2>/dev/null
    grep -H -iE 'passed|failed' "$OUT"/selftest*.log | tail -n 6
}

case ${1:-} in
bundle) shift; bundle "$@" ;;
measure) measure ;;
*) echo "usage: $0 bundle [SRC_TREE] | measure" >&2; exit 2 ;;
esac

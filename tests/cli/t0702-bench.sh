#!/usr/bin/env bash
# t0702 — `caddie bench`: usage errors; --backend cuda without a GPU (or without a CUDA build)
# fails with "no CUDA device" (exit 1); the CPU path on a tiny config over the bundled sample
# prints the figures and a per-slot table whose rows are the slots called and whose percentages
# sum to ~100. A format test: no timing is asserted.
. "$CADDIE_SRC/tests/cli/lib.sh"

cat >tiny.yaml <<YAML
data_path: $CADDIE_SRC/data/sample/fineweb10B_sp1024
tokenizer_path: $CADDIE_SRC/data/sample/fineweb_1024_bpe.model
num_layers: 1
model_dim: 32
num_heads: 2
num_kv_heads: 1
train_seq_len: 32
train_batch_tokens: 256
grad_accum_steps: 2
threads: 1
YAML

test_expect_success 'bad --backend and --steps are usage errors' '
    test_must_fail 2 caddie bench --backend tpu 2>err && test_grep "not cpu or cuda" err &&
    test_must_fail 2 caddie bench --steps 0 2>err && test_grep "steps" err &&
    test_must_fail 2 caddie bench extra 2>err && test_grep "unexpected argument" err
'
test_expect_success 'help bench states the FLOP formula and the peak' '
    caddie help bench >out && test_grep "6\*P\*tokens \+ 6\*L\*T\*C\*tokens" out && test_grep "989" out
'
test_expect_success 'cuda without a GPU fails with no CUDA device (the ASan build has no CUDA)' '
    if caddie bench --backend cuda --config tiny.yaml --steps 1 --warmup 0 >out 2>err; then
        test_grep "^bench: backend cuda" out
    else
        rc=$? && test $rc = 1 && test_grep "no CUDA device" err
    fi
'
test_expect_success 'cpu bench on a tiny config: figures and a per-slot table summing to 100%' '
    caddie bench --backend cpu --config tiny.yaml --steps 2 --warmup 1 >out 2>err &&
    test_grep "^bench: backend cpu" out &&
    test_grep "^step: 256 tokens = 2 micro-steps x 4 x 32" out &&
    test_grep "^ms/step: +[0-9.]+ \(min [0-9.]+, max [0-9.]+\)" out &&
    test_grep "^tokens/s: +[0-9]+" out &&
    test_grep "^model TFLOP/s: " out &&
    test_grep "^MFU: +n/a" out &&
    test_grep "^per-slot time: 1 profiled step, wall clock" out &&
    sed -n "/^slot /,\$p" out | tail -n +2 >table &&
    # every row: name calls total_ms %; the model ops of a step are there, calls > 0
    awk "\$1 != \"(outside\" && (NF != 4 || \$2 !~ /^[1-9][0-9]*\$/) { exit 1 }" table &&
    test "$(grep -c "^(outside slots) " table)" = 1 &&
    for s in embedding_forward embedding_backward matmul attention_forward attention_backward \
             rmsnorm_forward softcap_xent_forward adam_update gram_batched; do
        grep -q "^$s " table || { echo "missing slot $s"; exit 1; }
    done &&
    test "$(grep -c "^embedding_forward  *2 " table)" = 1 &&
    awk "{ s += \$NF } END { exit !(s > 99.5 && s < 100.5) }" table
'
test_expect_success '--peak-tflops gives an MFU figure; --profile-steps 0 drops the table' '
    caddie bench --config tiny.yaml --steps 1 --warmup 0 --profile-steps 0 --peak-tflops 1 >out &&
    test_grep "^MFU: +[0-9.]+% of 1 TFLOP/s \(--peak-tflops\)" out && ! grep -q "^per-slot" out
'
test_expect_success 'a torch script without torch is skipped with a line (or runs when torch exists)' '
    printf "import sys\nprint(\"step:1/1 train_loss:1.0 train_time:5ms step_avg:5.00ms\")\n" >fake_gpt.py &&
    caddie bench --config tiny.yaml --steps 1 --warmup 0 --profile-steps 0 --torch-script fake_gpt.py \
        --python /nonexistent/python >out &&
    test_grep "^torch: +skipped" out
'
test_expect_success 'the torch run gets train_gpt.py env vars and its step_avg is compared' '
    printf "#!/bin/sh\nif [ \"\$1\" = -c ]; then exit 0; fi\nexec python3 \"\$@\"\n" >fakepy && chmod +x fakepy &&
    cat >env_gpt.py <<PY &&
import os
e = os.environ
assert e["VAL_LOSS_EVERY"] == "0" and e["TRAIN_BATCH_TOKENS"] == "256" and e["TRAIN_SEQ_LEN"] == "32"
assert e["NUM_LAYERS"] == "1" and e["MODEL_DIM"] == "32" and e["WARMUP_STEPS"] == "1"
assert os.path.isdir(e["DATA_PATH"]) and os.path.isfile(e["TOKENIZER_PATH"])
n = e["ITERATIONS"]
print("step:%s/%s train_loss:1.0 train_time:8ms step_avg:4.00ms" % (n, n))
PY
    caddie bench --config tiny.yaml --steps 2 --warmup 1 --profile-steps 0 --torch-script env_gpt.py \
        --python ./fakepy >out &&
    test_grep "^torch ms/step: 4.0 \(train_gpt.py step_avg\) +caddie/torch: [0-9.]+x" out
'
test_done

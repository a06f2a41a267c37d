#!/usr/bin/env bash
# t0260 — LoRA test-time training end to end (ttt_mode: lora) on the bundled sample: `caddie
# train` logs the per-document pass and its score becomes result.json's val_bpb; on the trained
# weights, `caddie eval` with LoRA TTT beats the same per-document schedule scored without
# training (ttt_epochs 0); bad settings name their key. (lr 0 = no adapters, bit for bit:
# tests/unit/test_engine_ttt_lora.c, since ttt_lr 0 switches TTT off here.)
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

# 60 steps of the micro model; 3200 val targets = the sample's first 5 documents
micro_config cfg.yaml iterations=60 warmdown_iters=10 val_loss_every=0 train_log_every=20 val_max_tokens=3200
lora="--set ttt_lr=0.01 --set ttt_mode=lora --set ttt_lora_chunk=16 --set ttt_epochs=1"
bpb() { sed -n "s/^quantized_ttt val_loss:[0-9.]* val_bpb:\([0-9.]*\) .*/\1/p" "$1"; }

test_expect_success 'train with ttt_mode lora: the LoRA pass is the score in result.json' '
    caddie train cfg.yaml --set run_dir=r1 --set save_weights=w.safetensors $lora >out 2>err &&
    test_grep "^ttt:start mode:lora rank:8 targets:q,v,head chunk:16 ttt_lr:0.01 ttt_epochs:1$" out &&
    test_grep "^ttt_lora_doc:5/5 bpb:[0-9.]+ time:" out &&
    got=$(bpb out) && test -n "$got" &&
    json=$(sed -n "s/.*\"val_bpb\":\([0-9.]*\).*/\1/p" r1/result.json) &&
    awk -v a="$got" -v b="$json" "BEGIN { exit !(a - b < 1e-8 && b - a < 1e-8) }" &&
    test_grep "^\{\"step\":60,\"name\":\"final_ttt_val_bpb\"" r1/metrics.jsonl
'
test_expect_success 'eval: LoRA TTT improves on the same schedule without training; its keys act' '
    caddie eval cfg.yaml --weights w.safetensors $lora --set ttt_epochs=0 >none &&
    caddie eval cfg.yaml --weights w.safetensors $lora >one &&
    a=$(bpb none) && b=$(bpb one) && echo "no TTT $a, LoRA TTT $b" &&
    awk -v a="$a" -v b="$b" "BEGIN { exit !(b < a - 0.01) }" &&
    caddie eval cfg.yaml --weights w.safetensors $lora --set ttt_lora_targets=q,k,v,o,mlp,head >all &&
    caddie eval cfg.yaml --weights w.safetensors $lora --set ttt_lora_rank=2 >r2 &&
    caddie eval cfg.yaml --weights w.safetensors $lora --set ttt_lora_chunk=8 >c8 &&
    echo "all targets $(bpb all), rank 2 $(bpb r2), chunk 8 $(bpb c8)" &&
    test "$(bpb all)" != "$b" && test "$(bpb r2)" != "$b" && test "$(bpb c8)" != "$b"
'
test_expect_success 'bad LoRA settings name their key' '
    test_must_fail 1 caddie eval cfg.yaml --weights w.safetensors $lora --set ttt_lora_targets=q,x 2>e1 &&
    test_grep "ttt_lora_targets=.q,x.: unknown target .x." e1 &&
    test_must_fail 1 caddie eval cfg.yaml --weights w.safetensors $lora --set ttt_lora_chunk=33 2>e2 &&
    test_grep "ttt_lora_chunk=33" e2 &&
    test_must_fail 1 caddie eval cfg.yaml --weights w.safetensors $lora --set ttt_mode=adam 2>e3 &&
    test_grep "ttt_mode=.adam.: expected sgd or lora" e3
'
test_done

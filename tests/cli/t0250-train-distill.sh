#!/usr/bin/env bash
# t0250 — knowledge distillation (distill_from, engine/distill.h) end to end on the bundled
# sample: a larger teacher trained and saved by one `caddie train`, students trained from it by
# others. alpha = 0 with a teacher attached is bit-identical to no distillation; alpha > 0
# changes the weights and journals the KL term; a teacher of another vocabulary, a missing or
# damaged weights file and weights of another shape are refused naming the files.
# Not here: the distill_kl op's math (test_engine_ops, test_kernels_emu).
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

test_expect_success 'a 3-block x 48 teacher trains and saves its weights' '
    micro_config teacher.yaml num_layers=3 model_dim=48 run_dir=tr save_weights=teacher.safetensors &&
    caddie train teacher.yaml >t.out 2>/dev/null && test -s teacher.safetensors &&
    micro_config student.yaml
'
student() { # RUN_DIR KEY=VALUE...: the micro student, its weights saved to RUN_DIR.safetensors
    local d=$1
    shift
    caddie train student.yaml --set run_dir=$d --set save_weights=$d.safetensors "$@"
}
test_expect_success 'alpha 0 with the teacher attached is bit-identical to no distillation' '
    student base >base.out 2>/dev/null &&
    student a0 --set distill_from=teacher.safetensors --set distill_teacher_config=teacher.yaml \
        --set distill_alpha=0 >a0.out 2>/dev/null &&
    test_grep "^distill: teacher:teacher.safetensors config:teacher.yaml params:[0-9]+ alpha:0 temp:1$" a0.out &&
    cmp base.safetensors a0.safetensors &&
    grep "val_loss\|train_loss\|roundtrip" base.out | sed "s/ train_time.*//; s/ eval_time.*//" >b.l &&
    grep "val_loss\|train_loss\|roundtrip" a0.out | sed "s/ train_time.*//; s/ eval_time.*//" >a.l &&
    test_cmp b.l a.l && test -s b.l
'
test_expect_success 'alpha 0.5 at T 2 learns from the teacher: other weights, the KL journaled' '
    student a5 --set distill_from=teacher.safetensors --set distill_teacher_config=teacher.yaml \
        --set distill_alpha=0.5 --set distill_temp=2 >a5.out 2>/dev/null &&
    ! cmp -s base.safetensors a5.safetensors &&
    test_grep "^final_int8_zlib_roundtrip_exact val_loss:[0-9.]+ val_bpb:[0-9.]+$" a5.out &&
    test_grep "^\{\"step\":12,\"name\":\"distill_kl\",\"value\":[0-9.e-]+," a5/metrics.jsonl &&
    ! grep -q distill_kl base/metrics.jsonl
'
test_expect_success 'a teacher of another vocabulary is refused, naming both files' '
    micro_config v512.yaml num_layers=3 model_dim=48 vocab_size=512 &&
    test_must_fail 1 student bad --set distill_from=teacher.safetensors --set distill_teacher_config=v512.yaml 2>err &&
    test_grep "teacher \(distill_teacher_config .v512.yaml., weights .teacher.safetensors.\) has vocab_size=512, the student 1024" err &&
    ! test -e bad/result.json
'
test_expect_success 'missing, damaged or misshapen teacher weights are refused' '
    test_must_fail 1 student bad --set distill_from=nope.safetensors --set distill_teacher_config=teacher.yaml 2>err &&
    test_grep "distill_from.*nope.safetensors" err &&
    head -c 100 teacher.safetensors >cut.safetensors &&
    test_must_fail 1 student bad --set distill_from=cut.safetensors --set distill_teacher_config=teacher.yaml 2>err &&
    test_grep "distill_from.*cut.safetensors" err &&
    test_must_fail 1 student bad --set distill_from=teacher.safetensors --set distill_teacher_config=student.yaml 2>err &&
    test_grep "distill_from.*teacher.safetensors.*shape" err &&
    test_must_fail 1 student bad --set distill_from=teacher.safetensors 2>err &&
    test_grep "without distill_teacher_config" err
'
test_done

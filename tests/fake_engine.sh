#!/usr/bin/env bash
# fake_engine.sh — a tiny train_gpt.py-style engine for the runner tests (command engine).
#
# Prints step lines, a val line, size lines and the final score line in train_gpt.py's
# format, sleeping FAKE_SLEEP seconds per step. Deterministic: the same env gives the same
# output, so a run restarted from scratch produces the same curve. Behaviour via env vars:
#   FAKE_STEPS=N        steps (default 5)        FAKE_SLEEP=S   seconds per step (default 0.05)
#   FAKE_BASE=X         loss offset (default 3)  FAKE_EXIT=C    exit with C after the last step
#   FAKE_NAN_AT=K       print train_loss:nan at step K (and keep going)
#   FAKE_VAL_EVERY=K    also print a val line (val_loss, val_bpb) every K steps: a val curve
#   FAKE_HANG_AT=K      after step K wait (a `sleep` child) until killed: a run that only a
#                       stop rule, a cancel or the timeout ends
#   FAKE_CRASH_AT=K     exit 1 at step K ("crash halfway")
#   FAKE_FAIL_FIRST=F   fail (exit 1 at step 2) while file F does not exist, creating it: the
#                       first attempt fails, the retry succeeds
#   FAKE_NO_FINAL=1     exit 0 without the final score line
#   FAKE_IGNORE_TERM=1  ignore SIGTERM (so does the grandchild below: it inherits SIG_IGN)
#   FAKE_GRANDCHILD=1   start a background `sleep` grandchild, its pid written to
#                       $CADDIE_RUN_DIR/grandchild.pid
#   FAKE_RECORD=F       append "start|end <run_id> <CUDA_VISIBLE_DEVICES> <epoch-ns>" to F
#   FAKE_ECHO_ENV=A,B   print "env:A=<value>" for each named variable
#   FAKE_FLOOD_MB=N     print N MB of '\r' without a newline before the first step (a
#                       progress bar gone wild: one huge line)
# Every argument is printed as "arg:<value>" (to check values arrive literally).
# Not here: anything a real engine computes.
set -u
steps=${FAKE_STEPS:-5}
sleep_s=${FAKE_SLEEP:-0.05}
base=${FAKE_BASE:-3}
run=${CADDIE_RUN_ID:-none}
record() { [ -n "${FAKE_RECORD:-}" ] && echo "$1 $run ${CUDA_VISIBLE_DEVICES-unset} $(date +%s%N)" >>"$FAKE_RECORD"; }
[ "${FAKE_IGNORE_TERM:-0}" = 1 ] && trap '' TERM
record start
for a in "$@"; do printf 'arg:%s\n' "$a"; done
IFS=, read -r -a names <<<"${FAKE_ECHO_ENV:-}"
for n in "${names[@]}"; do printf 'env:%s=%s\n' "$n" "${!n-}"; done
if [ "${FAKE_GRANDCHILD:-0}" = 1 ]; then
    sleep 300 &
    echo $! >"${CADDIE_RUN_DIR:-.}/grandchild.pid"
fi
fail_now=0
if [ -n "${FAKE_FAIL_FIRST:-}" ] && [ ! -e "$FAKE_FAIL_FIRST" ]; then
    : >"$FAKE_FAIL_FIRST"; fail_now=1
fi
echo "model_params:1234"
if [ -n "${FAKE_FLOOD_MB:-}" ]; then head -c "${FAKE_FLOOD_MB}M" /dev/zero | tr '\0' '\r'; fi
for ((s = 1; s <= steps; s++)); do
    sleep "$sleep_s"
    loss=$(awk -v b="$base" -v s="$s" 'BEGIN { printf "%.4f", b + 4.0 / (s + 1) }')
    [ "${FAKE_NAN_AT:-0}" = "$s" ] && loss=nan
    echo "step:$s/$steps train_loss:$loss train_time:$((s * 10))ms step_avg:10.00ms"
    if [ "${FAKE_VAL_EVERY:-0}" -gt 0 ] && [ $((s % FAKE_VAL_EVERY)) = 0 ] && [ "$s" -lt "$steps" ]; then
        v=$(awk -v b="$base" -v s="$s" 'BEGIN { printf "%.4f %.4f", b + 4.0 / (s + 1), (b + 4.0 / (s + 1)) * 0.59 }')
        echo "step:$s/$steps val_loss:${v% *} val_bpb:${v#* } train_time:$((s * 10))ms step_avg:10.00ms"
    fi
    if [ "${FAKE_HANG_AT:-0}" = "$s" ]; then sleep 600 & wait $!; fi
    if [ "${FAKE_CRASH_AT:-0}" = "$s" ] || { [ $fail_now = 1 ] && [ $s = 2 ]; }; then
        echo "Traceback (most recent call last):" >&2
        echo "RuntimeError: fake crash at step $s" >&2
        record end
        exit 1
    fi
done
vl=$(awk -v b="$base" -v s="$steps" 'BEGIN { printf "%.4f", b + 4.0 / (s + 1) }')
vb=$(awk -v v="$vl" 'BEGIN { printf "%.4f", v * 0.59 }')
echo "step:$steps/$steps val_loss:$vl val_bpb:$vb train_time:$((steps * 10))ms step_avg:10.00ms"
echo "Serialized model int8+zlib: 1000000 bytes"
echo "Total submission size int8+zlib: 1050000 bytes"
if [ "${FAKE_NO_FINAL:-0}" != 1 ]; then
    echo "final_int8_zlib_roundtrip_exact val_loss:$vl val_bpb:$vb"
fi
record end
exit "${FAKE_EXIT:-0}"

#!/usr/bin/env bash
# t0422 — `caddie run --executor` options without a cluster: usage errors for options that do
# not go together, and a runner that cannot reach Slurm fails at start, naming what it ran and
# what to check, before it touches a run.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

test_expect_success 'an unknown executor, a count as GRES, slurm options without slurm: usage errors' '
    test_must_fail 2 caddie run --executor kubernetes 2>e1 &&
    test_grep "executor .kubernetes.: expected local or slurm" e1 &&
    test_must_fail 2 caddie run --executor slurm --gres 4 2>e2 &&
    test_grep "gres .4.: expected a GRES name such as gpu" e2 &&
    test_must_fail 2 caddie run --partition gpu --cpu-slots 1 2>e3 &&
    test_grep "need --executor slurm" e3 &&
    test_must_fail 2 caddie run --executor slurm --devices 0-1 2>e4 &&
    test_grep "Slurm hands out the devices" e4 &&
    test_must_fail 2 caddie run --executor slurm --max-jobs 0 2>e5
'
fake_sweep u 3 0.01 1
test_expect_success 'no Slurm commands on PATH: the runner fails at start, the run stays queued' '
    caddie sweep add u.yaml >/dev/null &&
    ( PATH="$TRASH/nobin" && test_must_fail 1 "$CADDIE" run --executor slurm --until-empty >out 2>err ) &&
    test_grep "executor slurm: cannot run scontrol: No such file or directory: are Slurm.s client commands" err &&
    test $(n_status queued) = 1
'
test_done

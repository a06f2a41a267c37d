#!/usr/bin/env bash
# t0431 — `kind: greedy` sweeps with the fake engine, whose scores are planted so the right
# selection is known: a1 wins round 1, b1 round 2 (a2 is worse than a1, c1 worse than
# anything, d1 better but by less than the margin), and round 3 ends it. Each round is its own
# sweep; the base of a round is the previous winner's runs (dedup, not run twice); a runner
# killed mid-round carries on after a restart; decisions and the result are in the DB.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

# the fake engine with a loss offset computed from the params (val_bpb = 0.59 x loss):
# a=1 -0.3, a=2 -0.2, b=1 -0.1, c=1 +0.05, d=1 -0.004, and 0.001 x (seed mod 3) of seed noise
cat >score.sh <<EOF
#!/usr/bin/env bash
base=\$(awk -v a="\$1" -v b="\$2" -v c="\$3" -v d="\$4" -v s="\$5" 'BEGIN { x = 3; if (a == 1) x -= 0.3; if (a == 2) x -= 0.2; if (b == 1) x -= 0.1; if (c == 1) x += 0.05; if (d == 1) x -= 0.004; printf "%.4f", x + 0.001 * (s % 3) }')
FAKE_BASE=\$base exec bash "$FAKE"
EOF
cat >g.yaml <<'EOF'
name: gr
kind: greedy
engine: command
command: [bash, score.sh, "{a}", "{b}", "{c}", "{d}", "{seed}"]
env: {FAKE_STEPS: "2", FAKE_SLEEP: "{sleep}"}
set: {a: 0, b: 0, c: 0, d: 0, sleep: 0.01}
candidates:
  a1: {a: 1}
  a2: {a: 2}
  b1: {b: 1}
  c1: {c: 1}
  d1: {d: 1}
metric: val_bpb
margin: 0.01
seeds: [1, 2]
EOF
g_col() { q "SELECT $1 FROM greedy WHERE name = 'gr'"; }                              # COLUMN
winners() { q "SELECT group_concat(coalesce(json_extract(decision, '\$.winner'), '-'), ' ') FROM (SELECT decision FROM greedy_rounds WHERE greedy = 'gr' ORDER BY round)"; }
round_sweeps() { q "SELECT group_concat(s.name || ':' || (SELECT count(*) FROM runs r WHERE r.sweep_id = s.id), ' ') FROM (SELECT * FROM sweeps WHERE name LIKE 'gr.r%' ORDER BY name) s"; }

test_expect_success 'plan shows round 1: the base and each candidate, per seed' '
    caddie sweep plan g.yaml --db none.db >out &&
    test_grep "^greedy gr: 5 candidates, metric val_bpb, margin 0.01, up to 5 rounds; not added yet" out &&
    test $(grep -c "^queue " out) -eq 12 &&
    test_grep "^queue +gr.r1-[0-9a-f]{8} +candidate=base seed=1$" out &&
    test_grep "^queue +gr.r1-[0-9a-f]{8} +candidate=d1 seed=2$" out &&
    ! test -e none.db
'
test_expect_success 'the runner drives the rounds to the planted selection: a1, then b1, then stop' '
    caddie sweep add g.yaml >add.out &&
    test_grep "^greedy gr: 5 candidates, up to 5 rounds; round 1 \\(sweep gr.r1\\): queued 12 runs$" add.out &&
    run_fast --cpu-slots 2 >run.out 2>&1 &&
    test "$(winners)" = "a1 b1 -" &&
    test "$(g_col status)" = done && test "$(g_col accepted)" = "[\"a1\",\"b1\"]" &&
    g_col result >result.out &&
    test_grep "^round 3: no candidate beats base val_bpb 2.321500 by more than 0.01 \\(best: d1 2.319200\\); kept \\[\"a1\",\"b1\"\\]$" result.out &&
    test_grep "greedy  gr round 1: keep a1: val_bpb 2.380500 vs base 2.557500 \\(margin 0.01\\); round 2 queued \\(6 runs\\)" run.out &&
    test_grep "greedy  gr done: round 3" run.out
'
test_expect_success 'each round is its own sweep; a round does not rerun its base (the last winner)' '
    test "$(round_sweeps)" = "gr.r1:12 gr.r2:6 gr.r3:6" &&
    test "$(n_status done)" = 24 &&
    test "$(q "SELECT count(*) FROM greedy_rounds WHERE decision IS NOT NULL")" = 3
'
test_expect_success 'sweep add again changes nothing; plan shows the result' '
    caddie sweep add g.yaml >again.out && test_grep "already added \\(round 3, done: " again.out &&
    test "$(n_status done)" = 24 &&
    caddie sweep plan g.yaml >plan.out && test_grep "^result: round 3: no candidate" plan.out &&
    caddie status >status.out && test_grep "^  gr +round 3, done: round 3: no candidate .*kept \\[\"a1\",\"b1\"\\]$" status.out
'
# The same selection under a runner killed in round 2 (runs of round 2 sleep, so it is
# mid-round): the next runner recovers the runs and finishes with the same decisions.
sed -e 's/^name: gr$/name: gk/' -e 's/a1: {a: 1}/a1: {a: 1, sleep: 0.5}/' g.yaml >gk.yaml
test_expect_success 'a runner killed mid-round: the restarted one carries on to the same selection' '
    export CADDIE_DB="$TRASH/k.db" &&
    caddie sweep add gk.yaml >/dev/null &&
    ( "$CADDIE" run --cpu-slots 2 --poll 0.05 --grace 0.5 >run1.out 2>&1 & echo $! >runner.pid ) &&
    wait_until 60 "grep -q \"round 2 queued\" run1.out" &&
    wait_until 30 "test \"\$(q \"SELECT count(*) FROM runs r JOIN sweeps s ON s.id = r.sweep_id WHERE s.name = '"'"'gk.r2'"'"' AND r.status = '"'"'running'"'"'\")\" -gt 0" &&
    kill -9 "$(cat runner.pid)" && wait_until 10 "gone $(cat runner.pid)" &&
    test "$(q "SELECT status FROM greedy WHERE name = '"'"'gk'"'"'")" = running &&
    run_fast --cpu-slots 2 >run2.out 2>&1 &&
    test "$(q "SELECT accepted FROM greedy WHERE name = '"'"'gk'"'"'")" = "[\"a1\",\"b1\"]" &&
    test "$(q "SELECT count(*) FROM greedy_rounds WHERE greedy = '"'"'gk'"'"'")" = 3 &&
    test_grep "interrupted" run2.out
'
# The example of docs/sweeps.md's "Greedy sweeps" section plans round 1 as documented.
mkdir -p doc && cp -r "$CADDIE_SRC/experiments/configs" doc/configs
awk '/^### Greedy sweeps/{s=1; next} /^##/{s=0} s && /^```yaml$/{f=1; next} s && f && /^```$/{exit} s && f' \
    "$CADDIE_SRC/docs/sweeps.md" >doc/example.yaml
test_expect_success 'the docs/sweeps.md greedy example plans round 1: base + 3 candidates x 2 seeds' '
    caddie sweep plan doc/example.yaml --db none.db >out &&
    test_grep "^greedy greedy_cpu: 3 candidates, metric val_bpb, margin 0.002, up to 2 rounds" out &&
    test $(grep -c "^queue " out) -eq 8 &&
    test_grep "^queue +greedy_cpu.r1-[0-9a-f]{8} +candidate=ema seed=42$" out
'
cat >bad1.yaml <<'EOF'
name: b
kind: greedy
engine: command
command: [true, "{a}"]
set: {a: 0}
candidates:
  x: {b: 1}
EOF
cat >bad2.yaml <<'EOF'
name: b
kind: greedy
grid:
  qk_gain_init: [1, 2]
candidates:
  x: {qk_gain_init: 3}
EOF
cat >bad3.yaml <<'EOF'
name: b
candidates:
  x: {qk_gain_init: 3}
EOF
cat >bad4.yaml <<'EOF'
name: b
kind: greedy
candidates:
  base: {qk_gain_init: 3}
EOF
cat >bad5.yaml <<'EOF'
name: b
kind: greedy
candidates:
  x: {qk_gain_init: 3}
metric: train_loss
EOF
test_expect_success 'bad greedy files are file:line:col errors' '
    test_must_fail 1 caddie sweep plan bad1.yaml 2>err &&
    test_grep "^bad1.yaml:7:7: candidate key .b. has no starting value: give it one in .set." err &&
    test_must_fail 1 caddie sweep plan bad2.yaml 2>err &&
    test_grep "^bad2.yaml:4:3: a greedy sweep has no .grid." err &&
    test_must_fail 1 caddie sweep plan bad3.yaml 2>err &&
    test_grep "^bad3.yaml:3:3: .candidates. belongs to kind: greedy" err &&
    test_must_fail 1 caddie sweep plan bad4.yaml 2>err &&
    test_grep "^bad4.yaml:4:3: candidate name .base. must be" err &&
    test_must_fail 1 caddie sweep plan bad5.yaml 2>err &&
    test_grep "^bad5.yaml:5:9: .metric. must be val_bpb or val_loss" err
'
test_done

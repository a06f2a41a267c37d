#!/usr/bin/env bash
# t0607 — `caddie compare --step-matched [--step N]` and `--wallclock-matched MS` on the
# fixture DB: each run's value at the step (time) from its curve, linear between logged
# points, checked against the same interpolation done in SQL; the default step is the last
# one every run reached; the table names the step/time; errors.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/reports_lib.sh"

# interp X COLUMN — "run_id value" of every run of groups c49d (A) and 2c75 (B) at X on the
# val_bpb curve, X on COLUMN (step or wall_ms), linear between the points either side
interp() {
    sqlite3 -batch -noheader -separator ' ' "$CADDIE_DB" "
      WITH c AS (SELECT run_id, $2 AS x, value FROM curves WHERE name = 'val_bpb' AND $2 IS NOT NULL
                 AND run_id IN (SELECT run_id FROM runs WHERE group_hash LIKE 'c49d%' OR group_hash LIKE '2c75%')),
           lo AS (SELECT run_id, max(x) AS x FROM c WHERE x <= $1 GROUP BY run_id),
           hi AS (SELECT run_id, min(x) AS x FROM c WHERE x >= $1 GROUP BY run_id)
      SELECT CASE WHEN r.group_hash LIKE 'c49d%' THEN 'A' ELSE 'B' END, lo.run_id,
             printf('%.5f', CASE WHEN lo.x = hi.x THEN a.value
                    ELSE a.value + ($1 - lo.x) * (b.value - a.value) / (hi.x - lo.x) END)
      FROM lo JOIN hi USING(run_id) JOIN runs r USING(run_id)
      JOIN c a ON a.run_id = lo.run_id AND a.x = lo.x JOIN c b ON b.run_id = hi.run_id AND b.x = hi.x
      ORDER BY 1, 2"
}
last_common_step() { sqlite3 -batch -noheader "$CADDIE_DB" "SELECT min(m) FROM (SELECT max(step) AS m FROM curves WHERE name = 'val_bpb' AND run_id IN (SELECT run_id FROM runs WHERE group_hash LIKE 'c49d%' OR group_hash LIKE '2c75%') GROUP BY run_id)"; }
run_lines() { grep -E "^  [AB]  " "$1" | awk '{ print $1, $2, $3 }'; }

test_expect_success 'fixture database' '
    fixture_db
'
test_expect_success '--step N between logged points: every run interpolated, the step named' '
    caddie compare c49d 2c75 --step 1250 >out &&
    test_grep "^step-matched: val_bpb at step 1250 \(as asked; linear between logged points\)$" out &&
    test_grep "^runs at step 1250 +3 of 3 +3 of 3$" out &&
    interp 1250 step >want && test "$(wc -l <want)" = 6 &&
    run_lines out >got && test_cmp want got &&
    test_grep "^A - B at step 1250: -0\.0[0-9]+ val_bpb \(negative: A is better\); one-sided Welch t-test: t = " out
'
test_expect_success 'the final-score comparison is still printed above it' '
    test_grep "^A - B: -0.00420 bpb, -0.01105 nats" out
'
test_expect_success '--step-matched alone: the last step every run reached' '
    s=$(last_common_step) && test -n "$s" &&
    caddie compare c49d 2c75 --step-matched >out2 &&
    test_grep "^step-matched: val_bpb at step $s \(the last step every run reached" out2 &&
    interp "$s" step >want2 && run_lines out2 >got2 && test_cmp want2 got2
'
test_expect_success '--wallclock-matched MS: the same at an equal training time' '
    caddie compare c49d 2c75 --wallclock-matched 123456 >out3 &&
    test_grep "^wallclock-matched: val_bpb at training time 123456 ms \(as asked" out3 &&
    test_grep "^runs at ms 123456 +3 of 3 +3 of 3$" out3 &&
    interp 123456 wall_ms >want3 && test "$(wc -l <want3)" = 6 && run_lines out3 >got3 && test_cmp want3 got3
'
test_expect_success 'errors: a step no run reached, both modes, a bad number' '
    test_must_fail 1 caddie compare c49d 2c75 --step 99999 2>err && test_grep "no run of A has val_bpb at step 99999" err &&
    test_must_fail 2 caddie compare c49d 2c75 --step 10 --wallclock-matched 5 2>err &&
    test_grep "choose one" err &&
    test_must_fail 2 caddie compare c49d 2c75 --step x 2>err && test_grep "expected a number" err
'
test_done

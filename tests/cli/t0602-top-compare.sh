#!/usr/bin/env bash
# t0602 — `caddie top` and `caddie compare` on the fixture DB: aligned tables with the same
# statistics as the report (Welch p checked against scipy), runs vs groups, errors.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/reports_lib.sh"


test_expect_success 'fixture database' '
    fixture_db
'
test_expect_success 'top: best groups first, every row aligned under the header' '
    caddie top >out &&
    sed -n 2p out | grep -q "^1  qk-wd  muon_wd=0.095 qk_gain_init=5.25  c49d20428e67  3   1.08500 ± 0.00040" &&
    test "$(sed -n 4p out | cut -c1-1)" = 3 &&
    # the right-aligned "bytes" column ends at the same character on every line (multi-byte
    # characters folded to one byte first, so byte positions are character positions)
    LC_ALL=C sed -e "s/\xc2\xb1/+/g" -e "s/\xce\x94/D/g" -e "s/\xe2\x80\x93/-/g" out | sed -n "1,/^\$/p" | grep -v "^\$" >tab &&
    test "$(wc -l <tab)" = 10 &&
    e=$(head -n 1 tab | awk "{ print index(\$0, \"bytes\") + 4 }") &&
    awk -v e="$e" "NR > 1 && (substr(\$0, e, 1) !~ /[0-9]/ || substr(\$0, e + 1, 2) != \"  \") { bad = 1; print } END { exit bad }" tab &&
    test_grep "9 of 9 groups" out
'
test_expect_success 'top: the reference row, Welch p and bar as in scipy' '
    # scipy: ttest_ind(best, ref, equal_var=False, alternative="less").pvalue = 1.3425e-04,
    # with the 0.005-nat margin 0.0010362 (< 0.01: clears the bar)
    grep "muon_wd=0.095 qk_gain_init=5.25" out | grep -q -- "-0.0042  -0.0110  1.3e-04  yes       yes" &&
    grep "muon_wd=0.04 qk_gain_init=4 " out | grep -q " ref " &&
    grep "muon_wd=0.04 qk_gain_init=5 " out | grep -q "NO (3/3 over)"
'
test_expect_success 'top -n and --sweep restrict the table' '
    caddie top -n 2 --sweep qk-wd >out2 &&
    test "$(grep -c -E "^[0-9]+  " out2)" = 2 && ! grep -q "vocab" out2 && test_grep "2 of 6 groups" out2
'
test_expect_success 'compare two groups: side by side, Welch, bar, frontier, same-seed pairs' '
    caddie compare c49d 2c75 >cmp &&
    test_grep "^what +group c49d +group 2c75$" cmp &&
    test_grep "^val_bpb mean ± std +1.08500 ± 0.00040 +1.08920 ± 0.00026$" cmp &&
    test_grep "^A - B: -0.00420 bpb, -0.01105 nats" cmp &&
    test_grep "t = -15.182, df = 3.47, p = 1.3e-04" cmp &&
    # scipy: mean(a) - mean(b) -+ t.ppf(0.975, df) * se with the Welch df 3.4713
    test_grep "^95% confidence interval of A - B: \[-0.00502, -0.00338\] bpb$" cmp &&
    test_grep "record bar .*: cleared \\(p = 0.0010\\)" cmp &&
    test_grep "frontier rule \\(p < 0.25\\): yes" cmp &&
    test_grep "^ +42 +1.08456 +1.08890 +-0.00434$" cmp &&
    test_grep "^budget +fits +OVER$" cmp
'
test_expect_success 'compare by label and by run name resolves the same groups' '
    caddie compare "muon_wd=0.095 qk_gain_init=5.25" "qk_gain_init=4 muon_wd=0.04 seed=314" >cmp2 &&
    test_grep "p = 1.3e-04" cmp2
'
test_expect_success 'compare two runs: one seed each, so no test is claimed' '
    caddie compare qk-wd-210 qk-wd-000 >runs &&
    test_grep "^what +run qk-wd-210 +run qk-wd-000$" runs &&
    test_grep "needs at least 2 seeds on each side" runs &&
    test_grep "record bar .*: cannot tell" runs
'
test_expect_success 'compare errors: unknown name, failed run, ambiguous prefix, arity' '
    test_must_fail 1 caddie compare nothing-like-this c49d 2>err && test_grep "no group or run matches .nothing-like-this." err &&
    test_must_fail 1 caddie compare qk-wd-failed c49d 2>err && test_grep "has no result \\(status failed\\)" err &&
    test_must_fail 2 caddie compare c49d 2>err &&
    test_must_fail 2 caddie compare a b c 2>err
'
test_expect_success 'top on an empty database says so' '
    CADDIE_DB="$TRASH/empty.db" caddie db migrate >/dev/null &&
    CADDIE_DB="$TRASH/empty.db" caddie top >out && test_grep "no finished runs" out
'
test_done

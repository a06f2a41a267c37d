#!/usr/bin/env bash
# t0310 — the query cookbook: every ```sql block of the "Query cookbook" section of
# docs/database.md, extracted verbatim (so the docs cannot drift), runs
# against a DB rebuilt from the fixture run dirs (tests/scripts/gen_db_fixture.py) and gives
# the answers in tests/fixtures/db/cookbook_expected.txt (checked by hand against the
# generator's design: e.g. best qk_gain run = qk 5.25 seed 1337 at 1.2190).
. "$CADDIE_SRC/tests/cli/lib.sh"

cp -r "$CADDIE_SRC/tests/fixtures/db/runs" runs
test_expect_success 'the fixture DB rebuilds from the run dirs' '
    caddie db rebuild --runs-dir runs --db fx.db >out &&
    test_grep "rebuilt from runs: 10 runs" out
'
# One file per query: q01.sql, q02.sql, ...
awk '/^## Query cookbook/{s=1; next} /^## /{s=0} s && /^```sql$/{f=1; n++; next}
     s && f && /^```$/{f=0; next} s && f {print > sprintf("q%02d.sql", n)}' "$CADDIE_SRC/docs/database.md"

test_expect_success 'the cookbook has at least 10 queries' '
    test $(ls q*.sql | wc -l) -ge 10
'
test_expect_success 'every cookbook query runs and gives the expected answer' '
    for q in q*.sql; do
        echo "== $q" && sqlite3 -bail fx.db <"$q" || { echo "query $q failed" >&2; cat "$q" >&2; exit 1; }
    done >actual &&
    test_cmp "$CADDIE_SRC/tests/fixtures/db/cookbook_expected.txt" actual
'
test_done

#!/usr/bin/env bash
# t0311 — docs/database.md names exactly the schema: on a fresh DB made by `caddie db migrate`,
# every view has a "### `name`" section under "## Views" and every one there is a view; every
# column of a view is named in its section, and every column its table lists exists; every
# table has a row in the table of "## Tables" and every row is a table. Anywhere in the docs,
# "the `x` view" names a view that exists.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/docs_lib.sh"
doc=$CADDIE_SRC/docs/database.md

test_expect_success 'caddie db migrate makes a fresh DB with tables and views' '
    caddie db migrate --db fresh.db >out &&
    sqlite3 fresh.db "SELECT name FROM sqlite_master WHERE type = '"'view'"' ORDER BY name" >views &&
    sqlite3 fresh.db "SELECT name FROM sqlite_master WHERE type = '"'table'"'
                      AND name NOT LIKE '"'sqlite_%'"' ORDER BY name" >tables &&
    test -s views && test -s tables
'
docs_section "$doc" Views | sed -nE 's/^### `([A-Za-z0-9_]+)`.*$/\1/p' | sort >doc_views
docs_section "$doc" Tables | sed -nE 's/^\| `([A-Za-z0-9_]+)` \|.*$/\1/p' | sort >doc_tables
# view_section VIEW — the lines of "### `VIEW`" inside "## Views"
view_section() { docs_section "$doc" Views | awk -v h="### \`$1\`" '$0 == h {s = 1; next} /^### / {s = 0} s'; }

test_expect_success 'every view has a section in docs/database.md, and every section is a view' '
    test -s doc_views && test_cmp views doc_views
'
test_expect_success 'every table has a row in the Tables section, and every row is a table' '
    test -s doc_tables && test_cmp tables doc_tables
'
test_expect_success 'every column of every view is named in its section' '
    : >missing &&
    while read -r v; do
        view_section "$v" >sec &&
        sqlite3 fresh.db "SELECT name FROM pragma_table_info('"'"'$v'"'"')" >cols &&
        test -s cols || { echo "no columns for view $v" >>missing; continue; }
        while read -r c; do grep -qF "\`$c\`" sec || echo "$v.$c" >>missing; done <cols
    done <views &&
    { test ! -s missing || { echo "view columns the doc does not name:"; cat missing; false; }; }
'
test_expect_success 'every column a view section lists in its table exists' '
    : >extra &&
    while read -r v; do
        sqlite3 fresh.db "SELECT name FROM pragma_table_info('"'"'$v'"'"')" >cols &&
        view_section "$v" | sed -nE "s/^\| (\`[^|]*) \|.*\$/\1/p" | grep -oE "\`[A-Za-z0-9_]+\`" | tr -d "\`" >listed
        while read -r c; do grep -qx "$c" cols || echo "$v.$c" >>extra; done <listed
    done <views &&
    { test ! -s extra || { echo "columns listed in the doc that the view lacks:"; cat extra; false; }; }
'
test_expect_success 'every "the `x` view" in the docs names a view that exists' '
    cat $(docs_files) | tr "\n" " " | grep -oE "the [\`'"'"'][A-Za-z0-9_]+[\`'"'"'] view" |
        sed -E "s/^the .//; s/. view\$//" | sort -u >named_views &&
    test -s named_views &&
    comm -23 named_views views >unknown &&
    { test ! -s unknown || { echo "named as views but not views:"; cat unknown; false; }; }
'
test_done

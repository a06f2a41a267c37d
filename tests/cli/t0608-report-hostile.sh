#!/usr/bin/env bash
# t0608 — every string that reaches the HTML report is escaped: the fixture DB with
# `<script>alert(1)</script>` and attribute-breaking `"`, `'`, `>` in sweep names and
# descriptions, run names, config values (data_path, tokenizer_path), errors and event
# reasons. The page holds none of them raw (each appears escaped instead, so the check is
# not passing because the text is absent), and still renders in headless Chromium with no
# <script> element in its DOM (when chromium is installed).
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/reports_lib.sh"

cat >hostile.sql <<'EOF'
UPDATE sweeps SET name = name || '<script>alert(1)</script>XSS"''>',
                  description = '<script>alert(2)</script>XSS"''>';
UPDATE runs SET name = name || ' <script>alert(3)</script>XSS"''>',
    config = json_set(config, '$.data_path', '<script>alert(4)</script>XSS"''>',
                      '$.tokenizer_path', '<script>alert(5)</script>XSS"''>'),
    error = CASE WHEN status IN ('failed', 'interrupted')
                 THEN 'boom <script>alert(6)</script>XSS"''>' ELSE error END;
UPDATE params SET text = '<script>alert(5)</script>XSS"''>' WHERE key = 'tokenizer_path';
UPDATE events SET reason = 'why <script>alert(7)</script>XSS"''>';
EOF

test_expect_success 'hostile strings in the fixture DB; the report is written' '
    fixture_db && sqlite3 "$CADDIE_DB" <hostile.sql &&
    test "$(sqlite3 "$CADDIE_DB" "SELECT count(*) FROM sweeps WHERE name LIKE '"'"'%<script>%'"'"'")" = 2 &&
    caddie report --out r.html >out && test_grep "^wrote r.html: 2 sweeps, 27 runs" out
'
test_expect_success 'none of them raw in the page; each escaped instead' '
    ! grep -n -i "<script" r.html && ! grep -n -F "XSS\"" r.html && ! grep -n -F "XSS'"'"'" r.html &&
    ! grep -n -F "XSS>" r.html && ! grep -n -F "alert(1)</" r.html &&
    n=$(grep -o -F "&lt;script&gt;alert(" r.html | wc -l) && test "$n" -ge 10 &&
    grep -q -F "XSS&quot;&#39;&gt;" r.html &&
    for k in 1 3 6; do grep -q -F "&lt;script&gt;alert($k)&lt;/script&gt;XSS&quot;&#39;&gt;" r.html || { echo "alert($k) not shown escaped"; exit 1; }; done
'
CHROMIUM=${CADDIE_CHROMIUM:-$(command -v chromium || true)}
if [ -n "$CHROMIUM" ] && [ -x "$CHROMIUM" ]; then
    test_expect_success 'the page still renders: sweep sections and table rows, no script element' '
        profile=$(mktemp -d "$TRASH/chromium.XXXXXX") &&
        timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
            --disable-background-networking --disable-component-update --disable-sync \
            --user-data-dir="$profile" --dump-dom "file://$TRASH/r.html" >dom.html 2>chrome.err &&
        test_grep "<title>caddie report" dom.html && ! grep -q -i "<script" dom.html &&
        test "$(grep -o "<section class=\"sweep\"" dom.html | wc -l)" = 2 &&
        test "$(grep -o "<tr class=\"group" dom.html | wc -l)" = 9 &&
        test "$(grep -o "<tr class=\"failure\"" dom.html | wc -l)" = 2
    '
else
    test_skip 'the page still renders' 'chromium not installed (apt-get install chromium, or make test-deps)'
fi
test_done

#!/usr/bin/env bash
# t0605 — the HTML report rendered by a real browser: headless Chromium (Debian package
# chromium) loads the fixture report from disk, the screenshot must not be blank (its PNG is
# several times larger than a blank page's of the same size), and the parsed DOM must hold
# the expected SVG charts and table rows. Without chromium every test here is SKIPPED with
# the reason (`make test` installs it; see TEST_PKGS in the Makefile).
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/reports_lib.sh"

CHROMIUM=${CADDIE_CHROMIUM:-$(command -v chromium || true)}

if [ -z "$CHROMIUM" ] || ! [ -x "$CHROMIUM" ]; then
    for t in 'page renders (screenshot not blank)' 'DOM has the charts and table rows'; do
        test_skip "$t" "chromium not installed (apt-get install chromium, or make test-deps)"
    done
    test_done
    exit $?
fi

# One fresh profile per call, no network services, no GPU: the flags that make headless
# Chromium deterministic and quiet in a container.
browse() {
    local profile; profile=$(mktemp -d "$TRASH/chromium.XXXXXX")
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --user-data-dir="$profile" "$@"
}

# PNG width and height from the IHDR chunk (bytes 17..24, big endian).
png_size() {
    od -A n -t u1 -j 16 -N 8 "$1" | awk '{ printf "%dx%d\n", $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8 }'
}

test_expect_success 'fixture database and report' '
    fixture_db &&
    caddie report --out report.html >/dev/null &&
    printf "<!DOCTYPE html><html><body style=\"background:#fff\"></body></html>\n" >blank.html
'
test_expect_success 'page renders (screenshot not blank)' '
    browse --window-size=1380,2400 --screenshot="$TRASH/shot.png" "file://$TRASH/report.html" 2>chrome.err &&
    browse --window-size=1380,2400 --screenshot="$TRASH/blank.png" "file://$TRASH/blank.html" 2>>chrome.err &&
    test "$(head -c 8 shot.png | od -A n -t x1 | tr -d " ")" = 89504e470d0a1a0a &&
    test "$(png_size shot.png)" = 1380x2400 && test "$(png_size blank.png)" = 1380x2400 &&
    report_bytes=$(stat -c %s shot.png) && blank_bytes=$(stat -c %s blank.png) &&
    echo "screenshot $report_bytes bytes, blank page $blank_bytes bytes" &&
    test "$report_bytes" -gt $((blank_bytes * 8))
'
test_expect_success 'DOM has the charts and table rows' '
    browse --dump-dom "file://$TRASH/report.html" >dom.html 2>>chrome.err &&
    test_grep "<title>caddie report" dom.html &&
    test "$(grep -o "<svg class=\"chart" dom.html | wc -l)" = 16 &&
    for id in qk-wd-train-loss qk-wd-val-bpb qk-wd-param-muon_wd qk-wd-param-qk_gain_init qk-wd-heatmap \
              qk-wd-artifact qk-wd-time qk-wd-step-time qk-wd-tokens vocab-param-vocab_size; do
        grep -q "<svg class=\"chart[a-z ]*\" id=\"$id\"" dom.html || { echo "chart $id not in the DOM"; exit 1; }
    done &&
    test "$(grep -o "<tr class=\"group" dom.html | wc -l)" = 9 &&
    test "$(grep -o "<tr class=\"failure\"" dom.html | wc -l)" = 2 &&
    test "$(grep -o "<rect class=\"cell\"" dom.html | wc -l)" = 6 &&
    test "$(grep -o "<rect class=\"bar over\"" dom.html | wc -l)" = 3 &&
    grep -q "<path class=\"band\"" dom.html && grep -q "<path class=\"errorbar\"" dom.html
'
test_done

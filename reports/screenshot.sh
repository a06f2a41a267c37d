#!/usr/bin/env bash
# screenshot.sh — render `caddie report` in headless Chromium and save the PNG the README shows.
#
#   bash reports/screenshot.sh [DB] [OUT.png]
#
# Without DB it builds one from tests/fixtures/reports/fixture_runs.sql (synthetic numbers
# shaped like an 8xH100 night, see that file) with `caddie db migrate` + sqlite3; pass the
# DB of a real night (or of `make demo`) to picture that instead. OUT defaults to
# docs/report.png. Needs build/caddie (make), sqlite3 and chromium (make test-deps).
# Not for tests: t0605 checks the rendered page; this only produces the picture.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
caddie="$root/build/caddie"
out=$(realpath -m "${2:-$root/docs/report.png}")
[ -x "$caddie" ] || { echo "screenshot.sh: $caddie missing: run make" >&2; exit 1; }
chromium=$(command -v chromium || true)
[ -n "$chromium" ] || { echo "screenshot.sh: chromium not installed (make test-deps)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/caddie-shot.XXXXXX")
trap 'rm -rf "$work"' EXIT
db=${1:-}
if [ -z "$db" ]; then
    db="$work/fixture.db"
    CADDIE_DB="$db" "$caddie" db migrate >/dev/null
    sqlite3 "$db" <"$root/tests/fixtures/reports/fixture_runs.sql"
fi
# the biggest sweep of the DB: header, verdict, summary table, curves and parameter charts
# (run from the DB's directory so the header names the file, not a temporary path)
cd "$(dirname "$db")"
db=$(basename "$db")
"$caddie" report --db "$db" --sweep "$(sqlite3 "$db" "select sweep from run_summary where sweep is not null group by sweep order by count(*) desc, sweep limit 1")" \
    --out "$work/report.html" >/dev/null
mkdir -p "$(dirname "$out")"
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$work/profile" --window-size=1380,1800 --screenshot="$out" \
    "file://$work/report.html" 2>/dev/null
echo "wrote $out ($(stat -c %s "$out") bytes)"

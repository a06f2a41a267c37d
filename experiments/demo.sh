#!/usr/bin/env bash
# demo.sh — what `make demo` runs (after `make` and `make sample`): queue the CPU quick-start
# sweep (experiments/quickstart_cpu.yaml, 4 short runs on the bundled FineWeb sample), run
# it with the runner on one CPU slot, then show the leaderboard, the config groups and
# where the HTML report and the database are. Everything goes to build/demo/.
# Running it again is cheap: runs already done are skipped (same config hash), an
# interrupted demo (Ctrl-C) resumes with the runs it had not finished.
# Not here: building (the Makefile), the sweep itself (experiments/quickstart_cpu.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
caddie=./build/caddie
out=build/demo
db=$out/caddie.db
mkdir -p "$out"

echo "== queue the quick-start sweep"
"$caddie" sweep add experiments/quickstart_cpu.yaml --db "$db" --runs-dir "$out/runs"

echo
echo "== run it (one CPU slot; Ctrl-C stops cleanly, 'make demo' again resumes)"
"$caddie" run --cpu-slots 1 --until-empty --db "$db"

echo
echo "== leaderboard (the 'leaderboard' view)"
if command -v sqlite3 >/dev/null; then
    sqlite3 -header -column "$db" \
        "SELECT rank, run_id, name, printf('%.4f', val_bpb) AS val_bpb, artifact_bytes,
                printf('%.1f', train_ms / 1000.0) AS train_s, partial
         FROM leaderboard"
else
    "$caddie" ls --db "$db"
fi

echo
echo "== config groups (seeds aggregated)"
"$caddie" top --db "$db"

echo
"$caddie" report --db "$db" --out "$out/report.html"
echo
echo "report:   $out/report.html"
echo "database: $db — query it with sqlite3, e.g."
echo "  sqlite3 -header -column $db 'SELECT * FROM leaderboard'"
echo "  sqlite3 -header -column $db \"SELECT run_id, step, value FROM curves WHERE name = 'val_bpb' ORDER BY run_id, step\""
echo "runs:     $out/runs/<run_id>/ (config.yaml, log.txt, metrics.jsonl, result.json, ...)"

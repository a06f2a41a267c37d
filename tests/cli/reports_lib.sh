# reports_lib.sh — the fixture results DB the report CLI tests (t06xx) read: CADDIE_DB names a
# scratch DB and fixture_db fills it (schema from `caddie db migrate`, rows from
# tests/fixtures/reports/fixture_runs.sql, made by tests/scripts/gen_db_fixture.py).
# Sourced after lib.sh. Not a test itself (no tNNNN name).
export CADDIE_DB="$TRASH/fx.db"

fixture_db() {
    caddie db migrate >/dev/null &&
    sqlite3 "$CADDIE_DB" <"$CADDIE_SRC/tests/fixtures/reports/fixture_runs.sql"
}

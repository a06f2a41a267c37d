-- 0002_stopped.sql — status 'stopped': a run the runner ended early by the sweep's `stop:`
-- rule (median or ASHA, docs/sweeps.md#early-stopping). Its partial curve stays in metrics,
-- its reason (the rule and the numbers) in events; it has no results row, so run_summary
-- shows it with its curve and no score, and leaderboard and sweep_groups (done runs only)
-- never count it. It is final: never retried, and `sweep plan/add` treat its config as done
-- unless --force.
--
-- SQLite cannot ALTER a CHECK constraint, and rebuilding `runs` would cascade-delete every
-- child row (foreign keys are on while migrating), so the constraint's list is widened in the
-- stored schema text, the documented way for a change that only loosens a constraint (no row
-- can violate the new one, the file format is unchanged). RESET reloads the schema of this
-- connection; the CREATE/DROP below bumps the schema cookie so that every other open
-- connection reloads it too.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, '''cancelled'',''interrupted'')', '''cancelled'',''interrupted'',''stopped'')')
 WHERE type = 'table' AND name = 'runs';
PRAGMA writable_schema = RESET;
CREATE TABLE schema_cookie_bump_0002 (x INTEGER);
DROP TABLE schema_cookie_bump_0002;

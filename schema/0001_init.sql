-- 0001_init.sql — the caddie results database: tables, indexes and the public views.
--
-- Applied by `caddie db migrate` and automatically on open; the migration number is the
-- file's prefix and ends up in PRAGMA user_version. The VIEWS (run_summary, leaderboard,
-- sweep_groups, curves) are the stable interface for users, sqlite3 and reports/; the
-- tables may change in later migrations (additive where possible).
-- Not here: data, pragmas that are per-connection (WAL, foreign_keys, busy_timeout are set
-- by db/db.c on every open), anything that is not SQL.
--
-- Timestamps are ISO-8601 UTC text ('2026-11-22T08:01:02.345Z'): readable in sqlite3 and
-- usable with julianday() for arithmetic. Durations are milliseconds (train_ms, eval_ms,
-- wall_ms) as the training logs print them.

-- One row per sweep name; `sweep add` of a changed file updates spec/spec_hash in place
-- (the runs keep the resolved config they were queued with).
CREATE TABLE sweeps (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    spec        TEXT NOT NULL DEFAULT '',      -- the sweep YAML verbatim
    spec_hash   TEXT NOT NULL DEFAULT '',      -- sha256 of spec
    created_at  TEXT NOT NULL
);

-- One row per run (queued, running or finished). run_id is stable and short:
-- '<sweep>-<first 8 hex of config_hash>' (+ '-rN' for forced repeats), or the run dir
-- name for imported runs.
CREATE TABLE runs (
    run_id            TEXT PRIMARY KEY,
    sweep_id          INTEGER REFERENCES sweeps(id) ON DELETE SET NULL,
    name              TEXT NOT NULL DEFAULT '',  -- readable label: the varied keys, e.g. 'qk_gain_init=5.25 seed=42'
    engine            TEXT NOT NULL DEFAULT 'caddie', -- caddie | command | log (imported log)
    config            TEXT NOT NULL DEFAULT '{}', -- resolved config, canonical JSON (sorted keys)
    config_hash       TEXT NOT NULL DEFAULT '',  -- sha256(engine_version + config [+ command])
    group_hash        TEXT NOT NULL DEFAULT '',  -- same without the seed: runs differing only by seed share it
    seed              INTEGER,
    status            TEXT NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued','running','done','failed','cancelled','interrupted')),
    priority          INTEGER NOT NULL DEFAULT 0, -- higher runs first
    devices_requested INTEGER NOT NULL DEFAULT 1,
    devices_assigned  TEXT,                       -- '0,1,2,3' while/after running
    attempts          INTEGER NOT NULL DEFAULT 0, -- times it was started
    retries           INTEGER NOT NULL DEFAULT 0, -- automatic re-queues allowed after a failure
    timeout_s         REAL,                       -- wall-clock limit of one attempt
    launch            TEXT NOT NULL DEFAULT '{}', -- JSON {"argv":[...],"env":{...},"cwd":...}; argv[0]=="caddie" means this binary
    host              TEXT,
    pid               INTEGER,
    boot_id           TEXT,                       -- /proc/sys/kernel/random/boot_id when started
    proc_start_time   INTEGER,                    -- /proc/PID/stat starttime (clock ticks since boot)
    queued_at         TEXT,
    started_at        TEXT,
    ended_at          TEXT,
    exit_code         INTEGER,
    error             TEXT,                       -- why it failed (reason + last log lines)
    git_commit        TEXT,
    git_dirty         INTEGER,
    engine_version    TEXT NOT NULL DEFAULT '',
    run_dir           TEXT NOT NULL DEFAULT ''    -- absolute path of the run directory
);
CREATE INDEX runs_queue  ON runs(status, priority DESC, queued_at, run_id);
CREATE INDEX runs_sweep  ON runs(sweep_id, status);
CREATE INDEX runs_config ON runs(config_hash);
CREATE INDEX runs_group  ON runs(group_hash);

-- Every key of the resolved config, typed: num for numbers and booleans (true=1), text for
-- the value as text, so  WHERE p.key='qk_gain_init' AND p.num=5.25  works.
CREATE TABLE params (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    num    REAL,
    text   TEXT,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX params_key_num ON params(key, num);

-- Curves: names as in metrics.jsonl / the logs (train_loss, val_loss, val_bpb, lr_mul,
-- step_ms, tokens_per_s, ...). value NULL means NaN was logged.
CREATE TABLE metrics (
    run_id  TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    step    INTEGER NOT NULL,
    value   REAL,
    wall_ms REAL,
    PRIMARY KEY (run_id, name, step)
) WITHOUT ROWID;

-- The final numbers of a finished run (result.json, or the summary of an imported log).
CREATE TABLE results (
    run_id            TEXT PRIMARY KEY REFERENCES runs(run_id) ON DELETE CASCADE,
    val_loss          REAL,
    val_bpb           REAL,
    prequant_val_loss REAL,
    prequant_val_bpb  REAL,
    artifact_bytes    INTEGER,   -- code + compressed model, the 16,000,000-byte cap applies
    model_bytes       INTEGER,
    code_bytes        INTEGER,
    train_ms          REAL,
    eval_ms           REAL,
    steps             INTEGER,
    tokens            INTEGER,
    partial           INTEGER NOT NULL DEFAULT 0, -- 1: evaluation limited to a prefix of val
    valid             INTEGER GENERATED ALWAYS AS (
                          artifact_bytes IS NOT NULL AND artifact_bytes <= 16000000
                          AND train_ms IS NOT NULL AND train_ms <= 600000
                          AND (eval_ms IS NULL OR eval_ms <= 600000)) VIRTUAL
);

CREATE TABLE artifacts (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    kind   TEXT NOT NULL,       -- model | weights | checkpoint | log | metrics | result | config | other
    path   TEXT NOT NULL,       -- absolute path
    bytes  INTEGER,
    sha256 TEXT,
    PRIMARY KEY (run_id, path)
) WITHOUT ROWID;

-- Every status change, with the reason (also kept in the run dir's run.json).
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    from_status TEXT,            -- NULL for the first event (queued / imported)
    to_status   TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_run ON events(run_id, id);

-- ---- public views ------------------------------------------------------------------

CREATE VIEW run_summary AS
SELECT r.run_id, s.name AS sweep, r.name, r.status, r.seed,
       x.val_loss, x.val_bpb, x.prequant_val_loss, x.prequant_val_bpb,
       x.artifact_bytes, x.model_bytes, x.code_bytes, x.train_ms, x.eval_ms,
       x.steps, x.tokens, x.valid, x.partial,
       r.config, r.config_hash, r.group_hash, r.error, r.attempts,
       r.queued_at, r.started_at, r.ended_at,
       CASE WHEN r.started_at IS NOT NULL AND r.ended_at IS NOT NULL
            THEN round((julianday(r.ended_at) - julianday(r.started_at)) * 86400.0, 3) END
           AS duration_s,
       r.engine, r.engine_version, r.git_commit, r.git_dirty, r.priority,
       r.devices_requested AS devices, r.exit_code, r.run_dir
FROM runs r
LEFT JOIN sweeps s ON s.id = r.sweep_id
LEFT JOIN results x ON x.run_id = r.run_id;

CREATE VIEW leaderboard AS
SELECT row_number() OVER (ORDER BY val_bpb, run_id) AS rank,
       run_id, sweep, name, seed, val_bpb, val_loss, prequant_val_bpb,
       artifact_bytes, train_ms, eval_ms, partial, config
FROM run_summary
WHERE status = 'done' AND valid = 1 AND val_bpb IS NOT NULL
ORDER BY val_bpb, run_id;

CREATE VIEW sweep_groups AS
SELECT sweep, group_hash, config,
       count(*) AS n,
       avg(val_bpb) AS mean_val_bpb,
       CASE WHEN count(*) > 1 THEN sqrt(sum((val_bpb - mu) * (val_bpb - mu)) / (count(*) - 1)) END
           AS std_val_bpb,
       min(val_bpb) AS min_val_bpb,
       max(val_bpb) AS max_val_bpb,
       avg(val_loss) AS mean_val_loss,
       avg(artifact_bytes) AS mean_artifact_bytes,
       avg(train_ms) AS mean_train_ms,
       min(valid) AS all_valid,
       group_concat(seed, ',') AS seeds
FROM (SELECT r.sweep_id, s.name AS sweep, r.group_hash,
             json_remove(r.config, '$.seed') AS config, r.seed,
             x.val_bpb, x.val_loss, x.artifact_bytes, x.train_ms, x.valid,
             avg(x.val_bpb) OVER (PARTITION BY r.sweep_id, r.group_hash) AS mu
      FROM runs r
      JOIN results x ON x.run_id = r.run_id
      LEFT JOIN sweeps s ON s.id = r.sweep_id
      WHERE r.status = 'done' AND x.val_bpb IS NOT NULL
      ORDER BY r.run_id)
GROUP BY sweep_id, group_hash;

CREATE VIEW curves AS
SELECT m.run_id, s.name AS sweep, m.name, m.step, m.value, m.wall_ms, r.name AS run_name
FROM metrics m
JOIN runs r ON r.run_id = m.run_id
LEFT JOIN sweeps s ON s.id = r.sweep_id;

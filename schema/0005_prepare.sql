-- 0005_prepare.sql — prerequisites between queued runs, and greedy (forward-selection) sweeps.
--
-- run_deps: a run waits until every run it needs is done. A sweep's `prepare:` section queues
-- one run of engine 'prepare' per tokenizer (`caddie data build` into the prepared-data cache)
-- and makes each training run that uses it need it; the runner starts a run only when its
-- prerequisites are done, and fails it ("prepare <run> failed: <reason>") when one of them
-- failed or was cancelled (docs/sweeps.md#prepared-data-prepare).
--
-- greedy, greedy_rounds: a `kind: greedy` sweep file (docs/sweeps.md#greedy-sweeps). Each round
-- is an ordinary sweep named '<name>.rN' (its runs are in runs/sweeps as usual); the runner
-- decides a round once none of its runs is queued or running and queues the next one, so a
-- restarted runner carries on from the last decision.

CREATE TABLE run_deps (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,  -- the waiting run
    needs  TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,  -- the run it waits for
    PRIMARY KEY (run_id, needs)
) WITHOUT ROWID;
CREATE INDEX run_deps_needs ON run_deps(needs);

CREATE TABLE greedy (
    name      TEXT PRIMARY KEY,          -- the greedy file's name; rounds are sweeps '<name>.rN'
    spec      TEXT NOT NULL,             -- the YAML verbatim (each round is planned from it)
    spec_path TEXT NOT NULL,             -- absolute path it was added from (base and corpus resolve beside it)
    runs_dir  TEXT NOT NULL,             -- absolute directory of the rounds' run dirs
    cwd       TEXT NOT NULL,             -- absolute directory `sweep add` ran in (runs start there)
    status    TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done')),
    round     INTEGER NOT NULL DEFAULT 1,  -- the current (last queued) round
    accepted  TEXT NOT NULL DEFAULT '[]',  -- JSON list of the candidates kept so far, in order
    result    TEXT NOT NULL DEFAULT '',    -- why it ended (once done)
    created_at TEXT NOT NULL
);

CREATE TABLE greedy_rounds (
    greedy     TEXT NOT NULL REFERENCES greedy(name) ON DELETE CASCADE,
    round      INTEGER NOT NULL,
    sweep_id   INTEGER REFERENCES sweeps(id) ON DELETE SET NULL,
    base       TEXT NOT NULL,            -- JSON list of the candidates the round starts from
    decision   TEXT,                     -- JSON {"winner": name or null, "scores": {name: mean}, "reason": text}; NULL until decided
    decided_at TEXT,
    PRIMARY KEY (greedy, round)
) WITHOUT ROWID;

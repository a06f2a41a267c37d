-- 0004_slurm_jobs.sql — the Slurm job behind each attempt of a run that `caddie run --executor
-- slurm` handed to Slurm (docs/sweeps.md#more-than-one-box). The runner writes the row BEFORE
-- it calls sbatch (job_name and array_index: enough to find the job in squeue or the jobcomp
-- file if the runner dies before sbatch answers) and fills job_id once sbatch printed it, so a
-- runner killed at any moment and started again re-attaches to the job instead of submitting a
-- second one. Runs of the local executor have no row. Not in run.json: a DB rebuilt from the
-- run dirs knows no job ids (stop the runner first, as for every rebuild).
CREATE TABLE slurm_jobs (
    run_id       TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,   -- runs.attempts of the attempt this job runs
    job_name     TEXT NOT NULL,      -- the sbatch --job-name of its array, 'caddie-<hex>'
    array_index  INTEGER NOT NULL,   -- its task in that array
    job_id       TEXT,               -- '<array job id>_<task>' (what squeue/scancel take); NULL until sbatch answered
    submitted_at TEXT NOT NULL,
    PRIMARY KEY (run_id, attempt)
) WITHOUT ROWID;

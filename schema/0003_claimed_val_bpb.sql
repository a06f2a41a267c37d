-- 0003_claimed_val_bpb.sql — run_summary gains claimed_val_bpb: the val_bpb an imported record
-- claims for the run, next to the parsed val_bpb: the log's own claim (param claimed_val_bpb),
-- else the record's one claim (param record_claimed_val_bpb); NULL for runs without a claim. `caddie import-record` keeps both when they
-- differ and says so. The view is recreated with the column after val_bpb; the other views
-- read run_summary by column name and are unchanged.

DROP VIEW run_summary;

CREATE VIEW run_summary AS
SELECT r.run_id, s.name AS sweep, r.name, r.status, r.seed,
       x.val_loss, x.val_bpb,
       coalesce((SELECT cp.num FROM params cp WHERE cp.run_id = r.run_id AND cp.key = 'claimed_val_bpb'),
                (SELECT cp.num FROM params cp WHERE cp.run_id = r.run_id
                                                AND cp.key = 'record_claimed_val_bpb'))
           AS claimed_val_bpb,
       x.prequant_val_loss, x.prequant_val_bpb,
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

# runner_lib.sh — helpers for the runner CLI tests (t04xx): the fake engine, a scratch DB,
# sqlite3 queries and polling. Sourced after lib.sh. Not a test itself (no tNNNN name).
FAKE="$CADDIE_SRC/tests/fake_engine.sh"
export CADDIE_DB="$TRASH/caddie.db"
# a scratch HOME: a value like "; rm -rf ~" that escaped into a shell could only hurt this
export HOME="$TRASH/home"
mkdir -p "$HOME" && echo canary >"$HOME/canary"

# with a busy timeout: a runner writing at that moment holds the lock for milliseconds, and a
# bare sqlite3 shell would fail at once with "database is locked" (seen under load in t0415)
q() { sqlite3 -batch -noheader -cmd ".timeout 10000" "$CADDIE_DB" "$@"; }

# wait_until SECONDS 'shell condition' — poll every 0.05 s; fails when time runs out
wait_until() {
    local end=$(( $(date +%s%N) + ${1%.*} * 1000000000 )) cond=$2
    while ! eval "$cond"; do
        if [ "$(date +%s%N)" -gt "$end" ]; then echo "timed out waiting for: $cond" >&2; return 1; fi
        sleep 0.05
    done
}

# run_fast ARGS... — the runner with short ticks and grace, until the queue is empty
run_fast() { timeout -k 5 120 "$CADDIE" run --poll 0.05 --grace 0.5 --until-empty "$@"; }

# SQL lives here (single-quoted literals); test bodies, which are single-quoted shell
# strings, call these helpers instead.
n_status() { q "SELECT count(*) FROM runs WHERE status = '$1'"; }                 # STATUS
n_sweep() { q "SELECT count(*) FROM run_summary WHERE sweep = '$1' AND status = '$2'"; } # SWEEP STATUS
run_col() { q "SELECT $2 FROM runs WHERE run_id = '$1'"; }                         # RUN COLUMN
sweep_col() { q "SELECT $2 FROM run_summary WHERE sweep = '$1' ORDER BY run_id"; } # SWEEP COLUMN
cfg_col() { q "SELECT $3 FROM runs WHERE json_extract(config, '\$.$1') = '$2'"; }  # KEY TEXT COLUMN
cfg_num_col() { q "SELECT $3 FROM runs WHERE json_extract(config, '\$.$1') = $2"; } # KEY NUMBER COLUMN
running_id() { q "SELECT run_id FROM runs WHERE status = 'running' ORDER BY run_id LIMIT 1"; }
# per run: run_id|points|distinct steps|min step|max step of one curve
curve_stats() { q "SELECT run_id, count(*), count(DISTINCT step), min(step), max(step) FROM metrics WHERE name = '$1' GROUP BY run_id ORDER BY run_id"; }
# events of runs: run_id|count of events into STATUS
n_events() { q "SELECT r.run_id, (SELECT count(*) FROM events e WHERE e.run_id = r.run_id AND e.to_status = '$2') FROM run_summary r WHERE r.sweep = '$1' ORDER BY r.run_id"; }
n_points() { q "SELECT count(*) FROM metrics WHERE run_id = '$1' AND name = '$2'"; } # RUN NAME
# what must survive a DB rebuild: runs with status/attempts/score, curve shapes, events
snapshot() {
    q "SELECT run_id, sweep, status, attempts, val_bpb, artifact_bytes FROM run_summary ORDER BY run_id;
       SELECT run_id, name, count(*), min(step), max(step), sum(value) FROM metrics GROUP BY run_id, name ORDER BY run_id, name;
       SELECT run_id, from_status, to_status FROM events ORDER BY run_id, id"
}
n_artifacts() { q "SELECT count(*) FROM artifacts WHERE kind = '$1'"; }                # KIND
n_points_from() { q "SELECT count(*) FROM metrics WHERE run_id = '$1' AND name = '$2' AND step >= $3"; } # RUN NAME STEP
steps_of() { q "SELECT group_concat(step) FROM (SELECT step FROM metrics WHERE run_id = '$1' AND name = '$2' ORDER BY step)"; } # RUN NAME
# distinct final scores of a sweep (6 decimals), and, per step of a curve, how many distinct
# values its runs have (1 everywhere = identical curves)
sweep_scores() { q "SELECT DISTINCT printf('%.6f', val_bpb) FROM run_summary WHERE sweep = '$1'"; }
curve_spread() { q "SELECT DISTINCT n FROM (SELECT count(DISTINCT printf('%.5f', m.value)) AS n FROM metrics m JOIN run_summary r USING(run_id) WHERE r.sweep = '$1' AND m.name = '$2' GROUP BY m.step)"; }
# gone PID — the process has exited (a zombie nobody reaped yet counts as gone: after the
# runner is killed its children are reparented to PID 1, which may reap late)
gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# fake_sweep NAME STEPS SLEEP 'I...' [ENV_LINES [TOP_LINES]] — write NAME.yaml: a command
# sweep running the fake engine once per value of grid i (passed as its argument), each run
# FAKE_STEPS steps FAKE_SLEEP seconds apart. ENV_LINES (indented "  KEY: VALUE") are added to
# env, TOP_LINES ("key: value") after the grid.
fake_sweep() {
    {
        printf 'name: %s\nengine: command\ncommand: ["bash", "%s", "{i}"]\n' "$1" "$FAKE"
        printf 'env:\n  FAKE_STEPS: "%s"\n  FAKE_SLEEP: "%s"\n' "$2" "$3"
        if [ -n "${5:-}" ]; then printf '%s\n' "$5"; fi
        printf 'grid:\n  i: [%s]\n' "$4"
        if [ -n "${6:-}" ]; then printf '%s\n' "$6"; fi
    } >"$1.yaml"
}

# micro_config FILE [KEY=VALUE...] — write FILE: the CLI tests' micro model for the real engine
# (2 blocks of width 32, 32-token windows, 12 steps, one thread) on the bundled sample's
# shards and tokenizer. Each KEY=VALUE replaces that key's value or adds the key; KEY= (empty)
# leaves the key out (e.g. data_path= for a sweep whose prepare: supplies the data).
micro_config() {
    local out=$1 s="$CADDIE_SRC/data/sample" kv k
    shift
    local -a keys=(data_path tokenizer_path vocab_size num_layers model_dim num_heads num_kv_heads
                   mlp_mult train_seq_len train_batch_tokens grad_accum_steps iterations
                   warmdown_iters warmup_steps max_wallclock_seconds val_loss_every
                   train_log_every val_batch_size val_max_tokens threads)
    local -A v=([data_path]=$s/fineweb10B_sp1024 [tokenizer_path]=$s/fineweb_1024_bpe.model
                [vocab_size]=1024 [num_layers]=2 [model_dim]=32 [num_heads]=2 [num_kv_heads]=1
                [mlp_mult]=2 [train_seq_len]=32 [train_batch_tokens]=256 [grad_accum_steps]=1
                [iterations]=12 [warmdown_iters]=4 [warmup_steps]=0 [max_wallclock_seconds]=0
                [val_loss_every]=6 [train_log_every]=1 [val_batch_size]=512 [val_max_tokens]=512
                [threads]=1)
    for kv in "$@"; do
        k=${kv%%=*}
        [ -n "${v[$k]+set}" ] || keys+=("$k")
        v[$k]=${kv#*=}
    done
    : >"$out"
    for k in "${keys[@]}"; do
        [ -z "${v[$k]}" ] || printf '%s: %s\n' "$k" "${v[$k]}" >>"$out"
    done
}

#!/usr/bin/env python3
"""gen_db_fixture.py — writes tests/fixtures/db/runs/: run directories (run.json,
metrics.jsonl, result.json) with known values, from which `caddie db rebuild` makes the
fixture DB the query cookbook of docs/database.md is tested against (tests/cli/t0310-db-cookbook.sh).

Design (values chosen so every cookbook answer is obvious):
  sweep qk_gain (engine caddie): qk_gain_init 1.5 / 4.0 / 5.25 x seeds 1337, 42, all done
    and valid, plus qk 5.25 seed 2025 failed with a NaN error (2 attempts);
    val_bpb: 1.5 -> 1.2250/1.2262, 4.0 -> 1.2221/1.2229, 5.25 -> 1.2190/1.2204
  sweep vocab (engine caddie): 1024 done (1.2244, valid), 8192 done but over the byte cap
    (16,400,000 bytes, 1.1900: not valid), 4096 interrupted then re-queued (queued now).
Curves per done run: train_loss at steps 0,100,..,400; val_bpb at 200 and 400.
Run once; the output is committed. Deterministic.
"""
import hashlib, json, os, shutil, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "db", "runs")
if os.path.isdir(root):
    shutil.rmtree(root)
os.makedirs(root)

SPECS = {
    "qk_gain": "name: qk_gain\ngrid:\n  qk_gain_init: [1.5, 4.0, 5.25]\nseeds: [1337, 42]\n",
    "vocab": "name: vocab\ngrid:\n  vocab: [...]\n",
}
DESC = {"qk_gain": "qk_gain_init sweep", "vocab": "vocabulary sizes"}


def canon(d):
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def ts(minute, sec=0):
    return "2026-04-20T%02d:%02d:%02d.000Z" % (1 + minute // 60, minute % 60, sec)


def write_run(sweep, cfg, status, q_min, start_min=None, end_min=None, result=None, error=None,
              attempts=1, events=None, exit_code=None):
    h = sha("caddie 0.1.0\n" + canon(cfg) + "\ndevices=1")
    g = sha("caddie 0.1.0\n" + canon({k: v for k, v in cfg.items() if k != "seed"}) + "\ndevices=1")
    run_id = "%s-%s" % (sweep, h[:8])
    d = os.path.join(root, run_id)
    os.makedirs(d)
    name = " ".join("%s=%s" % (k, cfg[k]) for k in sorted(cfg) if k in ("qk_gain_init", "vocab_size")) + " seed=%d" % cfg["seed"]
    run = {
        "format": "caddie-run/1", "run_id": run_id, "name": name, "engine": "caddie",
        "config": cfg, "config_hash": h, "group_hash": g, "seed": cfg["seed"], "status": status,
        "priority": 0, "devices_requested": 1, "devices_assigned": "0" if start_min is not None else None,
        "attempts": attempts, "retries": 1, "timeout_s": 1500.0,
        "launch": {"argv": ["caddie", "train", "config.yaml"], "env": {}, "cwd": "/work"},
        "host": "box" if start_min is not None else None, "pid": None, "boot_id": None,
        "proc_start_time": None, "queued_at": ts(q_min),
        "started_at": ts(start_min) if start_min is not None else None,
        "ended_at": ts(end_min) if end_min is not None else None,
        "exit_code": exit_code, "error": error, "git_commit": "0123456789ab", "git_dirty": 0,
        "engine_version": "caddie 0.1.0",
        "sweep": {"name": sweep, "description": DESC[sweep], "spec": SPECS[sweep],
                  "spec_hash": sha(SPECS[sweep]), "created_at": ts(0)},
        "events": events,
    }
    with open(os.path.join(d, "run.json"), "w") as f:
        json.dump(run, f)
        f.write("\n")
    if result:
        bpb = result["val_bpb"]
        with open(os.path.join(d, "metrics.jsonl"), "w") as f:
            for step in range(0, 401, 100):
                loss = round(6.9 - step * 0.01 + (bpb - 1.2) * 2, 4)
                f.write(json.dumps({"step": step, "name": "train_loss", "value": loss, "wall_ms": step * 45.0}) + "\n")
            for step, extra in ((200, 0.05), (400, 0.0)):
                f.write(json.dumps({"step": step, "name": "val_bpb", "value": round(bpb - 0.007 + extra, 4),
                                    "wall_ms": step * 45.0}) + "\n")
        r = {"run_id": run_id, "val_loss": round(bpb * 1.6885, 4), "val_bpb": bpb,
             "prequant_val_loss": round((bpb - 0.007) * 1.6885, 4), "prequant_val_bpb": round(bpb - 0.007, 4),
             "artifact_bytes": result.get("artifact_bytes", 15863489), "model_bytes": 15815847,
             "code_bytes": 47642, "train_ms": result.get("train_ms", 600000 - 30), "eval_ms": 41000,
             "steps": 400, "tokens": 400 * 524288, "partial": 0, "engine_version": "caddie 0.1.0",
             "git_commit": "0123456789ab", "git_dirty": 0}
        with open(os.path.join(d, "result.json"), "w") as f:
            json.dump(r, f, indent=1)
            f.write("\n")
    return run_id


def life(q, s, e, final, reason, extra=()):
    ev = [{"at": ts(q), "from": None, "to": "queued", "reason": "queued by sweep add experiments/x.yaml"}]
    ev += list(extra)
    ev.append({"at": ts(s), "from": "queued", "to": "running", "reason": "started"})
    ev.append({"at": ts(e), "from": "running", "to": final, "reason": reason})
    return ev


minute = 0
qk_vals = {1.5: (1.2250, 1.2262), 4.0: (1.2221, 1.2229), 5.25: (1.2190, 1.2204)}
for si, seed in enumerate((1337, 42)):
    for qk, bpbs in qk_vals.items():
        cfg = {"qk_gain_init": qk, "seed": seed, "vocab_size": 1024}
        s, e = minute, minute + 10 + si
        write_run("qk_gain", cfg, "done", 0, s, e, result={"val_bpb": bpbs[si]},
                  events=life(0, s, e, "done", "exit 0"), exit_code=0)
        minute += 11
# the failed one: two attempts
cfg = {"qk_gain_init": 5.25, "seed": 2025, "vocab_size": 1024}
s1, e1, s2, e2 = minute, minute + 2, minute + 3, minute + 5
ev = [{"at": ts(0), "from": None, "to": "queued", "reason": "queued by sweep add experiments/x.yaml"},
      {"at": ts(s1), "from": "queued", "to": "running", "reason": "started"},
      {"at": ts(e1), "from": "running", "to": "failed", "reason": "NaN loss"},
      {"at": ts(e1, 1), "from": "failed", "to": "queued", "reason": "retry 1/1"},
      {"at": ts(s2), "from": "queued", "to": "running", "reason": "started"},
      {"at": ts(e2), "from": "running", "to": "failed", "reason": "NaN loss"}]
write_run("qk_gain", cfg, "failed", 0, s2, e2, error="NaN loss at step 812: train_loss:nan\nstep:812/20000 train_loss:nan",
          attempts=2, events=ev, exit_code=1)
minute += 6
# vocab sweep
write_run("vocab", {"vocab_size": 1024, "seed": 1337}, "done", 1, minute, minute + 12,
          result={"val_bpb": 1.2244}, events=life(1, minute, minute + 12, "done", "exit 0"), exit_code=0)
minute += 13
write_run("vocab", {"vocab_size": 8192, "seed": 1337}, "done", 1, minute, minute + 14,
          result={"val_bpb": 1.1900, "artifact_bytes": 16400000}, events=life(1, minute, minute + 14, "done", "exit 0"),
          exit_code=0)
minute += 15
ev = [{"at": ts(1), "from": None, "to": "queued", "reason": "queued by sweep add experiments/x.yaml"},
      {"at": ts(minute), "from": "queued", "to": "running", "reason": "started"},
      {"at": ts(minute + 4), "from": "running", "to": "interrupted", "reason": "runner gone: pid 4242 not alive"},
      {"at": ts(minute + 4, 2), "from": "interrupted", "to": "queued", "reason": "requeued after interruption"}]
write_run("vocab", {"vocab_size": 4096, "seed": 1337}, "queued", 1, attempts=1, events=ev)
print("wrote", len(os.listdir(root)), "run dirs to", root)

"""sqlite_insert_baseline.py N DB: Python's sqlite3 inserting the N metric rows that
gen_train_log.py's log holds into a table shaped like caddie's metrics (one transaction,
executemany, WAL like caddie's DB); prints "N WALL_SECONDS CPU_SECONDS" for the insert alone. The baseline of
the import-log section of `make bench`."""
import os
import sqlite3
import sys
import time

n, db = int(sys.argv[1]), sys.argv[2]
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(db + suffix):
        os.remove(db + suffix)
c = sqlite3.connect(db)
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE metrics(run_id TEXT NOT NULL, name TEXT NOT NULL, step INTEGER NOT NULL,"
          " value REAL, wall_ms REAL, PRIMARY KEY(run_id, name, step)) WITHOUT ROWID")
rows = []
for s in range(1, n // 2 + 1):
    rows.append(("bench", "train_loss", s, 4.0 - s * 1e-6, s * 50.0))
    rows.append(("bench", "step_ms", s, 50.0, s * 50.0))
t, cpu = time.perf_counter(), time.process_time()
with c:
    c.executemany("INSERT INTO metrics VALUES(?,?,?,?,?)", rows)
print("%d %.3f %.3f" % (len(rows), time.perf_counter() - t, time.process_time() - cpu))

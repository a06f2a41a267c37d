#!/usr/bin/env bash
# t0418 — the SQLite failures a user can fix, each one line naming the DB file and what to do:
#   SQLITE_READONLY: the DB file made immutable (chattr +i, which stops root too; a plain
#     chmod 444 does not, and the tests run as root): sweep add fails with "cannot be written";
#   SQLITE_CANTOPEN: a copy on a read-only mount (a WAL DB needs its -shm beside it, so even
#     `ls` fails there): "its directory must be writable";
#   SQLITE_BUSY past the busy timeout (10 s): a sqlite3 shell holding BEGIN EXCLUSIVE while
#     sweep add writes: names the timeout and how to find the holder;
#   SQLITE_FULL: the DB on a full tmpfs: "the disk holding the database is full".
# Before: each was SQLite's bare text ("attempt to write a readonly database", "unable to open
# database file", "database is locked", "database or disk is full") with no remedy.
# Parts needing mount/chattr are skipped where they are not allowed.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

fake_sweep a 1 0 "1, 2"
fake_sweep b 1 0 "1, 2, 3, 4, 5, 6, 7, 8"
test_expect_success 'a DB with a sweep' 'caddie sweep add a.yaml >/dev/null && test $(n_status queued) = 2'

cp caddie.db imm.db
if chattr +i imm.db 2>/dev/null; then
    test_expect_success 'an immutable DB: sweep add fails naming the file and the fix' '
        test_must_fail 1 caddie sweep add b.yaml --db imm.db >out 2>err &&
        test "$(wc -l <err)" = 1 &&
        test_grep "^caddie sweep add: imm.db: .*readonly database: the database cannot be written .*make it writable, or copy it somewhere writable and pass --db" err
    '
    chattr -i imm.db
else
    test_skip 'an immutable DB' 'chattr +i is not supported here'
fi

mkdir ro
if mount -t tmpfs -o size=1m tmpfs ro 2>/dev/null; then
    test_expect_success 'a DB on a read-only mount: ls and sweep add name the file and the fix' '
        cp caddie.db ro/ && mount -o remount,ro ro &&
        for cmd in ls "sweep add b.yaml"; do
            test_must_fail 1 caddie $cmd --db ro/caddie.db >out 2>err || exit 1
            test "$(wc -l <err)" = 1 || exit 1
            test_grep "ro/caddie.db: .*its directory must be writable \(not a read-only mount\): copy it somewhere writable and pass --db" err || exit 1
        done
    '
    umount ro
else
    test_skip 'a DB on a read-only mount' 'cannot mount a tmpfs here (needs root)'
fi

test_expect_success 'a writer held out past the busy timeout: named, with how to find the holder' '
    mkfifo hold && { sqlite3 caddie.db <hold >holder.out 2>&1 & echo $! >holder.pid; } &&
    exec 9>hold && echo "BEGIN EXCLUSIVE; INSERT INTO events(run_id, at, from_status, to_status) SELECT run_id, 0, status, status FROM runs LIMIT 1;" >&9 &&
    sleep 0.5 && start=$(date +%s) &&
    test_must_fail 1 caddie sweep add b.yaml >out 2>err; rc=$?
    echo "ROLLBACK;" >&9; exec 9>&-; wait "$(cat holder.pid)"
    test $rc = 0 && test $(( $(date +%s) - start )) -ge 9 && test "$(wc -l <err)" = 1 &&
    test_grep "caddie.db: .*database is locked: another process held a lock on the database for longer than the 10 s busy timeout; find it with .fuser [^ ]*caddie.db. .*end its transaction, and rerun" err &&
    caddie sweep add b.yaml >/dev/null && test $(n_status queued) = 8
'

mkdir full
if mount -t tmpfs -o size=256k tmpfs full 2>/dev/null; then
    test_expect_success 'a DB on a full disk: sweep add names the file and the fix' '
        fake_sweep c 1 0 "$(seq -s, 1 200)" &&
        CADDIE_DB=full/caddie.db caddie sweep add a.yaml --runs-dir runs-full >/dev/null &&
        { dd if=/dev/zero of=full/filler bs=4k count=64 2>/dev/null; true; } &&
        test_must_fail 1 caddie sweep add c.yaml --db full/caddie.db --runs-dir runs-full >out 2>err &&
        test "$(wc -l <err)" = 1 &&
        test_grep "full/caddie.db: .*: the disk holding the database is full; free space there \(or move the DB elsewhere and pass --db\) and rerun" err
    '
    umount full
else
    test_skip 'a DB on a full disk' 'cannot mount a tmpfs here (needs root)'
fi
test_done

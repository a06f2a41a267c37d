# slurm_lib.sh — a real single-node Slurm cluster for the Slurm executor's CLI tests (t042x):
# munged, slurmctld and slurmd started here, without systemd, every file under $TRASH/slurm,
# on free ports, with fake GPUs (character devices made by mknod) declared as GRES gpu:2, and
# the jobcomp file as the only record of finished jobs (no accounting daemon), as on a small
# cluster. Sourced after lib.sh and runner_lib.sh. Not a test itself (no tNNNN name).
#
#   slurm_start   starts the cluster and exports SLURM_CONF; 1 with $SLURM_WHY set when it cannot
#                 (slurm-wlm missing, a daemon refusing to start here): the caller skips.
#   slurm_stop    cancels what is left, stops every daemon it started (also on exit: a trap).
SL="$TRASH/slurm"
SLURM_NODE=$(hostname -s 2>/dev/null || echo localhost)
SLURM_WHY=""
_slurm_pids=""
SLSOCK=""

_slurm_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# _slurm_wait SECONDS 'condition' — like wait_until, quiet
_slurm_wait() {
    local end=$(( $(date +%s) + $1 ))
    while ! eval "$2" >/dev/null 2>&1; do
        [ "$(date +%s)" -gt "$end" ] && return 1
        sleep 0.2
    done
}

slurm_start() {
    local b
    for b in munged slurmctld slurmd sbatch squeue scancel scontrol sinfo mknod; do
        if ! command -v "$b" >/dev/null 2>&1; then
            SLURM_WHY="$b is not installed (make test-deps installs slurm-wlm and munge)"
            return 1
        fi
    done
    mkdir -p "$SL/state" "$SL/spool" "$SL/log" "$SL/key" "$SL/dev" && chmod 700 "$SL/key" ||
        { SLURM_WHY="cannot make $SL"; return 1; }
    # munged wants every directory above its socket searchable by all, which a mktemp -d
    # directory (0700) is not: the socket gets its own directory in /tmp
    SLSOCK=$(mktemp -d /tmp/caddie-munge.XXXXXX) && chmod 755 "$SLSOCK" ||
        { SLURM_WHY="cannot make a socket directory in /tmp"; return 1; }
    # munged checks that its key is private and its socket directory reachable by everyone
    dd if=/dev/urandom of="$SL/key/munge.key" bs=1024 count=1 2>/dev/null && chmod 400 "$SL/key/munge.key"
    if ! mknod "$SL/dev/nvidia0" c 195 0 2>/dev/null || ! mknod "$SL/dev/nvidia1" c 195 1 2>/dev/null; then
        SLURM_WHY="mknod of the fake GPU devices failed (needs root or CAP_MKNOD)"
        return 1
    fi
    if ! munged --socket="$SLSOCK/munge.sock" --key-file="$SL/key/munge.key" \
        --log-file="$SL/log/munged.log" --pid-file="$SL/munged.pid" --seed-file="$SL/key/seed" \
        >"$SL/log/munged.out" 2>&1; then
        SLURM_WHY="munged did not start: $(tail -n 2 "$SL/log/munged.out" | tr '\n' ' ')"
        rm -rf "$SLSOCK"; return 1
    fi
    _slurm_pids="$(cat "$SL/munged.pid")"
    trap slurm_stop EXIT
    local port=$(( 20000 + (RANDOM * 7 + $$) % 30000 ))
    while ! _slurm_port_free $port || ! _slurm_port_free $((port + 1)); do port=$((port + 2)); done
    cat >"$SL/slurm.conf" <<EOF
ClusterName=caddietest
SlurmctldHost=$SLURM_NODE(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SLSOCK/munge.sock
StateSaveLocation=$SL/state
SlurmdSpoolDir=$SL/spool
SlurmctldPidFile=$SL/slurmctld.pid
SlurmdPidFile=$SL/slurmd.pid
SlurmctldLogFile=$SL/log/slurmctld.log
SlurmdLogFile=$SL/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$SL/jobcomp.txt
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=2
MinJobAge=300
NodeName=$SLURM_NODE NodeAddr=127.0.0.1 CPUs=2 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    echo "NodeName=$SLURM_NODE Name=gpu File=$SL/dev/nvidia[0-1]" >"$SL/gres.conf"
    export SLURM_CONF="$SL/slurm.conf"
    if ! slurmctld -i >"$SL/log/slurmctld.out" 2>&1 || ! _slurm_wait 20 "test -s '$SL/slurmctld.pid'"; then
        SLURM_WHY="slurmctld did not start: $(tail -n 3 "$SL/log/slurmctld.log" "$SL/log/slurmctld.out" 2>/dev/null | tr '\n' ' ')"
        slurm_stop; return 1
    fi
    _slurm_pids="$_slurm_pids $(cat "$SL/slurmctld.pid")"
    if ! slurmd >"$SL/log/slurmd.out" 2>&1 || ! _slurm_wait 20 "test -s '$SL/slurmd.pid'"; then
        SLURM_WHY="slurmd did not start: $(tail -n 3 "$SL/log/slurmd.log" "$SL/log/slurmd.out" 2>/dev/null | tr '\n' ' ')"
        slurm_stop; return 1
    fi
    _slurm_pids="$_slurm_pids $(cat "$SL/slurmd.pid")"
    if ! _slurm_wait 60 "sinfo -h -o %T | grep -qx idle"; then
        SLURM_WHY="the node never became idle: $(sinfo -h 2>&1 | head -n 2 | tr '\n' ' ') $(tail -n 3 "$SL/log/slurmd.log" | tr '\n' ' ')"
        slurm_stop; return 1
    fi
    return 0
}

slurm_stop() {
    [ -n "$_slurm_pids" ] || return 0
    if [ -n "${SLURM_CONF:-}" ]; then
        scancel --me >/dev/null 2>&1
        _slurm_wait 15 "test -z \"\$(squeue -h -t pending,running,completing 2>/dev/null)\""
    fi
    local p
    for p in $_slurm_pids; do kill -TERM "$p" 2>/dev/null; done
    for p in $_slurm_pids; do _slurm_wait 10 "! kill -0 $p" || kill -KILL "$p" 2>/dev/null; done
    _slurm_pids=""
    rm -rf "$SLSOCK"
}

# slurm_state JOB_ID — the job's state as squeue knows it ("" when it does not)
slurm_state() { squeue -h --states=all -r -o '%i|%T' 2>/dev/null | sed -n "s/^$1|//p"; }
# slurm_jobs_in STATE — how many jobs the jobcomp file records with that final state
slurm_jobs_in() { grep -c "JobState=$1 " "$SL/jobcomp.txt" 2>/dev/null || true; }
# slurm_record_sbatch — an sbatch ahead of Slurm's on PATH that appends its arguments to
# $TRASH/sbatch.args, then runs Slurm's: the test sees what Slurm was asked for (a jobcomp file
# without GRES accounting does not say), not only what it granted
slurm_record_sbatch() {
    mkdir -p "$TRASH/bin" && cat >"$TRASH/bin/sbatch" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>'$TRASH/sbatch.args'
exec '$(command -v sbatch)' "\$@"
EOF
    chmod +x "$TRASH/bin/sbatch" && export PATH="$TRASH/bin:$PATH"
}

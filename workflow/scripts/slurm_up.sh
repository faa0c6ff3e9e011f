#!/usr/bin/env bash
# Bring up a single-node SLURM cluster on this machine (munge + slurmctld + slurmd), for testing
# the workflow's SLURM profile against a real scheduler, and for running the workflow on one big
# machine through SLURM.  Idempotent: a second call finds the daemons running and only waits for
# the node.  Undo with workflow/scripts/slurm_down.sh.
#
#   sudo workflow/scripts/slurm_up.sh            # install (apt) if needed, configure, start, wait
#   SLURM_PARTITION=debug SLURM_UP_TIMEOUT=60 workflow/scripts/slurm_up.sh
#
# What it does
#   1. checks it runs as root; installs slurm-wlm + munge with apt-get when slurmd is missing;
#   2. creates the munge key if missing (mungekey, 1024 bit) and starts munged;
#   3. writes /etc/slurm/slurm.conf for this host: the node's CPUs, sockets, cores and
#      RealMemory from `slurmd -C`, select/cons_tres with CR_Core_Memory (so --cpus-per-task and
#      --mem are what the scheduler allocates), one default partition, no accounting (so the
#      profile's status command must be `squeue`), no cgroups (works in containers);
#      a slurm.conf that this script did not write is never overwritten;
#   4. starts slurmctld and slurmd, records their pids (and munged's, if it started it) in
#      $SLURM_UP_STATE/started so that slurm_down.sh stops only what was started here;
#   5. waits until `sinfo` shows the node idle (resumes it when it comes up DOWN).
#
# Exit codes: 0 up; 2 not root; 3 apt-get could not install SLURM; 4 daemons failed to start or
# the node did not become idle in time; 5 a foreign slurm.conf is in the way.
set -euo pipefail

PARTITION="${SLURM_PARTITION:-debug}"
TIMEOUT="${SLURM_UP_TIMEOUT:-90}"
STATE="${SLURM_UP_STATE:-/run/dplm2-slurm}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MARKER="# managed by dplm2 workflow/scripts/slurm_up.sh"
SPOOL=/var/spool/slurm-dplm2
LOGDIR=/var/log/slurm-dplm2

log() { printf 'slurm_up: %s\n' "$*" >&2; }
die() { local code=$1; shift; printf 'slurm_up: ERROR: %s\n' "$*" >&2; exit "$code"; }

# A pid file's process is alive and is the named program (guards against reused pids).
alive() {
    local pidfile=$1 name=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ -r /proc/$pid/comm ]] && [[ $(</proc/"$pid"/comm) == "$name" ]]
}

[[ $(id -u) -eq 0 ]] || die 2 "must run as root (it installs packages, writes /etc/slurm and starts daemons); try: sudo $0"

# --- 1. packages -----------------------------------------------------------------------------
if ! command -v slurmd >/dev/null || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die 3 "slurmd/slurmctld/munged are missing and apt-get is not available to install them"
    log "installing slurm-wlm and munge with apt-get (about a minute)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            slurm-wlm munge >/dev/null; }; then
        die 3 "apt-get could not install slurm-wlm and munge (no network or no package source?)"
    fi
fi
mkdir -p "$STATE"
: >>"$STATE/started"

# --- 2. munge --------------------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating munge key /etc/munge/munge.key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key --bits=1024 --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
MUNGE_PID=/run/munge/munged.pid
if ! alive "$MUNGE_PID" munged && ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --force || die 4 "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 50); do alive "$MUNGE_PID" munged && break; sleep 0.1; done
    alive "$MUNGE_PID" munged || die 4 "munged did not write $MUNGE_PID"
    echo "munged $MUNGE_PID $(<"$MUNGE_PID")" >>"$STATE/started"
fi
munge -n </dev/null | unmunge >/dev/null || die 4 "munge credentials do not round-trip (munge -n | unmunge)"

# --- 3. slurm.conf ---------------------------------------------------------------------------
HOST=$(hostname -s)
# `slurmd -C` prints this machine's real layout: NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 ...
NODE_LINE=$(slurmd -C | head -n 1)
[[ $NODE_LINE == NodeName=* ]] || die 4 "slurmd -C did not describe the node: $NODE_LINE"
NODE_LINE="NodeName=$HOST ${NODE_LINE#NodeName=* }"
# keep a little memory back for the OS and the daemons
REAL_MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODE_LINE")
NODE_LINE=$(sed "s/RealMemory=[0-9]*/RealMemory=$((REAL_MEM * 95 / 100))/" <<<"$NODE_LINE")
GRES_LINE=""
GRES_TYPES=""
if command -v nvidia-smi >/dev/null && NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU'); [[ ${NGPU:-0} -gt 0 ]]; then
    GRES_TYPES="GresTypes=gpu"
    GRES_LINE=" Gres=gpu:$NGPU"
fi

if [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
    die 5 "$CONF exists and was not written by this script; refusing to overwrite a site configuration"
fi
mkdir -p "$CONF_DIR" "$SPOOL/ctld" "$SPOOL/d" "$LOGDIR"
NEW_CONF=$(mktemp)
cat >"$NEW_CONF" <<EOF
$MARKER
# Single-node cluster on $HOST. Regenerated on each run of the script; edit the script instead.
ClusterName=dplm2local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# no accounting database: sacct has nothing, the profile polls squeue
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# finished jobs stay visible to squeue/scontrol for an hour
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
$GRES_TYPES
$NODE_LINE$GRES_LINE State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
if [[ -n $GRES_LINE ]]; then
    {
        echo "$MARKER"
        echo "NodeName=$HOST Name=gpu File=/dev/nvidia[0-$((NGPU - 1))]"
    } >"$CONF_DIR/gres.conf"
fi
CHANGED=0
if ! cmp -s "$NEW_CONF" "$CONF"; then
    install -m 0644 "$NEW_CONF" "$CONF"
    CHANGED=1
    log "wrote $CONF ($NODE_LINE$GRES_LINE, partition $PARTITION)"
fi
rm -f "$NEW_CONF"

# --- 4. daemons ------------------------------------------------------------------------------
start() {
    local name=$1 pidfile=$2
    if alive "$pidfile" "$name"; then
        if [[ $CHANGED -eq 1 ]]; then
            log "$name running with an old slurm.conf; reconfiguring"
            scontrol reconfigure >/dev/null 2>&1 || true
        fi
        return 0
    fi
    log "starting $name"
    "/usr/sbin/$name" || die 4 "$name did not start (see $LOGDIR/$name.log)"
    for _ in $(seq 100); do alive "$pidfile" "$name" && break; sleep 0.1; done
    alive "$pidfile" "$name" || die 4 "$name exited after start (see $LOGDIR/$name.log)"
    echo "$name $pidfile $(<"$pidfile")" >>"$STATE/started"
}
start slurmctld /run/slurmctld.pid
start slurmd /run/slurmd.pid

# --- 5. wait for the node --------------------------------------------------------------------
deadline=$((SECONDS + TIMEOUT))
while :; do
    state=$(sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n 1 || true)
    case $state in
        idle | mixed | allocated | completing) break ;;
        down* | drain* | drained*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    ((SECONDS < deadline)) || die 4 "node $HOST not idle after ${TIMEOUT}s (state '${state:-none}'); see $LOGDIR/"
    sleep 1
done
log "up: node $HOST $state, partition $PARTITION; stop with workflow/scripts/slurm_down.sh"
sinfo -N -l

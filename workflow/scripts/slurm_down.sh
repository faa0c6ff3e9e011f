#!/usr/bin/env bash
# Stop the single-node SLURM cluster that workflow/scripts/slurm_up.sh started.
# Only the daemons recorded in $SLURM_UP_STATE/started are stopped, each by its pid (a daemon
# that was already running before slurm_up.sh is left alone).  Running jobs are cancelled first.
#
#   workflow/scripts/slurm_down.sh            # stop daemons started by slurm_up.sh
#   workflow/scripts/slurm_down.sh --purge    # also remove slurm.conf and the spool/log dirs
#                                             # (only when slurm_up.sh wrote them)
set -euo pipefail

STATE="${SLURM_UP_STATE:-/run/dplm2-slurm}"
MARKER="# managed by dplm2 workflow/scripts/slurm_up.sh"
PURGE=0
[[ ${1:-} == --purge ]] && PURGE=1

log() { printf 'slurm_down: %s\n' "$*" >&2; }
[[ $(id -u) -eq 0 ]] || { log "ERROR: must run as root"; exit 2; }

if [[ ! -s $STATE/started ]]; then
    log "nothing recorded in $STATE/started: no daemons to stop"
else
    if grep -q '^slurmctld ' "$STATE/started" && command -v scancel >/dev/null; then
        scancel --full --quiet --user=root 2>/dev/null || true
    fi
    # stop in reverse start order: slurmd, slurmctld, munged
    tac "$STATE/started" | while read -r name pidfile pid; do
        [[ -n ${pid:-} ]] || continue
        if [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$name" ]]; then
            log "stopping $name (pid $pid)"
            kill -TERM "$pid"
            for _ in $(seq 100); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
            if [[ -e /proc/$pid ]]; then
                log "$name (pid $pid) still running after 10 s; sending KILL"
                kill -KILL "$pid" || true
            fi
        else
            log "$name (pid $pid) is not running"
        fi
    done
    rm -f "$STATE/started"
fi

if [[ $PURGE -eq 1 ]]; then
    if [[ -f /etc/slurm/slurm.conf ]] && grep -qF "$MARKER" /etc/slurm/slurm.conf; then
        log "removing /etc/slurm/slurm.conf, gres.conf and the spool/log dirs"
        rm -f /etc/slurm/slurm.conf
        [[ -f /etc/slurm/gres.conf ]] && grep -qF "$MARKER" /etc/slurm/gres.conf && rm -f /etc/slurm/gres.conf
        rm -rf /var/spool/slurm-dplm2 /var/log/slurm-dplm2
    fi
fi
log "down"

"""A job stops when the workflow that started it is gone (no orphaned training).

Snakemake runs a rule as ``bash -c "<command>"``. When the ``snakemake`` process is killed
(SIGKILL, an out-of-memory kill, a lost login session), that shell and the ``dplm2`` process
under it are not: the training would run on as an orphan, write into ``results/`` behind the
back of the next Snakemake run, and hold the CPUs or GPUs. So the rules export
``DPLM2_STOP_WITH_PID=$PPID`` (the Snakemake process; ``common.smk`` sets it in the shell
prefix) and :func:`watch_from_env`, called by the ``dplm2`` CLI, checks 4 times a second that this
process is still the same live process (psutil compares its creation time, so a recycled pid
does not count) and otherwise stops the job with SIGTERM: a training then ends at once, keeping
its last complete checkpoint for the next run to resume.

Not a parent-death signal (``prctl(PR_SET_PDEATHSIG)``): that fires when the *direct* parent
dies, which is the ``bash -c`` shell that survives Snakemake, or ``torchrun``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import psutil

log = logging.getLogger(__name__)

ENV = "DPLM2_STOP_WITH_PID"


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def watch(pid: int, interval: float = 0.25, sig: int = signal.SIGTERM) -> threading.Thread | None:
    """Send ``sig`` to this process when process ``pid`` ends; returns the watching thread
    (a daemon), or None when ``pid`` is already gone or is this process."""
    if pid == os.getpid():
        return None
    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        proc = None
    if proc is None or not _alive(proc):
        log.error("the process %d that started this job is already gone: stopping", pid)
        os.kill(os.getpid(), sig)
        return None

    def loop() -> None:
        while _alive(proc):
            time.sleep(interval)
        log.error(
            "the workflow process %d that started this job has ended: stopping this job too "
            "(a training keeps its last complete checkpoint; run the workflow again to resume)",
            pid,
        )
        os.kill(os.getpid(), sig)

    thread = threading.Thread(target=loop, name="dplm2-lifeline", daemon=True)
    thread.start()
    return thread


def watch_from_env() -> threading.Thread | None:
    """:func:`watch` the pid in ``$DPLM2_STOP_WITH_PID`` when it is set (else nothing)."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    try:
        pid = int(value)
    except ValueError:
        log.warning("%s=%r is not a process id: ignored", ENV, value)
        return None
    return watch(pid)


__all__ = ["ENV", "watch", "watch_from_env"]

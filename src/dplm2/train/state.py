"""Which run a ``state/`` folder belongs to: resume only checkpoints of the same run.

Both trainings stamp their ``state/`` with a fingerprint of what the run depends on (config
less the keys that only say how long to train or how often to log/validate/checkpoint, and the
input files); a ``state/`` of another run is removed with a warning instead of being resumed
(resuming it would export the old model as if it were the new one).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dplm2.io import atomic_write_text

log = logging.getLogger(__name__)

#: Train keys that may change between a run and its continuation.
RESUMABLE_TRAIN_KEYS = ("max_steps", "val_every", "ckpt_every", "log_every", "keep_checkpoints")


def config_fingerprint(cfg: dict[str, Any]) -> str:
    """Canonical JSON of a stage config with ``train``'s resumable keys left out."""
    d = dict(cfg)
    if isinstance(d.get("train"), dict):
        d["train"] = {k: v for k, v in d["train"].items() if k not in RESUMABLE_TRAIN_KEYS}
    return json.dumps(d, sort_keys=True, default=str)


def files_fingerprint(paths: Iterable[str | os.PathLike]) -> str:
    """Name, size and mtime (seconds) of each file: cheap at paper scale (no hashing of GBs
    of shards), and unchanged when a project is copied with its timestamps."""
    h = hashlib.sha256()
    for p in sorted(str(s) for s in paths):
        st = Path(p).stat()
        h.update(f"{Path(p).name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()


def guard_state(state_dir: Path, fingerprint: str) -> None:
    """Resume only checkpoints of the same run: a state folder written for another config,
    initial model or data is removed (with a warning) instead of being resumed."""
    stamp = state_dir / "run_fingerprint.txt"
    if state_dir.is_dir() and any(state_dir.iterdir()):
        old = stamp.read_text().strip() if stamp.is_file() else None
        if old == fingerprint:
            return
        log.warning(
            "%s holds checkpoints of a different run (fingerprint %s, now %s): starting over",
            state_dir, old, fingerprint,
        )
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, fingerprint + "\n")



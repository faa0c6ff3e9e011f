"""Where a model's files are: a local folder, or a Hugging Face Hub repository.

Every loader asks here - this project's LM and tokenizer folders, the released DPLM-2, DPLM-2 Bit
and structure-tokenizer checkpoints - so "hub id, revision or folder" means the same everywhere:

* an existing path must be a folder holding the files the loader reads;
* otherwise ``owner/name`` with an optional ``@revision`` (branch, tag or commit) is a hub
  repository, and exactly the files the loader reads are fetched with ``hf_hub_download``
  (cached, resumable, ``HF_ENDPOINT`` / ``HF_HUB_OFFLINE`` honoured). Not ``snapshot_download``:
  released repositories hold files no loader reads.

Errors are ``FileNotFoundError`` naming the folder or repository and the missing file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


class MissingHubFile(FileNotFoundError):
    """The hub repository exists but lacks a file (a loader may then try another layout)."""


def parse_hub_id(name: str | os.PathLike) -> tuple[str, str | None] | None:
    """``(repo, revision)`` of ``owner/name[@revision]``; ``None`` for an existing path or
    anything else.

    >>> parse_hub_id("airkingbd/dplm2_650m@main"), parse_hub_id("owner/name")
    (('airkingbd/dplm2_650m', 'main'), ('owner/name', None))
    >>> parse_hub_id("./results/lm/model") is None, parse_hub_id("a/b/c") is None
    (True, True)
    """
    name = str(name)
    if Path(name).exists() or name.startswith((".", "/")):
        return None
    repo, _, revision = name.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        return None
    return repo, revision or None


def model_files(
    name_or_path: str | os.PathLike,
    required: Sequence[str],
    *,
    one_of: Sequence[str] = (),
    optional: Sequence[str] = (),
    what: str = "model",
    cache_dir: str | None = None,
) -> dict[str, Path | None]:
    """Local paths of a model's files, from a folder or a hub repository.

    Parameters
    ----------
    required : file names that must exist.
    one_of : alternatives in order of preference (e.g. ``model.safetensors``, then
        ``pytorch_model.bin``): the first that exists is returned under the key ``"one_of"``.
    optional : file names returned as ``None`` where absent.
    what : what the folder holds, for error messages ("a released DPLM-2 folder").

    Returns a dict from each file name (and ``"one_of"``) to its local path.
    """
    path = Path(name_or_path)
    if path.exists():
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: expected a folder ({what}) with {', '.join(required)}")
        out: dict[str, Path | None] = {}
        for fname in required:
            if not (path / fname).is_file():
                listing = ", ".join([*required, *([" or ".join(one_of)] if one_of else [])])
                raise FileNotFoundError(f"{path / fname}: missing ({what} needs {listing})")
            out[fname] = path / fname
        for fname in optional:
            out[fname] = path / fname if (path / fname).is_file() else None
        if one_of:
            found = [path / f for f in one_of if (path / f).is_file()]
            if not found:
                raise FileNotFoundError(f"{path}: no weights file ({' or '.join(one_of)})")
            out["one_of"] = found[0]
        return out
    hub = parse_hub_id(name_or_path)
    if hub is None:
        raise FileNotFoundError(f"{name_or_path}: neither an existing folder nor a hub id 'owner/name'")
    repo, revision = hub
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo}@{revision}" if revision else repo

    def fetch(fname: str) -> Path:
        try:
            return Path(hf_hub_download(repo, fname, revision=revision, cache_dir=cache_dir))
        except LocalEntryNotFoundError:
            raise  # offline and not cached: its own message says so
        except EntryNotFoundError as exc:
            raise MissingHubFile(f"{where}: the hub repository has no {fname} ({what})") from exc
        except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
            raise FileNotFoundError(f"{where}: no such hub repository or revision ({what}): "
                                    f"{exc}") from exc

    out = {fname: fetch(fname) for fname in required}
    for fname in optional:
        try:
            out[fname] = fetch(fname)
        except MissingHubFile:
            out[fname] = None
    for fname in one_of:
        try:
            out["one_of"] = fetch(fname)
            break
        except MissingHubFile:
            continue
    else:
        if one_of:
            raise FileNotFoundError(f"{where}: has neither of {tuple(one_of)} ({what})")
    log.info("fetched %s from %s", ", ".join(p.name for p in out.values() if p is not None), where)
    return out

"""Weights files that prove they are whole: a sha256 recorded when written, checked when read.

Every ``model.safetensors`` this project writes (the tokenizer, the LM export, imported
releases, training checkpoints) gets a sidecar ``model.safetensors.sha256`` in the format of
``sha256sum`` (``<hex>  model.safetensors``, so ``sha256sum -c`` also checks it), written after
the weights were checked to be a complete safetensors file (header + every tensor's bytes; a
full disk can leave a short file without an error from the writer). Every reader calls
:func:`verify_weights` first: a garbled or truncated file is refused with an error naming it
and saying what to do, instead of loading silently or failing deep inside safetensors.

A sidecar rather than a key in the safetensors header: the header cannot hold the hash of the
file it is part of, and rewriting a multi-GB file after ``save_pretrained`` to add one would
double the write.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from dplm2.io.atomic import atomic_write_text, io_error
from dplm2.io.hashing import sha256_file

SUFFIX = ".sha256"


class CorruptWeightsError(ValueError):
    """A weights file differs from the hash recorded when it was written, or is not whole."""


def checksum_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def check_safetensors_complete(path: str | os.PathLike) -> None:
    """Raise :class:`CorruptWeightsError` unless ``path`` is a complete safetensors file: an
    8-byte header length, a JSON header, and exactly the bytes its tensors' offsets need."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > size - 8:
                raise ValueError(f"header of {n} bytes in a {size}-byte file")
            header = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"),
                  default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError) as exc:
        raise CorruptWeightsError(f"{path}: not a complete safetensors file ({exc})") from exc
    if 8 + n + end != size:
        raise CorruptWeightsError(
            f"{path}: truncated or padded safetensors file ({size} bytes, its header needs "
            f"{8 + n + end}); the disk may have been full when it was written")


def record_checksum(path: str | os.PathLike) -> str:
    """Check that ``path`` is a complete safetensors file, then write its sidecar hash
    (atomically); returns the hex sha256."""
    path = Path(path)
    check_safetensors_complete(path)
    digest = sha256_file(path)
    atomic_write_text(checksum_path(path), f"{digest}  {path.name}\n")
    return digest


def recorded_checksum(path: str | os.PathLike) -> str | None:
    """The hash in ``path``'s sidecar, or None when there is none."""
    side = checksum_path(path)
    if not side.is_file():
        return None
    text = side.read_text().split()
    return text[0] if text else ""


def verify_weights(path: str | os.PathLike, fix: str | None = None) -> str:
    """Hex sha256 of ``path``, checked against its sidecar when it has one.

    ``fix`` is what the error tells the user to do (default: rerun what wrote the file).
    Raises :class:`CorruptWeightsError` (a ``ValueError``) naming the file, or
    ``FileNotFoundError`` when it is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    digest = sha256_file(path)
    want = recorded_checksum(path)
    if want is not None and digest != want:
        try:
            check_safetensors_complete(path)
            kind = "corrupted weights"
        except CorruptWeightsError:
            kind = "truncated or corrupted weights"
        raise CorruptWeightsError(
            f"{path}: {kind}: sha256 {digest[:12]}... differs from "
            f"{want[:12]}... recorded in {checksum_path(path).name} when it was written. "
            + (fix if fix is not None else "Restore the file or rerun what wrote it (for a "
               "workflow output: snakemake --forcerun <rule> -- <file>; a finished training "
               "re-exports it from its state/ checkpoint); if you replaced it on purpose, "
               f"delete {checksum_path(path)}.")
        )
    return digest


def load_error(path: str | os.PathLike, exc: BaseException) -> CorruptWeightsError:
    """A readable error for a weights file safetensors/torch could not parse."""
    return CorruptWeightsError(
        f"{path}: cannot read these weights ({type(exc).__name__}: {exc}); the file is "
        "truncated, corrupted or not a weights file: restore it or rerun what wrote it")


__all__ = [
    "CorruptWeightsError",
    "check_safetensors_complete",
    "checksum_path",
    "io_error",
    "load_error",
    "record_checksum",
    "recorded_checksum",
    "verify_weights",
]

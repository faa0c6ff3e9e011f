"""Find structure files in folders, globs and file lists; read many, reporting every failure.

Every command that takes "structure files or folders" (``dplm2 embed``, ``dplm2 generate
--structures``, ``dplm2 tokenizer tokenize --structures``, the workflow's local sources) goes
through :func:`find_structure_files` and :func:`read_structure_files`, so they accept the same
inputs and report bad files the same way:

* an input is a file, a folder (searched recursively; hidden files and folders skipped) or a
  glob pattern (``designs/*.pdb``, ``lab/**/*.cif.gz``; ``**`` recurses);
* a structure file is named ``*.pdb``, ``*.ent``, ``*.cif``, ``*.mmcif`` or ``*.bcif``,
  optionally ``.gz`` (:func:`dplm2.structure.read.split_name`); any other name found in a
  folder or by a glob is *ignored* (returned with the reason, never read);
* reading goes on past a bad file: all failures are collected and reported together in one
  :class:`StructureFilesError` (one line per file: name and reason), or, with
  ``skip_bad=True``, returned beside the good entries so the caller records them.

>>> from pathlib import Path
>>> is_structure_name(Path("design_7.pdb.gz")), is_structure_name(Path("notes.txt"))
(True, False)
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from dplm2.structure.errors import StructureError
from dplm2.structure.read import Entry, read_entry, split_name

_MAGIC = set("*?[")


@dataclasses.dataclass(frozen=True)
class FoundFiles:
    """Structure files found (sorted, each once) and other files met on the way."""

    files: tuple[Path, ...]
    ignored: tuple[tuple[Path, str], ...] = ()


class StructureFilesError(StructureError):
    """Several structure files cannot be used; ``failures`` lists ``(path, reason)``."""

    def __init__(self, failures: Sequence[tuple[Path, str]], total: int, hint: str = ""):
        self.failures = list(failures)
        lines = [f"  - {path}: {_reason(path, reason)}" for path, reason in self.failures]
        msg = (f"{len(self.failures)} of {total} structure file(s) cannot be used:\n"
               + "\n".join(lines))
        super().__init__(msg + (f"\n{hint}" if hint else ""))


def is_structure_name(path: Path) -> bool:
    """True when the file name has a structure suffix (see module docstring)."""
    try:
        split_name(path)
    except StructureError:
        return False
    return True


def find_structure_files(inputs: Iterable[str | os.PathLike], base: Path | None = None,
                         *, allow_empty: bool = False) -> FoundFiles:
    """Structure files of ``inputs`` (files, folders, glob patterns; relative ones against
    ``base``). A missing file or folder, a glob matching nothing, or (unless ``allow_empty``)
    no structure file at all raise ``FileNotFoundError`` naming the input."""
    files: dict[Path, None] = {}
    ignored: dict[Path, str] = {}
    for item in inputs:
        text = str(item)
        path = Path(text)
        if base is not None and not path.is_absolute():
            path = base / path
        if _MAGIC & set(text):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise FileNotFoundError(f"{text}: the pattern matches no file")
            candidates = matches
        elif path.is_dir():
            candidates = sorted(
                p for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            candidates = [path]
        else:
            raise FileNotFoundError(f"{text}: no such file or folder")
        found = 0
        for p in candidates:
            if is_structure_name(p):
                files.setdefault(p, None)
                found += 1
            else:
                ignored.setdefault(p, "not a structure file name (expected .pdb, .ent, .cif, "
                                      ".mmcif or .bcif, optionally .gz)")
        if found == 0 and not allow_empty:
            raise FileNotFoundError(f"{text}: no structure files (.pdb, .ent, .cif, .mmcif, "
                                    ".bcif, optionally .gz) found there")
    return FoundFiles(tuple(files), tuple(ignored.items()))


def read_structure_files(
    files: Sequence[Path],
    *,
    skip_bad: bool = False,
    hint: str = "",
    **read_kwargs,
) -> tuple[list[Entry], list[tuple[Path, str]]]:
    """Read every file with :func:`read_entry` (``read_kwargs`` passed on).

    Returns ``(entries, failures)``; ``failures`` is non-empty only with ``skip_bad`` -
    otherwise every failure is raised at once as :class:`StructureFilesError` (``hint`` is
    appended to its message, e.g. the flag that skips bad files)."""
    entries, failures = [], []
    for path in files:
        try:
            entries.append(read_entry(path, **read_kwargs))
        except StructureError as exc:
            failures.append((Path(path), str(exc)))
    if failures and not skip_bad:
        raise StructureFilesError(failures, len(files), hint)
    return entries, failures


def _reason(path: Path, message: str) -> str:
    """The reason part of a reader message (which starts with the file name)."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message

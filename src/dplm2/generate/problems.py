"""Motif-scaffolding problems: the benchmark table or the user's own entries.

A problem is a name, a structure file, a contig and an optional total-length range. The
24-problem benchmark is *data*: ``resources/scaffolding/benchmark.csv`` (columns ``target``,
``contig``, ``length``, ``motif_path``) plus the structure files beside it; nothing about
individual problems lives in code. The CSV's ``motif_path`` names the original location
(``./motif_scaffolding/targets/1PRW.pdb``); the file is looked up by its stem, case
insensitively, in the CSV's folder (``1prw.pdb.gz``, ``1prw.pdb``, ``1prw.cif.gz``, ...).

>>> import dplm2
>>> from pathlib import Path
>>> table = Path(dplm2.__file__).parents[2] / "resources/scaffolding/benchmark.csv"
>>> [(p.name, p.contig.text, p.structure.name) for p in load_benchmark(table, ["1YCR"])]
[('1YCR', '10-40,B19-27,10-40', '1ycr.pdb.gz')]
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dplm2.generate.contig import ContigError, ContigSpec

log = logging.getLogger(__name__)

_SUFFIXES = (".pdb.gz", ".pdb", ".cif.gz", ".cif", ".mmcif.gz", ".mmcif", ".bcif", ".ent.gz", ".ent")
_REQUIRED_COLUMNS = ("target", "contig", "length", "motif_path")


@dataclasses.dataclass(frozen=True)
class ScaffoldProblem:
    """One motif-scaffolding problem.

    Attributes
    ----------
    name : str
        Problem name (benchmark ``target``, e.g. ``7MRX_60``); used in sample ids and paths.
    structure : Path
        File the motif is taken from (contig residue numbers refer to it).
    contig : ContigSpec
        Parsed contig with its total-length range.
    """

    name: str
    structure: Path
    contig: ContigSpec

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\ \t\n"):
            raise ValueError(f"scaffold problem name {self.name!r}: must be non-empty, no spaces or '/'")

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any], base: str | os.PathLike = ".") -> ScaffoldProblem:
        """A user entry ``{name, pdb, contig, length}`` (``length`` optional; ``pdb`` may be
        any structure file, relative to ``base``)."""
        allowed = {"name", "pdb", "contig", "length"}
        unknown = sorted(set(entry) - allowed)
        missing = sorted({"name", "pdb", "contig"} - set(entry))
        if unknown or missing:
            raise ValueError(
                f"scaffold problem {dict(entry)!r}: unknown keys {unknown}, missing keys {missing} "
                f"(allowed: {sorted(allowed)})"
            )
        path = Path(base) / str(entry["pdb"])
        if not path.is_file():
            raise FileNotFoundError(f"{path}: structure file of scaffold problem {entry['name']!r} not found")
        try:
            spec = ContigSpec.parse(str(entry["contig"]), entry.get("length"))
        except ContigError as exc:
            raise ContigError(f"scaffold problem {entry['name']!r}: {exc}") from exc
        return cls(name=str(entry["name"]), structure=path, contig=spec)


def find_structure(folder: Path, motif_path: str) -> Path | None:
    """The structure file for a benchmark row's ``motif_path`` inside ``folder`` (or None)."""
    stem = Path(motif_path).name
    for suffix in _SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    for suffix in _SUFFIXES:
        for candidate in (stem.lower(), stem, stem.upper()):
            path = folder / f"{candidate}{suffix}"
            if path.is_file():
                return path
    return None


def read_benchmark_rows(csv_path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of the benchmark CSV (checked for the required columns)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: scaffolding benchmark table not found")
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {missing}; has {reader.fieldnames}")
        rows = [dict(r) for r in reader]
    names = [r["target"] for r in rows]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{csv_path}: duplicate target names {dupes}")
    return rows


def load_benchmark(
    csv_path: str | os.PathLike, subset: Sequence[str] | None = None
) -> list[ScaffoldProblem]:
    """Problems of the benchmark table, in table order.

    Parameters
    ----------
    csv_path : path-like
        ``benchmark.csv``; structure files are looked up beside it.
    subset : sequence of str, optional
        Target names to keep (case-insensitive). A requested target whose structure file is
        missing is an error; without a subset, such targets are skipped with a warning.
    """
    csv_path = Path(csv_path)
    rows = read_benchmark_rows(csv_path)
    by_name = {r["target"].lower(): r for r in rows}
    if subset:
        unknown = [s for s in subset if s.lower() not in by_name]
        if unknown:
            raise ValueError(f"{csv_path}: no target(s) {unknown}; has {[r['target'] for r in rows]}")
        wanted = [by_name[s.lower()] for s in subset]
    else:
        wanted = rows
    problems = []
    for row in wanted:
        try:
            spec = ContigSpec.parse(row["contig"], row["length"] or None)
        except ContigError as exc:
            raise ContigError(f"{csv_path}: target {row['target']!r}: {exc}") from exc
        path = find_structure(csv_path.parent, row["motif_path"])
        if path is None:
            msg = (f"{csv_path}: target {row['target']!r}: structure file for "
                   f"{row['motif_path']!r} not found in {csv_path.parent}")
            if subset:
                raise FileNotFoundError(msg)
            log.warning("%s; skipped", msg)
            continue
        problems.append(ScaffoldProblem(name=row["target"], structure=path, contig=spec))
    return problems


def unique_names(problems: Iterable[ScaffoldProblem]) -> list[ScaffoldProblem]:
    """Check that problem names are unique (they name output files)."""
    out = list(problems)
    names = [p.name for p in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"scaffold problems: duplicate names {dupes}")
    return out

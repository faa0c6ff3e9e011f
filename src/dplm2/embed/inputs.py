"""Proteins to embed, from FASTA files, structure files / folders or token shards.

Every reader returns :class:`Record` (id, sequence, structure codes or ``None``) in file
order. Structure codes are tokenizer codes in ``[0, codebook_size)``; residues without a code
(no N/CA/C, or the tokenizer's unknown token) are -1 and reach the LM as ``<unk_struct>``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from dplm2.io import read_fasta
from dplm2.io import read_parquet_checked, read_parquet_metadata
from dplm2.structure import Chain, StructureError, read_chains
from dplm2.structure.files import StructureFilesError

log = logging.getLogger(__name__)

FASTA_SUFFIXES = (".fasta", ".fa", ".faa")
STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".bcif")
TOKEN_COLUMNS = ("id", "sequence", "struct_tokens")
AA_LETTERS = set("ACDEFGHIKLMNPQRSTVWYXBUZO")


@dataclasses.dataclass(frozen=True, eq=False)
class Record:
    """One protein: ``codes`` (int64 ``[L]``, -1 = unknown) is None without a structure."""

    id: str
    sequence: str
    codes: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not self.sequence:
            raise ValueError(f"{self.source}: {self.id!r} has an empty sequence")
        if self.codes is not None and len(self.codes) != len(self.sequence):
            raise ValueError(f"{self.source}: {self.id!r} has {len(self.sequence)} residues but "
                             f"{len(self.codes)} structure tokens")

    def __len__(self) -> int:
        return len(self.sequence)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return Path(name[:-3]).suffix if name.endswith(".gz") else path.suffix.lower()


def read_fasta_records(path: str | os.PathLike) -> list[Record]:
    """Records of a FASTA file (id = first word of the header)."""
    letters = frozenset(AA_LETTERS)
    return [Record(name, seq, None, str(path)) for name, seq in read_fasta(path, letters)]


def read_token_shard(path: str | os.PathLike, split: str | None = None) -> list[Record]:
    """Records of a token shard (``split`` rows only when given); the shard's
    ``codebook_size`` metadata marks its unknown token."""
    df = read_parquet_checked(path, TOKEN_COLUMNS)
    size = int(read_parquet_metadata(path).get("codebook_size", 8192))
    if split is not None:
        if "split" not in df.columns:
            raise ValueError(f"{path}: no 'split' column to select {split!r}")
        df = df.filter(df["split"] == split)
    out = []
    for row in df.iter_rows(named=True):
        codes = np.asarray(row["struct_tokens"], dtype=np.int64)
        codes = np.where((codes >= 0) & (codes < size), codes, -1)
        out.append(Record(row["id"], row["sequence"], codes, str(path)))
    return out


def chain_codes(chain: Chain, tokenizer, device="cpu") -> np.ndarray:
    """Tokenizer codes ``[L]`` of one chain (one chain per pass), -1 where unknown."""
    import torch

    coords = torch.from_numpy(np.nan_to_num(chain.coords, nan=0.0)).float()[None].to(device)
    atom_mask = torch.from_numpy(np.asarray(chain.atom_mask, dtype=bool).copy())[None].to(device)
    mask = atom_mask[..., :3].all(-1)
    tokens = tokenizer.tokenize(coords, atom_mask, mask)[0].cpu().numpy().astype(np.int64)
    return np.where(tokens < tokenizer.cfg.codebook_size, tokens, -1)


def read_structure(path: str | os.PathLike, tokenize: Callable[[Chain], np.ndarray] | None) -> list[Record]:
    """Every protein chain of a structure file; structure codes from ``tokenize`` (if given).
    Raises :class:`~dplm2.structure.StructureError` (a ``ValueError``) naming the file."""
    path = Path(path)
    source = "afdb" if path.name.startswith("AF-") else "pdb"
    chains = read_chains(path, source=source)
    return [Record(c.id, c.sequence, None if tokenize is None else tokenize(c), str(path))
            for c in chains]


def expand(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files of ``paths``: files as given; folders (searched recursively, hidden entries
    skipped) and glob patterns contribute their FASTA / structure / Parquet files, sorted.
    (Not :func:`dplm2.structure.files.find_structure_files`: FASTA and Parquet count here.)"""
    import glob

    out = []
    known = FASTA_SUFFIXES + STRUCTURE_SUFFIXES + (".parquet",)
    for p in map(Path, paths):
        if set("*?[") & set(str(p)):
            found = sorted(Path(m) for m in glob.glob(str(p), recursive=True) if Path(m).is_file())
            found = [f for f in found if _suffix(f) in known]
            if not found:
                raise FileNotFoundError(f"{p}: the pattern matches no FASTA, structure or Parquet file")
            out += found
        elif p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and _suffix(f) in known
                           and not any(x.startswith(".") for x in f.relative_to(p).parts))
            if not found:
                raise FileNotFoundError(f"{p}: no FASTA, structure or Parquet files in this folder")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return out


def read_inputs(
    paths: Sequence[str | os.PathLike],
    tokenize: Callable[[Chain], np.ndarray] | None = None,
    split: str | None = None,
    skipped: list[tuple[Path, str]] | None = None,
) -> list[Record]:
    """Records of every input file, by suffix: FASTA, structure (``.gz`` too) or token shard.

    Structure files that cannot be read are all reported together in one
    :class:`~dplm2.structure.files.StructureFilesError` (a ``ValueError``) after every file was
    tried; when ``skipped`` is a list they are appended to it as ``(path, reason)`` instead.
    Raises ``ValueError`` when two records share an id (naming both files).
    """
    records: list[Record] = []
    failures: list[tuple[Path, str]] = []
    n_structures = 0
    for path in expand(paths):
        kind = _suffix(path)
        if kind in FASTA_SUFFIXES:
            records += read_fasta_records(path)
        elif kind == ".parquet":
            records += read_token_shard(path, split)
        elif kind in STRUCTURE_SUFFIXES:
            n_structures += 1
            try:
                records += read_structure(path, tokenize)
            except StructureError as exc:
                failures.append((path, str(exc)))
        else:
            raise ValueError(f"{path}: unknown input type (expected FASTA {FASTA_SUFFIXES}, "
                             f"structure {STRUCTURE_SUFFIXES} or .parquet token shard)")
    if failures:
        if skipped is None:
            raise StructureFilesError(failures, n_structures,
                                      "Pass --skip-bad-structures to leave them out (they are "
                                      "listed in the output's metadata, skipped_inputs).")
        for _path, reason in failures:
            log.warning("skipped %s", reason)
        skipped.extend(failures)
    seen: dict[str, str] = {}
    for r in records:
        if r.id in seen:
            raise ValueError(f"duplicate id {r.id!r} in {seen[r.id]} and {r.source}")
        seen[r.id] = r.source
    if not records:
        raise ValueError(f"no proteins in {[str(p) for p in paths]}")
    return records

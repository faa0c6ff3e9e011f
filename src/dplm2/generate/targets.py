"""Inputs of folding and inverse folding: proteins with a sequence and/or structure tokens.

Three sources, one record (:class:`Target`):

* token shards (``results/tokens/*.parquet``, a split such as ``test``) — sequence + tokens;
  with the chain shards (``results/chains/*.parquet``) the true backbone is written to
  ``references/<id>.pdb`` so evaluation can compare against it;
* a FASTA file (folding only) — sequence, no reference structure;
* a folder (or list) of PDB / mmCIF files — every protein chain, tokenized with the loaded
  tokenizer; the file itself is the reference.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from dplm2.io import read_fasta, read_parquet_checked
from dplm2.structure import Chain, StructureError, write_backbone
from dplm2.structure.files import find_structure_files, read_structure_files

log = logging.getLogger(__name__)

TOKEN_COLUMNS = ("id", "split", "sequence", "struct_tokens", "length")
STRUCTURE_SUFFIXES = (".pdb", ".cif", ".mmcif", ".bcif", ".ent")


@dataclasses.dataclass(frozen=True, eq=False)
class Target:
    """One protein to fold or inverse-fold.

    Attributes
    ----------
    id : str
    sequence : str
    struct_tokens : ndarray or None
        Tokenizer codes ``[L]`` (None for FASTA input: folding only).
    reference_path : str or None
        True structure (None when unknown).
    reference_chain : str or None
        Chain of ``reference_path``.
    chain : Chain or None
        True backbone when known (written as the reference when there is no file yet).
    """

    id: str
    sequence: str
    struct_tokens: np.ndarray | None = None
    reference_path: str | None = None
    reference_chain: str | None = None
    chain: Chain | None = None

    def __post_init__(self) -> None:
        if not self.sequence:
            raise ValueError(f"target {self.id!r}: empty sequence")
        if self.struct_tokens is not None and len(self.struct_tokens) != len(self.sequence):
            raise ValueError(
                f"target {self.id!r}: {len(self.struct_tokens)} tokens for {len(self.sequence)} residues"
            )


def _expand(paths: Iterable[str | os.PathLike], suffixes: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if _has_suffix(f, suffixes))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: input not found")
    return out


def _has_suffix(path: Path, suffixes: Sequence[str]) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return any(name.endswith(s) for s in suffixes)


def from_token_shards(
    shards: Sequence[str | os.PathLike],
    split: str,
    chain_shards: Sequence[str | os.PathLike] = (),
    expect_tokenizer: str | None = None,
) -> list[Target]:
    """Targets of ``split`` from token shards (sorted by id); true backbones from chain shards.

    ``expect_tokenizer``: the loaded tokenizer's sha256; shards made by other weights are
    refused (their codes would mean something else)."""
    expect = {"tokenizer_sha256": expect_tokenizer} if expect_tokenizer else None
    frames = [read_parquet_checked(p, TOKEN_COLUMNS, expect) for p in _expand(shards, (".parquet",))]
    if not frames:
        raise FileNotFoundError(f"no token shards in {list(map(str, shards))}")
    df = pl.concat([f.select(TOKEN_COLUMNS) for f in frames], how="vertical_relaxed")
    df = df.filter(pl.col("split") == split).sort("id")
    if df.height == 0:
        raise ValueError(f"token shards {list(map(str, shards))}: no rows of split {split!r}")
    chains = _chains_by_id(chain_shards, set(df["id"].to_list()))
    out = []
    for row in df.iter_rows(named=True):
        out.append(Target(id=row["id"], sequence=row["sequence"],
                          struct_tokens=np.asarray(row["struct_tokens"], dtype=np.int64),
                          chain=chains.get(row["id"])))
    if chain_shards and len(chains) < len(out):
        log.warning("%d of %d targets have no chain in the chain shards (no reference structure)",
                    len(out) - len(chains), len(out))
    return out


def _chains_by_id(paths: Sequence[str | os.PathLike], ids: set[str]) -> dict[str, Chain]:
    out: dict[str, Chain] = {}
    for path in _expand(paths, (".parquet",)):
        df = read_parquet_checked(path, ("id", "sequence", "coords", "atom_mask"))
        for row in df.filter(pl.col("id").is_in(list(ids))).iter_rows(named=True):
            try:
                out[row["id"]] = Chain.from_row(row)
            except StructureError as exc:
                raise ValueError(f"{path}: {exc}") from exc
    return out


def from_fasta(paths: Sequence[str | os.PathLike]) -> list[Target]:
    """Targets from FASTA files (id = first word of the header)."""
    out = [Target(id=name, sequence=seq)
           for path in _expand(paths, (".fasta", ".fa", ".faa")) for name, seq in read_fasta(path)]
    if not out:
        raise ValueError(f"no FASTA records in {list(map(str, paths))}")
    return out


def from_structures(paths: Sequence[str | os.PathLike], tokenize,
                    skipped: list[tuple[Path, str]] | None = None) -> list[Target]:
    """Every protein chain of the given structure files / folders / globs, tokenized by
    ``tokenize`` (``Chain -> tokens``); the file is the reference.

    Every file is read before any is tokenized; files that cannot be read are reported
    together (:class:`~dplm2.structure.files.StructureFilesError`), or - when ``skipped`` is a
    list - appended to it as ``(path, reason)`` and left out."""
    files = find_structure_files(paths).files
    entries, failures = read_structure_files(
        files, skip_bad=skipped is not None,
        hint="Pass --skip-bad-structures to leave them out (they are listed in samples.parquet's "
             "metadata, skipped_inputs).")
    for _path, reason in failures:
        log.warning("skipped %s", reason)
    if skipped is not None:
        skipped.extend(failures)
    out = []
    for entry in entries:
        for chain in entry.chains:
            out.append(Target(id=chain.id, sequence=chain.sequence, struct_tokens=tokenize(chain),
                              reference_path=str(entry.path), reference_chain=chain.chain_id,
                              chain=chain))
    if not out:
        raise ValueError(f"no protein chains in {list(map(str, paths))}")
    return out


def select(targets: list[Target], max_targets: int, max_length: int) -> list[Target]:
    """Drop targets longer than ``max_length`` (0 = keep all), keep the first ``max_targets``."""
    kept = [t for t in targets if not max_length or len(t.sequence) <= max_length]
    if max_targets:
        kept = kept[:max_targets]
    if not kept:
        raise ValueError(f"no target left after max_length={max_length} / max_targets={max_targets}")
    return kept


def plan_references(targets: list[Target], folder: Path, relative_to: Path
                    ) -> tuple[list[Target], list[tuple[Path, Chain]]]:
    """Targets with a chain but no reference file get ``folder/<id>.pdb`` as their reference;
    returns them and the ``(path, chain)`` files to write - written by the caller
    (:func:`write_references`) only once generation has succeeded, so a failing command
    leaves nothing behind."""
    out, writes = [], []
    for t in targets:
        if t.reference_path is None and t.chain is not None:
            path = folder / f"{t.id}.pdb"
            writes.append((path, t.chain))
            t = dataclasses.replace(t, reference_path=os.path.relpath(path, relative_to), reference_chain="A")
        out.append(t)
    return out, writes


def write_references(writes: Sequence[tuple[Path, Chain]]) -> None:
    """Write the planned reference backbones (atomically, one file each)."""
    for path, chain in writes:
        write_backbone(path, chain.coords, chain.sequence)

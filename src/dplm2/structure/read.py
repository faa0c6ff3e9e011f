"""Read protein chains (and entry-level header facts) from mmCIF, PDB or BinaryCIF files.

One entry point, :func:`read_entry` (with the thin :func:`read_chains`): first model only;
protein residues only (CCD link type contains "PEPTIDE"; free standard amino acids flagged
HETATM are ligands and dropped); modified residues mapped to their parents (``MSE -> M``),
unknown ones to ``X``; alternate locations resolved by highest occupancy (as biotite's
``altloc="occupancy"``, first one on ties); insertion codes kept as separate residues.
``.gz`` files are decompressed in memory. mmCIF and PDB text go through gemmi's C++ parser,
BinaryCIF through biotite (see :mod:`dplm2.structure.residue_table` for why).

Every problem raises :class:`~dplm2.structure.errors.StructureError` with the file name and a
reason a person can act on (empty, truncated gzip, HTML error page, binary junk, no protein
chain, no backbone, non-finite or huge coordinates).

>>> from pathlib import Path
>>> from dplm2.structure.read import split_name
>>> split_name(Path("AF-P12345-F1-model_v4.cif.gz"))
('AF-P12345-F1-model_v4', 'cif', True)
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import re
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import biotite.structure.io.pdbx as pdbx
import gemmi
import numpy as np

from dplm2.structure.chain import Chain
from dplm2.structure.errors import StructureError
from dplm2.structure.header import (
    EntryInfo,
    biotite_items,
    cif_header_info,
    gemmi_items,
    pdb_header_info,
)
from dplm2.structure.residues import STANDARD, is_peptide, one_letter
from dplm2.structure.residue_table import ResidueTable, from_atoms, from_gemmi

SOURCES = ("pdb", "afdb")
MAX_ABS_COORD = 1.0e4  # Å; beyond any real structure (PDB format itself stops at 9999.999)
_FORMATS = {"cif": "cif", "mmcif": "cif", "bcif": "bcif", "pdb": "pdb", "ent": "pdb"}
EntryInfoReader = Callable[[set], EntryInfo]  # protein chain ids -> header facts
_AFDB_ID = re.compile(r"^(AF-[A-Za-z0-9]+-F\d+)(?:-model(?:_v\d+)?)?$")


@dataclasses.dataclass(frozen=True)
class Entry:
    """The chains of one file plus its header facts."""

    path: Path
    source: str
    entry_id: str
    chains: tuple[Chain, ...]
    info: EntryInfo


def read_chains(path: str | os.PathLike, source: str = "pdb", **kwargs) -> list[Chain]:
    """Protein chains of a structure file (see :func:`read_entry` for the arguments)."""
    return list(read_entry(path, source, **kwargs).chains)


def read_entry(
    path: str | os.PathLike,
    source: str = "pdb",
    *,
    entry_id: str | None = None,
    max_abs_coord: float = MAX_ABS_COORD,
) -> Entry:
    """Read the first model's protein chains and the header facts of one structure file.

    Parameters
    ----------
    path : path-like
        ``.cif``, ``.mmcif``, ``.bcif``, ``.pdb`` or ``.ent``, optionally ``.gz``.
    source : {"pdb", "afdb"}
        ``afdb``: B-factors are pLDDT (stored per residue, from CA) and ids are
        ``AF-<accession>-F<n>``; ``pdb``: ids are ``<entry>_<chain>``.
    entry_id : str, optional
        Entry id for chain ids; default from the file name (lower case for PDB).
    max_abs_coord : float
        Coordinates beyond this magnitude (Å) make the file invalid.

    Raises
    ------
    StructureError
        The file cannot give a usable protein chain; the message says why.
    """
    path = Path(path)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    stem, fmt, _ = split_name(path)
    data = _read_bytes(path)
    table, header = _parse(path, data, fmt)
    if entry_id is None:
        entry_id = _default_entry_id(stem, source)
    chains = _build_chains(path, table, source, entry_id, max_abs_coord)
    try:
        info = header({c.chain_id for c in chains})
    except (ValueError, KeyError, IndexError) as exc:  # a malformed header field
        raise StructureError(f"{path}: unreadable header ({exc})") from exc
    if source == "afdb" and info.method is None:
        info = dataclasses.replace(info, method="PREDICTED (AlphaFold DB)")
    return Entry(path=path, source=source, entry_id=entry_id, chains=tuple(chains), info=info)


def split_name(path: Path) -> tuple[str, str, bool]:
    """``(stem, format, gzipped)`` from a file name; unknown suffixes raise StructureError."""
    name = path.name
    gz = name.lower().endswith(".gz")
    if gz:
        name = name[:-3]
    stem, _, ext = name.rpartition(".")
    fmt = _FORMATS.get(ext.lower())
    if not stem or fmt is None:
        raise StructureError(
            f"{path}: unknown structure file type (expected .cif, .mmcif, .bcif, .pdb, .ent, "
            "optionally .gz)"
        )
    return stem, fmt, gz


def _default_entry_id(stem: str, source: str) -> str:
    if source == "afdb":
        m = _AFDB_ID.match(stem)
        return m.group(1) if m else stem
    return stem.lower()


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StructureError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise StructureError(f"{path}: truncated or corrupt gzip data ({exc})") from exc
    if not raw.strip():
        raise StructureError(f"{path}: empty file")
    head = raw[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        raise StructureError(f"{path}: an HTML/XML page (e.g. a server error page), not a structure")
    return raw


def _decode_text(path: Path, data: bytes) -> str:
    if b"\x00" in data[:65536]:
        raise StructureError(f"{path}: binary data (NUL bytes), not a text structure file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # latin-1 maps every byte; real files with odd bytes in free-text fields still parse
        return data.decode("latin-1")


def _parse(path: Path, data: bytes, fmt: str) -> tuple[ResidueTable, EntryInfoReader]:
    """Residue table of the first model and a header reader for one file's bytes."""
    if fmt == "bcif":
        try:
            bcif = pdbx.BinaryCIFFile.read(io.BytesIO(data))
            atoms = pdbx.get_structure(
                bcif, model=1, altloc="all", extra_fields=["b_factor", "occupancy"]
            )
        except Exception as exc:  # msgpack/biotite raise many types for junk input
            raise StructureError(f"{path}: not a valid BinaryCIF structure ({exc})") from exc
        items = biotite_items(bcif.block)
        return from_atoms(atoms), lambda chains: cif_header_info(items, len(chains))
    text = _decode_text(path, data)
    try:
        if fmt == "cif":
            block = gemmi.cif.read_string(text).sole_block()
            structure = gemmi.make_structure_from_block(block)
        else:
            structure = gemmi.read_pdb_string(text)
    except (RuntimeError, ValueError, IndexError) as exc:  # gemmi's parse errors
        raise StructureError(f"{path}: cannot parse as {fmt.upper()} ({exc})") from exc
    if len(structure) == 0:
        raise StructureError(f"{path}: no models / no atom records")
    table = from_gemmi(structure)
    if fmt == "cif":
        items = gemmi_items(block)
        return table, lambda chains: cif_header_info(items, len(chains))
    lines = text.splitlines()
    return table, lambda chains: pdb_header_info(lines, chains)


def _build_chains(
    path: Path, table: ResidueTable, source: str, entry_id: str, max_abs_coord: float
) -> list[Chain]:
    uniq = sorted(table.all_names)
    if not uniq:
        raise StructureError(f"{path}: no atoms in the first model")
    names = table.res_name
    peptide = [n for n in np.unique(names) if is_peptide(n)]
    keep = np.isin(names, peptide)
    # A standard amino acid written as HETATM is a free ligand, not part of a chain.
    keep &= ~(table.hetero & np.isin(names, list(STANDARD)))
    if table.n_nonfinite:
        raise StructureError(
            f"{path}: {table.n_nonfinite} atom(s) with non-finite (NaN/inf) coordinates"
        )
    prot = table.select(keep)
    has_any = np.isfinite(prot.backbone).all(axis=-1).any(axis=1)
    prot = prot.select(has_any)
    if len(prot) == 0:
        found = ", ".join(uniq[:8]) + (" ..." if len(uniq) > 8 else "")
        raise StructureError(f"{path}: no protein chain (residues found: {found})")
    xyz = prot.backbone
    mask = np.isfinite(xyz).all(axis=-1)
    big = float(np.abs(xyz[mask]).max())
    if big > max_abs_coord:
        raise StructureError(
            f"{path}: coordinate magnitude {big:.4g} Å exceeds {max_abs_coord:g} Å (corrupt?)"
        )
    if not mask[:, :3].all(axis=1).any():
        raise StructureError(
            f"{path}: no residue has a complete N-CA-C backbone (CA-only or trace model?)"
        )
    chain_ids = _ordered_unique(prot.chain_id.tolist())
    chains = []
    for cid in chain_ids:
        sel = np.nonzero(prot.chain_id == cid)[0]
        if source == "afdb":
            plddt = prot.b_factor[sel]
            if not np.all((plddt >= 0) & (plddt <= 100)):
                raise StructureError(
                    f"{path}: B-factors outside [0, 100] cannot be pLDDT (is this an AFDB model?)"
                )
        else:
            plddt = None
        chains.append(
            Chain(
                id=_chain_uid(entry_id, cid, source, len(chain_ids)),
                chain_id=cid,
                sequence="".join(one_letter(n) for n in prot.res_name[sel]),
                coords=xyz[sel],
                atom_mask=mask[sel],
                res_ids=prot.res_id[sel],
                ins_codes=tuple(prot.ins_code[sel].tolist()),
                plddt=plddt,
            )
        )
    return chains


def _chain_uid(entry_id: str, chain_id: str, source: str, n_chains: int) -> str:
    if source == "afdb" and n_chains == 1:
        return entry_id
    return f"{entry_id}_{chain_id}"


def _ordered_unique(values: Iterable) -> list:
    seen: dict = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)



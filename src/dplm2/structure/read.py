"""Read protein chains (and entry-level header facts) from mmCIF, PDB or BinaryCIF files.

One entry point, :func:`read_entry` (with the thin :func:`read_chains`): first model only;
protein residues only (CCD link type contains "PEPTIDE"; free standard amino acids flagged
HETATM are ligands and dropped); modified residues mapped to their parents (``MSE -> M``),
unknown ones to ``X``; alternate locations resolved by highest occupancy (biotite's
``altloc="occupancy"``, first one on ties); insertion codes kept as separate residues.
``.gz`` files are decompressed in memory.

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
from collections.abc import Iterable
from pathlib import Path

import biotite.structure as struc
import biotite.structure.io.pdb as pdb
import biotite.structure.io.pdbx as pdbx
import numpy as np

from dplm2.structure.chain import BACKBONE_ATOMS, Chain
from dplm2.structure.errors import StructureError
from dplm2.structure.header import EntryInfo, cif_header_info, pdb_header_info
from dplm2.structure.residues import STANDARD, is_peptide, one_letter

SOURCES = ("pdb", "afdb")
MAX_ABS_COORD = 1.0e4  # Å; beyond any real structure (PDB format itself stops at 9999.999)
_FORMATS = {"cif": "cif", "mmcif": "cif", "bcif": "bcif", "pdb": "pdb", "ent": "pdb"}
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
    parsed = _parse(path, data, fmt)
    atoms = _first_model(path, parsed, fmt)
    if entry_id is None:
        entry_id = _default_entry_id(stem, source)
    chains = _build_chains(path, atoms, source, entry_id, max_abs_coord)
    info = _header_info(parsed, fmt, {c.chain_id for c in chains})
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


def _parse(path: Path, data: bytes, fmt: str):
    if fmt == "bcif":
        try:
            return pdbx.BinaryCIFFile.read(io.BytesIO(data))
        except Exception as exc:  # msgpack/biotite raise many types for junk input
            raise StructureError(f"{path}: not a valid BinaryCIF file ({exc})") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode("latin-1")
        except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes any byte
            raise StructureError(f"{path}: not a text file") from exc
    if "\x00" in text[:65536]:
        raise StructureError(f"{path}: binary data (NUL bytes), not a text structure file")
    try:
        if fmt == "cif":
            return pdbx.CIFFile.read(io.StringIO(text))
        return pdb.PDBFile.read(io.StringIO(text))
    except Exception as exc:  # biotite raises several types for malformed text
        raise StructureError(f"{path}: cannot parse as {fmt.upper()} ({exc})") from exc


def _first_model(path: Path, parsed, fmt: str) -> struc.AtomArray:
    fields = ["b_factor", "occupancy"]
    try:
        if fmt == "pdb":
            atoms = parsed.get_structure(model=1, altloc="occupancy", extra_fields=fields)
        else:
            atoms = pdbx.get_structure(parsed, model=1, altloc="occupancy", extra_fields=fields)
    except Exception as exc:  # biotite: InvalidFileError, KeyError, ValueError, IndexError ...
        raise StructureError(f"{path}: no readable atom records ({type(exc).__name__}: {exc})") from exc
    if atoms.array_length() == 0:
        raise StructureError(f"{path}: no atoms in the first model")
    return atoms


def _build_chains(
    path: Path, atoms: struc.AtomArray, source: str, entry_id: str, max_abs_coord: float
) -> list[Chain]:
    names = atoms.res_name
    uniq = np.unique(names)
    peptide = {n for n in uniq if is_peptide(n)}
    keep = np.isin(names, list(peptide))
    # A standard amino acid written as HETATM is a free ligand, not part of a chain.
    keep &= ~(atoms.hetero & np.isin(names, list(STANDARD)))
    prot = atoms[keep]
    if prot.array_length() == 0:
        found = ", ".join(sorted(uniq)[:8]) + (" ..." if len(uniq) > 8 else "")
        raise StructureError(f"{path}: no protein chain (residues found: {found})")
    coord = prot.coord
    finite = np.isfinite(coord).all(axis=1)
    if not finite.all():
        raise StructureError(
            f"{path}: {int((~finite).sum())} protein atom(s) with non-finite (NaN/inf) coordinates"
        )
    big = float(np.abs(coord).max())
    if big > max_abs_coord:
        raise StructureError(
            f"{path}: coordinate magnitude {big:.4g} Å exceeds {max_abs_coord:g} Å (corrupt?)"
        )
    starts = struc.get_residue_starts(prot)
    nres = len(starts)
    # Scatter backbone atoms into [R, 4, 3] by residue index (vectorised; biotite has no
    # direct "backbone array with mask" helper).
    xyz = np.full((nres, 4, 3), np.nan, dtype=np.float32)
    res_index = np.searchsorted(starts, np.arange(prot.array_length()), side="right") - 1
    for k, atom in enumerate(BACKBONE_ATOMS):
        sel = np.nonzero(prot.atom_name == atom)[0]
        xyz[res_index[sel], k] = coord[sel]
    mask = np.isfinite(xyz).all(axis=-1)
    if not mask[:, :3].all(axis=1).any():
        raise StructureError(
            f"{path}: no residue has a complete N-CA-C backbone (CA-only or trace model?)"
        )
    has_any = mask.any(axis=1)
    bfac = prot.b_factor
    ca_b = np.full(nres, np.nan, dtype=np.float32)
    ca_sel = np.nonzero(prot.atom_name == "CA")[0]
    ca_b[res_index[ca_sel]] = bfac[ca_sel]
    if np.isnan(ca_b).any():  # no CA: mean B-factor of the residue's atoms
        sums = np.bincount(res_index, weights=bfac, minlength=nres)
        counts = np.bincount(res_index, minlength=nres)
        fill = (sums / np.maximum(counts, 1)).astype(np.float32)
        ca_b = np.where(np.isnan(ca_b), fill, ca_b)
    chain_of = prot.chain_id[starts]
    res_names = prot.res_name[starts]
    res_ids = prot.res_id[starts]
    ins = prot.ins_code[starts]
    chains = []
    for cid in _ordered_unique(chain_of):
        sel = np.nonzero((chain_of == cid) & has_any)[0]
        if len(sel) == 0:
            continue
        if source == "afdb":
            plddt = ca_b[sel]
            if plddt.size and (plddt.min() < 0 or plddt.max() > 100):
                raise StructureError(
                    f"{path}: B-factors outside [0, 100] cannot be pLDDT (is this an AFDB model?)"
                )
        else:
            plddt = None
        cid_s = str(cid)
        chains.append(
            Chain(
                id=_chain_uid(entry_id, cid_s, source, len(set(chain_of.tolist()))),
                chain_id=cid_s,
                sequence="".join(one_letter(n) for n in res_names[sel]),
                coords=xyz[sel],
                atom_mask=mask[sel],
                res_ids=res_ids[sel],
                ins_codes=tuple(str(c) for c in ins[sel]),
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


# -- header facts --------------------------------------------------------------------------
def _header_info(parsed, fmt: str, protein_chains: set[str]) -> EntryInfo:
    if fmt == "pdb":
        return pdb_header_info(parsed.lines, protein_chains)
    return cif_header_info(parsed.block, len(protein_chains))

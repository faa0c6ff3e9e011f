"""Read protein chains (and entry-level header facts) from mmCIF, PDB or BinaryCIF files.

One entry point, :func:`read_entry` (with the thin :func:`read_chains`): first model only;
a chain holds the residues of its polymer entity only - ligands, ions, waters and glycans
never, even when they share the author chain id (1a4w's D-Arg ``DAR``, 4osx's free glycines);
residues whose CCD link type is a peptide link are the chain's, modified ones mapped to their
parents (``MSE -> M``, ``PTR -> Y``), unknown and D-amino acids to ``X``; polymer residues that
cannot be used (no N/CA/C/O atom, such as a fused chromophore, or not peptide-linked, such as
an ACE cap) are removed and listed in :attr:`Entry.removed`; alternate locations resolved by
highest occupancy (as biotite's ``altloc="occupancy"``, first one on ties); insertion codes
kept as separate residues. Files without entity records (PDB format without TER records,
mmCIF without ``label_entity_id``) do not say where the polymer ends: a HETATM residue before
a chain's first or after its last ATOM residue then belongs to the chain only when it is
peptide-bonded to it (C-N <= 2.0 Å).
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
from dplm2.structure.residues import is_peptide, one_letter
from dplm2.structure.residue_table import ResidueTable, from_atoms, from_gemmi

SOURCES = ("pdb", "afdb")  # the downloaded sources; a local source has a label of its own
SOURCE_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_ABS_COORD = 1.0e4  # Å; beyond any real structure (PDB format itself stops at 9999.999)
_FORMATS = {"cif": "cif", "mmcif": "cif", "bcif": "bcif", "pdb": "pdb", "ent": "pdb"}
EntryInfoReader = Callable[[set], EntryInfo]  # protein chain ids -> header facts
_AFDB_ID = re.compile(r"^(AF-[A-Za-z0-9]+-F\d+)(?:-model(?:_v\d+)?)?$")
PEPTIDE_BOND_MAX = 2.0  # Å; C-N of a peptide bond is 1.33 Å


def check_source(source: str) -> str:
    """``source`` if it is ``pdb``, ``afdb`` or a valid local-source label, else ValueError."""
    if source in SOURCES or SOURCE_LABEL.match(source):
        return source
    raise ValueError(f"source must be 'pdb', 'afdb' or a label of lower-case letters, digits and "
                     f"'_' starting with a letter (at most 32), got {source!r}")


@dataclasses.dataclass(frozen=True)
class Entry:
    """The chains of one file plus its header facts."""

    path: Path
    source: str
    entry_id: str
    chains: tuple[Chain, ...]
    info: EntryInfo
    #: per chain id: the CCD name of each residue of the chain (``MSE``, ``DLE``, ...)
    residue_names: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    #: per chain id: polymer residues left out, as ``"NRQ 66: no N/CA/C/O atom"``
    removed: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def read_chains(path: str | os.PathLike, source: str = "pdb", **kwargs) -> list[Chain]:
    """Protein chains of a structure file (see :func:`read_entry` for the arguments)."""
    return list(read_entry(path, source, **kwargs).chains)


def read_entry(
    path: str | os.PathLike,
    source: str = "pdb",
    *,
    entry_id: str | None = None,
    plddt: bool | None = None,
    max_abs_coord: float = MAX_ABS_COORD,
) -> Entry:
    """Read the first model's protein chains and the header facts of one structure file.

    Parameters
    ----------
    path : path-like
        ``.cif``, ``.mmcif``, ``.bcif``, ``.pdb`` or ``.ent``, optionally ``.gz``.
    source : str
        ``afdb``: ids are ``AF-<accession>-F<n>``; ``pdb``: ids are ``<entry>_<chain>``; any
        other label (a local source, :func:`check_source`): ids are ``<entry>_<chain>``.
    entry_id : str, optional
        Entry id for chain ids; default from the file name (lower case for PDB).
    plddt : bool, optional
        B-factors are pLDDT (stored per residue, from CA; must lie in [0, 100]); default: only
        for ``afdb``.
    max_abs_coord : float
        Coordinates beyond this magnitude (Å) make the file invalid.

    Raises
    ------
    StructureError
        The file cannot give a usable protein chain; the message says why.
    """
    path = Path(path)
    check_source(source)
    if plddt is None:
        plddt = source == "afdb"
    stem, fmt, _ = split_name(path)
    data = _read_bytes(path)
    table, header, entities = _parse(path, data, fmt)
    if entry_id is None:
        entry_id = _default_entry_id(stem, source)
    if not entities:
        table = table.select(_attached(table))
    chains, names, removed = _build_chains(path, table, source, entry_id, plddt, max_abs_coord)
    try:
        info = header({c.chain_id for c in chains})
    except (ValueError, KeyError, IndexError) as exc:  # a malformed header field
        raise StructureError(f"{path}: unreadable header ({exc})") from exc
    if source == "afdb" and info.method is None:
        info = dataclasses.replace(info, method="PREDICTED (AlphaFold DB)")
    return Entry(path=path, source=source, entry_id=entry_id, chains=tuple(chains), info=info,
                 residue_names=names, removed=removed)


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


def _parse(path: Path, data: bytes, fmt: str) -> tuple[ResidueTable, EntryInfoReader, bool]:
    """Residue table of the first model, a header reader and whether the file says which
    entity each residue belongs to (mmCIF ``label_entity_id``, PDB ``TER`` records)."""
    if fmt == "bcif":
        try:
            bcif = pdbx.BinaryCIFFile.read(io.BytesIO(data))
            items = biotite_items(bcif.block)
            block = bcif.block
            has_entity = ("atom_site" in block and "label_entity_id" in block["atom_site"]
                          and "entity" in block and "type" in block["entity"])
            extra = ["b_factor", "occupancy"] + (["label_entity_id"] if has_entity else [])
            atoms = pdbx.get_structure(bcif, model=1, altloc="all", extra_fields=extra)
        except Exception as exc:  # msgpack/biotite raise many types for junk input
            raise StructureError(f"{path}: not a valid BinaryCIF structure ({exc})") from exc
        entity_types = dict(zip(items("entity", "id"), (t.lower() for t in items("entity", "type"))))
        table = from_atoms(atoms, entity_types)
        return table, lambda chains: cif_header_info(items, len(chains)), has_entity

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
        has_entity = (len(block.find_loop("_atom_site.label_entity_id")) > 0
                      and len(block.find_values("_entity.type")) > 0)
        return table, lambda chains: cif_header_info(items, len(chains)), has_entity
    lines = text.splitlines()
    has_ter = any(line.startswith("TER") for line in lines)
    return table, lambda chains: pdb_header_info(lines, chains), has_ter


def _build_chains(
    path: Path, table: ResidueTable, source: str, entry_id: str, plddt: bool,
    max_abs_coord: float,
) -> tuple[list[Chain], dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    uniq = sorted(table.all_names)
    if not uniq:
        raise StructureError(f"{path}: no atoms in the first model")
    if table.n_nonfinite:
        raise StructureError(
            f"{path}: {table.n_nonfinite} atom(s) with non-finite (NaN/inf) coordinates"
        )
    names = table.res_name
    peptide = np.isin(names, [n for n in np.unique(names) if is_peptide(n)])
    has_any = np.isfinite(table.backbone).all(axis=-1).any(axis=1)
    usable = peptide & has_any
    prot = table.select(usable)
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
    chains, residue_names, removed = [], {}, {}
    for cid in chain_ids:
        sel = np.nonzero(prot.chain_id == cid)[0]
        if plddt:
            values = prot.b_factor[sel]
            if not np.all((values >= 0) & (values <= 100)):
                raise StructureError(
                    f"{path}: B-factors outside [0, 100] cannot be pLDDT (is this a predicted model?)"
                )
        else:
            values = None
        chains.append(
            Chain(
                id=_chain_uid(entry_id, cid, source, len(chain_ids)),
                chain_id=cid,
                sequence="".join(one_letter(n) for n in prot.res_name[sel]),
                coords=xyz[sel],
                atom_mask=mask[sel],
                res_ids=prot.res_id[sel],
                ins_codes=tuple(prot.ins_code[sel].tolist()),
                plddt=values,
            )
        )
        residue_names[cid] = tuple(prot.res_name[sel].tolist())
        gone = np.nonzero((table.chain_id == cid) & ~usable)[0]
        removed[cid] = tuple(
            f"{names[i]} {table.res_id[i]}{table.ins_code[i]}: "
            + ("not an amino acid linked by peptide bonds" if not peptide[i]
               else "no N/CA/C/O atom")
            for i in gone
        )
    return chains, residue_names, removed


def _attached(table: ResidueTable) -> np.ndarray:
    """Mask of residues that belong to their chain's polymer, for files without entity
    records: every residue, except HETATM residues before the first or after the last ATOM
    residue of a chain that are not peptide-bonded (C-N <= :data:`PEPTIDE_BOND_MAX`) to the
    residue next to them on the chain side (a chain's trailing ligands would otherwise pass
    as residues). MSE at a chain end is bonded and stays.
    """
    keep = np.ones(len(table), dtype=bool)
    n_xyz, c_xyz = table.backbone[:, 0], table.backbone[:, 2]
    for cid in _ordered_unique(table.chain_id.tolist()):
        idx = np.nonzero(table.chain_id == cid)[0]
        atom = np.nonzero(~table.hetero[idx])[0]
        if len(atom) == 0:
            continue  # an all-HETATM chain (e.g. D-peptide): nothing to anchor on
        first, last = atom[0], atom[-1]
        for k in range(last + 1, len(idx)):  # trailing: bonded to the previous residue
            i, prev = idx[k], idx[k - 1]
            if not keep[prev] or not _bonded(c_xyz[prev], n_xyz[i]):
                keep[idx[k:]] = False
                break
        for k in range(first - 1, -1, -1):  # leading: bonded to the next residue
            i, nxt = idx[k], idx[k + 1]
            if not keep[nxt] or not _bonded(c_xyz[i], n_xyz[nxt]):
                keep[idx[: k + 1]] = False
                break
    return keep


def _bonded(c: np.ndarray, n: np.ndarray) -> bool:
    d = float(np.linalg.norm(c - n))
    return d <= PEPTIDE_BOND_MAX  # NaN (an atom missing) compares False


def _chain_uid(entry_id: str, chain_id: str, source: str, n_chains: int) -> str:
    if source == "afdb" and n_chains == 1:
        return entry_id
    return f"{entry_id}_{chain_id}"


def _ordered_unique(values: Iterable) -> list:
    seen: dict = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)



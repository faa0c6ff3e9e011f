"""Server layouts: where an entry lives on the wwPDB / AlphaFold DB servers and on disk.

The local copy keeps the server's relative path (so ``results/raw/pdb`` looks like the wwPDB
archive), always gzipped: a file the server sends uncompressed gets ``.gz`` appended.

wwPDB ``divided`` layout (https://files.wwpdb.org/pub/pdb/data/structures/divided/)::

    mmCIF/{id[1:3]}/{id}.cif.gz        pdb/{id[1:3]}/pdb{id}.ent.gz

AlphaFold DB (https://alphafold.ebi.ac.uk/files/)::

    files/AF-{accession}-F1-model_v{N}.{pdb,cif}

The bundled demo mirror stores the AFDB files gzipped; the config's ``afdb.suffixes: [".gz"]``
makes the downloader ask for ``….pdb.gz`` there, while the real server is asked for ``….pdb``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dplm2.download.config import AfdbConfig, PdbConfig
from dplm2.download.fetch import join_url
from dplm2.download.ids import pdb_id, uniprot_accession

PDB_DIVIDED = "pub/pdb/data/structures/divided"


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One place an entry may be fetched from, and where it is stored.

    Attributes
    ----------
    url : str
        Full URL (``http(s)://`` or ``file://``).
    path : Path
        Local destination (always a ``.gz`` file).
    compressed : bool
        Whether the server sends gzip bytes (checked) or plain text (gzipped on the fly).
    format : str
        ``"mmcif"`` or ``"pdb"``.
    """

    url: str
    path: Path
    compressed: bool
    format: str


def pdb_relpath(entry: str, fmt: str) -> str:
    """Relative path of a PDB entry in the wwPDB ``divided`` tree.

    >>> pdb_relpath("1AKI", "mmcif")
    'pub/pdb/data/structures/divided/mmCIF/ak/1aki.cif.gz'
    >>> pdb_relpath("1qys", "pdb")
    'pub/pdb/data/structures/divided/pdb/qy/pdb1qys.ent.gz'
    """
    entry = pdb_id(entry)
    if fmt == "mmcif":
        return f"{PDB_DIVIDED}/mmCIF/{entry[1:3]}/{entry}.cif.gz"
    if fmt == "pdb":
        return f"{PDB_DIVIDED}/pdb/{entry[1:3]}/pdb{entry}.ent.gz"
    raise ValueError(f"unknown PDB file format {fmt!r}")


def pdb_candidates(entry: str, cfg: PdbConfig, base: str, raw: Path) -> list[Candidate]:
    """Candidates for one PDB entry, in the configured format order (fallback order)."""
    out = []
    for fmt in cfg.formats:
        rel = pdb_relpath(entry, fmt)
        out.append(Candidate(join_url(base, rel), raw / rel, True, fmt))
    return out


def afdb_name(accession: str, version: int, fmt: str) -> str:
    """AlphaFold DB model file name.

    >>> afdb_name("p60709", 4, "pdb")
    'AF-P60709-F1-model_v4.pdb'
    """
    if fmt not in ("pdb", "cif"):
        raise ValueError(f"unknown AFDB file format {fmt!r}")
    return f"AF-{uniprot_accession(accession)}-F1-model_v{int(version)}.{fmt}"


def afdb_candidates(accession: str, cfg: AfdbConfig, base: str, raw: Path) -> list[Candidate]:
    """Candidates for one accession: versions (outer), formats, then suffixes, in config order."""
    out = []
    for version in cfg.versions:
        for fmt in cfg.formats:
            name = afdb_name(accession, version, fmt)
            for suffix in cfg.suffixes:
                out.append(
                    Candidate(
                        join_url(base, f"files/{name}{suffix}"),
                        raw / "files" / f"{name}.gz",
                        suffix == ".gz",
                        "mmcif" if fmt == "cif" else "pdb",
                    )
                )
    return out

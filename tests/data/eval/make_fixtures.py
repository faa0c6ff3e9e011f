"""Rebuild the evaluation test fixtures from the downloaded copies under ``resources/``.

Each fixture is one real chain, cut down to its backbone (N, CA, C, O of amino-acid residues,
first model, first altloc) and written as gzipped PDB so the suite stays small. The coordinates
are untouched. Run from the repository root after the download stage::

    .venv/bin/python tests/data/eval/make_fixtures.py

Files missing from ``resources/`` (8tim is not in the demo mirror) are looked up in the folder
named by ``DPLM2_FIXTURE_DATA`` (a copy of the project's shared structure-data folder, layout
``pdb/<id>.pdb.gz``).

Sources: wwPDB entries (CC0) and SCOPe globin domains (PDB-derived, CC0); see
``resources/ATTRIBUTION.md``.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import biotite.structure as struc
import biotite.structure.io.pdb as pdb
import biotite.structure.io.pdbx as pdbx

HERE = Path(__file__).resolve().parent
RES = HERE.parents[2] / "resources"
MMCIF = RES / "mirror/pdb/pub/pdb/data/structures/divided/mmCIF"
PDBDIR = RES / "mirror/pdb/pub/pdb/data/structures/divided/pdb"

# fixture name -> (source file, chain)
FIXTURES = {
    # structural homologs (biotite's homolog test set): TM-align agreement tests
    "1hml_A": (MMCIF / "hm/1hml.cif.gz", "A"),
    "3lzm_A": (MMCIF / "lz/3lzm.cif.gz", "A"),
    "2nwd_X": (MMCIF / "nw/2nwd.cif.gz", "X"),
    "1qgi_A": (MMCIF / "qg/1qgi.cif.gz", "A"),
    "3kcs_A": (MMCIF / "kc/3kcs.cif.gz", "A"),
    "6oa8_A": (MMCIF / "oa/6oa8.cif.gz", "A"),
    # two TIM barrels
    "1tim_A": (PDBDIR / "ti/pdb1tim.ent.gz", "A"),
    "8tim_A": (Path("pdb/8tim.pdb.gz"), "A"),
    # globins (SCOPe a.1.1.2)
    "d1mbaa_": (RES / "scop_globins/d1mbaa_.pdb.gz", "A"),
    "d1asha_": (RES / "scop_globins/d1asha_.pdb.gz", "A"),
    "d1ecaa_": (RES / "scop_globins/d1ecaa_.pdb.gz", "A"),
    "d1hlba_": (RES / "scop_globins/d1hlba_.pdb.gz", "A"),
    # motif scaffolding: the full target chain and the benchmark's `_reference` motif file
    "1ycr_B": (RES / "scaffolding/1ycr.pdb.gz", "B"),
    "1ycr_reference": (RES / "scaffolding/1ycr_reference.pdb.gz", "B"),
}


def locate(path: Path) -> Path:
    if path.is_absolute():
        return path
    root = os.environ.get("DPLM2_FIXTURE_DATA")
    if not root:
        raise FileNotFoundError(f"{path}: not under resources/; set DPLM2_FIXTURE_DATA")
    return Path(root) / path


def read(path: Path) -> struc.AtomArray:
    with gzip.open(path, "rt") as fh:
        text = fh.read()
    if ".cif" in path.name:
        f = pdbx.CIFFile.read(io.StringIO(text))
        return pdbx.get_structure(f, model=1, use_author_fields=True)
    return pdb.PDBFile.read(io.StringIO(text)).get_structure(model=1)


def main() -> None:
    for name, (src, chain) in FIXTURES.items():
        atoms = read(locate(src))
        keep = (
            (atoms.chain_id == chain)
            & struc.filter_amino_acids(atoms)
            & ~atoms.hetero
            & struc.filter_peptide_backbone(atoms) | (
                (atoms.chain_id == chain) & struc.filter_amino_acids(atoms) & ~atoms.hetero
                & (atoms.atom_name == "O")
            )
        )
        sub = atoms[keep]
        out = pdb.PDBFile()
        out.set_structure(sub)
        buf = io.StringIO()
        out.write(buf)
        (HERE / f"{name}.pdb.gz").write_bytes(gzip.compress(buf.getvalue().encode(), mtime=0))
        print(name, struc.get_residue_count(sub), "residues")


if __name__ == "__main__":
    main()

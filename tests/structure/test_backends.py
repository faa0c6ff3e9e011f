"""The gemmi (mmCIF/PDB text) and biotite (BinaryCIF) back ends give identical chains."""

from __future__ import annotations

import gzip
from pathlib import Path

import biotite.structure.io.pdbx as pdbx
import numpy as np
import pytest

from dplm2.structure import read_entry

DATA = Path(__file__).parents[1] / "data" / "structures"


def cif_to_bcif(src: Path, dst: Path) -> Path:
    """Uncompressed BinaryCIF with the same categories/values as the text file."""
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt") as fh:
        cif = pdbx.CIFFile.read(fh)
    block = pdbx.BinaryCIFBlock()
    for name, cat in cif.block.items():
        block[name] = pdbx.BinaryCIFCategory(
            {
                key: pdbx.BinaryCIFColumn(
                    col.data.array, None if col.mask is None else col.mask.array
                )
                for key, col in cat.items()
            }
        )
    out = pdbx.BinaryCIFFile()
    out["x"] = block
    out.write(dst)
    return dst


@pytest.mark.parametrize("name", ["1aki.cif.gz", "1k6p.cif.gz", "altloc.cif", "res_ids.cif"])
def test_bcif_equals_cif(tmp_path, name):
    text = read_entry(DATA / name)
    binary = read_entry(cif_to_bcif(DATA / name, tmp_path / "x.bcif"), entry_id=text.entry_id)
    assert [c.id for c in text.chains] == [c.id for c in binary.chains]
    for a, b in zip(text.chains, binary.chains):
        assert a == b
    assert text.info == binary.info


def test_numeric_altloc_ids_keep_residues():
    # 1k6p chain A has residues 50, 51, 75 only in altlocs "1"/"2": all 99 must be read
    chain = read_entry(DATA / "1k6p.cif.gz").chains[0]
    assert len(chain) == 99 and chain.atom_mask.all()
    assert {50, 51, 75} <= set(chain.res_ids.tolist())


def test_microheterogeneity_keeps_higher_occupancy():
    # altloc.cif: SER (altlocs A, B at 0.2) and PRO (altloc C at 0.6) share residue 22
    (chain,) = read_entry(DATA / "altloc.cif").chains
    assert chain.sequence == "P" and chain.res_ids.tolist() == [22]


def test_insertion_codes_are_separate_residues():
    (chain,) = read_entry(DATA / "res_ids.cif").chains
    keys = list(zip(chain.res_ids.tolist(), chain.ins_codes))
    assert len(keys) == len(set(keys)) == len(chain)
    assert np.isfinite(chain.ca).all()

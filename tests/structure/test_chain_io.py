"""Chain record, reader and writer on real files from tests/data/structures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dplm2.structure import Chain, StructureError, read_chains, read_entry, write_backbone

DATA = Path(__file__).parents[1] / "data" / "structures"


def test_read_mmcif_header_and_backbone():
    entry = read_entry(DATA / "1aki.cif.gz")
    (chain,) = entry.chains
    assert chain.id == "1aki_A" and len(chain) == 129
    assert chain.sequence.startswith("KVFGRCELAAAMKRHGLDNYRGYSLGNWVCAAK")
    assert chain.atom_mask.all() and chain.plddt is None
    assert entry.info.resolution == 1.5
    assert entry.info.method == "X-RAY DIFFRACTION"
    assert str(entry.info.release_date) == "1997-11-19"
    assert (entry.info.oligomeric_count, entry.info.oligomeric_source) == (1, "assembly")
    # N-CA and CA-C bond lengths are real backbone geometry
    nca = np.linalg.norm(chain.coords[:, 0] - chain.coords[:, 1], axis=-1)
    assert np.allclose(nca, 1.46, atol=0.06)


def test_read_pdb_format_header():
    entry = read_entry(DATA / "1tim.pdb.gz")
    assert [c.id for c in entry.chains] == ["1tim_A", "1tim_B"]
    assert entry.info.resolution == 2.5
    assert str(entry.info.release_date) == "1976-10-15"
    assert entry.info.oligomeric_count == 2


def test_afdb_plddt_and_id():
    (chain,) = read_chains(DATA / "AF-Q9GZY4-F1-model_v1.pdb.gz", source="afdb")
    assert chain.id == "AF-Q9GZY4-F1"
    assert chain.plddt is not None and chain.plddt.shape == (len(chain),)
    assert 0 <= chain.plddt.min() < chain.plddt.max() <= 100


def test_row_round_trip_and_invariants():
    chain = read_chains(DATA / "1aki.cif.gz")[0]
    assert Chain.from_row(chain.to_row()) == chain
    row = chain.to_row()
    row["coords"] = row["coords"][:-3]
    with pytest.raises(StructureError, match="coordinates"):
        Chain.from_row(row)
    bad = chain.coords.copy()
    bad[0, 0] = np.nan  # mask says present but coordinate is missing
    with pytest.raises(StructureError, match="atom_mask"):
        Chain(chain.id, "A", chain.sequence, bad, chain.atom_mask, chain.res_ids)
    with pytest.raises(StructureError, match="letters"):
        Chain(chain.id, "A", "Z" * len(chain), chain.coords, chain.atom_mask, chain.res_ids)


def test_virtual_cb_matches_real_cb():
    import biotite.structure.io.pdbx as pdbx
    import gzip

    atoms = pdbx.get_structure(pdbx.CIFFile.read(gzip.open(DATA / "1aki.cif.gz", "rt")), model=1)
    chain = read_chains(DATA / "1aki.cif.gz")[0]
    real = atoms[(atoms.atom_name == "CB") & (atoms.res_name != "GLY")]
    nongly = np.array([aa != "G" for aa in chain.sequence])
    dev = np.linalg.norm(chain.cb()[nongly] - real.coord, axis=-1)
    assert np.median(dev) < 0.2 and dev.max() < 0.5  # ideal vs real CB


@pytest.mark.parametrize("suffix", [".pdb", ".cif"])
def test_write_backbone_round_trip(tmp_path, suffix):
    chain = read_chains(DATA / "1aki.cif.gz")[0]
    out = write_backbone(tmp_path / f"m{suffix}", chain.coords, chain.sequence,
                         bfactors=np.linspace(0, 100, len(chain)))
    again = read_chains(out)[0]
    assert again.sequence == chain.sequence
    np.testing.assert_allclose(again.coords, chain.coords, atol=1e-3)
    text = out.read_text()
    n_gly = chain.sequence.count("G")
    assert text.count(" CB ") == len(chain) - n_gly if suffix == ".pdb" else True
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left nothing behind


def test_write_backbone_without_oxygen_places_o(tmp_path):
    chain = read_chains(DATA / "1aki.cif.gz")[0]
    out = write_backbone(tmp_path / "m.pdb", chain.coords[:, :3], chain.sequence)
    again = read_chains(out)[0]
    err = np.linalg.norm(again.coords[:-1, 3] - chain.coords[:-1, 3], axis=-1)
    assert err.mean() < 0.25  # ideal O placement vs crystal O
    assert not again.atom_mask[-1, 3]


def test_tmalign_reads_written_file(tmp_path):
    tmtools = pytest.importorskip("tmtools")
    chain = read_chains(DATA / "1aki.cif.gz")[0]
    out = write_backbone(tmp_path / "m.pdb", chain.coords, chain.sequence)
    again = read_chains(out)[0]
    res = tmtools.tm_align(again.ca.astype(float), chain.ca.astype(float), again.sequence,
                           chain.sequence)
    assert res.tm_norm_chain1 > 0.99

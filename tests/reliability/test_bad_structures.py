"""Bad input corpus: every kind gives a StructureError naming the file and the reason, or is
read correctly (multi-model, altloc, insertion codes, missing atoms, long chains). Broken files
are generated in tmp from the real fixture 1aki."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import biotite.structure as struc
import biotite.structure.io.pdb as pdb
import biotite.structure.io.pdbx as pdbx
import numpy as np
import pytest

from dplm2.structure import StructureError, read_chains, read_entry

DATA = Path(__file__).parents[1] / "data" / "structures"
GOOD = DATA / "1aki.cif.gz"


def atoms_1aki() -> struc.AtomArray:
    with gzip.open(GOOD, "rt") as fh:
        atoms = pdbx.get_structure(pdbx.CIFFile.read(fh), model=1)
    return atoms[struc.filter_amino_acids(atoms)]


def write_pdb(atoms, path: Path) -> Path:
    f = pdb.PDBFile()
    f.set_structure(atoms)
    f.write(path)
    return path


def write_cif(atoms, path: Path) -> Path:
    f = pdbx.CIFFile()
    pdbx.set_structure(f, atoms)
    f.write(path)
    return path


def expect_error(path: Path, pattern: str) -> None:
    with pytest.raises(StructureError, match=pattern) as info:
        read_chains(path)
    assert str(path) in str(info.value)  # the message names the file


def test_empty(tmp_path):
    expect_error(_write(tmp_path / "e.cif", b""), "empty file")
    expect_error(_write(tmp_path / "e.cif.gz", gzip.compress(b"  \n")), "empty file")


def test_truncated_gzip(tmp_path):
    raw = GOOD.read_bytes()
    expect_error(_write(tmp_path / "t.cif.gz", raw[: len(raw) // 2]), "truncated or corrupt gzip")


def test_binary_junk(tmp_path):
    junk = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    expect_error(_write(tmp_path / "j.cif", b"\x00" + junk), "binary data")
    expect_error(_write(tmp_path / "j.bcif", junk), "not a valid BinaryCIF")


def test_html_error_page(tmp_path):
    page = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n"
    expect_error(_write(tmp_path / "h.cif", page), "HTML")


def test_garbage_text(tmp_path):
    expect_error(_write(tmp_path / "g.cif", b"data_x\nloop_\n_atom_site.id\n"),
                 "no atoms|no models|no protein|cannot parse")


def test_non_protein(tmp_path):
    expect_error(DATA / "4p5j.cif.gz", r"no protein chain \(residues found: A, A23")
    expect_error(DATA / "hetatm.pdb", r"no protein chain \(residues found: LIG\)")


def test_ca_only(tmp_path):
    atoms = atoms_1aki()
    expect_error(write_pdb(atoms[atoms.atom_name == "CA"], tmp_path / "ca.pdb"), "CA-only")


def test_huge_and_nan_coordinates(tmp_path):
    atoms = atoms_1aki()
    atoms.coord[10, 0] = 1.0e6
    expect_error(write_cif(atoms, tmp_path / "huge.cif"), "exceeds")
    text = (write_cif(atoms_1aki(), tmp_path / "nan.cif")).read_text().splitlines()
    header = [line.strip() for line in text if line.startswith("_atom_site.")]
    col = header.index("_atom_site.Cartn_x")
    i = next(k for k, line in enumerate(text) if line.startswith("ATOM"))
    fields = text[i].split()
    fields[col] = "nan"  # Cartn_x of the first atom (N of residue 1)
    text[i] = " ".join(fields)
    nan = tmp_path / "nan2.cif"
    nan.write_text("\n".join(text) + "\n")
    expect_error(nan, "non-finite|cannot parse")


def test_unknown_suffix(tmp_path):
    shutil.copy(GOOD, tmp_path / "x.txt")
    expect_error(tmp_path / "x.txt", "unknown structure file type")


def test_missing_backbone_atoms_are_masked(tmp_path):
    atoms = atoms_1aki()
    drop = (atoms.res_id == 5) & (atoms.atom_name == "N")
    (chain,) = read_chains(write_pdb(atoms[~drop], tmp_path / "m.pdb"))
    assert len(chain) == 129
    assert not chain.atom_mask[4, 0] and chain.atom_mask.sum() == 129 * 4 - 1
    assert np.isnan(chain.coords[4, 0]).all()
    assert not chain.complete_backbone()[4]


def test_multi_model_reads_first(tmp_path):
    atoms = atoms_1aki()
    moved = atoms.copy()
    moved.coord += 50.0
    path = write_cif(struc.stack([atoms, moved]), tmp_path / "nmr.cif")
    (chain,) = read_chains(path)
    ca = atoms.coord[atoms.atom_name == "CA"]
    np.testing.assert_allclose(chain.ca, ca, atol=1e-3)


def test_insertion_codes(tmp_path):
    atoms = atoms_1aki()
    # residues 10-12 become 9A, 9B, 9C (antibody-style numbering)
    sel = np.isin(atoms.res_id, [10, 11, 12])
    codes = {10: "A", 11: "B", 12: "C"}
    atoms.ins_code[sel] = [codes[r] for r in atoms.res_id[sel]]
    atoms.res_id[sel] = 9
    for path in (write_pdb(atoms, tmp_path / "i.pdb"), write_cif(atoms, tmp_path / "i.cif")):
        (chain,) = read_chains(path)
        assert len(chain) == 129
        assert chain.res_ids[8:12].tolist() == [9, 9, 9, 9]
        assert chain.ins_codes[8:12] == ("", "A", "B", "C")


def test_very_long_chain(tmp_path):
    atoms = atoms_1aki()
    copies = []
    for k in range(12):
        a = atoms.copy()
        a.res_id = a.res_id + k * 200
        a.coord = a.coord + k * 40.0
        copies.append(a)
    (chain,) = read_chains(write_pdb(struc.concatenate(copies), tmp_path / "long.pdb"))
    assert len(chain) == 12 * 129


def test_afdb_bfactors_out_of_range(tmp_path):
    atoms = atoms_1aki()
    atoms.set_annotation("b_factor", np.full(atoms.array_length(), 250.0))
    with pytest.raises(StructureError, match="cannot be pLDDT"):
        read_entry(write_pdb(atoms, tmp_path / "AF-X-F1-model_v4.pdb"), source="afdb")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path

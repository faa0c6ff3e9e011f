"""Motif residues resolved from real structure files, checked against biotite read directly."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import biotite.structure as struc
import biotite.structure.io.pdb as pdb
import numpy as np
import pytest

from dplm2.generate.contig import ContigSpec
from dplm2.generate.motif import MotifError, resolve_motif
from dplm2.generate.problems import ScaffoldProblem, find_structure, load_benchmark

REPO = Path(__file__).resolve().parents[2]
SCAFFOLDING = REPO / "resources" / "scaffolding"
BENCHMARK = SCAFFOLDING / "benchmark.csv"


def biotite_ca(path: Path, chain: str, numbers: list[tuple[int, str]]):
    """(one-letter residues, CA coords) of the given residues, read with biotite alone."""
    with gzip.open(path, "rt") as fh:
        atoms = pdb.PDBFile.read(io.StringIO(fh.read())).get_structure(model=1)
    atoms = atoms[(atoms.chain_id == chain) & (atoms.atom_name == "CA") & ~atoms.hetero]
    seq, xyz = [], []
    for num, ins in numbers:
        hit = atoms[(atoms.res_id == num) & (atoms.ins_code == ins)]
        assert len(hit) >= 1, (num, ins)
        seq.append(struc.info.one_letter_code(hit.res_name[0]))
        xyz.append(hit.coord[0])
    return "".join(seq), np.array(xyz)


def test_single_segment_maps_to_the_right_residues():
    spec = ContigSpec.parse("10-40,B19-27,10-40", "40-100")
    path = SCAFFOLDING / "1ycr.pdb.gz"
    m = resolve_motif(path, spec)
    seq, ca = biotite_ca(path, "B", [(n, "") for n in range(19, 28)])
    assert m.sequence == seq == "FSDLWKLLP"
    np.testing.assert_allclose(m.coords[:, 1], ca, atol=1e-3)
    assert m.labels == tuple(f"B{n}" for n in range(19, 28))
    assert m.segment_lengths == (9,)


def test_multi_segment_motif_keeps_contig_order():
    spec = ContigSpec.parse("8-15,A92-99,16-30,A123-130,16-30,A47-54,16-30,A18-25,8-15")
    path = SCAFFOLDING / "1bcf.pdb.gz"
    m = resolve_motif(path, spec)
    order = [*range(92, 100), *range(123, 131), *range(47, 55), *range(18, 26)]
    seq, ca = biotite_ca(path, "A", [(n, "") for n in order])
    assert m.sequence == seq
    np.testing.assert_allclose(m.coords[:, 1], ca, atol=1e-3)
    assert m.segment_lengths == (8, 8, 8, 8)
    layout = spec.sample(np.random.default_rng(0), m.segment_lengths)
    assert len(layout.motif_indices) == len(m) == 32


def test_insertion_codes(tmp_path):
    # 1YCR chain B renumbered with insertion codes: 19, 20, 20A, 20B, 21, ...
    with gzip.open(SCAFFOLDING / "1ycr.pdb.gz", "rt") as fh:
        atoms = pdb.PDBFile.read(io.StringIO(fh.read())).get_structure(model=1)
    atoms = atoms[(atoms.chain_id == "B") & ~atoms.hetero]
    starts = struc.get_residue_starts(atoms, add_exclusive_stop=True)
    new_ids = [(17, ""), (18, ""), (19, ""), (20, ""), (20, "A"), (20, "B")]
    new_ids += [(21 + k, "") for k in range(len(starts) - 1 - len(new_ids))]
    for (a, b), (num, ins) in zip(zip(starts[:-1], starts[1:]), new_ids):
        atoms.res_id[a:b] = num
        atoms.ins_code[a:b] = ins
    f = pdb.PDBFile()
    f.set_structure(atoms)
    path = tmp_path / "ins.pdb"
    f.write(str(path))
    m = resolve_motif(path, ContigSpec.parse("5,B20-20B,5"))
    assert m.labels == ("B20", "B20A", "B20B")
    m2 = resolve_motif(path, ContigSpec.parse("5,B20A-22,5"))
    assert m2.labels == ("B20A", "B20B", "B21", "B22")
    ref = resolve_motif(SCAFFOLDING / "1ycr.pdb.gz", ContigSpec.parse("5,B21-24,5"))
    assert m2.sequence == ref.sequence  # same residues, other numbering


@pytest.mark.parametrize(
    "contig, reason",
    [
        ("10,Z1-5,10", "no protein chain 'Z'"),
        ("10,B5-9,10", "no residue 5"),
        ("10,B19-999,10", "no residue 999"),
    ],
)
def test_bad_motifs_name_file_segment_and_reason(contig, reason):
    path = SCAFFOLDING / "1ycr.pdb.gz"
    with pytest.raises(MotifError) as err:
        resolve_motif(path, ContigSpec.parse(contig))
    assert reason in str(err.value) and str(path) in str(err.value) and contig in str(err.value)


def test_numbering_gap_is_refused(tmp_path):
    with gzip.open(SCAFFOLDING / "1ycr.pdb.gz", "rt") as fh:
        atoms = pdb.PDBFile.read(io.StringIO(fh.read())).get_structure(model=1)
    atoms = atoms[(atoms.chain_id == "B") & ~atoms.hetero & (atoms.res_id != 22)]
    f = pdb.PDBFile()
    f.set_structure(atoms)
    f.write(str(tmp_path / "gap.pdb"))
    with pytest.raises(MotifError, match="residues 22-22 are missing"):
        resolve_motif(tmp_path / "gap.pdb", ContigSpec.parse("5,B19-27,5"))


def test_benchmark_problems_come_from_the_table_and_files():
    problems = load_benchmark(BENCHMARK)
    names = [p.name for p in problems]
    assert "1YCR" in names and "7MRX_128" in names
    assert find_structure(SCAFFOLDING, "./motif_scaffolding/targets/4ZYP.pdb").name == "4zyp.pdb.gz"
    resolved = 0
    for p in problems:
        try:
            m = resolve_motif(p.structure, p.contig)
        except MotifError as exc:  # a file whose numbering differs from the table: named
            assert str(p.structure) in str(exc)
            continue
        resolved += 1
        lo, hi = p.contig.total_range(m.segment_lengths)
        layout = p.contig.sample(np.random.default_rng(0), m.segment_lengths)
        assert lo <= layout.length <= hi
    assert resolved >= 20
    with pytest.raises(FileNotFoundError, match="6X93"):
        load_benchmark(BENCHMARK, ["6X93"])
    with pytest.raises(ValueError, match="no target"):
        load_benchmark(BENCHMARK, ["NOPE"])


def test_user_problem_entry(tmp_path):
    p = ScaffoldProblem.from_entry(
        {"name": "mine", "pdb": "resources/scaffolding/1ycr.pdb.gz", "contig": "10-20/B19-27/10-20",
         "length": "30-45"}, base=REPO)
    assert p.contig.total_range() == (30, 45)
    with pytest.raises(ValueError, match="unknown keys"):
        ScaffoldProblem.from_entry({"name": "x", "pdb": "a", "contig": "A1-2", "lenght": 3})
    with pytest.raises(FileNotFoundError, match="missing.pdb"):
        ScaffoldProblem.from_entry({"name": "x", "pdb": "missing.pdb", "contig": "A1-2"}, base=tmp_path)

"""What a chain holds, on real entries (resources/chain_cases, resources/mirror): the polymer's
residues only, modified residues mapped, removed residues listed, ligands never."""

from __future__ import annotations

import gzip
from pathlib import Path

import gemmi
import numpy as np
import pytest

from dplm2.process.metrics import chain_breaks
from dplm2.structure import read_entry
from dplm2.structure.files import StructureFilesError, find_structure_files, read_structure_files
from dplm2.structure.residues import is_d_amino

from tests.structure.test_backends import cif_to_bcif

RES = Path(__file__).parents[2] / "resources"
CASES = RES / "chain_cases"
MMCIF = RES / "mirror/pdb/pub/pdb/data/structures/divided/mmCIF"
PDB = RES / "mirror/pdb/pub/pdb/data/structures/divided/pdb"


def test_ligands_in_a_protein_chain_are_not_residues():
    """4osx: free glycines (GLY 402-404, a non-polymer entity, HETATM) share author chains A
    and B with the protein (residues 9-308); they never join the chain."""
    entry = read_entry(CASES / "4osx.cif.gz")
    assert [c.id for c in entry.chains] == ["4osx_A", "4osx_B"]
    for chain in entry.chains:
        assert len(chain) == 300 and chain.res_ids.max() == 308
        assert 402 not in chain.res_ids and "X" not in chain.sequence
        assert entry.removed[chain.chain_id] == ()


def test_ligand_as_atom_records_is_still_a_ligand(tmp_path):
    """The entity records decide, not the record type: 4osx with its free glycines written as
    ATOM (as D-Arg in 1a4w, a peptide-linking residue of a non-polymer entity, would pass a
    HETATM-based rule) still gives 300-residue chains."""
    text = gzip.decompress((CASES / "4osx.cif.gz").read_bytes()).decode()
    lines = [("ATOM  " + line[6:]) if line.startswith("HETATM") and " GLY " in line else line
             for line in text.splitlines()]
    assert sum(line.startswith("ATOM") and " GLY D " in line for line in lines) > 0
    path = tmp_path / "4osx_atom.cif"
    path.write_text("\n".join(lines) + "\n")
    assert [len(c) for c in read_entry(path).chains] == [300, 300]


@pytest.mark.parametrize("ter", [True, False])
def test_pdb_format_with_and_without_ter_records(tmp_path, ter):
    """The same entry written as PDB by gemmi in the mmCIF's order (both polymers, then every
    ligand and water, as wwPDB files are): with TER records the entities are known; without
    them gemmi's inference calls chain A's glycines and ion polymer, and the reader cuts them
    because nothing bonds them to the chain - the chains equal the mmCIF ones."""
    text = gzip.decompress((CASES / "4osx.cif.gz").read_bytes()).decode()
    st = gemmi.make_structure_from_block(gemmi.cif.read_string(text).sole_block())
    options = gemmi.PdbWriteOptions()
    options.ter_records = ter
    options.seqres_records = False
    path = tmp_path / "4osx.pdb"
    path.write_text(st.make_pdb_string(options))
    lines = path.read_text().splitlines()
    assert any(" GLY A 402 " in line for line in lines)
    assert any(line.startswith("TER") for line in lines) == ter
    ref = read_entry(CASES / "4osx.cif.gz").chains
    got = read_entry(path).chains
    assert [len(c) for c in got] == [300, 300]
    for a, b in zip(ref, got):
        assert a.sequence == b.sequence and np.array_equal(a.res_ids, b.res_ids)


def test_d_amino_acid_peptide_and_dna():
    """1pfe: a DNA chain (A, not a protein chain), echinomycin (B: D-Ser 1 and 5, N-methylated
    residues, two microheterogeneous positions) and its quinoxaline ligands (QUI, non-polymer
    entities in author chain B, never residues)."""
    entry = read_entry(CASES / "1pfe.cif.gz")
    assert [c.chain_id for c in entry.chains] == ["B"]
    chain = entry.chains[0]
    names = entry.residue_names["B"]
    assert "QUI" not in names and len(names) == len(chain) == 8
    assert [n for n in names if is_d_amino(n)] == ["DSN", "DSN"]
    assert chain.sequence.count("X") == 4  # DSN x2 and N-methylated cysteines have no parent
    assert chain.sequence[1] == "A" and chain.sequence[3] == "V"  # ALA, MVA -> V


def test_chromophore_is_removed_and_leaves_a_chain_break():
    """3kcs: the fused chromophore NRQ 66 has no N/CA/C/O; the chain runs 65 -> 69, the reader
    says what it removed and the metrics count the break there."""
    entry = read_entry(MMCIF / "kc" / "3kcs.cif.gz")
    chain = entry.chains[0]
    assert entry.removed["A"] == ("NRQ 66: no N/CA/C/O atom",)
    i = int(np.nonzero(chain.res_ids == 65)[0][0])
    assert chain.res_ids[i + 1] == 69
    assert chain_breaks(chain) == 1
    assert chain_breaks(chain.slice(0, i + 1)) == 0 and chain_breaks(chain.slice(i + 1, len(chain))) == 0


def test_bcif_gives_the_same_chain_contents(tmp_path):
    for path in (CASES / "4osx.cif.gz", CASES / "1pfe.cif.gz", MMCIF / "kc" / "3kcs.cif.gz"):
        text = read_entry(path)
        binary = read_entry(cif_to_bcif(path, tmp_path / "x.bcif"), entry_id=text.entry_id)
        assert [c.sequence for c in text.chains] == [c.sequence for c in binary.chains]
        assert text.removed == binary.removed and text.residue_names == binary.residue_names


def test_modified_residues_stay():
    """1qys (PDB format, MSE as HETATM inside the chain): MSE -> M, kept in place."""
    entry = read_entry(PDB / "qy" / "pdb1qys.ent.gz")
    chain = entry.chains[0]
    names = entry.residue_names[chain.chain_id]
    assert "MSE" in names and all(chain.sequence[i] == "M" for i, n in enumerate(names) if n == "MSE")
    assert entry.removed[chain.chain_id] == ()


def test_folder_with_odd_names_and_junk(tmp_path):
    """Every bad file of a folder is reported in one error, each with its reason; other files
    are ignored by name; a skip returns the failures instead."""
    folder = tmp_path / "my structures"
    (folder / "sub").mkdir(parents=True)
    (folder / "gfp variant #3.cif.gz").write_bytes((MMCIF / "kc" / "3kcs.cif.gz").read_bytes())
    (folder / "sub" / "TOP7.PDB").write_bytes(gzip.decompress((PDB / "qy" / "pdb1qys.ent.gz").read_bytes()))
    (folder / "error page.pdb").write_text("<html><body>502 Bad Gateway</body></html>")
    (folder / "empty.cif").write_bytes(b"")
    (folder / "cut.cif.gz").write_bytes((CASES / "1pfe.cif.gz").read_bytes()[:3000])
    (folder / "notes.txt").write_text("my notes")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    found = find_structure_files([folder])
    assert [p.name for p in found.files] == ["cut.cif.gz", "empty.cif", "error page.pdb",
                                             "gfp variant #3.cif.gz", "TOP7.PDB"]
    assert [p.name for p, _ in found.ignored] == ["notes.txt"]
    with pytest.raises(StructureFilesError) as err:
        read_structure_files(found.files, hint="(--skip-bad-structures leaves them out)")
    msg = str(err.value)
    assert msg.startswith("3 of 5 structure file(s) cannot be used")
    assert "empty.cif: empty file" in msg and "HTML" in msg and "truncated or corrupt gzip" in msg
    assert msg.endswith("(--skip-bad-structures leaves them out)")
    entries, failures = read_structure_files(found.files, skip_bad=True)
    assert [e.entry_id for e in entries] == ["gfp variant #3", "top7"]
    assert sorted(p.name for p, _ in failures) == ["cut.cif.gz", "empty.cif", "error page.pdb"]
    assert [p.name for p in find_structure_files([str(folder / "*.cif*")]).files] == [
        "cut.cif.gz", "empty.cif", "gfp variant #3.cif.gz"]
    with pytest.raises(FileNotFoundError, match="matches no file"):
        find_structure_files([str(folder / "*.bcif")])
    with pytest.raises(FileNotFoundError, match="no structure files"):
        find_structure_files([folder / "sub" / ".." / "notes.txt"])


def test_mmcif_without_entity_records(tmp_path):
    """The entry without its `_entity*` categories (some tools write no entity records): the
    file no longer says which residues are ligands (label_entity_id alone names no type; gemmi
    then calls the glycines and the ion polymer), so the peptide-bond rule cuts them."""
    text = gzip.decompress((CASES / "4osx.cif.gz").read_bytes()).decode()
    doc = gemmi.cif.read_string(text)
    block = doc.sole_block()
    for category in ("_entity.", "_entity_poly.", "_entity_poly_seq.", "_struct_asym.",
                     "_pdbx_entity_nonpoly.", "_pdbx_poly_seq_scheme.", "_pdbx_nonpoly_scheme."):
        table = block.find_mmcif_category(category)
        if table:
            table.erase()
    doc.write_file(str(tmp_path / "noentity.cif"))
    got = read_entry(tmp_path / "noentity.cif").chains
    assert [len(c) for c in got] == [300, 300] and max(c.res_ids.max() for c in got) == 308

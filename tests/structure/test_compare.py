"""dplm2.structure.compare on real chains: identities, rigid motions, TM-align agreement."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from tests.evaluate.helpers import DATA, backbone, chain, random_rigid

from dplm2.structure.compare import (
    backbone_rmsd,
    ca_rmsd,
    motif_rmsd,
    rmsd,
    superimpose,
    tm_align,
    tm_score,
)


@pytest.mark.parametrize("name", ["1hml_A", "d1mbaa_", "1tim_A"])
def test_identical_chain_scores_one_and_zero(name):
    x = backbone(name)
    r = tm_align(x, x)
    assert r.tm_norm_a == pytest.approx(1.0, abs=1e-6)
    assert r.tm_norm_b == pytest.approx(1.0, abs=1e-6)
    assert r.n_aligned == len(x)
    assert backbone_rmsd(x, x) < 1e-3
    assert ca_rmsd(x, x) < 1e-3


def test_rigidly_moved_copy_is_the_same_structure():
    x = backbone("3lzm_A")
    rot, shift = random_rigid(3)
    y = x @ rot.T + shift
    assert rmsd(x, y, superpose=False) > 5.0  # really moved
    assert backbone_rmsd(x, y) < 1e-3
    assert ca_rmsd(x, y) < 1e-3
    assert tm_score(x, y) == pytest.approx(1.0, abs=1e-6)
    # superimpose returns the transform that undoes the motion
    moved, r, t = superimpose(x[:, 1], y[:, 1])
    assert np.allclose(moved, x[:, 1], atol=1e-3)
    assert np.allclose(y[:, 1] @ r.T + t, moved, atol=1e-3)
    # TM-align's own transform maps a onto b
    res = tm_align(x, y)
    assert np.allclose(x[:, 1] @ res.rotation.T + res.translation, y[:, 1], atol=1e-2)


def test_rmsd_of_known_displacement():
    x = backbone("1hml_A")
    y = x.copy()
    y[:, :, 0] += 2.0  # pure translation: 2 Å without superposition, 0 with
    assert rmsd(x, y, superpose=False) == pytest.approx(2.0, abs=1e-6)
    assert rmsd(x, y) < 1e-3


def test_missing_atoms_are_skipped_and_lengths_checked():
    x = backbone("1hml_A")
    y = x.copy()
    y[5, 0] = np.nan
    assert backbone_rmsd(x, y) < 1e-3
    with pytest.raises(ValueError, match="equal lengths"):
        backbone_rmsd(x, x[:-1])


def test_homologs_score_between_unrelated_and_identical():
    glob = [backbone(n) for n in ("d1mbaa_", "d1asha_")]
    tim = backbone("1tim_A")
    related = tm_score(glob[0], glob[1])
    unrelated = tm_score(glob[0], tim)
    assert 0.5 < related < 0.99
    assert unrelated < 0.4
    r = tm_align(glob[0], tim)
    # normalisation by the longer TIM chain gives the smaller score
    assert r.tm_norm_b < r.tm_norm_a
    assert tm_score(glob[0], tim, "min") == pytest.approx(r.tm_norm_b)
    assert tm_score(glob[0], tim, "b") == pytest.approx(r.tm_norm_b)


def _tmalign_binary(a, b):
    out = subprocess.run(["TMalign", str(a), str(b)], capture_output=True, text=True, check=True).stdout
    scores = [float(x) for x in re.findall(r"TM-score= ([0-9.]+) \(if normalized by length of Chain_", out)]
    rmsd_ = float(re.search(r"RMSD=\s*([0-9.]+)", out).group(1))
    n_aligned = int(re.search(r"Aligned length=\s*(\d+)", out).group(1))
    seq_id = float(re.search(r"Seq_ID=n_identical/n_aligned=\s*([0-9.]+)", out).group(1))
    return scores[0], scores[1], rmsd_, n_aligned, seq_id


PAIRS = [("1hml_A", "3lzm_A"), ("1qgi_A", "3kcs_A"), ("2nwd_X", "6oa8_A"), ("d1mbaa_", "d1hlba_"),
         ("1tim_A", "8tim_A"), ("d1asha_", "1tim_A")]


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_tmtools_agrees_with_tmalign_binary(tmp_path, a, b, require_tool):
    import gzip

    require_tool("TMalign", install="apt-get install tm-align")
    files = []
    for n in (a, b):
        f = tmp_path / f"{n}.pdb"
        f.write_bytes(gzip.decompress((DATA / f"{n}.pdb.gz").read_bytes()))
        files.append(f)
    ref1, ref2, ref_rmsd, ref_n, ref_id = _tmalign_binary(*files)
    r = tm_align(backbone(a), backbone(b), chain(a).sequence, chain(b).sequence)
    assert r.n_aligned == ref_n and r.n_close <= r.n_aligned  # TM-align's "Aligned length"
    assert r.seq_identity == pytest.approx(ref_id, abs=1e-3)
    assert r.tm_norm_a == pytest.approx(ref1, abs=1e-3)
    assert r.tm_norm_b == pytest.approx(ref2, abs=1e-3)
    assert r.rmsd == pytest.approx(ref_rmsd, abs=1e-2)
    # poly-Ala (the reference's evaluation choice) gives the same structural score
    assert tm_align(backbone(a), backbone(b)).tm_norm_a == pytest.approx(ref1, abs=1e-3)


def test_motif_rmsd_against_renumbered_reference_file():
    # 1ycr chain B residues 17-29 and the benchmark's 1ycr_reference (renumbered 86-98) hold
    # the same coordinates; the motif B19-27 is positions 2..10 of both.
    sample, ref = backbone("1ycr_B"), backbone("1ycr_reference")
    assert motif_rmsd(sample, ref, range(2, 11), range(2, 11)) < 1e-3
    # a motif transplanted (rigidly moved) into a globin scaffold keeps RMSD ~0 ...
    scaffold = backbone("d1mbaa_").copy()
    rot, shift = random_rigid(5)
    scaffold[40:49] = ref[2:11] @ rot.T + shift
    assert motif_rmsd(scaffold, ref, range(40, 49), range(2, 11)) < 1e-3
    assert motif_rmsd(scaffold, ref, range(40, 49), range(2, 11), atoms="backbone") < 1e-3
    # ... while the globin's own helix at another place does not match the motif
    assert motif_rmsd(scaffold, ref, range(60, 69), range(2, 11)) > 1.0
    with pytest.raises(ValueError, match="out of range"):
        motif_rmsd(scaffold, ref, range(40, 49), range(10, 19))

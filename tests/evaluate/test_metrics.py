"""Metric functions on real structures with known answers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from dplm2.evaluate.diversity import (
    cluster_complete,
    cluster_greedy,
    diversity_table,
    inner_tm,
    tm_matrix,
)
from dplm2.evaluate.fold_accuracy import fold_accuracy
from dplm2.evaluate.motif import motif_table, problems_solved
from dplm2.evaluate.novelty import max_tm
from dplm2.evaluate.recovery import aar
from dplm2.evaluate.self_consistency import self_consistency
from dplm2.evaluate.summary import summarize, to_markdown

from .helpers import GLOBINS, TIMS, backbone, chain, random_rigid


@pytest.fixture(scope="module")
def family_matrix():
    names = list(GLOBINS) + list(TIMS)
    return names, tm_matrix([backbone(n) for n in names])


def test_aar_hand_made():
    assert aar("MKTAY", "MKTAY") == 1.0
    assert aar("MKTAY", "AAAAA") == pytest.approx(0.2)
    assert aar("GGGG", "AAAA") == 0.0
    assert aar("MKXA", "MKLX") == pytest.approx(2 / 3)  # native X is not scored
    with pytest.raises(ValueError, match="length"):
        aar("MK", "MKT")


def test_aar_of_native_sequence_of_a_real_chain():
    seq = chain("1hml_A").sequence
    assert aar(seq, seq) == 1.0
    shuffled = "".join(np.random.default_rng(0).permutation(list(seq)))
    assert aar(shuffled, seq) < 0.2


def test_tm_matrix_and_inner_tm_separate_families(family_matrix):
    names, m = family_matrix
    g = len(GLOBINS)
    assert np.allclose(np.diag(m), 1.0)
    within_globins = inner_tm(m[:g, :g])
    within_tims = inner_tm(m[g:, g:])
    across = np.minimum(m[:g, g:], m[g:, :g].T)  # both normalisations (the clustering's rule)
    assert within_globins > 0.6 and within_tims > 0.9
    assert across.max() < 0.3
    assert inner_tm(m) < within_globins


@pytest.mark.parametrize("method", [cluster_greedy, cluster_complete])
def test_clustering_globins_vs_tim_barrels(family_matrix, method):
    names, m = family_matrix
    labels = method(m, 0.5)
    g = len(GLOBINS)
    assert len(set(labels[:g])) == 1 and len(set(labels[g:])) == 1
    assert labels[0] != labels[-1]
    assert len(set(labels.tolist())) == 2
    # a threshold above every off-diagonal score leaves each structure alone
    assert len(set(method(m, 0.999).tolist())) == len(names)


def test_complete_linkage_is_stricter_than_greedy():
    # a chain a-b-c where a~b, b~c but a !~ c: greedy (set cover around b) makes one cluster,
    # complete linkage needs every pair similar and makes two.
    m = np.array([[1, .7, .2], [.7, 1, .7], [.2, .7, 1]])
    assert len(set(cluster_greedy(m, 0.5).tolist())) == 1
    assert len(set(cluster_complete(m, 0.5).tolist())) == 2


def test_diversity_table_clusters_only_designable():
    names = list(GLOBINS) + list(TIMS)
    structs = [backbone(n) for n in names]
    samples = pl.DataFrame({"sample_id": names, "task": ["cogen"] * 6,
                            "length": [len(s) for s in structs]})
    designable = [True, True, True, False, True, True]
    t = diversity_table(samples, structs, designable, threshold=0.5)
    assert t["cluster"].null_count() == 1
    assert t["cluster"].drop_nulls().n_unique() == 2
    # the two TIMs share a length (247): inner-TM is their TM-score; unique lengths -> null
    tim = t.filter(pl.col("length") == 247)["inner_tm"].to_list()
    assert all(x > 0.9 for x in tim)
    assert t.filter(pl.col("length") != 247)["inner_tm"].null_count() == 4
    s = summarize("cogen", {"diversity": t})
    get = {(r["metric"], r["group"]): r["value"] for r in s.iter_rows(named=True)}
    assert get[("inner_tm", "all")] == pytest.approx(np.mean(tim))
    assert get[("n_clusters", "all")] == 2 and get[("n_designable", "all")] == 5
    assert "| all | 6 |" in to_markdown("cogen", s)
    # two processes: the same table, value for value
    assert diversity_table(samples, structs, designable, threshold=0.5, threads=2).equals(t)


def test_novelty_finds_the_family():
    sample = backbone("d1mbaa_")
    refs = [backbone(n) for n in ("1tim_A", "d1asha_", "d1hlba_")]
    tm, k = max_tm(sample, refs)
    assert k in (1, 2) and tm > 0.6
    tm_tim, _ = max_tm(backbone("8tim_A"), [backbone(n) for n in GLOBINS])
    assert tm_tim < 0.35
    tm_self, _ = max_tm(sample, refs + [sample])
    assert tm_self == pytest.approx(1.0, abs=1e-6)


#: The designability rules of the paper (evaluate.self_consistency).
DESIGNABLE = {"designable_sctm": 0.5, "designable_scrmsd": 2.0}


def test_self_consistency_of_moved_and_perturbed_copies():
    x = backbone("d1asha_")
    rot, shift = random_rigid(1)
    m = self_consistency(x, x @ rot.T + shift, plddt=np.full(len(x), 80.0), **DESIGNABLE)
    assert m["sctm"] == pytest.approx(1.0, abs=1e-6) and m["scrmsd"] < 1e-3
    assert m["designable_sctm"] and m["designable_scrmsd"] and m["plddt"] == 80.0
    noisy = x + np.random.default_rng(0).normal(scale=2.5, size=x.shape)
    m = self_consistency(x, noisy, **DESIGNABLE)
    assert m["scrmsd_ca"] > 2.0 and not m["designable_scrmsd"]
    assert m["plddt"] is None
    other = backbone("8tim_A")
    m = self_consistency(backbone("1tim_A"), other, **DESIGNABLE)  # same fold, other species: ~1 Å
    assert m["sctm"] > 0.9 and m["designable_sctm"]


def test_fold_accuracy_against_the_true_structure():
    ref = backbone("1tim_A")
    ok = fold_accuracy(ref + 1.0, ref, tm_threshold=0.8)
    assert ok["tm"] == pytest.approx(1.0, abs=1e-6) and ok["tm_pass"]
    r = fold_accuracy(backbone("8tim_A"), ref, tm_threshold=0.8)
    assert 0.8 < r["tm"] < 1.0 and 0.3 < r["rmsd_ca"] < 3.0
    with pytest.raises(ValueError, match="residues"):
        fold_accuracy(ref[:-3], ref, tm_threshold=0.8)


def test_motif_success_and_problems_solved():
    ref = backbone("1ycr_reference")
    good = backbone("d1mbaa_").copy()
    good[40:49] = ref[2:11] + 3.0
    bad = backbone("d1mbaa_")
    samples = pl.DataFrame({
        "sample_id": ["s1", "s2", "s3"], "task": ["scaffold"] * 3, "target_id": ["1YCR", "1YCR", "X"],
        "length": [len(good)] * 3, "motif_positions": [list(range(40, 49))] * 3,
        "reference_motif_positions": [list(range(2, 11))] * 3,
    })
    sc = pl.DataFrame({"sample_id": ["s1", "s2", "s3"], "sctm": [0.9, 0.7, 0.95],
                       "folding_backend": ["esmfold:x"] * 3})
    t = motif_table(samples, [good, good, bad], [ref] * 3, sc)
    assert t["success"].to_list() == [True, False, False]
    assert t["motif_rmsd"][0] < 1e-3 and t["motif_rmsd"][2] > 1.0
    per = problems_solved(t)
    assert per.filter(pl.col("target_id") == "1YCR")["solved"].item()
    assert not per.filter(pl.col("target_id") == "X")["solved"].item()
    s = summarize("scaffold", {"motif": t})
    row = s.filter((pl.col("metric") == "n_solved"))
    assert row["value"].item() == 1.0
    md = to_markdown("scaffold", s)
    assert "target=1YCR" in md and "esmfold:x" in md


def test_foldseek_backend_missing_binary_is_a_clear_error(tmp_path):
    from dplm2.evaluate.diversity import foldseek_clusters

    with pytest.raises(FileNotFoundError, match="foldseek binary 'no-such-foldseek' not found"):
        foldseek_clusters([tmp_path / "a.pdb"], 0.5, binary="no-such-foldseek")


def test_reference_with_unobserved_residues_is_paired_by_residue_number(tmp_path):
    from dplm2.evaluate.samples import reference_backbone
    from dplm2.structure import write_backbone

    c = chain("1hml_A")
    xyz = np.asarray(c.coords, dtype=np.float64).copy()
    xyz[10:13] = np.nan  # residues without any observed atom vanish from the written file
    write_backbone(tmp_path / "ref.pdb", xyz, c.sequence)
    row = {"sample_id": "s", "reference_path": "ref.pdb", "_base": str(tmp_path)}
    ref = reference_backbone(row, len(c))
    assert ref.shape == (len(c), 4, 3) and np.isnan(ref[10:13]).all()
    r = fold_accuracy(np.asarray(c.coords, dtype=np.float64), ref, tm_threshold=0.8)
    assert r["rmsd"] < 1e-2 and r["tm"] > 0.97
    with pytest.raises(ValueError, match="cannot pair residues"):
        reference_backbone(row, 50)


def test_designable_samples_by_each_rule_and_stale_table():
    from dplm2.evaluate.diversity import designable_samples

    samples = pl.DataFrame({"sample_id": ["s2", "s0", "s1"]})
    sc = pl.DataFrame({"sample_id": ["s0", "s1", "s2"], "designable_sctm": [True, True, False],
                       "designable_scrmsd": [True, False, True],
                       "folding_backend": ["esmfold", "esmfold", "dplm2"]})
    expect = {"sctm": [False, True, True], "scrmsd": [True, True, False],
              "both": [False, True, False], "all": [True, True, True]}
    for rule, want in expect.items():
        assert designable_samples(samples, sc, rule) == (want, "dplm2,esmfold")
    with pytest.raises(ValueError, match="designable_by must be one of"):
        designable_samples(samples, sc, "plddt")
    with pytest.raises(ValueError, match="sc.parquet: samples missing from it"):
        designable_samples(samples, sc.head(2), "sctm", source="sc.parquet")
    with pytest.raises(ValueError, match="not a self-consistency table"):
        designable_samples(samples, sc.drop("folding_backend"), "sctm")

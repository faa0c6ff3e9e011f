"""Filter units, the Rg bound, metadata records, dedup and splits."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pytest

from dplm2.process.cluster import identity_clusters, mmseqs_clusters
from dplm2.process.config import FilterConfig, SplitConfig
from dplm2.process.filters import (BackboneFilter, DAminoFilter, LengthFilter, LoopFilter,
                                   OligomerFilter, PlddtFilter, ResolutionFilter, RgFilter,
                                   RgThreshold, UnknownFilter, Verdict)
from dplm2.process.records import ChainRecord
from dplm2.process.split import assign_splits, deduplicate


def rec(id="1abc_A", source="pdb", seq="A" * 100, **kw) -> ChainRecord:
    base = dict(id=id, source=source, file="f", entry_id=id.split("_")[0], chain_id="A",
                sequence=seq, parsed_length=len(seq), length=len(seq), resolution=2.0,
                method="X-RAY DIFFRACTION", release_date=date(2010, 1, 1), oligomeric_count=1,
                oligomeric_source="assembly", helix_fraction=0.5, strand_fraction=0.2,
                loop_fraction=0.3, radius_of_gyration=14.0, backbone_fraction=1.0)
    base.update(kw)
    return ChainRecord(**base)


CFG = FilterConfig.from_dict()


@pytest.mark.parametrize("flt, good, bad, words", [
    (LengthFilter(CFG), rec(), rec(seq="A" * 59), "length 59 outside [60, 1024]"),
    (LengthFilter(CFG), rec(seq="A" * 1024), rec(seq="A" * 1025), "1025"),
    (LoopFilter(CFG), rec(loop_fraction=0.5), rec(loop_fraction=0.51), "loop fraction 0.51"),
    (OligomerFilter(CFG), rec(), rec(oligomeric_count=2), "2 protein chains in the assembly"),
    (ResolutionFilter(CFG), rec(resolution=5.0), rec(resolution=5.1), "resolution 5.1"),
    (BackboneFilter(CFG), rec(backbone_fraction=0.9), rec(backbone_fraction=0.5), "50%"),
    (UnknownFilter(CFG), rec(unknown_fraction=0.1), rec(unknown_fraction=0.38),
     "38% of residues unknown (X)"),
    (DAminoFilter(CFG), rec(d_amino_fraction=0.1), rec(d_amino_fraction=0.95),
     "95% of residues are D-amino acids"),
    (PlddtFilter(CFG), rec(source="afdb", mean_plddt=86.0, plddt_sd=14.0),
     rec(source="afdb", mean_plddt=85.0, plddt_sd=14.0), "mean 85.0"),
    (PlddtFilter(CFG), rec(source="afdb", mean_plddt=90.0, plddt_sd=14.9),
     rec(source="afdb", mean_plddt=90.0, plddt_sd=15.0), "SD 15.0"),
])
def test_filter_boundaries(flt, good, bad, words):
    assert flt.verdict(good).passed is True
    v = flt.verdict(bad)
    assert v.passed is False and words in v.reason


def test_not_applicable_and_switches():
    assert PlddtFilter(CFG).verdict(rec()).passed is None  # PDB chain
    assert ResolutionFilter(CFG).verdict(rec(source="afdb", resolution=None)).passed is None
    assert ResolutionFilter(CFG).verdict(rec(resolution=None)).passed is True  # NMR kept
    strict = dataclasses.replace(CFG, keep_missing_resolution=False, monomers_only=False)
    assert ResolutionFilter(strict).verdict(rec(resolution=None)).passed is False
    assert OligomerFilter(strict).verdict(rec(oligomeric_count=4)).passed is None
    order = dataclasses.replace(CFG, plddt_order="test_then_trim")
    r = rec(source="afdb", mean_plddt=90.0, plddt_sd=5.0, untrimmed_mean_plddt=70.0,
            untrimmed_plddt_sd=25.0)
    assert PlddtFilter(CFG).verdict(r).passed is True
    assert PlddtFilter(order).verdict(r).passed is False


def test_rg_threshold_poly_and_fallback():
    rng = np.random.default_rng(0)
    lengths = rng.integers(60, 600, 2000)
    rgs = 2.2 * lengths**0.38 * rng.normal(1.0, 0.05, len(lengths))
    poly = RgThreshold.fit(lengths, rgs, CFG)
    assert poly.kind == "poly" and len(poly.coefficients) == 5
    frac_above = np.mean(rgs > np.array([poly.limit(n) for n in lengths]))
    assert 0.02 < frac_above < 0.07  # about 4 % above the 0.96 quantile curve
    scaled = RgThreshold.fit(lengths[:50], rgs[:50],
                             dataclasses.replace(CFG, rg_fallback="scaled_quantile"))
    assert scaled.kind == "scaled"
    assert RgThreshold.fit(lengths[:50], rgs[:50],
                           dataclasses.replace(CFG, rg_fallback="none")).kind == "none"
    flt = RgFilter(scaled)
    assert flt.verdict(rec(radius_of_gyration=40.0)).passed is False
    assert flt.verdict(rec(radius_of_gyration=12.0)).passed is True


def test_rg_small_inputs_use_the_fixed_compactness_law():
    """Below rg_min_chains the bound is 1.5 x 2.2 L^0.38 Å whatever the neighbours are: a
    compact chain among tighter ones is not cut (the fitted quantile cut it)."""
    lengths = np.array([100] * 8 + [297])
    rgs = np.array([13.0] * 8 + [20.9])  # AF-O15552 (pLDDT 92.2): Rg 20.9 Å at 297 residues
    law = RgThreshold.fit(lengths, rgs, CFG)
    assert law.kind == "law" and law.n_chains == 9
    assert law.limit(297) == pytest.approx(1.5 * 2.2 * 297**0.38)
    assert RgFilter(law).verdict(rec(seq="A" * 297, radius_of_gyration=20.9)).passed is True
    assert RgFilter(law).verdict(rec(seq="A" * 297, radius_of_gyration=40.0)).passed is False
    assert "compactness law" in law.describe() and "Skolnick" in law.describe()
    scaled = RgThreshold.fit(lengths, rgs, dataclasses.replace(CFG, rg_fallback="scaled_quantile"))
    assert RgFilter(scaled).verdict(rec(seq="A" * 297, radius_of_gyration=20.9)).passed is False
    assert RgThreshold.fit(np.array([]), np.array([]), CFG).kind == "law"


def test_record_round_trip_and_invariants():
    r = rec().with_verdict(Verdict("length", True)).with_verdict(Verdict("plddt", None))
    r = r.with_verdict(Verdict("loop", False, "loop fraction 0.9 > 0.5"))
    again = ChainRecord.from_row(r.to_row())
    assert again == r and again.drop_reason == "loop: loop fraction 0.9 > 0.5"
    assert not again.kept and again.to_row()["pass_plddt"] is None
    with pytest.raises(ValueError, match="sequence of its length"):
        rec(length=5)
    with pytest.raises(ValueError, match="split"):
        dataclasses.replace(r, split="train")  # dropped chains get no split
    failed = ChainRecord(id="x", source="pdb", file="x.cif", entry_id="x", error="empty file")
    assert failed.drop_reason == "parse: empty file" and not failed.kept


def test_dedup_picks_best_and_records_it():
    rs = [rec("2bbb_A", resolution=2.5), rec("1aaa_A", resolution=1.5),
          rec("AF-P1-F1", source="afdb", resolution=None, mean_plddt=95.0, plddt_sd=3.0),
          rec("3ccc_A", seq="C" * 100)]
    out = {r.id: r for r in deduplicate(rs)}
    assert out["1aaa_A"].kept and out["3ccc_A"].kept
    assert out["2bbb_A"].duplicate_of == "1aaa_A" and not out["2bbb_A"].kept
    assert out["AF-P1-F1"].duplicate_of == "1aaa_A"
    assert "identical sequence to 1aaa_A" in out["2bbb_A"].drop_reason


def test_date_split():
    cfg = SplitConfig.from_dict(dict(valid_start="2018-01-01", test_start="2020-01-01"))
    rs = [rec("a_A", release_date=date(2017, 12, 31)), rec("b_A", release_date=date(2018, 1, 1)),
          rec("c_A", release_date=date(2020, 1, 1)), rec("d_A", release_date=None),
          rec("AF-X-F1", source="afdb", release_date=date(2022, 1, 1), mean_plddt=90.0,
              plddt_sd=1.0)]
    assert assign_splits(rs, cfg) == {"a_A": "train", "b_A": "valid", "c_A": "test",
                                      "d_A": "train", "AF-X-F1": "train"}


def test_identity_split_keeps_clusters_together_and_is_seeded():
    rng = np.random.default_rng(1)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    fams = ["".join(rng.choice(letters, 80)) for _ in range(12)]
    rs = []
    for f, s in enumerate(fams):
        for k in range(3):  # three near-identical members per family
            mut = list(s)
            mut[k * 7] = "W"
            rs.append(rec(f"{f:02d}{k}_A", seq="".join(mut)))
    cfg = SplitConfig.from_dict(dict(method="identity", min_identity=0.9, valid_fraction=0.3, test_fraction=0.3))
    a = assign_splits(rs, cfg)
    for f in range(12):
        assert len({a[f"{f:02d}{k}_A"] for k in range(3)}) == 1  # a family never straddles
    assert set(a.values()) == {"train", "valid", "test"}
    assert assign_splits(rs, cfg) == a
    assert assign_splits(rs, dataclasses.replace(cfg, seed=7)) != a


def test_identity_clusters_threshold():
    s = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALRPDEDRLSPLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVGIGGKLSDGHRHDVRAPDYDDWSTPSELGHAGLNGDILVWNPVLEDAFELSSMGIRVDADTLKHQLALTGDEDRLELEWHQALLRGEMPQTIGGGIGQSRLTMLLLQLPHIGQVQAGVWPAACRESVPALL"  # noqa: E501
    half = s[: len(s) // 2] + "".join(reversed(s[len(s) // 2:]))
    assert identity_clusters({"a": s, "b": half}, 0.9, 0.8) == {"a": "a", "b": "b"}
    assert identity_clusters({"a": s, "b": half}, 0.3, 0.5) == {"a": "a", "b": "a"}


def test_mmseqs_missing_binary_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="not on PATH.*identity"):
        mmseqs_clusters({"a": "MKV"}, 0.3, 0.8, binary="mmseqs-not-installed-here")


def test_mmseqs_clusters_families(require_tool):
    require_tool("mmseqs", install="apt-get install mmseqs2")
    rng = np.random.default_rng(2)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    a, b = ("".join(rng.choice(letters, 120)) for _ in range(2))
    out = mmseqs_clusters({"a1": a, "a2": a[:-2] + "WW", "b1": b}, 0.5, 0.8)
    assert out["a1"] == out["a2"] != out["b1"]

"""Novelty at scale: the exact length prefilter, parts merged, processes - all equal to the
exhaustive single-process computation on real chains."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from dplm2.cli import main as dplm2_main
from dplm2.evaluate.novelty import (
    best_match,
    ca_trace,
    count_references,
    load_reference_range,
    merge_parts,
    novelty_part,
    novelty_table,
    part_bounds,
    tm_upper_bound,
)
from dplm2.io import write_parquet
from dplm2.structure.compare import tm_align

from .helpers import backbone, chain
from .test_workflow import _samples

NAMES = ["d1mbaa_", "d1hlba_", "8tim_A", "1hml_A", "3lzm_A", "1qgi_A"]


def _references():
    """Real chains plus fragments of them (lengths 40..247): short references are what the
    prefilter skips, fragments of a sample are its close matches."""
    out = []
    for n in NAMES:
        x = backbone(n)
        out += [(n, x), (f"{n}:head", x[: len(x) // 2]), (f"{n}:mid", x[len(x) // 4: len(x) // 4 + 40])]
    return out


@pytest.fixture(scope="module")
def refs():
    named = _references()
    return [n for n, _ in named], [ca_trace(x) for _, x in named]


def test_upper_bound_holds_on_real_pairs(refs):
    _, cas = refs
    for a in cas[:6]:
        for b in cas[::3]:
            assert tm_align(a, b).tm_norm_a <= tm_upper_bound(len(a), len(b)) + 1e-12


def test_prefilter_is_exact_and_skips(refs):
    _, cas = refs
    skipped = 0
    for n in NAMES[::2] + ["1tim_A"]:
        x = backbone(n)
        exact = best_match(x, cas, prefilter="none")
        fast = best_match(x, cas, prefilter="length_bound")
        assert fast[:2] == exact[:2], n  # same score (bit for bit) and same nearest reference
        assert exact[2] == len(cas)
        skipped += len(cas) - fast[2]
    assert skipped > 10  # the bound prunes on real data


def test_equal_scores_keep_the_first_reference(refs):
    _, cas = refs
    x = backbone("d1mbaa_")
    twice = [cas[5], ca_trace(x), cas[7], ca_trace(x)]
    for pf in ("none", "length_bound"):
        tm, k, _ = best_match(x, twice, prefilter=pf)
        assert k == 1 and tm == pytest.approx(1.0, abs=1e-6)


def _shards(tmp_path, named, n_shards=3):
    """Chain shards (shard order = reference order), with a valid chain mixed in."""
    paths = []
    blocks = np.array_split(np.arange(len(named)), n_shards)
    for s, block in enumerate(blocks):
        rows = []
        for j in block:
            name, x = named[j]
            rows.append({"id": name, "split": "train", "length": len(x),
                         "coords": x.astype(np.float32).reshape(-1).tolist()})
            if j % 4 == 0:  # not a reference: another split
                rows.append({"id": f"{name}:valid", "split": "valid", "length": len(x),
                             "coords": x.astype(np.float32).reshape(-1).tolist()})
        paths.append(write_parquet(pl.DataFrame(rows), tmp_path / f"chains-{s:05d}-of-{n_shards:05d}.parquet",
                                   {"stage": "process"}))
    return paths


def test_parts_and_processes_equal_one_exhaustive_pass(tmp_path):
    named = _references()
    shards = _shards(tmp_path, named)
    counts = count_references(shards)
    assert sum(counts) == len(named)
    names = ("d1asha_", "1tim_A", "1qgi_A")
    samples = pl.DataFrame({"sample_id": [f"s{i}" for i in range(3)], "task": "cogen",
                            "length": [len(backbone(n)) for n in names]})
    structures = [backbone(n) for n in names]
    ids, _, cas = load_reference_range(shards, "train", 0, sum(counts), counts)
    assert ids == [n for n, _ in named]
    exhaustive = novelty_table(samples, structures, ids, cas, prefilter="none")
    parts = []
    for k in range(4):
        lo, hi = part_bounds(sum(counts), k, 4)
        pid, pidx, pcas = load_reference_range(shards, "train", lo, hi, counts)
        assert pidx == list(range(lo, hi))
        parts.append(novelty_part(samples, structures, pid, pidx, pcas, threads=2))
    merged = merge_parts(samples, parts)
    cols = ["sample_id", "pdb_tm", "nearest_id"]
    assert merged.select(cols).equals(exhaustive.select(cols))
    assert merged["n_aligned"].sum() < exhaustive["n_aligned"].sum()
    # a part missing a sample is refused
    with pytest.raises(ValueError, match="differ from the samples"):
        merge_parts(samples, [parts[0].head(2)] + parts[1:])


def test_cli_parts_and_merge_equal_single_job(tmp_path):
    root = tmp_path / "results"
    s = _samples(root, "cogen", ["d1mbaa_", "8tim_A"])
    named = [(c.id, np.asarray(c.coords, np.float64)) for c in map(chain, NAMES)]
    shards = [str(p) for p in _shards(root / "chains", named, 2)]
    ev = root / "evaluate" / "cogen"
    base = ["--task", "cogen", "--samples", str(s)]
    assert dplm2_main(["evaluate", "novelty", *base, "--chains", *shards,
                       "--out", str(ev / "single.parquet"),
                       "--params", json.dumps({"prefilter": "none"})]) == 0
    parts = [str(ev / f"part-{k}.parquet") for k in range(3)]
    for k, p in enumerate(parts):
        assert dplm2_main(["evaluate", "novelty-part", *base, "--chains", *shards, "--part", str(k),
                           "--parts", "3", "--threads", "2", "--out", p]) == 0
    assert dplm2_main(["evaluate", "novelty-merge", *base, "--part-tables", *parts,
                       "--out", str(ev / "novelty.parquet")]) == 0
    single = pl.read_parquet(ev / "single.parquet")
    merged = pl.read_parquet(ev / "novelty.parquet")
    assert merged.drop("n_aligned").equals(single.drop("n_aligned"))
    assert merged.filter(pl.col("sample_id") == "cogen_0")["pdb_tm"][0] == pytest.approx(1.0, abs=1e-6)
    # a missing part is a clear error, and nothing is written
    assert dplm2_main(["evaluate", "novelty-merge", *base, "--part-tables", *parts[:2],
                       "--out", str(tmp_path / "x.parquet")]) == 2
    assert not (tmp_path / "x.parquet").exists()
    # parts made from other samples (another config hash) are refused
    from dplm2.evaluate.novelty import merge_part_files
    from dplm2.evaluate.samples import read_samples

    samples = read_samples(s, "cogen")
    with pytest.raises(ValueError, match="part-0.parquet: made from other samples"):
        merge_part_files(samples, parts, "another-config")
    with pytest.raises(ValueError, match=r"needs parts 0..2 of 3 once each"):
        merge_part_files(samples, [parts[0], parts[0], parts[2]], None)

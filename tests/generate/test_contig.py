"""Contig specifications: the benchmark's 24+ problems, sampling constraints, clear errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from dplm2.generate.contig import ContigError, ContigSpec, MotifSegment, ResidueId, Spacer

REPO = Path(__file__).resolve().parents[2]
BENCHMARK = REPO / "resources" / "scaffolding" / "benchmark.csv"


def benchmark_rows() -> list[dict]:
    with open(BENCHMARK, newline="") as fh:
        return list(csv.DictReader(fh))


def test_benchmark_table_lists_the_problems_once():
    names = [r["target"] for r in benchmark_rows()]
    assert len(names) >= 24 and len(set(names)) == len(names)


@pytest.mark.parametrize("row", benchmark_rows(), ids=lambda r: r["target"])
def test_every_benchmark_spec_parses_and_samples_within_its_ranges(row):
    spec = ContigSpec.parse(row["contig"], row["length"] or None)
    assert ",".join(str(s) for s in spec.segments).replace("-", "") == ",".join(
        str(s) for s in ContigSpec.parse(row["contig"]).segments
    ).replace("-", "")
    lo, hi = spec.total_range()
    if row["length"]:
        want = [int(x) for x in row["length"].split("-")]
        assert want[0] <= lo <= hi <= want[-1]
    rng = np.random.default_rng(0)
    totals = set()
    for _ in range(200):
        layout = spec.sample(rng)
        assert len(layout.lengths) == len(spec.segments)
        assert lo <= layout.length <= hi
        totals.add(layout.length)
        pos = 0
        motif_pos = []
        for seg, n in zip(spec.segments, layout.lengths):
            if isinstance(seg, Spacer):
                assert seg.lo <= n <= seg.hi
            else:
                assert n == seg.nominal_length
                motif_pos += list(range(pos, pos + n))
            pos += n
        assert list(layout.motif_indices) == motif_pos
        # the concrete contig is itself a valid spec with fixed spacers and the same length
        concrete = ContigSpec.parse(layout.contig)
        assert concrete.total_range() == (layout.length, layout.length)
    if hi > lo:
        assert len(totals) > 1  # the total length really varies


def test_slash_separator_and_fixed_spacers():
    a = ContigSpec.parse("5-20/A10-25/10-40/A50-60/5-20")
    b = ContigSpec.parse("5-20,A10-25,10-40,A50-60,5-20")
    assert a.segments == b.segments
    spec = ContigSpec.parse("A1-7,20,A28-79")
    assert spec.segments[1] == Spacer(20, 20)
    assert spec.total_range() == (79, 79)
    assert spec.sample(np.random.default_rng(1)).motif_indices[:8] == tuple(range(7)) + (27,)


def test_multichain_and_insertion_codes_parse():
    spec = ContigSpec.parse("0-5,D137-160,4-12,A14-48,A52A-52C,3")
    motifs = spec.motif_segments
    assert [m.chain for m in motifs] == ["D", "A", "A"]
    assert motifs[2] == MotifSegment("A", ResidueId(52, "A"), ResidueId(52, "C"))
    assert motifs[2].nominal_length is None
    assert spec.chains == ("D", "A")
    with pytest.raises(ContigError, match="insertion codes need the structure"):
        spec.sample(np.random.default_rng(0))
    layout = spec.sample(np.random.default_rng(0), motif_lengths=[24, 35, 3])
    assert len(layout.motif_indices) == 62


def test_sampling_is_seeded():
    spec = ContigSpec.parse("0-30,A119-140,15-40,A63-82,0-30")
    a = [spec.sample(np.random.default_rng(7)).contig for _ in range(3)]
    b = [spec.sample(np.random.default_rng(7)).contig for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(7)
    assert len({spec.sample(rng).contig for _ in range(20)}) > 1


def test_tight_total_length_is_met_without_rejection():
    spec = ContigSpec.parse("0-122,B25-46,0-122", "128")
    rng = np.random.default_rng(0)
    layouts = [spec.sample(rng) for _ in range(100)]
    assert all(layout.length == 128 for layout in layouts)
    assert len({layout.lengths[0] for layout in layouts}) > 10


@pytest.mark.parametrize(
    "spec, length, reason",
    [
        ("", None, "empty specification"),
        ("5-20,,A16-35", None, "empty element"),
        ("5-20,10-30", None, "no motif segment"),
        ("20-5,A16-35", None, "range reversed"),
        ("5-20,A35-16", None, "ends before it starts"),
        ("5-20,A16-35,?7", None, "cannot read element '?7'"),
        ("5-20,A16:35", None, "cannot read element 'A16:35'"),
        ("5-10,A1-10,5-10", "100-120", "cannot be met"),
        ("5-10,A1-10,5-10", "abc", "not 'n' or 'lo-hi'"),
        ("5-10,A1-10,5-10", "30-20", "is empty"),
    ],
)
def test_bad_specs_name_the_spec_and_the_reason(spec, length, reason):
    with pytest.raises(ContigError) as err:
        ContigSpec.parse(spec, length).total_range()
    text = str(err.value)
    assert reason in text
    assert repr(spec.strip()) in text

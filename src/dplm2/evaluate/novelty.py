"""Novelty: how far is each generated structure from everything the model was trained on?

``pdb_tm`` = max over training structures of TM-score(sample, training chain), normalised by the
sample (spec §6; lower = more novel). The reference runs ``TMalign -fast`` against PDB; we run
the full TM-align (tmtools) against the project's own training split (the ``process`` stage's
chain shards), which is exact where ``-fast`` is approximate.

Scaling out
-----------
The references are the chains of ``split`` in the chain shards, in shard order; a chain's
*reference index* is its position in that list. ``K`` novelty jobs each take one contiguous
range of indices (:func:`part_bounds`, ``dplm2 evaluate novelty-part``; SLURM spreads them) and
score every sample against it on all their cores (:mod:`dplm2.evaluate.pool`); a small job
merges the parts (:func:`merge_parts`): per sample the highest TM-score, and among equal
scores the lowest reference index, which is exactly what one pass over all references in
order keeps (the first maximum). The result does not depend on ``K`` or on the thread count.

Exact length prefilter
----------------------
TM-score normalised by the sample's length ``L_s`` is
``(1 / L_s) * sum over aligned pairs of 1 / (1 + (d / d0)^2)``: every term is at most 1 and
there are at most ``min(L_s, L_r)`` aligned pairs, so ``TM <= min(L_s, L_r) / L_s``
(:func:`tm_upper_bound`; ``L`` = residues with a CA, what TM-align sees). Each sample visits its
part's references longest first, so this bound never increases along the way; as soon as
``bound + BOUND_MARGIN <= best so far``, no remaining reference can reach the best score (let
alone beat it), and the sample stops. ``BOUND_MARGIN`` (1e-9) covers TM-align's floating-point
summation, so the skip is exact: same ``pdb_tm`` and same ``nearest_id`` as the exhaustive
computation (``prefilter: none``), tested. How much it saves depends on the data: a sample
that has a close match among references of its length skips every reference much shorter
than ``best * L_s``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from dplm2.evaluate.pool import pool_map
from dplm2.structure.compare import backbone_points, tm_align

#: Slack on the length bound; TM-align's score is a sum of at most min(L_s, L_r) terms <= 1.
BOUND_MARGIN = 1e-9
PREFILTERS = ("length_bound", "none")
PART_COLUMNS = ("sample_id", "pdb_tm", "reference_index", "nearest_id", "n_references", "n_aligned")


def tm_upper_bound(sample_length: int, reference_length: int) -> float:
    """Largest possible TM-score normalised by the sample: ``min(L_s, L_r) / L_s``.

    Examples
    --------
    >>> tm_upper_bound(200, 50), tm_upper_bound(100, 300)
    (0.25, 1.0)
    """
    return min(sample_length, reference_length) / sample_length


def best_match(sample: np.ndarray, references: Sequence[np.ndarray], *, prefilter: str = "length_bound",
               order: np.ndarray | None = None) -> tuple[float, int, int]:
    """Highest TM-score of ``sample`` against ``references`` (normalised by the sample).

    Parameters
    ----------
    sample : ndarray, shape (L, 4, 3) or (L, 3)
    references : sequence of ndarray, each (L_i, 3)
        Finite CA traces (as :func:`load_reference_range` gives them).
    prefilter : {"length_bound", "none"}
        ``length_bound`` skips references that cannot reach the best score (exact, see the
        module docstring); ``none`` aligns every pair.
    order : ndarray of int, optional
        References by decreasing length (computed when omitted; pass it to reuse).

    Returns
    -------
    (float, int, int)
        The score, the index of the closest reference (the lowest among equal scores) and the
        number of TM-align runs made.
    """
    if not len(references):
        raise ValueError("novelty needs at least one reference structure")
    if prefilter not in PREFILTERS:
        raise ValueError(f"prefilter must be one of {PREFILTERS}, got {prefilter!r}")
    xyz = np.asarray(sample, dtype=np.float64)
    n_sample = len(ca_trace(xyz))
    if order is None:
        order = np.argsort([-len(r) for r in references], kind="stable")
    best, arg, runs = -1.0, -1, 0
    for k in order if prefilter == "length_bound" else range(len(references)):
        k = int(k)
        if prefilter == "length_bound" and (
            tm_upper_bound(n_sample, len(references[k])) + BOUND_MARGIN <= best
        ):
            break  # references come longest first: the bound only decreases from here
        s = tm_align(xyz, references[k]).tm_norm_a
        runs += 1
        if s > best or (s == best and k < arg):
            best, arg = s, k
    return best, arg, runs


def max_tm(sample: np.ndarray, references: Sequence[np.ndarray]) -> tuple[float, int]:
    """Highest TM-score of ``sample`` against ``references`` (normalised by the sample).

    Returns
    -------
    (float, int)
        The score and the index of the closest reference.

    Examples
    --------
    >>> t = np.linspace(0, 6 * np.pi, 60)
    >>> helix = np.stack([2.3 * np.cos(t), 2.3 * np.sin(t), 1.5 * t], axis=1)
    >>> coil = np.cumsum(np.random.default_rng(0).normal(size=(60, 3)), 0) * 2.2
    >>> tm, idx = max_tm(helix, [coil, helix + 5])
    >>> round(tm, 3), idx
    (1.0, 1)
    """
    best, arg, _ = best_match(sample, [ca_trace(r) for r in references])
    return best, arg


def ca_trace(x: np.ndarray) -> np.ndarray:
    """Finite CA coordinates of a ``[L, 4, 3]`` backbone or ``[L, 3]`` trace (float64, contiguous)
    - what TM-align aligns."""
    ca = backbone_points(np.asarray(x, dtype=np.float64), "ca")
    return np.ascontiguousarray(ca[np.isfinite(ca).all(-1)])


def _read_columns(path: str | os.PathLike, columns: list[str]):
    try:
        return pq.read_table(path, columns=columns)
    except Exception as exc:  # pyarrow raises several types for missing columns / corrupt files
        raise ValueError(f"{path}: cannot read columns {columns} of a chain shard ({exc})") from exc


def count_references(shards: Sequence[str | os.PathLike], split: str = "train") -> list[int]:
    """Number of ``split`` chains in each chain shard (reads the ``split`` column only)."""
    counts = []
    for path in shards:
        col = _read_columns(path, ["split"]).column("split")
        counts.append(int(pl.from_arrow(col).eq(split).sum()))
    return counts


def part_bounds(n_references: int, part: int, parts: int) -> tuple[int, int]:
    """Reference index range ``[start, stop)`` of novelty part ``part`` of ``parts``.

    >>> [part_bounds(10, k, 3) for k in range(3)]
    [(0, 3), (3, 7), (7, 10)]
    """
    if not 0 <= part < parts:
        raise ValueError(f"novelty part {part} out of range for {parts} parts")
    b = np.linspace(0, n_references, parts + 1).round().astype(int)
    return int(b[part]), int(b[part + 1])


def load_reference_range(shards: Sequence[str | os.PathLike], split: str, start: int, stop: int,
                         counts: Sequence[int] | None = None
                         ) -> tuple[list[str], list[int], list[np.ndarray]]:
    """Ids, reference indices and finite CA traces of references ``start``..``stop - 1``.

    Only the shards that hold the range are opened, and of them only the ``id``, ``split``,
    ``length`` and ``coords`` columns, one record batch at a time. Chains with fewer than 3
    residues with a CA keep their index but are left out (TM-align needs 3).
    """
    counts = count_references(shards, split) if counts is None else counts
    ids: list[str] = []
    index: list[int] = []
    cas: list[np.ndarray] = []
    first = 0
    for path, n in zip(shards, counts, strict=True):
        lo, hi = max(start, first), min(stop, first + n)
        if lo < hi:
            k = first
            try:
                batches = pq.ParquetFile(path).iter_batches(
                    batch_size=1024, columns=["id", "split", "length", "coords"])
                for batch in batches:
                    for row in batch.to_pylist():
                        if row["split"] != split:
                            continue
                        if lo <= k < hi:
                            xyz = np.asarray(row["coords"], dtype=np.float64)
                            xyz = ca_trace(xyz.reshape(int(row["length"]), 4, 3))
                            if len(xyz) >= 3:
                                ids.append(row["id"])
                                index.append(k)
                                cas.append(xyz)
                        k += 1
                        if k >= hi:
                            break
                    if k >= hi:
                        break
            except (OSError, KeyError, ValueError) as exc:
                raise ValueError(f"{path}: cannot read the chain shard's references ({exc})") from exc
        first += n
    return ids, index, cas


def load_references(
    shards: Sequence[str | os.PathLike], split: str = "train", limit: int | None = None
) -> tuple[list[str], list[np.ndarray]]:
    """CA traces of the chains of ``split`` in the process stage's chain shards.

    Residues without a CA are dropped (TM-align aligns what is there). ``limit`` keeps the first
    ``limit`` chains of the split in shard order (for quick looks; ``None`` = all).
    """
    counts = count_references(shards, split)
    n = sum(counts) if limit is None else min(limit, sum(counts))
    ids, _, cas = load_reference_range(shards, split, 0, n, counts)
    if not ids:
        raise ValueError(f"no {split!r} chains in {list(map(str, shards))}")
    return ids, cas


def _score_sample(shared: dict, i: int) -> tuple[int, float, int, int]:
    tm, k, runs = best_match(shared["samples"][i], shared["references"],
                             prefilter=shared["prefilter"], order=shared["order"])
    return i, tm, k, runs


def novelty_part(samples: pl.DataFrame, structures: Sequence[np.ndarray], ref_ids: Sequence[str],
                 ref_index: Sequence[int], references: Sequence[np.ndarray], *,
                 prefilter: str = "length_bound", threads: int = 1) -> pl.DataFrame:
    """One row per sample: the best reference of this part (:data:`PART_COLUMNS`).

    ``pdb_tm``, ``reference_index`` and ``nearest_id`` are null when the part holds no
    reference; ``n_aligned`` counts the TM-align runs made (the prefilter skips the rest).
    """
    n = samples.height
    if len(structures) != n:
        raise ValueError(f"{n} samples but {len(structures)} structures")
    rows = {i: (None, None, 0) for i in range(n)}
    if len(references):
        shared = {"samples": list(structures), "references": list(references),
                  "prefilter": prefilter,
                  "order": np.argsort([-len(r) for r in references], kind="stable")}
        todo = sorted(range(n), key=lambda i: -len(structures[i]))  # longest first
        for i, tm, k, runs in pool_map(_score_sample, todo, shared, threads=threads,
                                       desc=f"novelty vs {len(references)} references"):
            rows[i] = (tm, k, runs)
    return pl.DataFrame(
        {
            "sample_id": samples["sample_id"].to_list(),
            "pdb_tm": [rows[i][0] for i in range(n)],
            "reference_index": [None if rows[i][1] is None else int(ref_index[rows[i][1]])
                                for i in range(n)],
            "nearest_id": [None if rows[i][1] is None else ref_ids[rows[i][1]] for i in range(n)],
            "n_references": [len(references)] * n,
            "n_aligned": [rows[i][2] for i in range(n)],
        },
        schema_overrides={"pdb_tm": pl.Float64, "reference_index": pl.Int64,
                          "nearest_id": pl.String, "n_aligned": pl.Int64},
    )


def reference_part(shards: Sequence[str | os.PathLike], split: str, max_references: int | None,
                   part: int, parts: int
                   ) -> tuple[int, int, int, tuple[list[str], list[int], list[np.ndarray]]]:
    """References of novelty part ``part`` of ``parts``: ``(total, start, stop, (ids, indices, traces))``.

    ``total`` = the ``split`` chains of the shards, capped at ``max_references``; the part holds
    references ``start``..``stop - 1`` of them (:func:`part_bounds`).
    """
    counts = count_references(shards, split)
    total = sum(counts) if max_references is None else min(sum(counts), max_references)
    if total == 0:
        raise ValueError(f"no {split!r} chains in {[str(s) for s in shards]}")
    start, stop = part_bounds(total, part, parts)
    return total, start, stop, load_reference_range(shards, split, start, stop, counts)


def merge_part_files(samples: pl.DataFrame, paths: Sequence[str | os.PathLike],
                     samples_config: str | None) -> tuple[pl.DataFrame, list[dict]]:
    """Merge the part tables at ``paths`` (:func:`merge_parts`) after checking they are parts
    ``0..n-1`` of ``n`` once each and made from the samples whose config hash is ``samples_config``.

    Returns the novelty table and the parts' Parquet metadata.
    """
    from dplm2.io import read_parquet_checked, read_parquet_metadata

    metas = [read_parquet_metadata(p) for p in paths]
    seen = sorted(tuple(m.get("part", (-1, -1))) for m in metas)
    n = len(paths)
    if seen != [(k, n) for k in range(n)]:
        raise ValueError(f"novelty-merge needs parts 0..{n - 1} of {n} once each, got {seen}")
    for p, m in zip(paths, metas, strict=True):
        if m.get("samples_config") != samples_config:
            raise ValueError(f"{p}: made from other samples than the samples table (stale part?)")
    parts = [read_parquet_checked(p) for p in paths]
    return merge_parts(samples, parts, names=paths), metas


def merge_parts(samples: pl.DataFrame, parts: Sequence[pl.DataFrame], backend: str = "none",
                names: Sequence[str | Path] | None = None) -> pl.DataFrame:
    """The novelty table from the parts: one row per sample, ``pdb_tm``, ``nearest_id``.

    Per sample the highest ``pdb_tm`` over the parts, the lowest ``reference_index`` among
    equal scores; ``n_aligned`` sums the TM-align runs of all parts.
    """
    names = [str(p) for p in (names or range(len(parts)))]
    want = set(samples["sample_id"].to_list())
    for name, part in zip(names, parts, strict=True):
        missing = [c for c in PART_COLUMNS if c not in part.columns]
        if missing:
            raise ValueError(f"{name}: not a novelty part (missing {missing})")
        got = set(part["sample_id"].to_list())
        if got != want or part.height != len(want):
            raise ValueError(f"{name}: its samples differ from the samples table (stale part?)")
    stacked = pl.concat([p.select(PART_COLUMNS) for p in parts], how="vertical")
    best = (
        stacked.filter(pl.col("pdb_tm").is_not_null())
        .sort(["sample_id", "pdb_tm", "reference_index"], descending=[False, True, False])
        .group_by("sample_id", maintain_order=True).first()
        .select("sample_id", "pdb_tm", "nearest_id")
    )
    runs = stacked.group_by("sample_id").agg(pl.col("n_aligned").sum(),
                                             pl.col("n_references").sum())
    if best.height != len(want):
        raise ValueError("novelty: no reference structure in any part")
    table = (
        samples.select("sample_id", "task", pl.col("length").cast(pl.Int64))
        .join(best, on="sample_id", how="left")
        .join(runs, on="sample_id", how="left")
        .with_columns(pl.lit(backend).alias("folding_backend"))
    )
    return table.select("sample_id", "task", "length", "pdb_tm", "nearest_id", "folding_backend",
                        "n_references", "n_aligned")


def novelty_table(
    samples: pl.DataFrame,
    structures: Sequence[np.ndarray],
    ref_ids: Sequence[str],
    references: Sequence[np.ndarray],
    backend: str = "none",
    *,
    prefilter: str = "length_bound",
    threads: int = 1,
) -> pl.DataFrame:
    """One row per sample: ``pdb_tm`` and the closest training chain ``nearest_id`` (one job)."""
    refs = [ca_trace(r) for r in references]
    part = novelty_part(samples, structures, ref_ids, list(range(len(refs))), refs,
                        prefilter=prefilter, threads=threads)
    return merge_parts(samples, [part], backend)

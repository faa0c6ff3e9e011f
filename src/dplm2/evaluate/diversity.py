"""Diversity of generated structures: inner-TM per length and clusters of designable samples.

* **inner-TM** — mean pairwise TM-score among the samples of one length (lower = more diverse),
  the DPLM-2 paper's per-length diversity figure.
* **clusters** — the reference counts Foldseek clusters of the designable samples
  (``foldseek easy-cluster --alignment-type 1 --cov-mode 0 --min-seq-id 0
  --tmscore-threshold 0.5``). Foldseek cannot be installed everywhere, so the default backend
  clusters a TM-align score matrix (tmtools) at the same threshold:

  - ``greedy`` (default): greedy set cover, Foldseek/MMseqs2's default clustering mode 0 —
    repeatedly take the sample with the most unassigned neighbours as a representative and assign
    it and its neighbours to a new cluster;
  - ``complete``: complete-linkage agglomerative clustering cut at the threshold (every pair in
    a cluster has TM >= threshold), stricter and order-free.

  Two samples are neighbours when TM >= threshold under *both* normalisations (the smaller of
  the two scores), the analogue of Foldseek's ``--cov-mode 0`` (coverage of both chains).
* ``foldseek`` backend: runs the binary with exactly the reference's flags; a clear error names
  the missing binary.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from dplm2.evaluate.pool import pool_map
from dplm2.structure.compare import tm_align

FOLDSEEK_ARGS = ("--alignment-type", "1", "--cov-mode", "0", "--min-seq-id", "0")


def _align_pair(structures: Sequence[np.ndarray], pair: tuple[int, int]) -> tuple[float, float]:
    r = tm_align(structures[pair[0]], structures[pair[1]])
    return r.tm_norm_a, r.tm_norm_b


def pair_scores(structures: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]], *,
                threads: int = 1, desc: str | None = None) -> dict[tuple[int, int], tuple[float, float]]:
    """TM-align of each pair ``(i, j)``: ``{(i, j): (TM normalised by i, TM normalised by j)}``,
    on ``threads`` processes (largest pairs first, so the processes finish together)."""
    todo = sorted(set(pairs), key=lambda p: -len(structures[p[0]]) * len(structures[p[1]]))
    scores = pool_map(_align_pair, todo, list(structures), threads=threads, desc=desc,
                      chunksize=4)
    return dict(zip(todo, scores, strict=True))


def tm_matrix(structures: Sequence[np.ndarray], progress: bool = False, threads: int = 1) -> np.ndarray:
    """All-against-all TM-align scores.

    Parameters
    ----------
    structures : sequence of ndarray, each (L_i, 4, 3) or (L_i, 3)
    threads : int
        Processes running TM-align.

    Returns
    -------
    ndarray, shape (N, N)
        ``m[i, j]`` = TM-score of the alignment of ``i`` and ``j`` normalised by the length of
        ``i``; diagonal 1. One TM-align run per unordered pair gives both normalisations.
    """
    n = len(structures)
    m = np.eye(n)
    pairs = list(itertools.combinations(range(n), 2))
    scores = pair_scores(structures, pairs, threads=threads,
                         desc="TM-align pairs" if progress else None)
    for (i, j), (a, b) in scores.items():
        m[i, j], m[j, i] = a, b
    return m


def inner_tm(matrix: np.ndarray) -> float:
    """Mean off-diagonal entry of a TM matrix (NaN for fewer than two structures).

    Examples
    --------
    >>> inner_tm(np.array([[1.0, 0.4], [0.6, 1.0]]))
    0.5
    """
    n = len(matrix)
    if n < 2:
        return float("nan")
    off = ~np.eye(n, dtype=bool)
    return float(matrix[off].mean())


def _neighbours(matrix: np.ndarray, threshold: float) -> np.ndarray:
    sym = np.minimum(matrix, matrix.T)
    return sym >= threshold


def cluster_greedy(matrix: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Greedy set-cover clustering (Foldseek / MMseqs2 cluster mode 0) of a TM matrix.

    Returns
    -------
    ndarray of int, shape (N,)
        Cluster label per structure, 0..k-1 in order of creation. Ties (same number of
        unassigned neighbours) go to the lower index, so the result is deterministic.

    Examples
    --------
    >>> m = np.array([[1, .8, .1], [.8, 1, .1], [.1, .1, 1]])
    >>> cluster_greedy(m, 0.5).tolist()
    [0, 0, 1]
    """
    adj = _neighbours(np.asarray(matrix, dtype=float), threshold)
    n = len(adj)
    labels = np.full(n, -1, dtype=np.int64)
    k = 0
    while (labels < 0).any():
        free = labels < 0
        degree = (adj & free[None, :] & free[:, None]).sum(1)
        degree[~free] = -1
        rep = int(np.argmax(degree))
        members = free & adj[rep]
        members[rep] = True
        labels[members] = k
        k += 1
    return labels


def cluster_complete(matrix: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Complete-linkage clustering of a TM matrix, cut so every within-cluster pair has
    TM >= ``threshold`` (scipy's hierarchical clustering on distance ``1 - TM``).

    Examples
    --------
    >>> m = np.array([[1, .8, .6], [.8, 1, .2], [.6, .2, 1]])
    >>> cluster_complete(m, 0.5).tolist()   # 0-1 similar, 2 not similar to 1: apart
    [0, 0, 1]
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    sim = np.minimum(np.asarray(matrix, dtype=float), np.asarray(matrix, dtype=float).T)
    n = len(sim)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    dist = np.clip(1.0 - sim, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    z = linkage(squareform(dist, checks=False), method="complete")
    raw = fcluster(z, t=1.0 - threshold, criterion="distance")
    # renumber 0..k-1 in order of first appearance
    order = {c: i for i, c in enumerate(dict.fromkeys(raw.tolist()))}
    return np.array([order[c] for c in raw], dtype=np.int64)


def cluster(matrix: np.ndarray, threshold: float = 0.5, linkage: str = "greedy") -> np.ndarray:
    """Cluster labels by the named method (``greedy`` or ``complete``)."""
    if linkage == "greedy":
        return cluster_greedy(matrix, threshold)
    if linkage == "complete":
        return cluster_complete(matrix, threshold)
    raise ValueError(f"linkage must be greedy or complete, got {linkage!r}")


def foldseek_clusters(
    pdb_paths: Sequence[str | os.PathLike],
    threshold: float = 0.5,
    binary: str = "foldseek",
    threads: int = 1,
) -> dict[str, str]:
    """Cluster structure files with ``foldseek easy-cluster`` (the reference's flags).

    Returns
    -------
    dict
        File name (as given, resolved) -> representative's file name.

    Raises
    ------
    FileNotFoundError
        ``binary`` is not installed (the message says how to switch back to TM-align).
    """
    exe = shutil.which(binary)
    if exe is None:
        raise FileNotFoundError(
            f"foldseek binary {binary!r} not found on PATH; install Foldseek "
            "(https://github.com/steineggerlab/foldseek) or set evaluate.diversity.backend: tmalign"
        )
    with tempfile.TemporaryDirectory(prefix="dplm2-foldseek-") as tmp:
        tmp = Path(tmp)
        inputs = tmp / "in"
        inputs.mkdir()
        names = {}
        for i, p in enumerate(pdb_paths):
            p = Path(p).resolve()
            link = inputs / f"s{i:06d}{''.join(p.suffixes)}"
            os.symlink(p, link)
            names[f"s{i:06d}"] = str(p)
        cmd = [exe, "easy-cluster", str(inputs), str(tmp / "res"), str(tmp / "work"),
               *FOLDSEEK_ARGS, "--tmscore-threshold", str(threshold), "--threads", str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        out = {}
        for line in (tmp / "res_cluster.tsv").read_text().splitlines():
            rep, member = line.split("\t")[:2]
            out[names[_stem(member)]] = names[_stem(rep)]
    missing = set(map(lambda p: str(Path(p).resolve()), pdb_paths)) - set(out)
    if missing:
        raise RuntimeError(f"foldseek left {len(missing)} structure(s) unclustered: {sorted(missing)[:3]}")
    return out


def _stem(name: str) -> str:
    # foldseek names entries by file name (without extensions) or by chain: keep the sNNNNNN part
    return name.split(".")[0].split("_")[0]


def designable_samples(samples, self_consistency, designable_by: str, source: str = "self-consistency table"
                       ) -> tuple[list[bool], str]:
    """Per sample (in the samples' order): designable or not, and the folding backend(s) that said so.

    ``self_consistency`` is the self-consistency table of the same samples; a sample missing from it
    is an error naming ``source`` (a stale table).
    """
    import polars as pl

    need = ["sample_id", "designable_sctm", "designable_scrmsd", "folding_backend"]
    missing = [c for c in need if c not in self_consistency.columns]
    if missing:
        raise ValueError(f"{source}: not a self-consistency table (missing {missing})")
    joined = samples.select("sample_id").join(self_consistency.select(need), on="sample_id", how="left")
    if joined["designable_sctm"].null_count():
        raise ValueError(f"{source}: samples missing from it (stale?)")
    rules = {"sctm": pl.col("designable_sctm"), "scrmsd": pl.col("designable_scrmsd"),
             "both": pl.col("designable_sctm") & pl.col("designable_scrmsd"), "all": pl.lit(True)}
    if designable_by not in rules:
        raise ValueError(f"designable_by must be one of {sorted(rules)}, got {designable_by!r}")
    rule = rules[designable_by]
    designable = joined.with_columns(rule.alias("d"))["d"].to_list()
    return designable, ",".join(sorted(set(joined["folding_backend"].to_list())))


def diversity_table(
    samples,
    structures: Sequence[np.ndarray],
    designable: Sequence[bool],
    *,
    threshold: float = 0.5,
    linkage: str = "greedy",
    backend: str = "tmalign",
    pdb_paths: Sequence[str] | None = None,
    foldseek_binary: str = "foldseek",
    folding_backend: str = "none",
    threads: int = 1,
):
    """One row per sample: ``inner_tm`` (mean TM to the other samples of its length, normalised
    by this sample; null when it is alone at its length), ``designable`` and ``cluster`` (label
    among the designable samples, null for the others), ``cluster_backend`` and ``folding_backend``.

    The per-length inner-TM of the paper is the mean of ``inner_tm`` over a length group; the
    number of clusters is the number of distinct ``cluster`` labels (see ``summary``).
    Every TM-align pair needed (same-length pairs, and designable pairs for the tmalign
    clustering) runs once, on ``threads`` processes.
    """
    import polars as pl

    n = samples.height
    lengths = samples["length"].to_list()
    des = np.asarray(designable, dtype=bool)
    if len(structures) != n or len(des) != n:
        raise ValueError(f"{n} samples but {len(structures)} structures / {len(des)} flags")
    if backend not in ("tmalign", "foldseek"):
        raise ValueError(f"diversity backend must be tmalign or foldseek, got {backend!r}")
    inner = np.full(n, np.nan)
    groups: dict[int, list[int]] = {}
    for i, length in enumerate(lengths):
        groups.setdefault(int(length), []).append(i)
    idx = np.flatnonzero(des)
    pairs = [p for members in groups.values() for p in itertools.combinations(members, 2)]
    if backend == "tmalign":
        pairs += [(int(a), int(b)) for a, b in itertools.combinations(idx, 2)]
    cache = pair_scores(structures, pairs, threads=threads, desc="TM-align pairs")

    def score(i: int, j: int) -> float:
        s = cache[(min(i, j), max(i, j))]
        return s[0] if i < j else s[1]

    for members in groups.values():
        for i in members:
            others = [score(i, j) for j in members if j != i]
            if others:
                inner[i] = float(np.mean(others))

    labels = np.full(n, -1, dtype=np.int64)
    if len(idx):
        if backend == "foldseek":
            if pdb_paths is None:
                raise ValueError("foldseek clustering needs the samples' structure files")
            reps = foldseek_clusters([pdb_paths[i] for i in idx], threshold, foldseek_binary)
            order = {r: k for k, r in enumerate(dict.fromkeys(reps[str(Path(pdb_paths[i]).resolve())] for i in idx))}
            for i in idx:
                labels[i] = order[reps[str(Path(pdb_paths[i]).resolve())]]
        elif backend == "tmalign":
            m = np.eye(len(idx))
            for a, b in itertools.combinations(range(len(idx)), 2):
                m[a, b] = score(idx[a], idx[b])
                m[b, a] = score(idx[b], idx[a])
            labels[idx] = cluster(m, threshold, linkage)
        else:
            raise ValueError(f"diversity backend must be tmalign or foldseek, got {backend!r}")
    cluster_backend = (
        f"foldseek easy-cluster tm>={threshold}" if backend == "foldseek"
        else f"tmalign {linkage} tm>={threshold}"
    )
    return pl.DataFrame(
        {
            "sample_id": samples["sample_id"].to_list(),
            "task": samples["task"].to_list(),
            "length": [int(x) for x in lengths],
            # null (not NaN) when a sample is alone at its length: no pair, no inner-TM
            "inner_tm": [None if np.isnan(v) else float(v) for v in inner],
            "designable": des.tolist(),
            "cluster": [int(c) if c >= 0 else None for c in labels],
            "cluster_backend": [cluster_backend] * n,
            "folding_backend": [folding_backend] * n,
        },
        schema_overrides={"cluster": pl.Int64, "inner_tm": pl.Float64},
    )

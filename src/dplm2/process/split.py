"""Deduplicate identical sequences, then assign train/valid/test.

Dedup: among chains that pass every filter, identical sequences collapse to one
representative, chosen deterministically by (experimental before predicted, better
resolution, higher mean pLDDT, more complete backbone, id). The others get a failing ``dedup``
verdict naming it (``duplicate_of``). Splits therefore never share a sequence.

Split methods (``process.split.method``):

``date``      experimental chains (PDB, local sources without pLDDT) by initial release
              date: before ``valid_start`` -> train, before ``test_start`` -> valid, later ->
              test; predicted chains (AFDB, local with pLDDT) and chains without a date ->
              train (the paper's date split; AFDB only ever trains).
``identity``  built-in greedy clustering (:func:`~dplm2.process.cluster.identity_clusters`);
``mmseqs``    ``mmseqs easy-cluster``. For both, whole clusters go to test / valid / train
              with probabilities ``test_fraction`` / ``valid_fraction`` / rest, decided by a
              seeded hash of the representative's id (reproducible, stable when data is added).
"""

from __future__ import annotations

import math

from dplm2.process.cluster import identity_clusters, mmseqs_clusters, stable_unit
from dplm2.process.config import SplitConfig
from dplm2.process.filters import Verdict
from dplm2.process.records import ChainRecord


def representative_key(rec: ChainRecord) -> tuple:
    """Sort key: the smallest key among identical sequences is kept."""
    return (
        1 if rec.predicted else 0,
        rec.resolution if rec.resolution is not None else math.inf,
        -(rec.mean_plddt or 0.0),
        -(rec.backbone_fraction or 0.0),
        rec.id,
    )


def deduplicate(records: list[ChainRecord]) -> list[ChainRecord]:
    """Add a ``dedup`` verdict to every parsed chain that passes all other filters."""
    groups: dict[str, list[ChainRecord]] = {}
    for rec in records:
        if rec.kept:
            groups.setdefault(rec.sequence, []).append(rec)
    rep_of: dict[str, str] = {}
    for members in groups.values():
        rep = min(members, key=representative_key)
        for m in members:
            rep_of[m.id] = rep.id
    out = []
    for rec in records:
        if rec.id not in rep_of:
            out.append(rec)
        elif rep_of[rec.id] == rec.id:
            out.append(rec.with_verdict(Verdict("dedup", True)))
        else:
            rep = rep_of[rec.id]
            dup = rec.with_verdict(Verdict("dedup", False, f"identical sequence to {rep}"))
            out.append(ChainRecord(**{**{k: getattr(dup, k) for k in dup.__dataclass_fields__},
                                      "duplicate_of": rep}))
    return out


def assign_splits(records: list[ChainRecord], cfg: SplitConfig, threads: int = 1
                  ) -> dict[str, str]:
    """``{id: split}`` for the kept records."""
    kept = [r for r in records if r.kept]
    if cfg.method == "date":
        return {r.id: _date_split(r, cfg) for r in kept}
    sequences = {r.id: r.sequence for r in kept}
    if cfg.method == "mmseqs":
        rep = mmseqs_clusters(sequences, cfg.min_identity, cfg.coverage, threads=threads)
    else:
        rep = identity_clusters(sequences, cfg.min_identity, cfg.coverage)
    out = {}
    for r in kept:
        u = stable_unit(cfg.seed, rep[r.id])
        out[r.id] = ("test" if u < cfg.test_fraction
                     else "valid" if u < cfg.test_fraction + cfg.valid_fraction else "train")
    return out


def _date_split(rec: ChainRecord, cfg: SplitConfig) -> str:
    if rec.predicted or rec.release_date is None:
        return "train"
    if rec.release_date < cfg.valid_date:
        return "train"
    return "valid" if rec.release_date < cfg.test_date else "test"

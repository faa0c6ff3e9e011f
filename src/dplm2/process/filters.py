"""Chain filters: each a small class with one ``verdict`` method returning a :class:`Verdict`.

A verdict is ``passed=True/False`` with a reason, or ``passed=None`` when the filter does not
apply (e.g. pLDDT for an experimental chain, resolution for a predicted one). Filters read a
:class:`~dplm2.process.records.ChainRecord`; the pLDDT filter also decides how an AFDB chain is
trimmed (:func:`plddt_trim_bounds`), and the radius-of-gyration filter needs a dataset-level
fit (:class:`RgThreshold`), made in the gather step over the chains that pass every other
filter.

>>> plddt_trim_bounds(np.array([50, 80, 90, 70, 95, 60.0]), 70.0)
(1, 5)
>>> plddt_trim_bounds(np.array([10, 20.0]), 70.0)
(0, 0)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from dplm2.process.config import FilterConfig

FLORY_EXPONENT = 0.38  # Rg ~ L^0.38 for folded proteins (Skolnick et al. 1997)
#: Rg = 2.2 L^0.38 Å: the compactness law of globular proteins (CA radius of gyration against
#: chain length; Skolnick, Kolinski & Ortiz, J. Mol. Biol. 265, 217 (1997); the same law in
#: Lobanov, Bogatyreva & Galzitskaya, Mol. Biol. 42, 623 (2008))
COMPACT_RG_PREFACTOR = 2.2
PARSE_FILTERS = ("plddt", "length", "backbone", "unknown", "d_amino", "resolution", "oligomer",
                 "loop")
ALL_FILTERS = PARSE_FILTERS + ("rg", "dedup")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One filter's decision on one chain."""

    name: str
    passed: bool | None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.name not in ALL_FILTERS:
            raise ValueError(f"unknown filter {self.name!r}")
        if self.passed is False and not self.reason:
            raise ValueError(f"filter {self.name}: a failing verdict needs a reason")


def plddt_trim_bounds(plddt: np.ndarray, threshold: float) -> tuple[int, int]:
    """``(start, stop)`` keeping the residues between the first and last with pLDDT > threshold
    (the low-confidence ends are trimmed from both termini; inner residues are kept)."""
    good = np.nonzero(np.asarray(plddt) > threshold)[0]
    if len(good) == 0:
        return 0, 0
    return int(good[0]), int(good[-1]) + 1


class PlddtFilter:
    """AFDB confidence: mean pLDDT > ``min_mean_plddt`` and SD < ``max_plddt_sd``.

    ``plddt_order="trim_then_test"`` (the spec, as the reference's dataset code does) tests the
    chain after trimming its low-confidence ends; ``"test_then_trim"`` tests the whole model.
    Kept chains are stored trimmed either way. Records carry both sets of statistics
    (``untrimmed_*`` and the stored chain's).
    """

    name = "plddt"

    def __init__(self, cfg: FilterConfig):
        self.cfg = cfg

    def verdict(self, rec) -> Verdict:
        if not rec.predicted:
            return Verdict(self.name, None)
        if rec.length == 0:
            return Verdict(self.name, False, f"no residue with pLDDT > {self.cfg.plddt_trim_threshold:g}")
        if self.cfg.plddt_order == "trim_then_test":
            mean, sd, what = rec.mean_plddt, rec.plddt_sd, "trimmed"
        else:
            mean, sd, what = rec.untrimmed_mean_plddt, rec.untrimmed_plddt_sd, "untrimmed"
        ok = mean > self.cfg.min_mean_plddt and sd < self.cfg.max_plddt_sd
        reason = None if ok else (
            f"pLDDT ({what}) mean {mean:.1f} (need > {self.cfg.min_mean_plddt:g}), "
            f"SD {sd:.1f} (need < {self.cfg.max_plddt_sd:g})"
        )
        return Verdict(self.name, ok, reason)


class LengthFilter:
    """``min_length <= length <= max_length`` (length of the stored, trimmed chain)."""

    name = "length"

    def __init__(self, cfg: FilterConfig):
        self.lo, self.hi = cfg.min_length, cfg.max_length

    def verdict(self, rec) -> Verdict:
        ok = self.lo <= rec.length <= self.hi
        return Verdict(self.name, ok, None if ok else f"length {rec.length} outside [{self.lo}, {self.hi}]")


class BackboneFilter:
    """At least ``min_backbone_fraction`` of residues have N, CA and C."""

    name = "backbone"

    def __init__(self, cfg: FilterConfig):
        self.min = cfg.min_backbone_fraction

    def verdict(self, rec) -> Verdict:
        ok = rec.backbone_fraction >= self.min
        return Verdict(self.name, ok, None if ok else
                       f"complete backbone in {rec.backbone_fraction:.0%} of residues (need >= {self.min:.0%})")


class UnknownFilter:
    """Fraction of residues without a standard parent amino acid (``X``: UNK, D-amino acids,
    unmapped modified residues) <= ``max_unknown_fraction`` (null disables)."""

    name = "unknown"

    def __init__(self, cfg: FilterConfig):
        self.max = cfg.max_unknown_fraction

    def verdict(self, rec) -> Verdict:
        if self.max is None or rec.unknown_fraction is None:
            return Verdict(self.name, None)
        ok = rec.unknown_fraction <= self.max
        return Verdict(self.name, ok, None if ok else
                       f"{rec.unknown_fraction:.0%} of residues unknown (X) (allowed <= {self.max:.0%})")


class DAminoFilter:
    """Fraction of D-amino-acid residues (CCD ``D-PEPTIDE LINKING``) <= ``max_d_amino_fraction``
    (null disables): a mirror-image protein is not a protein the model should learn from."""

    name = "d_amino"

    def __init__(self, cfg: FilterConfig):
        self.max = cfg.max_d_amino_fraction

    def verdict(self, rec) -> Verdict:
        if self.max is None or rec.d_amino_fraction is None:
            return Verdict(self.name, None)
        ok = rec.d_amino_fraction <= self.max
        return Verdict(self.name, ok, None if ok else
                       f"{rec.d_amino_fraction:.0%} of residues are D-amino acids "
                       f"(allowed <= {self.max:.0%})")


class ResolutionFilter:
    """Experimental chains (no pLDDT): resolution <= ``max_resolution`` (null disables); entries
    without a resolution (NMR, designs) pass when ``keep_missing_resolution``."""

    name = "resolution"

    def __init__(self, cfg: FilterConfig):
        self.max, self.keep_missing = cfg.max_resolution, cfg.keep_missing_resolution

    def verdict(self, rec) -> Verdict:
        if rec.predicted or self.max is None:
            return Verdict(self.name, None)
        if rec.resolution is None:
            return Verdict(self.name, self.keep_missing,
                           None if self.keep_missing else f"no resolution given ({rec.method})")
        ok = rec.resolution <= self.max
        return Verdict(self.name, ok, None if ok else f"resolution {rec.resolution:g} Å > {self.max:g} Å")


class OligomerFilter:
    """``monomers_only``: keep chains whose entry has one protein chain (assembly 1, else the
    asymmetric unit; see ``oligomeric_source``)."""

    name = "oligomer"

    def __init__(self, cfg: FilterConfig):
        self.enabled = cfg.monomers_only

    def verdict(self, rec) -> Verdict:
        if not self.enabled:
            return Verdict(self.name, None)
        ok = rec.oligomeric_count == 1
        return Verdict(self.name, ok, None if ok else
                       f"{rec.oligomeric_count} protein chains in the {rec.oligomeric_source.replace('_', ' ')}")


class LoopFilter:
    """Loop fraction (neither helix nor strand by DSSP, :mod:`dplm2.process.metrics`)
    <= ``max_loop_fraction``, as the reference's data code (MultiFlow ``coil_percent``)."""

    name = "loop"

    def __init__(self, cfg: FilterConfig):
        self.max = cfg.max_loop_fraction

    def verdict(self, rec) -> Verdict:
        ok = rec.loop_fraction <= self.max
        return Verdict(self.name, ok, None if ok else f"loop fraction {rec.loop_fraction:.2f} > {self.max:g}")


def parse_filters(cfg: FilterConfig) -> list:
    """The per-chain filters applied at parse time, in :data:`PARSE_FILTERS` order."""
    return [PlddtFilter(cfg), LengthFilter(cfg), BackboneFilter(cfg), UnknownFilter(cfg),
            DAminoFilter(cfg), ResolutionFilter(cfg), OligomerFilter(cfg), LoopFilter(cfg)]


@dataclasses.dataclass(frozen=True)
class RgThreshold:
    """Length-dependent upper bound on the radius of gyration.

    ``kind="poly"``: the spec's rule - a polynomial (degree ``rg_poly_degree``) fitted to the
    ``rg_quantile`` quantile of Rg in equal-count length bins. With fewer than
    ``rg_min_chains`` chains a degree-4 fit is noise, and any bound fitted on the user's own
    handful cuts good chains by their neighbours, so ``rg_fallback`` decides:
    ``kind="law"`` (default): a fixed bound from the compactness law of globular proteins,
    ``rg_law_factor * 2.2 * L**0.38`` Å (:data:`COMPACT_RG_PREFACTOR`);
    ``kind="scaled"``: the ``rg_quantile`` quantile of ``Rg / L**0.38`` times ``L**0.38``;
    ``kind="none"``: no bound.
    """

    kind: str
    coefficients: tuple[float, ...] = ()
    n_chains: int = 0
    quantile: float | None = None

    def limit(self, length: int) -> float:
        if self.kind == "poly":
            return float(np.polyval(self.coefficients, length))
        if self.kind in ("scaled", "law"):
            return self.coefficients[0] * length**FLORY_EXPONENT
        return math.inf

    def describe(self) -> str:
        if self.kind == "none":
            return f"no Rg filter ({self.n_chains} chains)"
        if self.kind == "law":
            c = self.coefficients[0]
            return (f"fixed bound Rg <= {c / COMPACT_RG_PREFACTOR:g} x {COMPACT_RG_PREFACTOR:g} "
                    f"L^{FLORY_EXPONENT} Å = {c:.4g} L^{FLORY_EXPONENT} Å (compactness law of "
                    f"globular proteins, Skolnick et al. 1997; used because only "
                    f"{self.n_chains} chains passed the other filters)")
        coeffs = ", ".join(f"{c:.4g}" for c in self.coefficients)
        what = "polynomial in L" if self.kind == "poly" else f"c * L^{FLORY_EXPONENT}, c ="
        return f"Rg <= {what} [{coeffs}] ({self.quantile:g} quantile over {self.n_chains} chains)"

    @classmethod
    def fit(cls, lengths: np.ndarray, rgs: np.ndarray, cfg: FilterConfig) -> RgThreshold:
        lengths = np.asarray(lengths, dtype=np.float64)
        rgs = np.asarray(rgs, dtype=np.float64)
        ok = np.isfinite(rgs) & (lengths > 0)
        lengths, rgs = lengths[ok], rgs[ok]
        n = len(lengths)
        q = cfg.rg_quantile
        if q is None:
            return cls("none", n_chains=n)
        if n == 0 and cfg.rg_fallback != "law":
            return cls("none", n_chains=n)
        if n >= cfg.rg_min_chains:
            deg = cfg.rg_poly_degree
            n_bins = max(deg + 1, min(50, n // 20))
            order = np.argsort(lengths, kind="stable")
            bins = [b for b in np.array_split(order, n_bins) if len(b)]
            x = np.array([lengths[b].mean() for b in bins])
            y = np.array([np.quantile(rgs[b], q) for b in bins])
            coeffs = np.polyfit(x, y, deg)
            return cls("poly", tuple(float(c) for c in coeffs), n, q)
        if cfg.rg_fallback == "none":
            return cls("none", n_chains=n)
        if cfg.rg_fallback == "law":
            return cls("law", (cfg.rg_law_factor * COMPACT_RG_PREFACTOR,), n, None)
        scale = float(np.quantile(rgs / lengths**FLORY_EXPONENT, q))
        return cls("scaled", (scale,), n, q)


class RgFilter:
    """Radius of gyration <= the fitted length-dependent bound."""

    name = "rg"

    def __init__(self, threshold: RgThreshold):
        self.threshold = threshold

    def verdict(self, rec) -> Verdict:
        if self.threshold.kind == "none":
            return Verdict(self.name, None)
        limit = self.threshold.limit(rec.length)
        ok = rec.radius_of_gyration <= limit
        return Verdict(self.name, ok, None if ok else
                       f"Rg {rec.radius_of_gyration:.1f} Å > {limit:.1f} Å for length {rec.length}")

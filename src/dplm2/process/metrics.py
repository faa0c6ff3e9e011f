"""Per-chain metrics: pLDDT statistics, secondary structure (P-SEA), radius of gyration.

Secondary structure uses biotite's P-SEA (``annotate_sse``, CA-only, Labesse et al. 1997) on
the chain's CA trace; residues without CA count as loop. ``loop_fraction`` is the fraction of
residues that are neither helix (``a``) nor strand (``b``) - MultiFlow/FrameDiff's
``coil_percent`` filter uses the same quantity. The radius of gyration is over CA atoms
(biotite's ``gyration_radius`` on the CA array, unweighted).

>>> import numpy as np
>>> plddt_stats(np.array([90.0, 80.0, 70.0]))
(80.0, 8.164966)
>>> plddt_stats(None)
(None, None)
"""

from __future__ import annotations

import dataclasses

import biotite.structure as struc
import numpy as np

from dplm2.structure import Chain


@dataclasses.dataclass(frozen=True)
class ChainMetrics:
    """Metrics of one (possibly trimmed) chain."""

    length: int
    mean_plddt: float | None
    plddt_sd: float | None
    helix_fraction: float
    strand_fraction: float
    loop_fraction: float
    radius_of_gyration: float
    backbone_fraction: float

    def __post_init__(self) -> None:
        for name in ("helix_fraction", "strand_fraction", "loop_fraction", "backbone_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} = {value} outside [0, 1]")
        total = self.helix_fraction + self.strand_fraction + self.loop_fraction
        if self.length and abs(total - 1.0) > 1e-6:
            raise ValueError(f"secondary-structure fractions sum to {total}, not 1")


def plddt_stats(plddt: np.ndarray | None) -> tuple[float | None, float | None]:
    """Mean and population standard deviation (numpy's default, ddof=0) of pLDDT."""
    if plddt is None or len(plddt) == 0:
        return None, None
    values = np.asarray(plddt, dtype=np.float64)
    return round(float(values.mean()), 6), round(float(values.std()), 6)


def ca_atoms(chain: Chain) -> struc.AtomArray:
    """CA-only AtomArray of the residues that have a CA (for P-SEA and Rg)."""
    has_ca = chain.atom_mask[:, 1]
    n = int(has_ca.sum())
    atoms = struc.AtomArray(n)
    atoms.coord = chain.coords[has_ca, 1]
    atoms.atom_name[:] = "CA"
    atoms.element[:] = "C"
    atoms.chain_id[:] = chain.chain_id
    atoms.res_id = chain.res_ids[has_ca]
    atoms.ins_code = np.array(chain.ins_codes, dtype="U1")[has_ca] if n else atoms.ins_code
    # P-SEA only needs amino-acid residue names; ALA stands in for every residue type.
    atoms.res_name[:] = "ALA"
    return atoms


def sse_fractions(chain: Chain) -> tuple[float, float, float]:
    """``(helix, strand, loop)`` fractions over all residues of the chain."""
    n = len(chain)
    if n == 0:
        return 0.0, 0.0, 0.0
    atoms = ca_atoms(chain)
    if atoms.array_length() == 0:
        return 0.0, 0.0, 1.0
    sse = struc.annotate_sse(atoms)
    helix = float(np.count_nonzero(sse == "a")) / n
    strand = float(np.count_nonzero(sse == "b")) / n
    return helix, strand, 1.0 - helix - strand


def radius_of_gyration(chain: Chain) -> float:
    """Radius of gyration of the CA atoms in Å (NaN when no CA)."""
    atoms = ca_atoms(chain)
    if atoms.array_length() == 0:
        return float("nan")
    # unit masses: every atom is a CA anyway, and biotite's default mass lookup re-reads its
    # JSON table per atom (about 40 us each)
    return float(struc.gyration_radius(atoms, masses=np.ones(atoms.array_length())))


def chain_metrics(chain: Chain) -> ChainMetrics:
    """All metrics of ``chain``."""
    mean, sd = plddt_stats(chain.plddt)
    helix, strand, loop = sse_fractions(chain)
    n = len(chain)
    return ChainMetrics(
        length=n,
        mean_plddt=mean,
        plddt_sd=sd,
        helix_fraction=helix,
        strand_fraction=strand,
        loop_fraction=max(0.0, loop),
        radius_of_gyration=radius_of_gyration(chain),
        backbone_fraction=float(chain.complete_backbone().mean()) if n else 0.0,
    )

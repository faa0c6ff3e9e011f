"""Per-chain metrics: pLDDT statistics, secondary structure (DSSP), radius of gyration, chain
breaks and the fraction of unknown residues.

Secondary structure is DSSP (Kabsch & Sander 1983) as MDTraj implements it
(``mdtraj.compute_dssp(simplified=True)``: H = helix (H, G, I), E = strand (E, B), C = the
rest), the same call as the reference's data code (MultiFlow/FrameDiff ``coil_percent``, the
fraction of ``C``). It runs on the chain's N, CA, C, O atoms; residues missing one of them get
no DSSP state and count as loop. P-SEA (biotite's ``annotate_sse``, CA-only), used before,
calls far more loop than DSSP on ordinary crystal structures (1gbt A: 0.73 vs 0.53; 1aki A:
0.67 vs 0.47; see ``docs/results.md``), so it dropped ordinary monomers at the 0.5 cut. The
radius of gyration is over CA atoms (biotite's ``gyration_radius`` on the CA array,
unweighted).

A chain break is a place where two consecutive residues of the stored chain are not
peptide-bonded: C(i)-N(i+1) longer than 2.0 Å, or - where C or N is missing - CA(i)-CA(i+1)
longer than 4.2 Å (a trans peptide spans 3.8 Å). Missing residues (unmodelled loops) and
residues removed while reading (a fused chromophore) both leave one. Written as a plain NumPy
distance check: biotite's ``check_backbone_continuity`` also flags distorted bonds inside a
residue, which are not breaks.

>>> import numpy as np
>>> plddt_stats(np.array([90.0, 80.0, 70.0]))
(80.0, 8.164966)
>>> plddt_stats(None)
(None, None)
>>> unknown_fraction("MKXXA")
0.4
"""

from __future__ import annotations

import dataclasses

import biotite.structure as struc
import numpy as np

from dplm2.structure import Chain
from dplm2.structure.residues import UNKNOWN

PEPTIDE_C_N_MAX = 2.0  # Å; a peptide bond is 1.33 Å
CA_CA_MAX = 4.2  # Å; consecutive CAs are 3.8 Å apart (trans) or 2.9 Å (cis)


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
    chain_breaks: int = 0
    unknown_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in ("helix_fraction", "strand_fraction", "loop_fraction", "backbone_fraction",
                     "unknown_fraction"):
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
    """CA-only AtomArray of the residues that have a CA (for Rg)."""
    has_ca = chain.atom_mask[:, 1]
    n = int(has_ca.sum())
    atoms = struc.AtomArray(n)
    atoms.coord = chain.coords[has_ca, 1]
    atoms.atom_name[:] = "CA"
    atoms.element[:] = "C"
    atoms.chain_id[:] = chain.chain_id
    atoms.res_id = chain.res_ids[has_ca]
    atoms.ins_code = np.array(chain.ins_codes, dtype="U1")[has_ca] if n else atoms.ins_code
    atoms.res_name[:] = "ALA"
    return atoms


def dssp(chain: Chain) -> np.ndarray:
    """DSSP's three-state string per residue (``H``, ``E``, ``C``; ``-`` where the residue lacks
    N, CA, C or O), from MDTraj's implementation (see module docstring)."""
    import mdtraj

    full = chain.atom_mask.all(axis=1)
    out = np.full(len(chain), "-", dtype="<U1")
    if full.sum() < 2:
        return out
    top = mdtraj.Topology()
    mchain = top.add_chain()
    elements = [mdtraj.element.get_by_symbol(e) for e in ("N", "C", "C", "O")]
    for i in np.nonzero(full)[0]:
        # ALA stands in for every residue type: DSSP reads only N, CA, C, O (its H is placed
        # from them); real names would make MDTraj look for side-chain atoms it does not need
        res = top.add_residue("ALA", mchain, resSeq=int(chain.res_ids[i]))
        for name, element in zip(("N", "CA", "C", "O"), elements):
            top.add_atom(name, element, res)
    xyz = chain.coords[full].reshape(1, -1, 3) / 10.0  # MDTraj works in nm
    out[full] = mdtraj.compute_dssp(mdtraj.Trajectory(xyz, top), simplified=True)[0]
    return out


def sse_fractions(chain: Chain) -> tuple[float, float, float]:
    """``(helix, strand, loop)`` fractions over all residues of the chain (DSSP)."""
    n = len(chain)
    if n == 0:
        return 0.0, 0.0, 0.0
    states = dssp(chain)
    helix = float(np.count_nonzero(states == "H")) / n
    strand = float(np.count_nonzero(states == "E")) / n
    return helix, strand, 1.0 - helix - strand


def chain_breaks(chain: Chain) -> int:
    """Number of places where consecutive residues are not peptide-bonded (module docstring)."""
    if len(chain) < 2:
        return 0
    xyz = chain.coords.astype(np.float64)
    with np.errstate(invalid="ignore"):
        c_n = np.linalg.norm(xyz[1:, 0] - xyz[:-1, 2], axis=-1)
        ca_ca = np.linalg.norm(xyz[1:, 1] - xyz[:-1, 1], axis=-1)
    broken = np.where(np.isfinite(c_n), c_n > PEPTIDE_C_N_MAX,
                      ~np.isfinite(ca_ca) | (ca_ca > CA_CA_MAX))
    return int(broken.sum())


def unknown_fraction(sequence: str) -> float:
    """Fraction of residues without a standard parent amino acid (``X``: UNK, D-amino acids,
    unmapped modified residues)."""
    return sequence.count(UNKNOWN) / len(sequence) if sequence else 0.0


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
        chain_breaks=chain_breaks(chain),
        unknown_fraction=unknown_fraction(chain.sequence),
    )

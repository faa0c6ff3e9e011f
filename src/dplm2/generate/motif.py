"""Resolve a contig's motif segments in a structure file: residues, sequence, backbone.

The user's own PDB / mmCIF file (``.gz`` too) is read with :func:`dplm2.structure.read_chains`
(first model, protein residues, modified residues mapped to their parents). Each motif
segment ``<chain><start>-<end>`` selects, in file order, the residues of that chain from the
one numbered ``start`` (author number + insertion code) to the one numbered ``end``.

Checks, each raising :class:`MotifError` with the file, the segment and the reason:
the chain exists; both end residues exist; no residue numbers are missing in between
(a numbering gap means unresolved residues: the motif would not be contiguous); every motif
residue has N, CA and C.

>>> from pathlib import Path
>>> import dplm2
>>> from dplm2.generate.contig import ContigSpec
>>> pdb_file = Path(dplm2.__file__).parents[2] / "resources/scaffolding/1ycr.pdb.gz"
>>> m = resolve_motif(pdb_file, ContigSpec.parse("10-40,B19-27,10-40", "40-100"))
>>> m.sequence, m.labels[0], m.coords.shape
('FSDLWKLLP', 'B19', (9, 4, 3))
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from dplm2.generate.contig import ContigSpec, MotifSegment, ResidueId
from dplm2.structure import Chain, StructureError, read_chains


class MotifError(ValueError):
    """A motif that cannot be taken from its structure file (message: file, segment, reason)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Motif:
    """The motif residues of a contig, in contig (design) order.

    Attributes
    ----------
    path : Path
        The structure file the motif was read from.
    spec : ContigSpec
        The contig it was resolved for.
    chains : dict of str -> Chain
        The full chains the motif comes from (by author chain id); kept so the motif can be
        tokenized in its native context.
    positions : tuple of (str, ndarray)
        Per motif segment: chain id and the 0-based residue indices in that chain.
    sequence : str
        Motif amino acids (length M).
    coords : ndarray, float32, shape (M, 4, 3)
        Motif backbone N, CA, C, O (NaN where O is missing).
    labels : tuple of str
        ``<chain><number><ins>`` of every motif residue (e.g. ``B19``).
    """

    path: Path
    spec: ContigSpec
    chains: dict[str, Chain]
    positions: tuple[tuple[str, np.ndarray], ...]
    sequence: str
    coords: np.ndarray
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.sequence)

    @property
    def segment_lengths(self) -> tuple[int, ...]:
        """Residue count of every motif segment (what :meth:`ContigSpec.sample` needs)."""
        return tuple(len(idx) for _, idx in self.positions)

    @property
    def atom_mask(self) -> np.ndarray:
        return np.isfinite(self.coords).all(axis=-1)


def resolve_motif(path: str | os.PathLike, spec: ContigSpec) -> Motif:
    """Find the motif residues of ``spec`` in the structure file ``path``.

    Parameters
    ----------
    path : path-like
        PDB / mmCIF / BinaryCIF file, optionally gzipped.
    spec : ContigSpec
        Parsed contig; its motif segments name chains and author residue numbers.

    Raises
    ------
    MotifError
        A chain or residue is missing, the numbering has a gap inside a segment, or a motif
        residue lacks backbone atoms.
    """
    path = Path(path)
    if not path.is_file():
        raise MotifError(f"{path}: motif structure file not found (contig {spec.text!r})")
    try:
        chains = read_chains(path, source="pdb")
    except StructureError as exc:
        raise MotifError(f"{path}: cannot read the motif structure ({exc})") from exc
    by_id: dict[str, Chain] = {}
    for chain in chains:
        by_id.setdefault(chain.chain_id, chain)
    used: dict[str, Chain] = {}
    positions: list[tuple[str, np.ndarray]] = []
    for seg in spec.motif_segments:
        chain = by_id.get(seg.chain)
        if chain is None:
            raise MotifError(
                f"{path}: contig {spec.text!r}: segment {seg}: no protein chain {seg.chain!r} "
                f"(file has {sorted(by_id)})"
            )
        idx = _segment_indices(path, spec, seg, chain)
        used[seg.chain] = chain
        positions.append((seg.chain, idx))
    seq = "".join("".join(used[c].sequence[i] for i in idx) for c, idx in positions)
    coords = np.concatenate([used[c].coords[idx] for c, idx in positions]).astype(np.float32)
    labels = tuple(
        f"{c}{used[c].res_ids[i]}{used[c].ins_codes[i]}" for c, idx in positions for i in idx
    )
    return Motif(
        path=path,
        spec=spec,
        chains=used,
        positions=tuple(positions),
        sequence=seq,
        coords=coords,
        labels=labels,
    )


def _find(chain: Chain, rid: ResidueId) -> int | None:
    hits = np.nonzero(chain.res_ids == rid.number)[0]
    for i in hits:
        if chain.ins_codes[i] == rid.ins_code:
            return int(i)
    return None


def _segment_indices(path: Path, spec: ContigSpec, seg: MotifSegment, chain: Chain) -> np.ndarray:
    where = f"{path}: contig {spec.text!r}: segment {seg}"
    ends = []
    for rid in (seg.start, seg.end):
        i = _find(chain, rid)
        if i is None:
            numbers = chain.res_ids
            raise MotifError(
                f"{where}: chain {seg.chain} has no residue {rid} "
                f"(its residues run {numbers.min()}-{numbers.max()})"
            )
        ends.append(i)
    first, last = ends
    if last < first:
        raise MotifError(f"{where}: residue {seg.end} comes before {seg.start} in the file")
    idx = np.arange(first, last + 1)
    numbers = chain.res_ids[idx]
    jumps = np.nonzero(np.diff(numbers) > 1)[0]
    if len(jumps):
        j = int(jumps[0])
        raise MotifError(
            f"{where}: residues {numbers[j] + 1}-{numbers[j + 1] - 1} are missing from chain "
            f"{seg.chain} (the motif would not be contiguous)"
        )
    complete = chain.atom_mask[idx, :3].all(axis=1)
    if not complete.all():
        bad = [f"{chain.res_ids[i]}{chain.ins_codes[i]}" for i in idx[~complete]]
        raise MotifError(f"{where}: residue(s) {bad} lack N, CA or C coordinates")
    return idx

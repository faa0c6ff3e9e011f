"""Compare protein backbones: optimal superposition, RMSD and TM-score.

Every function here is pure: it takes coordinate arrays and returns numbers (or arrays), never
reads files. Backbone arrays follow the project's chain layout, ``[L, 4, 3]`` float with atoms in
the order N, CA, C, O (see ``docs/architecture.md``); CA-only arrays are ``[L, 3]``.

* Superposition and RMSD use biotite's Kabsch implementation
  (:func:`biotite.structure.superimpose`); biotite fits in float32, so an identical pair gives
  an RMSD of ~1e-6 Å rather than exactly 0.
* TM-score uses TM-align (Zhang & Skolnick 2005) through the ``tmtools`` bindings, on CA
  coordinates, as the DPLM-2 reference evaluation does. TM-align's structural alignment does not
  depend on the residue types, so the reference passes poly-alanine sequences; we do the same by
  default (``seq_a=None``) and accept the real sequences when a caller wants TM-align's
  sequence-identity output.

Conventions: ``a`` is the *first* structure (for evaluation, the generated / designed chain) and
``b`` the *second* (the refolded prediction, or the reference); ``tm_norm_a`` is the TM-score
normalised by the length of ``a``.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Atom order of a backbone array's second axis.
BACKBONE_ATOMS = ("N", "CA", "C", "O")
CA = 1
#: Atoms used for "backbone RMSD": N, CA, C (O is placed by the others and the spec excludes it).
NCAC = (0, 1, 2)

AtomSet = Literal["backbone", "ca"]
Normalisation = Literal["a", "b", "min", "max", "mean"]


class TMAlignResult(NamedTuple):
    """What TM-align reports for one pair of chains ``a`` and ``b``.

    Attributes
    ----------
    tm_norm_a, tm_norm_b : float
        TM-score normalised by the length of ``a`` / ``b``.
    rmsd : float
        CA RMSD over the aligned residue pairs (TM-align's own figure).
    n_aligned : int
        TM-align's "Aligned length": residue pairs of its final alignment (every column without
        a gap; equal to the binary's figure, tested).
    seq_identity : float
        Identical aligned residues over aligned pairs, TM-align's ``Seq_ID`` (meaningless with
        poly-Ala sequences).
    rotation : ndarray, shape (3, 3)
        Rotation that superimposes ``a`` onto ``b``: ``a @ rotation.T + translation``.
    translation : ndarray, shape (3,)
    n_close : int
        Aligned pairs closer than 5 Å after superposition (the ``:`` marks of TM-align's
        alignment line).
    """

    tm_norm_a: float
    tm_norm_b: float
    rmsd: float
    n_aligned: int
    seq_identity: float
    rotation: NDArray[np.float64]
    translation: NDArray[np.float64]
    n_close: int = 0


def backbone_points(coords: ArrayLike, atoms: AtomSet = "backbone") -> NDArray[np.float64]:
    """Flatten a ``[L, 4, 3]`` backbone to the points used for RMSD.

    Parameters
    ----------
    coords : array_like, shape (L, 4, 3) or (L, 3)
        Backbone (N, CA, C, O) or CA-only coordinates.
    atoms : {"backbone", "ca"}
        ``"backbone"`` keeps N, CA, C (``3 L`` points); ``"ca"`` keeps CA (``L`` points).

    Returns
    -------
    ndarray, shape (n, 3)

    Examples
    --------
    >>> x = np.zeros((5, 4, 3))
    >>> backbone_points(x).shape, backbone_points(x, "ca").shape
    ((15, 3), (5, 3))
    """
    x = np.asarray(coords, dtype=np.float64)
    if x.ndim == 2 and x.shape[-1] == 3:
        if atoms != "ca":
            raise ValueError(f"CA-only coordinates {x.shape} cannot give atoms={atoms!r}")
        return x
    if x.ndim != 3 or x.shape[1:] != (4, 3):
        raise ValueError(f"expected backbone coordinates of shape [L, 4, 3], got {x.shape}")
    if atoms == "ca":
        return x[:, CA]
    if atoms == "backbone":
        return x[:, NCAC].reshape(-1, 3)
    raise ValueError(f"atoms must be 'backbone' or 'ca', got {atoms!r}")


def superimpose(
    fixed: ArrayLike, mobile: ArrayLike, mask: ArrayLike | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Rigidly move ``mobile`` onto ``fixed`` with the RMSD-optimal (Kabsch) transform.

    Parameters
    ----------
    fixed, mobile : array_like, shape (n, 3)
        Corresponding points (point ``i`` of one matches point ``i`` of the other).
    mask : array_like of bool, shape (n,), optional
        Points used to fit the transform (all by default); all points are moved.

    Returns
    -------
    moved : ndarray, shape (n, 3)
        ``mobile`` after the transform.
    rotation : ndarray, shape (3, 3)
    translation : ndarray, shape (3,)
        ``moved = mobile @ rotation.T + translation``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(10, 3))
    >>> moved, r, t = superimpose(a, a + 5.0)
    >>> bool(np.allclose(moved, a))
    True
    """
    # biotite's superimpose is the Kabsch fit with reflection handling; we only unpack its
    # AffineTransformation into a plain rotation + translation.
    import biotite.structure as struc

    f = np.asarray(fixed, dtype=np.float64)
    m = np.asarray(mobile, dtype=np.float64)
    if f.shape != m.shape or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"superimpose needs two [n, 3] arrays of equal shape, got {f.shape}, {m.shape}")
    sel = None if mask is None else np.asarray(mask, dtype=bool)
    n_fit = len(f) if sel is None else int(sel.sum())
    if n_fit < 3:
        raise ValueError(f"superimpose needs at least 3 points to fit, got {n_fit}")
    moved, transform = struc.superimpose(f, m, atom_mask=sel)
    # AffineTransformation applies: x -> (x + center_translation) @ R.T + target_translation
    rotation = np.asarray(transform.rotation, dtype=np.float64).reshape(3, 3)
    translation = (
        np.asarray(transform.center_translation).reshape(3) @ rotation.T
        + np.asarray(transform.target_translation).reshape(3)
    )
    return np.asarray(moved, dtype=np.float64), rotation, translation


def rmsd(
    a: ArrayLike,
    b: ArrayLike,
    *,
    atoms: AtomSet = "backbone",
    superpose: bool = True,
    mask: ArrayLike | None = None,
) -> float:
    """RMSD between two structures of equal length, after optimal superposition by default.

    Parameters
    ----------
    a, b : array_like, shape (L, 4, 3) or (L, 3)
        Backbones (N, CA, C, O) or CA traces with residue ``i`` of ``a`` matching residue ``i``
        of ``b``.
    atoms : {"backbone", "ca"}
        N/CA/C or CA only.
    superpose : bool
        Superimpose ``b`` onto ``a`` first (Kabsch) — the spec's "RMSD after optimal
        superposition". ``False`` measures the raw deviation.
    mask : array_like of bool, shape (L,), optional
        Residues to use (e.g. those with all backbone atoms observed in both structures).
        Residues with any non-finite coordinate are always dropped.

    Returns
    -------
    float
        RMSD in the coordinates' unit (Å).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=(20, 4, 3)) * 5
    >>> round(rmsd(x, x + 3.0), 4)
    0.0
    >>> round(rmsd(x, x + 3.0, superpose=False), 6)
    5.196152
    """
    pa, pb = _paired_points(a, b, atoms, mask)
    if superpose:
        pb, _, _ = superimpose(pa, pb)
    return float(np.sqrt(np.mean(np.sum((pa - pb) ** 2, axis=-1))))


def backbone_rmsd(a: ArrayLike, b: ArrayLike, mask: ArrayLike | None = None) -> float:
    """RMSD over N, CA, C after optimal superposition; see :func:`rmsd`."""
    return rmsd(a, b, atoms="backbone", mask=mask)


def ca_rmsd(a: ArrayLike, b: ArrayLike, mask: ArrayLike | None = None) -> float:
    """RMSD over CA after optimal superposition; see :func:`rmsd`."""
    return rmsd(a, b, atoms="ca", mask=mask)


def tm_align(
    a: ArrayLike, b: ArrayLike, seq_a: str | None = None, seq_b: str | None = None
) -> TMAlignResult:
    """Structurally align chains ``a`` and ``b`` with TM-align (tmtools) on their CA atoms.

    Parameters
    ----------
    a, b : array_like, shape (L, 4, 3) or (L, 3)
        Backbones or CA traces; lengths may differ (TM-align finds the alignment). Residues with
        a non-finite CA are removed first.
    seq_a, seq_b : str, optional
        One-letter sequences; poly-alanine when omitted (the reference's choice: TM-align's
        alignment and score do not use residue types).

    Returns
    -------
    TMAlignResult

    Examples
    --------
    >>> t = np.linspace(0, 6 * np.pi, 60)
    >>> helix = np.stack([2.3 * np.cos(t), 2.3 * np.sin(t), 1.5 * t], axis=1)
    >>> r = tm_align(helix, helix)
    >>> round(r.tm_norm_a, 4), round(r.rmsd, 4)
    (1.0, 0.0)
    """
    import tmtools

    ca_a, keep_a = _ca_trace(a)
    ca_b, keep_b = _ca_trace(b)
    sa = _tm_sequence(seq_a, keep_a)
    sb = _tm_sequence(seq_b, keep_b)
    if len(ca_a) < 3 or len(ca_b) < 3:
        raise ValueError(f"TM-align needs >= 3 residues per chain, got {len(ca_a)} and {len(ca_b)}")
    res = tmtools.tm_align(ca_a, ca_b, sa, sb)
    marks = res.seqM
    pairs = [
        (x, y) for x, y in zip(res.seqxA, res.seqyA, strict=True) if x != "-" and y != "-"
    ]
    identity = sum(x == y for x, y in pairs) / len(pairs) if pairs else 0.0
    return TMAlignResult(
        tm_norm_a=float(res.tm_norm_chain1),
        tm_norm_b=float(res.tm_norm_chain2),
        rmsd=float(res.rmsd),
        n_aligned=len(pairs),
        seq_identity=float(identity),
        rotation=np.asarray(res.u, dtype=np.float64),
        translation=np.asarray(res.t, dtype=np.float64),
        n_close=int(marks.count(":")),
    )


def tm_score(
    a: ArrayLike,
    b: ArrayLike,
    normalize_by: Normalisation = "a",
    seq_a: str | None = None,
    seq_b: str | None = None,
) -> float:
    """TM-score of the TM-align alignment of ``a`` and ``b``, normalised as asked.

    Parameters
    ----------
    a, b : array_like, shape (L, 4, 3) or (L, 3)
    normalize_by : {"a", "b", "min", "max", "mean"}
        ``"a"``: by the length of ``a`` (the generated / designed chain, the spec's choice for
        scTM and novelty); ``"b"``: by ``b`` (the reference, for folding accuracy); ``"min"`` /
        ``"max"`` / ``"mean"`` combine the two scores (``"max"`` = normalised by the shorter).
    seq_a, seq_b : str, optional
        See :func:`tm_align`.

    Returns
    -------
    float in [0, 1]
    """
    r = tm_align(a, b, seq_a, seq_b)
    return _normalised(r, normalize_by)


def _normalised(r: TMAlignResult, normalize_by: Normalisation) -> float:
    if normalize_by == "a":
        return r.tm_norm_a
    if normalize_by == "b":
        return r.tm_norm_b
    if normalize_by == "min":
        return min(r.tm_norm_a, r.tm_norm_b)
    if normalize_by == "max":
        return max(r.tm_norm_a, r.tm_norm_b)
    if normalize_by == "mean":
        return 0.5 * (r.tm_norm_a + r.tm_norm_b)
    raise ValueError(f"normalize_by must be one of a, b, min, max, mean; got {normalize_by!r}")


def motif_rmsd(
    sample: ArrayLike,
    reference: ArrayLike,
    sample_positions: ArrayLike,
    reference_positions: ArrayLike,
    atoms: AtomSet = "ca",
) -> float:
    """RMSD of a motif after superposition on the motif alone (motif-scaffolding success).

    Parameters
    ----------
    sample : array_like, shape (L, 4, 3) or (L, 3)
        The scaffold (generated structure).
    reference : array_like, shape (M', 4, 3) or (M', 3)
        The structure the motif was taken from (the benchmark's ``_reference`` file).
    sample_positions, reference_positions : array_like of int, shape (M,)
        0-based residue indices of the motif in ``sample`` and in ``reference``, in matching
        order.
    atoms : {"ca", "backbone"}
        The benchmark criterion is CA (``"ca"``, success when < 1 Å).

    Returns
    -------
    float

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> ref = rng.normal(size=(30, 3)) * 4
    >>> scaffold = rng.normal(size=(50, 3)) * 4
    >>> scaffold[10:20] = ref[5:15] + 7.0    # motif copied and shifted into the scaffold
    >>> round(motif_rmsd(scaffold, ref, range(10, 20), range(5, 15)), 4)
    0.0
    """
    si = np.asarray(sample_positions, dtype=np.int64)
    ri = np.asarray(reference_positions, dtype=np.int64)
    if si.shape != ri.shape or si.ndim != 1 or len(si) == 0:
        raise ValueError(
            f"motif positions must be two non-empty 1-D lists of equal length, got {si.shape} and {ri.shape}"
        )
    s = np.asarray(sample, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    for name, idx, arr in (("sample", si, s), ("reference", ri, r)):
        if idx.min() < 0 or idx.max() >= len(arr):
            raise ValueError(f"{name} motif position out of range [0, {len(arr)}): {idx.tolist()}")
    return rmsd(s[si], r[ri], atoms=atoms)


def _paired_points(
    a: ArrayLike, b: ArrayLike, atoms: AtomSet, mask: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    if xa.shape[0] != xb.shape[0]:
        raise ValueError(f"RMSD needs equal lengths (residue i matches residue i), got {len(xa)} and {len(xb)}")
    pa = backbone_points(xa, atoms)
    pb = backbone_points(xb, atoms)
    per_res = len(pa) // max(len(xa), 1)
    keep = np.isfinite(pa).all(-1) & np.isfinite(pb).all(-1)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != (len(xa),):
            raise ValueError(f"mask must have shape ({len(xa)},), got {m.shape}")
        keep &= np.repeat(m, per_res)
    if keep.sum() < 3:
        raise ValueError(f"RMSD needs >= 3 finite, unmasked points, got {int(keep.sum())}")
    return pa[keep], pb[keep]


def _ca_trace(x: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    arr = np.asarray(x, dtype=np.float64)
    ca = backbone_points(arr, "ca")
    keep = np.isfinite(ca).all(-1)
    return np.ascontiguousarray(ca[keep]), keep


def _tm_sequence(seq: str | None, keep: NDArray[np.bool_]) -> str:
    if seq is None:
        return "A" * int(keep.sum())
    if len(seq) != len(keep):
        raise ValueError(f"sequence length {len(seq)} does not match {len(keep)} residues")
    # TM-align only knows the 20 standard letters (+X); map anything else to X.
    return "".join(c if c in "ACDEFGHIKLMNPQRSTVWY" else "X" for c, k in zip(seq, keep, strict=True) if k)

"""Inverse folding: amino-acid recovery (AAR) of a designed sequence against the native one."""

from __future__ import annotations

import polars as pl

from dplm2.evaluate.samples import reference_chain


def aar(designed: str, native: str) -> float:
    """Fraction of positions where the designed residue equals the native one.

    Positions where the native residue is unknown (``X``) cannot be recovered and are left out
    of both numerator and denominator.

    Parameters
    ----------
    designed, native : str
        One-letter sequences of equal length.

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> aar("ACDEF", "ACDEF")
    1.0
    >>> aar("ACDEF", "ACDKK")
    0.6
    >>> aar("AAAA", "AXAX")  # the two X positions do not count
    1.0
    """
    if len(designed) != len(native):
        raise ValueError(f"designed length {len(designed)} != native length {len(native)}")
    pairs = [(d, n) for d, n in zip(designed.upper(), native.upper(), strict=True) if n != "X"]
    if not pairs:
        raise ValueError("native sequence has no known residue")
    return sum(d == n for d, n in pairs) / len(pairs)


def recovery_table(samples: pl.DataFrame) -> pl.DataFrame:
    """One row per inverse-folding sample: ``aar`` against ``reference_sequence`` (or the
    sequence of the reference structure when that column is absent). AAR uses no folding
    model: ``folding_backend`` is ``"none"``."""
    rows = []
    for row in samples.iter_rows(named=True):
        native = row.get("reference_sequence") or reference_chain(row).sequence
        rows.append({"sample_id": row["sample_id"], "task": row["task"],
                     "target_id": row["target_id"], "length": int(row["length"]),
                     "aar": aar(row["sequence"], native), "folding_backend": "none"})
    return pl.DataFrame(rows, infer_schema_length=None)

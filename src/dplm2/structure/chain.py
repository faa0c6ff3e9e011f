"""The :class:`Chain` record: one protein chain's backbone, sequence and per-residue pLDDT.

A chain is what every stage after ``process`` sees: backbone atoms N, CA, C, O as a float32
array ``[L, 4, 3]`` with NaN where an atom is missing, a boolean ``atom_mask [L, 4]`` that is
True exactly where the coordinates are finite, the one-letter sequence (``X`` for unknown),
author residue numbers and insertion codes, and pLDDT for predicted models.

``to_row``/``from_row`` convert to and from one row of the chain shard schema
(``docs/architecture.md``): coordinates and mask flattened (``L*4*3`` and ``L*4``).

>>> import numpy as np
>>> xyz = np.array([[[0, 1.46, 0], [0, 0, 0], [1.52, 0, 0], [2.1, 1.0, 0]]], dtype=np.float32)
>>> c = Chain(id="1abc_A", chain_id="A", sequence="G", coords=xyz,
...           atom_mask=np.ones((1, 4), bool), res_ids=np.array([1]))
>>> Chain.from_row(c.to_row()) == c
True
>>> c.complete_backbone().tolist()
[True]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from dplm2.structure.errors import StructureError
from dplm2.structure.residues import ALPHABET, UNKNOWN

BACKBONE_ATOMS = ("N", "CA", "C", "O")
_LETTERS = frozenset(ALPHABET + UNKNOWN)


@dataclasses.dataclass(frozen=True, eq=False)
class Chain:
    """One protein chain (see module docstring). Arrays are copied into canonical dtypes.

    Parameters
    ----------
    id : str
        Unique chain id: ``<entry>_<chain>`` for PDB (``1abc_A``), ``AF-<acc>-F1`` for AFDB.
    chain_id : str
        Author chain id in the source file.
    sequence : str
        One-letter sequence over the 20 standard letters and ``X``; length L.
    coords : ndarray, float32, shape (L, 4, 3)
        N, CA, C, O coordinates in Å; NaN where the atom is missing.
    atom_mask : ndarray, bool, shape (L, 4)
        True where the atom is present (must equal "all coordinates finite").
    res_ids : ndarray, int, shape (L,)
        Author residue numbers.
    ins_codes : tuple of str, optional
        Insertion code per residue (``""`` for none); default all empty.
    plddt : ndarray, float32, shape (L,), optional
        Per-residue pLDDT (0-100) for predicted models, else None.
    """

    id: str
    chain_id: str
    sequence: str
    coords: np.ndarray
    atom_mask: np.ndarray
    res_ids: np.ndarray
    ins_codes: tuple[str, ...] = ()
    plddt: np.ndarray | None = None

    def __post_init__(self) -> None:
        where = f"chain {self.id!r}"
        seq = str(self.sequence)
        n = len(seq)
        bad = set(seq) - _LETTERS
        if bad:
            raise StructureError(f"{where}: sequence has letters {sorted(bad)} outside {ALPHABET}X")
        coords = np.asarray(self.coords, dtype=np.float32)
        if coords.shape != (n, 4, 3):
            raise StructureError(f"{where}: coords shape {coords.shape}, expected ({n}, 4, 3)")
        mask = np.asarray(self.atom_mask, dtype=bool)
        if mask.shape != (n, 4):
            raise StructureError(f"{where}: atom_mask shape {mask.shape}, expected ({n}, 4)")
        finite = np.isfinite(coords).all(axis=-1)
        if not np.array_equal(finite, mask):
            raise StructureError(f"{where}: atom_mask disagrees with finite coordinates")
        coords = coords.copy()
        coords[~mask] = np.nan  # one convention for missing atoms, whatever the caller used
        res_ids = np.asarray(self.res_ids, dtype=np.int64)
        if res_ids.shape != (n,):
            raise StructureError(f"{where}: res_ids shape {res_ids.shape}, expected ({n},)")
        ins = tuple(str(c) for c in self.ins_codes) if len(self.ins_codes) else ("",) * n
        if len(ins) != n:
            raise StructureError(f"{where}: {len(ins)} insertion codes for {n} residues")
        plddt = self.plddt
        if plddt is not None:
            plddt = np.asarray(plddt, dtype=np.float32)
            if plddt.shape != (n,):
                raise StructureError(f"{where}: plddt shape {plddt.shape}, expected ({n},)")
            if not np.all((plddt >= 0) & (plddt <= 100)):
                raise StructureError(f"{where}: plddt values outside [0, 100]")
            plddt.setflags(write=False)
        for arr in (coords, mask, res_ids):
            arr.setflags(write=False)
        for name, value in (("sequence", seq), ("coords", coords), ("atom_mask", mask),
                            ("res_ids", res_ids), ("ins_codes", ins), ("plddt", plddt)):
            object.__setattr__(self, name, value)

    # -- basic views ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.sequence)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Chain):
            return NotImplemented
        same_plddt = (self.plddt is None and other.plddt is None) or (
            self.plddt is not None
            and other.plddt is not None
            and np.array_equal(self.plddt, other.plddt)
        )
        return (
            (self.id, self.chain_id, self.sequence, self.ins_codes)
            == (other.id, other.chain_id, other.sequence, other.ins_codes)
            and np.array_equal(self.coords, other.coords, equal_nan=True)
            and np.array_equal(self.atom_mask, other.atom_mask)
            and np.array_equal(self.res_ids, other.res_ids)
            and same_plddt
        )

    __hash__ = None  # mutable-looking arrays inside: not hashable

    @property
    def ca(self) -> np.ndarray:
        """CA coordinates ``[L, 3]`` (NaN where missing)."""
        return self.coords[:, 1]

    def complete_backbone(self) -> np.ndarray:
        """Bool ``[L]``: residue has N, CA and C (O may be missing)."""
        return self.atom_mask[:, :3].all(axis=1)

    def cb(self) -> np.ndarray:
        """Virtual CB ``[L, 3]`` from N, CA, C (NaN where one of them is missing)."""
        return virtual_cb(self.coords[:, 0], self.coords[:, 1], self.coords[:, 2])

    def slice(self, start: int, stop: int) -> Chain:
        """Residues ``start:stop`` as a new chain with the same id (used to trim ends)."""
        return dataclasses.replace(
            self,
            sequence=self.sequence[start:stop],
            coords=self.coords[start:stop],
            atom_mask=self.atom_mask[start:stop],
            res_ids=self.res_ids[start:stop],
            ins_codes=self.ins_codes[start:stop],
            plddt=None if self.plddt is None else self.plddt[start:stop],
        )

    # -- row conversion ------------------------------------------------------------------
    def to_row(self) -> dict[str, Any]:
        """One row of the chain shard schema (flattened numpy arrays; lists also accepted back)."""
        return {
            "id": self.id,
            "chain_id": self.chain_id,
            "sequence": self.sequence,
            "length": len(self),
            "coords": self.coords.reshape(-1),
            "atom_mask": self.atom_mask.reshape(-1),
            "plddt": None if self.plddt is None else self.plddt,
            "res_ids": self.res_ids.astype(np.int32),
            "ins_codes": list(self.ins_codes),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Chain:
        """Inverse of :meth:`to_row`; ``chain_id``, ``res_ids``, ``ins_codes`` are optional
        (defaults: the part of ``id`` after the last ``_``, 1..L, no insertion codes)."""
        seq = row["sequence"]
        n = len(seq)
        if "length" in row and row["length"] is not None and int(row["length"]) != n:
            raise StructureError(f"row {row.get('id')!r}: length {row['length']} != {n}")
        coords = np.asarray(row["coords"], dtype=np.float32)
        mask = np.asarray(row["atom_mask"], dtype=bool)
        if coords.size != n * 12 or mask.size != n * 4:
            raise StructureError(
                f"row {row.get('id')!r}: {coords.size} coordinates / {mask.size} mask values "
                f"for {n} residues (expected {n * 12} / {n * 4})"
            )
        res_ids = row.get("res_ids")
        ins = row.get("ins_codes")
        plddt = row.get("plddt")
        return cls(
            id=row["id"],
            chain_id=row.get("chain_id") or str(row["id"]).rsplit("_", 1)[-1],
            sequence=seq,
            coords=coords.reshape(n, 4, 3),
            atom_mask=mask.reshape(n, 4),
            res_ids=np.arange(1, n + 1) if res_ids is None else np.asarray(res_ids),
            ins_codes=tuple(ins) if ins is not None else (),
            plddt=None if plddt is None else np.asarray(plddt, dtype=np.float32),
        )


def virtual_cb(n: np.ndarray, ca: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Ideal virtual CB from backbone N, CA, C (arrays ``[..., 3]``).

    The standard constants fitted to ideal L-amino-acid geometry (trRosetta, Yang et al. 2020;
    also used by ProteinMPNN): ``CB = -0.58273431 a + 0.56802827 b - 0.54067466 c + CA`` with
    ``b = CA - N``, ``c = C - CA``, ``a = b x c``. The CA-CB distance comes out at about 1.52-1.53 Å.

    >>> import numpy as np
    >>> n, ca, c = np.array([1.458, 0, 0]), np.zeros(3), np.array([-0.551, 1.424, 0])
    >>> round(float(np.linalg.norm(virtual_cb(n, ca, c) - ca)), 2)
    1.53
    """
    n, ca, c = (np.asarray(x, dtype=np.float64) for x in (n, ca, c))
    b = ca - n
    cc = c - ca
    a = np.cross(b, cc)
    out = -0.58273431 * a + 0.56802827 * b - 0.54067466 * cc + ca
    return out.astype(np.float32)

"""Write a backbone (N, CA, C, O + virtual CB) as PDB or mmCIF, atomically.

Used for decoded/generated structures: the files are read by biotite, TM-align/US-align and
ESMFold-style evaluation scripts. Residues whose N, CA and C are all present get a virtual CB
(except glycine); missing atoms (NaN) are left out. With ``[L, 3, 3]`` input (N, CA, C only)
the carbonyl O is placed on the external bisector of the CA-C-N(next) angle, 1.231 Å from C
(the peptide-plane geometry the standard O placement in AlphaFold/OpenFold follows); the last
residue, having no next N, gets no O.
"""

from __future__ import annotations

import os
from pathlib import Path

import biotite.structure as struc
import biotite.structure.io.pdb as pdb
import biotite.structure.io.pdbx as pdbx
import numpy as np

from dplm2.io import atomic_path
from dplm2.structure.chain import virtual_cb
from dplm2.structure.errors import StructureError
from dplm2.structure.residues import three_letter

C_O_BOND = 1.231  # Å, Engh & Huber


def place_oxygens(backbone: np.ndarray) -> np.ndarray:
    """O coordinates ``[L, 3]`` from N, CA, C ``[L, 3, 3]`` (last residue: NaN).

    >>> bb = np.array([[[0, 1.46, 0], [0, 0, 0], [1.52, 0, 0]],
    ...                [[2.1, -1.1, 0], [3.5, -1.1, 0], [4.1, 0.3, 0]]], dtype=float)
    >>> o = place_oxygens(bb)
    >>> round(float(np.linalg.norm(o[0] - bb[0, 2])), 3), bool(np.isnan(o[1]).all())
    (1.231, True)
    """
    bb = np.asarray(backbone, dtype=np.float64)
    out = np.full((len(bb), 3), np.nan)
    if len(bb) < 2:
        return out.astype(np.float32)
    c, ca, n_next = bb[:-1, 2], bb[:-1, 1], bb[1:, 0]
    u = _unit(c - ca) + _unit(c - n_next)
    out[:-1] = c + C_O_BOND * _unit(u)
    return out.astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def backbone_atoms(
    coords: np.ndarray,
    sequence: str,
    bfactors: np.ndarray | None = None,
    chain_id: str = "A",
) -> struc.AtomArray:
    """AtomArray of N, CA, C, O (+ CB for non-Gly) for a backbone ``[L, 4|3, 3]``."""
    xyz = np.asarray(coords, dtype=np.float32)
    n = len(sequence)
    if xyz.ndim != 3 or xyz.shape[0] != n or xyz.shape[1:] not in ((4, 3), (3, 3)):
        raise StructureError(
            f"backbone coords shape {xyz.shape} does not match [L, 4|3, 3] with L={n}"
        )
    if xyz.shape[1] == 3:
        xyz = np.concatenate([xyz, place_oxygens(xyz)[:, None]], axis=1)
    if bfactors is None:
        bfac = np.zeros(n, dtype=np.float32)
    else:
        bfac = np.asarray(bfactors, dtype=np.float32)
        if bfac.shape != (n,):
            raise StructureError(f"bfactors shape {bfac.shape}, expected ({n},)")
    cb = virtual_cb(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    atoms = []
    for i, aa in enumerate(sequence):
        res_name = three_letter(aa)
        names = ["N", "CA", "C", "O"] + ([] if aa.upper() == "G" else ["CB"])
        points = list(xyz[i]) + ([] if aa.upper() == "G" else [cb[i]])
        for name, p in zip(names, points):
            if not np.isfinite(p).all():
                continue
            atoms.append(
                struc.Atom(
                    p,
                    chain_id=chain_id,
                    res_id=i + 1,
                    res_name=res_name,
                    atom_name=name,
                    element=name[0],
                    b_factor=float(bfac[i]),
                    hetero=False,
                )
            )
    if not atoms:
        raise StructureError("backbone has no finite atom coordinates")
    array = struc.array(atoms)
    array.add_annotation("occupancy", dtype=float)
    array.occupancy[:] = 1.0  # mmCIF readers warn (or fail) without it
    return array


def write_backbone(
    path: str | os.PathLike,
    coords: np.ndarray,
    sequence: str,
    bfactors: np.ndarray | None = None,
    chain_id: str = "A",
) -> Path:
    """Write a backbone to ``path`` (``.pdb`` or ``.cif``/``.mmcif`` by suffix), atomically.

    Parameters
    ----------
    coords : ndarray, shape (L, 4, 3) or (L, 3, 3)
        N, CA, C(, O) in Å; NaN for missing atoms.
    sequence : str
        One-letter sequence (``X`` is written as ``UNK``).
    bfactors : ndarray, shape (L,), optional
        Per-residue B-factor column (e.g. pLDDT).
    """
    path = Path(path)
    atoms = backbone_atoms(coords, sequence, bfactors, chain_id)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".pdb":
            f = pdb.PDBFile()
            f.set_structure(atoms)
            f.write(str(tmp))
        elif suffix in (".cif", ".mmcif"):
            f = pdbx.CIFFile()
            pdbx.set_structure(f, atoms, data_block=path.stem[:70] or "model")
            f.write(str(tmp))
        else:
            raise StructureError(f"{path}: write_backbone writes .pdb, .cif or .mmcif")
    return path

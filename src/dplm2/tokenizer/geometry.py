"""Backbone geometry of the tokenizer in torch: frames, dihedrals, pseudo-CB (encoder features and losses).

Conventions: coordinates are ``[..., L, 4, 3]`` in atom order N, CA, C, O (the chain shards'
order), Angstrom. A residue is *observed* when its N, CA and C are present; only observed
residues get a frame, a token and a loss.

The residue frame is the one the ESMFold structure module builds its backbone from
(``residue_constants.restype_atom14_rigid_group_positions``: CA at the origin, C on +x, N in the
xy plane with y > 0), so predicted and true frames are directly comparable in FAPE.
"""

from __future__ import annotations


import torch

# Ideal pseudo-CB from N, CA, C (the coefficients ESMFold's trunk and ProteinMPNN use).
_CB_A, _CB_B, _CB_C = -0.58273431, 0.56802827, -0.54067466

#: Distogram bin edges of the spec: 64 bins from 2.3125 to 21.6875 A (63 inner boundaries).
DISTOGRAM_MIN, DISTOGRAM_MAX = 2.3125, 21.6875


def residue_mask(atom_mask: torch.Tensor) -> torch.Tensor:
    """``[..., L, 4]`` atom mask -> ``[..., L]`` bool: N, CA and C all present."""
    return atom_mask[..., :3].all(dim=-1)


def pseudo_cb(n: torch.Tensor, ca: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Ideal CB position from backbone atoms (each ``[..., 3]``)."""
    b = ca - n
    cc = c - ca
    a = torch.cross(b, cc, dim=-1)
    return _CB_A * a + _CB_B * b + _CB_C * cc + ca


def backbone_frames(
    coords: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gram-Schmidt residue frames from N, CA, C.

    Parameters
    ----------
    coords : Tensor ``[..., L, 4, 3]`` (or ``[..., L, >=3, 3]``)
    mask : Tensor ``[..., L]`` bool, optional
        Residues outside the mask get the identity frame at the origin.

    Returns
    -------
    rot : Tensor ``[..., L, 3, 3]``
        Columns are the frame axes (e1 along CA->C, e2 towards N, e3 = e1 x e2): global =
        ``rot @ local + trans``.
    trans : Tensor ``[..., L, 3]``
        The CA position.
    """
    n, ca, c = coords[..., 0, :], coords[..., 1, :], coords[..., 2, :]
    e1 = c - ca
    e1 = e1 / (e1.norm(dim=-1, keepdim=True) + eps)
    u = n - ca
    e2 = u - (u * e1).sum(-1, keepdim=True) * e1
    e2 = e2 / (e2.norm(dim=-1, keepdim=True) + eps)
    e3 = torch.cross(e1, e2, dim=-1)
    rot = torch.stack([e1, e2, e3], dim=-1)  # [..., L, 3, 3], axes as columns
    trans = ca
    if mask is not None:
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device).expand_as(rot)
        rot = torch.where(mask[..., None, None], rot, eye)
        trans = torch.where(mask[..., None], trans, torch.zeros_like(trans))
    return rot, trans


def dihedral(p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, p3: torch.Tensor) -> torch.Tensor:
    """Dihedral angle (radians) of four points, each ``[..., 3]``."""
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / (b1.norm(dim=-1, keepdim=True) + 1e-8)
    v = b0 - (b0 * b1n).sum(-1, keepdim=True) * b1n
    w = b2 - (b2 * b1n).sum(-1, keepdim=True) * b1n
    x = (v * w).sum(-1)
    y = (torch.cross(b1n, v, dim=-1) * w).sum(-1)
    return torch.atan2(y, x)


def backbone_dihedrals(coords: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """phi, psi, omega of every residue as sin/cos features.

    Parameters
    ----------
    coords : Tensor ``[B, L, 4, 3]``
    mask : Tensor ``[B, L]`` bool (observed residues)

    Returns
    -------
    feats : Tensor ``[B, L, 6]`` (sin, cos of phi, psi, omega; 0 where undefined)
    defined : Tensor ``[B, L, 3]`` bool
    """
    n, ca, c = coords[..., 0, :], coords[..., 1, :], coords[..., 2, :]
    zero = torch.zeros_like(ca[:, :1])
    # Neighbour atoms shifted by one residue; the ends are padded and marked undefined.
    c_prev = torch.cat([zero, c[:, :-1]], dim=1)
    n_next = torch.cat([n[:, 1:], zero], dim=1)
    ca_next = torch.cat([ca[:, 1:], zero], dim=1)
    m_prev = torch.cat([torch.zeros_like(mask[:, :1]), mask[:, :-1]], dim=1) & mask
    m_next = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1) & mask
    phi = dihedral(c_prev, n, ca, c)
    psi = dihedral(n, ca, c, n_next)
    omega = dihedral(ca, c, n_next, ca_next)
    angles = torch.stack([phi, psi, omega], dim=-1)  # [B, L, 3]
    defined = torch.stack([m_prev, m_next, m_next], dim=-1)
    feats = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1) * defined.repeat(1, 1, 2)
    return feats, defined

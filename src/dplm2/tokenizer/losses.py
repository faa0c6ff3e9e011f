"""Tokenizer losses (DPLM-2 spec section 2), each masked to observed residues.

The openfold utilities shipped with transformers provide frames (``Rigid``) and atom
construction but no training losses (only pAE/pTM helpers), so backbone FAPE, the backbone
violation terms and the lDDT target for the confidence head are written here, following
AlphaFold2's supplement (Alg. 28 for FAPE, section 1.9.11 for violations, Alg. 29 for lDDT).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dplm2.tokenizer.geometry import DISTOGRAM_MAX, DISTOGRAM_MIN, backbone_frames, pseudo_cb

# Ideal backbone geometry between residues (residue_constants; AF2 supplement 1.9.11).
C_N_LENGTH, C_N_STD = 1.329, 0.014
CA_C_N_COS, CA_C_N_STD = -0.4473, 0.0311
C_N_CA_COS, C_N_CA_STD = -0.5203, 0.0353
VIOLATION_TOLERANCE = 12.0  # in standard deviations
CLASH_TOLERANCE = 1.5  # A
VDW = (1.55, 1.7, 1.7, 1.52)  # N, CA, C, O van der Waals radii (residue_constants)


def fape(
    pred_rot: torch.Tensor,
    pred_trans: torch.Tensor,
    pred_pos: torch.Tensor,
    true_rot: torch.Tensor,
    true_trans: torch.Tensor,
    true_pos: torch.Tensor,
    frame_mask: torch.Tensor,
    pos_mask: torch.Tensor,
    clamp: float = 10.0,
    length_scale: float = 10.0,
    eps: float = 1e-4,
    unclamped: torch.Tensor | None = None,
) -> torch.Tensor:
    """Frame-aligned point error (AF2 Alg. 28), one value per batch element.

    Parameters
    ----------
    pred_rot, true_rot : ``[B, L, 3, 3]`` frame rotations (axes as columns)
    pred_trans, true_trans : ``[B, L, 3]`` frame origins
    pred_pos, true_pos : ``[B, P, 3]`` points
    frame_mask : ``[B, L]``; pos_mask : ``[B, P]``
    clamp, length_scale : A
    unclamped : ``[B]`` bool, optional
        Batch elements whose error is not clamped (AF2 supplement 1.11.5).

    Returns
    -------
    ``[B]`` mean clamped distance / length_scale over valid (frame, point) pairs.
    """
    # Points in every frame: R_i^T (x_j - t_i)  -> [B, L, P, 3]
    local_pred = torch.einsum("blji,blpj->blpi", pred_rot, pred_pos[:, None] - pred_trans[:, :, None])
    local_true = torch.einsum("blji,blpj->blpi", true_rot, true_pos[:, None] - true_trans[:, :, None])
    err = torch.sqrt(((local_pred - local_true) ** 2).sum(-1) + eps)  # [B, L, P]
    if clamp is not None and clamp > 0:
        clamped = err.clamp(max=clamp)
        err = clamped if unclamped is None else torch.where(unclamped[:, None, None], err, clamped)
    w = frame_mask[:, :, None].to(err.dtype) * pos_mask[:, None, :].to(err.dtype)
    return (err * w).sum((1, 2)) / length_scale / w.sum((1, 2)).clamp(min=1.0)


def backbone_fape(out: dict, coords: torch.Tensor, mask: torch.Tensor, clamp: float,
                  length_scale: float, unclamped: torch.Tensor | None = None) -> torch.Tensor:
    """Backbone FAPE averaged over all structure-module blocks, ``[B]``.

    Frames: the predicted backbone frames of each block vs. frames built from the true N, CA, C;
    points: the N, CA, C atoms (atom14 slots 0-2) of each block.
    """
    from transformers.models.esm.openfold_utils import Rigid

    true_rot, true_trans = backbone_frames(coords, mask)
    b, l = mask.shape
    true_pos = coords[:, :, :3].reshape(b, l * 3, 3)  # [B, 3L, 3]
    pos_mask = mask[:, :, None].expand(b, l, 3).reshape(b, l * 3)
    losses = []
    for frames7, positions in zip(out["frames"], out["positions"]):
        rigid = Rigid.from_tensor_7(frames7)
        pred_rot = rigid.get_rots().get_rot_mats()
        pred_trans = rigid.get_trans()
        pred_pos = positions[:, :, :3].reshape(b, l * 3, 3)
        losses.append(fape(pred_rot, pred_trans, pred_pos, true_rot, true_trans, true_pos,
                           mask, pos_mask, clamp, length_scale, unclamped=unclamped))
    return torch.stack(losses).mean(0)


def distogram_loss(logits: torch.Tensor, coords: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the distogram head on true pseudo-CB distances, ``[B]``."""
    bins = logits.shape[-1]
    cb = pseudo_cb(coords[..., 0, :], coords[..., 1, :], coords[..., 2, :])  # [B, L, 3]
    d2 = ((cb[:, :, None] - cb[:, None]) ** 2).sum(-1)  # [B, L, L]
    edges = torch.linspace(DISTOGRAM_MIN, DISTOGRAM_MAX, bins - 1, device=logits.device) ** 2
    target = (d2[..., None] > edges).sum(-1)  # [B, L, L] in [0, bins)
    ce = F.cross_entropy(logits.float().permute(0, 3, 1, 2), target, reduction="none")
    w = (mask[:, :, None] & mask[:, None, :]).float()
    return (ce * w).sum((1, 2)) / w.sum((1, 2)).clamp(min=1.0)


def aa_loss(logits: torch.Tensor, aatype: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Amino-acid cross-entropy, ``[B]``; residues with ``aatype`` outside 0-19 (X) are skipped."""
    valid = mask & (aatype >= 0) & (aatype < logits.shape[-1])
    ce = F.cross_entropy(logits.float().transpose(1, 2), aatype.clamp(0, logits.shape[-1] - 1),
                         reduction="none")
    w = valid.float()
    return (ce * w).sum(1) / w.sum(1).clamp(min=1.0)


def _cos_angle(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """cos of the angle a-b-c."""
    u, v = a - b, c - b
    return (u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1) + 1e-6)


def violation_loss(pos: torch.Tensor, coords: torch.Tensor, mask: torch.Tensor,
                   clash_weight: float = 1.0) -> torch.Tensor:
    """Backbone violations of the final structure, ``[B]`` (AF2 1.9.11, backbone atoms only).

    Flat-bottom penalties (12 standard deviations) on the peptide C-N bond length and the
    CA-C-N and C-N-CA angles, plus a clash term over N/CA/C/O of residues more than one
    apart (overlap of van der Waals radii beyond 1.5 A), times ``clash_weight``. Consecutive pairs whose *true*
    C-N distance exceeds 2 A are chain breaks and are not penalised.
    """
    n, ca, c, o = (pos[:, :, i] for i in range(4))  # [B, L, 3] each
    true_cn = (coords[:, 1:, 0] - coords[:, :-1, 2]).norm(dim=-1)
    pair = mask[:, 1:] & mask[:, :-1] & (true_cn < 2.0)  # [B, L-1]
    w = pair.float()
    cn = (n[:, 1:] - c[:, :-1]).norm(dim=-1)
    bond = F.relu((cn - C_N_LENGTH).abs() - VIOLATION_TOLERANCE * C_N_STD)
    a1 = F.relu((_cos_angle(ca[:, :-1], c[:, :-1], n[:, 1:]) - CA_C_N_COS).abs()
                - VIOLATION_TOLERANCE * CA_C_N_STD)
    a2 = F.relu((_cos_angle(c[:, :-1], n[:, 1:], ca[:, 1:]) - C_N_CA_COS).abs()
                - VIOLATION_TOLERANCE * C_N_CA_STD)
    between = ((bond + a1 + a2) * w).sum(1) / w.sum(1).clamp(min=1.0)

    b, l = mask.shape
    atoms = torch.stack([n, ca, c, o], dim=2).reshape(b, l * 4, 3)  # [B, 4L, 3]
    radii = torch.tensor(VDW, device=pos.device, dtype=pos.dtype).repeat(l)  # [4L]
    res = torch.arange(l, device=pos.device).repeat_interleave(4)  # [4L]
    am = mask.repeat_interleave(4, dim=1)  # [B, 4L]
    d = torch.sqrt(((atoms[:, :, None] - atoms[:, None]) ** 2).sum(-1) + 1e-8)  # [B, 4L, 4L]
    far = (res[:, None] - res[None, :]).abs() > 1
    pm = (am[:, :, None] & am[:, None, :] & far).float()
    overlap = F.relu(radii[:, None] + radii[None, :] - CLASH_TOLERANCE - d) * pm
    clash = overlap.sum((1, 2)) / 2 / am.float().sum(1).clamp(min=1.0)  # per atom, as AF2
    return between + clash_weight * clash


def lddt_ca(pred_ca: torch.Tensor, true_ca: torch.Tensor, mask: torch.Tensor,
            cutoff: float = 15.0) -> torch.Tensor:
    """Per-residue CA lDDT in [0, 1] (AF2 Alg. 29), ``[B, L]``; no superposition needed."""
    dt = torch.cdist(true_ca.float(), true_ca.float())
    dp = torch.cdist(pred_ca.float(), pred_ca.float())
    l = mask.shape[1]
    eye = torch.eye(l, dtype=torch.bool, device=mask.device)
    pm = (mask[:, :, None] & mask[:, None, :] & ~eye & (dt < cutoff)).float()
    diff = (dt - dp).abs()
    score = sum((diff < t).float() for t in (0.5, 1.0, 2.0, 4.0)) / 4.0
    return (score * pm).sum(-1) / pm.sum(-1).clamp(min=1.0)


def plddt_loss(logits: torch.Tensor, pred_ca: torch.Tensor, true_ca: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the confidence head on binned CA lDDT of the (detached) prediction."""
    bins = logits.shape[-1]
    with torch.no_grad():
        target = (lddt_ca(pred_ca.detach(), true_ca, mask) * bins).long().clamp(max=bins - 1)
    ce = F.cross_entropy(logits.float().transpose(1, 2), target, reduction="none")
    w = mask.float()
    return (ce * w).sum(1) / w.sum(1).clamp(min=1.0)

"""FAPE, distogram, amino-acid and violation losses: identities, invariance, masking."""

from __future__ import annotations

import numpy as np
import torch

from dplm2.tokenizer import losses as L
from dplm2.tokenizer.data import collate
from dplm2.tokenizer.geometry import backbone_frames

from .conftest import random_rigid


def _frames_points(records, n=60):
    batch = collate(records[:2], [(0, n), (0, n)])
    coords, mask = batch["coords"].double(), batch["mask"]
    rot, trans = backbone_frames(coords, mask)
    pos = coords[:, :, :3].reshape(2, n * 3, 3)
    pmask = mask[:, :, None].expand(2, n, 3).reshape(2, n * 3)
    return coords, mask, rot, trans, pos, pmask


def test_fape_zero_for_identical(records):
    coords, mask, rot, trans, pos, pmask = _frames_points(records)
    f = L.fape(rot, trans, pos, rot, trans, pos, mask, pmask, eps=1e-12)
    assert torch.all(f.abs() < 1e-6)


def test_fape_invariant_to_global_rigid_motion(records):
    coords, mask, rot, trans, pos, pmask = _frames_points(records)
    # a perturbed prediction
    g = torch.Generator().manual_seed(0)
    noisy = coords + torch.randn(coords.shape, generator=g, dtype=coords.dtype)
    prot, ptrans = backbone_frames(noisy, mask)
    ppos = noisy[:, :, :3].reshape(pos.shape)
    base = L.fape(prot, ptrans, ppos, rot, trans, pos, mask, pmask)
    assert torch.all(base > 0.01)
    r, t = (torch.from_numpy(a) for a in random_rigid(3))
    moved = noisy @ r.T + t
    mrot, mtrans = backbone_frames(moved, mask)
    mpos = moved[:, :, :3].reshape(pos.shape)
    f = L.fape(mrot, mtrans, mpos, rot, trans, pos, mask, pmask)
    assert torch.allclose(f, base, atol=1e-8)


def test_fape_respects_masks(records):
    coords, mask, rot, trans, pos, pmask = _frames_points(records)
    mask = mask.clone()
    mask[:, 10:20] = False
    pmask = mask[:, :, None].expand(-1, -1, 3).reshape(pmask.shape)
    garbage = coords.clone()
    garbage[:, 10:20] += 50.0  # only masked residues change
    grot, gtrans = backbone_frames(garbage, mask)
    gpos = garbage[:, :, :3].reshape(pos.shape)
    f = L.fape(grot, gtrans, gpos, rot, trans, pos, mask, pmask, eps=1e-12)
    assert torch.all(f.abs() < 1e-6)


def test_distogram_and_aa_losses_ignore_masked_residues(records):
    batch = collate(records[:2], [(0, 50), (0, 50)])
    mask = batch["mask"].clone()
    mask[0, :5] = False
    torch.manual_seed(0)
    logits = torch.randn(2, 50, 50, 64)
    base = L.distogram_loss(logits, batch["coords"], mask)
    coords2 = batch["coords"].clone()
    coords2[0, :5] += 40.0
    logits2 = logits.clone()
    logits2[0, :5] = torch.randn(5, 50, 64)
    assert torch.allclose(base, L.distogram_loss(logits2, coords2, mask))
    aal = torch.randn(2, 50, 20)
    aa2 = aal.clone()
    aa2[0, :5] = 99.0
    assert torch.allclose(L.aa_loss(aal, batch["aatype"], mask), L.aa_loss(aa2, batch["aatype"], mask))
    # perfect logits give ~0 loss
    onehot = torch.nn.functional.one_hot(batch["aatype"].clamp(min=0), 20).float() * 50
    assert L.aa_loss(onehot, batch["aatype"], batch["mask"]).max() < 1e-3


def test_violation_zero_on_real_backbone_and_positive_when_collapsed(records):
    batch = collate(records[:1])
    real = L.violation_loss(batch["coords"], batch["coords"], batch["mask"])
    assert float(real) < 0.05
    collapsed = torch.zeros_like(batch["coords"])
    full = float(L.violation_loss(collapsed, batch["coords"], batch["mask"]))
    assert full > 1.0
    # without the clash part only the bond/angle terms remain: still positive, much smaller
    bonds = float(L.violation_loss(collapsed, batch["coords"], batch["mask"], clash_weight=0.0))
    assert 0.0 < bonds < full / 10
    # a chain squeezed to half its size breaks the peptide bonds but clashes little
    squeezed = batch["coords"] * 0.5
    assert float(L.violation_loss(squeezed, batch["coords"], batch["mask"], clash_weight=0.0)) > 0.1


def test_lddt_perfect_is_one(records):
    batch = collate(records[:1])
    ca = batch["coords"][:, :, 1]
    lddt = L.lddt_ca(ca, ca, batch["mask"])
    assert np.allclose(lddt[batch["mask"]].numpy(), 1.0)


def test_unclamped_fape_only_for_selected_chains(records):
    coords, mask, rot, trans, pos, pmask = _frames_points(records)
    far = coords + 25.0 * torch.randn(coords.shape, generator=torch.Generator().manual_seed(1),
                                      dtype=coords.dtype)
    prot, ptrans = backbone_frames(far, mask)
    ppos = far[:, :, :3].reshape(pos.shape)
    clamped = L.fape(prot, ptrans, ppos, rot, trans, pos, mask, pmask, clamp=10.0)
    mixed = L.fape(prot, ptrans, ppos, rot, trans, pos, mask, pmask, clamp=10.0,
                   unclamped=torch.tensor([True, False]))
    assert clamped[0] <= 1.0 + 1e-9  # clamp 10 A / length scale 10 A
    assert mixed[0] > clamped[0] * 1.5  # errors beyond the clamp count for chain 0
    assert torch.equal(mixed[1], clamped[1])

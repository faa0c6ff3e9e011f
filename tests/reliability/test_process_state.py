"""Folding in the same process must not poison later training (a cached inference tensor in
openfold's rigid utilities once made every later tokenizer backward pass fail)."""

from __future__ import annotations

import torch


def test_training_after_inference_still_backpropagates():
    from transformers.models.esm.openfold_utils import rigid_utils

    # What the folding backends do: run the structure module's rotations without grad.
    with torch.no_grad():
        rigid_utils.quat_to_rot(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    quat = torch.tensor([[1.0, 0.1, 0.0, 0.0]], requires_grad=True)
    rigid_utils.quat_to_rot(quat).sum().backward()
    assert quat.grad is not None


def test_no_inference_mode_in_the_package():
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src" / "dplm2"
    offenders = [str(p) for p in src.rglob("*.py") if "inference_mode()" in p.read_text()]
    assert not offenders, offenders

"""Read a released checkpoint's tensors without unpickling arbitrary objects."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported on use: dplm2.io is shared by the torch-free data stage
    import torch


def read_tensor_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Name -> tensor mapping of a safetensors file or a tensors-only PyTorch checkpoint (CPU).

    PyTorch files load with ``torch.load(weights_only=True)`` (no arbitrary code); a
    Lightning-style ``{"state_dict": ...}`` wrapper is unwrapped. ``ValueError`` naming the file
    when it cannot be read or is not a flat, non-empty name -> tensor mapping.
    """
    import torch

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable tensors-only checkpoint ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint
    if not isinstance(state, dict) or not state or not all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()
    ):
        raise ValueError(f"{path}: expected a flat name -> tensor mapping")
    return dict(state)

"""Load any DPLM-2 language model: the one loader generate, embed, evaluate and warm starts use.

* a folder of this project (``dplm2_vocab.json`` beside ``config.json`` and
  ``model.safetensors``, as the lm stage and ``dplm2 lm import-official`` write it): DPLM-2 or
  DPLM-2 Bit by its config;
* a released checkpoint, a folder or a hub id ``owner/name[@revision]``
  (:mod:`dplm2.io.hub`): converted on the fly by :mod:`dplm2.lm.official` (DPLM-2) or
  :mod:`dplm2.lm.bit` (DPLM-2 Bit), the converters, which this module only calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from dplm2.lm.model import DPLM2LM
from dplm2.lm.vocab import LAYOUT_FILE


def is_project_folder(path: str | os.PathLike) -> bool:
    """A model folder written by this project (not a released checkpoint)."""
    path = Path(path)
    return path.is_dir() and (path / LAYOUT_FILE).is_file()


def load_lm(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu", **kwargs
) -> DPLM2LM:
    """Any DPLM-2 LM (see the module docstring), in eval mode on ``device``; ``kwargs`` go to
    the released-checkpoint converter (``cache_dir``, ``strict``)."""
    from dplm2.lm import bit, official

    if is_project_folder(name_or_path):
        path = Path(name_or_path)
        if bit.is_bit_folder(path):
            return bit.DPLM2BitLM.from_pretrained(path).to(device).eval()
        return DPLM2LM.from_pretrained(path).to(device).eval()
    try:
        return official.load_official(name_or_path, device=device, **kwargs)
    except official.BitCheckpointError:
        return bit.load_official_bit(name_or_path, device=device, **kwargs)


def lm_weights_file(name_or_path: str | os.PathLike, cache_dir: str | None = None) -> Path:
    """The weights file :func:`load_lm` reads (our ``model.safetensors`` or the released
    checkpoint's file), for provenance hashes."""
    from dplm2.lm import bit, official

    if is_project_folder(name_or_path):
        return Path(name_or_path) / "model.safetensors"
    try:
        return official.resolve_official(name_or_path, cache_dir).weights
    except official.BitCheckpointError:
        return bit.resolve_bit(name_or_path, cache_dir)["weights"]

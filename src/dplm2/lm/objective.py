"""Which kind of DPLM-2 LM a checkpoint holds (``index`` = DPLM-2, ``bit`` = DPLM-2 Bit), read
from its ``config.json`` alone, and the generation tasks a bit model cannot serve.

Standard library only: the workflow reads this while planning (``workflow/rules/common.smk``),
before any job runs and without importing torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

#: Objectives of ``lm.objective``.
OBJECTIVES = ("index", "bit")
#: Config attribute marking a bit model of this project: ``{"codebook_bits": 13}``.
BIT_KEY = "dplm2_bit"
#: Released layout (the reference's registry name for its bit network).
BIT_DPLM_TYPE = "dplm2_bit_esm"

#: Generation tasks a DPLM-2 Bit model refuses, and why (docs/stages.md, "DPLM-2 Bit and self-mixup").
BIT_REFUSED_TASKS = {
    "sequence": "it feeds the amino-acid half alone; the bit network reads both halves",
    "backbone": "it feeds the structure half alone; the bit network reads both halves",
    "ss_cogen": "its guidance adds log-probabilities on the 8229-id head, which a bit model lacks",
}


def config_objective(raw: dict) -> str:
    """``bit`` for the ``config.json`` of a bit model (ours or the released layout), else
    ``index``."""
    return "bit" if raw.get(BIT_KEY) is not None or raw.get("dplm_type") == BIT_DPLM_TYPE else "index"


def source_objective(source: str | os.PathLike, cache_dir: str | None = None) -> str | None:
    """The objective of an LM source (a folder in either layout, or a hub id with optional
    ``@revision``), or ``None`` when it cannot be told without downloading (a hub id whose
    ``config.json`` is not in the local Hugging Face cache)."""
    path = Path(source)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            return None
        try:
            return config_objective(json.loads(config.read_text()))
        except (OSError, ValueError):
            return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # planning without huggingface_hub: decided at run time
        return None
    repo, _, revision = str(source).partition("@")
    try:
        cached = try_to_load_from_cache(repo, "config.json", cache_dir=cache_dir,
                                        revision=revision or None)
    except ValueError:  # not a valid repo id
        return None
    if not isinstance(cached, str):
        return None
    try:
        return config_objective(json.loads(Path(cached).read_text()))
    except (OSError, ValueError):
        return None

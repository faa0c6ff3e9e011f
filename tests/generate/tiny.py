"""Tiny randomly initialised LM + structure tokenizer, saved like the real stages save theirs.

Used when trained weights are not available: every property the generation tests check
(conditioning kept, determinism, file schema, motif round trip) holds for any weights.
"""

from __future__ import annotations

from pathlib import Path

import torch


def build_tiny_models(folder: Path, seed: int = 0, codebook_bits: int = 6) -> tuple[Path, Path]:
    """Write ``folder/lm`` (DPLM2LM export) and ``folder/tokenizer`` (safetensors + config)."""
    from transformers import EsmForMaskedLM

    from dplm2.lm.model import DPLM2LM, TransformerConfig
    from dplm2.tokenizer.config import ModelConfig as TokConfig
    from dplm2.tokenizer.hub import save_tokenizer
    from dplm2.tokenizer.model import StructureTokenizer

    torch.manual_seed(seed)
    cfg = TransformerConfig.from_dict(dict(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64))
    lm = DPLM2LM(EsmForMaskedLM(cfg.esm_config())).eval()
    lm_dir, tok_dir = folder / "lm", folder / "tokenizer"
    lm.save_pretrained(lm_dir)
    tcfg = TokConfig.from_dict(dict(
        decoder="compact", encoder_dim=32, encoder_neighbors=8, encoder_rbf=8, encoder_message_layers=1,
        encoder_layers=1, encoder_heads=2, codebook_bits=codebook_bits, post_dim=32,
        post_layers=1, post_heads=2, trunk_blocks=0, pair_dim=8, seq_head_width=16,
        pair_head_width=8, position_bins=8, sm_blocks=1, ipa_dim=8, ipa_heads=2, qk_points=2,
        v_points=2, recycles=0, distogram_bins=8,
    ))
    save_tokenizer(StructureTokenizer(tcfg).eval(), tok_dir)
    return lm_dir, tok_dir

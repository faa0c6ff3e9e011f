"""Tiny random models and the real protein sets of the embedding tests."""

from __future__ import annotations

from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
GLOBINS = REPO / "resources" / "scop_globins"
MIRROR = REPO / "resources" / "mirror"
# Mirror entries that are globins (4hhb: haemoglobin), have no protein chain (4gxy, 4p5j:
# RNA) or are too short to be a domain (1l2y: 20-residue Trp-cage).
NOT_OTHERS = ("4hhb", "4gxy", "4p5j", "1l2y")


def tiny_lm(hidden: int = 64, layers: int = 2, heads: int = 4, seed: int = 0):
    """A randomly initialised DPLM-2 (no training)."""
    from transformers import EsmForMaskedLM

    from dplm2.lm.model import DPLM2LM, TransformerConfig

    torch.manual_seed(seed)
    cfg = TransformerConfig.from_dict(dict(hidden_size=hidden, num_layers=layers, num_heads=heads,
                                     intermediate_size=2 * hidden))
    return DPLM2LM(EsmForMaskedLM(cfg.esm_config())).eval()


def tiny_tokenizer(seed: int = 0):
    """A randomly initialised demo-size structure tokenizer (13-bit LFQ, untrained)."""
    from dplm2.tokenizer.config import ModelConfig
    from dplm2.tokenizer.model import StructureTokenizer

    torch.manual_seed(seed)
    cfg = ModelConfig.from_dict(dict(decoder="compact", encoder_dim=64, encoder_neighbors=16,
                                     encoder_message_layers=2,
                                     encoder_layers=1, encoder_heads=4, post_dim=64, post_layers=2,
                                     post_heads=4, trunk_blocks=0, pair_dim=16, seq_head_width=16,
                                     pair_head_width=16, sm_blocks=1, ipa_heads=4))
    return StructureTokenizer(cfg).eval()


def globin_files() -> list[Path]:
    return sorted(GLOBINS.glob("*.pdb.gz"))


def other_files() -> list[Path]:
    """Non-globin PDB entries and AFDB models of the bundled mirror."""
    pdb = sorted((MIRROR / "pdb").rglob("*.gz"))
    afdb = sorted((MIRROR / "afdb" / "files").glob("*.gz"))
    return [p for p in pdb if not any(x in p.name for x in NOT_OTHERS)] + afdb

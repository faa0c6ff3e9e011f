"""Helpers of the evaluate tests: real backbones from tests/data/eval and a tiny ESMFold."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"
GLOBINS = ("d1mbaa_", "d1asha_", "d1ecaa_", "d1hlba_")
TIMS = ("1tim_A", "8tim_A")


def chain(name: str):
    from dplm2.structure import read_chains

    return read_chains(DATA / f"{name}.pdb.gz")[0]


def backbone(name: str) -> np.ndarray:
    return np.asarray(chain(name).coords, dtype=np.float64)


def random_rigid(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random proper rotation (QR of a Gaussian matrix, det +1) and a translation."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q, rng.normal(size=3) * 20.0


def build_tiny_esmfold(out: Path) -> Path:
    """A randomly initialised, very small EsmForProteinFolding saved with save_pretrained."""
    import torch
    from transformers import EsmConfig, EsmForProteinFolding
    from transformers.models.esm.configuration_esm import get_default_vocab_list

    torch.manual_seed(0)
    cfg = EsmConfig(
        vocab_size=33, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, pad_token_id=1, mask_token_id=32,
        position_embedding_type="rotary", token_dropout=True, emb_layer_norm_before=False,
        max_position_embeddings=1026, is_folding_model=True, vocab_list=get_default_vocab_list(),
        esmfold_config={
            "fp16_esm": False, "lddt_head_hid_dim": 16,
            "trunk": {
                "num_blocks": 1, "sequence_state_dim": 32, "pairwise_state_dim": 16,
                "sequence_head_width": 8, "pairwise_head_width": 8, "max_recycles": 1,
                "chunk_size": None,
                "structure_module": {
                    "sequence_dim": 32, "pairwise_dim": 16, "ipa_dim": 8, "resnet_dim": 16,
                    "num_heads_ipa": 2, "num_qk_points": 2, "num_v_points": 2, "num_blocks": 2,
                },
            },
        },
    )
    EsmForProteinFolding(cfg).save_pretrained(out)
    return out


def build_tiny_dplm2(out: Path) -> tuple[Path, Path]:
    """A tiny random DPLM-2 LM folder and a tiny random structure tokenizer folder, written with
    the LM and tokenizer stages' public save functions."""
    import torch
    from transformers import EsmForMaskedLM

    from dplm2.lm.model import DPLM2LM
    from dplm2.lm.model import TransformerConfig as LMConfig
    from dplm2.tokenizer.config import ModelConfig as TokConfig
    from dplm2.tokenizer.hub import save_tokenizer
    from dplm2.tokenizer.model import StructureTokenizer

    torch.manual_seed(0)
    lm_cfg = LMConfig.from_dict(dict(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64))
    lm = DPLM2LM(EsmForMaskedLM(lm_cfg.esm_config()))
    lm.save_pretrained(out / "lm")
    tok = StructureTokenizer(TokConfig.from_dict(dict(
        encoder_dim=32, encoder_neighbors=8, encoder_message_layers=1, encoder_layers=1,
        encoder_heads=4, post_dim=32, post_layers=1, post_heads=4, trunk_blocks=0, pair_dim=8,
        seq_head_width=8, pair_head_width=8, sm_blocks=2, ipa_heads=2, recycles=0,
    )))
    save_tokenizer(tok, out / "tokenizer")
    return out / "lm", out / "tokenizer"

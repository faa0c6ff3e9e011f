"""Decoder: quantized bits -> backbone, built from transformers' ESMFold modules.

Post-quantization (spec): LayerNorm + MLP (bits -> 128 -> 128, ReLU) + a pre-LN transformer
over residues (128 wide, 8 heads, 4 layers). Then ``EsmFoldingTrunk`` (triangular blocks,
optional: ``trunk_blocks = 0`` keeps only its relative-position pair embedding, the recycling
machinery and the structure module) fed with those features instead of ESM2 embeddings and a
pair state initialised to zeros, and ``EsmFoldStructureModule`` (IPA) inside it. The decoder
never sees the amino-acid sequence: ``aatype`` is all zeros (alanine), so the side-chain
machinery builds only a backbone, and the residue types come from its own amino-acid head.

Heads: distogram (pair state, symmetrised), amino-acid type (trunk single state), pLDDT
(structure-module state, detached: it learns the decoder's confidence without shaping it).

transformers 5 applies the ESMFold initialisation (zero-initialised final layers, gating,
"final" backbone update so initial frames are the identity) only inside
``EsmFoldPreTrainedModel._init_weights``; :func:`init_esmfold_modules` applies it here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dplm2.tokenizer.config import ModelConfig

NUM_AA = 20  # residue_constants.restypes order; X is not predicted
LDDT_BINS = 50


def init_esmfold_modules(module: nn.Module) -> None:
    """Apply ESMFold's weight initialisation to every ESMFold submodule of ``module``.

    Only the branches of ``EsmFoldPreTrainedModel._init_weights`` that do not need a model
    config are used (EsmFoldLinear init modes, IPA head weights, zeroed triangular-block
    outputs); other layers keep PyTorch's defaults.
    """
    from transformers.models.esm import modeling_esmfold as mf  # noqa: PLC0415

    kinds = (mf.EsmFoldLinear, mf.EsmFoldInvariantPointAttention,
             mf.EsmFoldTriangularSelfAttentionBlock)
    for m in module.modules():
        if isinstance(m, kinds):
            # Unbound call: these branches never touch ``self``.
            mf.EsmFoldPreTrainedModel._init_weights(None, m)  # type: ignore[arg-type]


def sinusoidal_positions(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Transformer sinusoidal position encodings ``[length, dim]`` (Vaswani et al. 2017)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, device=device).float() / dim)
    enc = torch.zeros(length, dim, device=device)
    enc[:, 0::2] = torch.sin(pos * freq)
    enc[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return enc.to(dtype)


class PostQuantizer(nn.Module):
    """Bits ``[B, L, bits]`` -> decoder single features ``[B, L, post_dim]``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = self.dim = cfg.post_dim
        self.mlp = nn.Sequential(
            nn.LayerNorm(cfg.codebook_bits), nn.Linear(cfg.codebook_bits, d), nn.ReLU(),
            nn.Linear(d, d),
        )
        self.transformer = (
            nn.TransformerEncoder(
                nn.TransformerEncoderLayer(d, cfg.post_heads, 4 * d, cfg.dropout,
                                           batch_first=True, norm_first=True),
                cfg.post_layers,
                enable_nested_tensor=False,
            )
            if cfg.post_layers
            else None
        )
        self.norm = nn.LayerNorm(d)

    def forward(self, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # nn.TransformerEncoder has no positions of its own; add sinusoidal encodings of the
        # residue index (the reference's ESM-style transformer uses rotary positions).
        pos = sinusoidal_positions(codes.shape[1], self.dim, codes.device, codes.dtype)
        h = (self.mlp(codes) + pos) * mask[..., None]  # [B, L, post_dim]
        if self.transformer is not None:
            pad = ~mask
            # keep one key open in an all-padding row (avoids NaN attention)
            pad[:, 0] = pad[:, 0] & ~pad.all(dim=-1)
            h = self.transformer(h, src_key_padding_mask=pad)
        return self.norm(h) * mask[..., None]


def _trunk_config(cfg: ModelConfig):
    from transformers.models.esm.configuration_esm import (  # noqa: PLC0415
        StructureModuleConfig,
        TrunkConfig,
    )

    sm = StructureModuleConfig(
        sequence_dim=cfg.post_dim, pairwise_dim=cfg.pair_dim, ipa_dim=cfg.ipa_dim,
        resnet_dim=cfg.post_dim, num_heads_ipa=cfg.ipa_heads, num_qk_points=cfg.qk_points,
        num_v_points=cfg.v_points, dropout_rate=cfg.dropout, num_blocks=cfg.sm_blocks,
        num_transition_layers=1, num_resnet_blocks=2, num_angles=7, trans_scale_factor=10,
    )
    return TrunkConfig(
        num_blocks=cfg.trunk_blocks, sequence_state_dim=cfg.post_dim,
        pairwise_state_dim=cfg.pair_dim, sequence_head_width=cfg.seq_head_width,
        pairwise_head_width=cfg.pair_head_width, position_bins=cfg.position_bins,
        dropout=cfg.dropout, max_recycles=cfg.recycles, chunk_size=None,
        structure_module=sm,
    )


class StructureDecoder(nn.Module):
    """Post-quantization network + ESMFold trunk/structure module + heads."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from transformers.models.esm.modeling_esmfold import EsmFoldingTrunk  # noqa: PLC0415

        self.cfg = cfg
        self.post = PostQuantizer(cfg)
        self.trunk = EsmFoldingTrunk(_trunk_config(cfg))
        self.seq_to_pair = None
        if cfg.pair_from_sequence:
            from transformers.models.esm.modeling_esmfold import (  # noqa: PLC0415
                EsmFoldSequenceToPair,
            )

            # Without triangular blocks the pair state would carry positions only; this
            # ESMFold module gives it token information (the trunk blocks' own first step).
            self.seq_to_pair = EsmFoldSequenceToPair(cfg.post_dim, cfg.pair_dim // 2, cfg.pair_dim)
        self.distogram_head = nn.Linear(cfg.pair_dim, cfg.distogram_bins)
        self.aa_head = nn.Sequential(nn.LayerNorm(cfg.post_dim), nn.Linear(cfg.post_dim, NUM_AA))
        self.plddt_head = nn.Sequential(
            nn.LayerNorm(cfg.post_dim), nn.Linear(cfg.post_dim, cfg.post_dim), nn.ReLU(),
            nn.Linear(cfg.post_dim, LDDT_BINS),
        )
        init_esmfold_modules(self.trunk)

    def forward(self, codes: torch.Tensor, mask: torch.Tensor, recycles: int | None = None) -> dict:
        """Decode bits ``[B, L, bits]`` for residues in ``mask [B, L]``.

        Returns a dict with ``frames [S, B, L, 7]`` and ``positions [S, B, L, 14, 3]`` for every
        structure-module block S (atom14 order: N, CA, C, O first), ``distogram_logits
        [B, L, L, bins]``, ``aa_logits [B, L, 20]``, ``plddt_logits [B, L, 50]``.
        """
        b, l = mask.shape
        s = self.post(codes, mask)  # [B, L, C_s]
        if self.seq_to_pair is None:
            z = s.new_zeros(b, l, l, self.cfg.pair_dim)  # pair state initialised to zeros (spec)
        else:
            z = self.seq_to_pair(s)  # [B, L, L, pair_dim]
        residx = torch.arange(l, device=mask.device).expand(b, l)
        aatype = torch.zeros(b, l, dtype=torch.long, device=mask.device)
        if self.training:
            # As in AlphaFold2/ESMFold training: a uniformly drawn number of recycles (extra
            # no-grad passes) so that the recycling embeddings used at inference are trained;
            # always 0 would leave them at their random initialisation.
            n_rec = int(torch.randint(0, self.cfg.recycles + 1, ())) if self.cfg.recycles else 0
        else:
            n_rec = self.cfg.recycles if recycles is None else recycles
        # The triangular blocks multiply by the mask: it must be float.
        out = self.trunk(s, z, aatype, residx, mask.to(s.dtype), no_recycles=n_rec)
        pair = out["s_z"]
        dlogits = self.distogram_head(pair)
        dlogits = dlogits + dlogits.transpose(1, 2)  # [B, L, L, bins], symmetric
        return {
            "frames": out["frames"],
            "positions": out["positions"],
            "distogram_logits": dlogits,
            "aa_logits": self.aa_head(out["s_s"]),
            "plddt_logits": self.plddt_head(out["states"][-1].detach()),
        }

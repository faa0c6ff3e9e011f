"""Decoder: quantized bits -> backbone, built from transformers' ESMFold modules.

:class:`StructureDecoder` is the reference's decoder (the released DPLM-2 tokenizer's layers):
post-quantization = LayerNorm + MLP (bits -> post_dim -> post_dim, ReLU) + ESM-style pre-LN
transformer layers with rotary positions (:class:`RotaryTransformerLayer`) + a final LayerNorm;
ESMFold's input MLP (``esm_s_mlp``); ``EsmFoldingTrunk`` (triangular blocks, optional:
``trunk_blocks = 0`` keeps only its relative-position pair embedding, the recycling machinery
and the structure module) fed with those features instead of ESM2 embeddings and a pair state
initialised to zeros, with ``EsmFoldStructureModule`` (IPA) inside it; ESMFold's heads
(23-class amino-acid head, per-atom37 lDDT head read at CA, distogram ``(d + d^T) / 2``). The
decoder never sees the amino-acid sequence: ``aatype`` is all zeros (alanine), so the
side-chain machinery builds only a backbone, and the residue types come from its own head.
The pLDDT head reads detached structure-module states: it learns the decoder's confidence
without shaping it.

:class:`CompactDecoder` (config ``tokenizer.model.decoder: compact``, the CPU demo's) differs in
three small layers only: an ``nn.TransformerEncoder`` with sinusoidal residue-index encodings
after the MLP, no input MLP before the trunk, and plain heads (20 types, one lDDT distribution
per residue, distogram ``d + d^T``). Measured on the overfit benchmark (2026-12-04, 400 steps,
``python bench/tokenizer_overfit.py --steps 400 --threads 1`` with and without
``--model '{"decoder": "reference"}'``, docs/results.md): median CA-RMSD 8.9 A and 145 codes in
use for the compact decoder vs 13.1 A and 32 codes for the reference's layers at the same
size and steps, so the small model keeps its variant.

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
NUM_AA_ESMFOLD = 23  # ESMFold's lm_head: restypes, X, two unused classes
LDDT_BINS = 50
ATOM37, CA_ATOM37 = 37, 1  # residue_constants.atom_types: N, CA, C, ...


def init_esmfold_modules(module: nn.Module) -> None:
    """Apply ESMFold's weight initialisation to every ESMFold submodule of ``module``.

    Only the branches of ``EsmFoldPreTrainedModel._init_weights`` that do not need a model
    config are used (EsmFoldLinear init modes, IPA head weights, zeroed triangular-block
    outputs); other layers keep PyTorch's defaults.
    """
    from transformers.models.esm import modeling_esmfold as mf

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


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` over the last axis (halves, not interleaved pairs)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotarySelfAttention(nn.Module):
    """Multi-head self-attention with rotary positions (RoFormer), ESM-2 style.

    ``q`` is scaled by ``head_dim ** -0.5`` before the rotation; the rotation angle of
    position ``t`` and frequency ``f`` is ``t * f`` with ``inv_freq = 10000 ** (-2i / head_dim)``
    (a persistent buffer, as in fair-esm), the two halves of each head rotate together.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """``x [B, L, D]``, ``pad [B, L]`` (True = padding key) -> ``[B, L, D]``."""
        b, l, _ = x.shape

        def split(t):
            return t.view(b, l, self.heads, self.head_dim).transpose(1, 2)  # [B, H, L, hd]

        q = split(self.q_proj(x) * self.head_dim**-0.5)
        k, v = split(self.k_proj(x)), split(self.v_proj(x))
        t = torch.arange(l, device=x.device, dtype=self.inv_freq.dtype)
        freqs = torch.outer(t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)  # [L, hd]
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        scores = q @ k.transpose(-1, -2)  # [B, H, L, L]
        scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        attn = scores.float().softmax(-1).to(x.dtype)
        attn = nn.functional.dropout(attn, self.dropout, self.training)
        out = (attn @ v).transpose(1, 2).reshape(b, l, -1)
        return self.out_proj(out)


class RotaryTransformerLayer(nn.Module):
    """Pre-LN transformer layer of ESM-2 (fair-esm ``TransformerLayer`` with rotary positions,
    no key/value bias): ``x + attn(LN(x))``, then ``x + fc2(gelu(fc1(LN(x))))``, exact GELU,
    FFN width ``4 * dim``. Module names follow fair-esm."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = RotarySelfAttention(dim, heads, dropout)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), pad)
        h = nn.functional.gelu(self.fc1(self.final_layer_norm(x)))
        return x + self.fc2(h)


class PostQuantizer(nn.Module):
    """Bits ``[B, L, bits]`` -> decoder single features ``[B, L, post_dim]``: the reference's
    MLP, ESM-style layers with rotary positions (:class:`RotaryTransformerLayer`, positions
    inside the attention) and final LayerNorm (``emb_layer_norm_after``)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = self.dim = cfg.post_dim
        self.mlp = nn.Sequential(
            nn.LayerNorm(cfg.codebook_bits), nn.Linear(cfg.codebook_bits, d), nn.ReLU(),
            nn.Linear(d, d),
        )
        self.transformer = self.build_layers(cfg) if cfg.post_layers else None
        self.norm = nn.LayerNorm(d)

    def build_layers(self, cfg: ModelConfig) -> nn.Module:
        return nn.ModuleList(
            RotaryTransformerLayer(cfg.post_dim, cfg.post_heads, cfg.dropout)
            for _ in range(cfg.post_layers)
        )

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        return self.mlp(codes)

    def run_layers(self, h: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        for layer in self.transformer:
            h = layer(h, pad)
        return h

    def forward(self, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.embed(codes) * mask[..., None]  # [B, L, post_dim]
        if self.transformer is not None:
            pad = ~mask
            # keep one key open in an all-padding row (avoids NaN attention)
            pad[:, 0] = pad[:, 0] & ~pad.all(dim=-1)
            h = self.run_layers(h, pad)
        return self.norm(h) * mask[..., None]


class SinusoidalPostQuantizer(PostQuantizer):
    """The compact decoder's: ``nn.TransformerEncoder`` (pre-LN) over
    ``mlp(bits) + sinusoidal(residue index)`` (it has no positions of its own)."""

    def build_layers(self, cfg: ModelConfig) -> nn.Module:
        return nn.TransformerEncoder(
            nn.TransformerEncoderLayer(cfg.post_dim, cfg.post_heads, 4 * cfg.post_dim, cfg.dropout,
                                       batch_first=True, norm_first=True),
            cfg.post_layers,
            enable_nested_tensor=False,
        )

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        return self.mlp(codes) + sinusoidal_positions(codes.shape[1], self.dim, codes.device,
                                                      codes.dtype)

    def run_layers(self, h: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        return self.transformer(h, src_key_padding_mask=pad)


def _trunk_config(cfg: ModelConfig):
    from transformers.models.esm.configuration_esm import (
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
    """The reference's decoder: post-quantization network + ESMFold's input MLP, trunk /
    structure module and heads (module docstring)."""

    post_quantizer = PostQuantizer

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from transformers.models.esm.modeling_esmfold import EsmFoldingTrunk

        self.cfg = cfg
        self.post = self.post_quantizer(cfg)
        self.trunk = EsmFoldingTrunk(_trunk_config(cfg))
        self.seq_to_pair = None
        if cfg.pair_from_sequence:
            from transformers.models.esm.modeling_esmfold import (
                EsmFoldSequenceToPair,
            )

            # Without triangular blocks the pair state would carry positions only; this
            # ESMFold module gives it token information (the trunk blocks' own first step).
            self.seq_to_pair = EsmFoldSequenceToPair(cfg.post_dim, cfg.pair_dim // 2, cfg.pair_dim)
        d = cfg.post_dim
        self.trunk_input = self.build_trunk_input(d)
        self.distogram_head = nn.Linear(cfg.pair_dim, cfg.distogram_bins)
        self.aa_head, self.plddt_head = self.build_heads(d)
        init_esmfold_modules(self.trunk)

    def build_trunk_input(self, d: int) -> nn.Module | None:
        """ESMFold's ``esm_s_mlp``."""
        return nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))

    def build_heads(self, d: int) -> tuple[nn.Module, nn.Module]:
        """ESMFold's ``lm_head`` (23 classes: 20 types, X, 2 unused) and ``lddt_head`` (per
        atom37, no non-linearity between its linear layers, hidden width ``d``)."""
        return nn.Linear(d, NUM_AA_ESMFOLD), nn.Sequential(
            nn.LayerNorm(d), nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, ATOM37 * LDDT_BINS),
        )

    def read_heads(self, dlogits, aa_logits, plddt_logits):
        """Head outputs -> ``distogram [B, L, L, bins]``, ``aa [B, L, 20]``, ``plddt [B, L, 50]``."""
        # the 20 standard types only (the reference's argmax may also pick X); the per-residue
        # lDDT is the CA atom's
        return (dlogits / 2, aa_logits[..., :NUM_AA],
                plddt_logits.unflatten(-1, (ATOM37, LDDT_BINS))[..., CA_ATOM37, :])

    def forward(self, codes: torch.Tensor, mask: torch.Tensor, recycles: int | None = None) -> dict:
        """Decode bits ``[B, L, bits]`` for residues in ``mask [B, L]``.

        Returns a dict with ``frames [S, B, L, 7]`` and ``positions [S, B, L, 14, 3]`` for every
        structure-module block S (atom14 order: N, CA, C, O first), ``distogram_logits
        [B, L, L, bins]``, ``aa_logits [B, L, 20]``, ``plddt_logits [B, L, 50]``.
        """
        b, l = mask.shape
        s = self.post(codes, mask)  # [B, L, C_s]
        if self.trunk_input is not None:
            s = self.trunk_input(s)
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
        dlogits = self.distogram_head(out["s_z"])
        dlogits, aa_logits, plddt_logits = self.read_heads(
            dlogits + dlogits.transpose(1, 2),  # symmetric
            self.aa_head(out["s_s"]),
            self.plddt_head(out["states"][-1].detach()),
        )
        return {
            "frames": out["frames"],
            "positions": out["positions"],
            "distogram_logits": dlogits,
            "aa_logits": aa_logits,
            "plddt_logits": plddt_logits,
        }


class CompactDecoder(StructureDecoder):
    """The CPU demo's decoder (``decoder: compact``): sinusoidal post-quantization
    transformer, no input MLP, plain heads (module docstring for the measurement)."""

    post_quantizer = SinusoidalPostQuantizer

    def build_trunk_input(self, d: int) -> None:
        return None

    def build_heads(self, d: int) -> tuple[nn.Module, nn.Module]:
        return nn.Sequential(nn.LayerNorm(d), nn.Linear(d, NUM_AA)), nn.Sequential(
            nn.LayerNorm(d), nn.Linear(d, d), nn.ReLU(), nn.Linear(d, LDDT_BINS),
        )

    def read_heads(self, dlogits, aa_logits, plddt_logits):
        return dlogits, aa_logits, plddt_logits


#: ``tokenizer.model.decoder`` -> class.
DECODERS = {"reference": StructureDecoder, "compact": CompactDecoder}


def build_decoder(cfg: ModelConfig) -> StructureDecoder:
    return DECODERS[cfg.decoder](cfg)

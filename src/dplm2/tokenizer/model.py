"""The structure tokenizer: encoder -> LFQ -> decoder, and its training loss.

Batches are dicts of padded tensors (see :mod:`dplm2.tokenizer.data`):
``coords [B, L, 4, 3]`` (N, CA, C, O; zeros where missing), ``atom_mask [B, L, 4]`` bool,
``mask [B, L]`` bool (observed residue: N, CA, C present), ``aatype [B, L]`` long (0-19,
-1 for X / unknown).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from dplm2.tokenizer import losses as L
from dplm2.tokenizer.config import LossConfig, ModelConfig
from dplm2.tokenizer.decoder import build_decoder
from dplm2.tokenizer.encoder import LocalFrameEncoder
from dplm2.tokenizer.quantizer import Quantizer, QuantizerOutput


def build_encoder(cfg: ModelConfig) -> nn.Module:
    """The encoder ``cfg.encoder`` names (``esm_if1`` imports fair-esm here)."""
    if cfg.encoder == "esm_if1":
        from dplm2.tokenizer.gvp import GVPTransformerEncoder

        return GVPTransformerEncoder(cfg)
    return LocalFrameEncoder(cfg)


class StructureTokenizer(nn.Module):
    """VQ-VAE with lookup-free quantization over backbone structure (DPLM-2 section 2).

    Parameters
    ----------
    cfg : ModelConfig
        Architecture.
    loss : LossConfig, optional
        Loss weights; the LFQ entropy/commitment weights and temperature are baked into the
        quantizer, everything else is read at loss time.
    encoder : nn.Module, optional
        Use this encoder instead of building the one ``cfg.encoder`` names (the released
        tokenizer without fair-esm gets a stand-in that explains why it cannot tokenize).
    """

    def __init__(self, cfg: ModelConfig, loss: LossConfig | None = None,
                 encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.loss_cfg = loss or LossConfig.from_dict()
        self.encoder = encoder if encoder is not None else build_encoder(cfg)
        self.quantizer = Quantizer(cfg, self.loss_cfg)
        self.decoder = build_decoder(cfg)

    # -- inference ------------------------------------------------------------------------
    def quantize(self, coords: torch.Tensor, atom_mask: torch.Tensor, mask: torch.Tensor) -> QuantizerOutput:
        """Encoder + quantizer on a padded batch."""
        h = self.encoder(coords, atom_mask, mask)  # [B, L, encoder_dim]
        return self.quantizer(h, mask)

    @torch.no_grad()
    def tokenize(self, coords: torch.Tensor, atom_mask: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, L]`` (int64); residues outside ``mask`` get :attr:`ModelConfig.unknown_token`."""
        q = self.quantize(coords, atom_mask, mask)
        unk = torch.full_like(q.indices, self.cfg.unknown_token)
        return torch.where(mask, q.indices, unk)

    @torch.no_grad()
    def detokenize(self, tokens: torch.Tensor, recycles: int | None = None) -> dict[str, torch.Tensor]:
        """Decode tokens ``[B, L]`` (unknown token or negative = padding/unknown residue).

        Returns ``backbone [B, L, 4, 3]`` (N, CA, C, O of the last structure-module block),
        ``aatype [B, L]`` (argmax of the amino-acid head), ``plddt [B, L]`` (0-100) and
        ``mask [B, L]`` (residues that had a code).
        """
        mask = (tokens >= 0) & (tokens < self.cfg.codebook_size)
        codes = self.quantizer.indices_to_codes(tokens.clamp(0, self.cfg.codebook_size - 1))
        codes = codes * mask[..., None]
        out = self.decoder(codes.to(self._dtype()), mask, recycles=recycles)
        bins = out["plddt_logits"].shape[-1]
        centers = (torch.arange(bins, device=tokens.device, dtype=torch.float32) + 0.5) / bins
        plddt = (out["plddt_logits"].float().softmax(-1) * centers).sum(-1) * 100.0
        return {
            "backbone": out["positions"][-1][:, :, :4].float(),
            "aatype": out["aa_logits"].argmax(-1),
            "plddt": plddt,
            "mask": mask,
        }

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    # -- training -------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor], codes_override: torch.Tensor | None = None) -> dict[str, Any]:
        """Encode, quantize and decode ``batch``; returns decoder outputs + quantizer output.

        ``codes_override [B, L, bits]`` decodes given codes instead (used by the shuffled-token
        control in validation).
        """
        mask = batch["mask"]
        q = self.quantize(batch["coords"], batch["atom_mask"], mask)
        codes = q.quantized if codes_override is None else codes_override
        out = self.decoder(codes, mask)
        out["quant"] = q
        return out

    def loss(self, batch: dict[str, torch.Tensor], out: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """The spec's loss: weighted sum * sqrt(min(mean length, crop length)).

        Non-finite terms are zeroed (as the reference does) *and* reported in the metrics as
        ``nonfinite_<term>`` so that the skip is never silent.
        """
        c = self.loss_cfg
        mask, coords = batch["mask"], batch["coords"].float()
        q: QuantizerOutput = out["quant"]
        positions = out["positions"].float()
        unclamped = None
        if self.training and c.fape_unclamped_fraction > 0:
            unclamped = torch.rand(mask.shape[0], device=mask.device) < c.fape_unclamped_fraction
        terms = {
            "fape": L.backbone_fape({"frames": out["frames"].float(), "positions": positions},
                                    coords, mask, c.fape_clamp, c.fape_length_scale,
                                    unclamped).mean(),
            "distogram": L.distogram_loss(out["distogram_logits"], coords, mask).mean(),
            "aa": L.aa_loss(out["aa_logits"], batch["aatype"], mask).mean(),
            "violation": L.violation_loss(positions[-1][:, :, :4], coords, mask,
                                          c.violation_clash).mean(),
            "plddt": L.plddt_loss(out["plddt_logits"], positions[-1][:, :, 1], coords[:, :, 1],
                                  mask).mean(),
            "codebook": q.aux_loss.float(),
        }
        weights = {"fape": c.fape, "distogram": c.distogram, "aa": c.aa, "violation": c.violation,
                   "plddt": c.plddt, "codebook": c.codebook}
        metrics: dict[str, float] = {}
        total = coords.new_zeros(())
        for name, value in terms.items():
            if not torch.isfinite(value):
                metrics[f"nonfinite_{name}"] = 1.0
                value = torch.zeros_like(value)
            total = total + weights[name] * value
            metrics[name] = float(value.detach())
        lengths = mask.float().sum(1)
        crop = mask.shape[1]
        scale = math.sqrt(min(float(lengths.mean()), crop)) if c.sqrt_length_scaling else 1.0
        metrics.update(
            entropy_per_sample=float(q.per_sample_entropy.detach()),
            entropy_codebook=float(q.codebook_entropy.detach()),
            commitment=float(q.commitment.detach()),
            bit_correlation=float(q.decorrelation) if q.decorrelation is not None else float("nan"),
            batch_codes_used=float(torch.unique(q.indices[mask]).numel()),
            length_scale=scale,
        )
        return total * scale, metrics


def num_parameters(model: nn.Module) -> int:
    """Trainable parameter count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

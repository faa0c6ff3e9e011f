"""Pre-quantization head + lookup-free quantization (LFQ, Yu et al. 2023, arXiv 2310.05737).

Spec (section 2): LayerNorm -> Linear(d -> 13) -> ReLU -> Linear(13 -> 13), padding zeroed, then
each of the 13 dimensions is quantized to -1/+1 by its sign; the token is the bit string read
big-endian (dimension 0 = most significant bit), 2^13 = 8192 codes, no codebook lookup.
Quantization, the straight-through estimator, the entropy loss (per-sample entropy minus
codebook entropy, temperature 0.01) and the commitment loss come from
``vector_quantize_pytorch.LFQ`` (fed the observed residues only, so padding never counts;
see :meth:`Quantizer.forward` for why not its ``mask=`` argument).

Codebook collapse and the fix
-----------------------------
With an encoder trained from scratch the spec's head collapses to one code within ~20 steps:
the 13 ReLU units die (all pre-activations negative), the second linear then outputs its bias,
every residue gets the same bits, and the LFQ entropy term has no gradient left (at temperature
0.01 the code distribution is one-hot unless a value is within ~0.01 of zero). Standardising the
13 outputs per bit kept ~50 codes alive. What keeps far more alive (``bit_standardize``) is
a masked, affine-free standardisation at *both* places where the signal can degenerate:

1. before the ReLU -- every hidden unit is positive on about half of the residues of every
   batch, so no unit can die (batch-norm before the non-linearity, the classic dead-ReLU fix);
2. before the sign -- every bit is balanced across the batch, so a bit can only be constant if
   the encoder gives it no information at all.

Both are masked *batch renormalisations* (Ioffe 2017): the forward value always uses running
averages of the per-bit mean/variance over observed residues, in training as in evaluation,
while the gradient flows through the batch statistics (as in ``BatchNorm1d``). A chain's tokens
therefore never depend on which other chains share its batch, and evaluation gives exactly the
bits the decoder was trained on. (A plain batch norm -- batch statistics in training, running
averages at inference -- was the cause of the tokenizer "barely learning": 13 bits near zero
each flip for a few % of residues between the two, so only ~10% of eval-mode tokens equalled
the train-mode tokens of the same residues after 150 steps, and validation decoded tokens the
decoder had never seen.)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from dplm2.tokenizer.config import LossConfig, ModelConfig


def bits_to_indices(bits: torch.Tensor) -> torch.Tensor:
    """``[..., D]`` bits (bool, 0/1 or -1/+1: positive = 1) -> int64 codes, big-endian.

    >>> bits_to_indices(torch.tensor([[1, 0, 1], [-1, -1, 1]]))
    tensor([5, 1])
    """
    d = bits.shape[-1]
    weights = 2 ** torch.arange(d - 1, -1, -1, device=bits.device)  # MSB first
    return ((bits > 0).long() * weights).sum(-1)


def indices_to_bits(indices: torch.Tensor, num_bits: int) -> torch.Tensor:
    """Int codes ``[...]`` -> ``[..., num_bits]`` float in {-1, +1}, big-endian.

    >>> indices_to_bits(torch.tensor([5]), 3)
    tensor([[ 1., -1.,  1.]])
    """
    weights = 2 ** torch.arange(num_bits - 1, -1, -1, device=indices.device)
    on = (indices[..., None].long() & weights) != 0
    return on.float() * 2.0 - 1.0


class MaskedStandardize(nn.Module):
    """Affine-free standardisation per feature over observed residues (masked batch renorm).

    Training: updates running averages of the mean/variance of the observed positions with
    ``momentum`` (the first training batch initialises them) and returns ``(x - mean_B) / std_B
    * r + d`` with ``r = sg(std_B / std_run)``, ``d = sg((mean_B - mean_run) / std_run)``: the
    value is ``(x - mean_run) / std_run`` exactly as in evaluation, the gradient that of batch
    norm. Evaluation: the running averages.
    """

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Weights saved before this buffer existed hold calibrated statistics: mark them used.
        key = prefix + "num_batches_tracked"
        if key not in state_dict and prefix + "running_mean" in state_dict:
            state_dict[key] = torch.ones((), dtype=torch.long)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x [B, L, F]``, ``mask [B, L]`` -> standardised ``x`` (zero outside ``mask``)."""
        if self.training and mask.sum() > 1:
            sel = x[mask].float()  # [N, F]
            mean = sel.mean(0)
            var = sel.var(0, unbiased=False)
            with torch.no_grad():
                m = 1.0 if int(self.num_batches_tracked) == 0 else self.momentum
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach(), m)
                self.num_batches_tracked += 1
            std_b = torch.sqrt(var + self.eps)
            std_r = torch.sqrt(self.running_var + self.eps)
            r = (std_b / std_r).detach()
            d = ((mean - self.running_mean) / std_r).detach()
            renorm = (x.float() - mean) / std_b * r + d
        y = (x.float() - self.running_mean) * torch.rsqrt(self.running_var + self.eps)
        if self.training and mask.sum() > 1:
            # value bit-identical to evaluation (signs near zero must not flip), batch-norm grad
            y = y.detach() + (renorm - renorm.detach())
        return (y * mask[..., None]).to(x.dtype)


def bit_decorrelation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared off-diagonal correlation of the bit values ``x [N, bits]`` (0 = uncorrelated).

    The covariance term of VICReg (Bardes et al. 2022), on correlations. Balanced bits (see
    :class:`MaskedStandardize`) can still be copies of each other: 13 bits that follow three
    underlying features give at most 2^3 codes. This is what happened once a decoder could
    reconstruct its few training chains from positions alone (measured: 55 -> 9 codes in 600
    overfit steps while the LFQ entropy term, one-hot at temperature 0.01, gave no gradient).
    """
    if x.shape[0] < 3:
        return x.sum() * 0.0
    xc = x.float() - x.float().mean(0)
    cov = xc.T @ xc / (x.shape[0] - 1)
    std = cov.diagonal().clamp(min=1e-6).sqrt()
    corr = cov / (std[:, None] * std[None, :])
    d = corr.shape[0]
    off = corr - torch.diag(corr.diagonal())
    return (off**2).sum() / (d * (d - 1))


class QuantizerOutput(NamedTuple):
    """What :class:`Quantizer` returns."""

    quantized: torch.Tensor  # [B, L, D] in {-1, +1} (straight-through while training), 0 at padding
    indices: torch.Tensor  # [B, L] int64 codes
    aux_loss: torch.Tensor  # scalar: entropy * w_e + commitment * w_c
    per_sample_entropy: torch.Tensor
    codebook_entropy: torch.Tensor
    commitment: torch.Tensor
    decorrelation: torch.Tensor | None = None  # mean squared off-diagonal bit correlation


class Quantizer(nn.Module):
    """Pre-quantization head + LFQ with ``2 ** codebook_bits`` codes."""

    def __init__(self, cfg: ModelConfig, loss: LossConfig | None = None) -> None:
        super().__init__()
        from vector_quantize_pytorch import LFQ

        loss = loss or LossConfig.from_dict()
        d, bits = cfg.encoder_dim, cfg.codebook_bits
        self.num_bits = bits
        self.norm = nn.LayerNorm(d)
        self.proj = nn.Linear(d, bits)
        self.act = nn.ReLU()
        self.mix = nn.Linear(bits, bits)
        self.std_hidden = MaskedStandardize(bits) if cfg.bit_standardize else None
        self.std_bits = MaskedStandardize(bits) if cfg.bit_standardize else None
        self.inv_temperature = 1.0 / loss.entropy_temperature
        self.decorrelation_weight = loss.bit_decorrelation
        self.lfq = LFQ(
            dim=bits,
            codebook_size=2**bits,
            entropy_loss_weight=loss.entropy,
            commitment_loss_weight=loss.commitment,
            frac_per_sample_entropy=loss.frac_per_sample_entropy,
        )

    def pre_quantize(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encoder features ``[B, L, d]`` -> continuous bit values ``[B, L, bits]`` (0 at padding)."""
        x = self.proj(self.norm(h))
        if self.std_hidden is not None:
            x = self.std_hidden(x, mask)
        x = self.mix(self.act(x))
        if self.std_bits is not None:
            x = self.std_bits(x, mask)
        return x * mask[..., None]

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> QuantizerOutput:
        """Quantize encoder features; LFQ losses count observed residues only."""
        x = self.pre_quantize(h, mask)
        # LFQ's ``mask=`` path is broken in vector-quantize-pytorch 1.32: after ``x[mask]`` it
        # flattens the (now absent) batch axis into the code axis, so the "codebook" entropy is
        # computed per residue, equals the per-sample entropy and the diversity term cancels
        # (checked: both are 0.079 with mask=, 0.079 vs 4.68 without). We therefore hand LFQ the
        # observed residues only, as one sequence ``[1, N, bits]``: padding still never counts.
        if not bool(mask.any()):
            zero = x.sum() * 0.0
            return QuantizerOutput(torch.zeros_like(x), bits_to_indices(x), zero, zero, zero, zero)
        sel = x[mask][None]  # [1, N, bits]
        (q_sel, _, aux), (ps_ent, cb_ent, commit) = self.lfq(
            sel, inv_temperature=self.inv_temperature, return_loss_breakdown=True
        )
        quantized = torch.zeros_like(x)
        quantized[mask] = q_sel[0].to(x.dtype)  # back to [B, L, bits], 0 at padding
        # LFQ's own indices equal bits_to_indices(x); recompute so eval and train agree exactly.
        indices = bits_to_indices(x)
        decor = None  # a training diagnostic (and optional loss): not computed when tokenizing
        if self.training:
            decor = bit_decorrelation(sel[0])
            if self.decorrelation_weight > 0:
                aux = aux + self.decorrelation_weight * decor
        return QuantizerOutput(quantized, indices, aux, ps_ent, cb_ent, commit, decor)

    @torch.no_grad()
    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, L]`` -> the quantized vectors ``[B, L, bits]`` the decoder consumes."""
        return indices_to_bits(indices, self.num_bits)

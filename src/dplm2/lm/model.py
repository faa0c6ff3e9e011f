"""DPLM-2 on Hugging Face's ``EsmForMaskedLM``: two halves, shared positions, one 8229-id head.

The network is an unmodified ``transformers`` ESM (pre-LN, rotary); what DPLM-2 adds lives in
:class:`DPLM2LM` around it:

* input ids are embedded by the ESM embedding table, rescaled by ESM's token dropout as the
  reference applies it (``dplm2_token_dropout_passes`` times: 2 for the reference's models,
  :func:`official_token_dropout`), and fed as ``inputs_embeds``, with **per-half position
  ids** (:func:`dplm2.lm.vocab.position_ids`); a batch holding one modality alone
  (sequence- or backbone-only generation) runs as one sequence with positions 0..N-1, as the
  reference's rotary embedding does (:func:`is_paired`);
* an additive **attention bias** (B, 1, N, N) hides padding and, for single-modality samples,
  blocks attention across halves (:func:`attention_allowed`);
* logits are over the **full 8229-id vocabulary**, as in the reference's loss and decoding:
  training scores only the masked positions (``select``), decoding only the generated ones
  (:meth:`DPLM2LM.vocab_log_probs`).

The exported model is a plain ``EsmForMaskedLM`` folder (``config.json`` +
``model.safetensors``) plus the vocabulary files; :meth:`DPLM2LM.from_pretrained` reads it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dplm2.config import ConfigError, StageConfig
from dplm2.lm.vocab import (
    MASK,
    N_AA,
    PAD,
    STRUCT_START,
    VOCAB_SIZE,
    DPLM2Vocab,
    position_ids,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TransformerConfig(StageConfig):
    """Network size for a from-scratch model (a warm start takes the checkpoint's size).

    Defaults are the demo size (hidden 128, 4 layers, 4 heads, FFN 512: 1.87M parameters with
    tied embeddings, 2.92M untied). ``tie_embeddings`` shares the input embedding matrix with
    the LM head's output projection, as ESM2 does: half the vocabulary-sized parameters (and
    their AdamW state), and on tiny from-scratch runs measured to learn faster. Warm starts
    keep DPLM-2's untied matrices whatever this says (spec §4: both are trained).
    """

    SECTION = "lm.init.model"

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    dropout: float
    max_position_embeddings: int
    attn_implementation: str
    tie_embeddings: bool

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}"
            )

    def esm_config(self):
        """The matching ``transformers.EsmConfig`` with the DPLM-2 vocabulary."""
        from transformers import EsmConfig

        cfg = EsmConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            # EsmConfig wants floats here (an int 0 breaks nn.Dropout's repr/serialisation).
            hidden_dropout_prob=float(self.dropout),
            attention_probs_dropout_prob=float(self.dropout),
            max_position_embeddings=self.max_position_embeddings,
            position_embedding_type="rotary",
            pad_token_id=PAD,
            mask_token_id=MASK,
            token_dropout=False,
            emb_layer_norm_before=False,
            layer_norm_eps=1e-5,
            tie_word_embeddings=bool(self.tie_embeddings),
        )
        return mark_dplm2(cfg, tied=bool(self.tie_embeddings))


#: Config attribute: how many times ESM's token-dropout rescaling is applied to the input
#: embeddings, in training and at inference alike. 2 for the released DPLM-2 checkpoints and
#: for models built here from ESM2/DPLM/DPLM-2 weights or from scratch by default
#: (``lm.init.token_dropout_passes``): the reference wrapper embeds the ids and its network
#: then embeds them again, both with ``token_dropout`` on (spec §4; :mod:`dplm2.lm.official`).
#: Absent (older models of this project) or 0: no rescaling.
TOKEN_DROPOUT_PASSES = "dplm2_token_dropout_passes"


def official_token_dropout(emb: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """ESM's inference-time token-dropout rescaling, as the released DPLM-2 weights expect it.

    ``<mask>`` (amino-acid mask, id 32) rows are zeroed, the rest scaled by
    ``(1 - 0.15 * 0.8) / (1 - masked fraction)`` per sample (fraction over non-pad tokens),
    and padding rows zeroed. (B, N, H) -> (B, N, H).
    """
    valid = input_ids != PAD  # (B, N)
    masked = input_ids == MASK  # (B, N)
    ratio = masked.sum(-1).float() / valid.sum(-1).clamp(min=1).float()  # (B,)
    scale = (1 - 0.15 * 0.8) / (1 - ratio)  # (B,)
    emb = emb.masked_fill(masked[..., None], 0.0) * scale[:, None, None].to(emb.dtype)
    return emb * valid[..., None].to(emb.dtype)


def mark_dplm2(cfg, tied: bool = False, token_dropout_passes: int | None = None):
    """Put the DPLM-2 layout into an ``EsmConfig`` (so an exported config.json says what it is).

    ESM's own ``token_dropout`` flag is switched off (the model feeds ``inputs_embeds``, where
    transformers skips it anyway); the rescaling is done by :class:`DPLM2LM` as many times as
    the :data:`TOKEN_DROPOUT_PASSES` attribute says, which ``token_dropout_passes`` sets when
    given (left as is when None). ``tied``: whether the LM head's output matrix is the input
    embedding matrix (``tie_word_embeddings``; Hugging Face re-ties them on load, and the saved
    file then holds the matrix once).
    """
    cfg.vocab_size = VOCAB_SIZE
    cfg.token_dropout = False
    cfg.tie_word_embeddings = bool(tied)
    cfg.dplm2 = DPLM2Vocab().layout()
    if token_dropout_passes is not None:
        if token_dropout_passes < 0:
            raise ValueError(f"token_dropout_passes must be >= 0, got {token_dropout_passes}")
        setattr(cfg, TOKEN_DROPOUT_PASSES, int(token_dropout_passes))
    return cfg


def embeddings_tied(net) -> bool:
    """Whether ``net``'s LM-head output matrix is its input embedding matrix (one Parameter)."""
    return net.lm_head.decoder.weight is net.esm.embeddings.word_embeddings.weight


def untie_embeddings(net) -> None:
    """Give the LM head its own copy of the (tied) embedding matrix, in place; the config then
    says untied, so saved weights hold both matrices."""
    if embeddings_tied(net):
        net.lm_head.decoder.weight = nn.Parameter(net.lm_head.decoder.weight.detach().clone())
    net.config.tie_word_embeddings = False


def is_paired(input_ids: torch.Tensor) -> bool:
    """Whether a batch holds both modalities (two halves), as the reference decides it: over
    the whole batch, some non-pad id < 33 and some id >= 33. A batch of one modality alone
    (sequence-only or backbone-only generation) runs as one sequence with positions 0..N-1."""
    valid = input_ids != PAD
    aa = (valid & (input_ids < STRUCT_START)).any()
    struct = (input_ids >= STRUCT_START).any()
    return bool(aa & struct)


class Selected(NamedTuple):
    """Logits over the **full 8229-id vocabulary** at selected positions, one tensor per half.

    ``struct``: (Ns, 8229) at the selected positions of the structure half; ``aa``: (Na, 8229)
    at those of the amino-acid half; rows follow the row-major order of the selected positions
    within each half. (The training loss takes the softmax over all ids, as the reference, or
    over the modality's columns, ``lm.diffusion.softmax: modality``.)
    """

    struct: torch.Tensor
    aa: torch.Tensor


def attention_allowed(input_ids: torch.Tensor, single_modality: torch.Tensor | None) -> torch.Tensor:
    """(B, N, N) bool: may query i attend to key j?

    Keys that are padding are hidden. Rows with ``single_modality`` True only see keys in
    their own half (block-diagonal). Every query keeps at least its half's ``<cls>``/``<eos>``
    keys, so no row is all ``-inf`` (which would give NaN after softmax).
    """
    batch, n = input_ids.shape
    width = n // 2
    allow = (input_ids != PAD)[:, None, :].expand(batch, n, n)  # (B, N, N) key validity
    if single_modality is not None:
        half = torch.arange(n, device=input_ids.device) >= width  # (N,) False = structure
        same = half[:, None] == half[None, :]  # (N, N)
        blind = single_modality.bool()[:, None, None]  # (B, 1, 1)
        allow = allow & (~blind | same[None])
    return allow


def attention_bias(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive (B, 1, N, N) bias from :func:`attention_allowed`: 0 or the dtype's minimum."""
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min).unsqueeze(1)


def _active(module: nn.Module) -> nn.Module:
    """The trainable copy inside a peft ``ModulesToSaveWrapper`` (else the module itself).

    Hand-written because we call the LM head's sub-layers directly (to project onto one
    modality's rows only), which peft's wrapper does not forward."""
    saved = getattr(module, "modules_to_save", None)
    if isinstance(saved, nn.ModuleDict):
        name = module.active_adapter
        name = name[0] if isinstance(name, (list, tuple)) else name
        if name in saved and not getattr(module, "disable_adapters", False):
            return saved[name]
        return module.original_module
    return module


class DPLM2LM(nn.Module):
    """DPLM-2 language model around an ``EsmForMaskedLM`` (``net``; LoRA may be injected).

    Parameters
    ----------
    net : transformers.EsmForMaskedLM
        Network with the 8229-token vocabulary (see :mod:`dplm2.lm.warm_start`).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        vocab = net.config.vocab_size
        if vocab != VOCAB_SIZE:
            raise ValueError(f"network has vocab_size {vocab}, DPLM-2 needs {VOCAB_SIZE}")
        self.net = net
        self.vocab = DPLM2Vocab()

    @property
    def config(self):
        return self.net.config

    # -- the network --------------------------------------------------------------------
    def hidden_states(
        self, input_ids: torch.Tensor, single_modality: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Last hidden states (B, N, H) of a two-half input (B, N = 2W)."""
        return self._encode(input_ids, single_modality, all_layers=False)[-1]

    def layer_states(
        self, input_ids: torch.Tensor, single_modality: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Hidden states of every layer: ``num_layers + 1`` tensors (B, N, H).

        Entry 0 is the embedding output, entry k the residual stream after block k; the last
        entry is after ESM's final LayerNorm (what the LM head reads), equal to
        :meth:`hidden_states`.
        """
        return self._encode(input_ids, single_modality, all_layers=True)

    def _encode(
        self, input_ids: torch.Tensor, single_modality: torch.Tensor | None, all_layers: bool
    ) -> tuple[torch.Tensor, ...]:
        batch, n = input_ids.shape
        esm = self.net.esm
        if is_paired(input_ids):
            if n % 2:
                raise ValueError(f"input has {n} columns; two equal halves need an even number")
            pos = position_ids(batch, n // 2, input_ids.device)  # (B, N) restart per half
        else:  # one modality alone (sequence- or backbone-only): one run of positions
            pos = torch.arange(n, device=input_ids.device).expand(batch, n)
            single_modality = None
        emb = self._embed(input_ids)  # (B, N, H)
        # The embeddings module adds absolute positions / layer norm for ESM-1-style configs;
        # with inputs_embeds it skips ESM's token-dropout rescaling (see module docstring).
        emb = esm.embeddings(inputs_embeds=emb, position_ids=pos)
        dtype = torch.get_autocast_dtype(emb.device.type) if torch.is_autocast_enabled(
            emb.device.type
        ) else emb.dtype
        bias = attention_bias(attention_allowed(input_ids, single_modality), dtype)
        out = esm(inputs_embeds=emb, attention_mask=bias, position_ids=pos,
                  output_hidden_states=all_layers)
        if all_layers:
            return tuple(out.hidden_states)
        return (out.last_hidden_state,)  # (B, N, H)

    def _embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings (B, N, H): the embedding table's rows, rescaled by token dropout
        as many times as the config says (:data:`TOKEN_DROPOUT_PASSES`)."""
        emb = self.net.esm.embeddings.word_embeddings(input_ids)  # (B, N, H)
        for _ in range(int(getattr(self.config, TOKEN_DROPOUT_PASSES, 0) or 0)):
            emb = official_token_dropout(emb, input_ids)  # official checkpoints only
        return emb

    def _project(self, hidden: torch.Tensor, part: slice) -> torch.Tensor:
        """LM head restricted to vocabulary rows ``part``: (..., H) -> (..., len(part))."""
        head = _active(self.net.lm_head)
        x = head.layer_norm(F.gelu(head.dense(hidden)))  # ESM's head: dense, erf-GELU, LN
        return F.linear(x, head.decoder.weight[part], head.bias[part])

    def forward(
        self,
        input_ids: torch.Tensor,
        single_modality: torch.Tensor | None = None,
        select: torch.Tensor | None = None,
    ) -> torch.Tensor | Selected:
        """Run the model.

        Parameters
        ----------
        input_ids : (B, N=2W) long
            Structure half in columns [0, W), amino-acid half in [W, 2W).
        single_modality : (B,) bool, optional
            Rows whose halves must not attend to each other.
        select : (B, N) bool, optional
            Positions to score. Given: returns :class:`Selected` (full-vocabulary logits at
            those positions only: the training forward). Omitted: returns (B, N, V) logits
            with ``-inf`` outside each position's modality (structure half -> ids >= 33,
            amino-acid half -> < 33).
        """
        h = self.hidden_states(input_ids, single_modality)  # (B, N, H)
        width = input_ids.shape[1] // 2
        aa_part, st_part = slice(0, N_AA), slice(STRUCT_START, VOCAB_SIZE)
        if select is not None:
            full = slice(0, VOCAB_SIZE)
            st = self._project(h[:, :width][select[:, :width]], full)  # (Ns, V)
            aa = self._project(h[:, width:][select[:, width:]], full)  # (Na, V)
            return Selected(struct=st, aa=aa)
        st = self._project(h[:, :width], st_part)  # (B, W, 8196)
        aa = self._project(h[:, width:], aa_part)  # (B, W, 33)
        neg = torch.finfo(st.dtype).min
        out = h.new_full((*input_ids.shape, VOCAB_SIZE), neg, dtype=st.dtype)  # (B, N, V)
        out[:, :width, st_part] = st
        out[:, width:, aa_part] = aa.to(st.dtype)
        return out

    def vocab_log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """``log_softmax`` over all 8229 ids of the LM head at ``hidden`` (..., H): float32
        (..., V). The reference's decoding scores every position this way (spec §5), whatever
        its modality; the sampler restricts the result to the position's modality."""
        return self._project(hidden, slice(0, VOCAB_SIZE)).float().log_softmax(dim=-1)

    # -- save / load ------------------------------------------------------------------
    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write config.json + model.safetensors + vocabulary (no LoRA: merge it first)."""
        if any("lora_" in n for n, _ in self.net.named_parameters()):
            raise ValueError("save_pretrained: merge LoRA first (dplm2.lm.lora.merged_copy)")
        from dplm2.io.weights import record_checksum

        folder = Path(folder)
        self.net.save_pretrained(folder, safe_serialization=True)
        record_checksum(folder / "model.safetensors")
        self.vocab.save(folder)

    @classmethod
    def from_pretrained(
        cls, folder: str | os.PathLike, attn_implementation: str = "sdpa", **kwargs
    ) -> DPLM2LM:
        """Load an exported model folder (or hub id) written by :meth:`save_pretrained`;
        a folder's weights are checked against the hash recorded when they were written."""
        from transformers import EsmForMaskedLM

        from dplm2.io.weights import load_error, verify_weights

        weights = Path(str(folder)) / "model.safetensors"
        if weights.is_file():
            verify_weights(weights)
        try:
            net = EsmForMaskedLM.from_pretrained(
                str(folder), attn_implementation=attn_implementation, **kwargs
            )
        except Exception as exc:
            if not Path(str(folder)).is_dir():
                raise
            raise load_error(weights if weights.is_file() else folder, exc) from exc
        if Path(str(folder)).is_dir():
            DPLM2Vocab.load(folder)  # checks the layout files shipped with the weights
        return cls(net)

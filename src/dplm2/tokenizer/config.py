"""Typed configuration of the structure tokenizer (the ``tokenizer:`` section of config.yaml).

Four nested, frozen dataclasses, each checked on construction:

- :class:`ModelConfig` -- sizes of the encoder, quantizer, post-quantization network and the
  ESMFold-module decoder (saved as ``config.json`` beside the weights);
- :class:`LossConfig` -- loss weights and FAPE/LFQ constants (DPLM-2 spec section 2);
- :class:`DataConfig` -- cropping, batching and the validation set;
- ``train`` -- the shared :class:`dplm2.train.TrainConfig` (AdamW, schedule, checkpoints).

Defaults are the paper values where the spec gives them; ``config.yaml`` shrinks the model
for the 2-core demo, ``config/paper.yaml`` restates the paper values.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from dplm2.config import ConfigError, StageConfig
from dplm2.train import TrainConfig


#: The spec's tokenizer schedule: AdamW 5e-4, betas (0.9, 0.98), wd 0.01, linear decay to 1e-7
#: over 200k steps, clip 1.0, validation every 1000 steps.
PAPER_TRAIN: dict[str, Any] = {
    "max_steps": 200_000, "lr": 5e-4, "betas": [0.9, 0.98], "weight_decay": 0.01,
    "warmup_steps": 0, "start_lr": 1e-7, "end_lr": 1e-7, "decay_power": 1.0, "clip_norm": 1.0,
    "val_every": 1000, "ckpt_every": 1000, "precision": "auto",
}


@dataclasses.dataclass(frozen=True)
class ModelConfig(StageConfig):
    """Architecture of :class:`dplm2.tokenizer.model.StructureTokenizer`.

    Parameters
    ----------
    encoder : str
        ``local_frame`` (:class:`~dplm2.tokenizer.encoder.LocalFrameEncoder`, trained here) or
        ``esm_if1`` (ESM-IF1's GVP-Transformer through fair-esm,
        :class:`~dplm2.tokenizer.gvp.GVPTransformerEncoder`: the paper's and the released
        tokenizer's encoder; needs the optional fair-esm + torch_geometric; always frozen,
        loaded from ``TokenizerConfig.encoder_checkpoint`` for training).
    encoder_dim : int
        Width of the per-residue encoder features (the reference's GVP encoder: 512).
    encoder_neighbors : int
        Nearest neighbours (by CA distance) each residue sees (ESM-IF1: 30).
    encoder_rbf : int
        Radial basis functions for neighbour distances (0-20 A; ``local_frame`` only).
    encoder_message_layers : int
        Rounds of neighbour message passing before the transformer (ESM-IF1: 4 GVP layers).
    encoder_layers, encoder_heads : int
        Transformer encoder over residues after message passing (ESM-IF1: 8 layers, 8 heads).
    gvp_ffn_dim, gvp_node_scalar, gvp_node_vector, gvp_edge_scalar, gvp_edge_vector : int
        ``esm_if1`` only: transformer feed-forward width (2048) and the GVP-GNN's scalar/vector
        node (1024/256) and edge (32/1) channels.
    codebook_bits : int
        LFQ dimensions; ``2 ** codebook_bits`` codes (spec: 13 -> 8192).
    bit_standardize : bool
        Masked, affine-free standardisation (running statistics at inference) before the ReLU
        and before the sign of the pre-quantization head; keeps the codebook from collapsing
        when the encoder is trained from scratch (see ``quantizer.py``).
    post_dim, post_layers, post_heads : int
        Post-quantization MLP width and its transformer (spec: 128, 4 layers, 8 heads).
    trunk_blocks : int
        ESMFold triangular trunk blocks (spec: 4; 0 on CPU, each costs ~3 s/step there).
    pair_from_sequence : bool
        Initialise the pair state from the single state (ESMFold's ``SequenceToPair``) instead
        of zeros (spec). Only useful without trunk blocks, where the pair state would otherwise
        hold relative positions only and the distogram head could not see the tokens.
    pair_dim, seq_head_width, pair_head_width, position_bins : int
        Trunk pair state (spec 32), attention head widths, relative-position bins (spec 32).
    sm_blocks, ipa_dim, ipa_heads, qk_points, v_points : int
        Structure module (spec: 8 blocks, IPA hidden 16, 12 heads, 4 query/key, 8 value points).
    recycles : int
        Extra no-grad trunk passes at inference (0 = one pass; the reference's `max_recycles: 1` is
        0 here, as config/paper.yaml); training draws 0..recycles per step (AF2 practice).
    distogram_bins : int
        Distogram head bins between 2.3125 and 21.6875 A (spec 64).
    dropout : float
        Dropout in the transformers and the structure module.
    post_transformer : str
        Post-quantization transformer: ``sinusoidal`` (``nn.TransformerEncoder`` with
        sinusoidal residue-index encodings added to its input) or ``rotary`` (the reference's
        ESM-style pre-LN layers with rotary positions in the attention, exact GELU, 4x FFN),
        needed to load the released tokenizer (:mod:`dplm2.tokenizer.official`).
    trunk_input_mlp : bool
        ESMFold's input MLP (LayerNorm, Linear, ReLU, Linear; ``esm_s_mlp``) between the
        post-quantization network and the trunk, as in the reference decoder.
    heads : str
        ``dplm2`` (amino-acid head LayerNorm+Linear over 20 types, per-residue pLDDT MLP,
        distogram logits ``d + d^T``) or ``esmfold`` (the reference's ESMFold heads: amino-acid
        Linear over 23 classes of which the 20 standard types are used, per-atom37 lDDT head
        read at CA, distogram ``(d + d^T) / 2``).
    """

    encoder: str = "local_frame"
    encoder_dim: int = 512
    encoder_neighbors: int = 30
    encoder_rbf: int = 16
    encoder_message_layers: int = 2
    encoder_layers: int = 2
    encoder_heads: int = 8
    codebook_bits: int = 13
    bit_standardize: bool = True
    post_dim: int = 128
    post_layers: int = 4
    post_heads: int = 8
    trunk_blocks: int = 4
    pair_from_sequence: bool = False
    pair_dim: int = 32
    seq_head_width: int = 32
    pair_head_width: int = 32
    position_bins: int = 32
    sm_blocks: int = 8
    ipa_dim: int = 16
    ipa_heads: int = 12
    qk_points: int = 4
    v_points: int = 8
    recycles: int = 1
    distogram_bins: int = 64
    dropout: float = 0.0
    post_transformer: str = "sinusoidal"
    trunk_input_mlp: bool = False
    heads: str = "dplm2"
    gvp_ffn_dim: int = 2048
    gvp_node_scalar: int = 1024
    gvp_node_vector: int = 256
    gvp_edge_scalar: int = 32
    gvp_edge_vector: int = 1

    def __post_init__(self) -> None:
        if self.encoder not in ("local_frame", "esm_if1"):
            raise ConfigError(f"tokenizer.model.encoder must be local_frame|esm_if1, got "
                              f"{self.encoder!r}")
        positive = ("gvp_ffn_dim", "gvp_node_scalar", "gvp_node_vector", "gvp_edge_scalar",
                    "gvp_edge_vector", "encoder_dim", "encoder_neighbors", "encoder_rbf", "encoder_heads",
                    "codebook_bits", "post_dim", "post_heads", "pair_dim", "seq_head_width",
                    "pair_head_width", "position_bins", "sm_blocks", "ipa_dim", "ipa_heads",
                    "qk_points", "v_points", "distogram_bins")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"tokenizer.model.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("encoder_message_layers", "encoder_layers", "post_layers", "trunk_blocks",
                     "recycles"):
            if getattr(self, name) < 0:
                raise ConfigError(f"tokenizer.model.{name} must be >= 0")
        if self.codebook_bits > 15:
            raise ConfigError("tokenizer.model.codebook_bits must be <= 15 (tokens are int16)")
        for dim, heads, what in ((self.encoder_dim, self.encoder_heads, "encoder"),
                                 (self.post_dim, self.post_heads, "post")):
            if dim % heads:
                raise ConfigError(f"tokenizer.model.{what}_dim {dim} not divisible by heads {heads}")
        if self.post_dim % self.seq_head_width or self.pair_dim % self.pair_head_width:
            raise ConfigError("tokenizer.model: post_dim/pair_dim must be multiples of head widths")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"tokenizer.model.dropout must be in [0, 1), got {self.dropout}")
        if self.post_transformer not in ("sinusoidal", "rotary"):
            raise ConfigError("tokenizer.model.post_transformer must be sinusoidal|rotary, got "
                              f"{self.post_transformer!r}")
        if self.heads not in ("dplm2", "esmfold"):
            raise ConfigError(f"tokenizer.model.heads must be dplm2|esmfold, got {self.heads!r}")
        if self.post_transformer == "rotary" and (self.post_dim // self.post_heads) % 2:
            raise ConfigError("tokenizer.model: rotary positions need an even head width "
                              "(post_dim / post_heads)")

    @property
    def codebook_size(self) -> int:
        """Number of codes, ``2 ** codebook_bits``."""
        return 2**self.codebook_bits

    @property
    def unknown_token(self) -> int:
        """Token written for residues without a backbone (one past the last code)."""
        return self.codebook_size

    def to_json(self) -> str:
        """The ``config.json`` text saved beside the weights."""
        return json.dumps({"model_type": "dplm2-structure-tokenizer", **self.to_dict()},
                          indent=2, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class LossConfig(StageConfig):
    """Loss weights and constants (spec section 2: all weights 1.0 except violation 0.3).

    ``fape_unclamped_fraction``: the share of chains whose FAPE is not clamped (AlphaFold2
    trains 10% of its batches unclamped, supplement 1.11.5, which pulls a wrong global topology
    -- e.g. a mirrored helix packing -- back; the spec clamps always, so 0 by default).
    ``plddt`` trains the confidence head on detached decoder states (written to the B-factor
    column of decoded files); it cannot change the tokens or the structure.
    """

    fape: float = 1.0
    fape_clamp: float = 10.0
    fape_length_scale: float = 10.0
    fape_unclamped_fraction: float = 0.0
    distogram: float = 1.0
    aa: float = 1.0
    violation: float = 0.3
    violation_clash: float = 1.0
    plddt: float = 0.01
    codebook: float = 1.0
    entropy: float = 0.1
    commitment: float = 0.25
    bit_decorrelation: float = 0.0
    entropy_temperature: float = 0.01
    frac_per_sample_entropy: float = 1.0
    sqrt_length_scaling: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and v < 0:
                raise ConfigError(f"tokenizer.loss.{f.name} must be >= 0, got {v}")
        if not 0.0 <= self.fape_unclamped_fraction <= 1.0:
            raise ConfigError("tokenizer.loss.fape_unclamped_fraction must be in [0, 1]")
        if not 0.0 < self.frac_per_sample_entropy <= 1.0:
            raise ConfigError("tokenizer.loss.frac_per_sample_entropy must be in (0, 1]")
        if self.entropy_temperature <= 0 or self.fape_length_scale <= 0:
            raise ConfigError("tokenizer.loss: temperature and FAPE length scale must be > 0")


@dataclasses.dataclass(frozen=True)
class DataConfig(StageConfig):
    """Which chains train, how they are cropped and batched, what validates.

    Parameters
    ----------
    crop_length : int
        Random contiguous crop for training (spec 512).
    batch_size : int
        Chains per optimiser micro-step and device (spec 5).
    min_length : int
        Chains with fewer observed residues are not used for training.
    max_train_chains : int
        Use at most this many training chains (0 = all); the demo and overfit runs use few.
    train_splits : list of str
        Splits that train (the chain shards' ``split`` column).
    val_split : str
        Split used for validation.
    val_max_chains, val_max_length : int
        Validation set size and the crop applied to long validation chains.
    random_crop_min : int
        0 = off. Otherwise half of the training chains are further cropped to a random length
        in ``[random_crop_min, length)`` (as the spec does for the LM): with few training chains
        the decoder can otherwise recognise a chain by its length and absolute positions and
        ignore the tokens.
    """

    crop_length: int = 512
    batch_size: int = 5
    min_length: int = 30
    max_train_chains: int = 0
    train_splits: tuple[str, ...] | list[str] = ("train",)
    val_split: str = "valid"
    val_max_chains: int = 32
    val_max_length: int = 512
    random_crop_min: int = 0

    def __post_init__(self) -> None:
        if self.random_crop_min < 0:
            raise ConfigError("tokenizer.data.random_crop_min must be >= 0 (0 = off)")
        if self.crop_length < 8 or self.batch_size < 1 or self.val_max_length < 8:
            raise ConfigError("tokenizer.data: crop_length/val_max_length >= 8, batch_size >= 1")
        if self.max_train_chains < 0 or self.val_max_chains < 0 or self.min_length < 1:
            raise ConfigError("tokenizer.data: chain counts must be >= 0, min_length >= 1")
        if not self.train_splits:
            raise ConfigError("tokenizer.data.train_splits must name at least one split")


@dataclasses.dataclass(frozen=True)
class TokenizeConfig(StageConfig):
    """Settings of the ``tokenize`` rule (the model itself comes from ``config.json``).

    ``device``: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:i]``. Tokens are
    computed in fp32 on every device so that CPU and GPU shards agree.
    """

    device: str = "auto"

    def __post_init__(self) -> None:
        if not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            raise ConfigError(f"tokenizer.tokenize.device must be auto|cpu|cuda[:i], got {self.device!r}")

    def resolve_device(self) -> str:
        """The torch device string to use."""
        import torch  # noqa: PLC0415

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device


@dataclasses.dataclass(frozen=True)
class TokenizerConfig(StageConfig):
    """The whole ``tokenizer:`` config section."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    #: ``model.encoder: esm_if1`` only: ESM-IF1's pretrained weights, kept frozen (the paper's
    #: encoder) -- a local fair-esm checkpoint or an http(s)/file URL (the workflow's
    #: ``fetch_tokenizer_encoder`` rule downloads it; training reads a local file).
    encoder_checkpoint: str | None = None
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    tokenize: TokenizeConfig = dataclasses.field(default_factory=TokenizeConfig)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(**PAPER_TRAIN))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "") -> TokenizerConfig:
        """Like :meth:`StageConfig.from_dict`, but keys missing from ``train`` fall back to the
        tokenizer's paper schedule (:data:`PAPER_TRAIN`), not the LM-oriented trainer defaults."""
        data = dict(data or {})
        where = where or "tokenizer"
        train = data.get("train")
        if train is None or isinstance(train, dict):
            data["train"] = TrainConfig.from_dict({**PAPER_TRAIN, **(train or {})}, f"{where}.train")
        return super().from_dict(data, where)

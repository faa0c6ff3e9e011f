"""Typed configuration of the structure tokenizer (the ``tokenizer:`` section of config.yaml).

Four nested, frozen dataclasses, each checked on construction:

- :class:`ModelConfig` -- sizes of the encoder, quantizer, post-quantization network and the
  ESMFold-module decoder (saved as ``config.json`` beside the weights);
- :class:`LossConfig` -- loss weights and FAPE/LFQ constants (DPLM-2 spec section 2);
- :class:`DataConfig` -- cropping, batching and the validation set;
- ``train`` -- the shared :class:`dplm2.train.TrainConfig` (AdamW, schedule, checkpoints).

Keys, defaults (the paper values where the spec gives them) and allowed values:
``dplm2/schemas/tokenizer.schema.yaml``; ``config.yaml`` shrinks the model for the 2-core demo.
"""

from __future__ import annotations

import dataclasses
import json

from dplm2.config import ConfigError, StageConfig
from dplm2.train import TrainConfig


@dataclasses.dataclass(frozen=True)
class ModelConfig(StageConfig):
    """Architecture of :class:`dplm2.tokenizer.model.StructureTokenizer` (each key's meaning:
    the schema's ``tokenizer.model``)."""

    SECTION = "tokenizer.model"

    encoder: str
    encoder_dim: int
    encoder_neighbors: int
    encoder_rbf: int
    encoder_message_layers: int
    encoder_layers: int
    encoder_heads: int
    codebook_bits: int
    bit_standardize: bool
    post_dim: int
    post_layers: int
    post_heads: int
    trunk_blocks: int
    pair_from_sequence: bool
    pair_dim: int
    seq_head_width: int
    pair_head_width: int
    position_bins: int
    sm_blocks: int
    ipa_dim: int
    ipa_heads: int
    qk_points: int
    v_points: int
    recycles: int
    distogram_bins: int
    dropout: float
    decoder: str
    gvp_ffn_dim: int
    gvp_node_scalar: int
    gvp_node_vector: int
    gvp_edge_scalar: int
    gvp_edge_vector: int

    def __post_init__(self) -> None:
        for dim, heads, what in ((self.encoder_dim, self.encoder_heads, "encoder"),
                                 (self.post_dim, self.post_heads, "post")):
            if dim % heads:
                raise ConfigError(f"tokenizer.model.{what}_dim {dim} not divisible by heads {heads}")
        if self.post_dim % self.seq_head_width or self.pair_dim % self.pair_head_width:
            raise ConfigError("tokenizer.model: post_dim/pair_dim must be multiples of head widths")
        if self.decoder == "reference" and (self.post_dim // self.post_heads) % 2:
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

    SECTION = "tokenizer.loss"

    fape: float
    fape_clamp: float
    fape_length_scale: float
    fape_unclamped_fraction: float
    distogram: float
    aa: float
    violation: float
    violation_clash: float
    plddt: float
    codebook: float
    entropy: float
    commitment: float
    bit_decorrelation: float
    entropy_temperature: float
    frac_per_sample_entropy: float
    sqrt_length_scaling: bool


@dataclasses.dataclass(frozen=True)
class DataConfig(StageConfig):
    """Which chains train, how they are cropped and batched, what validates (each key's
    meaning: the schema's ``tokenizer.data``)."""

    SECTION = "tokenizer.data"

    crop_length: int
    batch_size: int
    min_length: int
    max_train_chains: int
    train_splits: tuple[str, ...]
    val_split: str
    val_max_chains: int
    val_max_length: int
    random_crop_min: int


@dataclasses.dataclass(frozen=True)
class TokenizeConfig(StageConfig):
    """Settings of the ``tokenize`` rule (the model itself comes from ``config.json``).

    ``device``: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:i]``. Tokens are
    computed in fp32 on every device so that CPU and GPU shards agree.
    """

    SECTION = "tokenizer.tokenize"

    device: str

    def resolve_device(self) -> str:
        """The torch device string to use."""
        from dplm2.train.distributed import pick_device

        return str(pick_device(self.device))


@dataclasses.dataclass(frozen=True)
class TokenizerConfig(StageConfig):
    """The whole ``tokenizer:`` config section."""

    SECTION = "tokenizer"

    model: ModelConfig
    #: ``model.encoder: esm_if1`` only: ESM-IF1's pretrained weights, kept frozen (the paper's
    #: encoder) -- a local fair-esm checkpoint or an http(s)/file URL (the workflow's
    #: ``fetch_tokenizer_encoder`` rule downloads it; training reads a local file).
    encoder_checkpoint: str | None
    loss: LossConfig
    data: DataConfig
    tokenize: TokenizeConfig
    train: TrainConfig

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
    post_transformer: str
    trunk_input_mlp: bool
    heads: str
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
        import torch  # noqa: PLC0415

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device


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

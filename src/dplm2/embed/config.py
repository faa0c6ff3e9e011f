"""Typed configuration of the embedding stage (the ``embed:`` section of config.yaml)."""

from __future__ import annotations

import dataclasses

from dplm2.config import ConfigError, StageConfig

MODES = ("sequence", "structure", "both")
COMBINE = ("concat", "mean")
FORMATS = ("parquet", "npy")


@dataclasses.dataclass(frozen=True)
class EmbedConfig(StageConfig):
    """What to embed and how.

    Parameters
    ----------
    mode : {"sequence", "structure", "both"}
        ``sequence``: amino acids only (structure half all ``<mask_struct>``, halves blind to
        each other), vectors from the amino-acid half; ``structure``: structure tokens only
        (amino-acid half masked and blinded), vectors from the structure half; ``both``: both
        halves given, full attention, vectors of the two halves combined per residue.
    combine : {"concat", "mean"}
        How ``both`` joins residue i of the two halves: ``concat`` (width 2H) or ``mean`` (H).
    layers : list of int
        Hidden layers to read: 0 = embedding output, k = after block k, -1 = the last layer
        after ESM's final LayerNorm (what the LM head reads); negative counts from the end.
        One output row per protein and layer.
    per_residue : bool
        Also write the per-residue vectors (L x D per row; large).
    max_tokens : int
        Token budget of a batch, counted on one half (padded width x batch size).
    max_batch_size : int
        Most proteins in one batch.
    max_length : int
        Longer proteins are cut to their first ``max_length`` residues (flagged in the
        ``truncated`` column); 1022 fits ESM's 1026 positions with ``<cls>``/``<eos>``.
    format : {"parquet", "npy"}
        Used when the output path has no ``.parquet`` / ``.npy`` suffix.
    device : str
        ``auto`` (CUDA when available), ``cpu`` or ``cuda[:i]``.
    """

    mode: str = "both"
    combine: str = "concat"
    layers: tuple[int, ...] = (-1,)
    per_residue: bool = False
    max_tokens: int = 4096
    max_batch_size: int = 32
    max_length: int = 1022
    format: str = "parquet"
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        if self.mode not in MODES:
            raise ConfigError(f"embed.mode must be one of {MODES}, got {self.mode!r}")
        if self.combine not in COMBINE:
            raise ConfigError(f"embed.combine must be one of {COMBINE}, got {self.combine!r}")
        if self.format not in FORMATS:
            raise ConfigError(f"embed.format must be one of {FORMATS}, got {self.format!r}")
        if not self.layers:
            raise ConfigError("embed.layers: give at least one layer")
        if not 1 <= self.max_length <= 1022:
            raise ConfigError(f"embed.max_length must be in [1, 1022], got {self.max_length}")
        if self.max_tokens < self.max_length + 2:
            raise ConfigError(f"embed.max_tokens ({self.max_tokens}) must hold one protein "
                              f"(max_length + 2 = {self.max_length + 2})")
        if self.max_batch_size < 1:
            raise ConfigError("embed.max_batch_size must be >= 1")

    @property
    def needs_structure(self) -> bool:
        return self.mode in ("structure", "both")

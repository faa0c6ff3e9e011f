"""Typed configuration of the embedding stage (``embed.settings`` in config.yaml; keys, defaults
and allowed values in ``dplm2/schemas/embed.schema.yaml``)."""

from __future__ import annotations

import dataclasses

from dplm2.config import ConfigError, StageConfig


@dataclasses.dataclass(frozen=True)
class EmbedConfig(StageConfig):
    """What to embed and how (each key's meaning: the schema's ``embed.settings``)."""

    SECTION = "embed.settings"

    mode: str
    combine: str
    layers: tuple[int, ...]
    per_residue: bool
    max_tokens: int
    max_batch_size: int
    max_length: int
    format: str
    device: str

    def __post_init__(self) -> None:
        if self.max_tokens < self.max_length + 2:
            raise ConfigError(f"embed.max_tokens ({self.max_tokens}) must hold one protein "
                              f"(max_length + 2 = {self.max_length + 2})")

    @property
    def needs_structure(self) -> bool:
        return self.mode in ("structure", "both")

"""Typed stage configs built once from the validated Snakemake/YAML config.

Each stage defines a frozen dataclass subclassing :class:`StageConfig`; ``from_dict`` rejects
unknown keys with a message naming them, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T", bound="StageConfig")


class ConfigError(ValueError):
    """A config value is missing, unknown or of the wrong type."""


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Base class: nested dataclasses are built recursively from dicts."""

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
        data = dict(data or {})
        where = where or cls.__name__
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, value in data.items():
            hint = hints[name]
            sub = _dataclass_in(hint)
            if sub is not None and isinstance(value, dict):
                value = sub.from_dict(value, f"{where}.{name}")
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from exc

    @classmethod
    def from_json(cls: type[T], text: str, where: str = "") -> T:
        return cls.from_dict(json.loads(text) if text else {}, where)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _dataclass_in(hint: Any) -> type | None:
    if isinstance(hint, type) and issubclass(hint, StageConfig):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            if isinstance(arg, type) and issubclass(arg, StageConfig):
                return arg
    return None

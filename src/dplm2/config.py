"""The configuration's one source of truth: the JSON schemas in ``dplm2/schemas/``.

``config.schema.yaml`` and one ``<stage>.schema.yaml`` per section own every key's type,
default, allowed values and help text. Everything else reads them:

- the workflow validates its config against them (``Snakefile``) and fills their defaults with
  :func:`apply_schema_defaults` (``workflow/rules/common.smk``);
- each stage's CLI builds a frozen dataclass (a :class:`StageConfig`) with
  :meth:`StageConfig.from_dict`, which fills the same defaults, validates the section with
  ``jsonschema`` (errors name the key path) and builds the dataclass. The dataclasses hold field
  names and types only; checks relating several keys, which a schema cannot express, stay in
  their ``__post_init__``;
- ``tools/config_docs.py`` generates ``config/README.md`` (the key reference) from them.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

T = TypeVar("T", bound="StageConfig")

#: Folder of the schema files (package data, so an installed ``dplm2`` reads them too).
SCHEMAS = Path(__file__).resolve().with_name("schemas")
#: The whole config's schema; it refers to one file per section with ``$ref``.
CONFIG_SCHEMA = SCHEMAS / "config.schema.yaml"


class ConfigError(ValueError):
    """A config value is missing, unknown or of the wrong type."""


# --- the schema ----------------------------------------------------------------------------------
@functools.cache
def config_schema() -> dict[str, Any]:
    """The whole config's schema, the sections' ``$ref``s replaced by their files' content."""
    return _inline(_read(CONFIG_SCHEMA), SCHEMAS)


def _read(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _inline(node: Any, base: Path) -> Any:
    if isinstance(node, list):
        return [_inline(v, base) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _inline(v, base) for k, v in node.items() if k != "$ref"}
    if "$ref" in node:
        ref = base / node["$ref"]
        target = _inline(_read(ref), ref.parent)
        target.pop("$schema", None)  # only the whole document names its dialect
        out = {**target, **out}
    return out


def schema_node(section: str) -> dict[str, Any]:
    """The schema of one section, ``""`` for the whole config, ``"evaluate.folding"`` for a
    nested one."""
    node = config_schema()
    for i, key in enumerate(section.split(".") if section else []):
        props = node.get("properties", {})
        if key not in props:
            where = ".".join(section.split(".")[:i]) or "the config"
            raise ConfigError(f"{section}: {where} has no key {key!r} (schema {SCHEMAS})")
        node = props[key]
    return node


# --- defaults and validation (shared by the workflow and the CLIs) ------------------------------
def apply_schema_defaults(cfg: dict[str, Any], section: str = "") -> dict[str, Any]:
    """Fill the schema's defaults into ``cfg`` in place (and return it), recursively: a key left
    out takes its default; an object left out starts empty so its own keys' defaults apply; the
    entries of a map (``local.<label>``, ``embed.sets.<name>``) get their keys' defaults too."""
    _fill(schema_node(section), cfg)
    return cfg


def _fill(schema: dict[str, Any], node: dict[str, Any]) -> None:
    props = schema.get("properties", {})
    for key, sub in props.items():
        if key not in node:
            if "default" in sub:
                node[key] = copy.deepcopy(sub["default"])
            elif sub.get("type") == "object":
                node[key] = {}
        if isinstance(node.get(key), dict):
            _fill(sub, node[key])
    entries = schema.get("additionalProperties")
    if isinstance(entries, dict):
        for key, value in node.items():
            if key not in props and isinstance(value, dict):
                _fill(entries, value)


def validate(data: Any, section: str = "") -> None:
    """Check ``data`` against the schema of ``section``; one :class:`ConfigError` listing every
    problem, each with its key path (``evaluate.folding.backend: 'x' is not one of ...``)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema_node(section))
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise ConfigError("; ".join(_describe(e, section) for e in errors))


def _describe(error: Any, section: str) -> str:
    where = ".".join([section] * bool(section) + [str(p) for p in error.absolute_path]) or "config"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"{where}: unknown key(s) {unknown}; allowed: {allowed}"
    return f"{where}: {error.message}"


def _plain(value: Any) -> Any:
    """JSON-like copy of ``value``: dataclasses to dicts, tuples to lists, paths to strings."""
    if isinstance(value, StageConfig):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


# --- typed sections ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Base class of the typed sections: field names and types only, no defaults.

    ``SECTION`` is the schema section a class holds (``evaluate.folding``); a class used in
    several sections (the sampler, the trainer) is told which by ``from_dict``'s ``where``.
    """

    SECTION: ClassVar[str] = ""

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None = None, where: str = "") -> T:
        """Fill the schema defaults of section ``where`` (default ``SECTION``), validate, build."""
        section = where or cls.SECTION
        if not section:
            raise TypeError(f"{cls.__name__}.from_dict: give the schema section (where=...)")
        data = _plain(data or {})
        if not isinstance(data, dict):
            raise ConfigError(f"{section}: expected a mapping of keys, got {data!r}")
        apply_schema_defaults(data, section)
        validate(data, section)
        return cls._build(data, section)

    @classmethod
    def from_json(cls: type[T], text: str | None, where: str = "") -> T:
        """:meth:`from_dict` of a JSON object (``--params``); empty text = ``{}``."""
        try:
            data = json.loads(text) if text else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where or cls.SECTION}: not valid JSON ({exc})") from exc
        return cls.from_dict(data, where)

    @classmethod
    def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown, missing = sorted(set(data) - fields), sorted(fields - set(data))
        if unknown:  # the schema allows a key the class lacks: tests/test_config.py forbids it
            raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
        if missing:  # a key without a schema default was left out
            raise ConfigError(f"{where}: missing key(s) {missing}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, value in data.items():
            sub = _dataclass_in(hints[name])
            if sub is not None and isinstance(value, dict):
                value = sub._build(value, f"{where}.{name}")
            elif isinstance(value, list) and _is_tuple(hints[name]):
                value = tuple(value)
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def override(self: T, where: str = "", **changes: Any) -> T:
        """A copy with ``changes`` (command-line overrides), validated as :meth:`from_dict` does."""
        return type(self).from_dict({**self.to_dict(), **changes}, where)


def _options(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _dataclass_in(hint: Any) -> type[StageConfig] | None:
    for arg in _options(hint):
        if isinstance(arg, type) and issubclass(arg, StageConfig):
            return arg
    return None


def _is_tuple(hint: Any) -> bool:
    return any(typing.get_origin(arg) is tuple for arg in _options(hint))

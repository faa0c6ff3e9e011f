"""The lm schema and the dataclasses agree; every shipped config's lm section is valid."""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml

from dplm2.config import ConfigError
from dplm2.lm.train import LMConfig

from .helpers import REPO

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "lm.schema.yaml").read_text())


def _merge(a: dict, b: dict) -> dict:
    a = copy.deepcopy(a)
    for k, v in b.items():
        a[k] = _merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return a


def _check_defaults(schema: dict, defaults: dict, path: str) -> None:
    assert set(schema["properties"]) == set(defaults), path
    for key, prop in schema["properties"].items():
        if prop.get("type") == "object":
            _check_defaults(prop, defaults[key], f"{path}.{key}")
        else:
            value = defaults[key]
            value = list(value) if isinstance(value, tuple) else value
            assert prop["default"] == value, f"{path}.{key}"
            assert prop["description"], f"{path}.{key}"


def test_schema_defaults_are_dataclass_defaults():
    _check_defaults(SCHEMA, LMConfig().to_dict(), "lm")


@pytest.mark.parametrize("overlay", [None, "paper-150m.yaml", "paper-3b.yaml"])
def test_shipped_configs_validate(overlay):
    demo = yaml.safe_load((REPO / "config.yaml").read_text())["lm"]
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())["lm"]
    if overlay:
        paper = _merge(paper, yaml.safe_load((REPO / "config" / overlay).read_text())["lm"])
    for section in (demo, paper):
        jsonschema.validate(section, SCHEMA)
        LMConfig.from_dict(section, "lm")
    assert LMConfig.from_dict(paper).lora.enabled and LMConfig.from_dict(paper).init.source


def test_unknown_and_bad_keys_rejected():
    with pytest.raises(ConfigError, match="rnak"):
        LMConfig.from_dict({"lora": {"rnak": 4}})
    with pytest.raises(ConfigError, match="sum to 1"):
        LMConfig.from_dict({"diffusion": {"task_mix": {"folding": 0.9}}})
    with pytest.raises(ConfigError, match="max_tokens"):
        LMConfig.from_dict({"data": {"max_tokens": 100}})

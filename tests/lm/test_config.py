"""Every shipped config's lm section is valid; bad keys and values are rejected."""

from __future__ import annotations

import copy

import pytest
import yaml

from dplm2.config import ConfigError
from dplm2.lm.train import LMConfig

from .helpers import REPO

def _merge(a: dict, b: dict) -> dict:
    a = copy.deepcopy(a)
    for k, v in b.items():
        a[k] = _merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return a


@pytest.mark.parametrize("overlay", [None, "paper-150m.yaml", "paper-3b.yaml"])
def test_shipped_configs_validate(overlay):
    demo = yaml.safe_load((REPO / "config.yaml").read_text())["lm"]
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())["lm"]
    if overlay:
        paper = _merge(paper, yaml.safe_load((REPO / "config" / overlay).read_text())["lm"])
    for section in (demo, paper):
        LMConfig.from_dict(section)  # fills the schema defaults, validates, builds
    assert LMConfig.from_dict(paper).lora.enabled and LMConfig.from_dict(paper).init.source


def test_unknown_and_bad_keys_rejected():
    with pytest.raises(ConfigError, match="rnak"):
        LMConfig.from_dict({"lora": {"rnak": 4}})
    with pytest.raises(ConfigError, match="sum to 1"):
        LMConfig.from_dict({"diffusion": {"task_mix": {"folding": 0.9}}})
    with pytest.raises(ConfigError, match="max_tokens"):
        LMConfig.from_dict({"data": {"max_tokens": 100}})

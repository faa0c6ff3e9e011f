"""One source of truth for the configuration (dplm2.config): the schemas own every key's type,
default, allowed values and help; the typed sections hold names and types only and read the rest
from the schemas; the generated key reference (config/README.md) is current."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from dplm2.config import (
    ConfigError,
    StageConfig,
    apply_schema_defaults,
    config_schema,
    schema_node,
    validate,
)
from dplm2.download.config import DownloadConfig
from dplm2.embed.config import EmbedConfig
from dplm2.evaluate.config import EvaluateConfig, FoldingConfig
from dplm2.generate.config import GenerateConfig
from dplm2.lm.sampling import SamplerConfig
from dplm2.lm.train import LMConfig
from dplm2.process.config import ProcessConfig
from dplm2.tokenizer.config import TokenizerConfig
from dplm2.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]

#: The typed section each CLI builds, by the schema section it reads.
STAGES: dict[str, type[StageConfig]] = {
    "download": DownloadConfig,
    "process": ProcessConfig,
    "tokenizer": TokenizerConfig,
    "lm": LMConfig,
    "generate": GenerateConfig,
    "evaluate": EvaluateConfig,
    "embed.settings": EmbedConfig,
}


def _all_stage_classes() -> set[type[StageConfig]]:
    found, todo = set(), [StageConfig]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def _nested(cls: type[StageConfig], name: str) -> type[StageConfig] | None:
    hint = typing.get_type_hints(cls)[name]
    return hint if isinstance(hint, type) and issubclass(hint, StageConfig) else None


def _pairs(cls: type[StageConfig], section: str):
    """(class, schema section) of ``cls`` and every section nested in it."""
    yield cls, section
    for f in dataclasses.fields(cls):
        sub = _nested(cls, f.name)
        if sub is not None:
            yield from _pairs(sub, f"{section}.{f.name}")


def _leaves(node: dict, prefix: str = ""):
    props = node.get("properties", {})
    if prefix and (not props or node.get("type") != "object"):
        yield prefix, node
    for key, sub in props.items():
        yield from _leaves(sub, f"{prefix}.{key}" if prefix else key)
    entries = node.get("additionalProperties")
    if isinstance(entries, dict):
        for key, sub in entries.get("properties", {}).items():
            yield from _leaves(sub, f"{prefix}.<name>.{key}")


# --- (a) the dataclasses hold no defaults ------------------------------------------------------
def test_no_stage_config_field_has_a_default():
    classes = _all_stage_classes()
    assert len(classes) >= 30
    with_default = [f"{c.__module__}.{c.__name__}.{f.name}" for c in classes
                    for f in dataclasses.fields(c)
                    if f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING]
    assert not with_default, f"defaults belong in the schema: {with_default}"


# --- (b) fields and schema properties match, names and nesting ----------------------------------
@pytest.mark.parametrize("section", list(STAGES))
def test_fields_match_schema_properties(section):
    for cls, where in _pairs(STAGES[section], section):
        props = schema_node(where).get("properties", {})
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields == set(props), (
            f"{cls.__name__} ({where}): only in the class {sorted(fields - set(props))}, "
            f"only in the schema {sorted(set(props) - fields)}")
        for name in fields:  # a nested section is a nested class, and only then
            is_object = props[name].get("type") == "object" and "properties" in props[name]
            assert (_nested(cls, name) is not None) == is_object, f"{where}.{name}"


def test_every_stage_config_is_reached_and_its_section_exists():
    reached = {cls for section, root in STAGES.items() for cls, _ in _pairs(root, section)}
    assert reached == _all_stage_classes()
    for cls in reached:  # the default section of every class is one the class can hold
        props = schema_node(cls.SECTION).get("properties", {})
        assert set(props) == {f.name for f in dataclasses.fields(cls)}, cls.__name__


def test_every_key_has_a_description_and_a_default_or_is_required():
    missing_help, missing_default = [], []
    for key, node in _leaves(config_schema()):
        if not str(node.get("description", "")).strip():
            missing_help.append(key)
        if "default" not in node and key not in ("local.<name>.paths",):
            missing_default.append(key)
    assert not missing_help, f"schema keys without a description: {missing_help}"
    assert not missing_default, f"schema keys without a default: {missing_default}"


# --- (c) a command run by hand gets the schema's defaults ---------------------------------------
def _schema_defaults(section: str) -> dict:
    return apply_schema_defaults({}, section)


@pytest.mark.parametrize("section", list(STAGES))
def test_empty_section_is_the_schema_defaults(section):
    built = STAGES[section].from_dict({})
    assert json.loads(json.dumps(built.to_dict())) == _schema_defaults(section)


def test_hand_run_folds_with_the_workflow_backend():
    default = schema_node("evaluate.folding")["properties"]["backend"]["default"]
    assert FoldingConfig.from_json("", "evaluate.folding").backend == default == "dplm2"


def test_each_task_keeps_its_own_sampler_defaults():
    cfg = GenerateConfig.from_dict({"cogen": {"sampling": {"max_iter": 20}}})
    assert cfg.cogen.sampling.max_iter == 20
    assert cfg.cogen.sampling.strategy == "annealing@2.0:1.0"  # not folding's argmax
    assert cfg.folding.sampling.strategy == "argmax"
    assert SamplerConfig.from_dict({}) == cfg.folding.sampling
    assert TokenizerConfig.from_dict({}).train.max_steps == 200_000  # the tokenizer's schedule
    assert TrainConfig.from_dict({}).max_steps == 1000  # lm.train


@pytest.mark.parametrize("files", [["config.yaml"], ["config.yaml", "config/paper.yaml"],
                                   ["config.yaml", "config/paper.yaml", "config/paper-bit.yaml"]])
def test_workflow_and_commands_read_the_same_values(files):
    """The workflow fills the defaults into the whole config and passes sections on as JSON;
    a command given only the user's keys builds the same section."""
    config: dict = {}
    for f in files:
        config = _merge(config, yaml.safe_load((REPO / f).read_text()))
    raw = json.loads(json.dumps(config))
    validate(config)
    apply_schema_defaults(config)
    for section, cls in STAGES.items():
        head, *rest = section.split(".")
        user, filled = raw.get(head, {}), config[head]
        for key in rest:
            user, filled = user.get(key, {}), filled[key]
        assert cls.from_json(json.dumps(filled)) == cls.from_dict(user), section


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# --- errors name the key path --------------------------------------------------------------------
def test_errors_name_the_key_path():
    with pytest.raises(ConfigError, match=r"evaluate\.folding: unknown key\(s\) \['bakend'\]"):
        FoldingConfig.from_dict({"bakend": "esmfold"})
    with pytest.raises(ConfigError, match=r"evaluate\.folding\.backend: 'alphafold' is not one of"):
        FoldingConfig.from_dict({"backend": "alphafold"})
    with pytest.raises(ConfigError, match=r"generate\.cogen\.lengths\.1: 0 is less than"):
        GenerateConfig.from_dict({"cogen": {"lengths": [100, 0]}})
    with pytest.raises(ConfigError, match=r"lm\.train\.max_steps: 'x' is not of type 'integer'"):
        LMConfig.from_dict({"train": {"max_steps": "x"}})
    with pytest.raises(ConfigError, match=r"warmup_steps"):  # a cross-field check
        TrainConfig.from_dict({"max_steps": 10, "warmup_steps": 20})


def test_map_entries_get_their_defaults():
    cfg = apply_schema_defaults({"local": {"lab": {"paths": ["x.pdb"]}},
                                 "embed": {"sets": {"mine": {"paths": ["a.fasta"]}}}})
    assert cfg["local"]["lab"] == {"paths": ["x.pdb"], "plddt": False}
    assert cfg["embed"]["sets"]["mine"] == {"source": "files", "paths": ["a.fasta"], "split": None}


# --- (d) the generated key reference is current ---------------------------------------------------
def test_config_reference_is_current():
    out = subprocess.run([sys.executable, "tools/config_docs.py", "--check"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_config_reference_lists_every_key():
    text = (REPO / "config" / "README.md").read_text()
    missing = [key for key, _ in _leaves(config_schema()) if f"| `{key}` |" not in text]
    assert not missing, missing

"""The paper config trains the released tokenizer's architecture, at the released sizes.

``config/paper.yaml``'s ``tokenizer`` section (and the 150M / 3B overlays merged over it) is read
as the workflow reads it -- schema defaults filled in (:func:`dplm2.config.apply_schema_defaults`, as
``workflow/rules/common.smk`` does), the section as JSON, :meth:`TokenizerConfig.from_dict` -- and
compared with the released ``airkingbd/struct_tokenizer``:

* the released layout at the released sizes: every tensor name and shape of the reference's
  ``VQModel`` state dict, written out from the reference's source by
  :func:`tests.tokenizer.test_official.official_shapes` (here with the sizes of the reference's
  ``configs/experiment/structok/structok_lfq_8k_pdb_swissprot_c512.yaml`` and the reference's
  defaults for what that file leaves out), plus the GVP encoder's tensors from fair-esm's own
  module built with ESM-IF1's arguments. All on the ``meta`` device: names and shapes only;
* :func:`dplm2.tokenizer.official.config_from_official` reads that layout into the
  :class:`ModelConfig` it loads the release with; the paper config must be exactly that config;
* the model built from the paper config takes that layout under official.py's documented name
  map exactly and completely (:func:`official.map_official_state`: no tensor unexpected,
  missing or of another shape), and has the same state-dict names and shapes as the model
  official.py builds for the release.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml

from dplm2.config import apply_schema_defaults
from dplm2.tokenizer import gvp, official
from dplm2.tokenizer.config import ModelConfig, TokenizerConfig
from dplm2.tokenizer.model import StructureTokenizer

from .test_official import HAVE_FAIR_ESM, official_shapes

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "config" / "paper.yaml"
OVERLAYS = sorted((REPO / "config").glob("paper-*.yaml"))

#: The released tokenizer's ``config.yaml`` (the ``model`` section of the reference's
#: structok_lfq_8k_pdb_swissprot_c512 experiment).
RELEASED_CONFIG = {
    "codebook_config": {"freeze": False, "num_codes": 8192, "embed_dim": 13,
                        "entropy_loss_weight": 0.1, "commitment_loss_weight": 0.25},
    "encoder_config": {"freeze": True},
    "decoder_config": {
        "input_dim": 128,
        "trunk": {"num_blocks": 4, "sequence_state_dim": 128, "pairwise_state_dim": 32,
                  "max_recycles": 1, "gradient_checkpointing": False,
                  "structure_module": {"c_s": 128, "c_z": 32, "no_blocks": 8, "no_angles": 7}},
    },
}
#: Released sizes: the experiment config above, the reference's code (post-quantization
#: transformer: 8 heads, 4 layers; lDDT head hidden width 128) and its FoldingTrunkConfig /
#: StructureModuleConfig defaults (head widths 32, 32 position bins, IPA 16 wide, 12 heads,
#: 4 query/key and 8 value points).
RELEASED_SIZES = dict(e=512, bits=13, d=128, z=32, post_layers=4, post_heads=8, seq_hw=32,
                      pair_hw=32, bins=32, ipa_c=16, ipa_h=12, qk=4, v=8, trunk_blocks=4)
#: ESM-IF1's encoder arguments (esm_if1_gvp4_t16_142M_UR50), as fair-esm builds it.
ESM_IF1_ARGS = dict(
    encoder_embed_dim=512, encoder_layers=8, encoder_attention_heads=8,
    encoder_ffn_embed_dim=2048, dropout=0.1, attention_dropout=0.1, gvp_top_k_neighbors=30,
    gvp_node_hidden_dim_scalar=1024, gvp_node_hidden_dim_vector=256,
    gvp_edge_hidden_dim_scalar=32, gvp_edge_hidden_dim_vector=1, gvp_num_encoder_layers=4,
    gvp_dropout=0.1)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def workflow_tokenizer_config(*configs: Path) -> TokenizerConfig:
    """The ``tokenizer`` section of ``configs`` (later files over earlier ones, as
    ``--configfile a b``) as ``train_tokenizer`` receives it."""
    config: dict = {}
    for path in configs:
        config = _merge(config, yaml.safe_load(path.read_text()) or {})
    apply_schema_defaults(config)
    section = json.dumps(config["tokenizer"], sort_keys=True)  # the rule's `section("tokenizer")`
    return TokenizerConfig.from_dict(json.loads(section), "tokenizer")


def _released_encoder_shapes() -> dict[str, tuple[int, ...]]:
    """``encoder.encoder.*``: fair-esm's GVPTransformerEncoder with ESM-IF1's arguments."""
    encoder_cls, alphabet_cls = gvp.import_fair_esm()
    alphabet = alphabet_cls.from_architecture("invariant_gvp")
    with torch.device("meta"):
        embed = torch.nn.Embedding(len(alphabet), ESM_IF1_ARGS["encoder_embed_dim"],
                                   padding_idx=alphabet.padding_idx)
        module = encoder_cls(argparse.Namespace(**ESM_IF1_ARGS), alphabet, embed)
    return {official.ENCODER_PREFIX + k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def released() -> tuple[dict[str, torch.Tensor], ModelConfig]:
    """The released layout at the released sizes (meta tensors) and the ModelConfig official.py
    reads from it."""
    shapes = official_shapes(**RELEASED_SIZES)
    if HAVE_FAIR_ESM:
        shapes.update(_released_encoder_shapes())
    state = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    cfg = official.config_from_official(state, RELEASED_CONFIG, "released layout",
                                        "released config.yaml")
    return state, cfg


def _build(cfg: ModelConfig) -> StructureTokenizer:
    encoder = None
    if not HAVE_FAIR_ESM:  # decoder-side comparison only
        encoder = official.ReleasedEncoderUnavailable("fair-esm absent")
    with torch.device("meta"):
        return StructureTokenizer(cfg, encoder=encoder)


@pytest.mark.parametrize("configs", [[PAPER]] + [[PAPER, o] for o in OVERLAYS],
                         ids=lambda cs: "+".join(c.stem for c in cs))
def test_paper_config_is_the_released_config(configs, released):
    _, released_cfg = released
    ours = workflow_tokenizer_config(*configs).model
    diff = {f.name: (getattr(ours, f.name), getattr(released_cfg, f.name))
            for f in dataclasses.fields(ModelConfig)
            if getattr(ours, f.name) != getattr(released_cfg, f.name)}
    assert not diff, f"paper config vs released (field: (paper, released)): {diff}"
    assert ours.decoder == "reference"


def test_paper_model_takes_the_released_layout(released):
    state, released_cfg = released
    if not HAVE_FAIR_ESM:
        state = {k: v for k, v in state.items() if not k.startswith(official.ENCODER_PREFIX)}
    paper = _build(workflow_tokenizer_config(PAPER).model)
    ours = paper.state_dict()
    # exact and complete under the documented name map, or a ValueError listing every
    # unexpected / missing / misshapen tensor
    mapped = official.map_official_state(state, paper, "released layout")
    assert set(mapped) == set(ours)
    assert {k: tuple(v.shape) for k, v in mapped.items()} == {
        k: tuple(v.shape) for k, v in ours.items()}
    # what has no place is only what the reference never uses (its ESM-2 8M and leftovers)
    skipped = {k for k in state if official.our_name(k) is None}
    assert skipped and all(k.startswith(official.IGNORED_PREFIXES) or k in official.IGNORED_NAMES
                           for k in skipped)
    # the same names and shapes as the model official.py builds for the release
    released_model = _build(released_cfg).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {
        k: tuple(v.shape) for k, v in released_model.items()}
    n_decoder = sum(v.numel() for k, v in ours.items()
                    if not k.startswith("encoder.") and k not in official.CONSTANT_NAMES)
    assert 2_000_000 < n_decoder < 3_000_000  # pre/post-quantization + decoder: ~2.6M

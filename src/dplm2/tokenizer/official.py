"""The released DPLM-2 structure tokenizer (``airkingbd/struct_tokenizer``) in our classes.

What the release is (read from the reference, ``bytedance/dplm``: ``get_struct_tokenizer`` in
``byprot/models/utils.py`` and ``byprot/models/structok/``):

* two files at the root of the hub repository -- ``config.yaml`` (the arguments of the
  reference's ``VQModel``: ``encoder_config``, ``decoder_config``, ``codebook_config``) and
  ``dplm2_struct_tokenizer.ckpt`` (a ``torch.save``'d flat state dict of ``VQModel``). A local
  folder may hold them at its root or under ``.hydra/`` (the reference's local layout);
* ``encoder.encoder.*`` -- ESM-IF1's GVP-Transformer encoder (frozen, 512 wide): fair-esm's
  ``GVPTransformerEncoder``, loaded into that same class (:mod:`dplm2.tokenizer.gvp`, model
  option ``encoder: esm_if1``; sizes read from the tensors, 8 heads and 30 neighbours from
  ESM-IF1);
* ``pre_quant.{0,1,3}`` -- LayerNorm(512), Linear(512 -> 13), ReLU, Linear(13 -> 13): our
  :class:`~dplm2.tokenizer.quantizer.Quantizer` with ``bit_standardize`` off; LFQ has no
  weights (bit ``i`` = sign of dimension ``i``, token = bits read big-endian, dimension 0 the
  most significant -- our :func:`~dplm2.tokenizer.quantizer.bits_to_indices`);
* ``post_quant.mlp.{0,1,3}`` (LayerNorm(13), Linear(13 -> 128), ReLU, Linear) and
  ``post_quant.transformer`` -- fair-esm ``TransformerLayer`` x4 (8 heads, rotary positions,
  no key/value bias, 4x FFN, exact GELU) and ``emb_layer_norm_after``: our
  :class:`~dplm2.tokenizer.decoder.PostQuantizer` (``decoder: reference``);
* ``decoder.*`` -- the reference's ESMFold copy: ``esm_s_mlp`` (our ``trunk_input``), the
  folding trunk ``decoder.trunk.*`` (fair-esm trunk + openfold structure module; transformers'
  ``EsmFoldingTrunk`` uses the same names, checked block by block), ``distogram_head``,
  ``lm_head`` (23 classes) and ``lddt_head`` (per atom37): our ``StructureDecoder``'s heads. Unused by
  the reference's forward pass and skipped here: ``decoder.esm.*`` (an ESM-2 8M it loads but
  never calls), ``decoder.esm_s_combine``, ``decoder.af2_to_esm``, ``decoder.embedding``,
  ``decoder.ptm_head``.

Behaviour reproduced: the decoder never sees the sequence (all-alanine ``aatype``), residue
indices ``0..L-1``, a zero pair state, and one trunk pass -- the reference's trunk runs
``max_recycles`` passes in total when no recycle count is given (its ``detokenize`` gives
none), so ``recycles = max_recycles - 1`` here (0 for the release's ``max_recycles: 1``).
Where a number is not in the weights it comes from ``config.yaml``, else from the reference's
defaults (structure-module blocks 8, ``max_recycles`` 4, 8 post-quantization heads); every
size present in both the weights and ``config.yaml`` must agree.

What it does:

* **detokenize**: :meth:`StructureTokenizer.detokenize` / ``dplm2 tokenizer detokenize`` /
  ``generate`` decoding with the released weights. Differences from the reference's output:
  the residue type is the argmax over the 20 standard types (the reference's argmax runs over
  23 classes and may give X), the pLDDT per residue is the CA atom's;
* **tokenize**: ESM-IF1's encoder (through fair-esm and torch_geometric, the optional
  ``released`` extra), the pre-quantization head and LFQ, as the reference's
  ``VQModel.tokenize``. Without fair-esm (or for a checkpoint without ``encoder.encoder.*``
  tensors) the model still loads and decodes; its encoder is then a stand-in that raises,
  saying what is missing;
* :func:`import_official_tokenizer` converts the release into our layout (``config.json`` +
  ``model.safetensors``), which every tokenizer consumer and the workflow read.

Weights are read with ``torch.load(weights_only=True)`` (tensors only, no code execution) or
safetensors; a hub id downloads exactly ``config.yaml`` and the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dplm2.io.hub import model_files
from dplm2.config import ConfigError
from dplm2.io import read_tensor_file, sha256_file
from dplm2.tokenizer.config import ModelConfig
from dplm2.tokenizer.model import StructureTokenizer

log = logging.getLogger(__name__)

HUB_ID = "airkingbd/struct_tokenizer"
#: Hub repositories known to be in the released layout (``load_tokenizer`` goes straight to
#: this module for them instead of first asking for our ``config.json``).
RELEASED_HUB_IDS = (HUB_ID,)
CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "dplm2_struct_tokenizer.ckpt"
LOCAL_SUBDIR = ".hydra"  # the reference's local layout: <run>/.hydra/{config.yaml, *.ckpt}

#: Fixed in the reference's code (``TransformerEncoder(input_dim, 8, 4)``), not in the config.
POST_HEADS = 8
#: Reference defaults (``StructureModuleConfig`` / ``FoldingTrunkConfig``) for values that the
#: weights do not determine, used when ``config.yaml`` does not give them.
DEFAULT_SM_BLOCKS = 8
DEFAULT_MAX_RECYCLES = 4
#: Constants of transformers' structure module (must match the release's config, if given).
FIXED_SM = {"trans_scale_factor": 10, "epsilon": 1e-8, "inf": 1e5, "no_angles": 7,
            "no_transition_layers": 1, "no_resnet_blocks": 2}

#: Official tensors the reference's forward pass never uses (prefixes / exact names).
IGNORED_PREFIXES = ("decoder.esm.", "decoder.embedding.", "decoder.ptm_head.",
                    "model_ema.", "quantize.")  # quantize.*: LFQ constants, if ever saved
IGNORED_NAMES = ("decoder.esm_s_combine", "decoder.af2_to_esm")
#: Our tensors that hold constants, not learned weights (kept from construction).
CONSTANT_NAMES = ("quantizer.lfq.mask", "encoder.encoder.embed_positions._float_tensor")
ENCODER_PREFIX = "encoder.encoder."

#: official prefix -> our prefix (first match wins); ``decoder.trunk.`` maps onto itself.
_PREFIX_MAP = (
    (ENCODER_PREFIX, ENCODER_PREFIX),  # fair-esm's module in both
    ("pre_quant.0.", "quantizer.norm."),
    ("pre_quant.1.", "quantizer.proj."),
    ("pre_quant.3.", "quantizer.mix."),
    ("post_quant.mlp.", "decoder.post.mlp."),
    ("post_quant.transformer.emb_layer_norm_after.", "decoder.post.norm."),
    ("post_quant.transformer.layers.", "decoder.post.transformer."),
    ("decoder.esm_s_mlp.", "decoder.trunk_input."),
    ("decoder.trunk.", "decoder.trunk."),
    ("decoder.distogram_head.", "decoder.distogram_head."),
    ("decoder.lm_head.", "decoder.aa_head."),
    ("decoder.lddt_head.", "decoder.plddt_head."),
)

class ReleasedEncoderUnavailable(nn.Module):
    """Stands in for the released GVP encoder when it cannot be built; raises ``why``."""

    def __init__(self, why: str) -> None:
        super().__init__()
        self.why = why

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise NotImplementedError(
            f"tokenize is unavailable with this released tokenizer: {self.why}. Decoding "
            "(detokenize) works; to tokenize, use a tokenizer trained here (results/tokenizer)")


@dataclasses.dataclass(frozen=True)
class OfficialTokenizerFiles:
    """Local paths of the released tokenizer's two files."""

    config: Path
    weights: Path


def _local_files(folder: Path) -> OfficialTokenizerFiles | None:
    for base in (folder, folder / LOCAL_SUBDIR):
        if (base / WEIGHTS_NAME).is_file():
            return OfficialTokenizerFiles(base / CONFIG_NAME, base / WEIGHTS_NAME)
    return None


def is_official_folder(folder: str | os.PathLike) -> bool:
    """True for a folder holding ``dplm2_struct_tokenizer.ckpt`` (at its root or in .hydra/)."""
    folder = Path(folder)
    return folder.is_dir() and _local_files(folder) is not None


def resolve_official_tokenizer(
    name_or_path: str | os.PathLike, cache_dir: str | None = None
) -> OfficialTokenizerFiles:
    """Local paths of ``config.yaml`` and ``dplm2_struct_tokenizer.ckpt`` (folder or hub id).

    A hub id (``owner/name``, optional ``@revision``) downloads exactly these two files with
    ``hf_hub_download``. Raises ``FileNotFoundError`` naming what is missing.
    """
    path = Path(name_or_path)
    where: str | os.PathLike = name_or_path
    if path.is_dir():
        local = _local_files(path)
        if local is None:
            raise FileNotFoundError(f"{path}: no {WEIGHTS_NAME} (neither in the folder nor in "
                                    f"{LOCAL_SUBDIR}/): not a released structure tokenizer")
        where = local.weights.parent
    files = model_files(where, [CONFIG_NAME, WEIGHTS_NAME], what="the released structure tokenizer",
                        cache_dir=cache_dir)
    return OfficialTokenizerFiles(files[CONFIG_NAME], files[WEIGHTS_NAME])


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of the released checkpoint (:func:`dplm2.io.read_tensor_file`); a uniform
    ``model.`` prefix is dropped."""
    state = read_tensor_file(path)
    if all(k.startswith("model.") for k in state):
        state = {k[len("model."):]: v for k, v in state.items()}
    return state


def read_official_config(path: str | os.PathLike) -> dict[str, Any]:
    """The ``VQModel`` arguments of a released ``config.yaml`` (top level or under ``model``)."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not a readable YAML config ({exc})") from exc
    if isinstance(raw, dict) and "decoder_config" not in raw and isinstance(raw.get("model"), dict):
        raw = raw["model"]
    if not isinstance(raw, dict) or not isinstance(raw.get("decoder_config"), dict):
        raise ValueError(f"{path}: no decoder_config: not a released structure-tokenizer config")
    return raw


def _get(d: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _normalise(key: str) -> str:
    """Name variants of the same tensors: fairscale checkpoint wrappers, openfold >= 2 IPA."""
    key = key.replace("._checkpoint_wrapped_module.", ".")
    return re.sub(r"\.(linear_q_points|linear_kv_points)\.linear\.", r".\1.", key)


def our_name(key: str) -> str | None:
    """Our parameter name for an official tensor name; None for tensors the reference never
    uses; ``KeyError`` for names the reference's model does not have."""
    if key.startswith(IGNORED_PREFIXES) or key in IGNORED_NAMES:
        return None
    key = _normalise(key)
    for src, dst in _PREFIX_MAP:
        if key.startswith(src):
            rest = key[len(src):]
            if src == "post_quant.transformer.layers.":
                rest = rest.replace(".self_attn.rot_emb.inv_freq", ".self_attn.inv_freq")
            return dst + rest
    raise KeyError(key)


def official_name(ours: str) -> str:
    """The released checkpoint's name of one of our tensors (inverse of :func:`our_name`)."""
    for src, dst in _PREFIX_MAP:
        if ours.startswith(dst):
            rest = ours[len(dst):]
            if src == "post_quant.transformer.layers.":
                rest = rest.replace(".self_attn.inv_freq", ".self_attn.rot_emb.inv_freq")
            return src + rest
    return ours


def _count(state: dict, prefix: str) -> int:
    idx = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(idx) + 1 if idx else 0


def config_from_official(
    state: dict[str, torch.Tensor], raw: dict[str, Any], weights: str, config: str
) -> ModelConfig:
    """Our :class:`ModelConfig` for the released weights (sizes read from the tensors and
    checked against ``config.yaml``); ``ValueError`` naming the file for anything our classes
    cannot reproduce."""
    state = {_normalise(k): v for k, v in state.items()}

    def shape(name: str, dim: int = 0) -> int:
        if name not in state:
            raise ValueError(f"{weights}: missing tensor {name}")
        return int(state[name].shape[dim])

    bits = shape("pre_quant.3.weight")
    encoder_dim = shape("pre_quant.0.weight")
    post_dim = shape("post_quant.mlp.1.weight")
    c_s = shape("decoder.esm_s_mlp.1.weight")
    pair_dim = shape("decoder.trunk.recycle_z_norm.weight")
    sm = "decoder.trunk.structure_module."
    ipa_heads = shape(sm + "ipa.head_weights")
    tc, smc = "decoder_config.trunk.", "decoder_config.trunk.structure_module."
    qk = shape(sm + "ipa.linear_q_points.weight") // (3 * ipa_heads)
    inferred = {
        "codebook_config.embed_dim": bits,
        "decoder_config.input_dim": post_dim,
        "decoder_config.lddt_head_hid_dim": shape("decoder.lddt_head.1.weight"),
        tc + "sequence_state_dim": c_s,
        tc + "pairwise_state_dim": pair_dim,
        tc + "num_blocks": _count(state, "decoder.trunk.blocks."),
        tc + "position_bins":
            (shape("decoder.trunk.pairwise_positional_embedding.embedding.weight") - 2) // 2,
        smc + "c_s": shape(sm + "linear_in.weight"),
        smc + "c_z": shape(sm + "layer_norm_z.weight"),
        smc + "c_resnet": shape(sm + "angle_resnet.linear_in.weight"),
        smc + "no_heads_ipa": ipa_heads,
        smc + "c_ipa": shape(sm + "ipa.linear_q.weight") // ipa_heads,
        smc + "no_qk_points": qk,
        smc + "no_v_points": shape(sm + "ipa.linear_kv_points.weight") // (3 * ipa_heads) - qk,
        smc + "no_angles": shape(sm + "angle_resnet.linear_out.weight") // 2,
        smc + "no_resnet_blocks": _count(state, sm + "angle_resnet.layers."),
        smc + "no_transition_layers": _count(state, sm + "transition.layers."),
    }
    trunk_blocks = inferred["decoder_config.trunk.num_blocks"]
    if trunk_blocks:
        inferred["decoder_config.trunk.sequence_head_width"] = c_s // shape(
            "decoder.trunk.blocks.0.pair_to_sequence.linear.weight")
        inferred["decoder_config.trunk.pairwise_head_width"] = pair_dim // shape(
            "decoder.trunk.blocks.0.tri_att_start.linear.weight")
    num_codes = _get(raw, "codebook_config.num_codes")
    if num_codes is not None and int(num_codes) != 2**bits:
        raise ValueError(f"{config}: codebook_config.num_codes {num_codes} but the weights give "
                         f"{bits} bits ({weights})")
    for key, value in inferred.items():
        given = _get(raw, key)
        if given is not None and int(given) != value:
            raise ValueError(f"{config}: {key} = {given}, but {weights} has {value}")
    # What our classes tie together (one width for the post-quantization output, the trunk's
    # single state, the structure module, its angle resnet and the lDDT head's hidden layer).
    for key in ("decoder_config.trunk.sequence_state_dim",
                "decoder_config.trunk.structure_module.c_s",
                "decoder_config.trunk.structure_module.c_resnet",
                "decoder_config.lddt_head_hid_dim"):
        if inferred[key] != post_dim:
            raise ValueError(f"{weights}: {key} = {inferred[key]} differs from the "
                             f"post-quantization width {post_dim}; not supported here")
    if inferred["decoder_config.trunk.structure_module.c_z"] != pair_dim:
        raise ValueError(f"{weights}: structure-module c_z differs from the pair state; "
                         "not supported here")
    for key, value in FIXED_SM.items():
        given = _get(raw, f"decoder_config.trunk.structure_module.{key}")
        got = inferred.get(f"decoder_config.trunk.structure_module.{key}", given)
        for v in (given, got):
            if v is not None and float(v) != float(value):
                raise ValueError(f"{config}: structure_module.{key} = {v}; only {value} is "
                                 "supported")
    if _get(raw, "decoder_config.trunk.structure_module.separate_block") or any(
            ".seq_tfmr." in k for k in state):
        raise ValueError(f"{config}: the 'separate_block' structure module (with per-block "
                         "transformers) is not supported; only openfold's structure module is")
    if _get(raw, "decoder_config.use_esm_attn_map"):
        raise ValueError(f"{config}: use_esm_attn_map is not supported")
    if shape("decoder.lm_head.weight") != 23 or shape("decoder.lddt_head.3.weight") != 37 * 50:
        raise ValueError(f"{weights}: unexpected lm_head/lddt_head sizes")

    def from_cfg(key: str, default: int) -> int:
        v = _get(raw, key)
        return int(default if v is None else v)

    max_recycles = from_cfg("decoder_config.trunk.max_recycles", DEFAULT_MAX_RECYCLES)
    if max_recycles < 1:
        raise ValueError(f"{config}: max_recycles must be >= 1")
    seq_hw = inferred.get("decoder_config.trunk.sequence_head_width",
                          from_cfg("decoder_config.trunk.sequence_head_width", min(32, c_s)))
    pair_hw = inferred.get("decoder_config.trunk.pairwise_head_width",
                           from_cfg("decoder_config.trunk.pairwise_head_width", min(32, pair_dim)))
    try:
        return ModelConfig.from_dict(dict(
            **_encoder_sizes(state, encoder_dim, shape, weights),
            codebook_bits=bits, bit_standardize=False,
            post_dim=post_dim, post_layers=_count(state, "post_quant.transformer.layers."),
            post_heads=POST_HEADS, decoder="reference", trunk_blocks=trunk_blocks,
            pair_from_sequence=False,
            pair_dim=pair_dim, seq_head_width=seq_hw, pair_head_width=pair_hw,
            position_bins=inferred["decoder_config.trunk.position_bins"],
            sm_blocks=from_cfg("decoder_config.trunk.structure_module.no_blocks",
                               DEFAULT_SM_BLOCKS),
            ipa_dim=inferred["decoder_config.trunk.structure_module.c_ipa"],
            ipa_heads=ipa_heads,
            qk_points=inferred["decoder_config.trunk.structure_module.no_qk_points"],
            v_points=inferred["decoder_config.trunk.structure_module.no_v_points"],
            recycles=max_recycles - 1,
            distogram_bins=shape("decoder.distogram_head.weight"),
            dropout=0.0,
        ))
    except ConfigError as exc:
        raise ValueError(f"{weights}: sizes our classes cannot express ({exc})") from exc


def _encoder_sizes(state: dict[str, torch.Tensor], encoder_dim: int,
                   dim: Callable[[str, int], int], weights: str) -> dict[str, Any]:
    """ModelConfig fields of the ESM-IF1 encoder, read from ``encoder.encoder.*`` with ``dim``
    (:func:`config_from_official`'s size reader; ESM-IF1's defaults where the checkpoint has
    none of them: decoding never builds the encoder)."""
    from dplm2.tokenizer import gvp

    sizes: dict[str, Any] = {"encoder": "esm_if1", "encoder_dim": encoder_dim,
                             "encoder_heads": gvp.ESM_IF1_HEADS,
                             "encoder_neighbors": gvp.ESM_IF1_TOP_K,
                             "encoder_layers": gvp.ESM_IF1_LAYERS,
                             "encoder_message_layers": gvp.ESM_IF1_GVP_LAYERS}
    if not has_encoder(state):
        return sizes
    e, graph = ENCODER_PREFIX, ENCODER_PREFIX + "gvp_encoder.embed_graph."
    if dim(e + "embed_tokens.weight", 1) != encoder_dim:
        raise ValueError(f"{weights}: encoder width {dim(e + 'embed_tokens.weight', 1)} but "
                         f"pre_quant expects {encoder_dim}")
    sizes.update(
        encoder_layers=_count(state, e + "layers."),
        encoder_message_layers=_count(state, e + "gvp_encoder.encoder_layers."),
        gvp_ffn_dim=dim(e + "layers.0.fc1.weight", 0),
        gvp_node_scalar=dim(graph + "embed_node.0.ws.weight", 0),
        gvp_node_vector=dim(graph + "embed_node.0.wv.weight", 0),
        gvp_edge_scalar=dim(graph + "embed_edge.0.ws.weight", 0),
        gvp_edge_vector=dim(graph + "embed_edge.0.wv.weight", 0),
    )
    return sizes


def has_encoder(state: dict[str, torch.Tensor]) -> bool:
    """True when the checkpoint holds the GVP encoder's tensors."""
    return any(k.startswith(ENCODER_PREFIX) for k in state)


def map_official_state(
    state: dict[str, torch.Tensor], model: StructureTokenizer, where: str
) -> dict[str, torch.Tensor]:
    """Rename the released tensors into ``model``'s names, exactly and completely.

    ``ValueError`` naming ``where`` (the weights file) and listing every unexpected tensor
    (a name the reference's model does not have, or one our model has no place for), every
    missing one, and every shape mismatch.
    """
    ours = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}
    unexpected: list[str] = []
    for key, value in state.items():
        try:
            name = our_name(key)
        except KeyError:
            unexpected.append(key)
            continue
        if name is None:
            continue
        if name not in ours:
            unexpected.append(key)
            continue
        if name in out:
            raise ValueError(f"{where}: {source[name]} and {key} both map to {name}")
        out[name], source[name] = value, key
    missing = sorted(official_name(k) for k in ours if k not in out and k not in CONSTANT_NAMES)
    bad_shape = [f"{source[k]} {tuple(out[k].shape)}, expected {tuple(ours[k].shape)}"
                 for k in out if out[k].shape != ours[k].shape]
    if unexpected or missing or bad_shape:
        parts = []
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {', '.join(sorted(unexpected)[:20])}")
        if missing:
            parts.append(f"{len(missing)} missing: {', '.join(missing[:20])}")
        if bad_shape:
            parts.append(f"{len(bad_shape)} of another shape: {', '.join(bad_shape[:10])}")
        raise ValueError(f"{where}: not the released structure tokenizer's weights ("
                         + "; ".join(parts) + ")")
    for k in CONSTANT_NAMES:
        if k in ours:
            out[k] = ours[k]
    return {k: v.to(ours[k].dtype) for k, v in out.items()}


def load_official_tokenizer(
    source: str | os.PathLike = HUB_ID,
    device: str | torch.device = "cpu",
    cache_dir: str | None = None,
) -> tuple[StructureTokenizer, str]:
    """The released structure tokenizer (hub id, optional ``@revision``, or a local folder) as
    a :class:`StructureTokenizer` in eval mode; it tokenizes when fair-esm is installed and
    the checkpoint holds the encoder, and always decodes (module docstring).

    Returns
    -------
    model : StructureTokenizer
    sha256 : str
        Hash of the checkpoint file (recorded in token shards and generation outputs).
    """
    files = resolve_official_tokenizer(source, cache_dir)
    raw = read_official_config(files.config)
    state = read_checkpoint(files.weights)
    cfg = config_from_official(state, raw, str(files.weights), str(files.config))
    from dplm2.tokenizer.gvp import FairEsmUnavailable, import_fair_esm

    stand_in = None
    if not has_encoder(state):
        stand_in = ReleasedEncoderUnavailable(
            f"{files.weights} holds no {ENCODER_PREFIX}* tensors (the GVP encoder)")
    else:
        try:
            import_fair_esm()
        except FairEsmUnavailable as exc:
            stand_in = ReleasedEncoderUnavailable(str(exc))
    if stand_in is not None:  # decode only: the encoder's tensors have nowhere to go
        state = {k: v for k, v in state.items() if not k.startswith(ENCODER_PREFIX)}
    model = StructureTokenizer(cfg, encoder=stand_in)
    mapped = map_official_state(state, model, str(files.weights))
    model.load_state_dict(mapped, strict=True)
    model.released_from = str(source)  # type: ignore[attr-defined]
    model.to(device).eval()
    n_ignored = sum(1 for k in state if our_name_or_none(k) is None)
    log.info("loaded the released structure tokenizer %s: %d tensors mapped, %d the reference "
             "never uses skipped (ESM-2, ...); tokenize %s", source, len(mapped), n_ignored,
             "available" if stand_in is None else f"unavailable ({stand_in.why})")
    return model, sha256_file(files.weights)


def our_name_or_none(key: str) -> str | None:
    """:func:`our_name` without the ``KeyError``."""
    try:
        return our_name(key)
    except KeyError:
        return None


def import_official_tokenizer(
    source: str | os.PathLike, out: str | os.PathLike, cache_dir: str | None = None
) -> Path:
    """Convert the released tokenizer into our layout in ``out`` (``config.json`` +
    ``model.safetensors``, as a trained one, plus ``released_from.json``: source and checkpoint
    hash). Needs the encoder (fair-esm installed, encoder tensors present): a folder in our
    layout must tokenize. Each file is written atomically."""
    from dplm2.io import atomic_write_text
    from dplm2.tokenizer.hub import save_tokenizer

    model, sha = load_official_tokenizer(source, cache_dir=cache_dir)
    if isinstance(model.encoder, ReleasedEncoderUnavailable):
        raise ValueError(f"{source}: cannot import the released tokenizer without its encoder "
                         f"({model.encoder.why})")
    folder = save_tokenizer(model, out)
    record = {"source": str(source), "checkpoint_sha256": sha,
              "files": [CONFIG_NAME, WEIGHTS_NAME]}
    atomic_write_text(folder / "released_from.json", json.dumps(record, indent=2) + "\n")
    log.info("imported the released structure tokenizer %s into %s", source, folder)
    return folder

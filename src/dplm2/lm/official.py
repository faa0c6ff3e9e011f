"""Released DPLM-2 checkpoints (``airkingbd/dplm2_*``) into this project's :class:`DPLM2LM`.

The released language models are Hugging Face folders written by the reference's
``EsmForDPLM2`` (an ``EsmForMaskedLM`` subclass, saved by transformers 4.x; the reference pins
4.39.2):

* ``config.json`` -- an ESM config as transformers 4.39 writes it (``architectures:
  [EsmForDPLM2]``, ``dplm_type: dplm2_esm`` -- the reference's registry name of the network,
  ``vocab_size`` 8229, ``token_dropout`` true, ``tie_word_embeddings`` false as
  ``EsmForDPLM2.__init__`` sets it; the value is ignored here: the released weights hold
  both matrices);
* ``vocab.txt`` -- one token per line, line number = id, no final newline (``EsmTokenizer.``
  ``save_vocabulary``): ESM's 33 amino-acid tokens with the specials spelled ``<cls_aa> <pad>
  <eos_aa> <unk_aa> ... <mask_aa>``, then ``<cls_struct>``, ``<eos_struct>``, ``<unk_struct>``,
  the 8192 codes spelled ``0000`` .. ``8191`` (the reference writes structure codes as
  ``f"{code:04d}"`` and its tokenizer matches them against this list), and ``<mask_struct>``
  last (spec §3);
* ``model.safetensors`` or ``pytorch_model.bin`` -- transformers 4 tensor names:
  ``esm.embeddings.word_embeddings.weight``, ``esm.embeddings.position_embeddings.weight``
  (transformers 4 creates this absolute-position table for every ESM config, rotary ones
  included, where it is never used), ``esm.encoder.layer.N.attention.self.query.weight`` ...,
  one rotary ``inv_freq`` buffer per layer (``...attention.self.rotary_embeddings.inv_freq``),
  ``esm.contact_head.regression.*`` and ``lm_head.*`` (a ``net.`` / ``model.net.`` prefix, as in
  the reference's training checkpoints, is accepted and stripped).

Tensor names are checked the way transformers 5 checks them in ``from_pretrained``: the
network's own load hook moves the per-layer ``inv_freq`` onto its one shared rotary buffer
(the values are kept, as the reference uses them), and an unexpected tensor is skipped only
when it matches the network's ``_keys_to_ignore_on_load_unexpected`` patterns (for ESM:
``position_embeddings.weight``, which a rotary network does not have) or is a stale
``position_ids`` buffer; any other unexpected tensor is an error naming the file
(:func:`ignored_unexpected`).

What is mapped, and how (assumptions are stated where the reference is the only source):

* ids: :func:`dplm2.lm.vocab.official_id_map` reads ``vocab.txt``; embedding rows, LM-head rows
  and LM-head bias entries are permuted into our ids, so a file with another order (or the
  irregular ``<mask_struct>`` placement) still lands on the right rows;
* input scaling: the reference's wrapper embeds the ids (``net.esm.embeddings(input_ids)``) and
  its network embeds them *again* from ``inputs_embeds`` with ``input_ids`` also given, so ESM's
  token-dropout rescaling (``<mask_aa>`` rows zeroed, the rest scaled by
  ``0.88 / (1 - masked fraction)``) is applied twice when ``token_dropout`` is on. The loaded
  model records that as ``dplm2_token_dropout_passes = 2`` in its config
  (:func:`dplm2.lm.model.official_token_dropout`); override with ``token_dropout_passes``;
* positions: the reference's rotary embedding restarts at 0 in each half when both
  modalities are present -- the same as :func:`dplm2.lm.vocab.position_ids`.

Files are fetched one by one with ``hf_hub_download`` (config, vocabulary, one weights file);
nothing else in the repository is downloaded. ``pytorch_model.bin`` is read with
``torch.load(weights_only=True)`` (tensors only, no code execution).

:func:`export_official` (``dplm2 lm export-official``) writes the inverse: a folder in exactly
this layout. The network the reference's wrapper ``from_pretrained`` builds for it
(``get_net_class("dplm2_esm").from_pretrained``, i.e. ``EsmForDPLM2``) loaded such a folder under
transformers 4.39 with no missing and no unexpected tensor and gave our logits (checked by hand
with the reference's module; transformers 4 is not a dependency, so the suite checks the layout
against the names and keys transformers 4.39 wrote, recorded in the tests' fixture).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import torch

from dplm2.io.hub import model_files
from dplm2.io import atomic_path, atomic_write_text, read_tensor_file
from dplm2.lm.model import TOKEN_DROPOUT_PASSES, DPLM2LM, mark_dplm2
from dplm2.lm.vocab import (
    AA_TOKENS,
    LAYOUT_FILE,
    N_CODES,
    OFFICIAL_ALIASES,
    VOCAB_FILE,
    VOCAB_SIZE,
    official_id_map,
)

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")
#: Weight-name prefixes of the reference's wrappers, stripped on load.
PREFIXES = ("model.net.", "net.")
#: Network tensors a checkpoint may lack: the rotary frequencies (then computed, as every
#: ESM computes them) and the contact head (unused by DPLM-2).
OPTIONAL_SUFFIXES = ("rotary_embeddings.inv_freq",)
OPTIONAL_PREFIXES = ("esm.contact_head.",)
#: Tensors whose first axis is the vocabulary (permuted into our ids).
VOCAB_ROWS = ("esm.embeddings.word_embeddings.weight", "lm_head.decoder.weight", "lm_head.bias")
#: Released layout: what ``EsmForDPLM2`` is registered as in the reference (its wrapper,
#: ``dplm2``, would recurse), and the transformers version whose file format is written.
DPLM_TYPE = "dplm2_esm"
ARCHITECTURE = "EsmForDPLM2"
TRANSFORMERS_FORMAT = "4.39.2"
#: transformers 4 per-layer rotary buffer (transformers 5 keeps one, ``esm.rotary_embeddings``).
LAYER_INV_FREQ = "esm.encoder.layer.{}.attention.self.rotary_embeddings.inv_freq"
SHARED_INV_FREQ = "esm.rotary_embeddings.inv_freq"
POSITION_TABLE = "esm.embeddings.position_embeddings.weight"


@dataclasses.dataclass(frozen=True)
class OfficialFiles:
    """Local paths of one released checkpoint's three files."""

    config: Path
    vocab: Path
    weights: Path


def is_official_folder(folder: str | os.PathLike) -> bool:
    """True for a folder in the released layout (``vocab.txt`` without our layout file)."""
    folder = Path(folder)
    return (folder / VOCAB_FILE).is_file() and not (folder / LAYOUT_FILE).is_file()


class BitCheckpointError(ValueError):
    """A released DPLM-2 Bit checkpoint where a DPLM-2 (index) one was asked for;
    :func:`dplm2.lm.load.load_lm` then loads it with :func:`dplm2.lm.bit.load_official_bit`."""


def check_not_bit(config: Path) -> None:
    """Raise :class:`BitCheckpointError` when ``config`` (a config.json) names a bit network
    (``dplm_type`` containing ``bit``, as the reference decides it)."""
    try:
        raw = json.loads(Path(config).read_text())
    except (OSError, json.JSONDecodeError):
        return  # reported by the caller
    if "bit" in str(raw.get("dplm_type", "")):
        raise BitCheckpointError(
            f"{config}: dplm_type {raw['dplm_type']!r} is a DPLM-2 Bit checkpoint: load it "
            "with dplm2.lm.load.load_lm (or dplm2.lm.bit.load_official_bit)")


def resolve_official(
    name_or_path: str | os.PathLike, cache_dir: str | None = None
) -> OfficialFiles:
    """Local paths of ``config.json``, ``vocab.txt`` and the weights (folder or hub id).

    A hub id (``owner/name``, optional ``@revision``) downloads exactly these three files;
    ``model.safetensors`` is preferred, ``pytorch_model.bin`` is fetched only when the former
    does not exist. Raises ``FileNotFoundError`` naming what is missing.
    """
    what = "a released DPLM-2 folder"
    config = model_files(name_or_path, [CONFIG_NAME], what=what, cache_dir=cache_dir)[CONFIG_NAME]
    check_not_bit(config)  # before fetching the rest: a Bit repository has other files
    files = model_files(name_or_path, [VOCAB_FILE], one_of=WEIGHT_NAMES, what=what, cache_dir=cache_dir)
    return OfficialFiles(config, files[VOCAB_FILE], files["one_of"])


def esm_config_from_official(path: str | os.PathLike):
    """Our ``EsmConfig`` (DPLM-2 vocabulary, untied) from a released ``config.json``."""
    from transformers import EsmConfig

    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON config ({exc})") from exc
    if raw.get("position_embedding_type", "rotary") != "rotary":
        raise ValueError(f"{path}: position_embedding_type {raw['position_embedding_type']!r}; "
                         "DPLM-2 checkpoints use rotary")
    if "bit" in str(raw.get("dplm_type", "")):
        raise ValueError(f"{path}: dplm_type {raw['dplm_type']!r} is a DPLM-2 Bit checkpoint: "
                         "load it with dplm2.lm.load.load_lm (or dplm2.lm.bit)")
    if raw.get("vocab_size") != VOCAB_SIZE:
        raise ValueError(f"{path}: vocab_size {raw.get('vocab_size')}, DPLM-2 has {VOCAB_SIZE}")
    keep = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "layer_norm_eps", "max_position_embeddings", "emb_layer_norm_before", "hidden_act",
            "initializer_range")
    missing = [k for k in keep[:4] if k not in raw]
    if missing:
        raise ValueError(f"{path}: missing {missing}")
    cfg = EsmConfig(
        **{k: raw[k] for k in keep if k in raw},
        vocab_size=VOCAB_SIZE, position_embedding_type="rotary", pad_token_id=1,
        mask_token_id=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    cfg.dplm2_official = {"source_config": str(path.name), "dplm_type": raw.get("dplm_type"),
                          "token_dropout": bool(raw.get("token_dropout", False))}
    return mark_dplm2(cfg)


def strip_prefix(name: str) -> str:
    """``net.esm.x`` / ``model.net.esm.x`` -> ``esm.x``."""
    for p in PREFIXES:
        if name.startswith(p):
            return name[len(p):]
    return name


def to_our_ids(
    state: dict[str, torch.Tensor], id_map: np.ndarray, where: str
) -> dict[str, torch.Tensor]:
    """Rename official tensors and permute their vocabulary rows into our ids.

    ``id_map[official_id] = our_id``; ``where`` names the weights file in errors.
    """
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        key = strip_prefix(name)
        if "lora_" in key or ".base_layer." in key:
            raise ValueError(f"{where}: {name} is a LoRA tensor; merge the adapter first")
        if key in out:
            raise ValueError(f"{where}: two tensors map to {key}")
        out[key] = value
    if "lm_head.decoder.weight" not in out and "esm.embeddings.word_embeddings.weight" in out:
        log.warning("%s: no lm_head.decoder.weight: tying it to the embeddings", where)
        out["lm_head.decoder.weight"] = out["esm.embeddings.word_embeddings.weight"]
    perm = torch.as_tensor(id_map, dtype=torch.long)
    for key in VOCAB_ROWS:
        if key not in out:
            raise ValueError(f"{where}: missing tensor {key}")
        rows = out[key]
        if rows.shape[0] != len(perm):
            raise ValueError(f"{where}: {key} has {rows.shape[0]} rows, the vocabulary file "
                             f"{len(perm)} tokens")
        ours = torch.empty_like(rows)
        ours[perm] = rows  # our_id <- official_id
        out[key] = ours
    return out


def ignored_unexpected(net) -> re.Pattern | None:
    """The unexpected tensor names transformers' ``from_pretrained`` skips for ``net``.

    The same rule as transformers 5 (``PreTrainedModel._adjust_missing_and_unexpected_keys``):
    the regex patterns in ``net._keys_to_ignore_on_load_unexpected`` (gathered from all
    submodules; ESM's is ``position_embeddings.weight``, a tensor transformers 4 wrote for
    every config and a rotary network of transformers 5 does not have), plus old persistent
    ``position_ids`` / ``rotary_emb.inv_freq`` buffers when the network has such buffers.
    ``None`` when nothing is ignored.
    """
    patterns = set(getattr(net, "_keys_to_ignore_on_load_unexpected", None) or ())
    buffers = [name for name, _ in net.named_buffers()]
    if any(b.endswith("rotary_emb.inv_freq") for b in buffers):
        patterns.add(r"rotary_emb\.inv_freq")
    if any(b.endswith("position_ids") for b in buffers):
        patterns.add(r"(^|\.)position_ids$")
    if not patterns:
        return None
    return re.compile("|".join(f"({p})" for p in sorted(patterns)))


def check_layer_inv_freq(state: dict[str, torch.Tensor], where: str) -> None:
    """transformers 5 keeps one rotary ``inv_freq`` where transformers 4 kept one per layer;
    its load hook takes the first. Refuse a file whose per-layer copies differ (no network of
    this project could reproduce it)."""
    pat = re.compile(re.escape(LAYER_INV_FREQ).replace(r"\{\}", r"\d+"))
    found = [(k, v) for k, v in state.items() if pat.fullmatch(k)]
    for k, v in found[1:]:
        if v.shape != found[0][1].shape or not torch.equal(v, found[0][1]):
            raise ValueError(f"{where}: {k} differs from {found[0][0]}; the network keeps one "
                             "rotary inv_freq for all layers")


def load_official(
    name_or_path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    cache_dir: str | None = None,
    token_dropout_passes: int | None = None,
    attn_implementation: str = "sdpa",
) -> DPLM2LM:
    """A released DPLM-2 LM (hub id or folder) as a :class:`DPLM2LM`, in eval mode.

    Parameters
    ----------
    name_or_path : str or path
        ``airkingbd/dplm2_150m`` (optionally ``@revision``) or a folder in that layout.
    token_dropout_passes : int, optional
        Override of the input rescaling (module docstring); default 2 when the config has
        ``token_dropout`` on, else 0.

    Raises ``ValueError`` naming the weights file when a tensor is missing, or unexpected and
    not one transformers itself skips (:func:`ignored_unexpected`).
    """
    from transformers import EsmForMaskedLM

    files = resolve_official(name_or_path, cache_dir)
    cfg = esm_config_from_official(files.config)
    passes = token_dropout_passes
    if passes is None:
        passes = 2 if cfg.dplm2_official["token_dropout"] else 0
    setattr(cfg, TOKEN_DROPOUT_PASSES, int(passes))
    id_map = official_id_map(files.vocab)
    state = to_our_ids(read_tensor_file(files.weights), id_map, str(files.weights))
    check_layer_inv_freq(state, str(files.weights))
    net = EsmForMaskedLM(cfg)
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    if SHARED_INV_FREQ in shapes:
        shapes.update({LAYER_INV_FREQ.format(i): shapes[SHARED_INV_FREQ]
                       for i in range(cfg.num_hidden_layers)})
    wrong = [f"{k} {tuple(v.shape)} != {tuple(shapes[k])}" for k, v in state.items()
             if k in shapes and v.shape != shapes[k]]
    if wrong:
        raise ValueError(f"{files.weights}: weights do not fit {files.config} "
                         f"(shapes: {wrong[:5]})")
    # ESM's load hook moves per-layer inv_freq onto the shared buffer, as in from_pretrained.
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(OPTIONAL_PREFIXES)
               and not k.endswith(OPTIONAL_SUFFIXES)]
    skip = ignored_unexpected(net)
    ignored = [k for k in unexpected if skip is not None and skip.search(k)]
    unexpected = [k for k in unexpected if k not in ignored]
    if missing or unexpected:
        raise ValueError(f"{files.weights}: weights do not fit {files.config} "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    if ignored:
        log.debug("%s: skipped %s (transformers skips them too)", files.weights, ignored)
    net.set_attn_implementation(attn_implementation)
    model = DPLM2LM(net).to(device).eval()
    log.info("loaded released DPLM-2 %s: %d layers, hidden %d, token-dropout passes %d",
             name_or_path, cfg.num_hidden_layers, cfg.hidden_size, passes)
    return model


def import_official(
    name_or_path: str | os.PathLike, out_dir: str | os.PathLike, **kwargs
) -> Path:
    """Convert a released checkpoint into this project's model folder (atomic), so that
    ``generate``, ``embed`` and ``evaluate`` use it like a model trained here."""
    from dplm2.lm import bit

    try:
        model = load_official(name_or_path, **kwargs)
        weights = resolve_official(name_or_path, kwargs.get("cache_dir")).weights
    except BitCheckpointError:
        model = bit.load_official_bit(name_or_path, **kwargs)
        weights = bit.resolve_bit(name_or_path, kwargs.get("cache_dir"))["weights"]
    out = Path(out_dir)
    with atomic_path(out, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        record = {"source": str(name_or_path), "weights_file": weights.name,
                  "objective": "bit" if getattr(model, "is_bit", False) else "index",
                  "token_dropout_passes": getattr(model.config, TOKEN_DROPOUT_PASSES),
                  "parameters": model.num_parameters()}
        atomic_write_text(Path(tmp) / "official.json", json.dumps(record, indent=2) + "\n")
    log.info("imported %s -> %s", name_or_path, out)
    return out


def official_code_name(code: int) -> str:
    """Structure code ``code`` as the released ``vocab.txt`` spells it (``0000`` .. ``8191``)."""
    return f"{code:04d}"


def official_vocab_names() -> list[str]:
    """Our 8229 tokens spelled as the released ``vocab.txt`` spells them (same ids)."""
    back = {v: k for k, v in OFFICIAL_ALIASES.items()}
    names = [back.get(t, t) for t in AA_TOKENS]
    names += ["<cls_struct>", "<eos_struct>", "<unk_struct>"]
    names += [official_code_name(k) for k in range(N_CODES)]
    names.append("<mask_struct>")
    assert len(names) == VOCAB_SIZE
    return names


def official_config(model: DPLM2LM, name_or_path: str = "") -> dict:
    """``config.json`` of ``model`` in the released form: every key transformers 4.39's
    ``EsmConfig`` writes for the reference's ``EsmForDPLM2`` (its ``to_json_string``: a diff
    against the defaults, keys sorted), with ``dplm_type`` = :data:`DPLM_TYPE`."""
    passes = int(getattr(model.config, TOKEN_DROPOUT_PASSES, 0) or 0)
    if passes not in (0, 2):
        raise ValueError(f"export_official: {passes} token-dropout passes has no released form")
    c = model.config
    dtype = next(model.net.parameters()).dtype
    raw = {
        "architectures": [ARCHITECTURE],
        "attention_probs_dropout_prob": 0.0,
        "classifier_dropout": None,
        "dplm_type": DPLM_TYPE,
        "emb_layer_norm_before": bool(getattr(c, "emb_layer_norm_before", False) or False),
        "esmfold_config": None,
        "hidden_act": getattr(c, "hidden_act", "gelu"),
        # EsmForDPLM2.__init__ sets its dropout argument (default 0.1) here on every load.
        "hidden_dropout_prob": 0.1,
        "hidden_size": c.hidden_size,
        "initializer_range": c.initializer_range,
        "intermediate_size": c.intermediate_size,
        "is_folding_model": False,
        "layer_norm_eps": c.layer_norm_eps,
        "mask_token_id": 32,
        "max_position_embeddings": c.max_position_embeddings,
        "model_type": "esm",
        "num_attention_heads": c.num_attention_heads,
        "num_hidden_layers": c.num_hidden_layers,
        "pad_token_id": 1,
        "position_embedding_type": "rotary",
        "tie_word_embeddings": False,  # what EsmForDPLM2.__init__ sets; both matrices are saved
        "token_dropout": passes == 2,
        "torch_dtype": str(dtype).removeprefix("torch."),
        "transformers_version": TRANSFORMERS_FORMAT,
        "use_cache": True,
        "vocab_list": None,
        "vocab_size": VOCAB_SIZE,
    }
    if name_or_path:  # transformers writes it only when set (the default is "")
        raw["_name_or_path"] = str(name_or_path)
    return dict(sorted(raw.items()))


def official_state(model: DPLM2LM, prefix: str = "") -> dict[str, torch.Tensor]:
    """``model``'s tensors under the names transformers 4 writes for ``EsmForDPLM2``.

    The shared rotary ``inv_freq`` is written once per layer; the absolute-position table
    (never used by a rotary network) is written as zeros; an LM head tied to the embeddings
    is written as its own copy (the released config says untied).
    """
    net, cfg = model.net, model.config
    if any("lora_" in n or ".base_layer." in n for n, _ in net.named_parameters()):
        raise ValueError("export_official: merge LoRA first (dplm2.lm.lora.merged_copy)")
    if getattr(cfg, "position_embedding_type", "rotary") != "rotary":
        raise ValueError("export_official: only rotary networks have the released form")
    state: dict[str, torch.Tensor] = {}
    for k, v in net.state_dict().items():
        v = v.detach().cpu().clone()  # clone(): tied matrices become two tensors
        if k == SHARED_INV_FREQ:
            for i in range(cfg.num_hidden_layers):
                state[LAYER_INV_FREQ.format(i)] = v.clone()
        elif k.endswith("position_ids"):
            continue
        else:
            state[k] = v
    emb = state["esm.embeddings.word_embeddings.weight"]
    state[POSITION_TABLE] = torch.zeros(cfg.max_position_embeddings, emb.shape[1],
                                        dtype=emb.dtype)
    for k in ("esm.contact_head.regression.weight", "esm.contact_head.regression.bias"):
        if k not in state:
            raise ValueError(f"export_official: the network has no {k}")
    return {prefix + k: v for k, v in state.items()}


def export_official(
    model: DPLM2LM, folder: str | os.PathLike, prefix: str = "", name_or_path: str = ""
) -> Path:
    """Write ``model`` in the released layout (config.json, vocab.txt, model.safetensors),
    atomically: the folder appears complete or not at all.

    The inverse of :func:`load_official` (round trip exact): ``token_dropout`` in the written
    config is on only when the model applies the official input rescaling. The folder is what
    the reference's ``from_pretrained`` reads under transformers 4.39 (module docstring);
    ``name_or_path`` is recorded as ``_name_or_path``.
    """
    from safetensors.torch import save_file

    raw = official_config(model, name_or_path)
    state = official_state(model, prefix)
    folder = Path(folder)
    with atomic_path(folder, is_dir=True) as tmp:
        tmp = Path(tmp)
        atomic_write_text(tmp / CONFIG_NAME, json.dumps(raw, indent=2, sort_keys=True) + "\n")
        # EsmTokenizer.save_vocabulary: "\n".join(tokens), no final newline.
        atomic_write_text(tmp / VOCAB_FILE, "\n".join(official_vocab_names()))
        save_file(state, str(tmp / WEIGHT_NAMES[0]), metadata={"format": "pt"})
    log.info("exported %s tensors in the released layout -> %s", len(state), folder)
    return folder

"""Save and load a trained tokenizer: ``model.safetensors`` (+ its ``.sha256``) + ``config.json``.

:func:`load_tokenizer` takes a local folder or a Hugging Face hub id (``owner/name``, optional
``@revision``) and fetches exactly the two files it reads with ``hf_hub_download`` -- never a
whole repository snapshot -- so a hub repository that also holds training states or the
language model costs no extra download. Weights load through safetensors (no pickles).

The released DPLM-2 tokenizer (``airkingbd/struct_tokenizer``: ``config.yaml`` +
``dplm2_struct_tokenizer.ckpt``) loads through the same function: a folder in that layout, the
released hub id, or a hub repository without our ``config.json`` is handed to
:func:`dplm2.tokenizer.official.load_official_tokenizer` (see that module).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from dplm2.io.hub import MissingHubFile, model_files, parse_hub_id
from dplm2.config import ConfigError
from dplm2.io import atomic_path, atomic_write_text, sha256_file  # noqa: F401 (re-exported)
from dplm2.io.weights import (
    check_safetensors_complete,
    load_error,
    record_checksum,
    verify_weights,
)
from dplm2.tokenizer.config import ModelConfig
from dplm2.tokenizer.model import StructureTokenizer

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
MODEL_TYPE = "dplm2-structure-tokenizer"


def save_tokenizer(model: StructureTokenizer, folder: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` (+ its ``.sha256``, :mod:`dplm2.io.weights`) and
    ``config.json`` into ``folder`` (each atomically)."""
    from safetensors.torch import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        # One metadata key: safetensors writes its metadata map in a per-process random
        # order, so two keys made a re-export of the same weights differ byte for byte (and
        # the token shards' tokenizer_sha256 go stale); config.json carries model_type.
        save_model(model, str(tmp), metadata={"format": "pt"})
        check_safetensors_complete(tmp)
    record_checksum(folder / WEIGHTS_NAME)
    atomic_write_text(folder / CONFIG_NAME, model.cfg.to_json() + "\n")
    return folder


def resolve_files(name_or_path: str | os.PathLike, cache_dir: str | None = None) -> tuple[Path, Path]:
    """Local paths of ``config.json`` and ``model.safetensors`` for a folder or hub id.

    Raises ``FileNotFoundError`` naming what is missing.
    """
    files = model_files(name_or_path, [CONFIG_NAME, WEIGHTS_NAME], what="a tokenizer folder",
                        cache_dir=cache_dir)
    return files[CONFIG_NAME], files[WEIGHTS_NAME]


#: ``config.json`` keys of tokenizers saved before ``decoder`` (2026-12-04), and the decoder each
#: combination is.
LEGACY_DECODER_KEYS = ("post_transformer", "trunk_input_mlp", "heads")
LEGACY_DECODERS = {
    "reference": {"post_transformer": "rotary", "trunk_input_mlp": True, "heads": "esmfold"},
    "compact": {"post_transformer": "sinusoidal", "trunk_input_mlp": False, "heads": "dplm2"},
}


def read_config(path: str | os.PathLike) -> ModelConfig:
    """Parse a tokenizer ``config.json``; ``ValueError`` naming the file if it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON config ({exc})") from exc
    if data.pop("model_type", MODEL_TYPE) != MODEL_TYPE:
        raise ValueError(f"{path}: not a {MODEL_TYPE} config")
    legacy = {k: data.pop(k) for k in LEGACY_DECODER_KEYS if k in data}
    if legacy:  # saved before the three decoder switches became ``decoder``
        found = [name for name, keys in LEGACY_DECODERS.items() if keys == legacy]
        if not found or "decoder" in data:
            raise ValueError(f"{path}: decoder options {legacy} are neither the reference's "
                             f"nor the compact decoder's ({LEGACY_DECODERS})")
        data["decoder"] = found[0]
    try:
        return ModelConfig.from_dict(data)
    except ConfigError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def load_tokenizer(
    name_or_path: str | os.PathLike,
    device: str | torch.device = "cpu",
    cache_dir: str | None = None,
) -> tuple[StructureTokenizer, str]:
    """Load a tokenizer from a folder or hub id, in eval mode.

    Our layout (``config.json`` + ``model.safetensors``) or the released DPLM-2 one (module
    docstring); every caller (tokenize/detokenize CLI, generate, embed, evaluate) gets both.

    Returns
    -------
    model : StructureTokenizer
    sha256 : str
        Hash of the weights file (written into token shards' metadata).
    """
    from safetensors.torch import load_model

    from dplm2.tokenizer import official

    path = Path(name_or_path)
    name = str(name_or_path)
    if path.is_dir() and not (path / CONFIG_NAME).is_file() and official.is_official_folder(path):
        return official.load_official_tokenizer(path, device=device, cache_dir=cache_dir)
    hub = parse_hub_id(name)
    if hub is not None and hub[0] in official.RELEASED_HUB_IDS:
        return official.load_official_tokenizer(name, device=device, cache_dir=cache_dir)
    try:
        cfg_path, weights = resolve_files(name_or_path, cache_dir)
    except MissingHubFile:
        # The repository exists but has no config.json: maybe the released layout.
        log.info("%s has no %s: trying the released tokenizer layout", name, CONFIG_NAME)
        return official.load_official_tokenizer(name, device=device, cache_dir=cache_dir)
    model = StructureTokenizer(read_config(cfg_path))
    digest = verify_weights(weights)  # the hash recorded when written, when there is one
    try:
        missing, unexpected = load_model(model, str(weights), strict=True, device=str(device))
    except (RuntimeError, OSError, ValueError) as exc:
        raise ValueError(f"{weights}: weights do not match {cfg_path} ({exc})") from exc
    except Exception as exc:  # safetensors' SafetensorError: a truncated or garbled file
        raise load_error(weights, exc) from exc
    model.to(device).eval()
    return model, digest

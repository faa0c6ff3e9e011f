"""Train the structure tokenizer (the ``train_tokenizer`` rule) with the shared trainer.

Outputs in ``out_dir``: ``model.safetensors`` + ``config.json`` (the exported tokenizer),
``state/`` (resumable checkpoints, exact resume after a kill), ``metrics.parquet`` (one row
per step, ``val_*`` columns on validation steps), ``training_record.json`` (config, sha256 of
every input shard, chain ids, steps, wall time, hardware, final validation metrics, weight
hash), enough to reproduce or audit the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dplm2 import __version__
from dplm2.config import ConfigError
from dplm2.io import atomic_write_text
from dplm2.tokenizer.config import TokenizerConfig
from dplm2.tokenizer.data import read_chain_shards, select_training, select_validation
from dplm2.tokenizer.gvp import ESM_IF1_URL
from dplm2.io import sha256_file
from dplm2.tokenizer.hub import WEIGHTS_NAME, save_tokenizer
from dplm2.tokenizer.model import StructureTokenizer, num_parameters
from dplm2.tokenizer.validation import Validator
from dplm2.train.state import config_fingerprint, files_fingerprint, guard_state

log = logging.getLogger(__name__)

RECORD_NAME = "training_record.json"


def tokenizer_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """``loss_fn`` for the trainer; ``model`` may be DDP-wrapped (call it, then its module)."""
    out = model(batch)
    return getattr(model, "module", model).loss(batch, out)


def build_model(cfg: TokenizerConfig) -> StructureTokenizer:
    """A freshly initialised tokenizer; initial weights depend only on ``cfg.train.seed``."""
    torch.manual_seed(cfg.train.seed)
    return StructureTokenizer(cfg.model, cfg.loss)


def _encoder_file(cfg: TokenizerConfig, override: str | os.PathLike | None) -> Path | None:
    """The local ESM-IF1 checkpoint to load (``model.encoder: esm_if1``), else None."""
    if cfg.model.encoder != "esm_if1":
        return None
    source = override or cfg.encoder_checkpoint
    if not source:
        raise ConfigError("tokenizer.model.encoder: esm_if1 needs tokenizer.encoder_checkpoint "
                          "(ESM-IF1's weights, kept frozen; e.g. " + ESM_IF1_URL + ")")
    if "://" in str(source):
        raise ConfigError(f"tokenizer.encoder_checkpoint {source}: training reads a local file; "
                          "fetch it first (dplm2 tokenizer fetch-encoder, or the workflow's "
                          "fetch_tokenizer_encoder rule)")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ESM-IF1 checkpoint (tokenizer.encoder_checkpoint) "
                                "not found")
    return path


def run_fingerprint(
    cfg: TokenizerConfig,
    chain_shards: Sequence[str | os.PathLike],
    encoder_file: Path | None = None,
) -> str:
    """What a training run depends on: the config (less ``tokenize`` and the keys that only
    say how long to train or how often to log/validate/checkpoint), the chain shards and the
    ESM-IF1 file; ``state/`` is resumed only by a run with the same fingerprint."""
    d = cfg.to_dict()
    d.pop("tokenize", None)
    d.pop("encoder_checkpoint", None)  # a path: the file itself is fingerprinted below
    files = list(chain_shards) + ([encoder_file] if encoder_file is not None else [])
    text = config_fingerprint(d) + files_fingerprint(files)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_tokenizer(
    chain_shards: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    cfg: TokenizerConfig,
    device: str | None = None,
    encoder_checkpoint: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train (or resume) a tokenizer on the chains of ``chain_shards``; returns the record.

    With ``model.encoder: esm_if1`` the encoder is ESM-IF1's, loaded from
    ``encoder_checkpoint`` (else ``cfg.encoder_checkpoint``; a local file) and kept frozen, as in
    the paper; everything after it trains.
    """
    encoder_file = _encoder_file(cfg, encoder_checkpoint)
    from dplm2.train import Trainer, dist_env, hardware_info
    from dplm2.tokenizer.data import TrainBatches

    out_dir = Path(out_dir)
    t0 = time.time()
    records = read_chain_shards(chain_shards)
    train = select_training(records, cfg.data)
    val = select_validation(records, cfg.data)
    val_on_train = False
    if not val:
        # Tiny demo data sets can have no validation chain; say so rather than skip silently.
        log.warning("no chains in split %r: validating on %d training chains instead",
                    cfg.data.val_split, min(len(train), cfg.data.val_max_chains))
        val, val_on_train = train[: cfg.data.val_max_chains], True
    log.info("tokenizer: %d training chains, %d validation chains", len(train), len(val))

    env = dist_env(device)
    if env.is_main:
        guard_state(out_dir / "state", run_fingerprint(cfg, chain_shards, encoder_file))
    if env.distributed:
        torch.distributed.barrier()  # no rank looks for checkpoints before the guard ran
    model = build_model(cfg)
    if encoder_file is not None:
        model.encoder.load_esm_if1(encoder_file)
        log.info("tokenizer: frozen ESM-IF1 encoder from %s", encoder_file)
    log.info("tokenizer: %.2fM parameters, device %s", num_parameters(model) / 1e6, env.device)
    validator = Validator(val, cfg.data.val_max_length, seed=cfg.train.seed)
    trainer = Trainer(
        model,
        tokenizer_loss,
        TrainBatches(train, cfg.data, cfg.train.seed),
        cfg.train,
        out_dir,
        val_fn=validator,
        export_fn=save_tokenizer,
        env=env,
        desc="tokenizer",
        count_tokens=lambda batch: int(batch["mask"].sum()),  # residues per second
    )
    last = trainer.fit()
    if not env.is_main:
        return {}
    if not validator.last_rows:
        # Nothing was trained in this run (its state/ was already at max_steps: the outputs
        # are being rewritten): the per-chain table comes from the same deterministic pass.
        model.eval()
        with torch.no_grad():
            validator(model)
    final_val = {k: v for k, v in last.items() if k.startswith("val_")}
    record = {
        "stage": "tokenizer",
        "dplm2_version": __version__,
        "config": cfg.to_dict(),
        "inputs": [{"path": str(p), "sha256": sha256_file(p)} for p in chain_shards],
        "train_chains": [r.id for r in train],
        "val_chains": [r.id for r in val],
        "validated_on_training_chains": val_on_train,
        "parameters": num_parameters(model),
        "encoder_checkpoint": None if encoder_file is None else {
            "path": str(encoder_file), "sha256": sha256_file(encoder_file)},
        "steps": trainer.step,
        "wall_s": float(last.get("wall_s", time.time() - t0)),
        "hardware": hardware_info(env.device),
        "precision": "bf16" if trainer.use_bf16 else "fp32",
        "final_validation": final_val,
        "per_chain_validation": [
            {k: v for k, v in r.items() if k != "tokens"} for r in validator.last_rows
        ],
        "weights_sha256": sha256_file(out_dir / WEIGHTS_NAME),
    }
    atomic_write_text(out_dir / RECORD_NAME, json.dumps(record, indent=2, default=float) + "\n")
    log.info("tokenizer: %d steps in %.0f s; validation %s", trainer.step, record["wall_s"],
             {k: round(v, 3) for k, v in final_val.items()})
    return record


__all__ = ["build_model", "save_tokenizer", "tokenizer_loss", "train_tokenizer"]

"""Warm start: an ESM-family checkpoint (ESM2 / DPLM, 33 tokens) -> a DPLM-2 network (8229).

Spec §4: the new embedding rows (8196 structure tokens and specials) are drawn from a normal
with the mean and standard deviation of the existing rows (per hidden dimension); the new
LM-head bias entries are 0. ``resize_token_embeddings`` is not used: it leaves
``lm_head.bias`` at the old size and initialises rows its own way, so the rows are built here.
The embedding and LM-head matrices are untied (DPLM-2 trains both; peft's modules_to_save
copies them separately, and an untied config makes the exported weights unambiguous).

A source that already has the DPLM-2 vocabulary (a DPLM-2 checkpoint of the same layout) is
loaded as is. Without a source the network is built from scratch (the demo: nothing can be
downloaded), which is logged as a warning.

Token dropout (spec §4: the training forward is the inference forward): the reference applies
ESM's token-dropout rescaling twice (its wrapper's embedding call, then the network's), for
every net it builds, since even its from-scratch net comes from an ESM2 config with
``token_dropout`` on. ``InitConfig.token_dropout_passes`` null (default) therefore gives 2
passes to a from-scratch model, and to a warm start 2 when the source's config has
``token_dropout`` on (ESM2, DPLM, DPLM-2 do), else 0; a source already in this project's
layout keeps the passes it records. An integer forces that many passes (0 = no rescaling,
this project's models before; see :data:`dplm2.lm.model.TOKEN_DROPOUT_PASSES`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import torch

from dplm2.config import StageConfig
from dplm2.io import atomic_path, atomic_write_text
from dplm2.lm.model import (
    TOKEN_DROPOUT_PASSES,
    DPLM2LM,
    TransformerConfig,
    embeddings_tied,
    mark_dplm2,
)
from dplm2.lm.objective import OBJECTIVES
from dplm2.lm.vocab import N_AA, VOCAB_SIZE

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class InitConfig(StageConfig):
    """Where the LM starts: ``source`` = hub id or folder of an ESM-family checkpoint, or
    ``null`` to build ``model`` from scratch. ``token_dropout_passes``: null = as the
    reference (see the module docstring), else that many passes."""

    SECTION = "lm.init"

    source: str | None
    seed: int
    model: TransformerConfig
    token_dropout_passes: int | None


def _extend_rows(old: torch.Tensor, new_rows: int, gen: torch.Generator) -> torch.Tensor:
    """Append ``new_rows`` rows ~ N(mean, std) of ``old``'s rows, per column. (V, H) -> (V+n, H)."""
    mean = old.float().mean(dim=0)  # (H,)
    std = old.float().std(dim=0)  # (H,)
    extra = torch.randn(new_rows, old.shape[1], generator=gen) * std + mean  # (n, H)
    return torch.cat([old.float(), extra]).to(old.dtype)


def extend_vocabulary(net, seed: int = 0, token_dropout_passes: int | None = None):
    """Grow a 33-token ``EsmForMaskedLM`` to the 8229-token DPLM-2 vocabulary, in place.

    Amino-acid rows (and their logits) are unchanged, so on an amino-acid-only input the
    amino-acid logits equal the source model's (with the same token-dropout rescaling).
    ``token_dropout_passes`` is recorded in the config (None: left unset, i.e. 0).
    """
    from torch import nn

    cfg = net.config
    if cfg.vocab_size != N_AA:
        raise ValueError(f"expected a {N_AA}-token ESM vocabulary, got vocab_size {cfg.vocab_size}")
    gen = torch.Generator().manual_seed(seed)
    n_new = VOCAB_SIZE - N_AA
    emb = net.esm.embeddings.word_embeddings
    head = net.lm_head
    tied = head.decoder.weight is emb.weight
    with torch.no_grad():
        emb_w = _extend_rows(emb.weight.detach(), n_new, gen)  # (V, H)
        # A tied source shares one matrix: start the (now untied) head from the same rows.
        dec_w = emb_w.clone() if tied else _extend_rows(head.decoder.weight.detach(), n_new, gen)
        bias = torch.cat([head.bias.detach(), torch.zeros(n_new, dtype=head.bias.dtype)])
    new_emb = nn.Embedding(VOCAB_SIZE, emb_w.shape[1], padding_idx=emb.padding_idx)
    new_emb.weight = nn.Parameter(emb_w)
    net.esm.embeddings.word_embeddings = new_emb
    new_dec = nn.Linear(dec_w.shape[1], VOCAB_SIZE, bias=False)
    new_dec.weight = nn.Parameter(dec_w)
    head.decoder = new_dec
    head.bias = nn.Parameter(bias)
    mark_dplm2(cfg, token_dropout_passes=token_dropout_passes)
    return net


def reference_passes(net_config) -> int:
    """Token-dropout passes the reference applies to a net of this (source) config: 2 with
    ``token_dropout`` on, else 0; a config of this project's layout says it itself."""
    recorded = getattr(net_config, TOKEN_DROPOUT_PASSES, None)
    if recorded is not None and getattr(net_config, "dplm2", None) is not None:
        return int(recorded)
    return 2 if getattr(net_config, "token_dropout", False) else 0


def build_network(cfg: InitConfig):
    """The DPLM-2 ``EsmForMaskedLM`` described by ``cfg`` (warm-started or from scratch)."""
    from transformers import EsmForMaskedLM

    attn = cfg.model.attn_implementation
    if cfg.source is None:
        log.warning(
            "LM WARM START: no source checkpoint configured (lm.init.source is null): building a "
            "%d-layer, %d-wide model FROM SCRATCH. Paper runs warm-start from DPLM/ESM2.",
            cfg.model.num_layers, cfg.model.hidden_size,
        )
        torch.manual_seed(cfg.seed)
        passes = 2 if cfg.token_dropout_passes is None else cfg.token_dropout_passes
        esm_cfg = mark_dplm2(cfg.model.esm_config(), tied=cfg.model.tie_embeddings,
                             token_dropout_passes=passes)
        net = EsmForMaskedLM(esm_cfg)
        net.set_attn_implementation(attn)
        return net
    source = str(cfg.source)
    if source.startswith((".", "/")) and not Path(source).is_dir():
        raise FileNotFoundError(f"{source}: warm-start checkpoint folder does not exist")
    net = _load_esm(source, attn)
    vocab = net.config.vocab_size
    passes = cfg.token_dropout_passes
    if passes is None:
        passes = reference_passes(net.config)
    log.info("warm start from %s (%d layers, hidden %d, vocab %d, %d token-dropout passes)",
             source, net.config.num_hidden_layers, net.config.hidden_size, vocab, passes)
    if vocab == N_AA:
        extend_vocabulary(net, cfg.seed, token_dropout_passes=passes)
    elif vocab == VOCAB_SIZE:
        log.info("%s already has the DPLM-2 vocabulary: loaded as is", source)
        mark_dplm2(net.config, tied=embeddings_tied(net), token_dropout_passes=passes)
    else:
        raise ValueError(
            f"{source}: vocab_size {vocab} is neither ESM's {N_AA} nor DPLM-2's {VOCAB_SIZE}"
        )
    return net


def build_bit_model(cfg: InitConfig):
    """The DPLM-2 Bit model described by ``cfg`` (``lm.objective: bit``), as the reference's
    ``get_net_dplm2_bit``: from scratch (``source`` null), or the ESM body and 33-id head of
    an ESM-family checkpoint (DPLM / ESM2: the reference's ``train_from_dplm``, loaded with
    ``strict=False``) with a new structure head, ``quant2emb`` and special vectors, or a bit
    checkpoint (ours or released) as it is."""

    from dplm2.lm import bit

    attn = cfg.model.attn_implementation
    torch.manual_seed(cfg.seed)
    if cfg.source is None:
        log.warning("LM WARM START: no source checkpoint: building a %d-layer, %d-wide DPLM-2 "
                    "Bit model FROM SCRATCH.", cfg.model.num_layers, cfg.model.hidden_size)
        m = cfg.model
        passes = 2 if cfg.token_dropout_passes is None else cfg.token_dropout_passes
        net = bit.EsmForDPLM2Bit(bit.bit_esm_config(
            m.hidden_size, m.num_layers, m.num_heads, m.intermediate_size, dropout=m.dropout,
            max_position_embeddings=m.max_position_embeddings, token_dropout_passes=passes))
        net.set_attn_implementation(attn)
        return bit.DPLM2BitLM(net)
    source = str(cfg.source)
    if Path(source).is_dir() and (Path(source) / "config.json").is_file():
        raw = json.loads((Path(source) / "config.json").read_text())
        if raw.get(bit.BIT_KEY) is not None or "bit" in str(raw.get("dplm_type", "")):
            from dplm2.lm.load import load_lm

            return load_lm(source).train()
    src = _load_esm(source, attn)
    if src.config.vocab_size != N_AA:
        raise ValueError(f"{source}: a bit model starts from a {N_AA}-token ESM-family "
                         f"checkpoint (or a bit one), got vocab_size {src.config.vocab_size}")
    passes = cfg.token_dropout_passes
    if passes is None:
        passes = reference_passes(src.config)
    c = src.config
    net = bit.EsmForDPLM2Bit(bit.bit_esm_config(
        c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size,
        dropout=cfg.model.dropout, max_position_embeddings=c.max_position_embeddings,
        token_dropout_passes=passes, layer_norm_eps=c.layer_norm_eps,
        emb_layer_norm_before=bool(getattr(c, "emb_layer_norm_before", False) or False)))
    state = {k: v for k, v in src.state_dict().items() if k.startswith(("esm.", "lm_head."))}
    if embeddings_tied(src):
        state["lm_head.decoder.weight"] = state["esm.embeddings.word_embeddings.weight"].clone()
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert not any(k.startswith(("esm.encoder", "lm_head.")) for k in missing), missing
    net.set_attn_implementation(attn)
    log.info("bit model warm-started from %s; new: %s", source,
             sorted({k.split(".")[0] for k in missing}))
    return bit.DPLM2BitLM(net)


def _load_esm(source: str, attn: str):
    """``EsmForMaskedLM.from_pretrained(source)`` with errors that name the source and its
    weights file (transformers' own, e.g. for a pickle that ``weights_only`` refuses, name
    neither)."""
    from transformers import EsmForMaskedLM

    folder = Path(source)
    if folder.is_dir():
        weights = [folder / n for n in ("model.safetensors", "pytorch_model.bin")
                   if (folder / n).is_file()]
        if weights and weights[0].suffix == ".safetensors":
            from dplm2.io.weights import verify_weights

            verify_weights(weights[0])
        where = str(weights[0]) if weights else source
    else:
        where = source
    try:
        return EsmForMaskedLM.from_pretrained(source, attn_implementation=attn)
    except OSError as exc:
        raise FileNotFoundError(f"{source}: cannot load an ESM checkpoint ({exc})") from exc
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"{where}: cannot load this ESM checkpoint ({type(exc).__name__}: "
                         f"{first}); use a safetensors or a plain-tensor checkpoint (pickled "
                         "code is never run)") from exc


def warm_start(cfg: InitConfig, out_dir: str | os.PathLike, objective: str = "index") -> Path:
    """Build the initial model (``objective`` index: DPLM-2, bit: DPLM-2 Bit) and write
    ``out_dir`` (config.json, model.safetensors, vocab, ``init.json`` provenance)
    atomically."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be {'|'.join(OBJECTIVES)}, got {objective!r}")
    model = build_bit_model(cfg) if objective == "bit" else DPLM2LM(build_network(cfg))
    out = Path(out_dir)
    with atomic_path(out, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        record = {
            "source": cfg.source,
            "from_scratch": cfg.source is None,
            "objective": objective,
            "seed": cfg.seed,
            "parameters": model.num_parameters(),
            "token_dropout_passes": int(getattr(model.config, TOKEN_DROPOUT_PASSES, 0) or 0),
            "config": cfg.to_dict(),
        }
        atomic_write_text(tmp / "init.json", json.dumps(record, indent=2) + "\n")
    log.info("wrote %s (%d parameters)", out, model.num_parameters())
    return out

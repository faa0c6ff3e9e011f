"""ESM-IF1's GVP-Transformer encoder: the encoder of the released DPLM-2 tokenizer.

The reference (``bytedance/dplm``, ``GVPTransformerEncoderWrapper2`` in
``byprot/models/structok/modules/gvp_encoder.py``) takes ``esm_if1_gvp4_t16_142M_UR50().encoder``
from fair-esm, keeps it frozen, and feeds it the N, CA, C coordinates with

* ``padding_mask`` = positions past the chain's length,
* coordinates of residues outside ``res_mask`` set to NaN (fair-esm treats them as missing:
  no geometric features, sequence distance as the neighbour tie-breaker),
* ``confidence`` = ``res_mask`` as float (1 observed, 0 missing),

and uses ``encoder_out[0]`` transposed to ``[B, L, 512]``. :class:`GVPTransformerEncoder` here
does the same with the module taken from fair-esm itself -- not a port: fair-esm is the
library that defines these layers and the weight names, so the released ``encoder.encoder.*``
tensors load into it unchanged.

fair-esm 2.0.0 (its last release; the repository is archived) needs two things at import time
that this environment cannot give as published, so :func:`import_fair_esm` supplies them before
importing, and only there:

* ``torch_scatter`` -- imported by ``esm.inverse_folding.gvp_modules`` for ``scatter_add`` /
  ``scatter``, which only its autoregressive decoder layers call. PyPI has only the C++ source
  archive (no wheel for current torch), so when it is absent a module with the same two
  functions, implemented by ``torch_geometric.utils.scatter`` (pure PyTorch), is registered.
* ``biotite.structure.filter_backbone`` -- renamed ``filter_peptide_backbone`` in biotite 1.0;
  fair-esm imports the old name (for its PDB loader, unused here). The old name is added as an
  alias when missing.

The encoder's message passing is torch_geometric's ``MessagePassing`` (pure Python). Both
fair-esm and torch_geometric are the optional ``released`` extra (``pip install
'dplm2[released]'``; ``make install`` includes them); without them the released tokenizer still
decodes, and tokenizing raises :class:`FairEsmUnavailable` saying what to install.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dplm2.tokenizer.config import ModelConfig

#: fair-esm's alphabet of ESM-IF1 (``Alphabet.from_architecture("invariant_gvp")``, 35 tokens);
#: the encoder embeds only its ``<mask>`` and padding tokens.
ALPHABET_ARCHITECTURE = "invariant_gvp"
#: ESM-IF1 (``esm_if1_gvp4_t16_142M_UR50``) values that its weights do not determine.
ESM_IF1_HEADS = 8
ESM_IF1_TOP_K = 30
#: ESM-IF1's layer counts (8 transformer, 4 GVP), used when no encoder tensors say otherwise.
ESM_IF1_LAYERS = 8
ESM_IF1_GVP_LAYERS = 4
#: fair-esm's download address of ESM-IF1 (``{"args": Namespace, "model": state_dict}``).
ESM_IF1_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/esm_if1_gvp4_t16_142M_UR50.pt"

INSTALL_HINT = ("pip install 'fair-esm==2.0.0' 'torch_geometric>=2.5' (the optional 'released' "
                "extra of dplm2; make install includes it)")


class FairEsmUnavailable(ImportError):
    """fair-esm or torch_geometric is not installed; the message says what to install."""


def _scatter_module() -> types.ModuleType:
    """Stand-in for ``torch_scatter`` with the two functions fair-esm imports (same signature
    as torch_scatter's), computed by torch_geometric's pure-PyTorch ``scatter``."""
    from torch_geometric.utils import scatter as pyg_scatter

    def scatter(src, index, dim=-1, out=None, dim_size=None, reduce="sum"):
        if out is not None:
            raise NotImplementedError("the torch_scatter stand-in does not support out=")
        return pyg_scatter(src, index, dim, dim_size=dim_size, reduce=reduce)

    def scatter_add(src, index, dim=-1, out=None, dim_size=None):
        return scatter(src, index, dim, out, dim_size, reduce="sum")

    module = types.ModuleType("torch_scatter")
    module.__doc__ = "dplm2's stand-in for torch_scatter (see dplm2.tokenizer.gvp)"
    module.scatter, module.scatter_add = scatter, scatter_add
    return module


def import_fair_esm() -> tuple[Any, Any]:
    """``(GVPTransformerEncoder, Alphabet)`` from fair-esm, after the two import-time fixes of
    the module docstring; :class:`FairEsmUnavailable` when fair-esm or torch_geometric is not
    installed."""
    missing = [name for name, module in (("fair-esm", "esm"), ("torch_geometric", "torch_geometric"))
               if importlib.util.find_spec(module) is None]
    if missing:
        raise FairEsmUnavailable(
            f"the released tokenizer's encoder (ESM-IF1's GVP-Transformer) needs {' and '.join(missing)}"
            f": {INSTALL_HINT}")
    if "torch_scatter" not in sys.modules and importlib.util.find_spec("torch_scatter") is None:
        sys.modules["torch_scatter"] = _scatter_module()
    import biotite.structure as struc

    if not hasattr(struc, "filter_backbone"):
        struc.filter_backbone = struc.filter_peptide_backbone
    from esm.data import Alphabet
    from esm.inverse_folding.gvp_transformer_encoder import (
        GVPTransformerEncoder as FairEsmEncoder,
    )

    return FairEsmEncoder, Alphabet


def esm_if1_args(cfg: ModelConfig) -> argparse.Namespace:
    """fair-esm's encoder arguments for ``cfg`` (the ``gvp_`` prefix goes to the GVP-GNN)."""
    return argparse.Namespace(
        encoder_embed_dim=cfg.encoder_dim,
        encoder_layers=cfg.encoder_layers,
        encoder_attention_heads=cfg.encoder_heads,
        encoder_ffn_embed_dim=cfg.gvp_ffn_dim,
        dropout=cfg.dropout,
        attention_dropout=cfg.dropout,
        gvp_top_k_neighbors=cfg.encoder_neighbors,
        gvp_node_hidden_dim_scalar=cfg.gvp_node_scalar,
        gvp_node_hidden_dim_vector=cfg.gvp_node_vector,
        gvp_edge_hidden_dim_scalar=cfg.gvp_edge_scalar,
        gvp_edge_hidden_dim_vector=cfg.gvp_edge_vector,
        gvp_num_encoder_layers=cfg.encoder_message_layers,
        gvp_dropout=cfg.dropout,
    )


@contextlib.contextmanager
def _weights_flagged_trainable(module: nn.Module):
    """Mark ``module``'s weights ``requires_grad`` for the duration of a ``no_grad`` call.

    Only for speed: ATen's ``matmul`` folds a batched input into one ``mm`` when the weight
    requires grad and otherwise broadcasts it to ``bmm`` (``should_fold`` in
    LinearAlgebra.cpp), which is ~3x slower on CPU for the transposed vector-channel inputs of
    fair-esm's GVP layers (measured: 6.2 s vs 2.1 s for one 129-residue chain at ESM-IF1's
    size). Under ``no_grad`` no graph is built, so nothing can receive a gradient; the flags
    are restored afterwards, so optimizers and DDP, which read them at construction, never see
    these weights as trainable.
    """
    params = [p for p in module.parameters() if not p.requires_grad]
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(False)


class GVPTransformerEncoder(nn.Module):
    """``(coords, atom_mask, mask) -> [B, L, encoder_dim]`` through fair-esm's encoder.

    Always frozen, as in the reference: no gradients, so training a tokenizer around it trains
    only what follows the encoder. One deliberate difference: ``train()`` leaves it in eval
    mode. The reference freezes the weights but lets the module follow its parent's mode, so
    ESM-IF1's dropout (0.1) is active while the reference trains; here training sees exactly
    the features the tokenizer will later tokenize with.

    ``self.encoder`` is fair-esm's module, so this module's weights are named
    ``encoder.<fair-esm name>`` -- the released checkpoint's ``encoder.encoder.*`` once the
    tokenizer adds its own ``encoder.`` prefix. Positions whose residue has no atom at all are
    padding (our batches pad with empty residues); residues with atoms but without N, CA or C
    are missing coordinates, as in the reference.

    Like the reference, features of a chain's last residue see the padding after it (fair-esm
    computes dihedrals and orientations on the zero-filled padded array), so a chain's tokens
    can differ with the batch it is padded in; :func:`dplm2.tokenizer.tokenize.tokenize_records`
    encodes one chain per pass, so token shards do not depend on their neighbours.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        fair_encoder, alphabet_cls = import_fair_esm()
        alphabet = alphabet_cls.from_architecture(ALPHABET_ARCHITECTURE)
        embed = nn.Embedding(len(alphabet), cfg.encoder_dim, padding_idx=alphabet.padding_idx)
        self.encoder = fair_encoder(esm_if1_args(cfg), alphabet, embed)
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> GVPTransformerEncoder:
        return super().train(False)

    @torch.no_grad()
    def forward(self, coords: torch.Tensor, atom_mask: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        padding = ~atom_mask.any(-1)
        observed = mask & ~padding
        xyz = coords[:, :, :3].float().masked_fill(~observed[..., None, None], float("nan"))
        with _weights_flagged_trainable(self.encoder):
            out = self.encoder(xyz, padding, observed.float())["encoder_out"][0]  # [L, B, C]
        return out.transpose(0, 1).to(coords.dtype)

    def load_esm_if1(self, path: str | os.PathLike) -> None:
        """Load the encoder of a fair-esm ESM-IF1 checkpoint (``esm_if1_gvp4_t16_142M_UR50.pt``,
        ``{"args": Namespace, "model": state_dict}``).

        The file is read with ``torch.load(weights_only=True)`` (tensors and the ``Namespace``
        of hyper-parameters only); fair-esm's own ``load_model_and_alphabet_core`` then builds
        the model, which also renames the tensors of its internal training code to the
        open-source names; its ``encoder`` is copied into this one (the decoder is not used).
        ``ValueError`` naming the file when it is not such a checkpoint or its sizes differ.
        """
        import esm.pretrained

        try:
            with torch.serialization.safe_globals([argparse.Namespace]):
                data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{path}: not a readable fair-esm checkpoint ({exc})") from exc
        if not (isinstance(data, dict) and isinstance(data.get("args"), argparse.Namespace)
                and isinstance(data.get("model"), dict)
                and "invariant_gvp" in str(getattr(data["args"], "arch", ""))):
            raise ValueError(f"{path}: not an ESM-IF1 checkpoint (fair-esm's "
                             "{'args': Namespace(arch='invariant_gvp', ...), 'model': ...})")
        try:
            model, _ = esm.pretrained.load_model_and_alphabet_core("esm_if1", data)
            self.encoder.load_state_dict(model.encoder.state_dict(), strict=True)
        except (RuntimeError, AttributeError, TypeError) as exc:
            raise ValueError(f"{path}: not this encoder's weights ({exc})") from exc

def fetch_checkpoint(url: str, dest: str | os.PathLike) -> Path:
    """Download ``url`` (http(s) or file://) to ``dest`` atomically, with the download stage's
    timeouts and retries (:class:`dplm2.download.fetch.Fetcher`) and a byte progress bar."""
    from tqdm.auto import tqdm

    from dplm2.download.config import HttpConfig
    from dplm2.download.fetch import Fetcher
    from dplm2.io import atomic_path

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fetcher = Fetcher(HttpConfig.from_dict())

    def attempt() -> None:
        with atomic_path(dest) as tmp, fetcher.open(url) as chunks, open(tmp, "wb") as fh, \
                tqdm(unit="B", unit_scale=True, desc=dest.name, mininterval=2.0) as bar:
            for chunk in chunks:
                fh.write(chunk)
                bar.update(len(chunk))

    fetcher.with_retries(url, attempt)
    return dest

"""The paper's tokenizer recipe: ESM-IF1's pretrained encoder, frozen, with the rest trained.

A tiny fair-esm ESM-IF1 checkpoint (``{"args": Namespace, "model": {"encoder.*", "decoder.*"}}``,
the layout of ``esm_if1_gvp4_t16_142M_UR50.pt``, read back by fair-esm's own loader) is written by
the test, served over HTTP from 127.0.0.1 and fetched with ``dplm2 tokenizer fetch-encoder``;
training must leave the encoder's weights untouched and change the rest.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading

import pytest
import torch
from safetensors.torch import load_file

from dplm2.config import ConfigError
from dplm2.tokenizer.config import TokenizerConfig
from dplm2.tokenizer.train import train_tokenizer

from .conftest import TINY_MODEL
from .test_official import (
    E, GVP_EDGE, GVP_FFN, GVP_GRAPH_LAYERS, GVP_LAYERS, GVP_NODE, gvp_args, needs_fair_esm,
)

pytestmark = needs_fair_esm

ENCODER_MODEL = {
    **TINY_MODEL, "encoder": "esm_if1", "encoder_dim": E, "encoder_heads": 8,
    "encoder_neighbors": 30, "encoder_layers": GVP_LAYERS,
    "encoder_message_layers": GVP_GRAPH_LAYERS, "gvp_ffn_dim": GVP_FFN,
    "gvp_node_scalar": GVP_NODE[0], "gvp_node_vector": GVP_NODE[1],
    "gvp_edge_scalar": GVP_EDGE[0], "gvp_edge_vector": GVP_EDGE[1], "bit_standardize": False,
}


def _cfg(steps: int, **extra) -> TokenizerConfig:
    return TokenizerConfig.from_dict({
        "model": ENCODER_MODEL, "loss": {"violation": 0.0},
        "data": {"crop_length": 24, "batch_size": 2, "val_max_chains": 1, "val_max_length": 24},
        "train": {"max_steps": steps, "lr": 1e-3, "warmup_steps": 0, "val_every": 0,
                  "ckpt_every": 1000, "log_every": 1, "precision": "fp32"},
        **extra,
    })


@pytest.fixture(scope="module")
def esm_if1_file(tmp_path_factory):
    """A tiny ESM-IF1 checkpoint in fair-esm's layout (a whole GVPTransformerModel: encoder and
    decoder, ``args.arch`` invariant_gvp); returns (path, its encoder's tensors)."""
    from esm.inverse_folding.gvp_transformer import GVPTransformerModel

    from dplm2.tokenizer.gvp import import_fair_esm

    _, alphabet_cls = import_fair_esm()
    args = gvp_args()
    vars(args).update(arch="invariant_gvp", decoder_embed_dim=E, decoder_layers=1,
                      decoder_attention_heads=2, decoder_ffn_embed_dim=GVP_FFN)
    torch.manual_seed(5)
    model = GVPTransformerModel(args, alphabet_cls.from_architecture("invariant_gvp"))
    path = tmp_path_factory.mktemp("esm_if1") / "esm_if1_gvp4_t16_142M_UR50.pt"
    torch.save({"args": args, "model": model.state_dict()}, path)
    return path, model.encoder.state_dict()


@pytest.fixture()
def http_server(esm_if1_file):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(esm_if1_file[0].parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_then_train_keeps_the_encoder_frozen(esm_if1_file, http_server, chain_shard,
                                                   tmp_path, caplog):
    from dplm2.cli import main
    from dplm2.tokenizer.hub import load_tokenizer

    src, encoder = esm_if1_file
    fetched = tmp_path / "enc" / "esm_if1.pt"
    assert main(["tokenizer", "fetch-encoder", "--url", f"{http_server}/{src.name}",
                 "--out", str(fetched)]) == 0
    assert fetched.read_bytes() == src.read_bytes()
    assert not list(fetched.parent.glob("*.tmp*"))
    missing = tmp_path / "enc" / "missing.pt"
    assert main(["tokenizer", "fetch-encoder", "--url", f"{http_server}/nothing.pt",
                 "--out", str(missing)]) == 2
    assert "nothing.pt" in caplog.text  # the error names the URL
    assert not missing.exists() and sorted(p.name for p in fetched.parent.iterdir()) == [
        "esm_if1.pt"]

    out = tmp_path / "tok"
    record = train_tokenizer([chain_shard], out, _cfg(4), encoder_checkpoint=fetched)
    assert record["steps"] == 4 and record["encoder_checkpoint"]["path"] == str(fetched)
    weights = load_file(out / "model.safetensors")
    for name, value in encoder.items():
        if name.endswith("_float_tensor"):
            continue
        assert torch.equal(weights[f"encoder.encoder.{name}"], value), name
    trained, _ = load_tokenizer(out)
    assert trained.cfg.encoder == "esm_if1"
    trained.train()  # the frozen encoder stays in eval mode (no dropout), the rest trains
    assert not any(m.training for m in trained.encoder.modules()) and trained.decoder.training
    from dplm2.tokenizer.data import collate, read_chain_shard

    batch = collate(read_chain_shard(chain_shard)[:1])
    tokens = trained.tokenize(batch["coords"], batch["atom_mask"], batch["mask"])
    assert tokens.shape == batch["mask"].shape
    # the forward pass flags the weights trainable only while it runs (speed; see gvp.py)
    assert not any(p.requires_grad for p in trained.encoder.parameters())
    torch.manual_seed(0)  # build_model's seed: the same initial pre-quantization head
    from dplm2.tokenizer.train import build_model

    initial = build_model(_cfg(4)).state_dict()
    assert not torch.equal(initial["quantizer.proj.weight"], weights["quantizer.proj.weight"])
    assert json.loads((out / "config.json").read_text())["encoder"] == "esm_if1"


def test_encoder_checkpoint_errors_name_the_problem(esm_if1_file, chain_shard, tmp_path):
    with pytest.raises(ConfigError, match="needs tokenizer.encoder_checkpoint"):
        train_tokenizer([chain_shard], tmp_path / "a", _cfg(1))
    with pytest.raises(ConfigError, match="training reads a local file"):
        train_tokenizer([chain_shard], tmp_path / "b",
                        _cfg(1, encoder_checkpoint="https://example.org/esm_if1.pt"))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        train_tokenizer([chain_shard], tmp_path / "c", _cfg(1),
                        encoder_checkpoint=tmp_path / "missing.pt")
    wrong = TokenizerConfig.from_dict({**_cfg(1).to_dict(),
                                       "model": {**ENCODER_MODEL, "gvp_ffn_dim": 2 * GVP_FFN}})
    with pytest.raises(ValueError, match=rf"{esm_if1_file[0].name}: not this encoder's weights"):
        train_tokenizer([chain_shard], tmp_path / "d", wrong, encoder_checkpoint=esm_if1_file[0])
    assert not (tmp_path / "d" / "model.safetensors").exists()
    plain = tmp_path / "plain.pt"
    torch.save({"encoder.w": torch.zeros(1)}, plain)
    with pytest.raises(ValueError, match="plain.pt: not an ESM-IF1 checkpoint"):
        train_tokenizer([chain_shard], tmp_path / "e", _cfg(1), encoder_checkpoint=plain)

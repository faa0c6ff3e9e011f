"""Helpers for the LM tests: real demo chains, tiny models, token shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import torch

REPO = Path(__file__).resolve().parents[2]
MIRROR = REPO / "resources" / "mirror" / "pdb" / "pub" / "pdb" / "data" / "structures" / "divided"
# Demo entries (resources/demo/pdb_ids.txt) with a first chain of >= 84 residues and pairwise
# different sequences. (4i6p is left out: its chain A is 3zee's sequence with another
# structure, so folding it from the sequence is ambiguous and capped memorisation near 50%.)
DEMO_ENTRIES = ("3zee", "1k6p", "1hml", "4zey", "3o5r", "4i39", "1aki", "3lzm")


def demo_proteins(n: int, length: int | None = None, seed: int = 0):
    """First chains of ``n`` demo entries (real sequences, optionally the first ``length``
    residues). Structure tokens: random but fixed (uniform over the 8192 codes, ``seed``):
    tests must not depend on a trained tokenizer, and uniform codes are the hardest case."""
    from dplm2.lm.data import Protein
    from dplm2.structure import read_chains

    rng = np.random.default_rng(seed)
    out = []
    for entry in DEMO_ENTRIES[:n]:
        path = MIRROR / "mmCIF" / entry[1:3] / f"{entry}.cif.gz"
        chain = read_chains(path)[0]
        seq = chain.sequence[:length] if length else chain.sequence
        out.append(Protein(chain.id, seq, rng.integers(0, 8192, len(seq))))
    return out


def demo_chains(n: int):
    """First chains (``dplm2.structure.Chain``) of the first ``n`` :data:`DEMO_ENTRIES`."""
    from dplm2.structure import read_chains

    return [read_chains(MIRROR / "mmCIF" / e[1:3] / f"{e}.cif.gz")[0] for e in DEMO_ENTRIES[:n]]


def fresh_tokenizer_codes(chains, length: int | None = None, seed: int = 0) -> list[np.ndarray]:
    """Structure tokens of ``chains`` (first ``length`` residues) from a freshly initialised
    demo-size structure tokenizer (``dplm2.tokenizer``, 8192 codes, weights from ``seed``).

    Real, structure-dependent codes without a trained tokenizer. Its bit standardisation is
    first calibrated on these chains (one train-mode pass with momentum 1, no gradient):
    uncalibrated, a fresh tokenizer puts every residue into ~7 codes; calibrated, 64 residues
    get 30-50 distinct codes, more than the trained demo tokenizer gives (the harder case).
    Deterministic: same chains and seed, same codes.
    """
    from dplm2.tokenizer.config import ModelConfig
    from dplm2.tokenizer.data import ShardChain, collate
    from dplm2.tokenizer.model import StructureTokenizer
    from dplm2.tokenizer.tokenize import tokenize_records

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cfg = ModelConfig.from_dict(dict(decoder="compact", encoder_dim=64, encoder_neighbors=16,
                                         encoder_layers=1, encoder_heads=4,
                                         post_dim=64, post_layers=1, post_heads=4, trunk_blocks=0, pair_dim=16,
                                         seq_head_width=16, pair_head_width=16, sm_blocks=1, ipa_heads=4))
        model = StructureTokenizer(cfg)
    records = [ShardChain(c, "pdb", "train") for c in chains]
    windows = [(0, min(length or len(c), len(c))) for c in chains]
    for m in model.modules():
        if hasattr(m, "running_mean"):
            m.momentum = 1.0
    model.train()
    with torch.no_grad():
        b = collate(records, windows)
        model.quantize(b["coords"], b["atom_mask"], b["mask"])
    tokens = tokenize_records(model, records, progress=False)
    return [t[: length or len(t)].astype(np.int64) for t in tokens]


def tokenized_demo_proteins(n: int, length: int | None = None):
    """First chains of ``n`` demo entries with :func:`fresh_tokenizer_codes` structure tokens."""
    from dplm2.lm.data import Protein

    chains = demo_chains(n)
    codes = fresh_tokenizer_codes(chains, length)
    return [Protein(c.id, c.sequence[: len(k)], k) for c, k in zip(chains, codes)]


def write_token_shard(proteins, path: Path, split: str = "train") -> Path:
    """A token shard with the tokenizer stage's schema."""
    from dplm2.io import write_parquet

    rows = [
        {
            "id": p.id,
            "source": "pdb",
            "split": split,
            "sequence": p.sequence,
            "struct_tokens": [int(c) for c in p.codes],
            "length": len(p.sequence),
            "plddt": None,
        }
        for p in proteins
    ]
    df = pl.DataFrame(rows).with_columns(pl.col("struct_tokens").cast(pl.List(pl.Int16)))
    return write_parquet(df, path, {"tokenizer_sha256": "test"})


def tiny_model(hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0):
    from transformers import EsmForMaskedLM

    from dplm2.lm.model import DPLM2LM, TransformerConfig

    torch.manual_seed(seed)
    cfg = TransformerConfig.from_dict(dict(hidden_size=hidden, num_layers=layers, num_heads=heads,
                                     intermediate_size=2 * hidden))
    return DPLM2LM(EsmForMaskedLM(cfg.esm_config()))


# -- tiny checkpoints in the released DPLM-2 layout (airkingbd/dplm2_*) -----------------------
OFFICIAL_HIDDEN, OFFICIAL_LAYERS, OFFICIAL_HEADS = 32, 2, 4


def official_names(permute_struct: bool = False, seed: int = 0) -> list[str]:
    """Released vocab.txt lines; ``permute_struct`` shuffles the structure part (ids >= 33)."""
    from dplm2.lm import official
    from dplm2.lm.vocab import N_AA

    names = official.official_vocab_names()
    if permute_struct:
        tail = names[N_AA:]
        order = np.random.default_rng(seed).permutation(len(tail))
        names = names[:N_AA] + [tail[i] for i in order]
    return names


#: config.json keys transformers 4.39 writes for the reference's EsmForDPLM2 (a config read
#: from facebook/esm2_*, which carries ``classifier_dropout`` and ``hidden_act``).
OFFICIAL_CONFIG_KEYS = (
    "_name_or_path", "architectures", "attention_probs_dropout_prob", "classifier_dropout",
    "dplm_type", "emb_layer_norm_before", "esmfold_config", "hidden_act", "hidden_dropout_prob",
    "hidden_size", "initializer_range", "intermediate_size", "is_folding_model",
    "layer_norm_eps", "mask_token_id", "max_position_embeddings", "model_type",
    "num_attention_heads", "num_hidden_layers", "pad_token_id", "position_embedding_type",
    "tie_word_embeddings", "token_dropout", "torch_dtype", "transformers_version", "use_cache",
    "vocab_list", "vocab_size",
)  # fmt: skip


def official_tensor_names(layers: int = OFFICIAL_LAYERS) -> list[str]:
    """Tensor names transformers 4.39 writes for EsmForDPLM2 (rotary), in its order."""
    names = ["esm.embeddings.word_embeddings.weight", "esm.embeddings.position_embeddings.weight"]
    for i in range(layers):
        p = f"esm.encoder.layer.{i}."
        for n in ("query", "key", "value"):
            names += [p + f"attention.self.{n}.weight", p + f"attention.self.{n}.bias"]
        names += [p + "attention.self.rotary_embeddings.inv_freq",
                  p + "attention.output.dense.weight", p + "attention.output.dense.bias",
                  p + "attention.LayerNorm.weight", p + "attention.LayerNorm.bias",
                  p + "intermediate.dense.weight", p + "intermediate.dense.bias",
                  p + "output.dense.weight", p + "output.dense.bias",
                  p + "LayerNorm.weight", p + "LayerNorm.bias"]
    names += ["esm.encoder.emb_layer_norm_after.weight", "esm.encoder.emb_layer_norm_after.bias",
              "esm.contact_head.regression.weight", "esm.contact_head.regression.bias",
              "lm_head.bias", "lm_head.dense.weight", "lm_head.dense.bias",
              "lm_head.layer_norm.weight", "lm_head.layer_norm.bias", "lm_head.decoder.weight"]
    return names


def write_official(folder: Path, names: list[str], *, prefix: str = "", token_dropout=True,
                   fmt: str = "safetensors", seed: int = 0,
                   extra: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """A tiny random checkpoint in the layout the reference writes (transformers 4.39's
    ``save_pretrained`` of ``EsmForDPLM2`` plus ``EsmTokenizer.save_vocabulary``): vocab.txt
    (no final newline), config.json with every key 4.39 writes, and the transformers 4 tensor
    names (:func:`official_tensor_names`: the unused absolute-position table, per-layer rotary
    ``inv_freq``, the contact head), optionally under ``prefix`` (``net.``: the reference's
    training checkpoints) and with ``extra`` tensors. ``fmt``: ``safetensors`` or ``bin``.
    Returns the raw tensors (without prefix or extras). Shared by the LM and workflow tests."""
    g = torch.Generator().manual_seed(seed)
    H, LAYERS, HEADS = OFFICIAL_HIDDEN, OFFICIAL_LAYERS, OFFICIAL_HEADS
    V, I, P = len(names), 2 * H, 1026
    d = H // HEADS
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))

    def r(*shape, s=0.2):
        return torch.randn(*shape, generator=g) * s

    state = {"esm.embeddings.word_embeddings.weight": r(V, H, s=1.0),
             "esm.embeddings.position_embeddings.weight": r(P, H, s=0.02)}
    state["esm.embeddings.position_embeddings.weight"][1] = 0  # padding_idx row
    for i in range(LAYERS):
        p = f"esm.encoder.layer.{i}."
        for n in ("query", "key", "value"):
            state[p + f"attention.self.{n}.weight"] = r(H, H)
            state[p + f"attention.self.{n}.bias"] = r(H)
        state[p + "attention.self.rotary_embeddings.inv_freq"] = inv_freq.clone()
        state[p + "attention.output.dense.weight"] = r(H, H)
        state[p + "attention.output.dense.bias"] = r(H)
        state[p + "attention.LayerNorm.weight"] = 1 + r(H, s=0.1)
        state[p + "attention.LayerNorm.bias"] = r(H, s=0.1)
        state[p + "intermediate.dense.weight"] = r(I, H)
        state[p + "intermediate.dense.bias"] = r(I)
        state[p + "output.dense.weight"] = r(H, I)
        state[p + "output.dense.bias"] = r(H)
        state[p + "LayerNorm.weight"] = 1 + r(H, s=0.1)
        state[p + "LayerNorm.bias"] = r(H, s=0.1)
    state["esm.encoder.emb_layer_norm_after.weight"] = 1 + r(H, s=0.1)
    state["esm.encoder.emb_layer_norm_after.bias"] = r(H, s=0.1)
    state["esm.contact_head.regression.weight"] = r(1, LAYERS * HEADS)
    state["esm.contact_head.regression.bias"] = r(1)
    state["lm_head.bias"] = r(V)
    state["lm_head.dense.weight"] = r(H, H)
    state["lm_head.dense.bias"] = r(H)
    state["lm_head.layer_norm.weight"] = 1 + r(H, s=0.1)
    state["lm_head.layer_norm.bias"] = r(H, s=0.1)
    state["lm_head.decoder.weight"] = r(V, H)
    assert list(state) == official_tensor_names(LAYERS)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(names))
    cfg = {"_name_or_path": "/tmp/dplm2_tiny", "architectures": ["EsmForDPLM2"],
           "attention_probs_dropout_prob": 0.0, "classifier_dropout": None,
           "dplm_type": "dplm2_esm", "emb_layer_norm_before": False, "esmfold_config": None,
           "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": H,
           "initializer_range": 0.02, "intermediate_size": I, "is_folding_model": False,
           "layer_norm_eps": 1e-05, "mask_token_id": 32, "max_position_embeddings": P,
           "model_type": "esm", "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
           "pad_token_id": 1, "position_embedding_type": "rotary", "tie_word_embeddings": False,
           "token_dropout": token_dropout, "torch_dtype": "float32",
           "transformers_version": "4.39.2", "use_cache": True, "vocab_list": None,
           "vocab_size": V}
    assert tuple(cfg) == OFFICIAL_CONFIG_KEYS
    (folder / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    named = {prefix + k: v for k, v in state.items()}
    named.update(extra or {})
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(named, str(folder / "model.safetensors"), metadata={"format": "pt"})
    elif fmt == "bin":
        torch.save(named, folder / "pytorch_model.bin")
    else:
        raise ValueError(f"fmt {fmt!r}")
    return state


# -- tiny checkpoints in the released DPLM-2 Bit layout (airkingbd/dplm2_bit_650m) -------------
def official_bit_tensor_names(layers: int = OFFICIAL_LAYERS) -> list[str]:
    """Tensor names transformers 4.39 writes for the reference's EsmForDPLM2Bit: the DPLM-2
    network's (33-row embedding and head) plus the structure head and the bit input layers."""
    return official_tensor_names(layers) + [
        "lm_head_struct.bias", "lm_head_struct.dense.weight", "lm_head_struct.dense.bias",
        "lm_head_struct.layer_norm.weight", "lm_head_struct.layer_norm.bias",
        "lm_head_struct.decoder.weight",
        "struct_bos_emb", "struct_eos_emb", "struct_mask_emb",
        "quant2emb.weight", "quant2emb.bias",
    ]


def write_official_bit(folder: Path, *, prefix: str = "", token_dropout=True,
                       vocab: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny random checkpoint in the released DPLM-2 Bit layout: config.json as transformers
    4.39 writes it for ``EsmForDPLM2Bit`` (``dplm_type: dplm2_bit_esm``, ``vocab_size: 33``),
    the reference's tensor names (:func:`official_bit_tensor_names`), and ``vocab.txt`` (the
    released DPLM-2 one) only when ``vocab``. Returns the raw tensors (no prefix)."""
    from dplm2.lm.vocab import AA_TOKENS

    g = torch.Generator().manual_seed(seed + 1)
    H = OFFICIAL_HIDDEN
    extra = {
        "lm_head_struct.bias": torch.randn(26, generator=g) * 0.2,
        "lm_head_struct.dense.weight": torch.randn(H, H, generator=g) * 0.2,
        "lm_head_struct.dense.bias": torch.randn(H, generator=g) * 0.2,
        "lm_head_struct.layer_norm.weight": 1 + torch.randn(H, generator=g) * 0.1,
        "lm_head_struct.layer_norm.bias": torch.randn(H, generator=g) * 0.1,
        "lm_head_struct.decoder.weight": torch.randn(26, H, generator=g) * 0.5,
        "struct_bos_emb": torch.randn(H, generator=g),
        "struct_eos_emb": torch.randn(H, generator=g),
        "struct_mask_emb": torch.randn(H, generator=g),
        "quant2emb.weight": torch.randn(H, 13, generator=g) * 0.3,
        "quant2emb.bias": torch.randn(H, generator=g) * 0.1,
    }
    state = write_official(folder, list(AA_TOKENS), prefix=prefix, token_dropout=token_dropout,
                           seed=seed, extra={prefix + k: v for k, v in extra.items()})
    state.update(extra)
    assert sorted(state) == sorted(official_bit_tensor_names())
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(architectures=["EsmForDPLM2Bit"], dplm_type="dplm2_bit_esm", vocab_size=33,
               _name_or_path="/tmp/dplm2_bit_tiny")
    assert tuple(sorted(cfg)) == OFFICIAL_CONFIG_KEYS
    (folder / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    if vocab:
        (folder / "vocab.txt").write_text("\n".join(official_names()))
    else:
        (folder / "vocab.txt").unlink()
    return state


def tiny_bit_model(hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0):
    from dplm2.lm.bit import tiny_bit_model as make

    return make(hidden, layers, heads, seed)

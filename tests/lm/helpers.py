"""Helpers for the LM tests: real demo chains, tiny models, token shards."""

from __future__ import annotations

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
    from dplm2.tokenizer.data import ChainRecord, collate
    from dplm2.tokenizer.model import StructureTokenizer
    from dplm2.tokenizer.tokenize import tokenize_records

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cfg = ModelConfig(encoder_dim=64, encoder_neighbors=16, encoder_layers=1, encoder_heads=4,
                          post_dim=64, post_layers=1, post_heads=4, trunk_blocks=0, pair_dim=16,
                          seq_head_width=16, pair_head_width=16, sm_blocks=1, ipa_heads=4)
        model = StructureTokenizer(cfg)
    records = [ChainRecord(c, "pdb", "train") for c in chains]
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

    from dplm2.lm.model import DPLM2LM, ModelConfig

    torch.manual_seed(seed)
    cfg = ModelConfig(hidden_size=hidden, num_layers=layers, num_heads=heads,
                      intermediate_size=2 * hidden)
    return DPLM2LM(EsmForMaskedLM(cfg.esm_config()))

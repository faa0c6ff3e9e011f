"""Helpers for the LM tests: real demo chains, tiny models, token shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

REPO = Path(__file__).resolve().parents[2]
MIRROR = REPO / "resources" / "mirror" / "pdb" / "pub" / "pdb" / "data" / "structures" / "divided"
# Demo entries (resources/demo/pdb_ids.txt) with a first chain of >= 84 residues.
DEMO_ENTRIES = ("3zee", "4i6p", "1k6p", "1hml", "1aki", "3o5r", "4i39", "2nwd")


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

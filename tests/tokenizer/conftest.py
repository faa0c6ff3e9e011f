"""Fixtures for the tokenizer tests: real chains from the bundled mirror, tiny models.

Chains are read from ``resources/mirror`` (committed copies of wwPDB / AFDB files) with
:func:`dplm2.structure.read_chains`, never from outside the repository.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from dplm2.io import write_parquet
from dplm2.structure import read_chains

REPO = Path(__file__).resolve().parents[2]
PDB = REPO / "resources/mirror/pdb/pub/pdb/data/structures/divided/mmCIF"
AFDB = REPO / "resources/mirror/afdb/files"

# (file, chain id, split)
FIXTURE_CHAINS = [
    (PDB / "ak/1aki.cif.gz", "1aki_A", "train"),
    (PDB / "d7/2d7t.cif.gz", "2d7t_H", "train"),
    (PDB / "d7/2d7t.cif.gz", "2d7t_L", "train"),
    (PDB / "gl/1gl4.cif.gz", "1gl4_B", "train"),
    (PDB / "hh/4hhb.cif.gz", "4hhb_A", "valid"),
    (AFDB / "AF-P40452-F1-model_v1.pdb.gz", "AF-P40452-F1", "valid"),
]

TINY_MODEL = dict(
    decoder="compact", encoder_dim=32, encoder_neighbors=8, encoder_message_layers=1, encoder_layers=1,
    encoder_heads=4, post_dim=32, post_layers=1, post_heads=4, trunk_blocks=0, pair_dim=8,
    seq_head_width=8, pair_head_width=8, sm_blocks=2, ipa_heads=2, recycles=0,
    pair_from_sequence=True,
)


def _load():
    from dplm2.tokenizer.data import ShardChain

    cache: dict[Path, list] = {}
    out = []
    for path, cid, split in FIXTURE_CHAINS:
        source = "afdb" if "AF-" in path.name else "pdb"
        if path not in cache:
            cache[path] = read_chains(path, source=source)
        chain = next(c for c in cache[path] if c.id == cid)
        out.append(ShardChain(chain, source, split))
    return out


@pytest.fixture(scope="session")
def records():
    """Six real chains (4 train, 2 valid) as ChainRecords."""
    return _load()


def with_missing_n(rec, index: int):
    """A copy of ``rec`` whose residue ``index`` lost its N atom (so it has no frame)."""
    c = rec.chain
    coords = np.array(c.coords)
    mask = np.array(c.atom_mask)
    coords[index, 0] = np.nan
    mask[index, 0] = False
    return dataclasses.replace(rec, chain=dataclasses.replace(c, coords=coords, atom_mask=mask))


def write_chain_shard(records, path: Path) -> Path:
    """Write records as a chain shard (the process stage's schema)."""
    rows = []
    for r in records:
        row = r.chain.to_row()
        rows.append({
            "id": row["id"], "source": r.source, "split": r.split, "sequence": row["sequence"],
            "coords": row["coords"].tolist(), "atom_mask": row["atom_mask"].tolist(),
            "plddt": None if row["plddt"] is None else row["plddt"].tolist(),
            "length": row["length"], "res_ids": row["res_ids"].tolist(),
        })
    df = pl.DataFrame(rows, schema={
        "id": pl.String, "source": pl.String, "split": pl.String, "sequence": pl.String,
        "coords": pl.List(pl.Float32), "atom_mask": pl.List(pl.Boolean),
        "plddt": pl.List(pl.Float32), "length": pl.Int32, "res_ids": pl.List(pl.Int32),
    })
    return write_parquet(df, path, {"stage": "process"})


@pytest.fixture(scope="session")
def chain_shard(records, tmp_path_factory) -> Path:
    """A chain shard with the six fixture chains plus one with a missing backbone atom."""
    path = tmp_path_factory.mktemp("chains") / "chains-00000-of-00001.parquet"
    recs = list(records) + [dataclasses.replace(with_missing_n(records[3], 5), split="test")]
    return write_chain_shard(recs, path)


@pytest.fixture()
def tiny_model():
    from dplm2.tokenizer.config import LossConfig, ModelConfig
    from dplm2.tokenizer.model import StructureTokenizer

    torch.manual_seed(0)
    return StructureTokenizer(ModelConfig.from_dict(dict(**TINY_MODEL)),
                              LossConfig.from_dict(dict(frac_per_sample_entropy=0.5)))


def random_rigid(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random proper rotation (3x3) and translation."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q, rng.normal(scale=30.0, size=3)

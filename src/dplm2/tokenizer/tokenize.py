"""Chain shard (or structure files) -> token shard (the ``tokenize`` rule; one job per chain
shard). :func:`tokenize_files` takes structure files, folders and globs directly (``dplm2
tokenizer tokenize --structures``): every protein chain of every file, ``source`` "files",
``split`` null; bad files are all reported at once, or skipped and listed in the shard's
metadata (``skipped_inputs``) with ``skip_bad``.

Output schema (read by the language model), one row per chain, all splits in one file:
``id, source, split, sequence, struct_tokens (list<int16>), length, plddt (list<float32>)``.
``struct_tokens[i]`` is the LFQ code of residue i in ``[0, codebook_size)``, or
``unknown_token`` (= codebook_size, 8192 for the spec's 13 bits) where the residue lacks N,
CA or C. The file metadata records the tokenizer's weight hash (``tokenizer_sha256``), so a
shard made by other weights is detected by ``read_token_shard(..., expect_sha256=...)``.

Determinism: eval mode, fp32, one chain per forward pass (no padding, so a chain's tokens never
depend on its neighbours in the file), rows in input order.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from dplm2.io import read_parquet_checked, write_parquet
from dplm2.tokenizer.data import ShardChain, collate, read_chain_shard
from dplm2.tokenizer.model import StructureTokenizer

log = logging.getLogger(__name__)

TOKEN_COLUMNS = ("id", "source", "split", "sequence", "struct_tokens", "length", "plddt")
TOKEN_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("split", pa.string()),
        ("sequence", pa.string()),
        ("struct_tokens", pa.list_(pa.int16())),
        ("length", pa.int32()),
        ("plddt", pa.list_(pa.float32())),
    ]
)


@torch.no_grad()
def tokenize_records(model: StructureTokenizer, records, device: str | torch.device = "cpu",
                     progress: bool = True) -> list[np.ndarray]:
    """Tokens (int16 ``[L]``) of each chain record, one forward pass per chain."""
    model.eval()
    out = []
    for rec in tqdm(records, desc="tokenize", disable=not progress, mininterval=2.0):
        batch = collate([rec])
        tokens = model.tokenize(batch["coords"].to(device), batch["atom_mask"].to(device),
                                batch["mask"].to(device))
        out.append(tokens[0].cpu().numpy().astype(np.int16))
    return out


def tokenize_shard(
    model: StructureTokenizer,
    sha256: str,
    chain_shard: str | os.PathLike,
    out_path: str | os.PathLike,
    device: str | torch.device = "cpu",
) -> Path:
    """Tokenize every chain of ``chain_shard`` into the token shard ``out_path`` (atomic)."""
    return _write(model, sha256, read_chain_shard(chain_shard), out_path, device,
                  {"input": Path(chain_shard).name})


def tokenize_files(
    model: StructureTokenizer,
    sha256: str,
    inputs: list[str | os.PathLike],
    out_path: str | os.PathLike,
    device: str | torch.device = "cpu",
    skip_bad: bool = False,
) -> Path:
    """Tokenize every protein chain of structure files / folders / globs into ``out_path``."""
    from dplm2.structure.files import find_structure_files, read_structure_files

    found = find_structure_files(inputs)
    entries, failures = read_structure_files(
        found.files, skip_bad=skip_bad, source="pdb",
        hint="Pass --skip-bad-structures to leave them out (they are listed in the shard's "
             "metadata, skipped_inputs).")
    for _path, reason in failures:
        log.warning("skipped %s", reason)
    records = [ShardChain(c, "files", None) for e in entries for c in e.chains]
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"chain ids occur twice (files with the same name in two folders?): {dup[:5]}")
    if not records:
        raise ValueError(f"no protein chain in {[str(p) for p in inputs]}")
    meta = {"input": [str(p) for p in inputs],
            "skipped_inputs": [{"file": str(p), "reason": r} for p, r in failures]}
    return _write(model, sha256, records, out_path, device, meta)


def _write(model: StructureTokenizer, sha256: str, records: list[ShardChain],
           out_path: str | os.PathLike, device, extra_meta: dict) -> Path:
    t0 = time.time()
    tokens = tokenize_records(model, records, device)
    rows = {
        "id": [r.id for r in records],
        "source": [r.source for r in records],
        "split": [r.split for r in records],
        "sequence": [r.chain.sequence for r in records],
        "struct_tokens": [t.tolist() for t in tokens],
        "length": [len(r.chain) for r in records],
        "plddt": [None if r.chain.plddt is None else r.chain.plddt.tolist() for r in records],
    }
    table = pa.Table.from_pydict(rows, schema=TOKEN_SCHEMA)
    n_unknown = int(sum((t == model.cfg.unknown_token).sum() for t in tokens))
    meta = {
        "stage": "tokenize",
        "tokenizer_sha256": sha256,
        "codebook_size": model.cfg.codebook_size,
        "unknown_token": model.cfg.unknown_token,
        **extra_meta,
    }
    write_parquet(table, out_path, meta)
    log.info("%s: %d chains, %d residues (%d unknown) in %.1f s", out_path, len(records),
             sum(rows["length"]), n_unknown, time.time() - t0)
    return Path(out_path)


def read_token_shard(path: str | os.PathLike, expect_sha256: str | None = None) -> pl.DataFrame:
    """Read a token shard, checking its columns and (optionally) the tokenizer hash."""
    expect = {"tokenizer_sha256": expect_sha256} if expect_sha256 else None
    return read_parquet_checked(path, TOKEN_COLUMNS, expect)

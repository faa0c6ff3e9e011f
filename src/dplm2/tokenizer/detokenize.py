"""Structure tokens -> backbone files (PDB or mmCIF).

The decoder's final structure-module block gives N, CA, C, O per residue;
:func:`dplm2.structure.write_backbone` adds the virtual CB and writes the file atomically.
Residue names are the argmax of the decoder's amino-acid head (the decoder never sees the
sequence), the B-factor column holds its predicted lDDT (0-100). Residues with the unknown
token are decoded as gaps: no atoms are written for them (residue name UNK).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dplm2.tokenizer.data import AA_LETTERS
from dplm2.tokenizer.model import StructureTokenizer

log = logging.getLogger(__name__)

FORMATS = {"pdb": ".pdb", "cif": ".cif"}


@dataclasses.dataclass(frozen=True)
class DecodedChain:
    """One decoded chain: ``backbone [L, 4, 3]`` (NaN at unknown tokens), sequence, pLDDT."""

    backbone: np.ndarray
    sequence: str
    plddt: np.ndarray


def check_tokens(tokens: Sequence[int] | np.ndarray, codebook_size: int, where: str = "tokens") -> np.ndarray:
    """Validate a token list: ints in ``[0, codebook_size]`` (the last = unknown)."""
    arr = np.asarray(tokens)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{where}: expected a non-empty 1-D token list, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{where}: tokens must be integers, got {arr.dtype}")
    bad = (arr < 0) | (arr > codebook_size)
    if bad.any():
        raise ValueError(f"{where}: token {int(arr[bad][0])} outside [0, {codebook_size}] "
                         f"(codes 0-{codebook_size - 1}, unknown {codebook_size})")
    return arr.astype(np.int64)


@torch.no_grad()
def decode_tokens(model: StructureTokenizer, tokens: Sequence[int] | np.ndarray,
                  device: str | torch.device = "cpu", where: str = "tokens") -> DecodedChain:
    """Decode one chain's tokens."""
    arr = check_tokens(tokens, model.cfg.codebook_size, where)
    dec = model.detokenize(torch.from_numpy(arr)[None].to(device))
    mask = dec["mask"][0].cpu().numpy()
    bb = dec["backbone"][0].cpu().numpy().astype(np.float32)
    bb[~mask] = np.nan
    aa = dec["aatype"][0].cpu().numpy()
    seq = "".join(AA_LETTERS[a] if m else "X" for a, m in zip(aa, mask))
    plddt = np.where(mask, dec["plddt"][0].cpu().numpy(), 0.0).astype(np.float32)
    return DecodedChain(bb, seq, plddt)


def write_decoded(decoded: DecodedChain, path: str | os.PathLike, chain_id: str = "A") -> Path:
    """Write a decoded chain as PDB or mmCIF (by suffix), pLDDT in the B-factor column."""
    from dplm2.structure import write_backbone

    write_backbone(path, decoded.backbone, decoded.sequence, bfactors=decoded.plddt,
                   chain_id=chain_id)
    return Path(path)


def detokenize_shard(
    model: StructureTokenizer,
    token_shard: str | os.PathLike,
    out_dir: str | os.PathLike,
    fmt: str = "pdb",
    ids: Sequence[str] | None = None,
    limit: int | None = None,
    device: str | torch.device = "cpu",
) -> list[Path]:
    """Decode chains of a token shard into ``out_dir/<id>.<fmt>``; returns the written paths."""
    from dplm2.tokenizer.tokenize import read_token_shard

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    df = read_token_shard(token_shard)
    if ids:
        missing = sorted(set(ids) - set(df["id"].to_list()))
        if missing:
            raise ValueError(f"{token_shard}: ids not found: {missing[:5]}")
        df = df.filter(df["id"].is_in(list(ids)))
    if limit is not None:
        df = df.head(limit)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in tqdm(df.iter_rows(named=True), total=df.height, desc="detokenize", mininterval=2.0):
        decoded = decode_tokens(model, row["struct_tokens"], device,
                                where=f"{token_shard}: {row['id']}")
        paths.append(write_decoded(decoded, out_dir / f"{row['id']}{FORMATS[fmt]}"))
    log.info("wrote %d structures to %s", len(paths), out_dir)
    return paths

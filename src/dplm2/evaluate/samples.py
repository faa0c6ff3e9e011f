"""Read the generation stage's ``samples.parquet`` and the structures it points to.

Contract with ``dplm2 generate`` (one row per sample, ``results/generate/{task}/samples.parquet``):

============================  =========================  ==========================================
column                        tasks                      meaning
============================  =========================  ==========================================
``sample_id`` (str)           all                        unique within the task
``task`` (str)                all                        ``cogen``, ``folding``, ``inverse_folding``,
                                                         ``scaffold``
``length`` (int)              all                        residues
``sequence`` (str)            all                        generated (or given) amino acids
``struct_tokens`` (list<int>) all                        generated (or given) structure tokens
``pdb_path`` (str)            cogen, folding, scaffold   decoded structure (tokenizer decoder)
``target_id`` (str)           folding, inverse_folding,  the reference chain / benchmark problem
                              scaffold
``reference_path`` (str)      folding, inverse_folding,  the true structure (folding, inverse
                              scaffold                   folding) or the ``_reference`` motif file
``reference_chain`` (str)     optional                   chain in ``reference_path`` (default: first)
``reference_sequence`` (str)  optional, inverse_folding  native sequence (default: from the file)
``motif_positions``           scaffold                   0-based motif residues in the sample
(list<int>)
``reference_motif_positions`` scaffold                   0-based motif residues in the reference
(list<int>)                                              chain, same order as ``motif_positions``
============================  =========================  ==========================================

Relative paths are resolved against the folder holding ``samples.parquet`` first, then against
the working directory (the workflow root), so either convention works.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import polars as pl

from dplm2.io import read_parquet_checked

BASE_COLUMNS = ("sample_id", "task", "length", "sequence")
REQUIRED: dict[str, tuple[str, ...]] = {
    "cogen": BASE_COLUMNS + ("pdb_path",),
    "ss_cogen": BASE_COLUMNS + ("pdb_path",),
    "folding": BASE_COLUMNS + ("pdb_path", "target_id", "reference_path"),
    "inverse_folding": BASE_COLUMNS + ("target_id", "reference_path"),
    "scaffold": BASE_COLUMNS
    + ("pdb_path", "target_id", "reference_path", "motif_positions", "reference_motif_positions"),
}


def read_samples(path: str | os.PathLike, task: str) -> pl.DataFrame:
    """Load and check one task's sample table.

    Raises ``ValueError`` naming the file when columns are missing, ``sample_id`` repeats, a
    row belongs to another task, or ``length`` disagrees with the sequence.
    """
    if task not in REQUIRED:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(REQUIRED)}")
    df = read_parquet_checked(path, REQUIRED[task])
    if df.height == 0:
        raise ValueError(f"{path}: no samples")
    dup = df.filter(pl.col("sample_id").is_duplicated())["sample_id"].unique().to_list()
    if dup:
        raise ValueError(f"{path}: repeated sample_id(s) {dup[:5]}")
    other = sorted(set(df["task"].to_list()) - {task})
    if other:
        raise ValueError(f"{path}: rows of task(s) {other} in the {task!r} table")
    bad = df.filter(pl.col("sequence").str.len_chars() != pl.col("length"))
    if bad.height:
        raise ValueError(
            f"{path}: length != len(sequence) for sample(s) {bad['sample_id'].head(5).to_list()}"
        )
    return df.with_columns(_base=pl.lit(str(Path(path).resolve().parent)))


def resolve(path_value: str, base: str | os.PathLike) -> Path:
    """Absolute path of a file named in the samples table (see module docstring)."""
    p = Path(path_value)
    if p.is_absolute():
        candidates = [p]
    else:
        candidates = [Path(base) / p, Path.cwd() / p]
    for c in candidates:
        if c.exists():
            return c
    raise FileNotFoundError(
        f"structure file {path_value!r} not found (tried {', '.join(map(str, candidates))})"
    )


@functools.lru_cache(maxsize=256)
def _load(path: str, chain: str | None):
    from dplm2.structure import read_chains

    chains = read_chains(path)
    if not chains:
        raise ValueError(f"{path}: no protein chain")
    if chain is None:
        return chains[0]
    for c in chains:
        if c.chain_id == chain:
            return c
    raise ValueError(f"{path}: no chain {chain!r}; has {[c.chain_id for c in chains]}")


def load_chain(path: str | os.PathLike, chain: str | None = None):
    """The (first or named) protein chain of a structure file as a ``dplm2.structure.Chain``.

    Cached: references shared by many samples (a benchmark target) are parsed once.
    """
    return _load(str(Path(path).resolve()), chain)


def sample_structure(row: dict) -> np.ndarray:
    """Decoded backbone ``[L, 4, 3]`` of a sample; checks it matches the sample length."""
    chain = load_chain(resolve(row["pdb_path"], row["_base"]))
    if len(chain) != int(row["length"]):
        raise ValueError(
            f"sample {row['sample_id']}: {row['pdb_path']} has {len(chain)} residues, "
            f"samples table says {row['length']}"
        )
    return np.asarray(chain.coords, dtype=np.float64)


def reference_chain(row: dict):
    """The reference chain of a conditional sample."""
    chain = row.get("reference_chain") or None
    return load_chain(resolve(row["reference_path"], row["_base"]), chain)


def reference_backbone(row: dict, length: int) -> np.ndarray:
    """Reference backbone ``[length, 4, 3]`` aligned residue-for-residue with a sample.

    When the reference chain has exactly ``length`` residues it is used as is. Otherwise, when
    its residue numbers are positions ``1..length`` (the layout ``dplm2 generate`` writes with
    ``write_backbone``, which leaves out residues without any observed atom), residue ``k`` goes
    to position ``k - 1`` and the missing positions are NaN (skipped by RMSD and TM-align).
    Anything else is an error naming the file.
    """
    ref = reference_chain(row)
    coords = np.asarray(ref.coords, dtype=np.float64)
    if len(ref) == length:
        return coords
    ids = np.asarray(ref.res_ids)
    if len(ids) and ids.min() >= 1 and ids.max() <= length and len(np.unique(ids)) == len(ids):
        out = np.full((length, 4, 3), np.nan)
        out[ids - 1] = coords
        return out
    raise ValueError(
        f"sample {row['sample_id']}: {row['reference_path']} has {len(ref)} residues "
        f"(numbered {ids.min() if len(ids) else '-'}..{ids.max() if len(ids) else '-'}), "
        f"the sample {length}; cannot pair residues"
    )

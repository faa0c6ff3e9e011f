"""Secondary-structure-conditioned co-generation: a product-of-experts guidance table.

The user gives a per-residue 3-state string (``H`` helix, ``E`` strand, ``L`` / ``C`` / ``-``
loop). DPLM-2 has no SS conditioning of its own, so the sampler's structure-token logits at
residue i are tilted by a table estimated from the training data::

    logits[i, code] += weight * log p(target_ss[i] | code)

i.e. each step samples from ``(p_LM(code | context) * p(ss_i | code) ** weight) ** (1 / T)``
(the guidance is added before the step's temperature, so LM and table are tempered together).
``weight = 1`` is Bayes' rule ``p(code | ss) ∝ p(code) p(ss | code)`` applied per position;
larger weights push harder; ``weight = 0`` adds exact zeros (sampling is bit-identical to
unguided sampling). The amino-acid half and every special / mask token are left alone.

The table ``p(SS | structure token)`` (:func:`build_table`) pairs each training residue's token
(``results/tokens/*.parquet``) with its secondary structure from the real chain coordinates
(``results/chains/*.parquet``): biotite's P-SEA (``annotate_sse``, CA-only, the same call the
process stage's loop-fraction filter uses), ``a/b/c`` -> ``H/E/L``. Residues without a CA or
with the tokenizer's unknown code are skipped. Counts are Laplace-smoothed toward the overall
SS frequencies (the prior): ``p(s | c) = (n_cs + alpha * prior_s) / (n_c + alpha)``, so an
unseen code gets the prior and a rare one stays close to it.

Table file (Parquet, one row per code ``0 .. codebook_size-1``): ``code, n, p_H, p_E, p_L``
(``n`` residues counted, smoothed probabilities) and the raw counts ``n_H, n_E, n_L``;
metadata: ``prior`` ([H, E, L]), ``smoothing``, ``split``, ``codebook_size``,
``tokenizer_sha256`` (checked against the tokenizer used for generation), ``n_chains``,
``n_residues``.

Agreement of a design (:func:`agreement`): P-SEA on the tokenizer-decoded CA trace versus the
target, fraction of positions whose 3-state letters match.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import torch

from dplm2.io import read_parquet_checked, read_parquet_metadata, write_parquet
from dplm2.lm.vocab import STRUCT_OFFSET

log = logging.getLogger(__name__)

#: The three states, in table column order.
STATES = "HEL"
#: Letters accepted in a target string and their state index (C and - are loop).
SS_LETTERS = {"H": 0, "E": 1, "L": 2, "C": 2, "-": 2}
#: biotite P-SEA letters -> state index.
PSEA = {"a": 0, "b": 1, "c": 2}
TABLE_COLUMNS = ("code", "n", "p_H", "p_E", "p_L", "n_H", "n_E", "n_L")
TABLE_SCHEMA = pa.schema([("code", pa.int32()), ("n", pa.int64()), ("p_H", pa.float64()),
                          ("p_E", pa.float64()), ("p_L", pa.float64()), ("n_H", pa.int64()),
                          ("n_E", pa.int64()), ("n_L", pa.int64())])


# -- target strings ---------------------------------------------------------------------------
def parse_ss(ss: str) -> np.ndarray:
    """Target string -> int8 ``[L]`` of state indices (0 = H, 1 = E, 2 = L).

    Raises ``ValueError`` naming the first bad character and its position."""
    if not isinstance(ss, str) or not ss:
        raise ValueError(f"secondary-structure string must be a non-empty string, got {ss!r}")
    for i, ch in enumerate(ss):
        if ch not in SS_LETTERS:
            shown = ss if len(ss) <= 60 else ss[:57] + "..."
            raise ValueError(
                f"invalid secondary-structure character {ch!r} at position {i + 1} of {shown!r}: "
                "use H (helix), E (strand), L, C or - (loop)"
            )
    return np.array([SS_LETTERS[c] for c in ss], dtype=np.int8)


def ss_string(states: np.ndarray) -> str:
    """State indices ``[L]`` -> ``H/E/L`` string (``-1`` -> ``?``)."""
    return "".join(STATES[s] if 0 <= s < 3 else "?" for s in np.asarray(states).tolist())


def agreement(target: str, observed: str) -> float:
    """Fraction of positions whose 3-state letters match (``C``/``-`` count as ``L``)."""
    if len(target) != len(observed):
        raise ValueError(f"agreement: lengths differ ({len(target)} vs {len(observed)})")
    t = parse_ss(target)
    o = np.array([SS_LETTERS.get(c, -1) for c in observed], dtype=np.int8)
    return float(np.mean(t == o))


# -- secondary structure of coordinates -------------------------------------------------------
def _psea(ca: np.ndarray) -> np.ndarray:
    """P-SEA states int8 ``[L]`` of a CA trace ``[L, 3]`` numbered 1..L (NaN rows -> -1)."""
    import biotite.structure as struc

    ca = np.asarray(ca, dtype=np.float32)
    has = np.isfinite(ca).all(axis=1)
    out = np.full(len(ca), -1, dtype=np.int8)
    n = int(has.sum())
    if n == 0:
        return out
    atoms = struc.AtomArray(n)
    atoms.coord = ca[has]
    atoms.atom_name[:] = "CA"
    atoms.element[:] = "C"
    atoms.res_name[:] = "ALA"  # P-SEA only needs an amino-acid residue name
    # residues without CA leave a gap in res_id, which biotite treats as a chain break
    atoms.res_id = np.arange(1, len(ca) + 1)[has]
    # a collapsed decoded trace (coincident CAs) gives NaN angles inside P-SEA: coil, not a warning
    with np.errstate(invalid="ignore", divide="ignore"):
        out[has] = _states(struc.annotate_sse(atoms))
    return out


def _states(sse: np.ndarray) -> np.ndarray:
    return np.array([PSEA.get(s, -1) for s in np.asarray(sse).tolist()], dtype=np.int8)


def chain_ss(chain) -> np.ndarray:
    """P-SEA states int8 ``[L]`` of a :class:`dplm2.structure.Chain` (-1: no CA).

    The CA trace is built exactly as the process stage's SS filter builds it
    (:func:`dplm2.process.metrics.ca_atoms`: author numbering, so gaps in it are chain breaks)."""
    import biotite.structure as struc

    from dplm2.process.metrics import ca_atoms

    has = np.asarray(chain.atom_mask[:, 1], dtype=bool)
    out = np.full(len(chain), -1, dtype=np.int8)
    if not has.any():
        return out
    sse = struc.annotate_sse(ca_atoms(chain))
    if len(sse) != int(has.sum()):  # residues merged by repeated numbering: number by position
        return _psea(chain.coords[:, 1])
    out[has] = _states(sse)
    return out


def backbone_ss(backbone: np.ndarray) -> str:
    """``H/E/L`` string of a decoded backbone ``[L, 4, 3]`` (N, CA, C, O): P-SEA on its CAs."""
    return ss_string(_psea(np.asarray(backbone)[:, 1]))


# -- the table --------------------------------------------------------------------------------
def count_states(pairs: Iterable[tuple[np.ndarray, np.ndarray]], codebook_size: int) -> np.ndarray:
    """Counts int64 ``[K, 3]`` of (code, state) over ``(codes [L], states [L])`` pairs.

    Residues whose code is outside ``[0, K)`` (the tokenizer's unknown code) or whose state is
    -1 (no CA) are skipped."""
    counts = np.zeros((codebook_size, 3), dtype=np.int64)
    for codes, states in pairs:
        codes = np.asarray(codes, dtype=np.int64)
        states = np.asarray(states, dtype=np.int64)
        if codes.shape != states.shape:
            raise ValueError(f"count_states: {codes.shape} codes vs {states.shape} states")
        ok = (codes >= 0) & (codes < codebook_size) & (states >= 0) & (states < 3)
        np.add.at(counts, (codes[ok], states[ok]), 1)
    return counts


@dataclasses.dataclass(frozen=True, eq=False)
class SSTable:
    """``p(SS | code)`` for every code of one tokenizer.

    Attributes
    ----------
    counts : ndarray, int64, shape (K, 3)
        Training residues per (code, state H/E/L).
    prob : ndarray, float64, shape (K, 3)
        Smoothed ``p(state | code)``; rows sum to 1.
    prior : ndarray, float64, shape (3,)
        Overall state frequencies of the counted residues.
    smoothing : float
        Laplace pseudo-count ``alpha`` (strength of the pull toward the prior).
    meta : dict
        Provenance (``tokenizer_sha256``, ``split``, ``n_chains``, ...).
    """

    counts: np.ndarray
    prob: np.ndarray
    prior: np.ndarray
    smoothing: float
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_counts(cls, counts: np.ndarray, smoothing: float = 1.0, **meta: Any) -> SSTable:
        """Smooth ``counts [K, 3]``: ``p(s|c) = (n_cs + alpha * prior_s) / (n_c + alpha)``."""
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 2 or counts.shape[1] != 3 or len(counts) == 0:
            raise ValueError(f"counts must be [K, 3], got {counts.shape}")
        if not smoothing > 0:
            raise ValueError(f"smoothing must be > 0, got {smoothing}")
        total = counts.sum()
        if total == 0:
            raise ValueError("no residue with a valid code and a secondary structure to count")
        prior = counts.sum(axis=0) / total
        # a state never seen anywhere would get p = 0 and log p = -inf: give it a floor
        prior = np.maximum(prior, 1e-3)
        prior = prior / prior.sum()
        n = counts.sum(axis=1, keepdims=True)
        prob = (counts + smoothing * prior) / (n + smoothing)
        return cls(counts=counts, prob=prob, prior=prior, smoothing=float(smoothing), meta=dict(meta))

    @property
    def codebook_size(self) -> int:
        return len(self.counts)

    def log_p(self) -> torch.Tensor:
        """float32 ``[K, 3]``: ``log p(state | code)`` (finite: every entry is > 0)."""
        return torch.from_numpy(np.log(self.prob)).float()

    def argmax_ss(self, codes: np.ndarray) -> str:
        """Most likely state of each code ``[L]`` as an ``H/E/L`` string (``?`` outside the table)."""
        codes = np.asarray(codes, dtype=np.int64)
        ok = (codes >= 0) & (codes < self.codebook_size)
        states = np.full(len(codes), -1, dtype=np.int64)
        states[ok] = self.prob[codes[ok]].argmax(axis=1)
        return ss_string(states)

    def to_table(self) -> pa.Table:
        return pa.Table.from_pydict({
            "code": np.arange(self.codebook_size, dtype=np.int32),
            "n": self.counts.sum(axis=1),
            "p_H": self.prob[:, 0], "p_E": self.prob[:, 1], "p_L": self.prob[:, 2],
            "n_H": self.counts[:, 0], "n_E": self.counts[:, 1], "n_L": self.counts[:, 2],
        }, schema=TABLE_SCHEMA)

    def write(self, path: str | os.PathLike) -> Path:
        """Write the table atomically (module docstring: columns and metadata)."""
        meta = {"stage": "ss_table", **self.meta, "prior": self.prior.tolist(),
                "smoothing": self.smoothing, "codebook_size": self.codebook_size}
        return write_parquet(self.to_table(), path, meta)

    @classmethod
    def read(cls, path: str | os.PathLike, expect_tokenizer: str | None = None) -> SSTable:
        """Read a table; with ``expect_tokenizer`` refuse one made for other tokenizer weights."""
        df = read_parquet_checked(path, TABLE_COLUMNS)
        meta = read_parquet_metadata(path)
        if expect_tokenizer is not None and meta.get("tokenizer_sha256") not in (None, expect_tokenizer):
            raise ValueError(f"{path}: SS table made for tokenizer {str(meta['tokenizer_sha256'])[:16]}, "
                             f"not {expect_tokenizer[:16]} (rebuild it: dplm2 generate ss-table)")
        df = df.sort("code")
        k = df.height
        if df["code"].to_list() != list(range(k)):
            raise ValueError(f"{path}: codes must be 0..{k - 1} without gaps")
        prob = df.select("p_H", "p_E", "p_L").to_numpy().astype(np.float64)
        if not (np.isfinite(prob).all() and (prob > 0).all()
                and np.allclose(prob.sum(axis=1), 1.0, atol=1e-6)):
            raise ValueError(f"{path}: probabilities must be > 0 and sum to 1 per code")
        counts = df.select("n_H", "n_E", "n_L").to_numpy().astype(np.int64)
        if not np.array_equal(counts.sum(axis=1), df["n"].to_numpy()):
            raise ValueError(f"{path}: n != n_H + n_E + n_L")
        prior = np.asarray(meta.get("prior", prob.mean(axis=0)), dtype=np.float64)
        return cls(counts=counts, prob=prob, prior=prior, smoothing=float(meta.get("smoothing", 1.0)),
                   meta={k_: v for k_, v in meta.items() if k_ not in ("prior", "smoothing")})


def build_table(
    token_shards: Sequence[str | os.PathLike],
    chain_shards: Sequence[str | os.PathLike],
    split: str = "train",
    smoothing: float = 1.0,
) -> SSTable:
    """Count (token, P-SEA state) pairs of the ``split`` chains and smooth them.

    Tokens and chains are joined by chain ``id``; every token shard must come from the same
    tokenizer (``tokenizer_sha256`` metadata). A chain whose token count differs from its
    residue count is an error (the shards were made from different chain shards)."""
    from dplm2.tokenizer.data import read_chain_shard
    from dplm2.tokenizer.tokenize import read_token_shard

    token_shards = _expand(token_shards, "tokens-*.parquet")
    chain_shards = _expand(chain_shards, "chains-*.parquet")
    if not token_shards or not chain_shards:
        raise ValueError("ss table: give token shards and chain shards")
    shas, sizes, frames = set(), set(), []
    for p in token_shards:
        meta = read_parquet_metadata(p)
        shas.add(meta.get("tokenizer_sha256"))
        sizes.add(meta.get("codebook_size"))
        frames.append(read_token_shard(p).filter(pl.col("split") == split).select("id", "struct_tokens"))
    if len(shas) != 1 or len(sizes) != 1 or None in sizes:
        raise ValueError(f"token shards disagree on the tokenizer (sha256 {sorted(map(str, shas))}, "
                         f"codebook_size {sorted(map(str, sizes))})")
    sha, codebook_size = shas.pop(), int(sizes.pop())
    tokens = pl.concat(frames)
    if tokens["id"].is_duplicated().any():
        repeated = tokens.filter(pl.col("id").is_duplicated())["id"].head(3).to_list()
        raise ValueError(f"token shards repeat chain ids: {repeated}")
    row_of = {cid: i for i, cid in enumerate(tokens["id"].to_list())}
    col = tokens["struct_tokens"]

    n_chains, missing = 0, 0

    def pairs():
        nonlocal n_chains, missing
        for shard in chain_shards:
            for rec in read_chain_shard(shard):
                if rec.split != split:
                    continue
                i = row_of.get(rec.id)
                if i is None:
                    missing += 1
                    continue
                codes = np.asarray(col[i].to_numpy(), dtype=np.int64)
                if len(codes) != len(rec.chain):
                    raise ValueError(f"chain {rec.id!r}: {len(codes)} tokens for {len(rec.chain)} residues "
                                     "(token and chain shards do not match)")
                n_chains += 1
                yield codes, chain_ss(rec.chain)

    counts = count_states(pairs(), codebook_size)
    if missing:
        log.warning("ss table: %d %s chains have no tokens (skipped)", missing, split)
    table = SSTable.from_counts(counts, smoothing, tokenizer_sha256=sha, split=split,
                                n_chains=n_chains, n_residues=int(counts.sum()))
    used = int((counts.sum(axis=1) > 0).sum())
    log.info("ss table: %d %s chains, %d residues, %d of %d codes seen; prior H/E/L %s",
             n_chains, split, int(counts.sum()), used, codebook_size, np.round(table.prior, 3).tolist())
    return table


def _expand(paths: Sequence[str | os.PathLike], pattern: str) -> list[Path]:
    """Files as given; folders -> their shards matching ``pattern`` (not metadata.parquet)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(p.glob(pattern))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: not found")
    return out


# -- guidance ---------------------------------------------------------------------------------
class SSGuidance:
    """Sampler log-probability processor: ``log_p[code] += weight * log p(ss_i | code)`` at
    structure position i (1-based column of the structure half).

    For :func:`dplm2.lm.sampling.iterative_unmask` (``processor=``) on two-half inputs of one
    length L (structure half columns ``[0, L + 2)``: ``<cls_struct>``, residues 1..L,
    ``<eos_struct>``). It adds to the full-vocabulary log-probabilities the sampler scores
    positions by (after ``log_softmax``, before top-p, as a log-linear product of the LM and
    the table); only the structure half's code columns ``[STRUCT_OFFSET, STRUCT_OFFSET + K)``
    change; special and mask tokens, codes beyond the table and the amino-acid half are
    untouched; ``-inf`` (forbidden) entries stay ``-inf``.

    Parameters
    ----------
    log_p : Tensor, float32, shape (K, 3)
        ``log p(state | code)`` (:meth:`SSTable.log_p`).
    target : ndarray, int, shape (L,)
        Target state per residue (:func:`parse_ss`).
    weight : float
        Guidance strength (0 = unguided, exactly).
    """

    def __init__(self, log_p: torch.Tensor, target: np.ndarray, weight: float) -> None:
        target = torch.as_tensor(np.asarray(target, dtype=np.int64))
        if target.ndim != 1 or len(target) == 0 or target.min() < 0 or target.max() > 2:
            raise ValueError("target must be a non-empty [L] array of states 0..2")
        if not weight >= 0:
            raise ValueError(f"guidance weight must be >= 0, got {weight}")
        self.weight = float(weight)
        self.length = len(target)
        self.n_codes = log_p.shape[0]
        self._bias = (self.weight * log_p.float()[:, target]).T.contiguous()  # (L, K)

    def __call__(self, step: int, tokens: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                 log_probs: torch.Tensor) -> torch.Tensor:
        """``tokens (B, N)``; ``log_probs (M, V)`` at positions ``(rows, cols)`` -> the same
        ``log_probs``, modified in place."""
        width = tokens.shape[1] // 2
        if width != self.length + 2:
            raise ValueError(f"SS guidance for length {self.length} got inputs of length {width - 2}")
        if self._bias.device != log_probs.device:
            self._bias = self._bias.to(log_probs.device)
        sel = (cols >= 1) & (cols <= self.length)  # (M,) residue columns of the structure half
        if bool(sel.any()):
            span = slice(STRUCT_OFFSET, STRUCT_OFFSET + self.n_codes)
            log_probs[sel, span] += self._bias[cols[sel] - 1].to(log_probs.dtype)
        return log_probs

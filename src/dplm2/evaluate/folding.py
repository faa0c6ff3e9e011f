"""Folding backends: sequence -> predicted backbone (+ pLDDT), for self-consistency metrics.

scTM / scRMSD / pLDDT / designability and the inverse-folding scTM all need "fold this
sequence". The backend is pluggable behind one interface::

    backend.fold(sequences) -> list[FoldResult]      # FoldResult.coords: [L, 4, 3] (N, CA, C, O)

Backends
--------
``esmfold``
    ESMFold through transformers' :class:`~transformers.EsmForProteinFolding`, loaded with
    ``from_pretrained`` from a hub id (``facebook/esmfold_v1``, the reference's folding model) or a
    local folder. pLDDT is returned on the 0-100 scale.
``dplm2``
    The project's own language model in folding mode (sequence given, structure tokens
    generated) + the structure tokenizer's decoder: needs no external weights, so it is the
    offline default. It runs the ``dplm2 generate`` stage's public sampler and the tokenizer's
    public ``detokenize``; see :class:`Dplm2FoldingBackend`.

The backend's name is written into every evaluation row (column ``folding_backend``) so that
numbers obtained with different folding models are never mixed silently.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

log = logging.getLogger(__name__)

#: Indices of N, CA, C, O in AlphaFold's atom37 layout (``residue_constants.atom_types``).
ATOM37_BACKBONE = (0, 1, 2, 4)


@dataclasses.dataclass(frozen=True)
class FoldResult:
    """One folded sequence.

    Attributes
    ----------
    sequence : str
        The input sequence (one-letter codes).
    coords : ndarray, shape (L, 4, 3), float32
        Predicted N, CA, C, O coordinates in Å (NaN for atoms the backend does not place, e.g.
        N/C/O of an unknown residue X in ESMFold).
    plddt : ndarray, shape (L,), float32, or None
        Per-residue confidence on the 0-100 scale; ``None`` when the backend has none.
    backend : str
        Backend name, e.g. ``"esmfold:facebook/esmfold_v1"``.
    """

    sequence: str
    coords: np.ndarray
    plddt: np.ndarray | None
    backend: str

    def __post_init__(self) -> None:
        n = len(self.sequence)
        if self.coords.shape != (n, 4, 3):
            raise ValueError(f"FoldResult coords shape {self.coords.shape} != ({n}, 4, 3)")
        if self.plddt is not None:
            if self.plddt.shape != (n,):
                raise ValueError(f"FoldResult plddt shape {self.plddt.shape} != ({n},)")
            if np.any((self.plddt < 0) | (self.plddt > 100)):
                raise ValueError("FoldResult plddt must lie in [0, 100]")

    @property
    def mean_plddt(self) -> float | None:
        """Mean pLDDT over residues (``None`` without pLDDT)."""
        return None if self.plddt is None else float(np.mean(self.plddt))


@runtime_checkable
class FoldingBackend(Protocol):
    """Anything with a ``name`` and ``fold(sequences) -> list[FoldResult]``."""

    name: str

    def fold(self, sequences: Sequence[str]) -> list[FoldResult]: ...


class EsmFoldBackend:
    """ESMFold (transformers ``EsmForProteinFolding``) from a hub id or a local folder.

    Parameters
    ----------
    model : str
        Hub id (``"facebook/esmfold_v1"``) or a folder with ``config.json`` + weights.
    device : str
        ``"cpu"``, ``"cuda"``, ... (``"auto"`` picks CUDA when available).
    num_recycles : int or None
        Trunk recycles (``None``: the checkpoint's ``max_recycles``, 4 for esmfold_v1).
    chunk_size : int or None
        Axial attention chunk size (lower memory on long chains; ``None`` = no chunking).
    batch_size : int
        Sequences per forward pass (sorted by length to limit padding).
    esm_float32 : bool
        Run the ESM-2 stem in float32. esmfold_v1 keeps it in fp16, which CPUs run slowly or
        not at all, so the default casts it back on CPU.
    """

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        num_recycles: int | None = None,
        chunk_size: int | None = None,
        batch_size: int = 1,
        esm_float32: bool = True,
    ) -> None:
        from transformers import EsmForProteinFolding

        from dplm2.train import pick_device

        self.device = pick_device(device)
        self.num_recycles = num_recycles
        self.batch_size = max(1, int(batch_size))
        try:
            net = EsmForProteinFolding.from_pretrained(model)
        except OSError as exc:
            raise FileNotFoundError(
                f"ESMFold weights {model!r}: not a local folder with config.json + weights and not "
                f"reachable on the Hugging Face hub ({exc}); download them or set "
                "evaluate.folding.backend: dplm2"
            ) from exc
        if esm_float32 or self.device.type == "cpu":
            net.esm.float()
        if chunk_size is not None:
            net.trunk.set_chunk_size(chunk_size)
        self.net = net.to(self.device).eval()
        self.name = f"esmfold:{model}"

    def fold(self, sequences: Sequence[str]) -> list[FoldResult]:
        import torch
        from transformers.models.esm.openfold_utils import atom14_to_atom37

        seqs = [_clean_sequence(s) for s in sequences]
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out: list[FoldResult | None] = [None] * len(seqs)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = [seqs[i] for i in idx]
            aatype, mask = _esmfold_inputs(batch, self.device)
            # no_grad, not inference_mode: openfold's rigid utils cache a constant tensor on first
            # use, and an inference tensor there breaks later training in the same process.
            with torch.no_grad():
                pred = self.net(aatype, mask, num_recycles=self.num_recycles)
            host = {k: v.detach().float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy()
                    for k, v in pred.items() if isinstance(v, torch.Tensor)}
            # positions[-1]: last structure-module block, atom14 layout; atom37 -> N, CA, C, O.
            atom37 = atom14_to_atom37(host["positions"][-1], host)  # [B, L, 37, 3]
            # transformers' ESMFold returns pLDDT per atom37 slot in [0, 1]; the original ESMFold
            # (and every paper) reports 0-100 per residue, read at CA.
            plddt = host["plddt"][..., 1] * 100.0  # [B, L]
            backbone = atom37[:, :, ATOM37_BACKBONE].astype(np.float32)  # [B, L, 4, 3]
            # Unknown residues (X) have no atoms in AlphaFold's residue tables, so atom37 leaves
            # them at the origin: mark N, C, O missing (NaN) and take CA from the backbone
            # frame's translation, which the structure module predicts for every residue.
            exists = host["atom37_atom_exists"][:, :, ATOM37_BACKBONE].astype(bool)
            backbone[~exists] = np.nan
            backbone[:, :, 1] = host["frames"][-1][..., 4:]
            for j, i in enumerate(idx):
                n = len(seqs[i])
                out[i] = FoldResult(
                    sequence=seqs[i],
                    coords=np.ascontiguousarray(backbone[j, :n]),
                    plddt=np.clip(plddt[j, :n], 0.0, 100.0).astype(np.float32),
                    backend=self.name,
                )
        return [r for r in out if r is not None]


class Dplm2FoldingBackend:
    """DPLM-2 in folding mode: amino acids given, structure tokens generated, then decoded.

    Uses only public entry points of the other stages:

    * ``dplm2.lm.load.load_lm`` (a folder of the lm stage, or a released checkpoint) + its
      vocabulary, and
      ``dplm2.lm.sampling.iterative_unmask`` with the spec's folding settings (argmax,
      deterministic unmasking, ``max_iter`` steps, 100 by default);
    * ``dplm2.tokenizer.hub.load_tokenizer`` and ``StructureTokenizer.detokenize`` to turn the
      generated structure tokens into N, CA, C, O coordinates.

    pLDDT is the tokenizer decoder's pLDDT head (0-100); that head is not trained by the spec's
    loss, so treat it as informative only (``FoldResult.plddt`` carries it for completeness).
    """

    def __init__(self, lm: str | Path, tokenizer: str | Path, *, device: str = "auto",
                 max_iter: int = 100, seed: int = 0, batch_size: int = 1) -> None:
        from dplm2.train import pick_device

        try:
            from dplm2.lm.load import load_lm
            from dplm2.lm.sampling import SamplerConfig
            from dplm2.tokenizer.hub import load_tokenizer
        except ModuleNotFoundError as exc:
            raise NotImplementedError(
                "folding backend 'dplm2' needs the LM stage (dplm2.lm.sampling) and the "
                f"tokenizer stage (dplm2.tokenizer), not in this checkout ({exc}); set "
                "evaluate.folding.backend: esmfold"
            ) from exc
        self.device = pick_device(device)
        self.seed, self.batch_size = int(seed), max(1, int(batch_size))
        self.lm = load_lm(str(lm), device=self.device)  # ours or a released checkpoint
        self.tokenizer, tok_hash = load_tokenizer(str(tokenizer), device=self.device)
        from dplm2.generate.runtime import check_bit_tokenizer

        check_bit_tokenizer(self.lm, int(self.tokenizer.cfg.codebook_size), tokenizer)
        # spec §5/§6: folding = argmax, deterministic unmasking, 100 steps
        self.sampler = SamplerConfig.from_dict(
            {"max_iter": int(max_iter), "strategy": "argmax", "unmasking": "deterministic"})
        self.name = f"dplm2:{Path(str(lm)).name}+tokenizer:{tok_hash[:12]}"

    def fold(self, sequences: Sequence[str]) -> list[FoldResult]:
        import torch

        from dplm2.lm.sampling import iterative_unmask
        from dplm2.lm.vocab import banned_codes

        seqs = [_clean_sequence(s) for s in sequences]
        vocab = self.lm.vocab
        gen = torch.Generator(device=self.device).manual_seed(self.seed)
        out: list[FoldResult] = []
        for start in range(0, len(seqs), self.batch_size):
            batch = seqs[start : start + self.batch_size]
            ids, width = vocab.collate([vocab.encode(s, None) for s in batch])
            # no_grad, not inference_mode: openfold's rigid utils cache a constant tensor on first
            # use, and an inference tensor there breaks later training in the same process.
            with torch.no_grad():
                banned = banned_codes(int(self.tokenizer.cfg.codebook_size), self.device)
                tokens, _ = iterative_unmask(self.lm, ids.to(self.device), self.sampler,
                                             generator=gen, banned=banned)
                codes = [vocab.decode_struct(tokens[i, :width].cpu())[: len(s)]
                         for i, s in enumerate(batch)]
                pad = max(len(c) for c in codes)
                tok = torch.full((len(batch), pad), -1, dtype=torch.long)
                for i, c in enumerate(codes):
                    tok[i, : len(c)] = torch.as_tensor(c)
                dec = self.tokenizer.detokenize(tok.to(self.device))
            bb = dec["backbone"].float().cpu().numpy()
            plddt = dec["plddt"].float().cpu().numpy()
            for i, s in enumerate(batch):
                if len(codes[i]) != len(s):
                    raise ValueError(f"LM returned {len(codes[i])} structure tokens for {len(s)} residues")
                out.append(FoldResult(
                    sequence=s, coords=np.ascontiguousarray(bb[i, : len(s)], dtype=np.float32),
                    plddt=np.clip(plddt[i, : len(s)], 0, 100).astype(np.float32), backend=self.name,
                ))
        return out


def _esmfold_inputs(batch: Sequence[str], device):
    """AlphaFold residue indices (X for unknown) padded to the longest sequence, plus the mask.

    Same encoding as ``EsmForProteinFolding.infer``; built here so the recycle count can be
    passed to ``forward`` (``infer`` takes none).
    """
    import torch
    from transformers.models.esm.openfold_utils import residue_constants as rc

    unk = rc.restype_order_with_x["X"]
    width = max(len(s) for s in batch)
    aatype = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, s in enumerate(batch):
        aatype[i, : len(s)] = torch.tensor([rc.restype_order_with_x.get(c, unk) for c in s])
        mask[i, : len(s)] = 1
    return aatype.to(device), mask.to(device)


def _clean_sequence(seq: str) -> str:
    s = str(seq).strip().upper()
    if not s:
        raise ValueError("cannot fold an empty sequence")
    bad = sorted(set(s) - set("ACDEFGHIKLMNPQRSTVWYX"))
    if bad:
        raise ValueError(f"sequence has non-amino-acid letters {bad}: {s[:40]}...")
    return s

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
        import torch
        from transformers import EsmForProteinFolding

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
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
            with torch.inference_mode():
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

    Uses two public entry points of other stages (never their internals):

    * ``dplm2.lm.sampling`` — the LM's sampler, called for the folding task (100 steps, argmax,
      deterministic unmasking: the spec's folding settings);
    * ``dplm2.tokenizer`` — ``detokenize(tokens)`` to backbone coordinates.

    No pLDDT (the tokenizer decoder's pLDDT head is untrained), so ``FoldResult.plddt`` is None.
    """

    def __init__(self, lm: str | Path, tokenizer: str | Path, *, device: str = "auto",
                 max_iter: int = 100, seed: int = 0) -> None:
        self.lm_path, self.tokenizer_path = str(lm), str(tokenizer)
        self.device, self.max_iter, self.seed = device, int(max_iter), int(seed)
        self.name = f"dplm2:{Path(self.lm_path).name}"
        self._fold_fn = _dplm2_fold_entry_point()

    def fold(self, sequences: Sequence[str]) -> list[FoldResult]:
        seqs = [_clean_sequence(s) for s in sequences]
        coords = self._fold_fn(
            seqs, lm=self.lm_path, tokenizer=self.tokenizer_path, device=self.device,
            max_iter=self.max_iter, seed=self.seed,
        )
        return [
            FoldResult(sequence=s, coords=np.asarray(c, dtype=np.float32), plddt=None, backend=self.name)
            for s, c in zip(seqs, coords, strict=True)
        ]


def _dplm2_fold_entry_point():
    """The LM stage's ``fold_sequences(seqs, lm=, tokenizer=, device=, max_iter=, seed=)``."""
    try:
        from dplm2.lm import sampling
    except ModuleNotFoundError as exc:
        raise NotImplementedError(
            "folding backend 'dplm2' needs the LM stage's sampler (dplm2.lm.sampling), which is "
            f"not in this checkout ({exc}); set evaluate.folding.backend: esmfold"
        ) from exc
    fn = getattr(sampling, "fold_sequences", None)
    if fn is None:
        raise NotImplementedError(
            "folding backend 'dplm2': dplm2.lm.sampling has no fold_sequences(seqs, lm=, "
            "tokenizer=, device=, max_iter=, seed=) -> list of [L, 4, 3] arrays; set "
            "evaluate.folding.backend: esmfold"
        )
    return fn


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

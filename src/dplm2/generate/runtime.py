"""What a generation run holds: the LM, the structure tokenizer, the device and provenance.

Generation is built on the other stages' public entry points only:

* :func:`dplm2.lm.load.load_lm` (our LM folder or a released checkpoint) and the LM sampler
  :func:`dplm2.lm.sampling.iterative_unmask` (this stage writes no sampler of its own);
* :func:`dplm2.tokenizer.hub.load_tokenizer` and ``StructureTokenizer.tokenize`` /
  ``detokenize`` (motif tokens, structures read from files, decoded PDBs).

:meth:`Runtime.banned_codes` adds to the sampler's banned ids (spec §5) the structure codes the
loaded tokenizer does not have: a demo tokenizer may use fewer than 13 bits, while the LM
vocabulary always has 8192 codes, and a code the decoder cannot read must never be sampled
(a released tokenizer has all 8192, so nothing changes there). Which amino-acid tokens may
be emitted is the sampler's ``banned`` setting.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import torch

from dplm2.lm.vocab import banned_codes
from dplm2.io import sha256_file
from dplm2.structure import Chain
from dplm2.train import pick_device

log = logging.getLogger(__name__)


def git_hash(repo: str | os.PathLike | None = None) -> str:
    """Short commit hash of the code (``+dirty`` with local changes), ``unknown`` outside git."""
    cwd = Path(repo) if repo else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               check=True, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty.strip() else "")


def check_bit_tokenizer(lm, codebook_size: int, where) -> None:
    """A DPLM-2 Bit LM reads and writes structure codes as 13 LFQ bits, most significant
    first (:mod:`dplm2.lm.bit`): the structure tokenizer must quantize to the same 13 bits
    (``codebook_bits: 13``, 8192 codes). Its weights are not needed by the LM itself."""
    if getattr(lm, "is_bit", False) and codebook_size != 8192:
        raise ValueError(f"{where}: a DPLM-2 Bit LM needs a 13-bit structure tokenizer "
                         f"(8192 codes), this one has {codebook_size} codes")


@dataclasses.dataclass
class Runtime:
    """Loaded models + provenance of one generation run.

    Attributes
    ----------
    lm : DPLM2LM
    tokenizer : StructureTokenizer
    device : torch.device
    lm_hash : str
        Short sha256 of the LM's ``model.safetensors``.
    tokenizer_sha256 : str
        Full sha256 of the tokenizer weights (token shards record the same hash).
    code_hash : str
        Git commit of the code.
    """

    lm: torch.nn.Module
    tokenizer: torch.nn.Module
    device: torch.device
    lm_hash: str
    tokenizer_sha256: str
    code_hash: str

    @property
    def tokenizer_hash(self) -> str:
        return self.tokenizer_sha256[:16]

    @classmethod
    def load(cls, lm: str | os.PathLike, tokenizer: str | os.PathLike, device: str = "auto") -> Runtime:
        """Load both models: folders written by the lm and tokenizer stages, or released
        checkpoints (hub id or folder in the reference's layout)."""
        from dplm2.lm.load import lm_weights_file, load_lm
        from dplm2.tokenizer.hub import load_tokenizer

        dev = pick_device(device)
        weights = lm_weights_file(lm)  # raises naming what is missing for a released layout
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: no language model weights (run the lm stage)")
        model = load_lm(lm, device=dev)
        tok, tok_sha = load_tokenizer(tokenizer, device=dev)
        check_bit_tokenizer(model, int(tok.cfg.codebook_size), tokenizer)
        return cls(lm=model, tokenizer=tok, device=dev, lm_hash=sha256_file(weights)[:16],
                   tokenizer_sha256=tok_sha, code_hash=git_hash())

    # -- the LM as the sampler sees it -------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return int(self.tokenizer.cfg.codebook_size)

    def banned_codes(self) -> torch.Tensor | None:
        """Ids the sampler must not emit on top of its ``banned`` set (see module docstring)."""
        return banned_codes(self.codebook_size, self.device)

    # -- tokenizer ---------------------------------------------------------------------------
    @torch.no_grad()
    def tokenize_chain(self, chain: Chain) -> np.ndarray:
        """Structure tokens ``[L]`` of a chain (one chain per pass: tokens never depend on
        padding); residues without N, CA, C get the tokenizer's unknown code."""
        coords = torch.from_numpy(np.nan_to_num(chain.coords, nan=0.0))[None].to(self.device)
        atom_mask = torch.from_numpy(chain.atom_mask.copy())[None].to(self.device)
        mask = atom_mask[..., :3].all(-1)
        tokens = self.tokenizer.tokenize(coords.float(), atom_mask, mask)
        return tokens[0].cpu().numpy().astype(np.int64)

    @torch.no_grad()
    def detokenize(self, token_lists: list[np.ndarray], batch_size: int = 8) -> list[dict]:
        """Decode token arrays into ``{backbone [L,4,3], sequence, plddt [L]}`` dicts.

        Lists are decoded in batches of similar length (padding uses the unknown code, which
        the decoder masks out)."""
        unk = int(self.tokenizer.cfg.unknown_token)
        order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i]))
        out: list[dict | None] = [None] * len(token_lists)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(token_lists[i]) for i in idx)
            batch = torch.full((len(idx), width), unk, dtype=torch.long)
            for row, i in enumerate(idx):
                batch[row, : len(token_lists[i])] = torch.as_tensor(token_lists[i], dtype=torch.long)
            dec = self.tokenizer.detokenize(batch.to(self.device))
            for row, i in enumerate(idx):
                n = len(token_lists[i])
                out[i] = {
                    "backbone": dec["backbone"][row, :n].cpu().numpy().astype(np.float32),
                    "sequence": aatype_to_sequence(dec["aatype"][row, :n].cpu().numpy()),
                    "plddt": dec["plddt"][row, :n].cpu().numpy().astype(np.float32),
                }
        return out  # type: ignore[return-value]


#: The tokenizer decoder's amino-acid head order (AlphaFold ``residue_constants.restypes``).
DECODER_RESTYPES = "ARNDCQEGHILKMFPSTWYV"


def aatype_to_sequence(aatype: np.ndarray) -> str:
    """One-letter sequence from decoder residue indices (outside 0-19 -> X)."""
    return "".join(DECODER_RESTYPES[a] if 0 <= a < 20 else "X" for a in np.asarray(aatype).tolist())

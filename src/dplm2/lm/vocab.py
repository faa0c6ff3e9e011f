"""The DPLM-2 vocabulary: ESM2's 33 amino-acid tokens + 8192 structure codes + 4 structure specials.

Layout (spec §3, identical to the official DPLM-2 checkpoints' ids, so their embedding rows
and token files are read without permutation)::

    0..32      ESM2 alphabet (<cls> <pad> <eos> <unk> L A G ... <mask>)
    33         <cls_struct>
    34         <eos_struct>
    35         <unk_struct>
    36+k       structure code k, k in [0, 8192)
    8228       <mask_struct>   (the official vocab file lists it last)

One sample is ``[<cls_struct> s1..sL <eos_struct>] [<cls> a1..aL <eos>]``; a batch pads each half
to the same width ``W = L_max + 2`` so the structure half is columns ``[0, W)`` and the
amino-acid half columns ``[W, 2W)`` of every row (the reference's layout). Rotary positions
restart at 0 in each half (:func:`position_ids`).

The saved form is a ``vocab.txt`` (one token per line, line number = id) that
``transformers.EsmTokenizer`` reads with the same ids, plus ``dplm2_vocab.json`` (layout
constants, checked on load).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dplm2.io import atomic_write_text

# ESM2's alphabet in id order (facebook/esm2_* vocab.txt).
AA_TOKENS: tuple[str, ...] = (
    "<cls>", "<pad>", "<eos>", "<unk>",
    "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F", "Y",
    "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>",
)  # fmt: skip
CLS, PAD, EOS, UNK, MASK = 0, 1, 2, 3, 32
X_ID = AA_TOKENS.index("X")
NULL_1 = AA_TOKENS.index("<null_1>")
N_AA = len(AA_TOKENS)  # 33
STRUCT_CLS, STRUCT_EOS, STRUCT_UNK = 33, 34, 35
STRUCT_OFFSET = 36
N_CODES = 8192
STRUCT_MASK = STRUCT_OFFSET + N_CODES  # 8228
VOCAB_SIZE = STRUCT_MASK + 1  # 8229
STRUCT_START = N_AA  # first id of the structure part of the vocabulary
N_STRUCT = VOCAB_SIZE - STRUCT_START  # 8196 classes in the structure part

AA_SPECIALS = (CLS, PAD, EOS, UNK, MASK, AA_TOKENS.index("<null_1>"))
STRUCT_SPECIALS = (STRUCT_CLS, STRUCT_EOS, STRUCT_UNK, STRUCT_MASK)
SPECIAL_IDS: tuple[int, ...] = AA_SPECIALS + STRUCT_SPECIALS

VOCAB_FILE = "vocab.txt"
LAYOUT_FILE = "dplm2_vocab.json"


def struct_token_name(code: int) -> str:
    """Name of structure code ``code`` in ``vocab.txt`` (``<s0>`` .. ``<s8191>``)."""
    return f"<s{code}>"


def all_token_names() -> list[str]:
    """All 8229 token names in id order."""
    names = list(AA_TOKENS) + ["<cls_struct>", "<eos_struct>", "<unk_struct>"]
    names += [struct_token_name(k) for k in range(N_CODES)]
    names.append("<mask_struct>")
    assert len(names) == VOCAB_SIZE
    return names


def special_mask(ids: torch.Tensor) -> torch.Tensor:
    """Boolean tensor, True where ``ids`` is a special token of either modality (never noised)."""
    special = torch.zeros(VOCAB_SIZE, dtype=torch.bool, device=ids.device)
    special[list(SPECIAL_IDS)] = True
    return special[ids]


#: Ids the reference's decoding never emits (its ``special_token_list``: both modalities'
#: ``<cls>``/``<eos>``/``<mask>``/``<unk>``, ``<pad>``, and the letters X, B, U, Z, O).
REFERENCE_BANNED: tuple[int, ...] = (
    CLS, PAD, EOS, UNK, MASK, STRUCT_CLS, STRUCT_EOS, STRUCT_UNK, STRUCT_MASK,
    *(AA_TOKENS.index(c) for c in "XBUZO"),
)
#: ESM alphabet entries that are no residue: the reference still emits them as amino acids
#: (a quirk); the ``standard`` ban removes them too.
NON_RESIDUE_IDS: tuple[int, ...] = tuple(AA_TOKENS.index(t) for t in (".", "-", "<null_1>"))
#: What ``SamplerConfig.banned`` may name.
BANNED_SETS = ("standard", "reference")


def banned_mask(kind: str = "standard", device: torch.device | str = "cpu") -> torch.Tensor:
    """(V,) bool, True for ids a sampler must never emit.

    ``reference``: exactly the reference's banned ids (:data:`REFERENCE_BANNED`);
    ``standard``: those plus ``.``, ``-`` and ``<null_1>`` (:data:`NON_RESIDUE_IDS`), so every
    emitted amino acid is one of the 20 standard residues."""
    if kind not in BANNED_SETS:
        raise ValueError(f"banned must be one of {BANNED_SETS}, got {kind!r}")
    out = torch.zeros(VOCAB_SIZE, dtype=torch.bool, device=device)
    out[list(REFERENCE_BANNED)] = True
    if kind == "standard":
        out[list(NON_RESIDUE_IDS)] = True
    return out


def banned_codes(codebook_size: int, device: torch.device | str = "cpu") -> torch.Tensor | None:
    """(V,) bool: the structure codes >= ``codebook_size``, which a tokenizer of that size
    cannot decode (``None`` when it has all 8192): pass as the sampler's extra ``banned``."""
    if not 1 <= codebook_size <= N_CODES:
        raise ValueError(f"codebook_size {codebook_size} outside [1, {N_CODES}]")
    if codebook_size == N_CODES:
        return None
    ban = torch.zeros(VOCAB_SIZE, dtype=torch.bool, device=device)
    ban[STRUCT_OFFSET + codebook_size : STRUCT_OFFSET + N_CODES] = True
    return ban


def position_ids(batch: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, 2W) rotary positions: ``0..W-1`` for the structure half, again ``0..W-1`` for the
    amino-acid half, so residue i of both halves shares position i+1 (spec §3)."""
    half = torch.arange(width, device=device)
    return torch.cat([half, half]).unsqueeze(0).expand(batch, -1)  # (B, 2W)


class DPLM2Vocab:
    """Encodes and decodes both modalities; saves and loads with the model.

    Examples
    --------
    >>> v = DPLM2Vocab()
    >>> s, a = v.encode("MKV", [5, 8191, -1])
    >>> s.tolist(), a.tolist()
    ([33, 41, 8227, 35, 34], [0, 20, 15, 7, 2])
    >>> v.decode_aa(a), v.decode_struct(s).tolist()
    ('MKV', [5, 8191, -1])
    """

    def __init__(self) -> None:
        self.names = all_token_names()
        self._aa_index = {c: i for i, c in enumerate(AA_TOKENS) if len(c) == 1}

    # -- sizes and ids -------------------------------------------------------------------
    def __len__(self) -> int:
        return VOCAB_SIZE

    @staticmethod
    def is_struct(ids: torch.Tensor) -> torch.Tensor:
        """True where an id belongs to the structure part (any id >= 33)."""
        return ids >= STRUCT_START

    # -- encode / decode -----------------------------------------------------------------
    def encode_aa(self, sequence: str | None, length: int | None = None) -> torch.Tensor:
        """``<cls> a1..aL <eos>`` (L+2,); ``None`` gives L ``<mask>`` tokens (to be generated).

        Letters outside the alphabet map to X (spec §1: unknown -> X)."""
        if sequence is None:
            if length is None:
                raise ValueError("encode_aa: give a sequence or a length")
            body = [MASK] * length
        else:
            body = [self._aa_index.get(c, X_ID) for c in sequence.upper()]
        return torch.tensor([CLS, *body, EOS], dtype=torch.long)

    def encode_struct(
        self, codes: Sequence[int] | np.ndarray | None, length: int | None = None
    ) -> torch.Tensor:
        """``<cls_struct> s1..sL <eos_struct>`` (L+2,) from tokenizer codes.

        Codes outside ``[0, 8192)`` (the tokenizer's unknown code for residues without
        coordinates, or -1) become ``<unk_struct>``; ``None`` gives L ``<mask_struct>``."""
        if codes is None:
            if length is None:
                raise ValueError("encode_struct: give codes or a length")
            body = torch.full((length,), STRUCT_MASK, dtype=torch.long)
        else:
            c = torch.as_tensor(np.asarray(codes, dtype=np.int64))
            body = torch.where((c >= 0) & (c < N_CODES), c + STRUCT_OFFSET, STRUCT_UNK)
        return torch.cat([torch.tensor([STRUCT_CLS]), body, torch.tensor([STRUCT_EOS])])

    def encode(
        self, sequence: str | None, codes: Sequence[int] | np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(structure half, amino-acid half) of one protein; lengths must agree."""
        n = len(sequence) if sequence is not None else (len(codes) if codes is not None else None)
        if sequence is not None and codes is not None and len(sequence) != len(codes):
            raise ValueError(
                f"sequence has {len(sequence)} residues but {len(codes)} structure tokens"
            )
        return self.encode_struct(codes, n), self.encode_aa(sequence, n)

    def decode_aa(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Amino-acid string of the residue ids (specials dropped, <mask> -> '#'; '.' and '-'
        kept and ``<null_1>`` -> 'X', which only ``banned: reference`` sampling emits)."""
        out = []
        for i in torch.as_tensor(ids).tolist():
            if i == MASK:
                out.append("#")
            elif i == NULL_1:
                out.append("X")
            elif 0 <= i < N_AA and i not in AA_SPECIALS:
                out.append(AA_TOKENS[i])
        return "".join(out)

    def decode_struct(self, ids: torch.Tensor | Sequence[int]) -> np.ndarray:
        """Tokenizer codes of the residue positions (cls/eos/pad dropped; unk/mask -> -1)."""
        ids = torch.as_tensor(ids)
        keep = (ids != STRUCT_CLS) & (ids != STRUCT_EOS) & (ids != PAD)
        ids = ids[keep]
        codes = ids - STRUCT_OFFSET
        codes = torch.where((codes >= 0) & (codes < N_CODES), codes, -1)
        return codes.numpy().astype(np.int64)

    def collate(
        self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, int]:
        """Pad each half to the widest sample: returns input ids (B, 2W) and W."""
        width = max(max(len(s), len(a)) for s, a in pairs)
        out = torch.full((len(pairs), 2 * width), PAD, dtype=torch.long)
        for i, (s, a) in enumerate(pairs):
            out[i, : len(s)] = s
            out[i, width : width + len(a)] = a
        return out, width

    # -- save / load -----------------------------------------------------------------------
    def layout(self) -> dict:
        return {
            "format": "dplm2-vocab-1",
            "vocab_size": VOCAB_SIZE,
            "n_aa": N_AA,
            "struct_cls": STRUCT_CLS,
            "struct_eos": STRUCT_EOS,
            "struct_unk": STRUCT_UNK,
            "struct_offset": STRUCT_OFFSET,
            "n_codes": N_CODES,
            "struct_mask": STRUCT_MASK,
            "aa_tokens": list(AA_TOKENS),
        }

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``vocab.txt`` (EsmTokenizer-readable) and ``dplm2_vocab.json`` atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / VOCAB_FILE, "\n".join(self.names) + "\n")
        atomic_write_text(folder / LAYOUT_FILE, json.dumps(self.layout(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | os.PathLike) -> DPLM2Vocab:
        """Load and check a saved vocabulary; raises ``ValueError`` naming the file on mismatch."""
        folder = Path(folder)
        vocab = cls()
        path = folder / LAYOUT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no DPLM-2 vocabulary layout here")
        try:
            layout = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if layout != vocab.layout():
            raise ValueError(f"{path}: vocabulary layout differs from this code's {vocab.layout()}")
        vpath = folder / VOCAB_FILE
        if vpath.is_file():
            names = vpath.read_text().splitlines()
            if names != vocab.names:
                raise ValueError(f"{vpath}: token list differs from the DPLM-2 layout")
        return vocab


#: Names the released DPLM-2 vocabulary uses for ESM's amino-acid specials.
OFFICIAL_ALIASES = {"<cls_aa>": "<cls>", "<eos_aa>": "<eos>", "<unk_aa>": "<unk>",
                    "<mask_aa>": "<mask>"}


def official_id_map(vocab_file: str | os.PathLike) -> np.ndarray:
    """Map the ids of a foreign DPLM-2 vocabulary file (one token per line) to ours.

    Returns ``m`` with ``m[foreign_id] = our_id``. Structure codes may be spelled ``<s123>``,
    ``123`` or ``<struct_123>``; specials by their names (the official files' ``<cls_aa>``,
    ``<eos_aa>``, ``<unk_aa>``, ``<mask_aa>`` are ESM's ``<cls>``, ``<eos>``, ``<unk>``,
    ``<mask>``). Use it to permute embedding rows of
    an official checkpoint or to translate its token files. Raises ``ValueError`` naming the
    file when a token is unknown or the file does not cover the vocabulary.
    """
    path = Path(vocab_file)
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    ours = {n: i for i, n in enumerate(all_token_names())}
    out = np.full(len(names), -1, dtype=np.int64)
    for fid, name in enumerate(names):
        name = OFFICIAL_ALIASES.get(name, name)
        if name in ours:
            out[fid] = ours[name]
            continue
        digits = name.strip("<>").removeprefix("struct_")
        if digits.isdigit() and int(digits) < N_CODES:
            out[fid] = STRUCT_OFFSET + int(digits)
        else:
            raise ValueError(f"{path}: line {fid + 1}: unknown token {name!r}")
    if sorted(out.tolist()) != list(range(VOCAB_SIZE)):
        raise ValueError(
            f"{path}: does not map one-to-one onto the {VOCAB_SIZE}-token DPLM-2 vocabulary"
        )
    return out

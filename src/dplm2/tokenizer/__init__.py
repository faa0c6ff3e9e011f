"""DPLM-2 structure tokenizer: backbone <-> per-residue LFQ tokens (8192 codes).

Public API (what other stages may use):

- :func:`load_tokenizer` -- folder or hub id -> (model, weights sha256);
- ``model.tokenize(coords, atom_mask, mask)`` / :func:`decode_tokens` + :func:`write_decoded`;
- :func:`read_token_shard` -- token shards with the tokenizer-hash check.

Modules: ``config`` (typed config), ``geometry``, ``encoder`` (local-frame encoder),
``quantizer`` (pre-quantization head + LFQ), ``decoder`` (ESMFold modules), ``losses``,
``model``, ``data``, ``validation``, ``train``, ``tokenize``, ``detokenize``, ``hub``, ``cli``.
Heavy imports are deferred so ``import dplm2.tokenizer`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["decode_tokens", "load_tokenizer", "read_token_shard", "write_decoded"]


def __getattr__(name: str) -> Any:
    if name == "load_tokenizer":
        from dplm2.tokenizer.hub import load_tokenizer

        return load_tokenizer
    if name in ("decode_tokens", "write_decoded"):
        from dplm2.tokenizer import detokenize

        return getattr(detokenize, name)
    if name == "read_token_shard":
        from dplm2.tokenizer.tokenize import read_token_shard

        return read_token_shard
    raise AttributeError(name)

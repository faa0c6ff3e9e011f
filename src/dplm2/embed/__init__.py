"""Embeddings: per-residue and per-protein DPLM-2 representations from a chosen layer.

Public API:

- :func:`embed_proteins` -- records in, :class:`Embedding` rows out (the Python function);
- :func:`embed_inputs` -- FASTA / structure files / token shards -> a Parquet or ``.npy`` file
  (what ``dplm2 embed`` and the ``embed`` rule call);
- :func:`read_embeddings` -- load an embeddings file back (ids, matrix);
- :func:`probe_accuracy` -- cross-validated linear probe on embeddings.

Modules: ``config`` (typed config), ``inputs`` (readers), ``embed`` (batching + pooling),
``outputs`` (Parquet / npy), ``probe`` (logistic-regression probe), ``cli``.
Heavy imports are deferred so ``import dplm2.embed`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Embedding", "embed_inputs", "embed_proteins", "probe_accuracy", "read_embeddings"]


def __getattr__(name: str) -> Any:
    if name in ("Embedding", "embed_proteins", "embed_inputs"):
        from dplm2.embed import embed

        return getattr(embed, name)
    if name == "read_embeddings":
        from dplm2.embed.outputs import read_embeddings

        return read_embeddings
    if name == "probe_accuracy":
        from dplm2.embed.probe import probe_accuracy

        return probe_accuracy
    raise AttributeError(name)

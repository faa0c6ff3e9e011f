"""Process stage: parse downloaded structures, compute metrics, filter, deduplicate, split.

``local`` (the local sources' manifest) -> ``parse`` (one job per manifest shard) -> ``gather``
(Rg filter, dedup, split, chain shards, ``metadata.parquet``, ``filter_report.md``). Modules:
``config`` (typed settings), ``local``, ``metrics`` (pLDDT, DSSP, Rg, chain breaks, unknown
fraction), ``filters`` (one class per filter), ``records`` (the metadata row), ``parse``,
``split`` + ``cluster``, ``gather``, ``report``, ``cli``.
"""

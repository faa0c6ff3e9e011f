"""Process stage: parse downloaded structures, compute metrics, filter, deduplicate, split.

``parse`` (one job per manifest shard) -> ``gather`` (Rg filter, dedup, split, chain shards,
``metadata.parquet``, ``filter_report.md``). Modules: ``config`` (typed settings), ``metrics``
(pLDDT, P-SEA, Rg), ``filters`` (one class per filter), ``records`` (the metadata row),
``parse``, ``split`` + ``cluster``, ``gather``, ``report``, ``cli``.
"""

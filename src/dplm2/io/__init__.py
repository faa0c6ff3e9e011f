"""Shared file I/O: atomic writes, Parquet shards with provenance metadata, safe loading."""

from dplm2.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from dplm2.io.fasta import PROTEIN_LETTERS, read_fasta
from dplm2.io.hashing import sha256_file
from dplm2.io.tensors import read_tensor_file
from dplm2.io.parquet import (
    read_parquet_checked,
    read_parquet_metadata,
    shard_name,
    write_parquet,
    write_parquet_stream,
)

__all__ = [
    "read_tensor_file",
    "PROTEIN_LETTERS",
    "read_fasta",
    "sha256_file",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_parquet_checked",
    "read_parquet_metadata",
    "shard_name",
    "write_parquet",
    "write_parquet_stream",
]

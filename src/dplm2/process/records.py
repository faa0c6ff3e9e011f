"""The metadata record: one row per parsed chain and one per file that failed to parse.

:class:`ChainRecord` carries the chain's metrics, entry facts, every filter verdict
(``pass_<filter>`` / ``reason_<filter>`` columns), the split, and whether it was kept with the
reason when not. ``to_row``/``from_row`` convert symmetrically to the columns of
``results/chains/metadata.parquet``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date
from typing import Any

import pyarrow as pa

from dplm2.process.filters import ALL_FILTERS, Verdict
from dplm2.structure.read import check_source

SPLITS = ("train", "valid", "test")
NOT_APPLICABLE = "not applicable"  # reason_<filter> of a verdict with pass_<filter> null


@dataclasses.dataclass(frozen=True)
class ChainRecord:
    """Metadata of one chain (or one failed file: ``error`` set, metrics None)."""

    id: str
    source: str
    file: str
    entry_id: str
    chain_id: str | None = None
    sequence: str | None = None
    parsed_length: int | None = None
    length: int | None = None
    trim_start: int = 0
    trim_end: int = 0
    mean_plddt: float | None = None
    plddt_sd: float | None = None
    untrimmed_mean_plddt: float | None = None
    untrimmed_plddt_sd: float | None = None
    resolution: float | None = None
    method: str | None = None
    release_date: date | None = None
    oligomeric_count: int | None = None
    oligomeric_source: str | None = None
    helix_fraction: float | None = None
    strand_fraction: float | None = None
    loop_fraction: float | None = None
    radius_of_gyration: float | None = None
    backbone_fraction: float | None = None
    unknown_fraction: float | None = None
    d_amino_fraction: float | None = None
    chain_breaks: int | None = None
    removed_residues: str | None = None
    error: str | None = None
    verdicts: tuple[Verdict, ...] = ()
    split: str | None = None
    duplicate_of: str | None = None

    def __post_init__(self) -> None:
        where = f"record {self.id!r}"
        try:
            check_source(self.source)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if self.error is None:
            if self.sequence is None or self.length != len(self.sequence):
                raise ValueError(f"{where}: a parsed chain needs a sequence of its length")
            if self.parsed_length != self.length + self.trim_start + self.trim_end:
                raise ValueError(f"{where}: parsed_length != length + trimmed residues")
        elif self.verdicts or self.split:
            raise ValueError(f"{where}: a failed file has no verdicts or split")
        names = [v.name for v in self.verdicts]
        if len(names) != len(set(names)):
            raise ValueError(f"{where}: duplicate verdicts {names}")
        # canonical order (pipeline order), so equal records compare equal
        ordered = tuple(sorted(self.verdicts, key=lambda v: ALL_FILTERS.index(v.name)))
        object.__setattr__(self, "verdicts", ordered)
        if self.split is not None and (self.split not in SPLITS or not self.kept):
            raise ValueError(f"{where}: split {self.split!r} needs a kept chain and one of {SPLITS}")

    @property
    def predicted(self) -> bool:
        """A predicted model (AFDB, or a local source with pLDDT): pLDDT filters apply,
        resolution and release-date rules do not."""
        return self.source == "afdb" or self.untrimmed_mean_plddt is not None

    @property
    def kept(self) -> bool:
        return self.error is None and all(v.passed is not False for v in self.verdicts)

    @property
    def drop_reason(self) -> str | None:
        if self.error is not None:
            return f"parse: {self.error}"
        failed = [f"{v.name}: {v.reason}" for v in self.verdicts if v.passed is False]
        return "; ".join(failed) or None

    def verdict(self, name: str) -> Verdict | None:
        return next((v for v in self.verdicts if v.name == name), None)

    def with_verdict(self, verdict: Verdict) -> ChainRecord:
        others = tuple(v for v in self.verdicts if v.name != verdict.name)
        return dataclasses.replace(self, verdicts=others + (shared_verdict(verdict),))

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "verdicts"}
        for name in ALL_FILTERS:
            v = self.verdict(name)
            row[f"pass_{name}"] = None if v is None else v.passed
            row[f"reason_{name}"] = None if v is None else (
                NOT_APPLICABLE if v.passed is None and v.reason is None else v.reason
            )
        row["kept"] = self.kept
        row["drop_reason"] = self.drop_reason
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ChainRecord:
        names = {f.name for f in dataclasses.fields(cls)} - {"verdicts"}
        verdicts = []
        for name in ALL_FILTERS:
            reason = row.get(f"reason_{name}")
            passed = row.get(f"pass_{name}")
            if passed is None and reason == NOT_APPLICABLE:
                verdicts.append(shared_verdict(Verdict(name, None)))
            elif passed is not None or reason is not None:
                verdicts.append(shared_verdict(Verdict(name, passed, reason)))
        kwargs = {k: row[k] for k in names if k in row}
        return cls(**kwargs, verdicts=tuple(verdicts))


_SHARED_VERDICTS: dict[Verdict, Verdict] = {}


def shared_verdict(verdict: Verdict) -> Verdict:
    """One object per distinct verdict without a failure reason (verdicts are frozen): a
    million records hold 8 verdicts each, almost all "passed" or "not applicable"."""
    if verdict.passed is False:
        return verdict
    return _SHARED_VERDICTS.setdefault(verdict, verdict)


METADATA_SCHEMA = pa.schema(
    [
        ("id", pa.string()), ("source", pa.string()), ("file", pa.string()),
        ("entry_id", pa.string()), ("chain_id", pa.string()), ("sequence", pa.string()),
        ("parsed_length", pa.int32()), ("length", pa.int32()),
        ("trim_start", pa.int32()), ("trim_end", pa.int32()),
        ("mean_plddt", pa.float32()), ("plddt_sd", pa.float32()),
        ("untrimmed_mean_plddt", pa.float32()), ("untrimmed_plddt_sd", pa.float32()),
        ("resolution", pa.float32()), ("method", pa.string()), ("release_date", pa.date32()),
        ("oligomeric_count", pa.int32()), ("oligomeric_source", pa.string()),
        ("helix_fraction", pa.float32()), ("strand_fraction", pa.float32()),
        ("loop_fraction", pa.float32()), ("radius_of_gyration", pa.float32()),
        ("backbone_fraction", pa.float32()),
        ("unknown_fraction", pa.float32()), ("d_amino_fraction", pa.float32()),
        ("chain_breaks", pa.int32()), ("removed_residues", pa.string()),
        ("error", pa.string()),
        ("split", pa.string()), ("duplicate_of", pa.string()),
    ]
    + [(f"pass_{n}", pa.bool_()) for n in ALL_FILTERS]
    + [(f"reason_{n}", pa.string()) for n in ALL_FILTERS]
    + [("kept", pa.bool_()), ("drop_reason", pa.string())]
)  # fmt: skip


def records_to_table(records: list[ChainRecord]) -> pa.Table:
    """Metadata table (``METADATA_SCHEMA``) of ``records``."""
    rows = [r.to_row() for r in records]
    return pa.Table.from_pylist(rows, schema=METADATA_SCHEMA)

"""Generated samples and the files of one task run.

Layout of ``results/generate/{task}/`` (the reference's file names, so its users' scripts
carry over)::

    samples.parquet        one row per sample (schema below); written last = run complete
    aatype.fasta           sequences, provenance in every header
    struct_token.fasta     structure tokens (comma-separated codes), same headers
    pdb/<sample_id>.pdb    tokenizer-decoded backbone, the sample's sequence, pLDDT as B-factor
    references/<id>.pdb    true backbones / motifs written for evaluation (conditional tasks)
    length_<L>/            cogen, sequence, backbone: the reference's per-length FASTA files

``samples.parquet`` columns: ``sample_id, task, length, sequence, struct_tokens (list<int16>,
null for sequence-only), pdb_path (null for sequence-only and inverse folding), target_id,
reference_path, reference_chain, seed``; scaffolding adds ``contig`` (the sampled concrete
contig), ``motif_indices`` / ``motif_positions`` (motif residues in the design) and
``motif_reference_indices`` / ``reference_motif_positions`` (the same residues in the
reference file), ``motif_labels``; backbone-only samples carry the decoder's residue types in
``sequence`` (``sequence_source`` says which). ``ss_cogen`` adds :data:`SS_FIELDS`:
``target_ss`` (the requested string), ``decoded_ss`` (P-SEA on the decoded CA trace, H/E/L),
``ss_agreement`` (fraction of positions where they match), ``token_ss`` / ``token_ss_agreement``
(the SS table's most likely state of each sampled code, and its match), ``guidance_weight``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dplm2.io import atomic_path, atomic_write_text, write_parquet
from dplm2.structure import write_backbone

SAMPLE_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("task", pa.string()),
        ("length", pa.int32()),
        ("sequence", pa.string()),
        ("sequence_source", pa.string()),
        ("struct_tokens", pa.list_(pa.int16())),
        ("pdb_path", pa.string()),
        ("target_id", pa.string()),
        ("reference_path", pa.string()),
        ("reference_chain", pa.string()),
        ("seed", pa.int64()),
        ("contig", pa.string()),
        ("motif_indices", pa.list_(pa.int32())),
        ("motif_reference_indices", pa.list_(pa.int32())),
        ("motif_positions", pa.list_(pa.int32())),
        ("reference_motif_positions", pa.list_(pa.int32())),
        ("motif_labels", pa.list_(pa.string())),
    ]
)

#: Extra columns of the ss_cogen task (:mod:`dplm2.generate.ss_guidance`).
SS_FIELDS = (
    pa.field("target_ss", pa.string()),
    pa.field("decoded_ss", pa.string()),
    pa.field("ss_agreement", pa.float64()),
    pa.field("token_ss", pa.string()),
    pa.field("token_ss_agreement", pa.float64()),
    pa.field("guidance_weight", pa.float64()),
)


@dataclasses.dataclass(frozen=True, eq=False)
class Sample:
    """One generated protein (see module docstring for the row it becomes).

    ``backbone`` / ``plddt`` / ``decoded_sequence`` are the tokenizer decoder's structure,
    confidence and residue types (None when no structure was decoded); the PDB file carries the
    sample's ``sequence`` (given or generated, as the reference writes its PDBs; for
    backbone-only samples that is the decoder's) and the decoder's pLDDT in the B-factor
    column.
    """

    sample_id: str
    task: str
    sequence: str
    struct_tokens: np.ndarray | None
    seed: int
    sequence_source: str = "lm"
    backbone: np.ndarray | None = None
    plddt: np.ndarray | None = None
    decoded_sequence: str | None = None
    target_id: str | None = None
    reference_path: str | None = None
    reference_chain: str | None = None
    contig: str | None = None
    motif_indices: tuple[int, ...] | None = None
    motif_reference_indices: tuple[int, ...] | None = None
    motif_labels: tuple[str, ...] | None = None
    extra: dict[str, Any] | None = None  # task-specific columns (``extra_fields`` of the writer)

    def __post_init__(self) -> None:
        n = len(self.sequence)
        if self.struct_tokens is not None and len(self.struct_tokens) != n:
            raise ValueError(
                f"sample {self.sample_id}: {len(self.struct_tokens)} structure tokens for {n} residues"
            )
        if self.decoded_sequence is not None and len(self.decoded_sequence) != n:
            raise ValueError(f"sample {self.sample_id}: decoded sequence length differs")
        if self.backbone is not None and self.backbone.shape != (n, 4, 3):
            raise ValueError(f"sample {self.sample_id}: backbone shape {self.backbone.shape} != ({n}, 4, 3)")
        if (self.motif_indices is None) != (self.motif_reference_indices is None):
            raise ValueError(f"sample {self.sample_id}: motif indices given for one side only")
        if self.motif_indices is not None and len(self.motif_indices) != len(self.motif_reference_indices):
            raise ValueError(f"sample {self.sample_id}: motif index lists differ in length")

    def __len__(self) -> int:
        return len(self.sequence)

    def pdb_name(self) -> str | None:
        return None if self.backbone is None else f"pdb/{self.sample_id}.pdb"

    def to_row(self) -> dict[str, Any]:
        motif = None if self.motif_indices is None else [int(i) for i in self.motif_indices]
        ref = None if self.motif_reference_indices is None else [int(i) for i in self.motif_reference_indices]
        return {
            "sample_id": self.sample_id,
            "task": self.task,
            "length": len(self),
            "sequence": self.sequence,
            "sequence_source": self.sequence_source,
            "struct_tokens": None if self.struct_tokens is None else [int(t) for t in self.struct_tokens],
            "pdb_path": self.pdb_name(),
            "target_id": self.target_id,
            "reference_path": self.reference_path,
            "reference_chain": self.reference_chain,
            "seed": int(self.seed),
            "contig": self.contig,
            "motif_indices": motif,
            "motif_reference_indices": ref,
            "motif_positions": motif,
            "reference_motif_positions": ref,
            "motif_labels": None if self.motif_labels is None else list(self.motif_labels),
            **(self.extra or {}),
        }


@dataclasses.dataclass(frozen=True)
class Provenance:
    """What made a run: written into FASTA headers and the Parquet metadata."""

    task: str
    lm_hash: str
    tokenizer_hash: str
    code_hash: str
    seed: int
    sampling: dict[str, Any]

    def header(self, sample: Sample) -> str:
        """``>id key=value ...`` FASTA header (ProteinMPNN style)."""
        s = self.sampling
        fields = [
            sample.sample_id,
            f"task={self.task}",
            f"length={len(sample)}",
            f"seed={sample.seed}",
            f"model={self.lm_hash}",
            f"tokenizer={self.tokenizer_hash}",
            f"git={self.code_hash}",
            "sampling=" + ",".join(f"{k}:{s[k]}" for k in sorted(s)),
        ]
        if sample.target_id:
            fields.append(f"target={sample.target_id}")
        if sample.contig:
            fields.append(f"contig={sample.contig}")
        return ">" + " ".join(fields)


def _fasta(samples: Sequence[Sample], prov: Provenance, tokens: bool) -> str:
    lines = []
    for s in samples:
        if tokens and s.struct_tokens is None:
            continue
        lines.append(prov.header(s))
        lines.append(",".join(str(int(t)) for t in s.struct_tokens) if tokens else s.sequence)
    return "\n".join(lines) + ("\n" if lines else "")


def write_task_outputs(
    out_dir: str | os.PathLike,
    samples: Sequence[Sample],
    prov: Provenance,
    per_length: bool = False,
    extra_fields: Sequence[pa.Field] = (),
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Write a task's files (module docstring); ``samples.parquet`` last. Returns its path.

    ``extra_fields`` are appended to :data:`SAMPLE_SCHEMA` (filled from each sample's ``extra``);
    ``extra_meta`` is added to the Parquet metadata."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = [s.sample_id for s in samples]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{out}: duplicate sample ids")
    if any(s.backbone is not None for s in samples):
        with atomic_path(out / "pdb", is_dir=True) as tmp:
            for s in samples:
                if s.backbone is not None:
                    bfac = None if s.plddt is None else np.clip(s.plddt, 0.0, 100.0)
                    # the sample's own sequence (given or generated), as the reference writes
                    # it; backbone-only samples carry the decoder's (their ``sequence``)
                    write_backbone(tmp / f"{s.sample_id}.pdb", s.backbone, s.sequence, bfac)
    atomic_write_text(out / "aatype.fasta", _fasta(samples, prov, tokens=False))
    atomic_write_text(out / "struct_token.fasta", _fasta(samples, prov, tokens=True))
    if per_length:
        for length in sorted({len(s) for s in samples}):
            group = [s for s in samples if len(s) == length]
            sub = out / f"length_{length}"
            atomic_write_text(sub / "aatype.fasta", _fasta(group, prov, tokens=False))
            atomic_write_text(sub / "struct_token.fasta", _fasta(group, prov, tokens=True))
    schema = SAMPLE_SCHEMA
    for field in extra_fields:
        schema = schema.append(field)
    table = pa.Table.from_pylist([s.to_row() for s in samples], schema=schema)
    meta = {
        "stage": "generate",
        "task": prov.task,
        "lm_sha256": prov.lm_hash,
        "tokenizer_sha256": prov.tokenizer_hash,
        "git": prov.code_hash,
        "seed": prov.seed,
        "sampling": prov.sampling,
        **(extra_meta or {}),
    }
    return write_parquet(table, out / "samples.parquet", meta)


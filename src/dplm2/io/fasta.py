"""Read FASTA files of protein sequences (biotite's parser, with errors that name the file)."""

from __future__ import annotations

import os
from pathlib import Path

#: One-letter codes accepted in input sequences (20 standard amino acids + X for unknown).
PROTEIN_LETTERS = frozenset("ACDEFGHIKLMNPQRSTVWYX")


def read_fasta(
    path: str | os.PathLike, letters: frozenset[str] = PROTEIN_LETTERS
) -> list[tuple[str, str]]:
    """``(id, sequence)`` pairs of a FASTA file; the id is the header's first word.

    Sequences are upper-cased and checked against ``letters``; an empty file, a missing
    header, an empty header, a duplicate id or a foreign letter raises ``ValueError`` naming
    the file and the record.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.fasta"
    >>> _ = p.write_text(">a first\\nacd\\nEF\\n>b\\nGH\\n")
    >>> read_fasta(p)
    [('a', 'ACDEF'), ('b', 'GH')]
    """
    from biotite import InvalidFileError
    from biotite.sequence.io.fasta import FastaFile

    path = Path(path)
    try:
        items = list(FastaFile.read(str(path)).items())
    except (InvalidFileError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a FASTA file ({exc})") from exc
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for header, seq in items:
        words = header.split()
        if not words:
            raise ValueError(f"{path}: empty FASTA header (record {len(out) + 1})")
        name, text = words[0], seq.replace(" ", "").upper()
        bad = sorted(set(text) - letters)
        if bad:
            raise ValueError(f"{path}: record {name!r} has letters {bad}")
        if not text:
            raise ValueError(f"{path}: record {name!r} has no sequence")
        if name in seen:
            raise ValueError(f"{path}: duplicate record id {name!r}")
        seen.add(name)
        out.append((name, text))
    return out

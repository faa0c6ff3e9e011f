"""Sequence clustering for cluster-based splits: built-in greedy identity clustering, or
``mmseqs easy-cluster`` when configured and installed.

The built-in method is CD-HIT's greedy incremental scheme: sequences in order of decreasing
length (then id) join the first representative they match with identity >= ``min_identity``
(matches / length of the shorter sequence, from a global alignment with free end gaps,
BLOSUM62, gap open -10 / extend -1, biotite's C-accelerated ``align_optimal``) and aligned
coverage >= ``coverage`` of both sequences; otherwise they found a new cluster. It is
quadratic in the number of clusters: fine for thousands of chains; use ``mmseqs`` for the
paper-scale run.

>>> clusters = identity_clusters({"a": "MKTAYIAKQR" * 6, "b": "MKTAYIAKQR" * 6 + "G",
...                               "c": "WWPPGGHHEE" * 6}, min_identity=0.9, coverage=0.8)
>>> clusters == {"a": "b", "b": "b", "c": "c"}
True
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path


log = logging.getLogger(__name__)


def _alignment_scores(a: str, b: str, matrix, seq_cls) -> tuple[float, float, float]:
    import biotite.sequence.align as align

    sa, sb = seq_cls(a.replace("X", "A")), seq_cls(b.replace("X", "A"))
    aln = align.align_optimal(sa, sb, matrix, gap_penalty=(-10, -1), terminal_penalty=False,
                              max_number=1)[0]
    trace = aln.trace
    paired = (trace[:, 0] >= 0) & (trace[:, 1] >= 0)
    identity = float(align.get_sequence_identity(aln, mode="shortest"))
    n_pairs = int(paired.sum())
    return identity, n_pairs / len(a), n_pairs / len(b)


def identity_clusters(sequences: dict[str, str], min_identity: float, coverage: float
                      ) -> dict[str, str]:
    """Map each id to its cluster representative's id (greedy, see module docstring)."""
    import biotite.sequence as seq
    import biotite.sequence.align as align

    matrix = align.SubstitutionMatrix.std_protein_matrix()
    order = sorted(sequences, key=lambda i: (-len(sequences[i]), i))
    reps: list[str] = []
    out: dict[str, str] = {}
    for sid in order:
        s = sequences[sid]
        for rep in reps:
            r = sequences[rep]
            if len(s) / len(r) < coverage:  # too short to cover the representative
                continue
            if s == r:
                out[sid] = rep
                break
            ident, cov_s, cov_r = _alignment_scores(s, r, matrix, seq.ProteinSequence)
            if ident >= min_identity and cov_s >= coverage and cov_r >= coverage:
                out[sid] = rep
                break
        else:
            reps.append(sid)
            out[sid] = sid
    return out


def mmseqs_clusters(sequences: dict[str, str], min_identity: float, coverage: float,
                    threads: int = 1, binary: str = "mmseqs") -> dict[str, str]:
    """Map each id to its representative with ``mmseqs easy-cluster`` (coverage mode 0)."""
    exe = shutil.which(binary)
    if exe is None:
        raise FileNotFoundError(
            f"process.split.method is 'mmseqs' but {binary!r} is not on PATH: install MMseqs2 "
            "(e.g. `apt-get install mmseqs2` or `conda install -c bioconda mmseqs2`) or set "
            "process.split.method to 'identity' or 'date'"
        )
    with tempfile.TemporaryDirectory(prefix="dplm2-mmseqs-") as tmp:
        fasta = Path(tmp) / "in.fasta"
        fasta.write_text("".join(f">{i}\n{s}\n" for i, s in sequences.items()))
        cmd = [exe, "easy-cluster", str(fasta), str(Path(tmp) / "out"), str(Path(tmp) / "work"),
               "--min-seq-id", str(min_identity), "-c", str(coverage), "--cov-mode", "0",
               "--threads", str(threads), "-v", "1"]
        log.info("running %s", " ".join(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"mmseqs easy-cluster failed ({done.returncode}): {done.stderr[-2000:]}")
        table = (Path(tmp) / "out_cluster.tsv").read_text().split("\n")
    out = {}
    for line in table:
        if line.strip():
            rep, member = line.split("\t")[:2]
            out[member] = rep
    missing = set(sequences) - set(out)
    if missing:
        raise RuntimeError(f"mmseqs left {len(missing)} sequences unclustered, e.g. {sorted(missing)[:3]}")
    return out


def stable_unit(seed: int, key: str) -> float:
    """A uniform number in [0, 1) from ``seed`` and ``key`` (stable across runs and machines).

    >>> stable_unit(0, "a") == stable_unit(0, "a") != stable_unit(1, "a")
    True
    """
    import hashlib

    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64



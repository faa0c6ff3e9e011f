"""Parse throughput of the process stage vs a plain biotite loop, on the bundled structures.

For each file: ours = ``dplm2.process.parse.process_file`` (read + backbone + header facts +
pLDDT trim + P-SEA + Rg + every parse-time filter); baseline = ``biotite.structure.io.
load_structure`` of the same (decompressed) file, first model, nothing else. Single process,
one core, CPU time (``time.process_time``); reported as structures per second per core, overall
and for files whose chains average 250-350 residues (the "about 300 residues" case).

Usage: ``python bench/parse_throughput.py [FOLDER ...] [--repeat 3] [--json out.json]``
(default folders: resources/mirror, tests/data/structures).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path

import biotite.structure.io as bio

from dplm2.process.config import ProcessConfig
from dplm2.process.parse import process_file

SUFFIXES = (".cif", ".cif.gz", ".pdb", ".pdb.gz", ".bcif")


def find_files(folders: list[Path]) -> list[Path]:
    files = []
    for folder in folders:
        files += [p for p in sorted(folder.rglob("*")) if p.name.endswith(SUFFIXES)]
    return files


def time_once(fn) -> float:
    """CPU seconds of this process (per-core cost; robust to other jobs sharing the machine)."""
    t = time.process_time()
    fn()
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="*", type=Path,
                    default=[Path("resources/mirror"), Path("tests/data/structures")])
    ap.add_argument("--repeat", type=int, default=3, help="best-of-N timing per file")
    ap.add_argument("--json", type=Path, help="write the numbers here too")
    args = ap.parse_args()
    cfg = ProcessConfig.from_dict()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in find_files(args.folders):
            source = "afdb" if path.name.startswith("AF-") else "pdb"
            results = list(process_file(path, source, None, cfg))
            if results[0][0].error is not None:
                continue  # broken fixtures: not a throughput case
            plain = Path(tmp) / path.name.removesuffix(".gz")
            plain.write_bytes(gzip.decompress(path.read_bytes()) if path.suffix == ".gz"
                              else path.read_bytes())
            ours = min(time_once(lambda: list(process_file(path, source, None, cfg)))  # noqa: B023 (called now)
                       for _ in range(args.repeat))
            base = min(time_once(lambda: bio.load_structure(plain, model=1))  # noqa: B023 (called now)
                       for _ in range(args.repeat))
            lengths = [r.parsed_length for r, _ in results]
            rows.append({"file": path.name, "chains": len(lengths),
                         "mean_length": statistics.mean(lengths), "ours_s": ours,
                         "biotite_load_s": base})
    def rate(sel, key):
        total = sum(r[key] for r in sel)
        return len(sel) / total if total else float("nan")

    mid = [r for r in rows if 250 <= r["mean_length"] <= 350]
    summary = {
        "files": len(rows),
        "ours_per_s": rate(rows, "ours_s"),
        "biotite_load_structure_per_s": rate(rows, "biotite_load_s"),
        "files_250_350_residues": len(mid),
        "ours_per_s_300res": rate(mid, "ours_s"),
        "biotite_load_structure_per_s_300res": rate(mid, "biotite_load_s"),
    }
    print(f"{'file':40s} {'chains':>6s} {'len':>6s} {'ours ms':>8s} {'biotite ms':>10s}")
    for r in rows:
        print(f"{r['file'][:40]:40s} {r['chains']:6d} {r['mean_length']:6.0f} "
              f"{r['ours_s'] * 1e3:8.1f} {r['biotite_load_s'] * 1e3:10.1f}")
    print()
    for k, v in summary.items():
        print(f"{k:40s} {v:.1f}" if isinstance(v, float) else f"{k:40s} {v}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "files": rows}, indent=1))


if __name__ == "__main__":
    main()

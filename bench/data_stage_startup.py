"""Start-up time and peak memory of data-stage and metric jobs, before/after dropping torch.

Each case runs ``--repeat`` times as a fresh process (``python -m dplm2.cli ...`` or
``python -c "import ..."``) for this checkout and for the sources of git revision ``--before``
(``git archive`` into a temporary folder, same interpreter); the median wall time and peak
resident memory are reported. Cases: importing the data-stage modules, importing the novelty
metric, and a real parse job (``dplm2 process parse``) of one small bundled structure.

Usage: ``python bench/data_stage_startup.py [--before 78d625e] [--repeat 5] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

from gather_memory import measure, sources_at  # bench/ is on sys.path when this script runs

REPO = Path(__file__).resolve().parents[1]
STRUCTURE = REPO / "tests" / "data" / "structures" / "1aki.cif.gz"


def cases(tmp: Path) -> dict[str, list[str]]:
    manifest = tmp / "manifest.parquet"
    pl.DataFrame({"id": ["1aki"], "url": [""], "path": [str(STRUCTURE)], "bytes": [0],
                  "sha256": [None], "status": ["ok"], "error": [None]}).write_parquet(manifest)
    py = sys.executable
    return {
        "import data stage (download, parse, gather)":
            [py, "-c", "import dplm2.cli, dplm2.download.cli, dplm2.download.batch, "
                       "dplm2.process.parse, dplm2.process.gather"],
        "import novelty + diversity metrics":
            [py, "-c", "import dplm2.evaluate.novelty, dplm2.evaluate.diversity"],
        "dplm2 process parse (1 structure)":
            [py, "-m", "dplm2.cli", "process", "parse", "--pdb-manifest", str(manifest),
             "--shard", "0", "--shards", "1", "--output", str(tmp / "parsed.parquet")],
    }


def torch_loaded(src: Path) -> bool:
    code = ("import sys, dplm2.process.parse, dplm2.process.gather, dplm2.evaluate.novelty; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(src)},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default="78d625e", help="git revision before the change")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="dplm2-bench-startup-") as tmp:
        tmp = Path(tmp)
        sources = {f"before ({args.before})": sources_at(args.before, tmp / "before"), "now": REPO / "src"}
        for name, cmd in cases(tmp).items():
            for label, src in sources.items():
                env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
                runs = [measure(cmd, env) for _ in range(args.repeat)]
                r = {"case": name, "code": label, "torch": torch_loaded(src),
                     "wall_s": statistics.median(x["wall_s"] for x in runs),
                     "peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in runs)}
                rows.append(r)
                print(json.dumps(r), flush=True)
    print("\n| case | code | torch imported | wall (s, median) | peak RSS (MB, median) |\n"
          "|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['code']} | {r['torch']} | {r['wall_s']:.2f} | "
              f"{r['peak_rss_mb']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

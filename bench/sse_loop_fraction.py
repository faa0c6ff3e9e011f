"""Loop fraction of the loop filter: DSSP (MDTraj, what the process stage uses) against P-SEA
(biotite, what it used before) and, when installed, the DSSP program itself (``mkdssp``,
Debian package ``dssp``), on the bundled PDB entries; plus the cost per chain.

For every entry of ``resources/mirror/pdb`` (first protein chain): loop fraction by each method
(loop = neither helix H/G/I nor strand E/B), the per-residue three-state agreement of MDTraj
with mkdssp, and CPU time per chain of P-SEA and of MDTraj's DSSP (``time.process_time``, one
process, one core). Prints a table and the ratios measured in this run.

Usage: ``python bench/sse_loop_fraction.py [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import biotite.structure as struc
import numpy as np

from dplm2.process.metrics import ca_atoms, dssp
from dplm2.structure import read_entry

REPO = Path(__file__).resolve().parents[1]
PDB = REPO / "resources" / "mirror" / "pdb"
HELIX, STRAND = set("HGI"), set("EB")


def psea_states(chain) -> np.ndarray:
    out = np.full(len(chain), "C")
    has = chain.atom_mask[:, 1]
    sse = struc.annotate_sse(ca_atoms(chain))
    out[has] = np.where(sse == "a", "H", np.where(sse == "b", "E", "C"))
    return out


def mkdssp_states(path: Path, chain) -> np.ndarray | None:
    """Three-state string of ``chain`` from the mkdssp program (None if it fails)."""
    exe = shutil.which("mkdssp")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / ("x.cif" if ".cif" in path.name else "x.pdb")
        import gzip

        src.write_bytes(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
        out = Path(tmp) / "x.dssp"
        done = subprocess.run([exe, "--output-format", "dssp", str(src), str(out)],
                              capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            return None
        lines = out.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  #  RESIDUE"))
    by_key = {}
    for line in lines[start + 1:]:
        if line[13] == "!":
            continue  # chain break marker
        key = (line[11], int(line[5:10]), line[10].strip())
        ss = line[16]
        by_key[key] = "H" if ss in HELIX else "E" if ss in STRAND else "C"
    states = [by_key.get((chain.chain_id, int(r), i)) for r, i in zip(chain.res_ids, chain.ins_codes)]
    return np.array([s or "C" for s in states])


def loop(states: np.ndarray) -> float:
    return float(np.mean(~np.isin(states, ["H", "E"])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    files = sorted(p for p in PDB.rglob("*") if p.name.endswith((".cif.gz", ".ent.gz")))
    rows = []
    for path in files:
        try:
            chain = read_entry(path).chains[0]
        except Exception as exc:
            print(f"skip {path.name}: {exc}")
            continue
        t = time.process_time()
        ps = psea_states(chain)
        t_psea = time.process_time() - t
        t = time.process_time()
        md = dssp(chain)
        md = np.where(md == "-", "C", md)
        t_md = time.process_time() - t
        ref = mkdssp_states(path, chain)
        rows.append(dict(
            chain=chain.id, length=len(chain), psea_loop=loop(ps), mdtraj_loop=loop(md),
            mkdssp_loop=None if ref is None else loop(ref),
            agreement=None if ref is None else float(np.mean(md == ref)),
            psea_ms=1e3 * t_psea, mdtraj_ms=1e3 * t_md))
    print(f"{'chain':10} {'L':>5} {'P-SEA':>6} {'MDTraj':>7} {'mkdssp':>7} {'agree':>6}")
    for r in rows:
        mk = "-" if r["mkdssp_loop"] is None else f"{r['mkdssp_loop']:.2f}"
        ag = "-" if r["agreement"] is None else f"{r['agreement']:.3f}"
        print(f"{r['chain']:10} {r['length']:5d} {r['psea_loop']:6.2f} {r['mdtraj_loop']:7.2f} {mk:>7} {ag:>6}")
    summary = {
        "chains": len(rows),
        "loop_over_0.5_psea": sum(r["psea_loop"] > 0.5 for r in rows),
        "loop_over_0.5_mdtraj": sum(r["mdtraj_loop"] > 0.5 for r in rows),
        "mean_loop_psea": statistics.mean(r["psea_loop"] for r in rows),
        "mean_loop_mdtraj": statistics.mean(r["mdtraj_loop"] for r in rows),
        "ms_per_chain_psea": statistics.mean(r["psea_ms"] for r in rows),
        "ms_per_chain_mdtraj": statistics.mean(r["mdtraj_ms"] for r in rows),
    }
    with_ref = [r for r in rows if r["agreement"] is not None]
    if with_ref:
        summary["mkdssp_chains"] = len(with_ref)
        summary["mean_agreement_mdtraj_vs_mkdssp"] = statistics.mean(r["agreement"] for r in with_ref)
        summary["max_loop_difference_mdtraj_vs_mkdssp"] = max(
            abs(r["mdtraj_loop"] - r["mkdssp_loop"]) for r in with_ref)
        summary["loop_over_0.5_mkdssp"] = sum(r["mkdssp_loop"] > 0.5 for r in with_ref)
    summary["cost_ratio_mdtraj_over_psea"] = summary["ms_per_chain_mdtraj"] / summary["ms_per_chain_psea"]
    print()
    for k, v in summary.items():
        print(f"{k:40} {v:.3f}" if isinstance(v, float) else f"{k:40} {v}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()

"""Build ``resources/`` (the demo's offline mirror, ID lists, scaffolding and SCOPe data).

Developer script, never run by the workflow: it copies a chosen subset of the real structure
files gathered in ``../shared/data`` into the repository, laid out like the real servers
(wwPDB ``divided`` tree, AlphaFold DB ``files/`` and the bulk SwissProt tar), and writes
``resources/MANIFEST.csv`` + ``resources/ATTRIBUTION.md`` so every file's origin and licence
travel with it.

Files are copied byte-for-byte in content; gzipped ones are re-compressed at level 9 with a zero
timestamp and no embedded name so rebuilding gives identical bytes. Run from the repo root::

    python tools/build_demo_mirror.py --data ../shared/data --out resources
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import re
import shutil
import tarfile
from pathlib import Path

# --- what goes into the mirror ------------------------------------------------------------
# Monomeric small/medium chains: training data for the demo tokenizer and LM.
MONOMERS = "1aki 1dix 1hml 3zee 4zey 3eiy 3lzm 4i39 1o1z 3o5r 3kcs 1qgi 1t48 6oa8".split()
# Entries that only exist as PDB-format files in the data (served from divided/pdb/).
PDB_FORMAT = "1qys 1lds 6mrr 5l33".split()
# NMR ensemble (1l2y, 20 residues, 38 models) and multi-chain / homo-oligomer entries.
NMR = ["1l2y"]
MULTI_CHAIN = "4hhb 2q2k 4i6p 1k6p 1tim".split()
# No protein chain at all (nucleic-acid-only entries): the process stage must skip them.
EDGE_IDS = "4gxy 4p5j".split()
# In the mirror but not in the demo list: structural homologs for tests (1hml 1qgi 3kcs 3lzm
# 6oa8 of the same homolog set are in the demo list) and one more multi-chain entry.
MIRROR_ONLY = "1gl4 3lsj 2nwd 2d7t".split()
DEMO_PDB = MONOMERS + PDB_FORMAT + NMR + MULTI_CHAIN + EDGE_IDS
# Edge-case files without a PDB id: kept as plain files for the process stage's tests.
EDGE_FILES = ["altloc.cif", "res_ids.cif", "hetatm.pdb"]
# AFDB entries served only through the bulk SwissProt tar (not under files/).
TAR_ONLY = ["P60713", "Q6QAQ1", "Q96HM7"]
DEFAULT_AFDB_VERSION = 4

PDB_LICENCE = "CC0 1.0 (wwPDB)"
AFDB_LICENCE = "CC-BY 4.0 (AlphaFold DB; cite Jumper et al. 2021, Varadi et al. 2024)"
SCOP_LICENCE = "CC0 1.0 (PDB-derived SCOPe domain; cite Chandonia et al.)"
AFDB_NAME = re.compile(r"^AF-(?P<acc>[A-Z0-9]+)-F1-model(?:_v(?P<ver>\d+))?\.(?P<fmt>pdb|cif)\.gz$")


def gzip9(data: bytes) -> bytes:
    """Gzip at level 9, reproducibly (no timestamp, no name)."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as fh:
        fh.write(data)
    return buf.getvalue()


def copy_gz(src: Path, dst: Path) -> None:
    """Copy a structure, (re-)gzipping it at level 9 without altering its content."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    raw = gzip.decompress(src.read_bytes()) if src.suffix == ".gz" else src.read_bytes()
    dst.write_bytes(gzip9(raw))


def afdb_version(src: Path, name_version: str | None) -> tuple[int, str]:
    """AFDB model version: from the file name, else from the file's header, else v4."""
    if name_version:
        return int(name_version), "file name"
    head = gzip.decompress(src.read_bytes())[:20000].decode("ascii", "replace")
    m = re.search(r"model_v(\d+)", head)
    if m:
        return int(m.group(1)), "file header"
    return DEFAULT_AFDB_VERSION, "no version in name or header: v4 assumed"


KEPT_FOLDERS = ("chain_cases/",)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("resources"))
    args = ap.parse_args()
    data, out = args.data, args.out
    with open(data / "MANIFEST.csv", newline="") as fh:
        origin = {row["path"]: row for row in csv.DictReader(fh)}
    for sub in ("mirror", "demo", "scop_globins", "scaffolding", "edge_cases"):
        shutil.rmtree(out / sub, ignore_errors=True)
    rows: list[dict[str, str]] = []

    def record(dst: Path, src_rel: str, kind: str, ident: str, licence: str, note: str = ""):
        o = origin.get(src_rel, {})
        rows.append(
            {
                "path": dst.relative_to(out).as_posix(),
                "kind": kind,
                "id": ident,
                "copied_from": f"shared/data/{src_rel}",
                "origin_repo": o.get("source_repo", ""),
                "origin_path": o.get("source_path", ""),
                "licence": licence,
                "note": note,
            }
        )

    # wwPDB divided layout.
    divided = out / "mirror/pdb/pub/pdb/data/structures/divided"
    for pid in DEMO_PDB + MIRROR_ONLY:
        folder = "edge_cases" if pid in EDGE_IDS else "pdb"
        cif, ent = data / folder / f"{pid}.cif.gz", data / folder / f"{pid}.pdb.gz"
        if cif.exists():
            dst = divided / "mmCIF" / pid[1:3] / f"{pid}.cif.gz"
            copy_gz(cif, dst)
            record(dst, f"{folder}/{cif.name}", "pdb", pid, PDB_LICENCE)
        elif ent.exists():
            dst = divided / "pdb" / pid[1:3] / f"pdb{pid}.ent.gz"
            copy_gz(ent, dst)
            record(dst, f"{folder}/{ent.name}", "pdb", pid, PDB_LICENCE, "PDB format only")
        else:
            raise FileNotFoundError(f"{data / folder}: no file for PDB id {pid}")

    # AlphaFold DB files/ layout and the bulk SwissProt tar.
    afdb_files = out / "mirror/afdb/files"
    tar_path = out / "mirror/afdb/pub/databases/alphafold/latest/swissprot_pdb_v4.tar"
    tar_members: list[tuple[str, bytes]] = []
    accessions: list[str] = []
    for src in sorted((data / "afdb").glob("AF-*.gz")):
        m = AFDB_NAME.match(src.name)
        if m is None:
            raise ValueError(f"{src}: not an AFDB model file name")
        acc, fmt = m.group("acc"), m.group("fmt")
        ver, how = afdb_version(src, m.group("ver"))
        name = f"AF-{acc}-F1-model_v{ver}.{fmt}.gz"
        note = f"version v{ver} from {how}"
        if acc in TAR_ONLY:
            if ver != 4 or fmt != "pdb":
                raise ValueError(f"{src}: the swissprot_pdb_v4 tar holds only v4 PDB files")
            raw = gzip.decompress(src.read_bytes())
            tar_members.append((name, gzip9(raw)))
            note = f"tar member {name}; {note}"
            record(tar_path, f"afdb/{src.name}", "afdb_tar", acc, AFDB_LICENCE, note)
            continue
        dst = afdb_files / name
        copy_gz(src, dst)
        record(dst, f"afdb/{src.name}", "afdb", acc, AFDB_LICENCE, note)
        accessions.append(acc)
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for name, blob in tar_members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(blob), 0, 0o644
            tf.addfile(info, io.BytesIO(blob))

    # SCOPe globins, scaffolding benchmark, id-less edge cases.
    for src in sorted((data / "scop_globins").glob("*.pdb.gz")):
        dst = out / "scop_globins" / src.name
        copy_gz(src, dst)
        ident = src.name.split(".")[0]
        record(dst, f"scop_globins/{src.name}", "scop_globins", ident, SCOP_LICENCE)
    for src in sorted((data / "scaffolding").iterdir()):
        dst = out / "scaffolding" / src.name
        if src.name.endswith(".gz"):
            copy_gz(src, dst)
            lic = PDB_LICENCE
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            lic = "benchmark definition (DPLM-2 / RFdiffusion motif-scaffolding set)"
        record(dst, f"scaffolding/{src.name}", "scaffolding", src.name.split(".")[0], lic)
    for name in EDGE_FILES:
        dst = out / "edge_cases" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / "edge_cases" / name, dst)
        record(dst, f"edge_cases/{name}", "edge_case", name.split(".")[0], PDB_LICENCE)

    demo = out / "demo"
    demo.mkdir(parents=True, exist_ok=True)
    (demo / "pdb_ids.txt").write_text(
        "# Demo PDB entries (served by resources/mirror/pdb); one id per line.\n"
        + "\n".join(DEMO_PDB)
        + "\n"
    )
    (demo / "afdb_accessions.txt").write_text(
        "# Demo AlphaFold DB accessions fetched one by one (resources/mirror/afdb/files);\n"
        f"# {' '.join(TAR_ONLY)} come only through the SwissProt tar.\n"
        + "\n".join(accessions)
        + "\n"
    )
    # Folders this script does not build (chain_cases/: files from other repositories' test
    # data, added by hand) keep their rows.
    old = out / "MANIFEST.csv"
    if old.is_file():
        with open(old, newline="") as fh:
            rows += [r for r in csv.DictReader(fh) if r["path"].startswith(KEPT_FOLDERS)]
    with open(out / "MANIFEST.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} manifest rows under {out}")


if __name__ == "__main__":
    main()

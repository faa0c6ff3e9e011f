"""Local sources end to end through the CLI: a folder of arbitrarily named real files with junk
among them -> local manifest -> parse -> gather, with the expected residues, flags, reasons
and verdicts; DSSP loop fractions on known structures."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from dplm2.cli import main
from dplm2.process.local import LocalSource, manifest_rows, parse_sources
from dplm2.process.metrics import sse_fractions
from dplm2.structure import read_chains

RES = Path(__file__).parents[2] / "resources"
MMCIF = RES / "mirror/pdb/pub/pdb/data/structures/divided/mmCIF"
AFDB = RES / "mirror/afdb/files"


@pytest.fixture
def lab(tmp_path) -> Path:
    """A user's folder: real entries under odd names, a sub-folder, junk, a notes file."""
    d = tmp_path / "lab data"
    (d / "old").mkdir(parents=True)
    (d / "gfp #3.cif.gz").write_bytes((MMCIF / "kc" / "3kcs.cif.gz").read_bytes())
    (d / "echinomycin-dna.cif.gz").write_bytes((RES / "chain_cases" / "1pfe.cif.gz").read_bytes())
    (d / "old" / "complex.cif.gz").write_bytes((RES / "chain_cases" / "4osx.cif.gz").read_bytes())
    (d / "old" / "gfp #3.cif.gz").write_bytes((MMCIF / "ak" / "1aki.cif.gz").read_bytes())
    (d / "server error.pdb").write_text("<html><body>502 Bad Gateway</body></html>")
    (d / "empty.cif").write_bytes(b"")
    (d / "README.txt").write_text("structures from the lab")
    return d


def test_manifest_ids_and_ignored_files(lab):
    rows = manifest_rows(LocalSource("lab", (str(lab),), plddt=False))
    ok = {r["id"]: Path(r["path"]).relative_to(lab).as_posix() for r in rows if r["status"] == "ok"}
    assert ok == {"lab-echinomycin-dna": "echinomycin-dna.cif.gz", "lab-empty": "empty.cif",
                  "lab-gfp_3.cif.gz": "gfp #3.cif.gz", "lab-old-gfp_3.cif.gz": "old/gfp #3.cif.gz",
                  "lab-complex": "old/complex.cif.gz", "lab-server_error": "server error.pdb"}
    ignored = [r for r in rows if r["status"] == "ignored"]
    assert [Path(r["path"]).name for r in ignored] == ["README.txt"]
    assert "not a structure file name" in ignored[0]["error"]
    with pytest.raises(ValueError, match="local: 'PDB' does not match"):
        parse_sources({"PDB": {"paths": ["x"]}})
    with pytest.raises(ValueError, match="not pdb or afdb"):
        parse_sources({"afdb": {"paths": ["x"]}})
    with pytest.raises(ValueError, match="unknown key"):
        parse_sources({"lab": {"paths": ["x"], "pldtd": True}})


def test_local_sources_through_parse_and_gather(tmp_path, lab):
    local = {"lab": {"paths": [str(lab)]},
             "models": {"paths": [str(AFDB / "AF-O15552-F1-model_v4.cif.gz")], "plddt": True}}
    manifest = tmp_path / "local_manifest.parquet"
    assert main(["process", "local-manifest", "--params", json.dumps(local),
                 "--output", str(manifest)]) == 0
    params = json.dumps({"parse_shards": 2, "n_shards": 1, "filters": {"monomers_only": True}})
    parsed = [tmp_path / f"parsed-{i}.parquet" for i in range(2)]
    for i, out in enumerate(parsed):
        assert main(["process", "parse", "--local-manifest", str(manifest), "--shard", str(i),
                     "--shards", "2", "--output", str(out), "--params", params]) == 0
    outdir = tmp_path / "chains"
    assert main(["process", "gather", "--parsed", *map(str, parsed), "--outdir", str(outdir),
                 "--params", params]) == 0
    meta = pl.read_parquet(outdir / "metadata.parquet")
    by_id = {r["id"]: r for r in meta.iter_rows(named=True)}
    assert set(meta["source"]) == {"lab", "models"}
    # junk: each bad file one record with its reason; README.txt never read
    assert "HTML" in by_id["lab-server_error"]["drop_reason"]
    assert "empty file" in by_id["lab-empty"]["drop_reason"]
    assert not any("README" in (r["file"] or "") for r in by_id.values())
    # the GFP: chromophore removed, recorded, one break; an ordinary monomer, kept
    gfp = by_id["lab-gfp_3.cif.gz_A"]
    assert gfp["removed_residues"] == "NRQ 66: no N/CA/C/O atom" and gfp["chain_breaks"] == 1
    assert gfp["length"] == 214 and gfp["kept"] and gfp["loop_fraction"] < 0.5
    assert gfp["pass_resolution"] is True and gfp["pass_plddt"] is None
    # 1aki under the same name in another folder: told apart, kept (date split: train)
    assert by_id["lab-old-gfp_3.cif.gz_A"]["kept"] and by_id["lab-old-gfp_3.cif.gz_A"]["split"] == "train"
    # echinomycin: the DNA chain is not a protein chain; the peptide's D-Ser and X fail
    assert "lab-echinomycin-dna_A" not in by_id
    pep = by_id["lab-echinomycin-dna_B"]
    assert pep["d_amino_fraction"] == pytest.approx(0.25) and pep["unknown_fraction"] == 0.5
    assert pep["pass_d_amino"] is False and "25% of residues are D-amino acids" in pep["reason_d_amino"]
    assert pep["pass_unknown"] is False and "50% of residues unknown" in pep["reason_unknown"]
    # 4osx: two protein chains of 300 residues (no glycine ligands), not monomers
    for cid in "AB":
        r = by_id[f"lab-complex_{cid}"]
        assert r["length"] == 300 and r["pass_oligomer"] is False
        assert r["unknown_fraction"] == 0 and r["d_amino_fraction"] == 0
    # the pLDDT source: predicted (pLDDT filter, no resolution filter), Rg within the fixed law
    af = by_id["models-AF-O15552-F1-model_v4_A"]
    assert af["pass_plddt"] is True and af["pass_resolution"] is None and af["pass_rg"] is True
    assert af["kept"] and af["split"] == "train"
    report = (outdir / "filter_report.md").read_text()
    assert "compactness law" in report and "| lab | models |" in report.replace("| | ", "| ")
    assert "| chains with residues removed (see `removed_residues`) | 1 | 0 | 1 |" in report
    shard = pl.read_parquet(outdir / "chains-00000-of-00001.parquet")
    assert sorted(shard["id"]) == sorted(meta.filter(pl.col("kept"))["id"])
    assert shard.filter(pl.col("id") == "lab-gfp_3.cif.gz_A")["chain_breaks"].item() == 1


@pytest.mark.parametrize("path, loop_max", [
    (MMCIF / "ak" / "1aki.cif.gz", 0.48),  # lysozyme; P-SEA said 0.67
    (MMCIF / "lz" / "3lzm.cif.gz", 0.40),  # T4 lysozyme, mostly helical
    (MMCIF / "kc" / "3kcs.cif.gz", 0.40),  # GFP-like beta barrel
    (MMCIF / "di" / "1dix.cif.gz", 0.50),
])
def test_dssp_loop_fraction_of_ordinary_monomers(path, loop_max):
    helix, strand, loop = sse_fractions(read_chains(path)[0])
    assert 0 < loop <= loop_max and helix + strand + loop == pytest.approx(1.0)

"""Interactive 3D views of the designs, one HTML page per generation task, for the report.

Per task the page shows the best design and a few typical ones (those nearest the median of the
task's main metric) as cartoons coloured by pLDDT, the AlphaFold DB colour bands. The second
structure of each view, drawn in grey and superposed on CA atoms, is what the design is judged
against: the refolded structure for co-generation and scaffolding (what scTM compares), the true
structure for folding and inverse folding. Scaffolding designs show their motif in magenta.

The viewer is 3Dmol.js (npm package ``3dmol``, BSD-3-Clause; Rego & Koes 2015), vendored in
``dplm2/evaluate/static/`` (``tools/update_3dmol.sh`` refreshes it) and embedded in the page,
so ``results/report.html`` works offline as a single file. The script and the structures are
gzipped and base64-encoded in the page and unpacked by the browser (``DecompressionStream``):
``snakemake --report`` shows an HTML result as a ``data:`` URI in an iframe, and Chromium
refuses data URIs over 2 MB, which the 538 kB viewer plus a few structures would approach.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import html
import io
import json
import logging
import os
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

log = logging.getLogger(__name__)

VIEWER_VERSION = "2.5.5"
VIEWER_SHA256 = "f7cc78921ae72e7623e89cdd111434f58c2efddd2ffda1cd212644b406fb8016"
#: The page must stay under Chromium's 2 MB data-URI limit once base64-encoded by the report.
MAX_PAGE_BYTES = 1_400_000

#: task -> (metric table, column, higher is better, label) that picks the best and typical designs.
RANKING: dict[str, tuple[str, str, bool, str]] = {
    "cogen": ("self_consistency", "sctm", True, "scTM"),
    "ss_cogen": ("self_consistency", "sctm", True, "scTM"),
    "folding": ("fold_accuracy", "tm", True, "TM-score to the true structure"),
    "inverse_folding": ("self_consistency", "sctm", True, "scTM to the true structure"),
    "scaffold": ("motif", "motif_rmsd", False, "motif RMSD (Å)"),
}
#: Metric columns quoted under each view (table, column, label, format).
SHOWN = (
    ("self_consistency", "sctm", "scTM", "{:.2f}"),
    ("self_consistency", "scrmsd_ca", "scRMSD", "{:.1f} Å"),
    ("self_consistency", "plddt", "refold pLDDT", "{:.0f}"),
    ("fold_accuracy", "tm", "TM", "{:.2f}"),
    ("fold_accuracy", "rmsd", "RMSD", "{:.1f} Å"),
    ("recovery", "aar", "AAR", "{:.2f}"),
    ("motif", "motif_rmsd", "motif RMSD", "{:.2f} Å"),
    ("motif", "success", "solved", "{}"),
)
#: What the grey structure is, per task.
OVERLAY = {
    "cogen": "refolded", "ss_cogen": "refolded", "scaffold": "refolded",
    "folding": "true structure", "inverse_folding": "true structure",
}


@dataclasses.dataclass(frozen=True)
class View:
    """One 3D view: the coloured structure, the grey one superposed on it, the motif."""

    title: str
    caption: str
    pdb: str  # PDB text, pLDDT (or nothing) in the B-factor column
    has_plddt: bool
    overlay_pdb: str | None = None
    overlay_label: str = ""
    motif: tuple[int, ...] = ()  # 1-based residue numbers of the coloured structure


def viewer_js() -> bytes:
    """The vendored 3Dmol.js, checked against its recorded hash."""
    data = resources.files("dplm2.evaluate").joinpath("static/3Dmol-min.js").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != VIEWER_SHA256:
        raise ValueError(f"dplm2/evaluate/static/3Dmol-min.js: sha256 {digest} is not the "
                         f"recorded {VIEWER_SHA256} of 3Dmol.js {VIEWER_VERSION}; reinstall dplm2 "
                         "or rerun tools/update_3dmol.sh and update VIEWER_SHA256")
    return data


def pdb_text(coords: np.ndarray, sequence: str, plddt: np.ndarray | None) -> str:
    """A light PDB for the viewer: the N, CA, C, O backbone (3Dmol.js assigns helices and
    strands from its hydrogen bonds), pLDDT as the B-factor."""
    import biotite.structure.io.pdb as pdbio

    from dplm2.structure.write import backbone_atoms

    atoms = backbone_atoms(np.asarray(coords, dtype=np.float32), sequence,
                           None if plddt is None else np.clip(plddt, 0, 100))
    atoms = atoms[atoms.atom_name != "CB"]
    f = pdbio.PDBFile()
    f.set_structure(atoms)
    buf = io.StringIO()
    f.write(buf)
    return "\n".join(line for line in buf.getvalue().splitlines() if line.startswith(("ATOM", "TER")))


def superposed(fixed: np.ndarray, mobile: np.ndarray) -> np.ndarray | None:
    """``mobile`` [L, 4, 3] moved onto ``fixed`` by a CA fit (None when lengths differ or fewer
    than 3 CA pairs exist)."""
    from dplm2.structure.compare import superimpose

    if len(fixed) != len(mobile):
        return None
    ok = np.isfinite(fixed[:, 1]).all(-1) & np.isfinite(mobile[:, 1]).all(-1)
    if ok.sum() < 3:
        return None
    _, rot, shift = superimpose(np.nan_to_num(fixed[:, 1]), np.nan_to_num(mobile[:, 1]), ok)
    return mobile @ rot.T + shift


def pick_designs(ranked: pl.DataFrame, column: str, higher_better: bool,
                 n_typical: int) -> list[tuple[str, str]]:
    """``[(sample_id, role)]``: the best sample, then the ``n_typical`` samples nearest the
    median of ``column`` (ties by sample id), nulls and NaNs left out."""
    df = ranked.filter(pl.col(column).is_not_null() & ~pl.col(column).cast(pl.Float64).is_nan())
    if df.height == 0:
        return []
    df = df.sort([column, "sample_id"], descending=[higher_better, False])
    best = df["sample_id"][0]
    median = float(df[column].cast(pl.Float64).median())
    rest = (df.filter(pl.col("sample_id") != best)
            .with_columns(_d=(pl.col(column).cast(pl.Float64) - median).abs())
            .sort(["_d", "sample_id"]).head(n_typical))
    return [(best, "best")] + [(sid, "typical") for sid in rest["sample_id"].to_list()]


def _caption(sid: str, row: dict, tables: dict[str, pl.DataFrame]) -> str:
    parts = [f"{row['length']} residues"]
    if row.get("target_id"):
        parts.insert(0, f"target {row['target_id']}")
    for table, col, label, fmt in SHOWN:
        df = tables.get(table)
        if df is None or col not in df.columns:
            continue
        hit = df.filter(pl.col("sample_id") == sid)
        if hit.height and hit[col][0] is not None:
            v = hit[col][0]
            if isinstance(v, float) and np.isnan(v):
                continue
            parts.append(f"{label} {('yes' if v else 'no') if isinstance(v, bool) else fmt.format(v)}")
    return ", ".join(parts)


def task_views(task: str, samples: pl.DataFrame, tables: dict[str, pl.DataFrame],
               refold: dict | None = None, n_typical: int = 3) -> list[View]:
    """The views of one task: best + ``n_typical`` typical designs (see module docstring).

    ``samples``: :func:`dplm2.evaluate.samples.read_samples`; ``tables``: metric tables by name;
    ``refold``: :func:`dplm2.evaluate.refold.read_refold` (needed except for folding).
    """
    from dplm2.evaluate.samples import load_chain, reference_chain, resolve

    if task not in RANKING:
        raise ValueError(f"no 3D views for task {task!r}; expected one of {sorted(RANKING)}")
    table, column, higher, label = RANKING[task]
    if table not in tables:
        raise ValueError(f"{task}: the {table} metric table is needed to rank the designs")
    if task != "folding" and refold is None:
        raise ValueError(f"{task}: the refold table is needed for the views")
    rows = {r["sample_id"]: r for r in samples.iter_rows(named=True)}
    views = []
    for sid, role in pick_designs(tables[table], column, higher, n_typical):
        row = rows.get(sid)
        if row is None:
            raise ValueError(f"{task}: sample {sid!r} of the {table} table is not in the samples table")
        if task == "inverse_folding":  # the designed sequence, folded, against the true structure
            fold = refold[sid]
            coords, seq, plddt = fold.coords, fold.sequence, fold.plddt
            ref = reference_chain(row)
            other, other_seq = ref.coords, ref.sequence
        else:
            chain = load_chain(resolve(row["pdb_path"], row["_base"]))
            # generated structures carry the decoder's pLDDT in the B-factor column
            coords, seq = chain.coords, chain.sequence
            plddt = load_chain_plddt(resolve(row["pdb_path"], row["_base"]))
            if task == "folding":
                ref = reference_chain(row)
                other, other_seq = ref.coords, ref.sequence
            else:
                fold = refold.get(sid)
                other, other_seq = (None, "") if fold is None else (fold.coords, fold.sequence)
        moved = None if other is None else superposed(np.asarray(coords, dtype=np.float64),
                                                      np.asarray(other, dtype=np.float64))
        if other is not None and moved is None:
            log.warning("%s %s: the %s has another length; shown alone", task, sid, OVERLAY[task])
        motif = tuple(int(i) + 1 for i in (row.get("motif_positions") or []))
        title = f"{'best' if role == 'best' else 'typical'} by {label}: {sid}"
        views.append(View(
            title=title, caption=_caption(sid, row, tables),
            pdb=pdb_text(coords, seq, plddt), has_plddt=plddt is not None and bool(np.any(plddt > 0)),
            overlay_pdb=None if moved is None else pdb_text(moved, other_seq, None),
            overlay_label=OVERLAY[task], motif=motif,
        ))
    return views


def load_chain_plddt(path: str | os.PathLike) -> np.ndarray | None:
    """Per-residue B-factors of a generated structure (the decoder's pLDDT), None if absent."""
    from dplm2.structure import StructureError, read_chains

    try:
        chains = read_chains(path, source="afdb")  # "afdb": read B-factors as pLDDT (0-100)
    except StructureError:
        return None  # B-factors outside 0-100: not pLDDT
    return chains[0].plddt if chains else None


def _packed(data: bytes) -> str:
    return base64.b64encode(gzip.compress(data, mtime=0)).decode("ascii")


#: The page's own script: unpack the viewer and the structures, draw each view, and record in
#: ``window.dplm2Views`` what was drawn (the browser test reads it).
PAGE_SCRIPT = r"""
const PLDDT_BANDS = [[90, "#0053D6"], [70, "#65CBF3"], [50, "#FFDB13"], [0, "#FF7D45"]];
function plddtColor(atom) {
  for (const [lo, color] of PLDDT_BANDS) { if (atom.b >= lo) return color; }
  return "#FF7D45";
}
async function unpack(b64) {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).text();
}
async function main() {
  window.dplm2Views = {drawn: 0, errors: []};
  (0, eval)(await unpack(document.getElementById("viewer-js").textContent));  // global scope
  const views = JSON.parse(await unpack(document.getElementById("views").textContent));
  for (const [i, v] of views.entries()) {
    try {
      const el = document.getElementById("view-" + i);
      const viewer = $3Dmol.createViewer(el, {backgroundColor: "white", antialias: true});
      const model = viewer.addModel(v.pdb, "pdb");
      const style = v.has_plddt ? {colorfunc: plddtColor} : {color: "spectrum"};
      model.setStyle({}, {cartoon: style});
      if (v.motif.length) {
        model.setStyle({resi: v.motif}, {cartoon: {color: "#D6008F"}});
        model.setStyle({resi: v.motif, atom: "CA"}, {sphere: {color: "#D6008F", radius: 0.8}}, true);
      }
      if (v.overlay_pdb) {
        viewer.addModel(v.overlay_pdb, "pdb").setStyle({}, {cartoon: {color: "#9a9a9a", opacity: 0.55}});
      }
      viewer.zoomTo();
      viewer.render();
      window.dplm2Views.drawn += 1;
    } catch (err) {
      window.dplm2Views.errors.push(String(err));
      console.error(err);
    }
  }
}
main().catch(err => { console.error(err); window.dplm2Views = {drawn: 0, errors: [String(err)]}; });
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em; color: #222; }
.views { display: flex; flex-wrap: wrap; gap: 14px; }
.card { width: 440px; }
.card h3 { font-size: 14px; margin: 4px 0; word-break: break-all; }
.card p { font-size: 12px; margin: 2px 0 6px; color: #444; }
.viewer { width: 440px; height: 360px; position: relative; border: 1px solid #ccc;
          box-sizing: border-box; }
.legend span { display: inline-block; padding: 1px 6px; margin-right: 4px; font-size: 12px; }
"""


def render_page(task: str, views: list[View], n_samples: int) -> str:
    """The self-contained HTML page of one task's views."""
    cards = "\n".join(
        f'<div class="card"><h3>{html.escape(v.title)}</h3><p>{html.escape(v.caption)}'
        f'{"" if v.has_plddt else " (no pLDDT: coloured N- to C-terminus)"}'
        f'{"; grey: " + html.escape(v.overlay_label) if v.overlay_pdb else ""}</p>'
        f'<div class="viewer" id="view-{i}"></div></div>'
        for i, v in enumerate(views)
    )
    legend = ('<p class="legend">pLDDT: <span style="background:#0053D6;color:#fff">&gt; 90</span>'
              '<span style="background:#65CBF3">70-90</span><span style="background:#FFDB13">50-70</span>'
              '<span style="background:#FF7D45">&lt; 50</span>'
              + (' <span style="background:#D6008F;color:#fff">motif</span>' if task == "scaffold" else "")
              + f' <span style="background:#9a9a9a;color:#fff">{html.escape(OVERLAY[task])}</span></p>')
    payload = json.dumps([dataclasses.asdict(v) for v in views]).encode()
    empty = "" if views else "<p>No design has a value of the ranking metric.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(task)}: designs in 3D</title>
<style>{STYLE}</style></head><body>
<h2>{html.escape(task)}: designs in 3D</h2>
<p>The best and typical designs of {n_samples} samples (drag to rotate, scroll to zoom).
Viewer: 3Dmol.js {VIEWER_VERSION}.</p>
{legend}
{empty}
<div class="views">
{cards}
</div>
<script type="text/plain" id="viewer-js">{_packed(viewer_js())}</script>
<script type="text/plain" id="views">{_packed(payload)}</script>
<script>{PAGE_SCRIPT}</script>
</body></html>
"""


def write_views_page(task: str, samples_path: str | os.PathLike, metric_paths: list[str],
                     refold_path: str | os.PathLike | None, out: str | os.PathLike,
                     n_typical: int = 3) -> list[View]:
    """Read a task's samples, metric tables and refold table; write its 3D-view page atomically.

    Typical designs are dropped (last first) while the page is over :data:`MAX_PAGE_BYTES`."""
    from dplm2.evaluate.refold import read_refold
    from dplm2.evaluate.samples import read_samples
    from dplm2.evaluate.summary import metric_name
    from dplm2.io import atomic_path, read_parquet_checked

    samples = read_samples(samples_path, task)
    tables = {metric_name(p): read_parquet_checked(p, ["sample_id"]) for p in metric_paths}
    refold = read_refold(refold_path) if refold_path else None
    views = task_views(task, samples, tables, refold, n_typical)
    page = render_page(task, views, samples.height)
    while len(page.encode()) > MAX_PAGE_BYTES and len(views) > 1:
        views = views[:-1]
        page = render_page(task, views, samples.height)
    if len(page.encode()) > MAX_PAGE_BYTES:
        log.warning("%s: the 3D page is %d bytes, over the %d that a report iframe can show",
                    task, len(page.encode()), MAX_PAGE_BYTES)
    with atomic_path(Path(out)) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return views

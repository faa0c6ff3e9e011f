"""The report's 3D views: which designs, what the page holds, and that it renders in a real
headless browser (Chromium), offline, with no console error, also inside a data: URI iframe
as `snakemake --report` shows it."""

from __future__ import annotations

import base64
import io

import numpy as np
import polars as pl
import pytest

from dplm2.evaluate import views
from dplm2.evaluate.views import MAX_PAGE_BYTES, pick_designs, write_views_page

from .views_fixture import design_folder

GLOBS = ["d1mbaa_", "d1asha_", "d1ecaa_", "d1hlba_", "1hml_A"]
CASES = {  # task -> (designs, motif residues)
    "cogen": (GLOBS, None),
    "folding": (["8tim_A", "1tim_A"], None),
    "inverse_folding": (GLOBS[:2], None),
    "scaffold": (GLOBS[:2], (20, 35)),
}


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """task -> (HTML page, views) built from real structures by the real metric commands."""
    root = tmp_path_factory.mktemp("views")
    out = {}
    for task, (names, motif) in CASES.items():
        a = design_folder(root, task, names, motif)
        page = root / f"designs_{task}.html"
        shown = write_views_page(task, a["samples"], [str(p) for p in a["metrics"]], a["refold"], page)
        out[task] = (page, shown)
    return out


def test_best_then_typical_nearest_the_median():
    df = pl.DataFrame({"sample_id": list("abcdefg"), "sctm": [0.9, 0.1, 0.5, 0.45, None, 0.3, float("nan")]})
    # median of the five values 0.45: d (0.45), then c (0.5)
    assert pick_designs(df, "sctm", True, 2) == [("a", "best"), ("d", "typical"), ("c", "typical")]
    rmsd = df.rename({"sctm": "motif_rmsd"})
    assert pick_designs(rmsd, "motif_rmsd", False, 1)[0] == ("b", "best")
    assert pick_designs(df.head(0), "sctm", True, 3) == []


def test_pages_hold_the_views_inline(pages):
    for task, (page, shown) in pages.items():
        text = page.read_text()
        n = len(CASES[task][0])
        assert len(shown) == min(n, 4), task
        assert shown[0].title.startswith("best")
        assert "<script src" not in text and "<link" not in text  # nothing fetched
        assert page.stat().st_size < MAX_PAGE_BYTES
        assert all(v.overlay_pdb for v in shown), task  # refold / true structure superposed
    cogen = pages["cogen"][1]
    assert all(v.has_plddt for v in cogen) and "scTM" in cogen[0].caption
    scaffold = pages["scaffold"][1]
    assert scaffold[0].motif == tuple(range(21, 36))
    folding = pages["folding"][1]
    assert "TM" in folding[0].caption and folding[0].overlay_label == "true structure"


def test_superposed_structure_lies_on_the_design(pages):
    from dplm2.structure.compare import ca_rmsd

    v = pages["folding"][1][0]  # 8tim vs 1tim: the same protein, < 1 A apart once superposed

    def ca(pdb: str) -> np.ndarray:
        return np.array([[float(line[30:38]), float(line[38:46]), float(line[46:54])]
                         for line in pdb.splitlines() if line[12:16].strip() == "CA"])

    a, b = ca(v.pdb), ca(v.overlay_pdb)
    assert np.sqrt(((a - b) ** 2).sum(-1).mean()) < 1.5
    expected = ca_rmsd(a[:, None].repeat(4, 1), b[:, None].repeat(4, 1))
    assert np.sqrt(((a - b) ** 2).sum(-1).mean()) == pytest.approx(expected, abs=0.05)


def test_missing_metric_table_or_tampered_viewer_is_a_clear_error(tmp_path, monkeypatch):
    a = design_folder(tmp_path, "cogen", GLOBS[:2])
    from dplm2.cli import main

    out = tmp_path / "x.html"
    assert main(["evaluate", "views", "--task", "cogen", "--samples", str(a["samples"]),
                 "--metrics", str(a["metrics"][0]), "--out", str(out)]) == 2  # no --refold
    assert not out.exists()
    monkeypatch.setattr(views, "VIEWER_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="3Dmol-min.js: sha256"):
        views.viewer_js()


def _browser(require_tool):
    """playwright (the pip package, requirements.lock) driving the system's Chromium."""
    import os

    if os.environ.get("DPLM2_REQUIRE_TOOLS") == "1":
        import playwright.sync_api as pw
    else:
        pw = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    exe = require_tool("chromium", "chromium-browser", "google-chrome",
                       install="Debian: apt-get install chromium")
    return pw, exe


def _colours(png: bytes) -> dict[str, float]:
    """Fraction of a screenshot's pixels in each colour family the views use."""
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    return {
        "drawn": float((a.sum(-1) < 720).mean()),
        "distinct": float(len(np.unique(a.reshape(-1, 3), axis=0))),
        "blue": float(((b > r + 80) & (b > 150)).mean()),  # pLDDT > 70 bands
        "yellow": float(((r > 180) & (g > 150) & (b < 90)).mean()),  # 50-70
        "orange": float(((r > 180) & (g > 70) & (g < 150) & (b < 110)).mean()),  # < 50
        "magenta": float(((r > 140) & (b > 90) & (g < 80)).mean()),  # motif
        "grey": float(((abs(r - g) < 8) & (abs(g - b) < 8) & (r > 120) & (r < 220)).mean()),
    }


def test_every_view_renders_in_headless_chromium(pages, require_tool):
    pw, exe = _browser(require_tool)
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe,
                                    args=["--no-sandbox", "--enable-unsafe-swiftshader"])
        try:
            # every page as the report shows it; one also opened directly as a file
            for task, mode in [(t, "report iframe") for t in pages] + [("scaffold", "file")]:
                page_path, shown = pages[task]
                page = browser.new_page(viewport={"width": 1000, "height": 1600})
                problems, fetched = [], []  # the handlers below fill this page's lists
                page.on("console", lambda m: m.type == "error" and problems.append(m.text))  # noqa: B023
                page.on("pageerror", lambda e: problems.append(str(e)))  # noqa: B023
                page.on("request", lambda r: r.url.split(":")[0] not in ("file", "data", "blob")
                        and fetched.append(r.url))  # noqa: B023
                if mode == "file":
                    page.goto(page_path.as_uri())
                    frame = page.main_frame
                else:  # how snakemake's report shows an HTML result
                    uri = "data:text/html;base64," + base64.b64encode(page_path.read_bytes()).decode()
                    # set_content waits for the load event, which waits for the iframe
                    page.set_content(f'<iframe style="width:980px;height:1550px" src="{uri}"></iframe>')
                    frame = page.frames[1]
                    assert frame.url.startswith("data:text/html")
                frame.wait_for_function(
                    "window.dplm2Views && window.dplm2Views.drawn + window.dplm2Views.errors.length"
                    f" >= {len(shown)}", timeout=60_000)
                state = frame.evaluate("window.dplm2Views")
                assert state == {"drawn": len(shown), "errors": []}, (task, mode, state)
                page.wait_for_timeout(300)
                for i in range(len(shown)):
                    c = _colours(frame.locator(f"#view-{i}").screenshot())
                    where = (task, mode, i, c)
                    assert c["drawn"] > 0.05 and c["distinct"] > 500, where  # not blank
                    assert c["grey"] > 0.003, where  # the superposed structure
                    if shown[i].has_plddt:  # fixture pLDDT ramps span every band
                        ok = [c[k] > 0.001 for k in ("blue", "yellow", "orange")]
                        assert sum(ok) >= (3 if task != "folding" else 1), where
                    if shown[i].motif:
                        assert c["magenta"] > 0.001, where
                assert not problems, (task, mode, problems)
                assert not fetched, (task, mode, fetched)  # works offline
                page.close()
        finally:
            browser.close()

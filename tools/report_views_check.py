"""Open a `snakemake --report` HTML file in headless Chromium, show every "designs in 3D" result
as the report does (an iframe on the result's data URI), and check each 3D view renders: drawn,
not blank, no console error, nothing fetched from the network. Optionally save a screenshot.

    python tools/report_views_check.py results/report.html [--screenshot docs/report.png --task cogen]

Needs playwright (requirements.lock) and Chromium (Debian: apt-get install chromium).
Exit 0 when every view renders; 1 otherwise, naming the task and the problem.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path


def blank(png: bytes) -> bool:
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    drawn = (a.sum(-1) < 720).mean()  # a thin extended chain can cover well under 1%
    return drawn < 0.002 or len(np.unique(a.reshape(-1, 3), axis=0)) < 20


def check(report: Path, screenshot: Path | None = None, shot_task: str = "cogen",
          timeout_ms: int = 60_000) -> list[str]:
    """Problems found (empty: every view of every task renders); ``screenshot`` of ``shot_task``.

    Each "designs in 3D" result is shown the way the report shows it when its eye button is
    clicked: an iframe, inside the report page, whose source is the result's data URI (read
    from the report's own ``results`` table, so the check does not depend on the menu layout,
    which Snakemake varies with the number of categories and labels)."""
    from playwright.sync_api import sync_playwright

    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(n)), None)
    if exe is None:
        return ["no Chromium on PATH (Debian: apt-get install chromium)"]
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe,
                                    args=["--no-sandbox", "--enable-unsafe-swiftshader"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            errors: list[str] = []
            fetched: list[str] = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: r.url.split(":")[0] not in ("file", "data", "blob")
                    and fetched.append(r.url))
            page.goto(report.resolve().as_uri())
            views = page.evaluate("""Object.values(results)
                .filter(r => r.labels && r.labels.figure === "designs in 3D")
                .map(r => [r.labels.task, r.data_uri])""")
            if not views:
                problems.append(f"{report}: no 'designs in 3D' result")
            for task, uri in views:
                page.evaluate("""uri => {
                    document.querySelectorAll("iframe.dplm2-check").forEach(f => f.remove());
                    const f = document.createElement("iframe");
                    f.className = "dplm2-check w-full h-screen";
                    f.style = "position:fixed;top:0;left:0;width:100vw;height:100vh;background:white;z-index:99";
                    f.src = uri;
                    document.body.appendChild(f);
                }""", uri)
                frame = None
                for _ in range(timeout_ms // 100):
                    frame = next((f for f in page.frames if f.url == uri), None)
                    if frame is not None:
                        break
                    page.wait_for_timeout(100)
                if frame is None:
                    problems.append(f"{task}: the result's iframe did not load")
                    continue
                frame.wait_for_function("window.dplm2Views && window.dplm2Views.drawn + "
                                        "window.dplm2Views.errors.length >= "
                                        "document.querySelectorAll('.viewer').length",
                                        timeout=timeout_ms)
                state = frame.evaluate("window.dplm2Views")
                n = frame.locator(".viewer").count()
                if state["errors"] or state["drawn"] != n or n == 0:
                    problems.append(f"{task}: {state['drawn']} of {n} views drawn {state['errors']}")
                page.wait_for_timeout(300)
                for i in range(n):
                    if blank(frame.locator(f"#view-{i}").screenshot()):
                        problems.append(f"{task}: view {i} is blank")
                if screenshot is not None and task == shot_task:
                    page.screenshot(path=str(screenshot))
            problems += [f"console error: {e}" for e in errors]
            problems += [f"fetched from the network: {u}" for u in fetched]
        finally:
            browser.close()
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--screenshot", type=Path)
    ap.add_argument("--task", default="cogen", help="task shown in the screenshot")
    args = ap.parse_args()
    problems = check(args.report, args.screenshot, args.task)
    for line in problems:
        print(line, file=sys.stderr)
    print(f"{args.report}: {'every 3D view renders' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""``filter_report.md``: what was dropped by which filter, per source, and why files failed."""

from __future__ import annotations

from collections import Counter

from dplm2.process.filters import ALL_FILTERS, RgThreshold
from dplm2.process.records import SPLITS, ChainRecord


def filter_report(records: list[ChainRecord], rg: RgThreshold, config: dict) -> str:
    """Markdown report of one process run."""
    lines = ["# Process stage: filter report", ""]
    sources = sorted({r.source for r in records})
    head = "| | " + " | ".join(sources) + " | all |"
    lines += [head, "|---" * (len(sources) + 2) + "|"]

    def row(label: str, pred) -> str:
        counts = [sum(1 for r in records if r.source == s and pred(r)) for s in sources]
        return f"| {label} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |"

    lines.append(row("files that failed to parse / download", lambda r: r.error is not None))
    lines.append(row("chains parsed", lambda r: r.error is None))
    lines.append(row("chains with residues removed (see `removed_residues`)",
                     lambda r: r.error is None and bool(r.removed_residues)))
    lines.append(row("chains with chain breaks (see `chain_breaks`)",
                     lambda r: r.error is None and bool(r.chain_breaks)))
    for name in ALL_FILTERS:
        v = lambda r, n=name: (r.verdict(n) is not None and r.verdict(n).passed is False)  # noqa: E731
        lines.append(row(f"dropped by `{name}`", v))
    lines.append(row("**kept**", lambda r: r.kept))
    for split in SPLITS:
        lines.append(row(f"kept in {split}", lambda r, s=split: r.split == s))
    lines += ["", "A chain can fail several filters; each failure is counted once per filter.",
              "", f"Radius-of-gyration bound: {rg.describe()}.", ""]
    lines += ["## First failing filter of dropped chains", ""]
    first = Counter(
        next(v.name for v in r.verdicts if v.passed is False)
        for r in records if r.error is None and not r.kept
    )
    for name, n in sorted(first.items(), key=lambda kv: -kv[1]):
        lines.append(f"- `{name}`: {n}")
    failed = [r for r in records if r.error is not None]
    lines += ["", f"## Files that failed ({len(failed)})", ""]
    if failed:
        lines += ["| source | file | reason |", "|---|---|---|"]
        for r in sorted(failed, key=lambda r: (r.source, r.file)):
            lines.append(f"| {r.source} | `{r.file}` | {r.error.replace('|', '/')} |")
    else:
        lines.append("None.")
    lines += ["", "## Filter settings", "", "```", *_flat(config), "```", ""]
    return "\n".join(lines)


def _flat(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flat(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}: {v}")
    return out

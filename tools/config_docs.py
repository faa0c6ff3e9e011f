"""Print (or check) the README's config-key table, generated from workflow/schemas/*.yaml.

    python tools/config_docs.py            # print the table
    python tools/config_docs.py --write    # replace the block between the README markers
    python tools/config_docs.py --check    # exit 1 if the README block is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "workflow" / "schemas"
BEGIN, END = "<!-- config-table:begin -->", "<!-- config-table:end -->"


def _rows(node: dict, prefix: str, base: Path) -> list[tuple[str, str, str, str]]:
    if "$ref" in node:
        path = base / node["$ref"]
        node = {**yaml.safe_load(path.read_text()), **{k: v for k, v in node.items() if k != "$ref"}}
        base = path.parent
    rows = []
    props = node.get("properties", {})
    if prefix and (not props or node.get("type") != "object"):
        typ = node.get("type", "")
        typ = "|".join(typ) if isinstance(typ, list) else typ
        default = json.dumps(node["default"]) if "default" in node else ""
        desc = " ".join(str(node.get("description", "")).split())
        rows.append((prefix, typ, default, desc))
        return rows
    for key, sub in props.items():
        rows += _rows(sub, f"{prefix}.{key}" if prefix else key, base)
    return rows


def table() -> str:
    schema = yaml.safe_load((SCHEMAS / "config.schema.yaml").read_text())
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, typ, default, desc in _rows(schema, "", SCHEMAS):
        cell = lambda s: s.replace("|", "\\|")  # noqa: E731
        lines.append(f"| `{key}` | {cell(typ)} | `{cell(default)}` | {cell(desc)} |" if default
                     else f"| `{key}` | {cell(typ)} |  | {cell(desc)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = table()
    if not (args.write or args.check):
        sys.stdout.write(text)
        return 0
    readme = REPO / "README.md"
    body = readme.read_text()
    start, stop = body.index(BEGIN) + len(BEGIN), body.index(END)
    new = body[:start] + "\n" + text + body[stop:]
    if args.check:
        if new != body:
            print("README config table is stale: run python tools/config_docs.py --write")
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write (or check) the key reference of config/README.md, generated from the config schemas
(src/dplm2/schemas/*.schema.yaml: every key's type, default, allowed values and meaning).

    python tools/config_docs.py            # print the table
    python tools/config_docs.py --write    # replace the block between config/README.md's markers
    python tools/config_docs.py --check    # exit 1 if that block is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "config" / "README.md"
BEGIN, END = "<!-- config-table:begin -->", "<!-- config-table:end -->"

sys.path.insert(0, str(REPO / "src"))
from dplm2.config import config_schema  # noqa: E402  (the sources beside this file)


def _typ(node: dict) -> str:
    typ = node.get("type", "")
    return "\\|".join(typ) if isinstance(typ, list) else typ


def _allowed(node: dict) -> str:
    """Allowed values of a key: its enum, range, pattern, item constraints."""
    parts = []
    if "enum" in node:
        parts.append(" \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"]))
    low = [f">= {node['minimum']}"] if "minimum" in node else []
    low += [f"> {node['exclusiveMinimum']}"] if "exclusiveMinimum" in node else []
    high = [f"<= {node['maximum']}"] if "maximum" in node else []
    high += [f"< {node['exclusiveMaximum']}"] if "exclusiveMaximum" in node else []
    if low or high:
        parts.append(", ".join(low + high))
    if "pattern" in node:
        parts.append(f"matches `{node['pattern']}`".replace("|", "\\|"))
    if "minItems" in node or "maxItems" in node:
        lo, hi = node.get("minItems"), node.get("maxItems")
        parts.append(f"{lo} items" if lo == hi else
                     ", ".join(([f">= {lo} items"] if lo else []) + ([f"<= {hi} items"] if hi else [])))
    items = node.get("items")
    if isinstance(items, dict) and items.get("type") != "object":
        inner = _allowed(items)
        if inner:
            parts.append(f"each {inner}")
    return "; ".join(parts)


def _rows(node: dict, prefix: str) -> list[tuple[str, str, str, str, str]]:
    props = node.get("properties", {})
    rows = []
    if prefix and (not props or node.get("type") != "object"):
        default = f"`{json.dumps(node['default'])}`" if "default" in node else ""
        desc = " ".join(str(node.get("description", "")).split())
        rows.append((f"`{prefix}`", _typ(node), default, _allowed(node), desc))
    for key, sub in props.items():
        rows += _rows(sub, f"{prefix}.{key}" if prefix else key)
    entries = node.get("additionalProperties")
    if isinstance(entries, dict) and entries.get("properties"):  # a map: local.<name>, embed.sets.<name>
        for key, sub in entries["properties"].items():
            rows += _rows(sub, f"{prefix}.<name>.{key}")
    return rows


def table() -> str:
    """The Markdown table of every key (one row per leaf key; maps as ``<name>``)."""
    lines = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for row in _rows(config_schema(), ""):
        cells = [c.replace("|", "\\|") if i in (2, 4) else c for i, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="update config/README.md")
    ap.add_argument("--check", action="store_true", help="exit 1 if config/README.md is stale")
    args = ap.parse_args()
    text = table()
    if not (args.write or args.check):
        sys.stdout.write(text)
        return 0
    body = README.read_text(encoding="utf-8")
    try:
        start, stop = body.index(BEGIN) + len(BEGIN), body.index(END)
    except ValueError:
        print(f"{README}: markers {BEGIN} ... {END} not found")
        return 1
    new = body[:start] + "\n" + text + body[stop:]
    if args.check:
        if new != body:
            print(f"{README}: the key table is stale: run python tools/config_docs.py --write")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

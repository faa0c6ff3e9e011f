"""The README stays true: it opens with the two set-up commands and its config table is the one
generated from the schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_opens_with_the_two_commands():
    head = "\n".join((REPO / "README.md").read_text().splitlines()[:8])
    assert "make demo" in head and "make test" in head


def test_config_table_is_current():
    out = subprocess.run([sys.executable, "tools/config_docs.py", "--check"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_schema_key_has_a_description():
    sys.path.insert(0, str(REPO / "tools"))
    import config_docs

    table = config_docs.table().splitlines()[2:]
    missing = [row.split("|")[1].strip() for row in table if not row.rstrip("| ").split("|")[-1].strip()]
    assert not missing, f"schema keys without a description: {missing}"


def _all_help(parser) -> list[tuple[str, str]]:
    """``(command, help text)`` of a parser and every sub-command under it."""
    import argparse

    out = [(parser.prog, parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                out += _all_help(child)
    return out


def test_help_speaks_the_users_language():
    """Help points at what users have (the paper, the README), not at internal documents."""
    import re

    from dplm2.cli import build_parser

    texts = _all_help(build_parser())
    assert len(texts) > 30  # every stage and its commands
    bad = [(cmd, m.group(0)) for cmd, text in texts
           for m in re.finditer(r"spec\s*§?\s*\d|§|``", text)]
    assert not bad, bad

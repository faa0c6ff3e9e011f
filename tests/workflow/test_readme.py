"""The README stays true: it opens with the two set-up commands; the help speaks the users'
language. (The generated config reference, config/README.md, is checked in tests/test_config.py.)"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_opens_with_the_two_commands():
    head = "\n".join((REPO / "README.md").read_text().splitlines()[:8])
    assert "make demo" in head and "make test" in head


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

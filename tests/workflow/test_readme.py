"""The README stays true and short: it opens with the two set-up commands, stays a user's guide
(at most 260 lines), and every relative link in it and in docs/ leads to a file (and heading)
that exists; the help speaks the users' language. (The generated config reference,
config/README.md, is checked in tests/test_config.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "workflow" / "profiles" / "README.md"]
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_opens_with_the_two_commands():
    head = "\n".join((REPO / "README.md").read_text().splitlines()[:8])
    assert "make demo" in head and "make test" in head


def test_readme_is_a_short_guide():
    n = len((REPO / "README.md").read_text().splitlines())
    assert n <= 260, f"README.md has {n} lines (at most 260: details go to docs/)"


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            base = slug(m.group(1))
            k = seen.get(base, 0)
            seen[base] = k + 1
            out.add(base if k == 0 else f"{base}-{k}")
    return out


def relative_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(FENCE.sub("", path.read_text()))
            if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # http:, https:, mailto: ...


def test_slug_matches_github():
    assert slug("Running on a cluster (SLURM)") == "running-on-a-cluster-slurm"
    assert slug("The paper's tokenizer recipe") == "the-papers-tokenizer-recipe"
    assert slug("Co-generation (`ss_cogen`)") == "co-generation-ss_cogen"


def broken_links(doc: Path) -> list[str]:
    """The relative links of ``doc`` whose file, or heading in a Markdown file, does not exist."""
    bad = []
    for target in relative_links(doc):
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading #{anchor} in {dest.name}")
    return bad


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc):
    assert not broken_links(doc), f"{doc.relative_to(REPO)}: " + "; ".join(broken_links(doc))


def test_readme_points_to_the_details():
    links = {t.partition("#")[0] for t in relative_links(REPO / "README.md")}
    assert {"docs/stages.md", "docs/cluster.md", "docs/results.md", "config/README.md"} <= links


def test_link_check_catches_a_broken_link(tmp_path):
    doc = tmp_path / "a.md"
    (tmp_path / "b.md").write_text("# Other heading\n")
    doc.write_text("# Top\n[ok](#top) [gone](missing.md) [web](https://x.org) [b](b.md#other-heading)\n"
                   "[b2](b.md#nope) [self](#bottom)\n```\n# not a heading\n[no](code.md)\n```\n")
    assert relative_links(doc) == ["#top", "missing.md", "b.md#other-heading", "b.md#nope", "#bottom"]
    assert anchors(doc) == {"top"}
    assert broken_links(doc) == ["missing.md: no such file", "b.md#nope: no heading #nope in b.md",
                                 "#bottom: no heading #bottom in a.md"]


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
    from dplm2.cli import build_parser

    texts = _all_help(build_parser())
    assert len(texts) > 30  # every stage and its commands
    bad = [(cmd, m.group(0)) for cmd, text in texts
           for m in re.finditer(r"spec\s*§?\s*\d|§|``", text)]
    assert not bad, bad

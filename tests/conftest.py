"""Project-wide test fixtures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESOURCES = REPO / "resources"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture
def fake_hub(monkeypatch):
    """``serve(folder) -> asked``: ``huggingface_hub.hf_hub_download`` answers from ``folder``
    (``EntryNotFoundError`` for files it lacks) and records every ``(repo, filename, revision)``
    asked for, so tests can check that only the named files are fetched."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    def serve(folder: Path) -> list[tuple]:
        asked: list[tuple] = []

        def download(repo, filename, revision=None, cache_dir=None, **kw):
            asked.append((repo, filename, revision))
            if not (Path(folder) / filename).is_file():
                raise EntryNotFoundError(f"{filename} not in {repo}")
            return str(Path(folder) / filename)

        monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
        return asked

    return serve


@pytest.fixture
def require_tool():
    """``require_tool(*executables, install=...) -> path``: the first executable found on PATH;
    none found skips the test, naming how to install one, except under
    ``DPLM2_REQUIRE_TOOLS=1`` (set by .ci/run, which installs them), where it fails: CI always
    runs the tests against the oracles (TM-align, MMseqs2) and the browser (Chromium)."""

    def find(*names: str, install: str) -> str:
        for name in names:
            path = shutil.which(name)
            if path:
                return path
        why = f"{' / '.join(names)} not installed ({install})"
        if os.environ.get("DPLM2_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{why}; DPLM2_REQUIRE_TOOLS=1 asks for every external tool")
        pytest.skip(why)

    return find

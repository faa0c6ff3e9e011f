"""Session fixtures of the evaluate tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import build_tiny_esmfold


@pytest.fixture(scope="session")
def tiny_esmfold(tmp_path_factory) -> Path:
    """A randomly initialised, very small EsmForProteinFolding saved with save_pretrained."""
    return build_tiny_esmfold(tmp_path_factory.mktemp("tiny_esmfold"))

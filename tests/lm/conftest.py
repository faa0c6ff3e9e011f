"""Fixtures for the LM tests."""

from __future__ import annotations

import pytest

from .helpers import demo_proteins


@pytest.fixture(scope="session")
def proteins4():
    """Four real demo chains cut to 64 residues, random-but-fixed structure codes."""
    return demo_proteins(4, length=64)

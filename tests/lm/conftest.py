"""Fixtures for the LM tests."""

from __future__ import annotations

import pytest

from .helpers import demo_proteins, tokenized_demo_proteins


@pytest.fixture(scope="session")
def proteins4():
    """Four real demo chains cut to 64 residues, random-but-fixed structure codes."""
    return demo_proteins(4, length=64)


@pytest.fixture(scope="session")
def tokenized4():
    """Four real demo chains (pairwise different sequences) cut to 64 residues, with structure
    tokens from a freshly initialised structure tokenizer (real, structure-dependent codes)."""
    return tokenized_demo_proteins(4, length=64)

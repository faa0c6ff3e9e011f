"""Fixtures of the embedding tests: tiny models written to folders like the stages write them."""

from __future__ import annotations

import pytest

from .helpers import tiny_lm, tiny_tokenizer


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch thread: the tests run beside other jobs on a small shared machine, where
    oversubscribed threads are several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def lm():
    return tiny_lm()


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory, lm, tokenizer):
    """(lm folder, tokenizer folder) as the lm / tokenizer stages export them."""
    from dplm2.tokenizer.hub import save_tokenizer

    root = tmp_path_factory.mktemp("models")
    lm.save_pretrained(root / "lm")
    save_tokenizer(tokenizer, root / "tokenizer")
    return root / "lm", root / "tokenizer"

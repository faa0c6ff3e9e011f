"""Memorisation with the bit objective: a demo-size DPLM-2 Bit model learns 4 real chains.

Data: the first 32 residues of the first chain of 4 demo entries (3zee, 1k6p, 1hml, 4zey),
structure tokens from a freshly initialised structure tokenizer
(``helpers.tokenized_demo_proteins``). Recipe: :func:`dplm2.lm.probe.memorise` with
``objective="bit"`` (the bit loss on every bit, amino-acid cross-entropy, mean of the two;
4 copies of each chain per batch, constant weighting, AdamW lr 2e-3, dropout 0).

Measured 2026-12-02 (1 thread, other jobs running; docs/results.md, ``bench/lm_memorise.py
--objective bit --chains 4 --length 32 --repeats 4 --target 0.95 --eval-every 50
--no-sampler --seeds 0 1``): at step 500 one-shot folding bit accuracy 0.953 / 0.995,
inverse folding 0.984 / 1.000, folding token accuracy 0.805 / 0.953 (seeds 0 / 1); both
token accuracies >= 95% at step 650 / 500 (~0.11 s per step). The thresholds below leave
room for the seed-0 swing.
"""

from __future__ import annotations

import time

import pytest
import torch

from dplm2.lm.probe import memorise


@pytest.fixture(scope="module")
def tokenized4x32():
    from .helpers import tokenized_demo_proteins

    return tokenized_demo_proteins(4, length=32)


@pytest.mark.slow
def test_bit_model_memorises_four_real_chains(tmp_path, tokenized4x32):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.time()
        history = memorise(tokenized4x32, tmp_path, max_steps=500, eval_every=250, target=None,
                           repeats=4, objective="bit")
        wall = time.time() - t0
    finally:
        torch.set_num_threads(threads)
    last = history[-1]
    assert last["step"] == 500, history
    assert last["fold_bit_acc"] >= 0.93 and last["inv_acc"] >= 0.95, history
    assert last["fold_acc"] >= 0.75, history  # tokens: all 13 bits right
    first = history[0]
    assert first["fold_bit_acc"] < last["fold_bit_acc"], history
    print(f"bit model at step {last['step']} in {wall:.0f} s: {history}")

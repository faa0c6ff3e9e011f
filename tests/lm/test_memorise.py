"""Memorisation: a demo-size LM learns 4 real chains to >= 95% one-shot folding and inverse
folding accuracy (every protein in every step, random task per protein).

Data: the first 64 residues of the first chain of 4 demo entries (3zee, 4i6p, 1k6p, 1hml,
resources/mirror); structure tokens random but fixed (uniform over the 8192 codes), so the test
does not depend on a trained tokenizer. Stops as soon as both accuracies reach 95% (about
1,000-1,500 steps; ~2-3 minutes on 2 idle cores).
"""

from __future__ import annotations

import pytest
import torch

from dplm2.lm.probe import memorise


@pytest.mark.slow
def test_memorises_four_real_chains(tmp_path, proteins4):
    torch.set_num_threads(2)
    history = memorise(proteins4, tmp_path, max_steps=3000, eval_every=100, target=0.95)
    last = history[-1]
    assert last["fold_acc"] >= 0.95 and last["inv_acc"] >= 0.95, history

"""A linear probe on DPLM-2 embeddings separates SCOPe globins from other real proteins.

Setting (numbers in the stage's closing note): 26 SCOPe globin domains
(``resources/scop_globins``) against 47 other chains (first protein chain of every non-globin
wwPDB entry and every AFDB model of ``resources/mirror``); structure tokens from a randomly
initialised demo-size tokenizer (13-bit LFQ), a randomly initialised 2-layer, 64-wide DPLM-2,
last layer, mean over residues (proteins cut to 300 residues), logistic-regression probe with
5-fold stratified cross-validation. Even untrained, the structure tokens hash local backbone
geometry, so an all-alpha family is linearly separable; the bar is the majority-class rate.
"""

from __future__ import annotations

import numpy as np
import pytest

from dplm2.embed.config import EmbedConfig
from dplm2.embed.embed import embed_proteins
from dplm2.embed.inputs import chain_codes, read_inputs
from dplm2.embed.probe import probe_accuracy

from .helpers import globin_files, other_files


@pytest.fixture(scope="module")
def labelled(tokenizer):
    def tokenize(chain):
        return chain_codes(chain, tokenizer)

    globins = read_inputs(globin_files(), tokenize)
    others, seen = [], set()
    for r in read_inputs(other_files(), tokenize):
        if r.source not in seen:  # first protein chain of each file (no homo-oligomer copies)
            seen.add(r.source)
            others.append(r)
    assert len(globins) == 26 and len(others) >= 40
    return globins + others, np.array([1] * len(globins) + [0] * len(others))


@pytest.mark.parametrize("mode,margin", [("structure", 0.2), ("both", 0.2), ("sequence", 0.1)])
def test_probe_beats_majority_class(lm, labelled, mode, margin, record_property):
    records, y = labelled
    rows = embed_proteins(lm, records, EmbedConfig.from_dict(dict(mode=mode, layers=(-1,), max_length=300)))
    x = np.stack([r.vector for r in rows])
    res = probe_accuracy(x, y, folds=5, l2=1.0, seed=0)
    shuffled = probe_accuracy(x, np.random.default_rng(1).permutation(y), folds=5, l2=1.0)
    print(f"\n{mode}: probe {res.accuracy:.3f} vs majority {res.majority:.3f} (n={res.n}); "
          f"shuffled-label control {shuffled.accuracy:.3f}")
    record_property(f"probe_{mode}", res.accuracy)
    assert res.accuracy >= res.majority + margin
    assert shuffled.accuracy < res.accuracy - 0.1  # the probe reads the labels, not noise


def test_probe_rejects_bad_input():
    with pytest.raises(ValueError, match="two classes"):
        probe_accuracy(np.zeros((10, 3)), np.zeros(10))
    with pytest.raises(ValueError, match="smallest class"):
        probe_accuracy(np.zeros((10, 3)), np.array([0] * 8 + [1] * 2), folds=5)


def test_probe_separable_and_random():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 30)
    x = rng.normal(size=(60, 5))
    assert probe_accuracy(x + 6 * y[:, None], y).accuracy == 1.0
    assert probe_accuracy(x, y).accuracy < 0.8

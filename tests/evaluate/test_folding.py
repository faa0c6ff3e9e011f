"""Folding backends: a tiny randomly initialised ESMFold built, saved and loaded here."""

from __future__ import annotations

import numpy as np
import pytest

from dplm2.evaluate.folding import Dplm2FoldingBackend, EsmFoldBackend, FoldingBackend, FoldResult

from .helpers import chain


def test_tiny_esmfold_folds_real_sequences(tiny_esmfold):
    backend = EsmFoldBackend(str(tiny_esmfold), device="cpu", batch_size=2)
    assert isinstance(backend, FoldingBackend)
    seqs = [chain("1hml_A").sequence, chain("1ycr_B").sequence, "MKXAG"]
    out = backend.fold(seqs)
    assert [r.sequence for r in out] == seqs  # original order kept despite length sorting
    for r, s in zip(out, seqs, strict=True):
        assert r.coords.shape == (len(s), 4, 3) and r.coords.dtype == np.float32
        known = np.array([c != "X" for c in s])
        assert np.isfinite(r.coords[known]).all() and np.isfinite(r.coords[:, 1]).all()
        assert np.isnan(r.coords[~known][:, [0, 2, 3]]).all()
        assert r.plddt is not None and r.plddt.shape == (len(s),)
        assert ((r.plddt >= 0) & (r.plddt <= 100)).all()
        assert r.backend == f"esmfold:{tiny_esmfold}"
        # even an untrained structure module builds ideal residues: N-CA bond ~1.46 Å
        n_ca = np.linalg.norm(r.coords[known, 0] - r.coords[known, 1], axis=-1)
        assert np.allclose(n_ca, 1.46, atol=0.05)
    # batching with padding does not change a prediction
    alone = backend.fold([seqs[1]])[0]
    assert np.allclose(alone.coords, out[1].coords, atol=1e-3)


def test_esmfold_recycles_and_bad_input(tiny_esmfold):
    backend = EsmFoldBackend(str(tiny_esmfold), device="cpu", num_recycles=0)
    assert backend.fold(["ACDEFGHIK"])[0].coords.shape == (9, 4, 3)
    with pytest.raises(ValueError, match="non-amino-acid"):
        backend.fold(["AC1D"])


def test_esmfold_missing_weights_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="ESMFold weights"):
        EsmFoldBackend(str(tmp_path / "nowhere"), device="cpu")


def test_fold_result_checks_invariants():
    with pytest.raises(ValueError, match="coords shape"):
        FoldResult("AAA", np.zeros((2, 4, 3), np.float32), None, "x")
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        FoldResult("AA", np.zeros((2, 4, 3), np.float32), np.array([50.0, 101.0], np.float32), "x")


def test_dplm2_backend_folds_with_lm_and_tokenizer(tmp_path):
    from .helpers import build_tiny_dplm2

    lm, tok = build_tiny_dplm2(tmp_path)
    backend = Dplm2FoldingBackend(lm, tok, device="cpu", max_iter=4, batch_size=2)
    assert isinstance(backend, FoldingBackend) and backend.name.startswith("dplm2:lm+tokenizer:")
    seqs = [chain("1ycr_B").sequence, "MKTAYIAKQRQ", "GSHM"]
    out = backend.fold(seqs)
    assert [r.sequence for r in out] == seqs
    for r, s in zip(out, seqs, strict=True):
        assert r.coords.shape == (len(s), 4, 3) and np.isfinite(r.coords).all()
        assert r.plddt is not None and ((r.plddt >= 0) & (r.plddt <= 100)).all()
    # argmax + deterministic unmasking: the same sequence folds to the same structure
    again = backend.fold([seqs[1]])[0]
    assert np.allclose(again.coords, out[1].coords, atol=1e-4)


def test_dplm2_backend_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises((FileNotFoundError, OSError, ValueError)):
        Dplm2FoldingBackend(tmp_path / "lm", tmp_path / "tok", device="cpu")

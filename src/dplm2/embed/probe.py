"""A cross-validated linear probe: can a linear classifier read a label off the embeddings?

scikit-learn is not a dependency of this project (and is not installed in its environment),
so the probe is an L2-regularised logistic regression fitted with L-BFGS in torch, on
features standardised with the training fold's mean and standard deviation. Folds are
stratified (every class spread evenly over the folds) and drawn from a seeded generator.
The number to compare with is the majority-class rate (what predicting the most frequent
training label would score).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """Held-out accuracy of the probe and the chance level.

    Attributes
    ----------
    accuracy : float
        Fraction of samples classified correctly when held out (pooled over folds).
    majority : float
        Accuracy of always predicting the overall most frequent label.
    folds : int
    n : int
        Samples.
    """

    accuracy: float
    majority: float
    folds: int
    n: int


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold index per sample: each class shuffled and dealt round-robin over the folds.

    >>> stratified_folds(np.array([0, 0, 1, 1]), 2, seed=0).tolist().count(0)
    2
    """
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        out[idx] = (np.arange(len(idx)) + offset) % folds
        offset += len(idx)
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 100):
    """Multinomial logistic regression on standardised ``x`` (n, d); returns a predictor."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.as_tensor((x - mean) / std, dtype=torch.float64)
    classes = np.unique(y)
    yt = torch.as_tensor(np.searchsorted(classes, y))
    w = torch.zeros(xt.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + l2 * (w**2).sum() / len(xt)
        loss.backward()
        return loss

    opt.step(closure)
    w_, b_ = w.detach().numpy(), b.detach().numpy()

    def predict(z: np.ndarray) -> np.ndarray:
        return classes[np.argmax(((z - mean) / std) @ w_ + b_, axis=1)]

    return predict


def probe_accuracy(x: np.ndarray, y, folds: int = 5, l2: float = 1.0, seed: int = 0) -> ProbeResult:
    """Held-out accuracy of a logistic-regression probe, ``folds``-fold stratified CV.

    Parameters
    ----------
    x : (n, d) array
        One embedding per sample.
    y : (n,) array-like
        Labels (any sortable type).
    l2 : float
        Weight of the L2 penalty (sum of squared weights / n).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"probe: x has shape {x.shape}, y has {len(y)} labels")
    values, counts = np.unique(y, return_counts=True)
    if len(values) < 2:
        raise ValueError("probe: needs at least two classes")
    if counts.min() < folds:
        raise ValueError(f"probe: the smallest class has {counts.min()} samples < {folds} folds")
    fold = stratified_folds(y, folds, seed)
    correct = 0
    for k in range(folds):
        train, test = fold != k, fold == k
        predict = fit_logistic(x[train], y[train], l2)
        correct += int((predict(x[test]) == y[test]).sum())
    return ProbeResult(accuracy=correct / len(y), majority=float(counts.max() / len(y)),
                       folds=folds, n=len(y))

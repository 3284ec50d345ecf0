"""Metrics computed where the predictions are: numpy on the host, cupy on the device.

Each function takes arrays of one array module (``xp``) and returns a Python float, so
a GPU fit pays no copy of its predictions to the host, only the final scalars. They
follow scikit-learn's definitions (the tests compare them on the same predictions).

>>> import numpy as np
>>> accuracy(np.array([0, 1, 1]), np.array([0, 1, 0]))
0.6666666666666666
>>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
0.75
"""

from __future__ import annotations

import numpy as np

from workbench.ml.streaming import host, module_of


def accuracy(truth, predicted) -> float:
    """Share of rows whose predicted label equals the true one."""
    return float((truth.ravel() == predicted.ravel()).mean())


def roc_auc(truth, score) -> float:
    """Area under the ROC curve of a binary target (1 the positive class), ties averaged.

    scikit-learn's construction: the ROC points at each distinct score, descending,
    joined by straight lines (so tied scores count half). On the host it is computed
    as the equal pair count (:func:`pair_auc`: two sorts of one class each instead of
    an argsort of all rows); on the device by the curve itself.
    """
    xp = module_of(score)
    if xp is np:
        truth, score = np.asarray(truth).ravel(), np.asarray(score).ravel()
        positive = truth == 1
        return pair_auc(score[positive], score[~positive])
    score = score.ravel().astype(xp.float64)
    order = xp.argsort(-score)  # ties are grouped below, so any sort order will do
    s, y = score[order], truth.ravel()[order].astype(xp.float64)
    last = xp.concatenate([s[1:] != s[:-1], xp.ones(1, dtype=bool)])  # last row of each tie
    ends = xp.nonzero(last)[0]
    tps = xp.cumsum(y)[ends]
    fps = (ends + 1).astype(xp.float64) - tps
    pos, neg = tps[-1], fps[-1]
    if float(pos) == 0 or float(neg) == 0:
        return float("nan")  # one class only: the curve is undefined
    tpr = xp.concatenate([xp.zeros(1), tps / pos])
    fpr = xp.concatenate([xp.zeros(1), fps / neg])
    return float(((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1])).sum() / 2)


def pair_auc(positive: np.ndarray, negative: np.ndarray, device_rows: int = 0) -> float:
    """AUC from the scores of the positive and of the negative rows (host arrays): the
    share of (positive, negative) pairs ordered right, ties counting half, which is
    the area under scikit-learn's ROC curve. Each class is sorted once and the
    positives (in order) are located among the negatives.

    With ``device_rows`` the pairs are counted on the GPU, holding about six arrays of
    that many scores at a time (see :func:`_device_pair_auc`).
    """
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")  # one class only: the curve is undefined
    if device_rows:
        return _device_pair_auc(positive, negative, int(device_rows))
    a = np.sort(np.asarray(positive, dtype=np.float64))
    b = np.sort(np.asarray(negative, dtype=np.float64))
    below = np.searchsorted(b, a, "left").sum(dtype=np.float64)
    below_or_tied = np.searchsorted(b, a, "right").sum(dtype=np.float64)
    return float((below + below_or_tied) / 2 / len(a) / len(b))


def _device_pair_auc(positive: np.ndarray, negative: np.ndarray, rows: int, xp=None) -> float:
    """:func:`pair_auc` counted on the GPU (``xp``, CuPy by default) in pieces of
    ``rows`` scores: each piece of the smaller class is sorted there and every piece of
    the other class is located in it; the counts add up over pieces, so no piece
    needs the others."""
    if xp is None:
        import cupy as xp
    swap = len(positive) > len(negative)
    small, large = (negative, positive) if swap else (positive, negative)
    right_order = xp.zeros((), dtype=xp.int64)  # pairs with positive > negative
    ties = xp.zeros((), dtype=xp.int64)
    for a in range(0, len(small), rows):
        piece = xp.sort(xp.asarray(small[a:a + rows], dtype=xp.float64))
        for b in range(0, len(large), rows):
            other = xp.asarray(large[b:b + rows], dtype=xp.float64)
            left = xp.searchsorted(piece, other, "left").sum()
            right = xp.searchsorted(piece, other, "right").sum()
            ties += right - left
            # Each score of the other class has `left` of the piece below it, and
            # len(piece) - right above it.
            right_order += left if swap else len(piece) * len(other) - right
            del other
        del piece
    pairs = len(positive) * len(negative)
    return float((int(right_order) + int(ties) / 2) / pairs)


def log_loss(truth, proba) -> float:
    """Mean negative log-likelihood of the true class (labels 0..k-1, ``proba`` (n, k)).

    Probabilities are clipped to [eps, 1 - eps] of their float type, as scikit-learn does.
    """
    n = len(proba)
    return float(_nll_sum(truth, proba)) / n if n else float("nan")


def _nll_sum(truth, proba):
    """The summed negative log-likelihood, as a scalar of ``proba``'s array module."""
    xp = module_of(proba)
    proba = proba.astype(xp.float64) if proba.dtype != xp.float64 else proba
    if proba.ndim == 1:
        proba = xp.stack([1 - proba, proba], axis=1)
    eps = np.finfo(np.float64).eps
    proba = xp.clip(proba, eps, 1 - eps)
    proba = proba / proba.sum(axis=1, keepdims=True)
    picked = xp.take_along_axis(proba, truth.ravel().astype(xp.int64)[:, None], axis=1)
    return -xp.log(picked).sum()


def r2(truth, predicted) -> float:
    """Coefficient of determination: 1 - residual sum of squares / total sum of squares."""
    xp = module_of(predicted)
    t = truth.ravel().astype(xp.float64)
    p = predicted.ravel().astype(xp.float64)
    total = float(((t - t.mean()) ** 2).sum())
    residual = float(((t - p) ** 2).sum())
    if total == 0:
        return 1.0 if residual == 0 else 0.0  # scikit-learn's convention for a constant target
    return 1.0 - residual / total


def rmse(truth, predicted) -> float:
    """Root mean squared error."""
    xp = module_of(predicted)
    d = truth.ravel().astype(xp.float64) - predicted.ravel().astype(xp.float64)
    return float(xp.sqrt((d * d).mean()))


def inertia(X, centers, labels) -> float:
    """Sum of squared distances of the rows to their cluster's centre."""
    xp = module_of(X)
    total = 0.0
    for j in range(X.shape[1]):  # a column at a time: no (n, f) temporary
        d = X[:, j].astype(xp.float64) - centers[labels, j].astype(xp.float64)
        total += float((d * d).sum())
    return total


class Streamed:
    """Metrics accumulated chunk by chunk, for a test set streamed past the device.

    Sums (a few per chunk) stay scalars of the chunks' array module, added up where the
    chunks are and read once by :meth:`result`; AUC keeps the scores of the test rows on
    the host, 8 bytes a row, since it needs them all ranked together: split by class
    where they are computed (on the device for device chunks), so the end is
    :func:`pair_auc`, counted on the GPU in pieces of ``device_rows`` scores when the
    scores came from there.
    """

    def __init__(self, task: str, binary: bool = False, device_rows: int = 0):
        self.task, self.binary, self.device_rows = task, binary, int(device_rows)
        self.on_device = False
        self.n = 0
        self.sums: dict = {}  # name -> a float, or a device scalar
        self.positive: list[np.ndarray] = []
        self.negative: list[np.ndarray] = []

    def _add(self, key: str, value) -> None:
        # Device sums stay device scalars until result(): no wait for the GPU per chunk.
        self.sums[key] = self.sums.get(key, 0.0) + value

    def add_inertia(self, rows: int, value: float) -> None:
        """A chunk of a clustering's rows and their inertia."""
        self.n += int(rows)
        self._add("inertia", value)

    def add(self, truth, predicted, proba=None) -> None:
        """A chunk of a classifier's or regressor's rows: truth, predictions, probabilities."""
        xp = module_of(predicted)
        n = int(predicted.shape[0])
        self.n += n
        if self.task == "regression":
            t, p = truth.ravel().astype(xp.float64), predicted.ravel().astype(xp.float64)
            self._add("sse", ((t - p) ** 2).sum())
            self._add("sy", t.sum())
            self._add("syy", (t * t).sum())
        else:
            self._add("correct", (truth.ravel() == predicted.ravel()).sum())
            if proba is not None:
                self._add("nll", _nll_sum(truth, proba))
                if self.binary:
                    # Told apart by class where the scores are (on the device, a
                    # compaction), so only the two halves come back to the host.
                    score = (proba[:, 1] if proba.ndim == 2 else proba).ravel().astype(xp.float64)
                    hit = truth.ravel() == 1
                    self.on_device = xp is not np
                    self.positive.append(host(score[hit]))
                    self.negative.append(host(score[~hit]))

    def result(self) -> dict:
        s, n = {k: float(v) for k, v in self.sums.items()}, max(self.n, 1)
        if self.task == "clustering":
            return {"inertia": s.get("inertia", 0.0)}
        if self.task == "regression":
            total = s["syy"] - s["sy"] ** 2 / n
            out = {"r2": (1.0 - s["sse"] / total) if total > 0 else float(s["sse"] == 0),
                   "rmse": float(np.sqrt(s["sse"] / n))}
            return out
        out = {"accuracy": s.get("correct", 0.0) / n}
        if self.positive:
            out["auc"] = pair_auc(np.concatenate(self.positive), np.concatenate(self.negative),
                                  self.device_rows if self.on_device else 0)
        if "nll" in s:
            out["log_loss"] = s["nll"] / n
        return out


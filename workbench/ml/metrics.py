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
    ordered = xp.zeros((), dtype=xp.int64)
    ties = xp.zeros((), dtype=xp.int64)
    for a in range(0, len(small), rows):
        piece = xp.sort(xp.asarray(small[a:a + rows]))
        others = (xp.asarray(large[b:b + rows]) for b in range(0, len(large), rows))
        o, t = _ordered_pairs(piece, others, small_is_positive=not swap, xp=xp)
        ordered, ties = ordered + o, ties + t
        del piece
    return float((int(ordered) + int(ties) / 2) / (len(positive) * len(negative)))


def _ordered_pairs(small_sorted, others, small_is_positive: bool, xp):
    """Pairs (one score of ``small_sorted``, one of the pieces ``others``, the other
    class) ordered right (the positive above), and pairs tied: device scalars."""
    ordered = xp.zeros((), dtype=xp.int64)
    ties = xp.zeros((), dtype=xp.int64)
    n = len(small_sorted)
    for other in others:
        left = xp.searchsorted(small_sorted, other, "left").sum()
        right = xp.searchsorted(small_sorted, other, "right").sum()
        ties += right - left
        # Each score of the other class has `left` of the sorted ones below it and
        # n - right above it.
        ordered += n * len(other) - right if small_is_positive else left
    return ordered, ties


def pieces_auc(positive: list, negative: list, xp=np) -> float:
    """:func:`pair_auc` of scores held in pieces (arrays of ``xp``), without joining
    the larger class: the smaller one is joined and sorted once, each piece of the
    other located in it. Memory: the pieces, and the smaller class twice."""
    n_pos, n_neg = sum(len(p) for p in positive), sum(len(p) for p in negative)
    if n_pos == 0 or n_neg == 0:
        return float("nan")  # one class only: the curve is undefined
    small_is_positive = n_pos <= n_neg
    small, large = (positive, negative) if small_is_positive else (negative, positive)
    joined = xp.concatenate(small)
    joined.sort()
    ordered, ties = _ordered_pairs(joined, large, small_is_positive, xp)
    return float((int(ordered) + int(ties) / 2) / (n_pos * n_neg))


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
    chunks are and read once by :meth:`result`. AUC needs every test row's score ranked
    together: each chunk's scores are split by class where they are computed and kept
    there, on the device while they take at most ``device_bytes`` (then
    :func:`pieces_auc` counts the pairs without a copy to the host); beyond that they
    all move to the host and :func:`pair_auc` counts them on the GPU in pieces that
    fit the same room.
    """

    def __init__(self, task: str, binary: bool = False, device_bytes: int = 0):
        self.task, self.binary, self.device_bytes = task, binary, int(device_bytes)
        self.n = 0
        self.sums: dict = {}  # name -> a float, or a device scalar
        self.positive: list = []  # scores of each class, a piece per chunk
        self.negative: list = []
        self.on_device = False  # the scores came from device chunks
        self.kept = 0  # bytes of scores kept on the device

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
            return
        self._add("correct", (truth.ravel() == predicted.ravel()).sum())
        if proba is None:
            return
        self._add("nll", _nll_sum(truth, proba))
        if self.binary:
            self._keep_scores(xp, (proba[:, 1] if proba.ndim == 2 else proba).ravel(),
                              truth.ravel() == 1)

    def _keep_scores(self, xp, score, hit) -> None:
        # The scores' own type: ranks need no wider one.
        positive, negative = score[hit], score[~hit]
        if xp is not np:
            self.on_device = True
            if self.kept + score.nbytes > self.device_bytes:
                self._spill()
            if self.kept >= 0:
                self.kept += score.nbytes
            else:
                positive, negative = host(positive), host(negative)
        self.positive.append(positive)
        self.negative.append(negative)

    def _spill(self) -> None:
        """The device room is used up: every kept score moves to the host."""
        if self.kept >= 0:
            self.positive = [host(p) for p in self.positive]
            self.negative = [host(p) for p in self.negative]
            self.kept = -1  # from now on, straight to the host

    def _auc(self) -> float:
        if self.on_device and self.kept >= 0:
            import cupy as cp

            try:
                return pieces_auc(self.positive, self.negative, cp)
            except MemoryError:  # the sort's room is not there: count in pieces instead
                self._spill()
        positive, negative = np.concatenate(self.positive), np.concatenate(self.negative)
        rows = self.device_bytes // 48 if self.on_device else 0  # six arrays of 8-byte scores
        return pair_auc(positive, negative, max(rows, 1 << 16) if rows else 0)

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
            out["auc"] = self._auc()
        if "nll" in s:
            out["log_loss"] = s["nll"] / n
        return out

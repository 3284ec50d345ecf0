"""Linear and ridge regression over chunks, exactly: normal equations summed chunk by chunk.

One pass accumulates ``ZᵀZ``, ``Zᵀt``, ``ΣZ`` and ``Σt`` in float64 (on the device for
device chunks), where ``Z`` and ``t`` are the features and target shifted by the
first chunk's means, so the centring that the intercept needs does not lose digits
to large offsets. The ``f × f`` system is then solved on the host the way
scikit-learn does: centred data, intercept from the means, the penalty on the
coefficients only, and the minimum-norm solution when the features are collinear.

>>> import numpy as np, polars as pl, workbench as wb
>>> from workbench.ml.chunks import FeatureChunks
>>> x = np.arange(1000.0)
>>> f = wb.Frame.from_polars(pl.DataFrame({"x": x, "y": 2 * x + 1}))
>>> m = StreamedLinear().fit(FeatureChunks(f, ["x"], "y", rows=256, dtype="float64"))
>>> np.round(m.coef_, 6).tolist(), round(float(m.intercept_), 6)
([2.0], 1.0)
"""

from __future__ import annotations

import numpy as np

from workbench.ml.streaming import array_module, as_matrix, host, on


class StreamedLinear:
    """Least squares (``alpha=0``, scikit-learn's ``LinearRegression``) or ridge
    (``alpha>0``, ``Ridge``) fitted from a :class:`~workbench.ml.chunks.FeatureChunks`."""

    def __init__(self, alpha: float = 0.0, fit_intercept: bool = True):
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0; got {alpha}")
        self.alpha, self.fit_intercept = float(alpha), bool(fit_intercept)

    def fit(self, chunks) -> StreamedLinear:
        if chunks.target is None:
            raise ValueError("linear regression needs a target column; FeatureChunks has none")
        xp = array_module(chunks.device)
        n, x0, y0 = 0, None, None
        for X, y, _ in chunks:
            X, y = X.astype(xp.float64), y.astype(xp.float64)
            if x0 is None:
                f = X.shape[1]
                x0 = X.mean(axis=0) if self.fit_intercept else xp.zeros(f)
                y0 = y.mean() if self.fit_intercept else xp.zeros(())
                zz, zt = xp.zeros((f, f)), xp.zeros(f)
                sz, st = xp.zeros(f), xp.zeros(())
            Z, t = X - x0, y - y0
            zz += Z.T @ Z
            zt += Z.T @ t
            sz += Z.sum(axis=0)
            st += t.sum()
            n += len(X)
        if n == 0:
            raise ValueError(f"no rows to fit in the {chunks.part} part of the chunks")
        zz, zt, sz, st, x0, y0 = (host(a) for a in (zz, zt, sz, st, x0, y0))
        if self.fit_intercept:
            mz, mt = sz / n, float(st) / n
            gram, rhs = zz - n * np.outer(mz, mz), zt - n * mz * mt
        else:
            mz, mt, gram, rhs = np.zeros_like(sz), 0.0, zz, zt
        self.coef_ = _solve(gram, rhs, self.alpha)
        self.intercept_ = float(y0 + mt - (x0 + mz) @ self.coef_) if self.fit_intercept else 0.0
        self.n_features_in_, self.n_samples_ = len(self.coef_), n
        return self

    def predict(self, X):
        """Predictions for ``X`` (NumPy or CuPy), in the same kind of array."""
        xp, X = as_matrix(X, self.n_features_in_, type(self).__name__)
        return X @ on(xp, self.coef_) + self.intercept_


def _solve(gram: np.ndarray, rhs: np.ndarray, alpha: float) -> np.ndarray:
    if alpha > 0:
        return np.linalg.solve(gram + alpha * np.eye(len(gram)), rhs)
    # lstsq gives the minimum-norm answer for collinear features, as scikit-learn's does.
    return np.linalg.lstsq(gram, rhs, rcond=None)[0]

"""What the streamed solvers share: the array module, one moments pass, same-kind outputs.

Every solver accumulates in float64, on the device (CuPy) when its chunks are there
and on the host (NumPy) otherwise, and keeps its fitted parameters as small NumPy
arrays on the host; ``predict`` takes NumPy or CuPy and answers in the same kind.
"""

from __future__ import annotations

import numpy as np


def array_module(device: bool):
    """CuPy for device chunks, NumPy for host ones."""
    if device:
        import cupy

        return cupy
    return np


def module_of(a):
    """The array module of ``a`` (CuPy arrays carry ``__cuda_array_interface__``)."""
    if hasattr(a, "__cuda_array_interface__"):
        import cupy

        return cupy
    return np


def as_matrix(X, n_features: int, what: str):
    """``X`` as a 2-D float64 array of its own kind, checked against the fitted width."""
    xp = module_of(X)
    X = xp.asarray(X)
    if X.ndim == 1:
        X = X.reshape(-1, 1) if n_features == 1 else X.reshape(1, -1)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"{what} was fitted on {n_features} features; got an array of shape "
                         f"{tuple(X.shape)}")
    return xp, X.astype(xp.float64, copy=False)


def on(xp, a):
    """Host array ``a`` in module ``xp`` (a device copy for CuPy)."""
    return xp.asarray(a)


def host(a) -> np.ndarray:
    """A NumPy array (one device->host copy for CuPy)."""
    return a.get() if hasattr(a, "get") else np.asarray(a)


def moments(chunks) -> tuple[int, np.ndarray, np.ndarray]:
    """Rows, column means and (population) variances of the chunks' ``X``, in one pass.

    Sums are taken around the first chunk's mean, so large offsets do not cancel
    the variance away in float64.
    """
    xp = array_module(chunks.device)
    n, shift, s1, s2 = 0, None, None, None
    for X, _, _ in chunks:
        X = X.astype(xp.float64)
        if shift is None:
            shift = X.mean(axis=0)
            s1 = xp.zeros_like(shift)
            s2 = xp.zeros_like(shift)
        Z = X - shift
        s1 += Z.sum(axis=0)
        s2 += (Z * Z).sum(axis=0)
        n += len(X)
    if n == 0:
        raise ValueError(f"no rows to fit in the {chunks.part} part of the chunks")
    mean_shifted = s1 / n
    var = xp.maximum(s2 / n - mean_shifted ** 2, 0.0)
    return n, host(shift + mean_shifted), host(var)

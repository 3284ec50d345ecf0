"""k-means over chunks: exact Lloyd iterations, one streamed pass each.

Each pass assigns every row of every chunk to its nearest centre and sums the rows
and counts per centre (on the device for device chunks, in float64); the new centres
are the means. The start is k-means++ (scikit-learn's ``kmeans_plusplus``) over a
deterministic sample of the rows, or the centres given. Stopping follows
scikit-learn: the squared shift of the centres below ``tol`` times the mean feature
variance; ``inertia_`` is that of the final centres (one last pass). An empty
cluster keeps its centre (scikit-learn moves it to a far point instead).

Why not cuml's host streaming (``device_buffer_samples``, from cuVS' k-means):
it takes one host matrix of all rows, a second host copy of the frame's feature
columns, and picks its own start; these passes read the frame's pinned columns
directly, run the same on the CPU, and start from the same centres as
scikit-learn, so results can be compared one to one.

>>> import numpy as np, polars as pl, workbench as wb
>>> from workbench.ml.chunks import FeatureChunks
>>> x = np.r_[np.zeros(500), np.full(500, 10.0)] + np.tile([0.0, 1.0], 500)
>>> f = wb.Frame.from_polars(pl.DataFrame({"x": x}))
>>> m = StreamedKMeans(n_clusters=2, init=np.array([[1.0], [9.0]])).fit(FeatureChunks(f, ["x"], rows=300))
>>> np.round(np.sort(m.cluster_centers_[:, 0]), 3).tolist(), round(m.inertia_, 3)
([0.5, 10.5], 250.0)
"""

from __future__ import annotations

import numpy as np

from workbench.ml.split import held_out
from workbench.ml.streaming import array_module, as_matrix, host, moments, on

_SAMPLE_ROWS = 100_000
# Up to this many clusters the device sums rows per centre by a one-hot product.
_ONE_HOT_CLUSTERS = 64


class StreamedKMeans:
    """Lloyd's k-means fitted from a :class:`~workbench.ml.chunks.FeatureChunks`."""

    def __init__(self, n_clusters: int = 8, init="k-means++", max_iter: int = 300,
                 tol: float = 1e-4, random_state: int | None = 0, n_init: int = 1):
        if n_clusters < 1:
            raise ValueError(f"n_clusters must be >= 1; got {n_clusters}")
        if not (isinstance(init, str) and init == "k-means++") and np.ndim(init) != 2:
            raise ValueError("init must be 'k-means++' or an array of shape (n_clusters, n_features)")
        if n_init < 1 or max_iter < 1:
            raise ValueError(f"n_init and max_iter must be >= 1; got {n_init}, {max_iter}")
        self.n_clusters, self.init, self.max_iter = int(n_clusters), init, int(max_iter)
        self.tol, self.random_state, self.n_init = float(tol), random_state, int(n_init)

    def fit(self, chunks) -> StreamedKMeans:
        xp = array_module(chunks.device)
        n, _, var = moments(chunks)
        if n < self.n_clusters:
            raise ValueError(f"n_clusters={self.n_clusters} is more than the {n} rows to cluster")
        tol = float(var.mean()) * self.tol
        seed = 0 if self.random_state is None else int(self.random_state)
        if isinstance(self.init, str):
            from sklearn.cluster import kmeans_plusplus

            sample = self._sample(chunks, xp, n, seed)
            starts = [kmeans_plusplus(sample, self.n_clusters, random_state=seed + i)[0]
                      for i in range(self.n_init)]
        else:
            init = np.asarray(self.init, dtype=np.float64)
            if init.shape != (self.n_clusters, chunks.n_features):
                raise ValueError(f"init has shape {init.shape}; expected ({self.n_clusters}, "
                                 f"{chunks.n_features}) (n_clusters, n_features)")
            starts = [init]
        best = None
        for start in starts:
            centers, n_iter = self._lloyd(chunks, xp, start, tol)
            inertia = _pass(chunks, xp, centers)[2]
            if best is None or inertia < best[1]:
                best = (centers, inertia, n_iter)
        self.cluster_centers_, self.inertia_, self.n_iter_ = best
        self.n_features_in_ = chunks.n_features
        return self

    def _lloyd(self, chunks, xp, centers, tol):
        for it in range(1, self.max_iter + 1):
            sums, counts, _ = _pass(chunks, xp, centers)
            filled = counts > 0
            new = centers.copy()
            new[filled] = sums[filled] / counts[filled, None]
            shift = float(((new - centers) ** 2).sum())
            centers = new
            if shift <= tol:
                break
        return centers, it

    def _sample(self, chunks, xp, n, seed) -> np.ndarray:
        """About ``_SAMPLE_ROWS`` rows, chosen by a hash of their position (deterministic)."""
        share = min(1.0, _SAMPLE_ROWS / n)
        parts = []
        for X, _, start in chunks:
            if share < 1:
                X = X[held_out(start, start + len(X), share, seed + 1, xp)]
            parts.append(host(X).astype(np.float64))
        sample = np.concatenate(parts)
        if len(sample) < self.n_clusters:
            raise ValueError(f"the k-means++ sample has {len(sample)} rows, fewer than "
                             f"n_clusters={self.n_clusters}")
        return sample

    def predict(self, X):
        """The index of the nearest centre of each row, in the kind of array ``X`` is."""
        xp, X = as_matrix(X, self.n_features_in_, "StreamedKMeans")
        return _nearest(xp, X, on(xp, self.cluster_centers_))

    def score(self, X) -> float:
        """Minus the inertia of ``X`` (scikit-learn's convention)."""
        xp, X = as_matrix(X, self.n_features_in_, "StreamedKMeans")
        C = on(xp, self.cluster_centers_)
        diff = X - C[_nearest(xp, X, C)]
        return -float((diff * diff).sum())


def _nearest(xp, X, C):
    d = -2.0 * (X @ C.T) + (C * C).sum(axis=1)  # |x|² is the same for every centre
    return d.argmin(axis=1)


def _pass(chunks, xp, centers: np.ndarray):
    """Per-centre sums and counts and the inertia of ``centers``, one pass."""
    C = on(xp, centers)
    k, f = C.shape
    sums, counts, inertia = xp.zeros((k, f)), xp.zeros(k), xp.zeros(())
    for X, _, _ in chunks:
        X = X.astype(xp.float64)
        labels = _nearest(xp, X, C)
        diff = X - C[labels]  # exact distances for the inertia, as scikit-learn computes it
        inertia += (diff * diff).sum()
        if xp is np or k > _ONE_HOT_CLUSTERS:
            counts += xp.bincount(labels, minlength=k)
            for j in range(f):
                sums[:, j] += xp.bincount(labels, weights=X[:, j], minlength=k)
        else:
            # On the GPU a weighted bincount is k hot atomics per column; a one-hot
            # product is one small matrix multiply.
            hot = (labels[:, None] == xp.arange(k)).astype(xp.float64)
            counts += hot.sum(axis=0)
            sums += hot.T @ X
    return host(sums), host(counts), float(host(inertia))

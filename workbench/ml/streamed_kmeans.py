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
from workbench.ml.streaming import (BLOCK_SUMS, array_module, as_matrix, chunk_sums, chunks_of, host,
                                   kernel_input, moments, on)

_SAMPLE_ROWS = 100_000


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

    def fit(self, chunks, y=None) -> StreamedKMeans:
        """Fit on a :class:`~workbench.ml.chunks.FeatureChunks` or a matrix (NumPy or
        CuPy, read in slices); ``y`` is ignored, as scikit-learn's is."""
        chunks = chunks_of(chunks)
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
        """Minus the inertia of ``X`` (scikit-learn's convention); one Lloyd pass's sums."""
        xp, X = as_matrix(X, self.n_features_in_, "StreamedKMeans", cast=False)
        return -_pass([(X, None, 0)], xp, self.cluster_centers_)[2]


def _nearest(xp, X, C):
    d = -2.0 * (X @ C.T) + (C * C).sum(axis=1)  # |x|² is the same for every centre
    return d.argmin(axis=1)


def _pass(chunks, xp, centers: np.ndarray):
    """Per-centre sums and counts and the inertia of ``centers``, one pass."""
    C = on(xp, centers)
    k, f = C.shape
    sums, counts, inertia = xp.zeros((k, f)), xp.zeros(k), xp.zeros(())
    fused = xp is not np and k * f <= _FUSED_CELLS
    for X, _, _ in chunks:
        if fused:
            part = _lloyd_chunk(X, C)
            sums += part[: k * f].reshape(k, f)
            counts += part[k * f: k * f + k]
            inertia += part[-1]
            continue
        X = X.astype(xp.float64)
        labels = _nearest(xp, X, C)
        diff = X - C[labels]  # exact distances for the inertia, as scikit-learn computes it
        inertia += (diff * diff).sum()
        counts += xp.bincount(labels, minlength=k)
        for j in range(f):
            sums[:, j] += xp.bincount(labels, weights=X[:, j], minlength=k)
    return host(sums), host(counts), float(host(inertia))


# One GPU kernel per chunk does a whole Lloyd step on it: each thread takes rows, finds
# the nearest centre by the exact squared distance (in float64) and adds the row to the
# per-centre sums. With few centres and features (WIDTH sums up to _REGISTER_CELLS) the
# sums are the thread's own, in registers, added per block by streaming.block_sums;
# with more, they are the block's, in shared memory, added atomically. Unfused, a step
# is a dozen array operations per chunk (distances, argmin, gathers, sums), each a pass
# over the chunk in device memory, which is what bounds it.
_FUSED_CELLS = 1024  # k * f: the centres and the block's sums fit in shared memory
_REGISTER_CELLS = 96  # k * f + k + 1 sums a thread may keep in registers
_LLOYD_SOURCE = r"""
#if REGISTERS
#define UNROLL _Pragma("unroll")
#else
#define UNROLL _Pragma("unroll 4")
#endif
extern "C" __global__ void lloyd_step(const TYPE* X, long long xr, long long xc, long long n,
                                      const double* C, double* partial) {
    __shared__ double centres[K * F];
#if REGISTERS
    double acc[WIDTH];
    #pragma unroll
    for (int i = 0; i < WIDTH; ++i) acc[i] = 0.0;
#else
    __shared__ double sums[WIDTH];
    for (int i = threadIdx.x; i < WIDTH; i += blockDim.x) sums[i] = 0.0;
    double inertia = 0.0;
#endif
    for (int i = threadIdx.x; i < K * F; i += blockDim.x) centres[i] = C[i];
    __syncthreads();
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x; r < n; r += stride) {
#if REGISTERS
        double x[F];
        #pragma unroll
        for (int j = 0; j < F; ++j) x[j] = (double)X[r * xr + j * xc];
#define XV(j) x[j]
#else
#define XV(j) ((double)X[r * xr + (j) * xc])  /* many features: no per-thread copy */
#endif
        int best = 0;
        double nearest = 0.0;
        for (int c = 0; c < K; ++c) {
            double d = 0.0;
            UNROLL
            for (int j = 0; j < F; ++j) {
                const double t = XV(j) - centres[c * F + j];
                d += t * t;
            }
            if (c == 0 || d < nearest) { nearest = d; best = c; }
        }
#if REGISTERS
        #pragma unroll
        for (int c = 0; c < K; ++c) {
            const bool hit = c == best;
            #pragma unroll
            for (int j = 0; j < F; ++j) acc[c * F + j] += hit ? XV(j) : 0.0;
            acc[K * F + c] += hit ? 1.0 : 0.0;
        }
        acc[WIDTH - 1] += nearest;
#else
        for (int j = 0; j < F; ++j) atomicAdd(&sums[best * F + j], XV(j));
        atomicAdd(&sums[K * F + best], 1.0);
        inertia += nearest;
#endif
    }
#if REGISTERS
    block_sums(acc, partial);
#else
    atomicAdd(&sums[WIDTH - 1], inertia);
    __syncthreads();
    for (int i = threadIdx.x; i < WIDTH; i += blockDim.x) partial[(long long)blockIdx.x * WIDTH + i] = sums[i];
#endif
}
"""


def _lloyd_chunk(X, C):
    """One chunk's per-centre sums, counts and inertia (flat, float64) on the device."""
    import cupy as cp

    X, xr, xc, xtype = kernel_input(X, floating=True)
    k, f = C.shape
    width = k * f + k + 1
    registers = width <= _REGISTER_CELLS
    source = (BLOCK_SUMS if registers else "") + _LLOYD_SOURCE
    defines = {"K": k, "F": f, "TYPE": xtype, "REGISTERS": int(registers)}
    return chunk_sums(source, "lloyd_step", defines, len(X), width,
                      (X, cp.int64(xr), cp.int64(xc), cp.int64(len(X)), cp.ascontiguousarray(C)))

"""What the streamed solvers share: the array module, one moments pass, same-kind outputs.

Every solver accumulates in float64, on the device (CuPy) when its chunks are there
and on the host (NumPy) otherwise, and keeps its fitted parameters as small NumPy
arrays on the host; ``predict`` takes NumPy or CuPy and answers in the same kind.
"""

from __future__ import annotations

import functools

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


def as_matrix(X, n_features: int, what: str, cast: bool = True):
    """``X`` as a 2-D float64 array (its own dtype with ``cast=False``) of its own kind,
    checked against the fitted width."""
    xp = module_of(X)
    X = xp.asarray(X)
    if X.ndim == 1:
        X = X.reshape(-1, 1) if n_features == 1 else X.reshape(1, -1)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"{what} was fitted on {n_features} features; got an array of shape "
                         f"{tuple(X.shape)}")
    return xp, X.astype(xp.float64, copy=False) if cast else X


class ArrayChunks:
    """A matrix already in memory (NumPy or CuPy), read as a streamed solver reads
    :class:`~workbench.ml.chunks.FeatureChunks`: slices of ``rows`` rows, so a pass's
    float64 temporaries stay a slice's size."""

    part = "all"

    def __init__(self, X, y=None, rows: int = 1 << 22):
        xp = module_of(X)
        X = xp.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D feature matrix; got shape {tuple(X.shape)}")
        self.X, self.target = X, None if y is None else xp.asarray(y).ravel()
        self.device, self.n_features, self.rows = xp is not np, X.shape[1], int(rows)

    def __iter__(self):
        for a in range(0, len(self.X), self.rows):
            yield self.X[a:a + self.rows], None if self.target is None else self.target[a:a + self.rows], a


def chunks_of(data):
    """``data`` as chunks: FeatureChunks (or anything iterable as they are) as it is, a
    matrix as :class:`ArrayChunks`."""
    return ArrayChunks(data) if hasattr(data, "ndim") or hasattr(data, "__array__") else data


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


# --- one GPU kernel per chunk ----------------------------------------------------------
# The streamed solvers' passes on the GPU are single kernels (streamed_kmeans,
# streamed_logistic): each thread sums its rows' terms in registers, the warps add
# theirs by shuffles, and each block writes one row of partial sums; the rows are
# added once per chunk. Shapes are compile-time constants, so loops unroll and the
# sums stay in registers; one compiled kernel per (source, shape, dtypes).

THREADS = 256  # per block; the kernels size their shared arrays for it
_C_TYPES = {"float32": "float", "float64": "double", "int8": "signed char", "uint8": "unsigned char",
            "int16": "short", "int32": "int", "int64": "long long", "bool": "bool"}
_COMPILED: dict = {}


def kernel_input(a, floating: bool):
    """``a`` as a kernel reads it, with its row and column strides in elements and its
    C type (no copy for any layout); other dtypes are cast to float64 once."""
    xp = module_of(a)
    if a.dtype.name not in (("float32", "float64") if floating else _C_TYPES):
        a = a.astype(xp.float64)
    if any(s % a.itemsize for s in a.strides):
        a = xp.ascontiguousarray(a)
    strides = [s // a.itemsize for s in a.strides] + [0]
    return a, strides[0], strides[1], _C_TYPES[a.dtype.name]


def chunk_sums(source: str, name: str, defines: dict, rows: int, width: int, args: tuple):
    """Launch kernel ``name`` of ``source`` over ``rows`` rows; the ``width`` float64 sums
    it writes per block (the last argument), added up on the device. ``defines`` and
    ``THREADS``/``WIDTH`` are compile-time constants of the source."""
    import cupy as cp

    defines = {**defines, "THREADS": THREADS, "WIDTH": width}
    key = (name, tuple(sorted(defines.items())))
    kernel = _COMPILED.get(key)
    if kernel is None:
        head = "".join(f"#define {k} {v}\n" for k, v in defines.items())
        kernel = _COMPILED[key] = cp.RawKernel(head + source, name)
    blocks = max(1, min(-(-rows // THREADS), 4 * _multiprocessors(cp.cuda.Device().id)))
    partial = cp.empty((blocks, width), dtype=cp.float64)
    kernel((blocks,), (THREADS,), (*args, partial))
    return partial.sum(axis=0)


@functools.lru_cache(maxsize=None)
def _multiprocessors(device: int) -> int:
    import cupy as cp

    return cp.cuda.runtime.getDeviceProperties(device)["multiProcessorCount"]


# Shared by the kernels: add each thread's WIDTH sums over the block (warp shuffles,
# then the warps' totals in shared memory, in a fixed order) into partial[block].
BLOCK_SUMS = r"""
#define WARPS (THREADS / 32)
__device__ __forceinline__ void block_sums(const double* acc, double* partial) {
    __shared__ double warp_sums[WARPS][WIDTH];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    #pragma unroll
    for (int i = 0; i < WIDTH; ++i) {
        double v = acc[i];
        for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
        if (lane == 0) warp_sums[warp][i] = v;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < WIDTH; i += blockDim.x) {
        double total = 0.0;
        for (int w = 0; w < WARPS; ++w) total += warp_sums[w][i];
        partial[(long long)blockIdx.x * WIDTH + i] = total;
    }
}
"""

"""The train/test split, decided row by row from the row's position and a seed.

A row is in the test set when a hash of its index falls below ``test_size``. The
same rule serves a whole frame and one chunk of it (pass the chunk's first row), on
the host (numpy) and on the device (cupy), so an in-memory fit, a fit streamed chunk
by chunk and a fit on a Dask worker hold out exactly the same rows, and CPU and GPU
results can be compared directly. No permutation of all rows is built.

>>> import numpy as np
>>> mask = held_out(0, 100_000, 0.2, seed=0)
>>> round(float(mask.mean()), 2)
0.2
>>> bool((held_out(40_000, 60_000, 0.2, seed=0) == mask[40_000:60_000]).all())
True
"""

from __future__ import annotations

import numpy as np

_SCALE = 1 << 24


def held_out(start: int, stop: int, test_size: float, seed: int = 0, xp=np):
    """Boolean array for rows ``start..stop-1``: True where the row is held out.

    ``xp`` is the array module (numpy or cupy); the answer is the same for both.
    """
    if not 0 <= test_size < 1:
        raise ValueError(f"test_size must be in [0, 1); got {test_size}")
    threshold = int(round(test_size * _SCALE))
    if xp is not np:  # one kernel per chunk instead of a dozen array operations
        out = xp.empty(max(stop - start, 0), dtype=bool)
        if len(out):
            _device_kernel()(np.uint64(start), np.uint64(_offset(seed)), np.uint64(threshold), out)
        return out
    index = xp.arange(start, stop, dtype=xp.uint64)
    return _mix(index, seed, xp) % _SCALE < threshold


def _offset(seed: int) -> int:
    return (0x9E3779B97F4A7C15 * (seed + 1)) % (1 << 64)


def _mix(index, seed: int, xp):
    # splitmix64's finaliser: consecutive indices map to well-spread 64-bit values.
    z = index + xp.uint64(_offset(seed))
    z = (z ^ (z >> xp.uint64(30))) * xp.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> xp.uint64(27))) * xp.uint64(0x94D049BB133111EB)
    return z ^ (z >> xp.uint64(31))


_KERNEL = None


def _device_kernel():
    """:func:`_mix` and the comparison as one CuPy kernel (the same unsigned 64-bit
    arithmetic, so the same rows)."""
    global _KERNEL
    if _KERNEL is None:
        import cupy as cp

        _KERNEL = cp.ElementwiseKernel(
            "uint64 start, uint64 offset, uint64 threshold", "bool out",
            """
            unsigned long long z = start + (unsigned long long)i + offset;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
            z = z ^ (z >> 31);
            out = (z % 16777216ULL) < threshold;
            """, "workbench_held_out")
    return _KERNEL

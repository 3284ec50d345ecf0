"""Counter-based randomness: every block of rows has its own stream.

A dataset's rows are cut into fixed blocks of ``BLOCK`` rows. Block ``b`` of table ``t``
draws from ``SeedSequence(seed, spawn_key=(stream, t, b))``, so a row's values depend on
the seed, the parameters and the row count, never on how the rows are grouped into
chunks, files or threads. Sorted and keyed tables use the same keying for the nodes of
their generation trees, and pure functions of the row index (``Permutation``) where a
value must be known without generating its neighbours.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

BLOCK = 1 << 16  # rows per random stream; part of the data's definition, never change it

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def stream_id(name: str) -> int:
    """A stable small integer for a name (Python's hash() is salted per process)."""
    return zlib.crc32(name.encode())


def rng(seed: int, *key: int) -> np.random.Generator:
    """The generator of one block or tree node, keyed by non-negative integers."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key)))


def blocks(start: int, stop: int, rows: int) -> Iterator[tuple[int, int, int]]:
    """``(block, first_row, end_row)`` of the blocks overlapping ``[start, stop)``."""
    if start >= stop:
        return
    for b in range(start // BLOCK, (stop - 1) // BLOCK + 1):
        lo = b * BLOCK
        if lo >= rows:
            break
        yield b, lo, min(lo + BLOCK, rows)


def null_counts(seed: int, key: tuple[int, ...], rows: int, nulls: int) -> np.ndarray:
    """Nulls per block so that exactly ``nulls`` of ``rows`` rows are null, uniformly at random.

    A multivariate hypergeometric split of the total over the blocks: drawn once per
    table (one integer per block), it lets each block place its share independently.
    """
    sizes = np.full(-(-rows // BLOCK), BLOCK, dtype=np.int64)
    sizes[-1] = rows - BLOCK * (len(sizes) - 1)
    if nulls == 0:
        return np.zeros(len(sizes), dtype=np.int64)
    return rng(seed, *key).multivariate_hypergeometric(sizes, nulls, method="marginals")


def null_mask(gen: np.random.Generator, n: int, nulls: int) -> np.ndarray | None:
    """A validity mask (True = valid) with exactly ``nulls`` False entries, or None."""
    if nulls == 0:
        return None
    valid = np.ones(n, dtype=bool)
    valid[gen.choice(n, size=nulls, replace=False, shuffle=False)] = False
    return valid


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, well-mixed bijection on uint64."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class Permutation:
    """A keyed pseudo-random bijection of ``[0, n)``, evaluated on any index array.

    A 4-round Feistel network over the smallest even power of two >= n, with cycle walking
    back into range. It shuffles a billion keys without holding them, so a chunk of a
    keyed table (db-benchmark join keys) is computed from its row indices alone.
    """

    ROUNDS = 4

    def __init__(self, n: int, seed: int, *key: int):
        if n < 1:
            raise ValueError(f"a permutation needs n >= 1 (got {n})")
        self.n = int(n)
        self.half = max(1, (max(self.n - 1, 1).bit_length() + 1) // 2)
        self.mask = np.uint64((1 << self.half) - 1)
        self.keys = rng(seed, *key).integers(0, 2**63, size=self.ROUNDS, dtype=np.uint64)

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        h = np.uint64(self.half)
        left, right = x >> h, x & self.mask
        for k in self.keys:
            left, right = right, left ^ (_mix(right ^ k) & self.mask)
        return (left << h) | right

    def _decrypt(self, x: np.ndarray) -> np.ndarray:
        h = np.uint64(self.half)
        left, right = x >> h, x & self.mask
        for k in self.keys[::-1]:
            left, right = right ^ (_mix(left ^ k) & self.mask), left
        return (left << h) | right

    def _walk(self, index: np.ndarray, step) -> np.ndarray:
        x = step(np.asarray(index, dtype=np.uint64))
        out = x >= np.uint64(self.n)
        while out.any():  # the domain is < 4n, so each pass leaves a quarter behind at most
            pos = np.flatnonzero(out)
            x[pos] = step(x[pos])
            out[pos] = x[pos] >= np.uint64(self.n)
        return x.astype(np.int64)

    def __call__(self, index: np.ndarray) -> np.ndarray:
        return self._walk(index, self._encrypt)

    def inverse(self, value: np.ndarray) -> np.ndarray:
        """The index that maps to each value."""
        return self._walk(value, self._decrypt)

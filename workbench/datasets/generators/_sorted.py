"""Rows generated already sorted by their key columns, in bounded memory.

Sorting a billion rows needs the whole table; instead the sorted order is built top-down.
Each key column has a null class (sorted first, as data.table and polars sort nulls) and
``card`` equally likely values. A node of the tree holds ``n`` rows whose leading keys are
fixed and whose current key lies in a range; it splits the range in two and draws how many
rows fall left from a binomial, which is exactly how a uniform sample, once sorted,
distributes over the range. A node of at most ``LEAF`` rows draws its rows freely and sorts
just them. Every node draws from its own keyed stream, so any row range is produced by
walking the path to it, whatever the chunking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from workbench.datasets.generators._rng import rng

LEAF = 1 << 16


class SortedKeys:
    """Sorted key columns of ``rows`` rows.

    ``cards[i]`` values per column and ``null_p[i]`` the probability of a null; keys are
    0 for null (when ``null_p > 0``) then 1..card, so key order is sort order.
    """

    def __init__(self, seed: int, key: tuple[int, ...], rows: int, cards, null_p):
        self.seed, self.key, self.rows = seed, key, rows
        self.cards = [int(c) for c in cards]
        self.null_p = [float(p) for p in null_p]
        self.depth = len(self.cards)
        # The null class weighs card * p / (1 - p) value-slots, so P(null) = p exactly.
        self.has_null = [p > 0 for p in self.null_p]
        self.size = [1 if p >= 1 else c + 1 if p > 0 else c for c, p in zip(self.cards, self.null_p)]
        self.w0 = [c * p / (1 - p) if 0 < p < 1 else 1.0 for c, p in zip(self.cards, self.null_p)]

    def _weight(self, c: int, lo: int, hi: int) -> float:
        if self.has_null[c] and lo == 0:
            return self.w0[c] + (hi - 1)
        return float(hi - lo)

    def _draw(self, gen: np.random.Generator, c: int, lo: int, hi: int, n: int) -> np.ndarray:
        a = max(lo, 1) if self.has_null[c] else lo
        keys = gen.integers(a, hi, size=n, dtype=np.int64) if a < hi else np.zeros(n, dtype=np.int64)
        if self.has_null[c] and lo == 0 and a < hi:
            keys[gen.random(n) < self.w0[c] / self._weight(c, lo, hi)] = 0
        return keys

    def decode(self, c: int, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Keys of column ``c`` as (0-based value index, validity)."""
        if not self.has_null[c]:
            return keys, None
        return np.maximum(keys - 1, 0), keys != 0

    def pieces(self, start: int, stop: int, extra: Callable[[np.random.Generator, int], dict]) -> Iterator:
        """``(first_row, {"keys": [arrays...], **extra})`` for the leaves overlapping the range.

        ``extra(gen, n)`` draws the leaf's unsorted columns from the leaf's own stream.
        """
        yield from self._visit(0, (), 0, self.size[0], self.rows, 0, start, stop, extra)

    def _visit(self, c, prefix, lo, hi, n, offset, start, stop, extra):
        if n == 0 or offset >= stop or offset + n <= start:
            return
        if c == self.depth:  # every key fixed: plain rows, cut into leaves by position
            for p, a in enumerate(range(0, n, LEAF)):
                m = min(LEAF, n - a)
                if offset + a < stop and offset + a + m > start:
                    yield offset + a, self._leaf(c, prefix, 0, 0, m, p, extra)
            return
        if n <= LEAF:
            yield offset, self._leaf(c, prefix, lo, hi, n, 0, extra)
        elif hi - lo == 1:
            nxt = self.size[c + 1] if c + 1 < self.depth else 0
            yield from self._visit(c + 1, prefix + (lo,), 0, nxt, n, offset, start, stop, extra)
        else:
            mid = (lo + hi) // 2
            gen = rng(self.seed, *self.key, 0, c, lo, hi, *prefix)
            left = int(gen.binomial(n, self._weight(c, lo, mid) / self._weight(c, lo, hi)))
            yield from self._visit(c, prefix, lo, mid, left, offset, start, stop, extra)
            yield from self._visit(c, prefix, mid, hi, n - left, offset + left, start, stop, extra)

    def _leaf(self, c, prefix, lo, hi, n, part, extra):
        gen = rng(self.seed, *self.key, 1, c, lo, hi, part, *prefix)
        keys = [np.full(n, k, dtype=np.int64) for k in prefix]
        if c < self.depth:
            keys.append(self._draw(gen, c, lo, hi, n))
            keys += [self._draw(gen, j, 0, self.size[j], n) for j in range(c + 1, self.depth)]
            order = np.lexsort(keys[::-1][: self.depth - c])
            keys = [k if i < c else k[order] for i, k in enumerate(keys)]
        return {"keys": keys, **extra(gen, n)}

"""db-benchmark's join tables J1_N_NA_0_0 (h2oai/db-benchmark ``join-datagen.R``).

Per key level L (id1: N/1e6, id2: N/1e3, id3: N distinct keys) a pool of n + n/10 integers
is shuffled and split into common (n - n/10), left-only and right-only (n/10 each) keys.
x (N rows) draws id1..id3 from common + left so that every one of those keys appears;
small (N/1e6 rows: id1), medium (N/1e3: id1, id2) and big (N: id1..id3) draw from
common + right and are unique on their join key (id1, id2, id3). id4..id6 repeat id1..id3
as "id<value>". x's v1 and the others' v2 are uniform(0, 100) rounded to 6 decimals.

The pool shuffles and the "every key at least once" draws are keyed permutations of the
row index (``Permutation``), so each chunk is computed alone. With ``na`` percent, as in
db-benchmark, x only gets nulls: na% of the distinct values of each of id1..id3 (every
row holding such a value; its id4..id6 string is null too, where db-benchmark writes
"idNA") and na% of the rows of v1.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from workbench.datasets.generators._rng import Permutation, blocks, null_counts, null_mask, rng, stream_id
from workbench.datasets.generators._strings import decimal_ids
from workbench.datasets.generators._table import TablePlan, arrow, punch

TABLES = ("x", "small", "medium", "big")
BYTES_PER_ROW = 240  # peak per row in flight: key permutations and string building (measured)
DICTIONARY_LIMIT = 1 << 16
TABLE_LIMIT = 1 << 22  # key pools up to this size are shuffled once into a lookup table


def key_counts(rows: int) -> dict[int, int]:
    """Distinct keys of each level for N rows: N/1e6, N/1e3, N (at least one)."""
    return {1: max(1, rows // 10**6), 2: max(1, rows // 10**3), 3: rows}


class _Keys:
    """One key level: the shuffled pool and its common / left-only / right-only parts."""

    def __init__(self, seed: int, stream: int, level: int, n: int):
        self.n, self.extra = n, n // 10
        self.common = n - self.extra
        self.pool = Permutation(n + self.extra, seed, stream, 10, level)
        size = n + self.extra
        self.table = self.pool(np.arange(size)) + 1 if size <= TABLE_LIMIT else None

    def _key(self, pos: np.ndarray) -> np.ndarray:
        return self.table[pos] if self.table is not None else self.pool(pos) + 1

    def left(self, idx: np.ndarray) -> np.ndarray:
        """Keys of index 0..n-1 over common + left-only."""
        return self._key(idx)

    def right(self, idx: np.ndarray) -> np.ndarray:
        """Keys of index 0..n-1 over common + right-only."""
        return self._key(np.where(idx < self.common, idx, idx + self.extra))


class _Spread:
    """Key index of each row so that all n keys appear among S rows (db-benchmark's sample_all).

    Row r takes key Q(r) when Q(r) < n (Q a permutation of the rows), else the random one
    drawn for it. With few keys, the rows holding the guaranteed keys are found once by
    inverting Q rather than permuting every row.
    """

    def __init__(self, rows: int, n: int, seed: int, *key: int):
        self.n = n
        self.perm = Permutation(rows, seed, *key)
        self.fixed = None
        if n * 16 <= rows:
            pos = self.perm.inverse(np.arange(n))
            order = np.argsort(pos)
            self.fixed = (pos[order], order)

    def __call__(self, start: int, stop: int, random_idx: np.ndarray) -> np.ndarray:
        if self.fixed is None:
            s = self.perm(np.arange(start, stop, dtype=np.int64))
            return np.where(s < self.n, s, random_idx)
        pos, idx = self.fixed
        a, b = np.searchsorted(pos, [start, stop])
        random_idx[pos[a:b] - start] = idx[a:b]
        return random_idx


class JoinTable(TablePlan):
    """One of x, small, medium, big."""

    def __init__(self, name: str, rows: int, seed: int, na: float = 0):
        self.name, self.N, self.seed = name, rows, seed
        self.stream = stream_id("h2o_join")
        self.tid = TABLES.index(name)
        counts = key_counts(rows)
        self.levels = {"x": (1, 2, 3), "small": (1,), "medium": (1, 2), "big": (1, 2, 3)}[name]
        self.rows = {"x": rows, "small": counts[1], "medium": counts[2], "big": rows}[name]
        self.keys = {lvl: _Keys(seed, self.stream, lvl, counts[lvl]) for lvl in self.levels}
        # "every key at least once": row r takes key Q(r) when that is < n, else a random key
        self.spread = {
            lvl: _Spread(self.rows, counts[lvl], seed, self.stream, 11, self.tid, lvl) for lvl in self.levels
        }
        self.value = "v1" if name == "x" else "v2"
        self.na = na if name == "x" else 0
        self.null_keys = {lvl: int(counts[lvl] * self.na / 100) for lvl in self.levels}
        self.null_perm = {lvl: Permutation(counts[lvl], seed, self.stream, 12, lvl) for lvl in self.levels}
        self.value_nulls = null_counts(seed, (self.stream, 13, self.tid), self.rows, int(self.rows * self.na / 100))
        ids = [f"id{lvl}" for lvl in self.levels]
        names = [f"id{lvl + 3}" for lvl in self.levels]
        self.schema = pa.schema(
            [(c, pa.int32()) for c in ids] + [(c, pa.string()) for c in names] + [(self.value, pa.float64())]
        )
        small = [lvl for lvl in self.levels if counts[lvl] <= DICTIONARY_LIMIT]
        self.bytes_per_row = BYTES_PER_ROW
        self.dictionary_columns = tuple(f"id{lvl}" for lvl in small) + tuple(f"id{lvl + 3}" for lvl in small)

    def generate(self, start: int, stop: int) -> pa.Table:
        self.check_range(start, stop)
        n = stop - start
        draws = {lvl: np.empty(n, dtype=np.int64) for lvl in self.levels}
        value = np.empty(n, dtype=np.float64)
        valid = None
        for b, lo, hi in blocks(start, stop, self.rows):
            gen = rng(self.seed, self.stream, 0, self.tid, b)
            a, z = max(lo, start) - start, min(hi, stop) - start
            cut = slice(a + start - lo, z + start - lo)
            for lvl in self.levels:
                draws[lvl][a:z] = gen.integers(0, self.keys[lvl].n, hi - lo)[cut]
            value[a:z] = np.round(gen.random(hi - lo) * 100, 6)[cut]
            if self.na:
                mask = null_mask(rng(self.seed, self.stream, 14, self.tid, b), hi - lo, int(self.value_nulls[b]))
                valid = punch(valid, start, lo, mask, n)
        cols, names = {}, {}
        for lvl in self.levels:
            keys = self.keys[lvl]
            idx = self.spread[lvl](start, stop, draws[lvl])
            ok = None
            if self.null_keys[lvl]:
                ok = self.null_perm[lvl](idx) >= self.null_keys[lvl]
            key = keys.left(idx) if self.name == "x" else keys.right(idx)
            cols[f"id{lvl}"] = arrow(key.astype(np.int32), ok)
            names[f"id{lvl + 3}"] = decimal_ids(key, ok)
        cols.update(names)
        cols[self.value] = arrow(value, valid)
        return pa.Table.from_pydict(cols, schema=self.schema)


def plan(rows: int, seed: int, na: float = 0) -> dict[str, JoinTable]:
    return {name: JoinTable(name, rows, seed, na) for name in TABLES}


def label(rows: int, na: float) -> str:
    from workbench.datasets.generators.h2o import sci

    return f"J1_{sci(rows)}_NA_{na:g}_0"

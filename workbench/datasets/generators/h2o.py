"""db-benchmark's groupby table G1_N_K_NA_S (h2oai/db-benchmark ``groupby-datagen.R``).

id1, id2: "id001".."id{K}"; id3: "id0000000001".."id{N/K}"; id4, id5: 1..K; id6: 1..N/K;
v1: 1..5; v2: 1..15; v3: uniform(0, 100) rounded to 6 decimals; all uniform and
independent. With NA percent ``na`` each column has exactly floor(N * na / 100) nulls at
uniformly random rows, as db-benchmark makes them. ``sort=True`` gives the rows sorted by
id1..id6 (nulls first); see ``_sorted`` for how that is built without a global sort.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from workbench.datasets.generators._rng import blocks, null_counts, null_mask, rng, stream_id
from workbench.datasets.generators._sorted import SortedKeys
from workbench.datasets.generators._strings import padded_ids, sorted_dictionary
from workbench.datasets.generators._table import TablePlan, arrow, assemble, punch

IDS = ("id1", "id2", "id3", "id4", "id5", "id6")
VALUES = ("v1", "v2", "v3")
COLUMNS = IDS + VALUES
_DTYPES = dict(zip(COLUMNS, ["int32", "int32", "int64", "int32", "int32", "int32", "int32", "int32", "float64"]))
DICTIONARY_LIMIT = 1 << 16  # above this many values a Parquet dictionary costs more than it saves


class GroupBy(TablePlan):
    """Rows [start, stop) of G1_{rows}_{k}_{na}_{sort}."""

    def __init__(self, rows: int, seed: int, k: int = 100, na: float = 0, sort: bool = False):
        self.rows, self.seed, self.k, self.na, self.sort = rows, seed, k, na, bool(sort)
        self.m = max(1, rows // k)  # cardinality of id3 and id6
        self.stream = stream_id("h2o_groupby")
        self.cards = dict(zip(IDS, [k, k, self.m, k, k, self.m]))
        self.dictionary = sorted_dictionary(k)
        self.nulls = int(rows * na / 100)
        # Exact null counts per block and column; sorted ids get Bernoulli nulls instead.
        exact = VALUES if self.sort else COLUMNS
        self.null_blocks = {
            c: null_counts(seed, (self.stream, 1, i), rows, self.nulls) for i, c in enumerate(COLUMNS) if c in exact
        }
        if self.sort:
            self.tree = SortedKeys(seed, (self.stream, 2), rows, [self.cards[c] for c in IDS], [na / 100] * 6)
        id_type = pa.dictionary(pa.int32(), pa.string())
        self.schema = pa.schema(
            [(c, id_type) for c in ("id1", "id2")]
            + [("id3", pa.string())]
            + [(c, pa.int32()) for c in ("id4", "id5", "id6", "v1", "v2")]
            + [("v3", pa.float64())]
        )
        self.dictionary_columns = tuple(c for c in COLUMNS if self.cards.get(c, 0) <= DICTIONARY_LIMIT)

    @staticmethod
    def _values(gen: np.random.Generator, n: int) -> dict:
        return {
            "v1": (gen.integers(1, 6, n, dtype=np.int32), None),
            "v2": (gen.integers(1, 16, n, dtype=np.int32), None),
            "v3": (np.round(gen.random(n) * 100, 6), None),
        }

    def _block(self, b: int, lo: int, hi: int):
        n, gen = hi - lo, rng(self.seed, self.stream, 0, b)
        cols = {}
        for c in IDS:  # 0-based value indices; id4..id6 shifted to 1-based on output
            card = self.cards[c]
            cols[c] = (gen.integers(0, card, n, dtype=np.int32 if card < 2**31 else np.int64), None)
        cols.update(self._values(gen, n))
        return lo, cols

    def _leaves(self, start: int, stop: int):
        for first, leaf in self.tree.pieces(start, stop, self._values):
            keys = leaf.pop("keys")
            leaf.update({c: self.tree.decode(i, keys[i]) for i, c in enumerate(IDS)})
            yield first, leaf

    def generate(self, start: int, stop: int) -> pa.Table:
        self.check_range(start, stop)
        n = stop - start
        if self.sort:
            pieces = self._leaves(start, stop)
        else:
            pieces = (self._block(b, lo, hi) for b, lo, hi in blocks(start, stop, self.rows))
        cols = assemble(start, stop, pieces, _DTYPES)
        if self.nulls:
            names = list(self.null_blocks)
            for b, lo, hi in blocks(start, stop, self.rows):
                gen = rng(self.seed, self.stream, 3, b)
                for c in names:
                    mask = null_mask(gen, hi - lo, int(self.null_blocks[c][b]))
                    values, valid = cols[c]
                    cols[c] = (values, punch(valid, start, lo, mask, n))
        out = {}
        for c in ("id1", "id2"):
            idx, valid = cols[c]
            out[c] = pa.DictionaryArray.from_arrays(arrow(idx.astype(np.int32, copy=False), valid), self.dictionary)
        out["id3"] = padded_ids(cols["id3"][0] + 1, 10, cols["id3"][1])
        for c in ("id4", "id5", "id6"):
            v, valid = cols[c]
            out[c] = arrow((v + 1).astype(np.int32, copy=False), valid)
        for c in VALUES:
            out[c] = arrow(*cols[c])
        return pa.Table.from_pydict(out, schema=self.schema)


def label(rows: int, k: int, na: float, sort: bool) -> str:
    """db-benchmark's name for the table: G1_1e7_1e2_0_0."""
    return f"G1_{sci(rows)}_{sci(k)}_{na:g}_{int(bool(sort))}"


def sci(x: int) -> str:
    """1e7 for 10_000_000, 25e6 for 25_000_000, 1234 as is (db-benchmark's pretty_sci)."""
    x = int(x)
    digits = str(x).rstrip("0")
    zeros = len(str(x)) - len(digits)
    return f"{digits}e{zeros}" if zeros and x else str(x)




def plan(rows: int, seed: int, k: int = 100, na: float = 0, sort: bool = False) -> dict[str, TablePlan]:
    return {"data": GroupBy(rows, seed, k=k, na=na, sort=sort)}

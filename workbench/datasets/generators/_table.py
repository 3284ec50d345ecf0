"""What a generator hands the writer: a table plan that produces any row range on demand."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

Piece = tuple[int, dict[str, tuple[np.ndarray, "np.ndarray | None"]]]


class TablePlan:
    """One output table: its row count, Arrow schema as written, and a range generator.

    ``generate(start, stop)`` returns rows ``[start, stop)`` and is a pure function of the
    plan: any cut of ``[0, rows)`` into ranges gives, concatenated, the same table.
    """

    name: str = "data"
    rows: int
    schema: pa.Schema
    dictionary_columns: tuple[str, ...] = ()  # low-cardinality columns worth Parquet dictionaries
    bytes_per_row: int = 160  # peak memory per row in flight in one writer thread (measured)

    def generate(self, start: int, stop: int) -> pa.Table:
        raise NotImplementedError

    def check_range(self, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= self.rows:
            raise ValueError(f"row range [{start}, {stop}) is outside [0, {self.rows})")


def assemble(start: int, stop: int, pieces: Iterable[Piece], dtypes: dict[str, np.dtype]):
    """Copy the overlap of each piece (first row, columns) into arrays for ``[start, stop)``.

    A column's validity array is created only when some piece has nulls in it.
    """
    n = stop - start
    values = {c: np.empty(n, dtype=t) for c, t in dtypes.items()}
    valid: dict[str, np.ndarray | None] = dict.fromkeys(dtypes)
    for first, cols in pieces:
        length = len(next(iter(cols.values()))[0])
        a, b = max(start, first), min(stop, first + length)
        if a >= b:
            continue
        dst, src = slice(a - start, b - start), slice(a - first, b - first)
        for c, (v, ok) in cols.items():
            values[c][dst] = v[src]
            if ok is not None:
                if valid[c] is None:
                    valid[c] = np.ones(n, dtype=bool)
                valid[c][dst] = ok[src]
    return {c: (values[c], valid[c]) for c in dtypes}


def punch(valid: np.ndarray | None, start: int, first: int, mask: np.ndarray | None, n: int):
    """AND a piece's validity mask (rows from ``first``) into the range's validity array."""
    if mask is None:
        return valid
    if valid is None:
        valid = np.ones(n, dtype=bool)
    a, b = max(start, first), min(start + n, first + len(mask))
    if a < b:
        valid[a - start : b - start] &= mask[a - first : b - first]
    return valid


def arrow(values: np.ndarray, valid: np.ndarray | None, type_: pa.DataType | None = None) -> pa.Array:
    """A NumPy column (and validity) as an Arrow array, without copying the values."""
    return pa.array(values, type=type_, mask=None if valid is None else ~valid)


def iter_ranges(rows: int, size: int) -> Iterator[tuple[int, int]]:
    for a in range(0, rows, size):
        yield a, min(rows, a + size)

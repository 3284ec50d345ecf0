"""Arrow tables in the form Frames keep them, and device tables as GPU queries leave them."""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import polars as pl
import pyarrow as pa


@functools.cache
def copy_threads() -> ThreadPoolExecutor:
    """The process's threads for copies that release the GIL (staged transfers,
    concatenations), made once: a pool per copy started thousands of threads over a
    split's partitions. Its tasks never wait on it."""
    return ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="workbench-copy")


def normalize(table: pa.Table) -> pa.Table:
    """One chunk per column, string views as large strings, unique string names.

    Columns are concatenated in parallel: a Parquet file read by pyarrow comes in one
    chunk per row group (hundreds), and one thread copying gigabytes is the slowest
    part of loading it (Arrow's concatenation releases the GIL).
    """
    names = table.column_names
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"column names must be unique; repeated: {dupes}")

    def one_chunk(col: pa.ChunkedArray) -> pa.Array:
        if pa.types.is_string_view(col.type):
            col = col.cast(pa.large_string())
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)

    if any(col.num_chunks > 1 for col in table.columns):
        with ThreadPoolExecutor(min(len(names), os.cpu_count() or 1) or 1) as pool:
            columns = list(pool.map(one_chunk, table.columns))
    else:
        columns = [one_chunk(col) for col in table.columns]
    fields = [field.with_type(col.type) for field, col in zip(table.schema, columns)]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))


#: rows per piece when :func:`as_polars` converts a string column on several threads
PIECE_ROWS = 1 << 21


def as_polars(table: pa.Table, piece_rows: int = PIECE_ROWS) -> pl.DataFrame:
    """``table`` as a polars DataFrame, its string columns converted on the copy threads.

    Numbers, dates and booleans are shared; strings must be copied into polars' string
    views, which polars does on one thread per call but with the GIL released, so
    pieces of ``piece_rows`` rows are converted side by side (three string columns of
    3e7 rows: 3.2 s in one call, 1.1 s a column per thread, measured on 2 cores). The
    pieces stay chunks of the result's columns, as a multi-chunk Arrow table's would.
    """
    def stringy(t: pa.DataType) -> bool:
        return pa.types.is_large_string(t) or pa.types.is_string(t) or \
            pa.types.is_large_binary(t) or pa.types.is_binary(t)

    jobs = [(i, piece) for i, col in enumerate(table.columns) if stringy(col.type)
            for chunk in col.chunks for piece in _pieces(chunk, piece_rows)]
    if len(jobs) < 2 or threading.current_thread().name.startswith("workbench-copy"):
        return pl.from_arrow(table, rechunk=False)  # nothing to share out, or on a copy thread
    converted = copy_threads().map(lambda job: pl.from_arrow(job[1], rechunk=False), jobs)
    pieces: dict[int, list] = {}
    for (i, _), series in zip(jobs, converted):
        pieces.setdefault(i, []).append(series)
    columns = []
    for i, name in enumerate(table.column_names):
        if i in pieces:
            series = pl.concat(pieces[i], rechunk=False) if len(pieces[i]) > 1 else pieces[i][0]
        else:
            series = pl.from_arrow(table.column(i), rechunk=False)
        columns.append(series.alias(name))
    return pl.DataFrame(columns)


def _pieces(array: pa.Array, rows: int) -> list[pa.Array]:
    return [array.slice(start, rows) for start in range(0, len(array), rows)] or [array]


def is_number(dtype: pl.DataType) -> bool:
    """Integers and floats: one fixed-width value per row (decimals are not)."""
    return dtype.is_numeric() and not isinstance(dtype, pl.Decimal)


def plain(dtype: pl.DataType) -> bool:
    """Types whose Arrow form from libcudf is the one polars uses (no metadata needed)."""
    if isinstance(dtype, pl.Datetime):
        return dtype.time_zone is None  # libcudf's Arrow carries no time zone
    return is_number(dtype) or isinstance(dtype, (pl.String, pl.Boolean, pl.Date, pl.Duration))


@dataclass
class DeviceTable:
    """A table on the device, as a GPU query leaves it: what a Frame needs to hold it.

    ``columns`` are pylibcudf columns; ``to_polars`` converts the whole table the
    engine's way (for types whose layouts differ between libcudf and Arrow);
    ``owner`` keeps the engine's object, and so the device memory, alive.
    """

    columns: list
    names: list[str]
    schema: pl.Schema
    rows: int
    to_polars: Callable[[], pl.DataFrame]
    owner: Any = None

    def column(self, name: str):
        return self.columns[self.names.index(name)]

    @property
    def nbytes(self) -> int:
        return sum(c.device_buffer_size() for c in self.columns)

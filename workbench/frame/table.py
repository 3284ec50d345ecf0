"""Arrow tables in the form Frames keep them, and device tables as GPU queries leave them."""

from __future__ import annotations

import functools
import os
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


_VIEWS = {pa.string(): pa.string_view(), pa.large_string(): pa.string_view(),
          pa.binary(): pa.binary_view(), pa.large_binary(): pa.binary_view()}


#: a string column of fewer rows is cast whole: cutting it gains less than it costs
PIECE_ROWS = 1 << 20


def as_polars(table: pa.Table, cores: int | None = None) -> pl.DataFrame:
    """``table`` as a polars DataFrame, strings through Arrow's string views.

    Numbers, dates and booleans are shared. polars keeps strings as views (16 bytes a
    string, short ones inline): Arrow's own cast into that layout, which polars then
    takes without a copy, is ~1.5x faster than polars converting offsets and
    characters itself (3e7 short strings: 0.32 s against 0.45-0.63 s, on 2 cores).
    The casts run on the copy threads (Arrow's cast releases the GIL): a column each,
    and where cores outnumber the string columns each large column is cut into
    slices cast apart, kept as its chunks. The groupby table's shape at 3e7 rows
    (three string columns) on 16 cores: 1.57 s by ``pl.from_arrow``, 0.30 s a
    column per thread, 0.18 s a slice per core (H100 machine, fresh processes,
    ``benchmarks/polars_views.py``); on 2 cores slices gained nothing. ``cores``: the
    cores to count on (default: all). Never called from a copy thread's task: it
    waits on that pool.
    """
    strings = [i for i, f in enumerate(table.schema) if f.type in _VIEWS]
    if not strings:
        return pl.from_arrow(table, rechunk=False)
    cuts = max(1, (cores or os.cpu_count() or 1) // len(strings))
    rows = table.num_rows
    step = -(-rows // cuts) if cuts > 1 and rows >= PIECE_ROWS else max(rows, 1)
    # (column, first row, rows): one slice, or the whole column
    jobs = [(i, first, step) for i in strings for first in range(0, max(rows, 1), step)]
    columns = table.columns
    cast = list(copy_threads().map(lambda j: _as_views(columns[j[0]].slice(j[1], j[2])), jobs))
    for i in strings:
        chunks = [c for j, views in zip(jobs, cast) if j[0] == i for c in views.chunks]
        columns[i] = pa.chunked_array(chunks, type=_VIEWS[table.schema.field(i).type])
    schema = pa.schema([f.with_type(c.type) for f, c in zip(table.schema, columns)],
                       metadata=table.schema.metadata)
    return pl.from_arrow(pa.Table.from_arrays(columns, schema=schema), rechunk=False)


def _as_views(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A string column cast to string views. Arrow's cast of a slice takes time in
    proportion to the slice's offset into its buffers, not to its length (a 1/1024 sample
    at the end of 1e7 rows: 20-460 ms against 0.1 ms at the start), so slices are first
    copied compact: the sample row ranges a plan's estimates read cost milliseconds."""
    chunks = [pa.concat_arrays([c]) if c.offset else c for c in column.chunks]
    return pa.chunked_array(chunks, type=column.type).cast(_VIEWS[column.type])


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

"""How polars runs a plan on the CPU: streaming when it reads files, else in memory.

Without a GPU (or when the GPU cannot run a plan) :func:`workbench.collect` hands the
plan to polars. A plan whose scans read files runs on polars' streaming engine: it
reads them in morsels and holds only what the plan keeps, where the in-memory engine
loads every column read before it works (a scan of files larger than host memory
would take the process down). Streaming was also the faster way: over the query
corpus's 27 queries on Parquet files (3e7 rows, 2 cores) 56 s against 68 s (78 s in
another run), with lower peak memory for 19 of them; a distinct count per group and a
semi join were slower (2.4x, 1.6x), every answer the same (``benchmarks/cpu_streaming.py
--corpus``).
Frames and polars frames are in host memory already: plans over them alone run in
memory, as polars runs them by default (over Frames streaming gained less: 14.5 s against
16.3 s over the corpus at 1e7 rows on 2 cores, not yet measured on many).

:func:`too_large` says when the files would not fit in memory at all: half of the host
memory available, the least of what the session found at its start and what there is
now (on a machine a class shares, other students' work takes it). A plan the GPU runs
in part then goes to polars whole, streaming, instead of leaving polars' in-memory
engine the rest (``engine/partial.py``). The bytes come from the Parquet footers, for
the columns read, or the file sizes for CSV, IPC and NDJSON.

>>> import polars as pl, workbench as wb
>>> s = wb.init(backend="cpu")
>>> collect(pl.LazyFrame({"k": [1, 2, 1]}).group_by("k").len().sort("k"), s).rows()
[(1, 2), (2, 1)]
"""

from __future__ import annotations

import polars as pl

from workbench.sizes import format_bytes

#: the in-memory engine holds a plan's inputs, their intermediates and the answer at
#: once: files taking more than this share of the room do not fit it
IN_MEMORY_SHARE = 2


def collect(lf: pl.LazyFrame, session) -> pl.DataFrame:
    """``lf``'s answer by polars: streaming when it reads files (the choice noted in the
    session's log), else in memory."""
    why = streams(lf, session)
    if why is None:
        return lf.collect()
    session.note("collect: " + why)
    return lf.collect(engine="streaming")


def streams(lf: pl.LazyFrame, session) -> str | None:
    """Why polars streams ``lf`` on the CPU, or None when it runs it in memory."""
    read = scanned_bytes(lf)
    if not read:
        return None
    return too_large(lf, session, read) or (
        f"it reads ~{format_bytes(read)} of files: polars' streaming engine reads them in "
        "morsels (faster than loading them, and lighter)")


def too_large(lf: pl.LazyFrame, session, read: int | None = None) -> str | None:
    """Why the files ``lf`` reads would not fit polars' in-memory engine (more than
    ``1/IN_MEMORY_SHARE`` of the host memory available), or None when they would."""
    read = scanned_bytes(lf) if read is None else read
    room = session.hardware.host_memory_left()
    if not (read and room and read * IN_MEMORY_SHARE > room):
        return None
    return (f"the files read take ~{format_bytes(read)}, over 1/{IN_MEMORY_SHARE} of the "
            f"{format_bytes(room)} of host memory for the query: polars' streaming engine")


def scanned_bytes(lf: pl.LazyFrame) -> int:
    """Bytes the file scans of ``lf``'s optimised plan load into memory, estimated
    from the files (0 when it scans none, or none it can read the size of)."""
    try:
        nt = lf._ldf.visit()
    except Exception:  # noqa: BLE001 - a plan polars cannot show: no estimate
        return 0
    total, todo = 0, [nt.get_node()]
    while todo:
        node = todo.pop()
        nt.set_node(node)
        try:
            ir = nt.view_current_node()
        except NotImplementedError:  # an opaque function: look below it
            ir = None
        if type(ir).__name__ == "Scan":
            total += scan_bytes(list(ir.paths), str(ir.scan_type[0]), dict(nt.get_schema()))
        todo.extend(nt.get_inputs())
    return total


#: bytes per value polars takes in memory, by fixed-width type; any other takes a
#: 16-byte view (strings, binary) or more, and counts 16
_WIDTHS = {pl.Boolean: 1, pl.Int8: 1, pl.UInt8: 1, pl.Int16: 2, pl.UInt16: 2, pl.Int32: 4,
           pl.UInt32: 4, pl.Float32: 4, pl.Date: 4, pl.Int64: 8, pl.UInt64: 8, pl.Float64: 8,
           pl.Datetime: 8, pl.Duration: 8, pl.Time: 8}


def scan_bytes(paths: list[str], kind: str, schema: dict) -> int:
    """The bytes polars takes in memory for the columns of ``schema`` read from the
    files ``paths`` of format ``kind``, about (see :func:`workbench.frame.readers.load_bytes`)."""
    from workbench.frame.readers import load_bytes

    widths = {name: _WIDTHS.get(getattr(dtype, "base_type", lambda: dtype)(), 16)
              for name, dtype in schema.items()}
    return load_bytes(paths, kind, widths)

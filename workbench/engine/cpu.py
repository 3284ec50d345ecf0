"""How polars runs a plan on the CPU: in memory, or streaming when its files would not fit.

Without a GPU (or when the GPU cannot run a plan) :func:`workbench.collect` hands the
plan to polars. Its in-memory engine loads every column a file scan reads before it
works, so a scan of Parquet files larger than host memory would take the process
down; polars' streaming engine reads them in morsels and holds only what the plan
keeps. :func:`collect` picks between the two from the bytes the plan's file scans
read (from the Parquet footers, for the columns read; the file sizes for CSV, IPC
and NDJSON) against the host memory available: the least of what the session found
at its start and what there is now (on a machine a class shares, other students'
work takes it). Frames and polars frames are in host memory already and count for
nothing.

>>> import polars as pl, workbench as wb
>>> s = wb.init(backend="cpu")
>>> collect(pl.LazyFrame({"k": [1, 2, 1]}).group_by("k").len().sort("k"), s).rows()
[(1, 2), (2, 1)]
"""

from __future__ import annotations

import polars as pl

#: in-memory while the files' columns take at most this share of the room: the engine
#: holds its inputs, their intermediates and the answer at once
IN_MEMORY_SHARE = 2


def collect(lf: pl.LazyFrame, session) -> pl.DataFrame:
    """``lf``'s answer by polars: streaming when its file scans read more than
    ``1/IN_MEMORY_SHARE`` of the room (the choice noted in the session's log), else
    in memory."""
    why = streams(lf, session)
    if why is None:
        return lf.collect()
    session.note("collect: " + why)
    return lf.collect(engine="streaming")


def streams(lf: pl.LazyFrame, session) -> str | None:
    """Why polars should stream ``lf`` on the CPU, or None to run it in memory."""
    read = scanned_bytes(lf)
    room = session.hardware.host_memory_left()
    if not (read and room and read * IN_MEMORY_SHARE > room):
        return None
    from workbench.sizes import format_bytes

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

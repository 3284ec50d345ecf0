"""Device -> host: a GPU query's result copied into host memory, once, at pinned speed.

The first CPU view of a GPU result (a Frame made by ``collect(..., as_frame=True)``)
copies each buffer in pieces through a few pinned staging buffers, threads copying
out of them in parallel into page-aligned host memory. Types whose layouts differ
between libcudf and Arrow (booleans, categoricals, slices) are converted by the
engine or libcudf instead (pageable copies).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pyarrow as pa

import pylibcudf as plc
from cuda.bindings import runtime as cudart

from workbench.frame.device import _ARROW_TO_PLC, _STAGE_BYTES, _TIME_UNITS, _check, staging
from workbench.frame.pages import anonymous
from workbench.frame.table import DeviceTable, copy_threads, normalize, plain

_PLC_TO_ARROW = {v: k for k, v in _ARROW_TO_PLC.items()}
for _unit, _name in _TIME_UNITS.items():
    _PLC_TO_ARROW[getattr(plc.TypeId, "TIMESTAMP_" + _name)] = pa.timestamp(_unit)
    _PLC_TO_ARROW[getattr(plc.TypeId, "DURATION_" + _name)] = pa.duration(_unit)


def host_type(col: plc.Column) -> pa.DataType | None:
    """The Arrow type whose buffers are ``col``'s byte for byte, or None."""
    tid = col.type().id()
    if col.offset() or col.size() == 0:
        return None  # slices and empty columns: not worth a special case
    if tid == plc.TypeId.STRING:
        children = col.children()
        if not children:
            return None
        wide = children[0].type().id() == plc.TypeId.INT64
        return pa.large_string() if wide else pa.string()
    return _PLC_TO_ARROW.get(tid)


def _last_offset(col: plc.Column, wide: bool) -> int:
    """The characters' byte count of a strings column: its last offset (a tiny copy)."""
    n, width = col.size(), 8 if wide else 4
    out = np.zeros(1, dtype=np.int64 if wide else np.int32)
    _check(cudart.cudaMemcpy(out.ctypes.data, col.children()[0].data().ptr + n * width, width,
                             cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost), "cudaMemcpy")
    return int(out[0])


def to_host(columns: list[plc.Column], arrow_types: list[pa.DataType],
            take: Callable[[int], np.ndarray | None] | None = None) -> list[pa.Array]:
    """Device columns as Arrow arrays in new host memory, copied through pinned staging.

    Every buffer is cut into pieces of the staging size; the copy threads each take
    a staging buffer, copy a piece into it at pinned speed and from it into the
    destination, so the host side (page faults, memcpy) runs in parallel. The arrays
    live in anonymous page-aligned mappings (plain memory, not registered), or in
    registered memory from ``take(nbytes)`` where it gives some (a
    :class:`~workbench.frame.hostpool.HostPool`'s): those pieces are copied straight
    in, at the bus's rate.
    """
    plans = []  # per column: [(device pointer, bytes) per Arrow buffer, None for absent]
    for col, typ in zip(columns, arrow_types):
        n = col.size()
        validity = (col.null_mask().ptr, -(-n // 8)) if col.null_count() else None
        if pa.types.is_string(typ) or pa.types.is_large_string(typ):
            wide = pa.types.is_large_string(typ)
            chars = _last_offset(col, wide)
            data = col.data()
            # Arrow wants a characters buffer even when every string is empty.
            plans.append([validity, (col.children()[0].data().ptr, (n + 1) * (8 if wide else 4)),
                          (data.ptr if data is not None else 0, chars)])
        else:
            plans.append([validity, (col.data().ptr, n * (typ.bit_width // 8))])
    targets, direct = {}, set()
    for i, plan in enumerate(plans):
        for j, part in enumerate(plan):
            if part is not None:
                target = take(part[1]) if take is not None else None
                if target is not None:
                    direct.add(id(target))
                targets[i, j] = target if target is not None else anonymous(part[1])
    pieces = [(ptr + start, targets[i, j], start, min(_STAGE_BYTES, size - start))
              for i, plan in enumerate(plans) for j, part in enumerate(plan) if part is not None
              for ptr, size in [part] for start in range(0, size, _STAGE_BYTES)]
    stages = staging()

    def copy(piece):
        src, dst, start, size = piece
        if id(dst) in direct:  # registered: the driver copies at pinned speed, in place
            _check(cudart.cudaMemcpy(dst.ctypes.data + start, src, size,
                                     cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost), "cudaMemcpy")
            return
        stage = stages.get()
        try:
            _check(cudart.cudaMemcpy(stage.ctypes.data, src, size,
                                     cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost), "cudaMemcpy")
            dst[start:start + size] = stage[:size]
        finally:
            stages.put(stage)

    list(copy_threads().map(copy, pieces))
    arrays = []
    for i, (col, typ, plan) in enumerate(zip(columns, arrow_types, plans)):
        buffers = [None if part is None else pa.py_buffer(targets[i, j]).slice(0, part[1])
                   for j, part in enumerate(plan)]
        arrays.append(pa.Array.from_buffers(typ, col.size(), buffers, null_count=col.null_count()))
    return arrays


def fetch(result: DeviceTable, log, take=None) -> tuple[pa.Table, str]:
    """``result`` as a normalized Arrow table in new host memory, and the copy's kind.

    The copy is recorded in ``log`` (the session's transfer log). ``take``: where
    registered memory may come from (see :func:`to_host`).
    """
    start = time.perf_counter()
    if all(plain(dtype) for dtype in result.schema.dtypes()):
        table, kind = staged(result.columns, result.names, take)
    else:
        table, kind = result.to_polars().to_arrow(), "pageable"
    table = normalize(table)
    log.record("query result", table.nbytes, "device-to-host", kind, time.perf_counter() - start)
    return table, kind


def staged(columns, names, take=None) -> tuple[pa.Table, str]:
    """Device columns as an Arrow table in new host memory (copied through the pinned
    staging buffers, or by libcudf for layouts Arrow does not share), and the kind.
    ``take``: where registered memory may come from (see :func:`to_host`)."""
    types = [host_type(col) for col in columns]
    staged = [i for i, t in enumerate(types) if t is not None]
    arrays: list = [None] * len(columns)
    fetched = to_host([columns[i] for i in staged], [types[i] for i in staged], take)
    for i, array in zip(staged, fetched):
        arrays[i] = array
    for i, array in enumerate(arrays):
        if array is None:  # booleans, slices, empty columns: libcudf converts them
            table = plc.Table([columns[i]]).to_arrow(metadata=[names[i]])
            arrays[i] = table.column(0).combine_chunks()
    kind = "pinned" if len(staged) == len(columns) else "pageable"
    return pa.Table.from_arrays(arrays, names=names), kind

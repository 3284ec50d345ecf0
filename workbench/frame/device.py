"""Host -> device mechanics behind :class:`workbench.Frame`; imported only when a GPU is used.

Three jobs (the way back is :mod:`workbench.frame.fetch`):

* pin host buffers *in place* (``cudaHostRegister``), so copies run at PCIe/C2C speed
  and kernels can read them mapped, without a second host copy;
* move Arrow buffers to the device, one ``cudaMemcpy`` per registered buffer (large
  unregistered ones in pieces through pinned staging buffers, threads in parallel),
  recorded in the session's transfer log;
* build pylibcudf columns over device (or device-visible host) buffers without
  going through pageable staging copies.
"""

from __future__ import annotations

import ctypes
import os
import queue
import threading
import time

import numpy as np
import pyarrow as pa

import pylibcudf as plc
import rmm
from cuda.bindings import runtime as cudart

from workbench.frame.pages import Registry, anonymous
from workbench.frame.table import copy_threads


# cudaHostRegisterPortable | cudaHostRegisterMapped: usable from every context and
# readable by kernels through the same (UVA) address.
_REGISTER_FLAGS = 0x01 | 0x02
# libcudf wants null masks padded to 64 bytes.
_MASK_ALIGN = 64

_ARROW_TO_PLC = {
    pa.int8(): plc.TypeId.INT8, pa.int16(): plc.TypeId.INT16,
    pa.int32(): plc.TypeId.INT32, pa.int64(): plc.TypeId.INT64,
    pa.uint8(): plc.TypeId.UINT8, pa.uint16(): plc.TypeId.UINT16,
    pa.uint32(): plc.TypeId.UINT32, pa.uint64(): plc.TypeId.UINT64,
    pa.float32(): plc.TypeId.FLOAT32, pa.float64(): plc.TypeId.FLOAT64,
    pa.date32(): plc.TypeId.TIMESTAMP_DAYS,
}
_TIME_UNITS = {"s": "SECONDS", "ms": "MILLISECONDS", "us": "MICROSECONDS", "ns": "NANOSECONDS"}


def _check(result, what: str):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"{what} failed: {cudart.cudaGetErrorName(err)[1].decode()}")
    return rest[0] if len(rest) == 1 else rest


# ---------------------------------------------------------------- pinning in place
_registered = Registry()


def pinned_bytes() -> int:
    """Host bytes currently registered by frames (and the host pool) of this process."""
    return _registered.nbytes


def pinned_span(address: int, size: int) -> tuple[int, int]:
    """The registered part of ``[address, address + size)`` (empty when none)."""
    return _registered.span(address, size)


def is_pinned(address: int, size: int) -> bool:
    """True when all of ``[address, address + size)`` is registered."""
    lo, hi = pinned_span(address, size)
    return size > 0 and lo == address and hi == address + size


def register(ranges, limit: int | None) -> tuple[list[tuple[int, int]], int]:
    """Pin ranges in place, stopping at ``limit`` pinned bytes in the process (None:
    no limit, for memory whose room was checked otherwise).

    Returns the ranges that were registered and the bytes left unpinned (over the
    limit, or refused by the driver, e.g. pages already registered by someone else).
    """
    done, skipped = [], 0
    for start, length in ranges:
        if limit is not None and _registered.nbytes + length > limit:
            skipped += length
            continue
        err, = cudart.cudaHostRegister(start, length, _REGISTER_FLAGS)
        if err != cudart.cudaError_t.cudaSuccess:
            cudart.cudaGetLastError()  # clear the sticky-free error state
            skipped += length
            continue
        _registered.add(start, length)
        done.append((start, length))
    return done, skipped


def unregister(ranges) -> None:
    for start, _ in ranges:
        if _registered.remove(start):
            cudart.cudaHostUnregister(start)


# ---------------------------------------------------------------- staging
# Copies of memory that is not registered hop through a few pinned staging buffers,
# registered once per process: registering fresh pages for every copy costs more
# (~0.5 s/GiB, and the driver does it one call at a time) than copying through a
# pinned buffer, which threads do in parallel while the next piece crosses the bus.
_STAGE_BYTES = 16 << 20
_STAGED_FROM = 1 << 20  # smaller unregistered copies go pageable, in one call
_STAGES = 8
_stages: queue.SimpleQueue | None = None
_stages_lock = threading.Lock()


def staging() -> queue.SimpleQueue:
    """The process's pinned staging buffers; take one with ``get``, give it back with ``put``."""
    global _stages
    with _stages_lock:
        if _stages is None:
            stages = queue.SimpleQueue()
            for _ in range(_STAGES):
                view = anonymous(_STAGE_BYTES)
                _check(cudart.cudaHostRegister(view.ctypes.data, _STAGE_BYTES, 0),
                       "cudaHostRegister")
                stages.put(view)
            _stages = stages
    return _stages


def _staged_upload(dst: int, src: int, nbytes: int) -> None:
    """``nbytes`` of unregistered host memory at ``src`` to the device at ``dst``, in
    pieces through the staging buffers: the host-side copies (the slow part, one
    thread in the driver's own pageable copy) run on all the copy threads."""
    stages, threads = staging(), os.cpu_count() or 1
    step = min(_STAGE_BYTES, max(1 << 20, -(-nbytes // threads)))

    def piece(start):
        size = min(step, nbytes - start)
        stage = stages.get()
        try:
            ctypes.memmove(stage.ctypes.data, src + start, size)  # releases the GIL
            _check(cudart.cudaMemcpy(dst + start, stage.ctypes.data, size,
                                     cudart.cudaMemcpyKind.cudaMemcpyHostToDevice), "cudaMemcpy")
        finally:
            stages.put(stage)

    list(copy_threads().map(piece, range(0, nbytes, step)))


# ---------------------------------------------------------------- host -> device
class _Memory:
    """A CUDA-array-interface view of raw memory (host mapped, unified, or device)."""

    def __init__(self, ptr: int, size: int, owner=None):
        self.ptr, self.size, self.owner = ptr, size, owner

    @property
    def __cuda_array_interface__(self):
        return {"shape": (self.size,), "typestr": "|u1", "data": (self.ptr, False),
                "version": 3, "strides": None, "stream": None}


def _copy_buffer(address: int, nbytes: int, what: str, log) -> rmm.DeviceBuffer:
    """One host->device copy of ``nbytes`` of host memory into a new device allocation.

    The registered part goes in one pinned copy; any part outside it (plain memory, a
    buffer only partly registered) through the staging buffers when it is large, in
    pageable copies when small.
    """
    padded = -(-max(nbytes, 1) // _MASK_ALIGN) * _MASK_ALIGN
    dev = rmm.DeviceBuffer(size=padded)
    end = address + nbytes
    lo, hi = pinned_span(address, nbytes)
    pieces = [(address, lo), (lo, hi), (hi, end)] if hi > lo else [(address, end)]
    start = time.perf_counter()
    staged = 0
    for a, b in pieces:
        if b - a >= _STAGED_FROM and not (lo <= a < hi):
            _staged_upload(dev.ptr + (a - address), a, b - a)
            staged += b - a
        elif b > a:
            _check(cudart.cudaMemcpy(dev.ptr + (a - address), a, b - a,
                                     cudart.cudaMemcpyKind.cudaMemcpyHostToDevice), "cudaMemcpy")
    if log is not None:
        kind = "pinned" if 2 * (hi - lo + staged) >= nbytes > 0 else "pageable"
        log.record(what, nbytes, "host-to-device", kind, time.perf_counter() - start)
    return dev


def _device_view(buf: pa.Buffer, start: int, nbytes: int) -> plc.gpumemoryview:
    """Bytes ``[start, start + nbytes)`` of a host buffer, seen by the GPU in place
    (unified memory, or registered and mapped)."""
    padded = -(-max(nbytes, 1) // _MASK_ALIGN) * _MASK_ALIGN
    # Arrow pads allocations to 64 bytes, so the padded view stays inside the buffer.
    size = min(padded, buf.size - start) or nbytes
    return plc.gpumemoryview(_Memory(buf.address + start, size, buf))


def plc_type(arrow_type: pa.DataType) -> plc.DataType | None:
    """The pylibcudf type with the same memory layout, or None (needs conversion)."""
    if arrow_type in _ARROW_TO_PLC:
        return plc.DataType(_ARROW_TO_PLC[arrow_type])
    if pa.types.is_timestamp(arrow_type):
        return plc.DataType(getattr(plc.TypeId, "TIMESTAMP_" + _TIME_UNITS[arrow_type.unit]))
    if pa.types.is_duration(arrow_type):
        return plc.DataType(getattr(plc.TypeId, "DURATION_" + _TIME_UNITS[arrow_type.unit]))
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return plc.DataType(plc.TypeId.STRING)
    return None


def to_column(arr: pa.Array, name: str, *, zero_copy: bool, log) -> plc.Column:
    """A pylibcudf column holding ``arr``: a view when ``zero_copy``, else one copy.

    ``zero_copy`` is only valid where the GPU can read the host buffers (unified
    memory, or registered and mapped). A slice (``arr.offset > 0``) moves only its own
    rows, so streaming a frame in row chunks copies each byte once. Types whose
    layouts differ (booleans are bit-packed in Arrow, one byte in libcudf; decimals,
    dictionaries, nested types) go through ``pylibcudf.Column.from_arrow``, which
    copies through pageable memory.
    """
    dtype = plc_type(arr.type)
    if dtype is None or len(arr) == 0:
        start = time.perf_counter()
        col = plc.Column.from_arrow(arr)
        if log is not None:
            log.record(f"{name} (converted {arr.type})", arr.nbytes, "host-to-device",
                       "pageable", time.perf_counter() - start)
        return col
    buffers = arr.buffers()
    # Start at a row that is a multiple of 512, so that the null mask starts on a
    # 64-byte boundary; the rows before the slice's first go in the column's offset.
    skip = arr.offset % 512
    first, rows = arr.offset - skip, len(arr) + skip

    def place(buf, start, nbytes, part):
        if zero_copy:
            if log is not None:
                log.record(f"{name}.{part}", nbytes, "host-to-device", "mapped", 0.0)
            return _device_view(buf, start, nbytes)
        return plc.gpumemoryview(_copy_buffer(buf.address + start, nbytes, f"{name}.{part}", log))

    mask = None
    if arr.null_count:
        mask = place(buffers[0], first // 8, -(-rows // 8), "validity")
    if dtype.id() == plc.TypeId.STRING:
        return _strings(arr, buffers, first, rows, skip, mask, place, zero_copy)
    width = arr.type.bit_width // 8
    data = place(buffers[1], first * width, rows * width, "data")
    return plc.Column(dtype, len(arr), data, mask, arr.null_count, skip, [])


def _strings(arr, buffers, first, rows, skip, mask, place, zero_copy) -> plc.Column:
    """A strings column: offsets ``[first, first + rows]`` and the characters they span.

    A copy moves only the slice's characters and rebases its offsets on the device;
    a view keeps the characters buffer whole, its offsets pointing into it.
    """
    wide = pa.types.is_large_string(arr.type)
    width, offsets_buf, chars_buf = (8 if wide else 4), buffers[1], buffers[2]
    bounds = np.frombuffer(offsets_buf, dtype=np.int64 if wide else np.int32,
                           count=first + rows + 1)
    lo = 0 if zero_copy else int(bounds[first])
    hi = int(bounds[first + rows])
    offsets = place(offsets_buf, first * width, (rows + 1) * width, "offsets")
    if lo:
        _rebase(offsets, rows + 1, wide, lo)
    chars = place(chars_buf, lo, hi - lo, "chars") if chars_buf is not None else None
    offsets_col = plc.Column(plc.DataType(plc.TypeId.INT64 if wide else plc.TypeId.INT32),
                             rows + 1, offsets, None, 0, 0, [])
    return plc.Column(plc.DataType(plc.TypeId.STRING), len(arr), chars, mask, arr.null_count,
                      skip, [offsets_col])


def _rebase(offsets: plc.gpumemoryview, count: int, wide: bool, lo: int) -> None:
    """Subtract ``lo`` from ``count`` offsets on the device (a copied slice's own chars
    start at zero)."""
    import cupy as cp

    mem = cp.cuda.UnownedMemory(offsets.ptr, count * (8 if wide else 4), offsets)
    view = cp.ndarray((count,), dtype=cp.int64 if wide else cp.int32,
                      memptr=cp.cuda.MemoryPointer(mem, 0))
    view -= lo
    cp.cuda.runtime.deviceSynchronize()  # readers may use any stream


def cupy_view(col):
    """A CuPy-readable view of a fixed-width pylibcudf column (no copy)."""
    import cupy as cp

    dtype = {plc.TypeId.INT8: "i1", plc.TypeId.INT16: "i2", plc.TypeId.INT32: "i4",
             plc.TypeId.INT64: "i8", plc.TypeId.UINT8: "u1", plc.TypeId.UINT16: "u2",
             plc.TypeId.UINT32: "u4", plc.TypeId.UINT64: "u8", plc.TypeId.FLOAT32: "f4",
             plc.TypeId.FLOAT64: "f8", plc.TypeId.BOOL8: "u1"}[col.type().id()]
    data = col.data()
    itemsize = int(dtype[1:])
    mem = cp.cuda.UnownedMemory(data.ptr, data.nbytes, col)
    ptr = cp.cuda.MemoryPointer(mem, col.offset() * itemsize)
    return cp.ndarray((col.size(),), dtype=dtype, memptr=ptr)


def synchronize() -> None:
    _check(cudart.cudaDeviceSynchronize(), "cudaDeviceSynchronize")


# ------------------------------------------------------------ key partitions
def row_slice(columns, first: int, count: int) -> list:
    """Views of rows ``[first, first + count)`` of device columns (nothing copied)."""
    (table,) = plc.copying.slice(plc.Table(columns), [first, first + count])
    return table.columns()


def partition_rows(chunks, keys: list[int], index: int, count: int) -> tuple[list, int]:
    """The rows of hash partition ``index`` of ``count`` from ``chunks`` (lists of
    columns, one chunk on the device at a time), hashed by the columns at ``keys``.

    Returns the partition's columns and row count; only the partition's rows stay on
    the device, so a frame far larger than the budget is split one chunk at a time.
    """
    bool8 = plc.DataType(plc.TypeId.BOOL8)
    i = plc.Scalar.from_py(index, plc.DataType(plc.TypeId.UINT32))
    pieces = []
    for columns in chunks:
        bucket = _buckets(columns, keys, count)
        mask = plc.binaryop.binary_operation(bucket, i, plc.binaryop.BinaryOperator.EQUAL, bool8)
        pieces.append(plc.stream_compaction.apply_boolean_mask(plc.Table(columns), mask))
        del bucket, mask
    table = pieces[0] if len(pieces) == 1 else plc.concatenate.concatenate(pieces)
    return table.columns(), table.num_rows()


def scatter(columns, keys: list[int], count: int, names: list[str], log,
            take=None) -> tuple[pa.Table, list[int]]:
    """One chunk's rows reordered by hash partition (the hash of :func:`partition_rows`),
    in their order within each, and copied to the host (into registered memory from
    ``take`` where it gives some): the arrow table and where each partition starts
    (and the end)."""
    if count == 1:  # one partition: the rows as they are
        ordered, offsets = plc.Table(columns), [0]
    else:
        int32 = plc.DataType(plc.TypeId.INT32)
        bucket = plc.unary.cast(_buckets(columns, keys, count), int32)
        # A stable sort by partition rather than libcudf's partition, whose order within
        # a partition is undefined: each partition keeps the frame's row order, which
        # first(), last() and the like read as polars does. The offsets come from
        # partitioning the bucket column alone.
        _, offsets = plc.partitioning.partition(plc.Table([bucket]), bucket, count)
        ordered = plc.sorting.stable_sort_by_key(plc.Table(columns), plc.Table([bucket]),
                                                 [plc.types.Order.ASCENDING],
                                                 [plc.types.NullOrder.AFTER])
        del bucket
    from workbench.frame.fetch import staged  # fetch builds on this module

    start = time.perf_counter()
    host, kind = staged(ordered.columns(), names, take)
    log.record("split: partitions to the host", host.nbytes, "device-to-host", kind,
               time.perf_counter() - start)
    offsets = list(offsets)
    if len(offsets) == count:  # the starts only: add the end
        offsets.append(ordered.num_rows())
    return host, offsets


def _buckets(columns, keys: list[int], count: int) -> plc.Column:
    """Each row's hash partition: murmur3 of the key columns modulo ``count`` (uint32)."""
    uint32 = plc.DataType(plc.TypeId.UINT32)
    hashed = plc.hashing.murmurhash3_x86_32(plc.Table([columns[k] for k in keys]))
    return plc.binaryop.binary_operation(hashed, plc.Scalar.from_py(count, uint32),
                                         plc.binaryop.BinaryOperator.PYMOD, uint32)

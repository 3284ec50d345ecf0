"""Host pages the GPU may pin: whole pages that hold one frame buffer and nothing else.

CUDA treats a registered (pinned) page as pinned for every copy that touches it, and
refuses a copy that starts in registered memory and runs past it. So a registered
page shared with other memory breaks copies of that other memory, and registering
only part of a buffer breaks copies of slices of it. Frames avoid both by
registering whole buffers, rounded out to page boundaries, and only buffers that own
those pages: large allocations of jemalloc, mimalloc and ``mmap`` (Arrow's and
polars' allocators) start on a page boundary and own their pages; any other large
buffer (from the C heap, e.g. NumPy's) is first copied into an anonymous mapping
of its own. A buffer that is a slice of a larger allocation and happens to start on
a page boundary is taken to own its pages too: rare, and the one case not guarded.
Everything here runs on the CPU.
"""

from __future__ import annotations

import bisect
import mmap
import os
import threading

import numpy as np
import pyarrow as pa

PAGE = os.sysconf("SC_PAGE_SIZE")
# Registering small buffers costs a driver call each and gains nothing measurable.
MIN_PIN_BYTES = 1 << 20


def page_ranges(buffers) -> list[tuple[int, int]]:
    """Merged ``(start, length)`` page ranges covering the large buffers."""
    spans = sorted(
        (b.address // PAGE * PAGE, -(-(b.address + b.size) // PAGE) * PAGE)
        for b in buffers if b is not None and b.size >= MIN_PIN_BYTES
    )
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e - s) for s, e in merged]


def anonymous(nbytes: int) -> np.ndarray:
    """Bytes of fresh memory on whole pages of their own (an anonymous mapping, at
    least one page), as a uint8 array that keeps the mapping alive."""
    return np.frombuffer(mmap.mmap(-1, max(PAGE, -(-nbytes // PAGE) * PAGE)), dtype=np.uint8)


def _own_pages(buf: pa.Buffer) -> pa.Buffer:
    """``buf`` copied into an anonymous mapping: page-aligned, its pages its own."""
    pages = anonymous(buf.size)
    pages[:buf.size] = np.frombuffer(buf, dtype=np.uint8)
    return pa.py_buffer(pages).slice(0, buf.size)


def dedicated(table: pa.Table) -> tuple[pa.Table, list[pa.Buffer], int]:
    """The table with its large buffers on pages of their own, ready to register.

    Returns the table (the same one when nothing had to move), the buffers that may
    be registered, and the bytes copied. Nested and dictionary columns keep their
    buffers and are not registered (their children and dictionaries share
    allocations in ways not checked here).
    """
    columns, pinnable, copied = [], [], 0
    for col in table.columns:
        arr = col.chunk(0)
        if arr.type.num_fields or pa.types.is_dictionary(arr.type):
            columns.append(col)  # nested or dictionary: buffers() is not the whole story
            continue
        buffers = arr.buffers()
        moved = []
        for buf in buffers:
            if buf is not None and buf.size >= MIN_PIN_BYTES and buf.address % PAGE:
                buf = _own_pages(buf)
                copied += buf.size
            moved.append(buf)
        if any(a is not b for a, b in zip(moved, buffers)):
            arr = pa.Array.from_buffers(arr.type, len(arr), moved, null_count=arr.null_count,
                                        offset=arr.offset)
            col = pa.chunked_array([arr], type=arr.type)
        pinnable += [b for b in moved if b is not None and b.size >= MIN_PIN_BYTES]
        columns.append(col)
    if not copied:
        return table, pinnable, 0
    return pa.Table.from_arrays(columns, schema=table.schema), pinnable, copied


class Registry:
    """The host ranges registered with the driver (disjoint, page-aligned), by start.

    Every host -> device copy asks it which part of a buffer is registered, and a
    split's pool adds hundreds of blocks: the starts are kept sorted, so a lookup is
    a bisection, not a walk over every range.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._starts: list[int] = []
        self._lengths: dict[int, int] = {}
        self.nbytes = 0

    def add(self, start: int, length: int) -> None:
        with self._lock:
            if start in self._lengths:
                raise ValueError(f"range at {start:#x} is registered already")
            bisect.insort(self._starts, start)
            self._lengths[start] = length
            self.nbytes += length

    def remove(self, start: int) -> bool:
        """Forget the range at ``start``; whether there was one."""
        with self._lock:
            length = self._lengths.pop(start, None)
            if length is None:
                return False
            del self._starts[bisect.bisect_left(self._starts, start)]
            self.nbytes -= length
            return True

    def span(self, address: int, size: int) -> tuple[int, int]:
        """The largest registered part of ``[address, address + size)`` (empty when none).

        >>> r = Registry(); r.add(4096, 8192)
        >>> r.span(0, 6000), r.span(20000, 10)
        ((4096, 6000), (20000, 20000))
        """
        end, best = address + size, (address, address)
        with self._lock:
            i = max(0, bisect.bisect_right(self._starts, address) - 1)
            while i < len(self._starts) and self._starts[i] < end:
                start = self._starts[i]
                lo, hi = max(start, address), min(start + self._lengths[start], end)
                if hi - lo > best[1] - best[0]:
                    best = (lo, hi)
                i += 1
        return best

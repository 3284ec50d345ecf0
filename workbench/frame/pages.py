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

import mmap
import os

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

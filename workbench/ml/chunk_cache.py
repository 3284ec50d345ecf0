"""One pass of feature chunks kept in host memory, replayed by the passes after it.

A streamed solver reads its chunks many times (a moments pass, then one pass per
Newton or Lloyd step). The first pass assembles each chunk from the frame's columns:
one copy and one cast per column, the train/test selection hashed and compacted. The
result is the same every time, so :class:`ChunkCache` keeps it: each chunk's ``X`` and
``y`` as they came out, in host memory (page-locked when they are device chunks).
Every later pass is then a single copy per chunk into one of two device buffers, on
its own stream, so the next chunk crosses the bus while the solver works on this one;
on unified memory the GPU reads the cached chunk in place.

On the GPU the first pass writes its chunks one after the other into one host block,
page-locked before the pass: its pages are made by one thread per core (writing a
byte of each), then registered in place, so each chunk comes off the device at the
pinned copy speed. Measured on the H200 for a 1.4 GB cache, page-locked allocations
chunk by chunk take 0.88 s, one page-locked allocation 0.55 s, copies into pageable
memory 0.22 s and registering written memory 0.03 s (``benchmarks/chunk_passes.py``).

The pass that records the training rows can record the rows it holds out too, into a
second cache in the same block (``record(..., held=...)``): the metrics after a fit
then replay them instead of assembling every chunk once more.

The chunks replay with the same rows, order and ``start`` as the first pass, so a
cached fit gives exactly the answer of an uncached one; class codes are kept in the
smallest integer type that holds them (int8 up to 128 classes: a quarter of int32's
bytes), the same values. The cache is built only when
the host has room for it (a quarter of the available memory); otherwise every pass
assembles its chunks as before.
"""

from __future__ import annotations

import mmap
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: share of the available host memory the cache may take
HOST_SHARE = 4
#: each recorded array starts on a multiple of this many bytes of the cache's block
ALIGN = 256


def code_dtype(classes: int) -> np.dtype:
    """The smallest signed integer type holding class codes ``0..classes-1``."""
    for t in (np.int8, np.int16, np.int32):
        if classes - 1 <= np.iinfo(t).max:
            return np.dtype(t)
    return np.dtype(np.int64)


def fits_on_host(nbytes: int) -> bool:
    """Whether ``nbytes`` of cache leave the host three quarters of its available memory."""
    import psutil

    return nbytes <= psutil.virtual_memory().available // HOST_SHARE


class ChunkCache:
    """Chunks ``(X, y, start)`` recorded while one pass runs (:meth:`record`), then replayed."""

    def __init__(self, device: bool, unified: bool = False, log=None, target_dtype=None,
                 block: _Block | None = None, merge_rows: int = 0):
        self.device, self.unified, self.log = device, unified, log
        # Copied replays join consecutive chunks up to this many rows (the held-out
        # parts of a training pass are a fifth of a chunk each: fewer, larger ones
        # cost fewer kernel launches and waits downstream).
        self.merge_rows = int(merge_rows)
        self.target_dtype = None if target_dtype is None else np.dtype(target_dtype)
        self.parts: list[tuple[np.ndarray, np.ndarray | None, int]] = []
        self.complete = False
        self._block = block  # device chunks' host block, shared with a held-out cache

    @property
    def nbytes(self) -> int:
        """Bytes held: what one replay moves."""
        return sum(X.nbytes + (0 if y is None else y.nbytes) for X, y, _ in self.parts)

    # ------------------------------------------------------------ recording
    def record(self, chunks, held: ChunkCache | None = None):
        """Yield ``chunks`` unchanged while keeping a host copy of each; the cache is
        complete only when the pass ran to its end. ``held`` (a cache on the same block)
        is filled by the same pass through its :meth:`keep` and completes with it."""
        for cache in (self, held):
            if cache is not None:
                cache.parts, cache.complete = [], False
        if self._block is not None:
            self._block.start()
        for X, y, start in chunks:
            self.keep(X, y, start)
            yield X, y, start
        self.complete = True
        if held is not None:
            held.complete = True

    def keep(self, X, y, start: int) -> None:
        """Keep a host copy of one chunk."""
        kept_y = None if y is None else self._keep(self._narrow(y))
        self.parts.append((self._keep(X), kept_y, start))

    def _narrow(self, y):
        """Class codes in ``target_dtype`` (the same values in fewer bytes)."""
        if self.target_dtype is None or y.dtype == self.target_dtype:
            return y
        return y.astype(self.target_dtype)

    def _keep(self, a) -> np.ndarray:
        if not self.device:
            return np.array(a, copy=True)
        import cupy as cp

        host = None if self._block is None else self._block.take(a.shape, a.dtype)
        if host is None:  # beyond the block: its own page-locked memory, freed with the cache
            mem = cp.cuda.PinnedMemoryPointer(cp.cuda.PinnedMemory(max(a.nbytes, 1)), 0)
            host = np.frombuffer(mem, a.dtype, a.size).reshape(a.shape)
        a.get(out=host)  # synchronous: the chunk's device buffer is reused next
        return host

    # ------------------------------------------------------------ replaying
    def replay(self):
        """The recorded chunks again: host arrays as they are, device ones copied in."""
        if not self.device:
            yield from self.parts
            return
        if self.unified:
            from workbench.ml.device_chunks import _mapped

            for X, y, start in self.parts:
                yield _mapped(X), None if y is None else _mapped(y), start
            return
        yield from self._copied()

    def batches(self) -> list[list[int]]:
        """The recorded chunks a copied replay hands out together: runs of consecutive
        ones of at most ``merge_rows`` rows (each alone without ``merge_rows``)."""
        out: list[list[int]] = []
        rows = 0
        for i, (X, _, _) in enumerate(self.parts):
            if out and rows + len(X) <= self.merge_rows:
                out[-1].append(i)
                rows += len(X)
            else:
                out.append([i])
                rows = len(X)
        return out

    def _copied(self):
        """Double-buffered: chunk i+1 is copied on a second stream while chunk i is used."""
        import cupy as cp

        batches = self.batches()
        rows = max(sum(len(self.parts[i][0]) for i in b) for b in batches)
        X0, y0 = self.parts[0][0], self.parts[0][1]
        buffers = [(cp.empty((rows,) + X0.shape[1:], X0.dtype),
                    None if y0 is None else cp.empty(rows, y0.dtype)) for _ in range(2)]
        compute, copy = cp.cuda.get_current_stream(), cp.cuda.Stream(non_blocking=True)
        released: list = [None, None]  # per buffer: the compute stream is done with it
        began, moved = time.perf_counter(), 0

        def load(i):
            nonlocal moved
            b = i % 2
            if released[b] is not None:
                copy.wait_event(released[b])
            at = 0
            for k in batches[i]:  # consecutive rows of one buffer
                X, y, _ = self.parts[k]
                _copy_in(buffers[b][0][at:at + len(X)], X, copy)
                if y is not None:
                    _copy_in(buffers[b][1][at:at + len(y)], y, copy)
                moved += X.nbytes + (0 if y is None else y.nbytes)
                at += len(X)
            dX = buffers[b][0][:at]
            dy = None if y0 is None else buffers[b][1][:at]
            return dX, dy, self.parts[batches[i][0]][2], copy.record()

        try:
            ahead = load(0)
            for i in range(len(batches)):
                dX, dy, start, ready = ahead
                compute.wait_event(ready)
                if i + 1 < len(batches):
                    ahead = load(i + 1)
                yield dX, dy, start
                released[i % 2] = compute.record()
            compute.synchronize()
        finally:
            copy.synchronize()  # no copy may land in the buffers once they are given back
        if self.log is not None:
            # The time is the whole pass: the copies overlap the solver's work.
            self.log.record(f"cached feature chunks, one pass ({len(batches)} chunks)", moved,
                            "host-to-device", "pinned", time.perf_counter() - began)


class _Block:
    """One host block the recorded chunks are written into in turn, page-locked in
    place before the first pass (where the driver agrees; else it stays pageable, which
    records and replays correctly at the pageable copy speed) and unlocked when it goes."""

    def __init__(self, capacity: int):
        self.data = np.empty(capacity, np.uint8)  # no pages are made until written
        self.used = 0
        self.locked: list = []
        self._started = False

    def start(self) -> None:
        """Empty for a new pass; page-locked the first time."""
        self.used = 0
        if self._started or not len(self.data):
            return
        self._started = True
        from workbench.frame import device

        _make_pages(self.data)
        # No pinned limit here: the cache's room was checked against the host's
        # available memory (fits_on_host); the frames' limit is for their buffers.
        self.locked, _ = device.register([(self.data.ctypes.data, len(self.data))], limit=None)

    def take(self, shape, dtype) -> np.ndarray | None:
        """An array of ``shape`` and ``dtype`` in the next free bytes, or None when full."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        start = -(-self.used // ALIGN) * ALIGN
        if start + nbytes > len(self.data):
            return None
        self.used = start + nbytes
        return self.data[start:start + nbytes].view(dtype).reshape(shape)

    def __del__(self):
        if self.locked:
            from workbench.frame import device

            device.unregister(self.locked)


def _make_pages(data: np.ndarray) -> None:
    """Write a byte of every page of ``data``, one slice per core at once: the kernel
    then makes the pages in parallel, where registering untouched memory makes them one
    after the other (NumPy lets go of the GIL while it writes)."""
    page, workers = mmap.PAGESIZE, os.cpu_count() or 1
    step = -(-len(data) // workers // page) * page

    def touch(lo: int) -> None:
        data[lo:lo + step:page] = 0

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(touch, range(0, len(data), step)))


def _copy_in(dst, src: np.ndarray, stream) -> None:
    """Asynchronous host-to-device copy of a page-locked ``src`` on ``stream``."""
    import cupy as cp

    cp.cuda.runtime.memcpyAsync(dst.data.ptr, src.ctypes.data, src.nbytes,
                                cp.cuda.runtime.memcpyHostToDevice, stream.ptr)

"""Registered host memory for a split's cut rows, taken and given back query after query.

A split cuts its inputs into host partitions (:mod:`workbench.frame.cut`) that live only
while it runs: each byte crosses device -> host once and host -> device once. Written
into fresh memory, every page faults in on its first write and each crossing hops
through the pinned staging buffers (a host copy more each way). Written into registered
memory, both crossings run at the bus's rate and the GPU reads the pieces where they
lie. Registering costs ~0.5 s per GiB, so the blocks are kept: power-of-two sizes,
given back when the last array over them is dropped, up to ``keep`` bytes kept free
(:func:`keep_bytes`). The pinned host memory ``wb.monitor`` shows counts them.

The pool is the workbench's own rather than a pinned-memory pool of RMM: its blocks
must be in the registry of pinned ranges that every host -> device copy consults
(:func:`workbench.frame.device.pinned_span`) and count against the policy's pinned
limit, like the frames' own pages. The logic runs on the CPU; ``register`` and
``unregister`` are the device module's.
"""

from __future__ import annotations

import threading
import weakref
from typing import Callable

import numpy as np

from workbench.frame.pages import anonymous

#: the smallest block: a split's buffers are megabytes; smaller ones share no block
MIN_BLOCK = 1 << 20


def block_size(nbytes: int) -> int:
    """The block a buffer of ``nbytes`` takes: the next power of two, at least 1 MiB.

    >>> block_size(1), block_size(1 << 20), block_size((1 << 20) + 1)
    (1048576, 1048576, 2097152)
    """
    return max(MIN_BLOCK, 1 << (max(1, nbytes) - 1).bit_length())


class HostPool:
    """Registered host blocks, reused.

    ``register(ranges, limit)`` pins ranges and returns ``(done, skipped)``;
    ``unregister(ranges)`` undoes it. ``limit`` caps the process's pinned bytes (the
    frames' and the pool's together), ``keep`` the free bytes kept between uses.
    """

    def __init__(self, keep: int, limit: int | None,
                 register: Callable, unregister: Callable):
        self.keep, self.limit = keep, limit
        self._register, self._unregister = register, unregister
        self._free: dict[int, list[np.ndarray]] = {}
        self._lock = threading.Lock()
        self.free_bytes = 0
        self.leased_bytes = 0
        self.made = 0  # blocks registered over the pool's life (reuse keeps it low)
        self.reused = 0  # takes a free block served

    def take(self, nbytes: int, *, reuse_only: bool = False) -> np.ndarray | None:
        """``nbytes`` of registered memory (a uint8 array), or None when the pinned
        limit leaves no room (with ``reuse_only``, when no free block fits: for
        answers, written once and read on the CPU, registering fresh pages costs
        more than it saves). The block returns to the pool when the array, and
        everything viewing it, is gone."""
        size = block_size(nbytes)
        block = self._reuse(size)
        if block is None and not reuse_only:
            block = self._make(size)
        if block is None:
            return None
        lease = block[:nbytes]  # an array of its own: its death gives the block back
        done = weakref.finalize(lease, self._give_back, block)
        done.atexit = False  # at exit the process's registrations go with it
        with self._lock:
            self.leased_bytes += block.size
        return lease

    def _reuse(self, size: int) -> np.ndarray | None:
        """A free block of ``size``, else of the next sizes up to four times it (a
        block a little large beats registering a new one: ~0.5 s per GiB)."""
        with self._lock:
            for bigger in (size, 2 * size, 4 * size):
                blocks = self._free.get(bigger)
                if blocks:
                    self.free_bytes -= bigger
                    self.reused += 1
                    return blocks.pop()
        return None

    def _make(self, size: int) -> np.ndarray | None:
        for attempt in range(2):
            block = anonymous(size)
            done, _ = self._register([(block.ctypes.data, size)], self.limit)
            if done:
                with self._lock:
                    self.made += 1
                return block
            if attempt == 0 and not self.trim(0):
                return None  # nothing free to let go of: the limit is the frames'
        return None

    def _give_back(self, block: np.ndarray) -> None:
        size = block.size
        with self._lock:
            self.leased_bytes -= size
            if self.free_bytes + size <= self.keep:
                self._free.setdefault(size, []).append(block)
                self.free_bytes += size
                return
        self._unregister([(block.ctypes.data, size)])

    def trim(self, keep: int) -> int:
        """Let go of free blocks, largest first, until at most ``keep`` bytes are free;
        the bytes let go of."""
        dropped = []
        with self._lock:
            for size in sorted(self._free, reverse=True):
                blocks = self._free[size]
                while blocks and self.free_bytes > keep:
                    dropped.append(blocks.pop())
                    self.free_bytes -= size
        for block in dropped:
            self._unregister([(block.ctypes.data, block.size)])
        return sum(b.size for b in dropped)


_shared: HostPool | None = None
_shared_lock = threading.Lock()


def keep_bytes(policy) -> int:
    """Free bytes the pool keeps under ``policy``: four device budgets (a split's cut
    rows and a partition's answers at a 1 GB budget took ~3 GB in the query corpus),
    at most a sixteenth of the host's memory (an eighth of the pinned limit, half of
    it): on a machine shared by a class, idle registered memory is memory no one
    else can page in.

    >>> from types import SimpleNamespace as P
    >>> keep_bytes(P(device_memory=1 << 30, pinned_limit=64 << 30)) == 4 << 30
    True
    >>> keep_bytes(P(device_memory=8 << 30, pinned_limit=64 << 30)) == 8 << 30
    True
    """
    return min(4 * policy.device_memory, policy.pinned_limit // 8)


def shared(policy) -> HostPool | None:
    """The process's pool under ``policy`` (None unless host buffers are pinned: with
    unified memory the GPU reads any host page, and with no GPU nothing is cut).
    Within the pinned limit, it keeps :func:`keep_bytes` free."""
    if policy.host_buffers != "pinned" or not policy.device_memory or not policy.pinned_limit:
        return None
    global _shared
    with _shared_lock:
        if _shared is None:
            from workbench.frame import device

            _shared = HostPool(0, None, device.register, device.unregister)
        _shared.limit, _shared.keep = policy.pinned_limit, keep_bytes(policy)
    return _shared

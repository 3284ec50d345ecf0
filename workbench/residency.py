"""Device-resident copies of frame columns, kept until the frame changes or the room is needed.

On discrete GPUs the first GPU use of a column copies it once (at pinned speed) and
later views and queries reuse that copy. Entries are keyed by (frame, column,
version), so a changed column is never served stale. When a new column does not
fit the resident limit, the least recently used columns (of any frame) are dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class DoesNotFit(MemoryError):
    """The columns a query needs are larger than the room for resident data."""

    MARKER = "workbench: input larger than the resident-memory limit"

    def __init__(self, needed: int, limit: int):
        super().__init__(f"{self.MARKER} ({needed} bytes needed, limit {limit} bytes)")
        self.needed, self.limit = needed, limit


class ResidencyCache:
    """An LRU map (frame token, column, version) -> device column, bounded in bytes."""

    def __init__(self, limit: int):
        self.limit = int(limit)
        self._entries: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self._lock = threading.RLock()

    @property
    def nbytes(self) -> int:
        return sum(n for _, n in self._entries.values())

    def get(self, key):
        with self._lock:
            item = self._entries.get(key)
            if item is None:
                return None
            self._entries.move_to_end(key)
            return item[0]

    def reserve(self, needed: int, keep: set) -> None:
        """Make room for ``needed`` more bytes, evicting LRU entries not in ``keep``."""
        with self._lock:
            if needed + sum(n for k, (_, n) in self._entries.items() if k in keep) > self.limit:
                raise DoesNotFit(needed, self.limit)
            for key in list(self._entries):
                if self.nbytes + needed <= self.limit:
                    break
                if key not in keep:
                    del self._entries[key]

    def put(self, key, column, nbytes: int) -> None:
        with self._lock:
            self._entries[key] = (column, int(nbytes))
            self._entries.move_to_end(key)

    def drop(self, token: int, column: str | None = None) -> None:
        """Forget a frame's columns (all, or one)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == token and (column is None or k[1] == column)]:
                del self._entries[key]

    def holds(self, token: int, column: str, version: int) -> bool:
        return (token, column, version) in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

"""Device-resident copies of frame columns, kept until the frame changes or the room is needed.

On discrete GPUs the first GPU use of a column copies it once (at pinned speed) and
later views and queries reuse that copy. Entries are keyed by (frame, column,
version), so a changed column is never served stale. When a new column does not
fit the resident limit, the least recently used columns (of any frame) are dropped.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

from workbench.errors import DoesNotFit

__all__ = ["ResidencyCache", "DoesNotFit", "cache", "held"]


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


# One cache per process, for the session it was sized for: a new session (another
# budget) starts with an empty one.
_owner: weakref.ref | None = None
_cache: ResidencyCache | None = None
_owner_lock = threading.Lock()


def cache(session) -> ResidencyCache:
    """The resident columns of ``session``'s frames, limited to ``session.resident_limit``."""
    global _owner, _cache
    with _owner_lock:
        if _cache is None or _owner is None or _owner() is not session:
            _owner, _cache = weakref.ref(session), ResidencyCache(session.resident_limit)
        return _cache


def held(session) -> ResidencyCache | None:
    """``session``'s cache when it has one (nothing is created), else None."""
    with _owner_lock:
        return _cache if _owner is not None and _owner() is session else None

"""Accounting of every CPU<->GPU copy the workbench makes.

Each copy is one :class:`Transfer`; a session keeps them in a :class:`TransferLog`
so tests can assert zero bytes for zero-copy views and exactly one copy for a
resident view used many times, and users can see where their time went.

Kinds: ``pinned`` and ``pageable`` are copies; ``mapped`` records a zero-copy view
(the GPU reads host memory in place), kept so the log shows what the GPU used, but
not counted as copied bytes.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from workbench.sizes import format_bytes

DIRECTIONS = ("host-to-device", "device-to-host")
KINDS = ("pinned", "pageable", "mapped")


@dataclass(frozen=True)
class Transfer:
    """One copy between host and device memory."""

    what: str
    nbytes: int
    direction: str
    kind: str
    seconds: float

    @property
    def gbps(self) -> float:
        """Effective bandwidth in GB/s (0 when the copy took no measurable time)."""
        return self.nbytes / self.seconds / 1e9 if self.seconds > 0 else 0.0


class TransferLog:
    """A thread-safe, append-only list of transfers with small summaries."""

    def __init__(self) -> None:
        self._items: list[Transfer] = []
        self._lock = threading.Lock()

    def record(self, what: str, nbytes: int, direction: str, kind: str, seconds: float) -> Transfer:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        item = Transfer(what, int(nbytes), direction, kind, float(seconds))
        with self._lock:
            self._items.append(item)
        return item

    @contextmanager
    def timed(self, what: str, nbytes: int, direction: str, kind: str):
        """Record the copy done inside the ``with`` block, timed with a host clock.

        The block must finish its copy before it ends (synchronize the stream).
        """
        start = time.perf_counter()
        yield
        self.record(what, nbytes, direction, kind, time.perf_counter() - start)

    def __iter__(self):
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):
        return self._items[i]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def total_bytes(self, direction: str | None = None, kind: str | None = None) -> int:
        """Bytes copied, optionally only in one direction and/or of one kind.

        Zero-copy views (kind ``"mapped"``) are not copies: they count only when
        ``kind="mapped"`` is asked for.
        """
        return sum(
            t.nbytes
            for t in self
            if (direction is None or t.direction == direction)
            and (t.kind == kind if kind is not None else t.kind != "mapped")
        )

    def since(self, mark: int) -> list[Transfer]:
        """Transfers recorded after ``mark = len(log)`` was taken."""
        return self._items[mark:]

    def to_polars(self):
        """The log as a polars DataFrame (one row per copy)."""
        import polars as pl

        schema = {"what": pl.String, "nbytes": pl.Int64, "direction": pl.String,
                  "kind": pl.String, "seconds": pl.Float64}
        return pl.DataFrame([asdict(t) for t in self], schema=schema)

    def summary(self) -> str:
        """One line per direction and kind: count, bytes and effective bandwidth."""
        groups: dict[tuple[str, str], list[Transfer]] = {}
        for t in self:
            groups.setdefault((t.direction, t.kind), []).append(t)
        if not groups:
            return "no CPU<->GPU copies"
        lines = []
        for (direction, kind), items in sorted(groups.items()):
            nbytes = sum(t.nbytes for t in items)
            if kind == "mapped":
                lines.append(f"{direction} mapped: {len(items)} zero-copy views, "
                             f"{format_bytes(nbytes, 2)} read in place (not copied)")
                continue
            # Only copies timed apart give a bandwidth (a query's result copy is not).
            timed = [t for t in items if t.seconds > 0]
            secs = sum(t.seconds for t in timed)
            rate = f", {sum(t.nbytes for t in timed) / secs / 1e9:.1f} GB/s" if secs > 0 else ""
            lines.append(f"{direction} {kind}: {len(items)} copies, {format_bytes(nbytes, 2)}{rate}")
        return "\n".join(lines)

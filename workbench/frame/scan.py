"""How a Frame is scanned by polars: the IO source behind ``Frame.lazy()`` and its GPU feed.

polars' CPU engine gets the frame's zero-copy polars view (projected, filtered; in the
batches its streaming engine asks for, which spreads them over its threads). The
GPU engine, while :func:`workbench.collect` runs it, gets what the active
:class:`GPUFeed` says:

* ``resident=True``: the frame's device-resident columns (copied once per column,
  at pinned speed, then reused; views on unified memory);
* the streaming executor, when the columns do not fit the resident limit: a sized
  sequence of device chunks of the partition size (:class:`DeviceChunks`), each copied
  from the frame's pinned host buffers only when the executor asks for it.

The GPU engine called directly by polars (no feed) gets the host view and copies it
itself.

Inside :func:`partitioning` (the engine's key split, see :mod:`workbench.engine.plan`)
a scan yields only the rows of one hash partition of its key columns (or one range of
its rows, for plans that work row by row). On the GPU,
resident columns are cut on the device; columns that are not resident are cut in
one pass when the first partition asks for them (see :mod:`workbench.frame.cut`),
and each partition then goes to the device once more: one partition's worth of
device memory is used, not the whole frame's, and the inputs cross twice, not once
per partition. The feed is set by the engine for the duration of one GPU query, process-wide
(cudf-polars may call the source from its own threads); GPU collects run one at a time.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import polars as pl

from workbench.errors import DoesNotFit
from workbench.frame.cut import ManyKept, Partition, one_or, range_of, scattered
from workbench.frame.table import as_polars


@dataclass(frozen=True)
class GPUFeed:
    """What Frame scans hand the GPU engine during one query.

    Attributes
    ----------
    executor : {"in-memory", "streaming"}
        The cudf-polars executor running the query.
    resident : bool
        Hand the frame's resident device columns (else stream chunks).
    table : callable
        ``table(columns, names, schema, rows)``: the engine's DataFrame over pylibcudf
        columns (given by the engine, the only code that knows its containers).
    """

    executor: str
    resident: bool
    table: Callable



_active: GPUFeed | None = None
_partition: Partition | None = None
_serving: tuple | None = None
_lock = threading.Lock()


@contextmanager
def feeding(feed: GPUFeed):
    """Scans of Frames feed the GPU engine as ``feed`` says inside the block."""
    global _active
    with _lock:
        _active = feed
        try:
            yield feed
        finally:
            _active = None


@contextmanager
def serving(frame, table: Callable):
    """Inside the block, scans of ``frame`` yield ``table(names)`` (one chunk's columns)."""
    global _serving
    _serving = (frame, table)
    try:
        yield
    finally:
        _serving = None


@contextmanager
def partitioning(partition: Partition):
    """Scans of the Frames in ``partition.keys`` yield one partition's rows inside the block."""
    global _partition
    _partition = partition
    try:
        yield partition
    finally:
        _partition = None


def source(frame):
    """The polars IO-source function of ``frame`` (see the module docstring)."""
    def scan(with_columns, predicate, n_rows, batch_size):
        names = list(with_columns) if with_columns is not None else frame.columns
        if _serving is not None and _serving[0] is frame:
            return iter([_serving[1](names)])
        feed = _active
        part = _partition
        if part is not None and id(frame) in part.keys:
            return _partition_rows(frame, names, predicate, feed, part, n_rows)
        # While a feed is active only cudf-polars calls this: it asks for
        # raise_on_fail, so polars' CPU engine never runs the plan meanwhile.
        if feed is not None and feed.resident:
            try:
                return iter([_resident(frame, names, feed)])
            except DoesNotFit:
                if feed.executor != "streaming":
                    raise
        streaming = feed is not None and feed.executor == "streaming"
        if streaming and predicate is None and n_rows is None and _copies_in_place(frame, names):
            return DeviceChunks(frame, names, feed)
        df = frame._polars_columns(names)
        if predicate is not None:
            df = df.filter(predicate)
        if n_rows is not None:
            df = df.head(n_rows)
        if streaming:
            step = chunk_rows(frame, df.estimated_size() // max(1, df.height))
        elif batch_size:
            # polars' CPU streaming engine asks for batches: handed the frame whole, it ran
            # a group-by 2.6x slower than over the same rows as a polars DataFrame
            step = batch_size
        else:
            return iter([df])
        return (df.slice(start, step) for start in range(0, max(df.height, 1), step))

    scan.frame_ref = weakref.ref(frame)  # how a plan's scan is traced back to its Frame
    return scan


def _partition_rows(frame, names, predicate, feed, part: Partition, n_rows=None):
    keys = list(part.keys[id(frame)])
    if not keys:
        return _range_rows(frame, names, predicate, feed, part, n_rows)
    if feed is None:  # polars on the CPU
        df = frame._polars_columns(list(dict.fromkeys(names + keys)))
        mask = df.select(pl.struct(keys).hash(seed=0) % part.count == part.index).to_series()
        df = df.filter(mask).select(names)
        return iter([df.filter(predicate) if predicate is not None else df])
    from workbench.frame import device
    from workbench.memory import consumers

    wanted = list(dict.fromkeys(names + keys))
    chunks = None
    if frame._host is None or _fits_resident(frame, wanted):
        try:
            chunks = [frame._device_columns(wanted)]
        except DoesNotFit:
            if frame._host is None:
                raise
    if part.only_one and (chunks is not None or not _copies_in_place(frame, wanted)):
        raise ManyKept("only a cut of host rows runs as one partition")
    if chunks is None and _copies_in_place(frame, wanted):
        pieces = scattered(frame, wanted, keys, feed, part)
        piece = one_or(pieces, frame, wanted, part)
        columns = piece.on_device(names, frame._session.transfers, frame._unified)
        return iter([feed.table(columns, names, frame.schema, len(piece))])
    if chunks is None:
        chunks = DeviceChunks(frame, wanted, feed, share=consumers.CUT_SHARE).columns()
    picked, rows = device.partition_rows(chunks, [wanted.index(k) for k in keys], part.index,
                                         part.count)
    keep = [picked[wanted.index(n)] for n in names]
    return iter([feed.table(keep, names, frame.schema, rows)])


def rows_as_polars(frame, names: list[str], first: int, count: int) -> pl.DataFrame:
    """Rows ``first`` to ``first + count`` of ``names`` as polars: a slice of the frame's
    polars view when it has one, else only those rows converted. A few sample rows must
    not cost the conversion of every string of the frame (a second or more at 3e7 rows)."""
    if frame._polars is not None or (names and all(n in frame._views for n in names)):
        return frame._polars_columns(names).slice(first, count)
    return as_polars(frame._table.slice(first, count).select(names))


def _range_rows(frame, names, predicate, feed, part: Partition, n_rows):
    """The rows of one range: on the GPU, views of resident columns or one copy of the
    range's host rows; on the CPU (no feed) a slice of the polars view."""
    first, count = range_of(len(frame), part)
    if feed is None or (frame._host is not None and not _copies_in_place(frame, names)):
        df = rows_as_polars(frame, names, first, count)
        df = df.filter(predicate) if predicate is not None else df
        return iter([df.head(n_rows) if n_rows is not None else df])
    from workbench.frame import device

    if n_rows is not None and predicate is None:
        count = min(count, n_rows)  # a limit polars pushed down; the split keeps it too
    if frame._host is None or _fits_resident(frame, names):
        columns = device.row_slice(frame._device_columns(names), first, count)
    else:
        columns = host_rows_on_device(frame, names, first, count)
    return iter([feed.table(columns, names, frame.schema, count)])


def host_rows_on_device(frame, names, first: int, count: int) -> list:
    """Rows ``first`` to ``first + count`` of the frame's host columns ``names`` as
    pylibcudf columns: views on unified memory, else one copy of those rows only."""
    from workbench.frame import device

    log, unified = frame._session.transfers, frame._unified
    return [device.to_column(frame._table.column(n).chunk(0).slice(first, count), n,
                             zero_copy=unified, log=log) for n in names]


def _fits_resident(frame, names) -> bool:
    from workbench.frame import residency

    table = frame._table
    needed = sum(table.column(n).nbytes for n in names)
    held = residency.cache(frame._session)
    return needed <= held.limit - held.nbytes


def _resident(frame, names, feed: GPUFeed):
    """The engine's DataFrame over the frame's resident (or unified) columns."""
    if any(isinstance(frame.schema[n], (pl.Categorical, pl.Enum)) for n in names):
        # cudf-polars builds categoricals itself: let it copy this scan.
        return frame._polars_columns(names)
    return feed.table(frame._device_columns(names), names, frame.schema, len(frame))


def chunk_rows(frame, row_bytes: int, share: int | None = None) -> int:
    """Rows per streaming chunk: the executor's partition size (``STREAM_SHARE``, or
    ``share``, of the device memory or budget), a multiple of 512 so slices keep null
    masks aligned."""
    from workbench.memory import consumers

    partition = max(1, frame._session.policy.device_memory // (share or consumers.STREAM_SHARE))
    return max(512, partition // max(1, row_bytes) // 512 * 512)


def _copies_in_place(frame, names) -> bool:
    """Whether the frame's columns ``names`` can go to the device buffer by buffer."""
    from workbench.frame import device

    if frame._host is None:
        return False  # a GPU result: its columns are on the device already
    table = frame._table
    return all(device.plc_type(table.schema.field(n).type) is not None
               and not isinstance(frame.schema[n], (pl.Categorical, pl.Enum)) for n in names)


class DeviceChunks:
    """The frame's rows as device chunks for the streaming executor, each copied from
    the host buffers (pinned where the frame is) only when the executor asks for it.

    Sized, so the executor pulls one chunk at a time instead of draining a
    generator to count it.
    """

    def __init__(self, frame, names, feed: GPUFeed, *, share: int | None = None):
        self.frame, self.names, self.feed = frame, names, feed
        row_bytes = sum(frame._table.column(n).nbytes for n in names) // max(1, len(frame))
        # a split cutting rows sizes its chunks itself (``share``), not as the executor's partitions
        self.step = chunk_rows(frame, row_bytes, share)
        self.starts = iter(range(0, max(len(frame), 1), self.step))
        self.count = max(1, -(-len(frame) // self.step))

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return self

    def __next__(self):
        columns, rows = self._chunk(next(self.starts))
        return self.feed.table(columns, self.names, self.frame.schema, rows)

    def columns(self):
        """The chunks as lists of pylibcudf columns, one chunk on the device at a time."""
        for start in self.starts:
            yield self._chunk(start)[0]

    def _chunk(self, start: int):
        columns = host_rows_on_device(self.frame, self.names, start, self.step)
        rows = min(self.step, len(self.frame) - start) if len(self.frame) else 0
        return columns, rows

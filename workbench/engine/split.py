"""Run a plan once per hash partition of its keys and assemble the answer.

See :mod:`workbench.engine.plan` for when that is exact. Each partition's query runs
with ``run_one`` (the GPU's in-memory executor inside :func:`workbench.collect`; any
engine in tests); the partitions' results are gathered on the host, so a result
larger than the device is fine, and :meth:`Split.finish` applies the plan's final
sort and limit to the whole.
"""

from __future__ import annotations

from typing import Callable

import polars as pl

from workbench.engine.plan import Split
from workbench.frame.cut import FILTERED, ONE, Partition
from workbench.frame.scan import partitioning

#: A row-wise plan is split into row ranges on the GPU while its answer is at most this
#: share of the bytes it reads. Its rows cross to the device once, but its answer comes
#: back and is converted to polars (strings copied into polars' views): measured on the
#: H200, a filter keeping 80% of a 60M-row table with three string columns took 5.0 s
#: that way, polars 0.49 s on the CPU. A selective plan, or one whose expressions cost
#: more than the copies (string searches, say), is where the GPU wins.
GATHERED_SHARE = 1 / 16
#: the sample is three of this many row ranges: the first, a middle and the last
SAMPLE_RANGES = 1024
#: a split's progress bar shows (where someone watches) once it has run this long:
#: most splits take well under a second
PROGRESS_AFTER = 2.0


def answer_share(lf: pl.LazyFrame, split: Split, inputs) -> float:
    """The share of the bytes it reads that a row-wise plan's answer keeps, estimated by
    polars on the CPU over three sample row ranges (milliseconds); both sides are
    counted as polars counts them (``estimated_size``)."""
    from workbench.frame.cut import range_of
    from workbench.frame.scan import rows_as_polars

    kept = read = 0
    for index in (0, SAMPLE_RANGES // 2, SAMPLE_RANGES - 1):
        part = Partition(index, SAMPLE_RANGES, split.keys, {})
        with partitioning(part):
            kept += lf.collect().estimated_size()
        for i in inputs:
            if i.frame is not None and id(i.frame) in split.keys:
                first, count = range_of(len(i.frame), part)
                read += rows_as_polars(i.frame, list(i.columns), first, count).estimated_size()
    return kept / max(1, read)


def gathers_too_much(lf: pl.LazyFrame, info) -> str | None:
    """Why a row-wise plan split into row ranges is better run by polars on the CPU
    (its answer, gathered from the GPU, would be most of what it reads), or None."""
    split = info.split
    if split is None or not split.by_rows or split.simple:
        return None
    share = answer_share(lf, split, info.inputs)
    if share <= GATHERED_SHARE:
        return None
    return (f"the plan works row by row and its answer keeps ~{min(share, 1):.0%} of the bytes it "
            f"reads (a sample says): gathering that from the GPU costs more than polars "
            "reading the rows, so polars runs it on the CPU")


def run_split(lf: pl.LazyFrame, split: Split, count: int,
              run_one: Callable[[pl.LazyFrame], pl.DataFrame], *, prefilter: dict | None = None,
              room: int = 0, facts: dict | None = None, only_one: bool = False,
              progress: bool | None = None) -> pl.DataFrame:
    """``lf``'s answer from ``count`` partition queries, one at a time.

    ``prefilter`` and ``room`` are :class:`~workbench.frame.cut.Partition`'s (filters
    applied while the rows are cut; one partition when they then fit ``room``);
    ``facts`` receives what the cut found (rows read and kept, one partition or not);
    with ``only_one`` the split runs as one partition or raises ``ManyKept``.
    ``progress``: a bar of the partitions done (True, at once; None, in a notebook or on
    a terminal once the split has run :data:`PROGRESS_AFTER` seconds; False: none)."""
    from workbench.progress import bar

    parts, scattered = [], {}  # the inputs cut once, read by every partition
    done = bar("collect: partitions", count, unit="partition", show=progress,
               delay=0.0 if progress else PROGRESS_AFTER) if count > 1 and not only_one else None
    try:
        for index in range(count):
            with partitioning(Partition(index, count, split.keys, scattered, prefilter or {}, room,
                                        only_one)):
                parts.append(run_one(lf))
            if done is not None:
                done.update(1)
            if scattered.get(ONE):
                break  # the first partition held every row
    finally:
        if done is not None:
            done.close()
    if facts is not None:
        facts.update({k: scattered[k] for k in (ONE, FILTERED) if k in scattered})
    scattered.clear()
    return split.finish(parts)


def note_cut(session, facts: dict) -> None:
    """What the filters applied while a split's rows were cut kept (``facts`` from
    :func:`run_split`), in the session's log."""
    found = facts.get(FILTERED)
    if isinstance(found, tuple):
        read, kept = found
        session.note(f"collect: the filters above the scan ran on the GPU while its rows were "
                     f"cut: {kept:,} of {read:,} rows kept"
                     + ("; they fit one partition, which answered the whole plan"
                        if facts.get(ONE) else ""))
    elif found:
        session.note(f"collect: the filters above the scan were {found}")
    elif facts.get(ONE):
        session.note("collect: the cut rows fit one partition, which answered the whole plan")

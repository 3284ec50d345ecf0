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
from workbench.frame.scan import Partition, partitioning


def run_split(lf: pl.LazyFrame, split: Split, count: int,
              run_one: Callable[[pl.LazyFrame], pl.DataFrame]) -> pl.DataFrame:
    """``lf``'s answer from ``count`` partition queries, one at a time."""
    parts, scattered = [], {}  # the inputs cut once, read by every partition
    for index in range(count):
        with partitioning(Partition(index, count, split.keys, scattered)):
            parts.append(run_one(lf))
    scattered.clear()
    return split.finish(parts)

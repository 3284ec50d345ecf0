"""How a GPU query is run, chosen from its plan, the memory policy and, for a simple
group-by over more than fits, a sample of its keys.

* **in-memory**: cudf-polars' in-memory executor over the frames' columns, made
  resident on the device (views of the host buffers on unified memory). The fast
  path, chosen while the columns fit: on a discrete GPU within the resident limit;
  on unified memory (DGX Spark, Grace Hopper) while they fit the memory the GPU
  shares with the CPU, since nothing is copied there.
* **split**: the plan run once per hash partition of its keys (see
  :mod:`workbench.engine.plan`), each partition in memory, results gathered on the
  host. Chosen beyond that when the plan splits by key: any aggregation (median,
  quantiles, ``top_k``...), join or window then runs on the GPU within the budget.
  A plan that works row by row (filters, projections, a final sort) is split into
  ranges of rows instead, each crossing once: an answer of most rows, larger than
  the device, is gathered on the host. One that ends in a limit streams first.
  Inputs that are not resident are cut into the partitions in one pass (to the
  device, reordered, back to host memory), so they cross to the device twice
  however many partitions there are.
* **streaming**: cudf-polars' streaming executor over chunks of the host buffers, for
  plans that do not split by key, and first for *simple* ones (group-bys that only
  sum, count, average or take extremes): it answers those in one pass over the data,
  measured several times faster than a split on the H200. If it fails (a result
  too large for the device), the split follows; a simple plan whose groups a sample
  of its keys shows to outgrow the device memory (nearly a group per row) is split at once.

>>> from workbench.engine.plan import PlanInfo, Split
>>> p = partitions_for(40 * 2**30, device_memory=2**30)
>>> p, 40 * 2**30 // p <= 2**30 // 8
(512, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.errors import BudgetTooSmall
from workbench.sizes import format_bytes

#: One partition's input may take this share of the device memory: the rest holds
#: its intermediates (a join or sort needs a few times its input) and the next chunk.
PARTITION_SHARE = 8
MAX_PARTITIONS = 1024


@dataclass(frozen=True)
class Choice:
    executor: str  # "in-memory", "split" or "streaming"
    partitions: int
    reason: str
    moves: int  # host->device bytes expected


def choose(info, policy, resident_limit: int) -> Choice:
    """The way to run the plan described by ``info`` (a :class:`~workbench.engine.plan.PlanInfo`)."""
    size = info.frame_bytes
    unified = policy.host_buffers == "unified"
    if not info.only_frames or not info.inputs:
        return Choice("in-memory", 1, "the plan reads files or polars frames: in memory first",
                      size)
    room = (policy.device_memory or 0) // 2 if unified else resident_limit
    # A join in memory holds its resident inputs and, beside them, the joined rows
    # and hash tables, about as large again: measured out of memory at 1 GB with
    # inputs just under the resident limit, the retry costing more than the query.
    # A semi or anti join only keeps rows of one side, like a filter. A median (or
    # quantile, distinct count) per group sorts copies of its keys and values: measured
    # out of memory the same way, then twice more while the split found its count.
    sorting = info.split is not None and info.split.sorting
    doubled = None if unified else "joined" if info.widening_joins else \
        "sorted per group" if sorting else None
    if size * (2 if doubled else 1) <= room:
        where = ("fits the memory the GPU shares with the CPU (read in place, nothing copied)"
                 if unified else "fits the resident limit")
        return Choice("in-memory", 1, f"{format_bytes(size)} of columns {where}",
                      0 if unified else size)
    over = (f"{format_bytes(size)} of columns, {doubled}, exceed half of {format_bytes(room)}"
            if doubled and size <= room else f"{format_bytes(size)} of columns exceed {format_bytes(room)}")
    if info.split is not None and not info.split.simple:
        count = partitions_for(size, policy.device_memory or room)
        if info.split.by_rows:  # each range crosses once, and its answer comes back
            return Choice("split", count, f"{over}: the plan works row by row, split into "
                          f"{count} row ranges", 0 if unified else size)
        return Choice("split", count, f"{over}: split into {count} partitions by key",
                      0 if unified else 2 * size)
    if info.split is not None and info.split.by_rows:
        return Choice("streaming", 1, f"{over}; the plan works row by row and ends in a limit: "
                      "streaming executor over chunks (split into row ranges if that fails)",
                      0 if unified else size)
    # The streaming executor merges the chunks' partial groups on the device: measured
    # on the H200 under 1 GB, ~530 MB of them streamed in 0.46 s (a split took 1.0 s);
    # groups beyond the whole device memory cannot be held, so split at once.
    if info.split is not None and (groups := _answer_bytes(info)) > (policy.device_memory or room):
        count = partitions_for(size, policy.device_memory or room)
        return Choice("split", count, f"{over}; a sample of its keys says its groups alone take "
                      f"about {format_bytes(groups)}, more than the streaming executor holds: "
                      f"split into {count} partitions by key", 0 if unified else 2 * size)
    if info.split is not None:
        return Choice("streaming", 1, f"{over}; the plan only sums, counts, averages or takes "
                      "extremes: streaming executor over chunks (split by key if that fails)",
                      0 if unified else size)
    return Choice("streaming", 1, f"{over} and the plan does not split by key "
                  f"({info.why_not}): streaming executor over chunks", 0 if unified else size)


def _answer_bytes(info) -> int:
    """The bytes a simple plan's groups take, about: its input's share of the groups."""
    from workbench.engine.groups import group_share

    return int(group_share(info) * info.frame_bytes)


def partition_room(device_memory: int) -> int:
    """Bytes one partition's input may take: 1/PARTITION_SHARE of the device memory."""
    return max(1, device_memory // PARTITION_SHARE)


def partitions_for(nbytes: int, device_memory: int) -> int:
    """Partitions (a power of two) so each one's input is ≤ :func:`partition_room`."""
    target = partition_room(device_memory)
    count = 2
    while nbytes / count > target:
        count *= 2
    if count > MAX_PARTITIONS:
        raise too_small(nbytes, device_memory)
    return count


def too_small(nbytes: int, device_memory: int) -> BudgetTooSmall:
    """The error for a budget too small for the smallest partition of ``nbytes``."""
    need = max(2 * device_memory, nbytes * PARTITION_SHARE // MAX_PARTITIONS)
    return BudgetTooSmall(f"a GPU budget of {format_bytes(device_memory)} is too small for this query over "
            f"{format_bytes(nbytes)} of columns, even in {MAX_PARTITIONS} partitions; the smallest "
            f"workable budget is about {format_bytes(need)}: set wb.init(budget=...) or "
            "WORKBENCH_GPU_BUDGET to at least that, or run it on the CPU (engine='streaming')",
                          need)

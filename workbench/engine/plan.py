"""What a polars plan asks of the GPU: its Frame inputs, and whether it splits by key.

:func:`inspect` reads the optimised plan through polars' own IR view (the
``NodeTraverser`` that the polars GPU engine reads too), without running it. It finds

* the plan's inputs: each Frame scan with the columns it projects, and the bytes
  they take (file scans and in-memory polars frames are listed without Frames);
* a **key split** when one exists: a way to run the plan as ``n`` independent
  queries, query ``i`` seeing only the rows whose key columns hash to ``i``, whose
  results, concatenated (then sorted and sliced again when the plan ends with a
  sort or a limit), are the plan's answer. That holds when every group of a
  group-by, every match of a join and every window of an ``over`` lies within one
  partition: the group keys, the join keys and the window keys include the
  partition keys, and everything between them and the scans works row by row.

A plan that works row by row over one Frame scan (filters, projections, a final sort
or limit) splits by **row ranges** instead: range ``i`` is the ``i``-th run of
consecutive rows, and the ranges' answers in order are the plan's (sorted and
sliced again as above), so a result larger than the device (most rows of a large
frame) is gathered on the host.

The split is what lets any aggregation (median, quantiles, ``top_k``, ``corr``, a
result of ~all rows) run in memory on the GPU over data far larger than its budget:
each partition's rows and groups fit where the whole does not.

>>> import polars as pl, workbench as wb
>>> f = wb.Frame.from_polars(pl.DataFrame({"k": [1, 2, 1], "v": [1.0, 2.0, 3.0]}))
>>> info = inspect(f.lazy().group_by("k").agg(pl.col("v").median()).sort("k"))
>>> info.split.keys[id(f)], info.split.sort
(('k',), (('k',), (False,), (False,), False))
>>> inspect(f.lazy().select(pl.col("v").sum())).why_not
'a select that is not row by row (an aggregation, or a window over expressions or depending on the row order)'
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from workbench.engine import expressions
from workbench.engine.cpu import scan_bytes
from workbench.frame.table import as_polars


@dataclass(frozen=True)
class Input:
    """One scan of the plan: a Frame (or None for files and polars frames) and its columns."""

    frame: object | None
    columns: tuple[str, ...]
    nbytes: int | None
    what: str
    #: a row limit polars pushed into the scan (a ``head`` straight above it), or None
    row_limit: int | None = None


@dataclass(frozen=True)
class Split:
    """How to run the plan key-partitioned (see the module docstring).

    ``keys`` maps ``id(frame)`` to the columns its rows are hashed by; ``sort`` is
    ``(by, descending, nulls_last, maintain_order)`` to apply again to the
    concatenated result, ``limit`` the row count to keep after it.
    """

    keys: dict[int, tuple[str, ...]]  # () for the one Frame of a split by row ranges
    sort: tuple | None = None
    limit: int | None = None
    #: every group-by only sums, counts, averages or takes extremes, and nothing joins
    #: (or, split by rows, the plan ends in a limit): cudf-polars' streaming executor
    #: answers such a plan in one pass over the data
    simple: bool = False
    #: a group-by sorts its groups' values (median, quantiles, distinct counts)
    sorting: bool = False

    @property
    def by_rows(self) -> bool:
        """Cut into ranges of rows, not by key: the plan works row by row over one Frame."""
        return all(not k for k in self.keys.values())

    def finish(self, parts: list):
        """The plan's answer from its partitions' answers (polars DataFrames, or Arrow
        tables: Arrow in, Arrow out, unless a final sort or limit needs polars)."""
        if isinstance(parts[0], pa.Table):
            out = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
            if self.sort is None and self.limit is None:
                return out
            parts = [as_polars(out)]
        out = pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]
        if self.sort is not None:
            by, descending, nulls_last, stable = self.sort
            out = out.sort(list(by), descending=list(descending), nulls_last=list(nulls_last),
                           maintain_order=stable)
        return out.head(self.limit) if self.limit is not None else out


@dataclass(frozen=True)
class PlanInfo:
    inputs: tuple[Input, ...]
    split: Split | None
    why_not: str = ""
    #: joins whose answer carries columns of both sides (not semi or anti joins)
    widening_joins: int = 0

    @property
    def frame_bytes(self) -> int:
        """Bytes of Frame columns the plan reads (each scan counted once)."""
        return sum(i.nbytes or 0 for i in self.inputs if i.frame is not None)

    @property
    def only_frames(self) -> bool:
        return all(i.frame is not None for i in self.inputs)


class _NoSplit(Exception):
    pass


class _Keys(dict):
    """The partition keys per Frame, and whether the plan is simple (see :class:`Split`)."""

    simple = True
    sorting = False
    #: a group-by was met walking down: windows below it see every row (not simple);
    #: windows above it see its groups, few when a sample of the keys says so
    grouped = False


def inspect(lf: pl.LazyFrame) -> PlanInfo:
    """Inputs and key split of ``lf``'s optimised plan (see the module docstring)."""
    nt = lf._ldf.visit()
    root = nt.get_node()
    joins: list[str] = []
    try:
        inputs = tuple(_inputs(nt, root, joins))
    except NotImplementedError as err:  # a node polars' IR view cannot show (a Python UDF)
        return PlanInfo((), None, f"the plan holds what polars' plan view cannot show ({err})")
    widening = sum(how not in ("Semi", "Anti") for how in joins)
    nt.set_node(root)
    try:
        return PlanInfo(inputs, _split(nt), widening_joins=widening)
    except _NoSplit as why:
        return PlanInfo(inputs, None, str(why), widening_joins=widening)
    except NotImplementedError as err:
        return PlanInfo(inputs, None, f"an expression polars' plan view cannot show ({err})",
                        widening_joins=widening)


def _inputs(nt, node: int, joins: list[str]) -> list[Input]:
    """The plan's scans below ``node``; the kind of each join met is added to ``joins``."""
    nt.set_node(node)
    ir = nt.view_current_node()
    found: list[Input] = []
    kind = type(ir).__name__
    if kind == "Scan":  # files: the bytes they load in memory, from their footers or sizes
        schema, paths = dict(nt.get_schema()), list(ir.paths)
        found.append(Input(None, tuple(schema), scan_bytes(paths, str(ir.scan_type[0]), schema),
                           f"{ir.scan_type[0]} scan of {len(paths):,} file{'s' * (len(paths) != 1)}"))
    elif kind in ("PythonScan", "DataFrameScan"):
        found.append(_input(ir))
    elif kind == "Join":
        joins.append(str(ir.options[0]))
    for child in nt.get_inputs():
        found.extend(_inputs(nt, child, joins))
        nt.set_node(node)
    return found


def _input(ir) -> Input:
    kind = type(ir).__name__
    frame = _frame_of(ir) if kind == "PythonScan" else None
    if frame is None:
        return Input(None, (), None, "a polars frame")
    names = tuple(ir.options[1]) if ir.options[1] is not None else tuple(frame.columns)
    return Input(frame, names, _column_bytes(frame, names), f"Frame {len(frame):,} rows",
                 ir.options[4])


def _frame_of(scan_ir):
    """The Frame behind a PythonScan made by ``Frame.lazy()``, or None."""
    wrap = scan_ir.options[0]
    for cell in getattr(wrap, "__closure__", None) or ():
        ref = getattr(cell.cell_contents, "frame_ref", None)
        if ref is not None:
            return ref()
    return None


def frame_scan_below(nt, node: int):
    """``(scan, frame)``: the scan at ``node`` or below its column reorders
    (``SimpleProjection``), and the Frame behind it (None when it is not a Frame's);
    ``nt`` is left at the scan."""
    nt.set_node(node)
    scan = nt.view_current_node()
    while type(scan).__name__ == "SimpleProjection":
        nt.set_node(scan.input)
        scan = nt.view_current_node()
    return scan, _frame_of(scan) if type(scan).__name__ == "PythonScan" else None


def _column_bytes(frame, names) -> int:
    if frame._host is None:
        return 0  # a result kept on the device: it moves nothing
    table = frame._table
    return sum(table.column(n).nbytes for n in names)


# -------------------------------------------------------------------- the key split
_UPPER = ("Sort", "Slice", "Filter", "HStack", "Select", "SimpleProjection")


def _split(nt) -> Split:
    """Walk down from the root: sorts, limits and row-wise steps (windows fix the keys
    the rest must be split by), then a splitting step."""
    sort, limit, keys, allowed = None, None, _Keys(), None
    while True:
        ir = nt.view_current_node()
        kind = type(ir).__name__
        if kind == "Sort":
            if sort is not None or limit is not None:
                raise _NoSplit("more than one sort or limit at the end of the plan")
            sort, limit = _sort_of(nt, ir), _slice_len(ir.slice)
        elif kind == "Slice":
            if limit is not None or ir.offset != 0:
                raise _NoSplit("a limit with an offset, or two limits")
            limit = ir.len
        elif kind in ("GroupBy", "Join", "Distinct"):
            _need(nt, nt.get_node(), allowed, keys)
            return Split(dict(keys), sort, limit, keys.simple, keys.sorting)
        elif kind == "PythonScan":
            if allowed is not None:
                # Windows straight over a scan: the answer keeps the scan's row order,
                # which partitions lose; a final sort that orders every row gives it back.
                if sort is None or sort[3]:
                    raise _NoSplit("windows over a scan whose row order the answer keeps "
                                   "(no final sort, or a stable one)")
                _scan(ir, allowed, keys)
                return Split(dict(keys), sort, limit, False)
            # Row by row from the scan up: any cut of its rows will do, so ranges of them
            # (in order: their answers concatenated keep the scan's row order).
            frame = _frame_of(ir)
            if frame is None:
                raise _NoSplit("row-wise steps over a file or a polars frame (only Frames split)")
            keys[id(frame)] = ()
            pushed = ir.options[4]  # a limit polars pushed into the scan
            if pushed is not None:
                limit = pushed if limit is None else min(limit, pushed)
            # With a limit the answer is small: the streaming executor's one pass first.
            return Split(dict(keys), sort, limit, limit is not None)
        elif kind in _UPPER:
            allowed = _row_wise(nt, ir, kind, allowed, keys)
        else:
            raise _NoSplit("the plan ends in a whole-frame aggregation or another "
                           f"operation that needs every row at once ({kind})")
        (child,) = nt.get_inputs()
        nt.set_node(child)


def _sort_of(nt, ir) -> tuple:
    by = tuple(expressions.column(nt, e) for e in ir.by_column)
    if None in by:
        raise _NoSplit("a sort by an expression, not a column")
    stable, nulls_last, descending = ir.sort_options  # polars: (maintain_order, nulls_last, descending)
    n = len(by)
    return by, tuple(descending) * (n if len(descending) == 1 else 1), \
        tuple(nulls_last) * (n if len(nulls_last) == 1 else 1), bool(stable)


def _slice_len(slice_) -> int | None:
    if slice_ is None:
        return None
    offset, length = slice_[0], slice_[1]
    if offset != 0:
        raise _NoSplit("a limit with an offset")
    return length


def _need(nt, node: int, allowed, keys: dict) -> None:
    """Make ``node``'s output partitioned by columns; ``allowed`` is the set the step
    above accepts (None: any) or the exact tuple it fixed."""
    nt.set_node(node)
    ir = nt.view_current_node()
    kind = type(ir).__name__
    if kind == "GroupBy":
        names = tuple(expressions.column(nt, e) for e in ir.keys)
        if None in names or ir.apply or ir.maintain_order:
            raise _NoSplit("a group-by by expressions, in order, or with a function")
        if getattr(ir.options, "slice", None) is not None:
            raise _NoSplit("a limit inside a group-by")
        keys.simple &= all(expressions.decomposable(nt, a.node) for a in ir.aggs)
        keys.sorting |= any(expressions.sorts_values(nt, a.node) for a in ir.aggs)
        keys.grouped = True
        _need(nt, ir.input, _narrow(allowed, names), keys)
    elif kind == "Join":
        how = ir.options[0]
        if how not in ("Inner", "Left", "Right", "Full", "Semi", "Anti"):
            raise _NoSplit(f"a {how.lower()} join")
        left = tuple(expressions.column(nt, e) for e in ir.left_on)
        right = tuple(expressions.column(nt, e) for e in ir.right_on)
        if None in left or None in right:
            raise _NoSplit("a join on expressions, not columns")
        if allowed is not None and not (set(left) <= set(allowed) if isinstance(allowed, frozenset)
                                        else left == allowed):
            raise _NoSplit("a join on keys the steps above do not group by")
        keys.simple = False
        _need(nt, ir.input_left, left, keys)
        _need(nt, ir.input_right, right, keys)
    elif kind == "Distinct":  # every copy of a row lies in the partition of its values
        _, subset, in_order, limit = ir.options
        if in_order or limit is not None:
            raise _NoSplit("a unique in order or with a limit")
        names = tuple(subset) if subset is not None else tuple(nt.get_schema())
        keys.simple = False
        _need(nt, ir.input, _narrow(allowed, names, "uniques"), keys)
    elif kind in ("Filter", "HStack", "Select", "SimpleProjection"):
        fixed = _row_wise(nt, ir, kind, allowed, keys)
        _need(nt, ir.input, fixed, keys)
    elif kind == "PythonScan":
        _scan(ir, allowed, keys)
    else:
        raise _NoSplit(f"a step that cannot run by key partition ({kind})")


def _narrow(allowed, names: tuple[str, ...], what: str = "group-bys"):
    """The keys a group-by (or window) by ``names`` can be split by, given what is
    allowed above."""
    if allowed is None:
        return frozenset(names)
    if isinstance(allowed, frozenset):
        common = allowed & set(names)
        if not common:
            raise _NoSplit(f"{what} by disjoint keys")
        return frozenset(common)
    if not set(allowed) <= set(names):
        raise _NoSplit(f"{what} by keys that do not include the join keys above them")
    return allowed


def _scan(ir, allowed, keys: dict) -> None:
    frame = _frame_of(ir)
    if frame is None:
        raise _NoSplit("a scan of a file or a polars frame (only Frames are split by key)")
    names = tuple(ir.options[1]) if ir.options[1] is not None else tuple(frame.columns)
    chosen = tuple(n for n in names if n in allowed) if isinstance(allowed, frozenset) else allowed
    if not chosen or not set(chosen) <= set(names):
        raise _NoSplit("a scan without the partition keys")
    if keys.setdefault(id(frame), chosen) != chosen:
        raise _NoSplit("one Frame scanned twice with different keys")


def _row_wise(nt, ir, kind: str, allowed=None, keys=None):
    """Check a step works row by row, or by window groups (``over``); return the keys
    its input must be split by."""
    if kind == "Filter":
        exprs = [ir.predicate]
    elif kind in ("HStack", "Select"):
        exprs = list(ir.exprs if kind == "HStack" else ir.expr)
    else:
        return allowed
    windows: list[frozenset] = []
    if not all(expressions.row_wise(nt, e.node, windows) for e in exprs):
        raise _NoSplit(f"a {kind.lower()} that is not row by row (an aggregation, or a window "
                       "over expressions or depending on the row order)")
    if windows and keys is not None and keys.grouped:
        keys.simple = False  # a window over every row (one over groups: see _split)
    if kind != "Filter" and allowed is not None:
        allowed = _passed_keys(nt, kind, exprs, allowed)
    for over in windows:  # every window's groups must lie within one partition
        allowed = _narrow(allowed, tuple(sorted(over)), "windows")
    return allowed


def _passed_keys(nt, kind: str, exprs, allowed):
    """The keys reach the step above unchanged: a Select keeps a key as itself, an
    HStack must not overwrite it."""
    passed = {e.output_name: expressions.column(nt, e) for e in exprs}
    keep = (lambda n: passed.get(n) == n) if kind == "Select" else \
        (lambda n: n not in passed or passed[n] == n)
    if isinstance(allowed, frozenset):
        kept = frozenset(n for n in allowed if keep(n))
        if not kept:
            raise _NoSplit(f"a {kind.lower()} that replaces the keys")
        return kept
    if not all(keep(n) for n in allowed):
        raise _NoSplit(f"a {kind.lower()} that replaces the join keys")
    return allowed

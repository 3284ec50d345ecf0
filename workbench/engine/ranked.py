"""Filters on a rank within groups over a Frame: the GPU keeps the rows that can pass.

``frame.lazy().filter(pl.col(x).rank("min", descending=True).over(keys) <= n)`` keeps
the top n rows of each group in the frame's row order. cudf-polars' streaming executor
holds such a window in one partition, and a split by key loses the row order the answer
keeps, so beyond the resident limit it ran on the CPU. A rank at most n bounds the value,
whatever the method but "dense": every rank is at least the "min" rank, and the "min"
rank is at most n exactly when the value is at least the group's n-th largest, counted
with ties. So the GPU computes those thresholds (one row per group: the least value a
"min" rank of at most n keeps, a group-by that splits by key as any other) and keeps the
rows at or above their group's threshold, in order: with one key through a row-wise
lookup of the thresholds (``replace_strict``) split by row ranges; with several, polars
does it with one join on the keys (``maintain_order="left"``). Those few rows take the
place of the filter's input in polars' plan (see :mod:`workbench.engine.natural`), and
polars applies the filter itself to them: a row's rank depends only on the values at or
above its own (and, for "ordinal", on the order of its ties, which is kept), so each
rank is the one the whole group gives it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from workbench.engine.expressions import Refuse, column_at, row_expr
from workbench.engine.plan import frame_scan_below

#: ``rank(...) OP n``: the largest "min" rank (a whole number) it keeps, by operator
#: (``n OP rank(...)`` mirrored); "average" ranks are compared with floats
_AT_MOST = {"LtEq": math.floor, "Lt": lambda n: math.ceil(n) - 1, "Eq": math.floor}
_MIRRORED = {"GtEq": "LtEq", "Gt": "Lt", "Eq": "Eq"}
#: methods whose rank is never below the "min" rank ("dense" is; "random" would draw anew)
_BOUNDED = {"min", "max", "average", "ordinal"}


@dataclass
class RankFilter:
    """A filter keeping ranks of ``value`` at most ``n`` within ``keys`` (largest first
    when ``largest``), over a Frame's scan (after its pushed predicate ``where``) of
    ``columns``, in the order the filter sees them."""

    frame: object
    columns: list[str]
    where: pl.Expr | None
    keys: list[str]
    value: str
    n: int
    largest: bool

    def evaluate(self, run) -> pl.DataFrame:
        """The rows of the filter's input that can pass it, in order; ``run`` runs the
        GPU's queries."""
        base = self.frame.lazy()
        if self.where is not None:
            base = base.filter(self.where)
        # the n-th value of each group counted with ties is the least value a "min" rank
        # of at most n keeps; a group-by by the window's keys splits by key, which the
        # filter alone (whose answer keeps the row order) does not
        edge = pl.col(self.value).min() if self.largest else pl.col(self.value).max()
        thresholds = run(base.select(*self.keys, self.value)
                         .filter(pl.col(self.value).rank("min", descending=self.largest)
                                 .over(self.keys) <= self.n)
                         .group_by(self.keys).agg(edge.alias("__wb_edge")))
        if not thresholds.height:  # no group keeps a row (n below 1, or no values)
            return pl.DataFrame(schema={c: self.frame.schema[c] for c in self.columns})
        at_edge = (lambda edge_of: pl.col(self.value) >= edge_of) if self.largest \
            else (lambda edge_of: pl.col(self.value) <= edge_of)
        if len(self.keys) == 1:
            # one key: the edge is a row-wise lookup, so the rows are kept on the GPU too,
            # split by row ranges, whose answers come back in order
            (key,) = self.keys
            edge_of = pl.col(key).replace_strict(thresholds[key], thresholds["__wb_edge"],
                                                 default=None)
            return run(base.filter(at_edge(edge_of)).select(self.columns))
        rows = self.frame.to_polars().lazy()
        if self.where is not None:
            rows = rows.filter(self.where)
        return (rows.select(self.columns)
                .join(thresholds.lazy(), on=self.keys, how="left", nulls_equal=True,
                      maintain_order="left")
                .filter(at_edge(pl.col("__wb_edge"))).drop("__wb_edge").collect())


def find(nt, ir) -> tuple[int, RankFilter] | None:
    """For a filter on a rank per group straight over a Frame's scan: the node of its
    input, which the rows that can pass replace, and how to compute them; else None."""
    if type(ir).__name__ != "Filter":
        return None
    bound = _rank_bound(nt, ir.predicate.node)
    if bound is None:
        return None
    keys, value, n, largest = bound
    node = ir.input
    nt.set_node(node)
    columns = list(nt.get_schema())  # what the filter sees, in its order
    scan, frame = frame_scan_below(nt, node)
    if value is None or None in keys or value in keys or frame is None \
            or scan.options[4] is not None or _may_hold_nan(frame, value):
        return None
    try:
        where = None if scan.options[3] is None else row_expr(nt, scan.options[3][1])
    except Refuse:
        return None
    return node, RankFilter(frame, columns, where, keys, value, n, largest)


def _rank_bound(nt, node: int):
    """``(keys, value, n, largest)`` when the predicate at ``node`` keeps only rows whose
    rank of ``value`` within ``keys`` is at most ``n`` (itself, or one side of an "and"),
    else None."""
    e = nt.view_expression(node)
    if type(e).__name__ != "BinaryExpr":
        return None
    op, window, literal = str(e.op).rsplit(".", 1)[-1], e.left, e.right
    if op in ("And", "LogicalAnd"):
        return _rank_bound(nt, e.left) or _rank_bound(nt, e.right)
    if type(nt.view_expression(window)).__name__ != "Window":
        op, window, literal = _MIRRORED.get(op), e.right, e.left
    w, lit = nt.view_expression(window), nt.view_expression(literal)
    if op not in _AT_MOST or type(w).__name__ != "Window" or type(lit).__name__ != "Literal" \
            or type(lit.value) not in (int, float) or not math.isfinite(lit.value) \
            or w.order_by is not None:
        return None
    rank = nt.view_expression(w.function)
    if type(rank).__name__ != "Function" or rank.function_data[0] != "rank" \
            or rank.function_data[1] not in _BOUNDED:
        return None
    keys = [column_at(nt, k) for k in w.partition_by]
    return keys, column_at(nt, rank.input[0]), _AT_MOST[op](lit.value), bool(rank.function_data[2])


def _may_hold_nan(frame, column: str) -> bool:
    """NaN ranks above every number, and GPU and CPU minima treat it differently."""
    import pyarrow.compute as pc

    host = frame._host
    if host is None:
        return True
    data = host.column(column)
    return pa.types.is_floating(data.type) and bool(pc.any(pc.is_nan(data)).as_py())

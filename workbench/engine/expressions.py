"""What an expression of a polars plan reads: its own row, its ``over`` group, or more.

The key split (:mod:`workbench.engine.plan`) asks this of every expression between the
scans and the steps that split: row-wise expressions run on any partition of the rows;
a window needs its group within one partition, and its answer must not depend on the
order of the group's rows; a *decomposable* aggregation can be summed from partial
results. The expressions are read through polars' IR view (``NodeTraverser``).
"""

from __future__ import annotations

import operator

import polars as pl


def column(nt, named) -> str | None:
    """The column name a named expression is, or None when it computes something."""
    e = nt.view_expression(named.node)
    return e.name if type(e).__name__ == "Column" else None


DECOMPOSABLE = {"sum", "mean", "min", "max", "count"}
#: aggregations libcudf answers by sorting each group's values: memory for copies of them
SORTING = {"median", "quantile", "n_unique"}


def operands(e, kind: str) -> list[int]:
    """The expression nodes that ``e``, of node kind ``kind``, computes from."""
    if kind == "Agg":
        return list(e.arguments)
    if kind == "BinaryExpr":
        return [e.left, e.right]
    if kind == "Cast":
        return [e.expr]
    if kind == "Ternary":
        return [e.predicate, e.truthy, e.falsy]
    if kind == "Function":
        return list(e.input)
    return []


def sorts_values(nt, node: int) -> bool:
    """Whether the aggregation at ``node`` sorts its groups' values (median, quantiles,
    distinct counts)."""
    e = nt.view_expression(node)
    kind = type(e).__name__
    if (kind == "Agg" and e.name in SORTING) or (kind == "Function" and e.function_data[0] == "quantile"):
        return True
    return any(sorts_values(nt, n) for n in operands(e, kind))


def decomposable(nt, node: int) -> bool:
    """An aggregation computed from per-chunk partial results (sum, count, mean, min, max)."""
    e = nt.view_expression(node)
    kind = type(e).__name__
    if kind in ("Len", "Literal"):
        return True
    if kind == "Agg":
        return e.name in DECOMPOSABLE and all(column(nt, Named(a)) for a in e.arguments)
    if kind in ("BinaryExpr", "Cast"):
        return all(decomposable(nt, n) for n in operands(e, kind))
    return False


class Named:
    """An expression node id where :func:`column` expects a named expression."""

    def __init__(self, node: int):
        self.node = node


# Functions that compute each row from that row alone (polars' names for them).
ROW_WISE = {"abs", "round", "floor", "ceil", "fill_null", "fill_nan", "pow", "sqrt", "log",
            "log1p", "exp", "clip", "sign", "replace", "replace_strict", "coalesce",
            "min_horizontal", "max_horizontal", "sum_horizontal", "mean_horizontal",
            "dynamic_pred", "negate", "not_"}
NOT_ROW_WISE = {"IsUnique", "IsDuplicated", "IsFirstDistinct", "IsLastDistinct", "Any", "All",
                "ConcatVertical", "Join"}


def row_wise(nt, node: int, windows: list | None = None) -> bool:
    """Whether the expression at ``node`` computes each row from that row alone or,
    with ``windows``, also from its ``over`` group (whose key columns are added there)."""
    e = nt.view_expression(node)
    kind = type(e).__name__
    if kind in ("Column", "Literal"):
        return True
    if kind == "Window" and windows is not None:
        over = [column(nt, Named(n)) for n in e.partition_by]
        if not over or None in over or e.order_by is not None or not order_free(nt, e.function):
            return False  # over expressions, or an answer that depends on the row order
        windows.append(frozenset(over))
        return True
    if kind in ("BinaryExpr", "Cast", "Ternary") or (kind == "Function" and row_wise_function(e)):
        return all(row_wise(nt, n, windows) for n in operands(e, kind))
    return False


def row_wise_function(e) -> bool:
    head = e.function_data[0]
    if isinstance(head, str):
        return head in ROW_WISE
    # an enum member such as StringFunction.Contains
    return type(head).__name__ in ("StringFunction", "BooleanFunction", "TemporalFunction") \
        and str(head).rsplit(".", 1)[-1] not in NOT_ROW_WISE


# What a window may compute and still give the same answer whatever the order of its
# group's rows. Partitions keep the frame's row order, but the rows a join or a
# group-by hands a window come in no order polars promises: windows that need one
# are left unsplit.
ORDER_FREE_AGGS = {"sum", "mean", "min", "max", "count", "median", "std", "var", "n_unique",
                   "nan_min", "nan_max"}
ORDER_FREE_RANKS = {"min", "max", "dense", "average"}  # ties share a rank: no order needed


def order_free(nt, node: int) -> bool:
    e = nt.view_expression(node)
    kind = type(e).__name__
    if kind in ("Column", "Literal", "Len"):
        return True
    if kind == "Agg":
        ok = e.name in ORDER_FREE_AGGS
    elif kind == "Function":
        head = e.function_data[0]
        ok = (head == "rank" and e.function_data[1] in ORDER_FREE_RANKS) or head == "quantile" \
            or row_wise_function(e)
    else:
        ok = kind in ("BinaryExpr", "Cast", "Ternary")
    return ok and all(order_free(nt, n) for n in operands(e, kind))


# ----------------------------------------------------- back from the plan to polars expressions
class Refuse(Exception):
    """The plan's expression has no polars form here: leave the plan as written."""


OPS = {"Plus": operator.add, "Minus": operator.sub, "Multiply": operator.mul,
       "TrueDivide": operator.truediv, "FloorDivide": operator.floordiv, "Modulus": operator.mod,
       "Eq": operator.eq, "NotEq": operator.ne, "Lt": operator.lt, "LtEq": operator.le,
       "Gt": operator.gt, "GtEq": operator.ge, "And": operator.and_, "Or": operator.or_}


def column_at(nt, node: int, through_casts: bool = False) -> str | None:
    """The column name the expression at ``node`` is (through casts, if asked), or None."""
    e = nt.view_expression(node)
    while through_casts and type(e).__name__ == "Cast":  # polars casts corr's inputs to floats
        e = nt.view_expression(e.expr)
    return e.name if type(e).__name__ == "Column" else None


def row_expr(nt, node: int) -> pl.Expr:
    """A scan's predicate back as a polars expression (the forms filters take)."""
    e = nt.view_expression(node)
    kind = type(e).__name__
    if kind == "Column":
        return pl.col(e.name)
    if kind == "Literal":
        return pl.lit(e.value)
    if kind == "BinaryExpr":
        op = OPS.get(str(e.op).rsplit(".", 1)[-1])
        if op is not None:
            return op(row_expr(nt, e.left), row_expr(nt, e.right))
    if kind == "Function" and not isinstance(e.function_data[0], str):
        name = str(e.function_data[0]).rsplit(".", 1)[-1]
        if name in ("IsNotNull", "IsNull", "Not") and len(e.input) == 1:
            inner = row_expr(nt, e.input[0])
            return {"IsNotNull": inner.is_not_null, "IsNull": inner.is_null, "Not": inner.not_}[name]()
    raise Refuse

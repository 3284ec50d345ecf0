"""Group-by aggregations users write that the polars GPU engine lacks, run on the GPU.

``top_k``/``bottom_k`` per group and ``pl.corr``/``pl.cov`` per group (and arithmetic
on them, such as ``pl.corr("v1", "v2") ** 2``) are refused by cudf-polars 26.10, which
would send the whole query to the CPU. Here such a group-by over a Frame is asked in
forms the GPU engine has — per-group sums for correlation and covariance, a per-group
rank for ``top_k``, the distinct (keys, value) pairs counted for ``n_unique`` (which the
engine has, but sorts for) — through :func:`workbench.collect`, and polars on the CPU
finishes from those small results: the correlations from the sums, the lists of the top values,
and whatever the plan does after the group-by. Only the group-by's aggregated result
is on the CPU, never the frame's rows. A ``top_k`` list exploded right after (the
largest k rows per group, as users ask for them) is the ranked rows themselves (polars leaves the order of a top_k's
values unspecified), and no lists are built.

A filter on a rank within groups straight over a Frame beyond the resident limit (the
top n rows of each group in the frame's row order) gets as its input the few rows that
can pass, which the GPU keeps (:mod:`workbench.engine.ranked`).

The group-by (or the filter's input) is replaced inside polars' optimised plan (the ``post_opt_callback``
through which polars hands a plan to the GPU engine), so the rest of the plan runs
unchanged.

>>> import polars as pl, workbench as wb
>>> _ = wb.init(backend="cpu")
>>> f = wb.Frame.from_polars(pl.DataFrame({"k": [1, 1, 2, 2], "x": [1.0, 2.0, 3.0, 5.0],
...                                        "y": [2.0, 4.0, 1.0, 2.0]}))
>>> lf = f.lazy().group_by("k").agg((pl.corr("x", "y") ** 2).alias("r2")).sort("k")
>>> rewritable(lf)
True
>>> collect(lf, pl.LazyFrame.collect)["r2"].round(6).to_list()
[1.0, 1.0]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import polars as pl

from workbench.engine import ranked
from workbench.engine.expressions import OPS, Refuse, column_at, row_expr
from workbench.engine.plan import frame_scan_below

_AGGS = {"sum", "mean", "min", "max", "median", "n_unique", "first", "last"}
_ELEMENTWISE = {"sqrt": pl.Expr.sqrt, "abs": pl.Expr.abs, "exp": pl.Expr.exp, "log": pl.Expr.log}


@dataclass
class _GroupBy:
    """One rewritable group-by: its Frame, keys, filter and the GPU-ready pieces."""

    frame: object
    keys: list[str]
    where: pl.Expr | None
    schema: dict
    main: list[pl.Expr] = field(default_factory=list)  # aggregations the GPU engine has
    tops: list[tuple[str, str, int, bool]] = field(default_factory=list)  # alias, col, k, largest
    #: n_unique of one column as the distinct pairs counted (alias, column), in a
    #: group-by that asks nothing else: anything more would need a second pass and a join
    distinct: list[tuple[str, str]] = field(default_factory=list)
    counts_distinct: bool = True
    outputs: list[tuple[str, pl.Expr]] = field(default_factory=list)  # name, over the pieces
    names: itertools.count = field(default_factory=itertools.count)
    #: the plan explodes the one top_k list right above: its rows are the ranked rows
    exploded: bool = False

    def alias(self) -> str:
        return f"__wb{next(self.names)}"

    def evaluate(self, run, candidates=None) -> pl.DataFrame:
        return _evaluate(self, run, candidates)


def rewritable(lf: pl.LazyFrame, ranks: bool = True) -> bool:
    """Whether ``lf`` holds a group-by (or, with ``ranks``, a filter on a rank per group)
    that :func:`collect` would rewrite."""
    nt = lf._ldf.visit()
    try:
        return bool(_find(nt, nt.get_node(), ranks))
    except NotImplementedError:  # a node polars' IR view cannot show (a Python UDF)
        return False


def collect(lf: pl.LazyFrame, run: Callable[[pl.LazyFrame], pl.DataFrame],
            ranks: bool = True, candidates: Callable | None = None) -> pl.DataFrame:
    """``lf``'s answer, each rewritable group-by's pieces (and, with ``ranks``, each rank
    filter's thresholds) computed by ``run`` (the GPU).

    ``candidates(plan, keys, k)``, where given, answers a top-k plan range by range of its
    Frame's rows (each range's own top k per group, as a Frame or DataFrame), or returns
    None when the plan runs whole (its columns fit in memory, or its groups are many)."""
    def callback(nt, *_):
        root = nt.get_node()
        for node, spec in _find(nt, root, ranks):
            nt.set_node(node)
            if isinstance(spec, _GroupBy):
                nt.set_udf(lambda *_, spec=spec: spec.evaluate(run, candidates))
            else:
                nt.set_udf(lambda *_, spec=spec: spec.evaluate(run))
        nt.set_node(root)

    return lf.collect(post_opt_callback=callback)


def _find(nt, node: int, ranks: bool = True) -> list[tuple[int, object]]:
    nt.set_node(node)
    ir = nt.view_current_node()
    if (spec := _exploded_top_k(nt, node, ir)) is not None:
        return [(node, spec)]
    nt.set_node(node)
    if ranks and (rank := ranked.find(nt, ir)) is not None:
        return [rank]  # the filter's input, replaced by the rows that can pass
    nt.set_node(node)
    if type(ir).__name__ == "GroupBy":
        try:
            return [(node, _parse(nt, ir))]
        except (Refuse, NotImplementedError):
            nt.set_node(node)  # the parse walked below: back to this node's inputs
    found = []
    for child in nt.get_inputs():
        found.extend(_find(nt, child, ranks))
        nt.set_node(node)
    return found


def _exploded_top_k(nt, node: int, ir) -> _GroupBy | None:
    """The group-by under ``explode`` of its one ``top_k`` list, as users ask for the
    largest k rows per group (db-benchmark's q8): the exploded rows are the ranked rows
    themselves, so neither the lists nor the explode are built."""
    if type(ir).__name__ != "MapFunction" or ir.function[0] != "explode":
        return None
    nt.set_node(ir.input)
    below = nt.view_current_node()
    if type(below).__name__ != "GroupBy":
        return None
    try:
        spec = _parse(nt, below)
    except (Refuse, NotImplementedError):
        return None
    if spec.main or len(spec.tops) != 1 or \
            [n for n, e in spec.outputs] != list(ir.function[1]) or \
            str(spec.outputs[0][1]) != str(pl.col(spec.tops[0][0])):
        return None
    nt.set_node(node)
    spec.schema, spec.exploded = dict(nt.get_schema()), True
    return spec


def _parse(nt, ir, counts_distinct: bool = True, schema: dict | None = None) -> _GroupBy:
    keys = [column_at(nt, k.node) for k in ir.keys]
    if None in keys or ir.apply or ir.maintain_order or getattr(ir.options, "slice", None):
        raise Refuse
    schema = schema or dict(nt.get_schema())  # the group-by's, before the walk below
    scan, frame = frame_scan_below(nt, ir.input)
    if frame is None:
        raise Refuse
    where = None if scan.options[3] is None else row_expr(nt, scan.options[3][1])
    spec = _GroupBy(frame, keys, where, schema, counts_distinct=counts_distinct)
    natural = False
    for agg in ir.aggs:
        expr, is_natural = _agg(nt, agg.node, spec)
        natural |= is_natural
        spec.outputs.append((agg.output_name, expr))
    if spec.distinct and (spec.main or spec.tops or len({c for _, c in spec.distinct}) > 1):
        return _parse(nt, ir, False, schema)  # n_unique as the engine has it
    if not natural:
        raise Refuse  # the GPU engine runs it as written
    return spec


def _agg(nt, node: int, spec: _GroupBy) -> tuple[pl.Expr, bool]:
    """The output expression over the pieces' columns, and whether it was rewritten."""
    e = nt.view_expression(node)
    kind = type(e).__name__
    if kind == "Len":
        return _piece(spec, pl.len()), False
    if kind == "Literal":
        return pl.lit(e.value), False
    if kind == "Agg":
        (arg,) = e.arguments
        if e.name == "implode":
            return _top_k(nt, arg, spec), True
        c = column_at(nt, arg)
        if c is None:
            raise Refuse
        if e.name == "n_unique" and spec.counts_distinct:
            name = spec.alias()
            spec.distinct.append((name, c))
            return pl.col(name), True
        if e.name in _AGGS:
            return _piece(spec, getattr(pl.col(c), e.name)()), False
        if e.name in ("std", "var"):
            return _piece(spec, getattr(pl.col(c), e.name)(ddof=e.options)), False
        if e.name == "count":
            return _piece(spec, pl.col(c).len() if e.options else pl.col(c).count()), False
        raise Refuse
    if kind == "BinaryExpr":
        op = OPS.get(str(e.op).rsplit(".", 1)[-1])
        if op is None:
            raise Refuse
        (left, a), (right, b) = _agg(nt, e.left, spec), _agg(nt, e.right, spec)
        return op(left, right), a or b
    if kind == "Function":
        name = e.function_data[0]
        if name == "corr":
            return _moments(nt, e, spec), True
        if name == "quantile":
            c, q = column_at(nt, e.input[0]), nt.view_expression(e.input[1])
            if c is None or type(q).__name__ != "Literal":
                raise Refuse
            return _piece(spec, pl.col(c).quantile(q.value, e.function_data[1])), False
        if name == "pow":
            (base, a), (power, b) = _agg(nt, e.input[0], spec), _agg(nt, e.input[1], spec)
            return base.pow(power), a or b
        if name in _ELEMENTWISE and len(e.input) == 1:
            inner, a = _agg(nt, e.input[0], spec)
            return _ELEMENTWISE[name](inner), a
    raise Refuse


def _piece(spec: _GroupBy, expr: pl.Expr) -> pl.Expr:
    name = spec.alias()
    spec.main.append(expr.alias(name))
    return pl.col(name)


#: a variance below this share of the sum of squares is rounding, not spread
_FLAT = 1e-12


def _moments(nt, e, spec: _GroupBy) -> pl.Expr:
    """Pearson correlation or covariance from per-group sums over the complete pairs."""
    a, b = (column_at(nt, n, through_casts=True) for n in e.input)
    if a is None or b is None or e.function_data[1] not in ("pearson", "covariance"):
        raise Refuse
    both = pl.col(a).is_not_null() & pl.col(b).is_not_null()
    x, y = (pl.when(both).then(pl.col(c).cast(pl.Float64)) for c in (a, b))
    n = _piece(spec, x.count()).cast(pl.Float64)
    sx, sy, sxy = (_piece(spec, s.sum()) for s in (x, y, x * y))
    cov = sxy - sx * sy / n
    if e.function_data[1] == "covariance":
        return cov / (n - e.function_data[2])
    sxx, syy = _piece(spec, (x * x).sum()), _piece(spec, (y * y).sum())
    vx, vy = sxx - sx * sx / n, syy - sy * sy / n
    # A constant (or one-row) group has no correlation, NaN as polars says; from sums its
    # variance is a rounding residue, which would divide into +-inf or a wild value.
    flat = (vx <= _FLAT * sxx) | (vy <= _FLAT * syy)
    return pl.when(flat).then(float("nan")).otherwise(cov / (vx * vy).sqrt())


def _top_k(nt, node: int, spec: _GroupBy) -> pl.Expr:
    e = nt.view_expression(node)
    if type(e).__name__ != "Function" or e.function_data[0] != "top_k":
        raise Refuse
    c, k = column_at(nt, e.input[0]), nt.view_expression(e.input[1])
    if c is None or type(k).__name__ != "Literal":
        raise Refuse
    if _may_hold_nulls(spec, c):
        raise Refuse  # polars fills short groups with nulls; a rank cannot say where
    name = spec.alias()
    spec.tops.append((name, c, int(k.value), not e.function_data[1]))
    return pl.col(name)


def _may_hold_nulls(spec: _GroupBy, column: str) -> bool:
    if spec.where is not None and str(spec.where) == str(pl.col(column).is_not_null()):
        return False
    host = spec.frame._host
    return host is None or host.column(column).null_count > 0


def _top_rows(rows: pl.LazyFrame, keys: list[str], column: str, k: int,
              largest: bool) -> pl.LazyFrame:
    """The rows of the ``k`` largest (or smallest) ``column`` values of each group."""
    return (rows.select(*keys, column)
            .with_columns(pl.col(column).rank("ordinal", descending=largest).over(keys)
                          .alias("__rank"))
            .filter(pl.col("__rank") <= k).select(*keys, column))


def _evaluate(spec: _GroupBy, run, candidates=None) -> pl.DataFrame:
    base = spec.frame.lazy()
    if spec.where is not None:
        base = base.filter(spec.where)
    result = run(base.group_by(spec.keys).agg(spec.main)) if spec.main else None
    for name, c in spec.distinct:
        # distinct values per group as the distinct (keys, value) pairs counted: a hash
        # distinct then a count (a null counts once in both forms), 3.4x faster on the
        # GPU than the engine's n_unique per group (3e7 rows, H100; benchmarks/n_unique_forms.py)
        counts = run(base.select(*spec.keys, c).unique().group_by(spec.keys)
                     .agg(pl.len().alias(name)))
        result = counts if result is None else result.join(counts, on=spec.keys, how="left",
                                                           nulls_equal=True)
    for name, c, k, largest in spec.tops:
        ranked = _top_rows(base, spec.keys, c, k, largest)
        # Beyond memory, each range of rows keeps its own top k per group on the GPU:
        # a group's top k values are among the union of its ranges' (ties are equal
        # values), so only those few rows are ranked again, not every row.
        found = candidates(ranked, spec.keys, k) if candidates is not None else None
        if found is not None:
            ranked = _top_rows(found.lazy(), spec.keys, c, k, largest)
        if spec.exploded:  # polars orders neither top_k's lists nor so their explode
            (out_name, _), = spec.outputs
            rows = run(ranked.select(*spec.keys, pl.col(c).alias(out_name)))
            return rows.cast({n: t for n, t in spec.schema.items() if rows.schema[n] != t})
        lists = run(ranked).group_by(spec.keys).agg(pl.col(c).sort(descending=largest).alias(name))
        result = lists if result is None else result.join(lists, on=spec.keys, how="left",
                                                           nulls_equal=True)
    out = result.select(*spec.keys, *(expr.alias(name) for name, expr in spec.outputs))
    return out.cast({n: t for n, t in spec.schema.items() if out.schema[n] != t})

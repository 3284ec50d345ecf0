"""Which filters above a Frame's scan run while a split cuts its rows.

The chain is read from cudf-polars' IR; here nodes of the same names and fields stand in
for it (the GPU tests run the real ones), so the walk itself is tested on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.engine.cudf_polars import _filter_chain


@dataclass(eq=False)
class Col:
    name: str
    children: tuple = ()


@dataclass(eq=False)
class BinOp:
    children: tuple


@dataclass(eq=False)
class Rolling:  # not row by row
    children: tuple = ()


@dataclass(eq=False)
class Named:
    name: str
    value: object


@dataclass(eq=False)
class PythonScan:
    schema: dict
    predicate: Named | None = None
    children: tuple = ()


@dataclass(eq=False)
class HStack:
    schema: dict
    columns: list
    should_broadcast: bool
    df: object
    children: tuple = field(init=False)

    def __post_init__(self):
        self.children = (self.df,)


@dataclass(eq=False)
class Projection:
    schema: dict
    df: object
    children: tuple = field(init=False)

    def __post_init__(self):
        self.children = (self.df,)


class Filter:
    def __init__(self, schema, mask, df):
        self.schema, self.mask, self.children = schema, mask, (df,)


def _parents(root) -> dict:
    parents, todo = {}, [root]
    while todo:
        node = todo.pop()
        for child in node.children:
            parents.setdefault(id(child), []).append(node)
            todo.append(child)
    return parents


SCAN = {"a": int, "b": int, "c": int}


def _plan(*, filter_over_projection: bool = True, projection_over_scan: bool = False,
          replaces: str = "m"):
    """scan(a, b, c; a > 1) [-> projection(a, b, c)] -> with_columns(m = b - c)
    -> projection(a, m) [-> filter(m > 45)], as polars plans
    ``filter(a > 1).with_columns(m=b - c).filter(m > 45)``."""
    scan = PythonScan(dict(SCAN), Named("a", BinOp((Col("a"),))))
    node = Projection(dict(SCAN), scan) if projection_over_scan else scan
    minutes = HStack({**SCAN, replaces: int}, [Named(replaces, BinOp((Col("b"), Col("c"))))], True, node)
    node = Projection({"a": int, replaces: int}, minutes)
    if filter_over_projection:
        node = Filter(node.schema, Named(replaces, BinOp((Col(replaces),))), node)
    return scan, minutes, node


def test_a_filter_over_a_projection_runs_over_every_column_of_the_scan():
    scan, minutes, root = _plan()
    top, why = _filter_chain(scan, _parents(root))
    assert why == ""
    # the plan's own filter made again over the with_columns: the scan's columns all pass
    assert type(top).__name__ == "Filter" and top is not root
    assert top.mask is root.mask and top.children == (minutes,) and set(top.schema) == {*SCAN, "m"}


def test_a_with_columns_over_a_projection_is_made_again_over_the_scan():
    scan, minutes, root = _plan(projection_over_scan=True)
    top, why = _filter_chain(scan, _parents(root))
    (again,) = top.children
    assert type(again).__name__ == "HStack" and again is not minutes
    assert again.columns is minutes.columns and again.children == (scan,)
    assert set(again.schema) == set(top.schema) == {*SCAN, "m"}


def test_without_a_filter_above_the_projection_the_scan_predicate_is_the_chain():
    scan, _, root = _plan(filter_over_projection=False)
    top, why = _filter_chain(scan, _parents(root))
    assert top is scan and why == ""


def test_a_with_columns_replacing_a_column_of_the_scan_ends_the_chain():
    # over the scan's columns it would hand the cut a changed column b
    scan, _, root = _plan(replaces="b")
    top, why = _filter_chain(scan, _parents(root))
    assert top is scan and why == ""


def test_a_filter_that_is_not_row_wise_ends_the_chain():
    scan = PythonScan({"a": int}, None)
    root = Filter(scan.schema, Named("a", Rolling((Col("a"),))), scan)
    top, why = _filter_chain(scan, _parents(root))
    assert top is None and "Filter of" in why and "Rolling" in why

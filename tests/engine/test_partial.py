"""A plan refused in part: its largest accepted parts replaced by their answers, polars
running the rest (engine/partial.py).

On any machine the parts' answers come from polars itself, computed apart from the
plan (what the GPU would hand back), and the spliced plan's answer is compared with
the plan's own; the GPU computes the parts in tests/engine/test_partial_gpu.py.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import workbench as wb
from workbench.engine import partial


def _kind(nt) -> str:
    return type(nt.view_current_node()).__name__


def _table(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"k": rng.integers(0, 5, n), "v": rng.integers(0, 100, n),
                         "w": rng.normal(size=n)})


def _opaque(df: pl.DataFrame) -> pl.DataFrame:
    """A Python function over a frame (its schema kept): what the GPU engine never runs."""
    return df.with_columns(pl.col(df.columns[1]) * 2).sort("k")


def test_the_largest_accepted_part_below_a_python_function_is_handed_over():
    wb.init(backend="cpu")
    x = _table(500, 0)
    below = wb.Frame.from_polars(x).lazy().filter(pl.col("w") > 0).group_by("k").agg(pl.col("v").sum())
    lf = below.map_batches(_opaque)
    seen = []

    def run(nt):
        seen.append(_kind(nt))
        return below.collect()  # the group-by's answer, as the GPU would give it

    answer, ran = partial.collect(lf, lambda nt: True, run)
    assert ran == ["GroupBy"] and seen == ["GroupBy"]
    assert_frame_equal(answer, lf.collect())


def test_parts_refused_are_searched_below_and_parts_given_up_left_to_polars():
    wb.init(backend="cpu")
    x, y = _table(400, 1), _table(300, 2).rename({"v": "u"})
    fx, fy = wb.Frame.from_polars(x), wb.Frame.from_polars(y)
    left = fx.lazy().group_by("k").agg(pl.col("v").sum())
    right = fy.lazy().group_by("k").agg(pl.col("u").max())
    lf = left.join(right, on="k").map_batches(_opaque)
    answers = {("k", "v"): left.collect(), ("k", "u"): right.collect()}

    def run(nt):  # the join is refused: each side's group-by is taken
        return answers[tuple(nt.get_schema())]

    answer, ran = partial.collect(lf, lambda nt: _kind(nt) != "Join", run)
    assert ran == ["GroupBy", "GroupBy"]
    assert_frame_equal(answer.sort("k"), lf.collect().sort("k"))
    # a part the GPU gives up on (out of memory, say) is left to polars
    answer, ran = partial.collect(lf, lambda nt: _kind(nt) != "Join", lambda nt: None)
    assert ran == [] and answer.sort("k").equals(lf.collect().sort("k"))


def test_nothing_is_handed_over_when_only_reads_are_below():
    wb.init(backend="cpu")
    lf = wb.Frame.from_polars(_table(50, 3)).lazy().map_batches(_opaque)
    answer, ran = partial.collect(lf, lambda nt: True, lambda nt: pytest.fail("no part to run"))
    assert ran == [] and answer.equals(lf.collect())


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 300), seed=st.integers(0, 2**16), cut=st.floats(-1, 1),
       refuse_group_by=st.booleans())
def test_a_spliced_plan_answers_as_the_plan(n, seed, cut, refuse_group_by):
    # refusing the group-by sends the search below it, to the filter and its input
    wb.init(backend="cpu")
    x = _table(n, seed)
    filtered = wb.Frame.from_polars(x).lazy().with_columns((pl.col("w") * 3).alias("w3")) \
        .filter(pl.col("w3") > cut)
    grouped = filtered.group_by("k").agg(pl.col("v").sum(), pl.col("w3").max())
    lf = grouped.map_batches(_opaque)

    def run(nt):
        return (grouped if _kind(nt) == "GroupBy" else filtered).collect()

    refuse = {"GroupBy"} if refuse_group_by else set()
    answer, ran = partial.collect(lf, lambda nt: _kind(nt) not in refuse, run)
    assert ran and ("GroupBy" in ran) is not refuse_group_by
    assert_frame_equal(answer, lf.collect())
    # what wb.explain says the GPU would run is what ran
    assert partial.parts(lf, lambda nt: _kind(nt) not in refuse) == ran

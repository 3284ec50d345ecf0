"""Filters on a rank within groups over a Frame, as a threshold per group (engine/ranked.py).

The thresholds' query runs through polars on the CPU here and through workbench.collect on
the GPU (tests/engine/test_natural_gpu.py); the answer, row order included, must be polars'.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import workbench as wb
from workbench.engine import natural


def _table(n: int, seed: int, groups: int, nulls: bool) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    keys = pl.Series("k", rng.integers(0, groups, n))
    # few distinct values: ties within a group are common
    v = pl.Series("v", rng.integers(0, 6, n).astype(np.float64))
    s = pl.Series("s", [f"id{i:03d}" for i in rng.integers(0, groups, n)])
    if nulls and n:
        keys = keys.scatter(np.flatnonzero(rng.random(n) < 0.1), None)
        v = v.scatter(np.flatnonzero(rng.random(n) < 0.1), None)
    return pl.DataFrame([keys, s, v, pl.Series("w", rng.integers(0, 100, n))])


def _answers_as_polars(df: pl.DataFrame, plan) -> None:
    """``plan`` over a Frame of ``df`` is rewritten, and answers as polars, in order."""
    lf = plan(wb.Frame.from_polars(df).lazy())
    assert natural.rewritable(lf)
    assert_frame_equal(natural.collect(lf, pl.LazyFrame.collect), plan(df.lazy()).collect())


RANKS = {
    "at_most": lambda r, n: r <= n,
    "below": lambda r, n: r < n,
    "mirrored": lambda r, n: n >= r,
    "equal": lambda r, n: r == n,
}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.integers(0, 2**31 - 1), st.integers(1, 30), st.booleans(),
       st.integers(0, 5), st.booleans(), st.sampled_from(sorted(RANKS)),
       st.sampled_from([["k"], ["s"], ["k", "s"]]), st.sampled_from(["v", "w"]),
       st.sampled_from(["min", "max", "average", "ordinal"]))
def test_a_rank_filter_per_group_answers_as_polars_in_row_order(n, seed, groups, nulls, top,
                                                                descending, how, keys, value,
                                                                method):
    wb.init(backend="cpu")
    df = _table(n, seed, groups, nulls)
    _answers_as_polars(df, lambda x: x.filter(RANKS[how](
        pl.col(value).rank(method, descending=descending).over(keys), top)).select("s", "v", "w"))


def test_the_rows_of_a_filter_below_the_rank_are_ranked_alone():
    wb.init(backend="cpu")
    df = _table(3000, 1, 12, nulls=True)
    _answers_as_polars(df, lambda x: x.filter(pl.col("w") > 30)
                       .filter(pl.col("v").rank("min", descending=True).over("k") == 1))


def test_with_one_key_the_runner_computes_the_thresholds_and_keeps_the_rows():
    from workbench.engine.plan import inspect

    wb.init(backend="cpu")
    df = _table(5000, 2, 40, nulls=False)
    frame = wb.Frame.from_polars(df)
    plan = lambda x: x.filter(pl.col("v").rank("min", descending=True).over("k") <= 2)
    pieces = []

    def run(piece):
        pieces.append(piece)
        return piece.collect()

    got = natural.collect(plan(frame.lazy()), run)
    thresholds, rows = pieces
    assert thresholds.collect().height == df["k"].n_unique()  # one row per group
    assert inspect(thresholds).split.keys[id(frame)] == ("k",)  # split by key
    assert inspect(rows).split.by_rows  # the rows kept row by row, in order
    assert_frame_equal(got, plan(df.lazy()).collect())


def test_with_several_keys_polars_keeps_the_rows():
    wb.init(backend="cpu")
    df = _table(3000, 6, 10, nulls=True)
    plan = lambda x: x.filter(pl.col("v").rank("min").over("k", "s") < 3)
    pieces = []
    got = natural.collect(plan(wb.Frame.from_polars(df).lazy()),
                          lambda piece: pieces.append(piece) or piece.collect())
    assert len(pieces) == 1  # the thresholds alone
    assert_frame_equal(got, plan(df.lazy()).collect())


@pytest.mark.parametrize("plan, rewritten", [
    (lambda x: x.filter(pl.col("v").rank("dense", descending=True).over("k") <= 2), False),
    (lambda x: x.filter(pl.col("v").rank("min").over("k") > 2), False),  # the bottom rows kept
    (lambda x: x.filter(pl.col("v").rank("min").over("k") == 2), True),  # within the top 2
    (lambda x: x.filter(pl.col("v").rank("min").over("v") <= 2), False),  # ranked by its own value
    (lambda x: x.head(100).filter(pl.col("v").rank("min").over("k") <= 2), False),  # a limit first
    (lambda x: x.filter(pl.col("v").rank("min").over("k") <= 2).head(3), True),  # polars finishes
    (lambda x: x.filter(pl.col("v").rank("min").over("k") == 1).group_by("k").len(), True),
    (lambda x: x.filter((pl.col("v").rank("max").over("k") <= 3) & (pl.col("w") > 40)), True),
    (lambda x: x.filter(pl.col("w") < 70, pl.col("v").rank("ordinal").over("k") < 3), True),
    (lambda x: x.filter((pl.col("v").rank("min").over("k") <= 3) | (pl.col("w") > 90)), False),
], ids=["dense", "greater", "equal-two", "own-key", "limit-before", "limit-after", "grouped-after",
        "and", "two-predicates", "or"])
def test_only_top_n_rank_filters_over_a_frame_are_rewritten(plan, rewritten):
    wb.init(backend="cpu")
    df = _table(500, 3, 7, nulls=False)
    lf = plan(wb.Frame.from_polars(df).lazy())
    assert natural.rewritable(lf) == rewritten
    want = plan(df.lazy()).collect()
    got = natural.collect(lf, pl.LazyFrame.collect) if rewritten else lf.collect()
    if want.columns == ["k", "len"]:  # a group-by's rows come in no set order
        got, want = got.sort("k"), want.sort("k")
    assert_frame_equal(got, want)


def test_a_value_column_holding_nan_is_left_as_written():
    wb.init(backend="cpu")
    df = pl.DataFrame({"k": [1, 1, 1, 2], "v": [float("nan"), 1.0, 2.0, 3.0]})
    lf = wb.Frame.from_polars(df).lazy().filter(
        pl.col("v").rank("min", descending=True).over("k") <= 1)
    assert not natural.rewritable(lf)


def test_the_thresholds_query_splits_by_key_where_the_filter_does_not():
    from workbench.engine.plan import inspect

    wb.init(backend="cpu")
    frame = wb.Frame.from_polars(_table(2000, 4, 9, nulls=True))
    lf = frame.lazy().filter(pl.col("v").rank("min", descending=True).over("k", "s") <= 2)
    assert inspect(lf).split is None  # its answer keeps the frame's row order
    pieces = []
    natural.collect(lf, lambda piece: pieces.append(piece) or piece.collect())
    (piece,) = pieces
    split = inspect(piece).split
    assert split is not None and set(split.keys[id(frame)]) <= {"k", "s"}
    assert not split.simple  # its window is split by key at once, never streamed
    assert not natural.rewritable(piece, ranks=False)  # no group-by rewrite beneath it


def test_the_rewrite_is_chosen_only_beyond_the_resident_limit():
    from tests.profiles import hardware_profile
    from workbench.engine import strategy
    from workbench.engine.collect import ranks_beyond_memory
    from workbench.engine.plan import inspect
    from workbench.memory import choose

    wb.init(backend="cpu")
    frame = wb.Frame.from_polars(_table(4000, 5, 9, nulls=False))
    lf = frame.lazy().filter(pl.col("v").rank("min", descending=True).over("k") <= 2)
    policy, info = choose(hardware_profile("h100"), budget="1GB"), inspect(lf)
    small = strategy.choose(info, policy, resident_limit=10**9)  # fits: the GPU runs it as written
    assert small.executor == "in-memory" and not ranks_beyond_memory(lf, info, small)
    large = strategy.choose(info, policy, resident_limit=1000)
    assert large.executor != "in-memory" and ranks_beyond_memory(lf, info, large)
    grouped = frame.lazy().group_by("k").agg(pl.col("v").median())  # splits: no rank filter
    assert not ranks_beyond_memory(grouped, inspect(grouped), large)


def test_a_plan_reading_other_scans_is_left_whole():
    from tests.profiles import hardware_profile
    from workbench.engine import strategy
    from workbench.engine.collect import ranks_beyond_memory
    from workbench.engine.plan import inspect
    from workbench.memory import choose

    wb.init(backend="cpu")
    df = _table(4000, 7, 9, nulls=False)
    top = wb.Frame.from_polars(df).lazy().filter(pl.col("v").rank("min").over("k") <= 2)
    joined = top.join(wb.Frame.from_polars(df.select("k", "w")).lazy(), on="k")
    info = inspect(joined)
    choice = strategy.choose(info, choose(hardware_profile("h100"), budget="1GB"), resident_limit=1000)
    assert natural.rewritable(joined) and not ranks_beyond_memory(joined, info, choice)

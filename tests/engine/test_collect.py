"""workbench.collect on the CPU: results equal polars', the fallback contract, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench as wb
from tests.queries import QUERIES, table
from workbench.errors import GPUFallbackWarning, GPUUnavailableError


def _frame(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "k": pl.Series([None if s == "" else s for s in rng.choice(["a", "b", "c", ""], n)], dtype=pl.String),
        "g": rng.integers(0, 5, n),
        "v": rng.normal(size=n),
    })


def test_collect_over_frames_equals_polars_on_every_cpu_engine():
    df = table()
    frame = wb.Frame.from_polars(df)
    for name, query in QUERIES.items():
        expected = query(df.lazy()).collect()
        for engine in ("auto", "cpu", "streaming"):
            assert_frame_equal(wb.collect(query(frame.lazy()), engine=engine), expected,
                               check_exact=False, rel_tol=1e-9), (name, engine)


@settings(max_examples=20, deadline=None)
@given(threshold=st.floats(-3, 3), limit=st.integers(1, 300_000),
       how=st.sampled_from(["sum", "first", "last", "cum_sum", "head"]))
def test_a_frame_streamed_in_batches_answers_as_polars_in_memory(big_frame, threshold, limit, how):
    """polars' streaming engine reads a Frame in batches of 100,000 rows: answers, and
    the row order of the ones that have one, are polars' in memory."""
    df, frame = big_frame
    v = pl.col("v")
    if how == "head":
        q = lambda lf: lf.filter(v > threshold).head(limit)
    elif how == "cum_sum":
        q = lambda lf: lf.filter(v > threshold).select(v.cum_sum()).tail(3)
    else:
        q = lambda lf: lf.filter(v > threshold).group_by("g").agg(getattr(v, how)(), pl.len()).sort("g")
    assert_frame_equal(wb.collect(q(frame.lazy()), engine="streaming"), q(df.lazy()).collect(),
                       check_exact=False, rel_tol=1e-9)


@pytest.fixture(scope="module")
def big_frame():
    wb.init(backend="auto")
    df = _frame(250_000, 7)
    return df, wb.Frame.from_polars(df)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 300), st.integers(0, 2**31 - 1), st.floats(-2, 2))
def test_filters_pushed_into_the_scan_are_applied(n, seed, threshold):
    df = _frame(n, seed)
    frame = wb.Frame.from_polars(df)
    q = lambda lf: lf.filter(pl.col("v") > threshold).select(pl.col("v").sum(), pl.len())
    assert_frame_equal(wb.collect(q(frame.lazy())), q(df.lazy()).collect())


def test_gpu_engine_without_a_gpu_falls_back_with_a_warning_and_a_log_entry():
    session = wb.init(backend="auto")
    assert not session.gpu
    frame = wb.Frame.from_polars(_frame())
    with pytest.warns(GPUFallbackWarning, match="ran on the CPU"):
        out = wb.collect(frame.lazy().select(pl.len()), engine="gpu")
    assert out.item() == 2000
    assert any("could not run on the GPU" in message for _, message in session.log)


def test_raise_on_fail_turns_the_fallback_into_an_error():
    wb.init(backend="auto")
    frame = wb.Frame.from_polars(_frame())
    with pytest.raises(GPUUnavailableError, match="could not run on the GPU"):
        wb.collect(frame.lazy(), engine="gpu", raise_on_fail=True)


def test_auto_on_a_cpu_machine_is_quiet():
    wb.init(backend="auto")
    frame = wb.Frame.from_polars(_frame())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert wb.collect(frame.lazy().select(pl.len())).item() == 2000


def test_bad_engine_and_bad_input_are_named():
    with pytest.raises(ValueError, match="auto, cpu, gpu, streaming"):
        wb.collect(pl.LazyFrame({"a": [1]}), engine="tpu")
    with pytest.raises(TypeError, match="LazyFrame"):
        wb.collect(pl.DataFrame({"a": [1]}))


def test_a_changed_frame_is_never_stale():
    frame = wb.Frame.from_polars(pl.DataFrame({"v": [1, 2, 3]}))
    q = frame.lazy().select(pl.col("v").sum())
    assert wb.collect(q).item() == 6
    frame["v"] = [10, 20, 30]
    assert wb.collect(frame.lazy().select(pl.col("v").sum())).item() == 60


def test_as_frame_returns_a_frame_that_queries_chain_over():
    df = _frame()
    frame = wb.Frame.from_polars(df)
    q = lambda lf: lf.group_by("k").agg(pl.col("v").sum(), pl.len()).sort("k")
    result = wb.collect(q(frame.lazy()), as_frame=True)
    assert isinstance(result, wb.Frame)
    assert_frame_equal(result.to_polars(), q(df.lazy()).collect())
    again = wb.collect(result.lazy().filter(pl.col("len") > 0).select(pl.col("v").sum()))
    assert again.item() == pytest.approx(df["v"].sum())
    assert result.shape == (4, 3) and result.columns == ["k", "v", "len"]


def test_a_failure_inside_a_task_group_is_named_by_its_inner_error():
    from workbench.errors import reason as _reason

    inner = RuntimeError("CUDA error encountered: cudaErrorInvalidValue invalid argument\nmore")
    group = ExceptionGroup("unhandled errors in a TaskGroup", [ExceptionGroup("nested", [inner])])
    assert _reason(group) == "RuntimeError: CUDA error encountered: cudaErrorInvalidValue invalid argument"
    assert _reason(ValueError("plain")) == "ValueError: plain"

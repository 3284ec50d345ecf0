"""A plan the GPU engine refuses in part: the parts it accepts run on the GPU, polars the
rest, with a warning that says so (engine/partial.py)."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import workbench as wb
from tests.engine.test_partial import _opaque, _table
from workbench.errors import GPUFallbackWarning, GPUUnavailableError

pytestmark = pytest.mark.gpu


def test_the_parts_below_a_python_function_run_on_the_gpu():
    s = wb.init(backend="gpu")
    x, y = _table(1_000_000, 0), _table(1000, 1).rename({"v": "u"})
    fx, fy = wb.Frame.from_polars(x), wb.Frame.from_polars(y)

    def plan(a, b):
        grouped = a.filter(pl.col("w") > 0).group_by("k").agg(pl.col("v").sum(), pl.len())
        return grouped.join(b.group_by("k").agg(pl.col("u").max()), on="k").map_batches(_opaque)

    told = wb.explain(plan(fx.lazy(), fy.lazy()))
    assert told.executor == "partial" and "below the refused one (Join)" in str(told), str(told)
    mark, moved = len(s.log), len(s.transfers)
    with pytest.warns(GPUFallbackWarning, match="part of collect"):
        got = wb.collect(plan(fx.lazy(), fy.lazy()))
    assert_frame_equal(got, plan(x.lazy(), y.lazy()).collect(), check_exact=False, rel_tol=1e-9)
    notes = [m for _, m in s.log[mark:]]
    assert any("the GPU ran the steps below it (Join)" in m for m in notes), notes
    assert any(t.what == "part of a plan, for polars" for t in s.transfers.since(moved))
    with pytest.raises(GPUUnavailableError):
        wb.collect(plan(fx.lazy(), fy.lazy()), raise_on_fail=True)
    # the next query runs on the GPU whole, as if nothing had been refused
    q = fx.lazy().group_by("k").agg(pl.col("w").mean()).sort("k")
    assert wb.explain(q).executor == "in-memory"
    assert_frame_equal(wb.collect(q, raise_on_fail=True), q.collect(), check_exact=False, rel_tol=1e-9)

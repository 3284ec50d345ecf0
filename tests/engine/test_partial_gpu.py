"""A plan the GPU engine refuses in part: the parts it accepts run on the GPU, polars the
rest, with a warning that says so (engine/partial.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

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


CHILD = textwrap.dedent("""
    import json
    import warnings
    import numpy as np, polars as pl
    import workbench as wb
    from polars.testing import assert_frame_equal

    s = wb.init(backend="gpu", budget="256MB")
    rng = np.random.default_rng(0)
    n = 40_000_000  # 40e6 x (4 + 8 + 8) bytes = 800 MB: ~3x the budget
    x = pl.DataFrame({"k": rng.integers(0, 1000, n).astype(np.int32),
                      "v": rng.integers(0, 100, n), "w": rng.normal(size=n)})
    fx = wb.Frame.from_polars(x)

    def opaque(df):  # a Python function over a frame: what the GPU engine never runs
        return df.with_columns(pl.col("v") * 2).sort("k")

    def plan(a):
        return a.filter(pl.col("w") > 0).group_by("k").agg(pl.col("v").sum(), pl.len()) \\
            .map_batches(opaque)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = wb.collect(plan(fx.lazy()))
    assert_frame_equal(got, plan(x.lazy()).collect())
    told = str(wb.explain(plan(fx.lazy())))
    q = fx.lazy().group_by("k").agg(pl.col("w").max()).sort("k")  # then a whole query on the GPU
    after = wb.collect(q, raise_on_fail=True)
    assert_frame_equal(after, q.collect())
    print(json.dumps({"warnings": [str(w.message) for w in caught], "told": told}))
""")


def test_a_refused_plan_over_more_than_the_budget_streams_its_parts_on_the_gpu():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    parts = [w for w in out["warnings"] if "part of collect" in w]
    assert parts and "the GPU ran the steps below it (GroupBy streamed)" in parts[0], out
    assert out["told"].startswith("runs in part on the GPU"), out["told"]

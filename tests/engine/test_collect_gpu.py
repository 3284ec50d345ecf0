"""What the session's first GPU query sets going for the ones after it."""

from __future__ import annotations

import sys

import polars as pl
import pytest

import workbench as wb

pytestmark = pytest.mark.gpu


def test_the_first_gpu_query_imports_the_streaming_executor_in_the_background():
    from workbench.engine.cudf_polars import _STREAMING_MODULES, warm_streaming

    wb.init(backend="gpu")
    assert wb.collect(pl.LazyFrame({"a": [1, 2]}).select(pl.col("a").sum()), raise_on_fail=True)["a"][0] == 3
    thread = warm_streaming()  # the one the query started
    thread.join(120)
    assert not thread.is_alive()
    assert all(name in sys.modules for name in _STREAMING_MODULES), \
        [n for n in _STREAMING_MODULES if n not in sys.modules]

"""top_k and corr per group, as users write them, answered on the GPU (no CPU fallback)."""

from __future__ import annotations

import pytest
from polars.testing import assert_frame_equal

import workbench as wb
from tests.engine.test_natural import PLANS, _canon, _x

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("name", sorted(PLANS))
def test_natural_wordings_run_on_the_gpu(name):
    s = wb.init(backend="gpu")
    x = _x(1_000_000, 7, nulls=name in ("q8", "after"))
    lf = PLANS[name](wb.Frame.from_polars(x).lazy())
    assert wb.explain(lf).executor == "rewritten"
    mark = len(s.log)
    got = wb.collect(lf, raise_on_fail=True)
    notes = [m for _, m in s.log[mark:]]
    assert any("forms the GPU engine has" in m for m in notes), notes
    assert not any("CPU" in m or "fell back" in m for m in notes), notes
    want = PLANS[name](x.lazy()).collect()
    assert_frame_equal(_canon(got), _canon(want), check_exact=False, rel_tol=1e-6, abs_tol=1e-9)

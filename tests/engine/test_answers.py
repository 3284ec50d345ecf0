"""Every query of ``tests/queries.py`` gives polars' CPU answer on every backend.

The GPU case runs the query through ``wb.collect`` on a GPU session with
``raise_on_fail=True``: an answer computed on the CPU behind our back fails it.
"""

from __future__ import annotations

import pytest
from polars.testing import assert_frame_equal

import workbench as wb
from tests.queries import GPU_UNSUPPORTED, QUERIES, table
from workbench.errors import GPUFallbackWarning

BACKENDS = [
    pytest.param("cpu", id="cpu"),
    pytest.param("streaming", id="cpu-streaming"),
    pytest.param("gpu", id="gpu", marks=pytest.mark.gpu),
]


@pytest.fixture(scope="module")
def data():
    return table(20_000)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_answers_equal_polars_cpu(name, backend, data):
    query = QUERIES[name]
    expected = query(data.lazy()).collect()
    if backend == "gpu" and name in GPU_UNSUPPORTED:
        wb.init(backend="gpu")  # the contract: answered on the CPU, with a warning
        with pytest.warns(GPUFallbackWarning, match="could not run on the GPU"):
            got = wb.collect(query(wb.Frame.from_polars(data).lazy()))
    elif backend == "gpu":
        wb.init(backend="gpu")
        got = wb.collect(query(wb.Frame.from_polars(data).lazy()), raise_on_fail=True)
    else:
        wb.init(backend="cpu")
        got = wb.collect(query(wb.Frame.from_polars(data).lazy()), engine=backend)
    assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-9, abs_tol=1e-9,
                       check_dtypes=backend != "gpu" or name != "quantile")

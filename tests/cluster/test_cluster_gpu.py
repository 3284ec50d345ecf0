"""A query and a fit on a one-GPU dask-cuda cluster equal the single-process answers, and
the session's memory policy is the worker's."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import workbench as wb
from workbench.cluster import worker_policy
from workbench.datasets.partitioned import load_dask, write_partitioned
from workbench.engine.distributed import ClusterFallbackWarning, collect_on_cluster
from workbench.errors import GPUFallbackWarning
from workbench.ml.distributed import fit_on_cluster
from workbench.ml.split import held_out
from workbench.session import current_session

pytestmark = pytest.mark.gpu

BUDGET = "8GB"
FEATURES = ["id4", "id5", "v1", "v2"]


def _session():
    return wb.init(backend="gpu", budget=BUDGET)  # the same policy in every test of the process


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_partitioned("h2o_groupby", tmp_path_factory.mktemp("d") / "g", 400_000, 8, k=50)


@pytest.fixture
def client():
    _session()
    with wb.cluster(n_workers=1) as c:
        yield c


def _same(got, expected):
    assert_frame_equal(got.sort(got.columns[:2]), expected.sort(expected.columns[:2]),
                       check_exact=False, rel_tol=1e-9, check_dtypes=False)


def test_the_worker_runs_the_session_policy(client):
    (seen,) = client.run(worker_policy).values()
    assert seen["backend"] == "gpu"
    assert seen["policy"]["budget"] == _session().policy.budget
    assert "LimitingResourceAdaptor" in seen["resources"]
    assert "StatisticsResourceAdaptor" in seen["resources"]


def test_a_query_on_gpu_workers_equals_one_process(client, data):
    lf = (pl.scan_parquet(f"{data}/*.parquet").filter(pl.col("v1") > 1)
          .group_by("id1", "id4").agg(pl.col("v1").sum(), pl.col("v3").mean(), pl.len()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", GPUFallbackWarning)
        warnings.simplefilter("error", ClusterFallbackWarning)
        got = collect_on_cluster(lf, client, raise_on_fail=True)
    _same(got, wb.collect(lf))  # single process, on the GPU
    _same(got, lf.collect())  # and polars on the CPU
    assert any("DaskEngine" in m for _, m in current_session().log)


def test_a_gpu_query_can_be_written_as_parquet(client, data, tmp_path):
    lf = pl.scan_parquet(f"{data}/*.parquet").group_by("id2").agg(pl.col("v3").sum())
    out = collect_on_cluster(lf, client, sink=tmp_path / "r.parquet", raise_on_fail=True)
    _same(pl.read_parquet(out), lf.collect())


def test_an_xgboost_fit_on_gpu_workers_equals_one_process(client, data):
    xgboost = pytest.importorskip("xgboost")
    params = {"n_estimators": 20, "max_depth": 5}
    fit = fit_on_cluster("xgboost_regressor", str(data), "v3", FEATURES, client, **params)
    assert fit.backend == "gpu"
    df = pl.read_parquet(f"{data}/*.parquet")
    train = df.filter(~pl.Series(held_out(0, len(df), 0.2, 0)))
    ref = xgboost.XGBRegressor(tree_method="hist", device="cuda", **params).fit(
        train.select(FEATURES).to_numpy().astype("float32"), train["v3"].to_numpy())
    X = df.select(FEATURES).to_numpy().astype("float32")[:5000]
    np.testing.assert_allclose(fit.estimator.predict(X), ref.predict(X), rtol=1e-5)


def test_a_cuml_dask_linear_regression_equals_one_process(client, data):
    from cuml.linear_model import LinearRegression

    fit = fit_on_cluster("linear_regression", str(data), "v3", FEATURES, client)
    df = pl.read_parquet(f"{data}/*.parquet")
    train = df.filter(~pl.Series(held_out(0, len(df), 0.2, 0)))
    ref = LinearRegression().fit(train.select(FEATURES).to_numpy().astype("float32"),
                                 train["v3"].to_numpy().astype("float32"))
    np.testing.assert_allclose(_numpy(fit.estimator.coef_), _numpy(ref.coef_), rtol=1e-3, atol=1e-4)
    assert 0 < fit.metrics["rmse"] < 40


def test_load_dask_gives_cudf_partitions_on_the_gpu(data):
    _session()
    ddf = load_dask(data)
    assert type(ddf._meta).__module__.startswith("cudf")
    assert len(ddf) == 400_000


def _numpy(values) -> np.ndarray:
    """A cuML attribute (a cudf Series, a CuPy or NumPy array, as the input was) on the host."""
    for to_host in ("to_numpy", "get"):
        if hasattr(values, to_host):
            return np.asarray(getattr(values, to_host)())
    return np.asarray(values)

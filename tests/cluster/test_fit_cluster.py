"""``wb.ml.fit(..., cluster=client)`` on a plain Dask LocalCluster (two worker processes)
trains the model a single-process ``wb.ml.fit`` trains."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from distributed import Client, LocalCluster

import workbench as wb
from workbench.datasets import write_partitioned
from workbench.frame import Frame
from workbench.session import current_session

FEATURES = ["id4", "id5", "v1", "v2"]
PARAMS = {"n_estimators": 15, "max_depth": 4}


@pytest.fixture(scope="module")
def client():
    with LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_partitioned("h2o_groupby", tmp_path_factory.mktemp("d") / "g", 40_000, 8, k=20)


@pytest.mark.parametrize("given", ["paths", "frame"])
def test_a_cluster_fit_predicts_what_one_process_fit_predicts(client, data, given):
    wb.init(backend="cpu")
    df = pl.read_parquet(f"{data}/*.parquet")
    paths = sorted(str(p) for p in data.glob("*.parquet"))
    source = paths if given == "paths" else Frame.from_parquet(data)
    fit = wb.ml.fit(source, "v3", FEATURES, model="xgboost_regressor", cluster=client, **PARAMS)
    local = wb.ml.fit(df, "v3", FEATURES, model="xgboost_regressor", **PARAMS)
    X = df.select(FEATURES).to_numpy().astype("float32")
    np.testing.assert_allclose(fit.estimator.predict(X), local.predict(df), rtol=1e-5, atol=1e-5)
    assert (fit.n_train, fit.n_test) == (local.n_train, local.n_test)
    assert fit.metrics["rmse"] == pytest.approx(local.metrics["rmse"], rel=1e-4)
    assert fit.backend == "cpu" and fit.features == FEATURES
    assert any("ml.fit xgboost_regressor on 2 CPU workers" in m for _, m in current_session().log)


def test_backend_and_scale_are_refused_with_a_cluster(client, data):
    with pytest.raises(ValueError, match="backend= and scale= do not apply with cluster="):
        wb.ml.fit(str(data), "v3", FEATURES, model="xgboost_regressor", cluster=client, scale=True)


def test_a_cluster_fit_is_a_model_that_predicts_labels_from_frames(client):
    import numpy as np
    import polars as pl

    import workbench as wb
    from workbench.ml.model import Model

    wb.init(backend="cpu")
    rng = np.random.default_rng(3)
    n = 4000
    x = rng.normal(size=n)
    df = pl.DataFrame({"x": x, "w": rng.normal(size=n),
                       "label": np.where(x > 0, "up", "down")})
    m = wb.ml.fit(df, "label", ["x", "w"], model="xgboost_classifier", cluster=client,
                  n_estimators=10, max_depth=2)
    assert isinstance(m, Model)
    assert m.classes_.tolist() == ["down", "up"]
    predicted = m.predict(df)
    assert set(predicted.tolist()) <= {"down", "up"}
    assert (predicted == df["label"].to_numpy()).mean() > 0.95
    assert m.score(df) > 0.95

"""The same query and the same fit on a real local Dask cluster (scheduler and two worker
processes) as in one process, a killed worker included."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import polars as pl
import psutil
import pytest
import xgboost
from hypothesis import HealthCheck, given, settings, strategies as st
from polars.testing import assert_frame_equal

import workbench as wb
from workbench.cluster import worker_policy
from workbench.datasets.partitioned import load_dask, write_partitioned
from workbench.engine.distributed import ClusterFallbackWarning, collect_on_cluster, to_dask
from workbench.ml.distributed import fit_on_cluster
from workbench.ml.split import held_out
from workbench.session import current_session

FEATURES = ["id4", "id5", "v1", "v2"]


@pytest.fixture(scope="module")
def client():
    wb.init(backend="cpu")
    with wb.cluster(n_workers=2, threads_per_worker=1) as c:
        yield c


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_partitioned("h2o_groupby", tmp_path_factory.mktemp("d") / "g", 40_000, 8, k=20)


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """Enough partitions that a worker can be killed while the rest are still to do."""
    return write_partitioned("h2o_groupby", tmp_path_factory.mktemp("m") / "g", 120_000, 48, k=20)


def _scan(path):
    return pl.scan_parquet(f"{path}/*.parquet")


def _same(got: pl.DataFrame, expected: pl.DataFrame):
    assert_frame_equal(got.sort(got.columns), expected.sort(expected.columns), check_exact=False,
                       rel_tol=1e-9)


QUERIES = {
    "sum by id1": lambda s: s.group_by("id1").agg(pl.col("v1").sum()),
    "filtered, five aggregations": lambda s: s.filter((pl.col("v1") > 2) & (pl.col("id1") != "id001"))
    .group_by("id3").agg(pl.col("v1").sum(), pl.col("v3").mean(), pl.len(),
                         pl.col("v2").count().alias("n"), pl.col("v3").min().alias("lo")),
    "two keys, or": lambda s: s.filter((pl.col("v3") < 5) | (pl.col("v2") == 15))
    .group_by("id4", "id5").agg(pl.col("v3").max(), pl.col("v1").sum()),
    "select and rename": lambda s: s.select("id4", pl.col("v3").alias("x")).filter(pl.col("x") > 99.5),
    "arithmetic in a filter": lambda s: s.filter(pl.col("v1") * 2 + pl.col("v2") >= 20)
    .group_by("id2").agg(pl.col("v3").sum()),
}


@pytest.mark.parametrize("name", QUERIES)
def test_a_query_on_cpu_workers_equals_one_process(client, data, name):
    lf = QUERIES[name](_scan(data))
    to_dask(lf)  # translated, not run here: the workers answer it
    _same(collect_on_cluster(lf, client), lf.collect())


def test_a_root_sort_is_kept(client, data):
    lf = _scan(data).group_by("id4", "id5").agg(pl.col("v3").max()).sort("id4", "id5",
                                                                         descending=[True, False])
    assert_frame_equal(collect_on_cluster(lf, client), lf.collect())


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(threshold=st.integers(0, 6), agg=st.sampled_from(["sum", "mean", "min", "max", "count"]),
       key=st.sampled_from(["id1", "id4", "id6"]), column=st.sampled_from(["v1", "v2", "v3"]))
def test_random_filters_and_aggregations_equal_polars(client, data, threshold, agg, key, column):
    lf = (_scan(data).filter(pl.col("v1") >= threshold)
          .group_by(key).agg(getattr(pl.col(column), agg)().alias("a")))
    _same(collect_on_cluster(lf, client), lf.collect())


def test_a_plan_dask_cannot_answer_runs_here_with_a_warning(client, data):
    lf = _scan(data).group_by("id4").agg(pl.col("v3").median())
    with pytest.warns(ClusterFallbackWarning, match="median is not translated"):
        got = collect_on_cluster(lf, client)
    _same(got, lf.collect())
    assert any("polars streaming in this process" in m for _, m in current_session().log)


def test_results_as_a_frame_and_as_parquet(client, data, tmp_path):
    lf = QUERIES["sum by id1"](_scan(data))
    frame = collect_on_cluster(lf, client, as_frame=True)
    assert isinstance(frame, wb.Frame)
    _same(frame.to_polars(), lf.collect())
    out = collect_on_cluster(lf, client, sink=tmp_path / "r.parquet")
    _same(pl.read_parquet(out), lf.collect())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.parquet"]  # no temporary left


def test_every_worker_has_the_session_policy(client):
    seen = client.run(worker_policy)
    assert len(seen) == 2
    assert all(w["backend"] == "cpu" and w["policy"]["mode"] == "cpu" for w in seen.values())


def _kill_when(client, ready, job):
    """Run ``job`` in a thread; kill a worker process once ``ready(client)`` names it."""
    out, thread = {}, None

    def run():
        try:
            out["result"] = job()
        except BaseException as err:  # noqa: BLE001 - re-raised below
            out["error"] = err

    pids = client.run(os.getpid)
    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while (victim := ready(client)) is None:
        assert thread.is_alive() and time.monotonic() < deadline, "the job ended before a kill"
        time.sleep(0.005)
    assert thread.is_alive(), "the job ended before the kill"
    psutil.Process(pids[victim]).kill()
    thread.join(300)
    if "error" in out:
        raise out["error"]
    client.wait_for_workers(2, timeout=120)
    return out["result"]


def _holding_results(client):
    held = {w: keys for w, keys in client.has_what().items() if keys}
    return next(iter(held), None)


def test_a_worker_killed_mid_query_changes_nothing(client, many):
    lf = QUERIES["filtered, five aggregations"](_scan(many))
    got = _kill_when(client, _holding_results, lambda: collect_on_cluster(lf, client))
    _same(got, lf.collect())
    assert len(client.run(worker_policy)) == 2  # the replacement has the policy too


def _reference(df: pl.DataFrame, target: str, model, **params):
    train = df.filter(~pl.Series(held_out(0, len(df), 0.2, 0)))
    return model(tree_method="hist", **params).fit(train.select(FEATURES).to_numpy().astype("float32"),
                                                   train[target].to_numpy())


def test_an_xgboost_fit_equals_one_process(client, data):
    df = pl.read_parquet(f"{data}/*.parquet")
    fit = fit_on_cluster("xgboost_regressor", str(data), "v3", FEATURES, client,
                         n_estimators=15, max_depth=4)
    ref = _reference(df, "v3", xgboost.XGBRegressor, n_estimators=15, max_depth=4)
    X = df.select(FEATURES).to_numpy().astype("float32")
    np.testing.assert_allclose(fit.estimator.predict(X), ref.predict(X), rtol=1e-6)
    test = ~held_out(0, len(df), 0.2, 0)
    assert (fit.n_train, fit.n_test) == (int(test.sum()), len(df) - int(test.sum()))
    expected_rmse = np.sqrt(np.mean((ref.predict(X[~test]) - df["v3"].to_numpy()[~test]) ** 2))
    assert fit.metrics["rmse"] == pytest.approx(expected_rmse, rel=1e-5)
    assert fit.backend == "cpu" and fit.task == "regression"


def test_a_classifier_on_string_labels_from_a_polars_frame(client, data):
    df = pl.read_parquet(f"{data}/*.parquet").select(*FEATURES, "id1")
    fit = fit_on_cluster("xgboost", df, "id1", FEATURES, client, n_estimators=5, max_depth=3)
    assert fit.model_name == "xgboost_classifier"
    assert list(fit.classes_) == sorted(df["id1"].unique().to_list())
    assert 0 <= fit.metrics["accuracy"] <= 1 and fit.n_test > 0


# A worker killed while XGBoost trains is not tested: XGBoost's tracker in the client
# process can abort the whole process (SIGABRT from native code) when a worker drops out
# of the collective, which no retry can catch. Queries survive killed workers (above).


def test_cuml_models_need_gpu_workers(client, data):
    with pytest.raises(ValueError, match="GPU workers only.*xgboost_classifier or xgboost_regressor"):
        fit_on_cluster("logistic_regression", str(data), "id1", FEATURES, client)


def test_a_partitioned_dataset_holds_the_catalog_rows(data):
    files = sorted(p.name for p in data.iterdir())
    assert files == [f"part-{i:05d}.parquet" for i in range(8)]
    sizes = [pl.scan_parquet(data / f).select(pl.len()).collect().item() for f in files]
    assert sizes == [5000] * 8
    expected = pl.from_arrow(wb.datasets.generate("h2o_groupby", 40_000, k=20))
    assert_frame_equal(pl.read_parquet(f"{data}/*.parquet"), expected)
    again = write_partitioned("h2o_groupby", data, 40_000, 8, k=20)  # reused, not rewritten
    assert again == data
    ddf = load_dask(data, backend="pandas")
    assert ddf.npartitions == 8 and len(ddf) == 40_000

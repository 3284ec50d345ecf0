"""wb.cluster: real Dask schedulers and worker processes, CPU here, GPU where there is one."""

from __future__ import annotations

import dask.dataframe as dd
import polars as pl
import pytest
from distributed import Client, LocalCluster
from polars.testing import assert_frame_equal

import workbench as wb
from workbench.errors import GPUFallbackWarning, GPUUnavailableError


def _by_id4(df) -> pl.DataFrame:
    return pl.from_pandas(df.reset_index()).sort("id4").with_columns(pl.col("v1").cast(pl.Int64))


def _expected(path) -> pl.DataFrame:
    return (pl.scan_parquet(f"{path}/*.parquet").group_by("id4").agg(pl.col("v1").sum())
            .sort("id4").collect())


@pytest.fixture(scope="module")
def groupby_data(tmp_path_factory):
    return wb.datasets.make("h2o_groupby", 50_000, path=tmp_path_factory.mktemp("data") / "g",
                            progress=False)


def test_local_cpu_workers_compute_and_stop_with_the_client(groupby_data):
    session = wb.init(backend="cpu")
    with wb.cluster(n_workers=2, threads_per_worker=1) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert isinstance(client.cluster, LocalCluster)
        ddf = dd.read_parquet(str(groupby_data))
        got = _by_id4(ddf.groupby("id4")["v1"].sum().compute())
        cluster = client.cluster
    assert_frame_equal(got, _expected(groupby_data), check_dtypes=False)
    assert cluster.status.name == "closed"  # the workers went with the client
    assert any("2 CPU workers" in m for _, m in session.log)


def test_an_existing_scheduler_is_joined_and_left_running():
    session = wb.init(backend="cpu")
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as shared:
        client = wb.cluster(shared.scheduler_address)
        assert type(client) is Client  # not a LocalClient: it owns nothing
        assert client.submit(sum, [1, 2, 3]).result() == 6
        client.close()
        assert shared.status.name == "running"
        with Client(shared.scheduler_address) as other:
            assert other.submit(max, [4, 9]).result() == 9
    assert any(shared.scheduler_address in m for _, m in session.log)


def test_gpu_workers_without_a_gpu_fall_back_or_raise():
    wb.init(backend="cpu")
    with pytest.raises(GPUUnavailableError, match="cluster could not run on the GPU"):
        wb.cluster(backend="gpu", strict=True)
    with pytest.warns(GPUFallbackWarning, match="cluster"):
        client = wb.cluster(backend="gpu", n_workers=1, threads_per_worker=1)
    with client:
        assert isinstance(client.cluster, LocalCluster)
        assert client.submit(len, "abc").result() == 3


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend must be one of auto, gpu, cpu"):
        wb.cluster(backend="tpu")


@pytest.mark.gpu
def test_gpu_workers_carry_the_memory_policy(groupby_data):
    import dask_cudf  # noqa: F401 - registers the cudf backend of dask.dataframe

    session = wb.init(backend="gpu", budget="8GB")  # the budget of the other cluster GPU tests

    def worker_chain():
        return [type(mr).__name__ for mr in wb.memory.resource_chain()]

    with wb.cluster(n_workers=1) as client:
        assert type(client.cluster).__name__ == "LocalCUDACluster"
        (chain,) = client.run(worker_chain).values()
        ddf = dd.read_parquet(str(groupby_data)).to_backend("cudf")
        got = _by_id4(ddf.groupby("id4")["v1"].sum().compute().to_pandas())
    assert "LimitingResourceAdaptor" in chain  # the budget reached the worker
    assert_frame_equal(got, _expected(groupby_data), check_dtypes=False)
    assert any("GPU workers" in m for _, m in session.log)

"""The memory policy on a real GPU: detection, RMM, CuPy, cuDF spilling, budgets.

``apply()`` is once per process, so every test that applies a policy runs it in a
fresh interpreter and reads back what it saw as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from workbench import hardware, memory

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def profile():
    pytest.importorskip("rmm")
    p = hardware.detect()
    if not p.has_usable_gpu:
        pytest.skip(f"no usable GPU: {p.platform}: {p.reason}")
    return p


def run_py(code: str, timeout: float = 300) -> dict:
    """Run code in a fresh interpreter; it prints one JSON line last."""
    prelude = textwrap.dedent("""
        import json, sys
        import rmm
        from workbench import hardware, memory

        def chain():
            return [type(mr).__name__ for mr in memory.resource_chain()]
    """)
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_detection_matches_the_cuda_runtime(profile):
    cupy = pytest.importorskip("cupy")
    props = cupy.cuda.runtime.getDeviceProperties(0)
    gpu = profile.gpu
    assert gpu.compute_capability == (props["major"], props["minor"])
    assert gpu.integrated == bool(props["integrated"])
    for key, value in [("pageableMemoryAccess", gpu.pageable_memory_access),
                       ("concurrentManagedAccess", gpu.concurrent_managed_access),
                       ("pageableMemoryAccessUsesHostPageTables", gpu.uses_host_page_tables)]:
        if key in props:
            assert bool(props[key]) == value, key
    assert profile.cuda_driver_version[0] * 1000 + profile.cuda_driver_version[1] * 10 == \
        cupy.cuda.runtime.driverGetVersion()
    assert profile.device_memory_free is not None and profile.device_memory_total is not None


def test_pcie_hopper_is_discrete_and_async(profile):
    """The test machines (H100, H200 over PCIe, no HMM/ATS): discrete, async pool, pinned."""
    if not any(model in profile.gpu.name for model in ("H100", "H200")) or profile.gpu.integrated:
        pytest.skip(f"checks a discrete H100/H200 test machine; this is {profile.gpu.name}")
    assert profile.platform == "discrete"
    assert not profile.gpu.pageable_memory_access and profile.gpu.host_register_supported
    assert profile.cuda_driver_version >= (13, 0)
    policy = memory.choose(profile)
    assert (policy.mode, policy.host_buffers, policy.spill) == ("async", "pinned", True)
    with pytest.raises(ValueError, match="PageableMemoryAccess"):
        memory.choose(profile, mode="system")


def test_apply_configures_rmm_cupy_and_cudf(profile):
    out = run_py("""
        import cupy
        policy = memory.choose(hardware.detect())
        assert policy.apply() is policy and memory.applied() is policy
        top = chain()
        before = memory.device_memory_stats()
        x = cupy.ones(100_000_000 // 8, dtype="float64")  # 100 MB through CuPy
        during = memory.device_memory_stats()
        del x
        same = policy.apply() is policy  # the same policy again: a no-op
        import cudf
        s = cudf.Series(range(1_000_000))
        try:
            memory.choose(hardware.detect(), budget="1GB").apply()
            raised = None
        except Exception as err:
            raised = type(err).__name__ + ": " + str(err)
        print(json.dumps({"mode": policy.mode, "chain": top, "before": before, "during": during,
                          "allocator": cupy.cuda.get_allocator().__name__, "spill": cudf.get_option("spill"),
                          "same": same, "raised": raised, "chain_after_cudf": chain(),
                          "sum": int(s.sum())}))
    """)
    base = {"async": "CudaAsyncMemoryResource", "pool": "PoolMemoryResource",
            "system": "SystemMemoryResource", "sam-headroom": "SamHeadroomMemoryResource"}[out["mode"]]
    assert out["chain"] == ["StatisticsResourceAdaptor", base]
    assert out["during"]["current_bytes"] - out["before"]["current_bytes"] >= 100_000_000
    assert out["during"]["peak_bytes"] >= 100_000_000
    assert out["allocator"] == "rmm_cupy_allocator"
    assert out["spill"] is (memory.choose(profile).spill)
    assert out["same"] is True
    assert out["raised"].startswith("PolicyAlreadyAppliedError") and "budget 1.0 GB" in out["raised"]
    assert "StatisticsResourceAdaptor" in out["chain_after_cudf"]  # cuDF stacks on ours
    assert out["sum"] == sum(range(1_000_000))


def test_budget_is_enforced(profile):
    out = run_py("""
        policy = memory.choose(hardware.detect(), budget="1GB")
        policy.apply()
        small = rmm.DeviceBuffer(size=500_000_000)
        try:
            rmm.DeviceBuffer(size=2_000_000_000)
            big = "allocated"
        except MemoryError as err:
            big = "MemoryError"
        stats = memory.device_memory_stats()
        print(json.dumps({"chain": chain(), "big": big, "stats": stats}))
    """)
    assert out["chain"][:2] == ["StatisticsResourceAdaptor", "LimitingResourceAdaptor"]
    assert out["big"] == "MemoryError"
    assert out["stats"]["current_bytes"] >= 500_000_000 and out["stats"]["budget"] == 10**9


def test_managed_mode_within_free_memory(profile):
    if not profile.gpu.concurrent_managed_access:
        pytest.skip("no concurrent managed access")
    out = run_py("""
        policy = memory.choose(hardware.detect(), mode="managed", budget="1GB")
        policy.apply()
        ok = rmm.DeviceBuffer(size=100_000_000)
        try:
            rmm.DeviceBuffer(size=2_000_000_000)
            big = "allocated"
        except MemoryError:
            big = "MemoryError"
        print(json.dumps({"chain": chain(), "big": big}))
    """)
    assert out["chain"] == ["StatisticsResourceAdaptor", "LimitingResourceAdaptor", "PoolMemoryResource",
                            "ManagedMemoryResource"]
    assert out["big"] == "MemoryError"


def test_polars_engine_allocates_through_the_policy(profile):
    pytest.importorskip("cudf_polars")
    out = run_py("""
        import polars as pl
        policy = memory.choose(hardware.detect(), budget="2GB").apply()
        before = memory.device_memory_stats()["total_count"]
        results = {}
        for executor in ("in-memory", "streaming"):
            engine = policy.polars_engine(executor, raise_on_fail=True)
            lf = pl.LazyFrame({"k": [i % 7 for i in range(100_000)], "v": list(range(100_000))})
            df = lf.group_by("k").agg(pl.col("v").sum()).sort("k").collect(engine=engine)
            results[executor] = int(df["v"].sum())
        after = memory.device_memory_stats()["total_count"]
        print(json.dumps({"results": results, "allocations": after - before,
                          "partition": engine.config["executor_options"]["target_partition_size"]}))
    """)
    assert out["results"] == {"in-memory": sum(range(100_000)), "streaming": sum(range(100_000))}
    assert out["allocations"] > 0
    assert out["partition"] == 2 * 10**9 // 16


def test_dask_cuda_accepts_the_kwargs(profile):
    pytest.importorskip("dask_cuda")
    out = run_py("""
        from dask_cuda import LocalCUDACluster
        from distributed import Client
        policy = memory.choose(hardware.detect(), budget="2GB")
        kwargs = policy.to_dask_cuda_kwargs()
        with LocalCUDACluster(n_workers=1, **kwargs) as cluster, Client(cluster) as client:
            chains = list(client.run(chain).values())
        print(json.dumps({"kwargs": kwargs, "chains": chains}))
    """, timeout=400)
    assert out["chains"], out
    assert "LimitingResourceAdaptor" in out["chains"][0]

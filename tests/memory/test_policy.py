"""Memory policy: the platform table, overrides, budgets, and what goes to polars / dask-cuda."""

from __future__ import annotations

import importlib.util
import json

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.profiles import GB, GiB, hardware_profile, profile_params
from workbench import memory
from workbench.memory import apply as memory_apply
from workbench.errors import GPUUnavailableError, MissingDependencyError, PolicyAlreadyAppliedError
from workbench.memory import MODES, choose, parse_budget

# profile -> (mode, host_buffers, spill) chosen by "auto" (DESIGN.md's table)
AUTO = {
    "gb10": ("system", "unified", False),
    "gh200": ("sam-headroom", "unified", False),
    "h100": ("async", "pinned", True),
    "hmm": ("async", "pinned", True),
    "wsl": ("pool", "plain", True),
    "none": ("cpu", "plain", False),
    "broken": ("cpu", "plain", False),
    "broken-no-device": ("cpu", "plain", False),
    "old-gpu": ("cpu", "plain", False),
}
# LocalCUDACluster's memory arguments in dask-cuda 26.10.
DASK_CUDA_ARGS = {
    "device_memory_limit", "enable_cudf_spill", "rmm_pool_size", "rmm_maximum_pool_size",
    "rmm_managed_memory", "rmm_async", "rmm_release_threshold", "rmm_allocator_external_lib_list",
}
SIZE_ARGS = {"device_memory_limit", "rmm_pool_size", "rmm_maximum_pool_size", "rmm_release_threshold"}


@pytest.fixture
def fresh_state(monkeypatch):
    """A process state with no policy applied (restored afterwards)."""
    monkeypatch.setattr(memory_apply, "_STATE", memory_apply._State())
    monkeypatch.delenv("CUDF_SPILL", raising=False)
    return memory_apply._STATE


@pytest.mark.parametrize("name", profile_params())
def test_auto_policy_per_platform(name):
    profile = hardware_profile(name)
    policy = choose(profile)
    assert (policy.mode, policy.host_buffers, policy.spill) == AUTO[name]
    assert policy.platform == profile.platform
    assert policy.budget is None
    text = policy.describe()
    assert profile.reason in text and policy.mode in text
    assert len(text.splitlines()) == len(policy.reasons) + 1
    json.dumps(policy.to_dict())
    if policy.host_buffers == "pinned":
        assert policy.pinned_limit == profile.host_memory_total // 2
    else:
        assert policy.pinned_limit == 0


def test_gb10_device_memory_is_mem_available():
    policy = choose(hardware_profile("gb10"))
    assert policy.device_memory == 110 * GB
    assert "MemAvailable" in policy.describe()


def test_discrete_device_memory_is_the_gpu():
    policy = choose(hardware_profile("h100"))
    assert policy.device_memory == 80 * GB and policy.gpu_memory == 80 * GB


def test_gh200_headroom_and_capacity():
    policy = choose(hardware_profile("gh200"))
    assert policy.headroom == 6 * GB  # a sixteenth of 96 GB of HBM
    # System allocations reach host memory too: a budget may exceed HBM.
    big = choose(hardware_profile("gh200"), budget="200GB")
    assert big.budget == 200 * GB


@pytest.mark.parametrize("budget, expected", [
    ("8GB", 8 * GB), ("8GiB", 8 * GiB), ("512MB", 512 * 10**6), (8_000_000_000, 8 * GB),
    (0.5, 40 * GB), ("50%", 40 * GB), ("0.25", 20 * GB), (1.0, 80 * GB), ("1.5 gb", 1_500_000_000),
])
def test_budget_forms(budget, expected):
    policy = choose(hardware_profile("h100"), budget=budget)
    assert policy.budget == expected == policy.device_memory
    assert "budget" in policy.describe()


def test_budget_larger_than_device_names_both_numbers():
    with pytest.raises(ValueError) as err:
        choose(hardware_profile("h100"), budget="100GB")
    assert "100000000000" in str(err.value) and "80000000000" in str(err.value)


@pytest.mark.parametrize("bad", [0, -1, "0GB", "-5GB", "eight", "8XB", True, 1.5, "2.5", [8]])
def test_bad_budgets(bad):
    with pytest.raises(ValueError):
        parse_budget(bad, 80 * GB)


def test_fraction_needs_a_known_size():
    with pytest.raises(ValueError, match="unknown"):
        parse_budget(0.5, None)
    assert parse_budget("1GiB", None) == GiB


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 80 * GB))
def test_parse_budget_round_trips_bytes(n):
    assert parse_budget(n, 80 * GB) == n
    assert parse_budget(str(n), 80 * GB) == n
    assert parse_budget(f"{n}B", 80 * GB) == n
    assert parse_budget(f" {n} b ", 80 * GB) == n


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 70), st.sampled_from([("GB", 10**9), ("GiB", 2**30), ("MB", 10**6), ("MiB", 2**20),
                                             ("gb", 10**9), ("Gib", 2**30), ("kB", 10**3), ("KiB", 2**10)]))
def test_parse_budget_units(k, unit):
    text, size = unit
    assert parse_budget(f"{k}{text}", 80 * GB) == k * size
    assert parse_budget(f"{k} {text}", 80 * GB) == k * size


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(min_value=1e-6, max_value=1.0))
def test_parse_budget_fractions(f):
    assert parse_budget(f, 80 * GB) == int(f * (80 * GB))


def test_unknown_mode_lists_valid_values():
    with pytest.raises(ValueError) as err:
        choose(hardware_profile("h100"), mode="turbo")
    for mode in MODES:
        assert mode in str(err.value)


@pytest.mark.parametrize("mode", ["system", "sam-headroom"])
def test_system_memory_needs_pageable_access(mode):
    with pytest.raises(ValueError, match="PageableMemoryAccess"):
        choose(hardware_profile("h100"), mode=mode)
    with pytest.raises(ValueError, match="PageableMemoryAccess"):
        choose(hardware_profile("wsl"), mode=mode)
    # HMM: SAM is opt-in there, and system allocations can use host memory too.
    policy = choose(hardware_profile("hmm"), mode=mode)
    assert policy.mode == mode and policy.device_memory == 40 * GB + 240 * GB


@pytest.mark.parametrize("mode", ["system", "sam-headroom", "managed", "pool", "async"])
@pytest.mark.parametrize("name", ["none", "broken", "old-gpu"])
def test_gpu_modes_need_a_gpu(mode, name):
    profile = hardware_profile(name)
    with pytest.raises(ValueError, match="needs a usable GPU") as err:
        choose(profile, mode=mode)
    assert profile.reason in str(err.value)


def test_managed_never_asks_for_more_than_free():
    profile = hardware_profile("h100")
    policy = choose(profile, mode="managed")
    assert 0 < policy.budget <= profile.device_memory_free
    assert policy.budget_source == "free memory"
    assert "oversubscription: off" in policy.describe()
    with pytest.raises(ValueError) as err:
        choose(profile, mode="managed", budget="80GB")
    assert "80000000000" in str(err.value) and "79000000000" in str(err.value)
    assert "oversubscribe=True" in str(err.value)
    over = choose(profile, mode="managed", budget="80GB", oversubscribe=True)
    assert over.budget == 80 * GB and "oversubscription: on" in over.describe()


def test_managed_needs_concurrent_managed_access():
    with pytest.raises(ValueError, match="concurrent managed access"):
        choose(hardware_profile("wsl"), mode="managed")


def test_oversubscribe_is_for_managed_only():
    with pytest.raises(ValueError, match="managed"):
        choose(hardware_profile("h100"), oversubscribe=True)


def test_spill_overrides():
    assert choose(hardware_profile("h100"), spill=False).spill is False
    assert choose(hardware_profile("gh200"), spill=True).spill is True
    with pytest.raises(ValueError, match="same memory"):
        choose(hardware_profile("gb10"), spill=True)
    cpu = choose(hardware_profile("none"), spill=True)
    assert cpu.spill is False and "ignored" in cpu.describe()


def test_cpu_mode_on_a_gpu_machine_uses_plain_buffers():
    policy = choose(hardware_profile("h100"), mode="cpu")
    assert (policy.mode, policy.host_buffers, policy.pinned_limit, policy.spill) == ("cpu", "plain", 0, False)
    assert policy.device_memory is None


def test_cpu_budget_is_host_memory():
    policy = choose(hardware_profile("none"), budget=0.5)
    assert policy.budget == 8 * GB
    with pytest.raises(ValueError):
        choose(hardware_profile("none"), budget="32GB")


def test_choose_is_pure():
    assert choose(hardware_profile("h100"), budget="8GB") == choose(hardware_profile("h100"), budget="8GB")


# ----------------------------------------------------------------------------- dask-cuda


@pytest.mark.parametrize("name", ["gb10", "gh200", "h100", "hmm", "wsl"])
@pytest.mark.parametrize("budget", [None, 0.5])
def test_dask_cuda_kwargs_are_integer_sizes(name, budget):
    kwargs = choose(hardware_profile(name), budget=budget).to_dask_cuda_kwargs()
    assert set(kwargs) <= DASK_CUDA_ARGS
    for key in SIZE_ARGS & set(kwargs):
        assert type(kwargs[key]) is int and kwargs[key] > 0 and kwargs[key] % 256 == 0, key
    assert not (kwargs.get("rmm_async") and kwargs.get("rmm_managed_memory"))


def test_dask_cuda_on_gb10_has_no_device_memory_limit():
    kwargs = choose(hardware_profile("gb10"), budget="32GB").to_dask_cuda_kwargs()
    assert "device_memory_limit" not in kwargs
    assert kwargs["enable_cudf_spill"] is False


def test_dask_cuda_on_h100_with_budget():
    kwargs = choose(hardware_profile("h100"), budget="1GB").to_dask_cuda_kwargs()
    assert kwargs["rmm_async"] is True and kwargs["enable_cudf_spill"] is True
    assert kwargs["rmm_maximum_pool_size"] == 10**9
    assert kwargs["device_memory_limit"] == 800_000_000
    assert kwargs["rmm_allocator_external_lib_list"] == ["cupy"]


def test_dask_cuda_pool_and_managed():
    pool = choose(hardware_profile("wsl")).to_dask_cuda_kwargs()
    assert pool["rmm_pool_size"] == 11 * GB and pool["rmm_managed_memory"] is False
    managed = choose(hardware_profile("h100"), mode="managed").to_dask_cuda_kwargs()
    assert managed["rmm_managed_memory"] is True
    assert managed["rmm_maximum_pool_size"] <= 79 * GB


def test_dask_cuda_needs_a_gpu():
    with pytest.raises(GPUUnavailableError):
        choose(hardware_profile("none")).to_dask_cuda_kwargs()


# ----------------------------------------------------------------------------- polars


def test_polars_engine_options_streaming_partitions_from_budget():
    policy = choose(hardware_profile("h100"), budget="1.6GB")
    opts = policy.polars_engine_options("streaming", raise_on_fail=True)
    assert opts["executor"] == "streaming" and opts["raise_on_fail"] is True and opts["device"] == 0
    assert opts["executor_options"]["target_partition_size"] == 100_000_000  # budget / 16
    assert opts["executor_options"]["min_device_size"] == 1_600_000_000
    # The user's executor options win.
    opts = policy.polars_engine_options("streaming", executor_options={"target_partition_size": 5})
    assert opts["executor_options"]["target_partition_size"] == 5
    # These are GPUEngine's real arguments (constructing it does not need a GPU).
    engine = pl.GPUEngine(memory_resource=None, **opts)
    assert engine.config["executor"] == "streaming"
    assert engine.config["executor_options"]["target_partition_size"] == 5


def test_polars_engine_options_in_memory():
    opts = choose(hardware_profile("gb10")).polars_engine_options()
    assert opts == {"device": 0, "raise_on_fail": False, "executor": "in-memory", "executor_options": {}}
    with pytest.raises(ValueError, match="in-memory, streaming"):
        choose(hardware_profile("h100")).polars_engine_options("turbo")


def test_polars_engine_needs_a_gpu(fresh_state):
    with pytest.raises(GPUUnavailableError, match="engine='cpu'"):
        choose(hardware_profile("none")).polars_engine()


# ----------------------------------------------------------------------------- apply


def test_cpu_policy_applies_without_touching_the_gpu(fresh_state):
    policy = choose(hardware_profile("none"))
    assert memory.applied() is None
    assert policy.apply() is policy and memory.applied() is policy
    assert memory.device_memory_stats() is None and memory.current_resource() is None
    # Nothing was allocated on a GPU: another policy may replace it.
    other = choose(hardware_profile("none"), budget="1GB")
    assert other.apply() is other and memory.applied() is other


@pytest.mark.skipif(importlib.util.find_spec("rmm") is not None, reason="rmm is installed here")
def test_gpu_policy_without_rmm_names_the_extra(fresh_state):
    with pytest.raises(MissingDependencyError, match=r"pip install 'gpu-workbench\[gpu\]'"):
        choose(hardware_profile("h100")).apply()
    assert memory.applied() is None


def test_applying_a_different_policy_after_a_gpu_policy_raises(fresh_state):
    first = choose(hardware_profile("h100"), budget="8GB")
    fresh_state.policy = first  # as apply() leaves it once RMM is configured
    assert choose(hardware_profile("h100"), budget="8GB").apply() is first  # same policy: no-op
    second = choose(hardware_profile("h100"), budget="4GB")
    with pytest.raises(PolicyAlreadyAppliedError) as err:
        second.apply()
    assert first.summary() in str(err.value) and second.summary() in str(err.value)
    with pytest.raises(PolicyAlreadyAppliedError):
        choose(hardware_profile("h100"), mode="cpu").apply()


def test_same_managed_policy_is_the_same_although_free_memory_moved(fresh_state):
    fresh_state.policy = choose(hardware_profile("h100"), mode="managed")
    later = hardware_profile("h100", nvml_info=_nvml_with_free(78 * GB))
    assert choose(later, mode="managed").apply() is fresh_state.policy


def _nvml_with_free(free):
    from tests.profiles import PROFILES
    from workbench.hardware import NvmlInfo

    info = PROFILES["h100"].nvml_info
    dev = info.devices[0]
    return NvmlInfo(info.driver_version, (type(dev)(dev.name, dev.uuid, dev.total_memory, free),))


def test_streaming_spill_limit_is_a_share_of_the_budget():
    policy = choose(hardware_profile("h100"), budget="1GB")
    limit = memory_apply.streaming_spill_limit(policy)
    assert limit == int(0.8 * GB) // 256 * 256  # below the budget, on RMM's granularity
    assert limit < policy.budget
    assert memory_apply.streaming_spill_limit(choose(hardware_profile("h100"))) is None


def test_a_spill_limit_the_user_set_is_kept(monkeypatch):
    policy = choose(hardware_profile("h100"), budget="1GB")
    monkeypatch.setenv("RAPIDSMPF_SPILL_DEVICE_LIMIT", "50%")
    memory_apply._set_streaming_spill_limit(policy)
    assert memory_apply.os.environ["RAPIDSMPF_SPILL_DEVICE_LIMIT"] == "50%"
    monkeypatch.delenv("RAPIDSMPF_SPILL_DEVICE_LIMIT")
    memory_apply._set_streaming_spill_limit(policy)
    assert memory_apply.os.environ["RAPIDSMPF_SPILL_DEVICE_LIMIT"] == str(
        memory_apply.streaming_spill_limit(policy))

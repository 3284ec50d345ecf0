"""What the libraries that allocate on the GPU are given from the policy: the polars GPU
engine's options and dask-cuda's worker arguments. Pure but for :func:`polars_engine`.
"""

from __future__ import annotations

from typing import Any

from workbench.errors import GPUUnavailableError
from workbench.memory.apply import apply, engine_resource
from workbench.memory.budget import align
from workbench.memory.platforms import ROWS
from workbench.memory.policy import MemoryPolicy

EXECUTORS = ("in-memory", "streaming")
#: The streaming executor's partitions (and the chunks Frames hand it) are this share
#: of the budget or device memory: room for a few in flight and their intermediates.
STREAM_SHARE = 16
#: A split cuts its rows in chunks of this share of the budget or device memory,
#: whatever the streaming executor's share: a chunk, its hashes, its reordered copy
#: and the staging buffers are ~4 such, which must fit beside the resident columns.
CUT_SHARE = 16
#: A cut whose filters keep few rows (all of them one partition's) reads chunks of this
#: share: a chunk, the filters' columns and the few rows kept, no hashes, no reorder.
#: Each chunk costs a few milliseconds of launches and waits besides its copy.
FILTER_SHARE = 8


def polars_engine_options(policy: MemoryPolicy, executor: str = "in-memory", **options: Any) -> dict[str, Any]:
    """The ``polars.GPUEngine`` keyword arguments of this policy, but the memory resource.

    ``options`` are passed through (``raise_on_fail``, ``parquet_options``...);
    ``executor_options`` are merged over the policy's. With the streaming executor
    and a budget, partitions are ``1/STREAM_SHARE`` of the budget.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid values: {', '.join(EXECUTORS)}")
    user = dict(options.pop("executor_options", None) or {})
    executor_options: dict[str, Any] = {}
    if executor == "streaming":
        if policy.device_memory:
            # cudf-polars sizes partitions and broadcasts from the device size; on
            # unified memory NVML cannot tell it, and a budget is the real size.
            executor_options["min_device_size"] = policy.device_memory
        if policy.budget:
            executor_options["target_partition_size"] = max(policy.budget // STREAM_SHARE, 1)
    executor_options.update(user)
    return {
        "device": policy.device,
        "raise_on_fail": bool(options.pop("raise_on_fail", False)),
        "executor": executor,
        "executor_options": executor_options,
        **options,
    }

def polars_engine(policy: MemoryPolicy, executor: str = "in-memory", **options: Any):
    """A ``polars.GPUEngine`` allocating through this policy's memory resource.

    Applies the policy first (a no-op when it is already applied).

    Examples
    --------
    >>> lf.collect(engine=policy.polars_engine(raise_on_fail=True))  # doctest: +SKIP
    """
    if policy.mode == "cpu":
        raise GPUUnavailableError(
            f"the polars GPU engine needs a GPU, and this policy is for the CPU ({policy.platform}); "
            "collect with engine='cpu'"
        )
    kwargs = polars_engine_options(policy, executor, **options)
    apply(policy)
    import polars as pl

    return pl.GPUEngine(memory_resource=engine_resource(), **kwargs)

def dask_cuda_kwargs(policy: MemoryPolicy) -> dict[str, Any]:
    """Keyword arguments for ``dask_cuda.LocalCUDACluster`` carrying this policy to workers.

    Sizes are integer bytes per worker. ``device_memory_limit`` is left out on
    devices without dedicated memory, where dask-cuda refuses it (and cuDF spilling).
    dask-cuda has no system-allocated resource, so ``system`` and ``sam-headroom``
    workers use the async pool.
    """
    if policy.mode == "cpu":
        raise GPUUnavailableError(f"no GPU for dask-cuda workers ({policy.platform}): use a CPU LocalCluster")
    kw: dict[str, Any] = {"rmm_allocator_external_lib_list": ["cupy"]}
    dedicated = policy.gpu_memory is not None and not ROWS[policy.platform].one_memory
    if policy.mode in ("async", "system", "sam-headroom"):
        kw["rmm_async"] = True
        if policy.budget and (policy.gpu_memory is None or policy.budget <= policy.gpu_memory):
            kw["rmm_maximum_pool_size"] = align(policy.budget)
    else:
        kw["rmm_pool_size"] = int(policy.pool_size)
        kw["rmm_managed_memory"] = policy.mode == "managed"
        if policy.budget:
            kw["rmm_maximum_pool_size"] = align(policy.budget)
    kw["enable_cudf_spill"] = bool(policy.spill and dedicated)
    if dedicated:
        # dask-cuda's own default (80 %) of what the worker may use.
        usable = min(policy.budget or policy.gpu_memory, policy.gpu_memory)
        kw["device_memory_limit"] = align(int(usable * 0.8))
    return kw

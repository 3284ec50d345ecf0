"""Applying a memory policy to this process: RMM, CuPy and cuDF, once.

RMM's device resource is set once, before the first GPU allocation; everything that
allocates on the GPU afterwards (cudf, cuml, CuPy, the polars GPU engine) goes
through it. A :class:`~rmm.mr.StatisticsResourceAdaptor` on top counts the bytes,
so the workbench and its tests can say what is held and what the peak was.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from workbench.errors import PolicyAlreadyAppliedError
from workbench.memory.budget import align
from workbench.memory.policy import MemoryPolicy
from workbench.optional import missing


class _State:
    policy: MemoryPolicy | None = None
    resource: Any = None  # the StatisticsResourceAdaptor on top of the policy's resources


_STATE = _State()
_LOCK = threading.RLock()


def applied() -> MemoryPolicy | None:
    """The policy applied in this process, or None."""
    return _STATE.policy


def current_resource() -> Any:
    """The RMM resource the applied policy set (a ``StatisticsResourceAdaptor``), or None."""
    return _STATE.resource


def resource_chain() -> list[Any]:
    """The current RMM device resource and the upstream resources below it, top first."""
    import rmm

    chain, mr = [], rmm.mr.get_current_device_resource()
    while mr is not None:
        chain.append(mr)
        mr = mr.get_upstream() if hasattr(mr, "get_upstream") else None
    return chain


def engine_resource() -> Any:
    # cuDF's spill manager pushes an out-of-memory handler on top of our resource;
    # hand polars the top of the stack when ours is in it, so its queries spill too.
    ours = _STATE.resource
    chain = resource_chain()
    return chain[0] if any(mr is ours for mr in chain) else ours


def _use_rmm_for_cupy() -> None:
    try:
        import cupy
    except ImportError:
        return  # CuPy is optional; cuDF and cuML allocate through RMM anyway
    from rmm.allocators.cupy import rmm_cupy_allocator

    cupy.cuda.set_allocator(rmm_cupy_allocator)


def _set_cudf_spill(spill: bool) -> None:
    # The environment variable is read when cuDF is imported, here and in child
    # processes (dask workers); importing cuDF now would cost seconds for nothing.
    os.environ["CUDF_SPILL"] = "on" if spill else "off"
    cudf = sys.modules.get("cudf")
    if cudf is not None:
        cudf.set_option("spill", spill)


#: The streaming executor (rapidsmpf) spills its shuffles and buffered partitions to host
#: memory once what it tracks passes this share of the budget: its own default is 80% of
#: the whole device, which a budget never reaches, so without this a shuffle that
#: outgrows the budget fails where it could have spilled.
STREAM_SPILL_SHARE = 0.8


def streaming_spill_limit(policy: MemoryPolicy) -> int | None:
    """Bytes of device memory the streaming executor keeps before spilling, or None
    (its own default) when the policy sets no budget."""
    return align(int(policy.budget * STREAM_SPILL_SHARE)) if policy.budget else None


def _set_streaming_spill_limit(policy: MemoryPolicy) -> None:
    # Read when cudf-polars builds its streaming engine (the first streaming query);
    # a value the user set is kept.
    limit = streaming_spill_limit(policy)
    if limit is not None:
        os.environ.setdefault("RAPIDSMPF_SPILL_DEVICE_LIMIT", str(limit))


def device_memory_stats() -> dict[str, int | None] | None:
    """Current, peak and total bytes (and counts) allocated through the applied policy.

    None when no GPU policy is applied.
    """
    resource = _STATE.resource
    if resource is None:
        return None
    counts = resource.allocation_counts
    get = counts.get if isinstance(counts, dict) else lambda k: getattr(counts, k)
    out = {k: int(get(k)) for k in ("current_bytes", "peak_bytes", "total_bytes",
                                    "current_count", "peak_count", "total_count")}
    out["budget"] = _STATE.policy.budget if _STATE.policy else None
    return out


def apply(policy: MemoryPolicy) -> MemoryPolicy:
    """Configure RMM, CuPy and cuDF spilling for this process; returns the applied policy.

    Once per process, before the first GPU allocation: applying the same policy
    again is a no-op, a different one raises :class:`PolicyAlreadyAppliedError`.
    A ``cpu`` policy touches nothing and may be replaced.
    """
    with _LOCK:
        current = _STATE.policy
        if current is not None and current.mode != "cpu":
            if current._key() == policy._key():
                return current
            raise PolicyAlreadyAppliedError(
                f"a memory policy was already applied in this process: {current.summary()}; "
                f"asked for: {policy.summary()}. RMM's memory resource is set once, before the "
                "first GPU allocation: restart the Python process (or kernel) to change it."
            )
        if policy.mode == "cpu":
            _STATE.policy, _STATE.resource = policy, None
            return policy
        try:
            import rmm
        except ImportError:
            raise missing("rmm", "GPU memory policy") from None
        resource = rmm.mr.StatisticsResourceAdaptor(_base_resource(policy, rmm))
        rmm.mr.set_current_device_resource(resource)
        _use_rmm_for_cupy()
        _set_cudf_spill(policy.spill)
        _set_streaming_spill_limit(policy)
        _STATE.policy, _STATE.resource = policy, resource
        return policy

def _base_resource(policy: MemoryPolicy, rmm):
    mr = rmm.mr
    if policy.mode == "system":
        base = mr.SystemMemoryResource()
    elif policy.mode == "sam-headroom":
        base = mr.SamHeadroomMemoryResource(headroom=policy.headroom)
    elif policy.mode == "async":
        # Keep freed memory in the pool up to half the usable memory: releasing it
        # at every synchronisation makes repeated queries pay cudaMalloc again.
        base = mr.CudaAsyncMemoryResource(release_threshold=align(policy.device_memory // 2))
    elif policy.mode == "pool":
        base = mr.PoolMemoryResource(
            mr.CudaMemoryResource(), initial_pool_size=policy.pool_size,
            maximum_pool_size=align(policy.budget) if policy.budget else None,
        )
    elif policy.mode == "managed":
        base = mr.PoolMemoryResource(
            mr.ManagedMemoryResource(), initial_pool_size=policy.pool_size,
            maximum_pool_size=align(policy.budget),
        )
    else:  # pragma: no cover - choose() only makes the modes above
        raise ValueError(f"unknown memory mode {policy.mode!r}")
    if policy.budget:
        base = mr.LimitingResourceAdaptor(base, allocation_limit=policy.budget)
    return base

# ------------------------------------------------------------------ consumers

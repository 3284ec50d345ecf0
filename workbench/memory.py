"""The memory policy: which RMM resource, budget, spilling and host buffers, and why.

:func:`choose` turns a :class:`~workbench.hardware.HardwareProfile` and the user's
overrides into a :class:`MemoryPolicy` (pure, testable anywhere), following the
table in DESIGN.md. :meth:`MemoryPolicy.apply` then configures RMM, CuPy and cuDF
once per process, before the first GPU allocation; the polars GPU engine and
dask-cuda workers are configured from the same policy.

>>> from workbench import hardware, memory
>>> policy = memory.choose(hardware.detect(), budget=None)
>>> policy.mode in memory.MODES
True
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import threading
from dataclasses import dataclass
from typing import Any

from workbench.errors import GPUUnavailableError, PolicyAlreadyAppliedError, missing
from workbench.hardware import HardwareProfile, format_bytes

MODES = ("auto", "system", "sam-headroom", "managed", "pool", "async", "cpu")
HOST_BUFFERS = ("unified", "pinned", "plain")
EXECUTORS = ("in-memory", "streaming")

AUTO_MODE = {
    "integrated-coherent": "system",
    "coherent": "sam-headroom",
    "discrete": "async",
    "hmm": "async",
    "wsl": "pool",
    "cpu": "cpu",
    "broken": "cpu",
}
_WHY_MODE = {
    "system": "rmm SystemMemoryResource (malloc): CPU and GPU allocate from one pool, "
    "sized from /proc/meminfo MemAvailable (cudaMemGetInfo under-reports on unified memory)",
    "sam-headroom": "rmm SamHeadroomMemoryResource: system allocations live in GPU memory until "
    "only the headroom is free, then in host memory over the coherent link",
    "async": "rmm CudaAsyncMemoryResource: the driver's stream-ordered pool",
    "pool": "rmm PoolMemoryResource over cudaMalloc, no managed memory",
    "managed": "rmm ManagedMemoryResource in a pool, never larger than the free device memory "
    "unless oversubscription is asked for",
    "cpu": "no GPU memory: polars, scikit-learn and dask run on the CPU",
}
_ALIGN = 256  # RMM pools want sizes in multiples of 256 bytes
_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_BUDGET_RE = re.compile(r"^\s*(-?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z%]*)\s*$", re.IGNORECASE)


def _align(n: int) -> int:
    return max(n // _ALIGN * _ALIGN, _ALIGN)


def parse_budget(value: int | float | str, device_memory: int | None) -> int:
    """A memory budget in bytes.

    Parameters
    ----------
    value
        Bytes (``8_000_000_000``), a size string (``"8GB"``, ``"8GiB"``, ``"512MB"``;
        kB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024), a fraction
        ``0 < x <= 1`` of ``device_memory`` (``0.5``, ``"0.5"``) or a percentage (``"50%"``).
    device_memory
        The memory the budget is taken from; None when unknown (fractions then fail).

    Returns
    -------
    int
        Bytes, ``0 < budget <= device_memory``.

    Raises
    ------
    ValueError
        When the value cannot be read, is not positive, or exceeds ``device_memory``.

    Examples
    --------
    >>> parse_budget("8GB", 80 * 10**9)
    8000000000
    >>> parse_budget("1GiB", None)
    1073741824
    >>> parse_budget(0.25, 80 * 10**9)
    20000000000
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"budget {value!r} is not a size: give bytes, a string like '8GB', or a fraction 0 < x <= 1")
    m = _BUDGET_RE.match(str(value))
    unit = m.group(2).lower() if m else None
    if unit not in _UNITS and unit != "%":
        raise ValueError(f"budget {value!r} is not a size: use bytes or a number with one of "
                         f"{', '.join(u for u in _UNITS if u)} (e.g. '8GB', '512MiB'), a fraction or a percentage")
    digits, number, fraction = m.group(1), float(m.group(1)), None
    if unit == "%":
        fraction = number / 100
    elif digits.lstrip("-").isdigit():
        nbytes = int(digits) * _UNITS[unit]  # exact, however large
    elif _UNITS[unit] > 1:
        nbytes = int(number * _UNITS[unit])  # "1.5GB"
    elif 0 < number <= 1:
        fraction = number  # 0.5, "0.5"
    elif number.is_integer():
        nbytes = int(number)  # 8e9
    else:
        raise ValueError(f"budget {value!r} is neither a fraction 0 < x <= 1 nor a whole number of bytes")
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"budget {value!r} as a fraction must be within 0 < x <= 1")
        if device_memory is None:
            raise ValueError(f"budget {value!r} is a fraction of device memory, which is unknown here: give bytes (e.g. '8GB')")
        nbytes = int(fraction * device_memory)
    if nbytes <= 0:
        raise ValueError(f"budget {value!r} is {nbytes} bytes: it must be more than 0")
    if device_memory is not None and nbytes > device_memory:
        raise ValueError(
            f"budget {value!r} is {nbytes} bytes ({format_bytes(nbytes)}), more than the "
            f"{device_memory} bytes ({format_bytes(device_memory)}) of memory there is"
        )
    return nbytes


@dataclass(frozen=True)
class MemoryPolicy:
    """How GPU memory is managed in this process; ``reasons`` says what was chosen and why.

    Attributes
    ----------
    platform : str
        The hardware platform it was chosen for.
    mode : str
        The concrete mode (one of :data:`MODES` but ``"auto"``).
    budget : int or None
        Bytes the process may allocate on the device (``LimitingResourceAdaptor``);
        on ``cpu``, the host memory the CPU engines should stay within.
    spill : bool
        Whether cuDF spills device buffers to host memory when the device is full.
    host_buffers : str
        ``"unified"`` (GPU reads host malloc memory in place), ``"pinned"`` (register host
        buffers in place with cudaHostRegister) or ``"plain"``.
    pinned_limit : int
        Bytes of host memory frames may pin (0 unless ``host_buffers == "pinned"``).
    device_memory : int or None
        Bytes usable by GPU work: the budget, else what the device (and, with system
        allocations, the host) offers.
    """

    platform: str
    mode: str
    budget: int | None
    spill: bool
    host_buffers: str
    pinned_limit: int
    device_memory: int | None
    reasons: tuple[str, ...] = ()
    device: int = 0
    gpu_memory: int | None = None  # the GPU's own memory (HBM); None on integrated and cpu
    headroom: int | None = None  # sam-headroom: GPU memory left for what RMM does not allocate
    pool_size: int | None = None  # pool / managed: initial pool size
    oversubscribe: bool = False
    budget_source: str | None = None  # "user", or "free memory" for managed mode

    def _key(self) -> tuple:
        # device_memory and an automatic budget follow free memory, which moves
        # between calls: two policies asked for the same way are the same policy.
        budget = self.budget if self.budget_source == "user" else None
        return (self.platform, self.mode, budget, self.spill, self.host_buffers, self.device,
                self.headroom, self.oversubscribe)

    def summary(self) -> str:
        """One line: mode, budget, spill and platform."""
        budget = f"budget {format_bytes(self.budget)}" if self.budget else "no budget"
        return f"{self.mode} ({budget}, spill {'on' if self.spill else 'off'}, {self.platform})"

    def describe(self) -> str:
        """What was chosen and why, one line each."""
        return "\n".join([f"memory policy: {self.summary()}"] + [f"  {r}" for r in self.reasons])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the fields."""
        out = dataclasses.asdict(self)
        out["reasons"] = list(self.reasons)
        return out

    # ------------------------------------------------------------------ applying

    def apply(self) -> MemoryPolicy:
        """Configure RMM, CuPy and cuDF spilling for this process; returns the applied policy.

        Once per process, before the first GPU allocation: applying the same policy
        again is a no-op, a different one raises :class:`PolicyAlreadyAppliedError`.
        A ``cpu`` policy touches nothing and may be replaced.
        """
        with _LOCK:
            current = _STATE.policy
            if current is not None and current.mode != "cpu":
                if current._key() == self._key():
                    return current
                raise PolicyAlreadyAppliedError(
                    f"a memory policy was already applied in this process: {current.summary()}; "
                    f"asked for: {self.summary()}. RMM's memory resource is set once, before the "
                    "first GPU allocation: restart the Python process (or kernel) to change it."
                )
            if self.mode == "cpu":
                _STATE.policy, _STATE.resource = self, None
                return self
            try:
                import rmm
            except ImportError:
                raise missing("rmm", "gpu", "GPU memory policy") from None
            resource = rmm.mr.StatisticsResourceAdaptor(self._base_resource(rmm))
            rmm.mr.set_current_device_resource(resource)
            _use_rmm_for_cupy()
            _set_cudf_spill(self.spill)
            _STATE.policy, _STATE.resource = self, resource
            return self

    def _base_resource(self, rmm):
        mr = rmm.mr
        if self.mode == "system":
            base = mr.SystemMemoryResource()
        elif self.mode == "sam-headroom":
            base = mr.SamHeadroomMemoryResource(headroom=self.headroom)
        elif self.mode == "async":
            # Keep freed memory in the pool up to half the usable memory: releasing it
            # at every synchronisation makes repeated queries pay cudaMalloc again.
            base = mr.CudaAsyncMemoryResource(release_threshold=_align(self.device_memory // 2))
        elif self.mode == "pool":
            base = mr.PoolMemoryResource(
                mr.CudaMemoryResource(), initial_pool_size=self.pool_size,
                maximum_pool_size=_align(self.budget) if self.budget else None,
            )
        elif self.mode == "managed":
            base = mr.PoolMemoryResource(
                mr.ManagedMemoryResource(), initial_pool_size=self.pool_size,
                maximum_pool_size=_align(self.budget),
            )
        else:  # pragma: no cover - choose() only makes the modes above
            raise ValueError(f"unknown memory mode {self.mode!r}")
        if self.budget:
            base = mr.LimitingResourceAdaptor(base, allocation_limit=self.budget)
        return base

    # ------------------------------------------------------------------ consumers

    def polars_engine_options(self, executor: str = "in-memory", **options: Any) -> dict[str, Any]:
        """The ``polars.GPUEngine`` keyword arguments of this policy, but the memory resource.

        ``options`` are passed through (``raise_on_fail``, ``parquet_options``...);
        ``executor_options`` are merged over the policy's. With the streaming executor
        and a budget, partitions are a sixteenth of the budget.
        """
        if executor not in EXECUTORS:
            raise ValueError(f"unknown executor {executor!r}; valid values: {', '.join(EXECUTORS)}")
        user = dict(options.pop("executor_options", None) or {})
        executor_options: dict[str, Any] = {}
        if executor == "streaming":
            if self.device_memory:
                # cudf-polars sizes partitions and broadcasts from the device size; on
                # unified memory NVML cannot tell it, and a budget is the real size.
                executor_options["min_device_size"] = self.device_memory
            if self.budget:
                executor_options["target_partition_size"] = max(self.budget // 16, 1)
        executor_options.update(user)
        return {
            "device": self.device,
            "raise_on_fail": bool(options.pop("raise_on_fail", False)),
            "executor": executor,
            "executor_options": executor_options,
            **options,
        }

    def polars_engine(self, executor: str = "in-memory", **options: Any):
        """A ``polars.GPUEngine`` allocating through this policy's memory resource.

        Applies the policy first (a no-op when it is already applied).

        Examples
        --------
        >>> lf.collect(engine=policy.polars_engine(raise_on_fail=True))  # doctest: +SKIP
        """
        if self.mode == "cpu":
            raise GPUUnavailableError(
                f"the polars GPU engine needs a GPU, and this policy is for the CPU ({self.platform}); "
                "collect with engine='cpu'"
            )
        kwargs = self.polars_engine_options(executor, **options)
        self.apply()
        import polars as pl

        return pl.GPUEngine(memory_resource=_engine_resource(), **kwargs)

    def to_dask_cuda_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``dask_cuda.LocalCUDACluster`` carrying this policy to workers.

        Sizes are integer bytes per worker. ``device_memory_limit`` is left out on
        devices without dedicated memory, where dask-cuda refuses it (and cuDF spilling).
        dask-cuda has no system-allocated resource, so ``system`` and ``sam-headroom``
        workers use the async pool.
        """
        if self.mode == "cpu":
            raise GPUUnavailableError(f"no GPU for dask-cuda workers ({self.platform}): use a CPU LocalCluster")
        kw: dict[str, Any] = {"rmm_allocator_external_lib_list": ["cupy"]}
        dedicated = self.gpu_memory is not None and self.platform != "integrated-coherent"
        if self.mode in ("async", "system", "sam-headroom"):
            kw["rmm_async"] = True
            if self.budget and (self.gpu_memory is None or self.budget <= self.gpu_memory):
                kw["rmm_maximum_pool_size"] = _align(self.budget)
        else:
            kw["rmm_pool_size"] = int(self.pool_size)
            kw["rmm_managed_memory"] = self.mode == "managed"
            if self.budget:
                kw["rmm_maximum_pool_size"] = _align(self.budget)
        kw["enable_cudf_spill"] = bool(self.spill and dedicated)
        if dedicated:
            # dask-cuda's own default (80 %) of what the worker may use.
            usable = min(self.budget or self.gpu_memory, self.gpu_memory)
            kw["device_memory_limit"] = _align(int(usable * 0.8))
        return kw


# ---------------------------------------------------------------------------- choosing


def _capacity(profile: HardwareProfile, mode: str) -> int | None:
    """The memory a budget is taken from, for this mode on this machine."""
    if mode == "cpu":
        return profile.host_memory_total
    if profile.platform == "integrated-coherent":
        return profile.host_memory_available
    if mode in ("system", "sam-headroom") and profile.device_memory_total is not None:
        # System allocations migrate between GPU and host memory.
        return profile.device_memory_total + (profile.host_memory_available or 0)
    return profile.device_memory_total


def _check_possible(profile: HardwareProfile, mode: str) -> None:
    gpu = profile.gpu
    if mode == "cpu":
        return
    if not profile.has_usable_gpu or gpu is None:
        raise ValueError(f"memory mode {mode!r} needs a usable GPU, and this machine has none: {profile.reason}")
    if mode in ("system", "sam-headroom") and not gpu.pageable_memory_access:
        raise ValueError(
            f"memory mode {mode!r} needs a GPU that reads pageable host memory (HMM or ATS, "
            f"PageableMemoryAccess=1); GPU 0 ({gpu.name}) on this {profile.platform} machine has "
            "PageableMemoryAccess=0. Use 'async' or 'pool'."
        )
    if mode == "managed" and not gpu.concurrent_managed_access:
        raise ValueError(
            f"memory mode 'managed' needs concurrent managed access, which GPU 0 ({gpu.name}) on "
            f"this {profile.platform} machine lacks. Use 'pool' or 'async'."
        )


def choose(
    profile: HardwareProfile,
    mode: str = "auto",
    budget: int | float | str | None = None,
    spill: bool | None = None,
    *,
    oversubscribe: bool = False,
    why: str | None = None,
) -> MemoryPolicy:
    """Choose the memory policy for a machine (DESIGN.md's table), with overrides.

    Parameters
    ----------
    profile
        From :func:`workbench.hardware.detect`.
    mode
        One of :data:`MODES`; ``"auto"`` picks by platform.
    budget
        Device memory the process may use: bytes, ``"8GB"``/``"8GiB"``, or a fraction
        (see :func:`parse_budget`). On ``cpu``, a host-memory budget for the CPU engines.
    spill
        cuDF spilling to host memory; None picks by platform.
    oversubscribe
        Let a ``managed`` budget exceed the free device memory. Off by default:
        over-subscribed managed memory can hang a shared GPU, not only the process.
    why
        Why this mode was picked, when the caller decided it (e.g. ``"cpu"`` because
        RAPIDS is not installed); the reasons then say so instead of "asked for".

    Raises
    ------
    ValueError
        An unknown mode, a budget out of range, or a mode this machine cannot run.

    Examples
    --------
    >>> from tests.profiles import hardware_profile  # doctest: +SKIP
    >>> choose(hardware_profile("h100"), budget="8GB").mode  # doctest: +SKIP
    'async'
    """
    if mode not in MODES:
        raise ValueError(f"unknown memory mode {mode!r}; valid values: {', '.join(MODES)}")
    platform, gpu = profile.platform, profile.gpu
    concrete = AUTO_MODE[platform] if mode == "auto" else mode
    _check_possible(profile, concrete)
    asked = why or ("asked for" if mode != "auto" else f"auto on {platform}")
    reasons = [f"platform: {platform} — {profile.reason}", f"mode: {concrete} ({asked}) — {_WHY_MODE[concrete]}"]

    if oversubscribe and concrete != "managed":
        raise ValueError(f"oversubscribe=True applies to memory mode 'managed' only, not {concrete!r}")
    capacity = _capacity(profile, concrete)
    nbytes = parse_budget(budget, capacity) if budget is not None else None
    source = "user" if nbytes is not None else None
    if nbytes is not None:
        scope = "host memory for the CPU engines" if concrete == "cpu" else "allocations past it raise MemoryError"
        reasons.append(f"budget: {format_bytes(nbytes)} (asked for) of {format_bytes(capacity)} — {scope}")
    pool_size = None
    if concrete == "managed":
        free = profile.device_memory_free
        if nbytes is None:
            if free is None:
                raise ValueError("memory mode 'managed' needs a budget here: the free device memory is unknown")
            nbytes, source = _align(free), "free memory"
            reasons.append(f"budget: {format_bytes(nbytes)}, the free device memory — managed memory never asks for more")
        elif free is not None and nbytes > free and not oversubscribe:
            raise ValueError(
                f"budget of {nbytes} bytes is more than the {free} bytes free on GPU 0; managed memory "
                "never asks for more than is free (over-subscription can hang a shared GPU). "
                "Pass oversubscribe=True to allow it."
            )
        reasons.append(
            "oversubscription: on (asked for) — managed memory may exceed free device memory"
            if oversubscribe else "oversubscription: off — opt in with oversubscribe=True"
        )
        pool_size = _align(nbytes // 2)
    elif concrete == "pool":
        free = profile.device_memory_free or capacity
        pool_size = _align(min(nbytes or capacity, free) // 2)
    if nbytes is None and concrete != "cpu":
        of = format_bytes(capacity)
        if concrete in ("system", "sam-headroom") and platform != "integrated-coherent":
            of = f"{format_bytes(profile.device_memory_total)} of GPU and {format_bytes(profile.host_memory_available)} of host memory"
        reasons.append(f"budget: none — all of {of}")

    default_spill = platform in ("discrete", "hmm", "wsl")
    if spill and platform == "integrated-coherent":
        raise ValueError(
            f"spill=True cannot help on {gpu.name}: device and host memory are the same memory "
            "(dask-cuda refuses cuDF spilling there too)"
        )
    if spill is None or concrete == "cpu":
        use_spill = default_spill and concrete != "cpu"
        why = {
            True: "cuDF moves buffers to host memory when device memory runs out (set before cuDF allocates)",
            False: "no GPU memory in CPU mode" if concrete == "cpu" else (
                "host and device memory are one" if platform == "integrated-coherent"
                else "system-allocated memory migrates to host memory by itself"),
        }[use_spill]
        if spill and concrete == "cpu":
            why += " (spill=True ignored)"
    else:
        use_spill, why = bool(spill), "asked for"
    reasons.append(f"spill: {'on' if use_spill else 'off'} — {why}")

    if concrete == "cpu":
        host_buffers, why = "plain", "plain Arrow memory on the CPU"
    elif platform in ("integrated-coherent", "coherent"):
        host_buffers, why = "unified", "the GPU reads host malloc memory in place, zero-copy both ways"
    elif platform in ("discrete", "hmm") and gpu is not None and gpu.host_register_supported:
        host_buffers, why = "pinned", "host buffers registered (cudaHostRegister), in place when they own their memory pages: PCIe-speed copies, mapped reads"
    else:
        host_buffers, why = "plain", "pageable host memory" + (" (WSL)" if platform == "wsl" else "")
    pinned_limit = (profile.host_memory_total or 0) // 2 if host_buffers == "pinned" else 0
    if pinned_limit:
        why += f", at most {format_bytes(pinned_limit)} pinned (half of host memory)"
    reasons.append(f"host buffers: {host_buffers} — {why}")

    gpu_memory = None if platform == "integrated-coherent" or gpu is None else gpu.total_memory
    headroom = None
    if concrete == "sam-headroom":
        # Left free for CUDA contexts, library workspaces and anything not allocated by RMM.
        headroom = max(2**30, (gpu_memory or 0) // 16)
        reasons.append(f"headroom: {format_bytes(headroom)} of GPU memory kept free for allocations outside RMM")
    return MemoryPolicy(
        platform=platform, mode=concrete, budget=nbytes, spill=use_spill, host_buffers=host_buffers,
        pinned_limit=pinned_limit, device_memory=None if concrete == "cpu" else (nbytes or capacity),
        reasons=tuple(reasons), gpu_memory=gpu_memory, headroom=headroom, pool_size=pool_size,
        oversubscribe=oversubscribe, budget_source=source,
    )


# ---------------------------------------------------------------------------- process state


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


def _engine_resource() -> Any:
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

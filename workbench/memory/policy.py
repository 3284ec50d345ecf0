"""The memory policy: which RMM resource, budget, spilling and host buffers, and why.

:func:`choose` turns a :class:`~workbench.hardware.HardwareProfile` and the user's
overrides into a :class:`MemoryPolicy`: pure, no GPU library touched, testable on any
machine. The per-platform defaults are the rows of :mod:`workbench.memory.platforms`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from workbench.hardware import HardwareProfile
from workbench.memory.budget import align, parse_budget
from workbench.memory.platforms import MODES, ROWS, WHY_MODE
from workbench.sizes import format_bytes


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

    # ------------------------------------------------------------------ using it

    def apply(self) -> MemoryPolicy:
        """Configure RMM, CuPy and cuDF spilling for this process; see :func:`workbench.memory.apply`."""
        from workbench.memory.apply import apply

        return apply(self)

    def polars_engine_options(self, executor: str = "in-memory", **options: Any) -> dict[str, Any]:
        """The ``polars.GPUEngine`` keyword arguments of this policy, but the memory resource."""
        from workbench.memory.consumers import polars_engine_options

        return polars_engine_options(self, executor, **options)

    def polars_engine(self, executor: str = "in-memory", **options: Any):
        """A ``polars.GPUEngine`` allocating through this policy's memory resource."""
        from workbench.memory.consumers import polars_engine

        return polars_engine(self, executor, **options)

    def to_dask_cuda_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``dask_cuda.LocalCUDACluster`` carrying this policy to workers."""
        from workbench.memory.consumers import dask_cuda_kwargs

        return dask_cuda_kwargs(self)


def _capacity(profile: HardwareProfile, mode: str) -> int | None:
    """The memory a budget is taken from, for this mode on this machine."""
    if mode == "cpu":
        return profile.host_memory_total
    if ROWS[profile.platform].one_memory:
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
    row = ROWS[platform]
    concrete = row.mode if mode == "auto" else mode
    _check_possible(profile, concrete)
    asked = why or ("asked for" if mode != "auto" else f"auto on {platform}")
    reasons = [f"platform: {platform} — {profile.reason}", f"mode: {concrete} ({asked}) — {WHY_MODE[concrete]}"]

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
            nbytes, source = align(free), "free memory"
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
        pool_size = align(nbytes // 2)
    elif concrete == "pool":
        free = profile.device_memory_free or capacity
        pool_size = align(min(nbytes or capacity, free) // 2)
    if nbytes is None and concrete != "cpu":
        of = format_bytes(capacity)
        if concrete in ("system", "sam-headroom") and not row.one_memory:
            of = f"{format_bytes(profile.device_memory_total)} of GPU and {format_bytes(profile.host_memory_available)} of host memory"
        reasons.append(f"budget: none — all of {of}")

    if spill and row.one_memory:
        raise ValueError(
            f"spill=True cannot help on {gpu.name}: device and host memory are the same memory "
            "(dask-cuda refuses cuDF spilling there too)"
        )
    if spill is None or concrete == "cpu":
        use_spill = row.spill and concrete != "cpu"
        why = ("cuDF moves buffers to host memory when device memory runs out (set before cuDF allocates)"
               if use_spill else "no GPU memory in CPU mode" if concrete == "cpu" else row.why_spill)
        if spill and concrete == "cpu":
            why += " (spill=True ignored)"
    else:
        use_spill, why = bool(spill), "asked for"
    reasons.append(f"spill: {'on' if use_spill else 'off'} — {why}")

    host_buffers, why = row.host_buffers, row.why_host
    if concrete == "cpu":
        host_buffers, why = ROWS["cpu"].host_buffers, ROWS["cpu"].why_host
    elif host_buffers == "pinned" and not (gpu is not None and gpu.host_register_supported):
        host_buffers, why = "plain", "pageable host memory (this GPU cannot register host memory)"
    pinned_limit = (profile.host_memory_total or 0) // 2 if host_buffers == "pinned" else 0
    if pinned_limit:
        why += f", at most {format_bytes(pinned_limit)} pinned (half of host memory)"
    reasons.append(f"host buffers: {host_buffers} — {why}")

    gpu_memory = None if row.one_memory or gpu is None else gpu.total_memory
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

"""What the machine is, as data: :class:`HardwareProfile`, :class:`GPUInfo` and the
rules that name the platform (:func:`classify`). Pure: nothing here asks the machine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

PLATFORMS = ("integrated-coherent", "coherent", "discrete", "hmm", "wsl", "cpu", "broken")
MIN_COMPUTE_CAPABILITY = (7, 0)  # RAPIDS supports Volta and newer


@dataclass(frozen=True)
class GPUInfo:
    """One GPU: identity, compute capability, memory and how it reaches host memory."""

    index: int
    name: str
    uuid: str | None
    compute_capability: tuple[int, int]
    total_memory: int | None
    free_memory: int | None
    integrated: bool
    pageable_memory_access: bool
    uses_host_page_tables: bool
    concurrent_managed_access: bool
    host_register_supported: bool


@dataclass(frozen=True)
class HardwareProfile:
    """What the machine is; ``platform`` is one of :data:`PLATFORMS` and ``reason`` says why."""

    platform: str
    reason: str
    gpus: tuple[GPUInfo, ...]
    host_memory_total: int | None
    host_memory_available: int | None
    driver_version: str | None
    cuda_driver_version: tuple[int, int] | None
    machine: str
    cpu_count: int
    is_wsl: bool

    @property
    def gpu(self) -> GPUInfo | None:
        """GPU 0, or None."""
        return self.gpus[0] if self.gpus else None

    @property
    def has_usable_gpu(self) -> bool:
        """Whether GPU work can run here."""
        return self.platform not in ("cpu", "broken")

    @property
    def unified_memory(self) -> bool:
        """Whether the GPU reads host ``malloc`` memory coherently, in place."""
        return self.platform in ("integrated-coherent", "coherent")

    @property
    def device_memory_total(self) -> int | None:
        """Memory of GPU 0; on integrated-coherent machines, the host's (one pool)."""
        if self.platform == "integrated-coherent":
            return self.host_memory_total
        return self.gpu.total_memory if self.gpu else None

    @property
    def device_memory_free(self) -> int | None:
        """Free memory of GPU 0; on integrated-coherent machines, host MemAvailable.

        cudaMemGetInfo under-reports on unified-memory systems, and NVML says
        NotSupported there, so the kernel's MemAvailable is the honest number.
        """
        if self.platform == "integrated-coherent":
            return self.host_memory_available
        return self.gpu.free_memory if self.gpu else None

    def host_memory_left(self) -> int | None:
        """Host memory available now: the least of what detection found and what the
        system says at this moment (on a machine a class shares, others' work takes it)."""
        import psutil

        now = psutil.virtual_memory().available
        return min(self.host_memory_available or now, now)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the fields and the derived properties."""
        out = dataclasses.asdict(self)
        out["gpus"] = [dict(g, compute_capability=list(g["compute_capability"])) for g in out["gpus"]]
        if self.cuda_driver_version is not None:
            out["cuda_driver_version"] = list(self.cuda_driver_version)
        out.update(
            has_usable_gpu=self.has_usable_gpu,
            unified_memory=self.unified_memory,
            device_memory_total=self.device_memory_total,
            device_memory_free=self.device_memory_free,
        )
        return out


def classify(gpu: GPUInfo, is_wsl: bool) -> tuple[str, str]:
    """The platform of a working GPU and why (the rules of DESIGN.md's memory table)."""
    cc = gpu.compute_capability
    what = f"GPU 0 ({gpu.name}, compute capability {cc[0]}.{cc[1]})"
    if cc < MIN_COMPUTE_CAPABILITY:
        return "broken", f"{what} is older than Volta: RAPIDS needs compute capability 7.0 or newer"
    if gpu.integrated and gpu.pageable_memory_access:
        return "integrated-coherent", (
            f"{what} is integrated (cudaDevAttrIntegrated=1) and reads pageable host memory "
            "(PageableMemoryAccess=1): CPU and GPU share one coherent memory"
        )
    if gpu.pageable_memory_access and gpu.uses_host_page_tables:
        return "coherent", (
            f"{what} reads pageable host memory through the host's page tables "
            "(PageableMemoryAccessUsesHostPageTables=1): coherent link to host memory, "
            "its own memory besides"
        )
    if gpu.pageable_memory_access:
        return "hmm", (
            f"{what} reads pageable host memory through HMM (PageableMemoryAccess=1, "
            "host page tables 0): discrete memory, system allocations migrate on demand"
        )
    if is_wsl and not gpu.concurrent_managed_access:
        return "wsl", f"{what} under WSL without concurrent managed access: no managed memory"
    return "discrete", (
        f"{what} has its own memory and no pageable memory access: host buffers are "
        + ("pinned in place (host register supported)" if gpu.host_register_supported else "copied")
    )

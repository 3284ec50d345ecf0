"""What the machine is: GPUs, compute capability, memory kind, host memory.

Detection never imports cudf, cuml, cupy or rmm: ``import cudf`` on a broken
driver has crashed the interpreter. It asks NVML (through ``nvidia-ml-py``) and
the CUDA driver (through ``ctypes`` on ``libcuda.so.1``) instead, and every step
is guarded so that a missing or broken piece becomes a platform and a reason,
never an exception.

The probes are injectable (:class:`Probes`), so GPU detection is tested on a
machine without a GPU from fake profiles (``tests/profiles.py``).

>>> from workbench import hardware
>>> profile = hardware.detect()
>>> profile.platform in hardware.PLATFORMS
True
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

from workbench.probes import (  # noqa: F401 - the probe interface is re-exported here
    ATTR_COMPUTE_CAPABILITY_MAJOR,
    ATTR_COMPUTE_CAPABILITY_MINOR,
    ATTR_CONCURRENT_MANAGED_ACCESS,
    ATTR_HOST_REGISTER_SUPPORTED,
    ATTR_INTEGRATED,
    ATTR_PAGEABLE_MEMORY_ACCESS,
    ATTR_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES,
    CUDA_ERROR_NO_DEVICE,
    DriverDevice,
    DriverInfo,
    NvmlDevice,
    NvmlInfo,
    Probes,
    SystemProbes,
    guard,
)

PLATFORMS = ("integrated-coherent", "coherent", "discrete", "hmm", "wsl", "cpu", "broken")
MIN_COMPUTE_CAPABILITY = (7, 0)  # RAPIDS supports Volta and newer

def format_bytes(n: float | None, digits: int = 1) -> str:
    """Bytes in decimal units, as GPU vendors count (``80.0 GB``); ``unknown`` for None."""
    if n is None:
        return "unknown"
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if abs(n) >= size:
            return f"{n / size:.{digits}f} {unit}"
    return f"{n:.0f} B"


# --------------------------------------------------------------------------- the profile


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


# --------------------------------------------------------------------------- detection


def _gpu_info(index: int, dev: DriverDevice, nvml: NvmlDevice | None) -> GPUInfo:
    a = dev.attributes
    total = nvml.total_memory if nvml and nvml.total_memory is not None else dev.total_memory
    return GPUInfo(
        index=index,
        name=nvml.name if nvml and nvml.name else dev.name,
        uuid=dev.uuid or (nvml.uuid if nvml else None),
        compute_capability=(a.get(ATTR_COMPUTE_CAPABILITY_MAJOR, 0), a.get(ATTR_COMPUTE_CAPABILITY_MINOR, 0)),
        total_memory=total,
        free_memory=nvml.free_memory if nvml else None,
        integrated=bool(a.get(ATTR_INTEGRATED, 0)),
        pageable_memory_access=bool(a.get(ATTR_PAGEABLE_MEMORY_ACCESS, 0)),
        uses_host_page_tables=bool(a.get(ATTR_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES, 0)),
        concurrent_managed_access=bool(a.get(ATTR_CONCURRENT_MANAGED_ACCESS, 0)),
        host_register_supported=bool(a.get(ATTR_HOST_REGISTER_SUPPORTED, 0)),
    )


def _pair(driver: DriverInfo, nvml: NvmlInfo | None) -> tuple[GPUInfo, ...]:
    nvml_devices = nvml.devices if nvml else ()
    by_uuid = {d.uuid: d for d in nvml_devices if d.uuid}
    gpus = []
    for i, dev in enumerate(driver.devices):
        match = by_uuid.get(dev.uuid) if dev.uuid else None
        if match is None and not by_uuid and i < len(nvml_devices):
            match = nvml_devices[i]  # no UUIDs on either side: same order is the best guess
        gpus.append(_gpu_info(i, dev, match))
    return tuple(gpus)


def _hides_all_gpus(visible: str | None) -> bool:
    return visible is not None and visible.strip() in ("", "-1", "NoDevFiles", "none")


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


def _detect(probes: Probes) -> HardwareProfile:
    mem = guard(probes.meminfo) or {}
    is_wsl = bool(guard(probes.is_wsl))
    try:
        nvml: NvmlInfo | None = probes.nvml()
        nvml_error = None
    except Exception as exc:  # NVML missing or failing is normal on CPU machines
        nvml, nvml_error = None, f"{type(exc).__name__}: {exc}"
    driver = guard(probes.driver) or DriverInfo(loaded=False, load_error="driver probe failed")
    cuda_version = None
    if driver.version:
        cuda_version = (driver.version // 1000, (driver.version % 1000) // 10)
    base = dict(
        host_memory_total=mem.get("MemTotal"),
        host_memory_available=mem.get("MemAvailable", mem.get("MemFree")),
        driver_version=nvml.driver_version if nvml else None,
        cuda_driver_version=cuda_version,
        machine=guard(probes.machine) or "",
        cpu_count=guard(probes.cpu_count) or 1,
        is_wsl=is_wsl,
    )
    nvml_count = len(nvml.devices) if nvml else 0

    if not driver.loaded:
        if nvml_count:
            why = (
                f"NVML sees {nvml_count} GPU(s) but the CUDA driver library cannot be loaded "
                f"({driver.load_error})"
            )
            return HardwareProfile("broken", why, (), **base)
        return HardwareProfile("cpu", f"no NVIDIA driver ({driver.load_error})", (), **base)
    if driver.init_code != 0:
        failed = f"cuInit failed with {driver.init_error or 'CUDA_ERROR_UNKNOWN'} ({driver.init_code})"
        if driver.init_code == CUDA_ERROR_NO_DEVICE:
            visible = guard(probes.cuda_visible_devices)
            if _hides_all_gpus(visible):
                return HardwareProfile("cpu", f"{failed}: CUDA_VISIBLE_DEVICES={visible!r} hides the GPUs", (), **base)
            if nvml_count == 0:
                return HardwareProfile("cpu", f"{failed}: the driver is installed but there is no GPU", (), **base)
        return HardwareProfile("broken", failed, (), **base)
    gpus = _pair(driver, nvml)
    if not gpus:
        return HardwareProfile("cpu", "the CUDA driver reports no devices", (), **base)
    platform, reason = classify(gpus[0], is_wsl)
    if nvml is None:
        reason += f" (NVML unavailable: {nvml_error}; free memory unknown)"
    return HardwareProfile(platform, reason, gpus, **base)


_CACHE: HardwareProfile | None = None
_LOCK = threading.Lock()


def detect(probes: Probes | None = None, *, refresh: bool = False) -> HardwareProfile:
    """Detect the machine.

    Parameters
    ----------
    probes
        Where to ask; None asks this machine (:class:`SystemProbes`) and caches the
        answer for the process.
    refresh
        Ask again instead of returning the cached profile.

    Returns
    -------
    HardwareProfile

    Examples
    --------
    >>> detect().platform in PLATFORMS
    True
    """
    global _CACHE
    if probes is not None:
        return _detect(probes)
    with _LOCK:
        if _CACHE is None or refresh:
            _CACHE = _detect(SystemProbes())
        return _CACHE


def _cache_clear() -> None:
    global _CACHE
    with _LOCK:
        _CACHE = None


detect.cache_clear = _cache_clear  # type: ignore[attr-defined]

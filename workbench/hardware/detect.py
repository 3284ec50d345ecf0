"""Detection: ask NVML and the CUDA driver (never a GPU library) what the machine is.

Every step is guarded, so that a missing or broken piece becomes a platform and a
reason, never an exception: ``import cudf`` on a broken driver has crashed the
interpreter. The probes are injectable (:class:`~workbench.hardware.probes.Probes`).
"""

from __future__ import annotations

import threading

from workbench.hardware.probes import (
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
from workbench.hardware.profile import PLATFORMS, GPUInfo, HardwareProfile, classify


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

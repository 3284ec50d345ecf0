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

import ctypes
import dataclasses
import os
import platform as _platform
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

PLATFORMS = ("integrated-coherent", "coherent", "discrete", "hmm", "wsl", "cpu", "broken")

# CUdevice_attribute values from cuda.h (stable across CUDA 11-13).
ATTR_INTEGRATED = 18
ATTR_COMPUTE_CAPABILITY_MAJOR = 75
ATTR_COMPUTE_CAPABILITY_MINOR = 76
ATTR_PAGEABLE_MEMORY_ACCESS = 88
ATTR_CONCURRENT_MANAGED_ACCESS = 89
ATTR_HOST_REGISTER_SUPPORTED = 99
ATTR_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES = 100
ATTRIBUTES = (ATTR_INTEGRATED, ATTR_COMPUTE_CAPABILITY_MAJOR, ATTR_COMPUTE_CAPABILITY_MINOR,
              ATTR_PAGEABLE_MEMORY_ACCESS, ATTR_CONCURRENT_MANAGED_ACCESS, ATTR_HOST_REGISTER_SUPPORTED,
              ATTR_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES)
CUDA_ERROR_NO_DEVICE = 100
MIN_COMPUTE_CAPABILITY = (7, 0)  # RAPIDS supports Volta and newer

def format_bytes(n: int | None) -> str:
    """Bytes as a short decimal string (``80.0 GB``), or ``unknown`` for None."""
    if n is None:
        return "unknown"
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


# --------------------------------------------------------------------------- probe results


@dataclass(frozen=True)
class NvmlDevice:
    """One device as NVML sees it (memory is None where NVML says NotSupported)."""

    name: str
    uuid: str | None = None
    total_memory: int | None = None
    free_memory: int | None = None


@dataclass(frozen=True)
class NvmlInfo:
    """What NVML reports: the driver version and the devices."""

    driver_version: str | None
    devices: tuple[NvmlDevice, ...] = ()


@dataclass(frozen=True)
class DriverDevice:
    """One device as the CUDA driver sees it; ``attributes`` maps CUdevice_attribute to value."""

    name: str
    total_memory: int | None = None
    uuid: str | None = None
    attributes: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DriverInfo:
    """What the CUDA driver reports.

    ``loaded`` is False when ``libcuda.so.1`` cannot be opened (``load_error`` says why);
    ``init_code`` is cuInit's result (0 on success) and ``init_error`` its name.
    """

    loaded: bool
    load_error: str | None = None
    init_code: int = 0
    init_error: str | None = None
    version: int | None = None  # cuDriverGetVersion: 1000 * major + 10 * minor
    devices: tuple[DriverDevice, ...] = ()


class Probes(Protocol):
    """What detection asks the machine. :class:`SystemProbes` asks the real one."""

    def meminfo(self) -> dict[str, int]:
        """``/proc/meminfo`` in bytes (at least MemTotal and MemAvailable)."""

    def is_wsl(self) -> bool:
        """Whether this is Windows Subsystem for Linux."""

    def machine(self) -> str:
        """``platform.machine()``."""

    def cpu_count(self) -> int:
        """CPUs this process may run on."""

    def cuda_visible_devices(self) -> str | None:
        """The ``CUDA_VISIBLE_DEVICES`` environment variable."""

    def nvml(self) -> NvmlInfo:
        """NVML's view; raises when NVML is unavailable."""

    def driver(self) -> DriverInfo:
        """The CUDA driver's view; never raises."""


class SystemProbes:
    """The real probes: ``/proc``, NVML via ``pynvml``, the driver via ctypes."""

    def meminfo(self) -> dict[str, int]:
        out: dict[str, int] = {}
        try:
            with open("/proc/meminfo") as fh:
                for line in fh:
                    key, _, rest = line.partition(":")
                    parts = rest.split()
                    if parts:
                        scale = 1024 if parts[-1:] == ["kB"] else 1
                        out[key] = int(parts[0]) * scale
        except (OSError, ValueError):
            # Not Linux: the physical size is all we can tell without psutil.
            total = _guard(lambda: os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
            out = {"MemTotal": total, "MemAvailable": total} if total else {}
        return out

    def is_wsl(self) -> bool:
        try:
            with open("/proc/version") as fh:
                if "microsoft" in fh.read().lower():
                    return True
        except OSError:
            pass
        return os.path.exists("/dev/dxg")

    def machine(self) -> str:
        return _platform.machine()

    def cpu_count(self) -> int:
        try:
            return len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            return os.cpu_count() or 1

    def cuda_visible_devices(self) -> str | None:
        return os.environ.get("CUDA_VISIBLE_DEVICES")

    def nvml(self) -> NvmlInfo:
        import pynvml  # nvidia-ml-py: a thin ctypes wrapper, safe without a GPU

        pynvml.nvmlInit()
        try:
            version = _text(pynvml.nvmlSystemGetDriverVersion())
            devices = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                uuid = _guard(lambda: _text(pynvml.nvmlDeviceGetUUID(handle)))
                # Integrated GPUs (GB10) answer NotSupported: memory is the host's.
                mem = _guard(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))
                devices.append(
                    NvmlDevice(
                        name=_text(pynvml.nvmlDeviceGetName(handle)),
                        uuid=uuid,
                        total_memory=int(mem.total) if mem is not None else None,
                        free_memory=int(mem.free) if mem is not None else None,
                    )
                )
            return NvmlInfo(driver_version=version, devices=tuple(devices))
        finally:
            _guard(pynvml.nvmlShutdown)

    def driver(self) -> DriverInfo:
        try:
            lib = ctypes.CDLL("libcuda.so.1")
        except OSError as exc:
            return DriverInfo(loaded=False, load_error=str(exc))
        version = ctypes.c_int(0)
        got_version = _call(lib, "cuDriverGetVersion", ctypes.byref(version)) == 0
        code = _call(lib, "cuInit", ctypes.c_uint(0))
        info = DriverInfo(loaded=True, init_code=code, version=version.value if got_version else None)
        if code != 0:
            return dataclasses.replace(info, init_error=_error_name(lib, code))
        count = ctypes.c_int(0)
        if _call(lib, "cuDeviceGetCount", ctypes.byref(count)) != 0:
            return info
        devices = []
        for i in range(count.value):
            dev = ctypes.c_int(0)
            if _call(lib, "cuDeviceGet", ctypes.byref(dev), ctypes.c_int(i)) != 0:
                continue
            name = ctypes.create_string_buffer(256)
            _call(lib, "cuDeviceGetName", name, ctypes.c_int(256), dev)
            attributes = {}
            for attr in ATTRIBUTES:
                value = ctypes.c_int(0)
                if _call(lib, "cuDeviceGetAttribute", ctypes.byref(value), ctypes.c_int(attr), dev) == 0:
                    attributes[attr] = value.value
            total = ctypes.c_size_t(0)
            ok_total = _call(lib, "cuDeviceTotalMem_v2", ctypes.byref(total), dev) == 0
            devices.append(
                DriverDevice(
                    name=name.value.decode(errors="replace"),
                    total_memory=total.value if ok_total else None,
                    uuid=_device_uuid(lib, dev),
                    attributes=attributes,
                )
            )
        return dataclasses.replace(info, devices=tuple(devices))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _guard(fn):
    try:
        return fn()
    except Exception:  # a probe step that fails means "unknown", never an error
        return None


def _call(lib, name: str, *args) -> int:
    """Call a driver function; a missing symbol reads as CUDA_ERROR_NOT_FOUND (500)."""
    fn = getattr(lib, name, None)
    if fn is None:
        return 500
    fn.restype = ctypes.c_int
    return int(fn(*args))


def _error_name(lib, code: int) -> str:
    name = ctypes.c_char_p()
    if _call(lib, "cuGetErrorName", ctypes.c_int(code), ctypes.byref(name)) == 0 and name.value:
        return name.value.decode()
    return "CUDA_ERROR_UNKNOWN" if code == 999 else f"CUDA error {code}"


def _device_uuid(lib, dev) -> str | None:
    # NVML and CUDA number devices differently (PCI order vs fastest first,
    # CUDA_VISIBLE_DEVICES): the UUID pairs them up.
    raw = (ctypes.c_ubyte * 16)()
    for symbol in ("cuDeviceGetUuid_v2", "cuDeviceGetUuid"):
        if _call(lib, symbol, ctypes.byref(raw), dev) == 0:
            h = bytes(raw).hex()
            return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return None


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
    mem = _guard(probes.meminfo) or {}
    is_wsl = bool(_guard(probes.is_wsl))
    try:
        nvml: NvmlInfo | None = probes.nvml()
        nvml_error = None
    except Exception as exc:  # NVML missing or failing is normal on CPU machines
        nvml, nvml_error = None, f"{type(exc).__name__}: {exc}"
    driver = _guard(probes.driver) or DriverInfo(loaded=False, load_error="driver probe failed")
    cuda_version = None
    if driver.version:
        cuda_version = (driver.version // 1000, (driver.version % 1000) // 10)
    base = dict(
        host_memory_total=mem.get("MemTotal"),
        host_memory_available=mem.get("MemAvailable", mem.get("MemFree")),
        driver_version=nvml.driver_version if nvml else None,
        cuda_driver_version=cuda_version,
        machine=_guard(probes.machine) or "",
        cpu_count=_guard(probes.cpu_count) or 1,
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
            visible = _guard(probes.cuda_visible_devices)
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

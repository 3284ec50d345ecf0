"""How the machine is asked: NVML through ``nvidia-ml-py`` and the CUDA driver through
``ctypes`` on ``libcuda.so.1``, never cudf/cuml/cupy/rmm (``import cudf`` on a broken
driver has crashed the interpreter).

:class:`Probes` is the interface :func:`workbench.hardware.detect` reads; tests pass
fake probes (``tests/profiles.py``) to cover every platform on a machine without a GPU.
Every step is guarded: a missing or broken piece reads as "unknown", never an exception.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import platform as _platform
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

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
    """The real probes: psutil and ``/proc``, NVML via ``pynvml``, the driver via ctypes."""

    def meminfo(self) -> dict[str, int]:
        # psutil reads /proc/meminfo on Linux (MemAvailable as "available") and the
        # platform's own counters elsewhere.
        import psutil

        mem = guard(psutil.virtual_memory)
        if mem is None:
            return {}
        return {"MemTotal": int(mem.total), "MemAvailable": int(mem.available),
                "MemFree": int(mem.free)}

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
                uuid = guard(lambda: _text(pynvml.nvmlDeviceGetUUID(handle)))
                # Integrated GPUs (GB10) answer NotSupported: memory is the host's.
                mem = guard(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))
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
            guard(pynvml.nvmlShutdown)

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


def guard(fn):
    """``fn()``, or None when it raises: a failed probe step means unknown."""
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

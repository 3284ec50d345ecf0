"""Fake hardware profiles: the probes of machines the CPU CI does not have.

Each entry of :data:`PROFILES` is a :class:`FakeProbes` answering what the real
machine's NVML, CUDA driver and ``/proc`` answer (attributes from cuda.h,
memory sizes from the data sheets). Use them with ``workbench.hardware.detect``:

>>> from tests.profiles import PROFILES, hardware_profile
>>> hardware_profile("h100").platform
'discrete'

``profile_params()`` gives ``pytest.param`` objects (with ids) for parametrizing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from workbench.hardware.probes import (
    ATTR_COMPUTE_CAPABILITY_MAJOR,
    ATTR_COMPUTE_CAPABILITY_MINOR,
    ATTR_CONCURRENT_MANAGED_ACCESS,
    ATTR_HOST_REGISTER_SUPPORTED,
    ATTR_INTEGRATED,
    ATTR_PAGEABLE_MEMORY_ACCESS,
    ATTR_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES,
    DriverDevice,
    DriverInfo,
    NvmlDevice,
    NvmlInfo,
)
from workbench.hardware import HardwareProfile, detect

GB = 10**9
GiB = 2**30


class NVMLError(Exception):
    """Stands in for pynvml's errors (NVML missing, NotSupported...)."""


@dataclass
class FakeProbes:
    """Probes with fixed answers; ``nvml_info`` may be an exception to raise."""

    mem_total: int
    mem_available: int
    driver_info: DriverInfo
    nvml_info: NvmlInfo | Exception
    wsl: bool = False
    arch: str = "x86_64"
    cpus: int = 16
    visible_devices: str | None = None
    calls: list[str] = field(default_factory=list)

    def meminfo(self) -> dict[str, int]:
        self.calls.append("meminfo")
        return {"MemTotal": self.mem_total, "MemAvailable": self.mem_available}

    def is_wsl(self) -> bool:
        return self.wsl

    def machine(self) -> str:
        return self.arch

    def cpu_count(self) -> int:
        return self.cpus

    def cuda_visible_devices(self) -> str | None:
        return self.visible_devices

    def nvml(self) -> NvmlInfo:
        self.calls.append("nvml")
        if isinstance(self.nvml_info, Exception):
            raise self.nvml_info
        return self.nvml_info

    def driver(self) -> DriverInfo:
        self.calls.append("driver")
        return self.driver_info

    def replace(self, **changes) -> FakeProbes:
        """A copy with some answers changed."""
        return dataclasses.replace(self, calls=[], **changes)


def _attrs(cc, integrated=0, pageable=0, host_tables=0, managed=1, register=1) -> dict[int, int]:
    return {
        ATTR_INTEGRATED: integrated,
        ATTR_COMPUTE_CAPABILITY_MAJOR: cc[0],
        ATTR_COMPUTE_CAPABILITY_MINOR: cc[1],
        ATTR_PAGEABLE_MEMORY_ACCESS: pageable,
        ATTR_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES: host_tables,
        ATTR_CONCURRENT_MANAGED_ACCESS: managed,
        ATTR_HOST_REGISTER_SUPPORTED: register,
    }


def _gpu(name, uuid, cc, total, free, *, driver_version="580.95.05", cuda=13000, nvml_memory=True, **attrs):
    """Driver and NVML answers for a one-GPU machine."""
    driver = DriverInfo(
        loaded=True,
        version=cuda,
        devices=(DriverDevice(name=name, total_memory=total, uuid=uuid, attributes=_attrs(cc, **attrs)),),
    )
    nvml = NvmlInfo(
        driver_version=driver_version,
        devices=(
            NvmlDevice(
                name=name,
                uuid=uuid,
                total_memory=total if nvml_memory else None,
                free_memory=free if nvml_memory else None,
            ),
        ),
    )
    return driver, nvml


def _probes(gpu, mem_total, mem_available, **kw) -> FakeProbes:
    driver, nvml = gpu
    return FakeProbes(mem_total=mem_total, mem_available=mem_available, driver_info=driver, nvml_info=nvml, **kw)


PROFILES: dict[str, FakeProbes] = {
    # DGX Spark: one 128 GB LPDDR5X pool; NVML answers NotSupported for memory, and
    # cuDeviceTotalMem reports the host's memory.
    "gb10": _probes(
        _gpu("NVIDIA GB10", "GPU-2b5c1a10-0000-4000-8000-00000000gb10", (12, 1), 119 * GiB, None,
             nvml_memory=False, integrated=1, pageable=1, host_tables=1, managed=1, register=1),
        128 * GB, 110 * GB, arch="aarch64", cpus=20,
    ),
    # Grace Hopper: 96 GB HBM3 plus 480 GB LPDDR5X over NVLink-C2C.
    "gh200": _probes(
        _gpu("NVIDIA GH200 480GB", "GPU-0c0ffee0-0000-4000-8000-0000000gh200", (9, 0), 96 * GB, 94 * GB,
             pageable=1, host_tables=1, managed=1, register=1),
        480 * GB, 460 * GB, arch="aarch64", cpus=72,
    ),
    # The H100 test machine: PCIe, no pageable memory access, cudaHostRegister works.
    "h100": _probes(
        _gpu("NVIDIA H100 80GB HBM3", "GPU-1d100000-0000-4000-8000-000000000h100", (9, 0), 80 * GB, 79 * GB,
             pageable=0, host_tables=0, managed=1, register=1),
        128 * GiB, 120 * GiB, cpus=16,
    ),
    # x86 with the open kernel modules and HMM: pageable access without host page tables.
    "hmm": _probes(
        _gpu("NVIDIA A100-SXM4-40GB", "GPU-a1000000-0000-4000-8000-0000000a100", (8, 0), 40 * GB, 39 * GB,
             pageable=1, host_tables=0, managed=1, register=1),
        256 * GB, 240 * GB,
    ),
    # WSL 2: no concurrent managed access, /proc/version says Microsoft.
    "wsl": _probes(
        _gpu("NVIDIA GeForce RTX 4090", "GPU-4090aaaa-0000-4000-8000-00000000wsl0", (8, 9), 24 * GB, 22 * GB,
             pageable=0, host_tables=0, managed=0, register=1),
        64 * GB, 50 * GB, wsl=True,
    ),
    # A laptop with no NVIDIA driver at all.
    "none": FakeProbes(
        mem_total=16 * GB, mem_available=10 * GB,
        driver_info=DriverInfo(loaded=False, load_error="libcuda.so.1: cannot open shared object file"),
        nvml_info=NVMLError("NVML Shared Library Not Found"),
        arch="arm64", cpus=8,
    ),
    # Driver installed and NVML sees the GPU, but cuInit fails (e.g. after a driver
    # update without a reboot, or a container without the device nodes).
    "broken": FakeProbes(
        mem_total=64 * GB, mem_available=60 * GB,
        driver_info=DriverInfo(loaded=True, version=13000, init_code=999, init_error="CUDA_ERROR_UNKNOWN"),
        nvml_info=NvmlInfo("580.95.05", (NvmlDevice("NVIDIA L4", "GPU-14000000", 24 * GB, 23 * GB),)),
    ),
    # Same, but cuInit answers CUDA_ERROR_NO_DEVICE although NVML lists a GPU.
    "broken-no-device": FakeProbes(
        mem_total=64 * GB, mem_available=60 * GB,
        driver_info=DriverInfo(loaded=True, version=13000, init_code=100, init_error="CUDA_ERROR_NO_DEVICE"),
        nvml_info=NvmlInfo("580.95.05", (NvmlDevice("NVIDIA L4", "GPU-14000000", 24 * GB, 23 * GB),)),
    ),
    # Pascal: works with CUDA, too old for RAPIDS.
    "old-gpu": _probes(
        _gpu("Tesla P100-PCIE-16GB", "GPU-p1000000-0000-4000-8000-00000000p100", (6, 1), 16 * GB, 15 * GB,
             driver_version="535.183.01", cuda=12020),
        64 * GB, 60 * GB,
    ),
}

# The platform each profile must be detected as.
EXPECTED_PLATFORM = {
    "gb10": "integrated-coherent",
    "gh200": "coherent",
    "h100": "discrete",
    "hmm": "hmm",
    "wsl": "wsl",
    "none": "cpu",
    "broken": "broken",
    "broken-no-device": "broken",
    "old-gpu": "broken",
}


def probes(name: str) -> FakeProbes:
    """A fresh copy of the named profile's probes (safe to modify)."""
    return PROFILES[name].replace()


def hardware_profile(name: str, **changes) -> HardwareProfile:
    """``detect()`` run on the named fake profile, with optional probe changes."""
    return detect(PROFILES[name].replace(**changes))


def profile_params(names=None):
    """``pytest.param(name, id=name)`` for each profile, for ``@pytest.mark.parametrize``."""
    import pytest

    return [pytest.param(n, id=n) for n in (names or PROFILES)]

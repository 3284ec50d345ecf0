"""Hardware detection: every platform from its fake profile, and the real machine."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.profiles import EXPECTED_PLATFORM, GB, GiB, NVMLError, PROFILES, hardware_profile, probes, profile_params
from workbench.hardware import probes as hw_probes
from workbench.hardware import (
    PLATFORMS,
    DriverDevice,
    DriverInfo,
    GPUInfo,
    NvmlDevice,
    NvmlInfo,
    classify,
    detect,
)
from workbench.sizes import format_bytes


@pytest.mark.parametrize("name", profile_params())
def test_every_profile_is_detected_as_its_platform(name):
    profile = hardware_profile(name)
    assert profile.platform == EXPECTED_PLATFORM[name]
    assert profile.platform in PLATFORMS
    assert profile.reason
    json.dumps(profile.to_dict())  # JSON-able


def test_gb10_is_integrated_coherent_and_sized_from_meminfo():
    p = hardware_profile("gb10")
    assert p.platform == "integrated-coherent"
    assert p.unified_memory and p.has_usable_gpu
    assert p.gpu.integrated and p.gpu.pageable_memory_access
    # NVML says NotSupported on UMA: the host's MemTotal / MemAvailable stand in.
    assert p.gpu.free_memory is None
    assert p.device_memory_total == 128 * GB
    assert p.device_memory_free == 110 * GB
    assert p.machine == "aarch64"
    assert p.gpu.compute_capability == (12, 1)
    assert "integrated" in p.reason


def test_gh200_is_coherent_with_its_own_hbm():
    p = hardware_profile("gh200")
    assert p.platform == "coherent" and p.unified_memory
    assert p.device_memory_total == 96 * GB
    assert p.host_memory_total == 480 * GB
    assert "page tables" in p.reason


def test_h100_is_discrete_with_driver_and_cuda_versions():
    p = hardware_profile("h100")
    assert p.platform == "discrete" and not p.unified_memory
    assert p.driver_version == "580.95.05"
    assert p.cuda_driver_version == (13, 0)
    assert p.gpu.host_register_supported and not p.gpu.pageable_memory_access
    assert p.device_memory_total == 80 * GB and p.device_memory_free == 79 * GB
    assert p.gpu.name == "NVIDIA H100 80GB HBM3"
    assert p.to_dict()["cuda_driver_version"] == [13, 0]


def test_hmm_and_wsl():
    assert hardware_profile("hmm").platform == "hmm"
    wsl = hardware_profile("wsl")
    assert wsl.platform == "wsl" and wsl.is_wsl
    # WSL with concurrent managed access is treated like any discrete GPU.
    gpu = PROFILES["wsl"].driver_info.devices[0]
    attrs = {**gpu.attributes, hw_probes.ATTR_CONCURRENT_MANAGED_ACCESS: 1}
    driver = DriverInfo(loaded=True, version=13000, devices=(DriverDevice(gpu.name, gpu.total_memory, gpu.uuid, attrs),))
    assert hardware_profile("wsl", driver_info=driver).platform == "discrete"


def test_no_driver_is_cpu():
    p = hardware_profile("none")
    assert p.platform == "cpu" and not p.has_usable_gpu
    assert "libcuda.so.1" in p.reason
    assert p.gpu is None and p.device_memory_total is None


@pytest.mark.parametrize("name, code, error", [("broken", 999, "CUDA_ERROR_UNKNOWN"),
                                                ("broken-no-device", 100, "CUDA_ERROR_NO_DEVICE")])
def test_cuinit_failure_is_broken_with_the_error(name, code, error):
    p = hardware_profile(name)
    assert p.platform == "broken" and not p.has_usable_gpu
    assert p.reason.startswith(f"cuInit failed with {error} ({code})")
    assert p.driver_version == "580.95.05"  # NVML still answered


def test_no_device_is_cpu_when_gpus_are_hidden_or_absent():
    hidden = hardware_profile("broken-no-device", visible_devices="")
    assert hidden.platform == "cpu" and "CUDA_VISIBLE_DEVICES" in hidden.reason
    absent = hardware_profile("broken-no-device", nvml_info=NvmlInfo("580.95.05", ()))
    assert absent.platform == "cpu" and "no GPU" in absent.reason
    # Any other cuInit failure stays broken, hidden GPUs or not.
    assert hardware_profile("broken", visible_devices="").platform == "broken"


def test_nvml_without_driver_is_broken():
    p = hardware_profile("h100", driver_info=DriverInfo(loaded=False, load_error="libcuda.so.1: not found"))
    assert p.platform == "broken"
    assert "NVML sees 1 GPU" in p.reason


def test_driver_without_nvml_still_detects_but_free_memory_is_unknown():
    p = hardware_profile("h100", nvml_info=NVMLError("NVML Shared Library Not Found"))
    assert p.platform == "discrete"
    assert p.device_memory_total == 80 * GB  # from cuDeviceTotalMem
    assert p.device_memory_free is None and p.driver_version is None
    assert "NVML unavailable" in p.reason


def test_old_gpu_is_broken_with_compute_capability():
    p = hardware_profile("old-gpu")
    assert p.platform == "broken"
    assert "6.1" in p.reason and "7.0" in p.reason
    assert p.gpu.compute_capability == (6, 1)
    assert p.cuda_driver_version == (12, 2)


def test_gpus_are_paired_with_nvml_by_uuid():
    a = DriverDevice("GPU A", 40 * GB, "GPU-a", {hw_probes.ATTR_COMPUTE_CAPABILITY_MAJOR: 8})
    b = DriverDevice("GPU B", 80 * GB, "GPU-b", {hw_probes.ATTR_COMPUTE_CAPABILITY_MAJOR: 9})
    # NVML lists in PCI order, CUDA fastest first: the lists disagree.
    nvml = NvmlInfo("580", (NvmlDevice("GPU B", "GPU-b", 80 * GB, 70 * GB), NvmlDevice("GPU A", "GPU-a", 40 * GB, 30 * GB)))
    p = hardware_profile("h100", driver_info=DriverInfo(loaded=True, version=13000, devices=(a, b)), nvml_info=nvml)
    assert [(g.index, g.name, g.free_memory) for g in p.gpus] == [(0, "GPU A", 30 * GB), (1, "GPU B", 70 * GB)]


def test_zero_devices_is_cpu():
    p = hardware_profile("h100", driver_info=DriverInfo(loaded=True, version=13000, devices=()))
    assert p.platform == "cpu"


def _gpu(**flags) -> GPUInfo:
    base = dict(index=0, name="GPU", uuid=None, compute_capability=(9, 0), total_memory=GiB, free_memory=GiB,
                integrated=False, pageable_memory_access=False, uses_host_page_tables=False,
                concurrent_managed_access=True, host_register_supported=True)
    base.update(flags)
    return GPUInfo(**base)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    integrated=st.booleans(), pageable=st.booleans(), tables=st.booleans(), managed=st.booleans(),
    wsl=st.booleans(), cc=st.tuples(st.integers(3, 12), st.integers(0, 9)),
)
def test_classify_rules(integrated, pageable, tables, managed, wsl, cc):
    gpu = _gpu(integrated=integrated, pageable_memory_access=pageable, uses_host_page_tables=tables,
               concurrent_managed_access=managed, compute_capability=cc)
    platform, reason = classify(gpu, wsl)
    assert platform in PLATFORMS and reason
    if cc < (7, 0):
        assert platform == "broken"
    elif pageable:
        expected = "integrated-coherent" if integrated else "coherent" if tables else "hmm"
        assert platform == expected
    else:
        assert platform == ("wsl" if wsl and not managed else "discrete")


def test_format_bytes():
    assert format_bytes(None) == "unknown"
    assert format_bytes(80 * GB) == "80.0 GB"
    assert format_bytes(512) == "512 B"
    assert format_bytes(1_500_000) == "1.5 MB"


def _libcuda_loads() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def test_real_detect_without_gpu_libraries():
    # A fresh interpreter, so that sys.modules shows only what detection imported.
    code = (
        "import sys, json\n"
        "from workbench import hardware\n"
        "p = hardware.detect()\n"
        "gpu_libs = sorted(m for m in sys.modules if m.split('.')[0] in ('cudf', 'cuml', 'cupy', 'rmm', 'cudf_polars'))\n"
        "print(json.dumps({'platform': p.platform, 'gpu_libs': gpu_libs}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["gpu_libs"] == []
    if not _libcuda_loads():
        assert result["platform"] == "cpu"
    else:
        assert result["platform"] in PLATFORMS


def test_detect_caches_per_process():
    first = detect()
    assert detect() is first
    assert detect(refresh=True) is not first
    detect.cache_clear()
    assert detect() is not first
    # Injected probes are never cached.
    assert detect(probes("h100")) is not detect(probes("h100"))


def test_system_probes_read_this_machine():
    real = hw_probes.SystemProbes()
    mem = real.meminfo()
    assert mem["MemTotal"] > 0 and 0 < mem["MemAvailable"] <= mem["MemTotal"]
    assert real.cpu_count() >= 1
    assert isinstance(real.is_wsl(), bool)
    info = real.driver()  # never raises
    assert isinstance(info, DriverInfo)
    assert info.loaded == _libcuda_loads()
    p = detect()
    assert p.host_memory_total == mem["MemTotal"]

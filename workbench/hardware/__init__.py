"""What the machine is: GPUs, compute capability, memory kind, host memory.

:func:`detect` asks NVML (through ``nvidia-ml-py``) and the CUDA driver (through
``ctypes``), never cudf, cuml, cupy or rmm, and names the platform of DESIGN.md's
memory table. The probes are injectable (:class:`Probes`), so detection is tested on
machines without a GPU from fake profiles (``tests/profiles.py``).

>>> from workbench import hardware
>>> profile = hardware.detect()
>>> profile.platform in hardware.PLATFORMS
True
"""

from workbench.hardware.detect import detect
from workbench.hardware.probes import DriverDevice, DriverInfo, NvmlDevice, NvmlInfo, Probes, SystemProbes
from workbench.hardware.profile import (MIN_COMPUTE_CAPABILITY, PLATFORMS, GPUInfo, HardwareProfile,
                                        classify)

__all__ = ["detect", "classify", "HardwareProfile", "GPUInfo", "PLATFORMS", "MIN_COMPUTE_CAPABILITY",
           "Probes", "SystemProbes", "NvmlInfo", "NvmlDevice", "DriverInfo", "DriverDevice"]

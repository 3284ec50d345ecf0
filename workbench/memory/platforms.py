"""DESIGN.md's memory table as data: one row per platform.

Changing what the workbench does on a kind of machine (the GB10's policy, say) is
changing its row here; :func:`workbench.memory.choose` reads the rows and adds only
what the user asked for.

>>> ROWS["integrated-coherent"].mode, ROWS["integrated-coherent"].host_buffers
('system', 'unified')
>>> ROWS["discrete"].spill
True
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("auto", "system", "sam-headroom", "managed", "pool", "async", "cpu")
HOST_BUFFERS = ("unified", "pinned", "plain")


@dataclass(frozen=True)
class Row:
    """What ``auto`` chooses on one platform.

    Attributes
    ----------
    mode : str
        The RMM memory mode.
    spill : bool
        cuDF spilling to host memory by default.
    host_buffers : str
        ``"unified"`` (the GPU reads host malloc memory in place), ``"pinned"``
        (registered in place with cudaHostRegister, where the GPU supports it) or
        ``"plain"``.
    one_memory : bool
        Device and host memory are the same memory: the device's size and free memory
        are the host's (``/proc/meminfo``; NVML says NotSupported, cudaMemGetInfo
        under-reports), and spilling cannot help.
    why_spill : str
        Why spilling is off, when it is.
    why_host : str
        What the host buffers do.
    """

    mode: str
    spill: bool
    host_buffers: str
    one_memory: bool = False
    why_spill: str = ""
    why_host: str = ""


_UNIFIED = "the GPU reads host malloc memory in place, zero-copy both ways"
_PINNED = ("host buffers registered (cudaHostRegister), in place when they own their memory "
           "pages: PCIe-speed copies, mapped reads")
_MIGRATES = "system-allocated memory migrates to host memory by itself"

ROWS = {
    # DGX Spark (GB10): one coherent LPDDR5X memory for CPU and GPU.
    "integrated-coherent": Row("system", False, "unified", one_memory=True,
                               why_spill="host and device memory are one", why_host=_UNIFIED),
    # Grace Hopper (GH200): HBM plus LPDDR5X over NVLink-C2C, coherent.
    "coherent": Row("sam-headroom", False, "unified", why_spill=_MIGRATES, why_host=_UNIFIED),
    # H100 / H200 over PCIe.
    "discrete": Row("async", True, "pinned", why_host=_PINNED),
    # x86 with HMM: discrete memory; system allocations opt-in.
    "hmm": Row("async", True, "pinned", why_host=_PINNED),
    "wsl": Row("pool", True, "plain", why_host="pageable host memory (WSL)"),
    "cpu": Row("cpu", False, "plain", why_spill="no GPU memory in CPU mode",
               why_host="plain Arrow memory on the CPU"),
    "broken": Row("cpu", False, "plain", why_spill="no GPU memory in CPU mode",
                  why_host="plain Arrow memory on the CPU"),
}

#: what each mode is, for the policy's reasons
WHY_MODE = {
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

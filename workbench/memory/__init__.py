"""GPU memory: the policy per platform, and applying it to this process.

:func:`choose` (pure) turns a hardware profile and the user's overrides into a
:class:`MemoryPolicy`, following the rows of :mod:`workbench.memory.platforms`;
:mod:`workbench.memory.apply` configures RMM, CuPy and cuDF with it once per process;
:mod:`workbench.memory.consumers` gives the polars GPU engine and dask-cuda workers
the same policy.

>>> from workbench import hardware, memory
>>> policy = memory.choose(hardware.detect(), budget=None)
>>> policy.mode in memory.MODES
True
"""

from workbench.memory.apply import (applied, current_resource, device_memory_stats, engine_resource,
                                    resource_chain)
from workbench.memory.budget import parse_budget
from workbench.memory.consumers import EXECUTORS
from workbench.memory.platforms import HOST_BUFFERS, MODES, ROWS
from workbench.memory.policy import MemoryPolicy, choose

__all__ = ["choose", "MemoryPolicy", "parse_budget", "MODES", "HOST_BUFFERS", "EXECUTORS", "ROWS",
           "applied", "current_resource", "resource_chain", "engine_resource", "device_memory_stats"]

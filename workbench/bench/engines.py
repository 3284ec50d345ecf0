"""The engine registry: which engines exist, in which order they run, by name.

The adapters are in ``engines_cpu`` (polars, polars CPU streaming, DuckDB, pandas) and
``engines_gpu`` (the polars GPU engine, cudf, the workbench); what they share is in
``engine_base``. :func:`register` adds an engine (tests use it to plant a wrong
answer); an engine that is not built in always runs in the current process.
"""

from __future__ import annotations

from typing import Callable

from workbench.bench.engine_base import (Engine, error_status, gpu_count, is_out_of_memory,
                                         parquet_files, polars_chk)
from workbench.bench.engines_cpu import (DuckDBEngine, PandasEngine, PolarsEngine,
                                         PolarsStreamingEngine)
from workbench.bench.engines_gpu import (CudfEngine, PolarsGPUEngine, WorkbenchEngine,
                                         device_synchronize)

__all__ = [
    "BUILTIN", "CudfEngine", "DuckDBEngine", "Engine", "PandasEngine", "PolarsEngine",
    "PolarsGPUEngine", "PolarsStreamingEngine", "REFERENCE", "STREAMING_REFERENCE",
    "WorkbenchEngine", "builtin", "device_synchronize", "engine_names", "error_status",
    "get_engine", "gpu_count", "is_out_of_memory", "parquet_files", "polars_chk", "register",
    "unregister",
]

_REGISTRY: dict[str, Callable[[], Engine]] = {}
_CLASSES = (PolarsEngine, PolarsStreamingEngine, DuckDBEngine, PandasEngine, PolarsGPUEngine,
            CudfEngine, WorkbenchEngine)
#: the engines that come with workbench, in the order they run
BUILTIN = tuple(c.name for c in _CLASSES)
#: the engine whose answers are the reference for "chk"
REFERENCE = "polars"
#: the reference when polars CPU does not run (refused for memory, skipped)
STREAMING_REFERENCE = "polars-streaming"


def register(name: str, factory: Callable[[], Engine]) -> None:
    """Add (or replace) the engine ``name``; ``factory()`` returns a fresh adapter."""
    _REGISTRY[name] = factory


def unregister(name: str) -> None:
    """Remove the engine ``name`` (a no-op when there is none)."""
    _REGISTRY.pop(name, None)


def builtin(name: str) -> bool:
    """Whether ``name`` is a built-in engine that has not been replaced by ``register``."""
    cls = {c.name: c for c in _CLASSES}.get(name)
    return cls is not None and _REGISTRY.get(name) is cls


def engine_names() -> list[str]:
    """Every registered engine, built-in ones first in their run order."""
    return [n for n in BUILTIN if n in _REGISTRY] + [n for n in _REGISTRY if n not in BUILTIN]


def get_engine(name: str, gpu_budget: int | None = None) -> Engine:
    """A fresh adapter for ``name``; ``gpu_budget`` (bytes) for its GPU work, if any."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown engine {name!r}; valid: {', '.join(engine_names())}"
        ) from None
    eng = factory()
    if gpu_budget:
        eng.gpu_budget = int(gpu_budget)
    return eng


for _cls in _CLASSES:
    register(_cls.name, _cls)

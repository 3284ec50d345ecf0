"""What every engine adapter shares: the base class, file listing, versions, chk, OOM.

An engine is a small object with ``load`` (tables from Parquet), ``run`` (one question,
returning its result fully computed), ``chk`` (row count and column sums of a result)
and ``close``. ``available()`` says why an engine cannot run here without importing a
GPU library. The adapters themselves are in ``engines_cpu`` and ``engines_gpu``; the
registry is in ``engines``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from workbench import hardware
from workbench.bench.questions import Question
from workbench.diagnostics.versions import version
from workbench.errors import is_out_of_memory
from workbench.sizes import format_bytes


def parquet_files(path: str | Path) -> list[str]:
    """The Parquet files of ``path`` (a file, or a directory of them), sorted."""
    p = Path(path)
    if p.is_file():
        return [str(p)]
    files = sorted(str(f) for f in p.rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files under {p}")
    return files


def gpu_count() -> int:
    """How many usable NVIDIA GPUs this machine has (the workbench's own detection)."""
    profile = hardware.detect()
    return len(profile.gpus) if profile.has_usable_gpu else 0


def error_status(err: BaseException, gpu: bool = False) -> str:
    """``error: ...`` for a failed load or question; out of memory is named as such."""
    msg = f"{type(err).__name__}: {err}".strip()
    line = next((ln for ln in msg.splitlines() if ln.strip()), msg)[:300]
    if is_out_of_memory(err):
        return f"error: out of memory{' on the GPU' if gpu else ''}: {line}"
    return "error: " + line


class Engine:
    """Base class of an engine adapter. Subclasses set the class attributes below."""

    name = "engine"
    label = "engine"
    device = "cpu"
    #: package names whose versions go into the results
    packages: tuple[str, ...] = ()
    #: host (and device) memory needed, as a multiple of the tables' in-memory size
    host_factor = 2.0
    device_factor = 0.0
    #: bytes of device memory the engine may use (``--gpu-budget``); None: the device
    gpu_budget: int | None = None

    def available(self) -> str | None:
        """``None`` when the engine can run here, else the reason it cannot."""
        return None

    def versions(self) -> dict[str, str | None]:
        return {p: version(p) for p in self.packages}

    def supports(self, q: Question) -> str | None:
        """``None`` when the engine can answer ``q``, else the reason it cannot."""
        return None

    def load(self, paths: dict[str, Path]) -> None:
        raise NotImplementedError

    def run(self, q: Question) -> Any:
        raise NotImplementedError

    def chk(self, result: Any, columns: tuple[str, ...]) -> tuple[int, dict[str, float]]:
        raise NotImplementedError

    def notes(self) -> list[str]:
        """Remarks about the last ``run`` (a fallback to the CPU, say)."""
        return []

    def question_started(self) -> None:
        """Called before the runs of each question (to start per-question counters)."""

    def device_stats(self) -> dict | None:
        """The engine's own device-memory counters, where it keeps any."""
        return None

    def setup(self) -> dict[str, Any]:
        """How the engine was set up in the process that ran it (environment, budget).

        Read after ``load``, in that process, so an isolated engine reports its own
        environment rather than the parent's.
        """
        return {}

    def close(self) -> None:
        """Free the tables (the next engine needs the memory)."""
        self.tables = None


def polars_chk(df, columns) -> tuple[int, dict[str, float]]:
    """Row count and the sum of each of ``columns`` of a polars DataFrame, NaN skipped."""
    import polars as pl

    sums = {}
    for c in columns:
        s = df.get_column(c)
        if s.dtype.is_float():
            s = s.fill_nan(None)
        v = s.cast(pl.Float64).sum()
        sums[c] = float(v) if v is not None else 0.0
    return df.height, sums


def warning_notes(caught) -> list[str]:
    """The warnings worth keeping (a fallback to the CPU, say), one line each."""
    keep = {" ".join(str(w.message).split())[:600] for w in caught
            if not issubclass(w.category, (DeprecationWarning, FutureWarning))}
    return sorted(k for k in keep if k)


def gb(n: float) -> str:
    """Bytes as ``"1.25 GB"`` (powers of 1000, as ``--gpu-budget 2GB`` reads them)."""
    return format_bytes(n, 2)


def env_of(*names: str) -> dict[str, str | None]:
    """The values of environment variables ``names`` in this process."""
    return {n: os.environ.get(n) for n in names}

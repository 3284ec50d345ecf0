"""The GPU engines: the polars GPU engine, hand-written cudf, and the workbench.

What each is timed on (``run``): cudf's result stays on the device, so ``run``
synchronises the device before the clock stops; so does the workbench's, a
``Frame`` left on the device (``wb.collect(..., as_frame=True)``, synchronised
before it returns); the polars GPU engine returns a host polars DataFrame. For
q8 and q9 both GPU polars engines run the question's ``polars_gpu`` code.

Under a GPU memory budget (``--gpu-budget``, :attr:`Engine.gpu_budget`), each runs
the way its users would run it in that budget:

- the polars GPU engine scans the Parquet files with ``pl.scan_parquet`` and collects
  with ``pl.GPUEngine(executor="streaming", memory_resource=LimitingResourceAdaptor(
  CudaAsyncMemoryResource(), allocation_limit=budget), executor_options=
  {"target_partition_size": budget // 16})``;
- cudf allocates through the same limited resource (it holds the whole table, so it
  is refused before loading when the table does not fit the budget);
- the workbench runs with ``WORKBENCH_GPU_BUDGET`` set: its session limits device
  memory to the budget and streams inputs larger than half of it.

A ``StatisticsResourceAdaptor`` on top of the limited resource counts, per question,
the peak bytes allocated through it (``device_stats``).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

from workbench.bench.engine_base import (Engine, env_of, gb, gpu_count, parquet_files, polars_chk,
                                         warning_notes)
from workbench.bench.engines_cpu import PolarsEngine
from workbench.config import BUDGET as ENV_BUDGET
from workbench.optional import available


def _gpu_reason(module: str, package: str) -> str | None:
    if not available(module):
        return f"{module} is not installed (pip install 'gpu-workbench[gpu]' for {package})"
    if gpu_count() == 0:
        return "no NVIDIA GPU found"
    return None


def device_synchronize() -> None:
    """Wait for all work queued on the current device."""
    try:
        import cupy

        cupy.cuda.runtime.deviceSynchronize()
        return
    except ImportError:
        pass
    from numba import cuda

    cuda.synchronize()


def budget_resource(budget: int):
    """``LimitingResourceAdaptor(CudaAsyncMemoryResource(), budget)``, counted.

    The statistics adaptor on top only counts (per question, with push/pop): every
    allocation still goes through the limit.
    """
    import rmm

    limited = rmm.mr.LimitingResourceAdaptor(rmm.mr.CudaAsyncMemoryResource(),
                                             allocation_limit=int(budget))
    return rmm.mr.StatisticsResourceAdaptor(limited)


class _BudgetCounters:
    """Per-question peak of the bytes allocated through the budget's resource."""

    _stats_mr = None
    _pushed = False

    def question_started(self):
        if self._stats_mr is not None:
            self._stats_mr.push_counters()
            self._pushed = True

    def device_stats(self):
        mr = self._stats_mr
        if mr is None or not self._pushed:
            return None
        self._pushed = False
        q = mr.pop_counters()
        return {"question_peak_bytes": int(q.peak_bytes), "question_total_bytes": int(q.total_bytes),
                "held_bytes": int(mr.allocation_counts.current_bytes), "budget": self.gpu_budget}


class PolarsGPUEngine(_BudgetCounters, PolarsEngine):
    """The polars GPU engine as users call it: ``collect(engine="gpu")``, default options.

    polars falls back to the CPU, with a warning, for a plan the GPU engine cannot run;
    the warning is kept as a note so the report can show that the time is a CPU time.
    Under a budget: the streaming executor over ``pl.scan_parquet`` (module docstring).
    """

    name = "polars-gpu"
    label = "polars GPU engine"
    device = "gpu"
    packages = ("polars", "cudf-polars")

    def available(self):
        return _gpu_reason("cudf_polars", "cudf-polars")

    def load(self, paths):
        if not self.gpu_budget:
            self._engine = "gpu"
            return super().load(paths)
        import polars as pl

        budget = int(self.gpu_budget)
        # cudf-polars 26.10's streaming executor takes the buffers it moves between
        # stages (rapidsmpf) from a resource it makes itself; only libcudf's own
        # allocations see this one. NVML's device peak shows whether the budget held.
        self._stats_mr = budget_resource(budget)
        self._engine = pl.GPUEngine(executor="streaming", memory_resource=self._stats_mr,
                                    executor_options={"target_partition_size": max(1, budget // 16)})
        # A user whose table is larger than the budget scans the files: the streaming
        # executor reads partitions of them instead of holding the table anywhere.
        self.tables = {n: pl.scan_parquet(parquet_files(p)) for n, p in paths.items()}
        for lf in self.tables.values():
            lf.collect_schema()
        self._lazy = self.tables

    def run(self, q):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = (q.polars_gpu or q.polars)(self._lazy).collect(engine=self._engine)
        self._notes = warning_notes(caught)
        return out

    def notes(self):
        return getattr(self, "_notes", [])

    def setup(self):
        if not self.gpu_budget:
            return {}
        return {"gpu_budget": f"streaming executor over pl.scan_parquet, "
                              f"LimitingResourceAdaptor(CudaAsyncMemoryResource(), {gb(self.gpu_budget)}), "
                              f"target_partition_size {gb(max(1, self.gpu_budget // 16))}"}

    def close(self):
        self.tables = self._lazy = self._engine = None


class CudfEngine(_BudgetCounters, Engine):
    """Hand-written cudf: the pandas code of each question on ``cudf.DataFrame``."""

    name = "cudf"
    label = "cudf"
    device = "gpu"
    packages = ("cudf", "rmm")
    host_factor = 1.0
    device_factor = 2.5

    def available(self):
        return _gpu_reason("cudf", "cudf")

    def load(self, paths):
        if self.gpu_budget:
            import rmm

            # Set before cudf allocates anything: every cudf buffer then counts
            # against the budget.
            self._previous_mr = rmm.mr.get_current_device_resource()
            self._stats_mr = budget_resource(self.gpu_budget)
            rmm.mr.set_current_device_resource(self._stats_mr)
        import cudf

        self.tables = {n: cudf.read_parquet(parquet_files(p)) for n, p in paths.items()}
        device_synchronize()

    def run(self, q):
        fn = q.cudf or q.pandas
        out = fn(self.tables)
        device_synchronize()
        return out

    def chk(self, result, columns):
        sums = {}
        for c in columns:
            v = result[c].astype("float64").nans_to_nulls().sum()
            try:
                v = float(v)
            except (TypeError, ValueError):  # NA: every value was null
                v = 0.0
            sums[c] = 0.0 if math.isnan(v) else v
        return len(result), sums

    def setup(self):
        if not self.gpu_budget:
            return {}
        return {"gpu_budget": f"rmm LimitingResourceAdaptor(CudaAsyncMemoryResource(), "
                              f"{gb(self.gpu_budget)}) as the current device resource"}

    def close(self):
        self.tables = None
        previous = getattr(self, "_previous_mr", None)
        if previous is not None:
            import rmm

            # buffers still alive keep their own resource; new ones use the old one
            rmm.mr.set_current_device_resource(previous)
            self._previous_mr = None


class WorkbenchEngine(Engine):
    """The workbench: ``wb.collect`` over Frames, with the polars code of each question.

    Under a budget the engine's process runs with ``WORKBENCH_GPU_BUDGET`` set to it
    (the parent sets it for an isolated process; ``load`` sets it in-process before
    the session starts), so the session's memory policy limits device memory to the
    budget and ``collect`` streams inputs larger than its resident limit.
    """

    name = "workbench"
    label = "workbench"
    packages = ("workbench",)
    # One host copy of the table (pinned on discrete GPUs) plus results; larger than
    # the device is the engine's own business (it streams under the budget).
    host_factor = 1.5

    @property
    def device(self):  # where wb.collect runs: the GPU when there is one
        return "gpu" if gpu_count() > 0 and available("cudf_polars") else "cpu"

    def available(self):
        for mod in ("workbench.frame", "workbench.engine"):
            if not available(mod):
                return f"{mod} is not in this build of workbench"
        return None

    def load(self, paths):
        import workbench as wb

        # what this process was started with: an isolated engine's parent sets it
        self._inherited = env_of(ENV_BUDGET)
        if self.gpu_budget:
            self._env_before = os.environ.get(ENV_BUDGET)
            os.environ[ENV_BUDGET] = str(int(self.gpu_budget))
            # init() reads the variable; a session started earlier in this process
            # without it is replaced (a GPU policy already applied cannot be).
            wb.init()
        self.tables = {n: wb.Frame.from_parquet(Path(p)) for n, p in paths.items()}
        self._lazy = {n: f.lazy() for n, f in self.tables.items()}

    def run(self, q):
        import workbench as wb

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # The GPU's answer stays on the device, as cudf's does; chk copies it over.
            out = wb.collect((q.polars_gpu or q.polars)(self._lazy), as_frame=True)
        self._notes = warning_notes(caught)
        return out

    def chk(self, result, columns):
        return polars_chk(result.to_polars(), columns)

    def notes(self):
        return getattr(self, "_notes", [])

    def device_stats(self):
        try:
            from workbench.memory import device_memory_stats

            return device_memory_stats()
        except Exception:
            return None

    def setup(self):
        # "environment": what the session read; "inherited_environment": what the
        # process had before load set anything (the parent's doing, when isolated)
        out = {"environment": env_of(ENV_BUDGET),
               "inherited_environment": getattr(self, "_inherited", None)}
        try:
            from workbench.session import current_session

            s = current_session()
            out["session"] = {"backend": s.backend, "policy": s.policy.summary(),
                              "budget": s.policy.budget}
        except Exception as e:  # the record is informative only
            out["session"] = {"error": f"{type(e).__name__}: {e}"}
        return out

    def close(self):
        self.tables = self._lazy = None
        if hasattr(self, "_env_before"):
            # in-process runs: later engines and sessions must not inherit the budget
            if self._env_before is None:
                os.environ.pop(ENV_BUDGET, None)
            else:
                os.environ[ENV_BUDGET] = self._env_before
            del self._env_before

"""Engine adapters: how each engine loads the tables, runs a question and reads "chk".

An engine is a small object with ``load`` (tables from Parquet), ``run`` (one question,
returning its result fully computed), ``chk`` (row count and column sums of a result)
and ``close``. ``available()`` says why an engine cannot run here without importing a
GPU library. Engines live in a registry; :func:`register` adds one (tests use it to
plant a wrong answer).

What each engine is timed on (``run``): the query and the materialisation of its result,
as db-benchmark does. pandas and polars return finished host frames. DuckDB stores the
answer in a temporary table (``CREATE TEMP TABLE ans AS ...``), as db-benchmark's DuckDB
script does. cudf's result stays on the device; ``run`` synchronises the device before
the clock stops. The polars GPU engine returns a host polars DataFrame.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from workbench.bench.questions import Question


def parquet_files(path: str | Path) -> list[str]:
    """The Parquet files of ``path`` (a file, or a directory of them), sorted."""
    p = Path(path)
    if p.is_file():
        return [str(p)]
    files = sorted(str(f) for f in p.rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files under {p}")
    return files


def version_of(*dists: str) -> str | None:
    for d in dists:
        try:
            return metadata.version(d)
        except metadata.PackageNotFoundError:
            continue
    return None


def gpu_count() -> int:
    """How many NVIDIA GPUs this machine has, asked without importing a GPU library."""
    try:
        from workbench.hardware import detect

        hw = detect()
        if not getattr(hw, "has_usable_gpu", True):
            return 0
        return len(hw.gpus)
    except Exception:
        pass
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return 0


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

    def available(self) -> str | None:
        """``None`` when the engine can run here, else the reason it cannot."""
        return None

    def versions(self) -> dict[str, str | None]:
        return {p: version_of(p) for p in self.packages}

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

    def device_stats(self) -> dict | None:
        """The engine's own device-memory counters, where it keeps any."""
        return None

    def close(self) -> None:
        """Free the tables (the next engine needs the memory)."""
        self.tables = None


# --- CPU engines ---------------------------------------------------------------------


class PolarsEngine(Engine):
    name = "polars"
    label = "polars CPU"
    packages = ("polars",)
    host_factor = 2.0

    def available(self):
        return None if importlib.util.find_spec("polars") else "polars is not installed"

    def load(self, paths):
        import polars as pl

        # In memory and contiguous, like db-benchmark's polars script.
        self.tables = {n: pl.read_parquet(parquet_files(p)).rechunk() for n, p in paths.items()}
        self._lazy = {n: df.lazy() for n, df in self.tables.items()}

    def run(self, q):
        return q.polars(self._lazy).collect()

    def chk(self, result, columns):
        return polars_chk(result, columns)

    def close(self):
        self.tables = self._lazy = None


def polars_chk(df, columns) -> tuple[int, dict[str, float]]:
    import polars as pl

    sums = {}
    for c in columns:
        s = df.get_column(c)
        if s.dtype.is_float():
            s = s.fill_nan(None)
        v = s.cast(pl.Float64).sum()
        sums[c] = float(v) if v is not None else 0.0
    return df.height, sums


class PandasEngine(Engine):
    name = "pandas"
    label = "pandas"
    packages = ("pandas", "pyarrow")
    # Strings and groupby copies: db-benchmark's pandas needs several times the table.
    host_factor = 3.0

    def available(self):
        return None if importlib.util.find_spec("pandas") else "pandas is not installed"

    def load(self, paths):
        import pandas as pd

        self.tables = {n: pd.read_parquet(parquet_files(p)) for n, p in paths.items()}

    def run(self, q):
        return q.pandas(self.tables)

    def chk(self, result, columns):
        sums = {}
        for c in columns:
            s = result[c].astype("float64")
            sums[c] = float(s.sum(skipna=True))
        return len(result), sums


class DuckDBEngine(Engine):
    name = "duckdb"
    label = "DuckDB"
    packages = ("duckdb",)
    host_factor = 2.0

    def available(self):
        return None if importlib.util.find_spec("duckdb") else "duckdb is not installed"

    def load(self, paths):
        import duckdb

        self.con = duckdb.connect(":memory:")
        self.con.execute(f"SET threads = {os.cpu_count() or 1}")
        self.con.execute("SET enable_progress_bar = false")
        for name, p in paths.items():
            files = ", ".join("'" + f.replace("'", "''") + "'" for f in parquet_files(p))
            self.con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet([{files}])")

    def run(self, q):
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE ans AS {q.sql}")
        return "ans"

    def chk(self, result, columns):
        # NaN (r² of a constant group) is skipped like a null, as in the other engines.
        parts = ["count(*)"] + [
            f"sum(CASE WHEN isnan({c}::DOUBLE) THEN NULL ELSE {c}::DOUBLE END)" for c in columns
        ]
        row = self.con.execute(f"SELECT {', '.join(parts)} FROM {result}").fetchone()
        return int(row[0]), {c: float(v or 0.0) for c, v in zip(columns, row[1:])}

    def close(self):
        con = getattr(self, "con", None)
        if con is not None:
            con.close()
        self.con = None


# --- GPU engines ---------------------------------------------------------------------


def _gpu_reason(module: str, package: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install 'workbench[gpu]' for {package})"
    if gpu_count() == 0:
        return "no NVIDIA GPU found"
    return None


def _notes(caught) -> list[str]:
    """The warnings worth keeping (a fallback to the CPU, say), one line each."""
    keep = {" ".join(str(w.message).split())[:600] for w in caught
            if not issubclass(w.category, (DeprecationWarning, FutureWarning))}
    return sorted(k for k in keep if k)


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


class PolarsGPUEngine(PolarsEngine):
    """The polars GPU engine as users call it: ``collect(engine="gpu")``, default options.

    polars falls back to the CPU, with a warning, for a plan the GPU engine cannot run;
    the warning is kept as a note so the report can show that the time is a CPU time.
    """

    name = "polars-gpu"
    label = "polars GPU engine"
    device = "gpu"
    packages = ("polars", "cudf-polars-cu13", "cudf-polars-cu12", "cudf-polars")

    def available(self):
        return _gpu_reason("cudf_polars", "cudf-polars")

    def versions(self):
        return {
            "polars": version_of("polars"),
            "cudf-polars": version_of("cudf-polars-cu13", "cudf-polars-cu12", "cudf-polars"),
        }

    def run(self, q):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = q.polars(self._lazy).collect(engine="gpu")
        self._notes = _notes(caught)
        return out

    def notes(self):
        return getattr(self, "_notes", [])


class CudfEngine(Engine):
    """Hand-written cudf: the pandas code of each question on ``cudf.DataFrame``."""

    name = "cudf"
    label = "cudf"
    device = "gpu"
    packages = ("cudf-cu13", "cudf-cu12", "cudf")
    host_factor = 1.0
    device_factor = 2.5

    def available(self):
        return _gpu_reason("cudf", "cudf")

    def versions(self):
        return {"cudf": version_of(*self.packages), "rmm": version_of("rmm-cu13", "rmm-cu12", "rmm")}

    def load(self, paths):
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


class WorkbenchEngine(Engine):
    """The workbench: ``wb.collect`` over Frames, with the polars code of each question."""

    name = "workbench"
    label = "workbench"
    packages = ("workbench",)
    # One host copy of the table (pinned on discrete GPUs) plus results; larger than
    # the device is the engine's own business (it streams under the budget).
    host_factor = 1.5

    @property
    def device(self):  # where wb.collect runs: the GPU when there is one
        return "gpu" if gpu_count() > 0 and _has_cudf_polars() else "cpu"

    def versions(self):
        import workbench

        return {"workbench": version_of("workbench") or workbench.__version__}

    def available(self):
        for mod in ("workbench.frame", "workbench.engine"):
            if importlib.util.find_spec(mod) is None:
                return f"{mod} is not in this build of workbench"
        return None

    def load(self, paths):
        import workbench as wb

        self.tables = {n: wb.Frame.from_parquet(Path(p)) for n, p in paths.items()}
        self._lazy = {n: f.lazy() for n, f in self.tables.items()}

    def run(self, q):
        import workbench as wb

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = wb.collect(q.polars(self._lazy))
        self._notes = _notes(caught)
        return out

    def chk(self, result, columns):
        return polars_chk(result, columns)

    def notes(self):
        return getattr(self, "_notes", [])

    def device_stats(self):
        try:
            from workbench.memory import device_memory_stats

            return device_memory_stats()
        except Exception:
            return None

    def close(self):
        self.tables = self._lazy = None


def _has_cudf_polars() -> bool:
    return importlib.util.find_spec("cudf_polars") is not None


# --- registry ------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[[], Engine]] = {}
#: the engines that come with workbench, in the order they run
BUILTIN = ("polars", "duckdb", "pandas", "polars-gpu", "cudf", "workbench")
#: the engine whose answers are the reference for "chk"
REFERENCE = "polars"


def register(name: str, factory: Callable[[], Engine]) -> None:
    """Add (or replace) the engine ``name``; ``factory()`` returns a fresh adapter."""
    _REGISTRY[name] = factory


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def engine_names() -> list[str]:
    """Every registered engine, built-in ones first in their run order."""
    return [n for n in BUILTIN if n in _REGISTRY] + [n for n in _REGISTRY if n not in BUILTIN]


def get_engine(name: str) -> Engine:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown engine {name!r}; valid: {', '.join(engine_names())}"
        ) from None
    return factory()


for _cls in (PolarsEngine, DuckDBEngine, PandasEngine, PolarsGPUEngine, CudfEngine,
             WorkbenchEngine):
    register(_cls.name, _cls)

"""db-benchmark groupby and join questions across engines, with answer checks.

>>> from workbench.bench import run_suite, write_all       # doctest: +SKIP
>>> res = run_suite("groupby", 10_000, engines=["polars", "duckdb"])  # doctest: +SKIP
>>> write_all([res], "bench-results")                      # doctest: +SKIP

The command line is ``workbench bench`` (see ``workbench bench --help``). Engines:
``polars`` (CPU), ``polars-streaming`` (CPU, ``collect(engine="streaming")`` over
``scan_parquet``), ``duckdb``, ``pandas``, ``polars-gpu`` (``collect(engine="gpu")``),
``cudf`` (hand-written) and ``workbench`` (``workbench.collect`` over Frames).
``run_suite(..., gpu_budget=2_000_000_000)`` (``--gpu-budget 2GB``) runs the GPU
engines within a device-memory budget.
"""

from workbench.bench.engines import Engine, engine_names, get_engine, register, unregister
from workbench.bench.questions import Question, questions
from workbench.bench.report import (ENGINE_COLORS, engine_label, markdown, markdown_all, plot,
                                    write_all, write_json)
from workbench.bench.runner import chk_matches, make_data, run_suite

__all__ = [
    "ENGINE_COLORS", "Engine", "engine_label", "Question", "chk_matches", "engine_names", "get_engine", "make_data",
    "markdown", "markdown_all", "plot", "questions", "register", "run_suite", "unregister",
    "write_all", "write_json",
]

"""The query engine: :func:`collect` runs polars plans on the GPU or the CPU.

:mod:`.collect` holds the strategy (CPU, GPU in memory, GPU streaming, CPU fallback);
:mod:`.cudf_polars` is the only code that touches the polars GPU engine's internals.
"""

from workbench.engine.collect import ENGINES, collect

__all__ = ["collect", "ENGINES"]

"""The one module that touches cudf-polars' internals.

cudf-polars (the polars GPU engine) is used three ways beyond ``lf.collect(engine=...)``:

* :func:`evaluate_on_device` runs a plan with the in-memory executor and keeps the
  result on the device (``collect`` would copy it to a polars DataFrame);
* :func:`feed` gives :class:`~workbench.frame.scan.GPUFeed` the constructor of the
  engine's own DataFrame, so Frame scans hand it device columns directly;
* :func:`device_table` describes a result as a :class:`~workbench.frame.DeviceTable`
  (pylibcudf columns, names, polars schema), which is all a Frame needs to hold it.

When cudf-polars changes its containers or IR entry points, this file changes alone.
"""

from __future__ import annotations

import polars as pl

from workbench.frame.scan import GPUFeed
from workbench.frame.table import DeviceTable


def _dataframe(columns, names: list[str], schema: pl.Schema, rows: int):
    """A cudf-polars DataFrame over pylibcudf ``columns`` (no copy)."""
    from cudf_polars.containers import Column, DataFrame, DataType
    from cudf_polars.utils.cuda_stream import get_cuda_stream

    named = [Column(col, DataType(schema[n]), name=n) for col, n in zip(columns, names)]
    return DataFrame(named, stream=get_cuda_stream(), num_rows=rows)


def feed(executor: str, resident: bool) -> GPUFeed:
    """What Frame scans give the GPU engine while :func:`workbench.collect` runs it."""
    return GPUFeed(executor=executor, resident=resident, table=_dataframe)


def evaluate_on_device(lf: pl.LazyFrame, engine) -> DeviceTable:
    """Run ``lf`` with cudf-polars' in-memory executor; the result stays on the device.

    This is what ``lf.collect(engine=engine)`` does, less the final copy to a polars
    DataFrame: the plan is translated to cudf-polars' IR and evaluated under the
    engine's device and memory resource. Unsupported operations raise before any
    work is done.
    """
    from cudf_polars.callback import set_device, set_memory_resource
    from cudf_polars.dsl.ir import IRExecutionContext
    from cudf_polars.dsl.translate import Translator

    translator = Translator(lf._ldf.visit(), engine)
    ir = translator.translate_ir()
    error = translator.unsupported_operations_error()
    if error is not None:
        raise error
    options = translator.config_options
    with set_device(options.device), set_memory_resource(
            engine.memory_resource, options.memory_resource_config, options.executor):
        result = ir.evaluate(cache={}, timer=None, context=IRExecutionContext())
    return device_table(result)


def device_table(result) -> DeviceTable:
    """A cudf-polars DataFrame as a :class:`DeviceTable`, synchronized for any stream."""
    result.stream.synchronize()  # the frame's users may read it on any stream
    names = list(result.column_names)
    schema = pl.Schema({c.name: c.dtype.polars_type for c in result.columns})
    return DeviceTable(columns=[c.obj for c in result.columns], names=names, schema=schema,
                       rows=result.num_rows, to_polars=result.to_polars, owner=result)

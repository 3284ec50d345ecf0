"""``workbench.collect``: run a polars LazyFrame on the GPU when there is one, else the CPU.

How a query over Frames runs on the GPU
---------------------------------------
``Frame.lazy()`` is a polars IO-source scan over the frame. When the polars GPU
engine (cudf-polars) executes the plan inside :func:`collect`, the scan hands it the
frame's *device-resident* columns (or, on unified memory, views of the host buffers),
so the host->device copy is paid once per column and later queries reuse it. When
the columns a query needs do not fit the resident limit (half the device memory or
budget), :func:`collect` runs the query again with cudf-polars' streaming executor,
the scan then handing it chunks of ``budget / 16`` bytes, each copied from the
frame's pinned host buffers when the executor asks for it, so data larger than the
GPU still runs. A query the in-memory executor cannot run (some operations
only the streaming executor supports) is retried on the streaming executor over the
same resident columns. Anything the GPU cannot do runs on the CPU with a warning
(``raise_on_fail=True`` makes that an error), as polars does for ``engine="gpu"``.

Where results go
----------------
The in-memory executor's result is a table on the device. By default it is copied
to the host as a polars DataFrame, as ``collect(engine="gpu")`` does. With
``as_frame=True`` it stays on the device as a :class:`~workbench.Frame`: a query over
it runs without a host->device copy, ``to_cudf``/``to_cupy`` see it in place, and the
host copy is made only when a CPU view asks for it.
"""

from __future__ import annotations

import threading

import polars as pl

from workbench.errors import is_out_of_memory
from workbench.residency import DoesNotFit
from workbench.session import current_session

ENGINES = ("auto", "cpu", "gpu", "streaming")

# (executor, resident) of the GPU engine running inside collect(), or None: how Frame
# scans feed it. A lock makes the GPU collects of a process run one at a time.
_gpu_mode: tuple[str, bool] | None = None
_gpu_lock = threading.Lock()


def collect(lf: pl.LazyFrame, engine: str = "auto", *, raise_on_fail: bool | None = None,
            as_frame: bool = False):
    """Run a polars query, on the GPU when the session has one.

    Parameters
    ----------
    lf : polars.LazyFrame
        The query, e.g. ``frame.lazy().group_by("k").agg(pl.col("v").sum())``.
        Scans of files (``pl.scan_parquet``) and in-memory polars frames work too;
        Frames additionally stay resident on the GPU between queries.
    engine : {"auto", "cpu", "gpu", "streaming"}
        ``"auto"``: the GPU when the session has one, else polars on the CPU.
        ``"gpu"``: the GPU; without one, the CPU with a warning (or an error when
        ``raise_on_fail``). ``"cpu"``: polars' in-memory engine. ``"streaming"``:
        polars' CPU streaming engine, for data larger than host memory.
    raise_on_fail : bool, optional
        Raise instead of falling back to the CPU when the query cannot run on the
        GPU. Defaults to the session's ``strict``.
    as_frame : bool
        Return a :class:`workbench.Frame` instead of a polars DataFrame. A result
        computed on the GPU then stays there until a CPU view needs it.

    Returns
    -------
    polars.DataFrame, or workbench.Frame with ``as_frame=True``
    """
    if not isinstance(lf, pl.LazyFrame):
        raise TypeError(f"collect takes a polars LazyFrame, got {type(lf).__name__}; "
                        "use frame.lazy() or df.lazy() to make one")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    session = current_session()
    strict = session.strict if raise_on_fail is None else raise_on_fail
    result = _collect(lf, engine, session, strict)
    if not as_frame:
        return result if isinstance(result, pl.DataFrame) else _to_polars(result, session)
    from workbench.frame import Frame

    return Frame.from_polars(result) if isinstance(result, pl.DataFrame) else Frame._from_device(result)


def _collect(lf, engine, session, strict):
    """The result: a polars DataFrame, or a cudf-polars DataFrame left on the device."""
    if engine == "cpu":
        return lf.collect()
    if engine == "streaming":
        return lf.collect(engine="streaming")
    if not session.gpu:
        if engine == "gpu":
            session.fallback("collect", session._why_cpu(), strict=strict)
        return lf.collect()
    session.ensure_gpu()
    with _gpu_lock:
        # 1. the in-memory executor over resident columns: the fast path;
        # 2. the streaming executor, still over resident columns, for operations only
        #    it supports; over host chunks when the inputs do not fit the GPU;
        # 3. polars on the CPU, with a warning (or an error with raise_on_fail).
        try:
            return _run_gpu(lf, session, "in-memory", resident=True)
        except Exception as err:  # noqa: BLE001 - every GPU failure takes the same road
            first = err
        if _does_not_fit(first):
            fits, why = False, "inputs larger than the resident limit; using the streaming executor"
        elif is_out_of_memory(first):
            # The resident columns of earlier queries may hold the room this one needs.
            session.residency.clear()
            fits, why = False, ("out of device memory; resident columns dropped, using the "
                                "streaming executor over host chunks")
        else:
            fits, why = True, (f"the in-memory GPU executor cannot run this query ({_reason(first)}); "
                               "trying the streaming executor")
        session.note("collect: " + why)
        try:
            return _run_gpu(lf, session, "streaming", resident=fits)
        except Exception as err:  # noqa: BLE001
            session.fallback("collect", _reason(err), strict=strict)
            return lf.collect()


def _run_gpu(lf: pl.LazyFrame, session, executor: str, *, resident: bool):
    global _gpu_mode
    engine = session.policy.polars_engine(executor=executor, raise_on_fail=True)
    _gpu_mode = (executor, resident)
    try:
        if executor == "in-memory":
            return _evaluate_on_device(lf, engine)
        result = lf.collect(engine=engine)
    finally:
        _gpu_mode = None
    # The streaming executor copies its result to the host inside the query: its
    # bytes are recorded, its time is part of the query's and is not known apart.
    session.transfers.record("collect result (timed within the query)", result.estimated_size(),
                             "device-to-host", "pageable", 0.0)
    return result


def _evaluate_on_device(lf: pl.LazyFrame, engine):
    """Run ``lf`` with cudf-polars' in-memory executor; the result stays on the device.

    This is what ``lf.collect(engine=engine)`` does, less the final copy to a polars
    DataFrame: the plan is translated to cudf-polars' IR and evaluated under the
    engine's device and memory resource.
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
        return ir.evaluate(cache={}, timer=None, context=IRExecutionContext())


def _to_polars(result, session) -> pl.DataFrame:
    """A device result as a polars DataFrame, as ``collect(engine="gpu")`` returns it."""
    import time

    start = time.perf_counter()
    df = result.to_polars()
    session.transfers.record("collect result", df.estimated_size(), "device-to-host", "pageable",
                             time.perf_counter() - start)
    return df


def _does_not_fit(err: BaseException) -> bool:
    while err is not None:
        if isinstance(err, DoesNotFit) or DoesNotFit.MARKER in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


def _reason(err: BaseException) -> str:
    """One line saying why: the first inner error of a group (the streaming executor
    raises a TaskGroup's group, whose own message says nothing)."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def scan_source(frame):
    """The IO-source function behind ``Frame.lazy()``.

    polars' CPU engine gets the frame's zero-copy polars view (projected, filtered);
    the GPU engine inside :func:`collect` gets device-resident columns (in-memory
    executor) or, from the streaming executor, chunks of the streaming partition size
    copied from the frame's (pinned) host buffers one at a time; the GPU engine called
    directly by polars gets the host view and copies it itself.
    """

    def source(with_columns, predicate, n_rows, batch_size):
        names = list(with_columns) if with_columns is not None else frame.columns
        mode = _gpu_mode
        # While collect() holds a GPU mode only cudf-polars calls this: it asks for
        # raise_on_fail, so polars' CPU engine never runs the plan meanwhile.
        if mode is not None and mode[1]:
            try:
                return iter([_device_frame(frame, names)])
            except DoesNotFit:
                if mode[0] != "streaming":
                    raise
        streaming = mode is not None and mode[0] == "streaming"
        if streaming and predicate is None and n_rows is None and _copies_in_place(frame, names):
            return _DeviceChunks(frame, names)
        df = frame.to_polars().select(names)
        if predicate is not None:
            df = df.filter(predicate)
        if n_rows is not None:
            df = df.head(n_rows)
        if streaming:
            step = _chunk_rows(frame, df.estimated_size() // max(1, df.height))
            return (df.slice(start, step) for start in range(0, max(df.height, 1), step))
        return iter([df])

    return source


def _device_frame(frame, names):
    """A cudf-polars DataFrame over the frame's resident (or unified) columns."""
    from cudf_polars.containers import DataFrame
    from cudf_polars.utils.cuda_stream import get_cuda_stream

    if any(isinstance(frame.schema[n], (pl.Categorical, pl.Enum)) for n in names):
        # cudf-polars builds categoricals itself: let it copy this scan.
        return frame.to_polars().select(names)
    return DataFrame(_named(frame, names, frame._device_columns(names)),
                     stream=get_cuda_stream(), num_rows=len(frame))


def _named(frame, names, columns):
    from cudf_polars.containers import Column, DataType

    schema = frame.schema
    return [Column(col, DataType(schema[n]), name=n) for col, n in zip(columns, names)]


def _chunk_rows(frame, row_bytes: int) -> int:
    """Rows per streaming chunk: the executor's partition size (a sixteenth of the
    device memory or budget), a multiple of 512 so slices keep null masks aligned."""
    partition = max(1, frame._session.policy.device_memory // 16)
    return max(512, partition // max(1, row_bytes) // 512 * 512)


def _copies_in_place(frame, names) -> bool:
    """Whether the frame's columns ``names`` can go to the device buffer by buffer."""
    from workbench import _device

    if frame._host is None:
        return False  # a GPU result: its columns are on the device already
    table = frame._table
    return all(_device.plc_type(table.schema.field(n).type) is not None
               and not isinstance(frame.schema[n], (pl.Categorical, pl.Enum)) for n in names)


class _DeviceChunks:
    """The frame's rows as device chunks for the streaming executor, each copied from
    the host buffers (pinned where the frame is) only when the executor asks for it.

    Sized, so the executor pulls one chunk at a time instead of draining a
    generator to count it.
    """

    def __init__(self, frame, names):
        self.frame, self.names = frame, names
        self.arrays = [frame._table.column(n).chunk(0) for n in names]
        row_bytes = sum(a.nbytes for a in self.arrays) // max(1, len(frame))
        self.step = _chunk_rows(frame, row_bytes)
        self.starts = iter(range(0, max(len(frame), 1), self.step))
        self.count = max(1, -(-len(frame) // self.step))

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return self

    def __next__(self):
        from cudf_polars.containers import DataFrame
        from cudf_polars.utils.cuda_stream import get_cuda_stream

        from workbench import _device

        start = next(self.starts)
        log, unified = self.frame._session.transfers, self.frame._unified
        columns = [_device.to_column(a.slice(start, self.step), n, zero_copy=unified, log=log)
                   for a, n in zip(self.arrays, self.names)]
        rows = min(self.step, len(self.frame) - start) if len(self.frame) else 0
        return DataFrame(_named(self.frame, self.names, columns), stream=get_cuda_stream(),
                         num_rows=rows)

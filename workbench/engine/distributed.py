"""A polars query on a Dask cluster: cudf-polars' distributed engine on GPU workers,
dask.dataframe on CPU workers, polars streaming here when neither can run it.

GPU workers
    cudf-polars' ``DaskEngine`` (RAPIDS 26.10, over rapidsmpf): it bootstraps a UCXX
    communicator across the client's workers and runs the streaming executor on all of
    them; each worker reads its share of the ``pl.scan_parquet`` sources itself, and
    the result comes back to this process as a polars DataFrame (or is written with
    ``sink_parquet``). The engine allocates through the worker's workbench policy
    (:func:`worker_memory_resource`: the budget's limit, the statistics adaptor), spills
    above 80 % of the budget and uses pinned host buffers where the policy pins.
CPU workers
    dask.dataframe, for the plans it expresses with the same answers: a Parquet scan,
    filters of comparisons and ``&``/``|``, column selections, and a group-by with
    sum, mean, min, max, count and len, optionally sorted at the end. Columns are read
    with Arrow dtypes, so nulls follow polars' rules (a null comparison drops the row,
    ``&``/``|`` are Kleene). Anything else is refused, never approximated: the query
    then runs with polars' streaming engine in this process, with a
    :class:`ClusterFallbackWarning` saying what could not be translated.

A worker that dies mid-query is replaced by its nanny: Dask recomputes what it held,
and a distributed engine that cannot recover in flight is run again once the workers
are back (:func:`retry_lost_workers`), so the answer is the same.
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from pathlib import Path

import polars as pl

from workbench.errors import ClusterFallbackWarning, behind  # the warning is re-exported here
from workbench.memory import consumers
from workbench.session import current_session

#: how long to wait for replacement workers after one was lost
RECOVERY_TIMEOUT = 120.0


class Unsupported(Exception):
    """The plan has a part that dask.dataframe would not answer exactly as polars does."""


def collect_on_cluster(lf: pl.LazyFrame, client, *, as_frame: bool = False,
                       sink: str | os.PathLike | None = None, raise_on_fail: bool | None = None):
    """Run ``lf`` on the workers of ``client``; the result here.

    Parameters
    ----------
    lf : polars.LazyFrame
        Best over ``pl.scan_parquet`` sources the workers can read (the same paths on
        every worker: a shared file system, or one machine).
    client : distributed.Client
        From :func:`workbench.cluster` (or any client of a running scheduler).
    as_frame : bool
        Return a :class:`workbench.Frame` instead of a polars DataFrame.
    sink : path, optional
        Write the result as Parquet there (through a temporary name) and return the path.
    raise_on_fail : bool, optional
        Raise instead of running on CPU workers when GPU workers cannot run the query.

    Returns
    -------
    polars.DataFrame, workbench.Frame (``as_frame``) or Path (``sink``)
    """
    if not isinstance(lf, pl.LazyFrame):
        raise TypeError(f"collect_on_cluster takes a polars LazyFrame, got {type(lf).__name__}; "
                        "use pl.scan_parquet(...) or frame.lazy() to make one")
    _check_client(client)
    session = current_session()
    strict = session.strict if raise_on_fail is None else raise_on_fail
    target = None if sink is None else Path(sink).expanduser().absolute()
    if target is not None and target.exists():
        raise FileExistsError(f"{target} exists; collect_on_cluster does not overwrite: "
                              "remove it or pass another sink path")
    workers = describe_workers(client)
    result = None
    if workers and all(w["gpu"] for w in workers.values()):
        try:
            result = retry_lost_workers(client, lambda: _on_gpu_workers(lf, client, workers, target),
                                        what="collect on GPU workers")
        except Exception as err:  # noqa: BLE001 - the CPU route answers every plan
            session.fallback("collect on the cluster", _reason(err), strict=strict)
    if result is None:
        result = _on_cpu_workers(lf, client, target, session)
    if target is not None:
        return target
    return _as_frame(result) if as_frame else result


def describe_workers(client) -> dict:
    """``{address: {"gpu", "policy", "dask_cuda"}}`` as each worker sees itself."""
    return client.run(_describe_worker)


def _describe_worker() -> dict:
    import sys

    session = current_session()
    return {"gpu": session.gpu, "policy": session.policy.to_dict(),
            "dask_cuda": "dask_cuda" in sys.modules}


def _check_client(client) -> None:
    from distributed import Client

    if not isinstance(client, Client):
        raise TypeError(f"client must be a distributed.Client (from wb.cluster()), got "
                        f"{type(client).__name__}")
    if client.status != "running":
        raise ValueError(f"the Dask client is {client.status}; start a new one with wb.cluster()")


# ------------------------------------------------------------------ GPU workers

def worker_memory_resource():
    """The RMM resource of the worker's workbench policy (applied by the cluster's
    worker plugin, or here with the worker's defaults); cudf-polars builds the engine's
    resource on it, so the budget holds for distributed queries too."""
    from workbench import memory

    current_session().ensure_gpu()
    return memory.current_resource()


def streaming_options(policy: dict, *, dask_cuda: bool) -> dict:
    """``cudf_polars.engine.options.StreamingOptions`` fields for a worker policy."""
    from cudf_polars.utils.config import MemoryResourceConfig

    options = {
        "raise_on_fail": True,
        "memory_resource_config": MemoryResourceConfig(
            qualname=f"{__name__}.worker_memory_resource", options=None),
        "pinned_memory": policy.get("host_buffers") == "pinned",
    }
    budget = policy.get("budget")
    if budget:
        options["spill_device_limit"] = str(int(budget * 0.8))
        options["target_partition_size"] = max(budget // consumers.STREAM_SHARE, 1)
    if dask_cuda:
        # dask-cuda already pins each worker to its GPU and the CPUs near it.
        from cudf_polars.engine.hardware_binding import HardwareBindingPolicy

        options["hardware_binding"] = HardwareBindingPolicy(enabled=False)
    return options


def _on_gpu_workers(lf, client, workers: dict, target: Path | None):
    from cudf_polars.engine.dask import DaskEngine
    from cudf_polars.engine.options import StreamingOptions

    first = next(iter(workers.values()))
    options = StreamingOptions(**streaming_options(first["policy"], dask_cuda=first["dask_cuda"]))
    session = current_session()
    start = time.perf_counter()
    with DaskEngine.from_options(options, dask_client=client) as engine:
        if target is not None:
            _written(target, lambda tmp: lf.sink_parquet(tmp, engine=engine))
            result = target
        else:
            result = lf.collect(engine=engine)
    session.note(f"collect: {len(workers)} GPU workers (cudf-polars DaskEngine), "
                 f"{time.perf_counter() - start:.3f} s")
    return result


# ------------------------------------------------------------------ CPU workers

def _on_cpu_workers(lf, client, target: Path | None, session):
    try:
        ddf, order = to_dask(lf)
    except Unsupported as why:
        message = (f"collect on the cluster ran with polars streaming in this process instead of "
                   f"on the workers: {why}")
        session.note(message)
        warnings.warn(message, ClusterFallbackWarning, stacklevel=3)
        if target is not None:
            return _written(target, lambda tmp: lf.sink_parquet(tmp))
        return lf.collect(engine="streaming")
    start = time.perf_counter()
    pdf = retry_lost_workers(client, lambda: client.compute(ddf).result(),
                             what="collect on CPU workers")
    result = _to_polars(pdf, lf.collect_schema(), order)
    session.note(f"collect: dask.dataframe on {len(_workers(client))} CPU "
                 f"workers, {time.perf_counter() - start:.3f} s")
    if target is not None:
        return _written(target, result.write_parquet)
    return result


_OPS = {"Eq": "__eq__", "NotEq": "__ne__", "Lt": "__lt__", "LtEq": "__le__", "Gt": "__gt__",
        "GtEq": "__ge__", "And": "__and__", "Or": "__or__", "Plus": "__add__",
        "Minus": "__sub__", "Multiply": "__mul__", "TrueDivide": "__truediv__"}
_AGGS = {"sum": "sum", "mean": "mean", "min": "min", "max": "max", "count": "count"}


def to_dask(lf: pl.LazyFrame):
    """``(dask DataFrame, sort)`` for the plans dask.dataframe answers as polars does;
    ``sort`` is the root ``sort`` to apply to the (small) result here, or None.
    :class:`Unsupported` names the first part that is not one of them."""
    try:
        nt = lf._ldf.visit()  # the optimised plan, as cudf-polars reads it
        root = nt.view_current_node()
    except Exception as err:  # noqa: BLE001 - an unreadable plan is simply not translated
        raise Unsupported(f"the plan could not be read ({type(err).__name__})") from None
    order = None
    if type(root).__name__ == "Sort":
        if root.slice is not None:
            raise Unsupported("a sort with a slice (top-k) is not translated")
        maintain, nulls_last, descending = root.sort_options
        order = {"by": [_column_name(nt, e.node) for e in root.by_column],
                 "descending": list(descending), "nulls_last": list(nulls_last)}
        nt.set_node(root.input)
    return _node(nt), order


def _node(nt):
    node = nt.view_current_node()
    kind = type(node).__name__
    if kind == "Scan":
        return _scan(nt, node)
    if kind not in ("Filter", "Select", "SimpleProjection", "GroupBy"):
        raise Unsupported(f"the plan step {kind} is not translated to dask.dataframe "
                          "(scans, filters, selections and group-by aggregations are)")
    nt.set_node(node.input)
    ddf = _node(nt)
    if kind == "Filter":
        return ddf[_mask(_expr(nt, node.predicate.node, ddf))]
    if kind == "SimpleProjection":
        return ddf[list(nt.get_schema())]
    if kind == "Select":
        names = {e.output_name: _column_name(nt, e.node) for e in node.expr}
        return ddf[list(names.values())].rename(columns={v: k for k, v in names.items() if k != v})
    return _group_by(nt, node, ddf)


def _scan(nt, node):
    import dask.dataframe as dd

    options = node.file_options
    if node.scan_type[0] != "parquet":
        raise Unsupported(f"only Parquet scans are read by the workers, not {node.scan_type[0]}")
    if node.hive_parts is not None or options.row_index is not None or options.n_rows is not None \
            or options.include_file_paths is not None or getattr(options, "deletion_files", None):
        raise Unsupported("a Parquet scan with hive partitions, a row index, a row limit or "
                          "file paths is not translated")
    ddf = dd.read_parquet(list(node.paths), columns=options.with_columns, dtype_backend="pyarrow")
    if node.predicate is not None:
        ddf = ddf[_mask(_expr(nt, node.predicate.node, ddf))]
    return ddf


def _mask(series):
    # A null comparison drops the row in polars; Arrow booleans carry the null.
    return series.fillna(False)


def _column_name(nt, node: int) -> str:
    e = nt.view_expression(node)
    if type(e).__name__ != "Column":
        raise Unsupported(f"the expression {type(e).__name__} is not translated; only plain "
                          "columns are selected, sorted or grouped by")
    return e.name


def _expr(nt, node: int, ddf):
    e = nt.view_expression(node)
    kind = type(e).__name__
    if kind == "Column":
        return ddf[e.name]
    if kind == "Literal":
        if not isinstance(e.value, (bool, int, float, str)):
            raise Unsupported(f"the literal {e.value!r} ({e.dtype}) is not translated")
        return e.value
    if kind == "BinaryExpr":
        op = str(e.op).rsplit(".", 1)[-1]
        if op not in _OPS:
            raise Unsupported(f"the operator {op} is not translated")
        left, right = _expr(nt, e.left, ddf), _expr(nt, e.right, ddf)
        if isinstance(left, (bool, int, float, str)):
            raise Unsupported("a literal on the left of an operator is not translated")
        return getattr(left, _OPS[op])(right)
    raise Unsupported(f"the expression {kind} is not translated to dask.dataframe")


def _group_by(nt, node, ddf):
    options = node.options
    if node.maintain_order or options.slice is not None or options.dynamic is not None \
            or options.rolling is not None:
        raise Unsupported("an ordered, sliced, dynamic or rolling group-by is not translated")
    keys = [_column_name(nt, k.node) for k in node.keys]
    if [k.output_name for k in node.keys] != keys:
        raise Unsupported("renamed group-by keys are not translated")
    spec = {}
    for agg in node.aggs:
        e = nt.view_expression(agg.node)
        kind = type(e).__name__
        if kind == "Len":
            spec[agg.output_name] = (keys[0], "size")
        elif kind == "Agg" and e.name in _AGGS and len(e.arguments) == 1:
            spec[agg.output_name] = (_column_name(nt, e.arguments[0]), _AGGS[e.name])
        else:
            raise Unsupported(f"the aggregation {getattr(e, 'name', kind)} is not translated "
                              f"(translated: {', '.join(_AGGS)}, len)")
    if not spec:
        raise Unsupported("a group-by without aggregations is not translated")
    return ddf.groupby(keys, dropna=False).agg(**spec).reset_index()


def _to_polars(pdf, schema: pl.Schema, order: dict | None) -> pl.DataFrame:
    df = pl.from_pandas(pdf.reset_index(drop=True))
    if set(df.columns) != set(schema.names()):
        raise RuntimeError(f"the cluster's answer has columns {df.columns}, the query "
                           f"{schema.names()}")
    df = df.select(schema.names()).cast(dict(schema))
    if order is not None:
        df = df.sort(order["by"], descending=order["descending"], nulls_last=order["nulls_last"])
    return df


def _as_frame(result: pl.DataFrame):
    from workbench.frame import Frame

    return Frame.from_polars(result)


def _written(target: Path, write) -> Path:
    """``write(tmp)`` to a temporary name beside ``target``, then renamed into place."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    return target


# ------------------------------------------------------------------ lost workers

def retry_lost_workers(client, job, *, what: str, attempts: int = 3,
                       timeout: float = RECOVERY_TIMEOUT):
    """``job()``, run again when it failed because a worker was lost (and the nanny
    brought a replacement): Dask recomputes lost tasks by itself, collective jobs
    (XGBoost's, cudf-polars' communicator) fail as a whole and start over."""
    for attempt in range(1, attempts + 1):
        before = set(_workers(client))
        try:
            return job()
        except Exception as err:
            if attempt == attempts or not _lost_worker(client, before, err):
                raise
            current_session().note(f"{what}: a worker was lost ({_reason(err)}); attempt "
                                   f"{attempt + 1} of {attempts} once {len(before)} are back")
            client.wait_for_workers(len(before), timeout=timeout)
    raise AssertionError("unreachable")  # pragma: no cover


def _lost_worker(client, before: set, err: BaseException, wait: float = 5.0) -> bool:
    from distributed import KilledWorker
    from distributed.comm import CommClosedError

    if behind(err, (KilledWorker, CommClosedError)):
        return True
    # The survivors of a collective job may fail before the scheduler hears of the death.
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not before <= set(_workers(client)):
            return True
        time.sleep(0.1)
    return False


def _workers(client) -> dict:
    return client.scheduler_info(n_workers=-1)["workers"]


def _reason(err: BaseException) -> str:
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"

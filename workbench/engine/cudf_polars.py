"""The one module that touches cudf-polars' internals.

cudf-polars (the polars GPU engine) is used three ways beyond ``lf.collect(engine=...)``:

* :func:`evaluate_on_device` runs a plan with the in-memory executor and keeps the
  result on the device (``collect`` would copy it to a polars DataFrame);
  :func:`evaluate_node`, :func:`stream_node` (the streaming executor) and :func:`accepts`
  (:func:`refusal`) do it, or only translate, from a node of polars' plan (the parts of a
  plan the engine refuses in part);
* :func:`feed` gives :class:`~workbench.frame.scan.GPUFeed` the constructor of the
  engine's own DataFrame, so Frame scans hand it device columns directly;
* :func:`device_table` describes a result as a :class:`~workbench.frame.DeviceTable`
  (pylibcudf columns, names, polars schema), which is all a Frame needs to hold it;
* :func:`row_filters` finds the row-wise filters straight above a Frame's scan, so a
  key split applies them while it cuts the Frame's rows into partitions.

When cudf-polars changes its containers or IR entry points, this file changes alone.
"""

from __future__ import annotations

import contextlib

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
    return evaluate_node(lf._ldf.visit(), engine)


def accepts(nt, engine) -> bool:
    """Whether the engine accepts the plan below polars' traverser's current node
    (translation only: nothing runs)."""
    return refusal(nt, engine) is None


def refusal(nt, engine) -> BaseException | None:
    """Why the engine refuses the plan below the traverser's current node, or None
    when it accepts it (translation only: nothing runs)."""
    from cudf_polars.dsl.translate import Translator

    translator = Translator(nt, engine)
    translator.translate_ir()
    return translator.unsupported_operations_error()


def evaluate_node(nt, engine) -> DeviceTable:
    """:func:`evaluate_on_device` for the plan below the traverser's current node."""
    from cudf_polars.dsl.ir import IRExecutionContext

    ir, options = _translated(nt, engine)
    with _placed(engine, options):
        result = ir.evaluate(cache={}, timer=None, context=IRExecutionContext())
    return device_table(result)


def stream_node(nt, engine) -> pl.DataFrame:
    """The plan below the traverser's current node run by the streaming executor
    (``engine``'s), as ``collect`` would run a whole plan: a polars DataFrame."""
    from cudf_polars.streaming.parallel import evaluate_streaming

    ir, options = _translated(nt, engine)
    with _placed(engine, options):
        return evaluate_streaming(ir, options)


def _translated(nt, engine):
    """The engine's IR of the plan below the traverser's current node, and its options;
    raises what the engine refuses."""
    from cudf_polars.dsl.translate import Translator

    translator = Translator(nt, engine)
    ir = translator.translate_ir()
    error = translator.unsupported_operations_error()
    if error is not None:
        raise error
    return ir, translator.config_options


@contextlib.contextmanager
def _placed(engine, options):
    """The device and memory resource the engine's options ask for, while it runs (the
    device set first: the resource is obtained on it)."""
    from cudf_polars.callback import set_device, set_memory_resource

    with set_device(options.device), set_memory_resource(
            engine.memory_resource, options.memory_resource_config, options.executor):
        yield


def device_table(result) -> DeviceTable:
    """A cudf-polars DataFrame as a :class:`DeviceTable`, synchronized for any stream."""
    result.stream.synchronize()  # the frame's users may read it on any stream
    names = list(result.column_names)
    schema = pl.Schema({c.name: c.dtype.polars_type for c in result.columns})
    return DeviceTable(columns=[c.obj for c in result.columns], names=names, schema=schema,
                       rows=result.num_rows, to_polars=result.to_polars, owner=result)


# Expressions that compute each row from that row alone, by cudf-polars' node names
# (functions by their own names: polars' names, as workbench.engine.expressions lists).
_ROW_NODES = {"Col", "Literal", "BinOp", "Cast", "Ternary", "UnaryFunction", "BooleanFunction",
              "StringFunction", "TemporalFunction"}


def _row_wise(e) -> bool:
    from workbench.engine.expressions import NOT_ROW_WISE, ROW_WISE

    kind = type(e).__name__
    if kind not in _ROW_NODES:
        return False
    if kind == "UnaryFunction" and e.name not in ROW_WISE:
        return False
    if kind in ("BooleanFunction", "StringFunction", "TemporalFunction") and \
            str(e.name).rsplit(".", 1)[-1] in NOT_ROW_WISE:
        return False
    return all(_row_wise(c) for c in e.children)


def row_filters(lf: pl.LazyFrame, engine, why: list | None = None,
                limits: dict | None = None) -> dict:
    """For each Frame scanned once in ``lf``: ``keep(columns, names, feed)`` -> the
    columns of the rows that pass the filters straight above its scan (a row-wise
    predicate polars pushed into the scan, then the run of row-wise ``filter`` /
    ``with_columns`` steps above it, up to its last filter), by ``id(frame)``. The steps
    are cudf-polars' own, evaluated over a chunk's columns; the plan still applies them
    in every partition, to rows that all pass. ``why`` receives, per Frame without
    one, the reason. ``limits`` maps ``id(frame)`` to a row limit polars pushed into its
    scan (read from polars' plan: cudf-polars' scan options do not say it plainly); a
    Frame with one is left alone, as its first rows are not its first passing rows."""
    why = [] if why is None else why
    from cudf_polars.dsl.translate import Translator

    from workbench.engine.plan import _frame_of

    translator = Translator(lf._ldf.visit(), engine)
    root = translator.translate_ir()
    if translator.unsupported_operations_error() is not None:
        why.append("the plan has operations the GPU engine lacks")
        return {}
    parents: dict[int, list] = {}
    scans, seen, todo = [], set(), [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for child in node.children:
            parents.setdefault(id(child), []).append(node)
            todo.append(child)
        if type(node).__name__ == "PythonScan":
            scans.append(node)
    frames: dict[int, list] = {}
    for scan in scans:
        frame = _frame_of(scan)
        if frame is not None:
            frames.setdefault(id(frame), []).append((frame, scan))
    out = {}
    for key, found in frames.items():
        if len(found) != 1:  # scanned twice (a self-join): the branches filter differently
            why.append(f"a Frame of {len(found[0][0]):,} rows is scanned {len(found)} times")
            continue
        frame, scan = found[0]
        limit = (limits or {}).get(key)
        if limit is not None:
            why.append(f"Frame of {len(frame):,} rows: a row limit of {limit:,} in the scan")
            continue
        top, reason = _filter_chain(scan, parents)
        if top is not None:
            out[key] = _keeper(frame, top)
        else:
            why.append(f"Frame of {len(frame):,} rows: {reason}")
    if not frames:
        why.append(f"no Frame scan found among {len(scans)} Python scans")
    return out


def _filter_chain(scan, parents):
    """The highest filter of the row-wise run straight above ``scan`` (the scan itself
    when polars pushed a predicate into it), and why there is none."""
    top = None
    if scan.predicate is not None:
        if not _row_wise(scan.predicate.value):
            return None, f"a predicate in the scan that is not row-wise ({_kinds(scan.predicate.value)})"
        top = scan  # cudf-polars applies it to what the scan hands over
    own = set(scan.schema)
    # base: the chain so far with projections left out, so every column of the scan
    # still passes through it (the cut needs them all). polars puts projections between
    # the steps; a step above one is made again over base: a projection only picks
    # columns by name, so the step reads the same columns there.
    node = base = scan
    stop = "nothing"
    while len(parents.get(id(node), ())) == 1:
        parent = parents[id(node)][0]
        kind = type(parent).__name__
        if kind == "Filter" and _row_wise(parent.mask.value):
            base = top = parent if base is node else type(parent)(base.schema, parent.mask, base)
        elif kind == "HStack" and all(_row_wise(c.value) for c in parent.columns) \
                and not own & {c.name for c in parent.columns}:
            new = {c.name: parent.schema[c.name] for c in parent.columns}
            base = parent if base is node else \
                type(parent)({**base.schema, **new}, parent.columns, parent.should_broadcast, base)
        elif kind != "Projection":
            # anything else, or a with_columns replacing a column of the scan
            exprs = [parent.mask] if kind == "Filter" else list(parent.columns) if kind == "HStack" else []
            stop = kind + (f" of {', '.join(_kinds(e.value) for e in exprs)}" if exprs else "")
            break
        node = parent
    if top is None:
        return None, f"no row-wise filter straight above the scan (it stops at {stop})"
    return top, ""


def _kinds(e) -> str:
    """The node kinds of an expression, for a message."""
    return ", ".join(sorted({type(e).__name__} | {k for c in e.children for k in _kinds(c).split(", ")}))


def _keeper(frame, top):
    from cudf_polars.dsl.ir import IRExecutionContext

    from workbench.frame.scan import serving

    def keep(columns, names, feed):
        rows = columns[0].size() if columns else 0

        def table(wanted):
            return feed.table([columns[names.index(n)] for n in wanted], wanted, frame.schema, rows)

        with serving(frame, table):
            result = top.evaluate(cache={}, timer=None, context=IRExecutionContext())
        result.stream.synchronize()
        by_name = dict(zip(result.column_names, result.columns))
        return [by_name[n].obj for n in names], result.num_rows

    return keep

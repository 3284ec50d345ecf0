"""A plan the GPU engine refuses in part: what it can run, on the GPU; the rest, polars.

When the polars GPU engine refuses one step of a plan (a Python function, an
expression it lacks), the steps below it need not go to the CPU with it. Inside polars'
optimised plan (the ``post_opt_callback`` through which polars hands a plan to the GPU
engine) each largest subtree the engine accepts, doing more than reading its inputs, is
computed by ``run`` (on the GPU, in memory) and handed to polars as a DataFrame; polars
runs the rest of the plan on the CPU over those results. A subtree ``run`` gives up on
(out of memory, say) is left to polars. The root is never taken: the whole plan is
what the engine refused. :func:`on_gpu` is how :func:`workbench.collect` uses it, its
last resort before polars runs the whole plan.

>>> import polars as pl
>>> lf = (pl.LazyFrame({"k": [1, 2, 1], "v": [1, 2, 3]}).group_by("k").agg(pl.col("v").sum())
...       .map_batches(lambda df: df.sort("k")))
>>> ran = []
>>> def run(nt):  # stands in for the GPU: the group-by's answer, as polars gives it
...     ran.append(type(nt.view_current_node()).__name__)
...     return pl.DataFrame({"k": [1, 2], "v": [4, 2]})
>>> df, kinds = collect(lf, lambda nt: True, run)
>>> df.rows(), kinds
([(1, 4), (2, 2)], ['GroupBy'])
"""

from __future__ import annotations

import time
from typing import Callable

import polars as pl


def on_gpu(lf: pl.LazyFrame, session, failure: str, strict: bool | None) -> pl.DataFrame:
    """After the GPU engine refused ``lf`` (``failure`` says why): :func:`collect` with
    the engine's in-memory executor computing the parts it accepts (its streaming
    executor, over host chunks, those whose inputs do not fit), and a warning saying
    what ran where; polars all of it when nothing could run on the GPU, memory ran out
    or the files it reads are too large for polars in memory (it streams them), and
    with ``strict`` an error."""
    from workbench.engine import cpu, cudf_polars, recovery
    from workbench.errors import DoesNotFit, behind, is_out_of_memory
    from workbench.frame import residency
    from workbench.frame.scan import feeding

    if (session.strict if strict is None else strict) or is_out_of_memory(failure) \
            or cpu.too_large(lf, session):
        session.fallback("collect", failure, strict=strict)
        return cpu.collect(lf, session)
    engine = session.policy.polars_engine(executor="in-memory", raise_on_fail=True)
    accepts = acceptor(engine)
    streamed: list[bool] = []  # per part run, whether it streamed

    def run(nt) -> pl.DataFrame | None:
        start, node = time.perf_counter(), nt.get_node()
        try:
            with feeding(cudf_polars.feed("in-memory", True)):
                df = cudf_polars.evaluate_node(nt, engine).to_polars()
            streamed.append(False)
        except Exception as err:  # noqa: BLE001 - streamed if too large, else left to polars
            recovery.release_noted(err, session)
            if not is_out_of_memory(err):
                return None
            if not behind(err, DoesNotFit):
                residency.cache(session).clear()  # earlier queries' columns may hold the room
            nt.set_node(node)
            try:
                with feeding(cudf_polars.feed("streaming", False)):
                    df = cudf_polars.stream_node(nt, session.policy.polars_engine(
                        executor="streaming", raise_on_fail=True))
                streamed.append(True)
            except Exception as again:  # noqa: BLE001
                recovery.release_noted(again, session)
                return None
        session.transfers.record("part of a plan, for polars", df.estimated_size(),
                                 "device-to-host", "pageable", time.perf_counter() - start)
        return df

    try:
        answer, ran = collect(lf, accepts, run)
    except Exception as err:  # noqa: BLE001 - then polars runs all of it, as before
        recovery.release_noted(err, session)
        answer, ran = cpu.collect(lf, session), []
    if ran:
        parts = [kind + (" streamed" if s else "") for kind, s in zip(ran, streamed)]
        failure += "; the GPU ran the steps below it (" + ", ".join(parts) + ")"
    session.fallback("part of collect" if ran else "collect", failure, strict=False)
    return answer


def acceptor(engine) -> Callable[[object], bool]:
    """Whether the GPU ``engine`` accepts the subtree at a traverser's current node (a
    subtree it cannot even translate: no)."""
    from workbench.engine import cudf_polars

    def accepts(nt) -> bool:
        try:
            return cudf_polars.accepts(nt, engine)
        except Exception:  # noqa: BLE001
            return False

    return accepts


def parts(lf: pl.LazyFrame, accepts: Callable[[object], bool]) -> list[str]:
    """The kinds of the subtrees :func:`collect` would hand ``run``, nothing run (for
    ``wb.explain``)."""
    nt = lf._ldf.visit()
    kinds = []
    for node in _largest(nt, nt.get_node(), accepts, top=True):
        nt.set_node(node)
        kinds.append(type(nt.view_current_node()).__name__)
    return kinds


#: steps that only read or pick columns: their rows from the GPU would save nothing
_READS = {"PythonScan", "Scan", "DataFrameScan", "SimpleProjection", "Cache"}


def collect(lf: pl.LazyFrame, accepts: Callable[[object], bool],
            run: Callable[[object], pl.DataFrame | None]) -> tuple[pl.DataFrame, list[str]]:
    """``lf``'s answer by polars, each largest subtree below the root that ``accepts``
    (called with polars' plan traverser at the subtree's root) computed by ``run`` (the
    same; None: leave it to polars); and the kinds of the subtrees ``run`` computed."""
    ran: list[str] = []

    def callback(nt, *_):
        root = nt.get_node()
        for node in _largest(nt, root, accepts, top=True):
            nt.set_node(node)
            kind, schema = type(nt.view_current_node()).__name__, dict(nt.get_schema())
            df = run(nt)
            nt.set_node(node)
            if df is None:
                continue
            df = df.cast({n: t for n, t in schema.items() if df.schema[n] != t})
            nt.set_udf(lambda *_, df=df: df)
            ran.append(kind)
        nt.set_node(root)

    return lf.collect(post_opt_callback=callback), ran


def _largest(nt, node: int, accepts, top: bool = False) -> list[int]:
    """The roots of the largest subtrees below ``node`` (itself unless ``top``) that
    ``accepts`` and that do more than read."""
    nt.set_node(node)
    try:
        kind = type(nt.view_current_node()).__name__
    except NotImplementedError:  # a node polars cannot show Python (an opaque function)
        kind = None
    if not top and kind is not None and kind not in _READS:
        taken = accepts(nt)
        nt.set_node(node)
        if taken:
            return [node]
    found = []
    for child in nt.get_inputs():
        found.extend(_largest(nt, child, accepts))
        nt.set_node(node)
    return found

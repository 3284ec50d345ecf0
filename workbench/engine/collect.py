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

import dataclasses
import functools
import time

import polars as pl
import pyarrow as pa

from workbench.engine import cpu, natural, partial, recovery
from workbench.engine import plan as plans
from workbench.engine import strategy
from workbench.engine.split import gathers_too_much, note_cut, run_split
from workbench.errors import BudgetTooSmall, DoesNotFit, behind, is_out_of_memory, reason
from workbench.frame import Frame, residency
from workbench.frame.cut import ManyKept
from workbench.frame.scan import feeding
from workbench.frame.table import DeviceTable, as_polars
from workbench.session import current_session

ENGINES = ("auto", "cpu", "gpu", "streaming")


def collect(lf: pl.LazyFrame, engine: str = "auto", *, raise_on_fail: bool | None = None,
            as_frame: bool = False, cluster=None):
    """Run a polars query, on the GPU when the session has one.

    Parameters
    ----------
    lf : polars.LazyFrame
        The query, e.g. ``frame.lazy().group_by("k").agg(pl.col("v").sum())``.
        Scans of files (``pl.scan_parquet``) and in-memory polars frames work too;
        Frames additionally stay resident on the GPU between queries.
    engine : {"auto", "cpu", "gpu", "streaming"}
        ``"auto"``: the GPU when the session has one, else polars on the CPU
        (its streaming engine for a plan that reads files; see :mod:`workbench.engine.cpu`).
        ``"gpu"``: the GPU; without one, the CPU with a warning (or an error when
        ``raise_on_fail``). ``"cpu"``: polars' in-memory engine. ``"streaming"``:
        polars' CPU streaming engine, for data larger than host memory.
    raise_on_fail : bool, optional
        Raise instead of falling back to the CPU when the query cannot run on the
        GPU. Defaults to the session's ``strict``.
    as_frame : bool
        Return a :class:`workbench.Frame` instead of a polars DataFrame. A result
        computed on the GPU then stays there until a CPU view needs it.
    cluster : distributed.Client, optional
        Run the query across a Dask cluster's workers (``wb.cluster()``), reading
        its ``pl.scan_parquet`` sources there; see :mod:`workbench.engine.distributed`.

    Returns
    -------
    polars.DataFrame, or workbench.Frame with ``as_frame=True``
    """
    if not isinstance(lf, pl.LazyFrame):
        raise TypeError(f"collect takes a polars LazyFrame, got {type(lf).__name__}; "
                        "use frame.lazy() or df.lazy() to make one")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if cluster is not None:
        from workbench.engine.distributed import collect_on_cluster

        return collect_on_cluster(lf, cluster, as_frame=as_frame, raise_on_fail=raise_on_fail)
    session = current_session()
    strict = session.strict if raise_on_fail is None else raise_on_fail
    result = _collect(lf, engine, session, strict)
    if not as_frame:
        return _as_polars(result, session)
    if isinstance(result, pa.Table):  # a split's answer, gathered on the host
        return Frame._from_result(result)
    return Frame.from_polars(result) if isinstance(result, pl.DataFrame) else Frame._from_device(result)


def _as_polars(result, session) -> pl.DataFrame:
    if isinstance(result, pl.DataFrame):
        return result
    if isinstance(result, pa.Table):
        # a split's answer, one chunk per partition: joining them into one chunk copies
        # every string again (1.9 s for 2.8e7 rows in 14 chunks, measured on 2 cores),
        # which nothing in polars needs
        return as_polars(result)
    return _to_polars(result, session)


def _collect(lf, engine, session, strict):
    """The result: a polars DataFrame, a :class:`DeviceTable` left on the device, or
    an Arrow table (a split's answer, gathered on the host)."""
    if engine == "cpu":
        return lf.collect()
    if engine == "streaming":
        return lf.collect(engine="streaming")
    if not session.gpu:
        if engine == "gpu":
            session.fallback("collect", session._why_cpu(), strict=strict)
        return cpu.collect(lf, session)
    session.ensure_gpu()
    # 0. group-bys the GPU engine lacks (top_k, corr) asked in forms it has;
    # 1. the in-memory executor over resident columns: the fast path, while they fit;
    # 2. beyond that, the plan split by key: each hash partition in memory (after the
    #    streaming executor for simple plans, which it answers in one pass);
    # 3. the streaming executor, over resident columns for operations only it
    #    supports, over host chunks when the inputs do not fit and the plan does not split;
    # 4. polars on the CPU, with a warning (or an error with raise_on_fail), each largest
    #    part of the plan the GPU engine accepts run on the GPU first.
    if natural.rewritable(lf, ranks=False):
        return _run_natural(lf, session, strict, ranks=False)
    info = plans.inspect(lf)
    choice = strategy.choose(info, session.policy, session.resident_limit)
    if ranks_beyond_memory(lf, info, choice):
        return _run_natural(lf, session, strict, ranks=True)
    if choice.executor == "split" and (why := gathers_too_much(lf, info)):
        session.note("collect: " + why)
        return lf.collect()
    fits = True
    if choice.executor == "in-memory":
        try:
            return _run_gpu(lf, session, "in-memory", resident=True)
        except Exception as err:  # noqa: BLE001 - every GPU failure takes the same road
            fits, why = _plan_retry(err, session)
            recovery.release_noted(err, session)
        session.note("collect: " + why)
    if info.split is not None and (choice.executor == "split" or not fits):
        count = choice.partitions if choice.executor == "split" else 2
        answer = _try_split(lf, info, count, session)
        if answer is not None:
            return answer
        fits = False
    elif choice.executor == "streaming":
        session.note("collect: " + choice.reason)
        if info.split is not None and (answer := _few_rows_kept(lf, info, session)) is not None:
            return answer
        fits = False
    for retry in (False, True):
        try:
            return _run_gpu(lf, session, "streaming", resident=fits)
        except Exception as err:  # noqa: BLE001
            failure = reason(err)
            recovery.release_noted(err, session)
            held = residency.cache(session)
            if retry or not (is_out_of_memory(err) and held.nbytes):
                break
            # Earlier queries' resident columns may hold the room the stream needs.
            held.clear()
            fits = False
            session.note("collect: out of device memory with resident columns held; dropped "
                         "them, streaming again over host chunks")
    if info.split is not None and choice.executor == "streaming":
        # the streaming executor could not hold it (a result too large, say): split by key
        count = strategy.partitions_for(info.frame_bytes, session.policy.device_memory or 0)
        answer = _try_split(lf, info, count, session)
        if answer is not None:
            return answer
    return partial.on_gpu(lf, session, failure, strict)


def ranks_beyond_memory(lf, info, choice) -> bool:
    """Whether ``lf`` reads one Frame through a filter on a rank per group, beyond the
    resident limit, and does not split (its answer keeps the row order): its thresholds'
    query splits instead (see engine/ranked.py), and polars runs what the plan does with
    the few rows kept. A plan reading more scans is left whole to the GPU's executors."""
    return choice.executor != "in-memory" and info.split is None and len(info.inputs) == 1 \
        and natural.rewritable(lf)


#: what the session's log and ``wb.explain`` say of group-bys the GPU engine lacks
NATURAL = "top_k/corr/cov/n_unique per group asked in forms the GPU engine has (or runs faster)"
#: and of a filter on a rank per group beyond the resident limit
RANKS_BEYOND = ("a rank filter per group beyond the resident limit: its thresholds per group "
                "on the GPU, then the rows that can pass kept in order (on the GPU with one "
                "key, by polars with several), to which polars applies the filter")


def _try_split(lf, info, count: int, session):
    """The split's answer, or None when the GPU engine cannot run its partitions."""
    try:
        return _run_split(lf, info, count, session)
    except BudgetTooSmall:
        raise  # the budget is too small for any partition: say which would do
    except Exception as err:  # noqa: BLE001 - an operation the GPU engine lacks
        session.note(f"collect: the split plan cannot run on the GPU ({reason(err)})")
        recovery.release_noted(err, session)
    return None


def _few_rows_kept(lf, info, session):
    """A simple plan over one Frame whose filters keep few of its rows (a sample of them,
    filtered on the device, says): its rows cut once with the filters applied, the rows
    kept answering it in memory, or None. The streaming executor's chunks cost more than
    the copies (string_prefix_suffix: 0.43 s over 1.2 GB, polars 0.07 s)."""
    if info.split.by_rows or len(info.split.keys) != 1 or len(info.inputs) != 1:
        return None
    try:
        return _run_split(lf, info, 2, session, only_one=True)
    except Exception as err:  # noqa: BLE001 - the streaming executor runs it instead
        if behind(err, ManyKept):  # no device failure: its
            recovery.forget(err)  # frames hold the cut's chunk, nothing more
            return None
        session.note(f"collect: cutting the filtered rows first failed ({reason(err)})")
        recovery.release_noted(err, session)
    return None


def _run_natural(lf, session, strict, ranks: bool) -> pl.DataFrame:
    """Group-bys the GPU engine lacks, asked in forms it has (see engine/natural.py);
    with ``ranks``, filters on a rank per group too (see engine/ranked.py)."""
    def on_gpu(piece: pl.LazyFrame) -> pl.DataFrame:
        return _as_polars(_collect(piece, "gpu", session, strict=True), session)

    def candidates(plan: pl.LazyFrame, keys: list[str], per_group: int):
        """Each row range's own top ``per_group`` per group of ``keys``, in memory, as a
        Frame; None when the plan runs whole: its columns fit, or its groups are so many
        that the ranges would keep more than a quarter of the rows."""
        from workbench.engine.groups import group_share

        info = plans.inspect(plan)  # an ordinal rank per group: no key split of its own
        (scan,) = [i for i in info.inputs if i.frame is not None]
        # ranking sorts copies of the keys and values, as a median does: columns just
        # under the resident limit ran out of memory in memory (top2_per_group, 1 GB)
        by_key = dataclasses.replace(info, split=plans.Split({id(scan.frame): tuple(keys)},
                                                             sorting=True))
        if strategy.choose(by_key, session.policy, session.resident_limit).executor == "in-memory":
            return None
        rows = len(scan.frame)
        count = strategy.partitions_for(info.frame_bytes, session.policy.device_memory or 0)
        if count * per_group * group_share(by_key) * rows > rows / 4:
            return None
        ranges = dataclasses.replace(info, split=plans.Split({id(scan.frame): ()}))
        session.note(f"collect: the top {per_group} per group of each row range, ranked again")
        found = _run_split(plan, ranges, count, session)
        return Frame._from_result(found) if isinstance(found, pa.Table) else found

    session.note("collect: " + (RANKS_BEYOND if ranks else NATURAL))
    try:
        return natural.collect(lf, on_gpu, ranks, candidates)
    except BudgetTooSmall:
        raise
    except Exception as err:  # noqa: BLE001
        failure = reason(err)
        recovery.release_noted(err, session)
    session.fallback("collect", failure, strict=strict)
    return cpu.collect(lf, session)


def _run_split(lf, info, count: int, session, *, only_one: bool = False) -> pa.Table:
    """The plan split by key, doubling the partitions after an out-of-memory failure.

    Each partition's answer is copied to the host as Arrow at pinned speed and the
    answer assembled there: converting every partition to polars (strings into
    polars' views) cost more than the query itself for an answer of ~1e8 rows. The
    copies land in free blocks of the host pool where it has them (no page faults, no
    staging: ~10x the rate into fresh memory, measured on an H100).
    """
    from workbench.frame import hostpool
    from workbench.frame.fetch import fetch

    pool = hostpool.shared(session.policy)
    take = functools.partial(pool.take, reuse_only=True) if pool is not None else None

    def one(part_lf):
        return fetch(_run_gpu(part_lf, session, "in-memory", resident=False), session.transfers, take)[0]

    size = info.frame_bytes
    prefilter, room = {}, 0
    if not info.split.by_rows:
        from workbench.engine import cudf_polars

        room = strategy.partition_room(session.policy.device_memory or 0)
        why: list = []
        try:  # the filters above a Frame's scan, applied while its rows are cut
            prefilter = cudf_polars.row_filters(
                lf, session.policy.polars_engine(executor="in-memory", raise_on_fail=True), why,
                {id(i.frame): i.row_limit for i in info.inputs if i.frame is not None})
        except Exception as err:  # noqa: BLE001 - then the partitions filter, as before
            why = [reason(err)]
        if why and not only_one:
            session.note("collect: no filters applied while the rows are cut (" + "; ".join(why) + ")")
    if only_one and not prefilter:
        raise ManyKept("no filters above the scan")
    while True:
        if not only_one:
            session.note(f"collect: split into {count} row ranges" if info.split.by_rows
                         else f"collect: split by key into {count} partitions")
        facts: dict = {}
        try:
            answer = run_split(lf, info.split, count, one, prefilter=prefilter, room=room,
                               facts=facts, only_one=only_one)
            note_cut(session, facts)
            return answer
        except Exception as err:  # noqa: BLE001
            if only_one or not (is_out_of_memory(err) or behind(err, DoesNotFit)):
                raise
            recovery.release_noted(err, session)
            residency.cache(session).clear()
            room = 0  # more partitions, each its own
        count *= 2
        if count > strategy.MAX_PARTITIONS:
            raise strategy.too_small(size, session.policy.device_memory or 0)


def _plan_retry(err: BaseException, session) -> tuple[bool, str]:
    """After the in-memory executor failed: stream over resident columns or host chunks?"""
    if behind(err, DoesNotFit):
        return False, "inputs larger than the resident limit; using the streaming executor"
    if is_out_of_memory(err):
        # The resident columns of earlier queries may hold the room this one needs.
        residency.cache(session).clear()
        return False, ("out of device memory; resident columns dropped, using the "
                       "streaming executor over host chunks")
    return True, (f"the in-memory GPU executor cannot run this query ({reason(err)}); "
                  "trying the streaming executor")


def _run_gpu(lf: pl.LazyFrame, session, executor: str, *, resident: bool):
    from workbench.engine import cudf_polars

    engine = session.policy.polars_engine(executor=executor, raise_on_fail=True)
    with feeding(cudf_polars.feed(executor, resident)):
        if executor == "in-memory":
            return cudf_polars.evaluate_on_device(lf, engine)
        result = lf.collect(engine=engine)
    # The streaming executor copies its result to the host inside the query: its
    # bytes are recorded, its time is part of the query's and is not known apart.
    session.transfers.record("collect result (timed within the query)", result.estimated_size(),
                             "device-to-host", "pageable", 0.0)
    return result


def _to_polars(result: DeviceTable, session) -> pl.DataFrame:
    """A device result as a polars DataFrame, as ``collect(engine="gpu")`` returns it."""
    start = time.perf_counter()
    df = result.to_polars()
    session.transfers.record("collect result", df.estimated_size(), "device-to-host", "pageable",
                             time.perf_counter() - start)
    return df

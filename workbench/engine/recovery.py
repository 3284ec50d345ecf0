"""Giving back what a failed GPU attempt holds, so the next query runs as the first did.

A failed attempt leaves device memory behind in three places:

* the frames of its traceback (and of every exception chained to it) keep its
  partial results alive: clearing them and collecting frees those buffers;
* cudf-polars' streaming executor keeps one rapidsmpf ``Context`` per process; the
  messages a failed query left in its channels, and the packed partitions of its
  shuffles, stay in that context's spillable store. Spilling the store moves them to
  host memory, which frees the device;
* a rapidsmpf shuffle (or all-gather) that was never finished aborts the whole
  process when it is destroyed (its C++ destructor calls ``std::terminate``), at the
  next garbage collection or at exit. Such collectives are *parked*: one reference
  more that is never dropped, so they are never destroyed. A parked shuffle is
  *drained*: every partition it received is extracted and dropped (its extraction
  checks nothing, so it is safe unfinished), which frees that memory for good. What a
  failure costs is a few parked objects, never the process.
"""

from __future__ import annotations

import ctypes
import gc
import sys

from workbench.errors import chained

#: rapidsmpf's collectives whose destructor aborts the process when unfinished
_FATAL_WHEN_UNFINISHED = frozenset({"ShufflerAsync", "AllGather", "AllReduce", "SparseAlltoall",
                                    "Shuffler"})
_PARKED: dict[int, object] = {}


def release(err: BaseException) -> dict:
    """Give back what the failed attempt behind ``err`` holds (see the module docstring).

    Returns what was done: ``parked`` (collectives kept alive for good), ``drained``
    (pieces of data they had received, dropped) and ``spilled`` (bytes of the streaming
    executor's store moved to host memory).
    """
    parked = _park_collectives()  # before collecting: that would destroy them
    drained = sum(_drain(obj) for obj in parked)  # those parked before are empty already
    forget(err)
    gc.collect()
    return {"parked": len(parked), "drained": drained, "spilled": _spill_streaming_store()}


def forget(err: BaseException) -> None:
    """Drop the frames ``err`` and the errors behind it hold (and the device memory
    their locals keep alive): all a failure that took nothing else needs."""
    for e in chained(err):
        e.__traceback__ = None


def release_noted(err: BaseException, session) -> None:
    """:func:`release`, and a line in the session's log when the streaming executor had
    left anything behind."""
    done = release(err)
    if done["parked"] or done["spilled"]:
        session.note(f"collect: the failed attempt's streaming state was released: "
                     f"{done['spilled']:,} bytes spilled to host memory, {done['parked']} "
                     "shuffles kept alive for good (destroying an unfinished one aborts the "
                     f"process), {done['drained']} pieces they had received dropped")


def parked() -> int:
    """How many unfinished collectives failed queries left in this process."""
    return len(_PARKED)


def _park_collectives() -> list:
    """The unfinished collectives parked now (those parked before are left as they are)."""
    if "rapidsmpf" not in sys.modules:
        return []  # the streaming executor never ran here
    # Every failure once the streaming executor is loaded walks all objects (~30 ms per
    # 1e5 on 2 cores): cheaper than telling from the traceback which attempts streamed,
    # where a miss would cost the process.
    found = []
    for obj in gc.get_objects():
        kind = type(obj)
        if kind.__name__ in _FATAL_WHEN_UNFINISHED and kind.__module__.startswith("rapidsmpf") \
                and id(obj) not in _PARKED:
            # A strong reference the interpreter never drops, not even at exit (module
            # globals are cleared then, and a plain list would let them go).
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
            _PARKED[id(obj)] = obj
            found.append(obj)
    return found


def _drain(collective) -> int:
    """Drop every partition a parked shuffle received; how many pieces were dropped."""
    if not (hasattr(collective, "local_partitions") and hasattr(collective, "extract")):
        return 0  # an all-gather or all-reduce: nothing to take out safely
    dropped = 0
    try:
        for pid in collective.local_partitions():
            dropped += len(collective.extract(pid))
    except Exception:  # noqa: BLE001 - what stays is spilled with the store below
        pass
    return dropped


def _spill_streaming_store() -> int:
    """Spill everything spillable in the streaming executor's context to host memory."""
    engine_module = sys.modules.get("cudf_polars.engine.default_singleton_engine")
    if engine_module is None:
        return 0
    engine = engine_module._state.instance
    context = getattr(engine, "context", None) if engine is not None else None
    if context is None:
        return 0
    br = context.br()
    return int(br.spill_manager.spill(1 << 62))

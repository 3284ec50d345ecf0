"""What a failed attempt holds is given back (engine/recovery.py), on the CPU.

The GPU side (a real failed rapidsmpf shuffle) is tests/engine/test_recovery_gpu.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import weakref

from workbench.engine import recovery


class _Buffers:
    """Stands for the device buffers of a partial result."""


def _fail_holding(buffers):
    held = buffers  # noqa: F841 - the failing frame's local keeps it alive
    try:
        raise MemoryError("out of device memory")
    except MemoryError as err:
        raise RuntimeError("the query failed") from err


def test_release_frees_what_the_tracebacks_of_the_whole_chain_hold():
    buffers = _Buffers()
    alive = weakref.ref(buffers)
    try:
        _fail_holding(buffers)
    except RuntimeError as caught:
        err = caught
    del buffers
    assert alive() is not None  # the traceback's frames hold it
    done = recovery.release(err)
    assert alive() is None
    assert err.__traceback__ is None and err.__cause__.__traceback__ is None
    # no streaming executor ran in this process: nothing to park or spill
    assert done == {"parked": 0, "drained": 0, "spilled": 0}


# An object of a rapidsmpf collective's name whose destruction ends the process with
# the status rapidsmpf's fatal error gives (134): parked, it must outlive collections
# and the interpreter's exit.
CHILD = textwrap.dedent("""
    import gc, os, sys, types
    from workbench.engine import recovery

    module = types.ModuleType("rapidsmpf.streaming.coll.shuffler")
    class ShufflerAsync:  # what it received: partition -> pieces
        def __init__(self):
            self.received = {0: [b"a"], 1: [b"b", b"c"]}
        def local_partitions(self):
            return list(self.received)
        def extract(self, pid):
            return self.received.pop(pid, [])
        def __del__(self):
            os._exit(134)
    ShufflerAsync.__module__ = module.__name__
    sys.modules.setdefault("rapidsmpf", types.ModuleType("rapidsmpf"))

    def attempt():
        shuffler = ShufflerAsync()
        raise MemoryError("the shuffle ran out of device memory")

    try:
        attempt()
    except MemoryError as err:
        done = recovery.release(err)
    gc.collect()
    (held,) = recovery._PARKED.values()
    print(done["parked"], done["drained"], recovery.parked(), len(held.received), flush=True)
""")


def test_an_unfinished_collective_is_parked_drained_and_never_destroyed():
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # parked once, its 3 pieces dropped, nothing left in it
    assert proc.stdout.split() == ["1", "3", "1", "0"]

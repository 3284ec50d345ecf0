"""Device -> new host memory: the rate of the ways a GPU result can come back.

A result larger than the budget leaves the device as it is made, into fresh host memory
(:func:`workbench.frame.fetch.to_host`). This times, for one device buffer of ``--mb``:

* ``staged``: the workbench's copy (pinned staging buffers, copy threads writing fresh
  anonymous mappings);
* ``staged-huge``: the same into mappings advised ``MADV_HUGEPAGE``;
* ``pageable-fresh``: one ``cudaMemcpy`` straight into a fresh mapping;
* ``pageable-warm``: one ``cudaMemcpy`` into a mapping written before (no page faults);
* ``pinned-warm``: one ``cudaMemcpy`` into registered memory (the bus's rate).

and what a block of the host pool costs to make (``cudaHostRegister`` of ``--mb``):

* ``register-fresh``: of a fresh mapping (the driver faults its pages in);
* ``prefault+register``: the same after the copy threads wrote to every page (a pool
  could fault a new block in on all cores before registering it);
* ``register-1MiB-blocks``: the same bytes as 1 MiB blocks, one call each (the host pool's
  smallest block: what a call costs beyond its pages).

Fresh mappings each run, the ways interleaved, best of ``--runs``. GPU only.

    python benchmarks/fetch_rates.py --mb 1024 --out results.json
"""

from __future__ import annotations

import argparse
import json
import mmap
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workbench.bench.report import machine_info, versions, write_atomic  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)

    import pyarrow as pa
    import pylibcudf as plc
    from cuda.bindings import runtime as cudart

    import workbench.frame.fetch as fetch
    from workbench.frame.pages import anonymous

    n = a.mb * (1 << 20) // 8
    column = plc.Column.from_arrow(pa.array(np.arange(n, dtype=np.int64)))
    src, nbytes = column.data().ptr, n * 8
    d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost

    def huge(size: int) -> np.ndarray:
        m = mmap.mmap(-1, max(mmap.PAGESIZE, -(-size // mmap.PAGESIZE) * mmap.PAGESIZE))
        m.madvise(mmap.MADV_HUGEPAGE)
        return np.frombuffer(m, dtype=np.uint8)

    def staged(pages):
        fetch.anonymous = pages
        try:
            out = fetch.to_host([column], [pa.int64()])[0]
        finally:
            fetch.anonymous = anonymous
        return out

    warm = anonymous(nbytes)
    warm[:] = 1
    pinned = anonymous(nbytes)
    cudart.cudaHostRegister(pinned.ctypes.data, nbytes, 0)

    def register_blocks():
        blocks = [anonymous(1 << 20) for _ in range(nbytes >> 20)]
        for b in blocks:
            err, = cudart.cudaHostRegister(b.ctypes.data, b.size, 0)
            assert err == cudart.cudaError_t.cudaSuccess, err
        for b in blocks:
            cudart.cudaHostUnregister(b.ctypes.data)

    def register(prefault: bool):
        block = anonymous(nbytes)
        if prefault:
            from workbench.frame.table import copy_threads

            step = -(-nbytes // 64)

            def touch(i):  # one byte a page: the kernel zeroes the rest as it faults it in
                block[i * step:(i + 1) * step:mmap.PAGESIZE] = 0

            list(copy_threads().map(touch, range(64)))
        err, = cudart.cudaHostRegister(block.ctypes.data, nbytes, 0)
        assert err == cudart.cudaError_t.cudaSuccess, err
        cudart.cudaHostUnregister(block.ctypes.data)
        return None

    def memcpy(dst):
        err, = cudart.cudaMemcpy(dst.ctypes.data, src, nbytes, d2h)
        assert err == cudart.cudaError_t.cudaSuccess, err
        return dst

    ways = {
        "staged": lambda: staged(anonymous),
        "staged-huge": lambda: staged(huge),
        "pageable-fresh": lambda: memcpy(anonymous(nbytes)),
        "pageable-warm": lambda: memcpy(warm),
        "pinned-warm": lambda: memcpy(pinned),
        "register-fresh": lambda: register(False),
        "prefault+register": lambda: register(True),
        "register-1MiB-blocks": register_blocks,
    }
    times = {w: [] for w in ways}
    for _ in range(a.runs):
        for way, fn in ways.items():
            cudart.cudaDeviceSynchronize()
            start = time.perf_counter()
            out = fn()
            times[way].append(time.perf_counter() - start)
            if out is not None:
                last = np.frombuffer(out.buffers()[1] if hasattr(out, "buffers") else out, dtype=np.int64)
                assert last[n - 1] == n - 1, way
            del out
    cudart.cudaHostUnregister(pinned.ctypes.data)
    rates = {w: nbytes / min(t) / 1e9 for w, t in times.items()}
    for w, r in rates.items():
        print(f"{w:15s} {r:6.2f} GB/s  (best of {a.runs}: {min(times[w]) * 1e3:.1f} ms)")
    doc = {"benchmark": "fetch_rates", "date": datetime.now(timezone.utc).isoformat(),
           "bytes": nbytes, "runs": a.runs, "seconds": times, "gb_per_s": rates,
           "machine": machine_info(), "versions": versions()}
    write_atomic(a.out, json.dumps(doc, indent=2).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())

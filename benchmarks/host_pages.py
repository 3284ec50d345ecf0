"""Fresh host memory written once: plain pages against transparent huge pages.

A GPU result fetched to the host lands in new anonymous mappings (see
``workbench/frame/pages.py``); the first write to each page faults it in. This measures
the rate of that first write, one thread and several threads (as the copy threads
write), for mappings left as they are and mappings advised ``MADV_HUGEPAGE``, fresh
mappings each time, interleaved.

    python benchmarks/host_pages.py --mb 1024 --out results.json
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import numpy as np


def first_write(nbytes: int, huge: bool, threads: int, src: np.ndarray) -> float:
    """GB/s of writing ``src`` into a fresh mapping of ``nbytes``, in ``threads`` slices."""
    m = mmap.mmap(-1, nbytes)
    if huge:
        m.madvise(mmap.MADV_HUGEPAGE)
    dst = np.frombuffer(m, dtype=np.uint8)
    step = -(-nbytes // threads)

    def part(i):
        dst[i * step:(i + 1) * step] = src[i * step:(i + 1) * step]

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(part, range(threads)))
    seconds = time.perf_counter() - start
    del dst
    m.close()
    return nbytes / seconds / 1e9


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--out", default="-")
    a = ap.parse_args(argv)
    nbytes = a.mb << 20
    src = np.ones(nbytes, dtype=np.uint8)
    cores = os.cpu_count() or 1
    rates: dict = {}
    for _ in range(a.runs):
        for threads in (1, cores):
            for huge in (False, True):
                key = f"{'huge' if huge else 'plain'} pages, {threads} threads"
                rates.setdefault(key, []).append(round(first_write(nbytes, huge, threads, src), 2))
    thp = "/sys/kernel/mm/transparent_hugepage/enabled"
    result = {"benchmark": "host_pages", "date": datetime.now(timezone.utc).isoformat(),
              "machine": platform.node(), "cores": cores, "bytes": nbytes,
              "transparent_hugepage": open(thp).read().strip() if os.path.exists(thp) else None,
              "gb_per_s": rates, "best": {k: max(v) for k, v in rates.items()}}
    for key, values in rates.items():
        print(f"{key:28s} best {max(values):6.2f} GB/s   all {values}")
    text = json.dumps(result, indent=1)
    if a.out == "-":
        print(text)
    else:
        with open(a.out + ".part", "w") as f:
            f.write(text)
        os.replace(a.out + ".part", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a streamed pass beyond the budget spends its time, against the bus floor.

Under a GPU budget (default 512 MB) on the training benchmark's generated data (4.2x
the budget), one pass over the training chunks is timed several ways, side by side in
one process: assembled from the frame's columns (copy, cast, split per chunk),
recorded into the host cache, replayed from it, and replayed with the work of one
Newton step of logistic regression and of one Lloyd step of k-means. The floor is the
pass's bytes over the host-to-device bandwidth measured here with one large pinned copy.

    python benchmarks/chunk_passes.py --budget 512MB --out chunk_passes.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def _timed(fn, repeat=3):
    import cupy as cp

    best = None
    for _ in range(repeat):
        cp.cuda.Device().synchronize()
        start = time.perf_counter()
        fn()
        cp.cuda.Device().synchronize()
        took = time.perf_counter() - start
        best = took if best is None else min(best, took)
    return best


def _drain(chunks):
    n = 0
    for X, _, _ in chunks:
        n += len(X)
    return n


def bandwidth(nbytes=1 << 28) -> float:
    """Host-to-device bytes per second of one large pinned copy."""
    import cupy as cp

    host = cp.cuda.alloc_pinned_memory(nbytes)
    dev = cp.empty(nbytes, dtype=cp.uint8)
    view = np.frombuffer(host, np.uint8, nbytes)
    view[:] = 1
    return nbytes / _timed(lambda: dev.set(view))


def host_memory(total: int, blocks: int) -> dict:
    """Seconds to make ``total`` bytes of host memory ready for a cache: page-locked in
    ``blocks`` blocks, in one block, pageable (first touch, by one thread and by one
    thread per core, as the cache makes its block now), and pageable then registered;
    and one pageable host-to-device copy of a block."""
    import cupy as cp

    from workbench.ml.chunk_cache import _make_pages

    size = total // blocks
    out = {}
    start = time.perf_counter()
    kept = [cp.cuda.PinnedMemory(size) for _ in range(blocks)]
    out["pinned_blocks_s"] = time.perf_counter() - start
    del kept
    start = time.perf_counter()
    one = cp.cuda.PinnedMemory(total)
    out["pinned_one_block_s"] = time.perf_counter() - start
    del one
    start = time.perf_counter()
    pageable = np.empty(total, np.uint8)
    pageable[::4096] = 1  # one write a page: the pages are made
    out["pageable_s"] = time.perf_counter() - start
    start = time.perf_counter()
    threaded = np.empty(total, np.uint8)
    _make_pages(threaded)
    out["pageable_threads_s"] = time.perf_counter() - start
    del threaded
    start = time.perf_counter()
    cp.cuda.runtime.hostRegister(pageable.ctypes.data, total, 0)
    out["register_s"] = time.perf_counter() - start
    cp.cuda.runtime.hostUnregister(pageable.ctypes.data)
    dev = cp.empty(size, dtype=cp.uint8)
    block = np.ones(size, np.uint8)
    out["pageable_h2d_bytes_per_s"] = size / _timed(lambda: dev.set(block))
    out["bytes"], out["blocks"] = total, blocks
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="512MB")
    parser.add_argument("--times", type=float, default=4.2)
    parser.add_argument("--out", type=Path, default=Path("chunk_passes.json"))
    args = parser.parse_args(argv)
    from dask.utils import parse_bytes

    import training
    import workbench as wb
    from workbench.ml import targets
    from workbench.ml.chunks import FeatureChunks
    from workbench.ml.streamed_kmeans import _pass as lloyd_pass
    from workbench.ml.streamed_logistic import StreamedLogistic

    session = wb.init(backend="gpu", budget=args.budget)
    rows = int(np.ceil(args.times * parse_bytes(args.budget) / 16))
    df = training.generated(rows)
    frame = wb.Frame.from_polars(df)
    features = [c for c in df.columns if c.startswith("x")]
    labels = targets.Labels.fit(df["label"])
    chunks = FeatureChunks(frame, features, "label", device=True, encode=labels.encode,
                           test_size=0.2, part="train")
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "versions": training.versions(), "budget": parse_bytes(args.budget), "rows": rows,
           "features": len(features), "chunk_rows": chunks.rows, "chunks": len(chunks)}
    n_train = _drain(chunks)
    seconds = {"assembled": _timed(lambda: _drain(chunks))}
    cached = chunks.cached(classes=len(labels))  # as a fit caches them: int8 codes
    start = time.perf_counter()
    _drain(cached)
    seconds["record"] = time.perf_counter() - start
    out["cached"] = cached.is_cached
    # The floor: what a replay moves (float32 X and the codes as cached) over the bus.
    pass_bytes = cached._cache.nbytes if cached.is_cached else n_train * (len(features) * 4 + 4)
    out["h2d_bytes_per_s"] = bandwidth()
    out["pass_bytes"], out["floor_s"] = pass_bytes, pass_bytes / out["h2d_bytes_per_s"]
    seconds["replayed"] = _timed(lambda: _drain(cached))

    model = StreamedLogistic(n_classes=2)
    model._passes = 0
    mean, scale = np.zeros(len(features)), np.ones(len(features))
    theta = np.zeros(len(features) + 1)
    import cupy as cp

    seconds["newton_step_replayed"] = _timed(
        lambda: model._newton_pass(cached, cp, mean, scale, theta, n_train))
    seconds["newton_step_assembled"] = _timed(
        lambda: model._newton_pass(chunks, cp, mean, scale, theta, n_train), repeat=1)
    centers = np.random.default_rng(0).standard_normal((8, len(features)))
    seconds["lloyd_step_replayed"] = _timed(lambda: lloyd_pass(cached, cp, centers))
    seconds["lloyd_step_assembled"] = _timed(lambda: lloyd_pass(chunks, cp, centers), repeat=1)
    out["seconds"] = seconds
    out["host_memory"] = host_memory(pass_bytes, 2 * len(chunks))
    out["over_floor"] = {k: v / out["floor_s"] for k, v in seconds.items()}
    out["peak_bytes"] = training._peak()
    out["device"] = session.hardware.gpu.name
    from workbench.bench.report import write_atomic

    write_atomic(args.out, json.dumps(out, indent=1).encode())  # complete or absent
    for k, v in seconds.items():
        print(f"{k:24} {v:7.3f} s  {v / out['floor_s']:6.1f}x the floor "
              f"({out['floor_s']:.3f} s: {pass_bytes / 1e9:.2f} GB at "
              f"{out['h2d_bytes_per_s'] / 1e9:.1f} GB/s)")
    return out


if __name__ == "__main__":
    main()

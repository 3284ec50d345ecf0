"""Generation + Parquet write speed of workbench.datasets, with peak memory.

    python benchmarks/datagen.py --rows 1e8                      # h2o_groupby K=100, 1 thread and all cores
    python benchmarks/datagen.py --rows 1e9 --threads 16 --dir /scratch
    python benchmarks/datagen.py --dataset taxi --rows 1e7 -p zones=263

Each measurement runs in a fresh subprocess (so its peak RSS is its own) that calls
``workbench.datasets.make(..., path=<fresh dir>)``: generation, Parquet encoding
(zstd), writing and the SHA-256 checksums of the manifest, end to end. The results JSON
(machine, versions, rows, seconds, rows/s, MB/s of Parquet written, peak RSS) goes to
``benchmarks/results/datagen-<cores>c-<rows>.json`` (e.g. ``datagen-2c-1e8.json``) unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(args) -> None:
    sys.path.insert(0, str(HERE.parent))
    from workbench import datasets
    from workbench.bench.memory import read_status_bytes
    from workbench.datasets import catalog as _catalog, writer as _writer

    params = dict(json.loads(args.params))
    threads = args.threads[0] or None
    plans = _catalog.generator(args.dataset).plan(args.rows, 0, **params)
    target = Path(args.dir) / "data"
    t0 = time.perf_counter()
    path = datasets.make(args.dataset, args.rows, path=target, threads=threads, progress=False, **params)
    seconds = time.perf_counter() - t0
    files = [p for p in path.rglob("*.parquet")]
    print(json.dumps({
        "seconds": seconds,
        "parquet_bytes": sum(p.stat().st_size for p in files),
        "files": len(files),
        # the child's own peak: ru_maxrss would count the parent's at the fork
        "peak_rss_bytes": read_status_bytes("VmHWM"),
        "threads": threads,
        "default_threads": {t: _writer.default_threads(p.bytes_per_row) for t, p in plans.items()},
        "row_group_rows": _writer.ROW_GROUP,
        "file_rows": _writer.FILE_ROWS,
    }))


def machine(directory: Path) -> dict:
    info = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu_model"] = platform.processor()
    try:
        kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        info["ram_bytes"] = kb * 1024
    except (OSError, StopIteration):
        pass
    try:
        best = ("", "")
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, fstype = line.split()[:3]
            if str(directory.resolve()).startswith(mount) and len(mount) > len(best[0]):
                best = (mount, fstype)
        info["output_filesystem"] = best[1]
    except OSError:
        pass
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        info["gpu"] = gpu.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["gpu"] = None
    return info


def sci(x: int) -> str:
    digits = str(x).rstrip("0")
    return f"{digits}e{len(str(x)) - len(digits)}" if digits != str(x) else str(x)


def versions() -> dict:
    import numpy
    import pyarrow

    sys.path.insert(0, str(HERE.parent))
    import workbench

    return {"workbench": workbench.__version__, "numpy": numpy.__version__, "pyarrow": pyarrow.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="h2o_groupby")
    ap.add_argument("--rows", type=float, default=1e8)
    ap.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--threads", type=int, action="append", help="thread counts, repeatable; 0 = the default (all cores, capped by memory); default: 1 and 0")
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
    ap.add_argument("--out", default=None, help="results JSON path")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.rows = int(args.rows)
    if args.child:
        return child(args)

    sys.path.insert(0, str(HERE.parent))
    from workbench.datasets import catalog as _catalog

    given = dict(_catalog.parse_param(args.dataset, item) for item in args.param)
    _, params = _catalog.resolve(args.dataset, args.rows, given)  # every parameter, defaults filled in
    base = Path(args.dir) if args.dir else Path(tempfile.gettempdir())
    info = machine(base)
    threads = args.threads or [1, 0]  # 0: the default (all cores, capped by the memory budget)
    runs = []
    for t in threads:
        work = Path(tempfile.mkdtemp(prefix="datagen-", dir=base))
        try:
            cmd = [sys.executable, __file__, "--child", "--dataset", args.dataset, "--rows", str(args.rows),
                   "--threads", str(t), "--dir", str(work), "--params", json.dumps(params)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"the run with {t} threads failed:\n{out.stderr}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            shutil.rmtree(work, ignore_errors=True)
        r["default"] = t == 0
        r["threads"] = r["threads"] or max(r["default_threads"].values())
        r["rows_per_s"] = args.rows / r["seconds"]
        r["mb_per_s"] = r["parquet_bytes"] / 1e6 / r["seconds"]
        runs.append(r)
        label = f"{r['threads']:>2} threads{' (default)' if t == 0 else ''}"
        print(f"{args.dataset} {args.rows:.0e} rows, {label}: {r['seconds']:7.2f} s  "
              f"{r['rows_per_s'] / 1e6:6.2f} M rows/s  {r['mb_per_s']:6.1f} MB/s  "
              f"peak RSS {r['peak_rss_bytes'] / 1e9:.2f} GB  ({r['parquet_bytes'] / 1e9:.2f} GB in {r['files']} files)")
    result = {
        "benchmark": "datagen",
        "what": "workbench.datasets.make(): generation + Parquet (zstd) write + SHA-256 manifest, fresh output folder",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": args.dataset,
        "rows": args.rows,
        "params": params,
        "machine": info,
        "versions": versions(),
        "runs": runs,
    }
    out = Path(args.out) if args.out else HERE / "results" / f"datagen-{info['usable_cores']}c-{sci(args.rows)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()

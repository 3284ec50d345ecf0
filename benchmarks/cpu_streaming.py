"""polars on the CPU over Parquet files: in memory against streaming, time and peak memory.

Without a GPU (or for a plan the GPU refuses) ``workbench.collect`` runs polars in
memory unless the files a plan reads would take more than half of the host memory
available; then it streams (``workbench/engine/cpu.py``). This measures what the two
cost over the catalog's ``h2o_groupby`` table: seconds and the process's peak resident
memory for a few group-bys, each way in a fresh process (peak memory is per process),
beside the bytes ``workbench.engine.cpu.scanned_bytes`` expects the files to load.

    python benchmarks/cpu_streaming.py --rows 1e7 --out cpu-streaming.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUERIES = {
    "sum_by_id1": 'q.group_by("id1").agg(pl.col("v1").sum())',
    "mean_by_id3": 'q.group_by("id3").agg(pl.col("v1").sum(), pl.col("v3").mean())',
    "median_by_id4_id5": 'q.group_by("id4", "id5").agg(pl.col("v3").median())',
    "filter_then_count": 'q.filter(pl.col("v3") > 90).group_by("id2").len()',
}

CHILD = """
import resource, sys, time
import polars as pl
q = pl.scan_parquet(sys.argv[1] + "/*.parquet")
lf = {query}
start = time.perf_counter()
df = lf.collect(engine={engine!r})
seconds = time.perf_counter() - start
print(seconds, df.height, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1e7")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)

    import polars as pl

    from workbench import datasets
    from workbench.bench.report import machine_info, versions, write_atomic
    from workbench.engine.cpu import scanned_bytes

    rows = int(float(a.rows))
    path = Path(datasets.make("h2o_groupby", rows, k=100))
    results = {}
    for name, query in QUERIES.items():
        lf = eval(query, {"pl": pl, "q": pl.scan_parquet(str(path / "*.parquet"))})
        entry = {"query": query, "expected_load_bytes": scanned_bytes(lf)}
        for engine in ("in-memory", "streaming"):
            runs = []
            for _ in range(a.runs):
                code = CHILD.format(query=query, engine=engine)
                out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                                     text=True, check=True).stdout.split()
                runs.append({"seconds": float(out[0]), "rows": int(out[1]), "peak_rss_bytes": int(out[2])})
            entry[engine] = {"seconds": min(r["seconds"] for r in runs),
                             "peak_rss_bytes": min(r["peak_rss_bytes"] for r in runs),
                             "rows": runs[-1]["rows"], "runs": runs}
        results[name] = entry
        print(f"{name:20s} expects {entry['expected_load_bytes'] / 1e6:7.0f} MB | in memory "
              f"{entry['in-memory']['seconds']:6.2f} s {entry['in-memory']['peak_rss_bytes'] / 1e6:6.0f} MB"
              f" | streaming {entry['streaming']['seconds']:6.2f} s "
              f"{entry['streaming']['peak_rss_bytes'] / 1e6:6.0f} MB")
    doc = {"benchmark": "cpu_streaming", "date": datetime.now(timezone.utc).isoformat(),
           "rows": rows, "parquet_bytes": sum(f.stat().st_size for f in path.glob("*.parquet")),
           "runs": a.runs, "queries": results, "machine": machine_info(), "versions": versions()}
    write_atomic(a.out, json.dumps(doc, indent=1).encode())
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

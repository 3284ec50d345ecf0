"""polars on the CPU over Parquet files: in memory against streaming, time and peak memory.

Without a GPU (or for a plan the GPU refuses) ``workbench.collect`` has polars stream a
plan that reads files and run one over frames in memory (``workbench/engine/cpu.py``),
from what this measures. By default it times the two ways over the catalog's
``h2o_groupby`` table: seconds and the process's peak resident
memory for a few group-bys, each way in a fresh process (peak memory is per process),
beside the bytes ``workbench.engine.cpu.scanned_bytes`` expects the files to load.
With ``--corpus`` the queries are the analytic corpus's (``corpus_queries.py``: joins,
windows, sorts, string and date filters over the catalog's tables), each answer checked
against the in-memory one; ``--sources memory`` reads the tables into memory first
(outside the time), as a notebook holding DataFrames has them, and ``--sources frames``
into Frames, queried through ``workbench.collect`` on the CPU (``engine="cpu"`` against
``engine="streaming"``).

    python benchmarks/cpu_streaming.py --rows 1e7 --out cpu-streaming.json
    python benchmarks/cpu_streaming.py --corpus --rows 1e7 --out cpu-streaming-corpus.json
    python benchmarks/cpu_streaming.py --corpus --sources memory --rows 1e7 --out ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

QUERIES = {
    "sum_by_id1": 'q.group_by("id1").agg(pl.col("v1").sum())',
    "mean_by_id3": 'q.group_by("id3").agg(pl.col("v1").sum(), pl.col("v3").mean())',
    "median_by_id4_id5": 'q.group_by("id4", "id5").agg(pl.col("v3").median())',
    "filter_then_count": 'q.filter(pl.col("v3") > 90).group_by("id2").len()',
}

CHILD = """
import sys, time
{peak}import polars as pl
q = pl.scan_parquet(sys.argv[1] + "/*.parquet")
lf = {query}
start = time.perf_counter()
df = lf.collect(engine={engine!r})
seconds = time.perf_counter() - start
print(seconds, df.height, peak())
"""

# The process's own peak resident memory (VmHWM): ru_maxrss would count the parent's at
# the fork.
PEAK = """from workbench.bench.memory import read_status_bytes
peak = lambda: read_status_bytes("VmHWM")
"""

# A corpus query over the tables' files; its answer is written for the parent to compare.
CORPUS_CHILD = """
import json, sys, time
{peak}import polars as pl
sys.path.insert(0, {benchmarks!r})
import corpus_queries as C
paths, sources = json.loads(sys.argv[1]), {sources!r}
if sources == "frames":  # Frames of the workbench, run by workbench.collect on the CPU
    import os
    import workbench as wb
    wb.init(backend="cpu")
    tables = {{n: wb.Frame.from_parquet(os.path.dirname(files[0])).lazy() for n, files in paths.items()}}
    run = lambda lf: wb.collect(lf, engine="cpu" if {engine!r} == "in-memory" else "streaming")
else:
    read = pl.read_parquet if sources == "memory" else pl.scan_parquet
    tables = {{n: read(files).lazy() for n, files in paths.items()}}
    run = lambda lf: lf.collect(engine={engine!r})
lf = C.QUERIES[{name!r}].build(tables)
start = time.perf_counter()
df = run(lf)
seconds = time.perf_counter() - start
df.write_ipc(sys.argv[2])
print(seconds, df.height, peak())
"""


def _child(code: str, args: list[str], runs: int) -> dict:
    """The best of ``runs`` fresh processes running ``code``: seconds, rows, peak memory."""
    out = []
    for _ in range(runs):
        printed = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                                 text=True, check=True).stdout.split()
        out.append({"seconds": float(printed[0]), "rows": int(printed[1]),
                    "peak_rss_bytes": int(printed[2])})
    return {"seconds": min(r["seconds"] for r in out),
            "peak_rss_bytes": min(r["peak_rss_bytes"] for r in out), "rows": out[-1]["rows"],
            "runs": out}


def _say(name: str, entry: dict) -> None:
    both = " | ".join(f"{e} {entry[e]['seconds']:6.2f} s {entry[e]['peak_rss_bytes'] / 1e6:6.0f} MB"
                      for e in ENGINES)
    print(f"{name:24s} expects {entry['expected_load_bytes'] / 1e6:7.0f} MB | {both}"
          + (f" | {entry['check']}" if entry.get("check", "ok") != "ok" else ""))


ENGINES = ("in-memory", "streaming")


def groupby_queries(rows: int, runs: int) -> tuple[dict, int]:
    import polars as pl

    from workbench import datasets
    from workbench.engine.cpu import scanned_bytes

    path = Path(datasets.make("h2o_groupby", rows, k=100))
    results = {}
    for name, query in QUERIES.items():
        lf = eval(query, {"pl": pl, "q": pl.scan_parquet(str(path / "*.parquet"))})
        entry = {"query": query, "expected_load_bytes": scanned_bytes(lf)}
        for engine in ENGINES:
            entry[engine] = _child(CHILD.format(query=query, engine=engine, peak=PEAK), [str(path)], runs)
        results[name] = entry
        _say(name, entry)
    return results, sum(f.stat().st_size for f in path.glob("*.parquet"))


def corpus_queries(rows: int, runs: int, sources: str = "files") -> tuple[dict, int]:
    import os
    import tempfile

    import polars as pl

    import corpus as K
    import corpus_queries as C
    from workbench.engine.cpu import scanned_bytes

    paths = {n: K.files(p) for n, p in K.make_tables(rows).items()}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, q in C.QUERIES.items():
            lf = q.build({n: pl.scan_parquet(f) for n, f in paths.items()})
            entry = {"tables": list(q.tables), "expected_load_bytes": scanned_bytes(lf)}
            used = json.dumps({n: paths[n] for n in q.tables})
            for engine in ENGINES:
                code = CORPUS_CHILD.format(benchmarks=str(Path(__file__).parent), name=name,
                                           engine=engine, peak=PEAK, sources=sources)
                entry[engine] = _child(code, [used, os.path.join(tmp, engine)], runs)
            why = K.compare(pl.read_ipc(os.path.join(tmp, "in-memory")),
                            pl.read_ipc(os.path.join(tmp, "streaming")), q.ordered)
            entry["check"] = "ok" if why is None else why
            results[name] = entry
            _say(name, entry)
    return results, sum(os.path.getsize(f) for fs in paths.values() for f in fs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1e7")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--corpus", action="store_true", help="the analytic corpus's queries")
    ap.add_argument("--sources", choices=("files", "memory", "frames"), default="files",
                    help="with --corpus: scan the Parquet files, read them into memory first, "
                         "or into workbench Frames (run by workbench.collect)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)

    from workbench.bench.report import machine_info, versions, write_atomic

    rows = int(float(a.rows))
    if a.corpus:
        results, parquet_bytes = corpus_queries(rows, a.runs, a.sources)
    else:
        results, parquet_bytes = groupby_queries(rows, a.runs)
    totals = {e: sum(r[e]["seconds"] for r in results.values()) for e in ENGINES}
    print("total: " + ", ".join(f"{e} {t:.2f} s" for e, t in totals.items()))
    doc = {"benchmark": "cpu_streaming" + ("-corpus" if a.corpus else ""),
           "sources": a.sources if a.corpus else "files",
           "date": datetime.now(timezone.utc).isoformat(), "rows": rows,
           "parquet_bytes": parquet_bytes, "runs": a.runs, "queries": results,
           "totals_seconds": totals, "machine": machine_info(), "versions": versions()}
    write_atomic(a.out, json.dumps(doc, indent=1).encode())
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

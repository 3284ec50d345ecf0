"""Distinct values per group on the GPU: ``n_unique`` in the aggregation against the
distinct pairs counted per group.

``group_by(k).agg(pl.col(c).n_unique())`` and ``unique([k, c]).group_by(k).len()`` give
the same answer (a null counts as one value in both). The polars GPU engine runs each
its own way; this times both in device memory at a given row count, the groupby table's
shape (100 string keys ``id1``, ``rows / 100`` string values ``id3``), with polars on
the CPU beside them, best of ``--runs``.

    python benchmarks/n_unique_forms.py --rows 3.75e6 --out results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workbench.bench.report import machine_info, versions, write_atomic  # noqa: E402


def table(rows: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 101, rows)
    v = rng.integers(1, max(2, rows // 100) + 1, rows)
    return pl.DataFrame({"id1": k, "id3": v}).select(
        pl.format("id{}", pl.col("id1").cast(pl.String).str.zfill(3)).alias("id1"),
        pl.format("id{}", pl.col("id3").cast(pl.String).str.zfill(10)).alias("id3"))


FORMS = {
    "n_unique": lambda lf: lf.group_by("id1").agg(pl.col("id3").n_unique().alias("d")),
    "distinct_then_len": lambda lf: lf.unique(["id1", "id3"]).group_by("id1").agg(pl.len().alias("d")),
}


def best(fn, runs: int) -> tuple[float, pl.DataFrame]:
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, default=3.75e6)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    df = table(int(a.rows))
    engines = {"polars": "cpu"}
    try:
        import cudf_polars  # noqa: F401
        engines["gpu"] = pl.GPUEngine(raise_on_fail=True)
    except ImportError:
        pass
    results, answers = {}, {}
    for form, q in FORMS.items():
        for name, engine in engines.items():
            lf = q(df.lazy()).sort("id1")
            seconds, out = best(lambda: lf.collect(engine=engine), a.runs)
            results[f"{form}/{name}"] = seconds
            answers[f"{form}/{name}"] = out.with_columns(pl.col("d").cast(pl.Int64))
            print(f"{form:18s} {name:7s} {seconds * 1e3:8.2f} ms", flush=True)
    first = next(iter(answers.values()))
    same = all(out.equals(first) for out in answers.values())
    doc = {"benchmark": "n_unique_forms", "date": datetime.now(timezone.utc).isoformat(),
           "rows": int(a.rows), "runs": a.runs, "seconds": results, "answers_equal": same,
           "machine": machine_info(), "versions": versions()}
    write_atomic(a.out, json.dumps(doc, indent=2).encode())
    print("answers equal:", same)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

"""Where q6 and q8 spend their time on the GPU (1e8 rows): each formulation, warm.

q6 (median and std of v3 by id4, id5) and q8 (largest two v3 by id6) are most of
the workbench's groupby total. This times the parts and the alternatives side by
side, through ``workbench.collect`` (answers left on the device) and hand-written
cudf on the resident frame: median alone, std alone, both, the sort a median needs,
and other polars wordings of q8 (some the GPU engine does not support: recorded).

Usage: python benchmarks/formulations.py PARQUET_DIR --out formulations.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import polars as pl

import workbench as wb
from workbench.bench.engines import device_synchronize
from workbench.bench.report import write_atomic
from workbench.diagnostics.versions import stack_versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the h2o_groupby Parquet directory (e.g. 1e8 rows)")
    parser.add_argument("--out", default="formulations.json")
    args = parser.parse_args()

    session = wb.init(backend="gpu")
    out = {"benchmark": "formulations", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
           "gpu": session.hardware.gpu.name, "versions": stack_versions(), "times_s": {}}

    def timed(name, fn, runs=3):
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            try:
                fn()
                device_synchronize()
            except Exception as err:  # noqa: BLE001 - an unsupported wording is a result
                out["times_s"][name] = f"error: {err!r}"[:300]
                print(name, "error", flush=True)
                return
            times.append(time.perf_counter() - start)
        out["times_s"][name] = times
        print(name, [round(t, 4) for t in times], flush=True)

    frame = wb.Frame.from_parquet(args.data)
    out["rows"] = len(frame)
    x, k, v3 = frame.lazy(), ["id4", "id5"], pl.col("v3")

    def run(lf):
        return wb.collect(lf, as_frame=True, raise_on_fail=True)

    timed("wb q6 median+std", lambda: run(x.group_by(k).agg(v3.median().alias("m"), v3.std().alias("s"))))
    timed("wb q6 median only", lambda: run(x.group_by(k).agg(v3.median().alias("m"))))
    timed("wb q6 std only", lambda: run(x.group_by(k).agg(v3.std().alias("s"))))
    timed("wb q6 split+join", lambda: run(x.group_by(k).agg(v3.median().alias("m")).join(
        x.group_by(k).agg(v3.std().alias("s")), on=k, nulls_equal=True)))
    timed("wb q6 quantile linear", lambda: run(x.group_by(k).agg(
        v3.quantile(0.5, "linear").alias("m"), v3.std().alias("s"))))
    timed("wb sort id4,id5,v3", lambda: run(x.select(k + ["v3"]).sort(k + ["v3"])))
    valid = x.filter(v3.is_not_null()).select("id6", "v3")
    timed("wb q8 rank over", lambda: run(valid.filter(
        v3.rank("ordinal", descending=True).over("id6") <= 2)))
    timed("wb q8 sort+int_range over", lambda: run(valid.sort("v3", descending=True).filter(
        pl.int_range(pl.len()).over("id6") < 2)))
    timed("wb q8 top_k agg", lambda: run(x.group_by("id6").agg(
        v3.drop_nulls().top_k(2).alias("t")).explode("t")))
    gdf = frame.to_cudf(["id4", "id5", "id6", "v3"])
    timed("cudf q6 median+std", lambda: gdf.groupby(k, sort=False).agg({"v3": ["median", "std"]}))
    timed("cudf q6 median only", lambda: gdf.groupby(k, sort=False).agg({"v3": "median"}))
    timed("cudf q6 std only", lambda: gdf.groupby(k, sort=False).agg({"v3": "std"}))
    timed("cudf sort id4,id5,v3", lambda: gdf.sort_values(k + ["v3"]))

    path = Path(args.out)
    write_atomic(path, json.dumps(out, indent=1).encode())


if __name__ == "__main__":
    main()

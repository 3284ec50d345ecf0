"""Scale-out overhead: the same query and the same fit on a one-worker Dask cluster (one GPU
through dask-cuda, or CPU workers without a GPU) and in a single process. One run each.

    python benchmarks/scaleout.py --rows 1e7 --partitions 16 --out results/scaleout.json

The query is db-benchmark groupby q3 with a filter (sum v1, mean v3 by id3 where v1 > 1)
over Parquet the workers read; the fit is XGBoost on four features. Each timing includes
what a user waits for (cluster start-up is reported apart). Answers are compared too:
cluster and single process must agree, else the run says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

FEATURES = ["id4", "id5", "v1", "v2"]


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("polars", "dask", "distributed", "xgboost", "xgboost-cpu", "xgboost-cu13", "cudf-polars-cu13", "dask-cuda",
                 "rapidsmpf-cu13", "workbench"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - start, 4)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=2e6)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.rows < 1000 or args.partitions < 1 or args.trees < 1:
        parser.error("--rows must be at least 1000, --partitions and --trees positive")

    import xgboost

    import workbench as wb
    from workbench.datasets.partitioned import write_partitioned
    from workbench.engine.distributed import collect_on_cluster
    from workbench.ml.distributed import fit_on_cluster
    from workbench.ml.split import held_out

    session = wb.init()
    rows = int(args.rows)
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "device": session.hardware.gpu.name if session.gpu else platform.processor() or "cpu",
              "backend": session.backend, "versions": _versions(),
              "sizes": {"rows": rows, "partitions": args.partitions, "features": len(FEATURES),
                        "trees": args.trees}}
    with tempfile.TemporaryDirectory() as tmp:
        path = write_partitioned("h2o_groupby", Path(tmp) / "g", rows, args.partitions)
        lf = (pl.scan_parquet(f"{path}/*.parquet").filter(pl.col("v1") > 1)
              .group_by("id3").agg(pl.col("v1").sum(), pl.col("v3").mean()))
        single, t_single = _timed(lambda: wb.collect(lf))
        df = pl.read_parquet(f"{path}/*.parquet")
        train = df.filter(~pl.Series(held_out(0, len(df), 0.2, 0)))
        device = "cuda" if session.gpu else "cpu"
        ref, t_fit_single = _timed(lambda: xgboost.XGBRegressor(
            tree_method="hist", device=device, n_estimators=args.trees).fit(
            train.select(FEATURES).to_numpy().astype("float32"), train["v3"].to_numpy()))
        client, t_start = _timed(lambda: wb.cluster(n_workers=1))
        with client:
            got, t_cluster = _timed(lambda: collect_on_cluster(lf, client))
            fit, t_fit_cluster = _timed(lambda: fit_on_cluster(
                "xgboost_regressor", str(path), "v3", FEATURES, client, n_estimators=args.trees))
        X = df.select(FEATURES).to_numpy().astype("float32")[:10_000]
        same_query = got.sort("id3").equals(single.sort("id3")) or bool(np.allclose(
            got.sort("id3")["v3"].to_numpy(), single.sort("id3")["v3"].to_numpy(), rtol=1e-9))
        report["seconds"] = {"cluster_start": t_start, "query_single": t_single,
                             "query_cluster": t_cluster, "fit_single": t_fit_single,
                             "fit_cluster": t_fit_cluster}
        report["overhead"] = {"query": round(t_cluster / t_single, 2) if t_single else None,
                              "fit": round(t_fit_cluster / t_fit_single, 2) if t_fit_single else None}
        report["answers_agree"] = {
            "query": bool(same_query),
            "fit": bool(np.allclose(fit.estimator.predict(X), ref.predict(X), rtol=1e-5))}
        report["log"] = [m for _, m in wb.init().log if "cluster" in m or "collect" in m]
    text = json.dumps(report, indent=1)
    if args.out:
        from workbench.bench.report import write_atomic

        write_atomic(args.out, text.encode())
    print(text)
    return 0 if all(report["answers_agree"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

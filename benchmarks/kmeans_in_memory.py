"""k-means in device memory: cuml's KMeans against the streamed Lloyd passes over the
same matrix (one fused kernel per slice), side by side in one process.

The training benchmark's in-memory data (taxi, 2e7 rows by default), its features
standard-scaled on the device as ``wb.ml.fit`` scales them; both fits warm (each is
run once first), then timed, and the inertia of each answer on the same rows.

    python benchmarks/kmeans_in_memory.py --rows 2e7 --out kmeans_in_memory.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _timed(fit):
    import cupy as cp

    fit()  # warm: kernels compiled, pools grown
    cp.cuda.Device().synchronize()
    start = time.perf_counter()
    model = fit()
    cp.cuda.Device().synchronize()
    return model, time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=float, default=2e7)
    parser.add_argument("--data", choices=("taxi", "generated"), default="taxi")
    parser.add_argument("--clusters", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("kmeans_in_memory.json"))
    args = parser.parse_args(argv)
    import cupy as cp
    from cuml.cluster import KMeans

    import training
    import workbench as wb
    from workbench.ml.streamed_kmeans import StreamedKMeans

    session = wb.init(backend="gpu")
    df, features, _ = training.data(args.data, int(args.rows))
    X = wb.Frame.from_polars(df.select(features)).to_cupy(features).astype(cp.float32)
    X = (X - X.mean(0)) / X.std(0)
    k = args.clusters
    cuml_model, cuml_s = _timed(lambda: KMeans(n_clusters=k, random_state=0).fit(X))
    ours, ours_s = _timed(lambda: StreamedKMeans(n_clusters=k, random_state=0).fit(X))
    scorer = StreamedKMeans(n_clusters=k)
    scorer.n_features_in_ = X.shape[1]

    def inertia(centers):
        scorer.cluster_centers_ = cp.asnumpy(cp.asarray(centers, dtype=cp.float64))
        return -scorer.score(X)

    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "device": session.hardware.gpu.name, "versions": training.versions(),
           "data": args.data, "rows": int(X.shape[0]), "features": int(X.shape[1]), "clusters": k,
           "cuml": {"seconds": cuml_s, "inertia": inertia(cuml_model.cluster_centers_),
                    "n_iter": int(cuml_model.n_iter_)},
           "streamed_lloyd": {"seconds": ours_s, "inertia": inertia(ours.cluster_centers_),
                              "n_iter": int(ours.n_iter_)}}
    out["cuml_over_streamed"] = cuml_s / ours_s
    from workbench.bench.report import write_atomic

    write_atomic(args.out, json.dumps(out, indent=1).encode())  # complete or absent
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()

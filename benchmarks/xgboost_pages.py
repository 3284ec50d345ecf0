"""XGBoost's external memory beyond a budget: fit time against the size of its cache pages.

Under a GPU budget (default 512 MB) on the training benchmark's generated data (4.2x
the budget), the training chunks are recorded once into the host cache and the same
booster (50 trees) is fitted from them, after one warm-up fit, with cache pages of several shares of the
budget (``external_xgboost.PAGE_SHARE``), side by side in one process (the fit
with no budget is ``benchmarks/training.py``'s).

    python benchmarks/xgboost_pages.py --budget 512MB --out xgboost_pages.json
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="512MB")
    parser.add_argument("--times", type=float, default=4.2, help="data size over the budget")
    parser.add_argument("--shares", default="32,16,8,4", help="PAGE_SHARE values to try")
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from dask.utils import parse_bytes

    import training
    import workbench as wb
    from workbench.ml import external_xgboost
    from workbench.ml.chunks import FeatureChunks

    budget = parse_bytes(args.budget)
    rows = int(np.ceil(args.times * budget / 16))
    session = wb.init(backend="gpu", budget=args.budget)
    df = training.generated(rows)
    frame = wb.Frame.from_polars(df)
    features = [c for c in df.columns if c.startswith("x")]
    chunks = FeatureChunks(frame, features, "label", device=True, test_size=0.2,
                           part="train").cached(classes=2)
    n = sum(len(X) for X, _, _ in chunks)  # the recording pass: later fits replay
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "device": session.hardware.gpu.name,
           "budget": budget, "rows": rows, "train_rows": n, "chunk_bytes": chunks.chunk_bytes,
           "trees": args.trees, "versions": training.versions(), "fits": []}
    # Warm: the first fit of a process compiles kernels and starts XGBoost's pools.
    warm = FeatureChunks(wb.Frame.from_polars(df.head(200_000)), features, "label", device=True,
                         test_size=0.2, rows=65_536).cached(classes=2)
    external_xgboost.ExternalXGBoost("classification", n_classes=2, device=True,
                                     n_estimators=args.trees).fit(warm)
    for share in [int(s) for s in args.shares.split(",") if s]:
        external_xgboost.PAGE_SHARE = share
        start = time.perf_counter()
        model = external_xgboost.ExternalXGBoost("classification", n_classes=2, device=True,
                                                 n_estimators=args.trees).fit(chunks)
        took = time.perf_counter() - start
        row = {"page_share": share, "min_page_bytes": external_xgboost._page_bytes(chunks),
               "seconds": took, "rmm_peak_bytes": training._peak()}
        out["fits"].append(row)
        print(json.dumps(row), flush=True)
        del model
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

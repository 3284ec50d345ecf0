"""Training benchmark: ``wb.ml.fit`` on the GPU against the CPU libraries, side by side.

In one run, on the same data:

* in memory, at ``--rows`` (default 2e7; the ``taxi`` dataset's ``tipped`` from three
  numeric columns, or ``--data generated``): logistic regression, k-means, a random
  forest and XGBoost through ``wb.ml.fit(..., backend="gpu")`` (warm: each model is
  fitted once on a small frame first) against scikit-learn with all cores and XGBoost
  on the CPU, each fitted on the same training rows and scored on the same held-out rows;
* beyond the budget (``--budget``, GPU only): generated data at least 4x the budget,
  fitted in a child process whose session has that budget (out of core), and the same
  fit in this process with no budget; peak device memory from RMM's statistics.

Wall seconds are end to end: for ``wb.ml.fit`` the whole call (matrix, split, scaling,
fit, metrics); for the CPU libraries fit + predict + metric on ready NumPy arrays.
Without a GPU only the CPU columns run (CI smoke-tests it at 1e4 rows).

Usage: python benchmarks/training.py --rows 2e7 --budget 512MB --out results/training.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODELS = {  # name -> (wb.ml model, params, task)
    "logistic": ("logistic_regression", {"max_iter": 200}, "classification"),
    "kmeans": ("kmeans", {"n_clusters": 8, "max_iter": 50}, "clustering"),
    "random_forest": ("random_forest_classifier", {"n_estimators": 50, "max_depth": 12},
                      "classification"),
    "xgboost": ("xgboost_classifier", {"n_estimators": 100, "max_depth": 6}, "classification"),
}
BEYOND = ("logistic_regression", "linear_regression", "kmeans", "xgboost_classifier")
TAXI_FEATURES = ["trip_distance", "fare_amount", "passenger_count"]


def generated(rows: int, features: int = 3, seed: int = 0):
    """A numeric table with a known linear rule: ``label`` (0/1) and ``y``."""
    import polars as pl

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features), dtype=np.float32)
    w = np.linspace(1.0, -1.0, features, dtype=np.float32)
    score = X @ w + rng.standard_normal(rows, dtype=np.float32) * 0.5
    cols = {f"x{i}": X[:, i] for i in range(features)}
    return pl.DataFrame({**cols, "label": (score > 0).astype(np.int8), "y": score})


def data(kind: str, rows: int):
    """(polars frame, features, target) for the in-memory part."""
    import workbench as wb

    if kind == "taxi":
        trips = wb.datasets.load("taxi", rows=rows).to_polars()
        return trips.select(*TAXI_FEATURES, "tipped"), TAXI_FEATURES, "tipped"
    df = generated(rows)
    return df, [c for c in df.columns if c.startswith("x")], "label"


def _cpu_estimator(name: str, params: dict):
    if name == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(**params)
    if name == "kmeans":
        from sklearn.cluster import KMeans

        return KMeans(n_init=1, random_state=0, **params)
    if name == "random_forest_classifier":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_jobs=-1, random_state=0, **params)
    if name == "linear_regression":
        from sklearn.linear_model import LinearRegression

        return LinearRegression(**params)
    from xgboost import XGBClassifier

    return XGBClassifier(tree_method="hist", n_jobs=os.cpu_count(), **params)


def cpu_library(df, features, target, name, params, task) -> dict:
    """The CPU library itself on the held-out split of ``wb.ml``: fit, predict, one metric."""
    from sklearn import metrics

    from workbench.ml.split import held_out

    X = df.select(features).to_numpy().astype(np.float32)
    y = None if target is None else df[target].to_numpy()
    test = held_out(0, len(df), 0.2, 0)
    if name in ("logistic_regression", "kmeans", "linear_regression"):  # scaled, as wb.ml does
        mean, std = X[~test].mean(axis=0), X[~test].std(axis=0)
        X = (X - mean) / np.where(std == 0, 1, std)
    est = _cpu_estimator(name, params)
    start = time.perf_counter()
    if task == "clustering":
        est.fit(X[~test])
        score = {"inertia": float(-est.score(X[test]))}
    else:
        y = y.astype(np.int32) if task == "classification" else y
        est.fit(X[~test], y[~test])
        predicted = est.predict(X[test])
        score = ({"accuracy": float(metrics.accuracy_score(y[test], predicted))}
                 if task == "classification" else {"r2": float(metrics.r2_score(y[test], predicted))})
    return {"seconds": time.perf_counter() - start, "metrics": score}


def gpu_fit(frame, features, target, name, params) -> dict:
    import workbench as wb

    start = time.perf_counter()
    m = wb.ml.fit(frame, None if name == "kmeans" else target, features, model=name,
                  backend="gpu", **params)
    return {"seconds": time.perf_counter() - start, "phases": m.seconds, "metrics": m.metrics,
            "out_of_core": m.out_of_core, "peak_bytes": _peak()}


def _peak():
    from workbench import memory

    stats = memory.device_memory_stats()
    return None if stats is None else stats["peak_bytes"]


def in_memory(args, session) -> dict:
    import workbench as wb

    df, features, target = data(args.data, args.rows)
    frame = wb.Frame.from_polars(df)
    out = {}
    warm = wb.Frame.from_polars(df.head(100_000)) if session.gpu else None
    for key in args.models:
        name, params, task = MODELS[key]
        row = {"model": name}
        if session.gpu:
            gpu_fit(warm, features, target, name, params)  # first-call start-up paid here
            row["gpu"] = gpu_fit(frame, features, target, name, params)
        row["cpu"] = cpu_library(df, features, target if task != "clustering" else None, name, params,
                                 task)
        if "gpu" in row:
            row["speedup"] = row["cpu"]["seconds"] / row["gpu"]["seconds"]
        out[key] = row
        print(f"{key:14} " + "  ".join(f"{k} {v['seconds']:.2f} s" for k, v in row.items()
                                        if isinstance(v, dict))
              + (f"  x{row['speedup']:.1f}" if "speedup" in row else ""), flush=True)
    return out


CHILD = """
import json, sys, time
sys.path.insert(0, {here!r})
import training, workbench as wb
s = wb.init(backend="gpu", budget={budget!r})
df = training.generated({rows})
frame = wb.Frame.from_polars(df)
features = [c for c in df.columns if c.startswith("x")]
out = {{"resident_limit": s.resident_limit}}
for name in {models!r}:
    target = "y" if name == "linear_regression" else "label"
    training.warm(name, target)
    with training.profiled({profile!r}, name):
        out[name] = training.gpu_fit(frame, features, target, name, training.BEYOND_PARAMS[name])
print(json.dumps(out))
"""


@contextlib.contextmanager
def profiled(folder: str | None, name: str):
    """Profile the block (cProfile) into ``folder/name.txt``, the top calls by cumulative
    time: where a budgeted fit waits, which the phase timings do not say."""
    if not folder:
        yield
        return
    import cProfile
    import io
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(40)
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.txt").write_text(text.getvalue())
BEYOND_PARAMS = {"logistic_regression": {"max_iter": 100}, "linear_regression": {},
                 "kmeans": {"n_clusters": 8, "max_iter": 20}, "xgboost_classifier": {"n_estimators": 50}}


def warm(name: str, target: str) -> None:
    """Pay the first-call costs of ``name`` (CUDA libraries, kernel compilation) on a
    small frame, in memory and streamed, so the timed fits are warm on both sides."""
    from workbench.ml import beyond, targets
    from workbench.ml.chunks import FeatureChunks
    from workbench.ml.outofcore import _TASKS, MANY_PASSES, fit_streaming

    import workbench as wb

    df = generated(200_000, seed=1)
    frame = wb.Frame.from_polars(df)
    features = [c for c in df.columns if c.startswith("x")]
    gpu_fit(frame, features, target, name, BEYOND_PARAMS[name])
    # The streamed path as beyond.fit takes it (labels, cached pass, held-out metrics)
    # in small chunks: its kernels are compiled here, not in the timed fit.
    task = _TASKS[name]
    labels = targets.labels_of(frame, target, device=True) if task == "classification" else None
    n_classes = len(labels) if labels else None
    chunks = FeatureChunks(frame, features, None if task == "clustering" else target, device=True,
                           encode=labels.encode if labels else None, test_size=0.2, rows=65_536)
    if name in MANY_PASSES:
        chunks = chunks.cached(classes=n_classes, held_out=True)
    model = fit_streaming(name, chunks, task=task, n_classes=n_classes, device=True,
                          params=BEYOND_PARAMS[name])
    beyond.stream_metrics(model, task, chunks.held_out_part(), n_classes=n_classes or 0)


def beyond_budget(args) -> dict:
    """Out of core under ``--budget`` in a child process, against the same fit with none."""
    from dask.utils import parse_bytes

    import workbench as wb

    budget = parse_bytes(args.budget)
    rows = int(np.ceil(args.times * budget / ((3 + 1) * 4)))
    code = CHILD.format(here=str(Path(__file__).parent), budget=args.budget, rows=rows,
                        models=args.beyond_models, profile=args.profile)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"the beyond-budget child failed:\n{run.stderr[-4000:]}")
    child = json.loads(run.stdout.strip().splitlines()[-1])
    df = generated(rows)
    frame = wb.Frame.from_polars(df)
    features = [c for c in df.columns if c.startswith("x")]
    out = {"budget": budget, "rows": rows, "feature_bytes": rows * 3 * 4,
           "resident_limit": child.pop("resident_limit"), "models": {}}
    for name in args.beyond_models:
        target = "y" if name == "linear_regression" else "label"
        warm(name, target)
        free = gpu_fit(frame, features, target, name, BEYOND_PARAMS[name])
        row = {"budget": child[name], "no_budget": free,
               "time_ratio": child[name]["seconds"] / free["seconds"]}
        if args.beyond_cpu:
            task = {"linear_regression": "regression", "kmeans": "clustering"}.get(name, "classification")
            row["cpu"] = cpu_library(df, features, None if task == "clustering" else target, name,
                                     BEYOND_PARAMS[name], task)
            row["speedup_vs_cpu"] = row["cpu"]["seconds"] / child[name]["seconds"]
        out["models"][name] = row
        print(f"beyond {name:20} budget {child[name]['seconds']:.2f} s (out of core "
              f"{child[name]['out_of_core']}, peak {child[name]['peak_bytes']:,}), no budget "
              f"{free['seconds']:.2f} s", flush=True)
    return out


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("workbench", "numpy", "polars", "scikit-learn", "xgboost", "xgboost-cpu",
                 "xgboost-cu13", "cuml-cu13", "cudf-cu13", "cupy-cuda13x", "rmm-cu13"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=float, default=2e7)
    parser.add_argument("--data", choices=("taxi", "generated"), default="taxi")
    parser.add_argument("--models", default=",".join(MODELS), help=f"of {','.join(MODELS)}")
    parser.add_argument("--budget", default="512MB", help="GPU budget of the beyond-budget runs; "
                        "'none' skips them")
    parser.add_argument("--times", type=float, default=4.2, help="data size over the budget")
    parser.add_argument("--beyond-cpu", action="store_true", help="also the CPU library beyond the budget")
    parser.add_argument("--beyond-models", default=",".join(BEYOND), help=f"of {','.join(BEYOND)}")
    parser.add_argument("--profile", default=None, help="folder for a cProfile summary of each "
                        "budgeted fit")
    parser.add_argument("--out", type=Path, default=Path("training.json"))
    args = parser.parse_args(argv)
    args.rows = int(args.rows)
    args.models = [m for m in args.models.split(",") if m]
    args.beyond_models = [m for m in args.beyond_models.split(",") if m]
    if set(args.beyond_models) - set(BEYOND):
        parser.error(f"unknown beyond-budget model(s); choose from {', '.join(BEYOND)}")
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    import workbench as wb

    session = wb.init()
    gpu = session.hardware.gpu
    result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "device": gpu.name if session.gpu else "cpu", "platform": session.hardware.platform,
              "cpu_cores": os.cpu_count(), "versions": versions(), "rows": args.rows,
              "data": args.data, "features": 3, "in_memory": in_memory(args, session)}
    if session.gpu:
        result["peak_device_bytes"] = _peak()
        if args.budget.lower() != "none":
            result["beyond_budget"] = beyond_budget(args)
    from workbench.bench.report import write_atomic

    write_atomic(args.out, json.dumps(result, indent=2).encode())  # complete or absent
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

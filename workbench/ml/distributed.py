"""Training across the workers of a Dask cluster, with the libraries made for it.

* XGBoost: ``xgboost.dask`` (``device="cuda"`` on GPU workers, the CPU otherwise): each
  worker builds its histogram from its own partitions and the trees are agreed by
  allreduce, so with the same held-out rows and parameters the model is the one a
  single process grows (exactly, when no feature has more distinct values than
  ``max_bin``; else the quantile sketch differs slightly).
* On GPU workers, cuML's Dask estimators: ``cuml.dask.linear_model.LinearRegression``,
  ``Ridge``, ``LogisticRegression`` and ``cuml.dask.cluster.KMeans``.

The held-out rows are those of :func:`workbench.ml.split.held_out` over the global row
positions (each partition's first row is counted first), so a cluster fit trains and
tests on the same rows as an in-memory or a streamed fit. Each partition is turned into
its float32 feature block and encoded target on its worker, where the data is
(:func:`_train_part`); that is the step :class:`workbench.ml.chunks.FeatureChunks` does
for one process, and the two should share it once chunks take a first-row offset.

The estimator returned is an ordinary single-process one (an ``XGBClassifier`` /
``XGBRegressor`` loaded from the trained booster, or cuML's ``get_combined_model()``),
which a :class:`~workbench.ml.Model` holds and predicts with anywhere.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import polars as pl

from workbench.engine.distributed import describe_workers, retry_lost_workers
from workbench.ml import prep, targets
from workbench.ml.model import Model
from workbench.ml.split import held_out
from workbench.session import current_session

#: name -> (task, library); cuml ones run on GPU workers only
CLUSTER_MODELS = {
    "xgboost_classifier": ("classification", "xgboost.dask.DaskXGBClassifier"),
    "xgboost_regressor": ("regression", "xgboost.dask.DaskXGBRegressor"),
    "linear_regression": ("regression", "cuml.dask.linear_model.LinearRegression"),
    "ridge": ("regression", "cuml.dask.linear_model.Ridge"),
    "logistic_regression": ("classification", "cuml.dask.linear_model.LogisticRegression"),
    "kmeans": ("clustering", "cuml.dask.cluster.KMeans"),
}
CPU_MODELS = ("xgboost_classifier", "xgboost_regressor")
#: seconds XGBoost's workers wait on each other before a collective call fails
COLLECTIVE_TIMEOUT = 300
_Y = "__workbench_target__"


def fit_on_cluster(model: str, data, target: str | None, features=None, client=None, *,
                   test_size: float = 0.2, seed: int = 0, **params) -> Model:
    """Train ``model`` across the workers of ``client`` and score it on the held-out rows.

    Parameters
    ----------
    model : str
        One of :data:`CLUSTER_MODELS`, or ``"xgboost"`` (classifier or regressor from
        the target's dtype).
    data : Parquet path(s), dask DataFrame, Frame, polars or pandas DataFrame
        Paths are read by the workers; an in-memory table is sent to them in partitions.
    target, features : the target column (None for k-means) and the feature columns
        (default: every other column).
    client : distributed.Client
    test_size, seed : the held-out share and the seed of :func:`held_out`.
    **params : passed to the estimator.
    """
    from workbench.engine.distributed import _check_client

    _check_client(client)
    if not 0 <= test_size < 1:
        raise ValueError(f"test_size must be in [0, 1); got {test_size}")
    session = current_session()
    workers = describe_workers(client)
    gpu = bool(workers) and all(w["gpu"] for w in workers.values())
    start = time.perf_counter()
    ddf = _as_dask(data, client)
    if gpu:
        ddf = _to_cudf(ddf)
    columns = list(ddf.columns)
    model = _resolve(model, ddf, target)
    task, path = CLUSTER_MODELS[model]
    if task != "clustering" and target is None:
        raise ValueError(f"{model} needs a target column; pass target=")
    if target is not None and target not in columns:
        raise ValueError(f"the target {target!r} is not a column; columns: {', '.join(columns)}")
    features = list(features) if features is not None else [c for c in columns if c != target]
    if target in features:
        raise ValueError(f"the target {target!r} is also listed as a feature")
    if missing := [c for c in features if c not in columns]:
        raise ValueError(f"feature columns {missing} are not in the data; columns: {', '.join(columns)}")
    if not gpu and model not in CPU_MODELS:
        raise ValueError(f"{model} runs across workers on GPU workers only (cuML's Dask estimators); "
                         f"on CPU workers use {' or '.join(CPU_MODELS)}, or fit in one process")
    ddf = ddf[features + ([target] if target is not None else [])]
    starts = _starts(ddf)
    classes = _classes(ddf, target, model) if task == "classification" else None
    split = {"features": features, "target": target, "classes": classes, "starts": starts,
             "test_size": test_size, "seed": seed}
    # meta from the empty partition: dask's made-up rows hold labels outside ``classes``.
    train = ddf.map_partitions(_train_part, part="train", **split,
                               meta=_train_part(ddf._meta, part="train", **split))
    seconds = {"prepare": time.perf_counter() - start}

    start = time.perf_counter()
    if path.startswith("xgboost"):
        fit = lambda: _fit_xgboost(path, train, features, client, gpu, params)  # noqa: E731
    else:
        fit = lambda: _fit_cuml(path, train, features, task, client, params)  # noqa: E731
    estimator = retry_lost_workers(client, fit, what=f"fit {model} on the cluster")
    seconds["fit"] = time.perf_counter() - start

    start = time.perf_counter()
    part = "test" if test_size > 0 else "train"
    scored = ddf.map_partitions(_score_part, estimator, task, part=part, **split,
                                meta=_score_part(ddf._meta, estimator, task, part=part, **split))
    sums = retry_lost_workers(client, lambda: client.compute(scored.sum()).result(),
                              what="score on the cluster")
    metrics, n_test = _metrics(task, sums)
    n_train = int(starts[-1]) - (n_test if test_size > 0 else 0)
    seconds["evaluate"] = time.perf_counter() - start
    backend = "gpu" if gpu else "cpu"
    note = (f"ml.fit {model} on {len(workers)} {backend.upper()} workers "
            f"({path.rsplit('.', 1)[0]}): fit {seconds['fit']:.3f} s")
    session.note(note)
    # The same Model as a single-process fit: it predicts anywhere, labels decoded.
    labels = targets.Labels(pl.Series(classes)) if classes is not None else None
    return Model(estimator, model, backend, task, list(features), target,
                 None if labels is None else labels.classes_, metrics, seconds,
                 n_train=n_train, n_test=n_test if test_size > 0 else 0, notes=[note],
                 recipe=prep.Recipe(list(features), {}), labels=labels)


def _resolve(model, ddf, target) -> str:
    if not isinstance(model, str):
        raise TypeError(f"on a cluster the model is a name ({', '.join(CLUSTER_MODELS)}), "
                        f"got {type(model).__name__}")
    if model == "xgboost":
        if target is None:
            raise ValueError("xgboost needs a target column; pass target=")
        return "xgboost_regressor" if ddf[target].dtype.kind == "f" else "xgboost_classifier"
    if model not in CLUSTER_MODELS:
        raise ValueError(f"model must be one of {', '.join(CLUSTER_MODELS)} or 'xgboost' on a "
                         f"cluster; got {model!r}")
    return model


def _as_dask(data, client):
    import dask.dataframe as dd

    if isinstance(data, dd.DataFrame):
        return data
    if isinstance(data, (str, os.PathLike)) or (isinstance(data, (list, tuple)) and data
                                                 and all(isinstance(p, (str, os.PathLike)) for p in data)):
        paths = [os.fspath(p) for p in data] if isinstance(data, (list, tuple)) else os.fspath(data)
        return dd.read_parquet(paths)
    if hasattr(data, "to_polars"):  # a workbench Frame
        data = data.to_polars()
    if hasattr(data, "to_pandas") and not hasattr(data, "iloc"):  # polars
        data = data.to_pandas()
    if not hasattr(data, "iloc"):
        raise TypeError(f"data must be Parquet path(s), a dask, polars or pandas DataFrame or a "
                        f"workbench Frame; got {type(data).__name__}")
    workers = max(len(client.scheduler_info(n_workers=-1)["workers"]), 1)
    return dd.from_pandas(data, npartitions=min(2 * workers, max(len(data), 1)), sort=False)


def _to_cudf(ddf):
    import dask_cudf  # noqa: F401 - registers the cudf backend of dask.dataframe

    return ddf.to_backend("cudf")


def _starts(ddf) -> np.ndarray:
    """The global position of each partition's first row, and the row count last."""
    lengths = ddf.map_partitions(len).compute()
    return np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))])


def _classes(ddf, target: str, model: str) -> np.ndarray:
    kind = ddf[target].dtype.kind
    if kind == "f":
        raise ValueError(f"{model} is a classifier and the target {target!r} is float; cast it "
                         "to integer or string labels first, or use a regressor")
    values = ddf[target].dropna().unique().compute()
    values = values.to_pandas() if hasattr(values, "to_pandas") else values
    return np.sort(np.asarray(values))


def _rows(df, *, part, starts, test_size, seed, partition_info=None, **_):
    number = partition_info["number"] if partition_info else 0
    mask = held_out(int(starts[number]), int(starts[number]) + len(df), test_size, seed)
    keep = mask if part == "test" else ~mask
    return df[keep]


def _train_part(df, *, features, target, classes, part, partition_info=None, **split):
    """One partition's rows of ``part``: float32 features and the encoded target."""
    df = _rows(df, part=part, partition_info=partition_info, **split)
    out = df[features].astype("float32")
    if target is not None:
        y = df[target]
        out[_Y] = (y.map({c: i for i, c in enumerate(classes.tolist())}).astype("int32")
                   if classes is not None else y.astype("float32"))
    return out


def _fit_xgboost(path: str, train, features, client, gpu: bool, params: dict):
    import xgboost
    import xgboost.dask
    from xgboost.collective import Config

    cls = xgboost.dask.DaskXGBClassifier if path.endswith("Classifier") else xgboost.dask.DaskXGBRegressor
    options = {"tree_method": "hist", **params, "device": "cuda" if gpu else "cpu"}
    est = cls(coll_cfg=Config(timeout=COLLECTIVE_TIMEOUT), **options)
    est.client = client
    est.fit(train[features], train[_Y])
    local = (xgboost.XGBClassifier if path.endswith("Classifier") else xgboost.XGBRegressor)()
    with tempfile.TemporaryDirectory() as tmp:  # the sklearn metadata travels with the file
        est.save_model(os.path.join(tmp, "model.ubj"))
        local.load_model(os.path.join(tmp, "model.ubj"))
    return local


def _fit_cuml(path: str, train, features, task: str, client, params: dict):
    import importlib

    module, name = path.rsplit(".", 1)
    est = getattr(importlib.import_module(module), name)(client=client, **params)
    if task == "clustering":
        est.fit(train[features])
    else:
        est.fit(train[features], train[_Y])
    return est.get_combined_model()


def _score_part(df, estimator, task, *, features, target, classes, part, partition_info=None,
                **split):
    """Sums from which the metrics of one partition's held-out rows add up."""
    import pandas as pd

    rows = _train_part(df, features=features, target=target, classes=classes, part=part,
                       partition_info=partition_info, **split)
    rows = rows.to_pandas() if hasattr(rows, "to_pandas") else rows
    X = rows[features]
    out = dict.fromkeys(("n", "correct", "sse", "sy", "syy", "inertia"), 0.0)
    out["n"] = float(len(rows))
    if task == "clustering":
        centers = np.asarray(_host(estimator.cluster_centers_), dtype=np.float64)
        d = ((X.to_numpy(np.float64)[:, None, :] - centers[None]) ** 2).sum(-1) if len(X) else np.zeros((0, 1))
        out["inertia"] = float(d.min(axis=1).sum()) if len(X) else 0.0
    elif len(rows):
        predicted = np.asarray(_host(estimator.predict(X)), dtype=np.float64)
        y = rows[_Y].to_numpy(np.float64)
        if task == "classification":
            out["correct"] = float((predicted == y).sum())
        else:
            out.update(sse=float(((predicted - y) ** 2).sum()), sy=float(y.sum()), syy=float((y * y).sum()))
    frame = pd.DataFrame([out])
    if hasattr(df, "to_pandas"):  # keep the partition's backend (cudf on GPU workers)
        import cudf

        return cudf.from_pandas(frame)
    return frame


def _metrics(task: str, sums) -> tuple[dict, int]:
    sums = sums.to_pandas() if hasattr(sums, "to_pandas") else sums
    get = lambda k: float(sums.get(k, 0.0))  # noqa: E731
    n = get("n")
    if task == "clustering":
        return {"inertia": get("inertia")}, int(n)
    if not n:
        return {}, 0
    if task == "classification":
        return {"accuracy": get("correct") / n}, int(n)
    total = get("syy") - get("sy") ** 2 / n
    return {"r2": 1 - get("sse") / total if total else float("nan"),
            "rmse": float(np.sqrt(get("sse") / n))}, int(n)


def _host(a):
    return a.get() if hasattr(a, "get") else (a.to_numpy() if hasattr(a, "to_numpy") else np.asarray(a))

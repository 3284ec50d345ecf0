"""Fit and evaluate models on the GPU (cuml) or the CPU (scikit-learn) from Frames.

The same call runs on either: features come from the frame as a float32 matrix
(``Frame.to_cupy`` on the GPU, reusing the resident columns; ``Frame.to_numpy`` on
the CPU), the split is the same seeded permutation, and the metrics are computed
the same way, so CPU and GPU results can be compared directly.

>>> import numpy as np, polars as pl, workbench as wb
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=2000)
>>> f = wb.Frame.from_polars(pl.DataFrame({"x": x, "y": (x > 0).astype(np.int32)}))
>>> r = wb.ml.fit(f, target="y", model="logistic_regression", backend="cpu")
>>> r.metrics["accuracy"] > 0.95
True
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from workbench.session import current_session

# name -> (task, scikit-learn class path, cuml class path)
MODELS = {
    "logistic_regression": ("classification", "sklearn.linear_model.LogisticRegression",
                            "cuml.linear_model.LogisticRegression"),
    "linear_regression": ("regression", "sklearn.linear_model.LinearRegression",
                          "cuml.linear_model.LinearRegression"),
    "random_forest_classifier": ("classification", "sklearn.ensemble.RandomForestClassifier",
                                 "cuml.ensemble.RandomForestClassifier"),
    "random_forest_regressor": ("regression", "sklearn.ensemble.RandomForestRegressor",
                                "cuml.ensemble.RandomForestRegressor"),
    "kmeans": ("clustering", "sklearn.cluster.KMeans", "cuml.cluster.KMeans"),
}


@dataclass
class FitResult:
    """A fitted model with where it ran, how long it took and how well it did."""

    model: object
    model_name: str
    backend: str
    features: list[str]
    target: str | None
    metrics: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    n_train: int = 0
    n_test: int = 0

    def __str__(self) -> str:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in self.metrics.items())
        return (f"{self.model_name} on {self.backend}: {metrics} "
                f"(fit {self.seconds.get('fit', 0):.2f} s, {self.n_train:,} train rows)")


def _load(path: str):
    import importlib

    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _split(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = n - int(round(n * test_size))
    return np.sort(order[:cut]), np.sort(order[cut:])


def fit(frame, target: str | None, features: list[str] | None = None, *,
        model: str = "logistic_regression", backend: str | None = None,
        test_size: float = 0.2, seed: int = 0, **params) -> FitResult:
    """Train ``model`` on ``frame`` and evaluate it on a held-out split.

    Parameters
    ----------
    frame : Frame
        Numeric feature columns (encode strings first) and the target.
    target : str or None
        Target column; None for clustering.
    features : list of str, optional
        Feature columns; default every column but the target.
    model : str
        One of :data:`MODELS`.
    backend : {"gpu", "cpu"}, optional
        Default: the session's backend.
    test_size, seed :
        Held-out share and the seed of the split (same split on CPU and GPU).
    **params :
        Passed to the estimator (e.g. ``n_estimators=100``).
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    if not 0 <= test_size < 1:
        raise ValueError(f"test_size must be in [0, 1); got {test_size}")
    session = current_session()
    backend = backend or session.backend
    if backend not in ("gpu", "cpu"):
        raise ValueError(f"backend must be 'gpu' or 'cpu'; got {backend!r}")
    if backend == "gpu" and not session.gpu:
        session.fallback(f"ml.fit({model})", session._why_cpu())
        backend = "cpu"
    task, cpu_path, gpu_path = MODELS[model]
    if task != "clustering" and target is None:
        raise ValueError(f"{model} needs a target column")
    features = list(features) if features is not None else [c for c in frame.columns if c != target]
    if target in features:
        raise ValueError(f"the target {target!r} is also listed as a feature")

    seconds = {}
    start = time.perf_counter()
    gpu = backend == "gpu"
    matrix = frame.to_cupy if gpu else frame.to_numpy
    X = matrix(features, dtype="float32")
    y = None
    if target is not None:
        y = matrix([target], dtype="int32" if task == "classification" else "float32")[:, 0]
    seconds["prepare"] = time.perf_counter() - start

    train, test = _split(len(frame), test_size, seed)
    if gpu:
        import cupy as cp

        train, test = cp.asarray(train), cp.asarray(test)
    estimator = _load(gpu_path if gpu else cpu_path)(**params)
    start = time.perf_counter()
    if task == "clustering":
        estimator.fit(X[train])
    else:
        estimator.fit(X[train], y[train])
    seconds["fit"] = time.perf_counter() - start

    start = time.perf_counter()
    metrics = _evaluate(estimator, task, X[test] if len(test) else X[train],
                        None if y is None else (y[test] if len(test) else y[train]))
    seconds["evaluate"] = time.perf_counter() - start
    session.note(f"ml.fit {model} on {backend}: fit {seconds['fit']:.3f} s")
    return FitResult(estimator, model, backend, features, target, metrics, seconds,
                     n_train=len(train), n_test=len(test))


def _host(a) -> np.ndarray:
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _evaluate(estimator, task: str, X, y) -> dict:
    """Metrics computed on the host with scikit-learn, the same for both backends."""
    from sklearn import metrics

    if task == "clustering":
        labels = _host(estimator.predict(X))
        return {"inertia": float(_host(getattr(estimator, "inertia_", np.nan))),
                "clusters": float(len(np.unique(labels)))}
    predicted = _host(estimator.predict(X))
    truth = _host(y)
    if task == "regression":
        return {"r2": float(metrics.r2_score(truth, predicted)),
                "rmse": float(np.sqrt(metrics.mean_squared_error(truth, predicted)))}
    out = {"accuracy": float(metrics.accuracy_score(truth, predicted))}
    if hasattr(estimator, "predict_proba") and len(np.unique(truth)) == 2:
        proba = _host(estimator.predict_proba(X))
        out["auc"] = float(metrics.roc_auc_score(truth, np.asarray(proba)[:, 1]))
    return out

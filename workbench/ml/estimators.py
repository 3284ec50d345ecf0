"""Which estimator runs: the model names, and scikit-learn estimators on the GPU.

A name (:data:`MODELS`) picks scikit-learn, cuml or XGBoost by backend (k-means on the
GPU: the workbench's own Lloyd passes, faster than cuml's there). An estimator
object is cloned (the caller's stays unfitted) and, on the GPU, a scikit-learn one is
replaced by its cuml equivalent with the same parameters, as ``cuml.accel`` does; one
without an equivalent, or with a parameter cuml does not take, runs on the CPU.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field

from workbench.optional import import_optional


@dataclass(frozen=True)
class Spec:
    task: str  # "classification" | "regression" | "clustering"
    cpu: str
    gpu: str
    scale: bool  # standard-scale the features by default (solvers and distances need it)
    defaults: dict = field(default_factory=dict)


_XGB_CPU = {"tree_method": "hist", "n_jobs": -1}
_XGB_GPU = {"tree_method": "hist", "device": "cuda"}

MODELS: dict[str, Spec] = {
    "logistic_regression": Spec("classification", "sklearn.linear_model.LogisticRegression",
                                "cuml.linear_model.LogisticRegression", True),
    "linear_regression": Spec("regression", "sklearn.linear_model.LinearRegression",
                              "cuml.linear_model.LinearRegression", True),
    "ridge": Spec("regression", "sklearn.linear_model.Ridge", "cuml.linear_model.Ridge", True),
    "random_forest_classifier": Spec("classification", "sklearn.ensemble.RandomForestClassifier",
                                     "cuml.ensemble.RandomForestClassifier", False),
    "random_forest_regressor": Spec("regression", "sklearn.ensemble.RandomForestRegressor",
                                    "cuml.ensemble.RandomForestRegressor", False),
    # On the GPU, Lloyd's passes as one fused kernel each (streamed_kmeans): 8.6x cuml's
    # KMeans on the same device matrix (benchmarks/kmeans_in_memory.py, 2e7 rows, k=8).
    "kmeans": Spec("clustering", "sklearn.cluster.KMeans",
                   "workbench.ml.streamed_kmeans.StreamedKMeans", True),
    "xgboost_classifier": Spec("classification", "xgboost.XGBClassifier", "xgboost.XGBClassifier",
                               False),
    "xgboost_regressor": Spec("regression", "xgboost.XGBRegressor", "xgboost.XGBRegressor", False),
    "xgboost": Spec("auto", "xgboost", "xgboost", False),  # classifier or regressor by target
}

# scikit-learn class -> cuml class, where cuml has one (cuml.accel's list, for fit/predict).
CUML_EQUIVALENTS = {
    "sklearn.linear_model.LogisticRegression": "cuml.linear_model.LogisticRegression",
    "sklearn.linear_model.LinearRegression": "cuml.linear_model.LinearRegression",
    "sklearn.linear_model.Ridge": "cuml.linear_model.Ridge",
    "sklearn.linear_model.Lasso": "cuml.linear_model.Lasso",
    "sklearn.linear_model.ElasticNet": "cuml.linear_model.ElasticNet",
    "sklearn.ensemble.RandomForestClassifier": "cuml.ensemble.RandomForestClassifier",
    "sklearn.ensemble.RandomForestRegressor": "cuml.ensemble.RandomForestRegressor",
    "sklearn.cluster.KMeans": "cuml.cluster.KMeans",
    "sklearn.cluster.DBSCAN": "cuml.cluster.DBSCAN",
    "sklearn.neighbors.KNeighborsClassifier": "cuml.neighbors.KNeighborsClassifier",
    "sklearn.neighbors.KNeighborsRegressor": "cuml.neighbors.KNeighborsRegressor",
    "sklearn.svm.SVC": "cuml.svm.SVC",
    "sklearn.svm.SVR": "cuml.svm.SVR",
    "sklearn.decomposition.PCA": "cuml.decomposition.PCA",
    "sklearn.decomposition.TruncatedSVD": "cuml.decomposition.TruncatedSVD",
    "sklearn.preprocessing.StandardScaler": "cuml.preprocessing.StandardScaler",
    "sklearn.preprocessing.MinMaxScaler": "cuml.preprocessing.MinMaxScaler",
}
# Parameters that say how scikit-learn schedules work, not what it learns.
_SCHEDULING = {"n_jobs", "verbose", "copy_X", "copy_x", "warm_start"}
# scikit-learn estimators whose n_jobs does nothing (and warns when set).
_NO_N_JOBS = {"LogisticRegression"}


def load(path: str):
    """The class at a dotted path, with the install hint when its package is missing."""
    module, name = path.rsplit(".", 1)
    return getattr(import_optional(module, f"the {name} model"), name)


def unknown_model(model) -> ValueError:
    return ValueError(f"unknown model {model!r}; use one of {', '.join(MODELS)}, or pass an "
                      "estimator object (scikit-learn, cuml or XGBoost, or a sklearn Pipeline)")


def spec_for(name: str, target_kind: str | None) -> tuple[str, Spec]:
    """The spec of a model name; "xgboost" becomes the classifier or regressor by target."""
    if name not in MODELS:
        raise unknown_model(name)
    if name == "xgboost":
        name = "xgboost_regressor" if target_kind == "float" else "xgboost_classifier"
    return name, MODELS[name]


#: up to this many features scikit-learn's logistic regression uses Newton-Cholesky
#: (a few exact Newton steps; its Hessian costs features² per row)
NEWTON_FEATURES = 64


#: cuml's forests size their node workspace from max_batch_size (default 4096 nodes a
#: batch, per stream) whatever the data; under a small budget an allocation from the
#: tree builders' own threads cannot become a Python error, so it is made smaller
FOREST_BATCH_BUDGET = 1 << 30


def build(spec: Spec, gpu: bool, params: dict, seed: int, width: int = 0,
          budget: int | None = None):
    """A fresh estimator for a model name, with workbench defaults under the caller's params."""
    cls = load(spec.gpu if gpu else spec.cpu)
    accepted = _parameters(cls)
    defaults = dict(_XGB_GPU if gpu else _XGB_CPU) if spec.cpu.startswith("xgboost") else {}
    if "random_state" in accepted and not (gpu and "ensemble" in spec.gpu):
        # The same model from the same call (cuml's forests warn that a seed is not
        # enough with several streams, so they keep their own).
        defaults["random_state"] = seed
    if not gpu and "n_jobs" in accepted and cls.__name__ not in _NO_N_JOBS:
        defaults["n_jobs"] = -1
    if cls.__name__ == "LogisticRegression" and not gpu and 0 < width <= NEWTON_FEATURES:
        defaults["solver"] = "newton-cholesky"
    if cls.__name__ == "KMeans" and not gpu:
        defaults["n_init"] = "auto"
    if gpu and "ensemble" in spec.gpu and budget and budget < FOREST_BATCH_BUDGET:
        defaults.update(forest_workspace(budget))
    return cls(**{**defaults, **params})


def forest_workspace(budget: int) -> dict:
    """cuml forest parameters whose workspace fits ``budget``: one stream, and batches of
    nodes shrunk in proportion (4096 nodes a batch at 1 GB, never fewer than 64).

    >>> forest_workspace(64_000_000)
    {'n_streams': 1, 'max_batch_size': 244}
    """
    return {"n_streams": 1, "max_batch_size": max(64, 4096 * budget // FOREST_BATCH_BUDGET)}


def _parameters(cls) -> set[str]:
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return set()
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return set(sig.parameters) | {"*"}
    return set(sig.parameters)


def family(estimator) -> str:
    """"sklearn", "cuml", "xgboost" or "other", by the module of the estimator's class."""
    top = type(estimator).__module__.split(".")[0]
    return top if top in ("sklearn", "cuml", "xgboost") else "other"


def task_of(estimator, target: str | None) -> str:
    """The task an estimator object learns (a Pipeline: its last step's)."""
    last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    kind = getattr(last, "_estimator_type", None)
    try:
        from sklearn.base import is_classifier, is_clusterer, is_regressor

        kind = ("classifier" if is_classifier(last) else "regressor" if is_regressor(last)
                else "clusterer" if is_clusterer(last) else kind)
    except (ImportError, AttributeError, TypeError):
        pass
    if kind == "classifier":
        return "classification"
    if kind == "clusterer" or target is None:
        return "clustering"
    return "regression"


def _path(estimator) -> str:
    cls = type(estimator)
    return f"{cls.__module__.split('.')[0]}.{_public_module(cls)}.{cls.__name__}"


def _public_module(cls) -> str:
    # sklearn.linear_model._logistic -> linear_model
    parts = [p for p in cls.__module__.split(".")[1:] if not p.startswith("_")]
    return ".".join(parts[:1])


def on_device(estimator) -> tuple[object | None, list[str]]:
    """The GPU twin of a cloned estimator: (estimator or None when it must run on the CPU, notes)."""
    if hasattr(estimator, "steps"):  # a Pipeline: every step must have a twin
        from sklearn.pipeline import Pipeline

        steps, notes = [], []
        for name, step in estimator.steps:
            twin, why = on_device(step)
            notes += why
            if twin is None:
                return None, notes
            steps.append((name, twin))
        return Pipeline(steps), notes
    kind = family(estimator)
    if kind == "cuml":
        return estimator, []
    if kind == "xgboost":
        if estimator.get_params().get("device") is None:  # unset: the GPU; "cpu" is respected
            estimator.set_params(device="cuda")
            return estimator, [f"{type(estimator).__name__} runs with device='cuda'"]
        return estimator, []
    path = _path(estimator)
    if kind != "sklearn" or path not in CUML_EQUIVALENTS:
        return None, [f"{type(estimator).__name__} has no cuml equivalent"]
    twin_path = CUML_EQUIVALENTS[path]
    changed = _changed_params(estimator)
    cls = importlib.import_module(twin_path.rsplit(".", 1)[0])
    cls = getattr(cls, twin_path.rsplit(".", 1)[1])
    accepted = _parameters(cls)
    dropped = [k for k in changed if k not in accepted and k not in _SCHEDULING and "*" not in accepted]
    if dropped:
        return None, [f"{type(estimator).__name__}: cuml's {cls.__name__} takes no "
                      f"{', '.join(dropped)}"]
    try:
        twin = cls(**{k: v for k, v in changed.items() if k in accepted or "*" in accepted})
    except (TypeError, ValueError) as err:
        return None, [f"{type(estimator).__name__}: cuml's {cls.__name__} refused its "
                      f"parameters ({err})"]
    return twin, [f"scikit-learn's {type(estimator).__name__} runs as {twin_path}"]


def _changed_params(estimator) -> dict:
    """Parameters the caller set (those that differ from the class's defaults)."""
    params = estimator.get_params(deep=False)
    try:
        defaults = type(estimator)().get_params(deep=False)
    except TypeError:
        return params
    return {k: v for k, v in params.items() if k not in defaults or _differs(v, defaults[k])}


def _differs(a, b) -> bool:
    try:
        return bool(a != b)
    except (TypeError, ValueError):
        return a is not b


def on_host(estimator):
    """A cloned estimator for the CPU: n_jobs=-1 where it takes it and was not set."""
    params = estimator.get_params(deep=False) if hasattr(estimator, "get_params") else {}
    if family(estimator) == "sklearn" and params.get("n_jobs", 0) is None and \
            type(estimator).__name__ not in _NO_N_JOBS:
        estimator.set_params(n_jobs=-1)
    if hasattr(estimator, "steps"):
        for _, step in estimator.steps:
            on_host(step)
    return estimator

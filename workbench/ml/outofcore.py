"""Training on all rows of a frame larger than the device budget, chunk by chunk.

:func:`fit_streaming` fits the models of :data:`BEYOND_BUDGET` from a
:class:`~workbench.ml.chunks.FeatureChunks`, holding only a few chunks on the device
at a time:

==========================  ===========================================================
linear_regression, ridge    exact normal equations summed per chunk (streamed_linear)
logistic_regression         Newton (binary, <= 64 features) or L-BFGS, streamed passes
kmeans                      exact Lloyd iterations, one pass each (streamed_kmeans)
xgboost_classifier/_regr.   XGBoost external memory (external_xgboost)
==========================  ===========================================================

Each returns an estimator-like object with ``predict`` (and ``predict_proba`` for
classifiers) that takes NumPy or CuPy and answers in the same kind; the
parameters are scikit-learn's names (``C``, ``alpha``, ``n_clusters``,
``n_estimators``...).

>>> import numpy as np, polars as pl, workbench as wb
>>> from workbench.ml.chunks import FeatureChunks
>>> x = np.arange(2000.0)
>>> f = wb.Frame.from_polars(pl.DataFrame({"x": x, "y": 3 * x - 1}))
>>> m = fit_streaming("linear_regression", FeatureChunks(f, ["x"], "y", rows=512), task="regression")
>>> round(float(m.predict(np.array([[10.0]]))[0]), 4)
29.0
"""

from __future__ import annotations

BEYOND_BUDGET = ("linear_regression", "ridge", "logistic_regression", "kmeans",
                 "xgboost_classifier", "xgboost_regressor")

_TASKS = {"linear_regression": "regression", "ridge": "regression",
          "logistic_regression": "classification", "kmeans": "clustering",
          "xgboost_classifier": "classification", "xgboost_regressor": "regression"}


# Solvers that read the chunks more than once (once per iteration; XGBoost twice to
# build its pages): worth keeping a pass in host memory, the held-out rows with it.
MANY_PASSES = ("logistic_regression", "kmeans", "xgboost_classifier", "xgboost_regressor")


def fit_streaming(name: str, chunks, *, task: str, n_classes: int | None = None,
                  device: bool = False, params: dict | None = None):
    """Fit model ``name`` over ``chunks`` (all rows of its part, streamed); see the module.

    Parameters
    ----------
    name : str
        One of :data:`BEYOND_BUDGET`.
    chunks : FeatureChunks
        The training rows; ``y`` holds class indices ``0..n_classes-1`` for classifiers.
    task : {"classification", "regression", "clustering"}
        Must be the model's.
    n_classes : int, optional
        Classes of a classifier's target.
    device : bool
        Fit on the GPU; the chunks must then be device chunks.
    params : dict, optional
        The model's parameters, by scikit-learn's names.
    """
    if name not in BEYOND_BUDGET:
        raise ValueError(f"{name!r} cannot be trained beyond the device budget; the models that "
                         f"can are {', '.join(BEYOND_BUDGET)}")
    if task != _TASKS[name]:
        raise ValueError(f"{name} is a {_TASKS[name]} model; got task={task!r}")
    if bool(device) != bool(chunks.device):
        raise ValueError(f"fit_streaming(device={device}) needs chunks built with device={device}")
    params = dict(params or {})
    if task == "classification":
        if n_classes is None:
            raise ValueError(f"{name} needs n_classes (the number of encoded target classes)")
        params["n_classes"] = n_classes
    try:
        model = _build(name, device, params)
    except TypeError as err:
        raise TypeError(f"{name} beyond the device budget: {err}") from None
    if name in MANY_PASSES:
        # one pass assembles, the others replay (chunk_cache); codes in fewer bytes
        chunks = chunks.cached(classes=n_classes if task == "classification" else None)
    return model.fit(chunks)


def _build(name: str, device: bool, params: dict):
    if name in ("linear_regression", "ridge"):
        from workbench.ml.streamed_linear import StreamedLinear

        if name == "ridge":
            params.setdefault("alpha", 1.0)
        elif "alpha" in params:
            raise TypeError("linear_regression got an unexpected keyword 'alpha' (use model='ridge')")
        return StreamedLinear(**params)
    if name == "logistic_regression":
        from workbench.ml.streamed_logistic import StreamedLogistic

        return StreamedLogistic(**params)
    if name == "kmeans":
        from workbench.ml.streamed_kmeans import StreamedKMeans

        return StreamedKMeans(**params)
    from workbench.ml.external_xgboost import ExternalXGBoost

    task = "classification" if name == "xgboost_classifier" else "regression"
    return ExternalXGBoost(task, device=device, **params)

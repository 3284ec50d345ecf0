"""``fit``: train on a frame's features where the session runs, evaluate on held-out rows.

On the GPU everything between the frame's resident columns and the final metric values
stays on the device: the feature matrix (``Frame.to_cupy``), the label encoding
(``cupy.unique``), the split (``held_out(xp=cupy)``), the scaling and the metrics. Only
the scalars come back. Features larger than the session's resident limit train out of
core (:mod:`workbench.ml.beyond`).
"""

from __future__ import annotations

import time

import numpy as np

from workbench.ml import estimators, prep, targets
from workbench.ml import metrics as _metrics
from workbench.ml.streaming import array_module, module_of
from workbench.ml.model import Model
from workbench.ml.split import held_out
from workbench.session import current_session

_NEED_FINITE = {"logistic_regression", "linear_regression", "ridge", "random_forest_classifier",
                "random_forest_regressor", "kmeans"}


def fit(data, target: str | None = None, features: list[str] | None = None, *,
        model="logistic_regression", backend: str | None = None, test_size: float = 0.2,
        seed: int = 0, scale: bool | None = None, cluster=None, **params) -> Model:
    """Train ``model`` on ``data`` and evaluate it on held-out rows.

    Parameters
    ----------
    data : Frame, polars.DataFrame or pandas.DataFrame
        Features and target; never modified. String and categorical features are
        one-hot encoded; numeric and bool ones used as they are. With ``cluster``, also
        Parquet path(s) (read by the workers) or a dask DataFrame; numeric features only.
    target : str or None
        The target column; None for clustering.
    features : list of str, optional
        Feature columns; default every column but the target.
    model : str or estimator
        A name from :data:`MODELS`, or a scikit-learn-API estimator or Pipeline
        (scikit-learn, cuml, XGBoost). On the GPU a scikit-learn estimator runs as its
        cuml equivalent where there is one (``m.notes`` says so).
    backend : {"gpu", "cpu"}, optional
        Default: the session's. A GPU asked for without one falls back with a warning.
    test_size, seed :
        Held-out share and seed; the rows are those of :func:`workbench.ml.split.held_out`.
    scale : bool, optional
        Standard-scale the features (fitted on the training rows, applied by
        ``predict``). Default: on for linear and logistic regression and k-means.
    cluster : distributed.Client, optional
        Train across this cluster's workers instead (``wb.cluster()`` or any Dask client):
        :func:`workbench.ml.distributed.fit_on_cluster`, with ``model`` one of its names
        (XGBoost on any workers; cuML's Dask estimators on GPU workers). The workers'
        kind decides the backend, so ``backend`` and ``scale`` are not taken.
    **params :
        Passed to the estimator (a name's constructor, or an estimator's ``set_params``).

    Returns
    -------
    Model (with ``cluster`` too: its ``estimator`` is an ordinary single-process one)
    """
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or \
            not 0 <= test_size < 1:
        raise ValueError(f"test_size must be a share of the rows in [0, 1), e.g. 0.2; "
                         f"got {test_size!r}")
    if cluster is not None:
        if backend is not None or scale is not None:
            raise ValueError("backend= and scale= do not apply with cluster=: the workers decide "
                             "where the fit runs (wb.cluster(backend=...)) and features are not "
                             "scaled there; leave them out")
        from workbench.ml.distributed import fit_on_cluster

        return fit_on_cluster(model, data, target, features, cluster, test_size=test_size,
                              seed=seed, **params)
    frame = prep.as_frame(data)
    session = current_session()
    gpu = _backend(session, backend, model)
    features = prep.feature_list(frame, target, features)
    kind = targets.kind(frame.schema[target]) if target is not None else None
    begin = time.perf_counter()
    recipe = prep.Recipe.fit(frame, features)
    took = time.perf_counter() - begin
    name, estimator, task, notes, gpu = _estimator(model, kind, target, gpu, params, seed, session,
                                                   recipe.width)
    # The library's import (a once-per-process cost) is left out of "prepare".
    start = time.perf_counter() - took
    if task != "clustering" and target is None:
        raise ValueError(f"{name} learns from a target: pass target='<column>'")
    if target is not None and task != "clustering":
        targets.check(frame.to_polars()[target], task, name)
    do_scale = (isinstance(model, str) and estimators.MODELS[name].scale) if scale is None else scale

    if gpu:
        from workbench.ml import beyond

        needed = beyond.needed_bytes(len(frame), recipe.width, task != "clustering")
        if needed > session.resident_limit:
            return beyond.fit(frame, name, task, recipe, target, params=params, test_size=test_size,
                              seed=seed, needed=needed, session=session, start=start,
                              is_name=isinstance(model, str))
    xp = array_module(gpu)
    X = recipe.matrix(frame, gpu)
    if name in _NEED_FINITE:
        prep.check_finite(X, recipe, name)
    labels, y = _target(frame, target, task, gpu, name)
    test = held_out(0, len(frame), test_size, seed, xp=xp)
    train = ~test
    scaler = prep.Scaler.fit(X, train) if do_scale else None
    if scaler is not None:
        scaler.apply(X)
    n_test = int(test.sum())
    n_train = len(frame) - n_test
    if n_train == 0:
        raise ValueError(f"no training rows are left with test_size={test_size} on "
                         f"{len(frame)} rows; lower test_size or pass more rows")
    X_train, y_train = X[train], (None if y is None else y[train])
    if n_test:
        X_test, y_test = X[test], (None if y is None else y[test])
    else:  # test_size=0: the training rows, said so
        X_test, y_test = X_train, y_train
        notes.append("test_size=0: metrics are on the training rows")
    del X
    seconds = {"prepare": _elapsed(start, gpu)}

    start = time.perf_counter()
    if task == "clustering":
        estimator.fit(X_train)
    else:
        estimator.fit(X_train, y_train)
    seconds["fit"] = _elapsed(start, gpu)

    start = time.perf_counter()
    scores = evaluate(estimator, task, X_test, y_test, n_classes=len(labels) if labels else 0)
    seconds["evaluate"] = _elapsed(start, gpu)
    where = "gpu" if gpu else "cpu"
    session.note(f"ml.fit {name} on {where}: fit {seconds['fit']:.3f} s, "
                 f"{n_train:,} train rows" + "".join(f"; {n}" for n in notes))
    return Model(estimator, name, where, task, features, target,
                 classes_=None if labels is None else labels.classes_, metrics=scores,
                 seconds=seconds, n_train=n_train, n_test=n_test, notes=notes, recipe=recipe,
                 scaler=scaler, labels=labels)


def _backend(session, backend, model) -> bool:
    backend = backend or session.backend
    if backend not in ("gpu", "cpu"):
        raise ValueError(f"backend must be 'gpu' or 'cpu' (or None for the session's); "
                         f"got {backend!r}")
    if backend == "gpu" and not session.gpu:
        session.fallback(f"ml.fit({_label(model)})", session._why_cpu())
        return False
    return backend == "gpu"


def _label(model) -> str:
    return model if isinstance(model, str) else type(model).__name__


def _estimator(model, kind, target, gpu: bool, params: dict, seed: int, session, width: int):
    """(name, fresh estimator, task, notes, gpu): a name built, an object cloned and moved."""
    if isinstance(model, str):
        name, spec = estimators.spec_for(model, kind)
        budget = session.policy.budget if gpu else None
        return name, estimators.build(spec, gpu, params, seed, width, budget), spec.task, [], gpu
    if not hasattr(model, "fit") or not hasattr(model, "get_params"):
        raise estimators.unknown_model(model)
    from sklearn.base import clone

    estimator = clone(model)  # the caller's object stays as it was
    if params:
        estimator.set_params(**params)
    name = type(model).__name__
    task = estimators.task_of(estimator, target)
    fam = estimators.family(estimator if not hasattr(estimator, "steps")
                            else estimator.steps[-1][1])
    if not gpu:
        if fam == "cuml" or any(estimators.family(s) == "cuml" for _, s in
                                getattr(estimator, "steps", [])):
            raise ValueError(f"{name} is a cuml estimator, which runs on the GPU only; this fit "
                             "runs on the CPU: pass the scikit-learn estimator instead")
        return name, estimators.on_host(estimator), task, [], False
    twin, notes = estimators.on_device(estimator)
    for note in notes:
        session.note(f"ml.fit: {note}")
    if twin is None:
        session.fallback(f"ml.fit({name})", "; ".join(notes))
        return name, estimators.on_host(estimator), task, notes, False
    return name, twin, task, notes, True


def _target(frame, target, task, gpu: bool, name: str):
    """(Labels or None, y): class codes 0..k-1 (int32) or float32 values, where X is."""
    if target is None or task == "clustering":
        return None, None
    dtype = frame.schema[target]
    if task == "regression":
        y = frame.to_cupy([target]) if gpu else frame.to_numpy([target])
        return None, y[:, 0]
    if gpu and targets.kind(dtype) in ("int", "bool"):
        codes, labels = targets.device_labels(frame, target, dtype)
    else:
        labels = targets.Labels.fit(frame.to_polars()[target])
        codes = labels.encode_host(frame.to_polars()[target])
        if gpu:
            import cupy as cp

            with frame._session.transfers.timed(f"class codes of {target}", codes.nbytes,
                                                "host-to-device", "pageable"):
                codes = cp.asarray(codes)
                cp.cuda.get_current_stream().synchronize()
    targets.check_classes(labels, target)
    return labels, codes


def evaluate(estimator, task: str, X, y, n_classes: int = 0) -> dict:
    """Test metrics computed where ``X`` is (see :mod:`workbench.ml.metrics`)."""
    xp = module_of(X)
    predicted, proba = _predictions(estimator, task, X, n_classes)
    if task == "clustering":
        centers = getattr(estimator, "cluster_centers_", None)
        out = {"clusters": float(len(xp.unique(predicted)))}
        if centers is not None:
            out["inertia"] = _metrics.inertia(X, xp.asarray(centers), predicted.astype(xp.int64))
        return out
    if task == "regression":
        return {"r2": _metrics.r2(y, predicted), "rmse": _metrics.rmse(y, predicted)}
    out = {"accuracy": _metrics.accuracy(y, predicted.astype(y.dtype))}
    if proba is not None:
        if n_classes == 2:
            out["auc"] = _metrics.roc_auc(y, proba[:, 1])
        if proba.ndim == 2 and proba.shape[1] == n_classes:
            out["log_loss"] = _metrics.log_loss(y, proba)
    return out


def _predictions(estimator, task: str, X, n_classes: int):
    """(labels or values, class probabilities or None) in X's array module.

    XGBoost's scikit-learn ``predict`` copies device predictions to the host; its
    booster's ``inplace_predict`` leaves them on the device, so that is used there."""
    xp = module_of(X)
    if xp is not np and estimators.family(estimator) == "xgboost":
        raw = xp.asarray(estimator.get_booster().inplace_predict(X))
        if task != "classification":
            return raw.ravel(), None
        proba = xp.stack([1 - raw, raw], axis=1) if raw.ndim == 1 else raw
        return xp.argmax(proba, axis=1), proba
    predicted = xp.asarray(estimator.predict(X))
    proba = None
    if task == "classification" and hasattr(estimator, "predict_proba"):
        proba = xp.asarray(estimator.predict_proba(X))
    return predicted, proba


def _elapsed(start: float, gpu: bool) -> float:
    if gpu:  # kernels run asynchronously: the phase ends when the device is done
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    return time.perf_counter() - start

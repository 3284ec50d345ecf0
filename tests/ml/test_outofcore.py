"""Streamed fits on the CPU over tiny chunks, compared with scikit-learn and in-memory XGBoost."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.ml.chunks import FeatureChunks
from workbench.ml.outofcore import BEYOND_BUDGET, fit_streaming
from workbench.ml.split import held_out
from workbench.ml.streamed_kmeans import StreamedKMeans

sklearn = pytest.importorskip("sklearn")
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge  # noqa: E402


def _frame(n, f, seed=0, offset=0.0, classes=2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)) * rng.uniform(0.5, 20, f) + offset
    coef = rng.normal(size=f)
    score = (X - X.mean(0)) / X.std(0) @ coef
    cols = {f"x{j}": X[:, j] for j in range(f)}
    cols["y"] = score * 2 + 5 + rng.normal(size=n)
    cut = np.quantile(score + rng.normal(size=n), np.linspace(0, 1, classes + 1)[1:-1])
    cols["label"] = np.searchsorted(cut, score + rng.normal(size=n)).astype(np.int32)
    return wb.Frame.from_polars(pl.DataFrame(cols)), [f"x{j}" for j in range(f)]


def _train(frame, names, target, test_size=0.2, seed=0):
    """The training rows as scikit-learn would get them in memory (float32 features)."""
    X = frame.to_numpy(names, dtype="float32").astype(np.float64)
    y = frame.to_numpy([target], dtype="float64")[:, 0]
    keep = ~held_out(0, len(frame), test_size, seed)
    return X[keep], y[keep]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(50, 2000), f=st.integers(1, 6), rows=st.integers(7, 400),
       offset=st.sampled_from([0.0, 1e3]), alpha=st.sampled_from([0.0, 0.5, 10.0]),
       intercept=st.booleans())
def test_linear_and_ridge_equal_scikit_learn(n, f, rows, offset, alpha, intercept):
    frame, names = _frame(n, f, offset=offset)
    chunks = FeatureChunks(frame, names, "y", rows=rows, test_size=0.2)
    name = "ridge" if alpha else "linear_regression"
    params = {"fit_intercept": intercept, **({"alpha": alpha} if alpha else {})}
    model = fit_streaming(name, chunks, task="regression", params=params)
    X, y = _train(frame, names, "y")
    ref = (Ridge(alpha=alpha, fit_intercept=intercept) if alpha else
           LinearRegression(fit_intercept=intercept)).fit(X, y)
    scale = np.abs(ref.coef_).max() + 1e-12
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(model.intercept_, ref.intercept_, rtol=1e-6, atol=1e-6 * (1 + abs(offset)))
    np.testing.assert_allclose(model.predict(X), ref.predict(X), rtol=1e-6, atol=1e-6 * np.abs(y).max())


def test_linear_regression_with_collinear_features_is_the_minimum_norm_answer():
    rng = np.random.default_rng(1)
    x = rng.normal(size=500)
    frame = wb.Frame.from_polars(pl.DataFrame({"a": x, "b": 2 * x, "y": 3 * x + 1}))
    model = fit_streaming("linear_regression", FeatureChunks(frame, ["a", "b"], "y", rows=64,
                                                             dtype="float64"), task="regression")
    ref = LinearRegression().fit(np.c_[x, 2 * x], 3 * x + 1)
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-6)


@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("C", [0.01, 1.0])
def test_logistic_regression_is_close_to_scikit_learn(classes, C):
    frame, names = _frame(3000, 4, seed=classes, offset=50.0, classes=classes)
    chunks = FeatureChunks(frame, names, "label", rows=256, test_size=0.2)
    model = fit_streaming("logistic_regression", chunks, task="classification", n_classes=classes,
                          params={"C": C, "tol": 1e-8, "max_iter": 500})
    X, y = _train(frame, names, "label")
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=1000, solver="newton-cholesky").fit(X, y.astype(int))
    assert model.coef_.shape == ref.coef_.shape and model.intercept_.shape == ref.intercept_.shape
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-3, atol=1e-3 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(model.intercept_, ref.intercept_, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(model.predict_proba(X), ref.predict_proba(X), atol=1e-3)
    assert (model.predict(X) == ref.predict(X)).mean() > 0.999
    assert model.n_iter_ < 100  # standardised: few passes over the data


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_binary_logistic_regression_takes_a_handful_of_newton_passes(fit_intercept):
    # Beyond the budget each pass reads every chunk: the binary problem is solved by
    # Newton's method, to scikit-learn's answer in a few passes with the defaults.
    from workbench.ml.streamed_logistic import StreamedLogistic

    frame, names = _frame(6000, 5, seed=3, offset=200.0)
    chunks = FeatureChunks(frame, names, "label", rows=700, test_size=0.2)
    model = StreamedLogistic(n_classes=2, C=0.5, fit_intercept=fit_intercept).fit(chunks)
    X, y = _train(frame, names, "label")
    ref = LogisticRegression(C=0.5, fit_intercept=fit_intercept, tol=1e-12, max_iter=1000,
                             solver="newton-cholesky").fit(X, y.astype(int))
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.intercept_, ref.intercept_, rtol=1e-5, atol=1e-7)
    assert model._passes <= 15 and model.n_iter_ <= 12, (model._passes, model.n_iter_)


def test_logistic_regression_converges_with_defaults_on_unscaled_features():
    frame, names = _frame(4000, 3, seed=7, offset=1e3)
    chunks = FeatureChunks(frame, names, "label", rows=500)
    model = fit_streaming("logistic_regression", chunks, task="classification", n_classes=2)
    X, y = _train(frame, names, "label", test_size=0.0)
    ref = LogisticRegression(tol=1e-10, max_iter=1000, solver="newton-cholesky").fit(X, y.astype(int))
    np.testing.assert_allclose(model.predict_proba(X), ref.predict_proba(X), atol=1e-3)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(1, 6), rows=st.integers(16, 500), seed=st.integers(0, 3))
def test_kmeans_from_the_same_start_matches_scikit_learn(k, rows, seed):
    frame, names = _frame(1500, 3, seed=seed)
    chunks = FeatureChunks(frame, names, rows=rows, test_size=0.2)
    X, _ = _train(frame, names, "y")
    init = X[np.random.default_rng(seed).choice(len(X), k, replace=False)]
    model = fit_streaming("kmeans", chunks, task="clustering",
                          params={"n_clusters": k, "init": init})
    ref = KMeans(n_clusters=k, init=init, n_init=1, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(model.inertia_, ref.inertia_, rtol=1e-6)
    np.testing.assert_allclose(np.sort(model.cluster_centers_, 0), np.sort(ref.cluster_centers_, 0),
                               rtol=1e-5, atol=1e-6)
    assert (model.predict(X) == ref.predict(X)).mean() > 0.999


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(20, 3000), rows=st.integers(5, 700), k=st.integers(1, 4), order=st.sampled_from("CF"))
def test_kmeans_on_a_matrix_is_kmeans_on_its_frame(n, rows, k, order):
    # The same rows as a matrix (in slices) or as a frame's chunks: the same sample,
    # the same start, the same Lloyd passes.
    frame, names = _frame(n, 3, seed=n)
    X = np.asarray(frame.to_polars().select(names).to_numpy(), dtype=np.float32, order=order)
    on_frame = StreamedKMeans(n_clusters=k).fit(FeatureChunks(frame, names, rows=rows, part="all"))
    on_matrix = StreamedKMeans(n_clusters=k).fit(X)
    np.testing.assert_allclose(on_matrix.cluster_centers_, on_frame.cluster_centers_, rtol=1e-9, atol=1e-12)
    assert on_matrix.inertia_ == pytest.approx(on_frame.inertia_, rel=1e-9)
    assert on_matrix.score(X) == pytest.approx(-on_matrix.inertia_, rel=1e-9)


def test_kmeans_plus_plus_start_from_a_sample_is_as_good_as_scikit_learn():
    rng = np.random.default_rng(0)
    centres = rng.uniform(-50, 50, size=(5, 2))
    X = np.concatenate([c + rng.normal(size=(800, 2)) for c in centres])
    frame = wb.Frame.from_polars(pl.DataFrame({"a": X[:, 0], "b": X[:, 1]}))
    model = fit_streaming("kmeans", FeatureChunks(frame, ["a", "b"], rows=300, part="all"),
                          task="clustering", params={"n_clusters": 5, "n_init": 3})
    ref = KMeans(n_clusters=5, n_init=3, random_state=0).fit(X.astype(np.float32).astype(np.float64))
    assert model.inertia_ <= ref.inertia_ * 1.01
    assert model.cluster_centers_.shape == (5, 2) and model.score(X) == pytest.approx(-model.inertia_)


@pytest.mark.parametrize("task, classes", [("regression", None), ("classification", 2),
                                           ("classification", 3)])
def test_xgboost_external_memory_predicts_like_in_memory_xgboost(task, classes):
    xgboost = pytest.importorskip("xgboost")
    rng = np.random.default_rng(0)
    n = 4000
    # Few distinct values per feature: the quantile cuts are the values themselves, so
    # sketching chunk by chunk gives the in-memory cuts and the same trees.
    X = rng.integers(0, 40, size=(n, 4)).astype(np.float64)
    y = X[:, 0] - 0.5 * X[:, 1] + rng.normal(size=n)
    label = np.digitize(y, np.quantile(y, np.linspace(0, 1, (classes or 2) + 1)[1:-1]))
    frame = wb.Frame.from_polars(pl.DataFrame({**{f"x{j}": X[:, j] for j in range(4)},
                                               "y": y, "label": label.astype(np.int32)}))
    target = "y" if task == "regression" else "label"
    chunks = FeatureChunks(frame, [f"x{j}" for j in range(4)], target, rows=700, test_size=0.25)
    params = {"n_estimators": 20, "max_depth": 4, "learning_rate": 0.3, "nthread": 1}
    name = "xgboost_regressor" if task == "regression" else "xgboost_classifier"
    model = fit_streaming(name, chunks, task=task, n_classes=classes, params=params)

    Xtr, ytr = _train(frame, chunks.features, target, test_size=0.25)
    objective = ("reg:squarederror" if task == "regression" else
                 "binary:logistic" if classes == 2 else "multi:softprob")
    ref = xgboost.train({"tree_method": "hist", "max_depth": 4, "learning_rate": 0.3, "nthread": 1,
                         "objective": objective, **({"num_class": classes} if classes == 3 else {})},
                        xgboost.QuantileDMatrix(Xtr.astype(np.float32), ytr), num_boost_round=20)
    expected = ref.inplace_predict(X.astype(np.float32))
    if task == "regression":
        np.testing.assert_allclose(model.predict(X), expected, rtol=1e-4, atol=1e-4)
    else:
        proba = model.predict_proba(X)
        assert proba.shape == (n, classes)
        np.testing.assert_allclose(proba if classes == 3 else proba[:, 1], expected, atol=1e-4)
        assert (model.predict(X) == proba.argmax(1)).all()


def test_predictions_come_back_as_numpy_for_numpy():
    frame, names = _frame(600, 2)
    for name, task, target in [("linear_regression", "regression", "y"),
                               ("logistic_regression", "classification", "label"),
                               ("kmeans", "clustering", None)]:
        chunks = FeatureChunks(frame, names, target, rows=128)
        model = fit_streaming(name, chunks, task=task, n_classes=2 if target == "label" else None,
                              params={"n_clusters": 3} if name == "kmeans" else None)
        out = model.predict(frame.to_numpy(names))
        assert isinstance(out, np.ndarray) and out.shape == (600,)
        with pytest.raises(ValueError, match="2 features"):
            model.predict(np.zeros((3, 5)))


@pytest.mark.parametrize("call, error, words", [
    (dict(name="random_forest_classifier", task="classification"), ValueError, "xgboost_classifier"),
    (dict(name="ridge", task="classification"), ValueError, "regression model"),
    (dict(name="logistic_regression", task="classification"), ValueError, "n_classes"),
    (dict(name="linear_regression", task="regression", device=True), ValueError, "device=True"),
    (dict(name="kmeans", task="clustering", params={"n_clusters": 2, "bogus": 1}), TypeError, "bogus"),
    (dict(name="linear_regression", task="regression", params={"alpha": 1.0}), TypeError, "ridge"),
    (dict(name="logistic_regression", task="classification", n_classes=2, params={"C": 0}),
     ValueError, "C must be"),
])
def test_fit_streaming_errors_name_the_fix(call, error, words):
    frame, names = _frame(100, 2)
    chunks = FeatureChunks(frame, names, "label", rows=32)
    with pytest.raises(error, match=words):
        fit_streaming(chunks=chunks, **call)


def test_every_model_beyond_the_budget_fits_on_the_cpu():
    frame, names = _frame(800, 3)
    for name in BEYOND_BUDGET:
        task = {"kmeans": "clustering", "linear_regression": "regression", "ridge": "regression",
                "xgboost_regressor": "regression"}.get(name, "classification")
        target = {"classification": "label", "regression": "y", "clustering": None}[task]
        params = {"n_estimators": 3} if name.startswith("xgboost") else None
        model = fit_streaming(name, FeatureChunks(frame, names, target, rows=100), task=task,
                              n_classes=2 if task == "classification" else None, params=params)
        assert model.predict(frame.to_numpy(names)).shape == (800,)

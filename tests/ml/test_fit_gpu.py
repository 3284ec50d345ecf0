"""ml.fit on a real GPU: every model in memory against the CPU library, estimator
objects as their cuml twins, labels, one-hot, no host copies of resident features,
and training beyond a small budget (in a fresh interpreter: a budget applies once)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest

import workbench as wb
from workbench.errors import GPUFallbackWarning

pytestmark = pytest.mark.gpu

N = 200_000


def _frame(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.normal(size=n), rng.normal(size=n), rng.uniform(0, 1000, size=n)
    return wb.Frame.from_polars(pl.DataFrame({
        "x1": x1, "x2": x2, "x3": x3,
        "label": (x1 - x2 + x3 / 500 - 1 + rng.normal(scale=0.5, size=n) > 0).astype(np.int32),
        "y": 3 * x1 - 2 * x2 + x3 / 100 + rng.normal(scale=0.3, size=n)}))


@pytest.fixture
def session():
    return wb.init(backend="gpu")


CASES = {
    "logistic_regression": ("label", {}, {"accuracy": 0.01, "auc": 0.01, "log_loss": 0.02}),
    "linear_regression": ("y", {}, {"r2": 1e-4, "rmse": 1e-3}),
    "ridge": ("y", {}, {"r2": 1e-4, "rmse": 1e-3}),
    "random_forest_classifier": ("label", {"n_estimators": 20, "max_depth": 10},
                                 {"accuracy": 0.02, "auc": 0.02}),
    "random_forest_regressor": ("y", {"n_estimators": 20, "max_depth": 10}, {"r2": 0.02}),
    "kmeans": (None, {"n_clusters": 4}, {}),
    "xgboost_classifier": ("label", {"n_estimators": 50}, {"accuracy": 0.01, "auc": 0.01}),
    "xgboost_regressor": ("y", {"n_estimators": 50}, {"r2": 0.01}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_model_in_memory_on_the_gpu_matches_the_cpu_library(session, name):
    target, params, tolerance = CASES[name]
    frame = _frame()
    features = ["x1", "x2", "x3"]
    gpu = wb.ml.fit(frame, target, features, model=name, backend="gpu", **params)
    cpu = wb.ml.fit(frame, target, features, model=name, backend="cpu", **params)
    assert gpu.backend == "gpu" and not gpu.out_of_core and (gpu.n_train, gpu.n_test) == (cpu.n_train, cpu.n_test)
    module = type(gpu.estimator).__module__
    expected = {"kmeans": "workbench.ml.streamed_kmeans"}.get(name, "xgboost" if "xgboost" in name else "cuml")
    assert module.startswith(expected), module
    for metric, tol in tolerance.items():
        assert gpu.metrics[metric] == pytest.approx(cpu.metrics[metric], abs=tol), (metric, gpu, cpu)
    if name == "kmeans":
        assert gpu.metrics["inertia"] == pytest.approx(cpu.metrics["inertia"], rel=0.05)
        assert gpu.metrics["clusters"] == 4
    predicted = gpu.predict(frame.to_polars().head(1000))
    assert isinstance(predicted, np.ndarray) and predicted.shape == (1000,)
    if gpu.task == "classification":
        assert gpu.predict_proba(frame).shape == (len(frame), 2)
        assert abs(gpu.score(frame) - cpu.score(frame)) < 0.02


def test_linear_coefficients_on_the_gpu_are_the_cpus(session):
    frame = _frame()
    gpu = wb.ml.fit(frame, "y", ["x1", "x2", "x3"], model="linear_regression", backend="gpu")
    cpu = wb.ml.fit(frame, "y", ["x1", "x2", "x3"], model="linear_regression", backend="cpu")
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-3, atol=1e-4)
    assert float(gpu.intercept_) == pytest.approx(float(cpu.intercept_), abs=1e-2)


def test_a_scikit_learn_estimator_runs_as_its_cuml_twin_and_says_so(session):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = _frame()
    m = wb.ml.fit(frame, "label", ["x1", "x2", "x3"], model=LogisticRegression(C=0.5), backend="gpu")
    assert m.backend == "gpu" and type(m.estimator).__module__.startswith("cuml")
    assert m.estimator.C == 0.5
    assert any("runs as cuml.linear_model.LogisticRegression" in n for n in m.notes)
    assert any("cuml.linear_model.LogisticRegression" in msg for _, msg in session.log)
    pipe = wb.ml.fit(frame, "label", ["x1", "x2", "x3"], backend="gpu",
                     model=make_pipeline(StandardScaler(), LogisticRegression()))
    assert pipe.backend == "gpu" and all(type(s).__module__.startswith("cuml")
                                         for _, s in pipe.estimator.steps)
    cpu = wb.ml.fit(frame, "label", ["x1", "x2", "x3"], model=LogisticRegression(C=0.5), backend="cpu")
    assert m.metrics["accuracy"] == pytest.approx(cpu.metrics["accuracy"], abs=0.01)


def test_an_estimator_without_a_cuml_twin_runs_on_the_cpu_with_the_warning(session):
    from sklearn.ensemble import GradientBoostingClassifier

    with pytest.warns(GPUFallbackWarning, match="GradientBoostingClassifier has no cuml equivalent"):
        m = wb.ml.fit(_frame(5000), "label", ["x1", "x2"], backend="gpu",
                      model=GradientBoostingClassifier(n_estimators=10))
    assert m.backend == "cpu" and m.metrics["accuracy"] > 0.7


def test_labels_and_one_hot_on_the_gpu(session):
    rng = np.random.default_rng(0)
    n = 50_000
    which = rng.integers(0, 3, n)
    df = pl.DataFrame({"x": which * 10.0 + rng.normal(scale=0.5, size=n),
                       "colour": np.array(["red", "green", "blue"])[rng.integers(0, 3, n)],
                       "big": np.array([10_000_000_000, -5, 7])[which],
                       "name": np.array(["a", "b", "c"])[which],
                       "flag": which == 2})  # separable by x (the middle class is not)
    for target in ("big", "name", "flag"):
        m = wb.ml.fit(df, target, ["x", "colour"], model="logistic_regression", backend="gpu")
        assert m.backend == "gpu" and m.metrics["accuracy"] > 0.99
        assert m.predict(df).tolist()[:200] == df[target].to_list()[:200]
        cpu = wb.ml.fit(df, target, ["x", "colour"], model="logistic_regression", backend="cpu")
        assert m.classes_.tolist() == cpu.classes_.tolist()
        assert m.feature_names_ == cpu.feature_names_


def test_a_second_fit_copies_no_features_to_the_device(session):
    frame = _frame()
    wb.ml.fit(frame, "label", ["x1", "x2"], backend="gpu")
    before = session.transfers.total_bytes("host-to-device")
    wb.ml.fit(frame, "label", ["x1", "x2"], model="random_forest_classifier", backend="gpu",
              n_estimators=5)
    assert session.transfers.total_bytes("host-to-device") == before


CHILD = textwrap.dedent("""
    import json, warnings
    import numpy as np, polars as pl
    import workbench as wb
    from workbench import memory
    s = wb.init(backend="gpu", budget="64MB")
    rng = np.random.default_rng(0)
    n = 4_000_000  # 3 float32 features + target: 64 MB, twice the 32 MB resident limit
    x1, x2, x3 = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    df = pl.DataFrame({"x1": x1, "x2": x2, "x3": x3,
                       "label": (x1 - x2 + rng.normal(scale=0.5, size=n) > 0).astype(np.int32),
                       "y": 3 * x1 - 2 * x2 + rng.normal(scale=0.3, size=n)})
    f = wb.Frame.from_polars(df)
    out = {"limit": s.resident_limit, "budget": s.policy.budget}
    for name, target, params in [("linear_regression", "y", {}), ("logistic_regression", "label", {}),
                                 ("kmeans", None, {"n_clusters": 3}),
                                 ("xgboost_classifier", "label", {"n_estimators": 20})]:
        m = wb.ml.fit(f, target, ["x1", "x2", "x3"], model=name, backend="gpu", **params)
        out[name] = {"ooc": m.out_of_core, "metrics": m.metrics, "n_test": m.n_test}
    # labels far from 0..k-1, found on the device a slice at a time; the metrics replay
    # the held-out rows the fit's first pass kept
    big = df.select("x1", "x2", "x3", big=pl.when(pl.col("label") == 1).then(10**10).otherwise(-3))
    m = wb.ml.fit(wb.Frame.from_polars(big), "big", ["x1", "x2", "x3"], model="logistic_regression",
                  backend="gpu")
    out["big"] = {"ooc": m.out_of_core, "classes": [int(c) for c in m.classes_], "metrics": m.metrics,
                  "predicted": sorted({int(v) for v in m.predict(big.head(2000))})}
    try:
        wb.ml.fit(f, "label", ["x1", "x2", "x3"], model="random_forest_classifier", backend="gpu")
        out["forest"] = "fitted"
    except Exception as err:
        out["forest"] = type(err).__name__ + ": " + str(err)
    out["peak"] = memory.device_memory_stats()["peak_bytes"]
    print(json.dumps(out))
""")


def test_training_beyond_a_small_budget_matches_the_cpu():
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    rng = np.random.default_rng(0)
    n = 4_000_000
    x1, x2, x3 = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    df = pl.DataFrame({"x1": x1, "x2": x2, "x3": x3,
                       "label": (x1 - x2 + rng.normal(scale=0.5, size=n) > 0).astype(np.int32),
                       "y": 3 * x1 - 2 * x2 + rng.normal(scale=0.3, size=n)})
    wb.init(backend="cpu")
    for name, target, params, metric, tol in [
            ("linear_regression", "y", {}, "r2", 1e-4), ("logistic_regression", "label", {}, "accuracy", 0.005),
            ("xgboost_classifier", "label", {"n_estimators": 20}, "accuracy", 0.01)]:
        cpu = wb.ml.fit(df, target, ["x1", "x2", "x3"], model=name, backend="cpu", **params)
        assert out[name]["ooc"] and out[name]["n_test"] == cpu.n_test
        assert out[name]["metrics"][metric] == pytest.approx(cpu.metrics[metric], abs=tol), name
        if "auc" in cpu.metrics:  # the held-out scores ranked on the device
            assert out[name]["metrics"]["auc"] == pytest.approx(cpu.metrics["auc"], abs=tol), name
    assert out["kmeans"]["ooc"] and out["kmeans"]["metrics"]["inertia"] > 0
    assert out["big"]["ooc"] and out["big"]["classes"] == [-3, 10**10]
    assert out["big"]["predicted"] == [-3, 10**10]
    assert out["big"]["metrics"] == pytest.approx(out["logistic_regression"]["metrics"], abs=1e-9)
    assert out["forest"].startswith("DoesNotFit") and "logistic_regression" in out["forest"]
    assert out["peak"] <= out["budget"], out

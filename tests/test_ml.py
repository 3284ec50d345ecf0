"""ml.fit on the CPU: models learn, metrics are right, errors are clear."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import workbench as wb


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    return wb.Frame.from_polars(pl.DataFrame({
        "x1": x1, "x2": x2,
        "label": (x1 + 0.5 * x2 + rng.normal(scale=0.3, size=n) > 0).astype(np.int32),
        "y": 3 * x1 - 2 * x2 + rng.normal(scale=0.1, size=n),
    }))


def test_logistic_regression_learns():
    r = wb.ml.fit(_data(), target="label", features=["x1", "x2"], backend="cpu")
    assert r.backend == "cpu" and r.metrics["accuracy"] > 0.85 and r.metrics["auc"] > 0.9
    assert r.n_train == 2400 and r.n_test == 600


def test_linear_regression_recovers_coefficients():
    r = wb.ml.fit(_data(), target="y", features=["x1", "x2"], model="linear_regression", backend="cpu")
    assert r.metrics["r2"] > 0.99
    np.testing.assert_allclose(r.model.coef_, [3, -2], atol=0.02)


def test_random_forest_and_kmeans_run():
    r = wb.ml.fit(_data(800), target="label", features=["x1", "x2"],
                  model="random_forest_classifier", backend="cpu", n_estimators=20)
    assert r.metrics["accuracy"] > 0.8
    k = wb.ml.fit(_data(800), target=None, features=["x1", "x2"], model="kmeans",
                  backend="cpu", n_clusters=3, n_init=2)
    assert k.metrics["clusters"] == 3


def test_errors_name_the_problem():
    f = _data(100)
    with pytest.raises(ValueError, match="logistic_regression"):
        wb.ml.fit(f, target="label", model="deep_magic")
    with pytest.raises(ValueError, match="needs a target"):
        wb.ml.fit(f, target=None)
    with pytest.raises(ValueError, match="also listed"):
        wb.ml.fit(f, target="label", features=["label", "x1"])


def test_gpu_request_without_gpu_falls_back_with_warning():
    wb.init(backend="auto")
    with pytest.warns(UserWarning, match="ran on the CPU"):
        r = wb.ml.fit(_data(300), target="label", features=["x1", "x2"], backend="gpu")
    assert r.backend == "cpu"

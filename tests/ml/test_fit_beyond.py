"""The beyond-the-budget path of ml.fit, run through the host solvers: the same chunks,
split and streamed metrics the GPU uses past its budget, and the error for the rest."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

import workbench as wb
from workbench.errors import DoesNotFit
from workbench.ml import beyond, prep
from workbench.ml.outofcore import BEYOND_BUDGET
from workbench.ml.split import held_out


def _frame(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    return wb.Frame.from_polars(pl.DataFrame({
        "x1": x1, "x2": x2,
        "label": np.where(x1 + 0.5 * x2 + rng.normal(scale=0.3, size=n) > 0, 10_000_000_000, -4),
        "y": 3 * x1 - 2 * x2 + rng.normal(scale=0.1, size=n)}))


def _streamed(frame, name, task, target, test_size=0.2, **params):
    session = wb.init(backend="cpu")
    recipe = prep.Recipe.fit(frame, ["x1", "x2"])
    return beyond.fit(frame, name, task, recipe, target, params=params, test_size=test_size, seed=0,
                      needed=beyond.needed_bytes(len(frame), recipe.width, target is not None),
                      session=session, start=time.perf_counter(), is_name=True, device=False)


CASES = {"linear_regression": ("regression", "y", {}), "ridge": ("regression", "y", {}),
         "logistic_regression": ("classification", "label", {}),
         "kmeans": ("clustering", None, {"n_clusters": 3}),
         "xgboost_classifier": ("classification", "label", {"n_estimators": 20, "nthread": 1}),
         "xgboost_regressor": ("regression", "y", {"n_estimators": 20, "nthread": 1})}


def test_every_model_beyond_the_budget_is_covered():
    assert set(CASES) == set(BEYOND_BUDGET)


@pytest.mark.parametrize("name", list(CASES))
def test_streamed_fit_matches_the_in_memory_fit(name):
    task, target, params = CASES[name]
    frame = _frame()
    m = _streamed(frame, name, task, target, **params)
    ref = wb.ml.fit(frame, target, ["x1", "x2"], model=name, backend="cpu", **params)
    assert m.out_of_core and m.backend == "cpu" and "out of core" in str(m)
    assert (m.n_train, m.n_test) == (ref.n_train, ref.n_test)
    assert m.n_test == int(held_out(0, len(frame), 0.2, 0).sum())
    if task == "regression":
        assert m.metrics["r2"] == pytest.approx(ref.metrics["r2"], abs=0.02)
        assert m.metrics["rmse"] == pytest.approx(ref.metrics["rmse"], rel=0.3)
    elif task == "classification":
        assert m.metrics["accuracy"] == pytest.approx(ref.metrics["accuracy"], abs=0.02)
        assert m.metrics["auc"] == pytest.approx(ref.metrics["auc"], abs=0.02)
        assert m.classes_.tolist() == [-4, 10_000_000_000]
        assert set(m.predict(frame).tolist()) == {-4, 10_000_000_000}  # decoded, streamed
        assert m.predict_proba(frame).shape == (len(frame), 2)
    else:
        assert m.metrics["inertia"] > 0 and m.predict(frame).shape == (len(frame),)


def test_linear_regression_is_exact_beyond_the_budget():
    frame = _frame()
    m = _streamed(frame, "linear_regression", "regression", "y")
    ref = wb.ml.fit(frame, "y", ["x1", "x2"], model="linear_regression", backend="cpu")
    assert m.metrics["r2"] == pytest.approx(ref.metrics["r2"], rel=1e-5)
    np.testing.assert_allclose(m.predict(frame), ref.predict(frame), rtol=1e-4, atol=1e-4)


def test_streamed_metrics_are_the_in_memory_metrics_of_the_same_estimator():
    frame = _frame()
    m = _streamed(frame, "logistic_regression", "classification", "label")
    test = frame.to_polars().filter(pl.Series(held_out(0, len(frame), 0.2, 0)))
    from sklearn.metrics import accuracy_score, roc_auc_score

    proba = m.predict_proba(test)
    assert m.metrics["accuracy"] == pytest.approx(accuracy_score(test["label"], m.predict(test)))
    assert m.metrics["auc"] == pytest.approx(roc_auc_score(test["label"] > 0, proba[:, 1]))


def test_test_size_zero_streams_the_training_rows():
    m = _streamed(_frame(500), "linear_regression", "regression", "y", test_size=0)
    assert m.n_test == 500 and any("training rows" in n for n in m.notes)


def test_other_models_raise_does_not_fit_naming_those_that_run():
    frame = _frame(300)
    with pytest.raises(DoesNotFit, match=r"random_forest_classifier does not train beyond the budget; "
                       r"these do: linear_regression, ridge, logistic_regression, kmeans.*"
                       r"WORKBENCH_GPU_BUDGET.*backend='cpu'") as err:
        _streamed(frame, "random_forest_classifier", "classification", "label")
    assert isinstance(err.value, MemoryError) and err.value.needed == 300 * 3 * 4


def test_string_features_beyond_the_budget_are_a_clear_error():
    frame = wb.Frame.from_polars(pl.DataFrame({"c": ["a", "b"] * 50, "y": np.arange(100.0)}))
    recipe = prep.Recipe.fit(frame, ["c"])
    with pytest.raises(ValueError, match=r"\['c'\] cannot be one-hot encoded beyond the budget"):
        beyond.fit(frame, "linear_regression", "regression", recipe, "y", params={}, test_size=0.2,
                   seed=0, needed=1, session=wb.init(backend="cpu"), start=0.0, is_name=True,
                   device=False)


def test_needed_bytes_counts_features_and_target():
    assert beyond.needed_bytes(1000, 3, True) == 16_000
    assert beyond.needed_bytes(1000, 3, False) == 12_000


@pytest.mark.parametrize("name", ["logistic_regression", "kmeans"])
def test_a_many_pass_fit_assembles_its_chunks_once_metrics_included(name, monkeypatch):
    from workbench.ml.chunks import FeatureChunks

    parts, original = [], FeatureChunks._assembled

    def counted(self, *args):
        parts.append(self.part)
        return original(self, *args)

    monkeypatch.setattr(FeatureChunks, "_assembled", counted)
    task, target, params = CASES[name]
    frame = _frame()
    m = _streamed(frame, name, task, target, **params)
    assert parts == ["train"]  # the held-out rows were kept by the same pass
    assert m.n_test == int(held_out(0, len(frame), 0.2, 0).sum())

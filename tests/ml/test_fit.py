"""ml.fit on the CPU: every model name, estimator objects, pipelines, every input kind,
the Model's predict / predict_proba / score, the split, scaling and one-hot encoding."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import workbench as wb
from workbench.ml.split import held_out


def _data(n=1500, seed=0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    return pl.DataFrame({
        "x1": x1, "x2": x2,
        "label": (x1 + 0.5 * x2 + rng.normal(scale=0.3, size=n) > 0).astype(np.int32),
        "y": 3 * x1 - 2 * x2 + rng.normal(scale=0.1, size=n),
    })


TARGETS = {"classification": "label", "regression": "y", "clustering": None}
SMALL = {"random_forest_classifier": {"n_estimators": 15}, "random_forest_regressor": {"n_estimators": 15},
         "xgboost_classifier": {"n_estimators": 15, "n_jobs": 1},
         "xgboost_regressor": {"n_estimators": 15, "n_jobs": 1},
         "xgboost": {"n_estimators": 15, "n_jobs": 1}, "kmeans": {"n_clusters": 3}}
GOOD = {"accuracy": 0.85, "r2": 0.95}


@pytest.mark.parametrize("name", list(wb.ml.MODELS))
def test_every_model_name_learns_and_predicts(name):
    task = wb.ml.MODELS[name].task
    target = TARGETS.get(task, "label")
    df = _data()
    m = wb.ml.fit(df, target, ["x1", "x2"], model=name, backend="cpu", **SMALL.get(name, {}))
    assert m.backend == "cpu" and not m.out_of_core and m.features == ["x1", "x2"]
    assert m.n_train + m.n_test == len(df) and m.n_test == int(held_out(0, len(df), 0.2, 0).sum())
    assert set(m.seconds) == {"prepare", "fit", "evaluate"}
    assert str(m).startswith(f"{m.model_name} on cpu: ")
    for metric, floor in GOOD.items():
        if metric in m.metrics:
            assert m.metrics[metric] > floor, m
    predicted = m.predict(df)
    assert predicted.shape == (len(df),)
    if m.task == "classification":
        assert set(np.unique(predicted)) <= {0, 1} and m.classes_.tolist() == [0, 1]
        proba = m.predict_proba(df)
        np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
        assert m.score(df) == pytest.approx(float((predicted == df["label"].to_numpy()).mean()))
        assert {"auc", "log_loss"} <= set(m.metrics)
    elif m.task == "clustering":
        assert m.metrics["clusters"] == 3 and m.metrics["inertia"] > 0
        assert m.score(df) < 0
    else:
        assert m.score(df) > 0.9


def test_xgboost_picks_classifier_or_regressor_from_the_target():
    df = _data(600)
    assert wb.ml.fit(df, "label", ["x1", "x2"], model="xgboost", backend="cpu",
                     **SMALL["xgboost"]).model_name == "xgboost_classifier"
    assert wb.ml.fit(df, "y", ["x1", "x2"], model="xgboost", backend="cpu",
                     **SMALL["xgboost"]).model_name == "xgboost_regressor"


def test_frame_polars_and_pandas_inputs_give_one_answer_and_stay_unchanged():
    df = _data()
    before = df.clone()
    pandas = df.to_pandas()
    runs = [wb.ml.fit(d, "label", ["x1", "x2"], backend="cpu")
            for d in (df, wb.Frame.from_polars(df), pandas)]
    assert {r.metrics["accuracy"] for r in runs} == {runs[0].metrics["accuracy"]}
    np.testing.assert_array_equal(runs[0].predict(pandas), runs[1].predict(wb.Frame.from_polars(df)))
    assert_frame_equal(df, before)
    assert pandas.equals(before.to_pandas())


def test_features_default_to_every_column_but_the_target():
    m = wb.ml.fit(_data().select("x1", "x2", "y"), "y", model="linear_regression", backend="cpu")
    assert m.features == ["x1", "x2"]


def test_a_scikit_learn_estimator_is_cloned_and_fitted():
    from sklearn.linear_model import LogisticRegression

    est = LogisticRegression(C=0.5)
    m = wb.ml.fit(_data(), "label", ["x1", "x2"], model=est, backend="cpu", max_iter=200)
    assert not hasattr(est, "coef_") and est.max_iter == 100  # the caller's object untouched
    assert isinstance(m.estimator, LogisticRegression) and m.estimator.C == 0.5
    assert m.estimator.max_iter == 200 and m.model_name == "LogisticRegression"
    assert m.metrics["accuracy"] > 0.85 and m.scaler is None  # objects get the data as it is


def test_a_pipeline_runs_whole():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    m = wb.ml.fit(_data(), "label", ["x1", "x2"], model=pipe, backend="cpu")
    assert m.task == "classification" and m.metrics["auc"] > 0.9
    assert m.predict_proba(_data(50, seed=1)).shape == (50, 2)


def test_an_xgboost_estimator_object():
    xgb = pytest.importorskip("xgboost")
    m = wb.ml.fit(_data(), "y", ["x1", "x2"], model=xgb.XGBRegressor(n_estimators=20, n_jobs=1),
                  backend="cpu")
    assert m.task == "regression" and m.metrics["r2"] > 0.9


def test_the_held_out_rows_are_those_of_held_out():
    df = _data()
    m = wb.ml.fit(df, "y", ["x1", "x2"], model="linear_regression", backend="cpu", seed=3,
                  test_size=0.3)
    mask = held_out(0, len(df), 0.3, seed=3)
    test = df.filter(pl.Series(mask))
    from sklearn.metrics import r2_score

    assert m.n_test == len(test)
    assert m.metrics["r2"] == pytest.approx(r2_score(test["y"].to_numpy(), m.predict(test)), rel=1e-6)


def test_scaling_is_folded_into_the_model_and_coefficients_are_in_original_units():
    from sklearn.linear_model import LinearRegression

    df = _data().with_columns(x1=pl.col("x1") * 1000 + 5e4)  # a badly scaled feature
    m = wb.ml.fit(df, "y", ["x1", "x2"], model="linear_regression", backend="cpu")
    assert m.scaler is not None
    train = df.filter(~pl.Series(held_out(0, len(df), 0.2, 0)))
    ref = LinearRegression().fit(train.select("x1", "x2").to_numpy(), train["y"].to_numpy())
    np.testing.assert_allclose(m.coef_, ref.coef_, rtol=1e-3)
    assert float(m.intercept_) == pytest.approx(ref.intercept_, rel=1e-3, abs=1e-2)
    np.testing.assert_allclose(m.predict(df), ref.predict(df.select("x1", "x2").to_numpy()),
                               rtol=1e-3, atol=1e-3)
    plain = wb.ml.fit(df, "y", ["x1", "x2"], model="linear_regression", backend="cpu", scale=False)
    assert plain.scaler is None
    np.testing.assert_allclose(plain.coef_, ref.coef_, rtol=1e-3)


def test_kmeans_centres_are_reported_in_original_units():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [100.0, 5.0]])
    points = np.concatenate([c + rng.normal(scale=[1.0, 0.05], size=(400, 2)) for c in centres])
    m = wb.ml.fit(pl.DataFrame({"a": points[:, 0], "b": points[:, 1]}), model="kmeans",
                  backend="cpu", n_clusters=2)
    found = m.cluster_centers_[np.argsort(m.cluster_centers_[:, 0])]
    np.testing.assert_allclose(found, centres, atol=0.2)


def test_string_and_categorical_features_are_one_hot_encoded():
    rng = np.random.default_rng(1)
    n = 1200
    colour = rng.choice(["red", "green", "blue"], n)
    size = rng.choice(["S", "L"], n)
    y = np.select([colour == "red", colour == "green"], [10.0, -5.0], 0.0) + (size == "L") * 3
    df = pl.DataFrame({"colour": colour, "size": size, "x": rng.normal(size=n),
                       "y": y + rng.normal(scale=0.01, size=n)}).with_columns(
        pl.col("size").cast(pl.Categorical))
    m = wb.ml.fit(df, "y", ["colour", "x", "size"], model="linear_regression", backend="cpu")
    assert m.feature_names_ == ["colour=blue", "colour=green", "colour=red", "x", "size=L", "size=S"]
    assert m.metrics["r2"] > 0.999
    new = pl.DataFrame({"colour": ["red", "purple"], "x": [0.0, 0.0], "size": ["L", "S"]})
    assert m.predict(new)[0] == pytest.approx(13.0, abs=0.1)  # "purple" is unseen: no column set


def test_test_size_zero_evaluates_on_the_training_rows_and_says_so():
    m = wb.ml.fit(_data(300), "label", ["x1", "x2"], backend="cpu", test_size=0)
    assert m.n_test == 0 and m.n_train == 300 and any("training rows" in n for n in m.notes)


def test_repr_html_and_model_alias():
    m = wb.ml.fit(_data(300), "label", ["x1", "x2"], backend="cpu")
    html = m._repr_html_()
    assert html.startswith("<table>") and "logistic_regression" in html and "accuracy" in html
    assert m.model is m.estimator


def test_session_log_records_the_fit():
    session = wb.init(backend="cpu")
    wb.ml.fit(_data(300), "label", ["x1", "x2"])
    assert any("ml.fit logistic_regression on cpu" in message for _, message in session.log)


def test_gpu_request_without_gpu_falls_back_with_warning():
    wb.init(backend="auto")
    if wb.current_session().gpu:
        pytest.skip("this machine has a GPU")
    with pytest.warns(UserWarning, match="ran on the CPU"):
        m = wb.ml.fit(_data(300), target="label", features=["x1", "x2"], backend="gpu")
    assert m.backend == "cpu"


def test_the_gpu_builds_the_workbench_kmeans_whose_fit_matches_scikit_learns():
    """What ``model="kmeans"`` builds on the GPU (it runs on NumPy as well): same seed and
    defaults as the name's CPU twin, and an inertia as good as scikit-learn's."""
    from sklearn.cluster import KMeans

    from workbench.ml import estimators
    from workbench.ml.streamed_kmeans import StreamedKMeans

    spec = estimators.MODELS["kmeans"]
    built = estimators.build(spec, True, {"n_clusters": 3}, seed=7)
    assert isinstance(built, StreamedKMeans) and built.random_state == 7
    rng = np.random.default_rng(0)
    X = np.concatenate([c + rng.normal(size=(300, 2)) for c in ([0, 0], [8, 0], [0, 8])])
    ours = built.fit(X)
    ref = KMeans(3, n_init=1, random_state=0).fit(X)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-3)
    assert sorted(np.bincount(ours.predict(X))) == sorted(np.bincount(ref.labels_))

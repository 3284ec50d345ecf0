"""ml.fit under hostile input: each is the right error type, names the thing and the
fix, and leaves the input as it was."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import workbench as wb


def _df(n=200) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    return pl.DataFrame({"x": x, "z": rng.normal(size=n), "label": (x > 0).astype(np.int32),
                         "y": 2 * x})


def _fails(df: pl.DataFrame, error, pattern: str, *args, **kwargs):
    before = df.clone()
    with pytest.raises(error, match=pattern):
        wb.ml.fit(df, *args, backend="cpu", **kwargs)
    assert_frame_equal(df, before)


def test_wrong_feature_name():
    _fails(_df(), KeyError, r"no feature column\(s\) \['w'\].*columns are", "label", ["x", "w"])


def test_wrong_target_name():
    _fails(_df(), KeyError, r"no target column 'lable'.*columns are", "lable", ["x"])


def test_empty_frame():
    _fails(_df().clear(), ValueError, r"no rows.*check the filter", "label", ["x"])


def test_nan_in_the_target():
    df = _df().with_columns(y=pl.when(pl.col("x") > 1).then(float("nan")).otherwise(pl.col("y")))
    _fails(df, ValueError, r"target column 'y' has \d+ NaN.*is_not_nan", "y", ["x"],
           model="linear_regression")


def test_null_in_the_target():
    df = _df().with_columns(label=pl.when(pl.col("x") > 1).then(None).otherwise(pl.col("label")))
    _fails(df, ValueError, r"target column 'label' has \d+ nulls.*drop_nulls\('label'\)", "label", ["x"])


def test_one_class_only():
    df = _df().with_columns(label=pl.lit(1))
    _fails(df, ValueError, r"'label' has one class only.*at least two", "label", ["x"])


def test_unknown_model_name():
    _fails(_df(), ValueError, r"unknown model 'deep_magic'.*logistic_regression.*estimator object",
           "label", ["x"], model="deep_magic")


def test_something_that_is_no_estimator():
    _fails(_df(), ValueError, r"unknown model 42.*estimator object", "label", ["x"], model=42)


@pytest.mark.parametrize("size", [1.5, -0.1, 1.0, "0.2", True])
def test_test_size_outside_zero_one(size):
    _fails(_df(), ValueError, r"test_size must be a share of the rows in \[0, 1\)", "label", ["x"],
           test_size=size)


def test_a_datetime_feature():
    df = _df().with_columns(when=pl.lit(dt.datetime(2026, 1, 1)))
    _fails(df, TypeError, r"feature column 'when' has type Datetime.*dt.hour\(\)", "label", ["x", "when"])


def test_a_list_feature():
    df = _df().with_columns(tags=pl.concat_list("x", "z"))
    _fails(df, TypeError, r"feature column 'tags' has type List.*leave it out", "label", ["tags"])


def test_a_float_target_for_a_classifier():
    _fails(_df(), ValueError, r"logistic_regression is a classifier but the target column 'y' has "
           r"type Float64.*choose a regression model", "y", ["x"])


def test_a_string_target_for_a_regressor():
    df = _df().with_columns(kind=pl.lit("a"))
    _fails(df, ValueError, r"regressor but the target column 'kind' has type String.*choose a classifier",
           "kind", ["x"], model="linear_regression")


def test_the_target_among_the_features():
    _fails(_df(), ValueError, r"target 'label' is also listed as a feature; leave it out",
           "label", ["label", "x"])


def test_no_target_for_a_supervised_model():
    _fails(_df(), ValueError, r"logistic_regression learns from a target: pass target=", None, ["x"])


def test_nan_in_a_feature():
    df = _df().with_columns(z=pl.when(pl.col("x") > 1).then(float("nan")).otherwise(pl.col("z")))
    _fails(df, ValueError, r"feature column\(s\) \['z'\] hold NaN.*fill_nan.*XGBoost", "label", ["x", "z"])


def test_null_in_a_feature():
    df = _df().with_columns(z=pl.when(pl.col("x") > 1).then(None).otherwise(pl.col("z")))
    _fails(df, TypeError, r"column 'z' has \d+ nulls.*fill_null", "label", ["x", "z"])


def test_too_many_categories():
    df = _df(2000).with_columns(id=pl.int_range(2000).cast(pl.String))
    _fails(df, ValueError, r"feature column 'id' has 2,000 distinct values.*leave it out", "label",
           ["x", "id"])


def test_a_bad_backend():
    before = _df()
    with pytest.raises(ValueError, match=r"backend must be 'gpu' or 'cpu'.*got 'tpu'"):
        wb.ml.fit(before, "label", ["x"], backend="tpu")


def test_a_lazyframe():
    with pytest.raises(TypeError, match=r"not a LazyFrame: collect it first"):
        wb.ml.fit(_df().lazy(), "label", ["x"], backend="cpu")


def test_a_numpy_array():
    with pytest.raises(TypeError, match=r"Frame, a polars DataFrame or a pandas DataFrame, not numpy"):
        wb.ml.fit(np.zeros((3, 2)), "label", ["x"], backend="cpu")


def test_a_cuml_estimator_on_the_cpu():
    class LogisticRegression:  # the shape of a cuml estimator, where cuml cannot be imported
        __module__ = "cuml.linear_model"

        def fit(self, X, y):
            return self

        def get_params(self, deep=True):
            return {}

        def set_params(self, **params):
            return self

    before = _df()
    with pytest.raises(ValueError, match=r"cuml estimator, which runs on the GPU only.*scikit-learn"):
        wb.ml.fit(before, "label", ["x"], model=LogisticRegression(), backend="cpu")
    assert_frame_equal(before, _df())


def test_predict_without_the_feature_columns():
    m = wb.ml.fit(_df(), "label", ["x", "z"], backend="cpu")
    new = pl.DataFrame({"x": [1.0]})
    with pytest.raises(KeyError, match=r"needs feature column\(s\) \['z'\]"):
        m.predict(new)
    assert_frame_equal(new, pl.DataFrame({"x": [1.0]}))


def test_predict_proba_of_a_regressor():
    m = wb.ml.fit(_df(), "y", ["x"], model="linear_regression", backend="cpu")
    with pytest.raises(AttributeError, match=r"linear_regression gives no class probabilities.*predict"):
        m.predict_proba(_df())

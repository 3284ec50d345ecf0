"""Classification targets: validated, encoded 0..k-1 and decoded exactly (never cast)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.ml.targets import Labels

LABELS = {
    "strings": (pl.String, ["cat", "dog", "émeu"]),
    "1e10": (pl.Int64, [10_000_000_000, 10_000_000_001, 3]),
    "negative int64": (pl.Int64, [-(2 ** 62), -1, 2 ** 62]),
    "uint64 above int64": (pl.UInt64, [0, 2 ** 63 + 5]),
    "bool": (pl.Boolean, [False, True]),
    "int8": (pl.Int8, [-128, 0, 127]),
    "categorical": (pl.Categorical, ["b", "a", "c"]),
}


def _separable(values, dtype, n=900, seed=0):
    """One feature that tells the classes apart, and the labels as a column of ``dtype``."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(values), n)
    label = pl.Series("label", [values[i] for i in which], dtype=pl.String if dtype == pl.Categorical
                      else dtype)
    if dtype == pl.Categorical:
        label = label.cast(pl.Categorical)
    return pl.DataFrame({"x": which * 10.0 + rng.normal(scale=0.5, size=n)}).with_columns(label)


@pytest.mark.parametrize("case", list(LABELS))
@pytest.mark.parametrize("model", ["logistic_regression", "random_forest_classifier"])
def test_labels_round_trip_exactly(case, model):
    dtype, values = LABELS[case]
    df = _separable(values, dtype)
    extra = {"n_estimators": 10} if "forest" in model else {}
    m = wb.ml.fit(df, "label", ["x"], model=model, backend="cpu", **extra)
    expected = sorted(set(str(v) for v in values)) if dtype in (pl.String, pl.Categorical) \
        else sorted(values)
    assert m.classes_.tolist() == expected
    predicted = m.predict(df)
    truth = df["label"].cast(pl.String).to_list() if dtype == pl.Categorical else df["label"].to_list()
    assert predicted.tolist() == truth  # separable: every label back, exactly, in its own type
    assert m.metrics["accuracy"] == 1.0 and m.score(df) == 1.0


def test_xgboost_gets_encoded_labels():
    pytest.importorskip("xgboost")
    df = _separable([10_000_000_000, -7, 42], pl.Int64)
    m = wb.ml.fit(df, "label", ["x"], model="xgboost", backend="cpu", n_estimators=5, n_jobs=1)
    predicted = m.predict(df)
    assert m.model_name == "xgboost_classifier" and predicted.dtype == np.int64
    assert set(predicted.tolist()) == {10_000_000_000, -7, 42}
    assert (predicted == df["label"].to_numpy()).mean() > 0.99
    assert m.predict_proba(df).shape == (len(df), 3)


def test_a_float_target_for_a_classifier_names_the_column_and_the_fix():
    df = pl.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "price": [0.5, 1.5, 0.5, 1.5]})
    with pytest.raises(ValueError, match=r"'price' has type Float64.*cast\(pl.Int64\)"):
        wb.ml.fit(df, "price", ["x"], model="logistic_regression", backend="cpu")


def test_an_integer_target_for_a_regressor_is_fine():
    df = pl.DataFrame({"x": np.arange(100.0), "n": np.arange(100) * 2})
    m = wb.ml.fit(df, "n", ["x"], model="linear_regression", backend="cpu")
    assert m.metrics["r2"] == pytest.approx(1.0) and m.classes_ is None


@settings(max_examples=60, deadline=None)
@given(st.one_of(
    st.lists(st.integers(-(2 ** 63), 2 ** 63 - 1), min_size=1, max_size=40),
    st.lists(st.text(max_size=5), min_size=1, max_size=40),
    st.lists(st.booleans(), min_size=1, max_size=40),
))
def test_encode_decode_round_trip(values):
    series = pl.Series("y", values)
    labels = Labels.fit(series)
    codes = labels.encode_host(series)
    assert codes.dtype == np.int32 and codes.min() >= 0 and codes.max() < len(labels)
    assert labels.decode(codes).tolist() == values
    assert labels.classes_.tolist() == sorted(set(values))


def test_unseen_labels_are_an_error_naming_them():
    labels = Labels.fit(pl.Series([1, 2]))
    with pytest.raises(ValueError, match=r"\[3\] were not seen"):
        labels.encode_host(pl.Series([1, 3]))

"""Fits under a 64 MB budget on the GPU, each in a process of its own: a model whose data
fit the budget trains and answers; none may take the process down (an allocation that
fails in a library's own threads would abort it instead of raising)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.gpu

CODE = """
import json, numpy as np, polars as pl, workbench as wb
wb.init(backend="gpu", budget="64MB")
rng = np.random.default_rng(0)
n = 20_000
df = pl.DataFrame({{"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)}})
df = df.with_columns(label=(pl.col("a") + pl.col("b") > 0).cast(pl.Int8))
m = wb.ml.fit(df, {target!r}, ["a", "b", "c"], model={model!r}, backend="gpu", **{params!r})
print(json.dumps({{"backend": m.backend, "metrics": m.metrics, "estimator": type(m.estimator).__module__}}))
"""


@pytest.mark.parametrize("model, params", [
    ("random_forest_classifier", {"n_estimators": 20}),
    ("xgboost_classifier", {"n_estimators": 50, "max_depth": 4}),
    ("logistic_regression", {}),
])
def test_a_classifier_under_a_64mb_budget_trains_on_the_gpu(model, params):
    code = CODE.format(target="label", model=model, params=params)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == "gpu", out
    assert out["metrics"]["accuracy"] > 0.9, out

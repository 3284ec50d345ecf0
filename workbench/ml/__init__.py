"""Train models on Frames: cuml and XGBoost on the GPU, scikit-learn and XGBoost on the CPU.

``fit`` takes a model name (:data:`MODELS`) or any scikit-learn-API estimator or
Pipeline, a Frame or a polars/pandas DataFrame, and returns a :class:`Model` with
``predict``, ``predict_proba``, ``score``, metrics on held-out rows and timings. The
held-out rows are those of :func:`workbench.ml.split.held_out` on every backend, so
CPU and GPU results compare directly; features larger than the GPU budget train out
of core.

>>> import numpy as np, polars as pl, workbench as wb
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=2000)
>>> df = pl.DataFrame({"x": x, "y": np.where(x > 0, "yes", "no")})
>>> m = wb.ml.fit(df, target="y", model="logistic_regression", backend="cpu")
>>> m.metrics["accuracy"] > 0.95, m.classes_.tolist()
(True, ['no', 'yes'])
>>> m.predict(pl.DataFrame({"x": [-2.0, 2.0]})).tolist()
['no', 'yes']
"""

from __future__ import annotations

from workbench.ml.api import evaluate, fit
from workbench.ml.estimators import CUML_EQUIVALENTS, MODELS
from workbench.ml.model import Model

__all__ = ["fit", "Model", "MODELS", "CUML_EQUIVALENTS", "evaluate"]

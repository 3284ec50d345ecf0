"""The fitted model ``fit`` returns: the estimator with the steps around it.

A ``Model`` remembers how its features were built (one-hot categories, the standard
scaling fitted on the training rows) and the labels of its classes, so ``predict``
takes the same kind of frame the fit took and answers in the original labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.ml import metrics as _metrics
from workbench.ml import prep
from workbench.ml.streaming import host, module_of


@dataclass
class Model:
    """A fitted model: where it ran, how long it took, how well it did on held-out rows.

    Attributes
    ----------
    estimator : the fitted estimator (scikit-learn, cuml, XGBoost or out-of-core); it was
        fitted on the scaled features when ``scaler`` is set, so call ``predict`` here
    model_name, backend ("gpu"/"cpu"), task ("classification"/"regression"/"clustering"),
    features, target, classes_ (original labels), metrics, seconds (prepare/fit/evaluate),
    n_train, n_test, out_of_core, notes
    """

    estimator: object
    model_name: str
    backend: str
    task: str
    features: list[str]
    target: str | None
    classes_: np.ndarray | None = None
    metrics: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    n_train: int = 0
    n_test: int = 0
    out_of_core: bool = False
    notes: list = field(default_factory=list)
    recipe: prep.Recipe | None = field(default=None, repr=False)
    scaler: prep.Scaler | None = field(default=None, repr=False)
    labels: object = field(default=None, repr=False)

    @property
    def model(self):
        """The fitted estimator (the name ``fit`` results had before ``estimator``)."""
        return self.estimator

    @property
    def feature_names_(self) -> list[str]:
        """The matrix's columns: features, one-hot columns as ``name=value``."""
        return self.recipe.names

    # ------------------------------------------------------------ prediction
    def _matrix(self, data):
        frame = prep.as_frame(data)
        X = self.recipe.matrix(frame, self.backend == "gpu")
        return self.scaler.apply(X) if self.scaler is not None else X

    def _chunks(self, data):
        """Out-of-core models predict chunk by chunk, as they were evaluated."""
        from workbench.ml.chunks import FeatureChunks

        return FeatureChunks(prep.as_frame(data), self.features, device=self.backend == "gpu",
                             part="all")

    def _raw(self, data, method: str) -> np.ndarray:
        if self.out_of_core:
            parts = [host(getattr(self.estimator, method)(X)) for X, _, _ in self._chunks(data)]
            return np.concatenate(parts) if parts else np.empty(0)
        return host(getattr(self.estimator, method)(self._matrix(data)))

    def predict(self, data) -> np.ndarray:
        """Predictions for ``data`` (a Frame, polars or pandas frame with the features):
        original class labels, regression values or cluster numbers (numpy)."""
        out = self._raw(data, "predict")
        if self.labels is not None:
            return self.labels.decode(out)
        return out

    def predict_proba(self, data) -> np.ndarray:
        """Class probabilities, one column per ``classes_`` entry (numpy)."""
        if self.task != "classification" or not hasattr(self.estimator, "predict_proba"):
            raise AttributeError(f"{self.model_name} gives no class probabilities "
                                 f"(task: {self.task}); use predict")
        return self._raw(data, "predict_proba")

    def score(self, data) -> float:
        """Accuracy (classification), R² (regression) or minus the inertia (clustering),
        on ``data``: the target column must be there for the first two."""
        frame = prep.as_frame(data)
        if self.task == "clustering":
            X = self._matrix(frame)
            labels = self.estimator.predict(X)
            xp = module_of(X)
            return -_metrics.inertia(X, xp.asarray(self.estimator.cluster_centers_),
                                     xp.asarray(labels).astype(xp.int64))
        if self.target not in frame.columns:
            raise KeyError(f"score needs the target column {self.target!r} in the data; "
                           f"it has {frame.columns}")
        truth = frame.to_polars()[self.target].to_numpy()
        predicted = self.predict(frame)
        if self.task == "classification":
            return _metrics.accuracy(truth, predicted)
        return _metrics.r2(truth, predicted)

    # ------------------------------------------------------------ coefficients
    @property
    def coef_(self) -> np.ndarray:
        """Coefficients of a linear model in the units of the original features
        (the scaling used for the fit folded back in)."""
        coef = host(getattr(self.estimator, "coef_")).astype(np.float64)
        if self.scaler is None:
            return coef
        _, scale = self.scaler.host()
        return coef / scale

    @property
    def intercept_(self):
        """Intercept of a linear model for the original (unscaled) features."""
        intercept = host(getattr(self.estimator, "intercept_")).astype(np.float64)
        if self.scaler is None:
            return intercept
        mean, scale = self.scaler.host()
        coef = host(self.estimator.coef_).astype(np.float64)
        return intercept - (coef / scale) @ mean

    @property
    def cluster_centers_(self) -> np.ndarray:
        """Cluster centres in the units of the original features."""
        centers = host(self.estimator.cluster_centers_).astype(np.float64)
        if self.scaler is None:
            return centers
        mean, scale = self.scaler.host()
        return centers * scale + mean

    # ------------------------------------------------------------ display
    def _summary(self) -> str:
        shown = {k: v for k, v in self.metrics.items() if isinstance(v, float)}
        return ", ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in shown.items())

    def __str__(self) -> str:
        where = self.backend + (", out of core" if self.out_of_core else "")
        return (f"{self.model_name} on {where}: {self._summary()} "
                f"(fit {self.seconds.get('fit', 0):.2f} s, {self.n_train:,} train rows)")

    def _repr_html_(self) -> str:
        rows = [("model", self.model_name), ("backend", self.backend + (" (out of core)"
                                                                        if self.out_of_core else "")),
                ("task", self.task), ("rows", f"{self.n_train:,} train, {self.n_test:,} test"),
                ("features", ", ".join(self.features))]
        rows += [(k, _fmt(v)) for k, v in self.metrics.items()]
        rows += [(f"{k} s", f"{v:.3f}") for k, v in self.seconds.items()]
        rows += [("note", n) for n in self.notes]
        from html import escape

        body = "".join(f"<tr><th style='text-align:left'>{escape(str(k))}</th>"
                       f"<td style='text-align:left'>{escape(str(v))}</td></tr>" for k, v in rows)
        return f"<table>{body}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)

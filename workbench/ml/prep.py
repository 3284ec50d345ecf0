"""From a frame to a model-ready matrix, where the model runs.

Numeric and bool columns come straight from the frame (``Frame.to_cupy`` on the GPU,
which reuses the resident device columns; ``Frame.to_numpy`` on the CPU). String and
categorical columns are one-hot encoded against the categories seen in training
(unseen values: all zeros), the expansion done on the device for a GPU model. Standard
scaling is fitted on the training rows and applied in place, on the device.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from workbench.ml import targets
from workbench.ml.streaming import host, module_of

#: more distinct values than this in a string feature is an error, not a one-hot block
MAX_CATEGORIES = 1024


def as_frame(data):
    """A ``Frame`` over ``data`` (a Frame, polars or pandas DataFrame); never a copy of a Frame."""
    from workbench.frame import Frame

    if isinstance(data, Frame):
        return data
    if isinstance(data, pl.LazyFrame):
        raise TypeError("fit takes a DataFrame, not a LazyFrame: collect it first "
                        "(lf.collect() or workbench.collect(lf)) and pass the result")
    if isinstance(data, pl.DataFrame):
        return Frame.from_polars(data)
    if type(data).__module__.split(".")[0] == "pandas" and hasattr(data, "columns"):
        return Frame.from_pandas(data)
    raise TypeError(f"fit takes a workbench Frame, a polars DataFrame or a pandas DataFrame, "
                    f"not {type(data).__module__}.{type(data).__name__}")


def feature_list(frame, target: str | None, features) -> list[str]:
    """The feature columns, checked: they exist, the target is not one of them."""
    columns = frame.columns
    if target is not None and target not in columns:
        raise KeyError(f"no target column {target!r} in the data; columns are {columns}")
    if isinstance(features, str):
        features = [features]
    features = list(features) if features is not None else [c for c in columns if c != target]
    missing = [f for f in features if f not in columns]
    if missing:
        raise KeyError(f"no feature column(s) {missing} in the data; columns are {columns}")
    if target is not None and target in features:
        raise ValueError(f"the target {target!r} is also listed as a feature; "
                         "leave it out of features")
    if not features:
        raise ValueError("no feature columns: pass features=[...] naming at least one column")
    if len(frame) == 0:
        raise ValueError("the data has no rows; fit needs at least a few (check the filter "
                         "that built it)")
    return features


class Recipe:
    """How to build the feature matrix from any frame holding the feature columns."""

    def __init__(self, features: list[str], categories: dict[str, list]):
        self.features = features
        self.categories = categories  # column -> sorted training values, for one-hot columns
        self.names = [name for c in features for name in
                      ([f"{c}={v}" for v in categories[c]] if c in categories else [c])]

    @classmethod
    def fit(cls, frame, features: list[str]) -> Recipe:
        schema = frame.schema
        categories = {}
        for name in features:
            kind = targets.kind(schema[name])
            if kind == "string":
                values = frame.to_polars()[name].cast(pl.String).drop_nulls().unique().sort()
                if len(values) > MAX_CATEGORIES:
                    raise ValueError(
                        f"feature column {name!r} has {len(values):,} distinct values; one-hot "
                        f"encoding stops at {MAX_CATEGORIES}: encode it yourself (e.g. target or "
                        "frequency encoding) or leave it out of features")
                categories[name] = values.to_list()
            elif kind == "other":
                raise TypeError(
                    f"feature column {name!r} has type {schema[name]}, which fit cannot use: "
                    f"derive numbers from it first (e.g. pl.col({name!r}).dt.hour() or "
                    f".cast(pl.Int64)) or leave it out of features")
        return cls(features, categories)

    @property
    def width(self) -> int:
        return len(self.names)

    @property
    def numeric(self) -> list[str]:
        return [c for c in self.features if c not in self.categories]

    def check(self, frame) -> None:
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise KeyError(f"the model needs feature column(s) {missing}, which the data "
                           f"lacks; it has {frame.columns}")

    def matrix(self, frame, gpu: bool):
        """(rows, width) float32: cupy on the GPU, numpy on the CPU; always a new array."""
        self.check(frame)
        if not self.categories:  # the fast path: one matrix straight from the columns
            return frame.to_cupy(self.features) if gpu else frame.to_numpy(self.features)
        if gpu:
            import cupy as xp
        else:
            xp = np
        out = xp.empty((len(frame), self.width), dtype=np.float32, order="F")
        numeric = self.numeric
        block = (frame.to_cupy(numeric) if gpu else frame.to_numpy(numeric)) if numeric else None
        j = 0
        for name in self.features:
            if name not in self.categories:
                out[:, j] = block[:, numeric.index(name)]
                j += 1
                continue
            k = len(self.categories[name])
            codes = self._codes(frame, name, gpu)
            out[:, j:j + k] = codes[:, None] == xp.arange(k, dtype=codes.dtype)[None, :]
            j += k
        return out

    def _codes(self, frame, name: str, gpu: bool):
        """Each row's category number (-1: unseen or null), moved to the device once."""
        cats = self.categories[name]
        column = frame.to_polars()[name].cast(pl.String)
        codes = column.replace_strict(cats, list(range(len(cats))), default=-1,
                                      return_dtype=pl.Int32).to_numpy()
        if not gpu:
            return codes
        import cupy as cp

        session = frame._session
        with session.transfers.timed(f"one-hot codes of {name}", codes.nbytes, "host-to-device",
                                     "pageable"):
            out = cp.asarray(codes)
            cp.cuda.get_current_stream().synchronize()
        return out


class Scaler:
    """Standard scaling fitted on the training rows: ``(x - mean_) / scale_``."""

    def __init__(self, mean, scale):
        self.mean_, self.scale_ = mean, scale

    @classmethod
    def fit(cls, X, train):
        xp = module_of(X)
        mean = xp.empty(X.shape[1], dtype=xp.float64)
        scale = xp.empty(X.shape[1], dtype=xp.float64)
        for j in range(X.shape[1]):  # a column at a time: one (n_train,) temporary
            col = X[:, j][train].astype(xp.float64)
            mean[j] = col.mean() if col.size else 0.0
            scale[j] = col.std() if col.size else 1.0
        scale[scale == 0] = 1.0  # a constant column stays as it is, centred
        return cls(mean, scale)

    def apply(self, X):
        """Scale ``X`` in place (it is the fit's own matrix) and return it."""
        xp = module_of(X)
        X -= xp.asarray(self.mean_, dtype=X.dtype)[None, :]
        X /= xp.asarray(self.scale_, dtype=X.dtype)[None, :]
        return X

    def host(self) -> tuple[np.ndarray, np.ndarray]:
        return host(self.mean_), host(self.scale_)


def check_finite(X, recipe: Recipe, model: str) -> None:
    """NaN or infinity in a feature: an error naming the column (XGBoost takes NaN, others not)."""
    xp = module_of(X)
    bad = ~xp.isfinite(X).all(axis=0)
    if bool(bad.any()):
        names = [recipe.names[j] for j in np.flatnonzero(host(bad))]
        raise ValueError(f"feature column(s) {names} hold NaN or infinite values, which "
                         f"{model} cannot take: fill or drop them first "
                         "(polars: fill_nan / drop_nans), or use an XGBoost model")

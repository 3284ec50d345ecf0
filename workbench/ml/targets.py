"""The target column: checked against the task, labels encoded to 0..k-1 and back.

Classification labels are never cast: integers (any width, 1e10 or negative), bools,
strings and categoricals are mapped to their rank among the sorted distinct labels,
and ``Labels.decode`` gives the original values back exactly.

>>> import polars as pl
>>> labels = Labels.fit(pl.Series("y", [10_000_000_000, -3, 10_000_000_000]))
>>> labels.classes_.tolist()
[-3, 10000000000]
>>> labels.decode(labels.encode_host(pl.Series([-3, 10_000_000_000]))).tolist()
[-3, 10000000000]
"""

from __future__ import annotations

import numpy as np
import polars as pl

CLASS_TYPES = "integer, bool, string or categorical"


def kind(dtype: pl.DataType) -> str:
    """"int", "bool", "float", "string" (strings, categoricals, enums) or "other"."""
    if dtype.is_integer():
        return "int"
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return "string"
    return "other"


def check(series: pl.Series, task: str, model: str) -> None:
    """A target that ``task`` cannot learn from: an error naming the column and the fix."""
    name, k = series.name, kind(series.dtype)
    if series.null_count():
        raise ValueError(f"the target column {name!r} has {series.null_count()} nulls; drop those "
                         f"rows first (polars: df.drop_nulls({name!r}))")
    if k == "float" and series.is_nan().any():
        raise ValueError(f"the target column {name!r} has {int(series.is_nan().sum())} NaN values; "
                         f"drop those rows first (polars: df.filter(pl.col({name!r}).is_not_nan()))")
    if task == "classification":
        if k not in ("int", "bool", "string"):
            raise ValueError(
                f"{model} is a classifier but the target column {name!r} has type {series.dtype}; "
                f"classification targets must be {CLASS_TYPES}: cast the column "
                f"(pl.col({name!r}).cast(pl.Int64) for class numbers) or choose a regression model")
    elif task == "regression" and k not in ("int", "bool", "float"):
        raise ValueError(f"{model} is a regressor but the target column {name!r} has type "
                         f"{series.dtype}; regression targets must be numeric: choose a "
                         "classifier, or cast the column to a number")


def check_classes(labels: Labels, name: str) -> None:
    """One class only: nothing to tell apart."""
    if len(labels) < 2:
        raise ValueError(f"the target column {name!r} has one class only "
                         f"({labels.classes_[0]!r}); a classifier needs at least two: check "
                         "the filter that built the frame, or choose a regression model")


class Labels:
    """The sorted distinct labels of a classification target (``classes_``)."""

    def __init__(self, classes: pl.Series):
        self.series = classes
        self.string = kind(classes.dtype) == "string"
        self.classes_ = classes.to_numpy()
        self._on_device: dict = {}  # the classes as a device array, by the labels' dtype
        if self.string:
            self.classes_ = self.classes_.astype(object)

    @classmethod
    def fit(cls, y: pl.Series) -> Labels:
        if kind(y.dtype) == "string":
            y = y.cast(pl.String)
        return cls(y.unique().sort())

    def __len__(self) -> int:
        return len(self.classes_)

    def encode_host(self, y) -> np.ndarray:
        """Codes 0..k-1 (int32) of host labels (a polars Series or a numpy array)."""
        s = y if isinstance(y, pl.Series) else pl.Series(np.asarray(y))
        if self.string:
            s = s.cast(pl.String)
        elif s.dtype != self.series.dtype:
            s = s.cast(self.series.dtype, strict=True)
        codes = s.replace_strict(self.series, pl.int_range(len(self), eager=True, dtype=pl.Int32),
                                 default=None, return_dtype=pl.Int32)
        if codes.null_count():
            unseen = s.filter(codes.is_null()).unique().head(5).to_list()
            raise ValueError(f"labels {unseen} were not seen in training; the model knows "
                             f"{self.classes_.tolist()[:20]}")
        return codes.to_numpy()

    def encode(self, y):
        """Codes of labels on the host or the device (cupy: numeric labels, by a sorted search)."""
        if isinstance(y, (pl.Series, np.ndarray, list)):
            return self.encode_host(y)
        import cupy as cp

        classes = self._on_device.get(y.dtype)
        if classes is None:  # once per dtype, not once per chunk
            classes = self._on_device[y.dtype] = cp.asarray(self.classes_.astype(y.dtype))
        codes = cp.searchsorted(classes, y.ravel()).astype(cp.int32)
        ok = classes[cp.minimum(codes, len(self) - 1)] == y.ravel()
        if not bool(ok.all()):
            raise ValueError("the target holds labels that were not seen in training")
        return codes

    def decode(self, codes) -> np.ndarray:
        """Original labels (numpy) of codes on the host or the device."""
        codes = codes.get() if hasattr(codes, "get") else np.asarray(codes)
        return self.classes_[codes.astype(np.int64).ravel()]


def device_labels(frame, target: str, dtype: pl.DataType):
    """Codes and classes of a numeric target computed on the device (``cupy.unique``):
    only the k distinct labels come back to the host."""
    import cupy as cp

    numpy_dtype = "int8" if dtype == pl.Boolean else _numpy(dtype)
    y = frame.to_cupy([target], dtype=numpy_dtype)[:, 0]
    classes, codes = cp.unique(y, return_inverse=True)
    values = pl.Series(target, classes.get()).cast(dtype)
    return codes.astype(cp.int32).ravel(), Labels(values)


def labels_of(frame, target: str, device: bool = False) -> Labels:
    """The labels of a frame's target column. An integer target on the GPU is searched
    there a slice at a time (``cupy.unique`` per slice, merged as it goes: only the
    distinct values come back); any other, or one with more distinct values than a
    slice holds, by polars on the host."""
    import pyarrow as pa

    column = frame._table.column(target)
    if device and pa.types.is_integer(column.type) and len(column):
        found = _distinct_on_device(column.chunk(0), frame)
        if found is not None:
            return Labels(pl.Series(target, found).cast(frame.schema[target]))
    return Labels.fit(frame.to_polars()[target])


def _distinct_on_device(arr, frame):
    import cupy as cp

    from workbench.frame.scan import chunk_rows
    from workbench.ml.chunks import host_values

    values = host_values(arr)  # a view of the frame's (pinned) host buffer
    step = chunk_rows(frame, values.itemsize)
    found = cp.empty(0, values.dtype)
    for a in range(0, len(values), step):
        found = cp.unique(cp.concatenate([found, cp.unique(cp.asarray(values[a:a + step]))]))
        if len(found) > step:  # nearly every value distinct: not a class target on the device
            return None
    return found.get()


def _numpy(dtype: pl.DataType) -> str:
    return {pl.Int8: "int8", pl.Int16: "int16", pl.Int32: "int32", pl.Int64: "int64",
            pl.UInt8: "uint8", pl.UInt16: "uint16", pl.UInt32: "uint32",
            pl.UInt64: "uint64"}.get(dtype, "int64")

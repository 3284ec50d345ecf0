"""A frame's feature columns as row chunks: what out-of-core training iterates over.

:class:`FeatureChunks` hands out ``(X, y, start)`` per chunk of rows: ``X`` an
``(n, f)`` matrix (NumPy on the host, CuPy on the device), ``y`` the target (encoded
when an ``encode`` function is given), ``start`` the frame row of the chunk's first
row. The object is re-iterable, so one instance feeds an ``xgboost.DataIter`` (which
walks the data several times), the streamed solvers (one pass per iteration) and,
split with :meth:`FeatureChunks.partitions`, one Dask partition per worker.

How a chunk reaches the device follows the memory policy, like the frame's own
scans (:mod:`workbench.frame.scan`):

* discrete GPUs: each column's rows are copied from the frame's pinned host buffers
  into one reusable device staging buffer and cast into one reusable device matrix,
  so a pass over the data allocates nothing per chunk but the rows it selects;
* unified memory (GB10, GH200): the GPU reads the host columns in place (a zero-copy
  view) while it assembles the chunk's matrix;
* the host: the same assembly in NumPy.

The train/test selection is :func:`workbench.ml.split.held_out`, decided from the
row's frame index, so a streamed fit holds out exactly the rows an in-memory fit does.

>>> import numpy as np, polars as pl, workbench as wb
>>> f = wb.Frame.from_polars(pl.DataFrame({"a": np.arange(10.0), "y": np.arange(10) % 2}))
>>> chunks = FeatureChunks(f, ["a"], "y", rows=4, part="all")
>>> [(X.shape, int(start)) for X, y, start in chunks]
[((4, 1), 0), ((4, 1), 4), ((2, 1), 8)]
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pyarrow as pa

from workbench.ml.split import held_out

PARTS = ("train", "test", "all")
# Share of the memory a chunk of X may take: several chunks (the matrix, the
# selected rows, a solver's intermediates) fit at once, as in the frame's scans.
_CHUNK_SHARE = 16
_MAX_HOST_CHUNK = 1 << 30
_ALIGN = 512  # rows; slices then keep validity bitmaps byte-aligned


def as_frame(data):
    """A :class:`~workbench.Frame` over ``data`` (a Frame, Arrow table, polars or pandas frame)."""
    from workbench.frame import Frame

    if isinstance(data, Frame):
        return data
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return Frame.from_arrow(data)
    if isinstance(data, pl.DataFrame):
        return Frame.from_polars(data)
    if type(data).__module__.split(".")[0] == "pandas":
        return Frame.from_pandas(data)
    raise TypeError(f"expected a workbench Frame, a pyarrow Table or a polars/pandas DataFrame; "
                    f"got {type(data).__name__}")


@dataclasses.dataclass(frozen=True, eq=False)
class _Spec:
    features: tuple
    target: str | None
    rows: int
    device: bool
    dtype: str
    encode: object
    test_size: float
    seed: int
    part: str
    lo: int
    hi: int
    offset: int


class FeatureChunks:
    """Re-iterable row chunks ``(X, y, start)`` of a frame's feature columns (see the module).

    Parameters
    ----------
    frame : Frame, pyarrow.Table, polars or pandas DataFrame
        Never modified. Anything but a Frame is wrapped in one (pinned on discrete GPUs).
    features : list of str
        Numeric or boolean columns without nulls.
    target : str, optional
        The target column; ``y`` is None without one.
    rows : int, optional
        Rows per chunk; default from the session's device memory (or, on the host,
        its budget or the available memory) so that several chunks fit at once.
    device : bool
        CuPy chunks on the GPU (needs a GPU session) instead of NumPy ones.
    dtype : str
        dtype of ``X`` (``"float32"`` or ``"float64"``).
    encode : callable, optional
        ``encode(y)`` -> encoded target, given the chunk's raw target: a NumPy/CuPy array
        of the column's own dtype for numeric and boolean columns, a host NumPy array for
        strings and categoricals (its result is moved to the device when ``device``).
    test_size, seed, part :
        ``part="train"`` keeps the rows :func:`~workbench.ml.split.held_out` does not hold
        out, ``"test"`` the held-out ones, ``"all"`` every row.
    offset : int
        The position of the frame's first row in a larger table (a Dask partition's),
        so that the split and ``start`` are those of the whole table.

    Notes
    -----
    ``X`` and ``y`` of ``part="all"`` chunks (and of every chunk replayed from
    :meth:`cached` device chunks) live in buffers reused by a later chunk: copy them to
    keep them past the next step of the iteration.
    """

    def __init__(self, frame, features, target=None, *, rows=None, device=False, dtype="float32",
                 encode=None, test_size=0.0, seed=0, part="train", offset=0):
        self.frame = as_frame(frame)
        features = [features] if isinstance(features, str) else list(features or [])
        if not features:
            raise ValueError("FeatureChunks needs at least one feature column")
        if target is not None and target in features:
            raise ValueError(f"the target {target!r} is also listed as a feature; leave it out of features")
        if part not in PARTS:
            raise ValueError(f"part must be one of {', '.join(PARTS)}; got {part!r}")
        held_out(0, 0, test_size, seed)  # checks test_size
        if part == "test" and test_size == 0:
            raise ValueError("part='test' selects no rows with test_size=0; pass a test_size in (0, 1)")
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
        self.frame._numeric_columns(features, "FeatureChunks")  # names, types and nulls
        if target is not None:
            if target not in self.frame.columns:
                raise KeyError(f"no target column {target!r} in the frame; columns are {self.frame.columns}")
            column = self.frame._table.column(target)
            if column.null_count:
                raise ValueError(f"target column {target!r} has {column.null_count} nulls; drop or "
                                 "fill them first (polars `drop_nulls` / `fill_null`)")
            numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or \
                pa.types.is_boolean(column.type)
            if device and encode is None and not numeric:
                raise ValueError(f"target column {target!r} has type {column.type}, which cannot go to "
                                 "the device as it is; pass encode= (labels -> 0..k-1 integers)")
        if device:
            self.frame._session.ensure_gpu()  # on the CPU: GPUUnavailableError saying why
        if rows is None:
            rows = default_rows(self.frame, len(features), np.dtype(dtype).itemsize, device)
        if int(rows) < 1:
            raise ValueError(f"rows per chunk must be at least 1; got {rows}")
        self._spec = _Spec(tuple(features), target, int(rows), bool(device), np.dtype(dtype).name,
                           encode, float(test_size), int(seed), part, 0, len(self.frame), int(offset))
        self._n_rows = None
        self._cache = None
        self._held = None  # the held-out rows' cache, filled by the training part's first pass

    # ------------------------------------------------------------ description
    features = property(lambda self: list(self._spec.features))
    target = property(lambda self: self._spec.target)
    rows = property(lambda self: self._spec.rows)
    device = property(lambda self: self._spec.device)
    dtype = property(lambda self: self._spec.dtype)
    part = property(lambda self: self._spec.part)
    test_size = property(lambda self: self._spec.test_size)
    seed = property(lambda self: self._spec.seed)
    n_features = property(lambda self: len(self._spec.features))

    @property
    def chunk_bytes(self) -> int:
        """Bytes of one full chunk's ``X``."""
        return self.rows * self.n_features * np.dtype(self.dtype).itemsize

    @property
    def n_rows(self) -> int:
        """Rows of the selected part (counted once, chunk by chunk, on the host)."""
        if self._n_rows is None:
            s = self._spec
            if s.part == "all" or s.test_size == 0:
                self._n_rows = s.hi - s.lo
            else:
                o = s.offset
                held = sum(int(held_out(a + o, b + o, s.test_size, s.seed).sum()) for a, b in self.spans())
                self._n_rows = held if s.part == "test" else s.hi - s.lo - held
        return self._n_rows

    def __len__(self) -> int:
        """Chunks per pass (before empty ones are skipped)."""
        return len(self.spans())

    def __repr__(self) -> str:
        where = "device" if self.device else "host"
        return (f"<FeatureChunks {self.part}: {self.n_features} features, {len(self)} chunks of "
                f"{self.rows:,} rows on the {where}>")

    def spans(self) -> list[tuple[int, int]]:
        """The ``(start, stop)`` frame rows of each chunk (before ``offset``)."""
        s = self._spec
        return [(a, min(a + s.rows, s.hi)) for a in range(s.lo, s.hi, s.rows)]

    # ------------------------------------------------------------ variants
    def replace(self, **changes) -> FeatureChunks:
        """The same chunks with some options changed, e.g. ``replace(part="test")``."""
        spec = dataclasses.replace(self._spec, **changes)
        if spec.part not in PARTS:
            raise ValueError(f"part must be one of {', '.join(PARTS)}; got {spec.part!r}")
        out = object.__new__(FeatureChunks)
        out.frame, out._spec, out._n_rows, out._cache, out._held = self.frame, spec, None, None, None
        return out

    def cached(self, classes: int | None = None, held_out: bool = False) -> FeatureChunks:
        """The same chunks, kept in host memory by the first pass and replayed by the
        later ones (:mod:`workbench.ml.chunk_cache`): for solvers that read them many
        times. Where the host lacks room, every pass assembles them as before. Chunks
        that are cached already come back as they are.

        ``classes``: ``y`` holds class codes ``0..classes-1``, kept in the smallest
        integer type that holds them (int8 for up to 128 classes).
        ``held_out``: the first pass over the training part keeps the rows it holds out
        as well, for :meth:`held_out_part` to replay."""
        from workbench.ml.chunk_cache import ALIGN, ChunkCache, _Block, code_dtype, fits_on_host

        if self._cache is not None:
            return self
        out = self.replace()
        s = self._spec
        # X, and y as it is kept: class codes in their small type, else at most 8 bytes
        y_bytes = 0 if s.target is None else code_dtype(classes).itemsize if classes else 8
        row_bytes = self.n_features * np.dtype(s.dtype).itemsize + y_bytes
        # at most every row, and each chunk's X and y (of both parts) on an aligned byte
        capacity = (s.hi - s.lo) * row_bytes + 4 * ALIGN * len(self.spans())
        if fits_on_host((s.hi - s.lo) * row_bytes):
            block = _Block(capacity) if s.device else None

            def cache(merge_rows=0):
                return ChunkCache(s.device, unified=s.device and self.frame._unified,
                                  log=self.frame._session.transfers, block=block,
                                  target_dtype=None if classes is None else code_dtype(classes),
                                  merge_rows=merge_rows)

            out._cache = cache()
            if held_out and s.part == "train" and s.test_size > 0:
                out._held = cache(merge_rows=s.rows)  # replayed in chunks of the usual size
        return out

    def held_out_part(self) -> FeatureChunks:
        """The held-out (test) rows of these training chunks: replayed from the host when
        the recorded pass kept them (:meth:`cached` with ``held_out``), else assembled as
        ``replace(part="test")`` assembles them."""
        out = self.replace(part="test")
        if self._held is not None and self._held.complete:
            out._cache = self._held
        return out

    @property
    def is_cached(self) -> bool:
        """Whether a complete pass is held in host memory (see :meth:`cached`)."""
        return self._cache is not None and self._cache.complete

    def partitions(self, n: int) -> list[FeatureChunks]:
        """``n`` chunk sets over consecutive row ranges (one per Dask worker); rows keep
        their frame index, so the train/test split is the same as over the whole frame."""
        s = self._spec
        if n < 1:
            raise ValueError(f"partitions needs n >= 1; got {n}")
        bounds = np.linspace(s.lo, s.hi, n + 1).astype(np.int64)
        return [self.replace(lo=int(a), hi=int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

    # ------------------------------------------------------------ iteration
    def __iter__(self):
        if self._cache is None:
            return self._assembled()
        if self._cache.complete:
            return self._cache.replay()
        held = self._held
        return self._cache.record(self._assembled(None if held is None else held.keep), held)

    def _assembled(self, held=None):
        """Chunks assembled from the frame's columns; ``held(X, y, start)`` is handed the
        rows a training part holds out."""
        s = self._spec
        table = self.frame._table
        arrays = [table.column(n).chunk(0) for n in s.features]
        target = table.column(s.target).chunk(0) if s.target is not None else None
        if s.device:
            from workbench.ml.device_chunks import DeviceAssembler

            assemble = DeviceAssembler(self.frame, arrays, target, s.rows, s.dtype)
            import cupy as xp
        else:
            assemble, xp = _HostAssembler(arrays, target, s.rows, s.dtype), np
        for start, stop in self.spans():
            X, y = assemble(start, stop)
            if y is not None and s.encode is not None:
                y = s.encode(y)
            if s.device and y is not None and not hasattr(y, "__cuda_array_interface__"):
                y = xp.asarray(y)
            if s.part != "all" and s.test_size > 0:
                keep = held_out(start + s.offset, stop + s.offset, s.test_size, s.seed, xp)
                if held is not None and s.part == "train":
                    Xh = X[keep]
                    if len(Xh):
                        held(Xh, None if y is None else y[keep], start + s.offset)
                    del Xh
                if s.part == "train":
                    keep = ~keep
                X, y = X[keep], (None if y is None else y[keep])
            if len(X):
                yield X, y, start + s.offset


def default_rows(frame, n_features: int, itemsize: int, device: bool) -> int:
    """Rows per chunk: on the device, chunks whose matrix and selected rows take an
    eighth of the device memory (twice the frame scans' partition); on the host, a
    sixteenth of the budget or the available memory; in whole 512s."""
    # Per row on the device: the matrix, the rows a split selects, one staging column.
    row_bytes = 2 * n_features * itemsize + 8
    policy = frame._session.policy
    if device and policy.device_memory:
        from workbench.frame.scan import chunk_rows

        # A chunk costs a few dozen kernel launches and waits whatever its size; its
        # peak (the matrix, staging, the split's hash and selections) is ~4x this
        # share, so an eighth still leaves the budget room beside it.
        return 2 * chunk_rows(frame, row_bytes)
    if policy.budget:
        room = policy.budget
    else:
        import psutil

        room = psutil.virtual_memory().available
    share = min(room // _CHUNK_SHARE, _MAX_HOST_CHUNK)
    return max(_ALIGN, share // row_bytes // _ALIGN * _ALIGN)


def host_values(arr: pa.Array) -> np.ndarray:
    """A NumPy view of a fixed-width Arrow slice without nulls (a copy for booleans,
    which Arrow packs in bits; an object array for strings and categoricals)."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        return arr.to_numpy(zero_copy_only=True)
    return arr.to_numpy(zero_copy_only=False)


class _HostAssembler:
    """Chunks as NumPy matrices, written column by column into one reused buffer."""

    def __init__(self, arrays, target, rows, dtype):
        self.arrays, self.target = arrays, target
        self.out = np.empty((min(rows, max(len(arrays[0]), 1)), len(arrays)), dtype=dtype)

    def __call__(self, start: int, stop: int):
        X = self.out[: stop - start]
        for j, arr in enumerate(self.arrays):
            X[:, j] = host_values(arr.slice(start, stop - start))
        y = None
        if self.target is not None:
            y = host_values(self.target.slice(start, stop - start))
        return X, y

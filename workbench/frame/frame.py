"""``Frame``: one copy of a table, with views for polars, pandas, Arrow, cudf and CuPy.

A Frame holds its data once, as Arrow columns in host memory (one contiguous chunk
per column), placed the way the platform lets the GPU use it best:

* unified memory (DGX Spark / GB10, Grace Hopper): plain host memory that the GPU
  reads in place, so GPU views are zero-copy;
* discrete GPUs (H100, H200 over PCIe): the same buffers pinned with
  ``cudaHostRegister`` (bounded by the policy's pinned limit; a large buffer that
  shares its memory pages with other data is moved onto pages of its own first, see
  :mod:`workbench.frame.pages`), so the one copy a
  GPU view needs runs at pinned speed, and stays resident on the device for later
  views and queries until the frame changes or the room is needed;
* CPU-only machines: plain Arrow buffers.

Views and what they cost:

==============  =====================================================================
``to_arrow``    the table itself, zero-copy.
``to_polars``   zero-copy for numeric, temporal and boolean columns; string columns
                are cast once into Arrow's string views, which polars takes as
                they are (cached per column: a CPU query converts only the columns
                it reads).
``to_pandas``   zero-copy with ``dtype_backend="pyarrow"`` (default); with ``"numpy"``
                numeric columns without nulls are zero-copy, others are converted.
``to_cudf``     zero-copy on unified memory; one pinned copy, then resident, on
                discrete GPUs.
``to_cupy``     a model-ready 2-D matrix assembled on the device from the (resident
                or unified) columns: no further host->device copy.
==============  =====================================================================

A frame can also be the result of a GPU query (``workbench.collect(..., as_frame=True)``):
its columns are then born on the device and stay there; the host copy is made once,
on the first CPU view, and from then on the frame is like any other.
"""

from __future__ import annotations

import html
import itertools
import warnings
import weakref

import polars as pl
import pyarrow as pa

from workbench.errors import DoesNotFit, PinnedLimitWarning
from workbench.frame import readers, residency
from workbench.frame.table import DeviceTable, as_polars, is_number, normalize
from workbench.optional import import_optional
from workbench.session import current_session, find_stack_level
from workbench.sizes import format_bytes

_tokens = itertools.count(1)
HTML_ROWS, HTML_COLUMNS = 5, 20  # what a notebook shows of a frame


class _Pins:
    """The host ranges a frame registered, released when the frame is freed."""

    def __init__(self):
        self.ranges: list[tuple[int, int]] = []
        self.table = None  # keeps the buffers alive until they are unregistered

    def release(self):
        if self.ranges:
            from workbench.frame import device as _device

            _device.unregister(self.ranges)
            self.ranges = []
        self.table = None


def _release(pins: _Pins, token: int, session_ref):
    pins.release()
    session = session_ref()
    cache = residency.held(session) if session is not None else None
    if cache is not None:
        cache.drop(token)


class Frame:
    """One table in host memory with zero-copy views; see the module docstring.

    Build one with :meth:`from_parquet`, :meth:`read_csv`, :meth:`from_polars`,
    :meth:`from_pandas`, :meth:`from_arrow` or :meth:`from_cudf`.

    Examples
    --------
    >>> import polars as pl, workbench as wb
    >>> f = wb.Frame.from_polars(pl.DataFrame({"k": ["a", "b", "a"], "v": [1, 2, 3]}))
    >>> wb.collect(f.lazy().group_by("k").agg(pl.col("v").sum()).sort("k"), engine="cpu")["v"].to_list()
    [4, 2]
    """

    def __init__(self, table: pa.Table, *, _polars: pl.DataFrame | None = None):
        self._host = normalize(table)
        self._start(self._host.column_names, _polars)
        self._pin()

    def _start(self, names: list[str], polars_view) -> None:
        self._polars = polars_view
        self._views: dict[str, pl.Series] = {}  # polars columns converted one by one
        self._device = None  # a GPU result's columns, until the host copy exists
        self._versions = {name: 0 for name in names}
        self._token = next(_tokens)
        self._session = current_session()
        self._pins = _Pins()
        self._unpinned = 0
        weakref.finalize(self, _release, self._pins, self._token, weakref.ref(self._session))

    @classmethod
    def _from_device(cls, result: DeviceTable) -> Frame:
        """A frame over a GPU query result, left on the device.

        The result's columns are the frame's device copy; the host copy is made on the
        first CPU view (see :meth:`_fetch`).
        """
        frame = cls.__new__(cls)
        frame._host = None
        frame._start(list(result.names), None)
        frame._device = result
        return frame

    @classmethod
    def _from_result(cls, table: pa.Table) -> Frame:
        """A frame over a GPU query's answer gathered on the host (a split's), left in
        plain memory like a fetched device result: an answer is most often read on the
        CPU, and registering its pages (~0.1 s per GB on the H200 machine) would be paid
        for a GPU read that may never come."""
        frame = cls.__new__(cls)
        frame._host = normalize(table)
        frame._start(frame._host.column_names, None)
        return frame

    @property
    def _table(self) -> pa.Table:
        if self._host is None:
            self._host = self._fetch()
        return self._host

    def _fetch(self) -> pa.Table:
        """Copy a GPU result to host memory, once; its device columns become resident.

        See :mod:`workbench.frame.fetch` for how the bytes cross the bus.
        """
        from workbench.frame.fetch import fetch

        result = self._device
        table, _ = fetch(result, self._session.transfers)
        cache = residency.cache(self._session)
        for col, name in zip(result.columns, result.names):
            nbytes = col.device_buffer_size()
            try:
                cache.reserve(nbytes, keep=set())
            except DoesNotFit:  # larger than the resident limit: the host copy serves
                continue
            cache.put((self._token, name, 0), col, nbytes)
        self._device = None
        return table

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_arrow(cls, data) -> Frame:
        """From a ``pyarrow.Table``, ``RecordBatch`` or anything with ``__arrow_c_stream__``."""
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        elif not isinstance(data, pa.Table):
            if not hasattr(data, "__arrow_c_stream__"):
                raise TypeError(f"from_arrow takes a pyarrow Table, a RecordBatch or an object with "
                                f"__arrow_c_stream__, not {type(data).__name__}; for a dict of "
                                "columns use Frame.from_polars(polars.DataFrame(data))")
            data = pa.table(data)
        return cls(data)

    @classmethod
    def from_polars(cls, df: pl.DataFrame) -> Frame:
        """From a polars DataFrame; numeric columns are shared, not copied.

        On discrete GPUs, large buffers that do not start on a page boundary (polars'
        often do not) are copied once onto pages of their own so they can be pinned.
        """
        if isinstance(df, pl.LazyFrame):
            raise TypeError("from_polars takes a DataFrame; collect the LazyFrame first "
                            "(or use workbench.collect) and pass the result")
        if not isinstance(df, pl.DataFrame):
            raise TypeError(f"from_polars takes a polars DataFrame, not {type(df).__module__}."
                            f"{type(df).__name__}; use {_constructor_for(df)}")
        df = df.rechunk()
        return cls(df.to_arrow(), _polars=df)

    @classmethod
    def from_pandas(cls, df) -> Frame:
        """From a pandas DataFrame (the index is dropped unless it is named)."""
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"from_pandas takes a pandas DataFrame, not {type(df).__module__}."
                            f"{type(df).__name__}; use {_constructor_for(df)}")
        repeated = sorted({str(n) for n in df.columns[df.columns.duplicated()]})
        if repeated:  # pyarrow's own error names them but not the fix
            raise ValueError(f"column names must be unique; repeated: {repeated}; rename them "
                             "first (df.columns = [...] or df.rename(columns=...))")
        keep_index = any(name is not None for name in df.index.names)
        return cls(pa.Table.from_pandas(df, preserve_index=keep_index))

    @classmethod
    def from_parquet(cls, path, columns: list[str] | None = None) -> Frame:
        """From a Parquet file, a folder of Parquet files, or a URL (``s3://...``).

        ``~`` is expanded. An empty folder, a file that is not Parquet and files whose
        schemas clash raise errors naming them (and, for a clash, the column). Files whose
        columns would take more host memory than is available (their footers say how
        much) raise :class:`~workbench.errors.LargerThanMemory` before anything is read,
        instead of the process being killed: read fewer ``columns``, or query the files
        lazily (``wb.collect(pl.scan_parquet(path)...)``, which streams them).
        """
        return cls(readers.read_parquet(path, columns))

    @classmethod
    def read_csv(cls, path, **options) -> Frame:
        """From a CSV file, read by polars (``options`` go to :func:`polars.read_csv`).

        ``~`` is expanded and URLs go to polars as given. A malformed file raises
        ``ValueError`` naming the file, the offending line and the fix; a file that is
        not UTF-8 names the line and the ``encoding=`` to pass; a file larger than the
        host memory available (without ``columns=``) raises
        :class:`~workbench.errors.LargerThanMemory` before it is read.
        """
        return cls.from_polars(readers.read_csv(path, options))

    @classmethod
    def from_cudf(cls, gdf) -> Frame:
        """From a cudf DataFrame: one device->host copy into the frame's host memory."""
        import time

        if not hasattr(gdf, "to_arrow") or type(gdf).__module__.split(".")[0] != "cudf":
            raise TypeError(f"from_cudf takes a cudf DataFrame, not {type(gdf).__module__}."
                            f"{type(gdf).__name__}; use {_constructor_for(gdf)}")
        start = time.perf_counter()
        table = gdf.to_arrow(preserve_index=False)
        current_session().transfers.record("from_cudf", table.nbytes, "device-to-host",
                                           "pageable", time.perf_counter() - start)
        return cls(table)

    # ------------------------------------------------------------ description
    @property
    def columns(self) -> list[str]:
        return list(self._versions) if self._host is None else self._host.column_names

    @property
    def schema(self) -> pl.Schema:
        """The polars schema of the frame."""
        if self._host is None:
            return self._device.schema
        return pl.from_arrow(self._host.schema.empty_table()).schema

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), len(self._versions)

    @property
    def nbytes(self) -> int:
        """Bytes of the frame's data (on the device for a GPU result not yet on the host)."""
        if self._host is None:
            return self._device.nbytes
        return self._host.nbytes

    def __len__(self) -> int:
        return self._device.rows if self._host is None else self._host.num_rows

    def __repr__(self) -> str:
        rows, cols = self.shape
        return f"<workbench.Frame {rows:,} rows x {cols} columns, {format_bytes(self.nbytes)}>"

    def _repr_html_(self) -> str:
        """The frame in a notebook: its shape, each column's type and place, the first rows.

        A GPU result not yet copied to the host shows no rows: showing them would copy it.
        """
        rows, cols = self.shape
        places = dict(self.placement().select("column", "location").iter_rows())
        names = self.columns[:HTML_COLUMNS]
        schema = self.schema
        cell = lambda v, tag="td": f"<{tag}>{html.escape(str(v))[:60]}</{tag}>"  # noqa: E731
        head = [cell("", "th") + "".join(cell(n, "th") for n in names),
                cell("type", "th") + "".join(cell(schema[n]) for n in names),
                cell("where", "th") + "".join(cell(places[n]) for n in names)]
        body = []
        if self._host is not None:
            for i, row in enumerate(self._host.select(names).slice(0, HTML_ROWS).to_pylist()):
                body.append(cell(i, "th") + "".join(cell(row[n]) for n in names))
        more = [f"{rows - HTML_ROWS:,} more rows"] if self._host is not None and rows > HTML_ROWS else []
        more += [f"{cols - HTML_COLUMNS} more columns"] if cols > HTML_COLUMNS else []
        more += ["rows are on the device until a CPU view copies them"] if self._host is None else []
        caption = f"workbench.Frame: {rows:,} rows × {cols} columns, {format_bytes(self.nbytes)}"
        return ("<table><caption style='text-align:left'>" + html.escape(caption) + "</caption><thead>"
                + "".join(f"<tr>{r}</tr>" for r in head) + "</thead><tbody>"
                + "".join(f"<tr>{r}</tr>" for r in body) + "</tbody></table>"
                + (f"<p>… {html.escape(', '.join(more))}</p>" if more else ""))

    # ------------------------------------------------------------ placement
    @property
    def _unified(self) -> bool:
        return self._session.gpu and self._session.policy.host_buffers == "unified"

    def _pin(self) -> None:
        """Register the frame's large buffers when the policy says so.

        Buffers that do not own their pages are first moved onto pages of their own
        (see :mod:`workbench.frame.pages`); the rest are pinned where they are.
        """
        policy = self._session.policy
        if not (self._session.gpu and policy.host_buffers == "pinned"):
            return
        from workbench.frame import device as _device
        from workbench.frame.pages import dedicated, page_ranges

        self._session.ensure_gpu()
        self._host, buffers, moved = dedicated(self._host)
        if moved:
            self._polars, self._views = None, {}  # the polars views shared the old buffers
            self._session.note(f"{moved / 1e9:.2f} GB of a frame's buffers did not own their "
                               "memory pages and were moved onto pages of their own to be pinned")
        done, skipped = _device.register(page_ranges(buffers), policy.pinned_limit)
        self._pins.ranges, self._pins.table = done, self._host
        self._unpinned = skipped
        if skipped:
            message = (f"{skipped / 1e9:.2f} GB of this frame were not pinned (pinned limit "
                       f"{policy.pinned_limit / 1e9:.1f} GB reached, or pages already registered): "
                       "its GPU copies of them run at pageable speed")
            self._session.note(message)
            warnings.warn(message, PinnedLimitWarning, stacklevel=find_stack_level())

    def placement(self) -> pl.DataFrame:
        """Where each column's buffers live.

        ``bytes`` is the column's size, ``size`` the same for people (``"12.3 MB"``).
        ``location`` is one of ``"host plain"``, ``"host pinned"``, ``"unified"``
        (host memory the GPU reads in place), plus ``" + device resident"`` when a
        device copy is held. Buffers under 1 MiB are never pinned (registering them
        costs more than it saves), so small columns stay ``"host plain"`` on discrete
        GPUs; a large column left plain there means the pinned limit was reached (the
        session log says so).
        """
        schema = ["column", "arrow_type", "bytes", "size", "location"]
        if self._host is None:
            return pl.DataFrame(
                [(n, str(t), c.device_buffer_size(), format_bytes(c.device_buffer_size()),
                  "device only (host copy on first CPU view)")
                 for n, t, c in zip(self.columns, self.schema.dtypes(), self._device.columns)],
                schema=schema, orient="row")
        rows = []
        resident = residency.held(self._session)
        if self._pins.ranges:
            from workbench.frame.device import is_pinned
        for name, col in zip(self.columns, self._table.columns):
            bufs = [b for b in col.chunk(0).buffers() if b is not None and b.size]
            if self._unified:
                where = "unified"
            elif self._pins.ranges and bufs and all(
                    is_pinned(b.address, b.size) for b in bufs if b.size >= 1 << 20):
                where = "host pinned" if any(b.size >= 1 << 20 for b in bufs) else "host plain"
            else:
                where = "host plain"
            if resident is not None and resident.holds(self._token, name, self._versions[name]):
                where += " + device resident"
            rows.append((name, str(col.type), col.nbytes, format_bytes(col.nbytes), where))
        return pl.DataFrame(rows, schema=schema, orient="row")

    # ------------------------------------------------------------ changes
    def __setitem__(self, name: str, values) -> None:
        """Add or replace a column; GPU views taken later see the new values."""
        array = values.to_arrow() if isinstance(values, pl.Series) else values
        if not isinstance(array, (pa.Array, pa.ChunkedArray)):
            array = pa.array(array)
        if len(array) != len(self):
            raise ValueError(f"column {name!r} has {len(array)} values; the frame has {len(self)} rows")
        table = self._table
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, array)
        else:
            table = table.append_column(name, array)
        self._replace(table, changed=[name])

    def drop(self, *names: str) -> None:
        """Remove columns in place."""
        missing = [n for n in names if n not in self._versions]
        if missing:
            raise KeyError(f"no column {missing} in the frame; columns are {self.columns}")
        self._replace(self._table.drop_columns(list(names)), changed=list(names))

    def _replace(self, table: pa.Table, changed: list[str]) -> None:
        self._pins.release()
        self._host = normalize(table)
        self._polars = None
        for name in changed:
            self._views.pop(name, None)
            self._versions[name] = self._versions.get(name, -1) + 1
            cache = residency.held(self._session)
            if cache is not None:
                cache.drop(self._token, name)
        for name in [n for n in self._versions if n not in self._table.column_names]:
            del self._versions[name]
        self._pin()

    # ------------------------------------------------------------ CPU views
    def to_arrow(self) -> pa.Table:
        """The frame's own Arrow table (zero-copy; Arrow data is immutable)."""
        return self._table

    def to_polars(self) -> pl.DataFrame:
        """A polars DataFrame over the frame's buffers (strings copied once, cached)."""
        if self._polars is None:
            self._polars = self._polars_columns(self.columns)
        return self._polars

    def _polars_columns(self, names: list[str]) -> pl.DataFrame:
        """The polars view of columns ``names`` alone: a column is converted on its first
        use and kept, so a query over a few columns of a wide frame does not pay for
        copying every string column (a second or more at 1e8 rows)."""
        if self._polars is not None:
            return self._polars.select(names)
        missing = [n for n in dict.fromkeys(names) if n not in self._views]
        if missing:
            converted = as_polars(self._table.select(missing))
            self._views.update((n, converted.to_series(i)) for i, n in enumerate(missing))
        return pl.DataFrame([self._views[n] for n in names])

    def to_pandas(self, dtype_backend: str = "pyarrow"):
        """A pandas DataFrame; zero-copy with ``dtype_backend="pyarrow"``."""
        import pandas as pd

        if dtype_backend == "pyarrow":
            return self._table.to_pandas(types_mapper=pd.ArrowDtype)
        if dtype_backend == "numpy":
            return self._table.to_pandas(split_blocks=True, self_destruct=False)
        raise ValueError(f"dtype_backend must be 'pyarrow' or 'numpy', got {dtype_backend!r}")

    def to_numpy(self, columns: list[str] | None = None, dtype: str = "float32"):
        """A 2-D NumPy matrix of numeric columns (the CPU twin of :meth:`to_cupy`)."""
        import numpy as np

        names = self._numeric_columns(columns, "to_numpy")
        self._check_cast(names, dtype, "to_numpy")
        out = np.empty((len(self), len(names)), dtype=dtype, order="F")
        for j, name in enumerate(names):
            out[:, j] = self._table.column(name).to_numpy(zero_copy_only=False)
        return out

    def _check_cast(self, names: list[str], dtype, method: str) -> None:
        """Refuse a matrix dtype that would change values: integers out of its range
        (they would wrap) or fractions (they would be truncated)."""
        import numpy as np
        import pyarrow.compute as pc

        target = np.dtype(dtype)
        if target.kind not in "iub" or self._host is None:
            return
        info = np.iinfo(target) if target.kind in "iu" else None
        for name in names:
            column = self._table.column(name)
            if pa.types.is_floating(column.type):
                raise TypeError(f"{method}(dtype={dtype!r}) would truncate the fractions of the "
                                f"float column {name!r}; use a float dtype, or cast the column "
                                "to integers yourself first")
            lo_hi = pc.min_max(column)
            lo, hi = lo_hi["min"].as_py(), lo_hi["max"].as_py()
            if info is not None and lo is not None and (lo < info.min or hi > info.max):
                raise OverflowError(f"column {name!r} holds values from {lo} to {hi}, outside "
                                    f"{target} ({info.min}..{info.max}); {method} would wrap them: "
                                    "choose a wider dtype such as 'int64' or 'float64'")

    def _numeric_columns(self, columns, method: str) -> list[str]:
        names = list(columns) if columns is not None else self.columns
        schema = self.schema
        for name in names:
            if name not in self._versions:
                raise KeyError(f"no column {name!r} in the frame; columns are {self.columns}")
            dtype = schema[name]
            if not (is_number(dtype) or dtype == pl.Boolean):
                raise TypeError(
                    f"column {name!r} has type {dtype}, which {method}() cannot put in a "
                    "numeric matrix; encode it first (e.g. with polars "
                    "`.to_physical()` or one-hot encoding) or leave it out of `columns`")
            nulls = (self._device.column(name).null_count() if self._host is None
                     else self._host.column(name).null_count)
            if nulls:
                raise TypeError(
                    f"column {name!r} has {nulls} nulls, which {method}() cannot put "
                    "in a numeric matrix; fill or drop them first (polars `fill_null`)")
        return names

    # ------------------------------------------------------------ GPU views
    def _device_columns(self, names: list[str]) -> list:
        """pylibcudf columns for ``names``: views on unified memory, else resident copies."""
        from workbench.frame import device as _device

        session = self._session
        session.ensure_gpu()
        if self._host is None:  # a GPU result: its own columns
            return [self._device.column(n) for n in names]
        if self._unified:
            return [_device.to_column(self._table.column(n).chunk(0), n, zero_copy=True,
                                      log=session.transfers) for n in names]
        cache = residency.cache(session)
        keys = [(self._token, n, self._versions[n]) for n in names]
        missing = [(k, n) for k, n in zip(keys, names) if cache.get(k) is None]
        if missing:
            needed = sum(self._table.column(n).nbytes for _, n in missing)
            cache.reserve(needed, keep=set(keys))
            for key, name in missing:
                col = self._table.column(name).chunk(0)
                cache.put(key, _device.to_column(col, name, zero_copy=False, log=session.transfers),
                          col.nbytes)
        return [cache.get(k) for k in keys]

    def to_cudf(self, columns: list[str] | None = None):
        """A cudf DataFrame over the frame's device data.

        Zero-copy on unified memory; on discrete GPUs one pinned copy the first time,
        then the resident copy is shared. Treat the result as read-only (it shares
        device memory with the frame); ``.copy()`` it before changing it in place.
        cudf has no date type: date columns come back as ``datetime64`` columns.
        """
        self._session.ensure_gpu()  # on the CPU: GPUUnavailableError saying why
        cudf = import_optional("cudf", "to_cudf")
        import pylibcudf as plc

        names = list(columns) if columns is not None else self.columns
        cols = self._device_columns(names)
        return cudf.DataFrame.from_pylibcudf(plc.Table(cols), {"columns": names})

    def to_cupy(self, columns: list[str] | None = None, dtype: str = "float32"):
        """A model-ready 2-D CuPy matrix (Fortran order) of numeric columns.

        Built on the device from the frame's device columns, so the only host->device
        traffic is the first (resident) copy on discrete GPUs, and none on unified memory.
        """
        self._session.ensure_gpu()  # on the CPU: GPUUnavailableError saying why
        cp = import_optional("cupy", "to_cupy")
        from workbench.frame import device as _device

        names = self._numeric_columns(columns, "to_cupy")
        self._check_cast(names, dtype, "to_cupy")
        cols = self._device_columns(names)
        out = cp.empty((len(self), len(names)), dtype=dtype, order="F")
        for j, col in enumerate(cols):
            out[:, j] = _device.cupy_view(col)
        return out

    # ------------------------------------------------------------ queries
    def lazy(self) -> pl.LazyFrame:
        """A polars LazyFrame over this frame, for :func:`workbench.collect`.

        The scan hands polars its zero-copy polars view on the CPU and, inside
        ``workbench.collect`` on the GPU, the frame's device-resident columns, so
        repeated GPU queries do not copy the data again.
        """
        from polars.io.plugins import register_io_source

        from workbench.frame.scan import source

        return register_io_source(source(self), schema=self.schema)


def _constructor_for(data) -> str:
    """The Frame constructor that takes ``data`` (for errors that name the right one)."""
    module = type(data).__module__.split(".")[0]
    return {"polars": "Frame.from_polars", "pandas": "Frame.from_pandas", "pyarrow": "Frame.from_arrow",
            "cudf": "Frame.from_cudf"}.get(module, "Frame.from_polars(polars.DataFrame(data))")

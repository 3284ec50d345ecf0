"""Frame on the CPU: constructors, zero-copy views, round-trips, changes, errors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench as wb

ARROW_TYPES = {
    "int8": pa.int8(), "int32": pa.int32(), "int64": pa.int64(), "uint16": pa.uint16(),
    "float32": pa.float32(), "float64": pa.float64(), "bool": pa.bool_(),
    "string": pa.string(), "large_string": pa.large_string(), "date32": pa.date32(),
    "timestamp_us": pa.timestamp("us"),
}


def _values(kind: str):
    base = {
        "int8": st.integers(-128, 127), "int32": st.integers(-2**31, 2**31 - 1),
        "int64": st.integers(-2**63, 2**63 - 1), "uint16": st.integers(0, 2**16 - 1),
        "float32": st.floats(width=32, allow_nan=False), "float64": st.floats(allow_nan=False),
        "bool": st.booleans(), "string": st.text(max_size=8), "large_string": st.text(max_size=8),
        "date32": st.dates(dt.date(1970, 1, 1), dt.date(2200, 1, 1)),
        "timestamp_us": st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2200, 1, 1)),
    }[kind]
    return st.one_of(st.none(), base)


@st.composite
def tables(draw):
    kinds = draw(st.lists(st.sampled_from(sorted(ARROW_TYPES)), min_size=1, max_size=6))
    rows = draw(st.integers(0, 40))
    arrays, names = [], []
    for i, kind in enumerate(kinds):
        values = draw(st.lists(_values(kind), min_size=rows, max_size=rows))
        arrays.append(pa.array(values, type=ARROW_TYPES[kind]))
        names.append(f"c{i}_{kind}")
    return pa.Table.from_arrays(arrays, names=names)


@settings(max_examples=60, deadline=None)
@given(tables())
def test_arrow_round_trip_keeps_values_and_types(table):
    frame = wb.Frame.from_arrow(table)
    assert frame.to_arrow().equals(table)
    assert frame.shape == (table.num_rows, table.num_columns)


@settings(max_examples=60, deadline=None)
@given(tables())
def test_polars_view_round_trips(table):
    frame = wb.Frame.from_arrow(table)
    df = frame.to_polars()
    back = wb.Frame.from_polars(df)
    # polars stores strings as large strings: compare values column by column
    for name in table.column_names:
        assert back.to_arrow().column(name).to_pylist() == table.column(name).to_pylist()
    assert df.equals(pl.from_arrow(table))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=30)), max_size=40),
       st.lists(st.one_of(st.none(), st.binary(max_size=30)), max_size=40),
       st.integers(0, 40), st.integers(0, 40), st.integers(1, 4), st.integers(1, 16))
def test_strings_reach_polars_through_views_unchanged(texts, blobs, start, length, chunks, cores):
    # long strings (over 12 bytes) live outside the view; slices and several chunks,
    # as a split's answer has them, keep their offsets; so do the slices a column is
    # cut into when cores outnumber the string columns (every column cut here)
    from workbench.frame import table as tables
    from workbench.frame.table import as_polars

    rows = min(len(texts), len(blobs))
    texts = texts[:rows]
    step = max(1, -(-rows // chunks))
    table = pa.table({"s": pa.chunked_array([pa.array(texts[i:i + step], pa.large_string())
                                             for i in range(0, rows, step)] or
                                            [pa.array([], pa.large_string())]),
                      "b": pa.array(blobs[:rows], pa.binary()), "n": pa.array(range(rows))})
    table = table.slice(min(start, rows), length)  # a row range in the middle, as samples read
    rows_before, tables.PIECE_ROWS = tables.PIECE_ROWS, 1
    try:
        df = as_polars(table, cores)
    finally:
        tables.PIECE_ROWS = rows_before
    assert df.equals(pl.from_arrow(table))
    assert df["s"].to_list() == table.column("s").to_pylist()
    assert df["b"].to_list() == table.column("b").to_pylist()


@settings(max_examples=60, deadline=None)
@given(tables())
def test_pandas_views_round_trip(table):
    frame = wb.Frame.from_arrow(table)
    arrow_backed = frame.to_pandas()
    assert pa.Table.from_pandas(arrow_backed, preserve_index=False).equals(table)
    numpy_backed = frame.to_pandas(dtype_backend="numpy")
    assert list(numpy_backed.columns) == table.column_names
    assert len(numpy_backed) == table.num_rows


def _numeric_table(n=1000):
    rng = np.random.default_rng(0)
    return pa.table({"a": rng.integers(0, 100, n), "x": rng.normal(size=n),
                     "s": pa.array([f"id{i % 7}" for i in range(n)], pa.large_string())})


def test_views_share_the_frames_buffers():
    frame = wb.Frame.from_arrow(_numeric_table())
    table = frame.to_arrow()
    data_address = table.column("x").chunk(0).buffers()[1].address
    assert frame.to_arrow() is table
    # polars: numeric columns point at the same memory
    ptr, offset, length = frame.to_polars()["x"]._get_buffer_info()
    assert ptr == data_address and offset == 0 and length == len(frame)
    # pandas, Arrow-backed: the same Arrow buffers
    pd_arrow = frame.to_pandas()["x"].array._pa_array.chunk(0)
    assert pd_arrow.buffers()[1].address == data_address
    # pandas, NumPy-backed: numeric columns without nulls are views too
    assert frame.to_pandas(dtype_backend="numpy")["x"].to_numpy().__array_interface__["data"][0] == data_address


def test_from_polars_shares_numeric_buffers_and_keeps_the_polars_frame():
    df = pl.DataFrame({"x": np.arange(10_000, dtype=np.float64), "k": ["a", "b"] * 5000})
    frame = wb.Frame.from_polars(df)
    assert frame.to_polars() is not None
    assert frame.to_polars()["x"]._get_buffer_info()[0] == df["x"]._get_buffer_info()[0]
    assert frame.to_arrow().column("x").chunk(0).buffers()[1].address == df["x"]._get_buffer_info()[0]


def test_cpu_frames_copy_nothing_to_a_gpu():
    s = wb.init(backend="cpu")
    frame = wb.Frame.from_arrow(_numeric_table())
    frame.to_polars(), frame.to_pandas(), frame.to_numpy(["a", "x"])
    assert s.transfers.total_bytes() == 0
    assert set(frame.placement()["location"]) == {"host plain"}


def test_parquet_file_and_directory(tmp_path):
    table = _numeric_table(500)
    pq.write_table(table, tmp_path / "one.parquet")
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(table.slice(0, 200), folder / "part-0.parquet")
    pq.write_table(table.slice(200), folder / "part-1.parquet")
    assert wb.Frame.from_parquet(tmp_path / "one.parquet").to_arrow().equals(table)
    from_dir = wb.Frame.from_parquet(folder)
    assert from_dir.to_arrow().num_rows == 500
    assert from_dir.to_arrow().column("a").num_chunks == 1  # contiguous for the GPU
    assert from_dir.to_polars().equals(pl.from_arrow(table))
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        wb.Frame.from_parquet(tmp_path / "missing.parquet")


def test_csv_reads_and_malformed_csv_names_the_file(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("a,b\n1,x\n2,y\n")
    assert wb.Frame.read_csv(good).to_polars()["a"].to_list() == [1, 2]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,x\n2,y,extra,fields\n")
    with pytest.raises(ValueError, match="bad.csv"):
        wb.Frame.read_csv(bad)


def test_from_pandas_keeps_values():
    pdf = pd.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"]})
    frame = wb.Frame.from_pandas(pdf)
    assert frame.to_polars()["b"].to_list() == ["x", None, "z"]


def test_changes_are_seen_by_later_views_and_inputs_are_not_modified():
    df = pl.DataFrame({"a": [1, 2, 3]})
    frame = wb.Frame.from_polars(df)
    before = frame.to_polars()
    frame["a"] = pl.Series([10, 20, 30])
    frame["b"] = [1.5, 2.5, 3.5]
    assert frame.to_polars()["a"].to_list() == [10, 20, 30]
    assert frame.columns == ["a", "b"]
    assert before["a"].to_list() == [1, 2, 3] and df["a"].to_list() == [1, 2, 3]
    frame.drop("b")
    assert frame.columns == ["a"]
    with pytest.raises(ValueError, match="3 rows"):
        frame["c"] = [1, 2]
    with pytest.raises(KeyError, match="nope"):
        frame.drop("nope")


def test_to_numpy_refuses_strings_and_nulls_naming_the_column():
    frame = wb.Frame.from_arrow(pa.table({"s": ["a", "b"], "n": pa.array([1.0, None])}))
    with pytest.raises(TypeError, match="(?i)'s'.*string"):
        frame.to_numpy(["s"])
    with pytest.raises(TypeError, match="'n' has 1 nulls"):
        frame.to_numpy(["n"])
    with pytest.raises(KeyError, match="'zz'"):
        frame.to_numpy(["zz"])


def test_to_numpy_is_a_float32_fortran_matrix():
    frame = wb.Frame.from_arrow(_numeric_table(100))
    m = frame.to_numpy(["a", "x"])
    assert m.dtype == np.float32 and m.shape == (100, 2) and m.flags.f_contiguous
    np.testing.assert_allclose(m[:, 1], frame.to_arrow().column("x").to_numpy().astype(np.float32))


def test_duplicate_column_names_are_refused():
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(ValueError, match="unique"):
        wb.Frame.from_arrow(table)


def test_from_polars_refuses_a_lazyframe():
    with pytest.raises(TypeError, match="collect"):
        wb.Frame.from_polars(pl.LazyFrame({"a": [1]}))


def test_notebook_view_shows_shape_types_places_and_first_rows():
    frame = wb.Frame.from_polars(pl.DataFrame({"k": [f"<{i}>" for i in range(12)], "v": list(range(12))}))
    page = frame._repr_html_()
    assert "workbench.Frame: 12 rows × 2 columns" in page
    assert "<td>String</td>" in page and "<td>Int64</td>" in page and "<td>host plain</td>" in page
    assert "<td>&lt;0&gt;</td>" in page  # values are escaped
    assert "&lt;5&gt;" not in page and "7 more rows" in page  # the first rows only
    assert " object at 0x" not in page and " object at 0x" not in repr(frame)
    wide = wb.Frame.from_polars(pl.DataFrame({f"c{i}": [i] for i in range(30)}))
    assert "10 more columns" in wide._repr_html_() and "<th>c19</th>" in wide._repr_html_()


def test_placement_gives_sizes_for_people():
    frame = wb.Frame.from_polars(pl.DataFrame({"v": list(range(250_000))}))
    row = frame.placement().row(0, named=True)
    assert row["bytes"] == 2_000_000 and row["size"] == "2.0 MB"
    assert repr(frame) == "<workbench.Frame 250,000 rows x 1 columns, 2.0 MB>"


def test_a_query_converts_only_the_columns_it_reads_for_polars():
    wb.init(backend="cpu")
    df = pl.DataFrame({"s": ["a", "b", "a", None], "t": ["x", "y", "z", "w"],
                       "k": [1, 2, 1, 2], "v": [1.0, 2.0, 3.0, 4.0]})
    frame = wb.Frame.from_arrow(df.to_arrow())
    sums = wb.collect(frame.lazy().group_by("k").agg(pl.col("v").sum()).sort("k"))
    assert sums["v"].to_list() == [4.0, 6.0]
    assert set(frame._views) == {"k", "v"} and frame._polars is None  # no string copied yet
    by_s = wb.collect(frame.lazy().group_by("s").agg(pl.len()).sort("s", nulls_last=True))
    assert by_s["len"].to_list() == [2, 1, 1] and "t" not in frame._views
    frame["s"] = pl.Series(["c", "c", "c", "c"])  # a changed column is converted again
    assert "s" not in frame._views
    assert wb.collect(frame.lazy().select(pl.col("s").n_unique())).item() == 1
    assert frame.to_polars().equals(df.with_columns(pl.lit("c").alias("s")))
    frame.drop(*frame.columns)  # no column left: an empty view, as polars gives one
    assert frame.to_polars().shape == (0, 0)

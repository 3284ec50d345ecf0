"""Hostile input to the Python API: each case asserts the exact error type, that the
message names the thing and the fix, and that the input was not changed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import workbench as wb
from workbench.errors import ConfigurationError, GPUUnavailableError


def _digest(path: Path) -> str:
    if path.is_dir():
        return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes()
                                       for p in sorted(path.rglob("*")) if p.is_file())).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raises_unchanged(path: Path, error: type, *parts: str):
    """A context: the block raises exactly ``error`` whose message has ``parts``; ``path`` is unchanged."""
    class _Check:
        def __enter__(self):
            self.before = _digest(path)
            self.ctx = pytest.raises(error)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            assert type(self.info.value) is error, f"{type(self.info.value).__name__}: {self.info.value}"
            for part in parts:
                assert part in str(self.info.value), (part, str(self.info.value))
            assert _digest(path) == self.before, f"{path} was changed"
            return handled
    return _Check()


# ---------------------------------------------------------------------------- wb.init options


@pytest.mark.parametrize("options,named,fix", [
    ({"backend": "fast"}, "backend='fast'", "auto, cpu, gpu"),
    ({"backend": "GPU"}, "backend='GPU'", "auto, cpu, gpu"),
    ({"memory": "bogus"}, "memory='bogus'", "auto"),
    ({"budget": "-1GB"}, "budget", "more than 0"),
    ({"budget": "10XB"}, "budget", "'8GB'"),
    ({"budget": 0}, "budget", "more than 0"),
    ({"budget": 1.5}, "budget", "fraction"),
    ({"budget": "lots"}, "budget", "'8GB'"),
])
def test_init_refuses_bad_options_naming_them(options, named, fix):
    with pytest.raises(ConfigurationError) as info:
        wb.init(**options)
    assert type(info.value) is ConfigurationError
    assert named in str(info.value) and fix in str(info.value), str(info.value)


def test_init_gpu_without_a_gpu_says_why_and_what_to_do():
    from profiles import PROFILES

    with pytest.raises(GPUUnavailableError) as info:
        wb.init(backend="gpu", probes=PROFILES["none"])
    assert type(info.value) is GPUUnavailableError
    assert "no usable GPU" in str(info.value) and "backend='auto'" in str(info.value)


# ---------------------------------------------------------------------------- env variables


@pytest.mark.parametrize("name,value,fix", [
    ("WORKBENCH_BACKEND", "garbage", "auto, cpu, gpu"),
    ("WORKBENCH_MEMORY", "bogus", "auto"),
    ("WORKBENCH_GPU_BUDGET", "garbage", "'8GB'"),
    ("WORKBENCH_GPU_BUDGET", "-5", "more than 0"),
])
def test_bad_variables_are_named_by_init(monkeypatch, name, value, fix):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        wb.init()
    assert type(info.value) is ConfigurationError
    assert name in str(info.value) and fix in str(info.value), str(info.value)


def test_data_home_for_a_user_that_does_not_exist(monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", "~nosuchuser_xyz/cache")
    with pytest.raises(ConfigurationError) as info:
        wb.config.data_home()
    assert "WORKBENCH_DATA" in str(info.value) and "folder path" in str(info.value)


# ---------------------------------------------------------------------------- files


@pytest.fixture
def files(tmp_path):
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4\n5,6,7\n8,9\n")
    (tmp_path / "typed.csv").write_text("a,b\n" + "1,2\n" * 3000 + "x,3\n")
    (tmp_path / "latin1.csv").write_bytes("name,v\nAnn,1\nJosé,2\n".encode("latin-1"))
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "empty").mkdir()
    (tmp_path / "clash").mkdir()
    pq.write_table(pa.table({"a": [1, 2], "b": [1.0, 2.0]}), tmp_path / "clash" / "part-0.parquet")
    pq.write_table(pa.table({"a": ["x", "y"], "b": [3.0, 4.0]}), tmp_path / "clash" / "part-1.parquet")
    (tmp_path / "not.parquet").write_text("this is not parquet\n")
    return tmp_path


def test_ragged_csv_names_file_line_and_option(files):
    path = files / "ragged.csv"
    with raises_unchanged(path, ValueError, str(path), "line 4", "truncate_ragged_lines=True"):
        wb.Frame.read_csv(path)


def test_unparsable_value_names_the_line_not_a_byte_offset(files):
    path = files / "typed.csv"
    with raises_unchanged(path, ValueError, "line 3002", "schema_overrides") as info:
        wb.Frame.read_csv(path, schema_overrides={"a": pl.Int64})
    assert "byte" not in str(info.value)


def test_latin1_csv_names_the_line_and_the_encoding_to_pass(files):
    path = files / "latin1.csv"
    with raises_unchanged(path, ValueError, str(path), "line 3", "encoding='latin-1'"):
        wb.Frame.read_csv(path)
    assert wb.Frame.read_csv(path, encoding="latin-1").to_polars()["name"].to_list() == ["Ann", "José"]


def test_empty_csv_is_named(files):
    path = files / "empty.csv"
    with raises_unchanged(path, ValueError, str(path), "empty", "header"):
        wb.Frame.read_csv(path)


def test_read_csv_of_a_folder(files):
    with raises_unchanged(files / "empty", IsADirectoryError, "is a folder", "scan_csv"):
        wb.Frame.read_csv(files / "empty")


def test_tilde_is_expanded(files, monkeypatch):
    monkeypatch.setenv("HOME", str(files))
    assert wb.Frame.read_csv("~/ragged.csv", truncate_ragged_lines=True).shape == (4, 2)
    with pytest.raises(FileNotFoundError) as info:
        wb.Frame.read_csv("~/missing.csv")
    assert str(files / "missing.csv") in str(info.value)


def test_tilde_of_an_unknown_user_is_named():
    with pytest.raises(FileNotFoundError) as info:
        wb.Frame.from_parquet("~nosuchuser_xyz/data.parquet")
    assert type(info.value) is FileNotFoundError
    assert "'~nosuchuser_xyz' is not a user" in str(info.value) and "full path" in str(info.value)


def test_urls_reach_the_reader_unmangled():
    url = "http://127.0.0.1:9/data.csv"  # the discard port: refused at once
    with pytest.raises(OSError) as info:
        wb.Frame.read_csv(url)
    assert type(info.value) is OSError
    assert url in str(info.value) and "download the file" in str(info.value)


def test_an_empty_folder_is_an_error_naming_it(files):
    with raises_unchanged(files / "empty", FileNotFoundError, str(files / "empty"), "no Parquet files"):
        wb.Frame.from_parquet(files / "empty")


def test_clashing_parquet_schemas_name_both_files_and_the_column(files):
    folder = files / "clash"
    with raises_unchanged(folder, ValueError, "part-0.parquet", "part-1.parquet", "'a'", "int64", "string"):
        wb.Frame.from_parquet(folder)


def test_a_file_that_is_not_parquet(files):
    path = files / "not.parquet"
    with raises_unchanged(path, ValueError, str(path), "is a Parquet file"):
        wb.Frame.from_parquet(path)


def test_parquet_larger_than_the_memory_left_is_refused_before_reading(tmp_path):
    import dataclasses

    from tests.profiles import PROFILES
    from workbench.errors import LargerThanMemory

    n = 200_000
    folder = tmp_path / "big"
    folder.mkdir()
    table = pa.table({"k": pa.array([f"key{i % 97}" for i in range(n)], pa.large_string()),
                      "v": pa.array(range(n), pa.int64()), "w": pa.array([0.5] * n)})
    for i in range(3):
        pq.write_table(table, folder / f"part-{i}.parquet")
    # a host with 6 MB free: the three files' 24 bytes a row at least take ~14 MB
    wb.init(backend="cpu", probes=dataclasses.replace(PROFILES["none"], mem_available=6_000_000))
    with raises_unchanged(folder, LargerThanMemory, str(folder), "columns=[", "pl.scan_parquet") as info:
        wb.Frame.from_parquet(folder)
    assert info.value.needed >= 3 * n * 24 and info.value.available <= 6_000_000
    # one narrow column fits: it is read
    assert wb.Frame.from_parquet(folder, columns=["w"]).to_polars()["w"].sum() == 0.5 * 3 * n
    # and the same files lazily, as the message says, stream through polars
    assert wb.collect(pl.scan_parquet(folder / "*.parquet").select(pl.col("v").sum())).item() \
        == 3 * (n * (n - 1) // 2)
    # a CSV file larger than the memory left: the same, before reading
    csv = tmp_path / "big.csv"
    pl.from_arrow(table).vstack(pl.from_arrow(table)).write_csv(csv)
    assert csv.stat().st_size > 6_000_000
    with raises_unchanged(csv, LargerThanMemory, str(csv), "columns=[", "pl.scan_csv"):
        wb.Frame.read_csv(csv)
    assert wb.Frame.read_csv(csv, columns=["w"]).to_polars().height == 2 * n


def test_a_path_that_is_not_a_path():
    with pytest.raises(TypeError) as info:
        wb.Frame.from_parquet(42)
    assert type(info.value) is TypeError and "str or pathlib.Path" in str(info.value)


# ---------------------------------------------------------------------------- constructors


def test_from_polars_given_a_pandas_frame_names_the_right_constructor():
    df = pd.DataFrame({"a": [1, 2]})
    before = df.copy()
    with pytest.raises(TypeError) as info:
        wb.Frame.from_polars(df)
    assert type(info.value) is TypeError and "Frame.from_pandas" in str(info.value)
    pd.testing.assert_frame_equal(df, before)


def test_from_pandas_given_a_polars_frame_names_the_right_constructor():
    df = pl.DataFrame({"a": [1, 2]})
    with pytest.raises(TypeError) as info:
        wb.Frame.from_pandas(df)
    assert type(info.value) is TypeError and "Frame.from_polars" in str(info.value)
    assert df.equals(pl.DataFrame({"a": [1, 2]}))


def test_from_arrow_given_a_dict():
    with pytest.raises(TypeError) as info:
        wb.Frame.from_arrow({"a": [1, 2]})
    assert type(info.value) is TypeError and "from_polars(polars.DataFrame(data))" in str(info.value)


def test_from_cudf_given_a_polars_frame():
    with pytest.raises(TypeError) as info:
        wb.Frame.from_cudf(pl.DataFrame({"a": [1]}))
    assert type(info.value) is TypeError and "Frame.from_polars" in str(info.value)


def test_duplicate_column_names_from_pandas():
    df = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(ValueError) as info:
        wb.Frame.from_pandas(df)
    assert type(info.value) is ValueError
    assert "unique" in str(info.value) and "'a'" in str(info.value) and "rename" in str(info.value)
    assert list(df.columns) == ["a", "a"]


# ---------------------------------------------------------------------------- views and collect


@pytest.mark.parametrize("view", ["to_cupy", "to_cudf"])
def test_gpu_views_without_a_gpu_raise_the_fallback_contracts_error(view):
    wb.init(backend="cpu")
    frame = wb.Frame.from_polars(pl.DataFrame({"a": [1.0, 2.0]}))
    with pytest.raises(GPUUnavailableError) as info:
        getattr(frame, view)()
    assert type(info.value) is GPUUnavailableError
    assert "runs on the CPU" in str(info.value) and "backend='gpu'" in str(info.value)
    assert frame.to_polars()["a"].to_list() == [1.0, 2.0]


@pytest.mark.parametrize("bad,error,part", [
    (pl.DataFrame({"a": [1]}), TypeError, "lazy()"),
    ("select 1", TypeError, "LazyFrame"),
])
def test_collect_refuses_what_is_not_a_lazyframe(bad, error, part):
    with pytest.raises(error) as info:
        wb.collect(bad)
    assert type(info.value) is error and part in str(info.value)


def test_collect_with_an_unknown_engine_lists_the_valid_ones():
    lf = pl.LazyFrame({"a": [1]})
    with pytest.raises(ValueError) as info:
        wb.collect(lf, engine="tpu")
    assert "'tpu'" in str(info.value) and "auto" in str(info.value) and "cpu" in str(info.value)


def test_collect_raise_on_fail_without_a_gpu():
    wb.init(backend="cpu")
    with pytest.raises(GPUUnavailableError) as info:
        wb.collect(pl.LazyFrame({"a": [1]}), engine="gpu", raise_on_fail=True)
    assert "raise_on_fail=False" in str(info.value)


def test_to_numpy_of_strings_names_the_column_and_the_fix():
    frame = wb.Frame.from_polars(pl.DataFrame({"s": ["x", "y"], "v": [1, 2]}))
    with pytest.raises(TypeError) as info:
        frame.to_numpy()
    assert "'s'" in str(info.value) and "leave it out of `columns`" in str(info.value)
    assert frame.to_polars()["s"].to_list() == ["x", "y"]


def test_os_environment_is_not_left_changed_by_failures(monkeypatch):
    before = {k: v for k, v in os.environ.items() if k.startswith("WORKBENCH_")}
    for options in ({"backend": "x"}, {"memory": "x"}, {"budget": "x"}):
        with pytest.raises(ConfigurationError):
            wb.init(**options)
    assert {k: v for k, v in os.environ.items() if k.startswith("WORKBENCH_")} == before


@pytest.mark.parametrize("values, dtype, error", [
    ([1, 300, -1000], "int8", OverflowError),
    ([0, 2**40], "int32", OverflowError),
    ([-1, 5], "uint16", OverflowError),
    ([1.5, 2.0], "int64", TypeError),
])
def test_matrices_never_wrap_or_truncate_values(values, dtype, error):
    import workbench as wb

    wb.init(backend="cpu")
    df = pl.DataFrame({"a": values})
    before = df.clone()
    frame = wb.Frame.from_polars(df)
    with pytest.raises(error, match=r"(wrap|truncate).*'a'|'a'.*(wrap|truncate)"):
        frame.to_numpy(["a"], dtype=dtype)
    assert frame.to_polars().equals(before) and df.equals(before)
    assert frame.to_numpy(["a"], dtype="float64")[:, 0].tolist() == [float(v) for v in values]

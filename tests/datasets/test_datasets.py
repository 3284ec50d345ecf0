"""workbench.datasets: catalog, generator specs, determinism, cache, bad input, packaging."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench.datasets as wd
from workbench.datasets import catalog as _catalog, store as _store, writer as _writer

ROOT = Path(__file__).resolve().parents[2]
IDS = ["id1", "id2", "id3", "id4", "id5", "id6"]
POLARS_DTYPES = {
    "string": pl.String, "int8": pl.Int8, "int16": pl.Int16, "int32": pl.Int32, "int64": pl.Int64,
    "float64": pl.Float64, "bool": pl.Boolean, "timestamp[us]": pl.Datetime("us"),
}


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    home = tmp_path / "cache"
    monkeypatch.setenv("WORKBENCH_DATA", str(home))
    return home


@pytest.fixture
def small_files(monkeypatch):
    """Small files and row groups, so a few hundred thousand rows span several of each."""
    monkeypatch.setattr(_writer, "FILE_ROWS", 1 << 16)
    monkeypatch.setattr(_writer, "ROW_GROUP", 1 << 14)


def read(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path) if path.is_file() else pl.scan_parquet(path / "*.parquet").collect()


def df(name, rows, table=None, **params) -> pl.DataFrame:
    return pl.from_arrow(wd.generate(name, rows, table=table, **params))


def assert_schema(frame: pl.DataFrame, name: str, table: str = "data"):
    columns = wd.describe(name)["tables"][table]["columns"]
    assert frame.columns == list(columns)
    for col, spec in columns.items():
        assert frame.schema[col] == POLARS_DTYPES[spec["dtype"]], col


# --- catalog --------------------------------------------------------------------------------------


def test_list_and_describe_read_the_catalog_folder():
    names = wd.list()
    assert names == sorted(p.stem for p in (ROOT / "datasets").glob("*.toml"))
    assert {"h2o_groupby", "h2o_join", "taxi"} <= set(names)
    for name in names:
        e = wd.describe(name)
        for key in ("title", "description", "origin", "licence", "scaling", "version", "layout", "sample"):
            assert e[key], (name, key)
        assert e["rows"]["min"] >= 1 and e["rows"]["max"] > e["rows"]["default"] >= e["rows"]["min"]
        for p in e.get("params", {}).values():
            assert p["type"] in ("int", "float", "bool") and p["description"]
            if p["type"] != "bool":
                assert p["min"] <= p["default"] <= p["max"]
        for t in e["tables"].values():
            assert all(c["dtype"] in POLARS_DTYPES for c in t["columns"].values())
    e = wd.describe("h2o_groupby")
    e["title"] = "changed"
    assert wd.describe("h2o_groupby")["title"] != "changed"  # callers get a copy


def test_unknown_dataset_lists_the_available_ones():
    for call in (lambda: wd.describe("nope"), lambda: wd.make("nope", 10), lambda: wd.generate("h2o", 10)):
        with pytest.raises(ValueError, match="available: h2o_groupby, h2o_join, taxi"):
            call()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rows=0), r"rows must be between 1 and 4_000_000_000 \(got 0\)"),
        (dict(rows=-5), r"rows must be between 1 and"),
        (dict(rows=1.5), r"rows must be a whole number"),
        (dict(rows=5e9), r"rows must be between 1 and 4_000_000_000"),
        (dict(rows=100, k=1), r"parameter 'k' must be between 2 and 1_000_000 \(got 1\)"),
        (dict(rows=100, na=101), r"parameter 'na' must be between 0 and 100 \(got 101\)"),
        (dict(rows=100, na=-1), r"parameter 'na' must be between 0 and 100"),
        (dict(rows=100, colour=3), r"unknown parameter\(s\) colour; valid parameters: k, na, sort"),
        (dict(rows=100, seed=-1), r"seed must be a non-negative integer"),
    ],
)
def test_bad_input_names_the_parameter_and_its_range(kwargs, message, data_home):
    with pytest.raises(ValueError, match=message):
        wd.make("h2o_groupby", **kwargs)
    assert not data_home.exists()


def test_type_errors_for_parameters():
    with pytest.raises(TypeError, match="'sort' must be true or false"):
        wd.generate("h2o_groupby", 10, sort="yes")
    with pytest.raises(TypeError, match="'k' must be a number"):
        wd.generate("h2o_groupby", 10, k="10")
    with pytest.raises(ValueError, match="rows must be between 10 and"):
        wd.generate("h2o_join", 5, table="x")
    with pytest.raises(ValueError, match="tables x, small, medium, big; pass table="):
        wd.generate("h2o_join", 100)


# --- h2o_groupby ----------------------------------------------------------------------------------


def test_h2o_groupby_spec(small_files):
    n, k = 200_000, 10
    frame = read(wd.make("h2o_groupby", n, k=k))
    assert_schema(frame, "h2o_groupby")
    assert frame.height == n and frame.null_count().sum_horizontal().item() == 0
    expected_ids = {f"id{i:03d}" for i in range(1, k + 1)}
    assert set(frame["id1"]) == expected_ids and set(frame["id2"]) == expected_ids
    assert frame["id3"].str.contains(r"^id\d{10}$").all()
    id3 = frame["id3"].str.slice(2).cast(pl.Int64)
    m = n // k
    assert id3.min() >= 1 and id3.max() <= m
    for col, hi in (("id4", k), ("id5", k), ("id6", m), ("v1", 5), ("v2", 15)):
        assert frame[col].min() == 1 and frame[col].max() == hi, col
    assert frame["v1"].n_unique() == 5 and frame["v2"].n_unique() == 15
    # id3/id6 draw N times from N/K values: the expected number of distinct ones
    distinct = m * (1 - math.exp(-k))
    for col in ("id3", "id6"):
        assert abs(frame[col].n_unique() - distinct) < 0.01 * m, col
    v3 = frame["v3"]
    assert 0 <= v3.min() and v3.max() < 100 and (v3.round(6) == v3).all()
    assert abs(v3.mean() - 50) < 0.5 and abs(v3.std() - 100 / math.sqrt(12)) < 0.5
    counts = frame["id4"].value_counts()["count"]  # uniform: chi-square with k - 1 dof
    chi2 = (((counts - n / k) ** 2) / (n / k)).sum()
    assert chi2 < 40
    assert not frame.select(IDS).equals(frame.select(IDS).sort(IDS))


def test_h2o_groupby_na_makes_exact_nulls_per_column_and_keeps_other_values():
    n = 150_000
    plain = df("h2o_groupby", n, k=10)
    holes = df("h2o_groupby", n, k=10, na=5)
    assert holes.null_count().row(0) == (n * 5 // 100,) * 9
    for col in plain.columns:
        keep = holes[col].is_not_null()
        assert plain[col].filter(keep).equals(holes[col].filter(keep)), col
    masks = np.column_stack([holes[c].is_null().to_numpy() for c in plain.columns])
    p_two = 1 - 0.95**9 - 9 * 0.05 * 0.95**8  # P(>= 2 nulls in a row) if columns are independent
    assert abs((masks.sum(axis=1) >= 2).mean() - p_two) < 0.1 * p_two


@pytest.mark.parametrize("na", [0, 10])
def test_h2o_groupby_sorted(na):
    n = 200_000
    frame = df("h2o_groupby", n, k=10, na=na, sort=True)
    assert frame.select(IDS).equals(frame.select(IDS).sort(IDS, nulls_last=False))
    assert frame["id3"].n_unique() > 0.99 * (n // 10) * (1 - math.exp(-10))
    for col in IDS:  # sorted ids get nulls row by row with probability na/100
        assert abs(frame[col].null_count() / n - na / 100) < 0.01, col
    for col in ("v1", "v2", "v3"):
        assert frame[col].null_count() == n * na // 100
    if na:
        assert frame["id1"][0] is None and frame["id1"][-1] is not None
    assert abs(frame["v3"].mean() - 50) < 0.5


def test_h2o_groupby_many_groups_sort_as_strings():
    frame = df("h2o_groupby", 20_000, k=1500, sort=True)
    assert frame["id1"].n_unique() > 1400
    assert {"id001", "id999", "id1000", "id1500"} <= set(frame["id1"]) or frame["id1"].n_unique() < 1500
    assert frame.select(IDS).equals(frame.select(IDS).sort(IDS))
    assert frame["id1"].str.len_chars().max() == 6 and frame["id1"].str.len_chars().min() == 5


# --- h2o_join -------------------------------------------------------------------------------------


def test_h2o_join_spec():
    n = 2_000_000
    path = wd.make("h2o_join", n)
    assert sorted(p.name for p in path.iterdir()) == ["big", "medium", "small", "x"]
    t = {name: read(path / name) for name in ("x", "small", "medium", "big")}
    for name, frame in t.items():
        assert_schema(frame, "h2o_join", name)
    assert [t[k].height for k in ("x", "small", "medium", "big")] == [n, 2, 2000, n]
    x, small, medium, big = t["x"], t["small"], t["medium"], t["big"]
    # x holds every common + left key of each level; the right tables are unique on their key
    assert (x["id1"].n_unique(), x["id2"].n_unique(), x["id3"].n_unique()) == (2, 2000, n)
    assert small["id1"].is_unique().all() and medium["id2"].is_unique().all() and big["id3"].is_unique().all()
    common3 = n - n // 10
    assert x.join(big, on="id3").height == common3  # q5: the common keys
    assert x.join(small, on="id1").height == n  # 2 keys: none left-only
    q2 = x.join(medium, on="id2").height
    assert x.join(medium, on="id5").height == q2 and abs(q2 / n - 0.9) < 0.02
    assert x.join(medium, on="id2", how="left").height == n
    for frame in t.values():
        for i, s in (("id1", "id4"), ("id2", "id5"), ("id3", "id6")):
            if i in frame.columns:
                assert ("id" + frame[i].cast(pl.String)).equals(frame[s].alias("id" + s[2:]), check_names=False)
    for frame, v in ((x, "v1"), (big, "v2")):
        assert 0 <= frame[v].min() and frame[v].max() < 100 and abs(frame[v].mean() - 50) < 0.5
    keys = pl.concat([x["id3"], big["id3"]]).unique()
    assert keys.min() >= 1 and keys.max() <= n + n // 10 and keys.len() == n + n // 10


def test_h2o_join_na_nulls_whole_key_values_of_x_only():
    n = 200_000
    x = df("h2o_join", n, table="x", na=5)
    assert x["v1"].null_count() == n * 5 // 100
    assert x["id3"].null_count() == n * 5 // 100  # id3 values appear once each
    assert x["id2"].drop_nulls().n_unique() == 200 - 200 * 5 // 100
    assert x["id2"].null_count() > 0 and x["id1"].null_count() == 0  # 5% of 1 key is none
    assert x["id5"].is_null().equals(x["id2"].is_null())
    plain = df("h2o_join", n, table="x")
    nulled = set(plain["id2"].filter(x["id2"].is_null()))
    assert not nulled & set(x["id2"].drop_nulls())  # a nulled value is null on every row
    for table in ("small", "medium", "big"):
        assert df("h2o_join", n, table=table, na=5).null_count().sum_horizontal().item() == 0


# --- taxi -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def taxi():
    frame = pl.from_arrow(wd.generate("taxi", 120_000))
    return frame.with_columns(
        minutes=(pl.col("dropoff_datetime") - pl.col("pickup_datetime")).dt.total_seconds() / 60,
        hour=pl.col("pickup_datetime").dt.hour(),
        weekday=pl.col("pickup_datetime").dt.weekday(),
    )


def test_taxi_spec_and_plausible_distributions(taxi):
    assert_schema(taxi.drop("minutes", "hour", "weekday"), "taxi")
    assert taxi["pickup_zone"].min() == 1 and taxi["pickup_zone"].max() <= 263
    assert taxi["passenger_count"].min() == 1 and taxi["passenger_count"].max() == 6
    assert (taxi["minutes"] >= 1).all() and taxi["trip_distance"].min() >= 0.1 and taxi["fare_amount"].min() >= 3
    assert taxi["pickup_datetime"].min().year == 2024 and taxi["pickup_datetime"].dt.ordinal_day().n_unique() >= 365
    assert set(taxi["payment_type"]) == {"card", "cash", "no_charge", "dispute"}
    assert taxi["tipped"].equals(taxi["tip_amount"] > 0, check_names=False)
    assert not taxi.filter(pl.col("payment_type") != "card")["tipped"].any()
    assert 1.5 < taxi["trip_distance"].median() < 4 and 8 < taxi["minutes"].median() < 20
    assert 10 < taxi["fare_amount"].median() < 30 and 0.5 < taxi["tipped"].mean() < 0.7
    hours = taxi["hour"].value_counts().sort("hour")["count"]
    assert hours[18] > 3 * hours[4]  # the daily cycle
    days = taxi.filter(pl.col("hour").is_between(7, 9))["weekday"].value_counts().sort("weekday")["count"]
    assert days[4] > days[6] * 1.2  # weekday mornings are busier than Sunday mornings
    total = (taxi["fare_amount"] + taxi["tip_amount"] + 1.5 - taxi["total_amount"]).abs()
    assert total.max() < 0.011


def test_taxi_relationships_are_learnable(taxi):
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.metrics import r2_score, roc_auc_score

    train, test = taxi[:80_000], taxi[80_000:]

    def features(f):
        return np.column_stack([
            f["trip_distance"], f["minutes"], f["payment_type"] == "card", f["passenger_count"] >= 3,
            f["hour"] < 5, f["fare_amount"],
        ]).astype(float)

    reg = LinearRegression().fit(features(train)[:, :2], train["fare_amount"])
    r2 = r2_score(test["fare_amount"], reg.predict(features(test)[:, :2]))
    assert r2 > 0.9  # the constant baseline scores 0
    clf = LogisticRegression(max_iter=500).fit(features(train), train["tipped"])
    auc = roc_auc_score(test["tipped"], clf.predict_proba(features(test))[:, 1])
    assert auc > 0.8  # the constant baseline scores 0.5


# --- determinism ----------------------------------------------------------------------------------

CASES = [
    ("h2o_groupby", 150_000, None, {"k": 10}),
    ("h2o_groupby", 150_000, None, {"k": 5, "na": 3, "sort": True}),
    ("h2o_join", 150_000, "x", {"na": 2}),
    ("h2o_join", 150_000, "big", {}),
    ("taxi", 150_000, None, {"zones": 50}),
]
WHOLE = {}


def whole(i):
    if i not in WHOLE:
        name, rows, table, params = CASES[i]
        WHOLE[i] = wd.generate(name, rows, table=table, **params)
    return WHOLE[i]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.integers(0, len(CASES) - 1), cuts=st.lists(st.integers(1, 149_999), max_size=4, unique=True))
def test_any_chunking_gives_the_same_rows(case, cuts):
    name, rows, table, params = CASES[case]
    bounds = [0, *sorted(cuts), rows]
    parts = [wd.generate(name, rows, table=table, start=a, stop=b, **params) for a, b in zip(bounds, bounds[1:])]
    assert pa.concat_tables(parts).equals(whole(case))


def test_same_seed_same_data_other_seed_other_data():
    a = wd.generate("h2o_groupby", 5000, seed=1)
    assert a.equals(wd.generate("h2o_groupby", 5000, seed=1))
    assert not a.equals(wd.generate("h2o_groupby", 5000, seed=2))


def test_files_do_not_depend_on_threads_and_rows_not_on_chunk_size(tmp_path, monkeypatch):
    monkeypatch.setattr(_writer, "FILE_ROWS", 1 << 16)
    monkeypatch.setattr(_writer, "ROW_GROUP", 1 << 14)
    one = wd.make("taxi", 200_000, path=tmp_path / "one", threads=1)
    two = wd.make("taxi", 200_000, path=tmp_path / "two", threads=2)
    files = [_store.read_manifest(p)["tables"]["data"]["files"] for p in (one, two)]
    assert len(files[0]) == 4 and files[0] == files[1]  # same bytes, same checksums
    monkeypatch.setattr(_writer, "FILE_ROWS", 100_000)
    monkeypatch.setattr(_writer, "ROW_GROUP", 30_000)
    other = wd.make("taxi", 200_000, path=tmp_path / "other", threads=2)
    assert len(list(other.iterdir())) == 2
    assert read(other).equals(read(one))


def test_samples_are_what_the_generators_make():
    for name in wd.list():
        s = wd.describe(name)["sample"]
        path = wd.sample(name)
        assert path.is_relative_to(_catalog.catalog_dir() / "samples")
        if wd.describe(name)["layout"] == "table":
            assert read(path).equals(df(name, s["rows"]))
        else:
            for table in wd.describe(name)["tables"]:
                assert read(path / f"{table}.parquet").equals(df(name, s["rows"], table=table)), table
    size = sum(p.stat().st_size for p in (ROOT / "datasets").rglob("*") if p.is_file())
    assert size < 3_000_000


# --- the cache ------------------------------------------------------------------------------------


def test_cache_layout_manifest_and_reuse(data_home, monkeypatch):
    path = wd.make("h2o_groupby", 20_000, k=10, na=1)
    assert path.parent == data_home / "h2o_groupby" and path.name.startswith("G1_2e4_1e1_1_0-s0-")
    assert [p.name for p in path.iterdir()] == ["part-00000.parquet"]
    m = json.loads(_store.manifest_path(path).read_text())
    assert (m["dataset"], m["rows"], m["seed"], m["params"]) == ("h2o_groupby", 20_000, 0, {"k": 10, "na": 1, "sort": False})
    assert m["version"] == wd.describe("h2o_groupby")["version"] and m["format"] == _store.CACHE_FORMAT
    assert m["tables"]["data"]["files"][0]["sha256"] == _writer.file_digest(path / "part-00000.parquet")

    def fail(*a, **k):
        raise AssertionError("rebuilt a valid cache")

    monkeypatch.setattr(_store, "build", fail)
    assert wd.make("h2o_groupby", 2e4, k=10.0, na=1) == path  # same request, other spelling
    assert wd.make("h2o_groupby", 20_000, k=10, na=1, verify=True) == path
    monkeypatch.undo()
    assert wd.make("h2o_groupby", 20_000, k=10, na=2) != path


@pytest.mark.parametrize("damage", ["truncate", "flip", "extra", "missing", "manifest", "version", "garbage"])
def test_partial_corrupted_or_outdated_cache_is_rebuilt(damage, monkeypatch):
    builds = []
    real_build = _store.build
    monkeypatch.setattr(_store, "build", lambda *a, **k: builds.append(1) or real_build(*a, **k))

    def make():
        return wd.make("h2o_groupby", 20_000, k=10)

    path = make()
    part = path / "part-00000.parquet"
    mpath = _store.manifest_path(path)
    good = df("h2o_groupby", 20_000, k=10)
    if damage == "truncate":
        part.write_bytes(part.read_bytes()[:-100])
    elif damage == "flip":  # in the middle of the data: caught by the full checksum
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0xFF
        part.write_bytes(bytes(data))
    elif damage == "extra":
        (path / "part-00001.parquet").write_bytes(b"PAR1")
    elif damage == "missing":
        part.unlink()
    elif damage == "manifest":
        mpath.unlink()
    elif damage == "version":  # written by another generator version: rebuilt, not misread
        m = json.loads(mpath.read_text())
        m["version"] = -1
        mpath.write_text(json.dumps(m))
    elif damage == "garbage":
        mpath.write_text("{not json")
    assert _store.problem(path, _ident(path)) is not None
    assert make() == path and len(builds) == 2
    assert pl.read_parquet(part).equals(good)
    assert _store.problem(path, _ident(path), verify=True) is None


def _ident(path):
    e = wd.describe("h2o_groupby")
    return _store.identity("h2o_groupby", e["version"], 20_000, 0, {"k": 10, "na": 0, "sort": False})


def test_interrupted_make_leaves_nothing_that_looks_finished(tmp_path, monkeypatch, small_files):
    real = _writer.write_file
    calls = []

    def interrupted(plan, path, *args):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(plan, path, *args)

    monkeypatch.setattr(_writer, "write_file", interrupted)
    target = tmp_path / "g"
    with pytest.raises(KeyboardInterrupt):
        wd.make("h2o_groupby", 300_000, path=target, threads=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.lock"]  # the lock file stays, empty
    assert (tmp_path / "g.lock").stat().st_size == 0
    # a build killed outright leaves its temporary folder: the next build removes it
    stale = tmp_path / "g.tmp-999999999-deadbeef"
    stale.mkdir()
    (stale / "part-00000.parquet").write_bytes(b"x")
    monkeypatch.setattr(_writer, "write_file", real)
    assert wd.make("h2o_groupby", 300_000, path=target) == target
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["g", "g.lock", "g.manifest.json"]


def test_user_path_is_not_clobbered(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a workbench dataset"):
        wd.make("taxi", 1000, path=mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    path = wd.make("taxi", 1000, path=tmp_path / "t")
    assert wd.make("taxi", 2000, path=path) == path  # a workbench dataset there is replaced
    assert read(path).height == 2000


def test_no_permission_or_space_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("WORKBENCH_DATA", str(blocker / "cache"))
    with pytest.raises(wd.DatasetWriteError, match="WORKBENCH_DATA") as info:
        wd.make("h2o_groupby", 1000)
    assert isinstance(info.value, OSError) and str(blocker) in str(info.value)
    assert blocker.read_text() == "not a folder"

    home = tmp_path / "full"
    monkeypatch.setenv("WORKBENCH_DATA", str(home))
    monkeypatch.setattr(_writer, "FILE_ROWS", 1 << 16)
    real = _writer.write_file

    def disk_full(plan, path, start, *args):
        if start > 0:
            path.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(plan, path, start, *args)

    monkeypatch.setattr(_writer, "write_file", disk_full)
    with pytest.raises(wd.DatasetWriteError, match="no space left on the device") as info:
        wd.make("h2o_groupby", 200_000)
    assert info.value.errno == errno.ENOSPC
    assert [p for p in home.rglob("*") if p.is_file() and p.suffix != ".lock"] == []  # the empty lock stays


def test_progress_bar_only_when_asked_or_interactive(capsys, monkeypatch):
    wd.make("taxi", 3000)
    assert capsys.readouterr().err == ""
    wd.make("taxi", 4000, progress=True)
    err = capsys.readouterr().err
    assert "rows/s" in err and "4.00k/4.00k" in err


def test_load_returns_frames():
    frame = wd.load("h2o_groupby", 5000, k=10)
    assert frame.to_polars().equals(df("h2o_groupby", 5000, k=10))
    tables = wd.load("h2o_join", 5000)
    assert set(tables) == {"x", "small", "medium", "big"}
    assert tables["big"].to_polars().equals(df("h2o_join", 5000, table="big"))


def test_data_home_default(monkeypatch, tmp_path):
    monkeypatch.delenv("WORKBENCH_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert wd.data_home() == tmp_path / "xdg" / "workbench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert wd.data_home() == Path.home() / ".cache" / "workbench"


# --- packaging ------------------------------------------------------------------------------------


def test_every_subpackage_ships_in_the_wheel():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    for init in (ROOT / "workbench").rglob("*.py"):
        package = ".".join(init.parent.relative_to(ROOT).parts)
        if "__pycache__" not in package:
            assert package in listed, f"add {package!r} to [tool.setuptools] packages in pyproject.toml"
    assert config["package-dir"]["workbench.catalog"] == "datasets"


@pytest.mark.slow
def test_catalog_loads_from_an_installed_wheel(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("workbench", "datasets", "notebooks"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    except subprocess.CalledProcessError:  # offline: build with the environment's setuptools
        subprocess.run([*cmd, "--no-build-isolation"], check=True, capture_output=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "site")
    for entry in ("h2o_groupby.toml", "h2o_join.toml", "taxi.toml", "samples/taxi.parquet", "samples/h2o_join/x.parquet"):
        assert f"workbench/catalog/{entry}" in names
    lessons = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert lessons and all(f"workbench/lessons/{name}" in names for name in lessons)
    code = (
        "import json, workbench.datasets as wd, workbench.datasets.catalog as c;"
        "import workbench.lab as lab;"
        "print(json.dumps([str(c.catalog_dir()), wd.list(), wd.describe('taxi')['version'], str(wd.sample('taxi')),"
        " str(lab.lessons_dir())]))"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    where, names_, version, sample, lessons_at = json.loads(out.stdout)
    assert lessons_at == str(tmp_path / "site" / "workbench" / "lessons")
    assert where == str(tmp_path / "site" / "workbench" / "catalog")
    assert names_ == wd.list() and version == wd.describe("taxi")["version"]
    assert Path(sample).is_file() and re.search(r"site/workbench/catalog/samples/taxi\.parquet$", sample)

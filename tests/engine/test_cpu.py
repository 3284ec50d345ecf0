"""polars on the CPU: streaming when a plan reads files, in memory over frames, and
what is too large for polars in memory (engine/cpu.py). Real Parquet and CSV files; the
host's memory is a fake profile's where a small one is needed."""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import workbench as wb
from tests.profiles import PROFILES
from workbench.engine import cpu


def _table(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"k": rng.choice(["north", "south", "east", "west"], n),
                         "v": rng.integers(0, 1000, n), "w": rng.random(n).astype(np.float32),
                         "day": pl.date_range(pl.date(2024, 1, 1), pl.date(2024, 12, 31), eager=True)
                         .sample(n, with_replacement=True, seed=seed)})


@pytest.fixture
def files(tmp_path):
    df = _table(300_000, 0)
    for i in range(4):
        df.slice(i * 75_000, 75_000).write_parquet(tmp_path / f"part-{i}.parquet", row_group_size=20_000)
    return tmp_path, df


def _small_host(mem_available: int):
    """A session on a machine without a GPU whose host has ``mem_available`` bytes free."""
    import dataclasses

    probes = dataclasses.replace(PROFILES["none"], mem_available=mem_available)
    return wb.init(backend="cpu", probes=probes)


def test_plans_reading_files_stream_with_the_same_answer(files):
    path, df = files
    lf = pl.scan_parquet(path / "*.parquet").filter(pl.col("v") > 100).group_by("k") \
        .agg(pl.col("w").sum(), pl.len()).sort("k")
    s = _small_host(100 * cpu.scanned_bytes(lf))  # room to spare: streamed all the same
    mark = len(s.log)
    got = wb.collect(lf)
    assert_frame_equal(got, lf.collect(), check_exact=False, rel_tol=1e-5)
    notes = [m for _, m in s.log[mark:]]
    assert notes == ["collect: it reads ~8.4 MB of files: polars' streaming engine reads them "
                     "in morsels (faster than loading them, and lighter)"], notes
    told = str(wb.explain(lf))
    assert "streaming engine" in told and "input: parquet scan of 4 files [k, w, v] 8.4 MB" in told, told
    assert cpu.too_large(lf, s) is None
    # engine="cpu" asks for polars' in-memory engine, and gets it
    mark = len(s.log)
    assert_frame_equal(wb.collect(lf, engine="cpu"), got, check_exact=False, rel_tol=1e-5)
    assert s.log[mark:] == []


def test_files_larger_than_half_the_free_memory_are_too_large_for_polars_in_memory(files):
    path, _ = files
    lf = pl.scan_parquet(path / "*.parquet").group_by("k").agg(pl.col("v").max())
    read = cpu.scanned_bytes(lf)
    s = _small_host(read)  # the files take all of it: more than half
    why = cpu.too_large(lf, s)
    assert why == ("the files read take ~7.2 MB, over 1/2 of the 7.2 MB of host memory for the "
                   "query: polars' streaming engine"), why
    assert cpu.streams(lf, s) == why
    assert why in str(wb.explain(lf))
    assert cpu.too_large(lf, _small_host(2 * read + 1)) is None


@settings(max_examples=25, deadline=None)
@given(low=st.integers(-10, 1010), keys=st.sampled_from([["k"], ["k", "day"], ["day"]]),
       how=st.sampled_from(["sum", "mean", "median", "n_unique", "max", "first", "last"]),
       limit=st.integers(1, 50))
def test_streamed_file_plans_answer_as_polars_in_memory(tmp_path_factory, low, keys, how, limit):
    path = tmp_path_factory.getbasetemp() / "streamed"
    if not path.exists():
        path.mkdir()
        df = _table(60_000, 3)
        for i in range(3):
            df.slice(i * 20_000, 20_000).write_parquet(path / f"p{i}.parquet", row_group_size=5_000)
    wb.init(backend="cpu")
    lf = (pl.scan_parquet(path / "*.parquet").filter(pl.col("v") >= low)
          .group_by(keys).agg(getattr(pl.col("w"), how)(), pl.len()).sort(keys).head(limit))
    assert_frame_equal(wb.collect(lf), lf.collect(), check_exact=False, rel_tol=1e-5)
    # row order is the files' order: the first rows that pass, as polars in memory gives them
    rows = pl.scan_parquet(path / "*.parquet").filter(pl.col("v") >= low).head(limit)
    assert_frame_equal(wb.collect(rows), rows.collect())


def test_frames_and_polars_frames_are_in_memory_already(files):
    _, df = files
    s = _small_host(1)
    frame = wb.Frame.from_polars(df)
    mark = len(s.log)
    for lf in (frame.lazy(), df.lazy()):
        q = lf.group_by("k").agg(pl.col("v").max()).sort("k")
        assert cpu.scanned_bytes(q) == 0
        assert_frame_equal(wb.collect(q), q.collect())
    assert not any("streaming" in m for _, m in s.log[mark:])


def test_the_estimate_counts_the_columns_read_at_their_width_in_memory(files):
    path, df = files
    lf = pl.scan_parquet(path / "*.parquet")
    whole = cpu.scanned_bytes(lf)
    ints = cpu.scanned_bytes(lf.select("v"))
    # 8 bytes a value in memory, whatever the encoding on disk
    assert ints >= 8 * df.height and ints < 1.2 * 8 * df.height
    # strings dictionary-encoded on disk (four values) count at least a view a value
    assert cpu.scanned_bytes(lf.select("k")) >= 16 * df.height
    assert ints < whole <= cpu.scanned_bytes(lf.select("k", "v", "w", "day")) * 1.01
    # a filter does not change what is loaded; a file that is gone counts nothing
    assert cpu.scanned_bytes(lf.select("v").filter(pl.col("v") > 3)) == ints
    csv = path / "t.csv"
    df.write_csv(csv)
    assert cpu.scanned_bytes(pl.scan_csv(csv).select("v")) == os.path.getsize(csv)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 5000), files_count=st.integers(1, 40), seed=st.integers(0, 100))
def test_the_estimate_of_many_files_reads_a_few_footers(tmp_path_factory, n, files_count, seed):
    path = tmp_path_factory.mktemp("many")
    df = _table(n, seed)
    for i in range(files_count):
        df.write_parquet(path / f"p{i:03d}.parquet")
    got = cpu.scanned_bytes(pl.scan_parquet(path / "*.parquet").select("v", "w"))
    per_file = sum(max(pq.read_metadata(path / "p000.parquet").row_group(g).column(c).total_uncompressed_size,
                       n * (8 if c == 1 else 4))
                   for g in range(1) for c in (1, 2))
    # identical files: the sampled footers' bytes per file byte stand for all of them
    assert abs(got - files_count * per_file) <= files_count


@settings(max_examples=20, deadline=None)
@given(how=st.sampled_from(["inner", "left", "semi", "anti", "full"]), low=st.integers(0, 1000),
       keys=st.sampled_from([["k"], ["k", "day"]]))
def test_streamed_joins_of_files_answer_as_polars_in_memory(tmp_path_factory, how, low, keys):
    path = tmp_path_factory.getbasetemp() / "joined"
    if not path.exists():
        path.mkdir()
        _table(30_000, 5).write_parquet(path / "left.parquet", row_group_size=4_000)
        _table(2_000, 6).unique(keys + ["v"]).write_parquet(path / "right.parquet")
    wb.init(backend="cpu")
    left = pl.scan_parquet(path / "left.parquet").filter(pl.col("v") >= low)
    right = pl.scan_parquet(path / "right.parquet").select(keys + [pl.col("w").alias("w_right")])
    right = right.group_by(keys).agg(pl.col("w_right").max())
    lf = left.join(right, on=keys, how=how)
    got, expected = wb.collect(lf), lf.collect()
    # a join's row order is not defined: compared as sets of rows
    assert_frame_equal(got, expected, check_row_order=False, check_exact=False, rel_tol=1e-6)

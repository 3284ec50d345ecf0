"""polars on the CPU: in memory, or streaming when the files a plan reads would not fit
the host memory (engine/cpu.py). Real Parquet and CSV files; the host's memory is a fake
profile's where a small one is needed."""

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


def test_files_larger_than_half_the_free_memory_stream_with_the_same_answer(files):
    path, df = files
    lf = pl.scan_parquet(path / "*.parquet").filter(pl.col("v") > 100).group_by("k") \
        .agg(pl.col("w").sum(), pl.len()).sort("k")
    read = cpu.scanned_bytes(lf)
    s = _small_host(read)  # the files take all of it: more than half
    mark = len(s.log)
    got = wb.collect(lf)
    assert_frame_equal(got, lf.collect(), check_exact=False, rel_tol=1e-5)
    notes = [m for _, m in s.log[mark:]]
    assert any("polars' streaming engine" in m for m in notes), notes
    told = str(wb.explain(lf))
    assert "streaming engine" in told and "input: parquet scan of 4 files [k, w, v] 8.4 MB" in told, told
    # with room for it, the same plan runs in memory and says nothing
    roomy = _small_host(100 * read)
    mark = len(roomy.log)
    assert_frame_equal(wb.collect(lf), got)
    assert not any("streaming" in m for _, m in roomy.log[mark:])


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

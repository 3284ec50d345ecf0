"""A corrupt cached dataset is detected and rebuilt, never served; the cache folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import workbench.datasets as wd
from workbench import config
from workbench.datasets import store as _store
from workbench.errors import ConfigurationError

ROWS = 40_000


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "cache"))
    _store._hashed.clear()  # each test starts as a fresh process would
    return tmp_path / "cache"


def flip_in_column(part: Path, column: str, count: int = 4) -> tuple[int, int]:
    """Flip ``count`` bytes in the middle of ``column``'s pages in the first row group, the
    file's size and modification time kept (as a failing disk or a bad copy leaves it)."""
    meta = pq.ParquetFile(part).metadata.row_group(0)
    (chunk,) = [meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == column]
    first = chunk.dictionary_page_offset or chunk.data_page_offset
    middle = first + chunk.total_compressed_size // 2
    st = part.stat()
    data = bytearray(part.read_bytes())
    for i in range(count):
        data[middle + i] ^= 0x5A
    part.write_bytes(bytes(data))
    os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert part.stat().st_size == st.st_size
    return first, chunk.total_compressed_size


def test_files_carry_parquet_page_checksums_that_catch_a_flipped_page(tmp_path):
    path = wd.make("h2o_groupby", ROWS, k=10, path=tmp_path / "g")
    part = path / "part-00000.parquet"
    good = pq.read_table(part, page_checksum_verification=True)  # every page has a CRC, and it holds
    flip_in_column(part, "v3")
    with pytest.raises(OSError, match="(?i)crc|checksum"):
        pq.read_table(part, page_checksum_verification=True)
    assert good.num_rows == ROWS


def test_a_flipped_page_in_the_cache_is_rebuilt_not_served(data_home):
    path = wd.make("h2o_groupby", ROWS, k=10)
    part = path / "part-00000.parquet"
    before = _store.read_manifest(path)
    flip_in_column(part, "v3")
    assert _store.problem(path, _ident()) == f"{part} does not match its checksum (corrupted)"
    frame = wd.load("h2o_groupby", ROWS, k=10).to_polars()
    v3 = frame["v3"]
    assert 0 <= v3.min() and v3.max() < 100  # the catalog's range: no ±9e304 from a broken page
    assert frame.equals(pl.from_arrow(wd.generate("h2o_groupby", ROWS, k=10)))
    assert _store.read_manifest(path)["tables"] == before["tables"]  # the same bytes again
    assert _store.problem(path, _ident(), verify=True) is None


def test_each_process_hashes_whole_files_whatever_their_size(data_home):
    """No size threshold: a new process re-hashes every file once; within one process a
    file hashed and unchanged since (size, mtime, inode) is trusted unless verify=True."""
    path = wd.make("h2o_groupby", ROWS, k=10)
    assert wd.make("h2o_groupby", ROWS, k=10) == path  # hashed here: now remembered
    part = path / "part-00000.parquet"
    flip_in_column(part, "id3")
    assert _store.problem(path, _ident()) is None  # remembered (the in-process trade-off)
    assert _store.problem(path, _ident(), verify=False) is None  # sizes and footers only
    assert "does not match its checksum" in _store.problem(path, _ident(), verify=True)
    flip_in_column(part, "id3")  # flipped back: whole again
    assert _store.problem(path, _ident(), verify=True) is None
    flip_in_column(part, "id3")
    code = ("import workbench.datasets as wd, polars as pl; f = wd.load('h2o_groupby', %d, k=10).to_polars();"
            "print(f['id3'].str.contains('^id[0-9]{10}$').all())" % ROWS)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True"]
    assert _store.problem(path, _ident(), verify=True) is None  # that process rebuilt it


def test_a_corrupt_file_in_a_multi_table_dataset_is_rebuilt():
    path = wd.make("h2o_join", 20_000)
    part = path / "big" / "part-00000.parquet"
    flip_in_column(part, "v2")
    tables = wd.load("h2o_join", 20_000)
    big = tables["big"].to_polars()
    assert big.equals(pl.from_arrow(wd.generate("h2o_join", 20_000, table="big")))
    assert 0 <= big["v2"].min() and big["v2"].max() < 100


def test_the_manifest_is_checked_against_the_files_it_lists(data_home):
    path = wd.make("taxi", 5000)
    m = json.loads(_store.manifest_path(path).read_text())
    m["tables"]["data"]["files"][0]["sha256"] = "0" * 64
    _store.manifest_path(path).write_text(json.dumps(m))
    ident = _store.identity("taxi", wd.describe("taxi")["version"], 5000, 0, m["params"])
    assert "does not match its checksum" in _store.problem(path, ident)
    assert pa.Table.equals(wd.load("taxi", 5000).to_arrow(), wd.generate("taxi", 5000))


def _ident():
    e = wd.describe("h2o_groupby")
    return _store.identity("h2o_groupby", e["version"], ROWS, 0, {"k": 10, "na": 0, "sort": False})


# --- the cache folder -----------------------------------------------------------------------------


def test_the_cache_folder_comes_from_platformdirs_and_the_variable_wins(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.delenv("WORKBENCH_DATA")
    assert config.data_home() == platformdirs.user_cache_path("workbench", appauthor=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert config.data_home() == tmp_path / "xdg" / "workbench"
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "mine"))
    assert wd.data_home() == tmp_path / "mine"
    monkeypatch.setenv("WORKBENCH_DATA", "~/wb-data")
    assert wd.data_home() == Path.home() / "wb-data"


@pytest.mark.parametrize("value", ["~nouser-xyz/x", "~nouser-xyz"])
def test_a_home_of_no_user_is_a_configuration_error(monkeypatch, value, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA", value)
    with pytest.raises(ConfigurationError, match=r"WORKBENCH_DATA='~nouser-xyz.*'~nouser-xyz' is not a user"):
        wd.make("taxi", 100)
    with pytest.raises(ConfigurationError, match="set it to a folder path"):
        wd.data_home()
    assert "WORKBENCH_DATA" in " ".join(config.problems())

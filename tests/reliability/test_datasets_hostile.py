"""Hostile inputs and faults for ``wb.datasets`` and ``workbench datasets``.

Each case asserts the exact error type (or, on the command line, one ``workbench: error:``
line on stderr, no traceback, a non-zero exit), that the message names the thing and the
fix, that every file that was there before is unchanged (checksums) and that nothing
partial or orphaned is left: no temporary, no half-written dataset. The only file a build
may leave is its lock, ``<dataset>.lock`` (empty, beside the dataset).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import workbench.datasets as wd
from workbench.cli import main
from workbench.datasets import store as _store
from workbench.errors import ConfigurationError

AVAILABLE = "available: h2o_groupby, h2o_join, taxi"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "cache"))
    _store._hashed.clear()
    return tmp_path / "cache"


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` and its SHA-256 (lock files aside: empty, and allowed)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".lock"}


def assert_clean(root: Path, before: dict[str, str]) -> None:
    """Nothing changed, nothing added, and no temporary or non-empty lock anywhere."""
    assert snapshot(root) == before
    assert [p for p in root.rglob("*") if ".tmp-" in p.name] == []
    assert all(p.stat().st_size == 0 for p in root.rglob("*.lock"))


def run_cli(*args: str):
    """``workbench datasets ...`` through the real top-level command."""
    return CliRunner().invoke(main, ["datasets", *args])


def assert_one_line(result, code: int, *needles: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    err = result.stderr
    assert "Traceback" not in result.output and err.count("\n") == 1 and err.startswith("workbench: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# --- the API: names, rows, parameters ---------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda: wd.make("nope", 10), lambda: wd.load("nope"), lambda: wd.describe("nope"),
    lambda: wd.generate("taxi_", 10), lambda: wd.sample("nope"),
], ids=["make", "load", "describe", "generate", "sample"])
def test_unknown_dataset(call, tmp_path):
    before = snapshot(tmp_path)
    with pytest.raises(wd.UnknownDatasetError, match=f"unknown dataset '.*'; {AVAILABLE}"):
        call()
    assert_clean(tmp_path, before)


@pytest.mark.parametrize("rows, error, message", [
    ("abc", TypeError, r"taxi: rows must be a number \(got 'abc'\)"),
    (-1, ValueError, r"taxi: rows must be between 1 and 10_000_000_000 \(got -1\)"),
    (0, ValueError, r"taxi: rows must be between 1 and 10_000_000_000 \(got 0\)"),
    (1e20, ValueError, r"taxi: rows must be between 1 and 10_000_000_000 \(got 100000000000000000000\)"),
    (float("nan"), ValueError, r"taxi: rows must be a whole number \(got nan\)"),
    (float("inf"), ValueError, r"taxi: rows must be a whole number \(got inf\)"),
    (2.5, ValueError, r"taxi: rows must be a whole number \(got 2.5\)"),
    (True, TypeError, r"taxi: rows must be a number \(got True\)"),
])
def test_bad_rows(rows, error, message, tmp_path, home):
    before = snapshot(tmp_path)
    with pytest.raises(error, match=message):
        wd.make("taxi", rows)
    assert_clean(tmp_path, before)
    assert not home.exists()


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(colour=3), ValueError, r"unknown parameter\(s\) colour; valid parameters: k, na, sort"),
    (dict(k="10"), TypeError, r"parameter 'k' must be a number \(got '10'\)"),
    (dict(k=1), ValueError, r"parameter 'k' must be between 2 and 1_000_000 \(got 1\)"),
    (dict(na=float("nan")), ValueError, r"parameter 'na' must be finite"),
    (dict(sort="yes"), TypeError, r"parameter 'sort' must be true or false"),
    (dict(seed=-1), ValueError, r"seed must be a non-negative integer \(got -1\)"),
    (dict(seed="0"), ValueError, r"seed must be a non-negative integer \(got '0'\)"),
    (dict(threads=0), ValueError, r"threads must be a positive integer or None \(got 0\)"),
])
def test_bad_parameters(kwargs, error, message, tmp_path, home):
    before = snapshot(tmp_path)
    with pytest.raises(error, match=message):
        wd.make("h2o_groupby", 1000, **kwargs)
    assert_clean(tmp_path, before)
    assert not home.exists()


@pytest.mark.parametrize("kwargs, message", [
    (dict(table="huge"), r"h2o_join has no table 'huge'; tables: x, small, medium, big"),
    (dict(), r"h2o_join has tables x, small, medium, big; pass table="),
    (dict(table="x", start=50, stop=10), r"row range \[50, 10\) is outside \[0, 100\)"),
    (dict(table="x", stop=101), r"row range \[0, 101\) is outside \[0, 100\)"),
])
def test_bad_generate_ranges_and_tables(kwargs, message):
    with pytest.raises(ValueError, match=message):
        wd.generate("h2o_join", 100, **kwargs)


# --- the command line: the same mistakes, one line each ------------------------------------------------


@pytest.mark.parametrize("args, code, needles", [
    (["make", "nope"], 2, ["unknown dataset 'nope'", AVAILABLE]),
    (["describe", "nope"], 2, ["unknown dataset 'nope'", AVAILABLE]),
    (["make", "taxi", "--rows", "abc"], 2, ["--rows", "'abc'", "write it as 100000"]),
    (["make", "taxi", "--rows", "-1"], 2, ["--rows", "'-1'"]),
    (["make", "taxi", "--rows", "0"], 2, ["--rows", "'0'"]),
    (["make", "taxi", "--rows", "1e20"], 2, ["rows must be between 1 and 10_000_000_000"]),
    (["make", "taxi", "-p", "zones="], 2, ["parameter 'zones' must be a number (got '')"]),
    (["make", "taxi", "-p", "=5"], 2, ["expected KEY=VALUE", "zones=<int>"]),
    (["make", "taxi", "-p", "colour=red"], 2, ["expected KEY=VALUE with KEY one of its parameters"]),
    (["make", "h2o_groupby", "-p", "sort=maybe"], 2, ["'sort' must be true or false (got 'maybe')"]),
    (["make", "taxi", "--seed", "abc"], 2, ["--seed", "'abc'"]),
    (["make", "taxi", "--seed", "-1"], 2, ["seed must be a non-negative integer (got -1)"]),
    (["make", "taxi", "--threads", "0"], 2, ["threads must be a positive integer"]),
    (["make", "taxi", "--frobnicate"], 2, ["--frobnicate"]),
])
def test_cli_bad_input_is_one_line(args, code, needles, tmp_path, home):
    before = snapshot(tmp_path)
    assert_one_line(run_cli(*args), code, *needles)
    assert_clean(tmp_path, before)
    assert not home.exists()


def test_cli_home_of_no_user(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA", "~nouser-xyz/x")
    with pytest.raises(ConfigurationError, match=r"WORKBENCH_DATA='~nouser-xyz/x'.*set it to a folder path"):
        wd.make("taxi", 100)
    assert_one_line(run_cli("make", "taxi", "--rows", "100"), 2, "WORKBENCH_DATA", "set it to a folder path")
    assert list(tmp_path.iterdir()) == []


# --- places that cannot be written ------------------------------------------------------------------


@contextlib.contextmanager
def read_only_folder(where: Path):
    """A folder nobody can write into: a read-only tmpfs for root (who ignores modes), or
    mode 0555 for anyone else. ``prepare(folder)`` runs while it is still writable."""
    where.mkdir()
    if os.geteuid() != 0:
        yield where, lambda: where.chmod(0o555)
        where.chmod(0o755)
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"root ignores folder modes and cannot mount a read-only tmpfs here: {done.stderr!r}")
    try:
        yield where, lambda: subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_read_only_cache_folder(tmp_path, monkeypatch):
    with read_only_folder(tmp_path / "ro") as (folder, seal):
        seal()
        monkeypatch.setenv("WORKBENCH_DATA", str(folder / "cache"))
        with pytest.raises(wd.DatasetWriteError, match=rf"cannot write the dataset to {folder}/cache/taxi "
                                                      r"\(.*\)\. Nothing was left behind\. Set WORKBENCH_DATA") as info:
            wd.make("taxi", 1000)
        assert info.value.errno in (errno.EROFS, errno.EACCES)
        assert_one_line(run_cli("make", "taxi", "--rows", "1000"), 1, str(folder), "WORKBENCH_DATA", "--path")
        assert list(folder.iterdir()) == []


def test_read_only_cache_with_the_dataset_serves_it(tmp_path, monkeypatch):
    """A lab's shared, read-only cache: reading needs no lock and writes nothing."""
    with read_only_folder(tmp_path / "ro") as (folder, seal):
        monkeypatch.setenv("WORKBENCH_DATA", str(folder))
        path = wd.make("taxi", 2000)
        seal()
        before = snapshot(folder)
        _store._hashed.clear()
        assert wd.load("taxi", 2000).to_polars().height == 2000
        assert run_cli("make", "taxi", "--rows", "2000", "--quiet").stdout.strip() == str(path)
        assert snapshot(folder) == before


def test_read_only_place_for_path(tmp_path):
    with read_only_folder(tmp_path / "ro") as (folder, seal):
        seal()
        with pytest.raises(wd.DatasetWriteError, match=rf"cannot write the dataset to {folder}"):
            wd.make("taxi", 100, path=folder / "t")
        assert_one_line(run_cli("make", "taxi", "--rows", "100", "--path", str(folder / "t")), 1, str(folder))


@pytest.mark.parametrize("inside", [False, True], ids=["is-a-file", "inside-a-file"])
def test_cache_variable_names_a_file(inside, tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("keep")
    monkeypatch.setenv("WORKBENCH_DATA", str(blocker / "sub" if inside else blocker))
    before = snapshot(tmp_path)
    with pytest.raises(wd.DatasetWriteError, match=rf"{blocker}.*Set WORKBENCH_DATA to a folder"):
        wd.make("taxi", 100)
    assert_one_line(run_cli("make", "taxi", "--rows", "100"), 1, str(blocker), "WORKBENCH_DATA")
    assert_clean(tmp_path, before)


def test_path_is_a_file(tmp_path):
    target = tmp_path / "data.parquet"
    target.write_bytes(b"PAR1 my own file PAR1")
    before = snapshot(tmp_path)
    with pytest.raises(FileExistsError, match=rf"{target} is a file, not a folder for a dataset; remove it or choose"):
        wd.make("taxi", 100, path=target)
    assert_one_line(run_cli("make", "taxi", "--rows", "100", "--path", str(target)), 1, str(target), "choose another path")
    assert_clean(tmp_path, before)


def test_path_is_a_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "mine.txt").write_text("keep")
    (tmp_path / "link").symlink_to(real)
    before = snapshot(tmp_path)
    with pytest.raises(FileExistsError, match="choose another path"):
        wd.make("taxi", 100, path=tmp_path / "link")
    assert_clean(tmp_path, before)


@pytest.mark.parametrize("layout", ["flat", "nested"])
def test_path_holds_the_users_files(layout, tmp_path):
    mine = tmp_path / "mine"
    (mine / "sub" if layout == "nested" else mine).mkdir(parents=True)
    (mine / ("sub/notes.md" if layout == "nested" else "notes.md")).write_text("keep me")
    before = snapshot(tmp_path)
    with pytest.raises(FileExistsError, match=rf"{mine} exists, is not empty and is not a workbench dataset .*"
                                              r"Choose another path, or empty that folder"):
        wd.make("taxi", 100, path=mine)
    assert_one_line(run_cli("make", "taxi", "--rows", "100", "--path", str(mine)), 1, "not a workbench dataset")
    assert_clean(tmp_path, before)


def test_earlier_dataset_with_the_users_files_is_not_replaced(tmp_path):
    path = wd.make("h2o_join", 1000, path=tmp_path / "j")
    (path / "x" / "README.txt").write_text("my notes")
    before = snapshot(tmp_path)
    with pytest.raises(FileExistsError, match=r"also holds files it did not write \(x/README.txt\)"):
        wd.make("h2o_join", 2000, path=path)
    assert_one_line(run_cli("make", "h2o_join", "--rows", "2000", "--path", str(path)), 1, "x/README.txt")
    assert_clean(tmp_path, before)


# --- full disks ---------------------------------------------------------------------------------------


def test_request_larger_than_the_disk_cli(tmp_path, home):
    import shutil

    free = shutil.disk_usage(tmp_path).free
    if free > 300e9:
        pytest.skip("this disk has room for 1e10 taxi rows")
    before = snapshot(tmp_path)
    assert_one_line(run_cli("make", "taxi", "--rows", "1e10"), 1, "needs about", "free", "Make fewer rows")
    assert_clean(tmp_path, before)
    assert not home.exists()


def test_small_disk_api(tmp_path):
    where = tmp_path / "small"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(wd.DatasetWriteError, match=r"h2o_groupby with 1_000_000 rows needs about .* MB but "
                                                      rf"{where} has 2.1 MB free; nothing was written") as info:
            wd.make("h2o_groupby", 1_000_000, path=where / "g")
        assert info.value.errno == errno.ENOSPC and list(where.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# --- damaged caches: rebuilt, never served --------------------------------------------------------------


def _flip_middle(p: Path) -> None:
    data = bytearray(p.read_bytes())
    for i in range(8):
        data[len(data) // 3 + i] ^= 0xA5
    p.write_bytes(bytes(data))


DAMAGE = {
    "flipped-page": lambda path: _flip_middle(path / "part-00000.parquet"),
    "truncated-file": lambda path: (path / "part-00000.parquet").write_bytes(
        (path / "part-00000.parquet").read_bytes()[:1000]),
    "empty-file": lambda path: (path / "part-00000.parquet").write_bytes(b""),
    "file-is-a-folder": lambda path: ((path / "part-00000.parquet").unlink(), (path / "part-00000.parquet").mkdir()),
    "manifest-garbage": lambda path: _store.manifest_path(path).write_text("{]"),
    "manifest-is-a-folder": lambda path: (_store.manifest_path(path).unlink(), _store.manifest_path(path).mkdir()),
    "manifest-wrong-shape": lambda path: _store.manifest_path(path).write_text(json.dumps({
        **json.loads(_store.manifest_path(path).read_text()), "tables": ["not", "a", "dict"]})),
    "dataset-is-a-file": lambda path: (__import__("shutil").rmtree(path), path.write_text("x")),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_cache_is_rebuilt(damage, home):
    path = wd.make("h2o_groupby", 30_000, k=10)
    good = snapshot(path)
    DAMAGE[damage](path)
    _store._hashed.clear()
    frame = wd.load("h2o_groupby", 30_000, k=10).to_polars()
    assert frame.equals(pl.from_arrow(wd.generate("h2o_groupby", 30_000, k=10)))
    assert 0 <= frame["v3"].min() and frame["v3"].max() < 100
    assert snapshot(path) == good  # the same bytes as before the damage
    assert [p for p in home.rglob("*") if ".tmp-" in p.name] == []


def test_damaged_user_path_dataset_is_rebuilt_in_place(tmp_path):
    path = wd.make("taxi", 3000, path=tmp_path / "t")
    good = snapshot(path)
    _flip_middle(path / "part-00000.parquet")
    assert wd.make("taxi", 3000, path=path) == path
    assert snapshot(path) == good


# --- processes ----------------------------------------------------------------------------------------


def _cli_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workbench", "datasets", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def test_concurrent_makes_of_one_dataset(home):
    procs = [_cli_process("make", "taxi", "--rows", "1e6", "--quiet") for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e for _, e in outs]
    assert len({o.strip() for o, _ in outs}) == 1 and all(e == "" for _, e in outs)
    path = Path(outs[0][0].strip())
    assert [p for p in home.rglob("*") if ".tmp-" in p.name] == []
    assert pl.scan_parquet(path / "*.parquet").select(pl.len()).collect().item() == 1_000_000


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["TERM", "INT", "KILL"])
def test_killed_make_leaves_nothing_after_the_next_make(sig, tmp_path):
    out = tmp_path / "out"
    proc = _cli_process("make", "taxi", "--rows", "3e7", "--threads", "1", "--quiet", "--path", str(out / "t"))
    deadline = time.monotonic() + 90
    while not any(out.glob("t.tmp-*/*.parquet")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in err, err
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and err.strip().splitlines()[-1] == "workbench: error: interrupted"
    if sig != signal.SIGKILL:  # cleaned up at once
        assert sorted(p.name for p in out.iterdir()) == ["t.lock"]
    done = subprocess.run([sys.executable, "-m", "workbench", "datasets", "make", "taxi", "--rows", "500",
                           "--path", str(out / "t")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["t", "t.lock", "t.manifest.json"]

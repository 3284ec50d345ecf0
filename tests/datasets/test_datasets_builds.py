"""Builds beside other builds, signals, full disks and the user's own files; progress bars.

Real processes: ``workbench datasets make`` is started, killed, run twice at once; full
disks are real ones (the test machine's own disk for a request it cannot hold, a small
tmpfs where this user may mount one).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

import workbench.datasets as wd
from workbench.datasets import catalog as _catalog, guard as _guard, store as _store, writer as _writer


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "workbench", "datasets", *args]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy())


def temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if ".tmp-" in p.name) if folder.exists() else []


def wait_for_a_temporary(proc: subprocess.Popen, folder: Path, timeout: float = 90) -> Path:
    """The build's temporary folder, once a part file is being written into it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [t for t in temporaries(folder) if t.is_dir() and any(t.rglob("*.parquet"))]
        if found:
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"the build ended before it could be interrupted: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no temporary folder appeared")


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


# --- signals --------------------------------------------------------------------------------------


def test_sigterm_during_a_make_cleans_up_and_ends_by_that_signal(tmp_path):
    target = tmp_path / "out" / "g"
    proc = start("make", "h2o_groupby", "--rows", "4e7", "--threads", "1", "--quiet", "--path", str(target))
    wait_for_a_temporary(proc, tmp_path / "out")
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert code == -signal.SIGTERM, err  # as `timeout` expects: killed by the signal it sent
    assert "Traceback" not in err and out == ""
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["g.lock"]  # no data, no temporary


def test_sigkill_leaves_a_temporary_that_the_next_make_of_that_path_removes(tmp_path):
    target = tmp_path / "out" / "g"
    proc = start("make", "h2o_groupby", "--rows", "4e7", "--threads", "1", "--quiet", "--path", str(target))
    left = wait_for_a_temporary(proc, tmp_path / "out")
    proc.kill()
    assert finish(proc)[0] == -signal.SIGKILL
    assert left.exists()  # nothing runs on SIGKILL
    code, out, err = finish(start("make", "h2o_groupby", "--rows", "1000", "--quiet", "--path", str(target)))
    assert code == 0, err
    assert temporaries(tmp_path / "out") == [] and out.strip() == str(target)


def test_sigkill_in_the_cache_is_swept_by_a_make_of_any_dataset(data_home):
    proc = start("make", "taxi", "--rows", "4e7", "--threads", "1", "--quiet")
    left = wait_for_a_temporary(proc, data_home)
    proc.kill()
    finish(proc)
    assert left.exists()
    code, out, err = finish(start("make", "h2o_groupby", "--rows", "1000", "--quiet"))
    assert code == 0, err
    assert temporaries(data_home) == []


def test_a_running_build_keeps_its_temporary_while_others_sweep(data_home):
    proc = start("make", "taxi", "--rows", "4e7", "--threads", "1", "--quiet")
    try:
        running = wait_for_a_temporary(proc, data_home)
        wd.make("h2o_groupby", 1000)  # sweeps the cache: must not touch a live build
        assert running.exists()
        assert _guard.sweep(data_home) == [] and running.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        finish(proc)
    assert temporaries(data_home) == []


# --- concurrency ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["cache", "path"])
def test_two_makes_of_one_dataset_at_once_both_succeed(where, tmp_path, data_home):
    args = ["make", "h2o_groupby", "--rows", "3e6", "--quiet"] + (["--path", str(tmp_path / "g")] if where == "path" else [])
    procs = [start(*args), start(*args)]
    results = [finish(p) for p in procs]
    assert [r[0] for r in results] == [0, 0], [r[2] for r in results]
    (path,) = {r[1].strip() for r in results}
    path = Path(path)
    ident = _store.identity("h2o_groupby", wd.describe("h2o_groupby")["version"], 3_000_000, 0,
                            {"k": 100, "na": 0, "sort": False})
    assert _store.problem(path, ident, verify=True) is None
    assert temporaries(path.parent) == []
    assert pl.scan_parquet(path / "*.parquet").select(pl.len()).collect().item() == 3_000_000


def test_a_second_make_waits_for_the_first_and_reuses_its_dataset(tmp_path):
    target = tmp_path / "out" / "g"
    args = ("make", "h2o_groupby", "--rows", "6e6", "--threads", "1", "--quiet", "--path", str(target))
    first = start(*args)
    wait_for_a_temporary(first, tmp_path / "out")
    second = start(*args)
    owners = set()
    while first.poll() is None or second.poll() is None:
        owners |= {t.name.split(".tmp-")[1].split("-")[0] for t in temporaries(tmp_path / "out")}
        time.sleep(0.05)
    results = [finish(first), finish(second)]
    assert [r[0] for r in results] == [0, 0] and {r[1].strip() for r in results} == {str(target)}, results
    assert owners == {str(first.pid)}  # the second never wrote: it waited, then found it made
    assert pl.scan_parquet(target / "*.parquet").select(pl.len()).collect().item() == 6_000_000


# --- the user's own files ---------------------------------------------------------------------------


def test_remaking_into_a_path_never_deletes_the_users_files(tmp_path):
    path = wd.make("taxi", 1000, path=tmp_path / "t")
    (path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"also holds files it did not write \(notes.txt\).*Move those files"):
        wd.make("taxi", 2000, path=path)
    assert (path / "notes.txt").read_text() == "mine"
    assert pl.read_parquet(path / "part-00000.parquet").height == 1000  # the earlier dataset untouched
    (path / "notes.txt").unlink()
    assert wd.make("taxi", 2000, path=path) == path
    assert pl.read_parquet(path / "part-00000.parquet").height == 2000


def test_an_empty_folder_is_used_a_non_empty_one_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert wd.make("taxi", 500, path=empty) == empty
    full = tmp_path / "full"
    (full / "sub").mkdir(parents=True)
    (full / "sub" / "data.csv").write_text("a,b\n")
    with pytest.raises(FileExistsError, match=r"is not empty and is not a workbench dataset .*sub"):
        wd.make("taxi", 500, path=full)
    assert (full / "sub" / "data.csv").read_text() == "a,b\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "empty.lock", "empty.manifest.json", "full"]


# --- room on the disk -------------------------------------------------------------------------------


def _estimate(name: str, rows: int) -> int:
    rows, params = _catalog.resolve(name, rows, {})
    return sum(_writer.estimate_bytes(p) for p in _catalog.generator(name).plan(rows, 0, **params).values())


def test_a_make_larger_than_the_free_space_is_refused_before_writing(data_home):
    import shutil

    free = shutil.disk_usage(data_home.parent).free
    need = _estimate("taxi", 10_000_000_000)
    if need < free:
        pytest.skip(f"this disk has room for 1e10 taxi rows ({free} bytes free)")
    with pytest.raises(wd.DatasetWriteError, match=r"taxi with 10_000_000_000 rows needs about .* GB but .* free; "
                                                  r"nothing was written\. Make fewer rows") as info:
        wd.make("taxi", 1e10)
    assert info.value.errno == errno.ENOSPC
    assert not data_home.exists()


def test_the_estimate_is_close_to_what_is_written(tmp_path):
    for name, rows in (("h2o_groupby", 2_000_000), ("taxi", 1_000_000), ("h2o_join", 1_000_000)):
        path = wd.make(name, rows, path=tmp_path / name)
        written = _store.read_manifest(path)["bytes"]
        assert written <= _estimate(name, rows) * _guard.MARGIN < 1.5 * written, name


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_small_real_disk_refuses_before_writing(tmp_path):
    with tmpfs(tmp_path / "small", "4m") as disk:
        out = subprocess.run(cli("make", "taxi", "--rows", "1e6", "--path", str(disk / "t")),
                             capture_output=True, text=True)
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert out.stderr.count("\n") == 1 and "needs about" in out.stderr and "4.2 MB free" in out.stderr
        assert list(disk.iterdir()) == []


def test_a_disk_that_fills_during_the_build_leaves_nothing_behind(tmp_path):
    with tmpfs(tmp_path / "small", "160m") as disk:
        proc = start("make", "taxi", "--rows", "3e6", "--threads", "1", "--quiet", "--path", str(disk / "t"))
        wait_for_a_temporary(proc, disk)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        with open(disk / "filler", "wb") as f:  # another program takes the room
            with contextlib.suppress(OSError):
                f.write(b"\0" * (free - 64 * 1024))
        code, out, err = finish(proc)
        assert code == 1 and "no space left on the device" in err and "Traceback" not in err, err
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "t.lock"]


# --- progress ---------------------------------------------------------------------------------------


def test_no_progress_bar_into_a_pipe_a_text_bar_on_a_terminal(tmp_path):
    piped = subprocess.run(cli("make", "taxi", "--rows", "3000", "--path", str(tmp_path / "a")),
                           capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stderr == ""
    import pty  # a real terminal for stderr

    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real one has a size
    try:
        done = subprocess.run(cli("make", "taxi", "--rows", "3000", "--path", str(tmp_path / "b")),
                              stdout=subprocess.PIPE, stderr=follower, text=True, timeout=120)
        os.close(follower)
        follower = None
        shown = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(leader, 65536):
                shown += chunk
    finally:
        os.close(leader)
        if follower is not None:
            os.close(follower)
    assert done.returncode == 0
    assert b"rows/s" in shown and b"3.00k/3.00k" in shown


def test_a_notebook_build_shows_a_widget_bar(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipywidgets")
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import workbench.datasets as wd\npath = wd.make('taxi', 20_000)\nprint(path.name)")])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, outputs
    assert "Traceback" not in json.dumps(outputs)

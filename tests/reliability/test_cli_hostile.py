"""The ``workbench`` command against a careless user: every mistake is one line, no traceback.

Each case runs the real command in its own process (as a user's shell would) and checks
the exit code, that stderr is exactly one ``workbench: error: ...`` line naming the thing
and the fix, that the inputs are unchanged and that nothing was made (no data, no
results, no temporary files) before the mistake was found.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.places import read_only, tree

WORKBENCH = [sys.executable, "-m", "workbench"]




@pytest.fixture
def home(tmp_path):
    """A place for the command: an empty data cache and a working folder of its own."""
    (tmp_path / "data").mkdir()
    (tmp_path / "cwd").mkdir()
    return tmp_path


def cli(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    base = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    base["WORKBENCH_DATA"] = str(home / "data")
    base.update(env or {})
    return subprocess.run([*WORKBENCH, *args], capture_output=True, text=True, env=base,
                          cwd=home / "cwd", timeout=timeout, stdin=subprocess.DEVNULL)


def assert_one_line(res, *words: str, code: int | None = None) -> str:
    """The user's error: a non-zero exit, one clean line on stderr naming ``words``."""
    assert res.returncode != 0, res
    if code is not None:
        assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("workbench: error: "), line
    for w in words:
        assert w in line, (w, line)
    return line


def assert_nothing_made(home: Path) -> None:
    assert tree(home / "data") == {}, "data was made before the mistake was found"
    assert tree(home / "cwd") == {}, "files were left in the working folder"




# --- bench ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "soon"])
def test_bench_timeout_must_be_positive_seconds(home, value):
    res = cli(home, "bench", "--timeout", value, "--rows", "1000", "--engines", "polars")
    assert_one_line(res, "--timeout", repr(value), "seconds above 0", code=2)
    assert_nothing_made(home)


def test_bench_out_an_existing_file(home):
    target = home / "results.json"
    target.write_text('{"mine": 1}')
    res = cli(home, "bench", "--out", str(target), "--rows", "1000", "--engines", "polars")
    assert_one_line(res, "--out", str(target), "is a file", "give a folder", code=2)
    assert target.read_text() == '{"mine": 1}'
    assert res.stdout == ""  # found before the run: no engine started
    assert_nothing_made(home)


def test_bench_out_inside_a_file(home):
    target = home / "results.json"
    target.write_text("x")
    res = cli(home, "bench", "--out", str(target / "sub"), "--rows", "1000", "--engines", "polars")
    assert_one_line(res, "--out", "which is a file", code=2)
    assert target.read_text() == "x"


def test_bench_out_a_read_only_folder(home):
    out = home / "ro"
    out.mkdir()
    (out / "earlier.md").write_text("an earlier result")
    before = tree(out)
    with read_only(out):
        res = cli(home, "bench", "--out", str(out), "--rows", "1000", "--engines", "polars")
        assert_one_line(res, "--out", "cannot write to", str(out), "choose a folder you can write to",
                        code=2)
    assert tree(out) == before and res.stdout == ""
    assert_nothing_made(home)


def test_bench_out_below_a_read_only_folder(home):
    ro = home / "ro"
    ro.mkdir()
    with read_only(ro):
        res = cli(home, "bench", "--out", str(ro / "new" / "deeper"), "--engines", "polars")
        assert_one_line(res, "cannot write to", f"its parent {ro} exists", code=2)
    assert tree(ro) == {}


@pytest.mark.parametrize("args, words", [
    (["--rows", "0"], ["--rows", "at least 1 row"]),
    (["--rows", "1e7,abc"], ["--rows", "'abc'", "1e5"]),
    (["--rows", "1.5"], ["--rows", "whole number"]),
    (["--engines", "polars,nope"], ["--engines", "'nope'", "valid: polars"]),
    (["--skip", "nope@1e7"], ["--skip", "'nope'", "valid: polars"]),
    (["--skip", "pandas@many"], ["--skip", "'many'"]),
    (["--questions", "q1,q99"], ["--questions", "q99", "valid: q1"]),
    (["--task", "join", "--questions", "q9"], ["--questions", "q9", "valid: q1"]),
    (["--k", "1"], ["--k", "2<=x<=1000000"]),
    (["--na", "101"], ["--na", "0<=x<=100"]),
    (["--runs", "0"], ["--runs", "1<=x<=20"]),
    (["--gpu-budget", "lots"], ["--gpu-budget", "is not a size"]),
    (["--name", "../elsewhere"], ["--name", "is not a file name"]),
    (["--task", "sort"], ["--task", "'groupby', 'join', 'all'"]),
])
def test_bench_bad_options_fail_before_any_data_is_made(home, args, words):
    res = cli(home, "bench", "--engines", "polars", *args) if "--engines" not in args else cli(
        home, "bench", *args)
    assert_one_line(res, *words, code=2)
    assert_nothing_made(home)


@pytest.mark.parametrize("variable, value", [
    ("WORKBENCH_BACKEND", "garbage"), ("WORKBENCH_MEMORY", "bogus"),
    ("WORKBENCH_GPU_BUDGET", "garbage"), ("WORKBENCH_GPU_BUDGET", "-1GB"),
    ("WORKBENCH_DATA", "~nouser/x"),
])
def test_bench_bad_variables(home, variable, value):
    res = cli(home, "bench", "--rows", "1000", "--engines", "polars", env={variable: value})
    assert_one_line(res, variable, code=1)
    assert_nothing_made(home)


# --- demo -----------------------------------------------------------------------------


@pytest.mark.parametrize("value, says", [
    ("0", "at least 1_000 rows"), ("1", "at least 1_000 rows"), ("-5", "at least 1_000 rows"),
    ("1e2", "at least 1_000 rows"), ("lots", "whole number"), ("2.5e3.1", "whole number"),
])
def test_demo_bad_rows(home, value, says):
    res = cli(home, "demo", "--rows", value)
    assert_one_line(res, "--rows", says, "see 'workbench demo --help'", code=2)
    assert_nothing_made(home)


@pytest.mark.parametrize("variable, value, says", [
    ("WORKBENCH_DATA", "~nouser/x", "'~nouser' is not a user of this machine"),
    ("WORKBENCH_BACKEND", "garbage", "use one of auto, cpu, gpu"),
    ("WORKBENCH_MEMORY", "bogus", "WORKBENCH_MEMORY='bogus'"),
    ("WORKBENCH_GPU_BUDGET", "10XB", "'10XB' is not a size"),
])
def test_demo_bad_variables(home, variable, value, says):
    res = cli(home, "demo", "--rows", "1000", env={variable: value})
    assert_one_line(res, variable, says, code=1)
    assert_nothing_made(home)


def test_demo_bad_backend(home):
    res = cli(home, "demo", "--backend", "tpu")
    assert_one_line(res, "--backend", "'tpu'", "'auto', 'cpu', 'gpu'", code=2)


def test_demo_option_without_its_value(home):
    assert_one_line(cli(home, "demo", "--rows"), "--rows", "requires an argument", code=2)


# --- the other commands ---------------------------------------------------------------


def test_unknown_command(home):
    assert_one_line(cli(home, "frobnicate"), "No such command 'frobnicate'", "workbench --help",
                    code=2)


def test_doctor_unknown_option(home):
    assert_one_line(cli(home, "doctor", "--jsn"), "--jsn", "--json", code=2)


def test_doctor_reports_bad_variables_without_a_traceback(home):
    res = cli(home, "doctor", env={"WORKBENCH_BACKEND": "garbage"})
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr
    assert "WORKBENCH_BACKEND='garbage'" in res.stdout and "NOT usable" in res.stdout


@pytest.mark.parametrize("args, words", [
    (["datasets", "make", "taxi", "--rows", "0"], ["--rows", "at least 1 row"]),
    (["datasets", "make", "taxi", "--rows", "1e5.5"], ["--rows", "whole number"]),
    (["datasets", "make", "no-such-dataset"], ["no-such-dataset"]),
    (["datasets", "lst"], ["No such command 'lst'"]),
])
def test_datasets_mistakes(home, args, words):
    assert_one_line(cli(home, *args), *words)
    assert_nothing_made(home)


def test_datasets_with_an_unknown_users_home(home):
    res = cli(home, "datasets", "make", "taxi", "--rows", "1000", env={"WORKBENCH_DATA": "~nouser/x"})
    assert_one_line(res, "WORKBENCH_DATA", "'~nouser' is not a user of this machine")
    assert not Path("~nouser").exists() and tree(home / "cwd") == {}


def test_a_broken_pipe_is_not_an_error(home):
    """``workbench datasets list | head -1``: the reader leaving early is no traceback."""
    proc = subprocess.Popen([*WORKBENCH, "datasets", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "WORKBENCH_DATA": str(home / "data")})
    proc.stdout.close()  # nobody reads
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err


# --- signals --------------------------------------------------------------------------


def test_sigterm_stops_bench_and_its_engine_process(home):
    """``timeout 600 workbench bench ...`` ending: the engine's own process goes too."""
    import psutil

    out = home / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env["WORKBENCH_DATA"] = str(home / "data")
    proc = subprocess.Popen([*WORKBENCH, "bench", "--rows", "2e6", "--k", "10", "--engines", "polars",
                             "--isolate", "--runs", "20", "--out", str(out)],
                            env=env, cwd=home / "cwd", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 240
    engine = None
    while engine is None and time.monotonic() < deadline and proc.poll() is None:
        engine = next((c for c in parent.children() if "child_main" in " ".join(c.cmdline())), None)
        time.sleep(0.2)
    assert engine is not None, "the engine process never started"
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    finally:
        with contextlib.suppress(psutil.Error):
            engine.kill()
    err = proc.stderr.read().decode()
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err
    assert "stopped by SIGTERM" in err
    gone, alive = psutil.wait_procs([engine], timeout=10)
    assert alive == [], "the engine process was left running"
    assert not [p for p in home.rglob("*") if ".tmp" in p.name or p.name.startswith(".tmp")]

"""``workbench lab`` against a careless student and a busy lab admin.

Mistakes fail before a lesson is copied, with one ``workbench: error: ...`` line; a lab
that started stops, kernels and all, when it is sent SIGTERM (what ``timeout``, batch
systems and admins send) — checked on real JupyterLab processes with psutil.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.places import free_port, read_only, tree, wait_serving
from workbench.lab import lessons_dir

WORKBENCH = [sys.executable, "-m", "workbench"]
TOKEN = "workbench-hostile-token"
ROOT = ["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []




LESSONS_BEFORE = tree(lessons_dir())


def lab_env(tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               IPYTHONDIR=str(tmp_path / "ipython"), HOME=str(tmp_path / "home"))
    env.update(extra or {})
    return env


def lab(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    return subprocess.run([*WORKBENCH, "lab", *args], capture_output=True, text=True, timeout=120,
                          env=lab_env(tmp_path, env), stdin=subprocess.DEVNULL)


def servers_on(path: Path) -> list[psutil.Process]:
    """JupyterLab (or kernel) processes that mention ``path`` anywhere in their command line."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(path) in part for part in p.info["cmdline"] or ()):
                found.append(p)
    return found


def assert_refused(res, tmp_path: Path, *words: str, code: int | None = None) -> None:
    """One clean line naming ``words``; no workspace, no server, lessons as they were."""
    assert res.returncode != 0
    if code is not None:
        assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench: error: "), res.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not (tmp_path / "ws").exists(), "the workspace was made before the mistake was found"
    assert servers_on(tmp_path) == []
    assert tree(lessons_dir()) == LESSONS_BEFORE






# --- options --------------------------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["--studnets", "4"], ["No such option '--studnets'", "--students", "after '--'"]),
    (["--ServerApp.ip=0.0.0.0"], ["--ServerApp.ip", "Options for JupyterLab go after '--'"]),
    (["--students", "0"], ["--students", "x>=1"]),
    (["--students", "-3"], ["--students", "x>=1"]),
    (["--students", "many"], ["--students", "'many' is not a valid integer"]),
    (["--seat", "-1"], ["--seat", "x>=0"]),
    (["--port", "99999"], ["--port", "1<=x<=65535"]),
    (["--port", "0"], ["--port", "1<=x<=65535"]),
    (["--port", "http"], ["--port", "'http' is not a valid integer"]),
    (["extra"], ["unexpected extra argument (extra)"]),
])
def test_bad_options(tmp_path, args, words):
    res = lab(tmp_path, str(tmp_path / "ws"), *args, "--no-browser")
    assert_refused(res, tmp_path, *words, "see 'workbench lab --help'", code=2)


@pytest.mark.parametrize("args, words", [
    (["--budget", "10XB"], ["'10XB' is not a size"]),
    (["--budget", "-1GB"], ["budget"]),
    (["--budget", "10GB", "--students", "2"], ["a budget or a number of students, not both"]),
])
def test_bad_budgets(tmp_path, args, words):
    assert_refused(lab(tmp_path, str(tmp_path / "ws"), *args), tmp_path, *words, code=1)


@pytest.mark.parametrize("variable, value", [
    ("WORKBENCH_GPU_BUDGET", "garbage"), ("WORKBENCH_BACKEND", "garbage"),
    ("WORKBENCH_MEMORY", "bogus"), ("WORKBENCH_DATA", "~nouser/x"),
])
def test_bad_variables_would_reach_every_kernel(tmp_path, variable, value):
    res = lab(tmp_path, str(tmp_path / "ws"), "--no-browser", env={variable: value})
    assert_refused(res, tmp_path, variable, code=1)


def test_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = lab(tmp_path, str(tmp_path / "ws"), "--port", str(port), "--no-browser")
    assert_refused(res, tmp_path, f"port {port} is in use", "choose another with --port", code=1)


# --- places ---------------------------------------------------------------------------


def test_read_only_workspace_keeps_the_students_work(tmp_path):
    ws = tmp_path / "ro-ws"
    ws.mkdir()
    (ws / "01-one-copy-cpu-and-gpu.ipynb").write_text('{"edited": "by the student"}')
    before = tree(ws)
    with read_only(ws):
        res = lab(tmp_path, str(ws), "--no-browser")
    assert_refused(res, tmp_path, f"cannot write to the workspace {ws}",
                   "choose a folder you can write to", code=1)
    assert tree(ws) == before


def test_workspace_below_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        res = lab(tmp_path, str(ro / "ws"), "--no-browser")
    assert_refused(res, tmp_path, f"cannot make the workspace {ro / 'ws'}", "choose a folder", code=1)
    assert tree(ro) == {}


def test_workspace_is_a_file(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    assert_refused(lab(tmp_path, str(afile)), tmp_path, f"{afile} is a file", "choose a folder", code=1)
    assert afile.read_text() == "mine"
    assert_refused(lab(tmp_path, str(afile / "ws")), tmp_path, "which is a file", code=1)


def test_lessons_missing_or_a_file(tmp_path):
    res = lab(tmp_path, str(tmp_path / "ws"), "--lessons", str(tmp_path / "nowhere"))
    assert_refused(res, tmp_path, "no lessons at", "nowhere", "--lessons DIR", code=1)
    afile = tmp_path / "lesson.ipynb"
    afile.write_text("{}")
    assert_refused(lab(tmp_path, str(tmp_path / "ws"), "--lessons", str(afile)), tmp_path,
                   "no lessons at", code=1)


# --- a running lab and signals ---------------------------------------------------------


def _get(url: str, method: str = "GET", body: bytes | None = None):
    req = urllib.request.Request(url, method=method, data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.loads(response.read() or b"null")


def kernels_of(server: psutil.Process) -> list[psutil.Process]:
    """The server's kernel processes; short-lived helpers it or a kernel spawns are left out."""
    found = []
    for child in server.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a helper may end (or be a zombie) meanwhile
            if "ipykernel_launcher" in " ".join(child.cmdline()):
                found.append(child)
    return found


@pytest.fixture
def running_lab(tmp_path):
    """`workbench lab` serving on a free port with one kernel started; killed if a test fails."""
    port = free_port()
    ws = tmp_path / "ws"
    proc = subprocess.Popen(
        [*WORKBENCH, "lab", str(ws), "--budget", "1GB", "--port", str(port), "--no-browser", "--",
         f"--IdentityProvider.token={TOKEN}", *ROOT],
        env=lab_env(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_serving(proc, f"{base}/api/status?token={TOKEN}", 120, proc.stderr)
    _get(f"{base}/api/kernels?token={TOKEN}", "POST", b'{"name": "python3"}')
    server = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    while not kernels_of(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    yield proc, server, ws
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _assert_all_gone(proc, family: list[psutil.Process], tmp_path: Path) -> None:
    proc.wait(timeout=60)
    gone, alive = psutil.wait_procs(family, timeout=30)
    assert alive == [], f"left running: {alive}"
    assert servers_on(tmp_path) == []


def test_sigterm_stops_jupyterlab_and_its_kernels(running_lab, tmp_path):
    proc, server, ws = running_lab
    # exec: the pid we started is JupyterLab itself, with the budget and the options after --
    cmdline = server.cmdline()
    assert "jupyterlab" in cmdline and f"--IdentityProvider.token={TOKEN}" in cmdline
    assert "--ServerApp.port_retries=0" in cmdline
    assert server.environ().get("WORKBENCH_GPU_BUDGET") == "1GB"
    kernels = kernels_of(server)
    assert kernels, "no kernel started"
    assert {k.environ().get("WORKBENCH_GPU_BUDGET") for k in kernels} == {"1GB"}
    os.kill(proc.pid, signal.SIGTERM)  # to the lab's pid only, as `kill` or `timeout` would
    _assert_all_gone(proc, [server, *kernels], tmp_path)
    assert {p.name for p in ws.glob("*.ipynb")} == {p.name for p in lessons_dir().glob("*.ipynb")}


def test_two_interrupts_stop_it_as_they_stop_jupyterlab(running_lab, tmp_path):
    proc, server, _ = running_lab
    family = [server, *kernels_of(server)]
    os.kill(proc.pid, signal.SIGINT)  # the first asks for confirmation...
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGINT)  # ...the second (Ctrl-C twice) stops it
    _assert_all_gone(proc, family, tmp_path)


def test_a_second_lab_on_the_same_port_is_refused(running_lab, tmp_path):
    proc, server, _ = running_lab
    port = int(next(a for a in server.cmdline() if a.startswith("--ServerApp.port=")).split("=")[1])
    other = tmp_path / "other"
    other.mkdir()
    res = lab(other, str(other / "ws"), "--port", str(port), "--no-browser")
    assert_refused(res, other, f"port {port} is in use", code=1)
    assert proc.poll() is None  # the first lab goes on serving

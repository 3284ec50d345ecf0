"""workbench lab: a workspace of lessons, a GPU budget per student, real JupyterLab in a real browser."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.places import free_port, stop, wait_serving

from workbench.lab.exercises import strip_solutions

from workbench.lab import budget_setting, environment, gpu_for, lessons_dir, prepare_workspace

LESSONS = lessons_dir()

TOKEN = "workbench-test-token"


def test_the_workspace_gets_the_lessons_and_keeps_the_students_edits(tmp_path):
    workspace = tmp_path / "ws"
    copied = prepare_workspace(workspace)
    assert sorted(p.name for p in copied) == sorted(p.name for p in LESSONS.glob("*.ipynb"))
    # the student's copies: the lessons with their solution cells turned into stubs
    for p in copied:
        assert json.loads(p.read_text()) == strip_solutions(LESSONS / p.name)
    mine = copied[0]
    mine.write_text('{"edited": "by the student"}')
    assert prepare_workspace(workspace) == []  # nothing copied over the student's work
    assert json.loads(mine.read_text()) == {"edited": "by the student"}
    assert not list(workspace.glob(".*.partial"))


def test_bad_workspaces_and_lessons_are_named(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file; choose a folder"):
        prepare_workspace(afile)
    with pytest.raises(FileNotFoundError, match="no lessons at .*missing.*--lessons DIR"):
        prepare_workspace(tmp_path / "ws", lessons=tmp_path / "missing")


def test_budget_settings():
    assert budget_setting() is None
    assert budget_setting(students=8) == "0.125"
    assert budget_setting(budget="10GB") == "10GB"
    assert budget_setting(budget="0.25") == "0.25"
    with pytest.raises(ValueError, match="not both"):
        budget_setting(budget="10GB", students=2)
    with pytest.raises(ValueError, match="students must be at least 1"):
        budget_setting(students=0)
    with pytest.raises(ValueError, match="'10XB' is not a size"):
        budget_setting(budget="10XB")


def test_students_are_spread_over_the_gpus():
    assert budget_setting(students=32, gpus=4) == "0.125"  # 8 students per GPU
    assert budget_setting(students=6, gpus=4) == "0.5"  # 2 on some GPUs: each gets half
    assert budget_setting(students=2, gpus=4) == "1.0"
    assert [gpu_for(seat, 4) for seat in range(6)] == ["0", "1", "2", "3", "0", "1"]
    assert gpu_for(7, 1) is None and gpu_for(7, 0) is None
    with pytest.raises(ValueError, match="seat must be 0 or more"):
        gpu_for(-1, 4)
    env = environment({"HOME": "/h"}, students=32, seat=5, gpus=4)
    assert env == {"HOME": "/h", "CUDA_VISIBLE_DEVICES": "1", "WORKBENCH_GPU_BUDGET": "0.125"}
    admin = environment({"CUDA_VISIBLE_DEVICES": "3"}, students=8, seat=5, gpus=1)
    assert admin == {"CUDA_VISIBLE_DEVICES": "3", "WORKBENCH_GPU_BUDGET": "0.125"}  # kept
    assert environment({}, budget="10GB") == {"WORKBENCH_GPU_BUDGET": "10GB"}
    assert environment({}) == {}




def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read() or b"null")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found + [g for c in found for g in _children(c)]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.fixture
def lab_server(tmp_path):
    """`workbench lab` for 4 students, its JupyterLab answering on a free port."""
    port = free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"), IPYTHONDIR=str(tmp_path / "ipython"))
    env.pop("WORKBENCH_GPU_BUDGET", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "lab", str(tmp_path / "ws"), "--students", "4",
         "--port", str(port), "--no-browser", "--", f"--IdentityProvider.token={TOKEN}",
         *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else [])],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_serving(proc, f"{base}/api/status?token={TOKEN}", 90, proc.stdout)
    yield proc, base, tmp_path / "ws"
    stop(proc)


def test_jupyterlab_serves_the_lessons_with_the_budget_to_a_real_browser(lab_server, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium for the browser test: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    proc, base, workspace = lab_server
    names = {item["name"] for item in _get(f"{base}/api/contents?token={TOKEN}")["content"]}
    assert {p.name for p in LESSONS.glob("*.ipynb")} <= names

    # A kernel started by this JupyterLab inherits the student's share of the GPU.
    request = urllib.request.Request(f"{base}/api/kernels?token={TOKEN}", method="POST",
                                     data=b'{"name": "python3"}',
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        kernel = json.loads(response.read())
    # `workbench lab` became JupyterLab (exec): the same process, the budget in its environment
    assert b"jupyterlab" in Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    budgets = {_environ(pid).get("WORKBENCH_GPU_BUDGET") for pid in [proc.pid, *_children(proc.pid)]}
    assert budgets == {"0.25"}, budgets  # the server and the kernel alike
    assert kernel["name"] == "python3"

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.goto(f"{base}/lab/tree/01-one-copy-cpu-and-gpu.ipynb?token={TOKEN}")
        heading = page.locator(".jp-RenderedMarkdown h1").first  # the lesson, rendered
        heading.wait_for(timeout=60_000)
        assert "Lesson 1: one copy of the data, on the CPU and the GPU" in heading.inner_text()
        listing = page.locator(".jp-DirListing-content")
        listing.get_by_text("02-how-fast-is-this-machine.ipynb").first.wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "lab.png"))
        browser.close()
    assert (tmp_path / "lab.png").stat().st_size > 10_000


def test_a_port_asked_for_is_that_port_or_an_error(tmp_path):
    from workbench.lab.launcher import check_port, command

    cmd = command(tmp_path, port=8899, open_browser=False, extra=("--ServerApp.ip=0.0.0.0",))
    assert cmd[-4:] == ["--ServerApp.port=8899", "--ServerApp.port_retries=0", "--no-browser",
                        "--ServerApp.ip=0.0.0.0"]
    assert "--ServerApp.port_retries=0" not in command(tmp_path)  # no port: JupyterLab picks
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match=r"port \d+ is in use .*choose another with --port"):
            check_port(taken.getsockname()[1])
    with pytest.raises(ValueError, match="from 1 to 65535"):
        check_port(99999)


def test_prepare_checks_before_it_copies(tmp_path):
    from workbench.lab.launcher import prepare

    ws = tmp_path / "ws"
    with pytest.raises(ValueError, match="students must be at least 1"):
        prepare(ws, students=0)
    with pytest.raises(ValueError, match="seat must be 0 or more"):
        prepare(ws, students=2, seat=-1)
    assert not ws.exists()
    lab = prepare(ws, budget="2GB", port=None, open_browser=False, extra=("--debug",))
    assert lab.env["WORKBENCH_GPU_BUDGET"] == "2GB" and lab.given == {"WORKBENCH_GPU_BUDGET": "2GB"}
    assert lab.command[-2:] == ["--no-browser", "--debug"]
    assert sorted(p.name for p in lab.copied) == sorted(p.name for p in LESSONS.glob("*.ipynb"))

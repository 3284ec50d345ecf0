"""``workbench lab``: JupyterLab on a workspace of the lessons, with a GPU budget per student.

A teaching lab has many students and few GPUs. Each student starts
``workbench lab ~/lab --students 32`` (or ``--budget 10GB``): the lessons are copied
into their workspace (their own edits are never overwritten), and JupyterLab starts
with ``WORKBENCH_GPU_BUDGET`` in its environment, so every kernel's session holds
its work to its share of a GPU instead of taking the whole device. On a machine with
several GPUs the students are spread over them by seat (``--seat``, by default the
user's id): seat 5 of 32 on 4 GPUs gets GPU 1 (``CUDA_VISIBLE_DEVICES``) and an
eighth of it. Nothing here is a scheduler: JupyterLab is started as it is, with the
options passed through.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from workbench import config
from workbench.config import BUDGET as ENV_BUDGET
from workbench.optional import available

_PACKAGE = Path(__file__).resolve().parent.parent  # .../workbench


def lessons_dir() -> Path:
    """The lessons: ``notebooks/`` ships inside the wheel as ``workbench/lessons``; a source
    checkout (``pip install -e .``) has them beside the package."""
    for candidate in (_PACKAGE / "lessons", _PACKAGE.parent / "notebooks"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the lessons were not found in {_PACKAGE / 'lessons'} (installed) "
                            f"nor in {_PACKAGE.parent / 'notebooks'} (source checkout)")


def prepare_workspace(workspace: str | Path, lessons: str | Path | None = None) -> list[Path]:
    """Copy the lessons into ``workspace``; returns the files copied.

    A lesson already in the workspace is the student's: it is left as it is, even
    when it differs from the original. Files are written under a temporary name and
    renamed, so an interrupted copy leaves no half lesson.
    """
    workspace = Path(workspace).expanduser()
    source = Path(lessons) if lessons is not None else lessons_dir()
    if not source.is_dir():
        raise FileNotFoundError(
            f"no lessons at {source}: pass lessons=<folder of .ipynb files> (or `--lessons DIR`)")
    if workspace.exists() and not workspace.is_dir():
        raise NotADirectoryError(f"the workspace {workspace} is a file; choose a folder")
    workspace.mkdir(parents=True, exist_ok=True)
    copied = []
    for lesson in sorted(source.glob("*.ipynb")):
        target = workspace / lesson.name
        if target.exists():
            continue
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(lesson, partial)
        partial.replace(target)
        copied.append(target)
    return copied


def budget_setting(budget: str | None = None, students: int | None = None,
                   gpus: int = 1) -> str | None:
    """The ``WORKBENCH_GPU_BUDGET`` value for each student's kernels, or None for no limit.

    ``students``: an equal share of a GPU each, the students spread over ``gpus``
    (``"0.125"`` for 32 students on 4 GPUs). ``budget``: bytes or a size (``"10GB"``) or
    a fraction, checked now so a typo fails before the lab starts.
    """
    if budget is not None and students is not None:
        raise ValueError("give a budget or a number of students, not both")
    if students is not None:
        if students < 1:
            raise ValueError(f"students must be at least 1; got {students}")
        return repr(1 / -(-students // max(1, gpus)))
    if budget is not None:
        return str(config.budget(budget))
    return None


def gpu_for(seat: int, gpus: int) -> str | None:
    """The GPU (a ``CUDA_VISIBLE_DEVICES`` value) of a seat, or None with one GPU or none."""
    if seat < 0:
        raise ValueError(f"seat must be 0 or more; got {seat}")
    return str(seat % gpus) if gpus > 1 else None


def environment(base: dict[str, str], *, budget: str | None = None, students: int | None = None,
                seat: int | None = None, gpus: int = 1) -> dict[str, str]:
    """The lab's environment: ``base`` plus the student's GPU and budget.

    A ``CUDA_VISIBLE_DEVICES`` already in ``base`` (set by the lab's admin) is kept, and
    the students are then spread over the GPUs it shows.
    """
    env = dict(base)
    if students is not None and "CUDA_VISIBLE_DEVICES" not in env:
        gpu = gpu_for(os.getuid() if seat is None else seat, gpus)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
    setting = budget_setting(budget, students, gpus)
    if setting is not None:
        env[ENV_BUDGET] = setting
    return env


def command(workspace: Path, port: int | None = None, open_browser: bool = True,
            extra: tuple[str, ...] = ()) -> list[str]:
    """The JupyterLab command line for a workspace."""
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={workspace}"]
    if port is not None:
        cmd.append(f"--ServerApp.port={port}")
    if not open_browser:
        cmd.append("--no-browser")
    return cmd + list(extra)


def launch(workspace: str | Path, *, budget: str | None = None, students: int | None = None,
           seat: int | None = None, port: int | None = None, open_browser: bool = True,
           lessons: str | Path | None = None,
           extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, dict[str, str]]:
    """Prepare the workspace and start JupyterLab on it.

    Returns the server process and what it was given for the student's GPU
    (``CUDA_VISIBLE_DEVICES``, ``WORKBENCH_GPU_BUDGET``; empty when nothing).
    """
    if not available("jupyterlab"):
        raise RuntimeError("JupyterLab is not installed: pip install 'workbench[lab]'")
    from workbench import hardware

    workspace = Path(workspace).expanduser().resolve()
    prepare_workspace(workspace, lessons)
    gpus = len(hardware.detect().gpus) if students is not None else 1
    env = environment(dict(os.environ), budget=budget, students=students, seat=seat, gpus=gpus)
    given = {k: env[k] for k in ("CUDA_VISIBLE_DEVICES", ENV_BUDGET)
             if k in env and env[k] != os.environ.get(k)}
    return subprocess.Popen(command(workspace, port, open_browser, extra), env=env), given

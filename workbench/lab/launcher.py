"""``workbench lab``: JupyterLab on a workspace of the lessons, with a GPU budget per student.

A teaching lab has many students and few GPUs. Each student starts
``workbench lab ~/lab --students 32`` (or ``--budget 10GB``): the lessons are copied
into their workspace (their own edits are never overwritten), and JupyterLab starts
with ``WORKBENCH_GPU_BUDGET`` in its environment, so every kernel's session holds
its work to its share of a GPU instead of taking the whole device. On a machine with
several GPUs the students are spread over them by seat (``--seat``, by default the
user's id): seat 5 of 32 on 4 GPUs gets GPU 1 (``CUDA_VISIBLE_DEVICES``) and an
eighth of it. Nothing here is a scheduler: everything is checked and the lessons
copied, then the process becomes JupyterLab (``exec``) with the options given after
``--``, so signals reach the server itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from workbench import config
from workbench.config import BUDGET as ENV_BUDGET
from workbench.errors import missing
from workbench.lab.exercises import WORKSPACE, strip_solutions
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


def _writable(folder: Path) -> None:
    """Raise the folder's own OSError (with a message that says what to do) unless a file
    can be made in it; ``os.access`` says yes to root on read-only or immutable folders."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".workbench-probe-"):
            pass
    except OSError as err:
        raise type(err)(err.errno, f"cannot write to the workspace {folder} ({err.strerror}); "
                        "choose a folder you can write to") from None


def prepare_workspace(workspace: str | Path, lessons: str | Path | None = None) -> list[Path]:
    """Copy the lessons into ``workspace``; returns the files copied.

    A lesson already in the workspace is the student's: it is left as it is, even
    when it differs from the original. Files are written under a temporary name and
    renamed, so an interrupted copy leaves no half lesson.
    """
    workspace = Path(workspace).expanduser()
    source = Path(lessons).expanduser() if lessons is not None else lessons_dir()
    if not source.is_dir():
        raise FileNotFoundError(
            f"no lessons at {source}: pass lessons=<folder of .ipynb files> (or `--lessons DIR`)")
    check_workspace(workspace)
    try:
        workspace.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise type(err)(err.errno, f"cannot make the workspace {workspace} ({err.strerror}); "
                        "choose a folder you can write to") from None
    _writable(workspace)
    copied = []
    for lesson in sorted(source.glob("*.ipynb")):
        target = workspace / lesson.name
        if target.exists():
            continue
        # The student's copy: solution cells become stubs (written under a temporary
        # name, then renamed, by strip_solutions).
        strip_solutions(lesson, target)
        copied.append(target)
    return copied


def check_workspace(workspace: Path) -> None:
    """A workspace must be a folder, or a path to make one at; checked before anything is copied."""
    probe = workspace
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == workspace else f"is inside {probe}, which is a file"
        raise NotADirectoryError(f"the workspace {workspace} {where}; choose a folder")
    if probe == workspace:
        _writable(workspace)


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
    """The JupyterLab command line for a workspace.

    A port asked for is that port or an error: JupyterLab would otherwise move to the
    next free one, and the student would look for the lab where it is not.
    """
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={workspace}"]
    if port is not None:
        cmd += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    if not open_browser:
        cmd.append("--no-browser")
    return cmd + list(extra)


def check_port(port: int) -> None:
    """The port must be one a server can listen on, and free on this machine."""
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port {port!r} is not a TCP port; give one from 1 to 65535, or none "
                         "to let JupyterLab pick a free one")
    with socket.socket() as s:
        # as tornado binds: SO_REUSEADDR, so only a listening server makes it fail
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as err:
            raise OSError(err.errno, f"port {port} is in use on this machine ({err.strerror}); "
                          "choose another with --port, or leave it out to let JupyterLab pick "
                          "a free one") from None


@dataclass
class Lab:
    """A lab ready to start: the JupyterLab command, its environment and the student's GPU."""

    command: list[str]
    env: dict[str, str]
    given: dict[str, str] = field(default_factory=dict)
    copied: list[Path] = field(default_factory=list)


def prepare(workspace: str | Path, *, budget: str | None = None, students: int | None = None,
            seat: int | None = None, port: int | None = None, open_browser: bool = True,
            lessons: str | Path | None = None, extra: tuple[str, ...] = ()) -> Lab:
    """Check everything, then copy the lessons: a mistake fails before any file is written.

    ``given`` is what the lab gives the student's GPU (``CUDA_VISIBLE_DEVICES``,
    ``WORKBENCH_GPU_BUDGET``; empty when nothing).
    """
    if not available("jupyterlab"):
        raise missing("jupyterlab", "lab", "for workbench lab")
    from workbench import hardware

    workspace = Path(workspace).expanduser().resolve()
    if seat is not None and seat < 0:
        raise ValueError(f"seat must be 0 or more; got {seat}")
    budget_setting(budget, students)  # checked before the GPUs are counted
    if budget is None and students is None:
        config.budget()  # an unusable WORKBENCH_GPU_BUDGET would reach every kernel
    gpus = len(hardware.detect().gpus) if students is not None else 1
    env = environment(dict(os.environ), budget=budget, students=students, seat=seat, gpus=gpus)
    env.setdefault(WORKSPACE, str(workspace))  # exercise results go to the workspace root
    if port is not None:
        check_port(port)
    source = Path(lessons).expanduser() if lessons is not None else lessons_dir()
    if not source.is_dir():
        raise FileNotFoundError(f"no lessons at {source}: give a folder of .ipynb files "
                                "with --lessons DIR")
    check_workspace(workspace)
    copied = prepare_workspace(workspace, source)
    given = {k: env[k] for k in ("CUDA_VISIBLE_DEVICES", ENV_BUDGET)
             if k in env and env[k] != os.environ.get(k)}
    return Lab(command(workspace, port, open_browser, extra), env, given, copied)


def launch(workspace: str | Path, **options) -> tuple[subprocess.Popen, dict[str, str]]:
    """Prepare the workspace and start JupyterLab on it as a child process (for scripts
    that manage it); ``workbench lab`` replaces itself by JupyterLab instead (:func:`run`).

    Returns the server process and what it was given for the student's GPU.
    """
    lab = prepare(workspace, **options)
    return subprocess.Popen(lab.command, env=lab.env), lab.given


def run(lab: Lab):
    """Become JupyterLab (``exec``): the same process, so a signal sent to the lab (SIGTERM
    from ``timeout``, a batch system or the admin) reaches the server itself, which shuts
    its kernels down; no parent is left to forward it or to be orphaned from."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(lab.command[0], lab.command, lab.env)

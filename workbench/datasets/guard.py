"""What keeps a build safe beside other builds and signals: locks, room on the disk,
termination turned into clean-up, and the sweep of what killed builds left.

Every build of a dataset holds ``<dir>.lock`` (a ``filelock`` lock, which the operating
system releases when its process dies, even by SIGKILL). So a temporary folder whose
target lock can be taken belongs to no running build and can be removed, whatever
process ids have been reused since.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from workbench.sizes import format_bytes

TEMP = re.compile(r"^(?P<base>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}$")
MARGIN = 1.05  # on top of the sampled estimate: row groups of other sizes, file footers
SLACK = 16 * 10**6  # and a little for the manifest and the file system's own blocks


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def lock(path: Path) -> FileLock:
    """The cross-process lock that every build of ``path`` holds while it writes."""
    return FileLock(lock_path(path))


def temp_name(path: Path) -> Path:
    import uuid

    return path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _target_of(tmp: Path) -> Path | None:
    m = TEMP.match(tmp.name)
    if m is None:
        return None
    base = m["base"].removesuffix(".manifest.json")
    return tmp.with_name(base)


def _remove(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            tmp.unlink()


def clean_stale(path: Path, held: bool) -> list[Path]:
    """Remove the temporary files of builds of ``path`` that no running build owns.

    ``held``: the caller holds ``path``'s lock, so every temporary of ``path`` but the
    caller's own is stale. Otherwise a temporary is stale when its target's lock is free.
    """
    removed = []
    with contextlib.suppress(OSError):
        for tmp in path.parent.iterdir():
            target = _target_of(tmp)
            if target != path or tmp.name.split(".tmp-")[1].startswith(f"{os.getpid()}-"):
                continue
            if held or _free(target):
                _remove(tmp)
                removed.append(tmp)
    return removed


def sweep(home: Path) -> list[Path]:
    """Remove what killed builds left anywhere in the cache ``home`` (``<dataset>/*.tmp-*``)."""
    removed = []
    with contextlib.suppress(OSError):
        for folder in home.iterdir():
            if not folder.is_dir():
                continue
            targets = {t for t in map(_target_of, folder.glob("*.tmp-*")) if t is not None}
            for target in targets:
                removed += clean_stale(target, held=False)
    return removed


def _free(target: Path) -> bool:
    """Whether no process holds ``target``'s build lock (taken and given back at once)."""
    if not lock_path(target).exists():
        return True  # builds take the lock before they write: an unlocked temporary is stale
    try:
        with FileLock(lock_path(target), timeout=0):
            return True
    except Timeout:
        return False
    except OSError:
        return False  # cannot tell (read-only place): leave it


def check_space(path: Path, need: int, what: str) -> str | None:
    """Why the disk under ``path`` cannot take ``need`` bytes (with a margin); None when it can."""
    need = int(need * MARGIN) + SLACK
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return None  # the write itself will say what is wrong
    if free >= need:
        return None
    return (f"{what} needs about {format_bytes(need)} but {probe} has {format_bytes(free)} free; "
            "nothing was written. Make fewer rows, free some space, or set WORKBENCH_DATA (or pass "
            "path=, --path on the command line) to a disk with room")


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM, SIGHUP) during a build."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


@contextlib.contextmanager
def terminated_cleanly() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` while a build runs, so its clean-up
    runs (``timeout`` sends SIGTERM), then die by the same signal, as the caller asked.

    Only where Python can install handlers (the main thread) and only over the default
    handler: a program that handles these signals itself keeps its handler.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    fired = []

    def handler(signum, frame):
        if not fired:  # once: a second signal must not cut the clean-up short
            fired.append(signum)
            raise Terminated(signum)

    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None and signal.getsignal(sig) == signal.SIG_DFL:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    except Terminated as t:
        for sig, old in previous.items():
            signal.signal(sig, old)
        previous.clear()
        sys.stderr.flush()
        os.kill(os.getpid(), t.signum)  # the default action: the process ends here
        raise SystemExit(128 + t.signum) from None  # pragma: no cover - a platform that ignores it
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

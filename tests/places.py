"""Places for tests: checksummed trees, read-only folders, servers a test starts and stops."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its checksum (folders as "dir")."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` made read-only for this user; root ignores modes, so it gets immutable."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("running as root on a file system without chattr +i")
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    try:
        yield folder
    finally:
        subprocess.run(undo, check=True)


# ------------------------------------------------------------ servers started by a test
def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_group(proc, sig=signal.SIGKILL) -> None:
    """Signal ``proc``'s process group (started with ``start_new_session=True``)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def wait_serving(proc, url: str, seconds: float, output) -> None:
    """Wait until ``url`` answers; fail with ``output``'s tail if ``proc`` ends or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                kill_group(proc)
                pytest.fail("the server did not start:\n" + output.read().decode()[-3000:])
            time.sleep(0.5)


def stop(proc) -> None:
    """SIGTERM to the group, then SIGKILL if it is still there after 30 s."""
    kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        kill_group(proc)

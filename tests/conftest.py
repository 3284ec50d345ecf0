"""Shared test set-up: a fresh session per test, GPU tests skipped with the reason."""

from __future__ import annotations

import importlib.util

import pytest

from workbench import hardware, session

ENV = ("WORKBENCH_BACKEND", "WORKBENCH_MEMORY", "WORKBENCH_GPU_BUDGET")


def gpu_unavailable_reason() -> str | None:
    """Why GPU tests cannot run here, or None when they can."""
    profile = hardware.detect()
    if not profile.has_usable_gpu:
        return f"no usable GPU ({profile.platform}: {profile.reason})"
    if importlib.util.find_spec("cudf") is None:
        return "RAPIDS is not installed (pip install 'gpu-workbench[gpu]')"
    return None


# GPU tests that apply a memory budget in the test process itself (the cluster's: its
# workers inherit the session's policy). RMM's resource is set once per process, so they
# run after every other test; the other budgeted GPU tests start their own interpreter.
PROCESS_BUDGET = ("tests/cluster/",)


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    last = [i for i in gpu_items if i.nodeid.startswith(PROCESS_BUDGET)]
    if last:
        items[:] = [i for i in items if i not in last] + last
    reason = gpu_unavailable_reason()
    if reason:
        skip = pytest.mark.skip(reason=reason)
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def fresh_session(monkeypatch):
    """Each test starts without a session and without WORKBENCH_* variables."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    session._reset_for_tests()
    yield
    session._reset_for_tests()

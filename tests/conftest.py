"""Shared test set-up: a fresh session per test, GPU tests skipped with the reason."""

from __future__ import annotations

import importlib.util
import os

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


#: names this variable to mark the interpreter that tests/cluster/test_cluster_gpu_process.py starts
PROCESS_VAR = "WORKBENCH_TEST_PROCESS"
CLUSTER_GPU = "cluster-gpu"
#: GPU tests that apply a memory budget in the test process itself (the cluster's: its
#: workers inherit the session's policy). RMM's resource is set once per process, so where
#: other GPU tests share the run they are left to an interpreter of their own, which
#: tests/cluster/test_cluster_gpu_process.py starts; the other budgeted GPU tests start theirs.
OWN_PROCESS = ("tests/cluster/test_cluster_gpu.py::",
               "tests/cluster/test_cluster.py::test_gpu_workers_carry_the_memory_policy")
WRAPPER = "tests/cluster/test_cluster_gpu_process.py::"


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    own = [i for i in gpu_items if i.nodeid.startswith(OWN_PROCESS)]
    if os.environ.get(PROCESS_VAR) == CLUSTER_GPU:
        drop = [i for i in items if i.nodeid.startswith(WRAPPER)]  # never a child of the child
    else:  # alone in the run they may share this process; else the wrapper runs them
        drop = own if len(own) < len(gpu_items) else []
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i not in drop]
        gpu_items = [i for i in gpu_items if i not in drop]
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

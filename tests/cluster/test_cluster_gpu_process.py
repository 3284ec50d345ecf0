"""The cluster's GPU tests, in an interpreter of their own.

They apply ``budget="8GB"`` in the test process (the workers inherit the session's
policy), and RMM's memory resource is set once per process: after any other GPU test
the policy is already the default one. tests/conftest.py leaves them out of a run that
holds other GPU tests, and this test runs them in a fresh ``python -m pytest``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.gpu

#: with ``-m gpu``: every test of the first file, the one GPU test of the second
CHILD = ["tests/cluster/test_cluster_gpu.py", "tests/cluster/test_cluster.py"]


def test_the_cluster_gpu_tests_pass_in_their_own_process(pytestconfig):
    env = {**os.environ, "WORKBENCH_TEST_PROCESS": "cluster-gpu"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
                           *CHILD], cwd=pytestconfig.rootpath, env=env, capture_output=True, text=True,
                          timeout=1800)
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-80:])
    assert proc.returncode == 0, f"the cluster GPU tests failed (exit {proc.returncode}):\n{tail}"
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "skipped" not in summary, \
        f"the cluster GPU tests did not all run:\n{tail}"

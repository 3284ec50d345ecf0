"""Two students share one GPU, each under a budget: the one that asks for more than its
share gets a clear error and carries on; the other never notices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from workbench.lab.monitor import students

pytestmark = pytest.mark.gpu

BUDGET = "512MB"

STUDENT = r"""
import json, sys, time
import numpy as np, polars as pl
import workbench as wb
from workbench.memory import device_memory_stats

s = wb.init(backend="gpu")
mon = wb.monitor(live=False)
small = wb.Frame.from_polars(pl.DataFrame({"k": np.arange(2_000_000) % 100, "v": np.ones(2_000_000)}))

def work():
    answer = wb.collect(small.lazy().group_by("k").agg(pl.col("v").sum()), engine="gpu", raise_on_fail=True)
    return float(answer["v"].sum())

out = {"budget": s.policy.budget, "before": work()}
mon.update()  # the usage file for the instructor
if sys.argv[1] == "greedy":
    import cupy
    try:
        cupy.zeros(4 * s.policy.budget, dtype=cupy.uint8)  # four times its share
        out["error"] = None
    except MemoryError as err:
        out["error"] = f"{type(err).__name__}: {err}"
else:
    deadline, out["rounds"] = time.time() + float(sys.argv[2]), 0
    while time.time() < deadline:
        assert work() == 2_000_000.0
        out["rounds"] += 1
out["after"] = work()
out["peak"] = device_memory_stats()["peak_bytes"]
out["class"] = wb.lab.monitor.students().to_dicts()
print("RESULT " + json.dumps(out))
"""


def _start(tmp_path, name, *args):
    pytest.importorskip("cudf")
    env = dict(os.environ, WORKBENCH_GPU_BUDGET=BUDGET, WORKBENCH_STUDENT=name,
               WORKBENCH_WORKSPACE=str(tmp_path), WORKBENCH_DATA=str(tmp_path / "data"))
    return subprocess.Popen([sys.executable, "-c", "import workbench.lab\n" + STUDENT, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def test_one_student_over_its_share_gets_an_error_and_the_other_keeps_working(tmp_path):
    steady = _start(tmp_path, "steady", "steady", "25")
    time.sleep(8)  # the steady student is working when the greedy one overreaches
    greedy = _start(tmp_path, "greedy", "greedy")
    g, s = _result(greedy), _result(steady)

    assert g["budget"] == s["budget"] and 400 * 2**20 < g["budget"] <= 512 * 2**20
    assert g["error"] is not None, "four times the budget was allocated"
    assert "MemoryError" in g["error"] or "OutOfMemory" in g["error"], g["error"]
    assert g["before"] == g["after"] == 2_000_000.0  # the same kernel carries on after the error
    assert s["rounds"] >= 3 and s["before"] == s["after"] == 2_000_000.0
    assert s["peak"] <= s["budget"] and g["peak"] <= g["budget"]

    seen = {row["student"] for row in g["class"]} | {row["student"] for row in s["class"]}
    assert seen == {"steady", "greedy"}, "the class view missed a student"
    rows = [row for row in g["class"] + s["class"]]
    assert all(row["budget"] == g["budget"] for row in rows)
    assert all(row["source"] in ("nvml", "session") and row["gpu_memory"] is not None for row in rows)
    assert students(tmp_path).height == 0  # both kernels have exited

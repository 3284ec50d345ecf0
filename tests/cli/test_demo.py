"""`workbench demo`: the main job runs end to end and its models learn."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from workbench.cli import demo
from workbench.cli import main


def test_demo_runs_on_the_cpu_and_its_models_learn(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    result = demo.run(rows=60_000, backend="cpu")
    assert result["backend"] == "cpu" and result["model_backend"] == "cpu"
    assert result["tip"]["auc"] > 0.8  # tipping is learnable from payment type, fare, hour
    assert result["fare"]["r2"] > 0.9  # fare follows distance and duration
    assert [name for name, _, _ in result["steps"]][0].startswith("load taxi")


def test_demo_command_prints_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    out = CliRunner().invoke(main, ["demo", "--rows", "2e4", "--backend", "cpu"])  # e-notation, as datasets make takes it
    assert out.exit_code == 0, out.output
    for part in ("scikit-learn", "where the data lived", "memory policy", "transfers", "total"):
        assert part in out.output


def test_demo_refuses_bad_rows():
    with pytest.raises(ValueError, match="rows must be positive"):
        demo.run(rows=0)


@pytest.mark.gpu
def test_demo_trains_with_cuml_on_the_gpu(tmp_path):
    env = {**os.environ, "WORKBENCH_DATA": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "workbench", "demo", "--rows", "200000"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "models (cuml" in out.stdout and "on gpu" in out.stdout
    assert "host-to-device pinned" in out.stdout  # the frame's one copy ran at pinned speed

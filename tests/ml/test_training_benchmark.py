"""The training benchmark runs end to end at a small size (the CPU columns here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import workbench as wb

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "training.py"


def _module():
    spec = importlib.util.spec_from_file_location("training_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_writes_its_json(tmp_path):
    out = tmp_path / "training.json"
    result = _module().main(["--rows", "1e4", "--data", "generated", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(result))
    assert not list(tmp_path.glob("*.tmp"))
    assert written["rows"] == 10_000 and written["features"] == 3 and written["date"]
    assert {"numpy", "scikit-learn", "python"} <= set(written["versions"])
    assert set(written["in_memory"]) == {"logistic", "kmeans", "random_forest", "xgboost"}
    for key, row in written["in_memory"].items():
        assert row["cpu"]["seconds"] > 0 and row["cpu"]["metrics"], key
        if not wb.current_session().gpu:
            assert "gpu" not in row
    assert written["in_memory"]["logistic"]["cpu"]["metrics"]["accuracy"] > 0.8


def test_unknown_models_are_refused():
    with pytest.raises(SystemExit):
        _module().main(["--models", "deep_magic", "--rows", "100"])

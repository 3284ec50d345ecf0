"""The lessons in notebooks/ run top to bottom in a real Jupyter kernel and teach what they say.

Each notebook is executed in memory (the file on disk is never written) with a small
data size, in a kernel started from this interpreter, then its outputs are checked:
no cell raised, and the key results the lesson talks about are there.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

# The dev extra brings these; a bare GPU test machine may lack them.
nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat (pip install 'workbench[dev]')")
NotebookClient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient (pip install 'workbench[dev]')").NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("*.ipynb"))
ROWS = 20_000
CELL_TIMEOUT = 120


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _kernel_env(tmp_path: Path, monkeypatch) -> None:
    """Small data in a temporary cache, no GUI, and a python3 kernel run by this interpreter
    (whatever kernels the user has installed), with Jupyter's and IPython's files kept in tmp."""
    monkeypatch.setenv("WORKBENCH_LESSON_ROWS", str(ROWS))
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))


def _execute(path: Path, cwd: Path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def _text(nb) -> str:
    """Everything the notebook printed or displayed as text, in order."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif "data" in out:
                parts.append(out.data.get("text/markdown", out.data.get("text/plain", "")))
    return "\n".join(parts)


def _images(nb) -> int:
    return sum("image/png" in out.get("data", {})
               for cell in nb.cells for out in cell.get("outputs", []))


def _check_one_copy_lesson(nb) -> None:
    text = _text(nb)
    backend = re.search(r"^backend\s+(cpu|gpu) ", text, re.M)
    assert backend, "the session report is missing"
    backend = backend.group(1)
    assert f"workbench.Frame {ROWS:,} rows" in text, "the taxi frame was not loaded at the test size"
    assert "the two engines agree" in text
    assert "<workbench.Frame 48 rows x 5 columns" in text, "the answer kept as a Frame is missing"
    assert re.search(r"busiest hour: \d+h, (card|cash)", text), "the query over the kept answer did not run"

    tip = re.search(r"logistic_regression on (cpu|gpu): accuracy ([\d.]+), auc ([\d.]+)", text)
    fare = re.search(r"linear_regression on (cpu|gpu): r2 ([\d.]+), rmse ([\d.]+)", text)
    assert tip and fare, "the metrics lines of the two models are missing"
    assert tip.group(1) == fare.group(1) == backend, "the models did not train on the session's backend"
    assert float(tip.group(2)) > 0.8 and float(tip.group(3)) > 0.8, tip.group(0)
    assert float(fare.group(2)) > 0.9, fare.group(0)
    per_mile = re.search(r"([+-][\d.]+) × trip_distance", text)
    assert per_mile and 2.2 < float(per_mile.group(1)) < 2.8, "the fare model missed the $2.50 a mile"

    assert _images(nb) >= 1, "the figure was not drawn (no image/png output)"
    assert re.search(r"host memory: this process, of available +[\d.]+ [kMG]B of", text), \
        "the memory monitor's snapshot is missing"
    assert ("GPU memory (session's resource)" in text) == (backend == "gpu")
    if backend == "cpu":
        assert "no CPU<->GPU copies" in text
    else:
        assert "host-to-device" in text


def _check_how_fast_lesson(nb) -> None:
    text = _text(nb)
    engines = re.search(r"^20,000 rows; engines on this machine: (.+)$", text, re.M)
    assert engines and {"polars", "duckdb", "pandas"} <= set(engines.group(1).split(", ")), text[:300]
    counted = re.search(r"(\d+) of (\d+) answers checked ok", text)
    assert counted and counted.group(1) == counted.group(2) and int(counted.group(2)) >= 30, counted
    assert "speed-up vs polars CPU" in text, "the results table is missing"
    assert "top_k" in text and "SELECT id6" in text, "question 8 was not shown in polars and SQL"
    assert _images(nb) >= 1, "the plot was not drawn"


def _check_larger_lesson(nb) -> None:
    text = _text(nb)
    groups = {int(g.replace(",", "")) for g in re.findall(r" s  ([\d,]+) groups", text)}
    assert groups == {ROWS // 100}, f"the three ways did not all answer (groups: {groups})"
    for line in ("same answer as polars in memory", "the CPU streaming engine agrees",
                 "2 workers at tcp://", "dask agrees"):
        assert line in text, f"missing: {line}"
    assert re.search(r"host memory: this process, of available", text), "no memory table"
    if "budget: none (CPU)" not in text:  # on a GPU the budget is 96 MB
        assert "budget: 96MB" in text
    assert _images(nb) >= 1, "the memory plot was not drawn"


# Key results per lesson, beyond "every cell ran".
CHECKS = {"01-one-copy-cpu-and-gpu.ipynb": _check_one_copy_lesson,
          "02-how-fast-is-this-machine.ipynb": _check_how_fast_lesson,
          "03-larger-than-the-gpu.ipynb": _check_larger_lesson}


def test_there_are_lessons():
    assert LESSONS, f"no notebooks in {NOTEBOOKS}"
    missing = sorted(set(CHECKS) - {p.name for p in LESSONS})
    assert not missing, f"checks for notebooks that are gone: {missing}"


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: clear the outputs before committing (cells {dirty})"


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_top_to_bottom(path, tmp_path, monkeypatch):
    _kernel_env(tmp_path, monkeypatch)
    before = _digest(path)
    nb = _execute(path, tmp_path)  # raises CellExecutionError on the first failing cell
    assert _digest(path) == before, f"executing {path.name} changed the file on disk"

    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert not errors, errors
    assert all(cell.execution_count is not None for cell in code), "some cells did not run"
    check = CHECKS.get(path.name)
    if check is not None:
        check(nb)

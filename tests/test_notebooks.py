"""The lessons in notebooks/ run top to bottom in a real Jupyter kernel and teach what they say.

Each notebook is executed in memory (the file on disk is never written) with a small
data size, in a kernel started from this interpreter, then its outputs are checked:
no cell raised, and the key results the lesson talks about are there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import pytest

# The dev extra brings these; a bare GPU test machine may lack them.
nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat (pip install 'gpu-workbench[dev]')")
NotebookClient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient (pip install 'gpu-workbench[dev]')").NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("*.ipynb"))
ROWS = 20_000
CELL_TIMEOUT = 120
#: run at the lesson's own size where a GPU is used: at 20,000 rows its data fit any
#: budget, and a lesson about training beyond the budget must train beyond it there
#: (WORKBENCH_LESSONS_FULL_SIZE=1 runs every lesson at its own size on a GPU)
FULL_SIZE_ON_A_GPU = ("05-",)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _own_rows(path: Path) -> int:
    """The number of rows a lesson uses by default, read from its code."""
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    found = re.search(r'WORKBENCH_LESSON_ROWS", "?([\d_]+)', code)
    assert found, f"{path.name} does not read its size from WORKBENCH_LESSON_ROWS"
    return int(found.group(1).replace("_", ""))


def _kernel_env(tmp_path: Path, monkeypatch, lesson: str = "") -> int:
    """Small data in a temporary cache, no GUI, and a python3 kernel run by this interpreter
    (whatever kernels the user has installed), with Jupyter's and IPython's files kept in tmp.
    Returns the number of rows the lesson will run at."""
    from conftest import gpu_unavailable_reason

    full = lesson.startswith(FULL_SIZE_ON_A_GPU) or os.environ.get("WORKBENCH_LESSONS_FULL_SIZE") == "1"
    rows = ROWS
    if full and gpu_unavailable_reason() is None:
        monkeypatch.delenv("WORKBENCH_LESSON_ROWS", raising=False)
        rows = _own_rows(NOTEBOOKS / lesson)
    else:
        monkeypatch.setenv("WORKBENCH_LESSON_ROWS", str(ROWS))
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.setenv("WORKBENCH_STUDENT", "ci")
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return rows


# Appended to every lesson run: each exercise answered in the lesson is checked again with a
# wrong answer made from the right one, in the same kernel and context; each must fail with a hint.
WRONG_ANSWERS = r"""
import copy, json
import numpy as np, polars as pl
from workbench.lab import check
from workbench.lab.exercises import LAST

def _wrong(a):
    if isinstance(a, (int, float, np.integer, np.floating)) and not isinstance(a, bool):
        return float(a) * 1.5 + 1
    if isinstance(a, str):
        return a + "-not-this"
    if isinstance(a, dict):
        key = next(iter(a))
        return {**a, key: _wrong(a[key])}
    if isinstance(a, (list, tuple, set)):
        return list(a) + ["not_a_name"]
    if isinstance(a, np.ndarray):
        return a * 1.5 + 1
    if isinstance(a, pl.DataFrame):
        floats = [c for c, t in a.schema.items() if t.is_float()]
        return a.with_columns(pl.col(floats[-1]) * 1.5 + 1) if floats else a.head(a.height - 1)
    if hasattr(a, "features") and hasattr(a, "metrics"):  # a fitted model: give it a leaking feature
        wrong = copy.copy(a)
        object.__setattr__(wrong, "features", list(a.features) + ["tip_amount"])
        return wrong
    if callable(a):
        return lambda *args: 0.123
    raise TypeError(f"no wrong answer for a {type(a).__name__}")

verdicts = {}
for ex, (answer, context) in sorted(LAST.items()):
    result = check(ex, _wrong(answer), **context)
    verdicts[ex] = [result.passed, result.message]
print("WRONG-ANSWERS " + json.dumps(verdicts))
"""


def _execute(path: Path, cwd: Path, *, wrong_answers: bool = False, strip: bool = False):
    nb = nbformat.read(path, as_version=4)
    if strip:
        from workbench.lab import strip_solutions

        nb = nbformat.from_dict(strip_solutions(nb))
    if wrong_answers:
        nb.cells.append(nbformat.v4.new_code_cell(WRONG_ANSWERS))
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


def _shown(nb) -> str:
    """Everything a student sees, HTML views included."""
    return "\n".join(str(out.get("text", "")) + "".join(str(v) for v in out.get("data", {}).values())
                     for cell in nb.cells for out in cell.get("outputs", []))


def _widgets(nb) -> int:
    return sum("application/vnd.jupyter.widget-view+json" in out.get("data", {})
               for cell in nb.cells for out in cell.get("outputs", []))


def _images(nb) -> int:
    return sum("image/png" in out.get("data", {})
               for cell in nb.cells for out in cell.get("outputs", []))


def _check_one_copy_lesson(nb, rows: int) -> None:
    text = _text(nb)
    backend = re.search(r"^backend\s+(cpu|gpu) ", text, re.M)
    assert backend, "the session report is missing"
    backend = backend.group(1)
    assert f"workbench.Frame {rows:,} rows" in text, "the taxi frame was not loaded at the lesson's size"
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


def _check_how_fast_lesson(nb, rows: int) -> None:
    text = _text(nb)
    engines = re.search(rf"^{rows:,} rows; engines on this machine: (.+)$", text, re.M)
    assert engines and {"polars", "duckdb", "pandas"} <= set(engines.group(1).split(", ")), text[:300]
    counted = re.search(r"(\d+) of (\d+) answers checked ok", text)
    assert counted and counted.group(1) == counted.group(2) and int(counted.group(2)) >= 30, counted
    assert "speed-up vs polars CPU" in text, "the results table is missing"
    assert "top_k" in text and "SELECT id6" in text, "question 8 was not shown in polars and SQL"
    assert _images(nb) >= 1, "the plot was not drawn"


def _check_larger_lesson(nb, rows: int) -> None:
    text = _text(nb)
    groups = {int(g.replace(",", "")) for g in re.findall(r" s  ([\d,]+) groups", text)}
    assert groups == {rows // 100}, f"the three ways did not all answer (groups: {groups})"
    for line in ("same answer as polars in memory", "the CPU streaming engine agrees",
                 "input: parquet scan of", "the files give the same answer",
                 "2 workers at tcp://", "dask agrees"):
        assert line in text, f"missing: {line}"
    assert re.search(r"host memory: this process, of available", text), "no memory table"
    if "budget: none (CPU)" not in text:  # on a GPU the budget is 96 MB
        assert "budget: 96MB" in text
    assert _images(nb) >= 1, "the memory plot was not drawn"
    snapshots = re.search(r"^(\d+) snapshots$", text, re.M)
    assert snapshots and int(snapshots.group(1)) >= 5, "the monitor did not sample during the work"


def _check_training_lesson(nb, rows: int) -> None:
    text = _text(nb)
    fits = re.findall(r"^(xgboost_classifier|LogisticRegression) on (cpu|gpu): accuracy ([\d.]+), auc ([\d.]+)",
                      text, re.M)
    assert len(fits) >= 2 and all(float(auc) > 0.8 for *_, auc in fits), fits
    mine = re.search(r"accuracy from the predictions: ([\d.]+); reported: ([\d.]+)", text)
    assert mine and mine.group(1) == mine.group(2), "predict() disagrees with the reported accuracy"
    assert _images(nb) >= 1


def _check_beyond_lesson(nb, rows: int) -> None:
    text = _text(nb)
    # Out of core the model says so: "linear_regression on gpu, out of core: r2 ...".
    assert re.search(r"linear_regression on (cpu|gpu)(, out of core)?: r2 0\.9\d+", text), \
        "the fare model is missing"
    assert re.search(r"out of core: (True|False)", text)
    assert "gpu" not in re.findall(r"on (cpu|gpu)(?:, out of core)?:", text) or "out of core: True" in text
    by_hand = re.search(r"by hand: +\[([^\]]+)\]", text).group(1).split()
    fitted = re.search(r"wb\.ml\.fit: +\[([^\]]+)\]", text).group(1).split()
    assert all(abs(float(a) - float(b)) < 0.02 for a, b in zip(by_hand, fitted)), (by_hand, fitted)
    assert re.search(r"\d+ chunks of up to [\d,]+ rows", text)
    assert _images(nb) >= 1


def _check_unified_lesson(nb, rows: int) -> None:
    text = _text(nb)
    for platform in ("integrated-coherent", "coherent", "discrete"):
        assert platform in text
    assert re.search(r"gb10 .*integrated-coherent .*system", text), "GB10's policy row is missing"
    assert "student kernels under" in text, "the class view is missing"


def _check_dask_lesson(nb, rows: int) -> None:
    text = _text(nb)
    assert re.search(r"2 workers at tcp://", text) and "dask agrees" in text
    assert _images(nb) >= 1


def _check_capstone(nb, rows: int) -> None:
    text = _text(nb)
    assert re.search(r"linear_regression on (cpu|gpu): r2 0\.9\d+", text)
    assert _images(nb) >= 2, "the day's plot and the memory plot"


# Key results per lesson, beyond "every cell ran".
CHECKS = {"01-one-copy-cpu-and-gpu.ipynb": _check_one_copy_lesson,
          "02-how-fast-is-this-machine.ipynb": _check_how_fast_lesson,
          "03-larger-than-the-gpu.ipynb": _check_larger_lesson,
          "04-preprocess-on-the-cpu-train-on-the-gpu.ipynb": _check_training_lesson,
          "05-training-larger-than-the-gpu.ipynb": _check_beyond_lesson,
          "06-unified-memory.ipynb": _check_unified_lesson,
          "07-scaling-out-with-dask.ipynb": _check_dask_lesson,
          "08-capstone.ipynb": _check_capstone}


def _check_exercises(nb, path: Path) -> None:
    """Every exercise of the lesson: its solution passes its check, and a wrong answer fails
    with a hint."""
    from workbench.lab.exercises import _all

    lesson = f"lesson-{int(path.name[:2])}/"
    mine = sorted(e for e in _all() if e.startswith(lesson))
    assert 2 <= len(mine) <= 3, f"{path.name} has {len(mine)} exercises"
    text = _text(nb)
    for ex in mine:
        assert f"✓ {ex}: right" in text, f"the solution of {ex} did not pass its check"
    verdicts = json.loads(re.search(r"^WRONG-ANSWERS (.+)$", text, re.M).group(1))
    assert sorted(verdicts) == mine
    for ex, (passed, message) in verdicts.items():
        assert not passed and message.startswith("Hint: "), (ex, message)


def test_there_are_lessons():
    assert len(LESSONS) >= 8, f"{len(LESSONS)} lessons in {NOTEBOOKS}"
    assert set(CHECKS) == {p.name for p in LESSONS}, "every lesson needs its key results in CHECKS"
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
    rows = _kernel_env(tmp_path, monkeypatch, path.name)
    before = _digest(path)
    nb = _execute(path, tmp_path, wrong_answers=True)  # raises CellExecutionError on the first failing cell
    assert _digest(path) == before, f"executing {path.name} changed the file on disk"

    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert not errors, errors
    assert all(cell.execution_count is not None for cell in code), "some cells did not run"
    # what a student sees: no raw object reprs, and a progress bar where data is built
    assert not re.search(r"<[\w.]+ object at 0x[0-9a-f]+>", _shown(nb)), "a raw object repr is shown"
    if path.name.startswith("01-"):
        assert _widgets(nb) >= 1, "building the taxi data showed no progress widget"
    check = CHECKS.get(path.name)
    if check is not None:
        check(nb, rows)
    _check_exercises(nb, path)


def test_the_students_copy_runs_and_says_not_answered_yet(tmp_path, monkeypatch):
    """What the lab gives a student: solutions stripped, the lesson still runs top to bottom."""
    _kernel_env(tmp_path, monkeypatch)
    path = NOTEBOOKS / "06-unified-memory.ipynb"
    nb = _execute(path, tmp_path, strip=True)
    text = _text(nb)
    assert text.count("not answered yet") == 3, text[-2000:]
    assert "✓" not in text

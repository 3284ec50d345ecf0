"""Exercise checks: right and wrong answers, the student's file, the instructor's table,
and the student's copy of a lesson without its solutions."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.lab import check, progress, strip_solutions
from workbench.lab.exercises import EXERCISES, LAST, WrongAnswer, digest, same_rows, _all
from workbench.lab.progress import render

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("WORKBENCH_STUDENT", "ada")
    return tmp_path


def _file(root, name="ada"):
    return json.loads((root / ".workbench" / "progress" / f"{name}.json").read_text())


def test_right_and_wrong_answers_are_told_apart_and_recorded(lab):
    right = check("lesson-1/ex-2", {"discrete": ["fare_amount"], "dgx-spark": []})
    assert right and right.passed and repr(right).startswith("✓ lesson-1/ex-2: right")
    wrong = check("lesson-1/ex-2", {"discrete": ["fare_amount", "hour"], "dgx-spark": []})
    assert not wrong and "Hint:" in repr(wrong) and "fare_amount" not in wrong.message
    shape = check("lesson-1/ex-2", ["fare_amount"])
    assert "a dict with two keys" in shape.message
    entry = _file(lab)["exercises"]["lesson-1/ex-2"]
    assert entry["attempts"] == 3 and entry["passed"] is True and entry["first_passed"]
    assert not list((lab / ".workbench" / "progress").glob("*.partial"))
    assert "<div" in right._repr_html_()


def test_not_answered_is_not_an_attempt(lab):
    result = check("lesson-6/ex-2", None)
    assert not result and "not answered yet" in repr(result)
    assert not (lab / ".workbench" / "progress" / "ada.json").exists()


def test_names_digest_ignores_order_and_case():
    assert digest(["b", "A"]) == digest({"a", "B "}) and digest([1, 2]) != digest([2, 1])
    assert digest({"x": 1}) == digest({"X": 1.0})


def test_bad_calls_say_what_to_do(lab):
    with pytest.raises(ValueError, match="no exercise 'lesson-1/ex-9'.*lesson-1/ex-1"):
        check("lesson-1/ex-9", 1)
    with pytest.raises(TypeError, match=r"needs data=\.\.\."):
        check("lesson-3/ex-2", pl.DataFrame({"a": [1]}))
    with pytest.raises(ValueError, match="WORKBENCH_STUDENT='../x' cannot name a file"):
        import os

        os.environ["WORKBENCH_STUDENT"] = "../x"
        check("lesson-6/ex-2", {"gb10": 0, "h100": 1})


def test_a_function_answer_is_checked_on_test_groups(lab):
    def r2(v1, v2):
        n = len(v1)
        sx, sy, sxx, syy, sxy = v1.sum(), v2.sum(), (v1 * v1).sum(), (v2 * v2).sum(), (v1 * v2).sum()
        return (n * sxy - sx * sy) ** 2 / ((n * sxx - sx**2) * (n * syy - sy**2))

    assert check("lesson-2/ex-2", r2)
    assert "too" in check("lesson-2/ex-2", lambda a, b: float(np.corrcoef(a, b)[0, 1])).message
    assert "raised ZeroDivisionError" in check("lesson-2/ex-2", lambda a, b: 1 / 0).message


def test_frame_answers_are_compared_in_any_order_within_a_tolerance(lab):
    rng = np.random.default_rng(0)
    data = wb.Frame.from_polars(pl.DataFrame({
        "id4": rng.integers(1, 20, 5000), "id5": rng.integers(1, 5, 5000), "v3": rng.uniform(0, 100, 5000)}))
    answer = (data.lazy().group_by("id4", "id5").agg(pl.col("v3").median()).collect()
              .sample(fraction=1.0, shuffle=True, seed=1))
    assert check("lesson-3/ex-2", answer, data=data)
    nudged = answer.with_columns(pl.col("v3") * (1 + 1e-12))
    assert check("lesson-3/ex-2", nudged, data=data)
    mean = data.lazy().group_by("id4", "id5").agg(pl.col("v3").mean()).collect()
    assert "values of column 'v3' differ" in check("lesson-3/ex-2", mean, data=data).message
    assert "rows" in check("lesson-3/ex-2", answer.head(3), data=data).message
    assert "no column 'v3'" in check("lesson-3/ex-2", answer.drop("v3"), data=data).message
    assert LAST["lesson-3/ex-2"][1]["data"] is data


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-1e6, 1e6, allow_nan=False)), min_size=1,
                max_size=30, unique_by=lambda t: t[0]), st.randoms())
def test_same_rows_holds_for_any_row_order_and_catches_a_changed_value(rows, rnd):
    reference = pl.DataFrame(rows, schema={"k": pl.Int64, "v": pl.Float64}, orient="row")
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    same_rows(pl.DataFrame(shuffled, schema=reference.schema, orient="row"), reference)
    changed = reference.with_columns(pl.when(pl.col("k") == rows[0][0]).then(pl.col("v") + 1 + abs(pl.col("v")))
                                     .otherwise(pl.col("v")))
    with pytest.raises(WrongAnswer):
        same_rows(changed, reference)


def _attempt(root: str, name: str, n: int) -> None:
    import os

    os.environ.update(WORKBENCH_WORKSPACE=root, WORKBENCH_STUDENT=name)
    for _ in range(n):
        check("lesson-6/ex-2", {"gb10": 0, "h100": 4_000_000})


def test_two_kernels_of_one_student_lose_no_attempt(lab):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_attempt, args=(str(lab), "bo", 15)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert _file(lab, "bo")["exercises"]["lesson-6/ex-2"]["attempts"] == 30


def test_the_instructor_sees_students_by_exercises(lab, monkeypatch):
    check("lesson-6/ex-2", {"gb10": 0, "h100": 4_000_000})
    check("lesson-6/ex-1", {"gb10": "plain", "gh200": "unified", "h100": "pinned"})
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(lab / "seat2"))
    monkeypatch.setenv("WORKBENCH_STUDENT", "cy")
    check("lesson-6/ex-1", {"gb10": "unified", "gh200": "unified", "h100": "pinned"})
    table = progress(lab)
    assert table["student"].to_list() == ["ada", "cy"]
    assert set(_all()) <= set(table.columns)
    ada = table.row(0, named=True)
    assert (ada["lesson-6/ex-2"], ada["lesson-6/ex-1"], ada["lesson-1/ex-1"]) == (True, False, None)
    assert ada["done"] == 1 and ada["attempts"] == 2
    assert table.row(1, named=True)["lesson-6/ex-1"] is True
    only6 = progress(lab, lesson=6)
    assert [c for c in only6.columns if "/" in c] == ["lesson-6/ex-1", "lesson-6/ex-2", "lesson-6/ex-3"]
    text = render(only6)
    assert text.splitlines()[1].startswith("ada") and "✓" in text and "·" in text
    assert "<table>" in render(only6, "html")
    with pytest.raises(ValueError, match="format must be one of"):
        render(only6, "pdf")
    with pytest.raises(FileNotFoundError, match="no workspace folder"):
        progress(lab / "nowhere")
    (lab / ".workbench" / "progress" / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is damaged"):
        progress(lab)


def test_every_lesson_exercise_has_a_solution_and_a_check_cell():
    found = set()
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        for i, cell in enumerate(cells):
            source = "".join(cell["source"])
            called = re.match(r'wb\.lab\.check\("([^"]+)"', source)
            if cell["cell_type"] == "code" and called:
                ex = called.group(1)
                found.add(ex)
                assert "solution" in cells[i - 1].get("metadata", {}).get("tags", []), \
                    f"{path.name}: the cell before the check of {ex} is not its tagged solution"
    assert found == set(_all()), set(_all()) ^ found
    per_lesson = {}
    for ex in found:
        per_lesson.setdefault(ex.split("/")[0], []).append(ex)
    assert len(per_lesson) >= 8 and all(2 <= len(v) <= 3 for v in per_lesson.values()), per_lesson


def test_the_students_copy_has_stubs_not_solutions(tmp_path):
    lesson = NOTEBOOKS / "01-one-copy-cpu-and-gpu.ipynb"
    before = lesson.read_bytes()
    copy = strip_solutions(lesson, tmp_path / "01.ipynb")
    assert lesson.read_bytes() == before
    assert json.loads((tmp_path / "01.ipynb").read_text()) == copy
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in copy["cells"]]
    assert not any("solution" in c["metadata"].get("tags", []) for c in copy["cells"])
    assert not any('"dgx-spark": []' in s for s in sources), "a solution reached the student's copy"
    stubs = [s for c, s in zip(copy["cells"], sources) if "exercise" in c["metadata"].get("tags", [])]
    assert stubs and all(s.splitlines()[-1].endswith("= None") for s in stubs)
    namespace = {}
    exec(stubs[1], namespace)  # the stub runs, and its check says "not answered yet"
    assert "not answered yet" in repr(check("lesson-1/ex-2", namespace["answer_2"]))
    with pytest.raises(TypeError, match="path to an .ipynb or a notebook dict"):
        strip_solutions(42)


def test_the_registry_is_filled_on_first_use():
    assert "lesson-8/ex-3" in _all() and EXERCISES is _all()


def test_the_instructor_prints_the_class_from_the_command_line(lab):
    import subprocess
    import sys

    check("lesson-6/ex-2", {"gb10": 0, "h100": 4_000_000})
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    done = subprocess.run([sys.executable, "-m", "workbench", "lab", str(lab), "--progress"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    ada = next(line for line in done.stdout.splitlines() if line.startswith("ada"))
    assert "✓" in ada
    missing = subprocess.run([sys.executable, "-m", "workbench", "lab", str(lab / "nowhere"),
                              "--progress"], capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("workbench: error:") and "nowhere" in missing.stderr

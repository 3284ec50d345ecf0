"""Exercises checked as the student works: ``wb.lab.check("lesson-1/ex-2", answer)``.

A check says *right* or *not yet, with a hint*, and never shows the solution: the
package stores checks, not answers. An answer that follows from the lesson's data (a
group-by, a model, a coefficient) is checked against properties of that data passed
as context (``check("lesson-3/ex-2", answer, data=x)``), recomputed with polars on the
CPU, so the check is the same on a laptop and on a GPU; numbers compare within
tolerances, frames by their rows in any order. An answer that does not depend on the
data (which columns a query copies, which memory a platform uses) is compared through
a SHA-256 digest of its canonical form.

Each check is recorded for the instructor: one JSON file per student,
``<workspace>/.workbench/progress/<student>.json`` (``WORKBENCH_STUDENT``, default the
login name; ``WORKBENCH_WORKSPACE``, default the kernel's folder, which JupyterLab sets
to the notebook's), written under a file lock to a temporary name and renamed.
:func:`workbench.lab.progress` gathers them into a table.

Why not nbgrader or otter-grader: both grade *submitted* notebooks in a separate step
(nbgrader with a course database, an exchange folder and a formgrader; otter with an
autograder bundle run after submission). A lab wants the answer at the cell, on any
machine, with tolerances that hold across CPU and GPU engines, and an instructor view
that is a table of files in the workspace; and otter's inline ``grader.check`` runs
tests shipped in the student's copy, where the expected values can be read. Both remain
usable for a graded final version: the lessons' solution cells are tagged ``solution``
(:func:`strip_solutions` removes them), a convention either tool can adopt.

Solutions live in the lessons, in code cells tagged ``solution``; :func:`strip_solutions`
replaces each with a stub (``answer_1 = None  # your answer here``) in the student's
copy, so the copy still runs top to bottom and its checks say "not answered yet".
"""

from __future__ import annotations

import ast
import datetime as _dt
import getpass
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from workbench.config import STUDENT, WORKSPACE

SOLUTION_TAG = "solution"

# id -> Exercise, filled by workbench.lab.checks
EXERCISES: dict[str, Exercise] = {}
# id -> (answer, context) of the latest check in this process, so a test can try wrong answers
LAST: dict[str, tuple[object, dict]] = {}


class WrongAnswer(Exception):
    """Raised by a checker with the hint to show (never the solution)."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id (``lesson-N/ex-M``), a one-line task, the check."""

    id: str
    task: str
    checker: Callable[..., None]  # (answer, **context) -> None, or raises WrongAnswer(hint)
    needs: tuple[str, ...] = ()  # context the check needs, e.g. ("data",)


def exercise(id: str, task: str, needs: tuple[str, ...] = ()):
    """Register ``checker`` as the check of exercise ``id``."""
    if not re.fullmatch(r"lesson-\d+/ex-\d+", id):
        raise ValueError(f"exercise ids look like 'lesson-1/ex-2'; got {id!r}")

    def register(checker):
        EXERCISES[id] = Exercise(id, task, checker, needs)
        return checker
    return register


@dataclass(frozen=True)
class Result:
    """What a check says: shown as one line (text) or a coloured box (HTML)."""

    exercise: str
    passed: bool
    message: str
    answered: bool = True

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        mark = "✓" if self.passed else "✗"
        verdict = "right" if self.passed else ("not answered yet" if not self.answered else "not yet")
        return f"{mark} {self.exercise}: {verdict}. {self.message}".rstrip()

    def _repr_html_(self) -> str:
        from html import escape

        color = "#2e7d32" if self.passed else "#c62828"
        return (f'<div class="workbench-check" style="border-left:4px solid {color};padding:4px 8px">'
                f"{escape(repr(self))}</div>")


def _all() -> dict[str, Exercise]:
    from workbench.lab import checks  # noqa: F401  (registers the lessons' checks)

    return EXERCISES


def check(exercise_id: str, answer, **context) -> Result:
    """Check ``answer`` to exercise ``exercise_id``; record the attempt; return the verdict.

    ``context``: what the check compares against (the lesson's frame as ``data=``, a
    baseline model...), as the exercise's text says. ``answer=None`` means not answered
    yet (nothing is recorded).

    >>> import workbench.lab as lab
    >>> lab.check("lesson-6/ex-2", None)  # doctest: +ELLIPSIS
    ✗ lesson-6/ex-2: not answered yet. Replace None with your answer: ...
    """
    exercises = _all()
    if exercise_id not in exercises:
        lesson = exercise_id.split("/")[0]
        near = sorted(e for e in exercises if e.startswith(lesson + "/")) or sorted(exercises)
        raise ValueError(f"no exercise {exercise_id!r}; the exercises are: {', '.join(near)}")
    ex = exercises[exercise_id]
    if answer is None or answer is Ellipsis:
        return Result(exercise_id, False, f"Replace None with your answer: {ex.task}", answered=False)
    missing = [name for name in ex.needs if name not in context]
    if missing:
        raise TypeError(f"check({exercise_id!r}, answer, ...) needs "
                        + ", ".join(f"{m}=..." for m in missing) + f" (the exercise: {ex.task})")
    LAST[exercise_id] = (answer, dict(context))
    try:
        ex.checker(answer, **context)
        result = Result(exercise_id, True, "Well done.")
    except WrongAnswer as wrong:
        result = Result(exercise_id, False, f"Hint: {wrong}")
    _record(result)
    return result


# --- comparing answers -------------------------------------------------------------

def digest(value) -> str:
    """SHA-256 of a canonical form: sets and lists of names sorted, strings stripped and
    lower-cased, dicts by key, numbers as given."""
    return hashlib.sha256(json.dumps(_canonical(value), sort_keys=True).encode()).hexdigest()


def _canonical(value):
    if isinstance(value, str):
        return value.strip().lower()
    if isinstance(value, dict):
        return {str(_canonical(k)): _canonical(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset, list, tuple)):
        items = [_canonical(v) for v in value]
        return sorted(items, key=json.dumps) if all(isinstance(v, str) for v in items) else items
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    raise WrongAnswer(f"expected names, numbers, lists or dicts of them; got {type(value).__name__}")


def same_digest(answer, expected: str, hint: str) -> None:
    if digest(answer) != expected:
        raise WrongAnswer(hint)


def number(answer, what: str) -> float:
    """``answer`` as a finite float, or a hint saying what was expected."""
    try:
        value = float(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"{what} should be a number; got {type(answer).__name__}") from None
    if not math.isfinite(value):
        raise WrongAnswer(f"{what} should be a finite number; got {value}")
    return value


def close(answer, reference: float, what: str, *, rel: float = 1e-6, abs: float = 0.0,
          hint: str = "") -> None:
    value = number(answer, what)
    if not math.isclose(value, reference, rel_tol=rel, abs_tol=abs):
        direction = "too high" if value > reference else "too low"
        raise WrongAnswer(f"{what} is {direction}. {hint}".strip())


def polars_frame(answer, what: str = "the answer"):
    """A polars DataFrame from a polars DataFrame or LazyFrame, a wb.Frame or pandas."""
    import polars as pl

    if isinstance(answer, pl.LazyFrame):
        return answer.collect()
    if isinstance(answer, pl.DataFrame):
        return answer
    for method in ("to_polars",):
        if hasattr(answer, method):
            return getattr(answer, method)()
    if type(answer).__module__.startswith("pandas"):
        return pl.from_pandas(answer)
    raise WrongAnswer(f"{what} should be a table (polars DataFrame or wb.Frame); "
                      f"got {type(answer).__name__}")


def same_rows(answer, reference, *, rel: float = 1e-6, ordered: bool = False,
              what: str = "the answer") -> None:
    """Compare two tables: the same columns, the same rows (in any order unless
    ``ordered``), numbers within ``rel``; the hint says which part differs."""
    import polars as pl
    from polars.testing import assert_frame_equal

    got, want = polars_frame(answer, what), polars_frame(reference)
    missing = [c for c in want.columns if c not in got.columns]
    if missing:
        raise WrongAnswer(f"{what} has no column {', '.join(map(repr, missing))} "
                          f"(it has {', '.join(map(repr, got.columns))})")
    got = got.select(want.columns)
    if got.height != want.height:
        raise WrongAnswer(f"{what} has {got.height:,} rows; a right answer has "
                          f"{'more' if got.height < want.height else 'fewer'}")
    if not ordered:
        keys = [c for c, t in want.schema.items() if not t.is_float()]
        got, want = got.sort(keys or want.columns), want.sort(keys or want.columns)
    for column in want.columns:
        try:
            assert_frame_equal(got.select(column), want.select(column), check_exact=False,
                               rel_tol=rel, abs_tol=rel, check_dtypes=False)
        except AssertionError:
            kind = "order" if ordered and set(got[column]) == set(want[column]) else "values"
            raise WrongAnswer(f"the {kind} of column {column!r} differ from a right answer") from None
        except (TypeError, pl.exceptions.PolarsError):
            raise WrongAnswer(f"column {column!r} has the wrong type ({got[column].dtype})") from None


# --- the student's file of results -------------------------------------------------

def student() -> str:
    """The student's name: ``WORKBENCH_STUDENT``, else the login name."""
    name = os.environ.get(STUDENT) or getpass.getuser()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}", name):
        raise ValueError(f"{STUDENT}={name!r} cannot name a file: use letters, digits, '.', '_', "
                         "'-' or '@' (at most 64)")
    return name


def workspace() -> Path:
    """The lab workspace: ``WORKBENCH_WORKSPACE``, else the current folder."""
    return Path(os.environ.get(WORKSPACE) or os.getcwd()).expanduser()


def progress_file(root: Path | None = None, name: str | None = None) -> Path:
    return (root or workspace()) / ".workbench" / "progress" / f"{name or student()}.json"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _record(result: Result) -> None:
    from filelock import FileLock

    path = progress_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=10):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        data.setdefault("student", path.stem)
        entry = data.setdefault("exercises", {}).setdefault(
            result.exercise, {"passed": False, "attempts": 0, "first_passed": None})
        entry["attempts"] += 1
        entry["last"] = _now()
        if result.passed and not entry["passed"]:
            entry["passed"], entry["first_passed"] = True, entry["last"]
        data["updated"] = entry["last"]
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(data, indent=1, sort_keys=True))
        partial.replace(path)


# --- the student's copy of a lesson -----------------------------------------------

def _stub(source: str) -> str:
    """What replaces a solution cell: the answer names it sets, each None."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    names = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id.startswith("answer")]
    lines = ["# Your answer here: replace None (the check in the next cell says right or not yet)."]
    return "\n".join(lines + [f"{n} = None" for n in dict.fromkeys(names)])


def strip_solutions(lesson, target: str | os.PathLike | None = None) -> dict:
    """The student's copy of a lesson: solution cells (tag ``solution``) become stubs,
    solution notes (markdown cells with the tag) are dropped, outputs cleared.

    ``lesson``: a path to an ``.ipynb`` or a notebook as a dict (never modified).
    With ``target``, the copy is written there (a temporary name, then renamed).
    Returns the copy as a dict.
    """
    import copy

    if isinstance(lesson, (str, os.PathLike)):
        nb = json.loads(Path(lesson).read_text(encoding="utf-8"))
    elif isinstance(lesson, dict) and "cells" in lesson:
        nb = copy.deepcopy(lesson)
    else:
        raise TypeError(f"lesson must be a path to an .ipynb or a notebook dict; got {type(lesson).__name__}")
    cells = []
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if SOLUTION_TAG in tags:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            meta = dict(cell["metadata"], tags=[t for t in tags if t != SOLUTION_TAG] + ["exercise"])
            cell = dict(cell, source=_stub(source), metadata=meta)
        if cell["cell_type"] == "code":
            cell = dict(cell, outputs=[], execution_count=None)
        cells.append(cell)
    nb["cells"] = cells
    if target is not None:
        target = Path(target)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        partial.replace(target)
    return nb


from workbench.lab.progress import progress  # noqa: E402  (the instructor's side, re-exported)

"""The instructor's view: who has done which exercise (``workbench.lab.progress``).

Each student's checks are recorded in ``.workbench/progress/<student>.json`` of their
workspace (:mod:`workbench.lab.exercises`). :func:`progress` gathers every such file
under a folder (one workspace, or the folder holding all of them) into a polars table,
one row per student and one column per exercise: ``True`` done, ``False`` tried and
not yet right, null not tried. :func:`render` shows it as text or HTML.
"""

from __future__ import annotations

import json
from pathlib import Path


def _key(exercise_id: str) -> tuple[int, int]:
    lesson, ex = exercise_id.split("/")
    return int(lesson.removeprefix("lesson-")), int(ex.removeprefix("ex-"))


def progress(workspace, *, lesson: int | None = None):
    """Students × exercises under ``workspace`` as a polars DataFrame.

    Columns: ``student``, ``done`` (exercises right), ``attempts``, ``updated`` (the
    student's latest check), then every exercise (``lesson``: only that lesson's).
    A file that cannot be read is reported, not skipped silently.
    """
    import polars as pl

    from workbench.lab.exercises import _all

    root = Path(workspace).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no workspace folder at {root}: pass the folder the lab runs in "
                                "(or the folder holding the students' workspaces)")
    ids = sorted((e for e in _all() if lesson is None or _key(e)[0] == lesson), key=_key)
    if not ids:
        raise ValueError(f"lesson {lesson} has no exercises")
    rows = []
    for path in sorted(root.glob("**/.workbench/progress/*.json")):
        try:
            data = json.loads(path.read_text())
            exercises = data["exercises"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"the progress file {path} is damaged ({err}); move it away "
                             "and the student's next check writes a new one") from None
        row = {"student": data.get("student", path.stem), "updated": data.get("updated"),
               "done": sum(bool(exercises.get(e, {}).get("passed")) for e in ids),
               "attempts": sum(int(exercises.get(e, {}).get("attempts", 0)) for e in ids)}
        row.update({e: (bool(exercises[e]["passed"]) if e in exercises else None) for e in ids})
        rows.append(row)
    schema = {"student": pl.String, "done": pl.Int64, "attempts": pl.Int64, "updated": pl.String}
    schema.update({e: pl.Boolean for e in ids})
    table = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    return table.group_by("student", maintain_order=True).agg(  # one student, several workspaces
        pl.col("done").max(), pl.col("attempts").sum(), pl.col("updated").max(),
        *[pl.col(e).max() for e in ids]).sort("student")


def render(table, format: str = "text") -> str:
    """A progress table as aligned text (✓ done, · tried, blank not tried) or HTML."""
    formats = ("text", "html")
    if format not in formats:
        raise ValueError(f"format must be one of {formats}; got {format!r}")
    ids = [c for c in table.columns if "/" in c]
    marks = {True: "✓", False: "·", None: ""}
    if format == "html":
        from html import escape

        head = "".join(f"<th>{escape(e)}</th>" for e in ["student", "done"] + ids)
        body = "".join(
            "<tr>" + f"<td>{escape(r['student'])}</td><td>{r['done']}/{len(ids)}</td>"
            + "".join(f"<td style='text-align:center'>{marks[r[e]]}</td>" for e in ids) + "</tr>"
            for r in table.iter_rows(named=True))
        return f"<table><tr>{head}</tr>{body}</table>"
    width = max([len("student")] + [len(s) for s in table["student"]])
    short = [e.replace("lesson-", "L").replace("/ex-", ".") for e in ids]
    lines = [f"{'student':<{width}}  done  " + " ".join(f"{s:>5}" for s in short)]
    for r in table.iter_rows(named=True):
        lines.append(f"{r['student']:<{width}}  {r['done']:>2}/{len(ids):<2} "
                     + " ".join(f"{marks[r[e]]:>5}" for e in ids))
    return "\n".join(lines)

"""The IPython extension: ``%load_ext workbench``.

Loading it starts the session (``workbench.init()`` with the ``WORKBENCH_*``
variables) and shows it, and adds the ``%wb`` magic:

* ``%%wb`` at the top of a cell runs the cell, then shows where each step ran (GPU or
  CPU, from the session log) and what moved between host and device memory during it
  (the session's transfer log), as cudf.pandas' profiler does for its cells;
* ``%wb`` on a line shows the session's report.

IPython is imported only here, and only by IPython itself loading the extension.
``workbench.load_ipython_extension`` (what ``%load_ext workbench`` calls) delegates here:
this room sits above the session, whose logs it reads.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from workbench.session import Session, current_session
from workbench.session.transfers import DIRECTIONS, Transfer
from workbench.sizes import format_bytes


def load_ipython_extension(ipython) -> None:
    """Start the session, show it, and register the ``%wb`` / ``%%wb`` magic."""
    ipython.register_magic_function(_magic(ipython), magic_kind="line_cell", magic_name="wb")
    from IPython.display import display

    display(current_session())


def unload_ipython_extension(ipython) -> None:
    """Nothing to undo: the magic goes with the kernel, the session with the process."""


def _magic(ipython):
    def wb(line: str = "", cell: str | None = None):
        """%%wb: run the cell, then show where its steps ran and what moved; %wb: the session."""
        from IPython.display import display

        if cell is None:
            display(_Text(current_session().report()))
            return None
        before = current_session()
        marks = (len(before.log), len(before.transfers))
        outcome = ipython.run_cell(cell, store_history=False)
        after = current_session()
        if after is not before:  # the cell started another session: all of it is this cell's
            marks = (0, 0)
        display(CellReport.of(after, *marks, failed=not outcome.success))
        return None

    return wb


@dataclass
class CellReport:
    """What one ``%%wb`` cell did: its session-log entries (each with where it ran) and copies."""

    backend: str
    steps: list[tuple[str, str]]  # (where, message)
    copies: list[Transfer]
    failed: bool = False

    @classmethod
    def of(cls, session: Session, log_mark: int, transfer_mark: int, failed: bool = False) -> CellReport:
        steps = [(where(message), message) for _, message in session.log[log_mark:]]
        return cls(session.backend, steps, list(session.transfers.since(transfer_mark)), failed)

    def moved(self) -> list[str]:
        """One line per direction: copies and bytes (zero-copy views counted apart)."""
        lines = []
        for direction in DIRECTIONS:
            items = [t for t in self.copies if t.direction == direction]
            copied = [t for t in items if t.kind != "mapped"]
            mapped = [t for t in items if t.kind == "mapped"]
            if copied:
                lines.append(f"{direction}: {len(copied)} copies, "
                             f"{format_bytes(sum(t.nbytes for t in copied), 2)}")
            if mapped:
                lines.append(f"{direction}: {len(mapped)} zero-copy views, "
                             f"{format_bytes(sum(t.nbytes for t in mapped), 2)} read in place")
        return lines or ["nothing moved between host and device"]

    def _lines(self) -> list[str]:
        head = f"workbench: session on the {self.backend.upper()}" + (" (the cell raised)" if self.failed else "")
        steps = [f"  [{w or '-':>3}] {m}" for w, m in self.steps] or [
            "  no step logged (steps on the session's backend log only when they fall back or fit)"]
        return [head, "steps"] + steps + ["moved"] + [f"  {line}" for line in self.moved()]

    def __repr__(self) -> str:
        return "\n".join(self._lines())

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{w or '-'}</td><td style='text-align:left'>{html.escape(m)}</td></tr>"
                       for w, m in self.steps)
        moved = "<br>".join(html.escape(line) for line in self.moved())
        failed = " (the cell raised)" if self.failed else ""
        return (f"<div><b>workbench</b>: session on the {self.backend.upper()}{failed}"
                f"<table><thead><tr><th>where</th><th style='text-align:left'>step</th></tr></thead>"
                f"<tbody>{rows or '<tr><td>-</td><td>no step logged</td></tr>'}</tbody></table>"
                f"<p>moved: {moved}</p></div>")


def where(message: str) -> str:
    """GPU, CPU or '' for a session-log entry, from the words steps log themselves with."""
    text = message.lower()
    if "ran on the cpu" in text or " on cpu" in text or "on the cpu" in text:
        return "CPU"
    if " on gpu" in text or "on the gpu" in text or "gpu workers" in text:
        return "GPU"
    return ""


class _Text:
    """Plain text shown as it is (a str would be shown quoted)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

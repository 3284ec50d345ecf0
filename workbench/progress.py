"""Progress bars for long work: ``tqdm.auto``'s, a widget in a notebook, text on a terminal.

By default a bar shows only where someone watches (a Jupyter kernel, or standard error
on a terminal): a pipe or a log file would fill with carriage returns. Work that is
often short shows its bar only once it has run ``delay`` seconds.
"""

from __future__ import annotations

import sys


def in_notebook() -> bool:
    """A Jupyter kernel: the test ``tqdm.auto`` makes to choose its widget bar."""
    return "ipykernel.zmqshell" in sys.modules


def bar(desc: str, total: int, *, unit: str, show: bool | None = None, delay: float = 0.0):
    """A bar of ``total`` ``unit``\\ s, or None where none should show (``show``: True or
    False to decide; None, where someone watches). Update it with ``.update(n)``, end it
    with ``.close()``."""
    if not ((in_notebook() or sys.stderr.isatty()) if show is None else show):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "rows", file=sys.stderr,
                dynamic_ncols=True, delay=delay)

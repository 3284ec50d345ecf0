"""What every ``workbench`` command shares: option types, early checks and the error line.

A user's mistake (an option, a variable, a place that cannot be written) ends the
command with one line on stderr, ``workbench: error: ...``, naming the thing and the
fix, and a non-zero exit; an exception nobody expected is a bug and keeps its
traceback. Checks run before any work, so a typo never costs a benchmark run.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import click

from workbench.errors import WorkbenchError

PROG = "workbench"


class RowCount(click.ParamType):
    """A number of rows: ``100000``, ``100_000``, ``1e5``; a whole number, at least ``minimum``."""

    name = "rows"

    def __init__(self, minimum: int = 1):
        self.minimum = minimum

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, bool):
            self.fail(f"{value!r} is not a number of rows", param, ctx)
        if isinstance(value, int):
            n = value
        else:
            text = str(value).strip().replace("_", "")
            try:
                n = int(text)
            except ValueError:
                try:
                    f = float(text)
                except ValueError:
                    f = math.nan
                if not math.isfinite(f) or not f.is_integer():
                    self.fail(f"{value!r} is not a whole number of rows; write it as 100000, "
                              "100_000 or 1e5", param, ctx)
                n = int(f)
        if n < self.minimum:
            self.fail(f"{value!r}: give at least {self.minimum:_} row{'' if self.minimum == 1 else 's'}",
                      param, ctx)
        return n


class Seconds(click.ParamType):
    """A time limit: a finite number of seconds above 0."""

    name = "seconds"

    def convert(self, value, param, ctx) -> float:
        try:
            s = float(value)
        except (TypeError, ValueError):
            s = math.nan
        if not (math.isfinite(s) and s > 0):
            self.fail(f"{value!r} is not a time limit; give seconds above 0 (e.g. 600), "
                      "or leave the option out for no limit", param, ctx)
        return s


#: the row-count type of the whole command line
ROWS = RowCount()


def check_environment() -> None:
    """Fail now on a ``WORKBENCH_*`` variable that cannot be used (the doctor reports them)."""
    from workbench import config

    found = config.problems()
    if found:
        raise click.ClickException("; ".join(found))


def check_writable_folder(path: str | Path, option: str) -> Path:
    """A folder the command will write into: an existing folder we can write to, or a path
    whose nearest existing parent is one. Nothing is created here."""
    path = Path(path).expanduser()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        what = "is a file" if probe == path else f"is inside {probe}, which is a file"
        raise click.BadParameter(f"{str(path)!r} {what}; give a folder (it is created when "
                                 "missing)", param_hint=option)
    try:
        # os.access says yes to root on an immutable or read-only folder: try it instead
        with tempfile.TemporaryFile(dir=probe, prefix=".workbench-probe-"):
            pass
    except OSError as err:
        where = "" if probe == path else f" (its parent {probe} exists)"
        raise click.BadParameter(f"cannot write to {str(path)!r}{where}: {err.strerror}; "
                                 "choose a folder you can write to", param_hint=option) from None
    return path


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def fail(message: str, code: int = 1):
    click.echo(f"{PROG}: error: {_one_line(message)}", err=True)
    sys.exit(code)


class Group(click.Group):
    """``click.Group`` whose user errors end in one line instead of click's usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, PROG, complete_var, False, **extra)  # one name in every message
        except click.UsageError as err:
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
            fail(err.format_message() + hint, err.exit_code)
        except click.ClickException as err:
            fail(err.format_message(), err.exit_code)
        except click.Abort:
            fail("interrupted", 130)
        except WorkbenchError as err:  # raised on purpose, with the thing and the fix
            fail(str(err), 1)
        sys.stdout.flush()
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


class SplitCommand(click.Command):
    """A command whose arguments after ``--`` are kept apart (``ctx.meta["passed_on"]``) for
    the program it starts; before ``--`` every option must be its own, so a typo is an error."""

    passes_to = "JupyterLab"

    def parse_args(self, ctx, args):
        args = list(args)
        if "--" in args:
            cut = args.index("--")
            args, ctx.meta["passed_on"] = args[:cut], tuple(args[cut + 1:])
        else:
            ctx.meta["passed_on"] = ()
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as err:
            err.message += f" Options for {self.passes_to} go after '--'."
            raise

    def collect_usage_pieces(self, ctx):
        return super().collect_usage_pieces(ctx) + ["[-- JUPYTERLAB_OPTIONS...]"]


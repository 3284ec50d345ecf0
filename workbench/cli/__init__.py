"""The ``workbench`` command: doctor, demo, bench, datasets, lab (``python -m workbench`` too).

Each command parses its options and calls into the room that does the work; the
demo (:mod:`.demo`) is itself a client of the public API, like a user's script.
"""

from __future__ import annotations

import json
import sys

import click

from workbench import __version__
from workbench.cli.bench import bench
from workbench.cli.datasets import datasets_group
from workbench.cli.options import PROG, Group, RowCount, SplitCommand, check_environment

#: fewer taxi trips than this leave too few of each kind (tipped or not) to train and test on
DEMO_MIN_ROWS = 1_000


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROG, package_name="gpu-workbench")
def main() -> None:
    """A GPU-accelerated data-science workbench (polars + RAPIDS)."""


@main.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor_command(as_json: bool) -> None:
    """Check this machine: hardware, memory policy, versions, and what to fix."""
    from workbench.diagnostics.checks import run

    report = run()
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())
    sys.exit(0 if report.ok else 1)


@main.command("demo")
@click.option("--rows", default=1_000_000, type=RowCount(DEMO_MIN_ROWS), show_default=True,
              help=f"Rows of the demo table (1e6 notation accepted; at least {DEMO_MIN_ROWS:_}).")
@click.option("--backend", type=click.Choice(["auto", "cpu", "gpu"]), default=None,
              help="Where steps run (default: WORKBENCH_BACKEND, else auto).")
def demo_command(rows: int, backend: str | None) -> None:
    """The main job: polars preprocessing, a model on the GPU (or CPU), a report."""
    check_environment()
    from workbench.cli.demo import run

    run(rows=rows, backend=backend)


@main.command("lab", cls=SplitCommand)
@click.argument("workspace", default="~/workbench-lab", required=False)
@click.option("--students", type=click.IntRange(min=1), default=None,
              help="Share the GPUs: N students spread over them, each an equal part of one.")
@click.option("--seat", type=click.IntRange(min=0), default=None,
              help="This student's seat, which picks the GPU (default: the user id).")
@click.option("--budget", default=None, help="GPU memory for this student's kernels: '10GB', '0.25'.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="The port JupyterLab listens on (it must be free).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option("--lessons", default=None,
              help="A folder of lessons to copy (default: the lessons installed with workbench).")
@click.option("--progress", "show_progress", is_flag=True,
              help="Print the class's exercise progress in WORKSPACE (students x exercises) and exit.")
@click.pass_context
def lab_command(ctx, workspace, students, seat, budget, port, no_browser, lessons,
                show_progress) -> None:
    """JupyterLab on WORKSPACE with the lessons and a GPU budget per student.

    Everything is checked before a file is copied; the command then becomes JupyterLab,
    so stopping it (Ctrl-C, SIGTERM) stops the server and its kernels. Options for
    JupyterLab go after `--`:

        workbench lab ~/lab --students 8 -- --ServerApp.ip=0.0.0.0

    The instructor's view of the exercises done so far: `workbench lab ~/lab --progress`.
    """
    check_environment()
    if show_progress:
        from workbench.lab.progress import progress, render

        try:
            click.echo(render(progress(workspace)))
        except (ValueError, OSError) as err:
            raise click.ClickException(str(err)) from None
        return
    from workbench.lab.launcher import prepare, run

    try:
        lab = prepare(workspace, budget=budget, students=students, seat=seat, port=port,
                      open_browser=not no_browser, lessons=lessons, extra=ctx.meta["passed_on"])
    except (ValueError, OSError) as err:  # the workspace, lessons, port or budget
        raise click.ClickException(str(err)) from None
    settings = ", ".join(f"{k}={v}" for k, v in lab.given.items())
    click.echo(f"JupyterLab on {workspace}" + (f" with {settings}" if settings else ""), err=True)
    run(lab)


# Commands whose options live beside the room they drive.
main.add_command(bench)
main.add_command(datasets_group)


if __name__ == "__main__":  # pragma: no cover
    main()

"""The ``workbench`` command: doctor, demo, bench, datasets, lab (``python -m workbench`` too).

Each command parses its options and calls into the room that does the work; the
demo (:mod:`.demo`) is itself a client of the public API, like a user's script.
"""

from __future__ import annotations

import json
import sys

import click

from workbench.cli.bench import bench
from workbench.cli.datasets import datasets_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="workbench")
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
@click.option("--rows", default=1_000_000, show_default=True, help="Rows of the demo table.")
@click.option("--backend", type=click.Choice(["auto", "cpu", "gpu"]), default=None,
              help="Where steps run (default: WORKBENCH_BACKEND, else auto).")
def demo_command(rows: int, backend: str | None) -> None:
    """The main job: polars preprocessing, a model on the GPU (or CPU), a report."""
    from workbench.cli.demo import run

    run(rows=rows, backend=backend)


@main.command("lab", context_settings={"ignore_unknown_options": True})
@click.argument("workspace", default="~/workbench-lab", required=False)
@click.option("--students", type=int, default=None,
              help="Share the GPUs: N students spread over them, each an equal part of one.")
@click.option("--seat", type=int, default=None,
              help="This student's seat, which picks the GPU (default: the user id).")
@click.option("--budget", default=None, help="GPU memory for this student's kernels: '10GB', '0.25'.")
@click.option("--port", type=int, default=None, help="The port JupyterLab listens on.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option("--lessons", default=None, help="A folder of lessons to copy (default: notebooks/).")
@click.argument("jupyter_options", nargs=-1, type=click.UNPROCESSED)
def lab_command(workspace, students, seat, budget, port, no_browser, lessons, jupyter_options) -> None:
    """JupyterLab on WORKSPACE with the lessons and a GPU budget per student.

    Options after the workbench's own go to JupyterLab (e.g. --ServerApp.ip=0.0.0.0).
    """
    from workbench.lab import launch

    try:
        server, given = launch(workspace, budget=budget, students=students, seat=seat, port=port,
                        open_browser=not no_browser, lessons=lessons, extra=tuple(jupyter_options))
    except (ValueError, FileNotFoundError, NotADirectoryError, RuntimeError) as err:
        raise click.UsageError(str(err)) from err
    settings = ", ".join(f"{k}={v}" for k, v in given.items())
    click.echo(f"JupyterLab on {workspace}" + (f" with {settings}" if settings else ""), err=True)
    try:
        sys.exit(server.wait())
    except KeyboardInterrupt:
        server.terminate()
        sys.exit(server.wait())


# Commands whose options live beside the room they drive.
main.add_command(bench)
main.add_command(datasets_group)


if __name__ == "__main__":  # pragma: no cover
    main()

"""The ``workbench`` command: doctor, demo, bench, datasets (``python -m workbench`` too).

Each command parses its options and calls into the room that does the work.
"""

from __future__ import annotations

import json
import sys

import click

from workbench.bench.cli import bench
from workbench.datasets_cli import datasets_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="workbench")
def main() -> None:
    """A GPU-accelerated data-science workbench (polars + RAPIDS)."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(as_json: bool) -> None:
    """Check this machine: hardware, memory policy, versions, and what to fix."""
    from workbench.checkup import run

    report = run()
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())
    sys.exit(0 if report.ok else 1)


@main.command()
@click.option("--rows", default=1_000_000, show_default=True, help="Rows of the demo table.")
@click.option("--backend", type=click.Choice(["auto", "cpu", "gpu"]), default=None,
              help="Where steps run (default: WORKBENCH_BACKEND, else auto).")
def demo(rows: int, backend: str | None) -> None:
    """The main job: polars preprocessing, a model on the GPU (or CPU), a report."""
    from workbench.demo import run

    run(rows=rows, backend=backend)


# Commands whose options live beside the room they drive.
main.add_command(bench)
main.add_command(datasets_group)


if __name__ == "__main__":  # pragma: no cover
    main()

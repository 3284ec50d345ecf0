"""``workbench datasets list | describe NAME | make NAME``: the catalog on the command line."""

from __future__ import annotations

import json

import click

from workbench.cli.options import ROWS


@click.group("datasets", context_settings={"help_option_names": ["-h", "--help"]})
def datasets_group() -> None:
    """Generated datasets: list the catalog, describe one, make (generate and cache) one."""


@datasets_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print names and titles as JSON.")
def list_cmd(as_json: bool) -> None:
    """The datasets in the catalog."""
    from workbench import datasets

    rows = {name: datasets.describe(name)["title"] for name in datasets.list()}
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(map(len, rows))
    for name, title in rows.items():
        click.echo(f"{name:<{width}}  {title}")


@datasets_group.command("describe")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the whole catalog entry as JSON.")
def describe_cmd(name: str, as_json: bool) -> None:
    """A dataset's description, parameters and schema."""
    from workbench import datasets

    try:
        entry = datasets.describe(name)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if as_json:
        click.echo(json.dumps(entry, indent=2, default=str))
        return
    click.echo(f"{entry['name']}: {entry['title']}\n")
    click.echo(entry["description"].strip() + "\n")
    r = entry["rows"]
    click.echo(f"rows: default {r['default']:_}, {r['min']:_} .. {r['max']:_}. {entry['scaling']}")
    for key, p in entry.get("params", {}).items():
        bounds = f", {p['min']} .. {p['max']}" if "min" in p else ""
        click.echo(f"  --param {key}=<{p['type']}>  default {p['default']}{bounds}: {p['description']}")
    for table, t in entry["tables"].items():
        click.echo(f"\ntable {table} ({t['rows']} rows):")
        for col, c in t["columns"].items():
            click.echo(f"  {col:<18} {c['dtype']:<14} {c.get('description', '')}")
    click.echo(f"\norigin: {entry['origin']}\nlicence: {entry['licence']}")


@datasets_group.command("make")
@click.argument("name")
@click.option("--rows", "-n", default=None, type=ROWS, help="Row count N (1e7 notation accepted); default the catalog's.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE", help="A dataset parameter (repeat).")
@click.option("--path", type=click.Path(), default=None, help="Output directory (default: the WORKBENCH_DATA cache).")
@click.option("--progress/--quiet", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option("--threads", type=int, default=None, help="Worker threads (default: cores, memory-capped).")
@click.option("--verify/--no-verify", default=None,
              help="Check whole-file checksums before reusing a dataset (the default); --no-verify checks "
                   "only file sizes and footers.")
def make_cmd(name, rows, seed, params, path, progress, threads, verify) -> None:
    """Generate NAME as partitioned Parquet (or reuse a valid copy) and print its path.

    A copy found corrupted or partial is rebuilt; a --path holding anything but an earlier
    dataset is refused; the free space is checked before writing.
    """
    from workbench import datasets
    from workbench.datasets.catalog import parse_param

    try:
        kwargs = dict(parse_param(name, p) for p in params)
        out = datasets.make(name, rows, seed=seed, path=path, progress=progress, threads=threads,
                            verify=verify, **kwargs)
    except (ValueError, TypeError) as e:
        raise click.UsageError(str(e)) from None
    except OSError as e:
        # "[Errno 28] ..." says nothing to a user; the message itself names the place and the fix
        raise click.ClickException(e.strerror if e.strerror and not e.filename else str(e)) from None
    click.echo(str(out))

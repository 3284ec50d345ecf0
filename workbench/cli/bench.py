"""``workbench bench``: db-benchmark groupby/join across engines, results into a folder."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from workbench.cli.options import ROWS, Seconds, check_environment, check_writable_folder


def _rows(values: tuple[str, ...], hint: str = "--rows") -> list[int]:
    """``--rows 1e7 --rows 1e8`` or ``--rows 1e7,1e8``: the CLI's one row-count type."""
    try:
        return [ROWS.convert(part, None, None) for v in values for part in v.split(",")]
    except click.BadParameter as e:
        raise click.BadParameter(e.message, param_hint=hint) from None


def _rows_option(ctx, param, values):
    return _rows(values)


def _stopped(signum, frame):
    click.echo(f"workbench: stopped by {signal.Signals(signum).name}; the sizes that finished "
               "are saved in --out", err=True)
    sys.exit(128 + signum)


def _list(value: str | None) -> list[str] | None:
    return [p.strip() for p in value.split(",") if p.strip()] if value else None


def _budget(ctx, param, value: str | None) -> int | None:
    """``--gpu-budget``: bytes, via the workbench's own parser (``8GB``, ``512MiB``...)."""
    if value is None:
        return None
    from workbench.bench.memory import device_total
    from workbench.memory import parse_budget

    try:
        return parse_budget(value, device_total())
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _skips(values: tuple[str, ...]) -> list[tuple[str, int | None, str]]:
    out = []
    for v in values:
        spec, _, reason = v.partition("=")
        engine, _, rows = spec.partition("@")
        out.append((engine.strip(), _rows((rows,), "--skip")[0] if rows else None,
                    reason.strip() or "time budget"))
    return out


@click.command()
@click.option("--task", type=click.Choice(["groupby", "join", "all"]), default="groupby",
              show_default=True, help="Which db-benchmark task to run.")
@click.option("--rows", "rows", multiple=True, default=("1e7",), show_default=True,
              callback=_rows_option,
              help="Rows of the table (x), e.g. 1e7; repeat for several sizes.")
@click.option("--engines", default=None,
              help="Comma-separated engines (default: every engine available here): "
                   "polars, polars-streaming, duckdb, pandas, polars-gpu, cudf, workbench.")
@click.option("--questions", "qids", default=None, help="Comma-separated questions, e.g. q1,q2.")
@click.option("--out", default="bench-results", show_default=True, type=click.Path(),
              help="Folder for the results (JSON per run, one Markdown table, one PNG).")
@click.option("--runs", default=2, show_default=True, type=click.IntRange(1, 20),
              help="Runs of each question: the first is 'cold', the second 'warm'.")
@click.option("--k", default=100, show_default=True, type=click.IntRange(2, 1_000_000),
              help="Groups of id1/id2/id4/id5 (groupby).")
@click.option("--na", default=0, show_default=True, type=click.IntRange(0, 100),
              help="Percent of nulls in the data.")
@click.option("--timeout", default=None, type=Seconds(),
              help="Seconds an engine may take for one size before it is stopped "
                   "(each engine then runs in its own process).")
@click.option("--skip", "skips", multiple=True, metavar="ENGINE[@ROWS][=REASON]",
              help="Record ENGINE (at ROWS only) as skipped instead of running it, "
                   "e.g. pandas@1e8='time budget'.")
@click.option("--isolate/--no-isolate", default=None,
              help="Run each engine in its own process (default: when a GPU engine runs).")
@click.option("--gpu-budget", "gpu_budget", default=None, callback=_budget, metavar="SIZE",
              help="Device memory the GPU engines may use, e.g. 2GB or 512MiB: the polars "
                   "GPU engine streams under an rmm LimitingResourceAdaptor, the workbench "
                   "runs with WORKBENCH_GPU_BUDGET, cudf is refused when the tables do not fit.")
@click.option("--name", default=None, help="Base name of the Markdown and PNG files.")
def bench(task, rows, engines, qids, out, runs, k, na, timeout, skips, isolate, gpu_budget, name):
    """Run db-benchmark groupby (q1-q10) and join (q1-q5) questions on each engine.

    Every question runs --runs times after the tables are loaded (cold, then warm);
    each answer is checked against polars CPU (or polars CPU streaming when polars
    CPU does not run; row count and column sums within 0.005 relative) and a wrong
    answer is reported as wrong, never as a time.
    """
    from workbench.bench import engines as E
    from workbench.bench.questions import questions
    from workbench.bench.report import terminal_table, write_all

    # Everything is checked before the first engine runs: a typo must not cost a run.
    check_environment()
    check_writable_folder(out, "--out")
    if name is not None and (not name.strip() or Path(name).name != name or name.startswith(".")):
        raise click.BadParameter(f"{name!r} is not a file name; give a plain name such as "
                                 "'h200-groupby' (the files go into --out)", param_hint="--name")
    sizes = rows
    names = _list(engines)
    known = E.engine_names()
    skip_specs = _skips(skips)
    for n, option in [*((n, "--engines") for n in names or ()),
                      *((e, "--skip") for e, _, _ in skip_specs)]:
        if n not in known:
            raise click.BadParameter(f"unknown engine {n!r}; valid: {', '.join(known)}",
                                     param_hint=option)
    for t in ["groupby", "join"] if task == "all" else [task]:
        try:
            questions(t, _list(qids))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--questions") from None
    if names is None:
        names = []
        for n in known:
            why = E.get_engine(n).available()
            if why is None:
                names.append(n)
            else:
                click.echo(f"{n}: unavailable: {why}")
    tasks = ["groupby", "join"] if task == "all" else [task]
    # SIGTERM (timeout, a batch system) unwinds like Ctrl-C: engine processes are stopped
    # and the temporary files removed, instead of Python dying where it stands.
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        results = _run(tasks, sizes, names, qids, runs, k, na, isolate, timeout, skip_specs,
                       gpu_budget, out, name)
    finally:
        signal.signal(signal.SIGTERM, previous)
    files = write_all(results, out, name=name)
    click.echo("")
    terminal_table(results)
    for p in files["json"]:
        click.echo(f"wrote {p}")
    click.echo(f"wrote {files['markdown']}")
    click.echo(f"wrote {files['png']}")


def _run(tasks, sizes, names, qids, runs, k, na, isolate, timeout, skip_specs, gpu_budget, out, name):
    from workbench.bench.report import write_all
    from workbench.bench.runner import run_suite

    if gpu_budget:
        click.echo(f"GPU budget: {gpu_budget} bytes")
    results = []
    for t in tasks:
        for n in sizes:
            skip = {e: r for e, at, r in skip_specs if at is None or at == n}
            try:
                res = run_suite(t, n, engines=names, question_ids=_list(qids), runs=runs, k=k,
                                na=na, isolate=isolate, timeout=timeout, skip=skip,
                                gpu_budget=gpu_budget, progress=click.echo)
            except ValueError as e:
                raise click.UsageError(str(e)) from None
            results.append(res)
            # each finished size is saved at once: a later size may run out of time
            write_all(results, out, name=name)
    return results

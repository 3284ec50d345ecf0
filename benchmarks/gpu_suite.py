"""The benchmark run for the H100 test machine: every engine, several sizes, one folder.

    python benchmarks/gpu_suite.py --out DIR [--plan groupby:1e7,groupby:1e8,join:1e7]
        [--skip pandas@1e8] [--timeout polars-gpu@1e8=200] [--engines ...] [--name NAME]
        [--gpu-budget 2GB]
    python benchmarks/gpu_suite.py --out DIR --name NAME --render a.json b.json ...

Writes one JSON per (task, size), and one Markdown table and one PNG for all of them,
after each engine (a run stopped half-way keeps what it finished, answers checked
against the reference where it had already run). The data are generated first by
``workbench.datasets`` (cached under $WORKBENCH_DATA) and the time it took is printed,
so the log shows where the minutes went. Each engine runs in its own process, in the
order of --engines.
"""

from __future__ import annotations

import argparse
import sys
import time

from workbench.bench import engines as E
from workbench.bench.report import markdown_all, render, rows_label, write_all
from workbench.bench.runner import make_data, run_suite


def _at(spec: str) -> tuple[str, int | None, str]:
    """``ENGINE[@ROWS][=VALUE]`` as (engine, rows or None, value)."""
    head, _, value = spec.partition("=")
    engine, _, rows = head.partition("@")
    return engine.strip(), int(float(rows)) if rows else None, value.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--plan", default="groupby:1e7,groupby:1e8,join:1e7",
                    help="comma-separated TASK:ROWS, run in this order")
    ap.add_argument("--engines", default=None, help="comma-separated (default: all built in)")
    ap.add_argument("--skip", action="append", default=[], metavar="ENGINE[@ROWS][=REASON]",
                    help="record ENGINE as skipped (default reason: time budget)")
    ap.add_argument("--timeout", action="append", default=[], metavar="[ENGINE][@ROWS]=SECONDS",
                    help="stop an engine after SECONDS at that size (default: 240 each)")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--gpu-budget", default=None, metavar="SIZE",
                    help="device memory the GPU engines may use, e.g. 2GB (see workbench bench)")
    ap.add_argument("--name", default="h100", help="base name of the Markdown and PNG files")
    ap.add_argument("--render", nargs="+", metavar="JSON",
                    help="run nothing: one Markdown table and one PNG from these result files")
    a = ap.parse_args(argv)
    if a.render:
        print(render(a.render, a.out, a.name))
        return 0

    plan = [(t.strip(), int(float(r))) for t, _, r in (p.partition(":") for p in a.plan.split(","))]
    engines = a.engines.split(",") if a.engines else list(E.BUILTIN)
    skips, timeouts = [_at(s) for s in a.skip], [_at(t) for t in a.timeout]
    budget = None
    if a.gpu_budget:
        from workbench.bench.memory import device_total
        from workbench.memory import parse_budget

        try:
            budget = parse_budget(a.gpu_budget, device_total())
        except ValueError as e:
            ap.error(f"--gpu-budget: {e}")

    def say(line: str) -> None:
        print(line, flush=True)

    t0 = time.perf_counter()
    paths = {}
    for task, rows in plan:
        t = time.perf_counter()
        paths[task, rows] = make_data(task, rows, k=a.k)
        say(f"data {task} {rows_label(rows)}: {time.perf_counter() - t:.1f} s")

    results, files = [], {}
    for task, rows in plan:
        t = time.perf_counter()
        skip = {e: (r or "time budget") for e, at, r in skips if at in (None, rows)}
        limits = {"": 240.0}
        limits.update({e: float(v) for e, at, v in timeouts if at in (None, rows)})

        def checkpoint(partial, done=list(results)):
            write_all(done + [partial], a.out, name=a.name)

        results.append(run_suite(task, rows, engines=engines, paths=paths[task, rows],
                                 runs=a.runs, k=a.k, isolate=True, skip=skip, timeout=limits,
                                 gpu_budget=budget, checkpoint=checkpoint, progress=say))
        files = write_all(results, a.out, name=a.name)
        say(f"{task} {rows_label(rows)}: {time.perf_counter() - t:.1f} s")
    say(markdown_all(results))
    say(f"total {time.perf_counter() - t0:.1f} s; files: {files}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

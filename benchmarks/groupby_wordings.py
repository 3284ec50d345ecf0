"""The db-benchmark groupby questions through ``wb.collect``, worded two ways, side by side.

The benchmark's suite words q8 and q9 in forms the polars GPU engine has (a per-group
rank, per-group sums); users write ``top_k`` and ``pl.corr`` inside ``agg``, which the
workbench rewrites (``workbench.engine.natural``). This runs every question both ways in
one process, warm, over the same Frame, checks the two answers against each other, and
records where each ran (the session's notes) and the totals: the users' wordings should
cost no more than 1.2x the benchmark's.

With ``--budget`` the session runs under that GPU memory budget (the larger-than-GPU
path); ``--profile FOLDER`` writes a cProfile summary of each question's last run there.

Usage: python benchmarks/groupby_wordings.py --rows 1e8 --out wordings.json
       python benchmarks/groupby_wordings.py --rows 1e8 --budget 1GB --questions q10 \
           --wordings user --profile prof --out q10.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

WORDINGS = ("benchmark", "user")


def question_code(q, wording: str):
    """The polars function of question ``q`` as the benchmark or as users word it."""
    return (q.polars_gpu or q.polars) if wording == "benchmark" else q.polars


def same_answer(a, b, keys) -> str | None:
    """None when the two polars answers hold the same rows (values within 1e-9
    relative), else what differs."""
    import polars as pl
    from polars.testing import assert_frame_equal

    if a.columns != b.columns:
        b = b.select(a.columns) if set(a.columns) == set(b.columns) else b
    try:
        order = [c for c in a.columns]
        assert_frame_equal(a.sort(order, nulls_last=True), b.sort(order, nulls_last=True),
                           check_dtypes=False, rtol=1e-9, atol=1e-9)
    except (AssertionError, pl.exceptions.PolarsError) as err:
        return str(err).splitlines()[0][:300]
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1e8")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--budget", default=None, help="GPU memory budget, e.g. 1GB")
    ap.add_argument("--questions", default=None, help="comma-separated, e.g. q8,q9 (default: all)")
    ap.add_argument("--wordings", default=",".join(WORDINGS), help="benchmark, user or both")
    ap.add_argument("--runs", type=int, default=2, help="runs per question and wording; the last counts")
    ap.add_argument("--profile", default=None, help="folder for cProfile summaries of the last runs")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    if args.budget:
        os.environ["WORKBENCH_GPU_BUDGET"] = args.budget
    import polars as pl

    import workbench as wb
    from workbench.bench.engines import device_synchronize
    from workbench.bench.questions import GROUPBY
    from workbench.bench.report import write_atomic
    from workbench.bench.runner import make_data
    from workbench.diagnostics.versions import stack_versions
    from workbench.memory import device_memory_stats

    from training import profiled  # benchmarks/training.py: the same cProfile summary

    rows = int(float(args.rows))
    wanted = set(args.questions.split(",")) if args.questions else None
    questions = [q for q in GROUPBY if wanted is None or q.id in wanted]
    wordings = [w for w in args.wordings.split(",") if w]
    unknown = set(wordings) - set(WORDINGS)
    if unknown:
        ap.error(f"unknown wordings {sorted(unknown)}; known: {', '.join(WORDINGS)}")

    start = time.perf_counter()
    path = make_data("groupby", rows, k=args.k)["x"]
    session = wb.init()
    out = {"benchmark": "groupby_wordings", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
           "rows": rows, "k": args.k, "budget": args.budget, "runs": args.runs,
           "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
           "gpu": session.hardware.gpu.name if session.gpu else None,
           "policy": session.policy.summary(), "versions": stack_versions(),
           "data_seconds": round(time.perf_counter() - start, 2), "questions": {}}
    wb.collect(pl.LazyFrame({"a": [1, 2]}).select(pl.col("a").sum()))  # the engine's import
    frame = wb.Frame.from_parquet(path)
    tables = {"x": frame.lazy()}
    out["frame_bytes"] = int(frame.nbytes)
    result_path = Path(args.out)
    sync = device_synchronize if session.gpu else (lambda: None)

    for q in questions:
        entry, answers = {}, {}
        for wording in wordings:
            code = question_code(q, wording)
            if wording == "user" and "benchmark" in wordings and code is (q.polars_gpu or q.polars):
                entry[wording] = {"same_code_as": "benchmark"}
                continue
            times, mark = [], len(session.log)
            try:
                for run in range(args.runs):
                    last = run == args.runs - 1
                    mark = len(session.log)
                    with profiled(args.profile if last else None, f"{q.id}-{wording}"):
                        t0 = time.perf_counter()
                        answer = wb.collect(code(tables), as_frame=True, raise_on_fail=True)
                        sync()
                        times.append(time.perf_counter() - t0)
                answers[wording] = answer.to_polars()
                entry[wording] = {"times": times, "seconds": times[-1],
                                  "rows": len(answers[wording])}
            except Exception as err:  # noqa: BLE001 - a failure is a result
                entry[wording] = {"error": f"{type(err).__name__}: {err}"[:400]}
            entry[wording]["log"] = [m for _, m in session.log[mark:]]
            entry[wording]["device"] = device_memory_stats()
            print(q.id, wording, entry[wording].get("seconds", entry[wording].get("error")),
                  flush=True)
        if len(answers) == 2:
            entry["answers_differ"] = same_answer(answers["benchmark"], answers["user"], q.chk)
        out["questions"][q.id] = entry
        write_atomic(result_path, json.dumps(out, indent=1, default=str).encode())

    totals = {}
    for wording in wordings:
        secs = []
        for e in out["questions"].values():
            w = e.get(wording, {})
            if "same_code_as" in w:
                w = e[w["same_code_as"]]
            secs.append(w.get("seconds"))
        totals[wording] = sum(secs) if all(s is not None for s in secs) else None
    out["totals"] = totals
    if totals.get("benchmark") and totals.get("user"):
        out["user_over_benchmark"] = totals["user"] / totals["benchmark"]
    write_atomic(result_path, json.dumps(out, indent=1, default=str).encode())
    print(json.dumps({"totals": totals, "ratio": out.get("user_over_benchmark")}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

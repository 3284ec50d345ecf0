"""Frame handoff and repeated-query benchmark (GPU), side by side in one process.

Measures on the db-benchmark groupby table G1 (``h2o_groupby``):

* loading the Parquet data: pyarrow alone, and ``Frame.from_parquet`` (which also
  pins the buffers in place on discrete GPUs);
* handing the whole table to the GPU: ``cudf.DataFrame.from_arrow`` (baseline) vs
  ``Frame.to_cudf()`` the first time (one pinned copy) and the second time (resident);
* repeated polars queries q1-q10: ``workbench.collect`` over the Frame (the answer
  left on the device as a Frame, as cudf's is; and returned as a polars DataFrame) vs
  the same polars code with ``collect(engine="gpu")`` on a plain polars frame (default
  engine, and the in-memory executor), vs hand-written cudf on the resident cudf
  frame. q8 and q9 run their ``polars_gpu`` code in every polars engine;
* the first CPU view of q10's answer (as large as the table): pinned fetch vs the
  pageable copies of libcudf and cudf-polars.

Usage: python benchmarks/frame_handoff.py --rows 100000000 --out results.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import time
from pathlib import Path


def _best(fn, runs: int = 2):
    """(first, best of the rest) wall seconds of fn(); GPU work is synchronized by fn."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times[0], min(times[1:]) if len(times) > 1 else times[0]


def _fetch_times(wb, frame, q) -> dict:
    """The first CPU view of a large GPU answer (q10: about one row per input row):
    the workbench's pinned fetch, against libcudf's ``to_arrow`` and cudf-polars'
    ``to_polars`` (the pageable copies ``collect(engine="gpu")`` makes) of the same answer."""
    code = q.polars_gpu or q.polars
    times = {}
    for how in ("workbench_pinned", "libcudf_to_arrow", "cudf_polars_to_polars"):
        answer = wb.collect(code({"x": frame.lazy()}), as_frame=True, raise_on_fail=True)
        device = answer._device
        times["bytes"] = sum(c.device_buffer_size() for c in device.table.columns())
        start = time.perf_counter()
        if how == "workbench_pinned":
            answer.to_arrow()
        elif how == "libcudf_to_arrow":
            device.table.to_arrow(metadata=answer.columns)
        else:
            device.to_polars()
        times[f"{how}_s"] = time.perf_counter() - start
        times[f"{how}_gbps"] = times["bytes"] / times[f"{how}_s"] / 1e9
        del answer, device
        gc.collect()
    print("result fetch", {k: round(v, 3) for k, v in times.items()}, flush=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e7)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--questions", default="q1,q2,q3,q4,q5,q6,q7,q8,q9,q10")
    parser.add_argument("--out", default="frame_handoff.json")
    parser.add_argument("--default-engine", action="store_true",
                        help="also time collect(engine='gpu') with the default (streaming) "
                             "executor: slow at 1e8 rows, and `workbench bench` times it too")
    args = parser.parse_args()
    rows = int(args.rows)

    import cudf
    import polars as pl
    import pyarrow.parquet as pq

    import workbench as wb
    from workbench.bench.questions import questions as bench_questions
    from workbench.bench.engines import device_synchronize
    from workbench.diagnostics.versions import stack_versions

    session = wb.init(backend="gpu")
    path = wb.datasets.make("h2o_groupby", rows, k=args.k)
    result = {"benchmark": "frame_handoff", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
              "rows": rows, "k": args.k, "machine": platform.node(), "cpu_count": os.cpu_count(),
              "gpu": session.hardware.gpu.name if session.hardware.gpu else None,
              "driver": session.hardware.driver_version, "versions": stack_versions(),
              "policy": session.policy.describe().splitlines()}

    start = time.perf_counter()
    table = pq.read_table(path)
    result["load_pyarrow_s"] = time.perf_counter() - start
    result["bytes"] = table.nbytes

    start = time.perf_counter()
    gdf = cudf.DataFrame.from_arrow(table)
    device_synchronize()
    result["baseline_cudf_from_arrow_s"] = time.perf_counter() - start
    del gdf, table
    gc.collect()

    start = time.perf_counter()
    frame = wb.Frame.from_parquet(path)
    result["frame_from_parquet_s"] = time.perf_counter() - start
    result["frame_placement"] = frame.placement().to_dicts()

    mark = len(session.transfers)
    start = time.perf_counter()
    resident = frame.to_cudf()
    device_synchronize()
    result["handoff_first_s"] = time.perf_counter() - start
    copies = session.transfers.since(mark)
    result["handoff_bytes"] = sum(t.nbytes for t in copies)
    result["handoff_copy_seconds"] = sum(t.seconds for t in copies)
    result["handoff_kinds"] = sorted({t.kind for t in copies})
    start = time.perf_counter()
    frame.to_cudf()
    result["handoff_second_s"] = time.perf_counter() - start
    result["handoff_gbps"] = frame.nbytes / result["handoff_first_s"] / 1e9
    result["baseline_gbps"] = frame.nbytes / result["baseline_cudf_from_arrow_s"] / 1e9

    plain = frame.to_polars()
    in_memory = pl.GPUEngine(executor="in-memory", raise_on_fail=True)
    per_question = {}
    for q in bench_questions("groupby", args.questions.split(",")):
        code = q.polars_gpu or q.polars
        row = {}
        row["workbench"] = _best(lambda: wb.collect(code({"x": frame.lazy()}), raise_on_fail=True,
                                                    as_frame=True))
        row["workbench_to_polars"] = _best(lambda: wb.collect(code({"x": frame.lazy()}),
                                                              raise_on_fail=True))
        if args.default_engine:
            row["polars_gpu_default"] = _best(lambda: code({"x": plain.lazy()}).collect(engine="gpu"))
        row["polars_gpu_in_memory"] = _best(lambda: code({"x": plain.lazy()}).collect(engine=in_memory))
        cudf_fn = q.cudf or q.pandas
        row["cudf_resident"] = _best(lambda: (cudf_fn({"x": resident}), device_synchronize()))
        per_question[q.id] = {k: {"first_s": v[0], "warm_s": v[1]} for k, v in row.items()}
        print(q.id, {k: round(v[1], 4) for k, v in row.items()}, flush=True)
    result["questions"] = per_question
    totals = {}
    for engine in next(iter(per_question.values())):
        totals[engine] = sum(per_question[q][engine]["warm_s"] for q in per_question)
    result["warm_totals_s"] = totals
    for engine in ("polars_gpu_default", "polars_gpu_in_memory"):
        if engine in totals:
            result[f"speedup_vs_{engine}"] = totals[engine] / totals["workbench"]
    result["ratio_to_cudf"] = totals["workbench"] / totals["cudf_resident"]
    result["result_fetch"] = _fetch_times(wb, frame, bench_questions("groupby", ["q10"])[0])
    result["transfers"] = session.transfers.summary().splitlines()

    out = Path(args.out)
    from workbench.bench.report import write_atomic

    write_atomic(out, json.dumps(result, indent=2, default=str).encode())
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, (dict, list))}, indent=1))
    print("warm totals", totals)


if __name__ == "__main__":
    main()

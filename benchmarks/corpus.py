"""The analytic query corpus, side by side: polars CPU, polars CPU streaming, workbench.collect.

    python benchmarks/corpus.py --scale 1e8 --budget 2GB --out results.json
        [--queries a,b] [--engines polars,polars-streaming,workbench] [--runs 2]
        [--timeout 120] [--backend auto|cpu|gpu] [--as-frame] [--seed 0] [--profile FOLDER]

The tables of ``corpus_queries.TABLES`` are generated at ``--scale`` rows (cached
Parquet, ``workbench.datasets``) and loaded once per engine: polars reads them into
memory, polars streaming scans the files (``pl.scan_parquet``, ``engine="streaming"``),
the workbench holds them as Frames (``wb.Frame.from_parquet``) in a session started with
``wb.init(budget=--budget)``. Every query then runs on each engine in turn, in this one
process, ``--runs`` times (the last run is the one reported); every answer is checked
against polars CPU's (rows sorted where the order is not defined, floats within a
relative 1e-6). For the workbench the record says where it ran (the session log and
``GPUFallbackWarning``), the RMM statistics of the query (held before, peak during) and
NVML's peak of the whole device. A query that fails or runs past ``--timeout`` on one
engine is recorded so and the run goes on. The JSON is re-written (atomically) after
each query, so a stopped run keeps what it finished.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
import warnings
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus_queries as C  # noqa: E402

ENGINES = ("polars", "polars-streaming", "workbench")
REL_TOL, ABS_TOL = 1e-6, 1e-8


class Timeout(Exception):
    pass


class Skipped(Exception):
    pass


# --- data ------------------------------------------------------------------------------


def make_tables(scale: int, names=None, seed: int = 0) -> dict[str, Path]:
    """The Parquet folder of each table the queries need, generated (and cached) by the catalog."""
    from workbench import datasets

    roots, paths = {}, {}
    for name in sorted(names or C.TABLES):
        dataset, table, params = C.TABLES[name]
        key = (dataset, tuple(sorted(params.items())))
        if key not in roots:
            roots[key] = Path(datasets.make(dataset, scale, seed=seed, **params))
        paths[name] = roots[key] / table if table else roots[key]
    return paths


def files(path: Path) -> list[str]:
    from workbench.bench.engine_base import parquet_files

    return parquet_files(path)


def table_sizes(paths: dict[str, Path]) -> dict[str, dict]:
    """Rows, in-memory bytes (polars' ``estimated_size`` of the table) and Parquet bytes."""
    import pyarrow.parquet as pq

    out = {}
    for name, path in paths.items():
        fs = files(path)
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in fs)
        out[name] = {"rows": rows, "parquet_bytes": sum(os.path.getsize(f) for f in fs)}
    return out


# --- engines ---------------------------------------------------------------------------


# Cancelled background queries, kept: polars 1.44 aborts the process when a cancelled
# query finishes after its handle was dropped (the result's channel has no receiver).
_CANCELLED: list = []


def _polars_collect(lf: pl.LazyFrame, engine: str, timeout: float) -> pl.DataFrame:
    # A background query can be cancelled: a timed-out one stops using the cores.
    handle = lf.collect(engine=engine, background=True)
    deadline = time.perf_counter() + timeout
    while True:
        out = handle.fetch()
        if out is not None:
            return out
        if time.perf_counter() > deadline:
            handle.cancel()
            _CANCELLED.append(handle)
            raise Timeout(f"stopped after {timeout:g} s")
        time.sleep(0.0005)


class PolarsCPU:
    name, engine = "polars", "in-memory"

    def load(self, paths):
        self.tables = {n: pl.read_parquet(files(p)) for n, p in paths.items()}
        self.lazy = {n: df.lazy() for n, df in self.tables.items()}
        return {n: int(df.estimated_size()) for n, df in self.tables.items()}

    def run(self, q, timeout):
        """The answer and the seconds it took."""
        lf = q(self.lazy)
        start = time.perf_counter()
        out = _polars_collect(lf, self.engine, timeout)
        return out, time.perf_counter() - start

    def close(self):
        self.tables = self.lazy = None


class PolarsStreaming(PolarsCPU):
    name, engine = "polars-streaming", "streaming"

    def load(self, paths):
        # Streaming users scan the files: the tables are never held in memory whole.
        self.tables = None
        self.lazy = {n: pl.scan_parquet(files(p)) for n, p in paths.items()}
        return {}


class Workbench:
    """``wb.collect`` over Frames; each call in a thread so that ``--timeout`` can give up on it."""

    name = "workbench"

    def __init__(self, as_frame: bool = False, profile: str | None = None):
        self.as_frame, self.busy, self.profile = as_frame, None, profile

    def load(self, paths):
        import workbench as wb

        self.session = wb.current_session()
        # The first GPU query imports cudf-polars and applies the memory policy (before
        # any frame is pinned or copied): pay it here, not in the first query's time.
        wb.collect(pl.LazyFrame({"a": [1, 2]}).select(pl.col("a").sum()))
        if self.session.gpu:
            # Likewise the streaming executor's first use: it imports rapidsmpf, UCXX and
            # Dask (1.5 s on the H200), which the first query beyond the budget paid.
            import cudf_polars.streaming.actor_graph.collectives  # noqa: F401
            import cudf_polars.streaming.parallel  # noqa: F401
        self.tables = {n: wb.Frame.from_parquet(p) for n, p in paths.items()}
        self.lazy = {n: f.lazy() for n, f in self.tables.items()}
        return {n: int(f.nbytes) for n, f in self.tables.items()}

    def run(self, q, timeout):
        import workbench as wb
        from workbench.bench.memory import DevicePeak
        from workbench.errors import GPUFallbackWarning
        from workbench.memory import current_resource

        self.info = {}
        if self.busy is not None and self.busy.is_alive():
            raise Skipped("an earlier query that timed out is still running on this engine")
        lf, box = q(self.lazy), {}
        mark, mr = len(self.session.log), current_resource()
        moved_mark = len(self.session.transfers)
        held = _counter(mr.allocation_counts, "current_bytes") if mr is not None else None

        def work():
            from training import profiled  # benchmarks/training.py: a cProfile summary

            try:  # profiled here: cProfile follows the thread that enables it
                with profiled(self.profile, q.name):
                    box["out"] = wb.collect(lf, as_frame=self.as_frame)
            except BaseException as err:  # noqa: BLE001 - handed to the caller
                box["err"] = err

        with warnings.catch_warnings(record=True) as caught, DevicePeak(self.session.gpu) as nvml:
            warnings.simplefilter("always")
            if mr is not None:
                mr.push_counters()
            worker = threading.Thread(target=work, daemon=True)
            # the clock covers the call only, not NVML's set-up or the statistics
            start = time.perf_counter()
            worker.start()
            worker.join(timeout)
            seconds = time.perf_counter() - start
            counters = mr.pop_counters() if mr is not None else None
        # the pushed counters start at zero: their peak is what the query added to what was held
        peak = _counter(counters, "peak_bytes") if counters is not None else None
        log = [m for _, m in self.session.log[mark:]]
        fell = [str(w.message) for w in caught if issubclass(w.category, GPUFallbackWarning)]
        self.info = {"where": _where(self.session.gpu, log, fell), "log": log,
                "device": {"held_before_bytes": held, "query_peak_bytes": peak,
                           "peak_bytes": held + peak if peak is not None else None,
                           "nvml_peak_bytes": nvml.peak},
                "moved": _moved(self.session.transfers.since(moved_mark))}
        if worker.is_alive():
            self.busy = worker
            raise Timeout(f"stopped waiting after {timeout:g} s (the query goes on in the background)")
        if "err" in box:
            raise box["err"]
        return box["out"], seconds

    def close(self):
        self.tables = self.lazy = None


def _moved(transfers) -> dict:
    """Bytes the query copied each way (zero-copy views left out) and the seconds the
    copies were timed at (summed: copies on several threads overlap): against the
    bus's rate, the floor of the query's time."""
    out = {}
    for direction in ("host-to-device", "device-to-host"):
        copies = [t for t in transfers if t.direction == direction and t.kind != "mapped"]
        out[direction] = {"bytes": sum(t.nbytes for t in copies),
                          "seconds": round(sum(t.seconds for t in copies), 4), "copies": len(copies)}
    return out


def _counter(stats, key: str) -> int:
    # RMM's Python statistics are an object with attributes (a dict in some releases)
    return int(stats[key] if isinstance(stats, dict) else getattr(stats, key))


def _where(gpu: bool, log: list[str], fallbacks: list[str]) -> str:
    """gpu (in-memory executor), gpu-split (split by key), gpu-streaming, cpu-fallback,
    cpu-chosen (the planner judged polars faster) or cpu."""
    if fallbacks or any("could not run on the GPU" in m for m in log):
        return "cpu-fallback"
    if any("polars runs it on the CPU" in m for m in log):
        return "cpu-chosen"
    if not gpu:
        return "cpu"
    if any("split by key into" in m or "row ranges" in m for m in log):
        return "gpu-split"
    return "gpu-streaming" if any("streaming" in m for m in log) else "gpu"


def make_engines(names, as_frame=False, profile=None):
    known = {"polars": PolarsCPU, "polars-streaming": PolarsStreaming,
             "workbench": lambda: Workbench(as_frame, profile)}
    return [known[n]() for n in names]


# --- answers ---------------------------------------------------------------------------


def compare(reference: pl.DataFrame, answer: pl.DataFrame, ordered: bool) -> str | None:
    """Why ``answer`` differs from ``reference``, or None when it agrees.

    Rows are compared as a set unless ``ordered``; floats within REL_TOL (ABS_TOL near
    zero); dtypes may differ (the result says so in ``notes``), names and order of
    columns may not.
    """
    if answer.columns != reference.columns:
        return f"columns {answer.columns}, expected {reference.columns}"
    if answer.height != reference.height:
        return f"{answer.height} rows, expected {reference.height}"
    try:
        assert_frame_equal(reference, answer, check_row_order=ordered, check_dtypes=False,
                           check_exact=False, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    except AssertionError as err:
        return " ".join(str(err).split())[:400]
    return None


def _to_polars(answer):
    return answer if isinstance(answer, pl.DataFrame) else answer.to_polars()


def check(entry: dict, answers: dict, ordered: bool) -> None:
    """Compare each engine's answer with polars CPU's (polars streaming's when that failed)."""
    ref_name = next((e for e in ENGINES if e in answers), None)
    entry["reference"] = ref_name
    for name, answer in answers.items():
        rec = entry["results"][name]
        if name == ref_name:
            rec["check"] = "reference"
            continue
        got, ref = _to_polars(answer), answers[ref_name]
        why = compare(ref, got, ordered)
        rec["check"] = "ok" if why is None else why
        if why is not None:
            rec["status"] = "wrong"
        if got.schema != ref.schema:
            rec.setdefault("notes", []).append(f"dtypes {dict(got.schema)} vs {dict(ref.schema)}")


# --- one query -------------------------------------------------------------------------


def run_one(engine, q, runs: int, timeout: float) -> tuple[dict, object]:
    from workbench.bench.engine_base import error_status

    rec, answer, times = {"status": "ok"}, None, []
    for _ in range(runs):
        answer = None
        gc.collect()
        try:
            answer, seconds = engine.run(q, timeout)
        except (Timeout, Skipped) as err:
            rec.update(status="timeout" if isinstance(err, Timeout) else "skipped", error=str(err))
        except Exception as err:  # noqa: BLE001 - recorded, the run goes on
            rec.update(status="error", error=error_status(err, engine.name == "workbench"))
        else:
            times.append(seconds)
        # where it ran and the memory it took, failed runs included
        info = dict(getattr(engine, "info", {}))
        if "device" in info:
            # the first run copies the columns to the device: report the largest peak of all runs
            rec.setdefault("device_runs", []).append(info["device"])
            info["device"] = max(rec["device_runs"], key=lambda d: d.get("peak_bytes") or 0)
        rec.update(info)
        if rec["status"] != "ok":
            break
    rec["times"] = times
    if rec["status"] == "ok":
        rec["seconds"] = times[-1]
        rec["rows"] = len(answer)
    return rec, (answer if rec["status"] == "ok" else None)


def summarize(result: dict) -> dict:
    """Totals over the queries every engine answered right, ratios, GPU use, peak memory."""
    engines, queries = result["engines"], result["queries"]
    ok = [q for q in queries if all(q["results"][e]["status"] == "ok" for e in engines)]
    totals = {e: sum(q["results"][e]["seconds"] for q in ok) for e in engines}
    out = {"queries": len(queries), "answered_by_all": len(ok), "totals_seconds": totals,
           "ok": {e: sum(q["results"][e]["status"] == "ok" for q in queries) for e in engines}}
    if "workbench" in engines:
        wb = [q["results"]["workbench"] for q in queries]
        out["where"] = {w: sum(r.get("where") == w for r in wb)
                        for w in sorted({r.get("where") for r in wb if r.get("where")})}
        out["on_gpu"] = sum(str(r.get("where", "")).startswith("gpu") for r in wb)
        peaks = [r["device"]["peak_bytes"] for r in wb if (r.get("device") or {}).get("peak_bytes")]
        out["peak_device_bytes"] = max(peaks) if peaks else None
        out["ratios"] = {f"{e} / workbench": totals[e] / totals["workbench"]
                         for e in engines if e != "workbench" and totals["workbench"] > 0}
        if "polars" in engines:
            out["slower_than_polars"] = [q["name"] for q in ok if q["results"]["workbench"]["seconds"]
                                         > q["results"]["polars"]["seconds"]]
        budget = result.get("budget")
        if budget and out["peak_device_bytes"] is not None:
            out["peak_within_budget"] = out["peak_device_bytes"] <= budget
    return out


# --- the run ---------------------------------------------------------------------------


def write_result(path: Path, result: dict) -> None:
    from workbench.bench.report import write_atomic

    write_atomic(path, json.dumps(result, indent=1, default=str).encode())


def run_corpus(scale: int, out: Path, *, budget=None, queries=None, engines=ENGINES, runs: int = 2,
               timeout: float = 120.0, backend: str = "auto", as_frame: bool = False, seed: int = 0,
               profile: str | None = None, say=print) -> dict:
    """Run the corpus; the result as written to ``out`` (a JSON file)."""
    import workbench as wb
    from workbench.bench.report import machine_info, now_utc
    from workbench.diagnostics.versions import stack_versions
    from workbench.hardware import detect

    qs = [C.QUERIES[n] if isinstance(n, str) else n for n in (queries or C.QUERIES)]
    session = wb.init(backend=backend, budget=budget)
    t0 = time.perf_counter()
    paths = make_tables(scale, {t for q in qs for t in q.tables}, seed)
    result = {"benchmark": "corpus", "date": now_utc(), "scale": scale, "seed": seed,
              "budget": session.policy.budget, "budget_asked": budget, "runs": runs, "timeout": timeout,
              "engines": list(engines), "as_frame": as_frame, "machine": machine_info(),
              "hardware": detect().to_dict(), "versions": stack_versions(),
              "session": {"backend": session.backend, "policy": session.policy.summary()},
              "data_seconds": time.perf_counter() - t0, "tables": table_sizes(paths), "load": {},
              "queries": []}
    say(f"data: {result['data_seconds']:.1f} s")
    live = make_engines(engines, as_frame, profile)
    for eng in live:
        start = time.perf_counter()
        sizes = eng.load(paths)
        result["load"][eng.name] = time.perf_counter() - start
        for name, nbytes in sizes.items():
            result["tables"][name][f"{eng.name}_bytes"] = nbytes
        say(f"load {eng.name}: {result['load'][eng.name]:.1f} s")
    for info in result["tables"].values():
        info["bytes"] = info.get("polars_bytes") or info.get("workbench_bytes")
    total = sum(i["bytes"] or 0 for i in result["tables"].values())
    result["total_bytes"] = total
    asked = _budget_bytes(budget)
    result["budget_asked_bytes"] = asked
    # On a CPU-only machine the session has no budget; the asked one still sizes the corpus.
    result["tables_over_budget"] = total / (result["budget"] or asked) if (result["budget"] or asked) else None
    if result["tables_over_budget"] is not None and result["tables_over_budget"] < 5:
        say(f"note: the tables ({total:,} bytes) are {result['tables_over_budget']:.2g}x the budget; "
            "the corpus is meant to be at least 5x it")
    for q in qs:
        entry = {"name": q.name, "description": q.description, "tags": list(q.tags),
                 "tables": list(q.tables), "ordered": q.ordered, "results": {}}
        answers = {}
        for eng in live:
            entry["results"][eng.name], answer = run_one(eng, q, runs, timeout)
            if answer is not None:
                answers[eng.name] = answer
        check(entry, answers, q.ordered)
        del answers
        result["queries"].append(entry)
        result["summary"] = summarize(result)
        write_result(out, result)
        say(progress_line(entry))
    for eng in live:
        eng.close()
    return result


def _budget_bytes(budget) -> int | None:
    from workbench.bench.memory import device_total
    from workbench.memory import parse_budget

    try:
        return parse_budget(budget, device_total()) if budget is not None else None
    except ValueError:  # a fraction, with no device to take it from
        return None


def progress_line(entry: dict) -> str:
    parts = []
    for name, rec in entry["results"].items():
        s = f"{rec['seconds']:.3f}s" if "seconds" in rec else rec["status"]
        parts.append(f"{name} {s}" + (f" [{rec['where']}]" if rec.get("where") else "")
                     + ("" if rec["status"] in ("ok", "timeout", "error") else f" {rec['status']}"))
    return f"{entry['name']:<26} " + "  ".join(parts)


def print_table(result: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    from workbench.sizes import format_bytes

    engines = result["engines"]
    budget = result["budget"] or result.get("budget_asked_bytes")
    t = Table(title=f"query corpus at {result['scale']:.0e} rows, budget "
                    f"{format_bytes(budget) if budget else 'none'}"
                    + ("" if result["budget"] or not budget else " (asked; a CPU session has none)"))
    t.add_column("query")
    for e in engines:
        t.add_column(e, justify="right")
    wb = "workbench" in engines
    if wb:
        t.add_column("where")
        t.add_column("device peak", justify="right")
    for q in result["queries"]:
        cells = [q["name"]]
        for e in engines:
            r = q["results"][e]
            cells.append(f"{r['seconds']:.3f}" if r["status"] == "ok" else r["status"])
        if wb:
            r = q["results"]["workbench"]
            peak = (r.get("device") or {}).get("peak_bytes")
            cells += [r.get("where", "-"), format_bytes(peak) if peak else "-"]
        t.add_row(*cells)
    s = result.get("summary", {})
    t.add_row("total (answered by all)", *[f"{v:.3f}" for v in s.get("totals_seconds", {}).values()],
              *(["", ""] if wb else []))
    (console or Console(width=140)).print(t)
    for k in ("ratios", "where", "on_gpu", "peak_device_bytes", "slower_than_polars"):
        if k in s:
            print(f"{k}: {s[k]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", required=True, help="rows of the large tables, e.g. 1e8")
    ap.add_argument("--budget", default=None, help="GPU memory budget for wb.init, e.g. 2GB")
    ap.add_argument("--out", help="the results JSON file (a folder: a name is chosen)")
    ap.add_argument("--queries", default=None, help="comma-separated names (default: all)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated, of " + ", ".join(ENGINES))
    ap.add_argument("--runs", type=int, default=2, help="runs per query and engine; the last is reported")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per query run and engine")
    ap.add_argument("--backend", default="auto", choices=("auto", "cpu", "gpu"))
    ap.add_argument("--as-frame", action="store_true", help="workbench answers stay on the device")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", default=None,
                    help="folder for a cProfile summary of each workbench query (its last run)")
    ap.add_argument("--stream-share", type=int, default=None,
                    help="streaming partitions are 1/N of the budget (default: the library's)")
    ap.add_argument("--data-only", action="store_true",
                    help="generate (or check) the cached tables, print their sizes, run nothing")
    a = ap.parse_args(argv)
    try:
        scale = int(float(a.scale))
    except ValueError:
        ap.error(f"--scale: expected a row count such as 1e8, got {a.scale!r}")
    if scale < 10:
        ap.error("--scale: at least 10 rows (the join tables need them)")
    names = a.queries.split(",") if a.queries else None
    unknown = sorted(set(names or ()) - set(C.QUERIES))
    if unknown:
        ap.error(f"--queries: unknown {', '.join(unknown)}; known: {', '.join(C.QUERIES)}")
    engines = a.engines.split(",")
    if set(engines) - set(ENGINES) or not engines:
        ap.error(f"--engines: choose from {', '.join(ENGINES)}; got {a.engines!r}")
    if not a.out and not a.data_only:
        ap.error("--out is required (the results JSON file, or a folder for it)")
    if a.runs < 1 or a.timeout <= 0:
        ap.error("--runs must be at least 1 and --timeout positive")
    from workbench import config
    from workbench.errors import ConfigurationError

    try:
        config.budget(a.budget)
    except ConfigurationError as err:
        ap.error(f"--budget: {err}")
    if a.data_only:
        start = time.perf_counter()
        paths = make_tables(scale, C.tables_needed(names), a.seed)
        sizes = table_sizes(paths)
        for name, info in sizes.items():
            print(f"{name:<8} {info['rows']:>14,} rows {info['parquet_bytes']:>16,} Parquet bytes  {paths[name]}")
        print(f"data: {time.perf_counter() - start:.1f} s")
        return 0
    if a.stream_share is not None:
        from workbench.memory import consumers

        if a.stream_share < 1:
            ap.error("--stream-share: a positive integer, e.g. 16")
        consumers.STREAM_SHARE = a.stream_share
    out = Path(a.out)
    if out.is_dir():
        out = out / f"corpus-{scale:.0e}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    result = run_corpus(scale, out, budget=a.budget, queries=names, engines=engines, runs=a.runs,
                        timeout=a.timeout, backend=a.backend, as_frame=a.as_frame, seed=a.seed,
                        profile=a.profile, say=lambda line: print(line, flush=True))
    print_table(result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

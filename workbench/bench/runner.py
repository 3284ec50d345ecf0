"""Runs the questions on each engine: load, cold and warm runs, chk, memory, refusals.

For each engine, in turn: is it available here; would the tables fit the memory it
needs, or the GPU budget (else "refused: <reason>", before anything is loaded); load
the tables (timed on its own); run every question ``runs`` times (run 1 is "cold", the
first after loading; run 2 is "warm"); compute chk (row count and column sums) after
each run, outside the timing, as db-benchmark does; then free the tables. Answers are
compared with the reference's (polars CPU, or polars CPU streaming when polars CPU
does not run; see ``check``) within 0.005 relative: a mismatch is "wrong" and never
counts as a success.

With ``isolate=True`` each engine runs in a fresh interpreter (``execute``), so GPU
memory pools, peak memory and crashes stay with the engine that caused them, and
``timeout`` can stop an engine that runs too long.
"""

from __future__ import annotations

import copy
import gc
from pathlib import Path
from typing import Any, Callable

from workbench.bench import engines as E
from workbench.bench.check import ATOL, RTOL, check_answers, chk_matches
from workbench.bench.execute import run_engine, run_isolated
from workbench.bench.memory import device_total, fit_reason, host_available
from workbench.bench.questions import DATASETS, TABLES, questions

__all__ = ["chk_matches", "make_data", "run_engine", "run_suite", "table_sizes"]


# --- data ----------------------------------------------------------------------------


def make_data(task: str, rows: int, k: int = 100, na: int = 0, seed: int = 0) -> dict[str, Path]:
    """The task's tables as Parquet, generated (and cached) by ``workbench.datasets``."""
    from workbench import datasets

    if task == "groupby":
        root = Path(datasets.make(DATASETS[task], rows, seed=seed, k=k, na=na))
        return {"x": root}
    root = Path(datasets.make(DATASETS[task], rows, seed=seed, na=na))
    return {name: root / name for name in TABLES[task]}


def table_sizes(paths: dict[str, Path]) -> dict[str, dict[str, int]]:
    """Rows (from Parquet metadata) and estimated in-memory bytes of each table.

    The bytes per row come from decoding the first rows into Arrow (strings included),
    so the estimate is what an Arrow-based engine holds, not the compressed file size.
    """
    import pyarrow.parquet as pq

    out = {}
    for name, p in paths.items():
        files = E.parquet_files(p)
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        per_row = 0.0
        for f in files:
            pf = pq.ParquetFile(f)
            batch = next(pf.iter_batches(batch_size=65536), None)
            if batch is not None and batch.num_rows:
                per_row = batch.nbytes / batch.num_rows
                break
        out[name] = {"rows": int(rows), "bytes": int(rows * per_row)}
    return out


# --- the suite -----------------------------------------------------------------------


def _progress_line(label: str, engine: str, rec: dict) -> str:
    t = rec.get("times") or []
    times = "  ".join(f"{n} {v:8.3f} s" for n, v in zip(("cold", "warm"), t[:2]))
    return f"[{label}] {engine:<16} {rec.get('question', ''):<4} {times:<32} {rec['status']}"


def run_suite(task: str, rows: int, *, engines: list[str] | None = None,
              question_ids: list[str] | None = None, runs: int = 2, k: int = 100, na: int = 0,
              seed: int = 0, paths: dict[str, Path] | None = None,
              isolate: bool | None = None, timeout: float | dict[str, float] | None = None,
              skip: dict[str, str] | None = None, ram_bytes: int | None = None,
              device_bytes: int | None = None, gpu_budget: int | None = None,
              checkpoint: Callable[[dict], None] | None = None,
              progress: Callable[[str], None] | None = print) -> dict:
    """Run one task at one size on each engine; returns the results (see ``report``).

    Parameters
    ----------
    task : {"groupby", "join"}
    rows : int
        Rows of the table x.
    engines, question_ids : list of str, optional
        Which engines (default: every registered one) and questions (default: all).
    runs : int
        Runs of each question after loading; the first is "cold".
    k, na, seed : int
        Parameters of the generated data; ``paths`` replaces the data with these files.
    isolate : bool, optional
        One process per built-in engine (default: when a GPU engine runs, or a timeout).
    timeout : float or dict, optional
        Seconds an isolated engine may take, or a dict of them by engine name ("" for
        the others).
    skip : dict, optional
        Engine name -> reason to record instead of running it (a time budget, say).
    ram_bytes, device_bytes : int, optional
        Replace the measured host memory available and device memory.
    gpu_budget : int, optional
        Bytes of device memory the GPU engines may use (see ``engines_gpu``); an
        engine that must hold the tables on the device is refused when they do not
        fit it. Recorded as ``gpu_budget``.
    checkpoint : callable, optional
        Called after each engine with a copy of the results so far (answers checked
        against the reference where it already ran), to save a run that may be cut.
    progress : callable, optional
        Receives one line per event; None for silence.
    """
    from workbench.bench.report import machine_info, now_utc

    qs = questions(task, question_ids)
    names = list(engines) if engines else E.engine_names()
    for n in names:
        E.get_engine(n)  # unknown names fail before any data is made
    if runs < 1:
        raise ValueError("runs must be at least 1")
    if gpu_budget is not None and int(gpu_budget) <= 0:
        raise ValueError(f"gpu_budget must be a positive number of bytes, got {gpu_budget!r}")
    gpu_budget = int(gpu_budget) if gpu_budget else None
    say = progress or (lambda s: None)
    label = f"{task} {rows:.0e}".replace("e+0", "e")
    if paths is None:
        say(f"[{label}] preparing data ...")
        paths = make_data(task, rows, k=k, na=na, seed=seed)
    sizes = table_sizes(paths)
    total_bytes = sum(s["bytes"] for s in sizes.values())
    device = device_bytes if device_bytes is not None else device_total()
    skip = skip or {}
    if isolate is None:  # GPU engines each get a process: their memory pools stay apart
        isolate = timeout is not None or any(e.device == "gpu" and e.available() is None
                      for e in map(E.get_engine, names))
    result: dict[str, Any] = {
        "schema": "workbench-bench/1", "task": task, "rows": int(rows), "k": k, "na": na,
        "seed": seed, "dataset": DATASETS[task], "date": now_utc(), "runs": runs,
        "machine": machine_info(), "tables": sizes, "table_bytes": total_bytes,
        "gpu_budget": gpu_budget,
        "paths": {n: str(p) for n, p in paths.items()}, "reference": E.REFERENCE,
        "tolerance": {"rtol": RTOL, "atol": ATOL}, "isolated": bool(isolate),
        "engines": {}, "results": [],
    }
    for name in names:
        eng = E.get_engine(name, gpu_budget)
        info: dict[str, Any] = {"label": eng.label, "versions": eng.versions()}
        result["engines"][name] = info
        reason, kind = eng.available(), "unavailable"
        if reason is None and name in skip:
            reason, kind = skip[name], "skipped"
        if reason is None:
            host = ram_bytes if ram_bytes is not None else host_available()
            reason, kind = fit_reason(eng, total_bytes, host, device, gpu_budget), "refused"
        if reason is not None:
            info["status"] = f"{kind}: {reason}"
            say(f"[{label}] {name:<16} {info['status']}")
            for q in qs:
                result["results"].append({"engine": name, "question": q.id, "title": q.title,
                                          "status": info["status"], "times": []})
            _checkpoint(checkpoint, result, qs, paths, say, label)
            continue
        info["device"] = eng.device
        got: dict[str, dict] = {}

        def emit(kind, rec, name=name, info=info, got=got):
            if kind == "load":
                if rec.get("traceback"):
                    info["traceback"] = rec["traceback"]
                info.update({"status": rec["status"], "load_seconds": rec.get("seconds"),
                             "load_host_peak_bytes": rec.get("host_peak_bytes"),
                             "load_device_peak_bytes": rec.get("device_peak_bytes")})
                info.update(rec.get("setup") or {})
                say(f"[{label}] {name:<16} load {rec.get('seconds') or 0:8.3f} s  {rec['status']}")
            elif kind == "question":
                got[rec["question"]] = {"engine": name, **rec}
                say(_progress_line(label, name, rec))
            elif kind == "abort":
                info["status"] = rec["status"]
                say(f"[{label}] {name:<16} {rec['status']}")

        if isolate and E.builtin(name):
            limit = timeout.get(name, timeout.get("")) if isinstance(timeout, dict) else timeout
            run_isolated(name, paths, task, qs, runs, limit, emit, gpu_budget)
        else:
            run_engine(eng, paths, qs, runs, emit)
        del eng
        gc.collect()
        for q in qs:
            result["results"].append(got.get(q.id) or {
                "engine": name, "question": q.id, "title": q.title, "times": [],
                "status": info.get("status") if info.get("status") != "ok" else "error: no result"})
        _checkpoint(checkpoint, result, qs, paths, say, label)
    check_answers(result, qs, paths, run_engine, say, label)
    return result


def _checkpoint(checkpoint, result, qs, paths, say, label) -> None:
    if checkpoint is None:
        return
    snap = copy.deepcopy(result)
    check_answers(snap, qs, paths, run_engine, lambda s: None, label, compute=False)
    checkpoint(snap)

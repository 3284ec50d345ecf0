"""Runs the questions on each engine: load, cold and warm runs, chk, memory, refusals.

For each engine, in turn: is it available here; would the tables fit the memory it
needs (else "refused: <reason>", before anything is loaded); load the tables (timed on
its own); run every question ``runs`` times (run 1 is "cold", the first after loading;
run 2 is "warm"); compute chk (row count and column sums) after each run, outside the
timing, as db-benchmark does; then free the tables. Answers are compared with polars
CPU's within 0.005 relative: a mismatch is "wrong" and never counts as a success.

With ``isolate=True`` each engine runs in a fresh interpreter, so GPU memory
pools, peak memory and crashes stay with the engine that caused them, and ``timeout``
can stop an engine that runs too long.
"""

from __future__ import annotations

import gc
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from workbench.bench import engines as E
from workbench.bench.memory import (DevicePeak, device_total, fit_reason, host_available,
                                    read_status_bytes, reset_peak_rss)
from workbench.bench.questions import DATASETS, TABLES, Question, questions

RTOL = 0.005
ATOL = 1e-6


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


# --- one engine ----------------------------------------------------------------------


def _error(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}".strip().splitlines()[0]
    return "error: " + msg[:300]


def run_engine(engine: E.Engine, paths: dict[str, Path], qs: list[Question], runs: int,
               emit: Callable[[str, dict], None]) -> None:
    """Load, run and check ``qs`` on ``engine``; every outcome goes through ``emit``."""
    gpu = engine.device == "gpu"
    reset_peak_rss()
    try:
        with DevicePeak(gpu) as dp:
            t0 = time.perf_counter()
            engine.load(paths)
            load_s = time.perf_counter() - t0
    except Exception as e:  # the engine cannot even load: every question shares it
        emit("load", {"status": _error(e), "traceback": traceback.format_exc()[-2000:]})
        engine.close()
        return
    emit("load", {"status": "ok", "seconds": load_s, "host_peak_bytes": read_status_bytes("VmHWM"),
                  "device_peak_bytes": dp.peak})
    for q in qs:
        rec: dict[str, Any] = {"question": q.id, "title": q.title, "times": []}
        reason = engine.supports(q)
        if reason:
            rec["status"] = f"unsupported: {reason}"
            emit("question", rec)
            continue
        rss0 = read_status_bytes("VmRSS")
        chks, notes = [], set()
        try:
            reset_peak_rss()
            with DevicePeak(gpu) as dp:
                for _ in range(runs):
                    gc.collect()
                    t0 = time.perf_counter()
                    ans = engine.run(q)
                    rec["times"].append(time.perf_counter() - t0)
                    notes.update(engine.notes())
                    chks.append(engine.chk(ans, q.chk))
                    del ans
            rec["status"] = "ok"
        except Exception as e:
            rec["status"] = _error(e)
            rec["traceback"] = traceback.format_exc()[-3000:]
        peak = read_status_bytes("VmHWM")
        rec["host_peak_bytes"] = peak
        rec["host_peak_delta_bytes"] = (peak - rss0) if peak and rss0 else None
        rec["device_peak_bytes"] = dp.peak
        stats = engine.device_stats()
        if stats:
            rec["device_stats"] = stats
        if chks:
            rec["rows"], rec["chk"] = chks[0]
            # every run must give the same answer; a run that differs is a wrong answer
            if any(not chk_matches(c, chks[0])[0] for c in chks[1:]):
                rec["status"] = "wrong: runs disagree"
        if notes:
            rec["notes"] = sorted(notes)
        emit("question", rec)
    engine.close()
    gc.collect()


def _child_main() -> None:
    """Entry of an isolated engine process: runs one engine, writes JSON lines to a pipe."""
    spec = json.loads(sys.argv[1])
    with os.fdopen(spec["fd"], "w", buffering=1) as out:
        def send(kind, rec):
            out.write(json.dumps([kind, rec], default=str) + "\n")

        try:
            engine = E.get_engine(spec["engine"])
            run_engine(engine, {k: Path(v) for k, v in spec["paths"].items()},
                       questions(spec["task"], spec["questions"]), spec["runs"], send)
            send("done", {})
        except BaseException as e:  # say why, then let the parent mark what is missing
            send("fatal", {"status": _error(e)})


def _run_isolated(name, paths, task, qs, runs, timeout, emit) -> None:
    """Run one engine in a fresh interpreter; its records come back over a pipe."""
    import selectors
    import subprocess

    import workbench

    r, w = os.pipe()
    spec = {"engine": name, "paths": {k: str(v) for k, v in paths.items()}, "task": task,
            "questions": [q.id for q in qs], "runs": runs, "fd": w}
    env = dict(os.environ)
    root = str(Path(workbench.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    cmd = [sys.executable, "-c", "from workbench.bench.runner import _child_main; _child_main()",
           json.dumps(spec)]
    proc = subprocess.Popen(cmd, pass_fds=(w,), env=env)
    os.close(w)
    sel = selectors.DefaultSelector()
    sel.register(r, selectors.EVENT_READ)
    deadline = None if timeout is None else time.monotonic() + timeout
    buf, why, finished = b"", None, False
    try:
        while not finished:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                why = f"timeout: engine stopped after {timeout:g} s"
                proc.kill()
                break
            if not sel.select(left):
                continue
            chunk = os.read(r, 1 << 16)
            if not chunk:
                proc.wait()
                why = f"error: engine process died (exit code {proc.returncode})"
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                kind, rec = json.loads(line)
                if kind == "done":
                    finished = True
                elif kind == "fatal":
                    why, finished = rec["status"], True
                else:
                    emit(kind, rec)
    finally:
        sel.close()
        os.close(r)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if why:
        emit("abort", {"status": why})


def _builtin(name: str) -> bool:
    cls = {c.name: c for c in (E.PolarsEngine, E.DuckDBEngine, E.PandasEngine,
                               E.PolarsGPUEngine, E.CudfEngine, E.WorkbenchEngine)}.get(name)
    return cls is not None and E._REGISTRY.get(name) is cls


# --- the suite -----------------------------------------------------------------------


def chk_matches(got: tuple[int, dict], ref: tuple[int, dict]) -> tuple[bool, str]:
    """Whether chk ``got`` equals ``ref``: same rows, sums within 0.005 relative."""
    if got[0] != ref[0]:
        return False, f"{got[0]} rows, expected {ref[0]}"
    for c, want in ref[1].items():
        have = got[1].get(c)
        if have is None or math.isnan(have) or math.isnan(want):
            if not (have is not None and math.isnan(have) and math.isnan(want)):
                return False, f"sum({c}) = {have}, expected {want}"
            continue
        if abs(have - want) > max(ATOL, RTOL * abs(want)):
            return False, f"sum({c}) = {have!r}, expected {want!r}"
    return True, ""


def _progress_line(label: str, engine: str, rec: dict) -> str:
    t = rec.get("times") or []
    times = "  ".join(f"{n} {v:8.3f} s" for n, v in zip(("cold", "warm"), t[:2]))
    return f"[{label}] {engine:<11} {rec.get('question', ''):<4} {times:<32} {rec['status']}"


def run_suite(task: str, rows: int, *, engines: list[str] | None = None,
              question_ids: list[str] | None = None, runs: int = 2, k: int = 100, na: int = 0,
              seed: int = 0, paths: dict[str, Path] | None = None,
              isolate: bool | None = None, timeout: float | dict[str, float] | None = None,
              skip: dict[str, str] | None = None, ram_bytes: int | None = None,
              device_bytes: int | None = None,
              progress: Callable[[str], None] | None = print) -> dict:
    """Run one task at one size on each engine; returns the results (see ``report``).

    ``skip`` maps engine names to a reason to record instead of running them (a time
    budget, say). ``timeout`` (seconds, or a dict of them by engine name, "" for the
    others) stops an isolated engine that runs longer. ``ram_bytes`` / ``device_bytes``
    replace the measured memory figures.
    """
    from workbench.bench.report import machine_info, now_utc

    qs = questions(task, question_ids)
    names = list(engines) if engines else E.engine_names()
    for n in names:
        E.get_engine(n)  # unknown names fail before any data is made
    if runs < 1:
        raise ValueError("runs must be at least 1")
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
        "paths": {n: str(p) for n, p in paths.items()}, "reference": E.REFERENCE,
        "tolerance": {"rtol": RTOL, "atol": ATOL}, "isolated": bool(isolate),
        "engines": {}, "results": [],
    }
    for name in names:
        eng = E.get_engine(name)
        info: dict[str, Any] = {"label": eng.label, "versions": eng.versions()}
        result["engines"][name] = info
        reason, kind = eng.available(), "unavailable"
        if reason is None and name in skip:
            reason, kind = skip[name], "skipped"
        if reason is None:
            host = ram_bytes if ram_bytes is not None else host_available()
            reason, kind = fit_reason(eng, total_bytes, host, device), "refused"
        if reason is not None:
            info["status"] = f"{kind}: {reason}"
            say(f"[{label}] {name:<11} {info['status']}")
            for q in qs:
                result["results"].append({"engine": name, "question": q.id, "title": q.title,
                                          "status": info["status"], "times": []})
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
                say(f"[{label}] {name:<11} load {rec.get('seconds') or 0:8.3f} s  {rec['status']}")
            elif kind == "question":
                got[rec["question"]] = {"engine": name, **rec}
                say(_progress_line(label, name, rec))
            elif kind == "abort":
                info["status"] = rec["status"]
                say(f"[{label}] {name:<11} {rec['status']}")

        if isolate and _builtin(name):
            limit = timeout.get(name, timeout.get("")) if isinstance(timeout, dict) else timeout
            _run_isolated(name, paths, task, qs, runs, limit, emit)
        else:
            run_engine(eng, paths, qs, runs, emit)
        del eng
        gc.collect()
        for q in qs:
            result["results"].append(got.get(q.id) or {
                "engine": name, "question": q.id, "title": q.title, "times": [],
                "status": info.get("status") if info.get("status") != "ok" else "error: no result"})
    _check_answers(result, qs, paths, runs, say, label)
    return result


def _check_answers(result: dict, qs, paths, runs, say, label) -> None:
    ref = {r["question"]: r for r in result["results"]
           if r["engine"] == E.REFERENCE and r["status"] == "ok" and "chk" in r}
    missing = [q for q in qs if q.id not in ref]
    if missing and E.REFERENCE not in result["engines"]:
        # polars is the reference even when it is not benchmarked: answer, untimed.
        recs: dict[str, dict] = {}
        eng = E.get_engine(E.REFERENCE)
        if fit_reason(eng, result["table_bytes"], host_available(), None) is None:
            say(f"[{label}] computing reference answers with polars CPU ...")
            run_engine(eng, paths, missing, 1,
                       lambda kind, rec: recs.__setitem__(rec.get("question", "_"), rec))
            ref.update({k: v for k, v in recs.items() if v.get("status") == "ok" and "chk" in v})
    for r in result["results"]:
        if r["status"] != "ok" or r["engine"] == E.REFERENCE or "chk" not in r:
            continue
        want = ref.get(r["question"])
        if want is None:
            r["status"] = "unchecked: no reference answer"
            continue
        ok, why = chk_matches((r["rows"], r["chk"]), (want["rows"], want["chk"]))
        if not ok:
            r["status"] = f"wrong: {why}"
            say(f"[{label}] {r['engine']} {r['question']} WRONG: {why}")

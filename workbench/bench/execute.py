"""Running one engine: load, cold and warm runs, chk, memory; in-process or isolated.

:func:`run_engine` does the work and reports every outcome through ``emit(kind, rec)``
(``"load"``, then one ``"question"`` per question). :func:`run_isolated` runs it in a
fresh interpreter, so GPU memory pools, peak memory and crashes stay with the engine
that caused them and a timeout can stop it; the records come back over a pipe.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from workbench.bench import engines as E
from workbench.bench.check import chk_matches
from workbench.bench.memory import DevicePeak, read_status_bytes, reset_peak_rss
from workbench.bench.questions import Question, questions
from workbench.config import BUDGET as ENV_BUDGET  # set for every engine process of a budget run


def _oom_fallback(notes: set[str]) -> str | None:
    """The note of a GPU engine that ran out of device memory and went on on the CPU."""
    for n in sorted(notes):
        if "on the CPU" in n and E.is_out_of_memory(n):
            return n
    return None


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
        emit("load", {"status": E.error_status(e, gpu), "traceback": traceback.format_exc()[-2000:]})
        engine.close()
        return
    emit("load", {"status": "ok", "seconds": load_s, "host_peak_bytes": read_status_bytes("VmHWM"),
                  "device_peak_bytes": dp.peak, "setup": engine.setup()})
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
            engine.question_started()
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
            rec["status"] = E.error_status(e, gpu)
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
            if rec["status"] == "ok" and any(not chk_matches(c, chks[0])[0] for c in chks[1:]):
                rec["status"] = "wrong: runs disagree"
        oom = _oom_fallback(notes) if gpu else None
        if oom and rec["status"] == "ok":
            # The answer came from the CPU after the device ran out of memory: that is
            # the engine's fallback working, not the GPU answering.
            rec["status"] = "error: out of memory on the GPU (answered on the CPU instead): " + oom[:300]
        if notes:
            rec["notes"] = sorted(notes)
        emit("question", rec)
    engine.close()
    gc.collect()


def child_main() -> None:
    """Entry of an isolated engine process: runs one engine, writes JSON lines to a pipe."""
    spec = json.loads(sys.argv[1])
    with os.fdopen(spec["fd"], "w", buffering=1) as out:
        def send(kind, rec):
            out.write(json.dumps([kind, rec], default=str) + "\n")

        try:
            engine = E.get_engine(spec["engine"], spec.get("gpu_budget"))
            run_engine(engine, {k: Path(v) for k, v in spec["paths"].items()},
                       questions(spec["task"], spec["questions"]), spec["runs"], send)
            send("done", {})
        except BaseException as e:  # say why, then let the parent mark what is missing
            send("fatal", {"status": E.error_status(e)})


def _tee(stream, keep: collections.deque) -> None:
    """Copy an engine process's stderr to ours, keeping its last lines."""
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        keep.append(line.rstrip())
        try:
            sys.stderr.write(line)
        except Exception:
            pass
    stream.close()


def run_isolated(name: str, paths: dict[str, Path], task: str, qs: list[Question], runs: int,
                 timeout: float | None, emit: Callable[[str, dict], None],
                 gpu_budget: int | None = None) -> None:
    """Run one engine in a fresh interpreter; its records come back over a pipe.

    With ``gpu_budget`` the process starts with ``WORKBENCH_GPU_BUDGET`` set to it, so
    the workbench's session sees the budget from its first line. A process that dies
    is recorded as an error, as out of memory when its last words say so.
    """
    import selectors
    import subprocess

    import workbench

    r, w = os.pipe()
    spec = {"engine": name, "paths": {k: str(v) for k, v in paths.items()}, "task": task,
            "questions": [q.id for q in qs], "runs": runs, "fd": w, "gpu_budget": gpu_budget}
    env = dict(os.environ)
    if gpu_budget:
        env[ENV_BUDGET] = str(int(gpu_budget))
    root = str(Path(workbench.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    cmd = [sys.executable, "-c", "from workbench.bench.execute import child_main; child_main()",
           json.dumps(spec)]
    proc = subprocess.Popen(cmd, pass_fds=(w,), env=env, stderr=subprocess.PIPE)
    os.close(w)
    last_words: collections.deque = collections.deque(maxlen=40)
    tee = threading.Thread(target=_tee, args=(proc.stderr, last_words), daemon=True)
    tee.start()
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
                tee.join(timeout=5)
                why = f"error: engine process died (exit code {proc.returncode})"
                oom = next((ln for ln in reversed(last_words) if E.is_out_of_memory(ln)), None)
                if oom:
                    why = (f"error: out of memory: engine process died "
                           f"(exit code {proc.returncode}): {oom[:300]}")
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
    except BaseException:
        # stopped (SIGTERM, Ctrl-C) or failed: the engine must not run on without us
        proc.kill()
        raise
    finally:
        sel.close()
        os.close(r)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        tee.join(timeout=5)
    if why:
        emit("abort", {"status": why})

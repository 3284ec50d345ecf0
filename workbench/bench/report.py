"""Results: the machine and versions, JSON files, a Markdown table and a PNG plot.

Only answers that passed the check ("ok") count anywhere: totals, speed-ups and bars.
Every other outcome is shown as a mark in the table and listed under it with its reason.
Files are written under a temporary name and renamed once complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

#: One colour per engine, the same in every plot (the CLI's and the lessons'): CPU
#: engines in blues, amber and purple, GPU engines in teal, green and red.
ENGINE_COLORS = {
    "polars": "#1f77b4", "polars-streaming": "#6baed6", "duckdb": "#e6a700",
    "pandas": "#9467bd", "polars-gpu": "#17becf", "cudf": "#76b900", "workbench": "#d62728",
}
#: colours for engines outside the map (registered ones), in turn
OTHER_COLORS = ("#7f7f7f", "#8c564b", "#e377c2", "#bcbd22", "#393b79", "#637939")

_MARKS = {"wrong": "✗ wrong", "unsupported": "unsupported", "refused": "refused",
          "unavailable": "n/a", "skipped": "skipped", "timeout": "timeout",
          "error": "error", "unchecked": "unchecked"}


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")


def versions() -> dict[str, str]:
    """The installed stack (the doctor's list), without the packages that are absent."""
    from workbench.diagnostics.versions import stack_versions

    return {k: v for k, v in stack_versions().items() if v is not None}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU, cores, RAM, GPUs and driver (NVML), OS: what a result needs to be read."""
    info: dict[str, Any] = {"cpu": _cpu_model(), "logical_cores": os.cpu_count(),
                            "os": platform.platform(), "python": sys.version.split()[0],
                            "gpus": []}
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["ram_bytes"] = int(psutil.virtual_memory().total)
    except Exception:
        pass
    from workbench.hardware import detect

    profile = detect()
    if profile.driver_version:
        info["driver"] = profile.driver_version
    if profile.cuda_driver_version:
        info["cuda_driver"] = "{}.{}".format(*profile.cuda_driver_version)
    info["gpus"] = [{"name": g.name, "memory_bytes": g.total_memory} for g in profile.gpus]
    info["versions"] = versions()
    return info


def device_label(result: dict) -> str:
    m = result.get("machine", {})
    cores = m.get("logical_cores")
    cpu = f"{m.get('cpu', '?')} ({cores} cores)" if cores else m.get("cpu", "?")
    if m.get("gpus"):
        return f"{m['gpus'][0]['name']}, {cpu}"
    return cpu


def rows_label(rows: int) -> str:
    e = len(str(rows)) - 1
    return f"1e{e}" if rows == 10**e else f"{rows:.1e}".replace("e+0", "e").replace("e+", "e")


# --- files -----------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> Path:
    """``data`` written to ``path`` under a temporary name, renamed when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def stamp(result: dict) -> str:
    return result["date"].replace("-", "").replace(":", "")


def write_json(result: dict, out: str | Path) -> Path:
    name = f"bench-{result['task']}-{rows_label(result['rows'])}-{stamp(result)}.json"
    data = json.dumps(result, indent=1, default=str).encode()
    return write_atomic(Path(out) / name, data)


def load_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


# --- tables ----------------------------------------------------------------------------


def _kind(status: str) -> str:
    return status.split(":", 1)[0].strip()


def _time(rec: dict, which: str) -> float | None:
    t = rec.get("times") or []
    if which == "cold":
        return t[0] if t else None
    # warm: the best of the runs after the first (run 2 with the default two runs)
    return min(t[1:]) if len(t) > 1 else None


def _grid(result: dict) -> tuple[list[str], list[str], dict]:
    engines = list(result["engines"])
    qs: list[str] = []
    cell = {}
    for r in result["results"]:
        if r["question"] not in qs:
            qs.append(r["question"])
        cell[(r["engine"], r["question"])] = r
    return engines, qs, cell


def summary(result: dict, which: str = "warm", subset: list[str] | None = None,
            ref: str | None = None) -> dict:
    """Per engine: total seconds over its answered questions and speed-up vs ``ref``.

    The speed-up (default: vs polars CPU) divides ``ref``'s total by the engine's, both
    over the questions that both answered correctly; ``speedup_over`` says how many.
    """
    engines, qs, cell = _grid(result)
    qs = [q for q in qs if subset is None or q in subset]
    ref = ref or result.get("reference", "polars")

    def ok_times(e):
        out = {}
        for q in qs:
            r = cell.get((e, q))
            if r and r["status"] == "ok" and _time(r, which) is not None:
                out[q] = _time(r, which)
        return out

    ref_t = ok_times(ref) if ref in engines else {}
    out = {}
    for e in engines:
        t = ok_times(e)
        common = [q for q in t if q in ref_t]
        sp = (sum(ref_t[q] for q in common) / sum(t[q] for q in common)) if common and sum(
            t[q] for q in common) > 0 else None
        out[e] = {"total": sum(t.values()) if t else None, "answered": len(t), "of": len(qs),
                  "speedup": sp, "speedup_over": len(common)}
    return out


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def _fmt_x(v: float) -> str:
    return f"{v:.1f}×" if v >= 0.95 else f"{v:.2g}×"


def budget_label(nbytes: int) -> str:
    """A GPU budget for people: ``2 GB``, ``256 MB``, ``1.5 GB`` (powers of 1000)."""
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes} B"


def on_cpu(result: dict, engine: str = "workbench") -> bool:
    """Whether the workbench engine ran without a GPU: then it is polars on the CPU."""
    return engine == "workbench" and result["engines"].get(engine, {}).get("device") == "cpu"


def engine_label(result: dict, engine: str) -> str:
    """The engine's name in tables and plots; the workbench without a GPU says what it ran."""
    label = result["engines"].get(engine, {}).get("label", engine)
    return f"{label} (polars on CPU)" if on_cpu(result, engine) else label


CPU_NOTE = ("There is no GPU here, so the workbench ran polars on the CPU: its column is "
            "polars CPU measured a second time (the table held as the Frame's Arrow copy), "
            "and its ratio to polars CPU is noise and layout, not a speed-up.")


def reference_label(result: dict) -> str:
    """Who the answers were checked against, e.g. ``polars CPU streaming (untimed)``."""
    ref = result.get("reference", "polars")
    label = result["engines"].get(ref, {}).get("label")
    if label is None:
        from workbench.bench import engines as E

        try:
            label = E.get_engine(ref).label
        except ValueError:
            label = ref
    timed = (result.get("reference_choice") or {}).get("timed", True)
    return label if timed else f"{label} (untimed)"


def markdown(result: dict) -> str:
    """One Markdown section: questions × engines, warm seconds, totals and speed-ups."""
    engines, qs, cell = _grid(result)
    which = "warm" if result.get("runs", 2) > 1 else "cold"
    labels = [engine_label(result, e) for e in engines]
    budget = result.get("gpu_budget")
    choice = result.get("reference_choice") or {}
    lines = [f"### {result['task']} {rows_label(result['rows'])} rows"
             + (f" (k={result['k']})" if result["task"] == "groupby" else "")
             + (f", GPU budget {budget_label(budget)}" if budget else "")
             + f" — {device_label(result)} — {result['date'][:10]}", "",
             f"{which.capitalize()} run, seconds (lower is better). Answers checked against "
             f"{reference_label(result)} (rows and column sums within "
             f"{result['tolerance']['rtol']:g} relative"
             + (f"; {choice['why']}" if choice.get("engine", "polars") != "polars" else "")
             + "); only checked answers count in totals and speed-ups."
             + (f" GPU engines ran within a {budget_label(budget)} device-memory budget "
                f"({_budget_how(result)})." if budget else ""), "",
             "| question | " + " | ".join(labels) + " |",
             "|---|" + "---:|" * len(engines)]
    for q in qs:
        row = []
        for e in engines:
            r = cell.get((e, q))
            if r is None:
                row.append("")
            elif r["status"] == "ok":
                row.append(_fmt_s(_time(r, which)))
            else:
                k = _kind(r["status"])
                row.append(_MARKS.get(k, k))
        lines.append(f"| {q} | " + " | ".join(row) + " |")

    def total_row(title, which_, subset=None, with_load=False):
        s = summary(result, which_, subset)
        vals = []
        for e in engines:
            t = s[e]["total"]
            if t is not None and with_load:
                t += result["engines"][e].get("load_seconds") or 0.0
            mark = "" if s[e]["answered"] == s[e]["of"] else f" ({s[e]['answered']}/{s[e]['of']})"
            vals.append(f"**{_fmt_s(t)}**{mark}" if t is not None else "—")
        lines.append(f"| {title} | " + " | ".join(vals) + " |")
        return s

    n = len(qs)
    span = f"{qs[0]}–{qs[-1]}" if qs else ""
    total_row(f"total {span}", which)
    if result["task"] == "groupby" and "q9" in qs and n > 1:
        total_row("total without q9", which, [q for q in qs if q != "q9"])

    def speedup_row(ref):
        sr = summary(result, which, ref=ref)
        vals = []
        for e in engines:
            v, k = sr[e]["speedup"], sr[e]["speedup_over"]
            vals.append("—" if v is None else _fmt_x(v) + ("" if k == n else f" ({k}/{n})"))
        lines.append(f"| speed-up vs {engine_label(result, ref)} | " + " | ".join(vals) + " |")

    ref = result.get("reference", "polars")
    if ref in engines:
        speedup_row(ref)
    if "duckdb" in engines and ref != "duckdb":
        speedup_row("duckdb")
    if result.get("runs", 2) > 1:
        total_row("cold total + load", "cold", with_load=True)
    lines.append("| load (s) | " + " | ".join(
        _fmt_s(result["engines"][e].get("load_seconds")) for e in engines) + " |")
    foot = []
    for e in engines:
        lab = engine_label(result, e)
        bad = [(q, cell[(e, q)]["status"]) for q in qs
               if (e, q) in cell and cell[(e, q)]["status"] != "ok"]
        if bad and len(bad) == len(qs) and len({st for _, st in bad}) == 1:
            foot.append(f"- {lab}: {bad[0][1]}")
        else:
            foot.extend(f"- {lab} {q}: {st}" for q, st in bad)
        notes: dict[str, list[str]] = {}
        for q in qs:
            for n_ in cell.get((e, q), {}).get("notes", []):
                notes.setdefault(" ".join(n_.split()), []).append(q)
        foot.extend(f"- {lab} ({', '.join(v)}): {k}" for k, v in list(notes.items())[:5])
    if on_cpu(result):
        foot.append(f"- {CPU_NOTE}")
    if foot:
        lines.append("")
        lines.extend(f if len(f) <= 400 else f[:399] + "…" for f in foot)
    return "\n".join(lines) + "\n"


def _budget_how(result: dict) -> str:
    how = {"polars-gpu": "streaming executor over the Parquet files, LimitingResourceAdaptor",
           "cudf": "LimitingResourceAdaptor", "workbench": "WORKBENCH_GPU_BUDGET"}
    parts = [f"{info.get('label', e)}: {how[e]}" for e, info in result["engines"].items()
             if e in how]
    return "; ".join(parts) or "no GPU engine among the engines"


def markdown_all(results: list[dict]) -> str:
    return "\n".join(markdown(r) for r in results)


def write_markdown(results: list[dict], path: str | Path) -> Path:
    return write_atomic(Path(path), markdown_all(results).encode())


# --- plot and terminal ------------------------------------------------------------------


def plot(results: list[dict], path: str | Path) -> Path:
    """Speed-up vs the reference per question and in total (log scale), one panel per run
    (see :mod:`workbench.bench.plot`)."""
    from workbench.bench.plot import plot as _plot

    return _plot(results, path)


def terminal_table(results: list[dict], console=None) -> None:
    """The Markdown tables, aligned by rich on a terminal; as plain Markdown otherwise
    (a file or a pipe gets text that pastes into an issue or a README)."""
    from rich.console import Console
    from rich.markdown import Markdown

    console = console or Console()
    text = markdown_all(results)
    if console.is_terminal:
        console.print(Markdown(text))
    else:
        console.file.write(text + "\n")
        console.file.flush()


def render(jsons: list[str | Path], out: str | Path, name: str) -> dict[str, str]:
    """One Markdown table and one PNG from result JSON files (of one or several runs)."""
    results = sorted((load_json(p) for p in jsons), key=lambda r: (r["task"] != "groupby",
                                                                   r["task"], r["rows"]))
    out = Path(out)
    return {"markdown": str(write_markdown(results, out / f"{name}.md")),
            "png": str(plot(results, out / f"{name}.png"))}


def write_all(results: list[dict], out: str | Path, name: str | None = None) -> dict[str, Any]:
    """JSON per run, plus one Markdown and one PNG for all of them; returns the paths."""
    out = Path(out)
    files = {"json": [str(write_json(r, out)) for r in results]}
    if results:
        base = name or f"bench-{stamp(results[0])}"
        files["markdown"] = str(write_markdown(results, out / f"{base}.md"))
        files["png"] = str(plot(results, out / f"{base}.png"))
    return files

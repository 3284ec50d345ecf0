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


def _write_atomic(path: Path, data: bytes) -> Path:
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
    return _write_atomic(Path(out) / name, data)


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
    labels = [result["engines"][e].get("label", e) for e in engines]
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
        label = result["engines"][ref].get("label", ref)
        lines.append(f"| speed-up vs {label} | " + " | ".join(vals) + " |")

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
        lab = result["engines"][e].get("label", e)
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
    return _write_atomic(Path(path), markdown_all(results).encode())


# --- plot ------------------------------------------------------------------------------


def plot(results: list[dict], path: str | Path) -> Path:
    """Speed-up vs the reference per question and in total (log scale), one panel per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    n = len(results)
    # one colour per engine across every panel, so a bar means the same engine everywhere
    names = sorted({e for res in results for e in res["engines"]})
    colour = {e: plt.get_cmap("tab10")(i % 10) for i, e in enumerate(names)}
    fig, axes = plt.subplots(n, 1, figsize=(11, 3.6 * n), squeeze=False)
    for ax, res in zip(axes[:, 0], results):
        engines, qs, cell = _grid(res)
        which = "warm" if res.get("runs", 2) > 1 else "cold"
        ref = res.get("reference", "polars")
        others = [e for e in engines if e != ref and any(
            cell.get((e, q), {}).get("status") == "ok" for q in qs)]
        s = summary(res, which)
        groups = qs + ["total"]
        width = 0.8 / max(1, len(others))
        for i, e in enumerate(others):
            ys = []
            for q in qs:
                r, rr = cell.get((e, q)), cell.get((ref, q))
                ok = r and rr and r["status"] == "ok" and rr["status"] == "ok"
                t, tr = (_time(r, which), _time(rr, which)) if ok else (None, None)
                ys.append(tr / t if t and tr else float("nan"))
            ys.append(s[e]["speedup"] or float("nan"))
            xs = [j + (i - (len(others) - 1) / 2) * width for j in range(len(groups))]
            ax.bar(xs, ys, width, label=res["engines"][e].get("label", e), color=colour[e])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylabel(f"speed-up vs {reference_label(res)} ({which})")
        budget = f", GPU budget {budget_label(res['gpu_budget'])}" if res.get("gpu_budget") else ""
        ax.set_title(f"{res['task']} {rows_label(res['rows'])} rows{budget} — {device_label(res)} — "
                     f"{res['date'][:10]}", fontsize=10)
        if others:
            ax.legend(fontsize=8, ncol=min(5, len(others)))
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


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

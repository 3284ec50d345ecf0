"""The benchmark plot: each engine's speed-up over the reference, per question and in total.

Log scale, so 10x faster and 10x slower are the same distance from the line at 1x; the
ticks are 1-2-5 steps (0.5x, 1x, 2x, 5x...) and the axis always spans at least 0.5x-2x,
so every bar can be read against a labelled tick. Each engine keeps its colour
(:data:`~workbench.bench.report.ENGINE_COLORS`) in every panel and every plot.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

from workbench.bench.report import (CPU_NOTE, ENGINE_COLORS, OTHER_COLORS, _grid, _time,
                                    budget_label, device_label, engine_label, on_cpu,
                                    reference_label, rows_label, summary)


def colors(engines) -> dict[str, str]:
    """A colour per engine: the map's, then the spare colours in turn for others."""
    others = iter(OTHER_COLORS * (1 + len(list(engines)) // len(OTHER_COLORS)))
    return {e: ENGINE_COLORS.get(e) or next(others) for e in engines}


def log_ticks(lo: float, hi: float) -> tuple[list[float], tuple[float, float]]:
    """Tick values (1-2-5 per decade, decades only when that is too many) and the limits
    of an axis showing ``lo``..``hi`` with 1x in sight and at least 0.5x..2x."""
    lo, hi = min(lo / 1.3, 0.5), max(hi * 1.3, 2.0)
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for steps in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0**d for d in range(first, last + 1) for m in steps]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) <= 12:
            return ticks, (lo, hi)
    return ticks, (lo, hi)


def tick_label(v: float) -> str:
    return f"{v:g}×" if v >= 0.01 else f"{v:.0e}×"


def speedups(res: dict) -> tuple[list[str], list[str], dict[str, list[float]]]:
    """Questions (+ "total"), the engines other than the reference with an answer, and
    each one's speed-ups (nan where it or the reference has no checked answer)."""
    engines, qs, cell = _grid(res)
    which = "warm" if res.get("runs", 2) > 1 else "cold"
    ref = res.get("reference", "polars")
    others = [e for e in engines if e != ref and any(
        cell.get((e, q), {}).get("status") == "ok" for q in qs)]
    s = summary(res, which)
    out = {}
    for e in others:
        ys = []
        for q in qs:
            r, rr = cell.get((e, q)), cell.get((ref, q))
            ok = r and rr and r["status"] == "ok" and rr["status"] == "ok"
            t, tr = (_time(r, which), _time(rr, which)) if ok else (None, None)
            ys.append(tr / t if t and tr else float("nan"))
        ys.append(s[e]["speedup"] or float("nan"))
        out[e] = ys
    return qs + ["total"], others, out


def figure(results: list[dict]):
    """The matplotlib figure of :func:`plot` (one panel per result), not yet saved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    colour = colors(sorted({e for res in results for e in res["engines"]}))
    fig, axes = plt.subplots(len(results), 1, figsize=(11, 3.9 * len(results)), squeeze=False)
    for ax, res in zip(axes[:, 0], results):
        groups, others, ys = speedups(res)
        which = "warm" if res.get("runs", 2) > 1 else "cold"
        width = 0.8 / max(1, len(others))
        for i, e in enumerate(others):
            xs = [j + (i - (len(others) - 1) / 2) * width for j in range(len(groups))]
            ax.bar(xs, ys[e], width, label=engine_label(res, e), color=colour[e])
        seen = [v for e in others for v in ys[e] if v == v and v > 0]
        ticks, limits = log_ticks(min(seen, default=1.0), max(seen, default=1.0))
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_ylim(*limits)
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: tick_label(v)))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(range(len(groups)), groups)
        ax.set_xlabel("question (warm run: the best after the first)" if which == "warm"
                      else "question (cold run)")
        ax.set_ylabel(f"speed-up vs {reference_label(res)}\n(above 1× is faster)", fontsize=9)
        budget = f", GPU budget {budget_label(res['gpu_budget'])}" if res.get("gpu_budget") else ""
        ax.set_title(f"{res['task']} {rows_label(res['rows'])} rows{budget} — {device_label(res)} — "
                     f"{res['date'][:10]}", fontsize=10)
        if others:  # beside the panel, where it hides no bar
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        if on_cpu(res):
            ax.annotate(textwrap.fill(CPU_NOTE, 140), (0, 0), xytext=(0, -34),
                        xycoords="axes fraction", textcoords="offset points", va="top",
                        fontsize=7.5, color="#444444")
        ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    return fig


def plot(results: list[dict], path: str | Path) -> Path:
    """Write the figure as a PNG (under a temporary name, renamed when complete)."""
    import matplotlib.pyplot as plt

    fig = figure(results)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path

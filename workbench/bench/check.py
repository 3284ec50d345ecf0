"""Answer checks: which engine is the reference, and does each answer match it.

The reference is polars CPU (in memory) when it ran. When it did not (refused for
memory, skipped, timed out), polars CPU streaming is, when it ran. When neither ran,
the reference answers are computed once, untimed: by polars CPU when the tables fit
its memory, else by polars CPU streaming. The choice and the reason go into the
results (``reference``, ``reference_choice``).
"""

from __future__ import annotations

import math
from typing import Callable

from workbench.bench import engines as E
from workbench.bench.memory import fit_reason, host_available

RTOL = 0.005
ATOL = 1e-6


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


def _label(name: str) -> str:
    try:
        return E.get_engine(name).label
    except ValueError:
        return name


def choose_reference(result: dict) -> dict:
    """The reference engine of a finished run: ``{"engine", "timed", "why"}``.

    ``timed`` is False when no candidate ran as a benchmarked engine and the
    reference answers must be computed apart (see the module docstring).
    """
    engines = result["engines"]
    first, second = E.REFERENCE, E.STREAMING_REFERENCE
    if engines.get(first, {}).get("status") == "ok":
        return {"engine": first, "timed": True, "why": f"{_label(first)} ran"}
    not_first = (f"{_label(first)} {engines[first]['status']}" if first in engines
                 else f"{_label(first)} is not among the engines")
    if engines.get(second, {}).get("status") == "ok":
        return {"engine": second, "timed": True, "why": not_first}
    if first not in engines:
        eng = E.get_engine(first)
        refused = fit_reason(eng, result["table_bytes"], host_available(), None)
        if refused is None:
            return {"engine": first, "timed": False,
                    "why": f"{not_first}: its answers are computed once, untimed"}
        not_first = f"{_label(first)} would be refused: {refused}"
    return {"engine": second, "timed": False,
            "why": f"{not_first}: answers of {_label(second)} computed once, untimed"}


def check_answers(result: dict, qs, paths, run_engine: Callable, say: Callable[[str], None],
                  label: str, compute: bool = True) -> None:
    """Choose the reference, then mark every other answer ``wrong: ...`` that differs.

    ``compute=False`` leaves answers without a benchmarked reference ``unchecked``
    (for snapshots of a run still going on) instead of computing them.
    """
    choice = choose_reference(result)
    ref_name = choice["engine"]
    result["reference"], result["reference_choice"] = ref_name, choice
    ref = {r["question"]: r for r in result["results"]
           if r["engine"] == ref_name and r["status"] == "ok" and "chk" in r}
    missing = [q for q in qs if q.id not in ref]
    if missing and not choice["timed"] and compute:
        recs: dict[str, dict] = {}
        say(f"[{label}] computing reference answers with {_label(ref_name)} ...")
        run_engine(E.get_engine(ref_name), paths, missing, 1,
                   lambda kind, rec: recs.__setitem__(rec.get("question", "_"), rec))
        ref.update({k: v for k, v in recs.items() if v.get("status") == "ok" and "chk" in v})
    for r in result["results"]:
        if r["status"] != "ok" or r["engine"] == ref_name or "chk" not in r:
            continue
        want = ref.get(r["question"])
        if want is None:
            r["status"] = "unchecked: no reference answer"
            continue
        ok, why = chk_matches((r["rows"], r["chk"]), (want["rows"], want["chk"]))
        if not ok:
            r["status"] = f"wrong: {why}"
            say(f"[{label}] {r['engine']} {r['question']} WRONG: {why}")

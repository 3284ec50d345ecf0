"""The lessons' exercise checks (registered with :func:`workbench.lab.exercises.exercise`).

Each check states properties of a right answer and compares against the lesson's
data recomputed by polars on the CPU, or against the digest of an answer that does not
depend on the data. A failed property raises :class:`WrongAnswer` with a hint that
points at the idea, never at the value.
"""

from __future__ import annotations

import numpy as np

from workbench.lab.exercises import WrongAnswer, close, exercise, number, same_digest, same_rows

LEAKS = {"tip_amount", "total_amount"}


def _model(answer, what="the answer"):
    for attr in ("features", "target", "metrics"):
        if not hasattr(answer, attr):
            raise WrongAnswer(f"{what} should be the model wb.ml.fit returned; "
                              f"got {type(answer).__name__}")
    return answer


def _names(answer, what: str) -> list[str]:
    if isinstance(answer, str) or not hasattr(answer, "__iter__"):
        raise WrongAnswer(f"{what} should be a list of names; got {type(answer).__name__}")
    return [str(a) for a in answer]


def _lazy(data):
    import polars as pl

    if isinstance(data, pl.LazyFrame):
        return data
    if isinstance(data, pl.DataFrame):
        return data.lazy()
    return data.to_polars().lazy()


# --- lesson 1: one copy ------------------------------------------------------------

@exercise("lesson-1/ex-1", "fit the tip model again without is_card (baseline=tip)", ("baseline",))
def _tip_without_card(answer, *, baseline):
    model, baseline = _model(answer), _model(baseline, "baseline")
    if model.target != baseline.target:
        raise WrongAnswer(f"predict the same target as the baseline ({baseline.target!r})")
    if "is_card" in model.features:
        raise WrongAnswer("the model still has is_card among its features")
    if set(model.features) != set(baseline.features) - {"is_card"}:
        raise WrongAnswer("keep every other feature of the baseline, so that only is_card changes")
    if model.metrics["auc"] > baseline.metrics["auc"] - 0.05:
        raise WrongAnswer("its AUC should fall well below the baseline's: was it fitted on the "
                          "same frame?")


@exercise("lesson-1/ex-2", "after fare_amount changes, the columns section 5's question copies "
          "to the GPU: a dict {'discrete': [...], 'dgx-spark': [...]}")
def _copied_again(answer):
    if not isinstance(answer, dict) or set(answer) != {"discrete", "dgx-spark"}:
        raise WrongAnswer("answer with a dict with two keys, 'discrete' and 'dgx-spark', each a "
                          "list of column names")
    same_digest(_names(answer["discrete"], "'discrete'"),
                "bf1c2c03dd10134ef33d133c8998c4ec1b15d7e8a8f73a234cca056c573e2949",
                "on a discrete GPU: which of the query's columns are resident, and which "
                "one's values changed? (section 4's table)")
    same_digest(_names(answer["dgx-spark"], "'dgx-spark'"),
                "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
                "on DGX Spark the GPU reads host memory in place: what is ever copied?")


@exercise("lesson-1/ex-3", "the mean fare per mile by hour and airport (data=features)", ("data",))
def _fare_per_mile(answer, *, data):
    import polars as pl

    reference = (_lazy(data).group_by("hour", "airport")
                 .agg(fare_per_mile=(pl.col("fare_amount") / pl.col("trip_distance")).mean()).collect())
    same_rows(answer, reference, rel=1e-6)


# --- lesson 2: how fast ------------------------------------------------------------

@exercise("lesson-2/ex-1", "the engine with the largest total cold-minus-warm time "
          "(results=res)", ("results",))
def _largest_warm_up(answer, *, results):
    gaps: dict[str, float] = {}
    for rec in results["results"]:
        if rec.get("status") == "ok" and len(rec.get("times") or []) >= 2:
            gaps[rec["engine"]] = gaps.get(rec["engine"], 0.0) + rec["times"][0] - rec["times"][1]
    if str(answer) not in gaps:
        raise WrongAnswer(f"answer with one of the engines that ran: {', '.join(sorted(gaps))}")
    if gaps[str(answer)] < max(gaps.values()):
        raise WrongAnswer("add up cold minus warm over all the questions, per engine")


@exercise("lesson-2/ex-2", "a function r2(v1, v2) from per-group sums (no corr), equal to pl.corr squared")
def _r2_from_sums(answer):
    if not callable(answer):
        raise WrongAnswer("answer with a function of two arrays, e.g. def r2(v1, v2): ...")
    rng = np.random.default_rng(7)
    cases = [(rng.integers(1, 6, 50), rng.integers(1, 16, 50)),
             (rng.normal(size=200), rng.normal(size=200) * 3 + 1)]
    x = rng.normal(size=100)
    cases.append((x, 2 * x + rng.normal(scale=0.1, size=100)))
    for v1, v2 in cases:
        want = float(np.corrcoef(v1, v2)[0, 1] ** 2)
        try:
            got = answer(v1.astype(float), v2.astype(float))
        except Exception as err:  # the student's code: say what went wrong
            raise WrongAnswer(f"your function raised {type(err).__name__}: {err}") from None
        close(got, want, "r2 of two test groups", rel=1e-6, abs=1e-9,
              hint="Write the correlation with n and the sums of x, y, x², y² and xy")


# --- lesson 3: larger than the GPU -------------------------------------------------

@exercise("lesson-3/ex-1", "the smallest budget (bytes) with id3, v1 and v3 resident (data=x)", ("data",))
def _resident_line(answer, *, data):
    sizes = dict(data.placement().select("column", "bytes").iter_rows())
    close(answer, 2 * sum(sizes[c] for c in ("id3", "v1", "v3")), "the budget", rel=0.05,
          hint="Columns stay resident while they fit half the budget")


@exercise("lesson-3/ex-2", "the median of v3 by id4 and id5 (data=x)", ("data",))
def _median(answer, *, data):
    import polars as pl

    same_rows(answer, _lazy(data).group_by("id4", "id5").agg(pl.col("v3").median()).collect(),
              rel=1e-9)

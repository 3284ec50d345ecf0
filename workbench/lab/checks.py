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


# --- lesson 4: preprocessing in polars, training on the GPU ------------------------

@exercise("lesson-4/ex-1", "the frame with a speed_mph column: miles per hour of each trip "
          "(data=features)", ("data",))
def _speed(answer, *, data):
    got = same_height(answer, data)
    for column in ("trip_distance", "duration_min", "speed_mph"):
        if column not in got.columns:
            raise WrongAnswer(f"keep the column {column!r} in the frame")
    want = got["trip_distance"].to_numpy() / (got["duration_min"].to_numpy() / 60)
    if not np.allclose(got["speed_mph"].to_numpy(), want, rtol=1e-5):
        raise WrongAnswer("speed_mph should be miles per hour: the duration is in minutes")


def same_height(answer, data):
    from workbench.lab.exercises import polars_frame

    got = polars_frame(answer)
    if got.height != len(data):
        raise WrongAnswer(f"the frame has {got.height:,} rows; a feature keeps every row of the data")
    return got


def _no_leak(model, target):
    if model.target != target:
        raise WrongAnswer(f"predict {target!r}")
    leaks = LEAKS & set(model.features)
    if leaks:
        raise WrongAnswer(f"{', '.join(sorted(leaks))} contain the answer (target leakage): "
                          "leave them out")


@exercise("lesson-4/ex-2", "a tip model on held-out rows with AUC at least 0.85, without leakage")
def _tip_model(answer):
    model = _model(answer)
    _no_leak(model, "tipped")
    if model.metrics.get("auc", 0) < 0.85:
        raise WrongAnswer("its AUC is below 0.85: which feature tells card trips from cash ones?")


@exercise("lesson-4/ex-3", "the accuracy of `model` on `data`, from its predictions "
          "(model=..., data=...)", ("model", "data"))
def _accuracy(answer, *, model, data):
    from workbench.lab.exercises import polars_frame

    truth = polars_frame(data)[model.target].to_numpy()
    close(answer, float(np.mean(np.asarray(model.predict(data)) == truth)), "the accuracy",
          rel=1e-6, abs=1e-9, hint="Compare the predictions with the target, row by row")


# --- lesson 5: training larger than the GPU ----------------------------------------

@exercise("lesson-5/ex-1", "the models wb.ml.fit trains beyond the budget (a list of names)")
def _beyond(answer):
    from workbench.ml import outofcore

    got, want = set(_names(answer, "the answer")), set(outofcore.BEYOND_BUDGET)
    if got - want:
        raise WrongAnswer(f"{', '.join(sorted(got - want))} cannot run beyond the budget: "
                          "read the DoesNotFit message again")
    if want - got:
        raise WrongAnswer(f"{len(want - got)} more run beyond the budget: read the DoesNotFit message")


@exercise("lesson-5/ex-2", "[intercept, coefficients...] of a linear regression on the training "
          "rows, accumulated chunk by chunk (data=, features=, target=)", ("data", "features", "target"))
def _streamed_linear(answer, *, data, features, target):
    from workbench.ml.split import held_out

    df = data.to_polars() if hasattr(data, "to_polars") else data
    train = ~held_out(0, df.height, 0.2, seed=0)
    x = df.select(features).to_numpy().astype(np.float64)[train]
    y = df[target].to_numpy().astype(np.float64)[train]
    want, *_ = np.linalg.lstsq(np.column_stack([np.ones(len(x)), x]), y, rcond=None)
    got = np.asarray(answer, dtype=np.float64).ravel()
    if got.shape != want.shape:
        raise WrongAnswer(f"answer with {len(want)} numbers: the intercept, then one per feature")
    if not np.allclose(got, want, rtol=1e-3, atol=1e-3):
        raise WrongAnswer("the numbers differ from the exact fit: accumulate XᵀX and Xᵀy over the "
                          "training chunks (with a column of ones), then solve once")


# --- lesson 6: unified memory ------------------------------------------------------

MACHINES = {"gb10": "integrated-coherent", "gh200": "coherent", "h100": "discrete"}


@exercise("lesson-6/ex-1", "host buffers per machine: {'gb10': ..., 'gh200': ..., 'h100': ...}")
def _host_buffers(answer):
    from workbench.memory import ROWS

    if not isinstance(answer, dict) or set(answer) != set(MACHINES):
        raise WrongAnswer(f"answer with a dict with the keys {sorted(MACHINES)}")
    for machine, platform in MACHINES.items():
        if str(answer[machine]).strip().lower() != ROWS[platform].host_buffers:
            raise WrongAnswer(f"{machine}: look at the policy chosen for its profile "
                              "(host buffers), or at its row of wb.memory.ROWS")


@exercise("lesson-6/ex-2", "bytes copied to the GPU by to_cupy of a 1,000,000-row float32 column: "
          "{'gb10': ..., 'h100': ...}")
def _zero_copy(answer):
    if not isinstance(answer, dict) or set(answer) != {"gb10", "h100"}:
        raise WrongAnswer("answer with a dict with the keys 'gb10' and 'h100' (numbers of bytes)")
    same_digest({k: number(v, k) for k, v in answer.items()},
                "27895f397d64f24a67fb08be7aaf9505f16c4a14abdc8e0f018801d8f5159a73",
                "one machine reads the column in place, the other copies each byte once")


@exercise("lesson-6/ex-3", "the share of the machine's available memory this process holds "
          "(snapshot=shot)", ("snapshot",))
def _read_monitor(answer, *, snapshot):
    close(answer, snapshot.host_rss / snapshot.host_available, "the share", rel=1e-3,
          hint="Divide the host line's two numbers (as bytes, not as text)")


# --- lesson 7: Dask ----------------------------------------------------------------

@exercise("lesson-7/ex-1", "sum of v1 and number of rows per id1, columns id1, v1, n (data=x)", ("data",))
def _dask_sum(answer, *, data):
    import polars as pl

    same_rows(answer, _lazy(data).group_by("id1").agg(pl.col("v1").sum(), n=pl.len()).collect())


@exercise("lesson-7/ex-2", "the mean of v3 per id4 from per-partition sums and counts, columns "
          "id4, v3 (data=x)", ("data",))
def _dask_mean(answer, *, data):
    import polars as pl

    same_rows(answer, _lazy(data).group_by("id4").agg(pl.col("v3").mean()).collect(), rel=1e-9)


# --- lesson 8: capstone ------------------------------------------------------------

@exercise("lesson-8/ex-1", "the mean tip as a percentage of the fare, card trips, by pickup hour: "
          "columns hour, tip_pct (data=trips)", ("data",))
def _tip_pct(answer, *, data):
    import polars as pl

    reference = (_lazy(data).filter(pl.col("payment_type") == "card")
                 .group_by(hour=pl.col("pickup_datetime").dt.hour().cast(pl.Int32))
                 .agg(tip_pct=(100 * pl.col("tip_amount") / pl.col("fare_amount")).mean()).collect())
    same_rows(answer, reference, rel=1e-6)


@exercise("lesson-8/ex-2", "a fare model with R² at least 0.95 on held-out rows, without leakage")
def _fare_model(answer):
    model = _model(answer)
    _no_leak(model, "fare_amount")
    if model.metrics.get("r2", 0) < 0.95:
        raise WrongAnswer("its R² is below 0.95: what does the meter charge for, besides distance?")


@exercise("lesson-8/ex-3", "the pickup hour with the most airport trips (data=trips)", ("data",))
def _airport_hour(answer, *, data):
    import polars as pl

    counts = (_lazy(data).filter(pl.col("pickup_zone").is_in([1, 2]) | pl.col("dropoff_zone").is_in([1, 2]))
              .group_by(hour=pl.col("pickup_datetime").dt.hour()).len().collect())
    best = counts.filter(pl.col("len") == pl.col("len").max())["hour"].to_list()
    if int(number(answer, "the hour")) not in best:
        raise WrongAnswer("count the trips to or from zones 1 and 2 per pickup hour")

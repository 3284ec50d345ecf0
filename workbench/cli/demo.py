"""``workbench demo``: the main job, end to end, on the embedded ``taxi`` dataset.

1. load taxi trips (generated once, then cached as Parquet) into a Frame;
2. preprocess on the CPU with polars: clean, derive time and trip features;
3. train on the GPU with cuml when there is one, else with scikit-learn:
   will the passenger tip (logistic regression), what is the fare (linear regression);
4. ask a question of the data with ``workbench.collect`` (GPU when there is one);
5. report timings, the memory policy, where the data lived and what was copied.
"""

from __future__ import annotations

import time

import polars as pl

import workbench as wb

FEATURES_TIP = ["trip_distance", "duration_min", "fare_amount", "passenger_count", "hour",
                "night", "weekend", "airport", "is_card"]
FEATURES_FARE = ["trip_distance", "duration_min", "rush", "night", "airport"]


def preprocess(trips: pl.LazyFrame) -> pl.LazyFrame:
    """Clean trips and derive model features (plain polars, run on the CPU)."""
    hour = pl.col("pickup_datetime").dt.hour()
    return (
        trips.with_columns(
            duration_min=(pl.col("dropoff_datetime") - pl.col("pickup_datetime"))
            .dt.total_seconds() / 60.0,
            hour=hour.cast(pl.Int32),
            weekend=(pl.col("pickup_datetime").dt.weekday() >= 6).cast(pl.Int8),
            night=((hour >= 20) | (hour < 6)).cast(pl.Int8),
            rush=((pl.col("pickup_datetime").dt.weekday() <= 5) & hour.is_between(16, 19))
            .cast(pl.Int8),
            airport=(pl.col("pickup_zone").is_in([1, 2]) | pl.col("dropoff_zone").is_in([1, 2]))
            .cast(pl.Int8),
            is_card=(pl.col("payment_type") == "card").cast(pl.Int8),
            tipped=pl.col("tipped").cast(pl.Int32),
        )
        .filter(pl.col("payment_type").is_in(["card", "cash"]),
                pl.col("duration_min").is_between(1, 180),
                pl.col("trip_distance") > 0)
        .select(FEATURES_TIP + ["rush", "tipped"])
    )


class _Steps:
    def __init__(self):
        self.rows: list[tuple[str, str, float]] = []

    def run(self, name: str, where: str, fn):
        start = time.perf_counter()
        value = fn()
        self.rows.append((name, where, time.perf_counter() - start))
        print(f"  {name:<34} {where:<6} {self.rows[-1][2]:8.2f} s", flush=True)
        return value


def run(rows: int = 1_000_000, backend: str | None = None) -> dict:
    """Run the demo and print its report; returns the numbers it printed."""
    if rows <= 0:
        raise ValueError(f"rows must be positive; got {rows}")
    session = wb.init(backend=backend)
    where = "GPU" if session.gpu else "CPU"
    gpu = session.hardware.gpu
    print(f"workbench demo: {rows:,} taxi trips on "
          f"{gpu.name + ' (' + session.hardware.platform + ')' if session.gpu else 'the CPU'}")
    steps = _Steps()
    trips = steps.run("load taxi (Parquet cache)", "CPU", lambda: wb.datasets.load("taxi", rows=rows))
    features = steps.run("preprocess with polars", "CPU",
                         lambda: wb.Frame.from_polars(preprocess(trips.lazy()).collect()))
    tip = steps.run("train tipped ~ features (logistic)", where,
                    lambda: wb.ml.fit(features, "tipped", FEATURES_TIP, model="logistic_regression",
                                      max_iter=1000))
    fare = steps.run("train fare ~ trip (linear)", where,
                     lambda: wb.ml.fit(features, "fare_amount", FEATURES_FARE,
                                       model="linear_regression"))
    by_hour = steps.run("tip rate by hour (workbench.collect)", where, lambda: wb.collect(
        features.lazy().group_by("hour").agg(pl.col("tipped").mean().alias("tip_rate"), pl.len())
        .sort("hour")))

    print(f"\nmodels ({'cuml' if tip.backend == 'gpu' else 'scikit-learn'}, "
          f"{tip.n_train:,} train / {tip.n_test:,} test rows)")
    print(f"  {tip}")
    print(f"  {fare}")
    best = by_hour.sort("tip_rate", descending=True).row(0, named=True)
    print(f"  highest tip rate at {best['hour']:02d}h: {best['tip_rate']:.1%} of {best['len']:,} trips")
    print("\nwhere the data lived")
    for row in features.placement().iter_rows(named=True):
        print(f"  {row['column']:<16} {row['arrow_type']:<10} {row['bytes'] / 1e6:8.1f} MB  {row['location']}")
    print("\nsession")
    print("  " + session.report().replace("\n", "\n  "))
    total = sum(seconds for _, _, seconds in steps.rows)
    print(f"\ntotal {total:.1f} s")
    return {"rows": rows, "backend": session.backend, "steps": steps.rows,
            "tip": tip.metrics, "fare": fare.metrics, "model_backend": tip.backend}

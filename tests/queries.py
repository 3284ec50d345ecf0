"""One set of queries and answers for every backend (CPU, CPU streaming, GPU).

Each query is a function of a LazyFrame over :func:`table`, written as users write
polars; the answer is polars' own CPU result. ``tests/engine/test_answers.py`` runs
all of them on every backend; the GPU accounting tests reuse them.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl


def table(n: int = 2000, seed: int = 0) -> pl.DataFrame:
    """Keys (ints, strings with nulls), floats with nulls and NaN, dates."""
    rng = np.random.default_rng(seed)
    names = np.array([f"id{i:03d}" for i in range(50)])
    s = names[rng.integers(0, 50, n)].astype(object)
    s[rng.random(n) < 0.05] = None
    v = rng.normal(size=n)
    w = np.where(rng.random(n) < 0.1, np.nan, rng.random(n))
    return pl.DataFrame({
        "k": rng.integers(0, 100, n).astype(np.int32),
        "s": pl.Series(s.tolist(), dtype=pl.String),
        "v": pl.Series(v).scatter(np.flatnonzero(rng.random(n) < 0.02), None),
        "w": w,
        "d": pl.Series([dt.date(2024, 1, 1) + dt.timedelta(days=int(x)) for x in rng.integers(0, 365, n)]),
    })


QUERIES = {
    "sum_by_k": lambda lf: lf.group_by("k").agg(pl.col("v").sum(), pl.col("w").mean()).sort("k"),
    "by_string": lambda lf: lf.group_by("s").agg(pl.len(), pl.col("v").max()).sort("s"),
    "filter": lambda lf: lf.filter(pl.col("v") > 1.5).select(pl.col("k").sum(), pl.len()),
    "filter_project": lambda lf: lf.filter(pl.col("v") > 0).select("k", "v").sort("k", "v"),
    "join": lambda lf: lf.group_by("k").agg(pl.col("v").mean().alias("m"))
                         .join(lf.group_by("k").agg(pl.len()), on="k").sort("k"),
    "join_back": lambda lf: lf.join(lf.group_by("k").agg(pl.col("v").mean().alias("m")), on="k")
                              .select(pl.col("m").sum(), pl.len()),
    "semi_join": lambda lf: lf.join(lf.filter(pl.col("w") > 0.9).select("k").unique(), on="k", how="semi")
                              .select(pl.len(), pl.col("v").sum()),
    "anti_join": lambda lf: lf.join(lf.filter(pl.col("w") > 0.5).select("k").unique(), on="k", how="anti")
                              .select(pl.len()),
    "date_filter": lambda lf: lf.filter(pl.col("d") >= dt.date(2024, 7, 1))
                                .group_by(pl.col("d").dt.month()).agg(pl.len()).sort("d"),
    "string_filter": lambda lf: lf.filter(pl.col("s").str.starts_with("id01")).select(pl.len(), pl.col("k").max()),
    "sort_limit": lambda lf: lf.drop_nulls("v").sort("v", descending=True).head(5).select("k", "v"),
    "window": lambda lf: lf.select("k", "v", (pl.col("v") - pl.col("v").mean().over("k")).alias("dv"))
                           .sort("k", "v", nulls_last=True).head(50),
    "quantile": lambda lf: lf.group_by("k").agg(pl.col("w").median().alias("med")).sort("k"),
    "head": lambda lf: lf.head(7),
}

#: the queries over only k, s, v and w (the GPU frame tests' own larger table)
NO_DATES = tuple(name for name in QUERIES if name not in ("date_filter",))
#: what the polars GPU engine refuses over an IO-source scan: a row limit pushed into the
#: scan ("A row limit (head/limit) on a PythonScan source is not supported", cudf-polars
#: 26.10); ``wb.collect`` answers these on the CPU with a warning
GPU_UNSUPPORTED = {"head"}

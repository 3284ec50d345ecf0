"""The db-benchmark questions, written once per API family.

Each question has one polars function (used by polars CPU, the polars GPU engine and
the workbench engine alike; a ``polars_gpu`` override, used by both GPU polars engines,
exists only where the polars GPU engine of RAPIDS 26.10 cannot run the plain code),
one pandas function (also run by cudf, which mirrors pandas; a ``cudf`` override
exists only where cudf needs it), and one SQL string for DuckDB. Every function
receives ``tables``, a dict of the task's tables (``x`` for groupby; ``x``, ``small``,
``medium``, ``big`` for join) in that engine's own type.

Output value columns have the same names in every API, so the answer check ("chk") can
read the same columns everywhere. Strings stay plain strings (no categorical or enum
casts) for every engine, so no engine is given a head start the others lack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

GROUPBY_TABLES = ("x",)
JOIN_TABLES = ("x", "small", "medium", "big")


@dataclass(frozen=True)
class Question:
    """One benchmark question and its implementation in each API family."""

    id: str
    task: str
    title: str
    chk: tuple[str, ...]
    polars: Callable[[dict], Any]
    pandas: Callable[[dict], Any]
    sql: str
    cudf: Callable[[dict], Any] | None = None
    polars_gpu: Callable[[dict], Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.task}:{self.id}"


# --- groupby: polars --------------------------------------------------------------


def _pl():
    import polars as pl

    return pl


def _g1(t):
    pl = _pl()
    return t["x"].group_by("id1").agg(pl.col("v1").sum().alias("v1_sum"))


def _g2(t):
    pl = _pl()
    return t["x"].group_by("id1", "id2").agg(pl.col("v1").sum().alias("v1_sum"))


def _g3(t):
    pl = _pl()
    return t["x"].group_by("id3").agg(
        pl.col("v1").sum().alias("v1_sum"), pl.col("v3").mean().alias("v3_mean")
    )


def _g4(t):
    pl = _pl()
    return t["x"].group_by("id4").agg(
        pl.col("v1").mean().alias("v1_mean"),
        pl.col("v2").mean().alias("v2_mean"),
        pl.col("v3").mean().alias("v3_mean"),
    )


def _g5(t):
    pl = _pl()
    return t["x"].group_by("id6").agg(
        pl.col("v1").sum().alias("v1_sum"),
        pl.col("v2").sum().alias("v2_sum"),
        pl.col("v3").sum().alias("v3_sum"),
    )


def _g6(t):
    pl = _pl()
    return t["x"].group_by("id4", "id5").agg(
        pl.col("v3").median().alias("v3_median"), pl.col("v3").std().alias("v3_std")
    )


def _g7(t):
    pl = _pl()
    return t["x"].group_by("id3").agg(
        (pl.col("v1").max() - pl.col("v2").min()).alias("range_v1_v2")
    )


def _g8(t):
    pl = _pl()
    return (
        t["x"]
        .drop_nulls("v3")
        .group_by("id6")
        .agg(pl.col("v3").top_k(2).alias("largest2_v3"))
        .explode("largest2_v3")
    )


def _g9(t):
    pl = _pl()
    return t["x"].group_by("id2", "id4").agg((pl.corr("v1", "v2") ** 2).alias("r2"))


# The polars GPU engine (RAPIDS 26.10) has no top_k and no corr inside group_by; these
# ask the same question with operations it has: a per-group rank, per-group sums.
def _g8_gpu(t):
    pl = _pl()
    return (
        t["x"]
        .drop_nulls("v3")
        .with_columns(pl.col("v3").rank("ordinal", descending=True).over("id6").alias("_rank"))
        .filter(pl.col("_rank") <= 2)
        .select("id6", pl.col("v3").alias("largest2_v3"))
    )


def _g9_gpu(t):
    pl = _pl()
    both = pl.col("v1").is_not_null() & pl.col("v2").is_not_null()  # corr's pairs
    x, y = (pl.when(both).then(pl.col(c).cast(pl.Float64)) for c in ("v1", "v2"))
    s = (
        t["x"]
        .with_columns(x=x, y=y, xx=x * x, yy=y * y, xy=x * y)
        .group_by("id2", "id4")
        .agg(pl.col("x").count().alias("n"),
             *(pl.col(c).sum().alias("s" + c) for c in ("x", "y", "xx", "yy", "xy")))
    )
    n = pl.col("n").cast(pl.Float64)
    cov = n * pl.col("sxy") - pl.col("sx") * pl.col("sy")
    var = (n * pl.col("sxx") - pl.col("sx") ** 2) * (n * pl.col("syy") - pl.col("sy") ** 2)
    return s.select("id2", "id4", (cov * cov / var).alias("r2"))


def _g10(t):
    pl = _pl()
    return t["x"].group_by("id1", "id2", "id3", "id4", "id5", "id6").agg(
        pl.col("v3").sum().alias("v3_sum"), pl.len().alias("count")
    )


# --- groupby: pandas (and cudf) ---------------------------------------------------
# db-benchmark's pandas options: keys kept as columns, no sorting, null keys kept.
_GB = dict(as_index=False, sort=False, dropna=False)


def _p1(t):
    return t["x"].groupby("id1", **_GB).agg(v1_sum=("v1", "sum"))


def _p2(t):
    return t["x"].groupby(["id1", "id2"], **_GB).agg(v1_sum=("v1", "sum"))


def _p3(t):
    return t["x"].groupby("id3", **_GB).agg(v1_sum=("v1", "sum"), v3_mean=("v3", "mean"))


def _p4(t):
    return t["x"].groupby("id4", **_GB).agg(
        v1_mean=("v1", "mean"), v2_mean=("v2", "mean"), v3_mean=("v3", "mean")
    )


def _p5(t):
    return t["x"].groupby("id6", **_GB).agg(
        v1_sum=("v1", "sum"), v2_sum=("v2", "sum"), v3_sum=("v3", "sum")
    )


def _p6(t):
    return t["x"].groupby(["id4", "id5"], **_GB).agg(
        v3_median=("v3", "median"), v3_std=("v3", "std")
    )


def _p7(t):
    ans = t["x"].groupby("id3", **_GB).agg(v1_max=("v1", "max"), v2_min=("v2", "min"))
    ans["range_v1_v2"] = ans["v1_max"] - ans["v2_min"]
    return ans[["id3", "range_v1_v2"]]


def _p8(t):
    x = t["x"]
    ans = (
        x.loc[x["v3"].notna(), ["id6", "v3"]]
        .sort_values("v3", ascending=False)
        .groupby("id6", sort=False, dropna=False)
        .head(2)
    )
    return ans.rename(columns={"v3": "largest2_v3"})


def _corr2_from_sums(x):
    """r² of v1, v2 per (id2, id4) from per-group sums.

    pandas has no vectorised grouped two-column correlation (db-benchmark's pandas
    script calls ``apply`` per group, minutes at 1e8 rows); the sums give the same
    Pearson r, and the same code runs on cudf.
    """
    d = x[["id2", "id4", "v1", "v2"]].copy()
    d["v1"] = d["v1"].astype("float64")
    d["v2"] = d["v2"].astype("float64")
    d["xx"] = d["v1"] * d["v1"]
    d["yy"] = d["v2"] * d["v2"]
    d["xy"] = d["v1"] * d["v2"]
    s = d.groupby(["id2", "id4"], **_GB).agg(
        n=("v1", "count"), sx=("v1", "sum"), sy=("v2", "sum"),
        sxx=("xx", "sum"), syy=("yy", "sum"), sxy=("xy", "sum"),
    )
    n = s["n"].astype("float64")
    cov = n * s["sxy"] - s["sx"] * s["sy"]
    var = (n * s["sxx"] - s["sx"] * s["sx"]) * (n * s["syy"] - s["sy"] * s["sy"])
    s["r2"] = (cov * cov) / var
    return s[["id2", "id4", "r2"]]


def _p9(t):
    return _corr2_from_sums(t["x"])


def _p10(t):
    return t["x"].groupby(["id1", "id2", "id3", "id4", "id5", "id6"], **_GB).agg(
        v3_sum=("v3", "sum"), count=("v1", "size")
    )


def _c8(t):
    # cudf's head keeps the input order unless told otherwise, an extra sort we skip.
    x = t["x"]
    ans = (
        x.loc[x["v3"].notna(), ["id6", "v3"]]
        .sort_values("v3", ascending=False)
        .groupby("id6", sort=False, dropna=False)
        .head(2, preserve_order=False)
    )
    return ans.rename(columns={"v3": "largest2_v3"})


# --- groupby: SQL (DuckDB), as in db-benchmark's DuckDB scripts ---------------------

_S = {
    "q1": "SELECT id1, sum(v1) AS v1_sum FROM x GROUP BY id1",
    "q2": "SELECT id1, id2, sum(v1) AS v1_sum FROM x GROUP BY id1, id2",
    "q3": "SELECT id3, sum(v1) AS v1_sum, avg(v3) AS v3_mean FROM x GROUP BY id3",
    "q4": "SELECT id4, avg(v1) AS v1_mean, avg(v2) AS v2_mean, avg(v3) AS v3_mean "
    "FROM x GROUP BY id4",
    "q5": "SELECT id6, sum(v1) AS v1_sum, sum(v2) AS v2_sum, sum(v3) AS v3_sum "
    "FROM x GROUP BY id6",
    "q6": "SELECT id4, id5, quantile_cont(v3, 0.5) AS v3_median, stddev(v3) AS v3_std "
    "FROM x GROUP BY id4, id5",
    "q7": "SELECT id3, max(v1) - min(v2) AS range_v1_v2 FROM x GROUP BY id3",
    "q8": "SELECT id6, unnest(max(v3, 2)) AS largest2_v3 FROM x WHERE v3 IS NOT NULL "
    "GROUP BY id6",
    "q9": "SELECT id2, id4, pow(corr(v1, v2), 2) AS r2 FROM x GROUP BY id2, id4",
    "q10": "SELECT id1, id2, id3, id4, id5, id6, sum(v3) AS v3_sum, count(*) AS count "
    "FROM x GROUP BY id1, id2, id3, id4, id5, id6",
}

GROUPBY = [
    Question("q1", "groupby", "sum v1 by id1", ("v1_sum",), _g1, _p1, _S["q1"]),
    Question("q2", "groupby", "sum v1 by id1:id2", ("v1_sum",), _g2, _p2, _S["q2"]),
    Question("q3", "groupby", "sum v1 mean v3 by id3", ("v1_sum", "v3_mean"), _g3, _p3,
             _S["q3"]),
    Question("q4", "groupby", "mean v1:v3 by id4", ("v1_mean", "v2_mean", "v3_mean"), _g4,
             _p4, _S["q4"]),
    Question("q5", "groupby", "sum v1:v3 by id6", ("v1_sum", "v2_sum", "v3_sum"), _g5, _p5,
             _S["q5"]),
    Question("q6", "groupby", "median v3 sd v3 by id4 id5", ("v3_median", "v3_std"), _g6,
             _p6, _S["q6"]),
    Question("q7", "groupby", "max v1 - min v2 by id3", ("range_v1_v2",), _g7, _p7,
             _S["q7"]),
    Question("q8", "groupby", "largest two v3 by id6", ("largest2_v3",), _g8, _p8, _S["q8"],
             cudf=_c8, polars_gpu=_g8_gpu),
    Question("q9", "groupby", "regression v1 v2 by id2 id4", ("r2",), _g9, _p9, _S["q9"],
             polars_gpu=_g9_gpu),
    Question("q10", "groupby", "sum v3 count by id1:id6", ("v3_sum", "count"), _g10, _p10,
             _S["q10"]),
]


# --- join ---------------------------------------------------------------------------


def _jpl(right: str, on: str, how: str = "inner"):
    def q(t):
        return t["x"].join(t[right], on=on, how=how)

    return q


def _jpd(right: str, on: str, how: str = "inner"):
    def q(t):
        return t["x"].merge(t[right], on=on, how=how)

    return q


def _jsql(right: str, on: str, others: tuple[str, ...], how: str = "JOIN") -> str:
    extra = ", ".join(f"{right}.{c} AS {right}_{c}" for c in others)
    return f"SELECT x.*, {extra}, {right}.v2 FROM x {how} {right} USING ({on})"


_JCHK = ("v1", "v2")

JOIN = [
    Question("q1", "join", "small inner on int", _JCHK, _jpl("small", "id1"),
             _jpd("small", "id1"), _jsql("small", "id1", ("id4",))),
    Question("q2", "join", "medium inner on int", _JCHK, _jpl("medium", "id2"),
             _jpd("medium", "id2"), _jsql("medium", "id2", ("id1", "id4", "id5"))),
    Question("q3", "join", "medium outer on int", _JCHK, _jpl("medium", "id2", "left"),
             _jpd("medium", "id2", "left"),
             _jsql("medium", "id2", ("id1", "id4", "id5"), "LEFT JOIN")),
    Question("q4", "join", "medium inner on factor", _JCHK, _jpl("medium", "id5"),
             _jpd("medium", "id5"), _jsql("medium", "id5", ("id1", "id2", "id4"))),
    Question("q5", "join", "big inner on int", _JCHK, _jpl("big", "id3"),
             _jpd("big", "id3"), _jsql("big", "id3", ("id1", "id2", "id4", "id5", "id6"))),
]

TASKS = {"groupby": GROUPBY, "join": JOIN}
TABLES = {"groupby": GROUPBY_TABLES, "join": JOIN_TABLES}
DATASETS = {"groupby": "h2o_groupby", "join": "h2o_join"}


def questions(task: str, ids: list[str] | None = None) -> list[Question]:
    """The questions of ``task`` ("groupby" or "join"), all of them or those in ``ids``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    qs = TASKS[task]
    if not ids:
        return list(qs)
    by_id = {q.id: q for q in qs}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise ValueError(
            f"unknown {task} question(s) {', '.join(unknown)}; valid: {', '.join(by_id)}"
        )
    return [by_id[i] for i in ids]

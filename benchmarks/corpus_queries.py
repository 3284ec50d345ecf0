"""The analytic query corpus: queries over the catalog's tables, written as users write polars.

Each query is a function of the tables (a mapping of name to LazyFrame) returning a
LazyFrame, registered with a name, a short description and tags saying what it
exercises. The tables (see :data:`TABLES`), all ``N`` rows unless said otherwise:

- ``g``: ``h2o_groupby`` (k=100): id1, id2 (100 strings), id3 (N/100 strings),
  id4, id5 (100 ints), id6 (N/100 ints), v1 (1..5), v2 (1..15), v3 (0..100).
- ``x``, ``small`` (N/1e6), ``medium`` (N/1e3), ``big``: ``h2o_join``; keys id1..id3
  (ints) and id4..id6 (the same as strings "id<value>"), v1 on x, v2 on the others.
- ``taxi``: trips of 2024 with pickup/dropoff timestamps, zones (1..263), distance,
  fare, tip, payment type.

``ordered`` says whether the row order of the answer is defined (a sort, with ties
broken); answers of other queries are compared as sets of rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Mapping

import polars as pl

Tables = Mapping[str, pl.LazyFrame]

#: table name -> (catalog dataset, table of a multi-table dataset, dataset parameters)
TABLES: dict[str, tuple[str, str | None, dict]] = {
    "g": ("h2o_groupby", None, {"k": 100}),
    "x": ("h2o_join", "x", {}),
    "small": ("h2o_join", "small", {}),
    "medium": ("h2o_join", "medium", {}),
    "big": ("h2o_join", "big", {}),
    "taxi": ("taxi", None, {}),
}

#: what the tags mean (each query has one or more)
TAGS = {
    "join3": "joins three or more tables",
    "join": "a join",
    "semi": "a semi join",
    "anti": "an anti join",
    "window": "a window function (.over)",
    "sort-limit": "a sort followed by a limit",
    "string": "a string filter (str.contains / starts_with / ends_with)",
    "date": "a date or time filter",
    "quantile": "median or quantile",
    "high-card": "a group-by with ~N/100 (1e6 at 1e8 rows) or more groups",
    "top-k": "top_k per group",
    "corr": "pl.corr / pl.cov per group",
    "large-result": "an answer of the order of the input (larger than a GPU budget at scale)",
    "groupby": "a group-by",
}


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    tags: tuple[str, ...]
    tables: tuple[str, ...]
    build: Callable[[Tables], pl.LazyFrame]
    ordered: bool = False

    def __call__(self, tables: Tables) -> pl.LazyFrame:
        return self.build(tables)


QUERIES: dict[str, Query] = {}


def query(description: str, *, tags: tuple[str, ...], tables: tuple[str, ...], ordered: bool = False):
    """Register the decorated function as a query of the corpus."""
    unknown = set(tags) - set(TAGS)
    if unknown:
        raise ValueError(f"unknown tags {sorted(unknown)}; known: {sorted(TAGS)}")

    def wrap(fn):
        missing = set(tables) - set(TABLES)
        if missing:
            raise ValueError(f"{fn.__name__}: unknown tables {sorted(missing)}; known: {sorted(TABLES)}")
        QUERIES[fn.__name__] = Query(fn.__name__, description, tags, tables, fn, ordered)
        return fn
    return wrap


# --- joins -----------------------------------------------------------------------------


@query("x joined to medium on id2 and small on id1; totals per id1", tags=("join3", "join", "groupby"),
       tables=("x", "medium", "small"))
def join3_totals(t):
    medium = t["medium"].select("id2", pl.col("v2").alias("v2_medium"))
    small = t["small"].select("id1", pl.col("v2").alias("v2_small"))
    return (t["x"].join(medium, on="id2").join(small, on="id1")
            .group_by("id1")
            .agg(pl.col("v1").sum(), pl.col("v2_medium").mean(), pl.col("v2_small").max(), pl.len())
            .sort("id1"))


@query("x joined to big on id3, medium on id2 and small on id1 (the string key id4); v1*v2 per id4",
       tags=("join3", "join", "groupby"), tables=("x", "big", "medium", "small"))
def join4_big(t):
    big = t["big"].select("id3", pl.col("v2").alias("v2_big"))
    medium = t["medium"].select("id2", pl.col("v2").alias("v2_medium"))
    small = t["small"].select("id4", pl.col("v2").alias("v2_small"))
    return (t["x"].join(big, on="id3").join(medium, on="id2").join(small, on="id4")
            .group_by("id4")
            .agg((pl.col("v1") * pl.col("v2_big")).sum().alias("v1_v2"),
                 (pl.col("v2_medium") - pl.col("v2_small")).mean().alias("d_medium_small"),
                 pl.len())
            .sort("id4"))


@query("left join of x to medium on the string key id5; unmatched rows and means per id4",
       tags=("join", "groupby", "string"), tables=("x", "medium"))
def left_join_string_key(t):
    medium = t["medium"].select("id5", "v2")
    return (t["x"].join(medium, on="id5", how="left")
            .group_by("id4")
            .agg(pl.col("v2").null_count().alias("unmatched"), pl.col("v2").mean(), pl.col("v1").sum())
            .sort("id4"))


@query("rows of x whose id3 is in big with v2 > 50 (semi join); count and sum",
       tags=("semi", "join"), tables=("x", "big"))
def semi_join_big(t):
    keep = t["big"].filter(pl.col("v2") > 50).select("id3")
    return t["x"].join(keep, on="id3", how="semi").select(pl.len(), pl.col("v1").sum())


@query("rows of x whose id2 is not in medium (anti join); per id1",
       tags=("anti", "join", "groupby"), tables=("x", "medium"))
def anti_join_medium(t):
    return (t["x"].join(t["medium"].select("id2"), on="id2", how="anti")
            .group_by("id1").agg(pl.len(), pl.col("v1").mean()).sort("id1"))


@query("x joined to big on id3, every matched row with both values (an answer of ~0.9 N rows)",
       tags=("join", "large-result"), tables=("x", "big"))
def join_large_result(t):
    return (t["x"].select("id3", "id6", "v1")
            .join(t["big"].select("id3", "v2"), on="id3")
            .with_columns((pl.col("v1") - pl.col("v2")).alias("diff")))


# --- filters and sorts ---------------------------------------------------------------


@query("every column of the rows with v1 > 1 (~80% of the groupby table)",
       tags=("large-result",), tables=("g",))
def filter_most_rows(t):
    return t["g"].filter(pl.col("v1") > 1)


@query("id3 containing '77' (str.contains); count and mean v3 per id1",
       tags=("string", "groupby"), tables=("g",))
def string_contains(t):
    return (t["g"].filter(pl.col("id3").str.contains("77"))
            .group_by("id1").agg(pl.len(), pl.col("v3").mean()).sort("id1"))


@query("x rows whose id6 starts with 'id12' and id5 ends with '7'; per id4",
       tags=("string", "groupby"), tables=("x",))
def string_prefix_suffix(t):
    return (t["x"].filter(pl.col("id6").str.starts_with("id12") & pl.col("id5").str.ends_with("7"))
            .group_by("id4").agg(pl.len(), pl.col("v1").sum()).sort("id4"))


@query("the 20 longest taxi trips (sort by distance, then pickup time, with a limit)",
       tags=("sort-limit",), tables=("taxi",), ordered=True)
def longest_trips(t):
    return (t["taxi"].sort(["trip_distance", "pickup_datetime"], descending=[True, False])
            .head(20)
            .select("pickup_datetime", "pickup_zone", "dropoff_zone", "trip_distance", "fare_amount"))


@query("the 10 id3 groups with the largest sum of v3 (a high-cardinality group-by, then top 10)",
       tags=("high-card", "sort-limit", "groupby"), tables=("g",), ordered=True)
def top_groups(t):
    return (t["g"].group_by("id3").agg(pl.col("v3").sum(), pl.len())
            .sort(["v3", "id3"], descending=[True, False]).head(10))


# --- dates ---------------------------------------------------------------------------


@query("spring trips (March to May): trips, mean fare and total tips per month",
       tags=("date", "groupby"), tables=("taxi",))
def spring_by_month(t):
    return (t["taxi"]
            .filter(pl.col("pickup_datetime").is_between(dt.datetime(2024, 3, 1), dt.datetime(2024, 6, 1),
                                                         closed="left"))
            .group_by(pl.col("pickup_datetime").dt.month().alias("month"))
            .agg(pl.len(), pl.col("fare_amount").mean(), pl.col("tip_amount").sum())
            .sort("month"))


@query("weekend trips: tip rate per pickup hour", tags=("date", "groupby"), tables=("taxi",))
def weekend_tip_by_hour(t):
    return (t["taxi"].filter(pl.col("pickup_datetime").dt.weekday() >= 6)
            .group_by(pl.col("pickup_datetime").dt.hour().alias("hour"))
            .agg((pl.col("tip_amount").sum() / pl.col("fare_amount").sum()).alias("tip_rate"), pl.len())
            .sort("hour"))


@query("trips over 45 minutes in the second half of the year: count and median minutes per zone",
       tags=("date", "quantile", "groupby"), tables=("taxi",))
def long_trips_by_zone(t):
    minutes = (pl.col("dropoff_datetime") - pl.col("pickup_datetime")).dt.total_seconds() / 60
    return (t["taxi"].filter(pl.col("pickup_datetime") >= dt.datetime(2024, 7, 1))
            .with_columns(minutes.alias("minutes"))
            .filter(pl.col("minutes") > 45)
            .group_by("pickup_zone").agg(pl.len(), pl.col("minutes").median())
            .sort("pickup_zone"))


# --- median, quantile, high cardinality -------------------------------------------------


@query("median fare and 90th percentile distance per (pickup zone, dropoff zone)",
       tags=("quantile", "groupby"), tables=("taxi",))
def fare_quantiles_by_route(t):
    return (t["taxi"].group_by("pickup_zone", "dropoff_zone")
            .agg(pl.col("fare_amount").median(), pl.col("trip_distance").quantile(0.9), pl.len()))


@query("median and quartiles of v3 per id6 (~N/100 groups)", tags=("quantile", "high-card", "groupby"),
       tables=("g",))
def median_high_card(t):
    return (t["g"].group_by("id6")
            .agg(pl.col("v3").median().alias("median"), pl.col("v3").quantile(0.25).alias("q25"),
                 pl.col("v3").quantile(0.75).alias("q75")))


@query("count, sums, mean and range per id3 (~N/100 string groups)", tags=("high-card", "groupby"),
       tables=("g",))
def high_card_stats(t):
    return (t["g"].group_by("id3")
            .agg(pl.len(), pl.col("v1").sum(), pl.col("v3").mean(),
                 (pl.col("v2").max() - pl.col("v2").min()).alias("range_v2")))


@query("sum of v3 per (id3, id4), the groups seen at least twice (~N/100 x 100 keys)",
       tags=("high-card", "groupby"), tables=("g",))
def high_card_two_keys(t):
    return (t["g"].group_by("id3", "id4").agg(pl.col("v3").sum(), pl.len())
            .filter(pl.col("len") >= 2))


@query("distinct id3 per id1 (n_unique)", tags=("groupby",), tables=("g",))
def distinct_per_group(t):
    return t["g"].group_by("id1").agg(pl.col("id3").n_unique().alias("id3_distinct")).sort("id1")


# --- natural expressions: top_k, corr -------------------------------------------------


@query("largest two v3 per id6, as users write it (top_k in agg, then explode)",
       tags=("top-k", "high-card", "groupby"), tables=("g",))
def top2_per_group(t):
    return (t["g"].group_by("id6").agg(pl.col("v3").top_k(2).alias("largest2_v3"))
            .explode("largest2_v3"))


@query("the three largest tips per pickup zone (top_k)", tags=("top-k", "groupby"), tables=("taxi",))
def top_tips_per_zone(t):
    return (t["taxi"].group_by("pickup_zone").agg(pl.col("tip_amount").top_k(3).alias("top_tips"))
            .explode("top_tips"))


@query("squared correlation of v1 and v2 per (id2, id4), as users write it (pl.corr)",
       tags=("corr", "groupby"), tables=("g",))
def corr_per_group(t):
    return t["g"].group_by("id2", "id4").agg((pl.corr("v1", "v2") ** 2).alias("r2"))


@query("correlation and covariance of distance and fare per pickup zone",
       tags=("corr", "groupby"), tables=("taxi",))
def corr_cov_per_zone(t):
    return (t["taxi"].group_by("pickup_zone")
            .agg(pl.corr("trip_distance", "fare_amount").alias("r"),
                 pl.cov("trip_distance", "fare_amount").alias("cov")))


# --- windows ---------------------------------------------------------------------------


@query("the three largest v3 of each id1 (rank over id1, then filter)",
       tags=("window",), tables=("g",))
def rank_within_group(t):
    return (t["g"].filter(pl.col("v3").rank("min", descending=True).over("id1") <= 3)
            .select("id1", "id3", "v3"))


@query("fares far above their zone's mean (fare minus its mean over pickup zone); per zone",
       tags=("window", "groupby"), tables=("taxi",))
def fare_vs_zone_mean(t):
    dev = pl.col("fare_amount") - pl.col("fare_amount").mean().over("pickup_zone")
    return (t["taxi"].with_columns(dev.alias("dev")).filter(pl.col("dev") > 40)
            .group_by("pickup_zone").agg(pl.len(), pl.col("dev").max()).sort("pickup_zone"))


@query("daily fares per zone with the running total over the year (cum_sum over zone)",
       tags=("window", "date", "groupby"), tables=("taxi",), ordered=True)
def running_total_by_zone(t):
    return (t["taxi"].group_by("pickup_zone", pl.col("pickup_datetime").dt.date().alias("day"))
            .agg(pl.col("fare_amount").sum())
            .sort("pickup_zone", "day")
            .with_columns(pl.col("fare_amount").cum_sum().over("pickup_zone").alias("running")))


@query("share of each (id1, id2) in its id1's total v1 (sum over a window of a group-by)",
       tags=("window", "groupby"), tables=("g",))
def share_within_group(t):
    return (t["g"].group_by("id1", "id2").agg(pl.col("v1").sum())
            .with_columns((pl.col("v1") / pl.col("v1").sum().over("id1")).alias("share")))


def tables_needed(names=None) -> set[str]:
    """The tables the named queries (default: all) read."""
    return {tab for name in (names or QUERIES) for tab in QUERIES[name].tables}

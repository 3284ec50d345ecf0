"""The key split (engine/plan.py, engine/split.py) and the choice of executor (strategy.py).

The split is checked where it can be on any machine: the same plan run once per hash
partition by polars on the CPU, answers compared with the whole plan's. The GPU runs
the same partition queries with the in-memory executor (tests/engine/test_split_gpu.py).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import workbench as wb
from tests.profiles import hardware_profile
from tests.queries import QUERIES, table
from workbench.engine import strategy
from workbench.engine.plan import inspect
from workbench.engine.split import run_split
from workbench.errors import BudgetTooSmall
from workbench.memory.policy import choose

# Which of the shared queries split by key, which by row ranges (row by row over one
# Frame); the rest need every row at once.
SPLITS = {"sum_by_k", "by_string", "join", "quantile", "window"}
ROW_SPLITS = {"filter_project", "sort_limit", "head"}


@pytest.fixture(scope="module")
def frame():
    wb.init(backend="cpu")
    return wb.Frame.from_polars(table(3000))


def _same(got: pl.DataFrame, want: pl.DataFrame, ordered: bool) -> None:
    if not ordered:
        got, want = got.sort(got.columns, nulls_last=True), want.sort(want.columns, nulls_last=True)
    assert_frame_equal(got, want, check_exact=False, rel_tol=1e-9)


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_shared_queries_split_where_exact(frame, name):
    lf = QUERIES[name](frame.lazy())
    info = inspect(lf)
    assert (info.split is not None) == (name in SPLITS | ROW_SPLITS), info.why_not
    if info.split is not None:
        assert info.split.by_rows == (name in ROW_SPLITS)
        for count in (2, 3, 8):
            _same(run_split(lf, info.split, count, pl.LazyFrame.collect), lf.collect(), True)


def _natural(x, y):
    """Plans as users write them, the db-benchmark's among them."""
    return {
        "top_k": x.group_by("id6").agg(pl.col("v3").top_k(2).alias("largest2")),
        "corr": x.group_by("id2", "id4").agg((pl.corr("v1", "v2") ** 2).alias("r2")),
        "median_std": x.group_by("id4", "id5").agg(pl.col("v3").median(), pl.col("v3").std().alias("sd")),
        "high_card_top": x.group_by("id3").agg(pl.col("v1").sum().alias("s"))
                          .sort("s", descending=True).head(10),
        "every_key": x.group_by("id1", "id2", "id3", "id4", "id5", "id6")
                      .agg(pl.col("v3").sum(), pl.len()),
        "filtered_then_grouped": x.filter(pl.col("v1") > 2).with_columns(
            (pl.col("v3") * 2).alias("v6")).group_by("id1").agg(pl.col("v6").mean()),
        "after_group": x.group_by("id1").agg(pl.col("v1").sum()).with_columns(
            (pl.col("v1") + 1).alias("w")).filter(pl.col("w") > 0),
        "join_then_group": x.join(y, on="id1").group_by("id1").agg(pl.col("v2").sum(), pl.col("z").max()),
        "left_join": x.join(y, on="id1", how="left").select("id1", "v1", "z"),
        "three_tables": x.join(y, on="id1").join(y.select("id1", (pl.col("z") * 2).alias("z2")),
                                                  on="id1").group_by("id1").agg(pl.col("z2").sum()),
        "semi": x.join(y.filter(pl.col("z") > 3), on="id1", how="semi").group_by("id1").agg(pl.len()),
        "quantile": x.group_by("id2").agg(pl.col("v3").quantile(0.9, "linear")),
        "first_last": x.group_by("id3").agg(pl.col("v1").first(), pl.col("v3").last(), pl.col("v2").head(2)),
        "window_then_group": x.with_columns((pl.col("v3") - pl.col("v3").mean().over("id1")).alias("dev"))
                              .filter(pl.col("dev") > 10).group_by("id1").agg(pl.len(), pl.col("dev").max()),
        "windows_by_two_keys": x.with_columns(pl.col("v1").sum().over("id1", "id2").alias("s12"),
                                              pl.col("v2").max().over("id1").alias("m1"))
                                .group_by("id1", "id2").agg(pl.col("s12").first(), pl.col("m1").max()),
        "window_after_group": x.group_by("id1", "id2").agg(pl.col("v1").sum())
                               .with_columns(pl.col("v1").rank("dense").over("id1").alias("r")),
    }


def _h2o(n: int, seed: int):
    rng = np.random.default_rng(seed)
    k = max(2, n // 50)
    x = pl.DataFrame({
        "id1": rng.integers(0, 8, n), "id2": rng.integers(0, 8, n), "id3": rng.integers(0, k, n),
        "id4": rng.integers(0, 5, n).astype(np.int32), "id5": rng.integers(0, 5, n).astype(np.int32),
        "id6": rng.integers(0, k, n).astype(np.int32),
        "v1": rng.integers(1, 6, n).astype(np.int32), "v2": rng.integers(1, 16, n).astype(np.int32),
        "v3": rng.uniform(0, 100, n).round(6),
    })
    y = pl.DataFrame({"id1": np.arange(8), "z": rng.integers(0, 10, 8)})
    return x, y


@pytest.mark.parametrize("name", sorted([
    "top_k", "corr", "median_std", "high_card_top", "every_key", "filtered_then_grouped",
    "after_group", "join_then_group", "left_join", "three_tables", "semi", "quantile",
    "first_last", "window_then_group", "windows_by_two_keys", "window_after_group"]))
def test_natural_plans_split_and_agree(name):
    wb.init(backend="cpu")
    x, y = _h2o(5000, 1)
    fx, fy = wb.Frame.from_polars(x), wb.Frame.from_polars(y)
    lf = _natural(fx.lazy(), fy.lazy())[name]
    info = inspect(lf)
    assert info.split is not None, info.why_not
    ordered = name == "high_card_top"
    got = run_split(lf, info.split, 4, pl.LazyFrame.collect)
    want = lf.collect()
    if name == "top_k":  # a list per group: compare the lists as sorted values
        got, want = (d.with_columns(pl.col("largest2").list.sort()) for d in (got, want))
    if ordered:  # ties in s may order differently: compare the sums
        assert got["s"].to_list() == want["s"].to_list()
    else:
        _same(got, want, False)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 400), seed=st.integers(0, 2**16), count=st.integers(1, 9))
def test_split_group_by_equals_whole(n, seed, count):
    wb.init(backend="cpu")
    x, _ = _h2o(n, seed)
    lf = wb.Frame.from_polars(x).lazy().group_by("id1", "id4").agg(
        pl.col("v3").median(), pl.col("v1").sum(), pl.len())
    info = inspect(lf)
    _same(run_split(lf, info.split, count, pl.LazyFrame.collect), lf.collect(), False)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 400), seed=st.integers(0, 2**16), count=st.integers(1, 9),
       keep=st.sampled_from(["any", "first", "last", "none"]))
def test_split_uniques_equal_whole(n, seed, count, keep):
    # every copy of a row (or of its subset's values) lies in one partition: the key
    # the split picks is one of them, and the partitions keep the frame's row order
    wb.init(backend="cpu")
    x, _ = _h2o(n, seed)
    f = wb.Frame.from_polars(x)
    for lf in (f.lazy().select("id1", "id4").unique().group_by("id1").agg(pl.len()),
               f.lazy().unique(["id1", "id2"], keep=keep),
               f.lazy().filter(pl.col("v1") > 2).unique(["id4"], keep=keep).select("id4", "v3")):
        info = inspect(lf)
        assert info.split is not None and not info.split.simple, info.why_not
        _same(run_split(lf, info.split, count, pl.LazyFrame.collect), lf.collect(), False)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), seed=st.integers(0, 2**16), count=st.integers(1, 9),
       shape=st.sampled_from(["filter", "project_sort", "sort_limit", "head", "stable_sort",
                              "whole"]))
def test_row_range_split_equals_whole_in_order(n, seed, count, shape):
    """Plans that work row by row: the ranges' answers in order are the plan's, row for
    row (the scan's order kept, ties of a stable sort too, a pushed-down head honoured)."""
    wb.init(backend="cpu")
    x, _ = _h2o(n, seed)
    lf = wb.Frame.from_polars(x).lazy()
    lf = {"filter": lf.filter(pl.col("v1") > 2).with_columns((pl.col("v3") * 2).alias("w")),
          "project_sort": lf.select("id1", (pl.col("v3") - 50).abs().alias("d")).sort("d", "id1"),
          "sort_limit": lf.sort("v3", descending=True).head(7),
          "head": lf.filter(pl.col("id2") < 4).head(11),
          "stable_sort": lf.sort("id1", maintain_order=True).select("id1", "v3"),
          "whole": lf}[shape]
    info = inspect(lf)
    assert info.split is not None and info.split.by_rows, info.why_not
    assert_frame_equal(run_split(lf, info.split, count, pl.LazyFrame.collect), lf.collect())


def test_row_wise_plans_beyond_the_resident_limit_split_into_ranges():
    policy = choose(hardware_profile("h100"), budget="64kB")
    wb.init(backend="cpu")
    f = wb.Frame.from_polars(pl.DataFrame({"k": np.arange(10_000)}))  # 80 kB
    c = strategy.choose(inspect(f.lazy().filter(pl.col("k") % 3 == 0)), policy, resident_limit=32_000)
    assert c.executor == "split" and "row ranges" in c.reason and c.moves == 80_000
    text = str(wb.explain(f.lazy().filter(pl.col("k") > 5)))
    assert "by row ranges" in text
    # a limit keeps the answer small: the streaming executor's one pass first
    c = strategy.choose(inspect(f.lazy().sort("k").head(3)), policy, resident_limit=32_000)
    assert c.executor == "streaming" and "split into row ranges if that fails" in c.reason


def test_a_row_wise_plan_keeping_most_of_its_bytes_is_left_to_the_cpu():
    from workbench.engine.split import answer_share, gathers_too_much

    wb.init(backend="cpu")
    n = 200_000
    f = wb.Frame.from_polars(pl.DataFrame({"k": np.arange(n), "s": [f"id{i % 97:03d}" for i in range(n)],
                                           "v": np.linspace(0, 1, n)}))
    most = f.lazy().filter(pl.col("k") % 5 != 0)  # 80% of the rows, every column
    info = inspect(most)
    assert answer_share(most, info.split, info.inputs) == pytest.approx(0.8, abs=0.05)
    why = gathers_too_much(most, info)
    assert why is not None and "row by row" in why and "~80%" in why
    few = f.lazy().filter(pl.col("k") % 100 == 0).select("k", "v")  # 1% of the rows
    assert gathers_too_much(few, inspect(few)) is None
    # the samples convert their own rows, not the whole frame's strings
    g = wb.Frame.from_arrow(f.to_arrow())  # no polars view yet
    selective = g.lazy().filter(pl.col("k") % 100 == 0).select("k", "v")
    assert g._polars is None and gathers_too_much(selective, inspect(selective)) is None
    assert g._polars is None
    # where the answer is small by construction no sample is taken
    for lf in (f.lazy().sort("v").head(3), f.lazy().group_by("s").agg(pl.col("v").median())):
        assert gathers_too_much(lf, inspect(lf)) is None
    assert f.lazy().filter(pl.col("k") % 5 != 0).collect().height == 160_000  # inputs untouched


def test_split_keys_follow_the_join_keys():
    wb.init(backend="cpu")
    x, y = _h2o(100, 0)
    fx, fy = wb.Frame.from_polars(x), wb.Frame.from_polars(y)
    info = inspect(fx.lazy().join(fy.lazy(), on="id1").group_by("id1", "id2").agg(pl.len()))
    assert info.split.keys == {id(fx): ("id1",), id(fy): ("id1",)}
    # grouped by keys that do not include the join key: no exact split
    info = inspect(fx.lazy().join(fy.lazy(), on="id1").group_by("id2").agg(pl.len()))
    assert info.split is None and "join" in info.why_not


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 400), seed=st.integers(0, 2**16), count=st.integers(1, 9), top=st.integers(1, 4))
def test_windows_over_a_scan_split_when_a_final_sort_orders_the_rows(n, seed, count, top):
    # The corpus's "largest values of each group" as users write it: a filter on a rank
    # over the group; partitions by id1 hold whole groups, the final sort the row order.
    wb.init(backend="cpu")
    x, _ = _h2o(n, seed)
    lf = (wb.Frame.from_polars(x.with_row_index("row")).lazy()
          .filter(pl.col("v3").rank("min", descending=True).over("id1") <= top)
          .select("id1", "row", "v3", (pl.col("v3") / pl.col("v3").sum().over("id1")).alias("share"))
          .sort("id1", "row"))
    info = inspect(lf)
    assert info.split is not None and info.split.keys[next(iter(info.split.keys))] == ("id1",)
    assert_frame_equal(run_split(lf, info.split, count, pl.LazyFrame.collect), lf.collect(),
                       check_exact=False, rel_tol=1e-12)


def test_windows_split_by_the_keys_they_share():
    wb.init(backend="cpu")
    x, _ = _h2o(100, 0)
    fx = wb.Frame.from_polars(x)
    both = fx.lazy().with_columns(pl.col("v1").sum().over("id1", "id2").alias("a"),
                                  pl.col("v2").sum().over("id2", "id4").alias("b")).sort("id3", "v3")
    assert inspect(both).split.keys == {id(fx): ("id2",)}
    grouped = (fx.lazy().with_columns(pl.col("v1").mean().over("id1", "id4").alias("m"))
               .group_by("id4", "id5").agg(pl.col("m").sum()))
    assert inspect(grouped).split.keys == {id(fx): ("id4",)}


@pytest.mark.parametrize("plan, why", [
    (lambda lf: lf.filter(pl.col("v3").rank().over("id1") <= 2), "row order"),
    (lambda lf: lf.with_columns(pl.col("v1").sum().over("id1").alias("a"),
                                pl.col("v1").sum().over("id2").alias("b")).sort("v3"), "disjoint keys"),
    (lambda lf: lf.with_columns(pl.col("v1").sum().over(pl.col("id1") % 2)).sort("v3"),
     "window over expressions"),
    (lambda lf: lf.with_columns(pl.col("v1").cum_sum().over("id1")).sort("v3"), "row order"),
    (lambda lf: lf.with_columns(pl.col("v1").first().over("id1").alias("f")).sort("v3"), "row order"),
    (lambda lf: lf.with_columns(pl.col("v1").rank("ordinal").over("id1").alias("r")).sort("v3"),
     "row order"),
    (lambda lf: lf.with_columns(pl.col("v1").sum().over("id2").alias("a")).group_by("id1")
     .agg(pl.col("a").sum()), "disjoint keys"),
    (lambda lf: lf.select(pl.col("v1").sum()), "not row by row"),
    (lambda lf: lf.unique("id1", maintain_order=True), "a unique in order"),
    (lambda lf: lf.select(pl.col("v1").unique()), "not row by row"),
    (lambda lf: lf.group_by("id1", maintain_order=True).agg(pl.len()), "in order"),
    (lambda lf: lf.group_by(pl.col("id1") % 2).agg(pl.len()), "expressions"),
    (lambda lf: lf.with_columns(pl.col("v1").cum_sum()).group_by("id1").agg(pl.col("v1").max()),
     "not row by row"),
    (lambda lf: lf.group_by("id1").agg(pl.len()).sort("id1").slice(2, 3), "offset"),
])
def test_plans_that_do_not_split_say_why(plan, why):
    wb.init(backend="cpu")
    x, _ = _h2o(100, 0)
    info = inspect(plan(wb.Frame.from_polars(x).lazy()))
    assert info.split is None and why in info.why_not


@pytest.mark.parametrize("agg, simple", [
    (pl.col("v1").sum(), True), (pl.len(), True), (pl.col("v3").mean(), True),
    ((pl.col("v1").max() - pl.col("v2").min()).alias("r"), True), (pl.col("v1").count(), True),
    (pl.col("v3").median(), False), (pl.col("v3").quantile(0.5), False),
    (pl.col("v3").std(), False), (pl.col("v1").n_unique(), False),
])
def test_simple_plans_are_told_apart(agg, simple):
    wb.init(backend="cpu")
    x, y = _h2o(100, 0)
    fx = wb.Frame.from_polars(x)
    assert inspect(fx.lazy().group_by("id1", "id2").agg(agg)).split.simple is simple
    joined = fx.lazy().join(wb.Frame.from_polars(y).lazy(), on="id1").group_by("id1").agg(pl.len())
    assert inspect(joined).split.simple is False  # joins split first


def test_a_window_over_a_simple_group_bys_groups_keeps_it_simple():
    # the window sees the groups (few, a sample says later), not every row: streamed first
    wb.init(backend="cpu")
    x, _ = _h2o(100, 0)
    fx = wb.Frame.from_polars(x).lazy()
    share = fx.group_by("id1", "id2").agg(pl.col("v1").sum()).with_columns(
        (pl.col("v1") / pl.col("v1").sum().over("id1")).alias("share"))
    assert inspect(share).split.simple is True
    below = fx.with_columns(pl.col("v1").sum().over("id1").alias("t")).group_by("id1").agg(
        pl.col("t").max())
    assert inspect(below).split.simple is False
    median_then_window = fx.group_by("id1", "id2").agg(pl.col("v1").median()).with_columns(
        pl.col("v1").rank().over("id1").alias("r"))
    assert inspect(median_then_window).split.simple is False


def test_inputs_and_bytes():
    wb.init(backend="cpu")
    x, _ = _h2o(1000, 0)
    f = wb.Frame.from_polars(x)
    info = inspect(f.lazy().group_by("id1").agg(pl.col("v3").sum()))
    (inp,) = info.inputs
    assert inp.frame is f and set(inp.columns) == {"id1", "v3"}
    assert info.frame_bytes == x.select("id1", "v3").estimated_size()
    assert not inspect(pl.LazyFrame(x).group_by("id1").agg(pl.len())).only_frames


# ------------------------------------------------------------ the choice, per platform
def _info(nbytes_rows: int, split: bool, simple: bool = False):
    wb.init(backend="cpu")
    f = wb.Frame.from_polars(pl.DataFrame({"k": np.zeros(nbytes_rows, np.int64)}))
    by_k = f.lazy().group_by("k")
    lf = (by_k.agg(pl.len()) if simple else by_k.agg(pl.col("k").median().alias("m"))) if split \
        else f.lazy().select(pl.col("k").sum())
    return inspect(lf), f


@pytest.mark.parametrize("name", ["gb10", "gh200"])
def test_unified_memory_prefers_in_memory_while_host_memory_holds_it(name):
    policy = choose(hardware_profile(name))
    info, _ = _info(1000, split=True)
    c = strategy.choose(info, policy, resident_limit=1)  # the resident limit does not bind there
    assert c.executor == "in-memory" and c.moves == 0 and "in place" in c.reason


@pytest.mark.parametrize("name", ["gb10", "gh200"])
def test_unified_memory_splits_beyond_host_memory(name):
    policy = choose(hardware_profile(name), budget="4kB")
    info, _ = _info(1000, split=True)  # 8 kB of keys
    c = strategy.choose(info, policy, resident_limit=10**12)
    assert c.executor == "split" and c.partitions >= 2 and c.moves == 0


@pytest.mark.parametrize("groups", [1, 100, 3_000, 50_000, 200_000])
def test_the_group_count_is_read_from_a_sample_of_the_keys(monkeypatch, groups):
    # 200k rows, 16k sampled in 64 slices: within a third of the truth for keys spread
    # at random, from one group to one per row (scaling the sample's count up would
    # say 200k for 50k groups); sorted keys read low, never high
    from workbench.engine import groups as groups_mod

    monkeypatch.setattr(groups_mod, "SAMPLE_ROWS", 1 << 14)
    wb.init(backend="cpu")
    rows = 200_000
    keys = np.random.default_rng(groups).permutation(np.arange(rows) % groups)
    f = wb.Frame.from_polars(pl.DataFrame({"k": keys, "j": keys % 7, "v": np.ones(rows)}))
    share = groups_mod.group_share(inspect(f.lazy().group_by("k", "j").agg(pl.col("v").sum())))
    assert abs(share * rows / groups - 1) < 1 / 3
    ordered = wb.Frame.from_polars(pl.DataFrame({"k": np.sort(keys), "v": np.ones(rows)}))
    low = groups_mod.group_share(inspect(ordered.lazy().group_by("k").agg(pl.col("v").sum())))
    assert low * rows <= groups * 4 / 3
    # no key split of one Frame: nothing to read
    assert groups_mod.group_share(inspect(f.lazy().select(pl.col("v").sum()))) == 0.0


def test_a_simple_group_by_with_a_group_per_row_is_split_at_once():
    # streaming would build all the groups on the device, fail, and only then split
    policy = choose(hardware_profile("h100"), budget="64kB")
    wb.init(backend="cpu")
    f = wb.Frame.from_polars(pl.DataFrame({"k": np.arange(10_000), "v": np.ones(10_000)}))
    c = strategy.choose(inspect(f.lazy().group_by("k").agg(pl.col("v").sum())), policy,
                        resident_limit=32_000)
    assert c.executor == "split" and "a sample of its keys" in c.reason
    assert 160_000 / c.partitions <= 64_000 / strategy.PARTITION_SHARE
    # groups taking about half the device memory: the streaming executor holds them
    few = wb.Frame.from_polars(pl.DataFrame({"k": np.arange(10_000) % 2_000, "v": np.ones(10_000)}))
    c = strategy.choose(inspect(few.lazy().group_by("k").agg(pl.col("v").sum())), policy,
                        resident_limit=32_000)
    assert c.executor == "streaming", c.reason


def test_discrete_gpu_beyond_the_resident_limit_splits_or_streams():
    policy = choose(hardware_profile("h100"), budget="64kB")
    info, _ = _info(10_000, split=True)  # 80 kB
    c = strategy.choose(info, policy, resident_limit=32_000)
    assert c.executor == "split" and 80_000 / c.partitions <= 64_000 / strategy.PARTITION_SHARE
    assert c.moves == 2 * 80_000  # cut in one pass, then each partition once
    info, _ = _info(10_000, split=False)
    c = strategy.choose(info, policy, resident_limit=32_000)
    assert c.executor == "streaming" and "does not split" in c.reason
    # a simple group-by (counts, sums...) streams first: one pass; the split if that fails
    info, _ = _info(10_000, split=True, simple=True)
    c = strategy.choose(info, policy, resident_limit=32_000)
    assert c.executor == "streaming" and "split by key if that fails" in c.reason
    info, _ = _info(1_000, split=True)
    assert strategy.choose(info, policy, resident_limit=32_000).executor == "in-memory"


def test_a_budget_too_small_for_any_partition_names_the_smallest_workable():
    policy = choose(hardware_profile("h100"), budget="1kB")
    info, _ = _info(2_000_000, split=True)  # 16 MB
    with pytest.raises(BudgetTooSmall, match=r"smallest workable budget is about [\d.]+ [kMG]B"):
        strategy.choose(info, policy, resident_limit=500)


def test_explain_on_the_cpu():
    wb.init(backend="cpu")
    x, _ = _h2o(100, 0)
    text = str(wb.explain(wb.Frame.from_polars(x).lazy().group_by("id1").agg(pl.col("v1").median())))
    assert text.startswith("runs on the CPU") and "splits by key: yes" in text and "id1" in text
    with pytest.raises(TypeError, match="LazyFrame"):
        wb.explain(x)


def test_plans_with_python_functions_are_inspected_without_error():
    from workbench.engine import natural

    wb.init(backend="cpu")
    x, _ = _h2o(100, 0)
    lf = wb.Frame.from_polars(x).lazy().select(pl.col("v3").map_batches(lambda s: s * 2,
                                                                       return_dtype=pl.Float64))
    info = inspect(lf)
    assert info.split is None and "plan view cannot show" in info.why_not
    assert not natural.rewritable(lf)
    grouped = wb.Frame.from_polars(x).lazy().group_by("id1").agg(
        pl.col("v3").map_batches(lambda s: s.sum(), returns_scalar=True, return_dtype=pl.Float64))
    # a Python function per group: the plan view cannot show it, so no split is claimed
    assert inspect(grouped).split is None and not natural.rewritable(grouped)


_C = pl.col
#: expressions of every kind a user writes in a select, with_columns or filter: row by
#: row, by order (shift, cum_sum, rolling), whole-column (mean, len, sort) and windows
_EXPRESSIONS = {
    "shift": _C("v").shift(1), "diff": _C("v").diff(), "cum_sum": _C("v").cum_sum(),
    "rank": _C("v").rank(), "mean_sub": _C("v") - _C("v").mean(), "len": pl.len(),
    "int_range": pl.int_range(pl.len()), "is_first": _C("k").is_first_distinct(),
    "is_dup": _C("k").is_duplicated(), "forward_fill": _C("w").forward_fill(),
    "fill_mean": _C("w").fill_null(_C("w").mean()), "fill_lit": _C("w").fill_null(0.0),
    "rolling": _C("v").rolling_mean(3), "ewm": _C("v").ewm_mean(alpha=0.5),
    "pct_change": _C("v").pct_change(), "clip": _C("v").clip(-1, 1),
    "when": pl.when(_C("v") > 0).then(_C("v")).otherwise(0), "str_len": _C("s").str.len_chars(),
    "is_in": _C("k").is_in([1, 2]), "cast": _C("k").cast(pl.Float32), "abs": _C("v").abs(),
    "arg_sort": _C("v").arg_sort(), "reverse": _C("v").reverse(), "sort": _C("v").sort(),
    "interpolate": _C("w").interpolate(),
    "over_k": _C("v").mean().over("k"), "cum_count": _C("v").cum_count(), "hash": _C("k").hash(),
    "replace": _C("k").replace({1: 10}), "n_unique": _C("k").n_unique(),
    "is_unique": _C("k").is_unique(), "max_horizontal": pl.max_horizontal("v", "w"),
    "concat_str": pl.concat_str([_C("s"), _C("k").cast(pl.String)]),
}


@pytest.mark.parametrize("shape", ["with_columns", "select", "filter", "then_group"])
@pytest.mark.parametrize("name", sorted(_EXPRESSIONS))
def test_a_split_never_changes_an_answer(name, shape):
    """Whatever the planner claims splits (by key or by row ranges) answers as the whole
    plan does, row for row: order-dependent and whole-column expressions must not pass
    for row-wise ones."""
    wb.init(backend="cpu")
    rng = np.random.default_rng(0)
    n = 301
    holes = pl.Series(rng.random(n) < 0.1)
    x = pl.DataFrame({"k": rng.integers(0, 5, n), "v": rng.normal(size=n),
                      "s": pl.Series(rng.choice(["a", "b"], n).tolist()).set(holes, None),
                      "w": pl.Series(rng.normal(size=n)).set(holes, None)})
    e, lf = _EXPRESSIONS[name], wb.Frame.from_polars(x).lazy()
    if shape == "filter":
        lf = lf.filter(e if name.startswith("is_") else e.cast(pl.Float64, strict=False) > 0)
    elif shape == "then_group":  # split by key: the expression must not see other keys' rows
        lf = lf.with_columns(e.alias("out")).group_by("k").agg(
            _C("out").cast(pl.Float64, strict=False).sum(), pl.len()).sort("k")
    else:
        lf = lf.select(_C("k"), e.alias("out")) if shape == "select" else lf.with_columns(e.alias("out"))
    want = lf.collect()
    info = inspect(lf)
    if info.split is not None:
        assert_frame_equal(run_split(lf, info.split, 3, pl.LazyFrame.collect), want,
                           check_exact=False, rel_tol=1e-9)
    else:
        assert info.why_not


def _pieces(sizes, in_place=False):
    from workbench.frame.cut import Cut

    return [Cut([pl.DataFrame({"k": np.full(n, i, np.int32), "v": np.arange(n, dtype=np.float64)})
                 .to_arrow()], in_place) for i, n in enumerate(sizes)]


@pytest.mark.parametrize("in_place", [False, True])
def test_the_cut_rows_of_one_frame_that_fit_a_partition_go_to_the_first(in_place):
    from workbench.frame import cut

    pieces = _pieces([3, 0, 5, 2], in_place)
    frame = pieces[0]
    room = sum(p.nbytes for p in pieces)
    first = cut.Partition(0, 4, {id(frame): ("k",)}, {}, {}, room)
    whole = cut.one_or(pieces, frame, ["k", "v"], first)
    assert first.scattered[cut.ONE] and len(whole) == 10 and whole.in_place is in_place
    # joined on the host, one chunk per column as the device copies read it; read in
    # place, the pieces as they are (the device concatenates them)
    assert len(whole.tables) == (4 if in_place else 1)
    assert all(c.num_chunks == 1 for t in whole.tables for c in t.columns)
    keys = pl.concat([pl.from_arrow(t) for t in whole.tables])["k"].to_list()
    assert sorted(keys) == [0, 0, 0, 2, 2, 2, 2, 2, 3, 3]
    # too little room, or two frames in the split: each partition its own piece
    small = cut.Partition(0, 4, {id(frame): ("k",)}, {}, {}, room - 1)
    assert cut.one_or(pieces, frame, ["k", "v"], small) is pieces[0] and cut.ONE not in small.scattered
    two = cut.Partition(0, 4, {id(frame): ("k",), 1: ("k",)}, {}, {}, room)
    assert cut.one_or(pieces, frame, ["k", "v"], two) is pieces[0]
    later = cut.Partition(2, 4, {id(frame): ("k",)}, {}, {}, room)
    assert cut.one_or(pieces, frame, ["k", "v"], later) is pieces[2]


def test_the_split_stops_after_a_partition_that_held_every_row():
    from workbench.frame import cut, scan

    df = pl.DataFrame({"k": [1, 2, 3, 1], "v": [1.0, 2.0, 3.0, 4.0]})
    frame = wb.Frame.from_polars(df)
    lf = frame.lazy().group_by("k").agg(pl.col("v").sum()).sort("k")
    split = inspect(lf).split
    seen = []

    def one(part_lf):
        part = scan._partition
        seen.append(part.index)
        part.scattered[cut.ONE] = True  # as a cut whose rows all fit does
        with scan.partitioning(cut.Partition(0, 1, split.keys)):  # every row: the whole plan
            return part_lf.collect()

    facts = {}
    got = run_split(lf, split, 8, one, facts=facts)
    assert seen == [0] and facts == {cut.ONE: True}
    assert_frame_equal(got, lf.collect())


def test_the_scan_row_limit_is_read_from_polars_plan():
    # a row limit polars pushes into a Frame's scan keeps the prefilter away (its first
    # rows are not its first passing rows); a filter pushed there is no limit
    f = wb.Frame.from_polars(pl.DataFrame({"k": [1, 2, 3, 4], "v": [1.0, 2.0, 3.0, 4.0]}))
    assert inspect(f.lazy().head(3)).inputs[0].row_limit == 3
    assert inspect(f.lazy().filter(pl.col("v") > 1)).inputs[0].row_limit is None
    assert inspect(f.lazy().filter(pl.col("v") > 1).group_by("k").len()).inputs[0].row_limit is None


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 30), min_size=1, max_size=5), sort=st.booleans(),
       limit=st.one_of(st.none(), st.integers(0, 40)), seed=st.integers(0, 2**16))
def test_a_split_assembles_arrow_answers_as_polars_would(sizes, sort, limit, seed):
    # the GPU's partitions come back as Arrow (offsets of 32 or 64 bits, empty ones too);
    # the answer is the polars answer of the same parts
    import pyarrow as pa

    from workbench.engine.plan import Split

    rng = np.random.default_rng(seed)
    frames = [pl.DataFrame({"k": rng.integers(0, 5, n), "s": [f"s{v}" for v in rng.integers(0, 9, n)]},
                           schema={"k": pl.Int64, "s": pl.String}) for n in sizes]
    arrow = [f.to_arrow().cast(pa.schema([("k", pa.int64()),
                                          ("s", pa.large_string() if i % 2 else pa.string())]))
             for i, f in enumerate(frames)]
    split = Split({1: ("k",)}, (("k", "s"), (False, True), (False, False), True) if sort else None,
                  limit)
    got, want = split.finish(arrow), split.finish(frames)
    got = pl.from_arrow(got) if isinstance(got, pa.Table) else got
    assert_frame_equal(got, want)
    assert isinstance(split.finish(arrow), pa.Table) == (not sort and limit is None)


def test_a_join_whose_inputs_take_over_half_the_resident_limit_does_not_run_in_memory():
    # beside its resident inputs a join holds the joined rows and its hash tables
    policy = choose(hardware_profile("h100"), budget="64kB")
    wb.init(backend="cpu")
    left = wb.Frame.from_polars(pl.DataFrame({"k": np.arange(2_500) % 50, "v": np.ones(2_500)}))
    right = wb.Frame.from_polars(pl.DataFrame({"k": np.arange(50), "w": np.arange(50.0)}))
    lf = left.lazy().join(right.lazy(), on="k").group_by("k").agg(pl.col("w").sum())
    c = strategy.choose(inspect(lf), policy, resident_limit=32_000)  # 20.8 kB of columns
    assert c.executor != "in-memory" and "joined, exceed half" in c.reason
    assert strategy.choose(inspect(lf), policy, resident_limit=90_000).executor == "in-memory"
    # one frame's columns of the same size still run in memory
    one = left.lazy().group_by("k").agg(pl.len())
    assert strategy.choose(inspect(one), policy, resident_limit=32_000).executor == "in-memory"
    # a semi or anti join keeps rows of one side only, like a filter: in memory too
    # (40.8 kB of columns under a 45 kB limit)
    for how in ("semi", "anti"):
        kept = left.lazy().join(right.lazy().filter(pl.col("w") > 9), on="k", how=how)
        assert inspect(kept).widening_joins == 0
        assert strategy.choose(inspect(kept), policy, resident_limit=45_000).executor == "in-memory"
    assert inspect(lf).widening_joins == 1
    # a median, quantile or distinct count per group sorts copies of its values
    for agg in (pl.col("v").median(), pl.col("v").quantile(0.9), pl.col("v").n_unique(),
                (pl.col("v").median() * 2).alias("m2")):
        q = left.lazy().group_by("k").agg(agg)
        assert inspect(q).split.sorting, agg
        c = strategy.choose(inspect(q), policy, resident_limit=45_000)
        assert c.executor == "split" and "sorted per group, exceed half" in c.reason, c.reason
    summed = left.lazy().group_by("k").agg(pl.col("v").sum(), pl.col("v").std().alias("s"))
    assert not inspect(summed).split.sorting
    assert strategy.choose(inspect(summed), policy, resident_limit=45_000).executor == "in-memory"


def test_a_split_shows_its_partitions_done_when_asked(capsys):
    wb.init(backend="cpu")
    x = pl.DataFrame({"k": list(range(40)) * 5, "v": list(range(200))})
    lf = wb.Frame.from_polars(x).lazy().group_by("k").agg(pl.col("v").median())
    info = inspect(lf)
    got = run_split(lf, info.split, 4, pl.LazyFrame.collect, progress=True)
    assert_frame_equal(got.sort("k"), lf.collect().sort("k"))
    err = capsys.readouterr().err
    assert "collect: partitions" in err and "4/4" in err
    run_split(lf, info.split, 4, pl.LazyFrame.collect)  # not a terminal: no bar
    assert capsys.readouterr().err == ""

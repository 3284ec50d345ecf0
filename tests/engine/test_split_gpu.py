"""Plans over frames several times the GPU budget run on the GPU, split by key or by row ranges.

Runs in a fresh interpreter: a memory budget is applied once per process. Every query
is asked with ``raise_on_fail=True`` (no CPU fallback allowed), its answer compared
with polars on the CPU, and the device's peak (RMM statistics) with the budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.gpu

CHILD = textwrap.dedent("""
    import json
    import numpy as np, polars as pl
    import workbench as wb
    from polars.testing import assert_frame_equal
    from workbench import memory

    s = wb.init(backend="gpu", budget="256MB")
    rng = np.random.default_rng(0)
    n = 40_000_000  # 40e6 x (4 + 4 + 8 + 8) bytes = 960 MB: ~4x the budget
    x = pl.DataFrame({"id1": rng.integers(0, 100, n).astype(np.int32),
                      "id3": rng.integers(0, n // 10, n).astype(np.int32),
                      "v1": rng.normal(size=n), "v3": rng.uniform(0, 100, n)})
    y = pl.DataFrame({"id1": np.arange(100, dtype=np.int32), "z": rng.normal(size=100)})
    fx, fy = wb.Frame.from_polars(x), wb.Frame.from_polars(y)
    queries = {
        "median_by_high_card": lambda x, y: x.group_by("id3").agg(pl.col("v3").median()),
        "quantile_std": lambda x, y: x.group_by("id1").agg(pl.col("v1").quantile(0.9), pl.col("v3").std()),
        "top_groups": lambda x, y: x.group_by("id3").agg(pl.col("v1").median().alias("s"))
                                     .sort("s", descending=True).head(5),
        "join_then_group": lambda x, y: x.join(y, on="id1").group_by("id1")
                                          .agg((pl.col("v1") * pl.col("z")).sum().alias("vz")),
        "result_larger_than_budget": lambda x, y: x.group_by("id3", "id1").agg(
            pl.col("v3").median(), pl.col("v1").n_unique()),
        "first_and_last": lambda x, y: x.group_by("id3").agg(pl.col("v1").first(), pl.col("v3").last()),
        "window_then_group": lambda x, y: x.with_columns(
            (pl.col("v3") - pl.col("v3").mean().over("id3")).alias("dev"))
            .filter(pl.col("dev") > 45).group_by("id1").agg(pl.len(), pl.col("dev").max()),
        # row-wise filters straight above the scan run while its rows are cut: a selective
        # one (through a with_columns) leaves rows that fit one partition; one keeping most
        # rows cuts them into partitions as before
        "filtered_then_grouped": lambda x, y: x.filter(pl.col("v3") > 99.5)
            .with_columns((pl.col("v1") * 2).alias("w")).filter(pl.col("w") > 0)
            .group_by("id3").agg(pl.len(), pl.col("w").median()),
        "filter_keeps_most": lambda x, y: x.filter(pl.col("v3") > 1).group_by("id3")
            .agg(pl.col("v1").median()),
        # a sum per group of the rows a filter keeps: few (a sample on the device says),
        # the rows are cut once and answer in memory; most, the streaming executor runs it
        "few_kept_then_summed": lambda x, y: x.filter(pl.col("v3") > 99).group_by("id1")
            .agg(pl.len(), pl.col("v1").sum()),
        "most_kept_then_summed": lambda x, y: x.filter(pl.col("v3") > 10).group_by("id1")
            .agg(pl.len(), pl.col("v1").sum()),
        # a window over a simple group-by's groups: the streaming executor answers it
        "share_of_groups": lambda x, y: x.group_by("id1").agg(pl.col("v1").sum(), pl.len())
            .with_columns((pl.col("len") / pl.col("len").sum().over("id1")).alias("share")),
        # row by row, answers in the frame's row order: a selective one split into row
        # ranges on the GPU; one keeping most rows left to polars on the CPU
        "few_rows_in_order": lambda x, y: x.filter(pl.col("v3") > 99).with_columns(
            (pl.col("v1") * 2).alias("w")),
        "most_rows_in_order": lambda x, y: x.filter(pl.col("v3") > 10).with_columns(
            (pl.col("v1") * 2).alias("w")),
        "largest_five": lambda x, y: x.sort("v1", descending=True).head(5),
        # the three largest v3 of each id1, in the frame's row order: thresholds per group
        # on the GPU (split by key), the rows kept in order by polars
        "top3_per_group_in_order": lambda x, y: x.filter(
            pl.col("v3").rank("min", descending=True).over("id1") <= 3).select("id1", "id3", "v3"),
        # a sum per (id3, v1): a group per row, which a sample of the keys shows, so it is
        # split at once instead of streaming (which would fail on so many groups first)
        "a_group_per_row": lambda x, y: x.group_by("id3", "v1").agg(pl.col("v3").sum()),
        # the largest three v3 of each of 100 id1 groups, as users write it: each row
        # range's own top three per group on the GPU, those few rows ranked again
        "top3_of_few_groups": lambda x, y: x.group_by("id1").agg(pl.col("v3").top_k(3).alias("t"))
            .explode("t"),
    }
    ORDERED = ("top_groups", "few_rows_in_order", "most_rows_in_order", "largest_five",
               "top3_per_group_in_order")
    out = {}
    for name, q in queries.items():
        mark, moved = len(s.log), len(s.transfers)
        got = wb.collect(q(fx.lazy(), fy.lazy()), raise_on_fail=True)
        cut = [t for t in s.transfers.since(moved) if t.what == "split: partitions to the host"]
        want = q(x.lazy(), y.lazy()).collect()
        if name not in ORDERED:
            got, want = got.sort(got.columns), want.sort(want.columns)
        try:
            assert_frame_equal(got, want, check_exact=False, rel_tol=1e-6, check_dtypes=False)
            same = True
        except AssertionError as err:
            same = str(err)[:300]
        out[name] = {"same": same, "rows": got.height,
                     "notes": [m for _, m in s.log[mark:]], "cut_kinds": sorted({t.kind for t in cut}),
                     "explain": str(wb.explain(q(fx.lazy(), fy.lazy())))}
        if name == "result_larger_than_budget":  # the split's answer kept as a Frame
            framed = wb.collect(q(fx.lazy(), fy.lazy()), raise_on_fail=True, as_frame=True)
            placed = set(framed.placement()["location"])
            framed = framed.to_polars()
            try:
                assert_frame_equal(framed.sort(framed.columns), want, check_exact=False,
                                   rel_tol=1e-6, check_dtypes=False)
                out[name]["as_frame_same"] = True
            except AssertionError as err:
                out[name]["as_frame_same"] = str(err)[:300]
            out[name]["as_frame_placement"] = sorted(placed)
    # streaming partitions of half the budget: a split cuts its rows in chunks of its own
    # size all the same (chunks of the partitions' size ran out of memory in any split)
    from workbench.memory import consumers
    consumers.STREAM_SHARE = 2
    q = queries["median_by_high_card"]
    got = wb.collect(q(fx.lazy(), fy.lazy()), raise_on_fail=True)
    want = q(x.lazy(), y.lazy()).collect()
    assert_frame_equal(got.sort(got.columns), want.sort(want.columns), check_exact=False, rel_tol=1e-6)
    out["large_stream_partitions_answered"] = True
    consumers.STREAM_SHARE = 16
    # the split's cut rows lay in registered blocks of the host pool, all given back
    from workbench.frame import hostpool
    pool = hostpool.shared(s.policy)
    made, reused = pool.made, pool.reused
    q = queries["median_by_high_card"]
    got = wb.collect(q(fx.lazy(), fy.lazy()), raise_on_fail=True)
    assert_frame_equal(got.sort(got.columns), want.sort(want.columns), check_exact=False, rel_tol=1e-6)
    out["pool"] = {"made_last": pool.made - made, "reused_last": pool.reused - reused,
                   "made": pool.made, "leased": pool.leased_bytes, "free": pool.free_bytes,
                   "keep": pool.keep}
    stats = memory.device_memory_stats()
    out["peak"], out["budget"] = stats["peak_bytes"], s.policy.budget
    print(json.dumps(out))
""")


def test_plans_beyond_the_budget_run_on_the_gpu_split_by_key():
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(out, indent=1))
    # each of these needs every value of a group (or joins): split by key, not streamed;
    # first/last read the rows in the frame's order, which the partitions keep
    for name in ("median_by_high_card", "quantile_std", "top_groups", "join_then_group",
                 "result_larger_than_budget", "first_and_last",
                 "filtered_then_grouped", "filter_keeps_most"):
        assert out[name]["same"] is True, (name, out[name])
        assert any("split by key into" in m for m in out[name]["notes"]), (name, out[name]["notes"])
        assert "split" in out[name]["explain"], out[name]["explain"]
    assert out["result_larger_than_budget"]["rows"] > 10_000_000
    assert out["large_stream_partitions_answered"] is True
    # the host pool's blocks: made by the first splits, most of them reused by a later
    # one (a frame four budgets large fills the blocks the pool keeps free, four budgets:
    # seen 19 made, 902 before, on an H100), none leased once the splits are done
    pool = out["pool"]
    assert pool["made"] > 0 and pool["reused_last"] > pool["made_last"], pool
    assert pool["leased"] == 0 and 0 < pool["free"] <= pool["keep"], pool
    top = out["top3_of_few_groups"]
    assert top["same"] is True and top["rows"] == 300, top
    assert any("ranked again" in m for m in top["notes"]) and \
        any("row ranges" in m for m in top["notes"]), top["notes"]
    # the cut partitions come back through the pinned staging buffers
    assert out["median_by_high_card"]["cut_kinds"] == ["pinned"], out["median_by_high_card"]
    per_row = out["a_group_per_row"]
    assert per_row["same"] is True and per_row["rows"] > 39_000_000, per_row
    assert "a sample of its keys" in per_row["explain"], per_row["explain"]
    assert not any("streaming" in m for m in per_row["notes"]), per_row["notes"]
    # kept as a Frame, the answer gathered on the host is the same, in plain host memory
    assert out["result_larger_than_budget"]["as_frame_same"] is True, out["result_larger_than_budget"]
    assert out["result_larger_than_budget"]["as_frame_placement"] == ["host plain"], \
        out["result_larger_than_budget"]
    cut = [m for m in out["filtered_then_grouped"]["notes"] if "while its rows were cut" in m]
    assert out["filtered_then_grouped"]["same"] is True and cut and "of 40,000,000 rows kept" in cut[0] \
        and "one partition" in cut[0], out["filtered_then_grouped"]
    most = [m for m in out["filter_keeps_most"]["notes"] if "while its rows were cut" in m]
    assert out["filter_keeps_most"]["same"] is True and most and "one partition" not in most[0], \
        out["filter_keeps_most"]
    few = out["few_kept_then_summed"]
    assert few["same"] is True and any("while its rows were cut" in m and "one partition" in m
                                       for m in few["notes"]), few
    most = out["most_kept_then_summed"]
    assert most["same"] is True and not any("rows were cut" in m for m in most["notes"]), most
    assert any("streaming executor" in m for m in most["notes"]), most
    share = out["share_of_groups"]
    assert share["same"] is True and any("streaming executor" in m for m in share["notes"]), share
    # a window by id3 under a group-by by id1: no key holds both, so the streaming executor
    # answers it (on the GPU: raise_on_fail), and nothing is filtered while cut
    window = out["window_then_group"]
    assert window["same"] is True and any("streaming executor" in m for m in window["notes"]), window
    assert not any("rows were cut" in m for m in window["notes"]), window
    # row-wise plans: ~400,000 rows from 40e6 split into row ranges on the GPU, in order
    few = out["few_rows_in_order"]
    assert few["same"] is True and few["rows"] > 300_000, few
    assert any("split into" in m and "row ranges" in m for m in few["notes"]), few["notes"]
    # ~36e6 rows (over 1 GB, 4x the budget): polars on the CPU, by choice, saying why
    most = out["most_rows_in_order"]
    assert most["same"] is True and most["rows"] > 30_000_000, most
    assert any("keeps ~" in m and "on the CPU" in m for m in most["notes"]), most["notes"]
    assert most["explain"].startswith("runs on the CPU"), most["explain"]
    # a limit: the streaming executor answers first (row ranges only if it fails)
    assert out["largest_five"]["same"] is True, out["largest_five"]
    # a rank filter per group over ~4x the budget: its thresholds split by key on the GPU
    top3 = out["top3_per_group_in_order"]
    assert top3["same"] is True and top3["rows"] >= 300, top3
    assert any("rank filter per group" in m for m in top3["notes"]), top3["notes"]
    assert any("split by key into" in m for m in top3["notes"]), top3["notes"]
    assert "rank filter per group" in top3["explain"], top3["explain"]
    assert out["peak"] <= out["budget"], (out["peak"], out["budget"])
